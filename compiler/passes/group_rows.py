"""group_rows: make the rows of each mix entry contiguous where the plan asks (``"group": true``).

A row-wise mix gives the output rows (channels) of a DENSE or CONV weight their schemes in
whatever order the assignment chose.  Grouping permutes the layer's output channels so
that the rows of one entry are contiguous: the entries in the order the plan lists them,
the rows of one entry in their original order (RMSMP's point: every layer then has the
same hardware shape).  The permutation is exact, no value at a graph output changes:

* the weight's rows and the bias move;
* every tensor on the path to the next DENSE/CONV layers moves its channels, with its
  per-element formats (a planned requantize) and the per-channel constants of the ops on
  the path;
* those next layers' weights permute their input channels to match.

The path may hold only elementwise ops (RELU, LEAKY_RELU, CLIP, REQUANTIZE, and ADD/MUL
whose other operands are constants or moved as well).  A graph output on the path, or any
other op, makes the order observable: a PlanError that says so.  The permutation is
recorded in each moved constant's ``scheme`` (``permutation``: row i of the IR holds row
``permutation[i]`` of the ONNX tensor; ``input_permutation`` likewise for the input
channels of the next layers).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import PlanError
from ..fixed import Formats
from ..ir import Graph, Node, Op, Tensor

ELEMENTWISE = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL})


def group_rows(graph: Graph) -> Graph:
    for name, t in list(graph.tensors.items()):
        if t.scheme is not None and t.scheme.get("group"):
            graph = _group(graph, name)
    return graph


def _take(t: Tensor, perm: np.ndarray, axis: int, key: str) -> Tensor:
    """``t`` with index ``i`` along ``axis`` holding its old index ``perm[i]``."""
    def take(a):
        return None if a is None else np.take(np.asarray(a), perm, axis=axis)

    formats = None if t.formats is None else Formats(*(take(f) for f in t.formats.fields()))
    scheme = None if t.data is None else {**(t.scheme or {}), key: perm.tolist()}
    return dataclasses.replace(t, data=take(t.data), float_data=take(t.float_data), formats=formats,
                               scheme=scheme)


def _users(graph: Graph, name: str) -> list[Node]:
    return [n for n in graph.nodes if name in n.inputs]


def _group(graph: Graph, name: str) -> Graph:
    t = graph.tensor(name)
    where = f"plan entry for tensor {t.onnx_name or name!r}: \"group\": true"
    users = _users(graph, name)
    layer = users[0] if len(users) == 1 else None
    if layer is None or layer.op not in (Op.DENSE, Op.CONV) or layer.inputs[1] != name:
        used = ", ".join(f"{n.name!r} ({n.op.value})" for n in users) or "no node"
        raise PlanError(f"{where} needs it to be the weight of one dense or conv layer, but it is used by {used}")
    out_axis = t.onnx_axes[0] if t.onnx_axes else 0
    if t.scheme["axis"] != out_axis:
        raise PlanError(f"{where} groups output channels, but its mix is along axis {t.scheme['axis']} and the "
                        f"output channels of layer {layer.name!r} are axis {out_axis}; mix along axis {out_axis}")
    if layer.op == Op.CONV and layer.attrs["groups"] != 1:
        raise PlanError(f"{where}: layer {layer.name!r} is a grouped conv (groups={layer.attrs['groups']}), whose "
                        f"output channels cannot move between groups")
    perm = np.argsort(np.asarray(t.scheme["row_entry"]), kind="stable")
    tensors = dict(graph.tensors)
    tensors[name] = _take(t, perm, 0, "permutation")
    if len(layer.inputs) > 2:
        tensors[layer.inputs[2]] = _take(_own(graph, layer.inputs[2], layer, where), perm, 0, "permutation")
    out = graph.tensor(layer.outputs[0])
    channel = len(out.shape) - 1 if layer.op == Op.DENSE else 0
    moved = {layer.outputs[0]}
    for node in graph.nodes[graph.nodes.index(layer) + 1:]:
        acts = [i for i in node.inputs if not tensors[i].is_constant]
        if not set(acts) & moved:
            continue
        why = f"{where} moves the output channels of layer {layer.name!r}, but node {node.name!r} ({node.op.value})"
        if node.op in (Op.DENSE, Op.CONV) and acts == [node.inputs[0]]:
            if (node.op == Op.DENSE) != (channel == len(out.shape) - 1) or node.attrs.get("groups", 1) != 1:
                raise PlanError(f"{why} does not read them as its input channels (or is a grouped conv)")
            tensors[node.inputs[1]] = _take(_own(graph, node.inputs[1], node, where), perm, 1, "input_permutation")
            continue
        if node.op not in ELEMENTWISE:
            raise PlanError(f"{why} is not elementwise, so the channel order would change its result; put "
                            f"only elementwise ops between two layers whose rows are grouped")
        rank = len(graph.tensor(node.outputs[0]).shape)
        if set(acts) - moved or any(len(graph.tensor(i).shape) != rank for i in acts):
            raise PlanError(f"{why} combines them with a tensor whose channels do not move")
        for c in node.inputs:
            const = tensors[c]
            c_axis = channel - (rank - len(const.shape))
            if const.is_constant and c_axis >= 0 and const.shape[c_axis] > 1:
                tensors[c] = _take(_own(graph, c, node, where), perm, c_axis, "permutation")
        result = tensors[node.outputs[0]]
        if result.formats is not None:
            tensors[result.name] = _take(result, perm, channel, "permutation")
        moved.add(node.outputs[0])
    shown = moved & set(graph.outputs)
    if shown:
        raise PlanError(f"{where}: the output channels of layer {layer.name!r} reach the graph output "
                        f"{sorted(shown)[0]!r}, whose order must not change")
    return graph.with_tensors(tensors)


def _own(graph: Graph, name: str, node: Node, where: str) -> Tensor:
    """The constant ``name``, which must be used by ``node`` alone (it is about to move)."""
    others = [n.name for n in _users(graph, name) if n is not node]
    if others:
        raise PlanError(f"{where}: constant {name!r} of node {node.name!r} would have to move, but node "
                        f"{others[0]!r} uses it too")
    return graph.tensor(name)
