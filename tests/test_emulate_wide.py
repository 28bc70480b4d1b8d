"""The emulator (the spec) on formats int64 cannot hold, and on constants whose format has
negative fractional bits, checked against exact `fractions` arithmetic.

* Wide sums: AveragePool / GlobalAveragePool summed each window's mantissas in int64, which
  wrapped: GlobalAveragePool over 5x5 ``ufixed<59,7>`` inputs of 100.0 gave -63.84, not
  99.9999.  Sums and additions now go through `mantissa.exact_sum` / `mantissa.exact_add`, which
  keep int64 only where the widths provably fit (fuzzer case avgpool_wide_input_sum).
* A plan-named LeakyRelu alpha in ``fixed<4,8>`` (16 as mantissa 1 at -4 fractional bits):
  the positive branch was shifted by the negative fraction and lost its bits ([-1, 1.5] gave
  [-16, 0]); the result now takes the finer of x's and x * alpha's fractions, in the
  emulator and in size_widths alike (fuzzer case leaky_alpha_negative_fraction, which also
  runs csim and Verilator sim).
* Products of Python ints go through float64 digits of the wide operand
  (emulate._matmul_by_limbs), checked against Python ints' own product.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import helper, numpy_helper

from compiler.emulate import emulate_exact
from compiler.mantissa import exact_add, exact_sum
from tests.onnx_layers import compile_layers

DEFAULTS = {"weight": "fixed<8,2,RND_CONV,SAT>", "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}


def _exact(project, x) -> list[Fraction]:
    """Exact outputs; check_ranges: every value also fits the formats size_widths gave it."""
    (y,) = emulate_exact(project.graph, np.asarray(x, dtype=np.float64), check_ranges=True).values()
    return [Fraction(int(m)) / Fraction(2) ** int(y.frac) for m in np.asarray(y.m).ravel()]


def _recip(n: int) -> Fraction:
    """1/n rounded to 18 significant bits, ties to even (n from 17 to 32: LSB 2**-22)."""
    assert 16 < n <= 32
    return Fraction(round(Fraction(2 ** 22, n)), 2 ** 22)


@pytest.mark.parametrize("value", [100.0, 127.99, 2.0 ** -52])
def test_global_average_pool_of_wide_inputs_is_exact(tmp_path, value):
    """25 terms of 59 bits need 64: summed in int64 this wrapped to -63.84 for 100.0."""
    plan = {"defaults": {"input": "ufixed<59,7,RND_CONV,SAT>", **DEFAULTS}}
    project = compile_layers(tmp_path, [helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")],
                       [1, 1, 5, 5], [1, 1, 1, 1], plan)
    x = Fraction(round(Fraction(value) * 2 ** 52), 2 ** 52)
    assert _exact(project, np.full((1, 1, 5, 5), value)) == [25 * x * _recip(25)]


def test_average_pool_of_the_widest_int64_values_is_exact(tmp_path):
    """32 extremes of ``fixed<60,1>`` (the widest signed values input quantization keeps in
    int64): the int64 sum of a 1x32 window wraps at either end."""
    plan = {"defaults": {"input": "fixed<60,1,RND_CONV,SAT>", **DEFAULTS}}
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[1, 32])
    project = compile_layers(tmp_path, [node], [1, 1, 1, 32], [1, 1, 1, 1], plan)
    lo, hi = Fraction(-1), Fraction(1) - Fraction(1, 2 ** 59)
    assert _exact(project, np.full((1, 1, 1, 32), -1.0)) == [lo]
    assert _exact(project, np.full((1, 1, 1, 32), 1.0)) == [hi]  # 1.0 saturates to hi


@pytest.mark.parametrize("x, expected", [([-1.0, 1.5], [-16, Fraction(3, 2)]),
                                         ([7.9375, -8.0], [Fraction(127, 16), -128]),
                                         ([0.0625, -0.0625], [Fraction(1, 16), -1])])
def test_leaky_relu_alpha_with_negative_fraction_bits(tmp_path, x, expected):
    """alpha 16 as ``fixed<4,8>`` (mantissa 1 at -4 fractional bits) keeps x's own bits."""
    plan = {"defaults": {"input": "fixed<8,4,RND_CONV,SAT>", **DEFAULTS},
            "tensors": {"leaky.alpha": "fixed<4,8,RND_CONV,SAT>"}}
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha=16.0)
    project = compile_layers(tmp_path, [node], [2], [2], plan)
    assert _exact(project, x) == expected
    # size_widths runs the same rule on ranges: the output's exact bounds are its extremes
    y = project.graph.tensor("y")
    frac = int(y.formats.frac_bits.flat[0])
    assert [Fraction(int(b.flat[0])) / Fraction(2) ** frac for b in y.bounds] == [-128, Fraction(127, 16)]


def test_mul_by_a_constant_with_negative_fraction_bits(tmp_path):
    """A constant 48 in ``fixed<4,8>`` (mantissa 3 at -4): the product is exact at x's
    fraction minus 4, also for x's finest bit."""
    plan = {"defaults": {"input": "fixed<8,4,RND_CONV,SAT>", **DEFAULTS}, "tensors": {"c": "fixed<4,8,RND_CONV,SAT>"}}
    c = numpy_helper.from_array(np.array([48.0], dtype=np.float32), "c")
    project = compile_layers(tmp_path, [helper.make_node("Mul", ["x", "c"], ["y"], name="mul")], [2], [2], plan, [c])
    assert _exact(project, [0.0625, -8.0]) == [3, -384]


@pytest.mark.parametrize("bits", [58, 59, 60, 61, 62, 200])
def test_exact_sum_and_add_past_int64(bits):
    """17 terms of 58..62 bits: int64 holds the first few sums only; Python ints beyond."""
    value = (1 << bits) - 1
    m = np.full((2, 17), value, dtype=np.int64 if bits < 63 else object)
    assert [int(v) for v in exact_sum(m, axis=-1)] == [17 * value] * 2
    assert [int(v) for v in exact_add(m[0], m[1])] == [2 * value] * 17
    assert [int(v) for v in exact_sum(np.concatenate([m, -m], axis=1), axis=1)] == [0, 0]


@pytest.mark.parametrize("a_bits", [45, 62, 90, 200])
@pytest.mark.parametrize("b_bits", [1, 8, 30])
def test_wide_products_by_float_limbs_are_exact(a_bits, b_bits, monkeypatch):
    """Products past int64 (Python ints) are cut into float64-exact digits of a
    (emulate._matmul_by_limbs): equal to Python ints' own product, with a's extremes, -1, 0 and
    a sign in every digit, and the limb path taken wherever its digits fit."""
    from compiler import emulate

    rng = np.random.default_rng(a_bits * 100 + b_bits)
    lim_a, lim_b = 1 << a_bits, 1 << b_bits
    a = np.array([int(v) for v in rng.integers(-(1 << 62), 1 << 62, size=40 * 70)] + [None], dtype=object)[:-1]
    a = (a << max(a_bits - 62, 0)) >> max(62 - a_bits, 0)
    a[:6] = [-lim_a, lim_a - 1, -1, 0, 1, -(lim_a >> 1)]
    a = a.reshape(40, 70)
    b = rng.integers(-lim_b, lim_b, size=(70, 9)).astype(np.int64)
    b[0, :3] = [-lim_b, lim_b - 1, 0]
    called = []
    real = emulate._matmul_by_limbs
    monkeypatch.setattr(emulate, "_matmul_by_limbs", lambda *args: called.append(args[2]) or real(*args))
    out = emulate._matmul(a, b, 70)
    assert np.array_equal(out.astype(object), np.matmul(a, b.astype(object)))
    assert all(type(v) is int for v in out.flat) or out.dtype == np.int64
    wide = a_bits + 1 + b_bits + 1 + 7 > emulate.FLOAT_EXACT_BITS  # the extremes' bits, the 70 terms' growth
    limb = emulate.FLOAT_EXACT_BITS - (b_bits + 1) - 7
    assert bool(called) == (wide and limb >= emulate.MIN_LIMB_BITS and -(-(a_bits + 1) // limb) <= emulate.MAX_LIMBS)
