"""The published CheXmask-U inference flow, per image, as a second torch runner.

`benchmarks/reference.py` is the yardstick the speed-ups are quoted against; this module is
the yardstick for that yardstick. It re-implements, from the published flow's description
(not from its code), what the published script (`HybridGNet/inferenceWithSampling.py`) does
for one image, so that `python -m benchmarks.baseline` can show the reference is at least
as fast:

 1. the image (already S x S, 8-bit) / 255.0 in float64, then a float32 [1, 1, S, S] tensor;
 2. one encode (the reference's encoder: batch-statistics norms, in-place ReLUs);
 3. the latent variance exp(log_var), kept for the output;
 4. K latent samples as a Python list of K calls of mu + exp(0.5 log_var) * randn_like(...),
    stacked to [K, 1, latents];
 5. the skip maps repeated K times (real copies);
 6. one batched decode of the K samples: torch_geometric ChebConv, InstanceNorm1d, ReLU; each
    skip look-up as `roi_align(map, boxes, output_size=(1, 1), aligned=True)` with a list of K
    box tensors, the 3 x 3 window around each position; the un-pooling as message passing with
    the upsampling matrix's values;
 7. the decodes x S to numpy, mean and std (ddof 0) over the K samples;
all under one `torch.no_grad()`, with `torch.manual_seed(42)` once before the first image. Writing the CSV (step 8)
is file output, left out of both runners.

torchvision's `roi_align` is used where it imports. Beside the CPU torch 2.13 wheel it does
not, and `roi_align_3x3` stands in: the same boxes, rules and fixed 3 x 3 grid, computed by
the reference's `roi_align_mean`. `benchmarks/results/baseline.md` records that stand-in's
cost against the real operator (torch 2.14.1 + torchvision 0.29.1).
"""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import MessagePassing

from benchmarks.reference import ReferenceHybridGNet, pyg_layers, roi_align_mean
from chexmask_export import graph


def roi_align_3x3(fmap: torch.Tensor, boxes: list[torch.Tensor], output_size=(1, 1),
                  aligned: bool = True) -> torch.Tensor:
    """torchvision.ops.roi_align for the published call: box list k on map k, one 1x1 bin,
    aligned=True, and the fixed 3x3 sampling grid: [sum of boxes, C, 1, 1]."""
    if tuple(output_size) != (1, 1) or not aligned:
        raise ValueError("only the published call (output_size=(1, 1), aligned=True) is implemented")
    x1, y1, x2, y2 = torch.stack(boxes).unbind(-1)  # [K, nodes] each
    # aligned: pixel centres at integers, so the box starts half a pixel earlier; a 3x3 grid in one bin
    steps = (torch.arange(3, dtype=fmap.dtype, device=fmap.device) + 0.5) / 3
    xs = (x1 - 0.5)[..., None] + steps * (x2 - x1)[..., None]  # [K, nodes, 3]
    ys = (y1 - 0.5)[..., None] + steps * (y2 - y1)[..., None]
    grid_x, grid_y = xs[..., None, :].expand(*xs.shape, 3), ys[..., :, None].expand(*ys.shape, 3)
    out = roi_align_mean(fmap, grid_x.flatten(-2), grid_y.flatten(-2))  # [K, nodes, C]
    return out.reshape(-1, fmap.shape[1], 1, 1)


try:  # the real operator where torchvision loads (it does not beside the CPU torch 2.13 wheel)
    from torchvision.ops import roi_align
except (ImportError, RuntimeError):
    roi_align = roi_align_3x3


class _Unpool(MessagePassing):
    """x_fine = U @ x_coarse as message passing along U's non-zeros, weighted by their values."""

    def __init__(self, u: np.ndarray):
        super().__init__(aggr="add", flow="source_to_target")
        fine, coarse = np.nonzero(u)
        self.register_buffer("edges", torch.from_numpy(np.stack([coarse, fine])).long(), persistent=False)
        self.register_buffer("weights", torch.from_numpy(u[fine, coarse]).float(), persistent=False)
        self.shape = (u.shape[1], u.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.propagate(self.edges, x=x, weight=self.weights, size=self.shape)

    def message(self, x_j: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight.view(1, -1, 1) * x_j


class PublishedModel(ReferenceHybridGNet):
    """The reference network with the published decoder's own look-up and un-pooling calls."""

    def __init__(self, config):
        super().__init__(config)
        with pyg_layers():
            self.pool = _Unpool(graph.coarse_to_fine())

    def lookup(self, pos: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
        p = pos * fmap.shape[-1]
        boxes = [torch.cat([p[k, :, 0:1] - 1, p[k, :, 1:2] - 1, p[k, :, 0:1] + 2, p[k, :, 1:2] + 2], dim=1)
                 for k in range(p.shape[0])]  # one [nodes, 4] tensor per sample, as the published code builds them
        return roi_align(fmap, boxes, output_size=(1, 1), aligned=True).view(p.shape[0], p.shape[1], -1)

    def unpool(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class PublishedFlow:
    """One image at a time, as the published script: image -> (mean, std) in S x S pixels."""

    def __init__(self, checkpoint, seed: int = 42):
        self.model = PublishedModel(checkpoint.config)
        self.model.load_state_dict({k: v.float() for k, v in checkpoint.state_dict.items()}, strict=True)
        self.model.eval()
        self.size = checkpoint.config.inputsize
        torch.manual_seed(seed)  # the published script seeds once; here after the model's random init

    @torch.no_grad()
    def __call__(self, image: np.ndarray, samples: int) -> dict[str, np.ndarray]:
        """image: uint8 [S, S]. Returns the published outputs: mean, std and latent variance."""
        if image.shape != (self.size, self.size):
            raise ValueError(f"the published flow reads images already {self.size}x{self.size}, got {image.shape}")
        x = torch.from_numpy(image / 255.0).unsqueeze(0).unsqueeze(0).float()
        mu, log_var, conv5, conv6 = self.model.encoder(x)
        latent_var = np.exp(log_var.cpu().numpy())
        std = torch.exp(0.5 * log_var)
        z = torch.stack([torch.randn_like(std).mul(std).add_(mu) for _ in range(samples)], dim=0)
        out = self.model.decode(z, conv5.repeat(samples, 1, 1, 1), conv6.repeat(samples, 1, 1, 1))
        out = out.cpu().numpy().reshape(samples, -1, 2) * self.size
        return {"mean": np.mean(out, axis=0), "std": np.std(out, axis=0), "latent_var": latent_var.ravel()}
