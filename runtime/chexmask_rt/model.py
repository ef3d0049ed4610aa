"""The user-facing segmenter: a thin typed wrapper of the native core's engine.

Python reads the inputs (files, DICOM, arrays: :mod:`chexmask_rt.image_io`) and turns the core's
answers into :class:`chexmask_rt.Result`; the pipeline in between (bit depth, letterbox and resize,
latent noise, the engine call, back-projection, the second look, the non-finite check and the
reliability flag) is the core's, ``chexmask_rt._core.Engine``, run with the GIL released.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import core, streaming
from ._core import ModelInfo  # typed by _core.pyi (core's names reach type checkers as Any)
from .anatomy import ORGANS
from .dicom_source import with_source
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError, os_reason, path_text
from .native_gate import native_call
from .inputs import (DEFAULT_BATCH, DEFAULT_SAMPLES, ImageLike, _is_int, check_bit_depth, check_image_list,
                     check_run_arguments, decode)
from .limits import resolve_max_pixels
from .metadata import file_sha256
from .quality import calibration_path
from .result import Result

BACKENDS = ("auto", "native")  # both the core; the keyword stays so that callers keep working


@dataclass(frozen=True)
class EngineOptions:
    """ONNX Runtime session settings of the core's engine.

    The defaults are what measured fastest and leanest on the benchmark machine
    (``python -m benchmarks.run``, section "engine settings"); the C++ header's
    ``EngineOptions`` has the same defaults.
    """

    threads: int | None = None
    """Intra-op threads, 1..256 (the core refuses more: ONNX Runtime starts them all at once);
    None or 0: one per physical core the process may use (its CPU affinity, at most its cgroup's CPU
    quota)."""
    layout_optimizations: bool = False
    """Graph level ALL (x86 NCHWc layout rewrites) instead of EXTENDED. The per-image
    normalisations make ONNX Runtime reorder back to NCHW after every convolution,
    which ate the gain of the blocked convolutions."""
    memory_pattern: bool = False
    """One pre-planned buffer block per input shape. Off, peak RSS at 1024 is about a
    third lower at the same latency."""
    device: str = "cpu"
    """'cpu', 'cuda' or 'tensorrt': ONNX Runtime's execution providers (:mod:`chexmask_rt.devices`);
    the installed onnxruntime must have them (``pip install 'chexmask-rt[gpu]'``). Not tested on a GPU here."""
    tensorrt_cache_dir: str | None = None
    """device 'tensorrt': folder where ONNX Runtime's TensorRT provider keeps the engines it builds
    (once per model, shape, TensorRT version and GPU); None: rebuilt at every load."""
    images_per_call: int = 0
    """Images per engine call within a ``predict_batch`` chunk. 0: one on 'cpu', where single images
    were the fastest and an image's answer is then exactly its answer alone; the whole chunk on a GPU
    device (README, "Batches and the default chunk size")."""
    expected_sha256: str | None = None
    """The model file's SHA-256 (64 hex digits, as ``sha256sum`` prints it): any other file is a
    ModelError. None: the engine is checked against the SHA-256 its export recorded in it (engines
    exported by this release or later), and the shipped model against the one the package lists for it."""


def _checked(options: EngineOptions) -> EngineOptions:
    """``options`` with each field of the type it documents (a path for the cache folder taken as its
    text), else a ModelError naming it: int() would take '2' or 1.5 without a word, and pybind11
    refuses the rest with a page of signatures. The core checks the ranges."""
    if not isinstance(options, EngineOptions):
        raise ModelError(f"engine_options must be a chexmask_rt.EngineOptions, got {type(options).__name__}")
    cache = options.tensorrt_cache_dir
    if isinstance(cache, os.PathLike):
        options = dataclasses.replace(options, tensorrt_cache_dir=os.fspath(cache))
    expected = {"threads": (int, True), "images_per_call": (int, False), "layout_optimizations": (bool, False),
                "memory_pattern": (bool, False), "device": (str, False), "tensorrt_cache_dir": (str, True),
                "expected_sha256": (str, True)}
    for name, (kind, optional) in expected.items():
        value = getattr(options, name)
        if value is None and optional:
            continue
        if kind is int and _is_int(value):  # a numpy integer is one too (it was "must be an integer")
            value = int(value)
            fields: dict[str, Any] = {name: value}
            options = dataclasses.replace(options, **fields)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            what = {int: "an integer", bool: "True or False", str: "a string"}[kind]
            raise ModelError(f"{name} must be {what}{' or None' if optional else ''}, got {value!r}")
        if isinstance(value, int) and not -2**31 <= value < 2**31:  # past a C int, pybind11 would refuse it unnamed
            raise ModelError(f"{name} is out of range, got {value!r}")
    if options.threads is not None and not 0 <= options.threads <= core.MAX_THREADS:
        # the core's words name its own field (intra_op_threads), which no Python caller sees
        raise ModelError(f"threads must be 0 (one per physical core) to {core.MAX_THREADS}, or None, "
                         f"got {options.threads}")
    return options


def _model_path(model: str | os.PathLike[str]) -> Path:
    """The engine file's path, else a ModelError naming what is wrong with it (the core takes paths
    as UTF-8: a name that is not raised a bare UnicodeEncodeError)."""
    text = path_text(model, ModelError, "a model")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelError(f"{text.encode('utf-8', 'backslashreplace').decode()}: a model path that is not "
                         "valid UTF-8; rename the file") from None
    return Path(text)


def default_model_path() -> Path:
    """Path of the engine shipped inside the package (see MODEL_CARD.md)."""
    return Path(str(resources.files("chexmask_rt") / "models" / "default.onnx"))


def default_model_sha256() -> str | None:
    """The shipped engine's SHA-256 as the package lists it (``models/default.onnx.sha256``, in
    ``sha256sum``'s form), so that a damaged installed copy is refused; None where it is not listed."""
    listed = default_model_path().with_name("default.onnx.sha256")
    try:
        fields = listed.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return fields[0] if fields else None


def _quality_file(engine: Path) -> str:
    """The calibration beside the engine ("": the core reads it there), else the shipped model's file.
    Its thresholds are keyed by checkpoint sha256, so a renamed copy of the shipped engine keeps its
    reliability flag, and any other engine still finds none for its checkpoint."""
    if not engine.name:  # '/', '..': no file to sit beside; the core says what the path is
        return ""
    try:
        # the core reads it, or says what is wrong with it: beside the engine, or beside the file a link names
        if any(os.path.lexists(calibration_path(e)) for e in (str(engine), core.link_target(str(engine))) if e):
            return ""
    except OSError:  # a name too long, a folder without search permission: the core says which
        return ""
    shipped = calibration_path(default_model_path())
    return str(shipped) if shipped.is_file() else ""


def load(model: str | os.PathLike[str] | None = None, *, backend: str = "auto", threads: int | None = None,
         device: str | None = None, engine_options: EngineOptions | None = None,
         max_pixels: int | None = None) -> "Segmenter":
    """Open an engine written by ``chexmask-rt export`` (default: the shipped model).

    ``backend``: 'auto' or 'native', both the native core (the only pipeline; the Python
    reference path left the package). ``threads``: intra-op threads (default: one per physical
    core); it overrides ``engine_options.threads``.
    ``device``: 'cpu' (default), 'cuda' or 'tensorrt', through ONNX Runtime's execution
    providers (:mod:`chexmask_rt.devices`; ``Segmenter.providers`` says what runs); it
    overrides ``engine_options.device``.
    ``engine_options``: ONNX Runtime session settings (see :class:`EngineOptions`).
    ``max_pixels``: this segmenter's pixel limit (:mod:`chexmask_rt.limits`; default:
    ``$CHEXMASK_RT_MAX_PIXELS`` at each call, else 64 MP).
    Raises ModelError when the file is missing or not a chexmask-rt engine, or when the
    installed onnxruntime lacks the device's provider.
    """
    if backend not in BACKENDS:
        raise ModelError(f"backend {backend!r} is gone: the native core is the only pipeline "
                         "(use backend='auto'; the Python reference pipeline lives in the repository's tests/reference)"
                         if backend == "python" else f"unknown backend {backend!r}; choose 'auto' or 'native'")
    if max_pixels is not None:
        resolve_max_pixels(max_pixels)  # a bad limit fails here, not at the first image
    path = default_model_path() if model is None else _model_path(model)
    options = _checked(EngineOptions() if engine_options is None else engine_options)
    if model is None and options.expected_sha256 is None:
        options = dataclasses.replace(options, expected_sha256=default_model_sha256())
    if threads is not None:
        options = dataclasses.replace(options, threads=threads)
    if device is not None:
        options = dataclasses.replace(options, device=device)
    segmenter = Segmenter(path, options)
    segmenter.max_pixels = max_pixels
    if not segmenter.info.trained:
        warnings.warn(f"{path.name} is an UNTRAINED model, its landmarks are meaningless ({segmenter.model_id})",
                      UntrainedModelWarning, stacklevel=2)
    return segmenter


class UntrainedModelWarning(UserWarning):
    """The engine was exported from untrained weights (a placeholder)."""


def _named(chunk: list[tuple[np.ndarray, str | None]], bit_depth: int | None, error: InputError) -> InputError:
    """The core's refusal of a chunk, as the refusal of the image it is about: each image's pixels
    are checked again alone, by the same core code, before any engine work."""
    for gray, name in chunk:
        try:
            with native_call():  # releases the GIL (native_gate)
                core.preprocess(gray, core.MIN_SIDE, bit_depth)
        except InputError as alone:
            return InputError(f"{name or 'array'}: {str(alone).removeprefix('image: ')}")
    return error


def _non_finite(message: str, index: int | None, reason: str | None) -> NonFiniteOutputError:
    error = NonFiniteOutputError(message)
    error.index, error.reason = index, reason
    return error


class Segmenter:
    """A loaded engine (the core's ``_core.Engine``). Thread-safe: one instance may serve many threads,
    and a process forked from one (``multiprocessing``'s "fork") may use it too: a fork waits for
    the engine calls in flight (:mod:`chexmask_rt.native_gate`)."""

    def __init__(self, path: str | os.PathLike[str], options: EngineOptions = EngineOptions()):
        options = _checked(options)
        self.path = _model_path(path)
        with native_call():
            self._engine = core.Engine(str(self.path), core.onnxruntime_library(), int(options.threads or 0),
                                       options.layout_optimizations, options.memory_pattern, options.device,
                                       options.tensorrt_cache_dir or "", quality_file=_quality_file(self.path),
                                       images_per_call=options.images_per_call,
                                       expected_sha256=options.expected_sha256 or "")
        if tuple(self._engine.info.organs) != ORGANS:
            # the package's organ views, masks, CSV and measures are the HybridGNet anatomy's: never a
            # silently wrong organ; the core itself (C++/C API, _core.Engine) serves other organs
            organs = str(self._engine.info.organs)
            raise ModelError(f"{self.path}: the engine's organs ({organs[:200]}{'...' if len(organs) > 200 else ''}) are "
                             f"not the anatomy the Python package writes ({ORGANS}); use the C++ or C API for it")
        self.max_pixels: int | None = None  # None: $CHEXMASK_RT_MAX_PIXELS at each call, else the default
        # a pinned hash is the file's, checked by the core: engine_sha256 need not read the file again
        self._engine_sha256: str | None = options.expected_sha256.lower() if options.expected_sha256 else None
        self._pinned = bool(options.expected_sha256)
        # copies, known after close(): the core's own info keeps its engine alive
        self._info, self._providers = copy.copy(self._engine.info), list(self._engine.providers)

    def close(self) -> None:
        """Free the engine now rather than when the Segmenter is collected (ONNX Runtime keeps its memory
        pool, hundreds of MB after a large call, until then). Calls in flight on other threads finish
        first; later ones raise ModelError. ``with chexmask_rt.load() as seg:`` closes it at the end."""
        self._engine = None

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Segmenter({self.model_id!r}, path={str(self.path)!r}, backend={self.backend!r}, "
                f"providers={self.providers!r})")

    def __reduce__(self) -> NoReturn:
        # an open engine cannot travel: pickling it for every task (Pool.map(seg.predict, files)) would
        # also reopen it per chunk of work, so the refusal says how to give each worker its own
        raise TypeError("a Segmenter holds an open engine and cannot be pickled or copied: open one in each worker "
                        "process with chexmask_rt.load() (e.g. in a multiprocessing Pool's initializer), or, with "
                        "the 'fork' start method, load it before the pool and call it from a module-level function")

    @property
    def info(self) -> ModelInfo:
        """What the engine says about itself, validated against its graph by the core."""
        return self._info

    @property
    def providers(self) -> list[str]:
        """ONNX Runtime execution providers the engine runs on, best first (e.g. ['CPUExecutionProvider'])."""
        return list(self._providers)

    @property
    def backend(self) -> str:
        """Always 'native': the C++ core runs the pipeline."""
        return "native"

    @property
    def inputsize(self) -> int:
        """The side S of the square S x S image the engine's encoder takes (the shipped model: 512)."""
        return self.info.inputsize

    @property
    def model_id(self) -> str:
        """``name:version`` from the engine's metadata: ``Result.model`` and the CSV's ``Model``."""
        return self.info.id

    @property
    def engine_sha256(self) -> str:
        """sha256 of the engine file: what identifies the weights, where every plain export's
        ``model_id`` is ``hybridgnet:unversioned``. Hashed on first use."""
        if self._engine_sha256 is None:
            try:
                self._engine_sha256 = file_sha256(self.path)
            except OSError as exc:
                raise ModelError(f"{self.path}: cannot read the engine file ({os_reason(exc)})") from None
        return self._engine_sha256

    @property
    def integrity(self) -> str:
        """What the core checked the engine file against when it opened it: "pinned" (the SHA-256 of
        ``EngineOptions.expected_sha256``, or the shipped engine's listed one), "recorded" (the SHA-256
        its export recorded in it), "listed" (an engine that records none, against the SHA-256 that
        ``<engine>.sha256`` beside it lists) or "none" (an engine exported before the seal, or by
        another tool, with no such list)."""
        if self._pinned:
            return "pinned"
        if core.INTEGRITY_KEY in self.info.metadata:
            return "recorded"
        listed = (Path(f"{e}.sha256").is_file() for e in (self.path, core.link_target(str(self.path))) if e)
        return "listed" if any(listed) else "none"  # where the core looks (core.link_target)

    def predict(self, image: ImageLike, *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                bit_depth: int | None = None, second_look: bool | None = None,
                max_pixels: int | None = None) -> Result:
        """Segment one image (a file path or an array) with ``samples`` latent draws.

        Same image, samples and seed -> bit-identical result on the same machine.
        ``bit_depth``: significant bits of a uint16 image (9-16); None: the core infers them from its
        largest value (the fewest bits that hold it; content <= 255 takes the uint8 path). A DICOM
        file is rendered by its own Bits Stored, so it is refused with a ``bit_depth`` (InputError).
        ``second_look``: a second engine call on a square crop around the first answer's lungs,
        combined with the first (``result.second_look`` says how). It takes twice the time; False
        returns the one engine call's answer. None (the default) takes the engine's own setting,
        ``info.second_look``: off for the shipped model (since version 8) and for engines exported
        without ``--second-look`` (published checkpoints answer as upstream).
        ``max_pixels``: the pixel limit for this call (default: the segmenter's, see ``load``).
        Non-finite engine outputs raise NonFiniteOutputError (a ModelError) naming the image.
        """
        return self.predict_batch([image], samples=samples, seed=seed, bit_depth=bit_depth,
                                  second_look=second_look, max_pixels=max_pixels)[0]

    def predict_batch(self, images: Sequence[ImageLike] | Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES,
                      seed: int = 0, bit_depth: int | None = None, batch_size: int | None = None,
                      second_look: bool | None = None, max_pixels: int | None = None) -> list[Result]:
        """Segment several images, ``batch_size`` at a time (None: :data:`DEFAULT_BATCH`); they share
        one eps. ``second_look`` and ``max_pixels`` as in ``predict``. ``images``: paths or arrays, as
        ``predict`` takes them; an [N, H, W] array is N gray images (a channel-first RGB image would be
        three: pass [H, W, 3]).

        How a chunk reaches the engine is :attr:`EngineOptions.images_per_call`'s: by default one
        engine call per image on the CPU (the measured fastest), so every result is bit-identical to the
        image's result alone; on a GPU one call per chunk, where a result may differ from the image's
        result alone by float rounding (batched convolutions sum in another order; at most 1e-3 px
        in the 1024 frame, i.e. 1e-3 * max(height, width) / 1024 image pixels)."""
        batch_size = DEFAULT_BATCH if batch_size is None else batch_size
        check_image_list(images)
        samples, seed = check_run_arguments(samples, seed, batch_size, second_look)
        bit_depth = check_bit_depth(bit_depth)
        limit = resolve_max_pixels(self.max_pixels if max_pixels is None else max_pixels)
        images = list(images)
        results: list[Result] = []
        for start in range(0, len(images), batch_size):
            chunk = [decode(item, limit, bit_depth) for item in images[start:start + batch_size]]
            try:
                results.extend(self._segment(chunk, samples, seed, bit_depth, second_look))
            except NonFiniteOutputError as exc:  # its index counts from the chunk: count from the caller's list
                index = None if exc.index is None else start + exc.index
                raise _non_finite(str(exc), index, exc.reason) from None
        return [with_source(r, item) for r, item in zip(results, images)]

    def _segment(self, chunk: list[tuple[np.ndarray, str | None]], samples: int, seed: int, bit_depth: int | None,
                 second_look: bool | None) -> list[Result]:
        """The core's answers for decoded (gray, name) pairs."""
        try:
            engine = self._engine
            if engine is None:
                raise ModelError(f"{self.path}: this Segmenter was closed; load the engine again")
            with native_call():  # a fork() and the exit wait for it (native_gate)
                outs = engine.predict_batch([gray for gray, _ in chunk], samples, seed, bit_depth, second_look)
        except NonFiniteOutputError as exc:  # the core counts images; name the file instead
            index = getattr(exc, "index", None)
            name = chunk[index][1] if index is not None and index < len(chunk) else None
            reason = getattr(exc, "reason", None) or str(exc)
            raise _non_finite(f"{name or 'array'}: {reason}", index, reason) from None
        except InputError as exc:  # the core says "image"; name the file that is refused
            raise _named(chunk, bit_depth, exc) from None
        return [Result.from_core(out, model=self.model_id, image=name) for out, (_, name) in zip(outs, chunk)]

    def predict_iter(self, inputs: Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                     bit_depth: int | None = None, batch_size: int | None = None, second_look: bool | None = None,
                     workers: int = 2, ahead: int | None = None,
                     max_pixels: int | None = None) -> Iterator[tuple[ImageLike, "Result | ChexmaskError"]]:
        """Segment a stream of images: yields ``(input, Result | ChexmaskError)`` in input order.

        Unlike ``predict_batch``, which raises for the whole list when one image is bad, each input
        gets its own outcome: a file that cannot be read or an array that cannot be segmented yields
        its error and the rest go on, as does an image the engine answered with NaN
        (``NonFiniteOutputError``); any other ``ModelError`` (the engine itself failing) is raised.
        ``workers`` threads decode up to ``ahead`` images (default ``2 * batch_size``) beyond the chunk
        being segmented, so decoding overlaps the engine and at most ``batch_size + ahead`` decoded
        images are held. Results equal ``predict_batch``'s for the same chunks; other arguments
        (``max_pixels`` too) as there.
        Use ``predict``/``predict_batch`` for a few images you trust, ``predict_iter`` for archives and
        anything that must not stop at one bad file (``chexmask_rt.streaming``).
        """
        return streaming.predict_iter(self, inputs, samples=samples, seed=seed, bit_depth=bit_depth, batch_size=batch_size,
                            second_look=second_look, workers=workers, ahead=ahead, max_pixels=max_pixels)
