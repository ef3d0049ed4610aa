"""Seeded fuzz of the core's JPEG frame readers, the parsers of untrusted compressed data written here:
the lossless decoder (``_core.decode_lossless_jpeg``) and the DCT check (``_core.check_dct_jpeg``).
scripts/sanitize_and_fuzz.sh runs it under ASan + UBSan.

    python tests/fuzz_jpeg_frames.py [--inputs 20000] [--seed 1] [--time-box 90] [--expect-core DIR]

Input ``i`` is a sound frame mutated by ``numpy.random.default_rng([seed, i])``: bit flips, a cut,
bytes inserted or removed, or random values in the frame, table, restart and scan headers. The frames:
libjpeg-turbo's lossless ones at 2-16 bits and every predictor, lossless ones with restart intervals
or a point transform (read by the decoder); libjpeg-turbo's 8- and 12-bit DCT ones, and Pillow's colour
ones, subsampled, with restart markers (read by the check). A decode must give samples of the frame's
size, a check a precision of 8 or 12, or either raise InputError; anything else, or a crash, fails.
Exit 0 when every planned input ran.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jpeg_frames import encode, segments, with_point_transform, with_restarts  # noqa: E402

from chexmask_rt import InputError, _core  # noqa: E402

LIMIT = 1 << 22


def sound_frames() -> list[tuple[str, bytes]]:
    """(reader, frame): 'lossless' for decode_lossless_jpeg, 'dct' for check_dct_jpeg."""
    import io

    import imagecodecs
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:56]
    frames = []
    for bits in (2, 8, 12, 16):
        smooth = ((np.sin(x / 7) + np.cos(y / 5) + 2) / 4 * ((1 << bits) - 1)).astype(np.int64)
        noisy = np.clip(smooth + rng.integers(-3, 4, smooth.shape), 0, (1 << bits) - 1).astype(np.uint16)
        frames += [("lossless", encode(noisy, bits, predictor)) for predictor in range(1, 8)]
        if bits >= 8:
            frames += [("lossless", with_restarts(noisy, bits, 8, 1 + bits % 7)),
                       ("lossless", with_point_transform(noisy >> 1 << 1, bits, 1, 4))]
        if bits in (8, 12):
            frames += [("dct", bytes(imagecodecs.jpeg8_encode(noisy.astype(np.uint8) if bits == 8 else noisy,
                                                              level=level, bitspersample=bits)))
                       for level in (50, 95)]
    colour = np.stack([smooth, smooth[::-1], smooth[:, ::-1]], -1).astype(np.uint8)
    for subsampling, restarts in ((0, {}), (2, {"restart_marker_blocks": 3}), (1, {"restart_marker_rows": 1})):
        buf = io.BytesIO()
        Image.fromarray(colour).save(buf, "JPEG", quality=80, subsampling=subsampling, **restarts)
        frames.append(("dct", buf.getvalue()))
    return frames


def mutate(frame: bytes, rng) -> tuple[bytes, str]:
    data = bytearray(frame)
    kind = int(rng.integers(5))
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        return bytes(data), "bit flips"
    if kind == 1:
        return bytes(data[:int(rng.integers(len(data)))]), "cut"
    if kind == 2:
        at = int(rng.integers(len(data)))
        return bytes(data[:at] + rng.integers(0, 256, int(rng.integers(1, 5))).astype(np.uint8).tobytes() + data[at:]), "insert"
    if kind == 3:
        at = int(rng.integers(len(data)))
        return bytes(data[:at] + data[at + int(rng.integers(1, 5)):]), "remove"
    found, data_at = segments(frame)
    start = min(at for at, _ in found.values())
    for _ in range(int(rng.integers(1, 4))):  # the headers: frame, tables, restart interval, scan
        data[int(rng.integers(start, data_at))] = int(rng.choice([0, 1, 2, 7, 8, 15, 16, 17, 255, rng.integers(256)]))
    return bytes(data), "header values"


def read(reader: str, data: bytes) -> tuple[bool, int]:
    """(whether the answer is one a sound frame could give, the precision it says) of the reader's call."""
    if reader == "lossless":
        samples, precision = _core.decode_lossless_jpeg(data, LIMIT)
        return samples.ndim == 2 and samples.size > 0 and 2 <= precision <= 16 and samples.max() < 1 << precision, \
            precision
    precision = _core.check_dct_jpeg(data)
    return precision in (8, 12), precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-box", type=float, default=90.0)
    parser.add_argument("--expect-core", type=Path, help="fail unless chexmask_rt._core was loaded from under DIR "
                                                           "(the sanitizer build)")
    args = parser.parse_args()
    if args.expect_core and args.expect_core.resolve() not in Path(_core.__file__).parents:
        print(f"chexmask_rt._core came from {_core.__file__}, not from under {args.expect_core}")
        return 1
    frames = sound_frames()
    for reader, frame in frames:  # a reader that refuses sound frames would pass the fuzz unseen
        try:
            answer_sound = read(reader, frame)[0]
        except InputError as exc:
            print(f"a sound {reader} frame was refused: {exc}")
            return 1
        if not answer_sound:
            print(f"a sound {reader} frame gave an answer no sound frame gives")
            return 1
    counts: Counter = Counter()
    began = time.monotonic()
    for i in range(args.inputs):
        if time.monotonic() - began > args.time_box:
            print(f"time box of {args.time_box:.0f} s ran out after {i} inputs")
            return 1
        rng = np.random.default_rng([args.seed, i])
        reader, source = frames[int(rng.integers(len(frames)))]
        data, how = mutate(source, rng)
        try:
            sound, precision = read(reader, data)
        except InputError:
            counts[f"{reader} {how}: refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - any other type is the failure this looks for
            print(f"input {i} ({reader}, {how}): untyped {type(exc).__name__}: {exc}")
            return 1
        if not sound:
            print(f"input {i} ({reader}, {how}): an answer no sound frame gives (precision {precision})")
            return 1
        counts[f"{reader} {how}: read"] += 1
    print(f"{args.inputs} inputs in {time.monotonic() - began:.1f} s:", dict(sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
