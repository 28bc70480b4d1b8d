"""Translators that move data without arithmetic: Identity/Dropout, Flatten, Reshape, Squeeze,
Unsqueeze, Transpose, Concat, DepthToSpace and SpaceToDepth.

Batch axis.  Where the batch can be more than 1 (an input's axis 0 is symbolic or larger than
1), these ops must leave ONNX axis 0 alone, as everywhere in the frontend.  Where every graph
input has a static batch of 1, any reshape is within one sample and well defined: keras2onnx's
``Flatten(axis=0)`` gives ``[1, N]``, ``Reshape(x, [-1])`` on ``[1, 3, 4]`` gives ``[12]``.  A
result whose ONNX shape does not start with 1 has lost its batch axis: the translator lists it
in ``batchless`` (its ONNX shape is then its IR shape, not ``(1, *IR shape)``), these ops read
it with that shape, and :func:`_batchless_result` says which other ops may read it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ir import Op
from ..table_functions import FUNCTIONS
from .common import _attributes, _axes, _fail, _input, _int_constant, _no_batch_axis, _normalize_axis, _static_dims

if TYPE_CHECKING:
    from .translator import _Translator


# Ops reading an activation without its batch axis (see the module docstring) that keep it
# so, when their other operands are constants with no more axes or activations of the same
# rank without a batch axis either: numpy broadcasting then lines the operands up as ONNX's
# does, without adding a batch axis.  A constant with one more axis, of size 1 first, gives
# the result a batch axis of 1 again, which the translators drop as for any activation.
_POINTWISE = frozenset({"Relu", "LeakyRelu", "Clip", "Add", "Sub", "Mul", "Div",
                        "Quant", "BipolarQuant", "Trunc", *(f.onnx_op for f in FUNCTIONS.values())})
# These are pointwise only per tensor: per axis, their `axis` counts the batch axis.
_PER_TENSOR = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _batch_is_one(tr: _Translator) -> bool:
    """Whether every graph input has a static batch of 1 (so every value holds one sample)."""
    dims = [_static_dims(vi) for vi in tr.onnx_graph.input if vi.name in tr.inputs]
    return all(d and d[0] == 1 for d in dims)


def _lines_up(tr: _Translator, operand: str, rank: int) -> bool:
    """Whether ``operand`` broadcasts against a value of ``rank`` axes without a batch axis as
    numpy does against its IR shape (the batch of a constant one axis longer dropped)."""
    if tr.is_constant(operand):
        shape = tr.value(operand).shape
        return len(shape) <= rank or (len(shape) == rank + 1 and shape[0] == 1)
    return operand in tr.batchless and len(tr.onnx_dims(operand)) == rank


def _batchless_result(tr: _Translator, proto, node: str) -> bool:
    """Whether the output of this node (not one of the ops here) has no batch axis: it reads
    an activation without one.  Refuses the ops that would read its axes as (batch, ...)."""
    flagged = [i for i in proto.input if i in tr.batchless]
    if not flagged:
        return False
    x = flagged[0]
    dims = tr.onnx_dims(x)
    others = [i for i in proto.input if i and i != x]
    op = proto.op_type
    if op in _POINTWISE and all(_lines_up(tr, i, len(dims)) for i in others):
        return not any(tr.is_constant(i) and tr.value(i).ndim > len(dims) for i in others)
    if op in _PER_TENSOR and proto.input[0] == x and all(tr.is_constant(i) and tr.value(i).size == 1 for i in others):
        return True
    if op == "MatMul" and proto.input[0] == x and tr.is_constant(proto.input[1]) and tr.value(proto.input[1]).ndim == 2:
        return True
    if op == "Softmax" and _attributes(proto).get("axis", -1 if tr.opset >= 13 else 1) == -1:
        return True
    alone = (" or with operands of at most that rank (or a leading batch of 1) that have no batch axis either"
             if op in _POINTWISE else
             " or with one scale and zero point for the whole tensor" if op in _PER_TENSOR else "")
    raise _fail(proto, node, f"input {x!r} has ONNX shape {list(dims)}, without the batch axis (an earlier "
                             f"Reshape, Flatten, Squeeze or Transpose folded the batch of 1 into it); finegrain "
                             f"reads {op} only on values with the batch axis first{alone}",
                "reshape it to [1, ...] before this node")


def _to_dims(tr: _Translator, proto, node: str, x: str, dims) -> None:
    """Write the node's output: the data of activation ``x`` in row-major order, in ONNX shape
    ``dims`` (with its batch axis, if it keeps one)."""
    dims = tuple(int(d) for d in dims)
    out = proto.output[0]
    if dims and dims[0] == 1:
        shape = dims[1:]
    else:
        shape = dims
        tr.batchless.add(out)
    if shape == tr.shape(x):  # a no-op, common after folding
        tr.pass_through(node, x, out)
        return
    tr.emit(Op.RESHAPE, node, [x], out, node, {"shape": shape})


def _alias(tr: _Translator, proto, node: str) -> None:
    """Identity and inference-mode Dropout: later nodes read the input directly."""
    if proto.op_type == "Dropout":
        training = _input(proto, 2)
        if training and (not tr.is_constant(training) or bool(tr.value(training))):
            raise _fail(proto, node, "Dropout in training mode", "export the model in eval mode")
        if tr.uses_extra_outputs(proto):
            raise _fail(proto, node, "the dropout mask is used", "export the model in eval mode")
    _to_dims(tr, proto, node, tr.activation(proto, node, 0), tr.onnx_dims(proto.input[0]))


def _flatten(tr: _Translator, proto, node: str) -> None:
    """Flatten: ``axis`` 1, or any axis when the model's batch is statically 1."""
    x = tr.activation(proto, node, 0)
    dims = tr.onnx_dims(proto.input[0])
    axis = int(_attributes(proto).get("axis", 1))
    axis = axis + len(dims) if axis < 0 else axis  # Flatten's axis may also be `rank`
    if not 0 <= axis <= len(dims):
        raise _fail(proto, node, f"axis {axis} is out of range for rank {len(dims)}")
    if axis != 1 and not _batch_is_one(tr):
        raise _fail(proto, node, f"axis={axis} merges the batch axis with other axes, which keeps the samples "
                                 f"apart only for a batch of 1, and the model's batch is not statically 1",
                    "use Flatten(axis=1), or export the model with a static batch of 1")
    _to_dims(tr, proto, node, x, (math.prod(dims[:axis]), math.prod(dims[axis:])))


def _reshape(tr: _Translator, proto, node: str) -> None:
    """Reshape to a constant target shape (0 and -1 as ONNX, ``allowzero``); the batch axis stays first unless
    the model's batch is statically 1."""
    x = tr.activation(proto, node, 0)
    target = _int_constant(tr, proto, node, 1, "shape")
    allowzero = bool(_attributes(proto).get("allowzero", 0))
    dims = tr.onnx_dims(proto.input[0])
    batch_varies = not _batch_is_one(tr)
    if batch_varies:
        # The batch may be more than 1: the target must keep it first, as 0, -1 or its size.
        if not target or target[0] not in (0, -1, *tr.batch_sizes) or (allowzero and target[0] == 0):
            raise _fail(proto, node, f"target shape {target} does not keep the batch axis first, and the "
                                     f"model's batch is not statically 1",
                        "reshape only the features: make the target (batch, ...) with batch 0, -1 or 1, "
                        "or export the model with a static batch of 1")
        if target[0] == -1 and -1 in target[1:]:
            raise _fail(proto, node, f"target shape {target} has more than one -1")
        target = [1, *target[1:]]
    out = []
    for i, v in enumerate(target):
        if v == 0 and not allowzero:
            if i >= len(dims):
                raise _fail(proto, node, f"target {target}: 0 at axis {i} copies a dim the input lacks")
            v = dims[i]
        out.append(v)
    size = math.prod(dims)
    if out.count(-1) > 1 or min(out, default=0) < -1:
        raise _fail(proto, node, f"target shape {target} has more than one -1 or a negative size")
    if -1 in out:
        known = math.prod(v for v in out if v != -1)
        if known == 0 or size % known:
            raise _fail(proto, node, f"cannot reshape {list(dims)} to {target}")
        out[out.index(-1)] = size // known
    if math.prod(out) != size:
        if batch_varies:
            raise _fail(proto, node, f"target shape {target} moves elements across the batch axis "
                                     f"(input {tr.shape(x)} without batch)",
                        "reshape only the features and keep the batch axis first")
        raise _fail(proto, node, f"cannot reshape {list(dims)} ({size} values) to {target}")
    _to_dims(tr, proto, node, x, out)


def _squeeze(tr: _Translator, proto, node: str) -> None:
    """Squeeze (``axes`` an attribute before opset 13, an input from it) of size-1 axes other than the batch."""
    x = tr.activation(proto, node, 0)
    dims = tr.onnx_dims(proto.input[0])
    axes = _axes(tr, proto, node, 13)
    if axes is None:
        # Every size-1 axis; where the batch may be more than 1, the batch axis is kept
        # whatever its run-time size.
        keep_batch = not _batch_is_one(tr)
        axes = [i for i, s in enumerate(dims) if s == 1 and not (keep_batch and i == 0)]
    else:
        axes = [_normalize_axis(proto, node, v, len(dims)) for v in axes]
        if not _batch_is_one(tr):
            for v in axes:
                _no_batch_axis(proto, node, v)
    if any(dims[i] != 1 for i in axes):
        raise _fail(proto, node, f"squeezes an axis of {list(dims)} that is not 1")
    _to_dims(tr, proto, node, x, [s for i, s in enumerate(dims) if i not in axes])


def _unsqueeze(tr: _Translator, proto, node: str) -> None:
    """Unsqueeze (``axes`` an attribute before opset 13, an input from it); not of the batch axis."""
    x = tr.activation(proto, node, 0)
    dims = tr.onnx_dims(proto.input[0])
    axes = _axes(tr, proto, node, 13)
    if axes is None:
        raise _fail(proto, node, "axes are missing")
    out_rank = len(dims) + len(axes)
    axes = sorted(_normalize_axis(proto, node, v, out_rank) for v in axes)
    if not _batch_is_one(tr):
        for v in axes:
            _no_batch_axis(proto, node, v)
    out = list(dims)
    for i in axes:
        out.insert(i, 1)
    _to_dims(tr, proto, node, x, out)


def _transpose(tr: _Translator, proto, node: str) -> None:
    """Transpose by ``perm``; the batch axis stays first unless the model's batch is statically 1."""
    x = tr.activation(proto, node, 0)
    dims = tr.onnx_dims(proto.input[0])
    perm = [int(p) for p in _attributes(proto).get("perm", reversed(range(len(dims))))]
    if sorted(perm) != list(range(len(dims))):
        raise _fail(proto, node, f"perm {perm} is not a permutation of {len(dims)} axes")
    if proto.input[0] in tr.batchless:
        ir_perm = tuple(perm)
    elif perm[0] == 0 or _batch_is_one(tr):
        # The batch axis of 1 holds no data: permuting the others moves the same values.
        ir_perm = tuple(p - 1 for p in perm if p != 0)
    else:
        raise _fail(proto, node, f"perm {perm} moves the batch axis, and the model's batch is not statically 1",
                    "keep perm[0] = 0, or export the model with a static batch of 1")
    out_dims = [dims[p] for p in perm]
    if ir_perm == tuple(range(len(ir_perm))):
        _to_dims(tr, proto, node, x, out_dims)
        return
    moved_shape = tuple(tr.shape(x)[p] for p in ir_perm)
    keeps_batch = out_dims[0] == 1 and tuple(out_dims[1:]) == moved_shape
    if keeps_batch or tuple(out_dims) == moved_shape:
        tr.emit(Op.TRANSPOSE, node, [x], proto.output[0], node, {"perm": ir_perm})
        if not keeps_batch:
            tr.batchless.add(proto.output[0])
        return
    moved = tr.emit(Op.TRANSPOSE, tr.node_name(f"{node}.move"), [x], tr.fresh(f"{node}.moved"), node,
                    {"perm": ir_perm})
    _to_dims(tr, proto, node, moved, out_dims)


def _concat(tr: _Translator, proto, node: str) -> None:
    """Concat of activations (no constants) along any axis but the batch."""
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


# --- DepthToSpace / SpaceToDepth ---------------------------------------------------------------
#
# Both are a reshape into blocks, a transpose and a reshape back (the ONNX definitions), in the
# IR's layout (C, H, W) without the batch.  DCR splits C as (b, b, C'), CRD as (C', b, b).


def _blocks(tr: _Translator, proto, node: str) -> tuple[str, tuple[int, int, int], int]:
    x = tr.activation(proto, node, 0)
    if len(tr.shape(x)) != 3:
        raise _fail(proto, node, f"input {x!r} has shape {tr.shape(x)} (without batch); {proto.op_type} "
                                 f"needs (batch, channels, height, width)")
    b = int(_attributes(proto)["blocksize"])
    if b < 1:
        raise _fail(proto, node, f"blocksize {b} must be at least 1")
    return x, tr.shape(x), b


def _rearrange(tr: _Translator, proto, node: str, x: str, blocks, perm, shape) -> None:
    """RESHAPE x to ``blocks``, TRANSPOSE by ``perm``, RESHAPE to ``shape`` (the output)."""
    split = tr.emit(Op.RESHAPE, tr.node_name(f"{node}.blocks"), [x], tr.fresh(f"{node}.blocks"), node,
                    {"shape": tuple(blocks)})
    moved = tr.emit(Op.TRANSPOSE, tr.node_name(f"{node}.move"), [split], tr.fresh(f"{node}.moved"), node,
                    {"perm": tuple(perm)})
    tr.emit(Op.RESHAPE, node, [moved], proto.output[0], node, {"shape": tuple(shape)})


def _depth_to_space(tr: _Translator, proto, node: str) -> None:
    """DepthToSpace of a (C, H, W) input, ``blocksize`` and ``mode`` DCR or CRD."""
    x, (c, h, w), b = _blocks(tr, proto, node)
    mode = _attributes(proto).get("mode", "DCR")
    if c % (b * b):
        raise _fail(proto, node, f"{c} channels are not a multiple of blocksize {b} squared")
    depth = c // (b * b)
    if mode == "DCR":
        blocks, perm = (b, b, depth, h, w), (2, 3, 0, 4, 1)
    elif mode == "CRD":
        blocks, perm = (depth, b, b, h, w), (0, 3, 1, 4, 2)
    else:
        raise _fail(proto, node, f"mode {mode!r} is not an ONNX mode", "use DCR or CRD")
    _rearrange(tr, proto, node, x, blocks, perm, (depth, h * b, w * b))


def _space_to_depth(tr: _Translator, proto, node: str) -> None:
    """SpaceToDepth of a (C, H, W) input whose height and width are multiples of ``blocksize``."""
    x, (c, h, w), b = _blocks(tr, proto, node)
    if h % b or w % b:
        raise _fail(proto, node, f"height {h} and width {w} must be multiples of blocksize {b}")
    _rearrange(tr, proto, node, x, (c, h // b, b, w // b, b), (2, 4, 0, 1, 3), (c * b * b, h // b, w // b))
