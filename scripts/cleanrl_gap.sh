#!/usr/bin/env bash
# Which difference between fire_rl's DQN and CleanRL's dqn_atari.py explains the Freeway learning gap (issue: fire_rl
# scored 0-1 up to 30k agent steps where CleanRL scored 16-21 from 14k)? Runs CleanRL's preset on Freeway at a CPU
# budget, then the same with one fire_rl choice put back at a time, then all of them (fire_rl's DQN), SEEDS each,
# two runs at a time, and prints per run the final greedy evaluation (20 games), the late training
# returns and the first step a training game reached 10 points. Resumable (checkpoints).
#   bash scripts/cleanrl_gap.sh                 # STEPS=20000 SEEDS="1 2" OUT=runs/cleanrl_gap JOBS=2 ONLY=<all>
set -euo pipefail
STEPS=${STEPS:-20000}
SEEDS=${SEEDS:-"1 2"}
OUT=${OUT:-runs/cleanrl_gap}
JOBS=${JOBS:-2}
base=(agent=dqn_cleanrl env=cleanrl_atari "env.tasks.0.env_id=ALE/Freeway-v5" "env.tasks.0.steps=${STEPS}"
  agent.learning_starts=2000 agent.epsilon_decay_steps=10000 loop.buffer_size=100000 torch_threads=1
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
for name in ${ONLY:-"${!VARIANTS[@]}"}; do  # ONLY="cleanrl xavier": a subset of the variants
  for seed in $SEEDS; do
    # shellcheck disable=SC2086  # VARIANTS values are lists of overrides
    python -m fire_rl.train "${base[@]}" ${VARIANTS[$name]} "seed=${seed}" "hydra.run.dir=${OUT}/${name}/seed${seed}" \
      > /dev/null 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  done
done
wait
python - "$OUT" "$STEPS" <<'PY'
# Per variant and seed: the final greedy evaluation (eval_episodes games, epsilon 0.05), the mean training return of
# the games that ended in the last quarter of the budget, and the first agent step at which a training game scored 10.
import json, pathlib, statistics, sys
out, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
for variant in sorted(out.iterdir()):
    finals, lates, firsts = [], [], []
    for run in sorted(variant.glob("seed*")):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evals = [r["eval/Freeway/return"] for r in rows if r["event"] == "eval"]
        games = [(r["step"], r["charts/episodic_return"]) for r in rows if r["event"] == "episode"]
        late = [ret for step, ret in games if step > 0.75 * steps]
        finals.append(evals[-1] if evals else float("nan"))
        lates.append(statistics.mean(late) if late else float("nan"))
        firsts.append(next((step for step, ret in games if ret >= 10), None))
    print(f"{variant.name:14s} final eval {finals} (mean {statistics.mean(finals):.1f}); "
          f"late training games {[round(x, 1) for x in lates]}; first game >= 10 at step {firsts}")
PY
