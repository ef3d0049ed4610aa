"""DICOM results: SEG and TID 1500 SR read back with pydicom and highdicom, dciodvfy, UIDs, pixel spacing, CLI."""
import csv
import json
import shutil
import subprocess
import sys

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from chexmask_rt.batch import run_batch
from chexmask_rt.csv_output import COLUMNS, COLUMNS_V1, SCHEMA_VERSION
from chexmask_rt.dicom_out import RESEARCH_ONLY
from chexmask_rt.errors import InputError
from chexmask_rt.dicom_source import IMAGER_PIXEL_SPACING, MAGNIFICATION_CORRECTED, PIXEL_SPACING, spacing_of

from conftest import SHARED, write_results

DICOMS = sorted((SHARED / "data" / "dicom").glob("*.dcm"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def results(default_segmenter):
    return {path: default_segmenter.predict(path, samples=6) for path in DICOMS}


def _code(item):
    return item.CodeValue, item.CodingSchemeDesignator


@pytest.mark.parametrize("index", range(len(DICOMS)))
def test_seg_references_its_image_codes_its_segments_and_holds_the_organ_masks(results, index, tmp_path):
    path = DICOMS[index]
    r, source = results[path], pydicom.dcmread(path)
    out = tmp_path / "x.seg.dcm"
    r.to_dicom_seg(source).save_as(out)
    seg = hd.seg.segread(out)
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID and "FrameOfReferenceUID" not in source
    assert RESEARCH_ONLY in seg.SeriesDescription
    want = {1: ("Right lung", ("39607008", "SCT"), ("24028007", "SCT")),
            2: ("Left lung", ("39607008", "SCT"), ("7771000", "SCT")), 3: ("Heart", ("80891009", "SCT"), None)}
    for item in seg.SegmentSequence:
        label, anatomy, side = want[item.SegmentNumber]
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        assert item.SegmentLabel == label and _code(prop) == anatomy
        assert _code(item.SegmentedPropertyCategoryCodeSequence[0]) == ("91723000", "SCT")
        modifiers = prop.get("SegmentedPropertyTypeModifierCodeSequence", [])
        assert [_code(m) for m in modifiers] == ([side] if side else [])
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert RESEARCH_ONLY in algorithm.AlgorithmName and algorithm.AlgorithmVersion == r.model.rsplit(":", 1)[1] == "10"
        assert algorithm.AlgorithmParameters.startswith(f"model={r.model},")
    masks = r.organ_masks()
    for number, organ in enumerate(("right_lung", "left_lung", "heart"), start=1):
        got = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[number])[0, :, :, 0]
        np.testing.assert_array_equal(got > 0, masks[organ] > 0, err_msg=organ)


def test_sr_is_a_tid1500_report_of_the_contours_scores_and_measures(results, tmp_path):
    path = DICOMS[0]
    r, source = results[path], pydicom.dcmread(path)
    out = tmp_path / "x.sr.dcm"
    r.to_dicom_sr(source).save_as(out)
    sr = hd.sr.srread(out)
    assert sr.StudyInstanceUID == source.StudyInstanceUID and RESEARCH_ONLY in sr.SeriesDescription
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.ContentSequence is not None and sr.ConceptNameCodeSequence[0].CodeValue == "126000"
    m = r.measures()
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 3
    for group, points in zip(groups, (r.right_lung, r.left_lung, r.heart)):
        region = group.roi
        assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        assert region.ValueType == "SCOORD"
        # float32 contour, closed, half a pixel on: the landmarks' (0, 0) is the top-left pixel's centre,
        # SCOORD's its outer corner (PS3.3 C.18.6.1.2); it was written unshifted, half a pixel up and left
        np.testing.assert_allclose(region.value[:-1], points + 0.5, atol=1e-3)
        np.testing.assert_allclose(region.value[-1], points[0] + 0.5, atol=1e-3)
        selected_from = region.ContentSequence[0]  # the SCOORD's IMAGE item: the image it is drawn on
        assert selected_from.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        area = group.get_measurements(name=codes.SCT.Area)[0]
        assert area.unit == codes.UCUM.SquareMillimeter  # the shared DICOMs have a Pixel Spacing
    organs = ("right_lung", "left_lung", "heart")
    areas = [g.get_measurements(name=codes.SCT.Area)[0].value for g in groups]
    np.testing.assert_allclose(areas, [m.area_mm2[k] for k in organs], rtol=1e-6)
    # each area's std, in the area's unit (px2 labelled mm2 was 35x too large at the shared DICOM's spacing)
    stds = [[a for a in g.get_measurements(name=codes.SCT.Area)
             if a.derivation is not None and a.derivation == codes.SCT.StandardDeviation]
            for g in groups]
    assert [len(s) for s in stds] == [1, 1, 1] and all(s[0].unit == codes.UCUM.SquareMillimeter for s in stds)
    np.testing.assert_allclose([s[0].value for s in stds], [m.area_std_mm2[k] for k in organs], rtol=1e-6)
    # the lungs' groups tell right from left by their finding site's laterality, the heart has none
    sides = [[(site.value, getattr(site, "laterality", None)) for site in g.finding_sites] for g in groups]
    assert [[(code.meaning, side.meaning if side else None) for code, side in site] for site in sides] == \
        [[("Lung", "Right")], [("Lung", "Left")], [("Heart", None)]]
    # the private concepts (CTR, scores) name a coding scheme the document declares
    declared = sr.CodingSchemeIdentificationSequence
    assert [d.CodingSchemeDesignator for d in declared] == ["99CHEXMASKRT"]
    image = sr.content.get_image_measurement_groups()[0]
    assert image.source_images[0].referenced_sop_instance_uid == source.SOPInstanceUID
    ctr = [x for x in image.get_measurements() if x.name.value == "CTR"]
    assert len(ctr) == (1 if m.ctr_std is None else 2)  # the value, and its std when the engine gives samples
    assert ctr[0].value == pytest.approx(m.ctr, rel=1e-6)
    names = {x.name.meaning: x.value for x in image.get_measurements()}
    assert names["Mean node standard deviation"] == pytest.approx(r.mean_node_std, rel=1e-6)
    assert names["Mean latent sigma"] == pytest.approx(r.mean_latent_sigma, rel=1e-6)
    diameters = {x.finding_sites[0].value.meaning: x for x in image.get_measurements(name=codes.SCT.Diameter)}
    assert diameters["Heart"].value == pytest.approx(m.heart_diameter_mm, rel=1e-6)
    assert diameters["Thorax"].value == pytest.approx(m.thoracic_diameter_mm, rel=1e-6)  # not its pixels as mm
    assert diameters["Heart"].unit == diameters["Thorax"].unit == codes.UCUM.Millimeter
    evaluations = {e.name.meaning: e.value.meaning for e in image.get_qualitative_evaluations()}
    assert evaluations["Uncertainty above calibrated threshold"] == ("Yes" if r.quality.flag else "No")
    assert "research use, not for diagnosis" in evaluations["Validation status of the measures"]
    assert evaluations["Pixel spacing of the lengths and areas"] == "Pixel Spacing, in the patient"


def test_sr_units_follow_the_dataset_it_references_for_a_result_of_decoded_pixels(default_segmenter, tmp_path):
    """A PACS integration decodes the pixels itself: its result has no source, and the report takes the
    pixel spacing of the dataset it references (it said "square pixels" beside a Pixel Spacing)."""
    from chexmask_rt.image_io import read_image

    source = pydicom.dcmread(DICOMS[0])
    spacing = spacing_of(source)[0]
    r = default_segmenter.predict(read_image(DICOMS[0]), samples=6)
    assert r.source is None and spacing is not None
    r.to_dicom_sr(source).save_as(tmp_path / "x.sr.dcm")
    groups = hd.sr.srread(tmp_path / "x.sr.dcm").content.get_planar_roi_measurement_groups()
    areas = [g.get_measurements(name=codes.SCT.Area)[0] for g in groups]
    assert all(a.unit == codes.UCUM.SquareMillimeter for a in areas)
    px = r.measures().area_px2
    np.testing.assert_allclose([a.value for a in areas],
                               [px[k] * spacing.row * spacing.column for k in ("right_lung", "left_lung", "heart")],
                               rtol=1e-6)


def test_a_result_is_not_written_over_another_image_of_the_same_size(results):
    path = DICOMS[0]
    other = pydicom.dcmread(path)
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    for write in (results[path].to_dicom_seg, results[path].to_dicom_sr):
        with pytest.raises(InputError, match="the result is of SOP Instance"):
            write(other)


def test_dciodvfy_finds_no_errors_in_a_seg_and_an_sr(results, tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy missing: install Debian's dicom3tools (scripts/system_packages.sh --test)")
    path = DICOMS[1]
    r, source = results[path], pydicom.dcmread(path)
    for name, obj in (("seg", r.to_dicom_seg(source)), ("sr", r.to_dicom_sr(source))):
        out = tmp_path / f"x.{name}.dcm"
        obj.save_as(out, enforce_file_format=True)
        report = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, timeout=120)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (name, errors)


def _edited(tmp_path, name, **changes):
    """A copy of a shared DICOM with header attributes set (None deletes one)."""
    ds = pydicom.dcmread(DICOMS[1])
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword) if keyword in ds else None
        else:
            setattr(ds, keyword, value)
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize("changes, source, spacing", [
    ({}, PIXEL_SPACING, (0.168, 0.168)),  # as shipped
    ({"PixelSpacing": None, "ImagerPixelSpacing": [0.2, 0.15]}, IMAGER_PIXEL_SPACING, (0.2, 0.15)),
    ({"PixelSpacing": [0.18, 0.17], "ImagerPixelSpacing": [0.2, 0.2]}, PIXEL_SPACING, (0.18, 0.17)),
    ({"PixelSpacing": None, "ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 1.25},
     MAGNIFICATION_CORRECTED, (0.16, 0.16)),
    ({"PixelSpacing": [0, 0.1], "ImagerPixelSpacing": [0.2, 0.2]}, IMAGER_PIXEL_SPACING, (0.2, 0.2)),
    ({"PixelSpacing": None}, None, None),
    # the detector's spacing copied into Pixel Spacing uncalibrated is still the detector's
    ({"PixelSpacing": [0.2, 0.15], "ImagerPixelSpacing": [0.2, 0.15]}, IMAGER_PIXEL_SPACING, (0.2, 0.15)),
    ({"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 1.25},
     MAGNIFICATION_CORRECTED, (0.16, 0.16)),
    ({"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2], "PixelSpacingCalibrationType": "GEOMETRY"},
     PIXEL_SPACING, (0.2, 0.2)),
])
def test_spacing_comes_from_pixel_spacing_else_imager_pixel_spacing(tmp_path, changes, source, spacing):
    ds = pydicom.dcmread(_edited(tmp_path, "edited", **changes), stop_before_pixels=True)
    got, note = spacing_of(ds)
    if source is None:
        assert got is None
    else:
        assert got.source == source and (got.row, got.column) == pytest.approx(spacing)
        assert got.at_detector == (source == IMAGER_PIXEL_SPACING)
    assert ("PixelSpacing [0.0, 0.1]" in note) == (changes.get("PixelSpacing") == [0, 0.1])
    copied = changes.get("PixelSpacing") == changes.get("ImagerPixelSpacing") != None  # noqa: E711
    assert ("repeats ImagerPixelSpacing" in note) == (copied and "PixelSpacingCalibrationType" not in changes)


def test_objects_of_a_source_that_is_not_square(tmp_path, default_segmenter):
    """Real radiographs are rarely square (both shared DICOMs are): the size check must compare rows with
    the height, so that an 800 x 1024 source gets its objects and its transpose is refused."""
    ds = pydicom.dcmread(DICOMS[1])
    ds.set_pixel_data(np.ascontiguousarray(ds.pixel_array[:, 100:900]), "MONOCHROME2", 8)
    path = tmp_path / "narrow.dcm"
    ds.save_as(path)
    source = pydicom.dcmread(path)
    r = default_segmenter.predict(path, samples=4)
    assert (r.height, r.width) == (source.Rows, source.Columns) == (1024, 800)
    seg = r.to_dicom_seg(source)
    assert (seg.Rows, seg.Columns) == (1024, 800)
    r.to_dicom_sr(source).save_as(tmp_path / "narrow.sr.dcm")
    turned = pydicom.dcmread(path)
    turned.set_pixel_data(np.ascontiguousarray(turned.pixel_array.T), "MONOCHROME2", 8)
    for build in (r.to_dicom_seg, r.to_dicom_sr):
        with pytest.raises(InputError, match="pass the dataset of the image that was segmented"):
            build(turned)


def test_predict_cli_writes_seg_sr_uids_and_millimetres_of_an_edited_header(tmp_path, default_segmenter):
    image = _edited(tmp_path, "imager", PixelSpacing=None, ImagerPixelSpacing=[0.2, 0.1])
    proc = cli("predict", image, "--samples", 4, "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv",
               "--dicom-seg", tmp_path / "seg", "--dicom-sr", tmp_path / "sr")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "seg" / "imager.seg.dcm").is_file() and (tmp_path / "sr" / "imager.sr.dcm").is_file()
    source = pydicom.dcmread(image, stop_before_pixels=True)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["dicom"] == {k: str(source[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                               "SOPInstanceUID")}
    m = data["measures"]
    assert m["pixel_spacing"] == {"row_mm": 0.2, "column_mm": 0.1, "source": IMAGER_PIXEL_SPACING, "at_detector": True}
    assert m["heart_diameter_mm"] == pytest.approx(m["heart_diameter_px"] * 0.1)
    assert m["area_mm2"]["heart"] == pytest.approx(m["area_px2"]["heart"] * 0.02)
    # the SR says its millimetres are the detector's, as the JSON does
    image_group = hd.sr.srread(tmp_path / "sr" / "imager.sr.dcm").content.get_image_measurement_groups()[0]
    evaluations = {e.name.meaning: e.value.meaning for e in image_group.get_qualitative_evaluations()}
    assert evaluations["Pixel spacing of the lengths and areas"].endswith("at the detector: lengths magnified")
    with open(tmp_path / "r.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["SOPInstanceUID"] == source.SOPInstanceUID and row["Pixel Spacing Source"] == IMAGER_PIXEL_SPACING
    assert float(row["CTR"]) == pytest.approx(m["cardiothoracic_ratio"], rel=1e-5)
    assert row["Results Schema"] == str(SCHEMA_VERSION)
    assert (row["Pixel Spacing Row (mm)"], row["Pixel Spacing Column (mm)"]) == ("0.2", "0.1")  # not transposed
    for organ, column in (("right_lung", "Right Lung"), ("left_lung", "Left Lung"), ("heart", "Heart")):
        for kind, key in (("(px2)", "area_px2"), ("Std (px2)", "area_std_px2"), ("(mm2)", "area_mm2"),
                          ("Std (mm2)", "area_std_mm2")):
            assert float(row[f"{column} Area {kind}"]) == pytest.approx(m[key][organ], rel=1e-5), (column, kind)
    for what in ("Heart", "Thoracic"):
        for unit in ("px", "mm"):
            assert float(row[f"{what} Diameter ({unit})"]) == pytest.approx(m[f"{what.lower()}_diameter_{unit}"], rel=1e-5)


def test_non_dicom_inputs_are_refused_for_dicom_outputs(tmp_path, example1):
    for option in ("--dicom-seg", "--dicom-sr"):
        proc = cli("predict", DICOMS[0], example1, option, tmp_path / "out")
        assert proc.returncode == 3 and "needs DICOM inputs" in proc.stderr and example1.name in proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    proc = cli("predict", example1, "--json", "-", "--samples", 2)
    assert json.loads(proc.stdout)["dicom"] == dict.fromkeys(("StudyInstanceUID", "SeriesInstanceUID",
                                                              "SOPInstanceUID"), "")


@pytest.mark.parametrize("source", [str(DICOMS[0]), DICOMS[0], None])
def test_objects_asked_of_a_path_say_to_pass_the_dataset(results, source):
    """r.to_dicom_seg("image.dcm") raised AttributeError: 'str' object has no attribute 'get'."""
    result = results[DICOMS[0]]
    for build in (result.to_dicom_seg, result.to_dicom_sr):
        with pytest.raises(InputError, match=r"pydicom dataset of the segmented image \(pydicom.dcmread\(path\)\)"):
            build(source)


@pytest.mark.parametrize("number", [5.5, 2**70, "5", 0, True])
def test_a_series_number_that_dicom_cannot_hold_names_the_argument(results, number):
    """5.5 was "the source's SeriesNumber is not a valid IS" (the source was fine), "5" and 0 "cannot build
    a DICOM SEG over this source image", True series 1."""
    result = results[DICOMS[0]]
    source = pydicom.dcmread(DICOMS[0], stop_before_pixels=True)
    for build in (result.to_dicom_seg, result.to_dicom_sr):
        with pytest.raises(InputError, match=rf"series_number must be an integer of 1 to 2147483647, got {number!r}"):
            build(source, series_number=number)


def test_a_dicom_folder_that_is_a_file_is_refused_before_any_image(tmp_path, default_segmenter):
    """A --dicom-seg naming a file (or a folder below one) was found after each image's inference: batch
    put every image of the archive into errors.csv, and predict segmented before it said so."""
    (tmp_path / "afile").write_text("x")
    for folder in (tmp_path / "afile", tmp_path / "afile" / "seg"):
        proc = cli("predict", DICOMS[0], "--dicom-seg", folder, "--json", tmp_path / "p.json")
        assert proc.returncode == 3 and f"{tmp_path / 'afile'} exists and is not a folder" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "p.json").exists()
    with pytest.raises(InputError, match="--dicom-sr .*exists and is not a folder"):
        run_batch(default_segmenter, DICOMS, tmp_path / "out", samples=2, dicom_sr=tmp_path / "afile", progress=False)
    assert not (tmp_path / "out").exists()


def test_batch_writes_dicom_objects_and_resumes_a_schema_1_folder(tmp_path, default_segmenter):
    out = tmp_path / "out"
    run_batch(default_segmenter, [str(DICOMS[0])], out, samples=4, progress=False)
    # make it a folder of the previous release: its columns only, and no manifest
    (out / "batch.json").unlink()
    with open(out / "results.csv", newline="") as f:
        old = [{k: row[k] for k in COLUMNS_V1} for row in csv.DictReader(f)]
    write_results(out / "results.csv", COLUMNS_V1, old)
    summary = run_batch(default_segmenter, [str(p) for p in DICOMS], out, samples=4, progress=False,
                        dicom_seg=tmp_path / "seg", dicom_sr=tmp_path / "sr")
    assert (summary.done, summary.skipped, summary.failed) == (1, 1, 0)
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert [(r["Image"], r["Results Schema"]) for r in rows] == [(str(DICOMS[0]), "1"),
                                                                  (str(DICOMS[1]), str(SCHEMA_VERSION))]
    assert rows[0]["CTR"] == "" and rows[0]["Landmarks (Mean)"] == old[0]["Landmarks (Mean)"]
    assert (out / "batch.json").exists()  # adopted: the next resume compares the engine's sha256
    assert rows[1]["SOPInstanceUID"] == pydicom.dcmread(DICOMS[1], stop_before_pixels=True).SOPInstanceUID
    # objects only for the image segmented in this run
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == [f"{DICOMS[1].stem}.seg.dcm"]
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == [f"{DICOMS[1].stem}.sr.dcm"]


def test_a_one_valued_pixel_spacing_is_noted_as_such_and_left_out_of_the_seg(results, tmp_path):
    """A Pixel Spacing of one value was reported "not numeric", and highdicom failed to iterate it in the SEG."""
    from chexmask_rt.dicom_source import with_source

    path = _edited(tmp_path, "one", PixelSpacing=0.2)
    r = with_source(results[DICOMS[1]], path)
    assert r.source.spacing is None
    assert r.source.spacing_note == "PixelSpacing [0.2] is not two positive numbers"
    source = pydicom.dcmread(path)
    r.to_dicom_seg(source).save_as(tmp_path / "x.seg.dcm", enforce_file_format=True)
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    assert "PixelSpacing" not in seg.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence", [{}])[0]
    assert [str(s.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence] \
        == [source.SOPInstanceUID]
    assert source.PixelSpacing == 0.2  # the caller's dataset is left as it was


@pytest.mark.parametrize("charset", [["", "ISO 2022 IR 87"], ["", "ISO 2022 IR 13", "ISO 2022 IR 87"]])
def test_japanese_character_sets_with_an_empty_first_value_give_objects(results, tmp_path, charset):
    """PS3.5 Annex H writes Japanese names under "\\ISO 2022 IR 87" (empty value 1: ISO 2022 IR 6); highdicom
    refused the empty value, so such sites got no SEG or SR, and batch lost the image's row too."""
    from chexmask_rt.dicom_source import with_source

    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    path = _edited(tmp_path, "jp", SpecificCharacterSet=charset)
    ds = pydicom.dcmread(path)
    ds.PatientName = name
    ds.save_as(path)
    r, source = with_source(results[DICOMS[1]], path), pydicom.dcmread(path)
    r.to_dicom_seg(source).save_as(tmp_path / "x.seg.dcm", enforce_file_format=True)
    r.to_dicom_sr(source).save_as(tmp_path / "x.sr.dcm", enforce_file_format=True)
    for written in ("x.seg.dcm", "x.sr.dcm"):
        back = pydicom.dcmread(tmp_path / written)
        assert list(back.SpecificCharacterSet) == ["ISO 2022 IR 6", *charset[1:]]
        assert str(back.PatientName) == name


def test_objects_of_same_named_images_from_several_runs_are_not_written_over(tmp_path, default_segmenter):
    """PACS exports name every file IM0001.dcm; shards or runs into one --dicom-seg folder each wrote
    seg/IM0001.seg.dcm over the last, so all but one image's objects were lost, every run exiting 0."""
    images = []
    for i, uid in enumerate(("1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")):
        (tmp_path / f"p{i}").mkdir()
        images.append(_edited(tmp_path / f"p{i}", "IM0001", SOPInstanceUID=uid))
    seg, sr = tmp_path / "seg", tmp_path / "sr"
    for i, image in enumerate(images + images[:1]):  # two shards, then the first one again
        summary = run_batch(default_segmenter, [str(image)], tmp_path / f"out{i}", samples=2, progress=False,
                            dicom_seg=seg, dicom_sr=sr)
        assert (summary.done, summary.failed) == (1, 0)
    for folder in (seg, sr):
        referenced = sorted(uid for p in folder.iterdir() for uid in
                            {str(e.value) for e in pydicom.dcmread(p).iterall() if e.keyword == "ReferencedSOPInstanceUID"})
        assert referenced == ["1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"], folder
    assert (seg / "IM0001.seg.dcm").is_file() and len(list(seg.iterdir())) == 2  # the rerun replaced its own


def test_predict_writes_the_other_images_objects_when_one_cannot_be_built(tmp_path):
    good = _edited(tmp_path, "good")
    bad = _edited(tmp_path, "bad", StudyInstanceUID=None)  # an object must reference the study
    proc = cli("predict", bad, good, "--samples", 2, "--dicom-seg", tmp_path / "seg", "--dicom-sr", tmp_path / "sr")
    assert proc.returncode == 1, proc.stderr
    assert f"{bad}: the source dataset lacks StudyInstanceUID" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("lacks StudyInstanceUID") == 1  # both objects refuse it: said once
    assert [p.name for p in (tmp_path / "seg").iterdir()] == ["good.seg.dcm"]


def test_objects_are_refused_for_an_image_not_stored_as_displayed(results, tmp_path):
    """Patient Orientation R\\F: the image's left is the patient's left, so the lung the model calls right
    (the image's left one) is the patient's left; the objects coded it Right (SNOMED 24028007). An image
    turned by 90 degrees (H\\R, F\\L), upside down (L\\H) or lateral (A\\F) got objects too."""
    from chexmask_rt.dicom_source import with_source

    cases = {("R", "F"): "mirrored", ("RA", "F"): "mirrored", (" R", "F"): "mirrored", ("R", "H"): "turned by 180 degrees",
             ("H", "R"): "turned by 90 degrees", ("F", "L"): "turned by 90 degrees", ("L", "L"): "turned by 90 degrees",
             ("L", "H"): "upside down", ("A", "F"): "lateral", ("P", "FA"): "lateral", ("L", "A"): "lateral",
             ("L", "F"): None, ("LA", "F"): None, ("L", "FP"): None, ("", ""): None}
    for orientation, why in cases.items():
        path = _edited(tmp_path, "turned", PatientOrientation=list(orientation))
        r, source = with_source(results[DICOMS[1]], path), pydicom.dcmread(path)
        for build in (r.to_dicom_seg, r.to_dicom_sr):
            if why:
                shown = "\\\\".join(v.strip() for v in orientation)
                with pytest.raises(InputError, match=rf"the source dataset: Patient Orientation {shown}: the image is "
                                                     rf"stored .*{why}.*the lung it calls right would not be the "
                                                     r"patient's right lung"):
                    build(source)
            else:
                build(source)


def test_predict_refuses_bit_depth_for_dicom_inputs(example1):
    """A DICOM file reaches the model rendered to 16 bits; --bit-depth 12 (its Bits Stored, say) failed with
    "pixel values need 16 bits ... pass the image's real bit depth", which the user had done."""
    proc = cli("predict", example1, DICOMS[0], "--bit-depth", 12)
    assert proc.returncode == 2 and f"a DICOM file is rendered to 16 bits by its own Bits Stored, rescale and " \
        f"window: {DICOMS[0]}" in proc.stderr


def test_the_api_refuses_bit_depth_for_dicom_inputs_too(default_segmenter, example1):
    """predict(dicom, bit_depth=12) said "pixel values need 16 bits, more than bit_depth 12 ... pass the image's
    real bit depth" of a 12-bit DICOM, and took no notice of it for an 8-bit one; the CLI refused both."""
    with pytest.raises(InputError, match=rf"{DICOMS[0].name}: bit_depth is for PNG, TIFF and BMP files; .*leave it"):
        default_segmenter.predict(DICOMS[0], bit_depth=12, samples=2)
    with pytest.raises(InputError, match="bit_depth is for PNG"):
        default_segmenter.predict_batch([example1, DICOMS[0]], bit_depth=12, samples=2)
    outcomes = list(default_segmenter.predict_iter([DICOMS[0], example1], bit_depth=12, samples=2))
    assert isinstance(outcomes[0][1], InputError) and "bit_depth is for PNG" in str(outcomes[0][1])
    assert outcomes[1][1].bit_depth == 8  # the other image is answered
    assert default_segmenter.predict(DICOMS[0], samples=2).bit_depth == 8


def test_summaries_say_which_results_the_reliability_flag_marks(tmp_path):
    """The predict line and the batch summary said nothing of the flag: a flagged result read as a
    trusted one (the MONOCHROME1 copy is a negative of the MONOCHROME2 one, and flagged)."""
    mono1, mono2 = (next(p for p in DICOMS if kind in p.name) for kind in ("monochrome1", "monochrome2"))
    proc = cli("predict", mono1, mono2, "--samples", 4)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines()}
    assert "; FLAGGED, review before use: uncertainty above the calibrated threshold" in lines[str(mono1)]
    assert "FLAGGED" not in lines[str(mono2)]
    # standard output carrying the data: the lines, and the flag's warning, go to stderr (they were dropped)
    for option in ("--json", "--csv"):
        data = cli("predict", mono1, mono2, "--samples", 4, option, "-", "--no-progress")
        assert data.returncode == 0 and data.stdout.lstrip().startswith(("[", "Image")), data.stderr
        warned = {line.split(":")[0]: line for line in data.stderr.splitlines()}
        assert warned[str(mono1)] == lines[str(mono1)] and warned[str(mono2)] == lines[str(mono2)], option
    (tmp_path / "in").mkdir()
    for path in (mono1, mono2):
        shutil.copy(path, tmp_path / "in")
    proc = cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--samples", 4, "--no-progress")
    assert proc.returncode == 0 and "2 images: 2 done (1 flagged for review: Quality Flag True)" in proc.stdout


def test_predicting_an_image_stored_mirrored_is_refused_not_answered_with_swapped_lungs(tmp_path, default_segmenter):
    """The SEG and SR refused a mirrored image (Patient Orientation R\\\\F), but predict answered it: its JSON and
    CSV named the patient's left lung right_lung, with exit 0 and no flag."""
    mirrored = _edited(tmp_path, "mirrored", PatientOrientation=["R", "F"])
    proc = cli("predict", mirrored, "--samples", 2, "--json", tmp_path / "r.json")
    assert proc.returncode == 3 and not (tmp_path / "r.json").exists(), proc.stdout + proc.stderr
    assert f"{mirrored}: Patient Orientation R\\F: the image is stored mirrored" in proc.stderr
    with pytest.raises(InputError, match="the lung it calls right would not be the patient's right lung"):
        default_segmenter.predict(mirrored, samples=2)
    conventional = _edited(tmp_path, "conventional", PatientOrientation=["L", "F"])
    assert default_segmenter.predict(conventional, samples=2).landmarks.shape == (120, 2)


def _view_code(meaning: str) -> Sequence:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10236", "SRT", meaning
    return Sequence([code])


def test_a_lateral_view_marked_by_its_view_position_is_refused(tmp_path, default_segmenter):
    """CR and DX mark a lateral by View Position LL or RL (or its View Code Sequence) and leave Patient
    Orientation empty: it was answered as a frontal chest, exit 0, lungs drawn over a side view."""
    for name, changes, said in (("ll", {"ViewPosition": "LL"}, "View Position LL (left lateral)"),
                                ("rl", {"ViewPosition": "RL"}, "View Position RL (right lateral)"),
                                ("coded", {"ViewPosition": None, "ViewCodeSequence": _view_code("left lateral")},
                                 "View Code Sequence 'left lateral'")):
        lateral = _edited(tmp_path, name, **changes)
        proc = cli("predict", lateral, "--samples", 2, "--json", tmp_path / f"{name}.json")
        assert proc.returncode == 3 and not (tmp_path / f"{name}.json").exists(), proc.stdout + proc.stderr
        assert f"{lateral}: {said}: a lateral view" in proc.stderr
        with pytest.raises(InputError, match="the model reads frontal"):
            default_segmenter.predict(lateral, samples=2)
    for view in ("PA", "AP", "LLD"):  # a decubitus film is a frontal projection
        frontal = _edited(tmp_path, view, ViewPosition=view, ViewCodeSequence=_view_code("postero-anterior"))
        assert default_segmenter.predict(frontal, samples=2).landmarks.shape == (120, 2)


def test_a_version_dicom_cannot_carry_is_the_engines_fault(default_segmenter, example1):
    """An engine not from this exporter may carry a version over 64 characters: DICOM outputs wrote a
    non-conformant Long String; now the engine is named, not the image."""
    from chexmask_rt import ModelError
    from chexmask_rt.dicom_out import check_model_id_for_dicom

    result = default_segmenter.predict(example1, samples=2)
    assert check_model_id_for_dicom(result.model) == result.model.rpartition(":")[2]
    with pytest.raises(ModelError, match="is longer than 64 characters, which DICOM outputs cannot carry"):
        check_model_id_for_dicom("toy:" + "v" * 70)


def test_an_engine_whose_version_dicom_cannot_carry_fails_before_any_image(tmp_path):
    """A batch ran inference on every image and recorded the ModelError for each (exit 1); predict
    raised it after the first image's inference."""
    import subprocess
    import sys

    import chexmask_rt
    from chexmask_rt import ModelError
    from chexmask_rt.batch import run_batch
    from toy_engine import write_toy_engine

    engine = write_toy_engine(tmp_path / "old.onnx", metadata={"model_version": "v" * 70})
    seg = chexmask_rt.load(engine)  # it loads: only DICOM outputs cannot carry its version
    with pytest.raises(ModelError, match="is longer than 64 characters"):
        run_batch(seg, [str(DICOMS[0])], tmp_path / "out", samples=2, progress=False, dicom_seg=tmp_path / "seg")
    assert not (tmp_path / "out").exists() and not (tmp_path / "seg").exists()
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(DICOMS[0]), "--model", str(engine),
                           "--samples", "2", "--dicom-sr", str(tmp_path / "sr")], capture_output=True, text=True)
    assert proc.returncode == 4 and "is longer than 64 characters" in proc.stderr and proc.stdout == ""


def _image_group_items(sr_document):
    """The image-level group's direct items as (concept meaning, value type, value)."""
    group = sr_document.content.get_image_measurement_groups()[0]
    items = []
    for item in group[0].ContentSequence:
        value = item.get("TextValue") or (item.MeasuredValueSequence[0].NumericValue
                                          if "MeasuredValueSequence" in item else None)
        items.append((item.ConceptNameCodeSequence[0].CodeMeaning, item.ValueType, value))
    return items


def test_the_sr_says_why_it_flags_and_what_it_did_not_measure(default_segmenter, results, tmp_path):
    """The SR held only "flag: Yes/No": not which score crossed which threshold, nor (at K = 1) that the
    node std was not measured, which it reported as 0.0 px beside "No"; nor why a measure was missing."""
    import dataclasses

    path = DICOMS[1]
    source = pydicom.dcmread(path)

    def report(result, name):
        result.to_dicom_sr(source).save_as(tmp_path / name, enforce_file_format=True)
        return _image_group_items(hd.sr.srread(tmp_path / name))

    one = default_segmenter.predict(path, samples=1)
    items = report(one, "one.sr.dcm")
    names = [name for name, _, _ in items]
    assert "Mean node standard deviation" not in names and "Mean latent sigma" in names
    assert ("Reliability flag reason", "TEXT", one.quality.reason) in items
    assert "mean node std not measured: one sample" in one.quality.reason

    r = results[path]
    items = report(r, "k.sr.dcm")
    assert ("Reliability flag reason", "TEXT", r.quality.reason) in items
    assert [name for name, _, _ in items].count("Mean node standard deviation") == 1
    assert not [name for name, _, _ in items if name == "Measures left out"]

    beyond = r.landmarks.copy()
    beyond[44:94, 0] += r.width  # the left lung past the right edge: its area and the CTR are withheld
    items = report(dataclasses.replace(r, landmarks=beyond), "out.sr.dcm")
    notes = [value for name, _, value in items if name == "Measures left out"]
    assert notes == ["contour leaves the image (left_lung): its area, and a diameter or the CTR that ends on it, "
                     "are not reported"]
    assert not [name for name, _, _ in items if name == "CTR"]


def _dciodvfy_errors(path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy missing: install Debian's dicom3tools (scripts/system_packages.sh --test)")
    report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]


def _objects_of(results, tmp_path, name, *, edit=None, **changes):
    """write_objects over a shared DICOM edited by ``changes`` (and ``edit(ds)``): (paths written, error text)."""
    from chexmask_rt.dicom_out import write_objects
    from chexmask_rt.dicom_source import with_source

    path = _edited(tmp_path, name, **changes)
    if edit is not None:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    result = with_source(results[DICOMS[1]], path)
    try:
        return write_objects(result, path, name, seg_dir=tmp_path / "seg", sr_dir=tmp_path / "sr"), ""
    except InputError as exc:
        return [], str(exc)


def test_a_secondary_capture_without_modality_gets_both_objects(results, tmp_path):
    """highdicom's from_source_image read Modality outside the checks: a raw AttributeError ended predict
    for every image after it, and batch wrote the SEG without its SR."""
    written, error = _objects_of(results, tmp_path, "sc", SOPClassUID="1.2.840.10008.5.1.4.1.1.7", Modality=None)
    assert error == "" and sorted(p.name for p in written) == ["sc.seg.dcm", "sc.sr.dcm"]
    sr = hd.sr.srread(tmp_path / "sr" / "sc.sr.dcm")
    group = sr.content.get_image_measurement_groups()[0]
    assert group.source_images[0].referenced_sop_instance_uid == pydicom.dcmread(DICOMS[1]).SOPInstanceUID
    for p in written:
        assert not _dciodvfy_errors(p), p


@pytest.mark.parametrize("charset, name", [(["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동"),
                                           (["", "ISO 2022 IR 58"], "Zhang^SanFeng=张^三丰")])
def test_korean_and_chinese_sources_get_objects_in_utf8(results, tmp_path, charset, name):
    """highdicom 0.28 refuses Korean ISO 2022 IR 149 (its enum spells it IR 159) and Chinese IR 58 (not among
    its code extensions): such sites got no SEG or SR. The objects are now written in UTF-8, same names."""
    def named(ds):
        ds.PatientName = name

    written, error = _objects_of(results, tmp_path, "cjk", edit=named, SpecificCharacterSet=charset)
    assert error == "" and len(written) == 2
    source_name = str(pydicom.dcmread(tmp_path / "cjk.dcm").PatientName)  # as pydicom reads the source
    assert source_name == name or "IR 58" in charset[1]  # pydicom writes IR 58 without its escape sequences
    for p in written:
        back = pydicom.dcmread(p)
        assert back.SpecificCharacterSet == "ISO_IR 192" and str(back.PatientName) == source_name
        assert not _dciodvfy_errors(p), p


def test_a_source_with_latin1_names_and_no_character_set_gets_objects_in_utf8(results, tmp_path):
    """Old European archives write Latin-1 names without Specific Character Set; pydicom reads them as
    Latin-1. The objects copied the text with no set declared either: dciodvfy's "Character invalid for
    character repertoire", and a PACS may garble or refuse the name."""
    def latin1(ds):
        ds.PatientName = "Müller^Jürgen".encode("latin-1")  # written as these bytes
        ds.ReferringPhysicianName = "Gödel^Kurt".encode("latin-1")

    written, error = _objects_of(results, tmp_path, "latin1", edit=latin1, SpecificCharacterSet=None)
    assert error == "" and len(written) == 2
    assert "SpecificCharacterSet" not in pydicom.dcmread(tmp_path / "latin1.dcm")
    for p in written:
        back = pydicom.dcmread(p)
        assert back.SpecificCharacterSet == "ISO_IR 192" and str(back.PatientName) == "Müller^Jürgen"
        assert not _dciodvfy_errors(p), p
    plain, error = _objects_of(results, tmp_path, "ascii", SpecificCharacterSet=None)  # ASCII text: no set added
    assert error == "" and all("SpecificCharacterSet" not in pydicom.dcmread(p) for p in plain)


def test_a_one_frame_multi_frame_secondary_capture_gets_its_sr_and_a_clear_refusal_of_the_seg(results, tmp_path):
    """highdicom reads any multi-frame source as an enhanced one ("no attribute SharedFunctionalGroupsSequence"),
    and the refused SEG kept the SR, which could be built, from being written."""
    written, error = _objects_of(results, tmp_path, "mf", SOPClassUID="1.2.840.10008.5.1.4.1.1.7.2", NumberOfFrames=1)
    assert "cannot build a DICOM SEG over a multi-frame image that is not an enhanced one" in error
    assert f"written: {tmp_path / 'sr' / 'mf.sr.dcm'}" in error and (tmp_path / "sr" / "mf.sr.dcm").is_file()
    assert not (tmp_path / "seg").exists() or not list((tmp_path / "seg").iterdir())


def test_a_source_placed_in_the_patient_without_a_slice_thickness_is_refused_in_words(results, tmp_path):
    """highdicom reads Slice Thickness for a source with an Image Position (Patient) in a Frame of Reference:
    the refusal said only "'FileDataset' object has no attribute 'SliceThickness'". Other combinations build."""
    from pydicom.uid import generate_uid

    placed = dict(FrameOfReferenceUID=generate_uid(), ImagePositionPatient=[0, 0, 0],
                  ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    written, error = _objects_of(results, tmp_path, "placed", **placed)
    assert "has an Image Position (Patient) in a Frame of Reference" in error and "no Slice Thickness" in error
    assert f"written: {tmp_path / 'sr' / 'placed.sr.dcm'}" in error and (tmp_path / "sr" / "placed.sr.dcm").is_file()
    for name, changes in (("thick", {**placed, "SliceThickness": 1}), ("oriented", {**placed, "ImagePositionPatient": None}),
                          ("unreferenced", {**placed, "FrameOfReferenceUID": None})):
        written, error = _objects_of(results, tmp_path, name, **changes)
        assert error == "" and len(written) == 2, (name, error)


def test_a_source_an_anonymiser_stripped_of_type_2_attributes_gets_objects(results, tmp_path):
    """A missing Patient ID, Patient's Name, Study Date... (deleted rather than emptied) was refused with
    "'FileDataset' object has no attribute 'PatientID'"; the objects now hold them empty, as Type 2 allows."""
    from chexmask_rt.dicom_out import _COPIED_TYPE2

    written, error = _objects_of(results, tmp_path, "anon", **dict.fromkeys(_COPIED_TYPE2))
    assert error == "" and len(written) == 2
    for p in written:
        back = pydicom.dcmread(p)
        assert all(keyword in back and not back.get(keyword) for keyword in ("PatientID", "PatientName", "StudyDate"))
        assert not _dciodvfy_errors(p), p
    assert "PatientID" in pydicom.dcmread(DICOMS[1])  # the source file itself is not touched


def test_predict_writes_the_other_images_objects_when_a_writer_fails_unexpectedly(tmp_path, monkeypatch, capsys):
    """An object writer's surprise (highdicom's AttributeError on a source without Modality was one) ended
    predict with a traceback before the other images' objects; now that image fails alone, as in batch."""
    from chexmask_rt import cli, dicom_out

    good, odd = _edited(tmp_path, "good"), _edited(tmp_path, "odd")
    real = dicom_out.write_objects

    def surprised(result, image, stem, **dirs):
        if stem == "odd":
            raise AttributeError("'FileDataset' object has no attribute 'Modality'")
        return real(result, image, stem, **dirs)

    monkeypatch.setattr(dicom_out, "write_objects", surprised)
    assert cli.main(["predict", str(odd), str(good), "--samples", "2", "--dicom-seg", str(tmp_path / "seg")]) == 1
    err = capsys.readouterr().err
    assert f"{odd}: AttributeError: 'FileDataset' object has no attribute 'Modality'" in err and "Traceback" not in err
    assert [p.name for p in (tmp_path / "seg").iterdir()] == ["good.seg.dcm"]


@pytest.mark.parametrize("keyword, value", [("StudyInstanceUID", "1.2.3\x1b]0;x\x07\n,=cmd"),
                                            ("StudyDescription", "x" * 5000), ("AccessionNumber", "A" * 40)])
def test_a_source_value_invalid_for_its_vr_is_not_copied_into_an_object(results, tmp_path, keyword, value):
    """highdicom copies the source's UIDs and patient and study attributes as they are: a UID holding ESC
    and a newline, a 5,000-character Study Description (LO: 64) went into SEG and SR for a PACS."""
    with pydicom.config.disable_value_validation():
        written, error = _objects_of(results, tmp_path, "odd", **{keyword: value})
    assert written == [] and f"the source's {keyword} is not a valid " in error and "fix the source" in error
    assert not list((tmp_path / "seg").glob("*.dcm")) and not list((tmp_path / "sr").glob("*.dcm"))


def test_every_value_of_a_multi_valued_source_attribute_is_checked(results, tmp_path):
    with pydicom.config.disable_value_validation():
        written, error = _objects_of(results, tmp_path, "odd", AccessionNumber="A\\" + "A" * 40)  # SH: 16 at most
    assert written == [] and "the source's AccessionNumber is not a valid SH" in error, error


def test_bit_depth_for_one_dicom_names_it_alone(example1):
    proc = cli("predict", example1, DICOMS[0], "--bit-depth", 12)
    assert proc.returncode == 2 and proc.stderr.rstrip("\n").endswith(f"window: {DICOMS[0]}"), proc.stderr


def test_an_overlong_patient_name_is_not_copied(results, tmp_path):
    with pydicom.config.disable_value_validation():
        written, error = _objects_of(results, tmp_path, "odd", PatientName="D" * 100)  # PN: 64 a component group
    assert written == [] and "the source's PatientName is not a valid PN" in error, error


def _texts(dataset) -> list[str]:
    """Every text value in a dataset and its sequences."""
    found = []
    for element in dataset.iterall():
        if isinstance(element.value, str):
            found.append(element.value)
    return found


def test_seg_and_sr_record_which_look_made_the_answer(default_segmenter):
    """One call and a pooled second look give different masks (4,826 pixels on this image) and stds over K
    or 2K decodes, yet their SEG and SR carried the same parameters: a PACS could not tell them apart."""
    source = pydicom.dcmread(DICOMS[1])
    for look, kind in ((False, "off"), (True, "pooled")):
        r = default_segmenter.predict(DICOMS[1], samples=4, second_look=look)
        params = r.to_dicom_seg(source).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
        depth = f"bit_depth={r.bit_depth}"  # this 8-bit DICOM's rendering takes the 8-bit path
        assert r.bit_depth == 8 and f",second_look={kind},{depth}," in params.AlgorithmParameters
        assert {f"second_look={kind}", depth} <= set(_texts(r.to_dicom_sr(source)))


@pytest.mark.parametrize("changes", [{"ViewPosition": "ll"}, {"ViewPosition": " RL "},
                                     {"ViewPosition": "LATERAL"}, {"ViewPosition": "XTABLE LATERAL"},
                                     {"ViewPosition": "LAT"}, {"ViewPosition": "L LATERAL"},
                                     {"ViewPosition": "LATERAL LEFT"}, {"ViewPosition": "lateral"},
                                     {"ViewCodeSequence": _view_code("Lateral")},
                                     {"ViewCodeSequence": _view_code("RIGHT LATERAL")}])
def test_a_lateral_is_refused_however_its_view_is_spelled(changes):
    """Devices write View Position and code meanings in any case and padding, and archives write words
    where the defined terms are LL and RL: MIMIC-CXR's View Position says LATERAL; LATERAL, XTABLE
    LATERAL and LAT were answered as frontal chests, with SEG and SR objects."""
    from chexmask_rt.dicom_io import check_orientation

    ds = Dataset()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    with pytest.raises(InputError, match="x.dcm: View .*: a lateral view"):
        check_orientation(ds, "x.dcm")


@pytest.mark.parametrize("view", ["PA", "AP", "AP SUPINE", "LLD", "RLD", "LEFT LATERAL DECUBITUS", "LATERO-MEDIAL", ""])
def test_a_frontal_or_decubitus_view_is_read(view):
    """A decubitus film, taken with the patient on their side, is a frontal projection: words that name
    the side it lies on must not refuse it."""
    from chexmask_rt.dicom_io import check_orientation

    ds = Dataset()
    ds.ViewPosition = view
    check_orientation(ds, "x.dcm")
    ds.ViewCodeSequence = _view_code(view.lower())
    check_orientation(ds, "x.dcm")
