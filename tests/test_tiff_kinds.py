"""TIFF kinds OpenCV decodes to other pixels than stored (OpenCV 5.1, measured): read as stored, or refused.

10-, 12- and 14-bit samples come back shifted up to 16 bits, which a 12-bit WhiteIsZero image then
inverted against 4095 (99.9 % black, landmarks 84 px off); samples in separate planes above 8 bits
come back with most rows zero; 16-bit gray with alpha comes back at 8 bits; floating-point
WhiteIsZero comes back uninverted; half floats and undefined samples were "corrupt"."""
from __future__ import annotations

import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image


def _gradient(bits: int, shape: tuple[int, int] = (48, 70)) -> np.ndarray:
    h, w = shape
    values = np.add.outer(np.arange(h) * 7, np.arange(w) * 3) % (1 << bits)
    values[0, 0] = (1 << bits) - 1
    return values.astype(np.uint16)


def _hand_tiff(path: Path, stored: np.ndarray, *, sample_format: int = 1, alpha: bool = False) -> Path:
    """An uncompressed little-endian gray TIFF in one strip, with an alpha sample after each gray one
    when ``alpha`` (ExtraSamples 2: unassociated), and SampleFormat ``sample_format``."""
    h, w = stored.shape[:2]
    samples = 2 if alpha else 1
    pixels = stored.astype("<u2").tobytes()
    bits = struct.pack("<HH", 16, 16 if alpha else 0)
    entries = [(256, 4, 1, struct.pack("<I", w)), (257, 4, 1, struct.pack("<I", h)), (258, 3, samples, bits),
               (259, 3, 1, struct.pack("<HH", 1, 0)), (262, 3, 1, struct.pack("<HH", 1, 0)),
               (273, 4, 1, struct.pack("<I", 8)), (277, 3, 1, struct.pack("<HH", samples, 0)),
               (278, 4, 1, struct.pack("<I", h)), (279, 4, 1, struct.pack("<I", len(pixels))),
               *([(338, 3, 1, struct.pack("<HH", 2, 0))] if alpha else []),
               (339, 3, 1, struct.pack("<HH", sample_format, 0))]
    data = b"II*\x00" + struct.pack("<I", 8 + len(pixels)) + pixels + struct.pack("<H", len(entries))
    data += b"".join(struct.pack("<HHI", tag, kind, count) + value for tag, kind, count, value in entries)
    path.write_bytes(data + struct.pack("<I", 0))
    return path


@pytest.mark.parametrize("bits", [10, 12, 14])
@pytest.mark.parametrize("photometric", ["minisblack", "miniswhite"])
def test_n_bit_samples_read_as_stored(tmp_path, bits, photometric):
    stored = _gradient(bits)
    path = tmp_path / "im.tif"
    path.write_bytes(imagecodecs.tiff_encode(stored, photometric=photometric, bitspersample=bits))
    expected = stored if photometric == "minisblack" else (1 << bits) - 1 - stored  # shown with white as dense
    got = read_image(path)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)


def test_a_12_bit_tiff_says_12_bits_and_takes_bit_depth_12(tmp_path, default_segmenter, example1):
    """It read as 4095 * 16 = 65520: inferred 16 bits, and bit_depth=12 was refused as too small."""
    from chexmask_rt.image_io import to_gray

    gray = to_gray(read_image(example1)).astype(np.uint32)
    stored = (gray * 4095 // gray.max()).astype(np.uint16)  # the full 12-bit range
    path = tmp_path / "cr.tif"
    path.write_bytes(imagecodecs.tiff_encode(stored, photometric="minisblack", bitspersample=12))
    inferred = default_segmenter.predict(path, samples=2)
    given = default_segmenter.predict(path, samples=2, bit_depth=12)
    assert inferred.bit_depth == given.bit_depth == 12
    np.testing.assert_array_equal(inferred.landmarks, given.landmarks)


def _planar(tmp_path: Path, dtype: type) -> Path:
    planes = np.stack([_gradient(16), _gradient(16)[::-1], _gradient(16)[:, ::-1]])
    data = planes if dtype == np.uint16 else (planes / 65535).astype(np.float32)
    path = tmp_path / "planar.tif"
    path.write_bytes(imagecodecs.tiff_encode(data, photometric="rgb", planarconfig="separate"))
    return path


@pytest.mark.parametrize("make, why", [
    (lambda tmp: _planar(tmp, np.uint16), r"separate planes \(PlanarConfiguration 2\) at more than 8 bits"),
    (lambda tmp: _planar(tmp, np.float32), r"separate planes \(PlanarConfiguration 2\) at more than 8 bits"),
    (lambda tmp: _hand_tiff(tmp / "ga.tif", np.dstack([_gradient(16), _gradient(16)]), alpha=True),
     "16-bit samples are read at 8 bits"),
    (lambda tmp: _hand_tiff(tmp / "void.tif", _gradient(16), sample_format=4), r"undefined format \(SampleFormat 4\)"),
    (lambda tmp: (tmp / "half.tif").write_bytes(imagecodecs.tiff_encode(
        (_gradient(16) / 65535).astype(np.float16), photometric="minisblack")) and tmp / "half.tif",
     "16-bit floating point"),
    (lambda tmp: (tmp / "wiz.tif").write_bytes(imagecodecs.tiff_encode(
        (_gradient(16) / 65535).astype(np.float32), photometric="miniswhite")) and tmp / "wiz.tif",
     "floating-point WhiteIsZero"),
])
def test_kinds_opencv_misreads_are_refused_by_name(tmp_path, make, why):
    with pytest.raises(InputError, match="a TIFF no decoder here reads as stored: .*" + why):
        read_image(make(tmp_path))


def test_8_bit_planar_tiffs_still_read_as_stored(tmp_path):
    planes = np.stack([_gradient(8), _gradient(8)[::-1], _gradient(8)[:, ::-1]]).astype(np.uint8)
    path = tmp_path / "planar8.tif"
    path.write_bytes(imagecodecs.tiff_encode(planes, photometric="rgb", planarconfig="separate"))
    np.testing.assert_array_equal(read_image(path), np.moveaxis(planes, 0, 2))
