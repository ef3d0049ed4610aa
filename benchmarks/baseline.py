"""Is the PyTorch reference an honest baseline? It against the published flow, A/B.

    python -m benchmarks.baseline [--samples 50] [--rounds 15] [--repeats 3] [--python EXE]
                                  [--runner NAME]... [--json PATH]

The speed-ups in the README are quoted against `benchmarks/reference.py`. That is only honest
if the reference is at least as fast as what the published script does per image, which
`benchmarks/published_flow.py` re-implements. Both run as `benchmarks.run` workers on the
published architecture at 1024, batch 1, from the same decoded image to landmarks in original
pixels, each in its own process, one call each per round, alternating, so a shared machine's
drifts fall on both alike. Each repeat starts fresh processes. Prints per runner the p50, the
minor page faults per call and the peak RSS, and per repeat reference / published-flow (< 1:
the reference is faster).

--python runs the workers under another interpreter (another torch); --runner adds or replaces
runners, including "module:factory" ones from outside the package (factory(checkpoint) ->
run(images, samples)), which is how the published code itself was timed for
benchmarks/results/baseline.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.run import TARGET_MODEL, baseline_markdown, measure, published_1024

DEFAULT_RUNNERS = ("pytorch-reference", "published-flow")


def ab(runners: list[str], samples: int, rounds: int, python: str | None) -> list[dict]:
    """One repeat: fresh workers, `rounds` alternating calls each (after 2 warm-up calls)."""
    return measure([(r, TARGET_MODEL, None, python) for r in runners], [[(samples, 1, rounds)]], warmup=2,
                   rounds=rounds)


def _p50(rows: list[dict], runner: str) -> float:
    return next(r["p50_ms"] for r in rows if r["backend"] == runner)


def report(repeats: list[list[dict]], base: str = DEFAULT_RUNNERS[0]) -> str:
    """Each repeat's table, then base / each other runner's p50 per repeat."""
    lines = [f"Repeat {i}. " + baseline_markdown(rows) for i, rows in enumerate(repeats, 1)]
    runners = [r["backend"] for r in repeats[0]]
    for other in (r for r in runners if base in runners and r != base):
        ratios = [_p50(rows, base) / _p50(rows, other) for rows in repeats]
        lines.append(f"- {base} / {other}, p50: " + ", ".join(f"{x:.3f}" for x in ratios)
                     + f" (median {float(np.median(ratios)):.3f})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--rounds", type=int, default=15, help="timed calls per runner and repeat, alternating")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--python", help="interpreter for the workers (default: this one)")
    p.add_argument("--runner", action="append", help=f"runners to compare (default: {' '.join(DEFAULT_RUNNERS)})")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    published_1024()  # build the cached checkpoint before any timing
    repeats = [ab(args.runner or list(DEFAULT_RUNNERS), args.samples, args.rounds, args.python)
               for _ in range(args.repeats)]
    text = report(repeats)
    if args.json:
        args.json.write_text(json.dumps(repeats, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
