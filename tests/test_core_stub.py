"""The typed stub of the native module (runtime/chexmask_rt/_core.pyi) declares what the module has."""
import ast
from pathlib import Path

import pytest

import chexmask_rt

STUB = Path(chexmask_rt.__file__).with_name("_core.pyi")


def _stub_tree():
    return ast.parse(STUB.read_text())


def _declared(body) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def test_every_public_name_of_the_core_is_in_its_stub_and_back(native_core):
    stub_only = {"FieldRow"}  # a TypedDict for RESULT_FIELDS' rows: typing only
    assert _declared(_stub_tree().body) - stub_only == {n for n in dir(native_core) if not n.startswith("_")}


def test_every_class_of_the_stub_declares_its_members(native_core):
    classes = [n for n in _stub_tree().body if isinstance(n, ast.ClassDef) and hasattr(native_core, n.name)]
    assert len(classes) >= 7
    for node in classes:
        members = {n for n in dir(getattr(native_core, node.name)) if not n.startswith("_")}
        assert _declared(node.body) == members, node.name


def test_the_stub_declares_the_tables_result_properties(native_core):
    """_core.pyi gave Result a catch-all __getattr__ the module does not have: type checkers accepted
    r.landmrks, and typed r.landmarks as possibly None."""
    result = next(n for n in _stub_tree().body if isinstance(n, ast.ClassDef) and n.name == "Result")
    methods = {f.name: ast.unparse(f.returns) for f in result.body if isinstance(f, ast.FunctionDef)}
    table = {row["name"]: row["required"] for row in native_core.RESULT_FIELDS}
    assert "__getattr__" not in methods
    assert [m for m in methods if m in table] == list(table)
    for name, required in table.items():
        assert ("None" in methods[name]) == (not required), name
        assert isinstance(getattr(native_core.Result, name), property), name


@pytest.fixture()
def native_core():
    from conftest import skip_or_fail_without_native

    try:
        from chexmask_rt import _core
    except ImportError:
        skip_or_fail_without_native("the native core is not built")
    return _core
