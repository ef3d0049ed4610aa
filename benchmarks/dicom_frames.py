"""Compressed DICOM frames: the core's strict readers against libjpeg-turbo (a number, not a test).

    python -m benchmarks.dicom_frames [--width 2500] [--height 3000] [--rounds 7]

The shared CR (../shared/data/dicom), resized to width x height and spread over 12 bits, stored three
ways, and timed in alternating rounds so that the shared machine's drifts fall on all alike:
- ``read uncompressed`` / ``read lossless`` / ``read extended``: ``read_image`` of the DICOM file,
  uncompressed, JPEG Lossless (the core's decoder) and 12-bit JPEG Extended at quality 90 (the core's
  check, then libjpeg-turbo through imagecodecs);
- ``core lossless`` against ``libjpeg-turbo lossless``: the frame alone, ``_core.decode_lossless_jpeg``
  and ``imagecodecs.jpeg8_decode`` (which fills damaged data in); their samples are checked equal first;
- ``core check`` against ``libjpeg-turbo extended``: ``_core.check_dct_jpeg`` and the decode after it.
It prints each one's median over the rounds and the ratios that matter.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pydicom

from benchmarks.shared_data import DATA
from benchmarks.timing import alternating_medians
from chexmask_rt import _core
from chexmask_rt.image_io import read_image

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2500)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import imagecodecs

    sys.path.insert(0, str(TESTS))
    from jpeg_frames import encode, jpeg_dicom  # the test helpers write the frames as DICOM holds them
    from test_dicom import make_dicom

    cr = pydicom.dcmread(DATA / "dicom" / "cr_chest_monochrome2_jpeg.dcm").pixel_array
    stored = cv2.resize(cr, (args.width, args.height), interpolation=cv2.INTER_CUBIC).astype(np.uint16) * 16
    stored += np.random.default_rng(0).integers(0, 16, stored.shape, dtype=np.uint16)  # detector noise
    lossless = encode(stored, 12)
    extended = bytes(imagecodecs.jpeg8_encode(stored, level=90, bitspersample=12))
    assert np.array_equal(_core.decode_lossless_jpeg(lossless, 1 << 30)[0], imagecodecs.jpeg8_decode(lossless))
    with tempfile.TemporaryDirectory() as tmp:
        files = {"uncompressed": make_dicom(Path(tmp) / "plain.dcm", stored, BitsStored=12)}
        for name, frame, syntax in (("lossless", lossless, "1.2.840.10008.1.2.4.70"),
                                    ("extended", extended, "1.2.840.10008.1.2.4.51")):
            files[name] = Path(tmp) / f"{name}.dcm"
            jpeg_dicom(files[name], frame, *stored.shape, bits_stored=12, syntax=syntax)
        calls = {f"read {name}": (lambda p=path: read_image(p)) for name, path in files.items()}
        calls |= {"core lossless": lambda: _core.decode_lossless_jpeg(lossless, 1 << 30),
                  "libjpeg-turbo lossless": lambda: imagecodecs.jpeg8_decode(lossless),
                  "core check": lambda: _core.check_dct_jpeg(extended),
                  "libjpeg-turbo extended": lambda: imagecodecs.jpeg8_decode(extended)}
        p50 = alternating_medians(calls, args.rounds)
    print(f"{args.width}x{args.height} 12-bit CR; lossless frame {len(lossless) / 1e6:.1f} MB, extended "
          f"{len(extended) / 1e6:.1f} MB; p50 of {args.rounds} alternating rounds:")
    for name, ms in p50.items():
        print(f"  {name:24s} {ms:8.1f} ms")
    print(f"  core lossless / libjpeg-turbo lossless: {p50['core lossless'] / p50['libjpeg-turbo lossless']:.2f}")
    print(f"  core check / libjpeg-turbo extended decode: {p50['core check'] / p50['libjpeg-turbo extended']:.2f}")
    print(f"  read lossless / read uncompressed: {p50['read lossless'] / p50['read uncompressed']:.2f}; "
          f"read extended / read uncompressed: {p50['read extended'] / p50['read uncompressed']:.2f}")


if __name__ == "__main__":
    main()
