"""Where the engine's time goes: onnxruntime's per-node profile, summed by operator type.

    python -m benchmarks.profile_ops [--model published-1024|default-512|PATH] [--samples 50]
                                     [--layout-optimizations] [--memory-pattern] [--runs 8]

Runs the engine on the bundled sample (after one warm-up) with onnxruntime's
profiler on and prints each operator type's share of kernel time. With
``--layout-optimizations`` the x86 NCHWc rewrites are on and the Reorder* rows
show what the layout changes cost around the per-image normalisations.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort

from benchmarks.run import IMAGE, MODELS


def profile(engine: Path, options, samples: int, runs: int) -> collections.Counter:
    """Mean kernel milliseconds per operator type over ``runs`` calls."""
    from benchmarks.shared_data import engine_input
    from chexmask_rt._core import latent_noise
    from chexmask_rt.image_io import read_image
    from chexmask_rt.metadata import read_engine_metadata
    from tests.reference.session import session_options

    info = read_engine_metadata(engine)[1]
    so = session_options(options.threads, options.layout_optimizations, options.memory_pattern)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(engine), so, providers=["CPUExecutionProvider"])
        feeds = {"image": engine_input(read_image(IMAGE), info.inputsize)[0][None, None],
                 "eps": latent_noise(samples, info.latents)}
        session.run(None, feeds)  # warm-up, excluded below
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    warmup = min((e for e in events if e["name"] == "model_run"), key=lambda e: e["ts"])
    after_warmup = warmup["ts"] + warmup["dur"]
    total = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= after_warmup:
            total[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return total


def main(argv: list[str] | None = None) -> int:
    from chexmask_rt import EngineOptions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="published-1024")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--layout-optimizations", action="store_true")
    p.add_argument("--memory-pattern", action="store_true")
    args = p.parse_args(argv)
    engine = MODELS[args.model]()[1] if args.model in MODELS else Path(args.model)
    options = EngineOptions(layout_optimizations=args.layout_optimizations, memory_pattern=args.memory_pattern)
    ops = profile(engine, options, args.samples, args.runs)
    total = sum(ops.values())
    print(f"{engine.name}, K={args.samples}, {options}: {total:.1f} ms of kernel time per run")
    for op, ms in ops.most_common():
        if ms / total >= 0.005:
            print(f"  {op:24s} {ms:7.1f} ms  {ms / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
