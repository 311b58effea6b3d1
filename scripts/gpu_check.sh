#!/usr/bin/env bash
# What someone with a GPU runs first: the gpu-marked tests (the graphed update against the eager one through every
# reset among them), then bench_learner on CUDA: updates/s of the DQN and SAC learners eager vs compile vs graph
# (each built once, 200 timed updates, 3 interleaved repeats, median and range), and +experiment=paper_dqn and
# +experiment=paper_sac end to end, eager vs graph (1,000 warm-up steps, 1,500 timed, 2 repeats). MINUTES>0 adds a
# real +experiment=paper_dqn run of that length (stopped by SIGTERM, which writes a checkpoint; timeout then exits
# 124). Prints one summary at the end; the full output is in $OUT (default gpu_check/). About 7 minutes on an H200.
#   bash scripts/gpu_check.sh                 # GAME=ALE/Asterix-v5 MINUTES=0 OUT=gpu_check UPDATES=200 REPEATS=3
set -uo pipefail
GAME=${GAME:-ALE/Asterix-v5}
MINUTES=${MINUTES:-0}
OUT=${OUT:-gpu_check}
UPDATES=${UPDATES:-200}
REPEATS=${REPEATS:-3}
PY=${PYTHON:-$(command -v python || command -v python3)}  # some CUDA images have python3 only
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.cuda.get_device_name(0))" \
  | tee "$OUT/device.txt" || { echo "gpu_check: no CUDA device"; exit 1; }
git rev-parse --short HEAD > "$OUT/commit.txt" 2>/dev/null || echo unknown > "$OUT/commit.txt"
# The tests in parallel where pytest-xdist is installed.
parallel=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 5" || true)
"$PY" -m pytest -q -m gpu tests/test_gpu.py ${parallel} > "$OUT/tests.txt" 2>&1; tests=$?
"$PY" scripts/bench/bench_learner.py --cuda-only --updates "$UPDATES" --repeats "$REPEATS" \
  --e2e-modes none graph --e2e-repeats 2 --e2e-steps 1500 > "$OUT/bench_learner.txt" 2>&1; bench=$?
run="skipped (MINUTES=0)"; sps=""
if [ "$MINUTES" -gt 0 ]; then
  timeout -s TERM $((MINUTES * 60)) "$PY" -m fire_rl.train +experiment=paper_dqn "env.tasks.0.env_id=${GAME}" \
    +reset=fire device=cuda logger.wandb_mode=disabled logger.progress_bar=false "hydra.run.dir=${OUT}/paper_dqn" \
    > "$OUT/paper_dqn.txt" 2>&1; run="exit $?"
  sps=$("$PY" - "$OUT/paper_dqn/metrics.jsonl" <<'PY'
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
fi
echo "=== gpu_check summary ($(tail -1 "$OUT/device.txt"), commit $(cat "$OUT/commit.txt")) ==="
echo "gpu tests: $(tail -1 "$OUT/tests.txt") (exit $tests)"
grep -E "^(FAILED|ERROR)" "$OUT/tests.txt" | head -20
echo "bench_learner (exit $bench):"; sed 's/^/  /' "$OUT/bench_learner.txt" | tail -20
echo "paper_dqn ${GAME}, ${MINUTES} min (${run}; 124 = stopped by the timeout's SIGTERM, after a checkpoint): ${sps}"
