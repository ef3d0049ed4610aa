"""The one-call engine: encoder once per image, all K latent samples decoded in
one batch, and the per-landmark statistics, as a single torch module to export."""
from __future__ import annotations

import torch
from torch import nn

from .landmark_offsets import LandmarkOffsets
from .model import HybridGNet

INPUT_NAMES = ["image", "eps"]
OUTPUT_NAMES = ["landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"]
SAMPLES_OUTPUT = "landmarks_samples"


class UncertaintyEngine(nn.Module):
    """(image [B,1,S,S], eps [K,latents]) -> mean/std over K samples, decode at mu, mu, sigma.

    Decode row 0 of each image is z = mu; rows 1..K are z = mu + sigma * eps_k.
    std is the population std (ddof 0), as numpy computes it in CheXmask-U.
    ``offsets`` (a checkpoint's ``landmark_offsets``) are added to every decoded row; without
    them the graph is the published model's.
    """

    def __init__(self, net: HybridGNet, emit_samples: bool = False, offsets: LandmarkOffsets | None = None):
        super().__init__()
        self.net = net.eval()
        self.emit_samples = emit_samples
        self.register_buffer("offsets", None if offsets is None else
                             torch.as_tensor(offsets.offsets, dtype=torch.float32))

    def forward(self, image: torch.Tensor, eps: torch.Tensor):
        conv5, conv6, mu, logvar = self.net.encoder(image)
        sigma = torch.exp(0.5 * logvar)
        z = torch.cat([mu.unsqueeze(1), mu.unsqueeze(1) + sigma.unsqueeze(1) * eps.unsqueeze(0)], dim=1)
        decoded = self.net.decode(z, conv5, conv6)  # [B, K+1, 120, 2]
        if self.offsets is not None:
            decoded = decoded + self.offsets
        at_mu, samples = decoded[:, 0], decoded[:, 1:]
        mean = samples.mean(dim=1)
        std = torch.sqrt(((samples - mean.unsqueeze(1)) ** 2).mean(dim=1))
        outputs = (mean, std, at_mu, mu, sigma)
        return outputs + (samples,) if self.emit_samples else outputs
