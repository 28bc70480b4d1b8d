"""Tests of compiler/rescale.py against brute force over every accumulator of small ranges.

The reference rounds ``acc * M`` with ``ref_round`` below (Fractions, written from the
ap_fixed rules and sharing no code with compiler/rescale.py) and the hardware side with
``compiler.mantissa.round_shift`` on ``acc * K`` (REQUANTIZE's own rule), so the tests check
the proof against what finegrain actually computes.  Every mode of ``Rounding`` is tested,
CEIL too once the enum has it.  Ranges are small for the random cases (up to 500 values)
and 2**17 values for float32-scale ratios, whose long denominators make the lattice search
do the deciding; the lattice search is also tested on its own.
"""

from __future__ import annotations

import math
import random
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.fixed import Rounding
from compiler.mantissa import round_shift
from compiler.rescale import Multiplier, _first_column, choose_multiplier, choose_offset_multiplier, multiplier_error

MODES = list(Rounding)


def ref_round(x: Fraction, mode) -> int:
    """``x`` rounded to an integer by an ap_fixed quantization mode."""
    low = math.floor(x)
    rest = x - low
    if rest == 0:
        return low
    name = Rounding(mode).name
    if name == "TRN":
        return low
    if name == "CEIL":
        return low + 1
    if name == "TRN_ZERO":
        return low + (x < 0)
    if rest != Fraction(1, 2):
        return low + (rest > Fraction(1, 2))
    tie_up = {"RND": True, "RND_MIN_INF": False, "RND_ZERO": x < 0, "RND_INF": x > 0,
              "RND_CONV": low % 2 == 1}[name]
    return low + tie_up


def hardware(accs: range, m: Multiplier, mode) -> list[int]:
    """REQUANTIZE of ``acc * K`` by ``shift`` bits, as the emulator computes it."""
    products = np.array([a * m.mantissa for a in accs], dtype=object)
    if m.shift <= 0:
        return [int(p) << -m.shift for p in products]
    return [int(v) for v in round_shift(products, m.shift, int(mode))]


def brute_error(ratio: Fraction, value: Fraction, lo: int, hi: int, mode) -> int:
    return max(abs(ref_round(a * value, mode) - ref_round(a * ratio, mode)) for a in range(lo, hi + 1))


def check_error(ratio, value, lo, hi, mode):
    error, witness = multiplier_error(ratio, value, lo, hi, mode)
    assert error == brute_error(ratio, value, lo, hi, mode), (ratio, value, lo, hi, mode)
    if error == 0:
        assert witness is None
    else:
        assert lo <= witness <= hi
        assert abs(ref_round(witness * value, mode) - ref_round(witness * ratio, mode)) == error


ratios = st.builds(Fraction, st.integers(1, 3000), st.integers(1, 400))
ranges = st.tuples(st.integers(-400, 400), st.integers(0, 500)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=600, deadline=None)
@given(ratio=ratios, num=st.integers(-40, 40), shift=st.integers(0, 12), bounds=ranges,
       mode=st.sampled_from(MODES))
def test_error_equals_brute_force_for_dyadic_values(ratio, num, shift, bounds, mode):
    value = ratio + Fraction(num, 1 << shift)
    if value > 0:
        check_error(ratio, value, *bounds, mode)


@settings(max_examples=300, deadline=None)
@given(ratio=ratios, value=ratios, bounds=ranges, mode=st.sampled_from(MODES))
def test_error_equals_brute_force_for_any_rationals(ratio, value, bounds, mode):
    check_error(ratio, value, *bounds, mode)


@settings(max_examples=800, deadline=None)
@given(lines=st.lists(st.integers(-60, 60), min_size=4, max_size=4),
       dens=st.lists(st.integers(1, 40), min_size=2, max_size=2), n=st.integers(0, 120))
def test_first_column_is_the_first_lattice_column(lines, dens, n):
    """The lattice question itself, for narrowing, widening and parallel pairs of lines."""
    (a1, b1, a2, b2), (d1, d2) = lines, dens
    first = next((t for t in range(n + 1)
                  if math.ceil(Fraction(a1 * t + b1, d1)) <= math.floor(Fraction(a2 * t + b2, d2))), None)
    assert _first_column((a1, b1, d1), (a2, b2, d2), n) == first


@settings(max_examples=200, deadline=None)
@given(num=st.integers(1, 2**20), exponent=st.integers(-70, 70), shift=st.integers(-8, 60),
       delta=st.integers(-5, 5), bounds=ranges, mode=st.sampled_from(MODES))
def test_error_for_tiny_and_huge_ratios(num, exponent, shift, delta, bounds, mode):
    ratio = Fraction(num * 2 + 1, 3 * 7 * 11) * Fraction(2) ** exponent
    value = ratio * (1 + Fraction(delta, 1 << 20)) + Fraction(delta) / Fraction(2) ** shift
    if value > 0:
        check_error(ratio, value, *bounds, mode)


def test_ties_on_both_sides_round_apart():
    """a = 3: 3/2 rounds up to 2 and 3/6 down to 0 (ties to even), 2 apart, more than
    any bound that takes only one side's tie exactly (1) and than the range's end (E(4) = 1)."""
    assert multiplier_error(Fraction(1, 6), Fraction(1, 2), 1, 4, Rounding.RND_CONV) == (2, 3)
    assert multiplier_error(Fraction(1, 2), Fraction(1, 6), -4, 0, Rounding.RND_CONV) == (2, -3)


def is_tie(x: Fraction) -> bool:
    return (2 * x).denominator == 1 and (2 * x).numerator % 2 == 1


def test_error_where_both_sides_tie():
    """Both ratios with even denominators, the range ending at or just after an accumulator
    where both products are ties: the largest error is often only there (about one case in
    fifty; none of the random tests above finds one reliably)."""
    rng = random.Random(21)
    for _ in range(1500):
        ratio, value = (Fraction(2 * rng.randint(0, 40) + 1, 2 * rng.randint(1, 12)) for _ in range(2))
        period = ratio.denominator * value.denominator
        ties = [a for a in range(1, period + 1) if is_tie(a * ratio) and is_tie(a * value)]
        if not ties or ratio == value:
            continue
        end = ties[0] + period * rng.randint(0, 2)
        lo, hi = rng.randint(0, end), end + rng.randint(0, 2)
        if rng.random() < 0.5:
            lo, hi = -hi, -lo
        check_error(ratio, value, lo, hi, Rounding.RND_CONV)


def test_error_near_ties_and_boundaries():
    """Ratios with even denominators put a*M on ties; values a hair off them decide."""
    rng = random.Random(12)
    for _ in range(400):
        q = rng.choice([2, 4, 6, 8, 10, 12, 16, 32])
        ratio = Fraction(rng.randrange(1, 8 * q, 2), q)
        value = ratio + Fraction(rng.choice([-1, 1]) * rng.randint(1, 3), 1 << rng.randint(6, 14))
        lo = rng.randint(-600, 0)
        check_error(ratio, value, lo, lo + rng.randint(0, 1200), rng.choice(MODES))


@settings(max_examples=250, deadline=None)
@given(ratio=ratios, bounds=ranges, mode=st.sampled_from(MODES), max_bits=st.integers(1, 14))
def test_choose_matches_brute_force(ratio, bounds, mode, max_bits):
    lo, hi = bounds
    m = choose_multiplier(ratio, lo, hi, mode, max_bits)
    assert m.ratio == ratio and m.value == Fraction(m.mantissa) / Fraction(2) ** m.shift
    assert m.mantissa % 2 == 1 and m.bits == m.mantissa.bit_length() <= max_bits
    accs = range(lo, hi + 1)
    errors = [abs(h - ref_round(a * ratio, mode)) for a, h in zip(accs, hardware(accs, m, mode))]
    assert m.max_error == max(errors)
    assert m.exact == (max(errors) == 0)
    if m.exact:
        assert m.witness is None
    else:
        assert errors[m.witness - lo] == m.max_error


def narrower_exact(ratio, lo, hi, mode, bits):
    """Some multiplier K * 2**-n with K of fewer than ``bits`` bits that is exact, or None.
    Only n near ratio's exponent can be (a K of b bits is then within 2**-b of ratio)."""
    e = ratio.numerator.bit_length() - ratio.denominator.bit_length()
    for b in range(1, bits):
        for n in range(b - e - 3, b - e + 3):
            for k in range(1 << (b - 1), 1 << b):
                value = Fraction(k) / Fraction(2) ** n
                if abs(value - ratio) * max(abs(lo), abs(hi)) < 2 and \
                        brute_error(ratio, value, lo, hi, mode) == 0:
                    return value
    return None


def test_choose_is_minimal():
    rng = random.Random(7)
    checked = 0
    for _ in range(120):
        ratio = Fraction(rng.randint(1, 200), rng.randint(1, 60))
        lo = rng.randint(-60, 20)
        hi = lo + rng.randint(0, 80)
        mode = rng.choice(MODES)
        m = choose_multiplier(ratio, lo, hi, mode, 10)
        if m.exact:
            checked += 1
            assert narrower_exact(ratio, lo, hi, mode, m.bits) is None, (ratio, lo, hi, mode, m)
    assert checked > 60


def ref_round_array(num: np.ndarray, den: int, mode) -> np.ndarray:
    """``ref_round(num / den)`` for an int64 array, in integers."""
    low = num // den
    twice = 2 * (num - low * den)  # 2 * remainder, compared with den
    name = Rounding(mode).name
    if name in ("TRN", "CEIL", "TRN_ZERO"):
        up = {"TRN": np.zeros_like(num), "CEIL": twice > 0, "TRN_ZERO": (twice > 0) & (num < 0)}[name]
    else:
        tie_up = {"RND": True, "RND_MIN_INF": False, "RND_ZERO": num < 0, "RND_INF": num > 0,
                  "RND_CONV": low % 2 == 1}[name]
        up = (twice > den) | ((twice == den) & tie_up)
    return low + up


@pytest.mark.parametrize("seed", range(4))
def test_long_ranges_against_brute_force(seed):
    """Every accumulator of [-2**16, 2**16] for ratios of float32 scales, whose
    denominators (up to 2**24) are far longer than the range: whether a rounding boundary
    is ever hit then depends on where a*M falls, which the lattice search must find."""
    rng = np.random.default_rng(seed)
    accs = np.arange(-2**16, 2**16 + 1, dtype=np.int64)
    for _ in range(12):
        ratio = Fraction(float(np.float32(rng.uniform(0.25, 1)))) / Fraction(float(np.float32(rng.uniform(0.5, 1))))
        if ratio.numerator >= 2**25:
            continue  # keep acc * p within int64
        for mode in MODES:
            m = choose_multiplier(ratio, int(accs[0]), int(accs[-1]), mode, int(rng.integers(14, 31)))
            hw = round_shift(accs * m.mantissa, m.shift, int(mode)) if m.shift > 0 else accs * m.mantissa
            errors = np.abs(hw - ref_round_array(accs * ratio.numerator, ratio.denominator, mode))
            assert m.max_error == errors.max() and m.exact == (errors.max() == 0), (ratio, mode, m)
            if not m.exact:
                assert errors[m.witness - accs[0]] == m.max_error


def test_nearer_of_two_exact_candidates():
    """9/20 on [0, 1]: 1/4 and 1/2 (one bit each) are both exact; 1/2 is nearer."""
    m = choose_multiplier(Fraction(9, 20), 0, 1, Rounding.TRN)
    assert (m.value, m.exact) == (Fraction(1, 2), True)
    m = choose_multiplier(Fraction(11, 20), 0, 1, Rounding.TRN)
    assert (m.value, m.exact) == (Fraction(1, 2), True)
    assert choose_multiplier(Fraction(7, 20), 0, 1, Rounding.TRN).value == Fraction(1, 4)


def test_one_lsb_apart_at_the_end_can_still_be_exact():
    """|acc * (M' - M)| = 1 exactly, both products ties that round to the same even integer
    (3 * 1/2 = 1.5 and 3 * 5/6 = 2.5 both give 2): exact, so a candidate may be skipped
    unproven only at a distance of 2."""
    m = choose_multiplier(Fraction(5, 6), 3, 3, Rounding.RND_CONV)
    assert (m.value, m.exact) == (Fraction(1, 2), True)


def test_dyadic_ratio_is_itself():
    m = choose_multiplier(Fraction(3, 8), -2**40, 2**40, Rounding.RND_CONV)
    assert (m.mantissa, m.shift, m.bits, m.exact, m.max_error, m.witness) == (3, 3, 2, True, 0, None)
    m = choose_multiplier(Fraction(40), -5, 5, Rounding.TRN)
    assert (m.mantissa, m.shift, m.value) == (5, -3, 40)


def test_realistic_int8_dot_product():
    """M = s_x * s_w / s_out from float32 scales; 64 terms of int8 x int8."""
    s_x, s_w, s_out = (Fraction(float(np.float32(s))) for s in (0.0173, 0.00421, 0.0391))
    ratio = s_x * s_w / s_out
    bound = 64 * 128 * 128
    for mode in MODES:
        start = time.perf_counter()
        m = choose_multiplier(ratio, -bound, bound, mode)
        assert time.perf_counter() - start < 0.1
        assert m.bits <= 32
        if not m.exact:
            assert m.max_error == 1
            w = m.witness
            assert abs(ref_round(w * m.value, mode) - ref_round(w * ratio, mode)) == 1
        # a sample of the range agrees with the claim (the proof covers all of it)
        for a in list(range(-bound, -bound + 2000)) + list(range(-1000, 1000)) + [bound]:
            assert abs(ref_round(a * m.value, mode) - ref_round(a * ratio, mode)) <= m.max_error


def test_huge_range_is_fast():
    """Per output channel, so it must be quick: about 1 ms on a 2**41-value range (the
    limits leave room for a busy machine)."""
    rng = random.Random(3)
    times = []
    for _ in range(60):
        ratio = Fraction(float(np.float32(rng.uniform(1e-4, 1)))) / Fraction(float(np.float32(rng.uniform(1e-3, 1))))
        mode = rng.choice(MODES)
        start = time.perf_counter()
        choose_multiplier(ratio, -2**40, 2**40, mode, 32)
        times.append(time.perf_counter() - start)
    assert sorted(times)[len(times) // 2] < 0.005 and max(times) < 0.1


def test_str_says_what_it_costs():
    assert str(choose_multiplier(Fraction(3, 8), -9, 9, Rounding.TRN)) == "3 * 2**-3 (2 bits) for 3/8: exact"
    m = choose_multiplier(Fraction(1, 3), -1000, 1000, Rounding.RND_CONV, 4)
    assert (m.mantissa, m.shift, m.max_error, m.witness) == (11, 5, 11, 1000)  # 1000 * (11/32 - 1/3) = 10.4
    assert str(m) == "11 * 2**-5 (4 bits) for 1/3: off by up to 11 LSB (acc = 1000)"


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        choose_multiplier(Fraction(-1, 3), 0, 5, Rounding.TRN)
    with pytest.raises(ValueError, match="empty"):
        choose_multiplier(Fraction(1, 3), 5, 0, Rounding.TRN)
    with pytest.raises(ValueError, match="rounding"):
        choose_multiplier(Fraction(1, 3), 0, 5, 99)


@settings(max_examples=400, deadline=None)
@given(ratio=ratios, bounds=ranges, mode=st.sampled_from(MODES), max_bits=st.integers(1, 14),
       zeros=st.lists(st.integers(-300, 300), min_size=1, max_size=4))
def test_offset_multiplier_holds_for_any_integer_added(ratio, bounds, mode, max_bits, zeros):
    """R(acc*M' + z) against R(acc*M + z), by brute force, for several integers z: equal for
    every acc when choose_offset_multiplier says exact, within max_error otherwise; and no
    narrower multiplier of the same kind is exact for every z in 0..3 (z of both parities
    decides a tie to even)."""
    lo, hi = bounds
    m = choose_offset_multiplier(ratio, lo, hi, mode, max_bits)
    assert m.bits <= max_bits and m.value == Fraction(m.mantissa) / Fraction(2) ** m.shift
    for z in [0, 1, *zeros]:
        errors = [abs(ref_round(a * m.value + z, mode) - ref_round(a * ratio + z, mode)) for a in range(lo, hi + 1)]
        assert max(errors) <= m.max_error, (z, m)
    if m.exact:
        assert m.max_error == 0
        plain = choose_multiplier(ratio, lo, hi, mode, max_bits)
        assert plain.exact and plain.bits <= m.bits  # never narrower than without the offset



@pytest.mark.parametrize("ratio, mode", [(Fraction(10, 9), Rounding.RND_CONV), (Fraction(7, 6), Rounding.RND_INF),
                                         (Fraction(6, 5), Rounding.TRN_ZERO)])
def test_an_integer_added_before_rounding_needs_the_offset_multiplier(ratio, mode):
    """acc*M lands on rounding boundaries (a multiple of 9, 6 or 5 times M is an integer or a
    half): the multiplier exact for R(acc*M) is off for R(acc*M + z) at some z, the offset one
    is exact (10/9: ties to even, any z), or, where no dyadic multiplier can be (6/5 toward
    zero: 5*M' would have to be 6 under floor and ceil alike), within its max_error."""
    accs, zeros = range(1, 41), range(-60, 61)
    plain = choose_multiplier(ratio, 1, 40, mode, 16)
    assert plain.exact and any(ref_round(a * plain.value + z, mode) != ref_round(a * ratio + z, mode)
                               for a in accs for z in zeros)
    m = choose_offset_multiplier(ratio, 1, 40, mode, 16)
    worst = max(abs(ref_round(a * m.value + z, mode) - ref_round(a * ratio + z, mode)) for a in accs for z in zeros)
    assert worst <= m.max_error and m.exact == (mode == Rounding.RND_CONV)
