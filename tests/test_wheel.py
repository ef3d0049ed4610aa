"""The portable wheel (scripts/build_wheel.sh): manylinux_2_28, a core that needs glibc 2.28 at most,
no C++ library or OpenCV of the system; installed in a fresh venv it segments the bundled sample.
And where no wheel fits, the sdist's build names the missing tool in one line."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fresh_venv
from conftest import REPO

VERSION = (REPO / "VERSION").read_text().strip()
PYTHON_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
# the time box of the wheel build (zig's libc++ on a new machine, then the core): about 2 min on CI's
# 2 cores; the bound only stops a hung build from eating CI's budget
BUILD_TIMEOUT_S = 900


def _load_wheel_elf():
    """scripts/wheel_elf.py: the ELF report and manylinux_2_28 check that scripts/build_wheel.sh runs
    (pyelftools: the [wheel] extra)."""
    spec = importlib.util.spec_from_file_location("wheel_elf", REPO / "scripts" / "wheel_elf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wheel_elf = _load_wheel_elf()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, sdist) -> Path:
    """The wheel build_wheel.sh makes of the sdist, both named from the caller's folder (they were taken
    from the checkout's), into a folder holding another release's wheel, which must stay (every
    chexmask_rt wheel of the platform was deleted)."""
    here = tmp_path_factory.mktemp("caller")
    out = here / "wheel house"
    out.mkdir()
    other = out / "chexmask_rt-0.0.1-cp39-cp39-manylinux_2_28_x86_64.whl"
    other.write_bytes(b"another release's wheel")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build_wheel.sh"), "--sdist", os.path.relpath(sdist, here),
                           out.name], cwd=here, env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert other.read_bytes() == b"another release's wheel"
    (path,) = (p for p in out.glob("*.whl") if p != other)
    return path


def test_the_wheel_is_manylinux_2_28_and_at_most_40_mb(wheel):
    assert wheel.name == f"chexmask_rt-{VERSION}-{PYTHON_TAG}-{PYTHON_TAG}-manylinux_2_28_x86_64.whl"
    assert wheel.stat().st_size <= 40 * 2**20
    shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True,
                           check=True).stdout
    (glibc,) = re.findall(r'consistent\s+with\s+the\s+following\s+platform\s+tag:\s+"manylinux_(\d+)_(\d+)_x86_64"',
                          shown)
    assert tuple(map(int, glibc)) <= wheel_elf.LIMITS["GLIBC"], shown


def test_the_wheels_core_needs_only_glibc_2_28_and_no_system_opencv(wheel):
    report = wheel_elf.wheel_elfs(str(wheel))
    assert f"chexmask_rt/_core.cpython-{PYTHON_TAG[2:]}-x86_64-linux-gnu.so" in report, sorted(report)
    assert all(needs["machine"] == "EM_X86_64" for needs in report.values())
    assert wheel_elf.beyond_manylinux_2_28(report) == []


def test_the_limits_check_flags_a_core_built_for_this_machine():
    """The check above against this checkout's own _core, built with the system's g++ and glibc 2.36:
    it must name that core's newer glibc and its libstdc++."""
    from chexmask_rt import _core

    problems = wheel_elf.beyond_manylinux_2_28({"_core": wheel_elf.elf_needs(Path(_core.__file__).read_bytes())})
    assert any("GLIBC_2." in p for p in problems) and "_core: needs libstdc++.so.6" in problems, problems


def test_the_wheel_installs_in_a_fresh_venv_and_segments_the_sample(tmp_path, wheel, default_segmenter):
    venv = fresh_venv.install(tmp_path, f"{wheel}[cpu]")
    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = fresh_venv.installed_package(venv, work)
    assert Path(probe["core"]).is_relative_to(venv) and probe["backend"] == "native" and probe["integrity"] == "pinned"
    assert probe["license"] == "Apache-2.0" and probe["license_files"] == ["LICENSE", "NOTICE"]
    # as loaded on this machine: the dynamic loader finds everything, and no OpenCV
    ldd = subprocess.run(["ldd", probe["core"]], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd and "opencv" not in ldd.lower() and "libstdc++" not in ldd, ldd
    fresh_venv.check_segments_the_sample(venv, work, default_segmenter, VERSION)


def pip_install_with_path(sdist: Path, tmp_path: Path, programs: list[str],
                          cmake_args: str | None = None) -> subprocess.CompletedProcess:
    """pip install SDIST with a PATH that holds only PROGRAMS (links to this machine's), and CMAKE_ARGS."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in programs:
        (bin_dir / program).symlink_to(shutil.which(program))
    env = {k: v for k, v in fresh_venv.CLEAN_ENV.items() if k not in ("CXX", "CC", "CMAKE_ARGS")}
    env["PATH"] = str(bin_dir)
    if cmake_args is not None:
        env["CMAKE_ARGS"] = cmake_args
    return subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "target"),
                           str(sdist)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("programs, cmake_args, missing", [
    ([], None, "needs CMake >= 3.18: `cmake` is not on PATH"),
    (["cmake"], None, "needs a C++17 compiler: none is on PATH"),
    # CMAKE_ARGS split as a shell would: it was split at every space, so a compiler in a folder with a
    # space was "'/opt/my, the one named" (scripts/build_wheel.sh in such a checkout failed so)
    (["cmake", "c++"], "-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER='/opt/my tools/c++'",
     "needs a C++17 compiler: /opt/my tools/c++, the one named, is not found"),
])
def test_the_sdist_without_a_build_tool_fails_with_one_line_naming_it(sdist, tmp_path, programs, cmake_args, missing):
    proc = pip_install_with_path(sdist, tmp_path, programs, cmake_args)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line.strip() for line in output.splitlines() if missing in line]
    assert len(lines) == 1 and lines[0].startswith("error: chexmask-rt builds its native core from source"), output
    assert "Traceback" not in output and "No such file or directory" not in output, output
