"""A plan may name any activation of the ONNX model, as Netron shows it, including the ones
canonicalisation would remove: a named tensor is a quantization point, so the passes keep it.

* a Reshape output followed by Flatten (two reshapes would become one),
* a layout no-op in the IR (a Reshape to the shape it already has),
* a MatMul's output before its bias Add (MatMul + Add would become one dense layer),
* a Conv's output before its BatchNorm (the BatchNorm would be folded into the Conv).

Each was refused with "does not exist in the model (after BatchNorm folding)" (the fuzzer's
plan_names_reshaped_value.json).  Values are checked against an exact `fractions`
computation of the plan's meaning, and one model with all of them through csim and
Verilator sim.
"""

from __future__ import annotations

import json
from fractions import Fraction
from math import floor

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main
from compiler.errors import PlanError
from compiler.ir import Graph, Node, Op, Tensor, TensorKind
from compiler.passes.canonicalise import canonicalise

DEFAULTS = {"input": "fixed<16,4,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
            "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}
X = [1.3, -0.7, 1.9, 0.55]


def _save(tmp_path, nodes, x_shape, y_shape, initializers, tensors):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32 if k != "shape" else np.int64),
                                                       k) for k, v in initializers.items()])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": DEFAULTS, "tensors": tensors}))
    return model, plan


def _exact(project, x) -> list[Fraction]:
    (y,) = project.emulate_exact(np.asarray(x, dtype=np.float64)).values()
    return [Fraction(int(m), 2 ** int(y.frac)) for m in np.asarray(y.m).ravel()]


def _input(v: float) -> Fraction:
    """``v`` in defaults.input: 12 fractional bits, nearest, ties to even."""
    return Fraction(round(Fraction(v) * 4096), 4096)


def _trn_sat(v: Fraction, frac: int, lo: Fraction, hi: Fraction) -> Fraction:
    """``v`` truncated to ``frac`` fractional bits and saturated to [lo, hi]."""
    return min(max(Fraction(floor(v * 2 ** frac), 2 ** frac), lo), hi)


def _requantizes(project, name: str) -> bool:
    return any(name in s.outputs and s.op == Op.REQUANTIZE for n in project.graph.nodes for s in n.stages())


def test_reshape_output_before_flatten_is_quantized(tmp_path):
    """Conv (1x1, weight 1) -> Reshape 't1' -> Flatten: t1 in fixed<6,2,TRN,SAT>."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["t0"], name="conv"),
             helper.make_node("Reshape", ["t0", "shape"], ["t1"], name="reshape"),
             helper.make_node("Flatten", ["t1"], ["y"], name="flatten")]
    model, plan = _save(tmp_path, nodes, [1, 1, 2, 2], [1, 4], {"W": [[[[1.0]]]], "shape": [1, 4]},
                        {"t1": "fixed<6,2,TRN,SAT>"})
    project = compiler.compile_model(str(model), str(plan), backends=())
    assert _requantizes(project, "t1")
    expected = [_trn_sat(_input(v), 4, Fraction(-2), 2 - Fraction(1, 16)) for v in X]
    assert _exact(project, np.reshape(X, (1, 1, 2, 2))) == expected


def test_a_named_layout_noop_stays_in_the_graph():
    """canonicalise drops a RESHAPE to its own shape, but not when the plan names its output.
    (The ONNX frontend reads such no-ops, and Identity, as their input: see the next test.)"""
    x = Tensor("x", (4,), TensorKind.INPUT)
    graph = Graph("g", ("x",), ("y",), (Node("same", Op.RESHAPE, ("x",), ("r",), attrs={"shape": (4,)}),
                                        Node("relu", Op.RELU, ("r",), ("y",))),
                  {"x": x, "r": Tensor("r", (4,), TensorKind.ACTIVATION),
                   "y": Tensor("y", (4,), TensorKind.ACTIVATION)})
    assert [n.op for n in canonicalise(graph).nodes] == [Op.RELU]
    assert [n.op for n in canonicalise(graph, keep=frozenset({"r"})).nodes] == [Op.RESHAPE, Op.RELU]


@pytest.mark.parametrize("op", ["Identity", "Reshape", "Transpose"])
def test_a_name_finegrain_reads_as_its_input_says_what_to_name(tmp_path, op):
    """Identity, a Reshape to its own shape, an identity Transpose: finegrain reads the output as
    the input, so the plan is refused with the reason and what to name instead, never ignored."""
    attrs = {"perm": [0, 1]} if op == "Transpose" else {}
    nodes = [helper.make_node(op, ["x", "shape"] if op == "Reshape" else ["x"], ["r"], name="same", **attrs),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    model, plan = _save(tmp_path, nodes, [1, 4], [1, 4], {"shape": [1, 4]} if op == "Reshape" else {},
                        {"r": "fixed<6,2,TRN,SAT>"})
    with pytest.raises(PlanError, match=r"plan names tensor 'r', which finegrain does not have: the model has no "
                                        r"such tensor, or it is the output of an Identity, .* name the input "
                                        r"instead\."):
        compiler.compile_model(str(model), str(plan), backends=())


def test_matmul_output_before_its_bias_add_is_quantized(tmp_path):
    """MatMul 'mm' -> Add 'y': the product is truncated to fixed<8,3,TRN,SAT> before the bias
    (the bias Add stays an ADD instead of joining the dense layer)."""
    w = [[0.25, -0.5], [0.75, 0.125]]
    b = [0.5, -0.25]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "B"], ["y"], name="fc_bias")]
    model, plan = _save(tmp_path, nodes, [1, 2], [1, 2], {"W": w, "B": b}, {"mm": "fixed<8,3,TRN,SAT>"})
    project = compiler.compile_model(str(model), str(plan), backends=())
    assert _requantizes(project, "mm")
    x = [_input(v) for v in X[:2]]
    mm = [_trn_sat(sum(x[i] * Fraction(w[i][j]) for i in range(2)), 5, Fraction(-4), 4 - Fraction(1, 32))
          for j in range(2)]
    assert _exact(project, [X[:2]]) == [mm[j] + Fraction(b[j]) for j in range(2)]


def test_conv_output_before_its_batchnorm_is_quantized(tmp_path):
    """Conv 'c' -> BatchNormalization: not folded when the plan names 'c'; the BatchNorm is a
    scale (1.5) and shift (-0.5) after c's requantize, as an unfoldable BatchNorm is."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn",
                              epsilon=0.0)]
    model, plan = _save(tmp_path, nodes, [1, 1, 2, 2], [1, 1, 2, 2],
                        {"W": [[[[1.0]]]], "gamma": [0.75], "beta": [0.25], "mean": [0.5], "var": [0.25]},
                        {"c": "fixed<6,2,TRN,SAT>"})
    project = compiler.compile_model(str(model), str(plan), backends=())
    assert _requantizes(project, "c")
    c = [_trn_sat(_input(v), 4, Fraction(-2), 2 - Fraction(1, 16)) for v in X]
    assert _exact(project, np.reshape(X, (1, 1, 2, 2))) == [v * Fraction(3, 2) - Fraction(1, 2) for v in c]


def test_a_name_not_in_the_model_is_still_refused(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "B"], ["y"], name="fc_bias")]
    model, plan = _save(tmp_path, nodes, [1, 2], [1, 2], {"W": np.eye(2), "B": [0.5, 0.5]},
                        {"W0": "fixed<8,3>"})
    with pytest.raises(PlanError, match=r"plan names tensor 'W0', which finegrain does not have: the model has no "
                                        r"such tensor \(did you mean 'W'\?\)"):
        compiler.compile_model(str(model), str(plan), backends=())


def test_named_intermediates_csim_and_sim_bit_exact(tmp_path, capsys):
    """All the kept quantization points in one model: Conv 'c' -> BatchNorm -> Reshape 't1'
    -> Flatten -> MatMul 'mm' -> Add; g++ csim and Verilator sim equal the emulator."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
             helper.make_node("Reshape", ["n", "shape"], ["t1"], name="reshape"),
             helper.make_node("Flatten", ["t1"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "W2"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "B2"], ["y"], name="fc_bias")]
    model, plan = _save(tmp_path, nodes, [1, 1, 2, 2], [1, 3],
                        {"W": rng.uniform(-1, 1, (2, 1, 1, 1)), "gamma": [0.9, 1.2], "beta": [0.1, -0.2],
                         "mean": [0.3, -0.1], "var": [0.8, 1.5], "shape": [1, 8], "W2": rng.uniform(-1, 1, (8, 3)),
                         "B2": rng.uniform(-1, 1, 3)},
                        {"c": "fixed<10,3,RND_CONV,SAT>", "t1": "fixed<8,3,TRN,WRAP>", "mm": "fixed<9,4,RND,SAT>"})
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    assert main(["csim", str(out), "--vectors", "100"]) == 0
    assert main(["sim", str(out), "--vectors", "50"]) == 0
