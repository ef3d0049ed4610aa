"""Splitting an archive into N shards for any scheduler (SLURM arrays, Kubernetes jobs, ssh loops).

An image's shard is a hash of its path relative to the input (the folder, or the list file's
folder, widened to hold entries that climb out of it), not its position in a listing: the same
image lands in the same shard whatever order the file system lists the tree in, on whichever
machine, and adding images elsewhere in the tree moves none of the others.

Each run records its input's identity (:func:`input_identity`: the count and a digest of every
image's key, shard or not), so that ``merge`` can tell shards of one input from shards of two, and
a whole run of that input from one of a few of its images, on any mount point.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import Discovery, discover
from .errors import InputError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as SLURM's ``$SLURM_ARRAY_TASK_ID`` for ``--array=0-(N-1)``)."""

    index: int
    count: int

    def __post_init__(self) -> None:  # Shard(0, 0) divided by zero in holds()
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.index, self.count)) \
                or not 0 <= self.index < self.count:
            raise InputError(f"shard {self.index!r}/{self.count!r}: need integers 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"I/N"`` with 0 <= I < N; anything else is an InputError."""
        if not isinstance(text, str):
            raise InputError(f"--shard: expected text I/N, e.g. 0/16, got {type(text).__name__}")
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise InputError(f"--shard {text!r}: expected I/N, e.g. 0/16")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise InputError(f"--shard {text!r}: need 0 <= I < N (shards are numbered from 0)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, images: Sequence[str], root: str | os.PathLike[str]) -> list[str]:
        """The images of ``images`` that fall in this shard, in their given order."""
        return [image for image in images if self.holds(shard_key(image, root))]

    def holds(self, key: str) -> bool:
        """Whether the image of shard key ``key`` (:func:`shard_key`) falls in this shard."""
        return _shard_number(key, self.count) == self.index


def shard_key(image: str, root: str | os.PathLike[str]) -> str:
    """What the shard hash reads: the image's path relative to ``root`` with '/' separators, so that
    the archive may sit at different mount points on different nodes; the path as given when it
    lies outside ``root``."""
    path, base = os.path.abspath(image), os.path.abspath(root)
    if os.path.commonpath([path, base]) != base:
        return Path(image).as_posix()
    return Path(os.path.relpath(path, base)).as_posix()


def shard_of(image: str, root: str | os.PathLike[str], count: int) -> int:
    """The shard (0..count-1) of ``image``: the first 8 bytes of its key's sha256 read as a big-endian
    number, modulo ``count``."""
    Shard(0, count)  # the count's check: 0 divided by zero, -1 gave shard 0
    return _shard_number(shard_key(image, root), count)


def _shard_number(key: str, count: int) -> int:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


def input_root(source: str | os.PathLike[str]) -> Path:
    """The folder shard keys are relative to: the input folder itself, or the folder of a list file
    (whose relative entries are relative to it too)."""
    src = Path(source)
    return src if src.is_dir() else src.parent


def resume_root(source: str | os.PathLike[str], images: Sequence[str]) -> str:
    """The folder a batch's rows are keyed below, so that a rerun resumes however it spells INPUT: the
    input folder, or a list's folder widened to hold its relative entries that climb out of it
    ("../images/a.png"; each spelling of the list gave another row for one image). Entries written
    absolute from a relative list are taken as written."""
    root = str(input_root(source))
    # entries written as the root is (relative to the working folder, or absolute)
    alike = [image for image in images if os.path.isabs(image) == os.path.isabs(root)]
    if Path(source).is_dir() or not alike:
        return root
    common = os.path.commonpath([os.path.abspath(p) for p in [root, *alike]])
    return common if os.path.isabs(root) else os.path.relpath(common)


def input_identity(images: Sequence[str], root: str | os.PathLike[str]) -> dict[str, int | str]:
    """What a batch records of its whole input (before any shard is taken): how many images, and the
    sha256 of their shard keys (:func:`shard_key`, sorted, one a line). Equal for the same files at
    another mount point, and for a list naming every image of a folder; changed by an image added."""
    return _identity_of(shard_key(image, root) for image in images)


def _identity_of(keys: Iterable[str]) -> dict[str, int | str]:
    distinct = sorted(set(keys))
    digest = hashlib.sha256("".join(f"{k}\n" for k in distinct).encode("utf-8", "surrogateescape")).hexdigest()
    return {"images": len(distinct), "sha256": digest}


@dataclass
class BatchInputs:
    """The images a batch run segments (its shard's, when it has one), the files a folder's discovery
    skipped, the folder its rows are keyed below (:func:`resume_root`) and its whole input's identity."""

    images: list[str]
    root: str
    identity: dict[str, int | str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def batch_inputs(source: str | os.PathLike[str], shard: Shard | None = None, *,
                 exclude: str | os.PathLike[str] | None = None) -> BatchInputs:
    """What ``chexmask-rt batch SOURCE [--shard I/N]`` works on: the images of a folder (with the files
    it skipped, leaving out the folder ``exclude``) or of a list, narrowed to the shard. Raises InputError when there is nothing to do,
    except for an empty shard of a non-empty input (small archives split N ways have some)."""
    from .batch import collect_inputs, inside_folder

    src = Path(source)
    if src.is_dir() and exclude is not None and src.resolve().is_relative_to(Path(exclude).resolve()):
        # each image would fail as inside the output folder, and the results would land in the archive
        raise InputError(f"--out {exclude} is the input folder {src} or holds it; write the results elsewhere")
    found = discover(src, exclude=exclude) if src.is_dir() else Discovery(images=collect_inputs(src))
    if not found.images:
        raise InputError(f"{src}: no images found")
    if exclude is not None and not src.is_dir() and all(inside_folder(i, Path(exclude).resolve()) for i in found.images):
        # as for a folder: the results would land among the images, and later runs would pass that
        # folder over as an earlier batch's output (all() stops at the first image outside)
        raise InputError(f"--out {exclude} holds every image {src} lists, and the output folder is never an input; "
                         "write the results elsewhere")
    # keyed below the list's folder widened to hold its entries: a list reached by another mount point, or
    # spelled otherwise, split "../images/a.png" another way, and merge called the split complete
    root = resume_root(src, found.images)
    keys = [shard_key(image, root) for image in found.images]  # once: about 35 us each here, and both uses read them
    identity = _identity_of(keys)
    if shard is None:
        return BatchInputs(found.images, root, identity, found.skipped)
    return BatchInputs([image for image, key in zip(found.images, keys) if shard.holds(key)], root, identity,
                       [(f, r) for f, r in found.skipped if shard.holds(shard_key(f, root))])
