"""Both published checkpoint layouts load; every mismatch is a ModelError naming the problem."""
import json
import re
import shutil

import pytest
import torch

import chexmask_rt

from chexmask_export.checkpoint import load_checkpoint
from chexmask_export.onnx_export import build_network
from chexmask_rt.errors import ModelError


def _training_script_copy(fixture_dir, tmp_path):
    state = torch.load(fixture_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    path = tmp_path / "bestMSE.pt"
    torch.save({k[len("model."):]: v for k, v in state.items()}, path)
    return path


def test_huggingface_layout_by_folder_and_file(fixture_dir):
    by_folder = load_checkpoint(fixture_dir)
    by_file = load_checkpoint(fixture_dir / "pytorch_model.bin")
    assert by_folder.layout == by_file.layout == "huggingface"
    assert by_folder.config == by_file.config
    cfg = json.loads((fixture_dir / "config.json").read_text())
    assert by_folder.config.inputsize == cfg["inputsize"] and by_folder.config.use_skip == cfg["use_skip"]
    assert not any(k.startswith("model.") for k in by_folder.state_dict)


def test_training_script_layout_gives_the_same_network(fixture_dir, tmp_path):
    pt = _training_script_copy(fixture_dir, tmp_path)
    hf = load_checkpoint(fixture_dir)
    inferred = load_checkpoint(pt)
    explicit = load_checkpoint(pt, config=fixture_dir / "config.json")
    assert inferred.layout == "training-script"
    assert inferred.config == hf.config == explicit.config
    a, b = build_network(hf).state_dict(), build_network(inferred).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_missing_and_misshaped_keys_are_named(fixture_dir, tmp_path):
    state = torch.load(fixture_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    state.pop("model.dec_lin.bias")
    state["model.surprise.weight"] = torch.zeros(3)
    state["model.encoder.fc_mu.bias"] = torch.zeros(7)
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(fixture_dir / "config.json", folder)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelError) as err:
        build_network(load_checkpoint(folder))
    msg = str(err.value)
    assert "dec_lin.bias" in msg and "surprise.weight" in msg and "encoder.fc_mu.bias (7,)" in msg


@pytest.mark.parametrize("key, value, needle", [
    ("use_skip", "false", "use_skip must be true or false, got 'false'"),
    ("inputsize", 256.9, "inputsize must be an integer, got 256.9"),
    ("latents", "64", "latents must be an integer, got '64'"),
    ("filters", [2, 32, True], "filters must be an integer, got True"),
    ("filters", 32, "filters must be a list of integers, got 32"),
    # past any network, refused before building it
    ("inputsize", 2**70, "inputsize must be a multiple of 32 in 32..4096"),  # a torch TypeError traceback
    ("inputsize", 8192, "inputsize must be a multiple of 32 in 32..4096"),  # 4.4 GB built, then the mismatch
    ("K", 100000, "K must be in 1..64"),  # minutes and more than 12 GB
    ("latents", 10**9, "latents must be in 1..65536"),
    ("filters", [2, 32, 32, 32, 16, 16, 10**6], "filters must be 7 sizes in 1..4096"),
])
def test_config_values_are_checked_not_coerced(fixture_dir, tmp_path, key, value, needle):
    cfg = json.loads((fixture_dir / "config.json").read_text())
    cfg[key] = value
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=re.escape(needle)):
        load_checkpoint(fixture_dir / "pytorch_model.bin", config=wrong)


def test_wrong_sized_config_is_refused(fixture_dir, tmp_path):
    cfg = json.loads((fixture_dir / "config.json").read_text())
    cfg["inputsize"] = 512
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"fc_mu\.weight"):
        build_network(load_checkpoint(fixture_dir / "pytorch_model.bin", config=wrong))
    cfg["inputsize"] = 250
    wrong.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="multiple of 32"):
        load_checkpoint(fixture_dir / "pytorch_model.bin", config=wrong)


def test_a_config_that_disagrees_with_the_weights_is_refused_before_the_network_is_built(fixture_dir, tmp_path,
                                                                                          monkeypatch):
    """The mismatch was found by building the whole network first (inputsize 4096: GBs of weights)."""
    from chexmask_export import onnx_export

    cfg = json.loads((fixture_dir / "config.json").read_text())
    cfg["inputsize"] = 4096
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps(cfg))
    built = []
    real = onnx_export.HybridGNet
    monkeypatch.setattr(onnx_export, "HybridGNet",
                        lambda config: built.append(torch.empty(0).device.type) or real(config))
    with pytest.raises(ModelError, match=r"fc_mu\.weight \(64, 8192\) \(expected \(64, 2097152\)\)"):
        build_network(load_checkpoint(fixture_dir / "pytorch_model.bin", config=wrong))
    assert built == ["meta"]  # only the network of shapes was built


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip",
                                     b"hello", b"Rubbish", b"<html><body>404</body></html>", b"\x89PNG\r\n\x1a\n"])
def test_corrupt_checkpoint_files(tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match="bad.pt") as err:
        load_checkpoint(bad)
    assert "weights_only=False" not in str(err.value)  # torch's advice would run the file's code


def test_what_is_wrong_with_a_file_that_is_no_checkpoint_is_said(fixture_dir, tmp_path):
    """Every refusal once said 'it needs code to load' (the weights-only reader names itself in all of
    them), or '(101)' and '(EOFError)': a config or an engine passed instead of the weights is an easy slip."""
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.pt: the checkpoint file is empty$"):
        load_checkpoint(empty)
    for wrong in (fixture_dir / "config.json", chexmask_rt.default_model_path()):
        with pytest.raises(ModelError, match="neither a PyTorch zip archive nor a pickle of tensors"):
            load_checkpoint(wrong)
    whole = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), whole)  # a pickled object, whose loading would run code
    with pytest.raises(ModelError, match=r"it needs code to load \(a pickled object.*save model.state_dict\(\)"):
        load_checkpoint(whole)


def test_checkpoints_that_are_not_hybridgnets_weights_say_what_to_do(fixture_dir, tmp_path):
    """Each got advice that could not work: another network's weights 'pass --config' (which then listed
    missing keys), a training loop's {'model_state_dict': ..., 'epoch': 3} 'expected a state dict', a
    training-script folder 'folder has no pytorch_model.bin', a cut file torch's 400 characters."""
    other = tmp_path / "resnet.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)).state_dict(), other)
    with pytest.raises(ModelError, match=r"resnet.pt: not HybridGNet's weights \(no encoder\.\* or graphConv_\*"):
        load_checkpoint(other)
    state = torch.load(fixture_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    wrapped = tmp_path / "loop.pt"
    torch.save({"model_state_dict": state, "epoch": 3}, wrapped)
    with pytest.raises(ModelError, match=r"a checkpoint of 2 entries \(model_state_dict, epoch\), none a tensor; "
                                         r"save the state dict itself \(here, perhaps 'model_state_dict'\)"):
        load_checkpoint(wrapped)
    folder = tmp_path / "run"
    folder.mkdir()
    _training_script_copy(fixture_dir, folder)
    with pytest.raises(ModelError, match=f"pass the weights file itself, e.g. {re.escape(str(folder / 'bestMSE.pt'))}"):
        load_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(b"{}")  # Hugging Face's newer format: it was "e.g. bestMSE.pt"
    for given in (folder, folder / "model.safetensors"):  # the file itself: torch's "pip install safetensors"
        with pytest.raises(ModelError, match=r"model.safetensors:? .*a safetensors checkpoint, which export does not "
                                             r"read: save its tensors as a state dict"):
            load_checkpoint(given)
    cut = tmp_path / "cut.pt"
    data = (fixture_dir / "pytorch_model.bin").read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match=r"a truncated or damaged one: fetch it again\)$") as err:
        load_checkpoint(cut)
    assert len(str(err.value)) < 250


@pytest.mark.parametrize("odd", ["sparse", "meta", "int_key"])
def test_tensors_and_keys_the_weights_only_reader_lets_through_are_refused(fixture_dir, tmp_path, odd):
    state = torch.load(fixture_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    if odd == "int_key":
        state[1] = state["model.dec_lin.bias"]
    else:
        state["model.dec_lin.bias"] = (state["model.dec_lin.bias"].to_sparse() if odd == "sparse"
                                       else torch.empty(state["model.dec_lin.bias"].shape, device="meta"))
    bad = tmp_path / "odd.pt"
    torch.save(state, bad)
    with pytest.raises(ModelError, match="odd.pt: expected a state dict of dense tensors named by strings"):
        load_checkpoint(bad)  # was a traceback from the finite-values check or the prefix check


def test_batch_norm_statistics_are_named_as_foreign_keys(fixture_dir, tmp_path):
    """A BatchNorm's step counter is an integer by design: it was reported as a corrupt tensor."""
    pt = _training_script_copy(fixture_dir, tmp_path)
    state = torch.load(pt, weights_only=True)
    state["encoder.bn.running_mean"] = torch.zeros(8)
    state["encoder.bn.num_batches_tracked"] = torch.tensor(100)
    torch.save(state, pt)
    with pytest.raises(ModelError, match=r"unexpected keys: encoder\.bn\.num_batches_tracked, encoder\.bn\.running_mean"):
        build_network(load_checkpoint(pt))


def test_a_data_parallel_checkpoint_gives_the_same_network(fixture_dir, tmp_path):
    pt = _training_script_copy(fixture_dir, tmp_path)
    wrapped = tmp_path / "parallel.pt"
    torch.save({f"module.{k}": v for k, v in torch.load(pt, weights_only=True).items()}, wrapped)
    a, b = build_network(load_checkpoint(pt)).state_dict(), build_network(load_checkpoint(wrapped)).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_git_lfs_pointer_says_to_fetch_the_weights(tmp_path):
    pointer = tmp_path / "pytorch_model.bin"
    pointer.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 100\n")
    with pytest.raises(ModelError, match="a Git LFS pointer, not the weights; fetch them"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "int32", "complex64"])
def test_non_finite_weights_are_refused_by_name(fixture_dir, tmp_path, value):
    state = torch.load(fixture_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    if isinstance(value, str):
        state["model.dec_lin.bias"] = state["model.dec_lin.bias"].to(getattr(torch, value))
    else:
        state["model.dec_lin.bias"][3] = value
    folder = tmp_path / "nan"
    folder.mkdir()
    shutil.copy(fixture_dir / "config.json", folder)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"1 tensors are not finite floating-point values \(model\.dec_lin\.bias\)"):
        load_checkpoint(folder)


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ModelError, match="no pytorch_model.bin"):
        load_checkpoint(tmp_path)
    (tmp_path / "c.json").write_text("{not json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path, config=tmp_path / "c.json")
