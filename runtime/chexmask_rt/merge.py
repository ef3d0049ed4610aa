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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .batch import ERROR_COLUMNS
from .batch_folder import (ERRORS_NAME, FINISHED_KEY, INPUT_IDENTITY_KEY, INPUTS_KEY, LOCK_NAME, MANIFEST_NAME,
                           OUTPUTS_KEY, RESULTS_NAME, csv_fields_of_any_size, folder_in_use, folder_lock, real_path_of,
                           record_fields, whole_records)
from .csv_lines import LineWriter
from .csv_output import SCHEMA_HEADERS, schema_of
from .discovery import SKIPPED_NAME
from .errors import InputError, os_reason, path_text
from .progress import LOG_INTERVAL_S, say
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
    skipped: int = 0          # files the folders' discovery left out, in the merged skipped.csv
    missing_shards: list[int] = field(default_factory=list)
    shard_count: int | None = None
    unfinished: list[str] = field(default_factory=list)  # folders whose batch was stopped before its end
    mixed_inputs: list[str] = field(default_factory=list)  # a split's shards by input, when of several

    @property
    def complete(self) -> bool:
        """No shard missing, every folder's run finished, and the split's shards all of one input."""
        return not self.missing_shards and not self.unfinished and not self.mixed_inputs

    def text(self, out: Path) -> str:
        """The one-line summary ``chexmask-rt merge`` prints."""
        # the errors were said to go to results.csv; the skipped files went unsaid
        line = (f"{self.folders} folders: {self.rows} results -> {out / RESULTS_NAME}, {self.duplicates} duplicates "
                f"dropped, {self.errors} errors -> {out / ERRORS_NAME}")
        if self.skipped:
            line += f", {self.skipped} skipped files -> {out / SKIPPED_NAME}"
        if self.missing_shards:
            missing = self.missing_shards
            line += (f"; of the {self.shard_count} shards, {'number' if len(missing) == 1 else 'numbers'} "
                     f"{', '.join(map(str, missing))} {'is' if len(missing) == 1 else 'are'} missing "
                     "(run them and merge again)")
        if self.unfinished:
            line += (f"; {', '.join(map(str, self.unfinished))} did not finish (rerun the same batch command "
                     "to complete it, and merge again)")
        if self.mixed_inputs:
            line += (f"; the shards were run on different inputs ({'; '.join(self.mixed_inputs)}): other archives, "
                     "or one that changed between them (rerun the odd shards on the same input, and merge again)")
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
    schemas: dict[Path, int] = {}
    for folder, h in headers.items():
        schema = schema_of(h or ())
        if schema is None:
            raise InputError(f"{folder / RESULTS_NAME}: other columns than {first / RESULTS_NAME} "
                             "(another chexmask-rt release?); merge folders of one release")
        schemas[folder] = schema
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
    # where each shard read its images is no setting: nodes may mount the archive in different places;
    # nor are the pictures a shard drew, which stay in its own folder
    return {k: v for k, v in manifest.items()
            if k not in ("format", "Shard", INPUTS_KEY, FINISHED_KEY, INPUT_IDENTITY_KEY, OUTPUTS_KEY, *_MERGED_KEYS)}


def _check_manifests(manifests: dict[Path, dict]) -> None:
    """Refuse folders whose manifests disagree on the engine's sha256 or the settings; folders
    without one are checked by their rows."""
    if not manifests:
        return
    first = next(iter(manifests.items()))
    for folder, manifest in manifests.items():
        if _identity(manifest) != _identity(first[1]):
            diff = ", ".join(f"{k} {manifest.get(k)!r} vs {first[1].get(k)!r}"
                             for k in sorted(set(_identity(manifest)) | set(_identity(first[1])))
                             if manifest.get(k) != first[1].get(k))
            raise InputError(f"cannot merge {folder} with {first[0]}: {diff}; rows made with different engines or "
                             "settings must not be mixed")


# in a merged folder's manifest: the shards it holds, those whose run did not finish, the real paths
# of the whole (unsharded, finished) runs' INPUTs, the identities of the shards' inputs (with their
# shards) and of the whole runs' (chexmask_rt.shards.input_identity): a later merge counts them as
# its sources'
SHARDS_KEY, UNFINISHED_SHARDS_KEY, WHOLE_INPUTS_KEY = "Shards", "Unfinished shards", "Whole runs of"
SPLIT_INPUTS_KEY, WHOLE_IDENTITIES_KEY = "Shards' inputs", "Whole runs' inputs"
_MERGED_KEYS = (SHARDS_KEY, UNFINISHED_SHARDS_KEY, WHOLE_INPUTS_KEY, SPLIT_INPUTS_KEY, WHOLE_IDENTITIES_KEY)


@dataclass
class _Coverage:
    """What the folders hold of a --shard I/N split, and which of their runs did not finish."""

    missing: list[int]
    count: int | None
    unfinished: list[str]      # folders (or "shard I/N (in MERGED)") whose run did not finish
    shards: list[str]          # finished shards
    open_shards: list[str]     # shards only an unfinished run holds
    whole_inputs: list[str]    # real paths of finished whole runs' INPUTs
    split_inputs: list[dict]   # the shards' inputs' identities, each with its shards
    whole_identities: list[str]  # the sha256 of finished whole runs' inputs
    mixed: list[str]           # the shards by input, when they are of several


def _reals(manifest: dict) -> set[str]:
    return {real for _, real in manifest.get(INPUTS_KEY) or []}


def _coverage(manifests: dict[Path, dict]) -> _Coverage:
    """Missing shards of 0..N-1 (none when finished whole runs of the split's input are among the
    folders: they hold every image), unfinished runs, and shards of different inputs, from each
    folder's manifest; a merged folder's manifest lists what it holds. Inputs are compared by their
    identity (:func:`chexmask_rt.shards.input_identity`: any mount point, a list or a folder of the
    same images alike); folders of an older release, which recorded none, by their INPUTs' real paths."""
    done: set[str] = set()
    open_shards: dict[str, str] = {}
    unfinished: list[str] = []
    wholes: set[str] = set()
    split_inputs: set[str] = set()
    by_input: dict[str, dict] = {}  # sha256 -> {"images": n, "sha256": ..., "shards": [...]}
    whole_ids: set[str] = set()
    unidentified = False  # a shard that recorded no input

    def shards_of(identity: dict, labels: Sequence[str]) -> None:
        entry = by_input.setdefault(str(identity.get("sha256")), {**identity, "shards": []})
        entry["shards"] = sorted({*entry["shards"], *labels}, key=lambda s: [int(n) for n in s.split("/")])

    for folder, m in manifests.items():
        shard = str(m.get("Shard", ""))
        identity = m.get(INPUT_IDENTITY_KEY)
        identity = identity if isinstance(identity, dict) and "sha256" in identity else None
        if shard == "merged":
            done |= set(m.get(SHARDS_KEY) or [])
            for s in m.get(UNFINISHED_SHARDS_KEY) or []:
                open_shards.setdefault(s, f"shard {s} (in {folder})")
            wholes |= set(m.get(WHOLE_INPUTS_KEY) or [])
            whole_ids |= set(m.get(WHOLE_IDENTITIES_KEY) or [])
            if m.get(SHARDS_KEY) or m.get(UNFINISHED_SHARDS_KEY):
                split_inputs |= _reals(m)
                unidentified |= SPLIT_INPUTS_KEY not in m
            for entry in m.get(SPLIT_INPUTS_KEY) or []:
                shards_of({k: v for k, v in entry.items() if k != "shards"}, entry.get("shards") or [])
        elif "/" in shard:
            split_inputs |= _reals(m)
            if identity is None:
                unidentified = True
            else:
                shards_of(identity, [shard])
            if m.get(FINISHED_KEY) is False:
                open_shards.setdefault(shard, str(folder))
            else:
                done.add(shard)
        elif m.get(FINISHED_KEY) is False:
            unfinished.append(str(folder))
        else:
            wholes |= _reals(m)
            if identity is not None:
                whole_ids.add(str(identity["sha256"]))
    open_shards = {s: where for s, where in open_shards.items() if s not in done}  # rerun and finished since
    shards = done | set(open_shards)
    counts = {int(s.split("/")[1]) for s in shards}
    if len(counts) > 1:
        raise InputError(f"cannot merge shards of different counts ({', '.join(sorted(shards))}): "
                         "each --shard I/N split must be merged on its own")
    count = counts.pop() if counts else None
    if by_input and not unidentified:  # a whole run of a few of the images (a list of them) holds no split
        covered = set(by_input) <= whole_ids
    else:
        covered = bool(split_inputs) and split_inputs <= wholes
    missing = [] if covered or not count else sorted(set(range(count)) - {int(s.split("/")[0]) for s in shards})
    if not covered:
        unfinished += [open_shards[s] for s in sorted(open_shards)]
    mixed = [] if len(by_input) < 2 or covered else \
        [f"{', '.join(e['shards'])}: {e.get('images')} images" for e in sorted(by_input.values(), key=lambda e: e["shards"])]
    return _Coverage(missing, count, unfinished, sorted(done), sorted(open_shards), sorted(wholes),
                     list(by_input.values()), sorted(whole_ids), mixed)


def merge_folders(folders: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                  progress: bool = False) -> MergeSummary:
    """Merge batch output ``folders`` into ``out`` (see the module doc). Raises InputError for a
    folder without ``results.csv``, folders of different columns, engines or settings, and an
    ``out`` that is one of the inputs or already holds results. ``progress``: a line on standard error
    a minute with the rows merged so far (a million rows take minutes)."""
    if isinstance(folders, (str, bytes, os.PathLike)) or not hasattr(folders, "__iter__"):
        # a single folder's characters were taken for folders ("/: no results.csv")
        raise InputError(f"merge: expected a list of folders, got {type(folders).__name__}")
    paths = [Path(path_text(f, InputError, "a batch output folder")) for f in folders]
    out = Path(path_text(out, InputError, "an output folder"))
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
    # a new folder: merge writes its files whole or not at all, never over (or through a link to)
    # files that are there already
    partial = out / (RESULTS_NAME + ".partial")  # a merge killed outright leaves it: it is ours to replace
    _check_empty(out, partial)
    headers = {folder: _header(folder / RESULTS_NAME) for folder in paths}
    header = _merged_header(headers, paths[0])
    if header is None or "Image" not in header:
        raise InputError(f"{paths[0] / RESULTS_NAME}: not a chexmask-rt results file (no Image column)")
    manifests = _manifests(paths)
    _check_manifests(manifests)
    coverage = _coverage(manifests)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({os_reason(exc)})") from None
    # two merges into one new folder mixed their rows and manifests, or both failed and left files: one
    # holds the folder's lock, as a batch does, and the other is refused before it writes anything
    with folder_lock(out) as created:
        try:
            _check_empty(out, partial)  # again: another merge may have finished in it meanwhile
            return _merge_into(out, partial, paths, header, headers, manifests, coverage, progress)
        finally:
            if created:  # the merged folder holds its results alone, as before locks
                (out / LOCK_NAME).unlink(missing_ok=True)


def _check_empty(out: Path, partial: Path) -> None:
    """``out`` is absent or an empty folder but for what a killed merge leaves (its partial file, its lock)."""
    ours = (partial.name, LOCK_NAME)
    if out.exists() and (not out.is_dir() or any(p.name not in ours or p.is_symlink() for p in out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder; merge into a new folder")


def _merge_into(out: Path, partial: Path, paths: list[Path], header: list[str], headers: dict, manifests: dict,
                coverage: "_Coverage", progress: bool = False) -> MergeSummary:
    """The merge itself, holding ``out``'s lock: every file whole, or (refused or failed) none left."""
    keys = {folder: real_path_of(manifests.get(folder, {}).get(INPUTS_KEY) or []) for folder in paths}
    seen = _Seen()
    settings: dict[str, str] | None = None
    settings_from: Path | None = None
    rows = duplicates = 0
    said = time.monotonic()
    try:
        partial.unlink(missing_ok=True)
        with open(partial, "x", newline="", **ENCODING) as f:
            writer = LineWriter(f)
            writer.writerow(header)
            for number, folder in enumerate(paths, 1):
                for _, row in _rows(folder / RESULTS_NAME):
                    if progress and time.monotonic() - said >= LOG_INTERVAL_S:
                        said = time.monotonic()
                        say(f"merge: {rows} rows so far, folder {number} of {len(paths)} ({folder})")
                    these = {**{k: row.get(k, "") for k in _SETTING_COLUMNS}, "Second Look": _look(row)}
                    if settings is None:
                        settings, settings_from = these, folder
                    elif these != settings:
                        diff = ", ".join(f"{k} {these[k]!r} vs {settings[k]!r}"
                                         for k in these if these[k] != settings[k])
                        raise InputError(f"cannot merge {folder} with {settings_from}: {diff}; "
                                         "rows made with different settings must not be mixed")
                    if seen.has(row["Image"], keys[folder]):
                        duplicates += 1
                        continue
                    seen.add(row["Image"], keys[folder])
                    if "Results Schema" not in row:  # schema 1 did not say its number
                        row["Results Schema"] = str(schema_of(headers[folder] or ()) or "")
                    writer.writerow([row.get(c, "") for c in header])
                    rows += 1
        errors, skipped = _merge_side_files(paths, out, seen, keys)
        if len(manifests) == len(paths):  # the merged rows share one engine and settings: say which
            inputs = [pair for m in manifests.values() for pair in m.get(INPUTS_KEY) or []]
            complete = not coverage.missing and not coverage.unfinished and not coverage.mixed
            first = {k: v for k, v in next(iter(manifests.values())).items()
                     if k not in (INPUT_IDENTITY_KEY, OUTPUTS_KEY)}
            merged = {**first, "Shard": "merged",
                      INPUTS_KEY: [list(pair) for pair in dict.fromkeys(map(tuple, inputs))],
                      SHARDS_KEY: coverage.shards, UNFINISHED_SHARDS_KEY: coverage.open_shards,
                      WHOLE_INPUTS_KEY: coverage.whole_inputs, SPLIT_INPUTS_KEY: coverage.split_inputs,
                      WHOLE_IDENTITIES_KEY: coverage.whole_identities, FINISHED_KEY: complete}
            (out / MANIFEST_NAME).write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
        os.replace(partial, out / RESULTS_NAME)  # last: a folder with results.csv is a finished merge
    except BaseException:  # a refused or failed merge leaves nothing behind: the folder was empty
        for name in (partial.name, ERRORS_NAME, SKIPPED_NAME, MANIFEST_NAME):
            (out / name).unlink(missing_ok=True)
        raise
    return MergeSummary(folders=len(paths), rows=rows, duplicates=duplicates, errors=errors, skipped=skipped,
                        missing_shards=coverage.missing, shard_count=coverage.count, unfinished=coverage.unfinished,
                        mixed_inputs=coverage.mixed)


class _Seen:
    """The images merged so far. Two rows are one image when their real paths agree (from their
    folders' manifests: one file however a run spelled its INPUT, a folder or a list), or, where
    either has none (a folder without a manifest), when they are written alike; two real paths
    that differ are two images, however alike they are written (two exports' exp/IM00001.dcm)."""

    def __init__(self) -> None:
        self._real: set[str] = set()
        self._written: set[str] = set()         # every row's path as written
        self._written_unknown: set[str] = set()  # of rows without a real path

    def has(self, image: str, real_path_of) -> bool:
        real = real_path_of(image)
        if real is None:
            return image in self._written
        return real in self._real or image in self._written_unknown

    def add(self, image: str, real_path_of) -> None:
        real = real_path_of(image)
        self._written.add(image)
        if real is None:
            self._written_unknown.add(image)
        else:
            self._real.add(real)


def _merge_side_files(folders: Sequence[Path], out: Path, segmented: _Seen, keys: dict) -> tuple[int, int]:
    """Merge ``errors.csv`` (the first reason per image no folder segmented; images compared as
    :class:`_Seen` does) and ``skipped.csv`` (each file once); returns the numbers of errors and of
    skipped files written."""
    counts = {}
    for name, header in ((ERRORS_NAME, list(ERROR_COLUMNS)), (SKIPPED_NAME, ["File", "Reason"])):
        written = _Seen()
        sources = [folder / name for folder in folders if (folder / name).is_file()]
        if name == SKIPPED_NAME and not sources:
            continue
        counts[name] = 0
        with open(out / name, "w", newline="", **ENCODING) as f:
            writer = LineWriter(f)
            writer.writerow(header)
            for source in sources:
                # skipped files are not images of an INPUT: compared as written
                key = keys[source.parent] if name == ERRORS_NAME else (lambda _: None)
                for _, row in _rows(source):
                    image = row.get(header[0], "")
                    if written.has(image, key) or (name == ERRORS_NAME and segmented.has(image, key)):
                        continue
                    written.add(image, key)
                    writer.writerow([row.get(c, "") for c in header])
                    counts[name] += 1
    return counts[ERRORS_NAME], counts.get(SKIPPED_NAME, 0)
