"""Train HybridGNet (skip variant) on synthetic chests; write a checkpoint in the published layout.

    python -m training.train --out runs/default --inputsize 512 --steps 6000 --minutes 85

Seeded and resumable (``--resume`` continues from ``OUT/train_state.pt``). The
loss is the published one: landmark MSE + MSE of the two intermediate skip
positions + KL, with the KL weight annealed linearly from 1e-5 to 1e-2 over
the first 20 % of the steps; Adam. The result, ``OUT/config.json`` +
``OUT/pytorch_model.bin`` (keys prefixed ``model.``), goes through the normal
``chexmask-rt export``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from chexmask_export.checkpoint import HF_CONFIG, HF_WEIGHTS, ModelConfig
from chexmask_export.model import HybridGNet
from chexmask_rt import graph

from .data import DEFAULT_DATA, SyntheticChests, load_shapes, load_textures

KL_START, KL_END, KL_RAMP = 1e-5, 1e-2, 0.2


def kl_weight(step: int, total: int) -> float:
    return KL_START + (KL_END - KL_START) * min(1.0, step / max(1, KL_RAMP * total))


def published_loss(net: HybridGNet, images: torch.Tensor, target: torch.Tensor, kl_w: float,
                   down: torch.Tensor) -> tuple[torch.Tensor, dict]:
    conv5, conv6, mu, logvar = net.encoder(images)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    out, pos1, pos2 = net.decode(z[:, None], conv5, conv6, return_skips=True)
    out, pos1, pos2 = out[:, 0], pos1.reshape(out.shape[0], -1, 2), pos2.reshape(out.shape[0], -1, 2)
    rec = F.mse_loss(out, target)
    skips = F.mse_loss(pos1, down @ target) + F.mse_loss(pos2, target)
    kl = -0.5 * torch.mean(torch.mean(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
    loss = rec + skips + kl_w * kl
    err_px = (out - target).norm(dim=-1).mean() * 1024
    return loss, {"rec": rec.item(), "kl": kl.item(), "err1024": err_px.item()}


def save_published(net: HybridGNet, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({f"model.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()}, out / HF_WEIGHTS)
    (out / HF_CONFIG).write_text(json.dumps({**net.config.to_dict(), "skip_features": 32, "eval_sampling": True},
                                            indent=2))


def _worker_init(_: int) -> None:
    # each data worker is one process: keep its libraries single-threaded
    import cv2
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--textures", type=Path, help="JSON of checked pseudo-labelled textures (see pseudo_labels.py)")
    p.add_argument("--inputsize", type=int, default=512)
    p.add_argument("--steps", type=int, default=6000, help="planned steps (sets the KL and lr schedules)")
    p.add_argument("--minutes", type=float, default=85.0, help="stop after this much training time")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", type=Path, help="start from this published-layout checkpoint folder")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shapes, textures = load_shapes(args.data), load_textures(args.data, args.textures)
    print(f"{len(shapes.train)} training shapes, {len(shapes.heldout)} held out; textures: "
          f"{', '.join(t.name for t in textures)}")
    config = ModelConfig(inputsize=args.inputsize, use_skip=True)
    net = HybridGNet(config).to(device)
    if args.init:
        from chexmask_export.checkpoint import load_checkpoint
        net.load_published(load_checkpoint(args.init).state_dict)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    # the published StepLR (x0.9 every 5 % of training), as a smooth decay
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9 ** (20 * s / args.steps))
    down = torch.from_numpy(graph.fine_to_coarse()).float().to(device)
    state_path = args.out / "train_state.pt"
    step = 0
    if args.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = state["step"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}")
    dataset = SyntheticChests(shapes.train, textures, args.inputsize, length=args.steps * args.batch_size,
                              seed=args.seed)
    sampler = range(step * args.batch_size, len(dataset))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         worker_init_fn=_worker_init,
                                         # fork after OpenCV has started its thread pool deadlocks the workers
                                         multiprocessing_context="spawn" if args.workers > 0 else None,
                                         pin_memory=device.type == "cuda")
    net.train()
    start, last_save = time.time(), time.time()
    bar = tqdm(loader, initial=step, total=args.steps, unit="step", dynamic_ncols=True)
    log = (args.out / "train_log.jsonl")
    args.out.mkdir(parents=True, exist_ok=True)
    avg = None
    for images, target in bar:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        loss, stats = published_loss(net, images, target, kl_weight(step, args.steps), down)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        avg = stats if avg is None else {k: 0.98 * avg[k] + 0.02 * v for k, v in stats.items()}
        bar.set_postfix(err1024=f"{avg['err1024']:.1f}px", kl=f"{avg['kl']:.2f}")
        if step % 100 == 0:
            with open(log, "a") as f:
                f.write(json.dumps({"step": step, "time_s": round(time.time() - start, 1), **avg}) + "\n")
        out_of_time = (time.time() - start) / 60 > args.minutes
        if time.time() - last_save > 300 or out_of_time or step == args.steps:
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": step, "torch_rng": torch.get_rng_state()}, state_path)
            save_published(net, args.out)
            last_save = time.time()
        if out_of_time:
            print(f"time budget reached at step {step}")
            break
    save_published(net.eval(), args.out)
    print(f"wrote {args.out / HF_WEIGHTS} after {step} steps, {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
