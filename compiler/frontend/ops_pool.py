"""Translators for pooling: MaxPool, AveragePool, their global forms, and ReduceMean over space."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir import Op, TensorKind
from .common import _attributes, _axes, _fail, _normalize_axis, _positive_ints, _resolve_pads

if TYPE_CHECKING:
    from .translator import _Translator


def _pool_geometry(proto, node: str, a: dict, spatial, kernel, dilations):
    """Strides, explicit pads and the pads without ceil-mode extra, for MaxPool/AveragePool.

    ``ceil_mode=1`` is turned into extra end padding sized so that the floor formula gives
    the ceil-mode output size.  The extra padding never contributes: MAXPOOL pads with -inf
    and every window still holds at least one real element (a window that would start in the
    end padding is dropped, as in PyTorch and onnxruntime), and AVGPOOL's reciprocal does not
    count it.
    """
    n = len(spatial)
    strides = _positive_ints(proto, node, a, "strides", n)
    pads = _resolve_pads(proto, node, a, spatial, kernel, strides, dilations)
    if any(pads[i] >= kernel[i] or pads[n + i] >= kernel[i] for i in range(n)):
        # A window of padding only would average nothing (or take the max of nothing).
        raise _fail(proto, node, f"pads {list(pads)} are not all smaller than kernel_shape {list(kernel)}",
                    "make every pad smaller than the kernel along its axis (onnxruntime and PyTorch "
                    "require it too)")
    declared = pads
    if a.get("ceil_mode", 0):
        ends = list(pads[n:])
        for i in range(n):
            size, k, s, d = spatial[i], kernel[i], strides[i], dilations[i]
            span = size + pads[i] + pads[n + i] - d * (k - 1) - 1
            out = -(-span // s) + 1
            if (out - 1) * s >= size + pads[i]:
                out -= 1
            ends[i] += max(0, (out - 1) * s + d * (k - 1) + 1 - (size + pads[i] + pads[n + i]))
        pads = (*pads[:n], *ends)
    return strides, pads, declared


def _pool_input(tr: _Translator, proto, node: str) -> str:
    x = tr.activation(proto, node, 0)
    if len(tr.shape(x)) not in (2, 3):
        raise _fail(proto, node, f"input {x!r} has shape {tr.shape(x)} (without batch)",
                    "only 1D and 2D pooling (C, L) / (C, H, W) are supported")
    return x


def _avgpool(tr: _Translator, node: str, onnx_node: str, x: str, output: str,
             kernel, strides, pads, declared, count_include_pad: bool) -> str:
    """AVGPOOL with its reciprocal: 1 / (elements each output window averages).

    ``declared`` are the model's pads; ``pads`` may add ceil-mode end padding, which no
    window counts (as in PyTorch and onnxruntime).
    """
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    counts = []
    for i in range(n):
        out = (spatial[i] + pads[i] + pads[n + i] - kernel[i]) // strides[i] + 1
        start = np.arange(out) * strides[i] - pads[i]
        lo, hi = (-declared[i], spatial[i] + declared[n + i]) if count_include_pad else (0, spatial[i])
        counts.append(np.minimum(start + kernel[i], hi) - np.maximum(start, lo))
    count = counts[0] if n == 1 else np.multiply.outer(counts[0], counts[1])
    reciprocal = np.broadcast_to(1.0 / count, (tr.shape(x)[0], *count.shape))
    r = tr.new_constant(node, "reciprocal", reciprocal, TensorKind.CONST)
    attrs = {"kernel": tuple(kernel), "strides": tuple(strides), "pads": tuple(pads),
             "count_include_pad": int(count_include_pad)}
    return tr.emit(Op.AVGPOOL, node, [x, r], output, onnx_node, attrs)


def _global_pool(tr: _Translator, node: str, onnx_node: str, x: str, output: str, op: Op) -> str:
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    zeros, ones = (0,) * (2 * n), (1,) * n
    if op == Op.MAXPOOL:
        attrs = {"kernel": spatial, "strides": ones, "pads": zeros, "dilations": ones}
        return tr.emit(Op.MAXPOOL, node, [x], output, onnx_node, attrs)
    return _avgpool(tr, node, onnx_node, x, output, spatial, ones, zeros, zeros, False)


def _window(tr: _Translator, proto, node: str, a: dict):
    """A pooling node's input, its spatial shape, and its kernel and dilations (each >= 1)."""
    x = _pool_input(tr, proto, node)
    spatial = tr.shape(x)[1:]
    kernel = _positive_ints(proto, node, a, "kernel_shape", len(spatial))
    dilations = _positive_ints(proto, node, a, "dilations", len(spatial))
    return x, spatial, kernel, dilations


def _maxpool(tr: _Translator, proto, node: str) -> None:
    """MaxPool, 1D and 2D: ``kernel_shape``, ``strides``, ``pads``/``auto_pad``, ``dilations``, ``ceil_mode``; every
    pad smaller than the kernel.  ``storage_order=1`` and a used Indices output are refused, and so is a kernel
    larger than its padded input, whose ONNX output is empty (onnxruntime rounds it up to one window; PyTorch's
    exporter can write one, a global pool after a ``ceil_mode`` pool sized with ONNX's shape inference, which
    keeps a window starting in the end padding that PyTorch, onnxruntime and finegrain drop)."""
    a = _attributes(proto)
    if a.get("storage_order", 0):
        raise _fail(proto, node, "storage_order=1 is not supported")
    if tr.uses_extra_outputs(proto):
        raise _fail(proto, node, "the Indices output is used", "only the pooled values are supported")
    x, spatial, kernel, dilations = _window(tr, proto, node, a)
    strides, pads, _ = _pool_geometry(proto, node, a, spatial, kernel, dilations)
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations}
    tr.emit(Op.MAXPOOL, node, [x], proto.output[0], node, attrs)


def _averagepool(tr: _Translator, proto, node: str) -> None:
    """AveragePool, 1D and 2D: as MaxPool, with ``count_include_pad``; no dilations.  Each window's ``1/count`` is
    a constant the plan's rules round (bit-plan.md, constants finegrain computes)."""
    a = _attributes(proto)
    x, spatial, kernel, dilations = _window(tr, proto, node, a)
    if any(d != 1 for d in dilations):
        raise _fail(proto, node, f"dilations {list(dilations)} are not supported for average pooling")
    strides, pads, declared = _pool_geometry(proto, node, a, spatial, kernel, dilations)
    _avgpool(tr, node, node, x, proto.output[0], kernel, strides, pads, declared,
             bool(a.get("count_include_pad", 0)))


def _global_average_pool(tr: _Translator, proto, node: str) -> None:
    """GlobalAveragePool over all of a (C, L) or (C, H, W) input's positions."""
    _global_pool(tr, node, node, _pool_input(tr, proto, node), proto.output[0], Op.AVGPOOL)


def _global_max_pool(tr: _Translator, proto, node: str) -> None:
    """GlobalMaxPool over all of a (C, L) or (C, H, W) input's positions."""
    _global_pool(tr, node, node, _pool_input(tr, proto, node), proto.output[0], Op.MAXPOOL)


def _reduce_mean(tr: _Translator, proto, node: str) -> None:
    """ReduceMean over all spatial axes (how the dynamo exporter writes AdaptiveAvgPool(1))."""
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axes = _axes(tr, proto, node, 18)
    axes = sorted(_normalize_axis(proto, node, v, rank) for v in axes) if axes else None
    if rank not in (3, 4) or axes != list(range(2, rank)):
        raise _fail(proto, node, f"mean over axes {axes} of a rank-{rank} tensor",
                    "only the mean over all spatial axes of (batch, C, L) or (batch, C, H, W) is supported")
    if _attributes(proto).get("keepdims", 1):
        _global_pool(tr, node, node, x, proto.output[0], Op.AVGPOOL)
        return
    # keepdims=0: pool to (C, 1, ...), then drop the spatial axes.
    pooled = _global_pool(tr, tr.node_name(f"{node}.pool"), node, x, tr.fresh(f"{node}.pooled"), Op.AVGPOOL)
    tr.emit(Op.RESHAPE, node, [pooled], proto.output[0], node, {"shape": (tr.shape(x)[0],)})
