"""Bad files and bad models: a typed error naming the file and the problem, never a crash."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import chexmask_rt
from chexmask_rt.errors import ChexmaskError, InputError, ModelError


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("name,data,match", [
    ("empty.png", b"", "empty"),
    ("text.png", b"this is not an image\n" * 10, "not a readable image"),
    ("noise.jpg", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "not a readable image"),
    # BigTIFF's 8-byte counts and offsets went to read() and seek() unchecked: MemoryError, OverflowError,
    # ValueError, with no file name, and the command line stopped at them
    ("count.tif", b"II+\x00\x08\x00\x00\x00" + (16).to_bytes(8, "little") + (1 << 60).to_bytes(8, "little")
     + bytes(24), "TIFF cut short inside an image directory"),
    ("count40.tif", b"II+\x00\x08\x00\x00\x00" + (16).to_bytes(8, "little") + (1 << 40).to_bytes(8, "little")
     + bytes(24), "TIFF cut short inside an image directory"),
    ("offset.tif", b"II+\x00\x08\x00\x00\x00" + (1 << 63).to_bytes(8, "little") + bytes(24),
     "TIFF whose image directory lies past its end"),
    ("far.tif", b"II*\x00" + (1 << 31).to_bytes(4, "little") + bytes(24), "TIFF whose image directory lies past its end"),
])
def test_unreadable_image_files(default_segmenter, tmp_path, name, data, match):
    path = _write(tmp_path, name, data)
    with pytest.raises(InputError, match=match) as err:
        default_segmenter.predict(path)
    assert str(path) in str(err.value)


def test_truncated_image_files(default_segmenter, tmp_path, shared_images):
    for src in shared_images:
        data = src.read_bytes()
        path = _write(tmp_path, "cut" + src.suffix, data[: len(data) * 2 // 3])
        with pytest.raises(InputError, match="cut"):
            default_segmenter.predict(path)


def test_a_jpeg_cut_among_its_tables_is_called_cut_short(default_segmenter, tmp_path, shared_images):
    """Cut after its frame header but before its scan (inside a Huffman table), a JPEG was "a kind of JPEG
    no decoder here reads" (TurboJPEG's "Could not determine subsampling level"): the user converted a
    file that needed fetching again."""
    for src in _jpeg_files(shared_images):
        data = src.read_bytes()
        scan = data.index(b"\xff\xda")
        for cut in (data.index(b"\xff\xc4") + 10, scan + 1):
            path = _write(tmp_path, "cut.jpg", data[:cut])
            with pytest.raises(InputError, match=r"JPEG cut short before its image data\)$"):
                default_segmenter.predict(path)


def _jpeg_files(shared_images):
    jpegs = [p for p in shared_images if p.suffix.lower() in (".jpg", ".jpeg")]
    assert jpegs, "no JPEG among the shared images"
    return jpegs


def test_damaged_jpeg_data_is_refused_not_half_gray(default_segmenter, tmp_path, shared_images):
    """Random bytes in the middle of the image data: OpenCV's libjpeg only prints 'Corrupt JPEG data'
    and fills the rest gray; the reader must refuse the file."""
    import cv2

    rng = np.random.default_rng(3)
    for src in _jpeg_files(shared_images):
        data = bytearray(src.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
        path = _write(tmp_path, "damaged_" + src.name, bytes(data))
        assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_UNCHANGED) is not None  # what it used to get
        with pytest.raises(InputError, match=r"damaged JPEG: ") as err:
            default_segmenter.predict(path)
        assert str(path) in str(err.value)


def test_jpeg_pixels_are_opencvs(shared_images):
    """The strict decoder gives the pixels OpenCV gives (both are libjpeg-turbo), gray and colour."""
    import cv2

    from chexmask_rt.image_io import read_image

    for src in _jpeg_files(shared_images):
        want = cv2.imdecode(np.fromfile(src, np.uint8), cv2.IMREAD_UNCHANGED)
        if want.ndim == 3:
            want = cv2.cvtColor(want, cv2.COLOR_BGR2RGB)
        got = read_image(src)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), src.name


def test_a_jpeg_warning_that_is_not_damage_falls_back_to_opencv(tmp_path, shared_images):
    """An unknown JFIF revision is a libjpeg warning, not damage: the file is still read (by OpenCV)."""
    from chexmask_rt.image_io import read_image

    src = _jpeg_files(shared_images)[0]
    data = src.read_bytes()
    assert data[:2] == b"\xff\xd8"
    jfif_9 = b"\xff\xe0\x00\x10JFIF\x00\x09\x01\x00\x00\x01\x00\x01\x00\x00"  # an APP0 of JFIF version 9.01
    path = _write(tmp_path, "jfif9.jpg", data[:2] + jfif_9 + data[2:])
    assert np.array_equal(read_image(path), read_image(src))


def test_missing_file_and_directory(default_segmenter, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        default_segmenter.predict(tmp_path / "missing.png")
    with pytest.raises(InputError, match="not a regular file"):
        default_segmenter.predict(tmp_path)


def test_tiny_images_are_refused(default_segmenter, tmp_path):
    import cv2
    path = tmp_path / "one_pixel.png"
    cv2.imwrite(str(path), np.zeros((1, 1), np.uint8))
    with pytest.raises(InputError, match="one_pixel.png: image is 1x1"):
        default_segmenter.predict(path)


@pytest.mark.parametrize("shape", [(0, 0, 3), (1, 0, 4), (3, 0, 4), (10, 40, 3)])
def test_empty_and_tiny_colour_arrays_are_input_errors(default_segmenter, shape):
    """Found by the fuzz: cv2 refused an empty colour array with a cv2.error before the size check."""
    with pytest.raises(InputError, match="at least 32x32"):
        default_segmenter.predict(np.zeros(shape, np.uint16))


def test_rgb_and_rgba_arrays_are_accepted(default_segmenter):
    gray = np.random.default_rng(2).integers(0, 256, (100, 90), dtype=np.uint8)
    base = default_segmenter.predict(gray, samples=2)
    for arr in (np.dstack([gray] * 3), np.dstack([gray] * 3 + [np.full_like(gray, 255)])):
        np.testing.assert_allclose(default_segmenter.predict(arr, samples=2).landmarks, base.landmarks)


def test_nan_image(default_segmenter):
    with pytest.raises(InputError, match="NaN"):
        default_segmenter.predict(np.full((64, 64), np.nan))


def test_errors_share_a_base_class():
    assert issubclass(InputError, ChexmaskError) and issubclass(ModelError, ChexmaskError)


def _tiny_onnx(path, metadata=None):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["image"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("case,match", [
    ("missing", "not found"),
    ("garbage", "not a loadable ONNX model"),
    ("truncated", "not a loadable ONNX model"),
    ("foreign", "not a chexmask-rt engine"),
    ("future", "format version 99"),
    ("wrong_io", "do not match"),
])
def test_bad_model_files(tmp_path, case, match):
    path = tmp_path / f"{case}.onnx"
    if case == "garbage":
        path.write_bytes(b"\x00\x01garbage" * 100)
    elif case == "truncated":
        data = chexmask_rt.default_model_path().read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "foreign":
        _tiny_onnx(path)
    elif case == "future":
        _tiny_onnx(path, {"chexmask_rt.format_version": "99"})
    elif case == "wrong_io":
        _tiny_onnx(path, {"chexmask_rt.format_version": "1", "chexmask_rt.inputsize": "256",
                          "chexmask_rt.latents": "64", "chexmask_rt.skip": "true",
                          "chexmask_rt.checkpoint_sha256": "0" * 64})
    with pytest.raises(ModelError, match=match) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chexmask_rt.load(path)
    assert path.name in str(err.value)


@pytest.mark.parametrize("low,high", [(0.0, 2.0), (-0.5, 1.0)])
def test_rgb_float_channels_outside_0_1_are_refused(default_segmenter, low, high):
    """Issue 20, case 12: the gray mix of such channels can lie inside [0, 1]; the channels cannot."""
    rgb = np.full((64, 64, 3), 0.5, np.float32)
    rgb[..., 0], rgb[..., 2] = high, low  # 0.299 * 2.0 + 0.587 * 0.5 = 0.89: a plausible gray
    with pytest.raises(InputError, match=r"float images must lie in \[0, 1\]"):
        default_segmenter.predict(rgb, samples=2)


def test_a_float_image_one_ulp_above_1_is_told_the_value_it_has(default_segmenter):
    """A min-max normalisation's overshoot of one ulp was reported as "got values in [0, 1]"."""
    image = np.full((64, 64), 0.5)
    image[3, 3] = np.nextafter(1.0, 2.0)
    with pytest.raises(InputError, match=r"got values in \[0\.5, 1\.0000000000000002\] \(.*np\.clip\(image, 0, 1\) if it is rounding"):
        default_segmenter.predict(image, samples=2)


@pytest.mark.parametrize("bit_depth", ["12", 12.7, 12.0, True])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_bit_depth_must_be_an_integer(default_segmenter, bit_depth, dtype):
    image = np.full((64, 64), 100, dtype)
    with pytest.raises(InputError, match="bit_depth must be an integer in 9..16 or None"):
        default_segmenter.predict(image, samples=2, bit_depth=bit_depth)


@pytest.mark.parametrize("dtype,value", [(np.uint16, 1000), (np.float32, 0.4)])
def test_an_unaligned_view_gives_the_answer_of_its_aligned_copy(default_segmenter, dtype, value):
    size = np.dtype(dtype).itemsize
    raw = np.zeros(64 * 80 * size + 1, np.uint8)  # one byte of "header" before the pixels
    view = np.frombuffer(raw[1:].data, dtype).reshape(64, 80)
    view[:] = value
    view[20:40, 10:30] = value / 2
    assert not view.flags.aligned
    got = default_segmenter.predict(view, samples=2)
    np.testing.assert_array_equal(got.landmarks, default_segmenter.predict(view.copy(), samples=2).landmarks)


def test_damaged_tiff_strips_are_refused(default_segmenter, tmp_path, shared_images):
    """OpenCV's libtiff decodes damaged LZW data to a partly gray image without an error."""
    import cv2

    gray = cv2.imread(str(_jpeg_files(shared_images)[0]), cv2.IMREAD_GRAYSCALE)
    ok, encoded = cv2.imencode(".tif", gray)  # LZW, OpenCV's default
    data = bytearray(encoded.tobytes())
    middle = len(data) // 2
    data[middle:middle + 64] = np.random.default_rng(5).integers(0, 256, 64, dtype=np.uint8).tobytes()
    path = _write(tmp_path, "damaged.tif", bytes(data))
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(InputError, match="damaged.tif: not a readable image \\(damaged TIFF: "):
        default_segmenter.predict(path)
    whole = _write(tmp_path, "whole.tif", encoded.tobytes())
    default_segmenter.predict(whole, samples=2)  # the undamaged file reads


def test_animated_pngs_are_refused_as_multi_page_tiffs_are(default_segmenter, tmp_path):
    """An APNG was read as its default image: the first frame, or a picture outside the animation, as
    the decoder chose, where a multi-page TIFF or multi-frame DICOM is refused."""
    from PIL import Image

    frames = [Image.new("L", (64, 64), v) for v in (40, 200)]
    two = tmp_path / "two.png"
    frames[0].save(two, save_all=True, append_images=frames[1:])
    apart = tmp_path / "apart.png"  # the default image is not one of the animation's frames
    frames[0].save(apart, save_all=True, append_images=frames[1:2], default_image=True)
    for path, what in ((two, "2 frames"), (apart, "1 frame and a default image")):
        with pytest.raises(InputError, match=rf"{path.name}: animated PNG \({what}\); only single-image files"):
            default_segmenter.predict(path)
    plain = tmp_path / "plain.png"
    frames[0].save(plain)
    assert default_segmenter.predict(plain, samples=2).width == 64
