"""One output schema (issue 19): cpp/include/chexmask_rt/result_fields.def declares a Result's
engine-output fields once; the C++ Result, the binding, the C API, the examples' JSON and the Python
Result, JSON and CSV follow it."""
import ast
import re
from pathlib import Path

import numpy as np

from conftest import REPO, skip_or_fail_without_native

try:  # the package needs the core: without it nothing below runs, and CI (REQUIRE_NATIVE) must fail
    from chexmask_rt import core
except ImportError as exc:
    skip_or_fail_without_native(f"chexmask_rt.core: {exc}", allow_module_level=True)
from chexmask_rt import Result, SecondLook  # noqa: E402
from chexmask_rt.csv_output import COLUMNS, COLUMNS_V1, SCHEMA_HEADERS, SCHEMA_VERSION, csv_row, schema_of  # noqa: E402

TABLE = REPO / "cpp" / "include" / "chexmask_rt" / "result_fields.def"
NAMES = [f["name"] for f in core.RESULT_FIELDS]
OUTPUTS = [f["output"] for f in core.RESULT_FIELDS]
# The C ABI 1 struct chexmask_rt_result_fields is a frozen view of the fields of its release, kept for
# callers built against it; new fields reach C through chexmask_rt_result_field, which follows the table.
FROZEN_C_ABI = {"cpp/include/chexmask_rt/chexmask_rt_c.h": "chexmask_rt_result_fields",
                "cpp/src/c_api.cpp": "chexmask_rt_result* wrap(chexmask_rt::Result result)"}


def _table_rows() -> list[list[str]]:
    text = re.sub(r"//[^\n]*", "", TABLE.read_text())
    return [[a.strip() for a in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", m)]
            for m in re.findall(r"CHEXMASK_RT_FIELD\((.*?)\)\s*(?=CHEXMASK_RT_FIELD|$)", text, re.S)]


def test_the_binding_exposes_the_table_as_declared():
    rows = _table_rows()
    assert [r[0] for r in rows] == NAMES and [r[1].strip('"') for r in rows] == OUTPUTS
    assert NAMES[:2] == ["landmarks", "landmarks_std"] and len(set(NAMES)) == len(NAMES)
    for f in core.RESULT_FIELDS:
        assert f["kind"] in ("position", "spread", "vector", "samples") and f["doc"]
        assert f["two_looks"] in ("mean", "pooled_std", "concat")
        assert f["pooled_with"] in NAMES and (f["pooled_with"] != f["name"]) == (f["two_looks"] == "pooled_std")


def _python_declarations(path: Path) -> list[str]:
    """Literal collections, class bodies and calls that name three or more fields or outputs by hand.
    The one exception: result.py's declaration of Result for type checkers (under ``if
    TYPE_CHECKING``), which test_the_result_type_checkers_see_has_the_runtime_fields holds to the table."""
    found = []
    tree = ast.parse(path.read_text())
    known = set(NAMES) | set(OUTPUTS)
    typed_view = {id(n) for guard in tree.body if isinstance(guard, ast.If) and ast.unparse(guard.test) == "TYPE_CHECKING"
                  for n in guard.body if isinstance(n, ast.ClassDef) and n.name == "Result"} if path.name == "result.py" else set()
    for node in ast.walk(tree):
        if id(node) in typed_view:
            continue
        names: list[str] = []
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        elif isinstance(node, ast.Dict):
            names = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(node, ast.ClassDef):
            names = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        elif isinstance(node, ast.Call):
            names = [k.arg for k in node.keywords if k.arg]
        hits = sorted(set(names) & known)
        if len(hits) >= 3:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {', '.join(hits)}")
    return found


def _c_declarations(path: Path) -> list[str]:
    """Places in C/C++ source where three or more fields are named within a few lines (comments aside)."""
    rel = str(path.relative_to(REPO))
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), path.read_text(), flags=re.S)
    lines = [re.sub(r"//.*", "", line) for line in text.splitlines()]
    if rel in FROZEN_C_ABI:  # the frozen ABI-1 view: its struct and its one filler are exempt, nothing else
        start = next(i for i, line in enumerate(lines) if FROZEN_C_ABI[rel] in line)
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("}"))
        lines[start:end + 1] = [""] * (end + 1 - start)
    found = []
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, set(NAMES) | set(OUTPUTS))) + r")\b")
    for i in range(len(lines)):
        hits = {m.group(1) for line in lines[i:i + 4] for m in pattern.finditer(line)}
        if len(hits) >= 3:
            found.append(f"{rel}:{i + 1}: {', '.join(sorted(hits))}")
    return found


def test_the_table_is_the_only_declaration_of_the_field_list():
    """No source besides result_fields.def lists the fields: a hand-written second list is how the
    schema drifted before (issue 19: about 17 files for one new output)."""
    found = []
    for path in sorted((REPO / "runtime" / "chexmask_rt").rglob("*.py")):
        found += _python_declarations(path)
    for folder in ("src", "include", "python", "examples"):
        for path in sorted((REPO / "cpp" / folder).rglob("*")):
            if path.suffix in (".cpp", ".hpp", ".h", ".c"):
                found += _c_declarations(path)
    assert not found, "field lists outside result_fields.def:\n" + "\n".join(found)


def test_the_scan_finds_a_hand_written_list(tmp_path):
    """The scan above is not blind: it flags the kinds of lists this codebase had."""
    path = REPO / "runtime" / "chexmask_rt" / "_scan_probe.py"
    path.write_text('OUTPUTS = ("landmarks_mean", "landmarks_std", "landmarks_mu")\n'
                    'class R:\n    landmarks: int\n    landmarks_std: int\n    latent_mu: int\n')
    try:
        assert len(_python_declarations(path)) == 2
    finally:
        path.unlink()
    c = REPO / "cpp" / "src" / "_scan_probe.cpp"
    c.write_text("out.landmarks = a;\nout.landmarks_std = b;\n// latent_mu in a comment\nout.latent_sigma = c;\n")
    try:
        assert _c_declarations(c)
    finally:
        c.unlink()


def _result(**changes) -> Result:
    rng = np.random.default_rng(0)
    values = dict(landmarks=rng.random((120, 2)) * 100, landmarks_std=rng.random((120, 2)), landmarks_mu=rng.random((120, 2)),
                  latent_mu=rng.random(64), latent_sigma=rng.random(64), height=200, width=180, samples=5, seed=1,
                  model="m:1")
    return Result(**{**values, **changes})


def test_the_python_result_json_and_csv_follow_the_table():
    r = _result(second_look=SecondLook("pooled", 0.9, -3, 4, 150))
    d = r.to_dict()
    for f in core.RESULT_FIELDS:
        assert hasattr(r, f["name"])
        if f["json"] and f["required"]:
            np.testing.assert_array_equal(d[f["name"]], getattr(r, f["name"]))
        elif not f["json"]:
            assert f["name"] not in d
    assert d["second_look"] == {"look": "pooled", "first_fill": 0.9, "crop_left": -3, "crop_top": 4, "crop_side": 150}
    row = csv_row(r)
    for f in core.RESULT_FIELDS:
        assert not f["csv"] or f["csv"] in COLUMNS
        if f["csv"] and getattr(r, f["name"]) is not None:
            np.testing.assert_allclose(np.array(row[f["csv"]].split(","), float).reshape(-1, 2), getattr(r, f["name"]),
                                       atol=1e-3)  # cut to 3 decimals
    assert row["Second Look"] == "pooled" and row["Results Schema"] == str(SCHEMA_VERSION)
    assert _result().to_dict().keys() - {"second_look"} == d.keys() - {"second_look"}


def test_csv_schemas_only_append_and_keep_chexmasks_names():
    assert COLUMNS_V1[:3] == ("Image", "Landmarks (Mean)", "Landmarks (Std)")  # CheXmask's names, fixed
    for older, newer in zip(SCHEMA_HEADERS, SCHEMA_HEADERS[1:]):
        assert newer[:len(older)] == older and len(newer) > len(older)
    assert SCHEMA_HEADERS[-1] == COLUMNS and schema_of(COLUMNS) == SCHEMA_VERSION and schema_of(COLUMNS_V1) == 1
    assert schema_of(("Image", "Other")) is None


# The released results.csv headers, written out by hand: every schema's file in the field must keep
# resuming and merging, and readers that go by position must keep their columns. A swap inside the
# module's own lists went unnoticed while the tests built their "older" files from those lists.
RELEASED_V1 = ("Image", "Landmarks (Mean)", "Landmarks (Std)", "Right Lung", "Left Lung", "Heart", "Height", "Width",
               "Mean Node Std", "Mean Latent Sigma", "Quality Flag", "Quality Reason", "Samples", "Seed", "Model",
               "Second Look")
RELEASED_V2 = RELEASED_V1 + (
    "Results Schema", "Intended Use", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "Pixel Spacing Row (mm)", "Pixel Spacing Column (mm)", "Pixel Spacing Source", "CTR", "CTR Std",
    "Heart Diameter (px)", "Thoracic Diameter (px)", "Heart Diameter (mm)", "Thoracic Diameter (mm)",
    *(f"{organ} Area {kind}" for organ in ("Right Lung", "Left Lung", "Heart")
      for kind in ("(px2)", "Std (px2)", "(mm2)", "Std (mm2)")),
    "Measures Validation")
RELEASED_V3 = RELEASED_V2 + ("Bit Depth",)


def test_the_released_csv_headers_are_kept_column_for_column():
    assert SCHEMA_HEADERS[:3] == (RELEASED_V1, RELEASED_V2, RELEASED_V3)


def test_second_look_is_typed_and_picklable():
    import pickle

    r = _result(second_look=SecondLook("none", 0.2))
    back = pickle.loads(pickle.dumps(r))
    assert back.second_look == SecondLook("none", 0.2) and back.second_look.to_dict() == {"look": "none", "first_fill": 0.2}
    np.testing.assert_array_equal(back.landmarks, r.landmarks)
    assert not hasattr(r, "extra")


# A later release whose table has one more row with a CSV column (appended, as new rows are): here
# landmarks_mu again, written as "Landmarks (Mu)".
NEXT_RELEASE = """
import json, sys
import chexmask_rt.result as result
mu = next(f for f in result.FIELDS if f["name"] == "landmarks_mu")
result.FIELDS = (*result.FIELDS, {**mu, "csv": "Landmarks (Mu)"})
import chexmask_rt
from chexmask_rt.batch import run_batch
from chexmask_rt.csv_output import SCHEMA_VERSION
from chexmask_rt.merge import merge_folders
command, args = sys.argv[1], json.loads(sys.argv[2])
if command == "batch":
    s = run_batch(chexmask_rt.load(), args["images"], args["out"], samples=2, second_look=False, progress=False)
    print(json.dumps({"schema": SCHEMA_VERSION, "done": s.done, "skipped": s.skipped}))
else:
    m = merge_folders(args["folders"], args["out"])
    print(json.dumps({"schema": SCHEMA_VERSION, "rows": m.rows}))
"""


def _next_release(command: str, **args) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", NEXT_RELEASE, command, json.dumps(args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_later_column_resumes_and_merges_this_schemas_folders(tmp_path, shared_images, default_segmenter):
    """A release that adds a CSV column (schema N + 1) resumes a folder of schema N, keeping its rows
    as they were, and merges it with its own folders: adding a field never strands results."""
    from chexmask_rt.batch import run_batch

    images = [str(p) for p in shared_images[:4]]
    old, other = tmp_path / "old", tmp_path / "other"
    run_batch(default_segmenter, images[:2], old, samples=2, second_look=False, progress=False)
    run_batch(default_segmenter, images[3:4], other, samples=2, second_look=False, progress=False)
    before = _rows(old / "results.csv")

    resumed = _next_release("batch", images=images[:3], out=str(old))
    assert resumed == {"schema": SCHEMA_VERSION + 1, "done": 1, "skipped": 2}
    after = _rows(old / "results.csv")
    assert list(after[0]) == [*COLUMNS, "Landmarks (Mu)"]
    for was, now in zip(before, after[:2]):  # the older rows, untouched but for the new empty column
        assert now == {**was, "Landmarks (Mu)": ""}
    assert after[2]["Results Schema"] == str(SCHEMA_VERSION + 1) and len(after[2]["Landmarks (Mu)"].split(",")) == 240

    merged = _next_release("merge", folders=[str(old), str(other)], out=str(tmp_path / "all"))
    assert merged["rows"] == 4
    rows = _rows(tmp_path / "all" / "results.csv")
    assert [r["Results Schema"] for r in rows] == [str(SCHEMA_VERSION)] * 2 + [str(SCHEMA_VERSION + 1), str(SCHEMA_VERSION)]
    assert rows[3]["Landmarks (Mu)"] == "" and rows[3]["Image"] == images[3]


def test_the_result_type_checkers_see_has_the_runtime_fields():
    """Result is made at run time from the schema table; type checkers read the static declaration
    under TYPE_CHECKING instead (without it, mypy took Result for no type at all)."""
    import ast
    import dataclasses
    import typing

    import chexmask_rt.result as result_module
    from chexmask_rt.result import Result

    tree = ast.parse(open(result_module.__file__).read())
    declared = next(node for guard in tree.body if isinstance(guard, ast.If) and ast.unparse(guard.test) == "TYPE_CHECKING"
                    for node in guard.body if isinstance(node, ast.ClassDef) and node.name == "Result")
    static = [(s.target.id, ast.unparse(s.annotation), s.value is not None)
              for s in declared.body if isinstance(s, ast.AnnAssign)]
    runtime = dataclasses.fields(Result)
    assert [name for name, _, _ in static] == [f.name for f in runtime]
    for (name, annotation, has_default), f in zip(static, runtime):
        assert has_default == (f.default is not dataclasses.MISSING), name
        assert ("None" in annotation) == (f.default is None), name
    hints = typing.get_type_hints(Result)  # the runtime annotations resolve (they named classes not in scope)
    assert hints["landmark_samples"] == (np.ndarray | None) and hints["landmarks"] is np.ndarray


def test_the_json_measures_keys_are_the_documented_ones(default_segmenter):
    """The JSON's measures keys are the README's ("std_samples", ...); a renamed key broke readers silently."""
    measures = default_segmenter.predict(np.full((64, 64), 100, np.uint8), samples=2).to_dict()["measures"]
    assert set(measures) == {
        "cardiothoracic_ratio", "cardiothoracic_ratio_std", "heart_diameter_px", "thoracic_diameter_px",
        "heart_diameter_mm", "thoracic_diameter_mm", "area_px2", "area_std_px2", "area_mm2", "area_std_mm2",
        "pixel_spacing", "std_samples", "std_note", "validation", "outside_image"}
    assert measures["std_samples"] in (0, 2)  # 2 samples, or none without a samples output
