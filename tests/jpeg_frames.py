"""JPEG frames for tests, as DICOM's JPEG syntaxes hold them, and damaged copies of them.

Lossless frames (ITU-T T.81 process 14, SOF3) and 12-bit DCT ones come from libjpeg-turbo
(imagecodecs), an implementation independent of the native core's reader; restart intervals and
point transforms of lossless frames, which imagecodecs does not expose, are assembled from its output
by the rules of T.81 Annex H."""
from __future__ import annotations

import struct

import numpy as np

SOF3, SOS, EOI = 0xC3, 0xDA, b"\xff\xd9"


def encode(samples: np.ndarray, bits: int, predictor: int = 1) -> bytes:
    """One-component lossless JPEG of ``samples`` (values below 2**bits) at ``bits`` precision."""
    import imagecodecs

    data = samples.astype(np.uint8 if bits <= 8 else np.uint16)
    return bytes(imagecodecs.jpeg8_encode(data, lossless=True, predictor=predictor, bitspersample=bits))


def segments(frame: bytes) -> tuple[dict[int, tuple[int, int]], int]:
    """{marker: (offset of its 0xFF, segment length)} up to the scan header, and where its data starts."""
    found, at = {}, 2
    while True:
        marker, (length,) = frame[at + 1], struct.unpack(">H", frame[at + 2:at + 4])
        found[marker] = (at, length)
        at += 2 + length
        if marker == SOS:
            return found, at


def with_point_transform(samples: np.ndarray, bits: int, shift: int, predictor: int = 1) -> bytes:
    """The frame of ``samples`` (multiples of 2**shift) with point transform ``shift``: the data of
    ``samples >> shift`` at ``bits - shift`` precision (Annex H: prediction runs on shifted samples, its
    first value 2**(bits - shift - 1)), under a frame header of ``bits`` and a scan header's Al of ``shift``."""
    frame = bytearray(encode(samples >> shift, bits - shift, predictor))
    found, _ = segments(bytes(frame))
    frame[found[SOF3][0] + 4] = bits
    frame[found[SOS][0] + 9] = shift
    return bytes(frame)


def with_restarts(samples: np.ndarray, bits: int, rows: int, predictor: int = 1) -> bytes:
    """The frame of ``samples`` with a restart every ``rows`` rows, written here (libjpeg-turbo chooses
    its Huffman table per image, so its frames of the intervals cannot be joined): a fixed table (the
    17 difference categories as 5-bit codes), prediction restarting as at the image's first row in each
    interval, RST0..RST7 in turn. Small images only: the bits are written one sample at a time."""
    x = samples.astype(np.int64)
    height, width = x.shape
    out = bytearray()
    for start in range(0, height, rows):
        if start:
            out += bytes([0xFF, 0xD0 + (start // rows - 1) % 8])
        band = x[start:start + rows]
        predicted = np.empty_like(band)
        predicted[0, 0], predicted[0, 1:] = 1 << (bits - 1), band[0, :-1]
        a, b, c = band[1:, :-1], band[:-1, 1:], band[:-1, :-1]
        predicted[1:, 0] = band[:-1, 0]
        predicted[1:, 1:] = [a, b, c, a + b - c, a + ((b - c) >> 1), b + ((a - c) >> 1), (a + b) >> 1][predictor - 1]
        diff = (band - predicted + 32768) % 65536 - 32768  # -32768 stands for +32768, category 16
        code = []
        for d in diff.ravel().tolist():
            category = 16 if d == -32768 else abs(d).bit_length()
            code.append(format(category, "05b"))
            if 0 < category < 16:
                code.append(format(d if d > 0 else d + (1 << category) - 1, f"0{category}b"))
        bits_ = "".join(code)
        bits_ += "1" * (-len(bits_) % 8)  # padding with 1-bits (F.1.2.3)
        data = int(bits_, 2).to_bytes(len(bits_) // 8, "big") if bits_ else b""
        out += data.replace(b"\xff", b"\xff\x00")
    table = bytes([0x00] + [0, 0, 0, 0, 17] + [0] * 11 + list(range(17)))
    return (b"\xff\xd8" + b"\xff\xc3" + struct.pack(">HBHHB", 11, bits, height, width, 1) + bytes([1, 0x11, 0])
            + b"\xff\xc4" + struct.pack(">H", 2 + len(table)) + table
            + b"\xff\xdd" + struct.pack(">HH", 4, rows * width)
            + b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes([1, 0x00, predictor, 0, 0]) + bytes(out) + EOI)


def jpeg_dicom(path, frame: bytes, rows: int, columns: int, *, bits_allocated: int = 16, bits_stored: int = 16,
               signed: bool = False, photometric: str = "MONOCHROME2", syntax: str = "1.2.840.10008.1.2.4.70") -> None:
    """A one-frame DICOM file holding ``frame`` under a JPEG transfer syntax (JPEG Lossless SV1 unless told)."""
    import pydicom
    from pydicom.encaps import encapsulate

    from test_dicom import make_dicom

    ds = pydicom.dcmread(make_dicom(path, np.zeros((rows, columns), np.uint8 if bits_allocated == 8 else np.uint16),
                                    photometric, BitsStored=bits_stored))
    ds.PixelRepresentation = int(signed)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)


def _cut(frame: bytes) -> bytes:
    return frame[:len(frame) * 2 // 3]


def _retabled(frame: bytes) -> bytes:
    """The frame with its first Huffman table's longest code taken away: the data uses a code it no longer has."""
    at = frame.index(b"\xff\xc4")
    (length,) = struct.unpack(">H", frame[at + 2:at + 4])
    counts = bytearray(frame[at + 5:at + 21])
    longest = max(i for i, n in enumerate(counts) if n)
    counts[longest] -= 1
    total = sum(frame[at + 5:at + 21])
    values = frame[at + 21:at + 21 + total][:-1]  # the longest code's value is the last
    rest = frame[at + 21 + total:at + 2 + length]  # the segment's other tables
    return frame[:at + 2] + struct.pack(">H", length - 1) + frame[at + 4:at + 5] + bytes(counts) + values + rest + \
        frame[at + 2 + length:]


# damage that breaks a frame's code stream, and the reason the core's reader gives
DAMAGE = {
    "cut short": (_cut, "the entropy-coded data ends before the image does"),
    "cut, end marker added": (lambda f: _cut(f) + EOI, "the entropy-coded data ends before the image does"),
    "data past the end": (lambda f: f[:-2] + b"\x5a\xa5" + EOI, "continues past where it should end"),
    "a code the table lacks": (_retabled, "a Huffman code its table does not hold"),
}


# DCT frames from chosen symbols: fixed-length tables (DC categories 0-15 as 5-bit codes; AC end of
# block, sixteen zeros, a zero run of 15 then size 1, size 1, size 11 as 3-bit codes) and blocks of a
# DC difference and AC symbols whose extra bits are all 1.
_DC_SYMBOLS = list(range(16))
_AC_SYMBOLS = [0x00, 0xF0, 0xF1, 0x01, 0x0B]


def _huffman_segment(klass: int, symbols: list[int], length: int) -> bytes:
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    body = bytes([klass << 4]) + bytes(counts) + bytes(symbols)
    return b"\xff\xc4" + struct.pack(">H", 2 + len(body)) + body


def dct_block(dc: int = 0, ac: tuple = (), end: bool = True) -> str:
    """One block's bits: DC difference category ``dc``, the AC symbols ``ac``, then end of block."""
    bits = format(_DC_SYMBOLS.index(dc), "05b") + "1" * dc
    for symbol in ac:
        bits += format(_AC_SYMBOLS.index(symbol), "03b") + "1" * (symbol & 15)
    return bits + (format(_AC_SYMBOLS.index(0x00), "03b") if end else "")


def dct_frame(width: int, height: int, components: list[tuple[int, int]], scans: list[tuple[list[int], int]],
              block: str | None = None) -> bytes:
    """An 8-bit baseline frame of ``components`` sampled (h, v), whose ``scans`` each name their components
    (indices) and hold that many copies of ``block`` (a zero block unless told)."""
    block = block or dct_block()
    sof = struct.pack(">HBHHB", 8 + 3 * len(components), 8, height, width, len(components)) + b"".join(
        bytes([i + 1, h << 4 | v, 0]) for i, (h, v) in enumerate(components))
    out = b"\xff\xd8\xff\xdb\x00\x43\x00" + bytes([1] * 64) + b"\xff\xc0" + sof
    out += _huffman_segment(0, _DC_SYMBOLS, 5) + _huffman_segment(1, _AC_SYMBOLS, 3)
    for indices, blocks in scans:
        header = struct.pack(">HB", 6 + 2 * len(indices), len(indices)) + b"".join(bytes([i + 1, 0]) for i in indices)
        bits = block * blocks
        bits += "1" * (-len(bits) % 8)
        data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
        out += b"\xff\xda" + header + b"\x00\x3f\x00" + data.replace(b"\xff", b"\xff\x00")
    return out + EOI
