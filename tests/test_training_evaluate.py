"""The model card's measures (training.evaluate), checked with a stand-in for the engine."""
from types import SimpleNamespace

import numpy as np

from training.data import load_shapes, load_textures
from training.evaluate import Looks, nearest_shape_distance, render_errors

from conftest import SHARED


def test_nearest_shape_distance_ignores_position_and_finds_the_closest():
    rng = np.random.default_rng(0)
    pool = rng.uniform(100, 900, (5, 120, 2))
    moved = pool[3] + [40.0, -25.0]                        # the same shape elsewhere in the frame
    bent = pool[1] + np.r_[np.full((60, 2), 3.0), np.full((60, 2), -3.0)]  # every landmark 3*sqrt(2) away
    d = nearest_shape_distance(np.stack([moved, bent]), pool)
    np.testing.assert_allclose(d, [0.0, 3 * np.sqrt(2)], atol=1e-9)


class _Oracle:
    """Predicts exactly the landmarks it is told the next render aims at."""

    def __init__(self, shapes):
        self.queue = list(shapes)

    def predict(self, image, samples):
        return SimpleNamespace(landmarks=self.queue.pop(0))


def test_render_errors_measure_against_the_planned_shape_and_what_the_render_shows():
    shapes = load_shapes(SHARED / "data").heldout[:2]
    textures = load_textures(SHARED / "data")
    errors, shown_errors, shifts = render_errors(_Oracle(shapes), textures, shapes, samples=1)
    assert errors.shape == shown_errors.shape == (1, 2)
    np.testing.assert_allclose(errors, 0.0, atol=1e-9)    # predicting the planned shape exactly
    # against the shown positions, the error is the labels' own offset
    np.testing.assert_allclose(shown_errors[0], [s.mean() for s in shifts], rtol=1e-9)
    assert all(s.shape == (120,) for s in shifts) and shown_errors.min() > 0


def test_looks_passes_its_second_look_setting_on_every_prediction():
    calls = []
    seg = SimpleNamespace(model_id="m:1",
                          predict=lambda image, samples, second_look=True: calls.append((samples, second_look)))
    for setting in (False, True):
        wrapped = Looks(seg, second_look=setting)
        wrapped.predict("img", samples=7)
        assert wrapped.model_id == "m:1"
    assert calls == [(7, False), (7, True)]
