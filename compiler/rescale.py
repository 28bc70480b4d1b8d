"""Integer rescale multipliers, chosen with a proof of what they cost.

A quantized model rescales an integer accumulator ``acc`` by an exact positive rational
``M = p/q`` (say ``s_x * s_w / s_out``) and rounds: ``code = R(acc * M)``.  Hardware
multiplies by ``M' = K * 2**-n`` instead and rounds that product with the same ``R``
(finegrain's MUL + REQUANTIZE).  :func:`choose_multiplier` picks the narrowest ``K``
for which ``R(acc * M') == R(acc * M)`` on every integer ``acc`` in ``[lo, hi]``, and
:func:`multiplier_error` proves it, or finds the largest difference and an ``acc`` that
reaches it.  Nothing is sampled: ranges of 2**40 and more take microseconds to
milliseconds.

The proof
---------
1. *Reduce to one sign.*  ``R(0) = 0`` on both sides.  For ``acc = -a < 0``,
   ``R(-y) = -R~(y)`` with ``R~`` the mirrored mode (floor <-> ceil, ties up <-> ties
   down; toward/away from zero and ties to even are their own mirror), so every question is
   about ``a`` in an interval ``[A, B]`` with ``A >= 1`` and ``x = a*M > 0``.
2. *Sign and size of the error.*  With ``d = M' - M`` and ``R`` monotone, the difference
   ``E(a) = R(a*M') - R(a*M)`` has the sign of ``d`` on the whole part, and, because the
   rounding boundaries (integers for directed modes, half-integers for nearest modes) are
   one apart, ``|E(a)| <= floor(a*|d|) + 1 <= floor(B*|d|) + 1``.  ``E(B)``, computed
   exactly, is a lower bound with a witness.  So the maximum is one of at most two or three
   values, and each candidate ``T`` is decided by the question below.
3. *One question, answered exactly.*  Write ``R`` as ``floor(x + c)`` (floor, ties up) or
   ``ceil(x - c)`` (ceil, ties down).  Then ``E(a) >= T`` holds exactly when some integer
   ``y`` lies between two lines in ``a``, for example for floor
   ``a*M + T - 1 < y <= a*M'`` (``y`` stands for the larger rounded value).  A strict
   bound becomes a closed one by ``1/D``, ``D`` the common denominator of the line's slope
   and offset (its values at integer ``a`` are multiples of ``1/D``).  So the question is:
   *does the region between two lines over ``A <= a <= B`` contain a lattice point?*
   :func:`_first_column` answers it and returns the smallest such ``a``, by the continued
   fraction recursion of the two slopes: take the integer part of the lower slope out of
   ``y``; if an integer slope then lies between the two, the region is a widening wedge
   and the answer is closed form; otherwise exchange the roles of ``a`` and ``y`` (slopes
   become ``1/slope``).  The column range shrinks at every exchange, so it ends, in about
   as many steps as the slopes' continued fractions have terms (tens, never the size of
   the range).
4. *Ties to even* is not of the form above: it rounds a tie up or down by the parity of
   the result.  But ``ties down <= RNE <= ties up`` everywhere, with equality off ties, and
   ties of ``a*M`` (``M = u/v``) happen only on the progression ``a = v/2 (mod v)`` for
   even ``v`` (never for odd ``v``), where ``RNE(x) = 2*floor(x/2 + 1/2)`` exactly.  So
   ``max E`` is the largest of four maxima, each of a lower bound of ``E`` that is exact
   where it applies: ``down(a*M') - up(a*M)`` over all ``a``; with ``a*M`` a tie;
   with ``a*M'`` a tie; with both.  On a progression ``a = a0 + j*P`` the lines are again
   lines in ``j``, and the same question answers each.

So ``exact`` and ``max_error`` are proven over the whole range, and ``max_error`` is the
maximum (``witness`` reaches it), not a bound.

Choosing ``K``: for ``bits = 1, 2, ... max_bits`` the candidates are ``M`` rounded down and
up to ``bits`` significant bits (``M`` itself once it is dyadic with that many bits, which
is then exact with the fewest bits); the nearer is tried first, and an even ``K`` is
skipped, since it was tried with fewer bits.  The first exact candidate is returned: no
narrower ``K`` is exact.  If none is, the ``max_bits`` candidate with the smaller proven
``max_error`` is returned (ties: the one nearer ``M``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor, gcd

from compiler.fixed import Rounding

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
    """``x`` (any sign) rounded to an integer by one shape."""
    if shape == _FLOOR:
        return floor(x)
    if shape == _CEIL:
        return ceil(x)
    if shape == _UP:
        return floor(x + HALF)
    if shape == _DOWN:
        return ceil(x - HALF)
    return round(x)  # Fraction.__round__ rounds ties to even


def round_rational(x: Fraction, rounding) -> int:
    """``x`` rounded to an integer by a finegrain rounding mode (the spec of REQUANTIZE)."""
    positive, negative = _shapes(rounding)
    return _round_shape(x, positive) if x >= 0 else -_round_shape(-x, negative)


# --- the lattice question -------------------------------------------------------------
def _first_column(lo_slope: Fraction, lo_off: Fraction, hi_slope: Fraction, hi_off: Fraction,
                  n: int) -> int | None:
    """Smallest integer ``t`` in ``[0, n]`` such that some integer ``y`` has
    ``lo_slope*t + lo_off <= y <= hi_slope*t + hi_off``; None if there is none."""
    # Each pass either answers or exchanges t and y, which makes n strictly smaller; the
    # columns found on the way back are mapped through the stack of exchanges.
    stack: list[tuple[Fraction, Fraction]] = []  # (hi_slope, hi_off) of each exchange
    t: int | None = None
    while n >= 0:
        if ceil(lo_off) <= floor(hi_off):
            t = 0
            break
        whole = floor(lo_slope)
        lo_slope, hi_slope = lo_slope - whole, hi_slope - whole
        if hi_slope >= 1:
            t = _wedge_column(lo_slope - 1, lo_off, hi_slope - 1, hi_off)
            t = t if t <= n else None
            break
        shift = ceil(lo_off) - 1  # now lo_off in (0, 1], hi_off < 1: y >= 1
        lo_off, hi_off = lo_off - shift, hi_off - shift
        if hi_slope <= 0:
            break  # the rows stay below hi_off < 1 <= y
        top = floor(hi_slope * n + hi_off)
        if top < 1:
            break
        if lo_slope == 0:
            t = ceil((1 - hi_off) / hi_slope)
            break
        # columns t of row y = s + 1: (s + 1 - hi_off)/hi_slope <= t <= (s + 1 - lo_off)/lo_slope
        stack.append((hi_slope, hi_off))
        lo_slope, lo_off, hi_slope, hi_off, n = (
            1 / hi_slope, (1 - hi_off) / hi_slope, 1 / lo_slope, (1 - lo_off) / lo_slope, top - 1)
    else:
        t = None
    if t is None:
        return None
    while stack:
        hi_slope, hi_off = stack.pop()
        t = ceil((t + 1 - hi_off) / hi_slope)
    return t


def _wedge_column(lo_slope: Fraction, lo_off: Fraction, hi_slope: Fraction,
                  hi_off: Fraction) -> int:
    """``_first_column`` when ``lo_slope < 0 <= hi_slope``: the interval only grows, and
    a row ``y`` enters at ``t = max((y - hi_off)/hi_slope, (lo_off - y)/-lo_slope, 0)``,
    smallest at the crossing of the two terms, so the floor and ceiling of the crossing
    are the only rows to try."""
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

    def value(self, a: int) -> int:
        x = a * self.slope + self.offset
        return self.coef * (ceil(x) if self.ceil else floor(x))


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


def _closed(slope: Fraction, offset: Fraction, strict: bool, sign: int) -> tuple[Fraction, Fraction]:
    """A bound ``y > line`` (sign +1) or ``y < line`` (sign -1) as a closed one."""
    if not strict:
        return slope, offset
    den = slope.denominator * offset.denominator // gcd(slope.denominator, offset.denominator)
    return slope, offset + Fraction(sign, den)


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
    lo_slope, lo_off = _closed(lower[0], lower[1], lower[2], +1)
    hi_slope, hi_off = _closed(upper[0], upper[1], upper[2], -1)
    return _first_column(lo_slope, lo_off, hi_slope, hi_off, count - 1)


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
    """(big term, small term, progression or None for every a): lower bounds of
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


def multiplier_error(ratio, value, lo: int, hi: int, rounding, *,
                     limit: int | None = None) -> tuple[int, int | None]:
    """The largest ``|R(acc*value) - R(acc*ratio)|`` over every integer ``acc`` in
    ``[lo, hi]`` and an ``acc`` reaching it (None when it is 0), proven as the module
    docstring says.  ``limit`` (used by :func:`choose_multiplier`): stop early once the
    error is known to exceed it; the result is then only a lower bound past ``limit``."""
    ratio, value = Fraction(ratio), Fraction(value)
    if ratio <= 0 or value <= 0:
        raise ValueError(f"rescale ratios must be positive, got {ratio} and {value}")
    if lo > hi:
        raise ValueError(f"empty accumulator range [{lo}, {hi}]")
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


def _make(ratio: Fraction, mantissa: int, shift: int, lo: int, hi: int, rounding,
          limit: int | None) -> Multiplier:
    while mantissa % 2 == 0:
        mantissa, shift = mantissa // 2, shift - 1
    value = Fraction(mantissa) / (1 << shift) if shift >= 0 else Fraction(mantissa << -shift)
    error, witness = multiplier_error(ratio, value, lo, hi, rounding, limit=limit)
    return Multiplier(ratio, value, mantissa, shift, mantissa.bit_length(), error == 0, error, witness)


def choose_multiplier(ratio, lo: int, hi: int, rounding, max_bits: int = 32) -> Multiplier:
    """The narrowest multiplier ``K * 2**-n`` that rescales every integer accumulator in
    ``[lo, hi]`` by ``ratio`` exactly under ``rounding``; if no ``K`` of at most
    ``max_bits`` bits is exact, the ``max_bits`` one with the smallest proven error."""
    ratio = Fraction(ratio)
    if ratio <= 0:
        raise ValueError(f"a rescale ratio must be positive, got {ratio}")
    if lo > hi:
        raise ValueError(f"empty accumulator range [{lo}, {hi}]")
    if max_bits < 1:
        raise ValueError(f"max_bits must be at least 1, got {max_bits}")
    _shapes(rounding)
    # e = floor(log2(ratio)), so ratio * 2**(bits - 1 - e) lies in [2**(bits-1), 2**bits)
    e = ratio.numerator.bit_length() - ratio.denominator.bit_length()
    if ratio < Fraction(2) ** e:
        e -= 1
    for bits in range(1, max_bits + 1):
        shift = bits - 1 - e
        scaled = ratio * Fraction(2) ** shift
        below, above = floor(scaled), ceil(scaled)
        if below == above:
            return _make(ratio, below, shift, lo, hi, rounding, limit=0)
        final = bits == max_bits
        candidates = sorted(
            (k for k in (below, above) if final or (k % 2 == 1 or bits == 1)),
            key=lambda k: abs(k - scaled))
        made = []
        for k in candidates:
            made.append(_make(ratio, k, shift, lo, hi, rounding, limit=None if final else 0))
            if made[-1].exact:
                return made[-1]
        if final:
            return min(made, key=lambda m: (m.max_error, abs(m.value - ratio)))
    raise AssertionError("unreachable")
