"""Release basics: one version source, licences, the intended-use notice, a plain --help, and a
source distribution that holds what a build needs (tests/test_wheel.py builds, installs and runs it)."""
import re
import subprocess
import sys
import tarfile
from importlib.metadata import metadata
from pathlib import Path

import numpy as np

import chexmask_rt
from chexmask_rt.cli import build_parser
from chexmask_rt.notice import INTENDED_USE
from chexmask_rt.overlay import draw_overlay

from conftest import REPO, skip_or_fail_without_native

VERSION = (REPO / "VERSION").read_text().strip()
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


def test_the_sdist_holds_what_a_build_needs_and_no_tests(sdist):
    """What the sdist must carry. That it builds, installs in a fresh venv and segments the sample is
    tests/test_wheel.py's: its wheel is built from this sdist by the same PEP 517 build a user's
    `pip install chexmask_rt-*.tar.gz` runs (an isolated scikit-build-core build of its own files),
    and the system compiler's build of the same CMake is the editable install every CI run makes; a
    second compile here cost CI about 80 s and found nothing those two do not."""
    assert sdist.name == f"chexmask_rt-{VERSION}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("CMakeLists.txt", "VERSION", "LICENSE", "NOTICE", "pyproject.toml", "setup.py",
                   "cpp/CMakeLists.txt", "cpp/src/engine.cpp", "cpp/include/chexmask_rt/chexmask_rt.hpp",
                   "cpp/python/core_module.cpp", "runtime/chexmask_rt/models/default.onnx",
                   "runtime/chexmask_rt/models/default.onnx.sha256"):
        assert needed in names, needed
    # the test files came without their conftest and helpers: a collection error, not a test suite
    assert not [n for n in names if n.startswith("tests/")]
