"""The user-facing segmenter: image -> preprocess -> engine -> postprocess -> Result."""
from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np

from .backends import Backend, EngineOptions
from .errors import InputError, ModelError
from .frames import Letterbox
from .image_io import read_image
from .metadata import ModelInfo
from .preprocess import preprocess, resolved_bit_depth, to_gray
from .quality import load_assessor
from .result import Result
from .second_look import combine, crop_square, second_look_square, without_second_look
from .sampling import latent_noise

ImageLike = Union[str, os.PathLike, np.ndarray]
DEFAULT_SAMPLES = 50  # as in the CheXmask-U paper
MAX_SAMPLES = 10_000
DEFAULT_BATCH = 8


def default_model_path() -> Path:
    """Path of the engine shipped inside the package (see MODEL_CARD.md)."""
    return Path(str(resources.files("chexmask_rt") / "models" / "default.onnx"))


def _open_segmenter(path: Path, backend: str, options: EngineOptions) -> "Segmenter":
    """'auto': the native core when built (else the Python path, with a warning); 'native' / 'python': forced."""
    if backend not in ("auto", "native", "python"):
        raise ModelError(f"unknown backend {backend!r}; choose 'auto', 'native' or 'python'")
    if backend in ("auto", "native"):
        from .backends import native
        if native.available():
            return native.NativeSegmenter(path, options)
        if backend == "native" or native.core_built():
            # asked for, or built but not loadable (other Python, missing libopencv...): never a silent fallback
            raise ModelError(f"the native core chexmask_rt._core cannot be loaded ({native.IMPORT_ERROR}); "
                             "rebuild it with 'pip install .' or pass backend='python'")
        warnings.warn("chexmask_rt._core is not built; using the Python reference backend "
                      "('pip install .' builds the native core)", NativeCoreMissingWarning, stacklevel=3)
    from .backends.onnxruntime import OnnxRuntimeBackend
    return Segmenter(OnnxRuntimeBackend(path, options), path)


def load(model: str | os.PathLike | None = None, *, backend: str = "auto", threads: int | None = None,
         device: str | None = None, engine_options: EngineOptions | None = None) -> "Segmenter":
    """Open an engine written by ``chexmask-rt export`` (default: the shipped model).

    ``backend``: 'auto' (the native C++ core when built), 'native', or 'python'
    (the onnxruntime Python reference path). ``threads``: intra-op threads
    (default: one per physical core); it overrides ``engine_options.threads``.
    ``device``: 'cpu' (default), 'cuda' or 'tensorrt', through ONNX Runtime's execution
    providers (:mod:`chexmask_rt.devices`; ``Segmenter.providers`` says what runs); it
    overrides ``engine_options.device``.
    ``engine_options``: ONNX Runtime session settings (see :class:`EngineOptions`).
    Raises ModelError when the file is missing or not a chexmask-rt engine, or when the
    installed onnxruntime lacks the device's provider.
    """
    path = default_model_path() if model is None else Path(model)
    options = engine_options or EngineOptions()
    if threads is not None:
        options = dataclasses.replace(options, threads=threads)
    if device is not None:
        options = dataclasses.replace(options, device=device)
    segmenter = _open_segmenter(path, backend, options)
    if not segmenter.info.trained:
        warnings.warn(f"{path.name} is an UNTRAINED model, its landmarks are meaningless "
                      f"({segmenter.info.model_name}:{segmenter.info.model_version})",
                      UntrainedModelWarning, stacklevel=2)
    return segmenter


class NativeCoreMissingWarning(RuntimeWarning):
    """chexmask_rt._core is not built, so the slower Python reference path runs."""


class UntrainedModelWarning(UserWarning):
    """The engine was exported from untrained weights (a placeholder)."""


def check_run_arguments(samples: int, seed: int, batch_size: int) -> tuple[int, int]:
    """Validate what every backend's predict_batch takes; returns (samples, seed) as ints."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise InputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    return int(samples), int(seed)


def load_item(item: ImageLike) -> tuple[np.ndarray, str | None]:
    """A path (decoded here) or an array -> (array, file name or None)."""
    if isinstance(item, np.ndarray):
        return item, None
    if isinstance(item, (str, os.PathLike)):
        return read_image(item), os.fspath(item)
    raise InputError(f"expected an image path or a numpy array, got {type(item).__name__}")


class Segmenter:
    """A loaded engine. Thread-safe: one instance may serve many threads."""

    def __init__(self, backend: Backend, path: Path):
        self._backend = backend
        self.path = path
        self._assess = load_assessor(path, backend.info.checkpoint_sha256)

    @property
    def info(self) -> ModelInfo:
        return self._backend.info

    @property
    def providers(self) -> list[str]:
        """ONNX Runtime execution providers the engine runs on, best first (e.g. ['CPUExecutionProvider'])."""
        return list(self._backend.providers)

    @property
    def backend(self) -> str:
        """Which implementation runs the engine: 'native' (the C++ core) or 'python' (onnxruntime's Python API)."""
        return self._backend.name

    @property
    def inputsize(self) -> int:
        return self.info.inputsize

    @property
    def model_id(self) -> str:
        return f"{self.info.model_name}:{self.info.model_version}"

    def predict(self, image: ImageLike, *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                bit_depth: int | None = None, second_look: bool | None = None) -> Result:
        """Segment one image (a file path or an array) with ``samples`` latent draws.

        Same image, samples and seed -> bit-identical result on the same machine.
        ``bit_depth``: significant bits of a uint16 image (9-16); None infers them from its largest
        value (``chexmask_rt.preprocess.significant_bits``).
        ``second_look``: a second engine call on a square crop around the first answer's lungs,
        combined with the first (``chexmask_rt.second_look``; ``result.extra["second_look"]`` says
        how). It takes twice the time; False returns the one engine call's answer. None (the
        default) takes the engine's own setting, ``info.second_look``: on for the shipped model,
        off for engines exported without ``--second-look`` (published checkpoints answer as upstream).
        """
        return self.predict_batch([image], samples=samples, seed=seed, bit_depth=bit_depth,
                                  second_look=second_look)[0]

    def predict_batch(self, images: Sequence[ImageLike] | Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES,
                      seed: int = 0, bit_depth: int | None = None, batch_size: int = DEFAULT_BATCH,
                      second_look: bool | None = None) -> list[Result]:
        """Segment several images; each chunk of ``batch_size`` is one engine call sharing one eps
        (their crops another). ``second_look`` as in ``predict``."""
        samples, seed = check_run_arguments(samples, seed, batch_size)
        images = list(images)
        second_look = self.info.second_look if second_look is None else bool(second_look)
        return self._run_batch(images, samples, seed, [bit_depth] * len(images), batch_size, second_look)

    @staticmethod
    def _gray(item: ImageLike, bit_depth: int | None) -> tuple[np.ndarray, int, str | None]:
        """Any accepted image -> (gray uint8/uint16/float32 array, its resolved bit depth, file name);
        no copy for gray arrays."""
        array, name = load_item(item)
        gray, full_scale = to_gray(array, name=name or "array", bit_depth=bit_depth)
        return gray, resolved_bit_depth(gray, full_scale), name

    def _run_batch(self, images: list[ImageLike], samples: int, seed: int, bit_depths: list[int | None],
                   batch_size: int, second_look: bool) -> list[Result]:
        """One result per image; ``bit_depths`` holds each image's ``bit_depth`` argument. Each chunk
        of ``batch_size`` images is decoded once and makes one engine call, its crops a second."""
        eps = latent_noise(samples, self.info.latents, seed)
        results: list[Result] = []
        for start in range(0, len(images), batch_size):
            chunk = [self._gray(item, depth) for item, depth in
                     zip(images[start:start + batch_size], bit_depths[start:start + batch_size])]
            firsts = self._one_look(chunk, eps, samples, seed)
            if second_look:
                squares = {i: sq for i, r in enumerate(firsts) if (sq := second_look_square(r)) is not None}
                # a crop keeps its image's bit depth: inferred afresh, a crop without the brightest pixels could
                # differ; and each lives only while it is preprocessed (a generator), as in the C++ core
                crops = ((crop_square(chunk[i][0], *sq), chunk[i][1], None) for i, sq in squares.items())
                seconds = self._one_look(crops, eps, samples, seed) if squares else []
                for (i, sq), second in zip(squares.items(), seconds):
                    firsts[i] = self._with_quality(combine(firsts[i], second, *sq))
                firsts = [r if i in squares else without_second_look(r) for i, r in enumerate(firsts)]
            results.extend(firsts)
        return results

    def _one_look(self, grays: Iterable[tuple[np.ndarray, int, str | None]], eps: np.ndarray, samples: int,
                  seed: int) -> list[Result]:
        """One engine call for (gray, bit depth, name) triples as ``_gray`` returns them."""
        prepared = [(*preprocess(gray, self.inputsize, name=name or "array", bit_depth=depth), name)
                    for gray, depth, name in grays]
        out = self._backend.run(np.stack([tensor for tensor, _, _ in prepared])[:, None], eps)
        return [self._postprocess(out, i, frame, name, samples, seed) for i, (_, frame, name) in enumerate(prepared)]

    def _with_quality(self, result: Result) -> Result:
        """Attach the reliability flag; both backends go through here so their results stay identical."""
        quality = self._assess(result.mean_node_std, result.mean_latent_sigma, result.height, result.width)
        return dataclasses.replace(result, quality=quality)

    def _postprocess(self, out, i: int, frame: Letterbox, name: str | None, samples: int, seed: int) -> Result:
        return self._with_quality(Result(
            landmarks=frame.to_original(out.landmarks_mean[i]),
            landmarks_std=frame.scale_to_original(out.landmarks_std[i]),
            landmarks_mu=frame.to_original(out.landmarks_mu[i]),
            latent_mu=out.latent_mu[i].astype(np.float64),
            latent_sigma=out.latent_sigma[i].astype(np.float64),
            height=frame.height, width=frame.width, samples=samples, seed=int(seed),
            model=self.model_id, image=name,
        ))
