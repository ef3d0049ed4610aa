"""The answer for one image: landmarks and their uncertainty in original pixels.

Its engine-output fields (``landmarks``, ``landmarks_std``, ...) are not declared here: they are the
rows of the core's schema table (``cpp/include/chexmask_rt/result_fields.def``, exposed as
``chexmask_rt._core.RESULT_FIELDS``), and the JSON follows the same table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import core
from .anatomy import organ_slices
from .dicom_source import UID_KEYWORDS, DicomSource
from .measures import Measures, measure
from .notice import INTENDED_USE
from .quality import Quality

if TYPE_CHECKING:  # the 'dicom' extra's types and the core's, for type checkers only
    from highdicom.seg import Segmentation
    from highdicom.sr import ComprehensiveSR
    from pydicom import Dataset

    from . import _core

_ORGANS = organ_slices()
FIELDS: tuple[_core.FieldRow, ...] = core.RESULT_FIELDS
"""The schema table's rows (name, output, kind, unit, required, two_looks, pooled_with, json, csv, doc)."""


def _mean_in_order(values: np.ndarray) -> float:
    """The mean summed left to right, as the core sums it: NumPy's pairwise mean can differ in the
    last bit, and the reliability flag is decided on the core's value."""
    return float(np.cumsum(values)[-1] / len(values)) if len(values) else 0.0


@dataclass(frozen=True)
class SecondLook:
    """How a second look made an answer (the README's "The second look").

    ``look``: "pooled" (both looks' samples pooled), "crop_only" (a wide field of view: the crop's
    answer alone) or "none" (the crop could not be an image: the first answer alone; crop_* are 0).
    ``first_fill``: the share of the image the first answer's lungs span; ``crop_*``: the crop square
    in original pixels (it may reach past the image, where it is black)."""

    look: str
    first_fill: float
    crop_left: int = 0
    crop_top: int = 0
    crop_side: int = 0

    @classmethod
    def from_core(cls, look: _core.SecondLook) -> "SecondLook":
        """A picklable, comparable copy of a ``chexmask_rt._core.SecondLook``."""
        return cls(str(look.look), float(look.first_fill), int(look.crop_left), int(look.crop_top),
                   int(look.crop_side))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: without the crop when there was none."""
        out = {"look": self.look, "first_fill": self.first_fill}
        if self.look != "none":
            out.update(crop_left=self.crop_left, crop_top=self.crop_top, crop_side=self.crop_side)
        return out


class _ResultBase:
    """The Result's behaviour; its fields are made from the schema table below."""

    # The methods that read fields take ``self: Result``: every instance is one (the class made below
    # from the table). mypy wants a self type to be the class or a base of it, hence the ignore[misc].

    def __post_init__(self: Result) -> None:  # type: ignore[misc]
        # frozen holds for its numbers too: an in-place edit of r.right_lung (a view of landmarks) rewrote the
        # result's landmarks, measures, masks and hash. Read-only views: the caller's own arrays stay writable
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.flags.writeable:
                view = value.view()
                view.flags.writeable = False
                object.__setattr__(self, f.name, view)

    # unpickled and copied results are read-only too
    def __setstate__(self: Result, state: dict) -> None:  # type: ignore[misc]
        self.__dict__.update(state)
        self.__post_init__()

    def __repr__(self: Result) -> str:  # type: ignore[misc]
        """One line for a notebook or a log: the image, its size, the run and its verdict (the arrays'
        numbers are in the fields, ``to_dict`` or the JSON)."""
        q = self.quality
        verdict = "no reliability flag" if q is None else \
            ("FLAGGED" if q.flag else "not flagged") if q.calibrated else "reliability not calibrated"
        spread = f"{self.mean_node_std:.2f} px" if self.spread_measured else "not measured (K=1)"
        return (f"Result(image={self.image!r}, {self.width}x{self.height}, {len(self.landmarks)} landmarks, "
                f"samples={self.samples}, seed={self.seed}, model={self.model!r}, "
                f"mean_node_std={spread}, mean_latent_sigma={self.mean_latent_sigma:.4f}, {verdict})")

    def _repr_png_(self: Result) -> bytes | None:  # type: ignore[misc]
        """The overlay for a notebook (Jupyter shows it when a Result ends a cell): contours, uncertainty
        ellipses and the verdict over the image file the result names; None (the one-line repr alone)
        for a result of pixels, or when that file is gone or is no longer of the result's size (a file
        replaced by another of the same size is drawn under this result's landmarks)."""
        if not self.image:
            return None
        from .errors import ChexmaskError
        from .overlay import overlay_png

        try:
            return overlay_png(self.image, self)
        except (ChexmaskError, OSError):
            return None

    def __eq__(self: Result, other: object) -> bool:  # type: ignore[misc]
        """Every field equal, the arrays element by element (NaN equal to NaN): the dataclass default
        could not compare arrays, and equality that skipped them held for results of other images."""
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))

    # from fields equal results share: equal results hash alike
    def __hash__(self: Result) -> int:  # type: ignore[misc]
        return hash((self.image, self.height, self.width, self.samples, self.seed, self.model,
                     self.landmarks.tobytes()))

    @classmethod
    def from_core(cls: type[Result], out: _core.Result, *, model: str,  # type: ignore[misc]
                  image: str | None = None) -> Result:
        """The Python Result of a ``chexmask_rt._core.Result``: every field of the table, the flag and the look."""
        values = {f["name"]: getattr(out, f["name"]) for f in FIELDS}
        return cls(**values, height=out.height, width=out.width, samples=out.samples, seed=int(out.seed), model=model,
                   image=image, bit_depth=int(out.bit_depth), quality=Quality.from_core(out.quality),
                   second_look=None if out.second_look is None else SecondLook.from_core(out.second_look))

    @property
    def node_uncertainty(self: Result) -> np.ndarray:  # type: ignore[misc]
        """(N,) per-landmark uncertainty: (std_x + std_y) / 2, in pixels (read-only, as the fields)."""
        values = self.landmarks_std.mean(axis=1)
        values.flags.writeable = False
        return values

    @property
    def mean_node_std(self: Result) -> float:  # type: ignore[misc]
        """The paper's image score: mean node uncertainty over the landmarks (0 for one decode: see
        :attr:`spread_measured`)."""
        return _mean_in_order(self.node_uncertainty)

    @property
    def look_kind(self: Result) -> str:  # type: ignore[misc]
        """How this answer was made: "pooled", "crop_only" or "none"; "off" when no second look was asked
        for (the CSV's ``Second Look``)."""
        return "off" if self.second_look is None else self.second_look.look

    @property
    def spread_measured(self: Result) -> bool:  # type: ignore[misc]
        """Whether ``landmarks_std``, ``node_uncertainty`` and ``mean_node_std`` measure a spread: False
        for one decode (samples 1 without a pooled second look), whose std is 0 because there is nothing
        to spread, not because the model is sure. The JSON writes them as null then, the CSV leaves
        them empty. The core's ``Result::spread_measured`` states the same rule."""
        return self.samples > 1 or self.look_kind == "pooled"

    @property
    def mean_latent_sigma(self: Result) -> float:  # type: ignore[misc]
        """The paper's latent score: mean of the encoder's sigma over the latent dims."""
        return _mean_in_order(self.latent_sigma)

    @property
    def right_lung(self: Result) -> np.ndarray:  # type: ignore[misc]
        """The patient's right lung (on the image's left): landmarks 0-43, (x, y) in image pixels."""
        return self.landmarks[_ORGANS["right_lung"]]

    @property
    def left_lung(self: Result) -> np.ndarray:  # type: ignore[misc]
        """The patient's left lung (on the image's right): landmarks 44-93, (x, y) in image pixels."""
        return self.landmarks[_ORGANS["left_lung"]]

    @property
    def heart(self: Result) -> np.ndarray:  # type: ignore[misc]
        """The heart: landmarks 94-119, (x, y) in image pixels."""
        return self.landmarks[_ORGANS["heart"]]

    def measures(self: Result) -> Measures:  # type: ignore[misc]
        """Cardiothoracic ratio and organ areas, in px and (with a DICOM pixel spacing) mm, with their
        std over the decoded samples when the result has them (:mod:`chexmask_rt.measures`)."""
        return measure(self.landmarks, self.landmark_samples, None if self.source is None else self.source.spacing,
                       (self.height, self.width))

    def to_dict(self: Result) -> dict[str, Any]:  # type: ignore[misc]
        """Plain JSON-ready dict (the format of ``chexmask-rt predict --json``).

        The table's fields marked for the JSON follow the run's settings, then the scores, the second
        look and ``quality``; these keys equal what the C++ example ``chexmask-rt-cpp`` prints
        (tests/test_native.py). ``dicom`` (UIDs, empty for other inputs) and ``measures`` are the
        Python runtime's."""
        out: dict[str, Any] = {
            "image": self.image, "height": self.height, "width": self.width, "samples": self.samples,
            "seed": self.seed, "bit_depth": self.bit_depth, "model": self.model, "intended_use": INTENDED_USE}
        measured = self.spread_measured  # one decode's 0 spread is no measurement: null, as the C++ example
        for f in FIELDS:
            value = getattr(self, f["name"])
            if f["json"] and value is not None and np.size(value):
                out[f["name"]] = np.asarray(value).tolist() if measured or f["kind"] != "spread" else None
        out["node_uncertainty"] = self.node_uncertainty.tolist() if measured else None
        out["scores"] = {"mean_node_std": self.mean_node_std if measured else None,
                         "mean_latent_sigma": self.mean_latent_sigma}
        if self.second_look is not None:
            out["second_look"] = self.second_look.to_dict()
        out["quality"] = None if self.quality is None else self.quality.to_dict()
        out["dicom"] = dict.fromkeys(UID_KEYWORDS, "") if self.source is None else self.source.uids()
        out["measures"] = self.measures().to_dict()
        return out

    def organ_masks(self: Result) -> dict[str, np.ndarray]:  # type: ignore[misc]
        """Filled landmark polygons per organ ("right_lung", "left_lung", "heart"): uint8 0/255, original size."""
        from .rle import polygon_mask

        return {name: polygon_mask(self.landmarks[sl], self.height, self.width) for name, sl in _ORGANS.items()}

    def to_dicom_seg(self: Result, source_dataset: Dataset, **kwargs: Any) -> Segmentation:  # type: ignore[misc]
        """A DICOM Segmentation of the three organ masks over ``source_dataset`` (the pydicom dataset of the
        image this result came from); see :func:`chexmask_rt.dicom_out.segmentation`."""
        from .dicom_out import segmentation

        return segmentation(self, source_dataset, **kwargs)

    def to_dicom_sr(self: Result, source_dataset: Dataset, **kwargs: Any) -> ComprehensiveSR:  # type: ignore[misc]
        """A Comprehensive SR (TID 1500 measurement report) of the contours, scores and measures over
        ``source_dataset``; see :func:`chexmask_rt.dicom_out.measurement_report`."""
        from .dicom_out import measurement_report

        return measurement_report(self, source_dataset, **kwargs)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f")))
    return bool(a == b)


def _table_field(row: _core.FieldRow) -> tuple[str, object, dataclasses.Field[Any]]:
    """A dataclass field for one row of the schema table: arrays (compared by ``_ResultBase.__eq__``,
    since numpy has no truth value), optional ones None when the engine lacks the output."""
    options: dict[str, Any] = dict(repr=row["kind"] != "samples", metadata=row)
    if not row["required"]:
        options["default"] = None
    return row["name"], np.ndarray if row["required"] else np.ndarray | None, field(**options)


def _make_result() -> type:
    required = [_table_field(f) for f in FIELDS if f["required"]]
    optional = [_table_field(f) for f in FIELDS if not f["required"]]
    fixed = [("height", int), ("width", int), ("samples", int), ("seed", int), ("model", str)]
    defaults = [
        ("image", str | None, field(default=None)),
        ("quality", Quality | None, field(default=None)),  # the reliability flag; None only for hand-made Results
        ("second_look", SecondLook | None, field(default=None)),  # None: one engine call
        ("source", DicomSource | None, field(default=None)),  # UIDs and pixel spacing of a DICOM input
        ("bit_depth", int | None, field(default=None)),  # what the pixels were scaled by; None: made by hand
    ]
    cls = dataclasses.make_dataclass("Result", [*required, *fixed, *defaults, *optional], bases=(_ResultBase,),
                                     frozen=True, eq=False, repr=False)
    cls.__module__ = __name__  # picklable as chexmask_rt.result.Result (Ray, worker processes)
    cls.__doc__ = (
        "Landmarks (x, y) in the original image's pixels, with uncertainty.\n\n"
        "Fields from the schema table (chexmask_rt._core.RESULT_FIELDS, result_fields.def):\n"
        + "".join(f"    {f['name']}: {f['doc']}{'' if f['required'] else ' (None without the output)'}\n"
                  for f in FIELDS)
        + "then height, width, samples, seed, model, image, quality (chexmask_rt.quality.Quality), second_look "
          "(SecondLook, None for one engine call), source (chexmask_rt.dicom_source.DicomSource) and bit_depth "
          "(the depth the pixels were scaled by: 8, 9..16, or 32 for float; None for a Result made by hand).")
    return cls


if TYPE_CHECKING:
    @dataclass(frozen=True, eq=False, repr=False)
    class Result(_ResultBase):
        """What type checkers see of ``_make_result()``'s class: its fields, in its order
        (tests/test_schema.py checks them against the schema table)."""

        landmarks: np.ndarray
        landmarks_std: np.ndarray
        landmarks_mu: np.ndarray
        latent_mu: np.ndarray
        latent_sigma: np.ndarray
        height: int
        width: int
        samples: int
        seed: int
        model: str
        image: str | None = None
        quality: Quality | None = None
        second_look: SecondLook | None = None
        source: DicomSource | None = None
        bit_depth: int | None = None
        landmark_samples: np.ndarray | None = None
else:
    Result = _make_result()
