"""Clinical measures from the 120 landmarks: the cardiothoracic ratio and the organ areas.

**Cardiothoracic ratio (CTR).** The classical definition (Danzer 1919; the one radiology
texts and the automated CTR literature use, e.g. Chamveha et al. 2020, arXiv:2002.07468):
the widest horizontal diameter of the heart over the widest horizontal inner diameter of
the thorax. The CheXmask database (Gaggion et al. 2024, Scientific Data; arXiv:2307.03293)
provides the contours, not a CTR formula, so that definition is applied to HybridGNet's
contours as CheXmask draws them: the lung contours outline the lung fields, whose outer
borders lie on the inner chest wall, and the heart contour the cardiac silhouette:

- heart diameter = max x - min x over the 26 heart landmarks;
- thoracic diameter = max x over the left lung's 50 landmarks (image right) minus
  min x over the right lung's 44 landmarks (image left): the distance between the two
  lungs' outer borders.

Both are horizontal extents in image columns: each side's extreme may lie on a different
row, as when a reader places the two tangents of each diameter separately. A rotated or
tilted patient biases both. The contours are polygons, so the extents over the landmarks
are the extents of the drawn outlines.

**Areas** are the areas of each organ's landmark polygon (shoelace formula), not pixel
counts of the rasterised masks (those differ by the half-pixel boundary).

**Contours that leave the image.** Where an organ's contour runs past the image's edge (a crop, a
collimated or off-centre chest), the model has extrapolated it, and a measure from it is a guess
(one side wall cut off moved a CTR from 0.457 to 0.530): that organ's area is None, and so is a
diameter (and the CTR) whose end, the organ's leftmost or rightmost landmark, lies beyond the edge;
``outside_image`` names the organs. A lung base cut off below leaves the widths measured where they
are seen. The image spans pixel centres 0 .. width - 1, so its edges lie half a pixel beyond them.
A landmark within ``EDGE_MARGIN_1024`` px (1024 frame) of an edge counts as beyond it: the model
draws an organ cut by the edge just inside it (wiki_example1 with its side wall 12 px beyond the
edge: contour 1.6 px inside, CTR 0.475 against 0.459 whole, with a std of 0.004 and no flag), and
no contour of 105 uncut real radiographs came that close.

**Millimetres**: with a :class:`chexmask_rt.dicom_source.PixelSpacing`, widths are
multiplied by the column spacing and areas by row x column spacing. The ratio has no unit.

**Uncertainty**: each measure's std (ddof 0) over the decoded landmark samples, when the
result carries them (``Result.landmark_samples``: engines exported with ``--samples-output``,
either backend; after a pooled second look, both looks' samples). Per-landmark stds alone
cannot give it: how the landmarks move together matters, and approximations from the
marginal stds as if independent were measured 0.93-1.41x off for the CTR and 1.20-3.42x off for
the areas on the shared radiographs (``python -m benchmarks.measure_std``). Without samples the std is None, and
``std_note`` says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .anatomy import organ_slices
from .dicom_source import PixelSpacing

_ORGANS = organ_slices()
ORGAN_NAMES = tuple(_ORGANS)
# No chexmask-rt model has been checked against physicians on real radiographs (MODEL_CARD.md, "Clinical
# measures"); a model that has been gets its own status here when the card records it.
VALIDATION_STATUS = "unvalidated: research use, not for diagnosis"
NO_SAMPLES = "no decoded samples in this result: the engine has no landmarks_samples output (--samples-output)"
ONE_SAMPLE = "one decoded sample (samples=1) has no spread: pass samples >= 2 for the measures' std"


def heart_diameter(landmarks: np.ndarray) -> np.ndarray:
    """Widest horizontal extent of the heart contour; ``landmarks`` (..., 120, 2)."""
    x = np.asarray(landmarks)[..., _ORGANS["heart"], 0]
    return x.max(axis=-1) - x.min(axis=-1)


def thoracic_diameter(landmarks: np.ndarray) -> np.ndarray:
    """Left lung's outermost x minus the right lung's outermost x; ``landmarks`` (..., 120, 2)."""
    pts = np.asarray(landmarks)
    return pts[..., _ORGANS["left_lung"], 0].max(axis=-1) - pts[..., _ORGANS["right_lung"], 0].min(axis=-1)


def cardiothoracic_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Heart diameter over thoracic diameter (module docstring); NaN when the thorax has no width."""
    thorax = thoracic_diameter(landmarks)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(thorax > 0, heart_diameter(landmarks) / np.where(thorax > 0, thorax, 1), np.nan)


def polygon_area(points: np.ndarray) -> np.ndarray:
    """Area of the closed polygon(s) ``points`` (..., N, 2), whatever their winding (shoelace formula)."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y).sum(axis=-1))


def _finite(value) -> float | None:
    """A float, or None where it is not finite (JSON has no NaN, and a missing value is written empty)."""
    value = float(value)
    return value if np.isfinite(value) else None


def _std(values: np.ndarray | None) -> float | None:
    return None if values is None else _finite(np.std(values))


EDGE_MARGIN_1024 = 4.0  # px of the 1024 frame: a landmark this close to an edge counts as beyond it


@dataclass(frozen=True)
class Measures:
    """The measures of one result; ``*_std`` are None without decoded samples (``std_note`` says why).
    None too: the measures of organs whose contour leaves the image (``outside_image`` names them), and
    the thoracic diameter and ``ctr`` where the thorax has no width (a contour no chest has)."""

    ctr: float | None
    ctr_std: float | None
    heart_diameter_px: float | None
    thoracic_diameter_px: float | None
    area_px2: dict[str, float | None]
    area_std_px2: dict[str, float | None]
    spacing: PixelSpacing | None = None
    samples: int = 0           # how many decoded samples the stds come from
    std_note: str = ""
    validation: str = VALIDATION_STATUS
    outside_image: tuple[str, ...] = ()  # organs whose contour runs past (or reaches) the image's edge
    ctr_cut_by: tuple[str, ...] = ()  # organs whose diameter's end at the edge withheld the CTR (the legend's reason)

    def _mm(self, px: float | None, power: int) -> float | None:
        if px is None or self.spacing is None:
            return None
        return px * (self.spacing.column if power == 1 else self.spacing.row * self.spacing.column)

    @property
    def heart_diameter_mm(self) -> float | None:
        """The heart diameter in mm (column spacing); None without a pixel spacing."""
        return self._mm(self.heart_diameter_px, 1)

    @property
    def thoracic_diameter_mm(self) -> float | None:
        """The thoracic diameter in mm (column spacing); None without a pixel spacing."""
        return self._mm(self.thoracic_diameter_px, 1)

    @property
    def area_mm2(self) -> dict[str, float | None]:
        """Each organ's area in mm2 (row x column spacing); None values without a pixel spacing."""
        return {k: self._mm(v, 2) for k, v in self.area_px2.items()}

    @property
    def area_std_mm2(self) -> dict[str, float | None]:
        """Each area's std over the decoded samples in mm2; None without a spacing or without samples."""
        return {k: self._mm(v, 2) for k, v in self.area_std_px2.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: values in px and, with a spacing, in mm; None where unknown."""
        return {
            "cardiothoracic_ratio": self.ctr, "cardiothoracic_ratio_std": self.ctr_std,
            "heart_diameter_px": self.heart_diameter_px, "thoracic_diameter_px": self.thoracic_diameter_px,
            "heart_diameter_mm": self.heart_diameter_mm, "thoracic_diameter_mm": self.thoracic_diameter_mm,
            "area_px2": self.area_px2, "area_std_px2": self.area_std_px2,
            "area_mm2": self.area_mm2, "area_std_mm2": self.area_std_mm2,
            "pixel_spacing": None if self.spacing is None else self.spacing.to_dict(),
            "std_samples": self.samples, "std_note": self.std_note, "validation": self.validation,
            "outside_image": list(self.outside_image),
        }


def _beyond(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per landmark: beyond the image's edge (pixel centres 0 .. size - 1, edges half a pixel out), or
    within EDGE_MARGIN_1024 of it."""
    edge = -0.5 + EDGE_MARGIN_1024 * max(height, width) / 1024
    x, y = points[:, 0], points[:, 1]
    return (x < edge) | (x > width - 1 - edge) | (y < edge) | (y > height - 1 - edge)


def _extreme_beyond(points: np.ndarray, beyond: np.ndarray, organ: str, side: str) -> bool:
    """Whether ``organ``'s leftmost (``side`` "min") or rightmost ("max") landmark lies beyond the edge:
    a diameter ends there. A base cut off below leaves the widths measured where they are seen."""
    sl = _ORGANS[organ]
    x = points[sl, 0]
    return bool(beyond[sl][x.argmin() if side == "min" else x.argmax()])


def measure(landmarks: np.ndarray, samples: np.ndarray | None = None, spacing: PixelSpacing | None = None,
            size: tuple[int, int] | None = None) -> Measures:
    """The measures of one landmark set (120, 2) in image pixels; their std over ``samples`` (K, 120, 2).
    ``size``: the image's (height, width), whose edges the contours are checked against (None: not checked)."""
    points = np.asarray(landmarks, dtype=np.float64)
    per_sample = None if samples is None or len(samples) < 2 else np.asarray(samples, dtype=np.float64)
    beyond = np.zeros(len(points), dtype=bool) if size is None else _beyond(points, *size)
    outside = tuple(organ for organ, sl in _ORGANS.items() if beyond[sl].any())
    cut = {"heart": _extreme_beyond(points, beyond, "heart", "min") or _extreme_beyond(points, beyond, "heart", "max"),
           "right_lung": _extreme_beyond(points, beyond, "right_lung", "min"),
           "left_lung": _extreme_beyond(points, beyond, "left_lung", "max")}  # an end of a diameter at the edge
    heart = None if cut["heart"] else float(heart_diameter(points))
    thorax = None if cut["right_lung"] or cut["left_lung"] else float(thoracic_diameter(points))
    thorax = thorax if thorax is not None and thorax > 0 else None  # a length is never negative
    ctr = None if heart is None or thorax is None else _finite(cardiothoracic_ratio(points))
    ctr_samples = None if ctr is None or per_sample is None else cardiothoracic_ratio(per_sample)
    std_note = "" if per_sample is not None else NO_SAMPLES if samples is None else ONE_SAMPLE
    if ctr_samples is not None and not np.isfinite(ctr_samples).all():  # a sample whose lungs cross
        std_note = (f"{int((~np.isfinite(ctr_samples)).sum())} of {len(ctr_samples)} samples have no thoracic "
                    "width: no CTR std")
        ctr_samples = None
    return Measures(
        ctr=ctr,
        ctr_std=_std(ctr_samples),
        heart_diameter_px=heart, thoracic_diameter_px=thorax,
        area_px2={k: None if k in outside else float(polygon_area(points[sl])) for k, sl in _ORGANS.items()},
        area_std_px2={k: None if k in outside else _std(None if per_sample is None else polygon_area(per_sample[:, sl]))
                      for k, sl in _ORGANS.items()},
        spacing=spacing, samples=0 if per_sample is None else len(per_sample),
        std_note=std_note,
        outside_image=outside,
        ctr_cut_by=tuple(organ for organ, at_edge in cut.items() if at_edge),
    )
