"""recentre=True: a second pass on a crop around the lungs for wide fields of view, and only for them."""
import json
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.frames import Letterbox, distance_1024
from chexmask_rt.image_io import read_image
from chexmask_rt.preprocess import to_gray
from chexmask_rt.recentre import RECENTRE_BELOW, chest_square, crop_square, lung_fill, recentre_square
from chexmask_rt.result import Result

from conftest import REPO, SHARED


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


def _result(landmarks, height, width) -> Result:
    zeros = np.zeros((120, 2))
    return Result(landmarks=landmarks, landmarks_std=zeros, landmarks_mu=landmarks, latent_mu=np.zeros(64),
                  latent_sigma=np.ones(64), height=height, width=width, samples=1, seed=0, model="m:1")


def test_only_wide_framing_with_a_usable_crop_is_recentred():
    wide = _ring(500, 500, 150, 150)  # lungs span 0.3
    assert recentre_square(_result(wide, 1000, 1000)) == chest_square(wide)
    assert recentre_square(_result(_ring(500, 500, 400, 300), 1000, 1000)) is None   # 0.8
    # lungs 20 px across in a 100 px image: the crop (25 px) would be too small an image
    assert recentre_square(_result(_ring(50, 50, 10, 10), 100, 100)) is None


@pytest.fixture(scope="module")
def example1():
    gray, _ = to_gray(read_image(SHARED / "data/images/wiki_example1_normal_PA.jpg"))
    truth = np.load(SHARED / "data/landmarks/wiki_example1_landmarks_original_px.npy")
    return gray, truth


@pytest.fixture(scope="module", params=["native", "python"])
def segmenter(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chexmask_rt.load(backend=request.param)


def test_a_wide_field_of_view_is_recentred_and_lands_closer(segmenter, example1):
    gray, truth = example1
    pad = 380  # example 1's lungs then span about half the image, where the model drifts (benchmarks/framing.py)
    wide = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    frame, moved_truth = Letterbox(*wide.shape), truth + pad
    once = segmenter.predict(wide, samples=20)
    again = segmenter.predict(wide, samples=20, recentre=True)
    assert lung_fill(once.landmarks, *wide.shape) < RECENTRE_BELOW
    info = again.extra["recentred"]
    assert info["crop_side"] < max(wide.shape) and (again.height, again.width) == wide.shape
    assert distance_1024(again.landmarks, moved_truth, frame) < 0.5 * distance_1024(once.landmarks, moved_truth, frame)
    assert distance_1024(again.landmarks, moved_truth, frame) < 5.0
    assert again.to_dict()["recentred"] == info and "recentred" not in once.to_dict()
    np.testing.assert_array_equal(again.landmarks, segmenter.predict(wide, samples=20, recentre=True).landmarks)


def test_a_well_framed_image_is_left_as_it_is(segmenter, example1):
    gray, _ = example1
    once = segmenter.predict(gray, samples=20)
    again = segmenter.predict(gray, samples=20, recentre=True)
    assert "recentred" not in again.extra
    np.testing.assert_array_equal(again.landmarks, once.landmarks)
    np.testing.assert_array_equal(again.landmarks_std, once.landmarks_std)


def test_batches_recentre_only_their_wide_images(segmenter, example1):
    gray, _ = example1
    wide = cv2.copyMakeBorder(gray, 380, 380, 380, 380, cv2.BORDER_CONSTANT, value=0)
    batch = segmenter.predict_batch([gray, wide, gray], samples=10, recentre=True, batch_size=2)
    assert ["recentred" in r.extra for r in batch] == [False, True, False]
    np.testing.assert_array_equal(batch[1].landmarks, segmenter.predict(wide, samples=10, recentre=True).landmarks)


def test_the_crop_keeps_its_images_bit_depth(segmenter, example1):
    """An 11-bit image with one 12-bit pixel in a corner the crop leaves out: the crop is still
    read as 12-bit (inferred afresh it would be 11-bit, twice as bright)."""
    gray, _ = example1
    wide = cv2.copyMakeBorder(gray, 380, 380, 380, 380, cv2.BORDER_CONSTANT, value=0).astype(np.uint16) * 8
    wide[0, 0] = 4095
    inferred = segmenter.predict(wide, samples=10, recentre=True)
    assert "recentred" in inferred.extra and inferred.extra["recentred"]["crop_left"] > 0
    np.testing.assert_array_equal(inferred.landmarks,
                                  segmenter.predict(wide, samples=10, recentre=True, bit_depth=12).landmarks)


def test_cli_predict_recentre(tmp_path, example1):
    gray, _ = example1
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), cv2.copyMakeBorder(gray, 380, 380, 380, 380, cv2.BORDER_CONSTANT, value=0))
    out = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(path), "--samples", "10", "--recentre",
                          "--json", "-"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "crop_side" in json.loads(out.stdout)["recentred"]
