"""What an output folder's JSON files say: report.json's entry for each tensor and layer
(formats, widths, constants, accumulators), the formats in plan.resolved.json, the JSON
writer of those files, and `update_report`, which records a verification result in
an existing report.json.

Separate from `compiler.project`, which keeps the `Project` object and the compile flow and
calls these builders; `update_report` is called by the commands that verify an output folder
(csim, sim, synth, board, sweep).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .ir import Graph, Node, Op, Tensor
from .output_folder import OutputFolderError, read_json
from .type_names import readable_type, type_counts


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _is_planned_activation(graph: Graph, t: Tensor) -> bool:
    producer = graph.producer(t.name)
    if producer is None:
        return False
    last = producer.stages()[-1]
    return last.outputs[0] == t.name and last.op in (Op.REQUANTIZE, Op.TABLE, Op.SOFTMAX)


def _formats_json(t: Tensor) -> dict:
    f = t.formats
    uniform = f.uniform_type()
    if uniform is not None:
        return {"uniform": str(uniform)}
    types = f.distinct()
    counts = {"pruned" if t is None else str(t): n for t, n in f.type_counts().items()}
    return {"distinct": len(types), "counts": counts}


def _width_stats(t: Tensor) -> dict:
    f = t.formats
    if f is None:
        return {}
    kept = ~f.pruned
    if not kept.any():
        return {"elements": int(f.width.size), "pruned": int(f.width.size)}
    return {
        "elements": int(f.width.size),
        "pruned": int(f.pruned.sum()),
        "width_min": int(f.width[kept].min()),
        "width_max": int(f.width[kept].max()),
        "total_bits": int(f.width.sum()),
    }


def _tensor_report(t: Tensor) -> dict:
    f = t.formats
    report = {"shape": list(t.shape), "type": readable_type(f) if f is not None else None, **_width_stats(t)}
    if f is not None and f.uniform_type() is None and (~f.pruned).any():  # mixed: the legend's types
        report["type_counts"] = type_counts(f)
    if t.model_scale is not None:  # a port whose value times this is the model's (docs/import.md)
        report["model_scale"] = np.asarray(t.model_scale, dtype=np.float64).tolist()
    return report


def _layer_report(graph: Graph, node: Node) -> dict:
    entry = {
        "name": node.name,
        "op": node.kind,
        "onnx_nodes": list(node.onnx_nodes),
        "stages": [s.kind for s in node.stages()],
        "inputs": {i: _tensor_report(graph.tensor(i)) for i in node.inputs if not graph.tensor(i).is_constant},
        "output": {node.outputs[0]: _tensor_report(graph.tensor(node.outputs[0]))},
    }
    consts = {i: graph.tensor(i) for i in node.inputs if graph.tensor(i).is_constant}
    for stage in node.epilogue:
        consts.update({i: graph.tensor(i) for i in stage.inputs if graph.tensor(i).is_constant})
    if consts:
        entry["constants"] = {
            (t.onnx_name or n): {**_tensor_report(t), "role": t.kind.value,
                                 "nonzero": int(np.count_nonzero(t.data))}
            for n, t in consts.items()}
    if node.op in (Op.DENSE, Op.CONV):
        entry["accumulator"] = {node.accumulator: _tensor_report(graph.tensor(node.accumulator))}
    return entry


def update_report(out_dir, key: str, entry: dict) -> None:
    """Record a verification result under ``key`` in OUT/report.json (replaced whole)."""
    path = Path(out_dir) / "report.json"
    report = read_json(path, "report", required=False) or {}
    if not isinstance(report, dict):
        raise OutputFolderError(f"report {str(path)!r} is damaged (not a JSON object); compile the folder again")
    report[key] = entry
    tmp = path.with_name(f".{path.name}.tmp")
    _write_json(tmp, report)
    os.replace(tmp, path)
