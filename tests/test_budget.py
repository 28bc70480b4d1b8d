"""compiler/budget.py: the reuse factors worth trying, and the folding chosen from a budget
(a hand-checked optimum, brute force on random small instances, the errors), and the budget
options of compile (BuildConfig and the CLI)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from compiler import budget
from compiler.argnames import command_line
from compiler.budget import (Candidate, LayerOptions, LayerShape, candidate_reuse, choose_folding, cycles_per_image,
                             fold_products, graph_folding, layer_shape)
from compiler.build_config import BuildConfig
from compiler.cli import main
from compiler.errors import UserError
from compiler.ir import Graph, Node, Op, Tensor, TensorKind
from compiler.project import compile_model
from compiler.targets import PARTS, Part
from tests.irgraphs import conv_graph, dense_graph, random_constant
from tests.test_cli import JET, ROOT, _fails

ZYNQ = "xc7z020clg400-1"  # 53,200 LUT, 106,400 FF, 220 DSP, 140 BRAM36
UNKNOWN_PART = "xc7a35tcpg236-1"  # a valid part name finegrain has no capacity for


def _fewest_multipliers(m, n):
    """Brute force: per reuse factor R, the fewest PE * SIMD with ceil(M/PE) * ceil(N/SIMD) == R,
    kept where it is fewer than at every smaller R."""
    best = {}
    for pe in range(1, m + 1):
        for simd in range(1, n + 1):
            r = math.ceil(m / pe) * math.ceil(n / simd)
            best[r] = min(best.get(r, math.inf), pe * simd)
    return [(r, fewest) for r, fewest in sorted(best.items())
            if all(fewest < other for q, other in best.items() if q < r)]


@pytest.mark.parametrize("m, n", [(1, 1), (1, 9), (9, 1), (12, 32), (7, 9), (16, 27), (37, 53), (64, 72)])
def test_fold_products_is_the_pe_simd_front(m, n):
    assert fold_products(m, n) == _fewest_multipliers(m, n)


def test_candidate_reuse_spans_parallel_to_one_multiplier_and_thins():
    layer = LayerShape("conv2", outputs=128, terms=1152, windows=196, frame_beats=256)
    reuse = candidate_reuse(layer)
    assert reuse[0] == 1 and reuse[-1] == 128 * 1152
    front = dict(fold_products(128, 1152))
    assert set(reuse) <= set(front)  # each one needs fewer multipliers than any smaller R
    assert all(b >= a * 2 ** 0.5 for a, b in zip(reuse[1:-2], reuse[2:-1]))
    assert len(reuse) <= 2 * math.log2(128 * 1152) + 2 < len(front) / 5
    # a target drops the R no design within it can use, and keeps the slowest within it
    capped = candidate_reuse(layer, max_cycles=2000)
    assert capped[:-1] == [r for r in reuse if cycles_per_image(layer, r) <= 2000]
    assert capped[-1] == max(r for r in front if cycles_per_image(layer, r) <= 2000) == 10
    assert candidate_reuse(layer, max_cycles=10) == [1]
    assert candidate_reuse(LayerShape("pool", 0, 0, 64, 256)) == [1]


def test_layer_shape_of_dense_conv_grouped_and_pool():
    rng = np.random.default_rng(0)
    g = dense_graph(rng, 32, 12)
    assert layer_shape(g, g.nodes[0]) == LayerShape("fc", 12, 32, 1, 1)
    g = conv_graph(rng, 4, 8, 6, 3, stride=2, pad=1)  # 8x8 padded to 10x10, output 4x4
    shape = layer_shape(g, g.nodes[0])
    assert shape == LayerShape("conv", 6, 4 * 9, 16, 100)
    assert cycles_per_image(shape, 1) == 100 and cycles_per_image(shape, 9) == 144
    g = conv_graph(rng, 4, 6, 4, 3, groups=4)  # depthwise: 9 terms per output, not 36
    assert layer_shape(g, g.nodes[0]) == LayerShape("conv", 4, 9, 16, 36)
    # 1-D: [C, L] streams L beats; pads (begin, end)
    x = Tensor("x", (3, 20), TensorKind.INPUT)
    w = random_constant(rng, "w", (5, 3, 4), TensorKind.WEIGHT)
    node = Node("conv1d", Op.CONV, ["x", "w"], ["y"], {"strides": (1,), "pads": (2, 1), "dilations": (1,),
                                                        "groups": 1})
    g = Graph("c1", ("x",), ("y",), [node], {"x": x, "w": w, "y": Tensor("y", (5, 20), TensorKind.ACTIVATION)})
    assert layer_shape(g, node) == LayerShape("conv1d", 5, 12, 20, 23)


CNN = ROOT / "examples" / "small_cnn"


@pytest.fixture(scope="module")
def small_cnn():
    return compile_model(CNN / "model.onnx", CNN / "plan.json").graph


def test_layer_shapes_of_the_small_cnn(small_cnn):
    graph = small_cnn
    assert [tuple(vars(layer_shape(graph, node)).values())[1:] for node in graph.nodes] == [
        (4, 9, 16 * 16, 18 * 18),  # conv1: 3x3, pads 1 on a 1x16x16 input
        (0, 0, 8 * 8, 16 * 16),  # pool1: no products
        (8, 36, 6 * 6, 8 * 8),  # conv2: 3x3 over 4 channels, no pads
        (0, 0, 3 * 3, 6 * 6),  # pool2
        (0, 0, 1, 3 * 3),  # flatten: [8, 3, 3] -> one vector
        (4, 72, 1, 1)]  # fc


def test_graph_folding_of_the_small_cnn(small_cnn):
    shapes = {node.name: layer_shape(small_cnn, node) for node in small_cnn.nodes}

    def estimate(node, reuse):  # fewer LUTs as R grows, as a folded core's
        shape = shapes[node.name]
        return {"lut": 50 + 10 * math.ceil(shape.outputs * shape.terms / reuse), "ff": 20}

    config = BuildConfig(model=str(CNN / "model.onnx"), plan=str(CNN / "plan.json"), target_ii=4096,
                         layers={"/conv2/Conv": {"reuse_factor": 3}})
    choice = graph_folding(small_cnn, config, estimate)
    slowest = {name: max((r for r in candidate_reuse(shape) if cycles_per_image(shape, r) <= 4096),
                         default=1) for name, shape in shapes.items()}
    # the least area within 4,096 cycles: each layer its slowest fold within them, conv2 as configured
    assert choice.reuse == {**slowest, "/conv2/Conv": 3}
    assert choice.reuse["/conv1/Conv"] == 12 and choice.reuse["/fc/Gemm"] == 288
    assert choice.ii == 256 * 12 and choice.part == "xcvu9p-flga2104-2L-e"
    # without a target: the fastest, II 324 (conv1's padded 18x18 frame, one beat per cycle)
    fastest = graph_folding(small_cnn, BuildConfig(model="m.onnx", plan="p.json", max_lut=100_000), estimate)
    assert fastest.ii == 324 and fastest.reuse["/conv1/Conv"] == 1 and fastest.reuse["/fc/Gemm"] == 288
    pinned = BuildConfig(model="m.onnx", plan="p.json", target_ii=4096, layers={"/conv1/Conv": {"reuse_factor": 36}})
    with pytest.raises(UserError, match=r"layer '/conv1/Conv' takes at least 9,216 cycles per image \(at reuse factor "
                                        r"36, its only choice\)"):
        graph_folding(small_cnn, pinned, estimate)


def _layers(table):
    return [LayerOptions(name, [Candidate(r, c, res) for r, c, res in cands]) for name, cands in table.items()]


# On the Zynq (53,200 LUTs, 220 DSPs): conv1 cannot go below 1024 cycles; conv2's R 4 has 4 DSPs
HAND = {
    "conv1": [(1, 1024, {"lut": 20_000, "ff": 9_000}), (2, 2048, {"lut": 11_000, "ff": 5_000}),
              (4, 4096, {"lut": 6_000, "ff": 3_000})],
    "conv2": [(1, 256, {"lut": 40_000, "dsp": 10}), (4, 1024, {"lut": 12_000, "dsp": 4}),
              (16, 4096, {"lut": 4_000, "dsp": 1, "bram": 0.5})],
    "fc": [(1, 1, {"lut": 30_000}), (64, 64, {"lut": 1_000}), (640, 640, {"lut": 200})],
}


@pytest.mark.parametrize("options, reuse, ii", [
    # the fastest that fits the part: conv1 sets II 1024; the others take their least area within it
    ({}, {"conv1": 1, "conv2": 4, "fc": 640}, 1024),
    # 32,200 LUTs at II 1024 is over 30,000: the next II, 2048, fits with conv1 folded twice
    ({"max_lut": 30_000}, {"conv1": 2, "conv2": 4, "fc": 640}, 2048),
    # conv2 within 3 DSPs only at R 16 (4096 cycles), where every layer takes its least
    ({"max_dsp": 3}, {"conv1": 4, "conv2": 16, "fc": 640}, 4096),
    ({"target_ii": 4096}, {"conv1": 4, "conv2": 16, "fc": 640}, 4096),
    ({"target_ii": 2047}, {"conv1": 1, "conv2": 4, "fc": 640}, 1024),
    # both: the target within the limit (conv1 R 1 alone would be 32,200 LUTs)
    ({"target_ii": 3000, "max_lut": 30_000}, {"conv1": 2, "conv2": 4, "fc": 640}, 2048),
])
def test_hand_checked_optimum(options, reuse, ii):
    choice = choose_folding(_layers(HAND), ZYNQ, **options)
    assert choice.reuse == reuse and choice.ii == ii and choice.exact
    picked = {name: dict(next(res for r, _, res in HAND[name] if r == reuse[name])) for name in HAND}
    lut = sum(res.get("lut", 0) for res in picked.values())
    dsp = sum(res.get("dsp", 0) for res in picked.values())
    assert choice.totals["lut"] == lut and choice.totals["dsp"] == dsp
    assert choice.fraction["lut"] == round(lut / 53_200, 4)
    # area in LUT equivalents: a DSP weighs 53,200 / 220 LUTs on this part, a BRAM36 53,200 / 140
    bram = sum(res.get("bram", 0) for res in picked.values())
    assert choice.area == pytest.approx(lut + dsp * 53_200 / 220 + bram * 53_200 / 140)
    rows = choice.report()
    assert [row["layer"] for row in rows] == ["conv1", "conv2", "fc"]
    cycles = {name: next(c for r, c, _ in HAND[name] if r == reuse[name]) for name in HAND}
    assert [row["cycles_per_image"] for row in rows] == list(cycles.values())
    assert [row["sets_ii"] for row in rows] == [c == ii for c in cycles.values()]
    assert set(rows[0]) == {"layer", "reuse_factor", "cycles_per_image", "lut", "ff", "dsp", "bram", "sets_ii"}
    summary = json.loads(json.dumps(choice.summary()))  # what report.json can hold
    assert summary["ii_cycles"] == ii and summary["layers"] == rows and summary["part"] == ZYNQ


def test_report_table():
    choice = choose_folding(_layers(HAND), ZYNQ, max_lut=30_000)
    assert choice.text() == """\
layer    reuse  cycles/image           LUT          FF     DSP  BRAM36
conv1 *      2         2,048        11,000       5,000       0       0
conv2        4         1,024        12,000           0       4       0
fc         640           640           200           0       0       0
total               II 2,048  23,200 (44%)  5,000 (5%)  4 (2%)  0 (0%)
* sets the II; part xc7z020clg400-1"""
    # a layer named as tf2onnx names them: the table still fits 80 columns, the name wrapped
    long = "functional_1/activation_1/Relu;functional_1/batch_normalization_1/FusedBatchNormV3;" \
           "functional_1/depthwise_conv2d/depthwise"
    table = {long if name == "conv1" else name: rows for name, rows in HAND.items()}
    lines = choose_folding(_layers(table), ZYNQ, max_lut=30_000).text(width=80).splitlines()
    assert max(len(line) for line in lines) <= 80 and len(lines) > 7  # the name took several lines
    names = [line.split("  ")[0].strip() for line in lines[1:-3]]  # the layer column, line by line
    assert "".join(names).startswith(long + " *")  # the whole name, broken only after / and ;


def test_limits_on_two_resources_need_the_search():
    # each layer's least area uses 2 DSPs; within 2 DSPs only one of them may
    table = {name: [(1, 10, {"lut": 100, "dsp": 2}), (2, 10, {"lut": 500})] for name in ("a", "b")}
    choice = choose_folding(_layers(table), UNKNOWN_PART, max_dsp=2)
    assert sorted(choice.reuse.values()) == [1, 2] and choice.totals["dsp"] == 2 and choice.exact
    assert choice.fraction == {"lut": None, "ff": None, "dsp": None, "bram": None}
    # a board's name means its part; no part: the default part
    assert choose_folding(_layers(HAND), "pynq-z2").part == ZYNQ
    assert choose_folding(_layers(HAND)).part == "xcvu9p-flga2104-2L-e"


def test_a_search_cut_short_says_so(monkeypatch):
    table = {name: [(1, 10, {"lut": 100, "dsp": 2}), (2, 10, {"lut": 500})] for name in "abcdef"}
    monkeypatch.setattr(budget, "SEARCH_STEPS", 3)
    choice = choose_folding(_layers(table), UNKNOWN_PART, max_dsp=6)
    assert not choice.exact and choice.totals["dsp"] <= 6 and not choice.summary()["optimal"]
    monkeypatch.setattr(budget, "PRICE_ROUNDS", 0)  # no choice found before the search stops
    with pytest.raises(UserError, match=r"the search for a choice that fits every limit stopped after 3 steps"):
        choose_folding(_layers(table), UNKNOWN_PART, max_dsp=6)


def _brute_force(table, caps, target_ii, weights):
    best = None
    for combo in itertools.product(*table.values()):
        totals = {r: sum(res.get(r, 0) for _, _, res in combo) for r in ("lut", "ff", "dsp", "bram")}
        if any(totals[r] > cap for r, cap in caps.items()):
            continue
        ii = max(c for _, c, _ in combo)
        if target_ii is not None and ii > target_ii:
            continue
        area = sum(totals[r] * w for r, w in weights.items())
        key = (area,) if target_ii is not None else (ii, area)
        if best is None or key < best:
            best = key
    return best


def _random_instance(rng, trade: bool):
    """Layers of random candidates; with ``trade``, each cycle count has options that trade DSPs
    for LUTs (the cheapest do not fit the limits together: the search must choose)."""
    table = {}
    for k in range(int(rng.integers(1, 5) if not trade else rng.integers(3, 7))):
        options = []
        for _ in range(int(rng.integers(1, 5))):
            cycles, lut = int(rng.choice([1, 2, 4, 8, 16, 32])), int(rng.integers(0, 400))
            resources = {"lut": lut, "ff": int(rng.integers(0, 400)), "dsp": int(rng.integers(0, 4)),
                         "bram": float(rng.integers(0, 3)) / 2}
            options.append((len(options) + 1, cycles, resources))
            if trade:  # the same layer at the same speed, its products in LUTs instead of DSPs
                options.append((len(options) + 1, cycles, {**resources, "dsp": 0,
                                                           "lut": lut + int(rng.integers(50, 400)) * resources["dsp"]}))
        table[f"layer{k}"] = options
    return table


# a part small enough that its FF and BRAM36 bind too
TINY = Part("xc7tiny-clg400-1", "xc7", lut=1_500, ff=900, dsp=6, bram36=2)


@pytest.mark.parametrize("seed", range(120))
def test_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    table = _random_instance(rng, trade=seed % 2 == 1)
    part = TINY if rng.random() < 0.3 else UNKNOWN_PART
    max_lut = int(rng.integers(100, 1200)) if rng.random() < 0.7 else None
    max_dsp = int(rng.integers(0, 8)) if rng.random() < 0.5 else None
    target_ii = int(rng.choice([1, 2, 4, 8, 16, 32])) if rng.random() < 0.5 else None
    caps = {r: v for r, v in (("lut", max_lut), ("dsp", max_dsp)) if v is not None}
    if part is TINY:
        caps = {r: min(caps.get(r, math.inf), cap) for r, cap in
                (("lut", TINY.lut), ("ff", TINY.ff), ("dsp", TINY.dsp), ("bram", TINY.bram36))}
    weighing = TINY if part is TINY else PARTS["xcvu9p-flga2104-2L-e"]  # an unknown part: the default part's
    weights = {"lut": 1.0, "dsp": weighing.lut / weighing.dsp, "bram": weighing.lut / weighing.bram36}
    expected = _brute_force(table, caps, target_ii, weights)
    if expected is None:
        with pytest.raises(UserError):
            choose_folding(_layers(table), part, target_ii, max_lut, max_dsp)
        return
    choice = choose_folding(_layers(table), part, target_ii, max_lut, max_dsp)
    assert choice.exact
    got = (choice.area,) if target_ii is not None else (choice.ii, choice.area)
    assert got == pytest.approx(expected)
    assert all(choice.totals[r] <= cap for r, cap in caps.items())


def _big_layers():
    """Five layers that cannot fit the Zynq's LUTs at any folding (least 14 + 12 + ... = 60k)."""
    least = {"conv1": 14_000, "conv2": 12_000, "conv3": 20_000, "conv4": 9_000, "fc": 5_000}
    return _layers({name: [(1, 100, {"lut": 3 * lut}), (8, 800, {"lut": lut})] for name, lut in least.items()})


def test_nothing_fits_names_part_limit_least_total_and_largest_layers():
    with pytest.raises(UserError) as err:
        choose_folding(_big_layers(), ZYNQ)
    message = str(err.value)
    for text in (ZYNQ, "at any folding", "60,000 LUTs", "53,200 LUTs", "'conv3' 20,000 at reuse factor 8",
                 "'conv1' 14,000", "'conv2' 12,000"):
        assert text in message, message
    assert "'conv4'" not in message and "'fc'" not in message
    with pytest.raises(UserError, match=r"more than max_dsp=0.*'b' 2 at reuse factor 1"):
        choose_folding(_layers({"a": [(1, 4, {"dsp": 1})], "b": [(1, 4, {"dsp": 2})]}), ZYNQ, max_dsp=0)


def test_target_errors_say_what_is_reachable():
    with pytest.raises(UserError, match=r"target_ii=50 cannot be met.*layer 'conv1' takes at least 100 cycles.*"
                                        r"target_ii=100 or more"):
        choose_folding(_big_layers(), UNKNOWN_PART, target_ii=50)
    # within 100,000 LUTs: II 100 needs 180,000, II 800 fits
    with pytest.raises(UserError, match=r"at an II of at most 100 cycles.*180,000 LUTs, more than max_lut=100000"
                                        r".*fastest design that fits has an II of 800 cycles"):
        choose_folding(_big_layers(), UNKNOWN_PART, target_ii=100, max_lut=100_000)
    assert choose_folding(_big_layers(), UNKNOWN_PART, max_lut=100_000).ii == 800


def test_candidates_are_checked():
    with pytest.raises(ValueError, match="reuse factor"):
        Candidate(0, 10, {})
    with pytest.raises(ValueError, match="cycles per image"):
        Candidate(1, True, {})
    with pytest.raises(ValueError, match="unknown resource"):
        Candidate(1, 10, {"luts": 3})
    with pytest.raises(ValueError, match="no candidate"):
        LayerOptions("fc", [])


@pytest.mark.parametrize("options, pattern, python", [
    ({"target_ii": 0}, r"--target-ii must be an integer of at least 1, got 0", r"^target_ii must be an integer"),
    ({"max_lut": -5}, r"--max-lut must be an integer of at least 1, got -5", r"^max_lut must be"),
    ({"max_dsp": 2.5}, r"--max-dsp must be an integer of at least 0, got 2.5", r"^max_dsp must be"),
    ({"max_lut": True}, r"--max-lut must be an integer", r"^max_lut must be an integer"),
    ({"target_ii": 100, "architecture": "parallel"}, r"--target-ii choose each layer's folding in the stream.*"
                                                     r"--arch stream or 'auto'",
     r"^target_ii choose .*architecture='parallel' builds.*architecture='stream' or 'auto'"),
    ({"max_lut": 10, "max_dsp": 2, "reuse_factor": 4}, r"give --reuse-factor or a budget \(--max-lut and --max-dsp\)",
     r"give reuse_factor or a budget \(max_lut and max_dsp\)"),
])
def test_build_config_checks_the_budget(options, pattern, python):
    """The messages name the flags from the command line (compiler/argnames.py), the arguments from Python."""
    with pytest.raises(UserError, match=pattern), command_line():
        BuildConfig(model="m.onnx", plan="p.json", **options)
    with pytest.raises(UserError, match=python):
        BuildConfig(model="m.onnx", plan="p.json", **options)
    assert BuildConfig(model="m.onnx", plan="p.json", target_ii=64, max_lut=1000, max_dsp=0).max_dsp == 0


@pytest.mark.parametrize("argv, pattern", [
    (["--target-ii", "0"], r"--target-ii must be an integer of at least 1, got 0"),
    (["--max-lut", "lots"], r"argument --max-lut: invalid int value: 'lots'"),
    (["--max-dsp", "-1"], r"--max-dsp must be an integer of at least 0, got -1"),
    (["--target-ii", "8", "--arch", "parallel"], r"--arch parallel builds every layer fully parallel"),
])
def test_cli_budget_options_exit_2(tmp_path, capsys, argv, pattern):
    out = tmp_path / "out"
    _fails(capsys, ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out, *argv], pattern, out)


def test_cli_budget_options_reach_config_json(tmp_path):
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out),
                 "--backend", "", "--target-ii", "8", "--max-lut", "60000", "--max-dsp", "100"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["target_ii"], config["max_lut"], config["max_dsp"]) == (8, 60_000, 100)
    assert config["architecture"] == "stream"  # a budget asks for the folded stream architecture
    folding = json.loads((out / "report.json").read_text())["folding"]
    assert {row["layer"] for row in folding["layers"]} == {"/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm", "/fc4/Gemm"}
