"""Reliability: thread safety of a shared Segmenter, no memory growth, and the calibrated quality flag."""
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chexmask_rt
from chexmask_rt import _core
from chexmask_rt.image_io import read_image, to_gray
from benchmarks.leak_check import rss_mb
from chexmask_rt.quality import calibration_path

from conftest import SHARED


@pytest.fixture(scope="module")
def arrays(shared_images):
    return [read_image(p) for p in shared_images]


def test_one_segmenter_shared_by_8_threads_equals_sequential(arrays):
    seg = chexmask_rt.load(threads=1)
    jobs = [(i % len(arrays), i) for i in range(16)]  # (image, seed): different work in flight at once
    sequential = {job: seg.predict(arrays[job[0]], samples=6, seed=job[1]) for job in jobs}
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda job: (job, seg.predict(arrays[job[0]], samples=6, seed=job[1])), jobs))
    for job, r in threaded:
        np.testing.assert_array_equal(r.landmarks, sequential[job].landmarks)
        np.testing.assert_array_equal(r.landmarks_std, sequential[job].landmarks_std)
        np.testing.assert_array_equal(r.latent_sigma, sequential[job].latent_sigma)
        assert r.quality == sequential[job].quality


def test_sequential_predictions_do_not_grow_memory(example1):
    """A small version of benchmarks/leak_check.py (which runs 2,000): files and arrays."""
    seg = chexmask_rt.load(threads=1)
    small = np.ascontiguousarray(read_image(example1)[::3, ::3])
    dicom = SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"

    def one(i):
        item = (example1, dicom)[i % 2] if i % 5 == 0 else small
        return seg.predict(item, samples=8, seed=i)

    for i in range(40):
        one(i)
    before = rss_mb()
    for i in range(150):
        one(i)
    growth = rss_mb() - before
    assert growth < 10, f"RSS grew by {growth:.1f} MB over 150 predictions"


def test_in_distribution_is_not_flagged_and_corrupted_is(default_segmenter, arrays):
    assert default_segmenter.predict(arrays[0]).quality.calibrated
    for img in arrays:
        q = default_segmenter.predict(img).quality
        assert q.calibrated and not q.flag, q.reason
    gray = to_gray(arrays[1])
    for bad in (255 - gray, np.ascontiguousarray(np.rot90(gray)), np.full((512, 512), 128, np.uint8)):
        q = default_segmenter.predict(bad).quality
        assert q.flag and "above the calibrated threshold" in q.reason and "mean node std" in q.reason


def test_the_flag_is_the_calibrated_rule_applied_to_the_results_own_scores(default_segmenter, arrays):
    rule = _core.QualityAssessor(str(chexmask_rt.default_model_path()), "", default_segmenter.info.checkpoint_sha256)
    for img in arrays[:2]:
        r = default_segmenter.predict(img, samples=10)
        want = rule.assess(r.mean_node_std, r.mean_latent_sigma, r.height, r.width)
        assert (r.quality.flag, r.quality.reason, r.quality.calibrated) == (want.flag, want.reason, want.calibrated)


def test_one_sample_is_judged_by_the_latent_sigma_and_says_so(default_segmenter, arrays):
    """With K = 1 the node std is 0 by construction: the reason quoted "mean node std 0.00 px <= 24.40" as
    if it had been measured."""
    one = default_segmenter.predict(arrays[0], samples=1, second_look=False).quality
    pooled = default_segmenter.predict(arrays[0], samples=1, second_look=True)
    assert one.calibrated and not one.flag
    assert "mean node std not measured: one sample, mean latent sigma" in one.reason
    assert pooled.second_look.look == "pooled"  # two looks' decodes: a spread of two samples, measured
    assert "not measured" not in pooled.quality.reason and pooled.mean_node_std > 0
    assert f"mean node std {pooled.mean_node_std * 1024 / max(pooled.height, pooled.width):.2f} px" in pooled.quality.reason


def test_calibration_follows_the_checkpoint_not_the_file_name(tmp_path, example1):
    from toy_engine import write_toy_engine

    # a renamed copy of the shipped engine, without a calibration file: the shipped thresholds,
    # keyed by its checkpoint, still apply (they used to be lost with the name)
    engine = tmp_path / "copy.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    want = chexmask_rt.load().predict(example1, samples=3).quality
    got = chexmask_rt.load(engine).predict(example1, samples=3).quality
    assert got.calibrated and (got.flag, got.reason) == (want.flag, want.reason)
    # a calibration file beside it wins, here one for another checkpoint: not calibrated
    shipped = json.loads(calibration_path(chexmask_rt.default_model_path()).read_text())
    calibration_path(engine).write_text(json.dumps({"0" * 64: next(iter(shipped.values()))}))
    q = chexmask_rt.load(engine).predict(example1, samples=3).quality
    assert not q.calibrated and not q.flag and q.reason.startswith("not calibrated")
    # another model without a file of its own: the shipped file has nothing for its checkpoint
    toy = write_toy_engine(tmp_path / "toy.onnx", metadata={"checkpoint_sha256": "1" * 64})
    assert not chexmask_rt.load(toy).predict(np.full((64, 64), 100, np.uint8), samples=2).quality.calibrated


def test_malformed_calibration_file_is_a_model_error(tmp_path):
    engine = tmp_path / "m.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    calibration_path(engine).write_text("{not json")
    with pytest.raises(chexmask_rt.ModelError, match=r"m\.quality\.json: malformed quality calibration file"):
        chexmask_rt.load(engine)


SHIPPED_THRESHOLDS = next(iter(json.loads(calibration_path(chexmask_rt.default_model_path()).read_text()).values()))


@pytest.fixture(scope="module")
def shipped_assessor(tmp_path_factory):
    """The core's assessor with the shipped thresholds, read from a calibration file beside an engine path."""
    folder = tmp_path_factory.mktemp("q")
    (folder / "m.quality.json").write_text(json.dumps({"a" * 64: SHIPPED_THRESHOLDS}))
    return _core.QualityAssessor(str(folder / "m.onnx"), "", "a" * 64)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(node=st.floats(0, 200), sigma=st.floats(0, 2), height=st.integers(32, 65536), width=st.integers(32, 65536))
def test_the_core_writes_reasons_as_python_formats_them(shipped_assessor, node, sigma, height, width):
    """The reason strings are byte for byte Python's f"{x:.2f}" / f"{x:.4f}" (how the package wrote them
    before the core owned the flag): results.csv files of earlier runs resume with the same text."""
    q = shipped_assessor.assess(node, sigma, height, width)
    limit_node, limit_sigma = (SHIPPED_THRESHOLDS["thresholds"][k] for k in ("node_std_1024", "mean_latent_sigma"))
    node_1024 = node * 1024.0 / max(height, width)
    assert _core.node_std_1024(node, height, width) == node_1024
    over = ([f"mean node std {node_1024:.2f} px (1024 frame) > {limit_node:.2f}"] if node_1024 > limit_node else []) + \
           ([f"mean latent sigma {sigma:.4f} > {limit_sigma:.4f}"] if sigma > limit_sigma else [])
    assert q.calibrated and q.flag == bool(over)
    assert q.reason == ("uncertainty above the calibrated threshold: " + "; ".join(over) if over else
                        f"within calibrated thresholds (mean node std {node_1024:.2f} px (1024 frame) <= {limit_node:.2f}, "
                        f"mean latent sigma {sigma:.4f} <= {limit_sigma:.4f})")


@pytest.mark.parametrize("score", ["node_std_1024", "mean_latent_sigma"])
def test_a_score_at_its_threshold_is_not_flagged_and_the_next_float_is(shipped_assessor, score):
    """The rule is "above the threshold" (the reasons say "<=" for a pass): drawn floats never land on it."""
    limit = SHIPPED_THRESHOLDS["thresholds"][score]
    for value, flagged in ((limit, False), (np.nextafter(limit, np.inf), True)):
        node, sigma = (value, 0.0) if score == "node_std_1024" else (0.0, value)
        assert shipped_assessor.assess(float(node), float(sigma), 1024, 1024).flag is flagged, (score, value)


@pytest.mark.parametrize("name", ["m.onnx", "dir/a.b.onnx", "no_suffix", ".hidden", "dir.d/model.plan.onnx"])
def test_calibration_path_is_where_the_core_looks(name):
    assert str(calibration_path(name)) == _core.default_quality_file(name)


def test_a_named_calibration_file_is_used_or_refused(tmp_path, example1):
    engine = tmp_path / "copy.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    shipped = str(calibration_path(chexmask_rt.default_model_path()))
    gray = to_gray(read_image(example1))
    assert not _core.Engine(str(engine)).predict(gray, 3).quality.calibrated  # nothing beside it
    q = _core.Engine(str(engine), quality_file=shipped).predict(gray, 3).quality
    assert q.calibrated and q.to_dict() == {"flag": q.flag, "reason": q.reason, "calibrated": True}
    with pytest.raises(chexmask_rt.ModelError, match=r"nowhere\.json: quality calibration file not found"):
        _core.Engine(str(engine), quality_file=str(tmp_path / "nowhere.json"))


def test_predict_json_carries_the_flag(default_segmenter, example1):
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(example1), "--samples", "3", "--json", "-"],
                          capture_output=True, text=True, check=True)
    quality = json.loads(proc.stdout)["quality"]
    assert quality == default_segmenter.predict(example1, samples=3).quality.to_dict() and quality["calibrated"]


@pytest.mark.parametrize("value", [0, -1.0])
def test_thresholds_that_would_flag_every_result_are_malformed(tmp_path, value):
    entry = {**SHIPPED_THRESHOLDS, "thresholds": {**SHIPPED_THRESHOLDS["thresholds"], "node_std_1024": value}}
    (tmp_path / "m.quality.json").write_text(json.dumps({"a" * 64: entry}))
    with pytest.raises(chexmask_rt.ModelError, match="thresholds.node_std_1024 is not positive"):
        _core.QualityAssessor(str(tmp_path / "m.onnx"), "", "a" * 64)


@pytest.mark.parametrize("kind", ["dangling link", "fifo", "folder"])
def test_a_calibration_that_is_no_file_is_refused_not_ignored(tmp_path, kind):
    """Beside the engine it was skipped (the core: "not calibrated"; the package: the shipped model's
    thresholds), and named it was "not found": a broken share turned the flag off unsaid."""
    import os

    beside = tmp_path / "m.quality.json"
    if kind == "dangling link":
        beside.symlink_to(tmp_path / "gone.json")
    elif kind == "fifo":
        os.mkfifo(beside)
    else:
        beside.mkdir()
    for named in ("", str(beside)):
        with pytest.raises(chexmask_rt.ModelError, match="m.quality.json: quality calibration file is not a regular file"):
            _core.QualityAssessor(str(tmp_path / "m.onnx"), named, "a" * 64)
    (tmp_path / "m.onnx").symlink_to(chexmask_rt.default_model_path())
    with pytest.raises(chexmask_rt.ModelError, match="not a regular file"):
        chexmask_rt.load(tmp_path / "m.onnx")


def test_an_engine_whose_calibration_name_would_be_too_long_is_uncalibrated(tmp_path):
    """Its <stem>.quality.json is past NAME_MAX: no calibration can be there, and the engine loaded
    uncalibrated; a stricter check once called it "not found"."""
    q = _core.QualityAssessor(str(tmp_path / ("m" * 250 + ".onnx")), "", "a" * 64)
    assert not q.assess(1.0, 0.5, 1024, 1024).calibrated


ENGINE_OUT_OF_MEMORY = """
import resource, sys
import numpy as np
import chexmask_rt
seg = chexmask_rt.load(threads=1)
image = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
seg.predict(image, samples=2)
with open("/proc/self/status") as f:  # what the process has mapped now, plus room for a small run
    mapped = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + (600 << 20),) * 2)
try:
    seg.predict(image, samples=10000)  # about 1.2 GB of the engine's buffers
except BaseException as exc:
    print(type(exc).__name__, exc)
print("then", seg.predict(image, samples=5).samples)
"""


STREAM_OUT_OF_MEMORY = ENGINE_OUT_OF_MEMORY.replace("""try:
    seg.predict(image, samples=10000)""", """(_, error), (_, second) = seg.predict_iter([image, image[:, ::-1]], samples=10000, batch_size=1)
print(type(error).__name__, isinstance(error, MemoryError), isinstance(error, chexmask_rt.ChexmaskError),
      isinstance(error, chexmask_rt.InputError), type(error.__cause__).__name__, type(second).__name__)  # the stream goes on
try:
    pass""")


def test_predict_iter_yields_no_memory_as_memory_not_as_a_bad_image():
    """An input whose engine run found no memory was yielded as an InputError ("MemoryError: ... out of
    memory"), which a caller treating InputError as a bad file blamed on the image."""
    proc = subprocess.run([sys.executable, "-c", STREAM_OUT_OF_MEMORY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, then = proc.stdout.splitlines()
    assert first == "OutOfMemoryError True True False MemoryError OutOfMemoryError", first
    assert then == "then 5"


def test_an_engine_run_out_of_memory_is_memory_not_a_broken_engine(tmp_path):
    """ONNX Runtime's failed allocation came back as a ModelError ("engine run failed"): a batch stopped
    on it as on a broken engine, and callers could not tell it from one (the C header says out of
    memory is CHEXMASK_RT_RUNTIME_ERROR, the C++ one std::bad_alloc)."""
    proc = subprocess.run([sys.executable, "-c", ENGINE_OUT_OF_MEMORY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, then = proc.stdout.splitlines()
    assert first.startswith("MemoryError ") and "out of memory running the engine" in first, first
    assert "fewer samples" in first and then == "then 5"  # the same engine still runs a smaller call


DECODE_OUT_OF_MEMORY = """
import resource, sys
import chexmask_rt
from chexmask_rt.image_io import read_image
with open("/proc/self/status") as f:
    mapped = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + (150 << 20),) * 2)  # far less than the 294 MB raster
try:
    read_image(sys.argv[1])
except BaseException as exc:
    print(type(exc).__name__, isinstance(exc, MemoryError), exc)
"""


def test_no_memory_to_decode_an_image_is_memory_not_a_bad_file(tmp_path):
    """OpenCV's failed allocation while decoding was an InputError ("not a readable image ... Insufficient
    memory"): errors.csv blamed a sound file that a machine with more memory reads."""
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((7000, 7000, 3), np.uint16))
    proc = subprocess.run([sys.executable, "-c", DECODE_OUT_OF_MEMORY, str(big)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OutOfMemoryError True {big}: out of memory decoding the image ("), proc.stdout
