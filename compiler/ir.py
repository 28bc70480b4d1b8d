"""The finegrain IR: a small typed dataflow graph with a fixed-point format per element.

Contract (every pass keeps it, `verify` checks it):

* A :class:`Graph` holds tensors by name and nodes in topological order.  Shapes never
  include the batch axis; the emulator adds it.
* A :class:`Tensor` is an activation (produced by a node or a graph input) or a constant
  (``data`` set).  A constant holds float64 data until the plan is applied, then integer
  mantissas at the common fraction ``data_frac`` together with per-element ``formats``.
  An activation's ``formats`` are set by the plan (graph inputs, requantize outputs) or by
  width sizing (everything exact).  A constant a model's quantizer made carries that
  ``quantizer``; a graph input or output whose model value is not its IR value (a scale that
  is not a power of two) carries ``model_scale``: model value = model_scale * IR value.
* A :class:`Node` computes ``outputs`` from ``inputs`` by ``op``.  A fused layer is a node
  with an ``epilogue``: the main op writes the tensor ``epilogue[0].inputs[0]`` (the
  accumulator), then each epilogue node runs in turn; the last one writes ``outputs[0]``.
  ``node.stages()`` gives the same chain as plain nodes, which is how the emulator runs it.

Everything is frozen: passes build new graphs with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from .fixed import FixedType, Formats

if TYPE_CHECKING:
    from .quantizer import Quantizer


class Op(Enum):
    """Operations.  Attribute names per op are listed in ``ATTRS``."""

    DENSE = "dense"  # (x, weight[out,in], [bias[out]]): y[..., j] = sum_k W[j,k] x[..., k] + b[j]
    CONV = "conv"  # (x[C,*S], weight[M, C/g, *K], [bias[M]]), ONNX Conv semantics, 1D or 2D
    BATCHNORM = "batchnorm"  # (x, scale, bias, mean, var): removed by fold_batchnorm
    ADD = "add"  # (a, b) elementwise with numpy broadcasting; b may be a constant
    MUL = "mul"  # (a, b) elementwise with numpy broadcasting; b may be a constant
    RELU = "relu"  # (x,)
    LEAKY_RELU = "leaky_relu"  # (x, alpha[]): x if x >= 0 else alpha * x
    CLIP = "clip"  # (x, low[], high[]): min(max(x, low), high); bounds are exact constants
    MAXPOOL = "maxpool"  # (x,) attrs kernel, strides, pads, dilations
    AVGPOOL = "avgpool"  # (x, reciprocal[out shape]): window sum times a per-output constant
    CONCAT = "concat"  # (a, b, ...) attrs axis (without batch)
    RESHAPE = "reshape"  # (x,) attrs shape (without batch)
    TRANSPOSE = "transpose"  # (x,) attrs perm (without batch)
    REQUANTIZE = "requantize"  # (x,): convert into the output tensor's formats
    TABLE = "table"  # (x,) an elementwise function as a table look-up, attrs function, params, table
    #                  (compiler/table_functions.py; emulate.py)
    SOFTMAX = "softmax"  # (x,) table look-ups, attrs see emulate.py
    QUANT = "quant"  # (x,) a model's quantizer, attrs quantizer (compiler/quantizer.py): removed by lower_quant


# Ops whose output values are a re-arrangement of input values: never re-quantized by a
# plan default, and exact by construction.
LAYOUT_OPS = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT, Op.MAXPOOL})

ATTRS: Mapping[Op, frozenset] = MappingProxyType({
    Op.CONV: frozenset({"strides", "pads", "dilations", "groups"}),
    Op.BATCHNORM: frozenset({"epsilon"}),
    Op.MAXPOOL: frozenset({"kernel", "strides", "pads", "dilations"}),
    Op.AVGPOOL: frozenset({"kernel", "strides", "pads", "count_include_pad"}),
    Op.CONCAT: frozenset({"axis"}),
    Op.RESHAPE: frozenset({"shape"}),
    Op.TRANSPOSE: frozenset({"perm"}),
    # input_scale: lower_quant._table; rescale: apply_plan._rescale_after
    Op.TABLE: frozenset({"function", "params", "table", "input_scale", "rescale"}),
    Op.SOFTMAX: frozenset({"axis", "exp_table", "inv_table"}),
    Op.QUANT: frozenset({"quantizer"}),
})


@dataclass(frozen=True, eq=False)
class LookupTable:
    """A ROM: the input is converted into ``input`` (its rounding/overflow modes apply),
    and code ``c`` (a mantissa of ``input``) reads ``values[c - input.min_mantissa]``,
    a mantissa of ``output``.  The table holds one entry per input code."""

    input: FixedType
    output: FixedType
    values: np.ndarray

    def __post_init__(self):
        size = self.input.max_mantissa - self.input.min_mantissa + 1
        values = np.asarray(self.values, dtype=np.int64)
        if values.shape != (size,):
            raise IRError(f"table for input {self.input} needs {size} entries, got {values.shape}")
        if values.min() < self.output.min_mantissa or values.max() > self.output.max_mantissa:
            raise IRError(f"table entries do not fit the output type {self.output}")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    def __str__(self) -> str:
        return f"table[{self.values.size}]({self.input} -> {self.output})"


class TensorKind(Enum):
    INPUT = "input"
    ACTIVATION = "activation"
    WEIGHT = "weight"  # multiplicative constant
    BIAS = "bias"  # additive constant
    CONST = "const"  # other constant (clip bounds, tables, pooling reciprocals)


class IRError(Exception):
    """The graph breaks the IR contract; the message names the node or tensor."""


@dataclass(frozen=True, eq=False)
class Tensor:
    name: str
    shape: tuple[int, ...]
    kind: TensorKind
    formats: Formats | None = None
    data: np.ndarray | None = None  # constants only
    data_frac: int = 0  # constants: data holds mantissas at this many fractional bits
    float_data: np.ndarray | None = None  # constants: the model's float values (after folding)
    onnx_name: str | None = None  # the name a plan uses for this tensor
    onnx_axes: tuple[int, ...] | None = None  # IR array == ONNX array.transpose(onnx_axes)
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # exact mantissa range per element
    scheme: Mapping | None = None  # how a weight quantizer or a model's quantizer resolved (lower_quant)
    quantizer: "Quantizer | None" = None  # constants a model's quantizer made (compiler/quantizer.py)
    model_scale: np.ndarray | None = None  # graph inputs/outputs: model value = model_scale * IR value

    @property
    def onnx_shape(self) -> tuple[int, ...]:
        """The shape as stored in the ONNX file (before the IR's transpose)."""
        if self.onnx_axes is None:
            return self.shape
        shape = [0] * len(self.shape)
        for ir_axis, onnx_axis in enumerate(self.onnx_axes):
            shape[onnx_axis] = self.shape[ir_axis]
        return tuple(shape)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def is_quantized(self) -> bool:
        """A constant whose data are integer mantissas (the plan has been applied)."""
        return self.data is not None and self.formats is not None


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping = field(default_factory=dict)
    epilogue: tuple["Node", ...] = ()
    onnx_nodes: tuple[str, ...] = ()  # the ONNX nodes this node stands for

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        object.__setattr__(self, "epilogue", tuple(self.epilogue))
        unknown = set(self.attrs) - ATTRS.get(self.op, frozenset())
        if unknown:
            raise IRError(f"node {self.name!r} ({self.op.value}) has unknown attributes {sorted(unknown)}")

    def __reduce__(self):  # MappingProxyType does not pickle; rebuild from a dict
        return (Node, (self.name, self.op, self.inputs, self.outputs, dict(self.attrs), self.epilogue,
                       self.onnx_nodes))

    @property
    def kind(self) -> str:
        """What the node computes, for people: the op's name, a TABLE's function (``tanh``)."""
        return self.attrs["function"] if self.op == Op.TABLE else self.op.value

    @property
    def accumulator(self) -> str:
        """The tensor the main op writes: the output, or the first epilogue input."""
        return self.epilogue[0].inputs[0] if self.epilogue else self.outputs[0]

    def stages(self) -> tuple["Node", ...]:
        """The node as a chain of plain (unfused) nodes."""
        if not self.epilogue:
            return (self,)
        main = dataclasses.replace(self, outputs=(self.accumulator,), epilogue=())
        return (main, *self.epilogue)


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))

    def __reduce__(self):
        return (Graph, (self.name, self.inputs, self.outputs, self.nodes, dict(self.tensors)))

    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise IRError(f"no tensor named {name!r} in graph {self.name!r}") from None

    def producer(self, name: str) -> Node | None:
        for node in self.nodes:
            if name in node.outputs:
                return node
        return None

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def with_nodes(self, nodes: Iterable[Node], tensors: Mapping[str, Tensor] | None = None) -> "Graph":
        """A new graph with these nodes; tensors no node or graph port uses are dropped."""
        nodes = tuple(nodes)
        pool = dict(self.tensors if tensors is None else tensors)
        used = set(self.inputs) | set(self.outputs)
        for node in nodes:
            for stage in node.stages():
                used.update(stage.inputs)
                used.update(stage.outputs)
        return dataclasses.replace(self, nodes=nodes, tensors={k: v for k, v in pool.items() if k in used})

    def with_tensors(self, updates: Mapping[str, Tensor]) -> "Graph":
        merged = dict(self.tensors)
        merged.update(updates)
        return dataclasses.replace(self, tensors=merged)


# --- shape rules -------------------------------------------------------------------------


def broadcast_index(shape, out_shape) -> tuple[int, ...]:
    """For each element of ``out_shape`` (flat, row-major), the flat index of the element of a
    ``shape`` tensor that numpy broadcasting reads there; computed once per pair of shapes
    (the backends ask for one output element at a time)."""
    return _broadcast_index(tuple(shape), tuple(out_shape))


@functools.lru_cache(maxsize=256)
def _broadcast_index(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
    flat = np.arange(int(np.prod(shape))).reshape(shape)
    return tuple(np.broadcast_to(flat, out_shape).ravel().tolist())


def _window_out(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def output_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    """The output shape the op's definition gives for its input shapes."""
    shapes = [graph.tensor(i).shape for i in node.inputs]
    a = node.attrs
    op = node.op
    if op == Op.DENSE:
        if shapes[1][1] != shapes[0][-1]:
            raise IRError(f"node {node.name!r}: input has {shapes[0][-1]} features, weight expects {shapes[1][1]}")
        return (*shapes[0][:-1], shapes[1][0])
    if op == Op.CONV:
        spatial = shapes[0][1:]
        k = shapes[1][2:]
        n = len(spatial)
        if shapes[1][1] * a["groups"] != shapes[0][0]:
            raise IRError(f"node {node.name!r}: {shapes[0][0]} input channels do not match weight "
                          f"{shapes[1]} with groups={a['groups']}")
        return (shapes[1][0], *(
            _window_out(spatial[i], k[i], a["strides"][i], a["pads"][i], a["pads"][i + n], a["dilations"][i])
            for i in range(n)))
    if op in (Op.MAXPOOL, Op.AVGPOOL):
        spatial = shapes[0][1:]
        n = len(spatial)
        dil = a.get("dilations", (1,) * n)
        return (shapes[0][0], *(
            _window_out(spatial[i], a["kernel"][i], a["strides"][i], a["pads"][i], a["pads"][i + n], dil[i])
            for i in range(n)))
    if op in (Op.ADD, Op.MUL):
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise IRError(f"node {node.name!r}: shapes {shapes} do not broadcast") from None
    if op == Op.CONCAT:
        axis = a["axis"]
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)
    if op == Op.RESHAPE:
        if int(np.prod(a["shape"])) != int(np.prod(shapes[0])):
            raise IRError(f"node {node.name!r}: cannot reshape {shapes[0]} to {tuple(a['shape'])}")
        return tuple(a["shape"])
    if op == Op.TRANSPOSE:
        return tuple(shapes[0][p] for p in a["perm"])
    # elementwise ops keep the first input's shape
    return shapes[0]


def verify(graph: Graph) -> None:
    """Check the IR contract; raise IRError naming the first broken node or tensor."""
    defined = set(graph.inputs)
    for name, t in graph.tensors.items():
        if name != t.name:
            raise IRError(f"tensor stored under {name!r} is named {t.name!r}")
        if t.is_constant:
            defined.add(name)
            if t.data.shape != t.shape:
                raise IRError(f"constant {name!r} has data of shape {t.data.shape}, declared {t.shape}")
        if t.formats is not None and t.formats.shape != t.shape:
            raise IRError(f"tensor {name!r} has formats of shape {t.formats.shape}, declared {t.shape}")
    for name in graph.inputs:
        graph.tensor(name)
    for node in graph.nodes:
        for stage in node.stages():
            for i in stage.inputs:
                if i not in defined:
                    raise IRError(f"node {node.name!r} reads {i!r} before anything produces it")
            for o in stage.outputs:
                if o in defined:
                    raise IRError(f"node {node.name!r} writes {o!r}, which is already defined")
                graph.tensor(o)
                defined.add(o)
            expected = output_shape(stage, graph)
            actual = graph.tensor(stage.outputs[0]).shape
            if tuple(expected) != tuple(actual):
                raise IRError(f"node {node.name!r} ({stage.op.value}) should produce shape "
                              f"{tuple(expected)} but its output {stage.outputs[0]!r} is {actual}")
        for a, b in zip(node.epilogue, node.epilogue[1:]):
            if b.inputs[0] != a.outputs[0]:
                raise IRError(f"fused node {node.name!r}: epilogue is not a chain")
    for name in graph.outputs:
        if name not in defined:
            raise IRError(f"graph output {name!r} is never produced")


# --- text form -------------------------------------------------------------------------


def _fmt(t: Tensor) -> str:
    shape = "[" + ",".join(str(s) for s in t.shape) + "]"
    return f"{shape} {t.formats.summary() if t.formats is not None else 'float'}"


def _attr_text(attrs: Mapping) -> str:
    parts = [f"{k}={_attr_value(attrs[k])}" for k in sorted(attrs)]
    return (" {" + ", ".join(parts) + "}") if parts else ""


def _attr_value(v) -> str:
    """An attribute as ir.txt shows it: arrays by size, a Fraction as ``p/q``, a dict (a
    table's rescale) as ``{key=value, ...}``."""
    if isinstance(v, np.ndarray):
        return f"<{v.size} entries>"
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_attr_value(x) for x in v) + ")"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}={_attr_value(v[k])}" for k in sorted(v)) + "}"
    return str(v)  # str(Fraction(3, 8)) is 3/8


def dump(graph: Graph) -> str:
    """Deterministic text form of the graph: what `OUT/ir.txt` holds and tests diff."""
    lines = [f"graph {graph.name}"]
    for name in graph.inputs:
        lines.append(f"  input  {name}: {_fmt(graph.tensors[name])}")
    for name, t in graph.tensors.items():
        if t.is_constant:
            nz = int(np.count_nonzero(t.data))
            data = hashlib.sha1(repr(np.asarray(t.data).ravel().tolist()).encode()).hexdigest()[:6]
            lines.append(f"  const  {name}: {_fmt(t)} ({t.kind.value}, {nz}/{t.data.size} non-zero, data #{data})")
    for node in graph.nodes:
        for k, stage in enumerate(node.stages()):
            lead = f"  node   {node.name} =" if k == 0 else "         |"
            out = graph.tensors[stage.outputs[0]]
            lines.append(f"{lead} {stage.kind}({', '.join(stage.inputs)}){_attr_text(stage.attrs)}"
                         f" -> {out.name}: {_fmt(out)}")
    lines.append(f"  output {', '.join(graph.outputs)}")
    return "\n".join(lines) + "\n"
