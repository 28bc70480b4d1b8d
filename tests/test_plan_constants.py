"""Constants finegrain computes itself (pooling reciprocals, LeakyRelu's alpha) take the value
docs/bit-plan.md documents: RND_CONV (nearest, ties to even) to 18 significant bits, checked
against an exact `fractions` computation of that rule.  They were truncated: the format was
fitted to the rounded value, then the unrounded float was quantized into it with TRN
(1/6 became 174762/2**20, not 174763/2**20).  Cases from the differential fuzzer
(reciprocal_rounding.json, leaky_alpha_rounding.json).
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import compiler
from compiler.weight_formats import round_significant
from tests.onnx_layers import compile_layers

PLAN = {"defaults": {"input": "fixed<16,4,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                     "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}}


def documented(v: Fraction, bits: int = 18) -> Fraction:
    """``v`` rounded to ``bits`` significant bits, ties to even, in exact arithmetic."""
    if v == 0:
        return v
    e = 0  # 2**(e-1) <= |v| < 2**e
    while abs(v) >= Fraction(2) ** e:
        e += 1
    while abs(v) < Fraction(2) ** (e - 1):
        e -= 1
    scale = Fraction(2) ** (bits - e)
    return Fraction(round(v * scale)) / scale  # round() of a Fraction is ties-to-even


def _compile(tmp_path, node, shape, out_shape):
    return compile_layers(tmp_path, [node], shape, out_shape, PLAN)


def _exact(project, x) -> list[Fraction]:
    (y,) = project.emulate_exact(np.asarray(x, dtype=np.float64)).values()
    return [Fraction(int(m), 2 ** int(y.frac)) for m in np.asarray(y.m).ravel()]


@pytest.mark.parametrize("n", [3, 5, 6, 7, 9, 11, 12, 25, 49, 100])
def test_global_average_reciprocal_is_rounded_to_nearest(tmp_path, n):
    """GlobalAveragePool over n ones is n * round(1/n): 3 gives 524289/524288, not 262143/262144."""
    project = _compile(tmp_path, helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap"),
                       [1, 1, n], [1, 1, 1])
    assert _exact(project, np.ones((1, 1, n))) == [n * documented(Fraction(1, n))]


def test_average_pool_reciprocals_per_window_are_rounded(tmp_path):
    """AvgPool 3x3, padding 1, count_include_pad=0 over 4x4: windows of 4, 6 and 9 elements,
    each output its window's count times round(1/count); 1/4 stays exact."""
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            strides=[1, 1], count_include_pad=0)
    project = _compile(tmp_path, node, [1, 1, 4, 4], [1, 1, 4, 4])
    count = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])
    assert _exact(project, np.ones((1, 1, 4, 4))) == [c * documented(Fraction(1, int(c))) for c in count.ravel()]


@pytest.mark.parametrize("alpha", [np.float32(1 / 3), np.float32(0.1), np.float32(0.01), np.float32(0.2),
                                   np.float32(1 - 2 ** -20), np.float32(0.25), np.float32(-0.7)])
def test_leaky_relu_alpha_is_rounded_to_nearest(tmp_path, alpha):
    """alpha 1/3 on -3 gives -524289/524288 (was -262143/262144); 1 - 2**-20 rounds up to 1.0
    (a format fitted before rounding would saturate it); a positive input passes unchanged."""
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha=float(alpha))
    project = _compile(tmp_path, node, [2], [2])
    a = documented(Fraction(float(alpha)))
    assert _exact(project, [-3.0, 2.5]) == [-3 * a, Fraction(5, 2)]


def test_round_significant_is_the_documented_rule():
    """The one helper every computed constant goes through, against exact fractions: ties to
    even both ways, carries into the next power of two, signs, tiny and huge values, 0."""
    rng = np.random.default_rng(0)
    ties = [(2 ** 18 + 1) / 2 ** 19, (2 ** 18 + 3) / 2 ** 19, -(2 ** 18 + 1) / 2 ** 19]  # 18 bits and a half
    values = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200), ties,
                             [0.0, 1 - 2.0 ** -40, -(1 - 2.0 ** -40), 2.0 ** -1070, 1.0 / 3, 1e300]])
    got = round_significant(values, 18)
    assert [Fraction(float(g)) for g in got] == [documented(Fraction(float(v))) for v in values]
    assert got[200:203].tolist() == [2 ** 18 / 2 ** 19, (2 ** 18 + 4) / 2 ** 19, -(2 ** 18) / 2 ** 19]


@pytest.mark.parametrize("alpha", [np.float32(1.4e-45), np.float32(3.0e38)], ids=["subnormal", "huge"])
def test_extreme_alphas_compile_for_both_backends_and_stay_exact(tmp_path, alpha):
    """float32's smallest and a huge alpha on a model of scalars (0-d per sample): 153
    fractional bits overflowed sizing's int64 shift (OverflowError traceback), and a huge
    0-d constant crashed mantissa.round_float's exact path (nonzero of a 0-d array)."""
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha=float(alpha))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<8,4>", "activation": None}}))
    project = compiler.compile_model(str(model), str(plan), backends=("hls", "rtl"))
    (y,) = project.emulate_exact(np.array([-1.0, 1.0])).values()
    got = [Fraction(int(m), 2 ** int(y.frac)) for m in np.asarray(y.m).ravel()]
    assert got == [-documented(Fraction(float(alpha))), Fraction(1)]
