"""The Python API (`compile_model`, `Project.trace/estimate/report/csim/sim/synth`) against the
`finegrain` commands' own results: the jet tagger example for emulate, trace, estimate and
report; test_hls's tiny model (3-4-2 with a sigmoid) for csim and sim, whose builds are small
(Verilator builds shared with test_rtl through build/rtl_sim); argument errors naming the
Python argument from Python and the flag from the command line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler import Plan, UserError, compile_model, load_plan, load_project
from compiler.cli import main
from compiler.project_verify import CsimResult, Estimate, Report, SimResult, SynthResult
from compiler.trace import Trace
from test_hls import tiny  # noqa: F401 - test_hls's fixture: its tiny model compiled by the command

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    """The jet tagger compiled from Python into a folder (the project keeps its RTL context, so
    its estimate is not built twice), and its test inputs."""
    tmp = tmp_path_factory.mktemp("jet")
    project = compile_model(JET / "model.onnx", str(JET / "plan.json"), output_dir=tmp / "out")
    assert project.folder == tmp / "out" and project.rtl_context is not None
    x = np.load(JET / "data.npz")["x"][:200]
    np.save(tmp / "x.npy", x)
    return project, x


def _without_seconds(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("seconds", "build_seconds", "run_seconds")}


def test_emulate_and_trace_equal_the_command(jet, tmp_path):
    compiled, x = jet
    out = compiled.folder
    assert main(["emulate", str(out), "--input", str(out.parent / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert np.array_equal(compiled.emulate(x), y)
    project = load_project(out)
    assert project.folder == out and project.compile_seconds == round(compiled.compile_seconds, 4)
    assert np.array_equal(project.emulate(x), y)

    trace = project.trace(x)
    assert isinstance(trace, Trace) and trace.inputs == tuple(project.graph.inputs)
    assert list(trace.layers) == [node.name for node in project.graph.nodes]
    last = trace.layer(project.graph.nodes[-1].name)
    assert last.name == project.graph.outputs[0] and np.array_equal(last.values, y)
    assert trace["x"].op == "input" and trace["x"].values.shape == x.shape
    for name, t in trace.items():  # every tensor, exactly: values are mantissas at each element's fraction
        assert t.values.shape == (len(x), *project.graph.tensor(name).shape), name
        assert np.array_equal(np.ldexp(t.mantissas.astype(np.float64), -t.frac), t.values), name
        lo, hi = (np.broadcast_to(b.astype(np.float64), t.values.shape) for b in t.formats.mantissa_bounds())
        assert (t.mantissas >= lo).all() and (t.mantissas <= hi).all(), f"{name} outside its formats {t.type}"
    # each layer's stages: the accumulator before its requantize is wider than the layer's output
    fc1 = trace.layers[project.graph.nodes[0].name]
    assert len(fc1) > 1 and trace[fc1[0]].formats.width.max() > trace[fc1[-1]].formats.width.max()
    assert trace[project.graph.outputs[0]] is last and trace.outputs == tuple(project.graph.outputs)
    report = json.loads((out / "report.json").read_text())  # types in words, as report.json gives them
    assert last.type == report["outputs"][last.name]["type"] and last.type.startswith("mixed ")
    with pytest.raises(KeyError, match="no tensor 'nowhere'"):
        trace["nowhere"]
    for method in (project.trace, project.emulate):
        with pytest.raises(UserError, match=r"input 'x' has shape \[200, 3\]; expected \[batch, 16\] with batch >= 1 "
                                            r"\(x\)"):
            method(x[:, :3])


def test_estimate_and_report_equal_the_command(jet, capsys):
    project, _ = jet
    out = project.folder
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    recorded = json.loads((out / "report.json").read_text())

    estimate = project.estimate()
    assert isinstance(estimate, Estimate)
    assert _without_seconds(estimate.to_dict()) == _without_seconds(recorded["estimate"])
    assert (estimate.lut, estimate.latency_cycles, estimate.ii_cycles) == \
        (recorded["estimate"]["lut"], recorded["estimate"]["latency_cycles"], 1)
    assert [layer.lut for layer in estimate.layers] == [layer["lut"] for layer in recorded["estimate"]["layers"]]
    assert estimate["lut"] == estimate.lut and dict(estimate)["layers"] == estimate.to_dict()["layers"]

    report = project.report()
    assert isinstance(report, Report) and report.estimate.lut == estimate.lut and report.note is None
    assert report.text() in printed  # the same table, from the same report.json
    assert report["layers"] == recorded["layers"] and [r["name"] for r in report.layers] == \
        [n.name for n in project.graph.nodes]


def test_compile_model_takes_a_path_a_dict_a_plan_or_a_model_proto(jet, tmp_path, monkeypatch):
    compiled, x = jet
    expected = compiled.emulate(x)
    plan_dict = json.loads((JET / "plan.json").read_text())
    by_dict = compile_model(JET / "model.onnx", plan_dict)
    by_proto = compile_model(onnx.load(JET / "model.onnx"), load_plan(JET / "plan.json"))
    for project in (by_dict, by_proto):
        assert np.array_equal(project.emulate(x), expected)
        assert project.resolved_plan()["tensors"] == compiled.resolved_plan()["tensors"]
        assert [n.name for n in project.graph.nodes] == [n.name for n in compiled.graph.nodes]
    assert by_dict.config.plan == "<plan dict>" and by_proto.config.model.startswith("<onnx.ModelProto")

    # a dict's relative paths (per-element .npz files) resolve against the current folder
    folder = ROOT / "examples" / "per_weight_bits"
    per_weight = json.loads((folder / "plan.json").read_text())
    monkeypatch.chdir(folder)
    by_file = compile_model("model.onnx", "plan.json")
    assert np.array_equal(compile_model("model.onnx", per_weight).emulate(x), by_file.emulate(x))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(str(tmp_path / "arrays.npz"))):
        compile_model(folder / "model.onnx", per_weight)


@pytest.mark.parametrize("bad", [3, b"model.onnx", ["plan.json"]])
def test_bad_argument_types_name_the_argument(bad):
    with pytest.raises(UserError, match=r"argument plan must be .*path.*dict.*Plan.*None.*got " + type(bad).__name__):
        compile_model(JET / "model.onnx", bad)
    with pytest.raises(UserError, match=r"argument model must be .*path.*ModelProto.*got " + type(bad).__name__):
        compile_model(bad, JET / "plan.json")
    assert isinstance(load_plan(JET / "plan.json"), Plan)


def test_a_project_whose_folder_another_compile_replaced_says_so(tmp_path):
    """A compiles into out, B replaces it (force): A's csim built B's HLS, compared it with A's
    emulator, reported 148 false mismatches and wrote them into B's report.json; A.report()
    gave B's layers.  Both now stop, naming the way out; load_project gives B, which works."""
    plan = json.loads((JET / "plan.json").read_text())
    a = compile_model(JET / "model.onnx", plan, output_dir=tmp_path / "out", backends=("hls",))
    b = compile_model(JET / "model.onnx", {**plan, "defaults": {**plan["defaults"], "weight": "fixed<3,1>"}},
                      output_dir=tmp_path / "out", force=True, backends=("hls",))
    report = (tmp_path / "out" / "report.json").read_text()
    for method in (a.csim, a.report):
        with pytest.raises(UserError, match=r"no longer holds this project: another compile replaced it.*"
                                            r"project.write\(.*force=True\).*load_project"):
            method()
    assert (tmp_path / "out" / "report.json").read_text() == report
    assert load_project(tmp_path / "out").report().layers == b.report().layers
    a.write(tmp_path / "out", force=True)
    assert a.csim(vectors=20).ok


@pytest.mark.parametrize("call, message", [
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", output_dir=5), r"argument output_dir must be a path"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", part=5), r"argument part must be a string"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", backends="hls"),
     r"argument backends must be a tuple of backend names.*got str 'hls'"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", bogus=1), r"unknown option\(s\) bogus; the options"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", protect=5), r"argument protect \(each item\)"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", data="x.npy"), r"argument data must be the inputs"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", clock_ns=True), r"clock_ns.*got True"),
    (lambda: compile_model(JET / "model.onnx", JET / "plan.json", reuse_factor=True), r"reuse_factor.*got True"),
    (lambda: compile_model(JET / "model.onnx", {"tensors": {5: "fixed<8,2>"}}), r"key 5 in 'tensors' is a int"),
    (lambda: load_plan(None), r"load_plan: the argument path must be a path"),
    (lambda: load_project(None), r"load_project: the argument out_dir must be a path"),
], ids=["output_dir", "part", "backends-string", "unknown-option", "protect", "data-path", "clock-bool", "reuse-bool",
        "plan-key", "load_plan", "load_project"])
def test_python_arguments_of_the_wrong_type_are_named(call, message):
    """Each raised a raw TypeError, AttributeError or a confusing message (backends='hls' was
    "unknown backend(s) ['h', 'l', 's']"), or was taken (True as a clock period)."""
    with pytest.raises(UserError, match=message):
        call()


@pytest.mark.parametrize("x", [[[1.0, 2.0], [3.0]], np.array([1, 2], dtype="timedelta64[s]")],
                         ids=["ragged", "timedelta"])
def test_emulate_names_inputs_that_are_not_arrays_of_numbers(jet, x):
    with pytest.raises(UserError, match=r"input 'x'"):
        jet[0].emulate(x)
    with pytest.raises(UserError, match=r"Project.sim: the argument waves must be True or False, got 'no'"):
        jet[0].sim(waves="no")


def test_messages_name_python_arguments_from_python_and_flags_from_the_command(jet, tmp_path, capsys):
    out = jet[0].folder
    with pytest.raises(UserError) as err:
        compile_model(JET / "model.onnx", JET / "plan.json", output_dir=out)
    assert "pass force=True" in str(err.value) and "--force" not in str(err.value)
    capsys.readouterr()
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out)]) == 2
    message = capsys.readouterr().err
    assert "--force" in message and "force=True" not in message
    with pytest.raises(UserError, match=r"clock period \(clock_ns\)"):
        compile_model(JET / "model.onnx", JET / "plan.json", clock_ns=-1.0)
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(tmp_path / "o"),
                 "--clock-ns", "-1"]) == 2
    assert "(--clock-ns)" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"target_ii choose each layer's folding.*but architecture='parallel' builds"):
        compile_model(JET / "model.onnx", JET / "plan.json", architecture="parallel", target_ii=4)
    in_memory = compile_model(JET / "model.onnx", JET / "plan.json", backends=("hls",))
    with pytest.raises(UserError, match=r"csim builds in the project's output folder.*output_dir="):
        in_memory.csim()


def test_csim_and_sim_equal_the_commands(tiny):  # noqa: F811 - the fixture imported above
    assert main(["csim", str(tiny), "--vectors", "300", "--seed", "5"]) == 0
    csim_cli = json.loads((tiny / "report.json").read_text())["csim"]
    assert main(["sim", str(tiny), "--vectors", "300", "--seed", "5"]) == 0
    sim_cli = json.loads((tiny / "report.json").read_text())["sim"]

    project = load_project(tiny)
    csim = project.csim(vectors=300, seed=5)
    assert isinstance(csim, CsimResult) and csim.ok and csim.vectors == 305
    assert _without_seconds(json.loads((tiny / "report.json").read_text())["csim"]) == _without_seconds(csim_cli)
    assert np.array_equal(csim.outputs["y"], project.emulate(csim.inputs["x"]))
    assert np.array_equal(csim.expected["y"], csim.outputs["y"])
    sim = project.sim(vectors=300, seed=5)
    assert isinstance(sim, SimResult) and sim.ok and sim.vectors == 305
    assert np.array_equal(sim.outputs["y"], sim.expected["y"]) and np.array_equal(sim.outputs["y"], csim.outputs["y"])
    assert _without_seconds(json.loads((tiny / "report.json").read_text())["sim"]) == _without_seconds(sim_cli)
    assert (sim.latency_cycles, sim.ii_cycles) == (sim_cli["latency_cycles"], sim_cli["ii_cycles"]) == \
        (sim.predicted_latency, 1)

    # the user's own inputs, one sample without a batch axis included
    x = np.random.default_rng(0).uniform(-4, 4, size=(7, 3))
    assert project.csim(x).vectors == 7 and project.sim(x[0]).vectors == 1
    with pytest.raises(UserError, match=r"non-finite.*\(x\)"):
        project.csim(np.full((2, 3), np.nan))
    with pytest.raises(UserError, match=re.escape("vectors must be between 0 and")):
        project.sim(vectors=-1)


def test_csim_and_sim_outputs_are_what_the_hardware_computed(tiny, tmp_path):  # noqa: F811 - the fixture above
    """The results' outputs are read back from the C++ and the RTL, not copied from the emulator:
    with a bias changed in a copy's C++ and an output bit inverted in its RTL, they differ from
    ``expected`` in exactly the values the comparison counted as mismatches."""
    copy = tmp_path / "out"
    shutil.copytree(tiny, copy)
    bias = copy / "hls" / "firmware" / "weights" / "fc2_bias.h"  # -6, 17: the first one 16 LSBs larger
    bias.write_text(re.sub(r"= \{(\s*)(-?\d+)", lambda m: f"= {{{m.group(1)}{int(m.group(2)) + 16}", bias.read_text(),
                           count=1))
    top = copy / "rtl" / "tiny.sv"  # the lowest bit of output y's first element inverted
    width = re.search(r"output logic \[(\d+):0\] y\b", top.read_text()).group(1)
    top.write_text(re.sub(r"(assign y = )\{", rf"\g<1>{int(width) + 1}'h1 ^ {{", top.read_text(), count=1))
    project = load_project(copy)
    for result in (project.csim(vectors=50, seed=1), project.sim(vectors=50, seed=1)):
        differs = result.outputs["y"] != result.expected["y"]
        assert result.mismatches > 0 and int(differs.sum()) == result.mismatches, type(result).__name__
        assert not np.isnan(result.outputs["y"]).any()


def test_synth_equals_the_command(tiny, tmp_path, monkeypatch, capsys):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("FINEGRAIN_SYNTH_CACHE", str(tmp_path / "synth"))  # empty: yosys runs for the command
    assert main(["report", str(tiny), "--synth"]) == 0
    recorded = json.loads((tiny / "report.json").read_text())["synth"]
    assert recorded["cached"] is False and recorded["lut"] > 0
    result = load_project(tiny).synth()
    assert isinstance(result, SynthResult) and result.cached  # the same sources: the command's run, from the cache
    assert (result.lut, result.ff, result.dsp, result.carry, result.cells, result.ratio) == \
        (recorded["lut"], recorded["ff"], recorded["dsp"], recorded["carry"], recorded["cells"], recorded["ratio"])
    assert json.loads((tiny / "report.json").read_text())["synth"] == {**recorded, "cached": True}
