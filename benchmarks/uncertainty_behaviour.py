"""The paper's two uncertainty experiments on the shipped model and real radiographs.

    python -m benchmarks.uncertainty_behaviour [--model M] [--out benchmarks/results] [--real N]

The images: the five shared radiographs; with ``--real N``, one radiograph of each of the first N
validation patients of the Hannover split (``training/real_split.json``: held out from training,
bedside AP and PA clinical images), written as ``uncertainty_behaviour_real.*``.

1. Additive Gaussian noise, sigma 0..120 on the 0-255 scale (seeded): the mean
   node std should rise with it (Spearman rho per image; target >= 0.9).
2. A 201x201 black square centred on a lung landmark: the uncertainty of the
   landmarks inside it, relative to the same landmarks without the occlusion
   (target >= 1.5x). The square is 201 px of the 1024 frame, where the paper
   works (CheXmask images are 1024 x 1024) and where every pixel figure of this
   project is stated, so it covers the same share of the frame on every image;
   201 original pixels are also measured, for comparison (they cover 16x more
   of a 512 px image than of a 2048 px one).
Writes uncertainty_behaviour[_real].json and .png (two panels) to --out.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

import chexmask_rt
from benchmarks.shared_data import experiment_arguments, gray_radiographs, write_report
from chexmask_rt._core import Letterbox
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.anatomy import organ_slices

NOISE_LEVELS = [0, 10, 20, 30, 45, 60, 80, 100, 120]
OCCLUSION = 201  # side of the square in the 1024 frame
SAMPLES = 50


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def noise_curve(seg, gray: np.ndarray, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    base = gray.astype(np.float64) * (255.0 / float(np.iinfo(gray.dtype).max))
    out = []
    for sigma in NOISE_LEVELS:
        noisy = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8) if sigma else base.astype(np.uint8)
        out.append(seg.predict(noisy, samples=SAMPLES).mean_node_std)
    return out


def occlusion_side(shape: tuple[int, ...], frame_px: int = OCCLUSION) -> int:
    """Side in original pixels of a square that is ``frame_px`` wide in the 1024 frame
    (odd, so that it centres on a pixel)."""
    side = round(frame_px * Letterbox(*shape[:2]).side / 1024)
    return side + 1 - side % 2


def occlusion_ratios(seg, gray: np.ndarray, side: int) -> list[dict]:
    """Six squares of ``side`` original pixels, each centred on a lung landmark of the clean
    prediction: the mean node uncertainty of the lung landmarks inside, occluded / clean."""
    clean = seg.predict(gray, samples=SAMPLES)
    lungs = np.r_[organ_slices()["right_lung"], organ_slices()["left_lung"]]
    rows = []
    # three lung landmarks per lung: at a quarter, half and three quarters of its contour
    for organ in ("right_lung", "left_lung"):
        sl = organ_slices()[organ]
        for frac in (0.25, 0.5, 0.75):
            node = sl.start + int(frac * (sl.stop - sl.start))
            cx, cy = clean.landmarks[node]
            x0, y0 = int(round(cx)) - side // 2, int(round(cy)) - side // 2
            occluded = gray.copy()
            occluded[max(0, y0):max(0, y0 + side), max(0, x0):max(0, x0 + side)] = 0
            hit = [i for i in lungs if x0 <= clean.landmarks[i, 0] < x0 + side and y0 <= clean.landmarks[i, 1] < y0 + side]
            occ = seg.predict(occluded, samples=SAMPLES)
            rows.append({"organ": organ, "node": node, "nodes_inside": len(hit),
                         "ratio": float(occ.node_uncertainty[hit].mean() / clean.node_uncertainty[hit].mean())})
    return rows


def real_radiographs(count: int, data: Path) -> Iterator[tuple[Path, np.ndarray]]:
    """The first image of each of the first ``count`` validation patients (by patient id)."""
    from training.real_data import first_image_per_patient, load_split

    first = first_image_per_patient(set(load_split()["validation_patients"]), data)
    for patient in sorted(first)[:count]:
        yield first[patient], to_gray(read_image(first[patient]))


def main(argv: list[str] | None = None) -> None:
    parser = experiment_arguments(__doc__)
    parser.add_argument("--real", type=int, metavar="N", help="N held-out Hannover radiographs instead of the shared ones")
    args = parser.parse_args(argv)
    seg = chexmask_rt.load(args.model)
    report = {"model": seg.model_id, "noise_levels": NOISE_LEVELS, "images": {}}
    if args.real:
        images = real_radiographs(args.real, args.data)
        report["images_from"] = "one radiograph of each of the first N validation patients (training/real_split.json)"
    else:
        images = gray_radiographs(args.data)
    for i, (path, gray) in enumerate(images):
        curve = noise_curve(seg, gray, seed=i)
        side = occlusion_side(gray.shape)
        occ = occlusion_ratios(seg, gray, side)
        occ_px = occlusion_ratios(seg, gray, OCCLUSION)
        entry = report["images"][path.name] = {
            "mean_node_std_by_noise": curve, "spearman": spearman(np.array(NOISE_LEVELS), np.array(curve)),
            "occlusion_side_px": side, "occlusion": occ,
            "occlusion_ratio_median": float(np.median([o["ratio"] for o in occ])),
            "occlusion_original_px": occ_px,
            "occlusion_original_px_ratio_median": float(np.median([o["ratio"] for o in occ_px]))}
        print(f"{path.name}: spearman {entry['spearman']:.3f}, "
              f"occlusion ratio median {entry['occlusion_ratio_median']:.2f} "
              f"(min {min(o['ratio'] for o in occ):.2f}; square of {side} px); "
              f"with {OCCLUSION} original px: {entry['occlusion_original_px_ratio_median']:.2f}")
    summary = {"spearman_median": float(np.median([v["spearman"] for v in report["images"].values()])),
               "occlusion_ratio_median": float(np.median([o["ratio"] for v in report["images"].values()
                                                          for o in v["occlusion"]]))}
    report["summary"] = summary
    print(f"median over images: spearman {summary['spearman_median']:.3f}; "
          f"occlusion ratio (all squares) {summary['occlusion_ratio_median']:.2f}")
    write_report(args.out, "uncertainty_behaviour" + ("_real" if args.real else ""), report, _plot)


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(report["images"])
    for name in names:
        v = report["images"][name]
        left.plot(NOISE_LEVELS, v["mean_node_std_by_noise"], marker="o", label=f"{name[:22]} (rho {v['spearman']:.2f})")
    left.set(xlabel="additive Gaussian noise sigma (0-255 scale)", ylabel="mean node std (px)",
             title="Uncertainty vs noise")
    left.legend(fontsize=7)
    pos = np.arange(1, len(names) + 1)
    colours = {"occlusion": "#9ecae1", "occlusion_original_px": "#dddddd"}
    frame = right.boxplot([[o["ratio"] for o in report["images"][n]["occlusion"]] for n in names],
                          positions=pos - 0.17, widths=0.3, showmeans=True, patch_artist=True)
    original = right.boxplot([[o["ratio"] for o in report["images"][n]["occlusion_original_px"]] for n in names],
                             positions=pos + 0.17, widths=0.3, showmeans=True, patch_artist=True)
    for boxes, key in ((frame, "occlusion"), (original, "occlusion_original_px")):
        for box in boxes["boxes"]:
            box.set_facecolor(colours[key])
    right.set_xticks(pos, [n[:14] for n in names], rotation=20, fontsize=7)
    right.axhline(1.5, color="red", lw=1, ls="--", label="target 1.5x")
    right.plot([], [], "s", color=colours["occlusion"], label=f"{OCCLUSION} px of the 1024 frame")
    right.plot([], [], "s", color=colours["occlusion_original_px"], label=f"{OCCLUSION} original px")
    right.axhline(1.0, color="gray", lw=0.8)
    right.set(ylabel="node uncertainty inside / without occlusion",
              title=f"{OCCLUSION}x{OCCLUSION} black occlusion on a lung landmark")
    right.legend(fontsize=7)
    fig.suptitle(report["model"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
