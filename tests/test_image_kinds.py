"""Valid but unusual image files are read as a viewer displays them, or refused with their reason.

Each case here was read wrongly without a word (found by an audit that wrote the same radiograph in
about 90 encodings): the result was the segmentation of another picture than the file shows.
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image, to_gray

from conftest import IMAGES, read_with_traced_peak


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return to_gray(read_image(IMAGES / "wiki_example1_normal_PA.jpg"))


def _gray_tiff(path: Path, pages: list[tuple[np.ndarray, dict[int, int]]]) -> Path:
    """An uncompressed little-endian TIFF of gray pages, one strip each, written field by field;
    ``pages``: (raster, extra SHORT/LONG tags), e.g. {262: 0} for WhiteIsZero, {254: 1} for a thumbnail."""
    data = bytearray(b"II*\x00\x00\x00\x00\x00")
    link = 4  # where the offset of the next image directory goes
    for raster, extra in pages:
        h, w = raster.shape
        strip = len(data)
        data += raster.astype(raster.dtype.newbyteorder("<")).tobytes()
        tags = {256: w, 257: h, 258: 8 * raster.itemsize, 259: 1, 262: 1, 273: strip, 277: 1, 278: h,
                279: h * w * raster.itemsize} | extra
        data += b"\x00" * (len(data) % 2)
        data[link:link + 4] = struct.pack("<I", len(data))
        data += struct.pack("<H", len(tags))
        for tag in sorted(tags):
            kind = 3 if tags[tag] < 65536 and tag not in (273, 279) else 4
            value = struct.pack("<HH", tags[tag], 0) if kind == 3 else struct.pack("<I", tags[tag])
            data += struct.pack("<HHI", tag, kind, 1) + value
        link = len(data)
        data += b"\x00\x00\x00\x00"
    path.write_bytes(bytes(data))
    return path


def test_a_16_bit_white_is_zero_tiff_is_inverted_as_an_8_bit_one_is(tmp_path, gray):
    """OpenCV inverts an 8-bit WhiteIsZero (Photometric 0) TIFF but returned a 16-bit one as stored: the
    model saw a negative."""
    deep = gray.astype(np.uint16) * 257
    eight = read_image(_gray_tiff(tmp_path / "w8.tif", [(255 - gray, {262: 0})]))
    sixteen = read_image(_gray_tiff(tmp_path / "w16.tif", [(65535 - deep, {262: 0})]))
    np.testing.assert_array_equal(eight, gray)
    np.testing.assert_array_equal(sixteen, deep)


def test_an_rgba_tiff_is_read_without_its_alpha(tmp_path, gray):
    """OpenCV multiplied an 8-bit RGBA TIFF's colour by its alpha: a transparent band became black and
    the landmarks moved 7-24 px, unflagged. Alpha is read nowhere else (PNG, BMP, 16-bit TIFF)."""
    alpha = np.full_like(gray, 255)
    alpha[:100], alpha[:, :90] = 0, 128
    rgba = np.dstack([gray, gray, gray, alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.tif")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), read_image(tmp_path / "a.png"))
    np.testing.assert_array_equal(to_gray(read_image(tmp_path / "a.tif")), gray)


def test_a_tiff_whose_first_image_is_a_thumbnail_is_refused(tmp_path, gray):
    """The decoders read the first image: the thumbnail was segmented and the full image ignored."""
    thumbnail = np.ascontiguousarray(gray[::4, ::4])
    path = _gray_tiff(tmp_path / "t.tif", [(thumbnail, {254: 1}), (gray, {})])
    with pytest.raises(InputError, match=r"t\.tif: the first image of this TIFF is a reduced-size copy \(a thumbnail\)"):
        read_image(path)
    after = read_image(_gray_tiff(tmp_path / "after.tif", [(gray, {}), (thumbnail, {254: 1})]))
    np.testing.assert_array_equal(after, gray)  # a thumbnail after the image is no second page


def test_a_12_bit_jpeg_is_refused_with_its_reason(tmp_path):
    """Refused as 'corrupt, truncated or unsupported format': the decoder's own reason was dropped."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    path = tmp_path / "twelve.jpg"
    path.write_bytes(next(generate_frames(ds.PixelData, number_of_frames=1)))
    with pytest.raises(InputError, match=r"twelve\.jpg: not a readable image \(a kind of JPEG no decoder here reads: "
                                         r"Unsupported JPEG data precision 12\)"):
        read_image(path)


def test_a_12_bit_jpeg_is_refused_without_a_decoder_line_on_stderr(tmp_path, capfd):
    """After TurboJPEG declined the 12-bit precision, OpenCV's libjpeg tried too, failed as well, and on this
    frame (a CR archive's) printed 'Invalid SOS parameters for sequential JPEG' on stderr."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    path = tmp_path / "lossy12.jpg"
    path.write_bytes(next(generate_frames(ds.PixelData, number_of_frames=1)))
    capfd.readouterr()
    with pytest.raises(InputError, match=r"lossy12\.jpg: not a readable image \(a kind of JPEG no decoder here reads: "
                                         r"Unsupported JPEG data precision 12\)"):
        read_image(path)
    assert capfd.readouterr().err == ""


def test_a_4_bit_tiff_is_refused_with_its_bit_depth(tmp_path, gray):
    """Pillow reads a 4-bit gray TIFF, OpenCV does not: it was refused as "corrupt, truncated or unsupported
    format", with nothing to say what to change."""
    nibbles = gray[:, : gray.shape[1] // 2 * 2] >> 4
    packed = (nibbles[:, 0::2] << 4 | nibbles[:, 1::2]).astype(np.uint8)  # two samples a byte, first one high
    path = _gray_tiff(tmp_path / "four.tif", [(packed, {256: nibbles.shape[1], 258: 4})])
    assert np.asarray(Image.open(path)).shape == nibbles.shape  # a valid file
    with pytest.raises(InputError, match=r"four\.tif: a TIFF of 4 bits per sample, which no decoder here reads; "
                                         r"save it with 8 or 16 bits per sample$"):
        read_image(path)


@pytest.mark.parametrize("pixels, needle", [
    (np.arange(64 * 64, dtype=np.int16).reshape(64, 64), "int16 pixels are not supported; save the image with unsigned"),
    (np.arange(64 * 64, dtype=np.float32).reshape(64, 64), "floating-point pixels must lie in [0, 1], these span [0, 4095]"),
    (np.full((64, 64), np.nan, np.float32), "its floating-point pixels include NaN or infinite values"),
])
def test_a_file_of_pixels_the_runtime_does_not_take_is_refused_in_words_for_a_file(tmp_path, pixels, needle):
    """The refusal advised array callers ("use uint8 ...", "np.clip(image, 0, 1)"), which someone passing
    a file cannot act on."""
    import cv2

    path = tmp_path / "x.tif"
    cv2.imwrite(str(path), pixels)
    with pytest.raises(InputError) as raised:
        read_image(path)
    assert str(raised.value).startswith(f"{path}: ") and needle in str(raised.value) and "np." not in str(raised.value)


def test_an_rgba_png_is_read_as_rgba(tmp_path):
    """A 4-channel file was left in OpenCV's BGRA order: red and blue swapped, the gray made with the wrong weights."""
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 10, 255
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    got = read_image(path)
    np.testing.assert_array_equal(got, rgba)
    np.testing.assert_array_equal(to_gray(got), to_gray(rgba[..., :3]))


def test_big_endian_16_bit_arrays_keep_their_values(default_segmenter):
    """Big-endian arrays were reinterpreted instead of converted; the suite's big-endian image (v * 257) reads the same either way."""
    deep = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 13 + 7)
    big = deep.astype(">u2")
    np.testing.assert_array_equal(to_gray(big), deep)
    np.testing.assert_array_equal(default_segmenter.predict(big, samples=2).landmarks,
                                  default_segmenter.predict(deep, samples=2).landmarks)


def test_a_6_bit_tiff_is_refused_with_its_bit_depth(tmp_path, gray):
    """Every depth from 2 to 7 bits: OpenCV reads none of them."""
    samples = gray[:, : gray.shape[1] // 4 * 4] >> 2
    bits = np.unpackbits(samples.astype(np.uint8)[..., None], axis=-1)[..., 2:]  # 6 bits a sample, high first
    packed = np.packbits(bits.reshape(samples.shape[0], -1), axis=1)
    path = _gray_tiff(tmp_path / "six.tif", [(packed, {256: samples.shape[1], 258: 6})])
    with pytest.raises(InputError, match=r"six\.tif: a TIFF of 6 bits per sample, which no decoder here reads"):
        read_image(path)


def test_a_float_tiff_is_read_with_fewer_than_three_copies_of_its_pixels_at_once(tmp_path):
    """Pillow's damage check read a copy of the file while OpenCV's image was held: the file, that copy
    and the image, 3.0x the pixels' bytes as tracemalloc counts them (Pillow's own image, not counted,
    came on top: a 64 MP float TIFF peaked 982 MB above a loaded engine)."""
    pixels = (np.add.outer(np.arange(4000), np.arange(1250)) % 4096 / 4095).astype(np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(pixels, mode="F").save(path)
    image, peak = read_with_traced_peak(path)
    np.testing.assert_array_equal(image, pixels)
    assert peak < 2.6 * pixels.nbytes, f"peak {peak / pixels.nbytes:.2f}x the pixels' bytes"
