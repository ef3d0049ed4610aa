"""Int8 encoder experiment: ONNX Runtime static quantisation of the convolutions vs float32.

    python -m benchmarks.int8_encoder [--model M] [--images DIR] [--format QDQ|QOperator]

Quantises every Conv of an engine (int8 per-channel weights, uint8 activations,
min-max calibration on the images), then compares on the same images: landmark
deviation from float32 (mean and max, original pixels and the 1024 frame) and
p50 latency through the native backend at K=50. The float32 engine stays the
default unless the int8 one is both within 1 px mean of it on every image and
faster; the verdict line says which.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"


def quantize(engine: Path, out: Path, images: list[np.ndarray], quant_format: str) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from benchmarks.shared_data import engine_input
    from chexmask_rt._core import latent_noise
    from chexmask_rt.metadata import read_engine_metadata

    info = read_engine_metadata(engine)[1]
    feeds = iter([{"image": engine_input(img, info.inputsize)[0][None, None],
                   "eps": latent_noise(1, info.latents)} for img in images])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    quantize_static(str(engine), str(out), Reader(), quant_format=getattr(QuantFormat, quant_format),
                    op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)


def p50_ms(segs: dict, image: np.ndarray, samples: int, rounds: int = 3, calls: int = 8) -> dict[str, float]:
    """Blocks of calls per engine, alternated, so slow drift of a shared machine hits both alike."""
    times = {name: [] for name in segs}
    for name, seg in segs.items():
        seg.predict(image, samples=samples)  # warm-up
    for _ in range(rounds):
        for name, seg in segs.items():
            for _ in range(calls):
                t = time.perf_counter()
                seg.predict(image, samples=samples)
                times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    import chexmask_rt
    from chexmask_rt.image_io import read_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=chexmask_rt.default_model_path())
    p.add_argument("--images", type=Path, default=SHARED_IMAGES, help="real radiographs (default ../shared/data/images)")
    p.add_argument("--format", default="QDQ", choices=("QDQ", "QOperator"))
    p.add_argument("--samples", type=int, default=50)
    args = p.parse_args(argv)
    paths = sorted(q for q in args.images.iterdir() if q.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no PNG/JPEG images in {args.images}")
    images = [read_image(q) for q in paths]
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "int8.onnx"
        quantize(args.model, int8, images, args.format)
        segs = {"float32": chexmask_rt.load(args.model), "int8": chexmask_rt.load(int8)}
        print(f"{args.model.name}: int8 {args.format} engine {int8.stat().st_size / 1e6:.1f} MB vs "
              f"{args.model.stat().st_size / 1e6:.1f} MB; backend {segs['float32'].backend}")
        worst = 0.0
        for q, img in zip(paths, images):
            a, b = (s.predict(img, samples=args.samples) for s in segs.values())
            d = np.linalg.norm(a.landmarks - b.landmarks, axis=1)
            to_1024 = 1024 / max(img.shape[:2])
            worst = max(worst, float(d.mean()))
            print(f"  {q.name}: deviation mean {d.mean():.2f} px, max {d.max():.2f} px "
                  f"(1024 frame: {d.mean() * to_1024:.2f} / {d.max() * to_1024:.2f}); mean std "
                  f"{a.landmarks_std.mean():.2f} vs {b.landmarks_std.mean():.2f}")
        lat = p50_ms(segs, images[0], args.samples)
        print(f"  p50 at K={args.samples} on {paths[0].name}: float32 {lat['float32']:.1f} ms, "
              f"int8 {lat['int8']:.1f} ms ({lat['float32'] / lat['int8']:.2f}x)")
    accurate, faster = worst <= 1.0, lat["int8"] < lat["float32"]
    print(f"verdict: int8 is {'within' if accurate else 'NOT within'} 1 px mean on every image and "
          f"{'faster' if faster else 'NOT faster'}: "
          f"{'candidate default' if accurate and faster else 'float32 stays the default'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
