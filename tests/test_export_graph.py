"""Every exported graph: valid ONNX, TensorRT-10-native operators only, chexmask-rt metadata, dynamic B and K."""
import filecmp

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from chexmask_export.tensorrt_ops import DEFAULT_TABLE, load_table, tensorrt_problems
from chexmask_rt import default_model_path
from chexmask_rt import core
from chexmask_rt.metadata import FORMAT_VERSION
from reference import latent_noise

from conftest import FIXTURE_NAMES, SHARED


def test_shipped_operator_table_is_the_reference_table():
    assert filecmp.cmp(DEFAULT_TABLE, SHARED / "reference" / "tensorrt10_onnx_operator_support.tsv", shallow=False)


def _engines(exported):
    return [exported[n] for n in FIXTURE_NAMES] + [default_model_path()]


def test_exported_graphs_pass_checker_and_tensorrt_table(exported):
    table = load_table(SHARED / "reference" / "tensorrt10_onnx_operator_support.tsv")
    for path in _engines(exported):
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        assert tensorrt_problems(model, table) == [], path
        ops = {n.op_type for n in model.graph.node}
        assert "RoiAlign" not in ops and "InstanceNormalization" not in ops
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)


def test_tensorrt_check_flags_what_the_parser_rejects():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    nodes = [
        helper.make_node("RoiAlign", ["x", "r", "i"], ["a"], name="roi"),
        helper.make_node("Unique", ["x"], ["u"], name="uniq"),
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], name="mean"),
        helper.make_node("Foo", ["x"], ["y"], name="custom", domain="com.example"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, axes], [y]))
    problems = "\n".join(tensorrt_problems(model))
    for name in ("roi", "uniq", "mean", "custom"):
        assert name in problems


def test_tensorrt_check_looks_inside_if_branches():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, None)
    bad = helper.make_graph([helper.make_node("Foo", ["x"], ["o"], name="inner", domain="com.example")], "b", [], [out])
    good = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "g", [], [out])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    node = helper.make_node("If", ["c"], ["y"], then_branch=bad, else_branch=good)
    model = helper.make_model(helper.make_graph([node], "m", [cond, x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    assert any("inner" in p and "custom domain" in p for p in tensorrt_problems(model))


def test_metadata_and_io_names(exported):
    for path in _engines(exported):
        model = onnx.load(path)
        info = core.parse_model_info({p.key: p.value for p in model.metadata_props}, str(path))
        assert info.format_version == FORMAT_VERSION and info.latents == 64
        assert len(info.checkpoint_sha256) == 64
        assert [i.name for i in model.graph.input] == ["image", "eps"]
        outs = [o.name for o in model.graph.output]
        assert outs[:5] == ["landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"]


def test_the_export_seals_each_engine_with_its_sha256(exported):
    """The recorded value is the SHA-256 of the file as written with it as 64 '0's, which the core checks.
    (The shipped engine predates the seal: the package pins it, test_model_integrity.py.)"""
    import hashlib

    for path in (exported[n] for n in FIXTURE_NAMES):
        data = path.read_bytes()
        value = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}[core.INTEGRITY_KEY].encode()
        assert data.count(value) == 1 and hashlib.sha256(data.replace(value, b"0" * 64)).hexdigest() == value.decode()


@pytest.mark.parametrize("batch,samples", [(1, 1), (3, 7), (2, 64)])
def test_dynamic_batch_and_samples(exported, batch, samples):
    session = ort.InferenceSession(str(exported["skip_256"]), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((batch, 1, 256, 256), dtype=np.float32)
    out = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"image": image, "eps": latent_noise(samples, 64)})))
    assert out["landmarks_mean"].shape == (batch, 120, 2)
    assert out["landmarks_samples"].shape == (batch, samples, 120, 2)
    assert out["latent_sigma"].shape == (batch, 64) and np.all(out["latent_sigma"] > 0)


def _overflowing(name: str):
    """A fixture's network whose decodes overflow float32 once eps is not 0 (finite weights: a huge
    log-variance bias, decoder weights times 1000)."""
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_export.onnx_export import build_network

    ckpt = load_checkpoint(SHARED / "fixtures" / "upstream" / name)
    net = build_network(ckpt)
    with __import__("torch").no_grad():
        net.encoder.fc_logvar.bias.fill_(172.0)
        net.dec_lin.weight.mul_(1000.0)
    return ckpt, net


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_an_overflowing_decode_fails_its_image_alone(tmp_path, monkeypatch, name):
    """The skip look-up turned a NaN landmark into index INT64_MIN: the whole engine call failed with ONNX
    Runtime's Gather error (a ModelError naming no image), where the no-skip engine refused each image
    alone as non-finite. Both now do the latter."""
    import chexmask_rt
    from chexmask_export import onnx_export
    from chexmask_rt.errors import NonFiniteOutputError

    ckpt, net = _overflowing(name)
    monkeypatch.setattr(onnx_export, "_check_finite", lambda engine, cfg: None)  # what the export refuses now
    onnx_export.export_onnx(net, tmp_path / "e.onnx", checkpoint_sha256=ckpt.sha256)
    image = np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)
    outcomes = [o for _, o in chexmask_rt.load(tmp_path / "e.onnx").predict_iter([image, image], samples=3)]
    assert all(isinstance(o, NonFiniteOutputError) for o in outcomes), outcomes


def test_the_export_refuses_weights_that_give_no_finite_answer(tmp_path):
    """A bit flipped in a checkpoint (0.0015 -> 5.2e35, still finite) ended the export with an IndexError
    traceback; weights that overflow only with a latent draw exported an engine that failed every image."""
    from chexmask_export.onnx_export import export_onnx
    from chexmask_rt.errors import ModelError

    ckpt, net = _overflowing("skip_256")
    with pytest.raises(ModelError, match="give NaN or infinite values on a blank image"):
        export_onnx(net, tmp_path / "e.onnx", checkpoint_sha256=ckpt.sha256)
    assert not (tmp_path / "e.onnx").exists()


def test_the_engine_names_the_release_that_exported_it(exported):
    """The ONNX producer version was torch's (2.13.0), and no chexmask-rt version was recorded."""
    import chexmask_rt

    model = onnx.load(str(exported["skip_256"]), load_external_data=False)
    assert (model.producer_name, model.producer_version) == ("chexmask-rt", chexmask_rt.__version__)


def test_an_engine_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    """A full disk gave "OSError: [Errno 28] No space left on device", naming no file."""
    import errno

    from chexmask_export import onnx_export
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_rt.errors import InputError

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_export, "write_bytes_whole", full)
    ckpt = load_checkpoint(SHARED / "fixtures" / "upstream" / "noskip_256")
    with pytest.raises(InputError, match=f"{tmp_path / 'e.onnx'}: cannot write the engine .No space left on device"):
        onnx_export.export_onnx(onnx_export.build_network(ckpt), tmp_path / "e.onnx", checkpoint_sha256=ckpt.sha256)
