"""Trailing reorders in the stream architecture (stream.py): a model whose last layers only
rearrange values (DepthToSpace's reshape -> transpose -> reshape, a Flatten) and may then apply
elementwise layers to them (the ESPCN's ReLU, rescale and output quantizer after its
DepthToSpace).

:func:`sink_reorders` moves those elementwise layers before the rearrangement: each constant and
each format is taken back through it, element by element, so every value the model computes is
the same, in another place (the emulator gives the same outputs; tested).  The rearrangement is
then last, and stream.py makes it the output port's beat order (:func:`output_order`): the last
spatial layer's beats leave as they are made and schedule.json's ``order`` says which output
element each lane holds.  Without it the tail would collect the whole frame in registers
(fg_stream_collect) before its first output: 3.3 million flip-flops for the ESPCN's 128x128
input.

The rewritten graph is the RTL builder's view only; the project, the emulator and every report
keep the model's graph, and a simulation compares the output port's elements, put back in the
output's order, with the emulator's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...fixed import Formats
from ...ir import Graph, Node, Op, Tensor, verify
from .stream_frames import KEEP_FORMATS, _activations, _frame

REORDER_OPS = frozenset({Op.RESHAPE, Op.TRANSPOSE})
# elementwise ops with no position of their own: each output element depends on the input element
# at its place and on constants (per element, broadcast) only
MOVABLE_OPS = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL, Op.TABLE})
SUFFIX = ".before_reorder"  # a moved output's new name, where the graph's output keeps the old one


def is_reorder(node: Node) -> bool:
    return node.op in REORDER_OPS and not node.epilogue


def _movable(graph: Graph, node: Node) -> bool:
    return all(s.op in MOVABLE_OPS for s in node.stages()) and len(_activations(graph, node)) == 1


def trailing_chain(graph: Graph) -> list[Node]:
    """The graph's last nodes, in order, while each is a reorder or a movable elementwise node
    reading only the one before it (the first reads any tensor), every tensor between them read
    by the next alone; from the first reorder on (elementwise nodes before it are engines as they
    are).  Empty when the model does not end in a reorder chain."""
    if len(graph.outputs) != 1:
        return []
    chain: list[Node] = []
    name = graph.outputs[0]
    while True:
        node = graph.producer(name)
        if node is None or not (is_reorder(node) or _movable(graph, node)):
            break
        chain.append(node)
        name = _activations(graph, node)[0]
        if name in graph.inputs or name in graph.outputs or len(graph.consumers(name)) != 1:
            break
    chain.reverse()
    while chain and not is_reorder(chain[0]):
        chain.pop(0)
    return chain


def _back(a: np.ndarray, reorders: list[Node], graph: Graph) -> np.ndarray:
    """An array shaped like the output of ``reorders`` taken back to their first input's shape."""
    for r in reversed(reorders):
        if r.op == Op.TRANSPOSE:
            a = np.transpose(a, np.argsort(r.attrs["perm"]))
        else:
            a = np.reshape(a, graph.tensor(r.inputs[0]).shape)
    return a


def _forward_formats(f: Formats, reorders: list[Node], graph: Graph) -> Formats:
    for r in reorders:
        f = f.transpose(r.attrs["perm"]) if r.op == Op.TRANSPOSE else f.reshape(graph.tensor(r.outputs[0]).shape)
    return f


def _formats_back(f: Formats, shape: tuple, reorders: list[Node], graph: Graph) -> Formats:
    return Formats(*(_back(np.broadcast_to(a, shape), reorders, graph) for a in f.fields()))


def _constant_back(t: Tensor, shape: tuple, reorders: list[Node], graph: Graph) -> Tensor:
    """Constant ``t``, broadcast over ``shape`` (where it is read), taken back through
    ``reorders`` and reduced along every axis it is constant on (a per-channel constant stays
    per channel)."""
    if t.data.size == 1 and (t.formats is None or not t.formats.shape):
        return t  # a scalar broadcasts anywhere
    arrays = {"data": _back(np.broadcast_to(t.data, shape), reorders, graph)}
    if t.formats is not None and t.formats.shape:
        for k, a in zip(("width", "int_bits", "signed", "rounding", "overflow"), t.formats.fields()):
            arrays[k] = _back(np.broadcast_to(a, shape), reorders, graph)
    pre = arrays["data"].shape
    index = np.arange(int(np.prod(pre))).reshape(pre)
    for axis in range(len(pre)):
        if all((a == np.take(a, [0], axis=axis)).all() for a in arrays.values()):
            index = np.take(index, [0], axis=axis)
    small = {k: np.ascontiguousarray(a.reshape(-1)[index]) for k, a in arrays.items()}
    formats = t.formats
    if "width" in small:
        formats = Formats(small["width"], small["int_bits"], small["signed"], small["rounding"], small["overflow"])
    float_data = None
    if t.float_data is not None:
        float_data = np.ascontiguousarray(_back(np.broadcast_to(t.float_data, shape), reorders, graph)
                                          .reshape(-1)[index])
    return dataclasses.replace(t, name=f"{t.name}{SUFFIX}", shape=small["data"].shape, data=small["data"],
                               formats=formats, float_data=float_data, bounds=None, onnx_axes=None)


def _activation_back(t: Tensor, name: str, shape: tuple, reorders: list[Node], graph: Graph) -> Tensor:
    bounds = None if t.bounds is None else \
        tuple(_back(np.broadcast_to(np.asarray(b), t.shape), reorders, graph) for b in t.bounds)
    formats = None if t.formats is None else _formats_back(t.formats, t.shape, reorders, graph)
    return dataclasses.replace(t, name=name, shape=shape, formats=formats, bounds=bounds, onnx_axes=None,
                               model_scale=None)


def sink_reorders(graph: Graph) -> Graph:
    """``graph`` with the elementwise nodes of its trailing reorder chain moved before the
    reorders (see the module docstring) when a stream engine can compute them there: every
    constant they read and every format they set is one value per channel of the stream before
    the reorders.  Otherwise (nothing to move, or a constant or format per position there)
    ``graph`` itself, and its ending stays a whole-vector tail."""
    moved, nodes = _move(graph)
    if not nodes:
        return graph
    frame = moved.tensor(nodes[0].stages()[0].inputs[0]).shape
    for s in (s for node in nodes for s in node.stages()):
        arrays = [moved.tensor(i).data for i in s.inputs if moved.tensor(i).is_constant]
        if s.op in KEEP_FORMATS:
            arrays += list(moved.tensor(s.outputs[0]).formats.fields())
        if not all(_per_channel(a, frame) for a in arrays):
            return graph
    return moved


def _per_channel(a: np.ndarray, frame: tuple) -> bool:
    """Whether ``a`` (broadcast to ``frame``, [C, ...]) is the same at every position of a channel."""
    if np.ndim(a) == 0:
        return True
    flat = np.broadcast_to(a, frame).reshape(frame[0], -1)
    return bool((flat == flat[:, :1]).all())


def move_elementwise(graph: Graph) -> Graph:
    """The rewrite of :func:`sink_reorders`, whatever the moved layers' constants and formats;
    ``graph`` itself when there is nothing to move."""
    return _move(graph)[0]


def _move(graph: Graph) -> tuple[Graph, list[Node]]:
    """(the rewritten graph, the moved nodes as they are in it); (``graph``, []) when there is
    nothing to move."""
    chain = trailing_chain(graph)
    if not any(not is_reorder(n) for n in chain) or _frame(graph.tensor(chain[0].inputs[0]).shape) is None:
        return graph, []
    x0 = chain[0].inputs[0]
    pre = graph.tensor(x0).shape
    out = graph.outputs[0]
    tensors = dict(graph.tensors)
    reorders: list[Node] = []
    moved: list[Node] = []
    current = x0
    for node in chain:
        if is_reorder(node):
            reorders.append(node)
            continue
        stages = []
        for s in node.stages():
            inputs = []
            for i in s.inputs:
                t = graph.tensor(i)
                if t.is_constant:
                    c = _constant_back(t, graph.tensor(s.outputs[0]).shape, reorders, graph)
                    tensors[c.name] = c
                    inputs.append(c.name)
                else:
                    inputs.append(current)
            o = s.outputs[0]
            name = f"{o}{SUFFIX}" if o == out else o
            tensors[name] = _activation_back(graph.tensor(o), name, pre, reorders, graph)
            stages.append(dataclasses.replace(s, inputs=tuple(inputs), outputs=(name,), epilogue=()))
            current = name
        moved.append(dataclasses.replace(stages[0], epilogue=tuple(stages[1:]), outputs=(current,))
                     if len(stages) > 1 else stages[0])
    # the reorders carry the moved layers' formats, taken forward; the output keeps its own tensor
    # (a reorder's output may be sized narrower than its input, to the values it holds: the same)
    formats = tensors[current].formats
    rebuilt: list[Node] = []
    for k, r in enumerate(reorders):
        name = out if k == len(reorders) - 1 else r.outputs[0]
        if name != out:
            formats = None if formats is None else _forward_formats(formats, [r], graph)
            tensors[name] = dataclasses.replace(graph.tensor(name), formats=formats, bounds=None)
        rebuilt.append(dataclasses.replace(r, inputs=(current,), outputs=(name,)))
        current = name
    keep = [n for n in graph.nodes if not any(n is c for c in chain)]
    result = graph.with_nodes([*keep, *moved, *rebuilt], tensors)
    verify(result)
    return result, moved


def output_order(graph: Graph, reorders: list[Node], stream_shape: tuple) -> np.ndarray:
    """For a stream whose tensor (``stream_shape``, [C, H, W]) reaches the output through
    ``reorders``: beat p, lane c -> the output element (flat index) it holds."""
    c, h, w = _frame(stream_shape)
    source = np.arange(c * h * w).reshape(stream_shape)
    for r in reorders:
        source = np.transpose(source, r.attrs["perm"]) if r.op == Op.TRANSPOSE \
            else np.reshape(source, graph.tensor(r.outputs[0]).shape)
    where = np.empty(c * h * w, dtype=np.int64)
    where[source.reshape(-1)] = np.arange(c * h * w)  # stream element -> output element
    return where[np.arange(c * h * w).reshape(c, h * w).T.reshape(-1)]
