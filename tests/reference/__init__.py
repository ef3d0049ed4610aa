"""The independent reference pipeline the native core is checked against (test oracle, not shipped).

NumPy + onnxruntime's Python API, written apart from the C++ core so that the two can be compared:
8-bit images must give bit-identical engine inputs and landmarks within 1e-3 px, 16-bit images
within 1e-3 px. It reproduces what the runtime's Python backend's ``predict_batch`` did
before the core became the only pipeline (the reliability flag excluded):

* :mod:`.preprocess` and :mod:`.resize`: gray conversion, bit depth, letterbox and the
  padded-window bilinear resize (OpenCV's arithmetic);
* :mod:`.frames`: the letterbox frame (original pixels <-> the normalised square);
* :mod:`.sampling`: the latent noise (SplitMix64 + Box-Muller, generator version 1);
* :mod:`.second_look`: the crop around the lungs and how two looks combine;
* :mod:`.session`: the engine through onnxruntime;
* :mod:`.pipeline`: :func:`reference_predict` and :class:`ReferenceSegmenter`, the whole path.

Tests import it as ``reference``; benchmarks and tools as ``tests.reference``.
"""
from .frames import Letterbox
from .pipeline import ReferenceResult, ReferenceSegmenter, reference_predict
from .preprocess import letterbox, preprocess, significant_bits, to_gray
from .resize import resize_window
from .sampling import latent_noise

__all__ = ["Letterbox", "ReferenceResult", "ReferenceSegmenter", "latent_noise", "letterbox", "preprocess",
           "reference_predict", "resize_window", "significant_bits", "to_gray"]
