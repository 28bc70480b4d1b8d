"""Bit plan loading and validation: each bad plan gives an error naming the tensor and value."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from compiler.errors import PlanError
from compiler.fixed import FixedType, Overflow, Rounding
from compiler.plan import load_plan, parse_plan


def _write(tmp_path, plan, name="plan.json"):
    path = tmp_path / name
    path.write_text(json.dumps(plan))
    return path


def test_all_three_granularities_resolve(tmp_path):
    bits = np.array([[4, 0], [6, 3]])
    np.savez(tmp_path / "arrays.npz", **{"w.bits": bits, "w.int_bits": np.array([[1, 0], [2, 1]]),
                                         "w.signed": np.array([[1, 1], [0, 1]])})
    plan = load_plan(_write(tmp_path, {
        "defaults": {"input": "fixed<12,5,RND_CONV,SAT>", "weight": "fixed<6,1>", "bias": "fixed<10,4>",
                     "activation": None},
        "tensors": {"a": "ufixed<8,4,RND_CONV,SAT>",
                    "v": {"axis": 1, "formats": ["fixed<4,1>", "fixed<5,2,RND,SAT_SYM>", "ufixed<3,0>"]},
                    "w": {"elements": "arrays.npz:w", "rounding": "RND_CONV", "overflow": "SAT"},
                    "note_only": {"_note": "template entry"}}}))
    assert plan.default("input") == FixedType(12, 5, True, Rounding.RND_CONV, Overflow.SAT)
    assert plan.default("activation") is None
    assert "note_only" not in plan.tensors
    whole = plan.formats_for(plan.spec("a"), (1, 3), batch_axis=True)
    assert whole.uniform_type() == FixedType.parse("ufixed<8,4,RND_CONV,SAT>")
    per_axis = plan.formats_for(plan.spec("v"), (2, 3), batch_axis=False)
    assert [str(per_axis.element((0, j))) for j in range(3)] == ["fixed<4,1>", "fixed<5,2,RND,SAT_SYM>", "ufixed<3,0>"]
    assert per_axis.element((1, 2)) == per_axis.element((0, 2))
    per_elem = plan.formats_for(plan.spec("w"), (2, 2), batch_axis=False)
    assert per_elem.pruned.tolist() == [[False, True], [False, False]]
    assert str(per_elem.element((1, 0))) == "ufixed<6,2,RND_CONV,SAT>"


def test_activation_axis_counts_batch(tmp_path):
    plan = parse_plan({"defaults": {}, "tensors": {"h": {"axis": 1, "formats": ["fixed<4,1>", "fixed<6,2>"]}}},
                      tmp_path)
    f = plan.formats_for(plan.spec("h"), (1, 2, 3), batch_axis=True)
    assert f.shape == (2, 3) and f.element((1, 2)) == FixedType(6, 2)
    with pytest.raises(PlanError, match=r"'h'.*axis 0 .*batch"):
        bad = parse_plan({"tensors": {"h": {"axis": 0, "formats": ["fixed<4,1>"]}}}, tmp_path)
        bad.formats_for(bad.spec("h"), (1, 2), batch_axis=True)


@pytest.mark.parametrize("plan, pattern", [
    ({"defaults": {"input": "fixed<8>"}}, r"default 'input'.*malformed format 'fixed<8>'"),
    ({"defaults": {"weight": "fixed<8,3,RND_FOO>"}}, r"unknown rounding mode 'RND_FOO'"),
    ({"defaults": {"inputs": "fixed<8,3>"}}, r"unknown keys \['inputs'\] in 'defaults'"),
    ({"tensors": {"fc1.weight": 7}}, r"'fc1.weight' must be a format string"),
    ({"tensors": {"fc1.weight": "ufixed<0,1>"}}, r"'fc1.weight'.*width must be a positive integer, got 0"),
    ({"tensors": {"fc1.weight": {"axis": "0", "formats": ["fixed<4,1>"]}}}, r"'fc1.weight': 'axis' must be an integer"),
    ({"tensors": {"fc1.weight": {"axis": 0, "formats": []}}}, r"'fc1.weight': 'formats' must be a non-empty list"),
    ({"tensors": {"fc1.weight": {"axis": 0, "formats": ["fixed<4,1>", "fixd<4,1>"]}}}, r"formats\[1\].*'fixd<4,1>'"),
    ({"tensors": {"x": {"elements": "missing.npz:k"}}}, r"'x': per-element file .*missing.npz.* does not exist"),
    ({"tensors": {"x": {"elements": "nocolon"}}}, r"'elements' must be 'FILE.npz:KEY', got 'nocolon'"),
    ({"tables": {"inv_bits": 40}}, r"'inv_bits' must be an integer 2..20, got 40"),
    ({"layers": {}}, r"unknown top-level keys \['layers'\]"),
])
def test_malformed_plans_name_the_problem(tmp_path, plan, pattern):
    with pytest.raises(PlanError, match=pattern):
        load_plan(_write(tmp_path, plan))


def test_per_axis_list_of_wrong_length(tmp_path):
    plan = parse_plan({"tensors": {"W1": {"axis": 1, "formats": ["fixed<4,1>"] * 3}}}, tmp_path)
    with pytest.raises(PlanError, match=r"'W1': 3 formats given for axis 1, but that axis has length 5"):
        plan.formats_for(plan.spec("W1"), (4, 5), batch_axis=False)


def test_per_element_errors(tmp_path):
    np.savez(tmp_path / "a.npz", **{"k.bits": np.array([3, -1]), "k.int_bits": np.zeros(2, int),
                                    "k.signed": np.ones(2, int)})
    with pytest.raises(PlanError, match=r"'w': k.bits has negative bits -1 at index \[1\]"):
        load_plan(_write(tmp_path, {"tensors": {"w": {"elements": "a.npz:k"}}}))
    np.savez(tmp_path / "b.npz", **{"k.bits": np.ones((2, 3), int), "k.int_bits": np.ones((2, 3), int),
                                    "k.signed": np.ones((2, 3), int)})
    plan = load_plan(_write(tmp_path, {"tensors": {"h": {"elements": "b.npz:k"}}}))
    with pytest.raises(PlanError, match=r"'h': per-element arrays have shape \[2, 3\], but the tensor needs "
                                        r"\[3, 2\] \(activations: without the batch axis\)"):
        plan.formats_for(plan.spec("h"), (1, 3, 2), batch_axis=True)
    with pytest.raises(PlanError, match=r"has no array 'q.bits'"):
        load_plan(_write(tmp_path, {"tensors": {"h": {"elements": "b.npz:q"}}}))


def test_not_json_and_not_a_file(tmp_path):
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(PlanError, match="is not valid JSON"):
        load_plan(tmp_path / "p.json")
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "nope.json")


def test_constants_that_vanish_or_saturate_warn():
    import warnings

    from compiler.fixed import Formats
    from compiler.ir import Tensor, TensorKind
    from compiler.passes.apply_plan import PlanWarning, _quantize_constant

    inverse = Tensor("div.inverse", (), TensorKind.WEIGHT, data=np.array(1 / 255), float_data=np.array(1 / 255))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quantize_constant(inverse, Formats.uniform((), FixedType.parse("fixed<6,1,RND_CONV,SAT>")))
        _quantize_constant(inverse, Formats.uniform((), FixedType.parse("ufixed<10,-6,RND_CONV,SAT>")))
    messages = [str(w.message) for w in caught if w.category is PlanWarning]
    assert messages == ["every value of weight 'div.inverse' becomes 0 under fixed<6,1,RND_CONV,SAT> "
                        "(largest |value| 0.00392157); give it more fractional bits in the plan"]


# --- weight quantizers: pow2, row-wise mixes, codebooks (issue 6) --------------------------


def test_weight_quantizer_entries_parse(tmp_path):
    from compiler.weight_formats import Pow2Type
    from compiler.plan import Codebook

    np.savez(tmp_path / "idx.npz", w=np.zeros((2, 3), dtype=np.int32))
    plan = parse_plan({
        "defaults": {"weight": "pow2<-6,0>", "bias": "fixed<8,3>"},
        "tensors": {
            "a": "pow2<-3, 2>",
            "b": {"axis": 0, "formats": ["pow2<-1,1>", "fixed<4,1>"]},
            "c": {"axis": 1, "mix": [{"format": "pow2<-6,0>", "rows": 0.5}, {"format": "fixed<6,1>", "rows": 0.5}],
                  "assign": "order", "group": True},
            "d": {"codebook": {"centres": [0.5, -0.25, 0], "format": "fixed<6,1>"}, "indices": "idx.npz:w"},
            "e": {"axis": 0, "codebooks": [{"centres": [1], "format": "ufixed<1,1>"}] * 2}}}, tmp_path)
    assert plan.default("weight") == Pow2Type(-6, 0)
    assert plan.spec("a").whole == Pow2Type(-3, 2) and plan.spec("a").weight_scheme == "pow2<-3,2>"
    assert plan.spec("b").axis_types == (Pow2Type(-1, 1), FixedType(4, 1))
    c = plan.spec("c")
    assert (c.axis, c.assign, c.group) == (1, "order", True)
    assert [str(e.scheme) for e in c.mix] == ["pow2<-6,0>", "fixed<6,1>"]
    d = plan.spec("d")
    assert d.codebooks == (Codebook((0.5, -0.25, 0.0), FixedType(6, 1)),) and d.indices.dtype == np.int64
    assert plan.spec("e").codebooks[1].centres == (1.0,) and plan.spec("e").weight_scheme == "a codebook"


@pytest.mark.parametrize("tensors, pattern", [
    ({"w": "pow2<-4>"}, r"'w': malformed power-of-two format 'pow2<-4>'"),
    ({"w": "pow2<-61,0>"}, r"'w': pow2 range cannot be represented: 'pow2<-61,0>' needs EMIN <= EMAX"),
    ({"w": {"axis": 0, "formats": ["fixed<4,1>", "pow2<3,1>"]}}, r"formats\[1\]: pow2 range cannot be represented"),
    ({"w": {"mix": [{"format": "fixed<4,1>", "rows": 1}]}}, r"'w': a row-wise mix takes the keys 'axis', 'mix'"),
    ({"w": {"axis": 0, "mix": []}}, r"'w': 'mix' must be a non-empty list"),
    ({"w": {"axis": 0, "mix": [{"format": "fixed<4,1>"}]}}, r"'w', mix\[0\] must be \{'format'"),
    ({"w": {"axis": 0, "mix": [{"format": "fixed<4,1>", "rows": -0.5}, {"format": "fixed<4,1>", "rows": 1.5}]}},
     r"mix\[0\]: 'rows' must be a fraction of the axis between 0 and 1, got -0.5"),
    ({"w": {"axis": 0, "mix": [{"format": "fixed<4,1>", "rows": 0.5}, {"format": "fixed<4,1>", "rows": 0.6}]}},
     r"'w': mixed-scheme ratios add up to 1.1, not 1"),
    ({"w": {"axis": 0, "mix": [{"format": "fixd<4,1>", "rows": 1}]}}, r"mix\[0\]: malformed format 'fixd<4,1>'"),
    ({"w": {"axis": 0, "mix": [{"format": "fixed<4,1>", "rows": 1}], "assign": "hessian"}},
     r"'w': unknown 'assign' rule 'hessian'; choose one of variance, order"),
    ({"w": {"axis": 0, "mix": [{"format": "fixed<4,1>", "rows": 1}], "group": "yes"}},
     r"'w': 'group' must be true or false, got 'yes'"),
    ({"w": {"codebook": {"centres": [0.5]}}}, r"'w': a codebook must be \{'centres'"),
    ({"w": {"codebook": {"centres": [0.5], "format": "pow2<-2,0>"}}},
     r"codebook format: 'pow2<-2,0>' is a power-of-two weight quantizer, for weights and biases only"),
    ({"w": {"codebook": {"centres": ["0.5"], "format": "fixed<4,1>"}}},
     r"codebook centre '0.5' of 'w' is not a finite"),
    ({"w": {"codebook": {"centres": [4.0], "format": "fixed<4,1>"}}},
     r"centre 4.0 of 'w' is not exact in fixed<4,1>: it is outside the range -1..0.875"),
    ({"w": {"codebook": {"centres": [0.5], "format": "fixed<4,1>"}, "axis": 0}}, r"'w': a codebook entry takes"),
    ({"w": {"axis": 0, "codebooks": {"centres": [0.5], "format": "fixed<4,1>"}}},
     r"'codebooks' must be a non-empty list"),
    ({"w": {"codebook": {"centres": [0.5], "format": "fixed<4,1>"}, "indices": "none.npz:k"}},
     r"'w': indices file .*none.npz.* does not exist"),
    ({"w": {"codebook": {"centres": [0.5], "format": "fixed<4,1>"}, "indices": "idx.npz:q"}},
     r"has no array 'q'"),
])
def test_malformed_weight_quantizers_name_the_problem(tmp_path, tensors, pattern):
    np.savez(tmp_path / "idx.npz", w=np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(PlanError, match=pattern):
        load_plan(_write(tmp_path, {"tensors": tensors}))


def test_pow2_is_refused_for_inputs_and_activations(tmp_path):
    with pytest.raises(PlanError, match=r"default 'input': 'pow2<-2,0>' is a power-of-two weight quantizer"):
        load_plan(_write(tmp_path, {"defaults": {"input": "pow2<-2,0>"}}))
    plan = parse_plan({"tensors": {"h": {"axis": 1, "formats": ["pow2<-2,0>", "fixed<4,1>"]}}}, tmp_path)
    with pytest.raises(PlanError, match=r"'h': pow2<-2,0> is a weight quantizer .* 'h' is an activation"):
        plan.formats_for(plan.spec("h"), (1, 2), batch_axis=True)


def _matmul_model(tmp_path, w: np.ndarray):
    """y = x @ W with x [1, 2]: the smallest model a plan's constants and inputs act on."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(np.asarray(w, dtype=np.float32), "W")])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    return model


def test_widest_weight_format_saturates_with_a_warning_not_an_error(tmp_path):
    """A 1000-bit weight format is applied exactly; a weight beyond its range saturates with a
    warning (the saturation check built a format 64 bits wider, over 1024 bits, and failed)."""
    from fractions import Fraction

    import compiler

    model = _matmul_model(tmp_path, [[0.5, 5.0], [-0.25, 1.0]])
    plan = _write(tmp_path, {"defaults": {"input": "fixed<8,2>", "weight": "fixed<1000,2,TRN,SAT>",
                                          "activation": None}})
    project = compiler.compile_model(str(model), plan, backends=())
    assert any(re.match(r"1 of 4 values of weight 'W' saturate", w) for w in project.warnings), project.warnings
    (y,) = project.emulate_exact(np.array([[1.0, 1.0]])).values()
    values = [Fraction(int(m), 2 ** y.frac) for m in y.m[0]]
    assert values == [Fraction(1, 4), 1 + 2 - Fraction(1, 2 ** 998)]  # W[0,1] = 5 saturated to 2 - 2**-998


@pytest.mark.parametrize("input_format, weight_format, x, w, expected", [
    # 1110 fractional bits: mantissas over 2**1024 (float(m) overflowed) and 2.0**-1110 == 0
    ("fixed<1000,-10>", "fixed<100,-10>", [2.0 ** -12] * 2, [[2.0 ** -12, 2.0 ** -13]] * 2, [2.0 ** -23, 2.0 ** -24]),
    # values of 2**1120: beyond float64, so +-inf (2.0 ** 1110 overflowed)
    ("fixed<100,1110>", "fixed<4,104>", [2.0 ** 1020, 0.0], [[2.0 ** 100, -(2.0 ** 100)], [0.0, 0.0]],
     [np.inf, -np.inf]),
])
def test_emulated_floats_at_the_format_limits(tmp_path, input_format, weight_format, x, w, expected):
    """Formats within the plan's limits emulate: float outputs are correctly rounded, and
    +-inf beyond float64's range (the exact values are in emulate_exact)."""
    import compiler

    model = _matmul_model(tmp_path, w)
    plan = _write(tmp_path, {"defaults": {"input": input_format, "weight": weight_format, "activation": None}})
    project = compiler.compile_model(str(model), plan, backends=())
    assert project.emulate(np.array([x])).tolist() == [expected]
