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
from chexmask_rt import ModelError, core
from reference import ReferenceSegmenter

from conftest import REPO, skip_or_fail_without_native
from toy_engine import toy_engine, write_toy_engine
LANDMARK_OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu")
IMAGE = np.random.default_rng(0).integers(0, 256, (100, 80), dtype=np.uint8)

# the toy engine's graph takes 64 x 64 images and 8 latents
DISAGREEING_METADATA = {
    "inputsize 32 in a 64 graph": ({"inputsize": "32"}, r"'image' is \[\?, 1, 64, 64\], but the metadata says inputsize 32"),
    "inputsize 128 in a 64 graph": ({"inputsize": "128"}, r"metadata says inputsize 128"),
    "latents 3 in an 8 graph": ({"latents": "3"}, r"'eps' is \[\?, 8\], but the metadata says latents 3"),
    "latents 65 in an 8 graph": ({"latents": "65"}, r"metadata says latents 65"),
}


def segmenter(path):
    return chexmask_rt.load(path)


def engine_with_metadata(tmp_path, entries):
    """The toy graph with metadata entries replaced, or added, after the graph was made (as a hand edit would)."""
    import onnx

    path = write_toy_engine(tmp_path / "toy.onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        key = prop.key.removeprefix("chexmask_rt.")
        if key in entries:
            prop.value = entries[key]
    present = {prop.key.removeprefix("chexmask_rt.") for prop in model.metadata_props}
    for key in entries.keys() - present:
        model.metadata_props.add(key="chexmask_rt." + key, value=entries[key])
    onnx.save(model, str(path))
    return path


def test_the_toy_engine_is_a_valid_engine(tmp_path):
    """The baseline every case below changes one thing of: it loads and predicts as the reference does."""
    path = write_toy_engine(tmp_path / "toy.onnx")
    r = segmenter(path).predict(IMAGE, samples=3, second_look=True)
    assert r.landmarks.shape == (120, 2) and r.second_look.look == "pooled"
    np.testing.assert_array_equal(r.landmarks, ReferenceSegmenter(path).predict(IMAGE, samples=3, second_look=True).landmarks)


@pytest.mark.parametrize("case", DISAGREEING_METADATA, ids=str)
def test_metadata_disagreeing_with_the_graph_is_a_model_error_at_load(tmp_path, case):
    entries, message = DISAGREEING_METADATA[case]
    with pytest.raises(ModelError, match=message):
        segmenter(engine_with_metadata(tmp_path, entries))


def test_an_engine_with_10_landmarks_is_a_model_error_at_load(tmp_path):
    path = write_toy_engine(tmp_path / "ten.onnx", landmarks=10)
    with pytest.raises(ModelError, match=r"'landmarks_mean' is \[\?, 10, 2\], but the runtime's anatomy has 120"):
        segmenter(path)


def test_an_engine_without_a_declared_landmark_count_is_a_model_error_at_load(tmp_path):
    # a count that depends on the run: shape inference cannot fill in what the graph leaves open
    path = write_toy_engine(tmp_path / "vague.onnx", per_sample=True,
                            declared={n: ["batch", "nodes", 2] for n in LANDMARK_OUTPUTS})
    with pytest.raises(ModelError, match="'landmarks_mean' does not declare its shape"):
        segmenter(path)


@pytest.mark.parametrize("name, shape, what", [("eps", [50, 8], "samples"), ("image", [1, 1, 64, 64], "images")])
def test_an_engine_that_fixes_the_samples_or_the_images_is_a_model_error_at_load(tmp_path, name, shape, what):
    """An engine of another tool with K fixed at 50 loaded, then failed every call of another K with ONNX
    Runtime's first line only: "engine run failed (Got invalid dimensions for input: eps for the
    following indices)"."""
    path = write_toy_engine(tmp_path / "fixed.onnx", declared={name: shape})
    with pytest.raises(ModelError, match=rf"engine input '{name}' fixes its dimension 0 \(declared \[{shape[0]}, .*the "
                                         rf"runtime sets the number of {what} there on each call"):
        segmenter(path)


@pytest.mark.parametrize("second_look", [False, True])
def test_an_engine_that_lies_about_its_outputs_fails_at_the_run(tmp_path, second_look):
    """Declares [batch, 120, 2] but gives 10 landmarks per sample: found when it runs, never read past."""
    path = write_toy_engine(tmp_path / "liar.onnx", landmarks=10, per_sample=True,
                            declared={n: ["batch", 120, 2] for n in LANDMARK_OUTPUTS})
    seg = segmenter(path)
    with pytest.raises(ModelError, match=r"engine output 'landmarks_mean' is .*\[1, 30, 2\], not float32 \[1, 120, 2\]"):
        seg.predict(IMAGE, samples=3, second_look=second_look)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_exit_4_with_one_line(tmp_path):
    image = tmp_path / "x.png"
    import cv2
    cv2.imwrite(str(image), IMAGE)
    for path in (write_toy_engine(tmp_path / "ten.onnx", landmarks=10),
                 engine_with_metadata(tmp_path, {"latents": "65"})):
        proc = cli("predict", image, "--model", path, "--samples", 2)
        assert proc.returncode == 4, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert str(path) in proc.stderr


def test_cpp_example_exits_4(tmp_path):
    program = Path(os.environ.get("CHEXMASK_RT_CPP_EXAMPLE", REPO / "build" / "cpp" / "chexmask-rt-cpp"))
    if not program.is_file():
        skip_or_fail_without_native("chexmask-rt-cpp not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    import cv2
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), IMAGE)
    for path in (write_toy_engine(tmp_path / "ten.onnx", landmarks=10),
                 engine_with_metadata(tmp_path, {"inputsize": "128"})):
        proc = subprocess.run([str(program), "--model", str(path), "--onnxruntime", core.onnxruntime_library(),
                               str(image)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "engine graph disagrees with its metadata" in proc.stderr


@pytest.mark.parametrize("raw", [b"\xf3(ab", b"\xc0\x80ab", b"\xed\xa0\x80a"], ids=["invalid", "overlong", "surrogate"])
def test_metadata_that_is_not_utf8_is_a_model_error(tmp_path, raw):
    """Found by the fuzz (a flipped bit in a metadata value): Python's decoding raised UnicodeDecodeError."""
    path = tmp_path / "bytes.onnx"
    path.write_bytes(toy_engine(metadata={"description": "XXXX"}).replace(b"XXXX", raw))  # same length: valid protobuf
    with pytest.raises(ModelError, match="engine metadata is not valid UTF-8"):
        segmenter(path)
    path.write_bytes(toy_engine(metadata={"description": "XXXX"}).replace(b"XXXX", "éab".encode()))
    assert segmenter(path).info.description == "éab"


ORGANS_60 = "right_lung:20,left_lung:25,heart:15"


@pytest.mark.parametrize("second_look", [False, True])
def test_the_core_runs_an_engine_with_other_organs_on_its_own_counts(tmp_path, second_look):
    """Another landmark count, named by chexmask_rt.organs: the core reads it from the graph and the
    second look frames that engine's lungs (before, 94 lung landmarks were a constant)."""
    path = write_toy_engine(tmp_path / "sixty.onnx", landmarks=60, metadata={"organs": ORGANS_60})
    engine = core.Engine(str(path), core.onnxruntime_library())
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
    path = write_toy_engine(tmp_path / "sixty.onnx", landmarks=60, metadata={"organs": organs})
    with pytest.raises(ModelError, match=message):
        chexmask_rt.load(path)


def test_an_engine_that_asks_for_a_second_look_it_cannot_take_is_refused_when_opened(tmp_path):
    """second_look=true over organs that name no lung opened, and then every predict with the engine's own
    default failed ("predict with second_look off"); without the flag such an engine opens."""
    heart = write_toy_engine(tmp_path / "heart.onnx", landmarks=60, metadata={"organs": "heart:60", "second_look": "true"})
    with pytest.raises(ModelError, match=r"second_look=true, but its organs heart 60 name no lung"):
        core.Engine(str(heart), core.onnxruntime_library())
    plain = write_toy_engine(tmp_path / "plain.onnx", landmarks=60, metadata={"organs": "heart:60"})
    assert core.Engine(str(plain), core.onnxruntime_library()).info.organs == (("heart", 60),)


def test_the_package_refuses_other_organs_rather_than_mislabel_them(tmp_path):
    """Its organ views, masks and measures are the 44/50/26 anatomy's: another layout is a ModelError,
    not lungs cut at the wrong landmark."""
    path = write_toy_engine(tmp_path / "sixty.onnx", landmarks=60, metadata={"organs": ORGANS_60})
    with pytest.raises(ModelError, match=r"use the C\+\+ or C API"):
        chexmask_rt.load(path)
    same = write_toy_engine(tmp_path / "named.onnx", metadata={"organs": "right_lung:44,left_lung:50,heart:26"})
    assert chexmask_rt.load(same).predict(IMAGE, samples=2).landmarks.shape == (120, 2)


def test_the_default_organs_need_120_landmarks_in_the_metadata_only_validator():
    import onnx
    meta = {p.key: p.value for p in onnx.load_from_string(toy_engine()).metadata_props}
    info = core.parse_model_info(meta, "toy")
    assert (info.landmarks, info.inputsize, info.latents, info.id) == (120, 64, 8, "toy:1")
    with pytest.raises(ModelError, match="toy: implausible engine metadata inputsize=8192"):
        core.parse_model_info({**meta, "chexmask_rt.inputsize": "8192"}, "toy")


@pytest.mark.parametrize("entries, message", [
    # what the exporter refuses, the core refuses too: an engine from elsewhere wrote raw escape
    # sequences into results.csv and invalid DICOM, and a backslash failed every SEG as the image's fault
    ({"model_name": "evil\x1b[2J\rname"}, r"model_name 'evil\\x1b\[2J\\x0dname' holds a backslash or a control"),
    ({"model_version": "1\\2"}, r"model_version '1\\2' holds a backslash"),
    ({"model_version": "1:2:3"}, r"model_version '1:2:3' holds a ':'"),
    # an 80-byte cut of the quoted value inside a character made the message undecodable (a traceback)
    ({"model_name": "\x07a" + "é" * 100}, r"model_name '\\x07aé+\.\.\.' holds a backslash"),
    ({"model_name": " "}, r"model_name ' ' is empty"),
    ({"checkpoint_sha256": "\x1b[2J" + "0" * 60}, r"checkpoint_sha256=\\x1b\[2J0+\): at most 64 lowercase hex digits"),
    ({"landmark_offsets_sha256": "Z"}, r"landmark_offsets_sha256=Z\): at most 64 lowercase hex digits"),
    # 65,536 organs of 65,536 and the 120 of HybridGNet wrapped an int to 120 landmarks
    ({"organs": ",".join(f"o{i}:65536" for i in range(65536)) + ",right_lung:44,left_lung:50,heart:26"},
     r"4294967416 landmarks in all, more than 65536"),
])
def test_metadata_no_exported_engine_has_is_a_model_error_at_load(tmp_path, entries, message):
    path = engine_with_metadata(tmp_path, entries)
    with pytest.raises(ModelError, match=message) as err:
        segmenter(path)
    assert len(str(err.value)) < 400  # a 10 MB entry made a 33 MB message
    assert core.model_id_problem("toy", "1") == "" and core.model_id_problem("a:b", "1") == ""
    assert core.model_id_problem("n" * 100, "v" * 65) == ""  # engines of 0.3.0 with long ids load


def _toy_with(tmp_path, name, **constants):
    """The toy engine with some of its constants replaced."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(write_toy_engine(tmp_path / f"{name}.onnx")))
    for init in model.graph.initializer:
        if init.name in constants:
            init.CopyFrom(numpy_helper.from_array(constants[init.name](numpy_helper.to_array(init)), init.name))
    onnx.save(model, tmp_path / f"{name}.onnx")
    return tmp_path / f"{name}.onnx"


@pytest.mark.parametrize("name, constants, wrong", [
    ("negative_std", {"spread": lambda a: -a}, "a negative landmarks_std"),
    ("far", {"ring_once": lambda a: a * 1e5}, "landmarks a thousand image sizes away"),
])
def test_impossible_answers_are_a_faulty_engine(tmp_path, name, constants, wrong):
    """A negative spread or landmarks at 1e30 were accepted, and a calibrated flag called them "within
    calibrated thresholds"."""
    seg = segmenter(_toy_with(tmp_path, name, **constants))
    with pytest.raises(chexmask_rt.NonFiniteOutputError, match=wrong):
        seg.predict(IMAGE, samples=2)


def test_second_look_false_writes_no_metadata_key():
    """An engine exported without --second-look keeps its bytes: no second_look key at all."""
    from chexmask_rt.metadata import EngineMetadata, PREFIX

    meta = EngineMetadata(1, 256, 64, True, "0" * 64, "hybridgnet", "unversioned", True)
    assert PREFIX + "second_look" not in meta.to_metadata()
    assert meta.to_metadata() | {PREFIX + "second_look": "true"} == \
        EngineMetadata(1, 256, 64, True, "0" * 64, "hybridgnet", "unversioned", True, second_look=True).to_metadata()
