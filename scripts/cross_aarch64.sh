#!/usr/bin/env bash
# Cross-builds the native core (both libraries), its C++ tests and the C example for aarch64 (Jetson)
# with Debian's g++-aarch64-linux-gnu, against the aarch64 onnxruntime wheel's library
# (-DONNXRUNTIME_ROOT), runs them under qemu-user, and compares the aarch64 landmarks with the x86
# build's for the same images. Prints (and writes to WORK/result.txt) the comparison and the highest
# glibc / libstdc++ symbol versions the aarch64 binaries need.
#
#   bash scripts/cross_aarch64.sh [WORK]      # default WORK: build-aarch64/
#
# Needs: apt packages g++-aarch64-linux-gnu qemu-user; the network to Debian's archive (arm64
# OpenCV core/imgproc and their libraries, unpacked into WORK/sysroot with a private apt setup)
# and PyPI (the onnxruntime aarch64 wheel); the x86 build in build/ (scripts/setup_and_test.sh)
# for the reference output. $PYTHON: the venv's python (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${1:-build-aarch64}
mkdir -p "$work"
work=$(cd "$work" && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
x86_c=$repo/build/cpp/chexmask-rt-c
model=$repo/runtime/chexmask_rt/models/default.onnx

for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
    command -v $tool >/dev/null || { echo "cross_aarch64: $tool missing: apt-get install g++-aarch64-linux-gnu qemu-user" >&2; exit 2; }
done
[ -x "$x86_c" ] || { echo "cross_aarch64: $x86_c missing: build the x86 examples first (scripts/setup_and_test.sh)" >&2; exit 2; }

# --- the target's libraries: Debian arm64 OpenCV core + imgproc and what they need --------------------
sysroot=$work/sysroot
if [ ! -f "$sysroot/.complete" ]; then
    # shellcheck source=../cpp/cmake/private_apt.sh
    . cpp/cmake/private_apt.sh
    suite=$(private_apt_debian_suite)  # its own line: set -e stops on its failure
    private_apt_init "$work/apt" "" "$suite" arm64
    apt-get -c "$apt_conf" -qq -y --no-install-recommends install --download-only libopencv-core-dev libopencv-imgproc-dev
    for deb in "$work"/apt/cache/archives/*.deb; do dpkg -x "$deb" "$sysroot"; done
    touch "$sysroot/.complete"
fi
# shellcheck source=scripts/qemu_aarch64.sh
. scripts/qemu_aarch64.sh
qemu_aarch64_cpuinfo "$sysroot"
lib=$sysroot/usr/lib/aarch64-linux-gnu
target_libs=$lib:$lib/blas:$lib/lapack:$sysroot/lib/aarch64-linux-gnu

# --- ONNX Runtime for aarch64: the wheel's library + the headers, in the release-archive layout --------
ort=$work/onnxruntime
if [ ! -e "$ort/lib/libonnxruntime.so" ]; then
    "$python" -m pip download --quiet --no-deps --platform manylinux_2_28_aarch64 --only-binary=:all: \
        --python-version 3.11 --dest "$work/wheel" "onnxruntime>=1.21"
    rm -rf "$work/wheel/unpacked" && "$python" -m zipfile -e "$work"/wheel/onnxruntime-*.whl "$work/wheel/unpacked"
    mkdir -p "$ort/lib" "$ort/include"
    cp "$work"/wheel/unpacked/onnxruntime/capi/libonnxruntime.so.1.* "$ort/lib/"
    (cd "$ort/lib" && ln -sf libonnxruntime.so.1.* libonnxruntime.so.1 && ln -sf libonnxruntime.so.1 libonnxruntime.so)
    headers=$repo/build/_deps/onnxruntime-headers/include
    [ -f "$headers/onnxruntime_cxx_api.h" ] || { sh cpp/cmake/fetch_onnxruntime_headers.sh "$work/headers"; headers=$work/headers/include; }
    cp "$headers"/*.h "$ort/include/"
fi
ort_lib=$(ls "$ort"/lib/libonnxruntime.so.1.*)

# --- build: the libraries and the C++ tests with CMake, the C example against the shared library -------
build=$work/build
cmake -S cpp -B "$build" -DCMAKE_TOOLCHAIN_FILE="$repo/cpp/cmake/aarch64-linux-gnu.cmake" \
    -DCHEXMASK_RT_SYSROOT="$sysroot" -DONNXRUNTIME_ROOT="$ort" -DCHEXMASK_RT_BUILD_TESTS=ON > "$work/configure.log"
cmake --build "$build" -j"$(nproc)" --target chexmask_rt_shared chexmask-rt-tests > "$work/build.log"
aarch64-linux-gnu-gcc -std=c99 -O2 -I cpp/include cpp/examples/chexmask_rt_c.c -o "$build/chexmask-rt-c" \
    -L"$build" -lchexmask_rt -lm -Wl,-rpath-link,"$target_libs:$ort/lib"
file "$build/chexmask-rt-c" | grep -q "ARM aarch64" || { echo "cross_aarch64: not an aarch64 binary" >&2; exit 1; }

# the target's own loader and C library (the sysroot's, from the same Debian release as the toolchain)
run() { qemu-aarch64 -L "$sysroot" -E LD_LIBRARY_PATH="$build:$ort/lib:$target_libs" "$@"; }

# --- the C++ tests under qemu: eps, bad images, the second look's geometry. Not their engine part:
# about a hundred engine calls, and one takes about a CPU minute under emulation. The engine runs
# below instead, through the C API (load, predict, every field) and the linked ONNX Runtime.
tests_out=$(run "$build/chexmask-rt-tests" 2>&1) \
    || { echo "$tests_out" >&2; echo "cross_aarch64: the C++ tests failed under qemu" >&2; exit 1; }

# --- landmarks: aarch64 vs x86, same images, samples and seed ------------------------------------------
images=()
for png in ../shared/data/images/*.png; do
    pgm=$work/$(basename "${png%.png}").pgm
    "$python" -c "import sys, cv2; cv2.imwrite(sys.argv[2], cv2.imread(sys.argv[1], cv2.IMREAD_GRAYSCALE))" "$png" "$pgm"
    images+=("$pgm")
done
samples=${CHEXMASK_RT_CROSS_SAMPLES:-10}   # each engine call costs about a CPU minute under qemu
# --second-look: both engine calls and the crop geometry (the shipped model's default is one call)
args=(--model "$model" --samples "$samples" --seed 0 --threads 1 --second-look "${images[@]}")
CHEXMASK_RT_ONNXRUNTIME_LIBRARY= "$x86_c" --onnxruntime "$("$python" -c 'from chexmask_rt.core import onnxruntime_library as f; print(f())')" \
    "${args[@]}" > "$work/x86.json"
run "$build/chexmask-rt-c" "${args[@]}" > "$work/aarch64.json"   # the linked libonnxruntime

highest() {  # the highest version of a symbol family that the aarch64 binaries need
    aarch64-linux-gnu-objdump -T "$build/libchexmask_rt.so" "$build/chexmask-rt-c" "$build/chexmask-rt-tests" \
        | grep -o "$1_[0-9.]*" | sort -u -V | tail -n 1
}
{
    echo "aarch64 cross-build ($(date -u +%Y-%m-%d), $(aarch64-linux-gnu-g++ --version | head -n 1), $(qemu-aarch64 --version | head -n 1))"
    echo "onnxruntime: $(basename "$ort_lib") from $(basename "$work"/wheel/onnxruntime-*.whl)"
    echo "C++ tests under qemu: $(echo "$tests_out" | tail -n 1)"
    "$python" - "$work/x86.json" "$work/aarch64.json" <<'EOF'
import json, sys
import numpy as np
x86, arm = (json.load(open(p)) for p in sys.argv[1:3])
x86, arm = (v if isinstance(v, list) else [v] for v in (x86, arm))
worst = 0.0 if len(x86) == len(arm) else float("inf")  # zip would compare the fewer silently
for field in ("landmarks", "landmarks_std", "landmarks_mu"):
    d = max(float(np.abs(np.array(a[field]) - np.array(b[field])).max()) for a, b in zip(x86, arm))
    worst = max(worst, d)
    print(f"{field}: max |aarch64 - x86| = {d:.2e} px over {len(x86)} images (K={x86[0]['samples']}, seed 0, "
          f"second look {x86[0]['second_look']['look']})")
print("identical JSON:", open(sys.argv[1]).read() == open(sys.argv[2]).read())
print(f"within 1e-3 px of x86 ({len(arm)} of {len(x86)} images answered): {'yes' if worst <= 1e-3 else 'NO'}")
EOF
    echo "highest versions needed by libchexmask_rt.so, chexmask-rt-c, chexmask-rt-tests: $(highest GLIBC) $(highest GLIBCXX)"
    echo "highest glibc needed by $(basename "$ort_lib"): $(aarch64-linux-gnu-objdump -T "$ort_lib" | grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -n 1)"
} | tee "$work/result.txt"
grep -q "within 1e-3 px of x86 .*: yes" "$work/result.txt" \
    || { echo "cross_aarch64: the aarch64 answers are not within 1e-3 px of x86's (above)" >&2; exit 1; }
