"""Peak memory of a batch of large radiographs with one look and with the second look.

    python -m benchmarks.second_look_memory [--side 3200]

Eight 16-bit images (example 1 resized to 7/8 x 1 of ``--side``, 12 significant bits) go
through ``predict_batch`` in one chunk of 8, K = 50. Each setting runs in its own process, and
the peak RSS (``ru_maxrss``) is printed with the process's peak before the batch, so the
difference is what the batch and its crops cost. The second look holds each crop only while it
is preprocessed, so it should cost little more than one look.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks.shared_data import DATA


def measure(second_look: bool, side: int) -> dict:
    """Runs in the child process: the batch's peak RSS in MB."""
    import warnings

    import cv2
    import numpy as np

    import chexmask_rt
    from chexmask_rt.image_io import read_image, to_gray

    warnings.simplefilter("ignore")
    seg = chexmask_rt.load()
    gray = to_gray(read_image(DATA / "images" / "wiki_example1_normal_PA.jpg"))
    big = cv2.resize(gray, (side * 7 // 8, side)).astype(np.uint16) * 16
    seg.predict(big, samples=8, second_look=second_look)  # engine and arenas warmed up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seg.predict_batch([big.copy() for _ in range(8)], samples=50, batch_size=8, second_look=second_look)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"second_look": second_look, "peak_mb": peak, "peak_before_batch_mb": before}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=3200, help="image height in pixels (width 7/8 of it)")
    p.add_argument("--child", choices=("one", "two"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child == "two", args.side)))
        return
    for child in ("one", "two"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.second_look_memory",
                              "--side", str(args.side), "--child", child], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"{'second look' if r['second_look'] else 'one look'}: peak RSS {r['peak_mb']:.0f} MB "
              f"(before the batch {r['peak_before_batch_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
