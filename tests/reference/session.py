"""The engine through onnxruntime's Python API (reference): the session settings the core uses,
and one run of a batch of prepared images with the shared eps."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma")
SAMPLES_OUTPUT = "landmarks_samples"  # only engines exported with --samples-output
PREFIX = "chexmask_rt."


def session_options(threads: int | None = None, layout_optimizations: bool = False,
                    memory_pattern: bool = False) -> ort.SessionOptions:
    """The session options of the core's EngineOptions (defaults as there)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if layout_optimizations
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    options.enable_mem_pattern = memory_pattern
    options.intra_op_num_threads = threads or 0
    options.log_severity_level = 3
    return options


@dataclass(frozen=True)
class EngineMetadata:
    """What the reference needs of an engine's chexmask_rt.* metadata."""

    inputsize: int
    latents: int
    model_id: str
    second_look: bool


class Session:
    """One engine file opened on the CPU."""

    def __init__(self, path: str | Path, threads: int | None = None, **options: bool):
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), session_options(threads, **options),
                                            providers=["CPUExecutionProvider"])
        meta = {k[len(PREFIX):]: v for k, v in self.session.get_modelmeta().custom_metadata_map.items()
                if k.startswith(PREFIX)}
        self.metadata = EngineMetadata(
            inputsize=int(meta["inputsize"]), latents=int(meta["latents"]),
            model_id=f"{meta.get('model_name', 'hybridgnet')}:{meta.get('model_version', 'unversioned')}",
            second_look=meta.get("second_look", "false") == "true")
        names = {o.name for o in self.session.get_outputs()}
        self.outputs = [*OUTPUTS, *([SAMPLES_OUTPUT] if SAMPLES_OUTPUT in names else [])]

    def run(self, images: np.ndarray, eps: np.ndarray) -> dict[str, np.ndarray]:
        """images float32 [B, 1, S, S] in [0, 1], eps float32 [K, latents] -> outputs by name
        (landmarks normalised to [0, 1] of the square)."""
        return dict(zip(self.outputs, self.session.run(self.outputs, {"image": images, "eps": eps})))
