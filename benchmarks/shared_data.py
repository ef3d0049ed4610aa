"""The real radiographs in ../shared/data that the benchmarks measure on (never needed by the package)."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from chexmask_rt import _core
from chexmask_rt.image_io import read_image, to_gray

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def radiographs(data: Path = DATA) -> list[Path]:
    """The five shared PNG/JPEG chest radiographs, in name order."""
    return sorted((data / "images").glob("*.[pj][np]g"))


def radiographs_and_dicom(data: Path = DATA) -> list[Path]:
    """The five radiographs and the MONOCHROME2 CR DICOM (the MONOCHROME1 copy shows the same pixels)."""
    return radiographs(data) + [data / "dicom" / "cr_chest_monochrome2_jpeg.dcm"]


def gray_radiographs(data: Path = DATA) -> Iterator[tuple[Path, np.ndarray]]:
    for path in radiographs(data):
        yield path, to_gray(read_image(path))


def engine_input(image: np.ndarray, size: int) -> tuple[np.ndarray, _core.Letterbox]:
    """An image as the core prepares it for an engine of side ``size``: (float32 [size, size] in
    [0, 1], the image's frame), so that benchmarks feed engines exactly what the runtime feeds."""
    gray = to_gray(image)
    tensor, *_ = _core.preprocess(gray, size)  # uint16: its bit depth inferred, as predict infers it
    return tensor, _core.Letterbox(*gray.shape)


def experiment_arguments(doc: str) -> argparse.ArgumentParser:
    """--model (default: the shipped one), --data and --out, shared by the experiments on these images."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", help="engine .onnx (default: the shipped model)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p


def write_report(out: Path, stem: str, report: dict, plot: Callable[[dict, Path], None]) -> None:
    """OUT/STEM.json and the picture ``plot`` draws of it, OUT/STEM.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    plot(report, out / f"{stem}.png")
