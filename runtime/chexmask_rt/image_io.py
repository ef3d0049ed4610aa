"""Reading image files into arrays, with errors that name the file.

PNG/JPEG/TIFF/BMP go through OpenCV; DICOM (Part 10 files, or a .dcm/.dicom
name) through :mod:`chexmask_rt.dicom_io`.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .dicom_io import looks_like_dicom, read_dicom
from .errors import InputError, first_line


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF/BMP file to a gray or RGB(A) array in its own bit depth,
    or a DICOM file to a rendered gray array (see :mod:`chexmask_rt.dicom_io`)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise InputError(f"{p}: file is empty")
    if looks_like_dicom(p, data[:132].tobytes()):
        return read_dicom(p)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV decodes
        raise InputError(f"{p}: not a readable image ({first_line(exc)})") from None
    if image is None:
        raise InputError(f"{p}: not a readable image (corrupt, truncated or unsupported format)")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        # cv2 decodes colour as BGR(A); the rest of the package expects RGB(A)
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        image = cv2.cvtColor(image, code)
    return image
