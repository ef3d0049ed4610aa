"""Calibrate the reliability flag (``r.quality``) of an engine on the shared real images.

    python -m benchmarks.calibrate_quality [--model M] [--samples 50] [--single-look] [--real] [--write]
        [--out report.json]

``--real`` (how the shipped model is calibrated): the data are real radiographs of the training
patients of the committed Hannover split, and the thresholds are then judged on the held-out
validation patients next to the engine's current ones; see ``benchmarks.real_calibration``
(about 1,500 predictions, 8-10 minutes on the shared 2-core machine). Without it, the data,
all generated deterministically (fixed seeds) from ../shared/data, are:
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
reported. Predictions take the engine's default (the shipped model's: one engine call;
an engine exported with ``--second-look``: the core's second look, which pools two looks'
samples and so moves the scores); ``--single-look`` measures one engine call.
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


def stretch(a: np.ndarray) -> np.ndarray:
    """Any real array as uint8 gray, its minimum at 0 and its maximum at 255."""
    return cv2.normalize(a.astype(np.float64), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def textures(rng: np.random.Generator, size: int = 768) -> dict[str, np.ndarray]:
    out = {"uniform_noise": rng.integers(0, 256, (size, size), dtype=np.uint8),
           "flat_gray": np.full((size, size), 128, np.uint8),
           "gradient": np.tile(np.linspace(0, 255, size), (size, 1)).astype(np.uint8)}
    for i, sigma in enumerate((4, 16, 48)):
        field = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), sigma)
        out[f"smooth_field_{i}"] = stretch(field)
    yy, xx = np.mgrid[:size, :size]
    out["stripes"] = (127.5 + 127.5 * np.sin(xx / 9.0)).astype(np.uint8)
    out["checkerboard"] = (((xx // 64) + (yy // 64)) % 2 * 255).astype(np.uint8)
    return out


def other_images() -> dict[str, np.ndarray]:
    """Images that are neither chests nor radiographs, from matplotlib's bundled sample data (read
    where matplotlib is installed, never copied): a sagittal MRI slice of a head (another body
    part, another modality), a portrait photograph (public domain) and a terrain elevation map."""
    from matplotlib import cbook  # the [bench] extra; only the real OOD split asks for these

    mri = np.frombuffer(cbook.get_sample_data("s1045.ima.gz").read(), ">u2").reshape(256, 256)
    photo = cv2.imdecode(np.frombuffer(cbook.get_sample_data("grace_hopper.jpg").read(), np.uint8),
                         cv2.IMREAD_GRAYSCALE)
    terrain = cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"]
    return {"mri_head": stretch(mri), "photograph": photo, "terrain": stretch(terrain)}


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
    """Thresholds maximising TPR − FPR of "node > t1 or sigma > t2" (either may be +inf).

    Among sigma thresholds of equal J the highest wins, +inf first: a threshold at the top of the
    in-distribution sigmas that catches nothing more would only add false flags on new images."""
    best = None
    for t1 in np.r_[np.unique(node), np.inf]:
        for t2 in np.r_[np.inf, np.unique(sigma)[::-1]]:
            flag = (node > t1) | (sigma > t2)
            tpr, fpr = flag[labels == 1].mean(), flag[labels == 0].mean()
            if best is None or tpr - fpr > best["youden_j"] + 1e-12:
                best = {"node_std_1024": float(t1), "mean_latent_sigma": float(t2), "youden_j": float(tpr - fpr),
                        "tpr": float(tpr), "fpr": float(fpr)}
    return best


def score(seg, images, samples: int, second_look: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: the mean node std (1024 frame), the mean latent sigma and the engine's own flag
    (``r.quality.flag``, from the thresholds beside it), at seed 0 as the runtime predicts."""
    node, sigma, flag = [], [], []
    for img in images:
        r = seg.predict(img, samples=samples, seed=0, second_look=second_look)
        node.append(node_std_1024(r.mean_node_std, r.height, r.width))
        sigma.append(r.mean_latent_sigma)
        flag.append(r.quality.flag)
    return np.array(node), np.array(sigma), np.array(flag)


def rule_flags(node: np.ndarray, sigma: np.ndarray, thresholds: dict) -> np.ndarray:
    """The rule the core applies (cpp/src/quality.cpp): either score above its threshold."""
    return (node > thresholds["node_std_1024"]) | (sigma > thresholds["mean_latent_sigma"])


def by_kind(kinds: list[str], labels: np.ndarray, node: np.ndarray, sigma: np.ndarray,
            flags: dict[str, np.ndarray]) -> dict:
    """Per kind of input: its label, count, median scores and the fraction each of ``flags`` flags."""
    kinds = np.array(kinds)
    out = {}
    for kind in dict.fromkeys(kinds):
        m = kinds == kind
        out[str(kind)] = {"label": "out" if labels[m][0] else "in", "n": int(m.sum()),
                          "node_std_1024_median": float(np.median(node[m])),
                          "mean_latent_sigma_median": float(np.median(sigma[m])),
                          **{name: float(f[m].mean()) for name, f in flags.items()}}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="engine .onnx (default: the shipped model)")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--single-look", dest="second_look", action="store_const", const=False, default=None,
                        help="one engine call per image instead of the engine's default (README, \"The second look\")")
    parser.add_argument("--real", action="store_true",
                        help="calibrate on the training patients' Hannover radiographs and judge the thresholds on "
                             "the validation patients' (benchmarks.real_calibration)")
    parser.add_argument("--out", type=Path, help="also write the whole report (with --real: every score) as JSON")
    parser.add_argument("--write", action="store_true", help="store the thresholds beside the engine")
    args = parser.parse_args(argv)

    seg = chexmask_rt.load(args.model)
    args.second_look = seg.info.second_look if args.second_look is None else args.second_look
    if args.real:
        # imported here: training.real_eval imports this module
        from benchmarks import real_calibration
        items = real_calibration.training_items()
    else:
        items = dataset()
    names, kinds, _, labels = (list(x) for x in zip(*items))
    node, sigma, _ = score(seg, (img for _, _, img, _ in items), args.samples, args.second_look)
    labels = np.array(labels)
    rule = youden_or_rule(node, sigma, labels)
    # JSON has no infinity: a score the rule does not use is stored as 1e308 (the core reads it as +inf)
    thresholds = {k: min(rule[k], 1e308) for k in ("node_std_1024", "mean_latent_sigma")}
    report = {
        "model": seg.model_id, "checkpoint_sha256": seg.info.checkpoint_sha256, "samples": args.samples, "seed": 0,
        "second_look": args.second_look,
        "n_in": int((labels == 0).sum()), "n_out": int((labels == 1).sum()),
        "auc": {"node_std_1024": auc(node, labels), "mean_latent_sigma": auc(sigma, labels)},
        "thresholds": thresholds,
        "youden_j": rule["youden_j"], "tpr": rule["tpr"], "fpr": rule["fpr"],
        "by_kind": by_kind(kinds, labels, node, sigma, {"flagged": rule_flags(node, sigma, thresholds)}),
        "script": "benchmarks/calibrate_quality.py" + (" --real" if args.real else ""),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "by_kind"}, indent=1))
    for kind, v in report["by_kind"].items():
        print(f"{kind:16s} {v['label']:3s} n={v['n']:3d} node1024={v['node_std_1024_median']:7.2f} "
              f"sigma={v['mean_latent_sigma_median']:.4f} flagged={v['flagged']:.2f}")
    full = report
    if args.real:
        heldout = real_calibration.heldout_report(seg, args.samples, thresholds)
        real_calibration.print_heldout(heldout)
        report["data"] = real_calibration.DATA_NOTE
        report["heldout"] = real_calibration.heldout_summary(heldout)
        full = {**report, "heldout": heldout,
                "scores": [{"name": n, "label": int(y), "node_std_1024": float(a), "mean_latent_sigma": float(b)}
                           for n, y, a, b in zip(names, labels, node, sigma)]}
    if args.out:
        args.out.write_text(json.dumps(full, indent=1, allow_nan=False) + "\n")
    if args.write:
        path = calibration_path(seg.path)
        table = json.loads(path.read_text()) if path.is_file() else {}
        table[seg.info.checkpoint_sha256] = {k: v for k, v in report.items() if k != "checkpoint_sha256"}
        path.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
