"""The reliability flag's calibration on real radiographs (benchmarks.real_calibration,
``python -m benchmarks.calibrate_quality --real``): its data come from the training patients only,
are deterministic, and its held-out judgement is checked against a known answer and the core."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import chexmask_rt
from benchmarks import calibrate_quality, real_calibration
from benchmarks.calibrate_quality import rule_flags, youden_or_rule
from chexmask_rt import _core
from chexmask_rt.quality import calibration_path
from training.real_data import load_split, mhh_images
from training.real_eval import ood_split

from conftest import SHARED

DATA = SHARED / "data"


def _key(image: np.ndarray) -> bytes:
    return image.tobytes() + str(image.shape).encode()


@pytest.fixture(scope="module")
def items():
    return real_calibration.training_items(DATA)


def test_calibration_data_hold_no_validation_patient_and_no_heldout_input(items):
    split = load_split()
    training = {p.stem for _, p in mhh_images(set(split["training_patients"]), DATA)}
    validation = {p.stem for _, p in mhh_images(set(split["validation_patients"]), DATA)}
    radiographs = {name.split("/")[0] for name, *_ in items if not name.startswith("texture/")}
    assert radiographs == training and not radiographs & validation
    heldout = {_key(image) for _, _, image, _ in ood_split(DATA)}
    assert not any(_key(image) in heldout for _, _, image, _ in items)


def test_calibration_data_counts_and_determinism(items):
    labels = np.array([label for *_, label in items])
    kinds = [kind for _, kind, _, _ in items]
    n_radiographs = kinds.count("original")
    assert n_radiographs == 174
    assert (labels == 0).sum() == n_radiographs * (1 + real_calibration.AUGMENTATIONS)
    assert (labels == 1).sum() == 9 * len(load_split()["training_patients"]) + 8
    again = real_calibration.training_items(DATA)
    assert [n for n, *_ in again] == [n for n, *_ in items]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(again, items))


def test_rule_flags_is_the_cores_rule(tmp_path):
    thresholds = {"node_std_1024": 7.5, "mean_latent_sigma": 0.95}
    (tmp_path / "m.quality.json").write_text(json.dumps({"a" * 64: {"thresholds": thresholds}}))
    assessor = _core.QualityAssessor(str(tmp_path / "m.onnx"), "", "a" * 64)
    rng = np.random.default_rng(0)
    node = np.r_[7.5, np.nextafter(7.5, 9), rng.uniform(5, 10, 200)]
    sigma = np.r_[0.95, 0.95, rng.uniform(0.93, 0.97, 200)]
    ours = rule_flags(node, sigma, thresholds)
    assert list(ours[:2]) == [False, True]
    assert [assessor.assess(n, s, 1024, 1024).flag for n, s in zip(node, sigma)] == list(ours)
    # a score the rule leaves out is written as 1e308 (JSON has no infinity): it never fires, reads "inf"
    unused = {"node_std_1024": 7.5, "mean_latent_sigma": 1e308}
    (tmp_path / "m.quality.json").write_text(json.dumps({"a" * 64: {"thresholds": unused}}))
    assessor = _core.QualityAssessor(str(tmp_path / "m.onnx"), "", "a" * 64)
    assert [assessor.assess(n, s, 1024, 1024).flag for n, s in zip(node, sigma)] == list(node > 7.5)
    assert assessor.assess(1.0, 0.95, 1024, 1024).reason.endswith("mean latent sigma 0.9500 <= inf)")


def test_youden_leaves_out_a_score_that_adds_nothing():
    labels = np.array([0, 0, 0, 1, 1, 1])
    node = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0])
    flat = np.array([0.95, 0.96, 0.95, 0.95, 0.94, 0.96])   # no information: ties J at best
    rule = youden_or_rule(node, flat, labels)
    assert (rule["node_std_1024"], rule["mean_latent_sigma"], rule["youden_j"]) == (3.0, np.inf, 1.0)
    # a sigma that catches what the node std misses is kept, at the highest threshold that does
    node2, sigma2 = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 2.5]), np.array([0.90, 0.91, 0.90, 0.90, 0.90, 0.97])
    rule = youden_or_rule(node2, sigma2, labels)
    assert (rule["node_std_1024"], rule["mean_latent_sigma"], rule["youden_j"]) == (3.0, 0.91, 1.0)


class _ScoresByLabel:
    """A segmenter whose node std (1024 frame) is 4 on real radiographs and 12 on the OOD inputs of
    the held-out split, with a calibration file beside it whose node threshold (3) flags everything."""

    def __init__(self, tmp_path):
        self.label = {_key(image): label for _, _, image, label in ood_split(DATA)}
        self.path = tmp_path / "fake.onnx"
        self.info = SimpleNamespace(checkpoint_sha256="b" * 64)
        self.before = {"node_std_1024": 3.0, "mean_latent_sigma": 1e308}
        calibration_path(self.path).write_text(json.dumps({"b" * 64: {"thresholds": self.before}}))
        self.calls = []

    def predict(self, image, samples, seed, second_look):
        self.calls.append(second_look)
        node = 12.0 if self.label[_key(image)] else 4.0
        h, w = image.shape[:2]
        return SimpleNamespace(mean_node_std=node * max(h, w) / 1024, mean_latent_sigma=0.9, height=h, width=w,
                               quality=SimpleNamespace(flag=node > self.before["node_std_1024"]))


def test_heldout_report_on_a_known_answer(tmp_path):
    seg = _ScoresByLabel(tmp_path)
    report = real_calibration.heldout_report(seg, 1, {"node_std_1024": 8.0, "mean_latent_sigma": 1e308}, DATA)
    assert (report["n_real"], report["n_ood"]) == (69, 200)
    assert sorted(seg.calls) == [False] * 269 + [True] * 269
    assert report["thresholds_before"] == seg.before
    for look in ("one_look", "second_look"):
        r = report[look]
        assert r["before_is_the_rule"] and r["auc"]["node_std_1024"] == 1.0
        assert r["before"] == {"flagged_real": 69, "flag_rate_real": 1.0, "flagged_ood": 200, "flag_rate_ood": 1.0}
        assert r["after"] == {"flagged_real": 0, "flag_rate_real": 0.0, "flagged_ood": 200, "flag_rate_ood": 1.0}
        assert r["by_kind"]["real"]["flagged_before"] == 1.0 and r["by_kind"]["real"]["flagged_after"] == 0.0
        assert r["by_kind"]["inverted"]["n"] == 21 and r["by_kind"]["inverted"]["flagged_after"] == 1.0
    assert real_calibration.heldout_summary(report)["second_look"]["after"]["flag_rate_real"] == 0.0


def test_real_option_end_to_end_on_a_few_images(tmp_path, monkeypatch, items):
    """``--real --write`` on a small subset: the core's own flag is the rule on the file it read,
    and the written thresholds are what the core applies next."""
    def two_of(pool, *kinds):
        return [item for kind in kinds for item in [i for i in pool if i[1] == kind][:2]]

    few = two_of(items, "original", "inverted", "rotate_90")
    heldout = two_of(ood_split(DATA), "real", "rotate_180")
    monkeypatch.setattr(real_calibration, "training_items", lambda: few)
    monkeypatch.setattr(real_calibration, "ood_split", lambda data: heldout)
    engine = tmp_path / "default.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    shutil.copy(calibration_path(chexmask_rt.default_model_path()), calibration_path(engine))
    report = calibrate_quality.main(["--real", "--model", str(engine), "--samples", "4", "--write",
                                     "--out", str(tmp_path / "report.json")])
    assert report["n_in"] + report["n_out"] == 6 and report["script"].endswith("--real")
    full = json.loads((tmp_path / "report.json").read_text())
    assert len(full["scores"]) == 6 and full["heldout"]["n_real"] + full["heldout"]["n_ood"] == 4
    assert all(full["heldout"][look]["before_is_the_rule"] for look in ("one_look", "second_look"))
    seg = chexmask_rt.load(str(engine))
    written = json.loads(calibration_path(engine).read_text())[seg.info.checkpoint_sha256]
    assert written["thresholds"] == report["thresholds"] == full["thresholds"]
    assert written["heldout"]["second_look"]["after"] == full["heldout"]["second_look"]["after"]
    assert real_calibration.current_thresholds(seg) == written["thresholds"]
    for _, _, image, _ in few + heldout:
        r = seg.predict(image, samples=4)
        node = _core.node_std_1024(r.mean_node_std, r.height, r.width)
        assert r.quality.calibrated
        assert r.quality.flag == rule_flags(np.array([node]), np.array([r.mean_latent_sigma]), written["thresholds"])[0]
