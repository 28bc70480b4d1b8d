"""An exact interpreter of quantized ONNX graphs: the mathematical value of every tensor.

Written from the operator specifications (QONNX ``Quant``/``BipolarQuant``/``Trunc`` as in
qonnx's ``custom_op/general``; ONNX ``QuantizeLinear``/``DequantizeLinear`` opsets 10-21;
the ordinary ops listed in ``OPS``), not from an executor: nothing is rounded to float32.
A compiler that is exact can be compared with it bit for bit; qonnx's executor and
onnxruntime (float32 throughout) only where float32 provably cannot round.

Values.  Every tensor is an `Exact`: integer numerators (numpy int64 while they provably
fit, Python ints in object arrays beyond) over one positive integer denominator per tensor.
float32/float16/float64 inputs, weights and scales are dyadic rationals and enter exactly;
sums, products, Quant's ``x / scale`` with any scale, rounding, clamping and average pools
stay exact.  Two things are not:

* BatchNormalization's ``1 / sqrt(var + epsilon)`` is irrational; it is rounded down to a
  dyadic with at least 96 significant bits (relative error below 2**-95), the rest exact;
* Softmax and Sigmoid are computed in float64 from the exact input (correctly rounded to
  float64 first), and their float64 results taken as exact from there on.

Batches.  Axis 0 is the batch: a model written for batch 1 runs ``n`` samples at once when
its shape ops keep axis 0 (Reshape/Flatten to ``[1, ...]``, Transpose with ``perm[0] == 0``,
...).  Where an op would mix samples, `run` runs the samples one at a time instead.

Rounding modes (qonnx ``resolve_rounding_mode``; ROUND_TO_ZERO is Brevitas's name for DOWN):
ROUND/HALF_EVEN ties to even, CEIL, FLOOR, UP (away from zero), DOWN/ROUND_TO_ZERO (toward
zero), HALF_UP (ties away from zero), HALF_DOWN (ties toward zero).  qonnx clamps before
rounding; with integer bounds and monotone rounding that is the same as after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general", "finn")
INT64_BITS = 62  # numerators below 2**62 stay int64: a sum of two never overflows
SQRT_BITS = 96   # significant bits kept of BatchNormalization's 1 / sqrt(var + eps)

# integer ranges of QuantizeLinear/DequantizeLinear data types
INTEGER_RANGES = {
    TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255),
    TensorProto.INT16: (-(2 ** 15), 2 ** 15 - 1), TensorProto.UINT16: (0, 2 ** 16 - 1),
    TensorProto.INT32: (-(2 ** 31), 2 ** 31 - 1), TensorProto.UINT32: (0, 2 ** 32 - 1),
    TensorProto.INT4: (-8, 7), TensorProto.UINT4: (0, 15),
}


class BatchAxisError(Exception):
    """An op would move or mix the batch axis; run the samples one at a time."""


# --- exact tensors -----------------------------------------------------------------------


def _maxbits(num: np.ndarray) -> int:
    """Bits of the largest magnitude (reductions in numpy's loops, Python ints or int64)."""
    if num.size == 0:
        return 0
    return max(int(num.max()), -int(num.min())).bit_length()


def _compact(num) -> np.ndarray:
    """int64 when every numerator fits in INT64_BITS, else Python ints (object)."""
    num = np.asarray(num)
    if num.dtype != object and num.dtype != np.int64:
        num = num.astype(np.int64) if num.dtype.kind in "iub" else num
    if _maxbits(num) <= INT64_BITS:
        return num.astype(np.int64)
    return num.astype(object)


def reduced(num: np.ndarray, den: int) -> tuple[np.ndarray, int]:
    """``num / den`` with the common factor of every numerator and the denominator removed."""
    if den == 1 or num.size == 0:
        return num, den
    if num.dtype == object:
        common = den
        for v in num.flat:
            common = math.gcd(common, int(v))
            if common == 1:
                return num, den
    else:
        common = math.gcd(int(np.gcd.reduce(num.ravel())), den)
    if common == 1:
        return num, den
    return _compact(num // common), den // common


def _wide(*nums: np.ndarray) -> list[np.ndarray]:
    return [n.astype(object) for n in nums]


def _product_fits(a: np.ndarray, b: np.ndarray, terms: int = 1) -> bool:
    return _maxbits(a) + _maxbits(b) + max(terms, 1).bit_length() <= INT64_BITS


@dataclass(frozen=True)
class Exact:
    """``num / den`` elementwise; ``batched``: axis 0 holds the samples.  ``elem_type`` is the
    ONNX element type the tensor has in the model (FLOAT unless an integer tensor)."""

    num: np.ndarray
    den: int
    batched: bool = False
    elem_type: int = TensorProto.FLOAT

    def __post_init__(self):
        assert isinstance(self.den, int) and self.den > 0, self.den

    @property
    def shape(self) -> tuple[int, ...]:
        return self.num.shape

    def with_num(self, num, den: int | None = None, **changes) -> Exact:
        return Exact(_compact(num), self.den if den is None else int(den),
                     changes.get("batched", self.batched), changes.get("elem_type", self.elem_type))

    def scaled_to(self, den: int) -> np.ndarray:
        """Numerators over ``den``, a multiple of ``self.den``."""
        factor = den // self.den
        assert factor * self.den == den
        if factor == 1:
            return self.num
        num = self.num
        if _maxbits(num) + factor.bit_length() > INT64_BITS:
            num = num.astype(object)
        return num * factor

    def integers(self) -> np.ndarray:
        """The values, which must be integers (shapes, axes, quantized data)."""
        if self.den != 1:
            q, r = np.divmod(self.num, self.den)
            if np.any(r != 0):
                raise ValueError(f"expected integers, got non-integer values (denominator {self.den})")
            return q
        return self.num

    def fractions(self) -> np.ndarray:
        """The values as an object array of ``Fraction``."""
        den = self.den
        return np.vectorize(lambda v: Fraction(int(v), den), otypes=[object])(self.num)

    def float64(self) -> np.ndarray:
        """Each value correctly rounded to float64."""
        if self.num.dtype != object and _maxbits(self.num) <= 53:
            if not self.den & (self.den - 1):  # a power of two: exact
                return np.ldexp(self.num.astype(np.float64), -(self.den.bit_length() - 1))
            if self.den < 2 ** 53:
                return self.num.astype(np.float64) / float(self.den)  # one rounding: IEEE division
        return np.vectorize(lambda f: float(f), otypes=[np.float64])(self.fractions())

    def __repr__(self) -> str:
        return f"Exact(shape={self.shape}, den={self.den}, batched={self.batched})"


def from_float(array, batched: bool = False) -> Exact:
    """The exact value of a float array (every float16/32/64 is a dyadic rational)."""
    x = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("inf or nan has no exact value")
    mantissa, exponent = np.frexp(x)  # x = mantissa * 2**exponent, mantissa in [0.5, 1)
    m = (mantissa * 2.0 ** 53).astype(np.int64)  # exact: float64 has 53 significant bits
    e = exponent.astype(np.int64) - 53
    nonzero = m != 0
    if not nonzero.any():
        return Exact(np.zeros(x.shape, dtype=np.int64), 1, batched)
    # strip trailing zero bits so denominators stay small (m & -m is the lowest set bit)
    lowest = np.where(nonzero, m & -m, 1)
    twos = np.round(np.log2(lowest.astype(np.float64))).astype(np.int64)
    mm = m >> twos
    e = e + twos
    low = int(e[nonzero].min())
    shift = np.where(nonzero, e - low, 0)
    if int(shift.max()) + 53 <= INT64_BITS:
        num = mm << shift
    else:
        num = np.array([int(v) << int(s) for v, s in zip(mm.flat, shift.flat)], dtype=object).reshape(x.shape)
    if low >= 0:
        return Exact(_compact(num.astype(object) * (1 << low)), 1, batched)
    return Exact(_compact(num), 1 << -low, batched)


def from_integers(array, batched: bool = False, elem_type: int = TensorProto.INT64) -> Exact:
    return Exact(_compact(np.asarray(array).astype(object) if np.asarray(array).dtype == np.uint64
                          else np.asarray(array)), 1, batched, elem_type)


def from_fractions(num: np.ndarray, den: np.ndarray, batched: bool) -> Exact:
    """Elementwise ``num / den`` (integer arrays, den > 0) over their least common denominator."""
    den = np.asarray(den)
    unique = {int(d) for d in np.unique(den.astype(object) if den.dtype == object else den)}
    common = 1
    for d in unique:
        common = common * d // math.gcd(common, d)
    num, den = np.broadcast_arrays(np.asarray(num), den)
    if _maxbits(num) + common.bit_length() > INT64_BITS or den.dtype == object:
        num, den = _wide(num, den)
    return Exact(*reduced(_compact(num * (common // den)), common), batched)


def align(*tensors: Exact) -> tuple[int, list[np.ndarray]]:
    """A common denominator and every tensor's numerators over it."""
    common = 1
    for t in tensors:
        common = common * t.den // math.gcd(common, t.den)
    return common, [t.scaled_to(common) for t in tensors]


def exact_equal(value: Exact, array) -> np.ndarray:
    """Elementwise: does the float ``array`` hold exactly ``value``?"""
    other = from_float(array)
    a, b = np.broadcast_arrays(*_wide(value.num, other.num))
    return a * other.den == b * value.den


# --- rounding and quantizers -------------------------------------------------------------


def round_division(p: np.ndarray, q: np.ndarray, mode: str) -> np.ndarray:
    """``R(p / q)`` for integer arrays, q > 0, R one of the Quant rounding modes."""
    p, q = np.broadcast_arrays(p, q)
    floor = p // q
    rest = p - floor * q  # in [0, q)
    twice = 2 * rest
    above, tie = twice > q, twice == q
    exact = rest == 0
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return floor + (above | (tie & (floor % 2 == 1)))
    if mode == "FLOOR":
        return floor
    if mode == "CEIL":
        return floor + ~exact
    if mode in ("DOWN", "ROUND_TO_ZERO"):  # toward zero
        return floor + ((p < 0) & ~exact)
    if mode == "UP":  # away from zero
        return floor + ((p > 0) & ~exact)
    if mode == "HALF_UP":  # ties away from zero: floor + 0.5 is positive iff floor >= 0
        return floor + (above | (tie & (floor >= 0)))
    if mode == "HALF_DOWN":  # ties toward zero
        return floor + (above | (tie & (floor < 0)))
    raise ValueError(f"unknown rounding mode {mode!r}")


def _as_ratio(t: Exact, shape) -> tuple[np.ndarray, np.ndarray]:
    """(numerators, denominators) broadcast to ``shape``: the value num / den elementwise."""
    num = np.broadcast_to(t.num, shape)
    return num, np.full(shape, t.den, dtype=object if t.den.bit_length() > INT64_BITS else np.int64)


def integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """qonnx ``min_int``/``max_int``."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - int(narrow)


def scaled_ratio(x: Exact, scale: Exact, zero_point: Exact) -> tuple[np.ndarray, np.ndarray]:
    """Integer arrays (p, q), q > 0, with p / q == x / scale + zero_point elementwise
    (scale and zero point broadcast against x).  Scales must be positive."""
    shape = np.broadcast_shapes(x.shape, scale.shape, zero_point.shape)
    if np.any(scale.num <= 0):
        raise ValueError("quantizer scale must be positive")
    # (xn / xd) * (sd / sn) + zn / zd = (xn * sd * zd + zn * xd * sn) / (xd * sn * zd)
    xn, sn, zn = (np.broadcast_to(t.num, shape).astype(object) for t in (x, scale, zero_point))
    return xn * (scale.den * zero_point.den) + zn * sn * x.den, sn * (x.den * zero_point.den)


def quantize(x: Exact, scale: Exact, zero_point: Exact, rounding: str, lo: int | None, hi: int | None,
             bipolar: bool = False) -> np.ndarray:
    """The integers ``clamp(R(x / scale + zero_point), lo, hi)`` (or the sign, +-1, if
    ``bipolar``), exactly, broadcasting scale and zero point against x."""
    p, q = scaled_ratio(x, scale, zero_point)
    if bipolar:
        return np.where(p >= 0, 1, -1).astype(np.int64)
    y = round_division(p, q, rounding)
    if lo is not None:
        y = np.minimum(np.maximum(y, lo), hi)
    return _compact(y)


def dequantize(q: np.ndarray, scale: Exact, zero_point: Exact, batched: bool) -> Exact:
    """``(q - zero_point) * scale`` exactly."""
    shape = np.broadcast_shapes(q.shape, scale.shape, zero_point.shape)
    qn = np.broadcast_to(q, shape).astype(object)
    zn = np.broadcast_to(zero_point.num, shape).astype(object)
    sn = np.broadcast_to(scale.num, shape).astype(object)
    return Exact(*reduced(_compact((qn * zero_point.den - zn) * sn), zero_point.den * scale.den), batched)


# --- the interpreter ---------------------------------------------------------------------


class Interpreter:
    """Runs one ONNX model on `Exact` values; see the module docstring."""

    def __init__(self, model: onnx.ModelProto | str | Path):
        self.model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.graph = self.model.graph
        self.opsets = {o.domain: o.version for o in self.model.opset_import}
        self.constants: dict[str, Exact] = {}
        for init in self.graph.initializer:
            self.constants[init.name] = _tensor_value(init)

    def opset(self, domain: str = "") -> int:
        return self.opsets.get(domain, self.opsets.get("ai.onnx", 1) if domain == "" else 1)

    def run(self, feeds: dict[str, Exact], keep_all: bool = False) -> dict[str, Exact]:
        env: dict[str, Exact] = dict(self.constants)
        env.update(feeds)
        for node in self.graph.node:
            inputs = [env[name] if name else None for name in node.input]
            try:
                outputs = self.node(node, inputs)
            except BatchAxisError:
                raise
            except Exception as error:
                raise RuntimeError(f"node {node.name!r} ({node.op_type}): {error}") from error
            for name, value in zip(node.output, outputs):
                if name:
                    env[name] = value
        if keep_all:
            return env
        return {o.name: env[o.name] for o in self.graph.output}

    def node(self, node: onnx.NodeProto, inputs: list) -> list[Exact]:
        attrs = attributes(node)
        if node.domain in QUANT_DOMAINS:
            op = {"Quant": op_quant, "BipolarQuant": op_bipolar_quant, "Trunc": op_trunc}.get(node.op_type)
            if op is None:
                raise NotImplementedError(f"{node.domain}.{node.op_type}")
            return [op(inputs, attrs, self.opset(node.domain))]
        if node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"{node.domain}.{node.op_type}")
        op = OPS.get(node.op_type)
        if op is None:
            raise NotImplementedError(f"ONNX op {node.op_type}")
        result = op(inputs, attrs, self.opset())
        return result if isinstance(result, list) else [result]


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, strings decoded."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def _tensor_value(tensor: onnx.TensorProto) -> Exact:
    array = numpy_helper.to_array(tensor)
    if array.dtype.kind == "f" or tensor.data_type == TensorProto.BFLOAT16:
        return from_float(array.astype(np.float64))
    if array.dtype.kind in "iub" or tensor.data_type in INTEGER_RANGES:  # int4/uint4 are ml_dtypes
        return from_integers(array if array.dtype.kind in "iub" else array.astype(np.int64),
                             elem_type=tensor.data_type)
    raise NotImplementedError(f"initializer {tensor.name!r} of type {array.dtype}")


def run(model: onnx.ModelProto | str | Path, inputs, *, keep_all: bool = False) -> dict[str, Exact]:
    """Exact outputs of ``model`` on ``inputs`` (an array for the single graph input, or a
    dict by input name), samples on axis 0; samples run one at a time when a shape op
    would mix them (`BatchAxisError`)."""
    interpreter = model if isinstance(model, Interpreter) else Interpreter(model)
    names = [i.name for i in interpreter.graph.input if i.name not in interpreter.constants]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise ValueError(f"the model has inputs {names}: pass a dict")
        inputs = {names[0]: inputs}
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    try:
        return interpreter.run({name: _feed(a, True) for name, a in arrays.items()}, keep_all)
    except BatchAxisError:
        # each sample alone, as the batch-1 model it is, then stacked
        n = len(next(iter(arrays.values())))
        per_sample = [interpreter.run({name: _feed(a[i:i + 1], False) for name, a in arrays.items()}, keep_all)
                      for i in range(n)]
        names = [name for name in per_sample[0] if keep_all is False or name not in interpreter.constants]
        return {name: concatenate([r[name] for r in per_sample], batched=True) for name in names}


def _feed(array: np.ndarray, batched: bool) -> Exact:
    if array.dtype.kind == "f":
        return from_float(array, batched)
    types = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
             np.dtype(np.int16): TensorProto.INT16, np.dtype(np.int32): TensorProto.INT32}
    return from_integers(array, batched, types.get(array.dtype, TensorProto.INT64))


def concatenate(tensors: list[Exact], axis: int = 0, batched: bool | None = None) -> Exact:
    den, nums = align(*tensors)
    if any(n.dtype == object for n in nums):
        nums = _wide(*nums)
    batched = tensors[0].batched if batched is None else batched
    return Exact(_compact(np.concatenate(nums, axis=axis)), den, batched, tensors[0].elem_type)


def run_output(model, inputs) -> Exact:
    """The single graph output of `run`."""
    outputs = run(model, inputs)
    if len(outputs) != 1:
        raise ValueError(f"the model has outputs {list(outputs)}")
    return next(iter(outputs.values()))


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


OPS = {
    "QuantizeLinear": op_quantize_linear, "DequantizeLinear": op_dequantize_linear,
    "Gemm": op_gemm, "MatMul": op_matmul, "Conv": op_conv,
    "Add": op_add, "Sub": op_sub, "Mul": op_mul, "Div": op_div,
    "Relu": op_relu, "Clip": op_clip, "Identity": op_identity, "Cast": op_cast,
    "MaxPool": op_max_pool, "AveragePool": op_average_pool, "GlobalAveragePool": op_global_average_pool,
    "BatchNormalization": op_batch_normalization, "Softmax": op_softmax, "Sigmoid": op_sigmoid,
    "Flatten": op_flatten, "Reshape": op_reshape, "Transpose": op_transpose, "Squeeze": op_squeeze,
    "Unsqueeze": op_unsqueeze, "Concat": op_concat, "DepthToSpace": op_depth_to_space,
    "Shape": op_shape, "Gather": op_gather, "Constant": op_constant,
}
