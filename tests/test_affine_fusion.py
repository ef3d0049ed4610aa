"""The export pass that runs per-image channel affines as depthwise 1x1 Convs at batch 1."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from chexmask_export.affine_fusion import fuse_per_image_affines
from chexmask_export.tensorrt_ops import tensorrt_problems


def _norm_graph(channels: int, relu: bool, constant_scale: bool = False) -> onnx.ModelProto:
    """image [B, C, 8, 8] -> x * s + t (-> ReLU), with s and t from the image's own statistics."""
    mean = helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=1)
    nodes = [mean, helper.make_node("Add", ["mean", "one"], ["s"]), helper.make_node("Mul", ["mean", "two"], ["t"]),
             helper.make_node("Mul", ["image", "two" if constant_scale else "s"], ["scaled"]),
             helper.make_node("Add", ["scaled", "t"], ["y" if not relu else "pre"])]
    if relu:
        nodes.append(helper.make_node("Relu", ["pre"], ["y"]))
    inits = [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one"),
             numpy_helper.from_array(np.full((1, 1, 1, 1), 2, np.float32), "two")]
    graph = helper.make_graph(nodes, "norm", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["batch", channels, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", channels, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image})[0]


def test_affine_and_relu_become_one_branch_per_batch_size_with_the_same_results():
    for relu in (True, False):
        plain = _norm_graph(4, relu)
        fused = _norm_graph(4, relu)
        assert fuse_per_image_affines(fused) == 1
        onnx.checker.check_model(fused, full_check=True)
        assert tensorrt_problems(fused) == []
        (if_node,) = [n for n in fused.graph.node if n.op_type == "If"]
        branches = {a.name: [n.op_type for n in a.g.node] for a in if_node.attribute}
        assert branches["then_branch"][-2:] == (["Conv", "Relu"] if relu else ["Slice", "Reshape", "Conv"])[-2:]
        assert "Mul" in branches["else_branch"] and "Conv" not in branches["else_branch"]
        rng = np.random.default_rng(0)
        for batch in (1, 3):  # the Conv branch, then the Mul/Add branch
            image = rng.standard_normal((batch, 4, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(_run(fused, image), _run(plain, image), rtol=1e-6, atol=1e-6)


def test_constant_scales_and_single_channels_are_left_alone():
    for model in (_norm_graph(4, True, constant_scale=True), _norm_graph(1, True)):
        before = [n.op_type for n in model.graph.node]
        assert fuse_per_image_affines(model) == 0
        assert [n.op_type for n in model.graph.node] == before


def test_exported_encoder_norms_are_wrapped(exported):
    model = onnx.load(exported["skip_256"])
    ifs = [n for n in model.graph.node if n.op_type == "If"]
    # 17 norms; the image's own (one channel) and the first block's skip (an affine map of the
    # image) have no multi-channel Mul/Add to wrap
    assert len(ifs) == 15
    groups = [helper.get_node_attr_value(n, "group") for b in ifs for a in b.attribute if a.name == "then_branch"
              for n in a.g.node if n.op_type == "Conv"]
    assert sorted(set(groups)) == [8, 16, 32, 64, 128]
