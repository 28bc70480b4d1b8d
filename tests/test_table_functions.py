"""The elementwise functions built as look-up tables (the TABLE op, compiler/table_functions.py):
Sigmoid, Tanh, HardSigmoid, HardSwish, Softplus, Softsign, Elu and Selu, anywhere in a network.

* Each formula against onnxruntime on a dense grid, with non-default attributes: within the
  allowance `error_bound` gives a float32 runtime (``RUNTIME_ULPS``), which these measurements
  justify.
* One table per model, every input code of its table: ``|emulate - onnxruntime| <= error_bound``,
  and the bound is reached (the entries' rounding is the whole error on the grid).
* A network exported by torch with seven of them between its layers, within the bound; one
  network with all eight through csim (g++) and Verilator, bit for bit; a convolutional one
  through the stream architecture.
* Quantized models (QONNX) with a function between quantizers: within the bound report.json
  gives against the exact reference (tests/quant_reference.py), which says the table is not
  exact.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main
from compiler.error_bound import EPS32, RUNTIME_ULPS, error_bound
from compiler.fixed import FixedType, Rounding
from compiler.fuzz.reference import function_value
from compiler.ir import Op
from compiler.plan import DEFAULT_TABLES, parse_plan
from compiler.table_functions import BY_ONNX_OP, evaluate
from tests import quant_models as qm
from tests.test_float_reference import assert_within_bound, compile_quietly, onnxruntime_run

OPS = sorted(BY_ONNX_OP)
# attributes unlike ONNX's defaults, so that a translator that ignored them would be caught
ATTRIBUTES = {"HardSigmoid": {"alpha": 0.3, "beta": 0.45}, "Elu": {"alpha": 0.7}, "Selu": {"alpha": 1.5, "gamma": 1.2}}


def _one_op(path: Path, op: str, n: int, opset: int = 17) -> Path:
    node = helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_node", **ATTRIBUTES.get(op, {}))
    graph = helper.make_graph([node], f"one_{op.lower()}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def _params(op: str) -> dict:
    function = BY_ONNX_OP[op]
    given = ATTRIBUTES.get(op, {})
    return {k: float(np.float32(given.get(k, v))) for k, v in function.params.items()}


@pytest.mark.parametrize("op", OPS)
def test_formula_matches_onnxruntime_within_the_runtime_allowance(op, tmp_path):
    """onnxruntime's float32 function is within RUNTIME_ULPS * 2**-24 * max(|f|, 1) of the
    formula (measured here: at most 4.3 units, tanh; a wrong formula or attribute is off by far more)."""
    x = np.concatenate([np.linspace(-40, 40, 160_001), np.linspace(-1e-3, 1e-3, 2_001)]).astype(np.float32)
    model = _one_op(tmp_path / "m.onnx", op, x.size)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    runtime = session.run(None, {"x": x.reshape(1, -1)})[0].reshape(-1).astype(np.float64)
    exact = evaluate(BY_ONNX_OP[op].name, _params(op), x.astype(np.float64))
    ulps = np.abs(runtime - exact) / (EPS32 * np.maximum(np.abs(exact), 1.0))
    assert ulps.max() <= RUNTIME_ULPS, (op, float(ulps.max()), float(x[np.argmax(ulps)]))


@pytest.mark.parametrize("op", OPS)
def test_every_table_code_within_the_bound_and_the_bound_is_reached(op, tmp_path):
    """Inputs on every code of the table's input format (and beyond its range, where it
    saturates): the emulated table is within error_bound of onnxruntime, and on the grid
    the bound is what the entries' rounding gives, reached within the runtime's allowance."""
    function = BY_ONNX_OP[op]
    t_in = parse_plan({}, Path(".")).table_type(f"{function.name}_input")
    codes = np.arange(t_in.min_mantissa, t_in.max_mantissa + 1)
    beyond = np.array([-100.0, -9.5, 9.5, 100.0])
    x = np.concatenate([np.ldexp(codes.astype(np.float64), -t_in.frac_bits), beyond]).reshape(1, -1)
    model = _one_op(tmp_path / "m.onnx", op, x.shape[1])
    wide = FixedType(24, 8)  # the input converts exactly onto the table's grid
    project = compile_quietly(model, {"defaults": {"input": str(wide)}})
    node = next(n for n in project.graph.nodes if n.op == Op.TABLE)
    assert node.attrs["function"] == function.name and node.attrs["params"] == _params(op)
    emulated = project.emulate(x)
    reference = onnxruntime_run(model, x)
    bound = error_bound(project.graph, x)[project.graph.outputs[0]]
    assert_within_bound(emulated, reference, bound, op)
    on_grid = slice(0, codes.size)
    diff = np.abs(emulated - reference.astype(np.float64))[0, on_grid]
    out_lsb = 2.0 ** -FixedType.parse(DEFAULT_TABLES[f"{function.name}_output"]).frac_bits
    assert diff.max() > 0.3 * out_lsb  # the entries are rounded: up to half a step off (HardSigmoid: 0.4)
    assert diff.max() >= bound[0, on_grid].max() - (RUNTIME_ULPS + 1) * EPS32 * max(1.0, np.abs(reference).max())


class _Seven(torch.nn.Module):
    """8 inputs, one small layer per function (torch exports each as its ONNX op), concatenated
    into two more layers."""

    ACTS = (torch.nn.Sigmoid(), torch.nn.Tanh(), torch.nn.Hardsigmoid(), torch.nn.Hardswish(),
            torch.nn.Softplus(), torch.nn.ELU(0.7), torch.nn.SELU())

    def __init__(self):
        super().__init__()
        self.branches = torch.nn.ModuleList(torch.nn.Linear(8, 3) for _ in self.ACTS)
        self.fc2 = torch.nn.Linear(3 * len(self.ACTS), 12)
        self.fc3 = torch.nn.Linear(12, 4)

    def forward(self, x):
        h = torch.cat([act(2.0 * branch(x)) for act, branch in zip(self.ACTS, self.branches)], dim=1)
        return self.fc3(torch.relu(self.fc2(h)))


def test_torch_network_with_seven_functions_within_the_bound(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "seven.onnx"
    torch.onnx.export(_Seven().eval(), torch.randn(1, 8), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False, opset_version=17)
    assert {"Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softplus", "Elu", "Selu"} <= {
        n.op_type for n in onnx.load(path).graph.node}
    plan = {"defaults": {"input": "fixed<12,4,RND_CONV,SAT>", "weight": "fixed<10,2,RND_CONV,SAT>",
                         "bias": "fixed<12,3,RND_CONV,SAT>", "activation": "fixed<16,6,RND_CONV,SAT>"}}
    project = compile_quietly(path, plan)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1.5, (300, 8)), rng.uniform(-7.9, 7.9, (100, 8))])
    emulated = project.emulate(x)
    reference = onnxruntime_run(path, x)
    bound = error_bound(project.graph, x)["y"]
    assert_within_bound(emulated, reference, bound, "seven functions")
    spread = reference.max(axis=1) - reference.min(axis=1)
    assert np.median(bound) < 0.1 * np.median(spread)  # useful: a wrong function would not hide in it


def _all_eight(path: Path) -> Path:
    """x[6] -> one Gemm per function -> the function -> Concat -> Gemm -> Relu -> Gemm: every
    table between layers, each with its attributes."""
    rng = np.random.default_rng(5)
    inits, nodes, outs = [], [], []
    for op in OPS:
        w, b = f"{op.lower()}.weight", f"{op.lower()}.bias"
        inits += [numpy_helper.from_array((rng.normal(size=(2, 6)) * 1.5).astype(np.float32), w),
                  numpy_helper.from_array(rng.normal(size=2).astype(np.float32), b)]
        nodes += [helper.make_node("Gemm", ["x", w, b], [f"{op.lower()}_in"], name=f"{op.lower()}_fc", transB=1),
                  helper.make_node(op, [f"{op.lower()}_in"], [f"{op.lower()}_out"], name=op.lower(),
                                   **ATTRIBUTES.get(op, {}))]
        outs.append(f"{op.lower()}_out")
    inits += [numpy_helper.from_array(rng.normal(size=(5, 2 * len(OPS))).astype(np.float32), "fc2.weight"),
              numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "fc2.bias"),
              numpy_helper.from_array(rng.normal(size=(3, 5)).astype(np.float32), "fc3.weight"),
              numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "fc3.bias")]
    nodes += [helper.make_node("Concat", outs, ["h"], name="concat", axis=1),
              helper.make_node("Gemm", ["h", "fc2.weight", "fc2.bias"], ["h2"], name="fc2", transB=1),
              helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
              helper.make_node("Gemm", ["r2", "fc3.weight", "fc3.bias"], ["y"], name="fc3", transB=1)]
    graph = helper.make_graph(nodes, "all_eight", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_all_eight_functions_bit_exact_in_csim_and_sim(tmp_path):
    """Narrow tables (6-bit inputs: one of them signed with a coarse grid, one unsigned) and the
    default ones, through g++ and Verilator against the emulator."""
    model = _all_eight(tmp_path / "all_eight.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "defaults": {"input": "fixed<10,3,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                     "bias": "fixed<10,3,RND_CONV,SAT>", "activation": "fixed<12,5,RND_CONV,SAT>"},
        "tables": {"tanh_input": "fixed<6,2,RND,SAT>", "elu_input": "ufixed<6,3,TRN,SAT>",
                   "selu_output": "fixed<9,3,TRN,WRAP>"},
        "tensors": {"hardswish_out": "fixed<8,3,RND_CONV,SAT>"}}))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0
    assert report["sim"]["latency_cycles"] == report["sim"]["predicted_latency_cycles"]
    sv = (out / "rtl" / "all_eight.sv").read_text()
    assert all(f"{op.lower()}" in sv for op in OPS)  # each table named after its layer


def test_tables_between_convolutions_through_the_stream_architecture(tmp_path):
    """Tanh and HardSwish between convolutions, a Sigmoid at the end: the HLS io_stream project
    (csim) and the stream RTL (Verilator, latency and II as predicted)."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Tanh(), torch.nn.Conv2d(3, 2, 3),
                              torch.nn.Hardswish(), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3),
                              torch.nn.Sigmoid())
    path = tmp_path / "conv_tables.onnx"
    torch.onnx.export(net.eval(), torch.randn(1, 1, 8, 8), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False, opset_version=17)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                                             "bias": "fixed<8,2,RND_CONV,SAT>",
                                             "activation": "fixed<10,4,RND_CONV,SAT>"}}))
    out = tmp_path / "out"
    assert main(["compile", str(path), "--plan", str(plan), "-o", str(out), "--arch", "stream"]) == 0
    assert "hls::stream" in (out / "hls" / "firmware" / "conv_tables.cpp").read_text()  # HLS io_stream
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out), "--vectors", "40"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0
    sim = report["sim"]
    assert sim["mismatches"] == 0 and sim["vectors"] >= 40 and sim["architecture"] == "stream"
    assert (sim["latency_cycles"], sim["ii_cycles"]) == (sim["predicted_latency_cycles"], sim["predicted_ii_cycles"])


# --- quantized models --------------------------------------------------------------------------


def _quantized(path: Path, op: str, out_scale: float) -> Path:
    """x -> Quant(1/16) -> MatMul(W: Quant 1/64) -> Quant(1/32) -> op -> Quant(out_scale, 8 bits)
    -> MatMul(W2: Quant 1/64) -> Quant(0.37): the function between two quantizers, as Brevitas's
    QuantTanh / QuantSigmoid export."""
    rng = np.random.default_rng(7)
    dom = qm.QONNX_DOMAIN
    quant = dict(domain=dom, signed=1, narrow=0, rounding_mode="ROUND")
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_x", 1 / 16), ("s_w", 1 / 64), ("s_a", 1 / 32), ("s_t", out_scale), ("s_y", 0.37), ("z", 0.0),
        ("b8", 8.0)]]
    inits += [numpy_helper.from_array((rng.normal(size=(6, 5)) * 0.6).astype(np.float32), "W"),
              numpy_helper.from_array((rng.normal(size=(5, 3)) * 0.6).astype(np.float32), "W2")]
    nodes = [helper.make_node("Quant", ["x", "s_x", "z", "b8"], ["xq"], **quant),
             helper.make_node("Quant", ["W", "s_w", "z", "b8"], ["wq"], **quant),
             helper.make_node("MatMul", ["xq", "wq"], ["acc"]),
             helper.make_node("Quant", ["acc", "s_a", "z", "b8"], ["aq"], **quant),
             helper.make_node(op, ["aq"], ["t"], name="act", **ATTRIBUTES.get(op, {})),
             helper.make_node("Quant", ["t", "s_t", "z", "b8"], ["tq"], **quant),
             helper.make_node("Quant", ["W2", "s_w", "z", "b8"], ["w2q"], **quant),
             helper.make_node("MatMul", ["tq", "w2q"], ["acc2"]),
             helper.make_node("Quant", ["acc2", "s_y", "z", "b8"], ["y"], **quant)]
    graph = helper.make_graph(nodes, f"quant_{op.lower()}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    qm._save(graph, path, dom)
    return path


@pytest.mark.parametrize("out_scale", [1 / 64, 0.011], ids=["pow2", "non_pow2"])
@pytest.mark.parametrize("op", OPS)
def test_quantized_function_is_exact(op, out_scale, tmp_path):
    """The model's quantizer after the function: the table's entries are its codes of the real
    function, rounded once, so the model is exact, and said so. A power-of-two scale: the
    table rounds into the quantizer's format. Another scale: the table takes over the
    rescale (no multiplier is left), where a table and then the rescale rounded twice (one
    code off, Softplus reached it)."""
    from tests.test_quant_compile import codes_off

    path = _quantized(tmp_path / "m.onnx", op, out_scale)
    rng = np.random.default_rng(0)
    x = (np.round(rng.uniform(-128, 127, (400, 6))) / 16).astype(np.float32)
    project = compiler.compile_model(str(path), None)
    table = next(n for n in project.graph.nodes if n.op == Op.TABLE).attrs["table"]
    report = project.quantization()
    entry = report["outputs"][project.graph.outputs[0]]
    off = codes_off(project, path, x)
    assert entry["exact"] and report["exact"] and off.max() == 0
    assert table.output.width == 8  # the quantizer's codes, not a 16-bit table and a rescale
    if out_scale != 1 / 64:
        assert "rescale" in next(n for n in project.graph.nodes if n.op == Op.TABLE).attrs
        assert [n.op for n in project.graph.nodes].count(Op.MUL) == 1  # the second layer's rescale only


def test_trunc_right_after_a_table_is_refused_naming_the_table(tmp_path, capsys):
    """A Trunc's first rounding has no clamp: its width comes from the range the quantizers give
    its input, and a table's range is the plan's (its tables), not the model's: refused, exit 2,
    the message naming the table's node and how to fix it."""
    dom = qm.QONNX_DOMAIN
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_x", 1 / 16), ("z", 0.0), ("b8", 8.0), ("s_t", 2.0 ** -6), ("b10", 10.0), ("b6", 6.0)]]
    nodes = [helper.make_node("Quant", ["x", "s_x", "z", "b8"], ["xq"], domain=dom, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("Tanh", ["xq"], ["t"], name="squash"),
             helper.make_node("Trunc", ["t", "s_t", "z", "b10", "b6"], ["y"], name="trunc", domain=dom,
                              rounding_mode="FLOOR")]
    graph = helper.make_graph(nodes, "tanh_trunc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    path = tmp_path / "tanh_trunc.onnx"
    qm._save(graph, path, dom)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "node 'trunc' (Trunc)" in err and "node 'squash' (tanh)" in err and "put a Quant before the Trunc" in err
    assert not out.exists()


def test_the_plan_page_lists_every_function_with_its_defaults():
    """docs/bit-plan.md's table of functions: one row per ONNX op, with its keys' defaults."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "bit-plan.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")}
    for op, function in BY_ONNX_OP.items():
        row = rows[op]
        assert f"`{function.name}_input`: `{function.default_input}`" in row, op
        assert f"`{function.name}_output`: `{function.default_output}`" in row, op
        assert f"`{function.summary}`" in row, op


def _round(v: Fraction, out: FixedType) -> int:
    scaled = v * Fraction(2) ** out.frac_bits
    low = scaled.numerator // scaled.denominator
    if out.rounding == Rounding.TRN:
        m = low
    elif out.rounding == Rounding.CEIL:
        m = low + (scaled != low)
    else:  # RND_CONV
        rest = scaled - low
        m = low + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2 == 1))
    return min(max(m, out.min_mantissa), out.max_mantissa)


@pytest.mark.parametrize("op", OPS)
def test_entries_are_the_function_rounded_once_even_where_float64_is_off(op, monkeypatch):
    """Every entry equals the real function at its code rounded once into the output format
    (the fuzzer's reference computes it, apart from table_functions.py), for three rounding
    modes, also when float64 is off by up to 2**-42 of the value (numpy's error is a few units
    of 2**-53) on the wrong side of every rounding boundary it is that close to: the entries
    float64 leaves in doubt are computed exactly or to 60 digits. (Seven of the eight functions
    have entries exactly on a boundary, such as tanh(0) = 0 under TRN: without that, they
    fail.)"""
    from compiler import table_functions
    from compiler.passes.apply_plan import function_table

    function = BY_ONNX_OP[op].name
    plan = parse_plan({"tables": {f"{function}_input": "fixed<9,4,TRN,SAT>"}}, Path("."))
    real = table_functions.evaluate
    outs = [FixedType.parse(f) for f in ("fixed<9,3,RND_CONV,SAT>", "fixed<10,3,TRN,SAT>", "fixed<8,2,CEIL,SAT>")]
    for out in outs:
        # the rounding changes at multiples of the step (TRN, CEIL) or at odd half steps (RND_CONV)
        step = 2.0 ** -out.frac_bits

        def pushed(name, params, x, step=step, half=out.rounding == Rounding.RND_CONV):
            y = real(name, params, x)
            boundary = (np.floor(y / step) + 0.5) * step if half else np.round(y / step) * step
            near = np.abs(y - boundary) <= 2.0 ** -42 * np.maximum(np.abs(y), 1.0)
            across = boundary + np.where(y <= boundary, 1.0, -1.0) * 2.0 ** -44 * np.maximum(np.abs(y), 1.0)
            return np.where(near, across, y)

        for evaluate_ in (real, pushed):
            monkeypatch.setattr(table_functions, "evaluate", evaluate_)
            table = function_table(plan, function, _params(op), out)
            t_in = table.input
            expected = [_round(function_value(op, _params(op), Fraction(c, 2 ** t_in.frac_bits)), out)
                        for c in range(t_in.min_mantissa, t_in.max_mantissa + 1)]
            assert table.values.tolist() == expected, (op, str(out), evaluate_.__name__)


@pytest.mark.parametrize("quantize", [False, True], ids=["plan", "quantized"])
def test_the_fuzz_reference_covers_every_function(quantize, tmp_path):
    """The fuzzer's exact reference (compiler/fuzz/reference.py, written apart from the compiler)
    computes each function: a plan's table in plain cases, the model's function in quantized
    ones. For each function, the first seed whose case draws it and is referenced passes."""
    from compiler.fuzz.check import Written, prepare_case
    from compiler.fuzz.generate import random_case
    from compiler.fuzz.quant import quantized

    seeds = [5, 11, 13, 18, 44, 53, 62, 100] if not quantize else [11, 65, 44, 100, 81, 82, 87, 214]
    functions = set()
    for seed in seeds:
        case = quantized(random_case(seed)) if quantize else random_case(seed)
        functions |= {layer["function"] for layer in case["layers"] if layer["op"] == "table"}
        outcome = prepare_case(case, tmp_path / str(seed), ("compile", "emulate", "reference"))
        outcome = outcome.conclude(None) if isinstance(outcome, Written) else outcome
        assert outcome.status == "pass" and "reference" in outcome.levels, (seed, outcome)
    assert functions == set(OPS)


def test_a_table_output_wider_than_its_entries_can_be_is_refused(tmp_path, capsys):
    """A table's output format is its entries' (at most 64 bits): a wider `tensors` entry was an
    OverflowError traceback (found by the fuzzer, seed 9641029482); now a plan error, exit 2."""
    model = _one_op(tmp_path / "m.onnx", "Elu", 5)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<16,-3,RND_CONV,SAT>"},
                                "tensors": {"y": "fixed<69,0,RND,SAT_SYM>"}}))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "tensor 'y'" in err and "69 bits wide" in err and "at most 64 bits" in err and "Traceback" not in err
    assert not out.exists()
    plan.write_text(json.dumps({"defaults": {"input": "fixed<16,-3,RND_CONV,SAT>"},
                                "tensors": {"y": "fixed<64,0,RND,SAT_SYM>"}}))
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0


def _qdq_tanh(path: Path) -> Path:
    """onnxruntime's QDQ form of a Tanh: int8 in, int8 weights, the Tanh between
    Dequantize/Quantize pairs, its output uint8 at scale 2/255 with zero point 128 (a scale
    that is not a power of two and a zero point: the table takes over both)."""
    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in [
        ("s_x", 1 / 16), ("s_w", 1 / 64), ("s_a", 0.043), ("s_t", 2 / 255)]]
    inits += [numpy_helper.from_array(np.array(0, dtype=np.int8), "z8"),
              numpy_helper.from_array(np.array(128, dtype=np.uint8), "z_t"),
              numpy_helper.from_array(np.round(rng.normal(size=(6, 5)) * 40).astype(np.int8), "W")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z8"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_x", "z8"], ["xd"]),
             helper.make_node("DequantizeLinear", ["W", "s_w", "z8"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["a"], name="fc"),
             helper.make_node("QuantizeLinear", ["a", "s_a", "z8"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s_a", "z8"], ["ad"]),
             helper.make_node("Tanh", ["ad"], ["t"], name="act"),
             helper.make_node("QuantizeLinear", ["t", "s_t", "z_t"], ["tq"]),
             helper.make_node("DequantizeLinear", ["tq", "s_t", "z_t"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_qdq_tanh_with_a_zero_point_is_exact_in_csim_and_sim(tmp_path):
    from tests.test_quant_compile import codes_off

    path = _qdq_tanh(tmp_path / "qdq_tanh.onnx")
    rng = np.random.default_rng(1)
    x = (np.round(rng.uniform(-128, 127, (300, 6))) / 16).astype(np.float32)
    project = compiler.compile_model(str(path), None)
    table = next(n for n in project.graph.nodes if n.op == Op.TABLE)
    # one table from the int8 codes of 'ad' to the uint8 codes of 'y' (as signed codes): 256
    # entries of tanh(code * 0.043) / (2/255) rounded once; no multiplier on either side
    assert table.attrs["table"].input.width == 8 and table.attrs["table"].output.width == 8
    assert "input_scale" in table.attrs and "rescale" in table.attrs
    assert [n.op for n in project.graph.nodes] == [Op.DENSE, Op.MUL, Op.REQUANTIZE, Op.TABLE]
    off, report = codes_off(project, path, x), project.quantization()
    entry = report["outputs"][project.graph.outputs[0]]
    assert entry["quantized"] and entry["exact"] and off.max() == 0
    out = tmp_path / "out"
    assert main(["compile", str(path), "-o", str(out)]) == 0
    line = next(t for t in (out / "ir.txt").read_text().splitlines() if "= tanh(ad)" in t)
    assert re.search(r"rescale=\{offset=-?\d+, scale=\d+/\d+\}", line) and "Fraction" not in line, line
    assert main(["csim", str(out)]) == 0 and main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["mismatches"] == 0 and report["sim"]["mismatches"] == 0


def test_a_plan_that_widens_the_codes_gives_the_table_its_input_format(tmp_path):
    """A plan entry that makes the codes a table reads 16 bits wide (beyond TABLE_CODE_BITS):
    the table takes the plan's tanh_input format (1,024 entries), not 65,536 entries."""
    path = _qdq_tanh(tmp_path / "qdq_tanh.onnx")
    project = compiler.compile_model(str(path), {"tensors": {"ad": "fixed<16,5,RND_CONV,SAT>"}})
    table = next(n for n in project.graph.nodes if n.op == Op.TABLE).attrs["table"]
    assert table.input == parse_plan({}, Path(".")).table_type("tanh_input") and table.values.size == 1024
