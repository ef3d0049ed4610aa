"""An engine's graph must agree with its metadata and the anatomy (issue 20, cases 4 and 9):
inputsize, latents and the landmark count are read from the graph's declared shapes and checked
when it loads (a ModelError, CLI exit 4, one line), and each run's outputs are checked again, so
the second look never reads past a result (in C++ that was a heap over-read)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chexmask_rt
from chexmask_rt import ModelError

from conftest import REPO, skip_or_fail_without_native
from toy_engine import toy_engine, write_toy_engine

BACKENDS = ["native", "python"]
LANDMARK_OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu")
IMAGE = np.random.default_rng(0).integers(0, 256, (100, 80), dtype=np.uint8)

# the toy engine's graph takes 64 x 64 images and 8 latents
DISAGREEING_METADATA = {
    "inputsize 32 in a 64 graph": ({"inputsize": "32"}, r"'image' is \[\?, 1, 64, 64\], but the metadata says inputsize 32"),
    "inputsize 128 in a 64 graph": ({"inputsize": "128"}, r"metadata says inputsize 128"),
    "latents 3 in an 8 graph": ({"latents": "3"}, r"'eps' is \[\?, 8\], but the metadata says latents 3"),
    "latents 65 in an 8 graph": ({"latents": "65"}, r"metadata says latents 65"),
}


def segmenter(path, backend):
    if backend == "native":
        from chexmask_rt.backends import native
        if not native.available():
            skip_or_fail_without_native("chexmask_rt._core not built")
    return chexmask_rt.load(path, backend=backend)


def engine_with_metadata(tmp_path, entries):
    """The toy graph with metadata entries replaced after the graph was made (as a hand edit would)."""
    import onnx

    path = write_toy_engine(tmp_path / "toy.onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        key = prop.key.removeprefix("chexmask_rt.")
        if key in entries:
            prop.value = entries[key]
    onnx.save(model, str(path))
    return path


def test_the_toy_engine_is_a_valid_engine(tmp_path):
    """The baseline every case below changes one thing of: it loads and predicts on both paths."""
    path = write_toy_engine(tmp_path / "toy.onnx")
    results = [segmenter(path, b).predict(IMAGE, samples=3, second_look=True) for b in BACKENDS]
    for r in results:
        assert r.landmarks.shape == (120, 2) and r.extra["second_look"]["look"] == "pooled"
    np.testing.assert_array_equal(results[0].landmarks, results[1].landmarks)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", DISAGREEING_METADATA, ids=str)
def test_metadata_disagreeing_with_the_graph_is_a_model_error_at_load(tmp_path, backend, case):
    entries, message = DISAGREEING_METADATA[case]
    with pytest.raises(ModelError, match=message):
        segmenter(engine_with_metadata(tmp_path, entries), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_engine_with_10_landmarks_is_a_model_error_at_load(tmp_path, backend):
    path = write_toy_engine(tmp_path / "ten.onnx", landmarks=10)
    with pytest.raises(ModelError, match=r"'landmarks_mean' is \[\?, 10, 2\], but the runtime's anatomy has 120"):
        segmenter(path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_engine_without_a_declared_landmark_count_is_a_model_error_at_load(tmp_path, backend):
    # a count that depends on the run: shape inference cannot fill in what the graph leaves open
    path = write_toy_engine(tmp_path / "vague.onnx", per_sample=True,
                            declared={n: ["batch", "nodes", 2] for n in LANDMARK_OUTPUTS})
    with pytest.raises(ModelError, match="'landmarks_mean' does not declare its shape"):
        segmenter(path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("second_look", [False, True])
def test_an_engine_that_lies_about_its_outputs_fails_at_the_run(tmp_path, backend, second_look):
    """Declares [batch, 120, 2] but gives 10 landmarks per sample: found when it runs, never read past."""
    path = write_toy_engine(tmp_path / "liar.onnx", landmarks=10, per_sample=True,
                            declared={n: ["batch", 120, 2] for n in LANDMARK_OUTPUTS})
    seg = segmenter(path, backend)
    with pytest.raises(ModelError, match=r"engine output 'landmarks_mean' is .*\[1, 30, 2\], not float32 \[1, 120, 2\]"):
        seg.predict(IMAGE, samples=3, second_look=second_look)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_exit_4_with_one_line(tmp_path, backend):
    if backend == "native":
        segmenter(write_toy_engine(tmp_path / "ok.onnx"), backend)  # skips or fails without the core
    image = tmp_path / "x.png"
    import cv2
    cv2.imwrite(str(image), IMAGE)
    for path in (write_toy_engine(tmp_path / "ten.onnx", landmarks=10),
                 engine_with_metadata(tmp_path, {"latents": "65"})):
        proc = cli("predict", image, "--model", path, "--backend", backend, "--samples", 2)
        assert proc.returncode == 4, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert str(path) in proc.stderr


def test_cpp_example_exits_4(tmp_path):
    program = Path(os.environ.get("CHEXMASK_RT_CPP_EXAMPLE", REPO / "build" / "cpp" / "chexmask-rt-cpp"))
    if not program.is_file():
        skip_or_fail_without_native("chexmask-rt-cpp not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    from chexmask_rt.backends import native
    import cv2
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), IMAGE)
    for path in (write_toy_engine(tmp_path / "ten.onnx", landmarks=10),
                 engine_with_metadata(tmp_path, {"inputsize": "128"})):
        proc = subprocess.run([str(program), "--model", str(path), "--onnxruntime", native.onnxruntime_library(),
                               str(image)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "engine graph disagrees with its metadata" in proc.stderr


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("raw", [b"\xf3(ab", b"\xc0\x80ab", b"\xed\xa0\x80a"], ids=["invalid", "overlong", "surrogate"])
def test_metadata_that_is_not_utf8_is_a_model_error(tmp_path, backend, raw):
    """Found by the fuzz (a flipped bit in a metadata value): Python's decoding raised UnicodeDecodeError."""
    path = tmp_path / "bytes.onnx"
    path.write_bytes(toy_engine(metadata={"description": "XXXX"}).replace(b"XXXX", raw))  # same length: valid protobuf
    with pytest.raises(ModelError, match="engine metadata is not valid UTF-8"):
        segmenter(path, backend)
    path.write_bytes(toy_engine(metadata={"description": "XXXX"}).replace(b"XXXX", "éab".encode()))
    assert segmenter(path, backend).info.description == "éab"


ORGANS_60 = "right_lung:20,left_lung:25,heart:15"


@pytest.mark.parametrize("second_look", [False, True])
def test_the_core_runs_an_engine_with_other_organs_on_its_own_counts(tmp_path, second_look):
    """Another landmark count, named by chexmask_rt.organs: the core reads it from the graph and the
    second look frames that engine's lungs (before, 94 lung landmarks were a constant)."""
    path = write_toy_engine(tmp_path / "sixty.onnx", landmarks=60, metadata={"organs": ORGANS_60})
    from chexmask_rt.backends import native
    if not native.available():
        skip_or_fail_without_native("chexmask_rt._core not built")
    engine = native._core.Engine(str(path), native.onnxruntime_library())
    assert engine.info.landmarks == 60 and engine.info.organs == (("right_lung", 20), ("left_lung", 25), ("heart", 15))
    r = engine.predict(IMAGE, 3, 0, None, second_look)
    assert r.landmarks.shape == r.landmarks_std.shape == r.landmarks_mu.shape == (60, 2)
    assert (r.second_look is not None) == second_look


@pytest.mark.parametrize("organs, message", [
    ("right_lung:20,left_lung:25,heart:16", r"'landmarks_mean' is \[\?, 60, 2\], but the metadata's organs"),
    ("right_lung:20;heart:40", "chexmask_rt.organs"),
    ("right_lung:20,right_lung:40", "named twice"),
])
def test_organs_that_are_not_the_graphs_are_a_model_error(tmp_path, organs, message):
    from chexmask_rt.backends import native
    if not native.available():
        skip_or_fail_without_native("chexmask_rt._core not built")
    path = write_toy_engine(tmp_path / "sixty.onnx", landmarks=60, metadata={"organs": organs})
    with pytest.raises(ModelError, match=message):
        native._core.Engine(str(path), native.onnxruntime_library())


def test_the_default_organs_need_120_landmarks_in_the_metadata_only_validator():
    from chexmask_rt.backends import native
    if not native.available():
        skip_or_fail_without_native("chexmask_rt._core not built")
    import onnx
    meta = {p.key: p.value for p in onnx.load_from_string(toy_engine()).metadata_props}
    info = native._core.parse_model_info(meta, "toy")
    assert (info.landmarks, info.inputsize, info.latents, info.id) == (120, 64, 8, "toy:1")
    with pytest.raises(ModelError, match="toy: implausible engine metadata inputsize=8192"):
        native._core.parse_model_info({**meta, "chexmask_rt.inputsize": "8192"}, "toy")
