"""Preprocessing and coordinate frames follow the CheXmask convention: the core's
(``_core.preprocess``, ``_core.Letterbox``), after the package's colour -> gray (``image_io.to_gray``)."""
import cv2
import numpy as np
import pytest

from chexmask_rt import core
from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image, to_gray

from conftest import FIXTURES, SHARED, reference

Letterbox = core.Letterbox


def preprocess(image, size: int, bit_depth: int | None = None):
    """(engine input, its frame) as the core makes them from any accepted array."""
    out, side, pad_left, pad_top = core.preprocess(to_gray(image), size, bit_depth)
    frame = Letterbox(*to_gray(image).shape)
    assert (frame.side, frame.pad_left, frame.pad_top) == (side, pad_left, pad_top)
    return out, frame


def test_matches_the_published_preprocessing_of_example1(example1):
    expected = reference(FIXTURES / "skip_256")["image"]
    got, frame = preprocess(read_image(example1), 256)
    np.testing.assert_array_equal(got, expected)
    assert (frame.height, frame.width, frame.pad_left, frame.pad_top) == (899, 786, 56, 0)


def test_frame_matches_the_shared_landmark_sets(example1):
    frame = Letterbox(899, 786)
    orig = np.load(SHARED / "data/landmarks/wiki_example1_landmarks_original_px.npy")
    in1024 = np.load(SHARED / "data/landmarks/wiki_example1_landmarks_1024.npy")
    np.testing.assert_allclose(frame.to_normalised(orig) * 1024, in1024, atol=1e-3)
    np.testing.assert_allclose(frame.to_original(in1024 / 1024), orig, atol=1e-3)


def test_distances_are_stated_in_the_1024_frame():
    from training.metrics import distance_1024

    a = np.array([[10.0, 20.0], [30.0, 40.0]])
    # 2 original px of a 512 px wide image are 4 px of the 1024 frame; the pads cancel out
    assert distance_1024(a + [2.0, 0.0], a, Letterbox(400, 512)) == pytest.approx(4.0)
    assert distance_1024(a + [0.0, 3.0], a, Letterbox(2048, 1500)) == pytest.approx(1.5)


@pytest.mark.parametrize("h,w", [(300, 200), (200, 300), (257, 256), (64, 64)])
def test_letterbox_centres_the_image(h, w):
    img = np.full((h, w), 200, np.uint8)
    out, frame = preprocess(img, 128)
    side = max(h, w)
    assert frame.side == side and frame.pad_left == (side - w) // 2 and frame.pad_top == (side - h) // 2
    # a point in the image's centre maps to the square's centre
    centre = frame.to_normalised(np.array([[(w - 1) / 2, (h - 1) / 2]]))[0]
    np.testing.assert_allclose(centre, ((side - 1) / 2 / side,) * 2, atol=1 / side)
    assert out.dtype == np.float32 and out.shape == (128, 128)
    assert out.max() == pytest.approx(200 / 255)
    assert (out.min() == 0.0) == (abs(h - w) > 2)  # wide padding is black; none, or 1 px blended, is not
    np.testing.assert_allclose(frame.scale_to_original(np.array([0.5])), [side / 2])


def test_colour_and_bit_depths_are_equivalent():
    rng = np.random.default_rng(1)
    gray8 = rng.integers(0, 256, (80, 100), dtype=np.uint8)
    base, _ = preprocess(gray8, 64)
    rgb = np.repeat(gray8[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((80, 100, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(preprocess(rgb, 64)[0], base)
    np.testing.assert_array_equal(preprocess(rgba, 64)[0], base)
    np.testing.assert_array_equal(preprocess(gray8[:, :, None], 64)[0], base)
    as16 = gray8.astype(np.uint16) * 257  # 8-bit value v -> 16-bit v*257 is the same grey
    np.testing.assert_allclose(preprocess(as16, 64)[0], base, atol=1 / 255)
    as12 = gray8.astype(np.uint16) * 16
    np.testing.assert_allclose(preprocess(as12, 64, bit_depth=12)[0], base * 255 * 16 / 4095, atol=1 / 255)
    asfloat = gray8.astype(np.float64) / 255
    np.testing.assert_allclose(preprocess(asfloat, 64)[0], base, atol=1 / 255)


def test_rgb_files_are_converted_to_gray(shared_images):
    colour = [p for p in shared_images if read_image(p).ndim == 3]
    assert colour, "expected some RGB test images"
    for path in colour:
        rgb = read_image(path)
        expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        np.testing.assert_array_equal(preprocess(rgb, 256)[0],
                                      cv2.resize(_pad(expected), (256, 256), interpolation=cv2.INTER_LINEAR) / np.float32(255))


def _pad(gray):
    frame = Letterbox(*gray.shape)
    sq = np.zeros((frame.side, frame.side), gray.dtype)
    sq[frame.pad_top:frame.pad_top + frame.height, frame.pad_left:frame.pad_left + frame.width] = gray
    return sq


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 0), np.uint8), "at least"),
    (np.zeros((1, 1), np.uint8), "at least"),
    (np.zeros((1, 500), np.uint8), "at least"),
    (np.full((64, 64), np.nan, np.float32), "NaN"),
    (np.full((64, 64), 2.0, np.float32), r"\[0, 1\]"),
    (np.zeros((64, 64, 2), np.uint8), "shape"),
    (np.zeros((64, 64, 3, 1), np.uint8), "shape"),
    (np.zeros((64, 64), bool), "pixel type"),
    (np.zeros((64, 64), np.int32), "pixel type"),
    ([[0, 1], [2, 3]], "numpy array"),
])
def test_bad_arrays_are_input_errors(bad, match):
    with pytest.raises(InputError, match=match):
        to_gray(bad)


def test_bad_bit_depth():
    with pytest.raises(InputError, match="bit_depth"):
        preprocess(np.zeros((64, 64), np.uint16), 64, bit_depth=20)


@pytest.mark.parametrize("top,bits", [(0, 8), (255, 8), (256, 9), (1023, 10), (4095, 12), (4096, 13),
                                      (32767, 15), (32768, 16), (65535, 16)])
def test_the_core_infers_the_fewest_bits_that_hold_the_largest_value(top, bits):
    image = np.random.default_rng(top).integers(0, top + 1, (40, 40)).astype(np.uint16)
    image[3, 5] = top
    inferred, _ = preprocess(image, 32)
    if bits == 8:  # the uint8 path, bit for bit
        np.testing.assert_array_equal(inferred, preprocess(image.astype(np.uint8), 32)[0])
    else:
        np.testing.assert_array_equal(inferred, preprocess(image, 32, bit_depth=bits)[0])
        if bits < 16:
            assert not np.array_equal(inferred, preprocess(image, 32, bit_depth=bits + 1)[0])


def test_uint16_images_are_scaled_by_their_own_bit_depth():
    """A 12-bit detector image in a 16-bit file must reach the model as bright as the same image
    in 8 bits, not at 1/16 of it."""
    rng = np.random.default_rng(2)
    gray8 = rng.integers(0, 256, (80, 100), dtype=np.uint8)
    gray8[0, 0] = 255
    base, _ = preprocess(gray8, 64)
    for bits in (10, 12, 14, 16):
        deep = (gray8.astype(np.uint32) * (2**bits - 1) // 255).astype(np.uint16)
        np.testing.assert_allclose(preprocess(deep, 64)[0], base, atol=1.5 / 255)
        np.testing.assert_array_equal(preprocess(deep, 64)[0], preprocess(deep, 64, bit_depth=bits)[0])
    # 8-bit content in a 16-bit container takes the uint8 path exactly
    np.testing.assert_array_equal(preprocess(gray8.astype(np.uint16), 64)[0], base)


def test_a_bit_depth_too_small_for_the_pixels_is_an_input_error():
    image = np.full((64, 64), 4095, np.uint16)
    with pytest.raises(InputError, match="need 12 bits, more than bit_depth 10"):
        preprocess(image, 64, bit_depth=10)
    assert preprocess(image, 64, bit_depth=12)[0].max() == 1.0
