"""Fit a checkpoint's per-landmark offsets (``chexmask_export/landmark_offsets.py``).

    python -m training.landmark_offsets --checkpoint training/checkpoints/default-vN [--textures training/textures.json]

1. Export the bare model (without offsets) to a temporary engine.
2. Render training shapes on every texture, as ``training.evaluate`` renders the held-out ones.
3. Write the negated mean error per landmark to CHECKPOINT/landmark_offsets.json. The next
   ``chexmask-rt export`` of that checkpoint adds the offsets to its engine.

The training shapes that ``training.evaluate`` uses for the generalisation gap are left out of
the fit, so that figure stays out of sample; held-out shapes are never used.
"""
from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

import chexmask_rt
from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.landmark_offsets import write_offsets
from chexmask_export.onnx_export import build_network, export_onnx
from chexmask_rt._core import Letterbox

from .data import DEFAULT_DATA, FRAME, load_shapes, load_textures
from .evaluate import Looks, render_predictions, seen_shape_indices
from .metrics import distance_1024

FIT_SHAPES, FIT_SEED = 160, 123  # 160 x 5 textures: two disjoint halves gave offsets within 0.03 px of held-out error


def fit_offsets(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[N, 120, 2] predictions and targets in the 1024 frame -> the [120, 2] normalised offsets
    that remove their mean difference."""
    return -(np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)).mean(axis=0) / FRAME


def fit_shape_indices(training_shapes: int, count: int = FIT_SHAPES, seed: int = FIT_SEED) -> np.ndarray:
    """``count`` training shapes, none of those ``training.evaluate`` keeps for the generalisation gap."""
    pool = np.setdiff1d(np.arange(training_shapes), seen_shape_indices(training_shapes))
    return np.sort(np.random.default_rng(seed).choice(pool, min(count, len(pool)), replace=False))


def measure(seg, textures, shapes: np.ndarray, samples: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets [N, 120, 2] (1024 frame) of every unfolded render of ``shapes``."""
    predictions, targets = [], []
    renders = render_predictions(seg, textures, shapes, samples)
    for _, i, _, result in tqdm(renders, total=len(textures) * len(shapes), unit="render", disable=not progress):
        predictions.append(result.landmarks)
        targets.append(shapes[i])
    return np.array(predictions), np.array(targets)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="published-layout checkpoint folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--textures", type=Path, help="JSON of checked pseudo-labelled textures (default: example 1 only)")
    p.add_argument("--shapes", type=int, default=FIT_SHAPES, help="training shapes to render on each texture")
    p.add_argument("--seed", type=int, default=FIT_SEED, help="which training shapes")
    p.add_argument("--samples", type=int, default=50)
    args = p.parse_args(argv)
    if args.shapes < 1 or args.samples < 1:
        p.error("--shapes and --samples must be at least 1")

    ckpt = load_checkpoint(args.checkpoint, offsets=False)
    shapes, textures = load_shapes(args.data), load_textures(args.data, args.textures)
    chosen = fit_shape_indices(len(shapes.train), args.shapes, args.seed)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bare engine has no reliability calibration
        bare = Path(tmp) / "bare.onnx"
        export_onnx(build_network(ckpt), bare, checkpoint_sha256=ckpt.sha256, model_name="bare")
        # the offsets correct the engine, so they are fitted on its one-call answers
        one_look = Looks(chexmask_rt.load(bare), second_look=False)
        predictions, targets = measure(one_look, textures, shapes.train[chosen], args.samples)
    offsets = fit_offsets(predictions, targets)
    frame = Letterbox(FRAME, FRAME)
    before = float(np.mean([distance_1024(a, b, frame) for a, b in zip(predictions, targets)]))
    after = float(np.mean([distance_1024(a + offsets * FRAME, b, frame) for a, b in zip(predictions, targets)]))
    fit = {"textures": [t.name for t in textures], "training_shapes": int(len(chosen)), "seed": args.seed,
           "renders": int(len(predictions)), "samples": args.samples,
           "mean_offset_px_1024": float(np.linalg.norm(offsets * FRAME, axis=1).mean()),
           "fit_renders_mean_px_before": before, "fit_renders_mean_px_after": after}
    path = write_offsets(ckpt.source.parent, offsets, checkpoint_sha256=ckpt.sha256, fit=fit)
    print(f"wrote {path}: mean offset {fit['mean_offset_px_1024']:.2f} px (1024 frame); on the {len(predictions)} "
          f"fit renders {before:.2f} -> {after:.2f} px")


if __name__ == "__main__":
    main()
