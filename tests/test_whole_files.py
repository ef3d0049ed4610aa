"""Outputs are written whole or not at all: a write that fails midway (a full disk) leaves the file
that was there before, and no temporary file behind."""
import errno
from pathlib import Path

import pytest

from chexmask_rt.cli import EXIT_INPUT, main
from chexmask_rt.whole_files import write_whole


def _full_disk_after_half(monkeypatch):
    """Path.write_text / write_bytes write half their data, then fail as a full disk does."""
    def half_then_enospc(original):
        def write(self, data, *args, **kwargs):
            original(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return write

    monkeypatch.setattr(Path, "write_text", half_then_enospc(Path.write_text))
    monkeypatch.setattr(Path, "write_bytes", half_then_enospc(Path.write_bytes))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def fails_midway(tmp):
        tmp.write_text("new, half writ")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        write_whole(target, fails_midway)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    write_whole(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize("option,name", [("--json", "r.json"), ("--csv", "r.csv"), ("--overlay", "r.png"),
                                         ("--masks", "masks")])
def test_predict_outputs_survive_a_full_disk(tmp_path, monkeypatch, capsys, shared_images, option, name):
    target = tmp_path / name
    if option == "--masks":
        target.mkdir()
        import cv2
        import numpy as np

        from chexmask_rt.csv_output import MASK_WRITER
        from chexmask_rt.png_mark import marked

        old_mask = marked(cv2.imencode(".png", np.zeros((2, 2), np.uint8))[1].tobytes(), MASK_WRITER)  # an earlier run's
        old = {p: old_mask for p in (target / f"{shared_images[0].stem}_right_lung.png",)}
    else:
        old = {target: b"old output"}
    for path, data in old.items():
        path.write_bytes(data)
    _full_disk_after_half(monkeypatch)
    code = main(["predict", str(shared_images[0]), "--samples", "3", option, str(target)])
    assert code == EXIT_INPUT
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1, err
    for path, data in old.items():
        monkeypatch.undo()
        assert path.read_bytes() == data
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_a_dicom_seg_survives_a_full_disk(tmp_path, monkeypatch, capsys):
    import pydicom

    from conftest import SHARED

    source = sorted((SHARED / "data" / "dicom").glob("*.dcm"))[0]
    old = tmp_path / "seg" / f"{source.stem}.seg.dcm"
    old.parent.mkdir()
    old.write_bytes(b"old object")
    original = pydicom.dataset.Dataset.save_as

    def half_then_enospc(self, filename, *args, **kwargs):
        original(self, filename, *args, **kwargs)
        Path(filename).write_bytes(Path(filename).read_bytes()[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", half_then_enospc)
    code = main(["predict", str(source), "--samples", "3", "--dicom-seg", str(tmp_path / "seg")])
    assert code == EXIT_INPUT
    err = capsys.readouterr().err
    assert f"{old}: cannot write the DICOM SEG of {source} (No space left on device)" in err \
        and len(err.strip().splitlines()) == 1
    assert old.read_bytes() == b"old object" and not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("hard_links", [True, "EPERM", "ENOSYS"])
def test_write_whole_unclaimed_never_writes_over_a_file_it_may_not_replace(tmp_path, monkeypatch, hard_links):
    import errno
    import os

    from chexmask_rt.whole_files import write_whole_unclaimed

    if hard_links is not True:  # an SMB or FAT archive mount (EPERM), FUSE without link (ENOSYS, e.g. gcsfuse)
        def no_link(*_):
            raise OSError(getattr(errno, hard_links), "no hard links")
        monkeypatch.setattr(os, "link", no_link)
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    a.write_text("theirs")
    mine = lambda p: p.read_text() == "mine"  # noqa: E731
    assert write_whole_unclaimed([a, b], lambda t: t.write_text("mine"), replaces=mine) == b
    assert (a.read_text(), b.read_text()) == ("theirs", "mine")
    assert write_whole_unclaimed([a, b], lambda t: t.write_text("mine"), replaces=mine) == b  # its own: replaced
    b.write_text("other")
    assert write_whole_unclaimed([a, b], lambda t: t.write_text("mine"), replaces=mine) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcm", "b.dcm"]  # no temporary left
    assert (a.read_text(), b.read_text()) == ("theirs", "other")


def test_a_pipe_or_device_is_written_in_place_not_replaced(tmp_path):
    """`--json /dev/null` as root renamed a file over /dev/null: the device node became a file."""
    import os
    import stat
    import threading

    from chexmask_rt.whole_files import write_text_whole

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_text_whole(fifo, "a result\n")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    reader.join(timeout=10)
    assert got == ["a result\n"]


def test_any_name_the_file_system_takes_can_be_written_whole(tmp_path):
    """The temporary name added ~27 bytes: a legal 240-255 byte output name failed with 'File name too
    long' (a batch image with --masks failed outright)."""
    import os

    from chexmask_rt.whole_files import NAME_MAX, write_bytes_whole

    for name in ("a" * 251 + ".png", "é" * 125 + ".png"):
        assert len(os.fsencode(name)) <= NAME_MAX
        write_bytes_whole(tmp_path / name, b"whole")
        assert (tmp_path / name).read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a" * 251 + ".png", "é" * 125 + ".png"])


def test_a_failed_picture_names_the_picture_not_its_temporary_file(tmp_path, monkeypatch, default_segmenter, example1):
    import chexmask_rt.csv_output as csv_output
    from chexmask_rt.errors import InputError

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).parent / f".{Path(path).name}.1.2.tmp"))

    monkeypatch.setattr(csv_output, "write_bytes_whole", full_disk)
    result = default_segmenter.predict(example1, samples=2)
    with pytest.raises(InputError) as err:
        csv_output.write_masks(tmp_path, "x", result)
    assert str(err.value) == f"{tmp_path / 'x_right_lung.png'}: cannot write the mask picture (No space left on device)"


def test_a_symbolic_link_is_written_through_to_its_target(tmp_path):
    """`--json link.json` (link.json -> real.json) renamed the new file over the link: the link became a
    file and real.json kept the old answer."""
    import os

    from chexmask_rt.whole_files import write_text_whole

    (tmp_path / "results").mkdir()
    real = tmp_path / "results" / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(os.path.relpath(real, tmp_path))
    dangling = tmp_path / "new.json"
    dangling.symlink_to("results/new.json")  # as a shell's `>` does: the file is made where the link points
    write_text_whole(link, "new")
    write_text_whole(dangling, "made")
    assert link.is_symlink() and real.read_text() == "new"
    assert dangling.is_symlink() and (tmp_path / "results" / "new.json").read_text() == "made"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["new.json", "real.json"]
