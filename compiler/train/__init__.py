"""Quantization-aware training for finegrain (``pip install finegrain[train]``: needs torch).

Torch modules whose quantizers are a bit plan's, and `export`, which writes the ONNX model and
the plan that finegrain compiles and emulates bit for bit like the torch forward pass::

    from compiler.train import QuantInput, QuantLinear, QuantReLU, export
    model = torch.nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                                QuantLinear(16, 8, weight_quant="fixed<6,1,RND_CONV,SAT>",
                                            bias_quant="fixed<12,4,RND_CONV,SAT>"),
                                QuantReLU(output_quant="ufixed<8,3,RND_CONV,SAT>"))
    export(model, torch.randn(1, 16), "out/")   # out/model.onnx, out/plan.json

Bit widths learned by gradient against the hardware cost: `LearnedBits`, `HardwareCost`,
`train_bit_widths`, `relax_bit_widths`, `freeze`.  See docs/training.md.
"""

from .bits import LearnedBits, attach_learned_bits, freeze, relax_bit_widths, train_bit_widths
from .cost import HardwareCost, estimate_export
from .export import Exported, export
from .modules import QuantConv1d, QuantConv2d, QuantInput, QuantLinear, QuantReLU
from .quant import Codebook, Fixed, PerAxis, PerElement, Pow2, QuantError, Quantizer

__all__ = [
    "Codebook", "Exported", "Fixed", "HardwareCost", "LearnedBits", "PerAxis", "PerElement", "Pow2", "QuantConv1d",
    "QuantConv2d", "QuantError", "QuantInput", "QuantLinear", "QuantReLU", "Quantizer", "attach_learned_bits",
    "estimate_export", "export", "freeze", "relax_bit_widths", "train_bit_widths",
]
