"""The PyTorch reference: the published inference flow, reimplemented for timing and parity.

Faithful to how the research code computes, not to how we would:
  * BatchNorm2d(track_running_stats=False) in the encoder (batch statistics; one image per call),
    with the published blocks' in-place ReLUs and residual sum;
  * torch_geometric ChebConv on the batched node features, InstanceNorm1d(F) on [B, nodes, F];
  * sparse upsampling matrix;
  * the image-to-graph look-up with the rules of torchvision's roi_align(aligned=True, 1x1
    output) on the fixed 3x3 grid of bilinear samples, one map per decode;
  * per image what the published script does (benchmarks/published_flow.py mirrors it step by
    step, and the two are timed against each other): encode once, decode the K latent samples
    as one batch, numpy mean/std. Nothing more: no decode at z = mu (the engine's landmarks_mu
    comes from `decode(mu, ...)` in the tests). One thing less: the published script repeats
    the feature maps K times before the decode; here every decode reads the one map.
Weights come from a published-layout checkpoint (same state-dict names as the export model).
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import ChebConv

from chexmask_export.checkpoint import ENCODER_CHANNELS, ModelConfig
from chexmask_export import graph


@contextlib.contextmanager
def pyg_layers() -> Iterator[None]:
    """Build torch_geometric layers inside this block to leave no files behind.

    On a MessagePassing class's first construction in a process, torch_geometric writes its
    generated ``propagate`` module to the temp folder and never deletes it: one file per
    benchmark worker and test run. Here that folder is a private one, removed on exit (the
    module is loaded by then)."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="chexmask-rt-pyg-") as private:
        tempfile.tempdir = private
        try:
            yield
        finally:
            tempfile.tempdir = previous


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, track_running_stats=False)  # noqa: E731
        # in place, as the published blocks are: each ReLU follows a norm's fresh output
        self.block = nn.Sequential(bn(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 3, padding=1),
                                   bn(cout), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout)) if cin != cout else None

    def forward(self, x):
        out = self.block(x)
        out += x if self.skip is None else self.skip(x)
        return out.relu_()


class _Encoder(nn.Module):
    def __init__(self, latents: int, inputsize: int):
        super().__init__()
        chans = (1,) + ENCODER_CHANNELS
        for i in range(6):
            setattr(self, f"dconv_down{i + 1}", _Block(chans[i], chans[i + 1]))
        flat = ENCODER_CHANNELS[-1] * (inputsize // 32) ** 2
        self.fc_mu, self.fc_logvar = nn.Linear(flat, latents), nn.Linear(flat, latents)

    def forward(self, x):
        for i in range(1, 5):
            x = F.max_pool2d(getattr(self, f"dconv_down{i}")(x), 2)
        conv5 = self.dconv_down5(x)
        conv6 = self.dconv_down6(F.max_pool2d(conv5, 2))
        flat = conv6.flatten(1)
        return self.fc_mu(flat), self.fc_logvar(flat), conv5, conv6


class _Pre(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.graphConv_pre = ChebConv(cin, 2, K=1, bias=False)


def _edge_index(a: np.ndarray) -> torch.Tensor:
    rows, cols = np.nonzero(a)
    return torch.tensor(np.stack([rows, cols]), dtype=torch.long)


def roi_align_mean(fmap: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean of bilinear samples of fmap [N or 1, C, H, W] at (xs, ys) [N, nodes, T] (pixel
    units, pixel centres at integers) with roi_align(aligned=True)'s rules: [N, nodes, C].

    A sample past -1 or past H (W) counts as 0; one in [-1, 0] reads row (column) 0 and one in
    [H - 1, H] reads row H - 1, which is grid_sample's border clamp. The mean divides by T, the
    whole grid, as roi_align does.
    """
    n, c, h, w = fmap.shape
    if n == 1 < xs.shape[0]:  # one map shared by every decode: read it as one batch, no per-decode copies
        return roi_align_mean(fmap, xs.reshape(1, -1, xs.shape[-1]), ys.reshape(1, -1, ys.shape[-1])).reshape(
            *xs.shape[:2], c)
    valid = (ys >= -1) & (ys <= h) & (xs >= -1) & (xs <= w)
    # grid_sample's align_corners=False frame: pixel i sits at (2i + 1) / size - 1
    grid = torch.stack([(2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1], dim=-1)
    taps = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (taps * valid[:, None]).sum(-1).transpose(1, 2) / xs.shape[-1]


def roi_align_lookup(pos: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """pos [N, nodes, 2] normalised, fmap [N, C, H, W] (one map per decode) or [1, C, H, W]
    (one map for all): [N, nodes, C].

    The published look-up: the 3x3 grid around pos x W, i.e. roi_align of the box
    (p - 1, p + 2) with one 1x1 bin and sampling ratio 3."""
    p = pos * fmap.shape[-1]
    d = torch.tensor([-1.0, 0.0, 1.0], dtype=pos.dtype, device=pos.device)
    xs = (p[..., 0:1, None] + d[None, :]).expand(*p.shape[:-1], 3, 3)  # [N, nodes, 3(y), 3(x)]
    ys = (p[..., 1:2, None] + d[:, None]).expand(*p.shape[:-1], 3, 3)
    return roi_align_mean(fmap, xs.flatten(-2), ys.flatten(-2))


class ReferenceHybridGNet(nn.Module):
    """The published model, published computation (see module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        f, k = config.filters, config.K
        self.config = config
        skip_in = ENCODER_CHANNELS[-1] + 2
        self.encoder = _Encoder(config.latents, config.inputsize)
        self.dec_lin = nn.Linear(config.latents, 60 * f[6])
        with pyg_layers():
            self.graphConv_up6 = ChebConv(f[6], f[5], K=k)
            self.graphConv_up5 = ChebConv(f[5], f[4], K=k)
            self.graphConv_up4 = ChebConv(f[4] + (skip_in if config.use_skip else 0), f[3], K=k)
            self.graphConv_up3 = ChebConv(f[3], f[2], K=k)
            self.graphConv_up2 = ChebConv(f[2] + (skip_in if config.use_skip else 0), f[1], K=k)
            self.graphConv_up1 = ChebConv(f[1], f[0], K=1, bias=False)
            if config.use_skip:
                self.SC_1, self.SC_2 = _Pre(f[4]), _Pre(f[2])
        self.norms = nn.ModuleDict({n: nn.InstanceNorm1d(c) for n, c in
                                    (("6", f[5]), ("5", f[4]), ("4", f[3]), ("3", f[2]), ("2", f[1]))})
        self.register_buffer("a", _edge_index(graph.fine_adjacency()), persistent=False)
        self.register_buffer("ad", _edge_index(graph.coarse_adjacency()), persistent=False)
        self.register_buffer("u", torch.from_numpy(graph.coarse_to_fine()).float().to_sparse(), persistent=False)

    def _step(self, conv, norm, x, edges):
        return self.norms[norm](conv(x, edges)).relu_()

    def lookup(self, pos: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
        """The skip look-up of positions [K, nodes, 2] on maps [K or 1, C, H, W]."""
        return roi_align_lookup(pos, fmap)

    def unpool(self, x: torch.Tensor) -> torch.Tensor:
        """Coarse [K, 60, F] to fine [K, 120, F] node features: U @ x."""
        n, _, f = x.shape
        return torch.sparse.mm(self.u, x.permute(1, 0, 2).reshape(60, -1)).reshape(120, n, f).permute(1, 0, 2)

    def decode(self, z, conv5, conv6):
        n = z.shape[0]
        x = F.relu(self.dec_lin(z)).reshape(n, 60, -1)
        x = self._step(self.graphConv_up6, "6", x, self.ad)
        x = self._step(self.graphConv_up5, "5", x, self.ad)
        if self.config.use_skip:
            pos1 = self.SC_1.graphConv_pre(x, self.ad)
            x = torch.cat([x, self.lookup(pos1, conv6), pos1], dim=2)
        x = self.unpool(self._step(self.graphConv_up4, "4", x, self.ad))
        x = self._step(self.graphConv_up3, "3", x, self.a)
        if self.config.use_skip:
            pos2 = self.SC_2.graphConv_pre(x, self.a)
            x = torch.cat([x, self.lookup(pos2, conv5), pos2], dim=2)
        x = self._step(self.graphConv_up2, "2", x, self.a)
        return self.graphConv_up1(x, self.a)

    @torch.no_grad()
    def sample(self, image: torch.Tensor, eps: torch.Tensor) -> dict[str, np.ndarray]:
        """One image [1, 1, S, S] and eps [K, latents]: the published flow, numpy statistics.

        Only the work the published script does per image: one encode and one batched decode
        of the K samples (no decode at z = mu). It does less in one place: the K decodes read
        the one encoded map instead of K copies of it (the published `.repeat(K)`), which
        computes the same look-ups without 130 MB of copies at 1024 and K = 50."""
        mu, logvar, conv5, conv6 = self.encoder(image)
        sigma = torch.exp(0.5 * logvar)
        samples = self.decode(mu + sigma * eps, conv5, conv6).cpu().numpy()
        return {"landmarks_mean": samples.mean(0), "landmarks_std": samples.std(0),
                "latent_mu": mu[0].cpu().numpy(), "latent_sigma": sigma[0].cpu().numpy(),
                "landmarks_samples": samples}


def load_reference(checkpoint) -> ReferenceHybridGNet:
    """From a chexmask_export Checkpoint (either published layout)."""
    net = ReferenceHybridGNet(checkpoint.config)
    net.load_state_dict({k: v.float() for k, v in checkpoint.state_dict.items()}, strict=True)
    return net.eval()
