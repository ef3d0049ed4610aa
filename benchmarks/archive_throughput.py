"""images/s and peak memory of ``chexmask-rt batch`` over an archive, locally and on local Ray.

    python -m benchmarks.archive_throughput [--images 2000] [--samples 50] [--ray-actors 2]

Builds an archive of ``--images`` files (hard links to the five shared radiographs and the CR
DICOM, in turn, in folders of 100), then runs ``chexmask-rt batch`` on it twice, each into a new
output folder: locally (the default settings: one engine call per image for the shipped model), and
with ``--ray local --ray-actors N --threads 1`` (N actors of one engine thread each). Each run's
wall time gives images/s; its peak memory is the largest sum of the resident memory of the
command and every process under it (Ray's daemons and actors), sampled every 0.2 s with psutil.
The two runs go one after the other, so on a shared machine compare them within one invocation.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.shared_data import radiographs_and_dicom


def build_archive(root: Path, count: int) -> None:
    sources = radiographs_and_dicom()
    for i in range(count):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        src = sources[i % len(sources)]
        os.link(src, folder / f"im{i:05d}{src.suffix}")


def tree_rss_mb(proc) -> float:
    import psutil

    total = 0
    try:
        for p in [proc] + proc.children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total / 2**20


def run(args: list[str]) -> dict:
    """One batch command: wall seconds, peak tree RSS, its summary line."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "chexmask_rt", "batch", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(watched))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"batch failed (exit {proc.returncode}): {stderr.strip()[-2000:]}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak, "summary": stdout.strip()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--ray-actors", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="chexmask-archive-"))
    try:
        build_archive(root / "archive", args.images)
        common = [str(root / "archive"), "--samples", str(args.samples)]
        runs = {"local": run(common + ["--out", str(root / "local")]),
                f"ray local, {args.ray_actors} actors": run(common + ["--out", str(root / "ray"), "--ray", "local",
                                                                      "--ray-actors", str(args.ray_actors),
                                                                      "--threads", "1"])}
        print(f"{args.images} images, K = {args.samples}, {os.cpu_count()} CPUs")
        print("| run | wall s | images/s | peak RSS MB (process tree) |")
        print("|---|---|---|---|")
        for name, r in runs.items():
            print(f"| {name} | {r['seconds']:.0f} | {args.images / r['seconds']:.2f} | {r['peak_rss_mb']:.0f} |")
        for name, r in runs.items():
            print(f"{name}: {r['summary']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
