"""`finegrain plan-template`: a plan skeleton that names every tensor a plan can set."""

from __future__ import annotations

from .ir import LAYOUT_OPS, Op, TensorKind
from .passes.canonicalise import canonicalise
from .passes.fold_batchnorm import fold_batchnorm

SUGGESTED_DEFAULTS = {
    "input": "fixed<16,6,RND_CONV,SAT>",
    "weight": "fixed<8,2,RND_CONV,SAT>",
    "bias": "fixed<16,6,RND_CONV,SAT>",
    "activation": None,
}


def plan_template(model_path) -> dict:
    from .frontend import load_onnx

    graph = fold_batchnorm(canonicalise(load_onnx(model_path)))
    tensors: dict[str, dict] = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        tensors[name] = {"_note": f"graph input, shape [batch, {', '.join(map(str, t.shape))}]; "
                                  f"default: defaults.input"}
    for node in graph.nodes:
        onnx = f", ONNX {', '.join(node.onnx_nodes)}" if node.onnx_nodes else ""
        label = f"{node.name!r} ({node.kind}{onnx})"
        for i in node.inputs:
            t = graph.tensor(i)
            if not t.is_constant or t.kind not in (TensorKind.WEIGHT, TensorKind.BIAS):
                continue
            key = t.onnx_name or t.name
            axis_hint = ""
            if node.op in (Op.DENSE, Op.CONV) and t.kind == TensorKind.WEIGHT:
                out_axis = t.onnx_axes[0] if t.onnx_axes else 0
                axis_hint = f"; per output channel: axis {out_axis}"
            tensors[key] = {"_note": f"{t.kind.value} of node {label}, ONNX shape {list(t.onnx_shape)}"
                                     f"{axis_hint}; default: defaults.{t.kind.value}"}
        out = graph.tensor(node.outputs[0])
        if node.op in (Op.TABLE, Op.SOFTMAX):
            key = f"{node.attrs['function']}_output" if node.op == Op.TABLE else "softmax_output"
            role = (f"table look-up output (one format for the whole tensor); default: tables.{key}, or the "
                    f"format of a model's quantizer that alone reads it")
        elif node.op in LAYOUT_OPS:
            role = "layout-only output (values unchanged); quantized only if listed here"
        else:
            role = "activation; default: defaults.activation (null keeps it exact)"
        tensors[out.name] = {"_note": f"output of node {label}, shape [batch, "
                                      f"{', '.join(map(str, out.shape))}]: {role}"}
    return {
        "_note": "finegrain bit plan skeleton: replace an entry's _note with a format string, "
                 "{\"axis\": k, \"formats\": [...]} or {\"elements\": \"file.npz:KEY\"}; entries left "
                 "with only a _note take the defaults. See docs/bit-plan.md.",
        "defaults": dict(SUGGESTED_DEFAULTS),
        "tensors": tensors,
    }
