"""Output files written whole or not at all.

A file is written under a temporary name beside its final one and then renamed onto it, so a
failed write (a full disk, a killed process) never leaves half a JSON, CSV, picture or DICOM object
where a reader would take it for a result, and a file that was there before stays as it was.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

# the text files we write and read back (CSV lists of images, written results): any file name the OS
# gives us survives, including bytes that are not UTF-8 (Python holds them as surrogate escapes)
ENCODING = dict(encoding="utf-8", errors="surrogateescape")


def write_whole(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)``, then rename the temporary file onto ``path`` (same folder, so the
    rename is atomic). On any failure the temporary file is removed and the exception propagates."""
    path = Path(path)
    # unique per process and thread: two writers of the same path never share a temporary file
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_text_whole(path: str | os.PathLike, text: str) -> None:
    write_whole(path, lambda tmp: tmp.write_text(text, **ENCODING))


def write_bytes_whole(path: str | os.PathLike, data: bytes) -> None:
    write_whole(path, lambda tmp: tmp.write_bytes(data))
