"""Build the placeholder default engine shipped until the trained model lands.

It is a real engine exported through the normal path, from the published
architecture with seeded PyTorch initialisation: UNTRAINED, so its landmarks
are meaningless. It exists so that ``chexmask_rt.load()`` works offline and
every code path is exercised. Regenerate with:

    python -m chexmask_export.default_model --output runtime/chexmask_rt/models/default.onnx
"""
from __future__ import annotations

import argparse
import hashlib

import torch

from .checkpoint import ModelConfig
from .model import HybridGNet
from .onnx_export import export_onnx

PLACEHOLDER_CONFIG = ModelConfig(latents=64, inputsize=256, K=6, filters=(2, 32, 32, 32, 16, 16, 16), use_skip=True)
SEED = 0


def build_placeholder() -> HybridGNet:
    torch.manual_seed(SEED)
    return HybridGNet(PLACEHOLDER_CONFIG).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    net = build_placeholder()
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    info = export_onnx(net, args.output, checkpoint_sha256=digest.hexdigest(), model_name="hybridgnet-placeholder",
                       model_version="0-untrained", trained=False,
                       description="UNTRAINED placeholder (seeded random weights, inputsize 256); "
                                   "landmarks are meaningless")
    print(f"wrote {args.output}: {info}")


if __name__ == "__main__":
    main()
