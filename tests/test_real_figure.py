"""training.real_figure: the picture of the real-image metric picks and measures what the metric does."""
import json

import cv2
import numpy as np
import pytest

import chexmask_rt
from training.real_data import load_split, outlined_images
from training.real_figure import main, measure, pick_by_rank

from conftest import REPO, SHARED

SHIPPED_METRICS = REPO / "training" / "checkpoints" / "default-v10" / "real_metrics.json"


def test_images_are_picked_at_the_percentiles_of_their_errors():
    errors = [5, 1, 9, 3, 7, 2, 8]   # sorted: 1 2 3 5 7 8 9 at indices 1 5 3 0 4 6 2
    assert pick_by_rank(errors) == [(0, 1), (25, 3), (50, 0), (75, 4), (90, 6), (100, 2)]
    # two images: the low percentiles share the best, the high ones the worst, each drawn once
    assert pick_by_rank([3.0, 1.0]) == [(0, 1), (75, 0)]


def test_the_figure_measures_each_image_as_the_committed_metric_did():
    """The shipped engine is deterministic: the figure's errors are real_metrics.json's, image by image."""
    committed = {i["file"]: i for i in json.loads(SHIPPED_METRICS.read_text())["outer_extent"]["one_look"]["images"]}
    items = list(outlined_images(set(load_split()["validation_patients"]), SHARED / "data"))[:3]
    cases = measure(chexmask_rt.load(), items, samples=50)
    for case in cases:
        want = committed[case.item.file]
        assert case.error_px == pytest.approx(want["error_px"], abs=0.006)
        assert case.node_std_1024 == pytest.approx(want["mean_node_std_1024"], abs=6e-4)


def test_the_figure_draws_six_percentiles_from_best_to_worst(tmp_path, capsys):
    images = json.loads(SHIPPED_METRICS.read_text())["outer_extent"]["one_look"]["images"]
    best, worst = (min(images, key=lambda i: i["error_px"]), max(images, key=lambda i: i["error_px"]))
    out = tmp_path / "figure.jpg"
    assert main(["--out", str(out), "--data", str(SHARED / "data")]) == 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 600 and picture.shape[1] > 900
    assert np.ptp(picture.reshape(-1, 3), axis=0).max() > 200  # not blank
    line = capsys.readouterr().out
    assert line.count(" px") == 6
    assert f"best {best['file']} {best['error_px']:.2f} px" in line
    assert f"worst {worst['file']} {worst['error_px']:.2f} px" in line
