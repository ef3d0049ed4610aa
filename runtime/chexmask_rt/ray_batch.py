"""Segmenting an archive on a Ray cluster (``pip install 'chexmask-rt[ray]'``).

- :class:`SegmentBatch` is a callable class for ``ray.data.Dataset.map_batches``: each actor
  loads the engine once, and turns a batch of paths (or decoded arrays with their names) into
  rows with the columns of ``results.csv`` plus ``Error`` and ``Reason``; an image that fails
  is a row with its reason, never an exception. A ``ModelError`` (the engine itself) fails the
  job.
- A worker that dies on a batch (a crash, the out-of-memory killer) is restarted and the batch
  retried :data:`RAY_TASK_RETRIES` times; then the run stops, saying so (Ray's default retries
  without end: the run would never finish).
- :func:`run_ray` is ``chexmask-rt batch INPUT --out DIR --ray local|ADDRESS``: the driver lists
  the images and skips those already in ``results.csv``, the actors segment the rest, and the
  driver appends each row to ``results.csv`` / ``errors.csv`` as it arrives, flushed, so a run
  killed midway resumes like a local one.

How the engine reaches the actors: the shipped model is inside the package every node installs,
so actors open their own copy. Any other engine travels as bytes (with its quality calibration
file, when it has one) through Ray's object store, and each actor writes them to a node-local
cache folder of its user's own (0700), named by their sha256, before opening them, and uses a
cached copy only when its bytes are these: no shared file system is needed for the
model. The images must be readable at the same paths on every node (a shared file system), or
passed as arrays. Each image's files (``--masks`` PNGs in ``DIR/masks``, ``--overlays`` pictures
in ``DIR/overlays``, ``--dicom-seg`` / ``--dicom-sr`` objects) are written by the actor that
segmented it, as :func:`chexmask_rt.batch.write_image_outputs` writes them in a local run, so their
folders must be on a file system every node shares; ``results.csv`` and ``errors.csv`` are written
by the driver alone.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import signal
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .batch import (OVERLAYS_NAME, BatchSummary, RunRows, check_outputs, check_overlays, decode_gray, discard_pictures,
                    outside_output, picture_outputs, picture_stem, prepare_output, run_progress, write_image_outputs)
from .batch_folder import MASKS_NAME
from .csv_output import COLUMNS
from .errors import ChexmaskError, InputError, ModelError, Terminated, first_line, os_reason, path_text
from .image_io import to_gray
from .inputs import check_image_list
from .model import default_model_path
from .quality import calibration_path

ROW_COLUMNS = COLUMNS + ("Error", "Reason")  # Error is empty for a segmented image
RAY_BATCH = 8  # images per Ray task: rows reach results.csv a task at a time, so few enough to stream
MAX_BLOCKS = 4096  # Ray Data's per-block bookkeeping: an archive of 676k images gets blocks of about 165
RAY_TASK_RETRIES = 2  # tries of a batch after its worker died, on a restarted one


def engine_files(model: str | os.PathLike[str] | None) -> dict[str, bytes] | None:
    """What an actor needs to open ``model`` without a shared file system: the engine's bytes and
    its calibration file's, by file name. None for the shipped model, which every node has."""
    if model is None or Path(model).resolve() == default_model_path().resolve():
        return None
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    files = {path.name: path.read_bytes()}
    calibration = calibration_path(path)
    if calibration.is_file():
        files[calibration.name] = calibration.read_bytes()
    return files


def _materialise(files: dict[str, bytes]) -> Path:
    """Write ``files`` to this user's node-local cache folder named by their sha256 (once per node); the
    engine's path. A cached file is used only when its bytes are these: on a shared /tmp anyone could
    plant another engine (one bias zeroed, same size) under the name a size check accepted, and the
    actors segmented with it while batch.json recorded the genuine engine."""
    import hashlib

    digests = {name: hashlib.sha256(data).digest() for name, data in files.items()}  # each file's, once
    digest = hashlib.sha256(b"".join(digests[name] for name in sorted(files))).hexdigest()
    folder = _engine_cache() / digest[:32]
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        target = folder / name
        if not _holds(target, len(data), digests[name]):
            tmp = folder / f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # actors of one node may race: each writes whole files
    return folder / next(iter(files))  # engine_files puts the engine first


def _engine_cache() -> Path:
    """The node-local cache: ``chexmask-rt-engines-<uid>`` in the temporary folder, made 0700 (a folder
    of this user's own that others may only read is made so). One that is not this user's, is a link
    or that others may write (they could have planted a link inside) is not used: a private folder of
    this process's is, removed when it exits (one per actor start, kept, filled the disk)."""
    global _fallback_cache
    root = Path(tempfile.gettempdir()) / f"chexmask-rt-engines-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(root)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
            if st.st_mode & 0o077:
                os.chmod(root, 0o700)
            return root
    except OSError:
        pass
    if _fallback_cache is None:
        import atexit
        import shutil

        _fallback_cache = Path(tempfile.mkdtemp(prefix="chexmask-rt-engines-"))
        atexit.register(shutil.rmtree, _fallback_cache, ignore_errors=True)
    return _fallback_cache


_fallback_cache: Path | None = None


def _holds(path: Path, size: int, sha256: bytes) -> bool:
    """Whether ``path`` is a regular file (not a link) of ``size`` bytes whose SHA-256 is ``sha256``."""
    import hashlib

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or path.stat().st_size != size:
            return False
        return hashlib.sha256(path.read_bytes()).digest() == sha256
    except OSError:
        return False


class SegmentBatch:
    """``ds.map_batches(SegmentBatch, fn_constructor_kwargs={...}, batch_size=8,
    compute=ray.data.ActorPoolStrategy(size=N))``.

    A batch holds ``path`` (strings: read on the actor's node, and the ``Image`` column) and
    optionally ``image`` (decoded arrays, then ``path`` only names them) and ``stem`` (mask file
    names, see :func:`chexmask_rt.batch.mask_stems`). Returns one row per input with the columns
    :data:`ROW_COLUMNS`. Constructor: ``model`` (a path every node can read; None: the shipped
    model) or ``engine_files`` (:func:`engine_files`), then what ``predict`` takes, ``threads``
    per actor, ``backend``, ``device`` and ``max_pixels`` (as in :func:`chexmask_rt.load`),
    ``workers`` (decoder threads) and ``batch_size`` (images handed to the engine together, as in
    ``predict_batch``; None: its default). Each image's files go to shared folders:
    ``masks_dir`` (mask PNGs), ``overlays_dir`` (pictures, with ``overlays`` "all" or "flagged",
    as ``batch --overlays``), ``dicom_seg`` and ``dicom_sr`` (DICOM objects of DICOM inputs).
    """

    def __init__(self, model: str | None = None, *, engine_files: dict[str, bytes] | None = None, samples: int = 50,
                 seed: int = 0, second_look: bool | None = None, threads: int | None = None, backend: str = "auto",
                 masks_dir: str | None = None, workers: int = 2, batch_size: int | None = None,
                 device: str | None = None, max_pixels: int | None = None, overlays: str | None = None,
                 overlays_dir: str | None = None, dicom_seg: str | None = None, dicom_sr: str | None = None):
        from .model import load

        check_overlays(overlays)
        if overlays and not overlays_dir:
            raise InputError(f"overlays={overlays!r} needs overlays_dir, the shared folder the pictures go to")
        path = _materialise(engine_files) if engine_files else model
        self._seg = load(path, backend=backend, threads=threads, device=device, max_pixels=max_pixels)
        self._predict_iter = functools.partial(self._seg.predict_iter, samples=samples, seed=seed,
                                               second_look=second_look, workers=workers, batch_size=batch_size)
        self._write_outputs = functools.partial(
            write_image_outputs, masks_dir=Path(masks_dir) if masks_dir else None, overlays=overlays,
            overlays_dir=Path(overlays_dir) if overlays_dir else None, dicom_seg=dicom_seg, dicom_sr=dicom_sr)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Segment one Ray Data batch of paths (or decoded images): its result and error rows."""
        paths = [str(p) for p in batch["path"]]
        inputs = list(batch["image"]) if "image" in batch else paths
        stems = [str(s) for s in batch["stem"]] if "stem" in batch else [picture_stem(p) for p in paths]
        rows = []
        outcomes = self._predict_iter(inputs)
        for path, stem, item, (_, outcome) in zip(paths, stems, inputs, outcomes):
            rows.append(self._row(path, stem, item, outcome))
        return {c: np.array([r.get(c, "") for r in rows], dtype=object) for c in ROW_COLUMNS}

    def _row(self, path: str, stem: str, item, outcome) -> dict[str, str]:
        if not isinstance(outcome, ChexmaskError):
            result = dataclasses.replace(outcome, image=path)
            pixels = ((lambda: to_gray(item, name=path)) if isinstance(item, np.ndarray)
                      else (lambda: decode_gray(path, self._seg.max_pixels)))
            try:
                return {**self._write_outputs(result, path, stem, pixels=pixels),
                        "Error": "", "Reason": ""}
            except ChexmaskError as exc:
                outcome = exc
        return {"Image": path, "Error": type(outcome).__name__, "Reason": str(outcome)}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ModelError("--ray needs Ray Data: pip install 'chexmask-rt[ray]'") from None
    return ray


def _init_ray(address: str, cpus: int | None):
    ray = _import_ray()
    import logging

    import ray.data

    for name in ("ray", "ray.data"):  # their INFO lines would drown our one-line summary
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        local = address == "local"
        before = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=None if local else address, num_cpus=cpus if local else None, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR, configure_logging=False)
        except ConnectionError as exc:  # Ray's words name its own --address flag and RAY_ADDRESS
            raise InputError(f"--ray {address}: no running Ray cluster answers ({first_line(exc).split('. ')[0]}); "
                             "start one with `ray start --head`, or use --ray local") from None
        except Exception as exc:  # Ray raises bare Exceptions when its daemons do not start
            raise InputError(f"--ray {address}: cannot start or join Ray ({first_line(exc)})") from None
        except SystemExit as exc:
            # Ray's handler, set early in init, made a SIGTERM then exit 15, saying nothing, its daemons
            # left running: the scheduler's stop is reported as any other (exit 143)
            if exc.code != signal.SIGTERM:
                raise
            ray.shutdown()
            raise Terminated() from None
        finally:
            if before is not None:  # Ray's driver takes SIGTERM (a scheduler's stop) and dies with a dump
                signal.signal(signal.SIGTERM, before)
    return ray


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """InputError when ``address`` names a HOST:PORT (or ray://HOST:PORT) that nothing answers on:
    Ray itself would retry a mistyped head address without end, holding the output folder."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "local", "auto": Ray's to judge
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: no Ray head answers there ({os_reason(exc)})") from None


def run_ray(segmenter, model: str | os.PathLike[str] | None, images: Sequence[str], out_dir: str | os.PathLike[str], *,
            address: str = "local", samples: int = 50, seed: int = 0, second_look: bool | None = None,
            masks: bool = False, progress: bool = True, shard: str | None = None, threads: int | None = None,
            actors: int | None = None, batch_size: int | None = None, workers: int = 2,
            backend: str = "auto", device: str | None = None, max_pixels: int | None = None,
            skipped: Sequence[tuple[str, str]] = (), input_root: str | None = None,
            input_identity: dict[str, int | str] | None = None, overlays: str | None = None,
            dicom_seg: str | os.PathLike[str] | None = None, dicom_sr: str | os.PathLike[str] | None = None) -> BatchSummary:
    """``run_batch`` on Ray (see the module doc): same output folder, same resume, same summary.

    ``segmenter``: the engine opened by the driver (its identity and settings); ``model``: the path it
    was opened from (None: the shipped model). ``threads`` per actor (default 2) and ``actors``
    (default: the cluster's CPUs // threads; with a GPU ``device``, one GPU each, and at most the
    cluster's GPUs); ``address``: 'local' starts Ray on this machine. ``device`` and ``max_pixels``
    reach every actor's engine, as in :func:`chexmask_rt.load`; ``skipped``, ``input_root``,
    ``input_identity``, ``overlays``, ``dicom_seg`` and ``dicom_sr`` as in :func:`run_batch` (their folders shared)."""
    start = time.perf_counter()
    check_image_list(images)  # a single path string was taken apart letter by letter
    out_dir = path_text(out_dir, InputError, "an output folder")
    check_outputs(segmenter, overlays, dicom_seg, dicom_sr)
    _import_ray()  # before the output folder is made: without Ray it held an unfinished batch.json
    check_reachable(address)  # before the output folder is locked
    if address != "local":  # joining is cheap: a cluster that is not there leaves the folder as it was
        _init_ray(address, None)
    with prepare_output(segmenter, images, out_dir, samples, seed, second_look, shard, skipped, input_root,
                        input_identity, picture_outputs(masks, overlays, dicom_seg, dicom_sr)
                        ) as (out, second_look, summary, todo, stems):
        rows = RunRows(out, summary)
        try:
            todo, refused = outside_output(todo, out)
            for image, error in refused:
                rows.failed(image, type(error).__name__, str(error))
            if todo:
                _stream_rows(todo, out, rows, address=address, model=model, samples=samples,
                             seed=seed, second_look=second_look, masks=masks, progress=progress, threads=threads or 2,
                             actors=actors, batch_size=batch_size, workers=workers, backend=backend,
                             device=device, max_pixels=max_pixels, stems=stems, overlays=overlays,
                             dicom_dirs=(dicom_seg, dicom_sr))
        finally:
            rows.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _stream_rows(todo: list[str], out: Path, rows: RunRows, *,
                 address: str, model, samples: int, seed: int, second_look: bool, masks: bool, progress: bool,
                 threads: int, actors: int | None, batch_size: int | None, workers: int, backend: str,
                 device: str | None, max_pixels: int | None, stems: dict[str, str], overlays: str | None,
                 dicom_dirs: tuple[str | os.PathLike[str] | None, str | os.PathLike[str] | None]) -> None:
    ray = _init_ray(address, None)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    gpus_each = 0 if device in (None, "cpu") else 1
    if gpus_each:
        # an actor asking for a GPU the cluster lacks would wait for it forever
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus == 0:
            raise ModelError(f"--device {device}: the Ray cluster has no GPU")
        actors = min(actors or gpus, gpus)
    actors = actors or max(1, cpus // threads)
    files = engine_files(model)
    kwargs = {"model": None if files or model is None else str(Path(model).resolve()), "engine_files": files,
              "samples": samples, "seed": seed, "second_look": second_look, "threads": threads,
              "masks_dir": str((out / MASKS_NAME).resolve()) if masks else None, "workers": workers,
              "batch_size": batch_size, "backend": backend, "device": device, "max_pixels": max_pixels,
              "overlays": overlays, "overlays_dir": str((out / OVERLAYS_NAME).resolve()),
              "dicom_seg": dicom_dirs[0] and str(Path(dicom_dirs[0]).resolve()),
              "dicom_sr": dicom_dirs[1] and str(Path(dicom_dirs[1]).resolve())}
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images
    items = [{"path": image, "stem": stems[image]} for image in todo]
    # one Ray batch per block where possible: actors take a few tasks at once and their rows come back
    # together, so smaller blocks keep results.csv (and a killed run's resume point) close behind the work
    ds = ray.data.from_items(items, override_num_blocks=min(-(-len(items) // RAY_BATCH), MAX_BLOCKS))
    ds = ds.map_batches(SegmentBatch, fn_constructor_kwargs=kwargs, batch_size=RAY_BATCH,
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=min(threads, cpus),
                        num_gpus=gpus_each, **_bounded_retries(ds.map_batches))
    bar = run_progress(rows.summary, f"batch (ray, {actors} actors)", enabled=progress)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["Image"])):
                row = {c: str(batch[c][i]) for c in ROW_COLUMNS}
                if row["Error"]:
                    rows.failed(row["Image"], row["Error"], row["Reason"])
                if row["Error"]:
                    bar.set_postfix(failed=rows.summary.failed)  # as a local run's bar
                elif not rows.segmented({c: row[c] for c in COLUMNS}):
                    discard_pictures(stems[row["Image"]], out / MASKS_NAME if masks else None,
                                     out / OVERLAYS_NAME if overlays else None)
                    bar.set_postfix(failed=rows.summary.failed)
                bar.update(1)
    except Exception as exc:
        if isinstance(exc, ChexmaskError):
            raise
        cause = _model_error(exc)
        if cause is not None:
            raise ModelError(str(cause)) from None
        if isinstance(exc, ray.exceptions.RayActorError):
            left = len(todo) - rows.summary.done - rows.summary.failed
            raise ModelError(f"a Ray worker died {RAY_TASK_RETRIES + 1} times on one batch of up to {RAY_BATCH} "
                             f"images (a crash, or out of memory), so Ray gave up; {left} images are not done and "
                             "a rerun resumes with them (without --ray, a run goes one image at a time)") from None
        raise ModelError(f"the Ray job failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        bar.close()


def _bounded_retries(map_batches) -> dict:
    """map_batches' keyword for :data:`RAY_TASK_RETRIES` tries of a batch whose actor died. Ray Data
    takes it among its "ray_remote_args", which it deprecates (Ray 2.60) without a named successor:
    passed while map_batches takes them, without the warning that would end every run."""
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(map_batches).parameters.values()):
        return {}
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
    return {"max_task_retries": RAY_TASK_RETRIES}


def _model_error(exc: BaseException | None) -> BaseException | None:
    """The ModelError an actor raised, from inside Ray's wrappers."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModelError):
            return exc
        cause = getattr(exc, "cause", None)
        exc = cause if isinstance(cause, BaseException) else exc.__cause__
    return None
