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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from small_tagger import (  # noqa: E402  (one folder up)
    deployed, fine_tune, float32_weights, jet, start, variant_plan, write_variant,
)

from compiler.train.hessian import assign_rows, row_hessian_traces  # noqa: E402

# (share of each layer's rows, format template), most sensitive rows first: `*` is filled per
# row (compiler/train/hessian.py): the integer bits, or pow2's EMAX with two exponents below it
ROW_MIX = ((0.125, "fixed<6,*,RND_CONV,SAT>"), (0.25, "fixed<4,*,RND_CONV,SAT>"), (0.625, "pow2<*-2,*>"))
HESSIAN_SAMPLES, HESSIAN_PROBES = 8192, 64


def main():
    run = start(__file__, __doc__, "model.onnx and plan.json")
    x, y = (torch.from_numpy(a[:HESSIAN_SAMPLES]) for a in (run.x_train, run.y_train))
    traces = row_hessian_traces(run.model, x, y, probes=HESSIAN_PROBES, seed=jet.SEED)
    quantizers = {f"fc{index}.weight": assign_rows(traces[f"fc{index}"], ROW_MIX, weight=fc.weight)
                  for index, fc in enumerate(run.model.layers(), start=1)}
    entries = {name: {"axis": 0, "formats": [str(f) for f in q.formats]} for name, q in quantizers.items()}
    shares = ", ".join(f"{share:.1%} {template}" for share, template in ROW_MIX)
    plan = variant_plan(run.plan, (
        f"Row-wise mixed schemes, see train.py: per output row of each weight, by decreasing Hessian "
        f"trace: {shares} (pow2<EMAX-2,EMAX>: 0 or +-2^e). Input, biases and ReLU outputs as in "
        f"../per_weight_bits/uniform_plan.json."), entries)
    tuned = fine_tune(run, plan, [float32_weights(q) for q in quantizers.values()])
    result = write_variant(run, "model", deployed(tuned), plan)
    for name, entry in entries.items():
        counts = {f: entry["formats"].count(f) for f in sorted(set(entry["formats"]))}
        print(f"  {name}: {counts}")
    print(f"row-wise mixed: accuracy onnx {result['onnx']:.1%}, plan {result['plan']:.1%}")
    print(f"wrote model.onnx, plan.json to {run.out} in {run.seconds():.1f} s")


if __name__ == "__main__":
    main()
