"""A/B of two engine files (e.g. before and after a graph rewrite), in one process.

    python -m benchmarks.ab_engines BEFORE.onnx AFTER.onnx [--rounds 20] [--threads N]

Both sessions use the runtime's settings (chexmask_rt.EngineOptions defaults) with
thread spinning off, so one session's idle threads do not steal the cores from the
other; calls alternate between them (K=1 then K=50, on a seeded random image), so a
shared machine's drifts hit both alike. Prints the largest output difference and
each engine's p50.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import onnxruntime as ort

from chexmask_rt.metadata import read_engine_metadata
from tests.reference.session import session_options


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engines", nargs=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    info = read_engine_metadata(args.engines[0])[1]
    so = session_options(args.threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = [ort.InferenceSession(e, so, providers=["CPUExecutionProvider"]) for e in args.engines]
    rng = np.random.default_rng(0)
    image = rng.random((1, 1, info.inputsize, info.inputsize), dtype=np.float32)
    feeds = {k: {"image": image, "eps": rng.standard_normal((k, info.latents)).astype(np.float32)} for k in (1, 50)}
    outs = [s.run(None, feeds[50]) for s in sessions]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*outs))
    times = {(i, k): [] for i in range(2) for k in feeds}
    for _ in range(args.rounds):
        for i, s in enumerate(sessions):
            for k, feed in feeds.items():
                t = time.perf_counter()
                s.run(None, feed)
                times[(i, k)].append((time.perf_counter() - t) * 1000)
    p50 = {key: float(np.median(v)) for key, v in times.items()}
    print(f"largest output difference: {diff:.2e}")
    for i, e in enumerate(args.engines):
        print(f"{e}: K=1 p50 {p50[(i, 1)]:.1f} ms, K=50 p50 {p50[(i, 50)]:.1f} ms")
    print(f"after / before: K=1 {p50[(1, 1)] / p50[(0, 1)]:.3f}, K=50 {p50[(1, 50)] / p50[(0, 50)]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
