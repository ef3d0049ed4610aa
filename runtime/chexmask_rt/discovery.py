"""Finding the images of a folder tree, PACS exports included.

PACS and modality exports name DICOM files by number or UID, without an extension
(``IM00001``, ``1.2.840....``). A file is an image when its extension says so (PNG, JPEG
also as ``.jfif``/``.jpe``, TIFF, BMP, ``.dcm``/``.dicom``), or when its first 132 bytes end in
the Part 10 ``DICM`` marker, whatever its name. Only those 132 bytes are read from files without an
image extension. For a file with the marker, its File Meta group (the next few hundred bytes)
names the object's SOP class: a DICOMDIR, a structured report, a presentation state and the
like are skipped, with the reason, because only images can be segmented. A file without either
whose first bytes are a PNG/JPEG/TIFF/BMP signature is skipped too, with a reason that says to
rename it, and a GIF, WebP or JPEG 2000 file with one that names its format.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .dicom_io import (DICM_HEAD, DICM_MARKER, DICM_OFFSET, DICOM_SUFFIXES, LONG_LENGTH_VRS, file_meta_group_length,
                       non_image_reason)
from .csv_lines import LineWriter
from .errors import InputError, os_reason
from .image_headers import BMP_SIGNATURE, JP2_SIGNATURE, JPEG_SOI, PNG_SIGNATURE, TIFF_SIGNATURES
from .whole_files import ENCODING, write_whole

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".tif", ".tiff", ".bmp")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES
SKIPPED_NAME = "skipped.csv"
_META_LIMIT = 64 * 1024  # a File Meta group is a few hundred bytes; more is a damaged header


@dataclass
class Discovery:
    """The images found under a folder (sorted), and the files passed over with the reason."""

    images: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def discover(root: str | os.PathLike[str], *, exclude: str | os.PathLike[str] | None = None) -> Discovery:
    """Walk ``root`` recursively and sort its files into images and skipped ones (see the module
    doc). Links to files are followed; links to folders are not (a loop would never end), and are
    listed as skipped with the reason, as are folders that cannot be listed, broken links and
    entries that are not files (pipes, devices): nothing under ``root`` is passed over unsaid. The
    folder ``exclude`` (the output folder of a batch) is left out: it is never an input. A ``root``
    that cannot be listed is an InputError."""
    found = Discovery()
    skip = os.path.realpath(exclude) if exclude is not None else None
    top = os.fspath(root)
    for path, suffix, passed_over in _files(top, skip, _is_output_folder):
        if passed_over and path == top:  # nothing under it can be read: not a skipped entry
            raise InputError(f"{top}: {passed_over}")
        if passed_over:
            found.skipped.append((path, passed_over))
            continue
        if suffix in RASTER_SUFFIXES:
            if _apple_double(path):
                found.skipped.append((path, "a macOS AppleDouble file (another file's metadata), not an image"))
            else:
                found.images.append(path)
            continue
        reason = _dicom_skip_reason(path, named_dicom=suffix in DICOM_SUFFIXES)
        if reason is None:
            found.images.append(path)
        else:
            found.skipped.append((path, reason))
    found.images.sort()
    found.skipped.sort()
    return found


_APPLE_DOUBLE = b"\x00\x05\x16\x07"  # the magic number of the "._name" files macOS copies beside each file


def _apple_double(path: str) -> bool:
    """Whether ``path`` is a "._x.png" that macOS wrote beside x.png on a foreign file system (each one
    failed as an unreadable image, so a Mac-copied archive always ended with exit 1)."""
    if not os.path.basename(path).startswith("._"):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == _APPLE_DOUBLE
    except OSError:
        return False


def _is_output_folder(folder: str) -> bool:
    """Whether ``folder`` is a batch's output folder: it holds the lock file every run leaves, or, where
    that was deleted (a "stale" lock removed by hand, a copy that dropped dot files), the manifest."""
    from .batch_folder import LOCK_NAME, MANIFEST_FORMAT, MANIFEST_NAME

    if os.path.isfile(os.path.join(folder, LOCK_NAME)):
        return True
    manifest = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as f:
            return str(json.load(f).get("format", "")).startswith(MANIFEST_FORMAT.rsplit(" ", 1)[0])
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object: someone else's file
        return False


def _files(top: str, skip: str | None = None,
           output_folder: Callable[[str], bool] | None = None) -> Iterator[tuple[str, str, str]]:
    """(path, lower-case suffix, "") of every file under ``top`` (links to files included), and
    (path, "", why) of every entry passed over. os.scandir gives the file type from the directory
    entry, so no file is stat'ed on common file systems. A folder that ``output_folder`` says is an
    earlier batch's output folder is passed over, so that its masks are not taken for radiographs."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            yield folder, "", f"cannot list the folder ({os_reason(exc)})"
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if skip is not None and os.path.realpath(entry.path) == skip:
                        continue
                    if output_folder is not None and output_folder(entry.path):
                        yield entry.path, "", "an earlier chexmask-rt batch's output folder, never an input"
                    else:
                        stack.append(entry.path)
                elif entry.is_file():
                    yield entry.path, os.path.splitext(entry.name)[1].lower(), ""
                elif entry.is_symlink():
                    yield entry.path, "", ("a link to a folder, not followed (pass the folder itself)"
                                           if entry.is_dir() else "a broken link")
                else:
                    yield entry.path, "", "not a regular file (a pipe, socket or device)"
            except OSError as exc:
                yield entry.path, "", f"cannot read ({os_reason(exc)})"


def _dicom_skip_reason(path: str, named_dicom: bool) -> str | None:
    """None for a DICOM image (or a file named like one, left to the reader), else why not."""
    if os.path.basename(path).upper() == "DICOMDIR":
        return "DICOMDIR (a media index, not an image)"
    try:
        with open(path, "rb") as f:
            head = f.read(DICM_HEAD)
            if head[DICM_OFFSET:] != DICM_MARKER:
                # .dcm without a preamble is common in archives: the reader decides (force=True)
                if named_dicom:
                    return None
                if head.startswith(DICM_MARKER):
                    return ("DICM at the start, without the 128-byte preamble of a DICOM file: "
                            "named .dcm it is read as one")
                return _format_reason(head) or "not an image (no image extension, no DICM marker)"
            sop_class = _media_storage_class(f)
    except OSError as exc:
        return f"cannot read ({os_reason(exc)})"
    return non_image_reason(sop_class)


# Other formats, told by the same first bytes. The reader decodes PNG/JPEG/TIFF/BMP whatever the name,
# but a folder's images are found by name (or the DICM marker), so such a file is named, not taken: a
# copy or log saved without an extension is no radiograph more often than a PACS export is. GIF, WebP
# and JPEG 2000 files are images no decoder here reads: "not an image" sent people looking for damage.
_NAMED_FORMATS = ((PNG_SIGNATURE, "PNG", ".png"), (JPEG_SOI + b"\xff", "JPEG", ".jpg"),
                  *((tiff, "TIFF", ".tif") for tiff in TIFF_SIGNATURES))
_OTHER_FORMATS = ((b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (JP2_SIGNATURE, "JPEG 2000"),
                  (b"\xff\x4f\xff\x51", "JPEG 2000"))
_BMP_INFO_SIZES = (12, 40, 52, 56, 64, 108, 124)  # "BM" alone starts too many text files; its DIB header's size


def _format_reason(head: bytes) -> str | None:
    """Why a file without an image extension or DICM marker is skipped, when its first bytes name an image
    format; None otherwise."""
    kind = next(((what, suffix) for magic, what, suffix in _NAMED_FORMATS if head.startswith(magic)), None)
    if kind is None and head.startswith(BMP_SIGNATURE) and len(head) >= 18 and \
            struct.unpack("<I", head[14:18])[0] in _BMP_INFO_SIZES:
        kind = ("BMP", ".bmp")
    if kind is not None:
        return f"a {kind[0]} file without an image extension: rename it ({kind[1]}) or name it in a list"
    other = next((what for magic, what in _OTHER_FORMATS if head.startswith(magic)), None)
    if other is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        other = "WebP"
    if other is None:
        return None
    return f"a {other} image: not a supported format; convert it to PNG"


def _media_storage_class(f) -> str | None:
    """The File Meta group's (0002,0002) Media Storage SOP Class UID, read right after the marker
    (the group is always explicit VR little endian); None when it cannot be found."""
    length = file_meta_group_length(f.read(12))
    if length is None:
        return None  # no (0002,0000) group length first: a non-conformant header, the reader decides
    data = f.read(min(length, _META_LIMIT))
    pos = 0
    while pos + 8 <= len(data):
        group, element = struct.unpack("<HH", data[pos:pos + 4])
        vr = data[pos + 4:pos + 6]
        if vr in LONG_LENGTH_VRS:
            if pos + 12 > len(data):
                return None
            size, start = struct.unpack("<I", data[pos + 8:pos + 12])[0], pos + 12
        else:
            size, start = struct.unpack("<H", data[pos + 6:pos + 8])[0], pos + 8
        if group != 2:
            return None
        if element == 2:
            return data[start:start + size].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + size
    return None


def write_skipped(folder: str | os.PathLike[str], skipped: Sequence[tuple[str, str]]) -> Path:
    """``folder/skipped.csv`` (``File,Reason``), rewritten each run like ``errors.csv``; InputError naming
    it when it cannot be (a full disk ended the batch with "OSError: [Errno 28] ...", naming no file)."""
    path = Path(folder) / SKIPPED_NAME

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", **ENCODING) as f:
            writer = LineWriter(f)
            writer.writerow(["File", "Reason"])
            writer.writerows(skipped)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, write)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the list of skipped files ({os_reason(exc)})") from None
    return path
