"""The RTL backend on plans whose exact sizing knows more than the formats say (issue 11):
every plan the emulator accepts gets RTL, simulated bit-exact on Verilator.

size_widths gives each exact tensor the fraction of the terms that can reach it, from the
exact bounds of every element.  An element the bounds pin to 0 (a quantized element fed by
weights that all round to 0) or to one sign (a signed format after a relu) adds no bits
there, so the RTL backend must not build a wire or branch for what cannot happen: it did,
and stopped on "term K of output N has bits below the accumulator's fraction" or the
leaky-relu form; a clip whose bounds cover the input's whole range was refused as a
constant.  One model holds all three (one Verilator build, cached under build/rtl_sim).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def _vec(name: str, n: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", n])


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _known_bits_model(folder: Path) -> tuple[Path, Path]:
    """* fc1's row 1 has weights that round to 0 (LSB 2^-6), so h[1] (quantized by the plan)
      is always 0, and fc2's accumulator does not hold the 2^-6 weight's bits on it;
    * r = relu(x) quantized to a signed format never is negative, so leaky's output does not
      hold alpha's fraction;
    * clip to [5, 6] of an input that never reaches 2 is the constant 5."""
    w1 = [[0.5, -0.25], [0.003, -0.002], [1.0, 0.75]]
    w2 = [[0.5, 0.015625, -1.0]]
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
             helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1),
             helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("LeakyRelu", ["r"], ["leaky"], name="leaky", alpha=0.1),
             helper.make_node("Clip", ["x", "lo", "hi"], ["clipped"], name="clip")]
    graph = helper.make_graph(nodes, "known_bits", [_vec("x", 2)],
                              [_vec("y", 1), _vec("leaky", 2), _vec("clipped", 2)],
                              [_const("w1", w1), _const("w2", w2), _const("lo", 5.0), _const("hi", 6.0)])
    model = folder / "known_bits.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plan = folder / "plan.json"
    plan.write_text(json.dumps({
        "defaults": {"input": "fixed<8,2,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                     "bias": "fixed<8,3>", "activation": None},
        "tensors": {"h": "fixed<8,3,RND_CONV,SAT>", "r": "fixed<8,3,RND_CONV,SAT>"}}))
    return model, plan


def test_elements_the_bounds_fix_get_rtl_bit_exact(tmp_path, capsys):
    model, plan = _known_bits_model(tmp_path)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    assert "no RTL written" not in capsys.readouterr().err
    assert main(["sim", str(out), "--vectors", "300"]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report["vectors"] == 305 and report["mismatches"] == 0


def test_a_failure_inside_the_rtl_backend_leaves_the_rtl_out_with_a_warning(tmp_path, capsys, monkeypatch):
    """The safety net: a defect in the backend (here a pretend one in the dense builder) is an
    RTLBackendError naming the node, found before any folder is written; the default backends
    still write the HLS project, and --backend rtl exits 2 with one paragraph, no traceback."""
    from compiler.backends.rtl.adders import GraphSums

    def broken(self):
        raise IndexError("pretend defect")

    monkeypatch.setattr(GraphSums, "emit", broken)
    model, plan = _known_bits_model(tmp_path)
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "a")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no RTL written" in err and "'fc1'" in err and "pretend defect" in err
    assert (tmp_path / "a" / "hls").is_dir() and not (tmp_path / "a" / "rtl").exists()
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "b"), "--backend", "rtl"]) == 2
    err = capsys.readouterr().err
    assert "'fc1'" in err and "--backend hls" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def _tables_model(folder: Path, bits: int) -> tuple[Path, Path]:
    """A sigmoid and a softmax over one dense layer, every table input ``bits`` wide."""
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"], name="squash"),
             helper.make_node("Softmax", ["h"], ["p"], name="probs", axis=-1)]
    graph = helper.make_graph(nodes, "tables", [_vec("x", 3)], [_vec("s", 4), _vec("p", 4)],
                              [_const("w", np.random.default_rng(1).normal(size=(4, 3)))])
    model = folder / f"tables{bits}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plan = folder / f"tables{bits}.json"
    plan.write_text(json.dumps({
        "defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                     "bias": "fixed<8,3>", "activation": None},
        "tables": {"sigmoid_input": f"fixed<{bits},4,TRN,SAT>", "exp_input": f"fixed<{bits},4,TRN,SAT>",
                   "inv_bits": bits}}))
    return model, plan


def test_largest_tables_build_and_simulate_bit_exact(tmp_path):
    """Tables of 2**RTL_MAX_TABLE_BITS entries: each written once as a function with a line
    per entry (a single literal of a 2**12-entry table was wider than Verilator takes)."""
    from compiler.backends.rtl import RTL_MAX_TABLE_BITS

    model, plan = _tables_model(tmp_path, RTL_MAX_TABLE_BITS)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl"]) == 0
    top = (out / "rtl" / "tables.sv").read_text()
    assert top.count("function automatic") == 3 and top.count(": s_table = ") == 2 ** RTL_MAX_TABLE_BITS
    assert main(["sim", str(out), "--vectors", "300"]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report["vectors"] == 305 and report["mismatches"] == 0


@pytest.mark.parametrize("key", ["sigmoid_input", "exp_input", "inv_bits"])
def test_a_table_past_the_limit_is_a_clear_error_at_compile(key, tmp_path, capsys):
    from compiler.backends.rtl import RTL_MAX_TABLE_BITS

    model, plan = _tables_model(tmp_path, 8)
    wide = RTL_MAX_TABLE_BITS + 1
    entries = json.loads(plan.read_text())
    entries["tables"][key] = wide if key == "inv_bits" else f"fixed<{wide},4,TRN,SAT>"
    plan.write_text(json.dumps(entries))
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "a"), "--backend", "rtl"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    node = "squash" if key == "sigmoid_input" else "probs"
    assert f"'{node}'" in err and f"'{key}'" in err and f"at most {RTL_MAX_TABLE_BITS} bits" in err
    assert not (tmp_path / "a").exists()
    # the default backends: the HLS project, and a warning saying why there is no RTL
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "hls").is_dir() and not (tmp_path / "b" / "rtl").exists()
    assert "no RTL written" in capsys.readouterr().err
    # and its report has no estimate, with the reason (an RTL the backend cannot build has none)
    assert main(["report", str(tmp_path / "b")]) == 0
    assert f"no resource estimate: node '{node}'" in " ".join(capsys.readouterr().out.split())


def _wide_model(folder: Path, input_format: str) -> tuple[Path, Path]:
    """Constants hundreds of bits apart in scale (weights, bias, an added constant, a scale),
    in 960-bit formats, into a 1024-bit output: accumulators of ~1,900 bits."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Add", ["h", "c"], ["s"], name="shift"),
             helper.make_node("Mul", ["s", "k"], ["y"], name="scale")]
    graph = helper.make_graph(nodes, "wide", [_vec("x", 2)], [_vec("y", 3)],
                              [_const("w", [[1.5e-30, -3.25e20], [7.0e25, 1.0e-35], [-0.3, 0.7]]),
                               _const("b", [3.0e30, -1.25e-30, 0.1]), _const("c", [1.0e-37, 2.0e37, -5.0]),
                               _const("k", [1.0e-20, -3.0e20, 0.333])])
    model = folder / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plan = folder / "wide.json"
    plan.write_text(json.dumps({
        "defaults": {"input": input_format, "weight": "fixed<960,480,RND_CONV,SAT>",
                     "bias": "fixed<960,300,RND_CONV,SAT>", "activation": None},
        "tensors": {"y": "fixed<1024,600,RND_CONV,SAT>"}}))
    return model, plan


def test_wide_constants_and_accumulators_bit_exact(tmp_path):
    """Every constant goes through one literal helper (rtl.emitter._literal) at any width: here
    literals of over 600 bits and wires of over 1,800, bit-exact on Verilator."""
    model, plan = _wide_model(tmp_path, "fixed<400,200,RND_CONV,SAT>")
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl"]) == 0
    top = (out / "rtl" / "wide.sv").read_text()
    assert max(int(w) for w in re.findall(r"(\d+)'h", top)) > 600
    assert max(int(w) for w in re.findall(r"logic \[(\d+):0\]", top)) > 1800
    assert main(["sim", str(out), "--vectors", "300"]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report["vectors"] == 305 and report["mismatches"] == 0


def test_an_accumulator_past_1024_bits_is_a_clear_error(tmp_path, capsys):
    """An exact tensor wider than any format finegrain holds was a FormatError traceback
    from size_widths."""
    model, plan = _wide_model(tmp_path, "fixed<960,480,RND_CONV,SAT>")
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "node 'fc', tensor 'h'" in err and "more than the 1024 bits" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
