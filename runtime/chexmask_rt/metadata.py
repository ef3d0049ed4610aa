"""What a chexmask-rt engine says about itself (ONNX ``metadata_props``).

Every engine written by ``chexmask-rt export`` carries these keys; a file
without them, or of another format version, is not a chexmask-rt engine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError, first_line

FORMAT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (checkpoints and engines are identified by it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
PREFIX = "chexmask_rt."


@dataclass(frozen=True)
class ModelInfo:
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
    second_look: bool = False  # predict's default for this engine (chexmask_rt.second_look); export --second-look

    def to_metadata(self) -> dict[str, str]:
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

    @classmethod
    def from_metadata(cls, props: dict[str, str], source: str) -> "ModelInfo":
        """Parse and validate; a ModelError says what is missing or wrong."""
        get = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "format_version" not in get:
            raise ModelError(f"{source}: not a chexmask-rt engine (no {PREFIX}format_version metadata); "
                             "make one with 'chexmask-rt export'")
        try:
            version = int(get["format_version"])
        except ValueError:
            raise ModelError(f"{source}: unreadable format_version {get['format_version']!r}") from None
        if version != FORMAT_VERSION:
            raise ModelError(f"{source}: engine format version {version}, this chexmask-rt reads version "
                             f"{FORMAT_VERSION}; re-export it with this release")
        missing = [k for k in ("inputsize", "latents", "skip", "checkpoint_sha256") if k not in get]
        if missing:
            raise ModelError(f"{source}: engine metadata lacks {', '.join(PREFIX + k for k in missing)}")
        try:
            info = cls(format_version=version, inputsize=int(get["inputsize"]), latents=int(get["latents"]),
                       skip=get["skip"] == "true", checkpoint_sha256=get["checkpoint_sha256"],
                       model_name=get.get("model_name", "hybridgnet"),
                       model_version=get.get("model_version", "unversioned"),
                       trained=get.get("trained", "true") == "true", description=get.get("description", ""),
                       has_samples_output=get.get("samples_output", "false") == "true",
                       landmark_offsets_sha256=get.get("landmark_offsets_sha256", ""),
                       second_look=get.get("second_look", "false") == "true")
        except ValueError as exc:
            raise ModelError(f"{source}: malformed engine metadata ({exc})") from None
        if info.inputsize < 32 or info.inputsize % 32 or info.latents < 1:
            raise ModelError(f"{source}: implausible engine metadata inputsize={info.inputsize} latents={info.latents}")
        return info


def session_metadata(session, source: str) -> dict[str, str]:
    """An onnxruntime session's metadata properties; ModelError when they are not valid UTF-8
    (onnxruntime's binding cannot decode them)."""
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except UnicodeDecodeError:
        raise ModelError(f"{source}: engine metadata is not valid UTF-8") from None


def read_engine_metadata(path: str | Path) -> tuple[dict[str, str], ModelInfo]:
    """An engine file's metadata properties and ModelInfo, without running it (onnxruntime
    opens it with graph optimisations off, so this stays quick at any input size)."""
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
    props = session_metadata(session, str(path))
    return props, ModelInfo.from_metadata(props, str(path))
