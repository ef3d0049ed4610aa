"""The PyTorch reference: the published inference flow, reimplemented for timing and parity.

Faithful to how the research code computes, not to how we would:
  * BatchNorm2d(track_running_stats=False) in the encoder (batch statistics; one image per call);
  * torch_geometric ChebConv on the batched node features, InstanceNorm1d(F) on [B, nodes, F];
  * sparse upsampling matrix;
  * the image-to-graph look-up as torchvision's roi_align(aligned=True, 1x1 output, 3x3 grid)
    computes it: 9 bilinear samples x 4 corners gathered per node;
  * sampling: encode once, repeat the feature maps K times and decode the K latent samples
    as one batch, then numpy mean/std.
Weights come from a published-layout checkpoint (same state-dict names as the export model).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import ChebConv

from chexmask_export.checkpoint import ENCODER_CHANNELS, ModelConfig
from chexmask_rt import graph


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, track_running_stats=False)  # noqa: E731
        self.block = nn.Sequential(bn(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                   bn(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout)) if cin != cout else None

    def forward(self, x):
        return F.relu(self.block(x) + (x if self.skip is None else self.skip(x)))


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


def roi_align_lookup(pos: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """pos [N, nodes, 2] normalised, fmap [N, C, H, W] (one map per decode): [N, nodes, C]."""
    n, c, h, w = fmap.shape
    p = pos * w
    d = torch.tensor([-1.0, 0.0, 1.0], dtype=pos.dtype, device=pos.device)
    ys = (p[..., 1:2, None] + d[:, None]).expand(*p.shape[:-1], 3, 3)  # [N, nodes, 3(y), 3(x)]
    xs = (p[..., 0:1, None] + d[None, :]).expand(*p.shape[:-1], 3, 3)
    valid = (ys >= -1) & (ys <= h) & (xs >= -1) & (xs <= w)
    ys, xs = ys.clamp(min=0), xs.clamp(min=0)
    y0, x0 = ys.floor(), xs.floor()
    y_end, x_end = y0 >= h - 1, x0 >= w - 1
    y0, x0 = torch.where(y_end, float(h - 1), y0), torch.where(x_end, float(w - 1), x0)
    ys, xs = torch.where(y_end, y0, ys), torch.where(x_end, x0, xs)
    y1, x1 = torch.where(y_end, y0, y0 + 1), torch.where(x_end, x0, x0 + 1)
    ly, lx = ys - y0, xs - x0
    table = fmap.permute(0, 2, 3, 1).reshape(-1, c)
    base = (torch.arange(n, device=pos.device) * h * w).reshape(n, 1, 1, 1)
    out = 0
    for yy, wy in ((y0, 1 - ly), (y1, ly)):
        for xx, wx in ((x0, 1 - lx), (x1, lx)):
            idx = base + yy.long() * w + xx.long()
            out = out + (wy * wx * valid)[..., None] * table[idx]
    return out.sum(dim=(2, 3)) / 9.0


class ReferenceHybridGNet(nn.Module):
    """The published model, published computation (see module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        f, k = config.filters, config.K
        self.config = config
        skip_in = ENCODER_CHANNELS[-1] + 2
        self.encoder = _Encoder(config.latents, config.inputsize)
        self.dec_lin = nn.Linear(config.latents, 60 * f[6])
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
        return F.relu(self.norms[norm](conv(x, edges)))

    def decode(self, z, conv5, conv6):
        n = z.shape[0]
        x = F.relu(self.dec_lin(z)).reshape(n, 60, -1)
        x = self._step(self.graphConv_up6, "6", x, self.ad)
        x = self._step(self.graphConv_up5, "5", x, self.ad)
        if self.config.use_skip:
            pos1 = self.SC_1.graphConv_pre(x, self.ad)
            x = torch.cat([x, roi_align_lookup(pos1, conv6), pos1], dim=2)
        x = self._step(self.graphConv_up4, "4", x, self.ad)
        f = x.shape[-1]
        x = torch.sparse.mm(self.u, x.permute(1, 0, 2).reshape(60, -1)).reshape(120, n, f).permute(1, 0, 2)
        x = self._step(self.graphConv_up3, "3", x, self.a)
        if self.config.use_skip:
            pos2 = self.SC_2.graphConv_pre(x, self.a)
            x = torch.cat([x, roi_align_lookup(pos2, conv5), pos2], dim=2)
        x = self._step(self.graphConv_up2, "2", x, self.a)
        return self.graphConv_up1(x, self.a)

    @torch.no_grad()
    def sample(self, image: torch.Tensor, eps: torch.Tensor) -> dict[str, np.ndarray]:
        """One image [1, 1, S, S] and eps [K, latents]: the published flow, numpy statistics."""
        mu, logvar, conv5, conv6 = self.encoder(image)
        k = eps.shape[0]
        z = mu + torch.exp(0.5 * logvar) * eps
        samples = self.decode(z, conv5.repeat(k, 1, 1, 1), conv6.repeat(k, 1, 1, 1)).cpu().numpy()
        at_mu = self.decode(mu, conv5, conv6).cpu().numpy()[0]
        return {"landmarks_mean": samples.mean(0), "landmarks_std": samples.std(0), "landmarks_mu": at_mu,
                "latent_mu": mu[0].cpu().numpy(), "latent_sigma": torch.exp(0.5 * logvar)[0].cpu().numpy(),
                "landmarks_samples": samples}


def load_reference(checkpoint) -> ReferenceHybridGNet:
    """From a chexmask_export Checkpoint (either published layout)."""
    net = ReferenceHybridGNet(checkpoint.config)
    net.load_state_dict({k: v.float() for k, v in checkpoint.state_dict.items()}, strict=True)
    return net.eval()
