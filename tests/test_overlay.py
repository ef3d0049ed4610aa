"""The overlay picture stays readable on small, short and narrow images."""
import cv2
import numpy as np
import pytest

from chexmask_rt.image_io import read_image
from chexmask_rt.overlay import MIN_SIDE, draw_overlay

from conftest import IMAGES

EXAMPLE = IMAGES / "wiki_example1_normal_PA.jpg"


def _coloured_pixels(picture: np.ndarray) -> int:
    """Pixels of the contours and ellipses: the image is gray and the legend black and white."""
    p = picture.astype(int)
    return int((np.abs(p[..., 0] - p[..., 1]) + np.abs(p[..., 1] - p[..., 2]) > 60).sum())


def _legend_rows_cut_at_the_right(picture: np.ndarray) -> float:
    """Of the rows a legend box starts in (black at columns 4-7), the share whose box runs to the right edge."""
    black = (picture == 0).all(axis=2)
    rows = black[:, 4:8].all(axis=1)
    return float(black[rows, -1].mean()) if rows.any() else 0.0


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
    assert picture.shape == (*chest.shape[:2], 3)  # a normal picture keeps its size: no band
    assert _legend_rows_cut_at_the_right(picture) == 0


def test_a_tall_narrow_image_keeps_its_text_inside(default_segmenter, chest):
    tall = cv2.resize(chest, (300, 2000), interpolation=cv2.INTER_AREA)
    picture = draw_overlay(tall, default_segmenter.predict(tall, samples=4))
    assert picture.shape[1] == round(300 * 1024 / 2000)
    assert _legend_rows_cut_at_the_right(picture) == 0


def test_a_picture_of_another_size_than_the_result_is_refused(default_segmenter, chest):
    """cv2.imread turns an EXIF-rotated JPEG; the contours would land across the turned chest."""
    from chexmask_rt.errors import InputError

    r = default_segmenter.predict(chest, samples=2, second_look=False)
    with pytest.raises(InputError, match=r"the picture is \d+x\d+ pixels but the result is of a \d+x\d+ image"):
        draw_overlay(np.ascontiguousarray(np.rot90(chest)), r)
