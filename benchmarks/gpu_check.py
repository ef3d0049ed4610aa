"""The GPU check, prepared to run once on a lent GPU (a few minutes):

    python -m benchmarks.gpu_check [--device cuda] [--out benchmarks/results]

* latency p50 at batch 1 and images/s at batch 32, K = 50, for the export model
  (dense formulation, K folded into one call) under CUDA graphs in fp32 and fp16,
  and for the PyTorch reference (published flow, eager, fp32);
* the fp16 vs fp32 landmark deviation of the export model on the shared real
  images (max and mean px, original pixels): what a TensorRT fp16 engine should expect;
  also with the per-image norms kept in fp32 ("fp16-fp32norm"), the layer precision
  constraint a TensorRT build would set if plain fp16 deviates (E[x^2] - mean^2 cancels).
Models: the published architecture at 1024 (seeded weights, for timing) and the
shipped 512 model (trained, for the deviation). Writes gpu_<device name>.json/.md.
``--smoke`` shrinks everything so the script's logic can be checked on a CPU.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.reference import load_reference
from benchmarks.run import HERE, default_model, published_1024
from benchmarks.shared_data import engine_input
from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.engine_graph import UncertaintyEngine
from chexmask_export.model import InstanceNormAffine
from chexmask_export.onnx_export import build_network
from chexmask_rt._core import latent_noise
from chexmask_rt.image_io import read_image

DATA = HERE.parent.parent / "shared" / "data" / "images"
SAMPLES = 50


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _p50_ms(fn, device, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def graphed(engine: UncertaintyEngine, image: torch.Tensor, eps: torch.Tensor):
    """The engine as one replayable call: a CUDA graph on the GPU, plain eager elsewhere
    (and eager, said in the report, if capture fails)."""
    if image.device.type != "cuda":
        return lambda: engine(image, eps)
    try:
        return _capture(engine, image, eps)
    except RuntimeError as exc:
        print(f"CUDA graph capture failed, timing eager instead: {exc}")
        return lambda: engine(image, eps)


def _capture(engine: UncertaintyEngine, image: torch.Tensor, eps: torch.Tensor):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):  # warm up cuDNN/cuBLAS choices before capture
            engine(image, eps)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        engine(image, eps)
    return graph.replay


class _Fp32Norm(InstanceNormAffine):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)

    def of_pointwise(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return super().of_pointwise(x.float(), weight.float()).to(x.dtype)


def _keep_norms_fp32(module: torch.nn.Module) -> None:
    """Recast the norms of an fp16 engine to compute in fp32 (the export graph stays as it is)."""
    for m in module.modules():
        if isinstance(m, InstanceNormAffine):
            m.float().__class__ = _Fp32Norm


# name -> (dtype, per-image norms in fp32)
PRECISIONS = {"fp32": (torch.float32, False), "fp16": (torch.float16, False), "fp16-fp32norm": (torch.float16, True)}


def engine_in(checkpoint: Path, device: torch.device, precision: str) -> UncertaintyEngine:
    dtype, fp32_norms = PRECISIONS[precision]
    ckpt = load_checkpoint(checkpoint)  # the shipped engine's graph, its landmark offsets included
    engine = UncertaintyEngine(build_network(ckpt), offsets=ckpt.landmark_offsets).to(device=device, dtype=dtype).eval()
    if fp32_norms:
        _keep_norms_fp32(engine)
    return engine


def _row(build, batch: int, device: torch.device, calls: int) -> dict:
    """One timing row; a variant that fails is reported, and costs the others nothing."""
    try:
        ms = _p50_ms(build(), device, calls)
    except Exception as exc:  # noqa: BLE001 - the report says what failed
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"p50_ms": ms, "images_per_s": batch / ms * 1000}


def timing(checkpoint: Path, device: torch.device, batches: tuple[int, int], samples: int, calls: int) -> dict:
    size = load_checkpoint(checkpoint).config.inputsize
    out = {}
    for precision, (dtype, _) in PRECISIONS.items():
        engine = engine_in(checkpoint, device, precision)
        for batch in batches:
            image = torch.rand(batch, 1, size, size, device=device, dtype=dtype)
            eps = torch.from_numpy(latent_noise(samples, 64)).to(device=device, dtype=dtype)
            out[f"export-{precision}-cudagraph/batch{batch}"] = _row(
                lambda: graphed(engine, image, eps), batch, device, calls)
    ref = load_reference(load_checkpoint(checkpoint)).to(device)
    image = torch.rand(1, 1, size, size, device=device)
    eps = torch.from_numpy(latent_noise(samples, 64)).to(device)
    with torch.no_grad():
        # the published flow handles one image at a time: batch-32 throughput is the batch-1 rate
        out["pytorch-reference-fp32/batch1"] = _row(lambda: lambda: ref.sample(image, eps), 1, device, calls)
    return out


def fp16_deviation(checkpoint: Path, device: torch.device, images: list[Path], samples: int) -> dict:
    """Landmarks (mean over samples) and their std in original pixels, each reduced
    precision vs the fp32 engine: {precision: figures}."""
    size = load_checkpoint(checkpoint).config.inputsize
    engines = {name: engine_in(checkpoint, device, name) for name in PRECISIONS}
    eps = torch.from_numpy(latent_noise(samples, 64)).to(device)
    outs: dict[str, list] = {name: [] for name in PRECISIONS}
    for path in images:
        x, frame = engine_input(read_image(path), size)
        with torch.no_grad():
            for name, engine in engines.items():
                dtype = PRECISIONS[name][0]
                mean, std, *_ = engine(torch.from_numpy(x)[None, None].to(device=device, dtype=dtype), eps.to(dtype))
                outs[name].append((frame.to_original(mean[0].float().cpu().numpy()),
                                   frame.scale_to_original(std[0].float().cpu().numpy())))
    report = {}
    for name in PRECISIONS:
        if name == "fp32":
            continue
        d_lm = [np.linalg.norm(o[0] - r[0], axis=1) for o, r in zip(outs[name], outs["fp32"])]
        d_std = [np.abs(o[1] - r[1]) for o, r in zip(outs[name], outs["fp32"])]
        # NaN never passes: a non-finite output counts as an infinite deviation
        lm = np.nan_to_num(np.concatenate(d_lm), nan=np.inf)
        sd = np.nan_to_num(np.concatenate([d.ravel() for d in d_std]), nan=np.inf)
        report[name] = {
            "per_image": {p.name: {"landmark_mean_px": float(a.mean()), "landmark_max_px": float(a.max()),
                                   "std_max_px": float(b.max())} for p, a, b in zip(images, d_lm, d_std)},
            "landmark_mean_px": float(lm.mean()), "landmark_max_px": float(lm.max()),
            "std_mean_px": float(sd.mean()), "std_max_px": float(sd.max())}
    return report


def _deviation_or_error(checkpoint: Path, device: torch.device, images: list[Path], samples: int) -> dict:
    try:
        return fp16_deviation(checkpoint, device, images, samples)
    except Exception as exc:  # noqa: BLE001 - keep the timing rows; the report says what failed
        return {"all": {"error": f"{type(exc).__name__}: {exc}"[:300]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", help="default cuda; with --smoke on a machine without CUDA, cpu")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, help="default benchmarks/results; with --smoke a temporary folder, "
                   "so that a check of the script never lands beside the committed GPU results")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script on a CPU")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.smoke and not torch.cuda.is_available() else "cuda"))
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="gpu_check_smoke_")) if args.smoke else HERE / "results"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    samples, batches, calls = (4, (1, 2), 2) if args.smoke else (SAMPLES, (1, 32), 30)
    images = sorted(q for q in args.data.iterdir() if q.suffix in (".png", ".jpg"))[: 1 if args.smoke else None]
    timing_model = default_model()[0] if args.smoke else published_1024()[0]
    report = {
        "device": name, "torch": torch.__version__, "samples": samples, "date": time.strftime("%Y-%m-%d"),
        "timing_model": "default-512" if args.smoke else "published-1024",
        "timing": timing(timing_model, device, batches, samples, calls),
        "vs_fp32_default_model": _deviation_or_error(default_model()[0], device, images, samples),
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu_{slug}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# GPU check on {name} ({report['date']}, torch {report['torch']}, K={samples})", "",
             f"Timing model: {report['timing_model']}", "", "| what | p50 ms | images/s |", "|---|---|---|"]
    lines += [f"| {k} | {v['p50_ms']:.2f} | {v['images_per_s']:.1f} |" if "error" not in v else
              f"| {k} | failed: {v['error']} | |" for k, v in report["timing"].items()]
    lines += ["", "Deviation from the fp32 engine (shipped model, shared images, original px):", "",
              "| precision | landmark mean | landmark max | std mean | std max |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {d['landmark_mean_px']:.3f} | {d['landmark_max_px']:.3f} | {d['std_mean_px']:.3f} | "
              f"{d['std_max_px']:.3f} |" if "error" not in d else f"| {k} | failed: {d['error']} | | | |"
              for k, d in report["vs_fp32_default_model"].items()]
    (args.out / f"gpu_{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
