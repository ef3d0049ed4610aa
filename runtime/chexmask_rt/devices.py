"""Where an engine runs: ``device="cpu"|"cuda"|"tensorrt"``, through ONNX Runtime's execution providers.

The core maps a device to its providers (cpp/src/onnxruntime_backend.cpp): "cuda" runs on the CUDA
provider, "tensorrt" on the TensorRT provider with CUDA for what TensorRT leaves, and the CPU
provider always comes last; a provider the loaded ONNX Runtime lacks is a ModelError naming it.
The installed onnxruntime must have the providers: the ``onnxruntime`` wheel has only the CPU one;
``pip install 'chexmask-rt[gpu]'`` installs ``onnxruntime-gpu`` instead.
Not tested on a GPU here (the onnxruntime-gpu wheel cannot reach the project's GPU machine).
"""
from __future__ import annotations

DEVICES = ("cpu", "cuda", "tensorrt")
MISSING_ONNXRUNTIME = ("onnxruntime is not installed: pip install 'chexmask-rt[cpu]', "
                       "or 'chexmask-rt[gpu]' for CUDA/TensorRT")
