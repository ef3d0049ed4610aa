"""12-bit JPEG Extended DICOM (the lossy CR archive form) and sequential JPEGs with meaningless scan
header fields: the core checks their entropy-coded data (``_core.check_dct_jpeg``) and libjpeg-turbo
decodes them, so damaged data is refused before any decoder fills it in; the check is at least as
strict as libjpeg-turbo's warnings, judged on damaged 8-bit files it reads strictly."""
import io
import shutil
import sys

import numpy as np
import pydicom
import pytest
import simplejpeg

import chexmask_rt
from chexmask_rt import _core
from chexmask_rt.image_io import read_image

from jpeg_frames import DAMAGE, jpeg_dicom
from test_dicom import MONO2, make_dicom

EXTENDED = "1.2.840.10008.1.2.4.51"


@pytest.fixture(scope="module")
def cr() -> np.ndarray:
    """A real CR radiograph's stored pixels (8-bit, 1024 x 1024)."""
    return pydicom.dcmread(MONO2).pixel_array


def twelve_bit_frame(cr: np.ndarray, level: int = 90) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg8_encode(cr.astype(np.uint16) * 16 + 7, level=level, bitspersample=12))


def test_a_12_bit_jpeg_extended_cr_reads_as_libjpeg_turbo_decodes_it(tmp_path, cr):
    """Refused before ("no decoder": Pillow reads 8-bit JPEG only) unless a plugin that fills damage in,
    or GDCM, which ends the process on it, was installed."""
    import imagecodecs

    frame = twelve_bit_frame(cr)
    path = tmp_path / "lossy12.dcm"
    jpeg_dicom(path, frame, *cr.shape, bits_stored=12, syntax=EXTENDED)
    decoded = imagecodecs.jpeg8_decode(frame)
    assert np.abs(decoded.astype(np.int32) - (cr.astype(np.int32) * 16 + 7)).mean() < 4  # a 12-bit picture of the CR
    np.testing.assert_array_equal(read_image(path), read_image(make_dicom(tmp_path / "twin.dcm", decoded, BitsStored=12)))


def test_a_scanners_12_bit_file_whose_scan_header_says_se_0_reads(tmp_path):
    """pydicom's JPEG-lossy.dcm (an NM device's) writes Se = 0 for its sequential scan; the value means
    nothing there, and libjpeg-turbo reads the 64 coefficients regardless."""
    from pydicom.data import get_testdata_file

    path = tmp_path / "nm.dcm"
    shutil.copy(get_testdata_file("JPEG-lossy.dcm"), path)
    image = read_image(path)
    assert image.shape == (1024, 256) and image.dtype == np.uint16 and image.max() == 65535


@pytest.mark.parametrize("imagecodecs_installed", [True, False])
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_12_bit_frames_are_refused_before_any_decoder_sees_them(tmp_path, cr, damage, imagecodecs_installed,
                                                                         monkeypatch):
    """libjpeg-turbo (imagecodecs) decodes a 12-bit frame cut at two thirds with its last third gray and says
    nothing; without imagecodecs, pydicom's plugins (pylibjpeg: the same; GDCM: ends the process) got it."""
    make, why = DAMAGE[damage]
    path = tmp_path / "damaged.dcm"
    jpeg_dicom(path, make(twelve_bit_frame(cr)), *cr.shape, bits_stored=12, syntax=EXTENDED)
    if not imagecodecs_installed:
        monkeypatch.setitem(sys.modules, "imagecodecs", None)
    with pytest.raises(chexmask_rt.InputError) as err:
        read_image(path)
    assert str(err.value).startswith(f"{path} (its compressed frame): not a readable image (damaged JPEG: ") and \
        why in str(err.value), str(err.value)


def _with_se_0(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    sos = data.index(b"\xff\xda")
    data[sos + 4 + 1 + 2 * data[sos + 4] + 1] = 0  # Se, after Ns and the components' selectors, and Ss
    return bytes(data)


def test_an_8_bit_jpeg_whose_scan_header_says_se_0_reads_as_the_sound_one(tmp_path, cr):
    """libjpeg-turbo's only complaint is a warning, which the strict decoder took for damage: the sound
    picture was refused as 'damaged JPEG: Invalid SOS parameters for sequential JPEG'."""
    sound = simplejpeg.encode_jpeg(cr[:, :, None], quality=90, colorspace="GRAY")
    (tmp_path / "se0.jpg").write_bytes(_with_se_0(sound))
    (tmp_path / "sound.jpg").write_bytes(sound)
    np.testing.assert_array_equal(read_image(tmp_path / "se0.jpg"), read_image(tmp_path / "sound.jpg"))
    jpeg_dicom(tmp_path / "se0.dcm", _with_se_0(sound), *cr.shape, bits_allocated=8, bits_stored=8,
               syntax="1.2.840.10008.1.2.4.50")
    np.testing.assert_array_equal(read_image(tmp_path / "se0.dcm"),
                                  read_image(make_dicom(tmp_path / "twin.dcm", read_image(tmp_path / "sound.jpg"))))
    (tmp_path / "cut.jpg").write_bytes(_with_se_0(sound)[:len(sound) // 2] + b"\xff\xd9")
    with pytest.raises(chexmask_rt.InputError, match="damaged JPEG: the entropy-coded data ends before the image does"):
        read_image(tmp_path / "cut.jpg")


def _damaged_copies(jpeg: bytes, rng, count: int):
    for i in range(count):
        data = bytearray(jpeg)
        if i % 3 == 0:
            for _ in range(int(rng.integers(1, 5))):
                data[int(rng.integers(len(data) // 4, len(data)))] ^= 1 << int(rng.integers(8))
        elif i % 3 == 1:
            data = data[:int(rng.integers(len(data) // 4, len(data)))]
        else:
            at = int(rng.integers(len(data) // 4, len(data)))
            data = data[:at] + rng.integers(0, 256, 3).astype(np.uint8).tobytes() + data[at:]
        yield bytes(data)


def test_the_check_refuses_all_that_libjpeg_turbo_warns_of(cr):
    """Sound frames (gray; colour subsampled 4:4:4, 4:2:2, 4:2:0; restart markers every block and every
    row) pass; of damaged copies, none that libjpeg-turbo's strict decode refuses passes the check. (The
    check refuses some it reads without a warning: a code its table lacks on libjpeg-turbo's fast path,
    a coefficient past 64, data left after the last block.)"""
    from PIL import Image

    small = np.ascontiguousarray(cr[::4, ::4])
    colour = np.stack([small, small[::-1], small[:, ::-1]], -1)
    sound = {"gray": simplejpeg.encode_jpeg(small[:, :, None], quality=85, colorspace="GRAY")}
    for name, image, options in [("4:4:4", colour, {"subsampling": 0}), ("4:2:2", colour, {"subsampling": 1}),
                                 ("4:2:0 restarts", colour, {"subsampling": 2, "restart_marker_rows": 1}),
                                 ("gray restarts", small, {"restart_marker_blocks": 1})]:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=85, **options)
        sound[name] = buf.getvalue()
    rng = np.random.default_rng(5)
    missed, checked = [], 0
    for name, jpeg in sound.items():
        assert _core.check_dct_jpeg(jpeg) == 8, name
        space = "GRAY" if name.startswith("gray") else "RGB"
        for data in _damaged_copies(jpeg, rng, 150):
            try:
                simplejpeg.decode_jpeg(data, colorspace=space, strict=True)
                continue
            except ValueError:
                checked += 1
            try:
                _core.check_dct_jpeg(data)
                missed.append(name)
            except chexmask_rt.InputError:
                pass
    assert checked > 300 and not missed, (checked, missed)


def test_a_16_bit_dct_frame_as_gdcm_writes_is_refused_as_non_standard_not_damaged(tmp_path, cr):
    """GDCM 3.2.6 transcodes 16-bit-allocated CRs to JPEG Extended with a frame precision of 16, which T.81's
    DCT processes do not have and libjpeg-turbo does not read: refused for what it is, not called damaged."""
    frame = bytearray(twelve_bit_frame(cr))
    frame[frame.index(b"\xff\xc1") + 4] = 16
    path = tmp_path / "dct16.dcm"
    jpeg_dicom(path, bytes(frame), *cr.shape, bits_stored=12, syntax=EXTENDED)
    with pytest.raises(chexmask_rt.InputError) as err:
        read_image(path)
    assert "JPEG DCT frame of 16-bit samples: the standard's DCT processes have 8 or 12" in str(err.value)
    assert "damaged" not in str(err.value)


def test_without_imagecodecs_a_checked_12_bit_frame_reaches_the_plugin_that_reads_it(tmp_path, cr, monkeypatch):
    """Pillow, always installed, reads 8-bit JPEG only: told to use it for 12-bit frames too (as the reader
    does elsewhere, to keep GDCM away from damaged data), it shut GDCM out of the frames only GDCM read. A
    stand-in GDCM answering a known ramp must decode the sound frame, and never be shown a damaged one."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    (tmp_path / "stand_in_gdcm.py").write_text(
        "import numpy as np\nDECODER_DEPENDENCIES = {}\ncalls = []\n\n\ndef is_available(uid):\n    return True\n\n\n"
        "def _decode_frame(src, runner):\n    calls.append(len(src))\n"
        "    return (np.arange(runner.rows * runner.columns, dtype='<u2') % 4096).tobytes()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import stand_in_gdcm

    frame = twelve_bit_frame(cr)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)

    decoder = get_decoder(JPEGExtended12Bit)
    decoder.remove_plugin("gdcm")
    decoder.add_plugin("gdcm", ("stand_in_gdcm", "_decode_frame"))
    try:
        sound, damaged = tmp_path / "sound.dcm", tmp_path / "damaged.dcm"
        jpeg_dicom(sound, frame, *cr.shape, bits_stored=12, syntax=EXTENDED)
        jpeg_dicom(damaged, frame[:len(frame) // 2] + b"\xff\xd9", *cr.shape, bits_stored=12, syntax=EXTENDED)
        ramp = (np.arange(cr.size, dtype=np.uint16) % 4096).reshape(cr.shape)
        np.testing.assert_array_equal(read_image(sound), read_image(make_dicom(tmp_path / "ramp.dcm", ramp, BitsStored=12)))
        assert len(stand_in_gdcm.calls) == 1
        with pytest.raises(chexmask_rt.InputError, match="damaged JPEG: the entropy-coded data ends before"):
            read_image(damaged)
        assert len(stand_in_gdcm.calls) == 1
    finally:
        decoder.remove_plugin("gdcm")
        decoder.add_plugin("gdcm", ("pydicom.pixels.decoders.gdcm", "_decode_frame"))
