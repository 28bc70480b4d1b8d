"""Small quantized IR graphs built directly (no ONNX), for pass and sizing tests."""

from __future__ import annotations

import itertools

import numpy as np

from compiler.fixed import FixedType, Formats
from compiler.ir import Graph, Node, Op, Tensor, TensorKind
from compiler.mantissa import common_fraction, quantize_float


def random_formats(rng, shape, max_width=10, signed=None, prune=0.0) -> Formats:
    width = rng.integers(1, max_width + 1, size=shape)
    if prune:
        width = np.where(rng.random(shape) < prune, 0, width)
    int_bits = rng.integers(-3, 6, size=shape)
    sign = rng.random(shape) < 0.6 if signed is None else np.full(shape, signed)
    zeros = np.zeros(shape, dtype=np.int64)
    return Formats(width, np.where(width > 0, int_bits, 0), sign, zeros, zeros)


def random_constant(rng, name, shape, kind, max_width=8, prune=0.2) -> Tensor:
    formats = random_formats(rng, shape, max_width, prune=prune)
    lo, hi = formats.mantissa_bounds()
    m = np.array([int(rng.integers(int(a), int(b) + 1)) for a, b in zip(lo.flat, hi.flat)],
                 dtype=np.int64).reshape(shape)
    m = np.where(rng.random(shape) < 0.15, 0, m)  # some zero weights
    data, frac = common_fraction(m, formats)
    return Tensor(name, tuple(shape), kind, formats=formats, data=np.asarray(data), data_frac=frac,
                  float_data=np.ldexp(m.astype(np.float64), -formats.frac_bits))


def dense_graph(rng, n_in, n_out, bias=True, relu=False, requant: FixedType | None = None) -> Graph:
    x = Tensor("x", (n_in,), TensorKind.INPUT, formats=random_formats(rng, (n_in,), 8))
    w = random_constant(rng, "w", (n_out, n_in), TensorKind.WEIGHT)
    tensors = {"x": x, "w": w}
    inputs = ["x", "w"]
    if bias:
        tensors["b"] = random_constant(rng, "b", (n_out,), TensorKind.BIAS, max_width=12, prune=0.0)
        inputs.append("b")
    nodes = [Node("fc", Op.DENSE, inputs, ["acc"])]
    tensors["acc"] = Tensor("acc", (n_out,), TensorKind.ACTIVATION)
    last = "acc"
    if relu:
        tensors["act"] = Tensor("act", (n_out,), TensorKind.ACTIVATION)
        nodes.append(Node("relu", Op.RELU, [last], ["act"]))
        last = "act"
    if requant is not None:
        tensors["y"] = Tensor("y", (n_out,), TensorKind.ACTIVATION, formats=Formats.uniform((n_out,), requant))
        nodes.append(Node("q", Op.REQUANTIZE, [last], ["y"]))
        last = "y"
    return Graph("dense", ("x",), (last,), nodes, tensors)


def conv_graph(rng, c_in, size, c_out, kernel, stride=1, pad=0, dilation=1, groups=1) -> Graph:
    x = Tensor("x", (c_in, size, size), TensorKind.INPUT, formats=random_formats(rng, (c_in, size, size), 6))
    w = random_constant(rng, "w", (c_out, c_in // groups, kernel, kernel), TensorKind.WEIGHT, max_width=6)
    b = random_constant(rng, "b", (c_out,), TensorKind.BIAS, max_width=10, prune=0.0)
    attrs = {"strides": (stride, stride), "pads": (pad,) * 4, "dilations": (dilation, dilation), "groups": groups}
    node = Node("conv", Op.CONV, ["x", "w", "b"], ["y"], attrs)
    tensors = {"x": x, "w": w, "b": b, "y": Tensor("y", (0,), TensorKind.ACTIVATION)}
    g = Graph("conv", ("x",), ("y",), [node], tensors)
    from compiler.ir import output_shape

    return g.with_tensors({"y": Tensor("y", output_shape(node, g), TensorKind.ACTIVATION)})


def input_extremes(formats: Formats) -> tuple[np.ndarray, np.ndarray]:
    """Per-element (min, max) input values as floats."""
    lo, hi = formats.mantissa_bounds()
    frac = formats.frac_bits
    return (np.ldexp(lo.astype(np.float64), -frac), np.ldexp(hi.astype(np.float64), -frac))


def corner_inputs(formats: Formats, rng, limit=256) -> np.ndarray:
    """All corners of the input box when few, else random corners, plus zero."""
    lo, hi = input_extremes(formats)
    n = lo.size
    if 2 ** n <= limit:
        picks = np.array(list(itertools.product([0, 1], repeat=n)), dtype=bool)
    else:
        picks = rng.random((limit, n)) < 0.5
    corners = np.where(picks, hi.ravel(), lo.ravel()).reshape(-1, *formats.shape)
    return np.concatenate([corners, np.zeros((1, *formats.shape))])


def random_inputs(formats: Formats, rng, count) -> np.ndarray:
    lo, hi = input_extremes(formats)
    x = rng.uniform(lo, hi, size=(count, *formats.shape))
    return quantize_back(x, formats)


def quantize_back(x, formats):
    m = quantize_float(x, formats)
    return np.ldexp(np.asarray(m, dtype=np.float64), -formats.frac_bits)
