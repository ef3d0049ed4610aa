"""The chexmask-rt command line: JSON output, export, exit codes, messages without tracebacks."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

import chexmask_rt

from conftest import FIXTURES, IMAGES, REPO


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_console_script_is_installed():
    exe = shutil.which("chexmask-rt") or str(__import__("pathlib").Path(sys.executable).with_name("chexmask-rt"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "predict" in proc.stdout and "export" in proc.stdout


def test_predict_json_stdout_matches_api(example1, default_segmenter):
    proc = cli("predict", example1, "--samples", 7, "--seed", 3, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert {"image", "height", "width", "samples", "model", "landmarks", "landmarks_std", "landmarks_mu", "latent_mu",
            "latent_sigma", "node_uncertainty", "scores"} <= set(d)
    assert (d["image"], d["height"], d["width"], d["samples"]) == (str(example1), 899, 786, 7)
    api = default_segmenter.predict(example1, samples=7, seed=3)
    np.testing.assert_allclose(d["landmarks"], api.landmarks, atol=1e-9)
    np.testing.assert_allclose(d["landmarks_std"], api.landmarks_std, atol=1e-9)
    assert d["scores"]["mean_node_std"] == pytest.approx(api.mean_node_std)
    assert "warning" not in proc.stderr


def test_predict_several_images_to_file(tmp_path, shared_images):
    out = tmp_path / "res.json"
    proc = cli("predict", *shared_images[:2], "--samples", 2, "--json", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert isinstance(data, list) and [d["image"] for d in data] == [str(p) for p in shared_images[:2]]
    assert len(proc.stdout.strip().splitlines()) == 2  # one summary line per image


def test_a_12_bit_png_reads_as_12_bit(tmp_path, example1, default_segmenter):
    """A 16-bit PNG from a 12-bit detector: inferred, its landmarks are those of the 8-bit image;
    --bit-depth 16 forces the old reading (the image at 1/16 brightness), which lands elsewhere."""
    import cv2

    gray = cv2.imread(str(example1), cv2.IMREAD_GRAYSCALE)
    png = tmp_path / "twelve_bit.png"
    cv2.imwrite(str(png), gray.astype(np.uint16) * 16)
    expected = default_segmenter.predict(gray, samples=5).landmarks
    for flags, close in (((), True), (("--bit-depth", 12), True), (("--bit-depth", 16), False)):
        proc = cli("predict", png, "--samples", 5, "--json", "-", *flags)
        assert proc.returncode == 0, proc.stderr
        moved = np.abs(np.array(json.loads(proc.stdout)["landmarks"]) - expected).mean()
        assert (moved < 0.5) == close, (flags, moved)
    proc = cli("predict", png, "--bit-depth", 10)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"chexmask-rt: error: {png}: pixel values need 12 bits, more than bit_depth 10")
    assert "the command line: no --bit-depth" in proc.stderr  # it advised 0, which --bit-depth refuses


def test_overlay_pictures(tmp_path, shared_images):
    import cv2

    one = tmp_path / "one.png"
    assert cli("predict", shared_images[0], "--samples", 3, "--overlay", one).returncode == 0
    picture = cv2.imread(str(one))
    assert picture is not None and picture.shape[2] == 3 and max(picture.shape[:2]) <= 1024
    assert picture.std() > 10  # an image, not a blank canvas
    folder = tmp_path / "many"
    assert cli("predict", *shared_images[:2], "--samples", 3, "--overlay", folder).returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{p.stem}.png" for p in shared_images[:2])


def test_export_command_writes_a_loadable_engine(tmp_path):
    out = tmp_path / "m.onnx"
    proc = cli("export", "--checkpoint", FIXTURES / "noskip_256", "--output", out, "--name", "fx", "--model-version", "7")
    assert proc.returncode == 0, proc.stderr
    seg = chexmask_rt.load(out)
    assert seg.model_id == "fx:7" and seg.info.skip is False and seg.info.inputsize == 256
    # the plain-norm variant (for a TensorRT build that rejects If nodes) has no If and agrees
    plain = tmp_path / "plain.onnx"
    assert cli("export", "--checkpoint", FIXTURES / "noskip_256", "--output", plain, "--no-fused-norms").returncode == 0
    ops = {str(p): {n.op_type for n in onnx.load(p).graph.node} for p in (out, plain)}
    assert "If" in ops[str(out)] and "If" not in ops[str(plain)]
    image = np.random.default_rng(0).integers(0, 255, (300, 280), dtype=np.uint8)
    a, b = seg.predict(image, samples=4), chexmask_rt.load(plain).predict(image, samples=4)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_export_writes_what_it_was_asked_to_into_the_metadata(tmp_path):
    """--second-look and --description could be dropped, and the checkpoint hash (which keys the
    reliability calibration) be a hash of something else, with every test passing."""
    from chexmask_rt.metadata import file_sha256, read_engine_metadata

    out = tmp_path / "m.onnx"
    proc = cli("export", "--checkpoint", FIXTURES / "noskip_256", "--output", out, "--second-look", "--description", "card: X")
    assert proc.returncode == 0, proc.stderr
    _, info = read_engine_metadata(out)
    assert info.second_look is True and info.description == "card: X"
    assert info.checkpoint_sha256 == file_sha256(FIXTURES / "noskip_256" / "pytorch_model.bin")


@pytest.mark.parametrize("option", ["--name", "--model-version", "--description"])
def test_export_refuses_metadata_that_is_not_utf8_before_working(tmp_path, option):
    """A usage error naming the option (exit 2, as --samples 0 is); it exited 3."""
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "export", "--checkpoint", str(FIXTURES / "noskip_256"),
                           "--output", str(tmp_path / "m.onnx"), option, b"bad\xff"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert f"chexmask-rt export: error: argument {option}: 'bad\\udcff' is not valid UTF-8" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.onnx").exists()


def test_export_help_states_the_defaults():
    """--name and --model-version had defaults that neither --help nor the README gave."""
    proc = cli("export", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "(default hybridgnet)" in text and "(default unversioned)" in text


def test_export_never_destroys_an_input_or_writes_a_text_model(tmp_path):
    ckpt = tmp_path / "ck"
    shutil.copytree(FIXTURES / "noskip_256", ckpt)
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    for name in ("pytorch_model.bin", "config.json"):
        proc = cli("export", "--checkpoint", ckpt, "--output", ckpt / name)
        # outputs that meet inputs are a usage error, as for predict (found once the checkpoint is read)
        assert proc.returncode == 2 and proc.stderr.startswith("chexmask-rt export: error: --output ")
        assert "is the export's input" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    # onnx.save would write a text-format model for these names, which no runtime loads
    out = tmp_path / "engine.json"
    assert cli("export", "--checkpoint", ckpt, "--output", out).returncode == 0
    assert chexmask_rt.load(out).info.inputsize == 256
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize("args,code,needle", [
    (["predict", "/nonexistent/x.png"], 3, "/nonexistent/x.png: no such file"),
    (["predict", "{example}", "--samples", "0"], 2, "argument --samples: samples must be an integer in 1..10000"),
    (["predict", "{example}", "--model", "/nonexistent/m.onnx"], 4, "/nonexistent/m.onnx: model file not found"),
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx"], 4, "/nonexistent/ck.pt"),
    # option values export cannot use are usage errors naming the option, as --samples 0 is (they exited 3)
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx", "--name", ""], 2,
     "chexmask-rt export: error: argument --name: '' is empty"),
    # a folder as --output: a ValueError traceback ('.', ''), a failure naming a temporary file after the
    # whole export (an existing folder), or a file named like the folder ('new/'); existing or not, the
    # option names the wrong kind of thing (as predict's --overlay FILE for several images: exit 2)
    *[(["export", "--checkpoint", str(FIXTURES / "noskip_256"), "--output", out], 2,
       "chexmask-rt export: error: argument --output: '" + out + "' names a folder; name the engine file")
      for out in (".", "", "{tmp}", "{tmp}/new/")],
    (["export", "--checkpoint", str(FIXTURES / "noskip_256"), "--output", __file__ + "/m.onnx"], 3,
     "is a file, not a folder"),  # it failed after the whole export
    # a name the runtime refuses to open: the export succeeded, and load(), info and predict refused its engine
    *[(["export", "--checkpoint", str(FIXTURES / "noskip_256"), "--output", "{tmp}/model" + suffix], 2,
       "argument --output: '{tmp}/model" + suffix + "': .engine and .plan name TensorRT plans")
      for suffix in (".engine", ".PLAN")],
    # a name too long for the file system: an OSError traceback (exit 1)
    (["export", "--checkpoint", str(FIXTURES / "noskip_256"), "--output", "{tmp}/" + "m" * 300 + ".onnx"], 2,
     "File name too long"),
    # a place nothing can be written: a PermissionError naming a hidden temporary file, after the export
    (["export", "--checkpoint", str(FIXTURES / "noskip_256"), "--output", "/proc/m.onnx"], 3,
     "--output /proc/m.onnx: cannot write in /proc"),
    # what DICOM outputs cannot carry, or an id whose version cannot be read back after its last colon
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx", "--model-version", "2024:rc1"], 2,
     "argument --model-version: '2024:rc1' holds a ':'"),
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx", "--model-version", "v" * 65], 2,
     "argument --model-version: '" + "v" * 65 + "' is longer than 64 characters"),
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx", "--model-version", "v1\\beta"], 2,
     "argument --model-version: 'v1\\beta' holds a backslash or a control character"),
    (["export", "--checkpoint", "/nonexistent/ck.pt", "--output", "{tmp}/o.onnx", "--name", "lung\nseg"], 2,
     "argument --name: 'lung\\x0aseg' holds a backslash or a control character"),
    (["predict"], 2, "usage"),
    (["frobnicate"], 2, "usage"),
])
def test_errors_exit_codes_and_no_traceback(tmp_path, example1, args, code, needle):
    args = [a.format(example=example1, tmp=tmp_path) for a in args]
    needle = needle.format(example=example1, tmp=tmp_path)
    proc = cli(*args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["predict", "batch", "merge", "info", "export"])
def test_debug_flag_shows_the_traceback_before_or_after_the_command(tmp_path, command):
    """--debug after the command was a usage error ("unrecognized arguments"), and the README never said
    where it goes."""
    arguments = {"predict": ["/nonexistent/x.png"], "batch": ["/nonexistent", "--out", tmp_path / "o"],
                 "merge": ["/nonexistent", "--out", tmp_path / "m"], "info": ["/nonexistent.onnx"],
                 "export": ["--checkpoint", "/nonexistent", "--output", tmp_path / "e.onnx"]}[command]
    for args in (["--debug", command, *arguments], [command, *arguments, "--debug"]):
        proc = cli(*args)
        assert proc.returncode in (3, 4) and "Traceback" in proc.stderr, (args, proc.stderr)
    proc = cli(command, *arguments)
    assert proc.returncode in (3, 4) and "Traceback" not in proc.stderr, proc.stderr


def test_the_help_lists_every_exit_code_the_command_returns():
    """130 (Ctrl-C) and 143 (SIGTERM) were in the README only."""
    proc = cli("--help")
    assert proc.returncode == 0 and "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)" in " ".join(proc.stdout.split())


def test_corrupt_image_in_cli(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    proc = cli("predict", bad)
    assert proc.returncode == 3 and str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_backend_python_is_gone_with_one_line_naming_the_replacement(example1):
    proc = cli("predict", example1, "--backend", "python", "--samples", 2)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--backend auto" in proc.stderr and "Traceback" not in proc.stderr
    for backend in ("auto", "native"):  # both the core, as before
        assert cli("predict", example1, "--backend", backend, "--samples", 2, "--single-look").returncode == 0
    with pytest.raises(chexmask_rt.ModelError, match="backend='auto'"):
        chexmask_rt.load(backend="python")


def test_csv_of_an_image_whose_name_is_not_utf8(tmp_path, example1):
    """Linux names are bytes: the CSV keeps them as batch's does, and the masks are written too."""
    import os

    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    with open(name, "wb") as f:
        f.write(example1.read_bytes())
    out = tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", name, "--samples", "2", "--single-look",
                           "--csv", str(out), "--masks", str(tmp_path / "m")], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert b"caf\xe9.jpg" in out.read_bytes().split(b"\n")[1]
    assert len(list((tmp_path / "m").iterdir())) == 3


def test_predict_never_writes_an_output_over_an_image_or_another_output(tmp_path, example1):
    """--overlay into the images' own folder replaced every PNG it was given (rc 0); --json and --csv of
    one name kept the CSV; an overlay and a mask of two images could share a name."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("a.png", "y.png", "y_heart.png"):
        shutil.copy(example1, imgs / name)
    before = {p.name: p.read_bytes() for p in imgs.iterdir()}
    cases = [
        ([imgs / "a.png", imgs / "y.png", "--overlay", imgs], "--overlay would write"),
        ([imgs / "a.png", "--overlay", imgs / "a.png"], f"over the image {imgs / 'a.png'}"),
        ([imgs / "a.png", "--json", imgs / "a.png"], "--json would write"),
        ([imgs / "a.png", "--json", tmp_path / "r.out", "--csv", tmp_path / "r.out"], "--json and --csv would both write"),
        ([imgs / "y.png", imgs / "y_heart.png", "--masks", tmp_path / "m", "--overlay", tmp_path / "m"],
         f"--overlay and --masks would both write {tmp_path / 'm' / 'y_heart.png'}"),
    ]
    for args, needle in cases:
        proc = cli("predict", *args, "--samples", 2)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)
    assert {p.name: p.read_bytes() for p in imgs.iterdir()} == before and not (tmp_path / "m").exists()
    # the same image named twice writes the same pictures twice: no clash
    proc = cli("predict", imgs / "a.png", imgs / "a.png", "--samples", 2, "--masks", tmp_path / "m2", "--overlay",
               tmp_path / "m2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "m2").iterdir()) == ["a.png", "a_heart.png", "a_left_lung.png",
                                                                   "a_right_lung.png"]


def test_an_output_that_cannot_be_written_does_not_cost_the_other(tmp_path, example1):
    proc = cli("predict", example1, "--samples", 2, "--json", "/proc/nope/r.json", "--csv", tmp_path / "r.csv")
    assert proc.returncode == 3 and "/proc/nope/r.json: cannot write JSON" in proc.stderr
    assert (tmp_path / "r.csv").read_text().count("\n") == 2  # the header and the image's row
    proc = cli("predict", example1, "--samples", 2, "--json", "/proc/nope/r.json", "--csv", "/proc/nope/r.csv")
    assert proc.returncode == 3 and "r.json: cannot write JSON" in proc.stderr and "r.csv: cannot write CSV" in proc.stderr
    # a device takes any number of outputs, written in place
    assert cli("predict", example1, "--samples", 2, "--json", "/dev/null", "--csv", "/dev/null").returncode == 0


# CLI wiring a mutation audit found unguarded

def test_batch_passes_max_pixels_to_the_engine(tmp_path, shared_images):
    """`batch --max-pixels N` must refuse images above N pixels (recorded in errors.csv, exit 1)."""
    import cv2

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "small.png"), np.full((100, 120), 90, np.uint8))
    proc = cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--samples", 2, "--no-progress",
               "--max-pixels", 11_999)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "above the pixel limit" in (tmp_path / "out" / "errors.csv").read_text()


def test_threads_above_the_maximum_is_a_usage_error(tmp_path):
    """--threads 257 (above core.MAX_THREADS=256) is a usage error naming the option, not a run."""
    proc = cli("predict", IMAGES / "nih_00000001_000_512.png", "--threads", 257, "--samples", 2)
    assert proc.returncode == 2 and "argument --threads: threads must be an integer in 0..256" in proc.stderr


def test_batch_overlays_flagged_draws_only_the_flagged(tmp_path, shared_images):
    """`batch --overlays flagged` draws pictures of the flagged images only (not all)."""
    import cv2

    from chexmask_rt.image_io import read_image, to_gray

    (tmp_path / "in").mkdir()
    upright = shared_images[0]
    cv2.imwrite(str(tmp_path / "in" / upright.name), cv2.imread(str(upright), cv2.IMREAD_UNCHANGED))
    cv2.imwrite(str(tmp_path / "in" / "upside_down.png"), to_gray(read_image(str(upright)))[::-1])
    proc = cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--samples", 10, "--no-progress",
               "--overlays", "flagged")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 flagged for review" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["upside_down.png"]


def test_summary_line_names_the_second_look(example1):
    """With --second-look, predict's summary line says how the looks were used."""
    proc = cli("predict", example1, "--samples", 3, "--second-look")
    assert proc.returncode == 0, proc.stderr
    assert ", two looks pooled" in proc.stdout or ", wide field of view: the crop's look" in proc.stdout, proc.stdout


def test_summary_line_says_not_calibrated(tmp_path, example1):
    """An engine whose calibration is for another checkpoint: the summary line says so."""
    from chexmask_rt.model import calibration_path

    engine = tmp_path / "copy.onnx"
    shutil.copy(chexmask_rt.default_model_path(), engine)
    shipped = json.loads(calibration_path(chexmask_rt.default_model_path()).read_text())
    calibration_path(engine).write_text(json.dumps({"0" * 64: next(iter(shipped.values()))}))
    proc = cli("predict", example1, "--samples", 3, "--model", engine)
    assert proc.returncode == 0, proc.stderr
    assert ", reliability not calibrated" in proc.stdout, proc.stdout


def test_overlay_into_an_existing_folder_with_a_picture_suffix(tmp_path, example1):
    """--overlay naming an existing folder is a folder, whatever its name ends with."""
    folder = tmp_path / "review.png"
    folder.mkdir()
    proc = cli("predict", example1, "--samples", 2, "--overlay", folder)
    assert proc.returncode == 0, proc.stderr
    assert (folder / f"{example1.stem}.png").is_file()


def test_overlay_with_a_trailing_slash_is_a_folder(tmp_path, example1):
    """--overlay DIR/ (a trailing '/') names a folder even when DIR ends like a picture."""
    proc = cli("predict", example1, "--samples", 2, "--overlay", f"{tmp_path / 'review.png'}/")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "review.png" / f"{example1.stem}.png").is_file()


def test_overlay_into_a_folder_replaces_only_the_pictures_it_drew(tmp_path, example1):
    """`predict x.jpg --overlay .` replaced x.png beside it, the user's own radiograph, with exit 0 and
    "wrote x.png". A file there that is not an overlay of this package is now refused before any work;
    a rerun still replaces the picture of the earlier run."""
    import shutil

    shutil.copy(example1, tmp_path / "chest.jpg")
    own = tmp_path / "chest.png"
    own.write_bytes(b"the user's own picture")
    proc = cli("predict", tmp_path / "chest.jpg", "--samples", 2, "--overlay", tmp_path, "--json", tmp_path / "r.json")
    assert proc.returncode == 2
    assert f"--overlay would replace {own}, which is not a picture chexmask-rt drew" in proc.stderr
    assert own.read_bytes() == b"the user's own picture" and not (tmp_path / "r.json").exists()
    review = tmp_path / "review"
    for _ in range(2):  # the second run replaces the first run's picture
        proc = cli("predict", tmp_path / "chest.jpg", "--samples", 2, "--overlay", review)
        assert proc.returncode == 0, proc.stderr
    from chexmask_rt.image_io import read_image
    from chexmask_rt.overlay import is_overlay_picture

    assert is_overlay_picture(review / "chest.png") and not is_overlay_picture(own)
    assert read_image(review / "chest.png").shape[:2] == (1183, 786)  # the mark keeps it a readable PNG


def test_masks_into_a_folder_replace_only_the_masks_it_wrote(tmp_path, example1):
    """`predict x.png --masks gt` replaced gt/x_heart.png, a ground-truth mask of the user's, with exit 0.
    Such a file is now refused before any work; a rerun still replaces the earlier run's masks."""
    truth = tmp_path / "gt" / f"{example1.stem}_heart.png"
    truth.parent.mkdir()
    truth.write_bytes(b"the user's ground truth")
    proc = cli("predict", example1, "--samples", 2, "--masks", truth.parent)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"--masks would replace {truth}, which is not a mask chexmask-rt wrote" in proc.stderr, proc.stderr
    assert sorted(truth.parent.iterdir()) == [truth] and truth.read_bytes() == b"the user's ground truth"
    masks = tmp_path / "masks"
    for _ in range(2):
        proc = cli("predict", example1, "--samples", 2, "--masks", masks)
        assert proc.returncode == 0, proc.stderr
    heart = cv2.imread(str(masks / truth.name), cv2.IMREAD_UNCHANGED)  # the mark keeps it a readable PNG
    assert heart.shape == (899, 786) and set(np.unique(heart)) == {0, 255}


def test_an_output_folder_that_is_a_file_or_an_empty_name_is_refused_before_any_work(tmp_path, example1):
    """--overlay afile/x.png said "cannot write the overlay picture (File exists)" after the inference, its JSON
    written; --overlay "" was taken for no --overlay at all: exit 0 and no picture."""
    (tmp_path / "afile").write_text("x")
    for option, value in (("--overlay", tmp_path / "afile" / "x.png"), ("--overlay", tmp_path / "afile" / "sub"),
                          ("--masks", tmp_path / "afile")):
        proc = cli("predict", example1, "--samples", 2, option, value, "--json", tmp_path / "r.json")
        assert proc.returncode == 3 and f"{tmp_path / 'afile'} exists and is not a folder" in proc.stderr, proc.stderr
        assert not (tmp_path / "r.json").exists()
    for option in ("--overlay", "--masks", "--json", "--csv"):
        proc = cli("predict", example1, "--samples", 2, option, "")
        assert proc.returncode == 2 and f"{option} needs a file or folder name, not an empty string" in proc.stderr
    long = tmp_path / ("a" * 260 + ".png")  # was "OSError: [Errno 36] File name too long: ..."
    proc = cli("predict", example1, "--samples", 2, "--overlay", long)
    assert proc.returncode == 3 and proc.stderr == f"chexmask-rt: error: {long}: File name too long\n"


def _small_images(folder, count: int) -> list:
    """``count`` copies of a shared image at 256 px, named a0.png, a1.png, ..."""
    import cv2

    from chexmask_rt.image_io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    small = cv2.resize(read_image(IMAGES / "nih_00000001_000_512.png"), (256, 256), interpolation=cv2.INTER_AREA)
    paths = [folder / f"a{i}.png" for i in range(count)]
    for path in paths:
        cv2.imwrite(str(path), small)
    return paths


def test_predict_of_several_images_counts_its_failures(tmp_path):
    """100 images with 8 bad ones ended on "100/100 images (100 %)" and exit 1: the failures were 8 error
    lines among 92 summary lines, never counted. predict also refused --no-progress, which batch takes."""
    good = _small_images(tmp_path / "in", 2)
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"not a picture")
    proc = cli("predict", *good, bad, "--samples", "2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == "predict: 3 images: 2 done, 1 failed"
    assert any(line.startswith("predict: 3/3 images") and line.endswith("failed=1") for line in proc.stderr.splitlines())
    assert len(proc.stdout.splitlines()) == 2  # still one summary line per image segmented
    quiet = cli("predict", *good, bad, "--samples", "2", "--no-progress")
    assert quiet.returncode == 1 and not any(line.startswith("predict: 3/3") for line in quiet.stderr.splitlines())
    assert quiet.stderr.splitlines()[-1] == "predict: 3 images: 2 done, 1 failed"


def test_a_resumed_batch_counts_the_images_done_before(tmp_path):
    """A resumed run's progress started at 0/756 with 1,204 of 1,960 already done; and its summary left
    out the list's repeated entries, so the rows seemed fewer than the list's lines."""
    images = _small_images(tmp_path / "in", 3)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{images[0]}\n{images[1]}\n{images[0]}\n")
    first = cli("batch", listed, "--out", tmp_path / "out", "--samples", "2")
    assert first.returncode == 0, first.stderr
    assert "2 images (1 repeated entry left out): 2 done, 0 already in " in first.stdout
    listed.write_text(f"{images[0]}\n{images[1]}\n{images[2]}\n")
    again = cli("batch", listed, "--out", tmp_path / "out", "--samples", "2")
    lines = [line for line in again.stderr.splitlines() if line.startswith("batch: ")]
    assert lines[0].startswith("batch: 2/3 images (67 %)") and lines[-1].startswith("batch: 3/3 images (100 %)")
    assert "3 images: 1 done, 2 already in " in again.stdout


def test_merge_says_where_its_errors_and_skipped_files_went(tmp_path):
    """It said "N errors -> ALL/results.csv", and left the merged skipped files unmentioned."""
    _small_images(tmp_path / "in", 1)
    (tmp_path / "in" / "bad.png").write_bytes(b"not a picture")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    assert cli("batch", tmp_path / "in", "--out", tmp_path / "a", "--samples", "2").returncode == 1
    proc = cli("merge", tmp_path / "a", "--out", tmp_path / "all")
    assert f"1 results -> {tmp_path / 'all' / 'results.csv'}" in proc.stdout
    assert f"1 errors -> {tmp_path / 'all' / 'errors.csv'}" in proc.stdout
    assert f"1 skipped files -> {tmp_path / 'all' / 'skipped.csv'}" in proc.stdout


def test_a_callers_own_standard_output_gets_the_data(monkeypatch):
    """A stream a program put in sys.stdout (a tee with write, flush and fileno) was passed by, the data
    written to descriptor 1 under it; without an encoding attribute, main() raised AttributeError."""
    from chexmask_rt import cli as command

    class Tee:
        def __init__(self):
            self.parts = []

        def write(self, text):
            self.parts.append(text)
            return len(text)

        def flush(self):
            pass

        def fileno(self):
            return 1

    tee = Tee()
    monkeypatch.setattr(sys, "stdout", tee)
    assert command.main(["info"]) == 0
    assert json.loads("".join(tee.parts))["id"].startswith("chexmask-rt-default:")


def test_predict_of_many_images_does_not_keep_their_answers_without_json_or_csv(tmp_path, example1, monkeypatch):
    """predict kept every Result, its K samples included (1.9 MB at K = 1000), until it exited, even with no
    --json or --csv to write them to: a glob over an archive grew without bound (peak RSS of 12 images
    against 2 at K = 1000: 19 MB apart). Now each image's answer is gone once the next one's is made;
    with --json they are kept, for the file."""
    import gc
    import weakref

    from chexmask_rt import cli as command
    from chexmask_rt.model import Segmenter

    small = cv2.resize(cv2.imread(str(example1), cv2.IMREAD_GRAYSCALE), (128, 128))
    images = [str(tmp_path / f"{i}.png") for i in range(4)]
    for image in images:
        cv2.imwrite(image, small)
    made: list = []
    alive: list = []
    real = Segmenter.predict

    def predict(self, *args, **kwargs):
        gc.collect()
        alive.append(sum(answer() is not None for answer in made))
        result = real(self, *args, **kwargs)
        made.append(weakref.ref(result))
        return result

    monkeypatch.setattr(Segmenter, "predict", predict)
    assert command.main(["predict", *images, "--samples", "2", "--no-progress"]) == 0
    assert alive == [0, 1, 1, 1]  # the loop's last answer only
    made.clear()
    alive.clear()
    assert command.main(["predict", *images, "--samples", "2", "--no-progress", "--json", str(tmp_path / "a.json")]) == 0
    assert alive == [0, 1, 2, 3]


def test_info_says_which_release_and_which_onnx_runtime_ran(capsys):
    """Nothing said which ONNX Runtime the core loaded: pip resolves 1.23.2 on Python 3.10 and 1.32.0 on
    3.11 (landmarks 1.6e-4 px apart), onnxruntime-gpu or -openvino may stand in, and a bug report could
    not tell them apart."""
    import importlib.metadata

    from chexmask_rt import cli as command
    from chexmask_rt import core

    assert command.main(["info"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["chexmask_rt"] == (REPO / "VERSION").read_text().strip()
    assert said["onnxruntime"] == {"distribution": "onnxruntime", "version": importlib.metadata.version("onnxruntime"),
                                   "library": core.onnxruntime_library()}
    assert Path(said["onnxruntime"]["library"]).name.endswith(said["onnxruntime"]["version"])  # the file loaded
