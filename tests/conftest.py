"""Shared test fixtures. Tests read ../shared (parity fixtures, real images);
it exists in CI beside the clone, and its absence is an error, not a skip."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# A suite started in the background of a shell (nohup, `cmd &`) inherits Ctrl-C ignored, and Python then
# keeps it ignored: the Ctrl-C tests saw their runs finish with 0. Restored here, for this process and,
# since a handler (unlike "ignored") is reset at exec, for the commands the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "upstream"
IMAGES = SHARED / "data" / "images"
FIXTURE_NAMES = ["skip_256", "noskip_256"]


def write_results(path: Path, columns, rows) -> None:
    """A results.csv of ``columns`` and ``rows`` (dicts), as a batch of that schema writes it: an older
    release's folder, or one a test edits."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def skip_or_fail_without_native(reason: str, **kwargs) -> None:
    """Skip a native-core test when the core is not built, except where it must be
    (CHEXMASK_RT_REQUIRE_NATIVE=1, set by scripts/setup_and_test.sh and CI): then fail."""
    if os.environ.get("CHEXMASK_RT_REQUIRE_NATIVE") == "1":
        pytest.fail(f"native core required but unavailable: {reason}", pytrace=False)
    pytest.skip(reason, **kwargs)


def wait_child(pid: int, seconds: float = 20.0) -> int | None:
    """The child's exit code, or None (after killing it) when it has not ended in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def read_with_traced_peak(path: Path) -> tuple[np.ndarray, int]:
    """``read_image(path)`` and the peak of the memory Python and numpy allocated during it
    (tracemalloc), after a first read that loads the readers' plugins and tables outside the count."""
    import tracemalloc

    from chexmask_rt.image_io import read_image

    read_image(path)
    tracemalloc.start()
    try:
        image = read_image(path)
        return image, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (the repo expects ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def shared_images() -> list[Path]:
    return sorted(p for p in _require(IMAGES).iterdir() if p.suffix in (".png", ".jpg"))


@pytest.fixture(scope="session")
def example1() -> Path:
    return _require(IMAGES / "wiki_example1_normal_PA.jpg")


@pytest.fixture(scope="session", params=FIXTURE_NAMES)
def fixture_dir(request) -> Path:
    return _require(FIXTURES / request.param)


def reference(fixture: Path) -> dict[str, np.ndarray]:
    with np.load(fixture / "reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Engines (with the raw-samples output) exported once per fixture: {name: path}."""
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_export.onnx_export import build_network, export_onnx

    out = {}
    root = tmp_path_factory.mktemp("engines")
    for name in FIXTURE_NAMES:
        ckpt = load_checkpoint(_require(FIXTURES / name))
        path = root / f"{name}.onnx"
        export_onnx(build_network(ckpt), path, checkpoint_sha256=ckpt.sha256, samples_output=True)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def default_segmenter():
    import chexmask_rt

    return chexmask_rt.load()


@pytest.fixture(scope="session")
def sdist(tmp_path_factory) -> Path:
    """This checkout's source distribution, built once: test_release reads it, test_wheel builds the
    wheel from it and installs that."""
    dist = tmp_path_factory.mktemp("sdist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(REPO)], check=True,
                   capture_output=True, text=True)
    (path,) = dist.glob("*.tar.gz")
    return path
