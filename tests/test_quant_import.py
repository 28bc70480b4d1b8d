"""Reading quantized models: every QONNX and QDQ quantizer becomes an ``Op.QUANT`` node or a
folded constant carrying its ``Quantizer``, so the IR's float meaning (``evaluate_float``)
is the quantized model's.  The references are qonnx's ``execute_onnx`` (QONNX) and
onnxruntime with graph optimisations off (QDQ).  The models here are quant_models' (hand-built
QONNX, Brevitas and onnxruntime exports) and the shared model files; graphs written node by
node (constant folding, QDQ details) are test_quant_import_graphs.py's.

Exactness: with power-of-two scales and small widths every value the references compute in
float32 is exact (a quantizer's ``x / scale`` is a shift, each dense sum stays under 2**24
LSBs), so the outputs must be equal.  With other scales float32 rounds: `assert_close`
derives the tolerance per model (see there).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import FrontendError
from compiler.fixed import Rounding
from compiler.float_eval import evaluate_float
from compiler.frontend.onnx import SUPPORTED_OPS, load_onnx
from compiler.ir import Op, TensorKind
from compiler.quantizer import QONNX_ROUNDING, integer_range
from tests import quant_models as qm
from tests import quant_models_exported as qe
from tests.quant_import_eval import ours, quant_nodes

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("quant_models")


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
    model = qe.brevitas_mlp(folder, export=export, bits=4)
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
    """The reference runs in float32, so a value within float32 error of a rounding tie may
    round the other way there.  In a constant (the QONNX export's biases are float32 values
    and scales, their codes computed by qonnx as float32 ``b / scale``: on an Intel Xeon one
    bias of the trained model came out at 2441.5 where it is 2441.49993) every sample moves;
    the reference takes the constants' codes computed exactly (`_exact_constant_quantizers`;
    the QCDQ export stores the codes).  In an activation the flip travels through every later
    layer (a sample moved 2.4 last-layer steps): every sample not marked by
    `_float32_tie_rows` must equal the reference up to the last Gemm's float32 sum.  The
    marking is a worst-case bound (about 15% of these samples), so it is held to a quarter,
    which leaves most samples compared exactly."""
    model = qe.brevitas_mlp(folder, scales="float", per_channel=True, export=export)
    graph = load_onnx(model.path)
    first = next(t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT)
    assert first.shape == (64, 16) and first.quantizer.in_scale.shape == (64, 1)
    ties = _float32_tie_rows(graph, model.inputs)
    assert ties.mean() <= 0.25, f"{ties.sum()} of {ties.size} samples pass near a tie"
    if export == "qonnx":
        reference = qm.run_qonnx(_exact_constant_quantizers(model.path), model.inputs)
    else:
        reference = qm.run_onnxruntime(model)
    got = ours(model)
    noise = 64 * 2.0 ** -24 * np.maximum(np.abs(reference), 1.0)
    assert np.all(np.abs(got - reference)[~ties] <= noise[~ties])


def _exact_constant_quantizers(path: Path) -> Path:
    """A copy of the QONNX model whose Quant nodes on initializers are replaced by their
    outputs, computed by qonnx's own ``quant`` on the float32 values in float64 (exact
    division, then the float32 value of the code, as qonnx's float32 output holds it)."""
    from qonnx.custom_op.general.quant import quant

    proto = onnx.load(str(path))
    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    kept = []
    for node in proto.graph.node:
        if node.op_type != "Quant" or node.input[0] not in values:
            kept.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x, scale, zero, bits = (values[i].astype(np.float64) for i in node.input)
        rounding = attrs.get("rounding_mode", b"ROUND")
        y = quant(x, scale, zero, bits, signed=bool(attrs.get("signed", 1)), narrow=bool(attrs.get("narrow", 0)),
                  rounding_mode=rounding.decode() if isinstance(rounding, bytes) else rounding)
        proto.graph.initializer.append(numpy_helper.from_array(np.asarray(y, dtype=np.float32), node.output[0]))
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    exact = path.with_name(f"{path.stem}_exact_constants.onnx")
    onnx.save(proto, exact)
    return exact


def _float32_tie_rows(graph, inputs: np.ndarray) -> np.ndarray:
    """The samples in which some quantizer's input, computed in float32, may fall on the other
    side of a rounding tie (x.5 in codes) than its exact value.

    Each quantizer reads ``t = x / scale`` with x the graph input or ReLU(a @ W.T + b); given
    equal codes a before it, float32 computes the sum within (n + 3) u (|a| @ |W|.T + |b|)
    (n terms, u = 2**-24; the dequantized a and W round once more each) and the division and
    zero point add 2 u |t|.  A sample is marked where |t - (k + 1/2)| is within twice that of
    some tie (twice: this side evaluates in float64, and the bound's 1 / (1 - n u) factor).
    Marking every sample with one such value covers every later layer (they may differ
    anywhere after a flip); an unmarked sample has the reference's codes at every layer."""
    u = 2.0 ** -24
    stages = [s for n in graph.nodes for s in n.stages()]
    producer = {s.outputs[0]: s for s in stages}
    values = evaluate_float(dataclasses.replace(graph, outputs=tuple(graph.tensors)), {graph.inputs[0]: inputs})
    marked = np.zeros(len(inputs), dtype=bool)
    for q in (s for s in stages if s.op == Op.QUANT):
        quantizer = q.attrs["quantizer"]
        source = producer.get(q.inputs[0])
        if source is not None and source.op == Op.RELU:
            source = producer.get(source.inputs[0])
        t = values[q.inputs[0]] / quantizer.in_scale.reshape(-1) + quantizer.in_zero.reshape(-1)
        error = 2 * u * np.abs(t)
        if source is not None and source.op == Op.DENSE:
            a, w = values[source.inputs[0]], graph.tensor(source.inputs[1])
            bias = np.abs(values[source.inputs[2]]) if len(source.inputs) > 2 else 0.0
            size = (np.abs(a) @ np.abs(values[w.name]).T + bias) / np.abs(quantizer.in_scale.reshape(-1))
            error = error + (w.shape[1] + 3) * u * size
        else:
            assert source is None, f"{q.name} reads {source.op}: no float32 bound here for it"
        low, high = integer_range(quantizer.bits, quantizer.signed, quantizer.narrow)
        inside = (t > low - 1) & (t < high + 1)  # beyond, both roundings clamp to the same code
        tie = inside & (np.abs(t - np.floor(t) - 0.5) <= 2 * error)
        marked |= tie.reshape(len(inputs), -1).any(axis=1)
    return marked


def test_brevitas_cnn_trunc_avg_pool(folder):
    model = qe.brevitas_cnn(folder, pool="trunc_avg")
    assert np.array_equal(ours(model), qm.run_qonnx(model)), model.summary


@pytest.mark.parametrize("export", ["qonnx", "qcdq"])
def test_brevitas_cnn_max_pool(folder, export):
    model = qe.brevitas_cnn(folder, export=export)
    run = qm.run_qonnx if export == "qonnx" else qm.run_onnxruntime
    assert np.array_equal(ours(model), run(model)), model.summary


def test_names_are_the_files(folder):
    model = qe.brevitas_mlp(folder, export="qcdq", bits=4)
    proto = onnx.load(str(model.path))
    file_names = {v for n in proto.graph.node for v in n.output} | {i.name for i in proto.graph.initializer}
    graph = load_onnx(model.path)
    assert set(graph.tensors) <= file_names | {i.name for i in proto.graph.input}


# --- onnxruntime quantize_static (QDQ) ------------------------------------------------------


@pytest.mark.parametrize("activations", ["uint8", "int8"])
@pytest.mark.parametrize("build", [qe.ort_qdq_mlp, qe.ort_qdq_cnn])
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
