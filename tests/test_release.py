"""Release basics: one version source, licences, the intended-use notice, a plain --help, and a
source distribution that installs in a fresh venv and segments the bundled sample."""
import json
import os
import re
import subprocess
import sys
import tarfile
from importlib.metadata import metadata
from pathlib import Path

import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.cli import build_parser
from chexmask_rt.notice import INTENDED_USE
from chexmask_rt.overlay import draw_overlay

from conftest import REPO, skip_or_fail_without_native

VERSION = (REPO / "VERSION").read_text().strip()
SAMPLE = REPO / "runtime" / "chexmask_rt" / "samples" / "chest_pa_cc0.jpg"
COMMANDS = ("predict", "batch", "merge", "export", "info")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


def test_version_file_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)


def test_python_cli_and_core_report_the_version_file():
    assert chexmask_rt.__version__ == VERSION  # the installed metadata, made from VERSION by setup.py
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"chexmask-rt {VERSION}"
    try:
        from chexmask_rt import _core
    except ImportError as exc:
        skip_or_fail_without_native(f"native core not built: {exc}")
    assert _core.__version__ == VERSION  # compiled in by CMake from the same file


def test_the_version_is_written_nowhere_else():
    # every build file reads VERSION; a literal copy would drift at the next release
    for rel in ("setup.py", "pyproject.toml", "CMakeLists.txt", "cpp/CMakeLists.txt", "runtime/chexmask_rt/__init__.py",
                "cpp/include/chexmask_rt/chexmask_rt.hpp", "cpp/include/chexmask_rt/chexmask_rt_c.h", "cpp/src/version.cpp",
                "cpp/src/c_api.cpp"):
        assert VERSION not in (REPO / rel).read_text(), rel


def test_licence_is_reported_and_shipped():
    meta = metadata("chexmask-rt")
    assert meta["License"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    notice = (REPO / "NOTICE").read_text()
    assert "CC BY-SA 4.0" in notice and "default.onnx" in notice


def test_help_is_plain_text_and_lists_every_command():
    proc = cli("--help")
    assert proc.returncode == 0
    assert "``" not in proc.stdout and ":mod:" not in proc.stdout
    listed = set(re.findall(r"^    (\S+)", proc.stdout, re.M))  # the commands block; wrapped help is indented deeper
    assert listed == set(COMMANDS)
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)
    assert INTENDED_USE in proc.stdout.lower()


def test_the_native_core_needs_no_system_opencv():
    """The core resizes with its own code (cpp/src/resize.cpp): neither the Python module nor the
    shared library may load libopencv, so an installed package needs no system OpenCV."""
    try:
        from chexmask_rt import _core
    except ImportError as exc:
        skip_or_fail_without_native(f"native core not built: {exc}")
    libraries = [Path(_core.__file__), *sorted((REPO / "build" / "cpp").glob("libchexmask_rt.so*"))[:1]]
    assert len(libraries) == 2, "build/cpp/libchexmask_rt.so is missing: run scripts/setup_and_test.sh"
    for library in libraries:
        needed = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
        assert "opencv" not in needed.lower(), (library, needed)


def test_json_says_research_use(default_segmenter, example1):
    assert default_segmenter.predict(example1, samples=3).to_dict()["intended_use"] == INTENDED_USE


def test_csv_rows_say_research_use(default_segmenter, example1):
    from chexmask_rt.csv_output import csv_row

    assert csv_row(default_segmenter.predict(example1, samples=3))["Intended Use"] == INTENDED_USE


def test_core_declares_the_same_notice():
    try:
        from chexmask_rt import _core
    except ImportError as exc:
        skip_or_fail_without_native(f"native core not built: {exc}")
    assert _core.INTENDED_USE == INTENDED_USE


def test_overlay_prints_the_notice_at_its_foot(default_segmenter):
    gray = np.full((600, 500), 128, np.uint8)
    r = default_segmenter.predict(gray, samples=3)
    foot = draw_overlay(gray, r)[-40:, :200]
    # the notice is white text on a black box over the mid-gray image
    assert (foot == 0).all(axis=2).mean() > 0.2 and (foot == 255).all(axis=2).any()


def test_sdist_installs_in_a_fresh_venv_and_segments_the_sample(tmp_path, default_segmenter):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(REPO)], check=True,
                   capture_output=True, text=True)
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == f"chexmask_rt-{VERSION}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("CMakeLists.txt", "VERSION", "LICENSE", "NOTICE", "cpp/CMakeLists.txt", "cpp/src/engine.cpp",
                   "cpp/include/chexmask_rt/chexmask_rt.hpp", "cpp/python/core_module.cpp",
                   "runtime/chexmask_rt/models/default.onnx"):
        assert needed in names, needed

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of this checkout may leak in
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"{sdist}[cpu]"], env=env,
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]

    work = tmp_path / "elsewhere"  # away from the checkout, so only the installed package can answer
    work.mkdir()
    exe = venv / "bin" / "chexmask-rt"
    version = subprocess.run([str(exe), "--version"], cwd=work, env=env, capture_output=True, text=True)
    assert version.stdout.strip() == f"chexmask-rt {VERSION}"
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import chexmask_rt, importlib.metadata as m, pathlib; "
         "print(pathlib.Path(chexmask_rt.__file__).parent); print(chexmask_rt.load().backend); "
         "print(m.metadata('chexmask-rt')['License']); "
         "print(sorted(p.name for p in m.distribution('chexmask-rt').files if p.name in ('LICENSE', 'NOTICE')))"],
        cwd=work, env=env, capture_output=True, text=True, check=True)
    package, backend, licence, licence_files = probe.stdout.splitlines()
    assert Path(package).is_relative_to(venv) and backend == "native"  # the sdist built the core
    assert licence == "Apache-2.0" and licence_files == "['LICENSE', 'NOTICE']"

    sample = Path(package) / "samples" / "chest_pa_cc0.jpg"
    out = work / "sample.json"
    proc = subprocess.run([str(exe), "predict", str(sample), "--samples", "8", "--json", str(out)], cwd=work, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    want = default_segmenter.predict(SAMPLE, samples=8)
    assert got["intended_use"] == INTENDED_USE and got["model"] == want.model
    np.testing.assert_allclose(got["landmarks"], want.landmarks, atol=1e-3)
    np.testing.assert_allclose(got["landmarks_std"], want.landmarks_std, atol=1e-3)
