"""Exception classes: every user-facing failure is one of these."""
from __future__ import annotations


class ChexmaskError(Exception):
    """Base class of all chexmask-rt errors."""


class InputError(ChexmaskError, ValueError):
    """An image (file or array) that cannot be segmented, with the reason."""


class ModelError(ChexmaskError):
    """A model/engine/checkpoint file that cannot be used, with the reason."""


class NonFiniteOutputError(ModelError):
    """The engine returned NaN or infinite values for one image: a faulty engine, but only this
    image's answer is lost (``chexmask-rt batch`` records it and goes on). The core checks every
    result; as it raises this error, ``index`` is the image's position in the list given to
    ``predict_batch`` and ``reason`` the message without it."""

    index: int | None = None
    reason: str | None = None


def first_line(exc: BaseException) -> str:
    """A third-party exception's message, shortened to one line for our own error text."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
