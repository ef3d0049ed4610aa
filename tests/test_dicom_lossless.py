"""JPEG Lossless DICOM (process 14, the usual storage of CR and DX archives), read by the native core's
strict decoder: every predictor, precision, restart interval and point transform decodes to the
samples that were encoded (libjpeg-turbo's frames, and frames assembled by T.81's rules), and data
the frame cannot have come from is refused, where libjpeg-turbo and pydicom's plugins fill it in."""
import re

import numpy as np
import pydicom
import pytest

import chexmask_rt
from chexmask_rt import _core
from chexmask_rt.image_io import read_image

from jpeg_frames import DAMAGE, encode, jpeg_dicom, segments, with_point_transform, with_restarts
from test_dicom import MONO2, make_dicom

LIMIT = 1 << 26


@pytest.fixture(scope="module")
def cr() -> np.ndarray:
    """A real CR radiograph's stored pixels (8-bit, 1024 x 1024)."""
    return pydicom.dcmread(MONO2).pixel_array


def at_bits(pixels: np.ndarray, bits: int) -> np.ndarray:
    """``pixels`` spread over ``bits`` bits, with a ramp in the low bits so every bit varies."""
    wide = pixels.astype(np.uint32) * ((1 << bits) - 1) // 255
    if bits > 8:
        wide = np.minimum(wide + np.arange(pixels.shape[1], dtype=np.uint32) % (1 << (bits - 8)), (1 << bits) - 1)
    return wide.astype(np.uint16)


@pytest.mark.parametrize("bits, predictor, syntax", [(8, 1, "1.2.840.10008.1.2.4.70"), (12, 1, "1.2.840.10008.1.2.4.70"),
                                                     (16, 1, "1.2.840.10008.1.2.4.70"), (12, 6, "1.2.840.10008.1.2.4.57"),
                                                     (16, 7, "1.2.840.10008.1.2.4.57")])
def test_a_jpeg_lossless_cr_reads_as_its_uncompressed_twin(tmp_path, cr, bits, predictor, syntax):
    """Refused before ("no decoder ... install gdcm or pylibjpeg"), though it is the usual CR archive form."""
    stored = at_bits(cr, bits)
    allocated = 8 if bits == 8 else 16
    path = tmp_path / "lossless.dcm"
    jpeg_dicom(path, encode(stored, bits, predictor), *stored.shape, bits_allocated=allocated, bits_stored=bits,
                   syntax=syntax)
    twin = make_dicom(tmp_path / "plain.dcm", stored.astype(np.uint8 if allocated == 8 else np.uint16),
                      BitsStored=bits)
    np.testing.assert_array_equal(read_image(path), read_image(twin))


def test_a_jpeg_lossless_cr_is_segmented_as_its_uncompressed_twin(tmp_path, cr, default_segmenter):
    stored = at_bits(cr, 12)
    path = tmp_path / "lossless.dcm"
    jpeg_dicom(path, encode(stored, 12), *stored.shape, bits_stored=12, photometric="MONOCHROME1")
    twin = make_dicom(tmp_path / "plain.dcm", stored, "MONOCHROME1", BitsStored=12)
    a, b = default_segmenter.predict(path, samples=4), default_segmenter.predict(twin, samples=4)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_signed_samples_are_sign_extended_from_bits_stored(tmp_path, cr):
    values = at_bits(cr, 12).astype(np.int16) - 2048
    path = tmp_path / "signed.dcm"
    jpeg_dicom(path, encode(values.astype(np.uint16) & 0x0FFF, 12), *values.shape, bits_stored=12, signed=True)
    twin = make_dicom(tmp_path / "plain.dcm", values.astype(np.uint16), BitsStored=12)
    ds = pydicom.dcmread(twin)
    ds.PixelRepresentation = 1
    ds.save_as(twin)
    assert pydicom.dcmread(twin).pixel_array.min() < 0  # the twin's stored values are negative where ours are
    np.testing.assert_array_equal(read_image(path), read_image(twin))


def test_bits_above_bits_stored_are_left_out_as_pydicom_leaves_them(tmp_path, cr):
    """Old CRs keep overlays in the unused high bits: a 16-bit frame of 12 stored bits with one set read
    as a value 8192 higher (the min-max rendering then darkened the whole image)."""
    stored = at_bits(cr, 12)
    marked = stored.copy()
    marked[100:120, 100:400] |= 1 << 13
    path = tmp_path / "overlay.dcm"
    jpeg_dicom(path, encode(marked, 16), *stored.shape, bits_stored=12)
    np.testing.assert_array_equal(read_image(path), read_image(make_dicom(tmp_path / "plain.dcm", marked,
                                                                         BitsStored=12)))
    np.testing.assert_array_equal(read_image(path), read_image(make_dicom(tmp_path / "clean.dcm", stored,
                                                                         BitsStored=12)))


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80"])  # JPEG 2000, JPEG-LS
@pytest.mark.parametrize("signed", [False, True])
def test_bits_above_bits_stored_are_left_out_whatever_the_decoder(tmp_path, cr, syntax, signed):
    """pydicom clears them for native and RLE data only: a JPEG 2000 or JPEG-LS frame of 12 stored bits
    with an overlay plane in bit 13 read 8192 higher there, and the min-max rendering of the rest was
    squeezed (landmarks moved 10.6 px on average, unflagged), where the same bytes stored natively were
    read as the clean image."""
    import imagecodecs  # the test extra

    stored = at_bits(cr, 12)
    marked = stored.copy()
    marked[100:120, 100:400] |= 1 << 13
    frame = (imagecodecs.jpeg2k_encode(marked, codecformat="J2K", level=0) if syntax.endswith("90")
             else imagecodecs.jpegls_encode(marked))
    path = tmp_path / "wide.dcm"
    jpeg_dicom(path, bytes(frame), *stored.shape, bits_stored=12, signed=signed, syntax=syntax)
    clean = make_dicom(tmp_path / "clean.dcm", stored, BitsStored=12)
    if signed:  # the twin's values above 2047 are negative, as the frame's must be read
        ds = pydicom.dcmread(clean)
        ds.PixelRepresentation = 1
        ds.save_as(clean)
    assert int(pydicom.dcmread(path).pixel_array.view(np.uint16).max()) > 4095  # pydicom leaves bit 13 set
    np.testing.assert_array_equal(read_image(path), read_image(clean))


@pytest.fixture(scope="module")
def small(cr) -> np.ndarray:
    import cv2

    return cv2.resize(cr, (96, 112), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("predictor", range(1, 8))
@pytest.mark.parametrize("bits", [2, 8, 12, 16])
def test_every_predictor_and_precision_of_libjpeg_turbos_frames(small, predictor, bits):
    stored = at_bits(small, bits) if bits >= 8 else small >> (8 - bits)
    samples, precision = _core.decode_lossless_jpeg(encode(stored, bits, predictor), LIMIT)
    assert precision == bits and samples.dtype == np.uint16
    np.testing.assert_array_equal(samples, stored)


@pytest.mark.parametrize("predictor", range(1, 8))
@pytest.mark.parametrize("bits", [8, 16])
def test_restart_intervals_and_point_transforms(small, predictor, bits):
    import imagecodecs

    stored = at_bits(small, bits)
    stored[0, :2] = 0, 1 << (bits - 1)  # a difference of 2**15 at 16 bits: category 16, no extra bits
    for frame, expected in [(with_restarts(stored, bits, 9, predictor), stored),
                            (with_point_transform(stored >> 2 << 2, bits, 2, predictor), stored >> 2 << 2)]:
        np.testing.assert_array_equal(imagecodecs.jpeg8_decode(frame), expected)  # the frame is a sound one
        np.testing.assert_array_equal(_core.decode_lossless_jpeg(frame, LIMIT)[0], expected)


def _entropy_at(frame: bytes) -> int:
    return segments(frame)[1]


def _precision_lowered(frame: bytes) -> bytes:
    found, _ = segments(frame)
    data = bytearray(frame)
    data[found[0xC3][0] + 4] -= 4  # 12-bit samples under an 8-bit frame header
    return bytes(data)


def _restart_skipped(frame: bytes) -> bytes:
    return frame.replace(b"\xff\xd1", b"\xff\xd2", 1)


LOSSLESS_DAMAGE = {**DAMAGE, "samples past the precision": (_precision_lowered, "past its 8-bit precision")}


@pytest.mark.parametrize("damage", LOSSLESS_DAMAGE)
def test_damaged_frames_are_refused_naming_the_file_and_the_fault(tmp_path, small, damage):
    """libjpeg-turbo (imagecodecs) and libjpeg (pylibjpeg) decode a frame cut at two thirds with a third of
    its samples invented, and say nothing."""
    stored = at_bits(small, 12)
    make, why = LOSSLESS_DAMAGE[damage]
    path = tmp_path / "damaged.dcm"
    jpeg_dicom(path, make(encode(stored, 12)), *stored.shape, bits_stored=12)
    with pytest.raises(chexmask_rt.InputError) as err:
        read_image(path)
    assert str(err.value).startswith(f"{path} (its compressed frame): lossless JPEG: ") and why in str(err.value), \
        str(err.value)


def test_a_restart_marker_out_of_turn_or_a_missing_end_marker_is_refused(small):
    frame = with_restarts(at_bits(small, 12), 12, 9)
    with pytest.raises(chexmask_rt.InputError, match="restart marker 1 missing after restart interval 2"):
        _core.decode_lossless_jpeg(_restart_skipped(frame), LIMIT)
    with pytest.raises(chexmask_rt.InputError, match="no end-of-image marker"):
        _core.decode_lossless_jpeg(frame[:-2], LIMIT)
    # a DICOM fragment's padding after the end marker is no part of the frame
    np.testing.assert_array_equal(_core.decode_lossless_jpeg(frame + b"\x00", LIMIT)[0], at_bits(small, 12))


def test_a_frame_deeper_than_bits_allocated_is_refused(tmp_path, small):
    stored = at_bits(small, 12)
    path = tmp_path / "deep.dcm"
    jpeg_dicom(path, encode(stored, 12), *stored.shape, bits_allocated=8, bits_stored=8)
    with pytest.raises(chexmask_rt.InputError, match="a lossless JPEG frame of 12-bit samples, where the header says Bits Allocated 8"):
        read_image(path)


@pytest.mark.parametrize("edit, why", [
    (lambda f: f.replace(b"\xff\xc3", b"\xff\xc1", 1), "SOF1: only lossless Huffman frames"),
    (lambda f: f[:f.index(b"\xff\xc3") + 5] + b"\x00\x00" + f[f.index(b"\xff\xc3") + 7:], "0 rows (a height given"),
    (lambda f: f[:_entropy_at(f) - 3] + b"\x00" + f[_entropy_at(f) - 2:], "predictor 0 (1 to 7)"),
])
def test_frames_of_kinds_it_does_not_read_say_so(small, edit, why):
    with pytest.raises(chexmask_rt.InputError, match=re.escape(why)):
        _core.decode_lossless_jpeg(edit(encode(at_bits(small, 12), 12)), LIMIT)


def test_a_frame_over_the_pixel_limit_is_refused_before_its_samples_are_allocated(small):
    with pytest.raises(chexmask_rt.InputError, match="over the limit of 1000"):
        _core.decode_lossless_jpeg(encode(at_bits(small, 12), 12), 1000)


def test_a_colour_lossless_frame_is_left_to_pydicoms_plugins(tmp_path, small):
    """The core reads one-component frames only: a colour one goes to pydicom as before, decoded by a
    plugin where one is installed, else refused for want of one (not called corrupt by the core)."""
    import imagecodecs
    from pydicom.pixels import get_decoder

    rgb = np.stack([small, small[::-1], small[:, ::-1]], -1)
    path = tmp_path / "rgb.dcm"
    jpeg_dicom(path, bytes(imagecodecs.jpeg8_encode(rgb, lossless=True)), *small.shape, bits_allocated=8,
               bits_stored=8, photometric="RGB")
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.save_as(path)
    if get_decoder("1.2.840.10008.1.2.4.70").is_available:
        np.testing.assert_array_equal(read_image(path), rgb)
    else:
        with pytest.raises(chexmask_rt.InputError, match="no decoder for its transfer syntax 'JPEG Lossless, Non-"):
            read_image(path)
