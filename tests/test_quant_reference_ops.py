"""The exact reference (tests/quant_reference.py) one op at a time: the ordinary ops against
``onnx.reference`` in float64 on values where float64 is exact or correctly rounded once (Conv
with groups, pads, strides and dilations, the pools, BatchNormalization, Gemm, elementwise and
shape ops, DepthToSpace, Softmax), samples run one at a time when a Reshape moves the batch,
and the edge cases of its Q/DQ ops and contractions: per-axis and int32 DequantizeLinear,
QuantizeLinear's saturation and ties to even, Q/DQ against onnxruntime on every tie with odd
zero points, products past int64.  Whole models against qonnx and onnxruntime are
test_quant_reference.py's.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tests import quant_reference as qr
from tests import quant_reference_ops as qo
from tests import quant_reference_values as qv


# --- the ordinary ops against onnx.reference in float64 ----------------------------------


def _float64_graph(nodes, inputs, output_shape, initializers=(), opset=13):
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s)
                                             for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, output_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _small_ints(rng, shape, low=-8, high=8):
    return rng.integers(low, high + 1, size=shape).astype(np.float64)


OP_CASES = {
    # name: (nodes, input shape, output shape, initializers, how exact: 'exact' or a relative tolerance)
    "conv_groups_pads_strides_dilations": (
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 2, 0, 1], strides=[2, 1],
                          dilations=[1, 2])], [1, 4, 7, 6], [1, 6, 3, 7],
        lambda r: [("w", _small_ints(r, (6, 2, 3, 2)) / 4), ("b", _small_ints(r, (6,)) / 8)], "exact"),
    "conv_depthwise": (
        [helper.make_node("Conv", ["x", "w"], ["y"], group=4, pads=[1, 1, 1, 1])], [1, 4, 5, 5], [1, 4, 5, 5],
        lambda r: [("w", _small_ints(r, (4, 1, 3, 3)))], "exact"),
    "average_pool_count_pad_ceil": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                          count_include_pad=1, ceil_mode=1)], [1, 2, 6, 6], [1, 2, 4, 4], lambda r: [],
        "correctly rounded"),
    "average_pool_no_pad_count": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], pads=[1, 0, 1, 1])],
        [1, 2, 5, 5], [1, 2, 5, 5], lambda r: [], "correctly rounded"),
    "max_pool_ceil_pads": (
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1],
                          ceil_mode=1)], [1, 3, 5, 5], [1, 3, 3, 3], lambda r: [], "exact"),
    "global_average_pool": (
        [helper.make_node("GlobalAveragePool", ["x"], ["y"])], [1, 3, 3, 5], [1, 3, 1, 1], lambda r: [],
        "correctly rounded"),
    "batchnorm": (
        [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)], [1, 3, 2, 2],
        [1, 3, 2, 2], lambda r: [("g", np.array([0.5, -1.25, 2.0])), ("b", np.array([0.25, 0.0, -1.0])),
                                 ("m", np.array([1.0, -0.5, 0.0])), ("v", np.array([0.3, 2.0, 7.5]))], 1e-14),
    "gemm_alpha_beta_trans": (
        [helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)], [1, 6], [1, 3],
        lambda r: [("w", _small_ints(r, (3, 6))), ("c", _small_ints(r, (3,)))], "exact"),
    "sub_mul_clip_div": (  # the division last: one float64 rounding
        [helper.make_node("Sub", ["x", "s"], ["t"]), helper.make_node("Mul", ["t", "m"], ["u"]),
         helper.make_node("Clip", ["u", "lo", "hi"], ["c"]), helper.make_node("Div", ["c", "d"], ["y"])],
        [1, 4], [1, 4], lambda r: [("d", np.array([3.0, -0.25, 7.0, 1.5])), ("s", np.array(0.5)),
                                   ("m", np.array([1.0, 2.0, -3.0, 0.5])), ("lo", np.array(-2.0)),
                                   ("hi", np.array(3.0))], "correctly rounded"),
    "shapes": (
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
         helper.make_node("Unsqueeze", ["t", "ax"], ["u"]), helper.make_node("Squeeze", ["u", "ax"], ["s"]),
         helper.make_node("Concat", ["s", "s"], ["c"], axis=3), helper.make_node("Flatten", ["c"], ["f"]),
         helper.make_node("Reshape", ["f", "shape"], ["y"])], [1, 2, 3, 4], [1, 6, 8],
        lambda r: [("ax", np.array([2])), ("shape", np.array([1, 6, -1]))], "exact"),
    "depth_to_space_dcr": (
        [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="DCR")], [1, 8, 2, 3], [1, 2, 4, 6],
        lambda r: [], "exact"),
    "depth_to_space_crd": (
        [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")], [1, 8, 2, 3], [1, 2, 4, 6],
        lambda r: [], "exact"),
    "softmax_sigmoid": (
        [helper.make_node("Softmax", ["x"], ["s"], axis=-1), helper.make_node("Sigmoid", ["s"], ["y"])], [1, 5],
        [1, 5], lambda r: [], 1e-15),
}


def _float64_run(model, case, x):
    """onnx.reference, except BatchNormalization: onnx.reference 1.23's (opset 13) gives
    values as if the variance were 10/9 larger; onnxruntime (which has it in float64) and
    the formula agree with each other."""
    if case == "batchnorm":
        import onnxruntime as ort
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


@pytest.mark.parametrize("case", OP_CASES)
def test_op_against_onnx_reference_in_float64(case):
    nodes, shape, out_shape, make_inits, exactness = OP_CASES[case]
    rng = np.random.default_rng(7)
    inits = make_inits(rng)
    model = _float64_graph(nodes, [("x", shape)], out_shape, inits)
    x = _small_ints(rng, (3, *shape[1:])) / 2
    got = qr.run_output(model, x)
    want = np.concatenate([_float64_run(model, case, x[i:i + 1]) for i in range(3)])
    assert got.shape == want.shape
    if exactness == "exact":  # float64 cannot round on these small dyadic values
        assert qv.exact_equal(got, want).all()
    elif exactness == "correctly rounded":  # one float64 rounding (the division) in each value
        assert np.array_equal(got.float64(), want)
    else:
        np.testing.assert_allclose(got.float64(), want, rtol=exactness, atol=0)


def test_samples_run_one_at_a_time_when_a_reshape_moves_the_batch():
    model = _float64_graph([helper.make_node("Reshape", ["x", "shape"], ["r"]),
                            helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
                            helper.make_node("Reshape", ["t", "back"], ["y"])], [("x", [1, 6])], [1, 6],
                           [("shape", np.array([2, 3])), ("back", np.array([1, 6]))])
    x = np.arange(24, dtype=np.float64).reshape(4, 6)
    got = qr.run_output(model, x)
    want = np.concatenate([x[i].reshape(2, 3).T.reshape(1, 6) for i in range(4)])
    assert qv.exact_equal(got, want).all()


def test_dequantize_per_axis_and_int32():
    x = np.array([[-128, 0, 127], [5, -3, 100]], dtype=np.int8)
    scale, zero = np.array([0.5, 0.1, 3.0], dtype=np.float32), np.array([1, -2, 0], dtype=np.int8)
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1)
    graph = helper.make_graph([node], "dq", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")])
    got = qr.run_output(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), x)
    want = [[Fraction(int(v) - int(z)) * Fraction(float(s)) for v, s, z in zip(row, scale, zero)] for row in x]
    assert got.fractions().tolist() == want
    bias = qo.op_dequantize_linear([qv.from_integers(np.array([2 ** 31 - 1, -(2 ** 31)]), elem_type=TensorProto.INT32),
                                    qv.from_float(np.float32(2.0 ** -20))], {}, 13)
    assert bias.fractions().tolist() == [Fraction(2 ** 31 - 1, 2 ** 20), Fraction(-(2 ** 11))]


@pytest.mark.parametrize("zero_type, lo, hi", [(TensorProto.INT8, -128, 127), (TensorProto.UINT8, 0, 255),
                                               (TensorProto.INT16, -(2 ** 15), 2 ** 15 - 1)])
def test_quantize_linear_saturates_and_ties_to_even(zero_type, lo, hi):
    x = np.array([[-1e6, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1e6, 0.1]])
    zero = qv.from_integers(np.array(0), elem_type=zero_type)
    q = qo.op_quantize_linear([qv.from_float(x, True), qv.from_float(np.float32(1.0)), zero], {}, 13)
    assert q.elem_type == zero_type
    assert q.num.tolist() == [[lo, max(lo, -2), max(lo, -2), 0, 0, 2, 2, hi, 0]]


def test_contraction_past_int64_is_exact():
    """Products past 2**62 go through int64 limbs; equal to Python-int arithmetic."""
    rng = np.random.default_rng(3)
    for terms in (3, 700):
        a = rng.integers(-2 ** 62, 2 ** 62, size=(4, terms)).astype(object) * int(rng.integers(1, 2 ** 20))
        b = rng.integers(-2 ** 40, 2 ** 40, size=(terms, 3)).astype(object)
        assert (qo.exact_contraction(a, b, terms, np.matmul) == a @ b).all()


@pytest.mark.parametrize("opset, zero_type, axis", [
    (10, TensorProto.UINT8, None), (10, TensorProto.INT8, None), (13, TensorProto.UINT8, 1), (13, TensorProto.INT8, 2),
    (19, TensorProto.INT8, 1), (21, TensorProto.INT16, 1), (21, TensorProto.UINT16, -1), (21, TensorProto.INT4, 1),
])
def test_quantize_dequantize_equal_onnxruntime_on_ties(opset, zero_type, axis):
    """Power-of-two scales, odd zero points, inputs on every tie: float32 is exact, so
    onnxruntime must agree exactly.  QuantizeLinear rounds x / scale and then adds the zero
    point; rounding x / scale + zero point instead differs at every tie with an odd zero point."""
    lo, hi = qv.INTEGER_RANGES[zero_type]
    per_axis = axis is not None
    channels = 3
    scale = np.array([0.5, 0.25, 2.0] if per_axis else 0.5, dtype=np.float32)
    zero = np.array([lo + 1, lo + 3, lo + 5] if per_axis else lo + 3, dtype=np.int64)
    halves = np.arange(2 * lo - 6, 2 * min(hi, lo + 40) + 7) / 2.0
    x = (halves[:, None, None] - (lo + 3)) * np.ones((1, channels, channels))
    x = (x * (scale.reshape(-1, 1) if per_axis and axis == 1 else scale)).astype(np.float32)
    attrs = {"axis": axis} if per_axis else {}
    zero_tensor = helper.make_tensor("z", zero_type, zero.shape, zero.ravel().tolist())
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)]
    shape = [1, channels, channels]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape),
                               helper.make_tensor_value_info("q", zero_type, shape)],
                              [numpy_helper.from_array(scale, "s"), zero_tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = ["y"] if zero_type == TensorProto.INT4 else ["y", "q"]  # onnxruntime returns no int4 arrays
    want = [np.concatenate(parts) for parts in zip(*(session.run(names, {"x": x[i:i + 1]}) for i in range(len(x))))]
    got = qr.run(model, x)
    assert qv.exact_equal(got["y"], want[0]).all()
    if len(want) > 1:
        assert np.array_equal(got["q"].integers(), want[1].astype(np.int64))
