"""batch --shard I/N and merge: deterministic shards, a merge equal to the unsharded run, refusals."""
import csv
import json
import os
import random
import shutil

import numpy as np
import pytest

from chexmask_rt.csv_output import parse_coords
from chexmask_rt.errors import InputError
from chexmask_rt.merge import merge_folders
from chexmask_rt.shards import Shard, shard_key, shard_of

from conftest import SHARED, write_results
from test_batch import cli, rows


@pytest.fixture()
def archive(tmp_path, shared_images):
    """Five radiographs and a DICOM named like a PACS export, in two folders."""
    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    for p in shared_images:
        shutil.copy(p, root / p.name)
    shutil.copy(SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm", root / "sub" / "IM00001")
    return root


@pytest.mark.parametrize("text", ["1", "3/3", "-1/2", "a/b", "1/0", "0/-2"])
def test_bad_shard_arguments_are_usage_errors(text, tmp_path):
    with pytest.raises(InputError):
        Shard.parse(text)
    proc = cli("batch", tmp_path, "--out", tmp_path / "o", "--shard", text)
    assert proc.returncode == 2 and "--shard" in proc.stderr and "Traceback" not in proc.stderr


def test_shards_partition_by_relative_path_not_by_position(tmp_path):
    names = [f"p{i // 100}/s{i % 7}/IM{i:05d}" for i in range(2000)]
    root_a, root_b = tmp_path / "mnt" / "a", tmp_path / "data"
    in_a = [str(root_a / n) for n in names]
    parts = [Shard(i, 4).select(in_a, root_a) for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(in_a)  # every image in exactly one shard
    assert all(400 < len(p) < 600 for p in parts)  # and the shards are about even
    shuffled = random.Random(0).sample(in_a, len(in_a))
    assert [sorted(Shard(i, 4).select(shuffled, root_a)) for i in range(4)] == [sorted(p) for p in parts]
    # the same tree mounted elsewhere (another node) splits the same way
    in_b = [str(root_b / n) for n in names]
    assert [[shard_key(x, root_b) for x in Shard(i, 4).select(in_b, root_b)] for i in range(4)] == \
        [[shard_key(x, root_a) for x in p] for p in parts]
    # adding images elsewhere in the tree moves none of the others
    more = in_a + [str(root_a / "new" / f"x{i}.png") for i in range(500)]
    assert [[x for x in Shard(i, 4).select(more, root_a) if x in set(in_a)] for i in range(4)] == parts
    assert shard_key(str(root_a / "p1" / "x.png"), root_a) == "p1/x.png"
    assert shard_of("/elsewhere/x.png", root_a, 4) == shard_of("/elsewhere/x.png", root_b, 4)


def test_sharded_runs_merge_into_the_unsharded_run(tmp_path, archive):
    whole = tmp_path / "whole"
    assert cli("batch", archive, "--out", whole, "--samples", 4, "--single-look", "--no-progress").returncode == 0
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, folder in enumerate(shards):
        proc = cli("batch", archive, "--out", folder, "--samples", 4, "--single-look", "--no-progress", "--shard", f"{i}/3")
        assert proc.returncode == 0, proc.stderr
        assert json.loads((folder / "batch.json").read_text())["Shard"] == f"{i}/3"
    assert sum(len(rows(f / "results.csv")) for f in shards) == 6
    proc = cli("merge", *shards, "--out", tmp_path / "all")
    assert proc.returncode == 0, proc.stderr
    assert "6 results -> " in proc.stdout and "0 duplicates dropped, 0 errors -> " in proc.stdout
    merged = {r["Image"]: r for r in rows(tmp_path / "all" / "results.csv")}
    reference = {r["Image"]: r for r in rows(whole / "results.csv")}
    assert set(merged) == set(reference) and str(archive / "sub" / "IM00001") in merged
    for image, r in merged.items():  # other chunks of images: the third decimal may move
        ref = reference[image]
        for column in ("Landmarks (Mean)", "Landmarks (Std)"):
            np.testing.assert_allclose(parse_coords(r[column]), parse_coords(ref[column]), atol=1e-3)
        assert {k: r[k] for k in ("Height", "Width", "Samples", "Seed", "Model", "Second Look")} == \
            {k: ref[k] for k in ("Height", "Width", "Samples", "Seed", "Model", "Second Look")}
    record = json.loads((tmp_path / "all" / "batch.json").read_text())
    assert record["Shard"] == "merged" and record["Samples"] == "4"
    # overlapping folders: each image once
    proc = cli("merge", shards[0], whole, "--out", tmp_path / "again")
    assert proc.returncode == 0 and len(rows(tmp_path / "again" / "results.csv")) == 6
    assert f"{len(rows(shards[0] / 'results.csv'))} duplicates dropped" in proc.stdout


def _fake_folder(folder, images, seed="0", model="chexmask-rt-default:6", sha="a" * 64, shard=None, errors=()):
    """A batch output folder with hand-made rows (merge reads rows as text)."""
    from chexmask_rt.csv_output import COLUMNS

    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for image in images:
            w.writerow({c: "" for c in COLUMNS} | {"Image": image, "Samples": "4", "Seed": seed, "Model": model,
                                                   "Second Look": "pooled"})
    with open(folder / "errors.csv", "w", newline="") as f:
        f.write("Image,Error,Reason\n" + "".join(f"{e},InputError,{e}: broken\n" for e in errors))
    (folder / "batch.json").write_text(json.dumps({"format": "chexmask-rt batch 1", "Engine SHA256": sha, "Model": model,
                                                   "Samples": "4", "Seed": seed, "Second Look": "on",
                                                   "Shard": shard or "all"}))
    return folder


def test_shards_that_drew_different_pictures_merge(tmp_path):
    """Masks and overlays are per shard folder, not a setting of the rows: a shard run with --masks
    and one without give the same rows, and merge takes them as one split."""
    a = _fake_folder(tmp_path / "a", ["x"], shard="0/2")
    b = _fake_folder(tmp_path / "b", ["y"], shard="1/2")
    manifest = json.loads((a / "batch.json").read_text())
    (a / "batch.json").write_text(json.dumps({**manifest, "Outputs": {"--masks": "on", "--overlays": "all"}}))
    summary = merge_folders([a, b], tmp_path / "all")
    assert summary.rows == 2 and summary.complete
    assert "Outputs" not in json.loads((tmp_path / "all" / "batch.json").read_text())  # the pictures stayed behind


def test_merge_keeps_one_row_per_image_and_errors_only_for_images_never_done(tmp_path):
    a = _fake_folder(tmp_path / "a", ["x", "y"], shard="0/3", errors=["z", "w"])
    b = _fake_folder(tmp_path / "b", ["y", "z"], shard="2/3", errors=["w"])
    with open(b / "results.csv", "a") as f:
        f.write("cut-short-row,1.0")  # a run killed mid-row: not merged
    summary = merge_folders([a, b], tmp_path / "all")
    assert [r["Image"] for r in rows(tmp_path / "all" / "results.csv")] == ["x", "y", "z"]
    assert [r["Image"] for r in rows(tmp_path / "all" / "errors.csv")] == ["w"]
    assert (summary.rows, summary.duplicates, summary.errors) == (3, 1, 1)
    assert summary.missing_shards == [1] and "of the 3 shards, number 1 is missing" in summary.text(tmp_path / "all")


def test_merge_says_the_first_shard_is_missing_too(tmp_path):
    """Only a missing middle shard was ever tested; a lost shard 0 would have merged as complete."""
    a = _fake_folder(tmp_path / "a", ["x"], shard="1/3")
    b = _fake_folder(tmp_path / "b", ["y"], shard="2/3")
    summary = merge_folders([a, b], tmp_path / "all")
    assert summary.missing_shards == [0] and not summary.complete
    assert json.loads((tmp_path / "all" / "batch.json").read_text())["Finished"] is False


def test_merge_keeps_the_schema_number_of_an_older_release_s_rows(tmp_path):
    """Schema 1 rows say no schema (that release wrote none): merged beside current rows they must say 1,
    or their empty measures read as unknown values of the current schema."""
    from chexmask_rt.csv_output import COLUMNS_V1, SCHEMA_VERSION

    old = _fake_folder(tmp_path / "old", ["x"])
    new = _fake_folder(tmp_path / "new", ["y"])
    for folder in (old, new):
        (folder / "batch.json").unlink()
    write_results(old / "results.csv", COLUMNS_V1, [{k: r[k] for k in COLUMNS_V1} for r in rows(old / "results.csv")])
    current = [r | {"Results Schema": str(SCHEMA_VERSION)} for r in rows(new / "results.csv")]
    write_results(new / "results.csv", current[0], current)
    merge_folders([old, new], tmp_path / "all")
    schema = {r["Image"]: r["Results Schema"] for r in rows(tmp_path / "all" / "results.csv")}
    assert schema == {"x": "1", "y": str(SCHEMA_VERSION)}


def test_each_shard_lists_only_its_own_skipped_files(tmp_path, archive):
    """Every shard's skipped.csv listed the whole archive's skipped files."""
    from chexmask_rt.discovery import discover
    from chexmask_rt.shards import batch_inputs

    for name in ("notes.txt", "readme.md", "a.json", "b.xml", "c.log", "d.doc"):
        (archive / name).write_text("not an image")
    everything = discover(archive).skipped
    parts = [batch_inputs(archive, Shard(i, 2)).skipped for i in range(2)]
    assert len(everything) >= 6 and all(parts)
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == sorted(everything)


def test_merge_reads_what_batch_writes_names_that_are_not_utf8_and_huge_fields(tmp_path):
    """batch writes a name's raw bytes (surrogate escapes) and RLE fields past the csv module's
    default 128 KiB limit; merge must read both back unchanged."""
    from chexmask_rt.csv_output import COLUMNS

    a = _fake_folder(tmp_path / "a", ["x"])
    name, rle = "caf\udce9.png", "1 2 " * 40000
    with open(a / "results.csv", "a", newline="", encoding="utf-8", errors="surrogateescape") as f:
        csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n").writerow(
            {c: "" for c in COLUMNS} | {"Image": name, "Samples": "4", "Seed": "0", "Model": "chexmask-rt-default:6",
                                         "Second Look": "pooled", "Right Lung": rle})
    (a / "skipped.csv").write_bytes(b"File,Reason\nnot\xe9.txt,not an image\n")
    assert merge_folders([a], tmp_path / "all").rows == 2
    assert (tmp_path / "all" / "results.csv").read_bytes() == (a / "results.csv").read_bytes()
    assert (tmp_path / "all" / "skipped.csv").read_bytes() == (a / "skipped.csv").read_bytes()


@pytest.mark.parametrize("change, needle", [
    ({"seed": "1"}, "Seed '1' vs '0'"),
    ({"sha": "b" * 64}, "different engines or settings"),  # same name:version, other engine bytes
])
def test_merge_refuses_folders_of_other_engines_or_settings(tmp_path, change, needle):
    a = _fake_folder(tmp_path / "a", ["x"])
    b = _fake_folder(tmp_path / "b", ["y"], **change)
    with pytest.raises(InputError, match=needle):
        merge_folders([a, b], tmp_path / "all")
    assert not (tmp_path / "all" / "results.csv").exists()
    assert not any((tmp_path / "all").glob("*"))  # nor a partial file
    proc = cli("merge", a, b, "--out", tmp_path / "all")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_merge_refuses_folders_whose_batch_manifests_disagree(tmp_path):
    a = _fake_folder(tmp_path / "a", ["x"])
    b = _fake_folder(tmp_path / "b", ["y"])
    manifest = {"format": 1, "Engine SHA256": "c" * 64, "Model": "chexmask-rt-default:6", "Samples": "4", "Seed": "0",
                "Second Look": "on"}
    (a / "batch.json").write_text(json.dumps(manifest))
    (b / "batch.json").write_text(json.dumps({**manifest, "Engine SHA256": "d" * 64}))
    with pytest.raises(InputError, match="Engine SHA256 'dddd"):
        merge_folders([a, b], tmp_path / "all")
    (b / "batch.json").write_text(json.dumps({**manifest, "format": 2}))  # the same identity
    assert merge_folders([a, b], tmp_path / "all").rows == 2


def test_merge_refuses_mixed_rows_without_manifests(tmp_path):
    a = _fake_folder(tmp_path / "a", ["x"])
    b = _fake_folder(tmp_path / "b", ["y"], model="other:1")
    (a / "batch.json").unlink()
    (b / "batch.json").unlink()
    with pytest.raises(InputError, match="Model 'other:1' vs 'chexmask-rt-default:6'"):
        merge_folders([a, b], tmp_path / "all")


def test_merge_refuses_bad_targets_and_sources(tmp_path):
    a = _fake_folder(tmp_path / "a", ["x"])
    with pytest.raises(InputError, match="cannot also be an input"):
        merge_folders([a], a)
    with pytest.raises(InputError, match="no results.csv"):
        merge_folders([a, tmp_path], tmp_path / "all")
    merge_folders([a], tmp_path / "all")
    with pytest.raises(InputError, match="already exists"):
        merge_folders([a], tmp_path / "all")
    # ALL must be new: an existing folder's errors.csv and batch.json were replaced in place, and
    # through links to files elsewhere
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "errors.csv").symlink_to(elsewhere)
    with pytest.raises(InputError, match="already exists and is not an empty folder"):
        merge_folders([a], tmp_path / "used")
    assert elsewhere.read_text() == "keep\n"
    (tmp_path / "empty").mkdir()
    assert merge_folders([a], tmp_path / "empty").rows == 1
    (tmp_path / "killed").mkdir()  # a merge killed outright left its partial file: ours to replace
    (tmp_path / "killed" / "results.csv.partial").write_text("Image\nx\n")
    assert merge_folders([a], tmp_path / "killed").rows == 1
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["batch.json", "errors.csv", "results.csv"]
    with pytest.raises(InputError, match="different counts"):
        merge_folders([a, _fake_folder(tmp_path / "s1", ["y"], shard="0/2"), _fake_folder(tmp_path / "s2", ["z"], shard="0/3")],
                      tmp_path / "all2")


def test_resume_with_another_engine_of_the_same_name_is_refused(tmp_path, shared_images):
    import onnx

    from chexmask_rt.model import default_model_path

    model = onnx.load(str(default_model_path()))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "chexmask_rt.description": "a re-export"})
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(shared_images[0], images)
    out = tmp_path / "out"
    assert cli("batch", images, "--out", out, "--samples", 2, "--single-look", "--no-progress").returncode == 0
    proc = cli("batch", images, "--out", out, "--samples", 2, "--single-look", "--no-progress", "--model", other)
    assert proc.returncode == 3 and "Engine SHA256" in proc.stderr, proc.stderr
    proc = cli("batch", images, "--out", out, "--samples", 2, "--single-look", "--no-progress", "--shard", "0/1")
    assert proc.returncode == 3 and "made with Shard 'all', this run uses '0/1'" in proc.stderr, proc.stderr


def test_merge_refuses_a_folder_a_batch_is_writing_and_names_one_that_did_not_finish(tmp_path):
    """A shard killed by its time limit, or still running, was merged as if complete: exit 0, and the
    summary did not say that a third of its images were missing."""
    from chexmask_rt.batch_folder import folder_lock

    a = _fake_folder(tmp_path / "a", ["x"], shard="0/2")
    b = _fake_folder(tmp_path / "b", ["y"], shard="1/2")
    with folder_lock(b):  # a batch running there
        with pytest.raises(InputError, match=r"b: a chexmask-rt batch is still writing it \(pid \d+"):
            merge_folders([a, b], tmp_path / "all")
    assert not (tmp_path / "all").exists()
    manifest = json.loads((b / "batch.json").read_text())
    (b / "batch.json").write_text(json.dumps({**manifest, "Finished": False}))  # its run was killed
    proc = cli("merge", a, b, "--out", tmp_path / "all")
    assert proc.returncode == 1 and f"; {b} did not finish (rerun the same batch command" in proc.stdout
    assert json.loads((tmp_path / "all" / "batch.json").read_text())["Finished"] is False


def test_merge_leaves_out_a_row_cut_inside_its_last_quoted_field(tmp_path):
    """A csv reader returns a row cut inside a quoted field at the end of the file as a whole one."""
    from chexmask_rt.csv_output import COLUMNS

    a = _fake_folder(tmp_path / "a", ["x"])
    with open(a / "results.csv", "a") as f:
        f.write(",".join(["cut"] + [""] * (len(COLUMNS) - 2) + ['"unvalidated: research']))
    summary = merge_folders([a], tmp_path / "all")
    assert summary.rows == 1 and [r["Image"] for r in rows(tmp_path / "all" / "results.csv")] == ["x"]


def test_merge_keeps_one_row_per_image_however_a_shard_spelled_its_input(tmp_path, archive):
    """A shard run again with INPUT spelled otherwise (absolute, from another working folder) doubled
    its rows in the merge: rows were compared as written."""
    import subprocess
    import sys

    def batch(source, out, shard, cwd):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(source), "--out", str(out),
                               "--samples", "2", "--single-look", "--no-progress", "--shard", shard],
                              capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, proc.stderr

    batch("archive", tmp_path / "s0", "0/2", tmp_path)
    batch("archive", tmp_path / "s1", "1/2", tmp_path)
    batch(archive, tmp_path / "s0again", "0/2", archive)  # shard 0 again, spelled absolute
    first = len(rows(tmp_path / "s0" / "results.csv"))
    summary = merge_folders([tmp_path / "s0", tmp_path / "s1", tmp_path / "s0again"], tmp_path / "all")
    assert (summary.rows, summary.duplicates) == (6, first)
    assert len({r["Image"] for r in rows(tmp_path / "all" / "results.csv")}) == 6


def test_a_list_whose_entries_climb_out_of_its_folder_resumes_however_it_is_spelled(tmp_path, archive):
    """A list in splits/ naming ../archive/...: each spelling of the list (from its folder, absolute, from
    the folder above) segmented every image again and added a row for it, and merge kept all three."""
    import subprocess
    import sys

    def batch(source, cwd):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(source), "--out", str(out),
                               "--samples", "2", "--single-look", "--no-progress"],
                              capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    splits, out = tmp_path / "splits", tmp_path / "out"
    splits.mkdir()
    images = sorted("../" + str(p.relative_to(tmp_path)) for p in archive.rglob("*") if p.is_file())
    (splits / "list.txt").write_text("\n".join(images) + "\n")
    assert "6 done" in batch("list.txt", splits)
    assert "0 done, 6 already" in batch(splits / "list.txt", tmp_path)
    assert "0 done, 6 already" in batch("splits/list.txt", tmp_path)
    assert len(rows(out / "results.csv")) == 6
    summary = merge_folders([out], tmp_path / "merged")
    assert (summary.rows, summary.duplicates) == (6, 0)


def test_merge_counts_each_file_once_by_list_or_folder_and_merges_in_steps(tmp_path, archive):
    """Review of the merge keys and marks: a list run and folder shards of the same files doubled
    every row, a whole run of another INPUT hid a missing shard, and a merged folder merged again
    with the shard it lacked was called unfinished (exit 1)."""
    import subprocess
    import sys

    def batch(source, out, *more):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(source), "--out", str(out),
                               "--samples", "2", "--single-look", "--no-progress", *more],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr

    images = sorted(str(p.relative_to(tmp_path)) for p in archive.rglob("*") if p.is_file())
    (tmp_path / "list.txt").write_text("\n".join(images) + "\n")
    batch("list.txt", tmp_path / "bylist")
    batch("archive", tmp_path / "s0", "--shard", "0/2")
    batch("archive", tmp_path / "s1", "--shard", "1/2")
    summary = merge_folders([tmp_path / "bylist", tmp_path / "s0", tmp_path / "s1"], tmp_path / "m1")
    assert (summary.rows, summary.duplicates, summary.complete) == (6, 6, True)

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(archive.rglob("*.png")), other / "x.png")
    batch("other", tmp_path / "whole_other")
    summary = merge_folders([tmp_path / "s0", tmp_path / "whole_other"], tmp_path / "m2")
    assert summary.missing_shards == [1] and not summary.complete  # that whole run is of another INPUT

    first = merge_folders([tmp_path / "s0"], tmp_path / "step1")
    assert first.missing_shards == [1]
    proc = cli("merge", tmp_path / "step1", tmp_path / "s1", "--out", tmp_path / "step2")
    assert proc.returncode == 0 and "missing" not in proc.stdout and "did not finish" not in proc.stdout
    assert json.loads((tmp_path / "step2" / "batch.json").read_text())["Finished"] is True
    assert len(rows(tmp_path / "step2" / "results.csv")) == 6


def test_merge_keeps_two_exports_whose_files_are_written_alike(tmp_path, shared_images):
    """Two exports, each run as 'exp' from its own working folder into its own shard folder: their
    rows are written alike (exp/IM00001.png) but are other files; merge dropped the second's."""
    import subprocess
    import sys

    for folder, image in (("X", shared_images[0]), ("Y", shared_images[1])):
        (tmp_path / folder / "exp").mkdir(parents=True)
        shutil.copy(image, tmp_path / folder / "exp" / "IM00001.png")
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", "exp", "--out", str(tmp_path / f"o{folder}"),
                               "--samples", "2", "--single-look", "--no-progress"], capture_output=True, text=True,
                              cwd=tmp_path / folder)
        assert proc.returncode == 0, proc.stderr
    summary = merge_folders([tmp_path / "oX", tmp_path / "oY"], tmp_path / "all")
    assert (summary.rows, summary.duplicates) == (2, 0)


def test_a_merge_into_a_folder_another_merge_holds_is_refused(tmp_path):
    """Two merges into one new folder at once mixed one's rows with the other's batch.json (4 of 20 tries),
    or both failed and left errors.csv behind (4 more)."""
    from chexmask_rt.batch_folder import folder_lock

    a = _fake_folder(tmp_path / "a", ["x"])
    out = tmp_path / "all"
    out.mkdir()
    with folder_lock(out):  # as the other merge holds it while it writes
        with pytest.raises(InputError, match="in use by another chexmask-rt run"):
            merge_folders([a], out)
        assert [p.name for p in out.iterdir()] == [".chexmask-rt.lock"]
    (out / ".chexmask-rt.lock").unlink()  # what the holder does when it has made the folder
    assert merge_folders([a], out).rows == 1
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", "errors.csv", "results.csv"]


def test_a_long_merge_says_how_far_it_got(tmp_path, monkeypatch, capsys):
    """A merge said nothing until its end: at hospital scale (a million rows) minutes of silence."""
    from chexmask_rt import merge

    a = _fake_folder(tmp_path / "a", ["x", "y"])
    monkeypatch.setattr(merge, "LOG_INTERVAL_S", 0.0)  # a line at every row instead of every minute
    merge_folders([a], tmp_path / "all", progress=True)
    assert capsys.readouterr().err.splitlines()[-1] == f"merge: 1 rows so far, folder 1 of 1 ({a})"
    merge_folders([a], tmp_path / "quiet")
    assert capsys.readouterr().err == ""  # the Python API is silent unless asked


def test_a_merge_that_finished_while_this_one_waited_is_not_overwritten(tmp_path, monkeypatch):
    from contextlib import contextmanager

    from chexmask_rt import merge

    a = _fake_folder(tmp_path / "a", ["x"])
    out = tmp_path / "all"
    real = merge.folder_lock

    @contextmanager
    def late(folder):  # another merge finished in the folder between the first check and the lock
        (folder / "results.csv").write_text("the other merge's results\n")
        with real(folder) as created:
            yield created

    monkeypatch.setattr(merge, "folder_lock", late)
    with pytest.raises(InputError, match="already exists and is not an empty folder"):
        merge_folders([a], out)
    assert (out / "results.csv").read_text() == "the other merge's results\n"


def test_a_long_merge_says_a_line_a_minute_not_a_line_a_row(tmp_path, monkeypatch, capsys):
    import itertools
    import types

    from chexmask_rt import merge

    a = _fake_folder(tmp_path / "a", [f"i{n}" for n in range(5)])
    clock = itertools.count(0, 31)  # 31 s a reading: a line every other row
    monkeypatch.setattr(merge, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    merge_folders([a], tmp_path / "all", progress=True)
    assert sum("rows so far" in line for line in capsys.readouterr().err.splitlines()) == 2


def test_a_merge_whose_last_step_fails_leaves_its_folder_empty(tmp_path, monkeypatch):
    import os

    a = _fake_folder(tmp_path / "a", ["x"])
    out = tmp_path / "all"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        merge_folders([a], out)
    monkeypatch.undo()
    assert list(out.iterdir()) == []  # a retry into it is not refused as "not an empty folder"


def test_the_merge_command_says_how_far_it_got(tmp_path, monkeypatch, capsys):
    from chexmask_rt import cli, merge

    a = _fake_folder(tmp_path / "a", ["x", "y"])
    monkeypatch.setattr(merge, "LOG_INTERVAL_S", 0.0)
    assert cli.main(["merge", "--out", str(tmp_path / "all"), str(a)]) == 0
    assert f"merge: 1 rows so far, folder 1 of 1 ({a})" in capsys.readouterr().err


def _batch_here(*args) -> None:
    """``chexmask-rt batch`` in this process (no new interpreter, engine load only), two samples, one look."""
    from chexmask_rt import cli as command

    assert command.main(["batch", *map(str, args), "--samples", "2", "--single-look", "--no-progress"]) == 0


def test_a_list_climbing_out_of_its_folder_splits_alike_at_every_mount_point(tmp_path, archive):
    """Entries outside the list's folder ("../archive/a.png") were keyed as written, mount point and all:
    shards 0 and 1 run through /mnt/a and shard 2 through /data/a split the list two ways, and merge
    called the run complete with images in no shard and others in two."""
    from chexmask_rt.shards import batch_inputs

    (tmp_path / "lists").mkdir()
    names = sorted(str(p.relative_to(tmp_path)) for p in archive.rglob("*") if p.is_file())
    (tmp_path / "lists" / "climb.txt").write_text("".join(f"../{n}\n" for n in names))
    mounts = [tmp_path / "mnt_a", tmp_path / "data_a"]  # one folder at two mount points, as on two nodes
    for mount in mounts:
        mount.symlink_to(tmp_path)
    per_mount = [[sorted(os.path.relpath(i, m / "lists") for i in batch_inputs(m / "lists" / "climb.txt", Shard(k, 3)).images)
                  for k in range(3)] for m in mounts]
    assert per_mount[0] == per_mount[1] and sorted(sum(per_mount[0], [])) == [f"../{n}" for n in names]
    from chexmask_rt.shards import input_identity

    found = batch_inputs(mounts[0] / "lists" / "climb.txt")
    assert found.identity == batch_inputs(mounts[1] / "lists" / "climb.txt").identity == input_identity(
        [str(archive / p) for p in os.listdir(archive) if (archive / p).is_file()] + [str(archive / "sub" / "IM00001")],
        archive.parent)  # a folder's run of the same files is the same input

    _batch_here(mounts[0] / "lists" / "climb.txt", "--out", tmp_path / "s0", "--shard", "0/3")
    _batch_here(mounts[0] / "lists" / "climb.txt", "--out", tmp_path / "s1", "--shard", "1/3")
    _batch_here(mounts[1] / "lists" / "climb.txt", "--out", tmp_path / "s2", "--shard", "2/3")
    summary = merge_folders([tmp_path / f"s{k}" for k in range(3)], tmp_path / "all")
    assert (summary.rows, summary.duplicates, summary.complete) == (len(names), 0, True)


def test_merge_tells_a_whole_run_of_a_few_images_and_shards_of_another_input(tmp_path, archive, shared_images):
    """A finished run of a one-line list kept in the archive folder counted as a whole run of the archive
    (its INPUT's real path), so a merge of it with shard 0 of 3 said complete, exit 0, with 4 of 6 images;
    and shards of two archives (a typo in one task's path) merged as one complete split."""
    (archive / "redo.txt").write_text(f"{shared_images[0].name}\n")
    _batch_here(archive, "--out", tmp_path / "s0", "--shard", "0/2")
    _batch_here(archive / "redo.txt", "--out", tmp_path / "redo")
    summary = merge_folders([tmp_path / "s0", tmp_path / "redo"], tmp_path / "m1")
    assert summary.missing_shards == [1] and not summary.complete

    everything = archive / "all.txt"  # a list of every image is a whole run of the archive
    everything.write_text("".join(f"{p.relative_to(archive)}\n" for p in archive.rglob("*") if p.is_file() and p.suffix != ".txt"))
    _batch_here(everything, "--out", tmp_path / "whole")
    assert merge_folders([tmp_path / "s0", tmp_path / "whole"], tmp_path / "m2").complete

    other = tmp_path / "other"
    shutil.copytree(archive, other)
    (other / shared_images[0].name).unlink()
    _batch_here(other, "--out", tmp_path / "s1_other", "--shard", "1/2")
    summary = merge_folders([tmp_path / "s0", tmp_path / "s1_other"], tmp_path / "m3")
    assert summary.missing_shards == [] and not summary.complete
    text = summary.text(tmp_path / "m3")
    assert "different inputs (0/2: 6 images; 1/2: 5 images)" in text, text
    assert json.loads((tmp_path / "m3" / "batch.json").read_text())["Finished"] is False
    # step by step: the merged folder keeps what its shards were run on
    step = merge_folders([tmp_path / "s0"], tmp_path / "step1")
    assert not step.complete and not merge_folders([tmp_path / "step1", tmp_path / "s1_other"],
                                                   tmp_path / "step2").complete
