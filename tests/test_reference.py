"""The benchmarks' PyTorch reference reproduces the published implementation's outputs,
so the speed-ups measured against it are against the real computation."""
import numpy as np
import pytest
import torch

from benchmarks.reference import load_reference
from chexmask_export.checkpoint import load_checkpoint

from conftest import FIXTURE_NAMES, FIXTURES, reference


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_reference_matches_published_outputs(name):
    ref = reference(FIXTURES / name)
    net = load_reference(load_checkpoint(FIXTURES / name))
    out = net.sample(torch.from_numpy(ref["image"])[None, None], torch.from_numpy(ref["eps"]))
    np.testing.assert_allclose(out["latent_mu"], ref["mu"], atol=1e-4)
    np.testing.assert_allclose(out["landmarks_mu"] * 1024, ref["landmarks_mu"], atol=0.05)
    np.testing.assert_allclose(out["landmarks_samples"] * 1024, ref["landmarks_eps"], atol=0.05)
