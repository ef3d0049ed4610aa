"""CheXmask-U-style outputs: RLE masks (round trip against the polygon fill), CSV rows, mask PNGs, CLI options."""
import csv
import io
import subprocess
import sys

import cv2
import numpy as np
import pytest

from chexmask_rt import rle
from chexmask_rt.anatomy import organ_slices
from chexmask_rt.csv_output import COLUMNS, csv_row, parse_coords
from chexmask_rt.errors import InputError


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


def test_rle_known_small_mask():
    mask = np.array([[0, 1, 1, 0],
                     [0, 0, 0, 1],
                     [1, 0, 0, 0]], dtype=np.uint8)
    # row-major flat: 0 1 1 0 0 0 0 1 1 0 0 0 -> runs start at 1-based 2 (len 2) and 8 (len 2, across the row break)
    assert rle.encode(mask) == "2 2 8 2"
    np.testing.assert_array_equal(rle.decode("2 2 8 2", 3, 4), mask * 255)
    assert rle.encode(np.zeros((3, 4), np.uint8)) == ""
    assert rle.encode(np.ones((2, 2), np.uint8)) == "1 4"


@pytest.mark.parametrize("text, height, width, why", [
    ("10 5", 3, 4, "run 10 5 lies outside a 3x4 mask"), ("1", 3, 4, "odd number of values"),
    ("1 x", 3, 4, "integer 'start length' pairs"), (None, 3, 4, "integer 'start length' pairs"),
    ("1 2", 3.5, 4, "must be integers, got 3.5 x 4"), ("1 2", 0, 4, "mask size 0x4 outside 1..65536"),
    ("1 2", True, 4, "must be integers, got True x 4"), ("1 2", 2**20, 2**20, "1048576x1048576 outside 1..65536"),
    ("99999999999999999999 1", 3, 4, "integer 'start length' pairs")])
def test_rle_decode_refuses_what_is_not_a_mask_with_the_packages_error(text, height, width, why):
    """A results CSV's RLE column with a bad value raised int()'s bare ValueError ("invalid literal for
    int() with base 10: 'x'"), where every failure of the package is a ChexmaskError."""
    with pytest.raises(InputError, match="rle.decode: .*" + why.replace("(", r"\(")):
        rle.decode(text, height, width)
    with pytest.raises(InputError, match="rle.encode: expected a 2-D mask"):
        rle.encode(np.zeros(4, np.uint8))
    if text == "1 2":  # polygon_mask's sides: True was a side of 1, 2**70 pybind11's page of signatures
        with pytest.raises(InputError, match=r"polygon_mask: (a mask's height and width must be integers|mask size)"):
            rle.polygon_mask(np.zeros((3, 2)), height, width)


def test_rle_decode_takes_a_run_to_the_last_pixel_and_refuses_negative_ones():
    np.testing.assert_array_equal(rle.decode("1 4", 2, 2), np.full((2, 2), 255, np.uint8))
    np.testing.assert_array_equal(rle.decode("4 1", 2, 2), np.array([[0, 0], [0, 255]], np.uint8))
    for text in ("1 -3", "5 1", "0 1"):  # a negative length, a run past the end, a start before the first pixel
        with pytest.raises(InputError, match="rle.decode: "):
            rle.decode(text, 3, 4) if text == "1 -3" else rle.decode(text, 2, 2)


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip_equals_fillpoly(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(40, 300, size=2)
    pts = rng.uniform([-20, -20], [w + 20, h + 20], size=(rng.integers(3, 60), 2))
    expected = np.zeros((h, w), np.uint8)
    cv2.fillPoly(expected, [pts.astype(np.int32).reshape(-1, 1, 2)], 255)
    mask = rle.polygon_mask(pts, h, w)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(rle.decode(rle.encode(mask), h, w), expected)


def test_csv_row_of_a_real_result(default_segmenter, example1):
    r = default_segmenter.predict(example1, samples=8)
    row = csv_row(r)
    assert tuple(row) == COLUMNS
    assert (row["Height"], row["Width"]) == ("899", "786")
    np.testing.assert_allclose(parse_coords(row["Landmarks (Mean)"]), r.landmarks, atol=1e-3)  # cut to 3 decimals
    np.testing.assert_allclose(parse_coords(row["Landmarks (Std)"]), r.landmarks_std, atol=1e-3)
    for column, organ in (("Right Lung", "right_lung"), ("Left Lung", "left_lung"), ("Heart", "heart")):
        expected = np.zeros((899, 786), np.uint8)
        cv2.fillPoly(expected, [r.landmarks[organ_slices()[organ]].astype(np.int32).reshape(-1, 1, 2)], 255)
        decoded = rle.decode(row[column], 899, 786)
        np.testing.assert_array_equal(decoded, expected)
        assert 0.01 < (decoded > 0).mean() < 0.5  # a real organ, not an empty or full mask
    assert float(row["Mean Node Std"]) == pytest.approx(r.mean_node_std, rel=1e-5)
    assert float(row["Mean Latent Sigma"]) == pytest.approx(r.mean_latent_sigma, rel=1e-5)
    assert row["Quality Flag"] in ("True", "False") and row["Quality Reason"]
    m = r.measures()  # each measure column holds its own measure (only CTR Std's empty case was read)
    assert m.ctr_std is not None and m.ctr_std < 0.05 * m.ctr  # a spread, not the ratio itself
    assert (float(row["CTR"]), float(row["CTR Std"])) == (pytest.approx(m.ctr, rel=1e-5), pytest.approx(m.ctr_std, rel=1e-5))
    assert float(row["Heart Diameter (px)"]) == pytest.approx(m.heart_diameter_px, rel=1e-5)
    assert float(row["Thoracic Diameter (px)"]) == pytest.approx(m.thoracic_diameter_px, rel=1e-5)
    for column, organ in (("Right Lung", "right_lung"), ("Left Lung", "left_lung"), ("Heart", "heart")):
        assert float(row[f"{column} Area (px2)"]) == pytest.approx(m.area_px2[organ], rel=1e-5)
        assert float(row[f"{column} Area Std (px2)"]) == pytest.approx(m.area_std_px2[organ], rel=1e-5)


def test_a_rows_own_landmarks_rasterise_to_its_masks(default_segmenter, example1):
    """The masks truncate each coordinate to an integer: a coordinate just below one (716.9998) written
    rounded (717.000) drew a pixel further than the row's own RLE."""
    import dataclasses

    r = default_segmenter.predict(example1, samples=4)
    near = np.floor(r.landmarks) + 0.9998   # every coordinate a hair below the next integer
    near[:3] = [[-0.9996, 5.0004], [3.9996, -0.0004], [-1.0004, 400.9996]]  # and around zero
    r = dataclasses.replace(r, landmarks=near)
    row = csv_row(r)
    written = parse_coords(row["Landmarks (Mean)"])
    assert np.abs(written - near).max() < 1e-3
    np.testing.assert_array_equal(np.trunc(written), np.trunc(near))
    for column, organ in (("Right Lung", "right_lung"), ("Left Lung", "left_lung"), ("Heart", "heart")):
        from_row = rle.polygon_mask(written[organ_slices()[organ]], r.height, r.width)
        np.testing.assert_array_equal(rle.decode(row[column], r.height, r.width), from_row, err_msg=organ)


def test_cli_csv_and_masks(tmp_path, shared_images):
    images = shared_images[:2]
    out_csv, masks = tmp_path / "r.csv", tmp_path / "m"
    proc = cli("predict", *images, "--samples", 3, "--csv", out_csv, "--masks", masks)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["Image"] for r in rows] == [str(p) for p in images]
    for p, row in zip(images, rows):
        heart = cv2.imread(str(masks / f"{p.stem}_heart.png"), cv2.IMREAD_UNCHANGED)
        assert heart.shape == (int(row["Height"]), int(row["Width"]))
        np.testing.assert_array_equal(heart, rle.decode(row["Heart"], *heart.shape))
    assert len(list(masks.iterdir())) == 6
    proc = cli("predict", images[0], "--samples", 3, "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    assert next(csv.reader(io.StringIO(proc.stdout))) == list(COLUMNS)
    assert rows[0]["Quality Flag"] in ("True", "False") and rows[0]["Quality Reason"]


def test_cli_unwritable_csv_is_an_input_error(tmp_path, example1):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = cli("predict", example1, "--samples", 2, "--csv", blocker / "sub" / "r.csv")
    assert proc.returncode == 3 and f"{blocker} exists and is not a folder" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""  # said before the image's inference


def test_one_decode_leaves_its_spread_empty_in_the_csv(tmp_path, example1):
    """Samples 1: ``Landmarks (Std)`` and ``Mean Node Std`` were "0,0,..." and "0", which a consumer
    could not tell from a model that is sure; the spread is not measured, so the cells are empty."""
    for samples, measured in ((1, False), (3, True)):
        out = tmp_path / f"k{samples}.csv"
        proc = cli("predict", example1, "--samples", samples, "--csv", out)
        assert proc.returncode == 0, proc.stderr
        row = next(csv.DictReader(io.StringIO(out.read_text())))
        assert row["Samples"] == str(samples) and parse_coords(row["Landmarks (Mean)"]).shape == (120, 2)
        if measured:
            assert float(row["Mean Node Std"]) > 0 and parse_coords(row["Landmarks (Std)"]).max() > 0
        else:
            assert row["Mean Node Std"] == row["Landmarks (Std)"] == ""
            assert "not measured" in row["Quality Reason"]


def test_the_core_and_the_result_agree_on_a_measured_spread(default_segmenter, example1):
    """Result.spread_measured (which array-made results need) states the core's Result::spread_measured."""
    from chexmask_rt import _core, core
    from chexmask_rt.image_io import read_image, to_gray

    engine = _core.Engine(str(default_segmenter.path), core.onnxruntime_library())
    gray = to_gray(read_image(example1))
    seen = set()
    for samples, look in ((1, False), (2, False), (1, True), (50, True)):
        raw = engine.predict(gray, samples, 0, None, look)
        result = default_segmenter.predict(example1, samples=samples, second_look=look)
        assert raw.second_look is None or raw.second_look.look == "pooled"  # example 1's crop is pooled
        assert raw.spread_measured == result.spread_measured == (samples > 1 or look), (samples, look)
        seen.add(result.spread_measured)
    assert seen == {True, False}


def test_every_output_says_the_bit_depth_the_pixels_were_scaled_by(tmp_path, default_segmenter, example1):
    """A 12-bit image read as 16 reaches the model at 1/16 of its brightness (landmarks ~19 px off, not
    flagged), and one burned-in marker at 65535 makes an inferred depth 16: no output said which depth
    was used, so a data team could not find such rows."""
    from chexmask_rt.image_io import read_image, to_gray

    gray = to_gray(read_image(example1))
    twelve = gray.astype(np.uint16) * 16
    marked = twelve.copy()
    marked[:10, :10] = 65535
    cases = {"eight": (gray, None, 8), "twelve": (twelve, None, 12), "marked": (marked, None, 16),
             "given": (twelve, 14, 14), "float": (gray.astype(np.float32) / 255, None, 32)}
    for name, (pixels, given, want) in cases.items():
        assert default_segmenter.predict(pixels, samples=2, bit_depth=given).bit_depth == want, name
    png = tmp_path / "twelve.png"
    cv2.imwrite(str(png), twelve)
    proc = cli("predict", png, "--samples", 2, "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert proc.returncode == 0, proc.stderr
    import json
    assert json.loads((tmp_path / "r.json").read_text())["bit_depth"] == 12
    row = next(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert row["Bit Depth"] == "12" and row["Results Schema"] == "3"


def test_one_decode_writes_its_spread_as_null_in_the_json_without_the_c_build(default_segmenter, example1):
    """The SDK test compares the C and C++ examples' JSON too, and needs them built: this needs the Python
    runtime only."""
    for samples, look, measured in ((1, False, False), (2, False, True), (1, True, True)):
        out = default_segmenter.predict(example1, samples=samples, second_look=look).to_dict()
        spreads = (out["landmarks_std"], out["node_uncertainty"], out["scores"]["mean_node_std"])
        if measured:
            assert None not in spreads and out["scores"]["mean_node_std"] > 0, (samples, look)
        else:
            assert spreads == (None, None, None), (samples, look)
