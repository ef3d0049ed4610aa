#!/usr/bin/env bash
# The core's reliability checks (README, "Reliability"), run by scripts/setup_and_test.sh after
# the test suite. Time-boxed: about 8 minutes on the 2-core CI machine, never more than 13.
#  1. the C++ core, its tests and its pybind module built with AddressSanitizer + UBSan
#     (build-asan/; undefined behaviour is fatal there);
#  2. the C++ tests under the sanitizers: bad buffers, threads, engine seals on damaged and cut
#     bytes, organ masks (polygon_mask and its C API), the shipped model, engines that must be refused (10 landmarks, metadata that is not
#     the graph's, a graph that lies), one with 60 landmarks whose organs metadata names them,
#     which must run, and the JSON reader of the quality calibration on malformed and
#     byte-mutated documents;
#  3. the core's JPEG frame readers (the lossless decoder, the DCT check) on 150,000 seeded mutations of
#     sound frames (tests/fuzz_jpeg_frames.py);
#  4. the seeded fuzz of the public API (tests/fuzz_public_api.py: files, arrays, engines, damaged
#     calibration files beside an engine, and organ masks, which must equal cv2.fillPoly's),
#     10,000 inputs: the first
#     FUZZ_ASAN_INPUTS through the sanitizer build (Python with libasan preloaded, native
#     core), the rest through the normal build.
# A heap over-read, a crash, a hang (60 s watchdog) or an untyped error fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FUZZ_INPUTS=${FUZZ_INPUTS:-10000}
FUZZ_ASAN_INPUTS=${FUZZ_ASAN_INPUTS:-3000}
FUZZ_SEED=${FUZZ_SEED:-20}
OUT=build-asan

echo "== sanitizer build ($OUT)"
mkdir -p "$OUT"
[ -d build/_deps ] && [ ! -d "$OUT/_deps" ] && cp -r build/_deps "$OUT/"  # the ONNX Runtime headers, not fetched twice
cmake -S . -B "$OUT" -DCHEXMASK_RT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHEXMASK_RT_BUILD_TESTS=ON \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
  -DCHEXMASK_RT_PYTHON_OUTPUT_DIR="$PWD/$OUT/python" > "$OUT/build.log"
timeout 420 cmake --build "$OUT" -j2 >> "$OUT/build.log"

# the package with the sanitizer build of _core in place of the normal one
pkg="$OUT/pkg/chexmask_rt"
rm -rf "$OUT/pkg" && mkdir -p "$pkg"
for f in runtime/chexmask_rt/*; do
  case "$f" in *_core*.so|*__pycache__*) ;; *) ln -s "$PWD/$f" "$pkg/" ;; esac
done
ln -s "$PWD/$OUT"/python/_core*.so "$pkg/"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# libstdc++ preloaded too: otherwise ASan cannot find the real __cxa_throw for the C++ exceptions of cv2 and ORT
PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
ORT=$("$PY" -c "from chexmask_rt.core import onnxruntime_library; print(onnxruntime_library())")

echo "== C++ tests under ASan + UBSan"
engines="$OUT/engines"
mkdir -p "$engines"
printf '\x08\x07garbage' > "$engines/not_an_engine.onnx"
"$PY" - "$engines" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from toy_engine import write_toy_engine
out = Path(sys.argv[1])
lie = {n: ["batch", 120, 2] for n in ("landmarks_mean", "landmarks_std", "landmarks_mu")}
write_toy_engine(out / "ten_landmarks.onnx", landmarks=10)
write_toy_engine(out / "latents_65.onnx", metadata={"latents": "65"})
write_toy_engine(out / "inputsize_128.onnx", metadata={"inputsize": "128"})
write_toy_engine(out / "lies_about_landmarks.onnx", landmarks=10, per_sample=True, declared=lie)
write_toy_engine(out / "organs_disagree.onnx", landmarks=60, metadata={"organs": "right_lung:20,left_lung:25,heart:16"})
# another landmark count that its metadata names: must run both looks on its own organs
write_toy_engine(out / "other_anatomy_60.onnx", landmarks=60, metadata={"organs": "right_lung:20,left_lung:25,heart:15"})
EOF
timeout 300 "$OUT/cpp/chexmask-rt-tests" runtime/chexmask_rt/models/default.onnx "$ORT" "$engines/not_an_engine.onnx" \
  "$engines/ten_landmarks.onnx" "$engines/latents_65.onnx" "$engines/inputsize_128.onnx" \
  "$engines/lies_about_landmarks.onnx" "$engines/organs_disagree.onnx" "$engines/other_anatomy_60.onnx"

echo "== JPEG frame readers' fuzz, sanitizer build: 150,000 mutated frames"
LD_PRELOAD="$PRELOAD" PYTHONPATH="$PWD/$OUT/pkg${PYTHONPATH:+:$PYTHONPATH}" timeout 150 "$PY" tests/fuzz_jpeg_frames.py \
  --inputs 150000 --time-box 120 --expect-core "$PWD/$OUT/pkg"

echo "== fuzz, sanitizer build: inputs 0..$((FUZZ_ASAN_INPUTS - 1))"
LD_PRELOAD="$PRELOAD" PYTHONPATH="$PWD/$OUT/pkg${PYTHONPATH:+:$PYTHONPATH}" timeout 300 "$PY" tests/fuzz_public_api.py \
  --seed "$FUZZ_SEED" --inputs "$FUZZ_ASAN_INPUTS" --backends native --time-box 240 --expect-core "$PWD/$OUT/pkg" \
  --report "$OUT/fuzz-asan.json" --keep "$OUT/fuzz-asan" > "$OUT/fuzz-asan.log" 2> "$OUT/fuzz-asan.stderr" \
  || { tail -n 40 "$OUT/fuzz-asan.log" "$OUT/fuzz-asan.stderr"; cat "$OUT/fuzz-asan/last_input.txt"; exit 1; }
"$PY" tests/fuzz_public_api.py --summary "$OUT/fuzz-asan.json"

echo "== fuzz, normal build: inputs $FUZZ_ASAN_INPUTS..$((FUZZ_INPUTS - 1))"
timeout 300 "$PY" tests/fuzz_public_api.py --seed "$FUZZ_SEED" --first "$FUZZ_ASAN_INPUTS" \
  --inputs "$((FUZZ_INPUTS - FUZZ_ASAN_INPUTS))" --time-box 240 --report "$OUT/fuzz.json" --keep "$OUT/fuzz" \
  > "$OUT/fuzz.log" 2> "$OUT/fuzz.stderr" \
  || { tail -n 40 "$OUT/fuzz.log" "$OUT/fuzz.stderr"; cat "$OUT/fuzz/last_input.txt"; exit 1; }
"$PY" tests/fuzz_public_api.py --summary "$OUT/fuzz.json"
