"""chexmask-rt: landmark-based chest X-ray segmentation with uncertainty.

    import chexmask_rt
    seg = chexmask_rt.load()                 # the shipped default model
    r = seg.predict("chest.png", samples=50)
    r.landmarks, r.landmarks_std, r.mean_node_std
"""
from importlib.metadata import PackageNotFoundError, version as _distribution_version

from .backends import EngineOptions
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError
from .metadata import ModelInfo
from .model import Segmenter, default_model_path, load
from .result import Result

try:
    __version__ = _distribution_version("chexmask-rt")  # single-sourced from the repository's VERSION file
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["ChexmaskError", "EngineOptions", "InputError", "ModelError", "ModelInfo", "NonFiniteOutputError", "Result",
           "Segmenter", "default_model_path", "load", "__version__"]
