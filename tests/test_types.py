"""The package ships py.typed, so its annotations are an interface: mypy finds no error in the package
(pyproject.toml's [tool.mypy]), and a user's program sees the public API's types, not Any."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# each line's type is asserted exactly: a type that decayed to Any fails as much as a wrong one
USER_PROGRAM = """
    from typing import Any

    import numpy as np
    from typing_extensions import assert_type

    import chexmask_rt
    from chexmask_rt import (ChexmaskError, InputError, Measures, ModelError, NonFiniteOutputError,
                             OutOfMemoryError, Quality, Result, SecondLook, Segmenter)

    seg = chexmask_rt.load(threads=1, max_pixels=10_000_000)
    assert_type(seg, Segmenter)
    r = seg.predict("chest.png", samples=10, seed=1, second_look=False)
    assert_type(r, Result)
    assert_type(seg.predict(np.zeros((64, 64), np.uint16), bit_depth=12), Result)
    assert_type(seg.predict_batch(["a.png", np.zeros((64, 64), np.uint8)], batch_size=2), list[Result])
    for image, outcome in seg.predict_iter(["a.png", "b.png"]):
        assert_type(outcome, Result | ChexmaskError)

    assert_type(r.landmarks, np.ndarray)
    assert_type(r.landmarks_std, np.ndarray)
    assert_type(r.latent_sigma, np.ndarray)
    assert_type(r.landmark_samples, np.ndarray | None)
    assert_type(r.height, int)
    assert_type(r.samples, int)
    assert_type(r.model, str)
    assert_type(r.image, str | None)
    assert_type(r.bit_depth, int | None)
    assert_type(r.second_look, SecondLook | None)
    assert_type(r.quality, Quality | None)
    if r.quality is not None:
        assert_type(r.quality.flag, bool)
        assert_type(r.quality.reason, str)
        assert_type(r.quality.to_dict(), dict[str, Any])
    assert_type(r.mean_node_std, float)
    assert_type(r.spread_measured, bool)
    assert_type(r.node_uncertainty, np.ndarray)
    assert_type(r.heart, np.ndarray)
    assert_type(r.to_dict(), dict[str, Any])
    assert_type(r.measures(), Measures)
    assert_type(r.measures().ctr, float | None)
    assert_type(r.organ_masks(), dict[str, np.ndarray])

    try:
        seg.predict("chest.png")
    except NonFiniteOutputError as exc:
        assert_type(exc.index, int | None)
        assert_type(exc.reason, str | None)
    except (InputError, OutOfMemoryError) as exc:
        assert_type(exc, InputError | OutOfMemoryError)
    except ChexmaskError as exc:
        assert_type(str(exc), str)
"""

# mistakes a user makes, each an error: the line's comment says which
USER_MISTAKES = """
    import chexmask_rt

    seg = chexmask_rt.load()
    r = seg.predict("chest.png")
    r.landmarkz  # attr-defined
    r.landmarks = r.landmarks_std  # misc
    seg.predict("chest.png", samples="50")  # arg-type
    seg.predict_batch("chest.png", sample=50)  # call-arg
    r.quality.flag  # union-attr
    chexmask_rt.lode()  # attr-defined
"""


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache new to this session, shared by this module's runs: the user program reads the package
    from the package run's cache (about 20 s saved), and no run reads a cache another tree left."""
    return tmp_path_factory.mktemp("mypy_cache")


def _mypy(cache: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mypy`` with the repository's configuration, over ``files`` (none: the package)."""
    # MYPYPATH: `import chexmask_rt` in a user program is this tree's package, not an installed copy
    env = {**os.environ, "MYPYPATH": str(REPO / "runtime")}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                           "--cache-dir", str(cache), *map(str, files)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_package_type_checks(mypy_cache: Path) -> None:
    proc = _mypy(mypy_cache)
    assert proc.returncode == 0, f"mypy found errors in runtime/chexmask_rt:\n{proc.stdout}{proc.stderr}"


def test_a_user_program_sees_the_public_types(mypy_cache: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "user_program.py", tmp_path / "user_mistakes.py"
    good.write_text(textwrap.dedent(USER_PROGRAM))
    bad.write_text(textwrap.dedent(USER_MISTAKES))
    proc = _mypy(mypy_cache, good, bad)
    output = proc.stdout + proc.stderr
    errors = re.findall(r"^(.+?):(\d+): error: .*\[([\w-]+)\]$", proc.stdout, re.M)
    found = {(Path(path).name, int(line), code) for path, line, code in errors}
    expected = {(bad.name, number, line.rsplit("# ", 1)[1])
                for number, line in enumerate(bad.read_text().splitlines(), 1) if "  # " in line}
    assert found == expected, f"mypy's errors are not the mistakes' (and only those):\n{output}"
    assert proc.returncode == 1, output
