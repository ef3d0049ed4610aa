"""Reading DICOM files into display-ready arrays (pydicom, with pillow for JPEG pixel data; gray JPEG
Lossless and 12-bit JPEG Extended frames read strictly by :mod:`chexmask_rt.dicom_frames`).

The pipeline follows the DICOM grayscale rendering chain:

1. the Modality LUT (Rescale Slope / Intercept, or a Modality LUT Sequence);
2. the VOI LUT Sequence, else the Window Center / Width, when present; their
   output range (a VOI LUT's: 0 .. 2^bits - 1) is mapped to the full range of the
   result's dtype; without either, min–max over the image's own values, Pixel
   Padding left out (and shown black);
3. the Presentation LUT Shape INVERSE, or without one MONOCHROME1 (bright = low
   attenuation), is inverted, so the result is always displayed-as-MONOCHROME2, as the
   model was trained.

A one-frame enhanced object's rescale and window are read from its functional groups.

The result is ``uint8`` when Bits Stored ≤ 8, else ``uint16`` spanning 0..65535: its
brightest pixels reach full scale (always without a window; with one, unless the whole image lies
below its top), so the core infers 16 bits.
Multi-frame objects, objects without pixel data and images above the pixel limit
(:mod:`chexmask_rt.limits`, checked before decoding) are refused, and so are:

- a file cut short, recognised from the lengths its elements declare: pydicom reads a cut file
  quietly or only warns, and capturing warnings changes process-global state that the decoder
  threads of ``predict_iter`` and ``batch`` would race on (this module changes none);
- pixel data in a transfer syntax that no installed decoder reads: the message names the syntax and
  what pydicom says to install, or that it does not support it, rather than calling the file corrupt;
- display attributes that cannot render a picture: a Rescale Slope of 0, a NaN or infinite
  slope, intercept, window center or width, or any Modality LUT, VOI LUT or window that maps a
  stored image whose pixels vary to a single value.
"""
from __future__ import annotations

import math
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .dicom_frames import EXTENDED_JPEG, LOSSLESS_JPEG, Stored, extended_pixels, lossless_pixels, within_bits_stored
from .errors import InputError, first_line
from .image_headers import j2k_size, jpeg_size
from .jpeg_strict import decode_jpeg_strict
from .limits import METADATA_BYTES, check_file_size, check_pixels, resolve_max_pixels

DICOM_SUFFIXES = (".dcm", ".dicom")
DICM_OFFSET, DICM_MARKER = 128, b"DICM"  # a Part 10 file: 'DICM' after the 128-byte preamble
DICM_HEAD = DICM_OFFSET + len(DICM_MARKER)  # the bytes that say whether a file is one
PIXEL_DATA_GROUP = 0x7FE0  # (7FE0,0010) Pixel Data, and the float variants pydicom also stops before
ITEM, SEQUENCE_DELIMITER = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian: pydicom parses an inflated copy
_DCT_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")  # JPEG Baseline and Extended: TurboJPEG's kind
# pydicom tries GDCM first for every compressed syntax (and again after another plugin failed), and
# GDCM throws C++ exceptions no binding catches on malformed data: a fuzzed JPEG CR, and a JPEG-LS one
# with a damaged header, ended the whole process ("terminate called after throwing an instance of ...").
# So pydicom is told which plugin to use: the one always installed where there is one, else the first
# of these that is installed; GDCM only where it alone reads the syntax. A JPEG Extended frame reaching
# pydicom has passed the core's check or libjpeg-turbo's strict decode, so pydicom chooses (None):
# Pillow, always installed, reads 8 bits only, and would shut GDCM out of the 12-bit frames it may read.
_PLUGIN_FOR = {"1.2.840.10008.1.2.4.50": "pillow", "1.2.840.10008.1.2.4.90": "pillow",
               "1.2.840.10008.1.2.4.91": "pillow", "1.2.840.10008.1.2.5": "pydicom", EXTENDED_JPEG: None}
_PLUGINS_BEFORE_GDCM = ("pyjpegls", "pylibjpeg", "pillow", "pydicom")
# explicit VRs whose element header holds a 4-byte length (after two reserved bytes)
LONG_LENGTH_VRS = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT")
_META_GROUP_LENGTH = b"\x02\x00\x00\x00UL"  # (0002,0000) UL, explicit VR little endian
# The widest single-frame sample layout (RGB of 16 bits takes 6, Double Float Pixel Data 8): a deflated
# dataset that inflates past this per pixel of the limit, plus metadata, is not one image within it.
_INFLATED_BYTES_PER_PIXEL = 8
# Sequence items a dataset may hold: a radiograph's header has tens to hundreds (an encapsulated frame
# one per fragment). pydicom builds every item before any size can be checked: a 52 kB deflated file of
# a million empty items took 2.4 GB and 4 minutes; 100,000 plain ones, 21 s and 290 MB.
MAX_DICOM_ITEMS = 100_000
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # (FFFE,E000) little- and big-endian


def looks_like_dicom(path: str | os.PathLike[str], head: bytes) -> bool:
    """True for a Part 10 file ('DICM' after the 128-byte preamble) or a .dcm/.dicom name."""
    return head[DICM_OFFSET:DICM_HEAD] == DICM_MARKER or Path(path).suffix.lower() in DICOM_SUFFIXES


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """:func:`looks_like_dicom` for a file on disk; False when it cannot be read, or is no regular file
    (opening a FIFO waited for a writer forever: `predict fifo --bit-depth 12` hung)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(DICM_HEAD)
    except OSError:
        return False
    return looks_like_dicom(path, head)


def read_dicom(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one single-frame DICOM image to a gray uint8/uint16 (or RGB uint8) array.

    The header's Rows x Columns, and the size of a compressed frame's own header, are checked
    against the pixel limit (:mod:`chexmask_rt.limits`) before any pixel is decoded."""
    try:
        return _read_dicom(Path(path), resolve_max_pixels(max_pixels))
    except (InputError, OSError, MemoryError):
        raise
    except Exception as exc:  # pydicom converts a value when it is first used, and raises many types for a bad one
        raise InputError(f"{path}: malformed DICOM header ({first_line(exc)})") from None


def _read_dicom(p: Path, limit: int) -> np.ndarray:
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(DICM_HEAD)
        check_file_size(size, limit, str(p))
        if not _plausible_dicom(head):
            # force=True below would otherwise parse any bytes as elements: minutes for a large bogus file
            raise InputError(f"{p}: not a readable DICOM file (neither a DICM marker nor a DICOM element at its start)")
        _check_file_meta_length(f, head, size, p)
        meta_end, syntax = _file_meta(f, head, size)
        if syntax == DEFLATED:
            _check_inflated_size(f, meta_end, limit, p)
        else:
            _check_items(_chunks(f, meta_end), p)
        header = _dcmread(f, p, stop_before_pixels=True)
        sop_class = _sop_class(header)
        not_image = non_image_reason(str(sop_class) if sop_class else None)
        if not_image:  # a one-frame SEG was segmented as a radiograph (batch skipped it already)
            raise InputError(f"{p}: a {not_image}; only image objects can be segmented")
        check_orientation(header, str(p))
        pixels_at = _pixel_data_start(f, header, size, p)
        rows, columns = _int_tag(header, "Rows", 0, p), _int_tag(header, "Columns", 0, p)
        frames = _int_tag(header, "NumberOfFrames", 1, p)
        check_pixels(columns, rows, str(p), limit)
        if frames != 1:  # refused before its pixel data is read
            raise InputError(f"{p}: multi-frame DICOM ({frames} frames); only single-frame images are supported")
        check_file_size(size, max(rows * columns, 1), str(p))
        if pixels_at is not None:
            _check_pixel_data_length(f, pixels_at, size, header.original_encoding, p)
        ds = _dcmread(f, p)
    if "PixelData" not in ds:
        raise _no_pixel_data(ds, p)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    bits_stored = _int_tag(ds, "BitsStored", 0, p)
    pixels = _check_compressed_frame(ds, p, limit)
    if pixels is None:
        try:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")
            plugin = _decoding_plugin(syntax)
            if plugin:
                ds.pixel_array_options(decoding_plugin=plugin)
            pixels = ds.pixel_array
        except Exception as exc:  # a missing decoder, corrupt pixel data, inconsistent image attributes
            raise _no_decoder(ds, p, exc) or _undecodable(p, _all_lines(exc)) from None
    # the file's pixel bytes are of no more use: freed before the rendering makes a third copy of the
    # image (tests/test_dicom.py's 12-bit file: 3.26x its pixels' bytes at the peak, 2.26x without them)
    del ds["PixelData"]
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if pixels.ndim != 2:
            raise _undecodable(p, f"expected a 2-D monochrome pixel array, got shape {pixels.shape}")
        _with_frame_display(ds)
        signed = _int_tag(ds, "PixelRepresentation", 0, p) == 1
        pixels = within_bits_stored(pixels, Stored(pixels.dtype.itemsize * 8, bits_stored, signed))
        return _render_gray(pixels, ds, photometric, bits_stored, p)
    colour = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
    if photometric in colour and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels  # pydicom already converted YBR to RGB
    if photometric in colour:
        raise InputError(f"{p}: DICOM {photometric} pixels of {pixels.dtype} {pixels.shape} are not supported "
                         "(colour is read at 8 bits a sample)")
    raise InputError(f"{p}: unsupported DICOM photometric interpretation {photometric or '(missing)'} "
                     f"with pixel array {pixels.dtype} {pixels.shape}")


_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage


def non_image_reason(sop_class: str | None) -> str | None:
    """None when the SOP class is an image storage class (or unknown: the reader decides), else why not."""
    if sop_class is None:
        return None
    if sop_class == _DICOMDIR_CLASS:
        return "DICOMDIR (a media index, not an image)"
    from pydicom.uid import UID

    name = UID(sop_class).name
    if name == sop_class or "Image Storage" in name:
        return None  # an image class, or one pydicom does not know: let the reader try
    return f"DICOM {name} object ({sop_class}), not an image"


# The display attributes an enhanced object keeps per frame, and the top-level ones they stand for
_FRAME_DISPLAY = (("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
                  ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")))


def _with_frame_display(ds) -> None:
    """A one-frame enhanced object keeps its rescale and window in its Per-Frame or Shared Functional
    Groups, not at the top level, where the display chain reads them (the window was dropped for min-max,
    and a slope of -1 read a negative). Copied up where the top level has none; the frame's own first."""
    for group in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        items = ds.get(group)
        if not items:
            continue
        for sequence, keywords in _FRAME_DISPLAY:
            inner = items[0].get(sequence)
            if inner and not any(k in ds for k in keywords[:2]):
                for keyword in keywords:
                    if keyword in inner[0]:
                        setattr(ds, keyword, inner[0][keyword].value)


_LATERAL_VIEWS = {"LL": "left lateral", "RL": "right lateral"}  # View Position (0018,5101)'s defined terms


def _lateral(view: str) -> bool:
    """Whether a View Position or View Code meaning names a lateral: the defined terms LL and RL, and the
    words archives write instead (MIMIC-CXR's View Position 'LATERAL', 'XTABLE LATERAL', 'LAT', 'L LATERAL');
    a decubitus film ('LLD', 'LEFT LATERAL DECUBITUS') is a frontal projection."""
    words = re.findall(r"[A-Z]+", view.upper())
    if view.strip().upper() in _LATERAL_VIEWS:
        return True
    return any(w in ("LAT", "LATERAL") for w in words) and not any(w.startswith("DECUB") for w in words)


def _check_view(ds, name: str) -> None:
    """Refuse a lateral view as the modality names it: CR and DX leave Patient Orientation empty more
    often than not, and mark a lateral by View Position (LL, RL, or words such as LATERAL) or by its
    View Code Sequence."""
    position = str(ds.get("ViewPosition") or "").strip().upper()
    codes = ds.get("ViewCodeSequence") or []
    meaning = str(codes[0].get("CodeMeaning", "")).strip() if len(codes) else ""
    if _lateral(position):
        said = f"View Position {position}" + (f" ({_LATERAL_VIEWS[position]})" if position in _LATERAL_VIEWS else "")
    elif _lateral(meaning):
        said = f"View Code Sequence '{meaning}'"
    else:
        return
    raise InputError(f"{name}: {said}: a lateral view; the model reads frontal (PA or AP) chests, so its lungs and "
                     "heart would be drawn over a view that does not show them side by side")


def check_orientation(ds, name: str) -> None:
    """Refuse an image not stored as a frontal chest is displayed by convention (Patient Orientation L\\F:
    the patient's right on the image's left, head up), judged by each value's first letter (its main
    direction: LA\\F, an oblique, is frontal), and a lateral view by its View Position or View Code
    (:func:`_check_view`). The model reads chests so; on any other image the
    lung it calls right is not the patient's right lung, yet every output (JSON, CSV, masks, SEG, SR) would
    name it so. An absent or empty Patient Orientation is taken as conventional (most modalities leave it
    empty for chests shown so). ``name`` starts the message."""
    _check_view(ds, name)
    orientation = ds.get("PatientOrientation") or ""
    values = [str(v).strip().upper() for v in ([orientation] if isinstance(orientation, str) else orientation)]
    rows, cols = (values + ["", ""])[:2]
    if not rows and not cols:
        return
    if rows[:1] == "R" and cols[:1] == "H":
        why = "turned by 180 degrees (the patient's right on the image's right, the head at the bottom)"
    elif rows[:1] == "R":
        why = "mirrored (the patient's right on the image's right)"
    elif rows[:1] in ("H", "F") or cols[:1] in ("R", "L"):
        why = "turned by 90 degrees (the patient's head to a side)"
    elif rows[:1] in ("A", "P") or cols[:1] in ("A", "P"):
        why = "as a lateral or turned view, not a frontal one"
    elif cols[:1] == "H":
        why = "upside down (the patient's head at the bottom)"
    else:
        return
    raise InputError(f"{name}: Patient Orientation {chr(92).join(values)}: the image is stored {why}; the model "
                     "reads frontal chests as conventionally displayed, so the lung it calls right would not be the "
                     "patient's right lung; store the image as displayed (Patient Orientation L\\F) first")


def _plausible_dicom(head: bytes) -> bool:
    """A Part 10 file, or a bare dataset whose first element is in a file-meta (0002) or
    identifying (0008) group, in either byte order."""
    if head[DICM_OFFSET:DICM_HEAD] == DICM_MARKER:
        return True
    return len(head) >= 8 and (head[:2] in (b"\x02\x00", b"\x08\x00") or head[:2] in (b"\x00\x02", b"\x00\x08"))


def _dcmread(f, p: Path, **kwargs):
    """The dataset in the open file ``f``; a file pydicom cannot parse is an InputError."""
    import pydicom

    f.seek(0)
    try:
        # force=True: files without the Part 10 preamble are common in archives
        ds = pydicom.dcmread(f, force=True, **kwargs)
    except struct.error:  # an element header unpacked from the few bytes left at the file's end
        raise _truncated(p, "it ends inside an element's header") from None
    except Exception as exc:  # pydicom raises many unrelated types on malformed input
        raise InputError(f"{p}: not a readable DICOM file ({first_line(exc)})") from None
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" not in meta and ds.original_encoding[0] is not None:
        # a bare dataset (no File Meta) holds native pixels in the encoding pydicom found, which is then
        # its transfer syntax; pydicom will not decode it without one named ("truncated or corrupt" said)
        implicit, little = ds.original_encoding
        uid = pydicom.uid
        meta.TransferSyntaxUID = (uid.ImplicitVRLittleEndian if implicit else
                                  uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian)
    return ds


def _truncated(p: Path, why: str) -> InputError:
    return InputError(f"{p}: DICOM file is truncated ({why})")


def _cut_pixels(p: Path, why: str) -> InputError:
    return InputError(f"{p}: DICOM pixel data is truncated or corrupt ({why})")


def _undecodable(p: Path, why: str) -> InputError:
    return InputError(f"{p}: cannot decode DICOM pixel data; it may be truncated or corrupt ({why})")


def _lines(exc: BaseException) -> list[str]:
    return [line.strip() for line in str(exc).splitlines() if line.strip()]


def _all_lines(exc: BaseException) -> str:
    """pydicom's message on one line: it puts the reason, e.g. each plugin's failure, on the lines after
    the first, so cutting at the first line would keep only 'exceptions were raised by all plugins:'."""
    lines = _lines(exc)
    if not lines:
        return type(exc).__name__
    text = lines[0]
    for line in lines[1:]:
        text += f" {line}" if text.endswith(":") else f"; {line}"
    return text


def _decoding_plugin(syntax) -> str | None:
    """The pydicom plugin to decode ``syntax`` with (None: pydicom's own choice), never GDCM while
    another installed plugin reads it (``_PLUGIN_FOR``)."""
    from pydicom.pixels import get_decoder

    if str(syntax) in _PLUGIN_FOR:
        return _PLUGIN_FOR[str(syntax)]
    try:
        available = get_decoder(syntax).available_plugins
    except Exception:  # noqa: BLE001 - no decoder for the syntax at all: pydicom's refusal says so
        return None
    return next((name for name in _PLUGINS_BEFORE_GDCM if name in available), None)


def _no_decoder(ds, p: Path, exc: BaseException) -> InputError | None:
    """The refusal for pixel data that no installed decoder can read (None for a decoder that failed):
    the file may be sound, and pydicom's lines after the first name the packages to install."""
    lines = _lines(exc)
    head = lines[0] if lines else ""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "missing dependencies" in head:
        needed = f"install one of: {'; '.join(lines[1:])}"
    elif isinstance(exc, NotImplementedError) and "Transfer Syntax UID" in head and "is not supported" in head:
        needed = "pydicom does not support it"
    elif len(lines) > 1 and all(" does not support " in line and line.endswith("-bit precision") for line in lines[1:]):
        # every installed plugin declined the samples' precision before reading the data (Pillow and GDCM
        # read JPEG Extended at 8 bits only): a 12-bit frame, the usual lossy CR archive, was called corrupt
        needed = "; ".join(lines[1:] + _missing_decoders(syntax))
    else:
        return None
    name = getattr(syntax, "name", None) or "(missing)"
    return InputError(f"{p}: no decoder for its transfer syntax '{name}' ({needed})")


def _missing_decoders(syntax) -> list[str]:
    """["install one of: ..."] naming the plugins for ``syntax`` that are not installed, as pydicom says them
    (imagecodecs first for 12-bit JPEG Extended: :mod:`chexmask_rt.dicom_frames` decodes with it)."""
    from pydicom.pixels import get_decoder

    try:
        missing = get_decoder(syntax).missing_dependencies
    except Exception:  # noqa: BLE001 - no decoder for the syntax at all: nothing to name
        return []
    if str(syntax) == EXTENDED_JPEG:
        missing = ["imagecodecs (pip install 'chexmask-rt[dicom]')", *missing]
    return [f"install one of: {'; '.join(missing)}"] if missing else []


def file_meta_group_length(first: bytes) -> int | None:
    """The File Meta group's length, from the 12 bytes that follow the DICM marker: its first
    element, (0002,0000), always explicit VR little endian. None when they are not that element
    (a non-conformant header, which pydicom reads or refuses)."""
    if len(first) < 12 or first[:6] != _META_GROUP_LENGTH:
        return None
    return struct.unpack("<I", first[8:12])[0]


def _check_file_meta_length(f, head: bytes, size: int, p: Path) -> None:
    """A Part 10 file states its File Meta group's length in the group's first element (always
    explicit VR little endian); pydicom reads a group that the file's end cuts as a shorter one."""
    if head[DICM_OFFSET:DICM_HEAD] != DICM_MARKER:
        return
    first = f.read(12)
    if len(first) < 12:
        raise _truncated(p, f"it ends after {size} bytes, inside its File Meta group")
    length = file_meta_group_length(first)
    if length is None:
        return
    end = DICM_HEAD + len(first) + length
    if end > size:
        raise _truncated(p, f"its File Meta group ends at byte {end}, the file after {size} bytes")


def _file_meta(f, head: bytes, size: int) -> tuple[int, str | None]:
    """Where a Part 10 file's File Meta group ends and its Transfer Syntax UID, from its elements (always
    explicit VR little endian), as pydicom reads them: up to the first element of another group, whether
    or not (0002,0000) states the group's length. (0, None) for other files, or an element that does not
    fit (the full read then refuses the file)."""
    if head[DICM_OFFSET:DICM_HEAD] != DICM_MARKER:
        return 0, None
    at, syntax = DICM_HEAD, None
    while at + 8 <= size:
        f.seek(at)
        element = f.read(12)
        group, number, vr = struct.unpack("<HH2s", element[:6])
        if group != 0x0002:
            return at, syntax
        if vr in LONG_LENGTH_VRS:
            if len(element) < 12:
                return 0, None
            value_at, length = at + 12, struct.unpack("<I", element[8:12])[0]
        else:
            value_at, length = at + 8, struct.unpack("<H", element[6:8])[0]
        if number == 0x0010:  # (0002,0010) Transfer Syntax UID, padded to an even length
            f.seek(value_at)
            syntax = f.read(length).rstrip(b"\0 ").decode("ascii", "replace")
        at = value_at + length
    return 0, None


def _check_inflated_size(f, start: int, limit: int, p: Path) -> None:
    """pydicom inflates a Deflated dataset whole in memory, and for each read (about 4 bytes of memory
    per inflated byte): a 1 MiB file of zeros inflating to 1 GiB took 4.3 GB. The stream is inflated
    here first, in bounded steps, and refused once it holds more than a single-frame image within the
    pixel limit can."""
    _check_items(_inflated(f, start, limit * _INFLATED_BYTES_PER_PIXEL + METADATA_BYTES, limit, p), p)


def _inflated(f, start: int, cap: int, limit: int, p: Path) -> Iterator[bytes]:
    """The deflated dataset from ``start`` on, inflated in steps of at most 4 MiB; an InputError once
    it holds more than ``cap`` bytes."""
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    f.seek(start)
    try:
        while data := f.read(1 << 20):
            while data and not inflater.eof:  # at the end, bytes after the stream stay in unconsumed_tail
                out = inflater.decompress(data, 1 << 22)
                total += len(out)
                if total > cap:
                    raise InputError(f"{p}: its deflated dataset inflates past {cap} bytes, more than a single-frame "
                                     f"image within the pixel limit ({limit} pixels) holds")
                yield out
                data = inflater.unconsumed_tail
            if inflater.eof:
                return
    except zlib.error as exc:
        raise InputError(f"{p}: not a readable DICOM file (its deflated dataset is corrupt: {exc})") from None


def _chunks(f, start: int) -> Iterator[bytes]:
    f.seek(start)
    while data := f.read(1 << 20):
        yield data


def _check_items(chunks: Iterable[bytes], p: Path) -> None:
    """An InputError when the dataset's bytes hold more than MAX_DICOM_ITEMS sequence item tags, counted
    before pydicom builds them (in pixel data such bytes fall about once in 4 GB)."""
    count, tail = 0, b""
    for chunk in chunks:
        # a tag split between two chunks lies within the last 3 bytes before and the first 3 after
        seam = tail + chunk[:3]
        count += sum(chunk.count(tag) + seam.count(tag) for tag in _ITEM_TAGS)
        if count > MAX_DICOM_ITEMS:
            raise InputError(f"{p}: a DICOM dataset of more than {MAX_DICOM_ITEMS} sequence items (a radiograph's "
                             "header holds hundreds); refused before parsing it")
        tail = (tail + chunk[-3:])[-3:]


def _pixel_data_start(f, header, size: int, p: Path) -> int | None:
    """Where the Pixel Data element starts (None: no such element, or unknown); a file that ends
    inside the header is refused.

    pydicom ends a dataset quietly where the file ends, in an element's value or header, so the
    cut is recognised here from the lengths the elements declare. ``f`` is where the header read
    with ``stop_before_pixels`` left it: at the Pixel Data element, or at the end of what it read."""
    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    implicit, little = header.original_encoding
    if str(syntax) == DEFLATED or implicit is None or little is None:
        return None  # positions are in the inflated stream; a cut stream fails to inflate, an error already
    stopped_at = f.tell()
    tag = f.read(4)
    at_pixels = len(tag) == 4 and struct.unpack(("<" if little else ">") + "H", tag[:2])[0] == PIXEL_DATA_GROUP
    elements = (header.get_item(key, keep_deferred=True) for key in header.keys())  # as read, unconverted
    last = max(elements, key=lambda e: getattr(e, "value_tell", None) or getattr(e, "file_tell", None) or 0,
               default=None)
    length = getattr(last, "length", UNDEFINED_LENGTH)  # converted and sequence elements have none
    if last is not None and length != UNDEFINED_LENGTH:
        end = last.value_tell + length
        if end > size:
            raise _truncated(p, f"it ends inside element {last.tag}: {size - last.value_tell} of its {length} bytes")
        if not at_pixels and 0 < size - end < 8:  # too short for an element header: pydicom's end of file
            raise _truncated(p, f"it ends {size - end} bytes into the element after {last.tag}")
        if not at_pixels and end < size:
            raise InputError(f"{p}: DICOM file is corrupt (pydicom stopped reading at byte {end} of {size})")
    return stopped_at if at_pixels else None


def _check_pixel_data_length(f, start: int, size: int, encoding: tuple[bool, bool], p: Path) -> None:
    """The Pixel Data element at ``start`` ends within the file: its declared length, or for
    encapsulated (compressed) data its fragment items up to the sequence delimiter."""
    implicit, order = encoding[0], "<" if encoding[1] else ">"
    f.seek(start)
    header = f.read(12)
    if implicit and len(header) >= 8:
        (length,), value_at = struct.unpack(order + "L", header[4:8]), start + 8
    elif header[4:6] in LONG_LENGTH_VRS and len(header) == 12:
        (length,), value_at = struct.unpack(order + "L", header[8:12]), start + 12
    else:
        return  # an element header pydicom may still make sense of; decoding judges it
    if length != UNDEFINED_LENGTH:
        if value_at + length > size:
            raise _cut_pixels(p, f"the file holds {max(size - value_at, 0)} of its {length} bytes")
        return
    position = value_at
    while True:  # fragment items, each with its length, then the sequence delimiter
        f.seek(position)
        item = f.read(8)
        if len(item) < 8:
            raise _cut_pixels(p, f"the file ends after {size} bytes, before the end of its compressed fragments")
        group, element, length = struct.unpack(order + "HHL", item)
        if (group, element) == SEQUENCE_DELIMITER:
            return
        if (group, element) != ITEM:
            raise _cut_pixels(p, f"element ({group:04X},{element:04X}) at byte {position}, where a fragment item "
                                 "belongs")
        position += 8 + length
        if position > size:
            raise _cut_pixels(p, f"a fragment ends at byte {position}, the file after {size} bytes")


def _sop_class(ds):
    """The object's SOP Class UID (a pydicom UID), from the dataset or else its File Meta; None without."""
    meta = getattr(ds, "file_meta", None)
    return ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)


def _no_pixel_data(ds, p: Path) -> InputError:
    """An image object without pixel data was cut before it (or had it removed); others are not
    images. The SOP class says which (as in batch discovery), else the presence of Rows."""
    sop = _sop_class(ds)
    name = str(getattr(sop, "name", "") or "")
    known = bool(name) and name != str(sop)
    what = f" ({name})" if name else ""
    if ("Image Storage" in name) if known else "Rows" in ds:
        return InputError(f"{p}: DICOM image{what} has no pixel data: the file is truncated before it, "
                          "or it was left out")
    return InputError(f"{p}: DICOM object has no pixel data{what}; only image objects can be segmented")


def _check_compressed_frame(ds, p: Path, limit: int) -> np.ndarray | None:
    """The frame inside encapsulated pixel data: its JPEG or JPEG 2000 header, not the DICOM header,
    says how large the decoder's output will be, so that size is checked against the pixel limit and
    the header's Rows x Columns before decoding. A JPEG Baseline/Extended frame is decoded with
    libjpeg-turbo's warnings as errors: pydicom's decoders fill damaged JPEG data in and say nothing,
    where the same data as a .jpg file is refused (:func:`chexmask_rt.jpeg_strict.decode_jpeg_strict`).
    A gray JPEG Lossless or 12-bit JPEG Extended frame is read strictly (:mod:`chexmask_rt.dicom_frames`).
    Returns the pixel array as pydicom would give it, so that the frame need not be decoded twice (None:
    pydicom is to decode it)."""
    import io

    from pydicom.encaps import get_frame

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not getattr(syntax, "is_encapsulated", False):
        return None
    try:
        # the whole frame, whatever its fragments and Basic Offset Table
        frame = get_frame(ds.PixelData, 0, number_of_frames=1)
    except Exception as exc:  # malformed item tags or lengths
        raise _cut_pixels(p, first_line(exc)) from None
    name = f"{p} (its compressed frame)"
    size = j2k_size(frame)
    is_jpeg = size is None and frame[:2] == b"\xff\xd8"
    if is_jpeg:
        size = jpeg_size(io.BytesIO(frame[2:]), name)
    if size is None:
        return None
    check_pixels(*size, name, limit)
    rows, columns = _int_tag(ds, "Rows", 0, p), _int_tag(ds, "Columns", 0, p)
    if size != (columns, rows):
        raise InputError(f"{p}: its compressed frame is {size[0]}x{size[1]} pixels, its header says "
                         f"{columns}x{rows}: the file is corrupt")
    if str(syntax) not in LOSSLESS_JPEG + _DCT_JPEG:  # JPEG-LS frames start alike; pydicom's plugins read them
        return None
    gray = str(ds.get("PhotometricInterpretation", "")).upper() in ("MONOCHROME1", "MONOCHROME2") and \
        _int_tag(ds, "SamplesPerPixel", -1, p) == 1
    allocated = _int_tag(ds, "BitsAllocated", -1, p)
    stored = Stored(allocated, _int_tag(ds, "BitsStored", allocated, p), _int_tag(ds, "PixelRepresentation", 0, p) == 1)
    if str(syntax) in LOSSLESS_JPEG:
        return lossless_pixels(frame, stored, name, limit) if gray else None
    decoded = decode_jpeg_strict(np.frombuffer(frame, np.uint8), name)
    if not isinstance(decoded, np.ndarray):  # a kind TurboJPEG leaves: 12 bits, or colour it will not convert
        return extended_pixels(frame, stored, name, gray) if str(syntax) == EXTENDED_JPEG else None
    # a gray 8-bit frame whose header agrees: libjpeg-turbo's pixels, as pydicom's decoder gives them (a
    # header that disagrees goes to pydicom, which judges it)
    agrees = gray and (allocated, stored.signed) == (8, False) and 0 < stored.stored <= 8
    return decoded if decoded.ndim == 2 and agrees else None


def _int_tag(ds, keyword: str, default: int, p: Path) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except Exception as exc:  # pydicom raises several types for a malformed value, e.g. a US of one byte
        raise InputError(f"{p}: malformed DICOM {keyword} ({first_line(exc)})") from None


# the numbers of the linear display steps, under the names of the step pydicom applies
_DISPLAY_NUMBERS = {
    "Rescale Slope/Intercept": (("RescaleSlope", "Rescale Slope"), ("RescaleIntercept", "Rescale Intercept")),
    "Window Center/Width": (("WindowCenter", "Window Center"), ("WindowWidth", "Window Width")),
}


def _display_steps(ds) -> tuple[str | None, str | None]:
    """The Modality LUT step and the VOI step that apply (None for none), as pydicom chooses them."""
    modality = "Modality LUT Sequence" if ds.get("ModalityLUTSequence") else \
        "Rescale Slope/Intercept" if "RescaleSlope" in ds and "RescaleIntercept" in ds else None
    # an emptied window (anonymisers blank them) is no window
    window = all(keyword in ds and ds[keyword].VM for keyword in ("WindowCenter", "WindowWidth"))
    voi = "VOI LUT Sequence" if ds.get("VOILUTSequence") else "Window Center/Width" if window else None
    return modality, voi


def _check_display_numbers(ds, steps, p: Path) -> None:
    """NaN or infinity in a slope, intercept, center or width, or a slope of 0, renders every pixel
    alike; the blank picture would be segmented as if it were an image."""
    for step in steps:
        for keyword, name in _DISPLAY_NUMBERS.get(step, ()):
            element = ds[keyword]
            value = element.value[0] if element.VM > 1 else element.value  # pydicom's window index 0
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{p}: DICOM {name} is {value!r}, not a number") from None
            if not math.isfinite(number):
                raise InputError(f"{p}: DICOM {name} is {number}, not a finite number")
            if keyword == "RescaleSlope" and number == 0:
                raise InputError(f"{p}: DICOM Rescale Slope is 0: every pixel would get the same value")


def _render_gray(pixels: np.ndarray, ds, photometric: str, bits_stored: int, p: Path) -> np.ndarray:
    modality, voi = _display_steps(ds)
    _check_display_numbers(ds, (modality, voi), p)
    if pixels.dtype.kind in "ui" and pixels.dtype.itemsize <= 2:
        # every step maps one stored value to one output, so each value of the image's range is rendered
        # once and the image looked up: the whole image in float64, several times, took 16 bytes a pixel
        # (2 GB and 4.7 s for 8000 x 8000), the table takes at most 65536 entries
        first, last = int(pixels.min()), int(pixels.max())
        domain = np.arange(first, last + 1, dtype=np.int64).astype(pixels.dtype)  # the image's own arithmetic
        present = _present(pixels, first, last - first + 1)
        padding = _padding(ds, domain.astype(np.int64))
        if padding is not None and (present & ~padding).any():
            present &= ~padding  # the image's range, where no window gives it, is the image's, not its border's
        table, uniform = _rendered(domain, ds, modality, voi, photometric, bits_stored, p, present)
        if padding is not None:
            table[padding] = 0  # shown black, as viewers show padding, whatever the window makes of its value
        out = _looked_up(table, pixels, first)
        # from the range and the table: no more passes over the image
        varied, rendered_alike = first != last, bool(np.ptp(table[present]) == 0)
    else:
        out, uniform = _rendered(pixels, ds, modality, voi, photometric, bits_stored, p, None)
        varied, rendered_alike = pixels.min() != pixels.max(), out.min() == out.max()
    if rendered_alike and varied:
        # a uniform stored image may be rendered uniform; a varied one only by a bad attribute
        step = (modality if uniform and modality else voi) or "rendering"
        raise InputError(f"{p}: the DICOM {step} maps every pixel to one value, though the stored pixels "
                         "vary: it is malformed or does not fit this image")
    return out


_ROWS_AT_ONCE = 256  # bounds the index temporaries of a look-up to 256 rows


def _padding(ds, values: np.ndarray) -> np.ndarray | None:
    """Which stored ``values`` are Pixel Padding (a value, or the range it spans with Pixel Padding Range
    Limit): a border outside the image that, left in, took part in its min-max and washed the picture
    out. None without padding."""
    if "PixelPaddingValue" not in ds or ds["PixelPaddingValue"].VM != 1:
        return None
    a = _signed_as_written(ds, int(ds.PixelPaddingValue))
    limit = ds.get("PixelPaddingRangeLimit")
    b = _signed_as_written(ds, int(limit)) if limit is not None and ds["PixelPaddingRangeLimit"].VM == 1 else a
    return (values >= min(a, b)) & (values <= max(a, b))


def _signed_as_written(ds, value: int) -> int:
    """A value of a signed image's (Pixel Representation 1) US-or-SS attribute, whichever way it was
    written: as US, -2048 reads 63488."""
    return value - 2**16 if value >= 2**15 and int(ds.get("PixelRepresentation", 0) or 0) == 1 else value


def _present(pixels: np.ndarray, first: int, count: int) -> np.ndarray:
    """Which of the values first .. first + count - 1 the image holds."""
    present = np.zeros(count, dtype=bool)
    for top in range(0, pixels.shape[0], _ROWS_AT_ONCE):
        present[pixels[top:top + _ROWS_AT_ONCE].astype(np.int32) - first] = True
    return present


def _looked_up(table: np.ndarray, pixels: np.ndarray, first: int) -> np.ndarray:
    out = np.empty(pixels.shape, dtype=table.dtype)
    for top in range(0, pixels.shape[0], _ROWS_AT_ONCE):
        out[top:top + _ROWS_AT_ONCE] = table[pixels[top:top + _ROWS_AT_ONCE].astype(np.int32) - first]
    return out


def _rendered(stored: np.ndarray, ds, modality: str | None, voi: str | None, photometric: str, bits_stored: int,
              p: Path, present: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """``stored`` values through the display chain to uint8/uint16, and whether the Modality step gave
    every value alike. ``present``: which of ``stored`` the image holds (None: all), where the range
    of an image without a VOI step is taken."""
    from pydicom.pixels import apply_modality_lut, apply_windowing

    try:
        with np.errstate(over="ignore", invalid="ignore"):  # thread-local; an overflow is refused just below
            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:  # a malformed Modality LUT
        raise InputError(f"{p}: cannot apply the DICOM {modality} ({first_line(exc)})") from None
    if not np.isfinite(values).all():
        raise InputError(f"{p}: the DICOM {modality} gives values beyond the floating-point range")
    held = values if present is None else values[present]
    uniform = bool(held.min() == held.max())
    try:
        if voi == "VOI LUT Sequence":
            values, lo, hi = _voi_lut(ds, values)
        elif voi:
            # ±inf land on the window function's two ends, whatever the VOI LUT Function
            lo, hi = (float(v) for v in apply_windowing(np.array([-np.inf, np.inf]), ds))
            values = apply_windowing(values, ds)
        else:
            lo, hi = float(held.min()), float(held.max())
    except Exception as exc:  # a Window Width below 1, an unknown VOI LUT Function, a malformed VOI LUT
        raise InputError(f"{p}: cannot apply the DICOM {voi} ({first_line(exc)})") from None
    full = 255.0 if 0 < bits_stored <= 8 else 65535.0
    # a negative Rescale Slope swaps pydicom's window output ends (lo > hi); the division keeps the direction
    scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0) * full if hi != lo else np.zeros_like(values)
    if _displayed_inverted(ds, photometric):
        scaled = full - scaled
    return np.rint(scaled).astype(np.uint8 if full == 255.0 else np.uint16), uniform


def _displayed_inverted(ds, photometric: str) -> bool:
    """Whether low values are displayed bright: the Presentation LUT Shape when the file gives one (a
    MONOCHROME2 image marked INVERSE is displayed as a negative, as pydicom's and highdicom's renderings
    have it), else MONOCHROME1."""
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return shape == "INVERSE" if shape in ("INVERSE", "IDENTITY") else photometric == "MONOCHROME1"


def _voi_lut(ds, values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``values`` through the first VOI LUT, and the LUT's output range 0 .. 2^bits - 1 (PS3.3 C.11.2.1.2),
    which the display spans. Looked up here: pydicom 3.0.2's apply_voi indexes a LUT of 8-bit entries
    with 8-bit indices, which wrap past 256 entries (a 1024-entry LUT rendered noise, unflagged), and
    unpacks OW data as one entry per word (8-bit entries packed two to a word were refused)."""
    item = ds.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries, first = entries or 2**16, _signed_as_written(ds, first)
    data = item.LUTData
    if isinstance(data, bytes):  # OW: words in the dataset's byte order
        little = (getattr(ds, "original_encoding", (None, True))[1] is not False)
        words = np.frombuffer(data[:len(data) // 2 * 2], dtype="<u2" if little else ">u2")
        table = words.astype("<u2").view(np.uint8) if bits == 8 and len(words) * 2 == entries else words
    else:
        table = np.atleast_1d(np.asarray(data, dtype=np.int64))
    if len(table) < entries or not 8 <= bits <= 16:
        raise ValueError(f"LUT Descriptor says {entries} entries of {bits} bits, LUT Data holds {len(table)}")
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, entries - 1)
    return table[:entries].astype(np.float64)[index], 0.0, float(2**bits - 1)
