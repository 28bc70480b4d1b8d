"""Translators for a model's quantizers: QONNX ``Quant``/``BipolarQuant``/``Trunc`` and ONNX
``QuantizeLinear``/``DequantizeLinear``.

Each quantizer becomes a :class:`compiler.quantizer.Quantizer`.  On an activation it is an IR
node ``Op.QUANT``; on a constant (weights, biases) it is folded: the constant holds the
quantizer's float output and the translator remembers the quantizer
(``_Translator.quantizers``, parameters in the constant's ONNX layout at full rank), which
follows the constant through Transpose/Reshape folding and lands on the IR tensor
(``Tensor.quantizer``, IR layout).

A ``QuantizeLinear`` whose codes only go (through an optional ``Clip`` of the codes, as
Brevitas' QCDQ export writes) into a ``DequantizeLinear`` is read together with it as one
quantizer; a lone ``QuantizeLinear`` gives the integer codes (out_scale 1), a lone
``DequantizeLinear`` reads integer codes (in_scale 1).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..ir import Op
from ..quantizer import QONNX_ROUNDING, Quantizer, QuantizerError
from .common import _attributes, _constant_input, _fail

if TYPE_CHECKING:
    from .translator import _Translator


# The widest quantizer read: Quantizer.apply computes in float64, exact for codes of 53 bits.
MAX_QUANT_BITS = 53

# The domains QONNX's quantizers are written in: Brevitas' older exports, qonnx, FINN.
QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")



# --- parameters and layouts --------------------------------------------------------------


def with_parameters(q: Quantizer, fn) -> Quantizer:
    """``q`` with ``fn`` applied to each of its four parameter arrays."""
    return dataclasses.replace(q, in_scale=fn(q.in_scale), in_zero=fn(q.in_zero),
                               out_scale=fn(q.out_scale), out_zero=fn(q.out_zero))


def full_rank(q: Quantizer, rank: int) -> Quantizer:
    """``q`` with every parameter of rank ``rank`` (leading size-1 axes added)."""
    return with_parameters(q, lambda a: a.reshape((1,) * (rank - a.ndim) + a.shape))


def drop_leading(q: Quantizer, count: int) -> Quantizer:
    """``q`` (full rank) without its first ``count`` axes, which must have size 1: the IR
    layout, where a parameter that is one value is a scalar."""
    return with_parameters(q, lambda a: a.reshape(a.shape[count:] if a.size > 1 else ()))


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis along which it is constant reduced to size 1."""
    for axis in range(a.ndim):
        if a.shape[axis] > 1 and np.all(a == a.take([0], axis=axis)):
            a = a.take([0], axis=axis)
    return a


def _varying_axes(q: Quantizer) -> int:
    return sum(1 for d in q.broadcast_shape() if d > 1)


def reshape_constant_quantizer(q: Quantizer, in_shape, out_shape) -> Quantizer | None:
    """The quantizer of a constant of ``in_shape`` (q full rank) reshaped to ``out_shape``,
    or None when its per-channel axis does not survive the reshape (the channels would be
    spread over several axes)."""
    before = _varying_axes(q)
    moved = with_parameters(q, lambda a: _compact(np.broadcast_to(a, in_shape).reshape(out_shape)))
    return moved if _varying_axes(moved) <= before else None


def _checked(proto, node: str, make):
    """``make()``, with a QuantizerError turned into a FrontendError naming the node."""
    try:
        return make()
    except QuantizerError as e:
        raise _fail(proto, node, str(e), "fix the quantizer's parameters and export the model again") from None


# --- applying a quantizer ------------------------------------------------------------------


def _apply(tr: _Translator, proto, node: str, q: Quantizer, output: str, *, x: str | None = None,
           ir_node: str | None = None) -> str | None:
    """Quantizer ``q`` (parameters in ONNX layout) on the node's input 0, writing ONNX value
    ``output``: folded when that input is a constant (returns None), else an ``Op.QUANT``
    node ``ir_node`` (default: named as the ONNX node) reading IR activation ``x`` (default:
    input 0); returns its output's IR name."""
    if x is None and tr.is_constant(proto.input[0]):
        name = proto.input[0]
        value = tr.value(name)
        if value.dtype.kind not in "biuf":
            raise _fail(proto, node, f"input {name!r} has element type {value.dtype}; a quantizer reads numbers")
        tr.check_finite(node, "input", name, value)
        _checked(proto, node, lambda: q.check_shape(value.shape))
        q = full_rank(q, value.ndim)
        tr.set_value(output, q.apply(value.astype(np.float64)))
        tr.quantizers[output] = q
        return None
    x = x or tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    if len(q.broadcast_shape()) > rank:
        raise _fail(proto, node, f"scale/zero point of shape {list(q.broadcast_shape())} have more axes than "
                                 f"the input {proto.input[0]!r} (rank {rank} with batch)",
                    "give them at most the input's rank")
    q = full_rank(q, rank)
    if q.broadcast_shape()[0] != 1:
        raise _fail(proto, node, f"scale/zero point of shape {list(q.broadcast_shape())} vary along the batch axis",
                    "a quantizer must be the same for every batch row")
    q = drop_leading(q, 1)
    _checked(proto, node, lambda: q.check_shape(tr.shape(x)))
    return tr.emit(Op.QUANT, ir_node or node, [x], output, node, {"quantizer": q})


def _bit_width(tr: _Translator, proto, node: str, index: int, what: str = "bit width") -> int:
    name = _constant_input(tr, proto, node, index, what)
    value = np.asarray(tr.value(name), dtype=np.float64)
    if value.size != 1:
        raise _fail(proto, node, f"{what} {name!r} has shape {list(value.shape)}; QONNX defines it as a scalar",
                    "give one bit width for the whole tensor")
    bits = float(value.ravel()[0])
    if not np.isfinite(bits) or bits != round(bits) or bits < 1:
        raise _fail(proto, node, f"{what} {name!r} is {bits:g}, not a positive integer",
                    "a quantizer needs a whole number of bits, at least 1: fix the model's bit width")
    if bits > MAX_QUANT_BITS:
        raise _fail(proto, node, f"{what} {name!r} is {bits:g}; finegrain reads quantizers of at most "
                                 f"{MAX_QUANT_BITS} bits (float64 holds their integer codes exactly)",
                    "quantize to fewer bits")
    return int(bits)


def _first_bad(value: np.ndarray, good: np.ndarray) -> str:
    bad = value[~good]
    where = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
    return f"{float(bad.ravel()[0]):g}{where}"


def _array_parameter(tr: _Translator, proto, node: str, index: int, what: str) -> np.ndarray:
    """A scale or zero point: a constant, positive and finite (a scale) or an integer (a zero point)."""
    name = _constant_input(tr, proto, node, index, what)
    value = tr.value(name)
    if value.dtype.kind not in "biuf":
        raise _fail(proto, node, f"{what} {name!r} has element type {value.dtype}; it must be a number")
    value = value.astype(np.float64)
    if "scale" in what:
        good = np.isfinite(value) & (value > 0)
        if not good.all():
            raise _fail(proto, node, f"{what} {name!r} holds {_first_bad(value, good)}; a scale must be a positive "
                                     f"finite number", "fix the model's scale (was the quantizer calibrated?)")
    else:
        good = np.isfinite(value) & (value == np.round(value))
        if not good.all():
            raise _fail(proto, node, f"{what} {name!r} holds {_first_bad(value, good)}; a zero point must be an "
                                     f"integer", "fix the model's zero point")
    return value


def _rounding(proto, node: str, default: str = "ROUND"):
    mode = str(_attributes(proto).get("rounding_mode", default)).upper()
    if mode not in QONNX_ROUNDING:
        known = ", ".join(sorted(QONNX_ROUNDING))
        if mode == "CEIL":
            raise _fail(proto, node, "rounding_mode 'CEIL' is not supported yet",
                        f"use one of {known} (re-export with another rounding)")
        raise _fail(proto, node, f"rounding_mode {mode!r} is not a QONNX rounding mode finegrain knows",
                    f"use one of {known}")
    return QONNX_ROUNDING[mode]


def _flag(proto, node: str, name: str, default: int | None) -> bool:
    """A 0/1 attribute; ``default`` None: required, as qonnx requires Quant's signed and narrow."""
    value = _attributes(proto).get(name, default)
    if value is None:
        raise _fail(proto, node, f"required attribute {name!r} is missing",
                    f"give the node {name}=0 or 1 (qonnx refuses it too); export the model again")
    if value not in (0, 1):
        raise _fail(proto, node, f"attribute {name!r} is {value!r}; it must be 0 or 1")
    return bool(value)


# --- QONNX ------------------------------------------------------------------------------


def _quant(tr: _Translator, proto, node: str) -> None:
    """QONNX Quant (and IntQuant): scale and zero point (per tensor or broadcast, constant across the batch),
    bit width up to 53, ``signed``, ``narrow`` and ``rounding_mode`` (ROUND, HALF_EVEN, FLOOR, DOWN,
    ROUND_TO_ZERO, HALF_UP, HALF_DOWN, CEIL)."""
    scale = _array_parameter(tr, proto, node, 1, "scale")
    zero = _array_parameter(tr, proto, node, 2, "zero point")
    bits = _bit_width(tr, proto, node, 3)
    signed, narrow = _flag(proto, node, "signed", None), _flag(proto, node, "narrow", None)
    rounding = _rounding(proto, node)
    bipolar = signed and bits == 1  # qonnx's int_quant: a 1-bit signed Quant is the sign
    q = _checked(proto, node, lambda: Quantizer(scale, zero, scale, zero, bits, signed, narrow and not bipolar,
                                                rounding, bipolar, source="Quant"))
    _apply(tr, proto, node, q, proto.output[0])


def _bipolar_quant(tr: _Translator, proto, node: str) -> None:
    """QONNX BipolarQuant: the sign of the input times the scale."""
    scale = _array_parameter(tr, proto, node, 1, "scale")
    q = _checked(proto, node, lambda: Quantizer(scale, 0.0, scale, 0.0, 1, True, bipolar=True,
                                                source="BipolarQuant"))
    _apply(tr, proto, node, q, proto.output[0])


def _trunc(tr: _Translator, proto, node: str) -> None:
    """QONNX Trunc: ``round(x / scale + zero)``, then a second rounding of those integers by a
    power of two (qonnx's ``trunc.py``).  The version is the model's opset of the node's
    domain, as qonnx picks it (1 if the model imports none)."""
    version = tr.domain_opsets.get(proto.domain, 1)
    expected = 6 if version >= 2 else 5
    if len(proto.input) != expected:
        raise _fail(proto, node, f"Trunc version {version} (the model's opset of {proto.domain!r}) has "
                                 f"{expected} inputs, this node {len(proto.input)}",
                    "export the model again, or set the domain's opset to match the node")
    scale = _array_parameter(tr, proto, node, 1, "scale")
    zero = _array_parameter(tr, proto, node, 2, "zero point")
    if np.any(zero != 0):
        raise _fail(proto, node, f"zero point {zero.ravel().tolist()[:4]} is not 0",
                    "finegrain reads Trunc with a zero point of 0 only")
    in_bits = _bit_width(tr, proto, node, 3, "input bit width")
    rounding = _rounding(proto, node, "FLOOR")
    if version >= 2:
        out_scale = _array_parameter(tr, proto, node, 4, "output scale")
        out_bits = _bit_width(tr, proto, node, 5, "output bit width")
        trunc_scale = 2.0 ** np.round(np.log2(out_scale / scale))
        signed, narrow = _flag(proto, node, "signed", 1), _flag(proto, node, "narrow", 0)
        second = lambda: Quantizer(trunc_scale, 0.0, out_scale, 0.0, out_bits, signed, narrow, rounding,  # noqa: E731
                                   source="Trunc")
    else:
        out_bits = _bit_width(tr, proto, node, 4, "output bit width")
        if out_bits > in_bits:
            raise _fail(proto, node, f"output bit width {out_bits} is larger than the input bit width {in_bits}")
        second = lambda: Quantizer(2.0 ** (in_bits - out_bits), 0.0, scale, 0.0, None, True,  # noqa: E731
                                   rounding=rounding, source="Trunc")
    first = _checked(proto, node, lambda: Quantizer(scale, 0.0, 1.0, 0.0, None, True, source="Trunc"))
    second = _checked(proto, node, second)
    if tr.is_constant(proto.input[0]):
        # no one quantizer describes the folded values: they are a float constant
        value = _checked(proto, node, lambda: first.apply(tr.value(proto.input[0])))
        tr.set_value(proto.output[0], second.apply(value))
        return
    integers = tr.fresh(f"{node}.integers")
    _apply(tr, proto, node, first, integers, ir_node=tr.node_name(f"{node}.round"))
    _apply(tr, proto, node, second, proto.output[0], x=integers)
