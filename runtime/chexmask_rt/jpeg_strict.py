"""JPEG data decoded with libjpeg-turbo's warnings as errors: damaged data is refused, not filled in.

OpenCV's libjpeg only prints 'Corrupt JPEG data' and returns the image with its damaged part gray,
and pydicom's decoders (for JPEG frames in DICOM files) fill it in without a word; the pixels are
otherwise the same (all are libjpeg-turbo's)."""
from __future__ import annotations

import numpy as np
import simplejpeg

from .errors import InputError, first_line
from .native_gate import native_call

# What TurboJPEG refuses in a JPEG that is not damaged: kinds it does not decode (OpenCV's libjpeg
# may: lossless; 12-bit, neither: see image_io) and warnings about metadata. Anything else it says is
# about the image data.
_JPEG_NOT_DAMAGE = ("Unsupported JPEG process", "Unsupported JPEG data precision", "Unsupported color conversion",
                    "Could not determine subsampling", "Warning: unknown JFIF revision",
                    "Warning: thumbnail image size")


# A warning about the scan header that says nothing of the data: a sequential scan's spectral
# selection and approximation fields mean nothing, libjpeg-turbo reads all 64 coefficients, and some
# scanners write Se = 0 there (an NM device's files among pydicom's test data). Sound files were refused.
_SEQUENTIAL_SCAN_FIELDS = "Invalid SOS parameters for sequential JPEG"


def decode_jpeg_strict(data: np.ndarray, name: str) -> np.ndarray | str:
    """A JPEG as gray or RGB, decoded by libjpeg-turbo with its warnings as errors (InputError naming
    ``name`` for damaged data); for a JPEG that is not damaged but that TurboJPEG will not decode so
    (``_JPEG_NOT_DAMAGE``), its reason (e.g. "Unsupported JPEG data precision 12"): another decoder then
    reads it, and a refusal can say why neither did. A sequential scan with meaningless header fields
    is checked by the native core (:func:`chexmask_rt._core.check_dct_jpeg`) and decoded without them."""
    colorspace = "RGB"
    try:
        colorspace = "GRAY" if simplejpeg.decode_jpeg_header(data)[2] == "Gray" else "RGB"
        image = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except ValueError as exc:
        reason = first_line(exc)
        if any(kind in reason for kind in _JPEG_NOT_DAMAGE):  # TurboJPEG prefixes some with its function's name
            return reason
        if _SEQUENTIAL_SCAN_FIELDS not in reason:
            raise InputError(f"{name}: not a readable image (damaged JPEG: {reason})") from None
        image = _decode_checked(data, colorspace, name)
    return image[:, :, 0] if image.shape[2] == 1 else image


def _decode_checked(data: np.ndarray, colorspace: str, name: str) -> np.ndarray:
    check_dct(data, name)
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False)
    except ValueError as exc:
        raise InputError(f"{name}: not a readable image (damaged JPEG: {first_line(exc)})") from None


def check_dct(data, name: str) -> int:
    """The sample precision of a sequential DCT JPEG whose entropy-coded data the native core has checked
    (:func:`chexmask_rt._core.check_dct_jpeg`): data libjpeg-turbo would fill in is an InputError naming
    ``name``."""
    core = native_core(name, "this JPEG")
    try:
        with native_call():  # the check releases the GIL: a fork and the exit wait for it (native_gate)
            return core.check_dct_jpeg(data)
    except InputError as exc:
        raise InputError(f"{name}: not a readable image ({exc})") from None


def native_core(name: str, what: str):
    """``chexmask_rt._core`` for the strict JPEG readers; an InputError naming ``name`` where it cannot be
    loaded (a source tree whose core was never built)."""
    try:
        from . import _core
    except ImportError as exc:
        raise InputError(f"{name}: {what} needs the native core chexmask_rt._core, which cannot be loaded "
                         f"({exc})") from None
    return _core
