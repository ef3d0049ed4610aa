"""How long folder discovery takes over a PACS-style tree of many small files.

    python -m benchmarks.discovery [--files 100000] [--rounds 3] [--keep DIR]

Builds a tree like a PACS export (studies of series of ``--files`` files in all): DICOM files
named ``IM00001`` etc. without an extension (the first 2 KB of the shared CR DICOM: preamble,
marker, File Meta and the start of the data set), one structured report per series, a DICOMDIR
per study and a PNG thumbnail every 50 files, so discovery takes every path it has: a name, 132
bytes, the File Meta group. It then times ``chexmask_rt.discovery.discover`` over the tree,
``--rounds`` times, and prints each time and the median. The first round reads from a page cache
warmed by the build; dropping the cache needs root and would slow everyone on a shared machine,
so a cold disk is not measured here.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.shared_data import DATA
from chexmask_rt.discovery import discover

_SR = bytes(128) + b"DICM" + bytes.fromhex("02000000554c0400") + (36).to_bytes(4, "little") \
    + bytes.fromhex("0200020055492000") + b"1.2.840.10008.5.1.4.1.1.88.11\x00\x00\x00" \
    + bytes.fromhex("0200100055491400") + b"1.2.840.10008.1.2.1\x00"


def build_tree(root: Path, files: int, per_series: int = 100, series_per_study: int = 10) -> dict[str, int]:
    """Write the tree; returns how many files of each kind it holds."""
    dicom = (DATA / "dicom" / "cr_chest_monochrome2_jpeg.dcm").read_bytes()[:2048]
    png = next((DATA / "images").glob("*.png")).read_bytes()[:1024]  # a name is all discovery reads of it
    counts = {"dicom": 0, "report": 0, "dicomdir": 0, "png": 0}
    n = 0
    while n < files:
        study = root / f"ST{n // (per_series * series_per_study):05d}"
        series = study / f"SE{(n // per_series) % series_per_study:03d}"
        series.mkdir(parents=True, exist_ok=True)
        if not (study / "DICOMDIR").exists():
            (study / "DICOMDIR").write_bytes(dicom)
            counts["dicomdir"] += 1
            n += 1
        for i in range(min(per_series, files - n)):
            if i == 0:
                (series / "SR00001").write_bytes(_SR)
                counts["report"] += 1
            elif i % 50 == 1:
                (series / f"thumb{i:05d}.png").write_bytes(png)
                counts["png"] += 1
            else:
                (series / f"IM{i:05d}").write_bytes(dicom)
                counts["dicom"] += 1
            n += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="chexmask-discovery-"))
    try:
        start = time.perf_counter()
        counts = build_tree(root, args.files)
        print(f"built {sum(counts.values())} files ({counts}) in {time.perf_counter() - start:.1f} s under {root}")
        times = []
        for r in range(args.rounds):
            start = time.perf_counter()
            found = discover(root)
            times.append(time.perf_counter() - start)
            print(f"round {r + 1}: {times[-1]:.2f} s, {len(found.images)} images, {len(found.skipped)} skipped")
        expected = counts["dicom"] + counts["png"]
        assert len(found.images) == expected, (len(found.images), expected)
        print(f"discovery of {sum(counts.values())} files: median {statistics.median(times):.2f} s "
              f"({sum(counts.values()) / statistics.median(times):,.0f} files/s)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
