"""choose_multipliers: the fixed-point value of every rescale multiplier lower_quant placed.

``lower_quant`` writes ``y = REQUANTIZE(MUL(x, NODE.multiplier))`` where the quantized model asks
for ``y = R(x * M)`` with an exact rational ``M`` (a ratio of two residual scales).  Once the
plan is applied every format is known, so the range of ``x`` is too: this pass sizes the
graph (size_widths, on a copy), and for each group of elements sharing a ratio, an output grid
and a rounding mode, asks `compiler.rescale.choose_multiplier` for the narrowest ``K * 2**-n``
whose rounded product equals ``R(x * M)`` on every reachable value of ``x`` (proved over the
union of their ranges, on the finest grid of ``x`` among them: it holds the coarser ones' values),
or the best one of at most ``MAX_MULTIPLIER_BITS`` bits and the largest difference it can make.

In integer terms: ``x = a * 2**-f_x`` (``a`` the accumulator mantissa, an integer in the sized
range) and ``y = c * 2**-f_y``; the hardware computes ``c = R(a * M' * 2**(f_y - f_x))``, the
model ``R(a * M * 2**(f_y - f_x))``, so the ratio handed to the chooser is ``M * 2**(f_y - f_x)``.

Every choice is recorded on the constant's ``scheme["rescale"]["choices"]`` (ratio, value,
bits, exact, largest difference in output LSBs, the accumulator range), which report.json lists.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from ..fixed import Overflow, Rounding
from ..ir import Graph, IRError, Op
from ..mantissa import distinct
from ..rescale import choose_multiplier, choose_offset_multiplier
from .quant_data import compact, fill_unknown, mantissa_data
from .size_widths import size_widths

MAX_MULTIPLIER_BITS = 32  # the default widest K (compile --rescale-bits)
MAX_RESCALE_BITS = 64  # the widest the option allows


def _rescale_nodes(graph: Graph):
    """(MUL, REQUANTIZE, the zero point added between them or None) of each rescale."""
    for node in graph.nodes:
        if node.op != Op.MUL:
            continue
        c = graph.tensor(node.inputs[1])
        if c.scheme is not None and "rescale" in c.scheme:
            consumers, zero = graph.consumers(node.outputs[0]), None
            if len(consumers) == 1 and consumers[0].op == Op.ADD and consumers[0].inputs[0] == node.outputs[0] \
                    and graph.tensor(consumers[0].inputs[1]).is_constant:  # a zero point: R(x * M + z)
                zero = graph.tensor(consumers[0].inputs[1])
                consumers = graph.consumers(consumers[0].outputs[0])
            if len(consumers) == 1 and consumers[0].op == Op.REQUANTIZE:
                yield node, consumers[0], zero


def choose_multipliers(graph: Graph, max_bits: int = MAX_MULTIPLIER_BITS) -> Graph:
    pairs = list(_rescale_nodes(graph))
    if not pairs:
        return graph
    sized = size_widths(graph)
    updates = {}
    for mul, req, zero in pairs:
        x = sized.tensor(mul.inputs[0])
        c = graph.tensor(mul.inputs[1])
        y = graph.tensor(req.outputs[0])
        shape = x.shape
        choose = choose_multiplier
        if zero is not None:  # exact for any integer added before the rounding (rescale.py)
            _check_whole_codes(zero, y, req)
            choose = choose_offset_multiplier
        lo, hi = (np.broadcast_to(np.asarray(b, dtype=object), shape) for b in x.bounds)
        # an element that is 0 on every input (a padded corner after a ReLU, say) gives 0 under
        # any multiplier: it joins no group and takes a neighbour's value (_per_element), so
        # its own grid shift does not split a per-channel constant into per-pixel values
        cares = (lo != 0) | (hi != 0)
        f_x = np.broadcast_to(x.formats.frac_bits, shape)
        f_y = np.broadcast_to(y.formats.frac_bits, shape)
        rounding = np.broadcast_to(y.formats.rounding, shape)
        num = np.broadcast_to(c.scheme["rescale"]["numerator"], shape)
        den = np.broadcast_to(c.scheme["rescale"]["denominator"], shape)
        # elements sharing a ratio, an output grid and a rounding mode share a multiplier, chosen
        # on the finest accumulator grid among them over the union of their ranges there: an
        # element on a coarser grid (a padded edge that misses the weights with the most fraction
        # bits) holds values of the finer one too, so the multiplier is exact for it (or its
        # difference bounded) as well, and a per-channel ratio stays one value per channel
        distinct, inverse = _distinct_rows([np.broadcast_to(a, shape)[cares] for a in (num, den, f_y, rounding)])
        group = np.full(shape, -1, dtype=np.int64)
        group[cares] = inverse
        values = []  # M' of each group
        codes = np.zeros(shape, dtype=np.int64)  # the largest difference each element's rescale can make
        choices = []
        for k, (n, d, out_frac, mode) in enumerate(distinct):
            members = group == k
            finest = int(f_x[members].max())
            g_lo, g_hi = _range_on_grid(lo, hi, f_x, members, finest)
            shift = int(out_frac) - finest
            ratio = Fraction(float(n)) / Fraction(float(d)) * Fraction(2) ** shift
            m = choose(ratio, g_lo, g_hi, Rounding(int(mode)), max_bits)
            values.append(m.value / Fraction(2) ** shift)  # M' itself
            if m.max_error >= 1 << 62 and codes.dtype != object:  # a ratio of 1e44: exact integers
                codes = codes.astype(object)
            codes[members] = m.max_error
            choices.append({"ratio": str(Fraction(float(n)) / Fraction(float(d))),
                            "value": str(m.value / Fraction(2) ** shift),
                            "bits": m.bits, "exact": m.exact, "max_error_lsb": m.max_error,
                            "range": [g_lo, g_hi], "elements": int(members.sum())})
        updates[c.name] = _constant_of(c, _per_element(values, group), choices, codes)
    return graph.with_tensors(updates)


def _distinct_rows(columns: list[np.ndarray]) -> tuple[list[tuple], np.ndarray]:
    """np.unique(rows, axis=0, return_inverse=True) of the rows ``zip(*columns)`` (numbers, as
    float64): the rows ranked column by column, each step keeping the lexicographic order, in
    a fraction of a second for a million rows (numpy's row sort took seconds)."""
    columns = [np.asarray(c, dtype=np.float64).ravel() for c in columns]
    key, first = np.zeros(columns[0].size, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for col in columns:
        rank, _ = _dense_rank(col)
        key, first = _dense_rank(key * (int(rank.max(initial=-1)) + 1) + rank)
    return [tuple(col[i] for col in columns) for i in first.tolist()], key


def _dense_rank(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each element's rank among the distinct values of ``a``, sorted; an index of each
    distinct value)."""
    order = np.argsort(a, kind="stable")
    ranked = a[order]
    new = np.ones(a.size, dtype=bool)
    new[1:] = ranked[1:] != ranked[:-1]
    rank = np.empty(a.size, dtype=np.int64)
    rank[order] = np.cumsum(new) - 1
    return rank, order[new]


def _per_element(values: list[Fraction], group: np.ndarray) -> np.ndarray:
    """The multiplier of each element (``values[group]``), compacted: an element in no group
    (-1: 0 on every input) takes a value that lets the constant reduce as far as the others
    allow (`fill_unknown`); equal values of two groups count as one."""
    if not (group >= 0).any():
        return np.full((1,) * group.ndim, Fraction(0), dtype=object)
    same = {}
    code_of = np.array([same.setdefault(v, len(same)) for v in values] + [-1], dtype=np.int64)  # [-1]: no group
    ids = compact(fill_unknown(code_of[group]))
    value_of = np.empty(len(same), dtype=object)
    value_of[code_of[:-1]] = values
    return value_of[ids]


def _check_whole_codes(zero, y, req) -> None:
    """A zero point added before a rescale's rounding is a whole number of output codes
    (lower_quant makes it so); the proof of choose_offset_multiplier needs it."""
    shape = np.broadcast_shapes(zero.data.shape, y.shape)
    # the bits of the mantissa below the output's LSB, which must be 0
    below = np.broadcast_to(np.maximum(zero.data_frac - np.asarray(y.formats.frac_bits), 0), shape)
    data = np.broadcast_to(zero.data, shape)
    if data.dtype == object or below.max() > 62:
        whole = all(int(d) % (1 << int(b)) == 0 for d, b in zip(data.ravel(), below.ravel()))
    else:
        whole = bool(((data.astype(np.int64) & ((np.int64(1) << below) - 1)) == 0).all())
    if not whole:
        raise IRError(f"the zero point {zero.name!r} added before {req.name!r} is not a whole number of its output "
                      f"codes")


def _range_on_grid(lo: np.ndarray, hi: np.ndarray, f_x: np.ndarray, members: np.ndarray,
                   finest: int) -> tuple[int, int]:
    """The union of the ``members``' mantissa ranges [lo, hi] (at their own fraction bits
    ``f_x``) as mantissas at ``finest`` fraction bits."""
    ends = []
    for frac in distinct(f_x[members]):
        on = members & (f_x == frac)
        up = finest - frac
        ends.append((int(lo[on].min()) << up, int(hi[on].max()) << up))
    return min(e[0] for e in ends), max(e[1] for e in ends)


def _constant_of(c, values: np.ndarray, choices: list, codes: np.ndarray):
    """The rescale constant holding the exact dyadic ``values`` (Fractions, compacted)."""
    mant, frac = zip(*(_mantissa_and_frac(v) for v in values.ravel()))
    formats, data, data_frac = mantissa_data(list(mant), list(frac), values.shape, signed=False,
                                             modes=(Rounding.TRN, Overflow.WRAP))
    scheme = dict(c.scheme)
    scheme["rescale"] = dict(scheme["rescale"], choices=choices, max_error_lsb=codes)
    floats = np.array([float(v) for v in values.ravel()]).reshape(values.shape)
    return dataclasses.replace(c, shape=values.shape, formats=formats, data=data, data_frac=data_frac,
                               float_data=floats, scheme=scheme)


def _mantissa_and_frac(v: Fraction) -> tuple[int, int]:
    """A dyadic ``v`` as ``m * 2**-f`` with ``m`` odd (or 0)."""
    if v == 0:
        return 0, 0
    d = v.denominator
    assert d & (d - 1) == 0, f"{v} is not dyadic"
    if d > 1:
        return v.numerator, d.bit_length() - 1
    n = v.numerator
    tz = (n & -n).bit_length() - 1
    return n >> tz, -tz
