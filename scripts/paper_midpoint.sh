#!/usr/bin/env bash
# The FIRE paper's shared-midpoint recipe (docs/paper-notes.md §3 and 4): for each env and seed, stage 1 trains to
# the midpoint and stops with a checkpoint; then every method starts from that SAME checkpoint and replay buffer,
# applies its intervention once (at the branch point), and trains to the end. Paper scale needs a GPU.
#   bash scripts/paper_midpoint.sh dqn            # Asterix, BeamRider, DemonAttack x seeds 0-4 x 5 methods
#   bash scripts/paper_midpoint.sh sac            # Humanoid-v5 x seeds 0-4 x 5 methods
#   ENVS="ALE/Asterix-v5" SEEDS="0" bash scripts/paper_midpoint.sh dqn device=cuda
# Extra arguments are Hydra overrides passed to every run. Compare with: python -m fire_rl.compare runs/paper_<kind>
set -euo pipefail
kind=${1:?usage: paper_midpoint.sh dqn|sac [overrides...]}
shift
# Every strategy's default `policy: agent` is the authors' form for the agent (DQN S&P: SR-DQN style).
declare -A METHODS=([vanilla]="" [fire]="+reset=fire" [full]="+reset=full" [shrink_perturb]="+reset=shrink_perturb"
  [plasticity_injection]="+reset=plasticity_injection")  # SAC: fire_rl's critic-only form (docs/resets.md)
case "$kind" in
  dqn)
    ENVS=${ENVS:-"ALE/Asterix-v5 ALE/BeamRider-v5 ALE/DemonAttack-v5"}
    MIDPOINT=1250000
    ;;
  sac)
    ENVS=${ENVS:-"Humanoid-v5"}  # h1-walk-v0 h1-balance_simple-v0 h1-run-v0 once humanoid_bench is installed
    MIDPOINT=500000
    ;;
  *) echo "unknown kind '$kind'; valid: dqn, sac" >&2; exit 2 ;;
esac
SEEDS=${SEEDS:-"0 1 2 3 4"}
OUT=${OUT:-runs/paper_${kind}}
for env_id in $ENVS; do
  name=${env_id#ALE/}
  for seed in $SEEDS; do
    common=("+experiment=paper_${kind}" "env.tasks.0.env_id=${env_id}" "seed=${seed}" "$@")
    stage1="${OUT}/${name}/seed${seed}/stage1"
    checkpoint="${stage1}/checkpoints/step_$(printf '%012d' ${MIDPOINT})"
    if [ ! -f "${checkpoint}/manifest.json" ]; then
      python -m fire_rl.train "${common[@]}" stop_at_step=${MIDPOINT} "hydra.run.dir=${stage1}"
    fi
    for method in "${!METHODS[@]}"; do
      # shellcheck disable=SC2086  # METHODS values are lists of overrides
      python -m fire_rl.train "${common[@]}" ${METHODS[$method]} "branch_from=${checkpoint}" \
        "hydra.run.dir=${OUT}/${name}/seed${seed}/${method}"
    done
  done
done
echo "compare with: python -m fire_rl.compare ${OUT} --paper-overlay"
