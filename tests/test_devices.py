"""device="cpu"|"cuda"|"tensorrt": ONNX Runtime's execution providers, in Python, the CLI, C++ and C,
all through the core. No GPU here: what is tested is the CPU path and the clear refusal when the
installed onnxruntime (the CPU wheel) lacks a provider."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import chexmask_rt
from chexmask_rt import core, devices
from chexmask_rt.errors import ModelError

from conftest import REPO

GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}


@pytest.fixture(autouse=True)
def _cpu_wheel():
    if GPU_PROVIDERS & set(ort.get_available_providers()):
        pytest.skip("this onnxruntime has GPU providers; these tests check the CPU wheel's refusal")


def test_cpu_runs_on_the_cpu_provider_with_the_same_numbers(example1):
    seg = chexmask_rt.load(device="cpu")
    assert seg.providers == ["CPUExecutionProvider"]
    default = chexmask_rt.load()
    assert default.providers == ["CPUExecutionProvider"]
    a = seg.predict(example1, samples=4, seed=1, second_look=False)
    b = default.predict(example1, samples=4, seed=1, second_look=False)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


@pytest.mark.parametrize("device,missing", [
    ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider, CUDAExecutionProvider"),
])
def test_gpu_device_without_its_provider_is_a_model_error(device, missing):
    with pytest.raises(ModelError, match=f"device '{device}' needs ONNX Runtime's {missing}") as err:
        chexmask_rt.load(device=device)
    assert "chexmask-rt[gpu]" in str(err.value) and "CPUExecutionProvider" in str(err.value)
    # engine_options carries the device too; load's argument wins over it
    options = chexmask_rt.EngineOptions(device=device)
    with pytest.raises(ModelError, match=missing.split(",")[0]):
        chexmask_rt.load(engine_options=options)
    assert chexmask_rt.load(device="cpu", engine_options=options).providers == ["CPUExecutionProvider"]


def test_unknown_device_is_a_model_error():
    with pytest.raises(ModelError, match="unknown device 'gpu'"):
        chexmask_rt.load(device="gpu")


def test_cli_device_refusal_is_one_line_exit_4(example1):
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", "--device", "cuda", str(example1)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("chexmask-rt: error: device 'cuda' needs") and proc.stderr.count("\n") == 1
    info = subprocess.run([sys.executable, "-m", "chexmask_rt", "info"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert '"providers": [\n  "CPUExecutionProvider"\n ]' in info.stdout


def test_c_and_cpp_programs_refuse_a_missing_provider(tmp_path):
    from test_sdk import C_EXAMPLE, CPP_EXAMPLE, _require

    image = tmp_path / "x.pgm"
    image.write_bytes(b"P5\n40 40\n255\n" + bytes(1600))
    for program in (_require(C_EXAMPLE), _require(CPP_EXAMPLE)):
        proc = subprocess.run([str(program), "--model", str(chexmask_rt.default_model_path()), "--onnxruntime",
                               core.onnxruntime_library(), "--device", "tensorrt", str(image)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4, proc.stderr
        assert "needs ONNX Runtime's TensorrtExecutionProvider, CUDAExecutionProvider" in proc.stderr


def test_without_onnxruntime_load_names_the_extras(monkeypatch):
    """onnxruntime is an extra ([cpu] or [gpu]); without it load() says which to install."""
    code = ("import sys; sys.modules['onnxruntime'] = None\n"
            "import chexmask_rt\n"
            "try:\n    chexmask_rt.load()\n"
            "except chexmask_rt.ModelError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == devices.MISSING_ONNXRUNTIME, proc.stdout + proc.stderr
    monkeypatch.setattr(core.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"chexmask-rt\[cpu\]"):
        core.onnxruntime_library()
