"""Exact width sizing: nothing overflows, and every inferred width and LSB is needed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from irgraphs import conv_graph, corner_inputs, dense_graph, input_extremes, random_inputs

from compiler.emulate import emulate_exact, quantize_inputs, run
from compiler.fixed import FixedType, Overflow, Rounding, bits_for_range
from compiler.ir import verify
from compiler.passes.fuse import fuse_layers
from compiler.passes.size_widths import size_widths


def _mantissas_at(values, formats, idx):
    """Mantissas of element ``idx`` (over the batch) at the element's own fraction."""
    frac = int(formats.frac_bits[idx])
    m = values.m[(slice(None),) + idx]
    shift = values.frac - frac
    return [int(v) >> shift if shift >= 0 else int(v) << -shift for v in m], [
        int(v) % (1 << shift) == 0 if shift > 0 else True for v in m]


def _extreme_dense_inputs(graph):
    """For each output j: the inputs that drive acc[j] to its max and to its min."""
    x_fmt = graph.tensor("x").formats
    lo, hi = input_extremes(x_fmt)
    w = graph.tensor("w").data
    rows = []
    for j in range(w.shape[0]):
        rows.append(np.where(w[j] > 0, hi, lo))
        rows.append(np.where(w[j] > 0, lo, hi))
    return np.array(rows)


def _probe_inputs(graph):
    """Zero, and each input alone at its smallest non-zero magnitude."""
    f = graph.tensor("x").formats
    lo, hi = f.mantissa_bounds()
    probes = [np.zeros(f.shape)]
    for k in np.ndindex(f.shape):
        if f.width[k] == 0:
            continue
        x = np.zeros(f.shape)
        x[k] = np.ldexp(1.0 if hi[k] >= 1 else -1.0, -int(f.frac_bits[k]))
        probes.append(x)
    return np.array(probes)


def _check_sized(graph, inputs, tight_inputs):
    sized = size_widths(fuse_layers(graph))
    verify(sized)
    # no overflow: every value of every tensor fits its inferred format
    run(sized, quantize_inputs(sized, inputs), check_ranges=True)
    # tightness: over the extreme and probe inputs, each element needs its full width and LSB
    values = run(sized, quantize_inputs(sized, tight_inputs), check_ranges=True)
    acc_name = sized.nodes[0].accumulator
    acc = sized.tensor(acc_name)
    for idx in np.ndindex(acc.shape):
        if acc.formats.width[idx] == 0:
            assert all(v == 0 for v in values[acc_name].m[(slice(None),) + idx].ravel())
            continue
        mant, _ = _mantissas_at(values[acc_name], acc.formats, idx)
        width, signed = bits_for_range(min(mant), max(mant))
        assert width == acc.formats.width[idx], (idx, width, acc.formats.element(idx))
        assert any(v % 2 for v in mant), f"LSB of {idx} never used: {acc.formats.element(idx)}"
        assert (min(mant), max(mant)) == (acc.bounds[0][idx], acc.bounds[1][idx])
    return sized


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_in=st.integers(1, 7), n_out=st.integers(1, 5), bias=st.booleans())
def test_dense_accumulator_is_safe_and_tight(seed, n_in, n_out, bias):
    rng = np.random.default_rng(seed)
    graph = dense_graph(rng, n_in, n_out, bias=bias)
    x_fmt = graph.tensor("x").formats
    inputs = np.concatenate([corner_inputs(x_fmt, rng), random_inputs(x_fmt, rng, 64)])
    tight = np.concatenate([_extreme_dense_inputs(graph), _probe_inputs(graph)])
    _check_sized(graph, inputs, tight)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kernel=st.sampled_from([1, 2, 3]), stride=st.sampled_from([1, 2]),
       pad=st.sampled_from([0, 1]), groups=st.sampled_from([1, 2]))
def test_conv_accumulator_is_safe_and_tight(seed, kernel, stride, pad, groups):
    rng = np.random.default_rng(seed)
    graph = conv_graph(rng, 2, 5, 4, kernel, stride=stride, pad=pad, groups=groups)
    x_fmt = graph.tensor("x").formats
    inputs = np.concatenate([corner_inputs(x_fmt, rng, limit=64), random_inputs(x_fmt, rng, 32)])
    # extreme inputs for every output element: each input at the end its weight's sign asks for
    sized = size_widths(graph)
    lo, hi = input_extremes(x_fmt)
    w = graph.tensor("w").data
    y_shape = graph.tensor("y").shape
    extremes = []
    for m, oy, ox in np.ndindex(y_shape):
        sign = np.zeros(x_fmt.shape)
        g = m // (w.shape[0] // groups)
        cin = w.shape[1]
        for c in range(cin):
            for ky in range(kernel):
                for kx in range(kernel):
                    iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                    if 0 <= iy < 5 and 0 <= ix < 5:
                        sign[g * cin + c, iy, ix] = np.sign(w[m, c, ky, kx])
        extremes.append(np.where(sign > 0, hi, lo))
        extremes.append(np.where(sign > 0, lo, hi))
    del sized
    _check_sized(graph, inputs, np.concatenate([np.array(extremes), _probe_inputs(graph)]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), width=st.integers(2, 10), int_bits=st.integers(-2, 6),
       rounding=st.sampled_from(list(Rounding)), overflow=st.sampled_from(list(Overflow)))
def test_requantized_layers_never_overflow(seed, width, int_bits, rounding, overflow):
    rng = np.random.default_rng(seed)
    out = FixedType(width, int_bits, bool(rng.integers(2)), rounding, overflow)
    graph = dense_graph(rng, 4, 3, relu=True, requant=out)
    x_fmt = graph.tensor("x").formats
    sized = size_widths(fuse_layers(graph))
    verify(sized)
    inputs = np.concatenate([corner_inputs(x_fmt, rng), random_inputs(x_fmt, rng, 64)])
    emulate_exact(sized, inputs, check_ranges=True)
    # the requantized output's recorded bounds hold every observed value
    y = run(sized, quantize_inputs(sized, inputs))["y"]
    t = sized.tensor("y")
    mant, _ = zip(*[_mantissas_at(y, t.formats, idx) for idx in np.ndindex(t.shape)])
    for k, idx in enumerate(np.ndindex(t.shape)):
        assert t.bounds[0][idx] <= min(mant[k]) and max(mant[k]) <= t.bounds[1][idx]


def test_zero_weights_contribute_nothing():
    rng = np.random.default_rng(1)
    graph = dense_graph(rng, 6, 3, bias=False)
    w = graph.tensor("w")
    data = np.array(w.data)
    data[1, :] = 0  # output 1 has no terms at all
    data[2, 1:] = 0  # output 2 has one term
    graph = graph.with_tensors({"w": type(w)(**{**w.__dict__, "data": data})})
    sized = size_widths(graph)
    acc = sized.tensor("acc").formats
    assert acc.width[1] == 0  # a constant zero needs no bits
    x = graph.tensor("x").formats
    if data[2, 0] != 0 and x.width[0] > 0:
        term = FixedType.for_range(*sorted((int(data[2, 0]) * int(v) for v in x.mantissa_bounds()[0][:1].tolist()
                                            + x.mantissa_bounds()[1][:1].tolist())), 0)
        assert acc.width[2] <= term.width
