"""canonicalise: put the graph in the form later passes expect, without changing a value.

* ``ADD(linear_out, const)`` right after a bias-free DENSE or CONV becomes that node's
  bias (how torch's MatMul+Add and the ONNX zoo's Conv+Add export a bias).
* A RESHAPE to the shape it already has, and a TRANSPOSE by the identity, disappear.
* Two RESHAPEs in a row become one.

A tensor in ``keep`` (the ones the bit plan names) is a quantization point the user asked
for, so none of these rewrites removes it: a MatMul's output named in the plan keeps its
bias Add as an ADD after the requantize, a named Reshape output stays a RESHAPE, and a named
constant of another shape than a bias vector (a Conv's ``[C, 1, 1]`` addend) stays the ADD's
operand, in the shape the plan gives it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Graph, Node, Op, TensorKind


def _single_consumer(graph: Graph, name: str) -> Node | None:
    consumers = graph.consumers(name)
    if len(consumers) != 1 or name in graph.outputs:
        return None
    return consumers[0]


def _bias_vector(graph: Graph, linear: Node, const_name: str) -> np.ndarray | None:
    """The constant as a per-output-channel vector, or None if it is not one."""
    out_shape = graph.tensor(linear.outputs[0]).shape
    const = graph.tensor(const_name)
    data = const.data
    channels = out_shape[-1] if linear.op == Op.DENSE else out_shape[0]
    if linear.op == Op.DENSE:
        if data.size == channels and (data.ndim == 0 or data.shape[-1] == channels):
            return data.reshape(channels)
    else:
        spatial = len(out_shape) - 1
        if data.ndim == spatial + 1 and data.shape[0] == channels and all(s == 1 for s in data.shape[1:]):
            return data.reshape(channels)
    if data.size == 1:
        return np.full(channels, float(data.reshape(())))
    return None


def _merge_bias(graph: Graph, keep: frozenset[str]) -> Graph:
    nodes = list(graph.nodes)
    tensors = dict(graph.tensors)
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.op not in (Op.DENSE, Op.CONV) or len(node.inputs) != 2 or node.outputs[0] in keep:
                continue
            current = graph.with_nodes(nodes, tensors)
            add = _single_consumer(current, node.outputs[0])
            if add is None or add.op != Op.ADD:
                continue
            other = [n for n in add.inputs if n != node.outputs[0]]
            if len(other) != 1 or not tensors[other[0]].is_constant or tensors[other[0]].formats is not None:
                continue
            vector = _bias_vector(current, node, other[0])
            if vector is None:
                continue
            old = tensors[other[0]]
            bias_name = other[0] if old.data.shape == vector.shape else f"{other[0]}.as_bias"
            if bias_name != other[0] and other[0] in keep:
                continue  # the plan names the constant in its ONNX shape, which the bias vector drops
            tensors[bias_name] = dataclasses.replace(
                old, name=bias_name, shape=vector.shape, kind=TensorKind.BIAS, data=vector.copy(),
                float_data=vector.copy(), onnx_axes=None if bias_name != other[0] else old.onnx_axes)
            merged = dataclasses.replace(node, inputs=(*node.inputs, bias_name), outputs=add.outputs,
                                         onnx_nodes=node.onnx_nodes + add.onnx_nodes)
            nodes = [merged if n is node else n for n in nodes if n is not add]
            changed = True
            break
    return graph.with_nodes(nodes, tensors)


def _rename_input(nodes: list[Node], old: str, new: str) -> list[Node]:
    return [dataclasses.replace(n, inputs=tuple(new if i == old else i for i in n.inputs)) for n in nodes]


def _drop_layout_noops(graph: Graph, keep: frozenset[str]) -> Graph:
    nodes = list(graph.nodes)
    outputs = list(graph.outputs)
    for node in list(nodes):
        src, dst = node.inputs[0] if node.inputs else None, node.outputs[0]
        noop = (node.op == Op.RESHAPE and tuple(node.attrs["shape"]) == graph.tensor(src).shape) or (
            node.op == Op.TRANSPOSE and tuple(node.attrs["perm"]) == tuple(range(len(node.attrs["perm"]))))
        if not noop or dst in graph.outputs or dst in keep:
            continue
        nodes = _rename_input([n for n in nodes if n is not node], dst, src)
    # RESHAPE -> RESHAPE: the second reads the first's input
    for node in list(nodes):
        if node.op != Op.RESHAPE:
            continue
        prev = next((n for n in nodes if node.inputs[0] in n.outputs), None)
        if prev is not None and prev.op == Op.RESHAPE and prev.outputs[0] not in keep:
            nodes = [dataclasses.replace(n, inputs=prev.inputs) if n is node else n for n in nodes]
    used = {i for n in nodes for i in n.inputs} | set(outputs)
    nodes = [n for n in nodes if n.outputs[0] in used]
    return graph.with_nodes(nodes)


def canonicalise(graph: Graph, keep: frozenset[str] = frozenset()) -> Graph:
    return _drop_layout_noops(_merge_bias(graph, keep), keep)
