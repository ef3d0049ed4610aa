"""``Segmenter.predict_iter``: results streamed in input order, one error per bad input.

Worker threads decode the next images (file reading, JPEG/DICOM decoding, conversion to gray)
while the calling thread runs the engine on the current chunk. At most ``batch_size + ahead``
decoded images exist at any time (the chunk being segmented and the ones decoded ahead of it),
and the input iterable is read only that far ahead, so an archive of any length streams in
bounded memory.
"""
from __future__ import annotations

import dataclasses
import enum
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

import numpy as np

from .dicom_source import with_source
from .errors import ChexmaskError, InputError, ModelError, NonFiniteOutputError, OutOfMemoryError
from .limits import resolve_max_pixels
from .inputs import (DEFAULT_BATCH, DEFAULT_SAMPLES, ImageLike, check_bit_depth, check_count, check_image_list,
                     check_run_arguments, decode, decoded_here)
from .result import Result

Outcome = tuple[ImageLike, "Result | ChexmaskError"]


def _decoded_or_error(item: ImageLike, future: Future):
    """A decode's (gray, name), or the input's own error: one bad input must not stop the others."""
    try:
        return future.result()
    except Exception as exc:
        return _as_error(item, exc)


def _as_error(item: ImageLike, exc: BaseException) -> ChexmaskError:
    """Our errors as they are; no memory as an OutOfMemoryError (the machine's, not the image's fault);
    anything else (a bug, a library's surprise) as an InputError naming the input."""
    if isinstance(exc, ChexmaskError):
        return exc
    name = os.fsdecode(item) if isinstance(item, (str, bytes, os.PathLike)) else type(item).__name__
    kind = OutOfMemoryError if isinstance(exc, MemoryError) else InputError
    error = kind(f"{name}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def predict_iter(segmenter, inputs: Iterable[ImageLike], *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                 bit_depth: int | None = None, batch_size: int | None = None, second_look: bool | None = None,
                 workers: int = 2, ahead: int | None = None, max_pixels: int | None = None) -> Iterator[Outcome]:
    """See :meth:`chexmask_rt.Segmenter.predict_iter`. Arguments are checked here, before the first image."""
    batch_size = DEFAULT_BATCH if batch_size is None else batch_size
    check_image_list(inputs)
    samples, seed = check_run_arguments(samples, seed, batch_size, second_look)
    bit_depth = check_bit_depth(bit_depth)
    workers = check_count("workers", workers, 1)
    ahead = check_count("ahead", 2 * batch_size if ahead is None else ahead, 0)
    max_pixels = resolve_max_pixels(segmenter.max_pixels if max_pixels is None else max_pixels)
    options = dict(samples=samples, seed=seed, bit_depth=bit_depth, second_look=second_look, max_pixels=max_pixels)
    return _stream(segmenter, iter(inputs), options, batch_size, workers, ahead)


def submit_or_run(pool: ThreadPoolExecutor, fn, *args) -> Future:
    """``pool.submit(fn, *args)``, or, when the pool takes no more work, the call made here: Python shuts
    every ThreadPoolExecutor down as the interpreter begins to exit, before it waits for the program's
    own threads, and a stream or batch in such a thread stopped with "RuntimeError: cannot schedule new
    futures after shutdown", the rest of its images lost and the exit code 0."""
    try:
        return pool.submit(fn, *args)
    except RuntimeError as exc:
        if "cannot schedule new futures" not in str(exc):
            raise
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _decode_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chexmask-decode")


def _stream(segmenter, inputs: Iterator[ImageLike], options: dict, batch_size: int, workers: int,
            ahead: int) -> Iterator[Outcome]:
    queue: deque[tuple[ImageLike, Future]] = deque()
    max_pixels, bit_depth = options["max_pixels"], options["bit_depth"]
    pool, owner = _decode_pool(workers), os.getpid()
    exhausted = False
    failure: Exception | None = None  # the input iterable's own error, raised once what it gave is answered

    def top_up(limit: int) -> None:
        nonlocal exhausted, failure
        while not exhausted and len(queue) < limit:
            try:
                item = next(inputs, _END)
            except Exception as exc:  # a cursor or a listing that fails: the images read before it still count
                failure, exhausted = exc, True
                return
            if item is _END:
                exhausted = True
            else:
                queue.append((item, submit_or_run(pool, decode, item, max_pixels, bit_depth)))

    def in_this_process() -> None:
        # a generator paused across os.fork() resumes in the child without the pool's threads: its
        # queued decodes would wait for ever. A new pool decodes them again.
        nonlocal pool, owner
        if os.getpid() == owner:
            return
        pool, owner = _decode_pool(workers), os.getpid()
        for i, (item, future) in enumerate(queue):
            if not future.done():
                queue[i] = (item, submit_or_run(pool, decode, item, max_pixels, bit_depth))

    try:
        while True:
            in_this_process()
            top_up(batch_size + ahead)
            if not queue:
                if failure is not None:
                    raise failure
                return
            chunk = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
            top_up(ahead)  # the chunk's images count against the bound while it is segmented
            items = [item for item, _ in chunk]
            # a comprehension, so that no loop variable keeps a future (and its decoded array) alive
            outcomes: list = [_decoded_or_error(item, future) for item, future in chunk]
            chunk = []  # the futures hold the decoded arrays too
            decoded = [i for i, o in enumerate(outcomes) if isinstance(o, tuple)]
            segmented = _segment(segmenter, [(items[i], outcomes[i]) for i in decoded], options)
            for i, outcome in zip(decoded, segmented):
                outcomes[i] = outcome  # the result replaces the decoded array, which is freed
            del segmented
            for item, outcome in zip(items, outcomes):
                yield item, outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _End(enum.Enum):  # a sentinel mypy follows: `item is _END` narrows item to an input
    END = enum.auto()


_END = _End.END


def segment_each(segmenter, arrays: list[np.ndarray], names: list[str | None] | None = None,
                 **options) -> list[Result | Exception]:
    """The core's answer for each decoded array, or the exception of the array it is about: when the
    chunk fails, each array again alone, so that one bad image gets the error and the others their
    results (``predict_iter`` and ``chexmask-rt batch``). A ModelError other than a non-finite output
    is the engine's, not an image's: raised. ``names``: the files the arrays were read from, for the
    errors' messages. ``options`` as ``predict_batch`` takes them."""
    names = names or [None] * len(arrays)
    try:
        with decoded_here():
            return list(segmenter.predict_batch(arrays, **{**options, "batch_size": len(arrays)}))
    except NonFiniteOutputError as exc:  # the engine failed on these images, not on every image
        error: Exception = exc
    except ModelError:
        raise
    except Exception as exc:  # one image's failure must not stop the others
        error = exc
    if len(arrays) == 1:
        return [_naming(error, names[0])]
    return [segment_each(segmenter, [one], [name], **options)[0] for one, name in zip(arrays, names)]


def _naming(error: Exception, name: str | None) -> Exception:
    """``error`` with the file's name where the core's refusal of the array says "array"."""
    text = str(error)
    if name is None or not isinstance(error, ChexmaskError) or not text.startswith("array: "):
        return error
    named = type(error)(f"{name}: {text.removeprefix('array: ')}")
    named.__cause__ = error.__cause__
    if isinstance(error, NonFiniteOutputError):  # the reason stays; an index would count within a one-image call
        cast(NonFiniteOutputError, named).reason = error.reason  # named is of error's type
    return named


def _segment(segmenter, decoded: list[tuple[ImageLike, tuple[np.ndarray, str | None]]],
             options: dict) -> list[Result | ChexmaskError]:
    """Each decoded input's result, named and sourced as the input, or its error."""
    if not decoded:
        return []
    answers = segment_each(segmenter, [gray for _, (gray, _) in decoded], [name for _, (_, name) in decoded], **options)
    return [_as_error(item, a) if isinstance(a, Exception) else with_source(dataclasses.replace(a, image=name), item)
            for a, (item, (_, name)) in zip(answers, decoded)]
