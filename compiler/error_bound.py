"""How far the emulator may be from the float model, derived from the plan, per sample.

For a sample ``x``, `error_bound` returns for every output element a bound ``B`` with
``|emulated - float_model(x)| <= B``, where the float model is the ONNX graph evaluated in
exact real arithmetic with its float weights, plus a float32 allowance for a runtime such as
onnxruntime.  It propagates a per-element error alongside the emulator's own values:

* conversions (input, REQUANTIZE) add exactly what they changed: ``|q(v) - v|``
  (saturation included, since ``v`` is the emulated value);
* quantized constants add ``|c_q - c_float| * |operand|``;
* a linear op's error is ``|(W_q - W_f) x_q| + |W_f| e``: the weight errors act on the
  known emulated input, so they may cancel;
* ReLU, Clip, MaxPool and layout ops are 1-Lipschitz, and a ReLU whose emulated input is
  <= 0 passes at most ``max(0, v + e)``;
* table look-ups add their measured table error plus the function's Lipschitz constant
  times the input error (sigmoid 1/4, tanh 1, ...: table_functions.py; softmax 1/2 in the
  max norm), plus the runtime's float32 function: ``RUNTIME_ULPS`` units in the last place;
* float32 rounding of the runtime: ``gamma(n) * sum |terms|`` per dot product of ``n``
  terms and ``2**-24 * |value|`` per elementwise op (Higham's bounds).

This is the bound the tests use to compare the emulator with onnxruntime; it is not used
to compile anything.
"""

from __future__ import annotations

import numpy as np

from . import table_functions
from .emulate import Fx, _windows, quantize_inputs, run
from .ir import Graph, Node, Op

EPS32 = 2.0 ** -24
EPS64 = 2.0 ** -53
SLACK = 1.0 + 1e-9  # covers float64 rounding in the bound computation itself
# A float32 runtime's elementwise functions (onnxruntime's vectorised sigmoid, tanh, exp, ...)
# are approximations: allowed RUNTIME_ULPS * 2**-24 * max(|value|, 1) (absolute below 1, where
# a rational approximation's error does not shrink with the value);
# tests/test_table_functions.py measures onnxruntime's error against it.
RUNTIME_ULPS = 8


def _gamma(n: int) -> float:
    return n * EPS32 / (1 - n * EPS32)


def _f(fx: Fx) -> np.ndarray:
    return fx.to_float()


def _const_float(graph: Graph, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = graph.tensor(name)
    q = Fx(np.asarray(t.data)[np.newaxis], t.data_frac).to_float()[0]
    f = t.float_data if t.float_data is not None else q
    return q, np.asarray(f, dtype=np.float64)


class _Bounder:
    def __init__(self, graph: Graph, values: dict[str, Fx]):
        self.graph = graph
        self.values = values
        self.err: dict[str, np.ndarray] = {}

    def e(self, name: str) -> np.ndarray:
        if self.graph.tensor(name).is_constant:
            return np.zeros(1)
        return self.err[name]

    def v(self, name: str) -> np.ndarray:
        if self.graph.tensor(name).is_constant:
            return _const_float(self.graph, name)[0][np.newaxis]
        return _f(self.values[name])

    def linear(self, node: Node) -> np.ndarray:
        # y_q - y_f = (W_q - W_f) x_q + W_f (x_q - x_f): the weight errors act on the known
        # emulated input (and may cancel), the input error on |W_f|.
        x, ex = self.v(node.inputs[0]), self.e(node.inputs[0])
        wq, wf = _const_float(self.graph, node.inputs[1])
        dw = wq - wf
        x_abs = np.abs(x)
        if node.op == Op.DENSE:
            terms = wq.shape[1]
            err = np.abs(x @ dw.T) + ex @ np.abs(wf).T
            mag = (x_abs + ex) @ np.abs(wf).T  # float32 runtime rounding
            f64 = x_abs @ np.abs(dw).T  # float64 rounding of x @ dw here
        else:
            err = np.abs(_conv(node, x, dw)) + _conv(node, ex, np.abs(wf))
            mag = _conv(node, x_abs + ex, np.abs(wf))
            f64 = _conv(node, x_abs, np.abs(dw))
            terms = int(np.prod(wq.shape[1:]))
        if len(node.inputs) > 2:
            bq, bf = _const_float(self.graph, node.inputs[2])
            shape = bq.shape + (1,) * (err.ndim - 2) if node.op == Op.CONV else bq.shape
            err = err + np.abs(bq - bf).reshape(shape)
            mag = mag + np.abs(bf).reshape(shape)
            terms += 1
        return err + _gamma(terms) * mag + 2 * terms * EPS64 * f64

    def node_error(self, node: Node) -> np.ndarray:
        op = node.op
        if op in (Op.DENSE, Op.CONV):
            return self.linear(node)
        ins = node.inputs
        out_val = self.v(node.outputs[0])
        if op == Op.ADD:
            extra = 0.0
            for name in ins:
                if self.graph.tensor(name).is_constant:
                    q, f = _const_float(self.graph, name)
                    extra = extra + np.abs(q - f)
            return self.e(ins[0]) + self.e(ins[1]) + extra + EPS32 * np.abs(out_val)
        if op == Op.MUL and not self.graph.tensor(ins[1]).is_constant:
            # a_q b_q - a_f b_f = a_q (b_q - b_f) + b_q (a_q - a_f) - (a_q - a_f)(b_q - b_f)
            (a, ea), (b, eb) = ((np.abs(self.v(n)), self.e(n)) for n in ins)
            return a * eb + b * ea + ea * eb + EPS32 * np.abs(out_val)
        if op == Op.MUL:
            cq, cf = _const_float(self.graph, ins[1])
            x = np.abs(self.v(ins[0])) + self.e(ins[0])
            return np.abs(cq) * self.e(ins[0]) + np.abs(cq - cf) * x + EPS32 * np.abs(out_val)
        if op == Op.RELU:
            # where the emulated input is <= 0 both outputs lie in [0, max(0, v_q + e)]
            v, e = self.v(ins[0]), self.e(ins[0])
            return np.where(v <= 0, np.minimum(e, np.maximum(0.0, v + e)), e)
        if op in (Op.CLIP, Op.RESHAPE, Op.TRANSPOSE):
            e = self.e(ins[0])
            if op == Op.RESHAPE:
                return e.reshape(e.shape[0], *node.attrs["shape"])
            if op == Op.TRANSPOSE:
                return np.transpose(e, (0, *(p + 1 for p in node.attrs["perm"])))
            return e
        if op == Op.LEAKY_RELU:
            aq, af = _const_float(self.graph, ins[1])
            x = np.abs(self.v(ins[0])) + self.e(ins[0])
            gain = max(1.0, float(np.abs(aq).max()))
            return gain * self.e(ins[0]) + np.abs(aq - af) * x + EPS32 * np.abs(out_val)
        if op == Op.CONCAT:
            parts = [np.broadcast_to(self.e(i), self.v(i).shape) for i in ins]
            return np.concatenate(parts, axis=node.attrs["axis"] + 1)
        if op == Op.MAXPOOL:
            return _pool(node, self.e(ins[0]), "max")
        if op == Op.AVGPOOL:
            rq, rf = _const_float(self.graph, ins[1])
            x = np.abs(self.v(ins[0])) + self.e(ins[0])
            n = int(np.prod(node.attrs["kernel"]))
            return (_pool(node, self.e(ins[0]), "sum") * np.abs(rq) + _pool(node, x, "sum") * np.abs(rq - rf)
                    + _gamma(n + 1) * _pool(node, x, "sum") * np.abs(rf))
        if op == Op.REQUANTIZE:
            before = self.v(ins[0])
            return self.e(ins[0]) + np.abs(out_val - before)
        if op == Op.TABLE:
            exact = table_functions.node_function(node.attrs, self.v(ins[0]))
            table_err = np.abs(out_val - exact)
            runtime = RUNTIME_ULPS * EPS32 * np.maximum(np.abs(exact), 1.0)
            return table_err * SLACK + 1e-15 + table_functions.node_slope(node.attrs) * self.e(ins[0]) + runtime
        if op == Op.SOFTMAX:
            x = self.v(ins[0])
            axis = node.attrs["axis"] + 1
            ex = np.exp(x - x.max(axis=axis, keepdims=True))
            exact = ex / ex.sum(axis=axis, keepdims=True)
            table_err = np.abs(out_val - exact)
            e_in = self.e(ins[0]).max(axis=axis, keepdims=True) if self.e(ins[0]).ndim > 1 else self.e(ins[0]).max()
            return table_err * SLACK + 1e-15 + 0.5 * e_in + EPS32 * 4 * x.shape[axis]
        raise ValueError(f"node {node.name!r}: no error rule for {op.value}")


def _conv(node: Node, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Float64 conv with the emulator's window logic (for bounds)."""
    a = node.attrs
    n = w.ndim - 2
    pads = [(0, 0), (0, 0)] + [(a["pads"][i], a["pads"][i + n]) for i in range(n)]
    win = _windows(np.pad(x, pads), w.shape[2:], a["strides"], a["dilations"])
    groups, cin_g = a["groups"], w.shape[1]
    cout_g = w.shape[0] // groups
    outs = []
    for g in range(groups):
        patch = np.moveaxis(win[:, g * cin_g:(g + 1) * cin_g], 1, 1 + n)
        cols = patch.reshape(*patch.shape[:1 + n], -1)
        outs.append(cols @ w[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1).T)
    return np.moveaxis(np.concatenate(outs, axis=-1), -1, 1)


def _pool(node: Node, x: np.ndarray, how: str) -> np.ndarray:
    a = node.attrs
    n = len(a["kernel"])
    pads = [(0, 0), (0, 0)] + [(a["pads"][i], a["pads"][i + n]) for i in range(n)]
    win = _windows(np.pad(x, pads), a["kernel"], a["strides"], a.get("dilations", (1,) * n))
    flat = win.reshape(*win.shape[:2 + n], -1)
    return flat.max(axis=-1) if how == "max" else flat.sum(axis=-1)


def error_bound(graph: Graph, inputs) -> dict[str, np.ndarray]:
    """Per output element: a bound on |emulated - float model| for these float inputs."""
    q_inputs = quantize_inputs(graph, inputs)
    values = run(graph, q_inputs)
    bounder = _Bounder(graph, values)
    raw = inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}
    for name in graph.inputs:
        x = np.asarray(raw[name], dtype=np.float64)
        x = x.reshape(values[name].m.shape)
        bounder.err[name] = np.abs(values[name].to_float() - x)
    for node in graph.nodes:
        for stage in node.stages():
            bounder.err[stage.outputs[0]] = bounder.node_error(stage) * SLACK
    return {name: bounder.err[name] for name in graph.outputs}
