"""`finegrain inspect`: what a model's quantizers are and what each becomes in fixed point.

For every quantized tensor (graph inputs holding integer codes, activations behind an
``Op.QUANT``, weights and biases a quantizer made) the report gives its name, shape, the
quantizer (bits, signed, narrow, rounding, scale and zero point: one value, or min..max
over an ONNX axis) and what it becomes: with a power-of-two scale ``2**e`` the values are
exactly ``fixed<W, W+e>`` (W the bits of code - zero point); with any other scale the
codes are that format times a residual ``r`` (scale = r * 2**e, 1 <= r < 2) that the
lowering folds into an integer multiplier.  Then the tensors without a quantizer that a
bit plan must give a format: float graph inputs, weights and biases.
"""

from __future__ import annotations

import numpy as np

from .fixed import FixedType, Overflow, Rounding, bits_for_range
from .ir import Op, Tensor, TensorKind
from .quantizer import Quantizer, split_power_of_two

# What each rounding mode does, for people who know QONNX's names rather than ap_fixed's.
_ROUNDING_WORDS = {
    Rounding.RND_CONV: "to nearest, ties to even",
    Rounding.TRN: "floor",
    Rounding.TRN_ZERO: "toward zero",
    Rounding.RND_INF: "to nearest, ties away from zero",
    Rounding.RND_ZERO: "to nearest, ties toward zero",
    Rounding.RND: "to nearest, ties up",
    Rounding.RND_MIN_INF: "to nearest, ties down",
}
if hasattr(Rounding, "CEIL"):
    _ROUNDING_WORDS[Rounding.CEIL] = "ceiling"


def inspect_model(path) -> dict:
    """The report of the model at ``path`` as a JSON-ready dict (see the module docstring)."""
    from .frontend import load_onnx
    from .passes.lower_quant import is_quantized_model

    graph = load_onnx(path)
    quantized, needs_plan = [], []
    # a float input that only quantizers read takes their formats
    readers: dict[str, set] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, set()).add(node.op)
    quantized_inputs = {name for name, ops in readers.items() if ops == {Op.QUANT}}
    for name in graph.inputs:
        t = graph.tensor(name)
        if t.formats is not None:  # integer codes (an int8 graph input)
            fmt = t.formats.uniform_type()
            quantized.append({"name": name, "role": "input", "shape": [1, *t.shape], "quantizer": None,
                              "power_of_two": True, "exact": True,
                              "becomes": f"{fmt}: the input holds the integer codes"})
        elif name not in quantized_inputs:
            needs_plan.append({"name": name, "role": "input", "shape": [1, *t.shape],
                               "why": "a float graph input with no quantizer: defaults.input or an entry"})
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if node.op == Op.QUANT:
            out = graph.tensor(node.outputs[0])
            role = ("output" if out.name in outputs else
                    "input" if node.inputs[0] in graph.inputs else "activation")
            # a graph input read only by its quantizer takes the quantizer's format: a plan names it
            name = node.inputs[0] if node.inputs[0] in quantized_inputs and node.inputs[0] in graph.inputs \
                and len(graph.consumers(node.inputs[0])) == 1 else out.name
            quantized.append(_entry(name, role, [1, *out.shape], {"node": node.onnx_nodes[0]},
                                    node.attrs["quantizer"], lambda axis: axis + 1))
        for name in node.inputs:
            t = graph.tensor(name)
            if not t.is_constant or t.kind not in (TensorKind.WEIGHT, TensorKind.BIAS):
                continue
            key = t.onnx_name or t.name
            if any(e["name"] == key for e in quantized + needs_plan):
                continue
            if t.quantizer is None and t.kind == TensorKind.BIAS and is_quantized_model(graph):
                continue  # a float bias of a quantized model: held exactly (or in accumulator units)
            if t.quantizer is None:
                needs_plan.append({"name": key, "role": t.kind.value, "shape": list(t.onnx_shape),
                                   "why": f"a float {t.kind.value} of node {node.name!r}: "
                                          f"defaults.{t.kind.value} or an entry"})
            else:
                quantized.append(_entry(key, t.kind.value, list(t.onnx_shape), {"used_by": node.onnx_nodes[0]},
                                        t.quantizer, _onnx_axis(t)))
    return {"model": str(path), "quantized": quantized, "needs_plan": needs_plan}


def _onnx_axis(t: Tensor):
    return lambda axis: t.onnx_axes[axis] if t.onnx_axes is not None else axis


def _spread(a: np.ndarray, onnx_axis) -> dict:
    """One value, or min..max over the one axis along which ``a`` varies."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 1 or np.all(a == a.ravel()[0]):
        return {"value": float(a.ravel()[0])}
    varying = [i for i, d in enumerate(a.shape) if d > 1]
    axis = onnx_axis(varying[0]) if len(varying) == 1 else None
    return {"min": float(a.min()), "max": float(a.max()), "count": int(a.size), "axis": axis}


def _entry(name: str, role: str, shape, where: dict, q: Quantizer, onnx_axis) -> dict:
    entry = {"name": name, "role": role, "shape": shape, **where, "quantizer": {
        "source": q.source, "bits": q.bits, "signed": q.signed, "narrow": q.narrow, "bipolar": q.bipolar,
        "rounding": q.rounding.name,
        "rounding_means": "the sign: +1 where x >= 0, else -1" if q.bipolar else _ROUNDING_WORDS[q.rounding],
        "scale": _spread(q.out_scale, onnx_axis), "zero_point": _spread(q.out_zero, onnx_axis),
    }}
    if not (np.array_equal(q.in_scale, q.out_scale) and np.array_equal(q.in_zero, q.out_zero)):
        entry["quantizer"]["input_scale"] = _spread(q.in_scale, onnx_axis)
        entry["quantizer"]["input_zero_point"] = _spread(q.in_zero, onnx_axis)
    entry["power_of_two"] = q.power_of_two
    entry["exact"], entry["becomes"] = _becomes(q)
    return entry


def _becomes(q: Quantizer) -> tuple[bool, str]:
    """(exact, text): the fixed-point format of the quantizer's output values."""
    residual, exponent = split_power_of_two(q.out_scale)
    e_lo, e_hi = int(exponent.min()), int(exponent.max())
    if q.bits is None:
        grid = f"2**{e_lo}" if e_lo == e_hi else f"2**{e_lo}..2**{e_hi}"
        if q.power_of_two:
            return True, f"rounding to a multiple of {grid} without a clamp: an exact shift"
        return False, (f"rounding to a multiple of the scale without a clamp: the scale is r * {grid} "
                       f"(1 <= r < 2), rescaled by an integer multiplier")
    lo, hi = q.range
    width, signed = bits_for_range(int(np.min(lo - q.out_zero)), int(np.max(hi - q.out_zero)))
    width = max(width, 1)  # a 1-bit unsigned narrow quantizer has the one code 0
    overflow = Overflow.SAT_SYM if signed and q.narrow and not np.any(q.out_zero) else Overflow.SAT
    if q.bipolar:
        width, signed, overflow = 2, True, Overflow.SAT

    def fmt(e):
        return str(FixedType(width, width + e, signed, q.rounding, overflow))

    formats = fmt(e_lo) if e_lo == e_hi else f"{fmt(e_lo)} .. {fmt(e_hi)} (per channel)"
    codes = "codes -1, +1" if q.bipolar else "code - zero point" if np.any(q.out_zero) else "code"
    if q.power_of_two:
        return True, f"{formats} exact ({codes} times 2**e)"
    r_lo, r_hi = float(residual.min()), float(residual.max())
    r = f"{r_lo:.6g}" if r_lo == r_hi else f"{r_lo:.6g}..{r_hi:.6g}"
    return False, (f"integer {codes} in {formats} times residual r = {r} (scale = r * 2**e, 1 <= r < 2), "
                   f"rescaled by an integer multiplier")


def format_inspection(report: dict) -> str:
    """The report as text, one block per tensor."""
    lines = [f"{report['model']}: {_count(report['quantized'], 'quantized tensor')}, "
             f"{_count(report['needs_plan'], 'tensor')} without a quantizer"]
    if report["quantized"]:
        lines += ["", "quantized tensors:"]
    for e in report["quantized"]:
        where = (f", node {e['node']!r}" if "node" in e else
                 f", used by node {e['used_by']!r}" if "used_by" in e else "")
        lines.append(f"  {e['name']} ({e['role']}, shape {e['shape']}{where})")
        q = e["quantizer"]
        if q is not None:
            kind = ("bipolar" if q["bipolar"] else
                    f"{q['bits'] or 'unclamped'}{'-bit' if q['bits'] else ''} "
                    f"{'signed' if q['signed'] else 'unsigned'}{' narrow' if q['narrow'] else ''}")
            lines.append(f"    {q['source']}: {kind}, rounding {q['rounding']} ({q['rounding_means']})")
            text = f"    scale {_show(q['scale'])}, zero point {_show(q['zero_point'])}"
            if "input_scale" in q:
                text += f"; reads at scale {_show(q['input_scale'])}, zero point {_show(q['input_zero_point'])}"
            lines.append(text)
            lines.append(f"    scales {'are' if e['power_of_two'] else 'are not'} powers of two")
        lines.append(f"    becomes {e['becomes']}")
    if report["needs_plan"]:
        lines += ["", "need a plan entry (no quantizer in the model):"]
        lines += [f"  {e['name']} ({e['role']}, shape {e['shape']}): {e['why']}" for e in report["needs_plan"]]
    return "\n".join(lines)


def _count(items, what: str) -> str:
    return f"{len(items)} {what}{'' if len(items) == 1 else 's'}"


def _show(spread: dict) -> str:
    if "value" in spread:
        return f"{spread['value']:.8g}"
    axis = f" over axis {spread['axis']}" if spread["axis"] is not None else " (per element)"
    return f"{spread['min']:.8g}..{spread['max']:.8g}{axis} ({spread['count']} values)"
