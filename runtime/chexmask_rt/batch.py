"""Segmenting a whole archive: ``chexmask-rt batch``.

A pool of decoder threads reads images (file I/O, JPEG/DICOM decoding) while
the main thread runs the engine on chunks of already-decoded images, so decoding
overlaps inference (both release the GIL in their heavy parts).

Output folder:
- ``results.csv``: one CheXmask-U-style row per image (:mod:`chexmask_rt.csv_output`),
  appended and flushed as each image finishes;
- ``errors.csv``: ``Image,Error,Reason`` for each image that failed in this run;
- ``masks/`` with ``--masks``: ``<name>_{right_lung,left_lung,heart}.png``.

Re-running with the same output folder skips every image already in
``results.csv`` (a row cut short by a kill is dropped and redone) and retries the
failed ones. A folder made with other samples / seed / model / second-look
setting is refused rather than mixed.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .csv_output import COLUMNS, csv_row, write_masks
from .discovery import discover
from .errors import ChexmaskError, InputError, ModelError
from .image_io import read_image
from .model import default_batch_size
from .preprocess import to_gray
from .run_record import RunRecord, claim_folder

RESULTS_NAME, ERRORS_NAME, MASKS_NAME = "results.csv", "errors.csv", "masks"
ERROR_COLUMNS = ("Image", "Error", "Reason")


@dataclass
class BatchSummary:
    """What one ``run_batch`` call did."""

    total: int       # images listed in the input
    done: int        # segmented in this run
    skipped: int     # already in results.csv from an earlier run
    failed: int      # recorded in errors.csv
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def text(self, out_dir: Path) -> str:
        line = (f"{self.total} images: {self.done} done, {self.skipped} skipped (already in "
                f"{out_dir / RESULTS_NAME}), {self.failed} failed; {self.seconds:.1f} s, "
                f"{self.images_per_second:.2f} images/s")
        return line + (f"; reasons in {out_dir / ERRORS_NAME}" if self.failed else "")


def collect_inputs(source: str | os.PathLike) -> list[str]:
    """The images named by ``source``: a folder (searched recursively for PNG/JPEG/TIFF/BMP/DICOM,
    DICOM also by its marker whatever the name: :func:`chexmask_rt.discovery.discover`), a .txt list (one path per line, '#' comments) or a .csv list (column 'path' or 'image', else the first).
    Relative paths in a list are relative to the list's folder."""
    src = Path(source)
    if src.is_dir():
        return discover(src).images
    if not src.is_file():
        raise InputError(f"{src}: no such file or folder")
    try:
        text = src.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{src}: cannot read the image list ({exc})") from None
    if src.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        column = next((header.index(k) for k in ("path", "image", "file") if k in header), None)
        body = rows[1:] if column is not None else rows
        names = [r[column or 0].strip() for r in body if len(r) > (column or 0)]
    elif src.suffix.lower() in (".txt", ".lst", ".list"):
        names = [line.strip() for line in text.splitlines()]
    else:
        raise InputError(f"{src}: not a folder, nor a .txt or .csv list of images")
    names = [n for n in names if n and not n.startswith("#")]
    return [n if Path(n).is_absolute() else str(src.parent / n) for n in names]


def mask_stems(images: Sequence[str]) -> dict[str, str]:
    """A file-name stem per image; stems shared by several images get a short hash of the path."""
    counts: dict[str, int] = {}
    for image in images:
        counts[Path(image).stem] = counts.get(Path(image).stem, 0) + 1
    return {image: Path(image).stem if counts[Path(image).stem] == 1
            else f"{Path(image).stem}_{hashlib.sha1(image.encode()).hexdigest()[:8]}" for image in images}


def finished_images(results: Path, settings: dict[str, str | frozenset[str]]) -> set[str]:
    """Images already in ``results`` (a partial last line from a killed run is cut off first).
    A setting is a column's value, or the set of values this run can write there.

    Raises InputError when the file was made with other columns or other settings."""
    if not results.exists() or results.stat().st_size == 0:
        return set()
    data = results.read_bytes()
    if not data.endswith(b"\n"):
        with open(results, "r+b") as f:  # a run killed mid-row: drop the fragment, redo that image
            f.truncate(data.rfind(b"\n") + 1)
    with open(results, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise InputError(f"{results}: not a chexmask-rt batch results file (other columns); use another --out")
        done = set()
        for row in reader:
            for key, value in settings.items():
                if row.get(key) not in ({value} if isinstance(value, str) else value):
                    value = value if isinstance(value, str) else " or ".join(sorted(value))
                    raise InputError(f"{results}: made with {key} {row.get(key)!r}, this run uses {value!r}; "
                                     "use another --out or the same settings")
            done.add(row["Image"])
    return done


def resume_settings(segmenter, samples: int, seed: int, second_look: bool) -> dict[str, str | frozenset[str]]:
    """What every row of a results.csv this run appends to must say (see :func:`finished_images`)."""
    return {"Samples": str(samples), "Seed": str(seed), "Model": segmenter.model_id,
            "Second Look": frozenset({"pooled", "crop_only", "none"}) if second_look else "off"}


def prepare_output(segmenter, images: Sequence[str], out_dir: str | os.PathLike, samples: int, seed: int,
                   second_look: bool | None, record: RunRecord | None) -> tuple[Path, bool, list[str], list[str]]:
    """Create the output folder, check it against this run's settings (resume), and list the work:
    (folder, the resolved second-look setting, the unique images, those not yet in results.csv)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    second_look = segmenter.info.second_look if second_look is None else second_look
    done_before = finished_images(out / RESULTS_NAME, resume_settings(segmenter, samples, seed, second_look))
    if record is not None:
        claim_folder(out, record)
    unique = list(dict.fromkeys(images))
    return out, second_look, unique, [i for i in unique if i not in done_before]


def _decode(image: str) -> np.ndarray:
    gray, _ = to_gray(read_image(image), name=image)
    return gray


class _Appender:
    """A CSV file written row by row and flushed after each, so a kill loses at most one row."""

    def __init__(self, path: Path, columns: Sequence[str], mode: str):
        new = mode == "w" or not path.exists() or path.stat().st_size == 0
        self._file = open(path, mode, newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns), lineterminator="\n")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _decoded(pool: ThreadPoolExecutor, images: Sequence[str], window: int) -> Iterator[tuple[str, Future]]:
    """Yield (image, finished future) in completion order, keeping at most ``window`` decodes in flight."""
    pending: dict[Future, str] = {}
    queue = iter(images)
    while True:
        while len(pending) < window:
            image = next(queue, None)
            if image is None:
                break
            pending[pool.submit(_decode, image)] = image
        if not pending:
            return
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            yield pending.pop(future), future


def run_batch(segmenter, images: Sequence[str], out_dir: str | os.PathLike, *, samples: int = 50, seed: int = 0,
              workers: int = 4, batch_size: int | None = None, masks: bool = False, progress: bool = True,
              second_look: bool | None = None, record: RunRecord | None = None) -> BatchSummary:
    """Segment ``images`` into ``out_dir`` (see the module doc); a failing image is recorded, not raised.
    ``record``: the run's engine identity and settings, kept in ``run.json`` and checked on resume.

    ModelError (the engine itself failing) stops the run: that is not one image's fault.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if batch_size is None:
        batch_size = default_batch_size(segmenter.inputsize)
    from tqdm import tqdm

    start = time.perf_counter()
    out, second_look, unique, todo = prepare_output(segmenter, images, out_dir, samples, seed, second_look, record)
    stems = mask_stems(unique)
    results = _Appender(out / RESULTS_NAME, COLUMNS, "a")
    errors = _Appender(out / ERRORS_NAME, ERROR_COLUMNS, "w")  # failures are retried, so only this run's count
    done = failed = 0
    bar = tqdm(total=len(todo), unit="img", desc="batch", file=sys.stderr, disable=not progress)

    def fail(image: str, exc: BaseException) -> None:
        nonlocal failed
        reason = str(exc) if isinstance(exc, ChexmaskError) else f"{type(exc).__name__}: {exc}"
        errors.write({"Image": image, "Error": type(exc).__name__, "Reason": reason})
        failed += 1
        bar.set_postfix(failed=failed)
        bar.update(1)

    def finish(image: str, result) -> None:
        nonlocal done
        result = dataclasses.replace(result, image=image)
        if masks:
            write_masks(out / MASKS_NAME, stems[image], result)
        results.write(csv_row(result))
        done += 1
        bar.update(1)

    def infer(chunk: list[tuple[str, np.ndarray]]) -> None:
        try:
            outs = segmenter.predict_batch([a for _, a in chunk], samples=samples, seed=seed, batch_size=batch_size,
                                           second_look=second_look)
        except ModelError:
            raise
        except Exception:
            if len(chunk) == 1:
                raise
            for item in chunk:  # isolate the image that broke the chunk
                try:
                    infer([item])
                except ModelError:
                    raise
                except Exception as exc:  # one image's failure must not stop the archive
                    fail(item[0], exc)
            return
        for (image, _), result in zip(chunk, outs):
            finish(image, result)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chexmask-decode") as pool:
            ready: list[tuple[str, np.ndarray]] = []
            for image, future in _decoded(pool, todo, window=2 * workers + batch_size):
                try:
                    ready.append((image, future.result()))
                except Exception as exc:  # unreadable file: record it and go on
                    fail(image, exc)
                if len(ready) >= batch_size:
                    _infer_isolated(infer, fail, ready)
                    ready = []
            if ready:
                _infer_isolated(infer, fail, ready)
    finally:
        bar.close()
        results.close()
        errors.close()
    return BatchSummary(total=len(unique), done=done, skipped=len(unique) - len(todo), failed=failed,
                        seconds=time.perf_counter() - start)


def _infer_isolated(infer, fail, chunk: list[tuple[str, np.ndarray]]) -> None:
    try:
        infer(chunk)
    except ModelError:
        raise
    except Exception as exc:  # a single-image chunk that failed
        fail(chunk[0][0], exc)
