"""The reference backend: the exported engine through onnxruntime's Python API."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..engine_io import SAMPLES_OUTPUT, check_graph, check_outputs
from ..errors import ModelError, first_line
from ..metadata import ModelInfo, session_metadata
from . import EngineOptions, EngineOutputs

OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma")


def session_options(engine_options: EngineOptions = EngineOptions()) -> ort.SessionOptions:
    """onnxruntime session options for EngineOptions (the C++ backend sets the same ones)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                                        if engine_options.layout_optimizations
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    options.enable_mem_pattern = engine_options.memory_pattern
    options.intra_op_num_threads = engine_options.threads or 0  # 0: one per physical core
    options.log_severity_level = 3  # our own errors say what went wrong
    return options


class OnnxRuntimeBackend:
    """Runs a chexmask-rt engine file with onnxruntime (CPU)."""

    name = "python"

    def __init__(self, path: str | os.PathLike, engine_options: EngineOptions = EngineOptions()):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        options = session_options(engine_options)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{self.path}: not a loadable ONNX model ({first_line(exc)})") from exc
        self.info = ModelInfo.from_metadata(session_metadata(self.session, str(self.path)), str(self.path))
        names = {o.name for o in self.session.get_outputs()}
        missing = [n for n in OUTPUTS if n not in names]
        if missing or [i.name for i in self.session.get_inputs()] != ["image", "eps"]:
            raise ModelError(f"{self.path}: engine inputs/outputs do not match chexmask-rt format "
                             f"{self.info.format_version} (missing outputs: {missing or 'none'})")
        declared = {t.name: (t.type, t.shape) for t in [*self.session.get_inputs(), *self.session.get_outputs()]}
        check_graph(declared, self.info, str(self.path))
        # the raw decodes are optional: only engines exported with --samples-output (chexmask_rt.measures)
        self._outputs = list(OUTPUTS) + ([SAMPLES_OUTPUT] if SAMPLES_OUTPUT in names else [])

    def run(self, images: np.ndarray, eps: np.ndarray) -> EngineOutputs:
        try:
            out = self.session.run(self._outputs, {"image": images, "eps": eps})
        except Exception as exc:  # onnxruntime's own untyped errors: the engine cannot run what it declared
            raise ModelError(f"{self.path}: engine run failed ({first_line(exc)})") from exc
        check_outputs(dict(zip(self._outputs, out)), len(images), self.info, str(self.path))
        return EngineOutputs(*out)
