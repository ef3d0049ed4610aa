"""``chexmask-rt merge``: shard output folders -> one ``results.csv`` / ``errors.csv``.

Rows are streamed, not held: only the set of image paths seen is kept, so merging an archive
of hundreds of thousands of rows takes little memory. An image in several folders (overlapping
or repeated shards) keeps its first row; an error is kept only for an image no folder
segmented; ``skipped.csv`` files (:mod:`chexmask_rt.discovery`) are combined too. Folders made with different engines, samples, seeds or look settings are refused.
Folders of different results schemas (:mod:`chexmask_rt.csv_output`) merge under the newest one's
header, the older rows' new columns empty; other headers are refused.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .batch import ERROR_COLUMNS
from .batch_folder import (ERRORS_NAME, FINISHED_KEY, INPUTS_KEY, MANIFEST_NAME, RESULTS_NAME, csv_fields_of_any_size,
                           folder_in_use, image_keys, record_fields, whole_records)
from .csv_output import SCHEMA_HEADERS, schema_of
from .discovery import SKIPPED_NAME
from .errors import InputError
from .whole_files import ENCODING
# columns every row of one folder shares; "Second Look" by kind: a second look answers pooled,
# crop_only or none per image, a single look always "off"
_SETTING_COLUMNS = ("Samples", "Seed", "Model")


@dataclass
class MergeSummary:
    """What one merge wrote."""

    folders: int
    rows: int                 # in the merged results.csv
    duplicates: int           # rows dropped because their image was already merged
    errors: int               # in the merged errors.csv
    missing_shards: list[int] = field(default_factory=list)
    shard_count: int | None = None
    unfinished: list[Path] = field(default_factory=list)  # folders whose batch was stopped before its end

    @property
    def complete(self) -> bool:
        """No shard missing and every folder's run finished."""
        return not self.missing_shards and not self.unfinished

    def text(self, out: Path) -> str:
        """The one-line summary ``chexmask-rt merge`` prints."""
        line = (f"{self.folders} folders: {self.rows} results, {self.duplicates} duplicates dropped, "
                f"{self.errors} errors -> {out / RESULTS_NAME}")
        if self.missing_shards:
            line += (f"; shards {', '.join(map(str, self.missing_shards))} of {self.shard_count} are missing "
                     "(run them and merge again)")
        if self.unfinished:
            line += (f"; {', '.join(map(str, self.unfinished))} did not finish (rerun the same batch command "
                     "to complete it, and merge again)")
        return line


def _rows(path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """(header, row) for each whole row; what a killed run cut short at the end is left out (a
    csv reader would return a row cut inside its last quoted field as a whole one)."""
    with csv_fields_of_any_size():
        records = whole_records(path)
        first = next(records, None)
        if first is None:
            return
        header = record_fields(first[0])
        for record, _ in records:
            line = record_fields(record)
            if len(line) == len(header):
                yield header, dict(zip(header, line))


def _header(path: Path) -> list[str] | None:
    with open(path, newline="", **ENCODING) as f, csv_fields_of_any_size():
        return next(csv.reader(f), None)


def _merged_header(headers: dict[Path, list[str] | None], first: Path) -> list[str] | None:
    """One header for all folders: theirs when they share it, else the newest results schema's
    when each is a known schema's (later schemas only append columns)."""
    header = next(iter(headers.values()))
    if all(h == header for h in headers.values()):
        return header
    schemas = {folder: schema_of(h or ()) for folder, h in headers.items()}
    for folder, schema in schemas.items():
        if schema is None:
            raise InputError(f"{folder / RESULTS_NAME}: other columns than {first / RESULTS_NAME} "
                             "(another chexmask-rt release?); merge folders of one release")
    return list(SCHEMA_HEADERS[max(schemas.values()) - 1])


def _look(row: dict[str, str]) -> str:
    return "off" if row.get("Second Look") == "off" else "on"


def _manifests(folders: Sequence[Path]) -> dict[Path, dict]:
    """Each folder's ``batch.json`` (:mod:`chexmask_rt.batch_folder`); an older release's folder has none."""
    manifests = {}
    for folder in folders:
        path = folder / MANIFEST_NAME
        if not path.is_file():
            continue
        try:
            manifests[folder] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable manifest ({exc})") from None
    return manifests


def _identity(manifest: dict) -> dict:
    # where each shard read its images is no setting: nodes may mount the archive in different places
    return {k: v for k, v in manifest.items() if k not in ("format", "Shard", INPUTS_KEY, FINISHED_KEY)}


def _check_manifests(manifests: dict[Path, dict]) -> None:
    """Refuse folders whose manifests disagree on the engine's sha256 or the settings; folders
    without one are checked by their rows."""
    first = next(iter(manifests.items()), None)
    for folder, manifest in manifests.items():
        if _identity(manifest) != _identity(first[1]):
            diff = ", ".join(f"{k} {manifest.get(k)!r} vs {first[1].get(k)!r}"
                             for k in sorted(set(_identity(manifest)) | set(_identity(first[1])))
                             if manifest.get(k) != first[1].get(k))
            raise InputError(f"cannot merge {folder} with {first[0]}: {diff}; rows made with different engines or "
                             "settings must not be mixed")


def _missing_shards(manifests: dict[Path, dict]) -> tuple[list[int], int | None]:
    """The shard indices missing from 0..N-1 when the folders are shards of one N (none when a folder
    holds a whole run: it covers them)."""
    shards = {m["Shard"] for m in manifests.values() if "/" in str(m.get("Shard", ""))}
    counts = {int(s.split("/")[1]) for s in shards}
    if len(counts) > 1:
        raise InputError(f"cannot merge shards of different counts ({', '.join(sorted(shards))}): "
                         "each --shard I/N split must be merged on its own")
    if any("/" not in str(m.get("Shard", "")) for m in manifests.values()):
        return [], None
    count = counts.pop() if counts else None
    missing = sorted(set(range(count)) - {int(s.split("/")[0]) for s in shards}) if count else []
    return missing, count


def merge_folders(folders: Sequence[str | os.PathLike], out: str | os.PathLike) -> MergeSummary:
    """Merge batch output ``folders`` into ``out`` (see the module doc). Raises InputError for a
    folder without ``results.csv``, folders of different columns, engines or settings, and an
    ``out`` that is one of the inputs or already holds results."""
    paths = [Path(f) for f in folders]
    out = Path(out)
    if not paths:
        raise InputError("merge: name at least one batch output folder")
    for folder in paths:
        if not (folder / RESULTS_NAME).is_file():
            raise InputError(f"{folder}: no {RESULTS_NAME}; not a chexmask-rt batch output folder")
        holder = folder_in_use(folder)
        if holder:
            raise InputError(f"{folder}: a chexmask-rt batch is still writing it ({holder}); merge once it has ended")
        if folder.resolve() == out.resolve():
            raise InputError(f"{out}: the merged folder cannot also be an input; choose another --out")
    if (out / RESULTS_NAME).exists():
        raise InputError(f"{out / RESULTS_NAME} already exists; merge into a new folder")
    headers = {folder: _header(folder / RESULTS_NAME) for folder in paths}
    header = _merged_header(headers, paths[0])
    if header is None or "Image" not in header:
        raise InputError(f"{paths[0] / RESULTS_NAME}: not a chexmask-rt results file (no Image column)")
    manifests = _manifests(paths)
    _check_manifests(manifests)
    missing, count = _missing_shards(manifests)
    unfinished = [folder for folder, m in manifests.items() if m.get(FINISHED_KEY) is False]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None

    keys = {folder: image_keys(manifests.get(folder, {}).get(INPUTS_KEY) or []) for folder in paths}
    seen: set = set()  # by INPUT and path below it: one image, however a shard's run spelled INPUT
    settings: dict[str, str] | None = None
    settings_from: Path | None = None
    rows = duplicates = 0
    partial = out / (RESULTS_NAME + ".partial")
    try:
        with open(partial, "w", newline="", **ENCODING) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for folder in paths:
                for _, row in _rows(folder / RESULTS_NAME):
                    these = {**{k: row.get(k, "") for k in _SETTING_COLUMNS}, "Second Look": _look(row)}
                    if settings is None:
                        settings, settings_from = these, folder
                    elif these != settings:
                        diff = ", ".join(f"{k} {these[k]!r} vs {settings[k]!r}"
                                         for k in these if these[k] != settings[k])
                        raise InputError(f"cannot merge {folder} with {settings_from}: {diff}; "
                                         "rows made with different settings must not be mixed")
                    key = keys[folder](row["Image"])
                    if key in seen:
                        duplicates += 1
                        continue
                    seen.add(key)
                    if "Results Schema" not in row:  # schema 1 did not say its number
                        row["Results Schema"] = str(schema_of(headers[folder] or ()) or "")
                    writer.writerow([row.get(c, "") for c in header])
                    rows += 1
        errors = _merge_side_files(paths, out, seen, keys)
    except BaseException:  # a refused or failed merge leaves no partial file behind
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out / RESULTS_NAME)  # last: a folder with results.csv is a finished merge
    if len(manifests) == len(paths):  # the merged rows share one engine and settings: say which
        inputs = [pair for m in manifests.values() for pair in m.get(INPUTS_KEY) or []]
        merged = {**next(iter(manifests.values())), "Shard": "merged",
                  INPUTS_KEY: [list(pair) for pair in dict.fromkeys(map(tuple, inputs))],
                  FINISHED_KEY: not missing and not unfinished}
        (out / MANIFEST_NAME).write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    return MergeSummary(folders=len(paths), rows=rows, duplicates=duplicates, errors=errors,
                        missing_shards=missing, shard_count=count, unfinished=unfinished)


def _merge_side_files(folders: Sequence[Path], out: Path, segmented: set, keys: dict) -> int:
    """Merge ``errors.csv`` (the first reason per image no folder segmented; images compared by the
    ``keys`` of each folder) and ``skipped.csv`` (each file once); returns the number of errors written."""
    counts = {}
    for name, header in ((ERRORS_NAME, list(ERROR_COLUMNS)), (SKIPPED_NAME, ["File", "Reason"])):
        written: set[str] = set()
        sources = [folder / name for folder in folders if (folder / name).is_file()]
        if name == SKIPPED_NAME and not sources:
            continue
        with open(out / name, "w", newline="", **ENCODING) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for source in sources:
                for _, row in _rows(source):
                    key = row.get(header[0], "")
                    if name == ERRORS_NAME:
                        key = keys[source.parent](key)
                    if key in segmented or key in written:
                        continue
                    written.add(key)
                    writer.writerow([row.get(c, "") for c in header])
        counts[name] = len(written)
    return counts[ERRORS_NAME]
