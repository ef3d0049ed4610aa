"""The latent noise eps: a fixed, documented generator so results are reproducible
and the C++ core can produce the very same numbers.

Generator (version 1):
  * ``u_j`` for j = 0, 1, 2, ... is the j-th output of SplitMix64 started at
    state = seed: state += 0x9E3779B97F4A7C15; z = state;
    z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB;
    z ^= z>>31; u_j = (z >> 11) * 2**-53   (uniform in [0, 1)).
  * Box-Muller in float64 on pairs: r = sqrt(-2 log1p(-u_{2i})),
    t = 2 pi u_{2i+1}; e_{2i} = r cos t, e_{2i+1} = r sin t.
  * eps[k, d] = float32(e_{k*latents + d}).

Counter based, so eps for K samples is the first K rows of eps for any K' > K.
"""
from __future__ import annotations

import numpy as np

GENERATOR = "splitmix64-boxmuller-v1"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _uniforms(seed: int, count: int) -> np.ndarray:
    j = np.arange(1, count + 1, dtype=np.uint64)
    z = np.uint64(seed) + j * _GOLDEN  # wraps mod 2**64, as SplitMix64 does
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def latent_noise(samples: int, latents: int, seed: int = 0) -> np.ndarray:
    """Standard-normal eps of shape [samples, latents], float32, fixed by ``seed``."""
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if samples < 1 or latents < 1:
        raise ValueError(f"samples and latents must be >= 1, got {samples}, {latents}")
    n = samples * latents
    u = _uniforms(int(seed), n + (n % 2))
    r = np.sqrt(-2.0 * np.log1p(-u[0::2]))
    t = 2.0 * np.pi * u[1::2]
    e = np.empty(u.size)
    e[0::2] = r * np.cos(t)
    e[1::2] = r * np.sin(t)
    return e[:n].reshape(samples, latents).astype(np.float32)
