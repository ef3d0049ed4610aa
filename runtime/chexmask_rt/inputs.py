"""What every predict call takes: its inputs (paths or arrays, decoded to the gray pixels the core reads)
and its arguments, checked before any image is decoded."""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from . import core
from .errors import InputError
from .image_io import read_image, to_gray
from .limits import check_pixels, resolve_max_pixels

ImageLike = Union[str, os.PathLike, np.ndarray]
DEFAULT_SAMPLES = 50  # as in the CheXmask-U paper
MAX_SAMPLES = core.MAX_SAMPLES
# Images handed to the core together when the caller does not choose (batch_size=None). On the CPU
# the core runs each image as its own engine call anyway (EngineOptions.images_per_call 0: single
# images were the fastest, README, Performance), so a larger chunk gains nothing there and only
# makes one bad image cost its neighbours a retry; on a GPU a chunk is one engine call.
DEFAULT_BATCH = 1


def check_run_arguments(samples: int, seed: int, batch_size: int) -> tuple[int, int]:
    """Validate what predict_batch takes; returns (samples, seed) as ints."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise InputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    return int(samples), int(seed)


def check_bit_depth(bit_depth: int | None) -> int | None:
    """None (inferred by the core) or an integer; the core checks its range against the pixels."""
    if bit_depth is not None and (isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer))):
        raise InputError(f"bit_depth must be an integer in 9..16 or None, got {bit_depth!r}")
    return None if bit_depth is None else int(bit_depth)


def load_item(item: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, str | None]:
    """A path (decoded here) or an array -> (array, file name or None); either must lie within
    the pixel limit (:mod:`chexmask_rt.limits`)."""
    limit = resolve_max_pixels(max_pixels)
    if isinstance(item, np.ndarray):
        if item.ndim >= 2:
            check_pixels(item.shape[1], item.shape[0], "array", limit)
        return item, None
    if isinstance(item, (str, os.PathLike)):
        return read_image(item, max_pixels=limit), os.fspath(item)
    raise InputError(f"expected an image path or a numpy array, got {type(item).__name__}")


def decode(item: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, str | None]:
    """Any accepted input -> (the gray array the core reads, file name or None); no copy for gray arrays."""
    array, name = load_item(item, max_pixels)
    return to_gray(array, name=name or "array"), name
