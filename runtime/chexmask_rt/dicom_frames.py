"""Compressed DICOM frames read strictly, where pydicom's decoders fill damaged data in and say nothing
(libjpeg-turbo, libjpeg) or end the process on it (GDCM):

- JPEG Lossless (process 14), the usual CR and DX archive form: decoded by the native core;
- 12-bit JPEG Extended, the lossy one: its entropy-coded data checked by the native core, then decoded
  by libjpeg-turbo through imagecodecs (the ``[dicom]`` extra); without imagecodecs, pydicom's plugins
  decode the checked frame.

Pixels come as pydicom gives them: the Bits Allocated's width, the bits above Bits Stored cleared (old
files keep overlays there), signed values sign-extended from Bits Stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .jpeg_strict import check_dct, native_core
from .native_gate import native_call

LOSSLESS_JPEG = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")  # JPEG Lossless, and its first-order kind
EXTENDED_JPEG = "1.2.840.10008.1.2.4.51"  # JPEG Extended (process 2 & 4): 12-bit DCT


@dataclass(frozen=True)
class Stored:
    """How the header says samples are stored: (0028,0100) Bits Allocated, (0028,0101) Bits Stored,
    (0028,0103) Pixel Representation 1."""
    allocated: int
    stored: int
    signed: bool


def lossless_pixels(frame: bytes, header: Stored, name: str, limit: int) -> np.ndarray:
    """A gray JPEG Lossless frame, decoded by the native core, as pydicom gives pixels."""
    core = native_core(name, "JPEG Lossless pixel data")
    try:
        with native_call():  # the decode releases the GIL: a fork and the exit wait for it (native_gate)
            samples, precision = core.decode_lossless_jpeg(frame, limit)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    return _as_stored(samples, precision, header, name, "lossless JPEG")


def extended_pixels(frame: bytes, header: Stored, name: str, gray: bool) -> np.ndarray | None:
    """A JPEG Extended frame libjpeg-turbo does not read strictly (12 bits), its data checked by the
    native core; a gray one decoded by libjpeg-turbo (imagecodecs), as pydicom gives pixels. None for a
    colour frame, or where imagecodecs is not installed: the frame is sound, and pydicom's plugins decode
    it (GDCM among them: it sees no damaged data)."""
    precision = check_dct(frame, name)
    if not gray:
        return None
    try:
        import imagecodecs
    except ImportError:
        return None
    try:
        samples = imagecodecs.jpeg8_decode(frame)
    except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types; the data is checked
        raise InputError(f"{name}: not a readable image (libjpeg-turbo: {exc})") from None
    if samples.ndim != 2:
        raise InputError(f"{name}: a JPEG of {samples.shape[2]} components in a grayscale image: the file is corrupt")
    return _as_stored(samples.astype(np.uint16, copy=False), precision, header, name, "JPEG")


def _as_stored(samples: np.ndarray, precision: int, header: Stored, name: str, kind: str) -> np.ndarray:
    if header.allocated not in (8, 16) or precision > header.allocated:
        raise InputError(f"{name}: a {kind} frame of {precision}-bit samples, where the header says Bits "
                         f"Allocated {header.allocated}: the file is corrupt")
    samples = samples.astype(np.uint8) if header.allocated == 8 else samples
    return within_bits_stored(samples.view(samples.dtype.str.replace("u", "i")) if header.signed else samples, header)


def within_bits_stored(pixels: np.ndarray, header: Stored) -> np.ndarray:
    """Integer ``pixels`` with the bits above Bits Stored cleared (unsigned) or replaced by the sign
    (signed), in place: pydicom does so for native and RLE data only, and a JPEG 2000 or JPEG-LS frame
    wider than Bits Stored (an overlay plane kept in bit 14) squeezed the min-max rendering of the rest."""
    width = pixels.dtype.itemsize * 8
    if pixels.dtype.kind not in "ui" or not 0 < header.stored < width:
        return pixels
    if not pixels.dtype.isnative:  # Explicit VR Big Endian: the unsigned view below reads native words
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    elif not pixels.flags.writeable:
        pixels = pixels.copy()
    shift = width - header.stored
    unsigned = pixels.view(f"u{pixels.dtype.itemsize}")
    unsigned <<= shift  # drops the bits above Bits Stored
    if pixels.dtype.kind == "i":
        pixels >>= shift  # arithmetic: the top stored bit is the sign
    else:
        unsigned >>= shift
    return pixels
