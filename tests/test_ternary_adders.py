"""Three-term adders in the RTL adder graphs (the default; ``--no-ternary-adders`` for two-term
adders only; issue 14): compiler/adder_graph.py's ``ternary`` and rtl/fg_add3.sv.

* ``ternary`` on hypothesis' random problems (tests/test_adder_graph.py's): the folded graph
  computes the same outputs on random and corner inputs, every node keeps its level (the
  pipeline), every adder adds at most three terms with at most two of them negated, and every
  three-term adder replaced one two-term adder (the adders fall by at least the three-term
  count: a fold whose two constants add up leaves two terms);
* fg_add3 in Verilator against Python integers, on both carry chains (CARRY8, CARRY4), every
  sign combination, copied low bits, widths across the chain primitives' boundaries, random and
  extreme operands; the primitive models are rtl/xilinx/ (written here, not yosys's);
* fg_add3 in yosys synth_xilinx: one LUT6_2 per bit above the copied bits, ceil(bits / 8)
  CARRY8 (UltraScale+) or ceil(bits / 4) CARRY4 (7-series), nothing else;
* compiled models: the per-weight-bits example (CARRY8) and the dense edge-case model on a
  7-series part (CARRY4) simulated bit-exact with the predicted latency, with fewer adders than
  and the same cycles as two-term graphs (``--no-ternary-adders``), the conv per-op model in the
  stream architecture too; the per-weight-bits example's estimate against yosys (5% LUT, 10% FF,
  the adder-graph bands); the per-weight-bits example in Icarus on both chains.  Every other
  example's default build, simulated by tests/test_rtl_adder_graph.py and
  tests/test_rtl_examples.py, has three-term adders too.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.test_rtl_adder_graph as rag
from compiler.adder_graph import AdderGraph, ternary
from compiler.backends.rtl import LIBRARY
from compiler.cli import main
from compiler.verify.synth import run_synth
from tests.test_adder_graph import check_product, inputs_to_try, problems, solved
from tests.test_rtl_examples import EXAMPLES
from tests.test_rtl_library import require_yosys

try:  # inside the simulator, cocotb is the point; under plain pytest it may be absent
    import cocotb
    from cocotb.triggers import Timer
except ImportError:  # pragma: no cover
    cocotb = None

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "rtl_sim"
TEST_MODULE = Path(__file__).stem


# --- the fold ------------------------------------------------------------------------------


def _terms(node) -> list[bool]:
    """Whether each term of ``node`` is negated (a constant is a positive term)."""
    return [neg for _, _, neg in node.operands] + ([False] if node.const else [])


@settings(max_examples=300)
@given(problems(), st.integers(0, 2**32))
def test_fold_keeps_every_output(problem, seed):
    _, graph = solved(problem)
    folded = ternary(graph)
    check_product(problem, folded, seed)
    for x in inputs_to_try(problem[3], seed + 1):
        assert folded.evaluate(x) == graph.evaluate(x)


def _three_term(graph: AdderGraph) -> int:
    return sum(1 for n in graph.nodes[graph.n_inputs:] if n.is_adder and len(_terms(n)) == 3)


@settings(max_examples=300)
@given(problems())
def test_fold_saves_one_adder_per_three_term_adder_and_keeps_the_levels(problem):
    _, graph = solved(problem)
    folded = ternary(graph)
    three = _three_term(folded)
    assert folded.adders <= graph.adders - three  # less when two folded constants add up to one
    assert folded.depth == graph.depth
    kept = iter(graph.nodes)  # the folded graph's nodes are the graph's less the folded ones, unchanged
    for node in folded.nodes:
        assert any((o.lo, o.hi, o.width, o.signed, o.level) == (node.lo, node.hi, node.width, node.signed, node.level)
                   for o in kept)
        if node.is_adder:
            signs = _terms(node)
            assert len(signs) <= 3 and sum(signs) <= 2
            assert len(signs) < 3 or not all(signs)
            assert node.level >= 1 + max((folded.nodes[s].level for s, _, _ in node.operands), default=-1)


def test_fold_takes_the_wider_of_two_candidates():
    """``u = t + z``, ``t = x + y`` (wide) and ``z = p + q`` (narrow), each read once: ``u``
    takes ``t``, the one whose adder costs more LUTs."""
    rows = [[(0, 1, 0), (1, 1, 0), (2, 1, 0), (3, 1, 0)]]
    ranges = [(0, 2**15 - 1), (0, 2**15 - 1), (0, 3), (0, 3)]
    _, graph = solved((rows, 4, [0], ranges, [None], None))
    folded = ternary(graph)
    assert graph.adders == 3 and folded.adders == 2
    top = folded.nodes[folded.outputs[0][0]]
    assert sorted(s for s, _, _ in top.operands)[:2] == [0, 1]


# --- fg_add3 in Verilator --------------------------------------------------------------------

ADD3_CASES = [(chain, w, lo, nb, nc) for chain in (8, 4) for w, lo in ((1, 0), (5, 0), (9, 2), (17, 0), (24, 7))
              for nb in (0, 1) for nc in (0, 1)]


def _add3_bench() -> str:
    ports, body = [], []
    for k, (chain, w, lo, nb, nc) in enumerate(ADD3_CASES):
        ports += [f"input logic [{w - 1}:0] a{k}", f"input logic [{w - lo - 1}:0] b{k}",
                  f"input logic [{w - lo - 1}:0] c{k}", f"output logic [{w - 1}:0] y{k}"]
        body.append(f"    fg_add3 #(.W({w}), .LO({lo}), .NEG_B({nb}), .NEG_C({nc}), .CHAIN({chain})) u{k} "
                    f"(.a(a{k}), .b(b{k}), .c(c{k}), .y(y{k}));")
    return "module tb_add3 (\n    " + ",\n    ".join(ports) + "\n);\n" + "\n".join(body) + "\nendmodule\n"


def _operands(w: int, lo: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Extremes (0, 1, all ones, the top bit alone) in every combination, then random bits."""
    extremes = sorted({0, 1 % (1 << w), (1 << w) - 1, 1 << (w - 1)})
    out = [(a, b >> lo, c >> lo) for a in extremes for b in extremes for c in extremes]
    return out + [(rng.getrandbits(w), rng.getrandbits(w - lo), rng.getrandbits(w - lo)) for _ in range(300)]


if cocotb is not None:

    @cocotb.test()
    async def add3_cases(dut):
        """Every case's instance on its operands; y against the integer sum modulo 2**W."""
        with open(os.environ["FINEGRAIN_ADD3_CASES"]) as f:
            cases = json.load(f)
        rng = random.Random(14)
        wrong = []
        for k, (_, w, lo, nb, nc) in enumerate(cases):
            a_h, b_h, c_h, y_h = (getattr(dut, f"{p}{k}") for p in "abcy")
            for a, b, c in _operands(w, lo, rng):
                a_h.value, b_h.value, c_h.value = a, b, c
                await Timer(1, "ns")
                want = (a + ((-b if nb else b) << lo) + ((-c if nc else c) << lo)) % (1 << w)
                if int(y_h.value) != want:
                    wrong.append((k, a, b, c, int(y_h.value), want))
        assert not wrong, f"{len(wrong)} wrong sums, first (case, a, b, c, y, want): {wrong[:3]}"


IMPLEMENTATIONS = {"primitives": [*sorted((LIBRARY / "xilinx").glob("*.v")), LIBRARY / "fg_add3.sv"],
                   "model": [LIBRARY / "sim" / "fg_add3.sv"]}


@pytest.mark.parametrize("implementation", sorted(IMPLEMENTATIONS))
def test_fg_add3_against_integers(tmp_path, implementation):
    """Both files of fg_add3: as built (LUT6_2 + CARRY models) and its simulation model."""
    from sim import runner

    bench = tmp_path / "tb_add3.sv"
    bench.write_text(_add3_bench())
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(ADD3_CASES))
    built = runner.build([*IMPLEMENTATIONS[implementation], bench], "tb_add3", BUILD_ROOT)
    results = runner.run_tests(built, TEST_MODULE, test_dir=tmp_path / "run", python_path=[Path(__file__).parent],
                               extra_env={"FINEGRAIN_ADD3_CASES": str(spec)})
    assert results.ok, results.summary()


def test_simulation_model_equals_the_primitives_by_sat(tmp_path):
    """yosys proves rtl/sim/fg_add3.sv equal to rtl/fg_add3.sv (over rtl/xilinx's primitive
    models) on every input, for every sign, both chains and widths across the chain blocks."""
    require_yosys()
    for name, path in (("impl", LIBRARY / "fg_add3.sv"), ("model", LIBRARY / "sim" / "fg_add3.sv")):
        (tmp_path / f"{name}.sv").write_text(path.read_text().replace("module fg_add3 ", f"module fg_add3_{name} "))
    cases = [(chain, w, lo, nb, nc) for chain in (8, 4) for w, lo in ((1, 0), (9, 2), (17, 0), (26, 7))
             for nb in (0, 1) for nc in (0, 1)]
    tops = []
    for k, (chain, w, lo, nb, nc) in enumerate(cases):
        params = f"#(.W({w}), .LO({lo}), .NEG_B({nb}), .NEG_C({nc}), .CHAIN({chain}))"
        tops.append(f"module eq{k} (input logic [{w - 1}:0] a, input logic [{w - lo - 1}:0] b, c, output logic ok);\n"
                    f"    logic [{w - 1}:0] y_impl, y_model;\n"
                    f"    fg_add3_impl {params} u_impl (.a, .b, .c, .y(y_impl));\n"
                    f"    fg_add3_model {params} u_model (.a, .b, .c, .y(y_model));\n"
                    "    assign ok = y_impl == y_model;\nendmodule\n")
    (tmp_path / "tops.sv").write_text("".join(tops))
    files = " ".join(str(p) for p in [tmp_path / "impl.sv", tmp_path / "model.sv", tmp_path / "tops.sv",
                                      *sorted((LIBRARY / "xilinx").glob("*.v"))])
    script = [f"read_verilog -sv {files}", "design -save base"]
    for k in range(len(cases)):
        script += ["design -load base", f"hierarchy -top eq{k}", "proc", "flatten", "opt_clean",
                   f"tee -o {tmp_path / f'eq{k}.txt'} sat -prove ok 1 -verify"]
    done = subprocess.run(["yosys", "-q", "-p", "; ".join(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    for k in range(len(cases)):
        assert "SUCCESS!" in (tmp_path / f"eq{k}.txt").read_text(), cases[k]


def test_simulation_model_lints_clean():
    from sim import runner

    runner.lint([LIBRARY / "sim" / "fg_add3.sv"], top="fg_add3")


# --- fg_add3 in yosys ---------------------------------------------------------------------------


@pytest.mark.parametrize("family, chain, w, lo", [("xcup", 8, 16, 0), ("xcup", 8, 19, 3), ("xc7", 4, 14, 5)])
def test_fg_add3_is_one_lut_per_bit(tmp_path, family, chain, w, lo):
    top = tmp_path / "add3_top.sv"
    top.write_text(f"module add3_top (input logic [{w - 1}:0] a, input logic [{w - lo - 1}:0] b, c,\n"
                   f"                 output logic [{w - 1}:0] y);\n"
                   f"    fg_add3 #(.W({w}), .LO({lo}), .NEG_B(1), .NEG_C(0), .CHAIN({chain})) u (.a, .b, .c, .y);\n"
                   "endmodule\n")
    result = run_synth([LIBRARY / "fg_add3.sv", top], "add3_top", family, use_cache=False)
    carry = "CARRY8" if chain == 8 else "CARRY4"
    assert result.cells == {"LUT6_2": w - lo, carry: -(-(w - lo) // chain)}, result.cells


# --- compiled models --------------------------------------------------------------------------


def _fewer_adders_same_cycles(model: Path, plan: Path, folder: Path, *options: str) -> Path:
    ternary_out = rag._compile(model, plan, folder / "ternary", *options)
    binary_out = rag._compile(model, plan, folder / "binary", "--no-ternary-adders", *options)
    t, b = (json.loads((o / "rtl" / "schedule.json").read_text()) for o in (ternary_out, binary_out))
    assert t["latency_cycles"] == b["latency_cycles"]
    assert "fg_add3" not in "".join(p.read_text() for p in (binary_out / "rtl").glob("*.sv"))
    t_adders = sum(layer.get("adders", 0) for layer in t["layers"])
    b_adders = sum(layer.get("adders", 0) for layer in b["layers"])
    assert 0 < t_adders < b_adders, (t_adders, b_adders)
    assert "fg_add3" in "".join(p.read_text() for p in (ternary_out / "rtl").glob("*.sv"))
    return ternary_out


@pytest.mark.slow
@pytest.mark.usefixtures("shared_rtl_builds")
def test_per_weight_bits_example_bit_exact_and_estimated(tmp_path):
    folder = EXAMPLES / "per_weight_bits"
    out = _fewer_adders_same_cycles(folder / "model.onnx", folder / "plan.json", tmp_path)
    rag._sim_bit_exact_with_predicted_latency(out, seed=5)
    rag._sim_bit_exact_with_predicted_latency(out, seed=5, primitives=True)
    assert main(["report", str(out), "--synth"]) == 0
    report = json.loads((out / "report.json").read_text())
    est, synth = report["estimate"], report["synth"]
    assert abs(est["lut"] / synth["lut"] - 1) <= 0.05 and abs(est["ff"] / synth["ff"] - 1) <= 0.10, (est, synth)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_rtl_builds")
def test_dense_edge_cases_on_carry4_bit_exact(tmp_path, monkeypatch):
    model, plan = rag._per_op_model("dense_edge_cases", tmp_path, monkeypatch)
    out = _fewer_adders_same_cycles(model, plan, tmp_path, "--part", "xc7a200tsbg484-1")
    assert "CHAIN(4)" in (out / "rtl" / "edges.sv").read_text()
    rag._sim_bit_exact_with_predicted_latency(out, seed=6)
    rag._sim_bit_exact_with_predicted_latency(out, seed=6, primitives=True)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_rtl_builds")
def test_conv_in_the_stream_architecture_bit_exact(tmp_path, monkeypatch):
    model, plan = rag._per_op_model("conv2d_bias_relu", tmp_path, monkeypatch)
    out = rag._compile(model, plan, tmp_path / "stream", "--arch", "stream")
    assert "fg_add3" in "".join(p.read_text() for p in (out / "rtl").glob("*.sv"))
    assert main(["sim", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["sim"]["mismatches"] == 0


def test_no_three_term_adders_without_the_adder_graph(tmp_path):
    folder = EXAMPLES / "per_weight_bits"
    out = rag._compile(folder / "model.onnx", folder / "plan.json", tmp_path / "out", "--no-adder-graph")
    text = (out / "rtl" / "per_weight_bits.sv").read_text()
    assert "fg_adder_tree" in text and "fg_add3" not in text


@pytest.mark.parametrize("part, chain", [("xcvu9p-flga2104-2L-e", 8), ("xc7z020clg400-1", 4)])
def test_icarus_simulates_the_primitive_models(tmp_path, part, chain):
    """`finegrain sim --simulator icarus --primitives` (make tools installs iverilog): Icarus reads
    the primitive models too."""
    folder = EXAMPLES / "per_weight_bits"
    out = rag._compile(folder / "model.onnx", folder / "plan.json", tmp_path / "out", "--part", part)
    assert f".CHAIN({chain})" in (out / "rtl" / "per_weight_bits.sv").read_text()
    assert main(["sim", str(out), "--simulator", "icarus", "--vectors", "100", "--primitives"]) == 0
    assert json.loads((out / "report.json").read_text())["sim"]["mismatches"] == 0
