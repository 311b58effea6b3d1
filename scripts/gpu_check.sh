#!/usr/bin/env bash
# What someone with a GPU runs first: the gpu-marked tests, the learner benchmark (eager vs compiled, CPU and CUDA,
# then paper_dqn end to end), and a 3-minute +experiment=paper_dqn run on one game (stopped by SIGTERM, which
# writes a checkpoint and ends the run; timeout then exits 124). Prints one summary at the end; the full output
# is in $OUT (default gpu_check/).
#   bash scripts/gpu_check.sh                 # GAME=ALE/Breakout-v5 MINUTES=3 OUT=gpu_check
set -uo pipefail
GAME=${GAME:-ALE/Asterix-v5}
MINUTES=${MINUTES:-3}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.cuda.get_device_name(0))" \
  | tee "$OUT/device.txt" || { echo "gpu_check: no CUDA device"; exit 1; }
# The five tests in parallel where pytest-xdist is installed (about 85 s on an H200 rather than several minutes).
parallel=$(python -c "import xdist" 2>/dev/null && echo "-n 5" || true)
python -m pytest -q -m gpu tests/test_gpu.py ${parallel} > "$OUT/tests.txt" 2>&1; tests=$?
python scripts/bench/bench_learner.py > "$OUT/bench_learner.txt" 2>&1; bench=$?
timeout -s TERM $((MINUTES * 60)) python -m fire_rl.train +experiment=paper_dqn "env.tasks.0.env_id=${GAME}" \
  +reset=fire device=cuda logger.wandb_mode=disabled logger.progress_bar=false "hydra.run.dir=${OUT}/paper_dqn" \
  > "$OUT/paper_dqn.txt" 2>&1; run=$?
sps=$(python - "$OUT/paper_dqn/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in rows if r["event"] == "train"]
learning = [r for r in train if r.get("losses/td_loss") is not None]  # rows after learning_starts
rate = "fewer than two train rows while learning"
if len(learning) >= 2:  # charts/sps averages from the start, random warm-up included; this is the learning phase
    first, last = learning[0], learning[-1]
    rate = f"{(last['step'] - first['step']) / (last['time_s'] - first['time_s']):.1f} steps/s while learning"
print(f"{train[-1]['step']} agent steps, {rate}" if train else "no train rows")
PY
)
echo "=== gpu_check summary ($(cat "$OUT/device.txt" | tail -1)) ==="
echo "gpu tests: $(tail -1 "$OUT/tests.txt") (exit $tests)"
echo "bench_learner (exit $bench):"; sed 's/^/  /' "$OUT/bench_learner.txt"
echo "paper_dqn ${GAME}, ${MINUTES} min (exit $run; 124 = stopped by the timeout's SIGTERM, after a checkpoint): ${sps}"
