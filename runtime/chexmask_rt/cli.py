"""Command line: ``chexmask-rt predict|batch|merge|export|info`` (also ``python -m chexmask_rt``).

Exit codes: 0 success, 1 batch finished but some images failed, 2 usage error,
3 input error, 4 model error.
"""
from __future__ import annotations

import argparse
import errno
import io
import json
import os
import select
import signal
import stat
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .devices import DEVICES
from .errors import (ChexmaskError, InputError, ModelError, NonFiniteOutputError, Terminated, UsageError, first_line,
                     os_reason)
from .notice import INTENDED_USE
from .whole_files import NAME_MAX, check_file_path, check_folder_path, is_special, write_text_whole

if TYPE_CHECKING:
    from .result import Result

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_MODEL = 0, 1, 2, 3, 4


def _add_backend(p) -> None:
    # "python" is accepted here only to be refused in one line by main (the reference path left the package)
    p.add_argument("--backend", choices=("auto", "native", "python"), default="auto",
                   help="auto and native both run the C++ core, the only pipeline (python: gone)")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="ONNX Runtime execution provider (default cpu; cuda/tensorrt need onnxruntime-gpu: "
                        "pip install 'chexmask-rt[gpu]'; not tested on a GPU here)")


def _integer(check):
    """An argparse type: an integer that ``check`` (the package's own test of the argument) accepts;
    anything else is a usage error (exit 2) naming the option, as for a typo."""
    def parse(text: str):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        try:
            return check(value)
        except ChexmaskError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _samples(value: int) -> int:
    from .inputs import check_run_arguments

    return check_run_arguments(value, 0, 1)[0]


def _seed(value: int) -> int:
    from .inputs import check_run_arguments

    return check_run_arguments(1, value, 1)[1]


def _threads(value: int) -> int:
    from . import core

    if not 0 <= value <= core.MAX_THREADS:
        raise InputError(f"threads must be an integer in 0..{core.MAX_THREADS} (0: one per physical core), got {value}")
    return value


def _at_least_1(name: str):
    from .inputs import check_count

    return _integer(lambda value: check_count(name, value, 1))


def _max_pixels(value: int) -> int:
    from .limits import resolve_max_pixels

    return resolve_max_pixels(value)


def _bit_depth(value: int) -> int:
    if not 9 <= value <= 16:  # the API's check would offer None, which has no spelling here
        raise InputError(f"bit depth must be an integer in 9..16 (leave --bit-depth out to infer it per image), "
                         f"got {value}")
    return value


def _add_run_options(p) -> None:
    """What every segmenting command takes: the model, the sampling and the engine's threads."""
    p.add_argument("--model", help="engine .onnx (default: the shipped model)")
    p.add_argument("--samples", type=_integer(_samples), default=50, help="latent samples K (default 50)")
    p.add_argument("--seed", type=_integer(_seed), default=0, help="seed of the latent noise (default 0)")
    p.add_argument("--threads", type=_integer(_threads), default=None, help="intra-op threads (default: the physical cores this process may use)")
    looks = p.add_mutually_exclusive_group()
    looks.add_argument("--single-look", dest="second_look", action="store_const", const=False, default=None,
                       help="one engine call per image, in half the time (default: the engine's own setting, "
                            "one call for the shipped model; see the README, \"The second look\")")
    looks.add_argument("--second-look", dest="second_look", action="store_const", const=True,
                       help="a second engine call on a crop around the lungs, pooled with the first")
    p.add_argument("--max-pixels", type=_integer(_max_pixels), default=None, metavar="N",
                   help="refuse images above N pixels (at least 1024), before decoding them (default: "
                        "$CHEXMASK_RT_MAX_PIXELS, else 64000000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (predict shows one for several images)")
    _add_backend(p)


def _add_dicom_outputs(p) -> None:
    """DICOM results of DICOM inputs (chexmask_rt.dicom_out; needs the 'dicom' extra)."""
    p.add_argument("--dicom-seg", metavar="DIR", help="write DIR/<name>.seg.dcm, a DICOM Segmentation of the lungs "
                   "and heart, for every DICOM input (all inputs must be DICOM)")
    p.add_argument("--dicom-sr", metavar="DIR", help="write DIR/<name>.sr.dcm, a DICOM measurement report (TID 1500: "
                   "contours, scores, CTR, areas), for every DICOM input (all inputs must be DICOM)")


def _refuse_non_dicom(args, images) -> None:
    from .dicom_out import refuse_non_dicom, require_highdicom

    options = [o for o, v in (("--dicom-seg", args.dicom_seg), ("--dicom-sr", args.dicom_sr)) if v]
    if options:
        require_highdicom()
        refuse_non_dicom(images, "/".join(options))


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="segment images, print or write landmarks + uncertainty")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG/TIFF/BMP/DICOM files")
    _add_run_options(p)
    p.add_argument("--json", metavar="PATH|-", help="write results as JSON to PATH, or '-' for stdout")
    p.add_argument("--overlay", metavar="PNG|DIR", help="draw contours + uncertainty over the image: to PNG (or "
                   ".jpg/.bmp/.tif) for one image; any other name is a folder, DIR/<name>.png")
    p.add_argument("--csv", metavar="PATH|-", help="write CheXmask-U-style CSV rows (landmarks, RLE masks, scores)")
    p.add_argument("--masks", metavar="DIR", help="write DIR/<name>_{right_lung,left_lung,heart}.png organ masks")
    p.add_argument("--bit-depth", type=_integer(_bit_depth), default=None, metavar="BITS",
                   help="significant bits of 16-bit images, 9-16 (default: per image, the fewest bits that hold its "
                        "largest value, so a 12-bit image in a 16-bit PNG reads as 12-bit)")
    _add_dicom_outputs(p)


def _add_batch(sub) -> None:
    p = sub.add_parser("batch", help="segment a folder or a list of images into a resumable CSV")
    p.add_argument("input", metavar="INPUT",
                   help="a folder (searched recursively) or a .txt (.lst, .list) or .csv list of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: results.csv, errors.csv, skipped.csv, "
                   "masks/, overlays/, batch.json (the engine, settings and INPUT a rerun resumes with)")
    _add_run_options(p)
    p.add_argument("--workers", type=_at_least_1("workers"), default=4, help="decoder threads (default 4)")
    p.add_argument("--masks", action="store_true", help="also write organ mask PNGs to DIR/masks/")
    p.add_argument("--overlays", choices=("all", "flagged"),
                   help="also write the overlay picture of every image (all), or of those the reliability flag "
                        "marks (flagged), to DIR/overlays/<name>.png")
    p.add_argument("--batch-size", type=_at_least_1("batch size"), metavar="N",
                   help="images handed to the engine together (default 1): one engine call on a GPU; on the CPU each image is its own call, the measured fastest "
                   "(README, Performance)")
    _add_dicom_outputs(p)
    p.add_argument("--ray", nargs="?", const="local", metavar="local|ADDRESS",
                   help="run on Ray Data (pip install 'chexmask-rt[ray]'): 'local' starts Ray on this machine, an "
                        "ADDRESS (e.g. 10.0.0.1:6379 or auto) joins a cluster; --threads is per actor (default 2)")
    p.add_argument("--ray-actors", type=_at_least_1("Ray actors"), metavar="N",
                   help="Ray actors, each with its own engine (default: the cluster's CPUs // --threads)")
    p.add_argument("--shard", metavar="I/N", type=_shard, help="process only shard I of N (0 <= I < N), chosen by a hash of each "
                   "image's path relative to INPUT; merge the N folders with 'chexmask-rt merge'")


def _shard(text: str):
    from .shards import Shard

    try:
        return Shard.parse(text)
    except InputError as exc:  # argparse turns this into a usage error (exit 2) with our message
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_merge(sub) -> None:
    p = sub.add_parser("merge", help="combine batch output folders (e.g. shards) into one results.csv/errors.csv")
    p.add_argument("folders", nargs="+", metavar="DIR", help="batch output folders")
    p.add_argument("--out", required=True, metavar="ALL", help="new folder for the merged results.csv and errors.csv")


COMMANDS_GROUP = "chexmask_rt.commands"  # entry points: functions that add a subcommand (setup.py)


def _add_plugin_commands(sub) -> None:
    """Commands other packages register, ``export`` (chexmask_export.command) among them; each sets
    its handler as the ``run`` default. Without a registered ``export`` (an install whose entry
    points are missing or stale), ``export`` says what to install."""
    from importlib.metadata import entry_points

    added = set()
    for point in entry_points(group=COMMANDS_GROUP):
        if point.name in added:  # the same package seen twice (e.g. an installed copy and a build's egg-info)
            continue
        try:
            add_command = point.load()
        except ImportError:  # registered by an install whose code has since moved: as if absent
            continue
        add_command(sub)
        added.add(point.name)
    if "export" not in added:
        # takes any arguments, flags included (no prefix character can start one), to say what is missing
        p = sub.add_parser("export", help="convert a published HybridGNet checkpoint into a chexmask-rt ONNX engine "
                           "(needs the export extras)", prefix_chars="\0", add_help=False)
        p.add_argument("arguments", nargs="*")
        p.set_defaults(run=_export_missing)


def _export_missing(args) -> int:
    raise ModelError("export needs the export extras (torch, onnx) and their registered command: "
                     "pip install 'chexmask-rt[export]'")


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="print an engine's metadata")
    p.add_argument("model", nargs="?", help="engine .onnx (default: the shipped model)")
    _add_backend(p)


# The top-level --help is read by people: plain text, no reST markup.
_DESCRIPTION = (f"Chest X-ray landmark segmentation with uncertainty (HybridGNet): 120 landmarks of the lungs and "
                f"heart, their spread over latent samples, and the encoder's latent sigma. {INTENDED_USE.capitalize()}.")
_EPILOG = ("exit codes: 0 success, 1 some images failed, 2 usage error, 3 input error, 4 model error, "
           "130 interrupted (Ctrl-C), 143 terminated (SIGTERM); a batch resumes when rerun. "
           "'chexmask-rt COMMAND --help' shows a command's options.")
_DEBUG_HELP = "show tracebacks for errors"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that help or version text standard output cannot take is an error:
    argparse drops the OSError, so with PYTHONUNBUFFERED a lost --help exited 0 (buffered, the flush in
    _main catches it). Usage errors on standard error stay argparse's."""

    def _print_message(self, message, file=None):
        if message and file is sys.stdout:
            try:
                file.write(message)
            except (OSError, ValueError) as exc:
                raise _HelpLost(os_reason(exc)) from None
        else:
            super()._print_message(message, file)


class _HelpLost(Exception):
    """The help or version text standard output could not take (_Parser)."""


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = _Parser(prog="chexmask-rt", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"chexmask-rt {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    _add_predict(sub)
    _add_batch(sub)
    _add_merge(sub)
    _add_plugin_commands(sub)
    _add_info(sub)
    for command in sub.choices.values():  # before or after the command; SUPPRESS keeps one given before it
        if "--debug" not in command._option_string_actions and "\0" not in command.prefix_chars:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def _summary(result) -> str:
    looks = {"pooled": ", two looks pooled", "crop_only": ", wide field of view: the crop's look"}
    looked = looks.get(result.look_kind, "")
    q = result.quality
    verdict = "" if q is None else ", reliability not calibrated" if not q.calibrated else \
        f"; FLAGGED, review before use: {q.reason}" if q.flag else ""
    spread = f"{result.mean_node_std:.2f} px" if result.spread_measured else "not measured (K=1)"
    return (f"{result.image}: {result.width}x{result.height}, K={result.samples}, "
            f"mean node std {spread}, mean latent sigma {result.mean_latent_sigma:.4f}{looked}"
            f"{verdict}")


def cmd_predict(args) -> int:
    from .batch import check_outputs, mask_stems
    from .model import load
    from .progress import progress_bar, say

    _refuse_non_dicom(args, args.images)
    _quiet_decoders(args)
    several = len(args.images) > 1
    if args.overlay:  # a file where its folder belongs was found after the first image's inference
        if _overlay_folder(args.overlay, several):
            check_folder_path("--overlay", args.overlay)
        else:
            check_file_path("--overlay", args.overlay)
    for option, target in (("--json", args.json), ("--csv", args.csv)):
        if target and target != "-":
            check_file_path(option, target)
    if args.masks:
        check_folder_path("--masks", args.masks)
    seg = load(args.model, backend=args.backend, threads=args.threads, max_pixels=args.max_pixels,
               device=args.device)
    check_outputs(seg, None, args.dicom_seg, args.dicom_sr)  # an engine DICOM cannot name fails once, first
    stems = mask_stems(args.images)  # file names for the pictures, masks and objects of same-named images
    results: list[Result] = []
    failed = done = 0
    # only --json and --csv need the answers at the end: kept otherwise, a glob of thousands of images
    # grew by each Result's samples (96 KB at K = 50) until the exit
    keep = results.append if args.json or args.csv else (lambda result: None)
    bar = progress_bar(len(args.images), "predict", enabled=several and not args.no_progress)
    try:
        for image in args.images:
            try:
                result = seg.predict(image, samples=args.samples, seed=args.seed, bit_depth=args.bit_depth,
                                     second_look=args.second_look)
            except (InputError, NonFiniteOutputError) as exc:
                if not several:
                    raise
                say(f"chexmask-rt: error: {exc}")  # like batch: the others still get written
                failed += 1
                bar.set_postfix(failed=failed)
            except ModelError:
                raise  # the engine itself: not this image's fault
            except Exception as exc:  # a reader's surprise on one file: like batch, that file fails alone
                if not several:
                    raise
                say(f"chexmask-rt: error: {image}: {type(exc).__name__}: {first_line(exc)}")
                failed += 1
                bar.set_postfix(failed=failed)
            else:
                # a stop waits for this image's outputs and its place in the JSON/CSV: a picture
                # written but not recorded, or recorded but not written, was the old race
                with _stops_held():
                    try:
                        failed += _write_image_outputs(args, result, stems[image], several)
                    except KeyboardInterrupt:
                        raise  # raised inside (outside the main thread, the stop is not held): not done
                    except BaseException:
                        keep(result)  # an output that could not be written: its answer still stands
                        raise
                    keep(result)
                    done += 1
            bar.update(1)
    except BaseException as exc:  # what is finished is not lost: pictures are written, and so are JSON and CSV
        bar.close()
        if results and (args.json or args.csv):
            if isinstance(exc, KeyboardInterrupt):
                say(f"chexmask-rt: {len(results)} of {len(args.images)} images were done: writing their JSON/CSV")
            _write_collected(args, results)
        raise
    bar.close()
    _write_collected(args, results)
    if args.masks and done:
        say(f"wrote masks to {args.masks}")
    if several:  # the tally, which error lines among hundreds of summary lines did not give (stdout keeps
        # its one line per image)
        say(f"predict: {len(args.images)} images: {len(args.images) - failed} done, {failed} failed")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _quiet_decoders(args) -> None:
    """OpenCV's own log lines (e.g. libtiff's errors on a damaged file) would precede the one-line
    error that already names the file and the reason; --debug keeps them."""
    if not args.debug:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # this process is the command's alone


def _write_image_outputs(args, result, stem: str, several: bool) -> int:
    """One image's --overlay, --masks and DICOM objects, and its summary line, as soon as it is done;
    returns 1 when one of them could not be written (said why; with one image, raised), else 0."""
    from .csv_output import write_masks
    from .dicom_out import write_objects
    from .progress import say

    failed = 0
    try:
        if args.overlay:
            _write_overlay(args.overlay, result, stem, several=several, max_pixels=args.max_pixels)
        if args.masks:
            write_masks(args.masks, stem, result)
        if args.dicom_seg or args.dicom_sr:
            for path in write_objects(result, result.image, stem, seg_dir=args.dicom_seg, sr_dir=args.dicom_sr):
                say(f"wrote {path}")
    except Exception as exc:  # one image's outputs, a writer's surprise too (as batch): the others go on
        if not several:
            raise
        say(f"chexmask-rt: error: {exc}" if isinstance(exc, InputError)
            else f"chexmask-rt: error: {result.image}: {type(exc).__name__}: {first_line(exc)}")
        failed = 1
    # standard output carries the data (--json - / --csv -): the line, and a flag's warning, go to stderr
    say(_summary(result), file=sys.stdout if args.json != "-" and args.csv != "-" else None)
    return failed


def _write_collected(args, results) -> None:
    """predict's --json and --csv, of every image that succeeded."""
    from .progress import say

    failures = []  # each output is tried: one that cannot be written must not cost the other
    if args.json:
        payload = [r.to_dict() for r in results]
        # allow_nan=False: bare NaN tokens are not JSON (predict refuses non-finite results before this)
        text = json.dumps(payload[0] if len(payload) == 1 and len(args.images) == 1 else payload, indent=1,
                          allow_nan=False)
        if args.json == "-":
            try:
                _write_stdout(text + "\n", "JSON")
            except InputError as exc:
                failures.append(str(exc))
        else:
            try:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                write_text_whole(args.json, text + "\n")
                say(f"wrote {args.json}")
            except OSError as exc:
                failures.append(f"{args.json}: cannot write JSON ({os_reason(exc)})")
    if args.csv:
        try:
            _write_csv(args.csv, results)
        except ChexmaskError as exc:
            failures.append(str(exc))
    if failures:
        raise InputError("; ".join(failures))


def _write_csv(target: str, results) -> None:
    from .csv_output import csv_text, write_csv
    from .progress import say

    if target == "-":
        _write_stdout(csv_text(results), "CSV")
    else:
        write_csv(target, results)
        say(f"wrote {target}")


def cmd_batch(args) -> int:
    from .batch import run_batch
    from .discovery import SKIPPED_NAME
    from .model import load
    from .progress import say
    from .shards import batch_inputs

    found = batch_inputs(args.input, args.shard, exclude=args.out)  # the output folder is never an input
    _refuse_non_dicom(args, found.images)
    _quiet_decoders(args)
    seg = load(args.model, backend=args.backend, threads=args.threads, max_pixels=args.max_pixels,
               device=args.device)
    shard = args.shard and str(args.shard)
    if args.ray:
        from .ray_batch import run_ray

        summary = run_ray(seg, args.model, found.images, args.out, address=args.ray, samples=args.samples,
                          seed=args.seed, second_look=args.second_look, masks=args.masks,
                          progress=not args.no_progress, shard=shard, threads=args.threads,
                          actors=args.ray_actors, workers=args.workers, batch_size=args.batch_size,
                          backend=args.backend, device=args.device, max_pixels=args.max_pixels,
                          skipped=found.skipped, input_root=found.root, input_identity=found.identity,
                          overlays=args.overlays,
                          dicom_seg=args.dicom_seg, dicom_sr=args.dicom_sr)
    else:
        summary = run_batch(seg, found.images, args.out, samples=args.samples, seed=args.seed, workers=args.workers,
                            masks=args.masks, progress=not args.no_progress, second_look=args.second_look,
                            dicom_seg=args.dicom_seg, dicom_sr=args.dicom_sr, shard=shard, overlays=args.overlays,
                            batch_size=args.batch_size, skipped=found.skipped, input_root=found.root,
                            input_identity=found.identity)
    if found.skipped:  # written once the folder was accepted (a refused one is left as it was)
        say(f"batch: {len(found.skipped)} files skipped, reasons in {Path(args.out) / SKIPPED_NAME}")
    _output(f"batch: {summary.text(Path(args.out))}")
    if summary.outputs_missing:  # a rerun that adds --masks to a finished folder wrote nothing and said nothing
        say(f"batch: {', '.join(summary.outputs_missing)}: the {summary.skipped} images already in "
            f"{Path(args.out) / 'results.csv'} got none in this run (they are made for the images a run segments, "
            "and a run before this one did not ask for them); to have them for every image, run again into a "
            "new --out")
    return EXIT_OK if summary.failed == 0 else EXIT_SOME_FAILED


def cmd_merge(args) -> int:
    from .merge import merge_folders

    summary = merge_folders(args.folders, args.out, progress=True)
    _output(f"merge: {summary.text(Path(args.out))}")
    return EXIT_OK if summary.complete else EXIT_SOME_FAILED


def _overlay_folder(target: str, several: bool) -> bool:
    """Whether --overlay names a folder: for several images, an existing folder, a trailing '/', or a
    name without a picture suffix."""
    from .overlay import PICTURE_SUFFIXES

    return several or Path(target).is_dir() or target.endswith(("/", os.sep)) \
        or Path(target).suffix.lower() not in PICTURE_SUFFIXES


def _output_clash(args) -> str | None:
    """What is wrong when two of predict's outputs are one file, or an output is one of its images:
    written in turn, the later replaced the earlier without a word (an --overlay into the images' own
    folder replaced every PNG it was given; --json and --csv of one name kept the CSV)."""
    from .anatomy import ORGANS
    from .batch import mask_stems

    stems = mask_stems(args.images)
    several = len(args.images) > 1
    planned = [(option, None, target) for option, target in (("--json", args.json), ("--csv", args.csv))
               if target and target != "-"]
    if args.overlay and _overlay_folder(args.overlay, several):
        from .overlay import is_overlay_picture

        pictures = [(image, Path(args.overlay) / f"{stems[image]}.png") for image in args.images]
        foreign = _foreign_files(args.images, pictures, is_overlay_picture)
        if foreign:
            return f"--overlay would replace {foreign}, which is not a picture chexmask-rt drew: " \
                   "move it, or write the pictures into another folder"
        planned += [("--overlay", image, picture) for image, picture in pictures]
    elif args.overlay:
        planned += [("--overlay", args.images[0], args.overlay)]
    if args.masks:
        from .csv_output import MASK_WRITER
        from .png_mark import is_marked

        masks = [(image, Path(args.masks) / f"{stems[image]}_{organ}.png") for image in args.images for organ, _ in ORGANS]
        foreign = _foreign_files(args.images, masks, lambda path: is_marked(path, MASK_WRITER))
        if foreign:
            return f"--masks would replace {foreign}, which is not a mask chexmask-rt wrote: " \
                   "move it, or write the masks into another folder"
        planned += [("--masks", image, mask) for image, mask in masks]
    for option, image, target in planned:  # a name made from a long image name: it failed after the inference
        if len(os.fsencode(Path(target).name)) > NAME_MAX:
            return (f"{option} would write {Path(target).name[:40]}..., a name longer than the {NAME_MAX} bytes a file "
                    f"name may have (made from {image}): rename the image, or give the output a shorter name")
    images = {os.path.realpath(image): image for image in args.images}
    claimed: dict[str, tuple[str, str | None]] = {}
    for option, image, target in planned:
        if is_special(target):  # /dev/null, a pipe: written in place, and any number of outputs may go there
            continue
        real = os.path.realpath(target)
        if real in images:
            return f"{option} would write {target} over the image {images[real]}: write it elsewhere"
        other = claimed.setdefault(real, (option, image))
        if other != (option, image) and not (image is not None and image == other[1]):
            return f"{other[0]} and {option} would both write {target}: give them different names or folders"
    return None


def _foreign_files(images: list[str], outputs: list[tuple[str, Path]], ours: Callable[[Path], bool]) -> str | None:
    """The first of ``outputs``, names the command made up, that holds a file it did not write (someone's:
    an x.png beside x.jpg, a ground-truth x_heart.png), and how many more; None when there is none.
    An image itself is left to the clash check, which says so; a folder is no one's loss (that output
    fails alone, after its answer is kept)."""
    given = {os.path.realpath(image) for image in images}
    foreign = [path for _, path in outputs if os.path.lexists(path) and not path.is_dir() and not is_special(path)
               and not ours(path) and os.path.realpath(path) not in given]
    if not foreign:
        return None
    return f"{foreign[0]} and {len(foreign) - 1} more" if len(foreign) > 1 else str(foreign[0])


def _write_overlay(target: str, result, stem: str, *, several: bool, max_pixels: int | None) -> None:
    """The picture of ``result`` to ``target``; or, for several images or a folder target (an existing
    folder, a trailing '/', or a name without a picture suffix), to ``target/<stem>.png``."""
    from .image_io import read_image
    from .overlay import write_overlay
    from .progress import say

    out = Path(target) / f"{stem}.png" if _overlay_folder(target, several) else Path(target)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the overlay picture ({os_reason(exc)})") from None
    write_overlay(out, read_image(result.image, max_pixels=max_pixels), result)
    say(f"wrote {out}")


def cmd_info(args) -> int:
    from .model import load
    from .version import __version__

    from . import core

    seg = load(args.model, backend=args.backend, device=args.device)
    info = {k: getattr(seg.info, k) for k in dir(seg.info) if not k.startswith("_") and k != "metadata"}
    # the engine threads predict and batch run without --threads: what a container's cpuset or CPU
    # limit leaves this process (null where Linux does not say)
    threads = core.usable_cores() or None
    # what ran, for a bug report: the package, and the ONNX Runtime whose library the core loaded
    distribution = core.onnxruntime_distribution()
    runtime = {"distribution": distribution and distribution[0], "version": distribution and distribution[1],
               "library": core.onnxruntime_library()}
    _write_stdout(json.dumps({"path": str(seg.path), "backend": seg.backend, "providers": seg.providers,
                              "threads": threads, "sha256": seg.engine_sha256, "integrity": seg.integrity,
                              "chexmask_rt": __version__, "onnxruntime": runtime, **info},
                             indent=1) + "\n", "the engine's information")
    return EXIT_OK


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # escaped like every other line: a DICOM's Specific Character Set quoted in pydicom's warning, or an
    # engine's file name, carried ESC sequences that retitled and cleared the terminal
    _error(f"chexmask-rt: warning: {message}")


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends a command as Ctrl-C does (its message, its clean-up), not silently with 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextmanager
def _stops_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive inside the block take effect as it ends (a fraction of a second:
    one image's outputs), so that the block's work is whole or not begun."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if held:  # delivered again, to the handler the block found (an ignored signal stays ignored)
        signal.raise_signal(held[0])


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        _as_utf8_mode()
    _steady_streams()
    with _sigterm_as_interrupt():
        code = _main(argv)
    try:  # what is still buffered: a reader that left must not turn the exit into Python's 120
        sys.stdout.flush()
    except (OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


def _as_utf8_mode() -> None:
    """Rerun the command in Python's UTF-8 mode where the locale's encoding is another (ISO-8859-1,
    EUC-JP, GB18030). Names are decoded by that encoding but written to the UTF-8 files, so under
    LC_ALL=de_DE 'Röntgen.png' was written 'RÃ¶ntgen.png' and a resume redid every such image. In UTF-8
    mode a name is its bytes, the same in every locale, and one that is not UTF-8 is written as its
    bytes, as elsewhere. The same interpreter reruns the same command line (its flags, the same script:
    not ``-m chexmask_rt``, which would put the working folder first on the import path), as the bytes
    the process was given (/proc/self/cmdline: GB18030 does not round-trip every name through Python)."""
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower().replace("-", "") == "utf8" or not sys.executable:
        return
    if not _started_as_the_command():  # a program calling main() itself would be restarted whole
        return
    try:
        with open("/proc/self/cmdline", "rb") as f:
            given = f.read().split(b"\0")[:-1]
    except OSError:
        given = [os.fsencode(a) for a in sys.orig_argv]
    os.execv(sys.executable, [os.fsencode(sys.executable), b"-X", b"utf8", *given[1:]])


def _started_as_the_command() -> bool:
    """Whether this process is ``chexmask-rt`` or ``python -m chexmask_rt``, not a program of its own."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return started.name == "chexmask-rt" or (started.name == "__main__.py" and started.parent.name == "chexmask_rt")


_closed_at_start: set[int] = set()  # standard descriptors the command was started without


def _steady_streams() -> None:
    """Standard streams as the command writes to them. One started closed (``2>&-``) is /dev/null on
    its own descriptor (a closed stderr stopped every run before its first image, and the next file
    opened, such as the batch lock, took its number and low-level writes). A name the stream's
    encoding cannot hold is escaped, not a traceback; on a UTF-8 stdout a name that is not UTF-8 is
    written as its bytes, as in files."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            _closed_at_start.add(fd)
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(fd, "w", closefd=False))
        elif hasattr(stream, "reconfigure"):
            utf8 = (stream.encoding or "").lower().replace("-", "") == "utf8"
            # in UTF-8 mode under a locale that is not (_as_utf8_mode), a name's own bytes are what its
            # terminal shows for it: escaped, a Latin-1 'Röntgen' read R\udcf6ntgen
            as_bytes = utf8 and (name == "stdout" or _terminal_codeset() not in ("UTF-8", "utf8"))
            stream.reconfigure(errors="surrogateescape" if as_bytes else "backslashreplace")


def _terminal_codeset() -> str:
    import locale

    try:
        return locale.nl_langinfo(locale.CODESET)
    except (AttributeError, ValueError):
        return "UTF-8"


def _write_stdout(text: str, what: str) -> None:
    """Data for standard output (JSON, CSV, info): lost is an error, unlike a summary line."""
    try:
        if 1 in _closed_at_start:
            raise OSError(errno.EBADF, "closed")
        sys.stdout.flush()  # what is already in its buffer goes first
        fd = _file_descriptor(sys.stdout)
        if fd is None:  # a caller's own stream (a tee, a capture): its write is its own
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        _write_all(fd, text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))
    except (OSError, ValueError) as exc:
        raise InputError(f"standard output: cannot write {what} ({os_reason(exc)})") from None


def _file_descriptor(stream) -> int | None:
    """The descriptor under a plain text stream over a file, else None."""
    if type(stream) is not io.TextIOWrapper:
        return None
    try:
        return stream.fileno()
    except (OSError, ValueError):
        return None


def _write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to ``fd``. Python's own layers are bypassed: with PYTHONUNBUFFERED (common in
    containers) a pipe's short write was ignored, so JSON past its first 64 KiB was lost at exit 0, and a
    non-blocking pipe whose reader was slow lost it all at exit 3; here the rest waits for the reader."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def _name_stdout_as_dash(args) -> None:
    """predict's --json and --csv naming this process's standard output (/dev/stdout, /dev/fd/1, the file
    it is redirected to) become '-': written whole by a rename, the JSON replaced that name (as root,
    /dev/stdout itself) and the redirected file got only the summary lines."""
    try:
        out = os.fstat(1)
    except OSError:  # no standard output at all
        return
    for option in ("json", "csv"):
        target = getattr(args, option, None)
        if target and target != "-":
            try:
                named = os.stat(target)
            except (OSError, ValueError):  # not there yet (or no name a file can have): a file it makes
                continue
            # a terminal or /dev/null is written in place, as before: any number of outputs may go there
            if (named.st_dev, named.st_ino) == (out.st_dev, out.st_ino) and not stat.S_ISCHR(named.st_mode):
                setattr(args, option, "-")


def _conflict(args) -> str | None:
    """Options that parse but cannot go together (a usage error, exit 2), predict's outputs that meet
    (:func:`_output_clash`) among them, or None."""
    empty = [f"--{name.replace('_', '-')}" for name in ("json", "csv", "overlay", "masks", "dicom_seg", "dicom_sr",
                                                         "out") if getattr(args, name, None) == ""]
    if empty:  # an empty name was taken for no option at all: the outputs asked for were never written
        return f"{empty[0]} needs a file or folder name, not an empty string"
    if getattr(args, "json", None) == "-" and getattr(args, "csv", None) == "-":
        return "--json - and --csv - would both go to standard output: send one of them to a file"
    if getattr(args, "bit_depth", None) is not None and args.command == "predict":
        from .dicom_io import is_dicom_file
        from .inputs import DICOM_BIT_DEPTH

        dicoms = [i for i in args.images if is_dicom_file(i)]
        if dicoms:
            more = f" and {len(dicoms) - 1} more" if len(dicoms) > 1 else ""
            return f"--bit-depth {DICOM_BIT_DEPTH}: {dicoms[0]}{more}"
    if getattr(args, "ray_actors", None) is not None and not args.ray:
        return f"--ray-actors {args.ray_actors} needs --ray (without it the run is local)"
    if args.command == "predict" and args.overlay and len(args.images) > 1 and not _overlay_folder(args.overlay, False):
        return (f"--overlay {args.overlay} names one picture, but {len(args.images)} images were given: "
                "name a folder (it gets one <image name>.png each)")
    return _output_clash(args) if args.command == "predict" else None


def _main(argv: list[str] | None) -> int:
    warnings.showwarning = _show_warning  # one plain line, not the source location
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt as exc:  # before any work: nothing to resume
        word, code = _stopped(exc)
        print(f"chexmask-rt: {word}", file=sys.stderr)
        return code
    except _HelpLost as lost:
        _error(f"chexmask-rt: error: standard output: cannot write the help or version text ({lost})")
        return EXIT_INPUT
    except SystemExit as exc:  # --help, --version or a usage error, printed by argparse
        if exc.code in (0, None):
            try:
                _write_stdout("", "the help or version text")  # flushes it: text nobody got was Python's exit 120
            except InputError as lost:
                _error(f"chexmask-rt: error: {lost}")
                return EXIT_INPUT
        raise
    try:
        _name_stdout_as_dash(args)
        refusal = _conflict(args)
    except OSError as exc:  # realpath of a relative path, with the working folder deleted; a name too long
        said = f"{exc.filename}: {os_reason(exc)}" if exc.filename else f"{type(exc).__name__}: {first_line(exc)}"
        _error(f"chexmask-rt: error: {said}{_gone_folder_hint()}")
        return EXIT_INPUT
    if refusal:  # one line, as the README promises errors (argparse's own add its usage)
        _error(f"chexmask-rt {args.command}: error: {refusal}")
        return EXIT_USAGE
    if getattr(args, "backend", None) == "python":
        print("chexmask-rt: error: --backend python is gone: the native core is the only pipeline "
              "(use --backend auto, the default; same results)", file=sys.stderr)
        return EXIT_USAGE
    handler = getattr(args, "run", None) or {"predict": cmd_predict, "batch": cmd_batch, "merge": cmd_merge,
                                             "info": cmd_info}[args.command]
    try:
        return handler(args)
    except UsageError as exc:  # a command's own check of options that cannot go together
        _error(f"chexmask-rt {args.command}: error: {exc}")
        return EXIT_USAGE
    except ChexmaskError as exc:
        if args.debug:
            traceback.print_exc()
        _error(f"chexmask-rt: error: {exc}{_gone_folder_hint()}")
        return EXIT_MODEL if isinstance(exc, ModelError) else EXIT_INPUT
    except (OSError, MemoryError) as exc:  # the machine, not our code: a full disk, a missing folder, no memory
        if args.debug:
            traceback.print_exc()
        _error(f"chexmask-rt: error: {type(exc).__name__}: {first_line(exc)}{_gone_folder_hint()}")
        return EXIT_INPUT
    except KeyboardInterrupt as exc:
        for note in getattr(exc, "__notes__", ()):  # what the run had done (batch.prepare_output)
            _error(f"{args.command}: {note}")
        resume = " (rerun the same command to resume)" if args.command == "batch" else ""
        word, code = _stopped(exc)
        _error(f"chexmask-rt: {word}{resume}")
        return code


def _stopped(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What a stopped command says, and its exit code: SIGTERM 143, Ctrl-C 130."""
    return ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)


def _gone_folder_hint() -> str:
    """Why an error names no file: the working folder was deleted, so no relative path resolves."""
    try:
        os.getcwd()
    except OSError:
        return " (the working folder is gone: relative paths cannot be found; give absolute ones)"
    return ""


def _error(line: str) -> None:
    """A line on standard error, escaped, lost (not raised) when nobody reads it any more."""
    from .progress import say

    say(line)


def _output(line: str) -> None:
    """A summary line on standard output, likewise."""
    from .progress import say

    say(line, file=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
