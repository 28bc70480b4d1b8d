"""HLS C++ numerics end to end (issue 11): comparisons across signedness and widths, constants
wider than 63 bits, values wider than ap_int's default 1024 bits, and the clear error beyond
ap_int's own limit.  Each model is compiled with --backend hls and run through g++ csim,
bit for bit against the emulator."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compiler.argnames import command_line
from compiler.backends.hls_types import HLSBackendError, constant_entry, container
from compiler.cli import main
from compiler.fixed import FixedType, Formats

ROOT = Path(__file__).resolve().parents[1]


def _compile(model: Path, plan: dict, out: Path) -> None:
    (out.parent / "plan.json").write_text(json.dumps(plan))
    assert main(["compile", str(model), "--plan", str(out.parent / "plan.json"), "-o", str(out),
                 "--backend", "hls"]) == 0


def _csim_exact(out: Path) -> None:
    assert main(["csim", str(out), "--vectors", "500"]) == 0
    report = json.loads((out / "report.json").read_text())["csim"]
    assert report["mismatches"] == 0 and report["vectors"] == 505


def _typedefs(out: Path) -> dict:
    """C type name -> ap type text, from the generated defines.h."""
    lines = (out / "hls" / "firmware" / "defines.h").read_text().splitlines()
    return {line.split()[-1].rstrip(";"): line.split()[1] for line in
            (ln.split("//")[0].strip() for ln in lines) if line.startswith("typedef")}


@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (-2.0, 2.0)])
def test_hardtanh_after_a_wide_linear_keeps_negative_outputs(tmp_path, bounds):
    """torch Linear + Hardtanh with exact activations: the clip compares a 35-bit signed
    accumulator with negative integer bits against an unsigned upper bound.  ap_fixed's own
    comparison said every negative value was above the bound (csim gave 0 or the bound)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Hardtanh(*bounds))
    path = tmp_path / "hardtanh.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, 4), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    out = tmp_path / "out"
    _compile(path, {"defaults": {"input": "fixed<24,-1>", "weight": "fixed<10,0>", "bias": "fixed<12,-1>",
                                 "activation": None}}, out)
    types = _typedefs(out)
    accumulator = next(t for name, t in types.items() if "Gemm_output" in name)
    upper = [t for name, t in types.items() if "Constant" in name and t.startswith("ap_ufixed")]
    assert accumulator.startswith("ap_fixed<3") and upper, (accumulator, types)  # the mixed, >32-bit case
    _csim_exact(out)


def _wide_model(path: Path) -> Path:
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "fc1.weight"),
             numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "fc1.bias"),
             numpy_helper.from_array(rng.normal(size=(2, 4)).astype(np.float32) / 2, "fc2.weight"),
             numpy_helper.from_array(rng.normal(size=2).astype(np.float32), "fc2.bias")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("LeakyRelu", ["h"], ["h_act"], name="act1", alpha=0.1),
             helper.make_node("Gemm", ["h_act", "fc2.weight", "fc2.bias"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_constants_of_64_to_960_bits_csim_bit_exact(tmp_path):
    """Weights per row of 64, 65, 200 and 960 bits, a 130-bit weight, biases of 960 bits (one
    with 900 integer bits), and a bias whose elements' formats span 1450 bits (500 integer
    bits in one, 950 fraction bits in another): every constant is written exactly (64-bit
    words), and the containers and accumulators over ap_int's default 1024 bits get
    AP_INT_MAX_W."""
    out = tmp_path / "out"
    _compile(_wide_model(tmp_path / "wide.onnx"), {
        "defaults": {"input": "fixed<16,6,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                     "bias": "fixed<16,6,RND_CONV,SAT>", "activation": None},
        "tensors": {"fc1.weight": {"axis": 0, "formats": ["fixed<64,2,RND_CONV,SAT>", "fixed<65,3,RND_CONV,SAT>",
                                                          "fixed<200,4,RND_CONV,SAT>", "fixed<960,2,RND_CONV,SAT>"]},
                    "fc1.bias": {"axis": 0, "formats": ["fixed<600,500,RND_CONV,SAT>", "fixed<600,-90,RND_CONV,SAT>",
                                                        "fixed<960,10,RND_CONV,SAT>", "fixed<8,3>"]},
                    "h_act": "fixed<300,8,RND_CONV,SAT>",
                    "fc2.weight": "fixed<130,1,RND,SAT>", "fc2.bias": "fixed<960,900,RND,SAT>"}}, out)
    firmware = out / "hls" / "firmware"
    assert "unsigned long long fc2_bias_mantissas[2][15]" in (firmware / "weights" / "fc2_bias.h").read_text()
    assert "#define AP_INT_MAX_W 2048" in (firmware / "defines.h").read_text()
    assert _typedefs(out)["fc1_bias_t"] == "ap_fixed<1450,500>"
    _csim_exact(out)


def test_jet_tagger_with_wide_formats_csim_bit_exact(tmp_path):
    """100-bit inputs, 70-bit weights and a 300-bit hidden activation: products of 400+ bits
    whose factors have long runs of one bits, where ap_int's own multi-word multiplication
    loses a carry (csim was off in the low ~60 bits of most logits before finegrain::multiply)."""
    out = tmp_path / "out"
    _compile(ROOT / "examples" / "jet_tagger" / "model.onnx", {
        "defaults": {"input": "fixed<100,5,RND_CONV,SAT>", "weight": "fixed<70,2,RND_CONV,SAT>",
                     "bias": "fixed<16,3,RND,SAT>", "activation": None},
        "tensors": {"/relu1/Relu_output_0": "ufixed<300,4,RND_CONV,SAT>"}}, out)
    _csim_exact(out)


def test_scalar_constants_beyond_64_bits_csim_bit_exact(tmp_path):
    """A Clip to [0, FLT_MAX] (an export's "no upper bound") and a LeakyRelu with alpha 1e20:
    one-element constants whose mantissas pass 2**63.  The HLS backend stopped with an
    internal OverflowError (mantissa.rescale on a 0-d array made a bare int that np.where
    turned into int64); the RTL backend built them."""
    big = float(np.finfo(np.float32).max)
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="clip"),
             helper.make_node("LeakyRelu", ["x"], ["l"], name="leaky", alpha=1e20),
             helper.make_node("Concat", ["c", "l"], ["y"], name="join", axis=1)]
    graph = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                              [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                               numpy_helper.from_array(np.array(big, np.float32), "hi")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "huge.onnx")
    out = tmp_path / "out"
    _compile(tmp_path / "huge.onnx", {"defaults": {"input": "fixed<8,2>", "weight": "fixed<8,2>", "bias": "fixed<8,2>",
                                                   "activation": None}}, out)
    _csim_exact(out)


@pytest.mark.parametrize("mantissa", [0, 1, -1, 2 ** 63, -(2 ** 63), 2 ** 64 - 1, -(2 ** 99), 2 ** 99 - 1])
def test_wide_constant_words_are_the_twos_complement(mantissa):
    entry = constant_entry("c", "c_t", FixedType(100, 3), [mantissa], "constant c")
    words = [int(w.removesuffix("ULL"), 16) for w in entry["values"][0].strip("{}").split(", ")]
    assert entry["words"] == 2 and len(words) == 2
    assert sum(w << (64 * k) for k, w in enumerate(words)) == mantissa % (1 << 128)


def test_narrow_constants_stay_plain_integers():
    entry = constant_entry("c", "c_t", FixedType(63, 3), [-(2 ** 62), 2 ** 62 - 1], "constant c")
    assert entry["words"] is None and entry["values"] == [str(-(2 ** 62)), str(2 ** 62 - 1)]


def test_a_container_beyond_ap_ints_limit_is_a_clear_error():
    formats = Formats.from_types(np.array([FixedType(8, 20000), FixedType(8, -20000)], dtype=object))
    with pytest.raises(HLSBackendError, match=r"tensor 'fc1.bias': .* needs 40008 bits, more than ap_int's 32768"
                       r".* leave 'hls' out of backends to compile"):
        container(formats, "fc1.bias")
    with command_line(), pytest.raises(HLSBackendError, match=r"leave 'hls' out of --backend to compile"):
        container(formats, "fc1.bias")


def _far_requantize(folder: Path, int_bits_in: int, int_bits_out: int) -> tuple[Path, Path]:
    """A Relu requantizing from fraction 8 - int_bits_in to fraction 8 - int_bits_out."""
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    graph = helper.make_graph(nodes, "far", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    model = folder / "far.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": f"fixed<8,{int_bits_in}>"},
                                "tensors": {"y": f"ufixed<8,{int_bits_out},RND,SAT>"}}))
    return model, plan


def test_the_plans_widest_spread_builds_in_csim(tmp_path, capsys):
    """The plan's integer bits stop at -2048..2048 (fixed.MAX_PLAN_INT_BITS), so the widest
    value a kernel builds, a requantization across that whole spread (about 4,100 bits), is
    within ap_int's 32768: it compiles with AP_INT_MAX_W raised, and csim is bit-exact."""
    from compiler.fixed import MAX_PLAN_INT_BITS

    model, plan = _far_requantize(tmp_path, -MAX_PLAN_INT_BITS, MAX_PLAN_INT_BITS)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "hls"]) == 0
    assert "#define AP_INT_MAX_W" in (out / "hls" / "firmware" / "defines.h").read_text()
    assert main(["csim", str(out), "--vectors", "50"]) == 0
    assert json.loads((out / "report.json").read_text())["csim"]["mismatches"] == 0


def test_values_beyond_ap_ints_limit_are_a_clear_error(tmp_path, capsys, monkeypatch):
    """Past ap_int's limit (made small here: the plan's limits keep real models within the
    32768 bits, see above) the error names the ONNX node and the limit, and nothing crashes."""
    import compiler.backends.hls_types as hls_types

    monkeypatch.setattr(hls_types, "AP_INT_LIMIT_W", 2048)
    model, plan = _far_requantize(tmp_path, -2000, 2000)
    code = main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "out"), "--backend", "hls"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "'act'" in err and "2048" in err, err
