"""Export pass: each per-image channel affine (and its ReLU) as one depthwise 1x1 Conv at batch 1.

The encoder's norms end in ``x * scale + shift`` (then usually a ReLU), where scale and
shift are [B, C, 1, 1] tensors computed per image. As Mul, Add and Relu that is three
full-size passes. A depthwise 1x1 Conv whose weights are the scales does the same in one
pass, and onnxruntime fuses the ReLU into it (2.6 vs 5.6 ms at 8x1024x1024; bit-identical
results, benchmarks/results/optimisations.md). But a Conv's weights are shared by the
whole batch, and ``group`` is a static attribute, so that form only holds for one image.

The pass therefore wraps each such affine in an ``If`` on "batch == 1": the then-branch is
the Conv (+ ReLU) with image 0's scale and shift, the else-branch the original Mul, Add
(+ ReLU). Both are standard ONNX that the TensorRT 10 parser accepts. The affines are found
by shape, not by name: Mul(x [B, C, H, W], s [B, C, 1, 1]) -> Add(t [B, C, 1, 1]) with
C > 1 and s, t computed in the graph.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "per_image_affine/"


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input)
    return {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            for vi in infos}


def _is_channel_vector(shape: list[int | None] | None, channels: int) -> bool:
    return shape is not None and len(shape) == 4 and shape[1:] == [channels, 1, 1]


def fuse_per_image_affines(model: onnx.ModelProto, batch_input: str = "image") -> int:
    """Rewrite ``model`` in place (see the module docstring); returns how many affines it wrapped."""
    g = model.graph
    shapes = _static_shapes(model)
    constants = {t.name for t in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(name: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    replaced: dict[int, onnx.NodeProto] = {}  # id(Add) -> If
    dropped: set[int] = set()
    for mul in g.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        x, scale = mul.input
        x_shape = shapes.get(x)
        add = only_consumer(mul.output[0], "Add")
        if add is None or add.input[0] != mul.output[0] or x_shape is None or len(x_shape) != 4:
            continue
        shift, channels = add.input[1], x_shape[1]
        if (channels is None or channels < 2 or scale in constants or shift in constants
                or not _is_channel_vector(shapes.get(scale), channels)
                or not _is_channel_vector(shapes.get(shift), channels)):
            continue
        relu = only_consumer(add.output[0], "Relu")
        k = len(replaced)
        replaced[id(add)] = _if_node(f"{PREFIX}{k}/", x, scale, shift, channels, relu is not None,
                                     (relu or add).output[0])
        dropped |= {id(mul)} | ({id(relu)} if relu else set())
    if not replaced:
        return 0
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), PREFIX + name) for name, v in
                          (("zero", [0]), ("one", [1]), ("weight_shape", [-1, 1, 1, 1]), ("bias_shape", [-1]))])
    single = [helper.make_node("Shape", [batch_input], [PREFIX + "batch"], start=0, end=1),
              helper.make_node("Equal", [PREFIX + "batch", PREFIX + "one"], [PREFIX + "single_1"]),
              helper.make_node("Squeeze", [PREFIX + "single_1", PREFIX + "zero"], [PREFIX + "single"])]
    nodes = single + [replaced.get(id(n), n) for n in g.node if id(n) not in dropped]
    del g.node[:]
    g.node.extend(nodes)
    return len(replaced)


def _if_node(p: str, x: str, scale: str, shift: str, channels: int, relu: bool, output: str) -> onnx.NodeProto:
    def first_image(name: str, shape: str, out: str) -> list[onnx.NodeProto]:
        # image 0's values: a valid shape for any batch, so TensorRT can build the branch
        return [helper.make_node("Slice", [name, PREFIX + "zero", PREFIX + "one", PREFIX + "zero"], [out + "_0"]),
                helper.make_node("Reshape", [out + "_0", PREFIX + shape], [out])]

    then_out, else_out = p + "conv", p + "mul_add"
    then_nodes = (first_image(scale, "weight_shape", p + "weight") + first_image(shift, "bias_shape", p + "bias")
                  + [helper.make_node("Conv", [x, p + "weight", p + "bias"], [then_out + ("_pre" if relu else "")],
                                      group=channels, kernel_shape=[1, 1])])
    else_nodes = [helper.make_node("Mul", [x, scale], [p + "scaled"]),
                  helper.make_node("Add", [p + "scaled", shift], [else_out + ("_pre" if relu else "")])]
    if relu:
        then_nodes.append(helper.make_node("Relu", [then_out + "_pre"], [then_out]))
        else_nodes.append(helper.make_node("Relu", [else_out + "_pre"], [else_out]))

    def branch(nodes: list[onnx.NodeProto], out: str, name: str) -> onnx.GraphProto:
        return helper.make_graph(nodes, p + name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])

    return helper.make_node("If", [PREFIX + "single"], [output], name=p + "if",
                            then_branch=branch(then_nodes, then_out, "one_image"),
                            else_branch=branch(else_nodes, else_out, "batch"))
