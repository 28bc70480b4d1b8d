"""A quantizer's clamp range that differs between channels of an activation (per-channel zero
points, or per-channel scales of different powers of two with a zero point or an unsigned
narrow range): lower_quant makes it one CLIP whose bounds hold a value per channel, and the
emulator, g++ (parallel and io_stream HLS) and Verilator (parallel and stream RTL) agree with
qonnx's executor on inputs that reach both bounds of every channel.  The dense cases
('per_channel_zero_points', 'per_channel_narrow_scales') are in quant_models.HAND_CASES, run by
test_quant_import and test_quant_compile."""

from __future__ import annotations

import os

import numpy as np
import pytest

from compiler.cli import main
from compiler.ir import Op
from compiler.project import compile_model
from tests import quant_models as qm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return qm.hand_qonnx_conv(tmp_path_factory.mktemp("quant_clamp"))


@pytest.fixture(autouse=True)
def _shared_verilator_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FINEGRAIN_RTL_BUILD_DIR", os.environ.get("FINEGRAIN_RTL_BUILD_DIR")
                       or str(tmp_path_factory.getbasetemp() / "rtl_build"))


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
