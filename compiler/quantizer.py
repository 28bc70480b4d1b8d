"""Quantizers read from quantized models, and their exact meaning.

Every quantizer a model can hold (QONNX ``Quant``, ``BipolarQuant`` and ``Trunc``, a QDQ pair
``QuantizeLinear -> DequantizeLinear``, a lone ``DequantizeLinear`` of integer data or a lone
``QuantizeLinear`` producing it) is one :class:`Quantizer`::

    y = out_scale * (clamp(R(x / in_scale + in_zero), qmin, qmax) - out_zero)

(QONNX's ``Quant`` adds the zero point before rounding; ONNX's ``QuantizeLinear`` after it,
``clamp(R(x / in_scale) + in_zero)``, which ``zero_before_rounding=False`` selects: the two
differ at ties for an odd zero point with ties to even, and for the modes symmetric about 0)
with ``R`` a rounding mode of :class:`compiler.fixed.Rounding` and ``qmin``/``qmax`` the integer
range of ``bits`` (signed or not, ``narrow`` dropping the most negative code, or for unsigned
the largest, as qonnx's ``min_int``/``max_int``).  A *bipolar* quantizer (QONNX ``BipolarQuant``
and a 1-bit signed ``Quant``) replaces ``clamp(R(v))`` by ``+1 if v >= 0 else -1``.
``bits = None`` means no clamp (the first rounding of ``Trunc``).

Clamping before rounding (qonnx) or after it (ONNX QuantizeLinear) gives the same result,
because the bounds are integers and every rounding mode is monotone.  Scales and zero points
are float64 arrays broadcastable to the tensor's IR shape (no batch axis).  A scale read from a
model is a float32 or float64, so it is an exact dyadic rational, and so is ``x / in_scale``
when computed exactly: :meth:`Quantizer.apply` divides in float64, which decides every rounding
exactly for float32 ``x`` and scale (a float32 quotient that is not a tie lies more than one
float64 ulp from one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .fixed import Rounding

# QONNX / Brevitas rounding_mode strings -> ap_fixed-style modes (compiler/fixed.py).
# UP (away from zero) has no counterpart.
QONNX_ROUNDING = {
    "ROUND": Rounding.RND_CONV, "HALF_EVEN": Rounding.RND_CONV,
    "FLOOR": Rounding.TRN,
    "DOWN": Rounding.TRN_ZERO, "ROUND_TO_ZERO": Rounding.TRN_ZERO,
    "HALF_UP": Rounding.RND_INF, "HALF_DOWN": Rounding.RND_ZERO,
}
if hasattr(Rounding, "CEIL"):
    QONNX_ROUNDING["CEIL"] = Rounding.CEIL


class QuantizerError(ValueError):
    """The quantizer's parameters are invalid; the message says which and why."""


def integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """(qmin, qmax) of a ``bits``-wide integer, as qonnx's min_int/max_int."""
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - (2 if narrow else 1)


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Quantizer:
    """``y = out_scale * (clamp(R(x / in_scale + in_zero), qmin, qmax) - out_zero)``.

    ``source`` names what it was read from (``"Quant"``, ``"QuantizeLinear+DequantizeLinear"``,
    ...) for messages and reports.
    """

    in_scale: np.ndarray
    in_zero: np.ndarray
    out_scale: np.ndarray
    out_zero: np.ndarray
    bits: int | None
    signed: bool
    narrow: bool = False
    rounding: Rounding = Rounding.RND_CONV
    bipolar: bool = False
    source: str = "Quant"
    notes: tuple[str, ...] = field(default=())
    zero_before_rounding: bool = True  # QONNX Quant; False: QuantizeLinear (round, then add)

    def __post_init__(self):
        for name in ("in_scale", "in_zero", "out_scale", "out_zero"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        for name in ("in_scale", "out_scale"):
            s = getattr(self, name)
            if not np.all(np.isfinite(s)) or np.any(s <= 0):
                bad = s[~(np.isfinite(s) & (s > 0))].ravel()[0].item()
                raise QuantizerError(f"{name.replace('_', ' ')} {bad!r} is not a positive finite number")
        for name in ("in_zero", "out_zero"):
            z = getattr(self, name)
            if not np.all(np.isfinite(z)) or np.any(z != np.round(z)):
                bad = z[~(np.isfinite(z) & (z == np.round(z)))].ravel()[0].item()
                raise QuantizerError(f"zero point {bad!r} is not an integer")
        if self.bits is not None:
            if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits < 1:
                raise QuantizerError(f"bit width {self.bits!r} is not a positive integer")
            if self.bipolar and self.bits != 1:
                raise QuantizerError("a bipolar quantizer has 1 bit")
            if not self.bipolar:
                lo, hi = self.range
                if lo > hi:
                    raise QuantizerError(f"{self.bits}-bit {'signed' if self.signed else 'unsigned'} "
                                         f"narrow range is empty")
                if np.any(self.in_zero < lo) or np.any(self.in_zero > hi):
                    raise QuantizerError(f"zero point {self.in_zero.ravel().tolist()[:4]} lies outside the "
                                         f"{self.bits}-bit range {lo}..{hi}")

    # --- facts --------------------------------------------------------------------------
    @property
    def range(self) -> tuple[int, int]:
        """(qmin, qmax) of the clamp; (-1, 1) for bipolar."""
        if self.bipolar:
            return -1, 1
        if self.bits is None:
            raise QuantizerError("this quantizer does not clamp")
        return integer_range(self.bits, self.signed, self.narrow)

    def broadcast_shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(self.in_scale.shape, self.in_zero.shape, self.out_scale.shape,
                                   self.out_zero.shape)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise QuantizerError unless the parameters broadcast to ``shape`` (without changing it)."""
        try:
            result = np.broadcast_shapes(self.broadcast_shape(), tuple(shape))
        except ValueError:
            result = None
        if result != tuple(shape):
            raise QuantizerError(f"scale/zero point of shape {list(self.broadcast_shape())} do not broadcast "
                                 f"to the tensor's shape {list(shape)} (without batch)")

    @property
    def power_of_two(self) -> bool:
        """Whether every scale is a power of two."""
        return bool(np.all(is_power_of_two(self.in_scale)) and np.all(is_power_of_two(self.out_scale)))

    def transpose(self, axes) -> "Quantizer":
        """The same quantizer for the tensor transposed by ``axes`` (parameters of full rank)."""
        def t(a):
            a = np.asarray(a)
            if a.ndim == 0:
                return a
            return np.transpose(a.reshape((1,) * (len(axes) - a.ndim) + a.shape), axes)
        return dataclasses.replace(self, in_scale=t(self.in_scale), in_zero=t(self.in_zero),
                                   out_scale=t(self.out_scale), out_zero=t(self.out_zero))

    def reshape_parameters(self, shape) -> "Quantizer":
        """The same quantizer with every parameter broadcast to ``shape`` and reshaped."""
        def r(a):
            return np.broadcast_to(a, self.broadcast_shape()).reshape(shape) if np.asarray(a).ndim else a
        return dataclasses.replace(self, in_scale=r(self.in_scale), in_zero=r(self.in_zero),
                                   out_scale=r(self.out_scale), out_zero=r(self.out_zero))

    # --- meaning ------------------------------------------------------------------------
    def codes(self, x: np.ndarray) -> np.ndarray:
        """The clamped integer codes ``clamp(R(x / in_scale + in_zero))`` as float64."""
        v = np.asarray(x, dtype=np.float64) / self.in_scale
        if self.bipolar:
            return np.where(v + self.in_zero >= 0, 1.0, -1.0)
        if self.zero_before_rounding:
            q = round_to_integer(v + self.in_zero, self.rounding)
        else:
            q = round_to_integer(v, self.rounding) + self.in_zero
        if self.bits is None:
            return q
        lo, hi = self.range
        return np.clip(q, lo, hi)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The quantizer's output for float ``x`` (float64; exact for float32 data and scales
        whenever the result is representable)."""
        return self.out_scale * (self.codes(x) - self.out_zero)

    def __str__(self) -> str:
        def show(a):
            a = np.asarray(a)
            return f"{float(a.ravel()[0]):g}" if a.size == 1 else f"<{a.size} values>"
        kind = "bipolar" if self.bipolar else (
            f"{'int' if self.signed else 'uint'}{self.bits}{' narrow' if self.narrow else ''}"
            if self.bits is not None else "unclamped")
        text = f"{kind} scale {show(self.in_scale)}"
        if np.any(self.in_zero):
            text += f" zero {show(self.in_zero)}"
        if not (np.array_equal(self.in_scale, self.out_scale) and np.array_equal(self.in_zero, self.out_zero)):
            text += f" -> scale {show(self.out_scale)} zero {show(self.out_zero)}"
        return f"{text} {self.rounding.name}"


def round_to_integer(v: np.ndarray, rounding: Rounding) -> np.ndarray:
    """``v`` rounded to an integer by ``rounding`` (float64 in, float64 out, exact)."""
    v = np.asarray(v, dtype=np.float64)
    floor = np.floor(v)
    frac = v - floor  # exact: 0 <= frac < 1
    if rounding == Rounding.TRN:
        return floor
    if rounding == Rounding.TRN_ZERO:
        return np.trunc(v)
    if hasattr(Rounding, "CEIL") and rounding == Rounding.CEIL:
        return np.ceil(v)
    up = floor + 1
    tie = frac == 0.5
    nearest = np.where(frac > 0.5, up, floor)
    tie_value = {
        Rounding.RND: up,
        Rounding.RND_MIN_INF: floor,
        Rounding.RND_INF: np.where(v >= 0, up, floor),
        Rounding.RND_ZERO: np.where(v >= 0, floor, up),
        Rounding.RND_CONV: np.where(np.mod(floor, 2) == 0, floor, up),
    }[rounding]
    return np.where(tie, tie_value, nearest)


def is_power_of_two(a) -> np.ndarray:
    """Elementwise: is the positive float a power of two (mantissa exactly 0.5)?"""
    m, _ = np.frexp(np.asarray(a, dtype=np.float64))
    return m == 0.5


def split_power_of_two(a) -> tuple[np.ndarray, np.ndarray]:
    """(residual, exponent) with ``a = residual * 2**exponent`` and residual in [1, 2), exactly."""
    m, e = np.frexp(np.asarray(a, dtype=np.float64))  # a = m * 2**e, m in [0.5, 1)
    return m * 2.0, (e - 1).astype(np.int64)


def exact(a: float) -> Fraction:
    """The exact rational value of a float."""
    return Fraction(float(a))
