"""What a chexmask-rt engine says about itself (ONNX ``metadata_props``): writing it, and reading a file's.

Every engine written by ``chexmask-rt export`` carries these keys. They are *parsed and validated*
in one place, the core (``chexmask_rt._core.parse_model_info``; against the graph when an engine
loads): this module writes them (:class:`EngineMetadata`, for the export) and reads a file's
without running it (:func:`read_engine_metadata`).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import core
from .errors import ModelError, first_line

FORMAT_VERSION = 1
PREFIX = "chexmask_rt."


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (checkpoints and engines are identified by it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineMetadata:
    """The metadata an export writes into an engine (``to_metadata``); read back as ``core.ModelInfo``."""

    format_version: int
    inputsize: int
    latents: int
    skip: bool
    checkpoint_sha256: str
    model_name: str
    model_version: str
    trained: bool
    description: str = ""
    has_samples_output: bool = False
    landmark_offsets_sha256: str = ""  # "" when the engine adds no per-landmark offsets
    second_look: bool = False  # predict's default for this engine; export --second-look

    def to_metadata(self) -> dict[str, str]:
        """The ONNX metadata properties (``chexmask_rt.*`` keys) that describe this engine."""
        fields = {
            "format_version": str(self.format_version), "inputsize": str(self.inputsize),
            "latents": str(self.latents), "skip": str(self.skip).lower(),
            "checkpoint_sha256": self.checkpoint_sha256, "model_name": self.model_name,
            "model_version": self.model_version, "trained": str(self.trained).lower(),
            "description": self.description, "samples_output": str(self.has_samples_output).lower(),
        }
        if self.landmark_offsets_sha256:
            fields["landmark_offsets_sha256"] = self.landmark_offsets_sha256
        if self.second_look:  # absent means false, so engines exported without it keep their bytes
            fields["second_look"] = "true"
        return {PREFIX + k: v for k, v in fields.items()}


def sealed_engine_bytes(model) -> bytes:
    """``model`` (an ``onnx.ModelProto``, edited here) as engine bytes sealed by the core: its seal
    entries (``core.SEAL_ENTRIES``) first among the metadata, so that a file cut short after them no
    longer hashes to them, and their SHA-256 set (``core.seal_engine``)."""
    entries = list(model.metadata_props)
    del model.metadata_props[:]
    for key, value in core.SEAL_ENTRIES:
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.extend(entries)
    return core.seal_engine(model.SerializeToString())


def read_engine_metadata(path: str | Path) -> tuple[dict[str, str], core.ModelInfo]:
    """An engine file's metadata properties and the core's ModelInfo of them, without running it
    (onnxruntime opens it with graph optimisations off, so this stays quick at any input size)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as the core does: its Python binding collects too
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None
    try:
        props = dict(session.get_modelmeta().custom_metadata_map)
    except UnicodeDecodeError:  # onnxruntime's binding cannot decode them
        raise ModelError(f"{path}: engine metadata is not valid UTF-8") from None
    return props, core.parse_model_info(props, str(path))
