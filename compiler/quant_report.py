"""Where a compiled quantized model can differ from the quantized model, and by how much.

The reference is the quantized model executed in exact arithmetic: every quantizer divides
exactly (compiler/quantizer.py), every other op is exact.  The compiled model equals it except
at three kinds of places, which `passes/lower_quant.py` and `passes/choose_multipliers.py`
record on the constants they make:

* a **rescale** ``R(x * M)`` whose fixed-point multiplier ``M'`` is not proven exact over the
  range of ``x``: at most ``max_error_lsb`` output codes (compiler/rescale.py proves it);
* a **bias or BatchNorm shift in accumulator units** (``b / r`` is not a short dyadic
  number): rounded to the accumulator's grid, it moves the accumulator by ``max_change``;
* a **BatchNorm's factor** ``scale / sqrt(var + eps)`` and shift, taken in float64: at most
  ``factor_error * |x| + shift_error_ir`` IR units (passes/batchnorm_error.py);
* an **average-pooling reciprocal** that is not a power of two, or a **LeakyRelu alpha** of
  more than 18 significant bits, rounded (docs/bit-plan.md);
* a **table look-up** (Sigmoid, Tanh, ...): its entries are the function rounded into the
  table's output format, read at the input converted into the table's input format
  (`_Bounds.table`); a Softmax's is not bounded.

From these, a worst-case bound is carried to every output (per tensor, in IR units):
linear ops add ``sum |W| * e_in`` per output channel, 1-Lipschitz ops (ReLU, max-pool, clip,
layout) keep it, and a conversion that rounds turns an incoming error ``e`` into at most
``floor(e / LSB) + 1`` codes (plus the multiplier's own error): a value that moved by less
than one LSB may still cross one rounding boundary.  A tensor whose formats the user's plan
set instead of the model's quantizer is not compared (the plan asked for a different model).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import table_functions
from .fixed import Rounding
from .ir import Graph, Op


def _floats(t) -> np.ndarray:
    return np.ldexp(np.asarray(t.data, dtype=np.float64), -t.data_frac)


def _max_abs(t) -> float:
    bound = _abs_bound(t)
    return float(np.max(bound)) if bound.size else 0.0


def _abs_bound(t) -> np.ndarray:
    """The largest |IR value| of each element of ``t`` (inf where its range is not known)."""
    if t.bounds is None:
        return np.full(t.shape, np.inf)
    lo, hi = (np.asarray(b, dtype=np.float64) for b in t.bounds)
    return np.broadcast_to(np.maximum(np.abs(lo), np.abs(hi)) * np.ldexp(1.0, -np.asarray(t.formats.frac_bits)),
                           t.shape)


def _times(e: np.ndarray, c) -> np.ndarray:
    """``e * c`` elementwise, where a zero ``c`` makes an unbounded (infinite) ``e`` 0: a weight
    of 0 ignores its input."""
    c = np.asarray(c, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(c == 0, 0.0, e * c)


def _rounding_error(e_in: np.ndarray, lsb: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A conversion to a grid of ``lsb`` with an incoming error ``e_in`` and a rescale that may
    be off by ``codes`` (all per element): the outgoing error."""
    with np.errstate(invalid="ignore", over="ignore"):
        moved = (np.floor(e_in / lsb) + 1 + codes) * lsb
    return np.where(e_in == 0, codes * lsb, np.where(np.isinf(e_in), np.inf, moved))


class _Bounds:
    """Per element, in IR units, how far each tensor can be from the exact quantized model."""

    def __init__(self, graph: Graph, overridden: set[str]):
        self.graph = graph
        self.overridden = overridden
        # an input the plan formats (not the model's quantizer) is quantized by it: one LSB at most
        # below its range (a value beyond it saturates: not bounded)
        self.e: dict[str, np.ndarray] = {n: self._planned_input(graph.tensor(n)) for n in graph.inputs}
        self.readers: dict[str, list] = {}
        for node in graph.nodes:
            for stage in node.stages():
                for name in stage.inputs:
                    self.readers.setdefault(name, []).append(stage)

    def _planned_input(self, t) -> np.ndarray:
        if not (t.scheme or {}).get("lowered") or t.name in self.overridden:
            return np.broadcast_to(np.ldexp(1.0, -np.asarray(t.formats.frac_bits, dtype=np.int64)), t.shape)
        return np.zeros(t.shape)

    def get(self, name: str) -> np.ndarray:
        t = self.graph.tensor(name)
        if t.is_constant:
            scheme = t.scheme or {}
            change = scheme.get("rounded_to_accumulator", {}).get("max_change_ir")
            if change is not None:  # per element, in the constant's shape (a BatchNorm shift: [C] as [C,1,1])
                # plus, for a BatchNorm shift, what float64 moved it from the exact model's
                moved = scheme.get("batchnorm", {}).get("shift_error_ir", 0.0)
                return (np.asarray(change, dtype=np.float64) + moved).reshape(t.shape)
            if "rescale" not in (t.scheme or {}) and t.float_data is not None and t.float_data.shape == t.shape:
                # a constant the plan quantized (a float weight, an overridden one): what it moved
                return np.abs(_floats(t) - t.float_data)
            return np.zeros(t.shape)
        return self.e[name]

    def stage(self, node) -> np.ndarray:
        g = self.graph
        op = node.op
        ins = [self.get(i) for i in node.inputs]
        out = g.tensor(node.outputs[0])
        shape = out.shape
        if op in (Op.DENSE, Op.CONV) and np.any(ins[1]):  # a weight the plan moved, on any input
            moved = _times(_max_abs(g.tensor(node.inputs[0])), ins[1].reshape(ins[1].shape[0], -1).sum(axis=1))
            moved = np.broadcast_to(moved if op == Op.DENSE else moved.reshape((-1,) + (1,) * (len(shape) - 1)),
                                    shape)
        else:
            moved = 0.0
        if op == Op.DENSE:
            w = np.abs(_floats(g.tensor(node.inputs[1])))
            unbounded = np.isinf(ins[0])
            e = np.where(unbounded, 0.0, ins[0]) @ w.T if np.any(ins[0]) else np.zeros(shape)
            if np.any(unbounded):  # an unbounded input counts where its weight is not 0
                e = np.where(unbounded.astype(np.float64) @ (w.T != 0) > 0, np.inf, e)
            return e + moved + (ins[2] if len(ins) > 2 else 0.0)
        if op == Op.CONV:
            w = np.abs(_floats(g.tensor(node.inputs[1])))
            groups = node.attrs["groups"]
            per_channel = ins[0].reshape(ins[0].shape[0], -1).max(axis=1)  # the worst position
            cin_g, cout_g = w.shape[1], w.shape[0] // groups
            e = np.zeros(w.shape[0])
            for m in range(w.shape[0]):
                gi = m // cout_g
                taps = w[m].reshape(cin_g, -1).sum(axis=1)
                e[m] = float(_times(per_channel[gi * cin_g:(gi + 1) * cin_g], taps).sum())
            e = np.broadcast_to(e.reshape((-1,) + (1,) * (len(shape) - 1)), shape) + moved
            return e + (np.broadcast_to(ins[2].reshape((-1,) + (1,) * (len(shape) - 1)), shape)
                        if len(ins) > 2 else 0.0)
        if op == Op.ADD:
            e = np.broadcast_to(ins[0], shape) + np.broadcast_to(ins[1], shape)
            factor = (g.tensor(node.inputs[1]).scheme or {}).get("batchnorm", {}).get("factor_error")
            if factor is not None and np.any(factor):  # a BatchNorm's float64 factor, times |x|
                e = e + _times(_abs_bound(g.tensor(node.inputs[0])), np.broadcast_to(factor, shape))
            return e
        if op == Op.MUL and not g.tensor(node.inputs[1]).is_constant:
            # |a b - a' b'| <= |a| e_b + |b| e_a + e_a e_b, with |a|, |b| the IR tensors' bounds
            (a, b), (ea, eb) = (_abs_bound(g.tensor(n)) for n in node.inputs), ins
            with np.errstate(invalid="ignore"):
                both = np.where((ea == 0) | (eb == 0), 0.0, ea * eb)
            return np.broadcast_to(_times(eb, a) + _times(ea, b) + both, shape)
        if op == Op.MUL:
            t = g.tensor(node.inputs[1])
            rescale = (t.scheme or {}).get("rescale")
            # an error of the input scales by the exact ratio, not by the multiplier: that one is
            # chosen over the compiled model's range of values (0 bits wide where it is one value),
            # and its own error is counted at the REQUANTIZE
            c = (np.abs(np.asarray(rescale["numerator"], dtype=np.float64)
                        / np.asarray(rescale["denominator"], dtype=np.float64)) * (1 + 2.0 ** -50)
                 if rescale is not None else np.abs(_floats(t)))
            return np.broadcast_to(_times(ins[0], c), shape)
        if op in (Op.MAXPOOL, Op.AVGPOOL):
            per_channel = ins[0].reshape(ins[0].shape[0], -1).max(axis=1)
            e = np.broadcast_to(per_channel.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
            if op == Op.AVGPOOL:
                r = _floats(g.tensor(node.inputs[1]))
                count = float(np.prod(node.attrs["kernel"]))
                e = e * float(np.max(r)) * count
                if not np.all(np.frexp(r)[0] == 0.5):  # a rounded reciprocal moves the mean
                    # |r - 1/count| in exact rationals: 1/count as a float64 is itself off by more than
                    # the 2**-40 of a bound the check allows for its own rounding
                    moved = max(abs(Fraction(float(v)) - Fraction(1, int(count))) for v in np.ravel(r))
                    e = e + _max_abs(g.tensor(node.inputs[0])) * count * math.nextafter(float(moved), math.inf)
            return e
        if op == Op.REQUANTIZE:
            if out.name in self.overridden:
                return np.full(shape, np.inf)
            codes = np.zeros(shape)
            stage = self.stage_making(node.inputs[0])
            if stage is not None and stage.op == Op.ADD and g.tensor(stage.inputs[1]).is_constant:
                stage = self.stage_making(stage.inputs[0])  # a zero point added before the rounding
            if stage is not None and stage.op == Op.MUL:
                record = (g.tensor(stage.inputs[1]).scheme or {}).get("rescale", {})
                if "max_error_lsb" in record:
                    codes = np.broadcast_to(np.asarray(record["max_error_lsb"], dtype=np.float64), shape)
            lsb = np.broadcast_to(np.ldexp(1.0, -np.asarray(out.formats.frac_bits)), shape)
            return _rounding_error(np.broadcast_to(ins[0], shape), lsb, codes)
        if op == Op.TABLE:
            return self.table(node, ins[0], shape)
        if op == Op.SOFTMAX:  # (its tables' errors are not carried through the sum and the division)
            return np.full(shape, np.inf)
        if op == Op.LEAKY_RELU:
            # alpha' x' - alpha x = alpha' (x' - x) + (alpha' - alpha) x: alpha is rounded to 18
            # significant bits (docs/bit-plan.md), and what that moved counts at the largest |x|
            e = ins[0] * max(1.0, float(np.max(np.abs(_floats(g.tensor(node.inputs[1]))))))
            return e + float(np.max(ins[1])) * _max_abs(g.tensor(node.inputs[0])) if np.any(ins[1]) else e
        if op == Op.RESHAPE:
            return ins[0].reshape(shape)
        if op == Op.TRANSPOSE:
            return np.transpose(ins[0], node.attrs["perm"])
        if op == Op.CONCAT:
            return np.concatenate([np.broadcast_to(e, g.tensor(i).shape) for e, i in zip(ins, node.inputs)],
                                  axis=node.attrs["axis"])
        return np.broadcast_to(ins[0], shape)  # relu, clip: 1-Lipschitz

    def table(self, node, e_in: np.ndarray, shape: tuple) -> np.ndarray:
        """A look-up ``f(code)``, ``code = convert(x, table.input)``, against the exact ``f(x)``:
        the function's Lipschitz constant times (``e_in`` + what the conversion moved ``x``),
        plus the largest distance of an entry from ``f`` of its code.  The conversion is exact
        where ``x``'s grid is the table's or coarser, moves by one step at most (half for a
        rounding to nearest) within the table's range, and is not bounded where ``x`` can
        saturate.  Where only requantizes into the table's own output format read it (the
        model's quantizer after the function), the entries are ``f`` rounded once as that
        quantizer rounds it (apply_plan.function_table), so they add nothing: the requantize
        counts the rounding of what the input moved."""
        table = node.attrs["table"]
        x = self.graph.tensor(node.inputs[0])
        t_in = table.input
        if x.bounds is None:
            return np.full(shape, np.inf)
        lo, hi = (np.ldexp(np.asarray(b, dtype=np.float64), -np.asarray(x.formats.frac_bits)) for b in x.bounds)
        inside = (lo >= float(t_in.min_value)) & (hi <= float(t_in.max_value))
        coarse = np.asarray(x.formats.frac_bits) <= t_in.frac_bits
        step = float(t_in.lsb) / (1 if t_in.rounding in (Rounding.TRN, Rounding.TRN_ZERO, Rounding.CEIL) else 2)
        moved = np.where(inside, np.where(coarse, 0.0, step), np.inf)
        e = table_functions.node_slope(node.attrs) * (np.broadcast_to(e_in, shape) + np.broadcast_to(moved, shape))
        if "rescale" in node.attrs:  # the model's quantizer and its rescale inside: entries are its codes of f
            lsb = np.broadcast_to(np.ldexp(1.0, -table.output.frac_bits), shape)
            return _rounding_error(e, lsb, np.zeros(shape))
        readers = self.readers.get(node.outputs[0], [])
        if readers and node.outputs[0] not in self.graph.outputs and all(
                r.op == Op.REQUANTIZE and self.graph.tensor(r.outputs[0]).formats.uniform_type() == table.output
                for r in readers):
            return e  # the model's quantizer after the function
        codes = np.arange(t_in.min_mantissa, t_in.max_mantissa + 1)
        exact = table_functions.node_function(node.attrs, np.ldexp(codes.astype(np.float64), -t_in.frac_bits))
        entries = np.ldexp(table.values.astype(np.float64), -table.output.frac_bits)
        # float64's own rounding of f and of the difference, well below any output format's step
        return e + float(np.max(np.abs(entries - exact))) + 2.0 ** -48 * max(1.0, float(np.max(np.abs(exact))))

    def stage_making(self, name: str):
        """The (unfused) stage whose output is ``name``; None for a graph input."""
        producer = self.graph.producer(name) if name not in self.graph.inputs else None
        return next((s for s in producer.stages() if s.outputs[0] == name), None) if producer is not None else None

    def run(self) -> None:
        for node in self.graph.nodes:
            for stage in node.stages():
                self.e[stage.outputs[0]] = np.asarray(self.stage(stage), dtype=np.float64)


def quantization_report(graph: Graph, overridden: set[str] = frozenset()) -> dict | None:
    """report.json's ``quantization`` section, or None for a model without quantizers.

    ``overridden``: tensors whose model quantizer the user's plan replaced."""
    rescales, biases, pools = [], [], []
    for t in graph.tensors.values():
        scheme = t.scheme or {}
        for choice in scheme.get("rescale", {}).get("choices", []):
            rescales.append({"constant": t.name, **choice})
        if "rounded_to_accumulator" in scheme:
            biases.append({"constant": t.onnx_name or t.name, **scheme["rounded_to_accumulator"]})
    if not rescales and not biases and not any(t.quantizer is not None or t.model_scale is not None
                                               or (t.scheme or {}).get("lowered")
                                               for t in graph.tensors.values()):
        return None
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op == Op.AVGPOOL:
                r = _floats(graph.tensor(stage.inputs[1]))
                if not np.all(np.frexp(r)[0] == 0.5):
                    pools.append({"node": node.name, "reciprocal": sorted(set(r.ravel().tolist()))[:4]})
    bounds = _Bounds(graph, set(overridden))
    bounds.run()
    outputs = {}
    for name in graph.outputs:
        t = graph.tensor(name)
        e = bounds.e[name]
        scale = np.broadcast_to(1.0 if t.model_scale is None else t.model_scale, t.shape)
        lsb = np.ldexp(1.0, -np.broadcast_to(t.formats.frac_bits, t.shape))
        quantized = _is_quantizer_output(graph, name)
        if quantized:  # both values are codes of the output's format: they differ by at most its span
            e = np.minimum(e, (np.exp2(np.broadcast_to(t.formats.width, t.shape).astype(np.float64)) - 1) * lsb)
        finite = bool(np.all(np.isfinite(e)))
        outputs[name] = {
            "exact": bool(np.all(e == 0)),
            "max_error": float(np.max(e * scale)) if finite else None,  # model units
            "max_error_lsb": float(np.max(e / lsb)) if finite else None,  # codes of the output's format
            "quantized": quantized,
        }
    inexact = [r for r in rescales if not r["exact"]]
    return {
        "exact": all(o["exact"] for o in outputs.values()),
        "outputs": outputs,
        "rescales": {"count": len(rescales), "exact": len(rescales) - len(inexact),
                     "max_bits": max((r["bits"] for r in rescales), default=0), "inexact": inexact},
        "rounded_constants": [b for b in biases if b.get("max_change", 0) > 0],
        "average_pools": pools,
        "overridden_by_plan": sorted(overridden),
    }


def _is_quantizer_output(graph: Graph, name: str) -> bool:
    """Whether a model's quantizer writes the output (its LSB is a code), not an accumulator."""
    producer = graph.producer(name)
    last = producer.stages()[-1] if producer is not None else None
    if last is not None and last.op == Op.TABLE and "rescale" in last.attrs:
        return True  # the quantizer and its rescale inside a table (apply_plan._rescale_after)
    return last is not None and last.op in (Op.REQUANTIZE, Op.CLIP, Op.ADD, Op.MUL) and bool(
        (graph.tensor(name).scheme or {}).get("lowered"))


def summary_line(section: dict | None) -> str | None:
    """The one line `finegrain compile` prints."""
    if section is None:
        return None
    r = section["rescales"]
    parts = [f"{r['count']} rescale multipliers ({r['exact']} proven exact, widest {r['max_bits']} bits)"
             if r["count"] else "no rescale needed (scales are powers of two, or equal where they meet)"]
    if section["exact"]:
        parts.append("outputs equal the quantized model's exactly")
    else:
        worst = []
        for name, o in section["outputs"].items():
            if o["exact"]:
                continue
            if o["max_error_lsb"] is None:
                worst.append(f"{name!r} not bounded (plan overrides or table look-ups)")
            elif o["quantized"]:
                worst.append(f"{name!r} by at most {o['max_error_lsb']:.3g} codes")
            else:
                worst.append(f"{name!r} by at most {o['max_error']:.3g}")
        parts.append("outputs may differ from the quantized model's: " + ", ".join(worst)
                     + " (report.json: quantization)")
    return "quantized model: " + "; ".join(parts)
