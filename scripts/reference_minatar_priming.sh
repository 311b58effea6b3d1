#!/usr/bin/env bash
# Heavy priming as a positive control (docs/results/minatar_priming/): the midpoint recipe of
# scripts/reference_minatar_midpoint.sh with +experiment=minatar_priming (primed stage 1, every method branched
# from its midpoint checkpoint, `none` = primed and continuing), plus unprimed runs of the same seeds with the same
# warm-up (prime_updates=0, group `unprimed`) as the yardstick. Same stages, settings and resumption:
#   bash scripts/reference_minatar_priming.sh pilot    # primed and unprimed from scratch, seeds 0-2 (END=MIDPOINT
#                                                      # is enough to see whether priming hurts the first phase)
#   bash scripts/reference_minatar_priming.sh sweep    # then report (the partial one, if runs are left)
#   bash scripts/reference_minatar_priming.sh report   # the report alone; `carry` saves the runs into RESULTS/run_dirs
set -euo pipefail
export EXPERIMENT=minatar_priming UNPRIMED=1
export OUT=${OUT:-runs/minatar_priming} RESULTS=${RESULTS:-docs/results/minatar_priming}
export METHODS=${METHODS:-"none full shrink_perturb shrink_perturb_all fire fire_all dash redo cbp"}
exec bash "$(dirname "$0")/reference_minatar_midpoint.sh" "$@"
