"""The real Hannover radiographs (../shared/data/real_cc_by): the committed patient split and the
V7 lung outlines.

    python -m training.real_data --write     # (re)build training/real_split.json; it is committed

``mhh/`` (243 images, 640 px wide) and ``hannover_2000/`` (2000 x 2000 centred crops of the same
radiographs, 84 with V7 lung outlines) hold the same patients, so the split is by patient id and
applies to both folders. Validation patients are drawn only from the patients that have outlined
images; every other patient trains. The images of ``hannover_2000/`` without a patient id cannot be
shown to belong to no validation patient: they never validate, and the split lists them apart
(``unknown_patient``) so that a training run decides for itself whether to use them.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmask_rt._core import Letterbox

from .data import DEFAULT_DATA

SPLIT_FILE = Path(__file__).resolve().with_name("real_split.json")
REAL = Path("real_cc_by")
VALIDATION_FRACTION = 0.4   # of the outlined images with a patient id
SPLIT_SALT = "chexmask-rt real split v1"


@dataclass(frozen=True)
class OutlinedImage:
    """One ``hannover_2000`` file with V7's two lung outlines, in its own pixels."""

    file: str
    patient: str
    projection: str
    path: Path
    right_lung: np.ndarray   # [n, 2] the patient's right lung (image left: the smaller mean x)
    left_lung: np.ndarray
    frame: Letterbox


def _manifest(data: Path) -> list[dict]:
    with open(data / REAL / "hannover_2000" / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _mhh_rows(data: Path) -> list[dict]:
    with open(data / REAL / "mhh" / "data.csv", newline="") as f:
        return list(csv.DictReader(f))


def _rank(patient: str) -> str:
    """A fixed pseudo-random order of patient ids that does not depend on the files' order."""
    return hashlib.sha256(f"{SPLIT_SALT}:{patient}".encode()).hexdigest()


def make_split(data: Path = DEFAULT_DATA) -> dict:
    """Validation patients: outlined patients in ``_rank`` order until they hold at least
    VALIDATION_FRACTION of the outlined images that have a patient id."""
    manifest = _manifest(data)
    outlined = [r for r in manifest if r["v7_lungs"] == "yes" and r["mhh_patient_id"]]
    per_patient: dict[str, int] = {}
    for r in outlined:
        per_patient[r["mhh_patient_id"]] = per_patient.get(r["mhh_patient_id"], 0) + 1
    validation: list[str] = []
    for patient in sorted(per_patient, key=_rank):
        if sum(per_patient[p] for p in validation) >= VALIDATION_FRACTION * len(outlined):
            break
        validation.append(patient)
    everyone = ({r["patient_id"] for r in _mhh_rows(data)}
                | {r["mhh_patient_id"] for r in manifest if r["mhh_patient_id"]})
    return {
        "rule": f"patients with V7 outlines in sha256('{SPLIT_SALT}:' + patient_id) order until they hold "
                f">= {VALIDATION_FRACTION:.0%} of the outlined images with a patient id; all other patients train",
        "validation_patients": sorted(validation),
        "training_patients": sorted(everyone - set(validation)),
        "unknown_patient": sorted(r["file"] for r in manifest if not r["mhh_patient_id"]),
    }


def load_split(path: Path = SPLIT_FILE) -> dict:
    return json.loads(path.read_text())


def _polygons(data: Path) -> dict:
    return json.loads((data / REAL / "hannover_2000" / "v7_lung_polygons.json").read_text())


def outlined_images(patients: set[str], data: Path = DEFAULT_DATA) -> Iterator[OutlinedImage]:
    """The outlined ``hannover_2000`` images of ``patients``, in file order."""
    polygons = _polygons(data)
    for r in _manifest(data):
        if r["mhh_patient_id"] not in patients or r["file"] not in polygons:
            continue
        entry = polygons[r["file"]]
        lungs = sorted((np.asarray(p, np.float64) for p in entry["lungs"]), key=lambda p: p[:, 0].mean())
        w, h = entry["image_size"]
        yield OutlinedImage(r["file"], r["mhh_patient_id"], r["projection"], data / REAL / "hannover_2000" / r["file"],
                            lungs[0], lungs[1], Letterbox(h, w))


def mhh_images(patients: set[str], data: Path = DEFAULT_DATA) -> list[tuple[str, Path]]:
    """(patient id, path) of the ``mhh/png`` images of ``patients``, in image-id order."""
    rows = sorted(_mhh_rows(data), key=lambda r: r["image_id"])
    return [(r["patient_id"], data / REAL / "mhh" / "png" / f"{r['image_id']}.png") for r in rows
            if r["patient_id"] in patients]


def unoutlined_images(patients: set[str], data: Path = DEFAULT_DATA) -> list[tuple[str, Path]]:
    """``mhh_images`` of ``patients`` less the radiographs that ``outlined_images`` also yields (the
    same radiograph at 2000 px with V7 outlines): what is left has no outline at all."""
    polygons = _polygons(data)
    outlined = {r["mhh_image_id"] for r in _manifest(data) if r["file"] in polygons}
    return [(patient, path) for patient, path in mhh_images(patients, data) if path.stem not in outlined]


def first_image_per_patient(patients: set[str], data: Path = DEFAULT_DATA) -> dict[str, Path]:
    """{patient id: path} of each of ``patients``' first ``mhh`` image, in image-id order."""
    first: dict[str, Path] = {}
    for patient, path in mhh_images(patients, data):
        first.setdefault(patient, path)
    return first


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--write", action="store_true", help=f"write {SPLIT_FILE.name} (else print it)")
    args = p.parse_args(argv)
    split = make_split(args.data)
    text = json.dumps(split, indent=1) + "\n"
    if args.write:
        SPLIT_FILE.write_text(text)
    print(text if not args.write else f"wrote {SPLIT_FILE}: {len(split['validation_patients'])} validation, "
          f"{len(split['training_patients'])} training patients")


if __name__ == "__main__":
    main()
