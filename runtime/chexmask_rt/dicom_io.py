"""Reading DICOM files into display-ready arrays (pydicom, with pillow for JPEG pixel data).

The pipeline follows the DICOM grayscale rendering chain:

1. the Modality LUT (Rescale Slope / Intercept, or a Modality LUT Sequence);
2. the VOI LUT Sequence, else the Window Center / Width, when present; their
   output range is mapped to the full range of the result's dtype;
   without either, min–max over the image's own values;
3. MONOCHROME1 (bright = low attenuation) is inverted, so the result is always
   MONOCHROME2-like, as the model was trained.

The result is ``uint8`` when Bits Stored ≤ 8, else ``uint16`` spanning 0..65535: its
brightest pixels reach full scale (always without a window; with one, unless the whole image lies
below its top), so :func:`chexmask_rt.preprocess.to_gray` infers 16 bits.
Multi-frame objects and objects without pixel data are refused.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError, first_line

DICOM_SUFFIXES = (".dcm", ".dicom")
_MAGIC_OFFSET = 128


def looks_like_dicom(path: str | os.PathLike, head: bytes) -> bool:
    """True for a Part 10 file ('DICM' after the 128-byte preamble) or a .dcm/.dicom name."""
    return head[_MAGIC_OFFSET:_MAGIC_OFFSET + 4] == b"DICM" or Path(path).suffix.lower() in DICOM_SUFFIXES


def is_dicom_file(path: str | os.PathLike) -> bool:
    """:func:`looks_like_dicom` for a file on disk; False when it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return looks_like_dicom(path, head)


def read_dicom(path: str | os.PathLike) -> np.ndarray:
    """Decode one single-frame DICOM image to a gray uint8/uint16 (or RGB uint8) array."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation shows up as an error below, not as a warning
            # force=True: files without the Part 10 preamble are common in archives
            ds = pydicom.dcmread(p, force=True)
    except Exception as exc:  # pydicom raises many unrelated types on malformed input
        raise InputError(f"{p}: not a readable DICOM file ({first_line(exc)})") from None
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID")
        what = f" ({sop.name})" if sop is not None and hasattr(sop, "name") else ""
        raise InputError(f"{p}: DICOM object has no pixel data{what}; only image objects can be segmented")
    frames = _int_tag(ds, "NumberOfFrames", 1, p)
    if frames != 1:
        raise InputError(f"{p}: multi-frame DICOM ({frames} frames); only single-frame images are supported")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    bits_stored = _int_tag(ds, "BitsStored", 0, p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about harmless header quirks
            pixels = ds.pixel_array
            if photometric in ("MONOCHROME1", "MONOCHROME2"):
                return _render_gray(pixels, ds, photometric, bits_stored, apply_modality_lut)
    except InputError:
        raise
    except Exception as exc:  # a missing decoder, corrupt or truncated pixel data, malformed LUTs
        raise InputError(f"{p}: cannot decode DICOM pixel data ({first_line(exc)})") from None
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT") and pixels.ndim == 3 \
            and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels  # pydicom already converted YBR to RGB
    raise InputError(f"{p}: unsupported DICOM photometric interpretation {photometric or '(missing)'} "
                     f"with pixel array {pixels.dtype} {pixels.shape}")


def _int_tag(ds, keyword: str, default: int, p: Path) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        raise InputError(f"{p}: malformed DICOM {keyword} {ds.get(keyword)!r}") from None


def _render_gray(pixels: np.ndarray, ds, photometric: str, bits_stored: int, apply_modality_lut) -> np.ndarray:
    from pydicom.pixels import apply_voi, apply_windowing

    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D monochrome pixel array, got shape {pixels.shape}")
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        entries, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
        # the LUT indexes integers; its entries (probed over its whole domain) bound the output
        table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds).astype(np.float64)
        values = apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float64)
        lo, hi = float(table.min()), float(table.max())
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        # ±inf land on the window function's two ends, whatever the VOI LUT Function
        lo, hi = (float(v) for v in apply_windowing(np.array([-np.inf, np.inf]), ds))
        values = apply_windowing(values, ds)
    else:
        lo, hi = float(values.min()), float(values.max())
    full = 255.0 if 0 < bits_stored <= 8 else 65535.0
    scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0) * full if hi > lo else np.zeros_like(values)
    if photometric == "MONOCHROME1":
        scaled = full - scaled
    return np.rint(scaled).astype(np.uint8 if full == 255.0 else np.uint16)
