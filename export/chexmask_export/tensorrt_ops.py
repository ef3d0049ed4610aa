"""Static check that an ONNX graph uses only operators the TensorRT 10 ONNX
parser supports natively (no plugins), with the restrictions that matter here.

The table is the onnx-tensorrt operator support matrix for TensorRT 10.0
(file ``tensorrt10_onnx_operator_support.tsv`` beside this module).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import onnx

DEFAULT_TABLE = Path(__file__).with_name("tensorrt10_onnx_operator_support.tsv")
# Operators TensorRT lists but this project keeps out of its graphs (roi_align
# boundary semantics differ between frameworks; we write the look-up as gathers).
BANNED = {"RoiAlign"}
# Operators whose listed restriction is "`axes` must be an initializer" (or a constant)
AXES_INPUT = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
              "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Slice", "Squeeze", "Unsqueeze", "Pad"}


@dataclass(frozen=True)
class OperatorSupport:
    supported: bool
    types: str
    restrictions: str


def load_table(path: str | Path = DEFAULT_TABLE) -> dict[str, OperatorSupport]:
    table = {}
    with open(path, newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            row += [""] * (4 - len(row))
            table[row[0].strip()] = OperatorSupport(row[1].strip() == "Y", row[2].strip(), row[3].strip())
    return table


def _nodes(graph: onnx.GraphProto, outer_constants: frozenset[str]):
    """Every node with the constants it can see, subgraphs (If branches, loop bodies) included."""
    constants = outer_constants | {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    for node in graph.node:
        yield node, constants
        for attr in node.attribute:
            subgraphs = ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []) + list(attr.graphs)
            for sub in subgraphs:
                yield from _nodes(sub, constants)


def tensorrt_problems(model: onnx.ModelProto, table: dict[str, OperatorSupport] | None = None) -> list[str]:
    """Every reason the TensorRT 10 parser would reject (or need a plugin for) ``model``; [] when clean."""
    table = load_table() if table is None else table
    problems = []
    for node, constants in _nodes(model.graph, frozenset()):
        where = f"{node.op_type} node {node.name or '(unnamed)'}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r}")
            continue
        if node.op_type in BANNED:
            problems.append(f"{where}: {node.op_type} is not allowed in chexmask-rt graphs")
        support = table.get(node.op_type)
        if support is None or not support.supported:
            problems.append(f"{where}: not supported by the TensorRT 10 ONNX parser")
            continue
        if node.op_type in AXES_INPUT:
            axes_at = 3 if node.op_type == "Slice" else 1
            if len(node.input) > axes_at and node.input[axes_at] and node.input[axes_at] not in constants:
                problems.append(f"{where}: axes input {node.input[axes_at]!r} is not a constant")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append(f"{where}: the Indices output is unsupported")
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not 9 <= imp.version <= 20:
            problems.append(f"opset {imp.version} is outside the parser's range 9-20")
    return problems
