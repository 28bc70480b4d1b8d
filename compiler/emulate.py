"""The bit-exact emulator: the specification every backend must match.

Every tensor value is an :class:`Fx`: integer mantissas (with a leading batch axis) at one
common number of fractional bits for the whole tensor.  Arithmetic is exact integer
arithmetic: int64 while the values provably fit, Python ints beyond (and float64 BLAS for a
matrix product only when every partial sum is an integer below 2**53, where it is exact).
Values change only where a format says so: input quantization, REQUANTIZE, and the table
look-ups of TABLE and SOFTMAX, each using the rounding/overflow rules of `mantissa.py`.

Table look-ups (the definition the HLS and RTL backends implement):

* TABLE (sigmoid, tanh, ...: compiler/table_functions.py): ``code = convert(x, table.input)``;
  ``y = table.values[code - min_code]``.
* SOFTMAX along ``axis``: ``d = x - max(x)`` (exact); ``e = exp_table[convert(d, exp_table.input)]``;
  ``s = sum(e)`` (exact); ``r = inv_table[convert(s, inv_table.input)]``; ``y = convert(e * r, out)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed import Formats
from .ir import Graph, IRError, LookupTable, Node, Op
from .mantissa import (
    apply_overflow, as_exact, as_object, common_fraction, exact_add, exact_sum, max_abs_bits, requantize, round_float,
    round_to, shift_left,
)

FLOAT_EXACT_BITS = 52  # float64 integers are exact below 2**53


class EmulationError(Exception):
    """The graph cannot be emulated (not quantized) or a value escaped its format."""


def _int_to_float(m: int, frac: int) -> float:
    """``m * 2**-frac`` rounded to nearest-even float64, +-inf beyond its range."""
    try:
        return m / (1 << frac) if frac >= 0 else float(m << -frac)
    except OverflowError:
        return math.copysign(math.inf, m)


@dataclass(frozen=True, eq=False)
class Fx:
    """Exact fixed-point values: ``m * 2**-frac`` with ``m`` an integer array."""

    m: np.ndarray
    frac: int

    def at(self, frac: int) -> np.ndarray:
        """Mantissas at ``frac >= self.frac`` fractional bits (exact)."""
        if frac < self.frac:
            raise ValueError("cannot drop fractional bits exactly")
        return shift_left(self.m, frac - self.frac)

    def to_float(self) -> np.ndarray:
        """float64 values, correctly rounded; beyond float64's range, +-inf (the exact values
        are in ``m``).  Wide mantissas go through Python's int division, which rounds once:
        ``float(m) * 2**-frac`` overflowed for a mantissa over 2**1024 or frac over 1023."""
        if self.m.dtype == object:
            return np.array([_int_to_float(int(v), self.frac) for v in self.m.flat],
                            dtype=np.float64).reshape(self.m.shape)
        return np.ldexp(self.m.astype(np.float64), -self.frac)

    def equals(self, other: "Fx") -> bool:
        frac = max(self.frac, other.frac)
        return self.m.shape == other.m.shape and bool(np.all(self.at(frac) == other.at(frac)))


def _align(*values: Fx) -> tuple[list[np.ndarray], int]:
    frac = max(v.frac for v in values)
    return [v.at(frac) for v in values], frac


def _fx_of_formats(m: np.ndarray, formats: Formats) -> Fx:
    return Fx(*common_fraction(m, formats))


def _matmul(a: np.ndarray, b: np.ndarray, terms: int) -> np.ndarray:
    """Exact integer ``a @ b``."""
    a_bits, b_bits, growth = max_abs_bits(a), max_abs_bits(b), max(terms, 1).bit_length()
    if a_bits + b_bits + growth <= FLOAT_EXACT_BITS:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    a = as_exact(a, a_bits + b_bits + growth)  # every partial sum holds in these bits
    if a.dtype != object:
        return np.matmul(a, b.astype(np.int64))
    limb = FLOAT_EXACT_BITS - b_bits - growth
    if limb >= MIN_LIMB_BITS and -(-a_bits // limb) <= MAX_LIMBS:
        return _matmul_by_limbs(a, b.astype(np.float64), limb)
    return np.matmul(a, as_object(b))


MIN_LIMB_BITS, MAX_LIMBS = 8, 8  # else numpy's product of Python ints, slower but any width


def _matmul_by_limbs(a: np.ndarray, b: np.ndarray, limb: int) -> np.ndarray:
    """Exact ``a @ b`` (``a`` Python ints, ``b`` float64 integers) as float products: ``a`` cut
    into ``limb``-bit digits, a = sum_k d_k 2**(k limb), each 0 <= d_k < 2**limb but the last
    (a's sign, by floor shifts), so every ``d_k @ b`` is exact in float64 (``_matmul`` chose
    ``limb`` so), then summed as Python ints."""
    total, k, mask = None, 0, (1 << limb) - 1
    rest = a
    while True:
        top = max_abs_bits(rest) <= limb  # what is left is one digit: it carries the sign
        digit = rest if top else rest & mask
        part = np.matmul(digit.astype(np.float64), b).astype(np.int64).astype(object)
        total = part if total is None else total + (part << (k * limb))
        if top:
            return total
        rest, k = rest >> limb, k + 1


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = as_exact(a, max_abs_bits(a) + max_abs_bits(b))
    return a * (as_object(b) if a.dtype == object else b)


def _pad(m: np.ndarray, pads, spatial_axes: int, value) -> np.ndarray:
    """Pad the trailing spatial axes (ONNX order: all begins, then all ends).

    Written out rather than with np.pad, which puts numpy scalars into object arrays and
    so would make Python-int arithmetic overflow silently at 64 bits.
    """
    n = spatial_axes
    if not any(pads):
        return m
    lead = m.ndim - n
    shape = m.shape[:lead] + tuple(m.shape[lead + i] + pads[i] + pads[i + n] for i in range(n))
    fill = int(value) if m.dtype == object else value
    out = np.full(shape, fill, dtype=m.dtype)
    out[(Ellipsis,) + tuple(slice(pads[i], pads[i] + m.shape[lead + i]) for i in range(n))] = m
    return out


def _windows(m: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """(B, C, *out, *kernel) view of the sliding windows over the trailing spatial axes."""
    n = len(kernel)
    span = [dilations[i] * (kernel[i] - 1) + 1 for i in range(n)]
    view = np.lib.stride_tricks.sliding_window_view(m, span, axis=tuple(range(m.ndim - n, m.ndim)))
    positions = tuple(slice(None, None, strides[i]) for i in range(n))
    view = view[(slice(None),) * (m.ndim - n) + positions]
    return view[(Ellipsis,) + tuple(slice(None, None, dilations[i]) for i in range(n))]


class Emulator:
    """Runs a quantized graph on a batch.  `values` maps tensor names to Fx.

    ``on_convert(tensor, value, rounded, formats)``, if given, sees every REQUANTIZE (and
    `quantize_inputs` every input) between rounding and overflow: ``rounded`` are the
    mantissas before the overflow mode applies (`calibrate.ClipCounter` counts clipping).
    """

    def __init__(self, graph: Graph, check_ranges: bool = False, on_convert=None):
        self.graph = graph
        self.check_ranges = check_ranges
        self.on_convert = on_convert

    # --- entry points ----------------------------------------------------------------
    def run(self, inputs: dict[str, Fx], keep: set[str] | None = None) -> dict[str, Fx]:
        """Every tensor's value; with ``keep``, only those, each other value dropped after its
        last reader (a large model's activations need not all be held at once)."""
        values = dict(inputs)
        last_use: dict[str, int] = {}
        if keep is not None:
            for k, node in enumerate(self.graph.nodes):
                for stage in node.stages():
                    for name in stage.inputs:
                        last_use[name] = k
        for k, node in enumerate(self.graph.nodes):
            for stage in node.stages():
                out = self._eval(stage, values)
                if self.check_ranges:
                    check_fits(self.graph, stage.outputs[0], out, node.name)
                values[stage.outputs[0]] = out
            if keep is not None:
                for name in [n for n in values if n not in keep and last_use.get(n, -1) <= k]:
                    del values[name]
        return values

    def _const(self, name: str) -> Fx:
        t = self.graph.tensors[name]
        if not t.is_quantized:
            raise EmulationError(f"constant {name!r} is not quantized yet: apply the plan before emulating")
        return Fx(t.data[np.newaxis], t.data_frac)

    def _value(self, name: str, values: dict) -> Fx:
        if name in values:
            return values[name]
        return self._const(name)

    # --- ops -------------------------------------------------------------------------
    def _eval(self, node: Node, values: dict) -> Fx:
        args = [self._value(i, values) for i in node.inputs]
        handler = _HANDLERS.get(node.op)
        if handler is None:
            raise EmulationError(f"node {node.name!r}: op {node.op.value} cannot be emulated "
                                 f"(it must be removed by an earlier pass)")
        return handler(self, node, args)

    def _dense(self, node, args):
        x, w = args[0], args[1]
        weight = w.m[0]
        y = _matmul(x.m, weight.T, weight.shape[1])
        acc = Fx(y, x.frac + w.frac)
        if len(args) > 2:
            (ym, bm), frac = _align(acc, args[2])
            return Fx(exact_add(ym, bm), frac)
        return acc

    def _conv(self, node, args):
        x, w = args[0], args[1]
        a = node.attrs
        weight = w.m[0]
        n = weight.ndim - 2
        groups = a["groups"]
        cin_g, cout_g = weight.shape[1], weight.shape[0] // groups
        xm = x.m
        if xm.dtype == object and (max_abs_bits(xm) + max_abs_bits(weight) + max(weight[0].size, 1).bit_length()
                                   <= FLOAT_EXACT_BITS):
            xm = xm.astype(np.float64)  # exact, and _matmul takes its float product on the windows anyway
        xm = _pad(xm, a["pads"], n, 0)
        win = _windows(xm, weight.shape[2:], a["strides"], a["dilations"])  # B, C, *out, *k
        batch, out_spatial = win.shape[0], win.shape[2:2 + n]
        outs = []
        for g in range(groups):
            patch = win[:, g * cin_g:(g + 1) * cin_g]  # B, Cg, *out, *k
            patch = np.moveaxis(patch, 1, 1 + n)  # B, *out, Cg, *k
            cols = patch.reshape(batch, *out_spatial, -1)
            wg = weight[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)
            outs.append(_matmul(cols, wg.T, wg.shape[1]))
        y = np.concatenate(outs, axis=-1)  # B, *out, M
        y = np.moveaxis(y, -1, 1)
        acc = Fx(np.ascontiguousarray(y), x.frac + w.frac)
        if len(args) > 2:
            bias = args[2]
            b = Fx(bias.m.reshape(bias.m.shape + (1,) * n), bias.frac)
            (ym, bm), frac = _align(acc, b)
            return Fx(exact_add(ym, bm), frac)
        return acc

    def _add(self, node, args):
        (a, b), frac = _align(*args)
        return Fx(exact_add(a, b), frac)

    def _mul(self, node, args):
        x, c = args
        return Fx(_mul(x.m, c.m), x.frac + c.frac)

    def _relu(self, node, args):
        x = args[0]
        return Fx(np.maximum(x.m, 0) if x.m.dtype != object else as_object(np.where(x.m > 0, x.m, 0)), x.frac)

    def _leaky_relu(self, node, args):
        x, alpha = args
        # x * alpha is exact at x.frac + alpha.frac, x itself at x.frac: the result takes the
        # finer of the two (an alpha format with negative fractional bits, fixed<4,8>, makes
        # the product the coarser one)
        scaled = shift_left(_mul(x.m, alpha.m), max(-alpha.frac, 0))
        kept = shift_left(x.m, max(alpha.frac, 0))
        if scaled.dtype == object or kept.dtype == object:
            scaled, kept = as_object(scaled), as_object(kept)
        return Fx(np.where(x.m >= 0, kept, scaled), x.frac + max(alpha.frac, 0))

    def _clip(self, node, args):
        (x, lo, hi), frac = _align(*args)
        return Fx(np.minimum(np.maximum(x, lo), hi), frac)

    def _maxpool(self, node, args):
        x = args[0]
        a = node.attrs
        n = len(a["kernel"])
        low = (x.m.min() - 1) if x.m.size else 0
        xm = _pad(x.m, a["pads"], n, low)
        win = _windows(xm, a["kernel"], a["strides"], a.get("dilations", (1,) * n))
        return Fx(win.reshape(*win.shape[:2 + n], -1).max(axis=-1), x.frac)

    def _avgpool(self, node, args):
        x, recip = args
        a = node.attrs
        n = len(a["kernel"])
        xm = _pad(x.m, a["pads"], n, 0)
        win = _windows(xm, a["kernel"], a["strides"], (1,) * n)
        flat = win.reshape(*win.shape[:2 + n], -1)
        total = exact_sum(flat, axis=-1)
        return Fx(_mul(total, recip.m), x.frac + recip.frac)

    def _concat(self, node, args):
        parts, frac = _align(*args)
        if any(p.dtype == object for p in parts):
            parts = [as_object(p) for p in parts]
        return Fx(np.concatenate(parts, axis=node.attrs["axis"] + 1), frac)

    def _reshape(self, node, args):
        x = args[0]
        return Fx(x.m.reshape(x.m.shape[0], *node.attrs["shape"]), x.frac)

    def _transpose(self, node, args):
        x = args[0]
        return Fx(np.transpose(x.m, (0, *(p + 1 for p in node.attrs["perm"]))), x.frac)

    def _requantize(self, node, args):
        x = args[0]
        formats = self.graph.tensor(node.outputs[0]).formats
        if formats is None:
            raise EmulationError(f"requantize node {node.name!r}: output has no formats")
        rounded = round_to(x.m, x.frac, formats)  # mantissa.requantize, with the hook between its steps
        if self.on_convert is not None:
            self.on_convert(node.outputs[0], x, rounded, formats)
        return _fx_of_formats(apply_overflow(rounded, formats), formats)

    def _table(self, node, args):
        x = args[0]
        return _lookup(node.attrs["table"], x.m, x.frac)

    def _softmax(self, node, args):
        x = args[0]
        axis = node.attrs["axis"] + 1
        d = exact_add(x.m, -x.m.max(axis=axis, keepdims=True))  # int64 values hold at most 61 bits
        e = _lookup(node.attrs["exp_table"], d, x.frac)
        total = exact_sum(e.m, axis=axis, keepdims=True)
        r = _lookup(node.attrs["inv_table"], total, e.frac)
        product = Fx(_mul(e.m, np.broadcast_to(r.m, e.m.shape)), e.frac + r.frac)
        formats = self.graph.tensor(node.outputs[0]).formats
        return _fx_of_formats(requantize(product.m, product.frac, formats), formats)


def _lookup(table: LookupTable, m: np.ndarray, frac: int) -> Fx:
    code_formats = Formats.uniform(m.shape[1:], table.input)
    code = requantize(m, frac, code_formats)
    index = np.asarray(code, dtype=np.int64) - table.input.min_mantissa
    return Fx(table.values[index], table.output.frac_bits)


_HANDLERS = {
    Op.DENSE: Emulator._dense, Op.CONV: Emulator._conv, Op.ADD: Emulator._add, Op.MUL: Emulator._mul,
    Op.RELU: Emulator._relu, Op.LEAKY_RELU: Emulator._leaky_relu, Op.CLIP: Emulator._clip,
    Op.MAXPOOL: Emulator._maxpool, Op.AVGPOOL: Emulator._avgpool, Op.CONCAT: Emulator._concat,
    Op.RESHAPE: Emulator._reshape, Op.TRANSPOSE: Emulator._transpose, Op.REQUANTIZE: Emulator._requantize,
    Op.TABLE: Emulator._table, Op.SOFTMAX: Emulator._softmax,
}


def check_fits(graph: Graph, name: str, value: Fx, node_name: str) -> None:
    """Raise if any element of ``value`` is not representable in the tensor's formats."""
    formats = graph.tensor(name).formats
    if formats is None:
        return
    shift = value.frac - formats.frac_bits
    m = value.m
    down = np.where(shift > 0, shift, 0)
    up = np.where(shift < 0, -shift, 0)
    m_obj = as_object(m)
    own = (m_obj >> as_object(down)) << as_object(up)  # exact where divisible
    lost = (own >> as_object(up)) << as_object(down) != m_obj
    lo, hi = formats.mantissa_bounds()
    bad = lost | (own < lo) | (own > hi)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        val = value.to_float()[idx]
        raise EmulationError(f"node {node_name!r}: value {val!r} of tensor {name!r} at element "
                             f"{list(idx[1:])} (sample {idx[0]}) does not fit its format "
                             f"{formats.element(idx[1:])}")


def quantize_inputs(graph: Graph, inputs, on_convert=None) -> dict[str, Fx]:
    """Float inputs (array or {name: array}; with or without the batch axis) to Fx
    (``on_convert``: see `Emulator`)."""
    if not isinstance(inputs, dict):
        if len(graph.inputs) != 1:
            raise EmulationError(f"graph has inputs {list(graph.inputs)}: pass a dict of arrays")
        inputs = {graph.inputs[0]: inputs}
    result = {}
    for name in graph.inputs:
        if name not in inputs:
            raise EmulationError(f"missing input {name!r} (graph inputs: {list(graph.inputs)})")
        t = graph.tensor(name)
        x = np.asarray(inputs[name])
        if x.shape == t.shape:
            x = x[np.newaxis]
        if x.shape[1:] != t.shape:
            raise EmulationError(f"input {name!r} has shape {list(x.shape)}; expected "
                                 f"[batch, {', '.join(map(str, t.shape))}]")
        if t.formats is None:
            raise EmulationError(f"input {name!r} has no format: apply the plan first")
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float64)
        if t.model_scale is not None:
            # the IR value is the model value over the scale lower_quant kept (compiler/quantizer.py
            # says why a float64 quotient decides the rounding of float32 data exactly)
            x = np.asarray(x, dtype=np.float64) / t.model_scale
        rounded = round_float(x, t.formats, f"input {name!r}")  # mantissa.quantize_float, with the hook
        if on_convert is not None:
            on_convert(name, x, rounded, t.formats)
        result[name] = _fx_of_formats(apply_overflow(rounded, t.formats), t.formats)
    return result


def run(graph: Graph, inputs: dict[str, Fx], check_ranges: bool = False, on_convert=None,
        keep: set[str] | None = None) -> dict[str, Fx]:
    """Run and return every tensor's value (inputs included), or only those in ``keep``."""
    try:
        return Emulator(graph, check_ranges, on_convert).run(inputs, keep)
    except IRError as err:
        raise EmulationError(str(err)) from None


def emulate(graph: Graph, inputs, check_ranges: bool = False) -> dict[str, np.ndarray]:
    """Float inputs in, graph outputs out as float64 (exact for mantissas up to 53 bits)."""
    values = run(graph, quantize_inputs(graph, inputs), check_ranges)
    return {name: values[name].to_float() for name in graph.outputs}


def emulate_exact(graph: Graph, inputs, check_ranges: bool = False) -> dict[str, Fx]:
    """Float inputs in, graph outputs out as exact Fx."""
    values = run(graph, quantize_inputs(graph, inputs), check_ranges)
    return {name: values[name] for name in graph.outputs}
