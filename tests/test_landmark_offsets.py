"""Per-landmark offsets: fitted on training-shape renders, stored beside the weights, added in the engine."""
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.landmark_offsets import OFFSETS_FILE, read_offsets, write_offsets
from chexmask_export.onnx_export import build_network, export_onnx
from chexmask_rt.errors import ModelError
from chexmask_rt.metadata import file_sha256, read_engine_metadata
from training.data import load_shapes, load_textures
from training.evaluate import seen_shape_indices
from training.landmark_offsets import fit_offsets, fit_shape_indices, measure

from conftest import FIXTURES, SHARED


@pytest.fixture()
def checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "skip_256", folder, ignore=shutil.ignore_patterns("*.npz"))
    return folder


def _pattern() -> np.ndarray:
    # distinct per landmark and axis, as a fitted set is
    return np.stack([np.linspace(-0.004, 0.006, 120), np.linspace(0.003, -0.002, 120)], axis=1)


def test_offsets_round_trip_and_are_refused_for_other_weights(checkpoint):
    weights = checkpoint / "pytorch_model.bin"
    assert read_offsets(weights, file_sha256(weights)) is None
    write_offsets(checkpoint, _pattern(), checkpoint_sha256=file_sha256(weights), fit={"renders": 3})
    read = read_offsets(weights, file_sha256(weights))
    np.testing.assert_allclose(read.offsets, _pattern(), atol=1e-8)
    assert read.sha256 == file_sha256(checkpoint / OFFSETS_FILE)
    with pytest.raises(ModelError, match="fitted on checkpoint"):
        read_offsets(weights, "0" * 64)


def _one_off(value: float) -> np.ndarray:
    offsets = np.zeros((120, 2))
    offsets[7, 1] = value
    return offsets


@pytest.mark.parametrize("offsets,match", [
    (np.zeros((119, 2)), "expected 120.*got shape \\(119, 2\\)"),
    (np.full((120, 2), np.nan), "finite.*landmark 0 has \\[nan, nan\\] \\(120 landmarks in all\\)"),
    (np.full((120, 2), 0.5), "±0.1"),
    # the value at fault, where the message once gave the (right) shape
    (_one_off(0.5), "±0.1 of the frame; landmark 7 has \\[0.0, 0.5\\]$"),
    (_one_off(np.inf), "landmark 7 has \\[0.0, inf\\]$"),
])
def test_implausible_offsets_are_model_errors(checkpoint, offsets, match):
    weights = checkpoint / "pytorch_model.bin"
    (checkpoint / OFFSETS_FILE).write_text(json.dumps({"checkpoint_sha256": file_sha256(weights),
                                                        "offsets": offsets.tolist()}))
    with pytest.raises(ModelError, match=match):
        load_checkpoint(checkpoint)
    (checkpoint / OFFSETS_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not a readable landmark offsets file"):
        load_checkpoint(checkpoint)
    assert load_checkpoint(checkpoint, offsets=False).landmark_offsets is None


def _run(engine, image, eps):
    session = ort.InferenceSession(str(engine), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": image, "eps": eps})))


def test_the_engine_adds_the_offsets_to_every_sample_and_leaves_the_spread(checkpoint, tmp_path):
    weights = checkpoint / "pytorch_model.bin"
    write_offsets(checkpoint, _pattern(), checkpoint_sha256=file_sha256(weights), fit={})
    with_offsets, bare = tmp_path / "with.onnx", tmp_path / "bare.onnx"
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "export", "--checkpoint", checkpoint, "--output",
                           with_offsets, "--samples-output"], capture_output=True, text=True)
    assert proc.returncode == 0 and "landmark offsets from" in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "export", "--checkpoint", checkpoint, "--output",
                           bare, "--samples-output", "--no-landmark-offsets"], capture_output=True, text=True)
    assert proc.returncode == 0 and "landmark offsets" not in proc.stdout, proc.stderr
    assert read_engine_metadata(with_offsets)[1].landmark_offsets_sha256 == file_sha256(checkpoint / OFFSETS_FILE)
    assert read_engine_metadata(bare)[1].landmark_offsets_sha256 == ""
    assert "chexmask_rt.landmark_offsets_sha256" not in read_engine_metadata(bare)[0]

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (2, 1, 256, 256)).astype(np.float32)
    eps = rng.standard_normal((6, 64)).astype(np.float32)
    a, b = _run(with_offsets, image, eps), _run(bare, image, eps)
    for name in ("landmarks_mean", "landmarks_mu", "landmarks_samples"):
        np.testing.assert_allclose(a[name] - b[name], np.broadcast_to(_pattern(), a[name].shape), atol=2e-6)
    for name in ("landmarks_std", "latent_mu", "latent_sigma"):
        np.testing.assert_allclose(a[name], b[name], atol=2e-6)


def test_the_bare_export_is_the_published_graph(checkpoint, tmp_path):
    """No offsets file: the same graph as before offsets existed (no extra node)."""
    ckpt = load_checkpoint(checkpoint)
    assert ckpt.landmark_offsets is None
    import onnx

    plain = tmp_path / "plain.onnx"
    export_onnx(build_network(ckpt), plain, checkpoint_sha256=ckpt.sha256)
    write_offsets(checkpoint, _pattern(), checkpoint_sha256=ckpt.sha256, fit={})
    shifted = tmp_path / "shifted.onnx"
    with_file = load_checkpoint(checkpoint)
    export_onnx(build_network(with_file), shifted, checkpoint_sha256=with_file.sha256,
                landmark_offsets=with_file.landmark_offsets)
    ops = lambda path: [n.op_type for n in onnx.load(str(path)).graph.node]  # noqa: E731
    assert len(ops(shifted)) == len(ops(plain)) + 1 and ops(shifted).count("Add") == ops(plain).count("Add") + 1


def test_fit_offsets_remove_a_constant_bias():
    rng = np.random.default_rng(1)
    targets = rng.uniform(100, 900, (40, 120, 2))
    bias = rng.normal(0, 3, (120, 2))
    predictions = targets + bias + rng.normal(0, 0.5, targets.shape)
    offsets = fit_offsets(predictions, targets)
    np.testing.assert_allclose(offsets * 1024, -bias, atol=0.3)
    assert np.abs(predictions + offsets * 1024 - targets).mean() < np.abs(predictions - targets).mean() / 4


def test_fit_shapes_leave_out_the_generalisation_gap_shapes():
    chosen = fit_shape_indices(1000)
    assert len(chosen) == len(set(chosen)) == 160
    assert not set(chosen) & set(seen_shape_indices(1000))
    np.testing.assert_array_equal(chosen, fit_shape_indices(1000))


def test_measure_pairs_each_render_with_its_target():
    shapes = load_shapes(SHARED / "data").train[:2]
    textures = load_textures(SHARED / "data")

    class Shifted:  # predicts the planned shape moved by a fixed bias
        def __init__(self):
            self.queue = [s + [2.0, -1.0] for s in shapes]

        def predict(self, image, samples):
            return SimpleNamespace(landmarks=self.queue.pop(0))

    predictions, targets = measure(Shifted(), textures, shapes, samples=1, progress=False)
    assert predictions.shape == targets.shape == (2, 120, 2)
    np.testing.assert_allclose(fit_offsets(predictions, targets) * 1024, np.broadcast_to([-2.0, 1.0], (120, 2)))
