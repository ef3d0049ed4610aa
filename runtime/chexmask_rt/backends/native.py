"""The native backend: preprocessing, the engine call, postprocessing and the second look
in C++ (``chexmask_rt._core``), with the GIL released for all of them.

Results equal the Python reference path (``backend="python"``) for the same
engine, image, samples and seed: same preprocessing arithmetic, same eps
generator, same back-projection.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from ..devices import MISSING_ONNXRUNTIME
from ..errors import ModelError
from ..metadata import ModelInfo
from ..model import ImageLike, Segmenter
from ..result import Result
from . import EngineOptions

try:
    from .. import _core
    IMPORT_ERROR: str | None = None
except ImportError as exc:  # not built, or built against another Python/ABI
    _core = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


def core_built() -> bool:
    """True when a _core extension file sits in the package, loadable or not."""
    package = Path(__file__).resolve().parent.parent
    return any(package.glob("_core.*.so")) or any(package.glob("_core.*.pyd"))


def available() -> bool:
    return _core is not None


def onnxruntime_library() -> str:
    """libonnxruntime inside the installed onnxruntime Python package (what the Python path runs too)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(MISSING_ONNXRUNTIME)
    capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
    found = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.1*")) + glob.glob(os.path.join(capi, "onnxruntime.dll")))
    if not found:
        raise ModelError(f"no libonnxruntime.so.1* in {capi}; reinstall onnxruntime")
    return found[0]


class _NativeBackend:
    """What Segmenter needs of a backend; predictions go through NativeSegmenter._run_batch."""

    name = "native"

    def __init__(self, engine, info: ModelInfo, path: Path, engine_options: EngineOptions):
        self.engine = engine
        self.info = info
        self.providers = list(engine.providers)
        self._path, self._options = path, engine_options
        self._raw = None
        self._lock = threading.Lock()

    def run(self, images: np.ndarray, eps: np.ndarray):
        """Raw engine outputs for preprocessed input (diagnostics and tests only): the native core takes
        images, not tensors, so this uses onnxruntime's Python session on the same file, opened on first use."""
        with self._lock:
            if self._raw is None:
                from .onnxruntime import OnnxRuntimeBackend
                self._raw = OnnxRuntimeBackend(self._path, self._options)
        return self._raw.run(images, eps)


class NativeSegmenter(Segmenter):
    """Segmenter whose whole pipeline runs in C++. Thread-safe like Segmenter."""

    def __init__(self, path: str | os.PathLike, engine_options: EngineOptions = EngineOptions(),
                 library: str | None = None):
        if _core is None:
            raise ModelError(f"the native core chexmask_rt._core cannot be loaded ({IMPORT_ERROR})")
        path = Path(path)
        engine = _core.Engine(str(path), library or onnxruntime_library(), int(engine_options.threads or 0),
                              engine_options.layout_optimizations, engine_options.memory_pattern,
                              engine_options.device, engine_options.tensorrt_cache_dir or "")
        info = ModelInfo.from_metadata(dict(engine.info.metadata), str(path))
        super().__init__(_NativeBackend(engine, info, path, engine_options), path)
        self._engine = engine

    def _run_batch(self, images: list[ImageLike], samples: int, seed: int, bit_depths: list[int | None],
                   batch_size: int, second_look: bool, max_pixels: int) -> list[Result]:
        results: list[Result] = []
        for start in range(0, len(images), batch_size):
            chunk = [self._gray(item, depth, max_pixels) for item, depth in
                     zip(images[start:start + batch_size], bit_depths[start:start + batch_size])]
            outs = self._engine.predict_batch([g for g, _, _ in chunk], samples, seed, [d for _, d, _ in chunk],
                                              second_look)
            results.extend(self._result(out, name) for out, (_, _, name) in zip(outs, chunk))
        return results

    def _result(self, out, name: str | None) -> Result:
        return self._checked(self._with_quality(Result(
            landmarks=out.landmarks, landmarks_std=out.landmarks_std, landmarks_mu=out.landmarks_mu,
            latent_mu=out.latent_mu, latent_sigma=out.latent_sigma,
            height=out.height, width=out.width, samples=out.samples, seed=int(out.seed),
            model=self.model_id, image=name,
            extra={} if out.second_look is None else {"second_look": out.second_look.to_dict()},
            landmark_samples=out.landmark_samples,
        )))
