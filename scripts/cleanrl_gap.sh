#!/usr/bin/env bash
# Which difference between fire_rl's DQN and CleanRL's dqn_atari.py explains the Freeway learning gap (issue: fire_rl
# scored 0-1 up to 30k agent steps where CleanRL scored 16-21 from 14k)? Runs CleanRL's preset on Freeway at a CPU
# budget, then the same with one fire_rl choice put back at a time, then all of them (fire_rl's DQN), SEEDS each,
# two runs at a time, and prints the final greedy evaluation (20 games) of every run. Resumable (checkpoints).
#   bash scripts/cleanrl_gap.sh                 # STEPS=20000 SEEDS="1 2" OUT=runs/cleanrl_gap
set -euo pipefail
STEPS=${STEPS:-20000}
SEEDS=${SEEDS:-"1 2"}
OUT=${OUT:-runs/cleanrl_gap}
JOBS=${JOBS:-2}
base=(agent=dqn_cleanrl env=cleanrl_atari "env.tasks.0.env_id=ALE/Freeway-v5" "env.tasks.0.steps=${STEPS}"
  agent.learning_starts=2000 agent.epsilon_decay_steps=10000 agent.buffer_size=100000 torch_threads=1
  "eval_every=${STEPS}" eval_episodes=20 eval_max_episode_steps=27000 metrics_every=10000 log_every=2000
  checkpoint_every=5000 logger.wandb_mode=disabled logger.progress_bar=false)
declare -A VARIANTS=(
  [cleanrl]=""
  [huber]="agent.loss=huber"
  [xavier]="agent.init=xavier"
  [adam_eps]="agent.adam_eps=1.5e-4"
  [epsilon_held]="agent.epsilon_from=learning_starts"
  [gym_order]="env.settings.preprocessing=gymnasium"
  [fire_rl]="agent.loss=huber agent.init=xavier agent.adam_eps=1.5e-4 agent.epsilon_from=learning_starts env.settings.preprocessing=gymnasium"
)
running=0
for name in "${!VARIANTS[@]}"; do
  for seed in $SEEDS; do
    # shellcheck disable=SC2086  # VARIANTS values are lists of overrides
    python -m fire_rl.train "${base[@]}" ${VARIANTS[$name]} "seed=${seed}" "hydra.run.dir=${OUT}/${name}/seed${seed}" \
      > /dev/null 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  done
done
wait
python - "$OUT" <<'PY'
import json, pathlib, statistics, sys
for variant in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    finals = []
    for run in sorted(variant.glob("seed*")):
        evals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
        finals.append(evals[-1]["eval/Freeway/return"] if evals else float("nan"))
    print(f"{variant.name:14s} final greedy return per seed {finals}, mean {statistics.mean(finals):.2f}")
PY
