"""Native core vs the NumPy + onnxruntime-Python reference pipeline (tests/reference): latency,
same process, same engine, same image (p50/p90 over N calls).

  python cpp/tools/compare_latency.py [--model M] [--image I] [--samples K] [--calls N] [--threads T]

Both paths start from the decoded array (file decoding is shared Python code). The reference
leaves out the reliability flag, which costs the native path a few microseconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import chexmask_rt
from chexmask_rt.image_io import read_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests/reference
from tests.reference import ReferenceSegmenter  # noqa: E402


def timings(fn, calls: int) -> list[float]:
    fn()  # warm-up: first-run allocations
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(chexmask_rt.default_model_path()))
    p.add_argument("--image", default="../shared/data/images/wiki_example2_chest_xray.jpg")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    image = read_image(args.image)
    python = ReferenceSegmenter(args.model, threads=args.threads)
    native = chexmask_rt.load(args.model, threads=args.threads)
    print(f"model {args.model}, image {args.image} {image.shape} {image.dtype}, K={args.samples}, calls={args.calls}")
    # interleave rounds so drift (thermal, other load) hits both paths alike
    results: dict[str, list[float]] = {"python": [], "native": []}
    for _ in range(2):
        for name, seg in (("python", python), ("native", native)):
            results[name] += timings(lambda: seg.predict(image, samples=args.samples, seed=0), args.calls // 2)
    for name, ms in results.items():
        q = np.percentile(ms, [50, 90])
        print(f"{name:7s} p50 {q[0]:8.2f} ms   p90 {q[1]:8.2f} ms   mean {statistics.mean(ms):8.2f} ms  (n={len(ms)})")
    print(f"speed-up p50: {np.median(results['python']) / np.median(results['native']):.2f}x")


if __name__ == "__main__":
    main()
