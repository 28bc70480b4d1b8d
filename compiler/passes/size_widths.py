"""size_widths: the tightest per-element type of every exact tensor, accumulators included.

Interval arithmetic on integer mantissas, element by element, from the ranges of the
graph inputs' formats and the actual constant values:

* ``lo``/``hi``: the exact extremes each element can take (a DENSE output's bound is met
  by driving each input to the extreme its weight's sign asks for, so one layer's bounds
  are reached; zero weights contribute nothing).
* ``grain``: the fractional bits an element really needs: the finest LSB of the terms that
  reach it (a weight's trailing zero bits do not count; -inf means always zero).

From these, each exact tensor gets per-element formats (``FixedType.for_range``): nothing
can overflow, and no bit at either end is unused.  Quantized tensors keep the plan's
formats; every tensor records its exact ``bounds``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..emulate import _HANDLERS, Emulator, Fx, _mul, _windows
from ..errors import PlanError
from ..fixed import Formats, Overflow, bits_for_range
from ..ir import Graph, Node, Op
from ..mantissa import INT64_SAFE_BITS, as_object, exact_add, max_abs_bits, requantize, rescale, round_to, shift_left

NEG_INF = -np.inf
EXACT_MAX_WIDTH = 1024  # the widest format compiler.fixed (and ap_fixed) holds: an exact
# tensor (an accumulator) needing more is a PlanError naming it, not a FormatError traceback


@dataclass(frozen=True, eq=False)
class Range:
    lo: np.ndarray  # int64 or Python ints (`_exact`), no batch axis
    hi: np.ndarray
    frac: int
    grain: np.ndarray  # float64: needed fractional bits, -inf where always zero

    def __post_init__(self):
        object.__setattr__(self, "lo", _exact(self.lo))
        object.__setattr__(self, "hi", _exact(self.hi))

    def at(self, frac: int) -> tuple[np.ndarray, np.ndarray]:
        # shift_left turns to Python ints where int64 would not hold the result
        return shift_left(self.lo, frac - self.frac), shift_left(self.hi, frac - self.frac)


def _exact(a) -> np.ndarray:
    """Bounds as int64 while every magnitude fits in INT64_SAFE_BITS (room for one add), else
    as Python ints.  Every rule below that multiplies or adds them goes through a helper that
    turns to Python ints when int64 would not hold the result (`exact_add`, `shift_left`, the
    emulator's `_mul` and handlers); a million-element feature map in int64 is sized many times
    faster than in Python ints."""
    a = np.asarray(a)
    if a.dtype == object:
        if a.size and max_abs_bits(a) <= INT64_SAFE_BITS:
            return a.astype(np.int64)
        return as_object(a)  # Python ints, never numpy scalars inside
    if a.dtype.kind in "iub" and max_abs_bits(a) <= INT64_SAFE_BITS:
        return a.astype(np.int64, copy=False)
    return as_object(a)


def _trailing_zeros(m: np.ndarray) -> np.ndarray:
    tz = np.frompyfunc(lambda v: (int(v) & -int(v)).bit_length() - 1 if v else -1, 1, 1)
    return np.asarray(tz(m), dtype=np.float64)


def _grain_of_mantissas(m: np.ndarray, frac: int) -> np.ndarray:
    return np.where(m != 0, frac - _trailing_zeros(m), NEG_INF)


def _range_of_formats(formats: Formats) -> Range:
    lo, hi = formats.mantissa_bounds()
    frac_bits = formats.frac_bits
    kept = ~formats.pruned
    frac = int(frac_bits[kept].max()) if kept.any() else 0
    shift = np.where(kept, frac - frac_bits, 0)
    grain = np.where(kept, frac_bits.astype(np.float64), NEG_INF)
    return Range(shift_left(lo, shift), shift_left(hi, shift), frac, grain)


def _lift(r_lo: np.ndarray, frac: int) -> Fx:
    return Fx(np.asarray(r_lo)[np.newaxis], frac)


class _Sizer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.emu = Emulator(graph)
        self.ranges: dict[str, Range] = {}

    def range(self, name: str) -> Range:
        if name not in self.ranges:
            t = self.graph.tensor(name)
            if t.is_constant:
                m = _exact(t.data)
                self.ranges[name] = Range(m, m, t.data_frac, _grain_of_mantissas(m, t.data_frac))
            else:
                self.ranges[name] = _range_of_formats(t.formats)
        return self.ranges[name]

    def apply(self, node: Node, args: list[Fx]) -> np.ndarray:
        """Run the emulator's handler for ``node`` on single-sample values."""
        return _HANDLERS[node.op](self.emu, node, args).m[0]

    # --- per op -------------------------------------------------------------------
    def linear(self, node: Node) -> Range:
        x, w = self.range(node.inputs[0]), self.range(node.inputs[1])
        wm = w.lo
        pos, neg = np.where(wm > 0, wm, 0), np.where(wm < 0, wm, 0)
        plain = dataclasses.replace(node, inputs=node.inputs[:2])

        def lin(xm, wmat):
            return self.apply(plain, [_lift(xm, x.frac), _lift(wmat, w.frac)])

        lo = exact_add(lin(x.lo, pos), lin(x.hi, neg))
        hi = exact_add(lin(x.hi, pos), lin(x.lo, neg))
        frac = x.frac + w.frac
        grain = _linear_grain(node, x.grain, w.grain)
        if len(node.inputs) > 2:
            b = self.range(node.inputs[2])
            bias_shape = b.lo.shape + (1,) * (lo.ndim - 1) if node.op == Op.CONV else b.lo.shape
            bias = Range(b.lo.reshape(bias_shape), b.hi.reshape(bias_shape), b.frac, b.grain.reshape(bias_shape))
            return _add(Range(lo, hi, frac, grain), bias)
        return Range(lo, hi, frac, grain)

    def size(self, node: Node) -> Range:
        op = node.op
        if op in (Op.DENSE, Op.CONV):
            return self.linear(node)
        args = [self.range(i) for i in node.inputs]
        if op == Op.ADD:
            return _add(*args)
        if op == Op.MUL:  # by a constant or an activation: the extremes are at the corners
            x, c = args
            corners = [_mul(x.lo, c.lo), _mul(x.lo, c.hi), _mul(x.hi, c.lo), _mul(x.hi, c.hi)]
            lo = np.minimum.reduce(corners)
            if node.inputs[0] == node.inputs[1]:  # a square is never negative
                lo = np.where((x.lo <= 0) & (x.hi >= 0), 0, np.minimum(corners[0], corners[3]))
            return Range(lo, np.maximum.reduce(corners), x.frac + c.frac,
                         np.broadcast_to(x.grain + c.grain, np.broadcast_shapes(x.grain.shape, c.grain.shape)))
        if op == Op.RELU:
            x = args[0]
            return Range(np.maximum(x.lo, 0), np.maximum(x.hi, 0), x.frac, np.where(x.hi > 0, x.grain, NEG_INF))
        if op == Op.LEAKY_RELU:
            x, alpha = args
            a, fa = alpha.lo, alpha.frac

            # the emulator's rule: x at x.frac + max(fa, 0), x * alpha shifted up to it
            def f(v):  # as_object: a 0-d product is a Python int, which np.where would make a C long
                v = as_object(v)
                return np.where(v >= 0, as_object(v * (1 << max(fa, 0))), as_object(v * a * (1 << max(-fa, 0))))

            corners = [f(x.lo), f(x.hi), np.where((x.lo < 0) & (x.hi > 0), 0, f(x.lo))]
            grain = np.maximum(np.where(x.lo < 0, x.grain + alpha.grain, NEG_INF), np.where(x.hi > 0, x.grain, NEG_INF))
            return Range(np.minimum.reduce(corners), np.maximum.reduce(corners), x.frac + max(fa, 0), grain)
        if op == Op.CLIP:
            frac = max(a.frac for a in args)
            (xl, xh), (ll, _), (hl, _) = (a.at(frac) for a in args)
            grain = np.maximum(args[0].grain, np.maximum(args[1].grain, args[2].grain))
            return Range(np.minimum(np.maximum(xl, ll), hl), np.minimum(np.maximum(xh, ll), hl), frac, grain)
        if op in (Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT, Op.MAXPOOL):
            frac = max(a.frac for a in args)
            lo = self.apply(node, [_lift(a.at(frac)[0], frac) for a in args])
            hi = self.apply(node, [_lift(a.at(frac)[1], frac) for a in args])
            return Range(lo, hi, frac, _layout_grain(self, node, args))
        if op == Op.AVGPOOL:
            x, r = args
            if (r.lo < 0).any():
                raise ValueError(f"node {node.name!r}: negative pooling reciprocal")
            lo = self.apply(node, [_lift(x.lo, x.frac), _lift(r.lo, r.frac)])
            hi = self.apply(node, [_lift(x.hi, x.frac), _lift(r.lo, r.frac)])
            return Range(lo, hi, x.frac + r.frac, _pool_grain(node, x.grain, r.grain))
        if op == Op.REQUANTIZE:
            return _requantize_range(args[0], self.graph.tensor(node.outputs[0]).formats)
        if op == Op.TABLE:
            table = node.attrs["table"]
            shape = self.graph.tensor(node.outputs[0]).shape
            lo = np.full(shape, int(table.values.min()), dtype=object)  # (Python ints: any width)
            hi = np.full(shape, int(table.values.max()), dtype=object)
            return Range(lo, hi, table.output.frac_bits, np.full(shape, float(table.output.frac_bits)))
        if op == Op.SOFTMAX:
            return _range_of_formats(self.graph.tensor(node.outputs[0]).formats)
        raise ValueError(f"node {node.name!r}: no sizing rule for {op.value}")


def _add(a: Range, b: Range) -> Range:
    frac = max(a.frac, b.frac)
    (al, ah), (bl, bh) = a.at(frac), b.at(frac)
    return Range(exact_add(al, bl), exact_add(ah, bh), frac, np.maximum(a.grain, b.grain))


def _requantize_range(x: Range, formats: Formats) -> Range:
    rl = round_to(x.lo[np.newaxis], x.frac, formats)[0]
    rh = round_to(x.hi[np.newaxis], x.frac, formats)[0]
    fmin, fmax = formats.mantissa_bounds()
    no_overflow = (rl >= fmin) & (rh <= fmax)
    monotonic = (formats.overflow == Overflow.SAT) | (formats.overflow == Overflow.SAT_SYM) | no_overflow
    ql = requantize(x.lo[np.newaxis], x.frac, formats)[0]
    qh = requantize(x.hi[np.newaxis], x.frac, formats)[0]
    lo = np.where(monotonic, ql, fmin)
    hi = np.where(monotonic, qh, fmax)
    out = _range_of_formats(formats)
    shift = np.where(formats.pruned, 0, out.frac - formats.frac_bits)
    lo, hi = shift_left(_exact(lo), shift), shift_left(_exact(hi), shift)
    grain = np.where((lo == 0) & (hi == 0), NEG_INF, out.grain)
    return Range(lo, hi, out.frac, grain)


def _maxplus(gx: np.ndarray, gw: np.ndarray) -> np.ndarray:
    """out[..., j] = max_k gx[..., k] + gw[j, k]  (the grain of a dot product)."""
    if gx.size == 0 or gw.size == 0:
        return np.full(gx.shape[:-1] + gw.shape[:1], NEG_INF)
    out = np.full(gx.shape[:-1] + gw.shape[:1], NEG_INF)
    for j in range(gw.shape[0]):
        out[..., j] = np.max(gx + gw[j], axis=-1)
    return out


def _linear_grain(node: Node, gx: np.ndarray, gw: np.ndarray) -> np.ndarray:
    if node.op == Op.DENSE:
        return _maxplus(gx, gw)
    a = node.attrs
    n = gw.ndim - 2
    padded = np.pad(gx, [(0, 0)] + [(a["pads"][i], a["pads"][i + n]) for i in range(n)], constant_values=NEG_INF)
    win = _windows(padded[np.newaxis], gw.shape[2:], a["strides"], a["dilations"])[0]  # C, *out, *k
    groups, cin_g = a["groups"], gw.shape[1]
    cout_g = gw.shape[0] // groups
    parts = []
    for g in range(groups):
        patch = np.moveaxis(win[g * cin_g:(g + 1) * cin_g], 0, n)  # *out, Cg, *k
        cols = patch.reshape(*patch.shape[:n], -1)
        parts.append(_maxplus(cols, gw[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)))
    return np.moveaxis(np.concatenate(parts, axis=-1), -1, 0)


def _pool_grain(node: Node, gx: np.ndarray, gr: np.ndarray) -> np.ndarray:
    a = node.attrs
    n = len(a["kernel"])
    padded = np.pad(gx, [(0, 0)] + [(a["pads"][i], a["pads"][i + n]) for i in range(n)], constant_values=NEG_INF)
    win = _windows(padded[np.newaxis], a["kernel"], a["strides"], a.get("dilations", (1,) * n))[0]
    g = win.reshape(*win.shape[:1 + n], -1).max(axis=-1)
    return g + gr if node.op == Op.AVGPOOL else g


def _layout_grain(sizer: _Sizer, node: Node, args: list[Range]) -> np.ndarray:
    if node.op == Op.MAXPOOL:
        return _pool_grain(node, args[0].grain, None)
    if node.op == Op.RESHAPE:
        return args[0].grain.reshape(node.attrs["shape"])
    if node.op == Op.TRANSPOSE:
        return np.transpose(args[0].grain, node.attrs["perm"])
    return np.concatenate([a.grain for a in args], axis=node.attrs["axis"])


def _formats_of_range(r: Range, where: str) -> tuple[Formats, np.ndarray, np.ndarray]:
    """Tight per-element formats, and the bounds at each element's own fraction; ``where``
    names the tensor in the error for one wider than EXACT_MAX_WIDTH."""
    shape = r.lo.shape
    if r.lo.size and r.lo.ndim:  # (a 0-d range takes the loop: numpy makes its results scalars)
        fast = _formats_vectorised(r)
        if fast is not None:
            return fast
    width = np.zeros(shape, dtype=np.int64)
    int_bits = np.zeros(shape, dtype=np.int64)
    signed = np.zeros(shape, dtype=bool)
    lo_own = np.zeros(shape, dtype=object)
    hi_own = np.zeros(shape, dtype=object)
    for idx in np.ndindex(shape):
        g = r.grain[idx]
        lo, hi = int(r.lo[idx]), int(r.hi[idx])
        if g == NEG_INF or (lo == 0 and hi == 0):
            continue
        g = int(g)
        shift = r.frac - g
        lo, hi = (lo >> shift, hi >> shift) if shift >= 0 else (lo << -shift, hi << -shift)
        width[idx], signed[idx] = bits_for_range(lo, hi)
        if width[idx] > EXACT_MAX_WIDTH:
            raise PlanError(f"{where}, element {idx}: its exact value needs {width[idx]} bits (LSB "
                            f"2**{-g}, magnitude below 2**{max(abs(lo), abs(hi)).bit_length() - g}), more than the "
                            f"{EXACT_MAX_WIDTH} bits finegrain supports; give its inputs or weights formats "
                            f"with fewer bits (their range and fraction together set it), or requantize "
                            f"its input first")
        int_bits[idx] = width[idx] - g if width[idx] else 0
        lo_own[idx], hi_own[idx] = lo, hi
    zeros = np.zeros(shape, dtype=np.int64)
    return Formats(width, int_bits, signed, zeros, zeros), lo_own, hi_own


_BIT_LENGTH = np.frompyfunc(int.bit_length, 1, 1)
_POWERS_OF_TWO = np.array([1 << k for k in range(63)], dtype=np.int64)


def _formats_vectorised(r: Range) -> tuple[Formats, np.ndarray, np.ndarray] | None:
    """`_formats_of_range` on whole arrays (int64, or Python ints in object arrays): the same
    formats and bounds as the element loop; None when an element is too wide, so that the loop
    raises the error naming it."""
    g = np.asarray(r.grain, dtype=np.float64)
    zero = (g == NEG_INF) | ((r.lo == 0) & (r.hi == 0))
    gi = np.where(zero, r.frac, g).astype(np.int64)
    shift = r.frac - gi
    down, up = np.maximum(shift, 0), np.maximum(-shift, 0)
    if max(max_abs_bits(r.lo), max_abs_bits(r.hi)) + int(up.max(initial=0)) <= INT64_SAFE_BITS:
        # in int64 (>> floors as Python's does; by 63 or more it leaves 0 or -1)
        lo = np.where(zero, 0, (r.lo.astype(np.int64) >> np.minimum(down, 63)) << up)
        hi = np.where(zero, 0, (r.hi.astype(np.int64) >> np.minimum(down, 63)) << up)
    else:  # Python ints (Range.__post_init__); so are the object results
        lo = np.where(zero, 0, (r.lo >> as_object(down)) << as_object(up))
        hi = np.where(zero, 0, (r.hi >> as_object(down)) << as_object(up))
    signed = np.asarray(lo < 0, dtype=bool)
    width = _bit_length(np.where(signed, np.maximum(np.maximum(hi, 0), -lo - 1), hi)) + signed
    width = np.where(zero, 0, width)
    if width.size and int(width.max()) > EXACT_MAX_WIDTH:
        return None
    int_bits = np.where(width > 0, width - gi, 0)
    zeros = np.zeros(width.shape, dtype=np.int64)
    return Formats(width, int_bits, signed & ~zero, zeros, zeros), lo.astype(object), hi.astype(object)


def _bit_length(m: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of each non-negative element: by search among the powers of two in
    int64, one by one for Python ints."""
    if m.dtype == object:
        return np.asarray(_BIT_LENGTH(m), dtype=np.int64)
    return np.searchsorted(_POWERS_OF_TWO, m, side="right")


def _bounds_at_own_frac(r: Range, formats: Formats) -> tuple[np.ndarray, np.ndarray]:
    shift = np.where(formats.pruned, 0, formats.frac_bits - r.frac)
    return rescale(r.lo, shift), rescale(r.hi, shift)


def size_widths(graph: Graph) -> Graph:
    sizer = _Sizer(graph)
    updates = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        updates[name] = dataclasses.replace(t, bounds=_bounds_at_own_frac(sizer.range(name), t.formats))
    for node in graph.nodes:
        for stage in node.stages():
            out = stage.outputs[0]
            r = sizer.size(stage)
            sizer.ranges[out] = r
            t = graph.tensor(out)
            if t.formats is None:
                formats, lo, hi = _formats_of_range(r, f"node {stage.name!r}, tensor {out!r}")
                updates[out] = dataclasses.replace(t, formats=formats, bounds=(lo, hi))
            else:
                updates[out] = dataclasses.replace(t, bounds=_bounds_at_own_frac(r, t.formats))
    return graph.with_tensors(updates)
