"""BatchNormalization in quantized models: lowered on any tensor a quantizer puts on a grid, a
zero scale allowed, and the float64 of its factor and shift counted in report.json's bound.

Each case is a fuzz case (compiler/fuzz/quant.py) checked against the fuzzer's exact reference
(its ``1 / sqrt(var + eps)`` exact where the root is rational, else to 128 bits), within what
report.json promises; 221 is the fuzz seed whose output was 1.7e-5 from the exact model while
the report allowed only the shift's rounding, and 1184, 1327, 1461, 303 and 3460 those that
were refused with "weight 'lN.scale' has no format" before."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from compiler.fuzz.check import Written, prepare_case, write_case_files
from compiler.fuzz.generate import random_case
from compiler.fuzz.quant import quantized
from compiler.passes.batchnorm_error import inverse_sqrt_bounds
from compiler.project import compile_model


def _quant(bits=8, signed=1, scale=0.125, rounding="ROUND", axis=None, zero=0):
    return {"op": "quant", "bits": bits, "signed": signed, "narrow": 0, "rounding": rounding,
            "scale": scale if isinstance(scale, list) else [scale], "zero": [zero], "axis": axis}


def _bn(c, scale, bias=0.0, mean=0.0, var=1.0, eps=0.0, src=1):
    def full(v):
        return v if isinstance(v, list) else [v] * c

    return {"op": "bn", "src": [src], "scale": full(scale), "bias": full(bias), "mean": full(mean),
            "var": full(var), "eps": eps}


def _case(input_shape, layers, tensors, inputs):
    return {"input_shape": input_shape, "layers": layers, "seed": 0, "export": "helper",
            "plan": {"defaults": {}, "tensors": {}}, "arrays": {},
            "quant": {"format": "qonnx", "domain": "qonnx.custom_op.general", "tensors": tensors},
            "inputs": np.asarray(inputs, dtype=np.float32).astype(np.float64).tolist()}


def _check(case, folder):
    outcome = prepare_case(case, folder, ("compile", "emulate", "reference"))
    if isinstance(outcome, Written):
        outcome = outcome.conclude(None)
    assert outcome.status == "pass", outcome.message
    return outcome


def _project(case, folder):
    model, _ = write_case_files(case, folder, "bn")
    return compile_model(model, None)


def test_inverse_sqrt_bounds_enclose_the_root():
    assert inverse_sqrt_bounds(Fraction(9, 4)) == (Fraction(2, 3), Fraction(2, 3))
    var_eps = Fraction(float(np.float32(0.3297718))) + Fraction(float(np.float32(1e-5)))
    for value in (Fraction(2), Fraction(1, 3), var_eps):
        lo, hi = inverse_sqrt_bounds(value)
        assert lo * lo * value < 1 < hi * hi * value and 0 < (hi - lo) / lo < Fraction(1, 2 ** 127)


def test_a_third_is_one_code_off_and_the_report_says_so(tmp_path):
    """gamma 1, var 9: the factor 1/3 is not a float64.  The input code 3 (model value 3/8)
    gives exactly 1/8 in the model, an output code of 1 under FLOOR (code 6: 1/4, code 2);
    float64's 1/3 is a little low, so the compiled model gives codes 0 and 1.  The report
    bounds the output by one code (it said exact before), and the bound is reached: it is tight."""
    layers = [{"op": "relu", "src": [0]}, _bn(1, 1.0, var=9.0)]
    case = _case([1], layers, {"x": _quant(scale=0.125), "t1": _quant(scale=0.125, rounding="FLOOR")},
                 [[0.375], [0.75], [-0.5], [0.0]])
    project = _project(case, tmp_path / "a")
    section = project.quantization()
    (name, out), = section["outputs"].items()
    assert not out["exact"] and out["max_error_lsb"] == 1.0
    got = np.asarray(project.emulate(np.asarray(case["inputs"]))).ravel()
    assert got.tolist() == [0.0, 0.125, 0.0, 0.0]  # the exact model: 0.125, 0.25, 0, 0
    _check(case, tmp_path / "b")


def test_a_dyadic_factor_stays_exact(tmp_path):
    """Factors 1.5 / sqrt(0.5625) = 2 and -2 / sqrt(0.25) = -4, shifts -0.75 and 0.5: all exact
    in float64, and the report says the outputs are exact."""
    layers = [{"op": "relu", "src": [0]}, _bn(2, [1.5, -2.0], bias=[0.25, 1.0], mean=[0.5, -0.125], var=[0.5625, 0.25])]
    case = _case([2], layers, {"x": _quant(scale=0.0625), "t1": _quant(bits=10, scale=0.015625)},
                 [[0.375, -1.0], [7.9, 2.5], [0.0, 0.0], [3.3, 0.0625]])
    assert _project(case, tmp_path / "a").quantization()["exact"]
    _check(case, tmp_path / "b")


@pytest.mark.parametrize("seed", [221, 1184, 1327, 1461, 303, 3460])
def test_fuzz_seeds_of_the_batchnorm_findings(seed, tmp_path):
    case = quantized(random_case(seed, extras=False))
    assert any(layer["op"] == "bn" for layer in case["layers"])
    _check(case, tmp_path)


def test_batchnorm_on_the_quantized_input_needs_no_plan(tmp_path):
    """A BatchNorm right after the input's quantizer (a power-of-two scale: no residual, no
    producing layer) was folded as in a float model, and the compile asked for a plan format of
    its factor.  It is lowered like any other, with a zero-scale channel (a constant output)."""
    layers = [_bn(3, [0.7, 0.0, -1.3], bias=[0.1, 2.0, -0.5], mean=[0.2, 0.3, -0.1], var=[0.5, 1.0, 2.0], eps=1e-5,
                  src=0)]
    rng = np.random.default_rng(3)
    case = _case([3], layers, {"x": _quant(scale=0.03125), "t0": _quant(bits=6, scale=0.0625, rounding="HALF_UP")},
                 rng.uniform(-4, 4, size=(12, 3)))
    _check(case, tmp_path)


@pytest.mark.parametrize("before", [
    {"op": "clip", "src": [0], "low": -0.5, "high": 1.25},
    {"op": "leaky", "src": [0], "alpha": float(np.float32(0.1))},
    {"op": "avgpool", "src": [0], "kernel": [3], "strides": [1], "pads": [1, 1], "ceil_mode": 0},
], ids=["clip", "leaky", "avgpool"])
def test_batchnorm_after_a_clip_leaky_relu_or_average_pool(before, tmp_path):
    layers = [before, _bn(2, [0.9, -0.4], bias=[0.3, -0.2], mean=[0.1, 0.05], var=[0.7, 1.3], eps=1e-5)]
    rng = np.random.default_rng(5)
    case = _case([2, 5], layers, {"x": _quant(scale=0.0625), "t1": _quant(bits=8, scale=0.03125)},
                 rng.uniform(-3, 3, size=(8, 2, 5)))
    _check(case, tmp_path)


def test_batchnorm_after_a_gate_with_a_table_needs_no_plan(tmp_path):
    """x * tanh(x), then a BatchNorm (fuzz case seed 10303031093): the gate's grid comes from the
    plan's table format, unknown while lowering, so the BatchNorm was left to fold_batchnorm as
    in a float part, and the compile asked for a plan format of its factor ('weight l2.scale has
    no format').  It is lowered as after a table.  The factor and shift are dyadic, so the output
    must equal the exact BatchNorm and output quantizer applied to the gate's emulated values."""
    from compiler.fuzz.quant_exact import apply

    layers = [{"op": "table", "src": [0], "function": "Tanh", "attrs": {}}, {"op": "mul", "src": [0, 1]},
              _bn(3, [0.75, -0.5, 1.0], bias=[0.25, -0.125, 0.0], mean=[0.5, 0.0, -0.25], var=[0.25, 1.0, 4.0],
                  src=2)]
    out_quant = _quant(bits=8, scale=0.03125)
    x = np.random.default_rng(9).uniform(-5, 5, size=(40, 3)).astype(np.float32)
    case = _case([3], layers, {"x": _quant(scale=0.0625), "t2": out_quant}, x)
    project = _project(case, tmp_path)
    gate = project.trace(x)["t1"].values
    a, c = [Fraction(3, 2), Fraction(-1, 2), Fraction(1, 2)], [Fraction(-1, 2), Fraction(-1, 8), Fraction(1, 8)]
    bn = np.array([[a[k] * Fraction(float(v)) + c[k] for k, v in enumerate(row)] for row in gate], dtype=object)
    expected = np.array([apply(out_quant, row) for row in bn], dtype=object).astype(np.float64)
    np.testing.assert_array_equal(project.emulate(x), expected)
    assert len(np.unique(expected)) > 30  # not one saturated value
