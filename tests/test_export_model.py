"""The export model's rewritten formulations compute what the published layers compute."""
import torch
import torch.nn.functional as F

from chexmask_export.model import NORM_EPS, InstanceNormAffine, ResidualBlock


def _randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(4)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1.5, 1.5)  # negative norm gains and conv weights included


def test_norm_is_instance_norm_with_affine():
    norm = InstanceNormAffine(6).double()
    _randomise(norm)
    x = torch.rand(2, 6, 40, 56, dtype=torch.float64) * 4 + 3
    expected = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=NORM_EPS)
    assert torch.allclose(norm(x), expected, atol=1e-10, rtol=0)


def test_one_channel_skip_from_the_input_statistics_equals_conv_then_norm():
    block = ResidualBlock(1, 8).double()
    _randomise(block)
    x = torch.rand(2, 1, 48, 48, dtype=torch.float64) * 2 + 0.5
    expected = F.relu(block.block(x) + block.skip(x))  # the published order: 1x1 conv, then norm
    assert torch.allclose(block(x), expected, atol=1e-10, rtol=0)
    # and the shortcut is taken only where it holds: with 8 input channels the plain skip runs
    wide = ResidualBlock(8, 16).double()
    _randomise(wide)
    y = torch.rand(1, 8, 16, 16, dtype=torch.float64)
    assert torch.allclose(wide(y), F.relu(wide.block(y) + wide.skip(y)), atol=1e-12, rtol=0)


def test_skip_lookup_follows_roi_align_rules_inside_at_and_past_the_edges():
    from benchmarks.reference import roi_align_lookup
    from chexmask_export.model import skip_lookup

    gen = torch.Generator().manual_seed(3)
    for size in (2, 3, 4, 9, 16):
        fmap = torch.randn(2, 5, size, size, generator=gen, dtype=torch.float64)
        pos = torch.rand(2, 3, 40, 2, generator=gen, dtype=torch.float64) * 1.5 - 0.25
        # taps exactly on pixel centres, on the clamp limits and on the validity limits
        edges = torch.tensor([-2.0, -1.0, -0.5, 0.0, 1.0, size - 2.0, size - 1.0, size - 0.5, size, size + 1.0])
        pos[:, :, : len(edges), 0] = edges / size
        pos[:, :, : len(edges), 1] = edges.flip(0) / size
        got = skip_lookup(pos, fmap)  # [B, M, nodes, C]; the reference takes one fmap per decode
        expected = roi_align_lookup(pos.reshape(6, 40, 2), fmap.repeat_interleave(3, dim=0))
        assert torch.allclose(got.reshape(6, 40, 5), expected, atol=1e-12, rtol=0), size


def test_skip_lookup_reads_the_right_pixels_in_half_precision():
    # float16 holds integers exactly only up to 2048: a flat pixel index computed in the
    # positions' dtype read wrong pixels (and past the table at batch 32) in an fp16 engine.
    # Channels that are ramps of x, y and the image number give back each landmark's own
    # position and image, so any wrongly read pixel shows.
    from chexmask_export.model import skip_lookup

    batch, size = 32, 128
    axis = torch.arange(size, dtype=torch.float32) / size  # the look-up reads pixel i at x = i / size
    fmap = torch.stack([axis.expand(size, size), axis[:, None].expand(size, size)])  # x, y ramps
    fmap = torch.cat([fmap.expand(batch, 2, size, size),
                      (torch.arange(batch) / batch).reshape(batch, 1, 1, 1).expand(batch, 1, size, size)], 1)
    pos = torch.rand(batch, 2, 120, 2, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    got = skip_lookup(pos.half(), fmap.half()).float()  # [B, M, nodes, 3]
    torch.testing.assert_close(got[..., :2], pos, atol=0.25 / size, rtol=0)
    image = (torch.arange(batch) / batch).reshape(batch, 1, 1).expand(batch, 2, 120)
    torch.testing.assert_close(got[..., 2], image, atol=1e-3, rtol=0)
