"""chexmask-rt native core (C++): preprocessing, ONNX Runtime engine call, postprocessing.

Errors are raised as chexmask_rt.errors.InputError / ModelError (ChexmaskError for
engine-run failures). Every call releases the GIL while it works; an Engine may be
shared by many threads.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__version__: str  # the repository's VERSION, compiled in; equals chexmask_rt.__version__ when installed together
INTENDED_USE: str
MIN_SIDE: int
MAX_SIDE: int
MAX_SAMPLES: int
SECOND_LOOK_FILL: float
CROP_ONLY_BELOW: float

class ModelInfo:
    @property
    def format_version(self) -> int: ...
    @property
    def inputsize(self) -> int: ...
    @property
    def latents(self) -> int: ...
    @property
    def skip(self) -> bool: ...
    @property
    def trained(self) -> bool: ...
    @property
    def checkpoint_sha256(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def second_look(self) -> bool: ...
    @property
    def metadata(self) -> dict[str, str]: ...

class Quality:
    """The reliability flag of one result (chexmask_rt.quality)."""
    @property
    def flag(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def calibrated(self) -> bool: ...
    def to_dict(self) -> dict[str, bool | str]: ...

class QualityAssessor:
    """The reliability flag's thresholds of one engine, as the core applies them to its own results."""
    def __init__(self, model_path: str, quality_file: str, checkpoint_sha256: str) -> None:
        """quality_file "": <model stem>.quality.json beside model_path when it exists ("" model_path: none);
        one named but missing or malformed raises ModelError."""
    def assess(self, mean_node_std: float, mean_latent_sigma: float, height: int, width: int) -> Quality: ...

def node_std_1024(mean_node_std: float, height: int, width: int) -> float:
    """Mean node std in px of the 1024 frame: mean_node_std * 1024 / max(height, width)."""

def default_quality_file(model_path: str) -> str:
    """<stem>.quality.json beside the model: where its calibration is read from when none is named."""

class Result:
    """One image's result in original pixels; array properties return fresh copies."""
    @property
    def landmarks(self) -> npt.NDArray[np.float64]: ...         # (N, 2)
    @property
    def landmarks_std(self) -> npt.NDArray[np.float64]: ...     # (N, 2)
    @property
    def landmarks_mu(self) -> npt.NDArray[np.float64]: ...      # (N, 2)
    @property
    def landmark_samples(self) -> npt.NDArray[np.float64] | None: ...  # (K, N, 2); engines with --samples-output
    @property
    def latent_mu(self) -> npt.NDArray[np.float64]: ...         # (latents,)
    @property
    def latent_sigma(self) -> npt.NDArray[np.float64]: ...      # (latents,)
    @property
    def node_uncertainty(self) -> npt.NDArray[np.float64]: ...  # (N,)
    @property
    def mean_node_std(self) -> float: ...
    @property
    def mean_latent_sigma(self) -> float: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def second_look(self) -> dict[str, str | float | int] | None:
        """How a second look made this answer (keys as chexmask_rt.second_look.combine writes); None: one call."""
    @property
    def quality(self) -> Quality:
        """The reliability flag of this final answer."""

class Engine:
    def __init__(self, model_path: str, onnxruntime_library: str = "", intra_op_threads: int = 0,
                 layout_optimizations: bool = False, memory_pattern: bool = False, device: str = "cpu",
                 tensorrt_cache_dir: str = "", quality_file: str = "") -> None:
        """Open a chexmask-rt ONNX engine. onnxruntime_library: path of libonnxruntime.so.1.* (""
        -> $CHEXMASK_RT_ONNXRUNTIME_LIBRARY, else the loader's search path); the first Engine fixes
        it for the process. intra_op_threads 0: one per physical core. layout_optimizations,
        memory_pattern, device and tensorrt_cache_dir: see chexmask_rt.EngineOptions. quality_file: the
        reliability flag's calibration ("": <model stem>.quality.json beside the model, when it exists).
        Results holding NaN or infinity raise chexmask_rt.errors.NonFiniteOutputError (index: the image's
        position in the batch)."""
    @property
    def info(self) -> ModelInfo: ...
    @property
    def providers(self) -> list[str]:
        """ONNX Runtime execution providers the session was created with, best first."""
    def predict(self, image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32],
                samples: int, seed: int = 0, bit_depth: int | None = None, second_look: bool | None = None) -> Result:
        """Gray [H, W] (or [H, W, 1]) uint8, uint16 (bit_depth 9..16, default 16) or float32 in [0, 1].
        second_look: a second engine call on a crop around the first answer's lungs (chexmask_rt.second_look);
        None: the engine's own default (info.second_look)."""
    def predict_batch(self, images: list[npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32]],
                      samples: int, seed: int = 0,
                      bit_depth: int | Sequence[int | None] | None = None,
                      second_look: bool | None = None) -> list[Result]:
        """All images in one engine call (their crops in a second one), sharing one eps. bit_depth:
        one for all, or one per image (the core ignores it for uint8 and float32 images)."""

def latent_noise(samples: int, latents: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """eps [samples, latents], generator splitmix64-boxmuller-v1 (as tests/reference/sampling.py)."""

def preprocess(image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32], size: int,
               bit_depth: int | None = None) -> tuple[npt.NDArray[np.float32], int, int, int]:
    """(engine input [size, size], side, pad_left, pad_top): the image letterboxed, divided by its full scale."""

def letterbox(image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32], size: int
              ) -> tuple[npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32], Letterbox]:
    """(the gray image zero-padded to its centred square and resized to [size, size] in its own dtype
    and levels, unscaled; its frame): the engine input before the division by full scale."""

class Letterbox:
    """Geometry of the centred zero-pad of a height x width image (1..MAX_SIDE each) to a square of
    side max(h, w); the core back-projects every engine answer with it."""
    def __init__(self, height: int, width: int) -> None: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def side(self) -> int: ...
    @property
    def pad_left(self) -> int: ...
    @property
    def pad_top(self) -> int: ...
    def to_original(self, points_norm: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Normalised (x, y) in [0, 1] of the square, shape (..., 2) -> original pixels."""
    def scale_to_original(self, lengths_norm: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Normalised lengths (e.g. stds), any shape -> original pixels (scaled, not moved)."""
    def to_normalised(self, points_px: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Original pixels, shape (..., 2) -> normalised (x, y) of the square."""

def onnxruntime_library() -> str:
    """Path of the ONNX Runtime library this process loaded ('' before the first Engine)."""
