"""A Mul of two activations (a gate): SiLU's ``x * sigmoid(x)``, a GLU's ``a * tanh(b)``, a
square.  torch exports each as an ONNX Mul of two tensors; the IR keeps it as MUL with two
activation inputs, an exact product (size_widths: the extremes at the four corners; a square
is never negative).  Tested: against onnxruntime within error_bound's derived bound, bit for
bit through g++ and Verilator in the parallel and stream architectures, a quantized model
(QONNX, non-power-of-two scales) against the exact reference with the codes multiplied and the
scales carried on, and the fuzzer's gate layers against its exact reference.
"""

from __future__ import annotations

import json
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main
from compiler.error_bound import error_bound
from compiler.ir import Op
from tests import quant_models as qm
from tests.test_float_reference import assert_within_bound, compile_quietly, onnxruntime_run

# wide enough that nothing saturates on the test inputs: the float bound then stays small
PLAN = {"defaults": {"input": "fixed<10,3,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                     "bias": "fixed<10,3,RND_CONV,SAT>", "activation": "fixed<18,8,RND_CONV,SAT>"}}


class _Gated(torch.nn.Module):
    """SiLU on one layer, a tanh gate from a second layer of the input, and a square."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.gate = torch.nn.Linear(6, 8)
        self.fc2 = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(h)  # SiLU, as torch writes it
        h = h * torch.tanh(self.gate(x))
        return self.fc2(h * h)


class _GatedCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 3, 3)
        self.c2 = torch.nn.Conv2d(3, 2, 3)

    def forward(self, x):
        h = self.c1(x)
        return self.c2(torch.nn.functional.silu(h))


class _SqueezeExcite(torch.nn.Module):
    """A squeeze-and-excitation block: h * sigmoid(fc(mean(h))), the scale [C, 1, 1] broadcast
    over [C, H, W]."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 3, 3)
        self.fc = torch.nn.Conv2d(3, 3, 1)
        self.c2 = torch.nn.Conv2d(3, 2, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        return self.c2(h * torch.sigmoid(self.fc(torch.nn.functional.adaptive_avg_pool2d(h, 1))))


def _export(model: torch.nn.Module, shape, path: Path) -> Path:
    torch.manual_seed(1)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.4)
    torch.onnx.export(model.eval(), torch.randn(1, *shape), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False, opset_version=17)
    return path


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> Path:
    return _export(_Gated(), (6,), tmp_path_factory.mktemp("gates") / "gated.onnx")


def test_torch_gates_import_as_products_of_two_activations(gated):
    assert sum(n.op_type == "Mul" for n in onnx.load(gated).graph.node) == 3
    project = compile_quietly(gated, PLAN)
    muls = [n for n in project.graph.nodes if n.op == Op.MUL]
    assert len(muls) == 3 and not any(project.graph.tensor(i).is_constant for n in muls for i in n.inputs)
    square = next(n for n in muls if n.inputs[0] == n.inputs[1])
    y, a = project.graph.tensor(square.outputs[0]), project.graph.tensor(square.inputs[0])
    assert not y.formats.signed.any()  # x * x: no sign bit, and its range is exactly the square's

    def values(t, k):
        return [Fraction(int(m)) / 2 ** int(f) for m, f in zip(t.bounds[k].ravel(), t.formats.frac_bits.ravel())]

    a_lo, a_hi, y_lo, y_hi = values(a, 0), values(a, 1), values(y, 0), values(y, 1)
    assert y_hi == [max(lo * lo, hi * hi) for lo, hi in zip(a_lo, a_hi)]
    assert y_lo == [0 if lo <= 0 <= hi else min(lo * lo, hi * hi) for lo, hi in zip(a_lo, a_hi)]


def test_gates_within_the_float_bound(gated):
    project = compile_quietly(gated, PLAN)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.0, (400, 6))
    emulated, reference = project.emulate(x), onnxruntime_run(gated, x)
    bound = error_bound(project.graph, x)["y"]
    assert_within_bound(emulated, reference, bound, "gates")
    spread = reference.max(axis=1) - reference.min(axis=1)
    assert np.median(bound) < 0.1 * np.median(spread)  # a wrong product would not hide in it
    # the bound is not loose: the plan's 6 fraction bits of activations show in the outputs
    assert np.abs(emulated - reference).max() > 0.05 * bound.max()


def test_gates_bit_exact_in_csim_and_sim(gated, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    out = tmp_path / "out"
    assert main(["compile", str(gated), "--plan", str(plan), "-o", str(out)]) == 0
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0
    assert report["sim"]["latency_cycles"] == report["sim"]["predicted_latency_cycles"]
    sv = next((out / "rtl").glob("*.sv")).read_text()
    assert "$signed(" in sv and " * $signed(" in sv  # one multiplier per element
    hls = "".join(p.read_text() for p in (out / "hls" / "firmware").glob("*.cpp"))
    assert "finegrain::mul<" in hls


def test_silu_between_convolutions_through_the_stream_architecture(tmp_path):
    model = _export(_GatedCNN(), (1, 8, 8), tmp_path / "silu_cnn.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "--arch", "stream", "-o", str(out)]) == 0
    hls = "".join(p.read_text() for p in (out / "hls" / "firmware").glob("*.cpp"))
    assert "(mul, pixel layer)" in hls  # io_stream multiplies pixel by pixel as both streams arrive
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0


def _quantized_glu(path: Path) -> Path:
    """x -> Quant(1/16) -> MatMul W1, W2 (Quant 1/64) -> Quant(0.043), Quant(0.029) -> Mul ->
    Quant(0.37): a gate between quantizers whose scales are not powers of two."""
    rng = np.random.default_rng(4)
    quant = dict(domain=qm.QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND")
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_x", 1 / 16), ("s_w", 1 / 64), ("s_a", 0.043), ("s_b", 0.029), ("s_y", 0.37), ("z", 0.0), ("b8", 8.0)]]
    inits += [numpy_helper.from_array((rng.normal(size=(6, 5)) * 0.6).astype(np.float32), n) for n in ("W1", "W2")]
    nodes = [helper.make_node("Quant", ["x", "s_x", "z", "b8"], ["xq"], **quant),
             helper.make_node("Quant", ["W1", "s_w", "z", "b8"], ["w1q"], **quant),
             helper.make_node("Quant", ["W2", "s_w", "z", "b8"], ["w2q"], **quant),
             helper.make_node("MatMul", ["xq", "w1q"], ["a"]),
             helper.make_node("MatMul", ["xq", "w2q"], ["b"]),
             helper.make_node("Quant", ["a", "s_a", "z", "b8"], ["aq"], **quant),
             helper.make_node("Quant", ["b", "s_b", "z", "b8"], ["bq"], **quant),
             helper.make_node("Mul", ["aq", "bq"], ["g"], name="gate"),
             helper.make_node("Quant", ["g", "s_y", "z", "b8"], ["y"], **quant)]
    graph = helper.make_graph(nodes, "quant_glu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    qm._save(graph, path, qm.QONNX_DOMAIN)
    return path


def test_quantized_gate_multiplies_codes_and_is_exact(tmp_path):
    from tests.test_quant_compile import codes_off

    path = _quantized_glu(tmp_path / "glu.onnx")
    project = compiler.compile_model(str(path), None)
    gate = next(n for n in project.graph.nodes if n.op == Op.MUL and n.name == "gate")
    # the two quantizers' 8-bit codes meet in the product (no multiply into model values before
    # it, as lower_quant does where float64 cannot hold the scales' product); the scales go on
    # to the output's rescale
    assert gate.inputs == ("aq", "bq")
    assert [int(project.graph.tensor(i).formats.width.max()) for i in gate.inputs] == [8, 8]
    assert not any(n.name.endswith(".residual") for n in project.graph.nodes)
    rng = np.random.default_rng(0)
    x = (np.round(rng.uniform(-128, 127, (400, 6))) / 16).astype(np.float32)
    assert codes_off(project, path, x).max() == 0
    assert project.quantization()["exact"]


@pytest.mark.parametrize("quantize", [False, True], ids=["plain", "quantized"])
def test_fuzz_gate_layers_match_the_exact_reference(quantize):
    from compiler.fuzz.check import run_case
    from compiler.fuzz.generate import has_gate, is_referenced, random_case
    from compiler.fuzz.quant import quantized

    cases = [quantized(random_case(s)) if quantize else random_case(s) for s in range(80)]
    cases = [c for c in cases if is_referenced(c) and has_gate(c)][:4]  # (the excitations: the test below)
    assert len(cases) == 4
    checked = 0
    for case in cases:
        with tempfile.TemporaryDirectory() as d:
            outcome = run_case(case, Path(d), ("reference",))
        assert outcome.status != "fail", f"seed {case['seed']}: {outcome.check}: {outcome.message}"
        checked += outcome.status == "pass" and "reference" in outcome.levels
    assert checked >= 3  # a documented limit may refuse one; a refused product would refuse them all


def _excitations(quantize: bool, count: int) -> list[dict]:
    """The first fuzz cases with a squeeze-and-excitation: a product (or sum) of a value and a
    per-channel function of its global pool, broadcast over the positions."""
    from compiler.fuzz.generate import has_excitation, is_referenced, random_case
    from compiler.fuzz.quant import quantized

    found = []
    for seed in range(400):
        case = random_case(seed)
        if has_excitation(case):
            case = quantized(case) if quantize else case
            if is_referenced(case):
                found.append(case)
        if len(found) == count:
            return found
    raise AssertionError(f"fewer than {count} excitation cases among the first 400 seeds")


@pytest.mark.parametrize("quantize", [False, True], ids=["plain", "quantized"])
def test_fuzz_excitations_match_the_exact_reference(quantize):
    """The fuzzer's excitations against the exact reference; the first plain one also through
    g++ and Verilator (the HLS index maps and the RTL's broadcasting, on random formats)."""
    from compiler.fuzz.check import run_case

    checked = 0
    for k, case in enumerate(_excitations(quantize, 3)):
        levels = ("reference", "csim", "sim") if k == 0 and not quantize else ("reference",)
        with tempfile.TemporaryDirectory() as d:
            outcome = run_case(case, Path(d), levels)
        assert outcome.status != "fail", f"seed {case['seed']}: {outcome.check}: {outcome.message}"
        checked += outcome.status == "pass" and set(levels) <= set(outcome.levels)
    assert checked >= 2  # a documented limit may refuse one (a per-channel clamp, say)


def test_squeeze_excite_broadcast_bit_exact_in_csim_and_sim(tmp_path):
    """The scale [C, 1, 1] times [C, H, W]: io_parallel reads each product's operands by index
    maps (mul_indexed), the RTL by the same broadcasting."""
    model = _export(_SqueezeExcite(), (1, 6, 6), tmp_path / "se.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    assert "finegrain::mul_indexed<" in "".join(p.read_text() for p in (out / "hls" / "firmware").glob("*.cpp"))
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0
