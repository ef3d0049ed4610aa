"""Folder discovery for PACS-style exports: DICOM by its marker whatever the name, non-images skipped."""
import csv
import shutil
import subprocess
import sys

import pytest

from chexmask_rt import discovery
from chexmask_rt.batch import collect_inputs
from chexmask_rt.discovery import discover

from conftest import SHARED

DICOM = SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm"


def _non_image_object(path, sop_class):
    """The shared CR file turned into an object of ``sop_class`` without pixel data."""
    import pydicom

    ds = pydicom.dcmread(DICOM)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)


def _with_sop_class(path, sop_class):
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture()
def pacs(tmp_path, shared_images):
    """An export the way PACS write them: DICOM files named by number or UID, a DICOMDIR, a report."""
    root = tmp_path / "export"
    (root / "S001").mkdir(parents=True)
    shutil.copy(DICOM, root / "S001" / "IM00001")
    shutil.copy(DICOM, root / "S001" / "1.2.826.0.1.3680043.8.498.1")
    shutil.copy(DICOM, root / "DICOMDIR")  # named as the standard names it: skipped by name
    _non_image_object(root / "S001" / "IM00002", "1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    _non_image_object(root / "S001" / "IM00003", "1.2.840.10008.1.3.10")  # a media directory under another name
    shutil.copy(DICOM, root / "S001" / "IM00004")  # an image of a class pydicom does not know (newer, private)
    _with_sop_class(root / "S001" / "IM00004", "1.2.826.0.1.3680043.8.498.999")
    (root / "S001" / "VERSION").write_text("export tool 1.0\n")
    shutil.copy(shared_images[0], root / "S001" / "thumb.png")
    raw = DICOM.read_bytes()
    (root / "S001" / "nopreamble.dcm").write_bytes(raw[132:])  # no marker, but named .dcm: the reader decides
    return root


def test_dicom_is_found_by_its_marker_and_non_images_are_skipped_with_a_reason(pacs):
    found = discover(pacs)
    assert [p.replace(str(pacs) + "/", "") for p in found.images] == [
        "S001/1.2.826.0.1.3680043.8.498.1", "S001/IM00001", "S001/IM00004", "S001/nopreamble.dcm", "S001/thumb.png"]
    reasons = {p.replace(str(pacs) + "/", ""): r for p, r in found.skipped}
    assert reasons["DICOMDIR"].startswith("DICOMDIR")
    assert reasons["S001/IM00002"] == "DICOM Basic Text SR Storage object (1.2.840.10008.5.1.4.1.1.88.11), not an image"
    assert reasons["S001/IM00003"].startswith("DICOMDIR")
    assert reasons["S001/VERSION"].startswith("not an image")
    assert collect_inputs(pacs) == found.images


def test_files_without_an_image_extension_are_read_only_132_bytes(pacs, monkeypatch):
    reads = {}

    class Spy:
        def __init__(self, path, mode):
            self._f, self._path = open(path, mode), path
            reads[path] = 0

        def read(self, n=-1):
            data = self._f.read(n)
            reads[self._path] += len(data)
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(discovery, "open", Spy, raising=False)
    discover(pacs)
    name = {p.rsplit("/", 1)[1]: n for p, n in reads.items()}
    assert name["VERSION"] <= 132  # not DICOM: only the preamble and marker
    assert "thumb.png" not in name and "DICOMDIR" not in name  # decided by name alone
    # DICOM: the marker, then only its File Meta group (a few hundred bytes), not the image
    assert 132 < name["IM00001"] < 1024 < DICOM.stat().st_size


def test_batch_segments_a_pacs_export_and_lists_what_it_skipped(tmp_path, pacs):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(pacs), "--out", out, "--samples", "2",
                           "--single-look", "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "5 images: 5 done" in proc.stdout and "4 files skipped" in proc.stderr
    with open(out / "skipped.csv", newline="") as f:
        skipped = {r["File"]: r["Reason"] for r in csv.DictReader(f)}
    assert set(skipped) == {str(pacs / n) for n in ("DICOMDIR", "S001/IM00002", "S001/IM00003", "S001/VERSION")}


def test_nothing_under_the_folder_is_passed_over_unsaid(tmp_path, shared_images, monkeypatch):
    """Links to files are images; links to folders, broken links, pipes and folders that cannot be
    listed are skipped with the reason, so batch counts and lists them."""
    import os

    root = tmp_path / "archive"
    (root / "locked").mkdir(parents=True)
    shutil.copy(shared_images[0], root / "locked" / "hidden.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(shared_images[0], elsewhere / "a.png")
    (root / "to_file.png").symlink_to(elsewhere / "a.png")
    (root / "to_folder").symlink_to(elsewhere, target_is_directory=True)
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(root / "pipe.png")
    real_scandir = os.scandir

    def scandir(path="."):  # a folder without read permission (chmod 000 does not stop root)
        if os.fspath(path) == str(root / "locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = discover(root)
    assert found.images == [str(root / "to_file.png")]
    assert dict(found.skipped) == {
        str(root / "dangling.png"): "a broken link",
        str(root / "locked"): "cannot list the folder (Permission denied)",
        str(root / "pipe.png"): "not a regular file (a pipe, socket or device)",
        str(root / "to_folder"): "a link to a folder, not followed (pass the folder itself)",
    }


def test_a_folder_that_cannot_be_listed_is_an_input_error(tmp_path, monkeypatch):
    import os

    from chexmask_rt.errors import InputError

    def refuse(path="."):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(InputError, match=f"{tmp_path}: cannot list the folder \\(Permission denied\\)"):
        discover(tmp_path)


def test_an_archive_with_a_name_that_is_not_utf8_an_old_output_folder_and_a_fixed_file(tmp_path, shared_images):
    """A skipped file whose name is not UTF-8 is listed, not a crash; an earlier run's output folder
    inside the archive is passed over (its masks are no radiographs); a file fixed since the last run
    leaves skipped.csv; --out on the archive itself is refused before anything is written."""
    import os

    root = tmp_path / "archive"
    root.mkdir()
    shutil.copy(shared_images[0], root / "a.png")
    junk = os.path.join(os.fsencode(root), b"caf\xe9.txt")
    with open(junk, "wb") as f:
        f.write(b"not an image")

    def batch(out, *extra):
        return subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(root), "--out", str(out),
                               "--samples", "2", "--single-look", "--no-progress", "--masks", *extra],
                              capture_output=True, text=True)

    proc = batch(root / "run1")  # the output folder inside the archive, as the README allows
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (root / "run1" / "skipped.csv").read_bytes() == b"File,Reason\n" + junk + \
        b',"not an image (no image extension, no DICM marker)"\n'
    proc = batch(tmp_path / "run2")  # another --out: run1's masks are not inputs
    assert proc.returncode == 0, proc.stderr
    assert "1 images: 1 done" in proc.stdout
    skipped = (tmp_path / "run2" / "skipped.csv").read_bytes()
    assert str(root / "run1").encode() + b',"an earlier chexmask-rt batch\'s output folder, never an input"' in skipped
    os.unlink(junk)
    shutil.rmtree(root / "run1")
    assert batch(tmp_path / "run2").returncode == 0
    assert not (tmp_path / "run2" / "skipped.csv").exists()  # nothing skipped any more: no stale list
    for out in (root, tmp_path):
        proc = batch(out)
        assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is the input folder" in proc.stderr
    assert sorted(p.name for p in root.iterdir()) == ["a.png"]


def test_a_list_with_a_byte_order_mark(tmp_path, shared_images):
    shutil.copy(shared_images[0], tmp_path / "a.png")
    shutil.copy(shared_images[1], tmp_path / "b.png")
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbfa.png\r\nb.png\r\n")
    (tmp_path / "list.csv").write_bytes(b"\xef\xbb\xbfpath,patient_id\r\na.png,P1\r\nb.png,P2\r\n")
    for name in ("list.txt", "list.csv"):
        assert collect_inputs(tmp_path / name) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_a_rerun_that_spells_the_input_another_way_resumes(tmp_path, shared_images):
    """A rerun from another working directory, with an absolute path or on another mount point must
    not redo (and duplicate) what is done: images are matched by their path below INPUT."""
    import json

    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    shutil.copy(shared_images[0], root / "a.png")
    shutil.copy(shared_images[1], root / "sub" / "b.png")

    def batch(source, cwd):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(source), "--out", str(tmp_path / "out"),
                               "--samples", "2", "--single-look", "--no-progress"], capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        with open(tmp_path / "out" / "results.csv", newline="") as f:
            return proc.stdout, sorted(r["Image"] for r in csv.DictReader(f))  # rows come as images finish

    _, images = batch("archive", cwd=tmp_path)
    assert images == ["archive/a.png", "archive/sub/b.png"]
    shutil.copy(shared_images[2], root / "c.png")
    out, images = batch(root, cwd=root / "sub")  # absolute, from elsewhere: only the new image
    assert "1 done" in out and images == sorted(["archive/a.png", "archive/sub/b.png", str(root / "c.png")])
    out, images = batch("..", cwd=root / "sub")
    assert "0 done" in out and len(images) == 3
    manifest = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert manifest["Inputs"] == [["archive", str(root)], [str(root), str(root)], ["..", str(root)]]
    # another folder whose images have the same paths below it is another INPUT: nothing of it is done
    other = tmp_path / "other"
    shutil.copytree(root, other)
    out, images = batch("other", cwd=tmp_path)
    assert "3 done" in out and len(images) == 6


def test_another_folder_of_the_same_spelling_is_refused_not_taken_as_done(tmp_path, shared_images):
    """Two PACS exports, each 'exp' with IM00001..., run from their own working folders into one --out:
    the second run took the first's rows for its own images ("2 skipped") and never segmented them."""
    for folder, images in (("X", shared_images[:2]), ("Y", shared_images[2:5])):
        (tmp_path / folder / "exp").mkdir(parents=True)
        for i, image in enumerate(images, start=1):
            shutil.copy(image, tmp_path / folder / "exp" / f"IM0000{i}{image.suffix}")

    def batch(source, cwd):
        return subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(source), "--out", str(tmp_path / "out"),
                               "--samples", "2", "--single-look", "--no-progress"], capture_output=True, text=True,
                              cwd=cwd)

    assert batch("exp", tmp_path / "X").returncode == 0
    proc = batch("exp", tmp_path / "Y")
    assert proc.returncode == 3 and f"INPUT 'exp' was {tmp_path / 'X' / 'exp'} in an earlier run" in proc.stderr
    assert "spell INPUT as an absolute path" in proc.stderr
    proc = batch(tmp_path / "Y" / "exp", tmp_path / "Y")  # as told: every image of Y is segmented
    assert proc.returncode == 0 and "3 done, 0 already in " in proc.stdout
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_a_list_resumes_however_it_and_its_entries_are_spelled(tmp_path, shared_images):
    """A list named by its absolute path, then relatively; a list in the working folder (entries
    written without './'), then named from its parent: each rerun does nothing again."""
    arch = tmp_path / "arch"
    arch.mkdir()
    shutil.copy(shared_images[0], arch / "a.png")
    shutil.copy(shared_images[1], arch / "b.png")
    (arch / "absolute.txt").write_text(f"{arch / 'a.png'}\n{arch / 'b.png'}\n")
    (arch / "relative.txt").write_text("a.png\nb.png\n")

    def batch(listing, out, cwd):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(listing), "--out", str(out),
                               "--samples", "2", "--single-look", "--no-progress"], capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        with open(out / "results.csv", newline="") as f:
            return proc.stdout, len(list(csv.DictReader(f)))

    assert batch(arch / "absolute.txt", tmp_path / "o1", tmp_path)[1] == 2
    out, rows = batch("arch/absolute.txt", tmp_path / "o1", tmp_path)
    assert "0 done" in out and rows == 2
    assert batch("relative.txt", tmp_path / "o2", arch)[1] == 2
    out, rows = batch("arch/relative.txt", tmp_path / "o2", tmp_path)
    assert "0 done" in out and rows == 2


def test_lists_from_windows_tools_read_as_their_author_meant(tmp_path, shared_images):
    """A list saved as "Unicode" (UTF-16) by Notepad ended the run with a traceback ("embedded null byte"),
    after the output folder was made; a CRLF list with a line appended on Linux failed every CRLF entry
    ("a.png: no such file" for a file that exists: the CR is invisible)."""
    from chexmask_rt.errors import InputError

    shutil.copy(shared_images[0], tmp_path / "a.png")
    shutil.copy(shared_images[1], tmp_path / "b.png")
    want = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    for codec in ("utf-16", "utf-16-be"):  # Notepad's "Unicode" and "Unicode big endian", each with its BOM
        bom = "\ufeff".encode(codec) if codec.endswith("be") else b""  # "utf-16" writes its own
        (tmp_path / "list.txt").write_bytes(bom + "a.png\r\nb.png\r\n".encode(codec))
        assert collect_inputs(tmp_path / "list.txt") == want, codec
    (tmp_path / "list.txt").write_bytes(b"a.png\r\nb.png\n")  # CRLF, then a line appended with LF
    assert collect_inputs(tmp_path / "list.txt") == want
    (tmp_path / "bare.txt").write_bytes("a.png\n".encode("utf-16-le"))  # UTF-16 without its byte-order mark
    with pytest.raises(InputError, match="holds a NUL byte, which no file name does"):
        collect_inputs(tmp_path / "bare.txt")
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(tmp_path / "bare.txt"), "--out",
                           str(tmp_path / "out"), "--samples", "2", "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_folder_whose_lock_was_deleted_is_still_no_input(tmp_path, shared_images):
    """The lock file was the only mark of an earlier output folder: after a "stale" lock was removed by hand,
    or a copy dropped dot files, its masks and overlays were segmented as chest radiographs (one unflagged)."""
    from chexmask_rt.batch_folder import LOCK_NAME, MANIFEST_NAME

    root = tmp_path / "archive"
    (root / "old" / "masks").mkdir(parents=True)
    shutil.copy(shared_images[0], root / "a.png")
    shutil.copy(shared_images[1], root / "old" / "masks" / "a_heart.png")
    (root / "old" / MANIFEST_NAME).write_text('{"format": "chexmask-rt batch 1", "Samples": "2"}')
    found = discover(root)
    assert found.images == [str(root / "a.png")]
    assert found.skipped == [(str(root / "old"), "an earlier chexmask-rt batch's output folder, never an input")]
    assert not (root / "old" / LOCK_NAME).exists()
    (root / "old" / MANIFEST_NAME).write_text('{"name": "someone else\'s batch.json"}')  # not ours: searched
    assert discover(root).images == [str(root / "a.png"), str(root / "old" / "masks" / "a_heart.png")]


def test_macos_appledouble_files_are_skipped_and_dicm_without_a_preamble_is_named(tmp_path, shared_images):
    """Every "._x.png" macOS copies beside x.png failed as an unreadable image (exit 1 on any Mac-copied
    archive); a file starting with DICM (no preamble, no extension) was said to have "no DICM marker"."""
    shutil.copy(shared_images[0], tmp_path / "x.png")
    (tmp_path / "._x.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00" + bytes(80))
    (tmp_path / "._y.png").write_bytes(shared_images[1].read_bytes())  # a real image under such a name: read
    (tmp_path / "1.2.3.4").write_bytes(b"DICM" + bytes(200))
    found = discover(tmp_path)
    assert found.images == [str(tmp_path / "._y.png"), str(tmp_path / "x.png")]
    assert found.skipped == [
        (str(tmp_path / "._x.png"), "a macOS AppleDouble file (another file's metadata), not an image"),
        (str(tmp_path / "1.2.3.4"), "DICM at the start, without the 128-byte preamble of a DICOM file: named .dcm "
                                    "it is read as one")]


def test_jpeg_suffixes_and_image_formats_without_an_image_extension_are_named(tmp_path, shared_images):
    """`predict` reads a JPEG named .jfif or .jpe and a PNG saved without an extension, yet `batch` skipped them
    as "not an image (no image extension, no DICM marker)", as it did GIF, WebP and JPEG 2000 files."""
    from PIL import Image

    picture = Image.open(shared_images[0]).convert("L")
    for name in ("a.jfif", "b.JPE", "jpeg_0001"):
        picture.save(tmp_path / name, format="JPEG")
    shutil.copy(shared_images[0], tmp_path / "export_0001")
    picture.save(tmp_path / "tiff_0001", format="TIFF")
    picture.save(tmp_path / "bmp_0001", format="BMP")
    picture.save(tmp_path / "x.gif")
    picture.save(tmp_path / "x.webp", lossless=True)
    picture.save(tmp_path / "x.jp2")
    (tmp_path / "notes").write_bytes(b"BMW service log\n")  # "BM" alone is no BMP
    found = discover(tmp_path)
    assert found.images == [str(tmp_path / "a.jfif"), str(tmp_path / "b.JPE")]
    renamed = "file without an image extension: rename it ({}) or name it in a list"
    unsupported = "image: not a supported format; convert it to PNG"
    assert found.skipped == [(str(tmp_path / name), reason) for name, reason in (
        ("bmp_0001", "a BMP " + renamed.format(".bmp")), ("export_0001", "a PNG " + renamed.format(".png")),
        ("jpeg_0001", "a JPEG " + renamed.format(".jpg")),
        ("notes", "not an image (no image extension, no DICM marker)"),
        ("tiff_0001", "a TIFF " + renamed.format(".tif")), ("x.gif", "a GIF " + unsupported),
        ("x.jp2", "a JPEG 2000 " + unsupported), ("x.webp", "a WebP " + unsupported))]


def test_other_first_bytes_are_named_by_their_format_only_when_they_are_it(tmp_path, shared_images):
    """A BigTIFF and a raw JPEG 2000 codestream are named like their kin; a RIFF file that is not WebP (a
    WAV recording) is no image."""
    from PIL import Image

    Image.open(shared_images[0]).convert("L").save(tmp_path / "x.j2k")  # a codestream: FF 4F FF 51
    (tmp_path / "big_0001").write_bytes(b"II+\x00\x08\x00\x00\x00" + bytes(16))
    (tmp_path / "big_0002").write_bytes(b"MM\x00+\x00\x08\x00\x00" + bytes(16))
    (tmp_path / "sound").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(16))
    found = discover(tmp_path)
    assert found.images == []
    tiff = "a TIFF file without an image extension: rename it (.tif) or name it in a list"
    assert found.skipped == [(str(tmp_path / "big_0001"), tiff), (str(tmp_path / "big_0002"), tiff),
                             (str(tmp_path / "sound"), "not an image (no image extension, no DICM marker)"),
                             (str(tmp_path / "x.j2k"), "a JPEG 2000 image: not a supported format; convert it to PNG")]


def test_a_skipped_list_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    """A full disk ended a batch with "chexmask-rt: error: OSError: [Errno 28] No space left on device",
    naming no file, where every other output the batch writes is named."""
    import errno

    from chexmask_rt.errors import InputError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(discovery, "write_whole", full)
    with pytest.raises(InputError, match=f"{tmp_path / discovery.SKIPPED_NAME}: cannot write .*No space left"):
        discovery.write_skipped(tmp_path, [("notes.txt", "not an image")])
