"""One distribution of chexmask-rt (the sdist or the wheel) installed in a fresh virtual environment,
then used from a folder away from this checkout, so that only the installed package can answer.
tests/test_release.py checks the sdist with it, tests/test_wheel.py the wheel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from chexmask_rt.notice import INTENDED_USE

from conftest import REPO

# nothing of this checkout may leak in
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
SAMPLE = REPO / "runtime" / "chexmask_rt" / "samples" / "chest_pa_cc0.jpg"


def install(root: Path, requirement: str) -> Path:
    """A new venv under ROOT with REQUIREMENT pip-installed; returns the venv's folder."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", requirement], env=CLEAN_ENV,
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv


def installed_package(venv: Path, work: Path) -> dict:
    """What the venv's chexmask_rt says of itself, asked from WORK: its folder, the backend load()
    picks and what it checked the shipped engine against, the loaded _core's file, the licence
    metadata and the licence files."""
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import chexmask_rt, importlib.metadata as m, json, pathlib\n"
         "from chexmask_rt import _core\n"
         "seg = chexmask_rt.load()\n"
         "print(json.dumps({'package': str(pathlib.Path(chexmask_rt.__file__).parent),"
         " 'backend': seg.backend, 'integrity': seg.integrity, 'core': _core.__file__,"
         " 'license': m.metadata('chexmask-rt')['License'],"
         " 'license_files': sorted(p.name for p in m.distribution('chexmask-rt').files"
         " if p.name in ('LICENSE', 'NOTICE'))}))"],
        cwd=work, env=CLEAN_ENV, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout)


def check_segments_the_sample(venv: Path, work: Path, segmenter, version: str) -> None:
    """The venv's console script reports VERSION and segments its own copy of the bundled sample as
    SEGMENTER (this checkout's) does."""
    exe = venv / "bin" / "chexmask-rt"
    reported = subprocess.run([str(exe), "--version"], cwd=work, env=CLEAN_ENV, capture_output=True, text=True)
    assert reported.stdout.strip() == f"chexmask-rt {version}"
    sample = Path(installed_package(venv, work)["package"]) / "samples" / SAMPLE.name
    out = work / "sample.json"
    proc = subprocess.run([str(exe), "predict", str(sample), "--samples", "8", "--json", str(out)], cwd=work,
                          env=CLEAN_ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    want = segmenter.predict(SAMPLE, samples=8)
    assert got["intended_use"] == INTENDED_USE and got["model"] == want.model
    np.testing.assert_allclose(got["landmarks"], want.landmarks, atol=1e-3)
    np.testing.assert_allclose(got["landmarks_std"], want.landmarks_std, atol=1e-3)
