"""chexmask-rt: landmark-based chest X-ray segmentation with uncertainty.

    import chexmask_rt
    seg = chexmask_rt.load()                 # the shipped default model
    r = seg.predict("chest.png", samples=50)
    r.landmarks, r.landmarks_std, r.mean_node_std
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The public names load on first use (PEP 562): the command (chexmask_rt.cli) starts without numpy and
# the core, so --help is quick and a Ctrl-C while they load reaches its handler (it printed a traceback).
_HOMES = {"ChexmaskError": "errors", "InputError": "errors", "ModelError": "errors",
          "NonFiniteOutputError": "errors", "OutOfMemoryError": "errors", "Measures": "measures",
          "EngineOptions": "model", "ModelInfo": "model", "Segmenter": "model", "UntrainedModelWarning": "model",
          "default_model_path": "model", "load": "model", "Quality": "quality", "Result": "result",
          "SecondLook": "result", "__version__": "version"}

if TYPE_CHECKING:
    from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError, OutOfMemoryError
    from .measures import Measures
    from .model import EngineOptions, ModelInfo, Segmenter, UntrainedModelWarning, default_model_path, load
    from .quality import Quality
    from .result import Result, SecondLook
    from .version import __version__

__all__ = ["ChexmaskError", "EngineOptions", "InputError", "Measures", "ModelError", "ModelInfo",
           "NonFiniteOutputError", "OutOfMemoryError", "Quality", "Result", "SecondLook", "Segmenter",
           "UntrainedModelWarning", "default_model_path", "load", "__version__"]


if not TYPE_CHECKING:  # for type checkers the imports above are the names: a misspelt one stays an error
    def __getattr__(name: str) -> Any:
        """A public name from its module, or a submodule (``chexmask_rt.core``), loaded on first use."""
        home = _HOMES.get(name)
        if home is not None:
            value = getattr(importlib.import_module(f".{home}", __name__), name)
            globals()[name] = value
            return value
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # the submodule exists but an import inside it failed
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
