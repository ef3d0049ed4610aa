"""An engine's graph must agree with its metadata, checked when it is loaded.

The metadata says the input side S (``inputsize``) and the latent width (``latents``); the
graph's declared tensor shapes say what the engine really takes and gives. A disagreement
(inputsize 256 in a 512 graph, latents 3 in a 64-wide graph, 10 landmarks where the anatomy
has 120) would otherwise load and fail at the first prediction, or worse give numbers from the
wrong tensors. So every fixed dimension is read from the graph and compared, and the outputs of
each run are checked again (a graph may declare one shape and produce another). The C++ core
applies the same rules (``cpp/src/onnxruntime_backend.cpp``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .anatomy import NUM_LANDMARKS
from .errors import ModelError
from .metadata import ModelInfo

LANDMARK_OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu")
LATENT_OUTPUTS = ("latent_mu", "latent_sigma")
SAMPLES_OUTPUT = "landmarks_samples"
ANY = None  # a dimension that may vary from call to call (batch, samples)

Shape = Sequence[object]  # ints for fixed dimensions; a name or None for variable ones


def expected_shapes(info: ModelInfo) -> dict[str, tuple[int | None, ...]]:
    """Every tensor the runtime reads or feeds, with the dimensions it relies on."""
    shapes: dict[str, tuple[int | None, ...]] = {
        "image": (ANY, 1, info.inputsize, info.inputsize), "eps": (ANY, info.latents)}
    shapes.update({name: (ANY, NUM_LANDMARKS, 2) for name in LANDMARK_OUTPUTS})
    shapes.update({name: (ANY, info.latents) for name in LATENT_OUTPUTS})
    shapes[SAMPLES_OUTPUT] = (ANY, ANY, NUM_LANDMARKS, 2)  # only engines exported with --samples-output
    return shapes


def _why(expected: Sequence[int | None], info: ModelInfo) -> str:
    if expected[-1] == 2:
        return f"the runtime's anatomy has {NUM_LANDMARKS} landmarks (right lung 44, left lung 50, heart 26)"
    if len(expected) == 4:
        return f"the metadata says inputsize {info.inputsize}"
    return f"the metadata says latents {info.latents}"


def _text(shape: Shape) -> str:
    """A shape as the C++ core writes it: '?' for a dimension that is not a fixed size."""
    return "[" + ", ".join(str(d) if isinstance(d, (int, np.integer)) and d > 0 else "?" for d in shape) + "]"


def check_graph(declared: Mapping[str, tuple[str, Shape | None]], info: ModelInfo, source: str) -> None:
    """``declared``: tensor name -> (element type as onnxruntime names it, e.g. 'tensor(float)',
    declared shape). Raises ModelError for the first tensor that is not what ``info`` implies."""
    for name, expected in expected_shapes(info).items():
        if name not in declared:
            continue  # a missing tensor is reported by the caller with the full list
        kind, shape = declared[name]
        want = "float32 " + _text(expected)
        if kind != "tensor(float)" or shape is None or len(shape) != len(expected):
            raise ModelError(f"{source}: engine tensor '{name}' is {kind} {_text(shape or [])}, not {want}")
        for got, need in zip(shape, expected):
            if need is None:
                continue
            if not isinstance(got, (int, np.integer)) or got <= 0:
                raise ModelError(f"{source}: engine tensor '{name}' does not declare its shape {_text(shape)} "
                                 f"({want} expected: {_why(expected, info)}); re-export it with chexmask-rt export")
            if got != need:
                raise ModelError(f"{source}: engine graph disagrees with its metadata: '{name}' is "
                                 f"{_text(shape)}, but {_why(expected, info)} ({want})")


def check_outputs(outputs: Mapping[str, np.ndarray], batch: int, info: ModelInfo, source: str) -> None:
    """The arrays one run returned, against the batch and ``info``: ModelError if one is off."""
    for name, expected in expected_shapes(info).items():
        if name not in outputs:
            continue
        array = outputs[name]
        # the first free dimension is the batch; a second one (the raw decodes' samples) may be any
        want = tuple(batch if i == 0 else (got if d is None else d)
                     for i, (d, got) in enumerate(zip(expected, array.shape + (None,) * len(expected))))
        if array.dtype != np.float32 or array.shape != want:
            raise ModelError(f"{source}: engine output '{name}' is {array.dtype} {list(array.shape)}, "
                             f"not float32 {list(want)}")
