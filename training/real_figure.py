"""A picture of the real-image metric: what a model's outer-extent error looks like on radiographs.

    python -m training.real_figure [--model ENGINE] [--out PNG] [--samples 50]

The model predicts every outlined radiograph of the validation patients with one engine call,
as ``python -m training.evaluate --real`` measures it, and the images at the best, the 25th,
50th, 75th and 90th percentile and the worst of their errors are drawn: V7's lung outlines (the
reference), the model's lungs and heart, and in each title the image's outer-extent error (1024
frame), its projection, its mean node std and the reliability flag. The default output is the
shipped model's figure, ``docs/real_validation.jpg`` (a JPEG: a quarter of the PNG's size), shown in
MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmask_rt._core import node_std_1024
from chexmask_rt.image_io import read_image

from .data import DEFAULT_DATA
from .outer_extent import extent_errors, extremes_1024
from .real_data import OutlinedImage, load_split, outlined_images

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "real_validation.jpg"
PERCENTILES = (0, 25, 50, 75, 90, 100)
DISPLAY_SIDE = 600  # pixels of the longer side each radiograph is shown at (keeps the PNG small)


@dataclass
class Case:
    """One outlined radiograph, the model's result on it and its outer-extent error."""

    item: OutlinedImage
    image: np.ndarray
    result: object
    error_px: float
    node_std_1024: float


def pick_by_rank(errors, percentiles=PERCENTILES) -> list[tuple[int, int]]:
    """(percentile, index) of the image at each percentile of ``errors`` (nearest rank), from the
    lowest percentile up; a rank that two percentiles share (few images) is drawn once."""
    order = np.argsort(np.asarray(errors, float), kind="stable")
    by_rank = {}
    for p in percentiles:
        by_rank.setdefault(int(round(p / 100 * (len(order) - 1))), p)
    return [(p, int(order[rank])) for rank, p in by_rank.items()]


def _label(percentile: int) -> str:
    return {0: "best", 100: "worst"}.get(percentile, f"{percentile}th percentile")


def measure(seg, items, samples: int = 50) -> list[Case]:
    """Predict each item with one engine call and measure its error as training.real_eval does."""
    cases = []
    for item in items:
        image = read_image(item.path)
        r = seg.predict(image, samples=samples, second_look=False)
        errors = extent_errors(extremes_1024(r.right_lung, r.left_lung, item.frame),
                               extremes_1024(item.right_lung, item.left_lung, item.frame))
        cases.append(Case(item, image, r, float(errors.mean()), node_std_1024(r.mean_node_std, *image.shape[:2])))
    return cases


def _closed(points: np.ndarray) -> np.ndarray:
    return np.vstack([points, points[:1]])


def draw(cases: list[Case], labels: list[str], out: Path, title: str) -> None:
    """One panel per case, in a grid of three columns, written to ``out``."""
    import cv2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(cases))
    rows = -(-len(cases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, case, label in zip(axes.flat, cases, labels):
        h, w = case.image.shape[:2]
        scale = DISPLAY_SIDE / max(h, w)
        small = cv2.resize(case.image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        ax.imshow(small, cmap="gray", extent=(0, w, h, 0), interpolation="bilinear")
        for lung in (case.item.right_lung, case.item.left_lung):
            ax.plot(*_closed(lung).T, color="#ffd400", lw=1.2)
        r = case.result
        for organ, colour in ((r.right_lung, "#00e5ff"), (r.left_lung, "#00e5ff"), (r.heart, "#ff4fd8")):
            ax.plot(*_closed(organ).T, color=colour, lw=1.0)
        flag = "flagged" if r.quality is not None and r.quality.flag else "not flagged"
        ax.set_title(f"{label}: {case.error_px:.1f} px, {case.item.projection.split()[0]}\n"
                     f"node std {case.node_std_1024:.1f} px, {flag}", fontsize=8)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, **({"pil_kwargs": {"quality": 85}} if out.suffix.lower() in (".jpg", ".jpeg") else {}))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import chexmask_rt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="engine .onnx (default: the shipped model)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    seg = chexmask_rt.load(args.model)
    cases = measure(seg, outlined_images(set(load_split()["validation_patients"]), args.data), args.samples)
    errors = [c.error_px for c in cases]
    picked = pick_by_rank(errors)
    title = (f"{seg.info.id} on the {len(cases)} outlined radiographs of the Hannover validation patients, "
             f"one engine call, K = {args.samples}: mean outer-extent error {np.mean(errors):.1f} px (1024 frame)."
             "\nYellow: V7's lung outlines (the reference; they also run behind the heart). "
             "Cyan: the model's lungs; magenta: its heart.")
    draw([cases[i] for _, i in picked], [_label(p) for p, _ in picked], args.out, title)
    print(f"{args.out}: " + ", ".join(f"{_label(p)} {cases[i].item.file} {cases[i].error_px:.2f} px" for p, i in picked))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
