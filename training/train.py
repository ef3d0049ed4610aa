"""Train HybridGNet (skip variant) on synthetic chests; write a checkpoint in the published layout.

    python -m training.train --out runs/default --inputsize 512 --steps 6000 --minutes 85

Seeded and resumable (``--resume`` continues from ``OUT/train_state.pt``). The
loss is the published one: landmark MSE + MSE of the two intermediate skip
positions + KL, with the KL weight annealed linearly from 1e-5 to 1e-2 over
the first 20 % of the steps (from scratch; a continued ``--init`` holds it at
1e-2, see ``kl_annealed``; ``--kl-weight`` moves the 1e-2); Adam. The result, ``OUT/config.json`` +
``OUT/pytorch_model.bin`` (keys prefixed ``model.``), goes through the normal
``chexmask-rt export``.

With ``--ema D`` the checkpoint holds an exponential moving average of the weights
(decay D per step) and ``OUT/last_iterate/`` the weights of the last step.

Continuing a trained model (``--init``) wants ``--warmup-steps`` (a fresh Adam
moves every weight by about the full lr in its first step). On a machine whose
speed is not known ahead, ``--fit-to-minutes`` spreads the schedules over the
steps that fit in ``--minutes``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from chexmask_export.checkpoint import HF_CONFIG, HF_WEIGHTS, ModelConfig
from chexmask_export.model import HybridGNet
from chexmask_export import graph

from .data import DEFAULT_DATA, SyntheticChests, load_shapes, load_textures, texture_shapes

KL_START, KL_END, KL_RAMP = 1e-5, 1e-2, 0.2
RATE_WINDOW = (20, 120)  # steps over which --fit-to-minutes measures the step rate (after cuDNN's tuning)
RATE_MARGIN = 0.95  # plan for a little under the measured rate: data workers and clocks drift
STATS_EVERY = 25  # steps between reads of the loss figures: each read waits for the GPU
now = time.time  # the loop's clock, read once per step (tests replace it)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """The lr multiplier: a linear warm-up, times the published StepLR (x0.9 every 5 % of
    training) as a smooth decay."""
    return min(1.0, (step + 1) / max(1, warmup)) * 0.9 ** (20 * step / total)


def kl_weight(step: int, total: int, anneal: bool = True, end: float = KL_END) -> float:
    """The KL term's weight at ``step``: ``end``, after the published linear ramp when annealed."""
    if not anneal:
        return end
    return KL_START + (end - KL_START) * min(1.0, step / max(1, KL_RAMP * total))


def kl_annealed(mode: str, from_trained: bool) -> bool:
    """``--kl-anneal``: "auto" ramps the KL weight only for a model trained from scratch.

    A trained model continued with a restarted ramp drifts from its prior while the weight
    is low (its KL doubled within 100 steps) and then spends the run coming back: in stages 6
    and 7 the training error rose by 1.2 and 0.7 px, peaked where the ramp ended (not where
    the lr warm-up did) and took as many steps again to return
    (training/checkpoints/default-v10/train_log_stage6.jsonl, ..._stage7.jsonl).
    """
    return mode == "on" or (mode == "auto" and not from_trained)


class StepPlan:
    """The planned number of steps, which the lr and KL schedules are spread over.

    Fixed by ``--steps``; with ``fit`` it is re-planned once, after the steps of
    RATE_WINDOW, to what the measured rate reaches in the rest of the time budget, so a
    short run on an unknown machine still ends with the lr decayed. The log records
    the plan; ``--steps N`` with that N repeats the run's schedules from step 120 on.
    """

    def __init__(self, steps: int, fit: bool = False):
        self.steps, self.fit = steps, fit
        self._t0: float | None = None

    def observe(self, step: int, now: float, deadline: float) -> int | None:
        """Call after each step (``now``/``deadline`` in seconds); returns the new plan when it changes."""
        if not self.fit:
            return None
        if step == RATE_WINDOW[0]:
            self._t0 = now
        elif step == RATE_WINDOW[1] and self._t0 is not None:
            rate = (RATE_WINDOW[1] - RATE_WINDOW[0]) / max(now - self._t0, 1e-9)
            self.steps = max(step + 1, step + int(RATE_MARGIN * rate * max(deadline - now, 0.0)))
            self.fit = False
            return self.steps
        return None


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
    # tensors, not floats: reading them every step would make the host wait for the GPU
    return loss, {"rec": rec.detach(), "kl": kl.detach(), "err1024": err_px.detach()}


def save_published(net: HybridGNet, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({f"model.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()}, out / HF_WEIGHTS)
    (out / HF_CONFIG).write_text(json.dumps({**net.config.to_dict(), "skip_features": 32, "eval_sampling": True},
                                            indent=2))


def save_checkpoints(net: HybridGNet, ema: torch.optim.swa_utils.AveragedModel | None, out: Path) -> None:
    """The checkpoint: the weight average when there is one, and then the last step's weights beside it."""
    if ema is None:
        save_published(net, out)
    else:
        save_published(ema.module, out)
        save_published(net, out / "last_iterate")


def _worker_init(_: int) -> None:
    # each data worker is one process: keep its libraries single-threaded
    import cv2
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Data workers forked from a server that has imported the data code once.

    Plain fork deadlocks once OpenCV has started its thread pool; spawn imports torch
    in every worker, which took 63 s for 14 workers on the lent GPU machine (forkserver:
    3.8 s vs 23.4 s for 12 workers on the 2-core development machine).
    """
    multiprocessing.set_forkserver_preload(["torch", "training.data", "training.train"])
    return multiprocessing.get_context("forkserver")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--textures", type=Path, nargs="+",
                   help="JSON lists of checked pseudo-labelled textures (pseudo_labels.py, real_pseudo_labels.py)")
    p.add_argument("--inputsize", type=int, default=512)
    p.add_argument("--steps", type=int, default=6000, help="planned steps (sets the KL and lr schedules)")
    p.add_argument("--minutes", type=float, default=85.0, help="stop after this much training time")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="ramp the lr up linearly over these steps: Adam's first steps move every weight by about "
                        "the full lr, which wrecks a trained --init")
    p.add_argument("--fit-to-minutes", action="store_true",
                   help="re-plan --steps from the step rate measured early on, so the schedules end with --minutes")
    p.add_argument("--kl-anneal", choices=("auto", "on", "off"), default="auto",
                   help="ramp the KL weight up from 1e-5 (on) or hold it at --kl-weight (off); auto: on only "
                        "when training from scratch (see kl_annealed)")
    p.add_argument("--kl-weight", type=float, default=KL_END,
                   help="the KL term's final weight (published: 1e-2; see kl_weight)")
    p.add_argument("--labels", choices=("planned", "shown"), default="planned",
                   help="label each render with the target shape (planned) or with where it shows the "
                        "texture's landmarks (shown; see training.data.invert_field and MODEL_CARD.md)")
    p.add_argument("--shape-jitter", type=float, default=0.0,
                   help="move half the training shapes along the training set's main modes of variation, by up to "
                        "this many standard deviations (training.data.jitter_shape; e.g. 0.5); 0: off")
    p.add_argument("--framing", type=float, default=0.0,
                   help="share of samples whose chest spans a random 50-98 %% of the frame, from wide fields of view "
                        "to tight collimation (training.data.framed_affine; e.g. 0.3); 0: off")
    p.add_argument("--opacity", type=float, default=0.0,
                   help="share of samples given an effusion or consolidation at the base of one or both lungs, "
                        "labelled with the lungs' anatomical outline (training.data.basal_opacity; e.g. 0.3); 0: off")
    p.add_argument("--texture-shapes", type=int, default=0,
                   help="add each texture's own landmarks to the training shapes, this many times "
                        "(training.data.texture_shapes; e.g. 6); 0: off")
    p.add_argument("--ema", type=float, default=0.0,
                   help="write an exponential moving average of the weights (this decay per step, e.g. 0.999) as "
                        "the checkpoint, and the last step's weights to OUT/last_iterate; 0: off")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="keep the CPU's convolutions in NCHW (the default before 2026-11-27)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", type=Path, help="start from this published-layout checkpoint folder")
    args = p.parse_args(argv)
    if not args.kl_weight >= 0.0:  # also refuses nan
        p.error("--kl-weight must be 0 or more")
    for name in ("framing", "opacity"):
        if not 0.0 <= getattr(args, name) <= 1.0:  # a share of the samples; also refuses nan
            p.error(f"--{name} must be between 0 and 1")
    if args.texture_shapes < 0:  # np.tile would silently add none
        p.error("--texture-shapes must be 0 or more")
    anneal = kl_annealed(args.kl_anneal, from_trained=args.init is not None)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest convolutions
        torch.set_float32_matmul_precision("high")
    shapes, textures = load_shapes(args.data), load_textures(args.data, args.textures)
    train_shapes = shapes.train
    if args.texture_shapes:
        train_shapes = np.concatenate([train_shapes, np.tile(texture_shapes(textures), (args.texture_shapes, 1, 1))])
    print(f"{len(train_shapes)} training shapes, {len(shapes.heldout)} held out; textures: "
          f"{', '.join(t.name for t in textures)}")
    config = ModelConfig(inputsize=args.inputsize, use_skip=True)
    # NHWC convolutions: on the 2-core CPU one batch-4 step takes 0.63 s instead of 0.79 s
    # (oneDNN); left alone on CUDA, where it was not measured
    layout = torch.channels_last if device.type == "cpu" and args.channels_last else torch.contiguous_format
    net = HybridGNet(config).to(device, memory_format=layout)
    if args.init:
        from chexmask_export.checkpoint import load_checkpoint
        net.load_published(load_checkpoint(args.init, offsets=False).state_dict)  # offsets belong to the old weights
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    plan = StepPlan(args.steps, fit=args.fit_to_minutes)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, args.warmup_steps, plan.steps))
    if not 0.0 <= args.ema < 1.0:
        p.error("--ema must lie in [0, 1)")
    ema = (torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema))
           if args.ema else None)
    down = torch.from_numpy(graph.fine_to_coarse()).float().to(device)
    state_path = args.out / "train_state.pt"
    step = 0
    if args.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            if "ema" not in state:
                p.error(f"{state_path} holds no weight average: resume without --ema")
            ema.load_state_dict(state["ema"])
        step = state["step"]
        plan = StepPlan(state.get("planned_steps", args.steps), fit=args.fit_to_minutes and step < RATE_WINDOW[0])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}")
    # a re-plan may lengthen the run: the data stream (seeded per index) must reach that far
    stream_steps = plan.steps * (8 if args.fit_to_minutes else 1)
    dataset = SyntheticChests(train_shapes, textures, args.inputsize, length=stream_steps * args.batch_size,
                              seed=args.seed, labels=args.labels, shape_jitter=args.shape_jitter,
                              framing=args.framing, opacity=args.opacity)
    sampler = range(step * args.batch_size, len(dataset))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         worker_init_fn=_worker_init,
                                         multiprocessing_context=_worker_context() if args.workers > 0 else None,
                                         pin_memory=device.type == "cuda")
    def save() -> None:
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "step": step, "planned_steps": plan.steps, "torch_rng": torch.get_rng_state(),
                    **({"ema": ema.state_dict()} if ema is not None else {})}, state_path)
        save_checkpoints(net, ema, args.out)

    net.train()
    start = last_save = now()
    bar = tqdm(loader, initial=step, total=plan.steps, unit="step", dynamic_ncols=True)
    log = (args.out / "train_log.jsonl")
    args.out.mkdir(parents=True, exist_ok=True)
    avg = None
    deadline = start + args.minutes * 60
    # time the loop spends waiting for batches: large when the data workers are the bottleneck
    waited, first_wait, tick = 0.0, None, time.perf_counter()
    for images, target in bar:
        waited += time.perf_counter() - tick
        if first_wait is None:  # the workers' start-up
            first_wait = round(waited, 1)
        images = images.to(device, non_blocking=True, memory_format=layout)
        target = target.to(device, non_blocking=True)
        loss, stats = published_loss(net, images, target, kl_weight(step, plan.steps, anneal, args.kl_weight), down)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(net)
        step += 1
        avg = stats if avg is None else {k: 0.98 * avg[k] + 0.02 * v for k, v in stats.items()}
        t = now()
        replanned = plan.observe(step, t, deadline)
        if replanned is not None:
            bar.total = replanned
            print(f"step rate measured: {replanned} steps planned within --minutes {args.minutes}")
            with open(log, "a") as f:
                f.write(json.dumps({"step": step, "planned_steps": replanned}) + "\n")
        if step % STATS_EVERY == 0:
            figures = {k: float(v) for k, v in avg.items()}
            bar.set_postfix(err1024=f"{figures['err1024']:.1f}px", kl=f"{figures['kl']:.2f}")
            if step % 100 == 0:
                with open(log, "a") as f:
                    f.write(json.dumps({"step": step, "time_s": round(t - start, 1), **figures,
                                        "data_wait_s": round(waited, 1), "first_batch_wait_s": first_wait}) + "\n")
        if t > deadline:
            print(f"time budget reached at step {step} of {plan.steps}")
            break
        if step >= plan.steps:
            break
        if t - last_save > 300:
            save()
            last_save = t
        tick = time.perf_counter()
    save()
    print(f"wrote {args.out / HF_WEIGHTS} after {step} steps, {(now() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
