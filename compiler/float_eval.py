"""Float64 numpy interpreter of an IR graph: the reference for the frontend and float passes.

It gives every :class:`~compiler.ir.Op` its real-number meaning, with no rounding anywhere:
REQUANTIZE is the identity, TABLE and SOFTMAX are the plain functions (not the tables the
emulator uses).  Constants are read as floats: ``float_data`` when set, else ``data`` (scaled
by ``2**-data_frac`` once the plan has made it mantissas).

Activations carry a leading batch axis here; IR shapes and constants do not, so operands
are lined up explicitly before numpy broadcasting (see :func:`_aligned`).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from . import table_functions
from .ir import Graph, IRError, Node, Op, Tensor


def evaluate_float(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (each with a leading batch axis); return its outputs by name."""
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in inputs:
            raise IRError(f"no value given for graph input {name!r}")
        value = np.asarray(inputs[name], dtype=np.float64)
        expected = graph.tensor(name).shape
        if value.shape[1:] != expected:
            raise IRError(f"input {name!r} has shape {value.shape}; expected (batch, *{expected})")
        env[name] = value
    for name, tensor in graph.tensors.items():
        if tensor.is_constant:
            env[name] = constant_value(tensor)
    for node in graph.nodes:
        for stage in node.stages():
            env[stage.outputs[0]] = _EVAL[stage.op](stage, graph, env)
    return {name: env[name] for name in graph.outputs}


def constant_value(tensor: Tensor) -> np.ndarray:
    """The float value of a constant tensor."""
    if tensor.float_data is not None:
        return np.asarray(tensor.float_data, dtype=np.float64)
    data = np.asarray(tensor.data, dtype=np.float64)
    return data * 2.0 ** -tensor.data_frac if tensor.is_quantized else data


def _aligned(name: str, graph: Graph, env, rank: int) -> np.ndarray:
    """The value of ``name`` shaped to broadcast against a batched tensor of IR ``rank``.

    A constant gets a leading batch axis of 1; an activation of lower IR rank gets its new
    axes after its batch axis, so numpy never lines a batch up with a feature axis.
    """
    value = env[name]
    if graph.tensor(name).is_constant:
        return value.reshape((1,) * (rank + 1 - value.ndim) + value.shape)
    return value.reshape(value.shape[:1] + (1,) * (rank + 1 - value.ndim) + value.shape[1:])


def _out_rank(node: Node, graph: Graph) -> int:
    return len(graph.tensor(node.outputs[0]).shape)


def _windows(x: np.ndarray, kernel, strides, pads, dilations, fill: float) -> np.ndarray:
    """(N, C, *S) -> (N, C, *kernel, *out): the input each output position's window sees."""
    n = len(kernel)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[n + i]) for i in range(n)], constant_values=fill)
    out = [(padded.shape[2 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1 for i in range(n)]
    patches = np.empty(x.shape[:2] + tuple(kernel) + tuple(out))
    for offset in np.ndindex(*kernel):
        window = tuple(slice(offset[i] * dilations[i], offset[i] * dilations[i] + strides[i] * (out[i] - 1) + 1,
                             strides[i]) for i in range(n))
        patches[(slice(None), slice(None), *offset)] = padded[(slice(None), slice(None), *window)]
    return patches


def _dense(node, graph, env):
    x, w = env[node.inputs[0]], env[node.inputs[1]]
    y = x @ w.T
    return y + env[node.inputs[2]] if len(node.inputs) > 2 else y


def _conv(node, graph, env):
    """im2col: gather every window, then one matrix product per group."""
    x, w = env[node.inputs[0]], env[node.inputs[1]]
    a = node.attrs
    groups = a["groups"]
    kernel = w.shape[2:]
    cols = _windows(x, kernel, a["strides"], a["pads"], a["dilations"], 0.0)
    batch, channels = x.shape[:2]
    out_spatial = cols.shape[2 + len(kernel):]
    cols = cols.reshape(batch, groups, channels // groups, int(np.prod(kernel)), -1)
    weights = w.reshape(groups, w.shape[0] // groups, w.shape[1], -1)
    y = np.einsum("ngckp,gmck->ngmp", cols, weights).reshape(batch, w.shape[0], *out_spatial)
    if len(node.inputs) > 2:
        y = y + env[node.inputs[2]].reshape((-1,) + (1,) * len(out_spatial))
    return y


def _batchnorm(node, graph, env):
    x = env[node.inputs[0]]
    scale, bias, mean, var = (env[i].reshape((-1,) + (1,) * (x.ndim - 2)) for i in node.inputs[1:])
    return (x - mean) / np.sqrt(var + node.attrs["epsilon"]) * scale + bias


def _add(node, graph, env):
    rank = _out_rank(node, graph)
    return _aligned(node.inputs[0], graph, env, rank) + _aligned(node.inputs[1], graph, env, rank)


def _mul(node, graph, env):
    rank = _out_rank(node, graph)
    return _aligned(node.inputs[0], graph, env, rank) * _aligned(node.inputs[1], graph, env, rank)


def _relu(node, graph, env):
    return np.maximum(env[node.inputs[0]], 0.0)


def _leaky_relu(node, graph, env):
    x = env[node.inputs[0]]
    return np.where(x >= 0, x, env[node.inputs[1]] * x)


def _clip(node, graph, env):
    x, low, high = (env[i] for i in node.inputs)
    return np.minimum(np.maximum(x, low), high)


def _maxpool(node, graph, env):
    a = node.attrs
    x = env[node.inputs[0]]
    n = x.ndim - 2
    dilations = a.get("dilations", (1,) * n)
    # -inf padding never wins a window
    windows = _windows(x, a["kernel"], a["strides"], a["pads"], dilations, -np.inf)
    return windows.max(axis=tuple(range(2, 2 + n)))


def _avgpool(node, graph, env):
    a = node.attrs
    x = env[node.inputs[0]]
    n = x.ndim - 2
    windows = _windows(x, a["kernel"], a["strides"], a["pads"], (1,) * n, 0.0)
    return windows.sum(axis=tuple(range(2, 2 + n))) * env[node.inputs[1]]


def _concat(node, graph, env):
    return np.concatenate([env[i] for i in node.inputs], axis=node.attrs["axis"] + 1)


def _reshape(node, graph, env):
    x = env[node.inputs[0]]
    return x.reshape((x.shape[0], *node.attrs["shape"]))


def _transpose(node, graph, env):
    return env[node.inputs[0]].transpose((0, *(p + 1 for p in node.attrs["perm"])))


def _requantize(node, graph, env):
    return env[node.inputs[0]].copy()


def _quant(node, graph, env):
    # the quantizer's parameters broadcast against the IR shape, which has no batch axis
    return node.attrs["quantizer"].apply(env[node.inputs[0]])


def _table(node, graph, env):
    return table_functions.node_function(node.attrs, env[node.inputs[0]])


def _softmax(node, graph, env):
    x = env[node.inputs[0]]
    axis = node.attrs["axis"] + 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_EVAL: dict[Op, Callable[[Node, Graph, dict], np.ndarray]] = {
    Op.DENSE: _dense,
    Op.CONV: _conv,
    Op.BATCHNORM: _batchnorm,
    Op.ADD: _add,
    Op.MUL: _mul,
    Op.RELU: _relu,
    Op.LEAKY_RELU: _leaky_relu,
    Op.CLIP: _clip,
    Op.MAXPOOL: _maxpool,
    Op.AVGPOOL: _avgpool,
    Op.CONCAT: _concat,
    Op.RESHAPE: _reshape,
    Op.TRANSPOSE: _transpose,
    Op.REQUANTIZE: _requantize,
    Op.TABLE: _table,
    Op.SOFTMAX: _softmax,
    Op.QUANT: _quant,
}
assert set(_EVAL) == set(Op), f"float_eval lacks {set(Op) - set(_EVAL)}"
