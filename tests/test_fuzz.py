"""Fuzzing the input path: whatever bytes or arrays come in, the answer is a Result or a typed error.

A crash (segfault in the native core) kills the test run; a hang is caught by a watchdog that
dumps the stacks and exits. Example counts are kept small so this file runs in well under a minute;
the 10,000-input seeded fuzz (tests/fuzz_public_api.py) runs in scripts/sanitize_and_fuzz.sh.
"""
import faulthandler
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chexmask_rt
from chexmask_rt.image_io import read_image

from conftest import IMAGES, SHARED
import fuzz_public_api

SUFFIXES = ["", ".png", ".jpg", ".tif", ".bmp", ".dcm"]
SEEDS = [IMAGES / "nih_00000001_000_512.png", IMAGES / "wiki_example3_icd_chest_xray.png",
         SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"]
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(240, exit=True)  # a hang must fail CI, not stall it
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def segmenters():
    return [chexmask_rt.load()]


def check_predict(segmenters, item) -> None:
    for seg in segmenters:
        try:
            r = seg.predict(item, samples=2)
        except chexmask_rt.InputError as exc:
            assert str(exc)  # a reason, not an empty message
            continue
        assert r.landmarks.shape == (120, 2) and np.all(np.isfinite(r.landmarks))
        assert np.all(np.isfinite(r.landmarks_std)) and r.quality is not None


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_as_files(tmp_path_factory, segmenters, data, suffix):
    path = tmp_path_factory.mktemp("fz") / f"f{suffix}"
    path.write_bytes(data)
    check_predict(segmenters, path)


@FUZZ
@given(seed=st.sampled_from(SEEDS), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                         max_size=8))
def test_corrupted_real_files(tmp_path_factory, segmenters, seed, cut, flips):
    """Real PNG/DICOM files, truncated and with bytes overwritten: the decoders' error paths."""
    data = bytearray(seed.read_bytes()[:max(1, int(len(seed.read_bytes()) * cut))])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    path = tmp_path_factory.mktemp("fz") / f"c{seed.suffix}"
    path.write_bytes(bytes(data))
    try:
        read_image(path)
    except chexmask_rt.InputError as exc:
        assert str(path) in str(exc)  # the message names the file
    check_predict(segmenters, path)


DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int16, np.int32, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64])
SHAPES = st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                   st.tuples(st.integers(28, 70), st.integers(28, 70)),
                   st.tuples(st.integers(30, 60), st.integers(30, 60), st.sampled_from([1, 2, 3, 4, 5])))


@FUZZ
@given(array=hnp.arrays(DTYPES, SHAPES, elements=None, fill=None), transpose=st.booleans())
def test_random_arrays(segmenters, array, transpose):
    if transpose and array.ndim >= 2:
        array = array.T  # non-contiguous memory
    check_predict(segmenters, array)


@FUZZ
@given(array=hnp.arrays(np.float32, st.tuples(st.integers(32, 64), st.integers(32, 64)),
                        elements=st.floats(-0.5, 1.5, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0])))
def test_float_arrays_with_bad_values(segmenters, array):
    check_predict(segmenters, array)


def test_seeded_fuzz_of_the_public_api(tmp_path, capsys):
    """A slice of the CI fuzz (other input numbers than CI's): files, arrays, engines, calibration files and masks."""
    status = fuzz_public_api.main(["--inputs", "150", "--first", "50000", "--keep", str(tmp_path),
                                   "--report", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0, report["untyped_failures"]
    assert report["ran"] == 150 and set(report["inputs_by_kind"]) == {"file", "array", "engine", "calibration", "mask"}
    assert report["outcomes"].get("ok", 0) > 0 and report["outcomes"].get("InputError", 0) > 0


def test_the_fuzz_reports_an_untyped_error(tmp_path, monkeypatch):
    """The fuzz can fail: an error that is not a ChexmaskError is counted and fails the run."""
    def broken(self, image, **kwargs):
        raise ValueError("not typed")

    monkeypatch.setattr(chexmask_rt.model.Segmenter, "predict", broken)
    status = fuzz_public_api.main(["--inputs", "5", "--backends", "native", "--keep", str(tmp_path),
                                   "--report", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 1 and report["outcomes"].get("untyped ValueError", 0) > 0
    assert report["untyped_failures"][0]["error"] == "ValueError: not typed"
