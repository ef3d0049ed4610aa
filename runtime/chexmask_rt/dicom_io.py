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
below its top), so the core infers 16 bits.
Multi-frame objects, objects without pixel data and images above the pixel limit
(:mod:`chexmask_rt.limits`, checked before decoding) are refused.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError, first_line
from .image_headers import j2k_size, jpeg_size
from .limits import check_file_size, check_pixels, resolve_max_pixels

DICOM_SUFFIXES = (".dcm", ".dicom")
DICM_OFFSET, DICM_MARKER = 128, b"DICM"  # a Part 10 file: 'DICM' after the 128-byte preamble
DICM_HEAD = DICM_OFFSET + len(DICM_MARKER)  # the bytes that say whether a file is one


def looks_like_dicom(path: str | os.PathLike, head: bytes) -> bool:
    """True for a Part 10 file ('DICM' after the 128-byte preamble) or a .dcm/.dicom name."""
    return head[DICM_OFFSET:DICM_HEAD] == DICM_MARKER or Path(path).suffix.lower() in DICOM_SUFFIXES


def is_dicom_file(path: str | os.PathLike) -> bool:
    """:func:`looks_like_dicom` for a file on disk; False when it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(DICM_HEAD)
    except OSError:
        return False
    return looks_like_dicom(path, head)


def read_dicom(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one single-frame DICOM image to a gray uint8/uint16 (or RGB uint8) array.

    The header's Rows x Columns, and the size of a compressed frame's own header, are checked
    against the pixel limit (:mod:`chexmask_rt.limits`) before any pixel is decoded."""
    from pydicom.pixels import apply_modality_lut

    limit = resolve_max_pixels(max_pixels)
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(DICM_HEAD)
    check_file_size(size, limit, str(p))
    if not _plausible_dicom(head):
        # force=True below would otherwise parse any bytes as elements: minutes for a large bogus file
        raise InputError(f"{p}: not a readable DICOM file (neither a DICM marker nor a DICOM element at its start)")
    header, _ = _dcmread(p, stop_before_pixels=True)
    rows, columns = _int_tag(header, "Rows", 0, p), _int_tag(header, "Columns", 0, p)
    frames = _int_tag(header, "NumberOfFrames", 1, p)
    check_pixels(columns, rows, str(p), limit)
    if frames != 1:  # refused before its pixel data is read
        raise InputError(f"{p}: multi-frame DICOM ({frames} frames); only single-frame images are supported")
    check_file_size(size, max(rows * columns, 1), str(p))
    ds, warned = _dcmread(p)
    if "PixelData" not in ds:
        if warned:  # pydicom drops a pixel data element that the file's end cuts short, with a warning
            raise InputError(f"{p}: DICOM pixel data is truncated or corrupt ({warned})")
        sop = ds.get("SOPClassUID")
        what = f" ({sop.name})" if sop is not None and hasattr(sop, "name") else ""
        raise InputError(f"{p}: DICOM object has no pixel data{what}; only image objects can be segmented")
    _check_compressed_frame(ds, p, limit)
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
        raise InputError(f"{p}: cannot decode DICOM pixel data; it may be truncated or corrupt "
                         f"({first_line(exc)})") from None
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT") and pixels.ndim == 3 \
            and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels  # pydicom already converted YBR to RGB
    raise InputError(f"{p}: unsupported DICOM photometric interpretation {photometric or '(missing)'} "
                     f"with pixel array {pixels.dtype} {pixels.shape}")


def _plausible_dicom(head: bytes) -> bool:
    """A Part 10 file, or a bare dataset whose first element is in a file-meta (0002) or
    identifying (0008) group, in either byte order."""
    if head[DICM_OFFSET:DICM_HEAD] == DICM_MARKER:
        return True
    return len(head) >= 8 and (head[:2] in (b"\x02\x00", b"\x08\x00") or head[:2] in (b"\x00\x02", b"\x00\x08"))


def _dcmread(p: Path, **kwargs):
    """(dataset, first warning text or ''); a file pydicom cannot parse is an InputError."""
    import pydicom

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # force=True: files without the Part 10 preamble are common in archives
            ds = pydicom.dcmread(p, force=True, **kwargs)
    except Exception as exc:  # pydicom raises many unrelated types on malformed input
        raise InputError(f"{p}: not a readable DICOM file ({first_line(exc)})") from None
    return ds, (first_line(caught[0].message) if caught else "")


def _check_compressed_frame(ds, p: Path, limit: int) -> None:
    """The pixel limit for the frame inside encapsulated pixel data: its JPEG or JPEG 2000
    header, not the DICOM header, says how large the decoder's output will be."""
    import io

    from pydicom.encaps import generate_fragments

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not getattr(syntax, "is_encapsulated", False):
        return
    try:
        fragment = next((frag for frag in generate_fragments(ds.PixelData) if frag), b"")
    except Exception as exc:  # malformed item tags or lengths
        raise InputError(f"{p}: DICOM pixel data is truncated or corrupt ({first_line(exc)})") from None
    size = j2k_size(fragment)
    if size is None and fragment[:2] == b"\xff\xd8":
        size = jpeg_size(io.BytesIO(fragment[2:]), f"{p} (its compressed frame)")
    if size is not None:
        check_pixels(*size, f"{p} (its compressed frame)", limit)


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
