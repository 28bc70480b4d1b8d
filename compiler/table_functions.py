"""The elementwise functions finegrain builds as look-up tables (the TABLE op), one row each.

A TABLE node converts its input into the plan's ``<name>_input`` format (its rounding and
overflow modes apply), and each code reads one entry: the function's real value at the code,
rounded once into the output format (the tensor's plan entry, the format of the model's
quantizer right after it, or ``<name>_output``; apply_plan.function_table, with `precise`
where float64 cannot decide the rounding).  The emulator reads the same entries, so every
backend is bit-exact by construction; how far an entry is from the real function is what
`error_bound` and the quantization report count.

Each row states, besides the function, its ONNX attributes with their defaults (read as
the float32 values ONNX stores), a Lipschitz constant for the error bound (the largest
``|f'|`` over the reals for the given attributes), and the default table formats: an input
range where the function has done its work (beyond it the input saturates) and an output
format that holds every value over that range.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Mapping

import numpy as np

Params = Mapping[str, float]


@dataclass(frozen=True)
class TableFunction:
    name: str  # plan keys <name>_input and <name>_output
    onnx_op: str
    evaluate: Callable[[np.ndarray, Params], np.ndarray]  # float64, elementwise
    slope: Callable[[Params], float]  # a Lipschitz constant of the function
    params: Mapping[str, float]  # ONNX attributes and their defaults
    default_input: str
    default_output: str
    summary: str  # the formula, for documentation and messages


def _sigmoid(x: np.ndarray, p: Params) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the tanh form never overflows


def _hard_sigmoid(x: np.ndarray, p: Params) -> np.ndarray:
    return np.clip(p["alpha"] * x + p["beta"], 0.0, 1.0)


def _hard_swish(x: np.ndarray, p: Params) -> np.ndarray:
    return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _elu(x: np.ndarray, p: Params) -> np.ndarray:
    return np.where(x > 0, x, p["alpha"] * np.expm1(np.minimum(x, 0.0)))


def _selu(x: np.ndarray, p: Params) -> np.ndarray:
    return p["gamma"] * np.where(x > 0, x, p["alpha"] * np.expm1(np.minimum(x, 0.0)))


# float32 values of ONNX's Selu defaults, as its definition states them
_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875

FUNCTIONS: dict[str, TableFunction] = {f.name: f for f in (
    TableFunction("sigmoid", "Sigmoid", _sigmoid, lambda p: 0.25, {},
                  "fixed<10,4,TRN,SAT>", "ufixed<16,0,RND_CONV,SAT>", "1 / (1 + exp(-x))"),
    TableFunction("tanh", "Tanh", lambda x, p: np.tanh(x), lambda p: 1.0, {},
                  "fixed<10,3,TRN,SAT>", "fixed<16,1,RND_CONV,SAT>", "tanh(x)"),
    TableFunction("hard_sigmoid", "HardSigmoid", _hard_sigmoid, lambda p: abs(p["alpha"]),
                  {"alpha": 0.2, "beta": 0.5},
                  "fixed<10,4,TRN,SAT>", "ufixed<16,1,RND_CONV,SAT>", "max(0, min(1, alpha * x + beta))"),
    TableFunction("hard_swish", "HardSwish", _hard_swish, lambda p: 1.5, {},
                  "fixed<10,4,TRN,SAT>", "fixed<16,4,RND_CONV,SAT>", "x * max(0, min(1, x / 6 + 1/2))"),
    TableFunction("softplus", "Softplus", lambda x, p: np.logaddexp(0.0, x), lambda p: 1.0, {},
                  "fixed<10,4,TRN,SAT>", "ufixed<16,4,RND_CONV,SAT>", "log(1 + exp(x))"),
    TableFunction("softsign", "Softsign", lambda x, p: x / (1.0 + np.abs(x)), lambda p: 1.0, {},
                  "fixed<10,4,TRN,SAT>", "fixed<16,1,RND_CONV,SAT>", "x / (1 + abs(x))"),
    TableFunction("elu", "Elu", _elu, lambda p: max(1.0, abs(p["alpha"])), {"alpha": 1.0},
                  "fixed<10,4,TRN,SAT>", "fixed<16,4,RND_CONV,SAT>", "x if x > 0 else alpha * (exp(x) - 1)"),
    TableFunction("selu", "Selu", _selu, lambda p: abs(p["gamma"]) * max(1.0, abs(p["alpha"])),
                  {"alpha": _SELU_ALPHA, "gamma": _SELU_GAMMA},
                  "fixed<10,4,TRN,SAT>", "fixed<16,5,RND_CONV,SAT>",
                  "gamma * (x if x > 0 else alpha * (exp(x) - 1))"),
)}

BY_ONNX_OP: dict[str, TableFunction] = {f.onnx_op: f for f in FUNCTIONS.values()}


def evaluate(function: str, params: Params, x: np.ndarray) -> np.ndarray:
    """The real function (float64) of a TABLE node's ``function`` and ``params`` attributes."""
    with np.errstate(over="ignore", under="ignore"):
        return FUNCTIONS[function].evaluate(np.asarray(x, dtype=np.float64), params)


def slope(function: str, params: Params) -> float:
    return FUNCTIONS[function].slope(params)


def node_function(attrs: dict, x: np.ndarray) -> np.ndarray:
    """The real function a TABLE node with ``attrs`` stands for, in IR units:
    ``f(x * input_scale) * scale + offset`` (a model quantizer's codes in, lower_quant; a model
    quantizer's rescale out, apply_plan; 1, 1 and 0 without them)."""
    rescale = attrs.get("rescale") or {"scale": 1, "offset": 0}
    x = np.asarray(x, dtype=np.float64) * float(attrs.get("input_scale", 1))
    y = evaluate(attrs["function"], attrs["params"], x)
    return y * float(rescale["scale"]) + float(rescale["offset"])


def node_slope(attrs: dict) -> float:
    """The Lipschitz constant of :func:`node_function`."""
    scale = abs(float((attrs.get("rescale") or {"scale": 1})["scale"]))
    return slope(attrs["function"], attrs["params"]) * float(attrs.get("input_scale", 1)) * scale


# Digits of the decimal evaluation of the transcendental functions: their values at a nonzero
# dyadic x are irrational (Lindemann), so no table entry lies on a rounding boundary, and 60
# digits decide every entry float64 leaves in doubt.
DIGITS = 60


def precise(function: str, params: Params, x: Fraction) -> Fraction:
    """``f(x)`` for an input code's value: exact for the rational functions (HardSigmoid,
    HardSwish, Softsign, and every function at 0 or on its linear part), to DIGITS significant
    digits otherwise."""
    p = {k: Fraction(v) for k, v in params.items()}
    if function == "hard_sigmoid":
        return min(max(p["alpha"] * x + p["beta"], Fraction(0)), Fraction(1))
    if function == "hard_swish":
        return x * min(max(x / 6 + Fraction(1, 2), Fraction(0)), Fraction(1))
    if function == "softsign":
        return x / (1 + abs(x))
    if x == 0 and function != "softplus":
        return Fraction(1, 2) if function == "sigmoid" else Fraction(0)
    if x > 0 and function in ("elu", "selu"):
        return x * p.get("gamma", Fraction(1))
    with decimal.localcontext() as ctx:
        ctx.prec = DIGITS + 10
        ctx.Emin, ctx.Emax = -10 ** 9, 10 ** 9
        d = decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator)
        if function == "sigmoid":
            value = 1 / (1 + (-d).exp())
        elif function == "tanh":
            e = (2 * d).exp()
            value = (e - 1) / (e + 1)
        elif function == "softplus":
            value = (1 + d.exp()).ln()
        elif function in ("elu", "selu"):  # x < 0
            value = decimal.Decimal(float(p["alpha"])) * (d.exp() - 1)
            value *= decimal.Decimal(float(p.get("gamma", Fraction(1))))
        else:
            raise ValueError(f"no table function {function!r}")
        return Fraction(value)
