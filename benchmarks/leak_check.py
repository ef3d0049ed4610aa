"""Memory-leak check: RSS growth over many sequential predictions after a warm-up.

    python -m benchmarks.leak_check [--count 2000] [--warmup 50] [--samples 50]

Inputs cycle through the shared real images as arrays, as files, and the CR DICOM,
so decoding, preprocessing, the engine call and postprocessing all repeat. Prints
the RSS after warm-up, at the end, and the growth; exits 1 when it is 10 MB or more, 3 when the
check itself fails (so that a crash never reads as a leak).
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback

from benchmarks.run import proc_status_mb
import chexmask_rt
from benchmarks.shared_data import radiographs_and_dicom
from chexmask_rt.image_io import read_image

LIMIT_MB = 10.0


def rss_mb() -> float:
    rss = proc_status_mb("VmRSS")
    if rss is None:
        raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")
    return rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)

    seg = chexmask_rt.load(threads=1)
    files = radiographs_and_dicom()
    arrays = [read_image(p) for p in files]
    items = [x for pair in zip(files, arrays) for x in pair]
    for i in range(args.warmup):
        seg.predict(items[i % len(items)], samples=args.samples, seed=i)
    start = rss_mb()
    trace = []
    for i in range(args.count):
        seg.predict(items[i % len(items)], samples=args.samples, seed=i)
        if (i + 1) % max(1, args.count // 10) == 0:
            trace.append(round(rss_mb() - start, 2))
    end = rss_mb()
    report = {"count": args.count, "warmup": args.warmup, "samples": args.samples,
              "rss_after_warmup_mb": round(start, 1), "rss_end_mb": round(end, 1),
              "growth_mb": round(end - start, 2), "growth_trace_mb": trace, "limit_mb": LIMIT_MB}
    print(json.dumps(report))
    return 0 if end - start < LIMIT_MB else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
