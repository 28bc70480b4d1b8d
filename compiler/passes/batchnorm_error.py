"""How far a lowered BatchNormalization is from the exact one (for passes/lower_quant.py).

After a quantized layer a BatchNorm ``y = a * x + c`` with ``a = scale / sqrt(var + eps)`` and
``c = bias - mean * a`` is lowered in float64: the output's residual is ``r = r_x * |a|`` and
the shift ``c`` is held in its units.  The exact model's ``sqrt`` is a real root, so the
float64 ``a``, ``r`` and ``c`` are each a rounding away from it (a = 1/3 from var = 9 is not a
float64 either).  In IR units (the output's residual ``r``) the lowered BatchNorm computes
``sign(a) * x_ir + c / r``, the exact model ``x_ir * (r_x |a| / r) + c_exact / r``, so per
channel the lowered value is off by at most

    factor * |x_ir| + shift          factor = |r_x |a| / r - 1|,  shift = |c - c_exact| / r

on top of the shift's own rounding to the accumulator grid (recorded by ``_in_units``).
Both are computed here in exact rationals, with ``1 / sqrt(var + eps)`` enclosed between two
rationals `ROOT_BITS` significant bits apart (exact when the root is rational), and rounded
up to float64: 0 where the float64 lowering is exact, about 2**-53 relative otherwise.
quant_report.py adds them to the bound it carries to the outputs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

ROOT_BITS = 128


def inverse_sqrt_bounds(value: Fraction) -> tuple[Fraction, Fraction]:
    """``lo <= 1 / sqrt(value) <= hi`` (``value > 0``), equal when the root is rational, else
    2**-m apart with at least `ROOT_BITS` significant bits."""
    p, q = value.numerator, value.denominator
    rp, rq = math.isqrt(p), math.isqrt(q)
    if rp * rp == p and rq * rq == q:
        return Fraction(rq, rp), Fraction(rq, rp)
    m = max(0, ROOT_BITS - (q.bit_length() - p.bit_length()) // 2 + 2)
    root = math.isqrt((q << (2 * m)) // p)  # floor(sqrt(q / p) * 2**m): sqrt(q/p) lies in [root, root + 1) / 2**m
    return Fraction(root, 1 << m), Fraction(root + 1, 1 << m)


def _up(x: Fraction) -> float:
    """The smallest float64 >= ``x``."""
    f = float(x)
    return f if Fraction(f) >= x else math.nextafter(f, math.inf)


def batchnorm_errors(r_x: np.ndarray, scale, bias, mean, var, eps: float, r: np.ndarray,
                     c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, ``(factor, shift)`` of the module docstring: ``r_x`` the input's residual,
    ``scale, bias, mean, var`` the BatchNorm's float32 parameters, ``r`` and ``c`` the float64
    residual and shift the lowering uses (a channel with ``a = 0`` keeps ``r = r_x``)."""
    factor, shift = np.zeros(len(r)), np.zeros(len(r))
    for k in range(len(r)):
        s, b, m = Fraction(float(scale[k])), Fraction(float(bias[k])), Fraction(float(mean[k]))
        lo, hi = inverse_sqrt_bounds(Fraction(float(var[k])) + Fraction(eps))
        rk, ck, rx = Fraction(float(r[k])), Fraction(float(c[k])), Fraction(float(r_x[k]))
        ends = (s * lo, s * hi)  # the exact a lies between (both ends have its sign)
        factor[k] = _up(max(abs(rx * abs(a) / rk - (1 if a else 0)) for a in ends))
        shift[k] = _up(max(abs(ck - (b - m * a)) for a in ends) / rk)
    return factor, shift
