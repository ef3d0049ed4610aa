"""A picture of a result: contours and per-landmark uncertainty over the image."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .anatomy import organ_slices
from .errors import InputError, os_reason, path_text
from .lasting_threads import on_lasting_thread
from .native_gate import native_call
from .notice import INTENDED_USE
from .png_mark import is_marked, marked
from .whole_files import write_bytes_whole

if TYPE_CHECKING:  # at run time it reads a result's attributes: no import (result shows itself by this module)
    from .result import Result

# Okabe and Ito's orange, bluish green and blue, told apart with the common colour-vision deficiencies
# and apart from the ellipses' inferno map (OpenCV draws BGR: as RGB they were sky blue, olive and
# brown, and left lung and heart looked alike to a deuteranope where they meet)
_ORGAN_COLOURS = {"right_lung": (0, 159, 230), "left_lung": (115, 158, 0), "heart": (178, 114, 0)}
_ORGAN_NAMES = {"right_lung": "RL", "left_lung": "LL", "heart": "H"}  # as the legend abbreviates them


_DIAMETER_COLOUR = (255, 255, 255)  # the CTR's diameters, apart from the organ colours
_HALO = (0, 0, 0)  # drawn under the white bars and the bright ellipses: on a bright base or diaphragm they vanished
_HALO_FROM = 140  # the luminance (0-255) from which an ellipse's colour gets a halo
_NBSP = "\xa0"  # joins what a wrapped legend line must keep together ("H 374 +/- 5 px2"); drawn as a space
_LOOKS = {"pooled": " x 2 looks", "crop_only": " on a crop"}  # how the second look made it (Result.second_look)


def _display_gray(image: np.ndarray) -> np.ndarray:
    """Any accepted image array -> uint8 BGR for drawing."""
    img = image
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    lo, hi = _display_range(img)
    # a dark or flat 8-bit image (10-48 of 255) was drawn as it is: too dark to check the contours against
    if hi <= lo:  # one value: shown on its type's scale (a white plate was drawn black, like an unexposed one)
        full = 255.0 if img.dtype == np.uint8 else 65535.0 if img.dtype == np.uint16 else 1.0
        img = np.rint(np.clip(img.astype(np.float64) / full, 0, 1) * 255).astype(np.uint8)
    elif img.dtype != np.uint8 or hi - lo < _MIN_DISPLAY_LEVELS:
        img = (np.clip((img.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


_MIN_DISPLAY_LEVELS = 128  # an 8-bit image spanning fewer gray levels is stretched for display


def _display_range(img: np.ndarray) -> tuple[float, float]:
    """The values a picture stretches over: the 0.1st and 99.9th percentiles (one hot
    pixel at 65535 in a 12-bit image drew it black), from at most about a million pixels; the whole
    range when those two meet (a picture mostly of one value)."""
    step = max(1, int(np.sqrt(img.size / 1e6)))
    lo, hi = (float(v) for v in np.percentile(img[::step, ::step], [0.1, 99.9]))
    return (lo, hi) if hi > lo else (float(img.min()), float(img.max()))


def _plus_minus(std: float | None, fmt: str) -> str:
    return "" if std is None else f"{_NBSP}+/-{_NBSP}{std:{fmt}}"


def _measure_lines(m) -> list[str]:
    """The legend's measures: CTR and areas (cm2 with a pixel spacing, else px2) with their std, and their status."""
    names = _ORGAN_NAMES
    leave = "leaves" if len(m.ctr_cut_by) == 1 else "leave"
    why = f"{'/'.join(names[k] for k in m.ctr_cut_by)} {leave} the image" if m.ctr_cut_by else "no thorax width"
    lines = [f"CTR n/a ({why})" if m.ctr is None else f"CTR{_NBSP}{m.ctr:.3f}{_plus_minus(m.ctr_std, '.3f')}"]
    mm = m.spacing is not None
    areas, stds = (m.area_mm2, m.area_std_mm2) if mm else (m.area_px2, m.area_std_px2)
    scale, unit = (0.01, "cm2") if mm else (1.0, "px2")  # cm2: the unit chest areas are read in
    # a picture travels without its JSON: lengths at the detector are magnified (5-15 % for a chest)
    where = " at the detector" if mm and m.spacing.at_detector else ""
    lines.append("area " + ", ".join(
        f"{names[k]}{_NBSP}n/a" if areas[k] is None else f"{names[k]}{_NBSP}{areas[k] * scale:.{1 if mm else 0}f}"
        f"{'' if stds[k] is None else _plus_minus(stds[k] * scale, '.1f' if mm else '.0f')}" for k in names)
        + f"{_NBSP}{unit}{where}")
    lines.append(m.validation)
    return lines


def _draw_diameters(canvas: np.ndarray, pts: np.ndarray, thick: int, measures) -> None:
    """The CTR's two diameters as horizontal bars between their extreme landmarks, each at the mean height
    of its two ends, with a tick down to each end's own height; a diameter the measures withhold (its end
    beyond the image, no thorax width) is not drawn."""
    sl = organ_slices()
    heart, right, left = pts[sl["heart"]], pts[sl["right_lung"]], pts[sl["left_lung"]]
    bars = ((measures.heart_diameter_px, heart[heart[:, 0].argmin()], heart[heart[:, 0].argmax()]),
            (measures.thoracic_diameter_px, right[right[:, 0].argmin()], left[left[:, 0].argmax()]))
    for a, b in ((a, b) for measured, a, b in bars if measured is not None):
        y = (a[1] + b[1]) / 2
        ends = [(int(round(a[0])), int(round(y))), (int(round(b[0])), int(round(y)))]
        segments = [(ends[0], ends[1], thick),
                    *((end, (end[0], int(round(point[1]))), max(1, thick // 2)) for end, point in zip(ends, (a, b)))]
        for colour, extra in ((_HALO, 2), (_DIAMETER_COLOUR, 0)):
            for start, stop, width in segments:
                cv2.line(canvas, start, stop, colour, width + extra, cv2.LINE_AA)


MIN_SIDE = 256  # smaller images are drawn enlarged: at their own size the legend would cover them
COLOUR_SCALE_PX = 25.0  # node std (1024 frame) drawn yellow: one scale for every picture, near the shipped
                        # model's calibrated threshold (24.4 px), so that colours compare across images
_COLOUR_FROM = 0.3  # the colour map's dark end is skipped: a black ellipse would vanish on a lung field
_FLAG_COLOUR = (40, 40, 230)  # BGR red: a flagged result's frame and first legend line


def _uncertainty_colours(values: np.ndarray) -> np.ndarray:
    """BGR colours [n, 3] of node stds in the 1024 frame on the fixed scale 0..COLOUR_SCALE_PX."""
    level = _COLOUR_FROM + (1 - _COLOUR_FROM) * np.clip(values / COLOUR_SCALE_PX, 0, 1)
    return cv2.applyColorMap(np.round(level * 255).astype(np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0]


def _reliability_line(result: Result) -> tuple[str, tuple[int, int, int]] | None:
    """The legend's first line: the reliability flag's verdict, red when flagged."""
    quality = result.quality
    if quality is None:
        return None
    if not quality.calibrated:
        return "reliability: not calibrated for this model", (255, 255, 255)
    if quality.flag:  # which score crossed which threshold: the reason's words after its heading
        return f"FLAGGED, review before use: {quality.reason.split(': ', 1)[-1]}", _FLAG_COLOUR
    if not result.spread_measured:
        return "reliability: latent sigma within its threshold; node std not measured (K=1)", (255, 255, 255)
    return "reliability: within the calibrated thresholds", (255, 255, 255)


def draw_overlay(image: np.ndarray | str | os.PathLike[str], result: Result, *, max_side: int = 1024) -> np.ndarray:
    """Return a BGR uint8 picture: the three contours, and for each landmark an ellipse of one std
    (x and y axes) coloured by its node std on one fixed scale, with a legend on a black band below
    the image, where it hides no anatomy: the reliability verdict (a flagged result is framed red),
    the image scores, which colour is which organ, the ellipses' colour key, the measures and the
    intended use.

    The image is scaled to ``max_side`` on its longer side (up to ``MIN_SIDE`` for a smaller one);
    a picture narrower than ``MIN_SIDE`` gets black on its right, for the legend.
    ``image`` must be the image the result was made from: its file's path, or its pixels as read
    (``chexmask_rt.image_io.read_image``); another size is an InputError, since the contours would
    be drawn in the wrong place (e.g. over ``cv2.imread``'s turn of an EXIF-rotated JPEG)."""
    # None or a result's dict: AttributeError on its height (by its fields: result.py imports this module)
    if not all(hasattr(result, f) for f in ("height", "width", "landmarks", "landmarks_std", "node_uncertainty")):
        raise InputError(f"expected a chexmask_rt Result to draw, got {type(result).__name__}")
    from .inputs import _is_int

    if not _is_int(max_side) or max_side < 1:
        raise InputError(f"max_side must be a positive integer, not {max_side!r}")  # 0 drew the legend alone
    if isinstance(image, (str, os.PathLike)):
        from .image_io import read_image
        from .limits import resolve_max_pixels

        # the result proves its image was let in, under a raised limit too: its size may be read again
        image = read_image(image, max_pixels=max(resolve_max_pixels(None), result.height * result.width))
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):  # bytes and None ended in an IndexError
        raise InputError(f"expected the image's path or its pixels as a 2-D or 3-D numpy array, got "
                         f"{type(image).__name__}" + ("" if not isinstance(image, bytes) else
                                                      " (a path as bytes: pass it as text, os.fsdecode(path))"))
    _check_drawable(image, result)
    if tuple(np.shape(image)[:2]) != (result.height, result.width):
        raise InputError(f"the picture is {np.shape(image)[1]}x{np.shape(image)[0]} pixels but the result is of a "
                         f"{result.width}x{result.height} image: draw over the image the result was made from")
    return on_lasting_thread(_drawing, image, result, max_side)  # OpenCV draws it: see lasting_threads


def _check_drawable(image: np.ndarray, result: Result) -> None:
    """InputError for pixels or a result's values the picture cannot be drawn from: OpenCV and numpy raised
    their own errors (cv2.error for 2 channels, ValueError for a hand-made result's NaN, OverflowError for
    an infinite std), and a notebook showed a traceback."""
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64) or (
            image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(f"cannot draw {image.dtype} pixels of shape {image.shape}: expected gray or RGB(A) "
                         "uint8, uint16 or float")
    far = 1000.0 * max(result.height, result.width)  # what the core refuses in its own answers
    arrays = (result.landmarks, result.landmarks_std, result.node_uncertainty)
    if not all(np.isfinite(a).all() for a in arrays) or (result.landmarks_std < 0).any() \
            or (np.abs(result.landmarks) > far).any():
        raise InputError("the result has landmarks or spreads that are not finite, negative or far outside the "
                         "image: nothing to draw")


def _drawing(image: np.ndarray, result: Result, max_side: int) -> np.ndarray:
    canvas = _display_gray(image)
    longer = max(canvas.shape[:2])
    scale = max_side / longer if longer > max_side else max(1.0, MIN_SIDE / longer)
    if scale != 1.0:  # at least a pixel on each side: 65536 x 32 drawn at 1024 px is 1024 x 0.5
        dsize = (max(1, round(canvas.shape[1] * scale)), max(1, round(canvas.shape[0] * scale)))
        canvas = cv2.resize(canvas, dsize, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    thick = max(1, round(max(canvas.shape[:2]) / 512))
    # (0, 0) is the top-left pixel's centre, in the image and in the picture (cv2.resize maps centres)
    pts = (result.landmarks + 0.5) * scale - 0.5
    std = result.landmarks_std * scale
    to_frame = 1024.0 / max(result.height, result.width)  # the frame the scale and the thresholds use
    measured = result.spread_measured  # one decode's std is 0: no ellipse or key says "certain" for it
    colours = _uncertainty_colours(result.node_uncertainty * to_frame)
    shift = 4  # sub-pixel drawing
    f = float(1 << shift)
    for name, sl in organ_slices().items():
        poly = np.round(pts[sl] * f).astype(np.int32)
        cv2.polylines(canvas, [poly], True, _ORGAN_COLOURS[name], thick, cv2.LINE_AA, shift)
    centres = [tuple(int(v) for v in np.round(p * f)) for p in pts]
    axes = [tuple(int(v) for v in np.round(np.maximum(s, 1.0) * f)) for s in std]
    bright = colours.astype(float) @ [0.114, 0.587, 0.299] >= _HALO_FROM  # BGR
    ring = max(1, thick // 2)
    for i in np.flatnonzero(bright).tolist() if measured else ():  # every halo first: none covers another's colour
        cv2.ellipse(canvas, centres[i], axes[i], 0, 0, 360, _HALO, ring + 2, cv2.LINE_AA, shift)
    for i in range(len(pts)) if measured else ():
        cv2.ellipse(canvas, centres[i], axes[i], 0, 0, 360, tuple(int(c) for c in colours[i]), ring, cv2.LINE_AA, shift)
    measures = result.measures()
    _draw_diameters(canvas, pts, thick, measures)
    verdict = _reliability_line(result)
    if verdict is not None and verdict[1] == _FLAG_COLOUR:
        cv2.rectangle(canvas, (0, 0), (canvas.shape[1] - 1, canvas.shape[0] - 1), _FLAG_COLOUR, 2 * thick + 2)
    white = (255, 255, 255)
    key = [(f"ellipse: 1 std; colour: node std 0 to {COLOUR_SCALE_PX:.0f}+{_NBSP}px (1024 frame)", white)]
    spread = (f"mean node std {result.mean_node_std:.2f} px ({result.mean_node_std * to_frame:.2f} in the 1024 "
              f"frame)" if measured else "mean node std not measured (K=1)")
    lines = [*([[(_kept_together(verdict[0]), verdict[1])]] if verdict else []),
             [(f"{spread}, mean latent sigma {result.mean_latent_sigma:.3f}", white)],
             [(f"K={result.samples}{_LOOKS.get(result.look_kind, '')}  {result.model}", white)],
             [("contours:", white), *((f" {_ORGAN_NAMES[k]}", c) for k, c in _ORGAN_COLOURS.items())],
             *([key] if measured else []), *([(t, white)] for t in _measure_lines(measures)),
             [(INTENDED_USE.upper(), white)]]  # a picture travels without its JSON: it carries its intended use
    if canvas.shape[1] < MIN_SIDE:  # a tall, narrow picture (32 x 4096 is drawn 8 px wide): room for the legend
        canvas = cv2.copyMakeBorder(canvas, 0, 0, 0, MIN_SIDE - canvas.shape[1], cv2.BORDER_CONSTANT, value=(0, 0, 0))
    width = canvas.shape[1] - 16
    # the verdict wraps at any size: a flagged result's long red line shrank its whole legend by a third
    size, text_thick = _fitting_text(lines, width, max(canvas.shape[:2]), thick, wraps=1 if verdict else 0)
    key_at = lines.index(key) if measured else None
    lines, key_at = _wrapped(lines, key_at, width, size, text_thick)
    heights = [_label_height(_joined(parts), size, text_thick) for parts in lines]
    top = canvas.shape[0]
    bar_height = heights[key_at] if key_at is not None else 0
    canvas = cv2.copyMakeBorder(canvas, 0, sum(heights) + bar_height + 8, 0, 0, cv2.BORDER_CONSTANT,
                                value=(0, 0, 0))
    y = top
    for i, parts in enumerate(lines):
        y = _label(canvas, parts, y, size, text_thick)
        if i == key_at:  # the key's colours, left to right over the scale
            bar_width = min(width, max(400, round(0.4 * width)))  # 400 px was an eighth of a 3000-px picture
            bar = _uncertainty_colours(np.linspace(0, COLOUR_SCALE_PX, bar_width))
            canvas[y + 4:y + heights[i] - 2, 8:8 + bar_width] = bar[None]
            y += heights[i]
    return canvas


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # what an overlay may be written as


def write_overlay(path: str | os.PathLike[str], image: np.ndarray | str | os.PathLike[str], result: Result) -> None:
    """The picture of ``result`` over ``image`` (:func:`draw_overlay`) written whole to ``path`` (its
    suffix picks the format, one of :data:`PICTURE_SUFFIXES`, none: PNG; PNG at zlib level 9, half the
    size of OpenCV's default, about 0.1 s); InputError naming ``path`` when it cannot be."""
    out = Path(path_text(path, InputError, "an overlay picture"))  # '' was the current folder; bytes a TypeError
    if out.suffix and out.suffix.lower() not in PICTURE_SUFFIXES:  # OpenCV printed its own errors for .pgm, .xyz
        raise InputError(f"{out}: an overlay picture is written as {', '.join(PICTURE_SUFFIXES)}, not {out.suffix}")
    picture = draw_overlay(image, result)
    try:
        written, encoded = _encoded(picture, out.suffix.lower() or ".png")
        if written:
            write_bytes_whole(out, encoded)
    except (OSError, cv2.error) as exc:
        raise InputError(f"{out}: cannot write the overlay picture ({os_reason(exc)})") from None
    if not written:
        raise InputError(f"{out}: cannot write the overlay picture")


# every overlay PNG carries its mark (png_mark): predict replaces a picture in an --overlay folder only
# where it finds it (an "x.png" beside "x.jpg" was the user's own image)
_WRITER = "overlay"


def is_overlay_picture(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` is a PNG this package drew (its mark after the header)."""
    return is_marked(path, _WRITER)


def _encoded(picture: np.ndarray, suffix: str) -> tuple[bool, bytes]:
    png = suffix.lower() == ".png"
    with native_call():  # OpenCV releases the GIL (native_gate)
        # the PNG setting for a PNG only: other encoders print "unsupported key" warnings on stderr for it
        params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if png else []
        written, encoded = cv2.imencode(suffix, picture, params)
    if not written:
        return False, b""
    data = encoded.tobytes()
    return True, marked(data, _WRITER) if png else data


def overlay_png(image: np.ndarray | str | os.PathLike[str], result: Result) -> bytes:
    """The picture of :func:`draw_overlay` as PNG bytes (what ``Result._repr_png_`` shows in a notebook)."""
    written, encoded = _encoded(draw_overlay(image, result), ".png")
    if not written:
        raise InputError("the overlay picture could not be encoded as PNG")
    return encoded


_MIN_TEXT = 0.45  # OpenCV font scale of the smallest legend text, about 10 px high: below it, lines wrap


def _joined(parts: list[tuple[str, tuple[int, int, int]]]) -> str:
    return "".join(text for text, _ in parts)


def _kept_together(reason: str) -> str:
    """A verdict whose comparisons ("... 1.0183 > 0.9588") wrap as one unit each."""
    return reason.replace(" > ", f"{_NBSP}>{_NBSP}").replace(" <= ", f"{_NBSP}<={_NBSP}")


def _fitting_text(lines: list[list[tuple[str, tuple[int, int, int]]]], width: int, longer: int,
                  thick: int, wraps: int = 0) -> tuple[float, int]:
    """Font size and stroke for legend lines that all fit ``width`` pixels, shrinking down to ``_MIN_TEXT``;
    from there lines wrap at spaces (at 5 px high the legend of a 256-px picture could not be read), and
    only a word too long for the line shrinks the text further. The first ``wraps`` lines wrap at any
    size. Glyph advances round per glyph and the stroke adds to each, so a proportional shrink alone can
    stay a few pixels too wide."""
    # what wrapping cannot break: each word of a one-colour line, and a line of several colours
    def words(parts):
        return parts[0][0].split(" ") if len(parts) == 1 else [_joined(parts)]

    units = [w for parts in lines for w in words(parts)]
    whole = [w for parts in lines[:wraps] for w in words(parts)] + [_joined(parts) for parts in lines[wraps:]]
    size = 0.4 + 0.5 * longer / 1024
    while True:
        text_thick = max(1, min(thick, round(size * 2)))  # thin strokes at small sizes: letters stay apart
        widest = max(_text_width(t, size, text_thick) for t in (whole if size > _MIN_TEXT else units))
        if widest <= width or size < 0.2:
            return size, text_thick
        shrunk = size * min(0.97, width / widest)
        size = max(shrunk, _MIN_TEXT) if size > _MIN_TEXT else shrunk


def _drawn(text: str) -> str:
    """``text`` as drawn: the Hershey font has no non-breaking space, so it is a space on the picture."""
    return text.replace(_NBSP, " ")


def _text_size(text: str, size: float, thick: int) -> tuple[tuple[int, int], int]:
    """OpenCV's ((width, height), baseline) of ``text`` as drawn."""
    (width, height), baseline = cv2.getTextSize(_drawn(text), cv2.FONT_HERSHEY_SIMPLEX, size, thick)
    return (width, height), baseline


def _text_width(text: str, size: float, thick: int) -> int:
    return _text_size(text, size, thick)[0][0]


def _wrapped(lines: list[list[tuple[str, tuple[int, int, int]]]], key_at: int | None, width: int, size: float,
             thick: int) -> tuple[list[list[tuple[str, tuple[int, int, int]]]], int | None]:
    """One-colour lines broken at spaces to fit ``width``; returns them and where line ``key_at`` (None:
    no key) now ends. A line of several colours (the organ key) is short and stays whole."""
    out: list[list[tuple[str, tuple[int, int, int]]]] = []
    key_end = None
    for i, parts in enumerate(lines):
        if len(parts) > 1 or _text_width(parts[0][0], size, thick) <= width:
            out.append(parts)
        else:
            text, colour = parts[0]
            line = ""
            for word in text.split(" "):
                if line and _text_width(f"{line} {word}", size, thick) > width:
                    out.append([(line, colour)])
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            out.append([(line, colour)])
        if i == key_at:
            key_end = len(out) - 1
    return out, key_end


def _label_height(text: str, size: float, thick: int) -> int:
    """How far ``_label`` moves down for one line."""
    (_, h), base = _text_size(text, size, thick)
    return h + base + 4


def _label(canvas: np.ndarray, parts: list[tuple[str, tuple[int, int, int]]], top: int, size: float,
           thick: int) -> int:
    """One legend line on the black band, its top at ``top``, its parts side by side in their colours;
    returns the next line's top."""
    text = _joined(parts)
    _, base = _text_size(text, size, thick)
    y = top + _label_height(text, size, thick)
    x = 8
    for piece, colour in parts:
        cv2.putText(canvas, _drawn(piece), (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, size, colour, thick, cv2.LINE_AA)
        x += _text_width(piece, size, thick)
    return y
