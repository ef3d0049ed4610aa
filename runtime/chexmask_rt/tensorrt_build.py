"""``chexmask-rt build-trt``: a TensorRT 10 plan from a chexmask-rt ONNX engine.

With the ``tensorrt`` Python package importable the plan is built here; without it
the equivalent ``trtexec`` command is printed. Either way the plan gets a sidecar
``PLAN.meta`` (``key=value`` lines) that the native TensorRT backend reads: the ONNX
engine's ``chexmask_rt.*`` metadata plus the plan's key -- TensorRT version, GPU
compute capability, precision and the ONNX file's sha256. A plan is only valid for
the TensorRT version and GPU it was built on; the native core refuses it elsewhere.

The optimisation profile covers image [B, 1, S, S] for B in 1..max_batch and
eps [K, latents] for K in 1..max_samples (opt: opt_batch, opt_samples).
"""
from __future__ import annotations

import argparse
import ctypes
import shlex
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .metadata import file_sha256, read_engine_metadata

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class Profile:
    inputsize: int
    latents: int
    opt_batch: int = 1
    max_batch: int = 8
    opt_samples: int = 50
    max_samples: int = 200

    def shapes(self, which: str) -> dict[str, tuple[int, ...]]:
        b, k = {"min": (1, 1), "opt": (self.opt_batch, self.opt_samples), "max": (self.max_batch, self.max_samples)}[which]
        return {"image": (b, 1, self.inputsize, self.inputsize), "eps": (k, self.latents)}


def compute_capability() -> str | None:
    """'major.minor' of GPU 0 through the CUDA runtime, or None without one."""
    for name in ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0"):
        try:
            cudart = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    # cudaDevAttrComputeCapabilityMajor = 75, ...Minor = 76
    if cudart.cudaDeviceGetAttribute(ctypes.byref(major), 75, 0) or cudart.cudaDeviceGetAttribute(ctypes.byref(minor), 76, 0):
        return None
    return f"{major.value}.{minor.value}"


def plan_name(onnx: Path, trt_version: str, cc: str, precision: str, sha256: str) -> Path:
    """The plan's file name carries its key, so plans for different targets can sit side by side."""
    return onnx.with_name(f"{onnx.stem}.trt{trt_version}.sm{cc.replace('.', '')}.{precision}.{sha256[:12]}.plan")


def write_meta(plan: Path, props: dict[str, str], *, trt_version: str, cc: str, precision: str, sha256: str) -> Path:
    lines = [f"{k}={v}" for k, v in sorted(props.items()) if k.startswith("chexmask_rt.") and "\n" not in v]
    lines += [f"trt.version={trt_version}", f"trt.compute_capability={cc}", f"trt.precision={precision}",
              f"onnx.sha256={sha256}"]
    meta = plan.with_name(plan.name + ".meta")
    meta.write_text("# written by chexmask-rt build-trt\n" + "\n".join(lines) + "\n")
    return meta


def trtexec_command(onnx: Path, plan: Path, profile: Profile, precision: str) -> str:
    def arg(which: str) -> str:
        return ",".join(f"{n}:{'x'.join(map(str, s))}" for n, s in profile.shapes(which).items())
    cmd = ["trtexec", f"--onnx={onnx}", f"--saveEngine={plan}", f"--minShapes={arg('min')}",
           f"--optShapes={arg('opt')}", f"--maxShapes={arg('max')}"]
    if precision == "fp16":
        cmd.append("--fp16")
    return " ".join(shlex.quote(c) for c in cmd)


def build_with_tensorrt(onnx: Path, plan: Path, profile: Profile, precision: str, workspace_mib: int) -> str:
    """Build and save the plan with the tensorrt package; returns the TensorRT version."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    opt = builder.create_optimization_profile()
    for name in ("image", "eps"):
        opt.set_shape(name, profile.shapes("min")[name], profile.shapes("opt")[name], profile.shapes("max")[name])
    config.add_optimization_profile(opt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{onnx}: TensorRT failed to build a plan (see its log above)")
    plan.write_bytes(bytes(serialized))
    return trt.__version__.split("+")[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``chexmask-rt build-trt``."""
    p.add_argument("model", help="chexmask-rt ONNX engine")
    p.add_argument("--output", help="plan path (default: named by its key beside the ONNX file)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-samples", type=int, default=200)
    p.add_argument("--opt-samples", type=int, default=50)
    p.add_argument("--workspace-mib", type=int, default=1024)
    p.add_argument("--meta-only", metavar="PLAN", help="only write PLAN.meta for a plan built with trtexec "
                   "(needs --trt-version and --compute-capability)")
    p.add_argument("--trt-version", help="TensorRT version trtexec used, e.g. 10.3.0")
    p.add_argument("--compute-capability", help="GPU compute capability, e.g. 8.7 (Orin)")


def run(args: argparse.Namespace) -> int:
    onnx = Path(args.model)
    props, info = read_engine_metadata(onnx)
    sha = file_sha256(onnx)
    if args.meta_only:
        if not (args.trt_version and args.compute_capability):
            raise ModelError("--meta-only needs --trt-version and --compute-capability")
        meta = write_meta(Path(args.meta_only), props, trt_version=args.trt_version, cc=args.compute_capability,
                          precision=args.precision, sha256=sha)
        print(f"wrote {meta}")
        return 0
    profile = Profile(info.inputsize, info.latents, args.opt_batch, args.max_batch, args.opt_samples, args.max_samples)
    cc = args.compute_capability or compute_capability() or "unknown"
    try:
        import tensorrt
        trt_version = tensorrt.__version__.split("+")[0]
    except ImportError:
        trt_version = args.trt_version or "<version>"
        plan = Path(args.output) if args.output else plan_name(onnx, trt_version, cc, args.precision, sha)
        print("The tensorrt Python package is not installed; build the plan with trtexec on the target:\n")
        print("  " + trtexec_command(onnx, plan, profile, args.precision) + "\n")
        print("then write its key file:\n\n  chexmask-rt build-trt "
              f"{shlex.quote(str(onnx))} --meta-only {shlex.quote(str(plan))} --precision {args.precision} "
              "--trt-version <trtexec's TensorRT version> --compute-capability <GPU's, e.g. 8.7>")
        return 0
    plan = Path(args.output) if args.output else plan_name(onnx, trt_version, cc, args.precision, sha)
    build_with_tensorrt(onnx, plan, profile, args.precision, args.workspace_mib)
    meta = write_meta(plan, props, trt_version=trt_version, cc=cc, precision=args.precision, sha256=sha)
    print(f"wrote {plan} and {meta.name} (TensorRT {trt_version}, sm {cc}, {args.precision}, "
          f"batch <= {args.max_batch}, samples <= {args.max_samples})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chexmask-rt build-trt", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
