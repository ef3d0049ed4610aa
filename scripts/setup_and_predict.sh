#!/usr/bin/env bash
# Set up a virtual environment with the runtime only (no torch) and segment
# the bundled sample radiograph with the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet .
.venv/bin/chexmask-rt predict runtime/chexmask_rt/samples/chest_pa_cc0.jpg --samples 50 --json out/chest_pa.json
