"""Where an engine runs: ``device="cpu"|"cuda"|"tensorrt"``, through ONNX Runtime's execution providers.

The same mapping as the native core's (cpp/src/onnxruntime_backend.cpp): "cuda" runs on the CUDA
provider, "tensorrt" on the TensorRT provider with CUDA for what TensorRT leaves, and the CPU
provider always comes last. The installed onnxruntime must have the providers: the ``onnxruntime``
wheel has only the CPU one; ``pip install 'chexmask-rt[gpu]'`` installs ``onnxruntime-gpu`` instead.
Not tested on a GPU here (the onnxruntime-gpu wheel cannot reach the project's GPU machine).
"""
from __future__ import annotations

from .errors import ModelError

DEVICES = ("cpu", "cuda", "tensorrt")
MISSING_ONNXRUNTIME = ("onnxruntime is not installed: pip install 'chexmask-rt[cpu]', "
                       "or 'chexmask-rt[gpu]' for CUDA/TensorRT")
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def providers_for(device: str) -> list[str]:
    """ONNX Runtime's execution providers for ``device``, best first; ModelError for an unknown device."""
    if device not in _PROVIDERS:
        raise ModelError(f"unknown device {device!r}; choose 'cpu', 'cuda' or 'tensorrt'")
    return list(_PROVIDERS[device])


def require_available(device: str, available: list[str]) -> list[str]:
    """The providers of ``device``; ModelError naming those the installed onnxruntime lacks."""
    wanted = providers_for(device)
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ModelError(f"device {device!r} needs ONNX Runtime's {', '.join(missing)}, which the installed "
                         f"onnxruntime does not have (it has {', '.join(available)}); install onnxruntime-gpu "
                         "instead of onnxruntime: pip install 'chexmask-rt[gpu]'")
    return wanted


def session_providers(device: str, available: list[str], tensorrt_cache_dir: str | None) -> list:
    """The ``providers`` argument of ``onnxruntime.InferenceSession`` for ``device`` (engine cache for TensorRT)."""
    providers: list = require_available(device, available)
    if device == "tensorrt" and tensorrt_cache_dir:
        cache = {"trt_engine_cache_enable": True, "trt_engine_cache_path": tensorrt_cache_dir,
                 "trt_timing_cache_enable": True, "trt_timing_cache_path": tensorrt_cache_dir}
        providers[0] = (providers[0], cache)
    return providers


def check_in_use(device: str, in_use: list[str], where: str) -> None:
    """ModelError unless the session really runs on ``device``'s first provider: onnxruntime's Python
    API falls back to the CPU with only a warning when a GPU provider fails to start."""
    wanted = providers_for(device)[0]
    if not in_use or in_use[0] != wanted:
        raise ModelError(f"{where}: device {device!r} asked for {wanted}, but ONNX Runtime runs on "
                         f"{', '.join(in_use) or 'nothing'} (its CUDA/TensorRT libraries did not load; see its log)")
