#!/usr/bin/env bash
# The FIRE paper's shared-midpoint DQN protocol at MinAtar scale (docs/results/minatar_midpoint/), resumable:
#   bash scripts/reference_minatar_midpoint.sh pilot    # from-scratch runs to the end, many evaluation episodes
#   bash scripts/reference_minatar_midpoint.sh sweep    # stage 1 per seed, then every method branched from it
#   bash scripts/reference_minatar_midpoint.sh report   # fire_rl.compare over the branches -> RESULTS
#   bash scripts/reference_minatar_midpoint.sh carry    # trimmed run directories -> CARRY, to commit
# `sweep` runs `report` at its end. Per seed, stage 1 trains +experiment=minatar_midpoint to MIDPOINT and stops
# with a checkpoint; every method then loads that same checkpoint (online, target, optimizer, theta0, replay, RNG),
# applies its one intervention at the branch point and trains to the end. ReDo is periodic by definition: it
# recycles every 1,000 agent steps from the branch point on. Runs go JOBS at a time, one torch thread each.
# Re-running a stage continues every unfinished run from its last checkpoint and leaves finished runs alone.
# A sweep outlives a session, and its machine may not come back: `carry` copies the run directories into CARRY
# with only the checkpoints resuming needs (scripts/carry_runs.py), and `sweep` first restores from CARRY every run
# that OUT lacks or holds less far along, so on a new machine the same command goes on where the carried runs were.
# Settings (environment variables, defaults in brackets):
#   EXPERIMENT [minatar_midpoint]  UNPRIMED [empty; 1: also the unprimed yardstick, prime_updates=0, group unprimed]
#   GAME [SpaceInvaders]  MIDPOINT [150000]  END [300000]  SEEDS ["0 1 2 3 4"]  JOBS [2]
#   METHODS ["none full shrink_perturb shrink_perturb_all fire fire_all dash redo plasticity_injection"]
#   OUT [runs/minatar_midpoint]  RESULTS [docs/results/minatar_midpoint]  CARRY [RESULTS/run_dirs]
#   PILOT_SEEDS ["0 1 2"]  PILOT_EPISODES [100]
# Extra arguments are Hydra overrides passed to every training run (e.g. device=cuda).
set -euo pipefail
stage=${1:?usage: reference_minatar_midpoint.sh pilot|sweep|report|carry [overrides...]}
shift
EXPERIMENT=${EXPERIMENT:-minatar_midpoint}
UNPRIMED=${UNPRIMED:-}
GAME=${GAME:-SpaceInvaders}
MIDPOINT=${MIDPOINT:-150000}
END=${END:-300000}
SEEDS=${SEEDS:-"0 1 2 3 4"}
JOBS=${JOBS:-2}
METHODS=${METHODS:-"none full shrink_perturb shrink_perturb_all fire fire_all dash redo plasticity_injection"}
OUT=${OUT:-runs/minatar_midpoint}
RESULTS=${RESULTS:-docs/results/minatar_midpoint}
CARRY=${CARRY:-${RESULTS}/run_dirs}
PILOT_SEEDS=${PILOT_SEEDS:-"0 1 2"}
PILOT_EPISODES=${PILOT_EPISODES:-100}

# The overrides of each method: its reset group and, for a second form of one strategy, its own name.
method_overrides() {
  case "$1" in
    none) echo "+reset=none" ;;
    full | fire | shrink_perturb | dash | plasticity_injection) echo "+reset=$1" ;;  # the paper's DQN forms
    fire_all) echo "+reset=fire reset.policy=project_all reset.name=fire_all" ;;    # every layer projected
    shrink_perturb_all) echo "+reset=shrink_perturb reset.policy=all reset.name=shrink_perturb_all" ;;
    redo) echo "+reset=redo" ;;  # periodic: every 1,000 agent steps from the branch point on
    cbp) echo "+reset=cbp" ;;    # continual: every update from the branch point on
    *) echo "unknown method '$1'; valid: none full shrink_perturb shrink_perturb_all fire fire_all dash redo" \
      "plasticity_injection cbp" >&2; return 2 ;;
  esac
}

common=("+experiment=${EXPERIMENT}" "env.tasks.0.env_id=MinAtar/${GAME}-v0" "env.tasks.0.steps=${END}"
  "reset_at_steps=[${MIDPOINT}]" "logger.progress_bar=false" "logger.wandb_mode=disabled" "$@")
checkpoint_of() { echo "${OUT}/${GAME}/seed$1/stage1/checkpoints/step_$(printf '%012d' "${MIDPOINT}")"; }
finished() { [ -f "$1/metrics.jsonl" ] && tail -n 1 "$1/metrics.jsonl" | grep -q '"event": "end"'; }

# One line per unfinished run: its directory, then its overrides; run JOBS at a time (each resumes its own dir).
run_all() {
  local failed=0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    dir=${line%% *}
    finished "$dir" && continue
    echo "$line"
  done | xargs -r -P "${JOBS}" -L 1 bash -c 'dir=$1; shift; mkdir -p "$dir"
    python -m fire_rl.train "$@" "hydra.run.dir=$dir" >>"$dir/stdout.log" 2>&1 && echo "done: $dir" \
      || { echo "FAILED: $dir (see $dir/stdout.log)" >&2; exit 255; }' _ || failed=1
  return $failed
}

# The unprimed yardstick of a priming experiment: the same preset, warm-up and seeds, no priming, no intervention.
UNPRIMED_RUN="prime_updates=0 +reset=none reset.name=unprimed"

pilot() {
  for seed in ${PILOT_SEEDS}; do
    echo "${OUT}/pilot/${GAME}/seed${seed} ${common[*]} seed=${seed} eval_episodes=${PILOT_EPISODES}"
    if [ -n "${UNPRIMED}" ]; then
      echo "${OUT}/pilot/${GAME}/unprimed/seed${seed} ${common[*]} seed=${seed} eval_episodes=${PILOT_EPISODES}" \
        "${UNPRIMED_RUN}"
    fi
  done | run_all
}

carry_runs() { python "$(dirname "$0")/carry_runs.py" "$@"; }

sweep() {
  if [ -d "${CARRY}" ]; then carry_runs restore "${CARRY}" "${OUT}/${GAME}"; fi
  for seed in ${SEEDS}; do
    echo "${OUT}/${GAME}/seed${seed}/stage1 ${common[*]} seed=${seed} stop_at_step=${MIDPOINT}"
  done | run_all
  for seed in ${SEEDS}; do
    for method in ${METHODS}; do
      echo "${OUT}/${GAME}/seed${seed}/${method} ${common[*]} seed=${seed} $(method_overrides "$method")" \
        "branch_from=$(checkpoint_of "$seed")"
    done
    if [ -n "${UNPRIMED}" ]; then
      echo "${OUT}/${GAME}/seed${seed}/unprimed ${common[*]} seed=${seed} ${UNPRIMED_RUN}"
    fi
  done | run_all
}

report() {
  python -m fire_rl.compare "${OUT}/${GAME}" --out "${RESULTS}" --baseline none ${UNPRIMED:+--gap-to unprimed}
}

started=$(date +%s)
case "$stage" in
  pilot) pilot ;;
  sweep) sweep && report ;;
  report) report ;;
  carry) carry_runs save "${OUT}/${GAME}" "${CARRY}" ;;
  *) echo "unknown stage '$stage'; valid: pilot, sweep, report, carry" >&2; exit 2 ;;
esac
echo "reference_minatar_midpoint ${stage}: $(($(date +%s) - started)) s (${EXPERIMENT}, GAME=${GAME} MIDPOINT=${MIDPOINT} END=${END}," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
