"""Checkpoint -> one ONNX engine with the sampling and statistics folded in."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch

from chexmask_rt.errors import InputError, ModelError, os_reason
from chexmask_rt.metadata import FORMAT_VERSION, EngineMetadata, sealed_engine_bytes
from chexmask_rt.version import __version__
from chexmask_rt.whole_files import write_bytes_whole

from .affine_fusion import fuse_per_image_affines
from .checkpoint import Checkpoint
from .engine_graph import INPUT_NAMES, OUTPUT_NAMES, SAMPLES_OUTPUT, UncertaintyEngine
from .landmark_offsets import LandmarkOffsets
from .model import HybridGNet
from .tensorrt_ops import tensorrt_problems

OPSET = 17  # LayerNormalization needs 17; TensorRT 10 parses 9-20


def fold_initializer_identities(model: onnx.ModelProto) -> int:
    """Drop Identity nodes that merely alias an initializer; returns how many.

    The TorchScript exporter deduplicates equal weights (e.g. the all-ones
    norm scales of a fresh network) into one initializer plus Identity aliases,
    and onnxruntime 1.32's graph optimiser then fails to load the model
    ("Node input ... is not a graph input"). Pointing consumers at the
    initializer itself is equivalent and leaves a simpler graph.
    """
    g = model.graph
    initializers = {t.name for t in g.initializer}
    outputs = {o.name for o in g.output}
    alias = {n.output[0]: n.input[0] for n in g.node
             if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs}
    if not alias:
        return 0
    keep = [n for n in g.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del g.node[:]
    g.node.extend(keep)
    return len(alias)


def build_network(checkpoint: Checkpoint) -> HybridGNet:
    """The checkpoint's network, its weights loaded. The config is first checked against the weights'
    shapes on a network of shapes alone (meta device): a config that disagreed with them was built in full
    first (inputsize 8192: 4.4 GB and half a minute before the mismatch; larger ones a torch traceback)."""
    source = str(checkpoint.source)
    try:
        with torch.device("meta"):
            shapes = HybridGNet(checkpoint.config)
    except (RuntimeError, ValueError, OverflowError, TypeError) as exc:
        raise ModelError(f"{source}: its config cannot be built ({str(exc).splitlines()[0]})") from None
    shapes.check_published(checkpoint.state_dict, source)
    net = HybridGNet(checkpoint.config)
    net.load_published(checkpoint.state_dict, source)
    return net.eval()


def export_onnx(net: HybridGNet, output: str | Path, *, checkpoint_sha256: str, samples_output: bool = False,
                model_name: str = "hybridgnet", model_version: str = "unversioned", trained: bool = True,
                description: str = "", fuse_norms: bool = True,
                landmark_offsets: LandmarkOffsets | None = None, second_look: bool = False) -> EngineMetadata:
    """Write ``net`` as a chexmask-rt engine to ``output`` and return its metadata.

    The graph is checked with ``onnx.checker`` and against the TensorRT 10
    operator table before anything is written. ``fuse_norms=False`` leaves out the
    batch-1 depthwise-Conv form of the norms (``affine_fusion``). ``landmark_offsets`` are added
    to every decoded sample, and their file's sha256 goes into the metadata. ``second_look``
    marks the engine as one whose ``predict`` takes a second look by default (measure that it
    helps this model first: ``training.evaluate`` with and without ``--single-look``).
    """
    cfg = net.config
    engine = UncertaintyEngine(net.eval(), emit_samples=samples_output, offsets=landmark_offsets)
    outputs = OUTPUT_NAMES + ([SAMPLES_OUTPUT] if samples_output else [])
    dims = {"image": {0: "batch"}, "eps": {0: "samples"}}
    dims.update({name: {0: "batch"} for name in outputs})
    if samples_output:
        dims[SAMPLES_OUTPUT] = {0: "batch", 1: "samples"}
    example = (torch.zeros(2, 1, cfg.inputsize, cfg.inputsize), torch.zeros(3, cfg.latents))
    _check_finite(engine, cfg)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(engine, example, buffer, input_names=INPUT_NAMES, output_names=outputs,
                          dynamic_axes=dims, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    fold_initializer_identities(model)
    if fuse_norms:
        fuse_per_image_affines(model, batch_input=INPUT_NAMES[0])
    info = EngineMetadata(format_version=FORMAT_VERSION, inputsize=cfg.inputsize, latents=cfg.latents,
                          skip=cfg.use_skip, checkpoint_sha256=checkpoint_sha256, model_name=model_name,
                          model_version=model_version, trained=trained, description=description,
                          has_samples_output=samples_output,
                          landmark_offsets_sha256="" if landmark_offsets is None else landmark_offsets.sha256,
                          second_look=second_look)
    for key, value in info.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "chexmask-rt", __version__  # torch wrote its own version there
    onnx.checker.check_model(model, full_check=True)
    problems = tensorrt_problems(model)
    if problems:
        raise ModelError("exported graph is not TensorRT-10 clean:\n  " + "\n  ".join(problems))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # whole or not at all, so a full disk cannot leave a broken engine where a good one was; always the
    # binary format (onnx.save picks a text format for names ending .json or .textproto)
    try:
        write_bytes_whole(output, sealed_engine_bytes(model))
    except OSError as exc:  # a full disk: the bare OSError named no file
        raise InputError(f"{output}: cannot write the engine ({os_reason(exc)}); a file there is left as it was") \
            from None
    return info


def _check_finite(engine: UncertaintyEngine, cfg) -> None:
    """Refuse weights whose answer on a blank image, with latent draws one sigma out, is not finite: a
    bit flipped in a checkpoint (0.0015 -> 5.2e35) exported an engine that failed every image."""
    probe = (torch.zeros(1, 1, cfg.inputsize, cfg.inputsize), torch.ones(2, cfg.latents))
    with torch.no_grad():
        outputs = engine(*probe)
    if not all(bool(torch.isfinite(t).all()) for t in outputs):
        raise ModelError("the checkpoint's weights give NaN or infinite values on a blank image (a damaged "
                         "checkpoint, or weights that overflow float32); nothing was written")
