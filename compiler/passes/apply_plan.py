"""apply_plan: give every input, constant and planned activation its fixed-point formats.

* Graph inputs take their plan entry or ``defaults.input`` (one of them is required).
* Weights and biases are quantized now, by their plan entry or ``defaults.weight`` /
  ``defaults.bias``; values that saturate or wrap are counted in a `PlanWarning`.  An entry
  with a weight quantizer (pow2, a row-wise mix, a codebook) maps each float to a member of
  its set (`weight_formats.round_pow2`, `weight_formats.nearest_centre`): an exact fixed-point value, whose
  per-element format holds it exactly (a zero is pruned).  How the entry resolved (rows per
  mix entry, uses per centre) is recorded on the tensor as ``scheme``.
* Internal constants the plan cannot name in ONNX terms: Clip bounds are kept exactly
  (a float32 is a short dyadic number), LeakyRelu's alpha and average-pooling reciprocals
  are rounded RND_CONV to 18 significant bits, unless the plan names them.
* An activation with a plan entry, or any activation when ``defaults.activation`` is set
  (except outputs of layout-only ops), gets a REQUANTIZE node: its producer now writes
  ``NAME.exact`` and the requantize writes ``NAME`` in the planned formats.  These are the
  only places where values change.
* TABLE (sigmoid, tanh, ...) and SOFTMAX get their look-up tables; their output format is the
  tensor's plan entry (uniform) or the plan's table defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from fractions import Fraction

import numpy as np

from .. import table_functions
from ..errors import PlanError
from ..fixed import FixedType, Formats, Overflow, Rounding
from ..ir import LAYOUT_OPS, Graph, LookupTable, Node, Op, Tensor, TensorKind
from ..mantissa import apply_overflow, as_object, common_fraction, quantize_float, round_float
from ..plan import MAX_TABLE_OUTPUT_BITS, TABLE_CODE_BITS, Codebook, Plan, RowSchemes, TensorSpec
from ..rescale import round_rational
from ..type_names import readable_type
from ..weight_formats import Pow2Type, nearest_centre, round_pow2, round_significant

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


def exact_formats(values: np.ndarray) -> Formats:
    """Per-element formats holding each float exactly."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    types = np.empty(flat.shape, dtype=object)
    for i, v in enumerate(flat):
        num, den = float(v).as_integer_ratio()
        frac = den.bit_length() - 1
        types[i] = FixedType.for_range(min(num, 0), max(num, 0), frac)
    return Formats.from_types(types.reshape(np.shape(values)))


def _quantize_constant(t: Tensor, formats: Formats, values: np.ndarray | None = None) -> Tensor:
    """``t`` in ``formats``: its model values, or ``values`` (a computed constant's rounded ones)."""
    if values is None:
        values = t.float_data if t.float_data is not None else t.data
    return _quantized(t, *_fixed_mantissas(values, formats, f"constant {t.name!r}"), readable_type(formats))


def _fixed_mantissas(values: np.ndarray, formats: Formats, what: str) -> tuple[np.ndarray, ...]:
    """(mantissas, formats, outside, wraps, zeroed): ``values`` in ``formats``, where they
    saturate or wrap (leave the range), where they wrap, and where a non-zero became 0."""
    rounded = round_float(values, formats, what)
    m = apply_overflow(rounded, formats)
    # a value saturates (or wraps) when its *rounded* mantissa leaves the format's range
    lo, hi = formats.mantissa_bounds()
    outside = np.asarray(((rounded < lo) | (rounded > hi)) & ~formats.pruned, dtype=bool)
    zeroed = (values != 0) & (np.asarray(m) == 0) & ~formats.pruned
    return m, formats, outside, outside & (formats.overflow == Overflow.WRAP), zeroed


def _quantized(t: Tensor, m: np.ndarray, formats: Formats, outside: np.ndarray, wraps: np.ndarray,
               zeroed: np.ndarray, scheme: str, record: dict | None = None) -> Tensor:
    """The constant holding mantissas ``m`` (at each element's own fraction); warns when
    every value vanished or some saturated or wrapped (``outside``)."""
    values = t.float_data if t.float_data is not None else t.data
    data, data_frac = common_fraction(m, formats)
    if zeroed.any() and not (np.asarray(m) != 0).any():
        warnings.warn(PlanWarning(
            f"every value of {t.kind.value} {t.onnx_name or t.name!r} becomes 0 under {scheme} "
            f"(largest |value| {float(np.abs(values).max()):g}); give it more fractional bits in the plan"),
            stacklevel=3)
    if outside.any():
        worst = float(np.abs(values[outside]).max())
        verb = "wrap" if (wraps == outside).all() else "saturate"
        warnings.warn(PlanWarning(
            f"{int(outside.sum())} of {values.size} values of {t.kind.value} {t.onnx_name or t.name!r} "
            f"{verb} under {scheme} (largest |value| {worst:g}); give it more integer bits "
            f"in the plan if that is not intended"), stacklevel=3)
    return dataclasses.replace(t, formats=formats, data=np.asarray(data), data_frac=data_frac,
                               float_data=np.asarray(values, dtype=np.float64),
                               scheme=record if record is not None else t.scheme)


def _quantize_schemes(t: Tensor, rows: RowSchemes, source: str) -> Tensor:
    """Quantize a constant by a weight-quantizer entry: each index along ``rows.axis`` by its
    scheme.  Works in the ONNX layout the entry speaks of, then transposes to the IR's."""
    v = _onnx_values(t)
    distinct = list(dict.fromkeys(rows.schemes))
    row_id = np.array([distinct.index(s) for s in rows.schemes])
    if rows.axis is None:
        elem_id = np.zeros(v.shape, dtype=np.int64)
    else:
        shape = [1] * v.ndim
        shape[rows.axis] = v.shape[rows.axis]
        elem_id = np.broadcast_to(row_id.reshape(shape), v.shape)
    # the fixed-point schemes all at once; the others' elements start pruned
    by_scheme = np.array([[s.width, s.int_bits, s.signed, s.rounding, s.overflow] if isinstance(s, FixedType)
                       else [0] * 5 for s in distinct], dtype=np.int64)
    m, formats, outside, wraps, zeroed = _fixed_mantissas(v, Formats(*(by_scheme[elem_id, k] for k in range(5))),
                                                          f"constant {t.name!r}")
    m, fields = np.array(m), [np.array(f) for f in formats.fields()]  # the other schemes fill in theirs
    centre = np.full(v.shape, -1, dtype=np.int64)  # codebook elements: the index of their centre
    for k, s in enumerate(distinct):
        if isinstance(s, FixedType):
            continue
        sel = elem_id == k
        if isinstance(s, Pow2Type):
            part_m, part_formats, outside[sel] = _pow2(v[sel], s)
            zeroed[sel] = (v[sel] != 0) & (part_m == 0)
        else:
            part_m, part_formats, centre[sel] = _codebook(v[sel], s, None if rows.indices is None
                                                          else rows.indices[sel])
        if part_m.dtype == object and m.dtype != object:
            m = as_object(m)
        m[sel] = part_m
        for field, part in zip(fields, part_formats.fields()):
            field[sel] = part
    formats = Formats(*fields)
    pow2 = np.isin(elem_id, [k for k, s in enumerate(distinct) if isinstance(s, Pow2Type)])
    record = _record(rows, pow2, formats, outside, centre)
    if t.onnx_axes is not None:
        m, outside, wraps, zeroed = (np.transpose(a, t.onnx_axes) for a in (m, outside, wraps, zeroed))
        formats = formats.transpose(t.onnx_axes)
    return _quantized(t, m, formats, outside, wraps, zeroed, source, record)


def _record(rows: RowSchemes, pow2: np.ndarray, formats: Formats, outside: np.ndarray, centre: np.ndarray) -> dict:
    """How the entry resolved: the plan's record, with counts of the pow2 elements' exponents
    (zeros and saturated ones too) and of the weights on each codebook centre."""
    record = dict(rows.record)
    if pow2.any():
        exponents = (-formats.frac_bits)[pow2 & ~formats.pruned]  # +-2**e: one bit at -e fractional bits
        record["pow2"] = {"zeros": int((pow2 & formats.pruned).sum()), "saturated": int((pow2 & outside).sum()),
                          "exponents": {str(e): int(c) for e, c in zip(*np.unique(exponents, return_counts=True))}}
    if isinstance(rows.schemes[0], Codebook):
        per_book = [centre] if rows.axis is None else [np.take(centre, i, axis=rows.axis)
                                                       for i in range(centre.shape[rows.axis])]
        record["codebooks"] = [{"format": str(b.format), "centres": list(b.centres),
                                "uses": np.bincount(c.ravel(), minlength=len(b.centres)).tolist()}
                               for b, c in zip(rows.schemes, per_book)]
    return record


def _pow2(values: np.ndarray, p: Pow2Type) -> tuple[np.ndarray, Formats, np.ndarray]:
    """(mantissas, formats, saturated) of values rounded by ``p``: +-2**e is the mantissa
    +-1 in a 1-bit format with e+1 integer bits (unsigned if positive); 0 is pruned."""
    r = round_pow2(values, p)
    _, k = np.frexp(r)  # r = 0.5 * 2**k
    m = np.sign(r).astype(np.int64)
    zeros = np.zeros(r.shape, dtype=np.int64)
    formats = Formats(np.ones(r.shape, dtype=np.int64), k, m < 0, zeros, zeros).prune(m == 0)
    return m, formats, np.abs(values) > math.ldexp(1.0, p.emax)


def _codebook(values: np.ndarray, book: Codebook, given: np.ndarray | None) -> tuple[np.ndarray, Formats, np.ndarray]:
    """(mantissas, formats, indices): each value as its centre (the given index, else the
    nearest), in the codebook's format; a zero centre is pruned."""
    idx = nearest_centre(values, book.centres) if given is None else given
    centres = np.array(book.centres, dtype=np.float64)
    m = quantize_float(centres, Formats.uniform(centres.shape, book.format))[idx]  # exact by validation
    return m, Formats.uniform(idx.shape, book.format).prune(m == 0), idx


def _constant(plan: Plan, graph: Graph, t: Tensor) -> Tensor:
    """A constant quantized by its plan entry, the role's default, or (internal constants)
    exactly enough not to matter."""
    role = {TensorKind.WEIGHT: "weight", TensorKind.BIAS: "bias"}.get(t.kind)
    key = t.onnx_name or t.name
    spec = plan.spec(key)
    if spec is None and role is not None and isinstance(plan.default(role), Pow2Type):
        spec = TensorSpec(key, whole=plan.default(role), source=str(plan.default(role)))
    if spec is not None and spec.weight_scheme is not None:
        return _quantize_schemes(t, plan.row_schemes(spec, t.onnx_shape, _onnx_values(t)), spec.source)
    formats = _plan_formats(plan, t, plan.default(role) if role else None, role or "const")
    if formats is not None:
        return _quantize_constant(t, formats)
    if role == "bias" and (t.scheme or {}).get("model_float"):
        return _quantize_constant(t, exact_formats(t.float_data))  # a quantized model's float bias: exact
    if role is not None:
        raise PlanError(f"{role} {t.onnx_name or t.name!r} (shape {list(t.onnx_shape)}) has no format: "
                        f"add it to the plan's 'tensors' or set defaults.{role}")
    values = _computed_constant(graph, t)
    return _quantize_constant(t, exact_formats(values), values)


def _onnx_values(t: Tensor) -> np.ndarray:
    """A constant's float values in the layout of its ONNX tensor (the one its plan entry means)."""
    values = np.asarray(t.float_data if t.float_data is not None else t.data, dtype=np.float64)
    return values if t.onnx_axes is None else np.transpose(values, np.argsort(t.onnx_axes))


def _computed_constant(graph: Graph, t: Tensor) -> np.ndarray:
    """The value of a constant finegrain computed and the plan does not name (docs/bit-plan.md):
    Clip bounds as they are (a float32 is a short dyadic number), every other one (LeakyRelu's
    alpha, average-pooling reciprocals) rounded RND_CONV to 18 significant bits.  Its format
    is then the one holding that value exactly (1/4 needs one bit)."""
    users = {n.op for n in graph.nodes for s in n.stages() if t.name in s.inputs}
    values = np.asarray(t.float_data if t.float_data is not None else t.data, dtype=np.float64)
    if users <= {Op.CLIP}:
        return values
    return round_significant(values, CONSTANT_SIGNIFICANT_BITS)


def function_table(plan: Plan, function: str, params: dict, out: FixedType, scale: Fraction = Fraction(1),
                   offset: Fraction = Fraction(0), t_in: FixedType | None = None,
                   in_scale: Fraction = Fraction(1)) -> LookupTable:
    """The table of a TABLE node: one entry per code of ``t_in`` (default: the plan's
    ``<function>_input`` format), the function's real value at the code's value times
    ``in_scale`` (a model quantizer's codes: lower_quant's ``input_scale``), times ``scale``,
    plus ``offset`` (a model quantizer's rescale and zero point, :func:`_rescale_after`),
    rounded once into ``out`` (its rounding, then its overflow mode), as a quantizer of the
    real function would round it.

    float64 decides an entry when its value, moved by more than its own error either way,
    rounds the same; the others (values next to a rounding boundary) are computed exactly or
    to 60 digits (`table_functions.precise`)."""
    t_in = t_in or plan.table_type(f"{function}_input")
    codes = np.arange(t_in.min_mantissa, t_in.max_mantissa + 1)
    x = np.ldexp(codes.astype(np.float64), -t_in.frac_bits) * float(in_scale)
    y = table_functions.evaluate(function, params, x) * float(scale) + float(offset)
    formats = Formats.uniform(y.shape, out)
    rounded = round_float(y, formats)
    # far beyond numpy's few ulps on these formulas, and float64's roundings of x and of y's scaling
    slack = 2.0 ** -40 * np.maximum(np.abs(y), 1.0) + 2.0 ** -48 * table_functions.slope(function, params) \
        * np.abs(x) * float(abs(scale))
    doubt = (round_float(y - slack, formats) != rounded) | (round_float(y + slack, formats) != rounded)
    if np.any(doubt):
        rounded = np.asarray(rounded, dtype=object)
        for i in np.flatnonzero(doubt):
            v = table_functions.precise(function, params,
                                        Fraction(int(codes[i])) * Fraction(2) ** -t_in.frac_bits * in_scale)
            v = v * scale + offset
            rounded[i] = round_rational(v * Fraction(2) ** out.frac_bits, out.rounding)
    return LookupTable(t_in, out, apply_overflow(rounded, formats))


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


def _quantizer_after(plan: Plan, graph: Graph, t: Tensor) -> FixedType | None:
    """The format of the model's quantizer that alone reads a table's output (a QuantTanh's
    Quant, lowered to a REQUANTIZE), unless the plan names either tensor: the table then rounds
    the function once, into that format, as the quantizer would."""
    readers = graph.consumers(t.name)
    if plan.spec(t.name) is not None or t.name in graph.outputs or len(readers) != 1:
        return None
    quantizer = graph.tensor(readers[0].outputs[0])
    if readers[0].op != Op.REQUANTIZE or quantizer.formats is None or plan.spec(quantizer.name) is not None:
        return None
    t = quantizer.formats.uniform_type()
    return t if t is not None and t.width <= MAX_TABLE_OUTPUT_BITS else None


def _rescale_after(plan: Plan, graph: Graph, t: Tensor) -> tuple[FixedType, str, Fraction, Fraction, set] | None:
    """Where the model's quantizer alone reads a table's output through a rescale (a scale
    that is not a power of two: lower_quant's MUL by the exact ratio, a zero point, the
    REQUANTIZE into its codes) and the plan names none of them: (the codes' format, the
    quantizer's output, the ratio, the zero point in output units, the nodes the table takes
    over). The table then holds the quantizer's codes of the real function, rounded once,
    where a table and then the rescale would round twice."""
    readers = graph.consumers(t.name)
    if plan.spec(t.name) is not None or t.name in graph.outputs or len(readers) != 1 or readers[0].op != Op.MUL \
            or readers[0].inputs[0] != t.name:
        return None
    c = graph.tensor(readers[0].inputs[1])
    rescale = (c.scheme or {}).get("rescale") if c.is_constant else None
    if rescale is None:
        return None
    ratios = {Fraction(float(a)) / Fraction(float(b)) for a, b in zip(
        np.ravel(rescale["numerator"]), np.ravel(rescale["denominator"]))}
    chain, current, offset = {readers[0].name}, readers[0].outputs[0], Fraction(0)
    readers = graph.consumers(current)
    if len(readers) == 1 and readers[0].op == Op.ADD and readers[0].inputs[0] == current:
        zero = graph.tensor(readers[0].inputs[1])
        points = {int(m) for m in np.ravel(zero.data)} if zero.is_constant else set()
        if len(points) != 1:
            return None
        offset = Fraction(points.pop()) / Fraction(2) ** zero.data_frac
        chain.add(readers[0].name)
        current = readers[0].outputs[0]
        readers = graph.consumers(current)
    if len(ratios) != 1 or len(readers) != 1 or readers[0].op != Op.REQUANTIZE or current in graph.outputs:
        return None
    q = graph.tensor(readers[0].outputs[0])
    out = q.formats.uniform_type() if q.formats is not None and plan.spec(q.name) is None else None
    if out is None or out.width > MAX_TABLE_OUTPUT_BITS:
        return None
    return out, q.name, ratios.pop(), offset, chain | {readers[0].name}


def _table_output(plan: Plan, t: Tensor, default_key: str) -> FixedType:
    spec = plan.spec(t.name)
    if spec is None:
        return plan.table_type(default_key)
    formats = plan.formats_for(spec, (1, *t.shape), batch_axis=True)
    uniform = formats.uniform_type()
    if uniform is None:
        raise PlanError(f"plan entry for tensor {t.name!r}: the output of a table look-up must have one "
                        f"format for the whole tensor, got {readable_type(formats)}")
    if uniform.width > MAX_TABLE_OUTPUT_BITS:
        raise PlanError(f"plan entry for tensor {t.name!r}: {uniform} is {uniform.width} bits wide, and the output "
                        f"of a table look-up is its entries, which take at most {MAX_TABLE_OUTPUT_BITS} bits; "
                        f"use a narrower format")
    return uniform


def _check_names(plan: Plan, graph: Graph) -> None:
    known = {t.onnx_name or t.name for t in graph.tensors.values()} | set(graph.tensors)
    for name in plan.tensors:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise PlanError(f"plan names tensor {name!r}, which finegrain does not have: the model has no "
                            f"such tensor{hint}, or it is the output of an Identity, Dropout, one-input "
                            f"Concat, identity Transpose or a Reshape, Flatten, Squeeze or Unsqueeze that "
                            f"keeps the shape, which finegrain reads as that op's input: name the input "
                            f"instead. Run 'finegrain plan-template' to list the names.")


def apply_plan(graph: Graph, plan: Plan) -> Graph:
    _check_names(plan, graph)
    tensors = dict(graph.tensors)
    for name in graph.inputs:
        t = tensors[name]
        if t.formats is not None and plan.spec(t.onnx_name or name) is None:
            continue  # set by the model itself (an integer input, a quantizer lower_quant moved here)
        formats = _plan_formats(plan, t, plan.default("input"), "input")
        if formats is None:
            raise PlanError(f"graph input {name!r} (shape [batch, {', '.join(map(str, t.shape))}]) has no "
                            f"format: set defaults.input in the plan or add {name!r} to 'tensors'")
        tensors[name] = dataclasses.replace(t, formats=formats)
    for name, t in graph.tensors.items():
        if t.is_constant and (t.formats is None or (t.quantizer is not None or t.scheme is not None)
                              and plan.spec(t.onnx_name or name) is not None):
            # a constant the model quantized keeps its formats unless the plan names it
            tensors[name] = _constant(plan, graph, dataclasses.replace(t, formats=None))

    nodes: list[Node] = []
    taken: set[str] = set()  # a model quantizer's rescale nodes a table took over
    for node in graph.nodes:
        if node.name in taken:
            continue
        out = tensors[node.outputs[0]]
        # a table of a model quantizer's codes reads them (lower_quant), in their own format
        # unless the plan made that one wider (or mixed): then in the plan's table input format
        in_scale = node.attrs.get("input_scale", Fraction(1)) if node.op == Op.TABLE else Fraction(1)
        t_in = tensors[node.inputs[0]].formats.uniform_type() if "input_scale" in node.attrs else None
        t_in = t_in if t_in is not None and t_in.width <= TABLE_CODE_BITS else None
        fused = _rescale_after(plan, graph, out) if node.op == Op.TABLE else None
        if fused is not None:
            out_type, codes, scale, offset, chain = fused
            taken |= chain
            table = function_table(plan, node.attrs["function"], node.attrs["params"], out_type, scale, offset,
                                   t_in, in_scale)
            nodes.append(dataclasses.replace(node, outputs=(codes,), attrs={
                **node.attrs, "table": table, "rescale": {"scale": scale, "offset": offset}}))
            continue
        if node.op in (Op.TABLE, Op.SOFTMAX):
            if node.op == Op.TABLE:
                function = node.attrs["function"]
                out_type = _quantizer_after(plan, graph, out) or _table_output(plan, out, f"{function}_output")
                attrs = {**node.attrs, "table": function_table(plan, function, node.attrs["params"], out_type,
                                                               t_in=t_in, in_scale=in_scale)}
            else:
                out_type = _table_output(plan, out, "softmax_output")
                exp_table, inv_table = _softmax_tables(plan, out.shape[node.attrs["axis"]])
                attrs = {"axis": node.attrs["axis"], "exp_table": exp_table, "inv_table": inv_table}
            tensors[out.name] = dataclasses.replace(out, formats=Formats.uniform(out.shape, out_type))
            nodes.append(dataclasses.replace(node, attrs=attrs))
            continue
        spec = plan.spec(out.name)
        if out.formats is not None and node.op == Op.REQUANTIZE:
            # a model's quantizer (lower_quant): the plan may replace its formats
            if spec is not None:
                tensors[out.name] = dataclasses.replace(out, formats=_plan_formats(plan, out, None, "activation"))
            nodes.append(node)
            continue
        lowered = out.scheme is not None and "lowered" in out.scheme
        fallback = None if node.op in LAYOUT_OPS or lowered else plan.default("activation")
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
