"""The core's own letterbox resize (issue 20, cases 3 and 7): it never materialises the padded
square, and gives what CheXmask's cv2 pad + cv2.resize(INTER_LINEAR) gives: bit-exact on 8-bit
images, within one level on 16-bit ones; the reference path (tests/reference) and the core agree exactly."""
import json
import mmap
import subprocess
import sys

import cv2
import numpy as np
import pytest

from reference import Letterbox, preprocess, resize_window

from conftest import REPO, skip_or_fail_without_native

# 1-pixel differences around powers of two, odd sides, the smallest image, the 2x case and
# extreme aspect ratios both ways; each at the engine sides that exist (multiples of 32)
SHAPES = [(32, 32), (32, 33), (33, 32), (511, 512), (512, 511), (513, 512), (512, 513), (1023, 1024),
          (1024, 1023), (1025, 1024), (1024, 1024), (999, 777), (777, 999), (899, 786), (2048, 1000),
          (61, 3001), (3001, 61), (1537, 2049)]
SIZES = [64, 256, 512, 1024]
EXTREME = [(32, 65536), (65536, 32)]  # (height, width)
SCALE = {np.uint8: 255.0, np.uint16: 4095.0, np.float32: 1.0}


def core():
    try:
        from chexmask_rt import _core
    except ImportError as exc:
        skip_or_fail_without_native(f"chexmask_rt._core not built ({exc})")
    return _core


def lazy_zeros(shape: tuple[int, int], dtype) -> np.ndarray:
    """Zeros whose pages exist only once written, in 4 KB pages (transparent huge pages would
    make every 2 MB region a row touches resident: 4 GB for a 65536^2 square)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    memory = mmap.mmap(-1, size)
    memory.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def padded_cv2(gray: np.ndarray, size: int) -> np.ndarray:
    """CheXmask's way: materialise the centred square, then cv2.resize. Even a 65536^2 square
    costs only the pages written (one per row for a tall image) and read (shared zero pages)."""
    frame = Letterbox(*gray.shape)
    square = lazy_zeros((frame.side, frame.side), gray.dtype)
    square[frame.pad_top:frame.pad_top + frame.height, frame.pad_left:frame.pad_left + frame.width] = gray
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)


def random_image(rng, shape, dtype):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 4096, shape, dtype=np.uint16)  # 12-bit content
    return rng.random(shape, dtype=np.float32)


def both_paths(gray, size):
    """(the reference path's engine input, the core's) for one image."""
    depth = 12 if gray.dtype == np.uint16 else None
    return preprocess(gray, size, bit_depth=depth)[0], core().preprocess(gray, size, depth)[0]


@pytest.mark.parametrize("shape", SHAPES + EXTREME, ids=str)
def test_8bit_is_bit_exact_against_cv2_pad_and_resize(shape):
    rng = np.random.default_rng(sum(shape))
    gray = random_image(rng, shape, np.uint8)
    for size in SIZES:
        want = padded_cv2(gray, size)
        frame = Letterbox(*shape)
        np.testing.assert_array_equal(resize_window(gray, -frame.pad_left, -frame.pad_top, frame.side, size), want)
        python, native = both_paths(gray, size)
        np.testing.assert_array_equal(python, want.astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(native, python)


@pytest.mark.parametrize("shape", SHAPES + [(32, 32768), (32768, 32)], ids=str)
def test_16bit_is_within_one_level_of_cv2_and_both_paths_agree(shape):
    rng = np.random.default_rng(sum(shape) + 1)
    gray = random_image(rng, shape, np.uint16)
    for size in SIZES:
        want = padded_cv2(gray, size).astype(np.int64)
        frame = Letterbox(*shape)
        got = resize_window(gray, -frame.pad_left, -frame.pad_top, frame.side, size).astype(np.int64)
        # cv2 5's vector code rounds a few pixels differently: one 16-bit level, 2.4e-4 of this
        # 12-bit image's full scale, so at most 1e-3 of the engine's [0, 1] input
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= max(20, got.size // 5000)
        python, native = both_paths(gray, size)
        assert np.abs(python - want / 4095.0).max() <= 1e-3
        np.testing.assert_array_equal(native, python)


@pytest.mark.parametrize("shape", [(33, 47), (899, 786), (1024, 1023), (61, 3001)], ids=str)
def test_float_images_match_cv2_to_float_precision(shape):
    gray = random_image(np.random.default_rng(sum(shape) + 2), shape, np.float32)
    for size in (256, 512):
        python, native = both_paths(gray, size)
        np.testing.assert_allclose(python, padded_cv2(gray, size), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(native, python)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_window_equals_the_materialised_crop(dtype):
    """The second look's crop, read in place: black where it leaves the image."""
    gray = random_image(np.random.default_rng(3), (700, 500), dtype)
    for left, top, side in [(-40, 100, 650), (100, -30, 333), (-5, -5, 1200), (450, 650, 300), (600, 800, 64)]:
        crop = np.zeros((side, side), dtype)
        y0, y1, x0, x1 = max(top, 0), min(top + side, 700), max(left, 0), min(left + side, 500)
        if y0 < y1 and x0 < x1:
            crop[y0 - top:y1 - top, x0 - left:x1 - left] = gray[y0:y1, x0:x1]
        got = resize_window(gray, left, top, side, 256)
        if dtype == np.uint8:
            np.testing.assert_array_equal(got, cv2.resize(crop, (256, 256), interpolation=cv2.INTER_LINEAR))
        np.testing.assert_array_equal(got, resize_window(crop, 0, 0, side, 256))


PEAK_RSS = """
import json, resource, sys
import numpy as np
# a ceiling far above the bound, so that a regression fails here instead of taking the machine's memory
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import chexmask_rt
item = sys.argv[1]
if item == "float32":
    item = np.tile(np.linspace(0, 1, 65536, dtype=np.float32), (32, 1))  # 32 x 65536, case 3
result = chexmask_rt.load(threads=1).predict(item, samples=2, second_look=True)
from benchmarks.run import peak_rss_mb  # this process's own peak (ru_maxrss keeps the parent's across exec)
print(json.dumps({"finite": bool(np.isfinite(result.landmarks).all()), "look": result.second_look.look,
                  "peak_mb": peak_rss_mb()}))
"""


@pytest.fixture(scope="module")
def wide_pngs(tmp_path_factory):
    """65536 x 32 gradients, 8- and 12-bit: a few KB on disk, a 65536^2 square once padded."""
    root = tmp_path_factory.mktemp("wide")
    ramp = np.tile(np.arange(65536) % 4096, (32, 1))
    paths = {"8bit": root / "wide8.png", "12bit": root / "wide12.png"}
    cv2.imwrite(str(paths["8bit"]), (ramp // 16).astype(np.uint8))
    cv2.imwrite(str(paths["12bit"]), ramp.astype(np.uint16))
    return paths


@pytest.mark.parametrize("item", ["8bit", "12bit", "float32"])
def test_peak_memory_of_a_65536x32_image_stays_bounded(item, wide_pngs):
    """Padded, this image would be a 65536^2 square (4 GiB at 8 bits, 16 GiB as float32); with its
    second look (asked for: its crop is a second window onto the image) the whole prediction stays
    under 300 MB."""
    core()
    arg = "float32" if item == "float32" else str(wide_pngs[item])
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, arg], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["finite"] and report["look"] != "off"
    assert report["peak_mb"] <= 300, report
