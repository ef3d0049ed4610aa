"""HybridGNet in an export-friendly formulation.

Same parameters (and state-dict names) as the published model, computed so that
the ONNX graph has only dense, TensorRT-native operators:
  * graph convolutions are matmuls with the precomputed Chebyshev basis;
  * the encoder's BatchNorm without running stats is per-image instance norm
    (what the published one-image-at-a-time inference computes);
  * the image-to-graph skip look-up is a fixed 3x3 grid of bilinear samples
    with roi_align(aligned=True) boundary rules, written as index arithmetic
    and Gathers (one per group of landmarks) from each sample's own image's
    feature map.
The per-image norms' batch-1 form (depthwise Convs) is an ONNX pass, affine_fusion.py.
See shared/reference/hybridgnet_architecture.md for the facts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import graph
from chexmask_rt.anatomy import NUM_LANDMARKS
from chexmask_rt.errors import ModelError

from .checkpoint import ENCODER_CHANNELS, ModelConfig

NORM_EPS = 1e-5
LOOKUP_NODE_GROUP = 15  # landmarks per skip look-up group, see skip_lookup


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)


class InstanceNormAffine(nn.Module):
    """The published BatchNorm2d(track_running_stats=False), evaluated per image."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every mean is taken over rows, then over columns: onnxruntime's
        # InstanceNormalization and its one-shot ReduceMean over H*W accumulate
        # serially in float32, ~30x less precise than torch at S=256 (worse at
        # 1024), and the decoder amplifies that past parity.
        # var = E[x^2] - mean^2 and y = x * scale + shift never write out x - mean:
        # one full-size pass fewer per norm, 4-5 % of the engine at 1024
        # (benchmarks/results/optimisations.md). Its cancellation error grows with
        # mean^2 / var, not with H*W: parity margins stay 4x or more, and the shipped
        # model's landmarks moved by under 0.001 px.
        mean = _spatial_mean(x)
        var = torch.clamp(_spatial_mean(x * x) - mean * mean, min=0)
        scale = self.weight.reshape(1, -1, 1, 1) * torch.rsqrt(var + NORM_EPS)
        return x * scale + (self.bias.reshape(1, -1, 1, 1) - mean * scale)

    def of_pointwise(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """self(conv1x1(x, weight)) for a one-channel x, from x's own statistics.

        Each output channel is w_c * x, so its mean is w_c * mean(x) and its variance
        w_c^2 * var(x): the whole skip is one per-channel affine map of x. At 1024 this
        spares the engine the 8-channel full-size tensor's statistics and affine passes
        (benchmarks/results/optimisations.md). The result is the same up to rounding.
        """
        mean = _spatial_mean(x)
        var = torch.clamp(_spatial_mean(x * x) - mean * mean, min=0)
        batch, _, height, width = x.shape
        w = weight.reshape(1, -1)
        gain = self.weight.reshape(1, -1) * w * torch.rsqrt(w * w * var.reshape(-1, 1) + NORM_EPS)
        shift = self.bias.reshape(1, -1) - mean.reshape(-1, 1) * gain
        # one [C, 2] @ [2, H*W] matmul per image writes the C-channel result in one pass
        flat = x.reshape(batch, 1, height * width)
        out = torch.stack([gain, shift], dim=-1) @ torch.cat([flat, torch.ones_like(flat)], dim=1)
        return out.reshape(batch, -1, height, width)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(
            InstanceNormAffine(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, padding=1),
            InstanceNormAffine(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), InstanceNormAffine(cout))
                     if cin != cout else None)

    def forward(self, x: torch.Tensor, activate: bool = True) -> torch.Tensor:
        """The block's output; ``activate=False`` leaves out the final ReLU.

        ReLU commutes with max-pooling, so a block followed by a pool can take its
        ReLU after the pool, on a quarter of the elements.
        """
        if self.skip is None:
            identity = x
        elif self.skip[0].in_channels == 1:
            identity = self.skip[1].of_pointwise(x, self.skip[0].weight)
        else:
            identity = self.skip(x)
        out = self.block(x) + identity
        return F.relu(out) if activate else out


class Encoder(nn.Module):
    """Image [B,1,S,S] -> (conv5 [B,128,S/16,S/16], conv6 [B,128,S/32,S/32], mu, logvar)."""

    def __init__(self, latents: int, inputsize: int):
        super().__init__()
        chans = (1,) + ENCODER_CHANNELS
        for i in range(6):
            setattr(self, f"dconv_down{i + 1}", ResidualBlock(chans[i], chans[i + 1]))
        flat = ENCODER_CHANNELS[-1] * (inputsize // 32) ** 2
        self.fc_mu = nn.Linear(flat, latents)
        self.fc_logvar = nn.Linear(flat, latents)

    def forward(self, x: torch.Tensor):
        for i in range(1, 5):
            x = F.relu(F.max_pool2d(getattr(self, f"dconv_down{i}")(x, activate=False), 2))
        conv5 = self.dconv_down5(x)
        conv6 = self.dconv_down6(F.max_pool2d(conv5, 2))
        flat = conv6.flatten(1)
        return conv5, conv6, self.fc_mu(flat), self.fc_logvar(flat)


class DenseChebConv(nn.Module):
    """PyG ChebConv (sym, lambda_max=2) on a fixed graph, as matmuls.

    out = sum_k T_k X W_k^T + b is computed as one feature matmul X @ [W_0..W_K-1]^T
    followed by one node matmul with the basis laid out as [n, (node, k)]: the feature
    matmul's output, [N, n, k*cout], is then already in the (node, k) row order the node
    matmul needs, and no transpose is left in the graph.
    """

    def __init__(self, adjacency, cin: int, cout: int, k: int, bias: bool = True):
        super().__init__()
        self.k, self.cout = k, cout
        self.lins = nn.ModuleList(nn.Linear(cin, cout, bias=False) for _ in range(k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        if k > 1:
            basis = torch.from_numpy(graph.chebyshev_basis(adjacency, k))  # [k, n, n] float64
            n = basis.shape[1]
            self.register_buffer("basis", basis.permute(1, 2, 0).reshape(n, n * k).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [N, nodes, cin]
        w = torch.cat([lin.weight for lin in self.lins], dim=0)  # [k*cout, cin]
        y = x @ w.t()
        if self.k > 1:
            n = x.shape[1]
            y = self.basis @ y.reshape(-1, n * self.k, self.cout)
        if self.bias is not None:
            y = y + self.bias
        return y


class SkipPredictor(nn.Module):
    """Holds ``graphConv_pre`` so the state-dict names match the published SC_1/SC_2."""

    def __init__(self, cin: int):
        super().__init__()
        self.graphConv_pre = DenseChebConv(None, cin, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graphConv_pre(x)


def _axis_taps(c: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First index and summed weights of the 3 bilinear taps at c-1, c, c+1, per coordinate.

    roi_align(aligned=True) rules per tap s: outside [-1, length] it contributes
    nothing; otherwise it is clamped to [0, length - 1] (below 0 it reads pixel 0,
    at or past the last pixel both neighbours are the last pixel), and pixel i then
    gets the hat weight max(0, 1 - |s - i|). All taps with non-zero weight fall in
    a window of n = min(length, 4) consecutive indices starting at
    clamp(floor(c) - 1, 0, length - n), so 4 indices per axis suffice.
    Returns (start [...], weights [n, ...]): slots and taps are leading axes so that
    every element-wise node runs over the coordinates contiguously (with the small
    axes last, onnxruntime's broadcasting made these nodes several ms at K = 50;
    benchmarks/results/optimisations.md).
    """
    slots_n = min(length, 4)
    lead = (-1,) + (1,) * c.dim()
    # a NaN coordinate (a decode that overflowed) must still give an index: clamp passes NaN on, and as an
    # integer it was INT64_MIN, which failed the whole engine call; its weights stay NaN, so the image's
    # answer is non-finite and refused alone
    start = torch.clamp(torch.nan_to_num(torch.floor(c), nan=0.0) - 1, 0, length - slots_n)
    slots = start + torch.arange(slots_n, dtype=c.dtype, device=c.device).reshape(lead)  # [slot, ...]
    # arange, not a tensor from a list: that list would be copied from the host on each call,
    # which CUDA graph capture refuses
    taps = c + torch.arange(-1, 2, dtype=c.dtype, device=c.device).reshape(lead)  # [tap, ...]
    valid = ((taps >= -1) & (taps <= length)).to(c.dtype)
    taps = torch.clamp(taps, 0, length - 1)
    hat = torch.relu(1 - torch.abs(taps.unsqueeze(0) - slots.unsqueeze(1)))  # [slot, tap, ...]
    return start, (hat * valid).sum(dim=1)


def skip_lookup(pos: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """Mean of 3x3 bilinear samples around each landmark, from its own image's feature map.

    pos  [B, M, nodes, 2] normalised (x, y); M decodes share image b's fmap.
    fmap [B, C, S, S] (square, as the encoder makes them).   Returns [B, M, nodes, C].
    """
    b, c, h, w = fmap.shape
    if h != w:
        raise ValueError(f"skip_lookup needs a square feature map, got {h}x{w}")
    table = fmap.permute(0, 2, 3, 1).reshape(-1, c)  # [B*S*S, C], channels contiguous per pixel
    start, weights = _axis_taps((pos * w).permute(3, 0, 1, 2), w)  # [xy, B, M, nodes], [n, xy, B, M, nodes]
    n = weights.shape[0]
    # window top-left as a flat index, plus the window's offsets; integer arithmetic, since a
    # float16 engine (fp16 GPU, TensorRT fp16) holds integers exactly only up to 2048
    start = start.long()
    image = torch.arange(b, device=pos.device).reshape(b, 1, 1) * (h * w)
    corner = (start[1] * w + start[0] + image).unsqueeze(-1)  # [B, M, nodes, 1]
    offsets = (torch.arange(n, device=pos.device).unsqueeze(-1) * w + torch.arange(n, device=pos.device)).reshape(-1)
    weight = (weights[:, 1].unsqueeze(1) * weights[:, 0].unsqueeze(0)) / 9.0  # [row, col, B, M, nodes]
    weight = weight.reshape(n * n, -1).t().reshape(*pos.shape[:3], 1, n * n)
    index = corner + offsets
    # Gather + weighted sum per group of nodes: each group's gathered taps ([B, M, group, 16, C],
    # ~6 MB at K = 50) are read back while still in cache. All 120 nodes at once (50 MB)
    # made the look-ups ~1.6x slower (benchmarks/results/optimisations.md).
    parts = [w_ @ table[i_] for w_, i_ in zip(weight.split(LOOKUP_NODE_GROUP, dim=2),
                                              index.split(LOOKUP_NODE_GROUP, dim=2))]
    return torch.cat(parts, dim=2).reshape(*pos.shape[:3], c)


class HybridGNet(nn.Module):
    """The published HybridGNet (skip or no-skip) with dense graph layers."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate("config")
        self.config = config
        f = config.filters
        k = config.K
        a_fine, a_coarse = graph.fine_adjacency(), graph.coarse_adjacency()
        skip_in = ENCODER_CHANNELS[-1] + 2 if config.use_skip else 0
        self.encoder = Encoder(config.latents, config.inputsize)
        self.dec_lin = nn.Linear(config.latents, 60 * f[6])
        self.graphConv_up6 = DenseChebConv(a_coarse, f[6], f[5], k)
        self.graphConv_up5 = DenseChebConv(a_coarse, f[5], f[4], k)
        self.graphConv_up4 = DenseChebConv(a_coarse, f[4] + skip_in, f[3], k)
        self.graphConv_up3 = DenseChebConv(a_fine, f[3], f[2], k)
        self.graphConv_up2 = DenseChebConv(a_fine, f[2] + skip_in, f[1], k)
        self.graphConv_up1 = DenseChebConv(None, f[1], f[0], 1, bias=False)
        if config.use_skip:
            self.SC_1 = SkipPredictor(f[4])
            self.SC_2 = SkipPredictor(f[2])
        self.register_buffer("upsample", torch.from_numpy(graph.coarse_to_fine()).float(), persistent=False)

    @staticmethod
    def _conv_norm_relu(conv: DenseChebConv, x: torch.Tensor) -> torch.Tensor:
        # published InstanceNorm1d on [N, nodes, F] normalises each node over its F features
        return F.relu(F.layer_norm(conv(x), (conv.cout,), eps=NORM_EPS))

    def decode(self, z: torch.Tensor, conv5: torch.Tensor, conv6: torch.Tensor, return_skips: bool = False):
        """z [B, M, latents] -> normalised landmarks [B, M, 120, 2] (M decodes per image)."""
        b, m = z.shape[0], z.shape[1]
        h = F.relu(self.dec_lin(z.reshape(b * m, -1))).reshape(b * m, 60, -1)
        h = self._conv_norm_relu(self.graphConv_up6, h)
        h = self._conv_norm_relu(self.graphConv_up5, h)
        pos1 = pos2 = None
        if self.config.use_skip:
            pos1 = self.SC_1(h)
            f1 = skip_lookup(pos1.reshape(b, m, 60, 2), conv6).reshape(b * m, 60, -1)
            h = torch.cat([h, f1, pos1], dim=-1)
        h = self._conv_norm_relu(self.graphConv_up4, h)
        h = self.upsample @ h
        h = self._conv_norm_relu(self.graphConv_up3, h)
        if self.config.use_skip:
            pos2 = self.SC_2(h)
            f2 = skip_lookup(pos2.reshape(b, m, NUM_LANDMARKS, 2), conv5).reshape(b * m, NUM_LANDMARKS, -1)
            h = torch.cat([h, f2, pos2], dim=-1)
        h = self._conv_norm_relu(self.graphConv_up2, h)
        out = self.graphConv_up1(h).reshape(b, m, NUM_LANDMARKS, 2)
        if return_skips:
            return out, pos1, pos2
        return out

    def load_published(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load a published state dict (no ``model.`` prefix); any mismatch is a ModelError naming the keys."""
        self.check_published(state, source)
        self.load_state_dict({k: v.float() for k, v in state.items()})

    def check_published(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """ModelError naming the keys where ``state`` does not fit this network's shapes; works on a network
        built on the meta device, which holds shapes and no memory."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        misshaped = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                           for k in set(own) & set(state) if state[k].shape != own[k].shape)
        problems = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped", misshaped)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                problems.append(f"{label}: {shown}")
        if problems:
            raise ModelError(f"{source}: does not match the HybridGNet config "
                             f"(inputsize {self.config.inputsize}, skip {self.config.use_skip}): " + "; ".join(problems))
