"""The synthetic training data: real shapes, split without leaks; thin-plate-spline warps
of real textures whose labels are exact."""
import numpy as np
import pytest

from reference import letterbox
from training.data import (FRAMING_FILL, OPACITY_HEIGHT, FoldedWarp, SyntheticChests, Texture, basal_opacity,
                           framed_affine, jitter_shape,
                           load_shapes, load_textures, shape_modes, texture_shapes, warp_to_shape)

from conftest import SHARED

DATA = SHARED / "data"


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(DATA)


@pytest.fixture(scope="module")
def textures():
    return load_textures(DATA)


def test_split_holds_out_jsrt_test_and_a_tenth_of_chexmask(shapes):
    assert shapes.heldout.shape == (81, 120, 2)
    assert sum(n.startswith("jsrt:") for n in shapes.heldout_names) == 51
    assert sum(n.startswith("chexmask:") for n in shapes.heldout_names) == 30
    # 194 JSRT train/val shapes + 3 annotations of the 275 training CheXmask ids
    assert len(shapes.train) == 194 + 3 * 275
    # no held-out shape appears among the training shapes
    flat_train = shapes.train.reshape(len(shapes.train), -1)
    for held in shapes.heldout.reshape(len(shapes.heldout), -1):
        assert np.abs(flat_train - held).sum(axis=1).min() > 0


def test_warping_a_texture_onto_its_own_shape_changes_nothing(textures):
    own = np.load(DATA / "landmarks" / "wiki_example1_landmarks_1024.npy").astype(np.float64)
    image, labels = warp_to_shape(textures[0], own, 1024)
    expected, _ = letterbox(textures[0].image, 1024)
    np.testing.assert_allclose(labels, own, atol=1e-9)
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 2.0


def test_texture_shapes_are_each_textures_own_landmarks_in_the_1024_frame_once(textures):
    own = np.load(DATA / "landmarks" / "wiki_example1_landmarks_1024.npy").astype(np.float64)
    wide = Texture("wide.png", np.zeros((500, 1000), np.uint8), np.full((120, 2), [500.0, 100.0]))
    got = texture_shapes([textures[0], wide, textures[0]])  # a texture listed twice is one shape
    assert got.shape == (2, 120, 2)
    np.testing.assert_allclose(got[0], own, atol=0.01)
    # a 1000x500 image letterboxes into the square with 250 px bars above and below
    np.testing.assert_allclose(got[1], np.full((120, 2), [512.0, 358.4]), atol=1e-9)


def test_labels_are_the_target_shape_in_output_pixels(shapes, textures):
    shape = shapes.heldout[0]
    image, labels = warp_to_shape(textures[0], shape, 256)
    np.testing.assert_allclose(labels, shape * 256 / 1024, atol=1e-9)
    assert image.shape == (256, 256) and image.dtype == np.uint8
    # the anatomy moved: the image differs from the unwarped texture
    assert np.abs(image.astype(int) - letterbox(textures[0].image, 256)[0].astype(int)).mean() > 2


def test_folding_warps_are_refused(textures):
    own = np.load(DATA / "landmarks" / "wiki_example1_landmarks_1024.npy").astype(np.float64)
    mirrored = own.copy()
    mirrored[:, 0] = 1024 - mirrored[:, 0]  # left-right flip: the spline must turn the image over
    with pytest.raises(FoldedWarp):
        warp_to_shape(textures[0], mirrored, 128)


def test_dataset_is_deterministic_per_index(shapes, textures):
    ds = SyntheticChests(shapes.train, textures, 128, length=10, seed=3)
    a, la = ds[4]
    b, lb = ds[4]
    c, _ = ds[5]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert a.shape == (1, 128, 128) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert la.shape == (120, 2)


def test_control_points_chained_by_closeness_in_either_shape_merge_into_one():
    from training.data import _merge_close

    r = 0.01
    # 0-1 and 1-2 are close in the target (0-2 are not), 3-4 only in the source; 5 stands alone
    target = np.array([[0.0, 0], [0.008, 0], [0.016, 0], [0.5, 0.5], [0.7, 0.7], [0.9, 0.1]])
    source = np.array([[0.1, 0], [0.2, 0], [0.3, 0], [0.4, 0.4], [0.405, 0.4], [0.8, 0.2]])
    t, s = _merge_close(target, source, r)
    np.testing.assert_allclose(t, [target[:3].mean(0), target[3:5].mean(0), target[5]])
    np.testing.assert_allclose(s, [source[:3].mean(0), source[3:5].mean(0), source[5]])


def test_labels_sit_where_the_render_shows_the_texture_landmarks(shapes, textures):
    # A texture whose pixels hold their own x (then y) coordinate: sampling the render at a
    # label gives back the texture position shown there, which must be that texture landmark.
    import cv2

    from training.data import Texture

    real = textures[0]
    h, w = real.image.shape
    ramps = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    worst_planned, shown_errors = 0.0, []
    for shape in shapes.heldout[:12]:
        shown = []
        for axis, ramp in enumerate(ramps):
            texture = Texture(real.name, ramp, real.landmarks)
            image, labels = warp_to_shape(texture, shape, 512, labels="shown")
            _, planned = warp_to_shape(texture, shape, 512)
            at = lambda p: cv2.remap(image, p[:, :1].astype(np.float32), p[:, 1:].astype(np.float32),
                                     cv2.INTER_LINEAR)[:, 0]
            shown.append((at(labels), at(planned)))
        got = np.stack([s[0] for s in shown], 1)
        aimed = np.stack([s[1] for s in shown], 1)
        solved = np.any(labels != planned, axis=1)  # content in a fold keeps its planned label
        assert solved.mean() > 0.85
        shown_errors.append(np.linalg.norm(got - real.landmarks, axis=1)[solved])
        worst_planned = max(worst_planned, np.abs(aimed - real.landmarks).max())
    scale = max(h, w) / 512  # texture pixels per output pixel
    shown_errors = np.concatenate(shown_errors) / scale
    # labels on the content, to a fraction of a pixel of the render (OpenCV rounds the field's
    # grid positions to 1/32 of a cell, and the field is steep at the junctions)
    assert np.median(shown_errors) < 0.25 and np.percentile(shown_errors, 99) < 0.5 and shown_errors.max() < 1.5
    assert worst_planned > 5 * scale  # the target shape itself is not where the content is


def test_dataset_can_label_renders_by_what_they_show(shapes, textures):
    planned = SyntheticChests(shapes.train, textures, 128, length=4, seed=3)
    shown = SyntheticChests(shapes.train, textures, 128, length=4, seed=3, labels="shown")
    (a, la), (b, lb) = planned[2], shown[2]
    np.testing.assert_array_equal(a, b)  # the same render
    moved = np.linalg.norm(la - lb, axis=1) * 1024
    # labels moved by the grid's and the merges' offsets (in the 1024 frame), not wholesale
    assert 0.1 < np.median(moved) < 10 and moved.max() > 1


def test_shape_modes_are_the_fewest_principal_axes_holding_98_percent_of_the_variance(shapes):
    modes = shape_modes(shapes.train)
    flat = shapes.train.reshape(len(shapes.train), -1)
    centred = flat - flat.mean(0)
    scale = np.linalg.norm(modes.reshape(len(modes), -1), axis=1)
    unit = modes.reshape(len(modes), -1) / scale[:, None]
    np.testing.assert_allclose(unit @ unit.T, np.eye(len(modes)), atol=1e-9)
    # each mode's scale is the standard deviation of the training shapes along it
    np.testing.assert_allclose((centred @ unit.T).std(0, ddof=1), scale, rtol=1e-9)
    total = (centred ** 2).sum() / (len(flat) - 1)
    assert (scale ** 2).sum() >= 0.98 * total > (scale[:-1] ** 2).sum()
    assert scale[0] > scale[-1] > 0


def test_jitter_moves_a_shape_along_the_modes_by_at_most_its_strength(shapes):
    modes = shape_modes(shapes.train)
    unit = modes.reshape(len(modes), -1) / np.linalg.norm(modes.reshape(len(modes), -1), axis=1)[:, None]
    shape = shapes.train[7]
    moved = jitter_shape(shape, modes, 0.75, np.random.default_rng(1))
    step = (moved - shape).ravel()
    assert np.linalg.norm(step) > 1.0
    np.testing.assert_allclose(unit.T @ (unit @ step), step, atol=1e-6)  # in the modes' span
    coeffs = (unit @ step) / np.linalg.norm(modes.reshape(len(modes), -1), axis=1)
    assert np.abs(coeffs).max() <= 0.75 * 2.5 + 1e-9
    np.testing.assert_array_equal(moved, jitter_shape(shape, modes, 0.75, np.random.default_rng(1)))
    np.testing.assert_array_equal(jitter_shape(shape, modes, 0.0, np.random.default_rng(1)), shape)


def test_dataset_jitters_about_half_the_shapes_and_only_when_asked(shapes, textures):
    def labels(jitter):
        ds = SyntheticChests(shapes.train, textures, 64, length=24, seed=5, augment=False, shape_jitter=jitter)
        return [ds[i][1] * 1024 for i in range(len(ds))]

    def is_a_training_shape(points):
        return np.abs(shapes.train - points[None]).max(axis=(1, 2)).min() < 1e-3

    assert all(is_a_training_shape(y) for y in labels(0.0))
    new = sum(not is_a_training_shape(y) for y in labels(0.75))
    assert 6 <= new <= 18  # p = 0.5 of 24


def _to_output_pixels(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Invert an output-pixel -> 1024-frame affine for some 1024-frame points."""
    return np.linalg.solve(affine[:, :2], (points - affine[:, 2]).T).T


@pytest.mark.parametrize("fill", [0.5, 0.75, 0.98])
def test_framed_affine_makes_the_chest_span_the_fill_inside_the_frame(shapes, fill):
    rng = np.random.default_rng(3)
    for shape in shapes.train[::97]:
        out = _to_output_pixels(framed_affine(rng, 512, shape, fill), shape)
        assert out.min() >= 0 and out.max() <= 512
        extent = np.ptp(out, axis=0).max() / 512
        assert 0.9 * fill <= extent <= fill + 1e-9  # a +-3 deg turn may shrink the box a little


def test_dataset_frames_the_asked_share_of_samples_wide_to_tight(shapes, textures):
    def extents(framing):
        ds = SyntheticChests(shapes.train, textures, 64, length=40, seed=9, framing=framing)
        return np.array([np.ptp(ds[i][1], axis=0).max() for i in range(len(ds))])

    plain, framed = extents(0.0), extents(1.0)
    assert FRAMING_FILL[0] * 0.9 <= framed.min() < 0.6 and 0.9 < framed.max() <= FRAMING_FILL[1]
    assert framed.std() > 1.5 * plain.std()  # random_affine keeps each chest near its source size


def _polygon_mask(polygons, size, dilate=0):
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polygons], 1)
    return cv2.dilate(mask, np.ones((2 * dilate + 1,) * 2, np.uint8)) > 0 if dilate else mask > 0


def test_basal_opacity_brightens_the_lung_bases_and_nothing_outside_the_lungs(shapes, textures):
    size = 256
    changed_base, changed_top = [], []
    for seed in range(12):
        ds = SyntheticChests(shapes.train, textures, size, length=1, seed=seed)
        x, landmarks = ds[0]
        x, landmarks = x[0], landmarks * size
        y = basal_opacity(x, np.random.default_rng(seed), landmarks)
        assert y.dtype == np.float32 and y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        outside = ~_polygon_mask([landmarks[:44], landmarks[44:94]], size, dilate=6)
        assert np.abs(y - x)[outside].max() < 0.02  # only the blurred lung edge reaches past the outline
        for lung in (slice(0, 44), slice(44, 94)):
            top, bottom = landmarks[lung, 1].min(), landmarks[lung, 1].max()
            rows = np.arange(size)[:, None]
            inside = _polygon_mask([landmarks[lung]], size)
            band = lambda lo, hi: inside & (rows >= top + lo * (bottom - top)) & (rows <= top + hi * (bottom - top))
            changed_base.append(float((y - x)[band(1 - OPACITY_HEIGHT[0], 1.0)].mean()))
            changed_top.append(float(np.abs(y - x)[band(0.0, 0.2)].mean()))
    base, top = np.array(changed_base), np.array(changed_top)
    assert np.median(base) > 0.05 and (base > 0.02).mean() >= 0.5  # about half the lungs are given one
    assert top.max() < 0.1 * base.max() and np.median(top) < 0.005  # the apices stay as they were


def test_opacity_keeps_the_labels_and_leaves_runs_without_it_as_they_were(shapes, textures):
    plain = SyntheticChests(shapes.train, textures, 64, length=6, seed=4)
    again = SyntheticChests(shapes.train, textures, 64, length=6, seed=4, opacity=0.0)
    opaque = SyntheticChests(shapes.train, textures, 64, length=6, seed=4, opacity=1.0)
    for i in range(6):
        (a, la), (b, lb), (c, lc) = plain[i], again[i], opaque[i]
        assert np.array_equal(a, b) and np.array_equal(la, lb)
        assert np.array_equal(la, lc)          # the anatomical outline is the label
        assert not np.array_equal(a, c)
