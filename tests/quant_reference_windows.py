"""Convolution, pooling and BatchNormalization in the exact reference
(tests/quant_reference.py): Conv, MaxPool, AveragePool (ceil_mode, padding counted or not),
GlobalAveragePool and BatchNormalization, over windows of exact values.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from tests.quant_reference_ops import _multiply, exact_contraction, op_add, op_sub
from tests.quant_reference_values import INT64_BITS, Exact, _compact, _maxbits, from_fractions


SQRT_BITS = 96   # significant bits kept of BatchNormalization's 1 / sqrt(var + eps)


# --- convolution and pooling -------------------------------------------------------------


def _pads(attrs, spatial: int) -> list[tuple[int, int]]:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"auto_pad {attrs['auto_pad']}")
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    return list(zip(pads[:spatial], pads[spatial:]))


def _out_size(size, kernel, stride, dilation, pad, ceil_mode=False) -> int:
    span = size + pad[0] + pad[1] - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad[0]:  # the last window must start inside the input
            out -= 1
        return out
    return span // stride + 1


def _windows(num: np.ndarray, kernel, strides, dilations, pads, fill, ceil_mode=False, overhang_fill=None):
    """Yield (kernel offset, strided view) of the input padded with ``fill`` for every kernel
    offset; ceil-mode windows past the padding see ``overhang_fill`` (default ``fill``)."""
    spatial = len(kernel)
    sizes = num.shape[2:]
    outs = [_out_size(sizes[i], kernel[i], strides[i], dilations[i], pads[i], ceil_mode) for i in range(spatial)]
    # extra padding on the end so ceil-mode windows stay inside the array
    extra = [max(0, (outs[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
                 - (sizes[i] + pads[i][0] + pads[i][1])) for i in range(spatial)]
    width = [(0, 0), (0, 0)] + [(pads[i][0], pads[i][1]) for i in range(spatial)]
    padded = np.pad(num, width, constant_values=fill) if num.dtype != object else _pad_object(num, width, fill)
    if any(extra):
        overhang = fill if overhang_fill is None else overhang_fill
        width = [(0, 0), (0, 0)] + [(0, e) for e in extra]
        padded = np.pad(padded, width, constant_values=overhang) if num.dtype != object else \
            _pad_object(padded, width, overhang)
    for offset in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + tuple(
            slice(offset[i] * dilations[i], offset[i] * dilations[i] + (outs[i] - 1) * strides[i] + 1, strides[i])
            for i in range(spatial))
        yield offset, padded[index]


def _pad_object(num, width, fill):
    shape = [n + lo + hi for n, (lo, hi) in zip(num.shape, width)]
    out = np.full(shape, fill, dtype=object)
    out[tuple(slice(lo, lo + n) for n, (lo, _) in zip(num.shape, width))] = num
    return out


def _spatial_attrs(attrs, x: Exact, kernel):
    spatial = len(kernel)
    return (list(attrs.get("strides", [1] * spatial)), list(attrs.get("dilations", [1] * spatial)),
            _pads(attrs, spatial))


def op_conv(inputs, attrs, opset) -> Exact:
    x, w = inputs[:2]
    kernel = list(w.shape[2:])
    strides, dilations, pads = _spatial_attrs(attrs, x, kernel)
    groups = attrs.get("group", 1)
    c_in = x.shape[1] // groups
    m_out = w.shape[0] // groups
    terms = c_in * int(np.prod(kernel))

    def convolve(xn, wn):
        total = None
        for offset, view in _windows(xn, kernel, strides, dilations, pads, 0):
            parts = []
            for g in range(groups):
                xs = view[:, g * c_in:(g + 1) * c_in]  # (n, c_in, *out)
                ws = wn[g * m_out:(g + 1) * m_out, :, *offset]  # (m_out, c_in)
                parts.append(np.moveaxis(np.tensordot(xs, ws, axes=([1], [1])), -1, 1))
            term = np.concatenate(parts, axis=1) if groups > 1 else parts[0]
            total = term if total is None else total + term
        return total

    total = exact_contraction(x.num, w.num, terms, convolve)
    y = Exact(_compact(total), x.den * w.den, x.batched)
    if len(inputs) > 2 and inputs[2] is not None:
        b = inputs[2]
        y = op_add([y, Exact(b.num.reshape(-1, *[1] * len(kernel)), b.den)], {}, opset)
    return y


def op_max_pool(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pads = _spatial_attrs(attrs, x, kernel)
    if attrs.get("storage_order", 0):
        raise NotImplementedError("MaxPool storage_order")
    fill = (int(x.num.min()) - 1) if x.num.size else 0  # below every value: padding never wins
    best = None
    for _, view in _windows(x.num, kernel, strides, dilations, pads, fill, bool(attrs.get("ceil_mode", 0))):
        best = view if best is None else np.maximum(best, view)
    return x.with_num(best)


def op_average_pool(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pads = _spatial_attrs(attrs, x, kernel)
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    xn = x.num if _maxbits(x.num) + int(np.prod(kernel)).bit_length() <= INT64_BITS else x.num.astype(object)
    total = sum(view for _, view in _windows(xn, kernel, strides, dilations, pads, 0, ceil_mode))
    # the divisor: window positions inside the input, or inside input and explicit pads with
    # count_include_pad (never the ceil-mode overhang past the pads)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=np.int64)
    pad_fill = 1 if attrs.get("count_include_pad", 0) else 0
    count = sum(view for _, view in _windows(ones, kernel, strides, dilations, pads, pad_fill, ceil_mode, 0))
    count = np.broadcast_to(count, total.shape)
    return from_fractions(total, count.astype(object) * x.den, x.batched)


def op_global_average_pool(inputs, attrs, opset) -> Exact:
    x = inputs[0]
    axes = tuple(range(2, x.num.ndim))
    n = int(np.prod([x.shape[a] for a in axes]))
    xn = x.num if _maxbits(x.num) + n.bit_length() <= INT64_BITS else x.num.astype(object)
    total = xn.sum(axis=axes, keepdims=True)
    return from_fractions(total, np.array(n * x.den, dtype=object), x.batched)


def _inverse_sqrt(value: Fraction) -> Fraction:
    """1 / sqrt(value), rounded down to at least SQRT_BITS significant bits."""
    p, q = value.numerator, value.denominator
    # 1/sqrt(p/q) = sqrt(q/p); scale by 2**(2m) so the integer root has SQRT_BITS bits
    m = max(0, SQRT_BITS - (q.bit_length() - p.bit_length()) // 2 + 2)
    return Fraction(math.isqrt((q << (2 * m)) // p), 1 << m)


def op_batch_normalization(inputs, attrs, opset) -> Exact:
    x, gamma, beta, mean, var = inputs[:5]
    if attrs.get("training_mode", 0):
        raise NotImplementedError("BatchNormalization training_mode")
    epsilon = Fraction(float(np.float32(attrs.get("epsilon", 1e-5))))
    channel = (-1,) + (1,) * (x.num.ndim - 2)
    multipliers = []
    for g, v in zip(gamma.fractions().flat, var.fractions().flat):
        multipliers.append(g * _inverse_sqrt(v + epsilon))
    dens = np.array([f.denominator for f in multipliers], dtype=object)
    nums = np.array([f.numerator for f in multipliers], dtype=object)
    multiplier = from_fractions(nums, dens, False)
    multiplier = Exact(multiplier.num.reshape(channel), multiplier.den)
    centred = op_sub([x, Exact(mean.num.reshape(channel), mean.den)], {}, opset)
    return op_add([_multiply(centred, multiplier), Exact(beta.num.reshape(channel), beta.den)], {}, opset)
