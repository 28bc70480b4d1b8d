"""Integer mantissa arithmetic: exact sums, additions and shifts, rounding and overflow,
`requantize`, and the conversion of floats into formats (`quantize_float`) and back.

Everything here works on mantissas: integers are exact, so every rounding and overflow
decision is made once, on integers, exactly as Xilinx ``ap_fixed`` makes it; the emulator,
the HLS backend and the RTL backend are checked against this one definition.  Mantissas are
numpy int64 where the widths provably allow and Python ints beyond.  Separate from
`compiler.fixed`, which says what a format is: this module is how values are computed in
one, the part the emulator, the passes and the bit-exactness tests call.
"""

from __future__ import annotations

import math

import numpy as np

from .fixed import FixedType, Formats, Overflow, Rounding

# Largest magnitude (in bits) we let an int64 numpy array hold between operations.
# Two bits of head-room leave room for one add and a sign without overflow.
INT64_SAFE_BITS = 61


def max_abs_bits(m: np.ndarray) -> int:
    """Bits needed for the largest magnitude in an integer array (0 for all zeros)."""
    if m.size == 0:
        return 0
    if m.dtype == object:  # numpy's min/max loop over Python ints in C: far faster than a generator
        return max(abs(int(m.min())).bit_length(), abs(int(m.max())).bit_length())
    lo, hi = int(m.min()), int(m.max())
    return max(abs(lo).bit_length(), abs(hi).bit_length())


def distinct(a) -> list:
    """The distinct values of ``a``, sorted, as Python scalars: np.unique's answer without its
    cost at start-up (numpy 2 imports numpy.ma on the first call, 15 to 25 ms)."""
    a = np.sort(np.asarray(a).ravel())
    return a[np.concatenate(([True], a[1:] != a[:-1]))].tolist() if a.size else []


def as_object(a) -> np.ndarray:
    """An object array of Python ints (never numpy integer scalars, whose arithmetic
    would silently wrap at 64 bits inside an object array)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":  # numpy's own cast makes Python ints, several times faster
        return a.astype(object)
    return np.asarray(np.frompyfunc(int, 1, 1)(a), dtype=object)


def as_exact(m: np.ndarray, bits_needed: int) -> np.ndarray:
    """``m`` as int64 if ``bits_needed`` fit safely, else as an array of Python ints.
    An array that already holds Python ints stays so."""
    m = np.asarray(m)
    if m.dtype == object:
        return as_object(m)
    if bits_needed <= INT64_SAFE_BITS:
        return m if m.dtype == np.int64 else m.astype(np.int64)
    return as_object(m)


def exact_sum(m: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """Exact sum of integer mantissas along ``axis``: int64 when the terms' width plus the
    growth of ``n`` terms provably fit, else Python ints (a window of wide values summed in
    int64 wrapped silently)."""
    terms = m.shape[axis] if m.ndim else 1
    m = as_exact(m, max_abs_bits(m) + max(terms, 1).bit_length())
    return m.sum(axis=axis, keepdims=keepdims, dtype=m.dtype)


def exact_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact ``a + b`` of integer mantissas (broadcast): int64 only when both fit with a bit
    to spare, else Python ints."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:
        return as_object(a) + as_object(b)
    bits = max(max_abs_bits(a), max_abs_bits(b)) + 1
    return as_exact(a, bits) + as_exact(b, bits)


def shift_left(m: np.ndarray, k) -> np.ndarray:
    """Exact ``m * 2**k`` for ``k >= 0`` (scalar or per-element array)."""
    k = np.asarray(k, dtype=np.int64)
    if not k.any():
        return m
    m = as_exact(m, max_abs_bits(m) + int(k.max()))
    if m.dtype == object:  # Python ints shifted are Python ints: only a 0-d result needs wrapping
        return np.asarray(m << as_object(k), dtype=object)
    return np.asarray(m << k)


def rescale(m, shift) -> np.ndarray:
    """Mantissas moved by ``shift`` fractional bits (scalar or per element): ``m * 2**shift``.
    A negative shift drops bits that must already be zero (the value is representable at
    the coarser fraction), so the result is exact.  Returns Python ints."""
    m = as_object(m)
    shift = as_object(np.broadcast_to(np.asarray(shift, dtype=np.int64), m.shape))
    if m.size == 0:
        return m
    # on a 0-d array the shifts give a bare Python int, which np.where would make an int64
    m1, s1 = m.reshape(-1), shift.reshape(-1)
    moved = np.where(s1 >= 0, m1 << np.maximum(s1, 0), m1 >> np.maximum(-s1, 0))
    return np.asarray(moved, dtype=object).reshape(m.shape)


def round_shift(m: np.ndarray, shift, rounding) -> np.ndarray:
    """Divide mantissas by ``2**shift`` (``shift >= 0``) and round by ``rounding``.

    ``shift`` and ``rounding`` are scalars or arrays broadcastable to ``m``; the result
    is exact for int64 and object (Python int) arrays alike.
    """
    # decide on the small (per-element) arrays before broadcasting them over the batch
    shift, rounding = np.asarray(shift, dtype=np.int64), np.asarray(rounding, dtype=np.int64)
    if m.size == 0 or not shift.any():
        return m
    if m.dtype != object and int(shift.max()) > INT64_SAFE_BITS:
        m = as_object(m)
    if m.dtype == np.int64 and max_abs_bits(m) <= INT64_SAFE_BITS:
        # one mode everywhere? (cheaper than distinct() on the whole array)
        mode = int(rounding.flat[0])
        if (rounding == mode).all():
            return _round_shift_one_mode(m, shift, Rounding(mode))
    shift = np.broadcast_to(shift, m.shape)
    rounding = np.broadcast_to(rounding, m.shape)
    s = as_object(shift) if m.dtype == object else shift
    floor = m >> s
    rem = m - (floor << s)
    one = np.ones(m.shape, dtype=object if m.dtype == object else np.int64)
    half = np.where(shift > 0, one << np.maximum(s - 1, 0), one)
    return floor + _round_increment(rem > half, rem == half, rem != 0, m < 0, (floor & 1) == 1, rounding)


def _round_shift_one_mode(m: np.ndarray, s: np.ndarray, mode: Rounding) -> np.ndarray:
    """`round_shift` for int64 mantissas with head-room and one rounding mode: the same
    results as the general rule, computed with one addition and one shift (the emulator's
    hot path).  Where ``s == 0`` nothing is dropped and ``m`` is returned."""
    if mode == Rounding.TRN:
        return m >> s
    half = np.left_shift(np.int64(1), np.maximum(s - 1, 0))
    if mode == Rounding.RND_CONV:  # a tie goes up only when the kept part is odd
        bias = (m >> s) & 1
        bias += half - 1
    elif mode == Rounding.RND:
        bias = half
    elif mode == Rounding.RND_MIN_INF:
        bias = half - 1
    elif mode == Rounding.CEIL:  # every dropped bit set: any nonzero remainder carries
        bias = (half << 1) - 1
    else:
        neg = (m < 0).astype(np.int64)
    if mode == Rounding.TRN_ZERO:
        bias = neg * ((half << 1) - 1)
    elif mode == Rounding.RND_ZERO:
        bias = half - (1 - neg)
    elif mode == Rounding.RND_INF:
        bias = half - neg
    if s.ndim == 0 or s.min() > 0:
        return (m + bias) >> s
    return np.where(s > 0, (m + bias) >> s, m)


def _round_increment(gt, eq, nonzero, neg, odd, rounding) -> np.ndarray:
    """0/1 to add to the floor, per rounding mode (the ap_fixed rules)."""
    inc = np.zeros(gt.shape, dtype=np.int64)
    for mode, rule in (
        (Rounding.TRN_ZERO, lambda: neg & nonzero),
        (Rounding.RND, lambda: gt | eq),
        (Rounding.RND_ZERO, lambda: gt | (eq & neg)),
        (Rounding.RND_MIN_INF, lambda: gt),
        (Rounding.RND_INF, lambda: gt | (eq & ~neg)),
        (Rounding.RND_CONV, lambda: gt | (eq & odd)),
        (Rounding.CEIL, lambda: nonzero),
    ):
        sel = rounding == mode
        if sel.any():
            inc = np.where(sel, rule().astype(np.int64), inc)
    return inc


def apply_overflow(m: np.ndarray, formats: Formats) -> np.ndarray:
    """Bring rounded mantissas into each element's range by its overflow mode."""
    if m.size == 0:
        return m
    t = formats.uniform_type()
    if t is not None and m.dtype == np.int64 and t.width <= INT64_SAFE_BITS:
        return _overflow_one_type(m, t)
    lo, hi = formats.mantissa_bounds()
    wide = int(formats.width.max()) > INT64_SAFE_BITS or m.dtype == object
    if not wide:
        lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    else:
        m = as_object(m)
    outside = (m < lo) | (m > hi)
    # SAT_SYM also moves an in-range most negative code, so it alone is no reason to stop
    sym_min = (formats.overflow == Overflow.SAT_SYM) & formats.signed & (formats.width > 1) & (m == lo)
    if not (outside | sym_min).any():
        return m
    ovf = formats.overflow
    result = m
    if (ovf == Overflow.WRAP).any():
        span = (hi - lo) + 1
        wrapped = (m - lo) % span + lo
        result = np.where(ovf == Overflow.WRAP, wrapped, result)
    result = np.where((ovf == Overflow.SAT) & outside, np.clip(m, lo, hi), result)
    result = np.where((ovf == Overflow.SAT_ZERO) & outside, 0, result)
    if (ovf == Overflow.SAT_SYM).any():
        # ap_fixed: a signed target never takes its most negative code (except 1-bit types).
        sym_lo = np.where(formats.signed & (formats.width > 1), -hi, lo)
        result = np.where(ovf == Overflow.SAT_SYM, np.clip(m, sym_lo, hi), result)
    result = np.where(formats.width == 0, 0, result)
    return result.astype(m.dtype)


def _overflow_one_type(m: np.ndarray, t: FixedType) -> np.ndarray:
    """`apply_overflow` for int64 mantissas that all share one type (the hot path)."""
    lo, hi = t.min_mantissa, t.max_mantissa
    if t.overflow == Overflow.SAT:
        return np.clip(m, lo, hi)
    if t.overflow == Overflow.SAT_SYM:
        return np.clip(m, -hi if t.signed and t.width > 1 else lo, hi)
    if m.min() >= lo and m.max() <= hi:
        return m
    if t.overflow == Overflow.SAT_ZERO:
        return np.where((m < lo) | (m > hi), 0, m)
    return ((m - lo) & ((1 << t.width) - 1)) + lo  # WRAP


def round_to(m: np.ndarray, frac_in, formats: Formats) -> np.ndarray:
    """Round exact mantissas at ``frac_in`` to each element's fraction, before overflow."""
    frac_out = formats.frac_bits
    shift = np.asarray(frac_in, dtype=np.int64) - frac_out
    if shift.size and (shift == shift.flat[0]).all():
        shift = shift.flat[0]  # one shift for all: scalar shifts are much faster
    if (shift < 0).any():
        m = shift_left(m, np.where(shift < 0, -shift, 0))
    return round_shift(m, np.where(shift > 0, shift, 0), formats.rounding)


def requantize(m: np.ndarray, frac_in, formats: Formats) -> np.ndarray:
    """Convert exact mantissas at ``frac_in`` fractional bits into ``formats``.

    Returns mantissas at each element's own ``frac_bits``; pruned elements are 0.
    ``m`` may carry a leading batch axis; ``frac_in`` is a scalar or per-element array.
    """
    # SAT_SYM also moves an in-range most-negative code, so overflow is always applied
    return apply_overflow(round_to(m, frac_in, formats), formats)


def common_fraction(m: np.ndarray, formats: Formats) -> tuple[np.ndarray, int]:
    """Mantissas at each element's own fraction -> (mantissas, frac) at the tensor's finest
    fraction, the form the emulator and constants use.  Pruned elements do not count."""
    kept = ~formats.pruned
    frac_bits = formats.frac_bits
    frac = int(frac_bits[kept].max()) if kept.any() else 0
    return shift_left(m, np.where(kept, frac - frac_bits, 0)), frac


def _validate_floats(x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} holds a non-finite value {x[idx]!r} at index {idx}")


# The rounding modes numpy rounds floats by exactly (round_float's hot path).
_FLOAT_ROUNDING = {Rounding.RND_CONV: np.rint, Rounding.TRN: np.floor, Rounding.CEIL: np.ceil}


def quantize_float(x: np.ndarray, formats: Formats, what: str = "input") -> np.ndarray:
    """Convert floats into ``formats`` exactly as ``ap_fixed``'s double constructor does.

    A float64 is a dyadic rational, so the conversion is exact: scale by ``2**frac``
    (exact in floating point), round by the element's mode, then apply its overflow
    mode.  Elements too large or too small for that shortcut are done with Python ints.
    """
    return apply_overflow(round_float(x, formats, what), formats)


def round_float(x: np.ndarray, formats: Formats, what: str = "input") -> np.ndarray:
    """The mantissas of floats rounded into ``formats``, before its overflow mode: a
    mantissa outside the format's range says the value saturates (or wraps)."""
    x = np.asarray(x, dtype=np.float64)
    _validate_floats(x, what)
    t = formats.uniform_type()
    if t is not None and t.rounding in _FLOAT_ROUNDING and x.size:
        # the hot path: one type; rint is round-half-even, floor TRN and ceil CEIL, each
        # exact on floats whose scaled magnitude stays below 2**52, and no subnormal input
        with np.errstate(over="ignore"):  # huge values overflow here and take the exact path
            scaled = np.ldexp(x, t.frac_bits)
        tiny = np.abs(x[x != 0]).min() if (x != 0).any() else 1.0
        if np.abs(scaled).max() < 2.0 ** 52 and tiny >= 2.0 ** -1022 and (x == 0).sum() + (scaled != 0).sum() == x.size:
            return _FLOAT_ROUNDING[t.rounding](scaled).astype(np.int64)
    frac = np.broadcast_to(formats.frac_bits, x.shape)
    rounding = np.broadcast_to(formats.rounding, x.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/nan only on the exact path
        scaled = np.ldexp(x, frac)
        floor = np.floor(scaled)
        rem = scaled - floor
        odd = np.fmod(floor, 2) != 0
    # Outside this band the float shortcut could lose bits: do those elements exactly.
    # Subnormal inputs always go there, as ap_fixed reads them unlike their true value.
    exact_path = (np.abs(scaled) >= 2.0 ** 60) | ((scaled != 0) & (np.abs(scaled) < 2.0 ** -900)) \
        | ((x != 0) & (scaled == 0)) | ((x != 0) & (np.abs(x) < 2.0 ** -1022))
    inc = _round_increment(rem > 0.5, rem == 0.5, rem != 0, x < 0, odd, rounding)
    m = np.where(exact_path, 0.0, floor + inc)
    if exact_path.any():
        m = m.astype(np.int64).astype(object)
        for idx in map(tuple, np.argwhere(exact_path)):  # argwhere: a 0-d array too
            m[idx] = _quantize_scalar(float(x[idx]), int(frac[idx]), Rounding(int(rounding[idx])))
    else:
        m = m.astype(np.int64)
    return m


def _quantize_scalar(x: float, frac: int, rounding: Rounding) -> int:
    num, den = x.as_integer_ratio()  # den is a power of two
    if x != 0 and abs(x) < 2.0 ** -1022:
        # ap_fixed's double constructor sets the implicit mantissa bit even for a subnormal
        # and reads its exponent field 0 as 2**-1023: r * 2**-1074 is read as
        # (2**52 + r) * 2**-1075.  It matters only beyond about 1020 fractional bits.
        r = abs(num) * (2 ** 1074 // den)
        num, den = (2 ** 52 + r) * (1 if x > 0 else -1), 2 ** 1075
    if frac >= 0:
        num <<= frac
    else:
        den <<= -frac
    shift = den.bit_length() - 1
    return int(round_shift(np.array([num], dtype=object), shift, int(rounding))[0])


def to_float(m: np.ndarray, frac) -> np.ndarray:
    """Mantissas to float64 (exact while the mantissa fits in 53 bits)."""
    if m.dtype == object:
        out = np.array([math.ldexp(float(v), 0) for v in m.flat], dtype=np.float64).reshape(m.shape)
        # float(int) rounds to nearest for wide ints; scale afterwards (exact)
        return np.ldexp(out, -np.asarray(frac, dtype=np.int64))
    return np.ldexp(m.astype(np.float64), -np.asarray(frac, dtype=np.int64))
