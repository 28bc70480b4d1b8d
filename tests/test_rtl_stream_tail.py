"""Branches in the RTL stream architecture's tail (compiler/backends/rtl/stream_tail.py): the
layers after the last spatial one run as whole-vector cores, and a layer reading a tail tensor
other than the core before it merges the cores from the one that has that tensor through the
reader into one fully parallel core (a mini-graph with the branch inside).

* torch-exported models: a conv -> flatten -> dense -> relu -> dense + skip Add -> dense (the
  skip over one dense layer) and an MLP whose skip starts at its input (all tail): compiled
  --arch stream, Verilator bit-exact against the emulator on 105 vectors back to back, every
  transfer at the cycle model's cycle, latency and II as schedule.json predicts, the same
  output beats under --stall;
* folding: --reuse-factor 4 folds the conv and the first dense layer and builds the merged
  core's layers at reuse 1 with a warning naming them (bit-exact, timing as predicted); the
  budget (--target-ii) gives the merged core's layers reuse 1 and warns about nothing;
* a tail reading a stream of the spatial part beside the last one: refused, naming the node,
  the tensor and the spatial part, exit 2, no traceback.

Verilator builds are cached under build/rtl_sim (sim.runner keys them by source contents).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_rtl_stream_branches import PLAN, _bit_exact_as_predicted, _compile

from compiler.backends.rtl.stream import _StreamBuilder
from compiler.backends.rtl.stream_budget import _Estimates
from compiler.budget import graph_folding
from compiler.cli import main
from compiler.project import compile_model, load_project


class TailResidual(torch.nn.Module):
    """x [1, 4, 4] -> conv 3x3 pad 1 -> relu -> flatten -> fc1 (32 -> 6) -> relu [h] ->
    fc3(relu(fc2(h)) + h): h skips fc2."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(32, 6), torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(torch.flatten(torch.relu(self.conv(x)), 1)))
        return self.fc3(torch.relu(self.fc2(h)) + h)


class SkipMLP(torch.nn.Module):
    """x [6] -> fc3(relu(fc2(relu(fc1(x))) + x)): the skip starts at the collected input."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x))) + x))


class SpatialSkip(torch.nn.Module):
    """a = relu(conv1(x)); fc(flatten(conv2(a)) + flatten(a)): the tail reads a, a stream of the
    spatial part beside the last one."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Conv2d(2, 2, 3, padding=1)
        self.fc = torch.nn.Linear(32, 3)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        return self.fc(torch.flatten(self.conv2(a), 1) + torch.flatten(a, 1))


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def _export(module: torch.nn.Module, shape: tuple, path: Path) -> Path:
    torch.manual_seed(0)
    net = module()
    with torch.no_grad():  # weights of a few sizes, so the formats' fractions matter
        for p in net.parameters():
            p.uniform_(-1, 1)
    with warnings.catch_warnings():  # the exporter's notes about its own deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, *shape), str(path), input_names=["x"], output_names=["y"],
                          dynamo=False)
    return path


def _tail_cores(out: Path) -> list[list[str]]:
    """The tail's cores, each as the IR nodes of its mini-graph."""
    project = load_project(out)
    builder = _StreamBuilder(project.graph, project.config.rtl_options(), project.source())
    _, collected, tail, _ = builder.split()
    return [[n.name for n in mini.nodes] for mini in builder.tail_cores(tail, collected.name)]


def _tail_residual(tmp_path: Path, *extra) -> tuple[Path, dict, list[str]]:
    """TailResidual compiled --arch stream with ``extra``: (folder, schedule.json, its dense layers)."""
    out = tmp_path / "out"
    schedule = _compile(_export(TailResidual, (1, 4, 4), tmp_path / "tail_residual.onnx"), out, *extra)
    return out, schedule, [n.name for n in load_project(out).graph.nodes if n.op.value == "dense"]


def test_a_skip_over_a_dense_layer_is_one_core_bit_exact(tmp_path):
    out, schedule, (fc1, fc2, fc3) = _tail_residual(tmp_path)
    cores = _tail_cores(out)
    assert len(cores) == 2 and cores[0][-1] == fc1 and fc2 in cores[1] and cores[1][-1] == fc3
    _bit_exact_as_predicted(out, schedule)


def test_an_mlp_with_a_skip_from_its_input_is_one_core_bit_exact(tmp_path):
    model = _export(SkipMLP, (6,), tmp_path / "skip_mlp.onnx")
    out = tmp_path / "out"
    schedule = _compile(model, out)
    assert len(_tail_cores(out)) == 1 and schedule["inputs"][0]["beats"] == 1
    _bit_exact_as_predicted(out, schedule)


def test_folding_holds_the_merged_core_at_reuse_1_with_a_warning(tmp_path):
    out, schedule, (fc1, fc2, fc3) = _tail_residual(tmp_path, "--reuse-factor", "4")
    report = json.loads((out / "report.json").read_text())
    held = [w for w in report["warnings"] if "at reuse factor 1" in w]
    assert len(held) == 1 and f"'{fc2}' (reuse 4), '{fc3}' (reuse 4)" in held[0] and fc1 not in held[0].split(":")[0]
    tail = next(e for e in schedule["engines"] if e["name"] == "tail")
    assert tail["reuse"] == 4  # fc1's folded core paces the collector
    _bit_exact_as_predicted(out, schedule)


def test_the_budget_gives_the_merged_core_reuse_1(tmp_path):
    out, schedule, (fc1, fc2, fc3) = _tail_residual(tmp_path, "--target-ii", "200")
    layers = json.loads((out / "config.json").read_text())["layers"]
    assert layers[fc2]["reuse_factor"] == layers[fc3]["reuse_factor"] == 1
    assert layers[fc1]["reuse_factor"] > 1  # the budget folds the others to the target
    report = json.loads((out / "report.json").read_text())
    assert not [w for w in report["warnings"] if "at reuse factor 1" in w]
    assert schedule["ii_cycles"] <= 200
    # the merged core's layers are held: their only candidate is reuse 1, however cheap folding is
    project = load_project(out)
    config = dataclasses.replace(project.config, layers={})
    estimates = _Estimates(project.graph, config.rtl_options(), project.source(), config.part)
    held = {n.name for n in project.graph.nodes if n.name in estimates.held}
    assert {fc2, fc3} <= held and fc1 not in held
    cheaper_folded = lambda node, reuse: {"lut": 1000 / reuse}  # noqa: E731
    reuse = graph_folding(project.graph, config, cheaper_folded, held=estimates.held).reuse
    assert reuse[fc2] == reuse[fc3] == 1 and reuse[fc1] > 1
    assert graph_folding(project.graph, config, cheaper_folded).reuse[fc2] > 1  # not held: folded


def test_a_tail_reading_the_spatial_part_is_refused(tmp_path, capsys):
    model = _export(SpatialSkip, (1, 4, 4), tmp_path / "spatial_skip.onnx")
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "out"),
                 "--backend", "rtl", "--arch", "stream"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the message as one line, not as wrapped
    assert "node '/Flatten_1' reads '/Relu_output_0', a stream of the model's spatial part, beside the last " \
           "one" in err and "Traceback" not in err
    assert "may branch among its own tensors, but from the spatial part it reads only the last spatial layer's " \
           "output" in err and "--arch parallel" in err
    assert not (tmp_path / "out").exists()


class WideTail(torch.nn.Module):
    """x [1, 40, 40] -> conv 3x3 pad 1 (2 channels) -> relu -> flatten -> fc (3,200 -> 10): 60,800
    constant products, too many for the parallel RTL by default, so --arch auto streams it."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Linear(3200, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_a_collector_larger_than_the_part_is_refused_before_the_tail_is_built(tmp_path, capsys, monkeypatch):
    """The budget (here --max-lut; by default under --arch auto): the tail collects 1,600 beats of
    2 x 10 bits, 32,000 FFs, more than the ECP5-25F's 24,288 at any folding. Said at once, without
    building a tail core (the ESPCN's 196,608-value tail took four minutes to build and estimate
    before the budget said the same)."""
    model = _export(WideTail, (1, 40, 40), tmp_path / "wide_tail.onnx")
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))

    def no_tail_cores(*args):
        raise AssertionError("a tail core was built")

    monkeypatch.setattr(_StreamBuilder, "tail_cores", no_tail_cores)
    capsys.readouterr()
    assert main(["compile", str(model), "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "out"),
                 "--backend", "rtl", "--arch", "stream", "--part", "LFE5U-25F-8MG285C", "--max-lut", "20000"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "does not fit LFE5U-25F-8MG285C in the stream architecture: node '/Flatten' ends the stream" in err
    assert "1,600 beats of 20 bits: 32,000 FFs, more than the LFE5U-25F-8MG285C's 24,288" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_default_compile_no_folding_fits_gets_no_rtl(tmp_path):
    """Under --arch auto the same model is fitted to the part: with the default backends it gets
    its HLS project and a warning instead of RTL; asked for RTL, it is an error; without RTL a
    warning that no folding was chosen."""
    from compiler.errors import UserError

    model = _export(WideTail, (1, 40, 40), tmp_path / "wide_tail.onnx")
    part = "LFE5U-25F-8MG285C"
    project = compile_model(model, PLAN, tmp_path / "default", part=part)
    assert project.config.architecture == "stream" and project.config.backends == ("hls",)
    assert any(w.startswith(f"no RTL written: the model does not fit {part} in the stream architecture")
               for w in project.warnings)
    with pytest.raises(UserError, match="32,000 FFs"):
        compile_model(model, PLAN, tmp_path / "rtl", part=part, backends=("hls", "rtl"))
    assert not (tmp_path / "rtl").exists()
    in_memory = compile_model(model, PLAN, part=part, backends=("hls", "rtl"))  # the fit waits for the write
    with pytest.raises(UserError, match="32,000 FFs"):
        in_memory.write(tmp_path / "later")
    assert not (tmp_path / "later").exists()
    project = compile_model(model, PLAN, part=part, backends=("hls",))
    project.settle_folding()
    assert any(w.startswith("no folding chosen for the part: the model does not fit") for w in project.warnings)


class SmallTail(WideTail):
    """WideTail on a 12 x 12 input (fc 1,152 -> 10)."""

    def __init__(self):
        torch.nn.Module.__init__(self)
        self.conv, self.fc = torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Linear(288, 10)


def test_an_in_memory_compile_fits_the_part_when_first_needed(tmp_path, monkeypatch):
    """compile_model without an output folder emulates without choosing the stream folding (on
    a real-size model, most of the compile); the first estimate, report or write chooses it, the
    same as a compile into a folder does at once.  (A small model, with the parallel RTL's
    default limit lowered below its 5,472 products.)"""
    import compiler.project

    monkeypatch.setattr(compiler.project, "DEFAULT_RTL_MAX_PRODUCTS", 5_000)
    model = _export(SmallTail, (1, 12, 12), tmp_path / "small_tail.onnx")
    written = compile_model(model, PLAN, tmp_path / "written")
    assert written.folding is not None and written.config.layers
    project = compile_model(model, PLAN)
    assert project.folding is None and not project.config.layers
    x = np.random.default_rng(0).uniform(-1, 1, (4, 1, 12, 12))
    assert np.array_equal(project.emulate(x), written.emulate(x))
    ours, theirs = (dict(p.estimate().to_dict(), seconds=None) for p in (project, written))
    assert ours == theirs
    assert project.folding.reuse == written.folding.reuse and project.config.layers == written.config.layers
    project.write(tmp_path / "later")
    for name in ("config.json", "report.json"):
        ours, theirs = (json.loads((tmp_path / f / name).read_text()) for f in ("later", "written"))
        for data in (ours, theirs):
            data.pop("output_dir", None), data.pop("compile_seconds", None)
        assert ours == theirs, name
