"""The whole reference path: image -> preprocess -> engine -> back-projection -> second look.

It reproduces ``Segmenter._run_batch / _one_look / _postprocess`` of the Python backend as it was
before the core became the only pipeline, the reliability flag excluded: each chunk of
``batch_size`` images is one engine call sharing one eps, their crops a second one.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chexmask_rt.image_io import read_image

from .frames import Letterbox
from .preprocess import preprocess, to_gray
from .sampling import latent_noise
from .second_look import combine, second_look_square, without_second_look
from .session import Session



@dataclass(frozen=True)
class ReferenceResult:
    """One image's answer in original pixels, with the fields the runtime's Result has."""

    landmarks: np.ndarray
    landmarks_std: np.ndarray
    landmarks_mu: np.ndarray
    latent_mu: np.ndarray
    latent_sigma: np.ndarray
    height: int
    width: int
    samples: int
    seed: int
    model: str
    image: str | None = None
    landmark_samples: np.ndarray | None = None
    second_look: dict | None = None  # as the core's Result.second_look; None: one look

    @property
    def node_uncertainty(self) -> np.ndarray:
        return self.landmarks_std.mean(axis=1)

    @property
    def mean_node_std(self) -> float:
        return float(self.node_uncertainty.mean())

    @property
    def mean_latent_sigma(self) -> float:
        return float(self.latent_sigma.mean())


class ReferenceSegmenter:
    """An engine run through the reference pipeline; ``predict``/``predict_batch`` as the runtime's."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, **options: bool):
        self.session = Session(path, threads, **options)
        self.path = self.session.path

    @property
    def inputsize(self) -> int:
        return self.session.metadata.inputsize

    def predict(self, image, *, samples: int = 50, seed: int = 0, bit_depth: int | None = None,
                second_look: bool | None = None) -> ReferenceResult:
        return self.predict_batch([image], samples=samples, seed=seed, bit_depth=bit_depth, second_look=second_look)[0]

    def predict_batch(self, images: Sequence, *, samples: int = 50, seed: int = 0, bit_depth: int | None = None,
                      batch_size: int = 1, second_look: bool | None = None) -> list[ReferenceResult]:
        """One result per image; ``second_look`` None takes the engine's own setting."""
        look_twice = self.session.metadata.second_look if second_look is None else second_look
        eps = latent_noise(samples, self.session.metadata.latents, seed)
        results: list[ReferenceResult] = []
        for start in range(0, len(images), batch_size):
            chunk = [_gray(item, bit_depth) for item in images[start:start + batch_size]]
            firsts = self._one_look([(*item, None) for item in chunk], eps, samples, seed)
            if look_twice:
                squares = {i: sq for i, r in enumerate(firsts) if (sq := second_look_square(r)) is not None}
                # a crop keeps its image's bit depth (inferred afresh, it could differ)
                crops = [(*chunk[i], sq) for i, sq in squares.items()]
                seconds = self._one_look(crops, eps, samples, seed) if squares else []
                for (i, sq), second in zip(squares.items(), seconds):
                    firsts[i] = combine(firsts[i], second, *sq)
                firsts = [r if i in squares else without_second_look(r) for i, r in enumerate(firsts)]
            results.extend(firsts)
        return results

    def _one_look(self, items, eps: np.ndarray, samples: int, seed: int) -> list[ReferenceResult]:
        """One engine call for (gray, bit depth, name, square) items."""
        prepared = [(*preprocess(gray, self.inputsize, bit_depth=depth, square=square), name)
                    for gray, depth, name, square in items]
        out = self.session.run(np.stack([tensor for tensor, _, _ in prepared])[:, None], eps)
        return [self._postprocess(out, i, frame, name, samples, seed) for i, (_, frame, name) in enumerate(prepared)]

    def _postprocess(self, out: dict, i: int, frame: Letterbox, name: str | None, samples: int,
                     seed: int) -> ReferenceResult:
        decodes = out.get("landmarks_samples")
        return ReferenceResult(
            landmarks=frame.to_original(out["landmarks_mean"][i]),
            landmarks_std=frame.scale_to_original(out["landmarks_std"][i]),
            landmarks_mu=frame.to_original(out["landmarks_mu"][i]),
            latent_mu=out["latent_mu"][i].astype(np.float64),
            latent_sigma=out["latent_sigma"][i].astype(np.float64),
            height=frame.height, width=frame.width, samples=samples, seed=int(seed),
            model=self.session.metadata.model_id, image=name,
            landmark_samples=None if decodes is None else frame.to_original(decodes[i]))


def _gray(item, bit_depth: int | None) -> tuple[np.ndarray, int | None, str | None]:
    """(gray array, its resolved bit depth, file name) of a path or an array."""
    name = None
    if not isinstance(item, np.ndarray):
        name, item = os.fspath(item), read_image(item)
    gray, full_scale = to_gray(item, bit_depth)
    depth = None if gray.dtype != np.uint16 else int(full_scale).bit_length()
    return gray, depth, name


def reference_predict(model: str | os.PathLike, images: Sequence, *, samples: int = 50, seed: int = 0,
                      bit_depth: int | None = None, batch_size: int = 1,
                      second_look: bool | None = None) -> list[ReferenceResult]:
    """What the runtime's Python backend gave for ``predict_batch(images, ...)``, quality excluded."""
    return ReferenceSegmenter(model).predict_batch(images, samples=samples, seed=seed, bit_depth=bit_depth,
                                                   batch_size=batch_size, second_look=second_look)
