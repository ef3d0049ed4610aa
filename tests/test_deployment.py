"""The CLI where hospitals and devices run it: nothing written outside the output paths, closed or
gone standard streams, a group sharing a batch folder, a terminal that cannot show a file's name."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMAGES

IMAGE = IMAGES / "nih_00000001_000_512.png"


def run(args, *, env=None, shell_suffix="", **kwargs) -> subprocess.CompletedProcess:
    """The CLI in a shell, so that its standard streams can be closed or redirected as a deployment does
    (buffered, as deployments run it: PYTHONUNBUFFERED would hide what is written only at exit)."""
    command = " ".join(f"'{a}'" for a in [sys.executable, "-m", "chexmask_rt", *map(str, args)]) + shell_suffix
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, **kwargs)


def test_nothing_is_written_under_home_or_tmpdir(tmp_path):
    """ONNX Runtime's telemetry wrote a device id and an event store (executable path, CPU, OS) under
    $HOME/.cache, and /tmp/.ses, at every engine load."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(home), "TMPDIR": str(tmp)}
    proc = run(["predict", IMAGE, "--samples", 2, "--json", tmp_path / "r.json"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert list(home.rglob("*")) == [] and list(tmp.rglob("*")) == []


def test_a_batch_runs_with_standard_error_closed(tmp_path):
    """sys.stderr is None then: the progress bar's isatty() raised before the first image, so nothing
    was done (exit 1, without a word)."""
    out = tmp_path / "out"
    proc = run(["batch", IMAGES, "--out", out, "--samples", 2], shell_suffix=" 2>&-")
    assert proc.returncode == 0 and proc.stdout.startswith("batch: 5 images: 5 done"), proc.stdout
    assert (out / "results.csv").read_text().count("\n") == 6


def test_summary_lines_nobody_reads_cost_nothing(tmp_path):
    """Standard output on a full disk (or a reader that left): the results are in files; the run
    ended with Python's exit 120 and 'Exception ignored' lines."""
    out = tmp_path / "out"
    proc = run(["batch", IMAGES, "--out", out, "--samples", 2], shell_suffix=" > /dev/full")
    assert proc.returncode == 0 and "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "results.csv").read_text().count("\n") == 6


def test_a_json_nobody_reads_does_not_cost_the_csv(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "chexmask_rt", "predict", str(IMAGE), "--samples", "2",
                             "--json", "-", "--csv", str(tmp_path / "r.csv")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the JSON is written
    err = proc.stderr.read()
    assert proc.wait() == 3 and "standard output: cannot write JSON" in err and "Traceback" not in err
    assert (tmp_path / "r.csv").read_text().count("\n") == 2


def test_a_group_can_resume_the_folder_a_member_made(tmp_path):
    """The lock, results.csv and errors.csv were created 0644 whatever the umask: another member of
    the group could not resume the batch."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "batch", str(IMAGES), "--out", str(out),
                           "--samples", "2", "--no-progress"], capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(0o002))
    assert proc.returncode == 0, proc.stderr
    for name in (".chexmask-rt.lock", "results.csv", "errors.csv"):
        assert (out / name).stat().st_mode & stat.S_IWGRP, name


def test_a_name_the_terminal_cannot_show_is_escaped(tmp_path):
    """A summary naming a file whose name the stream's encoding cannot hold raised UnicodeEncodeError
    (a traceback, exit 1) after the results were written."""
    image = tmp_path / "thorax_é.png"
    shutil.copy(IMAGE, image)
    env = os.environ | {"PYTHONIOENCODING": "ascii"}
    proc = run(["predict", image, "--samples", 2, "--csv", tmp_path / "r.csv"], env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "thorax_\\xe9.png" in proc.stdout and (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("stream", ["1", "2"])
def test_predict_of_several_images_with_a_stream_closed(tmp_path, stream):
    proc = run(["predict", IMAGE, IMAGE, "--samples", 2, "--csv", tmp_path / "r.csv"], shell_suffix=f" {stream}>&-")
    assert proc.returncode == 0 and (tmp_path / "r.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("args, redirect, what", [
    (["info"], " > /dev/full", "the engine's information"),
    (["--help"], " > /dev/full", "the help or version text"),
    (["batch", "--help"], " > /dev/full", "the help or version text"),
    (["--version"], " 1>&-", "the help or version text"),
    (["predict", IMAGE, "--samples", 2, "--csv", "-"], " 1>&-", "CSV"),
    (["predict", IMAGE, "--samples", 2, "--json", "-"], " 1>&-", "JSON"),
])
def test_data_for_standard_output_that_is_lost_is_an_error(args, redirect, what):
    """Unlike a summary line, what the command was asked to print: lost with exit 0 (info, --csv -) or
    Python's 120 (--help, --version) before."""
    proc = run(args, shell_suffix=redirect)
    assert proc.returncode == 3 and f"chexmask-rt: error: standard output: cannot write {what}" in proc.stderr, \
        proc.stderr


def test_csv_on_standard_output_keeps_names_that_are_not_utf8_as_files_do(tmp_path):
    folder = os.fsencode(tmp_path)
    image = os.fsdecode(folder + b"/\xe9.png")
    shutil.copy(IMAGE, image)
    file_csv = tmp_path / "r.csv"
    piped = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", image, "--samples", "2", "--csv", "-"],
                           capture_output=True, env=os.environ | {"PYTHONIOENCODING": "utf-8"})
    assert subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", image, "--samples", "2", "--csv",
                           str(file_csv)], capture_output=True).returncode == 0
    assert piped.returncode == 0 and piped.stdout == file_csv.read_bytes() and b"/\xe9.png" in piped.stdout


def test_a_descriptor_started_closed_is_not_taken_by_the_next_file():
    """With stdin and stderr closed, the next file opened (the batch lock) became descriptor 2, and
    low-level writes to stderr went into it."""
    code = ("import os; from chexmask_rt.cli import _steady_streams; _steady_streams(); "
            "print(os.open(os.devnull, os.O_RDONLY))")
    proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -c '{code}' 0<&- 2>&-"], capture_output=True, text=True)
    assert proc.returncode == 0 and int(proc.stdout) > 2, proc.stdout


def _predict_json_to(stdout, env_extra: dict[str, str]) -> subprocess.Popen:
    """`predict --json -` of one image five times (about 140 KB of JSON, past a pipe's 64 KiB) into `stdout`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | env_extra
    return subprocess.Popen([sys.executable, "-m", "chexmask_rt", "predict", *[str(IMAGE)] * 5, "--samples", "2",
                             "--json", "-"], stdout=stdout, stderr=subprocess.PIPE, env=env)


def test_json_cut_off_by_its_reader_is_an_error_also_unbuffered():
    """With PYTHONUNBUFFERED=1, as containers set it, a pipe's short write was ignored: the JSON past its
    first 64 KiB was lost, with exit 0 and nothing said."""
    proc = _predict_json_to(subprocess.PIPE, {"PYTHONUNBUFFERED": "1"})
    assert proc.stdout.read(10).startswith(b"[")
    proc.stdout.close()
    assert proc.wait(timeout=300) == 3 and "cannot write JSON" in proc.stderr.read().decode()


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_slow_reader_of_a_non_blocking_pipe_gets_all_the_json(unbuffered):
    """A supervisor may hand over standard output as a non-blocking pipe: a reader busy for a moment got
    the first 64 KiB at exit 0 (unbuffered), or nothing at exit 3."""
    import fcntl
    import json
    import time

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
    proc = _predict_json_to(write_end, {"PYTHONUNBUFFERED": unbuffered} if unbuffered else {})
    os.close(write_end)
    time.sleep(1)  # the reader is busy while the first images are predicted and the pipe fills
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
        time.sleep(0.05)
    os.close(read_end)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert len(json.loads(data)) == 5 and len(data) > 65536


@pytest.mark.parametrize("args", [["predict", IMAGE, "--json", "r.json"], ["predict", "img.png"],
                                  ["batch", IMAGES, "--out", "out"]])
def test_relative_paths_in_a_deleted_working_folder_are_one_line(tmp_path, args):
    """predict ended in a traceback (exit 1, "some images failed") from realpath of a relative path, and
    batch said "FileNotFoundError: [Errno 2] No such file or directory", naming nothing."""
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = run([*args, "--samples", 2], cwd=gone, preexec_fn=lambda: os.rmdir(gone))  # after the child's chdir
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "the working folder is gone" in proc.stderr


@pytest.fixture(scope="module")
def latin_1(tmp_path_factory) -> dict[str, str]:
    """An environment whose locale is de_DE in ISO-8859-1, made with localedef (none is installed here)."""
    locales = tmp_path_factory.mktemp("locales")
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "ISO-8859-1", str(locales / "de_DE")],
                          capture_output=True, text=True) if shutil.which("localedef") else None
    if made is None or not (locales / "de_DE").is_dir():
        pytest.skip(f"no ISO-8859-1 locale can be made here ({made.stderr.strip() if made else 'no localedef'})")
    env = {**os.environ, "LOCPATH": str(locales), "LC_ALL": "de_DE"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           capture_output=True, text=True, env=env)
    assert probe.stdout.strip() == "iso8859-1"  # the locale took: the old code wrote mojibake under it
    return env


def test_names_keep_their_bytes_under_a_latin_1_locale(tmp_path, latin_1):
    """Under LC_ALL=de_DE (ISO-8859-1) 'Röntgen.png' was decoded by the locale and written to the UTF-8
    JSON as 'RÃ¶ntgen.png', a name no file has; a resume then redid every such image."""
    import json

    name = tmp_path / "Röntgen.png"
    shutil.copyfile(IMAGE, name)
    proc = run(["predict", name, "--samples", 2, "--json", tmp_path / "r.json"], env=latin_1)
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "r.json").read_bytes().decode("utf-8"))["image"]
    assert written == str(name) and os.path.exists(written)


def test_the_rerun_in_utf8_mode_is_the_same_command(tmp_path, latin_1):
    """The rerun was `python -X utf8 -m chexmask_rt`, which puts the working folder first on the import
    path: a chexmask_rt.py in the folder a user ran `batch .` from ran instead of the package. And a
    Latin-1 name in an error line read R\\udcf6ntgen where the terminal shows the file as Röntgen."""
    (tmp_path / "chexmask_rt.py").write_text("print('code from the working folder ran')\n")
    script = Path(sys.executable).with_name("chexmask-rt")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=latin_1, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("chexmask-rt "), proc.stdout + proc.stderr
    missing = os.fsencode(tmp_path) + b"/R\xf6ntgen.png"  # the name as a Latin-1 system stores it
    proc = subprocess.run([os.fsencode(script), b"predict", missing], capture_output=True, env=latin_1, cwd=tmp_path)
    assert proc.returncode == 3 and b"R\xf6ntgen.png" in proc.stderr, proc.stderr


def test_a_warning_quoting_a_files_text_cannot_drive_the_terminal(tmp_path):
    """pydicom's warning quotes a DICOM's Specific Character Set as it is: ESC sequences in it reached the
    terminal raw (retitled and cleared it, printed a fake status line) though every other line is escaped."""
    import pydicom

    from conftest import SHARED

    ds = pydicom.dcmread(SHARED / "data" / "dicom" / "cr_chest_monochrome2_jpeg.dcm")
    ds.SpecificCharacterSet = "X\x1b]0;PWNED\x07\x1b[2J"
    path = tmp_path / "cs.dcm"
    with pydicom.config.disable_value_validation():
        ds.save_as(path, enforce_file_format=True)
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(path), "--samples", "2"],
                          capture_output=True)
    warning = [line for line in proc.stderr.split(b"\n") if b"warning" in line]
    assert proc.returncode == 0 and warning, proc.stderr
    assert b"\x1b" not in proc.stderr and b"\\x1b]0;PWNED\\x07" in warning[0]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["batch", "--help"]])
def test_help_that_standard_output_cannot_take_is_an_error_also_unbuffered(args):
    """argparse drops the OSError of its write: with PYTHONUNBUFFERED=1 a lost --help exited 0, unsaid."""
    command = " ".join(f"'{a}'" for a in [sys.executable, "-u", "-m", "chexmask_rt", *args]) + " > /dev/full"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)  # -u: as PYTHONUNBUFFERED=1
    assert proc.returncode == 3 and "cannot write the help or version text" in proc.stderr, proc.stderr


def test_a_program_calling_main_is_not_restarted_under_a_latin_1_locale(tmp_path, latin_1):
    """The UTF-8 rerun replaced whatever process called main(): a program of its own ran again from
    its start (its work done twice). Only the command itself reruns."""
    program = tmp_path / "program.py"
    program.write_text("import sys\nprint('started')\nsys.argv = ['program', '--version']\n"
                       "from chexmask_rt.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, env=latin_1, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines.count("started") == 1 and lines[-1].startswith("chexmask-rt "), lines


def test_the_installed_command_keeps_names_bytes_under_a_latin_1_locale(tmp_path, latin_1):
    import json

    name = tmp_path / "Röntgen.png"
    shutil.copyfile(IMAGE, name)
    script = Path(sys.executable).with_name("chexmask-rt")
    proc = subprocess.run([str(script), "predict", str(name), "--samples", "2", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=latin_1)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_bytes().decode("utf-8"))["image"] == str(name)


def test_a_refused_relative_input_in_a_deleted_working_folder_names_why(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = run(["batch", "in", "--out", tmp_path / "out", "--samples", 2], cwd=gone, preexec_fn=lambda: os.rmdir(gone))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "the working folder is gone" in proc.stderr, proc.stderr
