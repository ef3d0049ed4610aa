"""Benchmarks and experiments: run from the repository root as ``python -m benchmarks.NAME``."""
import os

# importing onnxruntime's Python package starts its telemetry: off, as the core keeps it (README, Reliability)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
