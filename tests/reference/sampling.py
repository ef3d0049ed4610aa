"""The latent noise eps, generator "splitmix64-boxmuller-v1" (reference; the core's is sampling.cpp).

* ``u_j`` (j = 0, 1, ...) is the j-th output of SplitMix64 started at state = seed, as
  ``(z >> 11) * 2**-53``;
* Box-Muller in float64 on pairs: r = sqrt(-2 log1p(-u_2i)), t = 2 pi u_2i+1;
  e_2i = r cos t, e_2i+1 = r sin t;
* eps[k, d] = float32(e_{k * latents + d}).
"""
from __future__ import annotations

import numpy as np

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
    """Standard-normal eps of shape [samples, latents], float32, fixed by ``seed`` in [0, 2**64)."""
    n = samples * latents
    u = _uniforms(int(seed), n + (n % 2))
    r = np.sqrt(-2.0 * np.log1p(-u[0::2]))
    t = 2.0 * np.pi * u[1::2]
    e = np.empty(u.size)
    e[0::2] = r * np.cos(t)
    e[1::2] = r * np.sin(t)
    return e[:n].reshape(samples, latents).astype(np.float32)
