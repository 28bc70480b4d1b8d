"""`Project.trace`: every tensor a model computes on a batch, layer by layer, exactly as the
emulator computes it (values as float64 and as each element's integer mantissa), for comparing
with a float model or another tool tensor by tensor, as hls4ml's ``trace`` does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .type_names import readable_type


@dataclass(frozen=True, eq=False)
class TracedTensor:
    """One tensor's values on a batch, exactly: ``values == mantissas * 2.0**-frac``.

    ``mantissas`` are each element's integer at its own format's fractional bits (int64 where
    they fit, else Python ints); ``values`` the same as float64 (exact up to 53 bits).  Values
    are the IR's: a quantized model's output scale (``model_scale``) is not applied."""

    name: str  # the IR tensor
    onnx_name: str | None  # the ONNX tensor it stands for, if any
    layer: str | None  # the layer (IR node) computing it; None for a model input
    op: str  # the stage that produced it ("input" for a model input)
    values: np.ndarray  # float64, [batch, *shape]
    mantissas: np.ndarray  # integers, [batch, *shape]
    frac: np.ndarray  # fractional bits per element, [*shape]
    formats: object  # the tensor's `Formats` (per element)
    type: str  # the formats in words, as report.json writes them
    model_scale: object = None


@dataclass(frozen=True, eq=False)
class Trace(Mapping):
    """Every tensor the model computes on a batch, in the order the emulator computes them,
    keyed by IR tensor name (or its ONNX name); ``layers`` lists each layer's tensors."""

    tensors: dict[str, TracedTensor]
    layers: dict[str, tuple[str, ...]]  # layer -> its stages' output tensors, the last its output
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def __getitem__(self, name) -> TracedTensor:
        if name in self.tensors:
            return self.tensors[name]
        for t in self.tensors.values():
            if t.onnx_name == name:
                return t
        raise KeyError(f"no tensor {name!r} in the trace; its tensors are {list(self.tensors)}")

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self):
        return len(self.tensors)

    def layer(self, name: str) -> TracedTensor:
        """Layer ``name``'s output (its last stage's)."""
        if name not in self.layers:
            raise KeyError(f"no layer {name!r}; the layers are {list(self.layers)}")
        return self.tensors[self.layers[name][-1]]


def trace(project, x) -> Trace:
    """The `Trace` of ``project`` on ``x`` (see `Project.trace`)."""
    from .emulate import EmulationError, quantize_inputs, run
    from .inputs import check_inputs
    from .mantissa import max_abs_bits, rescale

    graph = project.graph
    inputs = check_inputs(x, graph, "x")
    try:
        values = run(graph, quantize_inputs(graph, inputs))
    except (EmulationError, ValueError) as err:
        raise UserError(f"cannot emulate the model on x: {err}") from None

    def traced(name: str, layer, op: str) -> TracedTensor:
        t, value = graph.tensor(name), values[name]
        frac = (t.formats.frac_bits if t.formats is not None else np.full(t.shape, value.frac)).astype(np.int64)
        m = rescale(value.m, frac - value.frac)  # exact: each element fits its own format
        m = m.astype(np.int64) if max_abs_bits(m) < 63 else m
        return TracedTensor(name, t.onnx_name, layer, op, value.to_float(), m, frac,
                            t.formats, readable_type(t.formats) if t.formats is not None else "-", t.model_scale)

    tensors = {name: traced(name, None, "input") for name in graph.inputs}
    layers = {}
    for node in graph.nodes:
        stages = node.stages()
        for stage in stages:
            tensors[stage.outputs[0]] = traced(stage.outputs[0], node.name, stage.kind)
        layers[node.name] = tuple(s.outputs[0] for s in stages)
    return Trace(tensors, layers, tuple(graph.inputs), tuple(graph.outputs))
