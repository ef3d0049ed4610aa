"""The GPU check, prepared to run once on a lent GPU (a few minutes):

    python -m benchmarks.gpu_check [--device cuda] [--out benchmarks/results]

* latency p50 at batch 1 and images/s at batch 32, K = 50, for the export model
  (dense formulation, K folded into one call) under CUDA graphs in fp32 and fp16,
  and for the PyTorch reference (published flow, eager, fp32);
* the fp16 vs fp32 landmark deviation of the export model on the shared real
  images (max and mean px, original pixels): what a TensorRT fp16 engine should expect.
Models: the published architecture at 1024 (seeded weights, for timing) and the
shipped 512 model (trained, for the deviation). Writes gpu_<device name>.json/.md.
``--smoke`` shrinks everything so the script's logic can be checked on a CPU.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.reference import load_reference
from benchmarks.run import HERE, default_model, published_1024
from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.engine_graph import UncertaintyEngine
from chexmask_export.onnx_export import build_network
from chexmask_rt.image_io import read_image
from chexmask_rt.preprocess import preprocess
from chexmask_rt.sampling import latent_noise

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


def engine_in(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> UncertaintyEngine:
    return UncertaintyEngine(build_network(load_checkpoint(checkpoint))).to(device=device, dtype=dtype).eval()


def timing(checkpoint: Path, device: torch.device, batches: tuple[int, int], samples: int, calls: int) -> dict:
    size = load_checkpoint(checkpoint).config.inputsize
    out = {}
    for name, dtype in (("export-fp32-cudagraph", torch.float32), ("export-fp16-cudagraph", torch.float16)):
        engine = engine_in(checkpoint, device, dtype)
        for batch in batches:
            image = torch.rand(batch, 1, size, size, device=device, dtype=dtype)
            eps = torch.from_numpy(latent_noise(samples, 64)).to(device=device, dtype=dtype)
            ms = _p50_ms(graphed(engine, image, eps), device, calls)
            out[f"{name}/batch{batch}"] = {"p50_ms": ms, "images_per_s": batch / ms * 1000}
        del engine
    ref = load_reference(load_checkpoint(checkpoint)).to(device)
    image = torch.rand(1, 1, size, size, device=device)
    eps = torch.from_numpy(latent_noise(samples, 64)).to(device)
    with torch.no_grad():
        ms = _p50_ms(lambda: ref.sample(image, eps), device, calls)
    # the published flow handles one image at a time: batch-32 throughput is the batch-1 rate
    out["pytorch-reference-fp32/batch1"] = {"p50_ms": ms, "images_per_s": 1000 / ms}
    return out


def fp16_deviation(checkpoint: Path, device: torch.device, images: list[Path], samples: int) -> dict:
    """Landmarks (mean over samples) and their std in original pixels, fp16 vs fp32 engine."""
    size = load_checkpoint(checkpoint).config.inputsize
    engines = {dt: engine_in(checkpoint, device, dt) for dt in (torch.float32, torch.float16)}
    eps = torch.from_numpy(latent_noise(samples, 64)).to(device)
    per_image, all_lm, all_std = {}, [], []
    for path in images:
        x, frame = preprocess(read_image(path), size)
        outs = {}
        with torch.no_grad():
            for dt, engine in engines.items():
                mean, std, *_ = engine(torch.from_numpy(x)[None, None].to(device=device, dtype=dt), eps.to(dt))
                outs[dt] = (frame.to_original(mean[0].float().cpu().numpy()),
                            frame.scale_to_original(std[0].float().cpu().numpy()))
        d_lm = np.linalg.norm(outs[torch.float16][0] - outs[torch.float32][0], axis=1)
        d_std = np.abs(outs[torch.float16][1] - outs[torch.float32][1])
        per_image[path.name] = {"landmark_mean_px": float(d_lm.mean()), "landmark_max_px": float(d_lm.max()),
                                "std_max_px": float(d_std.max())}
        all_lm.append(d_lm)
        all_std.append(d_std)
    lm, sd = np.concatenate(all_lm), np.concatenate([s.ravel() for s in all_std])
    return {"per_image": per_image, "landmark_mean_px": float(lm.mean()), "landmark_max_px": float(lm.max()),
            "std_mean_px": float(sd.mean()), "std_max_px": float(sd.max())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script on a CPU")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    samples, batches, calls = (4, (1, 2), 2) if args.smoke else (SAMPLES, (1, 32), 30)
    images = sorted(q for q in args.data.iterdir() if q.suffix in (".png", ".jpg"))[: 1 if args.smoke else None]
    timing_model = default_model()[0] if args.smoke else published_1024()[0]
    report = {
        "device": name, "torch": torch.__version__, "samples": samples, "date": time.strftime("%Y-%m-%d"),
        "timing_model": "default-512" if args.smoke else "published-1024",
        "timing": timing(timing_model, device, batches, samples, calls),
        "fp16_vs_fp32_default_model": fp16_deviation(default_model()[0], device, images, samples),
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu_{slug}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# GPU check on {name} ({report['date']}, torch {report['torch']}, K={samples})", "",
             f"Timing model: {report['timing_model']}", "", "| what | p50 ms | images/s |", "|---|---|---|"]
    lines += [f"| {k} | {v['p50_ms']:.2f} | {v['images_per_s']:.1f} |" for k, v in report["timing"].items()]
    dev = report["fp16_vs_fp32_default_model"]
    lines += ["", f"fp16 vs fp32 (shipped model, shared images, original px): landmarks mean {dev['landmark_mean_px']:.3f}, "
              f"max {dev['landmark_max_px']:.3f}; std mean {dev['std_mean_px']:.3f}, max {dev['std_max_px']:.3f}"]
    (args.out / f"gpu_{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
