"""Arguments of predict, predict_batch and predict_iter are checked before any image is read, with a
typed error that names the argument; never a raw TypeError, never a path taken apart letter by letter."""
import re

import numpy as np
import pytest

from chexmask_rt.errors import InputError

GRAY = np.full((64, 64), 100, np.uint8)


@pytest.mark.parametrize("kwargs,needle", [
    ({"second_look": "no"}, "second_look must be True, False or None, got 'no'"),
    ({"second_look": 1}, "second_look must be True, False or None"),
    ({"bit_depth": "x"}, "bit_depth must be an integer in 9..16 or None, got 'x'"),
    ({"bit_depth": 40}, "bit_depth must be an integer in 9..16 or None, got 40"),
    ({"bit_depth": 8}, "bit_depth must be an integer in 9..16"),
    ({"batch_size": "2"}, "batch_size must be an integer >= 1, got '2'"),
    ({"batch_size": 1.5}, "batch_size must be an integer >= 1, got 1.5"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
])
def test_bad_arguments_are_input_errors_that_name_them(default_segmenter, kwargs, needle):
    with pytest.raises(InputError) as err:
        default_segmenter.predict_batch([GRAY], samples=2, **kwargs)
    assert needle in str(err.value) and len(str(err.value)) < 200  # no pixel array quoted
    with pytest.raises(InputError, match=needle.split(",")[0]):
        default_segmenter.predict_iter(["never-read.png"], samples=2, **kwargs)  # at the call, not per input
    if "batch_size" not in kwargs:
        with pytest.raises(InputError, match=needle.split(",")[0]):
            default_segmenter.predict(GRAY, samples=2, **kwargs)


@pytest.mark.parametrize("kwargs", [{"workers": "2"}, {"workers": 0}, {"ahead": 1.5}, {"ahead": -1}])
def test_stream_settings_are_checked(default_segmenter, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(InputError, match=f"{name} must be an integer"):
        default_segmenter.predict_iter(["never-read.png"], **kwargs)


@pytest.mark.parametrize("single", ["chest.png", b"chest.png", GRAY])
def test_a_single_image_where_a_list_belongs_is_refused(default_segmenter, tmp_path, single):
    from pathlib import Path

    for one in (single, Path("chest.png")) if isinstance(single, str) else (single,):
        with pytest.raises(InputError, match="expected a list of images, got a single"):
            default_segmenter.predict_batch(one, samples=2)
        with pytest.raises(InputError, match="expected a list of images, got a single"):
            default_segmenter.predict_iter(one, samples=2)


def test_a_stack_of_images_is_still_a_list_of_images(default_segmenter):
    stack = np.stack([GRAY, GRAY + 20])
    got = default_segmenter.predict_batch(stack, samples=2)
    assert len(got) == 2 and not np.array_equal(got[0].landmarks, got[1].landmarks)


def test_paths_that_stat_refuses_are_input_errors(default_segmenter, tmp_path):
    too_long = tmp_path / ("x" * 300 + ".png")
    with pytest.raises(InputError, match="cannot read file \\(File name too long\\)"):
        default_segmenter.predict(too_long)


@pytest.mark.parametrize("threads", ["2", 1.5, True])
def test_threads_must_be_an_integer(threads):
    import chexmask_rt
    from chexmask_rt.errors import ModelError

    with pytest.raises(ModelError, match="threads must be an integer or None"):
        chexmask_rt.load(threads=threads)


@pytest.mark.parametrize("value", ["2", 1.5, True])
def test_images_per_call_must_be_an_integer(value):
    import chexmask_rt
    from chexmask_rt.errors import ModelError

    with pytest.raises(ModelError, match=f"images_per_call must be an integer, got {value!r}"):
        chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(images_per_call=value))


def test_paths_that_name_the_wrong_thing_say_what_they_are(tmp_path):
    import os

    import chexmask_rt
    from chexmask_rt.errors import ModelError
    from chexmask_rt.image_io import read_image

    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")  # a loop
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    for name in ("a.png", "broken.png"):
        with pytest.raises(InputError, match=f"{name}: a broken or looping symbolic link"):
            read_image(tmp_path / name)
    with pytest.raises(InputError, match="expected an image path, got bytes"):
        read_image(b"x.png")
    with pytest.raises(ModelError, match=f"{tmp_path}: a folder, not a model file"):
        chexmask_rt.load(tmp_path)


@pytest.mark.parametrize("options, needle", [
    (dict(device=None), "device must be a string, got None"),
    (dict(layout_optimizations="yes"), "layout_optimizations must be True or False, got 'yes'"),
    (dict(memory_pattern=1), "memory_pattern must be True or False, got 1"),
])
def test_engine_options_of_the_wrong_type_are_model_errors(options, needle):
    import chexmask_rt
    from chexmask_rt.errors import ModelError

    with pytest.raises(ModelError, match=re.escape(needle)):
        chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(**options))
    with pytest.raises(ModelError, match="engine_options must be a chexmask_rt.EngineOptions, got dict"):
        chexmask_rt.load(engine_options={"threads": 1})


def test_a_path_names_the_tensorrt_cache_as_a_string_does(tmp_path):
    import chexmask_rt

    assert chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(tensorrt_cache_dir=tmp_path)).info.trained


@pytest.mark.parametrize("channels", [1, 3])
def test_one_image_with_channels_where_a_list_belongs_is_refused(default_segmenter, channels):
    image = np.zeros((64, 64, channels), np.uint8)  # [H, W, 1] was taken as 64 images 1 pixel wide
    with pytest.raises(InputError, match="expected a list of images, got a single ndarray"):
        default_segmenter.predict_batch(image, samples=2)
    with pytest.raises(InputError, match="expected a list of images"):
        list(default_segmenter.predict_iter(image, samples=2))


@pytest.mark.parametrize("images", [None, 5])
def test_what_is_no_list_at_all_is_an_input_error(default_segmenter, images):
    with pytest.raises(InputError, match=f"expected a list of images, got {type(images).__name__}$"):
        default_segmenter.predict_batch(images, samples=2)
    with pytest.raises(InputError, match=f"expected a list of images, got {type(images).__name__}$"):
        default_segmenter.predict_iter(images, samples=2)


class _BytesPath:
    """An os.PathLike whose path is bytes (Path() refuses it with a bare TypeError)."""

    def __fspath__(self):
        return b"chest.png"


def test_empty_and_bytes_image_paths_are_input_errors(default_segmenter):
    with pytest.raises(InputError, match="^the image path is empty$"):  # was ".: not a regular file"
        default_segmenter.predict("")
    with pytest.raises(InputError, match="expected an image path, got bytes"):
        default_segmenter.predict(_BytesPath())
    with pytest.raises(InputError, match=r"^'chest\\x00.png': an image path holding a NUL character"):
        default_segmenter.predict("chest\0.png")  # printed the NUL raw


@pytest.mark.parametrize("model, needle", [
    ("", "the model path is empty"),
    ("/", "/: a folder, not a model file"),  # was a ValueError from the calibration file's name
    (".", r"\.: a folder, not a model file"),
    (123, "expected a model path, got int"),
    (b"model.onnx", "got bytes"),
    (_BytesPath(), "got bytes"),
    ("\udcffmodel.onnx", r"\\udcffmodel.onnx: a model path that is not valid UTF-8"),  # was a UnicodeEncodeError
    # the core's C string ended at the NUL: the shipped engine opened under another name (or a message cut there)
    (str(__import__("chexmask_rt").default_model_path()) + "\0/other.onnx", r"x00/other.onnx': a model path holding a NUL"),
])
def test_model_paths_that_name_no_file_are_model_errors(model, needle):
    import chexmask_rt
    from chexmask_rt.errors import ModelError

    with pytest.raises(ModelError, match=needle):
        chexmask_rt.load(model)


@pytest.mark.parametrize("options", [dict(threads=2**31), dict(images_per_call=2**31), dict(threads=-2**31 - 1)])
def test_integers_past_a_c_int_are_model_errors_that_name_the_field(options):
    import chexmask_rt
    from chexmask_rt.errors import ModelError

    name, value = next(iter(options.items()))
    with pytest.raises(ModelError, match=f"^{name} is out of range, got {value}$"):
        chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(**options))


def test_results_are_equal_only_when_every_array_is(default_segmenter, example1):
    import dataclasses

    a = default_segmenter.predict(example1, samples=3, second_look=False)
    b = default_segmenter.predict(example1, samples=3, second_look=False)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    moved = dataclasses.replace(a, landmarks=a.landmarks + np.eye(1, a.landmarks.size).reshape(a.landmarks.shape))
    assert moved != a and len({a, moved}) == 2
    assert dataclasses.replace(a, latent_sigma=a.latent_sigma * 2) != a


def test_the_largest_seed_is_accepted_by_predict(default_segmenter):
    """Every seed in [0, 2**64) is valid (the CLI says so, the core takes them)."""
    for seed in (2**63, 2**64 - 1):
        assert default_segmenter.predict(GRAY, samples=2, seed=seed).seed == seed


def test_second_look_takes_a_numpy_bool(default_segmenter):
    """Second_look takes NumPy's bool too (a flag read from an array or a config parsed by NumPy)."""
    result = default_segmenter.predict(GRAY, samples=2, second_look=np.bool_(False))
    assert result.second_look is None


def test_the_smallest_pixel_limit_is_accepted():
    """The documented minimum (MIN_PIXELS, 32 x 32) is itself a valid limit."""
    from chexmask_rt.limits import MIN_PIXELS, resolve_max_pixels

    assert resolve_max_pixels(MIN_PIXELS) == MIN_PIXELS == 1024


def test_numpy_integers_are_integers_for_the_engine_options_too():
    """threads=np.int64(2) was "threads must be an integer or None, got np.int64(2)", where samples,
    seed and batch_size took numpy integers."""
    import chexmask_rt

    assert chexmask_rt.load(threads=np.int64(2)).model_id
    assert chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(images_per_call=np.int32(1))).model_id


def test_batch_and_merge_refuse_a_single_path_or_no_path(default_segmenter, tmp_path, example1):
    """run_batch(seg, "a.png", out) took the string apart letter by letter: "14 images", each failed in
    errors.csv ("t: no such file", "/: not a regular file"), exit as a success; merge_folders("out") said
    "/: no results.csv"; None and bytes ended in bare TypeErrors."""
    from chexmask_rt.batch import run_batch
    from chexmask_rt.merge import merge_folders

    out = tmp_path / "out"
    for images, out_dir, needle in ((str(example1), out, "expected a list of images, got a single str"),
                                    (None, out, "expected a list of images, got NoneType"),
                                    ([example1], None, "expected an output folder path, got NoneType"),
                                    ([example1], bytes(out), "expected an output folder path, got bytes")):
        with pytest.raises(InputError, match=re.escape(needle)):
            run_batch(default_segmenter, images, out_dir, samples=2, progress=False)
    assert not out.exists()
    for folders, merged, needle in ((str(tmp_path), out, "merge: expected a list of folders, got str"),
                                    (None, out, "merge: expected a list of folders, got NoneType"),
                                    ([None], out, "expected a batch output folder path, got NoneType"),
                                    ([tmp_path], None, "expected an output folder path, got NoneType")):
        with pytest.raises(InputError, match=re.escape(needle)):
            merge_folders(folders, merged)


def test_shards_of_no_count_or_no_text_are_input_errors():
    """Shard(0, 0) divided by zero, shard_of(..., count=-1) answered 0, Shard.parse(None) a TypeError."""
    from chexmask_rt.shards import Shard, shard_of

    for make in (lambda: Shard(0, 0).holds("a"), lambda: shard_of("a.png", "/", 0), lambda: shard_of("a.png", "/", -1),
                 lambda: Shard(2, 2), lambda: Shard(True, 2)):
        with pytest.raises(InputError, match="need integers 0 <= I < N"):
            make()
    for text in (None, b"0/2"):
        with pytest.raises(InputError, match="--shard: expected text I/N"):
            Shard.parse(text)


def test_the_largest_sample_count_is_taken_and_one_more_is_refused(default_segmenter):
    """The bound is the README's, 10,000: its check said "1..10000" and could refuse 10,000 unnoticed."""
    from chexmask_rt.inputs import MAX_SAMPLES, check_run_arguments

    assert MAX_SAMPLES == 10_000 and check_run_arguments(MAX_SAMPLES, 0, 1) == (MAX_SAMPLES, 0)
    with pytest.raises(InputError, match=r"samples must be an integer in 1\.\.10000, got 10001"):
        default_segmenter.predict(np.full((64, 64), 100, np.uint8), samples=MAX_SAMPLES + 1)
