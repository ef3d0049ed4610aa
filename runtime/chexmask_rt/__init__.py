"""chexmask-rt: landmark-based chest X-ray segmentation with uncertainty.

    import chexmask_rt
    seg = chexmask_rt.load()                 # the shipped default model
    r = seg.predict("chest.png", samples=50)
    r.landmarks, r.landmarks_std, r.mean_node_std
"""
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError, OutOfMemoryError
from .measures import Measures
from .model import EngineOptions, ModelInfo, Segmenter, UntrainedModelWarning, default_model_path, load
from .quality import Quality
from .result import Result, SecondLook
from .version import __version__

__all__ = ["ChexmaskError", "EngineOptions", "InputError", "Measures", "ModelError", "ModelInfo",
           "NonFiniteOutputError", "OutOfMemoryError", "Quality", "Result", "SecondLook", "Segmenter", "UntrainedModelWarning",
           "default_model_path", "load", "__version__"]
