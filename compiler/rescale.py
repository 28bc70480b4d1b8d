"""Integer rescale multipliers, chosen with a proof of what they cost.

A quantized model rescales an integer accumulator ``acc`` by an exact positive rational
``M`` (say ``s_x * s_w / s_out``) and rounds: ``code = R(acc * M)``.  Hardware multiplies
by ``M' = K * 2**-n`` instead and rounds that product with the same ``R`` (finegrain's
MUL + REQUANTIZE).  :func:`choose_multiplier` picks the narrowest ``K`` for which
``R(acc * M') == R(acc * M)`` on every integer ``acc`` in ``[lo, hi]``, and
:func:`multiplier_error` proves it, or finds the largest difference and an ``acc`` that
reaches it.  Nothing is sampled, and the cost does not grow with the range: a 32-bit
search over ``[-2**40, 2**40]`` takes about a millisecond.

The proof
---------
1. *One sign.*  ``R(0) = 0`` on both sides.  For ``acc = -a < 0``, ``R(-y) = -R~(y)`` with
   ``R~`` the mirrored mode (floor <-> ceil, ties up <-> ties down; toward or away from
   zero and ties to even are their own mirror), so every question is about ``a`` in an
   interval ``[A, B]``, ``A >= 1``.  Let ``b > s`` be the larger and the smaller of ``M``
   and ``M'``; the error's size is ``E(a) = R(a*b) - R(a*s) >= 0`` (``R`` is monotone).
2. *Few candidates.*  The rounding boundaries (integers for directed modes, half-integers
   for nearest ones) are one apart, and ``a*b - a*s = a*(b - s)``, so
   ``ceil(B*(b-s)) - 1 <= E(B)`` and ``E(a) <= floor(B*(b-s)) + 1``.  ``E(B)`` is computed,
   so at most two larger values remain, each decided by the question below.
3. *One question, answered exactly.*  Write ``R`` as ``floor(x + c)`` (floor, ties up) or
   ``ceil(x - c)`` (ceil, ties down).  Then ``E(a) >= T`` exactly when some integer ``y``
   lies between two lines in ``a``; for floor, ``a*s + T - 1 < y <= a*b`` (``y`` stands
   for ``R(a*b)``).  A strict bound becomes a closed one by ``1/D``, ``D`` the common
   denominator of the line's slope and offset (its values at integer ``a`` are multiples
   of ``1/D``).  So: *is there a lattice point between two lines over A <= a <= B?*
   :func:`_first_column` finds the first one by the continued-fraction recursion of the two
   slopes: take the lower slope's integer part out of ``y``; if an integer slope then lies
   between the slopes, the region is a widening wedge and the answer is closed form;
   else exchange ``a`` and ``y`` (slopes become their inverses), which makes the column
   range strictly smaller.  It takes about as many steps as the slopes' continued
   fractions have terms (tens), in integer arithmetic, never a step per ``a``.
4. *Ties to even* is not of that form (a tie goes up or down by the result's parity), but
   ``down <= RNE <= up`` (ties down, ties up), equal off ties, and ``a*u/v`` (lowest terms)
   is a tie only for even ``v`` and ``a = v/2 (mod v)``, where ``RNE(x) = 2*floor(x/2 +
   1/2)``.  So ``max E`` is the largest of four maxima, each of a lower bound of ``E``
   exact where it applies: ``down(a*b) - up(a*s)`` for every ``a``; the same with
   ``a*s`` a tie, with ``a*b`` a tie, with both.  On a progression ``a = a0 + j*P`` the
   lines are lines in ``j``, and the same question answers each.

So ``exact`` and ``max_error`` hold for the whole range, and ``max_error`` is the maximum,
reached at ``witness``, not a bound.  Accumulators on a rounding boundary need no special
enumeration: the closed and open ends of the lines decide them, so no range size turns the
answer into a bound.  A saturation after the rounding (REQUANTIZE into a SAT format) can
only make the difference smaller (clamping is monotone and never moves two integers
apart), so ``exact`` stays true and ``max_error`` stays an upper bound there.

Choosing ``K``
--------------
For ``bits = 1, 2, ... max_bits`` the candidates are ``M`` rounded down and up to ``bits``
significant bits (``M`` itself once it is dyadic with that many bits: exact with the
fewest bits); the nearer is tried first.  The first exact one is returned, and no narrower
``K`` is exact: for each ``acc`` the ``M'`` with ``R(acc*M') = R(acc*M)`` form an interval
around ``M``, so the exact ``M'`` do too, and if a ``K`` of ``b`` bits were exact, ``M``'s
``b``-bit neighbour on that side would be.  An even ``K`` is the same value with fewer bits,
already tried, and a candidate with ``|acc*(M'-M)| >= 2`` at the range's end is off by at
least one there, so neither is proven again.  If none is exact, the ``max_bits`` candidate
with the smaller ``max_error`` is returned (ties: the one nearer ``M``).
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor, gcd

from .fixed import Rounding

HALF = Fraction(1, 2)


@dataclass(frozen=True)
class Multiplier:
    """An integer rescale ``acc * ratio`` done as ``acc * mantissa * 2**-shift``."""

    ratio: Fraction  # M, the exact rescale
    value: Fraction  # M' = mantissa * 2**-shift
    mantissa: int  # K > 0, odd (the odd part of M')
    shift: int  # n; negative when M' is a multiple of a power of two above 1
    bits: int  # K.bit_length()
    exact: bool  # R(acc*M') == R(acc*M) for every integer acc in [lo, hi]
    max_error: int  # max |R(acc*M') - R(acc*M)| over the range, in output LSBs; 0 if exact
    witness: int | None  # an acc reaching max_error (None if exact)

    def __str__(self) -> str:
        text = f"{self.mantissa} * 2**{-self.shift} ({self.bits} bits) for {self.ratio}"
        if self.exact:
            return text + ": exact"
        return text + f": off by up to {self.max_error} LSB (acc = {self.witness})"


# --- rounding of one rational --------------------------------------------------------
# A mode, seen from positive x, is one of five shapes.  _MODES gives the shape for
# x > 0 and for x < 0 (where R(-y) = -R~(y) and R~ is the shape listed).
_FLOOR, _CEIL, _UP, _DOWN, _EVEN = "floor", "ceil", "ties up", "ties down", "ties to even"


def _modes() -> dict[int, tuple[str, str]]:
    modes = {
        Rounding.TRN: (_FLOOR, _CEIL),
        Rounding.TRN_ZERO: (_FLOOR, _FLOOR),
        Rounding.RND: (_UP, _DOWN),
        Rounding.RND_ZERO: (_DOWN, _DOWN),
        Rounding.RND_MIN_INF: (_DOWN, _UP),
        Rounding.RND_INF: (_UP, _UP),
        Rounding.RND_CONV: (_EVEN, _EVEN),
    }
    ceil_mode = getattr(Rounding, "CEIL", None)
    if ceil_mode is not None:
        modes[ceil_mode] = (_CEIL, _FLOOR)
    return {int(mode): shapes for mode, shapes in modes.items()}


_MODES = _modes()


def _shapes(rounding) -> tuple[str, str]:
    try:
        return _MODES[int(rounding)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"unknown rounding mode {rounding!r}") from None


def _round_shape(x: Fraction, shape: str) -> int:
    """``x = u/v`` (any sign) rounded to an integer by one shape, in integers (ties up is
    ``floor((2u + v) / 2v)``, ties down its mirror)."""
    u, v = x.numerator, x.denominator
    if shape == _FLOOR:
        return u // v
    if shape == _CEIL:
        return -(-u // v)
    if shape == _DOWN:
        return -((v - 2 * u) // (2 * v))
    up, rest = divmod(2 * u + v, 2 * v)
    if shape == _EVEN and rest == 0 and up % 2:
        return up - 1  # a tie, and ties up would give an odd result
    return up


def round_rational(x: Fraction, rounding) -> int:
    """``x`` rounded to an integer by a finegrain rounding mode (the spec of REQUANTIZE)."""
    positive, negative = _shapes(rounding)
    return _round_shape(x, positive) if x >= 0 else -_round_shape(-x, negative)


# --- the lattice question -------------------------------------------------------------
def _first_column(lo: tuple[int, int, int], hi: tuple[int, int, int], n: int) -> int | None:
    """Smallest integer ``t`` in ``[0, n]`` such that some integer ``y`` has
    ``(a1*t + b1)/d1 <= y <= (a2*t + b2)/d2``, with ``lo = (a1, b1, d1)``, ``hi = (a2, b2,
    d2)`` and ``d1, d2 > 0``; None if there is none.  Integers only: the exchange of ``t``
    and ``y`` just permutes the six numbers, and taking integer parts out keeps them small."""
    (a1, b1, d1), (a2, b2, d2) = lo, hi
    stack: list[tuple[int, int, int]] = []  # the upper line of each exchange
    t: int | None = None
    while n >= 0:
        if -(-b1 // d1) <= b2 // d2:
            t = 0
            break
        whole = a1 // d1  # take the lower slope's integer part out of y
        a1, a2 = a1 - whole * d1, a2 - whole * d2
        if a2 >= d2:  # an integer slope lies between the two: a widening wedge
            t = _wedge_column(Fraction(a1 - d1, d1), Fraction(b1, d1), Fraction(a2 - d2, d2), Fraction(b2, d2))
            t = t if t <= n else None
            break
        rows = -(-b1 // d1) - 1  # shift y so the lower offset is in (0, 1]: then y >= 1
        b1, b2 = b1 - rows * d1, b2 - rows * d2
        if a2 <= 0:
            break  # the upper line stays below its offset < 1 <= y
        top = (a2 * n + b2) // d2  # the highest row reachable by t <= n
        if top < 1:
            break
        if a1 == 0:
            t = -(-(d2 - b2) // a2)  # row 1 enters first
            break
        # row y = s + 1 holds the columns (d2*s + d2 - b2)/a2 <= t <= (d1*s + d1 - b1)/a1
        stack.append((a2, b2, d2))
        a1, b1, d1, a2, b2, d2, n = d2, d2 - b2, a2, d1, d1 - b1, a1, top - 1
    if t is None:
        return None
    while stack:
        a2, b2, d2 = stack.pop()
        t = -(-(d2 * t + d2 - b2) // a2)
    return t


def _wedge_column(lo_slope: Fraction, lo_off: Fraction, hi_slope: Fraction,
                  hi_off: Fraction) -> int:
    """``_first_column`` when ``lo_slope < 0 <= hi_slope`` and no row holds ``t = 0``: the
    interval only grows, and row ``y`` enters at ``max((y - hi_off)/hi_slope,
    (lo_off - y)/-lo_slope, 0)``, smallest at the crossing of the two terms, so the rows on
    either side of the crossing are the only ones to try."""
    def enters(y: int) -> Fraction | None:
        t = Fraction(0)
        if y > hi_off:
            if hi_slope == 0:
                return None
            t = max(t, (y - hi_off) / hi_slope)
        if y < lo_off:
            t = max(t, (lo_off - y) / -lo_slope)
        return t

    cross = (lo_off * hi_slope - lo_slope * hi_off) / (hi_slope - lo_slope)
    times = [t for y in (floor(cross), floor(cross) + 1) if (t := enters(y)) is not None]
    return ceil(min(times))


@dataclass(frozen=True)
class _Term:
    """``coef * shape(a*slope + offset)`` with shape floor or ceil and coef 1 or 2."""

    slope: Fraction
    offset: Fraction
    ceil: bool = False
    coef: int = 1

    def on(self, start: int, step: int) -> "_Term":
        """The same term in ``j`` where ``a = start + j*step``."""
        return _Term(self.slope * step, self.slope * start + self.offset, self.ceil, self.coef)


def _shape_term(shape: str, ratio: Fraction) -> _Term:
    if shape == _FLOOR:
        return _Term(ratio, Fraction(0))
    if shape == _CEIL:
        return _Term(ratio, Fraction(0), ceil=True)
    if shape == _UP:
        return _Term(ratio, HALF)
    assert shape == _DOWN
    return _Term(ratio, -HALF, ceil=True)


def _tie_term(ratio: Fraction) -> _Term:
    """Ties to even where ``a*ratio`` is a tie: ``2*floor(x/2 + 1/2)``, the even neighbour."""
    return _Term(ratio / 2, HALF, coef=2)


def _line(slope: Fraction, offset: Fraction, strict: int) -> tuple[int, int, int]:
    """``slope*t + offset`` as ``(a*t + b)/d``; ``strict`` +1 makes ``y > line`` the closed
    ``y >= line + 1/d``, -1 makes ``y < line`` the closed ``y <= line - 1/d``: the line's
    values at integer ``t`` are multiples of ``1/d``, and so are the integers."""
    d = slope.denominator * offset.denominator // gcd(slope.denominator, offset.denominator)
    return slope.numerator * (d // slope.denominator), offset.numerator * (d // offset.denominator) + strict, d


def _reaches(big: _Term, small: _Term, at_least: int, count: int) -> int | None:
    """Smallest ``j`` in ``[0, count)`` with ``big(j) - small(j) >= at_least``, or None."""
    if count <= 0:
        return None
    if big.coef == small.coef == 2:
        big, small = _Term(big.slope, big.offset, big.ceil), _Term(small.slope, small.offset, small.ceil)
        at_least = -(-at_least // 2)
    t = at_least
    if small.coef == 1:
        # y <= big's rounded value, big.coef*y - t >= small's rounded value
        c = big.coef
        upper = (big.slope, big.offset + (1 if big.ceil else 0), big.ceil)
        if small.ceil:
            lower = (small.slope / c, (small.offset + t) / c, False)
        else:
            lower = (small.slope / c, (small.offset + t - 1) / c, True)
    else:
        # m >= small's floor/ceil, big's rounded value >= 2m + t
        lower = (small.slope, small.offset - (0 if small.ceil else 1), not small.ceil)
        if big.ceil:
            upper = (big.slope / 2, (big.offset - t + 1) / 2, True)
        else:
            upper = (big.slope / 2, (big.offset - t) / 2, False)
    return _first_column(_line(lower[0], lower[1], +lower[2]), _line(upper[0], upper[1], -upper[2]), count - 1)


def _ties(ratio: Fraction) -> tuple[int, int] | None:
    """The progression ``(start, step)`` of the ``a > 0`` where ``a*ratio`` is a tie
    (an odd multiple of 1/2), or None: ``v | 2a`` with ``2a*u/v`` odd needs ``v`` even and
    ``a = v/2 (mod v)``."""
    v = ratio.denominator
    return (v // 2, v) if v % 2 == 0 else None


def _both(p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
    """The intersection of two progressions (Chinese remainders), or None."""
    if p is None or q is None:
        return None
    (r1, m1), (r2, m2) = p, q
    g = gcd(m1, m2)
    if (r2 - r1) % g:
        return None
    lcm = m1 // g * m2
    k = ((r2 - r1) // g * pow(m1 // g, -1, m2 // g)) % (m2 // g) if m2 // g > 1 else 0
    return ((r1 + k * m1) % lcm, lcm)


def _cases(shape: str, big: Fraction, small: Fraction):
    """(big term, small term, progression (start, step) of the a it covers): lower bounds of
    ``R(a*big) - R(a*small)``, each exact where it applies, that together cover every a."""
    if shape != _EVEN:
        return [(_shape_term(shape, big), _shape_term(shape, small), (0, 1))]
    down, up = _shape_term(_DOWN, big), _shape_term(_UP, small)
    big_ties, small_ties = _ties(big), _ties(small)
    cases = [(down, up, (0, 1))]
    if small_ties:
        cases.append((down, _tie_term(small), small_ties))
    if big_ties:
        cases.append((_tie_term(big), up, big_ties))
    if both := _both(big_ties, small_ties):
        cases.append((_tie_term(big), _tie_term(small), both))
    return cases


def _part_error(shape: str, big: Fraction, small: Fraction, first: int, last: int,
                limit: int | None) -> tuple[int, int | None]:
    """Max of ``R(a*big) - R(a*small)`` (``big > small > 0``, so it is >= 0) over
    ``a`` in ``[first, last]`` (``first >= 1``) and an ``a`` reaching it.  With ``limit``,
    stop as soon as the error is known to exceed it."""
    at_last = _round_shape(last * big, shape) - _round_shape(last * small, shape)
    if limit is not None and at_last > limit:
        return at_last, last
    cases = _cases(shape, big, small)
    most = floor(last * (big - small)) + 1
    # E >= limit + 1 anywhere is all a limit asks; else try the values above E(last)
    targets = [limit + 1] if limit is not None else range(most, at_last, -1)
    for target in targets:
        if target > most:
            break
        for big_term, small_term, (start, step) in cases:
            j0 = -((start - first) // step)  # ceil((first - start)/step)
            j1 = (last - start) // step
            j = _reaches(big_term.on(start + j0 * step, step), small_term.on(start + j0 * step, step),
                         target, j1 - j0 + 1)
            if j is not None:
                return target, start + (j0 + j) * step
    return at_last, (last if at_last else None)


def _positive(x) -> Fraction:
    """An exact positive rational from an int, Fraction or float (numpy's too, exactly)."""
    try:
        r = Fraction(x) if isinstance(x, (int, Fraction, float)) else Fraction(*x.as_integer_ratio())
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise ValueError(f"a rescale ratio must be a finite number, got {x!r}") from None
    if r <= 0:
        raise ValueError(f"a rescale ratio must be positive, got {x!r}")
    return r


def _range(lo, hi) -> tuple[int, int]:
    lo, hi = operator.index(lo), operator.index(hi)  # Python ints: products pass 64 bits
    if lo > hi:
        raise ValueError(f"empty accumulator range [{lo}, {hi}]")
    return lo, hi


def multiplier_error(ratio, value, lo: int, hi: int, rounding, *,
                     limit: int | None = None) -> tuple[int, int | None]:
    """The largest ``|R(acc*value) - R(acc*ratio)|`` over every integer ``acc`` in
    ``[lo, hi]`` and an ``acc`` reaching it (None when it is 0), proven as the module
    docstring says.  ``limit`` (used by :func:`choose_multiplier`): stop early once the
    error is known to exceed it; the result is then only a lower bound past ``limit``."""
    ratio, value = _positive(ratio), _positive(value)
    lo, hi = _range(lo, hi)
    if value == ratio:
        return 0, None
    big, small = max(ratio, value), min(ratio, value)
    positive, negative = _shapes(rounding)
    worst, witness = 0, None
    for shape, first, last, sign in ((positive, max(lo, 1), hi, 1), (negative, max(-hi, 1), -lo, -1)):
        if first > last:
            continue
        error, a = _part_error(shape, big, small, first, last, limit)
        if error > worst:
            worst, witness = error, sign * a
            if limit is not None and worst > limit:
                break
    return worst, witness


def _make(ratio: Fraction, mantissa: int, shift: int, lo: int, hi: int, modes: tuple,
          limit: int | None) -> Multiplier:
    """The multiplier ``mantissa * 2**-shift`` with its error: the largest under any of the
    rounding ``modes`` (``limit``: as in :func:`multiplier_error`)."""
    while mantissa % 2 == 0:
        mantissa, shift = mantissa // 2, shift - 1
    value = Fraction(mantissa) / (1 << shift) if shift >= 0 else Fraction(mantissa << -shift)
    error, witness = 0, None
    for mode in modes:
        e, w = multiplier_error(ratio, value, lo, hi, mode, limit=limit)
        if e > error:
            error, witness = e, w
        if limit is not None and error > limit:
            break
    return Multiplier(ratio, value, mantissa, shift, mantissa.bit_length(), error == 0, error, witness)


def choose_multiplier(ratio, lo: int, hi: int, rounding, max_bits: int = 32) -> Multiplier:
    """The narrowest multiplier ``K * 2**-n`` that rescales every integer accumulator in
    ``[lo, hi]`` by ``ratio`` exactly under ``rounding``; if no ``K`` of at most
    ``max_bits`` bits is exact, the ``max_bits`` one with the smallest proven error."""
    return _choose(ratio, lo, hi, (rounding,), max_bits)


def _choose(ratio, lo: int, hi: int, modes: tuple, max_bits: int) -> Multiplier:
    """:func:`choose_multiplier` exact under every one of ``modes`` at once (its error the
    largest of theirs)."""
    ratio = _positive(ratio)
    lo, hi = _range(lo, hi)
    if max_bits < 1:
        raise ValueError(f"max_bits must be at least 1, got {max_bits}")
    for mode in modes:
        _shapes(mode)
    # e = floor(log2(ratio)), so ratio * 2**(bits - 1 - e) lies in [2**(bits-1), 2**bits)
    e = ratio.numerator.bit_length() - ratio.denominator.bit_length()
    if ratio < Fraction(2) ** e:
        e -= 1
    reach = max(-lo, hi)
    for bits in range(1, max_bits + 1):
        shift = bits - 1 - e
        # ratio * 2**shift = num/den, in [2**(bits-1), 2**bits)
        num, den = (ratio.numerator << shift, ratio.denominator) if shift >= 0 else \
            (ratio.numerator, ratio.denominator << -shift)
        below, rest = divmod(num, den)
        if rest == 0:
            return _make(ratio, below, shift, lo, hi, modes, limit=0)
        final = bits == max_bits
        made = []
        # nearer first; |K - num/den| = distance/den, so |M' - M| = distance / (den * 2**shift)
        for k, distance in sorted(((below, rest), (below + 1, den - rest)), key=lambda c: c[1]):
            if not final:
                if k % 2 == 0 and bits > 1:
                    continue  # the same value with fewer bits was tried
                if reach * distance << max(-shift, 0) >= 2 * den << max(shift, 0):
                    continue  # |acc * (M' - M)| >= 2 at the range's end: at least one LSB off
            made.append(_make(ratio, k, shift, lo, hi, modes, limit=None if final else 0))
            if made[-1].exact:
                return made[-1]
        if final:
            return min(made, key=lambda m: (m.max_error, abs(m.value - ratio)))
    raise AssertionError("unreachable")


# --- an integer added before the rounding ---------------------------------------------
# R(acc*M + z) with z an integer (a zero point added in output codes): the modes that are
# floor or ceil of x plus a constant (toward -inf and +inf, ties up and ties down) move by z
# with their input, so R(acc*M' + z) - R(acc*M + z) is the same difference as without z.
# The others are bracketed by two such modes; a multiplier exact under both puts acc*M' and
# acc*M on the same rounding boundary or between the same two, where each mode of the
# bracket, after any integer shift, rounds them alike.
_SHIFT_INVARIANT = frozenset(int(m) for m in (Rounding.TRN, Rounding.CEIL, Rounding.RND, Rounding.RND_MIN_INF))
_BRACKETS = {int(Rounding.TRN_ZERO): (Rounding.TRN, Rounding.CEIL),
             int(Rounding.RND_ZERO): (Rounding.RND, Rounding.RND_MIN_INF),
             int(Rounding.RND_INF): (Rounding.RND, Rounding.RND_MIN_INF),
             int(Rounding.RND_CONV): (Rounding.RND, Rounding.RND_MIN_INF)}


def choose_offset_multiplier(ratio, lo: int, hi: int, rounding, max_bits: int = 32) -> Multiplier:
    """:func:`choose_multiplier` for ``R(acc*M + z)``, ``z`` any integer: the narrowest ``K``
    exact under ``rounding`` (if it moves with ``z``) or under both modes of its bracket (see
    above); if none of ``max_bits`` bits is, the ``max_bits`` one with the smaller error, whose
    ``max_error`` is then the larger of the two modes' plus one (a tie may go either way)."""
    if int(rounding) in _SHIFT_INVARIANT:
        return choose_multiplier(ratio, lo, hi, rounding, max_bits)
    m = _choose(ratio, lo, hi, _BRACKETS[int(rounding)], max_bits)
    return m if m.exact else dataclasses.replace(m, max_error=m.max_error + 1)
