"""The README's Python examples run as written, one after the other, on files named as they name them
(a tour that closed ``seg`` in a ``with`` line and then predicted with it raised ModelError), and the
C++ README's examples compile against the installed header."""
from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import cv2
import pydicom
import chexmask_rt
from chexmask_rt.image_io import read_image
from conftest import SHARED

README = Path(__file__).resolve().parents[1] / "README.md"
CPP_README = README.parent / "cpp" / "README.md"
# what these examples need and this machine lacks: a GPU provider, a Ray cluster
_NOT_HERE = {'load(device="cuda")': "a CUDA or TensorRT provider", 'ray.init(address="auto")': "a Ray cluster"}


def _examples(readme: Path = README, language: str = "python") -> list[str]:
    return [textwrap.dedent(block) for block in re.findall(rf"```{language}\n(.*?)```", readme.read_text(), re.S)]


def test_each_python_example_runs_or_needs_what_this_machine_lacks(tmp_path, monkeypatch, example1):
    dicom = SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"
    shutil.copy(dicom, tmp_path / "chest.dcm")
    # the PNG is the DICOM's pixels, so that the tour's SEG over the DICOM's header fits its result
    assert cv2.imwrite(str(tmp_path / "chest.png"), read_image(dicom))
    shutil.copy(tmp_path / "chest.png", tmp_path / "a.png")
    shutil.copy(example1, tmp_path / "b.png")
    shutil.copy(chexmask_rt.default_model_path(), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    names = {"paths": ["a.png", "b.png"], "ds": pydicom.dcmread("chest.dcm", stop_before_pixels=True)}

    ran, left = 0, []
    for example in _examples():
        needs = [why for marker, why in _NOT_HERE.items() if marker in example]
        if needs:
            left.extend(needs)
            continue
        exec(compile(example, str(README), "exec"), names)  # one namespace: later examples use earlier names
        ran += 1
    assert sorted(left) == sorted(_NOT_HERE.values())  # each left-out example still exists, and only they
    assert ran >= 2
    for written in ("out.png", "chest.seg.dcm", "chest.sr.dcm"):
        assert (tmp_path / written).stat().st_size > 0, written
    assert isinstance(names["r"], chexmask_rt.Result) and names["r"].source is not None


def test_the_cpp_examples_compile(tmp_path):
    """Each block is a function's body; the names it leaves to the reader (the caller's pixels) are
    the function's parameters."""
    examples = _examples(CPP_README, "cpp")
    assert len(examples) >= 2
    source = ["#include <chexmask_rt/chexmask_rt.hpp>", "#include <cstddef>"]
    for i, example in enumerate(examples):
        body = "\n".join(line for line in example.splitlines() if not line.startswith("#include"))
        source.append(f"void example_{i}(const void* pixels, int w, int h, std::size_t row_bytes, "
                      f"std::size_t buffer_size) {{\n{body}\n}}")
    (tmp_path / "examples.cpp").write_text("\n".join(source) + "\n")
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    assert compiler, "no C++ compiler: the core's build needs one too"
    done = subprocess.run([compiler, "-std=c++17", "-fsyntax-only", "-I", str(CPP_README.parent / "include"),
                           str(tmp_path / "examples.cpp")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
