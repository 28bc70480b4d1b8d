"""The fit of `compiler.train.cost`'s factors on the estimator, and the random models it uses.

``python -m compiler.train.cost_fit`` exports the models of `FIT_SEEDS` (`random_case`: MLPs
and convolutions with random widths, fixed, per-channel and per-element formats, pruned
weights), estimates each (`cost.estimate_export`), and solves the non-negative least squares
``estimator LUT ~ TERMS_BITS * terms_bits + TERMS * terms + ACCUMULATOR * accumulator_bits`` on
the relative error (each row divided by the estimate, so small models weigh as much as large
ones).  It prints the factors to copy into cost.py and each model's error.  The tests check
other seeds (`random_case` draws a different model for every seed).

Run 2026-12-05 on 16 models (seeds 0-15), Xilinx xcvu9p, 5 ns: the factors in cost.py, worst
error 18.1%; held out (seeds 16-39) at most 18.0%, rms 10.1%.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn

from .cost import HardwareCost, estimate_export
from .export import export
from .modules import QuantConv1d, QuantConv2d, QuantInput, QuantLinear, QuantReLU
from .quant import PerAxis, PerElement

FIT_SEEDS = tuple(range(16))
KINDS = ("fixed", "channel", "element", "conv1d", "conv2d")


def _fmt(width: int, int_bits: int, signed: bool = True) -> str:
    return f"{'' if signed else 'u'}fixed<{width},{int_bits},RND_CONV,SAT>"


def _weight_quant(rng: np.random.Generator, kind: str, shape: tuple[int, ...]):
    if kind == "channel":
        return PerAxis(0, [_fmt(int(rng.integers(2, 9)), 1) for _ in range(shape[0])])
    if kind == "element":
        bits = rng.integers(2, 9, size=shape)
        bits[rng.random(shape) < rng.uniform(0.2, 0.7)] = 0  # pruned weights
        return PerElement(bits, 1, 1, "RND_CONV", "SAT")
    return _fmt(int(rng.integers(2, 9)), 1)


def random_case(seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A small random model of compiler.train modules and an example input batch: its kind
    (fixed, per-channel or per-element weights in an MLP, a Conv1d or Conv2d) and every width
    drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    kind = KINDS[seed % len(KINDS)]
    in_fmt = QuantInput(_fmt(int(rng.integers(4, 11)), 3))
    act = [QuantReLU(output_quant=_fmt(int(rng.integers(3, 9)), 3, signed=False)) for _ in range(2)]
    bias = _fmt(10, 4)
    if kind.startswith("conv"):
        conv, length = (QuantConv1d, (12,)) if kind == "conv1d" else (QuantConv2d, (6, 6))
        cin, cout, k = int(rng.integers(1, 4)), int(rng.integers(2, 6)), 3
        c = conv(cin, cout, k, weight_quant=_weight_quant(rng, "fixed", (cout, cin) + (k,) * len(length)),
                 bias_quant=bias)
        flat = cout * int(np.prod([n - k + 1 for n in length]))
        model = nn.Sequential(in_fmt, c, act[0], nn.Flatten(),
                              QuantLinear(flat, 4, weight_quant=_fmt(int(rng.integers(2, 7)), 1), bias_quant=bias))
        x = torch.randn(4, cin, *length) * 2
    else:
        n_in, hidden, n_out = 16, int(rng.choice([8, 16, 24])), 5
        model = nn.Sequential(
            in_fmt, QuantLinear(n_in, hidden, weight_quant=_weight_quant(rng, kind, (hidden, n_in)), bias_quant=bias),
            act[0], QuantLinear(hidden, n_out, weight_quant=_weight_quant(rng, kind, (n_out, hidden)), bias_quant=bias))
        x = torch.randn(4, n_in) * 2
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(float(rng.uniform(1.0, 3.0)))
    return model, x


def features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """(terms_bits, terms, accumulator_bits) summed over the model's layers."""
    with torch.no_grad():
        layers = HardwareCost(model, x)()["layers"]
    return np.array([float(sum(layer[k] for layer in layers)) for k in ("terms_bits", "terms", "accumulator_bits")])


def measure(seeds) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and the estimator's LUTs of the random models of ``seeds``."""
    rows, luts = [], []
    for seed in seeds:
        model, x = random_case(seed)
        with tempfile.TemporaryDirectory() as out:
            luts.append(estimate_export(export(model, x, out))["lut"])
        rows.append(features(model, x))
    return np.array(rows), np.array(luts, dtype=np.float64)


def fit(seeds=FIT_SEEDS) -> tuple[np.ndarray, np.ndarray]:
    """The factors (non-negative least squares on relative errors) and each model's relative error."""
    rows, luts = measure(seeds)
    factors, _ = nnls(rows / luts[:, None], np.ones(len(luts)))
    return factors, rows @ factors / luts - 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    factors, errors = fit()
    print("TERMS_BITS, TERMS, ACCUMULATOR =", ", ".join(f"{f:.3f}" for f in factors))
    print("relative errors:", " ".join(f"{e:+.1%}" for e in errors), f"worst {np.abs(errors).max():.1%}")
    sys.exit(0)
