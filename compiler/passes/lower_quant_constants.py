"""Constants in a quantized model's lowering (a mixin of lower_quant's ``_Lowering``): a
quantizer's constant as its exact integer codes, a constant held exactly in model values, an
additive constant divided by the residual of what it is added to (rounded, the change
recorded), and the placeholder of a rescale's multiplier."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from ..errors import FrontendError
from ..fixed import Rounding
from ..ir import Tensor, TensorKind
from ..mantissa import common_fraction
from ..quantizer import Quantizer, split_power_of_two
from .quant_data import compact, exact_data, integer_formats, mantissa_data, round_half_even

BIAS_GUARD_BITS = 12  # at most this many bits below the accumulator's grid for a rounded bias


class ConstantLowering:
    """Needs the lowering's ``tensors``, ``fresh`` and ``grid``."""

    def quantized_constant(self, name: str) -> tuple[str, np.ndarray]:
        """A constant made by a quantizer, as its exact integer codes times a power of two;
        returns its IR name and residual (full shape)."""
        t = self.tensors[name]
        q: Quantizer = t.quantizer
        shape = t.shape
        out_scale, zero = (self.parameter(t, a) for a in (q.out_scale, q.out_zero))
        r, e = split_power_of_two(out_scale)
        values = np.asarray(t.float_data if t.float_data is not None else t.data, dtype=np.float64)
        codes = np.rint(values / out_scale)  # (q - out_zero): exact integers
        if q.bipolar:
            lo, hi = -1 - zero, 1 - zero
        else:
            qmin, qmax = q.range if q.bits is not None else (codes.min() + zero, codes.max() + zero)
            lo, hi = qmin - zero, qmax - zero
        lo = np.minimum(np.broadcast_to(lo, shape), codes)
        hi = np.maximum(np.broadcast_to(hi, shape), codes)
        # a zero code is pruned: a channel a quantizer zeroed (a tiny per-channel scale) must not
        # set the fraction of the whole tensor
        formats = integer_formats(lo, hi, -e, Rounding.RND_CONV, np.zeros(shape, dtype=bool)).prune(codes == 0)
        m = codes.astype(np.int64)
        data, frac = common_fraction(m, formats)
        ir_values = np.ldexp(codes, e)
        self.tensors[name] = dataclasses.replace(t, formats=formats, data=np.asarray(data), data_frac=frac,
                                                 float_data=ir_values)
        return name, np.array(r)

    @staticmethod
    def parameter(t: Tensor, a: np.ndarray) -> np.ndarray:
        """A quantizer parameter of constant ``t`` at the constant's shape (a bias the frontend
        reshaped from [1, C, 1, 1] to [C] keeps its per-channel values)."""
        a = np.asarray(a, dtype=np.float64)
        try:
            return np.broadcast_to(a, t.shape)
        except ValueError:
            if a.size == int(np.prod(t.shape)):
                return a.reshape(t.shape)
        raise FrontendError(f"constant {t.onnx_name or t.name!r}: its quantizer's parameters of shape "
                            f"{list(a.shape)} do not fit its shape {list(t.shape)}")

    def _exact_model_constant(self, name: str) -> None:
        """A constant made by a quantizer, used where model values are needed: its values
        (scale times integer) are short dyadic numbers, held exactly."""
        t = self.tensors[name]
        values = np.asarray(t.float_data if t.float_data is not None else t.data, dtype=np.float64)
        formats, data, frac = exact_data(values)
        self.tensors[name] = dataclasses.replace(t, formats=formats, data=data, data_frac=frac, float_data=values)

    def _in_units(self, b: str, r: np.ndarray, grid: int | None) -> str:
        """Additive constant ``b`` divided by the residual ``r`` of what it is added to.

        ``b / r`` is rarely a short dyadic number, so it is rounded (to nearest, ties to even,
        in exact rationals): on the grid of what it is added to, plus, for a float constant, as
        many guard bits (up to BIAS_GUARD_BITS) as it takes to move it by at most
        ``2**-BIAS_GUARD_BITS`` of that grid (a quantized bias takes none).  A value that moved can still tip
        a later rounding: the change is recorded (model and IR units) for the report."""
        t = self.tensors[b]
        values = np.asarray(t.float_data if t.float_data is not None else t.data, dtype=np.float64)
        values = self.parameter(t, values) if values.shape != t.shape else values
        flat_v, flat_r = values.ravel(), np.broadcast_to(r, values.shape).ravel()
        ideal = [Fraction(float(v)) / Fraction(float(q)) for v, q in zip(flat_v, flat_r)]
        if grid is not None:
            # a quantized bias whose scale is the accumulator's step (int32, s_x * s_w up to float32
            # rounding; times a power of two >= 1 where channels' grids differ) moves by a small
            # fraction of the grid: no guard bits, which would widen the accumulator and its
            # rescale; one with a scale of its own (a Brevitas bias quantizer not tied to the
            # product) takes them, or rounding could drop it (fuzz case quant_bias_scale_not_the_product)
            stepped = False
            if t.quantizer is not None:
                ratio = self.parameter(t, t.quantizer.out_scale) / np.ldexp(np.broadcast_to(r, values.shape), -grid)
                k = np.round(np.log2(ratio))
                stepped = bool(np.all((k >= 0) & (np.abs(ratio / np.exp2(k) - 1) < 2.0 ** -16)))
            for guard in range(1 if stepped else BIAS_GUARD_BITS + 1):
                frac = [grid + guard] * len(ideal)
                mant = [round_half_even(f * (Fraction(2) ** g)) for f, g in zip(ideal, frac)]
                worst = max((abs(Fraction(m) / (Fraction(2) ** g) - f) for m, g, f in zip(mant, frac, ideal)),
                            default=Fraction(0))
                if worst * (Fraction(2) ** grid) <= Fraction(1, 1 << BIAS_GUARD_BITS):
                    break
        else:  # the grid is not known (a plan will format the input): each value to its own
            # 24 significant bits plus the guard bits
            frac = [24 + BIAS_GUARD_BITS - (f.numerator.bit_length() - f.denominator.bit_length()) if f else 0
                    for f in (abs(v) for v in ideal)]
            mant = [round_half_even(f * (Fraction(2) ** g)) for f, g in zip(ideal, frac)]
            guard = BIAS_GUARD_BITS
        formats, data, data_frac = mantissa_data(mant, frac, values.shape)
        step = [Fraction(2) ** -int(k) for k in frac]
        rounded = np.array([float(m * st) for m, st in zip(mant, step)]).reshape(values.shape)
        change_ir = np.array([float(abs(m * st - f)) for m, st, f in zip(mant, step, ideal)]).reshape(values.shape)
        change = float(max((abs(m * st * Fraction(float(q)) - Fraction(float(v)))
                            for m, st, q, v in zip(mant, step, flat_r, flat_v)), default=Fraction(0)))
        self.tensors[b] = dataclasses.replace(t, formats=formats, data=data, data_frac=data_frac,
                                              float_data=rounded, quantizer=None,
                                              scheme={"rounded_to_accumulator": {
                                                  "max_change": change, "max_change_ir": change_ir,
                                                  "guard_bits": guard}})
        return b

    def _rescale_constant(self, base: str, num: np.ndarray, den: np.ndarray) -> str:
        """A placeholder for the multiplier ``num / den`` (exact floats, elementwise): holds the
        nearest float until choose_multipliers picks its fixed-point value."""
        shape = np.broadcast_shapes(np.shape(num), np.shape(den))
        num = compact(np.broadcast_to(num, shape))
        den = compact(np.broadcast_to(den, shape))
        cshape = np.broadcast_shapes(num.shape, den.shape)
        num, den = np.broadcast_to(num, cshape).copy(), np.broadcast_to(den, cshape).copy()
        name = self.fresh(base)
        approx = num / den
        self.tensors[name] = Tensor(name, approx.shape, TensorKind.CONST, data=approx, float_data=approx,
                                    scheme={"rescale": {"numerator": num, "denominator": den}})
        return name
