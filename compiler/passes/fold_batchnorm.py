"""fold_batchnorm: remove every BATCHNORM.

Right after a DENSE or CONV (whose output feeds nothing else) it is folded into that
node's constants, in float64, before any quantization: ``W' = W * s`` and
``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``.  The plan's format for
the linear node's weight (and bias) applies to the folded values; a linear node without a
bias takes the BatchNorm's ``B`` tensor name for the folded bias.  A BATCHNORM anywhere
else becomes ``MUL(x, s)`` then ``ADD(., beta - mean * s)``, named after the BatchNorm's
scale and bias tensors.  This is the only pass that computes in floating point.

A BatchNorm whose input is in ``keep`` (the bit plan names it: a quantization point between
the linear node and the BatchNorm) is not folded, since folding would remove that tensor.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import FrontendError
from ..ir import Graph, Node, Op, Tensor, TensorKind


def _channel_shape(rank: int, channels: int, last_axis: bool) -> tuple[int, ...]:
    if last_axis:
        return (channels,)
    return (channels,) + (1,) * (rank - 1)


def _constant(bn: Node, t: Tensor, name: str, values: np.ndarray, kind: TensorKind) -> Tensor:
    """A folded constant; folding a huge scale (a tiny variance) may overflow float64."""
    finite = np.isfinite(values)
    if not finite.all():
        raise FrontendError(f"BatchNormalization {bn.onnx_nodes[0]!r}: folding it makes {name!r} "
                            f"non-finite ({int((~finite).sum())} of {finite.size} values; its scale "
                            f"gamma / sqrt(var + epsilon) is too large for float64): fix the model's "
                            f"BatchNorm statistics and export it again")
    axes = t.onnx_axes if values.shape == t.shape else None
    return dataclasses.replace(t, name=name, shape=values.shape, kind=kind, data=values, float_data=values,
                               formats=None, onnx_axes=axes)


@np.errstate(over="ignore", divide="ignore", invalid="ignore")  # overflow is checked in _constant
def fold_batchnorm(graph: Graph, keep: frozenset[str] = frozenset()) -> Graph:
    nodes = list(graph.nodes)
    tensors = dict(graph.tensors)
    for bn in [n for n in graph.nodes if n.op == Op.BATCHNORM]:
        x, gamma, beta, mean, var = (tensors[i] for i in bn.inputs)
        for t in (gamma, beta, mean, var):
            if not t.is_constant:
                raise FrontendError(f"BatchNormalization {bn.name!r}: parameter {t.name!r} is not a constant")
        scale = gamma.data / np.sqrt(var.data + bn.attrs["epsilon"])
        shift = beta.data - mean.data * scale
        producer = next((n for n in nodes if x.name in n.outputs), None)
        sole_use = sum(x.name in n.inputs for n in nodes) == 1 and x.name not in graph.outputs
        if producer is not None and producer.op in (Op.DENSE, Op.CONV) and sole_use and x.name not in keep:
            w = tensors[producer.inputs[1]]
            axis_shape = (-1, 1) if producer.op == Op.DENSE else (-1,) + (1,) * (w.data.ndim - 1)
            tensors[w.name] = _constant(bn, w, w.name, w.data * scale.reshape(axis_shape), w.kind)
            if len(producer.inputs) > 2:
                b = tensors[producer.inputs[2]]
                tensors[b.name] = _constant(bn, b, b.name, b.data * scale + shift, TensorKind.BIAS)
                inputs = producer.inputs
            else:
                tensors[beta.name] = _constant(bn, beta, beta.name, shift, TensorKind.BIAS)
                inputs = (*producer.inputs, beta.name)
            folded = dataclasses.replace(producer, inputs=inputs, outputs=bn.outputs,
                                         onnx_nodes=producer.onnx_nodes + bn.onnx_nodes)
            nodes = [folded if n is producer else n for n in nodes if n is not bn]
            continue
        rank = len(x.shape)
        shape = _channel_shape(rank, scale.size, last_axis=rank == 1)
        scale_t = _constant(bn, gamma, gamma.name, scale.reshape(shape), TensorKind.WEIGHT)
        shift_t = _constant(bn, beta, beta.name, shift.reshape(shape), TensorKind.BIAS)
        mid = f"{bn.outputs[0]}.scaled"
        tensors[scale_t.name], tensors[shift_t.name] = scale_t, shift_t
        tensors[mid] = Tensor(mid, x.shape, TensorKind.ACTIVATION)
        mul = Node(f"{bn.name}.scale", Op.MUL, (x.name, scale_t.name), (mid,), onnx_nodes=bn.onnx_nodes)
        add = Node(f"{bn.name}.shift", Op.ADD, (mid, shift_t.name), bn.outputs, onnx_nodes=bn.onnx_nodes)
        at = nodes.index(bn)
        nodes[at:at + 1] = [mul, add]
    return graph.with_nodes(nodes, tensors)
