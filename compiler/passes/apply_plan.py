"""apply_plan: give every input, constant and planned activation its fixed-point formats.

* Graph inputs take their plan entry or ``defaults.input`` (one of them is required).
* Weights and biases are quantized now, by their plan entry or ``defaults.weight`` /
  ``defaults.bias``; values that saturate or wrap are counted in a `PlanWarning`.
* Internal constants the plan cannot name in ONNX terms: Clip bounds are kept exactly
  (a float32 is a short dyadic number), LeakyRelu's alpha and average-pooling reciprocals
  are rounded RND_CONV to 18 significant bits, unless the plan names them.
* An activation with a plan entry, or any activation when ``defaults.activation`` is set
  (except outputs of layout-only ops), gets a REQUANTIZE node: its producer now writes
  ``NAME.exact`` and the requantize writes ``NAME`` in the planned formats.  These are the
  only places where values change.
* SIGMOID and SOFTMAX get their look-up tables; their output format is the tensor's plan
  entry (uniform) or the plan's table defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings

import numpy as np

from ..errors import PlanError
from ..fixed import FixedType, Formats, Overflow, Rounding, common_fraction, quantize_float
from ..ir import LAYOUT_OPS, Graph, LookupTable, Node, Op, Tensor, TensorKind
from ..plan import Plan

CONSTANT_SIGNIFICANT_BITS = 18


class PlanWarning(UserWarning):
    """The plan is valid but loses information (e.g. weights saturate)."""


def _plan_formats(plan: Plan, t: Tensor, fallback: FixedType | None, role: str) -> Formats | None:
    spec = plan.spec(t.onnx_name or t.name)
    if spec is None:
        return None if fallback is None else Formats.uniform(t.shape, fallback)
    if t.kind in (TensorKind.INPUT, TensorKind.ACTIVATION):
        return plan.formats_for(spec, (1, *t.shape), batch_axis=True)
    formats = plan.formats_for(spec, t.onnx_shape, batch_axis=False)
    return formats if t.onnx_axes is None else formats.transpose(t.onnx_axes)


def significant_formats(values: np.ndarray, bits: int) -> Formats:
    """Per-element formats keeping ``bits`` significant bits of each value (0 -> pruned)."""
    v = np.asarray(values, dtype=np.float64)
    width = np.where(v == 0, 0, bits + (v < 0))
    exponent = np.where(v == 0, 0, np.floor(np.log2(np.where(v == 0, 1, np.abs(v)))).astype(np.int64) + 1)
    int_bits = np.where(v == 0, 0, exponent + (v < 0))
    return Formats(width, int_bits, v < 0, np.full(v.shape, int(Rounding.RND_CONV)),
                   np.full(v.shape, int(Overflow.SAT)))


def exact_formats(values: np.ndarray) -> Formats:
    """Per-element formats holding each float exactly."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    types = np.empty(flat.shape, dtype=object)
    for i, v in enumerate(flat):
        num, den = float(v).as_integer_ratio()
        frac = den.bit_length() - 1
        types[i] = FixedType.for_range(min(num, 0), max(num, 0), frac)
    return Formats.from_types(types.reshape(np.shape(values)))


def _quantize_constant(t: Tensor, formats: Formats) -> Tensor:
    values = t.float_data if t.float_data is not None else t.data
    m = quantize_float(values, formats, f"constant {t.name!r}")
    data, data_frac = common_fraction(m, formats)
    # a value saturates (or wraps) when its *rounded* mantissa leaves the format's range
    unbounded = Formats(formats.width + 64, formats.int_bits + 64, formats.signed, formats.rounding,
                        np.zeros(formats.shape, dtype=np.int64))
    rounded = quantize_float(values, unbounded)
    lo, hi = formats.mantissa_bounds()
    outside = ((rounded < lo) | (rounded > hi)) & ~formats.pruned
    vanished = (values != 0) & (np.asarray(m) == 0) & ~formats.pruned
    if vanished.any() and not (np.asarray(m) != 0).any():
        warnings.warn(PlanWarning(
            f"every value of {t.kind.value} {t.onnx_name or t.name!r} becomes 0 under {formats.summary()} "
            f"(largest |value| {float(np.abs(values).max()):g}); give it more fractional bits in the plan"),
            stacklevel=2)
    if outside.any():
        worst = float(np.abs(values[outside]).max())
        modes = {Overflow(int(o)).name for o in formats.overflow[outside]}
        verb = "wrap" if modes == {"WRAP"} else "saturate"
        warnings.warn(PlanWarning(
            f"{int(outside.sum())} of {values.size} values of {t.kind.value} {t.onnx_name or t.name!r} "
            f"{verb} under {formats.summary()} (largest |value| {worst:g}); give it more integer bits "
            f"in the plan if that is not intended"), stacklevel=2)
    return dataclasses.replace(t, formats=formats, data=np.asarray(data), data_frac=data_frac,
                               float_data=np.asarray(values, dtype=np.float64))


def _constant_formats(plan: Plan, graph: Graph, t: Tensor) -> Formats:
    role = {TensorKind.WEIGHT: "weight", TensorKind.BIAS: "bias"}.get(t.kind)
    formats = _plan_formats(plan, t, plan.default(role) if role else None, role or "const")
    if formats is not None:
        return formats
    if role is not None:
        raise PlanError(f"{role} {t.onnx_name or t.name!r} (shape {list(t.onnx_shape)}) has no format: "
                        f"add it to the plan's 'tensors' or set defaults.{role}")
    users = {n.op for n in graph.nodes for s in n.stages() if t.name in s.inputs}
    values = t.float_data if t.float_data is not None else t.data
    if users <= {Op.CLIP}:
        return exact_formats(values)
    # round to 18 significant bits, then keep only the bits that are set (1/4 needs one)
    formats = significant_formats(values, CONSTANT_SIGNIFICANT_BITS)
    rounded = np.ldexp(np.asarray(quantize_float(values, formats), dtype=np.float64), -formats.frac_bits)
    return exact_formats(rounded)


def _sigmoid_table(plan: Plan, out: FixedType) -> LookupTable:
    t_in = plan.table_type("sigmoid_input")
    codes = np.arange(t_in.min_mantissa, t_in.max_mantissa + 1)
    x = np.ldexp(codes.astype(np.float64), -t_in.frac_bits)
    y = 1.0 / (1.0 + np.exp(-x))
    return LookupTable(t_in, out, quantize_float(y, Formats.uniform(y.shape, out)))


def _softmax_tables(plan: Plan, n: int) -> tuple[LookupTable, LookupTable]:
    e_in, e_out = plan.table_type("exp_input"), plan.table_type("exp_output")
    codes = np.arange(e_in.min_mantissa, e_in.max_mantissa + 1)
    e = np.exp(np.ldexp(codes.astype(np.float64), -e_in.frac_bits))
    exp_table = LookupTable(e_in, e_out, quantize_float(e, Formats.uniform(e.shape, e_out)))
    bits = plan.tables["inv_bits"]
    # x - max(x) <= 0 reads entries exp(<= 0) <= 1, and the largest term reads exp(0) = 1:
    # the sum lies in [1, n], which the table input covers
    int_bits = n.bit_length()
    i_in = FixedType(bits, int_bits, False, Rounding.TRN, Overflow.SAT)
    i_out = plan.table_type("inv_output")
    s = np.ldexp(np.arange(0, 1 << bits, dtype=np.float64), -i_in.frac_bits)
    with np.errstate(divide="ignore"):
        inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), float(i_out.max_value))
    inv_table = LookupTable(i_in, i_out, quantize_float(inv, Formats.uniform(inv.shape, i_out)))
    return exp_table, inv_table


def _table_output(plan: Plan, t: Tensor, default_key: str) -> FixedType:
    spec = plan.spec(t.name)
    if spec is None:
        return plan.table_type(default_key)
    formats = plan.formats_for(spec, (1, *t.shape), batch_axis=True)
    uniform = formats.uniform_type()
    if uniform is None:
        raise PlanError(f"plan entry for tensor {t.name!r}: the output of a table look-up must have one "
                        f"format for the whole tensor, got {formats.summary()}")
    return uniform


def _check_names(plan: Plan, graph: Graph) -> None:
    known = {t.onnx_name or t.name for t in graph.tensors.values()} | set(graph.tensors)
    for name in plan.tensors:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise PlanError(f"plan names tensor {name!r}, which does not exist in the model (after "
                            f"BatchNorm folding){hint} Run 'finegrain plan-template' to list the names.")


def apply_plan(graph: Graph, plan: Plan) -> Graph:
    _check_names(plan, graph)
    tensors = dict(graph.tensors)
    for name in graph.inputs:
        t = tensors[name]
        formats = _plan_formats(plan, t, plan.default("input"), "input")
        if formats is None:
            raise PlanError(f"graph input {name!r} (shape [batch, {', '.join(map(str, t.shape))}]) has no "
                            f"format: set defaults.input in the plan or add {name!r} to 'tensors'")
        tensors[name] = dataclasses.replace(t, formats=formats)
    for name, t in graph.tensors.items():
        if t.is_constant and t.formats is None:
            tensors[name] = _quantize_constant(t, _constant_formats(plan, graph, t))

    nodes: list[Node] = []
    for node in graph.nodes:
        out = tensors[node.outputs[0]]
        if node.op in (Op.SIGMOID, Op.SOFTMAX):
            if node.op == Op.SIGMOID:
                out_type = _table_output(plan, out, "sigmoid_output")
                attrs = {"table": _sigmoid_table(plan, out_type)}
            else:
                out_type = _table_output(plan, out, "softmax_output")
                exp_table, inv_table = _softmax_tables(plan, out.shape[node.attrs["axis"]])
                attrs = {"axis": node.attrs["axis"], "exp_table": exp_table, "inv_table": inv_table}
            tensors[out.name] = dataclasses.replace(out, formats=Formats.uniform(out.shape, out_type))
            nodes.append(dataclasses.replace(node, attrs=attrs))
            continue
        spec = plan.spec(out.name)
        fallback = None if node.op in LAYOUT_OPS else plan.default("activation")
        formats = _plan_formats(plan, out, fallback, "activation") if (spec or fallback) else None
        if formats is None:
            nodes.append(node)
            continue
        exact = f"{out.name}.exact"
        tensors[exact] = Tensor(exact, out.shape, TensorKind.ACTIVATION)
        tensors[out.name] = dataclasses.replace(out, formats=formats)
        nodes.append(dataclasses.replace(node, outputs=(exact,)))
        nodes.append(Node(f"{node.name}.quantize", Op.REQUANTIZE, (exact,), (out.name,),
                          onnx_nodes=node.onnx_nodes))
    return graph.with_nodes(nodes, tensors)
