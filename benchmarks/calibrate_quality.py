"""Calibrate the reliability flag (``r.quality``) of an engine on the shared real images.

    python -m benchmarks.calibrate_quality [--model M] [--samples 50] [--single-look] [--write]

Data, all generated deterministically (fixed seeds) from ../shared/data:
- in-distribution: the five shared radiographs and the MONOCHROME2 CR DICOM, each as is
  and with mild augmentations (gamma, contrast, small rotation, slight zoom, mild noise,
  slight blur, JPEG re-compression);
- out-of-distribution: the same six images heavily corrupted (strong noise, strong blur,
  a large occlusion, inverted, rotated 90° and 180°, a crop of a non-chest region
  (the neck/shoulder corner or the abdomen) scaled up, a tiled mosaic), plus non-chest
  textures (uniform noise, smooth random fields, stripes, a checkerboard, a gradient,
  flat gray).

Scores: the mean node std in the 1024 frame and the mean latent sigma (chexmask_rt.quality).
The two thresholds are chosen together to maximise Youden's J (TPR − FPR) of the rule
"flag when either score is above its threshold", as in CheXmask-U; a score may be left
out (threshold +inf) when it does not help. ROC AUC of each score (Mann–Whitney U) is
reported. Predictions take the engine's default (the shipped model's: a second look,
the core's second look, which pools two looks' samples and so moves the scores);
``--single-look`` measures one engine call.
``--write`` stores the thresholds in ``<engine stem>.quality.json`` beside the engine, keyed by
its checkpoint_sha256; the runtime applies them to both kinds of answer.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import mannwhitneyu

import chexmask_rt
from benchmarks.shared_data import radiographs_and_dicom
from chexmask_rt.image_io import full_scale, read_image, to_gray
from chexmask_rt._core import node_std_1024
from chexmask_rt.quality import calibration_path

SOURCES = radiographs_and_dicom()


def as_uint8(path: Path) -> np.ndarray:
    gray = to_gray(read_image(path), name=str(path))
    return np.rint(gray.astype(np.float64) * (255.0 / full_scale(gray))).astype(np.uint8)


def rotate(img: np.ndarray, degrees: float, scale: float = 1.0) -> np.ndarray:
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    return np.rint(255 * (img / 255.0) ** g).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def in_distribution(img: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "original": img,
        "gamma_0.8": gamma(img, 0.8), "gamma_1.25": gamma(img, 1.25),
        "contrast_0.85": np.clip((img - 128.0) * 0.85 + 128, 0, 255).astype(np.uint8),
        "rotate_+3": rotate(img, 3), "rotate_-3": rotate(img, -3),
        "zoom_1.05": rotate(img, 0, 1.05),
        "noise_5": noisy(img, 5, rng),
        "blur_1": cv2.GaussianBlur(img, (0, 0), 1.0),
        "jpeg_40": jpeg(img, 40),
    }


def corrupted(img: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, w = img.shape
    occluded = img.copy()
    occluded[h // 5:h * 4 // 5, w // 6:w * 5 // 6] = 0
    corner = cv2.resize(img[:h // 3, :w // 3], (w, h), interpolation=cv2.INTER_LINEAR)
    abdomen = cv2.resize(img[h * 2 // 3:, w // 4:w * 3 // 4], (w, h), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(img, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    mosaic = np.tile(small, (3, 3))[:h, :w]
    mosaic = np.pad(mosaic, ((0, h - mosaic.shape[0]), (0, w - mosaic.shape[1])))
    return {
        "noise_80": noisy(img, 80, rng), "blur_15": cv2.GaussianBlur(img, (0, 0), 15.0),
        "occlusion_60pct": occluded, "inverted": 255 - img,
        "rotate_90": np.ascontiguousarray(np.rot90(img)), "rotate_180": np.ascontiguousarray(img[::-1, ::-1]),
        "crop_corner": corner, "crop_abdomen": abdomen, "mosaic_3x3": mosaic,
    }


def textures(rng: np.random.Generator, size: int = 768) -> dict[str, np.ndarray]:
    out = {"uniform_noise": rng.integers(0, 256, (size, size), dtype=np.uint8),
           "flat_gray": np.full((size, size), 128, np.uint8),
           "gradient": np.tile(np.linspace(0, 255, size), (size, 1)).astype(np.uint8)}
    for i, sigma in enumerate((4, 16, 48)):
        field = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), sigma)
        out[f"smooth_field_{i}"] = cv2.normalize(field, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    out["stripes"] = (127.5 + 127.5 * np.sin(xx / 9.0)).astype(np.uint8)
    out["checkerboard"] = (((xx // 64) + (yy // 64)) % 2 * 255).astype(np.uint8)
    return out


def dataset(seed: int = 0) -> list[tuple[str, str, np.ndarray, int]]:
    """[(name, kind, image, label)], label 1 = out of distribution."""
    rng = np.random.default_rng(seed)
    items = []
    for path in SOURCES:
        img = as_uint8(path)
        items += [(f"{path.stem}/{k}", k, v, 0) for k, v in in_distribution(img, rng).items()]
        items += [(f"{path.stem}/{k}", k, v, 1) for k, v in corrupted(img, rng).items()]
    items += [(f"texture/{k}", k, v, 1) for k, v in textures(rng).items()]
    return items


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of "higher score = out of distribution"."""
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0], alternative="two-sided").statistic
    return float(u / ((labels == 1).sum() * (labels == 0).sum()))


def youden_or_rule(node: np.ndarray, sigma: np.ndarray, labels: np.ndarray) -> dict:
    """Thresholds maximising TPR − FPR of "node > t1 or sigma > t2" (either may be +inf)."""
    best = None
    for t1 in np.r_[np.unique(node), np.inf]:
        for t2 in np.r_[np.unique(sigma), np.inf]:
            flag = (node > t1) | (sigma > t2)
            tpr, fpr = flag[labels == 1].mean(), flag[labels == 0].mean()
            if best is None or tpr - fpr > best["youden_j"] + 1e-12:
                best = {"node_std_1024": float(t1), "mean_latent_sigma": float(t2), "youden_j": float(tpr - fpr),
                        "tpr": float(tpr), "fpr": float(fpr)}
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="engine .onnx (default: the shipped model)")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--single-look", dest="second_look", action="store_const", const=False, default=None,
                        help="one engine call per image instead of the engine's default (README, \"The second look\")")
    parser.add_argument("--write", action="store_true", help="store the thresholds beside the engine")
    args = parser.parse_args(argv)

    seg = chexmask_rt.load(args.model)
    args.second_look = seg.info.second_look if args.second_look is None else args.second_look
    items = dataset()
    names, kinds, node, sigma, labels = [], [], [], [], []
    for name, kind, img, label in items:
        r = seg.predict(img, samples=args.samples, seed=0, second_look=args.second_look)
        names.append(name), kinds.append(kind), labels.append(label)
        node.append(node_std_1024(r.mean_node_std, r.height, r.width)), sigma.append(r.mean_latent_sigma)
    node, sigma, labels = np.array(node), np.array(sigma), np.array(labels)
    rule = youden_or_rule(node, sigma, labels)
    by_kind = {}
    for kind in dict.fromkeys(kinds):
        m = np.array([k == kind for k in kinds])
        flagged = (node[m] > rule["node_std_1024"]) | (sigma[m] > rule["mean_latent_sigma"])
        by_kind[kind] = {"label": "out" if labels[m][0] else "in", "n": int(m.sum()),
                         "node_std_1024_median": float(np.median(node[m])),
                         "mean_latent_sigma_median": float(np.median(sigma[m])), "flagged": float(flagged.mean())}
    report = {
        "model": seg.model_id, "checkpoint_sha256": seg.info.checkpoint_sha256, "samples": args.samples, "seed": 0,
        "second_look": args.second_look,
        "n_in": int((labels == 0).sum()), "n_out": int((labels == 1).sum()),
        "auc": {"node_std_1024": auc(node, labels), "mean_latent_sigma": auc(sigma, labels)},
        "thresholds": {"node_std_1024": rule["node_std_1024"], "mean_latent_sigma": rule["mean_latent_sigma"]},
        "youden_j": rule["youden_j"], "tpr": rule["tpr"], "fpr": rule["fpr"], "by_kind": by_kind,
        "script": "benchmarks/calibrate_quality.py",
    }
    print(json.dumps({k: v for k, v in report.items() if k != "by_kind"}, indent=1))
    for kind, v in by_kind.items():
        print(f"{kind:16s} {v['label']:3s} n={v['n']:2d} node1024={v['node_std_1024_median']:7.2f} "
              f"sigma={v['mean_latent_sigma_median']:.4f} flagged={v['flagged']:.2f}")
    if args.write:
        path = calibration_path(seg.path)
        table = json.loads(path.read_text()) if path.is_file() else {}
        entry = {k: v for k, v in report.items() if k != "checkpoint_sha256"}
        # JSON has no infinity: a score the rule does not use is stored as 1e308
        entry["thresholds"] = {k: min(v, 1e308) for k, v in entry["thresholds"].items()}
        table[seg.info.checkpoint_sha256] = entry
        path.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
