"""Exact constants and integer formats for lowering a quantized model (passes/lower_quant.py,
passes/choose_multipliers.py): every value here is held exactly, no plan decides a width."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..fixed import Formats, Overflow, Rounding
from ..mantissa import common_fraction, round_float


def round_half_even(f: Fraction) -> int:
    return round(f)  # Python rounds a Fraction half to even


def compact(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis along which it is constant reduced to length 1 (broadcastable back);
    numbers or objects (Fractions)."""
    a = np.asarray(a)
    if a.dtype == object and a.size > 1:
        # the same test on integer codes of the distinct values: one hash per element instead of
        # a Fraction comparison per element and axis
        ids = _codes(a)
        index = np.arange(a.size).reshape(a.shape)
        for axis, constant in enumerate(_constant_axes(ids.reshape(a.shape))):
            if constant:
                index = np.take(index, [0], axis=axis)
        return a.reshape(-1)[index]
    for axis, constant in enumerate(_constant_axes(a)):
        if constant:
            a = np.take(a, [0], axis=axis)
    return a


def _codes(a: np.ndarray) -> np.ndarray:
    """An int64 code per element of ``a`` (flat, C order): equal values, equal codes."""
    codes: dict = {}
    keys = iter(a.flat)
    if all(type(v) is Fraction or type(v) is int for v in a.flat):
        # (numerator, denominator): equal for equal values (an int's is (v, 1), as Fraction(v)'s),
        # and a tuple hashes several times faster than a Fraction
        keys = ((v.numerator, v.denominator) for v in a.flat)
    return np.fromiter((codes.setdefault(k, len(codes)) for k in keys), dtype=np.int64, count=a.size)


def fill_unknown(ids: np.ndarray) -> np.ndarray:
    """Integer value codes, -1 where the value does not matter (at least one known), filled so
    that `compact` reduces them as far as the known codes allow: axis by axis, where every line
    along the axis holds at most one distinct known code, that code fills the line's unknown
    elements; an element no line fills takes the first (C order) code known by then."""
    for axis in range(ids.ndim):
        top = ids.max(axis=axis, keepdims=True)  # a line's one known code, if it has only one
        if np.any((ids >= 0) & (ids != top)):
            continue  # two known values on one line: the constant varies along this axis
        ids = np.where(ids < 0, top, ids)
    return np.where(ids < 0, ids[ids >= 0][0], ids)


def _constant_axes(a: np.ndarray) -> list[bool]:
    """For each axis in turn, whether ``a`` (already reduced along the axes before it) is constant
    along it and longer than 1."""
    found = []
    for axis in range(a.ndim):
        found.append(a.shape[axis] > 1 and bool(np.all(a == np.take(a, [0], axis=axis))))
        if found[-1]:
            a = np.take(a, [0], axis=axis)
    return found


def exact_data(values: np.ndarray) -> tuple[Formats, np.ndarray, int]:
    """(formats, data, data_frac) of a constant holding the floats ``values`` exactly."""
    from .apply_plan import exact_formats  # apply_plan imports nothing from here
    formats = exact_formats(values)
    m = round_float(values, formats, "constant")  # exact: the formats hold the values
    data, frac = common_fraction(m, formats)
    return formats, np.asarray(data), frac


def mantissa_data(mant: list[int], frac: list[int], shape, signed: bool = True,
                  modes: tuple[Rounding, Overflow] = (Rounding.RND_CONV, Overflow.SAT),
                  ) -> tuple[Formats, np.ndarray, int]:
    """(formats, data, data_frac) of a constant whose element ``i`` is ``mant[i] * 2**-frac[i]``
    (Python ints, any width): each in the narrowest format holding it (with these modes), a
    zero pruned."""
    width = np.array([max(abs(m).bit_length() + (signed and m < 0), 1) for m in mant], dtype=np.int64)
    negative = np.array([m < 0 for m in mant], dtype=bool)
    zeros = np.zeros(width.shape, dtype=np.int64)
    formats = Formats(*(f.reshape(shape) for f in (
        width, width - np.asarray(frac, dtype=np.int64), negative, zeros + int(modes[0]),
        zeros + int(modes[1])))).prune(np.array([m == 0 for m in mant]).reshape(shape))
    m = np.array(list(mant) + [None], dtype=object)[:-1].reshape(shape)
    if all(abs(v) < (1 << 62) for v in mant):
        m = m.astype(np.int64)
    data, data_frac = common_fraction(m, formats)
    return formats, np.asarray(data), data_frac


def integer_formats(lo: np.ndarray, hi: np.ndarray, frac: np.ndarray, rounding: Rounding,
                     narrow_symmetric: np.ndarray) -> Formats:
    """Per element, the narrowest format at ``frac`` fractional bits holding ``[lo, hi]``
    (integers), SAT (SAT_SYM where the range is a signed narrow one)."""
    lo, hi, frac, narrow_symmetric = np.broadcast_arrays(np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64),
                                                         np.asarray(frac, dtype=np.int64), narrow_symmetric)
    signed = lo < 0
    mag = np.where(signed, np.maximum(np.maximum(hi, 0), -lo - 1), hi)
    width = np.array([int(v).bit_length() for v in mag.ravel()], dtype=np.int64).reshape(mag.shape)
    width = np.maximum(width + signed, 1)
    overflow = np.where(narrow_symmetric, int(Overflow.SAT_SYM), int(Overflow.SAT))
    return Formats(width, width - frac, signed, np.full(width.shape, int(rounding)), overflow)


def same_grid(a: Formats | None, b: Formats) -> bool:
    """Whether every value of formats ``a`` is a value of ``b`` (a conversion would change nothing)."""
    if a is None:
        return False
    a_lo, a_hi = a.mantissa_bounds()
    shift = b.frac_bits - a.frac_bits
    if np.any(shift < 0):
        return False
    b_lo, b_hi = b.mantissa_bounds()
    return bool(np.all(np.asarray(a_lo) * 2.0 ** shift >= b_lo) and np.all(np.asarray(a_hi) * 2.0 ** shift <= b_hi))


def exact_product(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``a * b`` elementwise (float64 arrays of one shape) where float64 holds every product
    exactly, else None."""
    p = a * b
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), p.ravel().tolist()))
    return p if all(Fraction(u) * Fraction(v) == Fraction(w) for u, v, w in pairs) else None
