"""CheXmask-U-style CSV rows and organ-mask PNGs, at the original image resolution.

Columns follow the CheXmask / CheXmask-U databases: ``Landmarks (Mean)`` and
``Landmarks (Std)`` are "x1,y1,x2,y2,..." over the 120 landmarks (RL 0-43,
LL 44-93, H 94-119); ``Right Lung``, ``Left Lung`` and ``Heart`` are the
run-length encodings (:mod:`chexmask_rt.rle`) of the filled landmark polygons;
``Height`` and ``Width`` give the mask shape. The image scores, the reliability
flag and the run's settings follow; ``Second Look`` says how the answer was made
(:func:`chexmask_rt.second_look.look_kind`).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, first_line
from .rle import encode
from .second_look import look_kind

COLUMNS = ("Image", "Landmarks (Mean)", "Landmarks (Std)", "Right Lung", "Left Lung", "Heart", "Height", "Width",
           "Mean Node Std", "Mean Latent Sigma", "Quality Flag", "Quality Reason", "Samples", "Seed", "Model",
           "Second Look")
_MASK_COLUMNS = {"right_lung": "Right Lung", "left_lung": "Left Lung", "heart": "Heart"}


def _coords(points: np.ndarray) -> str:
    # 3 decimals = 1/1000 px: far below the model's error, and rows stay short
    return ",".join(f"{v:.3f}" for v in np.asarray(points, dtype=np.float64).reshape(-1))


def csv_row(result) -> dict[str, str]:
    """The CSV row of one :class:`chexmask_rt.Result`, keyed by :data:`COLUMNS`."""
    row = {"Image": result.image or "", "Landmarks (Mean)": _coords(result.landmarks),
           "Landmarks (Std)": _coords(result.landmarks_std)}
    for organ, mask in result.organ_masks().items():
        row[_MASK_COLUMNS[organ]] = encode(mask)
    q = result.quality
    row.update({"Height": str(result.height), "Width": str(result.width),
                "Mean Node Std": f"{result.mean_node_std:.6g}", "Mean Latent Sigma": f"{result.mean_latent_sigma:.6g}",
                "Quality Flag": "" if q is None else str(q.flag), "Quality Reason": "" if q is None else q.reason,
                "Samples": str(result.samples), "Seed": str(result.seed), "Model": result.model,
                "Second Look": look_kind(result)})
    return row


def parse_coords(text: str) -> np.ndarray:
    """Inverse of the ``Landmarks (...)`` columns: (N, 2) float array."""
    return np.array([float(v) for v in text.split(",")], dtype=np.float64).reshape(-1, 2)


def csv_text(results) -> str:
    """Header plus one row per result, as a string."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(csv_row(r))
    return buf.getvalue()


def write_csv(path: str | os.PathLike, results) -> None:
    """Write ``results`` as a CSV file (header + rows); an unwritable path is an InputError naming it."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(csv_text(results))
    except OSError as exc:
        raise InputError(f"{path}: cannot write CSV ({exc.strerror or exc})") from exc


def write_masks(folder: str | os.PathLike, stem: str, result) -> list[Path]:
    """Write ``<stem>_right_lung.png``, ``_left_lung.png``, ``_heart.png`` (0/255, original size) into ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the mask folder ({exc.strerror or exc})") from exc
    written = []
    for organ, mask in result.organ_masks().items():
        out = folder / f"{stem}_{organ}.png"
        try:
            ok = cv2.imwrite(str(out), mask)
        except cv2.error as exc:  # e.g. a name too long for the file system
            raise InputError(f"{out}: cannot write the mask picture ({first_line(exc)})") from None
        if not ok:
            raise InputError(f"{out}: cannot write the mask picture")
        written.append(out)
    return written
