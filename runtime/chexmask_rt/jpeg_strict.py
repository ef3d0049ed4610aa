"""JPEG data decoded with libjpeg-turbo's warnings as errors: damaged data is refused, not filled in.

OpenCV's libjpeg only prints 'Corrupt JPEG data' and returns the image with its damaged part gray,
and pydicom's decoders (for JPEG frames in DICOM files) fill it in without a word; the pixels are
otherwise the same (all are libjpeg-turbo's)."""
from __future__ import annotations

import numpy as np
import simplejpeg

from .errors import InputError, first_line

# What TurboJPEG refuses in a JPEG that is not damaged: kinds it does not decode (OpenCV's libjpeg
# may: lossless; 12-bit, neither: see image_io) and warnings about metadata. Anything else it says is
# about the image data.
_JPEG_NOT_DAMAGE = ("Unsupported JPEG process", "Unsupported JPEG data precision", "Unsupported color conversion",
                    "Could not determine subsampling", "Warning: unknown JFIF revision",
                    "Warning: thumbnail image size")


def decode_jpeg_strict(data: np.ndarray, name: str) -> np.ndarray | str:
    """A JPEG as gray or RGB, decoded by libjpeg-turbo with its warnings as errors (InputError naming
    ``name`` for damaged data); for a JPEG that is not damaged but that TurboJPEG will not decode so
    (``_JPEG_NOT_DAMAGE``), its reason (e.g. "Unsupported JPEG data precision 12"): another decoder then
    reads it, and a refusal can say why neither did."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        image = simplejpeg.decode_jpeg(data, colorspace="GRAY" if colorspace == "Gray" else "RGB", strict=True)
    except ValueError as exc:
        reason = first_line(exc)
        if any(kind in reason for kind in _JPEG_NOT_DAMAGE):  # TurboJPEG prefixes some with its function's name
            return reason
        raise InputError(f"{name}: not a readable image (damaged JPEG: {reason})") from None
    return image[:, :, 0] if image.shape[2] == 1 else image
