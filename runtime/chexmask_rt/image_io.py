"""Reading image files into arrays, and arrays into the gray pixels the core takes, with errors
that name the file.

JPEG goes through libjpeg-turbo in strict mode (simplejpeg), so that damaged image data is an
error rather than an image whose rest is gray; PNG/TIFF/BMP, and the JPEG kinds TurboJPEG does
not decode, through OpenCV (PNG chunks' CRCs and TIFF strips are checked, for the same reason;
OpenCV's turning of a TIFF by its Orientation tag is undone, so that every format is read as stored);
DICOM (Part 10 files, or a .dcm/.dicom name) through :mod:`chexmask_rt.dicom_io`. Before anything
is decoded, the file's size and its header's declared size are checked against the pixel limit
(:mod:`chexmask_rt.limits`), so an oversized or bogus file is refused cheaply.
:func:`to_gray` turns colour into gray and checks the pixel type; everything after
(bit depth, letterbox, resize) is the core's.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from . import core
from .core import MIN_SIDE
from .dicom_io import DICM_HEAD, looks_like_dicom, read_dicom
from .errors import InputError, OutOfMemoryError, first_line, os_reason, path_text
from .image_headers import Header, check_png_chunks, jpeg_cut_before_scan, read_header
from .jpeg_strict import decode_jpeg_strict
from .limits import check_file_size, check_pixels, resolve_max_pixels
from .lasting_threads import on_lasting_thread
from .native_gate import native_call


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF/BMP file to a gray or RGB(A) array in its own bit depth,
    or a DICOM file to a rendered gray array (see :mod:`chexmask_rt.dicom_io`).

    ``max_pixels``: the pixel limit (default: ``$CHEXMASK_RT_MAX_PIXELS``, else 64 MP); a larger
    image, a file larger than such an image could be, and a multi-page TIFF are InputErrors."""
    with native_call():  # the decoders release the GIL: a fork and the exit wait for them (native_gate)
        return _read_image(path, max_pixels)


def _read_image(path: str | os.PathLike[str], max_pixels: int | None) -> np.ndarray:
    limit = resolve_max_pixels(max_pixels)
    p = Path(path_text(path, InputError, "an image"))
    try:  # stat refuses some paths itself: a name too long, a folder without search permission
        exists, regular = p.exists(), p.is_file()
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({os_reason(exc)})") from None
    if not exists:
        # exists() is False for a link whose target is missing or loops too: say which
        raise InputError(f"{p}: a broken or looping symbolic link" if p.is_symlink() else f"{p}: no such file")
    if not regular:
        raise InputError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputError(f"{p}: file is empty")
            check_file_size(size, limit, str(p))
            head = f.read(DICM_HEAD)
            if looks_like_dicom(p, head):
                return read_dicom(p, max_pixels=limit)
            f.seek(0)
            header = read_header(f, str(p))
            check_pixels(header.width, header.height, str(p), limit)
            check_file_size(size, header.width * header.height, str(p))
            if header.pages > 1:
                raise InputError(f"{p}: multi-page TIFF ({header.pages} pages); only single-image files are "
                                 "supported (save the radiograph as its own file)")
            f.seek(0)
            raw = f.read(size)  # bytes: Pillow's TIFF readers below share them, as the decoders' array does
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({os_reason(exc)})") from exc
    data = np.frombuffer(raw, dtype=np.uint8)
    if header.format == "tiff":
        # before OpenCV's decode, whose image would otherwise sit beside Pillow's: a float32 TIFF
        # peaked at 4x its pixels, with a copy of the file for Pillow
        _check_tiff_data(raw, str(p))
        _refuse_misread_tiff(header, str(p))
    if header.format == "png":
        check_png_chunks(data.data, str(p))  # its memoryview: numpy's types lack the buffer protocol before 3.12
    if header.format == "jpeg" and raw.count(b"\xff\xda") > MAX_JPEG_SCANS:
        # each scan of a progressive JPEG is another pass over the whole image: a 685 kB file of 2,688
        # scans took 93 s to decode (FF DA is a scan's marker; in the coded data an FF is followed by 00)
        raise InputError(f"{p}: a JPEG of more than {MAX_JPEG_SCANS} scans (encoders write at most about 10); "
                         "save it again as an ordinary JPEG")
    image = decode_jpeg_strict(data, str(p)) if header.format == "jpeg" else None
    if not isinstance(image, np.ndarray):
        declined = image  # TurboJPEG's reason for leaving a JPEG to OpenCV, None for other formats
        try:
            if declined is not None and _TWELVE_BIT in declined:
                # OpenCV's libjpeg reads 8-bit JPEG only too (measured, OpenCV 5.1), and on some 12-bit
                # files prints 'Invalid SOS parameters for sequential JPEG' on stderr before failing
                raise InputError(declined)
            image = _decode_opencv(data, str(p))
        except InputError:
            if header.format == "tiff" and header.bits is not None and 1 < header.bits < 8:
                # OpenCV reads 1-bit and 8- to 16-bit gray TIFFs; a 2- to 7-bit one came back as "corrupt"
                raise InputError(f"{p}: a TIFF of {header.bits} bits per sample, which no decoder here reads; "
                                 "save it with 8 or 16 bits per sample") from None
            if declined is None:
                raise
            if jpeg_cut_before_scan(raw):  # TurboJPEG stopped at a table the cut left out, OpenCV too
                raise InputError(f"{p}: not a readable image (JPEG cut short before its image data)") from None
            raise InputError(f"{p}: not a readable image (a kind of JPEG no decoder here reads: {declined})") from None
    if header.format == "tiff":
        image = _as_stored(image, header.orientation)
    # the pixel limit was checked on the header's size: a decoder that read another one was not limited
    _check_decoded_size(image, header.width, header.height, str(p))
    if header.format == "tiff":
        image = _tiff_as_displayed(image, header, raw, str(p))
    _check_file_pixels(image, str(p))
    return image


# the scans a JPEG may hold: far above what encoders write (libjpeg's progressive scripts: 6 for gray,
# 10 for colour), far below the thousands of a file made to take minutes; TurboJPEG's own bound
# (TJPARAM_SCANLIMIT) is not reachable through simplejpeg, nor OpenCV's
MAX_JPEG_SCANS = 500
_TWELVE_BIT = "Unsupported JPEG data precision 12"  # TurboJPEG's reason for declining a 12-bit JPEG


def _check_file_pixels(image: np.ndarray, name: str) -> None:
    """A file's pixels that ``to_gray`` would refuse, refused in words for a file (its advice is for arrays):
    signed or 32-bit integer samples, and floating-point samples outside [0, 1] (what they mean is not said)."""
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise InputError(f"{name}: {image.dtype} pixels are not supported; save the image with unsigned 8- or "
                         "16-bit pixels")
    if image.dtype.kind != "f" or not image.size:
        return
    if not np.isfinite(image).all():
        raise InputError(f"{name}: its floating-point pixels include NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"{name}: floating-point pixels must lie in [0, 1], these span [{low:g}, {high:g}]; save "
                         "the image scaled to [0, 1] or with unsigned 8- or 16-bit pixels")


def _refuse_misread_tiff(header: Header, name: str) -> None:
    """InputError for the valid TIFFs OpenCV decodes to other pixels, or calls corrupt (measured, OpenCV
    5.1): samples in separate planes above 8 bits (most rows left zero: landmarks 26 px off), 16-bit
    floating point, samples of undefined format, and floating-point WhiteIsZero (read uninverted)."""
    bits = header.bits or 8
    why = ("its samples are stored in separate planes (PlanarConfiguration 2) at more than 8 bits; save it "
           "with the samples of a pixel together" if header.planar == 2 and bits > 8 else
           "its samples are 16-bit floating point; save it as 32-bit floating point or 16-bit unsigned"
           if header.sample_format == 3 and bits == 16 else
           "its samples are of undefined format (SampleFormat 4)" if header.sample_format == 4 else
           "it is floating-point WhiteIsZero, whose white is not said by its values; save it BlackIsZero"
           if header.sample_format == 3 and header.photometric == 0 else "")
    if why:
        raise InputError(f"{name}: a TIFF no decoder here reads as stored: {why}")


def _tiff_as_displayed(image: np.ndarray, header: Header, data: bytes, name: str) -> np.ndarray:
    """What OpenCV's libtiff path gets wrong about valid kinds of TIFF (measured, OpenCV 5.1): 10-, 12-
    and 14-bit samples come back shifted up to 16 bits (a 12-bit file's 4095 as 65520, so bit_depth=12
    was refused), a 16-bit gray+alpha image comes back at 8 bits, a 16-bit WhiteIsZero image comes back
    uninverted (8-bit ones are inverted), and an 8-bit RGBA image comes back with its colour multiplied
    by its alpha (a transparent band turned black; alpha is not read anywhere else)."""
    if header.bits in (10, 12, 14) and image.dtype == np.uint16:
        image = image >> (16 - header.bits)  # the stored samples: OpenCV shifts every one by this
    if (header.bits or 8) > 8 and image.dtype == np.uint8:
        raise InputError(f"{name}: a TIFF no decoder here reads as stored: its {header.bits}-bit samples are "
                         "read at 8 bits (a 16-bit gray image with alpha); save it without the alpha channel")
    if header.photometric == 0 and image.dtype == np.uint16 and image.ndim == 2:
        top = (1 << min(header.bits or 16, 16)) - 1
        return (top - np.minimum(image, top)).astype(np.uint16)
    if header.extra_samples and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4:
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as picture:
                stored = np.asarray(picture.convert("RGBA") if picture.mode == "RGBa" else picture)
        except Exception as exc:  # noqa: BLE001 - OpenCV read it; say why Pillow could not
            raise InputError(f"{name}: not a readable image (RGBA TIFF: {first_line(exc)})") from None
        # Pillow's samples, unmultiplied, turned by the Orientation tag as OpenCV turns them (libtiff's
        # RGBA reader applies it): the raster as stored once the same turn is undone
        stored = _as_stored(stored, header.orientation)
        if stored.shape == image.shape:
            return np.ascontiguousarray(stored)
        raise InputError(f"{name}: not a readable image (an RGBA TIFF the decoders read as {image.shape[1]}x"
                         f"{image.shape[0]} and {stored.shape[1]}x{stored.shape[0]} pixels)")
    return image


# What turns OpenCV's decode of a TIFF back into the raster as stored. OpenCV's TIFF decoder applies
# the Orientation tag (274), even with IMREAD_IGNORE_ORIENTATION, while JPEG and PNG are read as
# stored. Measured (OpenCV 5.1, gray/RGB, 8/16-bit and float): 2 mirrors left-right, 3 turns 180
# degrees, 4 mirrors top-bottom, 5 transposes, 6 turns 90 degrees clockwise, 7 transposes across the
# anti-diagonal, 8 turns 90 degrees counter-clockwise; each entry here is the inverse of that.
_UNDO_TIFF_ORIENTATION = {
    2: np.fliplr,
    3: lambda image: np.rot90(image, 2),
    4: np.flipud,
    5: lambda image: np.swapaxes(image, 0, 1),
    6: lambda image: np.rot90(image, 1),
    7: lambda image: np.rot90(np.swapaxes(image, 0, 1), 2),
    8: lambda image: np.rot90(image, -1),
}


def _as_stored(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image``, as OpenCV decoded a TIFF with Orientation ``orientation``, with its rows as stored."""
    undo = _UNDO_TIFF_ORIENTATION.get(orientation)
    # contiguous again, as every decoder's answer is: the core reads rows in place
    return image if undo is None else np.ascontiguousarray(undo(image))


def _check_decoded_size(image: np.ndarray, width: int, height: int, name: str) -> None:
    """InputError when the decoded raster is not the size the header declares: the pixel limit was not
    the decoder's, and a TIFF's orientation read from the header would not be the one it applied."""
    if image.shape[:2] != (height, width):
        raise InputError(f"{name}: not a readable image (decoded as {image.shape[1]}x{image.shape[0]} pixels, "
                         f"but its header declares {width}x{height})")


# Pillow's verdicts on a TIFF's strips that mean damage; others (a layout it does not read) do not
_TIFF_DAMAGE = ("decoder error", "image file is truncated", "broken data stream")


def _check_tiff_data(data: bytes, name: str) -> None:
    """InputError when Pillow's decoder finds the image data damaged. OpenCV's libtiff prints its
    error (e.g. 'Using code not yet in table' for damaged LZW data) and returns the image with the
    rest of the strip gray; Pillow raises. TIFFs are rare among radiographs, so the second decode
    costs little overall."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
    except OSError as exc:
        reason = first_line(exc)
        if reason.startswith(_TIFF_DAMAGE):
            raise InputError(f"{name}: not a readable image (damaged TIFF: {reason})") from None
    except Exception:  # noqa: BLE001 - a layout Pillow cannot read says nothing about damage
        return


def _decode_opencv(data: np.ndarray, name: str) -> np.ndarray:
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # a decoder's own limits and failures
        if exc.code == cv2.Error.StsNoMem:  # the machine's limit, not the file's: a bigger one reads it
            raise OutOfMemoryError(f"{name}: out of memory decoding the image ({first_line(exc)})") from None
        raise InputError(f"{name}: not a readable image ({first_line(exc)})") from None
    if image is None:
        raise InputError(f"{name}: not a readable image (corrupt, truncated or unsupported format)")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        # cv2 decodes colour as BGR(A); the rest of the package expects RGB(A)
        if image.dtype in (np.uint8, np.uint16, np.float32):
            code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
            image = on_lasting_thread(cv2.cvtColor, image, code)
        else:  # samples cvtColor does not take (float64, int16, uint32 TIFFs raised a raw cv2.error)
            image = np.ascontiguousarray(image[..., [2, 1, 0, 3][:image.shape[2]]])
    return image


def to_gray(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Validate an array and return the 2-D gray array the core takes: uint8, uint16 or float32 in [0, 1].

    Accepts [H, W], [H, W, 1], RGB [H, W, 3] or RGBA [H, W, 4] (channel order RGB, as numpy/PIL
    deliver it); uint8, uint16 or float in [0, 1]. Gray arrays of those types are not copied."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if not image.dtype.isnative:  # e.g. big-endian 16-bit pixels read straight from a file
        image = image.astype(image.dtype.newbyteorder("="))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        # before cv2, which refuses an empty image with a cv2.error
        _check_size(image.shape[0], image.shape[1], name)
        image = _rgb_to_gray(image[:, :, :3], name)
    if image.ndim != 2:
        raise InputError(f"{name}: expected a gray [H, W] or RGB(A) [H, W, 3|4] image, got shape {image.shape}")
    _check_size(image.shape[0], image.shape[1], name)
    if image.dtype in (np.uint8, np.uint16):
        # a view at an odd byte offset (a header skipped in a raw buffer) is copied: the core reads
        # pixels in place, which needs them aligned to their size
        return image if image.flags.aligned else image.copy()
    if image.dtype in (np.float32, np.float64):
        _check_unit_range(image, name)
        image = image.astype(np.float32, copy=False)
        return image if image.flags.aligned else image.copy()
    raise InputError(f"{name}: unsupported pixel type {image.dtype}; use uint8, uint16, or float32 or float64 in [0, 1]")


def full_scale(gray: np.ndarray, bit_depth: int | None = None) -> float:
    """What the core divides ``gray`` (``to_gray``'s answer) by: 2^b - 1 at the bit depth it reads it at
    (a uint16 image without ``bit_depth``: inferred from its largest value; content <= 255: 255), 1 for
    float. For tools that must scale pixels as the runtime does (training renders, calibration)."""
    depth = core.bit_depth(gray, bit_depth)
    return 1.0 if depth == 32 else float(2**depth - 1)


def _check_size(h: int, w: int, name: str) -> None:
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"{name}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")


def _rgb_to_gray(rgb: np.ndarray, name: str) -> np.ndarray:
    if rgb.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise InputError(f"{name}: unsupported pixel type {rgb.dtype} for a colour image")
    if rgb.dtype in (np.float32, np.float64):
        # before mixing (a weighted sum can bring channels outside [0, 1] inside) and before the
        # cast to float32 (which would turn 1e300 into inf with a warning)
        _check_unit_range(rgb, name)
        rgb = rgb.astype(np.float32, copy=False)
    return on_lasting_thread(cv2.cvtColor, np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _check_unit_range(image: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(image)):
        raise InputError(f"{name}: image contains NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        # exact values: an overshoot of one ulp (a min-max normalisation's) would print as 1
        raise InputError(f"{name}: float images must lie in [0, 1]; got values in [{lo!r}, {hi!r}] "
                         "(image / 255 for 8-bit levels, image / 65535 for 16-bit ones; np.clip(image, 0, 1) "
                         "if it is rounding)")
