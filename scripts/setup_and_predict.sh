#!/usr/bin/env bash
# Set up the runtime only (no torch; the native core is built) and segment the
# bundled sample radiograph with the shipped default model: JSON + overlay picture.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_packages.sh
python3 -m venv .venv
.venv/bin/pip install --quiet ".[cpu]"   # [gpu] instead for CUDA/TensorRT
.venv/bin/chexmask-rt predict runtime/chexmask_rt/samples/chest_pa_cc0.jpg --samples 50 --json out/chest_pa.json --overlay out/chest_pa.png
