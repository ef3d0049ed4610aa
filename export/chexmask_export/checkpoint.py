"""Loading published HybridGNet checkpoints in either layout.

* Hugging Face: ``config.json`` + ``pytorch_model.bin`` (keys prefixed ``model.``).
* Training script: ``*.pt`` state dict without the prefix; its config comes
  from ``--config`` or is inferred from the weights.
"""
from __future__ import annotations

import json
import math
import zipfile
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from chexmask_rt import core
from chexmask_rt.errors import ModelError, first_line
from chexmask_rt.metadata import file_sha256

from .landmark_offsets import LandmarkOffsets, read_offsets

HF_WEIGHTS = "pytorch_model.bin"
HF_CONFIG = "config.json"
ENCODER_CHANNELS = (8, 16, 32, 64, 128, 128)


MAX_INPUTSIZE, MAX_LATENTS = core.MAX_ENGINE_INPUTSIZE, core.MAX_ENGINE_LATENTS  # what the runtime opens
MAX_K, MAX_FILTERS = 64, 4096


@dataclass(frozen=True)
class ModelConfig:
    """The hyper-parameters of the published ``config.json`` that shape the network."""

    latents: int = 64
    inputsize: int = 1024
    K: int = 6
    filters: tuple[int, ...] = (2, 32, 32, 32, 16, 16, 16)
    use_skip: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    def validate(self, source: str) -> None:
        # The upper bounds: inputsize and latents are the runtime's (the core refuses an engine past them);
        # K and filters lie far past any HybridGNet, where building the network would take minutes and GBs
        problems = []
        if self.inputsize < 32 or self.inputsize % 32 or self.inputsize > MAX_INPUTSIZE:
            problems.append(f"inputsize must be a multiple of 32 in 32..{MAX_INPUTSIZE}, got {self.inputsize}")
        if not 1 <= self.latents <= MAX_LATENTS:
            problems.append(f"latents must be in 1..{MAX_LATENTS}, got {self.latents}")
        if not 1 <= self.K <= MAX_K:
            problems.append(f"K must be in 1..{MAX_K}, got {self.K}")
        if len(self.filters) != 7 or any(not 1 <= f <= MAX_FILTERS for f in self.filters):
            problems.append(f"filters must be 7 sizes in 1..{MAX_FILTERS}, got {list(self.filters)}")
        elif self.filters[0] != 2:
            problems.append(f"filters[0] is the landmark dimension and must be 2, got {self.filters[0]}")
        if problems:
            raise ModelError(f"{source}: invalid config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "ModelConfig":
        known = {"latents", "inputsize", "K", "filters", "use_skip"}

        def integer(value, key: str) -> int:
            # int() would take 256.9 or "256", and bool() takes "false" for True: a config that says
            # something else than what is built must be refused, naming the key
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelError(f"{source}: invalid config value: {key} must be an integer, got {value!r}")
            return value

        filters = d.get("filters", (2, 32, 32, 32, 16, 16, 16))
        if not isinstance(filters, (list, tuple)):
            raise ModelError(f"{source}: invalid config value: filters must be a list of integers, got {filters!r}")
        use_skip = d.get("use_skip", True)
        if not isinstance(use_skip, bool):
            raise ModelError(f"{source}: invalid config value: use_skip must be true or false, got {use_skip!r}")
        cfg = cls(latents=integer(d.get("latents", 64), "latents"),
                  inputsize=integer(d.get("inputsize", 1024), "inputsize"),
                  K=integer(d.get("K", 6), "K"), filters=tuple(integer(f, "filters") for f in filters),
                  use_skip=use_skip, extra={k: v for k, v in d.items() if k not in known})
        cfg.validate(source)
        return cfg

    def to_dict(self) -> dict:
        return {**self.extra, "latents": self.latents, "inputsize": self.inputsize, "K": self.K,
                "filters": list(self.filters), "use_skip": self.use_skip}


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    source: Path
    sha256: str
    layout: str  # "huggingface" or "training-script"
    landmark_offsets: LandmarkOffsets | None = None  # landmark_offsets.json beside the weights


def _read_config(path: Path) -> ModelConfig:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: config must be a JSON object")
    return ModelConfig.from_dict(data, str(path))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise ModelError(f"{path}: checkpoint file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    if head.startswith(b"version https://git-lfs"):  # a hub clone made without git-lfs
        raise ModelError(f"{path}: a Git LFS pointer, not the weights; fetch them (git lfs pull) and export again")
    if not head:
        raise ModelError(f"{path}: the checkpoint file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, KeyError,
            IndexError, TypeError) as exc:
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({_load_failure(exc)})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        # a training loop's checkpoint: the weights sit under a key of its own choosing
        held = [k for k, v in obj.items() if isinstance(v, dict)]
        raise ModelError(f"{path}: a checkpoint of {len(obj)} entries ({', '.join(map(str, list(obj)[:6]))}), none a "
                         f"tensor; save the state dict itself{f' (here, perhaps {held[0]!r})' if held else ''}")
    # sparse or meta tensors and keys that are not names come through the weights-only reader, and the
    # checks below would fail on them with a traceback
    if (not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj)
            or not all(isinstance(v, torch.Tensor) and v.layout == torch.strided and v.device.type == "cpu"
                       for v in obj.values())):
        raise ModelError(f"{path}: expected a state dict of dense tensors named by strings")
    # an engine of such weights would fail on every image, or be cast to floats without a word (an
    # integer tensor moved the landmarks 62 px): a corrupt or foreign file, not HybridGNet's weights.
    # A BatchNorm's step counter is an integer by design: the key check names it as a foreign key.
    bad = [k for k, v in obj.items() if not k.endswith(".num_batches_tracked")
           and (not v.is_floating_point() or not torch.isfinite(v).all())]
    if bad:
        raise ModelError(f"{path}: {len(bad)} tensors are not finite floating-point values ({', '.join(bad[:3])})")
    return dict(obj)


def _load_failure(exc: Exception) -> str:
    """Why torch's weights-only reader refused a file. Its messages all mention weights_only and
    advise turning it off, which would run the file's code: never for a file we cannot vouch for."""
    text = str(exc)
    if "GLOBAL" in text:  # a pickled object: a whole module, or code
        return ("it needs code to load (a pickled object, not a state dict of tensors), and only weights are "
                "read: save model.state_dict() instead")
    if ("weights_only" in text or "miniz" in text or "zip archive" in text
            or isinstance(exc, (KeyError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile))):
        # torch's own words for a cut file run to hundreds of characters of its internals
        return "neither a PyTorch zip archive nor a pickle of tensors, or a truncated or damaged one: fetch it again"
    return first_line(exc)


def infer_config(state: dict[str, torch.Tensor], source: str) -> ModelConfig:
    """Recover the config of a training-script checkpoint from its tensor shapes."""
    try:
        latents, fc_in = state["encoder.fc_mu.weight"].shape
        dec_out = state["dec_lin.weight"].shape[0]
        filters = [state["graphConv_up1.lins.0.weight"].shape[0]]
        for name in ("up2", "up3", "up4", "up5", "up6"):
            filters.append(state[f"graphConv_{name}.bias"].shape[0])
        k = sum(1 for key in state if key.startswith("graphConv_up6.lins.") and key.endswith(".weight"))
    except KeyError as exc:
        if not any(k.startswith(("encoder.", "graphConv_")) for k in state):  # no config would make it one
            raise ModelError(f"{source}: not HybridGNet's weights (no encoder.* or graphConv_* tensors)") from None
        raise ModelError(f"{source}: cannot infer the config, key {exc} missing; pass --config") from None
    filters.append(dec_out // 60)
    side = math.isqrt(fc_in // ENCODER_CHANNELS[-1])
    return ModelConfig.from_dict({"latents": latents, "inputsize": side * 32, "K": k, "filters": filters,
                                  "use_skip": "SC_1.graphConv_pre.lins.0.weight" in state}, source)


# Hugging Face's newer format; the published HybridGNet weights are pytorch_model.bin
_SAFETENSORS = ("a safetensors checkpoint, which export does not read: save its tensors as a state dict "
                "(torch.save(safetensors.torch.load_file(FILE), 'pytorch_model.bin')) and pass that")


def load_checkpoint(path: str | Path, config: str | Path | None = None, *, offsets: bool = True) -> Checkpoint:
    """Load a checkpoint in either published layout.

    ``path`` may be a Hugging Face folder, its ``pytorch_model.bin`` or a
    training-script ``.pt``. ``config`` overrides the config found beside it.
    ``offsets``: also read the ``landmark_offsets.json`` beside the weights, if any.
    """
    path = Path(path)
    if path.is_dir():
        weights = path / HF_WEIGHTS
        if not weights.exists():
            found = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".ckpt"))
            safe = sorted(p.name for p in path.iterdir() if p.suffix == ".safetensors")
            hint = (f"; {path / safe[0]} is {_SAFETENSORS}" if safe else
                    f"; pass the weights file itself, e.g. {path / found[0]}" if found else "")
            raise ModelError(f"{path}: folder has no {HF_WEIGHTS} (a Hugging Face checkpoint's){hint}")
    elif path.suffix == ".safetensors":  # torch.load's answer was "pip install safetensors"
        raise ModelError(f"{path}: {_SAFETENSORS}")
    elif path.exists():
        weights = path
    else:
        raise ModelError(f"{path}: checkpoint not found")
    state = _read_state_dict(weights)
    if state and all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    prefixed = [k for k in state if k.startswith("model.")]
    if prefixed and len(prefixed) == len(state):
        state = {k[len("model."):]: v for k, v in state.items()}
        layout = "huggingface"
    elif prefixed:
        raise ModelError(f"{weights}: mixes keys with and without the 'model.' prefix")
    else:
        layout = "training-script"
    if config is not None:
        cfg = _read_config(Path(config))
    elif (weights.parent / HF_CONFIG).exists() and layout == "huggingface":
        cfg = _read_config(weights.parent / HF_CONFIG)
    else:
        cfg = infer_config(state, str(weights))
    sha256 = file_sha256(weights)
    return Checkpoint(cfg, state, weights, sha256, layout, read_offsets(weights, sha256) if offsets else None)
