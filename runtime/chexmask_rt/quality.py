"""The reliability flag: is this result's uncertainty outside what the model shows on chest radiographs?

The C++ core assesses every result (``cpp/src/quality.cpp``): two image scores are compared
with thresholds calibrated for one model (``benchmarks/calibrate_quality.py``, Youden's J on
in-distribution vs corrupted / non-chest images, as in CheXmask-U):

- the mean node std expressed in the 1024 frame (``chexmask_rt._core.node_std_1024``:
  ``mean_node_std · 1024 / max(h, w)``), so one threshold serves every image size;
- the mean latent sigma.

A result is flagged when either score exceeds its threshold; a threshold of 1e308 (JSON has no
infinity) leaves its score out, and the core reads it as +inf. Thresholds live in
``<engine stem>.quality.json`` beside the engine, keyed by the engine's
``checkpoint_sha256``: a retrained or other model finds no entry and its results
say "not calibrated" (``flag`` False, ``calibrated`` False).

This module holds what the writers and the calibration tool need: the verdict's type and
where the thresholds live.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import _core


@dataclass(frozen=True)
class Quality:
    """The reliability verdict of one result; ``flag`` True means: do not trust it without review."""

    flag: bool
    reason: str
    calibrated: bool

    @classmethod
    def from_core(cls, quality: _core.Quality) -> "Quality":
        """The verdict of a ``chexmask_rt._core.Quality`` (a picklable, comparable copy)."""
        return cls(bool(quality.flag), str(quality.reason), bool(quality.calibrated))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``quality``: flag, reason, calibrated."""
        return {"flag": self.flag, "reason": self.reason, "calibrated": self.calibrated}


def calibration_path(engine: str | Path) -> Path:
    """Where an engine's thresholds live: ``<stem>.quality.json`` beside it (where the core looks,
    ``chexmask_rt._core.default_quality_file``)."""
    engine = Path(engine)
    return engine.with_name(engine.stem + ".quality.json")

