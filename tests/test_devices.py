"""device="cpu"|"cuda"|"tensorrt": ONNX Runtime's execution providers, in Python,
the CLI, C++ and C. No GPU here: what is tested is the CPU path, the provider lists, and the clear
refusal when the installed onnxruntime (the CPU wheel) lacks a provider."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import chexmask_rt
from chexmask_rt import devices
from chexmask_rt.errors import ModelError

from conftest import REPO, skip_or_fail_without_native

GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
BACKENDS = ["native"]


@pytest.fixture(autouse=True)
def _cpu_wheel():
    if GPU_PROVIDERS & set(ort.get_available_providers()):
        pytest.skip("this onnxruntime has GPU providers; these tests check the CPU wheel's refusal")


def _backend(name: str) -> str:
    if name == "native":
        from chexmask_rt.backends import native
        if not native.available():
            skip_or_fail_without_native(f"chexmask_rt._core is not built ({native.IMPORT_ERROR})")
    return name


@pytest.mark.parametrize("backend", BACKENDS)
def test_cpu_runs_on_the_cpu_provider_with_the_same_numbers(backend, example1):
    seg = chexmask_rt.load(backend=_backend(backend), device="cpu")
    assert seg.providers == ["CPUExecutionProvider"]
    default = chexmask_rt.load(backend=backend)
    assert default.providers == ["CPUExecutionProvider"]
    a = seg.predict(example1, samples=4, seed=1, second_look=False)
    b = default.predict(example1, samples=4, seed=1, second_look=False)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("device,missing", [
    ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider, CUDAExecutionProvider"),
])
def test_gpu_device_without_its_provider_is_a_model_error(backend, device, missing):
    with pytest.raises(ModelError, match=f"device '{device}' needs ONNX Runtime's {missing}") as err:
        chexmask_rt.load(backend=_backend(backend), device=device)
    assert "chexmask-rt[gpu]" in str(err.value) and "CPUExecutionProvider" in str(err.value)
    # engine_options carries the device too; load's argument wins over it
    options = chexmask_rt.EngineOptions(device=device)
    with pytest.raises(ModelError, match=missing.split(",")[0]):
        chexmask_rt.load(backend=backend, engine_options=options)
    assert chexmask_rt.load(backend=backend, device="cpu", engine_options=options).providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_device_is_a_model_error(backend):
    with pytest.raises(ModelError, match="unknown device 'gpu'"):
        chexmask_rt.load(backend=_backend(backend), device="gpu")


def test_provider_lists_and_the_tensorrt_engine_cache():
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert devices.session_providers("cpu", everything, None) == ["CPUExecutionProvider"]
    assert devices.session_providers("cuda", everything, "/c") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert devices.session_providers("tensorrt", everything, None) == everything
    trt = devices.session_providers("tensorrt", everything, "/cache")
    assert trt[1:] == everything[1:] and trt[0][0] == "TensorrtExecutionProvider"
    assert trt[0][1] == {"trt_engine_cache_enable": True, "trt_engine_cache_path": "/cache",
                         "trt_timing_cache_enable": True, "trt_timing_cache_path": "/cache"}


def test_a_silent_fallback_to_the_cpu_is_refused():
    # onnxruntime's Python API keeps going on the CPU when CUDA fails to start; the check catches it
    devices.check_in_use("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], "m.onnx")
    with pytest.raises(ModelError, match="asked for CUDAExecutionProvider, but ONNX Runtime runs on CPUExecutionProvider"):
        devices.check_in_use("cuda", ["CPUExecutionProvider"], "m.onnx")
    with pytest.raises(ModelError, match="TensorrtExecutionProvider"):
        devices.check_in_use("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"], "m.onnx")


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
    from chexmask_rt.backends import native

    image = tmp_path / "x.pgm"
    image.write_bytes(b"P5\n40 40\n255\n" + bytes(1600))
    for program in (_require(C_EXAMPLE), _require(CPP_EXAMPLE)):
        proc = subprocess.run([str(program), "--model", str(chexmask_rt.default_model_path()), "--onnxruntime",
                               native.onnxruntime_library(), "--device", "tensorrt", str(image)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4, proc.stderr
        assert "needs ONNX Runtime's TensorrtExecutionProvider, CUDAExecutionProvider" in proc.stderr


def test_without_onnxruntime_load_names_the_extras(monkeypatch):
    """onnxruntime is an extra ([cpu] or [gpu]); without it the core's loader says which to install."""
    from chexmask_rt.backends import native
    monkeypatch.setattr(native.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"chexmask-rt\[cpu\]"):
        native.onnxruntime_library()
