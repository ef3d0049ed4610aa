"""The user-facing segmenter: image -> preprocess -> engine -> postprocess -> Result."""
from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np

from .backends import Backend, EngineOptions
from .dicom_source import with_source
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError, first_line
from .frames import Letterbox
from .image_io import read_image
from .limits import check_pixels, resolve_max_pixels
from .metadata import ModelInfo, file_sha256
from .preprocess import preprocess, resolved_bit_depth, to_gray
from .quality import Quality
from .result import Result
from .second_look import combine, second_look_square, without_second_look
from .sampling import latent_noise

ImageLike = Union[str, os.PathLike, np.ndarray]
DEFAULT_SAMPLES = 50  # as in the CheXmask-U paper
MAX_SAMPLES = 10_000
# Images per engine call when the caller does not choose (batch_size=None). Measured with
# `python -m benchmarks.run --throughput` (native, K = 50, 2 cores, quiet machine, 2026-12-05):
# single images are the fastest at both sizes (1024: 8.95 images/s against 7.59 for 4 and 7.15
# for 8; 512: 23.0 against 21.7 and 19.3) and need the least memory, because the engine's fused
# per-image norms run only at batch 1 (README, Performance).
DEFAULT_BATCH = 1


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
    backend = OnnxRuntimeBackend(path, options)
    return Segmenter(backend, path, _reference_assessor(path, backend.info.checkpoint_sha256))


def _reference_assessor(path: Path, checkpoint_sha256: str):
    """The core's reliability flag for the Python reference path, whose results are made outside the core."""
    try:
        from . import _core
    except ImportError as exc:
        raise ModelError(f"the reliability flag needs the native core chexmask_rt._core ({first_line(exc)}); "
                         "rebuild it with 'pip install .'") from None
    return _core.QualityAssessor(str(path), "", checkpoint_sha256)


def load(model: str | os.PathLike | None = None, *, backend: str = "auto", threads: int | None = None,
         device: str | None = None, engine_options: EngineOptions | None = None,
         max_pixels: int | None = None) -> "Segmenter":
    """Open an engine written by ``chexmask-rt export`` (default: the shipped model).

    ``backend``: 'auto' (the native C++ core when built), 'native', or 'python'
    (the onnxruntime Python reference path). ``threads``: intra-op threads
    (default: one per physical core); it overrides ``engine_options.threads``.
    ``device``: 'cpu' (default), 'cuda' or 'tensorrt', through ONNX Runtime's execution
    providers (:mod:`chexmask_rt.devices`; ``Segmenter.providers`` says what runs); it
    overrides ``engine_options.device``.
    ``engine_options``: ONNX Runtime session settings (see :class:`EngineOptions`).
    ``max_pixels``: this segmenter's pixel limit (:mod:`chexmask_rt.limits`; default:
    ``$CHEXMASK_RT_MAX_PIXELS`` at each call, else 64 MP).
    Raises ModelError when the file is missing or not a chexmask-rt engine, or when the
    installed onnxruntime lacks the device's provider.
    """
    if max_pixels is not None:
        resolve_max_pixels(max_pixels)  # a bad limit fails here, not at the first image
    path = default_model_path() if model is None else Path(model)
    options = engine_options or EngineOptions()
    if threads is not None:
        options = dataclasses.replace(options, threads=threads)
    if device is not None:
        options = dataclasses.replace(options, device=device)
    segmenter = _open_segmenter(path, backend, options)
    segmenter.max_pixels = max_pixels
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


def load_item(item: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, str | None]:
    """A path (decoded here) or an array -> (array, file name or None); either must lie within
    the pixel limit (:mod:`chexmask_rt.limits`)."""
    limit = resolve_max_pixels(max_pixels)
    if isinstance(item, np.ndarray):
        if item.ndim >= 2:
            check_pixels(item.shape[1], item.shape[0], "array", limit)
        return item, None
    if isinstance(item, (str, os.PathLike)):
        return read_image(item, max_pixels=limit), os.fspath(item)
    raise InputError(f"expected an image path or a numpy array, got {type(item).__name__}")


class Segmenter:
    """A loaded engine. Thread-safe: one instance may serve many threads."""

    def __init__(self, backend: Backend, path: Path, assess=None):
        self._backend = backend
        self.path = path
        self._assess = assess  # the Python reference path's quality assessor; the core assesses its own results
        self.max_pixels: int | None = None  # None: $CHEXMASK_RT_MAX_PIXELS at each call, else the default
        self._engine_sha256: str | None = None

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

    @property
    def engine_sha256(self) -> str:
        """sha256 of the engine file: what identifies the weights, where every plain export's
        ``model_id`` is ``hybridgnet:unversioned``. Hashed on first use."""
        if self._engine_sha256 is None:
            try:
                self._engine_sha256 = file_sha256(self.path)
            except OSError as exc:
                raise ModelError(f"{self.path}: cannot read the engine file ({exc.strerror or exc})") from None
        return self._engine_sha256

    def predict(self, image: ImageLike, *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                bit_depth: int | None = None, second_look: bool | None = None,
                max_pixels: int | None = None) -> Result:
        """Segment one image (a file path or an array) with ``samples`` latent draws.

        Same image, samples and seed -> bit-identical result on the same machine.
        ``bit_depth``: significant bits of a uint16 image (9-16); None infers them from its largest
        value (``chexmask_rt.preprocess.significant_bits``).
        ``second_look``: a second engine call on a square crop around the first answer's lungs,
        combined with the first (``chexmask_rt.second_look``; ``result.extra["second_look"]`` says
        how). It takes twice the time; False returns the one engine call's answer. None (the
        default) takes the engine's own setting, ``info.second_look``: on for the shipped model,
        off for engines exported without ``--second-look`` (published checkpoints answer as upstream).
        ``max_pixels``: the pixel limit for this call (default: the segmenter's, see ``load``).
        Non-finite engine outputs raise NonFiniteOutputError (a ModelError) naming the image.
        """
        return self.predict_batch([image], samples=samples, seed=seed, bit_depth=bit_depth,
                                  second_look=second_look, max_pixels=max_pixels)[0]

    def predict_batch(self, images: Sequence[ImageLike] | Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES,
                      seed: int = 0, bit_depth: int | None = None, batch_size: int | None = None,
                      second_look: bool | None = None, max_pixels: int | None = None) -> list[Result]:
        """Segment several images; each chunk of ``batch_size`` is one engine call sharing one eps
        (their crops another); None: :data:`DEFAULT_BATCH`, the measured best. ``second_look`` and ``max_pixels`` as in ``predict``.

        An image's result may differ from its result alone by float rounding: at most 1e-3 px
        (measured: up to 3.5e-4 px on the shared radiographs), because batched convolutions sum in another order."""
        batch_size = DEFAULT_BATCH if batch_size is None else batch_size
        samples, seed = check_run_arguments(samples, seed, batch_size)
        limit = resolve_max_pixels(self.max_pixels if max_pixels is None else max_pixels)
        images = list(images)
        second_look = self.info.second_look if second_look is None else bool(second_look)
        results = self._run_batch(images, samples, seed, [bit_depth] * len(images), batch_size, second_look, limit)
        return [with_source(r, item) for r, item in zip(results, images)]

    def predict_iter(self, inputs: Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                     bit_depth: int | None = None, batch_size: int | None = None, second_look: bool | None = None,
                     workers: int = 2, ahead: int | None = None) -> Iterator[tuple[ImageLike, "Result | ChexmaskError"]]:
        """Segment a stream of images: yields ``(input, Result | ChexmaskError)`` in input order.

        Unlike ``predict_batch``, which raises for the whole list when one image is bad, each input
        gets its own outcome: a file that cannot be read or an array that cannot be segmented yields
        its error and the rest go on. A ``ModelError`` (the engine itself failing) is raised.
        ``workers`` threads decode up to ``ahead`` images (default ``2 * batch_size``) beyond the chunk
        being segmented, so decoding overlaps the engine and at most ``batch_size + ahead`` decoded
        images are held. Results equal ``predict_batch``'s for the same chunks; other arguments as there.
        Use ``predict``/``predict_batch`` for a few images you trust, ``predict_iter`` for archives and
        anything that must not stop at one bad file (``chexmask_rt.streaming``).
        """
        from .streaming import predict_iter

        return predict_iter(self, inputs, samples=samples, seed=seed, bit_depth=bit_depth, batch_size=batch_size,
                            second_look=second_look, workers=workers, ahead=ahead)

    @staticmethod
    def _gray(item: ImageLike, bit_depth: int | None, max_pixels: int) -> tuple[np.ndarray, int, str | None]:
        """Any accepted image -> (gray uint8/uint16/float32 array, its resolved bit depth, file name);
        no copy for gray arrays."""
        array, name = load_item(item, max_pixels)
        gray, full_scale = to_gray(array, name=name or "array", bit_depth=bit_depth)
        return gray, resolved_bit_depth(gray, full_scale), name

    def _run_batch(self, images: list[ImageLike], samples: int, seed: int, bit_depths: list[int | None],
                   batch_size: int, second_look: bool, max_pixels: int) -> list[Result]:
        """One result per image; ``bit_depths`` holds each image's ``bit_depth`` argument. Each chunk
        of ``batch_size`` images is decoded once and makes one engine call, its crops a second."""
        eps = latent_noise(samples, self.info.latents, seed)
        results: list[Result] = []
        for start in range(0, len(images), batch_size):
            chunk = [self._gray(item, depth, max_pixels) for item, depth in
                     zip(images[start:start + batch_size], bit_depths[start:start + batch_size])]
            firsts = self._one_look([(*item, None) for item in chunk], eps, samples, seed)
            if second_look:
                squares = {i: sq for i, r in enumerate(firsts) if (sq := second_look_square(r)) is not None}
                # a crop keeps its image's bit depth: inferred afresh, a crop without the brightest pixels could
                # differ; and it is read in place, never copied out, as in the C++ core
                crops = [(chunk[i][0], chunk[i][1], None, sq) for i, sq in squares.items()]
                seconds = self._one_look(crops, eps, samples, seed) if squares else []
                for (i, sq), second in zip(squares.items(), seconds):
                    firsts[i] = self._with_quality(combine(firsts[i], second, *sq))
                firsts = [r if i in squares else without_second_look(r) for i, r in enumerate(firsts)]
            results.extend(firsts)
        return results

    def _one_look(self, items: Iterable[tuple[np.ndarray, int, str | None, tuple[int, int, int] | None]],
                  eps: np.ndarray, samples: int, seed: int) -> list[Result]:
        """One engine call for (gray, bit depth, name, square) as ``_gray`` returns the first three;
        ``square`` is the second look's (left, top, side) crop, None for the whole image."""
        prepared = [(*preprocess(gray, self.inputsize, name=name or "array", bit_depth=depth, square=square), name)
                    for gray, depth, name, square in items]
        out = self._backend.run(np.stack([tensor for tensor, _, _ in prepared])[:, None], eps)
        return [self._postprocess(out, i, frame, name, samples, seed) for i, (_, frame, name) in enumerate(prepared)]

    def _with_quality(self, result: Result) -> Result:
        """Attach the reliability flag, assessed by the core as it assesses its own results."""
        quality = self._assess.assess(result.mean_node_std, result.mean_latent_sigma, result.height, result.width)
        return dataclasses.replace(result, quality=Quality.from_core(quality))

    def _checked(self, result: Result) -> Result:
        """The result, unless the engine's answer holds NaN or infinity (which would reach the JSON
        as bare NaN tokens and the CSV as 'nan'): the Python reference path's copy of the core's check."""
        values = (result.landmarks, result.landmarks_std, result.landmarks_mu, result.latent_mu, result.latent_sigma)
        if not all(np.all(np.isfinite(v)) for v in values):
            raise NonFiniteOutputError(f"{result.image or 'array'}: the engine {self.path.name} returned NaN or "
                                       "infinite values for this image; the engine is faulty")
        return result

    def _postprocess(self, out, i: int, frame: Letterbox, name: str | None, samples: int, seed: int) -> Result:
        return self._checked(self._with_quality(Result(
            landmarks=frame.to_original(out.landmarks_mean[i]),
            landmarks_std=frame.scale_to_original(out.landmarks_std[i]),
            landmarks_mu=frame.to_original(out.landmarks_mu[i]),
            latent_mu=out.latent_mu[i].astype(np.float64),
            latent_sigma=out.latent_sigma[i].astype(np.float64),
            height=frame.height, width=frame.width, samples=samples, seed=int(seed),
            model=self.model_id, image=name,
            landmark_samples=None if out.landmarks_samples is None else frame.to_original(out.landmarks_samples[i]),
        )))
