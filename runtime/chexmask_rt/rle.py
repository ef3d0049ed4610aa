"""Organ masks from landmark polygons, and their run-length encoding as the CheXmask database stores it.

Convention (CheXmask-Database ``DataPostprocessing/utils.py``, ``get_mask_from_RLE``):
the mask is flattened row-major (C order) over (height, width); the encoding is a
space-separated string of "start length" pairs where ``start`` is the 1-based index
of the first pixel of a run of foreground pixels. An empty mask encodes as "".
"""
from __future__ import annotations


import numpy as np

from .errors import InputError, ModelError, first_line
from .native_gate import native_call


def polygon_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled polygon of (x, y) ``points`` as a uint8 0/255 mask of shape (height, width).

    Rasterised by the native core (``chexmask_rt._core.polygon_mask``, the same code as the C++ API's
    ``chexmask_rt::polygon_mask``): byte-identical to ``cv2.fillPoly`` of the vertices clamped to
    +-4 * max(height, width) (a wildly wrong landmark must not wrap around) and truncated to integer
    pixels as CheXmask's ``getDenseMask`` does (``astype(int)``), so masks match the database's for the
    same landmarks. Raises :class:`~chexmask_rt.errors.InputError` for points that are not a finite
    (N >= 1, 2) array or a size that is not an integer in 1..65536.
    """
    try:
        from . import _core
    except ImportError as exc:  # a source tree whose core was never built
        raise ModelError(f"organ masks need the native core chexmask_rt._core, which cannot be loaded ({exc})") from None
    size = _mask_size("polygon_mask", height, width)
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"polygon_mask: expected numeric (N, 2) points ({first_line(exc)})") from None
    with native_call():  # the fill releases the GIL: a fork and the exit wait for it (native_gate)
        return _core.polygon_mask(pts, *size)


def encode(mask: np.ndarray) -> str:
    """Row-major, 1-based "start length ..." encoding of the non-zero pixels of a 2-D mask.
    Raises :class:`~chexmask_rt.errors.InputError` (a ValueError) for anything but a 2-D array."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"rle.encode: expected a 2-D mask, got shape {mask.shape}")
    flat = np.concatenate([[False], mask.reshape(-1) != 0, [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])  # 0-based run starts and ends, alternating
    starts, ends = edges[::2], edges[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[::2], runs[1::2] = starts + 1, ends - starts
    return " ".join(map(str, runs.tolist()))


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode`: a uint8 0/255 mask of shape (height, width). Raises
    :class:`~chexmask_rt.errors.InputError` (a ValueError) for text that is not whole "start length"
    pairs, a run outside the mask, or sizes that are not positive integers."""
    size = _mask_size("rle.decode", height, width)
    try:
        runs = np.array(str.split(rle), dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"rle.decode: expected a string of integer 'start length' pairs ({first_line(exc)})") from None
    if runs.size % 2:
        raise InputError("rle.decode: the run-length encoding has an odd number of values")
    flat = np.zeros(size[0] * size[1], dtype=np.uint8)
    for start, length in zip(runs[::2] - 1, runs[1::2]):
        if start < 0 or length < 0 or start + length > flat.size:
            raise InputError(f"rle.decode: run {start + 1} {length} lies outside a {height}x{width} mask")
        flat[start:start + length] = 255
    return flat.reshape(size)


def _mask_size(what: str, height, width) -> tuple[int, int]:
    """(height, width) as integers of 1 to the core's largest side, else an InputError: True was a side of
    1, 2**40 numpy's "Maximum allowed dimension exceeded", 2**20 x 2**20 an attempt at 1 TiB."""
    from . import core
    from .inputs import _is_int

    sides = (height, width)
    if not all(_is_int(v) for v in sides):
        raise InputError(f"{what}: a mask's height and width must be integers, got {height!r} x {width!r}")
    if not all(1 <= int(v) <= core.MAX_SIDE for v in sides):  # the core's own words for polygon_mask
        raise InputError(f"{what}: mask size {height}x{width} outside 1..{core.MAX_SIDE}")
    return int(height), int(width)
