"""The native core (chexmask_rt._core) against the reference pipeline (tests/reference).

Skipped as a whole only when _core is not built (see cpp/README.md:
`cmake -S . -B build -DCHEXMASK_RT_PYTHON_OUTPUT_DIR=runtime/chexmask_rt && cmake --build build -j2`,
or `pip install .`). The example-program test needs build/cpp/chexmask-rt-cpp
(CHEXMASK_RT_BUILD_EXAMPLES=ON) or $CHEXMASK_RT_CPP_EXAMPLE and is skipped without it.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.errors import ChexmaskError, InputError, ModelError
from chexmask_rt.image_io import read_image
from reference import ReferenceSegmenter, latent_noise, preprocess, to_gray

from conftest import REPO
from toy_engine import toy_engine, write_toy_engine

from conftest import skip_or_fail_without_native  # noqa: E402

try:
    from chexmask_rt import _core, core
except ImportError as exc:
    skip_or_fail_without_native(f"chexmask_rt._core is not built ({exc}); build it with CMake or pip install .",
                                allow_module_level=True)

PX_TOL = 1e-3  # landmarks and stds, original pixels
ENGINES = ["default", "skip_256", "noskip_256"]


def _quiet_load(path, backend="auto"):
    from chexmask_rt.model import UntrainedModelWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        return chexmask_rt.load(path, backend=backend)


@pytest.fixture(scope="module", params=ENGINES)
def engine_path(request, exported) -> Path:
    if request.param == "default":
        return chexmask_rt.default_model_path()
    return exported[request.param]  # these also carry the landmarks_samples output, which must be ignored


@pytest.fixture(scope="module")
def pair(engine_path):
    """(native segmenter, reference segmenter) on one engine."""
    return _quiet_load(engine_path), ReferenceSegmenter(engine_path)


@pytest.fixture(scope="module")
def default_native():
    return chexmask_rt.load()


def _assert_results_close(a, b, tol=PX_TOL, latent_tol=1e-5):
    for field in ("landmarks", "landmarks_std", "landmarks_mu"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=tol, rtol=0, err_msg=field)
    for field in ("latent_mu", "latent_sigma"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=latent_tol, rtol=0, err_msg=field)
    np.testing.assert_allclose(a.node_uncertainty, b.node_uncertainty, atol=tol, rtol=0)
    assert abs(a.mean_node_std - b.mean_node_std) < tol
    assert (a.height, a.width, a.samples, a.seed, a.model, a.image) == (b.height, b.width, b.samples, b.seed, b.model, b.image)


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("landmarks", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"))


# --- eps -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 7, 123456789, 2**63, 2**64 - 1])
@pytest.mark.parametrize("samples,latents", [(1, 64), (3, 64), (50, 64), (7, 3), (1, 1)])
def test_eps_equals_python(seed, samples, latents):
    a = _core.latent_noise(samples, latents, seed)
    b = latent_noise(samples, latents, seed)
    assert a.dtype == np.float32 and a.shape == b.shape == (samples, latents)
    ulps = np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1


# --- preprocessing ---------------------------------------------------------------------------------

def test_preprocess_8bit_identical(shared_images):
    for path in shared_images:
        gray, _ = to_gray(read_image(path))
        ref, frame = preprocess(read_image(path), 256)
        out, side, pad_left, pad_top = _core.preprocess(gray, 256)
        assert (side, pad_left, pad_top) == (frame.side, frame.pad_left, frame.pad_top)
        np.testing.assert_array_equal(out, ref, err_msg=path.name)


@pytest.mark.parametrize("bits", [16, 12])
def test_preprocess_16bit_within_one_level(shared_images, bits):
    # Debian's OpenCV and the opencv-python wheel may differ by one level in a few 16-bit
    # resize outputs (their SIMD paths differ); 8-bit resizes are bit-exact across them.
    for path in shared_images:
        gray8, _ = to_gray(read_image(path))
        gray = (gray8.astype(np.uint16) * ((2**bits - 1) // 255)).astype(np.uint16)
        ref, _ = preprocess(gray, 256, bit_depth=bits)
        out, *_ = _core.preprocess(gray, 256, bit_depth=bits)
        assert np.abs(out - ref).max() <= 1.0 / (2**bits - 1) + 1e-7, path.name


def test_preprocess_float_within_one_ulp(shared_images):
    gray8, _ = to_gray(read_image(shared_images[0]))
    image = gray8.astype(np.float32) / 255.0
    ref, _ = preprocess(image, 256)
    out, *_ = _core.preprocess(image, 256)
    np.testing.assert_allclose(out, ref, atol=2.5e-7, rtol=0)


def test_strided_and_flipped_arrays(default_native, example1):
    gray, _ = to_gray(read_image(example1))
    wide = np.zeros((gray.shape[0], gray.shape[1] + 13), np.uint8)
    wide[:, :gray.shape[1]] = gray
    view = wide[:, :gray.shape[1]]  # rows with padding bytes: read in place
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(_core.preprocess(view, 256)[0], _core.preprocess(gray, 256)[0])
    flipped = gray[::-1, ::-1]  # negative strides: one compact copy, same numbers as Python
    np.testing.assert_array_equal(_core.preprocess(flipped, 256)[0], preprocess(flipped, 256)[0])
    every_other = gray[:, ::2]
    np.testing.assert_array_equal(_core.preprocess(every_other, 256)[0], preprocess(every_other, 256)[0])


# --- native vs Python, end to end ------------------------------------------------------------------

@pytest.mark.parametrize("seed,samples", [(0, 50), (7, 5)])
def test_native_equals_python_on_shared_images(pair, shared_images, seed, samples):
    nat, ref = pair
    for path in shared_images:
        _assert_results_close(nat.predict(path, samples=samples, seed=seed), ref.predict(path, samples=samples, seed=seed))


@pytest.mark.parametrize("images_per_call", [0, 3])
def test_native_batch_equals_python_batch(pair, engine_path, shared_images, images_per_call):
    """A chunk of 3 as the core runs it: one engine call per image by default on the CPU, one
    call for all three with images_per_call=3; the reference makes the same calls."""
    _, ref = pair
    options = chexmask_rt.EngineOptions(images_per_call=images_per_call)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", chexmask_rt.model.UntrainedModelWarning)
        nat = chexmask_rt.load(engine_path, engine_options=options)
    a = nat.predict_batch(shared_images, samples=10, seed=3, batch_size=3)
    b = ref.predict_batch(shared_images, samples=10, seed=3, batch_size=images_per_call or 1)
    assert len(a) == len(b) == len(shared_images)
    for x, y in zip(a, b):
        _assert_results_close(x, y)


def test_native_16bit_and_rgb_arrays(default_native, shared_images):
    ref = ReferenceSegmenter(chexmask_rt.default_model_path())
    rgb = read_image(next(p for p in shared_images if read_image(p).ndim == 3))
    _assert_results_close(default_native.predict(rgb, samples=8), ref.predict(rgb, samples=8))
    gray, _ = to_gray(rgb)
    deep = gray.astype(np.uint16) * 16
    a = default_native.predict(deep, samples=8, bit_depth=12)
    b = ref.predict(deep, samples=8, bit_depth=12)
    # One-level 16-bit resize differences between OpenCV builds (see above) move the
    # landmarks by a few hundredths of a pixel; 8-bit inputs are bit-identical (tested above).
    _assert_results_close(a, b, tol=0.1, latent_tol=1e-3)


def test_high_bit_images_in_16_bit_containers(default_native, example1):
    """12-bit pixels in a uint16 array (a 16-bit PNG from a 12-bit detector) need no bit_depth:
    both backends infer it, also per image within one batch, and the trained model answers as
    for the 8-bit image (read as 16-bit, version 10's landmarks move 18 px on average)."""
    pair = default_native, ReferenceSegmenter(chexmask_rt.default_model_path())
    gray, _ = to_gray(read_image(example1))
    twelve, sixteen = gray.astype(np.uint16) * 16, gray.astype(np.uint16) * 257
    for backend in pair:
        expected = backend.predict(gray, samples=8)
        np.testing.assert_array_equal(backend.predict(twelve, samples=8).landmarks,
                                      backend.predict(twelve, samples=8, bit_depth=12).landmarks)
        # one engine call for the three; a batch of 3 may round unlike a batch of 1 (1e-4 px)
        inferred = backend.predict_batch([twelve, gray, sixteen], samples=8)
        for result in inferred:
            assert np.abs(result.landmarks - expected.landmarks).max() < 1.0
        assert np.abs(inferred[1].landmarks - expected.landmarks).max() < 1e-3
    _assert_results_close(pair[0].predict(twelve, samples=8), pair[1].predict(twelve, samples=8), tol=0.1,
                          latent_tol=1e-3)


def test_arrays_that_crossed_a_pickle_or_are_big_endian(pair, shared_images):
    """An unpickled array (multiprocessing, caches) has an equal dtype that is another object;
    16-bit pixels may come big-endian from a file. Both are the same image."""
    nat, ref = pair
    gray, _ = to_gray(read_image(shared_images[0]))
    expected = ref.predict(gray, samples=8)
    travelled = pickle.loads(pickle.dumps(gray))
    assert travelled.dtype is not np.dtype(np.uint8)
    _assert_results_close(nat.predict(travelled, samples=8), expected)
    _assert_results_close(ref.predict(travelled, samples=8), expected)
    deep = gray.astype(np.uint16) * 257
    big = deep.astype(">u2")
    for backend in pair:
        np.testing.assert_array_equal(backend.predict(big, samples=8).landmarks,
                                      backend.predict(deep, samples=8).landmarks)


def test_native_segmenter_interface(default_native):
    assert default_native.backend == "native"
    ref = ReferenceSegmenter(chexmask_rt.default_model_path()).session.metadata
    assert (default_native.info.inputsize, default_native.info.latents, default_native.model_id) == \
        (ref.inputsize, ref.latents, ref.model_id)
    assert default_native.model_id == f"{default_native.info.model_name}:{default_native.info.model_version}"


def test_load_uses_native_core():
    """Done-criterion of issue 3: load() picks the native core when it is built."""
    assert _quiet_load(None, "auto").backend == "native"


# --- engine settings -------------------------------------------------------------------------------

def test_engine_options_defaults_match_the_cpp_header():
    """Python's EngineOptions and the C++ EngineOptions{} (the binding's defaults) agree."""
    doc, defaults = _core.Engine.__init__.__doc__, chexmask_rt.EngineOptions()
    assert f"layout_optimizations: bool = {defaults.layout_optimizations}" in doc
    assert f"memory_pattern: bool = {defaults.memory_pattern}" in doc
    assert f"images_per_call: typing.SupportsInt | typing.SupportsIndex = {defaults.images_per_call}," in doc
    assert defaults.expected_sha256 is None and "expected_sha256: str = '')" in doc  # None reaches the core as ""


def test_engine_settings_change_speed_not_answers(shared_images):
    image = read_image(shared_images[0])
    tuned = chexmask_rt.EngineOptions(threads=1, layout_optimizations=True, memory_pattern=True)
    a = chexmask_rt.load().predict(image, samples=20)
    b = chexmask_rt.load(engine_options=tuned).predict(image, samples=20)
    _assert_results_close(a, b)
    # the same settings in the reference's own onnxruntime session
    model = chexmask_rt.default_model_path()
    c = ReferenceSegmenter(model, threads=1, layout_optimizations=True, memory_pattern=True).predict(image, samples=20)
    _assert_results_close(a, c)


# --- threads ---------------------------------------------------------------------------------------

def test_thread_counts_move_answers_by_float_rounding_at_most(shared_images):
    """The README said threads change speed, not answers; from 3 threads ONNX Runtime splits the
    convolutions' sums otherwise (measured up to 3.4e-4 px), so the default (one per core) can differ
    in the fourth decimal between machines."""
    image = read_image(shared_images[0])
    one, two, four = (chexmask_rt.load(threads=t).predict(image, samples=10) for t in (1, 2, 4))
    assert _same(one, two)
    _assert_results_close(one, four)


def test_eight_threads_share_one_engine(default_native, shared_images):
    images = [to_gray(read_image(p))[0] for p in shared_images]
    jobs = [(images[i % len(images)], 10 + i, i) for i in range(5)]  # (image, samples, seed)
    sequential = [default_native.predict(img, samples=k, seed=s) for img, k, s in jobs]
    results: dict[tuple[int, int], object] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i, (img, k, s) in enumerate(jobs):
                results[t, i] = default_native.predict(img, samples=k, seed=s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results) == 40
    for (t, i), r in results.items():
        assert _same(r, sequential[i]), (t, i)


def test_gil_is_released_while_predicting(example1):
    engine = _core.Engine(str(chexmask_rt.default_model_path()), core.onnxruntime_library(), 1)
    gray, _ = to_gray(read_image(example1))
    count, stop = [0], [False]

    def spin() -> None:
        while not stop[0]:
            count[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.05)
        c0, t0 = count[0], time.perf_counter()
        time.sleep(0.2)  # sleep releases the GIL: the spinner's free-running rate
        rate = (count[0] - c0) / (time.perf_counter() - t0)
        c0, t0 = count[0], time.perf_counter()
        engine.predict(gray, 400, 0)
        during = (count[0] - c0) / (time.perf_counter() - t0)
    finally:
        stop[0] = True
        th.join()
    # holding the GIL would let the spinner run at most one 5 ms switch interval of the
    # few hundred ms the call takes (< 2 % of its free rate); released, it runs alongside
    assert during > 0.1 * rate, (during, rate)


# --- the C++ example program -----------------------------------------------------------------------

def _example_program() -> Path | None:
    candidate = Path(os.environ.get("CHEXMASK_RT_CPP_EXAMPLE", REPO / "build" / "cpp" / "chexmask-rt-cpp"))
    return candidate if candidate.is_file() else None


def _reference_json(r) -> dict:
    """The keys of the C++ example's JSON that the reference computes."""
    fields = ("landmarks", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma", "node_uncertainty")
    return {"image": r.image, "height": r.height, "width": r.width, "samples": r.samples, "seed": r.seed,
            "model": r.model, **{f: getattr(r, f).tolist() for f in fields},
            "scores": {"mean_node_std": r.mean_node_std, "mean_latent_sigma": r.mean_latent_sigma},
            "second_look": r.second_look}


def test_cpp_example_json_equals_python_cli(shared_images, tmp_path):
    program = _example_program()
    if program is None:
        skip_or_fail_without_native("chexmask-rt-cpp not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    model = str(chexmask_rt.default_model_path())
    # 16-bit files with 12 significant bits and with 8: both programs infer the same bit depth
    gray, _ = to_gray(read_image(shared_images[0]))
    deep = [tmp_path / "twelve_bit.png", tmp_path / "eight_bit_in_16.png"]
    cv2.imwrite(str(deep[0]), gray.astype(np.uint16) * 16)
    cv2.imwrite(str(deep[1]), gray.astype(np.uint16))
    images = [str(p) for p in [*shared_images, *deep]]
    args = ["--model", model, "--samples", "12", "--seed", "5"]
    # the second look, asked for: the shipped engine makes one call by default (below)
    cpp = subprocess.run([str(program), *args, "--onnxruntime", core.onnxruntime_library(), "--second-look", *images],
                         capture_output=True, text=True, check=True, timeout=300)
    cli = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", *args, "--second-look", "--json", "-",
                          *images], capture_output=True, text=True, check=True, timeout=300)
    ref = ReferenceSegmenter(model).predict_batch(images, samples=12, seed=5, batch_size=1, second_look=True)
    got, want = json.loads(cpp.stdout), json.loads(cli.stdout)
    assert isinstance(got, list) and len(got) == len(want) == len(ref)
    for g, w, r in zip(got, want, ref):
        # the Python runtime adds the source DICOM's UIDs and the clinical measures (chexmask_rt.measures)
        assert w.keys() - g.keys() == {"dicom", "measures"} and g.keys() <= w.keys()
        assert g["scores"].keys() == w["scores"].keys()
        for expected in (w, _reference_json(r)):
            for key, value in expected.items():
                if key in ("dicom", "measures"):
                    continue
                if isinstance(value, dict):  # scores, second_look: numbers and the look's kind
                    assert g[key].keys() == value.keys(), key
                    for k, v in value.items():
                        assert g[key][k] == v if isinstance(v, str) else abs(g[key][k] - v) <= PX_TOL, (key, k)
                elif isinstance(value, list):
                    np.testing.assert_allclose(np.array(g[key], float), np.array(value, float), atol=PX_TOL, rtol=0,
                                               err_msg=key)
                else:
                    assert g[key] == value, key
    assert {g["second_look"]["look"] for g in got} == {"pooled"}
    # the scores to the last bit: the flag is decided on the core's, and Python shows its own
    assert [g["scores"] for g in got] == [w["scores"] for w in want]
    # the shipped engine's default: one engine call in both programs
    one = [*args, images[0]]
    cpp1 = json.loads(subprocess.run([str(program), *one[:-1], "--onnxruntime", core.onnxruntime_library(),
                                      one[-1]], capture_output=True, text=True, check=True).stdout)
    cli1 = json.loads(subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", *one, "--json", "-"],
                                     capture_output=True, text=True, check=True).stdout)
    assert "second_look" not in cpp1 and cli1.keys() - cpp1.keys() == {"dicom", "measures"}
    np.testing.assert_allclose(cpp1["landmarks"], cli1["landmarks"], atol=PX_TOL, rtol=0)
    assert np.abs(np.array(cpp1["landmarks"]) - np.array(got[0]["landmarks"])).max() > 0.01  # a different answer


def test_cpp_example_errors(tmp_path):
    program = _example_program()
    if program is None:
        skip_or_fail_without_native("chexmask-rt-cpp not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    lib = core.onnxruntime_library()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    model = str(chexmask_rt.default_model_path())
    run = lambda *a: subprocess.run([str(program), *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    assert run("--model", model, "--onnxruntime", lib, str(bad)).returncode == 3
    assert run("--model", str(bad), "--onnxruntime", lib, str(bad)).returncode == 4
    assert run("--model", model).returncode == 2
    asked = run("--help")  # was the usage on stderr with exit 2
    assert asked.returncode == 0 and asked.stdout.startswith("usage: chexmask-rt-cpp") and asked.stderr == ""
    missing = run("--model", model, "--onnxruntime", "/nonexistent/libonnxruntime.so.1", str(bad))
    assert missing.returncode == 4 and "cannot load the ONNX Runtime library" in missing.stderr
    folder = run("--model", model, "--onnxruntime", lib, str(tmp_path))  # was libstdc++'s "basic_filebuf::underflow"
    assert folder.returncode == 3
    assert folder.stderr == f"chexmask-rt-cpp: error: {tmp_path}: a folder, not an image file\n"


def test_cpp_example_limits_what_it_reads(tmp_path):
    """The template integrators copy read whatever it was given: /dev/zero until memory ran out, a FIFO
    waited on, a 2 MB PNG of 16000x16000 16-bit RGBA decoded in 4.1 GB, and a JPEG's size from its
    header was not checked. Now, as the Python package: a regular file, the pixel limit on the header."""
    import struct
    import zlib

    program = _example_program()
    if program is None:
        skip_or_fail_without_native("chexmask-rt-cpp not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    model = str(chexmask_rt.default_model_path())

    def run(image, **env):
        return subprocess.run([str(program), "--model", model, "--onnxruntime", core.onnxruntime_library(), str(image)],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **env})

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = tmp_path / "big.png"  # declares 16000x16000 16-bit RGBA; its data would inflate to 2 GB
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16000, 16000, 16, 6, 0, 0, 0))
                    + png_chunk(b"IDAT", zlib.compress(bytes(1 << 20))) + png_chunk(b"IEND", b""))
    bmp = tmp_path / "big.bmp"
    ok, small = cv2.imencode(".bmp", np.zeros((40, 40), np.uint8))
    data = bytearray(small.tobytes())
    data[18:26] = struct.pack("<ii", 9000, -9000)  # top-down rows: a negative height
    bmp.write_bytes(bytes(data))
    for image, size in ((png, "16000x16000"), (bmp, "9000x9000")):
        proc = run(image)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr == (f"chexmask-rt-cpp: error: {image}: image is {size}, above the pixel limit of 64000000 "
                               "(OPENCV_IO_MAX_IMAGE_PIXELS)\n")
    jpeg = tmp_path / "small.jpg"
    jpeg.write_bytes(cv2.imencode(".jpg", np.full((40, 60), 128, np.uint8))[1].tobytes())
    proc = run(jpeg, OPENCV_IO_MAX_IMAGE_PIXELS="2000")  # the user's own limit, applied to a JPEG's frame
    assert proc.returncode == 3 and "image is 60x40, above the pixel limit of 2000" in proc.stderr, proc.stderr
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    proc = run(fifo)
    assert proc.returncode == 3 and proc.stderr == f"chexmask-rt-cpp: error: {fifo}: not a regular file\n"


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("image,bit_depth,match", [
    (np.zeros((0, 64), np.uint8), None, "image is 64x0 pixels; at least 32x32 is needed"),
    (np.zeros((64, 0), np.uint8), None, "image is 0x64 pixels; at least 32x32 is needed"),
    (np.zeros((16, 64), np.uint8), None, "at least 32x32"),
    (np.zeros((70000, 32), np.uint8), None, "image is 32x70000 pixels; at most 65536 on a side is supported"),
    (np.zeros((64, 64), np.int32), None, "unsupported pixel type"),
    (np.zeros((64, 64), np.float64), None, "unsupported pixel type"),
    (np.zeros((64, 64), ">u2"), None, "unsupported pixel type"),  # the Python layer converts it first
    (np.zeros((64, 64, 3), np.uint8), None, "gray"),
    (np.zeros((64, 64), np.uint16), 8, "bit_depth must be in 9..16"),
    (np.zeros((64, 64), np.uint16), 17, "bit_depth must be in 9..16"),
    (np.full((64, 64), np.nan, np.float32), None, "NaN"),
    (np.full((64, 64), 2.0, np.float32), None, r"\[0, 1\]"),
])
def test_core_refuses_bad_arrays(default_native, image, bit_depth, match):
    with pytest.raises(InputError, match=match):
        default_native._engine.predict(image, 5, 0, bit_depth)


def test_core_refuses_non_arrays_and_bad_arguments(default_native):
    engine = default_native._engine
    good = np.zeros((64, 64), np.uint8)
    with pytest.raises(InputError, match="numpy array"):
        engine.predict([[0] * 64] * 64, 5)
    for samples in (0, -1, _core.MAX_SAMPLES + 1):
        with pytest.raises(InputError, match="samples"):
            engine.predict(good, samples)
    for seed in (-1, 2**64, 1.5):
        with pytest.raises(InputError, match="seed"):
            engine.predict(good, 5, seed)
    with pytest.raises(InputError, match="no images"):
        engine.predict_batch([], 5)


def test_segmenter_refuses_bad_input(default_native, tmp_path):
    with pytest.raises(InputError, match="at least 32x32"):
        default_native.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="seed"):
        default_native.predict(np.zeros((64, 64), np.uint8), seed=-3)
    with pytest.raises(InputError, match="samples"):
        default_native.predict(np.zeros((64, 64), np.uint8), samples=0)
    with pytest.raises(InputError, match="no such file"):
        default_native.predict(tmp_path / "missing.png")


def _onnx_identity(path: Path, metadata: dict[str, str]) -> Path:
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["landmarks_mean"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", 1, 256, 256])],
                              [helper.make_tensor_value_info("landmarks_mean", TensorProto.FLOAT, ["b", 1, 256, 256])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return path


def test_core_refuses_bad_models(tmp_path):
    lib = core.onnxruntime_library()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model" * 50)
    cases = [
        (tmp_path / "missing.onnx", "not found"),
        (tmp_path, "a folder, not a model file"),
        # there but unreadable: once "model file not found" (the C API audit)
        (Path("/dev/zero"), "/dev/zero: not a regular file"),
        (tmp_path / ("m" * 300 + ".onnx"), r"cannot read the model file \(File name too long\)"),
        (garbage, "not a loadable ONNX model"),
        (_onnx_identity(tmp_path / "plain.onnx", {}), "not a chexmask-rt engine"),
        (_onnx_identity(tmp_path / "v2.onnx", {"chexmask_rt.format_version": "2"}), "format version"),
        (_onnx_identity(tmp_path / "partial.onnx", {"chexmask_rt.format_version": "1"}), "lacks"),
        (_onnx_identity(tmp_path / "io.onnx", {"chexmask_rt.format_version": "1", "chexmask_rt.inputsize": "256",
                                                "chexmask_rt.latents": "64", "chexmask_rt.skip": "true",
                                                "chexmask_rt.checkpoint_sha256": "0"}), "inputs/outputs"),
        (_onnx_identity(tmp_path / "skip.onnx", {"chexmask_rt.format_version": "1", "chexmask_rt.inputsize": "256",
                                                  "chexmask_rt.latents": "64", "chexmask_rt.skip": "True",
                                                  "chexmask_rt.checkpoint_sha256": "0"}),
         r"malformed engine metadata \(chexmask_rt\.skip=True\): true or false"),
        (_onnx_identity(tmp_path / "look.onnx", {"chexmask_rt.format_version": "1", "chexmask_rt.inputsize": "256",
                                                  "chexmask_rt.latents": "64", "chexmask_rt.skip": "true",
                                                  "chexmask_rt.checkpoint_sha256": "0", "chexmask_rt.second_look": "maybe"}),
         r"chexmask_rt\.second_look=maybe"),
        (tmp_path / "model.plan", "TensorRT"),
    ]
    (tmp_path / "model.plan").write_bytes(b"x")
    for path, match in cases:
        with pytest.raises(ModelError, match=match):
            _core.Engine(str(path), lib)
        with pytest.raises(ModelError, match=match):
            chexmask_rt.load(path)


def test_missing_onnxruntime_library_is_a_model_error():
    # a fresh process: the first Engine fixes the library for the whole process
    code = ("import chexmask_rt.errors as e, chexmask_rt._core as c\n"
            "try:\n    c.Engine(%r, '/nonexistent/libonnxruntime.so.1')\n"
            "except e.ModelError as x:\n    print('ModelError:', x)\n" % str(chexmask_rt.default_model_path()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ModelError: cannot load the ONNX Runtime library '/nonexistent/libonnxruntime.so.1'" in out.stdout


def test_switching_onnxruntime_library_is_refused(default_native):
    with pytest.raises(ModelError, match="already loaded"):
        _core.Engine(str(chexmask_rt.default_model_path()), "/other/libonnxruntime.so.1")
    assert issubclass(ModelError, ChexmaskError)


def test_the_loaded_onnxruntime_under_another_name_is_no_switch(default_native, tmp_path):
    """The same file through a symlink, or by its soname, is the library already loaded: accepted."""
    link = tmp_path / "libonnxruntime.so.1"
    link.symlink_to(core.onnxruntime_library())
    model = str(chexmask_rt.default_model_path())
    for name in (str(link), "libonnxruntime.so.1"):
        assert _core.Engine(model, name).info.landmarks == 120
    copy = tmp_path / "copy" / "libonnxruntime.so.1"  # the same bytes in another file: another library
    copy.parent.mkdir()
    copy.write_bytes(Path(core.onnxruntime_library()).read_bytes())
    with pytest.raises(ModelError, match="cannot switch"):
        _core.Engine(model, str(copy))


@pytest.mark.parametrize("threads", [-1, 257])
def test_bad_thread_counts_are_model_errors(threads):
    """Refused by the core before ONNX Runtime starts any thread (hundreds take seconds, and one the
    system refuses hangs the session), through load() as through _core.Engine; load() names its own
    argument (it said intra_op_threads, the core's field, which a Python caller never sees)."""
    with pytest.raises(ModelError, match=f"^threads must be 0 .* to 256, or None, got {threads}$"):
        chexmask_rt.load(threads=threads)
    with pytest.raises(ModelError, match="intra_op_threads"):
        _core.Engine(str(chexmask_rt.default_model_path()), core.onnxruntime_library(), threads)


def test_cpp_test_program(tmp_path):
    """The C++ tests (bad buffers, threads, a non-engine file) without Python in the process."""
    program = Path(os.environ.get("CHEXMASK_RT_CPP_TESTS", REPO / "build" / "cpp" / "chexmask-rt-tests"))
    if not program.is_file():
        skip_or_fail_without_native("chexmask-rt-tests not built (configure with -DCHEXMASK_RT_BUILD_TESTS=ON)")
    not_engine = tmp_path / "not_an_engine.onnx"
    not_engine.write_bytes(b"\x08\x07garbage")
    # refused at load (10 landmarks, latents that are not the graph's) or at the run (a graph that
    # declares 120 landmarks and gives 30)
    wrong = [write_toy_engine(tmp_path / "ten.onnx", landmarks=10),
             write_toy_engine(tmp_path / "latents.onnx", metadata={"latents": "65"}),
             write_toy_engine(tmp_path / "liar.onnx", landmarks=10, per_sample=True,
                              declared={n: ["batch", 120, 2] for n in ("landmarks_mean", "landmarks_std", "landmarks_mu")}),
             # not wrong: another anatomy its metadata names (both looks on its organs; the C API reports them)
             write_toy_engine(tmp_path / "other_anatomy_60.onnx", landmarks=60,
                              metadata={"organs": "right_lung:20,left_lung:25,heart:15"})]
    proc = subprocess.run([str(program), str(chexmask_rt.default_model_path()), core.onnxruntime_library(),
                           str(not_engine), *map(str, wrong)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failures" in proc.stdout + proc.stderr


def test_core_error_quoting_bytes_that_are_not_utf8_stays_typed(tmp_path):
    """ONNX Runtime's message names a damaged graph output byte for byte (found by the seeded fuzz,
    input 3390): it must reach Python as the ModelError, not as a UnicodeDecodeError."""
    data = toy_engine()
    at = data.rindex(b"landmarks_std")  # the graph's output list, after the node that makes it
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(data[:at] + b"lan\xe4marks_std" + data[at + len(b"landmarks_std"):])
    with pytest.raises(ModelError, match="lan\ufffdmarks_std"):
        _core.Engine(str(damaged), core.onnxruntime_library())


def test_the_cores_own_scores_follow_their_definitions(example1):
    """The Python Result recomputes its node uncertainty from landmarks_std, so the core's own (which the
    C++ and C APIs and the reliability flag use) was compared with nothing independent."""
    engine = _core.Engine(str(chexmask_rt.default_model_path()), core.onnxruntime_library())
    out = engine.predict(to_gray(read_image(example1))[0], 6, 3)
    std = out.landmarks_std
    np.testing.assert_allclose(out.node_uncertainty, (std[:, 0] + std[:, 1]) / 2, rtol=1e-15, atol=0)
    assert out.mean_node_std == pytest.approx(float(np.mean((std[:, 0] + std[:, 1]) / 2)), rel=1e-12)
    assert out.mean_latent_sigma == pytest.approx(float(np.mean(out.latent_sigma)), rel=1e-12)
    assert np.ptp(std[:, 0] - std[:, 1]) > 0  # x and y spreads differ, so max or one axis would not pass


AFFINITY_THREADS = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[2])})
import chexmask_rt
seg = chexmask_rt.load()  # held: its engine's threads end with it
seg.predict(sys.argv[1], samples=3)
print(sorted({cpu for task in os.listdir("/proc/self/task") for cpu in os.sched_getaffinity(int(task))}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to confine a process to one of them")
def test_the_default_threads_stay_on_the_cpus_the_process_may_use(shared_images):
    """Under taskset (or a container's cpuset) ONNX Runtime's default pinned a thread to a core outside
    the process's set: confined to CPU 0 it ran a second thread on CPU 1."""
    png = next(p for p in shared_images if p.suffix == ".png")
    for cpu in sorted(os.sched_getaffinity(0))[:2]:
        proc = subprocess.run([sys.executable, "-c", AFFINITY_THREADS, str(png), str(cpu)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == f"[{cpu}]"


QUOTA_THREADS = """
import os, sys
with open(sys.argv[1], "w") as tasks:
    tasks.write(str(os.getpid()))
import chexmask_rt
load = chexmask_rt.load  # imports numpy and the core, whose own threads are not the engine's
before = len(os.listdir("/proc/self/task"))
seg = load()
print(len(os.listdir("/proc/self/task")) - before)
"""


def _physical_cores() -> int:
    """Physical cores among the CPUs this process may use (two hyperthreads of one core count once)."""
    cores = set()
    for cpu in os.sched_getaffinity(0):
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return len(cores)


@contextmanager
def _cpu_cgroups(*quotas: float) -> Iterator[Path]:
    """Nested new cgroups (v1 cpu controller), the i-th limited to quotas[i] CPUs; yields the innermost,
    whose tasks file moves a process into it. Skips where this process may not make them (not root, no
    cgroup v1 cpu controller, a quota above the one this process is under); always removes them."""
    made: list[Path] = []
    try:
        folder = Path("/sys/fs/cgroup/cpu")
        for depth, quota in enumerate(quotas):
            folder = folder / (f"chexmask-rt-test-{os.getpid()}" if depth == 0 else f"level{depth}")
            folder.mkdir()
            made.append(folder)
            (folder / "cpu.cfs_period_us").write_text("100000")
            (folder / "cpu.cfs_quota_us").write_text(str(round(100000 * quota)))
    except OSError as exc:
        for folder in reversed(made):
            folder.rmdir()
        pytest.skip(f"cannot make cgroups with CPU quotas here ({exc}; needs root and the v1 cpu controller)")
    try:
        yield made[-1]
    finally:
        for folder in reversed(made):  # empty again: its processes have ended
            folder.rmdir()


def _threads_under(folder: Path, script: str = QUOTA_THREADS, *wrap: str) -> str:
    proc = subprocess.run([*wrap, sys.executable, "-c", script, str(folder if wrap else folder / "tasks")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs for a quota of one to be less")
def test_the_default_threads_follow_the_cpu_quota():
    """A container limited to one CPU (a cgroup quota) got a thread per core of the machine from ONNX
    Runtime's default: one thread more than its share here, dozens on a large node."""
    with _cpu_cgroups(1) as folder:
        assert _threads_under(folder) == "0"  # one intra-op thread: the caller's own


CONTAINER_QUOTA_THREADS = """
import os, subprocess, sys
folder = sys.argv[1]
with open(os.path.join(folder, "tasks"), "w") as tasks:
    tasks.write(str(os.getpid()))
# the container's view on a cgroup v1 host: its own cgroup mounted where the hierarchy's root was, while
# /proc/self/cgroup still names it by the host's path (no cgroup namespace)
subprocess.run(["mount", "--bind", folder, "/sys/fs/cgroup/cpu"], check=True)
import chexmask_rt
load = chexmask_rt.load  # imports numpy and the core, whose own threads are not the engine's
before = len(os.listdir("/proc/self/task"))
seg = load()
print(len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs for a quota of one to be less")
def test_the_default_threads_follow_a_containers_own_cpu_quota():
    """Docker on cgroup v1 mounts the container's cgroup at /sys/fs/cgroup/cpu, where the path
    /proc/self/cgroup gives does not exist: the quota was missed and every core of the node used."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare for a mount namespace")
    with _cpu_cgroups(1) as folder:
        assert _threads_under(folder, CONTAINER_QUOTA_THREADS, "unshare", "-m", "--propagation", "private") == "0"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs for a quota of one to be less")
def test_the_default_threads_follow_the_smallest_quota_above_them():
    """A container's quota under its pod's: the smaller one holds, whichever level it is set at."""
    with _cpu_cgroups(2, 1) as container:
        assert _threads_under(container) == "0"  # one intra-op thread: the caller's own


@pytest.mark.skipif(_physical_cores() < 2, reason="needs two physical cores for a quota of 1.5 to round up to 2")
def test_a_fractional_cpu_quota_rounds_up():
    """A limit of 1.5 CPUs runs two threads (half the time each), not one."""
    with _cpu_cgroups(1.5) as folder:
        assert _threads_under(folder) == "1"  # two intra-op threads: the caller's own and one more


def test_info_says_the_threads_a_run_uses_here():
    """An operator checking a container's cpuset or CPU limit had no way to see the threads it left."""
    def info(**kwargs) -> int:
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "info"], capture_output=True, text=True,
                              timeout=300, **kwargs)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["threads"]

    assert info() == _physical_cores()
    if len(os.sched_getaffinity(0)) > 1:
        one = min(os.sched_getaffinity(0))
        assert info(preexec_fn=lambda: os.sched_setaffinity(0, {one})) == 1
