"""`finegrain inspect`: a quantized model's quantizers and what each becomes in fixed point,
as text and as JSON; bad models exit 2 naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main
from tests import quant_models as qm
from tests.badinput import expect_clean_failure

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"


def _inspect(capsys, *argv) -> str:
    assert main(["inspect", *map(str, argv)]) == 0
    return capsys.readouterr().out


def test_power_of_two_quantizers_become_formats(tmp_path, capsys):
    model = qm.hand_qonnx(tmp_path, "zero_points")
    text = _inspect(capsys, model.path)
    assert text == f"""{model.path}: 3 quantized tensors, 0 tensors without a quantizer

quantized tensors:
  x (input, shape [1, 8], node 'x_quant')
    Quant: 4-bit unsigned, rounding RND_CONV (to nearest, ties to even)
    scale 0.25, zero point 8
    scales are powers of two
    becomes fixed<4,2,RND_CONV,SAT> exact (code - zero point times 2**e)
  W_quant (weight, shape [8, 4], used by node 'dense')
    Quant: 4-bit signed, rounding RND_CONV (to nearest, ties to even)
    scale 0.125, zero point -2..3 over axis 1 (4 values)
    scales are powers of two
    becomes fixed<5,2,RND_CONV,SAT> exact (code - zero point times 2**e)
  y (output, shape [1, 4], node 'y')
    Quant: 8-bit unsigned, rounding RND_CONV (to nearest, ties to even)
    scale 0.125, zero point 100
    scales are powers of two
    becomes fixed<9,6,RND_CONV,SAT> exact (code - zero point times 2**e)
"""


def test_narrow_per_channel_and_unsigned(tmp_path, capsys):
    text = _inspect(capsys, qm.hand_qonnx(tmp_path, "per_channel_weights").path)
    assert ("scale 0.0625..0.5 over axis 1 (4 values)" in text
            and "becomes fixed<4,0,RND_CONV,SAT_SYM> .. fixed<4,3,RND_CONV,SAT_SYM> (per channel) exact" in text)
    text = _inspect(capsys, qm.hand_qonnx(tmp_path, "unsigned").path)
    assert "becomes ufixed<4,2,RND_CONV,SAT> exact (code times 2**e)" in text


def test_non_power_of_two_scales_are_rescaled(tmp_path, capsys):
    text = _inspect(capsys, qm.hand_qonnx(tmp_path, "non_pow2").path)
    # 0.3 = 1.2 * 2**-2: 8-bit codes in fixed<8,6> times 1.2
    assert ("x (input, shape [1, 8], node 'x_quant')\n"
            "    Quant: 8-bit signed, rounding RND_CONV (to nearest, ties to even)\n"
            "    scale 0.30000001, zero point 0\n"
            "    scales are not powers of two\n"
            "    becomes integer code in fixed<8,6,RND_CONV,SAT> times residual r = 1.2 (scale = r * 2**e, "
            "1 <= r < 2), rescaled by an integer multiplier\n") in text


def test_json(tmp_path, capsys):
    model = qm.hand_trunc(tmp_path, version=2, signed=False, bits=5)
    report = json.loads(_inspect(capsys, model.path, "--json"))
    assert [e["name"] for e in report["quantized"]] == ["x", "trunc.integers", "y"]
    y = report["quantized"][2]
    assert y["quantizer"] | {"scale": None} == {
        "source": "Trunc", "bits": 5, "signed": False, "narrow": False, "bipolar": False, "rounding": "TRN",
        "rounding_means": "floor", "scale": None, "zero_point": {"value": 0.0},
        "input_scale": {"value": 32.0}, "input_zero_point": {"value": 0.0}}
    assert y["quantizer"]["scale"] == {"value": 0.5}
    assert (y["power_of_two"], y["exact"], y["becomes"]) == (True, True, "ufixed<5,4,TRN,SAT> exact (code times 2**e)")
    assert report["needs_plan"] == []


def test_int8_qdq_model(capsys):
    report = json.loads(_inspect(capsys, SHARED / "mlperf_kws_dscnn_int8_qdq.onnx", "--json"))
    first = report["quantized"][0]
    assert (first["name"], first["becomes"]) == ("input_1", "fixed<8,8,TRN,SAT>: the input holds the integer codes")
    roles = [e["role"] for e in report["quantized"]]
    assert roles.count("weight") == 10 and roles.count("bias") == 10 and roles[-1] == "output"
    weight = next(e for e in report["quantized"] if e["role"] == "weight")
    assert weight["quantizer"]["scale"]["axis"] == 0 and weight["quantizer"]["scale"]["count"] == 64
    assert not weight["exact"] and "rescaled by an integer multiplier" in weight["becomes"]
    assert report["needs_plan"] == []


def test_float_model_needs_a_plan_for_everything(capsys):
    report = json.loads(_inspect(capsys, SHARED / "mnist_cnn_float.onnx", "--json"))
    assert report["quantized"] == []
    assert [e["role"] for e in report["needs_plan"]].count("input") == 1
    assert {e["role"] for e in report["needs_plan"]} == {"input", "weight", "bias"}


@pytest.mark.parametrize("defect", sorted(qm.MALFORMED))
def test_malformed_quantizers_exit_2(tmp_path, capsys, defect):
    model = qm.malformed_quant(tmp_path, defect)
    expect_clean_failure(capsys, ["inspect", model.path], mention=["'bad_quant'"], keep=[model.path])


def test_missing_file_exits_2(tmp_path, capsys):
    expect_clean_failure(capsys, ["inspect", tmp_path / "nope.onnx"], mention=["no such file"])


def test_float_input_read_besides_its_quantizer_needs_a_plan(tmp_path, capsys):
    inits = [numpy_helper.from_array(np.float32(0.5), "s"), numpy_helper.from_array(np.int8(0), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xq"], name="dq"),
             helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Add", ["xq", "r"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    report = json.loads(_inspect(capsys, tmp_path / "m.onnx", "--json"))
    assert [(e["name"], e["role"]) for e in report["quantized"]] == [("xq", "input")]
    assert [e["name"] for e in report["needs_plan"]] == ["x"]


def test_one_bit_unsigned_narrow_has_the_one_code_zero(tmp_path, capsys):
    model = qm.hand_qonnx(tmp_path, "unsigned_1bit")
    proto = onnx.load(str(model.path))
    next(a for n in proto.graph.node if n.name == "x_quant" for a in n.attribute if a.name == "narrow").i = 1
    onnx.save(proto, str(model.path))
    assert "becomes ufixed<1,1,RND_CONV,SAT> exact (code times 2**e)" in _inspect(capsys, model.path)
