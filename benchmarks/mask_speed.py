"""Organ-mask rasterisation time: the core's polygon fill against cv2.fillPoly (a number, not a test).

    python -m benchmarks.mask_speed [--side 2000] [--repeats 200]

The three organ masks (right lung, left lung, heart) of one side x side result: the landmarks of
example 1 (../shared/data/landmarks, the 1024 frame) scaled to the side. Timed in alternating
rounds so that the shared machine's drifts fall on both alike:
- ``core``: ``chexmask_rt.rle.polygon_mask`` per organ (what Result.organ_masks, the CSV's RLE and
  the mask files call: the C++ fill, with the clamp and truncation and the array conversions);
- ``_core``: ``chexmask_rt._core.polygon_mask`` of float64 points (the C++ fill and the array alone);
- ``cv2.fillPoly``: ``np.zeros`` + ``cv2.fillPoly`` of the already truncated int32 vertices (the
  fill alone; the way before also clamped and converted the points, so this favours cv2).
The masks are checked equal first. It prints each one's median over the rounds and their ratio.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from benchmarks.shared_data import DATA
from benchmarks.timing import alternating_medians
from chexmask_rt import _core, rle
from chexmask_rt.anatomy import organ_slices


def organ_polygons(side: int) -> list[np.ndarray]:
    landmarks = np.load(DATA / "landmarks" / "wiki_example1_landmarks_1024.npy") * (side / 1024)
    return [landmarks[sl] for sl in organ_slices().values()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    side = args.side
    polygons = organ_polygons(side)
    vertices = [p.astype(np.int32).reshape(-1, 1, 2) for p in polygons]

    def core() -> list[np.ndarray]:
        return [rle.polygon_mask(p, side, side) for p in polygons]

    def fillpoly() -> list[np.ndarray]:
        masks = []
        for v in vertices:
            mask = np.zeros((side, side), np.uint8)
            cv2.fillPoly(mask, [v], 255)
            masks.append(mask)
        return masks

    def core_only() -> list[np.ndarray]:
        return [_core.polygon_mask(p, side, side) for p in polygons]

    ways = {"core": core, "_core": core_only, "cv2.fillPoly": fillpoly}
    for a, b, c in zip(core(), core_only(), fillpoly()):
        if not (np.array_equal(a, c) and np.array_equal(b, c)):
            raise SystemExit("the core's masks differ from cv2.fillPoly's")
    medians = alternating_medians(ways, args.repeats)
    print(f"three organ masks of a {side}x{side} result, median of {args.repeats} alternating rounds:")
    for name, ms in medians.items():
        print(f"  {name:13s} {ms:7.3f} ms  ({ms / medians['cv2.fillPoly']:.2f}x cv2.fillPoly)")


if __name__ == "__main__":
    main()
