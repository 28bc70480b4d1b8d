"""The RTL backend's shared adder graphs (compiler/backends/rtl/adders.py, issue 14) in
Verilator: every example and every per-op model with sums (dense, conv, average pool),
compiled at two depth bounds (the default, within the per-output trees' stages, and
``--adder-slack 0``, each layer at its least depth), simulated bit-exact against the emulator
on random inputs, the sim's five extreme vectors, and random corners (each input element at
its format's least or greatest value), with the latency schedule.json predicts and II 1.

* the small CNN (the largest build, ~50 s) at neither: its default build is the one
  tests/test_rtl_examples.py simulates (the same build cache), and tests/test_timing.py builds
  it at two more clocks (the suite's time goes there);
* a dense layer of edge cases: inputs of eight formats (1 to 16 bits, signed and unsigned),
  a duplicate row, a zero row, a negative-only row, a row of one negative weight, a row that
  is part of another, a wrapping output format;
* the per-op models without sums: their RTL is byte-identical with and without the
  optimiser, so tests/test_rtl.py's simulations cover them;
* structure: the jet tagger's graphs have fewer adders than its per-output trees
  (``--no-adder-graph``), and no layer of any example or per-op model takes more cycles at
  the default bound than with the trees.

Verilator builds are cached under build/rtl_sim (FINEGRAIN_RTL_BUILD_DIR; sim/runner.py keys
them by source contents), shared with tests/test_rtl_examples.py.  On a cold cache the file took
7.5 min on the 2-core machine while other builds ran (the small CNN's build 197 s of it), 37 s
warm.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import tests.test_rtl as per_op
from compiler.backends.rtl import RTLOptions, rtl_context
from compiler.cli import main
from compiler.ir import Op
from compiler.project import compile_model, load_project
from compiler.verify.vectors import csim_vectors, input_extremes
from tests.test_rtl_examples import EXAMPLES
from tests.test_rtl_examples import _examples as examples_but_the_jet_tagger

ROOT = Path(__file__).resolve().parents[1]
SUMS = {Op.DENSE, Op.CONV, Op.AVGPOOL}
RANDOM, CORNERS = 300, 200
SOURCE = {"model": "m", "plan": "p"}


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def _examples() -> dict[str, tuple[Path, Path]]:
    """{"folder/model.onnx": (model, plan)} of every example with a plan, the jet tagger too."""
    jet = EXAMPLES / "jet_tagger"
    return {**examples_but_the_jet_tagger(), "jet_tagger/model.onnx": (jet / "model.onnx", jet / "plan.json")}


def _compile(model: Path, plan: Path, out: Path, *options: str) -> Path:
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl", *options]) == 0
    return out


def _dense_edge_cases(path: Path):
    """A dense layer of the optimiser's edge cases over inputs of eight formats (1 to 16 bits,
    signed and unsigned), its sums wrapped into a narrow output."""
    w = np.array([[0.5, -0.25, 1.75, 0.0, 0.375, -1.0, 0.125, 1.875],
                  [0.5, -0.25, 1.75, 0.0, 0.375, -1.0, 0.125, 1.875],  # a duplicate row
                  [0.0] * 8,  # a zero row
                  [-0.5, -0.75, -1.0, -0.125, -0.25, -1.5, -0.875, -0.625],  # negative weights only
                  [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # one negative weight
                  [0.5, -0.25, 1.75, 0.0, 0.375, -1.0, 0.0, 0.0],  # a part of row 0
                  [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    nodes = [per_op.helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    formats = ["fixed<1,1,TRN,SAT>", "ufixed<1,0,TRN,SAT>", "fixed<12,4,TRN,SAT>", "fixed<2,0,TRN,SAT>",
               "ufixed<9,9,TRN,SAT>", "fixed<6,-1,TRN,SAT>", "ufixed<16,2,TRN,SAT>", "fixed<3,3,TRN,SAT>"]
    return per_op._save(nodes, [per_op._vec("x", 8)], [per_op._vec("y", 7)], [per_op._const("w", w)], path,
                        "edges"), {"x": {"axis": 1, "formats": formats}, "y": "fixed<7,3,TRN,WRAP>"}


MODELS = {**per_op.OP_MODELS, "dense_edge_cases": _dense_edge_cases}


def _per_op_model(op: str, folder: Path, monkeypatch) -> tuple[Path, Path]:
    """tests/test_rtl.py's model ``op`` (or this file's) and its plan, its random weights drawn
    from a fresh generator (the same weights whichever tests ran before)."""
    monkeypatch.setattr(per_op, "RNG", np.random.default_rng(11))
    model, tensors = MODELS[op](folder / "m.onnx")
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"defaults": per_op.DEFAULTS, "tensors": tensors}))
    return model, plan


def _has_sums(out: Path) -> bool:
    graph = load_project(out).graph
    return any(stage.op in SUMS for node in graph.nodes for stage in node.stages())


def _inputs(out: Path, seed: int) -> Path:
    """Random vectors and the sim's five extremes (csim_vectors), then random corners: each
    input element at its least or greatest value, drawn independently."""
    graph = load_project(out).graph
    rng = np.random.default_rng(seed)
    vectors = csim_vectors(graph, RANDOM, seed=seed)
    for name in graph.inputs:
        lo, hi = input_extremes(graph, name)
        corners = np.where(rng.random((CORNERS, *lo.shape)) < 0.5, lo, hi)
        vectors[name] = np.concatenate([vectors[name], corners])
    path = out / "vectors.npz"
    np.savez(path, **vectors)
    return path


def _sim_bit_exact_with_predicted_latency(out: Path, seed: int = 1, primitives: bool = False) -> dict:
    """`finegrain sim` on random, extreme and corner vectors: every bit, the latency and II as
    schedule.json predicts (``primitives``: three-term adders simulated as built).  Returns
    schedule.json."""
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert main(["sim", str(out), "--input", str(_inputs(out, seed)), *(["--primitives"] if primitives else [])]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report == {**report, "vectors": RANDOM + 5 + CORNERS, "mismatches": 0,
                      "latency_cycles": schedule["latency_cycles"], "ii_cycles": 1}
    return schedule


def _adders_and_latency(graph, **options) -> tuple[int, list[int]]:
    """Adders in the parallel RTL's context (each shift-add and graph adder, and N - 1 per
    N-term fg_adder_tree) and each layer's ready cycle (its start + latency: a layer handing its
    values over within a cycle has latency 0 there, and its reader takes the cycle)."""
    context = rtl_context(graph, RTLOptions(**options), SOURCE)
    adders = 0
    for layer in context["layers"]:
        for item in layer["items"]:
            cost = item.get("cost") or {}
            adders += len(cost.get("adders", ())) + max(len(cost.get("term_widths", ())) - 1, 0)
    return adders, [layer["start"] + layer["latency"] for layer in context["layers"]]


def _no_layer_later_than_the_trees(out: Path) -> None:
    graph = load_project(out).graph
    _, trees = _adders_and_latency(graph, adder_graph=False)
    _, graphs = _adders_and_latency(graph)
    assert all(g <= t for g, t in zip(graphs, trees)), (graphs, trees)


# --- the examples -----------------------------------------------------------------------------

BOUNDS = {"default": (), "slack0": ("--adder-slack", "0")}
EXAMPLE_RUNS = [(name, bound) for name in sorted(_examples()) for bound in BOUNDS
                if name != "small_cnn/model.onnx"]  # tests/test_rtl_examples.py, tests/test_timing.py


def test_every_example_is_simulated():
    names = {name for name, _ in EXAMPLE_RUNS}
    assert names == set(_examples()) - {"small_cnn/model.onnx"} and len(names) >= 5
    assert {"per_weight_bits/uniform.onnx", "codebook/model.onnx", "rowwise_mixed/model.onnx"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("example, bound", EXAMPLE_RUNS)
def test_example_bit_exact_with_predicted_latency(example, bound, tmp_path):
    model, plan = _examples()[example]
    out = _compile(model, plan, tmp_path / "out", *BOUNDS[bound])
    _sim_bit_exact_with_predicted_latency(out)
    if bound == "default":
        _no_layer_later_than_the_trees(out)


# --- the per-op models -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(MODELS))
def test_per_op_model_bit_exact_at_both_bounds(op, tmp_path, monkeypatch):
    model, plan = _per_op_model(op, tmp_path, monkeypatch)
    default = _compile(model, plan, tmp_path / "default")
    if not _has_sums(default):
        trees = _compile(model, plan, tmp_path / "trees", "--no-adder-graph")
        written = sorted(p.name for p in (default / "rtl").glob("*.sv"))
        assert written and written == sorted(p.name for p in (trees / "rtl").glob("*.sv"))
        for name in written:
            assert (default / "rtl" / name).read_bytes() == (trees / "rtl" / name).read_bytes(), name
        return
    _sim_bit_exact_with_predicted_latency(default, seed=2)
    _no_layer_later_than_the_trees(default)
    _sim_bit_exact_with_predicted_latency(_compile(model, plan, tmp_path / "slack0", "--adder-slack", "0"), seed=3)


# --- structure ------------------------------------------------------------------------------


def test_jet_tagger_graphs_share_adders(tmp_path):
    """The jet tagger's adder graphs need fewer adders than its per-output trees, in no more
    cycles (at the default bound and at --adder-slack 0)."""
    folder = EXAMPLES / "jet_tagger"
    graph = compile_model(folder / "model.onnx", folder / "plan.json", backends=("rtl",)).graph
    trees, tree_latency = _adders_and_latency(graph, adder_graph=False)
    for slack in (None, 0):
        adders, latency = _adders_and_latency(graph, adder_slack=slack)
        assert adders < 0.7 * trees, (slack, adders, trees)
        assert latency[-1] <= tree_latency[-1] and all(g <= t for g, t in zip(latency, tree_latency))


def test_a_constant_minus_a_term_is_one_subtraction(tmp_path):
    """A bias less a term is written ``K - x`` (one carry chain), not ``-x + K`` (yosys without
    alumacc keeps a negation chain and an addition chain)."""
    folder = EXAMPLES / "jet_tagger"
    out = _compile(folder / "model.onnx", folder / "plan.json", tmp_path / "out")
    text = (out / "rtl" / "jet_tagger.sv").read_text()
    assert re.search(r"= \d+'h[0-9a-f]+ - \w+;", text)
    assert not re.search(r"= -\w+ \+ \d+'h[0-9a-f]+;", text)
