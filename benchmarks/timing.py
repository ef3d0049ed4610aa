"""Timing in alternating rounds: each round calls every way once, so that a shared machine's drifts
fall on all of them alike; medians in milliseconds."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternating_medians(ways: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """{name: median milliseconds of ``ways[name]()`` over ``rounds`` alternating rounds}."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}
