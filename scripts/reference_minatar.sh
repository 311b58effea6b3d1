#!/usr/bin/env bash
# The committed continual-MinAtar reference (docs/results/minatar3/), end to end, resumable:
#   1. +experiment=minatar_continual (SpaceInvaders -> Asterix -> Seaquest, the MinAtar paper's DQN) with
#      none, fire, shrink_perturb, full and dash at every switch, seeds 0-2;
#   2. each game alone from scratch at the same per-task budget, seeds 0-2 (the yardstick for plasticity loss);
#   3. python -m fire_rl.compare over 1 with 2 as --reference-dir, written to docs/results/minatar3/.
# Jobs run two at a time with one torch thread each. Re-running the script continues every unfinished run from
# its last checkpoint (checkpoint_every in the preset) and skips nothing that is done twice (finished runs only
# re-log their end). Settings (environment variables):
#   STEPS=50000 SEEDS=0,1,2 JOBS=2 OUT=runs/reference_minatar RESULTS=docs/results/minatar3
#   STEPS=2000000 gives C-CHAIN's budget (2M agent steps per task; days of CPU, hours of GPU).
# Extra arguments are Hydra overrides passed to every run (e.g. device=cuda).
set -euo pipefail
STEPS=${STEPS:-50000}
SEEDS=${SEEDS:-0,1,2}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/reference_minatar}
RESULTS=${RESULTS:-docs/results/minatar3}
METHODS=${METHODS:-none,fire,shrink_perturb,full,dash}
budget=("env.tasks.0.steps=${STEPS}" "logger.progress_bar=false" "logger.wandb_mode=disabled")
sweep=(-m hydra/launcher=parallel "hydra.launcher.n_jobs=${JOBS}" "seed=${SEEDS}")
started=$(date +%s)
python -m fire_rl.train "${sweep[@]}" +experiment=minatar_continual "+reset=${METHODS}" "${budget[@]}" \
  "env.tasks.1.steps=${STEPS}" "env.tasks.2.steps=${STEPS}" "hydra.sweep.dir=${OUT}/continual" "$@"
python -m fire_rl.train "${sweep[@]}" +experiment=minatar_continual \
  env=minatar_spaceinvaders,minatar_asterix,minatar_seaquest "${budget[@]}" "hydra.sweep.dir=${OUT}/scratch" "$@"
trained=$(date +%s)
python -m fire_rl.compare "${OUT}/continual" --reference-dir "${OUT}/scratch" --out "${RESULTS}"
echo "reference_minatar: training $((trained - started)) s, total $(($(date +%s) - started)) s (STEPS=${STEPS}, SEEDS=${SEEDS}, JOBS=${JOBS}, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
