"""The second look (reference): a second engine call on a square around the first answer's lungs,
combined with the first ("pooled": both looks' samples as one set; "crop_only": the crop's answer
alone when the lungs span under CROP_ONLY_BELOW of the image; "none": no usable crop)."""
from __future__ import annotations

import dataclasses

import numpy as np

FILL = 0.8
CROP_ONLY_BELOW = 0.7
MIN_SIDE = 32
MAX_SIDE = 65536
LUNGS = slice(0, 94)  # right lung 0-43, left lung 44-93


def lung_fill(landmarks: np.ndarray, height: int, width: int) -> float:
    """max(the lungs' width / the image's, their height / the image's)."""
    lungs = np.asarray(landmarks)[LUNGS]
    return float(max(np.ptp(lungs[:, 0]) / width, np.ptp(lungs[:, 1]) / height))


def chest_square(landmarks: np.ndarray, fill: float = FILL) -> tuple[int, int, int]:
    """(left, top, side) of the square centred on the lungs that they span ``fill`` of."""
    lungs = np.asarray(landmarks)[LUNGS]
    low, high = lungs.min(axis=0), lungs.max(axis=0)
    side = int(np.ceil((high - low).max() / fill))
    left, top = np.floor((low + high) / 2 - side / 2).astype(int)
    return int(left), int(top), side


def crop_square(gray: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The ``side`` x ``side`` square at (left, top) of a 2-D image, materialised; zeros outside it."""
    out = np.zeros((side, side), dtype=gray.dtype)
    h, w = gray.shape
    y0, y1, x0, x1 = max(top, 0), min(top + side, h), max(left, 0), min(left + side, w)
    if y0 < y1 and x0 < x1:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = gray[y0:y1, x0:x1]
    return out


def second_look_square(first) -> tuple[int, int, int] | None:
    """The first answer's ``chest_square``, or None when it cannot be a sensible image."""
    lungs = first.landmarks[LUNGS]
    longest = max(first.height, first.width)
    if not np.isfinite(lungs).all() or np.ptp(lungs, axis=0).max() / FILL > 2 * longest:
        return None
    square = chest_square(first.landmarks)
    return square if MIN_SIDE <= square[2] <= min(2 * longest, MAX_SIDE) else None


def without_second_look(first):
    """The first answer, marked as asked for a second look that had no usable crop."""
    return dataclasses.replace(first, second_look={"look": "none",
                                                   "first_fill": lung_fill(first.landmarks, first.height, first.width)})


def pooled_moments(mean_a, std_a, mean_b, std_b) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof 0) of two equally many samples, from each one's mean and std (ddof 0)."""
    mean = (mean_a + mean_b) / 2
    half_gap = (mean_a - mean_b) / 2
    return mean, np.sqrt((std_a * std_a + std_b * std_b) / 2 + half_gap * half_gap)


def combine(first, crop, left: int, top: int, side: int):
    """Both looks' answer in the original image's pixels (module docstring)."""
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
    return dataclasses.replace(first, **answer, second_look=info)
