"""The overlay picture stays readable on small, short and narrow images."""
import cv2
import numpy as np
import pytest

from chexmask_rt.errors import InputError
from chexmask_rt.image_io import read_image
from chexmask_rt.overlay import MIN_SIDE, draw_overlay

from conftest import IMAGES

EXAMPLE = IMAGES / "wiki_example1_normal_PA.jpg"


def _coloured_pixels(picture: np.ndarray) -> int:
    """Pixels of the contours and ellipses: the image is gray and the legend black and white."""
    p = picture.astype(int)
    return int((np.abs(p[..., 0] - p[..., 1]) + np.abs(p[..., 1] - p[..., 2]) > 60).sum())


def _text_at_the_right_edge(picture: np.ndarray, rows: int) -> bool:
    """Whether any legend text (white, on the band below the image's ``rows``) reaches the last 4 columns."""
    return bool(_white(picture[rows:, -4:]).any())


def _white(picture: np.ndarray) -> np.ndarray:
    return (picture == 255).all(axis=2)


@pytest.fixture(scope="module")
def chest():
    return read_image(EXAMPLE)


def test_a_tiny_image_is_drawn_enlarged_with_its_contours_visible(default_segmenter, chest):
    tiny = cv2.resize(chest, (64, 73), interpolation=cv2.INTER_AREA)
    picture = draw_overlay(tiny, default_segmenter.predict(tiny, samples=4))
    assert max(picture.shape[:2]) >= MIN_SIDE  # at 64 px the legend's boxes covered every contour
    assert _coloured_pixels(picture) > 500


def test_a_short_wide_image_gets_its_legend_below_it(default_segmenter, chest):
    wide = cv2.resize(chest, (2000, 300), interpolation=cv2.INTER_AREA)
    picture = draw_overlay(wide, default_segmenter.predict(wide, samples=4))
    image_rows = round(300 * 1024 / 2000)
    assert picture.shape[1] == 1024 and picture.shape[0] > image_rows
    band = picture[image_rows:]
    assert _white(band).sum() > 500            # the legend and the notice are in the band
    assert not _white(picture[:image_rows, :12]).any()  # and not over the image's left edge, where it starts


def test_every_legend_line_fits_across_a_narrow_image(default_segmenter, chest):
    """The areas line (791 px at the sample's size) ran past a 786-px wide picture."""
    picture = draw_overlay(chest, default_segmenter.predict(chest, samples=10))
    assert picture.shape[1] == chest.shape[1] and picture.shape[0] > chest.shape[0]  # the legend's band
    assert not _text_at_the_right_edge(picture, chest.shape[0])


@pytest.mark.parametrize("width", [256, 300, 333, 401, 512, 700, 786, 1000])
def test_legend_text_fits_at_every_width(default_segmenter, chest, width):
    """A proportional shrink left lines 11-17 px too wide at 198 of the widths from 256 to 1024: glyph
    advances round per glyph, and the stroke adds to each."""
    image = cv2.resize(chest, (width, width * 2), interpolation=cv2.INTER_AREA)
    picture = draw_overlay(image, default_segmenter.predict(image, samples=4))
    rows = round(width * 2 * min(1.0, 1024 / (width * 2)))
    assert not _text_at_the_right_edge(picture, rows)


def test_a_tall_narrow_image_keeps_its_text_inside(default_segmenter, chest):
    tall = cv2.resize(chest, (300, 2000), interpolation=cv2.INTER_AREA)
    picture = draw_overlay(tall, default_segmenter.predict(tall, samples=4))
    assert picture.shape[1] == MIN_SIDE  # 154 px of image, and black beside it for the legend
    assert not _text_at_the_right_edge(picture, 1024)


def test_the_legend_covers_no_anatomy(default_segmenter, chest):
    """The legend's boxes sat over the top left of the image, hiding 4-21 apex landmarks."""
    picture = draw_overlay(chest, default_segmenter.predict(chest, samples=4))
    rows, cols = chest.shape[:2]
    region = picture[: rows // 5, : cols // 2].astype(int)  # the right lung's apex
    source = chest[: rows // 5, : cols // 2].astype(int)
    gray = (region[..., 0] == region[..., 1]) & (region[..., 1] == region[..., 2])  # not a contour or an ellipse
    assert gray.mean() > 0.5 and (region[gray][:, 0] == source[gray]).all()  # the image as it is: no box, no text


def test_a_flagged_result_is_framed_and_says_so(default_segmenter, chest):
    """A flagged result was drawn exactly as a trusted one."""
    upside_down = np.ascontiguousarray(chest[::-1])
    flagged, trusted = (default_segmenter.predict(x, samples=10) for x in (upside_down, chest))
    assert flagged.quality.flag and not trusted.quality.flag
    red = lambda p: (p[..., 2] > 200) & (p[..., 1] < 80) & (p[..., 0] < 80)  # noqa: E731 (BGR)
    a, b = draw_overlay(upside_down, flagged), draw_overlay(chest, trusted)
    assert red(a[:3]).mean() > 0.9 and red(a[: upside_down.shape[0], :3]).mean() > 0.9  # the frame
    first_line = slice(chest.shape[0], chest.shape[0] + 20)  # of the legend, on the band below the image
    assert red(a[first_line]).sum() > 200
    assert red(b[:3]).mean() < 0.1 and red(b[first_line]).sum() == 0


def test_uncertainty_colours_are_one_scale_for_every_picture():
    """Colours were scaled to each image's own 95th percentile: yellow meant 4 px on a trusted image
    and 50 px on a flagged one."""
    from chexmask_rt.overlay import COLOUR_SCALE_PX, _uncertainty_colours

    c = _uncertainty_colours(np.array([0.0, 4.0, 4.0, COLOUR_SCALE_PX, 50.0]))
    assert (c[1] == c[2]).all() and (c[3] == c[4]).all() and not (c[1] == c[3]).all()
    assert c[0].sum() > 60  # the dark end is not black: it stays visible on a dark lung field


def test_a_picture_of_another_size_than_the_result_is_refused(default_segmenter, chest):
    """cv2.imread turns an EXIF-rotated JPEG; the contours would land across the turned chest."""
    r = default_segmenter.predict(chest, samples=2, second_look=False)
    with pytest.raises(InputError, match=r"the picture is \d+x\d+ pixels but the result is of a \d+x\d+ image"):
        draw_overlay(np.ascontiguousarray(np.rot90(chest)), r)


@pytest.mark.parametrize("width, height", [(32, 4096), (65536, 32)])
def test_extreme_shapes_are_drawn_with_a_legend_that_fits(default_segmenter, width, height):
    """32 x 4096 is drawn 8 px wide: the colour key's width went negative (a ValueError traceback);
    65536 x 32 is drawn 0.5 px high: OpenCV refused to resize to it."""
    image = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    picture = draw_overlay(image, default_segmenter.predict(image, samples=2))
    bright = (picture > 150).all(axis=2)
    assert picture.shape[1] >= MIN_SIDE and bright[-100:].sum() > 100  # the legend's text is there
    assert not bright[:, -4:].any()


def _legend_line_heights(picture: np.ndarray, rows: int) -> list[int]:
    """Heights of the legend's lines of text: runs of rows of the band below ``rows`` with white in them."""
    inked = (picture[rows:] > 200).all(axis=2).any(axis=1)
    runs, run = [], 0
    for row in inked:
        if row:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs + ([run] if run else [])


@pytest.mark.parametrize("size", [(64, 64), (600, 3000)])
def test_the_legend_of_a_small_or_narrow_picture_can_be_read(default_segmenter, chest, size):
    """Drawn 256 px wide, every line shrank to fit: 5-6 px high text, which no one could read. Lines now
    wrap at a text height of about 10 px."""
    image = cv2.resize(chest, size, interpolation=cv2.INTER_AREA)
    picture = draw_overlay(image, default_segmenter.predict(image, samples=4))
    rows = round(size[1] * max(1.0, MIN_SIDE / max(size))) if max(size) < MIN_SIDE else round(size[1] * 1024 / max(size))
    heights = _legend_line_heights(picture, rows)
    assert len(heights) >= 9 and np.median(heights) >= 8 and max(heights) >= 10, heights
    assert not _text_at_the_right_edge(picture, rows)


def test_the_organs_are_drawn_in_okabe_and_itos_colours(default_segmenter, chest):
    """The colour-blind-safe triplets were given as RGB to OpenCV, which draws BGR: the organs came out
    sky blue, olive and brown, and the left lung and heart looked alike to a deuteranope."""
    picture = draw_overlay(chest, default_segmenter.predict(chest, samples=4))
    rgb = np.ascontiguousarray(picture[: chest.shape[0], :, ::-1]).reshape(-1, 3)
    for organ, colour in {"right lung, orange": (230, 159, 0), "left lung, bluish green": (0, 158, 115),
                          "heart, blue": (0, 114, 178)}.items():
        assert (rgb == colour).all(axis=1).sum() > 500, organ


def test_one_hot_pixel_does_not_darken_a_deep_picture(default_segmenter, chest):
    """A 12-bit image with one pixel at 65535 was stretched over 0..65535: drawn almost black."""
    twelve = chest.astype(np.uint16) * 16
    hot = twelve.copy()
    hot[5, 5] = 65535
    result = default_segmenter.predict(twelve, samples=2)
    plain, spoiled = (draw_overlay(x, result)[: chest.shape[0]] for x in (twelve, hot))
    gray = (plain == plain[..., :1]).all(axis=2) & (spoiled == spoiled[..., :1]).all(axis=2)  # not drawn over
    assert abs(float(spoiled[gray].mean()) - float(plain[gray].mean())) < 3


def test_one_sample_says_the_node_std_was_not_measured(default_segmenter, chest):
    """With K = 1 the spread is 0: the picture said "within the calibrated thresholds" of both signals."""
    from chexmask_rt.overlay import _reliability_line

    one, many = (default_segmenter.predict(chest, samples=k, second_look=False) for k in (1, 4))
    assert "node std not measured (K=1)" in _reliability_line(one)[0]
    assert _reliability_line(many)[0] == "reliability: within the calibrated thresholds"


def test_a_flagged_picture_says_which_score_crossed_which_threshold(default_segmenter, chest):
    """The red line was cut at the reason's first colon: "uncertainty above the calibrated threshold"."""
    from chexmask_rt.overlay import _reliability_line

    flagged = default_segmenter.predict(255 - chest, samples=4, second_look=False)  # a negative
    assert flagged.quality.flag
    line, colour = _reliability_line(flagged)
    scores = flagged.quality.reason.split(": ", 1)[1]
    assert line == f"FLAGGED, review before use: {scores}" and "> " in scores


def test_colours_and_ellipses_follow_each_landmarks_own_spread(default_segmenter, chest, monkeypatch):
    """On a non-square image the colours are read in the 1024 frame of the longer side, as the flag reads
    them, and each ellipse's axes are its landmark's std in x and in y, in that order."""
    import chexmask_rt.overlay as overlay

    narrow = np.ascontiguousarray(chest[:, : chest.shape[1] // 2])
    r = default_segmenter.predict(narrow, samples=10)
    coloured, ellipses = [], []
    real_colours, real_ellipse = overlay._uncertainty_colours, overlay.cv2.ellipse
    monkeypatch.setattr(overlay, "_uncertainty_colours", lambda v: coloured.append(np.array(v)) or real_colours(v))
    monkeypatch.setattr(overlay.cv2, "ellipse", lambda img, c, axes, angle, start, end, colour, *a:
                        (colour != overlay._HALO and ellipses.append(axes)) or
                        real_ellipse(img, c, axes, angle, start, end, colour, *a))
    draw_overlay(narrow, r)
    np.testing.assert_allclose(coloured[0], r.node_uncertainty * 1024 / max(r.height, r.width))
    scale = 1024 / max(r.height, r.width) if max(r.height, r.width) > 1024 else 1.0
    want = [tuple(int(v) for v in np.round(np.maximum(s * scale, 1.0) * 16)) for s in r.landmarks_std]
    assert ellipses == want and any(a[0] != a[1] for a in want)  # x first: the spread is not round


def test_the_colour_scale_runs_from_dark_to_yellow():
    """Reversed, confident landmarks would be drawn as the most uncertain."""
    from chexmask_rt.overlay import COLOUR_SCALE_PX, _uncertainty_colours

    c = _uncertainty_colours(np.linspace(0, COLOUR_SCALE_PX, 6)).astype(float)
    luminance = c @ [0.114, 0.587, 0.299]  # BGR
    assert (np.diff(luminance) > 0).all() and c[-1][2] > 200 and c[-1][1] > 200 and c[-1][0] < 200


def _font_scales(monkeypatch, picture_of) -> list[float]:
    """The font scales draw_overlay's legend was written at."""
    import chexmask_rt.overlay as overlay

    scales, real = [], overlay.cv2.putText
    monkeypatch.setattr(overlay.cv2, "putText", lambda img, text, org, font, scale, *a: scales.append(scale) or
                        real(img, text, org, font, scale, *a))
    picture_of()
    monkeypatch.undo()
    return scales


def test_a_flagged_legend_is_as_large_as_a_trusted_one(default_segmenter, chest, monkeypatch):
    """The long red verdict set the size of the whole legend: a flagged picture's was a third smaller."""
    upside_down = np.ascontiguousarray(chest[::-1])
    flagged, trusted = (default_segmenter.predict(x, samples=10) for x in (upside_down, chest))
    assert flagged.quality.flag and not trusted.quality.flag
    big = _font_scales(monkeypatch, lambda: draw_overlay(chest, trusted))
    red = _font_scales(monkeypatch, lambda: draw_overlay(upside_down, flagged))
    assert len(set(red)) == len(set(big)) == 1 and red[0] > 0.9 * big[0]  # was 0.71 x


def test_the_diameter_bars_keep_a_dark_edge_on_a_bright_image(default_segmenter, chest):
    """White bars over a bright base (gray 200) were nearly invisible."""
    from chexmask_rt.anatomy import organ_slices

    r = default_segmenter.predict(chest, samples=10)
    picture = draw_overlay(np.full_like(chest, 200), r)
    lungs = r.landmarks[np.r_[organ_slices()["right_lung"], organ_slices()["left_lung"]]]
    a, b = lungs[lungs[:, 0].argmin()], lungs[lungs[:, 0].argmax()]
    y, x = round((a[1] + b[1]) / 2), np.linspace(a[0], b[0], 12)[1:-1].round().astype(int)
    column = picture[y - 6: y + 7, x].max(axis=2)  # across the thoracic bar, at ten points along it
    assert ((column == 255).any(axis=0) & (column < 60).any(axis=0)).sum() >= 8


def test_a_dark_8_bit_image_is_shown_stretched(default_segmenter, chest):
    """An image spanning gray 10-48 was drawn as it is: too dark to check the contours against."""
    dark = (chest.astype(float) * 38 / 255 + 10).astype(np.uint8)
    with pytest.warns(UserWarning, match="nearly black"):
        r = default_segmenter.predict(dark, samples=4)
    shown = draw_overlay(dark, r)[: chest.shape[0]]
    gray = (shown == shown[..., :1]).all(axis=2)
    assert float(shown[gray].mean()) > 100 and float(draw_overlay(chest, r)[: chest.shape[0]][gray].mean()) > 100


@pytest.mark.parametrize("image, level", [(np.full((300, 260), 255, np.uint8), 255),
                                          (np.full((300, 260), 128, np.uint8), 128),
                                          (np.full((300, 260), 40000, np.uint16), 156)])
def test_a_flat_image_is_shown_at_its_own_gray(default_segmenter, image, level):
    """Every flat image was drawn black: in a review queue a white (burnt-out) plate read as an unexposed one."""
    r = default_segmenter.predict(image, samples=2)
    corner = draw_overlay(image, r)[4:20, 4:20]  # no contour reaches the corner
    assert (corner == level).all(), np.unique(corner)


@pytest.mark.parametrize("image, max_side, match", [
    (b"chest.png", 1024, "got bytes .a path as bytes: pass it as text"), (None, 1024, "got NoneType"),
    (np.float64(3.0), 1024, "got float64"), ("chest", 0, "max_side must be a positive integer, not 0"),
    ("chest", -5, "not -5"), ("chest", 1.5, "not 1.5")])
def test_what_is_no_picture_or_no_size_is_an_input_error(default_segmenter, chest, image, max_side, match):
    """bytes, None or a scalar ended in IndexError: tuple index out of range; max_side 0 drew the legend alone."""
    r = default_segmenter.predict(chest, samples=2)
    with pytest.raises(InputError, match=match):
        draw_overlay(chest if isinstance(image, str) else image, r, max_side=max_side)


@pytest.mark.parametrize("name", ["o.pgm", "o.xyz", "o.exr"])
def test_write_overlay_names_the_picture_kinds_it_writes(default_segmenter, chest, tmp_path, capfd, name):
    """.pgm printed OpenCV's "[ERROR:0@...] imencodeWithMetadata ... expects gray image" and raised an
    InputError without a reason; .xyz quoted OpenCV's internals."""
    from chexmask_rt.overlay import write_overlay

    r = default_segmenter.predict(chest, samples=2)
    with pytest.raises(InputError, match=r"an overlay picture is written as \.png, \.jpg, .*, not \." + name[2:]):
        write_overlay(tmp_path / name, chest, r)
    assert capfd.readouterr().err == "" and not (tmp_path / name).exists()


def test_one_decode_draws_no_ellipses_and_says_so(default_segmenter, chest, monkeypatch):
    """At K = 1 each landmark got the '0 px' colour of the key: drawn as certain where nothing was measured."""
    import chexmask_rt.overlay as overlay

    one = default_segmenter.predict(chest, samples=1, second_look=False)
    texts, ellipses = [], []
    real_text, real_ellipse = overlay.cv2.putText, overlay.cv2.ellipse
    monkeypatch.setattr(overlay.cv2, "putText", lambda img, text, *a: texts.append(text) or real_text(img, text, *a))
    monkeypatch.setattr(overlay.cv2, "ellipse", lambda *a: ellipses.append(a) or real_ellipse(*a))
    draw_overlay(chest, one)
    legend = " ".join(texts)
    assert not ellipses and "mean node std not measured (K=1)" in legend and "0.00 px" not in legend
    assert "not measured (K=1)" in repr(one)


def test_a_wrapped_legend_keeps_each_value_with_its_std_and_unit(default_segmenter, chest, monkeypatch):
    """At 64 px a line broke as "H 374" / "+/- 5 px2", and a comparison as "... >" / "0.9588"."""
    import chexmask_rt.overlay as overlay

    tiny = np.ascontiguousarray(cv2.resize(chest, (64, 73), interpolation=cv2.INTER_AREA)[::-1])
    r = default_segmenter.predict(tiny, samples=10)
    texts, real = [], overlay.cv2.putText
    monkeypatch.setattr(overlay.cv2, "putText", lambda img, text, *a: texts.append(text) or real(img, text, *a))
    draw_overlay(tiny, r)
    assert r.quality.flag and len(texts) > 12  # wrapped
    for text in texts:
        assert not text.startswith(("+/-", "px", "cm2", "> ", "<= ")) and not text.endswith(("+/-", ">", "<=")), text


def test_the_colour_key_spans_a_share_of_a_wide_picture(default_segmenter, chest):
    """The key was 400 px on every picture: an eighth of one drawn at 3000 px."""
    wide = cv2.resize(chest, (3000, 3431), interpolation=cv2.INTER_LINEAR)
    picture = draw_overlay(wide, default_segmenter.predict(wide, samples=4), max_side=4096)
    band = picture[wide.shape[0]:].astype(int)
    coloured = (np.abs(band[..., 0] - band[..., 1]) + np.abs(band[..., 1] - band[..., 2]) > 60).any(axis=0)
    assert coloured.sum() > 0.35 * picture.shape[1]


def test_bars_keep_a_dark_edge_on_a_bright_textured_image(default_segmenter, chest):
    """As the bar test, over a bright base that is drawn as it is (a flat one is drawn black since 8-bit
    images spanning under 128 levels are stretched, so it could not see a missing halo)."""
    from chexmask_rt.anatomy import organ_slices

    r = default_segmenter.predict(chest, samples=10)
    base = np.full_like(chest, 230)
    base[:8] = 0  # a dark strip: the base spans 230 levels and is drawn unstretched
    picture = draw_overlay(base, r)
    lungs = r.landmarks[np.r_[organ_slices()["right_lung"], organ_slices()["left_lung"]]]
    a, b = lungs[lungs[:, 0].argmin()], lungs[lungs[:, 0].argmax()]
    y, x = round((a[1] + b[1]) / 2), np.linspace(a[0], b[0], 12)[1:-1].round().astype(int)
    column = picture[y - 6: y + 7, x].max(axis=2)
    assert ((column == 255).any(axis=0) & (column < 60).any(axis=0)).sum() >= 8


def test_bright_ellipses_get_a_halo(default_segmenter, chest, monkeypatch):
    import chexmask_rt.overlay as overlay

    r = default_segmenter.predict(255 - chest, samples=10, second_look=False)
    colours = overlay._uncertainty_colours(r.node_uncertainty * 1024 / max(r.height, r.width))
    bright = int((colours.astype(float) @ [0.114, 0.587, 0.299] >= overlay._HALO_FROM).sum())
    halos, real = [], overlay.cv2.ellipse
    monkeypatch.setattr(overlay.cv2, "ellipse", lambda img, c, axes, angle, start, end, colour, *a:
                        (colour == overlay._HALO and halos.append(c)) or real(img, c, axes, angle, start, end, colour, *a))
    draw_overlay(255 - chest, r)
    assert bright > 0 and len(halos) == bright


def test_one_decode_shows_no_colour_key(default_segmenter, chest, monkeypatch):
    import chexmask_rt.overlay as overlay

    texts, real = [], overlay.cv2.putText
    monkeypatch.setattr(overlay.cv2, "putText", lambda img, text, *a: texts.append(text) or real(img, text, *a))
    draw_overlay(chest, default_segmenter.predict(chest, samples=1, second_look=False))
    assert not any(t.startswith("ellipse:") for t in texts)  # K=1 draws no ellipses: no key for them


def test_a_result_shows_its_overlay_in_a_notebook(default_segmenter, chest, tmp_path):
    """Jupyter showed a Result as its one-line repr only, where the picture says more (IPython calls
    _repr_png_ when a Result ends a cell)."""
    import shutil

    r = default_segmenter.predict(EXAMPLE, samples=5)
    png = r._repr_png_()
    shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(shown, draw_overlay(EXAMPLE, r))
    assert default_segmenter.predict(chest, samples=5)._repr_png_() is None  # pixels alone: no file to draw over
    moved = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, moved)
    gone = default_segmenter.predict(moved, samples=5)
    moved.unlink()
    assert gone._repr_png_() is None and "Result(image=" in repr(gone)  # the text repr still shows


def test_an_overlay_in_another_format_prints_no_encoder_warnings(tmp_path):
    """write_overlay('x.jpg', ...) passed the PNG compression setting to every encoder, and OpenCV printed
    "[ WARN ...] ... unsupported key(16)" on stderr (the CLI silenced it; library users saw it)."""
    import subprocess
    import sys

    code = ("import chexmask_rt, sys\n"
            "from chexmask_rt.overlay import write_overlay\n"
            f"image = {str(IMAGES / 'nih_00000001_000_512.png')!r}\n"
            "r = chexmask_rt.load().predict(image, samples=2)\n"
            "for name in sys.argv[1:]:\n"
            "    write_overlay(name, image, r)\n")
    names = [str(tmp_path / f"o{suffix}") for suffix in (".jpg", ".bmp", ".tif", ".png")]
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert all(cv2.imread(name) is not None for name in names)


def test_an_enlarged_pictures_contours_sit_on_the_pixels_they_name(default_segmenter, monkeypatch):
    """(0, 0) is the top-left pixel's centre: enlarged 6.4x, a landmark on a bright pixel was drawn
    2.7 px up and left of it (landmarks times the scale, where cv2.resize maps pixel centres)."""
    import dataclasses

    import chexmask_rt.overlay as overlay

    tiny = np.zeros((40, 33), np.uint8)
    tiny[20, 10] = 255
    r = default_segmenter.predict(tiny, samples=2)
    landmarks = r.landmarks.copy()
    landmarks[0] = (10, 20)
    drawn = []
    real = overlay.cv2.polylines
    monkeypatch.setattr(overlay.cv2, "polylines", lambda img, polys, *a: drawn.append(polys[0]) or real(img, polys, *a))
    picture = draw_overlay(tiny, dataclasses.replace(r, landmarks=landmarks))
    rows, cols = picture.shape[0], picture.shape[1]
    enlarged = cv2.resize(tiny, (min(cols, round(33 * MIN_SIDE / 40)), MIN_SIDE), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(enlarged)
    weights = enlarged[ys, xs].astype(float)
    pixel = np.array([xs @ weights, ys @ weights]) / weights.sum()  # where the bright pixel is shown
    assert rows > MIN_SIDE
    np.testing.assert_allclose(drawn[0][0] / 16, pixel, atol=0.3)


def test_a_result_made_under_a_raised_pixel_limit_can_be_drawn(default_segmenter, tmp_path, monkeypatch):
    """draw_overlay read the file under the default limit, so a result of a 70-MP image (load(max_pixels=
    80_000_000)) could not be drawn, and was told to pass a max_pixels= draw_overlay does not take."""
    from chexmask_rt.limits import ENV_VAR

    path = tmp_path / "large.png"
    cv2.imwrite(str(path), cv2.resize(read_image(EXAMPLE), (48, 60)))
    monkeypatch.setenv(ENV_VAR, str(40 * 40))  # the default limit, here below the image's 2,880 pixels
    r = default_segmenter.predict(path, samples=2, max_pixels=48 * 60)
    assert draw_overlay(path, r).shape[1] >= MIN_SIDE
    assert r._repr_png_() is not None


def test_what_is_no_result_or_no_drawable_result_is_an_input_error(default_segmenter, chest, tmp_path):
    """draw_overlay(img, None) raised AttributeError, 2 channels cv2.error, a bool array numpy's TypeError, a
    hand-made result with NaN landmarks ValueError (and _repr_png_, which promises None, let it through),
    an infinite std OverflowError; write_overlay('' or bytes) ValueError and TypeError."""
    import dataclasses

    from chexmask_rt.overlay import write_overlay

    r = default_segmenter.predict(chest, samples=2)
    for image, result, needle in ((chest, None, "expected a chexmask_rt Result to draw, got NoneType"),
                                  (chest, r.to_dict(), "got dict"),
                                  (np.dstack([chest, chest]), r, r"cannot draw uint8 pixels of shape \(\d+, \d+, 2\)"),
                                  (chest > 0, r, "cannot draw bool pixels")):
        with pytest.raises(InputError, match=needle):
            draw_overlay(image, result)
    nan = dataclasses.replace(r, landmarks=np.where(np.arange(120)[:, None] == 3, np.nan, r.landmarks))
    infinite = dataclasses.replace(r, landmarks_std=np.full_like(r.landmarks_std, np.inf))
    for bad in (nan, infinite):
        with pytest.raises(InputError, match="landmarks or spreads that are not finite"):
            draw_overlay(chest, bad)
    path = tmp_path / "chest.png"
    cv2.imwrite(str(path), chest)
    assert dataclasses.replace(nan, image=str(path))._repr_png_() is None  # the notebook shows the line alone
    for target, needle in (("", "the picture path is empty"), (bytes(tmp_path / "o.png"), "got bytes"),
                           (None, "got NoneType")):
        with pytest.raises(InputError, match=needle):
            write_overlay(target, chest, r)


def test_the_legend_gives_each_area_and_its_std_in_one_unit(default_segmenter):
    """With a pixel spacing the areas are drawn in cm2: a std left in mm2 would show 100 times too large."""
    from conftest import SHARED
    from chexmask_rt.overlay import _measure_lines

    dicom = sorted((SHARED / "data" / "dicom").glob("*.dcm"))[0]
    m = default_segmenter.predict(dicom, samples=6).measures()
    assert m.spacing is not None
    line = _measure_lines(m)[1].replace("\xa0", " ")
    for organ, name in (("right_lung", "RL"), ("left_lung", "LL"), ("heart", "H")):
        assert f"{name} {m.area_mm2[organ] / 100:.1f} +/- {m.area_std_mm2[organ] / 100:.1f}" in line, line


def test_an_engine_without_calibration_says_so_on_the_picture(exported, chest):
    """The picture reviewers look at must not say "within the calibrated thresholds" of an engine that has
    no thresholds (an export of a published checkpoint)."""
    import chexmask_rt
    from chexmask_rt.overlay import _reliability_line

    r = chexmask_rt.load(next(iter(exported.values()))).predict(chest, samples=4)
    assert r.quality is not None and not r.quality.calibrated
    assert _reliability_line(r)[0] == "reliability: not calibrated for this model"
