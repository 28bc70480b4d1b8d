"""An independent, exact model of Xilinx ap_fixed, for the tests of compiler/fixed.py and
compiler/mantissa.py, and hypothesis strategies for random fixed-point types.

The model (``ref_*`` below) is written with Python ``Fraction``s and shares no code with
compiler/fixed.py.  Converting a value ``v`` into ``fixed<W, I, signed, Q, O>``:

1. ``q = v * 2**(W - I)``, exactly;
2. round ``q`` to an integer by ``Q``;
3. bring that integer into the W-bit field by ``O``.

CEIL (toward plus infinity, QONNX's rounding mode) is finegrain's own: ap_fixed has no
such mode, so the model's rule for it is the definition (``CEIL_CASES`` spells it out).

The rest was written from ap_fixed_base.h (``quantization_adjust``, ``overflow_adjust``, the
double constructor and ``operator=``) and then checked against that header compiled
with g++: about 24,000 double conversions and 3,200 fixed-to-fixed conversions over
random types (widths 1..70, every mode), with no difference.  A few of those g++ results
are kept in tests/test_fixed.py's ``AP_FIXED_GOLDENS``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from compiler.fixed import FixedType, Formats, Overflow, Rounding


# --- the reference model ----------------------------------------------------------------

HALF = Fraction(1, 2)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def ref_bounds(width: int, signed: bool) -> tuple[int, int]:
    """(min, max) code of a W-bit field; a pruned (0-bit) element holds only 0."""
    if width == 0:
        return 0, 0
    if signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2**width - 1


def ref_round(q: Fraction, mode: str) -> int:
    floor = math.floor(q)
    rem = q - floor
    if rem == 0 or mode == "TRN":
        return floor
    if mode == "TRN_ZERO":
        return floor + 1 if q < 0 else floor
    if mode == "CEIL":  # finegrain's own mode: toward plus infinity
        return floor + 1
    if rem != HALF:
        return floor + 1 if rem > HALF else floor
    # an exact tie between floor and floor + 1
    up = {
        "RND": True,
        "RND_ZERO": q < 0,
        "RND_MIN_INF": False,
        "RND_INF": q > 0,
        "RND_CONV": floor % 2 == 1,
    }[mode]
    return floor + 1 if up else floor


def ref_overflow(n: int, width: int, signed: bool, mode: str) -> int:
    if width == 0:
        return 0
    lo, hi = ref_bounds(width, signed)
    if mode == "WRAP":
        return (n - lo) % 2**width + lo
    if mode == "SAT_ZERO":
        return n if lo <= n <= hi else 0
    if mode == "SAT_SYM" and signed and width > 1:
        # ap_fixed flags a negative source that lands on the most negative code as an
        # underflow even when it is in range, and sets it to -max.  A 1-bit signed type
        # ({-1, 0}) saturates plainly, as does an unsigned one.
        lo = -hi
    return min(max(n, lo), hi)


def ref_convert(v: Fraction, t: FixedType | None) -> int:
    """Mantissa of ``v`` converted into ``t`` (None = pruned, always 0)."""
    if t is None:
        return 0
    q = Fraction(v) * Fraction(2) ** (t.width - t.int_bits)
    return ref_overflow(ref_round(q, t.rounding.name), t.width, t.signed, t.overflow.name)


def ap_double_value(x: float) -> Fraction:
    """The value ap_fixed's double constructor reads from ``x``.

    ap_fixed differs from the exact value for subnormal doubles: it always sets the
    implicit mantissa bit and uses the biased exponent 0 as 2**-1023, so the subnormal
    ``r * 2**-1074`` is read as ``(2**52 + r) * 2**-1075`` (confirmed with g++).  The two
    readings give different mantissas only for types with more than about 1020
    fractional bits.
    """
    x = float(x)
    if x != 0 and abs(x) < 2.0**-1022:
        r = int(Fraction(abs(x)) * 2**1074)
        return (1 if x > 0 else -1) * Fraction(2**52 + r, 2**1075)
    return Fraction(x)


def mantissa_value(m: int, frac: int) -> Fraction:
    return Fraction(m) * Fraction(2) ** -frac


# --- strategies ---------------------------------------------------------------------------

# int64 fast paths end near 61 bits; the boundary widths are drawn on purpose
widths = st.one_of(
    st.integers(1, 8), st.integers(1, 70), st.sampled_from([31, 32, 33, 53, 54, 60, 61, 62, 63, 64, 65, 70])
)


@st.composite
def fixed_types(draw, rounding=None, overflow=None, width_from=widths):
    width = draw(width_from)
    return FixedType(
        width,
        draw(st.integers(-10, width + 10)),
        draw(st.booleans()),
        rounding if rounding is not None else draw(st.sampled_from(Rounding)),
        overflow if overflow is not None else draw(st.sampled_from(Overflow)),
    )


def formats_of(types) -> Formats:
    arr = np.empty(len(types), dtype=object)
    arr[:] = types
    return Formats.from_types(arr)
