"""Folded cores (compiler/backends/rtl/folded.py): a dense and two conv-window mini-graphs
(3x3, 4 -> 8 channels, and a depthwise 3x3 over 8 channels), each with mixed per-element
formats, zero and pruned weights, at reuse factors 2, 3, 5, M and above M (the dense one also
above M * N; it and a conv core with their weight ROMs forced onto the registered, block-RAM
path), plus a grouped 1-D window and a layer whose weights are all pruned, simulated on
Verilator side by side in one testbench top (one build, cached by sim.runner), in_valid every
R cycles or more, on 125 input vectors each (random over every element's range, then the
extremes) with random bits between them: every output bit equal to compiler.emulate, out_valid
exactly ``latency`` cycles after each in_valid and never otherwise; a reset in mid-run drops
what is in flight and nothing after it.  The cocotb test lives in
this module (the simulator imports it by name), as tests/rtl_library_cocotb.py holds the RTL library's.

Also: fold_shape's choice against brute force, the estimate's multipliers shrinking as R grows
(R = 1 being today's parallel core), and the errors for what cannot be folded.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `sim` is a top-level folder of the repo, not installed

from compiler.backends.rtl import LIBRARY, RTLBackendError, RTLOptions, rtl_context  # noqa: E402
from compiler.backends.rtl import folded as folding  # noqa: E402
from compiler.backends.rtl.folded import fold_shape, folded_core_context, render_folded_core  # noqa: E402
from compiler.estimate import estimate_context  # noqa: E402
from compiler.fixed import FixedType, Formats, Overflow, Rounding  # noqa: E402
from compiler.ir import Graph, Node, Op, Tensor, TensorKind  # noqa: E402
from compiler.passes.fuse import fuse_layers  # noqa: E402
from compiler.passes.size_widths import size_widths  # noqa: E402
from compiler.verify.vectors import csim_vectors, emulated_rows  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from irgraphs import conv_graph, dense_graph, random_constant, random_formats  # noqa: E402

try:  # inside the simulator, cocotb is the point; under plain pytest it may be absent
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly
except ImportError:  # pragma: no cover
    cocotb = None

BUILD_ROOT = ROOT / "build" / "rtl_folded"
TEST_MODULE = Path(__file__).stem
SOURCE = {"model": "folded test", "plan": "random formats"}
PART = "xczu7ev-ffvc1156-2-e"
VECTORS = 120  # + 5 extremes
RESET_CYCLES = 3
MID_RESET = (1000, 1001)  # rst again for these cycles: what is in flight is dropped, nothing else
OUT = FixedType(8, 3, True, Rounding.RND_CONV, Overflow.SAT)


# --- mini-graphs ---------------------------------------------------------------------------


def _epilogue(graph: Graph, relu: bool, requant: FixedType | None) -> Graph:
    """A one-node graph with relu and/or a requantize after it, fused and sized."""
    nodes, tensors, last = list(graph.nodes), dict(graph.tensors), graph.outputs[0]
    shape = tensors[last].shape
    if relu:
        tensors["act"] = Tensor("act", shape, TensorKind.ACTIVATION)
        nodes.append(Node("relu", Op.RELU, [last], ["act"]))
        last = "act"
    if requant is not None:
        tensors["out"] = Tensor("out", shape, TensorKind.ACTIVATION, formats=Formats.uniform(shape, requant))
        nodes.append(Node("q", Op.REQUANTIZE, [last], ["out"]))
        last = "out"
    return size_widths(fuse_layers(dataclasses.replace(graph, outputs=(last,), nodes=tuple(nodes), tensors=tensors)))


def _prune_row(graph: Graph, row: int) -> Graph:
    """Weight row ``row`` pruned (width 0): its channel is the bias alone."""
    w = graph.tensor("w")
    f = w.formats
    width, int_bits = np.array(f.width), np.array(f.int_bits)
    width[row], int_bits[row] = 0, 0
    data, floats = np.array(w.data), np.array(w.float_data)
    data[row], floats[row] = 0, 0
    formats = Formats(width, int_bits, f.signed, f.rounding, f.overflow)
    return graph.with_tensors({"w": dataclasses.replace(w, formats=formats, data=data, float_data=floats)})


def dense_mini() -> Graph:
    """N = 32 inputs -> M = 12 (relu, requantize), one pruned row."""
    g = dense_graph(np.random.default_rng(3), 32, 12)
    return _epilogue(_prune_row(g, 5), relu=True, requant=OUT)


def conv_mini() -> Graph:
    """One 3x3 window, 4 -> 8 channels (requantize)."""
    return _epilogue(conv_graph(np.random.default_rng(4), 4, 3, 8, 3), relu=False, requant=OUT)


def depthwise_mini() -> Graph:
    """One 3x3 window, depthwise over 8 channels (relu, exact output)."""
    return _epilogue(conv_graph(np.random.default_rng(5), 8, 3, 8, 3, groups=8), relu=True, requant=None)


def grouped_1d_mini() -> Graph:
    """One 1-D window of 5, 4 -> 6 channels in 2 groups (requantize), a fifth of the input
    elements pruned (constant 0: no term)."""
    rng = np.random.default_rng(6)
    x = Tensor("x", (4, 5), TensorKind.INPUT, formats=random_formats(rng, (4, 5), 6, prune=0.2))
    w = random_constant(rng, "w", (6, 2, 5), TensorKind.WEIGHT, max_width=6)
    b = random_constant(rng, "b", (6,), TensorKind.BIAS, max_width=10, prune=0.0)
    attrs = {"strides": (1,), "pads": (0, 0), "dilations": (1,), "groups": 2}
    node = Node("conv1d", Op.CONV, ["x", "w", "b"], ["y"], attrs)
    g = Graph("conv1d", ("x",), ("y",), [node],
              {"x": x, "w": w, "b": b, "y": Tensor("y", (6, 1), TensorKind.ACTIVATION)})
    return _epilogue(g, relu=False, requant=OUT)


def pruned_mini() -> Graph:
    """Every weight pruned: each output is its bias, requantized; nothing to fold."""
    g = dense_graph(np.random.default_rng(7), 6, 4)
    for row in range(4):
        g = _prune_row(g, row)
    return _epilogue(g, relu=False, requant=OUT)


MINI = {"dense": (dense_mini, 12), "conv": (conv_mini, 8), "depthwise": (depthwise_mini, 8)}
MORE = {"grouped_1d": (grouped_1d_mini, 6), "pruned": (pruned_mini, 4)}
# per mini-graph: 2, 3, 5, M and beyond M; the dense one also beyond M * N (one multiplier);
# two with their ROMs read through registers (the block-RAM path, forced below its size)
CORES = [(name, r, False) for name, (_, m) in MINI.items() for r in (2, 3, 5, m, 2 * m + 1)] + \
    [("dense", 360, True), ("conv", 7, True), ("grouped_1d", 4, False), ("grouped_1d", 11, False),
     ("pruned", 3, False)]


def _graph(name: str, reuse: int, registered: bool) -> Graph:
    g = {**MINI, **MORE}[name][0]()
    return dataclasses.replace(g, name=f"fold_{name}_r{reuse}{'_bram' if registered else ''}")


def _context(graph: Graph, reuse: int, registered: bool, monkeypatch) -> dict:
    with monkeypatch.context() as patch:
        if registered:
            patch.setattr(folding, "ROM_BRAM_MIN_PHASES", 1)
            patch.setattr(folding, "ROM_BRAM_MIN_BITS", 1)
        return folded_core_context(graph, RTLOptions(), SOURCE, reuse)


# --- the simulation --------------------------------------------------------------------------


def _packed(rows, width: int) -> list[str]:
    mask = (1 << width) - 1
    return [format(sum((int(v) & mask) << (i * width) for i, v in enumerate(row)), "x") for row in rows]


def _testbench(cores: list[dict]) -> str:
    ports, body = ["    input  logic clk", "    input  logic rst"], []
    for k, c in enumerate(cores):
        p = f"c{k}"
        ports += [f"    input  logic {p}_in_valid", f"    input  logic [{c['in_bits'] - 1}:0] {p}_{c['in']}",
                  f"    output logic {p}_out_valid", f"    output logic [{c['out_bits'] - 1}:0] {p}_{c['out']}"]
        body.append(f"    {c['module']} u_{p} (.clk(clk), .rst(rst), .in_valid({p}_in_valid), "
                    f".{c['in']}({p}_{c['in']}), .out_valid({p}_out_valid), .{c['out']}({p}_{c['out']}));")
    return "module tb_folded (\n" + ",\n".join(ports) + "\n);\n" + "\n".join(body) + "\nendmodule\n"


if cocotb is not None:

    @cocotb.test()
    async def folded_cores(dut):
        """Each core: its vectors, in_valid every R cycles (30% of the time 1 to R more),
        random bits on the input otherwise; every out_valid cycle and output word recorded."""
        with open(os.environ["FINEGRAIN_FOLDED_SPEC"]) as f:
            spec = json.load(f)
        rng = random.Random(spec["seed"])
        cores = spec["cores"]
        handles = [(getattr(dut, f"c{k}_in_valid"), getattr(dut, f"c{k}_{c['in']}"),
                    getattr(dut, f"c{k}_out_valid"), getattr(dut, f"c{k}_{c['out']}")) for k, c in enumerate(cores)]
        inputs = [[int(w, 16) for w in c["inputs"]] for c in cores]
        sent, next_at = [0] * len(cores), [RESET_CYCLES] * len(cores)
        t_in, t_out, got = [[] for _ in cores], [[] for _ in cores], [[] for _ in cores]
        end = None
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        t = 0
        while end is None or t <= end:
            await FallingEdge(dut.clk)
            rst = t < RESET_CYCLES or MID_RESET[0] <= t <= MID_RESET[1]
            dut.rst.value = int(rst)
            for k, c in enumerate(cores):
                valid, data = handles[k][0], handles[k][1]
                send = not rst and t >= next_at[k] and sent[k] < len(inputs[k])
                valid.value = int(send)
                if send:
                    data.value = inputs[k][sent[k]]
                    t_in[k].append(t)
                    sent[k] += 1
                    extra = rng.randint(1, c["reuse"]) if rng.random() < 0.3 else 0
                    next_at[k] = t + c["reuse"] + extra
                else:
                    data.value = rng.getrandbits(c["in_bits"])
            await ReadOnly()
            for k in range(len(cores)):
                if str(handles[k][2].value) == "1":
                    t_out[k].append(t)
                    got[k].append(format(int(handles[k][3].value.to_unsigned()), "x"))
            if end is None and all(s == len(i) for s, i in zip(sent, inputs)):
                end = t + max(c["latency"] for c in cores) + 3
            t += 1
        with open(os.environ["FINEGRAIN_FOLDED_RESULTS"], "w") as f:
            json.dump({"t_in": t_in, "t_out": t_out, "outputs": got}, f)


def _runner():
    if cocotb is None:
        pytest.fail("cocotb is not installed in this environment (pip install -e '.[dev]')")
    from sim import runner
    return runner


def test_folded_cores_bit_exact_on_verilator(tmp_path, monkeypatch):
    runner = _runner()
    cores, sources = [], []
    for name, reuse, registered in CORES:
        graph = _graph(name, reuse, registered)
        context = _context(graph, reuse, registered, monkeypatch)
        assert context["ii"] == reuse and context["fold"]["rom_registered"] == registered
        assert context["fold"]["phases"] <= reuse and (context["fold"]["multipliers"] == 0) == (name == "pruned")
        path = tmp_path / f"{context['model']}.sv"
        path.write_text(render_folded_core(context))
        sources.append(path)
        count, rows_in, rows_out = emulated_rows(graph, csim_vectors(graph, VECTORS, seed=reuse))
        (pin,), (pout,) = context["inputs"], context["outputs"]
        cores.append({"module": context["model"], "reuse": reuse, "latency": context["latency"],
                      "in": pin["name"], "in_bits": pin["bits"], "out": pout["name"], "out_bits": pout["bits"],
                      "inputs": _packed(rows_in[0], pin["width"]), "outputs": _packed(rows_out[0], pout["width"]),
                      "fold": context["fold"]})
    tb = tmp_path / "tb_folded.sv"
    tb.write_text(_testbench(cores))
    spec, results = tmp_path / "spec.json", tmp_path / "results.json"
    spec.write_text(json.dumps({"seed": 13, "cores": cores}))
    built = runner.build([*sorted(LIBRARY.glob("*.sv")), *sources, tb], "tb_folded", BUILD_ROOT)
    runner.run_tests(built, TEST_MODULE, test_dir=tmp_path / "run", python_path=[Path(__file__).parent],
                     extra_env={"FINEGRAIN_FOLDED_SPEC": str(spec), "FINEGRAIN_FOLDED_RESULTS": str(results)})
    got = json.loads(results.read_text())
    errors, dropped = [], 0
    for k, c in enumerate(cores):
        t_in, t_out, words = got["t_in"][k], got["t_out"][k], got["outputs"][k]
        if len(t_in) != len(c["inputs"]):
            errors.append(f"{c['module']}: sent {len(t_in)} of {len(c['inputs'])} vectors")
        # the mid-run reset drops the vectors whose out_valid would come after it began
        kept = [i for i, t in enumerate(t_in) if t + c["latency"] <= MID_RESET[0] or t > MID_RESET[1]]
        if t_out != [t_in[i] + c["latency"] for i in kept]:
            errors.append(f"{c['module']}: out_valid at {t_out[:5]}..., expected {c['latency']} cycles after "
                          f"in_valid at {t_in[:5]}..., none for the {len(t_in) - len(kept)} in flight at the reset")
        dropped += len(t_in) - len(kept)
        want = [c["outputs"][i] for i in kept]
        wrong = [i for i, (a, b) in enumerate(zip(words, want)) if int(a, 16) != int(b, 16)]
        if wrong:
            i = wrong[0]
            errors.append(f"{c['module']} ({c['fold']}): {len(wrong)} vectors differ from the emulator, first {i}: "
                          f"rtl {words[i]} != {want[i]}")
        if min(b - a for a, b in zip(t_in, t_in[1:])) != c["reuse"]:
            errors.append(f"{c['module']}: never driven at its full rate")
    assert not errors, "\n".join(errors)
    assert dropped >= 5, f"the reset found only {dropped} vectors in flight"


# --- the choice of PE x SIMD, the estimate, the errors -------------------------------------


def test_fold_shape_takes_the_fewest_multipliers():
    assert fold_shape(12, 32, 2) == (6, 32)  # 192 multipliers; (12, 16) too, with more lanes
    assert fold_shape(12, 32, 5) == (12, 7)
    assert fold_shape(12, 32, 12) == (1, 32)
    assert fold_shape(12, 32, 384) == (1, 1) == fold_shape(12, 32, 10 ** 6)
    assert fold_shape(1, 1, 7) == (1, 1)
    for m, n, r in itertools.product(range(1, 9), range(1, 9), range(1, 20)):
        pe, simd = fold_shape(m, n, r)
        assert -(-m // pe) * -(-n // simd) <= r
        best = min((p * s, p) for p in range(1, m + 1) for s in range(1, n + 1) if -(-m // p) * -(-n // s) <= r)
        assert (pe * simd, pe) == best, (m, n, r)
    with pytest.raises(ValueError):
        fold_shape(4, 4, 0)


def _multiplier_cost(context: dict) -> tuple[int, int]:
    """(multiplier circuits, their estimated LUTs + DSPs): the parallel core's constant
    products (CSD adders or ``*``; a shift is wiring) or the folded core's multipliers."""
    from compiler.estimate import _Costs, _item_cost
    costs = _Costs("xcup")
    count, total = 0, 0.0
    for item in context["layers"][0]["items"]:
        cost = item.get("cost", {}) if item["kind"] == "assign" else {}
        if "muls" in cost or ("adders" in cost and "(csd)" in item.get("comment", "")):
            count += 1
            r = _item_cost(costs, item)
            total += r.lut + r.dsp
    return count, round(total)


@pytest.mark.parametrize("name", sorted(MINI))
def test_multipliers_shrink_as_reuse_grows(name):
    """R = 1 is the parallel core with per-output trees (--no-adder-graph: a CSD or ``*``
    circuit per distinct non-zero product);
    every folded core has fewer multipliers than the parallel core has products, fewer again
    as R grows, down to one; their estimated LUTs + DSPs shrink too."""
    make, m = MINI[name]
    graph = make()
    parallel = rtl_context(graph, RTLOptions(adder_graph=False), SOURCE)
    products = parallel["layers"][0]["products"]
    counts, costs = [], []
    for reuse in (2, 3, 5, m, 2 * m + 1, 10 * m * 36):
        context = folded_core_context(graph, RTLOptions(), SOURCE, reuse)
        count, cost = _multiplier_cost(context)
        assert count == context["fold"]["multipliers"] == context["layers"][0]["products_built"]
        counts.append(count)
        costs.append(cost)
    assert products > counts[0] and all(a > b for a, b in zip(counts, counts[1:])) and counts[-1] == 1, counts
    assert all(a > b for a, b in zip(costs, costs[1:])), costs
    assert _multiplier_cost(parallel)[1] > costs[-3]
    smallest, whole = estimate_context(context, PART), estimate_context(parallel, PART)
    assert smallest["dsp"] <= 1 and smallest["lut"] < whole["lut"]


def test_what_cannot_be_folded_is_a_clear_error():
    g = dense_mini()
    with pytest.raises(ValueError, match="reuse factor of 2 or more"):
        folded_core_context(g, RTLOptions(), SOURCE, 1)
    node = g.nodes[0]
    pool = Node("pool", Op.MAXPOOL, ["x"], ["y"], {"kernel": (3,), "strides": (1,), "pads": (0, 0)})
    x = Tensor("x", (2, 3), TensorKind.INPUT, formats=Formats.uniform((2, 3), OUT))
    pooled = Graph("p", ("x",), ("y",), [pool], {"x": x, "y": Tensor("y", (2, 1), TensorKind.ACTIVATION)})
    with pytest.raises(RTLBackendError, match="'pool'.*only a dense or conv layer can be folded.*reuse factor 1"):
        folded_core_context(pooled, RTLOptions(), SOURCE, 4)
    two = dataclasses.replace(g, nodes=(node, node))
    with pytest.raises(RTLBackendError, match="a folded core is one layer"):
        folded_core_context(two, RTLOptions(), SOURCE, 4)


def test_a_defect_in_the_folded_builder_names_the_layer(monkeypatch):
    """The safety net: a failure inside the builder (here a pretend one in fold_shape) is an
    RTLBackendError naming the layer and the way around it, not a traceback."""
    def broken(m, n, reuse):
        raise IndexError("pretend defect")

    monkeypatch.setattr(folding, "fold_shape", broken)
    with pytest.raises(RTLBackendError, match="node 'fc': the folded RTL core .reuse factor 4. failed on it "
                                              ".IndexError: pretend defect.*reuse factor 1"):
        folded_core_context(dense_mini(), RTLOptions(), SOURCE, 4)


@pytest.mark.parametrize("name, reuse, registered", [("conv", 5, False), ("depthwise", 17, False),
                                                    ("dense", 360, True)])
def test_estimate_tracks_yosys(name, reuse, registered, tmp_path, monkeypatch):
    """The folded cores' cost notes against yosys synth_xilinx (cached by contents under
    build/synth_cache): DSPs and block RAM exact (a multiplier whose exact product is under 9
    bits stays in LUTs; the dense core's 352-phase ROM is a RAMB18), FFs and LUTs within 15%
    (the dense core's relu before the requantize's rounding carry chain costs a LUT per bit:
    515 LUTs, 234 estimated before the estimate's ReLU rule counted them, 471 since)."""
    from compiler.targets import family_of
    from compiler.verify.synth import run_synth

    monkeypatch.setenv("FINEGRAIN_SYNTH_CACHE", str(ROOT / "build" / "synth_cache"))
    context = _context(_graph(name, reuse, registered), reuse, registered, monkeypatch)
    path = tmp_path / f"{context['model']}.sv"
    path.write_text(render_folded_core(context))
    synth = run_synth([*sorted(LIBRARY.glob("*.sv")), path], context["model"], family_of(PART), timeout=900).report()
    estimate = estimate_context(context, PART)
    assert (estimate["dsp"], estimate["bram"]) == (synth["dsp"], synth["bram"])
    assert abs(estimate["ff"] / synth["ff"] - 1) <= 0.15, (estimate["ff"], synth["ff"])
    assert abs(estimate["lut"] / synth["lut"] - 1) <= 0.15, (estimate["lut"], synth["lut"])


def test_a_layer_named_like_its_output_lints_clean(tmp_path):
    """The node 'out' writes the tensor 'out': the folded datapath's channel registers and the
    epilogue's output registers are both named after it and must not be one wire (they were:
    'out__0_q' declared twice)."""
    g = dense_mini()
    g = dataclasses.replace(g, name="fold_named", nodes=(dataclasses.replace(g.nodes[0], name="out"),))
    context = folded_core_context(g, RTLOptions(), SOURCE, 12)  # 11 groups: channel registers
    path = tmp_path / f"{context['model']}.sv"
    path.write_text(render_folded_core(context))
    _runner().lint([*sorted(LIBRARY.glob("*.sv")), path], top=context["model"])


def test_a_product_of_two_non_negative_operands_is_counted_unsigned():
    """yosys (wreduce) multiplies two operands whose sign bits are constant 0 unsigned, without
    them: the small CNN's fc at reuse 3 has an 11-bit mux of two unsigned inputs times a weight
    of 0 or 1 (a 2-bit signed ROM slot), which yosys builds as 10 x 1 bits in LUTs, and a weight
    of 0 to 7 as 10 x 3 bits in a DSP (the signed note counted both as DSPs: 185 for 184)."""
    from compiler.estimate import _Costs

    costs = _Costs("xcup")
    assert costs.mul(11, 2, 11).dsp == 1  # the signed widths: a DSP
    assert (costs.mul(10, 1, 11, False).dsp, costs.mul(10, 1, 11, False).lut) == (0, 10)
    assert costs.mul(10, 3, 14, False).dsp == 1
    assert costs.mul(27, 18, 45, False).dsp == 4  # one more bit each on the DSP's signed ports (27 x 18)
    assert costs.mul(27, 18, 45).dsp == 1
