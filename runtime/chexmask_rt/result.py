"""The answer for one image: landmarks and their uncertainty in original pixels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy import organ_slices
from .dicom_source import UID_KEYWORDS, DicomSource
from .measures import Measures, measure
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
    source: DicomSource | None = None  # UIDs and pixel spacing of a DICOM input (chexmask_rt.dicom_source)
    # (K, 120, 2) decoded samples in original pixels, only from engines exported with --samples-output
    landmark_samples: np.ndarray | None = field(default=None, compare=False, repr=False)

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

    def measures(self) -> Measures:
        """Cardiothoracic ratio and organ areas, in px and (with a DICOM pixel spacing) mm, with their
        std over the decoded samples when the result has them (:mod:`chexmask_rt.measures`)."""
        return measure(self.landmarks, self.landmark_samples, None if self.source is None else self.source.spacing)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the format of ``chexmask-rt predict --json``).

        Its other keys equal what the C++ example ``chexmask-rt-cpp`` prints (tests/test_native.py),
        ``quality`` (the reliability flag; null only for a hand-made Result) included; ``dicom`` (UIDs,
        empty for other inputs) and ``measures`` are the Python runtime's."""
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
        out["quality"] = None if self.quality is None else self.quality.to_dict()
        out["dicom"] = dict.fromkeys(UID_KEYWORDS, "") if self.source is None else self.source.uids()
        out["measures"] = self.measures().to_dict()
        return out

    def organ_masks(self) -> dict[str, np.ndarray]:
        """Filled landmark polygons per organ ("right_lung", "left_lung", "heart"): uint8 0/255, original size."""
        from .rle import polygon_mask

        return {name: polygon_mask(self.landmarks[sl], self.height, self.width) for name, sl in _ORGANS.items()}

    def to_dicom_seg(self, source_dataset, **kwargs):
        """A DICOM Segmentation of the three organ masks over ``source_dataset`` (the pydicom dataset of the
        image this result came from); see :func:`chexmask_rt.dicom_out.segmentation`."""
        from .dicom_out import segmentation

        return segmentation(self, source_dataset, **kwargs)

    def to_dicom_sr(self, source_dataset, **kwargs):
        """A Comprehensive SR (TID 1500 measurement report) of the contours, scores and measures over
        ``source_dataset``; see :func:`chexmask_rt.dicom_out.measurement_report`."""
        from .dicom_out import measurement_report

        return measurement_report(self, source_dataset, **kwargs)
