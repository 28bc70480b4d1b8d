"""Translators that move data without arithmetic: Identity/Dropout, Flatten, Reshape, Squeeze,
Unsqueeze, Transpose, Concat."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ir import Op
from .common import _attributes, _axes, _fail, _input, _int_constant, _no_batch_axis, _normalize_axis

if TYPE_CHECKING:
    from .translator import _Translator


def _alias(tr: _Translator, proto, node: str) -> None:
    """Identity and inference-mode Dropout: later nodes read the input directly."""
    if proto.op_type == "Dropout":
        training = _input(proto, 2)
        if training and (not tr.is_constant(training) or bool(tr.value(training))):
            raise _fail(proto, node, "Dropout in training mode", "export the model in eval mode")
        if tr.uses_extra_outputs(proto):
            raise _fail(proto, node, "the dropout mask is used", "export the model in eval mode")
    tr.pass_through(node, tr.activation(proto, node, 0), proto.output[0])


def _reshape_to(tr: _Translator, proto, node: str, x: str, shape) -> None:
    shape = tuple(int(s) for s in shape)
    if shape == tr.shape(x):  # a no-op, common after folding
        tr.pass_through(node, x, proto.output[0])
        return
    tr.emit(Op.RESHAPE, node, [x], proto.output[0], node, {"shape": shape})


def _flatten(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axis = int(_attributes(proto).get("axis", 1))
    axis = axis + rank if axis < 0 else axis  # Flatten's axis may also be `rank`
    if axis != 1:
        raise _fail(proto, node, f"axis={axis} mixes the batch axis with others",
                    "only Flatten(axis=1) is supported")
    _reshape_to(tr, proto, node, x, (math.prod(tr.shape(x)),))


def _reshape(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    target = _int_constant(tr, proto, node, 1, "shape")
    allowzero = bool(_attributes(proto).get("allowzero", 0))
    in_shape = (1, *tr.shape(x))
    if not target or target[0] not in (0, -1, *tr.batch_sizes) or (allowzero and target[0] == 0):
        raise _fail(proto, node, f"target shape {target} does not keep the batch axis first",
                    "reshape only the features: make the target (batch, ...) with batch 0, -1 or 1")
    rest = []
    for i, v in enumerate(target[1:], start=1):
        if v == 0 and not allowzero:
            if i >= len(in_shape):
                raise _fail(proto, node, f"target {target}: 0 at axis {i} copies a dim the input lacks")
            v = in_shape[i]
        rest.append(v)
    size = math.prod(tr.shape(x))
    if rest.count(-1) > 1 or (target[0] == -1 and -1 in rest):
        raise _fail(proto, node, f"target shape {target} has more than one -1")
    if -1 in rest:
        known = math.prod(v for v in rest if v != -1)
        if known == 0 or size % known:
            raise _fail(proto, node, f"cannot reshape {tr.shape(x)} (without batch) to {target}")
        rest[rest.index(-1)] = size // known
    if math.prod(rest) != size:
        raise _fail(proto, node, f"target shape {target} moves elements across the batch axis "
                                 f"(input {tr.shape(x)} without batch)",
                    "reshape only the features and keep the batch axis first")
    _reshape_to(tr, proto, node, x, rest)


def _squeeze(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axes = _axes(tr, proto, node, 13)
    if axes is None:  # every size-1 axis; the batch is kept whatever its run-time size
        ir_axes = [i for i, s in enumerate(tr.shape(x)) if s == 1]
    else:
        ir_axes = [_no_batch_axis(proto, node, _normalize_axis(proto, node, v, rank)) for v in axes]
    if any(tr.shape(x)[i] != 1 for i in ir_axes):
        raise _fail(proto, node, f"squeezes an axis of {tr.shape(x)} (without batch) that is not 1")
    _reshape_to(tr, proto, node, x, [s for i, s in enumerate(tr.shape(x)) if i not in ir_axes])


def _unsqueeze(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    axes = _axes(tr, proto, node, 13)
    if axes is None:
        raise _fail(proto, node, "axes are missing")
    out_rank = len(tr.shape(x)) + 1 + len(axes)
    ir_axes = sorted(_no_batch_axis(proto, node, _normalize_axis(proto, node, v, out_rank)) for v in axes)
    shape = list(tr.shape(x))
    for i in ir_axes:
        shape.insert(i, 1)
    _reshape_to(tr, proto, node, x, shape)


def _transpose(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    perm = [int(p) for p in _attributes(proto).get("perm", reversed(range(rank)))]
    if sorted(perm) != list(range(rank)):
        raise _fail(proto, node, f"perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        raise _fail(proto, node, f"perm {perm} moves the batch axis", "keep perm[0] = 0")
    ir_perm = tuple(p - 1 for p in perm[1:])
    if ir_perm == tuple(range(rank - 1)):
        tr.pass_through(node, x, proto.output[0])
        return
    tr.emit(Op.TRANSPOSE, node, [x], proto.output[0], node, {"perm": ir_perm})


def _concat(tr: _Translator, proto, node: str) -> None:
    names = [i for i in proto.input if i]
    if any(tr.is_constant(i) for i in names):
        raise _fail(proto, node, "concatenating a constant is not supported",
                    "every input must be an activation")
    inputs = [tr.activation(proto, node, k) for k, i in enumerate(proto.input) if i]
    rank = len(tr.shape(inputs[0])) + 1
    axis = _no_batch_axis(proto, node, _normalize_axis(proto, node, int(_attributes(proto)["axis"]), rank))
    if len(inputs) == 1:
        tr.pass_through(node, inputs[0], proto.output[0])
        return
    shapes = [tr.shape(i) for i in inputs]
    if any(len(s) != len(shapes[0]) or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]
           for s in shapes):
        raise _fail(proto, node, f"inputs of shapes {shapes} (without batch) differ along an axis other "
                                 f"than the concatenation axis {axis + 1}")
    tr.emit(Op.CONCAT, node, inputs, proto.output[0], node, {"axis": axis})
