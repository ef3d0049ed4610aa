"""Engine runners: one small module per backend behind one interface.

A backend turns a batch of preprocessed images plus the shared latent noise
into the engine's raw outputs (normalised frame); everything before and after
is shared code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..metadata import ModelInfo


@dataclass(frozen=True)
class EngineOptions:
    """ONNX Runtime session settings, the same for the native and the Python backend.

    The defaults are what measured fastest and leanest on the benchmark machine
    (``python -m benchmarks.run``, section "engine settings"); the C++ header's
    ``EngineOptions`` has the same defaults.
    """

    threads: int | None = None
    """Intra-op threads; None: one per physical core."""
    layout_optimizations: bool = False
    """Graph level ALL (x86 NCHWc layout rewrites) instead of EXTENDED. The per-image
    normalisations make ONNX Runtime reorder back to NCHW after every convolution,
    which ate the gain of the blocked convolutions."""
    memory_pattern: bool = False
    """One pre-planned buffer block per input shape. Off, peak RSS at 1024 is about a
    third lower at the same latency."""
    device: str = "cpu"
    """'cpu', 'cuda' or 'tensorrt': ONNX Runtime's execution providers (:mod:`chexmask_rt.devices`);
    the installed onnxruntime must have them (``pip install 'chexmask-rt[gpu]'``). Not tested on a GPU here."""
    tensorrt_cache_dir: str | None = None
    """device 'tensorrt': folder where ONNX Runtime's TensorRT provider keeps the engines it builds
    (once per model, shape, TensorRT version and GPU); None: rebuilt at every load."""


@dataclass(frozen=True)
class EngineOutputs:
    """Raw engine outputs for a batch; landmarks normalised to [0, 1] of the square."""

    landmarks_mean: np.ndarray  # [B, 120, 2]
    landmarks_std: np.ndarray   # [B, 120, 2]
    landmarks_mu: np.ndarray    # [B, 120, 2]
    latent_mu: np.ndarray       # [B, latents]
    latent_sigma: np.ndarray    # [B, latents]
    landmarks_samples: np.ndarray | None = None  # [B, K, 120, 2], engines exported with --samples-output


class Backend(Protocol):
    name: str
    info: ModelInfo
    providers: list[str]
    """ONNX Runtime execution providers the engine runs on, best first."""

    def run(self, images: np.ndarray, eps: np.ndarray) -> EngineOutputs:
        """images float32 [B, 1, S, S] in [0, 1]; eps float32 [K, latents]."""
        ...
