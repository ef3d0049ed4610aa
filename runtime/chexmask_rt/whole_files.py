"""Output files written whole or not at all.

A file is written under a temporary name beside its final one and then renamed onto it, so a
failed write (a full disk, a killed process) never leaves half a JSON, CSV, picture or DICOM object
where a reader would take it for a result, and a file that was there before stays as it was.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

from .errors import InputError


class _Encoding(TypedDict):  # a TypedDict, not a dict[str, str]: open(**ENCODING) type-checks
    encoding: str
    errors: str


# the text files we write and read back (CSV lists of images, written results): any file name the OS
# gives us survives, including bytes that are not UTF-8 (Python holds them as surrogate escapes)
ENCODING = _Encoding(encoding="utf-8", errors="surrogateescape")


def write_whole(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(temporary)``, then rename the temporary file onto ``path`` (same folder, so the
    rename is atomic). On any failure the temporary file is removed and the exception propagates.
    A device or a pipe (``--json /dev/null``) is written in place: the rename would put a file where
    the node was. A symbolic link is written through: its target gets the new file, the link stays
    (the rename replaced the link, and the file it named kept the old content)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if is_special(path):
        write(path)
        return
    temporary = _temporary(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


NAME_MAX = 255  # bytes in a file name (Linux file systems)


def _temporary(path: Path) -> Path:
    """The temporary file beside ``path``: unique per process and thread, so that two writers of the
    same path never share one. Its name is ``path``'s, cut short where the additions would take it
    past NAME_MAX: any name the file system takes can be written."""
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    name = os.fsencode(path.name)[:NAME_MAX - 1 - len(suffix)]
    return path.with_name(f".{os.fsdecode(name)}{suffix}")


def is_special(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a device, a pipe or a socket (what it links to, for a link)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def write_whole_unclaimed(paths: Sequence[str | os.PathLike[str]], write: Callable[[Path], object],
                          replaces: Callable[[Path], bool]) -> Path | None:
    """Like :func:`write_whole`, under the first of ``paths`` (all in one folder) that is free or holds
    a file that ``replaces(path)`` says this one may replace; returns that path, or None when every
    one holds a file it may not replace (nothing is written then).

    A free name is claimed with a hard link, which fails when another process took the name
    meanwhile, so two writers never replace each other's files unasked. Where the file system has
    no hard links, a free name is checked, then renamed onto: the race is left open there."""
    candidates = [Path(p) for p in paths]
    temporary = _temporary(candidates[0])
    try:
        write(temporary)
        for path in candidates:
            try:
                os.link(temporary, path)
                return path
            except FileExistsError:
                pass
            except OSError as exc:
                # no hard links here: EPERM, ENOTSUP (SMB, FAT), ENOSYS (FUSE without link), EMLINK
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
                    raise
                if not path.exists():
                    os.replace(temporary, path)
                    return path
            if replaces(path):
                os.replace(temporary, path)
                return path
        return None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def write_text_whole(path: str | os.PathLike[str], text: str) -> None:
    write_whole(path, lambda tmp: tmp.write_text(text, **ENCODING))


def write_bytes_whole(path: str | os.PathLike[str], data: bytes) -> None:
    write_whole(path, lambda tmp: tmp.write_bytes(data))


def check_folder_path(option: str, folder: str | os.PathLike[str]) -> None:
    """An InputError when ``folder``, where ``option`` writes its files, is, or lies below, something that
    is not a folder: said before any image, not after each one's inference (a batch listed every image
    of the archive in errors.csv)."""
    _check_folders(option, folder, Path(folder))


def check_file_path(option: str, file: str | os.PathLike[str]) -> None:
    """An InputError when ``file``, which ``option`` writes, names a folder (one that is there, or a name
    ending in '/') or lies below something that is not a folder: said before any image (predict's
    --json into a folder failed after every image's inference, its answers lost; ``--json new/`` wrote
    a file named ``new``)."""
    text = os.fspath(file)
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise InputError(f"{option} {file}: that is a folder; name a file")
    _check_folders(option, file, Path(file).parent)


def _check_folders(option: str, given: str | os.PathLike[str], folder: Path) -> None:
    for existing in (folder, *folder.parents):
        if existing.exists():
            if not existing.is_dir():
                advice = "; name a folder" if Path(given) == folder else ""
                raise InputError(f"{option} {given}: {existing} exists and is not a folder{advice}")
            return
