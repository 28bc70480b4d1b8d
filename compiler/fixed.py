"""Fixed-point types, their text form, width rules, and the one definition of
rounding and overflow that the emulator, the HLS backend and the RTL backend obey.

A value of a fixed-point type is an integer *mantissa* ``m`` scaled by ``2**-frac_bits``
with ``frac_bits = width - int_bits``.  Everything here works on mantissas: integers are
exact, so every rounding and overflow decision is made once, on integers, exactly as
Xilinx ``ap_fixed`` makes it.

Per-element formats of a tensor are a `Formats` value: five integer arrays shaped
like the tensor (width, int_bits, signed, rounding, overflow).  A width of 0 marks a pruned
element, whose value is always zero.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

import numpy as np

# Largest magnitude (in bits) we let an int64 numpy array hold between operations.
# Two bits of head-room leave room for one add and a sign without overflow.
INT64_SAFE_BITS = 61


class Rounding(IntEnum):
    """Quantization (rounding) modes, named and behaving as in ``ap_fixed``; CEIL is
    finegrain's own (QONNX's ``rounding_mode="CEIL"``): ap_fixed has no such mode, so the
    HLS backend converts into it with finegrain's own code (``finegrain::ceil_fixed``)."""

    TRN = 0  # toward minus infinity (drop bits)
    TRN_ZERO = 1  # toward zero
    RND = 2  # nearest, ties toward plus infinity
    RND_ZERO = 3  # nearest, ties toward zero
    RND_MIN_INF = 4  # nearest, ties toward minus infinity
    RND_INF = 5  # nearest, ties away from zero
    RND_CONV = 6  # nearest, ties to even
    CEIL = 7  # toward plus infinity (up whenever a dropped bit is set)


class Overflow(IntEnum):
    """Overflow modes, named and behaving as in ``ap_fixed`` (with N = 0)."""

    WRAP = 0  # keep the low `width` bits
    SAT = 1  # clamp to the nearest representable value
    SAT_ZERO = 2  # out of range becomes zero
    SAT_SYM = 3  # clamp to +-max (signed: the most negative code is never produced)


# The plan's limits.  A format is at most MAX_WIDTH bits wide, and a format the user writes
# (a plan's format string or per-element int_bits) has integer bits within
# +-MAX_PLAN_INT_BITS: room for every float64 (2**-1074 to 2**1024) in any width, while no
# mantissa or shift grows past a few thousand bits (fixed<8,100000000000> would allocate
# without bound).  Formats finegrain derives (accumulators, products) may go beyond
# MAX_PLAN_INT_BITS, never beyond MAX_WIDTH.  Documented in docs/bit-plan.md, "Limits".
MAX_WIDTH = 1024
MAX_PLAN_INT_BITS = 2048


class FormatError(ValueError):
    """A fixed-point format string or field is invalid; the message quotes it."""


def check_plan_int_bits(int_bits: int) -> None:
    """Refuse integer bits outside +-MAX_PLAN_INT_BITS in a format the user wrote."""
    if not -MAX_PLAN_INT_BITS <= int_bits <= MAX_PLAN_INT_BITS:
        raise FormatError(f"integer bits {int_bits} are outside the supported "
                          f"-{MAX_PLAN_INT_BITS}..{MAX_PLAN_INT_BITS}")


def _quoted(text: str) -> str:
    """A format string as messages quote it, cut short if it is very long."""
    return repr(text) if len(text) <= 60 else repr(text[:50]) + f"... ({len(text)} characters)"


def _small_int(digits: str) -> int:
    """A number written in a format string; at most 9 digits, so no huge int is ever made."""
    if len(digits.lstrip("+-")) > 9:
        raise FormatError(f"the number {digits[:12]}... is far outside the supported range "
                          f"(width 1..{MAX_WIDTH}, integer bits -{MAX_PLAN_INT_BITS}..{MAX_PLAN_INT_BITS})")
    return int(digits)


_FORMAT_RE = re.compile(
    r"^\s*(?:ap_)?(u?)fixed\s*<\s*(-?\d+)\s*,\s*(-?\d+)\s*((?:,\s*[A-Za-z_]+\s*)*)>\s*$"
)


@dataclass(frozen=True)
class FixedType:
    """One fixed-point format: ``fixed<width, int_bits, rounding, overflow>``.

    ``int_bits`` counts the sign bit for signed types and may be negative or exceed
    ``width``, as in ``ap_fixed``.  The rounding and overflow modes say what happens when a
    value is *converted into* this type; arithmetic on values of the type is exact.
    """

    width: int
    int_bits: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise FormatError(f"width must be a positive integer, got {self.width!r}")
        if not isinstance(self.int_bits, int) or isinstance(self.int_bits, bool):
            raise FormatError(f"integer bits must be an integer, got {self.int_bits!r}")
        if self.width > MAX_WIDTH:
            raise FormatError(f"width {self.width} is larger than the {MAX_WIDTH} bits supported")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    # --- text form -------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "FixedType":
        """Parse ``fixed<W,I>``, ``ufixed<W,I,RND_CONV,SAT>`` (``ap_`` prefixes accepted)."""
        if not isinstance(text, str):
            raise FormatError(f"a format must be a string like 'fixed<8,3>', got {text!r}")
        match = _FORMAT_RE.match(text)
        if not match:
            raise FormatError(
                f"malformed format {_quoted(text)}: expected fixed<W,I>, fixed<W,I,ROUNDING>, "
                f"fixed<W,I,ROUNDING,OVERFLOW> or the same with ufixed"
            )
        unsigned, width, int_bits, modes = match.groups()
        mode_names = [m.strip().upper() for m in modes.split(",") if m.strip()]
        if len(mode_names) > 2:
            raise FormatError(
                f"format {text!r} has {len(mode_names)} modes; at most a rounding and an "
                f"overflow mode are allowed (saturation bits N are not supported)"
            )
        rounding, overflow = Rounding.TRN, Overflow.WRAP
        if mode_names:
            rounding = _parse_mode(Rounding, mode_names[0], text)
        if len(mode_names) == 2:
            overflow = _parse_mode(Overflow, mode_names[1], text)
        try:
            width, int_bits = _small_int(width), _small_int(int_bits)
            check_plan_int_bits(int_bits)
            return cls(width, int_bits, not unsigned, rounding, overflow)
        except FormatError as err:
            raise FormatError(f"in format {_quoted(text)}: {err}") from None

    def __str__(self) -> str:
        base = "fixed" if self.signed else "ufixed"
        modes = ""
        if self.rounding != Rounding.TRN or self.overflow != Overflow.WRAP:
            modes = f",{self.rounding.name}"
            if self.overflow != Overflow.WRAP:
                modes += f",{self.overflow.name}"
        return f"{base}<{self.width},{self.int_bits}{modes}>"

    # --- derived quantities ----------------------------------------------------------
    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_mantissa(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_mantissa(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> Fraction:
        return Fraction(2) ** -self.frac_bits

    @property
    def min_value(self) -> Fraction:
        return self.min_mantissa * self.lsb

    @property
    def max_value(self) -> Fraction:
        return self.max_mantissa * self.lsb

    @classmethod
    def for_range(cls, lo: int, hi: int, frac_bits: int) -> "FixedType | None":
        """The narrowest type holding every mantissa in ``[lo, hi]`` at ``frac_bits``.

        Returns None when the range is ``[0, 0]``: such a value needs no bits at all.
        """
        width, signed = bits_for_range(lo, hi)
        if width == 0:
            return None
        return cls(width, width - frac_bits, signed)


def _parse_mode(enum, name: str, text: str):
    name = name[3:] if name.startswith("AP_") else name
    try:
        return enum[name]
    except KeyError:
        kind = "rounding" if enum is Rounding else "overflow"
        raise FormatError(
            f"unknown {kind} mode {name!r} in format {text!r}; choose one of "
            f"{', '.join(m.name for m in enum)}"
        ) from None


# --- width rules ----------------------------------------------------------------------
# Every rule is "the tightest type for the exact range of the result".  They are written
# on integer intervals, so they are exact for any widths, and the per-element sizing pass
# uses the same function (`bits_for_range`) on per-element intervals.


def bits_for_range(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest two's-complement field holding ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if lo >= 0:
        return hi.bit_length(), False
    # a negative hi needs no bits of its own: lo is the more negative end
    return max(max(hi, 0).bit_length(), (-lo - 1).bit_length()) + 1, True


def _interval(t: FixedType, frac: int) -> tuple[int, int]:
    shift = frac - t.frac_bits
    return t.min_mantissa << shift, t.max_mantissa << shift


def add_type(a: FixedType, b: FixedType) -> FixedType:
    """Exact type of ``a + b``."""
    frac = max(a.frac_bits, b.frac_bits)
    (alo, ahi), (blo, bhi) = _interval(a, frac), _interval(b, frac)
    return FixedType.for_range(alo + blo, ahi + bhi, frac) or FixedType(1, 1 - frac, False)


def mul_type(a: FixedType, b: FixedType) -> FixedType:
    """Exact type of ``a * b``."""
    corners = [x * y for x in (a.min_mantissa, a.max_mantissa) for y in (b.min_mantissa, b.max_mantissa)]
    frac = a.frac_bits + b.frac_bits
    return FixedType.for_range(min(corners), max(corners), frac) or FixedType(1, 1 - frac, False)


def accumulate_type(t: FixedType, terms: int) -> FixedType:
    """Exact type of a sum of ``terms`` values of type ``t``."""
    if terms < 1:
        raise ValueError(f"cannot accumulate {terms} terms")
    return FixedType.for_range(t.min_mantissa * terms, t.max_mantissa * terms, t.frac_bits) or t


def shift_type(t: FixedType, k: int) -> FixedType:
    """Exact type of ``t * 2**k`` (a shift moves the binary point, not the bits)."""
    return FixedType(t.width, t.int_bits + k, t.signed)


# --- per-element formats ----------------------------------------------------------------


def _frozen(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Formats:
    """Per-element fixed-point formats of one tensor (shape without the batch axis).

    ``width == 0`` marks a pruned element: always zero, no hardware.
    """

    width: np.ndarray
    int_bits: np.ndarray
    signed: np.ndarray
    rounding: np.ndarray
    overflow: np.ndarray

    def __post_init__(self):
        shape = np.shape(self.width)
        for name in ("width", "int_bits", "signed", "rounding", "overflow"):
            dtype = bool if name == "signed" else np.int64
            arr = _frozen(getattr(self, name), dtype)
            if arr.shape != shape:
                raise FormatError(f"format field {name} has shape {arr.shape}, expected {shape}")
            object.__setattr__(self, name, arr)
        if (self.width < 0).any():
            bad = int(self.width[self.width < 0].flat[0])
            raise FormatError(f"negative width {bad} in per-element formats")
        if self.width.size and self.width.max() > MAX_WIDTH:
            raise FormatError(f"width {int(self.width.max())} exceeds the {MAX_WIDTH} bits supported")
        if ((self.rounding < 0) | (self.rounding > max(Rounding))).any():
            raise FormatError("rounding code out of range in per-element formats")
        if ((self.overflow < 0) | (self.overflow > max(Overflow))).any():
            raise FormatError("overflow code out of range in per-element formats")

    # construction
    @classmethod
    def uniform(cls, shape, t: FixedType) -> "Formats":
        def full(v):
            return np.full(shape, v, dtype=np.int64)

        return cls(full(t.width), full(t.int_bits), np.full(shape, t.signed, dtype=bool),
                   full(int(t.rounding)), full(int(t.overflow)))

    @classmethod
    def from_types(cls, types: np.ndarray) -> "Formats":
        """From an object array of FixedType (None = pruned)."""
        types = np.asarray(types, dtype=object)
        pick = np.vectorize(lambda t, f, d: d if t is None else f(t), otypes=[np.int64])
        return cls(
            pick(types, lambda t: t.width, 0), pick(types, lambda t: t.int_bits, 0),
            pick(types, lambda t: int(t.signed), 0).astype(bool),
            pick(types, lambda t: int(t.rounding), 0), pick(types, lambda t: int(t.overflow), 0),
        )

    @classmethod
    def from_ranges(cls, lo: np.ndarray, hi: np.ndarray, frac: np.ndarray) -> "Formats":
        """Tightest per-element formats for mantissa ranges ``[lo, hi]`` at ``frac`` bits.

        Elements whose range is ``[0, 0]`` get width 0 (constant zero).
        """
        lo_flat, hi_flat = np.asarray(lo, dtype=object).ravel(), np.asarray(hi, dtype=object).ravel()
        width = np.zeros(lo_flat.shape, dtype=np.int64)
        signed = np.zeros(lo_flat.shape, dtype=bool)
        for i, (a, b) in enumerate(zip(lo_flat, hi_flat)):
            width[i], signed[i] = bits_for_range(a, b)
        shape = np.shape(lo)
        width, signed = width.reshape(shape), signed.reshape(shape)
        frac = np.broadcast_to(np.asarray(frac, dtype=np.int64), shape)
        zeros = np.zeros(shape, dtype=np.int64)
        return cls(width, np.where(width > 0, width - frac, 0), signed, zeros, zeros)

    # queries
    @property
    def shape(self) -> tuple[int, ...]:
        return self.width.shape

    @property
    def frac_bits(self) -> np.ndarray:
        return self.width - self.int_bits

    @property
    def pruned(self) -> np.ndarray:
        return self.width == 0

    def element(self, index) -> FixedType | None:
        if self.width[index] == 0:
            return None
        return FixedType(int(self.width[index]), int(self.int_bits[index]), bool(self.signed[index]),
                         Rounding(int(self.rounding[index])), Overflow(int(self.overflow[index])))

    def distinct(self) -> list[FixedType | None]:
        """The distinct element types, in order of first appearance."""
        seen: dict = {}
        for idx in np.ndindex(self.shape):
            key = (self.width[idx], self.int_bits[idx] if self.width[idx] else 0, self.signed[idx],
                   self.rounding[idx], self.overflow[idx])
            if key not in seen:
                seen[key] = self.element(idx)
        return list(seen.values())

    def uniform_type(self) -> FixedType | None:
        """The single type of every element, or None if they differ or all are pruned."""
        return self._uniform

    @functools.cached_property
    def _uniform(self) -> FixedType | None:
        if self.width.size == 0:
            return None
        first = tuple(int(getattr(self, n).flat[0]) for n in _FIELDS)
        if first[0] == 0 or any((getattr(self, n) != v).any() for n, v in zip(_FIELDS, first)):
            return None
        return self.element((0,) * len(self.shape))

    def mantissa_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-element (min, max) mantissa as read-only object arrays of Python ints."""
        return self._bounds

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.empty(self.shape, dtype=object)
        hi = np.empty(self.shape, dtype=object)
        for idx in np.ndindex(self.shape):
            w = int(self.width[idx])
            if w == 0:
                lo[idx], hi[idx] = 0, 0
            elif self.signed[idx]:
                lo[idx], hi[idx] = -(1 << (w - 1)), (1 << (w - 1)) - 1
            else:
                lo[idx], hi[idx] = 0, (1 << w) - 1
        lo.setflags(write=False)
        hi.setflags(write=False)
        return lo, hi

    def transpose(self, axes) -> "Formats":
        return Formats(*(np.transpose(getattr(self, n), axes) for n in _FIELDS))

    def reshape(self, shape) -> "Formats":
        return Formats(*(np.reshape(getattr(self, n), shape) for n in _FIELDS))

    def take(self, index) -> "Formats":
        """Formats of ``tensor[index]`` (any numpy index)."""
        return Formats(*(np.asarray(getattr(self, n)[index]) for n in _FIELDS))

    @staticmethod
    def concatenate(parts: list["Formats"], axis: int) -> "Formats":
        return Formats(*(np.concatenate([getattr(p, n) for p in parts], axis=axis) for n in _FIELDS))

    def prune(self, mask) -> "Formats":
        """The same formats with the elements where ``mask`` holds pruned (width 0)."""
        keep = ~np.asarray(mask, dtype=bool)
        return Formats(np.where(keep, self.width, 0), np.where(keep, self.int_bits, 0), self.signed & keep,
                       self.rounding, self.overflow)

    def fields(self) -> tuple[np.ndarray, ...]:
        """(width, int_bits, signed, rounding, overflow): the arguments that rebuild these formats."""
        return tuple(getattr(self, n) for n in _FIELDS)

    def summary(self) -> str:
        """Short text: the uniform type, or a count of distinct types and the width span."""
        kept = ~self.pruned
        if not kept.any():
            return "pruned"
        t = self.uniform_type()
        if t is not None:
            return str(t)
        types = [t for t in self.distinct() if t is not None]
        pruned = int(self.pruned.sum())
        text = (f"mixed[{len(types)} types, width {int(self.width[kept].min())}..{int(self.width[kept].max())}, "
                f"frac {int(self.frac_bits[kept].min())}..{int(self.frac_bits[kept].max())}")
        text += f", {pruned} pruned" if pruned else ""
        return text + f", #{self.digest()}]"

    def digest(self) -> str:
        """Six hex digits that change when any element's format changes (for text diffs)."""
        h = hashlib.sha1()
        for name in _FIELDS:
            h.update(np.ascontiguousarray(getattr(self, name), dtype=np.int64).tobytes())
        h.update(repr(self.shape).encode())
        return h.hexdigest()[:6]


_FIELDS = ("width", "int_bits", "signed", "rounding", "overflow")


# --- integer mantissa arithmetic ------------------------------------------------------


def max_abs_bits(m: np.ndarray) -> int:
    """Bits needed for the largest magnitude in an integer array (0 for all zeros)."""
    if m.size == 0:
        return 0
    if m.dtype == object:  # numpy's min/max loop over Python ints in C: far faster than a generator
        return max(abs(int(m.min())).bit_length(), abs(int(m.max())).bit_length())
    lo, hi = int(m.min()), int(m.max())
    return max(abs(lo).bit_length(), abs(hi).bit_length())


def as_object(a) -> np.ndarray:
    """An object array of Python ints (never numpy integer scalars, whose arithmetic
    would silently wrap at 64 bits inside an object array)."""
    return np.asarray(np.frompyfunc(int, 1, 1)(np.asarray(a)), dtype=object)


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
    if m.dtype == object:
        return as_object(m << as_object(k))
    return np.asarray(m << k)


def rescale(m, shift) -> np.ndarray:
    """Mantissas moved by ``shift`` fractional bits (scalar or per element): ``m * 2**shift``.
    A negative shift drops bits that must already be zero (the value is representable at
    the coarser fraction), so the result is exact.  Returns Python ints."""
    m = as_object(m)
    shift = as_object(np.broadcast_to(np.asarray(shift, dtype=np.int64), m.shape))
    if m.size == 0:
        return m
    return as_object(np.where(shift >= 0, m << np.maximum(shift, 0), m >> np.maximum(-shift, 0)))


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
        # one mode everywhere? (not np.unique: numpy 2 imports numpy.ma for it, ~15 ms of start-up)
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


# --- weight quantizers beyond fixed point -----------------------------------------------
# A plan may give a constant values from a set other than a fixed-point grid: powers of two
# or a codebook of centres.  Each rule below maps a float to a member of its set; the member
# is an exact fixed-point number, so everything after the plan is ordinary fixed point.

POW2_MAX_EXPONENT = 60
_POW2_RE = re.compile(r"^\s*pow2\s*<\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*>\s*$")


@dataclass(frozen=True)
class Pow2Type:
    """``pow2<emin,emax>``: the values {0} and {+-2**e : emin <= e <= emax}.

    A weight quantizer, not a format of a computed value: constants only.
    """

    emin: int
    emax: int

    def __post_init__(self):
        for name in ("emin", "emax"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise FormatError(f"pow2 exponent {name} must be an integer, got {v!r}")
        _check_pow2_range(self.emin, self.emax, str(self))

    @classmethod
    def parse(cls, text: str) -> "Pow2Type":
        match = _POW2_RE.match(text) if isinstance(text, str) else None
        if not match:
            raise FormatError(f"malformed power-of-two format {text!r}: expected pow2<EMIN,EMAX>, "
                              f"e.g. pow2<-6,0>")
        try:
            emin, emax = _small_int(match.group(1)), _small_int(match.group(2))
        except FormatError as err:
            raise FormatError(f"in format {_quoted(text)}: {err}") from None
        _check_pow2_range(emin, emax, text)  # quoting the text as written
        return cls(emin, emax)

    def __str__(self) -> str:
        return f"pow2<{self.emin},{self.emax}>"


def _check_pow2_range(emin: int, emax: int, text: str) -> None:
    if emin > emax or max(abs(emin), abs(emax)) > POW2_MAX_EXPONENT:
        raise FormatError(f"pow2 range cannot be represented: {text!r} needs EMIN <= EMAX and "
                          f"exponents within -{POW2_MAX_EXPONENT}..{POW2_MAX_EXPONENT}")


def parse_weight_format(text: str) -> "FixedType | Pow2Type":
    """A format string a constant may take: ``fixed<...>``/``ufixed<...>`` or ``pow2<EMIN,EMAX>``."""
    if isinstance(text, str) and text.strip().lower().startswith("pow2"):
        return Pow2Type.parse(text)
    return FixedType.parse(text)


def round_significant(x, bits: int) -> np.ndarray:
    """Round floats to ``bits`` significant bits, ties to even (RND_CONV); exact float64 out.

    A float64 ``x = f * 2**k`` with ``|f|`` in [0.5, 1) keeps ``rint(f * 2**bits)`` (exact:
    ``f`` has at most 53 bits) at ``2**(k - bits)``; a value that rounds up to the next power
    of two is that power (0.99999 -> 1.0), never saturated.  0 stays 0.
    """
    if not 1 <= bits <= 52:
        raise ValueError(f"significant bits must be in 1..52, got {bits}")
    x = np.asarray(x, dtype=np.float64)
    _validate_floats(x, "a value rounded to significant bits")
    f, k = np.frexp(x)
    return np.ldexp(np.rint(np.ldexp(f, bits)), k - bits)


def round_pow2(x, p: Pow2Type) -> np.ndarray:
    """Round floats to ``p``'s set {0} and {+-2**e : p.emin <= e <= p.emax}; exact float64 out.

    The result is the member nearest to ``x`` in absolute difference; a tie goes to the
    larger magnitude.  Worked out, with ``a = |x|`` and the sign of ``x`` kept:

    * ``a >= 2**emax``: ``2**emax`` (above it the value saturates: the caller counts it);
    * ``2**e <= a < 2**(e+1)`` with ``emin <= e < emax``: ``2**(e+1)`` if
      ``a >= 1.5 * 2**e`` (the midpoint, a tie), else ``2**e``;
    * ``a < 2**emin``: ``2**emin`` if ``a >= 2**(emin-1)`` (midpoint of 0 and 2**emin), else 0.

    Every comparison is exact: a float64 ``a = f * 2**k`` with ``f`` in [0.5, 1) lies in
    [2**(k-1), 2**k), whose midpoint test is ``f >= 0.75``.
    """
    x = np.asarray(x, dtype=np.float64)
    _validate_floats(x, "a value rounded to a power of two")
    a = np.abs(x)
    f, k = np.frexp(a)
    e = np.where(f >= 0.75, k, k - 1)  # the nearest power of two, unbounded
    e = np.minimum(e, p.emax)
    small = e < p.emin
    e = np.where(small, p.emin, e)
    zero = small & (a < math.ldexp(1.0, p.emin - 1))
    return np.where(zero | (a == 0), 0.0, np.copysign(np.ldexp(1.0, e), x))


def nearest_centre(x, centres) -> np.ndarray:
    """Index of the centre nearest to each float in absolute difference; a tie goes to the
    lower index.  ``centres`` must be distinct.  Exact: float64 distances pick the candidates
    (rounding is monotone, so the true nearest has the smallest rounded distance), and ties
    among rounded distances are settled with exact fractions."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    _validate_floats(x, "a value mapped to a codebook")
    order = np.argsort(c, kind="stable")
    sorted_c = c[order]
    # the nearest centre is the largest one <= x or the smallest one > x
    upper = np.searchsorted(sorted_c, x, side="right")
    lo_pos, hi_pos = np.clip(upper - 1, 0, c.size - 1), np.clip(upper, 0, c.size - 1)
    with np.errstate(over="ignore"):
        d_lo, d_hi = np.abs(x - sorted_c[lo_pos]), np.abs(x - sorted_c[hi_pos])
    lo_idx, hi_idx = order[lo_pos], order[hi_pos]
    pick = np.where(d_lo < d_hi, lo_idx, np.where(d_hi < d_lo, hi_idx, np.minimum(lo_idx, hi_idx)))
    tied = (d_lo == d_hi) & (lo_idx != hi_idx)
    for idx in zip(*np.nonzero(tied)):
        v = Fraction(float(x[idx]))
        candidates = (int(lo_idx[idx]), int(hi_idx[idx]))
        pick[idx] = min(candidates, key=lambda i: (abs(v - Fraction(float(c[i]))), i))
    return pick.astype(np.int64)
