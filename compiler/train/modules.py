"""Drop-in torch modules whose quantizers are a bit plan's: QuantInput, QuantLinear,
QuantConv1d, QuantConv2d, QuantReLU.

Each takes torch's own constructor arguments plus its quantizers (`compiler.train.quant`
objects or format strings).  The forward pass is the emulator's (`compiler/emulate.py`):

* the model input is converted by QuantInput's format (`emulate.quantize_inputs`);
* a layer's weight and bias are converted by their quantizers, the products and their sum
  with the bias are exact (the emulator's accumulator), and an ``output_quant`` requantizes
  that sum (a format on the Gemm/Conv output; None keeps it exact, as the plan's
  ``"activation": null``);
* QuantReLU is exact and its ``output_quant`` is the plan's format of the ReLU's output.

Everything runs in float64, where a value is exact while its mantissa fits in 53 bits: a
layer's sums are exact while ``input bits + weight bits + ceil(log2(fan-in + 1))`` (the bits
of the exact accumulator, bias included) stay within 53, which `compiler/estimate.py`'s
accumulator widths show.  Export writes weights and biases as float32, so their formats hold
at most 24 significant bits (export checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .quant import QuantError, Quantizer, as_quantizer


def record_calls(model: nn.Module, example: torch.Tensor, modules, *, eval_mode: bool = False) -> list[tuple]:
    """Run ``model`` once on ``example`` without gradients and return the calls of ``modules``
    (``(name, module)`` pairs) in order, each ``(name, module, input, output)``; with
    ``eval_mode`` the model runs in eval mode and gets its own mode back.  The hooks are removed
    whatever happens."""
    calls, handles = [], []
    for name, module in modules:
        handles.append(module.register_forward_hook(
            lambda m, args, out, name=name: calls.append((name, m, args[0], out))))
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        if eval_mode:
            model.train(was_training)
        for h in handles:
            h.remove()
    return calls


class QuantInput(nn.Module):
    """Quantizes the model input by its format (a fixed-point quantizer); the plan's input entry."""

    def __init__(self, quant):
        super().__init__()
        self.quant = as_quantizer(quant, weight=False, what="QuantInput")
        if self.quant is None:
            raise QuantError("QuantInput needs a format, e.g. QuantInput('fixed<8,3,RND_CONV,SAT>')")

    def forward(self, x):
        self.quant.check(tuple(x.shape), "QuantInput")
        return self.quant(x)


class QuantReLU(nn.ReLU):
    """ReLU whose output is converted by ``output_quant`` (the plan's activation format; None: exact)."""

    def __init__(self, inplace: bool = False, *, output_quant=None):
        super().__init__(inplace=False)  # the quantized output is a new tensor anyway
        self.output_quant = as_quantizer(output_quant, weight=False, what="QuantReLU output_quant")

    def forward(self, x):
        y = F.relu(x.to(torch.float64))
        if self.output_quant is not None:
            self.output_quant.check(tuple(y.shape), "QuantReLU output")
            y = self.output_quant(y)
        return y


class _QuantLayer:
    """What the quantized layers share: their quantizers and the quantized weight and bias."""

    def _set_quantizers(self, weight_quant, bias_quant, output_quant):
        name = type(self).__name__
        self.weight_quant = as_quantizer(weight_quant, weight=True, what=f"{name} weight_quant")
        self.bias_quant = as_quantizer(bias_quant, weight=True, what=f"{name} bias_quant")
        self.output_quant = as_quantizer(output_quant, weight=False, what=f"{name} output_quant")
        if self.weight_quant is None:
            raise QuantError(f"{name} needs a weight_quant (a format string or a quantizer); the plan "
                             f"gives every weight a format")
        if self.bias is not None and self.bias_quant is None:
            raise QuantError(f"{name} has a bias but no bias_quant; give one (e.g. 'fixed<16,6,RND_CONV,SAT>') "
                             f"or bias=False")
        self.weight_quant.check(tuple(self.weight.shape), f"{name} weight")
        if self.bias is not None:
            self.bias_quant.check(tuple(self.bias.shape), f"{name} bias")

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def quantized_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias_quant(self.bias)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        if self.output_quant is None:
            return y
        self.output_quant.check(tuple(y.shape), f"{type(self).__name__} output")
        return self.output_quant(y)


class QuantLinear(_QuantLayer, nn.Linear):
    """nn.Linear with its weight and bias converted by ``weight_quant`` and ``bias_quant`` (the plan's
    formats), exact products and sums in float64, and the sum converted by ``output_quant`` (None: exact)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, *,
                 weight_quant, bias_quant=None, output_quant=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._set_quantizers(weight_quant, bias_quant, output_quant)

    def forward(self, x):
        return self._output(F.linear(x.to(torch.float64), self.quantized_weight(), self.quantized_bias()))


class _QuantConv(_QuantLayer):
    """QuantConv1d and QuantConv2d: torch's own Conv1d / Conv2d arguments, then the quantizers
    (``super().__init__`` is the torch class the subclass also derives from)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *,
                 weight_quant, bias_quant=None, output_quant=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        if self.padding_mode != "zeros":
            raise QuantError(f"{type(self).__name__}: padding_mode {self.padding_mode!r} is not supported; "
                             f"finegrain's Conv pads with zeros (padding_mode='zeros')")
        self._set_quantizers(weight_quant, bias_quant, output_quant)

    def forward(self, x):
        return self._output(self._conv_forward(x.to(torch.float64), self.quantized_weight(), self.quantized_bias()))


class QuantConv1d(_QuantConv, nn.Conv1d):
    """nn.Conv1d (zero padding only) with ``weight_quant``, ``bias_quant`` and ``output_quant``, as `QuantLinear`."""


class QuantConv2d(_QuantConv, nn.Conv2d):
    """nn.Conv2d (zero padding only) with ``weight_quant``, ``bias_quant`` and ``output_quant``, as `QuantLinear`."""


QUANT_LAYERS = (QuantLinear, QuantConv1d, QuantConv2d)
__all__ = ["QuantInput", "QuantReLU", "QuantLinear", "QuantConv1d", "QuantConv2d", "Quantizer"]
