"""chexmask-rt native core (C++): preprocessing, ONNX Runtime engine call, postprocessing.

Errors are raised as chexmask_rt.errors.InputError (bad images or arguments) and ModelError
(engine files, the ONNX Runtime library, failed engine runs; NonFiniteOutputError for NaN or
infinite answers). Opening an Engine, Engine.predict and predict_batch, preprocess, bit_depth,
letterbox, polygon_mask, decode_lossless_jpeg and check_dct_jpeg release the GIL while they work; an
Engine may be shared by many threads.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict, type_check_only

import numpy as np
import numpy.typing as npt

__version__: str  # the repository's VERSION, compiled in; equals chexmask_rt.__version__ when installed together
INTENDED_USE: str
MIN_SIDE: int
MAX_SIDE: int
MAX_SAMPLES: int
MAX_THREADS: int  # EngineOptions.threads: 1..MAX_THREADS, or None for one per physical core
MAX_ENGINE_INPUTSIZE: int  # an engine's inputsize: a multiple of 32 up to this
MAX_ENGINE_LATENTS: int  # an engine's latents: 1 up to this
SECOND_LOOK_FILL: float
CROP_ONLY_BELOW: float

@type_check_only  # the rows are plain dicts at run time: this names their keys for type checkers
class FieldRow(TypedDict):
    """One row of cpp/include/chexmask_rt/result_fields.def (its header explains the columns)."""
    name: str          # Result attribute and JSON key
    output: str        # the engine output it is read from
    kind: str          # "position" | "spread" | "vector" | "samples"
    unit: str          # "px" or ""
    required: bool     # False: None/empty unless the engine has the output
    two_looks: str     # "mean" | "pooled_std" | "concat"
    pooled_with: str   # pooled_std: its mean field; else the field itself
    json: bool         # a key of the JSON object
    csv: str           # its results.csv column, "" for none
    doc: str

RESULT_FIELDS: tuple[FieldRow, ...]
"""The engine-output fields of a Result, in the table's order: the one declaration of them."""

class ModelInfo:
    """What an engine says about itself, validated in the core; counts are the graph's."""
    @property
    def format_version(self) -> int: ...
    @property
    def inputsize(self) -> int: ...
    @property
    def latents(self) -> int: ...
    @property
    def landmarks(self) -> int: ...
    @property
    def organs(self) -> tuple[tuple[str, int], ...]:
        """(name, landmark count) in landmark order (metadata chexmask_rt.organs; default the HybridGNet 44/50/26)."""
    @property
    def skip(self) -> bool: ...
    @property
    def trained(self) -> bool: ...
    @property
    def has_samples_output(self) -> bool: ...
    @property
    def checkpoint_sha256(self) -> str: ...
    @property
    def landmark_offsets_sha256(self) -> str: ...
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
    @property
    def id(self) -> str:
        """"<model_name>:<model_version>"."""
    def __eq__(self, other: object) -> bool:
        """Every field equal (a pickled copy equals its original)."""
    def __hash__(self) -> int: ...

def parse_model_info(metadata: Mapping[str, str], source: str) -> ModelInfo:
    """Validate engine metadata alone (no session, no graph; landmarks: what the organs say);
    ModelError naming ``source``."""

class SecondLook:
    """How a second look made an answer."""
    @property
    def look(self) -> str: ...          # "pooled" | "crop_only" | "none"
    @property
    def first_fill(self) -> float: ...
    @property
    def crop_left(self) -> int: ...
    @property
    def crop_top(self) -> int: ...
    @property
    def crop_side(self) -> int: ...

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
    def assess(self, mean_node_std: float, mean_latent_sigma: float, height: int, width: int,
               spread_measured: bool = True) -> Quality: ...

def node_std_1024(mean_node_std: float, height: int, width: int) -> float:
    """Mean node std in px of the 1024 frame: mean_node_std * 1024 / max(height, width)."""

def default_quality_file(model_path: str) -> str:
    """<stem>.quality.json beside the model: where its calibration is read from when none is named."""

def link_target(path: str) -> str:
    """The file the symbolic link ``path`` names, '' for anything else: an engine's side files (its
    ``.sha256`` and ``.quality.json``) are looked for beside it where none is beside the link."""

def model_id_problem(model_name: str, model_version: str, dicom: bool = False) -> str:
    """What is wrong with a name and version as an engine's metadata (results carry them as
    name:version: not empty, no backslash or control character, no ':' in the version), "" when
    nothing; the core refuses an engine whose metadata has one. ``dicom``: also a version over 64
    characters, which DICOM outputs cannot carry (the exporter refuses it)."""

class Result:
    """One image's result in original pixels; array properties return fresh copies.

    One property per row of RESULT_FIELDS (position/spread: (N, 2); vector: (latents,);
    samples: (K, N, 2) or None), plus the scores below. tests/test_core_stub.py checks that the table
    properties here are the table's rows."""
    @property
    def landmarks(self) -> npt.NDArray[np.float64]: ...  # (N, 2)
    @property
    def landmarks_std(self) -> npt.NDArray[np.float64]: ...  # (N, 2)
    @property
    def landmarks_mu(self) -> npt.NDArray[np.float64]: ...  # (N, 2)
    @property
    def latent_mu(self) -> npt.NDArray[np.float64]: ...  # (latents,)
    @property
    def latent_sigma(self) -> npt.NDArray[np.float64]: ...  # (latents,)
    @property
    def landmark_samples(self) -> npt.NDArray[np.float64] | None: ...  # (K, N, 2); None without the output
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
    def bit_depth(self) -> int:
        """The depth the pixels were scaled by (given or inferred): 8, 9..16, or 32 for float."""
    @property
    def second_look(self) -> SecondLook | None:
        """How a second look made this answer; None: one call."""
    @property
    def quality(self) -> Quality:
        """The reliability flag of this final answer."""
    @property
    def spread_measured(self) -> bool:
        """False for one decode (samples 1, no pooled look): the std is 0, not measured."""

class Engine:
    def __init__(self, model_path: str, onnxruntime_library: str = "", intra_op_threads: int = 0,
                 layout_optimizations: bool = False, memory_pattern: bool = False, device: str = "cpu",
                 tensorrt_cache_dir: str = "", quality_file: str = "", images_per_call: int = 0,
                 expected_sha256: str = "") -> None:
        """Open a chexmask-rt ONNX engine. onnxruntime_library: path of libonnxruntime.so.1.* (""
        -> $CHEXMASK_RT_ONNXRUNTIME_LIBRARY, else the loader's search path); the first Engine fixes
        it for the process. intra_op_threads 0: one per physical core the process may use. layout_optimizations,
        memory_pattern, device, tensorrt_cache_dir, images_per_call and expected_sha256: see chexmask_rt.EngineOptions. quality_file: the
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
        """Gray [H, W] (or [H, W, 1]) uint8, uint16 (bit_depth 9..16; None: inferred from the largest
        value, content <= 255 as uint8) or float32 in [0, 1].
        second_look: a second engine call on a crop around the first answer's lungs (README, "The second look");
        None: the engine's own default (info.second_look)."""
    def predict_batch(self, images: list[npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32]],
                      samples: int, seed: int = 0,
                      bit_depth: int | Sequence[int | None] | None = None,
                      second_look: bool | None = None) -> list[Result]:
        """The images sharing one eps, images_per_call to an engine call (0, the default: one per call
        on the CPU, each image bit-identical to its own predict; all on a GPU); a second look's crops
        go in a second round of calls. bit_depth: one for all, or one per image (the core ignores it
        for uint8 and float32 images)."""

def latent_noise(samples: int, latents: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """eps [samples, latents], generator splitmix64-boxmuller-v1 (as tests/reference/sampling.py)."""

def preprocess(image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32], size: int,
               bit_depth: int | None = None) -> tuple[npt.NDArray[np.float32], int, int, int]:
    """(engine input [size, size], side, pad_left, pad_top): the image letterboxed, divided by its full scale."""

def bit_depth(image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.float32],
              bit_depth: int | None = None) -> int:
    """The depth the core reads a gray image at: 8, 9..16 or 32 (float); a uint16 image without bit_depth
    is inferred as predict infers it (the fewest bits that hold its largest value; content <= 255: 8).
    Full scale: 2**depth - 1 (1 for 32)."""

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

def polygon_mask(points: npt.ArrayLike, height: int, width: int) -> npt.NDArray[np.uint8]:
    """uint8 [height, width] 0/255 filled polygon of float64 (N, 2) (x, y) points, equal to cv2.fillPoly of
    them clamped to +-4 * max(height, width) and truncated to int32 (chexmask_rt.rle.polygon_mask)."""

def decode_lossless_jpeg(data: bytes, max_pixels: int) -> tuple[npt.NDArray[np.uint16], int]:
    """(uint16 [rows, columns] samples, sample precision) of a one-component lossless JPEG (SOF3), as DICOM's
    JPEG Lossless syntaxes hold it; damaged data is an InputError, never filled in."""

def check_dct_jpeg(data: bytes) -> int:
    """The sample precision of a sequential Huffman DCT JPEG (SOF0/SOF1, 8 or 12 bits), checked without
    decoding it: damaged entropy-coded data, which libjpeg-turbo fills in with a warning, is an InputError."""

INTEGRITY_KEY: str
SEAL_ENTRIES: tuple[tuple[str, str], ...]
"""The metadata entries an export adds first, before seal_engine: the SHA-256's, unset, and the mark
that the engine is sealed (so that damage to the first one's key cannot hide the seal)."""

def seal_engine(data: bytes) -> bytes:
    """The engine's bytes with its INTEGRITY_KEY entry, written as 64 '0's, set to the SHA-256 of them: what
    the core checks each engine against when it opens it."""

def sha256_hex(data: bytes) -> str:
    """SHA-256 of the bytes as 64 lowercase hex digits, as the core checks engine files with it."""

def onnxruntime_library() -> str:
    """Path of the ONNX Runtime library this process loaded ('' before the first Engine)."""
def usable_cores() -> int:
    """Physical cores this process may use (CPU affinity, at most the cgroup's CPU quota): an engine's
    threads when none are given; 0 where Linux does not say."""
