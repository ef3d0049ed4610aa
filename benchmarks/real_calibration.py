"""The reliability flag calibrated on real radiographs: ``python -m benchmarks.calibrate_quality --real``.

Only the **training** patients of the committed Hannover split (``training/real_split.json``)
calibrate, so the validation patients stay held out:

- in distribution: each ``mhh`` radiograph of the training patients as it is, plus
  ``AUGMENTATIONS`` of the mild augmentations of ``benchmarks.calibrate_quality.in_distribution``
  drawn at random for it (174 radiographs of 50 patients: 522 inputs);
- out of distribution: one radiograph per training patient with each corruption of
  ``corrupted`` (rotated 90 and 180 degrees, inverted, crops that miss the chest, heavy noise,
  heavy blur, a large occlusion, a mosaic: 450 inputs), plus the synthetic non-radiographs of
  ``textures`` drawn at 640 px (8; the held-out split draws its own at 768 px with another seed).

That is 980 predictions at K = 50, with the engine's own look setting (one engine call for the
shipped model since version 8; the second look doubles the work). The thresholds are then judged
on the held-out split of ``training.real_eval.ood_split`` (the validation patients' 69
radiographs against 200 inputs: made from them, textures and three other
images), with one engine call and with the second look, next to the engine's current thresholds (its
own ``r.quality``, read by the core from the file beside it) in the same run: 538 more predictions.
Everything is drawn with fixed seeds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.calibrate_quality import (as_uint8, auc, by_kind, corrupted, in_distribution, rule_flags, score,
                                          textures)
from chexmask_rt.quality import calibration_path
from training.data import DEFAULT_DATA
from training.real_data import load_split, mhh_images
from training.real_eval import LOOKS, ood_split

SEED = 2025
AUGMENTATIONS = 2   # per radiograph: a subsample of the nine, to fit the 2-core machine's time
TEXTURE_SIZE = 640
DATA_NOTE = ("in: the training patients' mhh radiographs of training/real_split.json, each as is and with "
             f"{AUGMENTATIONS} random mild augmentations; out: one radiograph per training patient corrupted 9 ways, "
             f"8 non-radiographs ({TEXTURE_SIZE} px); seed {SEED}")


def training_items(data: Path = DEFAULT_DATA, seed: int = SEED) -> list[tuple[str, str, np.ndarray, int]]:
    """[(name, kind, uint8 image, label)] from the training patients only; label 1 = out of distribution."""
    rng = np.random.default_rng(seed)
    sources = mhh_images(set(load_split()["training_patients"]), data)
    items, corrupted_patients = [], set()
    for patient, path in sources:
        img = as_uint8(path)
        augmented = in_distribution(img, rng)
        mild = [k for k in augmented if k != "original"]
        for kind in ["original", *rng.choice(mild, AUGMENTATIONS, replace=False)]:
            items.append((f"{path.stem}/{kind}", str(kind), augmented[kind], 0))
        if patient not in corrupted_patients:
            corrupted_patients.add(patient)
            items += [(f"{path.stem}/{k}", k, v, 1) for k, v in corrupted(img, rng).items()]
    items += [(f"texture/{k}", "non_radiograph", v, 1) for k, v in textures(rng, TEXTURE_SIZE).items()]
    return items


def current_thresholds(seg) -> dict | None:
    """The thresholds the core applies to ``seg`` now (None: its engine is not calibrated)."""
    path = calibration_path(seg.path)
    entry = json.loads(path.read_text()).get(seg.info.checkpoint_sha256) if path.is_file() else None
    return None if entry is None else entry["thresholds"]


def _rates(flags: np.ndarray, labels: np.ndarray) -> dict:
    real, ood = flags[labels == 0], flags[labels == 1]
    return {"flagged_real": int(real.sum()), "flag_rate_real": float(real.mean()),
            "flagged_ood": int(ood.sum()), "flag_rate_ood": float(ood.mean())}


def heldout_report(seg, samples: int, thresholds: dict, data: Path = DEFAULT_DATA) -> dict:
    """On the validation patients' OOD split, per look: the flag rates of the engine's current
    thresholds ("before") and of ``thresholds`` ("after"), the scores' AUCs, and per kind."""
    items = ood_split(data)
    kinds = [kind for _, kind, _, _ in items]
    labels = np.array([label for *_, label in items])
    before = current_thresholds(seg)
    out = {"n_real": int((labels == 0).sum()), "n_ood": int(labels.sum()),
           "thresholds_before": before, "thresholds_after": thresholds}
    for look, second in LOOKS.items():
        node, sigma, core = score(seg, (img for _, _, img, _ in items), samples, second)
        after = rule_flags(node, sigma, thresholds)
        out[look] = {
            "auc": {"node_std_1024": auc(node, labels), "mean_latent_sigma": auc(sigma, labels)},
            "node_std_1024_median_real": float(np.median(node[labels == 0])),
            "node_std_1024_median_ood": float(np.median(node[labels == 1])),
            "before": _rates(core, labels), "after": _rates(after, labels),
            # the core's flag is the rule on the thresholds read above: "before" is what users get today
            "before_is_the_rule": bool(before is not None and np.array_equal(rule_flags(node, sigma, before), core)),
            "by_kind": by_kind(kinds, labels, node, sigma, {"flagged_before": core, "flagged_after": after}),
        }
    return out


def heldout_summary(report: dict) -> dict:
    """The held-out figures without the per-kind detail (what the calibration file keeps)."""
    return {"n_real": report["n_real"], "n_ood": report["n_ood"],
            **{look: {k: report[look][k] for k in ("auc", "before", "after")} for look in LOOKS}}


def print_heldout(report: dict) -> None:
    print(f"held out: {report['n_real']} validation radiographs, {report['n_ood']} OOD inputs made from them")
    for look in LOOKS:
        r = report[look]
        print(f"{look}: AUC node {r['auc']['node_std_1024']:.3f} sigma {r['auc']['mean_latent_sigma']:.3f}; "
              f"node1024 median real {r['node_std_1024_median_real']:.2f} ood {r['node_std_1024_median_ood']:.2f}")
        for when in ("before", "after"):
            v = r[when]
            print(f"  {when:6s} flags real {v['flagged_real']}/{report['n_real']} ({v['flag_rate_real']:.1%}), "
                  f"ood {v['flagged_ood']}/{report['n_ood']} ({v['flag_rate_ood']:.1%})")
        for kind, v in r["by_kind"].items():
            print(f"  {kind:16s} {v['label']:3s} n={v['n']:3d} node1024={v['node_std_1024_median']:7.2f} "
                  f"sigma={v['mean_latent_sigma_median']:.4f} "
                  f"flagged {v['flagged_before']:.2f} -> {v['flagged_after']:.2f}")
