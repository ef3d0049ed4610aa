"""How the model copes with the chest's size in the frame (collimation), on the shared real images.

    python -m benchmarks.framing [--model M] [--out benchmarks/results]

Real radiographs are framed anywhere from a wide field of view to a tight
collimation where the lungs touch the image's edges. Each shared image is
re-framed so that its lungs span a given share of the image (``fill``: the
larger of their width over the image's width and their height over its height;
1 is a lung touching the edges): a border is cropped away (a tighter field of
view) or added in black, the same fraction of each side. For each framing it
reports the mean landmark distance in the 1024 frame of the re-framed image,
with the second look (``second_look=True``) and with one engine call (``second_look=False``,
README, "The second look"):

* ``wiki_example1`` against its reference landmarks (accuracy);
* every image against its own full-frame prediction, moved by the same crop
  (consistency: a model that ignores framing scores 0).

It also times ``predict`` both ways on each full image (median of 7 calls).
Writes framing.json and framing.png to --out.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

import chexmask_rt
from benchmarks.shared_data import experiment_arguments, gray_radiographs, write_report
from chexmask_rt._core import Letterbox, node_std_1024
from tests.reference.second_look import lung_fill
from training.metrics import distance_1024

REFERENCE = "wiki_example1_normal_PA.jpg"
FILLS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]
SAMPLES = 50


def reframe(gray: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop (fraction > 0) or black-pad (< 0) a border of |fraction| x each side's length.
    Returns the image and the offset that moves original pixels into it."""
    h, w = gray.shape
    dy, dx = int(h * abs(fraction)), int(w * abs(fraction))
    if fraction >= 0:
        return gray[dy:h - dy, dx:w - dx], np.array([-dx, -dy], float)
    return cv2.copyMakeBorder(gray, dy, dy, dx, dx, cv2.BORDER_CONSTANT, value=0), np.array([dx, dy], float)


def fraction_for(fill: float, target: float) -> float:
    """The border fraction for ``reframe`` that turns lungs filling ``fill`` of the image into
    ``target`` (each side shrinks by 1 - 2 x fraction)."""
    return (1 - fill / target) / 2


LOOKS = {"single_look": False, "second_look": True}  # result key -> predict's second_look


def framing_curve(seg, gray: np.ndarray, anchors: dict[str, np.ndarray], truth: np.ndarray | None = None) -> list[dict]:
    """Per target fill and per look mode (``LOOKS``): the fill reached, the distance to that mode's
    full-frame prediction (``anchors[mode]``) and, when given, to ``truth``, both moved into the
    re-framed image; the mean node std (1024 frame). The fill is measured on ``truth`` when given,
    else on the single look's anchor."""
    rows, lungs = [], truth if truth is not None else anchors["single_look"]
    for target in FILLS:
        fraction = fraction_for(lung_fill(lungs, *gray.shape), target)
        image, offset = reframe(gray, fraction)
        frame = Letterbox(*image.shape)
        row = {"fraction": fraction, "fill": lung_fill(lungs + offset, *image.shape)}
        for mode, second_look in LOOKS.items():
            r = seg.predict(image, samples=SAMPLES, second_look=second_look)
            row[mode] = {"to_full_frame_px": distance_1024(r.landmarks, anchors[mode] + offset, frame),
                         "mean_node_std_1024": node_std_1024(r.mean_node_std, *image.shape),
                         "look": r.look_kind}
            if truth is not None:
                row[mode]["to_reference_px"] = distance_1024(r.landmarks, truth + offset, frame)
        rows.append(row)
    return rows


def latency_ms(seg, gray: np.ndarray, calls: int = 7) -> dict[str, float]:
    """Median wall time of ``predict`` per look mode on one image (after one warm-up call each)."""
    out = {}
    for mode, second_look in LOOKS.items():
        seg.predict(gray, samples=SAMPLES, second_look=second_look)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            seg.predict(gray, samples=SAMPLES, second_look=second_look)
            times.append(1000 * (time.perf_counter() - t0))
        out[mode] = float(np.median(times))
    return out


def main(argv: list[str] | None = None) -> None:
    args = experiment_arguments(__doc__).parse_args(argv)
    seg = chexmask_rt.load(args.model)
    report = {"model": seg.model_id, "fills": FILLS, "images": {}, "latency_ms": {}}
    for path, gray in gray_radiographs(args.data):
        truth = None
        if path.name == REFERENCE:
            truth = np.load(args.data / "landmarks" / "wiki_example1_landmarks_original_px.npy")
        anchors = {mode: seg.predict(gray, samples=SAMPLES, second_look=on).landmarks for mode, on in LOOKS.items()}
        rows = report["images"][path.name] = framing_curve(seg, gray, anchors, truth)
        report["latency_ms"][path.name] = latency_ms(seg, gray)
        print(path.name + ": " + ", ".join(
            f"fill {r['fill']:.2f} -> {r['single_look']['to_full_frame_px']:.1f} / "
            f"{r['second_look']['to_full_frame_px']:.1f} px"
            + (f" ({r['single_look']['to_reference_px']:.1f} / {r['second_look']['to_reference_px']:.1f} to reference)"
               if truth is not None else "") for r in rows)
            + "; single / second look, median ms: "
            + " / ".join(f"{v:.0f}" for v in report["latency_ms"][path.name].values()))
    write_report(args.out, "framing", report, _plot)


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in report["images"].items():
        fill = [r["fill"] for r in rows]
        line, = left.plot(fill, [r["second_look"]["to_full_frame_px"] for r in rows], marker="o", label=Path(name).stem)
        left.plot(fill, [r["single_look"]["to_full_frame_px"] for r in rows], ls=":", color=line.get_color())
        right.plot(fill, [r["second_look"]["mean_node_std_1024"] for r in rows], marker="o", label=Path(name).stem)
        right.plot(fill, [r["single_look"]["mean_node_std_1024"] for r in rows], ls=":", color=line.get_color())
        if "to_reference_px" in rows[0]["second_look"]:
            left.plot(fill, [r["second_look"]["to_reference_px"] for r in rows], marker="s", color="black", ls="--",
                      label=f"{Path(name).stem} vs reference")
            left.plot(fill, [r["single_look"]["to_reference_px"] for r in rows], color="black", ls=":")
    left.plot([], [], ls=":", color="gray", label="dotted: second_look=False")
    left.axhline(15, color="red", lw=1, ls="--", label="15 px")
    left.set(xlabel="lung extent / image extent", ylabel="mean landmark distance, 1024 frame (px)",
             title="Re-framed image vs full-frame prediction")
    right.set(xlabel="lung extent / image extent", ylabel="mean node std, 1024 frame (px)",
              title="Uncertainty")
    left.legend(fontsize=7)
    fig.suptitle(f"{report['model']}: each image cropped or black-padded so its lungs span a share of it",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
