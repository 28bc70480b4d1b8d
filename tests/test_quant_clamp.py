"""A quantizer's clamp range that differs between channels of an activation (per-channel zero
points, or per-channel scales of different powers of two with a zero point or an unsigned
narrow range): lower_quant makes it one CLIP whose bounds hold a value per channel, and the
emulator, g++ (parallel and io_stream HLS) and Verilator (parallel and stream RTL) agree with
qonnx's executor on inputs that reach both bounds of every channel; ONNX QDQ with zero points
per axis equals onnxruntime.  The dense cases
('per_channel_zero_points', 'per_channel_narrow_scales') are in quant_models.HAND_CASES, run by
test_quant_import and test_quant_compile."""

from __future__ import annotations


import numpy as np
import onnx
import pytest

from compiler.cli import main
from compiler.ir import Op
from compiler.project import compile_model
from tests import quant_models as qm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return qm.hand_qonnx_conv(tmp_path_factory.mktemp("quant_clamp"))


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def test_a_clamp_per_channel_is_one_clip_with_bounds_per_channel(model):
    project = compile_model(model.path, None)
    clips = [s for n in project.graph.nodes for s in n.stages() if s.op == Op.CLIP]
    assert len(clips) == 1
    low, high = (project.graph.tensor(b) for b in clips[0].inputs[1:])
    # 6-bit unsigned codes 0..63 minus the zero points (10, 20, 0, 34), at scales 1/4, 1/8, 1/2, 1/4
    values = [np.ldexp(np.asarray(t.data, dtype=np.float64), -t.data_frac).ravel() for t in (low, high)]
    assert low.shape == high.shape == (4, 1, 1)
    assert values[0].tolist() == [-2.5, -2.5, 0.0, -8.5] and values[1].tolist() == [13.25, 5.375, 31.5, 7.25]
    np.testing.assert_array_equal(project.emulate(model.inputs), qm.run_qonnx(model))
    # every channel's samples reach both ends of its range (the clamp is exercised, not just built)
    mid = project.trace(model.inputs)["mid"].values
    for c in range(4):
        assert mid[:, c].min() == values[0][c] and mid[:, c].max() == values[1][c], c


@pytest.mark.parametrize("arch", ["parallel", "stream"])
def test_a_clamp_per_channel_is_bit_exact_in_csim_and_sim(model, arch, tmp_path, capsys):
    out = tmp_path / arch
    np.save(tmp_path / "x.npy", model.inputs)
    assert main(["compile", str(model.path), "-o", str(out), "--arch", arch]) == 0
    assert "finegrain::clip_each<" in (out / "hls" / "firmware" / f"{model.name}.cpp").read_text()
    assert main(["csim", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    assert main(["sim", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("bit-exact") == 2, printed


def test_qdq_zero_points_per_axis_on_activations_equal_onnxruntime(tmp_path):
    """ONNX QDQ with one uint8 zero point per feature on the input and per column on a MatMul's
    output (QuantizeLinear/DequantizeLinear with ``axis``): onnxruntime is the reference, on
    inputs beyond both ends of every column's range."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)

    def init(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    inits = [init("s_x", [0.5, 0.25, 0.125, 1.0]), init("z_x", [1, 2, 30, 200], np.uint8),
             init("w_codes", rng.integers(-7, 8, size=(4, 3)), np.int8), init("s_w", 0.25),
             init("s_y", [0.25, 0.5, 0.125]), init("z_y", [128, 10, 240], np.uint8)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["x_q"], axis=1),
             helper.make_node("DequantizeLinear", ["x_q", "s_x", "z_x"], ["x_dq"], axis=1),
             helper.make_node("DequantizeLinear", ["w_codes", "s_w"], ["w"]),
             helper.make_node("MatMul", ["x_dq", "w"], ["h"]),
             helper.make_node("QuantizeLinear", ["h", "s_y", "z_y"], ["h_q"], axis=1),
             helper.make_node("DequantizeLinear", ["h_q", "s_y", "z_y"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "qdq_zero_points_per_axis",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    path = tmp_path / "qdq_zero_points_per_axis.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = (rng.integers(-2400, 2400, size=(600, 4)) / 8.0).astype(np.float32)
    project = compile_model(path, None)
    reference = qm.run_onnxruntime(path, x)
    np.testing.assert_array_equal(project.emulate(x), reference)
    s_y, z_y = np.array([0.25, 0.5, 0.125]), np.array([128, 10, 240])
    assert (reference == s_y * (0 - z_y)).any(axis=0).all() and (reference == s_y * (255 - z_y)).any(axis=0).all()
