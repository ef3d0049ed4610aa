"""The real-image measures (training.outer_extent, training.real_data, training.real_eval),
checked on cases whose answer is known."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from chexmask_rt.image_io import read_image
from reference import Letterbox
from training.data import load_textures
from training.evaluate import main as evaluate_main
from training.outer_extent import densify, extent_errors, extremes_1024, lung_extremes, signed_extent_errors
from training.real_data import (first_image_per_patient, load_split, make_split, mhh_images, outlined_images,
                                 unoutlined_images)
from training.real_eval import compare_images, ood_report, ood_split, outer_extent_report, summarise_extent
from training.pack_device_data import pack
from training.real_pseudo_labels import fit_to_extent

from conftest import REPO, SHARED

DATA = SHARED / "data"


def _box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def test_extremes_of_two_boxes():
    right, left = _box(100, 200, 400, 800), _box(600, 150, 900, 850)
    np.testing.assert_allclose(lung_extremes(right, left), [[100, 200, 800], [900, 150, 850]])


def test_a_medial_lobe_below_the_costophrenic_angle_does_not_move_the_bottom():
    """V7's left lung follows the diaphragm behind the heart, lower than the lateral angle: the
    bottom is read within 0.2 thorax widths of the lateral border, so it stays at the angle."""
    right = _box(100, 200, 400, 800)
    left = np.array([[600, 150], [900, 150], [900, 850], [700, 850], [650, 950], [600, 950]], float)
    e = lung_extremes(right, left)        # thorax width 800: the band is x >= 740
    assert e[1, 2] == pytest.approx(850)
    assert densify(left)[:, 1].max() == 950


def test_a_shifted_outline_is_off_by_the_shift():
    rng = np.random.default_rng(3)
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    right = np.c_[250 + 150 * np.cos(angles), 450 + 300 * np.sin(angles)] + rng.normal(0, 2, (200, 2))
    left = right * [-1, 1] + [1024, 0]
    dx, dy = 7.0, -4.0
    errors = extent_errors(lung_extremes(right + [dx, dy], left + [dx, dy]), lung_extremes(right, left))
    np.testing.assert_allclose(errors, [[7, 4, 4], [7, 4, 4]], atol=1e-9)


def test_signed_errors_are_positive_where_the_prediction_reaches_beyond_the_outline():
    right, left = _box(100, 200, 400, 800), _box(600, 150, 900, 850)
    grown = (_box(90, 195, 400, 803), _box(600, 149, 908, 851))     # every extreme further out
    shrunk = (_box(104, 206, 400, 790), _box(600, 152, 897, 848))   # every extreme short of the outline
    np.testing.assert_allclose(signed_extent_errors(lung_extremes(*grown), lung_extremes(right, left)),
                               [[10, 5, 3], [8, 1, 1]])
    np.testing.assert_allclose(signed_extent_errors(lung_extremes(*shrunk), lung_extremes(right, left)),
                               [[-4, -6, -10], [-3, -2, -2]])


def test_extremes_are_read_in_the_1024_frame():
    frame = Letterbox(1000, 2000)          # pads 500 on top: y -> (y + 500) * 1024 / 2000
    e = extremes_1024(_box(100, 200, 800, 700), _box(1200, 100, 1900, 800), frame)
    np.testing.assert_allclose(e, np.array([[100, 700, 1200], [1900, 600, 1300]]) * 1024 / 2000)


def test_the_committed_split_is_the_rule_applied_and_keeps_patients_apart():
    split = load_split()
    assert split == make_split(DATA)
    validation, training = set(split["validation_patients"]), set(split["training_patients"])
    assert validation and not validation & training
    val_items = list(outlined_images(validation, DATA))
    assert {i.patient for i in val_items} == validation
    outlined_with_id = list(outlined_images(validation | training, DATA))
    assert len(val_items) >= 0.4 * len(outlined_with_id) and len(outlined_with_id) == 77
    assert all(p not in validation for p, _ in mhh_images(training, DATA))
    assert len(mhh_images(validation | training, DATA)) == 243       # every mhh image has its side
    assert len(split["unknown_patient"]) == 10
    assert not {i.file for i in val_items} & set(split["unknown_patient"])


class _ShiftedTruth:
    """Answers each validation image with V7's own outline moved by a shift that grows with the
    image's rank, a node std equal to that rank and a latent sigma of minus it: the error and both
    rankings are known."""

    def __init__(self, items):
        self.by_image = {read_image(i.path).tobytes()[::9973]: (n, i) for n, i in enumerate(items)}
        self.calls = []

    def predict(self, image, samples, second_look):
        n, item = self.by_image[image.tobytes()[::9973]]
        self.calls.append(second_look)
        shift = (n + 1) * 2000 / 1024 * np.array([1.0, -2.0])   # (n+1, -2(n+1)) px in the 1024 frame
        return SimpleNamespace(right_lung=item.right_lung + shift, left_lung=item.left_lung + shift,
                               mean_node_std=float(n), mean_latent_sigma=float(-n))


def test_outer_extent_report_on_a_known_answer():
    items = list(outlined_images(set(load_split()["validation_patients"]), DATA))
    seg = _ShiftedTruth(items)
    report = outer_extent_report(seg, samples=1, data=DATA)
    assert seg.calls == [False, True] * len(items)
    n = np.arange(1, len(items) + 1)
    for look in ("one_look", "second_look"):
        r = report[look]
        # per image: lateral |dx| = n, top and bottom |dy| = 2n, so the mean is 5n/3
        np.testing.assert_allclose([i["error_px"] for i in r["images"]], np.round(5 * n / 3, 2), atol=0.011)
        assert r["mean_px"] == pytest.approx(5 * n.mean() / 3, abs=1e-6)
        assert r["by_extreme_px"] == pytest.approx({"lateral": n.mean(), "top": 2 * n.mean(), "bottom": 2 * n.mean()})
        # moved right and up: the right lung's border inwards, the left one's outwards (they cancel),
        # both apices beyond the outline, both bases short of it
        assert r["beyond_by_extreme_px"] == pytest.approx({"lateral": 0.0, "top": 2 * np.median(n),
                                                           "bottom": -2 * np.median(n)}, abs=1e-9)
        np.testing.assert_allclose(r["images"][0]["beyond_px"], [[-1, 2, -2], [1, 2, -2]], atol=0.051)
        ap = np.array([i["projection"].startswith("AP") for i in r["images"]])
        assert r["beyond_by_projection_px"]["AP"]["top"] == pytest.approx(2 * np.median(n[ap]))
        assert r["spearman_error_vs_mean_node_std"] == pytest.approx(1.0)
        assert r["spearman_error_vs_mean_latent_sigma"] == pytest.approx(-1.0)


def test_the_ood_split_uses_validation_patients_only():
    split = load_split()
    items = ood_split(DATA)
    validation = {p.stem for _, p in mhh_images(set(split["validation_patients"]), DATA)}
    training = {p.stem for _, p in mhh_images(set(split["training_patients"]), DATA)}
    real = [name.split("/")[1] for name, kind, _, label in items if label == 0]
    assert set(real) == validation
    made_from = {name.split("/")[0] for name, _, _, label in items if label == 1} - {"texture", "other"}
    assert made_from <= validation and not made_from & training
    assert len(made_from) == len(split["validation_patients"])    # one radiograph per patient
    kinds = {kind for _, kind, _, label in items if label == 1}
    assert {"rotate_90", "rotate_180", "inverted", "crop_corner", "crop_abdomen", "noise_80", "non_radiograph",
            "other_image"} <= kinds
    again = ood_split(DATA)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(items, again))


def test_evaluate_needs_a_model_and_an_output_for_the_synthetic_figures():
    with pytest.raises(SystemExit) as e:
        evaluate_main([])
    assert e.value.code == 2


def test_fit_to_extent_matches_the_outlines_extent_and_keeps_the_medial_borders():
    shape = np.load(DATA / "landmarks" / "jsrt_landmarks_1024.npy")[0].astype(float)
    right, left = _box(100, 150, 420, 820), _box(560, 120, 930, 860)
    label = fit_to_extent(shape, right, left)
    np.testing.assert_allclose(lung_extremes(label[:44], label[44:94]), lung_extremes(right, left), atol=1e-6)
    assert label[:44, 0].max() == pytest.approx(shape[:44, 0].max())      # medial borders stay
    assert label[44:94, 0].min() == pytest.approx(shape[44:94, 0].min())
    np.testing.assert_allclose(label[94:, 0], shape[94:, 0])               # the heart moves only vertically
    assert label[94:, 1].max() != pytest.approx(shape[94:, 1].max())


def test_fit_to_extent_leaves_a_label_that_already_fits():
    shape = np.load(DATA / "landmarks" / "jsrt_landmarks_1024.npy")[3].astype(float)
    np.testing.assert_allclose(fit_to_extent(shape, shape[:44], shape[44:94]), shape, atol=1e-9)


def test_load_textures_reads_several_lists(tmp_path):
    real = json.loads((REPO / "training" / "real_textures.json").read_text())[:2]
    (tmp_path / "a.json").write_text(json.dumps(real[:1]))
    (tmp_path / "b.json").write_text(json.dumps(real[1:]))
    textures = load_textures(DATA, [tmp_path / "a.json", tmp_path / "b.json"])
    assert [t.name for t in textures[1:]] == [Path(r["image"]).name for r in real]
    assert textures[1].image.shape == (2000, 2000)
    validation = set(load_split()["validation_patients"])
    patients = {i.file: i.patient for i in outlined_images(validation | set(load_split()["training_patients"]), DATA)}
    every = json.loads((REPO / "training" / "real_textures.json").read_text())
    assert not {patients[Path(r["image"]).name] for r in every} & validation


def test_unoutlined_images_are_the_patients_radiographs_without_an_outline():
    split = load_split()
    for patients in (set(split["training_patients"]), set(split["validation_patients"])):
        every = {p.stem for _, p in mhh_images(patients, DATA)}
        outlined = {Path(i.file).stem for i in outlined_images(patients, DATA)}
        rest = [(patient, p.stem) for patient, p in unoutlined_images(patients, DATA)]
        assert outlined <= every and {patient for patient, _ in rest} <= patients
        assert {stem for _, stem in rest} == every - outlined


def test_the_device_pack_is_small_holds_no_validation_image_and_keeps_labels_in_place(tmp_path):
    size = pack(DATA, tmp_path)
    assert size < 15 * 2**20
    small = load_textures(tmp_path, tmp_path / "real_512" / "real_textures.json")
    full = load_textures(DATA, REPO / "training" / "real_textures.json")
    assert [t.name.split(".")[0] for t in small] == [t.name.split(".")[0] for t in full]
    for s, f in zip(small[1:], full[1:]):
        assert s.image.shape == (512, 512)
        np.testing.assert_allclose(s.frame.to_normalised(s.landmarks), f.frame.to_normalised(f.landmarks), atol=1e-4)
    outlines = json.loads((tmp_path / "real_512" / "v7_lungs.json").read_text())
    assert not {o["patient"] for o in outlines.values()} & set(load_split()["validation_patients"])
    assert {p.name for p in (tmp_path / "real_512").glob("*.png")} == set(outlines)


class _KnowsTheLabels:
    """Scores each input of the OOD split by its label: node std 1 + label, latent sigma 1 - label,
    flag = label; the AUCs and flag rates are then known."""

    def __init__(self):
        self.label = {self._key(image): label for _, _, image, label in ood_split(DATA)}

    @staticmethod
    def _key(image):
        return image.tobytes()[::7919] + str(image.shape).encode()

    def predict(self, image, samples, second_look):
        label = self.label[self._key(image)]
        return SimpleNamespace(mean_node_std=1.0 + label, mean_latent_sigma=1.0 - label,
                               quality=SimpleNamespace(flag=bool(label), calibrated=True))


def test_ood_report_on_a_known_answer():
    report = ood_report(_KnowsTheLabels(), samples=1, data=DATA)
    assert report["n_in_distribution"] == 69 and report["n_out_of_distribution"] > 150
    for look in ("one_look", "second_look"):
        r = report[look]
        assert r["auc_mean_node_std"] == 1.0 and r["auc_mean_latent_sigma"] == 0.0
        # blur, occlusion, mosaic of the 21 validation patients + stripes, checkerboard, gradient, flat gray
        # + a head MRI, a photograph, a terrain map
        assert r["n_never_exposed"] == 21 * 3 + 4 + 3 and r["auc_mean_latent_sigma_never_exposed"] == 0.0
        assert r["reliability_flag_rate_real"] == 0.0 and r["reliability_flag_rate_ood"] == 1.0
        assert all(k["mean_node_std"] == 1.0 and k["mean_latent_sigma"] == 0.0 for k in r["auc_by_kind"].values())


def test_outer_extent_report_can_measure_the_training_patients_instead():
    items = list(outlined_images(set(load_split()["training_patients"]), DATA))
    seg = _ShiftedTruth(items)
    report = outer_extent_report(seg, samples=1, data=DATA, looks={"one_look": False}, patients="training_patients")
    r = report["one_look"]
    assert [i["file"] for i in r["images"]] == [i.file for i in items] and r["n_images"] == 46
    n = np.arange(1, len(items) + 1)
    assert r["mean_px"] == pytest.approx(5 * n.mean() / 3, abs=1e-6)


def test_training_patients_are_measured_only_beside_the_real_figures():
    with pytest.raises(SystemExit):
        evaluate_main(["--model", "x.onnx", "--out", "x.json", "--training-patients"])


@pytest.mark.parametrize("option", [["--overlays", "o"], ["--textures", "t.json"]])
def test_the_synthetic_figures_options_are_refused_beside_the_real_ones(option, capsys):
    with pytest.raises(SystemExit):
        evaluate_main(["--real", *option])
    assert "are for the synthetic figures" in capsys.readouterr().err


def test_one_look_only_makes_one_call_per_image():
    items = list(outlined_images(set(load_split()["validation_patients"]), DATA))
    seg = _ShiftedTruth(items)
    report = outer_extent_report(seg, samples=1, data=DATA, looks={"one_look": False})
    assert list(report) == ["one_look"] and seg.calls == [False] * len(items)


def _extent(errors: dict) -> dict:
    return {"images": [{"file": f, "error_px": e} for f, e in errors.items()]}


def test_compare_images_on_a_known_answer():
    old = {f"{i}.jpg": 10.0 * i for i in range(1, 7)}
    new = {f: e - i for i, (f, e) in enumerate(old.items(), start=1)}  # each image better, by 1..6 px
    result = compare_images(_extent(new), _extent(old))
    # six differences of one sign and distinct sizes: the exact two-sided p is 2 / 2**6
    assert result == {"n_images": 6, "better": 6, "worse": 0, "mean_difference_px": -3.5,
                      "wilcoxon_p": pytest.approx(0.03125)}
    same = compare_images(_extent(old), _extent(old))
    assert same["better"] == same["worse"] == 0 and same["wilcoxon_p"] == 1.0


def test_compare_images_refuses_reports_of_different_images():
    with pytest.raises(ValueError, match="different images"):
        compare_images(_extent({"a.jpg": 1.0, "b.jpg": 2.0}), _extent({"a.jpg": 1.0, "c.jpg": 2.0}))


def test_evaluate_against_compares_the_validation_images_with_a_stored_report(tmp_path, monkeypatch):
    import training.evaluate as evaluate

    files = [f"{i}.jpg" for i in range(8)]
    mine = {f: 10.0 + i for i, f in enumerate(files)}
    theirs = {f: e + (1.0 if i < 6 else -0.5) for i, (f, e) in enumerate(mine.items())}
    monkeypatch.setattr(evaluate, "real_report", lambda *a, **k: {"outer_extent": {"one_look": _extent(mine)}})
    stored = tmp_path / "real_metrics.json"
    stored.write_text(json.dumps({"outer_extent": {"one_look": _extent(theirs), "second_look": _extent(theirs)}}))
    out = tmp_path / "new.json"
    evaluate_main(["--real", "--single-look", "--against", str(stored), "--out", str(out)])
    against = json.loads(out.read_text())["against"]
    assert against["report"] == str(stored) and set(against) == {"report", "one_look"}
    assert against["one_look"]["better"] == 6 and against["one_look"]["worse"] == 2
    assert against["one_look"]["mean_difference_px"] == pytest.approx((-6 + 1) / 8)


def test_against_is_only_for_the_real_figures():
    with pytest.raises(SystemExit):
        evaluate_main(["--model", "x.onnx", "--out", "x.json", "--against", "x.json"])


@pytest.mark.parametrize("text", [None, "not json", '{"ood": {}}'])
def test_against_a_missing_or_foreign_report_is_refused_before_measuring(tmp_path, monkeypatch, capsys, text):
    import training.evaluate as evaluate

    monkeypatch.setattr(evaluate, "real_report", lambda *a, **k: pytest.fail("measured before checking --against"))
    report = tmp_path / "r.json"
    if text is not None:
        report.write_text(text)
    with pytest.raises(SystemExit) as e:
        evaluate_main(["--real", "--against", str(report)])
    assert e.value.code == 2 and "not a readable training.evaluate --real report" in capsys.readouterr().err


# The figures that choose a model: each test below fails on a plausible slip that every other test
# here let through (a mutation audit).

def test_the_band_keeps_the_right_lungs_medial_lobe_out_too():
    """Only the left lung's band was tested: the right lung's could be off without a word."""
    right = np.array([[100, 200], [400, 200], [400, 950], [350, 950], [300, 850], [100, 850]], float)
    e = lung_extremes(right, _box(600, 150, 900, 850))  # width 800: the right lung's band is x <= 260
    assert e[0, 2] == pytest.approx(850)


def test_a_sparse_outline_is_read_along_its_edges():
    """An extreme on an edge between two corners (not at a corner) must be found: read at the corners
    only, the bottom of a slanted base is missed."""
    left = np.array([[600, 150], [900, 150], [900, 700], [700, 900]], float)
    e = lung_extremes(_box(100, 200, 400, 800), left)  # the band x >= 740 crosses the slanted edge at y = 860
    assert e[1, 2] == pytest.approx(860, abs=1.0)


def _accumulated(errors, projections, node, right_left=None):
    signed = []
    for k, err in enumerate(errors):
        s = np.full((2, 3), float(err))
        if right_left is not None:
            s[0], s[1] = right_left[k]
        signed.append(s)
    images = [{"file": f"{i}.jpg", "patient": f"p{i}", "projection": p} for i, p in enumerate(projections)]
    return {"signed": signed, "images": images, "node": list(node), "sigma": list(node), "seconds": [0.1] * len(signed)}


def test_the_summary_of_uneven_errors():
    """Errors whose mean and median differ, a node std that rises with the error but not linearly,
    and both projections: the headline is the mean, p90 the 90th percentile, the ranking Spearman's."""
    errors = [1.0, 1.1, 1.2, 2.0, 20.0]
    node = np.exp([0.0, 0.1, 0.2, 3.0, 9.0])
    r = summarise_extent(_accumulated(errors, ["AP Supine", "AP", "PA", "PA", "PA"], node))
    assert r["mean_px"] == pytest.approx(5.06) and r["median_px"] == pytest.approx(1.2)
    assert r["p90_px"] == pytest.approx(np.percentile(errors, 90))
    assert r["by_projection_px"] == pytest.approx({"AP": 1.05, "PA": 23.2 / 3})
    assert r["spearman_error_vs_mean_node_std"] == pytest.approx(1.0)  # a rank correlation: monotone is 1


def test_by_lung_names_the_patients_right_lung_first():
    r = summarise_extent(_accumulated([0, 0], ["PA", "PA"], [1, 2], right_left=[(1.0, 3.0), (2.0, 4.0)]))
    assert r["by_lung_px"] == {"right": 1.5, "left": 3.5}


def test_the_real_report_asks_for_the_samples_it_was_given(monkeypatch):
    import training.real_eval as real_eval

    items = list(outlined_images(set(load_split()["validation_patients"]), SHARED / "data"))[:2]
    seen = []

    class Seg:
        def predict(self, image, samples, second_look):
            seen.append(samples)
            i = items[len(seen) - 1]
            return SimpleNamespace(right_lung=i.right_lung, left_lung=i.left_lung, mean_node_std=1.0 * len(seen),
                                   mean_latent_sigma=1.0 * len(seen))

    monkeypatch.setattr(real_eval, "outlined_images", lambda *a, **k: iter(items))
    outer_extent_report(Seg(), samples=7, data=SHARED / "data", looks={"one_look": False})
    assert seen == [7, 7]


def test_each_patients_ood_radiograph_is_its_first_by_image_id():
    validation = set(load_split()["validation_patients"])
    for patient, path in first_image_per_patient(validation, SHARED / "data").items():
        assert path.stem == min(p.stem for q, p in mhh_images(validation, SHARED / "data") if q == patient)


def test_real_measures_both_looks_unless_told_one(tmp_path, monkeypatch):
    """The ship script relies on the default measuring both looks (the evidence for --second-look)."""
    import training.evaluate as evaluate

    calls = []
    monkeypatch.setattr(evaluate, "real_report", lambda *a, **k: calls.append(k["both_looks"]) or {"outer_extent": {}})
    evaluate.main(["--real", "--out", str(tmp_path / "a.json")])
    evaluate.main(["--real", "--single-look", "--out", str(tmp_path / "b.json")])
    assert calls == [True, False]
