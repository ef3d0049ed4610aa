"""predict and info under faults (issue 20, cases 5, 10 and 20): one-line errors with the
right exit code, valid JSON always, and what succeeded is written even when some images fail."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import chexmask_rt
from chexmask_rt.errors import ModelError, NonFiniteOutputError
from chexmask_rt.image_io import read_image, to_gray

from conftest import REPO, skip_or_fail_without_native


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def nan_engine(tmp_path_factory):
    """The shipped engine with NaN added to its landmarks_mean output: a faulty engine."""
    model = onnx.load(str(chexmask_rt.default_model_path()))
    for node in model.graph.node:
        node.output[:] = ["landmarks_mean_finite" if o == "landmarks_mean" else o for o in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan_value"))
    model.graph.node.append(helper.make_node("Add", ["landmarks_mean_finite", "nan_value"], ["landmarks_mean"]))
    path = tmp_path_factory.mktemp("nan") / "nan.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("second_look", [False, True])
def test_non_finite_outputs_are_an_error_naming_the_image(nan_engine, example1, second_look):
    """Case 10 (main: exit 0, NaN landmarks, and bare NaN tokens in the JSON)."""
    seg = chexmask_rt.load(nan_engine)
    with pytest.raises(NonFiniteOutputError, match=f"{example1}: the engine nan.onnx returned NaN") as err:
        seg.predict(example1, samples=3, second_look=second_look)
    assert isinstance(err.value, ModelError)


def test_the_core_refuses_non_finite_outputs_for_c_callers(nan_engine, example1, tmp_path):
    """The check lives in the C++ core: the C example (C API) gets a model error naming the image, not NaN
    in its JSON."""
    program = Path(os.environ.get("CHEXMASK_RT_BUILD_DIR", REPO / "build")) / "cpp" / "chexmask-rt-c"
    if not program.is_file():
        skip_or_fail_without_native(f"{program} not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    from chexmask_rt.core import onnxruntime_library

    pgm = tmp_path / "example1.pgm"
    cv2.imwrite(str(pgm), to_gray(read_image(example1)))
    for look in ("--single-look", "--second-look"):
        proc = subprocess.run([str(program), "--model", str(nan_engine), "--samples", "2", "--onnxruntime",
                               onnxruntime_library(), look, str(pgm)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 4 and proc.stdout == "", proc.stdout[:200] + proc.stderr
        # one image: no "image 0 of the batch" the caller never made
        assert proc.stderr == (f"chexmask-rt-c: error: {pgm}: the engine nan.onnx returned NaN "
                               "or infinite values for this image; the engine is faulty\n")


def test_non_finite_outputs_in_the_cli(tmp_path, nan_engine, shared_images):
    proc = cli("predict", shared_images[0], "--model", nan_engine, "--samples", 3, "--json", "-")
    assert proc.returncode == 4 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
    assert "returned NaN or infinite values" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # batch: each image fails on its own, the run goes on and says so
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, shared_images[:3])))
    proc = cli("batch", listing, "--out", tmp_path / "out", "--model", nan_engine, "--samples", 2, "--no-progress")
    assert proc.returncode == 1 and "3 images: 0 done, 0 already in " in proc.stdout, proc.stdout + proc.stderr
    with open(tmp_path / "out" / "errors.csv", newline="") as f:
        errors = list(csv.DictReader(f))
    assert sorted(r["Image"] for r in errors) == sorted(map(str, shared_images[:3]))
    assert {r["Error"] for r in errors} == {"NonFiniteOutputError"}


def test_predict_writes_what_succeeded_and_exits_1(tmp_path, shared_images):
    """Case 20 (main: exit 3 and nothing written for the good images)."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good, good2 = shared_images[0], shared_images[1]
    out = tmp_path / "out.json"
    proc = cli("predict", good, bad, good2, "--samples", 2, "--json", out, "--csv", tmp_path / "out.csv",
               "--masks", tmp_path / "masks")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"chexmask-rt: error: {bad}: not a readable image" in proc.stderr
    assert [d["image"] for d in json.loads(out.read_text())] == [str(good), str(good2)]
    with open(tmp_path / "out.csv", newline="") as f:
        assert [r["Image"] for r in csv.DictReader(f)] == [str(good), str(good2)]
    assert len(list((tmp_path / "masks").iterdir())) == 6
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [str(good), str(good2)]
    # one image alone keeps its own exit code
    proc = cli("predict", bad)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_a_json_list_stays_a_list_when_one_image_of_several_is_left(tmp_path, shared_images):
    bad = tmp_path / "missing.png"
    proc = cli("predict", shared_images[0], bad, "--samples", 2, "--json", "-")
    assert proc.returncode == 1
    assert [d["image"] for d in json.loads(proc.stdout)] == [str(shared_images[0])]


@pytest.mark.parametrize("target", ["newdir/", "newdir"])
def test_overlay_into_a_new_folder_for_one_image(tmp_path, shared_images, target):
    """Case 5 (main: a cv2 traceback for 'newdir/')."""
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(shared_images[0]), "--samples", "2",
                           "--overlay", target], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "newdir").iterdir()] == [f"{shared_images[0].stem}.png"]


def test_an_unwritable_overlay_is_one_line(tmp_path, shared_images):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    proc = cli("predict", shared_images[0], "--samples", 2, "--overlay", blocker / "sub" / "o.png")
    assert proc.returncode == 3 and f"{blocker} exists and is not a folder" in proc.stderr  # before any work
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_model_file_that_is_not_onnx_is_one_line(tmp_path):
    """Case 5 (build-trt gave an onnxruntime traceback; it is gone with the TensorRT backend,
    and every command that opens an engine must answer such a file in one line)."""
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model at all" * 10)
    proc = cli("info", fake)
    assert proc.returncode == 4 and f"{fake}: not a loadable ONNX model" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_cut_tiff_gives_one_line_without_opencvs_log(tmp_path):
    from PIL import Image

    whole = tmp_path / "whole.tif"
    Image.fromarray(np.full((300, 400), 90, np.uint8)).save(whole)  # directory first, then the strip
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    proc = cli("predict", cut, "--samples", 2)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    # Pillow's verdict, which reads a TIFF before OpenCV does
    assert lines[0].startswith(f"chexmask-rt: error: {cut}: not a readable image (damaged TIFF: image file is "
                               "truncated"), proc.stderr


def test_a_non_finite_output_says_which_image_of_the_callers_list(tmp_path, shared_images):
    """index counts from predict_batch's list (the core counts within a chunk), and reason is set."""
    model = onnx.load(str(chexmask_rt.default_model_path()))
    image_input = model.graph.input[0].name
    for node in model.graph.node:
        node.output[:] = ["landmarks_mean_finite" if o == "landmarks_mean" else o for o in node.output]
    model.graph.initializer.extend([numpy_helper.from_array(np.array(np.nan, np.float32), "nan_value"),
                                    numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                                    numpy_helper.from_array(np.array(0.999, np.float32), "white")])
    model.graph.node.extend([  # NaN only for an image that is white everywhere
        helper.make_node("ReduceMin", [image_input], ["darkest"], keepdims=0),
        helper.make_node("Greater", ["darkest", "white"], ["is_white"]),
        helper.make_node("Where", ["is_white", "nan_value", "zero"], ["added"]),
        helper.make_node("Add", ["landmarks_mean_finite", "added"], ["landmarks_mean"])])
    path = tmp_path / "white_nan.onnx"
    onnx.save(model, path)
    seg = chexmask_rt.load(path)
    gray = to_gray(read_image(shared_images[0]))
    white = np.full((64, 64), 255, np.uint8)
    with pytest.raises(NonFiniteOutputError) as err:
        seg.predict_batch([gray, gray, white], samples=2, batch_size=2, second_look=False)
    assert err.value.index == 2 and err.value.reason.startswith("the engine white_nan.onnx returned NaN")
    assert str(err.value).startswith("array: the engine white_nan.onnx returned NaN")
    with pytest.raises(NonFiniteOutputError) as err:
        seg.predict(white, samples=2, second_look=False)
    assert err.value.index == 0
    png = tmp_path / "white.png"
    cv2.imwrite(str(png), white)
    [(_, outcome)] = seg.predict_iter([png], samples=2, second_look=False)
    assert isinstance(outcome, NonFiniteOutputError) and str(outcome).startswith(f"{png}: the engine")
    assert outcome.reason.startswith("the engine white_nan.onnx returned NaN") and outcome.index is None


def test_predict_interrupted_keeps_the_images_it_finished(tmp_path, shared_images):
    """Ctrl-C after 13 of 18 images left nothing: outputs were written only after the last image."""
    import signal
    import time

    small = next(p for p in shared_images if p.name.startswith("nih_"))
    images = []
    for i in range(30):
        images.append(tmp_path / f"im{i:02d}.png")
        images[-1].write_bytes(small.read_bytes())
    pictures = tmp_path / "pictures"
    proc = subprocess.Popen([sys.executable, "-m", "chexmask_rt", "predict", *map(str, images), "--samples", "2",
                             "--overlay", f"{pictures}/", "--json", str(tmp_path / "all.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (pictures.is_dir() and len(list(pictures.glob("*.png"))) >= 2):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    done = json.loads((tmp_path / "all.json").read_text())
    assert 2 <= len(done) < 30 and f"{len(done)} of 30 images were done" in stderr
    assert sorted(p.stem for p in pictures.glob("*.png")) == sorted(Path(r["image"]).stem for r in done)
    assert len(stdout.splitlines()) == len(done)  # each image's summary line as it finished


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_while_an_images_outputs_are_written_keeps_picture_and_json_together(monkeypatch, tmp_path,
                                                                                   shared_images, stop):
    """A Ctrl-C that landed after an image's picture was written, before its answer was recorded,
    left a picture whose image the JSON did not hold (the race the test above hit under load)."""
    import signal

    from chexmask_rt import cli, overlay

    written = []
    real_writer = overlay.write_overlay

    def writer_then_stop(path, image, result):
        real_writer(path, image, result)
        written.append(path)
        if len(written) == 2:
            os.kill(os.getpid(), getattr(signal, stop))  # delivered here, inside the second image's outputs

    monkeypatch.setattr(overlay, "write_overlay", writer_then_stop)
    images = [str(p) for p in shared_images[:3]]
    code = cli.main(["predict", *images, "--samples", "2", "--overlay", f"{tmp_path / 'pictures'}/",
                     "--json", str(tmp_path / "all.json")])
    assert code == (130 if stop == "SIGINT" else 143)
    done = json.loads((tmp_path / "all.json").read_text())
    assert [r["image"] for r in done] == images[:2]
    assert sorted(p.stem for p in (tmp_path / "pictures").glob("*.png")) == sorted(Path(i).stem for i in images[:2])


def test_progress_in_a_log_is_whole_lines(tmp_path, shared_images):
    """A bar's redraws went into logs as one line of carriage returns, with errors glued to its end."""
    (tmp_path / "missing.png").write_bytes(b"not a picture")
    proc = cli("predict", shared_images[0], tmp_path / "missing.png", shared_images[1], "--samples", 2)
    assert proc.returncode == 1 and "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("predict: 0/3 images (0 %)") and lines[-2].startswith("predict: 3/3 images (100 %)")
    assert lines[-1] == "predict: 3 images: 2 done, 1 failed"  # the tally, after the bar's last line
    assert any(line.startswith(f"chexmask-rt: error: {tmp_path / 'missing.png'}") for line in lines)


def test_one_picture_name_for_several_images_is_refused(tmp_path, shared_images):
    """It became a folder named x.png."""
    proc = cli("predict", shared_images[0], shared_images[1], "--overlay", tmp_path / "x.png")
    assert proc.returncode == 2 and "--overlay" in proc.stderr and "names one picture, but 2 images" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_predict_writes_the_json_of_every_image_when_one_images_picture_fails(tmp_path, shared_images):
    """A picture that could not be written (a folder in its place, a full disk) ended predict before
    its JSON and CSV, losing every finished image's results; the old predict wrote them first."""
    a, b = shared_images[0], shared_images[1]
    (tmp_path / "pictures" / f"{b.stem}.png").mkdir(parents=True)
    proc = cli("predict", a, b, "--samples", 2, "--overlay", f"{tmp_path / 'pictures'}/", "--json", tmp_path / "r.json")
    assert proc.returncode == 1 and f"{b.stem}.png: cannot write the overlay picture" in proc.stderr, proc.stderr
    assert [r["image"] for r in json.loads((tmp_path / "r.json").read_text())] == [str(a), str(b)]
    (tmp_path / "a_file").write_text("")  # found before any work now: nothing to lose
    proc = cli("predict", b, "--samples", 2, "--overlay", tmp_path / "a_file" / "x.png", "--json", tmp_path / "one.json")
    assert proc.returncode == 3 and "exists and is not a folder" in proc.stderr and not (tmp_path / "one.json").exists()


def test_predict_fails_alone_an_image_whose_reader_raises_something_unexpected(monkeypatch, capsys, tmp_path,
                                                                                shared_images):
    """A reader's unforeseen exception on one file (a BigTIFF's huge count gave MemoryError) stopped
    predict with a traceback before the later images; batch records such a file and goes on."""
    import shutil

    from chexmask_rt import cli
    from chexmask_rt.model import Segmenter

    real = Segmenter.predict

    def predict(self, image, **kwargs):
        if str(image).endswith("bad.png"):
            raise ValueError("a reader's surprise")
        return real(self, image, **kwargs)

    monkeypatch.setattr(Segmenter, "predict", predict)
    bad, good = (shutil.copy(shared_images[0], tmp_path / name) for name in ("bad.png", "good.png"))
    assert cli.main(["predict", str(bad), str(good), "--samples", "2", "--json", str(tmp_path / "r.json")]) == 1
    assert f"chexmask-rt: error: {bad}: ValueError: a reader's surprise" in capsys.readouterr().err
    assert [r["image"] for r in json.loads((tmp_path / "r.json").read_text())] == [str(good)]
    with pytest.raises(ValueError):  # one image: the error is the command's, as before
        cli.main(["predict", str(bad), "--samples", "2"])


def test_messages_escape_c1_controls_and_del_too():
    """U+009B is an 8-bit CSI: some terminals and log viewers act on it as on ESC [."""
    from chexmask_rt.progress import printable

    assert printable("a\x9b31mb\x7fc\x85d\x1be") == "a\\x9b31mb\\x7fc\\x85d\\x1be"


def test_messages_escape_control_characters_of_file_names(tmp_path, shared_images):
    """A file named with an ESC sequence (or a CR) drove the terminal showing the error line that names it."""
    import shutil

    bad = tmp_path / "a\x1b[31mred\r.png"
    bad.write_bytes(b"not an image")
    good = shutil.copy(shared_images[0], tmp_path / "good\x1b]0;title\x07.png")
    for args in ((bad,), (bad, good)):
        proc = cli("predict", *args, "--samples", 2)
        assert proc.returncode in (1, 3), proc.stderr
        assert "\x1b" not in proc.stderr + proc.stdout and "\r" not in proc.stderr
        assert "a\\x1b[31mred\\x0d.png: not a readable image" in proc.stderr
    assert "good\\x1b]0;title\\x07.png: " in proc.stdout  # the summary line of the readable one


def test_an_image_interrupted_while_its_outputs_are_written_is_not_reported_done(monkeypatch, tmp_path,
                                                                                 shared_images):
    """Ctrl-C while the third image's picture was written: its answer went into the JSON, its picture was not
    there (the CI's interrupt test caught the race once)."""
    import shutil

    from chexmask_rt import cli

    real = cli._write_overlay
    written = []

    def overlay(target, result, stem, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        real(target, result, stem, **kwargs)
        written.append(stem)

    monkeypatch.setattr(cli, "_write_overlay", overlay)
    images = [str(shutil.copy(shared_images[0], tmp_path / f"im{i}.png")) for i in range(4)]
    pictures = tmp_path / "pictures"
    code = cli.main(["predict", *images, "--samples", "2", "--overlay", f"{pictures}/", "--json",
                     str(tmp_path / "all.json")])
    assert code == 130
    done = [Path(r["image"]).stem for r in json.loads((tmp_path / "all.json").read_text())]
    assert done == written == ["im0", "im1"] and sorted(p.stem for p in pictures.iterdir()) == done


def test_options_that_cannot_go_together_are_one_line(tmp_path, shared_images):
    """They printed the top-level usage (not predict's) before the error: two lines, where the README
    promises one."""
    proc = cli("predict", shared_images[0], shared_images[1], "--overlay", tmp_path / "x.png")
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"chexmask-rt predict: error: --overlay {tmp_path / 'x.png'} names one picture, but 2 images were given: "
        "name a folder (it gets one <image name>.png each)"]


def test_json_to_a_name_of_standard_output_is_standard_output(tmp_path, shared_images):
    """`--json /dev/stdout > got.json` renamed the JSON over the name (as root, over /dev/stdout itself)
    and got.json held only the summary line; piped, the summary line went into the JSON stream. A
    link of our own stands for /dev/stdout, which a test must not risk."""
    alias = tmp_path / "my_stdout"
    alias.symlink_to("/proc/self/fd/1")
    got = tmp_path / "got.json"
    with open(got, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(shared_images[0]), "--samples", "2",
                               "--json", str(alias)], stdout=out, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(got.read_text())["image"] == str(shared_images[0])  # the JSON, and nothing else
    assert alias.is_symlink() and os.readlink(alias) == "/proc/self/fd/1"
    piped = cli("predict", shared_images[0], "--samples", 2, "--csv", "/dev/stdout")
    assert piped.returncode == 0 and piped.stdout.startswith("Image,"), piped.stdout[:200] + piped.stderr
    assert f"{shared_images[0]}: " in piped.stderr  # the summary line, kept off the data
    with open(os.devnull, "w") as null:  # a device takes both outputs, written in place, as before
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(shared_images[0]), "--samples", "2",
                               "--json", os.devnull, "--csv", os.devnull], stdout=null, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_a_json_or_csv_name_that_cannot_be_a_file_is_refused_before_any_image(tmp_path, shared_images, option):
    """A folder's name failed after every image's inference, all answers lost; a name ending in '/'
    wrote a file of that name without the slash."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    for target, said in ((tmp_path / "folder", "that is a folder"), (f"{tmp_path / 'new'}/", "that is a folder"),
                         (tmp_path / "a_file" / "r.out", f"{tmp_path / 'a_file'} exists and is not a folder")):
        proc = cli("predict", shared_images[0], "--samples", 2, option, target)
        assert proc.returncode == 3 and said in proc.stderr, proc.stderr
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder"]


@pytest.mark.parametrize("option", [["--bit-depth", "12"], ["--dicom-seg", "seg"]])
def test_a_fifo_given_as_an_image_is_refused_with_any_option(tmp_path, option):
    """`predict fifo --bit-depth 12` (or --dicom-seg, --dicom-sr) opened the FIFO to ask whether it was a
    DICOM file and waited for a writer forever; without them it was refused at once."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(fifo), *option], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr, proc.stderr
    assert "not a regular file" in proc.stderr or "not DICOM: " in proc.stderr, proc.stderr


def test_an_output_name_past_the_file_systems_limit_is_refused_before_any_work(tmp_path, shared_images):
    """A 252-byte image name is legal; its masks' names (<name>_right_lung.png) are not: predict failed
    with 'File name too long' after the image's inference."""
    image = tmp_path / ("a" * 248 + ".png")
    image.write_bytes(shared_images[0].read_bytes())
    proc = cli("predict", image, "--samples", 2, "--masks", tmp_path / "masks")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert "a name longer than the 255 bytes a file name may have" in proc.stderr, proc.stderr
    assert not (tmp_path / "masks").exists()
    proc = cli("predict", image, "--samples", 2, "--overlay", tmp_path / "pictures")  # 252 bytes: it fits
    assert proc.returncode == 0, proc.stderr
