"""Weight quantizers beyond fixed point: `Pow2Type` (``pow2<EMIN,EMAX>``), the format
strings a constant may take (`parse_weight_format`), and the rounding rules that map floats
into those sets and into codebooks (`round_significant`, `round_pow2`, `nearest_centre`).

They give constants only: the plan (`compiler.plan`), the pass that applies it
(`compiler.passes.apply_plan`) and the training quantizers (`compiler.train`) use them, and
each value they give is an exact fixed-point number, so the IR, the emulator and the
backends never see them.  Separate from `compiler.fixed`, the formats every computed value
has, for that reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .fixed import FixedType, FormatError, _quoted, _small_int
from .mantissa import _validate_floats

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
