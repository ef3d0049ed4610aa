"""``run.json``: what made a batch output folder, down to the engine file's bytes.

The ``Model`` column of ``results.csv`` names an engine by name:version, which two different
exports can share. The record adds the engine file's sha256, so that resuming into, or merging,
folders made by different engines is refused even when their names agree.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .errors import InputError
from .metadata import file_sha256

RECORD_NAME = "run.json"


@dataclass(frozen=True)
class RunRecord:
    """The settings every row of one output folder shares; ``shard`` is "I/N" or None."""

    model: str
    engine_sha256: str
    samples: int
    seed: int
    second_look: bool
    shard: str | None = None

    @classmethod
    def of(cls, segmenter, samples: int, seed: int, second_look: bool | None, shard: str | None = None) -> "RunRecord":
        """The record of a run of ``segmenter`` (``second_look=None``: the engine's own setting)."""
        look = segmenter.info.second_look if second_look is None else bool(second_look)
        return cls(segmenter.model_id, file_sha256(segmenter.path), int(samples), int(seed), look, shard)

    def identity(self) -> "RunRecord":
        """The record without its shard: what must agree for two folders' rows to be mixed."""
        return replace(self, shard=None)

    def describe(self) -> str:
        look = "second look" if self.second_look else "single look"
        return (f"model {self.model} (engine sha256 {self.engine_sha256[:12]}...), samples {self.samples}, "
                f"seed {self.seed}, {look}")


def read_record(folder: str | os.PathLike) -> RunRecord | None:
    """The folder's record, or None for a folder written without one (older releases, the Python API)."""
    path = Path(folder) / RECORD_NAME
    if not path.exists():
        return None
    try:
        return RunRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable run record ({exc}); restore it or use another --out") from None


def write_record(folder: str | os.PathLike, record: RunRecord) -> None:
    """Write ``record`` atomically (a kill leaves the old file or the new one)."""
    path = Path(folder) / RECORD_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1) + "\n")
    os.replace(tmp, path)


def claim_folder(folder: str | os.PathLike, record: RunRecord) -> None:
    """Record ``record`` in ``folder``, or check that it is the one already there.

    Raises InputError when the folder was made by another engine, settings or shard: resuming
    must not mix them."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
    previous = read_record(folder)
    if previous is None:
        write_record(folder, record)
    elif previous != record:
        where = "" if previous.shard == record.shard else f", shard {previous.shard} (this run: {record.shard})"
        raise InputError(f"{folder}: made with {previous.describe()}{where}; this run uses {record.describe()}; "
                         "use another --out or the same settings")
