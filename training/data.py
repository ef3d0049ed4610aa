"""Synthetic training radiographs with exact landmarks.

A real radiograph whose landmarks are known (the "texture") is warped with a
thin-plate spline so that its landmarks land on another real anatomical shape;
border anchors keep the frame in place. Every sample therefore has exact
labels, real anatomy and real image texture. Augmentation follows the
published training (scale, rotation of +-3 degrees, intensity/contrast) plus
noise, blur, gamma, CLAHE, letterbox bars and a random position and size of
the chest in the frame.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from chexmask_rt._core import Letterbox
from chexmask_rt.anatomy import organ_slices
from chexmask_rt.image_io import full_scale, read_image, to_gray

FRAME = 1024  # shapes live in the CheXmask 1024 frame
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REFERENCE_TEXTURE = "wiki_example1_normal_PA.jpg"
CHEXMASK_HELDOUT_FRACTION = 0.1
SPLIT_SEED = 20240


@dataclass(frozen=True)
class Texture:
    """A real radiograph (8-bit gray, as stored) with its landmarks in its own pixels."""

    name: str
    image: np.ndarray       # uint8 [h, w]
    landmarks: np.ndarray   # (120, 2) float64, image pixels

    @property
    def frame(self) -> Letterbox:
        return Letterbox(*self.image.shape)


@dataclass(frozen=True)
class ShapeSets:
    train: np.ndarray       # [N, 120, 2] in the 1024 frame
    heldout: np.ndarray     # [M, 120, 2]
    heldout_names: list[str]


def load_shapes(data: Path = DEFAULT_DATA) -> ShapeSets:
    """Real shapes: JSRT (its published train/val vs test split) and the CheXmask
    physician-corrected sets (a fixed 10 % of image ids held out; every
    annotation of a training id is a training shape)."""
    lm = data / "landmarks"
    jsrt = np.load(lm / "jsrt_landmarks_1024.npy").astype(np.float64)
    rows = [line.split("\t") for line in (lm / "jsrt_landmarks_1024_ids.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    test = np.array([r[2].strip() == "Test" for r in rows])
    with np.load(lm / "chexmask_physician_subsets_305.npz") as cx:
        ids = cx["ids"]
        sets = [cx[k].astype(np.float64) for k in ("hybridgnet", "annotator_julia", "annotator_martina")]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(ids))
    held = np.zeros(len(ids), bool)
    held[order[: round(CHEXMASK_HELDOUT_FRACTION * len(ids))]] = True
    train = np.concatenate([jsrt[~test]] + [s[~held] for s in sets])
    heldout = np.concatenate([jsrt[test], sets[1][held]])
    names = [f"jsrt:{r[1]}" for r, t in zip(rows, test) if t] + [f"chexmask:{i}" for i in ids[held]]
    return ShapeSets(train, heldout, names)


def make_texture(name: str, image: np.ndarray, landmarks_px: np.ndarray) -> Texture:
    gray = to_gray(image, name=name)
    full = full_scale(gray)
    if full != 255.0 or gray.dtype != np.uint8:
        gray = np.round(gray.astype(np.float64) * (255.0 / full)).astype(np.uint8)
    return Texture(name, np.ascontiguousarray(gray), np.asarray(landmarks_px, np.float64))


def load_textures(data: Path = DEFAULT_DATA, extra: Path | list[Path] | None = None) -> list[Texture]:
    """The reference texture (example 1 with its landmarks) plus, optionally, the
    checked pseudo-labelled images listed in ``extra`` (one or more JSON files: [{"image", "landmarks"}];
    relative image paths are relative to ``data``)."""
    textures = [make_texture(REFERENCE_TEXTURE, read_image(data / "images" / REFERENCE_TEXTURE),
                             np.load(data / "landmarks" / "wiki_example1_landmarks_original_px.npy"))]
    for listing in [] if extra is None else [extra] if isinstance(extra, (str, Path)) else extra:
        for item in json.loads(Path(listing).read_text()):
            path = Path(item["image"])
            path = path if path.is_absolute() else data / path
            textures.append(make_texture(path.name, read_image(path), np.asarray(item["landmarks"])))
    return textures


def _border_anchors(per_edge: int = 5) -> np.ndarray:
    """Points around the unit square's border."""
    t = np.linspace(0.0, 1.0, per_edge)
    edges = [np.stack([t, np.zeros_like(t)], 1), np.stack([t, np.ones_like(t)], 1),
             np.stack([np.zeros_like(t[1:-1]), t[1:-1]], 1), np.stack([np.ones_like(t[1:-1]), t[1:-1]], 1)]
    return np.concatenate(edges)


def _merge_close(target: np.ndarray, source: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Average control points that (nearly) coincide in either shape.

    Annotations often put a heart point on a lung point; if the other shape
    keeps them apart, an interpolating spline must tear the image there.
    Points chained by closeness form one group, ordered by their first member.
    """
    n = len(target)
    pairs = np.concatenate([cKDTree(pts).query_pairs(radius, output_type="ndarray") for pts in (target, source)])
    close = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, group = connected_components(close, directed=False)
    size = np.bincount(group, minlength=count)[:, None]

    def means(points: np.ndarray) -> np.ndarray:
        total = np.zeros((count, points.shape[1]))
        np.add.at(total, group, points)
        return total / size

    return means(target), means(source)


class FoldedWarp(ValueError):
    """The shape is too far from the texture's anatomy: the spline folds the image over itself."""


MERGE_RADIUS = 8 / FRAME
MAX_FOLD = 0.03


def texture_shapes(textures: list[Texture]) -> np.ndarray:
    """The textures' own landmarks as shapes [N, 120, 2] in the 1024 frame, one per distinct name.

    The shape sets are upright PA chests; the Hannover radiographs are mostly bedside AP, whose
    lungs are wider and fill more of the frame (median width 925 against 752 px, height/width
    0.82 against 0.90). Their labels' shapes carry that geometry into training (``--texture-shapes``;
    from version 10 it did not pay: MODEL_CARD.md, Stage 16)."""
    seen: dict[str, np.ndarray] = {}
    for t in textures:
        seen.setdefault(t.name, t.frame.to_normalised(t.landmarks) * FRAME)
    return np.stack(list(seen.values()))


def warp_to_shape(texture: Texture, shape: np.ndarray, size: int, affine: np.ndarray | None = None,
                  grid: int = 48, reflect: bool = False, labels: str = "planned") -> tuple[np.ndarray, np.ndarray]:
    """Render ``texture`` so its landmarks sit on ``shape`` (1024 frame), at size x size.

    ``affine`` (2x3, output pixels -> 1024-frame points) moves the chest in the
    frame; identity scaling by default. Returns (uint8 image, landmarks in output pixels):
    the target shape (``labels="planned"``, what training uses), or where the image
    actually shows the texture's landmarks (``labels="shown"``, see ``invert_field``).
    Outside the texture the image is black, or with ``reflect`` the texture mirrored
    (real radiographs rarely end inside the frame).

    The spline maps the target shape onto the texture's landmarks; the frame's
    border follows the best affine fit between the two shapes, so only the
    anatomy bends. Raises FoldedWarp when the spline folds (its Jacobian
    changes sign) in more than 3 % of the frame.
    """
    if labels not in ("planned", "shown"):
        raise ValueError(f"labels must be 'planned' or 'shown', got {labels!r}")
    if affine is None:
        affine = np.array([[FRAME / size, 0, 0], [0, FRAME / size, 0]], np.float64)
    frame = texture.frame
    target = shape / FRAME
    source = frame.to_normalised(texture.landmarks)
    fit, *_ = np.linalg.lstsq(np.concatenate([target, np.ones((len(target), 1))], 1), source, rcond=None)
    anchors = _border_anchors()
    anchors = anchors[np.min(np.linalg.norm(anchors[:, None] - target[None], axis=-1), axis=1) > 0.04]
    t_pts, s_pts = _merge_close(target, source, MERGE_RADIUS)
    tps = RBFInterpolator(np.concatenate([t_pts, anchors]),
                          np.concatenate([s_pts, np.concatenate([anchors, np.ones((len(anchors), 1))], 1) @ fit]),
                          kernel="thin_plate_spline", smoothing=1e-6)
    g = np.linspace(0, size - 1, grid)
    gx, gy = np.meshgrid(g, g)
    out_pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], 1)
    src = frame.to_original(tps(out_pts @ affine.T / FRAME)).reshape(grid, grid, 2).astype(np.float32)
    dx, dy = np.diff(src, axis=1)[:-1], np.diff(src, axis=0)[:, :-1]
    folded = float(np.mean(dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0] <= 0))
    if folded > MAX_FOLD:
        raise FoldedWarp(f"{texture.name}: warp folds in {folded:.1%} of the frame")
    border = cv2.BORDER_REFLECT_101 if reflect else cv2.BORDER_CONSTANT
    # the field is smooth: evaluate it on a coarse grid whose corners are the image corners,
    # then interpolate bilinearly to every output pixel (OpenCV's remap, which rounds the
    # grid positions to 1/32 of a cell: a few tenths of a pixel)
    q = np.arange(size, dtype=np.float32) * np.float32((grid - 1) / (size - 1))
    qx, qy = np.meshgrid(q, q)
    maps = cv2.remap(src, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    image = cv2.remap(texture.image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    full = np.concatenate([affine, [[0, 0, 1]]])
    planned = (np.concatenate([shape, np.ones((len(shape), 1))], 1) @ np.linalg.inv(full).T)[:, :2]
    if labels == "planned":
        return image, planned
    return image, invert_field(src, size, texture.landmarks, planned)


def field_at(src: np.ndarray, size: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grid field, bilinear as rendered, at output pixels ``x`` [n, 2], and its Jacobian
    d field / d (x, y) [n, 2, 2]; beyond the grid the edge cells extend linearly."""
    k = (src.shape[0] - 1) / (size - 1)
    u = x * k
    i = np.clip(np.floor(u).astype(np.int64), 0, src.shape[0] - 2)
    a, b = (u - i)[:, :1], (u - i)[:, 1:]
    c, r = i[:, 0], i[:, 1]
    s00, s01, s10, s11 = src[r, c], src[r, c + 1], src[r + 1, c], src[r + 1, c + 1]
    value = s00 * (1 - a) * (1 - b) + s01 * a * (1 - b) + s10 * (1 - a) * b + s11 * a * b
    jacobian = np.stack([(s01 - s00) * (1 - b) + (s11 - s10) * b, (s10 - s00) * (1 - a) + (s11 - s01) * a], -1)
    return value, jacobian * k


def invert_field(src: np.ndarray, size: int, points: np.ndarray, start: np.ndarray,
                 tolerance: float = 0.05) -> np.ndarray:
    """Where the rendered image shows each texture point: output pixels x with field(x) = points.

    The render follows the target shape only approximately: where control points were merged
    (heart-lung junctions) and between grid nodes the texture's landmarks land elsewhere, 3 px
    on average at 1024 and tens of px at worst (``python -m training.evaluate`` reports it).
    Newton's method on the bilinear field, started from the target shape. A point whose content
    lies in a fold (no single, unmirrored image position) keeps its start exactly, so callers
    tell the unsolved points by ``x == start``.
    """
    field = src.astype(np.float64)
    x = start.astype(np.float64).copy()
    for _ in range(30):
        value, jacobian = field_at(field, size, x)
        residual = value - points
        usable = (np.linalg.det(jacobian) > 1e-9) & (np.abs(residual).max(axis=1) > 1e-4)
        if not usable.any():
            break
        step = np.linalg.solve(jacobian[usable], residual[usable][..., None])[..., 0]
        x[usable] -= np.clip(step, -size / 8, size / 8)
    value, jacobian = field_at(field, size, x)
    solved = (np.abs(value - points).max(axis=1) < tolerance) & (np.linalg.det(jacobian) > 0)
    return np.where(solved[:, None], x, start)


def _centred_affine(angle: float, k: float, centre: np.ndarray, size: int) -> np.ndarray:
    """Output pixels -> 1024-frame points: turn by ``angle``, ``k`` frame units per output pixel,
    the output's centre on ``centre``."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]]) * k
    offset = centre - rot @ np.array([size / 2, size / 2])
    return np.concatenate([rot, offset[:, None]], 1)


def random_affine(rng: np.random.Generator, size: int) -> np.ndarray:
    """Output pixels -> 1024-frame points: scale 0.9-1.1 of the chest, rotation +-3 deg, shift +-6 %."""
    zoom = rng.uniform(0.9, 1.1)  # >1 makes the chest larger in the output
    angle = np.deg2rad(rng.uniform(-3, 3))
    shift = rng.uniform(-0.06, 0.06, 2) * FRAME
    return _centred_affine(angle, FRAME / size / zoom, np.array([FRAME / 2, FRAME / 2]) + shift, size)


FRAMING_FILL = (0.5, 0.98)  # share of the frame the chest spans under --framing


def framed_affine(rng: np.random.Generator, size: int, shape: np.ndarray, fill: float) -> np.ndarray:
    """Output pixels -> 1024-frame points that make the chest (``shape``'s box) span ``fill`` of
    the frame, placed at random where it fits, rotation +-3 deg.

    ``random_affine`` keeps a chest near the size it has in its source image; real radiographs
    range from wide fields of view to tight collimation where the lungs touch the edges."""
    angle = np.deg2rad(rng.uniform(-3, 3))
    low, high = shape.min(axis=0), shape.max(axis=0)
    extent = float((high - low).max()) * (abs(np.cos(angle)) + abs(np.sin(angle)))  # the box's rotated side, at most
    k = extent / (size * fill)  # 1024-frame units per output pixel
    slack = np.maximum(size * k - extent, 0)  # room to move the box inside the frame
    return _centred_affine(angle, k, (low + high) / 2 + rng.uniform(-0.5, 0.5, 2) * slack, size)


def augment_intensity(image: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray) -> np.ndarray:
    """uint8 -> float32 [0, 1] with contrast, gamma, CLAHE, blur, noise and letterbox bars."""
    size = image.shape[0]
    if rng.random() < 0.25:
        clahe = cv2.createCLAHE(clipLimit=rng.uniform(1.0, 3.0), tileGridSize=(8, 8))
        image = clahe.apply(image)
    background = image == 0
    # gamma, contrast and brightness act on each gray level alike: apply them to the 256 levels,
    # then look the image up (the mean is over the image's non-background pixels)
    level = (np.arange(256, dtype=np.float32) / np.float32(255.0)) ** np.float32(np.exp(rng.normal(0, 0.25)))
    count = np.bincount(image.ravel(), minlength=256)[1:]
    mean = float(count @ level[1:] / count.sum()) if count.any() else 0.5
    level = (level - mean) * np.float32(rng.uniform(0.7, 1.3)) + mean + np.float32(rng.uniform(-0.1, 0.1))
    x = cv2.LUT(image, level)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5) * size / 512)
    if rng.random() < 0.3:
        sigma = np.float32(rng.uniform(0.005, 0.04))
        x = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
    np.copyto(x, np.float32(0.0), where=background)
    if rng.random() < 0.3:  # letterbox bars of a non-square original, clear of the anatomy
        axis = int(rng.integers(2))
        lo, hi = landmarks[:, axis].min(), landmarks[:, axis].max()
        width = int(rng.uniform(0, 0.12) * size)
        width = max(0, min(width, int(lo) - 4, int(size - hi) - 4))
        if width > 0:
            if axis == 0:
                x[:, :width] = 0
                x[:, size - width:] = 0
            else:
                x[:width] = 0
                x[size - width:] = 0
    return np.clip(x, 0.0, 1.0, out=x)


OPACITY_HEIGHT = (0.1, 0.45)  # share of a lung's height, from its base, that an opacity fills


def basal_opacity(x: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray) -> np.ndarray:
    """An effusion or consolidation at the base of one or both lungs of the float render ``x``
    [S, S] in [0, 1], whose ``landmarks`` [120, 2] (pixels) stay where they are.

    Bedside radiographs of COVID-19 patients often have dense lower zones. The lung outlines that
    judge the model (V7's) run through them, and on the worst validation images the model's bases
    stop above them (docs/real_validation.jpg; MODEL_CARD.md, stage 18, for what this did). The
    opacity fills the lowest 10-45 % of a lung's height, up to a soft edge that may rise laterally
    (an effusion's meniscus), towards the brightness of soft tissue with a mottled texture; the
    landmarks keep the lung's anatomical outline."""
    size = x.shape[0]
    slices = organ_slices()
    # soft tissue's brightness: the bright end of the chest (mediastinum, heart, below the diaphragm)
    (x0, y0), (x1, y1) = np.clip(np.floor(landmarks.min(0)), 0, size - 1), np.clip(np.ceil(landmarks.max(0)), 1, size)
    chest = x[int(y0):int(y1), int(x0):int(x1)]
    tissue = float(np.percentile(chest, 90)) if chest.size else 0.8
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    both = ("right_lung", "left_lung")
    lungs = list(both) if rng.random() < 0.5 else [both[int(rng.integers(2))]]
    for name in lungs:
        lung = landmarks[slices[name]]
        top, bottom = float(lung[:, 1].min()), float(lung[:, 1].max())
        height = max(bottom - top, 1.0)
        medial = float(np.median(lung[:, 0]))
        lateral = float(lung[:, 0].min() if name == "right_lung" else lung[:, 0].max())
        outward = np.clip((xx - medial) / (lateral - medial if lateral != medial else 1.0), 0, 1)
        edge = bottom - height * rng.uniform(*OPACITY_HEIGHT) - height * rng.uniform(0, 0.15) * outward ** 2
        weight = 1.0 / (1.0 + np.exp(-(yy - edge) / (height * rng.uniform(0.02, 0.08))))
        inside = np.zeros((size, size), np.uint8)
        cv2.fillPoly(inside, [np.round(lung).astype(np.int32)], 1)
        inside = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, size / 256))
        mottle = cv2.GaussianBlur(rng.standard_normal((size, size), dtype=np.float32), (0, 0), size / 40)
        mottle *= np.float32(0.08 / max(float(mottle.std()), 1e-6))
        target = np.float32(tissue * rng.uniform(0.85, 1.15)) * (1 + mottle)
        x = x + np.float32(rng.uniform(0.6, 1.0)) * (weight * inside).astype(np.float32) * (target - x)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def shape_modes(shapes: np.ndarray, keep: float = 0.98) -> np.ndarray:
    """The principal modes of variation of ``shapes`` [N, 120, 2], each scaled by its standard
    deviation: [m, 120, 2], the fewest modes that hold ``keep`` of the variance. The smaller
    modes are mostly annotation jitter, which a perturbation should not add."""
    flat = shapes.reshape(len(shapes), -1)
    _, singular, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    var = singular ** 2 / (len(shapes) - 1)
    m = int(np.searchsorted(np.cumsum(var) / var.sum(), keep)) + 1
    return (vt[:m] * np.sqrt(var[:m])[:, None]).reshape(m, *shapes.shape[1:])


def jitter_shape(shape: np.ndarray, modes: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``shape`` moved along ``modes`` by strength * u * b, u ~ U(0, 1), b_i ~ N(0, 1) clipped to
    +-2.5: new anatomy near a real one. Held-out shapes lie about 22 px (median) from their
    nearest training shape, and a model's error on them grows with that distance (MODEL_CARD.md)."""
    b = np.clip(rng.standard_normal(len(modes)), -2.5, 2.5) * (strength * rng.random())
    return shape + np.tensordot(b, modes, axes=1)


class SyntheticChests:
    """Index -> (image float32 [1, S, S], landmarks normalised [120, 2]); deterministic per (seed, index).

    ``shape_jitter`` > 0 replaces half the shapes by ``jitter_shape`` of them (that strength);
    ``framing`` is the share of samples framed by ``framed_affine`` (fill drawn from ``FRAMING_FILL``)
    instead of ``random_affine``; ``opacity`` the share given a ``basal_opacity``."""

    JITTER_PROBABILITY = 0.5

    def __init__(self, shapes: np.ndarray, textures: list[Texture], size: int, length: int, seed: int = 0,
                 augment: bool = True, labels: str = "planned", shape_jitter: float = 0.0,
                 framing: float = 0.0, opacity: float = 0.0):
        self.shapes, self.textures, self.size = shapes, textures, size
        self.length, self.seed, self.augment, self.labels = length, seed, augment, labels
        self.shape_jitter, self.framing, self.opacity = shape_jitter, framing, opacity
        self.modes = shape_modes(shapes) if shape_jitter > 0 else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        for _ in range(20):  # redraw the rare shape/texture pairs that fold
            shape = self.shapes[rng.integers(len(self.shapes))]
            # drawn only when on, so the samples of runs without it stay as they were
            if self.modes is not None and rng.random() < self.JITTER_PROBABILITY:
                shape = jitter_shape(shape, self.modes, self.shape_jitter, rng)
            texture = self.textures[rng.integers(len(self.textures))]
            affine = random_affine(rng, self.size) if self.augment else None
            framed = self.augment and self.framing > 0 and rng.random() < self.framing  # drawn only when on
            if framed:
                affine = framed_affine(rng, self.size, shape, rng.uniform(*FRAMING_FILL))
            # a wide frame would mirror whole lungs into view: beyond the texture it stays black
            reflect = bool(rng.random() < 0.6) and not framed
            try:
                image, landmarks = warp_to_shape(texture, shape, self.size, affine, reflect=reflect,
                                                 labels=self.labels)
                break
            except FoldedWarp:
                continue
        else:
            raise FoldedWarp(f"sample {index}: no unfolded warp in 20 draws")
        x = augment_intensity(image, rng, landmarks) if self.augment else image.astype(np.float32) / 255.0
        if self.augment and self.opacity > 0 and rng.random() < self.opacity:  # drawn only when on
            x = basal_opacity(x, rng, landmarks)
        return x[None], (landmarks / self.size).astype(np.float32)
