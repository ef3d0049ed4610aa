"""A tiny engine with the chexmask-rt interface, built in a few milliseconds: for testing what
the runtime does with engines that are wrong in one way (shapes, metadata) and for fuzzing.

Its landmarks are a fixed ring scaled by the image's mean brightness, its latents the mean of
eps; what each output *declares* can differ from what it produces (``declared``/``landmarks``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

METADATA = {"format_version": "1", "inputsize": "64", "latents": "8", "skip": "false",
            "checkpoint_sha256": "0" * 64, "model_name": "toy", "model_version": "1", "trained": "true"}


def toy_engine(*, inputsize: int = 64, latents: int = 8, landmarks: int = 120, per_sample: bool = False,
               declared: dict[str, list] | None = None, metadata: dict[str, str] | None = None) -> bytes:
    """The engine's ONNX bytes. ``landmarks``: how many it computes, times the number of samples
    with ``per_sample`` (a count no shape inference can know before the run); ``declared``: declared
    shapes by tensor name (default: the true ones); ``metadata``: entries replacing ``METADATA``'s."""
    angles = np.linspace(0, 2 * np.pi, landmarks, endpoint=False)
    ring = np.stack([0.5 + 0.3 * np.cos(angles), 0.5 + 0.35 * np.sin(angles)], axis=1)[None].astype(np.float32)
    constants = [numpy_helper.from_array(ring, "ring_once"), numpy_helper.from_array(np.float32([0.01]), "spread"),
                 numpy_helper.from_array(np.int64([-1, 1, 1]), "per_image"),
                 numpy_helper.from_array(np.int64([-1, 1]), "per_row"),
                 numpy_helper.from_array(np.int64([0]), "zero"), numpy_helper.from_array(np.int64([1]), "one")]
    nodes = [
        helper.make_node("Shape", ["eps"], ["eps_shape"]),
        helper.make_node("Slice", ["eps_shape", "zero", "one"], ["samples"]),
        helper.make_node("Concat", ["one", "samples" if per_sample else "one", "one"], ["repeats"], axis=0),
        helper.make_node("Tile", ["ring_once", "repeats"], ["ring"]),
        helper.make_node("ReduceMean", ["image"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["brightness", "per_image"], ["b3"]),
        helper.make_node("Add", ["b3", "ring"], ["shifted"]),
        helper.make_node("Sub", ["shifted", "b3"], ["landmarks_mean"]),  # the ring, per image
        helper.make_node("Identity", ["landmarks_mean"], ["landmarks_mu"]),
        helper.make_node("Mul", ["b3", "spread"], ["b3_spread"]),
        helper.make_node("Add", ["b3_spread", "ring"], ["ring_std"]),
        helper.make_node("Mul", ["ring_std", "spread"], ["landmarks_std"]),
        helper.make_node("ReduceMean", ["eps"], ["eps_mean"], axes=[0], keepdims=1),
        helper.make_node("Reshape", ["brightness", "per_row"], ["b2"]),
        helper.make_node("Add", ["b2", "eps_mean"], ["latent_mu"]),
        helper.make_node("Abs", ["latent_mu"], ["latent_sigma"]),
    ]
    true_shapes = {"image": ["batch", 1, inputsize, inputsize], "eps": ["samples", latents],
                   "landmarks_mean": ["batch", landmarks, 2], "landmarks_std": ["batch", landmarks, 2],
                   "landmarks_mu": ["batch", landmarks, 2], "latent_mu": ["batch", latents],
                   "latent_sigma": ["batch", latents]}
    shapes = {**true_shapes, **(declared or {})}
    info = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in shapes.items()}
    graph = helper.make_graph(nodes, "toy", [info["image"], info["eps"]],
                              [info[n] for n in ("landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu",
                                                 "latent_sigma")], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {**METADATA, "inputsize": str(inputsize), "latents": str(latents), **(metadata or {})}
    helper.set_model_props(model, {"chexmask_rt." + k: v for k, v in props.items()})
    return model.SerializeToString()


def sealed_toy_engine(**kwargs) -> bytes:
    """The toy engine as ``chexmask-rt export`` writes an engine: with its integrity entry, sealed."""
    import onnx

    from chexmask_rt.metadata import sealed_engine_bytes

    return sealed_engine_bytes(onnx.load_from_string(toy_engine(**kwargs)))


def write_toy_engine(path: Path, **kwargs) -> Path:
    path.write_bytes(toy_engine(**kwargs))
    return path
