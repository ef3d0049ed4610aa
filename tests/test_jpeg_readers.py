"""The native core's JPEG frame readers, field by field: every check of the lossless decoder
(``_core.decode_lossless_jpeg``) and of the DCT check (``_core.check_dct_jpeg``) refuses the one malformed
field it is there for, naming it, and legal forms a strict reader might trip on pass. Several of these
fields, unchecked, index past a table or divide by zero (found by a mutation audit)."""
import io
import re
import struct

import numpy as np
import pytest
import simplejpeg

import chexmask_rt
from chexmask_rt import _core

from jpeg_frames import dct_block, dct_frame, encode, segments, with_restarts

LIMIT = 1 << 26
SAMPLES = np.random.default_rng(3).integers(0, 4096, (24, 20)).astype(np.uint16)


def decode(data: bytes):
    return _core.decode_lossless_jpeg(data, LIMIT)


def refused(read, data: bytes, why: str) -> None:
    with pytest.raises(chexmask_rt.InputError, match=re.escape(why)):
        read(data)


def patched(frame: bytes, marker: int, offset: int, value: int) -> bytes:
    """``frame`` with the byte ``offset`` bytes into its ``marker`` segment set to ``value``."""
    data = bytearray(frame)
    data[segments(frame)[0][marker][0] + offset] = value
    return bytes(data)


def with_table(frame: bytes, table: bytes) -> bytes:
    """``frame`` with one more Huffman table segment (``table``: its body) before its own."""
    at = frame.index(b"\xff\xc4")
    return frame[:at] + b"\xff\xc4" + struct.pack(">H", 2 + len(table)) + table + frame[at:]


SOF3, SOS, DHT = 0xC3, 0xDA, 0xC4


@pytest.mark.parametrize("data, why", [
    pytest.param(lambda: patched(encode(SAMPLES, 12), SOS, 7, 8), "predictor 8 (1 to 7)", id="predictor 8"),
    pytest.param(lambda: patched(encode(SAMPLES, 12), SOS, 9, 12), "values only lossy", id="point transform = precision"),
    pytest.param(lambda: patched(encode(SAMPLES, 12), SOS, 8, 1), "values only lossy", id="Se 1"),
    pytest.param(lambda: patched(encode(SAMPLES, 12), SOS, 9, 0x10), "values only lossy", id="Ah 1"),
    pytest.param(lambda: patched(encode(SAMPLES >> 11, 2), SOF3, 4, 1), "sample precision 1 (2 to 16)", id="precision 1"),
    pytest.param(lambda: patched(encode(SAMPLES, 12), DHT, 4, 0x04), "class 0 and id 4", id="table id 4"),
    pytest.param(lambda: patched(encode(SAMPLES, 12), SOS, 6, 0x40), "naming Huffman tables 4 and 0", id="scan table 4"),
    pytest.param(lambda: with_table(encode(SAMPLES, 12), b"\x00" + bytes([3] + [0] * 15) + bytes([0, 1, 2])),
                 "more codes than its lengths allow", id="three 1-bit codes"),
    pytest.param(lambda: with_table(encode(SAMPLES, 12), b"\x00" + bytes([0] * 14 + [45, 255]) + bytes(300)),
                 "a Huffman table of 300 codes (at most 256)", id="300 codes"),
])
def test_each_malformed_lossless_field_is_refused(data, why):
    refused(decode, data(), why)


def test_samples_past_the_scans_precision_under_a_point_transform_are_refused():
    """With Al 2, a 12-bit frame's scan carries 10-bit samples: 3000 then decodes to 1464, past 1023."""
    refused(decode, patched(encode(np.full((8, 8), 3000), 12), SOS, 9, 2),
            "a sample of 1464 at (0, 0), past its 10-bit precision")


def test_a_restart_interval_of_part_of_a_row_is_refused():
    """Unchecked, rows per interval came out 0 and the decoder divided by it."""
    frame = bytearray(with_restarts(SAMPLES, 12, 4))
    at = frame.index(b"\xff\xdd")
    frame[at + 4:at + 6] = struct.pack(">H", 10)
    refused(decode, bytes(frame), "a restart interval of 10 samples, not whole rows of 20")


def test_a_second_frame_header_a_second_scan_or_no_scan_is_refused():
    frame = encode(SAMPLES, 12)
    at, length = segments(frame)[0][SOF3]
    refused(decode, frame[:at] + frame[at:at + 2 + length] + frame[at:], "two frame headers")
    refused(decode, frame[:-2] + frame[frame.index(b"\xff\xda"):], "a second scan")
    refused(decode, frame[:frame.index(b"\xff\xda")] + b"\xff\xd9", "no scan before")


def test_one_byte_past_the_last_sample_is_refused_where_the_data_ends_on_a_byte():
    frame = with_restarts(np.full((8, 8), 128), 8, 8)  # 64 five-bit codes: 40 bytes, no padding bits
    refused(decode, frame[:-2] + b"\x5a" + frame[-2:], "continues past where it should end")


@pytest.mark.parametrize("width", range(17, 24))
def test_bytes_after_the_last_sample_are_refused_whatever_the_bits_left(width):
    samples = np.random.default_rng(width).integers(0, 256, (16, width)).astype(np.uint16)
    frame = encode(samples, 8)
    for extra in range(1, 12):
        refused(decode, frame[:-2] + b"\x5a" * extra + frame[-2:], "continues past where it should end")


def test_fill_bytes_before_a_restart_marker_are_read():
    """0xFF fill bytes may precede any marker (T.81 B.1.1.2); libjpeg-turbo reads them."""
    import imagecodecs

    filled = with_restarts(SAMPLES, 12, 4).replace(b"\xff\xd0", b"\xff\xff\xd0").replace(b"\xff\xd3", b"\xff\xff\xff\xd3")
    np.testing.assert_array_equal(imagecodecs.jpeg8_decode(filled), SAMPLES)
    np.testing.assert_array_equal(decode(filled)[0], SAMPLES)


def test_interleaved_colour_of_a_size_not_a_multiple_of_its_mcu_passes_the_check():
    from PIL import Image

    colour = np.random.default_rng(4).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(colour).save(buf, "JPEG", quality=80, subsampling=2)  # 4:2:0: 16x16 MCUs, 4 x 2.5 of them
    assert _core.check_dct_jpeg(buf.getvalue()) == 8


SUBSAMPLED = [(2, 2), (1, 1), (1, 1)]
SEPARATE = [([0], 5 * 5), ([1], 3 * 3), ([2], 3 * 3)]  # 4:2:0 of 40x33, one scan each: 5x5 and 3x3 blocks


def test_scans_of_one_subsampled_component_hold_that_components_blocks():
    sound = dct_frame(40, 33, SUBSAMPLED, SEPARATE)
    assert simplejpeg.decode_jpeg(sound, colorspace="RGB", strict=True).shape == (33, 40, 3)  # libjpeg-turbo: sound
    assert _core.check_dct_jpeg(sound) == 8
    for scans in ([([0], 24)] + SEPARATE[1:], SEPARATE[:2] + [([2], 8)], SEPARATE[:2] + [([2], 10)]):
        refused(_core.check_dct_jpeg, dct_frame(40, 33, SUBSAMPLED, scans), "damaged JPEG")


def test_a_component_without_a_scan_or_with_two_is_refused():
    refused(_core.check_dct_jpeg, dct_frame(40, 33, SUBSAMPLED, SEPARATE[:2]), "component 3 has no scan")
    refused(_core.check_dct_jpeg, dct_frame(40, 33, SUBSAMPLED, SEPARATE + [SEPARATE[2]]),
            "a second scan of one component")


@pytest.mark.parametrize("block, why", [
    (dct_block(0, (0xF0, 0xF0, 0xF0, 0xF1), end=False), "a coefficient past the block's 64"),
    (dct_block(0, (0x0B,)), "an AC coefficient of size 11 (at most 10)"),
    (dct_block(12), "a DC difference of category 12 (at most 11)"),
], ids=["coefficient 64", "AC size 11", "DC category 12"])
def test_coefficients_no_8_bit_encoder_writes_are_refused(block, why):
    refused(_core.check_dct_jpeg, dct_frame(8, 8, [(1, 1)], [([0], 1)], block), why)
