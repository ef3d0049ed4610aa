"""Organ masks as ``chexmask_rt.rle.polygon_mask`` made them with OpenCV before the core rasterised
them: the reference the core's rasteriser must equal byte for byte (tests, the seeded fuzz)."""
from __future__ import annotations

import cv2
import numpy as np


def fillpoly_mask(points, height: int, width: int) -> np.ndarray:
    """``cv2.fillPoly`` (8-connected, shift 0) of ``points`` clamped to +-4 * max(h, w), truncated to int32."""
    limit = 4 * max(height, width)
    vertices = np.clip(np.asarray(points, dtype=np.float64), -limit, limit).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [vertices.reshape(-1, 1, 2)], 255)
    return mask
