"""Reading image files into arrays, with errors that name the file.

PNG/JPEG/TIFF/BMP go through OpenCV; DICOM (Part 10 files, or a .dcm/.dicom
name) through :mod:`chexmask_rt.dicom_io`. Before anything is decoded, the file's
size and its header's declared size are checked against the pixel limit
(:mod:`chexmask_rt.limits`), so an oversized or bogus file is refused cheaply.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .dicom_io import DICM_HEAD, looks_like_dicom, read_dicom
from .errors import InputError, first_line
from .image_headers import check_png_chunks, read_header
from .limits import check_file_size, check_pixels, resolve_max_pixels


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF/BMP file to a gray or RGB(A) array in its own bit depth,
    or a DICOM file to a rendered gray array (see :mod:`chexmask_rt.dicom_io`).

    ``max_pixels``: the pixel limit (default: ``$CHEXMASK_RT_MAX_PIXELS``, else 64 MP); a larger
    image, a file larger than such an image could be, and a multi-page TIFF are InputErrors."""
    limit = resolve_max_pixels(max_pixels)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputError(f"{p}: file is empty")
            check_file_size(size, limit, str(p))
            head = f.read(DICM_HEAD)
            if looks_like_dicom(p, head):
                return read_dicom(p, max_pixels=limit)
            f.seek(0)
            header = read_header(f, str(p))
            check_pixels(header.width, header.height, str(p), limit)
            check_file_size(size, header.width * header.height, str(p))
            if header.pages > 1:
                raise InputError(f"{p}: multi-page TIFF ({header.pages} pages); only single-image files are "
                                 "supported (save the radiograph as its own file)")
            f.seek(0)
            data = np.fromfile(f, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({exc.strerror or exc})") from exc
    if header.format == "png":
        check_png_chunks(data, str(p))
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # a decoder's own limits and failures
        raise InputError(f"{p}: not a readable image ({first_line(exc)})") from None
    if image is None:
        raise InputError(f"{p}: not a readable image (corrupt, truncated or unsupported format)")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        # cv2 decodes colour as BGR(A); the rest of the package expects RGB(A)
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        image = cv2.cvtColor(image, code)
    return image
