"""Compiling quantized models with no plan: lower_quant, choose_multipliers and the report.

The references:

* with power-of-two scales, qonnx's ``execute_onnx`` (QONNX) and onnxruntime (QDQ) compute in
  float32 without rounding (small widths), so the emulator must equal them exactly;
* otherwise `tests/quant_reference.py`, the quantized model in exact rational arithmetic: the
  emulator must equal it wherever report.json says exact, and be within the reported bound
  (in output codes) elsewhere; the bound must be reached (it is tight, not just safe).
  qonnx's own float32 execution is *not* a fair reference there: on the hand-built
  non-power-of-two layer it is up to 3 codes from the exact value while finegrain is within 1.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.backends.rtl.stream_reorder import sink_reorders
from compiler.emulate import emulate_exact, quantize_inputs, run
from compiler.errors import UsageError
from compiler.ir import Op
from compiler.plan import parse_plan
from compiler.project import compile_model, load_project
from compiler.verify.vectors import csim_vectors
from tests import quant_models as qm
from tests import quant_models_exported as qe
from tests import quant_reference as qr

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"

# hand-built cases qonnx executes exactly (power-of-two scales) and finegrain reads
POW2_CASES = [c for c in qm.HAND_CASES if c not in ("non_pow2", "rounding_up", "rounding_round_to_zero")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("quant_compile")


def codes_off(project, model_path, inputs) -> tuple[np.ndarray, int]:
    """Per sample and output element, how many output codes the emulator is from the exact
    reference (the output's quantizer scale is its code), and that scale's LSB count."""
    graph = project.graph
    name = graph.outputs[0]
    out = graph.tensor(name)
    ours = emulate_exact(graph, inputs)[name]
    exact = qr.run_output(model_path, inputs)
    scale = np.broadcast_to(out.model_scale if out.model_scale is not None else 1.0, out.shape)
    lsb = np.ldexp(1.0, -np.broadcast_to(out.formats.frac_bits, out.shape))
    diff = np.zeros(ours.m.shape)
    ref = exact.fractions()
    for idx in np.ndindex(ours.m.shape):
        mine = Fraction(int(ours.m[idx])) * Fraction(2) ** -ours.frac * Fraction(float(scale[idx[1:]]))
        step = Fraction(float(scale[idx[1:]])) * Fraction(float(lsb[idx[1:]]))
        diff[idx] = float(abs(mine - ref[idx]) / step)
    return diff


# --- power-of-two scales: exact --------------------------------------------------------------


@pytest.mark.parametrize("case", POW2_CASES)
def test_hand_qonnx_compiles_without_a_plan_and_equals_qonnx(folder, case):
    model = qm.hand_qonnx(folder, case)
    project = compile_model(model.path, None)
    assert not any(n.op == Op.QUANT for n in project.graph.nodes)
    np.testing.assert_array_equal(project.emulate(model.inputs), qm.run_qonnx(model))
    report = project.quantization()
    assert report["exact"] and report["rescales"]["count"] == 0


@pytest.mark.parametrize("build", [
    lambda d: qe.brevitas_mlp(d, scales="pow2", bits=8),
    lambda d: qe.brevitas_mlp(d, scales="pow2", bits=4),
    lambda d: qe.brevitas_mlp(d, scales="pow2", bits=8, export="qcdq"),
    lambda d: qe.brevitas_cnn(d, pool="max"),
    lambda d: qe.brevitas_cnn(d, pool="trunc_avg"),
], ids=["mlp8", "mlp4", "mlp8_qcdq", "cnn_max", "cnn_trunc_avg"])
def test_brevitas_power_of_two_models_equal_their_reference(folder, build):
    model = build(folder)
    project = compile_model(model.path, None)
    reference = qm.run_onnxruntime(model) if "qcdq" in model.name else qm.run_qonnx(model)
    np.testing.assert_array_equal(project.emulate(model.inputs), reference)
    assert project.quantization()["exact"]


def test_bipolar_activation_inside_the_network(folder):
    """A sign quantizer between two layers is three exact IR ops (1-bit SAT, x2, +1)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in [
        ("s8", np.array(2.0 ** -4)), ("z", np.array(0.0)), ("b8", np.array(8.0)), ("one", np.array(1.0)),
        ("W1", rng.integers(-8, 8, (6, 5)) / 8.0), ("W2", rng.integers(-4, 4, (5, 3)) / 4.0)]]
    dom = qm.QONNX_DOMAIN
    nodes = [helper.make_node("Quant", ["x", "s8", "z", "b8"], ["xq"], domain=dom, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "W1"], ["h"]),
             helper.make_node("BipolarQuant", ["h", "one"], ["hb"], domain=dom),
             helper.make_node("MatMul", ["hb", "W2"], ["y"])]
    graph = helper.make_graph(nodes, "bipolar_mid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    path = folder / "bipolar_mid.onnx"
    qm._save(graph, path, dom)
    x = (rng.normal(size=(200, 6)) * 2).astype(np.float32)
    # float weights (no quantizer) need a plan entry: one holding them exactly
    project = compile_model(path, parse_plan({"defaults": {"weight": "fixed<8,4>"}}, folder))
    np.testing.assert_array_equal(project.emulate(x), qm.run_qonnx(path, x))


@pytest.mark.parametrize("rounding", ["ROUND", "HALF_UP", "DOWN", "FLOOR"])
def test_quant_adds_its_zero_point_before_rounding(folder, rounding):
    """QONNX's Quant rounds x / s + zero point (QuantizeLinear rounds x / s, then adds it):
    with an odd zero point ties to even and the symmetric modes round differently, so the
    zero point goes in before the REQUANTIZE."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_in", 2.0 ** -4), ("z0", 0.0), ("b8", 8.0), ("s_out", 2.0 ** -2), ("z_out", 5.0),
        ("W", np.eye(4) * 0.5)]]
    dom = qm.QONNX_DOMAIN
    nodes = [helper.make_node("Quant", ["x", "s_in", "z0", "b8"], ["xq"], domain=dom, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "W"], ["h"]),
             helper.make_node("Quant", ["h", "s_out", "z_out", "b8"], ["y"], domain=dom, signed=0, narrow=0,
                              rounding_mode=rounding)]
    graph = helper.make_graph(nodes, "odd_zero", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    path = folder / f"odd_zero_{rounding}.onnx"
    qm._save(graph, path, dom)
    x = (np.arange(-160, 160) / 16.0).astype(np.float32).reshape(-1, 4)  # every tie of the output grid
    project = compile_model(path, parse_plan({"defaults": {"weight": "ufixed<1,0>"}}, folder))  # W holds 0.5
    np.testing.assert_array_equal(project.emulate(x), qm.run_qonnx(path, x))


# --- scales that are not powers of two: exact reference and the bound ------------------------


def test_non_power_of_two_layer_is_within_its_bound_and_the_bound_is_reached(folder):
    model = qm.hand_qonnx(folder, "non_pow2", n_random=3000)
    project = compile_model(model.path, None)
    report = project.quantization()
    rescales = report["rescales"]
    assert rescales["count"] > 0
    bound = report["outputs"]["y"]["max_error_lsb"]
    # the float bias b / r is rounded 12 bits below the accumulator's grid (one code at most), and
    # those bits make the multipliers wider than 32 bits would prove exact (one more)
    assert bound == 2
    off = codes_off(project, model.path, model.inputs)
    assert off.max() <= bound
    assert np.mean(off == 0) > 0.999
    # qonnx's float32 execution is further from the exact model than the emulator
    qonnx_off = np.abs(qm.run_qonnx(model) - qr.run_output(model.path, model.inputs).float64()) / 0.37
    assert qonnx_off.max() > off.max()


def _rescale_layer(folder: Path) -> Path:
    """x (int8, scale 0.3) -> MatMul by a weight whose code is 1 (scale 0.011) -> Quant (int8,
    scale 0.37): the accumulator is the input code, so every integer of its range is reached."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_x", 0.3), ("s_w", 0.011), ("s_y", 0.37), ("z", 0.0), ("b8", 8.0), ("W", [[0.011]])]]
    dom = qm.QONNX_DOMAIN
    quant = dict(domain=dom, signed=1, narrow=0, rounding_mode="ROUND")
    nodes = [helper.make_node("Quant", ["x", "s_x", "z", "b8"], ["xq"], **quant),
             helper.make_node("Quant", ["W", "s_w", "z", "b8"], ["wq"], **quant),
             helper.make_node("MatMul", ["xq", "wq"], ["acc"]),
             helper.make_node("Quant", ["acc", "s_y", "z", "b8"], ["y"], **quant)]
    graph = helper.make_graph(nodes, "rescale_layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    path = folder / "rescale_layer.onnx"
    qm._save(graph, path, dom)
    return path


@pytest.mark.parametrize("bits", [32, 4, 3, 2, 1])
def test_rescale_bound_is_exact_where_proven_and_reached_where_not(folder, bits):
    """Every input code: the emulator equals the exact model when the multiplier is proven exact,
    and its largest difference equals the reported bound when it is not (tight)."""
    path = _rescale_layer(folder)
    x = (np.arange(-128, 128, dtype=np.float32) * np.float32(0.3)).reshape(-1, 1)
    project = compile_model(path, None, rescale_bits=bits)
    report = project.quantization()
    (choice,) = report["rescales"]["inexact"] or [{"max_error_lsb": 0}]
    off = codes_off(project, path, x)
    if report["exact"]:
        assert off.max() == 0 and bits > 2  # 0.3 * 0.011 / 0.37 takes 3 bits to be exact on [-128, 127]
    else:
        assert report["outputs"]["y"]["max_error_lsb"] == choice["max_error_lsb"] == off.max() > 0


@pytest.mark.parametrize("build", [
    lambda d: qe.brevitas_mlp(d, scales="float"),
    lambda d: qe.brevitas_mlp(d, scales="float", per_channel=True),
    lambda d: qe.brevitas_mlp(d, scales="float", per_channel=True, export="qcdq"),
    lambda d: qe.ort_qdq_mlp(d),
    lambda d: qe.ort_qdq_mlp(d, activations="int8"),
    lambda d: qe.ort_qdq_cnn(d),
    qe.brevitas_cnn_shifted,
], ids=["brevitas_mlp", "brevitas_mlp_per_channel", "brevitas_qcdq", "ort_mlp_uint8", "ort_mlp_int8", "ort_cnn",
        "brevitas_cnn_shifted_per_channel"])
def test_non_power_of_two_models_are_within_the_reported_bound(folder, build):
    model = build(folder)
    project = compile_model(model.path, None)
    report = project.quantization()
    assert report["rescales"]["count"] > 0
    name = project.graph.outputs[0]
    bound = report["outputs"][name]["max_error_lsb"]
    off = codes_off(project, model.path, model.inputs)
    if report["outputs"][name]["exact"]:
        assert off.max() == 0
    else:
        assert bound is not None and off.max() <= bound


def test_int8_kws_equals_its_reference_output():
    """tf2onnx's int8 DS-CNN (int8 input, per-channel int8 weights, int32 biases, an int8
    softmax output): no plan, and the sample's int8 output is reproduced."""
    io = np.load(SHARED / "mlperf_kws_dscnn_int8_qdq.io.npz")
    project = compile_model(SHARED / "mlperf_kws_dscnn_int8_qdq.onnx", None)
    np.testing.assert_array_equal(project.emulate(io["input"]), io["output"])
    report = project.quantization()
    assert report["rescales"]["count"] > 0 and report["rescales"]["exact"] == report["rescales"]["count"]
    assert not report["exact"]  # the softmax is a table look-up: not bounded, and said so


def test_int8_kws_streams_with_one_multiplier_per_channel(tmp_path, capsys):
    """Padded edges of its depthwise convs miss the weights with the most fraction bits, so
    their accumulators are on a coarser grid than the rest of the channel. The multiplier is
    chosen on the channel's finest grid over the union of its elements' ranges, which holds the
    coarser values too: one value per channel (577 multipliers, every one exact; 597 before, when
    each grid chose its own and split a per-channel constant per pixel, and the default compile's
    io_stream project refused the model). Its io_stream C simulation reproduces the sample."""
    out = tmp_path / "out"
    project = compile_model(SHARED / "mlperf_kws_dscnn_int8_qdq.onnx", None, out, architecture="stream",
                            backends=["hls"])
    assert project.quantization()["rescales"] == {**project.quantization()["rescales"], "count": 577, "exact": 577}
    rescales = [t for t in project.graph.tensors.values() if t.scheme is not None and "rescale" in t.scheme]
    assert rescales and all(len(t.shape) < 3 or t.shape[-2:] == (1, 1) for t in rescales)
    io = np.load(SHARED / "mlperf_kws_dscnn_int8_qdq.io.npz")
    np.save(tmp_path / "x.npy", io["input"])
    assert main(["csim", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    assert "bit-exact" in capsys.readouterr().out


# --- plans, the report, the command line ----------------------------------------------------


def test_a_plan_overrides_a_model_quantizer_tensor_by_tensor(folder, tmp_path):
    model = qm.hand_qonnx(folder, "rounding_round")
    plan = parse_plan({"tensors": {"W_quant": "fixed<3,1,RND_CONV,SAT>"}}, tmp_path)
    project = compile_model(model.path, plan)
    w = project.graph.tensor("W_quant")
    assert w.formats.uniform_type().width == 3
    report = project.quantization()
    assert "W_quant" in report["overridden_by_plan"]
    assert not report["exact"]  # 3-bit weights are not the model's 4-bit ones: it says so
    resolved = project.resolved_plan()["tensors"]
    assert resolved["W_quant"]["source"].startswith("plan")
    assert resolved["x"]["source"] == "model quantizer"


def test_a_float_model_without_a_plan_says_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="no quantizers.*give one as plan"):
        compile_model(Path("examples/jet_tagger/model.onnx"), None)


def test_compile_prints_the_summary_and_csim_and_sim_are_bit_exact(folder, tmp_path, capsys):
    model = qe.brevitas_mlp(folder, scales="float", per_channel=True)
    out = tmp_path / "brevitas"
    assert main(["compile", str(model.path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "quantized model:" in printed and "proven exact" in printed
    assert main(["csim", str(out), "--vectors", "200"]) == 0
    assert main(["sim", str(out), "--vectors", "100"]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_qdq_model_csim_and_sim_are_bit_exact(folder, tmp_path):
    model = qe.ort_qdq_mlp(folder)
    out = tmp_path / "qdq"
    assert main(["compile", str(model.path), "-o", str(out)]) == 0
    assert main(["csim", str(out), "--vectors", "200"]) == 0
    assert main(["sim", str(out), "--vectors", "100"]) == 0


# --- the Brevitas ESPCN (4/8-bit per-channel weights, non-power-of-two scales, BatchNorm after
# quantized convolutions, a float input, DepthToSpace) ---------------------------------------

ESPCN = SHARED / "espcn_subpixel_qonnx.onnx"
# its inputs are k/255 in float32: 28 fractional bits hold every one exactly
ESPCN_PLAN = {"tensors": {"x.7": "ufixed<28,0,RND_CONV,SAT>"}}


def _espcn_crop(folder: Path, size: int) -> Path:
    """The same model on a size x size input (convolutions and DepthToSpace do not care)."""
    import onnx

    model = onnx.load(ESPCN)
    for value, scale in ((model.graph.input[0], 1), (model.graph.output[0], 2)):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value = dims[3].dim_value = size * scale
    del model.graph.value_info[:]
    path = folder / f"espcn_{size}.onnx"
    onnx.save(model, path)
    return path


def test_espcn_every_quantizer_output_equals_the_exact_model(folder):
    """On a 16x16 crop of its sample, every quantized activation equals the exact model (the
    BatchNorm shifts, rounded 12 bits below each value's own 24 significant bits, move none)."""
    from compiler.emulate import quantize_inputs, run

    path = _espcn_crop(folder, 16)
    x = np.load(SHARED / "espcn_subpixel_qonnx.io.npz")["input"][:, :, 40:56, 40:56]
    project = compile_model(path, parse_plan(ESPCN_PLAN, folder))
    values = run(project.graph, quantize_inputs(project.graph, x))
    exact = qr.run(path, x, keep_all=True)
    for name in ("x.3", "x.12", "x.20", "79"):
        t = project.graph.tensor(name)
        scale = t.model_scale if t.model_scale is not None else 1.0
        ours = values[name].to_float() * (scale if name == "79" else 1.0)
        ref = exact[name].float64()
        if name != "79":  # an inner quantizer output is held over its residual scale
            ratio = ref[ours != 0] / ours[ours != 0]
            ours = ours * (ratio[0] if ratio.size else 1.0)
            assert np.allclose(ratio, ratio[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_espcn_streams_with_one_multiplier_per_channel(folder, tmp_path, capsys):
    """After its first conv and ReLU, two padded corners of one channel are 0 on every input, and
    their accumulator's grid differs from the channel's other pixels. They take the channel's
    multiplier (0 times any multiplier is 0), so every rescale constant is one value per channel
    and the io_stream project and the stream RTL are written: C simulation and Verilator equal the
    emulator bit for bit on an 8x8 crop of the sample. Before, the corners split the constant per
    pixel and the stream architecture refused the model. The RTL's output leaves one beat per
    pixel of Conv_41's 12 channels, in the DepthToSpace's order (stream_reorder.py: its ReLU and
    quantizer run before it), where a tail collected the frame before."""
    path = _espcn_crop(folder, 8)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(ESPCN_PLAN))
    out = tmp_path / "out"
    assert main(["compile", str(path), "--plan", str(plan), "--arch", "stream", "--backend", "hls,rtl",
                 "-o", str(out)]) == 0
    graph = load_project(out).graph
    rescales = [t for t in graph.tensors.values() if t.scheme is not None and "rescale" in t.scheme]
    assert rescales and all(len(t.shape) < 3 or t.shape[-2:] == (1, 1) for t in rescales)
    corners = [c for t in rescales for c in t.scheme["rescale"]["choices"] if c["range"] == [0, 0]]
    assert not corners  # a constant-zero element chose no multiplier of its own
    sample = np.load(SHARED / "espcn_subpixel_qonnx.io.npz")["input"]
    x = sample[:, :, 40:48, 40:48]
    np.save(tmp_path / "x.npy", x)
    # the RTL's view: the ending's ReLU and quantizer before the DepthToSpace, the same outputs
    moved = sink_reorders(graph)
    assert [n.name for n in moved.nodes][-6:] == ["Relu_43", "Quant_47.rescale", "Quant_47.quantize",
                                                   "DepthToSpace_42.blocks", "DepthToSpace_42.move", "DepthToSpace_42"]
    inputs = np.concatenate([x, sample[:, :, 0:8, 100:108], csim_vectors(graph, 3)["x.7"]])
    before, after = (run(g, quantize_inputs(g, inputs))["79"] for g in (graph, moved))
    assert np.array_equal(before.m, after.m) and before.frac == after.frac
    capsys.readouterr()
    assert main(["csim", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    assert "bit-exact" in capsys.readouterr().out
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert (schedule["outputs"][0]["beats"], schedule["outputs"][0]["lanes"]) == (64, 12)
    assert [e["name"] for e in schedule["engines"]][-3:] == ["Relu_43", "Quant_47_rescale", "Quant_47_quantize"]
    assert main(["sim", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_unknown_elements_keep_a_constant_compact():
    """fill_unknown (choose_multipliers' elements that are 0 on every input, whose multiplier does
    not matter): they take the code their line already holds, so the constant compacts as far as
    the known elements allow, and no further."""
    from compiler.passes.quant_data import compact, fill_unknown

    codes = np.empty((3, 4, 4), dtype=np.int64)
    codes[...] = np.arange(3)[:, None, None]  # one value per channel
    unknown = np.zeros((3, 4, 4), dtype=bool)
    unknown[1, 0, 0] = unknown[1, 3, 0] = unknown[2, :, 3] = True
    filled = fill_unknown(np.where(unknown, -1, codes))
    assert compact(filled).shape == (3, 1, 1) and compact(filled).ravel().tolist() == [0, 1, 2]
    # a constant that varies along the width keeps its width; an unknown element never joins two values
    codes[0, :, 1] = 5
    filled = fill_unknown(np.where(unknown, -1, codes))
    assert compact(filled).shape == (3, 1, 4)
    assert (filled[~unknown] == codes[~unknown]).all()
    # a channel with nothing known takes some code; nothing known at all gives multipliers of 0
    # (choose_multipliers' _per_element, the one caller)
    unknown[2] = True
    assert compact(fill_unknown(np.where(unknown, -1, codes))).shape[0] == 3
    from compiler.passes.choose_multipliers import _per_element

    assert set(_per_element([Fraction(1, 8)], np.full((3, 4, 4), -1)).ravel()) == {Fraction(0)}


@pytest.mark.slow
def test_espcn_reproduces_its_reference_output():
    """The whole 128x128 model (about 80 s): equal to the exact model on every one of its
    196,608 outputs; qonnx's recorded float32 output is one code off at 11 of them, where
    float32 tipped a tie the exact value does not reach."""
    io = np.load(SHARED / "espcn_subpixel_qonnx.io.npz")
    project = compile_model(ESPCN, parse_plan(ESPCN_PLAN, SHARED))
    ours = project.emulate(io["input"])
    exact = qr.run_output(ESPCN, io["input"]).float64()
    np.testing.assert_array_equal(ours, exact)
    code = 1 / 255
    qonnx_off = np.abs(io["output"].astype(np.float64) - ours) / code
    assert qonnx_off.max() < 1.001 and np.mean(qonnx_off > 0.5) < 1e-4  # float32 output values


def test_leaky_relu_alpha_rounding_counts_in_the_bound(folder):
    """x (Quant, 5 bits, scale 1) -> LeakyRelu(alpha = float32 1/3, 24 significant bits) -> y:
    the IR rounds alpha to 18 significant bits, so the output is not exact. report.json says so
    and bounds the difference by |alpha' - alpha| times the largest |x| (16), which x = -16 reaches."""
    from onnx import TensorProto, helper, numpy_helper

    alpha = np.float32(1 / 3)
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [("s", 1.0), ("z", 0.0), ("b", 5.0)]]
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=qm.QONNX_DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("LeakyRelu", ["xq"], ["y"], alpha=float(alpha))]
    graph = helper.make_graph(nodes, "leaky_alpha", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    path = folder / "leaky_alpha.onnx"
    qm._save(graph, path, qm.QONNX_DOMAIN)
    project = compile_model(path, None)
    promised = project.quantization()["outputs"]["y"]
    assert not promised["exact"]
    x = np.arange(-16, 16, dtype=np.float32).reshape(-1, 1)
    graph = project.graph
    out = emulate_exact(graph, x)[graph.outputs[0]]
    ours = [Fraction(int(m)) * Fraction(2) ** -out.frac for m in np.asarray(out.m).ravel()]
    exact = [Fraction(int(v)) * (Fraction(float(alpha)) if v < 0 else 1) for v in x.ravel()]
    off = [abs(a - b) for a, b in zip(ours, exact)]
    bound = Fraction(promised["max_error"])  # a float64: within 2**-40 of itself
    assert bound * (1 - Fraction(1, 2 ** 40)) <= max(off) == off[0] <= bound * (1 + Fraction(1, 2 ** 40))
