"""Memory one large image costs, by file format: what to give a container or a device.

    python -m benchmarks.decode_memory [--megapixels 32]

Writes one synthetic radiograph of ``--megapixels`` (a 2:1 frame) in each format the package
reads, then segments each file (``predict``, K = 50) in a process of its own that has already
loaded the shipped engine and segmented a small image. Prints, per format, the decoded array's
size and the peak resident memory above that process's peak before the file (``VmHWM``): the
decoders, not the engine, set it (OpenCV's PNG decoder holds two copies of the image; a TIFF is
decoded by Pillow too, to find damage OpenCV's libtiff passes over).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, warnings
import numpy as np
import chexmask_rt
from chexmask_rt.image_io import read_image
from benchmarks.run import peak_rss_mb

warnings.simplefilter("ignore")
seg = chexmask_rt.load(threads=2)
seg.predict((np.arange(600 * 500) % 251).astype(np.uint8).reshape(600, 500), samples=50)
before = peak_rss_mb()
seg.predict(sys.argv[1], samples=50)
after = peak_rss_mb()
array = read_image(sys.argv[1])
print(json.dumps({"peak_above_mb": round(after - before), "engine_process_mb": round(before),
                  "array_mb": round(array.nbytes / 2**20), "dtype": array.dtype.name, "shape": list(array.shape)}))
"""


def _write_images(folder: Path, megapixels: float) -> dict[str, Path]:
    import cv2
    from PIL import Image

    height = int((megapixels * 1e6 / 2) ** 0.5)  # rounded down: 64 MP must stay within the default limit
    width = 2 * height
    ramp = np.add.outer(np.linspace(0, 1, height), np.linspace(0, 1, width)) / 2  # compresses as a radiograph might
    gray8, gray12 = (ramp * 255).astype(np.uint8), (ramp * 4095).astype(np.uint16)
    files = {"8-bit gray PNG": folder / "gray8.png", "16-bit gray PNG": folder / "gray16.png",
             "8-bit RGB JPEG": folder / "rgb8.jpg", "16-bit RGB TIFF": folder / "rgb16.tif",
             "float32 gray TIFF": folder / "float32.tif", "12-bit DICOM": folder / "gray12.dcm"}
    cv2.imwrite(str(files["8-bit gray PNG"]), gray8)
    cv2.imwrite(str(files["16-bit gray PNG"]), gray12)
    cv2.imwrite(str(files["8-bit RGB JPEG"]), np.repeat(gray8[..., None], 3, axis=2))
    cv2.imwrite(str(files["16-bit RGB TIFF"]), np.repeat(gray12[..., None], 3, axis=2))
    Image.fromarray(ramp.astype(np.float32), mode="F").save(files["float32 gray TIFF"])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_dicom import make_dicom  # the tests' writer of an uncompressed single-frame DICOM

    make_dicom(files["12-bit DICOM"], gray12, BitsStored=12)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=32.0, help="each image's size (default 32)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chexmask-decode-memory-") as tmp:
        for kind, path in _write_images(Path(tmp), args.megapixels).items():
            done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                print(f"{kind}: the measurement failed\n{done.stderr[-2000:]}", file=sys.stderr)
                return 3
            row = {"format": kind, "file_mb": round(path.stat().st_size / 2**20, 1), **json.loads(done.stdout)}
            rows.append(row)
            print(f"{kind:18s} file {row['file_mb']:7.1f} MB  array {row['array_mb']:4d} MB {row['dtype']:7s}  "
                  f"peak above a loaded engine {row['peak_above_mb']:5d} MB "
                  f"({row['peak_above_mb'] / max(row['array_mb'], 1):.1f}x the array)")
    print(json.dumps({"megapixels": args.megapixels, "engine_process_mb": rows[0]["engine_process_mb"],
                      "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
