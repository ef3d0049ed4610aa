"""The 120-landmark contour layout shared by every HybridGNet model.

Order is fixed by the published model: right lung (on the *image left*),
left lung, heart. Each organ is a closed contour whose start point and winding
are the same in every CheXmask landmark set.
"""
from __future__ import annotations

ORGANS: tuple[tuple[str, int], ...] = (("right_lung", 44), ("left_lung", 50), ("heart", 26))
NUM_LANDMARKS = sum(n for _, n in ORGANS)


def organ_slices() -> dict[str, slice]:
    """Map organ name to its slice of the 120 landmarks."""
    out, start = {}, 0
    for name, n in ORGANS:
        out[name] = slice(start, start + n)
        start += n
    return out
