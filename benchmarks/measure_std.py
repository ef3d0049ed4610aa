"""Why the measures' std needs the decoded samples, and what emitting them costs.

    python -m benchmarks.measure_std [--samples 50] [--rounds 7]

1. Exports the shipped checkpoint (training/checkpoints/default-v10) with the raw-samples output to a
   temporary folder. On every shared radiograph (and the shared DICOM), clean and with Gaussian pixel
   noise (sigma 0.1, 0.2 of full scale), it compares each measure's std over the decoded samples
   (``chexmask_rt.measures``) with what the per-landmark stds alone would give if the landmarks moved
   independently (2000 draws from N(mean, std) per coordinate). The ratio exact / independent is
   printed per image and summarised: far from 1, so no runtime shortcut replaces the samples.
2. Times the native core at K = samples, one engine call, on example 1, for the same checkpoint
   exported without and with the samples output (the shipped engine has it), in alternating rounds
   (median of ``rounds``), so the output's cost is measured on the same machine state.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import chexmask_rt
from chexmask_rt.anatomy import organ_slices
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.measures import ORGAN_NAMES, cardiothoracic_ratio, polygon_area

from .shared_data import DATA, radiographs

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "training" / "checkpoints" / "default-v10"
IMAGES = radiographs() + [DATA / "dicom" / "cr_chest_monochrome2_jpeg.dcm"]


def export(folder: Path, samples_output: bool) -> Path:
    """The shipped checkpoint as the shipped engine is made, with or without the landmarks_samples output."""
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_export.onnx_export import build_network, export_onnx

    ckpt = load_checkpoint(CHECKPOINT)
    path = folder / ("with_samples.onnx" if samples_output else "without_samples.onnx")
    export_onnx(build_network(ckpt), path, checkpoint_sha256=ckpt.sha256, samples_output=samples_output,
                model_name="chexmask-rt-default", model_version="10", landmark_offsets=ckpt.landmark_offsets)
    return path


def _measures(points: np.ndarray) -> np.ndarray:
    """(..., 120, 2) -> (..., 4): CTR and the three organ areas."""
    sl = organ_slices()
    return np.stack([cardiothoracic_ratio(points), *(polygon_area(points[..., sl[k], :]) for k in ORGAN_NAMES)],
                    axis=-1)


def compare(seg, samples: int) -> np.ndarray:
    """Rows of exact / independent std ratios (CTR, right lung, left lung, heart area), one per image and noise."""
    rng = np.random.default_rng(0)
    ratios = []
    for path in IMAGES:
        gray = to_gray(read_image(path))
        for sigma in (0.0, 0.1, 0.2):
            noisy = np.clip(gray / 255.0 + sigma * rng.standard_normal(gray.shape), 0, 1)
            r = seg.predict((noisy * 255).round().astype(np.uint8), samples=samples, second_look=False)
            exact = _measures(r.landmark_samples).std(axis=0)
            draws = r.landmarks + r.landmarks_std * rng.standard_normal((2000, 120, 2))
            independent = _measures(draws).std(axis=0)
            ratios.append(exact / independent)
            print(f"{path.name[:28]:28s} noise {sigma:.1f}  exact/independent  CTR {ratios[-1][0]:.2f}  "
                  f"areas RL {ratios[-1][1]:.2f} LL {ratios[-1][2]:.2f} H {ratios[-1][3]:.2f}")
    return np.array(ratios)


def time_engines(engines: dict[str, Path], samples: int, rounds: int) -> dict[str, float]:
    """Median ms per predict (native, one engine call), the engines alternating in rounds."""
    image = read_image(IMAGES[1])
    segs = {name: chexmask_rt.load(path, backend="native") for name, path in engines.items()}
    times: dict[str, list[float]] = {name: [] for name in segs}
    for seg in segs.values():
        seg.predict(image, samples=samples, second_look=False)  # warm-up
    for _ in range(rounds):
        for name, seg in segs.items():
            start = time.perf_counter()
            seg.predict(image, samples=samples, second_look=False)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        engine, plain = export(Path(tmp), True), export(Path(tmp), False)
        ratios = compare(chexmask_rt.load(engine), args.samples)
        print(f"exact / independent over {len(ratios)} cases: CTR {ratios[:, 0].min():.2f}-{ratios[:, 0].max():.2f}, "
              f"areas {ratios[:, 1:].min():.2f}-{ratios[:, 1:].max():.2f}")
        ms = time_engines({"without": plain, "with": engine}, args.samples, args.rounds)
        print(f"native, K={args.samples}, one engine call, median of {args.rounds}: without samples output "
              f"{ms['without']:.1f} ms, with {ms['with']:.1f} ms (ratio {ms['with'] / ms['without']:.3f})")


if __name__ == "__main__":
    main()
