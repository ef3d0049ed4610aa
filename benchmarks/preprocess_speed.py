"""Preprocessing time of one image: the core's windowed resize against pad + cv2.resize.

    python -m benchmarks.preprocess_speed [--baseline-core PATH/_core.so] [--rounds 30]

For each image (example 1 as it is, 899 x 786 8-bit, and the same resized to 2800 x 3200 in
16 bits) it times, in alternating rounds so that the shared machine's drifts fall on all alike:
- ``native``: ``chexmask_rt._core.preprocess`` (the C++ core, windowed resize);
- ``python``: ``tests/reference``'s ``preprocess`` (the numpy windowed resize, the test oracle);
- ``cv2 pad+resize``: the way before (materialise the padded square, then ``cv2.resize``);
- ``baseline native`` with ``--baseline-core``: another build's ``_core`` (e.g. main's, which
  padded with cv::copyMakeBorder and resized with cv::resize), loaded beside this one.
It prints the median per image and each one's ratio to the windowed native core.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time

import cv2
import numpy as np

from benchmarks.shared_data import DATA
from chexmask_rt import _core
from chexmask_rt.image_io import read_image, to_gray
from tests.reference import preprocess

SIZE = 512


def load_core(path: str):
    """Another build of the extension, under the same module name but outside sys.modules."""
    loader = importlib.machinery.ExtensionFileLoader("chexmask_rt._core", path)
    spec = importlib.util.spec_from_file_location("chexmask_rt._core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def pad_and_resize(gray: np.ndarray, full_scale: float) -> np.ndarray:
    frame = _core.Letterbox(*gray.shape)
    square = np.zeros((frame.side, frame.side), gray.dtype)
    square[frame.pad_top:frame.pad_top + frame.height, frame.pad_left:frame.pad_left + frame.width] = gray
    return cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32) / np.float32(full_scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-core", help="path of another build's _core*.so to time beside this one")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    baseline = load_core(args.baseline_core) if args.baseline_core else None

    gray8 = to_gray(read_image(DATA / "images" / "wiki_example1_normal_PA.jpg"))
    gray16 = cv2.resize(gray8, (2800, 3200)).astype(np.uint16) * 16
    images = {"899x786 8-bit": (gray8, 255.0), "2800x3200 12-bit": (gray16, 4095.0)}
    for name, (gray, full_scale) in images.items():
        depth = None if gray.dtype == np.uint8 else 12
        cases = {
            "native": lambda: _core.preprocess(gray, SIZE, depth),
            "python": lambda: preprocess(gray, SIZE, bit_depth=depth),
            "cv2 pad+resize": lambda: pad_and_resize(gray, full_scale),
        }
        if baseline is not None:
            cases["baseline native"] = lambda: baseline.preprocess(gray, SIZE, depth)
        times: dict[str, list[float]] = {case: [] for case in cases}
        for case in cases.values():
            case()  # warm-up
        for _ in range(args.rounds):
            for case, run in cases.items():
                start = time.perf_counter()
                run()
                times[case].append(time.perf_counter() - start)
        native = float(np.median(times["native"]))
        print(f"{name} -> {SIZE}x{SIZE}, median of {args.rounds} rounds:")
        for case, values in times.items():
            median = float(np.median(values))
            print(f"  {case:16s} {median * 1e3:8.2f} ms   {median / native:5.2f}x native")


if __name__ == "__main__":
    main()
