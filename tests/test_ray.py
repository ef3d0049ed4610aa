"""Ray Data: the map_batches callable (without a cluster) and batch --ray on a local Ray instance."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from chexmask_rt.csv_output import COLUMNS, csv_row, parse_coords
from chexmask_rt.errors import InputError
from chexmask_rt.model import default_model_path
from chexmask_rt.quality import calibration_path
from chexmask_rt.ray_batch import ROW_COLUMNS, SegmentBatch, engine_files
from conftest import SHARED

# the measures are floats of the landmarks: other batchings move their last printed digit too
MEASURES = list(COLUMNS[COLUMNS.index("CTR"):COLUMNS.index("Measures Validation")])
EXACT = [c for c in COLUMNS if c not in ("Landmarks (Mean)", "Landmarks (Std)", "Right Lung", "Left Lung", "Heart",
                                         "Mean Node Std", "Mean Latent Sigma", *MEASURES)]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_rows_match(got, expected):
    """Landmarks within 1e-3 px (other batchings move the third decimal), the settings and flags exactly."""
    assert got["Image"] == expected["Image"]
    for column in ("Landmarks (Mean)", "Landmarks (Std)"):
        np.testing.assert_allclose(parse_coords(got[column]), parse_coords(expected[column]), atol=1e-3)
    for column in ("Mean Node Std", "Mean Latent Sigma"):
        assert float(got[column]) == pytest.approx(float(expected[column]), rel=1e-4)
    for column in MEASURES:  # empty (no spacing) in both, or equal within float rounding
        assert (got[column] == expected[column] == "") or \
            float(got[column]) == pytest.approx(float(expected[column]), rel=1e-4), column
    assert {c: got[c] for c in EXACT} == {c: expected[c] for c in EXACT}


def test_segment_batch_turns_paths_into_rows_and_failures_into_reasons(tmp_path, shared_images, default_segmenter):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(shared_images[1].read_bytes()[:3000])
    paths = [str(shared_images[0]), str(cut), str(shared_images[2])]
    fn = SegmentBatch(samples=3, seed=2, masks_dir=str(tmp_path / "masks"))
    out = fn({"path": np.array(paths, dtype=object), "stem": np.array(["a", "b", "c"], dtype=object)})
    assert list(out) == list(ROW_COLUMNS) and all(len(v) == 3 for v in out.values())
    got = [{c: out[c][i] for c in ROW_COLUMNS} for i in range(3)]
    assert got[1]["Error"] == "InputError" and got[1]["Reason"].startswith(f"{cut}: not a readable image")
    assert got[1]["Landmarks (Mean)"] == ""
    for row, path in ((got[0], paths[0]), (got[2], paths[2])):
        assert row["Error"] == row["Reason"] == ""
        assert_rows_match(row, csv_row(default_segmenter.predict(path, samples=3, seed=2)))
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == sorted(
        f"{s}_{o}.png" for s in "ac" for o in ("right_lung", "left_lung", "heart"))


def test_an_engine_travels_as_bytes_with_its_calibration(tmp_path, shared_images, default_segmenter):
    assert engine_files(None) is None and engine_files(default_model_path()) is None  # every node has it
    model = tmp_path / "mine.onnx"
    shutil.copy(default_model_path(), model)
    shutil.copy(calibration_path(default_model_path()), calibration_path(model))
    files = engine_files(model)
    assert list(files) == ["mine.onnx", "mine.quality.json"]
    model.unlink()  # the actor must not need the driver's file
    fn = SegmentBatch(engine_files=files, samples=3)
    from chexmask_rt.image_io import read_image

    images = np.empty(1, dtype=object)  # a column of arrays, as Ray Data hands over decoded images
    images[0] = read_image(shared_images[0])
    out = fn({"path": np.array(["named.png"], dtype=object), "image": images})
    expected = csv_row(default_segmenter.predict(shared_images[0], samples=3))
    expected["Image"] = "named.png"
    assert_rows_match({c: out[c][0] for c in ROW_COLUMNS}, expected)  # the quality flag came along: calibrated


@pytest.fixture()
def many(tmp_path, shared_images):
    """90 small radiographs in three folders: about three waves of Ray tasks, so a kill lands midway."""
    root = tmp_path / "many"
    small = next(p for p in shared_images if p.name.startswith("nih_"))  # 512x512: quick to decode
    for i in range(90):
        (root / f"f{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy(small, root / f"f{i % 3}" / f"im{i:02d}.png")
    return root


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "chexmask_rt", "batch", *map(str, args), "--samples", "4",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _run_ray(many, out):
    """A --ray local run in its own process group, so the kill below takes Ray's daemons too."""
    return _cli(many, "--out", out, "--ray", "local", "--threads", "1", "--ray-actors", "2",
                start_new_session=True)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_ray_run_killed_midway_resumes_to_the_local_run(tmp_path, many):
    local = _cli(many, "--out", tmp_path / "local")
    assert local.wait() == 0, local.stderr.read()
    expected = {r["Image"]: r for r in rows(tmp_path / "local" / "results.csv")}
    assert len(expected) == 90

    out = tmp_path / "ray"
    proc = _run_ray(many, out)
    try:
        started = time.monotonic()
        while not ((out / "results.csv").exists() and len(rows(out / "results.csv")) > 0):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() - started < 300, "the Ray run wrote no row in 5 minutes"
            time.sleep(0.05)
    finally:
        _kill_group(proc)  # as a node that dies: the driver and the local Ray instance at once
    first = rows(out / "results.csv")
    assert 0 < len(first) < 90  # the kill came midway

    proc = _run_ray(many, out)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, stderr
    assert f"90 images: {90 - len(first)} done, {len(first)} already in " in stdout
    got = rows(out / "results.csv")
    assert len(got) == 90 and {r["Image"] for r in got} == set(expected)  # no duplicates, no losses
    for row in got:
        assert_rows_match(row, expected[row["Image"]])
    assert rows(out / "errors.csv") == []


def test_segment_batch_takes_the_pixel_limit_and_the_device(tmp_path, shared_images):
    from chexmask_rt.errors import ModelError

    fn = SegmentBatch(samples=3, max_pixels=1024)
    out = fn({"path": np.array([str(shared_images[0])], dtype=object)})
    assert out["Error"][0] == "InputError" and "pixels" in out["Reason"][0], out["Reason"][0]
    with pytest.raises(ModelError, match="cuda"):  # this CPU build has no CUDA provider
        SegmentBatch(device="cuda")


def test_batch_ray_applies_max_pixels_on_the_actors(tmp_path, shared_images):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in shared_images[:2]:
        shutil.copy(p, folder / p.name)
    proc = _cli(folder, "--out", tmp_path / "out", "--ray", "local", "--threads", "1", "--ray-actors", "1",
                "--max-pixels", "1024", start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_group(proc)
    assert proc.returncode == 1, stderr  # some images failed
    failed = rows(tmp_path / "out" / "errors.csv")
    assert sorted(r["Image"] for r in failed) == sorted(str(folder / p.name) for p in shared_images[:2])
    assert all(r["Error"] == "InputError" and "pixels" in r["Reason"] for r in failed), failed
    assert rows(tmp_path / "out" / "results.csv") == []


def test_ray_refuses_a_gpu_device_on_a_cluster_without_gpus(tmp_path, shared_images, default_segmenter):
    import ray

    from chexmask_rt.errors import ModelError
    from chexmask_rt.ray_batch import run_ray

    try:
        with pytest.raises(ModelError, match="has no GPU"):
            run_ray(default_segmenter, None, [str(shared_images[0])], tmp_path / "out", address="local",
                    threads=1, progress=False, device="cuda")
    finally:
        ray.shutdown()


def test_an_unreachable_ray_address_is_refused_before_the_folder_is_locked(tmp_path, shared_images):
    """A mistyped head address made Ray retry for good, deaf to SIGTERM and Ctrl-C, holding the folder."""
    (tmp_path / "in").mkdir()
    shutil.copy(shared_images[0], tmp_path / "in")
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(tmp_path / "in"), "--out",
                           str(tmp_path / "out"), "--ray", "127.0.0.1:1", "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "--ray 127.0.0.1:1: no Ray head answers there" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_batch_ray_without_ray_installed_leaves_no_output_folder(tmp_path, shared_images, default_segmenter,
                                                                 monkeypatch):
    """Without Ray the run made, locked and recorded an unfinished output folder before it said Ray was
    missing, and a later merge named that folder as a run that did not finish."""
    import builtins

    from chexmask_rt.errors import ModelError
    from chexmask_rt.ray_batch import run_ray

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ModelError, match=r"--ray needs Ray Data: pip install 'chexmask-rt\[ray\]'"):
        run_ray(default_segmenter, None, [str(shared_images[0])], tmp_path / "out", samples=2)
    assert not (tmp_path / "out").exists()


def test_ray_rows_that_cannot_be_written_and_inputs_inside_the_output_fail_alone(tmp_path, shared_images,
                                                                              default_segmenter, monkeypatch, capsys):
    """As a local run: a full disk under results.csv fails that image (it stopped the whole Ray run as a
    model error), and an image inside the output folder is refused (Ray segmented it). The progress
    counts both, as a local run's does (it showed 1/1 and no failures)."""
    import errno

    import ray

    from chexmask_rt.batch_folder import Appender
    from chexmask_rt.ray_batch import run_ray

    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    inside = out / "old" / "in.png"
    shutil.copy(shared_images[0], inside)
    original = Appender.write

    def full_disk(self, row):
        if self.path.name == "results.csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, row)

    monkeypatch.setattr(Appender, "write", full_disk)
    try:
        summary = run_ray(default_segmenter, None, [str(inside), str(shared_images[1])], out, address="local",
                          threads=1, actors=1, progress=True, samples=2)
    finally:
        ray.shutdown()
    assert (summary.done, summary.failed) == (0, 2)
    last = [line for line in capsys.readouterr().err.splitlines() if line.startswith("batch (ray")][-1]
    assert "2/2 images (100 %)" in last and last.endswith("failed=2"), last
    reasons = {r["Image"]: r["Reason"] for r in rows(out / "errors.csv")}
    assert reasons[str(inside)].endswith(f"inside the output folder {out}, which is never an input")
    assert reasons[str(shared_images[1])] == (f"{shared_images[1]}: cannot write its row to {out / 'results.csv'} "
                                               "(No space left on device)")


class _CrashesOnPoison(SegmentBatch):
    """A worker that dies on one image every time, as a decoder crash or the out-of-memory killer."""

    def __call__(self, batch):
        if any("POISON" in str(p) for p in batch["path"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_a_batch_that_kills_its_worker_every_time_ends_the_run(tmp_path, shared_images, default_segmenter,
                                                               monkeypatch):
    """Ray Data retries a task whose actor died without end: the run never finished."""
    import ray
    import ray.cloudpickle

    from chexmask_rt import ray_batch
    from chexmask_rt.errors import ModelError

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module
    monkeypatch.setattr(ray_batch, "SegmentBatch", _CrashesOnPoison)
    poison = tmp_path / "POISON.png"
    shutil.copy(shared_images[0], poison)
    try:
        with pytest.raises(ModelError, match=r"a Ray worker died 3 times on one batch .* 2 images are not done"):
            ray_batch.run_ray(default_segmenter, None, [str(poison), str(shared_images[1])], tmp_path / "out",
                              address="local", threads=1, actors=1, progress=False, samples=2)
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_auto_without_a_cluster_is_one_line_in_our_words(tmp_path, shared_images):
    """It printed Ray's own advice, which names an --address flag and RAY_ADDRESS, not --ray."""
    (tmp_path / "in").mkdir()
    shutil.copy(shared_images[0], tmp_path / "in")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(tmp_path / "in"), "--out",
                           str(tmp_path / "out"), "--ray", "auto", "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("chexmask-rt: error: --ray auto: no running Ray cluster answers (")
    assert "use --ray local" in proc.stderr and "--address" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before the folder was made (or marked unfinished)


def _pictures_and_objects(folder):
    """Every file below ``folder`` by its path there: overlays as pixels, DICOM objects as their pixel data."""
    import cv2
    import pydicom

    found = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix == ".png":
            found[str(p.relative_to(folder))] = cv2.imread(str(p))
        elif p.suffix == ".dcm":
            ds = pydicom.dcmread(p)
            found[str(p.relative_to(folder))] = ds.pixel_array if "PixelData" in ds else _statements(ds)
    return found


def _statements(item) -> list:
    """An SR's content tree as (concept, value) pairs: what it reports, without the UIDs each object gets."""
    pairs = []
    for child in item.get("ContentSequence", []):
        concept = child.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in child else ""
        if "MeasuredValueSequence" in child:
            value = str(child.MeasuredValueSequence[0].NumericValue)
        elif "ConceptCodeSequence" in child:
            value = child.ConceptCodeSequence[0].CodeMeaning
        else:
            value = str(child.get("TextValue", ""))
        pairs += [(concept, value), *_statements(child)]
    return pairs


def test_segment_batch_writes_the_pictures_and_dicom_objects_a_local_run_writes(tmp_path, shared_images,
                                                                               default_segmenter):
    """batch --overlays / --dicom-seg / --dicom-sr were refused with --ray: an archive on a cluster got
    neither the review pictures nor the objects a PACS takes."""
    import cv2

    from chexmask_rt.batch import run_batch
    from chexmask_rt.image_io import read_image, to_gray

    dicoms = [str(p) for p in sorted((SHARED / "data" / "dicom").glob("*.dcm"))]
    upside_down = tmp_path / "upside_down.png"
    cv2.imwrite(str(upside_down), to_gray(read_image(shared_images[0]))[::-1])
    images = [*dicoms, str(shared_images[0]), str(upside_down)]
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    run_batch(default_segmenter, images, local / "out", samples=4, progress=False, overlays="all")
    run_batch(default_segmenter, dicoms, local / "objects", samples=4, progress=False, overlays="flagged",
              dicom_seg=local / "objects" / "seg", dicom_sr=local / "objects" / "sr")

    fn = SegmentBatch(samples=4, overlays="all", overlays_dir=str(ray_out / "out" / "overlays"))
    out = fn({"path": np.array(images, dtype=object)})
    assert list(out["Error"]) == [""] * 4
    flagged = SegmentBatch(samples=4, overlays="flagged", overlays_dir=str(ray_out / "objects" / "overlays"),
                           dicom_seg=str(ray_out / "objects" / "seg"), dicom_sr=str(ray_out / "objects" / "sr"))
    assert list(flagged({"path": np.array(dicoms, dtype=object)})["Error"]) == ["", ""]
    expected, got = _pictures_and_objects(local), _pictures_and_objects(ray_out)
    assert sorted(got) == sorted(expected) and "out/overlays/upside_down.png" in got
    assert any(name.startswith("objects/seg/") for name in got) and any(name.startswith("objects/sr/") for name in got)
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:  # the SR's measurements and flag, as the local run reports them
            assert got[name] == value and len(value) > 20, name

    arrays = SegmentBatch(samples=4, overlays="all", overlays_dir=str(tmp_path / "arrays"))
    decoded = read_image(upside_down)
    arrays({"path": np.array(["named.png"], dtype=object), "image": np.array([decoded, None], dtype=object)[:1],
            "stem": np.array(["upside_down"], dtype=object)})
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "arrays" / "upside_down.png")),
                                  expected["out/overlays/upside_down.png"])
    with pytest.raises(InputError, match="overlays_dir"):
        SegmentBatch(overlays="all")
    with pytest.raises(InputError, match="overlays must be one of"):
        SegmentBatch(overlays="some", overlays_dir=str(tmp_path))


def test_batch_ray_writes_overlays_and_dicom_objects(tmp_path):
    dicoms = sorted((SHARED / "data" / "dicom").glob("*.dcm"))
    (tmp_path / "list.txt").write_text(f"{dicoms[0]}\n")
    proc = _cli(tmp_path / "list.txt", "--out", tmp_path / "out", "--ray", "local", "--threads", "1", "--ray-actors", "1",
                "--overlays", "all", "--dicom-seg", tmp_path / "seg", "--dicom-sr", tmp_path / "sr",
                start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, stderr
    assert [p.name for p in (tmp_path / "out" / "overlays").iterdir()] == [f"{dicoms[0].stem}.png"]
    assert [p.name for p in (tmp_path / "seg").iterdir()] == [f"{dicoms[0].stem}.seg.dcm"]
    assert [p.name for p in (tmp_path / "sr").iterdir()] == [f"{dicoms[0].stem}.sr.dcm"]


def test_the_engine_cache_uses_only_the_engines_own_bytes(tmp_path, monkeypatch):
    """On a shared /tmp anyone could plant another engine (one bias zeroed, same size) where the cache
    looked, and the size check took it: the actors segmented with it, batch.json named the genuine one."""
    import tempfile

    from chexmask_rt import ray_batch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    files = {"vendor.onnx": b"genuine engine bytes", "vendor.quality.json": b"{}"}
    engine = ray_batch._materialise(files)
    assert engine.read_bytes() == files["vendor.onnx"]
    assert engine.parent.parent == tmp_path / f"chexmask-rt-engines-{os.getuid()}"
    assert (engine.parent.parent.stat().st_mode & 0o777) == 0o700
    engine.write_bytes(b"tampered engine bytes"[:len(files["vendor.onnx"])])  # same size, other bytes
    assert ray_batch._materialise(files).read_bytes() == files["vendor.onnx"]
    engine.unlink()
    engine.symlink_to(tmp_path / "elsewhere.onnx")  # a link where the file goes is replaced, not followed
    (tmp_path / "elsewhere.onnx").write_bytes(files["vendor.onnx"])
    again = ray_batch._materialise(files)
    assert not again.is_symlink() and again.read_bytes() == files["vendor.onnx"]
    # a cache folder others may write is not used
    shared = tmp_path / "open"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    (shared / f"chexmask-rt-engines-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(shared / f"chexmask-rt-engines-{os.getuid()}", 0o777)
    assert ray_batch._materialise(files).parent.parent != shared / f"chexmask-rt-engines-{os.getuid()}"


def test_the_engine_cache_reuses_one_folder(tmp_path, monkeypatch):
    """A cache folder of the user's own that others could read, or one others could write, made a new
    folder with a full engine copy at every actor start, never removed."""
    import tempfile

    from chexmask_rt import ray_batch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(ray_batch, "_fallback_cache", None)
    root = tmp_path / f"chexmask-rt-engines-{os.getuid()}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    assert ray_batch._engine_cache() == root and (root.stat().st_mode & 0o777) == 0o700  # ours, readable: made private
    os.chmod(root, 0o777)  # others could have planted links inside: not used, one private folder instead
    first = ray_batch._engine_cache()
    assert first != root and all(ray_batch._engine_cache() == first for _ in range(4))


def test_an_engine_cache_folder_of_another_user_is_not_used(tmp_path, monkeypatch):
    import tempfile

    from chexmask_rt import ray_batch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(ray_batch, "_fallback_cache", None)
    other = os.getuid() + 1  # the folder below is this user's, so to the code it is another's
    monkeypatch.setattr(ray_batch.os, "getuid", lambda: other)
    root = tmp_path / f"chexmask-rt-engines-{other}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    assert ray_batch._engine_cache() != root
