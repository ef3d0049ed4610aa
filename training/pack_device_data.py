"""Pack the training data small enough to travel to a lent GPU machine (scripts/device_session.sh).

    python -m training.pack_device_data [--out .devdata/shared/data]

Everything sent there must fit in 64 MiB with the tracked files (about 43 MB), and ../shared is
not sent. The synthetic pipeline needs ``images/`` and ``landmarks/`` (1.5 MB). The real
training textures (``training/real_textures.json``, 2000 x 2000 JPEGs) go as 512 x 512 PNGs with
their labels scaled (``real_512/real_textures.json``), beside every training patient's outlined
image and V7 outline at that scale (``real_512/v7_lungs.json``, for a loss on the outer extent).
No validation patient's image is packed.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from chexmask_rt.image_io import read_image

from .data import DEFAULT_DATA
from .pseudo_labels import write_labels
from .real_data import load_split, outlined_images

SIDE = 512
REAL_TEXTURES = Path(__file__).resolve().with_name("real_textures.json")
PACKED = "real_512"


def pack(data: Path, out: Path, textures: Path = REAL_TEXTURES) -> int:
    """Write the pack; returns its size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    for part in ("images", "landmarks"):
        shutil.rmtree(out / part, ignore_errors=True)
        shutil.copytree(data / part, out / part)
    real = out / PACKED
    shutil.rmtree(real, ignore_errors=True)
    real.mkdir()
    scales, outlines = {}, {}
    for item in outlined_images(set(load_split()["training_patients"]), data):
        image = read_image(item.path)
        scale = SIDE / max(image.shape[:2])
        small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(real / f"{item.path.stem}.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        scales[item.file] = scale
        outlines[f"{item.path.stem}.png"] = {"patient": item.patient, "image_size": [small.shape[1], small.shape[0]],
                                             "lungs": [np.round(lung * scale, 1).tolist()
                                                       for lung in (item.right_lung, item.left_lung)]}
    (real / "v7_lungs.json").write_text(json.dumps(outlines))
    labels = []
    for entry in json.loads(textures.read_text()):
        name = Path(entry["image"]).name
        labels.append({**entry, "image": f"{PACKED}/{Path(name).stem}.png",
                       "landmarks": np.round(np.asarray(entry["landmarks"]) * scales[name], 2).tolist()})
    write_labels(labels, real / "real_textures.json")
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path(".devdata/shared/data"))
    args = p.parse_args(argv)
    size = pack(args.data, args.out)
    print(f"packed {size / 2**20:.1f} MiB into {args.out}")


if __name__ == "__main__":
    main()
