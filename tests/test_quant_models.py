"""The test models of tests/quant_models.py and quant_models_exported.py: each builds, is
valid ONNX, runs in qonnx's executor or onnxruntime, is what its summary says (bits, powers
of two) and is the same when built twice."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests import quant_models as qm
from tests import quant_models_exported as qe

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("quant_models")


def quantizers(path) -> list[tuple[str, str, np.ndarray, int | None]]:
    """(node name, op type, scale, bit width or None) of every quantizer node in the file;
    scales and bit widths that are not initializers are None."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc") or node.op_type in QDQ_OPS:
            scale_input = node.input[4] if node.op_type == "Trunc" and len(node.input) == 6 else node.input[1]
            bits_input = {"Quant": 3, "Trunc": len(node.input) - 1}.get(node.op_type)
            bits = inits.get(node.input[bits_input]) if bits_input is not None else None
            found.append((node.name, node.op_type, inits.get(scale_input),
                          None if bits is None or bits.size != 1 else float(bits)))
    return found


def is_pow2(scale: np.ndarray) -> bool:
    s = np.asarray(scale, dtype=np.float64)
    return bool(np.all(s > 0) and np.all(np.frexp(s)[0] == 0.5))


def _check_runs(model: qm.QuantModel) -> np.ndarray:
    onnx.checker.check_model(onnx.load(str(model.path)))
    kinds = {op for _, op, _, _ in quantizers(model.path)}
    assert kinds, f"{model.name} has no quantizer"
    run = qm.run_onnxruntime if kinds <= set(QDQ_OPS) else qm.run_qonnx
    x = model.inputs[:16]
    y = run(model, x)
    assert len(y) == len(x) and np.all(np.isfinite(y))
    graph_input = onnx.load(str(model.path)).graph.input[0].type.tensor_type.shape.dim
    assert model.inputs.shape[1:] == tuple(d.dim_value for d in graph_input)[1:]
    return y


def _check_summary(model: qm.QuantModel) -> None:
    scales = [s for _, _, s, _ in quantizers(model.path) if s is not None]
    assert all(is_pow2(s) for s in scales) == model.pow2_scales, model.summary
    assert ("non-power-of-two" in model.summary) != model.pow2_scales or "hand" in model.name


BREVITAS = {
    "mlp_pow2_8b_qonnx": (qe.brevitas_mlp, {}),
    "mlp_pow2_4b_qonnx_torchscript": (qe.brevitas_mlp, {"bits": 4, "dynamo": False}),
    "mlp_pow2_8b_qcdq": (qe.brevitas_mlp, {"export": "qcdq"}),
    "mlp_float_qonnx": (qe.brevitas_mlp, {"scales": "float"}),
    "mlp_float_per_channel_qcdq": (qe.brevitas_mlp, {"scales": "float", "per_channel": True, "export": "qcdq"}),
    "mlp_float_bias_qonnx": (qe.brevitas_mlp, {"bias": "float", "dynamo": False}),
    "cnn_max_qonnx": (qe.brevitas_cnn, {"dynamo": False}),
    "cnn_trunc_avg_qonnx": (qe.brevitas_cnn, {"pool": "trunc_avg", "dynamo": False}),
    "cnn_max_qcdq": (qe.brevitas_cnn, {"export": "qcdq"}),
    "cnn_trunc_avg_qcdq": (qe.brevitas_cnn, {"pool": "trunc_avg", "export": "qcdq"}),
}


@pytest.mark.parametrize("name", BREVITAS)
def test_brevitas_model(folder, name):
    build, options = BREVITAS[name]
    model = build(folder, **options)
    _check_runs(model)
    _check_summary(model)
    found = quantizers(model.path)
    bits = options.get("bits", 8)
    if options.get("export", "qonnx") == "qonnx":
        widths = sorted({b for _, op, _, b in found if op == "Quant"})
        assert widths == ([bits, 32] if options.get("bias") != "float" else [bits])
        if options.get("pool") == "trunc_avg":
            assert any(op == "Trunc" for _, op, _, _ in found)
    if options.get("per_channel"):
        assert any(s is not None and s.size > 1 for _, _, s, _ in found)


@pytest.mark.parametrize("build", [qe.ort_qdq_mlp, qe.ort_qdq_cnn])
@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_ort_qdq_model(folder, build, activations):
    model = build(folder, activations=activations, tie_samples=8)
    _check_runs(model)
    _check_summary(model)
    onnx_model = onnx.load(str(model.path))
    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    zero_types = {inits[n.input[2]].dtype for n in onnx_model.graph.node
                  if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    assert zero_types == {np.dtype(activations)}
    assert any(v.dtype == np.int32 for v in inits.values()), "int32 biases"
    assert any(v.dtype == np.int8 and v.ndim >= 2 for v in inits.values()), "int8 weights"


@pytest.mark.parametrize("case", qm.HAND_CASES)
def test_hand_graph(folder, case):
    model = qm.hand_qonnx(folder, case)
    if case != "rounding_round_to_zero":  # qonnx's executor does not know ROUND_TO_ZERO
        _check_runs(model)
    _check_summary(model)
    act, weight, out = qm.HAND_CASES[case]
    lo, hi = act.integer_range()
    steps = (model.inputs.astype(np.float64) / np.asarray(act.scale)) + np.asarray(act.zero_point)
    if not act.bipolar:  # the samples reach past both ends of the input range and hit its ties
        assert steps.min() < lo and steps.max() > hi
        assert np.any(steps % 1 == 0.5)


@pytest.mark.parametrize("domain", qm.QUANT_DOMAINS)
def test_hand_graph_domains(folder, domain):
    model = qm.hand_qonnx(folder, "per_channel_weights", domain=domain)
    assert {n.domain for n in onnx.load(str(model.path)).graph.node if n.op_type == "Quant"} == {domain}
    y = _check_runs(model)
    assert np.array_equal(y, qm.run_qonnx(qm.hand_qonnx(folder, "per_channel_weights"), model.inputs[:16]))


@pytest.mark.parametrize("version", [1, 2])
def test_hand_trunc(folder, version):
    model = qm.hand_trunc(folder, version=version)
    _check_runs(model)
    _check_summary(model)
    trunc = next(n for n in onnx.load(str(model.path)).graph.node if n.op_type == "Trunc")
    assert len(trunc.input) == {1: 5, 2: 6}[version]


@pytest.mark.parametrize("defect", qm.MALFORMED)
def test_malformed_quantizer(folder, defect):
    model = qm.malformed_quant(folder, defect)
    onnx_model = onnx.load(str(model.path))
    onnx.checker.check_model(onnx_model)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    bad = next(n for n in onnx_model.graph.node if n.name == "bad_quant")
    scale, zero, bits = (inits.get(name) for name in (list(bad.input) + [None, None])[1:4])
    what = {
        "bits_zero": lambda: bits == 0, "bits_fraction": lambda: bits == 2.5, "bits_vector": lambda: bits.shape == (8,),
        "scale_zero": lambda: scale == 0, "scale_negative": lambda: scale < 0,
        "scale_not_constant": lambda: scale is None, "zero_point_out_of_range": lambda: zero > 7,
        "zero_point_fraction": lambda: zero % 1 != 0, "scale_shape": lambda: scale.shape == (3,),
        "bipolar_scale_zero": lambda: bad.op_type == "BipolarQuant" and scale == 0,
    }
    assert what[defect](), model.summary


@pytest.mark.parametrize("build, options", [(qe.brevitas_mlp, {"scales": "float"}), (qe.ort_qdq_cnn, {}),
                                            (qm.hand_qonnx, {"case": "zero_points"})])
def test_builds_are_deterministic(tmp_path, build, options):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    a, b = build(first, **options), build(second, **options)
    assert np.array_equal(a.inputs, b.inputs)

    def initializers(model):
        graph = onnx.load(str(model.path)).graph
        return sorted((i.name, numpy_helper.to_array(i).tobytes()) for i in graph.initializer)

    assert initializers(a) == initializers(b)
