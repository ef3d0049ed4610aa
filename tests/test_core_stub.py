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
    # a Result's array fields come from the schema table (RESULT_FIELDS) through the stub's __getattr__
    table_fields = {row["name"] for row in native_core.RESULT_FIELDS}
    classes = [n for n in _stub_tree().body if isinstance(n, ast.ClassDef) and hasattr(native_core, n.name)]
    assert len(classes) >= 7
    for node in classes:
        members = {n for n in dir(getattr(native_core, node.name)) if not n.startswith("_")}
        if node.name == "Result":
            members -= table_fields
        assert _declared(node.body) == members, node.name


@pytest.fixture()
def native_core():
    from conftest import skip_or_fail_without_native

    try:
        from chexmask_rt import _core
    except ImportError:
        skip_or_fail_without_native("the native core is not built")
    return _core
