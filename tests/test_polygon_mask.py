"""Organ masks from the core (``_core.polygon_mask``, behind ``rle.polygon_mask``) equal the masks
``cv2.fillPoly`` made before, byte for byte: on thousands of generated polygons of every shape, on
the real landmark sets in ../shared/data, and on real results of the shipped model. Bad points or
sizes are an InputError."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chexmask_rt import InputError, rle
from chexmask_rt.anatomy import organ_slices

from conftest import SHARED
from fillpoly_reference import fillpoly_mask

LANDMARKS = SHARED / "data" / "landmarks"
ORGANS = organ_slices()


def assert_same_as_fillpoly(points, height: int, width: int, what: str = "") -> np.ndarray:
    mask = rle.polygon_mask(points, height, width)
    expected = fillpoly_mask(points, height, width)
    assert mask.dtype == np.uint8 and mask.shape == (height, width)
    if not np.array_equal(mask, expected):
        diff = np.argwhere(mask != expected)
        pytest.fail(f"{what} {height}x{width}: {len(diff)} pixels differ from cv2.fillPoly, first at (y, x) "
                    f"{diff[0].tolist()}; points {np.asarray(points).tolist()}")
    return mask


# --- generated polygons ---------------------------------------------------------------------------

def star(rng, n: int, cx: float, cy: float, r: float, inner: float) -> np.ndarray:
    """A star (concave from inner < 1) or, with inner = 1, a jittered convex polygon."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = np.where(np.arange(n) % 2, r * inner, r)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def polygon_of_kind(kind: str, rng, height: int, width: int) -> np.ndarray:
    size = np.array([width, height], dtype=np.float64)
    centre, r = rng.uniform(0, 1, 2) * size, rng.uniform(0.05, 0.7) * max(height, width)
    n = int(rng.integers(3, 60))
    if kind == "convex":
        return star(rng, n, *centre, r, 1.0)
    if kind == "concave":
        return star(rng, n, *centre, r, rng.uniform(0.1, 0.9))
    if kind == "self_intersecting":
        return rng.uniform(-0.1, 1.1, (n, 2)) * size
    if kind == "collinear":  # all on one line: horizontal, vertical or slanted
        t = rng.uniform(-0.2, 1.2, n)
        direction = [(1, 0), (0, 1), tuple(rng.normal(size=2))][int(rng.integers(3))]
        return centre + np.outer(t * max(height, width), direction)
    if kind == "one_or_two_points":
        return rng.uniform(-0.2, 1.2, (int(rng.integers(1, 3)), 2)) * size
    if kind == "partly_outside":
        return star(rng, n, *(rng.uniform(-0.3, 1.3, 2) * size), r * 2, rng.uniform(0.3, 1.0))
    if kind == "fully_outside":
        side = int(rng.integers(4))
        pts = rng.uniform(0, 1, (n, 2)) * size
        axis, sign = side % 2, (-1 if side < 2 else 1)
        pts[:, axis] = (size[axis] if sign > 0 else 0) + sign * rng.uniform(1, 3 * size[axis], n)
        return pts
    if kind == "huge":  # past the +-4*max(h, w) clamp, or wildly wrong (1e300)
        pts = star(rng, n, *centre, r, rng.uniform(0.3, 1.0))
        wild = rng.random(n) < 0.3
        pts[wild] = rng.choice([-1, 1], (int(wild.sum()), 2)) * 10.0 ** rng.uniform(3, 300, (int(wild.sum()), 2))
        return pts
    if kind == "integer_vertices":  # ties: vertices and crossings exactly on pixel corners
        return np.round(star(rng, n, *centre, r, rng.uniform(0.2, 1.0)))
    raise ValueError(kind)


KINDS = ["convex", "concave", "self_intersecting", "collinear", "one_or_two_points", "partly_outside",
         "fully_outside", "huge", "integer_vertices"]


@pytest.mark.parametrize("kind", KINDS)
def test_equals_fillpoly_on_generated_polygons(kind):
    """400 polygons of each kind on images from 1x1 to 300 px, and 10 on 1000-4000 px images."""
    rng = np.random.default_rng([19, KINDS.index(kind)])
    for i in range(410):
        if i < 400:
            height, width = (int(v) for v in rng.integers(1, [5, 5] if i % 4 == 0 else [300, 300]))
        else:
            height, width = (int(v) for v in rng.integers(1000, 4000, 2))
        assert_same_as_fillpoly(polygon_of_kind(kind, rng, height, width), height, width, f"{kind} #{i}")


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(data=st.data(), height=st.integers(1, 120), width=st.integers(1, 120))
def test_equals_fillpoly_hypothesis(data, height, width):
    reach = st.floats(-3.0 * max(height, width), 3.0 * max(height, width), allow_nan=False)
    points = data.draw(st.lists(st.tuples(reach, reach), min_size=1, max_size=30))
    assert_same_as_fillpoly(np.array(points), height, width)


# --- real landmarks -------------------------------------------------------------------------------

def test_equals_fillpoly_on_the_real_landmark_sets():
    """Expert (JSRT), physician-corrected and model landmark sets: 1024 frame, every organ."""
    sets = [np.load(LANDMARKS / "jsrt_landmarks_1024.npy")]
    with np.load(LANDMARKS / "chexmask_physician_subsets_305.npz") as subsets:
        sets += [subsets[key] for key in ("hybridgnet", "annotator_julia", "annotator_martina")]
    count = 0
    for landmarks in sets:
        assert landmarks.shape[1:] == (120, 2)
        for shape in landmarks:
            for organ, sl in ORGANS.items():
                mask = assert_same_as_fillpoly(shape[sl], 1024, 1024, organ)
                count += 1
    assert count == 3 * (245 + 3 * 305)
    assert 0.01 < (mask > 0).mean() < 0.5  # the last one is a real heart, not an empty mask


def test_same_rle_as_before_on_example1_in_its_own_pixels():
    landmarks = np.load(LANDMARKS / "wiki_example1_landmarks_original_px.npy")
    for organ, sl in ORGANS.items():
        mask = assert_same_as_fillpoly(landmarks[sl], 899, 786, organ)
        assert rle.encode(mask) == rle.encode(fillpoly_mask(landmarks[sl], 899, 786))


def test_shipped_model_results_give_the_same_masks_and_rle(default_segmenter, shared_images):
    for path in shared_images:
        result = default_segmenter.predict(path, samples=4)
        masks = result.organ_masks()
        assert set(masks) == set(ORGANS)
        for organ, sl in ORGANS.items():
            expected = fillpoly_mask(result.landmarks[sl], result.height, result.width)
            np.testing.assert_array_equal(masks[organ], expected, err_msg=f"{path.name} {organ}")
            assert rle.encode(masks[organ]) == rle.encode(expected)


def test_masks_no_longer_use_cv2(monkeypatch, default_segmenter, example1):
    """The core rasterises: with cv2.fillPoly unusable, masks still come (and are right)."""
    result = default_segmenter.predict(example1, samples=2)
    expected = {organ: fillpoly_mask(result.landmarks[sl], result.height, result.width) for organ, sl in ORGANS.items()}

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.fillPoly called")

    monkeypatch.setattr(cv2, "fillPoly", refuse)
    for organ, mask in result.organ_masks().items():
        np.testing.assert_array_equal(mask, expected[organ])


def test_threads_share_the_core():
    """The GIL is released while a mask is filled: many threads at once still get exact masks."""
    landmarks = np.load(LANDMARKS / "jsrt_landmarks_1024.npy")[:32]
    expected = [fillpoly_mask(shape[ORGANS["right_lung"]], 2048, 2048) for shape in landmarks * 2]
    got = [None] * len(landmarks)

    def work(i: int) -> None:
        got[i] = rle.polygon_mask(landmarks[i][ORGANS["right_lung"]] * 2, 2048, 2048)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(landmarks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("points, height, width, needle", [
    ([[1.0, np.nan], [3, 3], [1, 4]], 10, 10, "point 0 is not finite"),
    ([[1.0, 1.0], [np.inf, 3]], 10, 10, "point 1 is not finite"),
    ([[1.0, 1.0], [3, -np.inf]], 10, 10, "not finite"),
    (np.zeros((0, 2)), 10, 10, "no points"),
    (np.zeros((4, 3)), 10, 10, "(N, 2)"),
    (np.zeros(6), 10, 10, "(N, 2)"),
    (np.zeros((2, 2, 2)), 10, 10, "(N, 2)"),
    ([["a", "b"]], 10, 10, "numeric"),
    ([[1, 1], [2, 2], [1, 3]], 0, 10, "outside 1..65536"),
    ([[1, 1], [2, 2], [1, 3]], 10, -3, "outside 1..65536"),
    ([[1, 1], [2, 2], [1, 3]], 65537, 1, "outside 1..65536"),
    ([[1, 1], [2, 2], [1, 3]], 1, 2**40, "outside 1..65536"),
    ([[1, 1], [2, 2], [1, 3]], 10.5, 10, "integer"),
    ([[1, 1], [2, 2], [1, 3]], None, 10, "integer"),
])
def test_bad_points_or_sizes_are_an_input_error(points, height, width, needle):
    with pytest.raises(InputError) as caught:
        rle.polygon_mask(points, height, width)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_largest_side_is_accepted():
    mask = rle.polygon_mask([[0, 0], [70000, 0], [0, 1]], 2, 65536)
    np.testing.assert_array_equal(mask, fillpoly_mask([[0, 0], [70000, 0], [0, 1]], 2, 65536))
    assert mask[0].all()
