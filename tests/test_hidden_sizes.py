"""Files whose header, as the pixel limit reads it, declares another size than the decoder decodes:
the limit must see the decoder's size, before the decoder's allocation (a 239-byte JPEG decoded to
32000x32000, 6.1 GB, and was segmented), and colour samples of any type end in a typed error."""
from __future__ import annotations

import struct

import imagecodecs
import numpy as np
import pytest

from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image

LIMIT = 4_000_000  # pixels: the hidden frames below hold 9 million, the decoy ones 4,096


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _jpeg_hiding_its_frame(big: int, small: int) -> bytes:
    """FF 00 after SOI, then a length: read as a marker, its 'segment' covers the big frame header that
    libjpeg, which discards FF 00 as stray bytes, decodes; the small frame header after it sits at the
    start of an APP1 segment libjpeg skips. The big frame's sampling (3x1) is one TurboJPEG does not
    classify, so OpenCV decodes it, filling the missing scan in."""
    big_sof = _segment(0xC0, struct.pack(">BHHB", 8, big, big, 3) + bytes([1, 0x31, 0, 2, 0x11, 0, 3, 0x11, 0]))
    small_sof = _segment(0xC0, struct.pack(">BHHB", 8, small, small, 1) + bytes([1, 0x11, 0]))
    decoy = b"\xff\x00" + struct.pack(">H", 2 + len(big_sof) + 4)
    tables = (_segment(0xDB, b"\x00" + bytes([1] * 64)) + _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")
              + _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00"))
    scan = _segment(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0])) + bytes(64)
    return b"\xff\xd8" + decoy + big_sof + _segment(0xE1, small_sof + bytes(4)) + tables + scan + b"\xff\xd9"


def _tiff_listing_its_size_twice(big: int, small: int) -> bytes:
    """An 8-bit gray TIFF, deflated zeros, whose directory lists width and length twice: the image's
    first (libtiff keeps the first of a repeated tag), then a small one."""
    import zlib

    strip = zlib.compress(bytes(big * big), 9)
    entries = [(256, big), (256, small), (257, big), (257, small), (258, 8), (259, 8), (262, 1), (273, 0),
               (277, 1), (278, big), (279, len(strip))]
    strip_at = 8 + 2 + len(entries) * 12 + 4
    body = b"".join(struct.pack("<HHII", tag, 4, 1, strip_at if tag == 273 else value) for tag, value in entries)
    return b"II*\x00" + struct.pack("<IH", 8, len(entries)) + body + struct.pack("<I", 0) + strip


@pytest.mark.parametrize("name, data", [("hidden.jpg", _jpeg_hiding_its_frame(3000, 64)),
                                        ("twice.tif", _tiff_listing_its_size_twice(3000, 64))])
def test_the_pixel_limit_sees_the_size_the_decoder_decodes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"image is 3000x3000 \(9.0 megapixels\), above the pixel limit"):
        read_image(path, max_pixels=LIMIT)


def test_colour_tiffs_of_any_sample_type_read_or_are_refused_in_words(tmp_path):
    """A float64, int16 or uint32 RGB TIFF raised OpenCV's own error (BGR to RGB before the type check):
    a traceback from the command line, an untyped error from the API."""
    rgb = np.zeros((8, 10, 3))
    rgb[..., 0] = 1.0  # red: the channel order is checked too
    path = tmp_path / "f64.tif"
    path.write_bytes(imagecodecs.tiff_encode(rgb, photometric="rgb"))
    got = read_image(path)
    assert got.dtype == np.float64 and got.shape == (8, 10, 3)
    np.testing.assert_array_equal(got, rgb)
    for dtype in (np.uint32, np.int16):
        path = tmp_path / f"{np.dtype(dtype).name}.tif"
        path.write_bytes(imagecodecs.tiff_encode(np.zeros((8, 10, 3), dtype), photometric="rgb"))
        with pytest.raises(InputError, match=f"{np.dtype(dtype).name} pixels are not supported"):
            read_image(path)


def test_a_jpeg_of_thousands_of_scans_is_refused_before_its_decode(tmp_path, example1):
    """Each progressive scan is another pass over the image: a 685 kB file of 2,688 scans took 93 s. A
    sound progressive JPEG (Pillow's, 6 to 10 scans) still reads."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(example1).convert("L").save(buf, "JPEG", progressive=True, quality=90)
    sound = buf.getvalue()
    assert 1 < sound.count(b"\xff\xda") <= 10
    (tmp_path / "sound.jpg").write_bytes(sound)
    assert read_image(tmp_path / "sound.jpg").shape == (899, 786)
    # the last scan repeated: each repeat refines nothing, but costs a pass
    last = sound.rindex(b"\xff\xda")
    repeated = sound[:last] + sound[last:-2] * 600 + b"\xff\xd9"
    (tmp_path / "scans.jpg").write_bytes(repeated)
    with pytest.raises(InputError, match="a JPEG of more than 500 scans"):
        read_image(tmp_path / "scans.jpg")
