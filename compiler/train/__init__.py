"""Quantization-aware training for finegrain (``pip install finegrain[train]``: needs torch).

Torch modules whose quantizers are a bit plan's, and `export`, which writes the ONNX model and
the plan that finegrain compiles and emulates bit for bit like the torch forward pass::

    from compiler.train import QuantInput, QuantLinear, QuantReLU, export
    model = torch.nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                                QuantLinear(16, 8, weight_quant="fixed<6,1,RND_CONV,SAT>",
                                            bias_quant="fixed<12,4,RND_CONV,SAT>"),
                                QuantReLU(output_quant="ufixed<8,3,RND_CONV,SAT>"))
    export(model, torch.randn(1, 16), "out/")   # out/model.onnx, out/plan.json

Finding the plan (docs/training.md), each method sharing the modules and finegrain's estimator:
bit widths learned by gradient against the hardware cost (`LearnedBits`, `HardwareCost`,
`train_bit_widths`, `relax_bit_widths`, `freeze`, `fine_tune_frozen`, `prune_dead_rows`; targets
distilled from float teachers, `soft_targets`); an ILP
over candidate widths under LUT, DSP and latency budgets (`plan_by_ilp`, `solve_precisions`);
row-wise mixed schemes by Hessian trace (`row_hessian_traces`, `mix_rows`); codebooks from a learned Gaussian mixture
(`soft_weight_sharing`, `apply_codebooks`).
"""

from .bits import (
    LearnedBits, attach_learned_bits, fine_tune_frozen, freeze, prune_dead_rows, relax_bit_widths, train_bit_widths,
)
from .cost import HardwareCost, estimate_export
from .distill import soft_targets
from .export import Exported, export
from .gmm import GaussianMixturePrior, apply_codebooks, soft_weight_sharing, to_codebook
from .hessian import assign_rows, mix_rows, row_hessian_traces
from .ilp import BudgetError, cost_table, plan_by_ilp, solve_precisions
from .modules import QuantConv1d, QuantConv2d, QuantInput, QuantLinear, QuantReLU
from .quant import Codebook, Fixed, PerAxis, PerElement, Pow2, QuantError, Quantizer

__all__ = [
    "BudgetError", "Codebook", "Exported", "Fixed", "GaussianMixturePrior", "HardwareCost", "LearnedBits", "PerAxis",
    "PerElement", "Pow2", "QuantConv1d", "QuantConv2d", "QuantError", "QuantInput", "QuantLinear", "QuantReLU",
    "Quantizer", "apply_codebooks", "assign_rows", "attach_learned_bits", "cost_table", "estimate_export", "export",
    "fine_tune_frozen", "freeze", "mix_rows", "plan_by_ilp", "prune_dead_rows", "relax_bit_widths",
    "row_hessian_traces", "soft_targets", "soft_weight_sharing", "solve_precisions", "to_codebook", "train_bit_widths",
]
