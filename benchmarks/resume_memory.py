"""Peak memory and time of resuming a batch whose results.csv is large.

    python -m benchmarks.resume_memory [--size-mb 944] [--row-kb 10]

Writes a synthetic ``results.csv`` (the batch's columns; rows of about ``--row-kb`` kB, the
size of a 1024-pixel image's row with its RLE masks) in a temporary folder, then scans it
with :func:`chexmask_rt.batch_folder.scan_results` in a fresh process and prints that process's
peak RSS next to the peak of a process that only imports the module. Resume keeps one record
and the set of finished names, so the difference should grow with the number of rows (the
names) and not with the file's size.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chexmask_rt.csv_output import COLUMNS

_CHILD = """
import sys, time
from pathlib import Path
from benchmarks.run import peak_rss_mb
from chexmask_rt.batch_folder import scan_results
start = time.perf_counter()
done = scan_results(Path(sys.argv[1]))[0] if len(sys.argv) > 1 else set()
print(len(done), peak_rss_mb(), time.perf_counter() - start)
"""


def write_results(path: Path, size_mb: float, row_kb: float) -> int:
    """A results.csv of about ``size_mb`` MB; returns its number of rows."""
    runs = max(1, int(row_kb * 1000 / 3 / 12))  # three RLE columns of "start length " pairs
    rle = " ".join(f"{1000 * i + 17} {300 + i % 97}" for i in range(runs))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        rows = 0
        while f.tell() < size_mb * 1e6:
            coords = ",".join(f"{(rows * 7 + i) % 1024 + 0.123:.3f}" for i in range(240))
            row = [f"/archive/patient_{rows:07d}/study_1/view_1.png", coords, coords, rle, rle, rle,
                   "1024", "1024", "3.1", "0.08", "False", "", "50", "0", "hybridgnet:unversioned", "pooled"]
            writer.writerow(row + [""] * (len(COLUMNS) - len(row)))  # the later schemas' columns empty
            rows += 1
    return rows


def scan(path: Path | None) -> tuple[int, float, float]:
    """(names found, peak RSS in MB, seconds) of a fresh process scanning ``path`` (None: import only)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, *([str(path)] if path else [])], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=944.0, help="size of the synthetic results.csv (default 944)")
    p.add_argument("--row-kb", type=float, default=10.0, help="approximate size of one row (default 10)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chexmask-resume-") as folder:
        path = Path(folder) / "results.csv"
        start = time.perf_counter()
        rows = write_results(path, args.size_mb, args.row_kb)
        print(f"wrote {path.stat().st_size / 1e6:.0f} MB, {rows} rows in {time.perf_counter() - start:.0f} s")
        _, idle, _ = scan(None)
        found, peak, seconds = scan(path)
        assert found == rows, (found, rows)
        print(f"peak RSS: {peak:.0f} MB scanning ({peak - idle:+.0f} MB over the {idle:.0f} MB of importing "
              f"alone), {seconds:.1f} s, {rows / seconds:.0f} rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
