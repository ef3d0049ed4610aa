"""Landmark error in the frame this project states every error in."""
from __future__ import annotations

import numpy as np


def distance_1024(a_px: np.ndarray, b_px: np.ndarray, frame) -> float:
    """Mean Euclidean distance between two landmark sets of one image (its pixels), in pixels of
    the 1024 frame (the letterboxed square at CheXmask's 1024 x 1024). ``frame``: the image's
    ``_core.Letterbox`` (anything with ``to_normalised``)."""
    return float(np.linalg.norm(frame.to_normalised(a_px) - frame.to_normalised(b_px), axis=1).mean() * 1024)
