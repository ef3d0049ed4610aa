"""The output folder of ``chexmask-rt batch``: its lock, its manifest, resuming, and writing rows.

- **Lock.** A run holds ``flock`` on ``.chexmask-rt.lock`` for its whole life, so a second run into
  the same folder is refused and told who holds it. The kernel drops the lock when its process
  dies, however it dies, so a killed run leaves no stale lock (the file stays, unlocked).
- **Manifest.** ``batch.json`` records the engine's sha256 and the settings that shape the
  results. A folder is resumed only by a run with the same ones; a folder holding
  ``results.csv``, ``errors.csv`` or ``masks/`` without a manifest was not written by
  ``chexmask-rt batch`` and is refused before anything in it is touched, unless its
  ``results.csv`` is an older release's (results schema 1, recognised by its exact header).
- **Schemas.** ``results.csv`` says its results schema (:mod:`chexmask_rt.csv_output`): a folder
  whose header is an older schema's is rewritten, streamed, to the current columns before it is
  resumed (new columns empty, each row keeping its ``Results Schema``), so a release that adds a
  column resumes the folders of the one before.
- **Resume.** ``results.csv`` is read as a stream, one record at a time, keeping only the set
  of finished image names; an image is matched by its path below the run's INPUT folder, of
  which the manifest keeps each spelling with its real path (:class:`Done`). Whatever a killed
  run cut short (inside the header, inside a row, inside a quoted path) is cut off the end and
  redone; duplicate rows are tolerated.
- **Rows** are written whole or not at all: a failed write is truncated back, so a full disk
  leaves no half row behind.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .csv_lines import csv_line
from .csv_output import COLUMNS, COLUMNS_V1, SCHEMA_VERSION, schema_of
from .errors import InputError, os_reason
from .notice import INTENDED_USE
from .whole_files import ENCODING, write_text_whole

RESULTS_NAME, ERRORS_NAME, MASKS_NAME = "results.csv", "errors.csv", "masks"
MANIFEST_NAME, LOCK_NAME = "batch.json", ".chexmask-rt.lock"
MANIFEST_FORMAT = "chexmask-rt batch 1"
# the input folders whose images the folder holds, each as [spelled as the run gave it, its real path]:
# resume compares images by their path below the folders that are this run's INPUT (the same real path),
# so a rerun may spell INPUT another way (./a, /abs/a, from another working folder)
INPUTS_KEY = "Inputs"
# false from a run's start until it has tried every image: merge names a folder whose run was killed
FINISHED_KEY = "Finished"
# the last run's whole input, shard or not (chexmask_rt.shards.input_identity): merge tells shards of
# one input from shards of two, and a whole run of it from a run of a few of its images
INPUT_IDENTITY_KEY = "Input"
# the pictures and DICOM objects (flag -> value) that every run which left rows asked for: a rerun that
# asks for one of them again resumes quietly, one that adds another is told the finished images have none
OUTPUTS_KEY = "Outputs"


def _os_error(path: Path, what: str, exc: OSError) -> InputError:
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link: writing through it would change a file elsewhere
        return InputError(f"{path}: cannot {what}: a symbolic link where the batch writes its own file; "
                          "remove it or use another --out")
    return InputError(f"{path}: cannot {what} ({os_reason(exc)})")


@contextmanager
def folder_lock(out: Path) -> Iterator[bool]:
    """Hold the output folder's lock; InputError naming the holder when another run has it. Yields
    whether the lock file was made now (a folder refused afterwards gets rid of it)."""
    import fcntl

    path = out / LOCK_NAME
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # the umask decides, as for the rest
    except OSError as exc:
        raise _os_error(out, "write in the output folder", exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "a process that is starting"
            raise InputError(f"{out}: in use by another chexmask-rt run ({holder}); wait for it to end "
                             "or use another --out") from None
        try:  # who holds it, for the message above; the lock itself does not depend on this text
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        except OSError:
            pass
        yield created
    finally:
        os.close(fd)  # releases the lock


def folder_in_use(out: Path) -> str | None:
    """Who holds ``out``'s lock (a batch still writing it), or None. Takes no lock and creates nothing."""
    import fcntl

    try:
        fd = os.open(out / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no lock file: no batch has run there since locks exist
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "a process that is starting"
    finally:
        os.close(fd)


def mark_finished(out: Path) -> None:
    """Record in the manifest that this run has tried every image (:data:`FINISHED_KEY`)."""
    manifest = out / MANIFEST_NAME
    _write_manifest(manifest, {**json.loads(manifest.read_text(encoding="utf-8")), FINISHED_KEY: True})


class Done:
    """The images a folder already holds; ``image in done`` asks about one of this run's. With the
    spellings of this run's INPUT folder, both sides are compared by their path below it
    (:func:`_key`), so an image a run that spelled the folder otherwise did counts as done, and
    one of another folder never matches; without, by the path as written."""

    def __init__(self, images: set[str], roots: list[str] | None = None, outputs: dict[str, str] | None = None):
        self.images = images  # as results.csv spells them
        self.outputs = outputs or {}  # what every earlier run with rows here wrote (OUTPUTS_KEY)
        # ordered once here, not for each of the archive's images
        self._bases = None if roots is None else _specific_first(roots)
        self._keys = images if self._bases is None else {_key(image, self._bases) for image in images}

    def __contains__(self, image: object) -> bool:
        return (image if self._bases is None else _key(str(image), self._bases)) in self._keys


def open_folder(out: Path, identity: dict[str, str], input_root: str | None = None,
                input_identity: dict[str, int | str] | None = None, outputs: dict[str, str] | None = None) -> Done:
    """Check that ``out`` may receive this run's results, repair a cut ``results.csv`` and write the
    manifest; returns the images already done. Call it holding :func:`folder_lock`.

    ``identity``: the engine's sha256 and the settings, as strings; a folder made with others is refused.
    ``input_root``: the folder this run's images lie in (:func:`chexmask_rt.shards.resume_root`), kept in
    the manifest with its real path, so that a rerun may spell it otherwise (:class:`Done`).
    ``input_identity``: the whole input's (:func:`chexmask_rt.shards.input_identity`), kept for merge.
    ``outputs``: the pictures and DICOM objects this run writes, as {flag: value}; the returned
    ``Done.outputs`` are those every earlier run that left rows wrote (none known for a folder of a
    release that did not record them)."""
    linked = [out / n for n in (RESULTS_NAME, ERRORS_NAME, MANIFEST_NAME) if (out / n).is_symlink()]
    if linked:  # appending to, repairing or truncating it would change the file it points to
        raise InputError(f"{linked[0]}: a symbolic link where the batch writes its own file; nothing was changed: "
                         "remove it or use another --out")
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        recorded = _check_manifest(manifest, identity)
    else:
        foreign = [n for n in (RESULTS_NAME, ERRORS_NAME, MASKS_NAME) if (out / n).exists()]
        if foreign and not _adopt_older_release(out / RESULTS_NAME, identity):
            raise InputError(f"{out}: holds {', '.join(foreign)} but no {MANIFEST_NAME}, so chexmask-rt batch did "
                             "not write it; nothing was changed: use another --out")
        recorded = {"format": MANIFEST_FORMAT, **identity}
    inputs = [list(pair) for pair in recorded.get(INPUTS_KEY) or []]
    here = None if input_root is None else [input_root, os.path.realpath(input_root)]
    # rows keep the images' paths as spelled: the same spelling of another folder would take that
    # folder's rows for this one's images (two PACS exports, each "exp/IM00001.dcm")
    clash = [real for spelled, real in inputs if here is not None and spelled == here[0] and real != here[1]]
    if here is not None and clash:
        raise InputError(f"{out}: INPUT {here[0]!r} was {clash[0]} in an earlier run into this folder and is {here[1]} "
                         "now, and rows name images as spelled, so the earlier rows would be taken for these "
                         "images; spell INPUT as an absolute path, or use another --out")
    if here is not None and here not in inputs:
        inputs.append(here)
    done = _done_images(out / RESULTS_NAME)
    earlier = recorded.get(OUTPUTS_KEY)
    earlier = earlier if isinstance(earlier, dict) and done else {}
    asked = outputs or {}
    # rows from here on may be of this run, so only what it asks for too stays true of every row
    kept = {flag: value for flag, value in earlier.items() if asked.get(flag) == value} if done else asked
    _write_manifest(manifest, {**recorded, **({INPUTS_KEY: inputs} if inputs else {}),
                               **({INPUT_IDENTITY_KEY: input_identity} if input_identity else {}),
                               OUTPUTS_KEY: kept, FINISHED_KEY: False})
    if here is None:
        return Done(done, outputs=earlier)
    return Done(done, [spelled for spelled, real in inputs if real == here[1]], earlier)  # this INPUT, however spelled


def _specific_first(roots: Sequence[str]) -> list[str]:
    """The spellings of one folder, normalised, the most specific first: "arch/a.png" lies below
    "arch" before it lies below "."."""
    return sorted({os.path.normpath(root) for root in roots}, key=lambda base: (base == ".", -len(base)))


def below(image: str, bases: Sequence[str]) -> tuple[str, str] | None:
    """(base, ``image``'s normalised path below it) for the first of ``bases`` (:func:`_specific_first`)
    that holds it as written; None when none does (an entry of a list outside its folder, or an image
    of another INPUT). A base "." holds every relative path without "..": images of a list in the
    working folder are written without "./"."""
    path = os.path.normpath(image)
    for base in bases:
        if base == "." and not os.path.isabs(path) and path != ".." and not path.startswith("../"):
            return base, path
        prefix = base.rstrip("/") + "/"
        if path.startswith(prefix):
            return base, path[len(prefix):]
    return None


def _key(image: str, bases: Sequence[str]) -> str | tuple[str, str]:
    """``image``'s path below this run's INPUT (:func:`below`), tagged so that it never equals a path
    as written; else the image as written."""
    found = below(image, bases)
    return image if found is None else ("below INPUT", found[1])


def real_path_of(inputs: Sequence[Sequence[str]]):
    """For the rows of a folder whose manifest records ``inputs`` ([spelled, real path] pairs): a
    function of an image as written to its real path (its INPUT's real path joined with its path
    below it), or None when no INPUT holds it. Rows of one file spelled otherwise, by a list or a
    folder, get one real path (merge)."""
    real = {os.path.normpath(spelled): path for spelled, path in inputs}
    bases = _specific_first(list(real))

    def key(image: str) -> str | None:
        found = below(image, bases)
        if found is None:
            return os.path.normpath(image) if os.path.isabs(image) else None
        return os.path.normpath(os.path.join(real[found[0]], found[1]))
    return key


def _done_images(results: Path) -> set[str]:
    if not results.exists():
        return set()
    older = schema_of(_header_of(results))
    if older is not None and 1 < older < SCHEMA_VERSION:  # schema 1 has no manifest: adopted above
        _rewrite_to_current(results, older)
    done, whole = scan_results(results)
    try:
        if results.stat().st_size > whole:  # what a killed run cut short: dropped, and redone below
            os.truncate(results, whole)
    except OSError as exc:
        raise _os_error(results, "repair the end a killed run cut short", exc) from None
    return done


def _adopt_older_release(results: Path, identity: dict[str, str]) -> bool:
    """Take over the folder of a release before the manifest: False unless ``results`` begins with
    exactly the header that release wrote (results schema 1). Its rows must have been made with this
    run's model name, samples, seed and second-look setting (that release recorded no engine
    sha256, so the name is what can be compared); they are then rewritten, streamed, to the
    current columns, marked schema 1. Nothing is changed when they were not."""
    try:
        with open(results, "rb") as f:
            if f.readline() != _record(COLUMNS_V1):
                return False
    except OSError:
        return False
    _rewrite_to_current(results, 1, lambda row: _check_older_row(results, row, identity))
    return True


def _header_of(results: Path) -> tuple[str, ...]:
    """The column names of a results file's first line (empty when it has none)."""
    try:
        with open(results, newline="", **ENCODING) as f, csv_fields_of_any_size():
            return tuple(next(csv.reader(f), ()))
    except OSError as exc:
        raise _os_error(results, "read the results file", exc) from None


def _rewrite_to_current(results: Path, schema: int, check_row=None) -> None:
    """Rewrite ``results``, of results schema ``schema``, to the current columns, streamed and whole
    or not at all; new columns stay empty, and schema 1's rows get its number and the intended use.
    ``check_row`` may refuse a row (an InputError) before anything is replaced."""
    from .csv_output import SCHEMA_HEADERS

    _, whole = scan_results(results, SCHEMA_HEADERS[schema - 1])  # what a killed run cut short stays behind
    upgraded = results.with_name(results.name + ".upgrade")
    try:
        upgraded.unlink(missing_ok=True)  # a killed upgrade's, or a link: never written through
        with open(upgraded, "x", newline="", **ENCODING) as new, csv_fields_of_any_size():
            new.write(csv_line(COLUMNS))
            for row in csv.DictReader(_lines(results, whole)):
                if check_row is not None:
                    check_row(row)
                if schema == 1:
                    row = {**row, "Results Schema": "1", "Intended Use": INTENDED_USE}
                new.write(csv_line([row.get(c, "") for c in COLUMNS]))
        os.replace(upgraded, results)  # whole or not at all
    except OSError as exc:
        raise _os_error(results, "rewrite to the current results schema", exc) from None
    finally:
        upgraded.unlink(missing_ok=True)


def _check_older_row(results: Path, row: dict[str, str], identity: dict[str, str]) -> None:
    looked = "off" if row.get("Second Look") == "off" else "on"  # schema 1 wrote how: pooled, crop_only, none
    for key, value in (("Model", row.get("Model")), ("Samples", row.get("Samples")), ("Seed", row.get("Seed")),
                       ("Second Look", looked)):
        if value != identity[key]:
            raise InputError(f"{results}: made with {key} {value!r}, this run uses {identity[key]!r}; "
                             "use another --out or the same model and settings")


def _lines(path: Path, length: int) -> Iterator[str]:
    """The text lines of the first ``length`` bytes of ``path``, one at a time."""
    with open(path, "rb") as f:
        position = 0
        for line in f:
            if position >= length:
                return
            position += len(line)
            yield line.decode(**ENCODING)


def _check_manifest(manifest: Path, identity: dict[str, str]) -> dict:
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest}: unreadable batch manifest ({exc}); use another --out") from None
    if not isinstance(recorded, dict) or recorded.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{manifest}: not a {MANIFEST_FORMAT} manifest; use another --out")
    # every difference: after an upgrade the engine's sha256 alone did not say that the default model, and
    # with it the second look's default, had changed
    differences = [f"made with {key} {recorded.get(key)!r}, this run uses {value!r}"
                   for key, value in identity.items() if recorded.get(key) != value]
    if differences:
        raise InputError(f"{manifest.parent}: {'; '.join(differences)}; use another --out or the same engine and "
                         "settings")
    return recorded


def _write_manifest(manifest: Path, fields: dict) -> None:
    try:  # whole or absent: a manifest is what makes the folder ours
        write_text_whole(manifest, json.dumps(fields, indent=1) + "\n")
    except OSError as exc:
        raise _os_error(manifest, "write the batch manifest", exc) from None


@contextmanager
def csv_fields_of_any_size() -> Iterator[None]:
    # RLE columns of a large image outgrow the csv module's default 128 KiB field limit
    before = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def whole_records(path: Path) -> Iterator[tuple[bytes, int]]:
    """(record, byte offset after it) for each whole CSV record of ``path``, streamed; the rest after
    the last one (what a killed run cut short) is not yielded. A record is whole when it ends in a
    newline outside quotes (the csv module doubles quotes inside fields, so the count of quote
    characters is even exactly there)."""
    position = 0
    pending: list[bytes] = []
    quotes = 0
    with open(path, "rb") as f:
        for line in f:
            position += len(line)
            pending.append(line)
            quotes += line.count(b'"')
            if quotes % 2 or not line.endswith(b"\n"):
                continue  # a newline inside a quoted field, or the file's cut end
            record, pending, quotes = b"".join(pending), [], 0
            yield record, position


def record_fields(record: bytes) -> list[str]:
    """The fields of one whole record of :func:`whole_records`."""
    return next(csv.reader(io.StringIO(record.decode(**ENCODING), newline="")), [])


def scan_results(results: Path, columns: Sequence[str] = COLUMNS) -> tuple[set[str], int]:
    """(image names of the whole rows, byte length of the whole records) of a results file
    with ``columns``. Streams it: memory holds one record and the set of names, whatever the
    file's size."""
    header = _record(columns)
    done: set[str] = set()
    whole = 0
    seen_header = False
    try:
        with csv_fields_of_any_size():
            for record, end in whole_records(results):
                if not seen_header:
                    if record != header:
                        raise InputError(f"{results}: not a chexmask-rt batch results file (other columns); "
                                         "use another --out")
                    seen_header = True
                else:
                    fields = record_fields(record)
                    if len(fields) != len(columns):  # a cut leaves no newline after it: this was edited
                        raise InputError(f"{results}: a malformed row at byte {whole}; the file was changed by "
                                         "something other than chexmask-rt batch; use another --out")
                    done.add(fields[0])
                whole = end
        if not seen_header:
            with open(results, "rb") as f:
                start = f.read(len(header) + 1)
            if not header.startswith(start):
                raise InputError(f"{results}: not a chexmask-rt batch results file (other columns); use another --out")
    except OSError as exc:
        raise _os_error(results, "read the results file", exc) from None
    return done, whole


def _record(fields: Sequence[str]) -> bytes:
    return csv_line(fields).encode(**ENCODING)


class Appender:
    """A CSV file written one whole row at a time: a failed write (a full disk) is truncated back,
    so the file never ends in half a row. ``mode`` 'a' appends, 'w' starts afresh."""

    def __init__(self, path: Path, columns: Sequence[str], mode: str):
        self.path = path
        self._columns = tuple(columns)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode == "a" else os.O_TRUNC)
        try:
            self._fd = os.open(path, flags, 0o666)  # a group's umask lets its members resume the folder
            if os.fstat(self._fd).st_size == 0:
                self._put(_record(self._columns))
        except OSError as exc:
            raise _os_error(path, "write", exc) from None

    def write(self, row: dict) -> None:
        """Append one row; OSError when it cannot be written (nothing of it stays in the file)."""
        self._put(_record([row.get(c, "") for c in self._columns]))

    def _put(self, data: bytes) -> None:
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # the next resume cuts the half row off instead
            raise

    def close(self) -> None:
        os.close(self._fd)
