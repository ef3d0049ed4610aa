"""chexmask-rt batch never loses or mixes data (issue 20, cases 6, 11, 13-19): every image ends in
exactly one of results.csv and errors.csv with its own reason, a folder is locked, resumed only
by the same engine and settings, repaired after any cut, and never read as input.

CI runs as root, and root writes into a mode-555 folder: a read-only or full output folder is
therefore a real tmpfs mount here, and a machine where mounting fails fails these tests."""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.batch import collect_inputs, mask_stems, run_batch
from chexmask_rt.batch_folder import scan_results
from chexmask_rt.csv_output import COLUMNS, parse_coords
from chexmask_rt.errors import InputError, ModelError

from conftest import IMAGES, REPO, SHARED


def cli(*args):
    return subprocess.run([sys.executable, "-m", "chexmask_rt", *map(str, args)], capture_output=True, text=True)


def rows(path):
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


def one_line_error(proc, code, needle):
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def accounted(out, images):
    """Each image in exactly one of results.csv and errors.csv; returns (done, failed) rows."""
    done, failed = rows(out / "results.csv"), rows(out / "errors.csv")
    names = [r["Image"] for r in done] + [r["Image"] for r in failed]
    assert sorted(names) == sorted(images), (names, images)
    assert all(len(parse_coords(r["Landmarks (Mean)"])) == 120 for r in done)
    return done, failed


@contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode:  # not a skip: CI runs as root and must run these
        pytest.fail(f"cannot mount a tmpfs at {path} ({proc.stderr.strip()}); these tests need root", pytrace=False)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture()
def images(tmp_path, shared_images):
    """The five shared radiographs, copied into one folder."""
    folder = tmp_path / "images"
    folder.mkdir()
    return [str(shutil.copy(p, folder / p.name)) for p in shared_images]


def listing(tmp_path, images, name="list.txt"):
    path = tmp_path / name
    path.write_text("\n".join(images) + "\n")
    return path


def hold_lock(folder):
    """Another process holding ``folder``'s batch lock (until killed); returns it once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path\n"
                               "from chexmask_rt.batch_folder import folder_lock\n"
                               "with folder_lock(Path(sys.argv[1])):\n"
                               "    print('locked', flush=True); time.sleep(600)", str(folder)],
                              stdout=subprocess.PIPE, text=True)
    if holder.stdout.readline().strip() != "locked":
        holder.kill()
        raise AssertionError(f"the lock holder did not start (exit {holder.wait()})")
    return holder


def test_a_read_only_output_folder_is_an_input_error(tmp_path, images):
    """Case 6: resuming into a read-only mount (main: a traceback, exit 1)."""
    with tmpfs(tmp_path / "out", "16m") as out:
        assert cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2,
                   "--no-progress").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        proc = cli("batch", listing(tmp_path, images[:2]), "--out", out, "--samples", 2, "--no-progress")
        one_line_error(proc, 3, f"{out}: cannot write in the output folder (Read-only file system)")


def test_a_full_output_folder_records_each_image_once(tmp_path, images):
    """Cases 6 and 15: a disk that fills up while resuming (main: a traceback). Each image that
    cannot get its row is in errors.csv with its own reason, results.csv keeps no half row,
    and the next run, with room again, finishes the rest."""
    with tmpfs(tmp_path / "out", "1m") as out:
        assert cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2,
                   "--no-progress").returncode == 0
        filler = out / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        # a page back: room for the manifest's start-of-run mark (no disk at all is refused at once, exit 3),
        # none for a row (about 13 KB)
        os.truncate(filler, filler.stat().st_size - 4096)
        proc = cli("batch", listing(tmp_path, images), "--out", out, "--samples", 2, "--no-progress")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        done, failed = accounted(out, images)
        assert len(done) == 1 and len(failed) == 4
        assert all(r["Reason"] == f"{r['Image']}: cannot write its row to {out / 'results.csv'} "
                                  "(No space left on device)" for r in failed)
        assert "5 images: 0 done, 1 already in " in proc.stdout and "4 failed" in proc.stdout
        filler.unlink()
        proc = cli("batch", listing(tmp_path, images), "--out", out, "--samples", 2, "--no-progress")
        assert proc.returncode == 0 and "5 images: 4 done, 1 already in " in proc.stdout, proc.stdout + proc.stderr
        assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(images)


def test_a_mask_that_cannot_be_written_fails_its_own_image(tmp_path, images):
    """Case 15: a mask name too long for the file system, in the middle of a chunk (main: blamed
    on the chunk's first image, and another image in neither file)."""
    long_name = str(Path(images[0]).with_name("x" * 245 + ".png"))
    shutil.copy(images[0], long_name)
    chunk = [images[1], long_name, images[2]]
    out = tmp_path / "out"
    proc = cli("batch", listing(tmp_path, chunk), "--out", out, "--samples", 2, "--masks", "--no-progress")
    assert proc.returncode == 1 and "3 images: 2 done, 0 already in " in proc.stdout and "1 failed" in proc.stdout
    done, failed = accounted(out, chunk)
    assert [r["Image"] for r in failed] == [long_name]
    assert "cannot write the mask picture" in failed[0]["Reason"] and "x" * 245 in failed[0]["Reason"]


def test_an_image_that_fails_after_its_pictures_leaves_none_of_them(tmp_path, images, default_segmenter,
                                                                    monkeypatch):
    """On a full disk masks/ kept a partial set (the right lung's PNG alone) of an image whose next mask
    failed, and whole sets of images whose overlay or row could not be written: masks of images in
    errors.csv, with no row, for whatever globs the folder."""
    import errno

    from chexmask_rt import batch_folder, csv_output, overlay

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    stem = {i: Path(i).stem for i in images}
    write_mask, write_picture, append = csv_output.write_bytes_whole, overlay.write_overlay, batch_folder.Appender.write
    monkeypatch.setattr(csv_output, "write_bytes_whole", lambda path, data: full() if path.name == f"{stem[images[1]]}_"
                        "left_lung.png" else write_mask(path, data))
    monkeypatch.setattr(overlay, "write_overlay", lambda path, image, r: full() if r.image == images[2]
                        else write_picture(path, image, r))
    monkeypatch.setattr(batch_folder.Appender, "write", lambda self, row: full() if row.get("Image") == images[3]
                        and self.path.name == "results.csv" else append(self, row))
    out = tmp_path / "out"
    summary = run_batch(default_segmenter, images, out, samples=2, masks=True, overlays="all", progress=False)
    assert summary.failed == 3
    kept = {images[0], images[4]}
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(
        f"{stem[i]}_{organ}.png" for i in kept for organ in ("right_lung", "left_lung", "heart"))
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(f"{stem[i]}.png" for i in kept)
    assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(kept)


def test_resume_compares_the_engine_not_its_name(tmp_path, images):
    """Case 11: another engine with the same name:version (every plain export is hybridgnet:unversioned)."""
    import onnx

    model = onnx.load(str(chexmask_rt.default_model_path()))
    for prop in model.metadata_props:
        if prop.key == "chexmask_rt.description":
            prop.value += " (a retrained copy)"
    other = tmp_path / "other.onnx"
    onnx.save(model, other)
    assert chexmask_rt.load(other).model_id == chexmask_rt.load().model_id
    out = tmp_path / "out"
    assert cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2, "--no-progress").returncode == 0
    proc = cli("batch", listing(tmp_path, images[:2]), "--out", out, "--samples", 2, "--no-progress",
               "--model", other)
    one_line_error(proc, 3, "made with Engine SHA256 '")
    assert len(rows(out / "results.csv")) == 1


@pytest.mark.parametrize("content", [b"name,score\na.png,1\nb.png,2", ",".join(COLUMNS).encode() + b"\n/x.png,1,2"])
def test_a_results_file_the_tool_did_not_write_is_refused_untouched(tmp_path, images, content):
    """Case 13: no final newline, foreign columns or ours (main: its last line deleted, then refused)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_bytes(content)
    proc = cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2, "--no-progress")
    one_line_error(proc, 3, "holds results.csv but no batch.json, so chexmask-rt batch did not write it")
    assert (out / "results.csv").read_bytes() == content
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]  # not even a lock file is left


def test_a_refused_folder_keeps_its_skipped_list_and_gains_none(tmp_path, images):
    """skipped.csv was written before the folder was locked and checked: a refused run replaced a
    running batch's list and left one in a folder it had no business writing to."""
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(images[0], source / Path(images[0]).name)
    (source / "notes.txt").write_text("not an image")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.csv").write_bytes(b"name,score\na.png,1\n")
    proc = cli("batch", source, "--out", foreign, "--samples", 2, "--no-progress")
    one_line_error(proc, 3, "so chexmask-rt batch did not write it")
    assert sorted(p.name for p in foreign.iterdir()) == ["results.csv"]

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "skipped.csv").write_text("File,Reason\n/a/running/batch.txt,its own reason\n")
    holder = hold_lock(busy)
    try:
        proc = cli("batch", source, "--out", busy, "--samples", 2, "--no-progress")
        one_line_error(proc, 3, "in use by another chexmask-rt run")
        assert (busy / "skipped.csv").read_text() == "File,Reason\n/a/running/batch.txt,its own reason\n"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    proc = cli("batch", source, "--out", busy, "--samples", 2, "--no-progress")
    assert proc.returncode == 0 and "1 files skipped" in proc.stderr, proc.stderr
    assert [r["File"] for r in rows(busy / "skipped.csv")] == [str(source / "notes.txt")]


def test_a_second_run_into_a_locked_folder_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path, images):
    """Case 14: two runs into one --out (main: 80 rows for 40 images). The holder is killed with
    SIGKILL: the kernel drops its flock, so the next run goes ahead."""
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(out)
    try:
        proc = cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2, "--no-progress")
        one_line_error(proc, 3, f"{out}: in use by another chexmask-rt run (pid {holder.pid} on ")
        assert not (out / "results.csv").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    proc = cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (out / ".chexmask-rt.lock").exists()  # the file stays; only a live process holds its lock


def test_two_runs_started_together_write_each_image_once(tmp_path, images):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "chexmask_rt", "batch", str(listing(tmp_path, images[:3])), "--out", str(out),
            "--samples", "2", "--no-progress"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(run.wait() for run in runs)
    assert codes in ([0, 0], [0, 3]), [run.stderr.read() for run in runs]
    assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(images[:3])


def test_resume_tolerates_duplicate_rows(tmp_path, images):
    out = tmp_path / "out"
    assert cli("batch", listing(tmp_path, images[:2]), "--out", out, "--samples", 2, "--no-progress").returncode == 0
    text = (out / "results.csv").read_text()
    (out / "results.csv").write_text(text + text.split("\n", 1)[1])  # both rows again, as two racing runs left them
    proc = cli("batch", listing(tmp_path, images[:3]), "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 0 and "3 images: 1 done, 2 already in " in proc.stdout, proc.stdout + proc.stderr


def test_the_output_folder_is_never_an_input(tmp_path, images):
    """Case 16: --out inside the input folder, with --masks (main: each rerun segmented its own masks)."""
    folder = Path(images[0]).parent
    out = folder / "results"
    for _ in range(2):
        proc = cli("batch", folder, "--out", out, "--samples", 2, "--masks", "--no-progress")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 images: 0 done, 5 already in " in proc.stdout
    assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(images)
    # named in a list, an image inside the output folder is refused, not segmented
    mask = next((out / "masks").iterdir())
    proc = cli("batch", listing(tmp_path, [str(mask), images[0]]), "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 1
    assert rows(out / "errors.csv")[0]["Reason"] == f"{mask}: inside the output folder {out}, which is never an input"
    # a list of nothing but such images is refused before the folder is touched, as a folder INPUT is: the
    # lock and the CSVs landed among the images, and later folder runs passed them over as an output folder
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(images[0], scans / "x.png")
    (scans / "todo.txt").write_text("x.png\n")
    proc = cli("batch", scans / "todo.txt", "--out", scans, "--samples", 2, "--no-progress")
    assert proc.returncode == 3 and "holds every image" in proc.stderr and "never an input" in proc.stderr
    assert sorted(p.name for p in scans.iterdir()) == ["todo.txt", "x.png"]


NAMES = ["line\u2028separator.png", "form\x0cfeed.png", "trailing space .png", " leading.png", "tab\there.png"]


def test_list_files_keep_every_legal_name(tmp_path, images):
    """Case 17 (main: split at U+2028 and form feeds, spaces stripped, quoted CSV newlines joined)."""
    folder = tmp_path / "names"
    folder.mkdir()
    for name in [*NAMES, "new\nline.png"]:
        shutil.copy(images[0], folder / name)
    (folder / "list.txt").write_bytes("\n".join(NAMES).encode() + b"\n")
    assert collect_inputs(folder / "list.txt") == [str(folder / n) for n in NAMES]
    with open(folder / "list.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path"], *([n] for n in [*NAMES, "new\nline.png"])])
    found = collect_inputs(folder / "list.csv")
    assert found == [str(folder / n) for n in [*NAMES, "new\nline.png"]]
    assert all(Path(p).is_file() for p in found)
    (folder / "crlf.txt").write_bytes(b"trailing space .png\r\nform\x0cfeed.png\r\n")  # a list saved on Windows
    assert collect_inputs(folder / "crlf.txt") == [str(folder / NAMES[2]), str(folder / NAMES[1])]


def test_a_csv_name_starting_with_a_hash_is_an_image_not_a_comment(tmp_path, images):
    """A CSV cell "#1.png" was dropped as a comment: the batch said "1 images: 1 done", exit 0, and the
    image was in neither results.csv, errors.csv nor skipped.csv. In a text list '#' starts a comment, and
    ./#1.png names the file."""
    folder = tmp_path / "hash"
    folder.mkdir()
    for name in ("#1.png", "ok.png"):
        shutil.copy(images[0], folder / name)
    with open(folder / "list.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path"], ["#1.png"], ["ok.png"]])
    assert collect_inputs(folder / "list.csv") == [str(folder / "#1.png"), str(folder / "ok.png")]
    (folder / "list.txt").write_text("# the archive's list\n#1.png\n./#1.png\nok.png\n")
    assert collect_inputs(folder / "list.txt") == [str(folder / "./#1.png"), str(folder / "ok.png")]


@pytest.mark.parametrize("header", ["Image Index", "filename", "File_Name", "image_path"])
def test_a_csv_lists_usual_image_column_headers_are_headers(tmp_path, header):
    """NIH ChestX-ray14's Data_Entry CSV names its column 'Image Index': the header was taken for an image
    ("Image Index: no such file" in errors.csv, exit 1 on a run with no real failure)."""
    with open(tmp_path / "list.csv", "w", newline="") as f:
        csv.writer(f).writerows([["Finding Labels", header], ["No Finding", "00000001_000.png"]])
    assert collect_inputs(tmp_path / "list.csv") == [str(tmp_path / "00000001_000.png")]


def test_a_csv_list_with_a_cell_past_the_csv_modules_limit_is_one_line(tmp_path):
    """A report column of 200,000 characters ended batch with the csv module's traceback (exit 1)."""
    with open(tmp_path / "list.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "report"], ["a.png", "x" * 200_000]])
    proc = cli("batch", tmp_path / "list.csv", "--out", tmp_path / "out", "--no-progress")
    one_line_error(proc, 3, f"{tmp_path / 'list.csv'}: cannot read the image list as CSV (line 2: field larger")
    assert not (tmp_path / "out").exists()


def test_resume_repairs_a_cut_inside_the_header(tmp_path, images):
    """Case 18 (main: the first rerun failed with 'other columns')."""
    out = tmp_path / "out"
    assert cli("batch", listing(tmp_path, images[:2]), "--out", out, "--samples", 2, "--no-progress").returncode == 0
    data = (out / "results.csv").read_bytes()
    for cut in (0, 1, 30, data.index(b"\n")):  # nothing, inside the header, and just before its newline
        (out / "results.csv").write_bytes(data[:cut])
        proc = cli("batch", listing(tmp_path, images[:2]), "--out", out, "--samples", 2, "--no-progress")
        assert proc.returncode == 0 and "2 images: 2 done, 0 already in " in proc.stdout, proc.stdout + proc.stderr
        assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(images[:2])


def test_resume_repairs_a_cut_after_a_newline_inside_a_quoted_path(tmp_path, images):
    """Case 18 (main: refused for good, 'made with Samples None')."""
    quoted = str(Path(images[0]).with_name("two\nlines.png"))
    shutil.copy(images[0], quoted)
    listed = tmp_path / "list.csv"
    with open(listed, "w", newline="") as f:
        csv.writer(f).writerows([["path"], [images[1]], [quoted]])
    out = tmp_path / "out"
    assert cli("batch", listed, "--out", out, "--samples", 2, "--no-progress", "--workers", 1).returncode == 0
    data = (out / "results.csv").read_bytes()
    at = data.index(b"two\n") + len(b"two\n")
    # rows are written as decodes finish, so the quoted one may come first: then a cut inside it is
    # also a cut before the other row (CI once found it first)
    quoted_first = rows(out / "results.csv")[0]["Image"] == quoted
    for cut in (at, at + 3, len(data) - 1):
        (out / "results.csv").write_bytes(data[:cut])
        proc = cli("batch", listed, "--out", out, "--samples", 2, "--no-progress")
        kept = 0 if quoted_first and cut < len(data) - 1 else 1
        assert proc.returncode == 0 and f"{2 - kept} done, {kept} already in " in proc.stdout, proc.stdout + proc.stderr
        assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted([images[1], quoted])


def test_resume_memory_does_not_grow_with_the_file(tmp_path):
    """Case 19: a 40 MB results file of 400 long rows is scanned in a few hundred kB of Python
    memory (main read and parsed it whole: 1.09 GB for a 944 MB file). Not a timing: the peak of
    tracemalloc, which counts every allocation the scan makes."""
    path = tmp_path / "results.csv"
    names = [f"/archive/image_{i:05d}.png" for i in range(400)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for name in names:  # RLE columns of a large image: about 100 kB per row
            row = [name, "1.0,2.0" * 60, "0.5,0.5" * 60, "1 2 " * 8000, "3 4 " * 8000, "5 6 " * 8000,
                   "3000", "3000", "1", "0.1", "False", "", "50", "0", "m:1", "pooled"]
            writer.writerow(row + [""] * (len(COLUMNS) - len(row)))  # the later schemas' columns empty
    assert path.stat().st_size > 35e6
    tracemalloc.start()
    try:
        done, whole = scan_results(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done == set(names) and whole == path.stat().st_size
    assert peak < 2e6, f"the scan peaked at {peak / 1e6:.1f} MB of Python memory"


def test_an_image_gets_its_own_answer_in_any_chunk(tmp_path, images, default_segmenter):
    """On the CPU each image of a chunk is its own engine call (images_per_call 0, the measured
    fastest), so an image alone and in a chunk of 8 get bit-identical answers, also through `batch`."""
    alone = default_segmenter.predict_batch(images, samples=4, batch_size=1)
    together = default_segmenter.predict_batch(images, samples=4, batch_size=8)
    for a, b in zip(alone, together):
        for field in ("landmarks", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    rows_of = {}
    for size in (1, 8):
        assert run_batch(default_segmenter, images, tmp_path / f"b{size}", samples=4, batch_size=size,
                         progress=False).done == 5
        rows_of[size] = {r["Image"]: r for r in rows(tmp_path / f"b{size}" / "results.csv")}
    assert rows_of[1] == rows_of[8] and len(rows_of[1]) == 5


def test_one_engine_call_per_chunk_agrees_within_a_thousandth_of_a_pixel(images, default_segmenter):
    """images_per_call=8 makes the chunk one engine call, whose batched convolutions sum in another
    order. The rounding happens in the engine's frame, so the README's bound is in the 1024 frame:
    on 2000-px radiographs it was 1.4e-3 image pixels (7e-4 in the 1024 frame)."""
    hannover = sorted((SHARED / "data" / "real_cc_by" / "hannover_2000").glob("*.jpg"))[:3]
    chunk = images + [str(p) for p in hannover]
    joint = chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(images_per_call=8))
    alone = default_segmenter.predict_batch(chunk, samples=4, batch_size=1)
    together = joint.predict_batch(chunk, samples=4, batch_size=8)
    assert any(not np.array_equal(a.landmarks, b.landmarks) for a, b in zip(alone, together))  # one call indeed
    assert max(a.width for a in alone) >= 2000
    for a, b in zip(alone, together):
        to_1024 = 1024 / max(a.height, a.width)
        for field in ("landmarks", "landmarks_std", "landmarks_mu"):
            np.testing.assert_allclose(getattr(a, field) * to_1024, getattr(b, field) * to_1024, atol=1e-3, rtol=0,
                                       err_msg=field)


def test_images_per_call_is_checked():
    with pytest.raises(ModelError, match="images_per_call"):
        chexmask_rt.load(engine_options=chexmask_rt.EngineOptions(images_per_call=-2))


def test_batch_records_its_run(tmp_path, images, default_segmenter):
    assert run_batch(default_segmenter, images, tmp_path / "b1", samples=4, progress=False).done == 5
    manifest = json.loads((tmp_path / "b1" / "batch.json").read_text())
    assert manifest["Engine SHA256"] == default_segmenter.engine_sha256 and manifest["Samples"] == "4"


def test_an_older_release_folder_of_another_model_is_refused_untouched(tmp_path, default_segmenter):
    """A folder of 0.1.0 (schema-1 header, no batch.json) resumes only when its rows were made with
    this run's model and settings; otherwise it is refused and not one byte changes."""
    from chexmask_rt.csv_output import COLUMNS_V1

    image = sorted(IMAGES.glob("*.jpg"))[0]
    out = tmp_path / "out"
    out.mkdir()
    row = dict.fromkeys(COLUMNS_V1, "") | {"Image": "/elsewhere/a.png", "Model": "other:1", "Samples": "4",
                                            "Seed": "0", "Second Look": "pooled"}
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS_V1), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
        f.write("/elsewhere/b.png,1.0")  # and a row a kill cut short
    before = (out / "results.csv").read_bytes()
    elsewhere = tmp_path / "elsewhere.txt"  # the upgrade's temporary name, linked: written through once
    elsewhere.write_text("keep\n")
    (out / "results.csv.upgrade").symlink_to(elsewhere)
    with pytest.raises(InputError, match="made with Model 'other:1'"):
        run_batch(default_segmenter, [str(image)], out, samples=4, progress=False)
    assert (out / "results.csv").read_bytes() == before and elsewhere.read_text() == "keep\n"
    assert not (out / "batch.json").exists() and not (out / "results.csv.upgrade").exists()


def test_ctrl_c_while_the_command_line_is_built_is_one_line(monkeypatch, capsys):
    """The parser is built (and the export plugin listed) before any work; a Ctrl-C then gave a traceback."""
    from chexmask_rt import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["batch", "in", "--out", "out"]) == 130
    assert capsys.readouterr().err == "chexmask-rt: interrupted\n"


def test_sigterm_while_the_command_line_is_built_exits_143(monkeypatch, capsys):
    """A scheduler's stop in the first half second (the parser being built) said "interrupted", exit 130,
    as for Ctrl-C, where a job's log should read 143, terminated."""
    from chexmask_rt import cli

    def stopped():
        os.kill(os.getpid(), signal.SIGTERM)  # main's handler raises at the next bytecode
        time.sleep(30)

    monkeypatch.setattr(cli, "build_parser", stopped)
    assert cli.main(["batch", "in", "--out", "out"]) == 143
    assert capsys.readouterr().err == "chexmask-rt: terminated\n"


def test_sigterm_while_ray_starts_is_a_termination_and_stops_ray(monkeypatch):
    """ray.init sets its own SIGTERM handler (sys.exit(15)) early on: a stop while Ray started (6-11 s on
    2 cores) ended the run with exit 15, nothing said, and Ray's daemons left running for minutes."""
    import ray
    from chexmask_rt.errors import Terminated
    from chexmask_rt.ray_batch import _init_ray

    def ours(signum, frame):
        raise AssertionError("our handler is restored only after ray.init")

    def init_as_ray_does(**kwargs):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # ray._private.worker's
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    stopped = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init_as_ray_does)
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))
    before = signal.signal(signal.SIGTERM, ours)
    try:
        with pytest.raises(Terminated):
            _init_ray("local", 1)
        assert signal.getsignal(signal.SIGTERM) is ours and stopped == [True]
    finally:
        signal.signal(signal.SIGTERM, before)


CTRL_C_WHILE_NUMPY_LOADS = """
import sys

class Interrupting:  # a Ctrl-C that lands while numpy loads, the first ~0.1 s of every command
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["chexmask-rt", "predict", sys.argv[1]]
from chexmask_rt.cli import main
sys.exit(main())
"""


def test_ctrl_c_while_the_command_starts_is_one_line(example1):
    """The package imported numpy and the core before the command's handler was in place: a Ctrl-C in
    its first ~0.1 s printed Python's traceback (exit 1)."""
    proc = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_NUMPY_LOADS, str(example1)], capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (130, "chexmask-rt: interrupted\n"), proc.stderr[-2000:]


def test_the_command_line_does_not_import_torch():
    """Listing the export plugin imported torch: a second on every predict and batch, and a wide window
    in which Ctrl-C gave a traceback."""
    code = "import sys; from chexmask_rt.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=REPO).stdout.strip() == "False"


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_says_how_to_resume_and_the_rerun_completes(tmp_path, sig, code, word):
    """SIGTERM (a SLURM time limit, scancel, a pod's end) ended a run silently with 143; a stopped run
    said nothing of what it had done (a finished one prints its summary)."""
    small = next(p for p in IMAGES.iterdir() if p.name.startswith("nih_"))
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):
        shutil.copy(small, folder / f"im{i:02d}.png")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "chexmask_rt", "batch", str(folder), "--out", str(out), "--samples", "4",
            "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not ((out / "results.csv").exists() and rows(out / "results.csv")):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == f"chexmask-rt: {word} (rerun the same command to resume)"
    account = stderr.strip().splitlines()[-2]
    done = len(rows(out / "results.csv"))
    assert account.startswith(f"batch: stopped after {done} of the 40 images to do: {done} done, 0 failed, "
                              f"{40 - done} not started; {done} in {out / 'results.csv'}"), account
    assert json.loads((out / "batch.json").read_text())["Finished"] is False  # merge names such a folder
    rerun = subprocess.run(args, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    accounted(out, [str(p) for p in sorted(folder.iterdir())])
    assert json.loads((out / "batch.json").read_text())["Finished"] is True


def test_a_name_holding_a_carriage_return_keeps_every_csv_readable(tmp_path, images):
    """csv's writer quoted only its own line terminator ("\\n"), so a name holding a bare CR went into
    results.csv unquoted: csv readers split the row there, the next run refused the folder as "changed
    by something other than chexmask-rt batch", and merge dropped the row without a word."""
    folder = tmp_path / "in"
    folder.mkdir()
    odd = folder / "cr\rname.png"
    shutil.copy(images[0], odd)
    shutil.copy(images[1], folder / "plain.png")
    (folder / "not\rimage.txt").write_text("x")  # skipped.csv names it
    out = tmp_path / "out"
    first = cli("batch", folder, "--out", out, "--samples", 2, "--no-progress")
    assert first.returncode == 0, first.stderr
    again = cli("batch", folder, "--out", out, "--samples", 2, "--no-progress")
    assert again.returncode == 0 and "0 done, 2 already in " in again.stdout, again.stdout + again.stderr
    assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted([str(odd), str(folder / "plain.png")])
    assert [r["File"] for r in rows(out / "skipped.csv")] == [str(folder / "not\rimage.txt")]
    merged = cli("merge", "--out", tmp_path / "all", out)
    assert merged.returncode == 0, merged.stderr
    assert sorted(r["Image"] for r in rows(tmp_path / "all" / "results.csv")) == sorted(
        r["Image"] for r in rows(out / "results.csv"))
    predicted = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(odd), "--samples", "2", "--csv",
                                "-"], capture_output=True)  # bytes: text mode would turn the CR into "\n"
    assert predicted.returncode == 0, predicted.stderr
    parsed = list(csv.reader(predicted.stdout.decode().split("\n")[:-1]))
    assert len(parsed) == 2 and len(parsed[0]) == len(parsed[1]) == len(COLUMNS) and parsed[1][0] == str(odd)


def test_pictures_of_same_named_images_from_another_input_keep_their_own_names(tmp_path, images):
    """One --out may collect several INPUTs: a second INPUT's x.png replaced the first one's masks, whose
    row then pointed at another image's pictures."""
    import cv2

    out = tmp_path / "out"
    sites = []
    for site, source in (("siteA", images[0]), ("siteB", images[1])):
        (tmp_path / site).mkdir()
        sites.append(str(shutil.copy(source, tmp_path / site / "x.png")))
    first = cli("batch", tmp_path / "siteA", "--out", out, "--samples", 2, "--masks", "--no-progress")
    assert first.returncode == 0, first.stderr
    heart_a = (out / "masks" / "x_heart.png").read_bytes()
    second = cli("batch", tmp_path / "siteB", "--out", out, "--samples", 2, "--masks", "--no-progress")
    assert second.returncode == 0, second.stderr
    assert (out / "masks" / "x_heart.png").read_bytes() == heart_a
    hashed = [p for p in (out / "masks").glob("x_*_heart.png")]
    assert len(hashed) == 1 and hashed[0].name == f"{mask_stems([sites[1]], earlier=[sites[0]])[sites[1]]}_heart.png"
    assert cv2.imread(str(hashed[0]), cv2.IMREAD_GRAYSCALE).shape == cv2.imread(sites[1], cv2.IMREAD_GRAYSCALE).shape
    assert sorted(r["Image"] for r in rows(out / "results.csv")) == sorted(sites)


def test_same_named_images_whose_names_are_not_utf8(tmp_path, images):
    """Their short hash encoded the name as UTF-8: predict and batch crashed with a traceback, and every
    resume crashed again."""
    root = os.fsencode(tmp_path)
    paths = []
    for site in (b"a", b"b"):
        os.makedirs(root + b"/in/" + site)
        paths.append(os.fsdecode(root + b"/in/" + site + b"/\xff.png"))
        shutil.copy(images[0], paths[-1])
    stems = mask_stems(paths)
    assert len(set(stems.values())) == 2 and all(s.startswith("\udcff_") for s in stems.values())
    proc = cli("batch", os.fsdecode(root + b"/in"), "--out", tmp_path / "out", "--samples", 2, "--masks",
               "--no-progress")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 6


def test_dicom_files_named_by_uid_keep_their_whole_name_in_their_pictures(tmp_path):
    """PACS exports name files by UID: '1.2.826.0.1.3680043.8.498.101' and '...498.102' both lost their last
    component as a suffix, became one stem, and got hashed names no column maps back to a file."""
    folder = tmp_path / "export"
    folder.mkdir()
    uids = ["1.2.826.0.1.3680043.8.498.101", "1.2.826.0.1.3680043.8.498.102"]
    for uid in uids:
        shutil.copy(SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm", folder / uid)
    assert mask_stems([str(folder / u) for u in uids]) == {str(folder / u): u for u in uids}
    assert mask_stems([str(folder / "a.png"), str(folder / "b.DCM"), str(folder / "c.v2.tiff")]) == \
        {str(folder / "a.png"): "a", str(folder / "b.DCM"): "b", str(folder / "c.v2.tiff"): "c.v2"}
    proc = cli("batch", folder, "--out", tmp_path / "out", "--samples", 2, "--masks", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == \
        sorted(f"{u}_{organ}.png" for u in uids for organ in ("heart", "left_lung", "right_lung"))


def test_a_hashed_name_never_meets_another_images_own_name(tmp_path, images):
    """Two a.png get a_<hash>; a third file named a_<that hash>.png kept its own name, and batch wrote
    two images' masks and overlays to one name (exit 0, 3 rows, 2 sets of pictures)."""
    import hashlib

    for site in ("d1", "d2"):
        (tmp_path / "in" / site).mkdir(parents=True)
        shutil.copy(images[0], tmp_path / "in" / site / "a.png")
    first = str(tmp_path / "in" / "d1" / "a.png")
    mimic = tmp_path / "in" / f"a_{hashlib.sha1(os.fsencode(first)).hexdigest()[:8]}.png"
    shutil.copy(images[1], mimic)
    stems = mask_stems([first, str(tmp_path / "in" / "d2" / "a.png"), str(mimic)])
    assert len(set(stems.values())) == 3
    assert mask_stems([first, str(mimic)], earlier=[str(tmp_path / "in" / "d2" / "a.png")]) == \
        {k: stems[k] for k in (first, str(mimic))}  # a resumed run names them alike
    proc = cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--samples", 2, "--masks", "--overlays", "all",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 9
    assert len(list((tmp_path / "out" / "overlays").iterdir())) == 3


def test_names_numbered_after_the_longest_hash_are_still_free():
    """Files named like x/a.png's 8-, 16- and 40-digit hashed names pushed it to a_<40 hex>_2, which a
    fourth file had: two images, one name."""
    import hashlib

    first, second = "x/a.png", "y/a.png"
    digest = hashlib.sha1(first.encode()).hexdigest()
    mimics = [f"m/a_{digest[:8]}.png", f"m/a_{digest[:16]}.png", f"n/a_{digest}.png", f"m/a_{digest}_2.png"]
    stems = mask_stems([first, second, *mimics])
    assert len(set(stems.values())) == len(stems) == 6


@pytest.mark.parametrize("name", [".chexmask-rt.lock", "results.csv", "errors.csv"])
def test_a_link_where_the_batch_writes_its_own_file_is_refused(tmp_path, images, name):
    """The lock, results.csv and errors.csv were opened through a link planted in --out: the file it
    pointed to was truncated and overwritten (the lock's even in a folder then refused)."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone else's file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(elsewhere)
    proc = cli("batch", listing(tmp_path, images[:1]), "--out", out, "--samples", 2, "--no-progress")
    assert proc.returncode == 3 and "a symbolic link where the batch writes its own file" in proc.stderr, proc.stderr
    assert elsewhere.read_text() == "someone else's file\n"


def test_a_stopped_resumed_run_counts_the_images_done_before():
    from chexmask_rt.batch import BatchSummary

    s = BatchSummary(total=10, done=2, skipped=5, failed=1, seconds=0.0)
    assert s.stopped_text(Path("out")) == ("stopped after 3 of the 5 images to do: 2 done, 1 failed, 2 not started; "
                                           f"7 in {Path('out') / 'results.csv'}")


def test_a_hashed_name_never_meets_an_earlier_runs_picture():
    import hashlib

    first, second = "in/d1/a.png", "in/d2/a.png"
    earlier = f"in/a_{hashlib.sha1(first.encode()).hexdigest()[:8]}.png"  # done before: its pictures have this name
    stems = mask_stems([first, second], earlier=[earlier])
    assert Path(earlier).stem not in stems.values() and len(set(stems.values())) == 2


def test_numbered_names_skip_every_taken_number():
    import hashlib

    digest = hashlib.sha1(b"x/a.png").hexdigest()
    mimics = [f"m/a_{digest[:8]}.png", f"m/a_{digest[:16]}.png", f"n/a_{digest}.png", f"m/a_{digest}_2.png",
              f"m/a_{digest}_3.png"]
    stems = mask_stems(["x/a.png", "y/a.png", *mimics])
    assert len(set(stems.values())) == len(stems) == 7


def test_the_summary_counts_several_repeated_entries_in_the_plural():
    from chexmask_rt.batch import BatchSummary

    summary = BatchSummary(total=2, done=2, skipped=0, failed=0, seconds=1.0, repeats=2)
    assert summary.text(Path("out")).startswith("2 images (2 repeated entries left out): ")


KILLED_BY_ONE_IMAGE = """
import os, signal, sys
import chexmask_rt
from chexmask_rt import batch

decode = batch.decode_gray
def deadly(image, max_pixels):  # stands for an image whose work the out-of-memory killer ends
    if "killer" in image:
        os.kill(os.getpid(), signal.SIGKILL)
    return decode(image, max_pixels)
batch.decode_gray = deadly
summary = batch.run_batch(chexmask_rt.load(), sys.argv[2:], sys.argv[1], samples=2, workers=2, progress=False)
print(summary.done, summary.failed)
"""


def test_an_image_that_kills_the_run_is_named_not_retried_for_ever(tmp_path, images):
    """A container's memory limit kills the process without a word: every restart tried the image that
    killed it again and died on it, and errors.csv never named it. The next run tries what a killed run
    had in work one at a time; a run killed with one image alone in work records it and goes on."""
    killer = tmp_path / "images" / "killer.png"
    shutil.copy(images[0], killer)
    listed = [*images[:2], str(killer), *images[2:]]
    out = tmp_path / "out"

    def run():
        return subprocess.run([sys.executable, "-c", KILLED_BY_ONE_IMAGE, str(out), *listed], capture_output=True,
                              text=True, timeout=300)

    first = run()  # killed with the killer among the images in work
    assert first.returncode == -9 and str(killer) in json.loads((out / "in-work.json").read_text())["images"]
    second = run()  # tries those images first, each alone: killed with the killer alone
    assert second.returncode == -9
    assert json.loads((out / "in-work.json").read_text()) == {"alone": True, "images": [str(killer)]}
    third = run()  # names it and does the rest
    assert third.returncode == 0 and third.stdout.split()[-1] == "1", third.stderr
    with open(out / "errors.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["Image"] == str(killer) and row["Error"] == "RunKilled" and "only one in work" in row["Reason"]
    with open(out / "results.csv", newline="") as f:
        assert sorted(r["Image"] for r in csv.DictReader(f)) == sorted(images)
    assert not (out / "in-work.json").exists()  # a run that ends as Python sees it leaves none


def test_a_folder_of_the_release_before_resumes_into_the_bit_depth_column(tmp_path, images, default_segmenter):
    """Results schema 3 appends Bit Depth: a schema-2 folder (the release before) is rewritten to the new
    columns and resumed, its rows keeping their schema number with the new cell empty."""
    from chexmask_rt.batch import run_batch
    from chexmask_rt.csv_output import COLUMNS_V2, SCHEMA_VERSION

    out = tmp_path / "out"
    run_batch(default_segmenter, images[:1], out, samples=2, progress=False)
    with open(out / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    older = io.StringIO()
    writer = csv.DictWriter(older, fieldnames=COLUMNS_V2, lineterminator="\n")
    writer.writeheader()
    writer.writerow({**{c: row[c] for c in COLUMNS_V2}, "Results Schema": "2"})
    (out / "results.csv").write_text(older.getvalue())
    summary = run_batch(default_segmenter, images[:2], out, samples=2, progress=False)
    assert (summary.done, summary.skipped) == (1, 1)
    with open(out / "results.csv", newline="") as f:
        rows = {r["Image"]: r for r in csv.DictReader(f)}
    assert (rows[images[0]]["Results Schema"], rows[images[0]]["Bit Depth"]) == ("2", "")
    assert (rows[images[1]]["Results Schema"], rows[images[1]]["Bit Depth"]) == (str(SCHEMA_VERSION), "8")


def _resumable(tmp_path, default_segmenter, done, left):
    """An output folder where a run did ``done`` and a killed run left ``left`` as its in-work.json."""
    out = tmp_path / "out"
    run_batch(default_segmenter, done, out, samples=2, workers=1, progress=False)
    (out / "in-work.json").write_text(left if isinstance(left, str) else json.dumps(left))
    return out


def test_an_image_a_killed_run_had_in_work_among_others_is_tried_again_once(tmp_path, images, default_segmenter):
    """Only an image alone in work when a run was killed is named; one in work among others is tried first,
    alone, and not again with the rest (one row each)."""
    out = _resumable(tmp_path, default_segmenter, images[4:], {"alone": False, "images": [images[1]]})
    run_batch(default_segmenter, images, out, samples=2, workers=1, progress=False)
    done, failed = accounted(out, images)
    assert failed == [] and not (out / "in-work.json").exists()


def test_what_a_killed_run_had_in_work_outside_this_run_is_left_alone(tmp_path, images, default_segmenter):
    """The in-work file names images of the folder's run; one this run does not have is neither named
    in errors.csv nor tried."""
    elsewhere = str(tmp_path / "elsewhere.png")
    for alone in (True, False):
        out = _resumable(tmp_path / str(alone), default_segmenter, images[4:], {"alone": alone, "images": [elsewhere]})
        run_batch(default_segmenter, images, out, samples=2, workers=1, progress=False)
        assert accounted(out, images)[1] == []


def test_an_in_work_file_cut_short_is_no_account(tmp_path, images, default_segmenter):
    out = _resumable(tmp_path, default_segmenter, images[4:], '{"alone": true, "images": ["')
    run_batch(default_segmenter, images, out, samples=2, workers=1, progress=False)
    assert accounted(out, images)[1] == []


def test_in_work_names_only_the_images_in_work(tmp_path, images, default_segmenter, monkeypatch):
    """What in-work.json says as each decode starts: a suspect alone, then only what is in work (not an
    image finished or failed, nor 'alone' after the suspects)."""
    from chexmask_rt import batch

    out = _resumable(tmp_path, default_segmenter, images[4:], {"alone": False, "images": [images[0]]})
    seen, decode = {}, batch.decode_gray

    def spy(image, max_pixels):
        seen[image] = json.loads((out / "in-work.json").read_text())
        return decode(image, max_pixels)

    monkeypatch.setattr(batch, "decode_gray", spy)
    gone = str(tmp_path / "images" / "gone.png")  # fails as it is decoded
    run_batch(default_segmenter, [gone, *images], out, samples=2, workers=1, batch_size=1, progress=False)
    assert seen[images[0]] == {"alone": True, "images": [images[0]]}
    last = seen[images[3]]  # one decode thread: everything submitted 3 (the window) before it is done
    assert last["alone"] is False and images[3] in last["images"]
    assert gone not in last["images"] and images[0] not in last["images"]
    assert not (out / "in-work.json").exists()


def test_an_in_work_file_that_cannot_be_updated_is_removed_not_left_stale(tmp_path, monkeypatch):
    from chexmask_rt import in_work

    work = in_work.InWork(tmp_path)
    work.only("a.png")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(in_work, "write_text_whole", full)
    work.discard("a.png")
    assert not (tmp_path / "in-work.json").exists()  # a stale one would name a.png as the killer


def test_a_killed_runs_account_holds_however_the_rerun_spells_input(tmp_path, images, default_segmenter,
                                                                    monkeypatch):
    """Resume matches images however INPUT is spelled; the in-work account matched names as written, so a
    rerun that spelled the folder otherwise lost it and died on the image once more."""
    killed = str(Path(images[2]).resolve())
    out = _resumable(tmp_path, default_segmenter, images[4:], {"alone": True, "images": [killed]})
    monkeypatch.chdir(tmp_path)
    relative = [os.path.relpath(i, tmp_path) for i in images]  # "images/...": another spelling
    run_batch(default_segmenter, relative, out, samples=2, workers=1, progress=False)
    with open(out / "errors.csv", newline="") as f:
        assert [(r["Image"], r["Error"]) for r in csv.DictReader(f)] == [(relative[2], "RunKilled")]
