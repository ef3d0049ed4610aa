"""Label more real radiographs with a first model, to widen the texture pool.

    python -m training.pseudo_labels --model stage1.onnx --out textures.json --overlays DIR

Writes [{"image": "images/NAME", "landmarks": [[x, y], ...]}] (original pixels,
the mean over 50 samples) and one overlay per image. A label only becomes a
texture after a person has looked at its overlay and kept it in the JSON.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import cv2

import chexmask_rt
from chexmask_rt.image_io import read_image
from chexmask_rt.overlay import draw_overlay

from .data import DEFAULT_DATA, REFERENCE_TEXTURE

CANDIDATES = ("wiki_example2_chest_xray.jpg", "wiki_example3_icd_chest_xray.png", "wiki_example4_prd06.jpg",
              "nih_00000001_000_512.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="engine .onnx")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overlays", type=Path)
    p.add_argument("--images", nargs="*", default=list(CANDIDATES))
    args = p.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = chexmask_rt.load(args.model)
    items = []
    for name in args.images:
        assert name != REFERENCE_TEXTURE, "the reference texture has expert-checked landmarks already"
        image = read_image(args.data / "images" / name)
        r = seg.predict(image, samples=50, second_look=False)  # as training/textures.json was made
        items.append({"image": f"images/{name}", "landmarks": r.landmarks.round(2).tolist(),
                      "mean_node_std": round(r.mean_node_std, 3)})
        if args.overlays:
            args.overlays.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.overlays / f"{Path(name).stem}.png"), draw_overlay(image, r, max_side=768))
    write_labels(items, args.out)


def write_labels(items: list[dict], out: Path) -> None:
    """The texture list ``training.data.load_textures`` reads, one line per image (readable, small diffs)."""
    out.write_text("[\n" + ",\n".join(json.dumps(item) for item in items) + "\n]\n")
    print(f"wrote {len(items)} labels to {out}")


if __name__ == "__main__":
    main()
