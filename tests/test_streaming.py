"""Segmenter.predict_iter: input order, one outcome per input, bounded decoding ahead."""
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import pydicom
import pytest

import chexmask_rt
from chexmask_rt import streaming
from chexmask_rt.errors import ChexmaskError, InputError, ModelError

from conftest import SHARED

GRAY = np.full((64, 64), 100, np.uint8)
DICOMS = sorted((SHARED / "data" / "dicom").glob("*.dcm"))


@pytest.fixture
def segmenter(default_segmenter):
    return default_segmenter


def test_outcomes_come_in_input_order_with_an_error_per_bad_input(tmp_path, segmenter, shared_images):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(shared_images[1].read_bytes()[:3000])
    tiny = np.zeros((8, 8), np.uint8)  # decodes, then fails in preprocessing: the chunk is redone image by image
    good = [str(p) for p in shared_images[:4]]
    inputs = [good[0], str(cut), good[1], str(tmp_path / "missing.png"), tiny, good[2], good[3], 42]
    outcomes = list(segmenter.predict_iter(inputs, samples=3, seed=1, batch_size=4, second_look=False))
    assert [item is given for (item, _), given in zip(outcomes, inputs)] == [True] * len(inputs)
    kinds = [type(o).__name__ for _, o in outcomes]
    assert kinds == ["Result", "InputError", "Result", "InputError", "InputError", "Result", "Result", "InputError"]
    assert "missing.png: no such file" in str(outcomes[3][1]) and "int" in str(outcomes[7][1])
    for item, result in outcomes:
        if isinstance(result, ChexmaskError):
            continue
        alone = segmenter.predict(item, samples=3, seed=1, second_look=False)  # other chunks: third decimal
        assert result.image == item
        np.testing.assert_allclose(result.landmarks, alone.landmarks, atol=1e-3)
        np.testing.assert_allclose(result.landmarks_std, alone.landmarks_std, atol=1e-3)
    # predict_batch still raises for the whole list
    with pytest.raises(InputError, match="cut.jpg"):
        segmenter.predict_batch(inputs[:3], samples=3)


def test_a_clean_stream_equals_predict_batch(default_segmenter, shared_images):
    images = [str(p) for p in shared_images]
    streamed = [r for _, r in default_segmenter.predict_iter(images, samples=4, batch_size=2)]
    batched = default_segmenter.predict_batch(images, samples=4, batch_size=2)
    for s, b in zip(streamed, batched, strict=True):
        np.testing.assert_array_equal(s.landmarks, b.landmarks)
        np.testing.assert_array_equal(s.landmarks_std, b.landmarks_std)
        assert s.second_look == b.second_look and s.image == b.image is not None


@pytest.mark.parametrize("batch_size, ahead", [(2, 0), (3, 4), (4, None)])
def test_decoded_images_in_flight_stay_bounded(default_segmenter, shared_images, monkeypatch, batch_size, ahead):
    lock = threading.Lock()
    live = peak = 0
    pulled = 0

    def released():
        nonlocal live
        with lock:
            live -= 1

    def counting_decode(item, max_pixels, bit_depth=None):
        nonlocal live, peak
        gray, name = decode(item, max_pixels, bit_depth)
        gray = gray.copy()  # an array of our own, freed when the pipeline drops it
        with lock:
            live += 1
            peak = max(peak, live)
        weakref.finalize(gray, released)
        return gray, name

    def source():
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield str(shared_images[i % 2])

    calls = []
    predict_batch = default_segmenter.predict_batch

    def recording_predict_batch(images, **kwargs):
        calls.append(pulled)  # how far the input had been read when the engine started on this chunk
        return predict_batch(images, **kwargs)

    decode = streaming.decode
    monkeypatch.setattr(streaming, "decode", counting_decode)
    monkeypatch.setattr(default_segmenter, "predict_batch", recording_predict_batch)
    bound = batch_size + (2 * batch_size if ahead is None else ahead)
    seen = 0
    for _, result in default_segmenter.predict_iter(source(), samples=2, batch_size=batch_size, ahead=ahead,
                                                    second_look=False, workers=3):
        assert not isinstance(result, Exception)
        seen += 1
        assert pulled - seen <= bound  # the input is read only so far ahead
        with lock:
            assert live <= bound
    assert seen == 30 and live == 0 and peak <= bound
    # the next images were handed to the decoders before the engine ran: decoding overlaps it
    assert calls[0] == bound and len(calls) == -(-30 // batch_size)


def test_arguments_are_checked_before_the_first_image(default_segmenter):
    for kwargs in ({"samples": 0}, {"workers": 0}, {"ahead": -1}, {"batch_size": 0}):
        with pytest.raises(InputError):
            default_segmenter.predict_iter(["never-read.png"], **kwargs)


def test_an_unforeseen_reader_failure_is_that_inputs_input_error(default_segmenter, example1, monkeypatch):
    """The stream's outcomes are Results or ChexmaskErrors: a caller telling them apart by type must
    never take a decoder's own exception for a result."""
    real = streaming.decode

    def surprising(item, max_pixels=None, bit_depth=None):
        if isinstance(item, (str, Path)) and str(item) == "bad.png":
            raise RuntimeError("a decoder's surprise")
        return real(item, max_pixels, bit_depth)

    monkeypatch.setattr(streaming, "decode", surprising)
    (_, bad), (_, good) = default_segmenter.predict_iter(["bad.png", example1], samples=2)
    assert isinstance(bad, InputError) and str(bad) == "bad.png: RuntimeError: a decoder's surprise"
    assert not isinstance(good, BaseException) and good.landmarks.shape == (120, 2)
    [(_, named)] = default_segmenter.predict_iter([Path("bad.png")], samples=2)  # named 'PosixPath' before
    assert str(named) == "bad.png: RuntimeError: a decoder's surprise"


def test_an_engine_failure_stops_the_stream(default_segmenter, shared_images, monkeypatch):
    def broken(*args, **kwargs):
        raise ModelError("engine gone")

    monkeypatch.setattr(default_segmenter, "predict_batch", broken)
    stream = default_segmenter.predict_iter([str(p) for p in shared_images], samples=2)
    with pytest.raises(ModelError, match="engine gone"):
        next(stream)


def test_a_pixel_limit_per_call_reaches_files_and_arrays(default_segmenter, shared_images):
    assert default_segmenter.max_pixels is None  # the limit below is this call's alone
    array = np.full((40, 40), 128, np.uint8)  # 1,600 pixels: over a 1,024-pixel limit too
    outcomes = list(default_segmenter.predict_iter([str(shared_images[0]), array], samples=3, max_pixels=1024))
    assert [type(o).__name__ for _, o in outcomes] == ["InputError", "InputError"]
    assert all("above the pixel limit of 1,024 pixels" in str(o) for _, o in outcomes), [str(o) for _, o in outcomes]
    with pytest.raises(InputError, match="max_pixels"):  # a bad limit fails before the first image
        default_segmenter.predict_iter([array], max_pixels=5)


def test_the_cores_refusal_of_a_file_names_the_file(tmp_path, default_segmenter, example1):
    """predict_iter and batch decode first, then hand arrays to the core: its refusal must still name
    the file (it said 'array'), with the image's real size (it said 65537 for any wider side)."""
    import subprocess
    import sys

    import cv2

    wide, deep = tmp_path / "wide.png", tmp_path / "deep.png"
    cv2.imwrite(str(wide), np.zeros((40, 66000), np.uint8))
    gray = cv2.imread(str(example1), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(deep), gray.astype(np.uint16) * 16)  # 12 significant bits
    (_, a), (_, b), (_, c) = default_segmenter.predict_iter([wide, str(deep), example1], samples=2, bit_depth=9)
    assert str(a) == f"{wide}: image is 66000x40 pixels; at most 65536 on a side is supported"
    assert str(b).startswith(f"{deep}: pixel values need 12 bits, more than bit_depth 9")
    assert "Python: None" in str(b)
    assert not isinstance(c, Exception)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(tmp_path), "--out", str(out), "--samples", "2",
                    "--no-progress"], capture_output=True, check=False)
    assert f"{wide},InputError,{wide}: image is 66000x40 pixels; at most 65536" in (out / "errors.csv").read_text()


def test_predict_iter_by_default_hands_the_core_one_image_at_a_time(default_segmenter, monkeypatch):
    """Predict_iter's default chunk is one image (DEFAULT_BATCH = 1, README): one bad image costs no neighbour a retry."""
    sizes = []
    real = default_segmenter.predict_batch

    def spy(images, **kwargs):
        sizes.append(len(images))
        return real(images, **kwargs)

    monkeypatch.setattr(default_segmenter, "predict_batch", spy)
    outcomes = list(default_segmenter.predict_iter([GRAY, GRAY + 1, GRAY + 2], samples=2))
    assert len(outcomes) == 3 and sizes == [1, 1, 1]


def test_predict_iter_gives_dicom_results_their_source(default_segmenter):
    """Predict_iter's DICOM results lost their source: no UIDs, no pixel spacing, no mm."""
    [(_, result)] = list(default_segmenter.predict_iter([DICOMS[0]], samples=2))
    header = pydicom.dcmread(DICOMS[0], stop_before_pixels=True)
    assert result.source is not None and result.source.sop_instance_uid == header.SOPInstanceUID
    assert result.to_dict()["dicom"]["SOPInstanceUID"] == header.SOPInstanceUID
    assert result == default_segmenter.predict(DICOMS[0], samples=2)


def test_predict_iter_applies_the_segmenters_pixel_limit(default_segmenter, monkeypatch):
    """Predict_iter applied $CHEXMASK_RT_MAX_PIXELS / the default, not the segmenter's load(max_pixels=)."""
    monkeypatch.setattr(default_segmenter, "max_pixels", 2048)
    [(_, outcome)] = list(default_segmenter.predict_iter([GRAY], samples=2))
    assert isinstance(outcome, chexmask_rt.InputError) and "above the pixel limit" in str(outcome)


def test_closing_predict_iter_stops_decoding_and_joins_its_threads(default_segmenter, monkeypatch):
    """Closing predict_iter early left its decode pool running the queued decodes on threads that lingered."""
    import threading
    import time

    from chexmask_rt import streaming

    calls = []
    real = streaming.decode

    def slow(item, limit, bit_depth=None):
        calls.append(1)
        time.sleep(0.3)
        return real(item, limit, bit_depth)

    monkeypatch.setattr(streaming, "decode", slow)
    stream = default_segmenter.predict_iter([GRAY] * 20, samples=2, workers=2, ahead=6)
    next(stream)
    stream.close()
    started = len(calls)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("chexmask-decode")]
    time.sleep(1.0)
    assert not alive and len(calls) == started


def test_images_read_before_the_input_fails_keep_their_outcomes(segmenter, shared_images):
    """A listing or cursor that fails after four paths: with the default read-ahead only two of the four
    outcomes came before its error, so a caller could not tell which images were done."""
    paths = [str(p) for p in shared_images[:4]]

    def listing():
        yield from paths
        raise ConnectionError("listing dropped after 4")

    got = []
    with pytest.raises(ConnectionError, match="listing dropped"):
        for item, outcome in segmenter.predict_iter(listing(), samples=2, batch_size=2):
            got.append((item, outcome))
    assert [item for item, _ in got] == paths and all(isinstance(o, chexmask_rt.Result) for _, o in got)


def test_a_stream_in_a_thread_the_program_waits_for_completes(tmp_path, shared_images):
    """The main thread returns while a (non-daemon) thread streams: Python shuts its thread pools down
    before it waits for that thread, and predict_iter and run_batch stopped with "RuntimeError: cannot
    schedule new futures after shutdown", most images never segmented, the exit code 0."""
    import subprocess
    import sys

    images = [str(p) for p in shared_images] * 3
    script = f"""
import threading, chexmask_rt
from chexmask_rt.batch import run_batch
images = {images!r}
seg = chexmask_rt.load(threads=1)
def stream():
    print("streamed", sum(1 for _ in seg.predict_iter(images, samples=2, workers=2, batch_size=1)), flush=True)
def batch():
    print("batched", run_batch(seg, images, {str(tmp_path / "out")!r}, samples=2, workers=2, batch_size=1,
                               progress=False).done, flush=True)
threading.Thread(target=stream).start()
threading.Thread(target=batch).start()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(proc.stdout.split("\n")[:2]) == [f"batched {len(set(images))}", f"streamed {len(images)}"], proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_stream_paused_across_fork_goes_on_in_the_child(segmenter, shared_images):
    """A child forked while a predict_iter generator was paused, iterating on, waited for ever: its queued
    decodes belonged to pool threads that stayed in the parent."""
    from conftest import wait_child

    images = [str(p) for p in shared_images] * 3
    stream = segmenter.predict_iter(images, samples=2, batch_size=1, ahead=4)
    first = [next(stream) for _ in range(3)]
    pid = os.fork()
    if pid == 0:
        try:
            rest = list(stream)
            os._exit(0 if len(first) + len(rest) == len(images) else 1)
        finally:
            os._exit(2)
    assert len(list(stream)) == len(images) - 3  # and the parent goes on
    assert wait_child(pid, 120) == 0
