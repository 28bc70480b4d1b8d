"""Translators for ONNX QDQ: ``QuantizeLinear`` and ``DequantizeLinear`` (opsets 10 to 21).

A ``QuantizeLinear`` whose codes go only into a ``DequantizeLinear`` (directly, or through a
``Clip`` of the codes, as Brevitas' QCDQ export writes for widths under 8) is read together
with it as one :class:`~compiler.quantizer.Quantizer` (ties to even, the range of the integer
type or of the Clip); the IR value is named after the ``DequantizeLinear``'s output.  A lone
``QuantizeLinear`` gives the integer codes (out_scale 1, out_zero 0: an int8 graph output); a
lone ``DequantizeLinear`` reads integer codes: of an integer constant (weights, the int32 bias)
it folds into the constant's model values, of an activation (an int8 graph input) it is a
quantizer with in_scale 1, in_zero 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..fixed import Rounding
from ..quantizer import Quantizer, integer_range
from .common import _attributes, _constant_input, _fail, _input, _normalize_axis
from .ops_quant import _apply, _array_parameter, _checked, full_rank

if TYPE_CHECKING:
    from .translator import _Translator


_DEFAULT_DOMAINS = ("", "ai.onnx")

# The integer types of QDQ codes: numpy dtype of the zero point / codes -> (bits, signed).
_INTEGER_DTYPES = {
    np.dtype(np.int8): (8, True), np.dtype(np.uint8): (8, False),
    np.dtype(np.int16): (16, True), np.dtype(np.uint16): (16, False),
    np.dtype(np.int32): (32, True),
}


def _integer_type(proto, node: str, dtype: np.dtype, what: str) -> tuple[int, bool]:
    kind = _INTEGER_DTYPES.get(np.dtype(dtype))
    if kind is None:
        raise _fail(proto, node, f"{what} has element type {np.dtype(dtype)}",
                    "finegrain reads QDQ models with int8, uint8, int16, uint16 or int32 codes "
                    "(not float8 or int4); quantize the model to one of those")
    return kind


def _rank(tr: _Translator, proto, node: str) -> int:
    """ONNX rank of the node's input 0 (a constant's, or an activation's with its batch axis)."""
    if tr.is_constant(proto.input[0]):
        return tr.value(proto.input[0]).ndim
    return len(tr.shape(tr.activation(proto, node, 0))) + 1


def _parameters(tr: _Translator, proto, node: str, codes_type, rank: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """(scale, zero point, bits, signed) of a QuantizeLinear/DequantizeLinear, the parameters
    shaped to broadcast against its input (ONNX rank ``rank``).  ``codes_type()`` gives the
    codes' numpy dtype when there is no zero point to tell it."""
    a = _attributes(proto)
    if a.get("block_size", 0):
        raise _fail(proto, node, f"block_size {a['block_size']} (blocked quantization) is not supported",
                    "quantize per tensor or per axis")
    scale_name = _constant_input(tr, proto, node, 1, "scale")
    if tr.value(scale_name).dtype.kind != "f":
        raise _fail(proto, node, f"scale {scale_name!r} has element type {tr.value(scale_name).dtype}; ONNX defines "
                                 f"it as float")
    scale = _array_parameter(tr, proto, node, 1, "scale")
    if _input(proto, 2):
        zero_name = _constant_input(tr, proto, node, 2, "zero point")
        zero = tr.value(zero_name)
        bits, signed = _integer_type(proto, node, zero.dtype, f"zero point {zero_name!r}")
        if zero.shape != scale.shape:
            raise _fail(proto, node, f"zero point {zero_name!r} of shape {list(zero.shape)} does not match "
                                     f"scale {scale_name!r} of shape {list(scale.shape)}")
    else:
        zero = np.zeros(scale.shape)
        bits, signed = _integer_type(proto, node, codes_type(), "the integer data")
    zero = zero.astype(np.float64)
    if scale.ndim > 1:
        raise _fail(proto, node, f"scale {scale_name!r} has shape {list(scale.shape)} (blocked quantization)",
                    "quantize per tensor (a scalar scale) or per axis (a 1-D scale)")
    if scale.ndim == 1:
        axis = _normalize_axis(proto, node, int(a.get("axis", 1)), rank)
        shape = (scale.size,) + (1,) * (rank - 1 - axis)
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return scale, zero, bits, signed


def _only_reader(tr: _Translator, value: str):
    """The one node reading ``value``, if exactly one does and it is not a graph output."""
    readers = tr.consumers.get(value, [])
    if len(readers) != 1 or tr.is_graph_output(value):
        return None
    return readers[0]


def _clip_bounds(tr: _Translator, clip) -> tuple[float, float] | None:
    """Constant (min, max) of a Clip, or None."""
    if tr.opset < 11:
        a = _attributes(clip)
        bounds = [a.get("min"), a.get("max")]
    else:
        bounds = []
        for index in (1, 2):
            name = _input(clip, index)
            if not name or not tr.is_constant(name) or tr.value(name).size != 1:
                return None
            bounds.append(float(tr.value(name).ravel()[0]))
    if any(b is None for b in bounds):
        return None
    return bounds[0], bounds[1]


def _clipped_range(bits: int, signed: bool, bounds) -> tuple[int, bool, bool] | None:
    """(bits, signed, narrow) whose integer range is the codes' type range clipped to ``bounds``."""
    type_lo, type_hi = integer_range(bits, signed, False)
    lo, hi = max(bounds[0], type_lo), min(bounds[1], type_hi)
    for b in range(1, bits + 1):
        for s in (signed, not signed):
            for narrow in (False, True):
                if integer_range(b, s, narrow) == (lo, hi):
                    return b, s, narrow
    return None


def _dequantizers(tr: _Translator, value: str) -> list | None:
    """The DequantizeLinear nodes that are all the readers of codes ``value`` (several, all
    with the same parameters, where an exporter gave each consumer its own), or None."""
    readers = tr.consumers.get(value, [])
    if not readers or tr.is_graph_output(value):
        return None
    first = readers[0]
    for reader in readers:
        if (reader.op_type != "DequantizeLinear" or reader.domain not in _DEFAULT_DOMAINS
                or reader.input[0] != value or list(reader.input) != [value, *first.input[1:]]
                or reader.attribute != first.attribute):
            return None
    return readers


def _dequantized_by(tr: _Translator, proto, bits: int, signed: bool):
    """(Clip or None, [DequantizeLinear, ...], (bits, signed, narrow)) when the
    QuantizeLinear's codes (clipped or not) go only into DequantizeLinear nodes, else None."""
    codes, clip, kind = proto.output[0], None, (bits, signed, False)
    reader = _only_reader(tr, codes)
    if reader is not None and reader.op_type == "Clip" and reader.domain in _DEFAULT_DOMAINS:
        bounds = _clip_bounds(tr, reader)
        kind = bounds and _clipped_range(bits, signed, bounds)
        if not kind:
            return None
        clip, codes = reader, reader.output[0]
    dequantizers = _dequantizers(tr, codes)
    return None if dequantizers is None else (clip, dequantizers, kind)


def _quantize_linear(tr: _Translator, proto, node: str) -> None:
    """QuantizeLinear with a constant scale and zero point (per tensor or per axis; blocked quantization
    refused), to int8, uint8, int16, uint16 or int32 codes; with its DequantizeLinear (and a Clip between) it is
    one quantizer."""
    output_dtype = _attributes(proto).get("output_dtype", 0)
    if output_dtype:
        codes_type = lambda: onnx.helper.tensor_dtype_to_np_dtype(output_dtype)  # noqa: E731
    else:
        codes_type = lambda: np.uint8  # noqa: E731  (ONNX's default without a zero point)
    rank = _rank(tr, proto, node)
    scale, zero, bits, signed = _parameters(tr, proto, node, codes_type, rank)
    chain = _dequantized_by(tr, proto, bits, signed)
    if chain is None:
        q = _checked(proto, node, lambda: Quantizer(scale, zero, 1.0, 0.0, bits, signed, False, Rounding.RND_CONV,
                                                    source="QuantizeLinear", zero_before_rounding=False))
        tr.integer_types[proto.output[0]] = (bits, signed)
        _apply(tr, proto, node, q, proto.output[0])
        return
    clip, (dequantize, *more), (bits, signed, narrow) = chain
    dq_node = dequantize.name or f"{node}.dequantize"
    dq_scale, dq_zero, _, _ = _parameters(tr, dequantize, dq_node, codes_type, rank)
    source = "QuantizeLinear+Clip+DequantizeLinear" if clip is not None else "QuantizeLinear+DequantizeLinear"
    q = _checked(proto, node, lambda: Quantizer(scale, zero, dq_scale, dq_zero, bits, signed, narrow,
                                                Rounding.RND_CONV, source=source, zero_before_rounding=False))
    for absorbed in (clip, dequantize, *more):
        if absorbed is not None:
            tr.absorbed.add(id(absorbed))
    output = _apply(tr, proto, node, q, dequantize.output[0])
    for other in more:  # the same values under each DequantizeLinear's name
        if output is None:
            tr.set_value(other.output[0], tr.value(dequantize.output[0]))
            tr.quantizers[other.output[0]] = tr.quantizers[dequantize.output[0]]
        else:
            tr.pass_through(node, output, other.output[0])


# Ops that move integer codes without changing them (the flatten tf2onnx puts between a
# QuantizeLinear and its DequantizeLinear).
_LAYOUT_OPS = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"})


def _codes_kind(tr: _Translator, value: str) -> tuple[int, bool] | None:
    """(bits, signed) of integer codes ``value`` (an integer graph input or a lone
    QuantizeLinear's output, or one of those moved by layout ops), or None."""
    while value not in tr.integer_types:
        producer = tr.producers.get(value)
        if producer is None or producer.op_type not in _LAYOUT_OPS or producer.domain not in _DEFAULT_DOMAINS:
            return None
        value = producer.input[0]
    return tr.integer_types[value]


def _dequantize_linear(tr: _Translator, proto, node: str) -> None:
    """DequantizeLinear of constant codes (a quantized weight; a Clip before it narrows their range) or of
    integer data (an integer graph input or a QuantizeLinear's output)."""
    x = proto.input[0]

    def codes_type():
        if tr.is_constant(x) and tr.value(x).dtype.kind in "iu":
            return tr.value(x).dtype
        kind = _codes_kind(tr, x)
        if kind is None:
            raise _fail(proto, node, f"input {x!r} is not integer data (an integer graph input or a "
                                     f"QuantizeLinear's output)", "give the node a zero point of the codes' type")
        return next(d for d, k in _INTEGER_DTYPES.items() if k == kind)

    scale, zero, bits, signed = _parameters(tr, proto, node, codes_type, _rank(tr, proto, node))
    if tr.is_constant(x):
        codes = tr.value(x)
        # Brevitas' QCDQ export clips int8 codes of narrower weights: that is their range
        clip = tr.producers.get(x)
        bounds = clip is not None and clip.op_type == "Clip" and clip.domain in _DEFAULT_DOMAINS and \
            _clip_bounds(tr, clip)
        bits, signed, narrow = (bounds and _clipped_range(bits, signed, bounds)) or (bits, signed, False)
        q = _checked(proto, node, lambda: Quantizer(scale, zero, scale, zero, bits, signed, narrow, Rounding.RND_CONV,
                                                    source="DequantizeLinear", zero_before_rounding=False))
        _checked(proto, node, lambda: q.check_shape(codes.shape))
        lo, hi = q.range
        if codes.size and (codes.min() < lo or codes.max() > hi):
            raise _fail(proto, node, f"codes {x!r} lie outside the {bits}-bit range {lo}..{hi}")
        tr.set_value(proto.output[0], scale * (codes.astype(np.float64) - zero))
        tr.quantizers[proto.output[0]] = full_rank(q, codes.ndim)
        return
    q = _checked(proto, node, lambda: Quantizer(1.0, 0.0, scale, zero, bits, signed, False, Rounding.RND_CONV,
                                                source="DequantizeLinear", zero_before_rounding=False))
    _apply(tr, proto, node, q, proto.output[0])
