"""The rounding mode CEIL (toward plus infinity, QONNX's rounding_mode "CEIL") end to end.

ap_fixed has no such mode: the emulator rounds by it in compiler/mantissa.py, the HLS code
through finegrain::ceil_fixed (templates/hls/finegrain/common.h), the RTL through
fg_requantize's ROUNDING 7.  One small MLP with CEIL everywhere the plan can put it (the
input, the weights and biases, per-channel activation formats mixed with another mode, a
ReLU output, the sigmoid's table input) is compiled; the emulator is checked against the
plan's meaning computed with Fractions, and g++ csim and Verilator sim against the emulator.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main

RNG = np.random.default_rng(12)
W1 = RNG.uniform(-1.5, 1.5, (4, 6)).astype(np.float32)  # Gemm with transB: y = x W1^T + B1
B1 = RNG.uniform(-1, 1, 4).astype(np.float32)
W2 = RNG.uniform(-1.5, 1.5, (4, 3)).astype(np.float32)  # MatMul: y = r W2

H_FORMATS = ["fixed<8,3,CEIL,SAT>", "fixed<8,3,RND_CONV,SAT>", "fixed<6,2,CEIL,WRAP>", "fixed<9,4,CEIL,SAT_SYM>"]
PLAN = {
    "defaults": {"input": "fixed<10,3,CEIL,SAT>", "weight": "fixed<7,2,CEIL,SAT>", "bias": "fixed<8,2,CEIL,SAT>",
                 "activation": None},
    "tensors": {"h": {"axis": 1, "formats": H_FORMATS}, "r": "ufixed<6,2,CEIL,SAT>", "z": "fixed<8,3,CEIL,SAT>"},
    "tables": {"sigmoid_input": "fixed<8,3,CEIL,SAT>"},
}


def _model(tmp_path, sigmoid: bool):
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "W2"], ["z"], name="fc2")]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"], name="act"))
    out = "y" if sigmoid else "z"
    graph = helper.make_graph(nodes, "ceil_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(v, k) for k, v in (("W1", W1), ("B1", B1), ("W2", W2))])
    model = tmp_path / f"ceil_mlp{'_sigmoid' if sigmoid else ''}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    return model, plan


# --- the plan's meaning, with Fractions ------------------------------------------------------


def _convert(v: Fraction, text: str) -> Fraction:
    """``v`` into a format of this test: CEIL or RND_CONV, then SAT, SAT_SYM or WRAP."""
    body = text[text.index("<") + 1:-1].split(",")
    width, int_bits, rounding, overflow = int(body[0]), int(body[1]), body[2], body[3]
    q = v * 2 ** (width - int_bits)
    m = math.ceil(q) if rounding == "CEIL" else round(q)  # Python's round: ties to even
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if text.startswith("fixed") else (0, 2 ** width - 1)
    if overflow == "WRAP":
        m = (m - lo) % 2 ** width + lo
    else:
        m = min(max(m, -hi if overflow == "SAT_SYM" else lo), hi)
    return Fraction(m, 2 ** (width - int_bits))


def _meaning(x: list[float]) -> list[Fraction]:
    d = PLAN["defaults"]
    xq = [_convert(Fraction(float(v)), d["input"]) for v in x]
    w1 = [[_convert(Fraction(float(w)), d["weight"]) for w in row] for row in W1]
    b1 = [_convert(Fraction(float(b)), d["bias"]) for b in B1]
    h = [_convert(sum(w * v for w, v in zip(w1[j], xq)) + b1[j], H_FORMATS[j]) for j in range(4)]
    r = [_convert(max(v, Fraction(0)), PLAN["tensors"]["r"]) for v in h]
    w2 = [[_convert(Fraction(float(w)), d["weight"]) for w in row] for row in W2]
    return [_convert(sum(r[j] * w2[j][k] for j in range(4)), PLAN["tensors"]["z"]) for k in range(3)]


def test_emulator_rounds_ceil_as_the_plan_means(tmp_path):
    """Random inputs, inputs on the input grid, just above and below it, and beyond the range."""
    model, plan = _model(tmp_path, sigmoid=False)
    project = compiler.compile_model(str(model), str(plan), backends=())
    rows = [RNG.uniform(-5, 5, 6) for _ in range(40)]
    rows += [np.round(RNG.uniform(-4, 4, 6) * 128) / 128 + e for e in (0.0, 1e-6, -1e-6, 2 ** -8)]
    rows += [np.full(6, 9.0), np.full(6, -9.0), np.zeros(6)]
    x = np.array(rows, dtype=np.float32).astype(np.float64)
    (z,) = project.emulate_exact(x).values()
    for k, row in enumerate(x):
        got = [Fraction(int(m), 2 ** int(z.frac)) for m in np.asarray(z.m)[k].ravel()]
        assert got == _meaning(list(row)), f"input {row}"


def test_ceil_model_csim_and_sim_bit_exact(tmp_path):
    """The same MLP with a Sigmoid whose table input rounds by CEIL: the HLS project declares
    finegrain::ceil_fixed types, the RTL instantiates fg_requantize with ROUNDING 7, and g++
    csim and Verilator sim equal the emulator on every output bit."""
    model, plan = _model(tmp_path, sigmoid=True)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    defines = (out / "hls" / "firmware" / "defines.h").read_text()
    assert '#include "finegrain/common.h"' in defines
    assert "typedef finegrain::ceil_fixed<10,3,AP_SAT> x_t;" in defines
    assert "finegrain::ceil_ufixed<6,2,AP_SAT>" in defines and "finegrain::ceil_fixed<8,3,AP_SAT>" in defines
    assert ".ROUNDING(7)" in (out / "rtl" / "ceil_mlp.sv").read_text()
    assert main(["csim", str(out), "--vectors", "300"]) == 0
    assert main(["sim", str(out), "--vectors", "100"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0
