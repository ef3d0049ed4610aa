"""The documented latent-noise generator: the core's (what every prediction uses) and the reference's
(tests/reference), each checked against an independent scalar implementation."""
import math

import numpy as np
import pytest

import reference
from chexmask_rt.errors import InputError

from conftest import skip_or_fail_without_native

try:
    from chexmask_rt._core import latent_noise
except ImportError as exc:  # pragma: no cover - reported by the helper
    skip_or_fail_without_native(f"chexmask_rt._core is not built ({exc})", allow_module_level=True)

MASK = (1 << 64) - 1


def _scalar_reference(seed: int, count: int) -> list[float]:
    """The generator as documented, written with Python ints and the math module."""
    state, uniforms = seed, []
    for _ in range(count + count % 2):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        uniforms.append((z >> 11) * 2.0**-53)
    out = []
    for a, b in zip(uniforms[0::2], uniforms[1::2]):
        r = math.sqrt(-2.0 * math.log1p(-a))
        out += [r * math.cos(2 * math.pi * b), r * math.sin(2 * math.pi * b)]
    return out[:count]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1])
def test_matches_the_documented_generator(seed):
    eps = latent_noise(3, 64, seed)
    expected = np.array(_scalar_reference(seed, 3 * 64), dtype=np.float32).reshape(3, 64)
    np.testing.assert_array_max_ulp(eps, expected, maxulp=1)
    np.testing.assert_array_max_ulp(reference.latent_noise(3, 64, seed), expected, maxulp=1)


def test_deterministic_prefix_stable_and_seed_dependent():
    a = latent_noise(50, 64, 7)
    np.testing.assert_array_equal(a, latent_noise(50, 64, 7))
    np.testing.assert_array_equal(a[:10], latent_noise(10, 64, 7))
    assert not np.array_equal(a, latent_noise(50, 64, 8))
    assert a.dtype == np.float32 and a.shape == (50, 64)


def test_is_standard_normal():
    e = latent_noise(4000, 64, 0).astype(np.float64).ravel()
    assert abs(e.mean()) < 0.01 and abs(e.std() - 1) < 0.01
    # tail mass of a standard normal: P(|z| > 1.96) = 0.05
    assert abs(np.mean(np.abs(e) > 1.96) - 0.05) < 0.003


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "0", True])
def test_bad_seeds(seed):
    with pytest.raises(InputError, match="seed"):
        latent_noise(2, 64, seed)
