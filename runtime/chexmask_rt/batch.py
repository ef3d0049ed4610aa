"""Segmenting a whole archive: ``chexmask-rt batch``.

A pool of decoder threads reads images (file I/O, JPEG/DICOM decoding) while
the main thread runs the engine on chunks of already-decoded images, so decoding
overlaps inference (both release the GIL in their heavy parts).

Output folder (locked, checked and resumed by :mod:`chexmask_rt.batch_folder`):
- ``results.csv``: one CheXmask-U-style row per image (:mod:`chexmask_rt.csv_output`),
  appended whole as each image finishes;
- ``errors.csv``: ``Image,Error,Reason`` for each image that failed in this run;
- ``masks/`` with ``--masks``: ``<name>_{right_lung,left_lung,heart}.png``;
- ``overlays/`` with ``--overlays all|flagged``: ``<name>.png``, the picture of each image's result
  (:mod:`chexmask_rt.overlay`), or of those the reliability flag marks, to look through;
- with ``--dicom-seg DIR`` / ``--dicom-sr DIR``: ``DIR/<name>.seg.dcm`` / ``.sr.dcm`` for the
  images segmented in this run (:mod:`chexmask_rt.dicom_out`);
- ``skipped.csv``: ``File,Reason`` for each file the folder discovery skipped in this run (absent
  when none was);
- ``batch.json``: the engine's sha256, the settings and each run's INPUT folder (as spelled and
  its real path); ``.chexmask-rt.lock``.

Re-running with the same output folder skips every image already in
``results.csv``, matched by its path below INPUT however a run spelled the folder (whatever a
kill cut short is dropped and redone), and retries the failed ones. A folder made with another
engine (by sha256, not by name) or other samples / seed / second-look setting is refused rather
than mixed. An older release's folder
(results schema 1, no ``batch.json``) is rewritten to the current columns first
(:func:`chexmask_rt.batch_folder.open_folder`).
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .anatomy import ORGANS
from .batch_folder import (ERRORS_NAME, LOCK_NAME, MASKS_NAME, RESULTS_NAME, Appender, folder_lock, mark_finished,
                           open_folder)
from .csv_output import COLUMNS, csv_row, write_masks
from .dicom_out import write_objects
from .dicom_source import with_source
from .discovery import IMAGE_SUFFIXES, SKIPPED_NAME, discover, write_skipped
from .errors import ChexmaskError, InputError, os_reason, path_text
from .image_io import read_image, to_gray
from .in_work import InWork, RunKilled, killed_reason
from .limits import resolve_max_pixels
from .inputs import DEFAULT_BATCH, check_count, check_image_list, check_run_arguments
from .streaming import segment_each, submit_or_run
from .whole_files import check_folder_path

ERROR_COLUMNS = ("Image", "Error", "Reason")


@dataclass
class BatchSummary:
    """What one ``run_batch`` call did."""

    total: int       # distinct images listed in the input
    done: int        # segmented in this run
    skipped: int     # already in results.csv from an earlier run
    failed: int      # recorded in errors.csv
    seconds: float
    flagged: int = 0  # of the done, how many the reliability flag marks for review
    repeats: int = 0  # entries of the input that named an image listed before (one image, one row)
    # the outputs this run asked for (as flags) that the images already in results.csv may lack: an earlier
    # run with rows there did not write them (a plain resume of a run with --masks lacks none)
    outputs_missing: tuple[str, ...] = ()

    @property
    def images_per_second(self) -> float:
        """Images segmented in this run per second of its wall time."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def text(self, out_dir: Path) -> str:
        """The one-line summary ``chexmask-rt batch`` prints."""
        flagged = f" ({self.flagged} flagged for review: Quality Flag True)" if self.flagged else ""
        # "skipped" named these and, a line above, the files discovery leaves out: two meanings
        repeats = f" ({self.repeats} repeated {'entry' if self.repeats == 1 else 'entries'} left out)" \
            if self.repeats else ""
        line = (f"{self.total} images{repeats}: {self.done} done{flagged}, {self.skipped} already in "
                f"{out_dir / RESULTS_NAME}, {self.failed} failed; {self.seconds:.1f} s, "
                f"{self.images_per_second:.2f} images/s")
        return line + (f"; reasons in {out_dir / ERRORS_NAME}" if self.failed else "")

    def stopped_text(self, out_dir: Path) -> str:
        """The account of a run stopped before its end (Ctrl-C, SIGTERM)."""
        tried = self.done + self.failed
        waiting = self.total - self.skipped - tried
        return (f"stopped after {tried} of the {self.total - self.skipped} images to do: {self.done} done, "
                f"{self.failed} failed, {waiting} not started; {self.skipped + self.done} in "
                f"{out_dir / RESULTS_NAME}")


def run_progress(summary: BatchSummary, desc: str, enabled: bool):
    """A run's progress bar over all its images, starting at those an earlier run did (a resumed run
    showed 0/756 of 1,960, 1,204 done), with its failures so far."""
    from .progress import progress_bar

    bar = progress_bar(summary.total, desc, enabled=enabled, initial=summary.skipped + summary.done + summary.failed)
    if summary.failed:
        bar.set_postfix(failed=summary.failed)
    return bar


class RunRows:
    """One run's rows: results.csv appended, errors.csv started afresh (failures are retried, so it
    holds this run's only), each row counted into ``summary``. Local and Ray runs record through it."""

    def __init__(self, out: Path, summary: BatchSummary):
        self.summary = summary
        self.results = Appender(out / RESULTS_NAME, COLUMNS, "a")
        try:
            self.errors = Appender(out / ERRORS_NAME, ERROR_COLUMNS, "w")
        except InputError:
            self.results.close()
            raise

    def close(self) -> None:
        self.results.close()
        self.errors.close()

    def segmented(self, row: dict[str, str]) -> bool:
        """Append an image's results row; a row that cannot be written fails that image alone (False)."""
        try:
            self.results.write(row)
        except OSError as exc:
            self.failed(row["Image"], InputError.__name__,
                        f"{row['Image']}: cannot write its row to {self.results.path} ({os_reason(exc)})")
            return False
        self.summary.done += 1
        self.summary.flagged += row["Quality Flag"] == "True"
        return True

    def failed(self, image: str, error: str, reason: str) -> None:
        """Record an image's failure; one that cannot be recorded stops the run (InputError)."""
        try:
            self.errors.write({"Image": image, "Error": error, "Reason": reason})
        except OSError as exc:
            raise InputError(f"{self.errors.path}: cannot record a failure ({os_reason(exc)}); stopped at "
                             f"{image}, which the next run will retry with the rest") from None
        self.summary.failed += 1


def collect_inputs(source: str | os.PathLike[str], *, exclude: str | os.PathLike[str] | None = None) -> list[str]:
    """The images named by ``source``: a folder (searched recursively for PNG/JPEG/TIFF/BMP/DICOM,
    DICOM also by its marker whatever the name: :func:`chexmask_rt.discovery.discover`, leaving out
    the folder ``exclude``, e.g. the output folder), a .txt (or .lst, .list) list (one path per line;
    a line starting with '#' is a comment: write ./#name for such a file) or a .csv list (column 'path',
    'image', 'file', 'filename', 'Image Index' and the like: ``_PATH_COLUMNS``; else the first; no
    comments).
    Relative paths in a list are relative to the list's folder. Names are taken exactly as
    written: any legal file name survives (spaces, form feeds, U+2028; newlines in a quoted CSV field)."""
    src = Path(source)
    if src.is_dir():
        return discover(src, exclude=exclude).images
    if not src.is_file():
        raise InputError(f"{src}: no such file or folder")
    suffix = src.suffix.lower()
    if suffix not in (".csv", ".txt", ".lst", ".list"):
        raise InputError(f"{src}: not a folder, nor a .txt or .csv list of images")
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise InputError(f"{src}: cannot read the image list ({os_reason(exc)})") from None
    text = _list_text(data, src)
    # '#' starts a comment in a text list only: a CSV cell "#1.png" is a name (it was dropped without a trace)
    names = _csv_names(text, src) if suffix == ".csv" else [n for n in _text_names(text) if not n.startswith("#")]
    names = [n for n in names if n]
    return [n if Path(n).is_absolute() else str(src.parent / n) for n in names]


def _list_text(data: bytes, src: Path) -> str:
    """A list file's text: UTF-8 (names that are not survive as their bytes; utf-8-sig drops the
    byte-order mark Excel and Notepad write), or UTF-16 with its byte-order mark (Notepad's "Unicode").
    No file name holds a NUL byte: a list with one is refused before any work (it ended the run with a
    traceback, after the output folder was made)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"{src}: a UTF-16 image list that does not decode ({exc.reason}); save it as UTF-8") \
                from None
    if b"\0" in data:
        raise InputError(f"{src}: the image list holds a NUL byte, which no file name does (UTF-16 without its "
                         "byte-order mark?); save it as UTF-8")
    return data.decode("utf-8-sig", "surrogateescape")


def _text_names(text: str) -> list[str]:
    # one name per "\n": str.splitlines would also split at form feeds, U+2028 and the like
    lines = text.split("\n")
    if any(line.endswith("\r") for line in lines[:-1]):
        # a CRLF list, lines appended on Linux too: a CR no name ends with would fail an existing image
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


# A CSV list's image column, by its header (any case), in this order; without one, the first column holds names
# from the first row on. NIH ChestX-ray14's 'Image Index' and 'filename' headers were taken for an image each.
_PATH_COLUMNS = ("path", "image", "file", "filename", "file_name", "image index", "image_path", "imageid", "image_id")


def _csv_names(text: str, src: Path) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""))  # keeps newlines inside quoted fields
    try:
        rows = list(reader)
    except csv.Error as exc:  # a cell past the csv module's field limit (a report's text column): a traceback
        raise InputError(f"{src}: cannot read the image list as CSV (line {reader.line_num}: {exc})") from None
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(k) for k in _PATH_COLUMNS if k in header), None)
    body = rows[1:] if column is not None else rows
    return [r[column or 0] for r in body if len(r) > (column or 0)]


def distinct_images(images: Iterable[str]) -> list[str]:
    """``images`` without repeats, each as first spelled: one path written relative and absolute, or
    with "./" or "//", is one image (merge counts it once too); links stay images of their own."""
    first: dict[str, str] = {}
    for image in images:
        first.setdefault(os.path.abspath(image), image)
    return list(first.values())


def picture_stem(image: str) -> str:
    """The stem an image's pictures and objects are named by: its name without an image suffix. A name
    with another dot in it keeps it whole: PACS exports name DICOM files by UID, and '1.2.840...498.101'
    and '...498.102' both lost their last component."""
    path = Path(image)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name


def mask_stems(images: Sequence[str], earlier: Iterable[str] = ()) -> dict[str, str]:
    """A file-name stem per image; stems shared by several images get a short hash of the path (its
    bytes: a name need not be UTF-8). ``earlier``: images an output folder already holds, whose
    pictures took their plain names in earlier runs (another INPUT's x.png must not replace them).
    A hashed stem may equal another image's own name (a file named ``a_2d14bed8.png`` beside two
    ``a.png``: a batch wrote both images' masks to one name): the images whose stems still meet get
    longer hashes, then a number in path order, until every stem is its image's alone."""
    everyone = list(dict.fromkeys([*images, *earlier]))
    counts: dict[str, int] = {}
    for image in everyone:
        counts[picture_stem(image)] = counts.get(picture_stem(image), 0) + 1

    def hashed(image: str, digits: int) -> str:
        return f"{picture_stem(image)}_{hashlib.sha1(os.fsencode(image)).hexdigest()[:digits]}"

    names = {image: picture_stem(image) if counts[picture_stem(image)] == 1 else hashed(image, 8) for image in everyone}
    for digits in (16, 40):
        for group in _sharing(names):
            for image in group:
                names[image] = hashed(image, digits)
    taken = set(names.values())
    for group in _sharing(names):  # names made to meet: the first in path order keeps it, the others count on
        for image in group[1:]:
            n = 2
            while f"{names[image]}_{n}" in taken:
                n += 1
            names[image] = f"{names[image]}_{n}"
            taken.add(names[image])
    return {image: names[image] for image in images}


def _sharing(names: dict[str, str]) -> list[list[str]]:
    """The images (sorted) of each name that more than one image has."""
    by_name: dict[str, list[str]] = {}
    for image, name in names.items():
        by_name.setdefault(name, []).append(image)
    return [sorted(group) for group in by_name.values() if len(group) > 1]


def run_identity(segmenter, samples: int, seed: int, second_look: bool, shard: str | None = None) -> dict[str, str]:
    """What an output folder's rows share, as its manifest records it (:mod:`chexmask_rt.batch_folder`):
    the engine's sha256 and the settings; ``shard`` "I/N" for one of N shards."""
    return {"Engine SHA256": segmenter.engine_sha256, "Model": segmenter.model_id, "Samples": str(samples),
            "Seed": str(seed), "Second Look": "on" if second_look else "off", "Shard": shard or "all"}


def picture_outputs(masks: bool, overlays: str | None, dicom_seg: str | os.PathLike[str] | None,
                    dicom_sr: str | os.PathLike[str] | None) -> dict[str, str]:
    """The pictures and DICOM objects a run writes for each image it segments, as {flag: value}
    (folders by their real path, so a rerun from another working folder asks for the same)."""
    asked = {"--masks": "on" if masks else None, "--overlays": overlays,
             "--dicom-seg": dicom_seg and os.path.realpath(dicom_seg),
             "--dicom-sr": dicom_sr and os.path.realpath(dicom_sr)}
    return {flag: str(value) for flag, value in asked.items() if value}


@contextmanager
def prepare_output(segmenter, images: Sequence[str], out_dir: str | os.PathLike[str], samples: int, seed: int,
                   second_look: bool | None, shard: str | None = None,
                   skipped: Sequence[tuple[str, str]] = (),
                   input_root: str | None = None, input_identity: dict[str, int | str] | None = None,
                   outputs: dict[str, str] | None = None,
                   ) -> Iterator[tuple[Path, bool, BatchSummary, list[str], dict[str, str]]]:
    """Create and lock the output folder and check it against this run (resume), for the run's
    lifetime; yields (folder, the resolved second-look setting, the run's summary so far (its
    images counted, none done), the unique images not yet in results.csv, their pictures' file-name stems (:func:`mask_stems`, against the images the
    folder already holds too)). Shared by the local and the Ray run. ``skipped`` (file, reason) pairs of the
    folder discovery go to ``skipped.csv`` once the folder is accepted: a refused folder is left
    as it was. ``input_root``: the folder the images lie in (INPUT, or a list's folder); with it an
    image counts as done by its path below that folder, however an earlier run spelled the folder.
    ``input_identity``: the whole input's (:func:`chexmask_rt.shards.input_identity`), for merge.
    ``outputs``: the run's :func:`picture_outputs`, recorded so that a resume knows what the images
    already done have (``BatchSummary.outputs_missing``)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({os_reason(exc)})") from None
    second_look = segmenter.info.second_look if second_look is None else second_look
    listed = list(images)
    unique = distinct_images(listed)
    with folder_lock(out) as created:
        try:
            done_before = open_folder(out, run_identity(segmenter, samples, seed, second_look, shard), input_root,
                                      input_identity, outputs)
        except InputError:
            if created:
                (out / LOCK_NAME).unlink(missing_ok=True)
            raise
        if skipped:
            write_skipped(out, skipped)
        else:  # an earlier run's list would name files that are fixed or gone now
            (out / SKIPPED_NAME).unlink(missing_ok=True)
        todo = [i for i in unique if i not in done_before]
        missing = tuple(flag for flag, value in (outputs or {}).items()
                        if done_before.outputs.get(flag) != value and len(todo) < len(unique))
        summary = BatchSummary(total=len(unique), done=0, skipped=len(unique) - len(todo), failed=0, seconds=0.0,
                               repeats=len(listed) - len(unique), outputs_missing=missing)
        try:
            yield out, second_look, summary, todo, mask_stems(todo, earlier=[*done_before.images, *unique])
        except KeyboardInterrupt as stop:  # the account a run that finishes prints: where this one stopped
            if hasattr(stop, "add_note"):
                stop.add_note(summary.stopped_text(out))
            else:  # Python 3.10: the attribute add_note fills (undeclared there, hence the ignore)
                stop.__notes__ = [*getattr(stop, "__notes__", []), summary.stopped_text(out)]  # type: ignore[attr-defined]
            raise
        mark_finished(out)  # not reached when the run raised or was interrupted


OVERLAYS_NAME = "overlays"
OVERLAY_CHOICES = (None, "all", "flagged")


def check_overlays(overlays: str | None) -> None:
    if overlays not in OVERLAY_CHOICES:
        raise InputError(f"overlays must be one of {', '.join(map(str, OVERLAY_CHOICES))}, got {overlays!r}")


def check_outputs(segmenter, overlays: str | None, dicom_seg, dicom_sr) -> None:
    """A run's per-image outputs, checked before any image (local and Ray runs): the overlay choice, an
    engine whose id DICOM objects cannot carry and a DICOM folder that is a file (each a fault of the run,
    said once, not every image's after its inference)."""
    check_overlays(overlays)
    if dicom_seg or dicom_sr:
        from .dicom_out import check_model_id_for_dicom

        check_model_id_for_dicom(segmenter.model_id)
        for option, folder in (("--dicom-seg", dicom_seg), ("--dicom-sr", dicom_sr)):
            if folder:
                check_folder_path(option, folder)


def write_image_outputs(result, image: str, stem: str, *, pixels: Callable[[], np.ndarray],
                        masks_dir: Path | None = None, overlays: str | None = None, overlays_dir: Path | None = None,
                        dicom_seg: str | os.PathLike[str] | None = None,
                        dicom_sr: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """A segmented image's files, then its ``results.csv`` row; local and Ray runs alike. The files:
    its DICOM objects, its mask PNGs in ``masks_dir``, and its picture in ``overlays_dir`` when
    ``overlays`` asks for it ("all", or "flagged" where the reliability flag marks the image), drawn
    over ``pixels()`` (the gray image, decoded only then)."""
    write_objects(result, image, stem, seg_dir=dicom_seg, sr_dir=dicom_sr)
    try:
        if masks_dir is not None:
            write_masks(masks_dir, stem, result)
        flagged = result.quality is not None and result.quality.flag
        if overlays == "all" or (overlays == "flagged" and flagged):
            from .overlay import write_overlay

            assert overlays_dir is not None  # the callers pass it with overlays
            try:
                overlays_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"{overlays_dir}: cannot create the overlay folder ({os_reason(exc)})") from None
            write_overlay(overlays_dir / f"{stem}.png", pixels(), result)
    except BaseException:
        discard_pictures(stem, masks_dir, overlays_dir if overlays else None)
        raise
    return csv_row(result)


def discard_pictures(stem: str, masks_dir: Path | None, overlays_dir: Path | None) -> None:
    """Remove what :func:`write_image_outputs` wrote in ``masks_dir`` and ``overlays_dir`` for the image of
    ``stem`` (its own: stems are unique in a folder), when the image fails after all: ``masks/`` held a
    full disk's partial mask sets, and whole ones of images in ``errors.csv``, with no row to go with them.
    DICOM objects stay: their error names the ones written."""
    names = [*((masks_dir / f"{stem}_{organ}.png" for organ, _ in ORGANS) if masks_dir is not None else ()),
             *((overlays_dir / f"{stem}.png",) if overlays_dir is not None else ())]
    for name in names:
        try:
            name.unlink(missing_ok=True)
        except OSError:  # not ours to stop the run for: the row or the error says what happened
            pass


def decode_gray(image: str, max_pixels: int | None) -> np.ndarray:
    """The gray pixels of the file ``image``, as a batch hands them to the engine."""
    return to_gray(read_image(image, max_pixels=max_pixels), name=image)


def _decoded(pool: ThreadPoolExecutor, decode: Callable[[str], np.ndarray], images: Sequence[str],
             window: int, started: Callable[[str], None] = lambda image: None) -> Iterator[tuple[str, Future]]:
    """Yield (image, finished future) in completion order, keeping at most ``window`` decodes in flight;
    ``started(image)`` as each decode is handed to the pool."""
    pending: dict[Future, str] = {}
    queue = iter(images)
    while True:
        while len(pending) < window:
            image = next(queue, None)
            if image is None:
                break
            started(image)
            pending[submit_or_run(pool, decode, image)] = image
        if not pending:
            return
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            yield pending.pop(future), future


def inside_folder(image: str, folder: Path) -> bool:
    """Whether ``image`` lies in ``folder`` (a resolved path), links followed."""
    try:
        return Path(image).resolve().is_relative_to(folder)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte: reading it fails, and says so, later
        return False


def outside_output(images: Sequence[str], out: Path) -> tuple[list[str], list[tuple[str, InputError]]]:
    """``images`` split into those to segment and, with its error, each inside the output folder
    ``out``, which is never an input (local and Ray runs alike)."""
    readable, refused, folder = [], [], out.resolve()
    for image in images:
        if inside_folder(image, folder):
            refused.append((image, InputError(f"{image}: inside the output folder {out}, which is never an input")))
        else:
            readable.append(image)
    return readable, refused


def run_batch(segmenter, images: Sequence[str], out_dir: str | os.PathLike[str], *, samples: int = 50, seed: int = 0,
              workers: int = 4, batch_size: int | None = None, masks: bool = False, progress: bool = True,
              second_look: bool | None = None, max_pixels: int | None = None, overlays: str | None = None,
              dicom_seg: str | os.PathLike[str] | None = None, dicom_sr: str | os.PathLike[str] | None = None,
              shard: str | None = None, skipped: Sequence[tuple[str, str]] = (),
              input_root: str | None = None, input_identity: dict[str, int | str] | None = None) -> BatchSummary:
    """Segment ``images`` into ``out_dir`` (see the module doc); a failing image is recorded, not raised.
    ``shard``: "I/N" when these are shard I of N (:mod:`chexmask_rt.shards`), recorded in the manifest.
    ``skipped``: files the folder discovery left out, with why, written to ``skipped.csv``.
    ``input_root``: the folder the images lie in, so that a rerun resumes however it spells that
    folder (:func:`prepare_output`); without it images are matched as written. ``input_identity``: what
    the whole input was (:func:`chexmask_rt.shards.input_identity`), recorded for merge.

    Every image ends in exactly one of ``results.csv`` and ``errors.csv``, with its own reason.
    ModelError (the engine itself failing) stops the run: that is not one image's fault; so does
    an ``errors.csv`` that cannot be written (InputError), since no failure could be recorded.
    ``max_pixels``: the pixel limit (default: the segmenter's, see :func:`chexmask_rt.load`).
    ``overlays``: "all" or "flagged" writes ``overlays/<name>.png`` for every image segmented in this run,
    or for those the reliability flag marks; None: none.
    """

    check_image_list(images)  # a single path string was taken apart letter by letter, each "failed"
    out_dir = path_text(out_dir, InputError, "an output folder")
    check_count("--workers", workers, 1)
    check_outputs(segmenter, overlays, dicom_seg, dicom_sr)
    if batch_size is None:
        batch_size = DEFAULT_BATCH
    check_run_arguments(samples, seed, batch_size, second_look)
    limit = resolve_max_pixels(segmenter.max_pixels if max_pixels is None else max_pixels)
    start = time.perf_counter()
    with prepare_output(segmenter, images, out_dir, samples, seed, second_look, shard, skipped, input_root,
                        input_identity, picture_outputs(masks, overlays, dicom_seg, dicom_sr)
                        ) as (out, second_look, summary, todo, stems):
        run = _Run(segmenter, out, summary, masks=masks, progress=progress, stems=stems,
                   dicom_dirs=(dicom_seg, dicom_sr), overlays=overlays)
        try:
            run.process(todo, samples=samples, seed=seed, workers=workers, batch_size=batch_size,
                        second_look=second_look, max_pixels=limit)
        finally:
            run.close()
    summary.seconds = time.perf_counter() - start
    return summary


class _Run:
    """One run's pipeline: decoders feed chunks to the engine, and each image ends in results.csv or
    errors.csv (:class:`RunRows`), recorded under its own name."""

    def __init__(self, segmenter, out: Path, summary: BatchSummary, *, masks: bool, progress: bool,
                 stems: dict[str, str],
                 dicom_dirs: tuple[str | os.PathLike[str] | None, str | os.PathLike[str] | None] = (None, None),
                 overlays: str | None = None):
        self.segmenter, self.out, self.masks, self.stems, self.overlays = segmenter, out, masks, stems, overlays
        self.dicom_seg, self.dicom_sr = dicom_dirs
        self.rows = RunRows(out, summary)
        self.bar = run_progress(summary, "batch", enabled=progress)
        self.in_work = InWork(out)

    def close(self) -> None:
        self.bar.close()
        self.rows.close()

    def fail(self, image: str, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, ChexmaskError) else f"{type(exc).__name__}: {exc}"
        self.rows.failed(image, type(exc).__name__, reason)
        self.in_work.discard(image)
        self.bar.set_postfix(failed=self.rows.summary.failed)
        self.bar.update(1)

    def finish(self, image: str, result, pixels: np.ndarray) -> None:
        try:
            result = with_source(dataclasses.replace(result, image=image), image)
            row = write_image_outputs(result, image, self.stems[image], pixels=lambda: pixels,
                                      masks_dir=self.out / MASKS_NAME if self.masks else None,
                                      overlays=self.overlays, overlays_dir=self.out / OVERLAYS_NAME,
                                      dicom_seg=self.dicom_seg, dicom_sr=self.dicom_sr)
        except Exception as exc:  # e.g. a mask name too long for the file system: this image's failure only
            self.fail(image, exc)
            return
        if not self.rows.segmented(row):
            discard_pictures(self.stems[image], self.out / MASKS_NAME if self.masks else None,
                             self.out / OVERLAYS_NAME if self.overlays else None)
            self.bar.set_postfix(failed=self.rows.summary.failed)
        self.in_work.discard(image)
        self.bar.update(1)

    def infer(self, chunk: list[tuple[str, np.ndarray]], **run) -> None:
        """Each image's answer, or its own failure (``streaming.segment_each``)."""
        answers = segment_each(self.segmenter, [a for _, a in chunk], [image for image, _ in chunk], **run)
        for (image, pixels), answer in zip(chunk, answers):
            if isinstance(answer, Exception):
                self.fail(image, answer)
            else:
                self.finish(image, answer, pixels)

    def process(self, todo: Sequence[str], *, workers: int, batch_size: int, max_pixels: int, **run) -> None:
        readable, refused = outside_output(todo, self.out)
        for image, error in refused:
            self.fail(image, error)
        run.update(batch_size=batch_size, max_pixels=max_pixels)
        decode = functools.partial(decode_gray, max_pixels=max_pixels)
        killers, suspects = self.in_work.left(readable)  # what a run killed without a word had in work
        try:
            for image in killers:
                self.fail(image, RunKilled(killed_reason(image)))
            for image in suspects:  # each alone: if this run is killed too, the next one knows by which
                self.in_work.only(image)
                self._pipeline([image], decode, 1, lambda image: None, {**run, "batch_size": 1})
            earlier = {*killers, *suspects}
            self._pipeline([i for i in readable if i not in earlier], decode, workers, self.in_work.add, run)
        finally:
            self.in_work.clear()

    def _pipeline(self, images: Sequence[str], decode: Callable[[str], np.ndarray], workers: int,
                  started: Callable[[str], None], run: dict) -> None:
        """Decoders feed chunks of ``run["batch_size"]`` to the engine; ``started(image)`` as each decode begins."""
        batch_size = run["batch_size"]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chexmask-decode") as pool:
            ready: list[tuple[str, np.ndarray]] = []
            for image, future in _decoded(pool, decode, images, window=2 * workers + batch_size, started=started):
                try:
                    ready.append((image, future.result()))
                except Exception as exc:  # unreadable file: record it and go on
                    self.fail(image, exc)
                if len(ready) >= batch_size:
                    self.infer(ready, **run)
                    ready = []
            if ready:
                self.infer(ready, **run)
