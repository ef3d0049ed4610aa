"""PNG files that say which of this package's writers made them.

A tEXt chunk right after the header names the writer (``Software: chexmask-rt overlay``, ``... mask``).
predict writes pictures and masks into folders the user names, under names it makes up from the
images' names; it replaces a file there only where it finds its own mark, so a file of the user's
that happens to have such a name (``x.png`` beside ``x.jpg``, a ground-truth ``x_heart.png``) is kept.
"""
from __future__ import annotations

import os
import struct
import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADER_END = len(_SIGNATURE) + 25  # then IHDR: length, type, 13 bytes, CRC


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _mark(writer: str) -> bytes:
    return _chunk(b"tEXt", b"Software\0chexmask-rt " + writer.encode("ascii"))


def marked(png: bytes, writer: str) -> bytes:
    """``png`` (an encoder's PNG bytes) with the mark of ``writer`` after its header."""
    return png[:_HEADER_END] + _mark(writer) + png[_HEADER_END:]


def is_marked(path: str | os.PathLike[str], writer: str) -> bool:
    """Whether the file at ``path`` is a PNG that ``writer`` of this package made."""
    mark = _mark(writer)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_END + len(mark))
    except OSError:
        return False
    return head.startswith(_SIGNATURE) and head[_HEADER_END:] == mark
