"""Values of the exact reference (tests/quant_reference.py): `Exact`, a tensor of integer
numerators over one positive denominator (numpy int64 while they provably fit, Python ints in
object arrays beyond); making them from floats, integers, fractions and ONNX initializers;
aligning, comparing and concatenating them; and exact rounding, quantizing and dequantizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


INT64_BITS = 62  # numerators below 2**62 stay int64: a sum of two never overflows


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


def _tensor_value(tensor: onnx.TensorProto) -> Exact:
    array = numpy_helper.to_array(tensor)
    if array.dtype.kind == "f" or tensor.data_type == TensorProto.BFLOAT16:
        return from_float(array.astype(np.float64))
    if array.dtype.kind in "iub" or tensor.data_type in INTEGER_RANGES:  # int4/uint4 are ml_dtypes
        return from_integers(array if array.dtype.kind in "iub" else array.astype(np.int64),
                             elem_type=tensor.data_type)
    raise NotImplementedError(f"initializer {tensor.name!r} of type {array.dtype}")


def concatenate(tensors: list[Exact], axis: int = 0, batched: bool | None = None) -> Exact:
    den, nums = align(*tensors)
    if any(n.dtype == object for n in nums):
        nums = _wide(*nums)
    batched = tensors[0].batched if batched is None else batched
    return Exact(_compact(np.concatenate(nums, axis=axis)), den, batched, tensors[0].elem_type)


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
