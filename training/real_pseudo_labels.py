"""Pseudo-labels for the training patients' outlined Hannover radiographs, corrected to V7's
outer extent, to use as training textures.

    python -m training.real_pseudo_labels [--model engine.onnx] --out training/real_textures.json --overlays DIR

The model's landmarks (its default prediction, K = 50) are moved, lung by lung, so that their
outer extent (``training.outer_extent``) matches the V7 outline's:
- y: the linear map that takes the predicted top and bottom onto V7's;
- x: the linear map that keeps the predicted lung's medial-most x (next to the heart, where V7's
  convention differs) and takes its lateral extreme onto V7's;
- the heart: the mean of the two lungs' y maps, x unchanged (V7 has no heart outline, and the
  model's heart sits too low in the same way its lungs' bases do).
A label is kept only where the model's own uncertainty is low (mean node std <= ``--max-node-std``,
1024 frame): the uncertain ones are where its interior landmarks (the medial borders, the heart),
which the correction cannot reach, go wrong. Only training patients' images are labelled
(``training/real_split.json``); images without a patient id are left out, as they might belong to a
validation patient. Writes the same JSON as
``training.pseudo_labels`` (paths relative to the data folder) plus each label's correction;
an image becomes a texture only after its overlay has been looked at.

``--self-out FILE`` also self-labels the training patients' ``mhh`` radiographs that have no outline
(``training.real_data.unoutlined_images``: 128 images of the 50 training patients): the model's
landmarks as they are, nothing to correct them to, kept where its mean node std is at most
``--self-max-node-std``. They carry the model's own error, but show it bedside radiographs,
opacities, tubes and lines it would otherwise see only in the few outlined ones.
"""
from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import cv2
import numpy as np

import chexmask_rt
from chexmask_rt.image_io import read_image
from chexmask_rt.overlay import draw_overlay
from chexmask_rt._core import node_std_1024

from .data import DEFAULT_DATA
from .outer_extent import lung_extremes
from .pseudo_labels import write_labels
from .real_data import load_split, outlined_images, unoutlined_images

RIGHT, LEFT, HEART = slice(0, 44), slice(44, 94), slice(94, 120)


def _linear(source: tuple[float, float], target: tuple[float, float]):
    """The map of the line that takes source[0] -> target[0] and source[1] -> target[1]."""
    (a, b), (c, d) = source, target
    k = (d - c) / (b - a)
    return lambda v: c + (v - a) * k


def fit_to_extent(landmarks: np.ndarray, right_lung: np.ndarray, left_lung: np.ndarray) -> np.ndarray:
    """``landmarks`` (120, 2) moved so that both lungs' outer extent equals that of the two outlines
    (same pixels); see the module docstring."""
    out = np.array(landmarks, np.float64)
    have = lung_extremes(out[RIGHT], out[LEFT])
    want = lung_extremes(right_lung, left_lung)
    y_maps = []
    for i, (part, medial) in enumerate(((RIGHT, np.max), (LEFT, np.min))):
        lung = out[part]
        m = float(medial(lung[:, 0]))
        x_map = _linear((m, have[i, 0]), (m, want[i, 0]))
        y_map = _linear((have[i, 1], have[i, 2]), (want[i, 1], want[i, 2]))
        out[part] = np.c_[x_map(lung[:, 0]), y_map(lung[:, 1])]
        y_maps.append(y_map)
    out[HEART, 1] = (y_maps[0](out[HEART, 1]) + y_maps[1](out[HEART, 1])) / 2
    return out


def _save_overlay(folder: Path | None, name: str, image: np.ndarray, r, outlines: tuple = ()) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    picture = draw_overlay(image, r, max_side=512)
    for lung in outlines:  # V7's outline, for the eye
        cv2.polylines(picture, [np.int32(lung * picture.shape[1] / image.shape[1])], True, (0, 255, 0), 1)
    cv2.imwrite(str(folder / f"{name}.png"), picture)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", help="engine .onnx (default: the shipped model)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overlays", type=Path)
    p.add_argument("--max-node-std", type=float, default=13.0, help="keep labels at most this uncertain (1024 frame)")
    p.add_argument("--self-out", type=Path, help="also write self-labels of the unoutlined radiographs here")
    p.add_argument("--self-max-node-std", type=float, default=8.0,
                   help="keep self-labels at most this uncertain (1024 frame)")
    p.add_argument("--reject", nargs="*", default=[], metavar="STEM",
                   help="images whose overlays were looked at and turned down (file stems)")
    args = p.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = chexmask_rt.load(args.model)
    patients = set(load_split()["training_patients"])
    items = []
    for item in outlined_images(patients, args.data):
        image = read_image(item.path)
        r = seg.predict(image, samples=50)
        if item.path.stem in args.reject or node_std_1024(r.mean_node_std, *image.shape[:2]) > args.max_node_std:
            continue
        label = fit_to_extent(r.landmarks, item.right_lung, item.left_lung)
        moved = float(np.linalg.norm(label - r.landmarks, axis=1).mean() * 1024 / item.frame.side)
        items.append({"image": str(item.path.relative_to(args.data)), "landmarks": label.round(2).tolist(),
                      "mean_node_std": round(r.mean_node_std, 3), "corrected_px_1024": round(moved, 1)})
        _save_overlay(args.overlays, item.path.stem, image, dataclasses.replace(r, landmarks=label),
                      (item.right_lung, item.left_lung))
    write_labels(items, args.out)
    if args.self_out is None:
        return
    items = []
    for _, path in unoutlined_images(patients, args.data):
        image = read_image(path)
        r = seg.predict(image, samples=50)
        node = node_std_1024(r.mean_node_std, *image.shape[:2])
        if path.stem in args.reject or node > args.self_max_node_std:
            continue
        items.append({"image": str(path.relative_to(args.data)), "landmarks": np.round(r.landmarks, 2).tolist(),
                      "mean_node_std_1024": round(node, 3)})
        _save_overlay(args.overlays and args.overlays / "self", path.stem, image, r)
    write_labels(items, args.self_out)


if __name__ == "__main__":
    main()
