#!/usr/bin/env bash
# Wheels of what fire_rl needs beyond a stock CUDA PyTorch image (numpy, opencv, matplotlib, pandas, joblib, pytest
# and pytest-xdist already there), at the versions of constraints.txt, for a GPU machine with no package index.
# Download them where pip works, carry the folder, and install them there without an index:
#   bash scripts/dev/offline_wheels.sh [DIR] [PYTHON_VERSION]        # defaults: .whl 3.12
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site:$PWD   (printed at the end)
# then run bash scripts/gpu_check.sh from the repository root.
set -euo pipefail
DIR=${1:-.whl}
PY=${2:-3.12}
here=$(cd "$(dirname "$0")/../.." && pwd)
pin() { grep -i "^$1==" "$here/constraints.txt" | head -1; }
mkdir -p "$DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
binary=(gymnasium Farama-Notifications ale-py mujoco mujoco-core mujoco-studio glfw PyOpenGL hydra-core omegaconf
        hydra-joblib-launcher MinAtar)
for name in "${binary[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    "${platforms[@]}" -d "$DIR" "$(pin "$name")"
done
# antlr4-python3-runtime (hydra's parser) is published as a source archive only: build its pure-Python wheel here.
python3 -m pip wheel -q --no-deps -w "$DIR" "$(pin antlr4-python3-runtime)"
ls -1 "$DIR"; du -sh "$DIR"
echo "install there: python3 -m pip install -q --no-index --no-deps --target /tmp/site $DIR/*.whl && export PYTHONPATH=/tmp/site:\$PWD"
