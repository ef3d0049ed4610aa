"""Export toolchain: published HybridGNet checkpoints -> one chexmask-rt ONNX engine.

Needs the ``export`` extras (torch, onnx); the runtime package never imports this. Its names are
imported on first use: the runtime's command line loads ``chexmask_export.command`` (through this
package) to list ``export``, and torch must not come with it (it took a second on every
``predict`` and ``batch``).
"""
from importlib import import_module

_HOMES = {"Checkpoint": ".checkpoint", "load_checkpoint": ".checkpoint", "HybridGNet": ".model"}

__all__ = ["Checkpoint", "HybridGNet", "load_checkpoint"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
