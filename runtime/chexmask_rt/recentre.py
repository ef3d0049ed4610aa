"""A second look at wide fields of view: crop around the first answer's lungs and predict again.

The default model drifts when the lungs span only a small part of the image
(``benchmarks/framing.py``: 8-16 px at half the image, 1024 frame); it was
trained on chests framed as in their source images. When the first prediction's
lungs span less than ``RECENTRE_BELOW`` of the image, a square around them is
cropped so that they span ``RECENTRE_FILL`` of it (black beyond the image's
edges, as the letterbox pads) and predicted again. Images framed like the
training data are left alone: one pass, the same result as without recentring.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .anatomy import organ_slices
from .preprocess import MIN_SIDE
from .result import Result

RECENTRE_BELOW = 0.7   # measured: below it a second pass helped on all five shared images
RECENTRE_FILL = 0.8    # where the shipped model's framing curve is flat (MODEL_CARD.md, Framing)
_LUNGS = slice(0, organ_slices()["left_lung"].stop)


def lung_fill(landmarks: np.ndarray, height: int, width: int) -> float:
    """How much of the image the lungs span: max(their width / the image's, their height / the image's)."""
    lungs = np.asarray(landmarks)[_LUNGS]
    return float(max(np.ptp(lungs[:, 0]) / width, np.ptp(lungs[:, 1]) / height))


def chest_square(landmarks: np.ndarray, fill: float = RECENTRE_FILL) -> tuple[int, int, int]:
    """(left, top, side) in image pixels of the square centred on the lungs that they span ``fill`` of."""
    lungs = np.asarray(landmarks)[_LUNGS]
    low, high = lungs.min(axis=0), lungs.max(axis=0)
    side = int(np.ceil((high - low).max() / fill))
    left, top = np.floor((low + high) / 2 - side / 2).astype(int)
    return int(left), int(top), side


def crop_square(gray: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The ``side`` x ``side`` square at (left, top) of a 2-D image; zeros where it leaves the image."""
    out = np.zeros((side, side), dtype=gray.dtype)
    h, w = gray.shape
    y0, y1, x0, x1 = max(top, 0), min(top + side, h), max(left, 0), min(left + side, w)
    if y0 < y1 and x0 < x1:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = gray[y0:y1, x0:x1]
    return out


def recentre_square(result: Result) -> tuple[int, int, int] | None:
    """The ``chest_square`` to predict again on, or None: when the lungs span enough of the image,
    or when the crop would be too small an image."""
    if lung_fill(result.landmarks, result.height, result.width) >= RECENTRE_BELOW:
        return None
    square = chest_square(result.landmarks)
    return square if square[2] >= MIN_SIDE else None


def moved_back(crop_result: Result, first: Result, left: int, top: int, side: int) -> Result:
    """The crop's result in the original image's pixels. Its uncertainty and reliability flag are
    the crop's: that is the image the model judged."""
    offset = np.array([left, top], dtype=np.float64)
    return dataclasses.replace(
        crop_result, landmarks=crop_result.landmarks + offset, landmarks_mu=crop_result.landmarks_mu + offset,
        height=first.height, width=first.width, image=first.image,
        extra={**crop_result.extra, "recentred": {
            "first_fill": lung_fill(first.landmarks, first.height, first.width),
            "crop_left": left, "crop_top": top, "crop_side": side}})
