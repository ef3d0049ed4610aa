"""The answer for one image: landmarks and their uncertainty in original pixels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy import organ_slices
from .notice import INTENDED_USE
from .quality import Quality

_ORGANS = organ_slices()


@dataclass(frozen=True)
class Result:
    """Landmarks (x, y) in the original image's pixels, with uncertainty.

    ``landmarks`` is the mean over the latent samples (CheXmask-U's
    "Landmarks (Mean)"), ``landmarks_std`` their per-coordinate std (ddof 0),
    ``landmarks_mu`` the decode at z = mu. After a pooled second look
    (``extra["second_look"]``; the shipped model's default) the samples are both looks'
    and the decode at mu and the latents are the two looks' averages (``chexmask_rt.second_look``).
    """

    landmarks: np.ndarray        # (120, 2)
    landmarks_std: np.ndarray    # (120, 2)
    landmarks_mu: np.ndarray     # (120, 2)
    latent_mu: np.ndarray        # (latents,)
    latent_sigma: np.ndarray     # (latents,)
    height: int
    width: int
    samples: int
    seed: int
    model: str
    image: str | None = None
    quality: Quality | None = None  # the reliability flag (chexmask_rt.quality); None only for hand-made Results
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def node_uncertainty(self) -> np.ndarray:
        """(120,) per-landmark uncertainty: (std_x + std_y) / 2, in pixels."""
        return self.landmarks_std.mean(axis=1)

    @property
    def mean_node_std(self) -> float:
        """The paper's image score: mean node uncertainty over the 120 landmarks."""
        return float(self.node_uncertainty.mean())

    @property
    def mean_latent_sigma(self) -> float:
        """The paper's latent score: mean of the encoder's sigma over the latent dims."""
        return float(self.latent_sigma.mean())

    @property
    def right_lung(self) -> np.ndarray:
        return self.landmarks[_ORGANS["right_lung"]]

    @property
    def left_lung(self) -> np.ndarray:
        return self.landmarks[_ORGANS["left_lung"]]

    @property
    def heart(self) -> np.ndarray:
        return self.landmarks[_ORGANS["heart"]]

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the format of ``chexmask-rt predict --json``).

        ``quality`` is not in it: this format must stay equal to what the C++ example
        ``chexmask-rt-cpp`` prints (tests/test_native.py); it is in the CSV row instead."""
        out = {
            "image": self.image,
            "height": self.height,
            "width": self.width,
            "samples": self.samples,
            "seed": self.seed,
            "model": self.model,
            "intended_use": INTENDED_USE,
            "landmarks": self.landmarks.tolist(),
            "landmarks_std": self.landmarks_std.tolist(),
            "landmarks_mu": self.landmarks_mu.tolist(),
            "latent_mu": self.latent_mu.tolist(),
            "latent_sigma": self.latent_sigma.tolist(),
            "node_uncertainty": self.node_uncertainty.tolist(),
            "scores": {"mean_node_std": self.mean_node_std, "mean_latent_sigma": self.mean_latent_sigma},
        }
        if "second_look" in self.extra:  # how the second look made it (chexmask_rt.second_look)
            out["second_look"] = self.extra["second_look"]
        return out

    def organ_masks(self) -> dict[str, np.ndarray]:
        """Filled landmark polygons per organ ("right_lung", "left_lung", "heart"): uint8 0/255, original size."""
        from .rle import polygon_mask

        return {name: polygon_mask(self.landmarks[sl], self.height, self.width) for name, sl in _ORGANS.items()}

    def to_csv_row(self) -> dict[str, str]:
        """One CheXmask-U-style CSV row (columns: ``chexmask_rt.csv_output.COLUMNS``)."""
        from .csv_output import csv_row

        return csv_row(self)
