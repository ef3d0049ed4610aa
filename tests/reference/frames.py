"""The letterbox frame: original image pixels <-> the model's normalised square (reference).

CheXmask zero-pads an image to a centred square of side L = max(h, w) and resizes it to S x S;
landmarks leave the engine normalised to [0, 1] of the square, so going back needs only L and
the pads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Geometry of the centred zero-pad of an image of ``height`` x ``width``."""

    height: int
    width: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @property
    def pad_left(self) -> int:
        return (self.side - self.width) // 2

    @property
    def pad_top(self) -> int:
        return (self.side - self.height) // 2

    @property
    def offset(self) -> np.ndarray:
        return np.array([self.pad_left, self.pad_top], dtype=np.float64)

    def to_original(self, points_norm: np.ndarray) -> np.ndarray:
        """Normalised (x, y) in [0, 1] of the square -> original pixels."""
        return np.asarray(points_norm, dtype=np.float64) * self.side - self.offset

    def scale_to_original(self, lengths_norm: np.ndarray) -> np.ndarray:
        """A normalised length (e.g. a std) -> original pixels."""
        return np.asarray(lengths_norm, dtype=np.float64) * self.side

    def to_normalised(self, points_px: np.ndarray) -> np.ndarray:
        """Original pixels -> normalised (x, y) of the square."""
        return (np.asarray(points_px, dtype=np.float64) + self.offset) / self.side
