"""What a result needs to know about the DICOM image it came from: its UIDs and its pixel spacing.

Projection radiographs carry up to two spacings (DICOM PS3.3, C.7.6.3 and C.8.11.4):

- **Pixel Spacing** (0028,0030): in the patient, at the plane of the anatomy when the
  producer calibrated it (Pixel Spacing Calibration Type says how);
- **Imager Pixel Spacing** (0018,1164): at the detector's front plane. The anatomy is
  projected onto the detector from a point source, so it appears magnified: a length
  measured with it is too long by the radiographic magnification, about 1.05-1.15 for
  a PA chest.

The rule: Pixel Spacing when present and well-formed, unless it merely repeats Imager
Pixel Spacing with no Pixel Spacing Calibration Type (0028,0A02): many producers copy the
detector's spacing there uncalibrated, and viewers read that case as the detector's
spacing, so it is taken as one. Else Imager Pixel Spacing divided by the Estimated
Radiographic Magnification Factor (0018,1114) when that is given; else Imager Pixel
Spacing as it is, with ``source`` saying so. Both attributes are
"row spacing, column spacing" in mm: the vertical then the horizontal distance between
pixel centres.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, first_line

if TYPE_CHECKING:  # result.py imports this module
    from .result import Result

UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
PIXEL_SPACING, IMAGER_PIXEL_SPACING = "PixelSpacing", "ImagerPixelSpacing"
MAGNIFICATION_CORRECTED = "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"


@dataclass(frozen=True)
class PixelSpacing:
    """Millimetres between pixel centres: ``row`` (vertical, y) and ``column`` (horizontal, x)."""

    row: float
    column: float
    source: str  # PIXEL_SPACING, IMAGER_PIXEL_SPACING or MAGNIFICATION_CORRECTED

    @property
    def at_detector(self) -> bool:
        """True when lengths are as projected on the detector, i.e. magnified."""
        return self.source == IMAGER_PIXEL_SPACING

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``measures.pixel_spacing``."""
        return {"row_mm": self.row, "column_mm": self.column, "source": self.source,
                "at_detector": self.at_detector}


@dataclass(frozen=True)
class DicomSource:
    """The identity and geometry of the source DICOM image of a result."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    spacing: PixelSpacing | None
    spacing_note: str = ""  # why a present spacing attribute was not used

    def uids(self) -> dict[str, str]:
        """The three UIDs under their DICOM keywords."""
        return dict(zip(UID_KEYWORDS, (self.study_instance_uid, self.series_instance_uid, self.sop_instance_uid)))


def _pair(ds, keyword: str) -> tuple[tuple[float, float] | None, str]:
    """A two-valued positive spacing attribute, or (None, why it is unusable); (None, "") when absent."""
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None, ""
    element = ds[keyword]
    # pydicom gives a one-valued attribute as a scalar, not a list of one
    items = element.value if element.VM > 1 else [element.value]
    try:
        values = [float(v) for v in items]
    except (TypeError, ValueError):
        return None, f"{keyword} {element.value!r} is not numeric"
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        return None, f"{keyword} {values} is not two positive numbers"
    return (values[0], values[1]), ""


def unusable_pixel_spacing(ds) -> str:
    """Why the dataset's Pixel Spacing cannot be used ("" when it is absent or usable)."""
    return _pair(ds, PIXEL_SPACING)[1]


def spacing_of(ds) -> tuple[PixelSpacing | None, str]:
    """The pixel spacing to measure with (module docstring) and a note on any attribute it had to skip."""
    notes = []
    pixel, why = _pair(ds, PIXEL_SPACING)
    notes.append(why)
    imager, why = _pair(ds, IMAGER_PIXEL_SPACING)
    if pixel is not None:
        if pixel != imager or ds.get("PixelSpacingCalibrationType"):
            return PixelSpacing(*pixel, PIXEL_SPACING), "; ".join(n for n in notes if n)
        notes.append("PixelSpacing repeats ImagerPixelSpacing without a PixelSpacingCalibrationType: "
                     "taken as the detector's spacing")
    notes.append(why)
    note = "; ".join(n for n in notes if n)
    if imager is None:
        return None, note
    given = ds.get("EstimatedRadiographicMagnificationFactor")
    try:
        magnification = float(given or 0)
    except (TypeError, ValueError):
        magnification = 0.0
    if math.isfinite(magnification) and magnification >= 1.0:  # < 1 cannot come from a point source
        return PixelSpacing(imager[0] / magnification, imager[1] / magnification, MAGNIFICATION_CORRECTED), note
    if given not in (None, ""):  # present but unusable: dropped with nothing said before
        note = "; ".join(n for n in (note, f"EstimatedRadiographicMagnificationFactor {str(given)!r} is not a "
                                     "factor >= 1: the spacing stays the detector's") if n)
    return PixelSpacing(*imager, IMAGER_PIXEL_SPACING), note


def source_of(ds) -> DicomSource:
    """The :class:`DicomSource` of a pydicom dataset."""
    spacing, note = spacing_of(ds)
    study, series, sop = (str(ds.get(k, "") or "") for k in UID_KEYWORDS)
    return DicomSource(study, series, sop, spacing=spacing, spacing_note=note)


def read_header(path: str | os.PathLike[str]):
    """A DICOM file's dataset without its pixel data; an unreadable file is an InputError naming it."""
    import pydicom

    try:
        # no warnings.catch_warnings: it swaps process-global state, and this runs beside decoder threads
        return pydicom.dcmread(Path(path), force=True, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many unrelated types on malformed input
        raise InputError(f"{path}: not a readable DICOM file ({first_line(exc)})") from None


def with_source(result: Result, image: object) -> Result:
    """``result`` with the :class:`DicomSource` of ``image`` when that is a DICOM file path; else unchanged."""
    from .dicom_io import is_dicom_file

    if not isinstance(image, (str, os.PathLike)) or not is_dicom_file(image):
        return result
    return dataclasses.replace(result, source=source_of(read_header(image)))
