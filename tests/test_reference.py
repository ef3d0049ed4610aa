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
    image = torch.from_numpy(ref["image"])[None, None]
    out = net.sample(image, torch.from_numpy(ref["eps"]))
    np.testing.assert_allclose(out["latent_mu"], ref["mu"], atol=1e-4)
    np.testing.assert_allclose(out["landmarks_samples"] * 1024, ref["landmarks_eps"], atol=0.05)
    with torch.no_grad():  # the decode at z = mu, which the published flow (and so sample) skips
        mu, _, conv5, conv6 = net.encoder(image)
        at_mu = net.decode(mu, conv5, conv6)[0].numpy()
    np.testing.assert_allclose(at_mu * 1024, ref["landmarks_mu"], atol=0.05)
