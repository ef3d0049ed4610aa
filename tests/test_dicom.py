"""DICOM input: the rendering chain (modality LUT, VOI LUT / window, MONOCHROME1) and refusals."""
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

import chexmask_rt
from chexmask_rt.image_io import read_image

from conftest import SHARED, read_with_traced_peak

DICOM = SHARED / "data" / "dicom"
MONO2 = DICOM / "cr_chest_monochrome2_jpeg.dcm"
MONO1 = DICOM / "cr_chest_monochrome1_jpeg.dcm"


def make_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", *, preamble: bool = True,
               **tags) -> Path:
    """An uncompressed single-frame DICOM file with the given pixels and extra tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, tags.pop("BitsStored", bits), bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    return path


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    """The stored pixels of the shared MONOCHROME2 CR (JPEG baseline, decoded by pydicom + pillow)."""
    return pydicom.dcmread(MONO2).pixel_array


def minmax(values: np.ndarray, full: float) -> np.ndarray:
    v = values.astype(np.float64)
    return (v - v.min()) / (v.max() - v.min()) * full


def test_shared_pair_is_decoded_and_monochrome1_inverted(raw):
    assert raw.shape == (1024, 1024) and raw.dtype == np.uint8
    mono2, mono1 = read_image(MONO2), read_image(MONO1)
    assert mono2.dtype == mono1.dtype == np.uint8
    # no VOI in these files: min-max to the 8-bit range, and MONOCHROME1 shown inverted
    np.testing.assert_array_equal(mono2, np.rint(minmax(raw, 255)).astype(np.uint8))
    np.testing.assert_array_equal(mono1, np.rint(255 - minmax(raw, 255)).astype(np.uint8))
    assert mono2[:100].mean() < 128 < mono1[:100].mean()  # the air above the shoulders is dark only in MONOCHROME2


def test_monochrome1_and_monochrome2_encodings_of_one_image_give_the_same_landmarks(tmp_path, raw, default_segmenter):
    """The real CR, stored once as MONOCHROME2 (the shared JPEG file) and once as MONOCHROME1
    (inverted stored values, as a MONOCHROME1 modality writes them): one image, one answer."""
    mono1 = make_dicom(tmp_path / "mono1.dcm", 255 - raw, "MONOCHROME1")
    a = default_segmenter.predict(MONO2, samples=10)
    b = default_segmenter.predict(mono1, samples=10)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-6)
    np.testing.assert_allclose(a.landmarks_std, b.landmarks_std, atol=1e-6)
    assert a.height == b.height == 1024


@pytest.mark.parametrize("signed", [False, True])
def test_big_endian_pixels_below_bits_allocated_read_as_little_endian_ones(tmp_path, raw, signed):
    """Explicit VR Big Endian with 12 of 16 bits stored (the usual CR layout of older archives) was read
    as 16 gray levels, every pixel wrong, and segmented 5 px off on average (20 px at worst), unflagged."""
    words = (raw.astype(np.int32) << 4) - (2048 if signed else 0)
    stored = words.astype(np.int16 if signed else np.uint16)
    little = make_dicom(tmp_path / "le.dcm", stored.view(np.uint16), BitsStored=12, PixelRepresentation=int(signed))
    ds = pydicom.dcmread(little)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    ds.PixelData = stored.astype(stored.dtype.newbyteorder(">")).tobytes()
    pydicom.dcmwrite(tmp_path / "be.dcm", ds, implicit_vr=False, little_endian=False, force_encoding=True)
    np.testing.assert_array_equal(pydicom.dcmread(tmp_path / "be.dcm").pixel_array, stored)  # the same stored values
    expected = read_image(little)
    assert len(np.unique(expected)) > 200
    np.testing.assert_array_equal(read_image(tmp_path / "be.dcm"), expected)


@pytest.mark.parametrize("implicit, little", [(True, True), (False, True), (False, False)])
def test_a_bare_dataset_without_file_meta_reads_as_its_part_10_file(tmp_path, raw, implicit, little):
    """A dataset written without preamble and File Meta (no transfer syntax named; pydicom finds the
    encoding) was refused as "cannot decode DICOM pixel data; it may be truncated or corrupt"."""
    words = raw.astype(np.uint16) << 4
    part10 = make_dicom(tmp_path / "part10.dcm", words, BitsStored=12)
    ds = pydicom.dcmread(part10)
    del ds.file_meta
    ds.preamble = None
    ds.PixelData = words.astype(">u2" if not little else "<u2").tobytes()
    pydicom.dcmwrite(tmp_path / "bare.dcm", ds, implicit_vr=implicit, little_endian=little, force_encoding=True)
    assert (tmp_path / "bare.dcm").read_bytes()[:2] == (b"\x08\x00" if little else b"\x00\x08")  # no preamble, no meta
    np.testing.assert_array_equal(read_image(tmp_path / "bare.dcm"), read_image(part10))


def test_shared_monochrome1_file_segments_like_the_inverted_image(default_segmenter, raw):
    """The shared MONOCHROME1 file holds the MONOCHROME2 file's stored values unchanged, so a correct
    reader shows it as the negative: its result is that of the inverted picture, with higher uncertainty."""
    r1 = default_segmenter.predict(MONO1, samples=10)
    inverted = np.rint(255 - minmax(raw, 255)).astype(np.uint8)
    np.testing.assert_allclose(r1.landmarks, default_segmenter.predict(inverted, samples=10).landmarks, atol=1e-9)
    assert r1.mean_node_std > 2 * default_segmenter.predict(MONO2, samples=10).mean_node_std


def test_rescale_slope_intercept_then_minmax_to_16_bits(tmp_path):
    stored = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 3) % 4096
    path = make_dicom(tmp_path / "r.dcm", stored, BitsStored=12, RescaleSlope=2, RescaleIntercept=-1024)
    out = read_image(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, np.rint(minmax(stored * 2.0 - 1024, 65535)).astype(np.uint16))


def test_window_center_width_is_applied(tmp_path):
    stored = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)) % 4096
    center, width = 1000.0, 801.0
    path = make_dicom(tmp_path / "w.dcm", stored, BitsStored=12, RescaleSlope=1, RescaleIntercept=-500,
                      WindowCenter=center, WindowWidth=width)
    v = stored.astype(np.float64) - 500
    # DICOM PS3.3 C.11.2.1.2.1 (LINEAR), written out here independently of pydicom
    expected = np.clip(((v - (center - 0.5)) / (width - 1) + 0.5), 0, 1)
    expected[v <= center - 0.5 - (width - 1) / 2] = 0
    expected[v > center - 0.5 + (width - 1) / 2] = 1
    np.testing.assert_array_equal(read_image(path), np.rint(expected * 65535).astype(np.uint16))


def test_window_after_a_negative_rescale_slope_keeps_the_values_direction(tmp_path):
    """pydicom's window output runs from the rescaled range's ends, which a negative slope swaps; the
    image was refused as "maps every pixel to one value"."""
    stored = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)) % 4096
    center, width = 2048.0, 801.0
    path = make_dicom(tmp_path / "n.dcm", stored, BitsStored=12, RescaleSlope=-1, RescaleIntercept=4095,
                      WindowCenter=center, WindowWidth=width)
    v = 4095.0 - stored
    expected = np.clip(((v - (center - 0.5)) / (width - 1) + 0.5), 0, 1)  # as in the test above
    expected[v <= center - 0.5 - (width - 1) / 2] = 0
    expected[v > center - 0.5 + (width - 1) / 2] = 1
    np.testing.assert_array_equal(read_image(path), np.rint(expected * 65535).astype(np.uint16))


def test_window_with_monochrome1_is_inverted_after_windowing(tmp_path):
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))
    kw = dict(BitsStored=12, WindowCenter=2048.0, WindowWidth=1025.0)
    m2 = read_image(make_dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2", **kw)).astype(np.int64)
    m1 = read_image(make_dicom(tmp_path / "m1.dcm", stored, "MONOCHROME1", **kw)).astype(np.int64)
    assert np.abs(m1 + m2 - 65535).max() <= 1  # rounding only
    assert m2[0, 0] == 0 and m2[0, -1] == 65535


def test_voi_lut_sequence_is_applied(tmp_path):
    stored = np.tile(np.arange(256, dtype=np.uint8), (40, 1))
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    table = (np.sqrt(np.arange(256) / 255.0) * 200).astype(np.uint8)  # a gamma curve, entries 0..200
    lut.add_new("LUTData", "US", table.tolist())
    path = make_dicom(tmp_path / "l.dcm", stored, VOILUTSequence=pydicom.Sequence([lut]))
    # the display spans the LUT's output range, 0 .. 2^8 - 1 (PS3.3 C.11.2.1.2), not its entries' own range
    np.testing.assert_array_equal(read_image(path), table[stored])


def _lut(entries: int, first: int, bits: int, table, vr: str = "US") -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [entries, first, bits]
    item["LUTDescriptor"].VR = "US"  # as writers most often give it, a signed first value too
    item.add_new("LUTData", vr, table)
    return item


def _ramp(bits: int) -> np.ndarray:
    return np.tile(np.arange(2**bits, dtype=np.uint16), (40, 1))


def test_a_voi_lut_of_8_bit_entries_longer_than_256_is_looked_up_whole(tmp_path):
    """pydicom's apply_voi indexes such a LUT with 8-bit indices, which wrap: a 1024-entry LUT rendered a
    10-bit radiograph as noise (landmarks 18 px off, unflagged)."""
    stored = _ramp(10)
    table = np.rint(np.arange(1024) / 1023 * 255).astype(np.int64)
    path = make_dicom(tmp_path / "l.dcm", stored, BitsStored=10, VOILUTSequence=pydicom.Sequence([_lut(1024, 0, 8, table.tolist())]))
    np.testing.assert_array_equal(read_image(path), np.rint(table[stored] / 255 * 65535).astype(np.uint16))


def test_voi_lut_data_packed_two_entries_a_word_and_a_signed_first_value_written_as_us(tmp_path):
    """8-bit entries in OW words, two to a word, were refused (a struct error); a signed image's first mapped
    value written as US (63488 for -2048) was refused as a LUT that maps every pixel to one value."""
    stored = _ramp(8)
    table = (255 - np.arange(256)).astype(np.uint8)
    packed = make_dicom(tmp_path / "p.dcm", stored.astype(np.uint8),
                        VOILUTSequence=pydicom.Sequence([_lut(256, 0, 8, table.tobytes(), vr="OW")]))
    np.testing.assert_array_equal(read_image(packed), table[stored])
    signed = (stored.astype(np.int16) - 128) * 16
    ramp = np.rint(np.arange(4096) / 4095 * 65535).astype(np.int64)
    path = make_dicom(tmp_path / "s.dcm", signed.view(np.uint16), PixelRepresentation=1,
                      VOILUTSequence=pydicom.Sequence([_lut(4096, 2**16 - 2048, 16, ramp.tolist())]))
    np.testing.assert_array_equal(read_image(path), ramp[signed.astype(np.int64) + 2048].astype(np.uint16))


def test_presentation_lut_shape_decides_the_polarity(tmp_path):
    """A MONOCHROME2 image marked INVERSE is displayed as a negative (pydicom's and highdicom's
    renderings); it was read as stored: the model saw the negative of what a viewer shows."""
    stored = _ramp(12)
    plain = read_image(make_dicom(tmp_path / "m2.dcm", stored, BitsStored=12)).astype(np.int64)
    inverse = read_image(make_dicom(tmp_path / "i.dcm", stored, BitsStored=12, PresentationLUTShape="INVERSE"))
    identity = read_image(make_dicom(tmp_path / "m1.dcm", stored, "MONOCHROME1", BitsStored=12,
                                     PresentationLUTShape="IDENTITY"))
    np.testing.assert_array_equal(inverse.astype(np.int64), 65535 - plain)
    np.testing.assert_array_equal(identity.astype(np.int64), plain)  # the shape, not the photometric, decides


def test_pixel_padding_is_black_and_outside_the_images_range(tmp_path):
    """A border of Pixel Padding Value took part in the min-max and washed the image out."""
    stored = (_ramp(12)[:, ::16] + 1000).astype(np.int16)
    padded = stored.copy()
    padded[:, :5] = -2000
    path = make_dicom(tmp_path / "pad.dcm", padded.view(np.uint16), BitsStored=16, PixelRepresentation=1,
                      PixelPaddingValue=-2000)
    plain = read_image(make_dicom(tmp_path / "plain.dcm", stored[:, 5:].view(np.uint16), BitsStored=16,
                                  PixelRepresentation=1))
    image = read_image(path)
    assert (image[:, :5] == 0).all()
    np.testing.assert_array_equal(image[:, 5:], plain)


def test_a_one_frame_enhanced_objects_window_and_rescale_are_read_from_its_functional_groups(tmp_path):
    """Kept in the Shared or Per-Frame Functional Groups, they were ignored: min-max for the window, and a
    slope of -1 read a negative."""
    stored = _ramp(12)
    window = Dataset()
    window.WindowCenter, window.WindowWidth = 1800.0, 2000.0
    rescale = Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = -1.0, 4095.0, "US"
    shared = Dataset()
    shared.FrameVOILUTSequence = pydicom.Sequence([window])
    frame = Dataset()
    frame.PixelValueTransformationSequence = pydicom.Sequence([rescale])
    grouped = make_dicom(tmp_path / "g.dcm", stored, BitsStored=12, NumberOfFrames=1,
                         SharedFunctionalGroupsSequence=pydicom.Sequence([shared]),
                         PerFrameFunctionalGroupsSequence=pydicom.Sequence([frame]))
    top = make_dicom(tmp_path / "t.dcm", stored, BitsStored=12, WindowCenter=1800.0, WindowWidth=2000.0,
                     RescaleSlope=-1.0, RescaleIntercept=4095.0)
    np.testing.assert_array_equal(read_image(grouped), read_image(top))


def test_file_without_preamble_but_dcm_suffix_is_read(tmp_path, raw):
    path = make_dicom(tmp_path / "np.dcm", raw[:256, :256], preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    assert read_image(path).shape == (256, 256)


def test_multiframe_is_refused(tmp_path):
    frames = np.zeros((2, 64, 64), dtype=np.uint8)
    path = make_dicom(tmp_path / "mf.dcm", frames.reshape(128, 64), NumberOfFrames=2)
    with pytest.raises(chexmask_rt.InputError, match=r"mf\.dcm: multi-frame DICOM \(2 frames\)"):
        read_image(path)


@pytest.mark.parametrize("sop_class, message", [
    (SecondaryCaptureImageStorage, r"sc\.dcm: DICOM image \(Secondary Capture Image Storage\) has no pixel data: "
                                   r"the file is truncated before it, or it was left out"),
    ("1.2.840.10008.5.1.4.1.1.88.11", r"sc\.dcm: a DICOM Basic Text SR Storage object \(1\.2\.840\.10008\.5\.1\.4\.1\.1"
                                      r"\.88\.11\), not an image; only image objects can be segmented"),
])
def test_object_without_pixel_data_is_refused(tmp_path, sop_class, message):
    """An image class without pixel data looks like a file cut before it; other classes are not images."""
    path = make_dicom(tmp_path / "sc.dcm", np.zeros((64, 64), np.uint8))
    ds = pydicom.dcmread(path)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(chexmask_rt.InputError, match=message):
        read_image(path)


def test_a_segmentation_with_pixel_data_is_not_segmented(tmp_path, default_segmenter):
    """A one-frame DICOM SEG (our own output, fed back) was segmented as a radiograph, CTR and all, where
    batch skipped it as not an image: the SOP class is now read before the pixels, by both."""
    from chexmask_rt.discovery import discover

    path = make_dicom(tmp_path / "seg.dcm", np.zeros((64, 64), np.uint8))
    ds = pydicom.dcmread(path)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    ds.save_as(path)
    with pytest.raises(chexmask_rt.InputError, match=r"seg\.dcm: a DICOM Segmentation Storage object .*, not an "
                                                      r"image; only image objects can be segmented"):
        default_segmenter.predict(path, samples=2)
    assert [f for f, _ in discover(tmp_path).skipped] == [str(path)]


@pytest.mark.parametrize("cut", [200, 5000, 60000])
def test_truncated_jpeg_dicom_is_an_input_error(tmp_path, cut):
    path = tmp_path / "cut.dcm"
    path.write_bytes(MONO2.read_bytes()[:cut])
    with pytest.raises(chexmask_rt.InputError, match=r"cut\.dcm: DICOM (file|pixel data) is truncated"):
        read_image(path)


def test_cli_predict_reads_dicom(tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(MONO2), "--samples", "3", "--json", "-"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert (d["height"], d["width"]) == (1024, 1024) and len(d["landmarks"]) == 120


def _dicom32(path, pixels: np.ndarray, photometric: str):
    """make_dicom for 32-bit unsigned stored pixels (the other branch of the rendering)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "CR", *pixels.shape, 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.PixelData = np.ascontiguousarray(pixels.astype("<u4")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_32_bit_monochrome1_image_is_inverted_too(tmp_path):
    """MONOCHROME1 was inverted only on the look-up-table branch (8/16-bit stored), not for 32-bit stored pixels."""
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint32), (48, 1))
    m2 = read_image(_dicom32(tmp_path / "m2.dcm", stored, "MONOCHROME2")).astype(np.int64)
    m1 = read_image(_dicom32(tmp_path / "m1.dcm", stored, "MONOCHROME1")).astype(np.int64)
    assert m2[0, 0] == 0 and m2[0, -1] == 65535
    np.testing.assert_array_equal(m1, 65535 - m2)


def test_a_voi_lut_output_maps_to_the_luts_range_not_the_images(tmp_path):
    """The VOI LUT's output range was taken from the image's values: an image using part of the LUT was stretched."""
    stored = np.tile(np.arange(64, 192, dtype=np.uint8), (40, 1))  # half of the LUT's input range
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    table = np.arange(256, dtype=np.uint16)  # identity, entries 0..255
    lut.add_new("LUTData", "US", table.tolist())
    path = make_dicom(tmp_path / "l.dcm", stored, VOILUTSequence=pydicom.Sequence([lut]))
    np.testing.assert_array_equal(read_image(path), stored)  # not stretched to 0..255


def test_a_window_with_a_bad_second_value_renders_with_the_first(tmp_path):
    """Only the first of a multi-valued window is used (pydicom's index 0), so it is the one checked."""
    stored = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    path = make_dicom(tmp_path / "w.dcm", stored, BitsStored=12, WindowCenter=["2048", "NaN"],
                      WindowWidth=["4096", "4096"])
    image = read_image(path)
    assert image.dtype == np.uint16 and image.max() > 60000 and image.min() < 100


def test_a_rescale_slope_without_an_intercept_is_read(tmp_path):
    """A Rescale Slope without an Intercept is no Modality LUT (pydicom applies none): read, not refused."""
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (48, 1))
    plain = read_image(make_dicom(tmp_path / "p.dcm", stored, BitsStored=12))
    np.testing.assert_array_equal(read_image(make_dicom(tmp_path / "s.dcm", stored, BitsStored=12, RescaleSlope=1)),
                                  plain)


def test_a_voi_lut_of_65536_entries_written_as_0_is_applied(tmp_path):
    """A VOI LUT Descriptor's first value 0 means 65536 entries (DICOM PS3.3 C.11.2.1.1)."""
    stored = np.tile(np.arange(0, 65536, 1024, dtype=np.uint16), (40, 1))
    lut = Dataset()
    lut.LUTDescriptor = [0, 0, 16]
    lut.add_new("LUTData", "OW", (65535 - np.arange(65536, dtype=np.uint16)).astype("<u2").tobytes())
    image = read_image(make_dicom(tmp_path / "l.dcm", stored, VOILUTSequence=pydicom.Sequence([lut])))
    np.testing.assert_array_equal(image, 65535 - stored)


def test_an_upper_case_dcm_suffix_is_read_as_dicom(tmp_path):
    """A bare dataset (no preamble) named X.DCM, as archives on Windows and media write them, is a DICOM."""
    stored = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (40, 1))
    lower = read_image(make_dicom(tmp_path / "a.dcm", stored, preamble=False))
    np.testing.assert_array_equal(read_image(make_dicom(tmp_path / "B.DCM", stored, preamble=False)), lower)


def test_a_large_dicom_is_read_with_fewer_than_three_copies_of_its_pixels_at_once(tmp_path):
    """The file's pixel bytes were kept through the rendering, a third copy beside the decoded and the
    rendered image (3.3x the pixels' bytes; the kernel ends a process past a container's limit). The
    rendering's look-up temporaries, 256 rows at a time, are a small part of a tall image."""
    stored = (np.add.outer(np.arange(4000), np.arange(1250)) % 4096).astype(np.uint16)
    rendered, peak = read_with_traced_peak(make_dicom(tmp_path / "large.dcm", stored, BitsStored=12))
    assert rendered.shape == stored.shape and rendered.dtype == np.uint16
    assert peak < 2.75 * stored.nbytes, f"peak {peak / stored.nbytes:.2f}x the pixels' bytes"
