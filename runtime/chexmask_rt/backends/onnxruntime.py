"""The reference backend: the exported engine through onnxruntime's Python API."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelError, first_line
from ..metadata import ModelInfo
from . import EngineOutputs

OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma")


class OnnxRuntimeBackend:
    """Runs a chexmask-rt engine file with onnxruntime (CPU)."""

    name = "python"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per physical core
        options.log_severity_level = 3  # our own errors say what went wrong
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{self.path}: not a loadable ONNX model ({first_line(exc)})") from exc
        self.info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        names = {o.name for o in self.session.get_outputs()}
        missing = [n for n in OUTPUTS if n not in names]
        if missing or [i.name for i in self.session.get_inputs()] != ["image", "eps"]:
            raise ModelError(f"{self.path}: engine inputs/outputs do not match chexmask-rt format "
                             f"{self.info.format_version} (missing outputs: {missing or 'none'})")

    def run(self, images: np.ndarray, eps: np.ndarray) -> EngineOutputs:
        out = self.session.run(list(OUTPUTS), {"image": images, "eps": eps})
        return EngineOutputs(*out)
