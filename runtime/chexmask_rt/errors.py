"""Exception classes: every user-facing failure is one of these."""
from __future__ import annotations

import os


class ChexmaskError(Exception):
    """Base class of all chexmask-rt errors."""


class InputError(ChexmaskError, ValueError):
    """An image (file or array) that cannot be segmented, with the reason."""


class UsageError(InputError):
    """Options that cannot go together, found only once a command has begun (an output that is one of
    its inputs): the command line exits 2 with it, as for options refused before any work."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, as the command line takes it (how SLURM, Kubernetes and `kill` stop a job: a time limit,
    preemption, scancel): it ends a command as Ctrl-C does, and the command exits 143."""


class ModelError(ChexmaskError):
    """A model/engine/checkpoint file that cannot be used, with the reason."""


class OutOfMemoryError(ChexmaskError, MemoryError):
    """The machine had no memory for one input's work (ONNX Runtime's buffers: about 0.3 MB per sample,
    or a decode): ``predict_iter`` yields it as that input's outcome, a ``MemoryError`` too, and not an
    ``InputError``, which would blame the image. Fewer samples or images per call need less."""


class NonFiniteOutputError(ModelError):
    """The engine returned NaN or infinite values for one image, or impossible ones (a negative spread,
    landmarks a thousand image sizes away): a faulty engine. ``predict`` and
    ``predict_batch`` (all or nothing) raise it; ``predict_iter`` yields it as that image's outcome
    and ``chexmask-rt batch`` records it, and both go on. The core checks every result; ``index``
    is the image's position in the list given to ``predict_batch`` (0 for ``predict``; None from
    ``predict_iter``, which yields the error beside its input) and ``reason`` the message without
    the image's name."""

    index: int | None = None
    reason: str | None = None


def os_reason(exc: BaseException) -> str:
    """Why a file operation failed, in the OS's words without the file OSError names (we name the file the
    user knows: for a write, not the temporary one beside the output)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)


def first_line(exc: BaseException) -> str:
    """A third-party exception's message, shortened to one line for our own error text."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def path_text(path: object, error: type[ChexmaskError], what: str) -> str:
    """``path`` (str or os.PathLike of str) as text, else ``error``: Path() would take '' for the current
    folder, and a bytes path or a number would fail with a bare TypeError. ``what``: "an image", "a model"."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):  # bytes too: every message and output names a file by its text
        raise error(f"expected {what} path, got {type(text).__name__}")
    if not text:
        raise error(f"the {what.split()[-1]} path is empty")
    if "\0" in text:  # no file name holds one; the core's C strings end at it (another file opened)
        raise error(f"{text!r}: {what} path holding a NUL character, which no file name does")
    return text
