"""The pixel limit and header checks (issue 20, cases 1, 2, 8 and the smaller ones): an image too
large, a file too large for any image within the limit, a multi-page TIFF, a cut PNG or DICOM are
refused with an InputError, before anything is decoded, and the CLI says so in one line (exit 3)."""
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.errors import InputError
from chexmask_rt.image_headers import read_header
from chexmask_rt.image_io import read_image
from chexmask_rt.limits import DEFAULT_MAX_PIXELS, ENV_VAR

from conftest import IMAGES, REPO, SHARED

MONO2 = SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"
PNG = IMAGES / "nih_00000001_000_512.png"


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


def one_line_error(proc, code, needle):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def png_claiming(tmp_path, width, height):
    """A real PNG whose IHDR (with a valid CRC) claims another size."""
    data = bytearray(PNG.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / f"claims_{width}x{height}.png"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture()
def no_decoding(monkeypatch):
    """Fail the test if a decoder runs: the refusals below must come from the header alone."""
    def refuse(*args, **kwargs):
        raise AssertionError("the image was decoded")
    monkeypatch.setattr(cv2, "imdecode", refuse)


def test_a_png_header_claiming_100000_squared_is_an_input_error(tmp_path, default_segmenter):
    path = png_claiming(tmp_path, 100_000, 100_000)
    with pytest.raises(InputError, match=r"100000x100000 \(10000.0 megapixels\), above the pixel limit of 64.0"):
        default_segmenter.predict(path)
    one_line_error(cli("predict", path), 3, "above the pixel limit")


@pytest.mark.parametrize("name,header", [("huge.png", PNG), ("huge.dcm", MONO2), ("zeros.png", None),
                                         ("zeros.dcm", None)])
@pytest.mark.parametrize("gib", [3, 6])
def test_multi_gigabyte_files_are_refused_before_reading(tmp_path, name, header, gib):
    """Sparse 3 and 6 GiB files, with a real header or none: refused from their size, in a process
    whose peak memory stays that of an idle interpreter (main read them whole: 3.2 GB)."""
    path = tmp_path / name
    path.write_bytes(b"" if header is None else header.read_bytes()[:4096])
    os.truncate(path, gib << 30)
    code = ("import sys; from chexmask_rt.image_io import read_image\n"
            "from chexmask_rt.errors import InputError\n"
            "from benchmarks.run import peak_rss_mb\n"  # the child's own peak, not the pytest parent's
            "try:\n    read_image(sys.argv[1])\nexcept InputError as e:\n    print(e)\n"
            "print(int(peak_rss_mb()))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    message, peak_mb = proc.stdout.strip().splitlines()
    assert f"file is {gib << 10} MiB, larger than an image of at most 64.0 megapixels can be" in message, proc.stderr
    assert int(peak_mb) < 300


@pytest.mark.parametrize("source, megapixels", [(PNG, "0.3"), (MONO2, "1.0")])
def test_a_file_far_larger_than_its_declared_image_is_refused(tmp_path, source, megapixels):
    path = tmp_path / f"padded{source.suffix}"  # its header, then 200 MiB of nothing (a DICOM was read whole: 49 s)
    path.write_bytes(source.read_bytes())
    os.truncate(path, 200 << 20)
    with pytest.raises(InputError, match=f"larger than an image of at most {megapixels} megapixels can be"):
        read_image(path)


@pytest.mark.parametrize("ext,dtype,channels", [(ext, np.uint8, c) for ext in (".png", ".jpg", ".tif", ".bmp")
                                                 for c in (1, 3)] + [(".png", np.uint16, 1), (".tif", np.uint16, 1)])
def test_headers_declare_the_decoded_size(tmp_path, ext, dtype, channels):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (37, 53) if channels == 1 else (37, 53, 3)).astype(dtype)
    path = tmp_path / f"im{ext}"
    assert cv2.imwrite(str(path), image)
    with open(path, "rb") as f:
        header = read_header(f, str(path))
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert (header.width, header.height, header.pages) == (decoded.shape[1], decoded.shape[0], 1)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".bmp"])
def test_the_limit_applies_before_decoding(tmp_path, ext, no_decoding):
    path = tmp_path / f"im{ext}"
    assert cv2.imwrite(str(path), np.zeros((40, 50), np.uint8))
    with pytest.raises(InputError, match=r"50x40 \(2,000 pixels\), above the pixel limit of 1,999 pixels"):
        read_image(path, max_pixels=40 * 50 - 1)


def test_the_limit_is_configurable(tmp_path, default_segmenter):
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.full((100, 120), 90, np.uint8))
    assert read_image(path, max_pixels=12_000).shape == (100, 120)
    for call in (lambda: default_segmenter.predict(path, max_pixels=11_999, samples=2),
                 lambda: default_segmenter.predict(np.zeros((100, 120), np.uint8), max_pixels=11_999, samples=2),
                 lambda: chexmask_rt.load(max_pixels=11_999).predict(path, samples=2)):
        with pytest.raises(InputError, match="above the pixel limit of 11,999 pixels"):
            call()
    with pytest.raises(InputError, match="max_pixels must be an integer >= 1024"):
        chexmask_rt.load(max_pixels=10)
    one_line_error(cli("predict", path, "--samples", 2, "--max-pixels", 11_999), 3, "above the pixel limit")
    one_line_error(cli("predict", path, "--samples", 2, env={ENV_VAR: "11999"}), 3, "above the pixel limit")
    assert cli("predict", path, "--samples", 2, "--max-pixels", 12_000).returncode == 0
    one_line_error(cli("predict", path, env={ENV_VAR: "lots"}), 3, f"{ENV_VAR}='lots' is not an integer")
    assert DEFAULT_MAX_PIXELS == 64_000_000


def test_arrays_above_the_limit_are_refused_before_preprocessing(default_segmenter):
    big = np.broadcast_to(np.uint8(0), (8001, 8000))  # 64.008 MP, no memory behind it
    with pytest.raises(InputError, match=r"array: image is 8000x8001 \(64.0 megapixels\), above the pixel limit"):
        default_segmenter.predict(big)


def test_a_dicom_whose_jpeg_frame_claims_12000_squared_is_refused(tmp_path, no_decoding):
    data = bytearray(MONO2.read_bytes())
    sof = data.index(b"\xff\xc0\x00\x0b\x08")  # baseline frame header of a 1-component, 8-bit JPEG
    data[sof + 5:sof + 9] = struct.pack(">HH", 12_000, 12_000)
    path = tmp_path / "frame_claims_12000.dcm"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"\(its compressed frame\): image is 12000x12000 \(144.0 megapixels\)"):
        read_image(path)


def test_a_dicom_header_claiming_20000_squared_is_refused(tmp_path):
    from test_dicom import make_dicom

    path = make_dicom(tmp_path / "small.dcm", np.zeros((64, 64), np.uint8))
    data = path.read_bytes()  # Rows and Columns (US, explicit VR): (0028,0010) and (0028,0011)
    for tag in (b"\x28\x00\x10\x00US\x02\x00", b"\x28\x00\x11\x00US\x02\x00"):
        at = data.index(tag) + len(tag)
        data = data[:at] + struct.pack("<H", 20_000) + data[at + 2:]
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"20000x20000 \(400.0 megapixels\), above the pixel limit"):
        read_image(path)


def test_a_multi_page_tiff_is_refused_not_silently_cut_to_page_one(tmp_path):
    path = tmp_path / "two_pages.tif"
    assert cv2.imwritemulti(str(path), [np.zeros((40, 50), np.uint8), np.full((40, 50), 200, np.uint8)])
    with pytest.raises(InputError, match=r"multi-page TIFF \(2 pages\)"):
        read_image(path)


def test_cut_or_corrupt_pngs_print_no_libpng_lines(tmp_path):
    data = PNG.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10  # inside IDAT: its CRC no longer matches
    corrupt = tmp_path / "flipped.png"
    corrupt.write_bytes(bytes(flipped))
    # an ancillary chunk that fails its CRC (libpng dropped it with a warning line), and a critical chunk
    # no decoder knows with a good CRC (libpng stopped with an error line)
    ancillary, unknown = tmp_path / "text.png", tmp_path / "unknown.png"
    text = b"tEXt" + b"Comment\x00hello"
    ancillary.write_bytes(data[:33] + struct.pack(">I", len(text) - 4) + text
                          + struct.pack(">I", zlib.crc32(text) ^ 1) + data[33:])
    chunk = b"IDAU" + bytes(4)
    unknown.write_bytes(data[:33] + struct.pack(">I", 4) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:])
    for path, needle in ((cut, "PNG cut short"), (corrupt, "'IDAT' chunk fails its CRC"),
                         (ancillary, "'tEXt' chunk fails its CRC"), (unknown, "unknown critical chunk 'IDAU'")):
        proc = cli("predict", path)
        one_line_error(proc, 3, needle)
        assert "libpng" not in proc.stderr


def test_a_truncated_jpeg_dicom_says_truncated(tmp_path):
    data = MONO2.read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="pixel data is truncated or corrupt") as err:
        read_image(path)
    assert "no pixel data" not in str(err.value)


def test_a_zero_filled_dcm_is_refused_at_once(tmp_path):
    path = tmp_path / "zeros.dcm"  # pydicom with force=True parses 50 MB of zeros for about 20 s
    path.write_bytes(bytes(50 << 20))
    with pytest.raises(InputError, match="not a readable DICOM file"):
        read_image(path)



@pytest.mark.parametrize("body", [b"\x00", b"\xff"])
def test_header_readers_give_up_on_hostile_files(tmp_path, body):
    """A JPEG start followed by 8 MB of one byte: a bounded scan, not eight million reads."""
    path = tmp_path / "hostile.jpg"
    path.write_bytes(b"\xff\xd8" + body * (8 << 20))
    with pytest.raises(InputError, match="JPEG with more than 65536 bytes between two segments"):
        read_image(path)
