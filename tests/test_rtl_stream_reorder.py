"""Trailing reorders in the RTL stream architecture (compiler/backends/rtl/stream_reorder.py): a
model that ends in a DepthToSpace (PixelShuffle) or a Flatten, with elementwise layers after it,
streams its output instead of collecting the frame in a tail.

* sink_reorders moves the elementwise layers before the reorders: the emulator's outputs are
  the same on random and extreme inputs, for torch PixelShuffle models (the Brevitas ESPCN's
  8x8 crop: tests/test_quant_compile.py), and a per-channel constant stays one value per channel
  of the wider stream;
* the output port's beat order is the reorders' (output_order against numpy's own reshape and
  transpose);
* the PixelShuffle model compiled --arch stream: no tail engine, one output beat per input
  pixel, Verilator bit-exact on 105 vectors back to back and under --stall, latency and II as
  predicted.

Verilator builds are cached under build/rtl_sim (sim.runner keys them by source contents).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_rtl_stream_branches import PLAN, _compile, _sim

from compiler.backends.rtl.stream_reorder import SUFFIX, is_reorder, move_elementwise, output_order, sink_reorders
from compiler.emulate import quantize_inputs, run
from compiler.ir import Op
from compiler.plan import parse_plan
from compiler.project import compile_model
from compiler.verify.vectors import csim_vectors



class SubPixel(torch.nn.Module):
    """x [2, 5, 6] -> conv 3x3 pad 1 (8 channels) -> PixelShuffle(2) -> relu -> times a
    per-channel scale -> flatten: [240] (the ESPCN's ending, and a Flatten after it)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 8, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)
        self.scale = torch.nn.Parameter(torch.tensor([0.75, -1.25]).reshape(1, 2, 1, 1))

    def forward(self, x):
        return torch.flatten(torch.relu(self.shuffle(self.conv(x))) * self.scale, 1)


class ElementScale(torch.nn.Module):
    """x [2, 5, 6] -> conv 3x3 pad 1 (8 channels) -> PixelShuffle(2) -> times a constant per
    element -> plus one per row -> relu: [2, 10, 12]; constants no stream engine takes (they
    differ between positions), to check that each element is taken back to its own place."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 8, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)
        generator = torch.Generator().manual_seed(5)
        self.register_buffer("scale", torch.rand(1, 2, 10, 12, generator=generator) * 4 - 2)
        self.register_buffer("shift", torch.rand(1, 1, 10, 1, generator=generator) - 0.5)

    def forward(self, x):
        return torch.relu(self.shuffle(self.conv(x)) * self.scale + self.shift)


def _export(net: torch.nn.Module, path: Path) -> Path:
    with torch.no_grad():
        net.conv.weight.uniform_(-1, 1)
        net.conv.bias.uniform_(-1, 1)
    with warnings.catch_warnings():  # the exporter's notes about its own deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 2, 5, 6), str(path), input_names=["x"], output_names=["y"],
                          dynamo=False)
    return path


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


@pytest.fixture
def subpixel(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return _export(SubPixel(), tmp_path / "subpixel.onnx")


def _same_outputs(graph, moved, x: np.ndarray) -> None:
    out = graph.outputs[0]
    before = run(graph, quantize_inputs(graph, x))[out]
    after = run(moved, quantize_inputs(moved, x))[out]
    assert np.array_equal(before.m, after.m) and before.frac == after.frac


def _check_moved(graph, moved) -> None:
    """The reorders are last, and the output is the model's own tensor."""
    assert moved.outputs == graph.outputs
    first_reorder = next(i for i, n in enumerate(moved.nodes) if is_reorder(n))
    assert all(is_reorder(n) for n in moved.nodes[first_reorder:])
    assert moved.tensor(moved.outputs[0]) is graph.tensor(graph.outputs[0])


def test_sink_reorders_keeps_every_output_of_a_pixel_shuffle(subpixel):
    graph = compile_model(subpixel, parse_plan(PLAN, subpixel.parent), backends=[]).graph
    moved = sink_reorders(graph)
    _check_moved(graph, moved)
    ops = [n.op for n in moved.nodes]
    assert ops.index(Op.MUL) < ops.index(Op.TRANSPOSE) and ops.index(Op.RELU) < ops.index(Op.TRANSPOSE)
    mul = next(n for n in moved.nodes if n.op == Op.MUL)
    scale = moved.tensor(mul.inputs[1])
    assert scale.name.endswith(SUFFIX) and scale.shape == (8, 1, 1)  # one value per channel of the 8
    assert list(scale.data.ravel()[::4]) == list(graph.tensor(mul.inputs[1].removesuffix(SUFFIX)).data.ravel())
    _same_outputs(graph, moved, csim_vectors(graph, 200, seed=1)["x"])


def test_sink_reorders_takes_each_element_back_to_its_place(tmp_path):
    """Constants per element and per row, and per-element formats: every one lands where the
    element it multiplies or adds to is before the DepthToSpace."""
    torch.manual_seed(0)
    path = _export(ElementScale(), tmp_path / "element_scale.onnx")
    graph = compile_model(path, parse_plan(PLAN, tmp_path), backends=[]).graph
    moved = move_elementwise(graph)
    _check_moved(graph, moved)
    mul = next(n for n in moved.nodes if n.op == Op.MUL)
    assert moved.tensor(mul.inputs[1]).shape == (8, 5, 6)  # per element: nothing to compact
    assert len(moved.tensor(mul.outputs[0]).formats.distinct()) > 1  # per-element formats, moved too
    _same_outputs(graph, moved, csim_vectors(graph, 200, seed=3)["x"])
    # no stream engine computes a constant per position: the builder keeps the ending as a tail
    assert sink_reorders(graph) is graph
    schedule = _compile(path, tmp_path / "out")
    assert schedule["engines"][-1]["name"] == "tail" and schedule["outputs"][0]["beats"] == 1


def test_a_model_without_an_elementwise_ending_is_left_alone(subpixel):
    graph = compile_model(subpixel, parse_plan(PLAN, subpixel.parent), backends=[]).graph
    moved = sink_reorders(graph)
    assert sink_reorders(moved) is moved  # nothing after the reorders any more


@pytest.mark.parametrize("shape,chain", [
    ((8, 5, 6), [("reshape", (2, 2, 2, 5, 6)), ("transpose", (0, 3, 1, 4, 2)), ("reshape", (2, 10, 12)),
                 ("reshape", (240,))]),
    ((3, 4, 1), [("transpose", (2, 0, 1))]),
    ((6, 1, 7), [("reshape", (42,))]),
])
def test_output_order_is_the_reorders(shape, chain):
    """Beat p, lane c of the stream [C, H, W] holds element (c, p) of it; output_order says where
    that element lands in the output, as numpy's reshape and transpose put it."""
    from compiler.ir import Graph, Node, Tensor, TensorKind

    tensors, nodes, current, array = {"s": Tensor("s", shape, TensorKind.ACTIVATION)}, [], "s", \
        np.arange(int(np.prod(shape))).reshape(shape)
    for k, (op, arg) in enumerate(chain):
        array = array.reshape(arg) if op == "reshape" else array.transpose(arg)
        name = f"t{k}"
        tensors[name] = Tensor(name, array.shape, TensorKind.ACTIVATION)
        nodes.append(Node(f"n{k}", Op.RESHAPE if op == "reshape" else Op.TRANSPOSE, (current,), (name,),
                          {"shape": arg} if op == "reshape" else {"perm": arg}))
        current = name
    graph = Graph("g", ("s",), (current,), tuple(nodes), tensors)
    order = output_order(graph, nodes, shape)
    c, h, w = shape
    beats = np.arange(c * h * w).reshape(c, h * w).T.reshape(-1)  # the stream element of beat p, lane c
    out = array.reshape(-1)  # the stream element at each output position
    assert [int(out[i]) for i in order] == [int(e) for e in beats]


def test_a_pixel_shuffle_streams_its_output_bit_exact(subpixel, tmp_path):
    """Under --target-ii 60 (the conv's padded 7x8 frame takes 56 cycles; the reorders, the
    output port's order, take its 30 beats: before, the budget counted the DepthToSpace's 120
    output pixels and refused the target)."""
    out = tmp_path / "out"
    schedule = _compile(subpixel, out, "--target-ii", "60")
    assert schedule["ii_cycles"] <= 60
    assert [e["name"] for e in schedule["engines"]][-1] != "tail"
    assert not any(e["beats_out"] == 1 for e in schedule["engines"])
    port = schedule["outputs"][0]
    assert (port["beats"], port["lanes"], port["size"]) == (30, 8, 240)
    # beat 0: channel 0's and channel 1's 2x2 blocks at the top left of the 10x12 output, flattened
    assert sorted(port["order"][:8]) == [0, 1, 12, 13, 120, 121, 132, 133]
    code, report, recorded = _sim(out, "--vectors", "100")
    assert code == 0 and report == {**report, "vectors": 105, "mismatches": 0,
                                    "latency_cycles": schedule["latency_cycles"], "ii_cycles": schedule["ii_cycles"]}
    assert recorded["errors"] == [] and recorded["stopped"] is None
    words = [word for _, word in recorded["outputs"]["y"]]
    code, report, recorded = _sim(out, "--vectors", "100", "--stall")
    assert code == 0 and report["mismatches"] == 0 and report["output_beats"]["received"] == 105 * 30
    assert [word for _, word in recorded["outputs"]["y"]] == words and recorded["errors"] == []
    assert json.loads((out / "report.json").read_text())["sim"]["mismatches"] == 0
