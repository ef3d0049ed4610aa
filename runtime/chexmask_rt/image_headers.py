"""An image file's declared size, read from its header without decoding it.

This is what lets :mod:`chexmask_rt.image_io` refuse an image above the pixel limit
(:mod:`chexmask_rt.limits`) before a decoder allocates it, refuse a multi-page TIFF instead of
silently using its first page, and refuse a cut or corrupt PNG before libpng prints its own
error lines. Each reader touches only the header's bytes (JPEG segments and TIFF directories
are skipped by seeking), and gives up after a bounded number of steps on a hostile file.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from .errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"  # start of image; a marker (0xff) follows it in every JPEG
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order
BMP_SIGNATURE = b"BM"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}  # baseline..lossless, and JPEG-LS
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length
_MAX_SEGMENTS = 10_000  # real JPEGs have tens of segments before their frame header
_MAX_IFDS = 10_000
_MAX_STRAY_BYTES = 1 << 16
_MAX_PNG_CHUNKS = 1_000_000  # a 64 MP 16-bit PNG in 8 kB IDAT chunks has about 65,000
_PNG_CRITICAL = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
_TIFF_ORIENTATION = 274
# the TIFF field types libtiff accepts for a SHORT tag such as Orientation, with their struct codes
_TIFF_INTEGERS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}
_TIFF_UNSIGNED = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8: the types of sizes and codes


@dataclass(frozen=True)
class Header:
    """What a header declares: the format, the first image's size and the number of full-size pages,
    and a TIFF's Orientation tag (1..8; 1 where it is absent or libtiff ignores it, and for other formats).

    ``width`` and ``height`` are the stored raster's, whatever the orientation. A TIFF's first image
    also gives ``photometric`` (tag 262: 0 is WhiteIsZero), ``bits`` (258, its first sample's),
    ``extra_samples`` (338: an alpha channel), ``planar`` (284: 2 is one plane per sample) and
    ``sample_format`` (339, its first sample's: 3 is floating point); None where absent and for other
    formats."""

    format: str  # "png", "jpeg", "tiff", "bmp"
    width: int
    height: int
    pages: int = 1
    orientation: int = 1
    photometric: int | None = None
    bits: int | None = None
    extra_samples: bool = False
    planar: int | None = None
    sample_format: int | None = None


def _corrupt(name: str, what: str) -> InputError:
    return InputError(f"{name}: not a readable image ({what})")


def read_header(f: BinaryIO, name: str) -> Header:
    """The header of a PNG, JPEG, TIFF or BMP file open at its start; InputError for anything else."""
    try:
        return _read_header(f, name)
    except struct.error:  # a field that the file's end cuts short
        raise _corrupt(name, "header cut short") from None


def _read_header(f: BinaryIO, name: str) -> Header:
    head = f.read(32)
    if head.startswith(PNG_SIGNATURE):
        return _png(head, name)
    if head.startswith(JPEG_SOI):
        f.seek(2)
        width, height = jpeg_size(f, name)
        return Header("jpeg", width, height)
    if head[:4] in TIFF_SIGNATURES:
        return _tiff(f, head, name)
    if head.startswith(BMP_SIGNATURE):
        return _bmp(head, name)
    raise _corrupt(name, "not a PNG, JPEG, TIFF, BMP or DICOM file")


def _png(head: bytes, name: str) -> Header:
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise _corrupt(name, "PNG without its IHDR header")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise _corrupt(name, f"PNG header declares {width}x{height} pixels")
    return Header("png", width, height)


def check_png_chunks(data: memoryview | bytes, name: str) -> None:
    """InputError unless every chunk up to IEND is whole and the critical ones pass their CRC, and the
    file is not animated.

    libpng rejects such files too, but prints 'libpng error' lines on stderr doing so."""
    view = memoryview(data)
    pos = len(PNG_SIGNATURE)
    frames: int | None = None  # acTL's frame count: an animated PNG
    seen_image = first_frame_is_image = False
    for _ in range(_MAX_PNG_CHUNKS):
        if pos + 12 > len(view):
            raise _corrupt(name, "PNG cut short: no IEND chunk")
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        end = pos + 12 + length
        if end > len(view):
            raise _corrupt(name, f"PNG cut short inside its {kind.decode('latin-1')!r} chunk")
        # every chunk, as a JPEG's warnings are errors: libpng drops an ancillary chunk that fails
        # its CRC with a 'libpng warning' line on stderr, and stops at an unknown critical one
        (crc,) = struct.unpack(">I", view[end - 4:end])
        if zlib.crc32(view[pos + 4:end - 4]) != crc:
            raise _corrupt(name, f"PNG {kind.decode('latin-1')!r} chunk fails its CRC: the file is corrupt")
        if kind[0] < 0x61 and kind not in _PNG_CRITICAL:  # an upper-case first letter marks a critical chunk
            raise _corrupt(name, f"PNG with an unknown critical chunk {kind.decode('latin-1')!r}: the file is corrupt "
                                 "or of a PNG kind no decoder here reads")
        if kind == b"acTL" and length >= 8:
            (frames,) = struct.unpack(">I", view[pos + 8:pos + 12])
        elif kind == b"fcTL" and not seen_image:
            first_frame_is_image = True
        elif kind == b"IDAT" and not seen_image:
            seen_image = True
            # an APNG: decoders differ on which picture they return (the default image, which need not be
            # one of the frames, or the first frame); one frame that is the default image is a plain PNG
            if frames is not None and (frames > 1 or not first_frame_is_image):
                raise InputError(f"{name}: animated PNG ({frames} frame{'s' * (frames != 1)}"
                                 f"{'' if first_frame_is_image else ' and a default image'}); only single-image "
                                 "files are supported")
        if kind == b"IEND":
            return
        pos = end
    raise _corrupt(name, f"PNG with more than {_MAX_PNG_CHUNKS} chunks")


def jpeg_size(f: BinaryIO, name: str) -> tuple[int, int]:
    """(width, height) from the frame header of a JPEG stream read just after its SOI marker."""
    for _ in range(_MAX_SEGMENTS):
        marker = _next_marker(f, name)
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise _corrupt(name, "JPEG without a frame header before its image data")
        raw = f.read(2)
        if len(raw) < 2:
            raise _corrupt(name, "JPEG cut short inside a segment header")
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            raise _corrupt(name, f"JPEG segment of impossible length {length}")
        if marker in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                raise _corrupt(name, "JPEG cut short inside its frame header")
            height, width = struct.unpack(">HH", frame[1:5])
            if width == 0 or height == 0:  # 0 rows: the height comes later (DNL), which OpenCV cannot read
                raise _corrupt(name, f"JPEG frame header declares {width}x{height} pixels")
            return width, height
        f.seek(length - 2, 1)
    raise _corrupt(name, f"JPEG with more than {_MAX_SEGMENTS} segments before its frame header")


def jpeg_cut_before_scan(data: bytes) -> bool:
    """Whether a JPEG stream (SOI first) ends before the whole header of its first scan: decoders that
    stop at a table left out say the image is of a kind they do not read, when it is cut short."""
    pos = 2
    for _ in range(_MAX_SEGMENTS):
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes, then the marker's code
            pos += 1
        if pos >= len(data):
            return True
        marker, pos = data[pos], pos + 1
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > len(data):
            return True
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if pos + length > len(data):
            return True
        if marker == 0xDA:
            return False
        pos += length
    return False  # not cut short: too many segments is another fault, said elsewhere


def _next_marker(f: BinaryIO, name: str) -> int:
    """The code of the next JPEG marker, past stray bytes and 0xFF fill bytes, as libjpeg finds it:
    0xFF 0x00 is no marker but two stray bytes (read as a marker with a length, it hid a 32000x32000
    frame header from the pixel limit in the bytes it skipped, while libjpeg decoded that frame)."""
    byte, skipped = f.read(1), 0
    while skipped < _MAX_STRAY_BYTES:
        while byte and byte != b"\xff" and skipped < _MAX_STRAY_BYTES:
            byte, skipped = f.read(1), skipped + 1
        while byte == b"\xff" and skipped < _MAX_STRAY_BYTES:
            byte, skipped = f.read(1), skipped + 1
        if byte != b"\x00":
            break
    if skipped >= _MAX_STRAY_BYTES:
        raise _corrupt(name, f"JPEG with more than {_MAX_STRAY_BYTES} bytes between two segments")
    if not byte:
        raise _corrupt(name, "JPEG cut short before its frame header")
    return byte[0]


JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def j2k_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG 2000 codestream (SIZ marker), bare or in a JP2 file's codestream box
    (decoders take both), or None when ``data`` is neither."""
    if data.startswith(JP2_SIGNATURE):
        at = 0
        while at + 8 <= len(data):  # top-level boxes: length, type, [extended length], content
            length, kind = struct.unpack(">I4s", data[at:at + 8])
            header = 8
            if length == 1 and at + 16 <= len(data):
                length, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
            if kind == b"jp2c":
                return j2k_size(data[at + header:at + header + 24])
            if length < header:  # 0: the last box, to the end; anything shorter is malformed
                return None
            at += length
        return None
    if len(data) < 24 or data[:4] != b"\xff\x4f\xff\x51":
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[8:24])
    return max(0, xsiz - xosiz), max(0, ysiz - yosiz)


def _tiff(f: BinaryIO, head: bytes, name: str) -> Header:
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    if big:  # BigTIFF: 8-byte offsets and counts, 20-byte entries
        count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
        (offset,) = struct.unpack(order + "Q", head[8:16])
    else:
        count_fmt, entry_size, offset_fmt = "H", 12, "I"
        (offset,) = struct.unpack(order + "I", head[4:8])
    size_of = {"H": 2, "I": 4, "Q": 8}
    file_size = f.seek(0, 2)
    first: tuple[int, int] | None = None
    orientation: int | None = None
    pages, seen = 0, set[int]()
    while offset and len(seen) < _MAX_IFDS:
        if offset in seen:
            raise _corrupt(name, "TIFF whose image directories form a loop")
        seen.add(offset)
        # BigTIFF's 8-byte offsets and counts can point past any file: checked before seeking or reading
        if offset + size_of[count_fmt] > file_size:
            raise _corrupt(name, "TIFF whose image directory lies past its end")
        f.seek(offset)
        (count,) = struct.unpack(order + count_fmt, f.read(size_of[count_fmt]))
        if offset + size_of[count_fmt] + count * entry_size + size_of[offset_fmt] > file_size:
            raise _corrupt(name, "TIFF cut short inside an image directory")
        body = f.read(count * entry_size + size_of[offset_fmt])
        tags = {}
        for i in range(count):
            entry = body[i * entry_size:(i + 1) * entry_size]
            (tag,) = struct.unpack(order + "H", entry[:2])
            if tag in tags:  # libtiff keeps the first of a repeated tag: a later width hid a 32000x32000 image
                continue
            if tag == 338:
                tags[tag] = 1  # present: the image carries alpha (or other extra) samples
            elif tag in (254, 256, 257, 262, 284):
                # one value, inline; SHORT, LONG or LONG8
                value = _inline_integer(entry, order, big, _TIFF_UNSIGNED)
                if value is not None:
                    tags[tag] = value
            elif tag in (258, 339):  # one value per sample: the first (the decoders take all alike)
                value = _inline_integer(entry, order, big, _TIFF_UNSIGNED)  # one sample: any size type, as before
                value = _first_short(f, entry, order, big, file_size) if value is None else value
                if value is not None:
                    tags[tag] = value
            elif tag == _TIFF_ORIENTATION and first is None and orientation is None:
                # only the first directory's: it is the one OpenCV decodes (and turns); libtiff keeps the
                # first of repeated tags, takes one integer of any type and ignores a value outside 1..8
                value = _inline_integer(entry, order, big, _TIFF_INTEGERS)
                orientation = value if value is not None and 1 <= value <= 8 else 1
        if first is None:
            if 256 not in tags or 257 not in tags or not tags[256] or not tags[257]:
                raise _corrupt(name, "TIFF whose first image directory lacks its width or height")
            if tags.get(254, 0) & 1:  # the decoders read the first image: here a thumbnail of a later one
                raise InputError(f"{name}: the first image of this TIFF is a reduced-size copy (a thumbnail); "
                                 "save the radiograph as its own file")
            first = (tags[256], tags[257])
            photometric, bits, extra_samples = tags.get(262), tags.get(258), 338 in tags
            planar, sample_format = tags.get(284), tags.get(339)
        if not tags.get(254, 0) & 1:  # bit 0 of NewSubfileType: a reduced-size copy (thumbnail), not a page
            pages += 1
        (offset,) = struct.unpack(order + offset_fmt, body[count * entry_size:])
    if first is None:
        raise _corrupt(name, "TIFF without an image directory")
    return Header("tiff", *first, pages=max(pages, 1), orientation=orientation or 1, photometric=photometric,
                  bits=bits, extra_samples=extra_samples, planar=planar, sample_format=sample_format)


def _first_short(f: BinaryIO, entry: bytes, order: str, big: bool, file_size: int) -> int | None:
    """The first value of a SHORT entry of one value per sample, inline or where it points (within
    the file); else None."""
    kind = struct.unpack(order + "H", entry[2:4])[0]
    (count,) = struct.unpack(order + ("Q" if big else "I"), entry[4:12 if big else 8])
    inline = entry[12 if big else 8:]
    if kind != 3 or count < 1:
        return None
    if 2 * count <= len(inline):
        return struct.unpack(order + "H", inline[:2])[0]
    (offset,) = struct.unpack(order + ("Q" if big else "I"), inline)
    if offset + 2 > file_size:
        return None
    at = f.tell()
    f.seek(offset)
    value = f.read(2)
    f.seek(at)
    return struct.unpack(order + "H", value)[0] if len(value) == 2 else None


def _inline_integer(entry: bytes, order: str, big: bool, kinds: dict[int, str]) -> int | None:
    """A directory entry's value when it is one integer of a field type in ``kinds`` (type -> struct
    format) held in the entry itself; else None."""
    kind = struct.unpack(order + "H", entry[2:4])[0]
    (count,) = struct.unpack(order + ("Q" if big else "I"), entry[4:12 if big else 8])
    fmt = kinds.get(kind)
    inline = entry[12 if big else 8:]  # after the tag, type and count
    if fmt is None or count != 1 or struct.calcsize(fmt) > len(inline):
        return None
    return struct.unpack(order + fmt, inline[:struct.calcsize(fmt)])[0]


def _bmp(head: bytes, name: str) -> Header:
    if len(head) < 26:
        raise _corrupt(name, "BMP cut short inside its header")
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
        height = abs(height)  # negative: rows stored top-down
    if width <= 0 or height <= 0:
        raise _corrupt(name, f"BMP header declares {width}x{height} pixels")
    return Header("bmp", width, height)
