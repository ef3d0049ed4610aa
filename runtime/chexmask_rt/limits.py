"""The pixel limit: the largest image chexmask-rt agrees to decode or preprocess.

An image is refused with an :class:`~chexmask_rt.errors.InputError` when its width × height
exceeds the limit, before it is decoded wherever the file's header declares its size (PNG,
JPEG, TIFF, BMP, DICOM and the JPEG / JPEG 2000 frames inside a DICOM), and before
preprocessing for arrays. Files are also refused, before being read, when they are larger
than any image within the limit could be, so a huge file costs a ``stat`` and a header read.

The default, 64 megapixels (for instance 8000 × 8000), is about three times the largest
radiography detectors (43 × 43 cm at 100 µm is 4300 × 4300, 18.5 MP). Change it per call
(``max_pixels=`` on :func:`chexmask_rt.load`, ``predict``, ``predict_batch``, ``read_image``),
on the command line (``--max-pixels``) or for the whole process (``CHEXMASK_RT_MAX_PIXELS``).
"""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError

DEFAULT_MAX_PIXELS = 64_000_000
ENV_VAR = "CHEXMASK_RT_MAX_PIXELS"
MIN_PIXELS = 32 * 32  # the smallest image chexmask-rt segments (preprocess.MIN_SIDE squared)
# A stored pixel takes at most 16 bytes (RGBA of 32-bit samples; 16-bit RGBA takes 8): a file larger
# than that per declared pixel, plus room for metadata (ICC profiles, DICOM headers), is not an image
# of that size, and reading it whole would only cost memory before failing.
MAX_BYTES_PER_PIXEL = 16
METADATA_BYTES = 64 << 20


def resolve_max_pixels(max_pixels: int | None) -> int:
    """The limit to apply: ``max_pixels`` when given, else ``$CHEXMASK_RT_MAX_PIXELS``, else the default."""
    source = "max_pixels"
    if max_pixels is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        source = ENV_VAR
        try:
            max_pixels = int(env)
        except ValueError:
            raise InputError(f"{ENV_VAR}={env!r} is not an integer number of pixels") from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < MIN_PIXELS:
        raise InputError(f"{source} must be an integer >= {MIN_PIXELS}, got {max_pixels!r}")
    return int(max_pixels)


def _amount(pixels: int) -> str:
    """Megapixels where that reads well; small counts exactly (a 0.0-megapixel limit says nothing)."""
    return f"{pixels / 1e6:.1f} megapixels" if pixels >= 100_000 else f"{pixels:,} pixels"


def check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    """InputError when a width × height image is above the limit."""
    if width * height > max_pixels:
        raise InputError(f"{name}: image is {width}x{height} ({_amount(width * height)}), above the "
                         f"pixel limit of {_amount(max_pixels)} (raise it with max_pixels=, "
                         f"--max-pixels or {ENV_VAR})")


def check_file_size(size: int, pixels: int, name: str) -> None:
    """InputError when a file of ``size`` bytes is larger than an image of ``pixels`` pixels can be."""
    if size > pixels * MAX_BYTES_PER_PIXEL + METADATA_BYTES:
        raise InputError(f"{name}: file is {size / 2**20:.0f} MiB, larger than an image of at most "
                         f"{_amount(pixels)} can be; refused without reading it")
