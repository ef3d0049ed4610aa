"""Bilinear resize of a square window onto an image, black where the window leaves the image (reference).

CheXmask zero-pads an image to a centred square of side L = max(h, w) and resizes that square
with ``cv2.resize`` INTER_LINEAR. Materialising the square costs L² pixels: 4 GiB for a 65536 x 32
image. Here the square is a *window* (the letterbox is the window ``(-pad_left, -pad_top, L)``,
the second look's crop another) that is never materialised: only the at most 2·S window rows the
S output rows read are resampled, each from the image row it covers, or zero.

The arithmetic is OpenCV's, so the result is what ``cv2.resize`` of the padded square gives:

* taps and weights in float32 from ``(i + 0.5) · L / S − 0.5``; a column tap left of 0 or at the
  last column clamps to that column with weight 0; a row tap outside clamps to the first or last
  row and keeps its weight;
* 8-bit: weights in 11-bit fixed point, row sums in integers, combined as OpenCV's vector path
  does for output sides that are multiples of 16 (every engine side is a multiple of 32):
  bit-exact against ``cv2``;
* 16-bit and float: float32 products and sums (16-bit rounded half to even). OpenCV 4.6 gives the
  same bits except for its 2x shortcut on 16-bit images (rounding half up); ``cv2`` 5 differs in a
  handful of pixels by one level. The native core (``cpp/src/resize.cpp``) computes exactly this.
"""
from __future__ import annotations

import numpy as np

_FIXED_ONE = np.float32(2048)  # OpenCV's INTER_RESIZE_COEF_SCALE for 8-bit images
_ROWS_AT_ONCE = 1 << 22  # pixels of image rows copied at once: 4 MB at 8 bits, whatever the width


def _taps(window: int, size: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output i reads window positions pos[i] and pos[i] + 1 with float32 weights w0[i], w1[i]."""
    scale = 1.0 / (size / window)
    f = ((np.arange(size) + 0.5) * scale - 0.5).astype(np.float32)
    pos = np.floor(f).astype(np.int64)
    f = f - pos.astype(np.float32)
    if clamp_weights:
        low, high = pos < 0, pos >= window - 1
        f[low | high] = 0
        pos[low], pos[high] = 0, window - 1
    return pos, np.float32(1) - f, f


def _fixed(weights: np.ndarray) -> np.ndarray:
    return np.rint(weights * _FIXED_ONE).astype(np.int32)


def resize_window(gray: np.ndarray, left: int, top: int, side: int, size: int) -> np.ndarray:
    """The ``side`` x ``side`` window at (``left``, ``top``) of a 2-D uint8, uint16 or float32
    image (zero outside it), resized to ``size`` x ``size`` in the image's dtype."""
    h, w = gray.shape
    integer = gray.dtype == np.uint8
    pos, wx0, wx1 = _taps(side, size, clamp_weights=True)
    x0 = left + pos
    in0, in1 = (x0 >= 0) & (x0 < w), (x0 + 1 >= 0) & (x0 + 1 < w)
    col0, col1 = np.where(in0, x0, 0), np.where(in1, x0 + 1, 0)
    # a tap outside the image reads column 0 with weight 0: exactly the 0 a black pixel adds
    a0, a1 = np.where(in0, wx0, 0).astype(np.float32), np.where(in1, wx1, 0).astype(np.float32)
    if integer:
        a0, a1 = _fixed(a0), _fixed(a1)

    pos, wy0, wy1 = _taps(side, size, clamp_weights=False)
    row0, row1 = np.clip(pos, 0, side - 1), np.clip(pos + 1, 0, side - 1)
    rows, which = np.unique(np.concatenate([row0, row1]), return_inverse=True)
    y = top + rows
    inside = np.flatnonzero((y >= 0) & (y < h))
    sum_type = np.int32 if integer else np.float32  # 8-bit sums stay below 2^20
    sums = np.zeros((len(rows), size), dtype=sum_type)
    step = max(1, _ROWS_AT_ONCE // w)  # whole image rows are gathered a block at a time
    for start in range(0, len(inside), step):
        block = inside[start:start + step]
        source = gray[y[block]]
        sums[block] = source[:, col0].astype(sum_type) * a0 + source[:, col1].astype(sum_type) * a1
    s0, s1 = sums[which[:size]], sums[which[size:]]

    if integer:
        b0, b1 = _fixed(wy0)[:, None], _fixed(wy1)[:, None]
        t = ((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16)
        return np.clip((t + 2) >> 2, 0, 255).astype(np.uint8)
    out = s0 * wy0[:, None] + s1 * wy1[:, None]
    if gray.dtype == np.uint16:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return out
