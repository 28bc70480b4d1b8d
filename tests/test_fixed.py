"""Conversions of compiler/mantissa.py (requantize, quantize_float, round_shift,
apply_overflow) against the exact model of ap_fixed in tests/fixed_reference.py: results of
the real ap_fixed header, CEIL worked by hand, every rounding x overflow mode on random
types and values near their extremes and ties, per-element formats, SAT_SYM, pruned
elements, subnormal and non-finite floats.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.fixed import FixedType, Formats, Overflow, Rounding
from compiler.mantissa import apply_overflow, quantize_float, requantize, round_shift
from tests.fixed_reference import (INT64_MAX, INT64_MIN, ap_double_value, fixed_types, formats_of, mantissa_value,
                                   ref_bounds, ref_convert, ref_overflow, ref_round)


# Results of the real ap_fixed header (hls4ml's copy, g++), as mantissas.
AP_FIXED_GOLDENS = [
    ("fixed<4,2,TRN,WRAP>", [(0.375, 1), (-0.375, -2), (0.125, 0), (-0.125, -1), (0.3, 1), (-0.3, -2)]),
    ("fixed<4,2,TRN_ZERO,WRAP>", [(0.375, 1), (-0.375, -1), (0.125, 0), (-0.125, 0), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND,WRAP>", [(0.375, 2), (-0.375, -1), (0.125, 1), (-0.125, 0), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND_ZERO,WRAP>", [(0.375, 1), (-0.375, -1), (0.125, 0), (-0.125, 0), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND_MIN_INF,WRAP>", [(0.375, 1), (-0.375, -2), (0.125, 0), (-0.125, -1), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND_INF,WRAP>", [(0.375, 2), (-0.375, -2), (0.125, 1), (-0.125, -1), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND_CONV,WRAP>", [(0.375, 2), (-0.375, -2), (0.125, 0), (-0.125, 0), (0.3, 1), (-0.3, -1)]),
    ("fixed<4,2,RND,WRAP>", [(1.875, -8), (-2.0, -8), (-2.125, -8), (5.0, 4), (-7.5, 2)]),
    ("ufixed<4,2,RND,WRAP>", [(3.875, 0), (-0.125, 0), (-1.0, 12), (5.0, 4)]),
    ("fixed<1,1,TRN,WRAP>", [(-1.0, -1), (-0.5, -1), (0.5, 0), (-3.0, -1)]),
    ("fixed<4,2,RND,SAT>", [(1.875, 7), (-2.0, -8), (-2.125, -8), (5.0, 7), (-7.5, -8)]),
    ("ufixed<4,2,RND,SAT>", [(3.875, 15), (-0.125, 0), (-1.0, 0), (5.0, 15)]),
    ("fixed<1,1,TRN,SAT>", [(-1.0, -1), (-0.5, -1), (0.5, 0), (-3.0, -1)]),
    ("fixed<4,2,RND,SAT_ZERO>", [(1.875, 0), (-2.0, -8), (-2.125, -8), (5.0, 0), (-7.5, 0)]),
    ("ufixed<4,2,RND,SAT_ZERO>", [(3.875, 0), (-0.125, 0), (-1.0, 0), (5.0, 0)]),
    ("fixed<1,1,TRN,SAT_ZERO>", [(-1.0, -1), (-0.5, -1), (0.5, 0), (-3.0, 0)]),
    ("fixed<4,2,RND,SAT_SYM>", [(1.875, 7), (-2.0, -7), (-2.125, -7), (5.0, 7), (-7.5, -7)]),
    ("ufixed<4,2,RND,SAT_SYM>", [(3.875, 15), (-0.125, 0), (-1.0, 0), (5.0, 15)]),
    ("fixed<1,1,TRN,SAT_SYM>", [(-1.0, -1), (-0.5, -1), (0.5, 0), (-3.0, -1)]),
    ("fixed<70,8,RND_CONV,SAT_SYM>", [
        (-128.0, -590295810358705651711), (1e300, 590295810358705651711),
        (2.0**-63, 0), (3 * 2.0**-63, 2), (-3 * 2.0**-63, -2)]),
    # subnormal inputs, read by ap_fixed as described in ap_double_value
    ("fixed<16,-1060,RND,SAT>", [(5e-324, 32767), (-5e-324, -32768)]),
    ("ufixed<20,-1050,TRN,WRAP>", [(1e-310, 755505)]),
]
GOLDEN_CASES = [(text, x, m) for text, rows in AP_FIXED_GOLDENS for x, m in rows]


@pytest.mark.parametrize("text, x, expected", GOLDEN_CASES)
def test_reference_and_quantize_float_match_ap_fixed_goldens(text, x, expected):
    t = FixedType.parse(text)
    assert ref_convert(ap_double_value(x), t) == expected
    got = quantize_float(np.array([x]), Formats.uniform((1,), t))
    assert int(got[0]) == expected


# CEIL, worked out by hand: (float in, mantissa out) in fixed<4,2,CEIL,...> (LSB 1/4, range
# -2 .. 1.75) and ufixed<4,2,CEIL,...> (0 .. 3.75).
CEIL_CASES = [
    ("fixed<4,2,CEIL,WRAP>", [
        (0.3, 2), (0.26, 2), (0.25, 1), (0.125, 1), (1e-9, 1), (0.0, 0), (-0.0, 0),  # up; on the grid: kept
        (-0.3, -1), (-0.125, 0), (-1e-9, 0), (-0.25, -1), (-2.0, -8), (-1.9, -7),  # negative: toward zero
        (0.375, 2), (-0.375, -1), (1.125, 5), (-1.125, -4),  # exact ties go up too
        (1.7, 7), (1.75, 7), (1.76, -8), (-2.1, -8), (-2.3, 7)]),  # past an end: wraps
    ("fixed<4,2,CEIL,SAT>", [(1.76, 7), (1.9, 7), (100.0, 7), (-2.1, -8), (-2.0, -8), (-1.99, -7)]),
    ("fixed<4,2,CEIL,SAT_ZERO>", [(1.76, 0), (1.75, 7), (-2.1, -8), (-2.24, -8), (-2.25, 0)]),
    ("fixed<4,2,CEIL,SAT_SYM>", [(1.76, 7), (-2.0, -7), (-2.1, -7), (-1.99, -7)]),
    ("ufixed<4,2,CEIL,SAT>", [(3.76, 15), (3.75, 15), (3.6, 15), (-0.1, 0), (-0.3, 0), (0.01, 1)]),
    ("ufixed<4,2,CEIL,WRAP>", [(3.76, 0), (-0.1, 0), (-0.3, 15)]),
    ("fixed<1,0,CEIL,SAT>", [(0.2, 0), (-0.2, 0), (-0.5, -1), (-0.7, -1), (-0.4, 0)]),
]


@pytest.mark.parametrize("text, x, expected", [(t, x, m) for t, rows in CEIL_CASES for x, m in rows])
def test_ceil_rounds_toward_plus_infinity(text, x, expected):
    t = FixedType.parse(text)
    assert ref_convert(Fraction(x), t) == expected
    assert int(quantize_float(np.array([x]), Formats.uniform((1,), t))[0]) == expected
    # the same value as an exact mantissa with 40 more fractional bits, through requantize
    frac_in = t.frac_bits + 40
    m = math.floor(Fraction(x) * 2**frac_in)
    if Fraction(m, 2**frac_in) == Fraction(x):
        for dtype in (np.int64, object):
            got = requantize(np.array([m], dtype=dtype), frac_in, Formats.uniform((1,), t))
            assert int(got[0]) == expected


def test_ceil_is_minus_floor_of_minus_x_against_fractions():
    """CEIL against Python integer math, -floor(-q): every mantissa -300..300 shifted by
    0..9 bits (exact ties and values on the grid included), int64 and Python ints, by
    round_shift (one mode and mixed with TRN) and requantize's overflow after it."""
    ms = np.arange(-300, 301)
    for shift in range(10):
        want = [-((-int(m)) >> shift) for m in ms]
        for dtype in (np.int64, object):
            m = ms.astype(dtype)
            assert [int(v) for v in round_shift(m, shift, int(Rounding.CEIL))] == want
            modes = np.where(ms % 2 == 0, int(Rounding.CEIL), int(Rounding.TRN))
            mixed = [w if k % 2 == 0 else int(m) >> shift for k, (m, w) in enumerate(zip(ms, want))]
            assert [int(v) for v in round_shift(m, np.full(ms.shape, shift), modes)] == mixed
        t = FixedType(6, 6 - (3 - shift) if shift <= 3 else 3, True, Rounding.CEIL, Overflow.SAT)
        got = requantize(ms.astype(np.int64), t.frac_bits + shift, Formats.uniform(ms.shape, t))
        assert [int(v) for v in got] == [min(max(w, -32), 31) for w in want]


def test_ceil_text_form():
    t = FixedType.parse("fixed<8,3,CEIL,SAT>")
    assert (t.rounding, int(t.rounding), str(t)) == (Rounding.CEIL, 7, "fixed<8,3,CEIL,SAT>")
    assert FixedType.parse("ap_ufixed<8,3,AP_CEIL>") == FixedType(8, 3, False, Rounding.CEIL)
    assert str(FixedType(8, 3, False, Rounding.CEIL)) == "ufixed<8,3,CEIL>"


maybe_pruned = st.one_of(fixed_types(), fixed_types(), fixed_types(), st.none())


def target_integers(t: FixedType | None):
    """Integers (in units of t's LSB) at and around the interesting points of t's range."""
    width, signed = (t.width, t.signed) if t is not None else (8, True)
    lo, hi = ref_bounds(width, signed)
    far = st.integers(1, 40).map(lambda e: 2 ** (width + e))
    special = st.sampled_from(sorted({lo, hi, lo - 1, hi + 1, lo + 1, hi - 1, 0, 1, -1, -hi}))
    return st.one_of(
        special,
        special,
        st.integers(lo - 4, hi + 4),
        far,
        far.map(lambda v: -v),
        st.integers(-(2 ** (width + 40)), 2 ** (width + 40)),
    )


@st.composite
def mantissas(draw, t: FixedType | None, extra: int):
    """A mantissa with ``extra`` more fractional bits than ``t`` (negative: fewer) whose
    value is near an interesting point of ``t``: an extreme, zero, or an exact tie."""
    k = draw(target_integers(t))
    if extra <= 0:
        return (k >> -extra) + draw(st.integers(-1, 1))
    half = 2 ** (extra - 1)
    below = draw(st.one_of(st.sampled_from([0, half, half - 1, half + 1, 2 * half - 1]),
                           st.integers(0, 2 * half - 1)))
    return k * 2**extra + below


extra_bits = st.one_of(st.integers(-3, 3), st.integers(-20, 80))

SPECIAL_FLOATS = [0.0, -0.0, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308,
                  5e-324, -5e-324, 2.2250738585072014e-308, -2.225073858507201e-308, 1e-310, 0.5, -0.5]


@st.composite
def floats_for(draw, t: FixedType | None):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if kind == 1:
        return draw(st.sampled_from(SPECIAL_FLOATS))
    # near an extreme or a tie of t; float() rounds when the value needs > 53 bits
    extra = draw(st.integers(0, 12))
    m = draw(mantissas(t, extra))
    frac = (t.width - t.int_bits if t is not None else 0) + extra
    return float(mantissa_value(m, frac))


def clamp_int64(m: int) -> int:
    return min(max(m, INT64_MIN), INT64_MAX)


def frac_of(t: FixedType | None) -> int:
    # a pruned element from Formats.from_types has width 0 and int_bits 0
    return 0 if t is None else t.width - t.int_bits


ALL_MODES = [(r, o) for r in Rounding for o in Overflow]
MODE_IDS = [f"{r.name}-{o.name}" for r, o in ALL_MODES]


# --- conversion: every rounding x overflow mode -----------------------------------------


@pytest.mark.parametrize("rounding, overflow", ALL_MODES, ids=MODE_IDS)
@settings(max_examples=45, deadline=None)
@given(data=st.data())
def test_requantize_matches_reference(rounding, overflow, data):
    t = data.draw(fixed_types(rounding, overflow), label="type")
    extra = data.draw(extra_bits, label="extra")
    m = data.draw(mantissas(t, extra), label="mantissa")
    frac_in = t.width - t.int_bits + extra
    formats = Formats.uniform((1,), t)

    got = requantize(np.array([m], dtype=object), frac_in, formats)
    assert int(got[0]) == ref_convert(mantissa_value(m, frac_in), t)

    m64 = clamp_int64(m)
    got = requantize(np.array([m64], dtype=np.int64), frac_in, formats)
    assert int(got[0]) == ref_convert(mantissa_value(m64, frac_in), t)


@pytest.mark.parametrize("rounding, overflow", ALL_MODES, ids=MODE_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_quantize_float_matches_reference(rounding, overflow, data):
    t = data.draw(fixed_types(rounding, overflow), label="type")
    x = data.draw(floats_for(t), label="x")
    got = quantize_float(np.array([x]), Formats.uniform((1,), t))
    assert int(got[0]) == ref_convert(ap_double_value(x), t)


def small_grid():
    """Every mode on tiny types, every mantissa from well below min to well above max,
    shifted right by 2 (all rounding cases), by 0 and left by 1."""
    types, ms, frac_in = [], [], []
    for width in range(1, 5):
        for signed in (False, True):
            lo, hi = ref_bounds(width, signed)
            for int_bits in (width - 2, width + 1):
                for rounding, overflow in ALL_MODES:
                    t = FixedType(width, int_bits, signed, rounding, overflow)
                    for extra in (2, 0, -1):
                        for k in range(2 * lo - 3, 2 * hi + 4):
                            for below in (range(4) if extra == 2 else [0]):
                                m = k * 4 + below if extra == 2 else (k >> 1 if extra < 0 else k)
                                types.append(t)
                                ms.append(m)
                                frac_in.append(width - int_bits + extra)
    return types, ms, frac_in


def test_requantize_exhaustive_small_types_in_one_mixed_array():
    types, ms, frac_in = small_grid()
    formats = formats_of(types)
    expected = [ref_convert(mantissa_value(m, f), t) for t, m, f in zip(types, ms, frac_in)]
    for dtype in (np.int64, object):
        got = requantize(np.array(ms, dtype=dtype), np.array(frac_in), formats)
        assert [int(v) for v in got] == expected


# --- per-element formats: every element its own type and modes --------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_requantize_mixed_formats_matches_per_element_reference(data):
    types = data.draw(st.lists(maybe_pruned, min_size=1, max_size=10), label="types")
    dtype = data.draw(st.sampled_from([np.int64, object]), label="dtype")
    if data.draw(st.booleans(), label="scalar frac_in"):
        frac_in = data.draw(st.integers(-20, 90), label="frac_in")
        fracs = [frac_in] * len(types)
    else:
        fracs = [frac_of(t) + data.draw(extra_bits) for t in types]
        frac_in = np.array(fracs)
    rows = [[data.draw(mantissas(t, f - frac_of(t))) for t, f in zip(types, fracs)] for _ in range(2)]
    if dtype is np.int64:
        rows = [[clamp_int64(m) for m in row] for row in rows]

    got = requantize(np.array(rows, dtype=dtype), frac_in, formats_of(types))  # batch of 2
    expected = [[ref_convert(mantissa_value(m, f), t) for t, m, f in zip(types, row, fracs)] for row in rows]
    assert [[int(v) for v in row] for row in got] == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_quantize_float_mixed_formats_matches_per_element_reference(data):
    types = data.draw(st.lists(maybe_pruned, min_size=1, max_size=10), label="types")
    rows = [[data.draw(floats_for(t)) for t in types] for _ in range(2)]
    got = quantize_float(np.array(rows), formats_of(types))
    expected = [[ref_convert(ap_double_value(x), t) for t, x in zip(types, row)] for row in rows]
    assert [[int(v) for v in row] for row in got] == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_round_shift_matches_reference(data):
    n = data.draw(st.integers(1, 10))
    dtype = data.draw(st.sampled_from([np.int64, object]))
    bound = 2**63 if dtype is np.int64 else 2**140
    ms = data.draw(st.lists(st.integers(-bound, bound - 1), min_size=n, max_size=n))
    shifts = data.draw(st.lists(st.integers(0, 70), min_size=n, max_size=n))
    modes = data.draw(st.lists(st.sampled_from(Rounding), min_size=n, max_size=n))
    # make some exact ties
    ms = [m - m % 2**s + (2 ** (s - 1) if s and i % 2 else 0) for i, (m, s) in enumerate(zip(ms, shifts))]
    ms = [clamp_int64(m) for m in ms] if dtype is np.int64 else ms
    got = round_shift(np.array(ms, dtype=dtype), np.array(shifts), np.array([int(r) for r in modes]))
    expected = [ref_round(Fraction(m, 2**s), r.name) for m, s, r in zip(ms, shifts, modes)]
    assert [int(v) for v in got] == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_apply_overflow_matches_reference(data):
    types = data.draw(st.lists(maybe_pruned, min_size=1, max_size=10))
    dtype = data.draw(st.sampled_from([np.int64, object]))
    ms = [data.draw(target_integers(t)) for t in types]
    ms = [clamp_int64(m) for m in ms] if dtype is np.int64 else ms
    got = apply_overflow(np.array(ms, dtype=dtype), formats_of(types))
    expected = [0 if t is None else ref_overflow(m, t.width, t.signed, t.overflow.name)
                for t, m in zip(types, ms)]
    assert [int(v) for v in got] == expected


def test_sat_sym_moves_an_in_range_most_negative_code():
    t = FixedType.parse("fixed<8,8,TRN,SAT_SYM>")
    formats = Formats.uniform((3,), t)
    for dtype in (np.int64, object):
        got = requantize(np.array([-128, -127, 127], dtype=dtype), 0, formats)
        assert [int(v) for v in got] == [-127, -127, 127]
    assert int(quantize_float(np.array([-128.0]), Formats.uniform((1,), t))[0]) == -127
    # 1-bit signed and unsigned types saturate plainly
    one_bit = Formats.uniform((2,), FixedType.parse("fixed<1,1,TRN,SAT_SYM>"))
    assert [int(v) for v in requantize(np.array([-1, -5]), 0, one_bit)] == [-1, -1]
    unsigned = Formats.uniform((2,), FixedType.parse("ufixed<4,4,TRN,SAT_SYM>"))
    assert [int(v) for v in requantize(np.array([-3, 99]), 0, unsigned)] == [0, 15]


@settings(max_examples=100, deadline=None)
@given(fixed_types(overflow=Overflow.SAT_SYM), st.data())
def test_sat_sym_never_gives_the_most_negative_code(t, data):
    t = FixedType(max(t.width, 2), t.int_bits, True, t.rounding, t.overflow)
    lo, hi = ref_bounds(t.width, True)
    extra = data.draw(st.integers(0, 70))
    k = data.draw(st.sampled_from([lo, lo - 1, lo + 1, 2 * lo]))
    below = data.draw(st.sampled_from([0, 2**extra // 2, 2**extra - 1]))
    m = k * 2**extra + below
    frac_in = t.width - t.int_bits + extra
    formats = Formats.uniform((1,), t)
    expected = ref_convert(mantissa_value(m, frac_in), t)
    assert expected >= -hi
    assert int(requantize(np.array([m], dtype=object), frac_in, formats)[0]) == expected
    if m.bit_length() < 62:
        assert int(requantize(np.array([m], dtype=np.int64), frac_in, formats)[0]) == expected
    x = float(mantissa_value(lo, t.width - t.int_bits))  # a power of two: exact
    assert int(quantize_float(np.array([x]), formats)[0]) == -hi


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_pruned_elements_are_always_zero(data):
    # width 0 whatever the other fields hold
    n = data.draw(st.integers(1, 6))
    fields = st.lists(st.integers(-30, 30), min_size=n, max_size=n)
    formats = Formats(
        np.zeros(n, dtype=np.int64), data.draw(fields),
        data.draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        data.draw(st.lists(st.sampled_from(Rounding), min_size=n, max_size=n)),
        data.draw(st.lists(st.sampled_from(Overflow), min_size=n, max_size=n)),
    )
    ms = data.draw(st.lists(st.integers(INT64_MIN, INT64_MAX), min_size=n, max_size=n))
    frac_in = data.draw(st.integers(-20, 80))
    for dtype in (np.int64, object):
        assert not requantize(np.array(ms, dtype=dtype), frac_in, formats).any()
    xs = data.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n))
    assert not quantize_float(np.array(xs), formats).any()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(-1100, -990), st.booleans(), st.sampled_from(Rounding),
       st.sampled_from(Overflow), st.floats(-2.2250738585072014e-308, 2.2250738585072014e-308))
def test_quantize_float_reads_subnormals_as_ap_fixed_does(width, int_bits, signed, rounding, overflow, x):
    # only types with more than ~1020 fractional bits can tell the two readings apart
    t = FixedType(width, int_bits, signed, rounding, overflow)
    got = quantize_float(np.array([x]), Formats.uniform((1,), t))
    assert int(got[0]) == ref_convert(ap_double_value(x), t)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_float_rejects_non_finite_and_names_the_index(bad):
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        quantize_float(np.array([1.0, bad]), Formats.uniform((2,), FixedType(8, 3)))
