"""The reference backend: the exported engine through onnxruntime's Python API."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..engine_io import SAMPLES_OUTPUT, check_graph, check_outputs
from ..devices import MISSING_ONNXRUNTIME, check_in_use, session_providers
from ..errors import ModelError, first_line
from ..metadata import ModelInfo, session_metadata
from . import EngineOptions, EngineOutputs

try:
    import onnxruntime as ort
except ImportError:  # chexmask-rt installed without [cpu] or [gpu]: OnnxRuntimeBackend says so
    ort = None

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
    """Runs a chexmask-rt engine file with onnxruntime, on EngineOptions.device."""

    name = "python"

    def __init__(self, path: str | os.PathLike, engine_options: EngineOptions = EngineOptions()):
        if ort is None:
            raise ModelError(MISSING_ONNXRUNTIME)
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        options = session_options(engine_options)
        device = engine_options.device
        providers = session_providers(device, ort.get_available_providers(), engine_options.tensorrt_cache_dir)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            on = "" if device == "cpu" else f" on device {device!r}"
            raise ModelError(f"{self.path}: not a loadable ONNX model{on} ({first_line(exc)})") from exc
        self.providers = self.session.get_providers()
        check_in_use(device, self.providers, str(self.path))
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
