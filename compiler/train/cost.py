"""A differentiable hardware cost of a model of `compiler.train` modules: LUTs and latency of
its fully parallel RTL as functions of every weight's value and bit width and every
activation's bit width, so training can minimise ``task loss + lam * cost["lut"]``.

**What is counted.**  The RTL backend builds each constant product from the weight's
canonical signed digits (CSD: each nonzero digit a shifted copy of the input) and sums all
of a row's digit terms in an adder graph; the sum is requantized to the next format.  An
adder costs a LUT per significant bit (compiler/estimate.py), so a layer's LUTs grow with

* ``terms_bits``: the sum over every output (every output position of a conv) of
  ``digits(w) * bits(x)`` over its products: the width of the terms the adders add;
* ``terms``: the number of those digit terms (each adder's carry and growth bit);
* ``accumulator_bits``: per output with at least one term, its sum's width, the mean term
  width plus ``log2(terms + 1)``: the adder graph's last adders, the requantize after them and
  the output registers (their shift-register LUTs) grow with it.

``lut = TERMS_BITS * terms_bits + TERMS * terms + ACCUMULATOR * accumulator_bits``, with the
factors below fitted by non-negative least squares on relative errors
(`compiler.train.cost_fit`) on the estimator's LUTs (`compile_model` + `estimate_context`) of
16 exported random models (seeds 0-15), Xilinx UltraScale+ at 5 ns: worst fit error 18.1%.
Terms that share subexpressions in the adder graph are counted each time (the factors absorb
the average saving), and the requantize's own width (``requantize_bits``, reported) did not
improve the fit (its factor came out 0), so the value is a model, not the estimator: on 24
random models not used in the fit (seeds 16-39: other widths, pruned weights, per-element and
per-channel formats, convs) its error was at most 18.0% (rms 10.1%); on the trained plans of
tests/test_train_bits.py (LearnedBits MLPs and a conv, sklearn digits MLPs) at most 24% (the
conv at tensor granularity; the digits MLPs within 7%).  The tests hold every one of them to
**TOLERANCE (25%)**.

**Gradient.**  ``digits(w)`` is counted exactly from the quantized value in the forward pass
(a zero or pruned weight: 0, no cost) and gets a surrogate gradient in the weight's bit width:
``DIGITS_PER_BIT`` (1/3: a random n-bit value has about n/3 nonzero CSD digits).  Activation
widths enter with gradient 1 (`bits.LearnedBits.widths`); fixed formats are constants.

**Latency** (approximate): each layer's deepest row has ``log2(terms)`` adder levels; the
delay model of compiler/timing.py (`DelayModel.levels_per_stage` at the clock) turns levels into
cycles, a layer taking ``levels / levels_per_stage + 1`` cycles (its requantize and output
register) and the rows' maximum a soft maximum (temperature ``SOFT_MAX_LEVELS``) so every row
gets gradient.  Fractional cycles: the schedule's are integers (rounded up per stage) and the
backend may merge a layer's last stage with the next one, so it can differ from the estimate
by a cycle or so per layer.

**Rows of pruned activations** (``credit_rows=s``, ``s > 0``; 0, off, by default): an output whose
activation (the ReLU's format after it) is pruned to 0 bits leaves the RTL with its products
and adders once `bits.prune_dead_rows` gives that row's weights 0 bits, so its row's LUTs count
only while the activation is kept: each row's LUTs are multiplied by ``kept * (1 + s * (b - b') /
b')`` (``b`` its width, ``b'`` the value without gradient), so shrinking an activation earns
``s * row LUTs / b`` per bit (``True``: ``s = 1``).  Without it a row counts whether or not
its output is used (a 10-8-3 MLP with 3 of 8 rows dead: plain 58% above the estimate, credited
11%; tests/test_train_bits.py).
Measured on the digits MLP (bench/RESULTS.md, feat/digits3) the credit is too strong a pull for
training: hidden activations went to 1 bit or 0 and accuracy fell by 7 to 9 points (a 0.05
share: 2.3 points, at no fewer LUTs).

The model must be a chain: each module reads the previous one's output (nn.Sequential and
the like); modules between the quantized ones (Flatten, MaxPool, Dropout) are applied to the
width maps as to the values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..targets import DEFAULT_PART, family_of
from ..timing import delay_model
from .bits import LearnedBits
from .modules import QUANT_LAYERS, QuantInput, QuantLinear, QuantReLU, record_calls
from .quant import Fixed, PerAxis, PerElement, QuantError, Quantizer

# Fitted by compiler.train.cost_fit (least squares, non-negative) on the estimator, see there.
TERMS_BITS = 0.510
TERMS = 0.617
ACCUMULATOR = 1.089
TOLERANCE = 0.25
DIGITS_PER_BIT = 1.0 / 3.0
SOFT_MAX_LEVELS = 0.5  # temperature of the soft maximum over rows' adder levels


def csd_digits(values: torch.Tensor) -> torch.Tensor:
    """The number of nonzero digits of each value's canonical signed-digit (non-adjacent) form,
    exact for every finite float64 (the count does not depend on the scale): popcount(n ^ 3n)
    of the integer mantissa n."""
    v = np.abs(values.detach().to("cpu", torch.float64).numpy())
    mantissa, _ = np.frexp(v)
    n = np.ldexp(mantissa, 53).astype(np.int64)  # < 2**53: 3n fits in int64
    n = n >> np.minimum(_trailing_zeros(n), 62)
    digits = np.bitwise_count(n ^ (3 * n)).astype(np.float64)
    return torch.as_tensor(np.where(v == 0, 0.0, digits), dtype=torch.float64, device=values.device)


def _trailing_zeros(n: np.ndarray) -> np.ndarray:
    low = n & -n  # the lowest set bit
    return np.where(n == 0, 0, np.log2(np.where(low == 0, 1, low).astype(np.float64)).astype(np.int64))


def quantizer_widths(quant: Quantizer | None, shape: tuple[int, ...], values: torch.Tensor | None = None
                     ) -> torch.Tensor | None:
    """Each element's bit width under ``quant`` for a tensor of ``shape`` (activations: with the
    batch axis, of 1): a `LearnedBits`'s with its gradient, fixed formats' as constants; None
    for no quantizer (an exact value)."""
    if quant is None:
        return None
    if isinstance(quant, LearnedBits):
        w = quant.widths(values)
        return w.reshape(shape) if quant.activation else w
    if isinstance(quant, Fixed):
        return torch.full(shape, float(quant.format.width), dtype=torch.float64)
    if isinstance(quant, PerAxis):
        widths = [float(getattr(f, "width", f.emax - f.emin + 2 if hasattr(f, "emax") else 0)) for f in quant.formats]
        axis = quant.axis % len(shape)
        view = [1] * len(shape)
        view[axis] = len(widths)
        return torch.tensor(widths, dtype=torch.float64).reshape(view).expand(shape)
    if isinstance(quant, PerElement):
        return torch.as_tensor(quant.bits, dtype=torch.float64).expand(shape)
    raise QuantError(f"HardwareCost: no bit widths for a {type(quant).__name__} on an activation")


class _Step:
    def __init__(self, name: str, module: nn.Module, out_shape: tuple[int, ...]):
        self.name, self.module, self.out_shape = name, module, out_shape


def _chain(model: nn.Module, example: torch.Tensor) -> list[_Step]:
    """The model's modules in call order, checked to be a chain (each reads the last's output)."""
    quant_types = QUANT_LAYERS + (QuantInput, QuantReLU)
    inside_quant, hooked = set(), []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in inside_quant) or isinstance(module, Quantizer):
            continue
        if isinstance(module, quant_types):
            inside_quant.add(name)
            hooked.append((name, module))
        elif not any(True for _ in module.children()):
            if any(True for _ in module.parameters(recurse=False)):
                raise QuantError(f"HardwareCost: module {name!r} ({type(module).__name__}) has parameters but is not "
                                 f"a quantized module; its hardware has no cost model (use QuantLinear, QuantConv1d "
                                 f"or QuantConv2d, and fold BatchNorm into the layer)")
            hooked.append((name, module))
    calls = record_calls(model, example, hooked, eval_mode=True)
    steps, last = [], example
    for name, module, x, y in calls:
        if x is not last:
            raise QuantError(f"HardwareCost: module {name!r} does not read the previous module's output; the cost "
                             f"model follows a chain of modules (nn.Sequential), not branches or functional ops")
        steps.append(_Step(name, module, tuple(y.shape)))
        last = y
    if not steps or not isinstance(steps[0].module, QuantInput):
        raise QuantError("HardwareCost: the model's first module must be a QuantInput (the input's bit widths)")
    return steps


def _layer_op(module: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(module, QuantLinear):
        return F.linear(x, weight)
    return module._conv_forward(x, weight, None)


class HardwareCost:
    """``HardwareCost(model, example_input, part=..., clock_ns=...)``; ``cost()`` returns
    ``{"lut": ..., "latency": ...}`` (torch scalars with gradients to the weights' and
    activations' `LearnedBits`) and ``"layers"``: per layer its features and LUTs.  The example
    input gives the shapes (its first sample is used).  Xilinx parts only: the factors are
    fitted on the LUT6 estimate."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, part: str = DEFAULT_PART,
                 clock_ns: float = 5.0, credit_rows: float = 0.0):
        family = family_of(part)
        if family == "ecp5":
            raise QuantError(f"HardwareCost: part {part!r} is an ECP5; the cost's factors are fitted on Xilinx LUT6 "
                             f"fabric, use a Xilinx part")
        if not clock_ns > 0:
            raise QuantError(f"HardwareCost: clock_ns must be positive, got {clock_ns!r}")
        if not (isinstance(credit_rows, (bool, int, float)) and credit_rows >= 0):
            raise QuantError(f"HardwareCost: credit_rows must be a number >= 0 (the share of a row's LUTs "
                             f"credited per bit of its activation; 0 is off), got {credit_rows!r}")
        self.model, self.part, self.clock_ns = model, part, float(clock_ns)
        self.credit_rows = float(credit_rows)
        self.steps = _chain(model, example_input[:1])
        self.delay = delay_model(family)

    def __call__(self) -> dict:
        widths, layers = None, []
        for step in self.steps:
            m = step.module
            if isinstance(m, QuantInput):
                widths = quantizer_widths(m.quant, step.out_shape)
            elif isinstance(m, QUANT_LAYERS):
                layer = self._layer(step, widths)
                layers.append(layer)
                widths = layer.pop("out_widths")
            elif isinstance(m, QuantReLU):
                if m.output_quant is not None:
                    widths = quantizer_widths(m.output_quant, step.out_shape)
                    if layers:  # the layer's sum is requantized to the ReLU's format (fused)
                        layers[-1]["requantize_bits"] = layers[-1]["requantize_bits"] + widths.sum()
                        if self.credit_rows:
                            _credit_rows(layers[-1], widths, self.credit_rows)
            else:
                was = m.training
                m.eval()
                try:
                    widths = m(widths)
                finally:
                    m.train(was)
        for layer in layers:
            layer.pop("row_luts", None)
        zero = torch.zeros((), dtype=torch.float64)
        lut = sum((layer["lut"] for layer in layers), zero)
        latency = sum((layer["cycles"] for layer in layers), zero)
        return {"lut": lut, "latency": latency, "layers": layers}

    @staticmethod
    def _lut(layer: dict) -> torch.Tensor:
        return TERMS_BITS * layer["terms_bits"] + TERMS * layer["terms"] + ACCUMULATOR * layer["accumulator_bits"]

    def _layer(self, step: _Step, widths: torch.Tensor) -> dict:
        m = step.module
        with torch.no_grad():  # the rounded weights (a relaxed LearnedBits's training forward is not)
            q_weight = m.weight_quant.forward_exact(m.weight.detach().to(torch.float64))
        digits = csd_digits(q_weight)
        if isinstance(m.weight_quant, LearnedBits):
            bits = m.weight_quant.widths(m.weight)
            digits = digits + (digits > 0) * DIGITS_PER_BIT * (bits - bits.detach())
        present = (widths > 0).to(torch.float64)
        row_bits = _layer_op(m, widths, digits)  # the digit terms' widths, summed per output (position)
        per_row = _layer_op(m, present, digits)  # digit terms of each output
        live = (per_row.detach() > 0).to(torch.float64)
        accumulator = live * (row_bits / per_row.clamp_min(1) + torch.log2(per_row.clamp_min(0) + 1))
        out = quantizer_widths(m.output_quant, step.out_shape)
        if out is None:  # an exact sum: its width, as a constant (no requantize)
            span = _value_bits(q_weight) + math.ceil(math.log2(max(q_weight[0].numel(), 1) + 1))
            out = torch.full(step.out_shape, float(widths.detach().max()) + span, dtype=torch.float64)
            requantize_bits = torch.zeros((), dtype=torch.float64)
        else:
            requantize_bits = out.sum()
        layer = {"name": step.name, "terms_bits": row_bits.sum(), "terms": per_row.sum(),
                 "accumulator_bits": accumulator.sum(), "rows": live.sum(),
                 "requantize_bits": requantize_bits, "cycles": self._cycles(per_row, widths), "out_widths": out}
        layer["lut"] = self._lut(layer)
        layer["row_luts"] = TERMS_BITS * row_bits + TERMS * per_row + ACCUMULATOR * accumulator  # per output
        return layer

    def _cycles(self, per_row: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        levels = torch.log2(per_row.clamp_min(0) + 1).flatten()
        deepest = SOFT_MAX_LEVELS * torch.logsumexp(levels / SOFT_MAX_LEVELS, 0) if levels.numel() else levels.sum()
        width = int(widths.detach().max()) + 8 if widths.numel() else 16
        return deepest / self.delay.levels_per_stage(self.clock_ns, width) + 1


def _credit_rows(layer: dict, widths: torch.Tensor, share: float) -> None:
    """``layer``'s LUTs with each row counted only while its activation (``widths``, the layer's
    output shape) is kept, and a gradient of ``share * row LUTs / width`` to that width (module docstring)."""
    rows = layer.pop("row_luts")
    if rows.shape != widths.shape:
        return
    held = widths.detach()
    kept = (held > 0).to(torch.float64) * (1 + share * (widths - held) / held.clamp_min(1))
    layer["lut"] = (rows * kept).sum()


def _value_bits(values: torch.Tensor) -> int:
    """Bits from the largest magnitude's top bit to the smallest nonzero value's lowest, plus a sign."""
    v = np.abs(values.detach().cpu().numpy().astype(np.float64))
    v = v[v != 0]
    if not v.size:
        return 1
    _, top = np.frexp(v.max())
    mantissa, exp = np.frexp(v)
    n = np.ldexp(mantissa, 53).astype(np.int64)
    low = int((exp - 53 + _trailing_zeros(n)).min())
    return int(top) - low + 1


def estimate_export(exported, part: str = DEFAULT_PART, clock_ns: float = 5.0) -> dict:
    """The estimator's figures (`compiler.estimate.estimate_context`, fully parallel RTL) of an
    `export` result: what `HardwareCost` models."""
    from .. import compile_model

    return compile_model(str(exported.model), str(exported.plan), part=part, clock_ns=clock_ns).estimate().to_dict()
