"""Real-image figures of a model, on the validation patients of the committed Hannover split
(``training.real_data``); ``python -m training.evaluate --real`` reports them.

* **Outer extent** (``training.outer_extent``): on the validation patients' V7-outlined
  ``hannover_2000`` images, the mean absolute error of each lung's lateral, top and bottom
  extremes (1024 frame), per image and overall, and the Spearman correlation of the per-image
  error with the mean node std (1024 frame) and with the mean latent sigma; and the signed errors
  (positive where the predicted lung reaches beyond the outline), per image and as medians by
  extreme and projection, which tell a bias from scatter. On request, the same on the training
  patients' outlined images (``real_report(training_patients=True)``).
* **Out-of-distribution split**: the validation patients' ``mhh`` radiographs as they are
  (in distribution) against inputs made from one radiograph per validation patient (rotated 90 and
  180 degrees, inverted, crops that miss the chest, heavy noise, heavy blur, a large occlusion, a
  mosaic; the generators of ``benchmarks.calibrate_quality``) plus synthetic non-radiographs
  (noise, smooth fields, stripes, a checkerboard, a gradient, flat gray) and three other images (a head
  MRI, a photograph, a terrain map: ``other_images``). ROC AUC of the mean
  latent sigma and of the mean node std for "higher = out of distribution", overall and per kind
  (and of the latent sigma on the kinds ``NEVER_EXPOSED``, which ``training.ood_exposure`` never shows),
  and how often the engine's reliability flag (``r.quality``) fires on each side.
  Only validation patients' images are used, so a model trained with OOD examples made from the
  training patients is still judged on held-out ones.

Both are measured with one engine call and with the second look (or with one call only), one image at a
time and the two alternating, with the wall time of each prediction (decoded arrays in; the file is read
once).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr, wilcoxon

from benchmarks.calibrate_quality import as_uint8, auc, corrupted, other_images, textures
from chexmask_rt.image_io import read_image
from chexmask_rt._core import node_std_1024

from .data import DEFAULT_DATA
from .outer_extent import EXTREMES, extremes_1024, signed_extent_errors
from .real_data import first_image_per_patient, load_split, mhh_images, outlined_images

LOOKS = {"one_look": False, "second_look": True}
OOD_SEED = 25
# the split's kinds (and non-radiographs) unlike anything training.ood_exposure shows a model: their AUC
# says whether a head fitted on the exposure kinds learnt "not a chest radiograph" or only those kinds
NEVER_EXPOSED = ("blur_15", "occlusion_60pct", "mosaic_3x3", "stripes", "checkerboard", "gradient", "flat_gray",
                 "mri_head", "photograph", "terrain")


def _timed(predict: Callable, image: np.ndarray, samples: int, second_look: bool):
    t0 = time.perf_counter()
    r = predict(image, samples=samples, second_look=second_look)
    return r, time.perf_counter() - t0


def _scores(r, image: np.ndarray) -> tuple[float, float]:
    return node_std_1024(r.mean_node_std, *image.shape[:2]), r.mean_latent_sigma


def outer_extent_report(seg, samples: int = 50, data: Path = DEFAULT_DATA, looks: dict = LOOKS,
                        patients: str = "validation_patients") -> dict:
    """Per look: the outer-extent error on the outlined images of the split's ``patients``
    (``"validation_patients"``, or ``"training_patients"`` to see how well a model fits the images
    its pseudo-labels came from)."""
    chosen = set(load_split()[patients])
    per_look: dict[str, dict[str, list]] = {k: {"images": [], "signed": [], "node": [], "sigma": [], "seconds": []}
                                            for k in looks}
    for item in outlined_images(chosen, data):
        image = read_image(item.path)
        truth = extremes_1024(item.right_lung, item.left_lung, item.frame)
        for look, second in looks.items():
            r, seconds = _timed(seg.predict, image, samples, second)
            signed = signed_extent_errors(extremes_1024(r.right_lung, r.left_lung, item.frame), truth)
            errors = np.abs(signed)
            node, sigma = _scores(r, image)
            acc = per_look[look]
            acc["images"].append({"file": item.file, "patient": item.patient, "projection": item.projection,
                                  "error_px": round(float(errors.mean()), 2),
                                  "errors_px": np.round(errors, 1).tolist(),
                                  "beyond_px": np.round(signed, 1).tolist(),
                                  "mean_node_std_1024": round(node, 3), "mean_latent_sigma": round(sigma, 4)})
            acc["signed"].append(signed)
            acc["node"].append(node)
            acc["sigma"].append(sigma)
            acc["seconds"].append(seconds)
    return {look: summarise_extent(acc) for look, acc in per_look.items()}


def summarise_extent(acc: dict) -> dict:
    signed = np.array(acc["signed"])            # [images, lung, extreme], + where the lung reaches beyond
    errors = np.abs(signed)
    per_image = errors.mean(axis=(1, 2))
    projections = np.array([i["projection"].split()[0] for i in acc["images"]])

    def beyond(rows: np.ndarray) -> dict:  # the median: the constant shift that would lower the mean absolute error most
        return {e: float(np.median(signed[rows][:, :, j])) for j, e in enumerate(EXTREMES)}
    return {
        "n_images": len(per_image), "n_patients": len({i["patient"] for i in acc["images"]}),
        "mean_px": float(per_image.mean()), "median_px": float(np.median(per_image)),
        "p90_px": float(np.percentile(per_image, 90)), "max_px": float(per_image.max()),
        "by_extreme_px": {e: float(errors[:, :, j].mean()) for j, e in enumerate(EXTREMES)},
        "by_lung_px": {"right": float(errors[:, 0].mean()), "left": float(errors[:, 1].mean())},
        # the median signed error: a bias a constant correction could remove, where it is far from zero
        "beyond_by_extreme_px": beyond(np.ones(len(per_image), bool)),
        "beyond_by_projection_px": {p: beyond(projections == p) for p in sorted(set(projections))},
        "by_projection_px": {p: float(per_image[projections == p].mean()) for p in sorted(set(projections))},
        "spearman_error_vs_mean_node_std": float(spearmanr(per_image, acc["node"]).statistic),
        "spearman_error_vs_mean_latent_sigma": float(spearmanr(per_image, acc["sigma"]).statistic),
        "seconds_per_image_median": float(np.median(acc["seconds"])),
        "images": acc["images"],
    }


def ood_split(data: Path = DEFAULT_DATA, seed: int = OOD_SEED) -> list[tuple[str, str, np.ndarray, int]]:
    """[(name, kind, uint8 image, label)], label 1 = out of distribution; deterministic."""
    rng = np.random.default_rng(seed)
    validation = set(load_split()["validation_patients"])
    items = [(f"real/{p.stem}", "real", as_uint8(p), 0) for _, p in mhh_images(validation, data)]
    for path in first_image_per_patient(validation, data).values():
        items += [(f"{path.stem}/{k}", k, v, 1) for k, v in corrupted(as_uint8(path), rng).items()]
    items += [(f"texture/{k}", "non_radiograph", v, 1) for k, v in textures(rng).items()]
    items += [(f"other/{k}", "other_image", v, 1) for k, v in other_images().items()]
    return items


def ood_report(seg, samples: int = 50, data: Path = DEFAULT_DATA, looks: dict = LOOKS) -> dict:
    """Per look: AUC of the mean latent sigma and of the mean node std separating the OOD split."""
    items = list(ood_split(data))
    scores = {look: np.zeros((len(items), 2)) for look in looks}
    flags = {look: np.zeros(len(items), bool) for look in looks}
    calibrated = True
    for n, (_, _, image, _) in enumerate(items):
        for look, second in looks.items():
            r, _ = _timed(seg.predict, image, samples, second)
            scores[look][n] = _scores(r, image)
            flags[look][n] = r.quality.flag
            calibrated = calibrated and r.quality.calibrated
    labels = np.array([label for *_, label in items])
    kinds = np.array([kind for _, kind, _, _ in items])
    never_exposed = np.array([name.rsplit("/", 1)[-1] in NEVER_EXPOSED for name, *_ in items])
    unseen = (labels == 0) | never_exposed
    out = {"n_in_distribution": int((labels == 0).sum()), "n_out_of_distribution": int(labels.sum())}
    for look, s in scores.items():
        per_kind = {}
        for kind in sorted(set(kinds[labels == 1])):
            keep = (labels == 0) | (kinds == kind)
            per_kind[kind] = {"mean_latent_sigma": auc(s[keep, 1], labels[keep]),
                              "mean_node_std": auc(s[keep, 0], labels[keep])}
        out[look] = {"auc_mean_latent_sigma": auc(s[:, 1], labels), "auc_mean_node_std": auc(s[:, 0], labels),
                     "auc_mean_latent_sigma_never_exposed": auc(s[unseen, 1], labels[unseen]),
                     "n_never_exposed": int(never_exposed.sum()),
                     "mean_latent_sigma_range_real": [float(s[labels == 0, 1].min()), float(s[labels == 0, 1].max())],
                     "mean_latent_sigma_range_ood": [float(s[labels == 1, 1].min()), float(s[labels == 1, 1].max())],
                     "mean_node_std_1024_median_real": float(np.median(s[labels == 0, 0])),
                     # None: the engine has no calibrated thresholds, so its flag is always off
                     "reliability_flag_rate_real": float(flags[look][labels == 0].mean()) if calibrated else None,
                     "reliability_flag_rate_ood": float(flags[look][labels == 1].mean()) if calibrated else None,
                     "auc_by_kind": per_kind}
    return out


def compare_images(new: dict, old: dict) -> dict:
    """Per-image comparison of two outer-extent summaries of the same images (``summarise_extent``):
    on how many images ``new`` errs less and more, the mean of the per-image differences (new - old)
    and the two-sided Wilcoxon signed-rank p: candidates are judged image by image, as a mean over
    a few dozen images hides which images moved."""
    before = {i["file"]: i["error_px"] for i in old["images"]}
    after = {i["file"]: i["error_px"] for i in new["images"]}
    if before.keys() != after.keys():
        raise ValueError(f"the two reports measure different images ({len(after)} against {len(before)})")
    files = sorted(after)
    diff = np.array([after[f] - before[f] for f in files])
    return {"n_images": len(files), "better": int((diff < 0).sum()), "worse": int((diff > 0).sum()),
            "mean_difference_px": float(diff.mean()),
            "wilcoxon_p": float(wilcoxon(diff).pvalue) if diff.any() else 1.0}


def real_report(seg, samples: int = 50, data: Path = DEFAULT_DATA, both_looks: bool = True,
                training_patients: bool = False) -> dict:
    """Both real-image measures, with both looks (else with one engine call only); with
    ``training_patients`` also the outer extent on the training patients' outlined images."""
    looks = LOOKS if both_looks else {"one_look": False}
    report = {"outer_extent": outer_extent_report(seg, samples, data, looks),
              "ood": ood_report(seg, samples, data, looks)}
    if training_patients:
        report["outer_extent_training_patients"] = outer_extent_report(seg, samples, data, looks, "training_patients")
    return report
