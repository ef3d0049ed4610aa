"""chexmask-rt: landmark-based chest X-ray segmentation with uncertainty.

    import chexmask_rt
    seg = chexmask_rt.load()                 # the shipped default model
    r = seg.predict("chest.png", samples=50)
    r.landmarks, r.landmarks_std, r.mean_node_std
"""
from .backends import EngineOptions
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError
from .metadata import ModelInfo
from .model import Segmenter, default_model_path, load
from .result import Result

__version__ = "0.1.0"

__all__ = ["ChexmaskError", "EngineOptions", "InputError", "ModelError", "ModelInfo", "NonFiniteOutputError", "Result",
           "Segmenter", "default_model_path", "load", "__version__"]
