"""TIFF pixels are read as stored, whatever the file's Orientation tag (274) says.

OpenCV's TIFF decoder turns the raster by that tag (IMREAD_IGNORE_ORIENTATION does not stop it),
while JPEG and PNG are read as stored. Without undoing it, the same radiograph would give landmarks
in a turned or mirrored frame depending on its container.
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from chexmask_rt.errors import InputError
from chexmask_rt.image_headers import read_header
from chexmask_rt.image_io import read_image

ORIENTATIONS = range(1, 9)


def _stored(dtype: type = np.uint8, shape: tuple[int, ...] = (40, 57)) -> np.ndarray:
    """A raster whose every flip and turn differs from it: a gradient, not square, with a bright
    block at the top left."""
    h, w = shape[:2]
    image = np.add.outer(np.arange(h) * 2, np.arange(w)).astype(np.float64) / (2 * h + w)
    image[2:9, 3:7] = 1.0
    if len(shape) == 3:  # a fourth channel is a translucent alpha: OpenCV multiplied the colour by it
        alpha = np.broadcast_to(np.linspace(0.2, 1.0, w), (h, w))
        image = np.dstack([image, image[::-1], image[:, ::-1], alpha][:shape[2]])
    if dtype == np.float32:
        return image.astype(np.float32)
    return np.round(image * np.iinfo(dtype).max).astype(dtype)


def _save_tiff(path: Path, stored: np.ndarray, orientation: int) -> Path:
    Image.fromarray(stored).save(path, "TIFF", tiffinfo={274: orientation})
    return path


def _hand_tiff(path: Path, stored: np.ndarray, orientation: int, *, order: str = ">", kind: int = 4) -> Path:
    """An uncompressed gray TIFF in one strip, written field by field: byte order ``order`` and the
    Orientation tag of TIFF field type ``kind`` (Pillow writes neither big-endian nor LONG for it)."""
    h, w = stored.shape
    pixels = stored.astype(stored.dtype.newbyteorder(order)).tobytes()

    def short(v: int) -> bytes:
        return struct.pack(order + "HH", v, 0)

    def long(v: int) -> bytes:
        return struct.pack(order + "I", v)

    entries = [(256, 4, long(w)), (257, 4, long(h)), (258, 3, short(8 * stored.itemsize)), (259, 3, short(1)),
               (262, 3, short(1)), (273, 4, long(8)), (274, kind, short(orientation) if kind == 3 else long(orientation)),
               (277, 3, short(1)), (278, 4, long(h)), (279, 4, long(len(pixels)))]
    data = (b"MM\x00*" if order == ">" else b"II*\x00") + long(8 + len(pixels)) + pixels
    data += struct.pack(order + "H", len(entries))
    data += b"".join(struct.pack(order + "HHI", tag, k, 1) + value for tag, k, value in entries)
    path.write_bytes(data + long(0))
    return path


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_tiffs_read_as_stored(tmp_path, orientation, dtype):
    stored = _stored(dtype)
    got = read_image(_save_tiff(tmp_path / "im.tif", stored, orientation))
    assert got.dtype == dtype and got.shape == stored.shape
    np.testing.assert_array_equal(got, stored)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (40, 57, 3)), (np.uint8, (40, 57, 4)), (np.float32, (40, 57))])
def test_colour_and_float_tiffs_read_as_stored(tmp_path, orientation, dtype, shape):
    """RGBA among them (its case built three channels, so it never ran): orientations 2-4 came back
    mirrored or turned, 5-8 with the colour multiplied by the alpha."""
    stored = _stored(dtype, shape)
    got = read_image(_save_tiff(tmp_path / "im.tif", stored, orientation))
    assert got.dtype == dtype and got.shape == stored.shape
    np.testing.assert_array_equal(got, stored)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("order,kind", [(">", 3), (">", 4), ("<", 4)])
def test_hand_written_tiffs_read_as_stored(tmp_path, orientation, order, kind):
    """Big-endian files and an Orientation stored as LONG, which libtiff reads as well."""
    stored = _stored(np.uint16)
    path = _hand_tiff(tmp_path / "im.tif", stored, orientation, order=order, kind=kind)
    with open(path, "rb") as f:
        assert read_header(f, str(path)).orientation == orientation
    np.testing.assert_array_equal(read_image(path), stored)


@pytest.mark.parametrize("value", [0, 9, 300])
def test_orientations_libtiff_ignores_read_as_stored(tmp_path, value):
    stored = _stored(np.uint8)
    path = _hand_tiff(tmp_path / "im.tif", stored, value, kind=3)
    with open(path, "rb") as f:
        assert read_header(f, str(path)).orientation == 1
    np.testing.assert_array_equal(read_image(path), stored)


def test_headers_carry_the_orientation(tmp_path):
    stored = _stored()
    for orientation in ORIENTATIONS:
        path = _save_tiff(tmp_path / f"o{orientation}.tif", stored, orientation)
        with open(path, "rb") as f:
            header = read_header(f, str(path))
        # the stored raster's sides, not the displayed ones
        assert (header.width, header.height, header.orientation) == (57, 40, orientation)
    png = tmp_path / "im.png"
    assert cv2.imwrite(str(png), stored)
    with open(png, "rb") as f:
        assert read_header(f, str(png)).orientation == 1


def test_multi_page_tiffs_with_an_orientation_are_still_refused(tmp_path):
    stored = _stored()
    path = tmp_path / "two.tif"
    Image.fromarray(stored).save(path, "TIFF", tiffinfo={274: 6}, save_all=True,
                                 append_images=[Image.fromarray(stored)])
    with pytest.raises(InputError, match=r"multi-page TIFF \(2 pages\)"):
        read_image(path)


def test_a_turned_tiff_gives_the_landmarks_of_its_stored_pixels(default_segmenter, example1, tmp_path):
    gray = cv2.imread(str(example1), cv2.IMREAD_GRAYSCALE)
    assert gray.shape[0] != gray.shape[1]  # so that a turn would change the sides
    png = tmp_path / "im.png"
    assert cv2.imwrite(str(png), gray)
    tiff = _save_tiff(tmp_path / "im.tif", gray, 6)
    want = default_segmenter.predict(png, samples=2, second_look=False)
    got = default_segmenter.predict(tiff, samples=2, second_look=False)
    assert (got.height, got.width) == gray.shape
    np.testing.assert_array_equal(got.landmarks, want.landmarks)


def test_a_decode_of_another_size_than_the_header_is_refused(tmp_path, monkeypatch):
    """Were the decoder to turn a TIFF by another orientation than the header's, the pixels would be
    turned: refused rather than returned."""
    path = _save_tiff(tmp_path / "im.tif", _stored(), 1)
    decode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: np.ascontiguousarray(decode(data, flags).T))
    with pytest.raises(InputError, match=r"im.tif: not a readable image \(decoded as 40x57 pixels, "
                                         r"but its header declares 57x40\)"):
        read_image(path)
