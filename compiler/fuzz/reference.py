"""An exact reference for fuzz cases, with Python `fractions`, written from docs/bit-plan.md
and the ap_fixed definitions; it shares no code with `compiler.fixed`, `compiler.mantissa` or
`compiler.emulate`.

Covered: Gemm/MatMul dense, Conv (strides, pads, groups), Max/Average pooling (pads,
ceil_mode, global), Add, Concat, Add/Mul by constants, Relu, LeakyRelu, Clip, Flatten,
Reshape, Transpose; the plan's formats at every granularity, pow2, row-wise mixes and
codebooks, with every rounding and overflow mode; BatchNormalization in quantized cases only
(`quant.py`: its ``1 / sqrt(var + eps)`` to `SQRT_BITS` significant bits, or exactly where the
root is rational); Sigmoid and the other table functions (the real function, to
`FUNCTION_DIGITS` digits where it is irrational: rounded into a plan's formats as the docs
define the table, the model's own values in quantized cases).  Not covered: Softmax and
BatchNorm in plain cases (folded in float64).  Values are numpy object arrays of Fractions,
no batch axis.
"""

from __future__ import annotations

import decimal
import math
import re
from fractions import Fraction

import numpy as np

from .generate import COMPUTING, merges_into_previous, shapes_of

_FORMAT = re.compile(r"^(u?)fixed<(-?\d+),(-?\d+)(?:,(\w+))?(?:,(\w+))?>$")
_POW2 = re.compile(r"^pow2<(-?\d+),(-?\d+)>$")
SQRT_BITS = 128  # significant bits of an irrational 1 / sqrt(var + eps), rounded down
FUNCTION_DIGITS = 80  # significant digits of an irrational table function's value
# docs/bit-plan.md, "tables": each function's plan key and the defaults of its two formats
TABLE_DEFAULTS = {
    "Sigmoid": ("sigmoid", "fixed<10,4,TRN,SAT>", "ufixed<16,0,RND_CONV,SAT>"),
    "Tanh": ("tanh", "fixed<10,3,TRN,SAT>", "fixed<16,1,RND_CONV,SAT>"),
    "HardSigmoid": ("hard_sigmoid", "fixed<10,4,TRN,SAT>", "ufixed<16,1,RND_CONV,SAT>"),
    "HardSwish": ("hard_swish", "fixed<10,4,TRN,SAT>", "fixed<16,4,RND_CONV,SAT>"),
    "Softplus": ("softplus", "fixed<10,4,TRN,SAT>", "ufixed<16,4,RND_CONV,SAT>"),
    "Softsign": ("softsign", "fixed<10,4,TRN,SAT>", "fixed<16,1,RND_CONV,SAT>"),
    "Elu": ("elu", "fixed<10,4,TRN,SAT>", "fixed<16,4,RND_CONV,SAT>"),
    "Selu": ("selu", "fixed<10,4,TRN,SAT>", "fixed<16,5,RND_CONV,SAT>"),
}


def _round(s: Fraction, mode: str) -> int:
    """An exact scaled value to an integer by an ap_fixed rounding mode."""
    fl = math.floor(s)
    rest = s - fl
    if mode == "TRN":
        return fl
    if mode == "TRN_ZERO":
        return fl if s >= 0 or rest == 0 else fl + 1
    if mode == "CEIL":  # toward plus infinity (finegrain's own mode; QONNX's CEIL)
        return fl if rest == 0 else fl + 1
    if rest != Fraction(1, 2):
        return fl + (rest > Fraction(1, 2)) if mode != "TRN" else fl
    # exactly halfway between fl and fl + 1
    return {"RND": fl + 1, "RND_ZERO": fl + 1 if s < 0 else fl, "RND_MIN_INF": fl,
            "RND_INF": fl + 1 if s > 0 else fl, "RND_CONV": fl + (fl % 2)}[mode]


def _overflow(m: int, width: int, signed: bool, mode: str) -> int:
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if mode == "SAT_SYM" and signed and width > 1:
        return min(max(m, -hi), hi)
    if lo <= m <= hi:
        return m
    if mode == "WRAP":
        return (m - lo) % (1 << width) + lo
    if mode == "SAT_ZERO":
        return 0
    return min(max(m, lo), hi)  # SAT, and SAT_SYM on unsigned or 1-bit types


def convert(x: Fraction, width: int, int_bits: int, signed: bool, rounding: str = "TRN",
            overflow: str = "WRAP") -> Fraction:
    """``x`` converted into fixed<width,int_bits> as ap_fixed does: round, then overflow."""
    if width == 0:
        return Fraction(0)  # pruned
    frac = width - int_bits
    m = _overflow(_round(x * Fraction(2) ** frac, rounding), width, signed, overflow)
    return Fraction(m) / Fraction(2) ** frac


def parse(text: str):
    """A format string -> a function Fraction -> Fraction."""
    text = text.replace(" ", "").removeprefix("ap_")
    p = _POW2.match(text)
    if p:
        return lambda x: _pow2(x, int(p.group(1)), int(p.group(2)))
    f = _FORMAT.match(text)
    if f is None:
        raise ValueError(f"not a format: {text!r}")
    width, int_bits = int(f.group(2)), int(f.group(3))
    signed, rounding, overflow = f.group(1) != "u", f.group(4) or "TRN", f.group(5) or "WRAP"
    return lambda x: convert(x, width, int_bits, signed, rounding, overflow)


def _pow2(x: Fraction, emin: int, emax: int) -> Fraction:
    a, sign = abs(x), (1 if x >= 0 else -1)
    two = Fraction(2)
    if a >= two ** emax:
        return sign * two ** emax
    if a < two ** emin:
        return sign * two ** emin if a >= two ** (emin - 1) else Fraction(0)
    e = math.floor(math.log2(a))
    while two ** e > a:
        e -= 1
    while two ** (e + 1) <= a:
        e += 1
    return sign * (two ** (e + 1) if a >= Fraction(3, 2) * two ** e else two ** e)


def _fractions(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    return np.vectorize(Fraction, otypes=[object])(a) if a.size else a.astype(object)


def _mix_rows(entry: dict, weights: np.ndarray, axis: int) -> list[int]:
    """The mix entry of each index along ``axis`` (largest remainder, then variance or order)."""
    n = weights.shape[axis]
    shares = [Fraction(repr(float(e["rows"]))) for e in entry["mix"]]
    quotas = [s / sum(shares) * n for s in shares]
    counts = [math.floor(q) for q in quotas]
    left = n - sum(counts)
    for i in sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))[:left]:
        counts[i] += 1
    rows = np.moveaxis(weights, axis, 0).reshape(n, -1)
    if entry.get("assign", "variance") == "variance":
        var = np.var(rows, axis=1)
        ranking = sorted(range(n), key=lambda r: (-var[r], r))
    else:
        ranking = list(range(n))
    which = [0] * n
    k = 0
    for e, count in enumerate(counts):
        for r in ranking[k:k + count]:
            which[r] = e
        k += count
    return which


def quantize(name: str, role: str, values, case: dict) -> np.ndarray:
    """A tensor (float values, shaped as stored in ONNX; activations without batch) under its plan entry."""
    if "quant" in case:  # a quantized model: its own quantizers (quant_exact.py), no plan
        from .quant_exact import apply

        return apply(case["quant"]["tensors"].get(name), values, case["quant"].get("domain_version", 1))
    plan = case["plan"]
    entry = plan["tensors"].get(name)
    if entry is None:
        entry = plan["defaults"][role]
    if entry is None:
        return values  # an exact activation
    x = values if values.dtype == object else _fractions(values)
    out = np.empty(x.shape, dtype=object)
    if isinstance(entry, str):
        q = parse(entry)
        for idx in np.ndindex(x.shape):
            out[idx] = q(x[idx])
        return out
    if "elements" in entry:
        a = case["arrays"][entry["elements"]]
        bits, ib, sg = (np.asarray(a[k]) for k in ("bits", "int_bits", "signed"))
        for idx in np.ndindex(x.shape):
            out[idx] = convert(x[idx], int(bits[idx]), int(ib[idx]), bool(sg[idx]), a["rounding"], a["overflow"])
        return out
    if "codebook" in entry:
        centres = [Fraction(repr(float(c))) for c in entry["codebook"]["centres"]]
        for idx in np.ndindex(x.shape):
            out[idx] = min(centres, key=lambda c: abs(c - x[idx]))  # min keeps the first of a tie
        return out
    axis = entry["axis"] - (0 if role in ("weight", "bias") else 1)  # activations: the batch axis
    if "mix" in entry:
        which = _mix_rows(entry, np.asarray(values, dtype=np.float64), axis)
        formats = [entry["mix"][w]["format"] for w in which]
    else:
        formats = entry["formats"]
    qs = [parse(f) for f in formats]
    for idx in np.ndindex(x.shape):
        out[idx] = qs[idx[axis]](x[idx])
    return out


def _round_significant(x: Fraction, bits: int = 18) -> Fraction:
    """Nearest-even to ``bits`` significant bits (LeakyRelu's alpha, pooling reciprocals)."""
    e = math.floor(math.log2(abs(x)))
    while Fraction(2) ** e > abs(x):
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    scale = Fraction(2) ** (bits - 1 - e)
    return Fraction(_round(x * scale, "RND_CONV")) / scale


def inverse_sqrt(value: Fraction) -> Fraction:
    """1 / sqrt(``value``): exact when the root is rational, else rounded down to at least
    `SQRT_BITS` significant bits."""
    p, q = value.numerator, value.denominator
    rp, rq = math.isqrt(p), math.isqrt(q)
    if rp * rp == p and rq * rq == q:
        return Fraction(rq, rp)
    m = max(0, SQRT_BITS - (q.bit_length() - p.bit_length()) // 2 + 2)  # sqrt(q/p) = isqrt(q * 4**m / p) / 2**m
    return Fraction(math.isqrt((q << (2 * m)) // p), 1 << m)


def _batchnorm(layer: dict, x: np.ndarray) -> np.ndarray:
    """Inference BatchNormalization, ``(x - mean) * scale / sqrt(var + eps) + bias`` per channel
    (the parameters and ONNX's float ``epsilon`` as float32 values)."""
    eps = Fraction(float(np.float32(layer["eps"])))
    params = [[Fraction(float(np.float32(v))) for v in layer[k]] for k in ("scale", "bias", "mean", "var")]
    y = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(*x.shape):
        scale, bias, mean, var = (p[idx[0]] for p in params)
        y[idx] = (x[idx] - mean) * scale * inverse_sqrt(var + eps) + bias
    return y


def _conv(x: np.ndarray, w: np.ndarray, b, strides, pads, groups) -> np.ndarray:
    n = w.ndim - 2
    x = np.pad(x, [(0, 0)] + [(pads[i], pads[n + i]) for i in range(n)], constant_values=Fraction(0))
    m, cg = w.shape[0], w.shape[1]
    outs = [(x.shape[1 + i] - w.shape[2 + i]) // strides[i] + 1 for i in range(n)]
    y = np.empty([m, *outs], dtype=object)
    per_group = m // groups
    for o in range(m):
        g = o // per_group
        for pos in np.ndindex(*outs):
            window = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, w.shape[2:]))
            patch = x[(slice(g * cg, (g + 1) * cg), *window)]
            y[(o, *pos)] = sum((patch * w[o]).flat, Fraction(0)) + (b[o] if b is not None else 0)
    return y


def _pool(x: np.ndarray, op: str, kernel, strides, pads, ceil_mode, exact: bool = False) -> np.ndarray:
    n = x.ndim - 1
    outs = []
    for i in range(n):
        size, k, s = x.shape[1 + i], kernel[i], strides[i]
        span = size + pads[i] + pads[n + i] - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= size + pads[i]:
            out -= 1
        outs.append(out)
    y = np.empty([x.shape[0], *outs], dtype=object)
    for pos in np.ndindex(*outs):
        window = tuple(slice(max(0, p * s - pad), min(size, p * s - pad + k))
                       for p, s, pad, k, size in zip(pos, strides, pads[:n], kernel, x.shape[1:]))
        for c in range(x.shape[0]):
            vals = list(x[(c, *window)].flat)
            if op == "maxpool":
                y[(c, *pos)] = max(vals)
            else:
                inverse = Fraction(1, len(vals))
                y[(c, *pos)] = sum(vals, Fraction(0)) * (inverse if exact else _round_significant(inverse))
    return y


def _layer(layer: dict, i: int, values: list, case: dict) -> np.ndarray:
    op, x = layer["op"], values[layer["src"][0]]
    n = f"l{i}"
    exact = "quant" in case  # a quantized model's reference is the model itself: 1/count, alpha unrounded

    def const(role: str, key: str, stored):
        return quantize(f"{n}.{key}", role, np.asarray(stored, dtype=np.float64), case)

    if op == "dense":
        w = np.asarray(layer["weight"], dtype=np.float64)
        wq = const("weight", "weight", w.T).T if layer.get("form") == "matmul" else const("weight", "weight", w)
        y = np.array([sum((wq[j] * x).flat, Fraction(0)) for j in range(w.shape[0])], dtype=object)
        return y + const("bias", "bias", layer["bias"]) if layer.get("bias") is not None else y
    if op == "conv":
        b = const("bias", "bias", layer["bias"]) if layer.get("bias") is not None else None
        return _conv(x, const("weight", "weight", layer["weight"]), b, layer["strides"], layer["pads"], layer["groups"])
    if op in ("maxpool", "avgpool"):
        return _pool(x, op, layer["kernel"], layer["strides"], layer["pads"], layer["ceil_mode"], exact)
    if op in ("gmaxpool", "gavgpool"):
        spatial = list(x.shape[1:])
        return _pool(x, op[1:], spatial, [1] * len(spatial), [0] * (2 * len(spatial)), 0, exact)
    if op == "bn" and exact:
        return _batchnorm(layer, x)
    if op == "relu":
        return np.vectorize(lambda v: max(v, Fraction(0)), otypes=[object])(x)
    if op == "leaky":
        alpha = Fraction(layer["alpha"]) if exact else _round_significant(Fraction(layer["alpha"]))
        return np.vectorize(lambda v: v if v >= 0 else alpha * v, otypes=[object])(x)
    if op == "clip":
        lo, hi = Fraction(layer["low"]), Fraction(layer["high"])
        return np.vectorize(lambda v: min(max(v, lo), hi), otypes=[object])(x)
    if op == "add":
        return x + values[layer["src"][1]]
    if op == "mul":
        return x * values[layer["src"][1]]
    if op == "concat":
        return np.concatenate([x, values[layer["src"][1]]], axis=0)
    if op == "addc":
        return x + const("bias", "const", layer["const"])
    if op == "mulc":
        return x * const("weight", "const", layer["const"])
    if op == "flatten":
        return x.reshape(-1)
    if op == "reshape":
        return x.reshape(layer["shape"])
    if op == "transpose":
        return x.transpose(layer["perm"])
    if op in ("sigmoid", "table"):
        return _table(layer, i, x, case, exact)
    raise ValueError(f"the reference has no {op!r}")


def function_value(function: str, attrs: dict, x: Fraction) -> Fraction:
    """An ONNX elementwise function at ``x`` (attributes as ONNX defines their defaults, in
    float32): exact where the value is rational, else to FUNCTION_DIGITS significant digits."""
    # ONNX's defaults as float32: HardSigmoid alpha 0.2, Selu alpha 1.67326... and gamma 1.0507...
    defaults = {"HardSigmoid": {"alpha": "0x1.99999ap-3", "beta": "0x1p-1"}, "Elu": {"alpha": "0x1p0"},
                "Selu": {"alpha": "0x1.ac5afap+0", "gamma": "0x1.0cfabep+0"}}.get(function, {})
    a = {k: Fraction(attrs[k]) if k in attrs else Fraction(float.fromhex(v)) for k, v in defaults.items()}
    alpha, gamma = a.get("alpha"), a.get("gamma", Fraction(1))
    if function == "HardSigmoid":
        return min(max(alpha * x + a["beta"], Fraction(0)), Fraction(1))
    if function == "HardSwish":
        return x * min(max(x / 6 + Fraction(1, 2), Fraction(0)), Fraction(1))
    if function == "Softsign":
        return x / (1 + abs(x))
    if x == 0 and function != "Softplus":
        return Fraction(1, 2) if function == "Sigmoid" else Fraction(0)
    if x > 0 and function in ("Elu", "Selu"):
        return gamma * x
    with decimal.localcontext() as ctx:
        ctx.prec, ctx.Emin, ctx.Emax = FUNCTION_DIGITS + 10, -10 ** 9, 10 ** 9
        d = decimal.Decimal(x.numerator) / x.denominator
        value = {"Sigmoid": lambda: 1 / (1 + (-d).exp()),
                 "Tanh": lambda: 1 - 2 / ((2 * d).exp() + 1),
                 "Softplus": lambda: (1 + d.exp()).ln(),
                 "Elu": lambda: _decimal(alpha) * (d.exp() - 1),
                 "Selu": lambda: _decimal(gamma) * _decimal(alpha) * (d.exp() - 1)}[function]()
        return Fraction(+value)


def _decimal(f: Fraction) -> decimal.Decimal:
    return decimal.Decimal(f.numerator) / f.denominator


def _table(layer: dict, i: int, x: np.ndarray, case: dict, exact: bool) -> np.ndarray:
    """A Sigmoid or "table" layer: the model's function (quantized cases), or the plan's table
    (docs/bit-plan.md): the input converted into FUNCTION_input, the function's real value
    rounded once into the output's format (its plan entry or FUNCTION_output)."""
    function, attrs = layer.get("function", "Sigmoid"), layer.get("attrs", {})
    if exact:
        return np.vectorize(lambda v: function_value(function, attrs, v), otypes=[object])(x)
    key, t_in, t_out = TABLE_DEFAULTS[function]
    tables = case["plan"].get("tables", {})
    code = parse(tables.get(f"{key}_input", t_in))
    out = parse(case["plan"]["tensors"].get(f"t{i}") or tables.get(f"{key}_output", t_out))
    return np.vectorize(lambda v: out(function_value(function, attrs, code(v))), otypes=[object])(x)


def reference(case: dict, vector) -> np.ndarray:
    """The exact output (object array of Fractions, no batch axis) for one input vector."""
    x = quantize("x", "input", np.asarray(vector, dtype=np.float64), case)
    values = [x]
    for i, layer in enumerate(case["layers"]):
        y = _layer(layer, i, values, case)
        merged = i + 1 < len(case["layers"]) and merges_into_previous(case, i + 1)
        if (layer["op"] in COMPUTING and not merged) or f"t{i}" in case["plan"]["tensors"] or "quant" in case:
            y = quantize(f"t{i}", "activation", y, case)
        values.append(y)
    assert list(values[-1].shape) == shapes_of(case)[-1]
    return values[-1]


__all__ = ["convert", "parse", "quantize", "reference"]
