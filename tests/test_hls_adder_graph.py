"""HLS ``--strategy adder-graph`` (issue 14): each dense / conv / avgpool layer's sums written out
as its shared adder graphs (compiler/backends/hls_graph.py), through g++ csim bit for bit
against the emulator on random and extreme inputs (csim's vectors: each input format's whole
range, all minimum, all maximum, zero, alternating), and counted: the C++ has one statement
per adder of the graphs compiler/sums.py chose, so the structure really is the shared graph.
One g++ build per model."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_hls_numerics import _csim_exact
from test_rtl_exactness import _known_bits_model, _wide_model

import compiler
from compiler.adder_graph import build, field, solve, wrap
from compiler.backends.hls import LIBRARY
from compiler.backends.hls_graph import DSP_MIN_WIDTH, cpp_integer, function_body
from compiler.sums import element_format
from compiler.backends.rtl.emitter import Fmt
from compiler.cli import main
from compiler.verify.csim import ap_types_dir
from compiler.ir import Op
from compiler.sums import layer_graphs

ROOT = Path(__file__).resolve().parents[1]
SUMS = (Op.DENSE, Op.CONV, Op.AVGPOOL)


def _compile(model: Path, plan: Path, out: Path, *extra: str) -> int:
    return main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "hls", *extra])


def _chosen_adders(model: Path, plan: Path, layers: set[str] | None = None) -> list[int]:
    """The adders compiler/sums.py chooses for each summing stage (in graph order), counted
    apart from the backend: every instance's graph, unbounded depth (the HLS default)."""
    g = compiler.compile_model(str(model), str(plan), backends=()).graph
    counts = []
    for node in g.nodes:
        if layers is not None and not layers & {node.name, *node.onnx_nodes}:
            continue
        for stage in node.stages():
            if stage.op in SUMS:
                x, out = g.tensor(stage.inputs[0]), g.tensor(stage.outputs[0])
                instances = layer_graphs(g, stage, [element_format(x, i) for i in range(x.formats.width.size)],
                                         [element_format(out, i) for i in range(out.formats.width.size)],
                                         DSP_MIN_WIDTH, lambda rows, biases: None)
                counts.append(sum(inst.graph.adders for inst in instances))
    return counts


_ADDER = re.compile(r"^    const ap_u?int<\d+> n\d+ = ", re.M)


def _written_adders(out: Path) -> list[int]:
    """Adder statements in <model>_graphs.h, times the instances each function is called for,
    per layer function the top calls (in call order)."""
    firmware = out / "hls" / "firmware"
    header = next(firmware.glob("*_graphs.h")).read_text()
    top = next(p for p in firmware.glob("*.cpp")).read_text()
    bodies = dict(re.findall(r"^static void (\w+)\(.*?\) \{\n(.*?)^\}", header, re.M | re.S))
    adders = {name: len(_ADDER.findall(body)) for name, body in bodies.items()}
    counts = []
    for function in re.findall(r"^    (\w+)\(\w+, \w+\);  // \d+ adders$", top, re.M):
        body = bodies[function]
        calls = re.findall(r"(?:for \(int i = 0; i < (\d+); i\+\+\) \{\n#pragma HLS UNROLL\n\s+)?(\w+)\(x, y\b",
                           body)
        counts.append(sum(int(n or 1) * adders[f] for n, f in calls) if calls else adders[function])
    return counts


def _adder_graph_csim(model: Path, plan: Path, out: Path, *extra: str, layers: set[str] | None = None) -> None:
    assert _compile(model, plan, out, "--strategy", "adder-graph", *extra) == 0
    written = _written_adders(out)
    assert written == _chosen_adders(model, plan, layers) and all(written)
    _csim_exact(out)


@pytest.mark.parametrize("example", ["jet_tagger", "per_weight_bits", "rowwise_mixed", "small_cnn"])
def test_examples_csim_bit_exact_one_statement_per_adder(example, tmp_path):
    folder = ROOT / "examples" / example
    _adder_graph_csim(folder / "model.onnx", folder / "plan.json", tmp_path / "out")


def test_one_layer_by_layer_config_beside_the_codebook_kernel(tmp_path):
    """--layer-config gives one layer the strategy; the others keep their kernels (here the
    codebook example's dense_codebook) and the epilogues run after the graph as before."""
    folder = ROOT / "examples" / "codebook"
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"/fc2/Gemm": {"strategy": "adder-graph"}}))
    out = tmp_path / "out"
    assert _compile(folder / "model.onnx", folder / "plan.json", out, "--layer-config", str(layers)) == 0
    cpp = (out / "hls" / "firmware" / "codebook.cpp").read_text()
    assert cpp.count("finegrain::dense_codebook") == 2 and "fc2_Gemm_graph(" in cpp
    assert _written_adders(out) == _chosen_adders(folder / "model.onnx", folder / "plan.json", {"/fc2/Gemm"})
    _csim_exact(out)


def _ops_model(folder: Path) -> tuple[Path, Path]:
    """Sums of every kind in one model: a strided, padded conv1d with a pruned weight row (an
    output channel's input channel all 0), a dilated depthwise conv1d, an average pool with
    padding left out of the count, and a MatMul over two rows; the input's two channels have
    different formats (signed and unsigned, other fractions), so positions and rows of one
    pattern read elements of other formats: distinct graphs."""
    rng = np.random.default_rng(14)

    def const(name, shape, frac):
        return numpy_helper.from_array(np.round(rng.normal(0, 1, shape) * 2 ** frac).astype(np.float32) / 2 ** frac,
                                       name)
    w1 = const("w1", (3, 2, 3), 3)
    data = numpy_helper.to_array(w1).copy()
    data[0, 1, :] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv_strided", strides=[2], pads=[1, 2]),
             helper.make_node("Conv", ["x", "w2"], ["c2"], name="conv_depthwise", group=2, pads=[2, 0],
                              dilations=[2]),
             helper.make_node("AveragePool", ["x"], ["p1"], name="pool_pad", kernel_shape=[3], strides=[2],
                              pads=[1, 1], count_include_pad=0),
             helper.make_node("MatMul", ["x", "w3"], ["m1"], name="rows")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("c1", "c2", "p1", "m1")]
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 12])],
                              outputs,
                              [numpy_helper.from_array(data, "w1"), const("b1", (3,), 2), const("w2", (2, 1, 3), 4),
                               const("w3", (12, 5), 3)])
    model = folder / "ops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    plan = folder / "ops.json"
    plan.write_text(json.dumps({
        "defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<8,3,RND_CONV,SAT>", "bias": "fixed<8,4>",
                     "activation": None},
        "tensors": {"x": {"axis": 1, "formats": ["fixed<8,3,RND_CONV,SAT>", "ufixed<6,1,RND_CONV,SAT>"]}}}))
    return model, plan


def test_conv_pool_and_matmul_rows_csim_bit_exact(tmp_path):
    model, plan = _ops_model(tmp_path)
    out = tmp_path / "out"
    _adder_graph_csim(model, plan, out)
    header = (out / "hls" / "firmware" / "ops_graphs.h").read_text()
    # positions of one pattern share a function, called from index tables; the MatMul's two
    # rows read channels of other formats, so each has its own graph
    assert re.search(r"for \(int i = 0; i < \d+; i\+\+\) \{\n#pragma HLS UNROLL\n\s+conv_strided_graph_g\d\(x, y, "
                     r"conv_strided_graph_g\d_x \+ i \* 6", header)
    assert "over 2 rows, 2 distinct graphs" in header
    readme = (out / "hls" / "README.md").read_text()
    assert all(f"| `{layer}` | " in readme for layer in ("conv_strided", "conv_depthwise", "pool_pad", "rows"))


def test_wide_formats_and_products_csim_bit_exact(tmp_path):
    """Inputs of 400 bits and weights of 960: the products stay multiplications (graph inputs),
    nodes of hundreds of bits, constants written as 64-bit words."""
    model, plan = _wide_model(tmp_path, "fixed<400,200,RND_CONV,SAT>")
    out = tmp_path / "out"
    _adder_graph_csim(model, plan, out)
    header = (out / "hls" / "firmware" / "wide_graphs.h").read_text()
    assert re.search(r"const ap_int<\d{3}> p\d = finegrain::element<200>\(x\[\d\]\) \* ", header)
    assert "ULL) << 384)" in header


KNOWN_BITS_GRAPHS = """\
// ---- fc1_graph: the sums of fc1 (ONNX fc1),
// 3 adders for 4 constant products over 1 row, 1 distinct graph, at most 2 adders deep.

static void fc1_graph(const x_t x[2], h_exact_t y[3]) {
#pragma HLS INLINE
    const ap_int<8> x0 = finegrain::element<6>(x[0]);
    const ap_int<8> x1 = finegrain::element<6>(x[1]);
    const ap_int<10> n2 = (ap_int<10>(x0) << 1) - x1;
    const ap_int<11> n3 = (ap_int<11>(x0) << 2) - x1;
    const ap_int<11> n4 = (ap_int<11>(x1) << 2) + n3;
    finegrain::set_element<8>(y[0], ap_int<10>(n2));
    y[1] = 0;
    finegrain::set_element<8>(y[2], ap_int<11>(n4));
}

// ---- fc2_graph: the sums of fc2 (ONNX fc2),
// 1 adder for 2 constant products over 1 row, 1 distinct graph, at most 1 adder deep.

static void fc2_graph(const h_t x[3], y_t y[1]) {
#pragma HLS INLINE
    const ap_int<8> x0 = finegrain::element<5>(x[0]);
    const ap_int<8> x2 = finegrain::element<5>(x[2]);
    const ap_int<10> n2 = x0 - (ap_int<10>(x2) << 1);
    finegrain::set_element<6>(y[0], ap_int<10>(n2));
}

#endif
"""


def test_elements_the_bounds_fix_csim_bit_exact(tmp_path):
    """An output element always 0 by its bounds is written 0 (h[1]); an input one is read by no
    graph (fc2 reads h[0] and h[2]).  The whole text, as a golden: mantissas at 2^-6 in, sums at
    2^-8, so h[0] = 0.5 x[0] - 0.25 x[1] is n2 = 2 x0 - x1 and h[2] = x[0] + 0.75 x[1] is
    n4 = 4 x0 + 3 x1 (sharing nothing: CSE needs a pattern in two rows)."""
    model, plan = _known_bits_model(tmp_path)
    out = tmp_path / "out"
    _adder_graph_csim(model, plan, out)
    header = (out / "hls" / "firmware" / "known_bits_graphs.h").read_text()
    assert header[header.index("// ---- fc1_graph"):] == KNOWN_BITS_GRAPHS


def _random_graph(rng):
    """A random constant matrix product: some inputs constant (folded into the nodes: wiring and
    constant nodes), rows that are all negative, biases, narrow outputs (nodes cut to the bits
    they keep); formats at random fractions within the containers' 8."""
    n_in, n_out = int(rng.integers(2, 7)), int(rng.integers(1, 6))
    inputs, ranges = [], []
    for _ in range(n_in):
        fmt = Fmt(int(rng.integers(1, 9)), int(rng.integers(0, 9)), bool(rng.integers(0, 2)))
        lo, hi = (-(1 << fmt.width - 1), (1 << fmt.width - 1) - 1) if fmt.signed else (0, (1 << fmt.width) - 1)
        if rng.random() < 0.25:
            lo = hi = int(rng.integers(lo, hi + 1))
        inputs.append((fmt, None))
        ranges.append((lo, hi))
    sign = rng.choice([-1, 1, 1], n_out)
    rows = [[(i, int(sign[j] * rng.integers(1, 40)), int(rng.integers(0, 4))) for i in range(n_in)
             if rng.random() < 0.8] for j in range(n_out)]
    biases = [int(rng.integers(-300, 300)) if rng.random() < 0.5 else 0 for _ in range(n_out)]
    outputs = tuple(Fmt(int(rng.integers(2, 16)), int(rng.integers(0, 9)), bool(rng.integers(0, 2)))
                    for _ in range(n_out))
    graph = build(solve(rows, n_in, biases, ranges), ranges, [(f.width, f.signed) for f in outputs])
    return graph, tuple(inputs), outputs, ranges


def _integers(rng) -> list[tuple[int, int, bool]]:
    """(value, width, signed) for cpp_integer: each way of writing a constant, and random ones."""
    cases = [(0, 1, False), (-1, 1, True), (5, 3, True), ((1 << 31) - 1, 40, True), (-(1 << 31), 40, True),
             ((1 << 63) - 1, 64, False), (-(1 << 63), 64, True), (1 << 63, 64, False), (-(1 << 70) + 5, 80, True),
             (-(1 << 70) + 5, 72, False), (1 << 200, 201, False)]
    return cases + [(int(rng.integers(-(1 << 62), 1 << 62)) << int(rng.integers(0, 300)), int(w), bool(s))
                    for w, s in zip(rng.integers(1, 400, 40), rng.integers(0, 2, 40))]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """One g++ program (one build) that prints cpp_integer's constants, then every random
    graph's outputs (function_body's statements) on random and extreme inputs; with what
    Python says each line should be."""
    rng = np.random.default_rng(14)
    integers = _integers(rng)
    constants = [f"    std::cout << {'ap_int' if s else 'ap_uint'}<{w}>({cpp_integer(v, w, s)}).to_string(10) << '\\n';"
                 for v, w, s in integers]
    functions, calls, expected = [], [], []
    shapes = Counter()  # the kinds of node the graphs have
    for case in range(40):
        graph, inputs, outputs, ranges = _random_graph(rng)
        for node in graph.nodes[graph.n_inputs:]:
            shapes.update({"wiring": bool(node.operands) and not node.is_adder, "constant": not node.operands,
                           "shifted out": any(shift >= node.width for _, shift, _ in node.operands),
                           "cut": node.width < field(node.lo, node.hi)[0], "unsigned": not node.signed})
        n_in, n_out = len(inputs), len(outputs)
        body, _ = function_body(graph, inputs, outputs, (list(range(n_in)), list(range(n_out))), 24)
        lines = [f"static void case{case}(const x_t x[{n_in}], y_t y[{n_out}]) {{"]
        lines += [f"    const {r['type']} {r['name']} = {r['expr']};" for r in body["reads"] + body["statements"]]
        shapes["starts negative"] += sum(st["expr"].startswith("-") for st in body["statements"])
        functions.append("\n".join(lines + [f"    {w};" for w in body["writes"]] + ["}"]))
        vectors = [[lo for lo, _ in ranges], [hi for _, hi in ranges]]
        vectors += [[int(rng.integers(lo, hi + 1)) for lo, hi in ranges] for _ in range(30)]
        table = ", ".join("{" + ", ".join(f"{m * 2.0 ** -f.frac!r}" for m, (f, _) in zip(v, inputs)) + "}"
                          for v in vectors)
        calls.append(f"    {{ static const double x[][{n_in}] = {{{table}}};\n"
                     f"      for (int i = 0; i < {len(vectors)}; i++) {{ x_t xi[{n_in}]; y_t y[{n_out}];\n"
                     f"        for (int k = 0; k < {n_in}; k++) xi[k] = x[i][k];\n"
                     f"        case{case}(xi, y); show(y, {n_out}); }} }}")
        expected += [e << (8 - f.frac) for v in vectors for e, f in zip(graph.evaluate(v), outputs)]
    folder = tmp_path_factory.mktemp("harness")
    source = folder / "graphs.cpp"
    source.write_text("\n".join([
        '#include "ap_fixed.h"', '#include "finegrain/adder_graph.h"', "#include <iostream>",
        "typedef ap_fixed<24, 16> x_t;", "typedef ap_fixed<40, 32> y_t;", *functions,
        "static void show(const y_t* y, int n) {",
        "    for (int j = 0; j < n; j++) std::cout << finegrain::mantissa(y[j]).to_string(10) << '\\n';", "}",
        "int main() {", *constants, *calls, "}", ""]))
    subprocess.run(["g++", "-std=c++14", "-O1", "-w", "-I", str(ap_types_dir()), "-I", str(LIBRARY.parent),
                    str(source), "-o", str(folder / "graphs")], check=True)
    printed = [int(p) for p in subprocess.run([str(folder / "graphs")], capture_output=True, text=True,
                                              check=True).stdout.split()]
    return printed[:len(integers)], [wrap(v, w, s) for v, w, s in integers], printed[len(integers):], expected, \
        shapes


def test_cpp_integer_is_the_fields_value(harness):
    """Constants of a statement at any width: the C++ expression's value is the field's."""
    printed, expected, _, _, _ = harness
    assert printed == expected


def test_the_statements_compute_what_the_graph_evaluates(harness):
    """Each graph's statements (function_body) in g++ against AdderGraph.evaluate, the graphs'
    semantics, on random and extreme inputs, with every shape of node the optimiser makes."""
    _, _, printed, expected, shapes = harness
    assert printed == expected
    assert all(shapes[k] >= 5 for k in ("wiring", "constant", "shifted out", "cut", "unsigned", "starts negative"))


def test_adder_slack_bounds_the_graphs_depth(tmp_path):
    """--adder-slack 0: every graph at its least depth (fc3 of the jet tagger: 6 levels, 7 with
    the default, unbounded, which shares one adder more)."""
    folder = ROOT / "examples" / "jet_tagger"
    depths = []
    for k, extra in enumerate(([], ["--adder-slack", "0"])):
        assert _compile(folder / "model.onnx", folder / "plan.json", tmp_path / f"o{k}", "--strategy", "adder-graph",
                        *extra) == 0
        header = (tmp_path / f"o{k}" / "hls" / "firmware" / "jet_tagger_graphs.h").read_text()
        depths.append([int(d) for d in re.findall(r"at most (\d+) adders? deep", header)])
    assert depths == [[6, 7, 7, 6], [6, 7, 6, 6]]


@pytest.mark.parametrize("extra, says", [
    (["--arch", "stream"], ["'/fc1/Gemm'", "strategy 'adder-graph'", "--arch parallel"]),
    (["--reuse-factor", "4"], ["strategy 'adder-graph'", "reuse_factor 4", "reuse factor 1"]),
    (["--layer-config", '{"/fc2/Gemm": {"strategy": "adder-graph", "reuse_factor": 2}}'],
     ["strategy 'adder-graph'", "reuse_factor 2"]),
])
def test_what_the_strategy_cannot_build_is_refused(extra, says, tmp_path, capsys):
    folder = ROOT / "examples" / "jet_tagger"
    if extra[0] == "--layer-config":
        (tmp_path / "layers.json").write_text(extra[1])
        extra = [extra[0], str(tmp_path / "layers.json")]
    else:
        extra = ["--strategy", "adder-graph", *extra]
    capsys.readouterr()
    assert _compile(folder / "model.onnx", folder / "plan.json", tmp_path / "out", *extra) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert all(s in err for s in says) and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
