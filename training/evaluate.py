"""Measure a model the way the model card reports it.

    python -m training.evaluate --real [--model engine.onnx] [--out real_metrics.json] [--single-look]
        [--training-patients] [--against real_metrics.json]
    python -m training.evaluate --model engine.onnx [--textures textures.json] --out metrics.json [--overlays DIR]
        [--single-look|--second-look]

``--real`` measures the model on real radiographs, the figures that choose a model
(``training.real_eval``): the lungs' outer-extent error on the validation patients of the
committed Hannover split and how the uncertainty ranks it, and the AUC of the image scores on a
held-out out-of-distribution split; each with one engine call and with the second look (with
``--single-look``: one call only, half the time). ``--training-patients`` adds the outer extent
on the training patients' outlined images, whose pseudo-labels the model was trained on: a gain
there that the validation patients do not share is fitting, not learning. ``--against FILE``
compares the validation patients' outer extent image by image with another model's report (for
example ``training/checkpoints/default-vN/real_metrics.json``): better and worse on how many
images, the mean difference and the Wilcoxon signed-rank p. Without
``--model`` it measures the shipped default engine. Without ``--real`` it measures the synthetic
figures below.

Predictions are the runtime's default for the engine (the shipped model's: one engine call;
README, "The second look") unless ``--single-look`` or ``--second-look`` (synthetic figures) asks for one or two.

* held-out shapes (JSRT test split + 10 % of the CheXmask ids) rendered on each
  real texture without augmentation, at 1024 x 1024: mean landmark error in
  the 1024 frame, against the held-out shape and, for comparison, against where
  the render actually shows the texture's landmarks;
* how the error grows with a held-out shape's distance from the training shapes, and the
  same measure on 81 training shapes (the generalisation gap);
* ``wiki_example1`` (real image, reference landmarks; also a texture source);
* overlays of every shared real radiograph, for looking at.
"""
from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

import chexmask_rt
from chexmask_rt._core import Letterbox
from chexmask_rt.image_io import read_image
from chexmask_rt.overlay import draw_overlay
from chexmask_rt.result import Result

from .data import DEFAULT_DATA, FRAME, REFERENCE_TEXTURE, FoldedWarp, load_shapes, load_textures, warp_to_shape
from .metrics import distance_1024
from .real_eval import compare_images, real_report


def nearest_shape_distance(shapes: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Per shape [N, 120, 2]: the mean landmark distance to the closest shape of ``pool``, each
    centred first (the chest's position in the frame is augmented in training)."""
    pool = pool - pool.mean(axis=1, keepdims=True)
    return np.array([np.linalg.norm(pool - (s - s.mean(axis=0)), axis=2).mean(axis=1).min() for s in shapes])


def render_predictions(seg, textures, shapes: np.ndarray, samples: int) -> Iterator[tuple[int, int, np.ndarray, Result]]:
    """Render every shape on every texture (unaugmented, 1024 x 1024, so image pixels are the
    1024 frame) and predict it: (texture index, shape index, where the render shows the
    texture's landmarks, result) per render; renders whose warp folds are skipped."""
    for t, texture in enumerate(textures):
        for i, shape in enumerate(shapes):
            try:
                image, shown = warp_to_shape(texture, shape, FRAME, labels="shown")
            except FoldedWarp:
                continue
            yield t, i, shown, seg.predict(image, samples=samples)


def render_errors(seg, textures, shapes: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The error [textures, shapes] of ``render_predictions`` against the shape and against where
    the render shows the texture's landmarks; NaN where the warp folds. Also the shown-vs-planned
    offsets of every landmark."""
    errors = np.full((len(textures), len(shapes)), np.nan)
    shown_errors, shifts = errors.copy(), []
    frame = Letterbox(FRAME, FRAME)
    for t, i, shown, r in render_predictions(seg, textures, shapes, samples):
        errors[t, i] = distance_1024(r.landmarks, shapes[i], frame)
        shown_errors[t, i] = distance_1024(r.landmarks, shown, frame)
        shifts.append(np.linalg.norm(shown - shapes[i], axis=1))
    return errors, shown_errors, shifts


SEEN_SHAPES, SEEN_SEED = 81, 5  # as many training shapes as held-out ones, for the generalisation gap


def seen_shape_indices(training_shapes: int) -> np.ndarray:
    """Which training shapes measure the generalisation gap (kept out of other fits on training shapes)."""
    return np.random.default_rng(SEEN_SEED).choice(training_shapes, SEEN_SHAPES, replace=False)


def heldout_errors(seg, data: Path, textures_json: Path | None, samples: int) -> dict:
    """Per texture: the mean error against the held-out shape each render aims at (``mean_px``,
    the model card's figure) and against where the render actually shows the texture's
    landmarks (``mean_px_shown``), plus how far apart the two label sets lie. Then how the
    error depends on novelty: the same measure on training shapes, and the rank correlation
    between a held-out shape's error and its distance to the nearest training shape."""
    shapes = load_shapes(data)
    textures = load_textures(data, textures_json)
    errors, shown_errors, shifts = render_errors(seg, textures, shapes.heldout, samples)
    out = {}
    for t, texture in enumerate(textures):
        ok = ~np.isnan(errors[t])
        out[texture.name] = {"n": int(ok.sum()), "mean_px": float(errors[t, ok].mean()),
                             "median_px": float(np.median(errors[t, ok])),
                             "mean_px_shown": float(shown_errors[t, ok].mean())}
    out["all"] = {"n": int((~np.isnan(errors)).sum()), "mean_px": float(np.nanmean(errors)),
                  "mean_px_shown": float(np.nanmean(shown_errors))}
    shift = np.concatenate(shifts)
    out["labels_vs_planned_px"] = {"mean": float(shift.mean()), "p95": float(np.percentile(shift, 95)),
                                   "max": float(shift.max()), "unsolved_fraction": float(np.mean(shift == 0))}
    seen = shapes.train[seen_shape_indices(len(shapes.train))]
    seen_errors, _, _ = render_errors(seg, textures, seen, samples)
    novelty = nearest_shape_distance(shapes.heldout, shapes.train)
    per_shape = np.nanmean(errors, axis=0)
    out["novelty"] = {"training_shapes_mean_px": float(np.nanmean(seen_errors)),
                      "heldout_nearest_training_shape_px_median": float(np.median(novelty)),
                      "spearman_error_vs_nearest_training_shape": float(spearmanr(per_shape, novelty).statistic)}
    return out


class Looks:
    """A segmenter whose every prediction uses the given ``second_look`` (README, "The second look")."""

    def __init__(self, seg, second_look: bool | None):
        self.seg, self.model_id, self.second_look = seg, seg.model_id, second_look

    def predict(self, image, samples: int):
        return self.seg.predict(image, samples=samples, second_look=self.second_look)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="engine .onnx (default: the shipped model; required without --real)")
    p.add_argument("--real", action="store_true", help="the real-image figures (training.real_eval) instead")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--textures", type=Path)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--out", type=Path, help="write the JSON here too (required without --real)")
    p.add_argument("--overlays", type=Path)
    p.add_argument("--single-look", dest="second_look", action="store_const", const=False, default=None,
                   help="one engine call per image (second_look=False; default: the engine's own setting)")
    p.add_argument("--second-look", dest="second_look", action="store_const", const=True,
                   help="a second engine call on a crop around the lungs (second_look=True)")
    p.add_argument("--training-patients", action="store_true",
                   help="with --real, also the outer extent on the training patients' outlined images: "
                        "a model that gains there but not on the validation patients fits without carrying over")
    p.add_argument("--against", type=Path, metavar="REAL_METRICS_JSON",
                   help="with --real, compare each validation image's outer extent with this report's")
    args = p.parse_args(argv)
    if not args.real and (args.model is None or args.out is None):
        p.error("--model and --out are required without --real")
    if args.training_patients and not args.real:
        p.error("--training-patients needs --real")
    if args.against and not args.real:
        p.error("--against needs --real")
    if args.real and (args.overlays or args.textures):  # the synthetic figures' options: ignored there
        p.error("--overlays and --textures are for the synthetic figures, not --real "
                "(pictures of the real metric: python -m training.real_figure)")
    baseline = None
    if args.against:
        try:
            baseline = json.loads(args.against.read_text())["outer_extent"]
        except (OSError, ValueError, KeyError, TypeError) as e:  # checked before the minutes of measuring
            p.error(f"--against {args.against}: not a readable training.evaluate --real report ({e!r})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = chexmask_rt.load(args.model)
    if args.real:
        metrics = {"model": seg.model_id, "samples": args.samples, "engine_second_look": seg.info.second_look,
                   **real_report(seg, args.samples, args.data, both_looks=args.second_look is not False,
                               training_patients=args.training_patients)}
        if baseline is not None:
            metrics["against"] = {"report": str(args.against), **{
                look: compare_images(summary, baseline[look])
                for look, summary in metrics["outer_extent"].items() if look in baseline}}
        _write(metrics, args.out)
        return
    second_look = seg.info.second_look if args.second_look is None else args.second_look
    seg = Looks(seg, second_look)
    metrics = {"model": seg.model_id, "samples": args.samples, "second_look": second_look}
    ex1 = read_image(args.data / "images" / REFERENCE_TEXTURE)
    truth = np.load(args.data / "landmarks" / "wiki_example1_landmarks_original_px.npy")
    r = seg.predict(ex1, samples=args.samples)
    metrics["wiki_example1_mean_px_1024"] = distance_1024(r.landmarks, truth, Letterbox(*ex1.shape[:2]))
    metrics["heldout_shapes_on_real_textures"] = heldout_errors(seg, args.data, args.textures, args.samples)
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
        for path in sorted((args.data / "images").iterdir()):
            image = read_image(path)
            cv2.imwrite(str(args.overlays / f"{path.stem}.png"),
                        draw_overlay(image, seg.predict(image, samples=args.samples), max_side=768))
    _write(metrics, args.out)


def _write(metrics: dict, out: Path | None) -> None:
    text = json.dumps(metrics, indent=1)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
