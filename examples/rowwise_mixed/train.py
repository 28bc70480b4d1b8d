"""Row-wise mixed schemes (RMSMP-style): each output row fixed-point or power-of-two.

The jet tagger of ``../small_tagger.py`` (16-32-16-5 unless ``--hidden`` says otherwise; the
model of the uniform 6-bit baseline in ``../per_weight_bits/``), with one weight format per
output row (axis 0 of every Gemm weight), chosen from three: ``fixed<6,I>``, ``fixed<4,I>``
and ``pow2<EMAX-2,EMAX>`` (0 or +-2**e with three exponents: 3 bits with the sign), I and
EMAX per row from the row's largest |w|.

Rows are ranked per layer by the trace of the loss Hessian restricted to the row (estimated
on the float model with Hutchinson's method: E[v . Hv] over random +-1 vectors v). The
most sensitive eighth of each layer's rows keeps 6 bits, the next quarter gets 4, and the
rest become powers of two, which need no multiplier in hardware and prune the smallest
weights. The same shares hold in every layer (RMSMP's layer-wise uniformity), turned into
row counts as the plan's ``mix`` entries do (largest remainder). The model is then
fine-tuned with these row formats in the loop.

Writes ``model.onnx`` and ``plan.json``.
Run: ``python examples/rowwise_mixed/train.py [--out DIR] [--hidden 64,32,32]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import Format, parse_pow2, quantize_pow2, signed_int_bits  # noqa: E402  (one folder up)
from small_tagger import (  # noqa: E402
    deployed, fake_fixed, fine_tune, jet, start, straight_through, variant_plan, write_variant,
)

# (share of each layer's rows, format kind, width), most sensitive rows first
ROW_MIX = ((0.125, "fixed", 6), (0.25, "fixed", 4), (0.625, "pow2", 3))
HESSIAN_SAMPLES, HESSIAN_PROBES = 8192, 64


def row_hessian_traces(model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Per layer, per output row: the trace of the loss Hessian over that row's weights.

    Hutchinson: for Rademacher v, E[v * (H v)] is the Hessian's diagonal; summed over a row
    it estimates the row's trace.
    """
    weights = [fc.weight for fc in model.layers()]
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    generator = torch.Generator().manual_seed(jet.SEED)
    traces = [torch.zeros(w.shape[0], dtype=torch.float64) for w in weights]
    for _ in range(HESSIAN_PROBES):
        probes = [torch.randint(0, 2, w.shape, generator=generator).float() * 2 - 1 for w in weights]
        products = torch.autograd.grad(grads, weights, grad_outputs=probes, retain_graph=True)
        for trace, v, hv in zip(traces, probes, products):
            trace += (v * hv).sum(dim=1).double() / HESSIAN_PROBES
    return [t.numpy() for t in traces]


def row_counts(rows: int) -> list[int]:
    """Rows per ROW_MIX entry, by largest remainder (a tie to the entry listed first), as
    docs/bit-plan.md says a ``mix`` entry counts them."""
    quotas = [share * rows for share, _, _ in ROW_MIX]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[:rows - sum(counts)]:
        counts[i] += 1
    return counts


def row_format(kind: str, width: int, max_abs: float) -> str:
    if kind == "fixed":
        return str(Format(width, signed_int_bits(max_abs, width), True))
    # the exponent max |w| rounds to, and below it: 2**(width-1) - 1 exponents in all (the
    # sign takes one bit, and the other codes are 0 and the exponents)
    emax = int(np.log2(quantize_pow2(max_abs, -64, 64)))
    return f"pow2<{emax - 2 ** (width - 1) + 2},{emax}>"


def assign_rows(weight: np.ndarray, trace: np.ndarray) -> list[str]:
    """One format per row: ROW_MIX in order of decreasing Hessian trace."""
    order = np.argsort(-trace, kind="stable")
    formats = [""] * len(trace)
    start = 0
    for (_, kind, width), count in zip(ROW_MIX, row_counts(len(trace))):
        for row in order[start:start + count]:
            formats[row] = row_format(kind, width, float(np.abs(weight[row]).max()))
        start += count
    return formats


def fake_pow2(x: torch.Tensor, emin: torch.Tensor, emax: torch.Tensor) -> torch.Tensor:
    """The nearest of 0 and +-2**e, ties to the larger magnitude (as plan_tools.quantize_pow2)."""
    magnitude = x.detach().abs()
    mantissa, exponent = torch.frexp(magnitude)
    e = torch.where(mantissa >= 0.75, exponent, exponent - 1).to(x.dtype)
    rounded = torch.exp2(torch.minimum(torch.maximum(e, emin), emax))
    rounded = torch.where(magnitude >= torch.exp2(emin - 1), rounded, torch.zeros_like(rounded))
    return torch.where(x.detach() < 0, -rounded, rounded)


class RowFormats:
    """Fake-quantizes a weight row by row, each row in its plan format (STE)."""

    def __init__(self, formats: list[str]):
        pow2 = [parse_pow2(f) for f in formats]
        fixed = [None if p else Format.parse(f) for f, p in zip(formats, pow2)]
        column = lambda values: torch.tensor(values, dtype=torch.float32)[:, None]  # noqa: E731
        self.is_pow2 = column([p is not None for p in pow2]).bool()
        self.emin, self.emax = column([p[0] if p else 0 for p in pow2]), column([p[1] if p else 0 for p in pow2])
        self.width = column([f.width if f else 8 for f in fixed])
        self.int_bits = column([f.int_bits if f else 1 for f in fixed])

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        fixed = fake_fixed(weight, self.width, self.int_bits).detach()
        return straight_through(weight, torch.where(self.is_pow2, fake_pow2(weight, self.emin, self.emax), fixed))


def main():
    run = start(__file__, __doc__, "model.onnx and plan.json")
    traces = row_hessian_traces(run.model, run.x_train[:HESSIAN_SAMPLES], run.y_train[:HESSIAN_SAMPLES])
    entries = {f"fc{index}.weight": {"axis": 0, "formats": assign_rows(fc.weight.detach().numpy(), trace)}
               for index, (fc, trace) in enumerate(zip(run.model.layers(), traces), start=1)}
    shares = ", ".join(f"{share:.1%} {kind}<{width}>" for share, kind, width in ROW_MIX)
    plan = variant_plan(run.plan, (
        f"Row-wise mixed schemes, see train.py: per output row of each weight, by decreasing Hessian "
        f"trace: {shares} bits (pow2<EMAX-2,EMAX>: 0 or +-2^e). Input, biases and ReLU outputs as in "
        f"../per_weight_bits/uniform_plan.json."), entries)
    tuned = fine_tune(run, plan, [RowFormats(entry["formats"]) for entry in entries.values()])
    result = write_variant(run, "model", deployed(tuned), plan)
    for name, entry in entries.items():
        counts = {f: entry["formats"].count(f) for f in sorted(set(entry["formats"]))}
        print(f"  {name}: {counts}")
    print(f"row-wise mixed: accuracy onnx {result['onnx']:.1%}, plan {result['plan']:.1%}")
    print(f"wrote model.onnx, plan.json to {run.out} in {run.seconds():.1f} s")


if __name__ == "__main__":
    main()
