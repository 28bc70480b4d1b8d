"""A layer's sums as constant matrix products, for both backends: the terms of DENSE, CONV and
AVGPOOL outputs (:func:`dense_terms`, :func:`window_terms`) and their shared adder graphs
(:func:`layer_graphs`, over compiler/adder_graph.py).

The outputs are grouped into instances of one pattern: a dense layer's row of outputs (every
batch row one instance), a convolution's or pool's outputs at one position.  Each distinct
pattern (which inputs of the instance, which constants, which shifts: positions at a border lose
their padded taps) is solved once; every instance builds its exact nodes from its own inputs'
formats.  A product wider than ``dsp_min_width`` stays a multiplication (``x * m``, exact) and
enters the graph as an input.

Formats are :class:`Fmt` (:func:`element_format`: an element's own, both backends' rule); an
element whose format is None is the constant 0 (pruned, or 0 by its bounds).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .adder_graph import AdderGraph, build, solve
from .errors import UserError
from .ir import Graph, Node, Op, Tensor


@dataclass(frozen=True)
class Fmt:
    """The format of one element's wire: width, fractional bits, signedness."""

    width: int
    frac: int
    signed: bool


def element_format(t: Tensor, i: int) -> Fmt | None:
    """Element ``i``'s wire format, or None when it is the constant 0: pruned (0 bits), or
    always 0 by its exact bounds (size_widths), as a quantized element whose inputs' weights
    all round to 0 is.  The sizing pass leaves such an element out of the fraction of every
    sum it feeds, so as a wire at its own format it could hold bits below that fraction."""
    formats = t.formats
    w = int(formats.width.flat[i])
    if w == 0 or (t.bounds is not None and t.bounds[0].flat[i] == 0 and t.bounds[1].flat[i] == 0):
        return None
    # width - int_bits of this element alone (Formats.frac_bits would subtract the whole tensor's)
    return Fmt(w, w - int(formats.int_bits.flat[i]), bool(formats.signed.flat[i]))


def fmt_range(f: Fmt) -> tuple[int, int]:
    """The mantissas a ``f``-wide field holds."""
    if f.signed:
        return -(1 << (f.width - 1)), (1 << (f.width - 1)) - 1
    return 0, (1 << f.width) - 1


def trim(m: int, frac: int) -> tuple[int, int]:
    """A constant mantissa at the fewest fractional bits."""
    if m == 0:
        return 0, 0
    while m % 2 == 0:
        m, frac = m // 2, frac - 1
    return m, frac


def const_elements(t: Tensor, shape) -> list[tuple[int, int]]:
    """(mantissa, frac) per element of constant ``t`` broadcast to ``shape``, trimmed."""
    data = np.broadcast_to(np.asarray(t.data, dtype=object), shape)
    return [trim(int(v), t.data_frac) for v in data.ravel()]


_KEPT: dict | None = None  # while `terms_kept` is active: (graph, function, stage, output shape) -> terms


@contextlib.contextmanager
def terms_kept():
    """Within it, `dense_terms` and `window_terms` are computed once per graph, stage and
    output shape (the IR is immutable; their callers only read them): the stream budget builds
    each layer's core at several reuse factors, each from the same one-layer graph.  The keys
    hold the graphs, so no graph's id is reused meanwhile; everything is dropped at the end."""
    global _KEPT
    outer = _KEPT
    _KEPT = {} if outer is None else outer
    try:
        yield
    finally:
        _KEPT = outer


def _kept(terms: Callable) -> Callable:
    @functools.wraps(terms)
    def kept(g: Graph, stage: Node, out: Tensor) -> tuple[list, list]:
        if _KEPT is None:
            return terms(g, stage, out)
        key = (g, terms.__name__, stage.name, stage.inputs, tuple(out.shape))
        if key not in _KEPT:
            _KEPT[key] = terms(g, stage, out)
        return _KEPT[key]
    return kept


@_kept
def dense_terms(g: Graph, stage: Node, out: Tensor) -> tuple[list, list]:
    """Per output element: [(input element, weight mantissa, frac)] and (bias mantissa, frac)."""
    w = g.tensor(stage.inputs[1])
    b = g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
    n_out, n_in = w.shape
    rows = int(np.prod(out.shape[:-1]))
    weights = np.asarray(w.data, dtype=object)
    bias = const_elements(b, (n_out,)) if b is not None else [(0, 0)] * n_out
    terms, biases = [], []
    for r in range(rows):
        for j in range(n_out):
            terms.append([(r * n_in + k, *trim(int(weights[j, k]), w.data_frac)) for k in range(n_in)])
            biases.append(bias[j])
    return terms, biases


@_kept
def window_terms(g: Graph, stage: Node, out: Tensor) -> tuple[list, list]:
    """CONV and AVGPOOL as sums: per output element the (input element, constant) pairs of
    its window (padding contributes nothing), and the bias."""
    x = g.tensor(stage.inputs[0])
    a = stage.attrs
    spatial = x.shape[1:]
    n = len(spatial)
    index = np.arange(int(np.prod(x.shape))).reshape(x.shape)
    if stage.op == Op.CONV:
        w = g.tensor(stage.inputs[1])
        weights = np.asarray(w.data, dtype=object)
        kernel, groups, dil = w.shape[2:], a["groups"], a["dilations"]
        cin_g, cout_g = w.shape[1], w.shape[0] // groups
        b = g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
        bias = const_elements(b, (w.shape[0],)) if b is not None else [(0, 0)] * w.shape[0]
    else:
        r = g.tensor(stage.inputs[1])
        recip = np.broadcast_to(np.asarray(r.data, dtype=object), out.shape)
        kernel, dil = a["kernel"], (1,) * n
    terms, biases = [], []
    for o in np.ndindex(out.shape):
        ch, pos = o[0], o[1:]
        if stage.op == Op.CONV:
            g_idx = ch // cout_g
            channels = [(g_idx * cin_g + c, c) for c in range(cin_g)]
            biases.append(bias[ch])
        else:
            channels = [(ch, None)]
            biases.append((0, 0))
        row = []
        for c, c_local in channels:
            for k in np.ndindex(*kernel):
                at = [pos[i] * a["strides"][i] - a["pads"][i] + k[i] * dil[i] for i in range(n)]
                if any(p < 0 or p >= spatial[i] for i, p in enumerate(at)):
                    continue
                if stage.op == Op.CONV:
                    m = trim(int(weights[(ch, c_local, *k)]), w.data_frac)
                else:
                    m = trim(int(recip[o]), r.data_frac)
                row.append((int(index[(c, *at)]), *m))
        terms.append(row)
    return terms, biases


class SumsError(UserError):
    """A sum the hardware cannot compute exactly (a term below its output's fraction)."""


@dataclass(frozen=True)
class GraphInstance:
    """One instance's adder graph: graph input k is ``inputs[k] = (element, None)``, the input
    element itself, or ``(element, m)``, the exact product ``x * m`` (a multiplier); graph output
    j is output element ``outputs[j]``, in that element's format (mantissa at its fraction)."""

    graph: AdderGraph
    inputs: tuple[tuple[int, int | None], ...]
    outputs: tuple[int, ...]
    terms: int  # the constant products it sums


def product_range(f: Fmt, m: int) -> tuple[int, int]:
    lo, hi = fmt_range(f)
    return min(lo * m, hi * m), max(lo * m, hi * m)


def layer_graphs(g: Graph, stage: Node, in_fmts: list, out_fmts: list, dsp_min_width: int,
                 budget: Callable[[list, list], int | None], offsets: list[int] | None = None) -> list[GraphInstance]:
    """The adder graphs of ``stage`` (DENSE, CONV or AVGPOOL) whose input elements have formats
    ``in_fmts`` and output elements ``out_fmts``: one per instance, solved once per pattern with
    ``budget(rows, biases)`` levels at most (None: unbounded).  ``offsets``: a constant per output
    element (in units of its format's last bit) added to its bias."""
    out = g.tensor(stage.outputs[0])
    terms_all, biases_all = dense_terms(g, stage, out) if stage.op == Op.DENSE else window_terms(g, stage, out)
    n = len(terms_all)
    if stage.op == Op.DENSE:
        n_out = out.shape[-1]
        groups = [list(range(r, min(r + n_out, n))) for r in range(0, n, n_out)]
    else:
        per = n // out.shape[0]
        groups = [[c * per + pos for c in range(out.shape[0])] for pos in range(per)]
    solved: dict[tuple, object] = {}
    built: dict[tuple, AdderGraph] = {}
    result = []
    for outs in groups:
        slots: dict[tuple[int, int | None], int] = {}
        rows, biases = [], []
        for idx in outs:
            fmt = out_fmts[idx]
            row, bias = [], 0
            if fmt is not None:
                for xi, m, mf in terms_all[idx]:
                    f = in_fmts[xi]
                    if m == 0 or f is None:
                        continue
                    shift = fmt.frac - f.frac - mf
                    if shift < 0:
                        raise SumsError(f"node {stage.name!r}: a term of output {idx} has bits below the "
                                        f"accumulator's fraction (not exact)")
                    wide = f.width + abs(m).bit_length() + 1 > dsp_min_width
                    key = (xi, m) if wide else (xi, None)
                    slots.setdefault(key, len(slots))
                    row.append((slots[key], 1 if wide else m, shift))
                bm, bf = biases_all[idx]
                if bm != 0 and fmt.frac < bf:
                    raise SumsError(f"node {stage.name!r}: bias of output {idx} has bits below the "
                                    f"accumulator's fraction")
                bias = (bm << (fmt.frac - bf) if bm else 0) + (offsets[idx] if offsets else 0)
            rows.append(row)
            biases.append(bias)
        inputs = tuple(slots)
        ranges = [fmt_range(in_fmts[xi]) if m is None else product_range(in_fmts[xi], m) for xi, m in inputs]
        key = (len(inputs), tuple(tuple(r) for r in rows), tuple(biases))
        if key not in solved:
            solved[key] = solve(rows, len(inputs), biases, ranges, budget(rows, biases))
        formats = tuple(None if out_fmts[i] is None else (out_fmts[i].width, out_fmts[i].signed) for i in outs)
        built_key = (key, tuple(ranges), formats)  # most positions of a layer are one instance
        if built_key not in built:
            built[built_key] = build(solved[key], ranges, list(formats))
        graph = built[built_key]
        result.append(GraphInstance(graph, inputs, tuple(outs), sum(len(r) for r in rows)))
    return result
