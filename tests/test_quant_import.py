"""Reading quantized models: every QONNX and QDQ quantizer becomes an ``Op.QUANT`` node or a
folded constant carrying its ``Quantizer``, so the IR's float meaning (``evaluate_float``)
is the quantized model's.  The references are qonnx's ``execute_onnx`` (QONNX) and
onnxruntime with graph optimisations off (QDQ).

Exactness: with power-of-two scales and small widths every value the references compute in
float32 is exact (a quantizer's ``x / scale`` is a shift, each dense sum stays under 2**24
LSBs), so the outputs must be equal.  With other scales float32 rounds: `assert_close`
derives the tolerance per model (see there).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import FrontendError
from compiler.fixed import Rounding
from compiler.float_eval import evaluate_float
from compiler.frontend.common import FrontendWarning
from compiler.frontend.onnx import SUPPORTED_OPS, load_onnx
from compiler.ir import Op, TensorKind
from compiler.quantizer import QONNX_ROUNDING
from tests import quant_models as qm

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("quant_models")


def ours(model: qm.QuantModel | Path, inputs=None) -> np.ndarray:
    path = model.path if isinstance(model, qm.QuantModel) else Path(model)
    inputs = model.inputs if inputs is None else inputs
    graph = load_onnx(path)
    return evaluate_float(graph, {graph.inputs[0]: inputs})[graph.outputs[0]]


def quant_nodes(graph) -> list:
    return [n for n in graph.nodes if n.op == Op.QUANT]


# --- hand-built QONNX ---------------------------------------------------------------------


EXACT_CASES = [c for c in qm.HAND_CASES if c != "non_pow2" and not c.startswith("rounding_")]
KNOWN_MODES = [m for m in qm.ROUNDING_MODES if m in QONNX_ROUNDING and m != "ROUND_TO_ZERO"]


@pytest.mark.parametrize("domain", qm.QUANT_DOMAINS)
@pytest.mark.parametrize("case", EXACT_CASES)
def test_hand_qonnx_equals_qonnx(folder, case, domain):
    model = qm.hand_qonnx(folder, case, domain=domain)
    assert np.array_equal(ours(model), qm.run_qonnx(model)), model.summary


def test_int_quant_is_quant(tmp_path):
    # qonnx's newer name for Quant
    model = qm.hand_qonnx(tmp_path, "zero_points")
    proto = onnx.load(str(model.path))
    for node in proto.graph.node:
        if node.op_type == "Quant":
            node.op_type = "IntQuant"
    onnx.save(proto, str(tmp_path / "int_quant.onnx"))
    assert np.array_equal(ours(tmp_path / "int_quant.onnx", model.inputs), qm.run_qonnx(tmp_path / "int_quant.onnx",
                                                                                         model.inputs))


@pytest.mark.parametrize("mode", KNOWN_MODES)
def test_each_rounding_mode_equals_qonnx(folder, mode):
    model = qm.hand_qonnx(folder, f"rounding_{mode.lower()}")
    graph = load_onnx(model.path)
    assert {n.attrs["quantizer"].rounding for n in quant_nodes(graph)} == {QONNX_ROUNDING[mode]}
    assert np.array_equal(ours(model), qm.run_qonnx(model)), model.summary


def test_round_to_zero_is_down(folder):
    # Brevitas's ROUND_TO_ZERO, which qonnx's executor does not know, is its DOWN
    model = qm.hand_qonnx(folder, "rounding_round_to_zero")
    down = qm.hand_qonnx(folder, "rounding_down")
    assert np.array_equal(ours(model), qm.run_qonnx(down))


def test_rounding_without_counterpart_is_refused(folder):
    # UP (away from zero) has no fixed-point rounding mode
    model = qm.hand_qonnx(folder, "rounding_up")
    with pytest.raises(FrontendError, match=r"node 'x_quant' \(Quant\): rounding_mode 'UP'.*use one of"):
        load_onnx(model.path)


def test_ceil(folder):
    model = qm.hand_qonnx(folder, "rounding_ceil")
    if hasattr(Rounding, "CEIL"):
        assert np.array_equal(ours(model), qm.run_qonnx(model))
    else:
        with pytest.raises(FrontendError, match="'CEIL' is not supported yet"):
            load_onnx(model.path)


def test_hand_qonnx_quantizers_land_on_the_ir(folder):
    model = qm.hand_qonnx(folder, "zero_points")
    graph = load_onnx(model.path)
    x_quant, y = quant_nodes(graph)
    assert (x_quant.inputs, x_quant.outputs, y.outputs) == (("x",), ("x_quant",), ("y",))
    q = x_quant.attrs["quantizer"]
    assert (q.bits, q.signed, q.narrow, float(q.in_zero)) == (4, False, False, 8.0)
    weight = graph.tensor("W_quant")
    assert weight.kind == TensorKind.WEIGHT and weight.shape == (4, 8)  # IR weights are [out, in]
    # per-column zero points of W [8, 4] are per-row in the IR layout
    assert weight.quantizer.in_zero.shape == (4, 1)
    assert weight.quantizer.in_zero.ravel().tolist() == [1.0, -2.0, 0.0, 3.0]
    assert np.array_equal(weight.quantizer.apply(weight.data), weight.data)


def test_non_power_of_two_scales_equal_qonnx_in_float64(folder):
    # W sits on ties of its grid by construction: qonnx's float32 W / scale decides them by
    # float32 rounding, the IR exactly.  qonnx's own quantizer function on float64 (the
    # model's float32 values, exactly) divides exactly too; only the sums round, at 2**-52.
    from qonnx.custom_op.general.quant import quant

    model = qm.hand_qonnx(folder, "non_pow2", n_random=256)
    proto = onnx.load(str(model.path))
    values = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in proto.graph.initializer}

    def quantize(x, name):
        return quant(x, values[f"{name}_scale"], values[f"{name}_zero_point"], values[f"{name}_bits"],
                     signed=True, narrow=name == "W_quant", rounding_mode="ROUND")

    x = model.inputs.astype(np.float64)
    reference = quantize(quantize(x, "x_quant") @ quantize(values["W"], "W_quant") + values["b"], "y")
    assert np.allclose(ours(model), reference, rtol=1e-12, atol=1e-12)


def assert_close(got: np.ndarray, reference: np.ndarray, step: float, rare: float = 0.02) -> None:
    """Outputs of a model with non-power-of-two scales, which its float32 reference rounds.

    The reference computes ``x / scale`` in float32: a value within one float32 ulp of a
    rounding tie may round the other way, moving that code by one; the float32 sums
    before the next quantizer are off by at most n * 2**-24 relative, so most outputs are
    equal and the rest differ by one output step ``step`` (a flipped output rounding) or by
    float32 noise.  Both kinds must be rare: ties are measure-zero on random samples.
    """
    assert got.shape == reference.shape
    diff = np.abs(got - reference)
    noise = 64 * 2.0 ** -24 * np.maximum(np.abs(reference), 1.0)
    off = diff > noise
    assert np.all(diff <= step * (1 + 1e-6) + noise), float(diff.max())
    assert off.mean() <= rare, f"{off.mean():.3%} of outputs differ"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("rounding", ["FLOOR", "ROUND", "HALF_UP"])
def test_trunc_equals_qonnx(folder, version, rounding):
    model = qm.hand_trunc(folder, version=version, rounding=rounding)
    graph = load_onnx(model.path)
    assert [n.name for n in quant_nodes(graph)] == ["x_quant", "trunc.round", "trunc"]
    assert np.array_equal(ours(model), qm.run_qonnx(model)), model.summary


@pytest.mark.parametrize("domain", ["onnx.brevitas", "finn.custom_op.general"])
def test_trunc_unsigned_narrow_in_other_domains(folder, domain):
    # run_qonnx's cleanup_model moves the node to qonnx.custom_op.general, whose opset the
    # model does not import, so qonnx would run it as Trunc_v1: compare with the same model
    # written in that domain
    model = qm.hand_trunc(folder, signed=False, narrow=True, bits=5, domain=domain)
    same = qm.hand_trunc(folder, signed=False, narrow=True, bits=5)
    assert np.array_equal(ours(model), qm.run_qonnx(same)), model.summary


def test_trunc_inputs_must_match_its_version(tmp_path):
    model = qm.hand_trunc(tmp_path, version=2)
    proto = onnx.load(str(model.path))
    for entry in proto.opset_import:
        if entry.domain == qm.QONNX_DOMAIN:
            entry.version = 1  # qonnx would run it as Trunc_v1, which has five inputs
    onnx.save(proto, str(model.path))
    with pytest.raises(FrontendError, match=r"node 'trunc' \(Trunc\): Trunc version 1 .* has 5 inputs, this node 6"):
        load_onnx(model.path)


# --- Brevitas exports ---------------------------------------------------------------------


@pytest.mark.parametrize("export", ["qonnx", "qcdq"])
def test_brevitas_mlp_power_of_two_is_exact(folder, export):
    model = qm.brevitas_mlp(folder, export=export, bits=4)
    run = qm.run_qonnx if export == "qonnx" else qm.run_onnxruntime
    graph = load_onnx(model.path)
    assert len(quant_nodes(graph)) == 4  # the input and the three ReLUs
    weights = [t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT]
    biases = [t for t in graph.tensors.values() if t.kind == TensorKind.BIAS]
    assert len(weights) == 4 and all(t.quantizer is not None and t.quantizer.bits == 4 for t in weights)
    assert len(biases) == 4 and all(t.quantizer is not None and t.quantizer.bits == 32 for t in biases)
    assert all(t.quantizer.power_of_two for t in weights + biases)
    assert np.array_equal(ours(model), run(model)), model.summary


@pytest.mark.parametrize("export", ["qonnx", "qcdq"])
def test_brevitas_mlp_per_channel_float_scales(folder, export):
    model = qm.brevitas_mlp(folder, scales="float", per_channel=True, export=export)
    run = qm.run_qonnx if export == "qonnx" else qm.run_onnxruntime
    graph = load_onnx(model.path)
    first = next(t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT)
    assert first.shape == (64, 16) and first.quantizer.in_scale.shape == (64, 1)
    # the output is the last Gemm's (no output quantizer): one flipped hidden rounding moves
    # it by a ReLU step times a weight, so the step is the largest such product
    assert_close(ours(model), run(model), step=_largest_last_step(graph))


def _largest_last_step(graph) -> float:
    last_relu = quant_nodes(graph)[-1].attrs["quantizer"]
    last_weight = [t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT][-1]
    return float(np.max(last_relu.out_scale) * np.max(np.abs(last_weight.data)))


def test_brevitas_cnn_trunc_avg_pool(folder):
    model = qm.brevitas_cnn(folder, pool="trunc_avg")
    assert np.array_equal(ours(model), qm.run_qonnx(model)), model.summary


@pytest.mark.parametrize("export", ["qonnx", "qcdq"])
def test_brevitas_cnn_max_pool(folder, export):
    model = qm.brevitas_cnn(folder, export=export)
    run = qm.run_qonnx if export == "qonnx" else qm.run_onnxruntime
    assert np.array_equal(ours(model), run(model)), model.summary


# --- onnxruntime quantize_static (QDQ) ------------------------------------------------------


@pytest.mark.parametrize("activations", ["uint8", "int8"])
@pytest.mark.parametrize("build", [qm.ort_qdq_mlp, qm.ort_qdq_cnn])
def test_ort_qdq_models(folder, build, activations):
    model = build(folder, activations=activations)
    graph = load_onnx(model.path)
    pairs = [n for n in quant_nodes(graph) if n.attrs["quantizer"].source == "QuantizeLinear+DequantizeLinear"]
    assert pairs and len(pairs) == len(quant_nodes(graph))
    biases = [t for t in graph.tensors.values() if t.kind == TensorKind.BIAS]
    assert biases and all(t.quantizer.bits == 32 and t.quantizer.source == "DequantizeLinear" for t in biases)
    out_step = float(np.max(pairs[-1].attrs["quantizer"].out_scale))
    assert_close(ours(model), qm.run_onnxruntime(model), step=out_step)


def test_kws_int8_qdq_matches_its_reference_exactly():
    path = SHARED / "mlperf_kws_dscnn_int8_qdq.onnx"
    io = np.load(path.with_suffix(".io.npz"))
    graph = load_onnx(path)
    (x,) = graph.inputs
    formats = graph.tensor(x).formats.uniform_type()
    assert (formats.width, formats.int_bits, formats.signed) == (8, 8, True)
    out = evaluate_float(graph, {x: io["input"]})[graph.outputs[0]]
    assert np.array_equal(out, io["output"])
    rng = np.random.default_rng(0)
    samples = rng.integers(-128, 128, size=(16, 49, 10, 1)).astype(np.int8)
    assert np.array_equal(ours(path, samples), qm.run_onnxruntime(path, samples))


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


def test_names_are_the_files(folder):
    model = qm.brevitas_mlp(folder, export="qcdq", bits=4)
    proto = onnx.load(str(model.path))
    file_names = {v for n in proto.graph.node for v in n.output} | {i.name for i in proto.graph.initializer}
    graph = load_onnx(model.path)
    assert set(graph.tensors) <= file_names | {i.name for i in proto.graph.input}


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


# --- malformed QONNX quantizers --------------------------------------------------------------


MALFORMED_MESSAGES = {
    "bits_zero": r"bit width 'bad_quant_bits' is 0, not a positive integer",
    "bits_fraction": r"bit width 'bad_quant_bits' is 2\.5, not a positive integer",
    "bits_vector": r"bit width 'bad_quant_bits' has shape \[8\]; QONNX defines it as a scalar",
    "scale_zero": r"scale 'bad_quant_scale' holds 0; a scale must be a positive finite number",
    "scale_negative": r"scale 'bad_quant_scale' holds -0\.25; a scale must be a positive finite number",
    "scale_not_constant": r"input 1 'bad_quant_scale' is computed at run time \(by Abs node 'x_abs'",
    "zero_point_out_of_range": r"zero point \[20\.0\] lies outside the 4-bit range -8\.\.7",
    "zero_point_fraction": r"zero point 'bad_quant_zero_point' holds 0\.5; a zero point must be an integer",
    "scale_shape": r"scale/zero point of shape \[3\] do not broadcast to the tensor's shape \[8\]",
    "bipolar_scale_zero": r"scale 'bad_quant_scale' holds 0; a scale must be a positive finite number",
}


@pytest.mark.parametrize("defect", sorted(qm.MALFORMED))
def test_malformed_quant_names_the_node(folder, defect):
    model = qm.malformed_quant(folder, defect)
    with pytest.raises(FrontendError, match=r"node 'bad_quant' \((Bipolar)?Quant\): " + MALFORMED_MESSAGES[defect]):
        load_onnx(model.path)


@pytest.mark.parametrize("attribute", ["signed", "narrow"])
def test_quant_needs_signed_and_narrow(tmp_path, attribute):
    # qonnx requires both (its default for narrow would be 1, Brevitas's exports always write them)
    proto = onnx.load(str(qm.hand_qonnx(tmp_path, "unsigned").path))
    quant = next(n for n in proto.graph.node if n.name == "x_quant")
    kept = [a for a in quant.attribute if a.name != attribute]
    del quant.attribute[:]
    quant.attribute.extend(kept)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    with pytest.raises(FrontendError, match=rf"node 'x_quant' \(Quant\): required attribute '{attribute}' is missing"):
        load_onnx(tmp_path / "m.onnx")


def test_quantizer_wider_than_float64_codes_is_refused(tmp_path):
    inits = {"W": np.ones((8, 2)), "q.s": 0.25, "q.z": 0.0, "q.b": 60.0}
    nodes = [_quant("x", "q"), helper.make_node("MatMul", ["q", "W"], ["y"], name="dense")]
    path = _qonnx_model(tmp_path / "m.onnx", nodes, inits, [1, 8], [1, 2])
    with pytest.raises(FrontendError, match=r"node 'q' \(Quant\): bit width 'q.b' is 60; finegrain reads quantizers "
                                            r"of at most 53 bits"):
        load_onnx(path)


def test_float_models_carry_no_quantizers():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = load_onnx(SHARED / "mlperf_kws_dscnn_float.onnx")
    assert not quant_nodes(graph) and all(t.quantizer is None for t in graph.tensors.values())


# --- the real QONNX model ---------------------------------------------------------------------


def test_espcn_up_to_depth_to_space(tmp_path):
    # Brevitas ESPCN: float input, BatchNormalization left unfolded, 4-bit unsigned ReLU
    # quantizers, per-channel 4/8-bit weights with non-power-of-two scales.  Cut before its
    # DepthToSpace: the last Conv's float32 sums (up to 576 terms) in qonnx are the only
    # rounding, far below one flipped 4-bit ReLU code (a step of 0.08 times a weight)
    path = SHARED / "espcn_subpixel_qonnx.onnx"
    proto = onnx.load(str(path))
    depth_to_space = next(n for n in proto.graph.node if n.op_type == "DepthToSpace")
    cut = list(proto.graph.node).index(depth_to_space)
    del proto.graph.node[cut:]
    del proto.graph.output[:]
    proto.graph.output.append(helper.make_tensor_value_info(depth_to_space.input[0], TensorProto.FLOAT,
                                                            [1, 12, 128, 128]))
    onnx.save(proto, str(tmp_path / "cut.onnx"))
    x = np.load(path.with_suffix(".io.npz"))["input"]
    graph = load_onnx(tmp_path / "cut.onnx")
    assert [n.attrs["quantizer"].bits for n in quant_nodes(graph)] == [4, 4, 4]
    weights = [t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT and t.quantizer is not None]
    assert [t.quantizer.in_scale.shape for t in weights] == [(64, 1, 1, 1)] * 2 + [(32, 1, 1, 1), ()]
    reference = qm.run_qonnx(tmp_path / "cut.onnx", x)
    assert np.allclose(ours(tmp_path / "cut.onnx", x), reference, rtol=0, atol=1e-5 * np.abs(reference).max())


def test_espcn_whole():
    path = SHARED / "espcn_subpixel_qonnx.onnx"
    io = np.load(path.with_suffix(".io.npz"))
    if "DepthToSpace" not in SUPPORTED_OPS:  # being added in ops_shape.py (issue 12)
        with pytest.raises(FrontendError, match=r"node 'DepthToSpace_42' \(DepthToSpace\) is not supported"):
            load_onnx(path)
        return
    graph = load_onnx(path)
    step = float(quant_nodes(graph)[-1].attrs["quantizer"].out_scale)
    assert_close(ours(path, io["input"]), io["output"], step=step, rare=0.01)
