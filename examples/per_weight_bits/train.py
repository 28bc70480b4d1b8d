"""Per-weight bit widths learned by gradient (HGQ-style), and the uniform 6-bit baseline.

Both are the jet tagger of ``../small_tagger.py`` (16-32-16-5 unless ``--hidden`` says
otherwise), fine-tuned from the same float model for the same epochs, with the same input,
bias and activation formats:

* ``uniform.onnx``, ``uniform_plan.json``: every weight ``fixed<6,I,RND_CONV,SAT>``, I per
  layer from its largest |w|. The baseline of all three precision-scheme examples.
* ``model.onnx``, ``plan.json``, ``arrays.npz``: every weight has its own number of fractional
  bits ``f``, a trained parameter. The forward pass rounds the weight to a multiple of
  ``2**-round(f)``; the loss adds ``BIT_PENALTY`` times the mean bit count, so ``f`` falls
  wherever the task allows, and a weight that rounds to 0 is pruned. Each weight's plan
  format is the narrowest ``fixed<bits,int_bits>`` holding its trained value (0 bits if
  pruned), stored per element in ``arrays.npz``.

Run: ``python examples/per_weight_bits/train.py [--out DIR] [--hidden 64,32,32]``
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import Format, minimal_signed_formats  # noqa: E402  (the shared helpers live one folder up)
from small_tagger import (  # noqa: E402
    UNIFORM_WEIGHT_WIDTH, deployed, fake_format, fine_tune, start, uniform_weight_formats, variant_plan,
    weight_count, write_variant,
)

BIT_PENALTY = 0.05  # loss per mean bit of weight: trades accuracy for bits
FRAC_MIN, FRAC_MAX = -4, 10
# Adam moves every parameter by about its learning rate per step whatever the gradient's
# size; the fractional bits are stored divided by this so they move this much faster.
FRAC_SPEED = 10.0


class LearnedBits(nn.Module):
    """Fake-quantizes a weight with a trained number of fractional bits per element.

    The weight passes straight through (STE). The fractional bits ``f`` are rounded in the
    forward pass (STE); their gradient comes from HGQ's surrogate: the rounding error
    ``delta`` scales like ``2**-f``, so ``d(delta)/df = -ln(2) * delta``.
    """

    def __init__(self, weight: torch.Tensor, int_bits: int):
        super().__init__()
        initial = UNIFORM_WEIGHT_WIDTH - int_bits  # start where the uniform 6-bit baseline is
        self.stored_frac = nn.Parameter(torch.full_like(weight.detach(), initial / FRAC_SPEED))

    def frac(self) -> torch.Tensor:
        return torch.clamp(FRAC_SPEED * self.stored_frac, FRAC_MIN, FRAC_MAX)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        frac = self.frac()
        frac = frac + (torch.round(frac) - frac).detach()
        scale = torch.exp2(frac.detach())
        delta = (torch.round(weight.detach() * scale) / scale - weight).detach()
        return weight + delta - math.log(2) * delta * (frac - frac.detach())

    def bits(self, weight: torch.Tensor) -> torch.Tensor:
        """Differentiable bit count per weight: integer bits (sign included, from |w|) + f, >= 0."""
        magnitude = weight.detach().abs().clamp_min(1e-12)
        int_bits = torch.floor(torch.log2(magnitude)) + 2
        return torch.relu(int_bits + self.frac())


def bit_penalty(tuned) -> torch.Tensor:
    quantizers = tuned.quantizers[1]
    total = sum(q.bits(fc.weight).sum() for q, fc in zip(quantizers, tuned.layers()))
    return BIT_PENALTY * total / weight_count(tuned)


def learned_entries(tuned, out: Path) -> tuple[dict, dict]:
    """Plan entries for the learned weights, written to ``OUT/arrays.npz``, and statistics per layer."""
    arrays, entries, stats = {}, {}, {}
    with torch.no_grad():
        for index, (q, fc) in enumerate(zip(tuned.quantizers[1], tuned.layers()), start=1):
            bits, int_bits = minimal_signed_formats(q(fc.weight).numpy().astype(np.float64))
            key = f"fc{index}w"
            arrays[f"{key}.bits"] = bits.astype(np.int8)
            arrays[f"{key}.int_bits"] = int_bits.astype(np.int8)
            arrays[f"{key}.signed"] = np.ones_like(bits, dtype=np.int8)
            entries[f"fc{index}.weight"] = {"elements": f"arrays.npz:{key}", "rounding": "RND_CONV",
                                            "overflow": "SAT"}
            kept = bits > 0
            stats[f"fc{index}.weight"] = {"weights": bits.size, "pruned": int((~kept).sum()),
                                          "mean_bits_kept": float(bits[kept].mean()) if kept.any() else 0.0,
                                          "total_bits": int(bits.sum())}
    np.savez_compressed(out / "arrays.npz", **arrays)
    return entries, stats


def main():
    run = start(__file__, __doc__, "the ONNX models, plans and arrays.npz")
    model = run.model
    with torch.no_grad():
        float_accuracy = (model(torch.from_numpy(run.x_test)).argmax(1).numpy() == run.y_test).mean()
    print(f"float {model.architecture()} model: {float_accuracy:.1%}")

    # the uniform 6-bit baseline
    formats = uniform_weight_formats(model)
    uniform = variant_plan(run.plan, (
        f"Uniform 6-bit baseline of the precision-scheme examples (issue 6): the {model.architecture()} "
        f"jet tagger fine-tuned with these formats in the loop. Weights fixed<{UNIFORM_WEIGHT_WIDTH},I> "
        "per layer, I from the layer's largest |w|; biases fixed<10,I> per layer; ReLU outputs "
        "ufixed<8,I> from the float model's training-set maxima plus one bit. Gemm outputs and "
        "logits exact."), {f"fc{i}.weight": f for i, f in enumerate(formats, start=1)})
    tuned = fine_tune(run, uniform, [functools.partial(fake_format, fmt=f) for f in formats])
    result = write_variant(run, "uniform", deployed(tuned), uniform)
    print(f"uniform 6-bit: weights {', '.join(formats)}; accuracy onnx {result['onnx']:.1%}, "
          f"plan {result['plan']:.1%}")

    # per-weight learned bits
    int_bits = [Format.parse(f).int_bits for f in formats]
    quantizers = [LearnedBits(fc.weight, i) for fc, i in zip(model.layers(), int_bits)]
    tuned = fine_tune(run, run.plan, quantizers, penalty=bit_penalty)
    entries, stats = learned_entries(tuned, run.out)
    learned = variant_plan(run.plan, (
        "Per-weight bits learned by gradient (HGQ-style), see train.py: every weight has its own "
        "fixed<bits,int_bits> in arrays.npz (0 bits: pruned). Input, biases and ReLU outputs as "
        "in uniform_plan.json."), entries)
    result = write_variant(run, "model", deployed(tuned), learned)
    for name, s in stats.items():
        print(f"  {name}: {s['pruned']}/{s['weights']} pruned, kept weights {s['mean_bits_kept']:.2f} bits "
              f"on average, {s['total_bits']} bits in all")
    total = sum(s["total_bits"] for s in stats.values())
    print(f"per-weight bits: {total} weight bits against {UNIFORM_WEIGHT_WIDTH * weight_count(model)} uniform; "
          f"accuracy onnx {result['onnx']:.1%}, plan {result['plan']:.1%}")
    print(f"wrote uniform.onnx, uniform_plan.json, model.onnx, plan.json, arrays.npz to {run.out} "
          f"in {run.seconds():.1f} s")


if __name__ == "__main__":
    main()
