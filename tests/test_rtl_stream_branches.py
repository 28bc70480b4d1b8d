"""Branches in the RTL stream architecture (design13.md, compiler/backends/rtl/stream.py): a
stream read by two engines (a fork into skip FIFOs), a residual Add and a channel Concat of two
streams (a join in front of the engine's one-pixel window), skip FIFO depths from the cycle model.

* stream_model.Graph runs a chain exactly as Chain does, and a fork/join graph;
* a residual block (conv 3x3 pad 1 -> relu -> conv 3x3 pad 1 -> Add with the block's input ->
  relu -> max pool -> flatten -> dense) at reuse 1 and 2, a two-branch Concat (1x1 conv ||
  3x3 conv on channels) and test_hls_stream's residual model (two forks, an Add and a Concat):
  Verilator bit-exact on 105 vectors, latency and II as predicted, and under --stall the same
  output beats;
* the skip FIFO depth rule: one slot less slows the II, a FIFO shorter than the long branch's
  lag deadlocks, in the model and in Verilator alike (the sim's idle timeout, not a hang);
* a stream read by a tail layer beside the last stream: a clear error.

Verilator builds are cached under build/rtl_sim (sim.runner keys them by source contents).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.backends.rtl.stream import stream_context
from compiler.backends.rtl.stream_timing import _model_spec
from compiler.backends.rtl.stream_model import PORT, Chain, Graph, Stuck, simulate, skip_depths, timing
from compiler.cli import main
from compiler.project import compile_model, load_project

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"defaults": {"input": "fixed<8,2,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                     "bias": "fixed<8,2,RND_CONV,SAT>", "activation": "fixed<10,4,RND_CONV,SAT>"}}


def _save(path: Path, name: str, nodes, inits, x_shape, y_shape) -> Path:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *y_shape])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _weights(seed: int, **shapes) -> list:
    rng = np.random.default_rng(seed)
    return [numpy_helper.from_array(rng.uniform(-1, 1, size=s).astype(np.float32), n) for n, s in shapes.items()]


def residual_model(path: Path) -> Path:
    """x [2,6,5] -> conv 3x3 pad 1 -> relu -> conv 3x3 pad 1 -> add(., x) -> relu -> maxpool 2
    -> flatten -> gemm 4: the input stream is read by the first conv and by the Add."""
    inits = _weights(11, w1=(2, 2, 3, 3), b1=(2,), w2=(2, 2, 3, 3), b2=(2,), wf=(4, 12), bf=(4,))
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
             helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    return _save(path, "residual", nodes, inits, (2, 6, 5), (4,))


def concat_model(path: Path) -> Path:
    """x [2,5,6] -> (conv 1x1 -> 2 ch || conv 3x3 pad 1 -> 3 ch) -> concat on channels -> relu
    -> maxpool 2 -> flatten -> gemm 3."""
    inits = _weights(12, wa=(2, 2, 1, 1), ba=(2,), wb=(3, 2, 3, 3), bb=(3,), wf=(3, 30), bf=(3,))
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="branch_1x1"),
             helper.make_node("Conv", ["x", "wb", "bb"], ["b"], name="branch_3x3", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
             helper.make_node("Relu", ["cat"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    return _save(path, "inception", nodes, inits, (2, 5, 6), (3,))


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def _compile(model: Path, out: Path, *extra) -> dict:
    plan = out.parent / f"{out.name}.plan.json"
    plan.write_text(json.dumps(PLAN))
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl", "--arch", "stream",
                 *extra]) == 0
    return json.loads((out / "rtl" / "schedule.json").read_text())


def _sim(out: Path, *extra) -> tuple[int, dict, dict]:
    """Exit code, report.json's sim, and what the testbench recorded."""
    code = main(["sim", str(out), *extra])
    recorded = json.loads((out / "rtl" / "sim" / "results.json").read_text())
    return code, json.loads((out / "report.json").read_text())["sim"], recorded


def _model_spec_of(out: Path) -> list[dict]:
    """stream_model's engine specs of the stream top compiled into ``out``."""
    project = load_project(out)
    context = stream_context(project.graph, project.config.rtl_options(), project.source(),
                             project.config.reuse_factors(project.graph))
    return _model_spec(context["engines"])


def _bit_exact_as_predicted(out: Path, schedule: dict) -> list:
    """105 vectors back to back: bit-exact, latency and II as schedule.json predicts, and every
    input and output transfer at the cycle the cycle model gives it; then the same output
    beats under --stall.  Returns the output words."""
    code, report, recorded = _sim(out, "--vectors", "100")
    assert code == 0 and report == {**report, "vectors": 105, "mismatches": 0,
                                    "latency_cycles": schedule["latency_cycles"], "ii_cycles": schedule["ii_cycles"]}
    assert recorded["errors"] == [] and recorded["stopped"] is None
    start = recorded["inputs"]["x"][0]
    model_in, model_out = simulate(_model_spec_of(out), schedule["inputs"][0]["beats"], 105)
    assert [c - start for c in recorded["inputs"]["x"]] == [c - model_in[0] for c in model_in]
    assert [c - start for c, _ in recorded["outputs"]["y"]] == [c - model_in[0] for c in model_out]
    words = [word for _, word in recorded["outputs"]["y"]]
    code, report, recorded = _sim(out, "--vectors", "100", "--stall")
    assert code == 0 and report["mismatches"] == 0 and report["output_beats"]["received"] == 105
    assert [word for _, word in recorded["outputs"]["y"]] == words and recorded["errors"] == []
    return words


def _skips(schedule: dict) -> dict[str, int]:
    return {e["name"]: e["fifo_depth"] for e in schedule["engines"] if e["ops"] == "skip FIFO"}


# --- the cycle model ------------------------------------------------------------------------
CONV = {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 3, "fifo_depth": 6}
POINT = {"window": (4, 5, 1, 1, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4}


def test_graph_model_runs_a_chain_as_chain_does():
    chain = [CONV, {**CONV, "latency": 2, "fifo_depth": 5}, POINT, {"collect": (20, 3), "latency": 2, "fifo_depth": 4}]
    graph = [{**spec, "name": f"e{i}", "inputs": [f"e{i - 1}" if i else PORT]} for i, spec in enumerate(chain)]
    for stall in (None, lambda cycle: cycle % 7 < 4):
        assert simulate(graph, 20, 5, out_ready=stall) == simulate(chain, 20, 5, out_ready=stall)
    # stepped side by side, the ports show the same values every cycle
    a, b = Chain(chain), Graph(graph)
    for cycle in range(300):
        valid = cycle % 5 != 2
        assert a.step(valid, cycle, cycle % 3 != 0) == b.step(valid, cycle, cycle % 3 != 0), cycle


def test_fork_and_join_in_the_model():
    """x -> (skip FIFO -> padded 3x3 conv) || skip FIFO -> add: every beat of both branches
    meets its partner at the join, in order, and the short branch's FIFO is sized to the
    long branch's lag: one less slows the II, far less deadlocks."""
    graph = [{"name": "to_conv", "inputs": [PORT], "latency": 0, "fifo_depth": None},
             {"name": "to_add", "inputs": [PORT], "latency": 0, "fifo_depth": None},
             {**CONV, "name": "conv", "inputs": ["to_conv"]},
             {**POINT, "name": "add", "inputs": ["conv", "to_add"]}]
    depths = skip_depths(graph, 20, ["to_conv", "to_add"])
    sized = [{**spec, "fifo_depth": depths.get(spec["name"], spec["fifo_depth"])} for spec in graph]
    net = Graph(sized)
    sent, pairs = 0, []
    for _ in range(600):
        ports = net.step(True, sent, True)  # the input beat's data is its index
        sent += bool(ports["in_ready"])
        if ports["out_valid"]:
            (taps, x), = ports["out_data"]  # the add's one-pixel window of the joined beat
            pairs.append((taps[4], x))
    # the conv's centre tap (its window's data) is the very pixel the skip branch brings
    assert pairs == [(i, i) for i in range(len(pairs))] and len(pairs) > 100
    best = timing(sized, 20)
    short = {**depths, "to_add": depths["to_add"] - 1}
    slower = timing([{**spec, "fifo_depth": short.get(spec["name"], spec["fifo_depth"])} for spec in graph], 20)
    assert slower[1] > best[1]
    with pytest.raises(Stuck, match="deadlocked at cycle 10: nothing can move again"):  # no watchdog's wait
        timing([{**spec, "fifo_depth": 2 if spec["name"] == "to_add" else depths.get(spec["name"], spec["fifo_depth"])}
                for spec in graph], 20)


# --- the stream top through Verilator -----------------------------------------------------------
def test_residual_block_bit_exact_at_reuse_1_and_2(tmp_path):
    """The input stream forks into the block's first conv and the Add's skip FIFO; at reuse 2
    the convs are folded (and the II grows with them)."""
    model = residual_model(tmp_path / "residual.onnx")
    schedules = {}
    for reuse in (1, 2):
        out = tmp_path / f"reuse{reuse}"
        schedule = schedules[reuse] = _compile(model, out, "--reuse-factor", str(reuse))
        assert set(_skips(schedule)) == {"x_to_conv1", "x_to_skip"}
        top = (out / "rtl" / "residual.sv").read_text()
        assert "assign x_ready = x_fork_ready;" in top
        assert "assign skip_join_data = {x_to_skip_data, conv2_data};" in top
        _bit_exact_as_predicted(out, schedule)
    assert schedules[2]["ii_cycles"] > schedules[1]["ii_cycles"]


def test_concat_of_two_branches_bit_exact(tmp_path):
    """x forks into a 1x1 and a padded 3x3 conv; their streams join into the concat's core
    (the 1x1 branch's 2 channels in lanes 0-1, the 3x3 branch's 3 in lanes 2-4)."""
    out = tmp_path / "out"
    schedule = _compile(concat_model(tmp_path / "concat.onnx"), out)
    assert set(_skips(schedule)) == {"x_to_branch_1x1", "x_to_branch_3x3"}
    assert "cat_join_data = {branch_3x3_data, branch_1x1_data};" in (out / "rtl" / "inception.sv").read_text()
    _bit_exact_as_predicted(out, schedule)


def test_the_io_stream_residual_model_bit_exact(tmp_path):
    """test_hls_stream's residual model in RTL: a fork read by a conv and an Add, a second one
    read by a ReLU and the Concat of the tensor with its own ReLU, per-channel formats, padded
    max pooling, a strided dilated conv, then the tail."""
    from test_hls_stream import _CHANNELS, _DEFAULTS, _residual_model

    out = tmp_path / "out"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": _DEFAULTS, "tensors": {"a_relu": {"axis": 1, "formats": _CHANNELS[:3]},
                                                                   "d_relu": {"axis": 1, "formats": _CHANNELS}}}))
    assert main(["compile", str(_residual_model(tmp_path / "m.onnx")), "--plan", str(plan), "-o", str(out),
                 "--backend", "rtl", "--arch", "stream"]) == 0
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert set(_skips(schedule)) == {"a_relu_to_conv_b", "a_relu_to_skip", "d_to_relu_d", "d_to_cat"}
    _bit_exact_as_predicted(out, schedule)


def _with_skip_depth(out: Path, tmp_path: Path, name: str, depth: int, timing_: tuple[int, int] | None) -> Path:
    """A copy of ``out`` whose skip FIFO ``name`` has ``depth`` slots, and whose schedule.json
    predicts ``timing_`` (the model's (latency, II) at that depth)."""
    copy = tmp_path / f"{name}_{depth}"
    shutil.copytree(out, copy)
    top = copy / "rtl" / "residual.sv"
    text, n = re.subn(rf"\.DEPTH\(\d+\)\) u_{name} \(", f".DEPTH({depth})) u_{name} (", top.read_text())
    assert n == 1
    top.write_text(text)
    schedule = json.loads((copy / "rtl" / "schedule.json").read_text())
    if timing_ is not None:
        schedule["latency_cycles"], schedule["ii_cycles"] = timing_
    (copy / "rtl" / "schedule.json").write_text(json.dumps(schedule))
    return copy


def test_skip_fifo_one_slot_less_slows_the_ii_and_a_short_one_deadlocks(tmp_path, capsys):
    model = residual_model(tmp_path / "residual.onnx")
    out = tmp_path / "out"
    schedule = _compile(model, out)
    depth = _skips(schedule)["x_to_skip"]
    spec = _model_spec_of(out)

    def model_timing(d: int):
        return timing([{**e, "fifo_depth": d} if e["name"] == "x_to_skip" else e for e in spec], 30)

    assert model_timing(depth) == (schedule["latency_cycles"], schedule["ii_cycles"])
    slower = model_timing(depth - 1)
    assert slower[1] > schedule["ii_cycles"]
    with pytest.raises(Stuck, match="deadlocked"):
        model_timing(8)  # less than the two convs' line buffers hold: the join never gets conv2's pixel

    # Verilator: one slot less measures the model's slower latency and II, cycle for cycle
    code, report, _ = _sim(_with_skip_depth(out, tmp_path, "x_to_skip", depth - 1, slower), "--vectors", "20")
    assert code == 0 and report["mismatches"] == 0 and (report["latency_cycles"], report["ii_cycles"]) == slower
    # and 8 slots deadlock: the testbench gives up when nothing moves
    capsys.readouterr()
    code, report, recorded = _sim(_with_skip_depth(out, tmp_path, "x_to_skip", 8, None), "--vectors", "20")
    assert code == 1 and "nothing moved" in recorded["stopped"] and report["output_beats"]["received"] == 0


def test_a_tail_reading_a_stream_beside_the_last_is_refused(tmp_path, capsys):
    """flatten(conv(x)) + flatten(x) into one dense layer: the tail would read two streams."""
    inits = _weights(13, w=(2, 2, 1, 1), b=(2,), wf=(3, 8), bf=(3,))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
             helper.make_node("Flatten", ["c"], ["fc"], name="flatten_c"),
             helper.make_node("Flatten", ["x"], ["fx"], name="flatten_x"),
             helper.make_node("Add", ["fc", "fx"], ["s"], name="add"),
             helper.make_node("Gemm", ["s", "wf", "bf"], ["y"], name="fc", transB=1)]
    model = _save(tmp_path / "m.onnx", "two_tails", nodes, inits, (2, 2, 2), (3,))
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "out"),
                 "--backend", "rtl", "--arch", "stream"]) == 2
    err = capsys.readouterr().err
    assert "node 'flatten_x' reads 'x'" in err and "--arch parallel" in err and "Traceback" not in err



def test_max_lut_counts_the_skip_fifos(tmp_path):
    """--max-lut just under the estimate of the design a generous budget picks: the budget summed
    its layers only, so it kept that design, whose skip FIFOs put the whole estimate (finegrain
    report's) above the limit.  Now the whole design's estimate is within it."""
    model = residual_model(tmp_path / "residual.onnx")
    free = compile_model(model, PLAN, architecture="stream", max_lut=10 ** 6)
    skips = sum(e["lut"] for e in free.estimate()["layers"] if e["ops"] == "skip FIFO")
    assert skips > 5 and sum(row["lut"] for row in free.folding.report()) <= free.estimate()["lut"] - skips
    limit = free.estimate()["lut"] - 5
    folded = compile_model(model, PLAN, architecture="stream", max_lut=limit)
    assert folded.estimate()["lut"] <= limit


def test_an_axi_top_asked_of_the_stream_architecture_is_a_warning(tmp_path):
    """rtl_interface='axis' wraps the parallel top only: with the stream architecture nothing was
    written and nothing said so."""
    project = compile_model(residual_model(tmp_path / "residual.onnx"), PLAN, architecture="stream",
                            rtl_interface="axis", output_dir=tmp_path / "out", backends=("rtl",))
    assert any("rtl_interface='axis' wraps the fully parallel top" in w for w in project.warnings), project.warnings
    assert not list((tmp_path / "out" / "rtl").glob("*_axis.sv"))


def test_a_stream_top_has_its_slowest_cores_timing_verdict(tmp_path, capsys):
    """At 0.1 ns (the least --clock-ns) the parallel top said it does NOT meet the clock; the
    stream top said nothing (no timing in schedule.json or the report).  Its verdict is its
    slowest core's, and says so."""
    out = tmp_path / "out"
    timing = _compile(residual_model(tmp_path / "residual.onnx"), out, "--clock-ns", "0.1")["timing"]
    assert timing["met"] is False and timing["critical_ns"] > 0.1 and timing["scope"] == "the engines' cores"
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "does NOT meet the 0.1 ns clock (the engines' cores)" in " ".join(capsys.readouterr().out.split())


def test_a_layer_folded_far_costs_the_cycle_model_a_few_cycles_per_issue(tmp_path):
    """The cycle model skips the cycles in which a folded engine only counts down.  conv1 folded
    9 times: Verilator makes every input and output transfer at the cycle the model gives, on
    105 vectors.  Folded 100,000 times (which the model's watchdog stopped when it ran every
    cycle): the top compiles, its II conv1's 30 windows, 100,000 cycles apart (the padded
    frame's beats between an image's last window and the next one's first are far fewer: at
    reuse 9 they make the II 278 cycles, not 270)."""
    model = residual_model(tmp_path / "residual.onnx")
    schedules = {}
    for reuse in (9, 100_000):
        config = tmp_path / f"layers{reuse}.json"
        config.write_text(json.dumps({"conv1": {"reuse_factor": reuse}}))
        schedules[reuse] = _compile(model, tmp_path / f"reuse{reuse}", "--layer-config", str(config))
    assert schedules[100_000]["ii_cycles"] == 30 * 100_000 and schedules[9]["ii_cycles"] == 278
    _bit_exact_as_predicted(tmp_path / "reuse9", schedules[9])
