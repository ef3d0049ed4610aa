"""Outlier exposure for the latent sigma: refit the encoder's variance head (``fc_logvar``) so
that the mean latent sigma rises on inputs that are not chest radiographs, while every
radiograph keeps the sigma it had.

    python -m training.ood_exposure --init CHECKPOINT --out OUT --ridge 1e-3 1e-2 1e-1 1 --steps 300

(the refit of versions 9 and 10, stages 11, 13 and 15 of MODEL_CARD.md; the ridge is chosen among
those given on training patients held out of a first fit). It reads the real training radiographs'
labels from ``training/real_textures.json`` and copies ``--init``'s config and history (not its metrics
or resume state) into ``--out``.

Why: the published loss gives the variance head no reason to tell a radiograph from anything
else. Its KL term pulls every input's posterior towards the prior, and nothing is ever shown
that is not a chest, so versions 6-8's mean latent sigma separated the real OOD split at AUC
0.41-0.67 (MODEL_CARD.md). Outlier exposure adds what was missing: inputs that are not
radiographs, whose posterior should *be* the prior (sigma 1: "this image says nothing about the
shape").

Only ``fc_logvar`` changes. The convolutional trunk and ``fc_mu`` stay frozen, so every image's
mean code, and with it the decode of the mean, is the one the model had; on radiographs the
new head is fitted to the old head's log-variance, so the spread of their samples stays too.
The trunk is frozen, so its features are computed once and the head, a linear map, is fitted on
them in minutes on a CPU.

Data, all from the **training** patients of ``training/real_split.json`` (the validation patients'
radiographs, from which ``training.real_eval``'s OOD split is built, are never read here):

- in distribution: their ``mhh`` radiographs, as they are and with ``AUGMENTATIONS`` of the mild
  changes of ``benchmarks.calibrate_quality.in_distribution``; renders of the training data
  (``training.data.SyntheticChests``);
- out of distribution, the **exposure kinds** ``EXPOSURE_KINDS``, each drawn at random: a rotation by
  45-315 degrees, the inverted image, a crop of 15-45 % of the side that misses the lungs' centre,
  scaled to the frame, Gaussian noise (sigma 40-120 gray levels), and generated non-radiographs
  (smooth random fields, uniform noise).

The real OOD split's other kinds (blur, a large occlusion, a mosaic, stripes, a checkerboard, a
gradient, flat gray) are never shown: their AUC says whether the head learnt "not a chest" or
only the kinds it saw. ``--tune-patients`` holds some training patients out of the fit to choose
the ridge strength and the steps before the last fit on all of them.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.calibrate_quality import as_uint8, auc, in_distribution, rotate, stretch
from benchmarks.shared_data import engine_input
from chexmask_export.checkpoint import HF_WEIGHTS, ModelConfig, load_checkpoint
from chexmask_export.model import HybridGNet

from .data import DEFAULT_DATA, SyntheticChests, load_shapes, load_textures
from .real_data import load_split, mhh_images
from .train import save_published

SEED = 31
AUGMENTATIONS = 2
EXPOSURES_PER_RADIOGRAPH = 3
RENDERS = 300
NON_RADIOGRAPHS = 120
EXPOSURE_KINDS = ("rotated", "inverted", "off_chest_crop", "noise", "non_radiograph")
FROM_RADIOGRAPHS = EXPOSURE_KINDS[:-1]  # made from a radiograph by ``exposure``; the last is generated


def exposure(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One out-of-distribution input of ``kind`` made from the radiograph ``img`` (uint8)."""
    h, w = img.shape
    if kind == "rotated":
        return rotate(img, rng.uniform(45, 315))
    if kind == "inverted":
        return 255 - img
    if kind == "off_chest_crop":
        x, y, side = off_chest_window(h, w, rng)
        return cv2.resize(img[y:y + side, x:x + side], (w, h), interpolation=cv2.INTER_LINEAR)
    if kind == "noise":
        return np.clip(img + rng.normal(0, rng.uniform(40, 120), img.shape), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown exposure kind {kind!r}")


def off_chest_window(h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(x, y, side) of a square window of 15-45 % of the shorter side that does not hold the image's
    centre (where the lungs meet) strictly inside."""
    side = int(rng.uniform(0.15, 0.45) * min(h, w))
    for _ in range(1000):  # a random window holds the centre with probability < 0.25
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        if not (x < w / 2 < x + side and y < h / 2 < y + side):
            return x, y, side
    raise RuntimeError("no off-centre window in 1000 draws")


def non_radiograph(rng: np.random.Generator, size: int = 640) -> np.ndarray:
    """A smooth random field (sigma 2-64 px) or uniform noise, stretched to 0-255."""
    if rng.random() < 0.2:
        return rng.integers(0, 256, (size, size), dtype=np.uint8)
    field = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), float(np.exp(rng.uniform(np.log(2), np.log(64)))))
    return stretch(field)


def radiograph_items(patients: set[str], rng: np.random.Generator, data: Path) -> list[tuple[str, str, np.ndarray, int]]:
    """[(patient, kind, uint8 image, label)] of ``patients``' radiographs; label 1 = out of distribution."""
    items = []
    for patient, path in mhh_images(patients, data):
        img = as_uint8(path)
        mild = in_distribution(img, rng)
        for kind in ["original", *rng.choice([k for k in mild if k != "original"], AUGMENTATIONS, replace=False)]:
            items.append((patient, str(kind), mild[kind], 0))
        for kind in rng.choice(FROM_RADIOGRAPHS, EXPOSURES_PER_RADIOGRAPH, replace=False):
            items.append((patient, str(kind), exposure(img, str(kind), rng), 1))
    return items


class Features:
    """The frozen trunk's flattened ``conv6`` features and the old head's log-variance of a set of inputs."""

    def __init__(self, net: HybridGNet, inputs: list[np.ndarray], batch: int = 8):
        flats, logvars = [], []
        with torch.no_grad():
            for i in range(0, len(inputs), batch):
                x = torch.from_numpy(np.stack(inputs[i:i + batch]))[:, None]
                _, conv6, _, logvar = net.encoder(x)
                flats.append(conv6.flatten(1))
                logvars.append(logvar)
        self.x = torch.cat(flats)
        self.logvar = torch.cat(logvars)


def fit_head(head: torch.nn.Linear, feats: Features, labels: torch.Tensor, ridge: float, steps: int,
             lr: float = 1e-4, log_every: int = 0) -> torch.nn.Linear:
    """A copy of ``head`` fitted by full-batch Adam: in distribution, the old log-variance; out of
    distribution, the prior's (0); plus ``ridge`` times the squared change of the weights."""
    new = torch.nn.Linear(head.in_features, head.out_features)
    new.load_state_dict(head.state_dict())
    w0, b0 = head.weight.detach().clone(), head.bias.detach().clone()
    opt = torch.optim.Adam(new.parameters(), lr=lr)
    target = torch.where(labels[:, None].bool(), torch.zeros_like(feats.logvar), feats.logvar)
    weight = torch.where(labels.bool(), 0.5 / labels.sum(), 0.5 / (1 - labels).sum())  # both sides count alike
    for step in range(steps):
        err = ((new(feats.x) - target) ** 2).mean(1)
        loss = (weight * err).sum() + ridge * (((new.weight - w0) ** 2).sum() + ((new.bias - b0) ** 2).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}: loss {loss.item():.5f}")
    return new


def judge(head: torch.nn.Linear, feats: Features, labels: np.ndarray, kinds: list[str]) -> dict:
    """AUC of the mean latent sigma (overall and per OOD kind) and the change of the in-distribution log-variance."""
    with torch.no_grad():
        logvar = head(feats.x)
    s = torch.exp(0.5 * logvar).mean(1).numpy()
    drift = (logvar - feats.logvar)[torch.from_numpy(labels == 0)].abs().mean().item()
    kinds_a = np.array(kinds)
    return {"auc": auc(s, labels),
            "auc_by_kind": {k: auc(s[(labels == 0) | (kinds_a == k)], labels[(labels == 0) | (kinds_a == k)])
                            for k in sorted(set(kinds_a[labels == 1]))},
            "in_distribution_logvar_change": drift}


def build(net: HybridGNet, patients: set[str], rng: np.random.Generator, data: Path, renders: int,
          non_radiographs: int, size: int) -> tuple[Features, np.ndarray, list[str]]:
    items = radiograph_items(patients, rng, data)
    inputs = [engine_input(img, size)[0] for _, _, img, _ in items]
    kinds = [k for _, k, _, _ in items]
    labels = [label for *_, label in items]
    for _ in range(non_radiographs):
        inputs.append(engine_input(non_radiograph(rng), size)[0])
        kinds.append("non_radiograph")
        labels.append(1)
    if renders:
        here = Path(__file__).parent
        textures = load_textures(data, [here / "textures.json", here / "real_textures.json"])
        chests = SyntheticChests(load_shapes(data).train, textures, size, length=renders, seed=int(rng.integers(1 << 31)))
        for i in range(renders):
            inputs.append(chests[i][0][0])
            kinds.append("render")
            labels.append(0)
    print(f"{len(inputs)} inputs: {labels.count(0)} in distribution, {labels.count(1)} out; computing features")
    return Features(net, inputs), np.array(labels), kinds


def copy_history(init: Path, out: Path) -> None:
    """``init``'s config and history (training logs, earlier refits) into ``out``: not its weights, not
    its metrics, which the new head changes, nor a resume state, which would restore the old head."""
    for f in init.iterdir():
        if f.is_file() and f.name not in (HF_WEIGHTS, "train_state.pt") and "metrics" not in f.name:
            shutil.copy2(f, out / f.name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--init", type=Path, required=True, help="published-layout checkpoint folder to start from")
    p.add_argument("--out", type=Path, required=True, help="the new checkpoint folder (a copy of --init, new head)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--ridge", type=float, nargs="+", default=[1e-2],
                   help="ridge strengths to compare on the tune patients; the best is used for the last fit")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--tune-patients", type=int, default=10,
                   help="training patients held out of the first fit, to choose --ridge (0: no tuning)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    ckpt = load_checkpoint(args.init, offsets=False)
    config = ModelConfig(inputsize=ckpt.config.inputsize, use_skip=True)
    net = HybridGNet(config)
    net.load_published(ckpt.state_dict)
    net.eval()
    head = net.encoder.fc_logvar
    patients = sorted(load_split()["training_patients"])
    report: dict = {"init": str(args.init), "seed": SEED, "steps": args.steps, "exposure_kinds": list(EXPOSURE_KINDS)}
    ridge = args.ridge[0]
    if args.tune_patients:
        order = np.random.default_rng(SEED).permutation(patients)
        tune, fit = set(order[:args.tune_patients]), set(order[args.tune_patients:])
        f_fit, y_fit, _ = build(net, fit, rng, args.data, RENDERS, NON_RADIOGRAPHS, config.inputsize)
        f_tune, y_tune, k_tune = build(net, tune, rng, args.data, 0, NON_RADIOGRAPHS // 4, config.inputsize)
        report["tune"] = {"old_head": judge(head, f_tune, y_tune, k_tune)}
        print("old head on the tune patients:", json.dumps(report["tune"]["old_head"]))
        for r in args.ridge:
            result = judge(fit_head(head, f_fit, torch.from_numpy(y_fit).float(), r, args.steps), f_tune, y_tune, k_tune)
            report["tune"][f"ridge_{r:g}"] = result
            print(f"ridge {r:g}:", json.dumps(result))
        ridge = max(args.ridge, key=lambda r: report["tune"][f"ridge_{r:g}"]["auc"])
        del f_fit, f_tune
    feats, labels, _ = build(net, set(patients), rng, args.data, RENDERS, NON_RADIOGRAPHS, config.inputsize)
    net.encoder.fc_logvar = fit_head(head, feats, torch.from_numpy(labels).float(), ridge, args.steps, log_every=50)
    report["ridge"] = ridge
    args.out.mkdir(parents=True, exist_ok=True)
    copy_history(args.init, args.out)
    save_published(net, args.out)
    (args.out / "ood_exposure.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out} (ridge {ridge:g})")


if __name__ == "__main__":
    main()
