"""Fixed-point types: `Rounding` and `Overflow` (the ``ap_fixed`` modes), `FixedType` and its
text form, the width rules, and `Formats`, the per-element formats of a tensor.

A value of a fixed-point type is an integer *mantissa* ``m`` scaled by ``2**-frac_bits``
with ``frac_bits = width - int_bits``.  This module says what a format *is*; the arithmetic
on mantissas that obeys it (exact sums and shifts, the one definition of rounding and
overflow that the emulator, the HLS backend and the RTL backend obey) is
`compiler.mantissa`, and the weight quantizers that are not fixed point (``pow2<...>``,
codebooks) are `compiler.weight_formats`.  Kept apart so the types, which nearly every
module needs, can be read on their own.

Per-element formats of a tensor are a `Formats` value: five integer arrays shaped
like the tensor (width, int_bits, signed, rounding, overflow).  A width of 0 marks a pruned
element, whose value is always zero.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

import numpy as np

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
        return mantissa_range(self.width, self.signed)[0]

    @property
    def max_mantissa(self) -> int:
        return mantissa_range(self.width, self.signed)[1]

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


def mantissa_range(width: int, signed: bool) -> tuple[int, int]:
    """The least and greatest mantissa a ``width``-bit field holds ((0, 0) for width 0, pruned)."""
    if width == 0:
        return 0, 0
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


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

    def __reduce__(self):
        # ir.pkl: each field reduced along the axes it is constant on and in the narrowest integer
        # type; a per-channel format of the ESPCN's [64, 128, 128] activations pickles as 64 values
        return _unpickle_formats, (self.shape, tuple(_packed(a) for a in self.fields()))

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

    def _groups(self) -> tuple[list[tuple[int, int, int, int, int]], list[int]]:
        """The distinct (width, int_bits, signed, rounding, overflow) of the elements, a pruned
        element's int_bits taken as 0, in order of first appearance (C order), and how many
        elements have each.  Sorted in numpy, not element by element: per-element tensors are large."""
        cols = [np.asarray(f, dtype=np.int64).ravel() for f in
                (self.width, np.where(self.width != 0, self.int_bits, 0), self.signed, self.rounding, self.overflow)]
        n = cols[0].size
        if n == 0:
            return [], []
        order = np.lexsort(cols[::-1])  # stable: each run of equal keys starts at its first element
        rows = np.stack(cols, axis=1)[order]
        starts = np.flatnonzero(np.concatenate(([True], (rows[1:] != rows[:-1]).any(axis=1))))
        counts = np.diff(np.append(starts, n))
        by_first = np.argsort(order[starts], kind="stable")
        return list(map(tuple, rows[starts][by_first].tolist())), counts[by_first].tolist()

    @staticmethod
    def _type_of(key: tuple[int, int, int, int, int]) -> FixedType | None:
        width, int_bits, signed, rounding, overflow = key
        return FixedType(width, int_bits, bool(signed), Rounding(rounding), Overflow(overflow)) if width else None

    def distinct(self) -> list[FixedType | None]:
        """The distinct element types, in order of first appearance (a pruned element: None)."""
        return [self._type_of(key) for key in self._groups()[0]]

    def type_counts(self) -> dict[FixedType | None, int]:
        """How many elements have each type (None: pruned), in order of first appearance."""
        merged: dict = {}
        for key, n in zip(*self._groups()):
            t = self._type_of(key)
            merged[t] = merged.get(t, 0) + n
        return merged

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
        # computed once per distinct (width, signed), then spread by index: the bounds of a wide
        # format are Python ints, and a tensor has few distinct widths but many elements
        keys = self.width.astype(np.int64) * 2 + self.signed.astype(np.int64)  # widths <= MAX_WIDTH
        lo_of = np.zeros(int(keys.max(initial=0)) + 1, dtype=object)
        hi_of = np.zeros(lo_of.size, dtype=object)
        for key in np.flatnonzero(np.bincount(keys.ravel(), minlength=lo_of.size)).tolist():
            lo_of[key], hi_of[key] = mantissa_range(key >> 1, bool(key & 1))
        lo, hi = lo_of[keys.ravel()].reshape(self.shape), hi_of[keys.ravel()].reshape(self.shape)
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


def _packed(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis it is constant along cut to length 1 (broadcastable back), as int8
    or int16 where its values fit."""
    for axis in range(a.ndim):
        if a.shape[axis] > 1 and (a == a.take([0], axis=axis)).all():
            a = a.take([0], axis=axis)
    if a.dtype != bool and a.size:
        low, high = int(a.min()), int(a.max())
        for dtype in (np.int8, np.int16):
            if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
                return a.astype(dtype)
    return a


def _unpickle_formats(shape: tuple, fields: tuple) -> "Formats":
    return Formats(*(np.broadcast_to(a, shape) for a in fields))
