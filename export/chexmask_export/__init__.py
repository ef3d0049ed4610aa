"""Export toolchain: published HybridGNet checkpoints -> one chexmask-rt ONNX engine.

Needs the ``export`` extras (torch, onnx); the runtime package never imports this.
"""
from .checkpoint import Checkpoint, load_checkpoint
from .model import HybridGNet

__all__ = ["Checkpoint", "HybridGNet", "load_checkpoint"]
