"""The core's frame transform and unscaled letterbox (_core.Letterbox, _core.letterbox) equal the
reference's (tests/reference), which training and the benchmarks used before they called the core."""
from __future__ import annotations

import numpy as np
import pytest

import reference
from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image

from conftest import skip_or_fail_without_native

try:
    from chexmask_rt import _core
except ImportError as exc:  # pragma: no cover - reported by the helper
    skip_or_fail_without_native(f"chexmask_rt._core is not built ({exc})", allow_module_level=True)

SHAPES = [(899, 786), (300, 500), (500, 300), (257, 256), (64, 64), (1, 65536)]


@pytest.mark.parametrize("h,w", SHAPES)
def test_letterbox_geometry_and_transforms_equal_the_reference(h, w):
    core, ref = _core.Letterbox(h, w), reference.Letterbox(h, w)
    assert (core.height, core.width, core.side, core.pad_left, core.pad_top) == \
        (ref.height, ref.width, ref.side, ref.pad_left, ref.pad_top)
    rng = np.random.default_rng(h * 7 + w)
    norm = rng.uniform(-0.1, 1.1, (3, 120, 2))
    px = rng.uniform(-50, 2 * max(h, w), (120, 2))
    # the same float64 arithmetic, so the same bits
    np.testing.assert_array_equal(core.to_original(norm), ref.to_original(norm))
    np.testing.assert_array_equal(core.scale_to_original(norm), ref.scale_to_original(norm))
    np.testing.assert_array_equal(core.to_normalised(px), ref.to_normalised(px))
    np.testing.assert_array_equal(core.to_normalised(core.to_original(norm[0])), ref.to_normalised(ref.to_original(norm[0])))
    assert core.to_original(norm).shape == (3, 120, 2)


def test_transforms_take_lists_float32_and_strided_arrays():
    core, ref = _core.Letterbox(400, 512), reference.Letterbox(400, 512)
    np.testing.assert_array_equal(core.to_original([[0.5, 0.25]]), ref.to_original([[0.5, 0.25]]))
    f32 = np.array([[0.1, 0.9], [0.3, 0.7]], np.float32)
    np.testing.assert_array_equal(core.to_original(f32), ref.to_original(f32))
    strided = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::3]  # (4, 2), not contiguous
    np.testing.assert_array_equal(core.to_normalised(strided), ref.to_normalised(strided))
    assert core.scale_to_original(np.array([0.5])).tolist() == [256.0]
    assert core.to_original(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros(3), "points", np.float64(1.0)])
def test_transforms_refuse_what_is_not_points(bad):
    with pytest.raises(InputError, match="points"):
        _core.Letterbox(10, 20).to_original(bad)


@pytest.mark.parametrize("h,w", [(0, 10), (10, -1), (65537, 10)])
def test_letterbox_refuses_impossible_sizes(h, w):
    with pytest.raises(InputError, match="height and width"):
        _core.Letterbox(h, w)


@pytest.mark.parametrize("size", [64, 256])
def test_unscaled_letterbox_equals_the_reference_in_every_dtype(shared_images, size):
    gray8, _ = reference.to_gray(read_image(shared_images[0]))
    rng = np.random.default_rng(3)
    images = [gray8, gray8.astype(np.uint16) * 16 + rng.integers(0, 16, gray8.shape, dtype=np.uint16),
              gray8.astype(np.float32) / 255, gray8[::-1, ::2]]
    for image in images:
        out, frame = _core.letterbox(image, size)
        want, ref_frame = reference.letterbox(image, size)
        assert out.dtype == image.dtype and out.shape == (size, size)
        assert (frame.side, frame.pad_left, frame.pad_top) == (ref_frame.side, ref_frame.pad_left, ref_frame.pad_top)
        if image.dtype == np.float32:  # float sums in another order: within one float32 step
            np.testing.assert_allclose(out, want, atol=2.5e-7, rtol=0)
        else:
            np.testing.assert_array_equal(out, want)


def test_unscaled_letterbox_is_the_engine_input_times_full_scale(example1):
    gray, _ = reference.to_gray(read_image(example1))
    levels, _ = _core.letterbox(gray, 256)
    scaled, *_ = _core.preprocess(gray, 256)
    np.testing.assert_array_equal(levels.astype(np.float32) / np.float32(255), scaled)


def test_unscaled_letterbox_refuses_bad_input():
    with pytest.raises(InputError):
        _core.letterbox(np.zeros((10, 10), np.uint8), 64)  # under the smallest side
    with pytest.raises(InputError):
        _core.letterbox(np.zeros((64, 64), np.int32), 64)
    with pytest.raises(InputError, match="size"):
        _core.letterbox(np.zeros((64, 64), np.uint8), 8)
