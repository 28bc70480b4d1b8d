"""The ops of the exact reference (tests/quant_reference.py) other than convolution and
pooling: QONNX Quant/BipolarQuant/Trunc, ONNX QuantizeLinear/DequantizeLinear, arithmetic
(Add, Sub, Mul, Div, MatMul, Gemm, Relu, Clip, Cast), Softmax, Sigmoid and the other
elementwise functions (Tanh, HardSigmoid, ...) in float64, and
the shape ops.  Each is ``op(inputs, attrs, opset) -> Exact``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from onnx import TensorProto

from tests.quant_reference_values import (INT64_BITS, INTEGER_RANGES, BatchAxisError, Exact, _compact, _maxbits,
                                          _product_fits, _wide, align, concatenate, dequantize, from_float,
                                          from_fractions, from_integers, integer_range, quantize, round_division,
                                          _tensor_value)


# --- QONNX quantizers --------------------------------------------------------------------


def _scalar_int(t: Exact, what: str) -> int:
    values = t.integers()
    if values.size != 1:
        raise ValueError(f"{what} must be a scalar, got shape {values.shape}")
    return int(values.flat[0])


def op_quant(inputs, attrs, opset) -> Exact:
    x, scale, zero_point, bits = inputs
    bits = _scalar_int(bits, "bit width")
    if bits < 1:
        raise ValueError(f"bit width {bits}: a quantizer needs at least 1 bit")
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    rounding = attrs.get("rounding_mode", "ROUND")
    if bits == 1 and signed:  # qonnx: a signed 1-bit Quant is bipolar
        q = quantize(x, scale, zero_point, rounding, None, None, bipolar=True)
    else:
        lo, hi = integer_range(bits, signed, narrow)
        q = quantize(x, scale, zero_point, rounding, lo, hi)
    return dequantize(q, scale, zero_point, x.batched)


def op_bipolar_quant(inputs, attrs, opset) -> Exact:
    x, scale = inputs
    # qonnx binary_quant: sign(x) (x >= 0 -> +1), times the scale, no division
    q = np.where(x.num >= 0, 1, -1).astype(np.int64)
    return dequantize(q, scale, from_integers(0), x.batched)


def op_trunc(inputs, attrs, opset) -> Exact:
    """qonnx Trunc: v2 is (x, scale, zero point, input bits, output scale, output bits) with
    signed/narrow and a clamp; v1 is (x, scale, zero point, input bits, output bits), no
    clamp, the output left at ``scale``.  The number of inputs tells them apart (qonnx goes
    by the domain's opset, and runs a 6-input Trunc of the onnx.brevitas or FINN domain as v1)."""
    rounding = attrs.get("rounding_mode", "FLOOR")
    x, scale, zero_point, in_bits = inputs[:4]
    zero = from_integers(0)
    y = Exact(quantize(x, scale, zero_point, "ROUND", None, None), 1)  # qonnx: np.round first
    if len(inputs) not in (5, 6):
        raise ValueError(f"Trunc takes 5 inputs (v1) or 6 (v2), not {len(inputs)}")
    if len(inputs) == 6:
        out_scale, out_bits = inputs[4], _scalar_int(inputs[5], "output bit width")
        trunc_scale = from_fractions(out_scale.num * scale.den, np.asarray(scale.num) * out_scale.den, False)
        if not all(_is_power_of_two(f) for f in trunc_scale.fractions().flat):
            raise ValueError("Trunc output scale / scale must be a power of two")
        lo, hi = integer_range(out_bits, bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0)))
        q = quantize(y, trunc_scale, zero, rounding, lo, hi)
        # output = (q - zero point / trunc scale) * output scale
        zero_out = from_fractions(np.asarray(zero_point.num, dtype=object) * trunc_scale.den,
                                  np.asarray(trunc_scale.num, dtype=object) * zero_point.den, False)
        return dequantize(q, out_scale, zero_out, x.batched)
    shift = _scalar_int(in_bits, "input bit width") - _scalar_int(inputs[4], "output bit width")
    step = from_integers(2 ** shift) if shift >= 0 else Exact(np.array(1), 2 ** -shift)
    return dequantize(quantize(y, step, zero, rounding, None, None), scale, zero_point, x.batched)


def _is_power_of_two(f: Fraction) -> bool:
    return f > 0 and f.numerator & (f.numerator - 1) == 0 and f.denominator & (f.denominator - 1) == 0


# --- ONNX QuantizeLinear / DequantizeLinear ---------------------------------------------


def _per_axis(t: Exact, rank: int, axis: int, block_size: int) -> Exact:
    """A 1-D per-axis scale/zero point reshaped to broadcast along ``axis``."""
    if block_size:
        raise NotImplementedError("blocked quantization (block_size)")
    if t.num.ndim == 0 or t.num.size == 1 and t.num.ndim <= 1:
        return Exact(t.num.reshape(()), t.den, False, t.elem_type)
    if t.num.ndim != 1:
        raise ValueError(f"per-axis scale/zero point must be 1-D, got shape {t.num.shape}")
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = t.num.size
    return Exact(t.num.reshape(shape), t.den, False, t.elem_type)


def op_quantize_linear(inputs, attrs, opset) -> Exact:
    x, scale = inputs[:2]
    zero_point = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    rank, axis = x.num.ndim, attrs.get("axis", 1)
    block = attrs.get("block_size", 0)
    elem_type = zero_point.elem_type if zero_point is not None else attrs.get("output_dtype", 0) or TensorProto.UINT8
    if elem_type not in INTEGER_RANGES:
        raise NotImplementedError(f"QuantizeLinear to element type {elem_type}")
    lo, hi = INTEGER_RANGES[elem_type]
    scale = _per_axis(scale, rank, axis, block)
    zero = _per_axis(zero_point, rank, axis, block).integers() if zero_point is not None else 0
    # saturate(round(x / scale) + zero point): the zero point is added after rounding, which
    # differs from rounding x / scale + zero point at ties when the zero point is odd
    q = quantize(x, scale, from_integers(0), "HALF_EVEN", None, None) + zero
    return Exact(_compact(np.minimum(np.maximum(q, lo), hi)), 1, x.batched, elem_type)


def op_dequantize_linear(inputs, attrs, opset) -> Exact:
    x, scale = inputs[:2]
    zero_point = inputs[2] if len(inputs) > 2 and inputs[2] is not None else from_integers(0)
    rank, axis = x.num.ndim, attrs.get("axis", 1)
    block = attrs.get("block_size", 0)
    return dequantize(x.integers(), _per_axis(scale, rank, axis, block), _per_axis(zero_point, rank, axis, block),
                      x.batched)


# --- arithmetic --------------------------------------------------------------------------


def _binary(a: Exact, b: Exact, fn) -> tuple[np.ndarray, np.ndarray]:
    den, (an, bn) = align(a, b)
    if max(_maxbits(an), _maxbits(bn)) >= INT64_BITS:
        an, bn = _wide(an, bn)
    return den, fn(an, bn)


def op_add(inputs, attrs, opset) -> Exact:
    a, b = inputs
    den, num = _binary(a, b, np.add)
    return Exact(_compact(num), den, a.batched or b.batched)


def op_sub(inputs, attrs, opset) -> Exact:
    a, b = inputs
    den, num = _binary(a, b, np.subtract)
    return Exact(_compact(num), den, a.batched or b.batched)


def _multiply(a: Exact, b: Exact) -> Exact:
    an, bn = (a.num, b.num) if _product_fits(a.num, b.num) else _wide(a.num, b.num)
    return Exact(_compact(an * bn), a.den * b.den, a.batched or b.batched)


def op_mul(inputs, attrs, opset) -> Exact:
    return _multiply(*inputs)


def op_div(inputs, attrs, opset) -> Exact:
    a, b = inputs
    if b.batched:
        raise NotImplementedError("Div by a tensor that is not a constant")
    if np.any(b.num == 0):
        raise ValueError("division by zero")
    # a / b = (an / ad) * (bd / bn), elementwise denominators ad * |bn|
    shape = np.broadcast_shapes(a.shape, b.shape)
    an, bn = (np.broadcast_to(v, shape).astype(object) for v in (a.num, b.num))
    sign = np.where(bn < 0, -1, 1)
    return from_fractions(an * b.den * sign, np.abs(bn) * a.den, a.batched)


def _limbs(num: np.ndarray, bits: int) -> list[np.ndarray]:
    """int64 arrays l_k, |l_k| < 2**bits, with num == sum(l_k * 2**(bits * k))."""
    if num.dtype != object:
        num = num.astype(np.int64)
    sign = np.where(num < 0, -1, 1)
    magnitude = np.abs(num)
    count = max(1, -(-_maxbits(num) // bits))
    mask = (1 << bits) - 1
    return [(((magnitude >> (bits * k)) & mask) * sign).astype(np.int64) for k in range(count)]


def exact_contraction(a: np.ndarray, b: np.ndarray, terms: int, contract) -> np.ndarray:
    """``contract(a, b)`` (a sum of ``terms`` products per output, e.g. a matmul) exactly:
    in int64 when it provably fits, else split into int64 limbs whose products and sums fit,
    contracted limb by limb in int64 and recombined in Python ints; object arrays only for
    the recombination, never inside the contraction."""
    if _product_fits(a, b, terms):
        return contract(a.astype(np.int64), b.astype(np.int64))
    bits = (INT64_BITS - max(terms, 1).bit_length()) // 2
    a_limbs, b_limbs = _limbs(a, bits), _limbs(b, bits)
    total = None
    for i, a_limb in enumerate(a_limbs):
        for j, b_limb in enumerate(b_limbs):
            part = contract(a_limb, b_limb).astype(object) * (1 << (bits * (i + j)))
            total = part if total is None else total + part
    return total


def _matmul(an: np.ndarray, bn: np.ndarray, terms: int) -> np.ndarray:
    return exact_contraction(an, bn, terms, np.matmul)


def op_matmul(inputs, attrs, opset) -> Exact:
    a, b = inputs
    return Exact(_compact(_matmul(a.num, b.num, a.shape[-1])), a.den * b.den, a.batched or b.batched)


def op_gemm(inputs, attrs, opset) -> Exact:
    a, b = inputs[:2]
    an = a.num.T if attrs.get("transA", 0) else a.num
    bn = b.num.T if attrs.get("transB", 0) else b.num
    if attrs.get("transA", 0) and a.batched:
        raise BatchAxisError("Gemm transA on the batch axis")
    y = Exact(_compact(_matmul(an, bn, an.shape[-1])), a.den * b.den, a.batched or b.batched)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = _multiply(y, from_float(np.float32(alpha)))
    if len(inputs) > 2 and inputs[2] is not None:
        c = inputs[2] if beta == 1.0 else _multiply(inputs[2], from_float(np.float32(beta)))
        y = op_add([y, c], {}, opset)
    return y


def op_relu(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    return x.with_num(np.maximum(x.num, 0))


def op_clip(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    if opset < 11:
        low = from_float(np.float32(attrs["min"])) if "min" in attrs else None
        high = from_float(np.float32(attrs["max"])) if "max" in attrs else None
    else:
        low = inputs[1] if len(inputs) > 1 else None
        high = inputs[2] if len(inputs) > 2 else None
    bounds = [t for t in (low, high) if t is not None]
    den, (num, *rest) = align(x, *bounds)
    if low is not None:
        num = np.maximum(num, rest.pop(0))
    if high is not None:
        num = np.minimum(num, rest.pop(0))
    return Exact(_compact(num), den, x.batched, x.elem_type)


def op_identity(inputs, attrs, opset) -> Exact:
    return inputs[0]


def op_cast(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    to = attrs["to"]
    if to in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        return Exact(x.num, x.den, x.batched, to)
    q = round_division(x.num, np.array(x.den), "DOWN")  # float -> int casts truncate
    return Exact(_compact(q), 1, x.batched, to)


# --- float64 ops (not exact) -------------------------------------------------------------


def _axis(attrs, opset, default_new=-1, default_old=1) -> int:
    return attrs.get("axis", default_new if opset >= 13 else default_old)


def op_softmax(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    axis = _axis(attrs, opset) % x.num.ndim
    if opset < 13 and axis != x.num.ndim - 1:
        raise NotImplementedError("Softmax before opset 13 over more than the last axis")
    v = x.float64()
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return from_float(e / e.sum(axis=axis, keepdims=True), x.batched)


def op_sigmoid(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    return from_float(1.0 / (1.0 + np.exp(-x.float64())), x.batched)


def _negative_part(v: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(v > 0, v, alpha * (np.exp(np.minimum(v, 0.0)) - 1.0))


# The other elementwise functions, in float64 from their ONNX definitions (written apart from
# compiler/table_functions.py); the attributes default as ONNX's float32 values do.
_FUNCTIONS = {
    "Tanh": lambda v, a: np.tanh(v),
    "HardSigmoid": lambda v, a: np.maximum(0.0, np.minimum(1.0, a.get("alpha", float(np.float32(0.2))) * v
                                                           + a.get("beta", 0.5))),
    "HardSwish": lambda v, a: v * np.maximum(0.0, np.minimum(1.0, v / 6.0 + 0.5)),
    "Softplus": lambda v, a: np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0.0),
    "Softsign": lambda v, a: v / (1.0 + np.abs(v)),
    "Elu": lambda v, a: _negative_part(v, a.get("alpha", 1.0)),
    "Selu": lambda v, a: a.get("gamma", float(np.float32(1.0507009873554804934193349852946)))
    * _negative_part(v, a.get("alpha", float(np.float32(1.6732632423543772848170429916717)))),
}


def elementwise_op(op_type: str):
    def op(inputs, attrs, opset) -> Exact:
        x = inputs[0]
        return from_float(_FUNCTIONS[op_type](x.float64(), attrs), x.batched)
    return op


# --- shapes ------------------------------------------------------------------------------


def _model_shape(x: Exact) -> list[int]:
    """The tensor's shape in the model: a batched tensor has batch 1."""
    return [1, *x.shape[1:]] if x.batched else list(x.shape)


def _reshaped(x: Exact, model_shape: list[int]) -> Exact:
    if x.batched:
        if not model_shape or model_shape[0] != 1:
            if x.shape[0] != 1:
                raise BatchAxisError(f"reshape to {model_shape} moves the batch axis")
            return Exact(x.num.reshape(model_shape), x.den, True, x.elem_type)
        return Exact(x.num.reshape([x.shape[0], *model_shape[1:]]), x.den, True, x.elem_type)
    return Exact(x.num.reshape(model_shape), x.den, False, x.elem_type)


def op_reshape(inputs, attrs, opset) -> Exact:
    x, shape = inputs
    target = [int(v) for v in shape.integers().flat]
    source = _model_shape(x)
    if not attrs.get("allowzero", 0):
        target = [source[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = int(np.prod(source)) // known
    return _reshaped(x, target)


def op_flatten(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    source = _model_shape(x)
    axis = attrs.get("axis", 1) % (len(source) + 1) if attrs.get("axis", 1) < 0 else attrs.get("axis", 1)
    return _reshaped(x, [int(np.prod(source[:axis])), int(np.prod(source[axis:]))])


def op_transpose(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    perm = list(attrs.get("perm", reversed(range(x.num.ndim))))
    if x.batched and perm[0] != 0 and x.shape[0] != 1:
        raise BatchAxisError(f"Transpose perm {perm} moves the batch axis")
    return Exact(np.transpose(x.num, perm), x.den, x.batched, x.elem_type)


def _axes(inputs, attrs, opset, first_opset=13) -> list[int] | None:
    if opset >= first_opset:
        return [int(v) for v in inputs[1].integers().flat] if len(inputs) > 1 and inputs[1] is not None else None
    return list(attrs["axes"]) if "axes" in attrs else None


def op_squeeze(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    source = _model_shape(x)
    axes = _axes(inputs, attrs, opset)
    axes = [i for i, n in enumerate(source) if n == 1] if axes is None else [a % len(source) for a in axes]
    return _reshaped(x, [n for i, n in enumerate(source) if i not in axes])


def op_unsqueeze(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    shape = _model_shape(x)
    axes = sorted(a % (len(shape) + len(_axes(inputs, attrs, opset))) for a in _axes(inputs, attrs, opset))
    for a in axes:
        shape.insert(a, 1)
    return _reshaped(x, shape)


def op_concat(inputs, attrs, opset) -> Exact:
    axis = attrs["axis"] % inputs[0].num.ndim
    batched = any(t.batched for t in inputs)
    if batched and axis == 0:
        raise BatchAxisError("Concat along the batch axis")
    if batched:
        n = max(t.shape[0] for t in inputs if t.batched)
        inputs = [t if t.batched else Exact(np.broadcast_to(t.num, (n, *t.shape[1:])), t.den) for t in inputs]
    y = concatenate(inputs, axis)
    return Exact(y.num, y.den, batched, inputs[0].elem_type)


def op_depth_to_space(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs.get("mode", "DCR") == "DCR":
        y = x.num.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:  # CRD
        y = x.num.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return x.with_num(y.reshape(n, c // (b * b), h * b, w * b))


def op_shape(inputs, attrs, opset) -> Exact:
    shape = _model_shape(inputs[0])
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return from_integers(np.array(shape[start:end], dtype=np.int64))


def op_gather(inputs, attrs, opset) -> Exact:
    x, indices = inputs
    axis = attrs.get("axis", 0) % x.num.ndim
    if x.batched and axis == 0:
        raise BatchAxisError("Gather along the batch axis")
    return Exact(np.take(x.num, indices.integers(), axis=axis), x.den, x.batched, x.elem_type)


def op_constant(inputs, attrs, opset) -> Exact:
    if "value" in attrs:
        return _tensor_value(attrs["value"])
    for key in ("value_float", "value_floats"):
        if key in attrs:
            return from_float(np.float32(attrs[key]))
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return from_integers(np.array(attrs[key], dtype=np.int64))
    raise NotImplementedError(f"Constant with {sorted(attrs)}")
