"""CheXmask-U-style CSV rows and organ-mask PNGs, at the original image resolution.

Columns follow the CheXmask / CheXmask-U databases: ``Landmarks (Mean)`` and
``Landmarks (Std)`` are "x1,y1,x2,y2,..." over the 120 landmarks (RL 0-43,
LL 44-93, H 94-119); ``Right Lung``, ``Left Lung`` and ``Heart`` are the
run-length encodings (:mod:`chexmask_rt.rle`) of the filled landmark polygons;
``Height`` and ``Width`` give the mask shape. The image scores, the reliability
flag and the run's settings follow; ``Second Look`` says how the answer was made
(:attr:`chexmask_rt.Result.look_kind`). ``Landmarks (Std)`` and ``Mean Node Std`` are empty for one
decode (``Samples`` 1 without a pooled second look): its std is 0 because nothing spreads, not
because the model is sure (:attr:`chexmask_rt.Result.spread_measured`).

Results schema 2 appends, after those (whose names stay fixed), ``Results Schema`` (the row's
schema version), ``Intended Use`` (:data:`chexmask_rt.notice.INTENDED_USE`), the source DICOM's UIDs and pixel spacing, and the clinical measures
(:mod:`chexmask_rt.measures`; empty where unknown). A file without ``Results Schema`` is
schema 1: :data:`COLUMNS_V1` alone. Schema 3 appends ``Bit Depth``, the depth the pixels were
scaled by (:attr:`chexmask_rt.Result.bit_depth`).

Which result fields are written, and under which column, is the schema table's ``csv`` column
(``chexmask_rt._core.RESULT_FIELDS``): the landmark columns of schema 1 are its first two, and the
columns of rows appended to the table later (new rows go at its end) follow schema 3's, one schema
version per new column. So every schema's header is a prefix of :data:`COLUMNS` (:data:`SCHEMA_HEADERS`), and a
folder or file of an older schema is recognised by its header and extended, never refused.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from .csv_lines import csv_line
from .dicom_source import UID_KEYWORDS
from .errors import InputError, os_reason
from .native_gate import native_call
from .notice import INTENDED_USE
from .png_mark import marked
from .result import FIELDS, Result
from .rle import encode
from .whole_files import write_bytes_whole, write_text_whole

_FIELD_COLUMNS = {f["csv"]: f["name"] for f in FIELDS if f["csv"]}  # CSV column -> Result field, table order
_SPREAD_FIELDS = {f["name"] for f in FIELDS if f["kind"] == "spread"}  # empty where the spread is not measured
_MASK_COLUMNS = {"right_lung": "Right Lung", "left_lung": "Left Lung", "heart": "Heart"}
_V1_FIELDS = tuple(_FIELD_COLUMNS)[:2]  # CheXmask's Landmarks (Mean) and (Std): the table's first columns
COLUMNS_V1 = ("Image", *_V1_FIELDS, *_MASK_COLUMNS.values(), "Height", "Width",
              "Mean Node Std", "Mean Latent Sigma", "Quality Flag", "Quality Reason", "Samples", "Seed", "Model",
              "Second Look")
_AREA_KINDS = ("(px2)", "Std (px2)", "(mm2)", "Std (mm2)")  # after "<organ> Area "
_AREA_COLUMNS = [f"{name} Area {what}" for name in _MASK_COLUMNS.values() for what in _AREA_KINDS]
COLUMNS_V2 = COLUMNS_V1 + ("Results Schema", "Intended Use", *UID_KEYWORDS, "Pixel Spacing Row (mm)",
                           "Pixel Spacing Column (mm)", "Pixel Spacing Source", "CTR", "CTR Std", "Heart Diameter (px)",
                           "Thoracic Diameter (px)", "Heart Diameter (mm)", "Thoracic Diameter (mm)", *_AREA_COLUMNS,
                           "Measures Validation")
COLUMNS_V3 = COLUMNS_V2 + ("Bit Depth",)
_LATER_FIELDS = tuple(c for c in _FIELD_COLUMNS if c not in COLUMNS_V3)  # one schema version each
COLUMNS = COLUMNS_V3 + _LATER_FIELDS
SCHEMA_HEADERS = (COLUMNS_V1, COLUMNS_V2, COLUMNS_V3,
                  *(COLUMNS_V3 + _LATER_FIELDS[:k + 1] for k in range(len(_LATER_FIELDS))))
"""The header of each results schema, version k + 1 at index k: each one a prefix of the next."""
SCHEMA_VERSION = len(SCHEMA_HEADERS)


def schema_of(header: Sequence[str]) -> int | None:
    """The results schema whose header is ``header`` (a sequence of column names), or None."""
    header = tuple(header)
    return next((k + 1 for k, known in enumerate(SCHEMA_HEADERS) if known == header), None)


def _coords(points: np.ndarray) -> str:
    # 3 decimals = 1/1000 px: far below the model's error, and rows stay short. Cut towards zero, not
    # rounded: the masks truncate each coordinate to an integer (rle.polygon_mask), and 716.9998 written
    # as 717.000 would rasterise a pixel further than the row's own RLE.
    cut = np.trunc(np.asarray(points, dtype=np.float64).reshape(-1) * 1000) / 1000
    return ",".join(f"{v:.3f}" for v in cut)


def csv_row(result: Result) -> dict[str, str]:
    """The CSV row of one :class:`chexmask_rt.Result`, keyed by :data:`COLUMNS`."""
    row = {"Image": result.image or ""}
    measured = result.spread_measured  # one decode's 0 spread is no measurement: left empty
    for column, name in _FIELD_COLUMNS.items():  # the schema table's fields, empty when the engine lacks one
        value = getattr(result, name)
        row[column] = "" if value is None or (not measured and name in _SPREAD_FIELDS) else _coords(value)
    for organ, mask in result.organ_masks().items():
        row[_MASK_COLUMNS[organ]] = encode(mask)
    q = result.quality
    row.update({"Height": str(result.height), "Width": str(result.width),
                "Mean Node Std": f"{result.mean_node_std:.6g}" if measured else "", "Mean Latent Sigma": f"{result.mean_latent_sigma:.6g}",
                "Quality Flag": "" if q is None else str(q.flag), "Quality Reason": "" if q is None else q.reason,
                "Samples": str(result.samples), "Seed": str(result.seed), "Model": result.model,
                "Second Look": result.look_kind, "Results Schema": str(SCHEMA_VERSION),
                "Intended Use": INTENDED_USE, "Bit Depth": "" if result.bit_depth is None else str(result.bit_depth)})
    row.update(_source_columns(result.source))
    row.update(_measure_columns(result.measures()))
    return {k: row[k] for k in COLUMNS}


def _number(value: float | None) -> str:
    """Six significant digits, never in exponent form (a full-size radiograph's lung area came out as
    1.08123e+06, which spreadsheet and database imports may read as text)."""
    if value is None:
        return ""
    return np.format_float_positional(value, precision=6, unique=False, fractional=False, trim="-")


def _source_columns(source) -> dict[str, str]:
    spacing = None if source is None else source.spacing
    uids = dict.fromkeys(UID_KEYWORDS, "") if source is None else source.uids()
    return {**uids, "Pixel Spacing Row (mm)": _number(None if spacing is None else spacing.row),
            "Pixel Spacing Column (mm)": _number(None if spacing is None else spacing.column),
            "Pixel Spacing Source": "" if spacing is None else spacing.source}


def _measure_columns(m) -> dict[str, str]:
    row = {"CTR": _number(m.ctr), "CTR Std": _number(m.ctr_std), "Measures Validation": m.validation}
    for name, px, mm in (("Heart", m.heart_diameter_px, m.heart_diameter_mm),
                         ("Thoracic", m.thoracic_diameter_px, m.thoracic_diameter_mm)):
        row.update({f"{name} Diameter (px)": _number(px), f"{name} Diameter (mm)": _number(mm)})
    values = dict(zip(_AREA_KINDS, (m.area_px2, m.area_std_px2, m.area_mm2, m.area_std_mm2)))
    for organ, name in _MASK_COLUMNS.items():
        row.update({f"{name} Area {what}": _number(areas[organ]) for what, areas in values.items()})
    return row


def parse_coords(text: str) -> np.ndarray:
    """Inverse of the ``Landmarks (...)`` columns: (N, 2) float array."""
    return np.array([float(v) for v in text.split(",")], dtype=np.float64).reshape(-1, 2)


def csv_text(results: Iterable[Result]) -> str:
    """Header plus one row per result, as a string."""
    rows = (csv_row(r) for r in results)
    return csv_line(COLUMNS) + "".join(csv_line([row.get(c, "") for c in COLUMNS]) for row in rows)


def write_csv(path: str | os.PathLike[str], results: Iterable[Result]) -> None:
    """Write ``results`` as a CSV file (header + rows); an unwritable path is an InputError naming it."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_whole(path, csv_text(results))
    except OSError as exc:
        raise InputError(f"{path}: cannot write CSV ({os_reason(exc)})") from exc


MASK_WRITER = "mask"  # the mark in every mask PNG (png_mark)


def write_masks(folder: str | os.PathLike[str], stem: str, result: Result) -> list[Path]:
    """Write ``<stem>_right_lung.png``, ``_left_lung.png``, ``_heart.png`` (0/255, original size) into ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the mask folder ({os_reason(exc)})") from exc
    written = []
    for organ, mask in result.organ_masks().items():
        out = folder / f"{stem}_{organ}.png"
        try:
            with native_call():  # OpenCV releases the GIL: a fork and the exit wait for it (native_gate)
                ok, png = cv2.imencode(".png", mask)
            if ok:  # marked: predict --masks replaces only masks of its own (png_mark)
                write_bytes_whole(out, marked(png.tobytes(), MASK_WRITER))
        except (OSError, cv2.error) as exc:  # e.g. a full disk, a name too long for the file system
            raise InputError(f"{out}: cannot write the mask picture ({os_reason(exc)})") from None
        if not ok:
            raise InputError(f"{out}: cannot write the mask picture")
        written.append(out)
    return written
