"""What the engine's integrity check costs at load (a number, not a test).

    python -m benchmarks.engine_load [--rounds 9]

Times, in alternating rounds, ``chexmask_rt.load()`` of the shipped engine as the package opens it
(pinned by ``models/default.onnx.sha256``: one SHA-256 of the file) and with nothing to check it
against (``expected_sha256=""``; the shipped engine predates the seal), and the core's SHA-256 of
the file's bytes alone, with the CPU's SHA instructions where the core uses them.
"""
from __future__ import annotations

import argparse
import sys

import chexmask_rt
from benchmarks.timing import alternating_medians
from chexmask_rt import _core


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    data = chexmask_rt.default_model_path().read_bytes()
    unchecked = chexmask_rt.EngineOptions(expected_sha256="")
    medians = alternating_medians({
        "load, pinned": lambda: chexmask_rt.load().close(),
        "load, unchecked": lambda: chexmask_rt.load(engine_options=unchecked).close(),
        "core sha256": lambda: _core.sha256_hex(data),
    }, args.rounds)
    for name, ms in medians.items():
        print(f"{name:16s} {ms:7.1f} ms")
    print(f"engine {len(data) / 2**20:.1f} MiB; the check adds {medians['load, pinned'] - medians['load, unchecked']:.1f} ms "
          f"({medians['load, pinned'] / medians['load, unchecked']:.2f}x the unchecked load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
