"""FixedType and Formats in compiler/fixed.py: the text form (parse, str, round trips),
validation that quotes the bad value, the width rules (add, multiply, accumulate, shift,
bits_for_range, for_range: exact and tight, checked with Fractions), and Formats on mixed,
uniform and pruned tensors (bounds, summary, digest, distinct types, from_ranges, limits).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.fixed import (
    MAX_PLAN_INT_BITS,
    MAX_WIDTH,
    FixedType,
    FormatError,
    Formats,
    Overflow,
    Rounding,
    accumulate_type,
    add_type,
    bits_for_range,
    mul_type,
    shift_type,
)
from tests.fixed_reference import fixed_types, formats_of, mantissa_value, ref_bounds, widths


# --- text form ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(fixed_types(width_from=st.one_of(widths, st.integers(1, 1024))), st.data())
def test_text_form_round_trips(t, data):
    assert FixedType.parse(str(t)) == t
    space = st.sampled_from(["", " ", "  "])
    s = [data.draw(space) for _ in range(8)]
    text = (f"{s[0]}ap_{'' if t.signed else 'u'}fixed{s[1]}<{s[2]}{t.width}{s[3]},{s[4]}{t.int_bits},"
            f"AP_{t.rounding.name}{s[5]},{s[6]}AP_{t.overflow.name}>{s[7]}")
    assert FixedType.parse(text) == t


@pytest.mark.parametrize("text, expected", [
    ("ap_fixed<8,3,AP_RND_CONV,AP_SAT>", FixedType(8, 3, True, Rounding.RND_CONV, Overflow.SAT)),
    ("ufixed<8,-2>", FixedType(8, -2, False)),
    ("ap_ufixed<8,10>", FixedType(8, 10, False)),
    ("fixed<8,3,RND>", FixedType(8, 3, True, Rounding.RND)),
    ("fixed<8,3,rnd_zero,sat_sym>", FixedType(8, 3, True, Rounding.RND_ZERO, Overflow.SAT_SYM)),
    ("  fixed < 8 , 3 , RND_INF , SAT_ZERO >  ", FixedType(8, 3, True, Rounding.RND_INF, Overflow.SAT_ZERO)),
])
def test_parse_accepts(text, expected):
    assert FixedType.parse(text) == expected


@pytest.mark.parametrize("text", [
    "fixed<8>", "fixed<0,1>", "fixed<-3,1>", "fixed<8,3,RND_FOO>", "fixed<8,3,RND,SAT,2>",
    "fixed<8,3,RND,SAT,SAT>", "fixed<8,3,SAT>", "fixed<8,3,RND,RND>", "fixed<8,3", "int<8>",
    "fixed<8,3,>", "", "fixed<2000,1>", "sfixed<8,3>",
])
def test_parse_rejects_and_quotes_the_string(text):
    with pytest.raises(FormatError) as err:
        FixedType.parse(text)
    assert repr(text) in str(err.value)


def test_str_form():
    assert str(FixedType(8, 3)) == "fixed<8,3>"
    assert str(FixedType(8, -2, False, Rounding.RND)) == "ufixed<8,-2,RND>"
    assert str(FixedType(8, 3, True, Rounding.TRN, Overflow.SAT)) == "fixed<8,3,TRN,SAT>"


@pytest.mark.parametrize("width", [0, -1, 1025, True, 8.0])
def test_bad_width_raises_format_error_quoting_it(width):
    with pytest.raises(FormatError, match=repr(width).replace(".", r"\.")):
        FixedType(width, 3)


# --- width rules ------------------------------------------------------------------------------


def holds(t: FixedType, v: Fraction) -> bool:
    q = v / (Fraction(2) ** (t.int_bits - t.width))
    lo, hi = ref_bounds(t.width, t.signed)
    return q.denominator == 1 and lo <= q <= hi


def assert_tightest(t: FixedType, corners: list[Fraction], finest: Fraction):
    """t holds every corner; no type one bit narrower (same LSB, either signedness)
    holds them all; and ``finest`` (a reachable value) needs t's LSB."""
    assert all(holds(t, c) for c in corners), (t, corners)
    if t.width > 1:
        for signed in (False, True):
            narrower = FixedType(t.width - 1, t.int_bits - 1, signed)
            assert not all(holds(narrower, c) for c in corners), (t, narrower, corners)
    q = finest / (Fraction(2) ** (t.int_bits - t.width))
    assert q.denominator == 1 and q.numerator % 2 == 1, (t, finest)


def small_step(t: FixedType) -> Fraction:
    """A value of t one LSB from zero (-1 LSB for signed, which every signed type holds)."""
    lsb = Fraction(2) ** (t.int_bits - t.width)
    return -lsb if t.signed else lsb


def extremes(t: FixedType) -> list[Fraction]:
    lsb = Fraction(2) ** (t.int_bits - t.width)
    return [c * lsb for c in ref_bounds(t.width, t.signed)]


@settings(max_examples=200, deadline=None)
@given(fixed_types(), fixed_types())
def test_add_type_is_exact_and_tight(a, b):
    corners = [x + y for x in extremes(a) for y in extremes(b)]
    finest = small_step(a) if a.width - a.int_bits >= b.width - b.int_bits else small_step(b)
    assert_tightest(add_type(a, b), corners, finest)


@settings(max_examples=200, deadline=None)
@given(fixed_types(), fixed_types())
def test_mul_type_is_exact_and_tight(a, b):
    corners = [x * y for x in extremes(a) for y in extremes(b)]
    assert_tightest(mul_type(a, b), corners, small_step(a) * small_step(b))


@settings(max_examples=200, deadline=None)
@given(fixed_types(), st.one_of(st.integers(1, 9), st.integers(1, 100_000)))
def test_accumulate_type_is_exact_and_tight(t, terms):
    corners = [terms * c for c in extremes(t)]
    assert_tightest(accumulate_type(t, terms), corners, small_step(t))


def test_accumulate_type_rejects_no_terms():
    with pytest.raises(ValueError, match="0 terms"):
        accumulate_type(FixedType(8, 3), 0)


@settings(max_examples=100, deadline=None)
@given(fixed_types(), st.integers(-40, 40))
def test_shift_type_moves_the_binary_point(t, k):
    s = shift_type(t, k)
    assert (s.width, s.signed) == (t.width, t.signed)
    assert extremes(s) == [c * Fraction(2) ** k for c in extremes(t)]


big_ints = st.one_of(st.integers(-300, 300), st.integers(-(2**130), 2**130))


@settings(max_examples=300, deadline=None)
@given(big_ints, big_ints)
def test_bits_for_range_is_tight(x, y):
    lo, hi = min(x, y), max(x, y)
    width, signed = bits_for_range(lo, hi)

    def fits(w, s):
        field_lo, field_hi = ref_bounds(w, s)
        return field_lo <= lo and hi <= field_hi

    assert fits(width, signed), (lo, hi, width, signed)
    if width > 0:
        assert not fits(width - 1, False) and not fits(width - 1, True), (lo, hi, width)
    if lo >= 0:
        assert not signed  # an unsigned field is never wider than a signed one


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 0, (0, False)), (0, 1, (1, False)), (-1, 0, (1, True)), (-1, -1, (1, True)),
    (-8, -8, (4, True)), (-8, 7, (4, True)), (-9, 7, (5, True)), (-8, 8, (5, True)), (0, 255, (8, False)),
])
def test_bits_for_range_examples(lo, hi, expected):
    assert bits_for_range(lo, hi) == expected


def test_bits_for_range_rejects_empty_range():
    with pytest.raises(ValueError, match=r"\[3, 2\]"):
        bits_for_range(3, 2)


@settings(max_examples=200, deadline=None)
@given(big_ints, big_ints, st.integers(-20, 40))
def test_for_range_holds_the_range_at_the_given_lsb(x, y, frac):
    lo, hi = min(x, y), max(x, y)
    t = FixedType.for_range(lo, hi, frac)
    if lo == hi == 0:
        assert t is None
        return
    assert t.width - t.int_bits == frac
    assert (t.width, t.signed) == bits_for_range(lo, hi)
    assert holds(t, mantissa_value(lo, frac)) and holds(t, mantissa_value(hi, frac))


# --- Formats on a mixed tensor ------------------------------------------------------------


def mixed_formats() -> Formats:
    types = np.empty((2, 3), dtype=object)
    types[:] = [
        [FixedType(8, 3), FixedType(4, 4, False, Rounding.RND, Overflow.SAT), None],
        [FixedType(100, 2, True, Rounding.RND_CONV, Overflow.SAT_SYM), FixedType(8, 3), FixedType(1, -5, True)],
    ]
    return Formats.from_types(types)


def test_mantissa_bounds_on_a_mixed_tensor():
    lo, hi = mixed_formats().mantissa_bounds()
    assert lo.dtype == object and hi.dtype == object
    assert lo.tolist() == [[-128, 0, 0], [-(2**99), -128, -1]]
    assert hi.tolist() == [[127, 15, 0], [2**99 - 1, 127, 0]]
    assert all(type(v) is int for v in [*lo.flat, *hi.flat])


def test_summary_on_mixed_uniform_and_pruned_tensors():
    f = mixed_formats()
    assert f.summary() == f"mixed[4 types, width 1..100, frac 0..98, 1 pruned, #{f.digest()}]"
    no_pruned = formats_of([FixedType(8, 3), FixedType(6, 1, False)])
    assert no_pruned.summary() == f"mixed[2 types, width 6..8, frac 5..5, #{no_pruned.digest()}]"
    t = FixedType(8, 3, True, Rounding.RND, Overflow.SAT)
    assert Formats.uniform((4, 2), t).summary() == "fixed<8,3,RND,SAT>"
    assert formats_of([None, None]).summary() == "pruned"


def test_digest_changes_with_any_one_element():
    f = mixed_formats()
    digests = {f.digest()}
    for name in ("width", "int_bits", "signed", "rounding", "overflow"):
        fields = {n: np.array(getattr(f, n)) for n in ("width", "int_bits", "signed", "rounding", "overflow")}
        fields[name][1, 1] = not fields[name][1, 1] if name == "signed" else fields[name][1, 1] + 1
        digests.add(Formats(**fields).digest())
    assert len(digests) == 6
    assert len(f.digest()) == 6 and int(f.digest(), 16) >= 0


def test_formats_element_and_distinct():
    f = mixed_formats()
    assert f.element((0, 1)) == FixedType(4, 4, False, Rounding.RND, Overflow.SAT)
    assert f.element((0, 2)) is None
    assert f.distinct() == [FixedType(8, 3), FixedType(4, 4, False, Rounding.RND, Overflow.SAT), None,
                            FixedType(100, 2, True, Rounding.RND_CONV, Overflow.SAT_SYM), FixedType(1, -5)]
    assert f.uniform_type() is None


def test_formats_from_ranges_on_a_mixed_tensor():
    lo = np.array([[-1, 0, 0], [-(2**90), 3, -8]], dtype=object)
    hi = np.array([[0, 0, 255], [5, 9, -8]], dtype=object)
    frac = np.array([[0, 4, -2], [10, 1, 3]])
    f = Formats.from_ranges(lo, hi, frac)
    assert f.pruned.tolist() == [[False, True, False], [False, False, False]]
    for idx in np.ndindex(f.shape):
        t = f.element(idx)
        if t is None:
            continue
        assert t.width - t.int_bits == frac[idx]
        assert (t.rounding, t.overflow) == (Rounding.TRN, Overflow.WRAP)
        assert (t.width, t.signed) == bits_for_range(lo[idx], hi[idx])
        f_ = int(frac[idx])
        assert holds(t, mantissa_value(lo[idx], f_)) and holds(t, mantissa_value(hi[idx], f_))
    assert f.width.tolist() == [[1, 0, 8], [91, 4, 4]]


@pytest.mark.parametrize("fields, message", [
    (([3, -1], [0, 0], [True, True], [0, 0], [0, 0]), "negative width -1"),
    (([3, 4], [0], [True, True], [0, 0], [0, 0]), "int_bits has shape"),
    (([3, 4], [0, 0], [True, True], [0, 8], [0, 0]), "rounding code"),
    (([3, 4], [0, 0], [True, True], [0, 0], [4, 0]), "overflow code"),
    (([3, 2000], [0, 0], [True, True], [0, 0], [0, 0]), "width 2000"),
])
def test_formats_validate_their_fields(fields, message):
    with pytest.raises(FormatError, match=message):
        Formats(*(np.array(f) for f in fields))


def test_plan_format_limits_are_inclusive_and_named():
    """The widest format and the integer bits a plan may write: the limits themselves parse,
    one beyond them is refused with the limit named, and no huge number is ever built."""
    assert FixedType.parse(f"fixed<{MAX_WIDTH},{MAX_PLAN_INT_BITS}>").width == MAX_WIDTH
    assert FixedType.parse(f"ufixed<1,-{MAX_PLAN_INT_BITS}>").frac_bits == MAX_PLAN_INT_BITS + 1
    with pytest.raises(FormatError, match=f"integer bits {MAX_PLAN_INT_BITS + 1} are outside"):
        FixedType.parse(f"fixed<8,{MAX_PLAN_INT_BITS + 1}>")
    with pytest.raises(FormatError, match=f"integer bits -{MAX_PLAN_INT_BITS + 1} are outside"):
        FixedType.parse(f"fixed<8,-{MAX_PLAN_INT_BITS + 1}>")
    with pytest.raises(FormatError, match=f"width {MAX_WIDTH + 1} is larger than the {MAX_WIDTH} bits"):
        FixedType.parse(f"fixed<{MAX_WIDTH + 1},2>")
    with pytest.raises(FormatError, match=r"in format 'fixed<9999.*\(5009 characters\).*far outside"):
        FixedType.parse("fixed<" + "9" * 5000 + ",2>")


@settings(max_examples=300, deadline=None)
@given(st.lists(fixed_types(), min_size=1, max_size=4), st.data())
def test_formats_pickle_round_trips(types, data):
    """ir.pkl's Formats: each field cut along its constant axes and narrowed to int8/int16 when
    pickled, and back to the same int64/bool arrays, read-only, when loaded."""
    import pickle

    shape = tuple(data.draw(st.lists(st.integers(1, 4), max_size=3)))
    picks = data.draw(st.lists(st.integers(0, len(types) - 1), min_size=int(np.prod(shape)),
                               max_size=int(np.prod(shape))))
    cells = np.empty(int(np.prod(shape)), dtype=object)
    cells[:] = [types[i] for i in picks]
    f = Formats.from_types(cells.reshape(shape))
    g = pickle.loads(pickle.dumps(f))
    assert g.shape == f.shape and g.digest() == f.digest()
    for a, b in zip(f.fields(), g.fields()):
        assert a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable


def test_formats_pickle_per_channel_formats_small():
    """A per-channel format of a [64, 128, 128] activation pickles as its 64 values (ESPCN's
    ir.pkl: 779 MB before, 275 MB after)."""
    import pickle

    per_channel = np.empty((64, 1, 1), dtype=object)
    per_channel[:, 0, 0] = [FixedType(8 + c % 5, 2) for c in range(64)]
    f = Formats.from_types(np.broadcast_to(per_channel, (64, 128, 128)))
    assert len(pickle.dumps(f)) < 2_000
