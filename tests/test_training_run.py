"""The training loop: its step plan, and a few real steps that write a loadable checkpoint."""
import json

import pytest

from conftest import SHARED
from training import train
from training.train import KL_END, KL_START, StepPlan, kl_annealed, kl_weight, lr_factor


def test_lr_warms_up_linearly_then_decays_to_an_eighth():
    assert lr_factor(0, 300, 1000) == 1 / 300
    assert lr_factor(149, 300, 1000) == 0.5 * 0.9 ** (20 * 149 / 1000)
    assert lr_factor(299, 300, 1000) == 0.9 ** (20 * 299 / 1000)
    assert lr_factor(0, 0, 1000) == 1.0  # no warm-up
    assert abs(lr_factor(1000, 300, 1000) - 0.9 ** 20) < 1e-12  # 0.12 at the planned end


def test_kl_weight_ramps_from_scratch_and_holds_for_a_continued_model():
    assert kl_weight(0, 1000) == KL_START and kl_weight(100, 1000) < KL_END == kl_weight(200, 1000)
    assert kl_weight(0, 1000, anneal=False) == KL_END
    assert kl_annealed("auto", from_trained=False) and not kl_annealed("auto", from_trained=True)
    assert kl_annealed("on", from_trained=True) and not kl_annealed("off", from_trained=False)


def test_kl_weight_ends_where_asked():
    assert kl_weight(0, 1000, anneal=False, end=1e-3) == 1e-3 == kl_weight(200, 1000, end=1e-3)
    assert kl_weight(100, 1000, end=1e-3) == KL_START + 0.5 * (1e-3 - KL_START)


def test_the_loop_weighs_the_kl_term_as_asked(tmp_path, monkeypatch):
    weights = []
    loss = train.published_loss

    def spy(net, images, target, kl_w, down):
        weights.append(kl_w)
        return loss(net, images, target, kl_w, down)

    monkeypatch.setattr(train, "published_loss", spy)
    train.main(["--out", str(tmp_path / "run"), "--data", str(SHARED / "data"), "--inputsize", "512",
                "--batch-size", "1", "--workers", "0", "--device", "cpu", "--steps", "2", "--seed", "4",
                "--kl-anneal", "off", "--kl-weight", "3e-4"])
    assert weights == [3e-4, 3e-4]


@pytest.mark.parametrize("weight", ["-1e-3", "nan"])
def test_a_negative_kl_weight_is_refused(tmp_path, weight):
    with pytest.raises(SystemExit) as e:
        train.main(["--out", str(tmp_path / "run"), "--data", str(SHARED / "data"), "--kl-weight", weight])
    assert e.value.code == 2


def test_a_negative_texture_shapes_count_is_refused(tmp_path):
    with pytest.raises(SystemExit) as e:
        train.main(["--out", str(tmp_path / "run"), "--data", str(SHARED / "data"), "--texture-shapes", "-1"])
    assert e.value.code == 2


@pytest.mark.parametrize("flag, value", [("--opacity", "1.5"), ("--opacity", "nan"), ("--framing", "-0.1")])
def test_a_share_of_samples_outside_0_to_1_is_refused(tmp_path, flag, value):
    with pytest.raises(SystemExit) as e:
        train.main(["--out", str(tmp_path / "run"), "--data", str(SHARED / "data"), flag, value])
    assert e.value.code == 2


def test_a_fixed_plan_never_changes():
    plan = StepPlan(500)
    assert all(plan.observe(s, now=float(s), deadline=1e9) is None for s in range(1, 300))
    assert plan.steps == 500


def test_the_plan_fits_the_measured_rate_to_the_time_left():
    plan = StepPlan(500, fit=True)
    lo, hi = train.RATE_WINDOW
    answers = [plan.observe(s, now=s * 0.1, deadline=100.0) for s in range(1, 400)]  # 10 steps/s
    changed = [a for a in answers if a is not None]
    # re-planned once, at the end of the window: hi steps done at t = hi/10 s, 10 steps/s for the rest
    assert changed == [hi + int(train.RATE_MARGIN * 10 * (100.0 - hi * 0.1))]
    assert plan.steps == changed[0]


def test_a_plan_past_its_deadline_stops_at_the_next_step():
    plan = StepPlan(500, fit=True)
    for s in range(1, train.RATE_WINDOW[1] + 1):
        plan.observe(s, now=float(s), deadline=0.0)
    assert plan.steps == train.RATE_WINDOW[1] + 1


def test_training_steps_write_a_published_layout_checkpoint(tmp_path, monkeypatch):
    from chexmask_export.checkpoint import load_checkpoint

    monkeypatch.setattr(train, "RATE_WINDOW", (1, 2))
    monkeypatch.setattr(train, "STATS_EVERY", 1)
    clock = iter(range(10**6))
    monkeypatch.setattr(train, "now", lambda: float(next(clock)))  # one second per step
    out = tmp_path / "run"
    # 6 s budget; the window measures 1 step/s at step 2: 4 s left, planned with the margin, is 3 steps
    train.main(["--out", str(out), "--data", str(SHARED / "data"), "--inputsize", "256", "--batch-size", "1",
                "--workers", "0", "--device", "cpu", "--steps", "50", "--minutes", "0.1", "--fit-to-minutes",
                "--seed", "1"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"step": 2, "planned_steps": 5} in log
    ckpt = load_checkpoint(out)
    assert ckpt.config.inputsize == 256 and ckpt.config.use_skip
    import torch
    state = torch.load(out / "train_state.pt", weights_only=False)
    assert state["step"] == 5 and state["planned_steps"] == 5


def test_ema_writes_the_weight_average_and_the_last_step_beside_it(tmp_path, monkeypatch):
    import torch
    from chexmask_export.checkpoint import load_checkpoint

    seen = []  # the weights after each optimiser step, as the average sees them
    update = torch.optim.swa_utils.AveragedModel.update_parameters

    def spy(self, model):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return update(self, model)

    monkeypatch.setattr(torch.optim.swa_utils.AveragedModel, "update_parameters", spy)
    out = tmp_path / "run"
    args = ["--out", str(out), "--data", str(SHARED / "data"), "--inputsize", "256", "--batch-size", "1",
            "--workers", "0", "--device", "cpu", "--steps", "3", "--seed", "2", "--lr", "1e-3", "--ema", "0.5"]
    train.main(args)
    assert len(seen) == 3
    name = "encoder.fc_mu.weight"
    expected = 0.5 * (0.5 * seen[0][name] + 0.5 * seen[1][name]) + 0.5 * seen[2][name]
    averaged = load_checkpoint(out).state_dict[name]
    last = load_checkpoint(out / "last_iterate").state_dict[name]
    torch.testing.assert_close(averaged, expected)
    torch.testing.assert_close(last, seen[2][name])
    assert not torch.allclose(averaged, last)

    # resuming an average needs the average: a state written without --ema is refused
    plain = tmp_path / "plain"
    train.main(args[:1] + [str(plain)] + args[2:-2])
    with pytest.raises(SystemExit):
        train.main(args[:1] + [str(plain)] + args[2:] + ["--resume"])


def test_texture_shapes_join_the_training_shapes_as_often_as_asked(tmp_path, monkeypatch):
    from pathlib import Path

    import numpy as np

    from training.data import load_shapes, load_textures, texture_shapes

    seen = []

    class Spy(train.SyntheticChests):
        def __init__(self, shapes, *a, **k):
            seen.append(shapes)
            super().__init__(shapes, *a, **k)

    monkeypatch.setattr(train, "SyntheticChests", Spy)
    listing = str(Path(train.__file__).parent / "textures.json")
    train.main(["--out", str(tmp_path / "run"), "--data", str(SHARED / "data"), "--inputsize", "512",
                "--batch-size", "1", "--workers", "0", "--device", "cpu", "--steps", "1", "--seed", "3",
                "--textures", listing, "--texture-shapes", "3"])
    library = load_shapes(SHARED / "data").train
    own = texture_shapes(load_textures(SHARED / "data", listing))  # the reference and the 4 in the listing
    assert len(own) == 5
    np.testing.assert_array_equal(seen[0], np.concatenate([library, own, own, own]))
