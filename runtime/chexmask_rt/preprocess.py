"""Image -> model input, exactly as CheXmask prepares it.

grayscale -> zero-pad to a centred square -> cv2.resize INTER_LINEAR to S x S
-> scale to [0, 1]. Integer images are resized in their own dtype (cv2 rounds
to that dtype) and scaled afterwards: that is what the published pipeline does
for 8-bit images, and the parity fixtures were made that way. The pad and resize
are one step that never materialises the square (``chexmask_rt.resize``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError
from .frames import Letterbox
from .resize import resize_window

MIN_SIDE = 32  # smaller than this cannot be a radiograph; also keeps cv2 away from degenerate sizes


def to_gray(image: np.ndarray, *, name: str = "image", bit_depth: int | None = None) -> tuple[np.ndarray, float]:
    """Validate an array and return (2-D gray array, its full-scale value).

    Accepts [H, W], [H, W, 1], RGB [H, W, 3] or RGBA [H, W, 4] (channel order RGB,
    as numpy/PIL deliver it); uint8, uint16 or float in [0, 1]. A uint16 image has
    ``bit_depth`` significant bits; without it, the fewest bits that hold its largest
    value (see ``significant_bits``).
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if bit_depth is not None and (isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer))):
        raise InputError(f"{name}: bit_depth must be an integer in 9..16 or None, got {bit_depth!r}")
    if not image.dtype.isnative:  # e.g. big-endian 16-bit pixels read straight from a file
        image = image.astype(image.dtype.newbyteorder("="))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        _check_size(*image.shape[:2], name)  # before cv2, which refuses an empty image with a cv2.error
        image = _rgb_to_gray(image[:, :, :3], name)
    if image.ndim != 2:
        raise InputError(f"{name}: expected a gray [H, W] or RGB(A) [H, W, 3|4] image, got shape {image.shape}")
    _check_size(*image.shape, name)
    if image.dtype == np.uint8:
        return image, 255.0
    if image.dtype == np.uint16:
        return _uint16_scale(image, name, bit_depth)
    if image.dtype in (np.float32, np.float64):
        _check_unit_range(image, name)
        return image.astype(np.float32, copy=False), 1.0
    raise InputError(f"{name}: unsupported pixel type {image.dtype}; use uint8, uint16 or float in [0, 1]")


def _check_size(h: int, w: int, name: str) -> None:
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"{name}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")


def significant_bits(image: np.ndarray) -> int:
    """The fewest bits (8 to 16) that hold a uint16 image's largest value.

    Detectors deliver 10, 12 or 14 bits, and files store them in 16: a 12-bit image read as
    16-bit would reach the model at 1/16 of its brightness (on ``wiki_example1`` stored that way
    the default model's landmarks moved 37 px). A 16-bit image whose brightest pixel is below
    half of full scale is brightened in the same power-of-two steps.
    """
    return max(8, int(image.max(initial=0)).bit_length())


def _uint16_scale(image: np.ndarray, name: str, bit_depth: int | None) -> tuple[np.ndarray, float]:
    if bit_depth is None:
        bits = significant_bits(image)
        if bits == 8:  # 8-bit content in a 16-bit container: exactly the uint8 path
            return image.astype(np.uint8), 255.0
        return image, float(2**bits - 1)
    bits = int(bit_depth)
    if not 9 <= bits <= 16:
        raise InputError(f"{name}: bit_depth must be in 9..16 for uint16 images, got {bit_depth}")
    if significant_bits(image) > bits:
        raise InputError(f"{name}: pixel values up to {int(image.max())} do not fit bit_depth {bits} "
                         f"(at most {2**bits - 1}); pass the image's real bit depth, or none to infer it")
    return image, float(2**bits - 1)


def resolved_bit_depth(gray: np.ndarray, full_scale: float) -> int:
    """``to_gray``'s answer as the native core's bit depth: 8, 9..16, or 32 for float in [0, 1]."""
    return 32 if gray.dtype == np.float32 else int(full_scale).bit_length()


def _rgb_to_gray(rgb: np.ndarray, name: str) -> np.ndarray:
    if rgb.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise InputError(f"{name}: unsupported pixel type {rgb.dtype} for a colour image")
    if rgb.dtype in (np.float32, np.float64):
        # before mixing (a weighted sum can bring channels outside [0, 1] inside) and before the
        # cast to float32 (which would turn 1e300 into inf with a warning)
        _check_unit_range(rgb, name)
        rgb = rgb.astype(np.float32, copy=False)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _check_unit_range(image: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(image)):
        raise InputError(f"{name}: image contains NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name}: float images must lie in [0, 1]; got values in [{lo:g}, {hi:g}]")


def letterbox(gray: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Centred zero-pad + INTER_LINEAR resize: returns the [size, size] array (input dtype) and its frame."""
    frame = Letterbox(*gray.shape)
    return resize_window(gray, -frame.pad_left, -frame.pad_top, frame.side, size), frame


def preprocess(image: np.ndarray, size: int, *, name: str = "image", bit_depth: int | None = None,
               square: tuple[int, int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """Any accepted image -> (float32 [size, size] in [0, 1], its Letterbox frame).

    ``square``: (left, top, side) of the image to take instead of the whole (black where it leaves
    the image, read in place): the second look's crop; its frame is the square's own.
    """
    gray, full_scale = to_gray(image, name=name, bit_depth=bit_depth)
    if square is None:
        resized, frame = letterbox(gray, size)
    else:
        resized, frame = resize_window(gray, *square, size), Letterbox(square[2], square[2])
    out = resized.astype(np.float32)
    if full_scale != 1.0:
        out /= np.float32(full_scale)
    return out, frame
