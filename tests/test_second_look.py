"""The second look: a second engine call on a crop around the lungs, pooled with the first, or alone
for wide fields of view. The core's (Result.second_look) against the reference's rules (tests/reference)."""
import csv
import io
import json
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt import core
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.result import Result
from reference import ReferenceSegmenter
from reference.second_look import (CROP_ONLY_BELOW, FILL, chest_square, combine, crop_square, lung_fill,
                                   pooled_moments, second_look_square)

from conftest import REPO, SHARED


def distance_1024(a_px: np.ndarray, b_px: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean landmark distance in px of the 1024 frame (the letterboxed square resized to 1024)."""
    return float(np.linalg.norm(np.asarray(a_px) - np.asarray(b_px), axis=-1).mean() * 1024 / max(shape))


def _ring(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    return np.stack([cx + rx * np.cos(theta), cy + ry * np.sin(theta)], 1)


def test_lung_fill_is_the_larger_share_of_width_or_height():
    lungs = _ring(200, 300, 100, 50)  # 200 x 100 px
    assert lung_fill(lungs, height=400, width=1000) == pytest.approx(0.25)   # 100 / 400 beats 200 / 1000
    assert lung_fill(lungs, height=1000, width=400) == pytest.approx(0.5)


def test_chest_square_is_centred_on_the_lungs_which_span_the_fill():
    left, top, side = chest_square(_ring(500, 400, 160, 120), fill=0.8)
    assert side == 400  # 320 px of lungs / 0.8
    assert (left + side / 2, top + side / 2) == pytest.approx((500, 400), abs=1)


def test_crop_square_is_black_where_it_leaves_the_image():
    gray = np.arange(1, 101, dtype=np.uint16).reshape(10, 10)
    crop = crop_square(gray, -2, 7, 5)
    assert crop.shape == (5, 5) and crop.dtype == np.uint16
    np.testing.assert_array_equal(crop[:3, 2:], gray[7:10, 0:3])
    assert not crop[3:].any() and not crop[:, :2].any()
    assert not crop_square(gray, 20, 20, 4).any()  # entirely outside


def _result(landmarks, height, width, std=None, sigma=1.0) -> Result:
    std = np.ones((120, 2)) if std is None else std
    return Result(landmarks=landmarks, landmarks_std=std, landmarks_mu=landmarks + 1.0, latent_mu=np.full(64, sigma),
                  latent_sigma=np.full(64, sigma), height=height, width=width, samples=1, seed=0, model="m:1")


def test_a_crop_that_cannot_be_an_image_is_not_looked_at():
    assert second_look_square(_result(_ring(500, 400, 160, 120), 1000, 1000)) == (300, 200, 400)
    assert second_look_square(_result(_ring(50, 50, 10, 10), 100, 100)) is None     # 25 px across
    assert second_look_square(_result(_ring(50, 50, 400, 400), 100, 100)) is None    # over twice the image
    broken = _ring(500, 400, 160, 120)
    broken[3, 0] = np.nan
    assert second_look_square(_result(broken, 1000, 1000)) is None


def test_pooled_moments_are_those_of_both_sample_sets_together():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 120, 2)), rng.normal(-1, 5, (50, 120, 2))
    mean, std = pooled_moments(a.mean(0), a.std(0), b.mean(0), b.std(0))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(mean, both.mean(0), atol=1e-12)
    np.testing.assert_allclose(std, both.std(0), atol=1e-12)


def test_combine_pools_a_framed_chest_and_keeps_only_the_crop_for_a_wide_one():
    crop = _result(_ring(300, 300, 240, 240), 625, 625, std=np.full((120, 2), 2.0), sigma=3.0)
    framed = _result(_ring(500, 400, 400, 380), 1000, 1000)   # lungs fill 0.8
    pooled = combine(framed, crop, 100, 50, 625)
    moved = crop.landmarks + [100, 50]
    np.testing.assert_allclose(pooled.landmarks, (framed.landmarks + moved) / 2)
    np.testing.assert_allclose(pooled.landmarks_std, np.sqrt(2.5 + ((framed.landmarks - moved) / 2) ** 2))
    np.testing.assert_allclose(pooled.landmarks_mu, (framed.landmarks_mu + crop.landmarks_mu + [100, 50]) / 2)
    assert pooled.mean_latent_sigma == pytest.approx(2.0)
    assert pooled.second_look == {"look": "pooled", "first_fill": pytest.approx(0.8), "crop_left": 100,
                                  "crop_top": 50, "crop_side": 625}
    wide = _result(_ring(500, 400, 300, 300), 1000, 1000)     # 0.6
    alone = combine(wide, crop, 100, 50, 625)
    assert alone.second_look["look"] == "crop_only" and 0.6 < CROP_ONLY_BELOW
    np.testing.assert_array_equal(alone.landmarks, moved)
    np.testing.assert_array_equal(alone.landmarks_std, crop.landmarks_std)
    assert alone.mean_latent_sigma == 3.0 and (alone.height, alone.width) == (1000, 1000)


@pytest.fixture(scope="module")
def example1():
    gray = to_gray(read_image(SHARED / "data/images/wiki_example1_normal_PA.jpg"))
    truth = np.load(SHARED / "data/landmarks/wiki_example1_landmarks_original_px.npy")
    return gray, truth


@pytest.fixture(scope="module")
def segmenter():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chexmask_rt.load()


def _wide(gray: np.ndarray, pad: int = 380) -> np.ndarray:
    """Example 1 with a black border: its lungs then span about half the image, where one look drifts."""
    return cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)


def test_a_framed_chest_is_the_pool_of_both_looks(segmenter, example1):
    gray, _ = example1
    one = segmenter.predict(gray, samples=20, second_look=False)
    two = segmenter.predict(gray, samples=20, second_look=True)
    info = two.second_look
    assert info.look == "pooled" and one.second_look is None
    left, top, side = info.crop_left, info.crop_top, info.crop_side
    assert (left, top, side) == chest_square(one.landmarks, FILL)
    crop = segmenter.predict(crop_square(gray, left, top, side), samples=20, second_look=False)
    expected = combine(one, crop, left, top, side)
    for field in ("landmarks", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"):
        np.testing.assert_allclose(getattr(two, field), getattr(expected, field), atol=1e-9, rtol=0, err_msg=field)
    assert two.quality is not None and two.quality.calibrated
    assert two.to_dict()["second_look"] == info.to_dict() and "second_look" not in one.to_dict()
    assert info.first_fill == pytest.approx(lung_fill(one.landmarks, one.height, one.width), abs=1e-12)
    np.testing.assert_array_equal(two.landmarks, segmenter.predict(gray, samples=20, second_look=True).landmarks)


def test_the_second_look_equals_the_references(segmenter, example1):
    gray, _ = example1
    ref = ReferenceSegmenter(segmenter.path)
    for image in (gray, _wide(gray)):
        got = segmenter.predict(image, samples=10, second_look=True)
        want = ref.predict(image, samples=10, second_look=True)
        assert got.second_look.to_dict() == pytest.approx(want.second_look)
        for field in ("landmarks", "landmarks_std", "landmarks_mu"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-3, rtol=0, err_msg=field)


def test_a_wide_field_of_view_takes_the_crops_answer_and_lands_closer(segmenter, example1):
    gray, truth = example1
    wide = _wide(gray)
    moved_truth = truth + 380
    one = segmenter.predict(wide, samples=20, second_look=False)
    two = segmenter.predict(wide, samples=20, second_look=True)
    assert lung_fill(one.landmarks, *wide.shape) < CROP_ONLY_BELOW
    info = two.second_look
    assert info.look == "crop_only" and info.crop_side < max(wide.shape) and (two.height, two.width) == wide.shape
    far, near = (distance_1024(r.landmarks, moved_truth, wide.shape) for r in (one, two))
    assert near < 0.5 * far and near < 5.0


def test_batches_equal_single_predictions(segmenter, example1):
    gray, _ = example1
    images = [gray, _wide(gray), gray]
    batch = segmenter.predict_batch(images, samples=10, batch_size=2, second_look=True)
    assert [r.second_look.look for r in batch] == ["pooled", "crop_only", "pooled"]
    for image, r in zip(images, batch):
        alone = segmenter.predict(image, samples=10, second_look=True)
        # on the CPU each image and each crop is its own engine call: its answer alone, bit for bit
        np.testing.assert_array_equal(r.landmarks, alone.landmarks)
        np.testing.assert_array_equal(r.landmarks_std, alone.landmarks_std)
        assert r.second_look == alone.second_look


def test_the_crop_keeps_its_images_bit_depth(segmenter, example1):
    """An 11-bit image with one 12-bit pixel in a corner the crop leaves out: the crop is still
    read as 12-bit (inferred afresh it would be 11-bit, twice as bright)."""
    gray, _ = example1
    wide = _wide(gray).astype(np.uint16) * 8
    wide[0, 0] = 4095
    inferred = segmenter.predict(wide, samples=10, second_look=True)
    assert inferred.second_look.crop_left > 0
    np.testing.assert_array_equal(inferred.landmarks,
                                  segmenter.predict(wide, samples=10, bit_depth=12, second_look=True).landmarks)


def test_the_core_uses_the_references_constants():
    assert (core.SECOND_LOOK_FILL, core.CROP_ONLY_BELOW) == (FILL, CROP_ONLY_BELOW)


def test_cli_looks_and_the_csv_column(tmp_path, example1):
    gray, _ = example1
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), _wide(gray))
    run = [sys.executable, "-m", "chexmask_rt", "predict", str(path), "--samples", "10"]
    two = subprocess.run([*run, "--second-look", "--json", "-"], capture_output=True, text=True, cwd=REPO)
    one = subprocess.run([*run, "--single-look", "--json", "-"], capture_output=True, text=True, cwd=REPO)
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr
    assert json.loads(two.stdout)["second_look"]["look"] == "crop_only"
    assert "second_look" not in json.loads(one.stdout)
    for flags, column in (([], "off"), (["--second-look"], "crop_only")):  # the shipped engine: one call
        rows = subprocess.run([*run, *flags, "--csv", "-"], capture_output=True, text=True, cwd=REPO)
        assert next(csv.DictReader(io.StringIO(rows.stdout)))["Second Look"] == column, rows.stderr


@pytest.fixture(scope="module")
def marked_engine(tmp_path_factory):
    """A fixture checkpoint exported with --second-look, beside the same one without."""
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_export.onnx_export import build_network, export_onnx

    from conftest import FIXTURES, FIXTURE_NAMES

    ckpt = load_checkpoint(FIXTURES / FIXTURE_NAMES[0])
    root = tmp_path_factory.mktemp("looks")
    paths = {}
    for marked in (False, True):
        paths[marked] = root / f"marked_{marked}.onnx"
        export_onnx(build_network(ckpt), paths[marked], checkpoint_sha256=ckpt.sha256, second_look=marked)
    return paths


def test_the_engine_decides_whether_predict_looks_twice(marked_engine, example1):
    """Only engines exported with --second-look look twice by default: a published checkpoint and the
    shipped model (since version 8) answer with one engine call unless asked."""
    gray, _ = example1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, marked = (chexmask_rt.load(marked_engine[m]) for m in (False, True))
        shipped = chexmask_rt.load()
    assert (plain.info.second_look, marked.info.second_look, shipped.info.second_look) == (False, True, False)
    assert shipped.predict(gray, samples=4).second_look is None
    assert plain.predict(gray, samples=4).second_look is None
    assert plain.predict(gray, samples=4, second_look=True).second_look is not None
    assert marked.predict(gray, samples=4).second_look is not None
    assert marked.predict(gray, samples=4, second_look=False).second_look is None


def test_a_crop_only_answer_of_one_decode_measures_no_spread(segmenter, example1):
    """The crop's answer alone, of one decode, has no spread: its 0 std is not a measurement."""
    gray, _ = example1
    one = segmenter.predict(_wide(gray), samples=1, second_look=True)
    assert one.second_look.look == "crop_only" and not one.spread_measured
    assert one.to_dict()["scores"]["mean_node_std"] is None
