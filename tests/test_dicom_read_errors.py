"""DICOM files the reader must refuse, with the reason: files cut short (the same verdict in any
thread, whatever the warning state) and display attributes that would render a blank picture."""
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

import chexmask_rt
from chexmask_rt.image_io import read_image

from test_dicom import MONO2, make_dicom


def cut(path: Path, data: bytes, length: int) -> Path:
    path.write_bytes(data[:length])
    return path


def element_offsets(path: Path) -> dict[str, int]:
    """Where the shared file's Rows value and its Pixel Data element start (its header has no sequences)."""
    with open(path, "rb") as f:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        pixel_data = f.tell()
    rows = next(e for e in ds.elements() if e.tag == 0x00280010)
    return {"rows_value": rows.value_tell, "pixel_data": pixel_data}


def error_of(path: Path) -> str:
    with pytest.raises(chexmask_rt.InputError) as err:
        read_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize("where", ["in the file meta", "at 200 bytes", "in a header value", "at the pixel data",
                                   "in the pixel data's element header", "in the pixel data's length",
                                   "in the middle", "100 bytes before the end", "in the last delimiter"])
def test_a_cut_jpeg_dicom_says_it_is_truncated(tmp_path, where):
    data = MONO2.read_bytes()
    at = element_offsets(MONO2)
    length = {"in the file meta": 150, "at 200 bytes": 200, "in a header value": at["rows_value"] + 1,
              "at the pixel data": at["pixel_data"], "in the pixel data's element header": at["pixel_data"] + 4,
              "in the pixel data's length": at["pixel_data"] + 10, "in the middle": len(data) // 2,
              "100 bytes before the end": len(data) - 100, "in the last delimiter": len(data) - 4}[where]
    message = error_of(cut(tmp_path / "cut.dcm", data, length))
    assert "truncated" in message
    if where != "at the pixel data":  # there it is the end of a whole element: nothing says more was to come
        assert "no pixel data" not in message


def test_cut_uncompressed_pixel_data_says_how_much_is_there(tmp_path):
    raw = pydicom.dcmread(MONO2).pixel_array[:256, :256]
    data = make_dicom(tmp_path / "u.dcm", raw).read_bytes()
    message = error_of(cut(tmp_path / "cut.dcm", data, len(data) - 1000))
    assert f"pixel data is truncated or corrupt (the file holds {256 * 256 - 1000} of its {256 * 256} bytes)" in message


def _outcome(path: Path):
    try:
        return read_image(path)
    except chexmask_rt.InputError as exc:
        return str(exc)


def test_truncation_verdicts_are_the_same_in_many_threads(tmp_path):
    """predict_iter and batch decode in threads: every read must reach its own verdict, and none may
    change the process's warning filters or let pydicom warn (warnings are process-global)."""
    data = MONO2.read_bytes()
    half, head = cut(tmp_path / "half.dcm", data, len(data) // 2), cut(tmp_path / "head.dcm", data, 200)
    good = read_image(MONO2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters, show = list(warnings.filters), warnings.showwarning
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(_outcome, [half, head, MONO2] * 40))
        assert warnings.filters == filters and warnings.showwarning is show
    for path, outcome in zip([half, head, MONO2] * 40, outcomes):
        if path == MONO2:
            np.testing.assert_array_equal(outcome, good)
        elif path == half:
            assert outcome.startswith(f"{half}: DICOM pixel data is truncated or corrupt ("), outcome
        else:
            assert outcome.startswith(f"{head}: DICOM file is truncated ("), outcome
    assert [str(w.message) for w in caught] == []


def test_the_reader_leaves_the_warning_state_alone(tmp_path):
    """warnings.catch_warnings swaps process-global filters: two decoder threads using it at once
    capture each other's warnings, or leave a filter behind. The deterministic half of the test above."""
    data = MONO2.read_bytes()
    half = cut(tmp_path / "half.dcm", data, len(data) // 2)
    original, uses = warnings.catch_warnings, []

    def spy(*args, **kwargs):
        uses.append(args or kwargs)
        return original(*args, **kwargs)

    warnings.catch_warnings = spy  # not monkeypatch: pytest's own reporting uses catch_warnings before teardown
    try:
        outcomes = [_outcome(half), _outcome(MONO2)]
    finally:
        warnings.catch_warnings = original
    assert uses == []
    assert "pixel data is truncated" in outcomes[0] and outcomes[1].shape == (1024, 1024)


def test_predict_iter_with_several_decoders_reports_each_cut_file_as_truncated(tmp_path, default_segmenter):
    """The audit's repro: a cut file given three times to predict_iter's decoder threads."""
    data = MONO2.read_bytes()
    half, head = cut(tmp_path / "half.dcm", data, len(data) // 2), cut(tmp_path / "head.dcm", data, 200)
    inputs = [str(half), str(head)] * 3 + [str(MONO2)]
    outcomes = list(default_segmenter.predict_iter(inputs, samples=2, workers=4))
    assert [item for item, _ in outcomes] == inputs
    for item, outcome in outcomes[:-1]:
        assert isinstance(outcome, chexmask_rt.InputError) and "truncated" in str(outcome), (item, outcome)
        assert "no pixel data" not in str(outcome)
    assert outcomes[-1][1].height == 1024


@pytest.fixture(scope="module")
def stored() -> np.ndarray:
    """Real stored pixels (a corner of the shared CR), as 12 bits in 16."""
    return pydicom.dcmread(MONO2).pixel_array[:256, :256].astype(np.uint16) * 16


def _lut(entries: list[int], keyword: str = "LUTData") -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(entries), 0, 16]
    item.add_new(keyword, "US", entries)
    return item


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom's warning as the test writes NaN
@pytest.mark.parametrize("tags, reason", [
    (dict(RescaleSlope=0, RescaleIntercept=0), "DICOM Rescale Slope is 0: every pixel would get the same value"),
    (dict(RescaleSlope="NaN", RescaleIntercept=0), "DICOM Rescale Slope is nan, not a finite number"),
    (dict(RescaleSlope="inf", RescaleIntercept=0), "DICOM Rescale Slope is inf, not a finite number"),
    (dict(RescaleSlope=1, RescaleIntercept="-inf"), "DICOM Rescale Intercept is -inf, not a finite number"),
    (dict(RescaleSlope="1e308", RescaleIntercept=0),
     "the DICOM Rescale Slope/Intercept gives values beyond the floating-point range"),
    (dict(WindowCenter="nan", WindowWidth=400), "DICOM Window Center is nan, not a finite number"),
    (dict(WindowCenter=2000, WindowWidth="inf"), "DICOM Window Width is inf, not a finite number"),
    (dict(WindowCenter=10**6, WindowWidth=10), "the DICOM Window Center/Width maps every pixel to one value"),
    (dict(WindowCenter=2000, WindowWidth="1e300"), "the DICOM Window Center/Width maps every pixel to one value"),
    (dict(ModalityLUTSequence=pydicom.Sequence([_lut([700] * 4096)])),
     "the DICOM Modality LUT Sequence maps every pixel to one value"),
    (dict(VOILUTSequence=pydicom.Sequence([_lut([900] * 4096)])),
     "the DICOM VOI LUT Sequence maps every pixel to one value"),
])
def test_display_attributes_that_render_a_blank_picture_are_refused(tmp_path, stored, tags, reason):
    path = make_dicom(tmp_path / "bad.dcm", stored, BitsStored=12, **tags)
    assert reason in error_of(path)


def test_a_uniform_stored_image_is_still_read_as_uniform(tmp_path):
    """A blank stored image is a degenerate input, not a bad attribute: read (and flagged later)."""
    path = make_dicom(tmp_path / "blank.dcm", np.full((64, 64), 500, np.uint16), BitsStored=12,
                      RescaleSlope=1, RescaleIntercept=-1024)
    assert np.ptp(read_image(path)) == 0


def test_a_valid_modality_lut_sequence_is_applied(tmp_path):
    stored = np.tile(np.arange(256, dtype=np.uint8), (40, 1))
    table = (255 - np.arange(256)) * 3  # a decreasing LUT: the picture comes out inverted
    path = make_dicom(tmp_path / "m.dcm", stored, ModalityLUTSequence=pydicom.Sequence([_lut(table.tolist())]))
    np.testing.assert_array_equal(read_image(path), np.rint((255 - stored) / 255.0 * 255).astype(np.uint8))


def test_an_emptied_window_is_no_window(tmp_path, stored):
    """Anonymisers blank Window Center/Width: min-max, as without them, not a refusal."""
    blank = read_image(make_dicom(tmp_path / "blank.dcm", stored, BitsStored=12, WindowCenter="", WindowWidth=""))
    np.testing.assert_array_equal(blank, read_image(make_dicom(tmp_path / "none.dcm", stored, BitsStored=12)))


def _under_syntax(tmp_path: Path, uid: str) -> Path:
    """The shared JPEG file's dataset, its encapsulated pixel data as it is, under another transfer syntax."""
    ds = pydicom.dcmread(MONO2)
    ds.file_meta.TransferSyntaxUID = uid
    path = tmp_path / f"{uid}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_transfer_syntax_whose_decoder_is_not_installed_says_what_to_install(tmp_path):
    """pydicom names the missing plugins on the lines after its first: the reader said "corrupt" without them."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import HTJ2K, HTJ2KLossless, JPEGLSLossless

    missing = [uid for uid in (HTJ2KLossless, HTJ2K, JPEGLSLossless) if not get_decoder(uid).is_available]
    if not missing:
        pytest.skip("every candidate transfer syntax has a decoder installed here")
    uid = missing[0]
    message = error_of(_under_syntax(tmp_path, uid))
    assert f"no decoder for its transfer syntax '{uid.name}' (install one of: " in message, message
    assert all(need in message for need in get_decoder(uid).missing_dependencies), message
    assert "corrupt" not in message and "\n" not in message


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.94"])  # MPEG2, JPIP Referenced
def test_a_transfer_syntax_pydicom_cannot_decode_says_it_is_not_supported(tmp_path, uid):
    name = pydicom.uid.UID(uid).name
    message = error_of(_under_syntax(tmp_path, uid))
    assert message.endswith(f": no decoder for its transfer syntax '{name}' (pydicom does not support it)"), message


def test_a_12_bit_jpeg_extended_file_without_its_decoder_says_what_to_install(tmp_path, monkeypatch):
    """Pillow reads JPEG Extended at 8 bits only and declines 12 before looking at the data: the sound 12-bit
    file, the usual lossy CR archive, was refused as "truncated or corrupt". Without imagecodecs (the
    [dicom] extra) and pydicom's other plugins, the refusal names them."""
    import shutil

    from pydicom.data import get_testdata_file
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    if set(get_decoder(JPEGExtended12Bit).available_plugins) - {"pillow"}:
        pytest.skip("a pydicom plugin that decodes 12-bit JPEG Extended is installed here")
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # its import fails, as where it is not installed
    path = tmp_path / "lossy12.dcm"
    shutil.copy(get_testdata_file("JPEG-lossy.dcm"), path)
    message = error_of(path)
    assert f": no decoder for its transfer syntax '{JPEGExtended12Bit.name}' (pillow: Pillow does not support " \
           "'JPEG Extended' for samples with 12-bit precision; install one of: imagecodecs " \
           "(pip install 'chexmask-rt[dicom]'); " in message, message
    assert all(need in message for need in get_decoder(JPEGExtended12Bit).missing_dependencies), message
    assert "corrupt" not in message and "\n" not in message


def test_a_real_decode_failure_keeps_the_plugins_reason(tmp_path):
    """JPEG baseline bytes under JPEG-LS: a decoder is installed and fails, so the data is what is wrong;
    the reason is on pydicom's second line."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if not get_decoder(JPEGLSLossless).is_available:
        pytest.skip("no JPEG-LS decoder installed here")
    message = error_of(_under_syntax(tmp_path, JPEGLSLossless))
    assert "cannot decode DICOM pixel data; it may be truncated or corrupt (" in message, message
    assert "pyjpegls: " in message and "\n" not in message, message


def _deflated(path: Path, pixels: np.ndarray, extra: bytes = b"") -> Path:
    """A Deflated Explicit VR Little Endian file of ``pixels``; ``extra`` zero bytes ride along in a
    private element, as a decompression bomb's would."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    plain = make_dicom(path.with_suffix(".plain.dcm"), pixels)
    ds = pydicom.dcmread(plain)
    if extra:
        ds.add_new(0x00091010, "OB", extra)
        ds.add_new(0x00090010, "LO", "BOMB")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_deflated_dataset_is_read_and_one_that_inflates_past_the_limit_is_refused_first(tmp_path, stored):
    """pydicom inflates a Deflated dataset whole, and for the header read and the pixel read alike: a
    1 MiB file of zeros inflating to 1 GiB took 4.3 GB of memory before it was refused as having no pixels."""
    import tracemalloc

    sound = _deflated(tmp_path / "sound.dcm", stored)
    np.testing.assert_array_equal(read_image(sound), read_image(make_dicom(tmp_path / "plain.dcm", stored)))
    # pydicom pads an odd-length stream with a byte; bytes after the stream's end are no more to inflate
    padded = tmp_path / "padded.dcm"
    padded.write_bytes(sound.read_bytes() + b"\0\0\0")
    np.testing.assert_array_equal(read_image(padded), read_image(sound))
    sound_no_length = tmp_path / "sound_nolength.dcm"  # the meta group's end is then found by its elements
    sound_no_length.write_bytes(sound.read_bytes()[:132] + sound.read_bytes()[144:])
    np.testing.assert_array_equal(read_image(sound_no_length), read_image(sound))
    bomb = _deflated(tmp_path / "bomb.dcm", stored, extra=bytes(96 << 20))  # 96 MiB inflated, ~100 KB on disk
    assert bomb.stat().st_size < 1 << 20
    data = bomb.read_bytes()
    assert data[132:138] == b"\x02\x00\x00\x00UL"  # (0002,0000), which pydicom does without
    no_length = tmp_path / "nolength_bomb.dcm"
    no_length.write_bytes(data[:132] + data[144:])
    for path in (bomb, no_length):
        tracemalloc.start()
        try:
            with pytest.raises(chexmask_rt.InputError, match=rf"{path.name}: its deflated dataset inflates past \d+ "
                                                             r"bytes, more than a single-frame image within the pixel "
                                                             r"limit"):
                read_image(path, max_pixels=1_000_000)  # 8 MB of pixels and 64 MiB of metadata at most
            assert tracemalloc.get_traced_memory()[1] < 40 << 20  # nothing near the inflated 96 MiB was held
        finally:
            tracemalloc.stop()
    assert read_image(bomb).shape == stored.shape  # within the default limit it is read as before


def _encapsulated(path: Path, frame: bytes, syntax: str, rows: int, columns: int, *, bot: bool = False,
                  fragment: int | None = None) -> Path:
    """A one-frame DICOM of ``frame`` (a compressed codestream) under ``syntax``; ``bot`` fills the Basic
    Offset Table, ``fragment`` splits the frame into fragments of that many bytes."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(make_dicom(path, np.zeros((rows, columns), np.uint8)))
    pieces = [frame] if fragment is None else [frame[i:i + fragment] for i in range(0, len(frame), fragment)]
    ds.PixelData = encapsulate([frame], has_bot=bot) if fragment is None else \
        encapsulate([frame], fragments_per_frame=len(pieces), has_bot=bot)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def _j2k(side: int, *, jp2: bool = False) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side), 7).save(buf, format="JPEG2000", no_jp2=not jp2, irreversible=False)
    return buf.getvalue()


def test_the_pixel_limit_reads_the_whole_compressed_frame(tmp_path):
    """The frame's size came from the first non-empty fragment: a filled Basic Offset Table was taken for
    the frame (a 13000-squared J2K behind 64x64 Rows/Columns decoded 169 MP), a JP2 wrapper was not
    parsed, and a frame split into small fragments was refused as cut short."""
    from pydicom.uid import JPEG2000Lossless

    big, small = _j2k(1200), _j2k(64)
    for name, frame, bot in (("bot", big, True), ("nobot", big, False), ("jp2", _j2k(1200, jp2=True), False)):
        path = _encapsulated(tmp_path / f"{name}.dcm", frame, JPEG2000Lossless, 64, 64, bot=bot)
        with pytest.raises(chexmask_rt.InputError, match=r"\(its compressed frame\): image is 1200x1200 \(1.4 "
                                                         r"megapixels\), above the pixel limit of 1.0 megapixels"):
            read_image(path, max_pixels=1_000_000)
    other = _encapsulated(tmp_path / "other.dcm", small, JPEG2000Lossless, 32, 48)
    with pytest.raises(chexmask_rt.InputError, match="its compressed frame is 64x64 pixels, its header says 48x32"):
        read_image(other)
    whole = read_image(_encapsulated(tmp_path / "whole.dcm", small, JPEG2000Lossless, 64, 64))
    split = read_image(_encapsulated(tmp_path / "split.dcm", small, JPEG2000Lossless, 64, 64, bot=True, fragment=16))
    np.testing.assert_array_equal(split, whole)


def test_damaged_jpeg_data_in_a_dicom_is_refused_as_in_a_jpeg_file(tmp_path):
    """pydicom's decoder fills damaged JPEG data in without a word (rows 1-1023 of the shared CR came out
    68 gray levels off on average, unflagged), where the same data as a .jpg file is refused."""
    data = bytearray(MONO2.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(bytes(data))
    with pytest.raises(chexmask_rt.InputError, match=r"damaged.dcm \(its compressed frame\): not a readable image "
                                                     r"\(damaged JPEG: Corrupt JPEG data"):
        read_image(damaged)
    assert read_image(MONO2).shape == (1024, 1024)  # the sound file still reads


def test_rendering_a_dicom_costs_a_few_bytes_a_pixel(tmp_path):
    """The display chain ran on the whole image in float64, several times over: 30 bytes a pixel beyond
    the file (2 GB for an 8000 x 8000 image; four decoder threads of a batch took 7.5 GB)."""
    import tracemalloc

    stored = np.random.default_rng(0).integers(0, 4096, (1000, 1000)).astype(np.uint16)
    for tags in ({"WindowCenter": 2048, "WindowWidth": 4096}, {"RescaleSlope": 2, "RescaleIntercept": -1024}, {}):
        path = make_dicom(tmp_path / "image.dcm", stored, BitsStored=12, **tags)
        tracemalloc.start()
        try:
            read_image(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 10 * stored.size, (tags, peak / stored.size)  # file bytes, stored and output: about 7


def test_a_jpeg_ls_frame_is_read_not_refused_as_damaged_jpeg(tmp_path, stored):
    """JPEG-LS frames start with the JPEG marker too, and TurboJPEG, which cannot read them, said "Could not
    determine subsampling" (behind its function's name, so the tolerated reasons missed it): every JPEG-LS
    DICOM was refused as damaged JPEG."""
    import jpeg_ls
    from pydicom.uid import JPEGLSLossless

    frame = bytes(jpeg_ls.encode(stored))
    path = _encapsulated(tmp_path / "jls.dcm", frame, JPEGLSLossless, *stored.shape)
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.save_as(path)
    np.testing.assert_array_equal(read_image(path),
                                  read_image(make_dicom(tmp_path / "plain.dcm", stored, BitsStored=12)))


def test_gdcm_is_not_asked_where_another_plugin_reads_the_syntax(tmp_path, stored):
    """pydicom tries GDCM first for every compressed syntax, and again after another plugin failed; GDCM
    ends the process on damaged data (a JPEG-LS CR with a damaged header, python-gdcm 3.2.6: "terminate
    called after throwing an instance of std::string", 1 of the first 24 damaged files). A stand-in
    GDCM that ends the process as GDCM does is registered behind pyjpegls: the damaged frame must be an
    InputError from pyjpegls, the process alive."""
    import subprocess
    import sys

    import jpeg_ls
    from pydicom.uid import JPEGLSLossless

    frame = bytearray(jpeg_ls.encode(stored))
    frame[len(frame) // 2:len(frame) // 2 + 16] = bytes(range(0, 256, 16))  # CharLS refuses this data
    path = _encapsulated(tmp_path / "jls.dcm", bytes(frame), JPEGLSLossless, *stored.shape)
    (tmp_path / "stand_in_gdcm.py").write_text(
        "import os\nDECODER_DEPENDENCIES = {}\n\n\ndef is_available(uid):\n    return True\n\n\n"
        "def _decode_frame(src, runner):\n    os.abort()  # as GDCM's uncaught C++ exception does\n")
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGLSLossless
import chexmask_rt
from chexmask_rt.image_io import read_image
decoder = get_decoder(JPEGLSLossless)
decoder.remove_plugin("gdcm")
decoder.add_plugin("gdcm", ("stand_in_gdcm", "_decode_frame"))
try:
    read_image({str(path)!r})
except chexmask_rt.InputError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "cannot decode DICOM pixel data; it may be truncated or corrupt (" in done.stdout, done.stdout
    assert "pyjpegls: " in done.stdout, done.stdout


def test_a_jpeg_frame_whose_header_disagrees_is_judged_by_pydicom_as_before(tmp_path):
    """A gray 8-bit JPEG frame is read from the strict decode, once; a header that disagrees with it (Samples
    per Pixel 0, Bits Allocated 16) must still go to pydicom, which refuses it, not be read past."""
    for keyword, value in (("SamplesPerPixel", 0), ("SamplesPerPixel", 3), ("BitsAllocated", 16)):
        ds = pydicom.dcmread(MONO2)
        setattr(ds, keyword, value)
        path = tmp_path / f"{keyword}{value}.dcm"
        ds.save_as(path)
        with pytest.raises(chexmask_rt.InputError, match=r"cannot decode DICOM pixel data|expected a 2-D"):
            read_image(path)


def _trap(src, runner):  # a decoder plugin standing for GDCM: it must never be asked
    _TRAPPED.append(len(src))
    raise RuntimeError("the trap decoder was asked")


_TRAPPED: list[int] = []


def test_pixel_data_a_built_in_decoder_reads_is_not_given_to_another(tmp_path, monkeypatch):
    """With GDCM installed, pydicom tries it first, and GDCM throws C++ exceptions that no binding catches
    on malformed data: a fuzzed JPEG CR ended the whole process. Where pillow or pydicom itself read the
    syntax, the reader asks for them; a plugin put first (GDCM's place) is never asked."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    stored = pydicom.dcmread(MONO2).pixel_array[:200, :180]
    plain = make_dicom(tmp_path / "plain.dcm", stored)
    ds = pydicom.dcmread(plain)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    decoder = get_decoder(RLELossless)
    monkeypatch.setattr(decoder, "_available", {"trap": _trap, **decoder._available})
    _TRAPPED.clear()
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm"), read_image(plain))
    assert _TRAPPED == []


def test_a_plugin_that_failed_on_the_data_is_no_missing_decoder():
    """A missing decoder only when every plugin declined the samples' precision: when one of them tried and
    failed, the data is what is wrong, and the usual corrupt-data message stands."""
    from pathlib import Path

    from chexmask_rt.dicom_io import _no_decoder

    head = "Unable to decode the pixel data as the following exceptions were raised by all plugins:"
    declined = "pillow: Pillow does not support 'JPEG Extended' for samples with 12-bit precision"
    assert "no decoder for its transfer syntax" in str(_no_decoder(None, Path("x.dcm"), RuntimeError(f"{head}\n{declined}")))
    tried = "gdcm: GDCM could not decode the pixel data"
    assert _no_decoder(None, Path("x.dcm"), RuntimeError(f"{head}\n{declined}\n{tried}")) is None


def _dicom_of_many_items(items: int, deflated: bool) -> bytes:
    """A 64x64 DICOM whose header holds a sequence of ``items`` small items of undefined length (pydicom
    parses each to find its end), written by hand: Explicit VR Little Endian, or Deflated."""
    import struct
    import zlib

    def element(group, number, vr, value):
        if len(value) % 2:
            value += b"\0" if vr == b"UI" else b" "
        return struct.pack("<HH2sH", group, number, vr, len(value)) + value

    syntax = b"1.2.840.10008.1.2.1.99" if deflated else b"1.2.840.10008.1.2.1"
    sop = b"1.2.840.10008.5.1.4.1.1.1.1"
    body = element(2, 2, b"UI", sop) + element(2, 3, b"UI", b"1.2.3.4") + element(2, 0x10, b"UI", syntax)
    meta = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body)) + body
    inner = element(0x0008, 0x0100, b"SH", b"AB")
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sequence = (struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF) + item * items
                + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    pixels = (np.arange(64 * 64) % 4096).astype("<u2").tobytes()
    dataset = (element(0x0008, 0x0016, b"UI", sop) + element(0x0008, 0x0018, b"UI", b"1.2.3.4") + sequence
               + b"".join(element(0x0028, n, vr, v) for n, vr, v in (
                   (0x0002, b"US", struct.pack("<H", 1)), (0x0004, b"CS", b"MONOCHROME2"),
                   (0x0010, b"US", struct.pack("<H", 64)), (0x0011, b"US", struct.pack("<H", 64)),
                   (0x0100, b"US", struct.pack("<H", 16)), (0x0101, b"US", struct.pack("<H", 12)),
                   (0x0102, b"US", struct.pack("<H", 11)), (0x0103, b"US", struct.pack("<H", 0))))
               + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(pixels)) + pixels)
    if deflated:
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        dataset = packer.compress(dataset) + packer.flush()
        dataset += b"\0" * (len(dataset) % 2)
    return bytes(128) + b"DICM" + meta + dataset


@pytest.mark.parametrize("deflated", [False, True])
def test_a_header_of_a_million_items_is_refused_before_pydicom_builds_them(tmp_path, deflated):
    """A 52 kB deflated DICOM of a million empty items took 2.4 GB and 4 minutes, then was segmented; the
    items are counted in the (inflated) bytes first. A header of 1,000 still reads."""
    few, many = tmp_path / "few.dcm", tmp_path / "many.dcm"
    few.write_bytes(_dicom_of_many_items(1_000, deflated))
    many.write_bytes(_dicom_of_many_items(150_000, deflated))
    assert read_image(few).shape == (64, 64)
    with pytest.raises(chexmask_rt.InputError, match="more than 100000 sequence items"):
        read_image(many)
