"""Seeded fuzz of the public API: mutated real images and DICOMs, random arrays, mutated engines.

    python tests/fuzz_public_api.py --inputs 10000 [--seed 20] [--backends native]
                                    [--time-box 420] [--report fuzz.json] [--keep DIR] [--only I]

Input ``i`` is made from ``numpy.random.default_rng([seed, i])`` alone, so ``--only i`` replays it.
Kinds, in fixed shares:
- ``file``: one of the real radiographs and DICOMs in ../shared/data (or a small re-encoding of
  one: PNG 8/16-bit, JPEG, TIFF, BMP, JPEG Lossless and 12-bit JPEG Extended DICOM) with bit flips, a truncation, or header edits (PNG IHDR
  sizes and depth, DICOM Rows/Columns/Bits, random bytes near the start), read by ``predict``;
- ``array``: random dtypes, shapes (extreme aspect ratios, empty, 1-D, 4-D), strides, byte
  orders and values (NaN, inf, out of range), with random ``bit_depth`` arguments;
- ``engine``: the toy engine (tests/toy_engine.py) with bit flips, truncations, or edits of its
  metadata and declared shapes, loaded and run;
- ``calibration``: the toy engine with a quality calibration file beside it (the shipped one,
  keyed by the toy's checkpoint) that has bit flips, a truncation, random bytes, deep nesting or
  edited thresholds, read by the core's JSON reader when the engine loads.
- ``mask``: organ-mask rasterisation (``rle.polygon_mask``, the core's ``polygon_mask``) of random
  polygons (0 to 200 points, up to 1e300 px away, NaN/inf, bad shapes and dtypes) on random and
  bad mask sizes; a mask must equal ``cv2.fillPoly``'s byte for byte (tests/fillpoly_reference.py).
Images go through the toy engine (fast), and one in 25 through the shipped model; the backends
take turns. An answer must be 120 finite landmarks; a failure must be a ``ChexmaskError``.
Anything else is an untyped failure. A crash ends the process: before each input its
description is written to ``KEEP/last_input.txt`` (and its file kept in KEEP), so a crash
names its input. A watchdog ends a hang after 60 s with the stacks.

Exit status 0: every planned input ran, with no untyped failure; 1 otherwise (also when the
time box ran out first). The report (counts by kind and outcome) is printed as JSON.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

import chexmask_rt
from chexmask_rt import rle

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from fillpoly_reference import fillpoly_mask  # noqa: E402
from jpeg_frames import encode, jpeg_dicom, with_restarts  # noqa: E402
from toy_engine import METADATA, sealed_toy_engine, toy_engine  # noqa: E402

DATA = TESTS.parents[1] / "shared" / "data"
WATCHDOG_S = 60


# --- seeds ----------------------------------------------------------------------------------------

def seed_files(root: Path) -> list[Path]:
    """The real files, and small re-encodings of two of them in every format the reader takes."""
    import imagecodecs

    real = sorted((DATA / "images").glob("*.[pj][np]g")) + sorted((DATA / "dicom").glob("*.dcm"))
    if len(real) < 7:
        raise SystemExit(f"fuzz seeds missing: expected the shared images and DICOMs under {DATA}")
    made = []
    for source in real[:2]:
        gray = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(gray, (96, 112), interpolation=cv2.INTER_AREA)
        colour = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        for name, image in [("png8.png", small), ("png16.png", small.astype(np.uint16) * 16),
                            ("rgb.png", colour), ("jpeg.jpg", small), ("tiff.tif", small.astype(np.uint16) * 16),
                            ("bmp.bmp", colour)]:
            path = root / f"{source.stem}_{name}"
            cv2.imwrite(str(path), image)
            made.append(path)
        # JPEG Lossless DICOMs (libjpeg-turbo's frame, one with restart markers) and a 12-bit JPEG Extended
        # one: the core's frame readers
        deep = small.astype(np.uint16) * 16
        extended = bytes(imagecodecs.jpeg8_encode(deep, level=80, bitspersample=12))
        for name, frame, syntax in [("lossless.dcm", encode(deep, 12, 6), "1.2.840.10008.1.2.4.70"),
                                    ("restarts.dcm", with_restarts(deep, 12, 16, 4), "1.2.840.10008.1.2.4.70"),
                                    ("extended.dcm", extended, "1.2.840.10008.1.2.4.51")]:
            path = root / f"{source.stem}_{name}"
            jpeg_dicom(path, frame, *deep.shape, bits_stored=12, syntax=syntax)
            made.append(path)
    return real + made


# --- mutations ------------------------------------------------------------------------------------

def flip_bits(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 17))
    for _ in range(n):
        at = int(rng.integers(len(data)))
        data[at] ^= 1 << int(rng.integers(8))
    return f"flip {n} bits"


def truncate(data: bytearray, rng) -> str:
    cut = int(rng.integers(0, len(data)))
    del data[cut:]
    return f"truncate at {cut}"


def edit_header(data: bytearray, rng) -> str:
    """Sizes, depths and tags where the formats keep them, else random bytes near the start."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 33:
        width, height = (int(v) for v in rng.choice([0, 1, 31, 32, 65535, 65536, 65537, 100000, 2**31 - 1, 2**32 - 1],
                                                    size=2))
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
        data[24] = int(rng.choice([1, 2, 4, 8, 16, 3, 0, 255]))
        if rng.random() < 0.7:  # a valid CRC, so the decoder believes the header
            data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
        return f"PNG IHDR {width}x{height} depth {data[24]}"
    if b"DICM" in data[:140]:
        # Rows (0028,0010), Columns (0028,0011), Bits Allocated/Stored (0028,0100/0101), little endian
        tags = [b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x00\x01", b"\x28\x00\x01\x01",
                b"\x28\x00\x02\x00", b"\xe0\x7f\x10\x00"]
        tag = tags[int(rng.integers(len(tags)))]
        at = bytes(data).find(tag)
        if at >= 0 and at + 10 <= len(data):
            value = int(rng.choice([0, 1, 7, 8, 12, 16, 17, 32, 255, 65535]))
            data[at + 8:at + 10] = value.to_bytes(2, "little")
            return f"DICOM tag {tag.hex()} = {value}"
    span = min(len(data), 512)
    n = int(rng.integers(1, 9))
    for _ in range(n):
        data[int(rng.integers(span))] = int(rng.integers(256))
    return f"{n} random bytes in the first {span}"


MUTATIONS = [flip_bits, truncate, edit_header]


def mutated_file(seeds: list[Path], rng, keep: Path) -> tuple[Path, str]:
    seed = seeds[int(rng.integers(len(seeds)))]
    data = bytearray(seed.read_bytes())
    done = [MUTATIONS[int(rng.integers(len(MUTATIONS)))](data, rng) for _ in range(int(rng.integers(1, 3)))
            if len(data) > 0]
    path = keep / f"input{seed.suffix if rng.random() < 0.9 else '.dat'}"
    path.write_bytes(bytes(data))
    return path, f"{seed.name}: {'; '.join(done)}"


DTYPES = [np.uint8, np.uint16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.float16,
          np.bool_, np.complex64, ">u2", ">f4", "<u2"]


def random_array(rng) -> tuple[np.ndarray, dict, str]:
    dtype = np.dtype(DTYPES[int(rng.integers(len(DTYPES)))])
    shape_kind = int(rng.integers(6))
    if shape_kind == 0:
        shape = tuple(int(v) for v in rng.integers(0, 5, size=int(rng.integers(0, 5))))
    elif shape_kind == 1:  # extreme aspect ratios
        long = int(rng.choice([4096, 16384, 65536, 65537]))
        shape = (32, long) if rng.random() < 0.5 else (long, 32)
    elif shape_kind == 2:
        shape = (int(rng.integers(28, 80)), int(rng.integers(28, 80)), int(rng.choice([1, 2, 3, 4, 5])))
    else:
        shape = (int(rng.integers(28, 200)), int(rng.integers(28, 200)))
    if dtype.kind == "f":
        values = rng.uniform(-0.5, 1.5, size=shape) if rng.random() < 0.3 else rng.random(size=shape)
        if rng.random() < 0.3 and values.size:
            values.flat[int(rng.integers(values.size))] = rng.choice([np.nan, np.inf, -np.inf])
        array = values.astype(dtype)
    elif dtype.kind == "c":
        array = (rng.random(size=shape) + 1j * rng.random(size=shape)).astype(dtype)
    elif dtype.kind == "b":
        array = rng.random(size=shape) < 0.5
    else:
        info = np.iinfo(dtype)
        high = int(rng.choice([256, 4096, int(info.max) + 1]))
        array = rng.integers(max(int(info.min), 0), min(high, int(info.max) + 1), size=shape).astype(dtype)
    what = []
    if array.ndim >= 2 and rng.random() < 0.25:
        array = array.T
        what.append("transposed")
    if array.ndim >= 2 and rng.random() < 0.15 and min(array.shape[:2]) >= 64:
        array = array[::2, ::-1]
        what.append("strided")
    depth = [None, None, None, 8, 9, 12, 16, 0, 17, -1][int(rng.integers(10))]
    kwargs = {} if depth is None else {"bit_depth": depth}
    return array, kwargs, f"{dtype.str}{list(array.shape)} {' '.join(what)} bit_depth={depth}"


def mutated_engine(rng, keep: Path) -> tuple[Path, str]:
    kind = int(rng.integers(5))
    if kind in (0, 4):  # 4: as an export writes it, which no change may leave loadable
        sound = sealed_toy_engine() if kind == 4 else toy_engine()
        data = bytearray(sound)
        what = flip_bits(data, rng) if rng.random() < 0.6 else truncate(data, rng)
        path = keep / "engine.onnx"
        path.write_bytes(bytes(data))
        return path, f"{'sealed ' if kind == 4 and data != sound else ''}toy engine: {what}"
    if kind == 1:
        key = list(METADATA)[int(rng.integers(len(METADATA)))]
        value = str(rng.choice(["", "0", "-1", "1", "2", "3", "8", "32", "63", "64", "65", "4096", "65536",
                                "99999999999999999999", "nan", "true", "1e3", " 64", "６４"]))
        path = keep / "engine.onnx"
        path.write_bytes(toy_engine(metadata={key: value}))
        return path, f"toy engine: metadata {key}={value!r}"
    if kind == 2:
        name = str(rng.choice(["image", "eps", "landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu",
                               "latent_sigma"]))
        shape = [str(v) if v in ("b", "n") else int(v)
                 for v in rng.choice(["b", "n", 0, 1, 2, 8, 10, 64, 120, 121], size=int(rng.integers(0, 5)))]
        path = keep / "engine.onnx"
        path.write_bytes(toy_engine(declared={name: shape}))
        return path, f"toy engine: {name} declared {shape}"
    landmarks = int(rng.choice([1, 10, 93, 94, 119, 121, 240]))
    path = keep / "engine.onnx"
    path.write_bytes(toy_engine(landmarks=landmarks, per_sample=bool(rng.random() < 0.5),
                                declared={n: ["batch", 120, 2] for n in ("landmarks_mean", "landmarks_std",
                                                                          "landmarks_mu")}))
    return path, f"toy engine: {landmarks} landmarks declared as 120"


def mutated_calibration(rng, keep: Path) -> tuple[Path, str]:
    """A folder with the toy engine and a damaged ``toy.quality.json``: the engine's path."""
    shipped = json.loads((Path(chexmask_rt.default_model_path()).with_suffix(".quality.json")).read_text())
    entry = next(iter(shipped.values()))
    kind = int(rng.integers(4))
    if kind == 0:  # thresholds of another type, or nested deeper than the reader takes
        value = [None, True, "5.3", [], {}, -1, 1e308, [[[[[[]]]]]]][int(rng.integers(8))]
        key = str(rng.choice(["node_std_1024", "mean_latent_sigma"]))
        text = json.dumps({METADATA["checkpoint_sha256"]: {**entry, "thresholds": {**entry["thresholds"], key: value}}})
        what = f"thresholds.{key} = {value!r}"
    elif kind == 1:
        depth = int(rng.choice([10, 63, 64, 65, 1000, 100_000]))
        text = "[" * depth + "]" * depth if rng.random() < 0.5 else "[" * depth
        what = f"nesting {depth}"
    else:
        data = bytearray(json.dumps({METADATA["checkpoint_sha256"]: entry}).encode())
        what = (flip_bits if kind == 2 else [truncate, edit_header][int(rng.integers(2))])(data, rng)
        text = bytes(data)
    folder = keep / "calibrated"
    folder.mkdir(exist_ok=True)
    (folder / "toy.quality.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    (folder / "toy.onnx").write_bytes(toy_engine())
    return folder / "toy.onnx", f"calibration: {what}"


MASK_SIDES = [1, 2, 3, 17, 64, 300, 1000]
BAD_MASK_SIDES = [0, -1, 65537, 2**31, 2**63 - 1, 10.5, None]


def random_polygon(rng) -> tuple[object, object, object, str]:
    """Points, height and width for ``rle.polygon_mask``: mostly usable, some bad in one way."""
    height, width = (int(rng.choice(MASK_SIDES)) for _ in range(2))
    if rng.random() < 0.05:  # the longest side allowed, kept cheap by a thin other side
        height, width = (65536, int(rng.integers(1, 4)))[:: 1 if rng.random() < 0.5 else -1]
    n = int(rng.choice([0, 1, 2, 3, 5, 44, 50, 200]))
    spread = 10.0 ** (rng.uniform(0, 4) if rng.random() < 0.8 else rng.uniform(4, 300))
    points = rng.normal(max(height, width) / 2, spread, (n, 2))
    what = [f"{n} points, spread {spread:.3g}"]
    flaw = rng.random()
    if flaw < 0.1 and n:
        points[int(rng.integers(n)), int(rng.integers(2))] = rng.choice([np.nan, np.inf, -np.inf])
        what.append("a non-finite value")
    elif flaw < 0.15:
        points = [points.reshape(-1), points[:, :1], np.stack([points] * 2), np.hstack([points, points])][int(rng.integers(4))]
        what.append(f"shape {list(np.shape(points))}")
    elif flaw < 0.2:
        dtype = [np.float32, np.int32, np.float16, object, str][int(rng.integers(5))]
        points = points.astype(dtype)
        what.append(f"dtype {np.dtype(dtype).name}")
    elif flaw < 0.25:
        height = BAD_MASK_SIDES[int(rng.integers(len(BAD_MASK_SIDES)))]
        what.append(f"height {height}")
    return points, height, width, f"{height}x{width} mask: {', '.join(what)}"


def check_mask(points, height, width) -> None:
    mask = rle.polygon_mask(points, height, width)
    expected = fillpoly_mask(np.asarray(points, dtype=np.float64), height, width)
    if not np.array_equal(mask, expected):
        raise AssertionError(f"{int((mask != expected).sum())} pixels differ from cv2.fillPoly")


# --- the run --------------------------------------------------------------------------------------

def check_result(result) -> None:
    landmarks = np.asarray(result.landmarks)
    if landmarks.shape != (120, 2) or not np.isfinite(landmarks).all() or not np.isfinite(result.landmarks_std).all():
        raise AssertionError(f"a result of shape {landmarks.shape} with non-finite values")
    if result.quality is None or not isinstance(result.quality.reason, str) or not result.quality.reason:
        raise AssertionError(f"a result without its reliability flag: {result.quality!r}")


class Fuzzer:
    def __init__(self, seed: int, backends: list[str], keep: Path):
        self.seed, self.backends, self.keep = seed, backends, keep
        self.seeds = seed_files(keep)
        toy = keep / "toy.onnx"
        toy.write_bytes(toy_engine())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.segmenters = {(b, m): chexmask_rt.load(path, backend=b, threads=1) for b in backends
                               for m, path in (("toy", toy), ("shipped", chexmask_rt.default_model_path()))}
        self.counts: Counter = Counter()
        self.untyped: list[dict] = []

    def one(self, i: int) -> None:
        rng = np.random.default_rng([self.seed, i])
        backend = self.backends[i % len(self.backends)]
        draw = rng.random()
        kind = ("file" if draw < 0.6 else "array" if draw < 0.78 else "engine" if draw < 0.88
                else "calibration" if draw < 0.93 else "mask")
        model = "shipped" if rng.random() < 0.04 else "toy"
        kwargs: dict = {"samples": int(rng.integers(1, 4)), "second_look": bool(rng.random() < 0.5)}
        if kind == "file":
            item, what = mutated_file(self.seeds, rng, self.keep)
        elif kind == "array":
            item, extra, what = random_array(rng)
            kwargs.update(extra)
        elif kind == "mask":
            *polygon, what = random_polygon(rng)
        else:
            engine, what = (mutated_engine if kind == "engine" else mutated_calibration)(rng, self.keep)
            item = np.random.default_rng(i).integers(0, 256, (90, 70), dtype=np.uint8)
        (self.keep / "last_input.txt").write_text(f"input {i} (seed {self.seed}): {kind} {backend} {model}: {what}\n")
        outcome = "ok"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "mask":
                    check_mask(*polygon)
                elif kind in ("engine", "calibration"):
                    segmenter = chexmask_rt.load(engine, backend=backend, threads=1)
                    check_result(segmenter.predict(item, **kwargs))
                else:
                    check_result(self.segmenters[(backend, model)].predict(item, **kwargs))
        except chexmask_rt.InputError:
            outcome = "InputError"
        except chexmask_rt.ModelError:
            outcome = "ModelError"
        except chexmask_rt.ChexmaskError:
            outcome = "ChexmaskError"
        except Exception as exc:  # the defect this fuzz looks for
            outcome = f"untyped {type(exc).__name__}"
            self.untyped.append({"input": i, "kind": kind, "backend": backend, "what": what,
                                 "error": f"{type(exc).__name__}: {exc}"[:300],
                                 "where": traceback.format_exc().strip().splitlines()[-3:]})
        if what.startswith("sealed") and outcome != "ModelError":
            self.untyped.append({"input": i, "kind": kind, "backend": backend, "what": what,
                                 "error": f"a changed sealed engine was not refused: {outcome}"})
        self.counts[(kind, outcome)] += 1

    def report(self, planned: int, ran: int, seconds: float) -> dict:
        kinds = Counter()
        outcomes = Counter()
        for (kind, outcome), n in self.counts.items():
            kinds[kind] += n
            outcomes[outcome] += n
        from chexmask_rt import _core
        return {"seed": self.seed, "backends": self.backends, "core": _core.__file__, "planned": planned, "ran": ran,
                "crashes": 0,
                "seconds": round(seconds, 1), "inputs_by_kind": dict(sorted(kinds.items())),
                "outcomes": dict(sorted(outcomes.items())),
                "by_kind_and_outcome": {f"{k} {o}": n for (k, o), n in sorted(self.counts.items())},
                "untyped_failures": self.untyped[:50]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="index of the first input (to split a run)")
    parser.add_argument("--only", type=int, help="run input ONLY alone (replay)")
    parser.add_argument("--backends", default="native")
    parser.add_argument("--time-box", type=float, default=600.0, help="seconds; stop and fail past it")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--keep", type=Path, help="folder for the current input (default: a temporary one)")
    parser.add_argument("--expect-core", type=Path, help="fail unless chexmask_rt._core is loaded from this folder")
    parser.add_argument("--summary", type=Path, help="print one line about an earlier report, and exit")
    args = parser.parse_args(argv)
    if args.summary:
        report = json.loads(args.summary.read_text())
        print(f"fuzz: {report['ran']} inputs (seed {report['seed']}, {report['seconds']} s, core {report['core']}): "
              f"by kind {report['inputs_by_kind']}, outcomes {report['outcomes']}, crashes 0")
        return 0
    from chexmask_rt import _core
    if args.expect_core and not Path(_core.__file__).is_relative_to(args.expect_core):
        raise SystemExit(f"chexmask_rt._core comes from {_core.__file__}, not from {args.expect_core}")
    keep = args.keep or Path(tempfile.mkdtemp(prefix="chexmask_fuzz_"))
    keep.mkdir(parents=True, exist_ok=True)
    fuzzer = Fuzzer(args.seed, args.backends.split(","), keep)
    indices = [args.only] if args.only is not None else range(args.first, args.first + args.inputs)
    start, ran = time.monotonic(), 0
    for i in indices:
        if time.monotonic() - start > args.time_box:
            break
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=sys.__stderr__)  # a hang ends the run
        fuzzer.one(i)
        faulthandler.cancel_dump_traceback_later()
        ran += 1
    report = fuzzer.report(len(indices), ran, time.monotonic() - start)
    text = json.dumps(report, indent=1)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0 if ran == len(indices) and not fuzzer.untyped else 1


if __name__ == "__main__":
    sys.exit(main())
