"""The published-flow runner (benchmarks/published_flow.py), the yardstick the reference is
timed against, computes what the reference computes: same decodes, same statistics."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks.published_flow import PublishedFlow, PublishedModel, roi_align_3x3
from benchmarks.reference import load_reference, roi_align_lookup
from chexmask_export.checkpoint import load_checkpoint

from conftest import FIXTURE_NAMES, FIXTURES, REPO


def test_roi_align_stand_in_reads_the_published_boxes_like_the_reference_lookup():
    gen = torch.Generator().manual_seed(5)
    for size in (2, 5, 16):
        fmap = torch.randn(3, 4, size, size, generator=gen, dtype=torch.float64)
        pos = torch.rand(3, 30, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.3  # past every edge too
        p = pos * size
        boxes = [torch.cat([p[k] - 1, p[k] + 2], dim=1) for k in range(3)]  # x1, y1, x2, y2 per node
        got = roi_align_3x3(fmap, boxes).reshape(3, 30, 4)
        assert torch.allclose(got, roi_align_lookup(pos, fmap), atol=1e-12, rtol=0), size
    with pytest.raises(ValueError):
        roi_align_3x3(fmap, boxes, output_size=(2, 2))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_published_flow_gives_the_reference_statistics_for_the_same_draws(name):
    checkpoint = load_checkpoint(FIXTURES / name)
    size, k = checkpoint.config.inputsize, 6
    flow = PublishedFlow(checkpoint, seed=7)
    image = np.random.default_rng(1).integers(0, 256, (size, size), dtype=np.uint8)
    out = flow(image, k)
    torch.manual_seed(7)  # the flow's K draws of randn_like(sigma [1, latents]), in order
    eps = torch.cat([torch.randn(1, checkpoint.config.latents) for _ in range(k)])
    ref = load_reference(checkpoint).sample(torch.from_numpy(image / 255.0).float()[None, None], eps)
    np.testing.assert_allclose(out["mean"], ref["landmarks_mean"] * size, atol=1e-3, rtol=0)
    np.testing.assert_allclose(out["std"], ref["landmarks_std"] * size, atol=1e-3, rtol=0)
    np.testing.assert_allclose(out["latent_var"], ref["latent_sigma"] ** 2, rtol=1e-5)
    assert out["std"].min() > 0  # K distinct draws, not one repeated
    with pytest.raises(ValueError):
        flow(image[:, 1:], k)


def test_published_decoder_calls_match_the_reference_decoder():
    checkpoint = load_checkpoint(FIXTURES / "skip_256")
    ref, published = load_reference(checkpoint), PublishedModel(checkpoint.config)
    published.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(5, checkpoint.config.latents, generator=gen)
    conv5, conv6 = torch.randn(5, 128, 16, 16, generator=gen), torch.randn(5, 128, 8, 8, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(published.decode(z, conv5, conv6), ref.decode(z, conv5, conv6),
                                   atol=1e-5, rtol=1e-5)
        x = torch.randn(5, 60, 7, generator=gen)
        torch.testing.assert_close(published.unpool(x), ref.unpool(x), atol=1e-6, rtol=0)
        # the reference's decodes read one shared map where the published flow repeats it K times
        shared = ref.decode(z, conv5[:1], conv6[:1])
        torch.testing.assert_close(shared, published.decode(z, conv5[:1].repeat(5, 1, 1, 1),
                                                            conv6[:1].repeat(5, 1, 1, 1)), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(shared, ref.decode(z, conv5, conv6), atol=1e-3)  # the maps do matter


def test_building_the_torch_runners_leaves_nothing_in_the_temp_folder(tmp_path):
    # torch_geometric writes each MessagePassing class's generated module to the temp folder on
    # its first construction in a process; every benchmark worker and test run left two files
    code = ("from benchmarks.published_flow import PublishedModel\n"
            "from chexmask_export.checkpoint import load_checkpoint\n"
            f"PublishedModel(load_checkpoint({str(FIXTURES / 'skip_256')!r}).config)\n")
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    assert sorted(p.name for p in temp.iterdir()) == []
