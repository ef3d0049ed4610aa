"""Per-landmark offsets: a model's systematic error, measured once and removed in its engine.

A trained model can miss some landmarks in the same direction on every image. That share of
its error is a constant per landmark. Measured on training-shape renders, it can be subtracted
from every decoded sample, which moves the mean and the decode at mu. The spread of the samples,
and so every uncertainty figure, is unchanged. ``training/landmark_offsets.py`` measures it.

The offsets live beside the weights as ``landmark_offsets.json``. Published checkpoints have no
such file, so they export as before. The file names the weights it was fitted on: offsets of
other weights are refused, never applied.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmask_rt.errors import ModelError

OFFSETS_FILE = "landmark_offsets.json"
LANDMARKS = 120


@dataclass(frozen=True)
class LandmarkOffsets:
    """[120, 2] (x, y) in the model input's normalised frame (× 1024: CheXmask pixels), to add
    to every decoded landmark; ``sha256``: of the file, stored in the engine's metadata."""
    offsets: np.ndarray
    sha256: str
    source: Path


def write_offsets(folder: str | Path, offsets: np.ndarray, *, checkpoint_sha256: str, fit: dict) -> Path:
    """Write ``folder``/landmark_offsets.json; ``fit`` records how they were measured."""
    offsets = np.asarray(offsets, dtype=np.float64)
    _check_shape(offsets, "offsets")
    path = Path(folder) / OFFSETS_FILE
    path.write_text(json.dumps({
        "about": "added to every decoded landmark (x, y) in the model input's normalised frame; "
                 "x 1024 for CheXmask pixels. See chexmask_export/landmark_offsets.py",
        "checkpoint_sha256": checkpoint_sha256,
        "fit": fit,
        "offsets": [[round(float(x), 8), round(float(y), 8)] for x, y in offsets],
    }, indent=1) + "\n")
    return path


def read_offsets(weights: Path, weights_sha256: str) -> LandmarkOffsets | None:
    """The offsets beside ``weights``, or None when there is no such file."""
    path = weights.parent / OFFSETS_FILE
    if not path.exists():
        return None
    try:
        raw = path.read_bytes()  # read once: the sha256 in the engine is of exactly these bytes
        data = json.loads(raw.decode())
        offsets = np.asarray(data["offsets"], dtype=np.float64)
        fitted_on = data["checkpoint_sha256"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable landmark offsets file ({exc})") from None
    _check_shape(offsets, str(path))
    if fitted_on != weights_sha256:
        raise ModelError(f"{path}: fitted on checkpoint {str(fitted_on)[:12]}..., not on {weights.name} "
                         f"({weights_sha256[:12]}...); refit them (python -m training.landmark_offsets) or "
                         "export with --no-landmark-offsets")
    return LandmarkOffsets(offsets, hashlib.sha256(raw).hexdigest(), path)


def _check_shape(offsets: np.ndarray, source: str) -> None:
    expected = f"{source}: expected {LANDMARKS} finite (x, y) offsets within ±0.1 of the frame"
    if offsets.shape != (LANDMARKS, 2):
        raise ModelError(f"{expected}, got shape {offsets.shape}")
    wrong = np.flatnonzero(~(np.abs(offsets) <= 0.1).all(axis=1))  # NaN fails the comparison too
    if wrong.size:
        raise ModelError(f"{expected}; landmark {wrong[0]} has {offsets[wrong[0]].tolist()}"
                         + (f" ({wrong.size} landmarks in all)" if wrong.size > 1 else ""))
