"""The reliability flag: is this result's uncertainty outside what the model shows on chest radiographs?

Two image scores are compared with thresholds calibrated for one model
(``benchmarks/calibrate_quality.py``, Youden's J on in-distribution vs
corrupted / non-chest images, as in CheXmask-U):

- the mean node std expressed in the 1024 frame (``mean_node_std · 1024 / max(h, w)``),
  so one threshold serves every image size;
- the mean latent sigma.

A result is flagged when either score exceeds its threshold. Thresholds live in
``<engine stem>.quality.json`` beside the engine, keyed by the engine's
``checkpoint_sha256``: a retrained or other model finds no entry and its results
say "not calibrated" (``flag`` False, ``calibrated`` False).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

FRAME = 1024.0


@dataclass(frozen=True)
class Quality:
    """The reliability verdict of one result; ``flag`` True means: do not trust it without review."""

    flag: bool
    reason: str
    calibrated: bool

    def to_dict(self) -> dict:
        return {"flag": self.flag, "reason": self.reason, "calibrated": self.calibrated}


def node_std_1024(mean_node_std: float, height: int, width: int) -> float:
    """Mean node std in px of the 1024 frame (the letterboxed square resized to 1024)."""
    return float(mean_node_std) * FRAME / max(height, width)


@dataclass(frozen=True)
class QualityRule:
    """Calibrated thresholds of one model."""

    max_node_std_1024: float
    max_latent_sigma: float

    def assess(self, mean_node_std: float, mean_latent_sigma: float, height: int, width: int) -> Quality:
        """Flag when either score exceeds its threshold; the reason names the scores that did."""
        node = node_std_1024(mean_node_std, height, width)
        over = []
        if node > self.max_node_std_1024:
            over.append(f"mean node std {node:.2f} px (1024 frame) > {self.max_node_std_1024:.2f}")
        if mean_latent_sigma > self.max_latent_sigma:
            over.append(f"mean latent sigma {mean_latent_sigma:.4f} > {self.max_latent_sigma:.4f}")
        if over:
            return Quality(True, "uncertainty above the calibrated threshold: " + "; ".join(over), True)
        return Quality(False, f"within calibrated thresholds (mean node std {node:.2f} <= {self.max_node_std_1024:.2f} "
                              f"px, mean latent sigma {mean_latent_sigma:.4f} <= {self.max_latent_sigma:.4f})", True)


class Assessor:
    """The quality rule of one engine, or the 'not calibrated' verdict when it has none."""

    def __init__(self, rule: QualityRule | None, checkpoint_sha256: str):
        self.rule = rule
        self._uncalibrated = Quality(False, f"not calibrated for this model (checkpoint sha256 "
                                            f"{checkpoint_sha256[:12]}...): no reliability flag", False)

    def __call__(self, mean_node_std: float, mean_latent_sigma: float, height: int, width: int) -> Quality:
        if self.rule is None:
            return self._uncalibrated
        return self.rule.assess(mean_node_std, mean_latent_sigma, height, width)


def calibration_path(engine: str | Path) -> Path:
    """Where an engine's thresholds live: ``<stem>.quality.json`` beside it."""
    engine = Path(engine)
    return engine.with_name(engine.stem + ".quality.json")


def load_assessor(engine: str | Path, checkpoint_sha256: str) -> Assessor:
    """The thresholds calibrated for this checkpoint, if the file beside the engine has them."""
    path = calibration_path(engine)
    if not path.is_file():
        return Assessor(None, checkpoint_sha256)
    try:
        entry = json.loads(path.read_text()).get(checkpoint_sha256)
        rule = None if entry is None else QualityRule(float(entry["thresholds"]["node_std_1024"]),
                                                      float(entry["thresholds"]["mean_latent_sigma"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: malformed quality calibration file ({exc})") from None
    return Assessor(rule, checkpoint_sha256)
