"""Does the reliability flag see a radiograph that is mirrored or turned a little?

    python -m benchmarks.orientation [--model M] [--samples 50]

A left-right mirrored export (the heart on the image's left) or a tilted film still looks like a
chest radiograph, unlike the 90 and 180 degree turns the flag was calibrated against. This runs
each Hannover validation patient's ``mhh`` radiograph (``training/real_split.json``) upright,
mirrored and turned by 10 and 20 degrees (black corners), with the engine's own look setting, and
prints how many of each the flag marks, with the median scores. It prints numbers; it asserts
nothing.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

import chexmask_rt
from chexmask_rt._core import node_std_1024
from chexmask_rt.image_io import read_image, to_gray
from training.data import DEFAULT_DATA
from training.real_data import load_split, mhh_images


def _turned(gray: np.ndarray, degrees: float) -> np.ndarray:
    h, w = gray.shape
    return cv2.warpAffine(gray, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h))


VARIANTS = {
    "upright": lambda g: g,
    "mirrored left-right": lambda g: np.ascontiguousarray(g[:, ::-1]),
    "turned 10 degrees": lambda g: _turned(g, 10),
    "turned 20 degrees": lambda g: _turned(g, 20),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="engine .onnx (default: the shipped model)")
    p.add_argument("--samples", type=int, default=50)
    args = p.parse_args(argv)
    seg = chexmask_rt.load(args.model)
    images = mhh_images(set(load_split()["validation_patients"]), DEFAULT_DATA)
    scores: dict[str, list[tuple[bool, float, float]]] = {name: [] for name in VARIANTS}
    for _, path in images:
        gray = to_gray(read_image(path))
        for name, make in VARIANTS.items():
            r = seg.predict(make(gray), samples=args.samples)
            scores[name].append((r.quality.flag, node_std_1024(r.mean_node_std, r.height, r.width), r.mean_latent_sigma))
    print(f"{seg.model_id}, K = {args.samples}, {len(images)} radiographs of the validation patients")
    print("| input | flagged | median node std (1024 frame) | median latent sigma |\n|---|---|---|---|")
    for name, rows in scores.items():
        a = np.array(rows, dtype=float)
        print(f"| {name} | {int(a[:, 0].sum())} of {len(a)} | {np.median(a[:, 1]):.2f} px | {np.median(a[:, 2]):.4f} |")


if __name__ == "__main__":
    main()
