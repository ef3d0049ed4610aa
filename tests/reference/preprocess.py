"""Image -> engine input, as CheXmask prepares it (reference).

gray -> zero-pad to a centred square -> INTER_LINEAR resize to S x S (``resize_window``, which
never materialises the square) -> divided by the full-scale value. Integer images are resized in
their own dtype and scaled afterwards, as the published pipeline does for 8-bit images. Input
checking is the runtime's job: this oracle takes valid images only.
"""
from __future__ import annotations

import cv2
import numpy as np

from .frames import Letterbox
from .resize import resize_window


def significant_bits(image: np.ndarray) -> int:
    """The fewest bits (8 to 16) that hold a uint16 image's largest value."""
    return max(8, int(image.max(initial=0)).bit_length())


def to_gray(image: np.ndarray, bit_depth: int | None = None) -> tuple[np.ndarray, float]:
    """(2-D gray uint8 / uint16 / float32 array, its full-scale value) of a gray, RGB or RGBA array.

    A uint16 image has ``bit_depth`` significant bits, or (None) the fewest that hold its largest
    value; with 8 it is exactly the uint8 image.
    """
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        rgb = image[:, :, :3]
        if rgb.dtype == np.float64:
            rgb = rgb.astype(np.float32)
        image = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if image.dtype == np.uint8:
        return image, 255.0
    if image.dtype == np.uint16:
        bits = significant_bits(image) if bit_depth is None else int(bit_depth)
        if bits == 8:
            return image.astype(np.uint8), 255.0
        return image, float(2**bits - 1)
    return image.astype(np.float32, copy=False), 1.0


def letterbox(gray: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Centred zero-pad + INTER_LINEAR resize: the [size, size] array (input dtype) and its frame."""
    frame = Letterbox(*gray.shape)
    return resize_window(gray, -frame.pad_left, -frame.pad_top, frame.side, size), frame


def preprocess(image: np.ndarray, size: int, *, bit_depth: int | None = None,
               square: tuple[int, int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """An image -> (float32 [size, size] in [0, 1], its frame). ``square``: (left, top, side) of the
    image to take instead of the whole (black outside the image): the second look's crop, whose
    frame is the square's own."""
    gray, full_scale = to_gray(image, bit_depth)
    if square is None:
        resized, frame = letterbox(gray, size)
    else:
        resized, frame = resize_window(gray, *square, size), Letterbox(square[2], square[2])
    out = resized.astype(np.float32)
    if full_scale != 1.0:
        out /= np.float32(full_scale)
    return out, frame
