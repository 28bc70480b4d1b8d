"""Reading quantized graphs written node by node in these tests: quantized constants through
the frontend's constant folding (Reshape and Transpose of a quantized weight, a quantizer lost
to a computed constant, old Brevitas's flatten subgraph), the QuantizeLinear/DequantizeLinear
details (a lone Q or DQ, the zero point added after rounding, one Q read by several DQs, Clip
between Q and DQ, per-axis scales) and the malformed Q/DQ pairs and too-wide Quant refused
with their node's name.  The references and exactness are test_quant_import.py's: qonnx's
``execute_onnx`` for QONNX, onnxruntime for QDQ; the models quant_models builds are read there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import FrontendError
from compiler.frontend.common import FrontendWarning
from compiler.frontend.onnx import load_onnx
from compiler.ir import Op
from tests import quant_models as qm
from tests.quant_import_eval import ours, quant_nodes


# --- constants through folding --------------------------------------------------------------


def _qonnx_model(path: Path, nodes, inits, x_shape, y_shape, domain=qm.QONNX_DOMAIN) -> Path:
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(domain, 1)])
    onnx.save(model, str(path))
    return path


def _quant(x, out, domain=qm.QONNX_DOMAIN, **attrs):
    return helper.make_node("Quant", [x, f"{out}.s", f"{out}.z", f"{out}.b"], [out], name=out, domain=domain,
                            **{"signed": 1, "narrow": 0, "rounding_mode": "ROUND", **attrs})


def test_quantized_weight_through_transpose_and_reshape(tmp_path):
    # MatMul(x, Transpose(Reshape(Quant(W)))): W [4, 2, 3] per-channel on axis 0 becomes
    # the IR weight [4, 6] with the scale per row
    rng = np.random.default_rng(0)
    scale = np.array([0.5, 0.25, 0.125, 1.0]).reshape(4, 1, 1)
    inits = {"W": rng.normal(size=(4, 2, 3)), "Wq.s": scale, "Wq.z": 0.0, "Wq.b": 4.0, "shape": [4, 6]}
    nodes = [_quant("W", "Wq"), helper.make_node("Reshape", ["Wq", "shape"], ["W2"], name="reshape"),
             helper.make_node("Transpose", ["W2"], ["Wt"], name="transpose", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "Wt"], ["y"], name="dense")]
    inits["shape"] = np.array([4, 6])
    graph_proto = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.int64 if k == "shape" else np.float32), k)
         for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13),
                                                            helper.make_opsetid(qm.QONNX_DOMAIN, 1)]), str(path))
    graph = load_onnx(path)
    weight = graph.tensor(graph.nodes[0].inputs[1])
    assert weight.shape == (4, 6)
    assert weight.quantizer.in_scale.shape == (4, 1)
    assert weight.quantizer.in_scale.ravel().tolist() == [0.5, 0.25, 0.125, 1.0]
    assert np.array_equal(weight.quantizer.apply(weight.data), weight.data)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    assert np.allclose(ours(path, x), qm.run_qonnx(path, x), rtol=1e-6, atol=1e-6)


def test_quantizer_dropped_when_its_axis_is_spread(tmp_path):
    # a per-row scale of W [4, 2] reshaped to [2, 4] lands on two axes: the constant is float
    inits = {"W": np.arange(8).reshape(4, 2) / 4.0, "Wq.s": np.array([[0.5], [0.25], [0.125], [1.0]]),
             "Wq.z": 0.0, "Wq.b": 4.0}
    nodes = [_quant("W", "Wq"), helper.make_node("Reshape", ["Wq", "shape"], ["W2"], name="reshape"),
             helper.make_node("MatMul", ["x", "W2"], ["y"], name="dense")]
    path = _qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 2], [1, 4])
    proto = onnx.load(str(path))
    proto.graph.initializer.append(numpy_helper.from_array(np.array([2, 4], dtype=np.int64), "shape"))
    onnx.save(proto, str(path))
    with pytest.warns(FrontendWarning, match=r"node 'reshape' \(Reshape\) computes constant 'W2' from the "
                                             r"quantized 'Wq'.*needs a plan entry"):
        graph = load_onnx(path)
    assert graph.tensor(graph.nodes[0].inputs[1]).quantizer is None


def test_quantizer_dropped_when_a_translator_computes_a_new_constant(tmp_path):
    # Gemm's alpha scales the weights into a computed constant
    inits = {"W": np.arange(8).reshape(2, 4) / 4.0, "Wq.s": 0.25, "Wq.z": 0.0, "Wq.b": 4.0}
    nodes = [_quant("W", "Wq"), helper.make_node("Gemm", ["x", "Wq"], ["y"], name="fc", alpha=2.0)]
    path = _qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 2], [1, 4])
    with pytest.warns(FrontendWarning, match=r"node 'fc' \(Gemm\) computes a new constant from the quantized 'Wq'"):
        graph = load_onnx(path)
    assert graph.tensor(graph.nodes[0].inputs[1]).quantizer is None


def test_old_brevitas_flatten_subgraph(tmp_path):
    # x.view(x.size(0), -1) as old Brevitas exports wrote it: Shape -> Gather -> Unsqueeze ->
    # Concat -> Reshape, on a quantized activation, in the onnx.brevitas domain
    domain = "onnx.brevitas"
    inits = {"xq.s": 0.125, "xq.z": 0.0, "xq.b": 6.0, "W": np.arange(24).reshape(12, 2) / 16.0,
             "Wq.s": 0.0625, "Wq.z": 0.0, "Wq.b": 5.0, "zero": np.array(0), "minus_one": np.array([-1])}
    nodes = [_quant("x", "xq", domain), helper.make_node("Shape", ["xq"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
             helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["xq", "target"], ["flat"], name="flatten"),
             _quant("W", "Wq", domain, narrow=1), helper.make_node("MatMul", ["flat", "Wq"], ["y"], name="dense")]
    graph_proto = helper.make_graph(
        nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.int64 if k in ("zero", "minus_one") else np.float32), k)
         for k, v in inits.items()] + [numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13),
                                                            helper.make_opsetid(domain, 1)]), str(path))
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes] == [Op.QUANT, Op.RESHAPE, Op.DENSE]
    x = (np.random.default_rng(0).integers(-40, 40, size=(16, 3, 2, 2)) / 8).astype(np.float32)
    assert np.array_equal(ours(path, x), qm.run_qonnx(path, x))


# --- QDQ details ----------------------------------------------------------------------------


def _qdq_model(path: Path, nodes, inits, x_type=TensorProto.FLOAT, y_type=TensorProto.FLOAT, shape=(1, 4),
               opset=13) -> Path:
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", x_type, list(shape))],
                              [helper.make_tensor_value_info("y", y_type, list(shape))],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def test_lone_quantize_gives_codes_and_lone_dequantize_reads_them(tmp_path):
    # x int8 -> DQ -> Relu -> Q -> y int8: the IR input holds codes, the output too
    inits = {"s": np.float32(0.3), "z": np.int8(-3), "s2": np.float32(0.17), "z2": np.int8(4)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "s2", "z2"], ["y"], name="q")]
    path = _qdq_model(tmp_path / "m.onnx", nodes, inits, TensorProto.INT8, TensorProto.INT8)
    graph = load_onnx(path)
    dq, q = quant_nodes(graph)
    assert dq.attrs["quantizer"].source == "DequantizeLinear" and float(dq.attrs["quantizer"].in_scale) == 1.0
    assert q.attrs["quantizer"].source == "QuantizeLinear" and float(q.attrs["quantizer"].out_scale) == 1.0
    x = np.arange(-128, 128, dtype=np.int8).reshape(64, 4)
    assert np.array_equal(ours(path, x), qm.run_onnxruntime(path, x))


@pytest.mark.parametrize("zero", [1, 2, 127])
def test_quantize_linear_adds_the_zero_point_after_rounding(tmp_path, zero):
    # ONNX: round(x / scale) + zero, ties to even before the zero point is added; an odd zero
    # point would round 0.5 + 1 = 1.5 up to 2 where onnxruntime gives 0 + 1
    inits = {"s": np.float32(0.25), "z": np.uint8(zero), "w": np.array([[0.125, 0.375], [-0.125, 0.625]], np.float32)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xq"], name="dq"),
             helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"], name="wq"),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wf"], name="wdq"),
             helper.make_node("MatMul", ["xq", "wf"], ["m"], name="dense"),
             helper.make_node("QuantizeLinear", ["m", "s", "z"], ["y"], name="out")]
    graph_proto = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                                    [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 2])],
                                    [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    graph = load_onnx(path)
    assert [n.attrs["quantizer"].zero_before_rounding for n in quant_nodes(graph)] == [False, False]
    x = (np.arange(-80, 80) / 8).astype(np.float32).reshape(80, 2)  # every tie of the 0.25 grid
    assert np.array_equal(ours(path, x), qm.run_onnxruntime(path, x))


def test_one_quantize_read_by_several_dequantizers(tmp_path):
    # an exporter's dedicated QDQ pairs: one QuantizeLinear, a DequantizeLinear per consumer
    inits = {"s": np.float32(0.1), "z": np.uint8(8), "c": np.float32(0.5)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["a"], name="dq_a"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["b"], name="dq_b"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Mul", ["b", "c"], ["m"], name="mul"),
             helper.make_node("Add", ["r", "m"], ["y"], name="add")]
    path = _qdq_model(tmp_path / "m.onnx", nodes, inits)
    graph = load_onnx(path)
    (pair,) = quant_nodes(graph)
    assert pair.outputs == ("a",) and pair.attrs["quantizer"].source == "QuantizeLinear+DequantizeLinear"
    x = np.linspace(-2, 30, 64, dtype=np.float32).reshape(16, 4)
    # scale 0.1 is not a power of two: onnxruntime's float32 outputs round the values
    assert np.allclose(ours(path, x), qm.run_onnxruntime(path, x), rtol=2.0 ** -22, atol=0)


def test_dequantize_without_zero_point_after_a_reshape_of_int8_input(tmp_path):
    inits = {"s": np.float32(0.5), "shape": np.array([1, 2, 2])}
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
             helper.make_node("DequantizeLinear", ["r", "s"], ["d"], name="dq"),
             helper.make_node("Relu", ["d"], ["y"], name="relu")]
    graph_proto = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2])],
                                    [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    q = quant_nodes(load_onnx(path))[0].attrs["quantizer"]
    assert (q.bits, q.signed, float(q.out_scale)) == (8, True, 0.5)
    x = np.arange(-128, 128, dtype=np.int8).reshape(64, 4)
    assert np.array_equal(ours(path, x), qm.run_onnxruntime(path, x))


def test_clip_between_quantize_and_dequantize_narrows_the_range(tmp_path):
    inits = {"s": np.float32(0.25), "z": np.int8(0), "lo": np.int8(-7), "hi": np.int8(7)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"),
             helper.make_node("DequantizeLinear", ["c", "s", "z"], ["y"], name="dq")]
    path = _qdq_model(tmp_path / "m.onnx", nodes, inits)
    graph = load_onnx(path)
    (node,) = graph.nodes
    q = node.attrs["quantizer"]
    assert (q.bits, q.signed, q.narrow, node.outputs) == (4, True, True, ("y",))
    x = (np.arange(-80, 80) / 8).astype(np.float32).reshape(40, 4)
    assert np.array_equal(ours(path, x), qm.run_onnxruntime(path, x))


def test_per_axis_dequantize_of_weights(tmp_path):
    w = np.array([[1, -2, 3, 127], [-128, 0, 5, 6]], dtype=np.int8)  # [out 2, in 4] for Gemm transB
    inits = {"w": w, "ws": np.array([0.1, 0.02], dtype=np.float32), "wz": np.array([0, 3], dtype=np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="wdq", axis=0),
             helper.make_node("Gemm", ["x", "wf"], ["y"], name="fc", transB=1)]
    graph_proto = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                                    [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    graph = load_onnx(path)
    weight = graph.tensor("wf")
    assert weight.quantizer.in_scale.shape == (2, 1) and weight.quantizer.in_zero.ravel().tolist() == [0, 3]
    assert np.array_equal(weight.data, 1.0 * np.array([0.1, 0.02], dtype=np.float32)[:, None] * (w - [[0], [3]]))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    assert np.allclose(ours(path, x), qm.run_onnxruntime(path, x), rtol=1e-6, atol=1e-6)


def test_per_axis_quantize_dequantize_of_float_weights(tmp_path):
    # float weights -> QuantizeLinear(axis 0) -> DequantizeLinear(axis 0) -> Conv
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    scales = (np.abs(w).reshape(3, -1).max(axis=1) / 127).astype(np.float32)
    inits = {"w": w, "ws": scales, "wz": np.zeros(3, dtype=np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="wq", axis=0),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], name="wdq", axis=0),
             helper.make_node("Conv", ["x", "wf"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    graph_proto = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
                                    [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    weight = load_onnx(path).tensor("wf")
    assert weight.quantizer.source == "QuantizeLinear+DequantizeLinear"
    assert weight.quantizer.in_scale.shape == (3, 1, 1, 1)
    x = rng.normal(size=(4, 2, 4, 4)).astype(np.float32)
    assert np.allclose(ours(path, x), qm.run_onnxruntime(path, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("defect, mention", [
    ("block_size", r"node 'q' \(QuantizeLinear\): block_size 2 \(blocked quantization\) is not supported"),
    ("float8", r"node 'q' \(QuantizeLinear\): zero point 'z' has element type float8"),
    ("scale_zero", r"node 'q' \(QuantizeLinear\): scale 's' holds 0; a scale must be a positive finite number"),
    ("axis", r"node 'q' \(QuantizeLinear\): axis 3 is out of range for rank 2"),
])
def test_malformed_qdq(tmp_path, defect, mention):
    inits = {"s": np.float32(0.25), "z": np.int8(0)}
    attrs, opset = {}, 13
    if defect == "block_size":
        inits["s"] = np.full((1, 2), 0.25, dtype=np.float32)
        inits["z"] = np.zeros((1, 2), dtype=np.int8)
        attrs, opset = {"block_size": 2, "axis": 1}, 21
    if defect == "float8":
        opset = 19
    if defect == "scale_zero":
        inits["s"] = np.float32(0.0)
    if defect == "axis":
        inits["s"] = np.full(4, 0.25, dtype=np.float32)
        inits["z"] = np.zeros(4, dtype=np.int8)
        attrs = {"axis": 3}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q", **attrs),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq", **attrs)]
    path = _qdq_model(tmp_path / "m.onnx", nodes, inits, opset=opset)
    if defect == "float8":
        proto = onnx.load(str(path))
        proto.graph.initializer[1].CopyFrom(helper.make_tensor("z", TensorProto.FLOAT8E4M3FN, [], [0.0]))
        onnx.save(proto, str(path))
    with pytest.raises(FrontendError, match=mention):
        load_onnx(path)


# --- malformed QONNX quantizers (those on quant_models' models: test_quant_import.py) ---------


def test_quantizer_wider_than_float64_codes_is_refused(tmp_path):
    inits = {"W": np.ones((8, 2)), "q.s": 0.25, "q.z": 0.0, "q.b": 60.0}
    nodes = [_quant("x", "q"), helper.make_node("MatMul", ["q", "W"], ["y"], name="dense")]
    path = _qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 8], [1, 2])
    with pytest.raises(FrontendError, match=r"node 'q' \(Quant\): bit width 'q.b' is 60; finegrain reads quantizers "
                                            r"of at most 53 bits"):
        load_onnx(path)


@pytest.mark.parametrize("scales", [(1e20, 1e-20), (0.1, 1e-45)], ids=["1e40", "denormal"])
def test_rescale_by_a_ratio_beyond_int64_compiles_with_the_output_span_as_bound(tmp_path, scales):
    """Input and output scales 1e40 apart (or an output scale that is a float32 denormal): the
    multiplier's largest difference is an integer beyond int64, which stopped compile with an
    internal OverflowError.  The reported bound is at most the 8-bit output's span, 255 codes:
    both values are codes of that quantizer, whatever the rescale (it was 1.04e33 codes)."""
    from compiler import compile_model

    s_in, s_out = scales
    w = np.random.default_rng(8).normal(size=(8, 4))
    inits = {"xq.s": s_in, "xq.z": 0, "xq.b": 8, "W": w, "Wq.s": 0.013, "Wq.z": 0, "Wq.b": 8,
             "y.s": s_out, "y.z": 0, "y.b": 8}
    nodes = [_quant("x", "xq"), _quant("W", "Wq", narrow=1),
             helper.make_node("MatMul", ["xq", "Wq"], ["mm"], name="mm"), _quant("mm", "y")]
    project = compile_model(_qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 8], [1, 4]), None)
    bound = project.report_json()["quantization"]["outputs"]["y"]
    assert bound["quantized"] and bound["max_error_lsb"] == 255.0
    y = project.emulate(np.random.default_rng(1).normal(size=(20, 8)) * s_in * 50)
    assert np.all(np.abs(y) <= 128 * float(np.float32(s_out)))  # codes of the 8-bit output


def test_a_plan_format_over_a_model_quantizer_is_not_called_the_models_own(tmp_path):
    """A plan may replace a quantized model's activation format; clipping counted on data then
    said "the format is the model's own quantizer, and the quantized model clips these values
    the same way" of the plan's fixed<3,1> that wraps, where the model's 8-bit quantizer
    saturates."""
    from compiler import compile_model

    inits = {"xq.s": 0.25, "xq.z": 0, "xq.b": 8, "W": np.eye(4), "Wq.s": 0.125, "Wq.z": 0, "Wq.b": 8,
             "a.s": 0.25, "a.z": 0, "a.b": 8, "y.s": 0.5, "y.z": 0, "y.b": 8}
    nodes = [_quant("x", "xq"), _quant("W", "Wq"), helper.make_node("MatMul", ["xq", "Wq"], ["mm"], name="mm"),
             _quant("mm", "a"), helper.make_node("MatMul", ["a", "Wq"], ["mm2"], name="mm2"), _quant("mm2", "y")]
    model = _qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 4], [1, 4])
    data = np.random.default_rng(2).normal(size=(50, 4)) * 20
    project = compile_model(model, {"tensors": {"a": "fixed<3,1>"}}, data=data)
    by_model = {name: entry["by_model"] for name, entry in project.saturation["tensors"].items()}
    assert by_model["a"] is False and by_model["y"] is True, by_model
    warning = next(w for w in project.warnings if "'a'" in w)
    assert "wrap around in fixed<3,1>" in warning and "clips these values the same way" not in warning
