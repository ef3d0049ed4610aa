"""DICOM results a reading workstation opens: a Segmentation (SEG) and a measurement report (SR).

Both are written by highdicom (the ``dicom`` extra: ``pip install 'chexmask-rt[dicom]'``),
over the pydicom dataset of the image the result came from, whose Study, Series and SOP
Instance UIDs they reference (and whose patient and study modules they carry over):

- :func:`segmentation`: a binary SEG with three segments (right lung, left lung, heart),
  SNOMED CT coded (segmented property type Lung with laterality Right / Left, and Heart;
  category Anatomical Structure); each segment is :meth:`chexmask_rt.Result.organ_masks`.
- :func:`measurement_report`: a Comprehensive SR holding a TID 1500 Imaging Measurement
  Report. One planar ROI group per organ: its contour as a closed POLYLINE (SCOORD, image
  pixel coordinates), its area and the area's std over the decoded samples. One image-level
  group: the cardiothoracic ratio and its std, the heart and thoracic diameters, the mean node
  std and mean latent sigma, and as qualitative evaluations the reliability flag and the
  measures' validation status. With a pixel spacing in ``source_dataset``
  (:func:`chexmask_rt.dicom_source.spacing_of`) lengths are in mm and areas in mm2; without one
  in pixels (UCUM annotations ``{pixels}`` and ``{square pixels}``, see ``_units``).

A result read from a DICOM file names its SOP Instance; both functions refuse a source dataset
of another image.

Concepts with no standard code (the CTR, the image scores, the flag) use the private
coding scheme ``99CHEXMASKRT``, declared in the SR's Coding Scheme Identification Sequence.
Both objects say "research use, not for diagnosis" in their series description and their
algorithm identification.
"""
from __future__ import annotations

import importlib.util
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .dicom_source import (IMAGER_PIXEL_SPACING, MAGNIFICATION_CORRECTED, PIXEL_SPACING, spacing_of,
                           unusable_pixel_spacing)
from .dicom_io import check_orientation
from .errors import InputError, ModelError, first_line, os_reason
from .measures import measure
from .whole_files import write_whole_unclaimed

if TYPE_CHECKING:
    from highdicom.seg import Segmentation
    from highdicom.sr import ComprehensiveSR
    from pydicom import Dataset

    from .result import Result

RESEARCH_ONLY = "research use, not for diagnosis"
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 9701, 9702
PRIVATE_SCHEME = "99CHEXMASKRT"
_ORGAN_LABELS = {"right_lung": "Right lung", "left_lung": "Left lung", "heart": "Heart"}


def require_highdicom():
    """The highdicom module, or an InputError that says how to install it."""
    if importlib.util.find_spec("highdicom") is None:
        raise InputError("DICOM SEG/SR output needs highdicom: pip install 'chexmask-rt[dicom]'")
    import highdicom

    return highdicom


@contextmanager
def _source_name_as_it_is():
    """highdicom warns about a copied Patient's Name of one component (anonymised archives write IDs there);
    it is the source's value, kept as it is, so the warning would only repeat for every image."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name",
                                category=UserWarning)
        yield


def _private(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value, PRIVATE_SCHEME, meaning)


def _version() -> str:
    from .version import __version__

    return __version__


def check_model_id_for_dicom(model_id: str) -> str:
    """The version of a model id ("name:version"; the core refuses a version holding ':'), as DICOM
    carries it: a Long String, which a version over 64 characters (an engine of an earlier exporter)
    is not; else a ModelError naming the engine. Runs before any image when DICOM outputs are asked for."""
    from . import core

    name, _, version = model_id.rpartition(":")
    problem = core.model_id_problem(name or "model", version, dicom=True)  # hand-made results may have no name
    if problem:
        raise ModelError(f"{model_id}: the engine's {problem}; re-export it with another --model-version")
    return version


def _depth(result: Result) -> dict[str, str]:
    """The bit depth the pixels were scaled by, where the result knows it (not one made by hand)."""
    return {} if result.bit_depth is None else {"bit_depth": str(result.bit_depth)}


def _algorithm_name(result) -> str:
    """The algorithm's name (LO, 64 characters at most, so the model id goes in its version and parameters)."""
    return f"chexmask-rt, {RESEARCH_ONLY}"


def _organ_codes(organ: str):
    """(segmented property type / finding type, laterality or None) of an organ."""
    from pydicom.sr.codedict import codes

    return {"right_lung": (codes.SCT.Lung, codes.SCT.Right), "left_lung": (codes.SCT.Lung, codes.SCT.Left),
            "heart": (codes.SCT.Heart, None)}[organ]


def _character_set(ds) -> dict:
    """The object's Specific Character Set as a keyword argument for highdicom, where the source's needs
    respelling: Japanese and Korean sites write ``\\ISO 2022 IR 87`` (an empty first value, which PS3.3
    C.12.1.1.2 reads as ISO 2022 IR 6), and highdicom refuses the empty value. Else {} (highdicom copies it)."""
    value = ds.get("SpecificCharacterSet")
    if not value or isinstance(value, str):
        return {}
    values = [str(v).strip() for v in value]
    return {} if values[0] else {"specific_character_set": ["ISO 2022 IR 6", *values[1:]]}


def _check_source(result, ds, series_number: int) -> None:
    from pydicom.dataset import Dataset

    # an Integer String of 1..2**31-1: 5.5 was "the source's SeriesNumber is not a valid IS", True series 1
    if isinstance(series_number, bool) or not isinstance(series_number, int) or not 1 <= series_number < 2**31:
        raise InputError(f"series_number must be an integer of 1 to {2**31 - 1}, got {series_number!r}")
    if not isinstance(ds, Dataset):  # a path is the natural slip, since predict takes paths
        raise InputError(f"the source must be the pydicom dataset of the segmented image (pydicom.dcmread(path)), "
                         f"not {type(ds).__name__}")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if (rows, cols) != (result.height, result.width):
        raise InputError(f"the source dataset is {cols}x{rows} pixels, the result {result.width}x{result.height}: "
                         "pass the dataset of the image that was segmented")
    check_orientation(ds, "the source dataset")
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID") if not ds.get(k)]
    if missing:
        raise InputError(f"the source dataset lacks {', '.join(missing)}: it cannot be referenced")
    # a result read from a DICOM file knows its image: the objects must not reference another one of the same size
    segmented = "" if result.source is None else result.source.sop_instance_uid
    if segmented and segmented != str(ds.SOPInstanceUID):
        raise InputError(f"the result is of SOP Instance {segmented}, the source dataset is {ds.SOPInstanceUID}: "
                         "pass the dataset of the image that was segmented")


def segmentation(result: Result, source_dataset: Dataset, *, series_number: int = SEG_SERIES_NUMBER) -> Segmentation:
    """A ``highdicom.seg.Segmentation`` of ``result``'s three organ masks over ``source_dataset``."""
    hd = require_highdicom()
    import numpy as np
    from highdicom.seg import SegmentAlgorithmTypeValues, SegmentDescription, Segmentation, SegmentationTypeValues
    from pydicom.sr.codedict import codes

    _check_source(result, source_dataset, series_number)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_algorithm_name(result), family=codes.cid7162.ArtificialIntelligence, version=check_model_id_for_dicom(result.model),
        source=f"chexmask-rt {_version()}",
        parameters={"model": result.model, "samples": str(result.samples), "seed": str(result.seed),
                    "second_look": result.look_kind, **_depth(result), "use": RESEARCH_ONLY})
    masks = result.organ_masks()
    descriptions = []
    for number, organ in enumerate(masks, start=1):
        anatomy, laterality = _organ_codes(organ)
        description = SegmentDescription(
            segment_number=number, segment_label=_ORGAN_LABELS[organ],
            segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=anatomy,
            algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=hd.UID(), tracking_id=f"{_ORGAN_LABELS[organ]} contour")
        if laterality is not None:
            # DICOM codes a lung's side as a modifier of the property type (PS3.3 C.8.20.2)
            from pydicom.dataset import Dataset

            modifier = Dataset()
            modifier.CodeValue, modifier.CodingSchemeDesignator = laterality.value, laterality.scheme_designator
            modifier.CodeMeaning = laterality.meaning
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(description)
    pixels = np.stack([m > 0 for m in masks.values()], axis=-1)[None]  # (frames, rows, columns, segments)
    source = _as_highdicom_takes(source_dataset)
    if "NumberOfFrames" in source and "SharedFunctionalGroupsSequence" not in source:
        # highdicom reads any multi-frame source as an enhanced image, whose functional groups these lack
        raise InputError(f"cannot build a DICOM SEG over a multi-frame image that is not an enhanced one "
                         f"(SOP Class {source.get('SOPClassUID', '?')}); the SR can still be written")
    if "SliceThickness" not in source and all(k in source for k in ("ImagePositionPatient", "FrameOfReferenceUID")):
        # highdicom then places the frame in the patient and reads the thickness: its bare AttributeError was the message
        raise InputError("cannot build a DICOM SEG over this source image: it has an Image Position (Patient) in a "
                         "Frame of Reference, which places it in the patient, but no Slice Thickness, which a SEG of "
                         "such an image needs; the SR can still be written")
    seg = _built(lambda charset: Segmentation(
        source_images=[source], pixel_array=pixels, segmentation_type=SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="chexmask-rt",
        manufacturer_model_name=result.model[:64], software_versions=_version(), device_serial_number="none",
        series_description=f"chexmask-rt lungs and heart, {RESEARCH_ONLY}"[:64],
        content_description=RESEARCH_ONLY, content_label="LUNGS_HEART", omit_empty_frames=False, **charset),
        source, "SEG")
    # General Image, Type 2C: needed without a patient-based frame (projection radiographs have none)
    seg.PatientOrientation = source_dataset.get("PatientOrientation", "")
    # highdicom copies the source's Pixel Spacing into a Pixel Measures item without a Slice Thickness, which a
    # projection image has not got and highdicom's own reader requires; without a frame of reference the item
    # is optional (dciodvfy agrees), and the segments lie on the source's pixels through its derivation references
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PixelMeasuresSequence" in shared and "SliceThickness" not in shared.PixelMeasuresSequence[0]:
        del shared.PixelMeasuresSequence
    _valid(seg, "SEG")
    return seg


# Type 2 attributes of the source's patient and study that highdicom copies into both objects and reads
# as present: anonymisers often delete them (the source is then invalid; the objects keep them empty)
_COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
                 "StudyDate", "StudyTime", "ReferringPhysicianName")


def _as_highdicom_takes(ds):
    """``ds``, or a dataset of its own over the same elements that highdicom can build on: without an
    unusable Pixel Spacing (:func:`chexmask_rt.dicom_source.spacing_of` skips it too; highdicom fails on
    one of a single value, and the SEG keeps no spacing without a Slice Thickness anyway), and with the
    patient's and study's Type 2 attributes that are missing present and empty. The caller's is left as it is."""
    missing = [keyword for keyword in _COPIED_TYPE2 if keyword not in ds]
    unusable = unusable_pixel_spacing(ds)
    if not missing and not unusable:
        return ds
    from pydicom.dataset import Dataset

    # a shallow copy would share the caller's elements, and lose or gain them with it
    adapted = Dataset({tag: ds.get_item(tag, keep_deferred=True) for tag in ds.keys()})
    if unusable:
        del adapted.PixelSpacing
    for keyword in missing:
        setattr(adapted, keyword, "")
    if hasattr(ds, "file_meta"):
        adapted.file_meta = ds.file_meta
    return adapted


def _built(make, source, what: str):
    """``make(character set keywords)``: the object in the source's character set, or, where highdicom
    refuses that set (0.28 misspells Korean ISO 2022 IR 149 and leaves Chinese IR 58 out of the code
    extensions), in UTF-8, which holds any text the source's set holds. InputError when neither builds."""
    attempts = [_character_set(source)]
    if source.get("SpecificCharacterSet"):
        attempts.append({"specific_character_set": "ISO_IR 192"})
    first = None
    for charset in attempts:
        try:
            with _source_name_as_it_is():
                return make(charset)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # highdicom's checks of the source
            first = first or exc
    raise InputError(f"cannot build a DICOM {what} over this source image ({first})")


_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR",
                       "UT"})  # the values a source's text can break (length, characters)


def _valid(obj, what: str) -> None:
    """The built object, with a malformed Patient's Age left out, checked: every top-level value valid
    for its VR (InputError naming the first that is not). highdicom copies the source's UIDs and
    patient and study attributes as they are: a Study Instance UID holding ESC and a newline, and a
    5,000-character Study Description (LO allows 64), went into objects meant for a PACS."""
    from pydicom import config
    from pydicom.multival import MultiValue
    from pydicom.valuerep import validate_value

    _drop_malformed_age(obj)
    _declare_utf8_if_needed(obj)
    for element in obj:
        if element.VR not in _TEXT_VRS or element.value is None:
            continue
        for value in element.value if isinstance(element.value, (MultiValue, list, tuple)) else [element.value]:
            try:
                validate_value(element.VR, str(value), config.RAISE)
            except ValueError as exc:
                raise InputError(f"the source's {element.keyword or element.tag} is not a valid {element.VR} "
                                 f"({first_line(exc)}); the DICOM {what} would copy it: fix the source") from None


def _declare_utf8_if_needed(obj) -> None:
    """A source without Specific Character Set may still hold non-ASCII text (old European archives write
    Latin-1 names so; pydicom reads them as Latin-1): copied into an object that declares no set either,
    the bytes were invalid for its repertoire (dciodvfy: "Character invalid"). Such an object is written
    in UTF-8, which holds the text as pydicom read it."""
    if obj.get("SpecificCharacterSet"):
        return
    for element in obj.iterall():
        values = element.value if isinstance(element.value, (list, tuple)) else [element.value]
        if element.VR in _TEXT_VRS and any(not str(v).isascii() for v in values if v is not None):
            obj.SpecificCharacterSet = "ISO_IR 192"
            return


_SPACING_CODES = {
    PIXEL_SPACING: ("PATIENT", "Pixel Spacing, in the patient"),
    IMAGER_PIXEL_SPACING: ("DETECTOR", "Imager Pixel Spacing, at the detector: lengths magnified"),
    MAGNIFICATION_CORRECTED: ("MAGCORR", "Imager Pixel Spacing divided by the estimated magnification"),
    None: ("NONE", "No pixel spacing: lengths in pixels"),
}


def _units(spacing):
    """(length unit, area unit) as UCUM codes: mm / mm2 with a spacing, else pixel annotations."""
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    if spacing is not None:
        return codes.UCUM.Millimeter, codes.UCUM.SquareMillimeter
    return CodedConcept("{pixels}", "UCUM", "pixels"), CodedConcept("{square pixels}", "UCUM", "square pixels")


def measurement_report(result: Result, source_dataset: Dataset, *,
                       series_number: int = SR_SERIES_NUMBER) -> ComprehensiveSR:
    """A ``highdicom.sr.ComprehensiveSR`` holding the TID 1500 report of ``result`` (module docstring)."""
    hd = require_highdicom()
    import numpy as np
    from highdicom import sr
    from pydicom.sr.codedict import codes

    _check_source(result, source_dataset, series_number)
    # the units follow the dataset the report references (a result of decoded pixels has no source of its own)
    m = measure(result.landmarks, result.landmark_samples, spacing_of(source_dataset)[0], (result.height, result.width))
    length, area = _units(m.spacing)
    no_units = codes.UCUM.NoUnits
    parameters = [f"model={result.model}", f"samples={result.samples}", f"seed={result.seed}",
                  f"second_look={result.look_kind}", *(f"{k}={v}" for k, v in _depth(result).items()),
                  f"chexmask-rt {_version()}"]
    algorithm = sr.AlgorithmIdentification(name=_algorithm_name(result), version=check_model_id_for_dicom(result.model),
                                           parameters=parameters)
    std = codes.SCT.StandardDeviation

    def value(name, number, unit, *, derivation=None, sites=None):
        return sr.Measurement(name=name, value=float(number), unit=unit, derivation=derivation,
                              finding_sites=sites, algorithm_id=algorithm)

    def with_std(name, number, spread, unit, sites=None):
        if number is None:  # a measure withheld (a contour leaving the image, no thorax width): none rather than NaN
            return []
        out = [value(name, number, unit, sites=sites)]
        if spread is not None:
            out.append(value(name, spread, unit, derivation=std, sites=sites))
        return out

    groups: list[sr.PlanarROIMeasurementsAndQualitativeEvaluations | sr.MeasurementsAndQualitativeEvaluations] = []
    source = _as_highdicom_takes(source_dataset)
    # from the UIDs: from_source_image also reads Modality, which a Secondary Capture may lack
    source_image = sr.SourceImageForRegion(source.SOPClassUID, source.SOPInstanceUID)
    areas = m.area_mm2 if m.spacing is not None else m.area_px2
    area_stds = m.area_std_mm2 if m.spacing is not None else m.area_std_px2
    for organ, points in (("right_lung", result.right_lung), ("left_lung", result.left_lung),
                          ("heart", result.heart)):
        anatomy, laterality = _organ_codes(organ)
        sites = [sr.FindingSite(anatomic_location=anatomy, laterality=laterality)]
        # a closed polyline repeats its first point; SCOORD's 0.0 is the top-left pixel's outer corner, where
        # the landmarks' 0 is its centre (as NumPy and OpenCV index pixels, and the masks are filled)
        closed = (np.vstack([points, points[:1]]) + 0.5).astype(np.float32)
        groups.append(sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{_ORGAN_LABELS[organ]} contour"),
            referenced_region=sr.ImageRegion(graphic_type=sr.GraphicTypeValues.POLYLINE, graphic_data=closed,
                                             source_image=source_image),
            finding_type=anatomy, finding_sites=sites, algorithm_id=algorithm,
            measurements=with_std(codes.SCT.Area, areas[organ], area_stds[organ], area)))
    mm = m.spacing is not None
    image_measures = [
        *with_std(_private("CTR", "Cardiothoracic ratio"), m.ctr, m.ctr_std, no_units),
        *with_std(codes.SCT.Diameter, m.heart_diameter_mm if mm else m.heart_diameter_px, None, length,
                  sites=[sr.FindingSite(anatomic_location=codes.SCT.Heart)]),
        *with_std(codes.SCT.Diameter, m.thoracic_diameter_mm if mm else m.thoracic_diameter_px, None, length,
                  sites=[sr.FindingSite(anatomic_location=codes.SCT.Thorax)]),
        # one decode (K = 1, no pooled second look) has no spread: its 0 is left out, not reported as measured
        *([value(_private("MNS", "Mean node standard deviation"), result.mean_node_std, _units(None)[0])]
          if result.spread_measured else []),
        value(_private("MLS", "Mean latent sigma"), result.mean_latent_sigma, no_units),
    ]
    q = result.quality
    flag = (codes.SCT.Yes if q.flag else codes.SCT.No) if q is not None and q.calibrated \
        else _private("NOTCAL", "Not calibrated for this model")
    evaluations = [
        sr.QualitativeEvaluation(_private("FLAG", "Uncertainty above calibrated threshold"), flag),
        # JSON and CSV say which spacing the lengths use; a reader of the SR needs it as much: at the
        # detector they are magnified (about 5-15 % for a chest)
        sr.QualitativeEvaluation(_private("SPACING", "Pixel spacing of the lengths and areas"),
                                 _private(*_SPACING_CODES[None if m.spacing is None else m.spacing.source])),
        sr.QualitativeEvaluation(_private("VALID", "Validation status of the measures"),
                                 _private("UNVALIDATED", "Unvalidated, research use, not for diagnosis")),
    ]
    groups.append(sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=sr.TrackingIdentifier(uid=hd.UID(), identifier="image measures"),
        algorithm_id=algorithm, measurements=image_measures, qualitative_evaluations=evaluations,
        source_images=[sr.SourceImageForMeasurementGroup(source.SOPClassUID, source.SOPInstanceUID)]))
    # why, in the JSON's and CSV's words (TID 1501 is extensible; a coded value cannot say which score
    # crossed which threshold, or that the node std was not measured); and why a measure is missing
    notes = [("REASON", "Reliability flag reason", q.reason)] if q is not None else []
    if m.outside_image:
        notes.append(("WITHHELD", "Measures left out",
                      f"contour leaves the image ({', '.join(m.outside_image)}): its area, and a diameter or the "
                      "CTR that ends on it, are not reported"))
    for code, meaning, text in notes:
        groups[-1][0].ContentSequence.append(sr.TextContentItem(
            name=_private(code, meaning), value=text, relationship_type=sr.RelationshipTypeValues.CONTAINS))
    observer = sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=_algorithm_name(result), manufacturer_name="chexmask-rt",
            model_name=result.model[:64]))
    report = sr.MeasurementReport(observation_context=sr.ObservationContext(observer_device_context=observer),
                                  procedure_reported=codes.SCT.ChestImaging, imaging_measurements=groups)
    document = _built(lambda charset: sr.ComprehensiveSR(
        evidence=[source], content=report, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="chexmask-rt",
        series_description=f"chexmask-rt measurements, {RESEARCH_ONLY}"[:64], **charset), source, "SR")
    _declare_private_scheme(document)
    _valid(document, "SR")
    return document


def _drop_malformed_age(dataset) -> None:
    """Patient's Age (AS, Type 3) copied from a source that wrote it without its unit (e.g. "62"): left out
    rather than guessed, so the object stays valid DICOM."""
    age = dataset.get("PatientAge")
    if age is not None and not re.fullmatch(r"\d{3}[DWMY]", str(age)):
        del dataset.PatientAge


def refuse_non_dicom(images, option: str) -> None:
    """InputError naming the inputs that are not DICOM files: ``option`` writes objects that reference one."""
    from .dicom_io import is_dicom_file

    others = [str(i) for i in images if not is_dicom_file(i)]
    if others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise InputError(f"{option} needs DICOM inputs (a SEG/SR references its source image); not DICOM: "
                         f"{', '.join(others[:3])}{more}")


def write_objects(result, image, stem: str, *, seg_dir=None, sr_dir=None) -> list:
    """Write ``seg_dir/<stem>.seg.dcm`` and/or ``sr_dir/<stem>.sr.dcm`` for ``result`` of the DICOM file
    ``image``; returns the paths written. A name that holds another image's object (another shard's
    or an earlier run's, into the same folder) is not written over: the object goes to
    ``<stem>_<hash of the image's SOP Instance UID>`` instead. An object that cannot be built or
    written is an InputError naming the image, raised once the other object has been tried (a source
    that takes no SEG may still take an SR)."""
    import hashlib

    from .dicom_source import read_header

    if seg_dir is None and sr_dir is None:
        return []
    source = read_header(image)
    uid = str(source.get("SOPInstanceUID", ""))
    written, failures = [], []
    for folder, suffix, build in ((seg_dir, "seg", segmentation), (sr_dir, "sr", measurement_report)):
        if folder is None:
            continue
        names = [Path(folder) / f"{stem}.{suffix}.dcm",
                 Path(folder) / f"{stem}_{hashlib.sha1(uid.encode()).hexdigest()[:8]}.{suffix}.dcm"]
        try:
            obj = build(result, source)
        except InputError as exc:
            failures.append(f"{image}: {exc}")
            continue
        try:
            names[0].parent.mkdir(parents=True, exist_ok=True)
            out = write_whole_unclaimed(names, lambda tmp: obj.save_as(tmp, enforce_file_format=True),
                                        replaces=lambda existing: uid in _references(existing))
        except OSError as exc:
            # pydicom may re-raise a write's OSError with its own multi-line message
            failures.append(f"{names[0]}: cannot write the DICOM {suffix.upper()} of {image} ({os_reason(exc)})")
            continue
        if out is None:
            failures.append(f"{names[0]} and {names[1].name} hold the objects of other images: "
                            f"not written over; no DICOM {suffix.upper()} written for {image}")
            continue
        written.append(out)
    if failures:
        done = f" (written: {', '.join(map(str, written))})" if written else ""
        raise InputError("; ".join(dict.fromkeys(failures)) + done)  # a source both refuse, said once
    return written


def _references(path) -> set[str]:
    """The SOP Instance UIDs a DICOM object references (none for a file that is not one)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    except Exception:  # pydicom raises many unrelated types on a malformed file: someone else's file
        return set()


def _declare_private_scheme(document) -> None:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "chexmask-rt local concepts"
    item.CodingSchemeResponsibleOrganization = "chexmask-rt"
    document.CodingSchemeIdentificationSequence = [item]
