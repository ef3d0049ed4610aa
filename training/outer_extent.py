"""The lungs' outer extent: the parts of a lung outline that V7's and HybridGNet's conventions share.

V7 lung outlines include the lung behind the heart and follow the diaphragm medially; HybridGNet's
(JSRT's) stop at the heart border. Only the lateral border, the apex and the costophrenic angle
are drawn alike, so each lung is compared by three extremes of its closed outline, taken on the
outline densified to 1 px steps (so that a sparse landmark contour and a dense polygon are read
alike), in the 1024 frame:

- **lateral**: the outermost x (the smallest x for the patient's right lung, which lies on the
  image's left; the largest for the left lung);
- **top**: the smallest y (the apex);
- **bottom**: the largest y among the outline's points within ``BAND`` x the thorax width of the
  lateral extreme, where the thorax width is the distance between the two lungs' lateral
  extremes of the same outline pair. That is the costophrenic angle; the band keeps V7's
  medial diaphragm and retrocardiac lung out, which can reach lower than the angle.

The error of an image is the mean absolute difference of its six extremes (two lungs x three), in
pixels of the 1024 frame.
"""
from __future__ import annotations

import numpy as np

from chexmask_rt._core import Letterbox

BAND = 0.2
EXTREMES = ("lateral", "top", "bottom")


def densify(polygon: np.ndarray, step: float = 1.0) -> np.ndarray:
    """The closed polygon [n, 2] with points added along each edge so that none is longer than ``step``."""
    polygon = np.asarray(polygon, np.float64)
    ends = np.roll(polygon, -1, axis=0)
    pieces = []
    for a, b in zip(polygon, ends):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        pieces.append(a + (b - a) * (np.arange(n)[:, None] / n))
    return np.concatenate(pieces)


def lung_extremes(right_lung: np.ndarray, left_lung: np.ndarray) -> np.ndarray:
    """[2, 3]: (lateral x, top y, bottom y) of the patient's right lung, then of the left lung, for
    two closed outlines in one frame (see the module docstring)."""
    right, left = densify(right_lung), densify(left_lung)
    lateral = np.array([right[:, 0].min(), left[:, 0].max()])
    width = lateral[1] - lateral[0]
    out = np.empty((2, 3))
    for i, (lung, sign) in enumerate(((right, 1.0), (left, -1.0))):
        near = sign * (lung[:, 0] - lateral[i]) <= BAND * width
        out[i] = lateral[i], lung[:, 1].min(), lung[near, 1].max()
    return out


def extremes_1024(right_lung: np.ndarray, left_lung: np.ndarray, frame: Letterbox) -> np.ndarray:
    """``lung_extremes`` of two outlines given in an image's pixels, in its 1024 frame."""
    return lung_extremes(frame.to_normalised(right_lung) * 1024, frame.to_normalised(left_lung) * 1024)


# per (lung, extreme): the sign of (predicted - truth) that means the predicted lung reaches beyond
# the outline: further out (right lung: smaller x), higher (smaller y), lower (larger y)
_BEYOND = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0]])


def signed_extent_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[2, 3] differences of two ``lung_extremes`` results, positive where the predicted lung reaches
    beyond the true outline and negative where it stops short of it: a model's bias, which the
    absolute errors hide."""
    return _BEYOND * (np.asarray(predicted) - np.asarray(truth))


def extent_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[2, 3] absolute differences of two ``lung_extremes`` results."""
    return np.abs(signed_extent_errors(predicted, truth))
