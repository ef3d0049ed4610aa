"""``chexmask-rt export``: the export toolchain's subcommand of the runtime's command line.

setup.py registers :func:`add_command` in the ``chexmask_rt.commands`` entry point group; the
runtime's CLI adds every command of that group, so it never imports this package itself. This
module imports only argparse and the runtime's errors: torch is imported when the command runs.
"""
from __future__ import annotations

import argparse
import os

from chexmask_rt.errors import InputError, ModelError, UsageError

MISSING_EXTRAS = "export needs the export extras (torch, onnx): pip install 'chexmask-rt[export]'"


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` and its flags to the runtime's subcommands; ``run`` handles it."""
    p = sub.add_parser("export", help="convert a published HybridGNet checkpoint into a chexmask-rt ONNX engine")
    p.add_argument("--checkpoint", required=True, help="Hugging Face folder / pytorch_model.bin, or a training-script .pt")
    p.add_argument("--config", help="config.json (default: the one beside the checkpoint, else inferred)")
    p.add_argument("--output", required=True, type=_engine_file, help="output .onnx path (the file, not a folder)")
    p.add_argument("--samples-output", action="store_true", help="also output the raw samples [B,K,120,2]")
    p.add_argument("--name", default="hybridgnet", type=_model_name,
                   help="model name stored in the engine; results name the model NAME:VERSION (default hybridgnet)")
    p.add_argument("--model-version", default="unversioned", type=_model_version,
                   help="model version stored in the engine: no ':', at most 64 characters (default unversioned)")
    p.add_argument("--description", default="", type=_description,
                   help="free text stored in the engine (e.g. where its card is; default empty)")
    p.add_argument("--no-fused-norms", action="store_true",
                   help="keep the norms' per-image affines as Mul/Add only, without the batch-1 depthwise-Conv "
                        "branch (for a TensorRT build that rejects If nodes or non-constant Conv weights)")
    p.add_argument("--second-look", action="store_true",
                   help="make predict take a second look by default with this engine (README, \"The second look\"); "
                        "measure first that it helps the model (training.evaluate with and without --single-look)")
    p.add_argument("--no-landmark-offsets", action="store_true",
                   help="leave out the per-landmark offsets of a landmark_offsets.json beside the checkpoint "
                        "(see chexmask_export/landmark_offsets.py): the bare model, e.g. to fit new ones")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export ``args.checkpoint`` to ``args.output``; ModelError (exit 4) without torch or onnx."""
    try:
        from .checkpoint import load_checkpoint
        from .onnx_export import build_network, export_onnx
    except ImportError as exc:
        raise ModelError(f"{MISSING_EXTRAS} ({exc})") from None
    _check_output_place(args.output)  # before the minutes of exporting
    ckpt = load_checkpoint(args.checkpoint, args.config, offsets=not args.no_landmark_offsets)
    _refuse_overwriting_inputs(args.output, ckpt, args.config)
    info = export_onnx(build_network(ckpt), args.output, checkpoint_sha256=ckpt.sha256,
                       samples_output=args.samples_output, model_name=args.name, model_version=args.model_version,
                       description=args.description, fuse_norms=not args.no_fused_norms,
                       landmark_offsets=ckpt.landmark_offsets, second_look=args.second_look)
    offsets = "" if ckpt.landmark_offsets is None else f", landmark offsets from {ckpt.landmark_offsets.source}"
    print(f"wrote {args.output}: inputsize {info.inputsize}, latents {info.latents}, skip {info.skip}, "
          f"{ckpt.layout} checkpoint sha256 {ckpt.sha256[:12]}...{offsets}")
    return 0


def _engine_file(output: str) -> str:
    """An argparse type: --output names the engine file to write. A folder (existing, or one ending in a
    separator) would fail only after the export, or be written as a file of that name: a usage error
    (exit 2), whether or not the folder exists yet, as for predict's --overlay."""
    from pathlib import Path

    try:
        folder = not output or output.endswith(("/", os.sep)) or not Path(output).name or Path(output).is_dir()
    except OSError as exc:  # a name too long for the file system: stat refuses it (a traceback, exit 1)
        raise argparse.ArgumentTypeError(f"{output[:80]!r}...: {exc.strerror or exc}") from None
    if folder:
        raise argparse.ArgumentTypeError(f"{output!r} names a folder; name the engine file (e.g. model.onnx)")
    if Path(output).suffix.lower() in (".engine", ".plan"):  # the runtime refuses to open such a name
        raise argparse.ArgumentTypeError(f"{output!r}: .engine and .plan name TensorRT plans, which chexmask-rt "
                                         "refuses to open; name the ONNX engine (e.g. model.onnx)")
    return output


def _check_output_place(output: str) -> None:
    """Where --output would be written can take a file: an output that cannot be written is an input
    error (exit 3), tried now rather than after the export."""
    from pathlib import Path

    above = next((p for p in Path(output).absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"--output {output}: {above} is a file, not a folder")
    if above is not None:  # where the engine (or its missing folders) would be written: tried now, not after
        import tempfile

        try:
            tempfile.TemporaryFile(dir=above).close()
        except OSError as exc:
            raise InputError(f"--output {output}: cannot write in {above} ({exc.strerror or exc})") from None


def _refuse_overwriting_inputs(output: str, ckpt, config: str | None) -> None:
    """An --output that names one of the files the export reads would replace it with the engine."""
    from pathlib import Path

    from .checkpoint import HF_CONFIG

    target = Path(output)
    if not target.exists():
        return
    inputs = [ckpt.source, Path(config) if config else ckpt.source.parent / HF_CONFIG]
    if ckpt.landmark_offsets is not None:
        inputs.append(Path(ckpt.landmark_offsets.source))
    for source in inputs:
        if source.exists() and target.samefile(source):
            raise UsageError(f"--output {output} is the export's input {source}; write the engine elsewhere")


# The texts stored in the engine, checked as argparse types: a value that cannot be stored is a usage
# error (exit 2) naming the option, before torch is imported. UTF-8: ONNX metadata is text, and a name
# in another encoding (surrogates from argv) failed only when the engine was written. A name and version
# that make an id ("name:version") by the core's rule, which refuses an engine that breaks it.

def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
    return text


def _id_part(text: str, *, version: bool) -> str:
    from chexmask_rt import core

    _utf8(text)
    # the core checks the name, then the version; the other one is given a valid stand-in
    problem = core.model_id_problem("model", text, dicom=True) if version else \
        core.model_id_problem(text, "1", dicom=True)
    if problem:  # "model_name '...' is ...": the option is argparse's to name
        raise argparse.ArgumentTypeError(problem.partition(" ")[2])
    return text


def _model_name(text: str) -> str:
    return _id_part(text, version=False)


def _model_version(text: str) -> str:
    return _id_part(text, version=True)


def _description(text: str) -> str:
    return _utf8(text)
