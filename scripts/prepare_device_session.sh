#!/usr/bin/env bash
# Prepares, on the development machine, what scripts/device_session.sh needs on a lent GPU machine,
# and checks it here on a copy of what that machine receives, so that its minutes go to training.
#
# The lent machine runs its image's Python 3.12 with torch, numpy, opencv and scipy, but neither this
# checkout's native core (git-ignored, built for this machine's Python) nor simplejpeg, and it cannot
# download anything. So this script makes, in ignored paths that the call carries:
#   1. .devdata/shared/data: the training data packed small (python -m training.pack_device_data);
#   2. runtime/chexmask_rt/_core.cpython-312-x86_64-linux-gnu.so: the core built for CPython 3.12
#      (this machine's Python ignores it);
#   3. .devdata/shared/site: simplejpeg's CPython 3.12 wheel, unpacked (device_session.sh adds it to
#      PYTHONPATH); .devdata/shared/ort-include: ONNX Runtime's C/C++ headers, with which
#      device_session.sh builds the core there if the one built here does not load (other system
#      libraries);
#   4. the check: the tracked and untracked files plus the carried paths, copied to a temporary
#      folder, where Python 3.12 (a venv with numpy, opencv and scipy only, like the machine) imports
#      the training data code and draws training samples from the packed data.
# Then, in a session that is lent a GPU (one call; the whole of it fits one 600 s command):
#   run(command="BUDGET_S=575 bash scripts/device_session.sh", timeout_s=600,
#       carry=[".devdata/shared", "runtime/chexmask_rt/_core.cpython-312-x86_64-linux-gnu.so"])
# with BUDGET_S lowered when status's budget_left_s is short (the machine's start takes 2-4 minutes
# of it). Rerun this script after any change to cpp/ or to the training data.
#   PY312: a CPython 3.12 interpreter (default: python3.12 on PATH, else pyenv's).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
if [ -z "${PY312:-}" ]; then  # the first that runs: a pyenv shim may be on PATH and refuse
  for candidate in python3.12 $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null); do
    if "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 12)" 2>/dev/null; then PY312=$candidate; break; fi
  done
fi
[ -n "${PY312:-}" ] || { echo "no CPython 3.12: set PY312" >&2; exit 2; }
VENV=.devdata/py312
CORE=runtime/chexmask_rt/_core.cpython-312-x86_64-linux-gnu.so
SITE=.devdata/shared/site
PYTHON=${PYTHON:-.venv/bin/python}

echo "1. data"
"$PYTHON" -m training.pack_device_data

echo "2. the core for $("$PY312" --version)"
[ -x "$VENV/bin/python" ] || "$PY312" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q numpy opencv-python-headless scipy tqdm pybind11
ORT_INCLUDE=$(ls -d build/_deps/onnxruntime-headers/include 2>/dev/null || true)
cmake -S . -B .devdata/build312 -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$REPO/$VENV/bin/python" \
  -Dpybind11_DIR="$("$VENV/bin/python" -m pybind11 --cmakedir)" -DCHEXMASK_RT_PYTHON_OUTPUT_DIR="$REPO/runtime/chexmask_rt" \
  ${ORT_INCLUDE:+-DONNXRUNTIME_INCLUDE_DIR="$REPO/$ORT_INCLUDE"} > .devdata/build312.log
cmake --build .devdata/build312 -j"$(nproc)" --target _core >> .devdata/build312.log
ls -la "$CORE"

echo "3. simplejpeg for CPython 3.12"
VERSION=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('simplejpeg'))")
rm -rf "$SITE" .devdata/wheels
"$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .devdata/wheels "simplejpeg==$VERSION"
"$VENV/bin/python" -m zipfile -e .devdata/wheels/simplejpeg-*.whl "$SITE"
rm -rf .devdata/shared/ort-include
cp -a "$(grep -m1 '^ONNXRUNTIME_INCLUDE_DIR:' .devdata/build312/CMakeCache.txt | cut -d= -f2)" .devdata/shared/ort-include

echo "4. the check, on a copy of what the machine receives"
COPY=$(mktemp -d)
trap 'rm -rf "$COPY"' EXIT
git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C "$COPY"
mkdir -p "$COPY/.devdata"
cp -a .devdata/shared "$COPY/.devdata/"
cp "$CORE" "$COPY/$CORE"
(cd "$COPY" && PYTHONPATH="$COPY/runtime:$COPY/export:$COPY:$COPY/$SITE" "$REPO/$VENV/bin/python" - <<'EOF'
import sys
from pathlib import Path

import chexmask_rt._core as core
import simplejpeg
from training.data import SyntheticChests, load_shapes, load_textures

data = Path(".devdata/shared/data")
textures = load_textures(data, [Path("training/textures.json"), data / "real_512" / "real_textures.json"])
chests = SyntheticChests(load_shapes(data).train, textures, 512, length=4, seed=0)
image, landmarks = chests[3]
assert image.shape == (1, 512, 512) and landmarks.shape == (120, 2), (image.shape, landmarks.shape)
print(f"ok: Python {sys.version.split()[0]}, core {Path(core.__file__).name}, simplejpeg {simplejpeg.__version__}, "
      f"{len(textures)} textures, a sample drawn")
EOF
)
du -sh .devdata/shared "$CORE"
echo "carry: .devdata/shared $CORE"
