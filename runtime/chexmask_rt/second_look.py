"""The second look: predict again on a square crop around the first answer's lungs, then combine.

The model's answer depends on where the chest sits on the encoder's pixel grid
and on how much of the frame it fills (``benchmarks/framing.py``). A second
engine call on a square in which the first answer's lungs span ``FILL`` of the
side (where the shipped model's framing curve is flat) sees the chest at another
position and scale, in the framing the model handles best. Then:

* ``"pooled"``: the two looks are pooled as one set of samples: the landmarks
  are the mean of all 2 x samples decodes, their std the std of all of them
  (so where the looks disagree, the std grows); the mu-decodes and the latents
  are the two looks' averages.
* ``"crop_only"``: when the first answer's lungs span less than
  ``CROP_ONLY_BELOW`` of the image (a wide field of view, where the first look
  drifts by 8-16 px), the crop's answer alone, latents and std included.
  Together the two rules take the held-out error from 8.17 to 7.78 px (MODEL_CARD.md).
* ``"none"``: the crop could not be an image (``second_look_square``); the
  first answer alone. It does not happen on radiographs.

``result.extra["second_look"]`` (and the JSON's ``second_look``) says which, with
the crop square; the CSV's ``Second Look`` column holds the kind ("off" without
a second look).

Whether ``predict`` looks twice by default is the engine's choice (``ModelInfo.second_look``, from
``chexmask-rt export --second-look``): the shipped model does, published checkpoints do not.
The C++ core does the same (``cpp/src/second_look.cpp``); tests hold the two equal.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .anatomy import organ_slices
from .preprocess import MIN_SIDE
from .result import Result

FILL = 0.8              # where the shipped model's framing curve is flat (MODEL_CARD.md, Framing)
CROP_ONLY_BELOW = 0.7   # measured: below it the crop alone beat the first look on all five shared images
MAX_SIDE = 65536        # the native core's largest image side
_LUNGS = slice(0, organ_slices()["left_lung"].stop)


def lung_fill(landmarks: np.ndarray, height: int, width: int) -> float:
    """How much of the image the lungs span: max(their width / the image's, their height / the image's)."""
    lungs = np.asarray(landmarks)[_LUNGS]
    return float(max(np.ptp(lungs[:, 0]) / width, np.ptp(lungs[:, 1]) / height))


def chest_square(landmarks: np.ndarray, fill: float = FILL) -> tuple[int, int, int]:
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


def second_look_square(first: Result) -> tuple[int, int, int] | None:
    """The ``chest_square`` of the first look, or None when it cannot be a sensible image: a side
    under MIN_SIDE pixels, over twice the image's longer side (or MAX_SIDE), or a non-finite first answer."""
    lungs = first.landmarks[_LUNGS]
    longest = max(first.height, first.width)
    if not np.isfinite(lungs).all() or np.ptp(lungs, axis=0).max() / FILL > 2 * longest:
        return None
    square = chest_square(first.landmarks)
    return square if MIN_SIDE <= square[2] <= min(2 * longest, MAX_SIDE) else None


def look_kind(result: Result) -> str:
    """How ``result`` was made: "pooled", "crop_only" or "none"; "off" when no second look was asked for."""
    return result.extra.get("second_look", {}).get("look", "off")


def without_second_look(first: Result) -> Result:
    """The first answer, marked as one for which a second look was asked but had no usable crop."""
    info = {"look": "none", "first_fill": lung_fill(first.landmarks, first.height, first.width)}
    return dataclasses.replace(first, extra={**first.extra, "second_look": info})


def pooled_moments(mean_a: np.ndarray, std_a: np.ndarray, mean_b: np.ndarray, std_b: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof 0) of two equally many samples, from each one's mean and std (ddof 0)."""
    mean = (mean_a + mean_b) / 2
    half_gap = (mean_a - mean_b) / 2
    return mean, np.sqrt((std_a * std_a + std_b * std_b) / 2 + half_gap * half_gap)


def combine(first: Result, crop: Result, left: int, top: int, side: int) -> Result:
    """The answer of both looks in the original image's pixels (module docstring). Its reliability
    flag is left for the caller to judge again."""
    offset = np.array([left, top], dtype=np.float64)
    crop_landmarks, crop_mu = crop.landmarks + offset, crop.landmarks_mu + offset
    fill = lung_fill(first.landmarks, first.height, first.width)
    info = {"look": "crop_only" if fill < CROP_ONLY_BELOW else "pooled", "first_fill": fill,
            "crop_left": left, "crop_top": top, "crop_side": side}
    crop_samples = None if crop.landmark_samples is None else crop.landmark_samples + offset
    if info["look"] == "crop_only":
        answer = dict(landmarks=crop_landmarks, landmarks_std=crop.landmarks_std, landmarks_mu=crop_mu,
                      latent_mu=crop.latent_mu, latent_sigma=crop.latent_sigma, landmark_samples=crop_samples)
    else:
        landmarks, std = pooled_moments(first.landmarks, first.landmarks_std, crop_landmarks, crop.landmarks_std)
        answer = dict(landmarks=landmarks, landmarks_std=std, landmarks_mu=(first.landmarks_mu + crop_mu) / 2,
                      latent_mu=(first.latent_mu + crop.latent_mu) / 2,
                      latent_sigma=(first.latent_sigma + crop.latent_sigma) / 2,
                      landmark_samples=None if crop_samples is None or first.landmark_samples is None
                      else np.concatenate([first.landmark_samples, crop_samples]))
    return dataclasses.replace(first, **answer, quality=None, extra={**first.extra, "second_look": info})
