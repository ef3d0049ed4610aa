#!/usr/bin/env bash
# Installs the aarch64 wheel (scripts/build_wheel.sh --arch aarch64) with its [cpu] dependencies for
# aarch64, runs it under qemu-user with Debian's arm64 CPython, segments the bundled sample there and
# compares the landmarks with this checkout's x86 answer (same image, K and seed). Prints (and writes
# to WORK/result.txt) the comparison.
#
#   bash scripts/check_wheel_aarch64.sh WHEEL [WORK]      # default WORK: build-wheel/aarch64-check/
#
# Needs: qemu-user (apt); apt-get and Debian's archive (python3.X:arm64 and its libraries, unpacked
# into WORK/sysroot with a private apt setup); PyPI (numpy, onnxruntime, opencv-python-headless...
# for aarch64). $PYTHON: the venv's python (default .venv/bin/python), the same CPython minor as the
# wheel's. Under emulation one engine call takes about a CPU minute.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
wheel=$(realpath "${1:?usage: check_wheel_aarch64.sh WHEEL [WORK]}")
work=${2:-build-wheel/aarch64-check}
mkdir -p "$work"
work=$(cd "$work" && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
pyver=$("$python" -c "import sys; print('%d.%d' % sys.version_info[:2])")
samples=${CHEXMASK_RT_CROSS_SAMPLES:-8}
command -v qemu-aarch64 >/dev/null || { echo "check_wheel_aarch64: qemu-aarch64 missing: apt-get install qemu-user" >&2; exit 2; }
case $(basename "$wheel") in
    *-cp${pyver/./}-*aarch64.whl) ;;
    *) echo "check_wheel_aarch64: $(basename "$wheel") is not an aarch64 wheel for CPython $pyver" >&2; exit 2 ;;
esac

# --- the target: Debian arm64 CPython, and libstdc++ (numpy's and onnxruntime's wheels need the system's,
# as manylinux allows) -----------------------------------------------------------------------------------
sysroot=$work/sysroot
packages="python$pyver libstdc++6"
if [ "$(cat "$sysroot/.complete" 2>/dev/null)" != "$packages" ]; then
    rm -rf "$sysroot"
    # shellcheck source=cpp/cmake/private_apt.sh
    . cpp/cmake/private_apt.sh
    suite=$(private_apt_debian_suite)  # its own line: set -e stops on its failure
    private_apt_init "$work/apt" "" "$suite" arm64
    # shellcheck disable=SC2086
    apt-get -c "$apt_conf" -qq -y --no-install-recommends install --download-only $packages > /dev/null
    for deb in "$work"/apt/cache/archives/*.deb; do dpkg -x "$deb" "$sysroot"; done
    echo "$packages" > "$sysroot/.complete"
fi
# shellcheck source=scripts/qemu_aarch64.sh
. scripts/qemu_aarch64.sh
qemu_aarch64_cpuinfo "$sysroot"

# --- the wheel and its dependencies, as pip on an aarch64 machine would pick them -----------------------
site=$work/site
rm -rf "$site"
"$python" -m pip install --quiet --target "$site" --platform manylinux_2_28_aarch64 --python-version "$pyver" \
    --implementation cp --only-binary=:all: "${wheel}[cpu]"

# --- the same segmentation on both sides ---------------------------------------------------------------
cat > "$work/segment.py" <<'EOF'
import json, sys, time
import chexmask_rt
from chexmask_rt import _core
start = time.monotonic()
seg = chexmask_rt.load()
result = seg.predict(sys.argv[1], samples=int(sys.argv[2]), seed=0, second_look=True)  # both calls, the crop
json.dump({"backend": seg.backend, "core": _core.__file__, "seconds": time.monotonic() - start,
           "result": result.to_dict()}, open(sys.argv[3], "w"))
EOF
sample=$repo/runtime/chexmask_rt/samples/chest_pa_cc0.jpg
elsewhere=$work/elsewhere   # away from the checkout: only the installed wheel can answer
mkdir -p "$elsewhere"
(cd "$elsewhere" && env -u PYTHONPATH qemu-aarch64 -L "$sysroot" -E PYTHONPATH="$site" -E PYTHONNOUSERSITE=1 \
    "$sysroot/usr/bin/python$pyver" "$work/segment.py" "$sample" "$samples" "$work/aarch64.json")
"$python" "$work/segment.py" "$sample" "$samples" "$work/x86.json"

{
    echo "aarch64 wheel under qemu ($(date -u +%Y-%m-%d), $(qemu-aarch64 --version | head -n 1)): $(basename "$wheel")"
    debs=("$work"/apt/cache/archives/python"$pyver"-minimal_*.deb)
    ort=("$site"/onnxruntime-*.dist-info)
    python_version=$(basename "${debs[0]}" | cut -d_ -f2)
    echo "target: Debian arm64 python$pyver $python_version; $(basename "${ort[0]}" .dist-info)"
    "$python" - "$work/x86.json" "$work/aarch64.json" "$site" <<'EOF'
import json, sys
import numpy as np
x86, arm = (json.load(open(p)) for p in sys.argv[1:3])
assert arm["backend"] == "native" and arm["core"].startswith(sys.argv[3]), arm["core"]
print(f"aarch64: backend {arm['backend']}, core {arm['core'][len(sys.argv[3]) + 1:]}, "
      f"{arm['seconds']:.0f} s to load and segment under qemu")
a, b = x86["result"], arm["result"]
worst = 0.0
for field in ("landmarks", "landmarks_std"):
    d = float(np.abs(np.array(a[field]) - np.array(b[field])).max())
    worst = max(worst, d)
    print(f"{field}: max |aarch64 wheel - x86 checkout| = {d:.2e} px (sample, K={a['samples']}, seed 0, "
          f"{a['second_look']['look']})")
print(f"within 1e-3 px of x86: {'yes' if worst <= 1e-3 else 'NO'}")
EOF
} | tee "$work/result.txt"
grep -q "within 1e-3 px of x86: yes" "$work/result.txt" \
    || { echo "check_wheel_aarch64: the aarch64 wheel's answer is not within 1e-3 px of x86's (above)" >&2; exit 1; }
