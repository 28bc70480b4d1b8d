"""The exact values of a quantized case's quantizers, and its check against the reference.

Written from the operator definitions, with Python `fractions` (float32 scales enter exactly):

* QONNX ``Quant`` (qonnx ``custom_op/general/quant.py``): ``v = x / scale + zero``; a signed
  1-bit Quant gives the sign (+1 where ``v >= 0``, else -1), any other ``clamp(R(v), min_int,
  max_int)`` with qonnx's bounds (signed: ``-2**(b-1) + narrow .. 2**(b-1) - 1``; unsigned:
  ``0 .. 2**b - 1 - narrow``); then ``y = scale * (q - zero)``.  qonnx clamps before rounding:
  with integer bounds and a monotone rounding that is the same.
* ``BipolarQuant``: ``y = scale * (+1 if x >= 0 else -1)``.
* ONNX ``QuantizeLinear`` then ``DequantizeLinear``: ``q = saturate(round_half_even(x / scale)
  + zero)`` into the codes' type, ``y = (q - zero) * scale``; the zero point is added after the
  rounding (unlike Quant's).

Rounding modes: ROUND and HALF_EVEN to nearest, ties to even; FLOOR; CEIL; DOWN and
ROUND_TO_ZERO toward zero; UP away from zero; HALF_UP ties away from zero; HALF_DOWN ties
toward zero.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .quant import QDQ_RANGES, code_range, integer_range
from .reference import _round


# QONNX's modes as the ap_fixed ones reference.py rounds by (docs/import.md, Rounding modes)
_AP_MODES = {"ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "FLOOR": "TRN", "CEIL": "CEIL", "DOWN": "TRN_ZERO",
             "ROUND_TO_ZERO": "TRN_ZERO", "HALF_UP": "RND_INF", "HALF_DOWN": "RND_ZERO"}


def round_mode(v: Fraction, mode: str) -> int:
    if mode == "UP":  # away from zero: no ap_fixed mode (finegrain refuses it)
        return math.ceil(v) if v > 0 else math.floor(v)
    return _round(v, _AP_MODES[mode])


def _code(spec: dict, x: Fraction, scale: Fraction, zero: int) -> int:
    """The integer a quantizer gives ``x`` (with its zero point: ``y = scale * (code - zero)``)."""
    op = spec["op"]
    if op == "bipolar":
        return 1 if x >= 0 else -1
    if op == "qdq":
        lo, hi = QDQ_RANGES[spec["dtype"]]
        return min(max(round_mode(x / scale, "HALF_EVEN") + zero, lo), hi)
    v = x / scale + zero
    if spec["bits"] == 1 and spec["signed"]:
        return 1 if v >= 0 else -1
    lo, hi = code_range(spec)
    return min(max(round_mode(v, spec["rounding"]), lo), hi)


def _trunc_value(spec: dict, x: Fraction, k: int, version: int) -> Fraction:
    """QONNX Trunc (qonnx ``custom_op/general/trunc.py``) of ``x`` at channel index ``k``: the
    integer ``y = round_half_even(x / scale)`` (zero point 0, no clamp), then v1 ``R(y / 2**(in_bits
    - out_bits)) * scale``; v2 ``y / t`` rounded by R and clamped into ``out_bits``, times
    ``out_scale``, with ``t = 2**round(log2(out_scale / scale))`` (qonnx clamps before the
    rounding: with integer bounds the same)."""
    def pick(values) -> Fraction:
        return Fraction(float(values[k if len(values) > 1 else 0]))

    scale = pick(spec["scale"])
    y = Fraction(round_mode(x / scale, "HALF_EVEN"))
    if version < 2:
        return scale * round_mode(y / 2 ** (spec["in_bits"] - spec["out_bits"]), spec["rounding"])
    out_scale = pick(spec["out_scale"])
    t = Fraction(2) ** int(np.round(np.log2(float(out_scale) / float(scale))))
    lo, hi = integer_range(spec["out_bits"], bool(spec["signed"]), bool(spec["narrow"]))
    return out_scale * min(max(round_mode(y / t, spec["rounding"]), lo), hi)


def _parameters(spec: dict, shape) -> tuple[np.ndarray, np.ndarray]:
    """Scale (Fractions) and zero point (ints) of every element of a tensor of ``shape``."""
    scales = [Fraction(float(s)) for s in spec["scale"]]
    zeros = [int(z) for z in spec["zero"]]
    axis = spec.get("axis")
    scale, zero = np.empty(shape, dtype=object), np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        k = idx[axis] if axis is not None else 0
        scale[idx] = scales[k if len(scales) > 1 else 0]
        zero[idx] = zeros[k if len(zeros) > 1 else 0]
    return scale, zero


def codes_of(spec: dict, values) -> np.ndarray:
    """The integer codes (zero point included) of a constant, for a lone DequantizeLinear."""
    x = np.asarray(values, dtype=np.float64)
    scale, zero = _parameters(spec, x.shape)
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(*x.shape):
        out[idx] = _code(spec, Fraction(float(x[idx])), scale[idx], zero[idx])
    return out


def apply(spec: dict | None, values, version: int = 1) -> np.ndarray:
    """``values`` (floats or Fractions, batchless) through the quantizer ``spec`` (None: the
    values themselves, as Fractions); ``version``: the model's Trunc version."""
    x = values
    if not (isinstance(values, np.ndarray) and values.dtype.kind == "O"):
        x = np.vectorize(Fraction, otypes=[object])(np.asarray(values, dtype=np.float64))
    if spec is None:
        return x
    if spec["op"] == "trunc":
        axis = spec.get("axis")
        return np.vectorize(lambda v, k: _trunc_value(spec, Fraction(v), k, version), otypes=[object])(
            x, np.indices(x.shape)[axis] if axis is not None else np.zeros(x.shape, dtype=int))
    scale, zero = _parameters(spec, x.shape)
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(*x.shape):
        out[idx] = scale[idx] * (_code(spec, Fraction(x[idx]), scale[idx], zero[idx]) - zero[idx])
    return out


def against_quant_reference(case: dict, project, exact, done: list):
    """The emulator's outputs of a quantized case against the exact reference, within what
    report.json's ``quantization`` section promises for the output.

    How the comparison is derived: the emulator's values are IR values (``exact``), the model's
    are ``model_scale * IR value`` (docs/import.md, "What the ports carry"; model_scale is a
    float64 that holds the residual of a float32 scale exactly), so both sides are exact
    rationals.  Where the section says the output is ``exact`` they must be equal; else
    ``|emulator - reference| <= max_error`` (model units, the worst case over all inputs).
    max_error is a float64 computed in float64, so it is allowed 2**-40 of itself for its own
    rounding and nothing more.  An output the section does not bound (``max_error`` null) is
    only checked to exist.  Returns a failing `Outcome`, or None.
    """
    from .check import compare_with_reference

    graph = project.graph
    name = graph.outputs[0]
    t = graph.tensor(name)
    section = project.quantization() or {}
    promised = section.get("outputs", {}).get(name)
    if promised is None or promised["exact"]:
        bound, said = Fraction(0), "exact"
    elif promised["max_error"] is None:
        bound, said = None, "not bounded"
    else:
        bound = Fraction(promised["max_error"]) * (1 + Fraction(1, 2 ** 40))
        said = f"within {promised['max_error']!r} ({promised['max_error_lsb']} LSB)"
    scale = np.broadcast_to(np.asarray(1.0 if t.model_scale is None else t.model_scale, dtype=np.float64),
                            t.shape).reshape(-1)
    return compare_with_reference(case, exact, done, scale, bound, said)
