"""Parity of the exported engine (run by onnxruntime) with the published implementation's outputs."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.onnx_export import build_network
from reference import latent_noise

from conftest import FIXTURE_NAMES, FIXTURES, reference

SCALE = 1024.0  # the fixtures store landmarks x 1024


def _run(path, image, eps):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": image, "eps": eps})))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_latents_and_landmarks_match_reference(exported, name):
    ref = reference(FIXTURES / name)
    out = _run(exported[name], ref["image"][None, None], ref["eps"])
    np.testing.assert_allclose(out["latent_mu"][0], ref["mu"], atol=1e-4, rtol=0)
    logvar = 2.0 * np.log(out["latent_sigma"][0].astype(np.float64))
    np.testing.assert_allclose(logvar, ref["logvar"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["landmarks_mu"][0] * SCALE, ref["landmarks_mu"], atol=0.05, rtol=0)
    samples = out["landmarks_samples"][0] * SCALE
    assert samples.shape == ref["landmarks_eps"].shape
    for k in range(samples.shape[0]):
        np.testing.assert_allclose(samples[k], ref["landmarks_eps"][k], atol=0.05, rtol=0, err_msg=f"sample {k}")
    # the statistics outputs are the statistics of the samples (ddof 0)
    np.testing.assert_allclose(out["landmarks_mean"][0] * SCALE, samples.mean(0), atol=1e-3)
    np.testing.assert_allclose(out["landmarks_std"][0] * SCALE, samples.std(0), atol=1e-3)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_monte_carlo_std_matches_reference(exported, name):
    ref = reference(FIXTURES / name)
    k = int(ref["mc_n"])
    out = _run(exported[name], ref["image"][None, None], latent_noise(k, 64, seed=1))
    std = out["landmarks_std"][0] * SCALE
    rel = np.abs(std - ref["mc_std"]) / ref["mc_std"]
    assert rel.mean() < 0.05, f"mean relative std deviation {rel.mean():.4f}"
    spread = np.abs(out["landmarks_mean"][0] * SCALE - ref["mc_mean"]) / ref["mc_std"]
    assert spread.mean() < 0.1  # means agree within a small fraction of a std


def test_skip_positions_match_reference():
    ref = reference(FIXTURES / "skip_256")
    net = build_network(load_checkpoint(FIXTURES / "skip_256"))
    with torch.no_grad():
        conv5, conv6, mu, _ = net.encoder(torch.from_numpy(ref["image"])[None, None])
        _, pos1, pos2 = net.decode(mu[:, None], conv5, conv6, return_skips=True)
    np.testing.assert_allclose(pos1[0].numpy() * SCALE, ref["pos1_mu"], atol=0.05, rtol=0)
    np.testing.assert_allclose(pos2[0].numpy() * SCALE, ref["pos2_mu"], atol=0.05, rtol=0)


def test_batched_images_keep_per_image_semantics(exported):
    """Images sharing a batch give what they give alone (per-image normalisation, own feature map)."""
    ref = reference(FIXTURES / "skip_256")
    a = ref["image"]
    b = np.ascontiguousarray(a[::-1, ::-1])
    eps = latent_noise(5, 64, seed=3)
    alone_a = _run(exported["skip_256"], a[None, None], eps)
    alone_b = _run(exported["skip_256"], b[None, None], eps)
    both = _run(exported["skip_256"], np.stack([a, b])[:, None], eps)
    # The batch size changes onnxruntime's reduction order, so rounding differs: about 1e-5 on
    # latents of magnitude up to 5. Mixing the images would differ by orders of magnitude more.
    for key in ("landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"):
        np.testing.assert_allclose(both[key][0], alone_a[key][0], rtol=1e-5, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(both[key][1], alone_b[key][0], rtol=1e-5, atol=1e-5, err_msg=key)
    assert not np.allclose(alone_a["landmarks_mu"], alone_b["landmarks_mu"])


def test_single_sample_has_zero_std(exported):
    ref = reference(FIXTURES / "noskip_256")
    out = _run(exported["noskip_256"], ref["image"][None, None], ref["eps"][:1])
    assert np.all(out["landmarks_std"] == 0)
    np.testing.assert_allclose(out["landmarks_mean"][0] * SCALE, ref["landmarks_eps"][0], atol=0.05)
