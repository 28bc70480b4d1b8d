"""Where a compiled quantized model can differ from the quantized model, and by how much.

The reference is the quantized model executed in exact arithmetic: every quantizer divides
exactly (compiler/quantizer.py), every other op is exact.  The compiled model equals it except
at three kinds of places, which `passes/lower_quant.py` and `passes/choose_multipliers.py`
record on the constants they make:

* a **rescale** ``R(x * M)`` whose fixed-point multiplier ``M'`` is not proven exact over the
  range of ``x``: at most ``max_error_lsb`` output codes (compiler/rescale.py proves it);
* a **bias or BatchNorm shift in accumulator units** (``b / r`` is not a short dyadic
  number): rounded to the accumulator's grid, it moves the accumulator by ``max_change``;
* an **average-pooling reciprocal** that is not a power of two, rounded (docs/bit-plan.md).

From these, a worst-case bound is carried to every output (per tensor, in IR units):
linear ops add ``sum |W| * e_in`` per output channel, 1-Lipschitz ops (ReLU, max-pool, clip,
layout) keep it, and a conversion that rounds turns an incoming error ``e`` into at most
``floor(e / LSB) + 1`` codes (plus the multiplier's own error): a value that moved by less
than one LSB may still cross one rounding boundary.  A tensor whose formats the user's plan
set instead of the model's quantizer is not compared (the plan asked for a different model).
"""

from __future__ import annotations

import math

import numpy as np

from .ir import Graph, Op


def _floats(t) -> np.ndarray:
    return np.ldexp(np.asarray(t.data, dtype=np.float64), -t.data_frac)


def _lsb(t) -> float:
    return float(np.max(np.ldexp(1.0, -np.asarray(t.formats.frac_bits))))


def _max_abs(t) -> float:
    if t.bounds is None:
        return math.inf
    lo, hi = (np.asarray(b, dtype=np.float64) for b in t.bounds)
    scale = np.ldexp(1.0, -np.asarray(t.formats.frac_bits))
    return float(np.max(np.maximum(np.abs(lo), np.abs(hi)) * scale)) if lo.size else 0.0


def _rounding_error(e_in: float, lsb: float, codes: float) -> float:
    """A conversion to a grid of ``lsb`` with an incoming error ``e_in`` and a rescale that may
    be off by ``codes``: the outgoing error."""
    if e_in == 0:
        return codes * lsb
    if math.isinf(e_in):
        return math.inf
    return (math.floor(e_in / lsb) + 1 + codes) * lsb


class _Bounds:
    def __init__(self, graph: Graph, overridden: set[str]):
        self.graph = graph
        self.e: dict[str, float] = {n: 0.0 for n in graph.inputs}
        self.overridden = overridden

    def get(self, name: str) -> float:
        t = self.graph.tensor(name)
        if t.is_constant:
            change = (t.scheme or {}).get("rounded_to_accumulator", {}).get("max_change_ir", 0.0)
            return float(change)
        return self.e.get(name, 0.0)

    def stage(self, node) -> float:
        g = self.graph
        op = node.op
        ins = [self.get(i) for i in node.inputs]
        out = g.tensor(node.outputs[0])
        if op in (Op.DENSE, Op.CONV):
            w = np.abs(_floats(g.tensor(node.inputs[1])))
            per_out = w.reshape(w.shape[0], -1).sum(axis=1)
            e = float(per_out.max()) * ins[0] if ins[0] else 0.0
            return e + (ins[2] if len(ins) > 2 else 0.0)
        if op == Op.ADD:
            return ins[0] + ins[1]
        if op == Op.MUL:
            c = g.tensor(node.inputs[1])
            return float(np.max(np.abs(_floats(c)))) * ins[0] if ins[0] else 0.0
        if op == Op.AVGPOOL:
            recip = g.tensor(node.inputs[1])
            r = _floats(recip)
            count = np.prod(node.attrs["kernel"])
            e = float(np.max(r)) * count * ins[0]
            exact = np.ldexp(1.0, np.round(np.log2(r)).astype(int))
            if not np.all(r == exact):
                x = g.tensor(node.inputs[0])
                e += _max_abs(x) * count * float(np.max(np.abs(r - 1.0 / count)))
            return e
        if op == Op.REQUANTIZE:
            if out.name in self.overridden:
                return math.inf
            producer = g.producer(node.inputs[0]) if node.inputs[0] not in g.inputs else None
            codes = 0
            if producer is not None:
                for stage in producer.stages():
                    if stage.outputs[0] == node.inputs[0] and stage.op == Op.MUL:
                        c = g.tensor(stage.inputs[1])
                        for choice in (c.scheme or {}).get("rescale", {}).get("choices", []):
                            codes = max(codes, choice["max_error_lsb"])
            return _rounding_error(ins[0], _lsb(out), codes)
        if op in (Op.SIGMOID, Op.SOFTMAX):
            return math.inf if ins[0] else 0.0
        return max(ins) if ins else 0.0  # relu, leaky relu, clip, maxpool, layout ops

    def run(self) -> None:
        for node in self.graph.nodes:
            for stage in node.stages():
                self.e[stage.outputs[0]] = self.stage(stage)


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
        e = bounds.e.get(name, 0.0)
        scale = 1.0 if t.model_scale is None else float(np.max(t.model_scale))
        outputs[name] = {
            "exact": e == 0,
            "max_error": None if math.isinf(e) else e * scale,  # model units
            "max_error_lsb": None if math.isinf(e) else e / _lsb(t),  # output codes (its LSB)
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


def summary_line(section: dict | None) -> str | None:
    """The one line `finegrain compile` prints."""
    if section is None:
        return None
    r = section["rescales"]
    parts = [f"{r['count']} rescale multipliers ({r['exact']} proven exact, widest {r['max_bits']} bits)"
             if r["count"] else "power-of-two scales only (no rescale)"]
    if section["exact"]:
        parts.append("outputs equal the quantized model's exactly")
    else:
        worst = []
        for name, o in section["outputs"].items():
            if o["exact"]:
                continue
            worst.append(f"{name!r} within {o['max_error_lsb']:.3g} LSB" if o["max_error_lsb"] is not None
                         else f"{name!r} not bounded (plan overrides or table look-ups)")
        parts.append("outputs may differ from the quantized model's: " + ", ".join(worst)
                     + " (report.json: quantization)")
    return "quantized model: " + "; ".join(parts)
