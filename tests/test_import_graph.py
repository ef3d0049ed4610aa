"""The runtime's import graph: it imports nothing from the export toolchain, training, the
benchmarks or the tests, and finds ``chexmask-rt export`` through an entry point instead."""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from chexmask_rt import cli
from chexmask_rt.errors import ModelError

from conftest import REPO

RUNTIME = REPO / "runtime" / "chexmask_rt"
FORBIDDEN = ("chexmask_export", "training", "benchmarks", "tests")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, importlib.import_module("...") included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module or ""))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def forbidden_imports(root: Path) -> list[str]:
    return [f"{path.relative_to(root.parent)}:{line}: {name}"
            for path in sorted(root.rglob("*.py")) for line, name in imported_modules(path)
            if name.split(".")[0] in FORBIDDEN]


def test_the_runtime_imports_nothing_from_export_training_benchmarks_or_tests():
    assert len(list(RUNTIME.rglob("*.py"))) > 20  # the scan sees the package
    assert forbidden_imports(RUNTIME) == []


def test_the_scan_finds_each_kind_of_forbidden_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("import training.data\nfrom chexmask_export import graph\nfrom . import ok\n")
    (package / "b.py").write_text("def f():\n    from benchmarks.run import main\n"
                                  "    return importlib.import_module('tests.reference')\n")
    assert forbidden_imports(package) == ["pkg/a.py:1: training.data", "pkg/a.py:2: chexmask_export",
                                          "pkg/b.py:2: benchmarks.run", "pkg/b.py:3: tests.reference"]


def _setup_entry_points() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    keyword = next(k for k in call.keywords if k.arg == "entry_points")
    return ast.literal_eval(keyword.value)


def test_setup_registers_the_export_command_in_the_commands_group():
    points = _setup_entry_points()[cli.COMMANDS_GROUP]
    assert points == ["export=chexmask_export.command:add_command"]
    from chexmask_export.command import add_command
    assert callable(add_command)


def _registration(folder: Path) -> Path:
    """A distribution's metadata registering the export command, as an install writes it."""
    info = folder / "chexmask_rt_commands-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chexmask-rt-commands\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{cli.COMMANDS_GROUP}]\nexport = chexmask_export.command:add_command\n")
    return folder


@pytest.mark.parametrize("copies", [1, 2])
def test_a_registered_export_command_has_its_flags(tmp_path, copies):
    """The runtime adds the export package's command, once even where two copies register it
    (an installed package and a build's egg-info in the working folder)."""
    folders = [str(_registration(tmp_path / str(i))) for i in range(copies)]
    code = f"import sys; sys.path[:0] = {folders!r}; from chexmask_rt.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "export", "--help"], capture_output=True, text=True,
                          cwd=tmp_path)  # no build metadata of the working folder
    assert proc.returncode == 0, proc.stderr
    for flag in ("--checkpoint", "--config", "--output", "--samples-output", "--name", "--model-version",
                 "--description", "--no-fused-norms", "--second-look", "--no-landmark-offsets"):
        assert flag in proc.stdout


@pytest.mark.parametrize("args", [["export"], ["export", "--checkpoint", "c.pt", "--output", "o.onnx"]])
def test_without_a_registered_export_command_it_says_what_to_install(monkeypatch, capsys, args):
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **_: [])
    assert cli.main(args) == cli.EXIT_MODEL
    err = capsys.readouterr().err
    assert "pip install 'chexmask-rt[export]'" in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_export_command_without_torch_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "chexmask_export.checkpoint", None)  # as if torch were missing
    from chexmask_export import command

    parser = argparse.ArgumentParser()
    command.add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--checkpoint", "c.pt", "--output", "o.onnx"])
    with pytest.raises(ModelError, match=r"pip install 'chexmask-rt\[export\]'"):
        args.run(args)
