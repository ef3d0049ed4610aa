#!/usr/bin/env bash
# Set up everything the project needs (system packages for the native core, a
# virtual environment with runtime + export toolchain + test tools, the C++
# example and test programs) and run the full test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_packages.sh --test
python3 -m venv .venv
# torch 2.13.0 is the CPU wheel available offline on the project's machines
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".[cpu,export,test,bench,dicom,ray,wheel]"   # builds chexmask_rt._core in place; [wheel]: tests/test_wheel.py
cmake -S . -B build -DCHEXMASK_RT_BUILD_PYTHON=OFF -DCHEXMASK_RT_BUILD_EXAMPLES=ON -DCHEXMASK_RT_BUILD_TESTS=ON > build.log
cmake --build build -j2 >> build.log
# here the native core must be present: its tests fail rather than skip
CHEXMASK_RT_REQUIRE_NATIVE=1 .venv/bin/python -m pytest "$@"
# the C++ core under ASan + UBSan and the 10,000-input fuzz of the public API (time-boxed, ~8 min)
bash scripts/sanitize_and_fuzz.sh
