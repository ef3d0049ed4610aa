"""chexmask-rt batch: inputs, error isolation, resume, exit codes, results equal the API."""
import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from chexmask_rt.batch import collect_inputs, run_batch
from chexmask_rt.csv_output import parse_coords

from conftest import SHARED


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def archive(tmp_path, shared_images):
    """Three good images (one in a subfolder, one DICOM), a non-image and a truncated JPEG, and a text file."""
    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    shutil.copy(shared_images[0], root / shared_images[0].name)
    shutil.copy(shared_images[1], root / "sub" / shared_images[1].name)
    shutil.copy(SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm", root / "sub" / "cr.dcm")
    (root / "notes.txt").write_text("not an image")
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "cut.jpg").write_bytes((SHARED / "data" / "images" / "wiki_example2_chest_xray.jpg").read_bytes()[:4000])
    return root


def test_folder_is_searched_recursively_for_images(archive):
    found = collect_inputs(archive)
    assert sorted(p.rsplit("/", 1)[1] for p in found) == sorted(
        ["bad.png", "cut.jpg", "cr.dcm", *(p.name for p in archive.rglob("*") if p.suffix in (".jpg", ".png")
                                           and p.name not in ("bad.png", "cut.jpg"))])
    assert not any(p.endswith("notes.txt") for p in found)


def test_text_and_csv_lists_resolve_relative_paths(tmp_path, archive):
    (archive / "list.txt").write_text("# two images\nsub/cr.dcm\n\nbad.png\n")
    assert collect_inputs(archive / "list.txt") == [str(archive / "sub/cr.dcm"), str(archive / "bad.png")]
    (archive / "list.csv").write_text("id,path\n1,sub/cr.dcm\n2,/abs/x.png\n")
    assert collect_inputs(archive / "list.csv") == [str(archive / "sub/cr.dcm"), "/abs/x.png"]


def test_bad_files_are_recorded_and_the_rest_go_on(tmp_path, archive, default_segmenter):
    out = tmp_path / "out"
    proc = cli("batch", archive, "--out", out, "--samples", 4, "--workers", 2, "--masks")
    assert proc.returncode == 1, proc.stderr
    assert "5 images: 3 done, 0 already in " in proc.stdout and "2 failed" in proc.stdout
    assert "images/s" in proc.stdout and "img/s" in proc.stderr  # summary and progress bar
    errors = {r["Image"]: r for r in rows(out / "errors.csv")}
    assert set(errors) == {str(archive / "bad.png"), str(archive / "cut.jpg")}
    for image, r in errors.items():
        assert r["Error"] == "InputError" and r["Reason"].startswith(f"{image}: not a readable image")
    results = {r["Image"]: r for r in rows(out / "results.csv")}
    assert len(results) == 3 and len(list((out / "masks").iterdir())) == 9
    for image, r in results.items():  # the batch path (decoder threads, arrays, chunks) == the API on the file
        api = default_segmenter.predict(image, samples=4)
        np.testing.assert_allclose(parse_coords(r["Landmarks (Mean)"]), api.landmarks, atol=1.1e-3)  # cut to 3 decimals
        assert (int(r["Height"]), int(r["Width"])) == (api.height, api.width)


def test_resume_skips_finished_images_and_redoes_a_cut_row(tmp_path, shared_images, default_segmenter):
    out = tmp_path / "out"
    images = [str(p) for p in shared_images]
    first = run_batch(default_segmenter, images[:2], out, samples=3, progress=False)
    assert (first.done, first.skipped, first.failed) == (2, 0, 0)
    second = run_batch(default_segmenter, images[:4], out, samples=3, progress=False)
    assert (second.done, second.skipped) == (2, 2)
    assert [r["Image"] for r in rows(out / "results.csv")] .count(images[0]) == 1
    # a run killed in the middle of writing its last row: that row is dropped and redone
    text = (out / "results.csv").read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    (out / "results.csv").write_text(text[:len(text) - len(last) // 2 - 1])
    third = run_batch(default_segmenter, images, out, samples=3, progress=False)
    assert (third.done, third.skipped, third.failed) == (2, 3, 0)
    final = rows(out / "results.csv")
    assert sorted(r["Image"] for r in final) == sorted(images)
    assert all(len(parse_coords(r["Landmarks (Mean)"])) == 120 for r in final)


def test_a_rerun_restarts_errors_csv_and_counts_a_listed_image_once(tmp_path, shared_images, default_segmenter):
    """errors.csv holds this run's failures: an image fixed and retried must not stay listed there (it
    would be in both files). A list naming an image twice is one image, not one done and one skipped."""
    out = tmp_path / "out"
    image = tmp_path / "fixed.png"
    image.write_bytes(b"not a png")
    first = run_batch(default_segmenter, [str(image)], out, samples=2, progress=False)
    assert first.failed == 1 and [r["Image"] for r in rows(out / "errors.csv")] == [str(image)]
    shutil.copy(shared_images[0], image)
    second = run_batch(default_segmenter, [str(image)], out, samples=2, progress=False)
    assert (second.done, second.failed) == (1, 0) and rows(out / "errors.csv") == []
    assert [r["Image"] for r in rows(out / "results.csv")] == [str(image)]
    twice = run_batch(default_segmenter, [str(shared_images[1])] * 2, tmp_path / "twice", samples=2, progress=False)
    assert (twice.total, twice.done, twice.skipped, twice.failed) == (1, 1, 0, 0)


def test_overlays_of_every_image_or_of_the_flagged_ones(tmp_path, shared_images, default_segmenter):
    """A reviewer of an archive looks through pictures: of all results, or of those the flag marks."""
    import cv2

    from chexmask_rt.image_io import read_image, to_gray
    from chexmask_rt.overlay import draw_overlay

    upright = str(shared_images[0])
    upside_down = tmp_path / "upside_down.png"
    cv2.imwrite(str(upside_down), to_gray(read_image(upright))[::-1])
    images = [upright, str(upside_down)]
    flagged = run_batch(default_segmenter, images, tmp_path / "flagged", samples=10, progress=False, overlays="flagged")
    assert flagged.done == 2 and flagged.flagged == 1
    assert sorted(p.name for p in (tmp_path / "flagged" / "overlays").iterdir()) == ["upside_down.png"]
    run_batch(default_segmenter, images, tmp_path / "all", samples=10, progress=False, overlays="all")
    pictures = sorted((tmp_path / "all" / "overlays").iterdir())
    assert [p.name for p in pictures] == sorted([f"{shared_images[0].stem}.png", "upside_down.png"])
    result = default_segmenter.predict(upside_down, samples=10)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "all" / "overlays" / "upside_down.png")),
                                  draw_overlay(read_image(upside_down), result))
    assert not (tmp_path / "none").exists()
    run_batch(default_segmenter, images[:1], tmp_path / "none", samples=2, progress=False)
    assert not (tmp_path / "none" / "overlays").exists()
    proc = cli("batch", upright, "--out", tmp_path / "o", "--overlays", "some")
    assert proc.returncode == 2 and "invalid choice: 'some'" in proc.stderr


def test_all_good_exits_0_and_rerun_does_nothing(tmp_path, shared_images):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in shared_images[:2]))
    out = tmp_path / "out"
    proc = cli("batch", listing, "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert rows(out / "errors.csv") == []
    proc = cli("batch", listing, "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 0 and "0 done, 2 already in " in proc.stdout


def test_other_settings_are_refused_on_resume(tmp_path, shared_images):
    listing = tmp_path / "list.txt"
    listing.write_text(str(shared_images[0]))
    out = tmp_path / "out"
    assert cli("batch", listing, "--out", out, "--samples", 2, "--no-progress").returncode == 0
    proc = cli("batch", listing, "--out", out, "--samples", 3, "--no-progress")
    assert proc.returncode == 3 and "made with Samples '2'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("batch", listing, "--out", out, "--samples", 2, "--seed", 1, "--no-progress")
    assert proc.returncode == 3 and "made with Seed '0', this run uses '1'" in proc.stderr
    # the second look is a setting too: its answers are not one engine call's (the shipped default)
    assert rows(out / "results.csv")[0]["Second Look"] == "off"
    proc = cli("batch", listing, "--out", out, "--samples", 2, "--no-progress", "--second-look")
    assert proc.returncode == 3 and "made with Second Look 'off', this run uses 'on'" in proc.stderr
    second = tmp_path / "second"
    assert cli("batch", listing, "--out", second, "--samples", 2, "--no-progress", "--second-look").returncode == 0
    assert rows(second / "results.csv")[0]["Second Look"] == "pooled"
    for flags in ([], ["--single-look"]):
        proc = cli("batch", listing, "--out", second, "--samples", 2, "--no-progress", *flags)
        assert proc.returncode == 3 and "made with Second Look 'on', this run uses 'off'" in proc.stderr
    # every difference is named (after an upgrade the sha256 alone hid that the model and its look changed)
    proc = cli("batch", listing, "--out", second, "--samples", 3, "--seed", 1, "--no-progress")
    assert proc.returncode == 3 and all(f"made with {what}" in proc.stderr for what in (
        "Samples '2', this run uses '3'", "Seed '0', this run uses '1'", "Second Look 'on', this run uses 'off'"))


@pytest.mark.parametrize("args,code,needle", [
    (["batch", "/nonexistent/dir", "--out", "{tmp}/o"], 3, "/nonexistent/dir: no such file or folder"),
    (["batch", "{empty}", "--out", "{tmp}/o"], 3, "no images found"),
    (["batch", "{images}", "--out", "{tmp}/o", "--model", "/nonexistent/m.onnx"], 4, "/nonexistent/m.onnx"),
    # out-of-range options are usage errors naming the option, like typos (not input or model errors)
    (["batch", "{images}", "--out", "{tmp}/o", "--workers", "0"], 2, "argument --workers: workers must be an integer >= 1"),
    (["batch", "{images}", "--out", "{tmp}/o", "--threads", "-1"], 2, "argument --threads: threads must be an integer in 0..256"),
    (["batch", "{images}", "--out", "{tmp}/o", "--samples", "0"], 2, "argument --samples: samples must be an integer in 1..10000"),
    (["batch", "{images}", "--out", "{tmp}/o", "--seed", "-1"], 2, "argument --seed: seed must be an integer in [0, 2**64)"),
    (["batch", "{images}", "--out", "{tmp}/o", "--batch-size", "0"], 2, "argument --batch-size: batch size must be"),
    (["batch", "{images}", "--out", "{tmp}/o", "--max-pixels", "5"], 2, "argument --max-pixels: max_pixels must be"),
    (["batch", "{images}", "--out", "{tmp}/o", "--samples", "ten"], 2, "argument --samples: expected an integer, got 'ten'"),
    (["predict", "{images}/nih_00000001_000_512.png", "--bit-depth", "8"], 2, "argument --bit-depth: bit depth must be an integer in 9..16 (leave --bit-depth out"),
    (["predict", "{images}/nih_00000001_000_512.png", "--json", "-", "--csv", "-"], 2, "would both go to standard output"),
    # taken without a word, the run local: the user believed it ran on 8 actors
    (["batch", "{images}", "--out", "{tmp}/o", "--ray-actors", "8"], 2, "--ray-actors 8 needs --ray"),
    (["batch", "{images}"], 2, "usage"),
])
def test_batch_exit_codes(tmp_path, args, code, needle):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, empty=tmp_path / "empty", images=SHARED / "data" / "images") for a in args]
    proc = cli(*args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_one_image_listed_relative_and_absolute_is_segmented_once(tmp_path, shared_images, default_segmenter):
    """Two rows and "2 images: 2 done" for one file written "a.png" and "/.../a.png", where merge then
    reported a duplicate: batch and merge disagreed on what one image is."""
    shutil.copy(shared_images[0], tmp_path / "a.png")
    (tmp_path / "list.txt").write_text(f"a.png\n{tmp_path / 'a.png'}\n./a.png\n{tmp_path}//a.png\n")
    summary = run_batch(default_segmenter, collect_inputs(tmp_path / "list.txt"), tmp_path / "out", samples=2,
                        progress=False)
    assert (summary.total, summary.done) == (1, 1)
    assert [r["Image"] for r in rows(tmp_path / "out" / "results.csv")] == [str(tmp_path / "a.png")]


def test_a_rerun_that_asks_for_masks_says_the_finished_images_get_none(tmp_path, shared_images):
    """Rerunning a finished folder with --masks (or --overlays) wrote nothing, exit 0, and said nothing:
    a user who forgot --masks reran with it and believed the masks were there."""
    args = ["batch", shared_images[0].parent, "--out", tmp_path / "out", "--samples", 2, "--no-progress"]
    assert cli(*args).returncode == 0
    proc = cli(*args, "--masks", "--overlays", "all")
    assert proc.returncode == 0 and not (tmp_path / "out" / "masks").exists()
    assert f"batch: --masks, --overlays: the {len(shared_images)} images already in " in proc.stderr, proc.stderr
    assert "run again into a new --out" in proc.stderr
    assert "already in" not in cli(*args).stderr  # nothing asked for, nothing said


def test_a_resume_with_the_same_outputs_says_nothing_and_one_that_adds_names_only_the_new(tmp_path, shared_images):
    """The plain resume README prescribes ("run the same command again") with --masks was told that the
    finished images got no masks and to start over into a new --out, though the first run had written them."""
    (tmp_path / "in").mkdir()
    for image in shared_images[:2]:
        shutil.copy(image, tmp_path / "in" / image.name)
    args = ["batch", tmp_path / "in", "--out", tmp_path / "out", "--samples", 2, "--no-progress", "--masks"]
    assert cli(*args).returncode == 0
    masks = sorted((tmp_path / "out" / "masks").iterdir())
    assert len(masks) == 6
    proc = cli(*args)
    assert proc.returncode == 0 and "2 already in" in proc.stdout and "got none" not in proc.stderr, proc.stderr
    assert sorted((tmp_path / "out" / "masks").iterdir()) == masks
    proc = cli(*args, "--overlays", "all")
    assert "batch: --overlays: the 2 images already in " in proc.stderr, proc.stderr
    # those two images have no overlay, so every later run that asks for one is told, however it asks
    assert "batch: --overlays: the 2 images" in cli(*args, "--overlays", "all").stderr
