#!/usr/bin/env bash
# Set up a virtual environment with everything the project needs (runtime,
# export toolchain, test tools) and run the full test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# torch 2.13.0 is the CPU wheel available offline on the project's machines
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".[export,test]"
.venv/bin/python -m pytest "$@"
