"""What every predict call takes: its inputs (paths or arrays, decoded to the gray pixels the core reads)
and its arguments, checked before any image is decoded."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Union

import numpy as np

from . import core
from .errors import InputError
from .image_io import read_image, to_gray
from .limits import check_pixels, resolve_max_pixels

if TYPE_CHECKING:
    from types import FrameType

ImageLike = Union[str, os.PathLike[str], np.ndarray]
DEFAULT_SAMPLES = 50  # as in the CheXmask-U paper
MAX_SAMPLES = core.MAX_SAMPLES
# Images handed to the core together when the caller does not choose (batch_size=None). On the CPU
# the core runs each image as its own engine call anyway (EngineOptions.images_per_call 0: single
# images were the fastest, README, Performance), so a larger chunk gains nothing there and only
# makes one bad image cost its neighbours a retry; on a GPU a chunk is one engine call.
DEFAULT_BATCH = 1


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(name: str, value, minimum: int) -> int:
    """An integer argument such as batch_size or workers, at least ``minimum``."""
    if not _is_int(value) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_run_arguments(samples: int, seed: int, batch_size: int,
                        second_look: bool | None = None) -> tuple[int, int]:
    """Validate what predict_batch takes, before any image is read; returns (samples, seed) as ints."""
    if not _is_int(samples) or not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if not _is_int(seed) or not 0 <= int(seed) < 2**64:
        raise InputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    check_count("batch_size", batch_size, 1)
    if second_look is not None and not isinstance(second_look, (bool, np.bool_)):
        raise InputError(f"second_look must be True, False or None, got {second_look!r}")
    return int(samples), int(seed)


def check_bit_depth(bit_depth: int | None) -> int | None:
    """None (inferred by the core) or the significant bits of uint16 pixels, 9..16 (uint8 and float
    images ignore it; the core checks it against the pixels)."""
    if bit_depth is not None and (not _is_int(bit_depth) or not 9 <= bit_depth <= 16):
        raise InputError(f"bit_depth must be an integer in 9..16 or None, got {bit_depth!r}")
    return None if bit_depth is None else int(bit_depth)


def check_image_list(images) -> None:
    """A single path or array where a list of images belongs would be taken apart element by element,
    and what is no sequence at all would fail without saying what was expected."""
    # [H, W, 1|3|4] arrays are one image too (a stack of gray images cannot be 1, 3 or 4 pixels wide)
    single_array = isinstance(images, np.ndarray) and (
        images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4)))
    if isinstance(images, (str, bytes, os.PathLike)) or single_array:
        raise InputError(f"expected a list of images, got a single {type(images).__name__}; "
                         "use predict() for one image")
    try:
        iter(images)
    except TypeError:
        raise InputError(f"expected a list of images, got {type(images).__name__}") from None


# Set while arrays the package decoded itself (batch, predict_iter) reach predict_batch: the warning
# below is for a caller's own array, and for those it named no file and advised passing the path.
_DECODED_HERE: ContextVar[bool] = ContextVar("chexmask_rt_decoded_here", default=False)


@contextmanager
def decoded_here() -> Iterator[None]:
    """Marks the arrays this thread hands to ``predict_batch`` as decoded by the package (from files,
    or already checked as the caller's arrays when decoded)."""
    token = _DECODED_HERE.set(True)
    try:
        yield
    finally:
        _DECODED_HERE.reset(token)


def load_item(item: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, str | None]:
    """A path (decoded here) or an array -> (array, file name or None); either must lie within
    the pixel limit (:mod:`chexmask_rt.limits`)."""
    limit = resolve_max_pixels(max_pixels)
    if isinstance(item, np.ndarray):
        if item.ndim >= 2:
            check_pixels(item.shape[1], item.shape[0], "array", limit)
        if not _DECODED_HERE.get():
            _warn_if_nearly_black(item)
        return item, None
    if isinstance(item, (str, os.PathLike)):
        return read_image(item, max_pixels=limit), os.fspath(item)
    raise InputError(f"expected an image path or a numpy array, got {type(item).__name__}{_conversion_hint(item)}")


DARK_UINT8 = 64  # an 8-bit array whose brightest pixel is below this is not a radiograph as displayed


def _warn_if_nearly_black(array: np.ndarray) -> None:
    """The commonest array mistake gives no error: a 16-bit file read by ``cv2.imread`` without
    ``IMREAD_UNCHANGED`` arrives as 8 bits holding 0..15, and its landmarks moved 7 px on average,
    19 px at most, unflagged. A warning says so (the image may also just be that dark)."""
    # one the core refuses for its size gets that error alone
    refused = array.ndim < 2 or not core.MIN_SIDE <= min(array.shape[:2]) <= max(array.shape[:2]) <= core.MAX_SIDE
    if array.dtype == np.uint8 and not refused and int(array.max()) < DARK_UINT8:
        import sys
        import warnings

        frame: FrameType | None  # None past the outermost frame
        level, frame, package = 2, sys._getframe(1), os.path.dirname(__file__)  # stacklevel 2: our caller
        while frame is not None and frame.f_code.co_filename.startswith(package):  # the caller's line
            frame, level = frame.f_back, level + 1
        warnings.warn(f"an 8-bit image whose brightest pixel is {int(array.max())} of 255: nearly black, the "
                      "model reads it as displayed. A 16-bit file read by cv2.imread without "
                      "cv2.IMREAD_UNCHANGED looks like this; pass the file's path, or its 16-bit pixels",
                      UserWarning, stacklevel=level)


def _conversion_hint(item: object) -> str:
    """How to pass what people often have instead: each kind by its module, without importing any."""
    kind = f"{type(item).__module__}.{type(item).__name__}"
    if isinstance(item, bytes) and len(item) < 4096 and b"\0" not in item and os.path.exists(item):
        return "; it names a file: pass the path as text, os.fsdecode(path)"  # not the file's bytes
    if isinstance(item, (bytes, bytearray, memoryview)) or hasattr(item, "read"):
        return ("; write the file's bytes to a file and pass its path (the reader checks the file whole: "
                "damaged data, DICOM rendering)")
    if kind.startswith("PIL."):
        return "; pass its file's path, or np.asarray(image.convert('L')) (a palette image's values are not levels)"
    if kind.startswith("torch."):
        return "; pass tensor.cpu().numpy() (gray [H, W] or [H, W, 3], uint8/uint16 or float in [0, 1])"
    if kind.startswith("pydicom."):
        return ("; pass the DICOM file's path: it is rendered as displayed (window, VOI LUT, polarity), "
                "which ds.pixel_array is not")
    return ""


# a DICOM's pixels reach the model rendered to 16 bits: the file's own depth no longer applies
DICOM_BIT_DEPTH = ("is for PNG, TIFF and BMP files; a DICOM file is rendered to 16 bits by its own Bits Stored, "
                   "rescale and window")


def decode(item: ImageLike, max_pixels: int | None = None,
           bit_depth: int | None = None) -> tuple[np.ndarray, str | None]:
    """Any accepted input -> (the gray array the core reads, file name or None); no copy for gray arrays.
    With a ``bit_depth``, a DICOM file is refused (:data:`DICOM_BIT_DEPTH`): its 12-bit image was
    refused as needing more than 12 bits, and an 8-bit one took no notice of it."""
    if bit_depth is not None and isinstance(item, (str, os.PathLike)):
        from .dicom_io import is_dicom_file

        if is_dicom_file(item):
            raise InputError(f"{os.fspath(item)}: bit_depth {DICOM_BIT_DEPTH}: leave it out for DICOM files")
    array, name = load_item(item, max_pixels)
    return to_gray(array, name=name or "array"), name
