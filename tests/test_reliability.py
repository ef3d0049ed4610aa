"""Reliability: thread safety with the quality flag, no memory growth, and the calibrated quality flag."""
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.image_io import read_image
from benchmarks.leak_check import rss_mb
from chexmask_rt.quality import calibration_path
from reference import to_gray

from conftest import SHARED


@pytest.fixture(scope="module")
def arrays(shared_images):
    return [read_image(p) for p in shared_images]


def test_one_segmenter_shared_by_8_threads_equals_sequential(arrays):
    seg = chexmask_rt.load(threads=1)
    jobs = [(i % len(arrays), i) for i in range(16)]  # (image, seed): different work in flight at once
    sequential = {job: seg.predict(arrays[job[0]], samples=6, seed=job[1]) for job in jobs}
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda job: (job, seg.predict(arrays[job[0]], samples=6, seed=job[1])), jobs))
    for job, r in threaded:
        np.testing.assert_array_equal(r.landmarks, sequential[job].landmarks)
        np.testing.assert_array_equal(r.landmarks_std, sequential[job].landmarks_std)
        np.testing.assert_array_equal(r.latent_sigma, sequential[job].latent_sigma)
        assert r.quality == sequential[job].quality


def test_sequential_predictions_do_not_grow_memory(example1):
    """A small version of benchmarks/leak_check.py (which runs 2,000): files and arrays."""
    seg = chexmask_rt.load(threads=1)
    small = np.ascontiguousarray(read_image(example1)[::3, ::3])
    dicom = SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"

    def one(i):
        item = (example1, dicom)[i % 2] if i % 5 == 0 else small
        return seg.predict(item, samples=8, seed=i)

    for i in range(40):
        one(i)
    before = rss_mb()
    for i in range(150):
        one(i)
    growth = rss_mb() - before
    assert growth < 10, f"RSS grew by {growth:.1f} MB over 150 predictions"


def test_in_distribution_is_not_flagged_and_corrupted_is(default_segmenter, arrays):
    assert default_segmenter.predict(arrays[0]).quality.calibrated
    for img in arrays:
        q = default_segmenter.predict(img).quality
        assert q.calibrated and not q.flag, q.reason
    gray = to_gray(arrays[1])[0]
    for bad in (255 - gray, np.ascontiguousarray(np.rot90(gray)), np.full((512, 512), 128, np.uint8)):
        q = default_segmenter.predict(bad).quality
        assert q.flag and "above the calibrated threshold" in q.reason and "mean node std" in q.reason


def test_other_models_are_not_calibrated(tmp_path, example1):
    engine = tmp_path / "copy.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    q = chexmask_rt.load(engine).predict(example1, samples=3).quality
    assert not q.calibrated and not q.flag and q.reason.startswith("not calibrated")
    # a calibration file beside it, but for another checkpoint: still not calibrated
    shipped = json.loads(calibration_path(chexmask_rt.default_model_path()).read_text())
    calibration_path(engine).write_text(json.dumps({"0" * 64: next(iter(shipped.values()))}))
    assert not chexmask_rt.load(engine).predict(example1, samples=3).quality.calibrated
    # the shipped thresholds, keyed by this engine's checkpoint: calibrated
    calibration_path(engine).write_text(json.dumps(shipped))
    assert chexmask_rt.load(engine).predict(example1, samples=3).quality.calibrated


def test_malformed_calibration_file_is_a_model_error(tmp_path):
    engine = tmp_path / "m.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    calibration_path(engine).write_text("{not json")
    with pytest.raises(chexmask_rt.ModelError, match=r"m\.quality\.json: malformed quality calibration file"):
        chexmask_rt.load(engine)
