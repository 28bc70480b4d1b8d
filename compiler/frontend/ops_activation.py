"""Translators for the activations: Relu, LeakyRelu, Clip, Softmax, Sigmoid."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir import Op, TensorKind
from .common import _attributes, _constant_input, _fail, _input, _normalize_axis

if TYPE_CHECKING:
    from .translator import _Translator


def _relu(tr: _Translator, proto, node: str) -> None:
    """Relu."""
    tr.emit(Op.RELU, node, [tr.activation(proto, node, 0)], proto.output[0], node)


def _leaky_relu(tr: _Translator, proto, node: str) -> None:
    """LeakyRelu, with its ``alpha``."""
    x = tr.activation(proto, node, 0)
    alpha = tr.new_constant(node, "alpha", float(_attributes(proto).get("alpha", 0.01)), TensorKind.CONST)
    tr.emit(Op.LEAKY_RELU, node, [x, alpha], proto.output[0], node)


def _clip(tr: _Translator, proto, node: str) -> None:
    """Clip with constant scalar bounds (attributes before opset 11, inputs from it); both bounds, or min 0 alone
    (a ReLU); no bound at all is an identity."""
    x = tr.activation(proto, node, 0)
    bounds = []  # (IR constant or None) for min, max
    if tr.opset < 11:
        a = _attributes(proto)
        # Before opset 11 an absent bound defaults to the float range, i.e. no bound.
        for role in ("min", "max"):
            value = a.get(role)
            unbounded = value is None or abs(value) >= np.finfo(np.float32).max
            bounds.append(None if unbounded else tr.new_constant(node, role, float(value), TensorKind.CONST))
    else:
        for index, role in ((1, "min"), (2, "max")):
            if not _input(proto, index):
                bounds.append(None)
                continue
            name = _constant_input(tr, proto, node, index, role)
            if tr.value(name).size != 1:
                raise _fail(proto, node, f"{role} {name!r} is not a scalar")
            bounds.append(tr.onnx_constant(name, TensorKind.CONST, node, role, drop=tr.value(name).ndim))
    low, high = bounds
    if low is None and high is None:
        tr.pass_through(node, x, proto.output[0])
        return
    if low is None:
        raise _fail(proto, node, "Clip without min is not supported",
                    "give both bounds (a missing bound would be infinite, which fixed point cannot hold)")
    if high is None:
        if tr.tensors[low].data != 0:
            raise _fail(proto, node, "Clip without max is only supported with min 0 (a ReLU)",
                        "give both bounds")
        tr.emit(Op.RELU, node, [x], proto.output[0], node)
        return
    tr.emit(Op.CLIP, node, [x, low, high], proto.output[0], node)


def _softmax(tr: _Translator, proto, node: str) -> None:
    """Softmax over the last axis only (a table look-up; graph outputs only)."""
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    # Before opset 13 Softmax flattens the input at `axis` (default 1) into 2D; over the last
    # axis that is the same as the per-axis softmax of opset 13.
    default = 1 if tr.opset < 13 else -1
    axis = _normalize_axis(proto, node, int(_attributes(proto).get("axis", default)), rank)
    if axis != rank - 1:
        raise _fail(proto, node, f"softmax over axis {axis} of a rank-{rank} tensor",
                    "only the softmax over the last axis is supported")
    tr.emit(Op.SOFTMAX, node, [x], proto.output[0], node, {"axis": rank - 2})


def _sigmoid(tr: _Translator, proto, node: str) -> None:
    """Sigmoid (a table look-up; graph outputs only)."""
    tr.emit(Op.SIGMOID, node, [tr.activation(proto, node, 0)], proto.output[0], node)
