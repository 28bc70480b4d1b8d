"""Translators for the activations: Relu, LeakyRelu, Clip, Softmax, and the table functions
(Sigmoid, Tanh, ...: compiler/table_functions.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx

from ..ir import Op, TensorKind
from ..table_functions import BY_ONNX_OP, TableFunction
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


def _table_translator(function: TableFunction) -> Callable[[_Translator, onnx.NodeProto, str], None]:
    """The translator of one of table_functions.py's functions: a TABLE node."""
    def translate(tr: _Translator, proto, node: str) -> None:
        a = _attributes(proto)
        params = {key: float(a.get(key, np.float32(default))) for key, default in function.params.items()}
        for key, value in params.items():
            if not np.isfinite(value):
                raise _fail(proto, node, f"attribute {key} is {value}, which has no fixed-point table",
                            f"give {key} a finite value (the ONNX default is {np.float32(function.params[key]):.7g})")
        tr.emit(Op.TABLE, node, [tr.activation(proto, node, 0)], proto.output[0], node,
                {"function": function.name, "params": params})

    attributes = f", with its {' and '.join(f'``{k}``' for k in function.params)}" if function.params else ""
    translate.__doc__ = (f"{function.onnx_op}{attributes}: ``{function.summary}`` as a table look-up, anywhere "
                         f"in the graph (the plan's tables ``{function.name}_input`` and ``{function.name}_output``).")
    translate.__name__ = f"_{function.name}"
    return translate


TABLE_TRANSLATORS = {op: _table_translator(function) for op, function in BY_ONNX_OP.items()}
