"""Per-weight bit widths learned by gradient (HGQ) against the LUT cost, and the uniform 6-bit baseline.

Both are the jet tagger of ``../small_tagger.py`` (16-32-16-5 unless ``--hidden`` says
otherwise), fine-tuned from the same float model for the same epochs on the same batches, with
the same input, bias and activation formats:

* ``uniform.onnx``, ``uniform_plan.json``: every weight ``fixed<6,I,RND_CONV,SAT>``, I per
  layer from its largest |w|. The baseline of all three precision-scheme examples.
* ``model.onnx``, ``plan.json``, ``arrays.npz``: made with ``compiler.train``. The model is
  rebuilt from its modules (QuantInput, QuantLinear, QuantReLU with the formats above), every
  weight gets a `LearnedBits` quantizer of its own (per element, starting at the baseline's
  format), and `train_bit_widths` trains weights and fractional bits together on
  ``cross-entropy + LAM * HardwareCost["lut"]`` (the estimator's LUT model of the RTL), so the
  bits fall wherever the LUTs they cost buy too little accuracy; a weight whose width falls to
  its sign bit, or whose value rounds to 0, is pruned. `freeze` turns the widths into the
  plan's per-element formats and `export` writes the files and checks that finegrain's
  emulator reproduces the model bit for bit on the 1000 test jets.

Run: ``python examples/per_weight_bits/train.py [--out DIR] [--hidden 64,32,32]``
"""

from __future__ import annotations

import functools
import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import minimal_signed_formats, write_plan  # noqa: E402  (the shared helpers live one folder up)
from small_tagger import (  # noqa: E402
    FINE_TUNE_EPOCHS, FINE_TUNE_LR, UNIFORM_WEIGHT_WIDTH, SmallTagger, check_variant, deployed, fake_format,
    fine_tune, jet, start, uniform_weight_formats, variant_plan, weight_count, write_variant,
)

from compiler.train import (  # noqa: E402
    HardwareCost, QuantInput, QuantLinear, QuantReLU, attach_learned_bits, export, freeze, train_bit_widths,
)
from compiler.train.export import check_export  # noqa: E402

LAM = 6e-5  # loss per estimated LUT: trades accuracy for LUTs
BIT_LR = 0.01  # Adam's step for the fractional bits (the weights take FINE_TUNE_LR)
BATCH = 256


class Batches:
    """The training jets in ``BATCH``-sized batches, a new seeded order per epoch: the batches
    `jet.train` (and so the baseline's fine-tuning) draws, as the ``(x, y)`` iterable
    `train_bit_widths` reads once per epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.generator = torch.Generator().manual_seed(jet.SEED)

    def __iter__(self):
        for batch in torch.randperm(len(self.x), generator=self.generator).split(BATCH):
            yield self.x[batch], self.y[batch]


def quantized_model(model: SmallTagger, plan: dict, weight_formats: list[str]) -> nn.Sequential:
    """``model`` as compiler.train modules named like it (``fc1``, ``relu1``, ...: the ONNX names
    stay the jet tagger's), with ``plan``'s input, bias and ReLU output formats."""
    tensors, fcs = plan["tensors"], model.layers()
    modules = OrderedDict(x=QuantInput(plan["defaults"]["input"]))
    for index, (fc, weight_format) in enumerate(zip(fcs, weight_formats), start=1):
        layer = QuantLinear(fc.in_features, fc.out_features, weight_quant=weight_format,
                            bias_quant=tensors[f"fc{index}.bias"])
        with torch.no_grad():
            layer.weight.copy_(fc.weight)
            layer.bias.copy_(fc.bias)
        modules[f"fc{index}"] = layer
        if index < len(fcs):
            modules[f"relu{index}"] = QuantReLU(output_quant=tensors[f"/relu{index}/Relu_output_0"])
    return nn.Sequential(modules)


def plain_model(quantized: nn.Sequential, hidden: tuple[int, ...]) -> SmallTagger:
    """The float model holding ``quantized``'s quantized weights and biases (float activations)."""
    plain = SmallTagger(hidden)
    fcs = [m for m in quantized if isinstance(m, QuantLinear)]
    with torch.no_grad():
        for source, target in zip(fcs, plain.layers()):
            target.weight.copy_(source.quantized_weight().to(torch.float32))
            target.bias.copy_(source.quantized_bias().to(torch.float32))
    return plain.eval()


def jet_tagger_names(exported, base_plan: dict, note: str) -> dict:
    """Give the exported files the jet tagger's conventions: input ``x`` and output ``logits``
    with a free batch axis, and a plan laid out as the baseline's (``base_plan``'s input, bias
    and ReLU entries, which must be the ones `export` wrote, plus its weight entries).
    Returns the plan written."""
    model = onnx.load(str(exported.model))
    graph = model.graph
    renamed = {graph.input[0].name: "x", graph.output[0].name: "logits"}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for value in (graph.input[0], graph.output[0]):
        value.name = renamed[value.name]
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(exported.model))

    written = exported.plan.read_text()
    tensors = {renamed.get(name, name): entry for name, entry in json.loads(written)["tensors"].items()}
    expected = {**base_plan["tensors"], "x": base_plan["defaults"]["input"]}
    for name, entry in expected.items():
        if tensors.pop(name) != entry:
            raise RuntimeError(f"export wrote {name}: {entry!r} differently from the baseline's plan")
    plan = variant_plan(base_plan, note, tensors)
    write_plan(exported.plan, plan)
    return plan


def weight_statistics(quantized: nn.Sequential) -> dict:
    """Per layer: weights, pruned ones (0 bits or value 0) and the bits of the narrowest format
    holding each kept weight's value (`plan_tools.minimal_signed_formats`: the bits a weight
    really needs; the plan's widths come from the learned fractional bits and may be wider)."""
    stats = {}
    with torch.no_grad():
        for name, layer in quantized.named_children():
            if isinstance(layer, QuantLinear):
                bits, _ = minimal_signed_formats(layer.quantized_weight().numpy())
                plan_bits = layer.weight_quant.bits
                stats[f"{name}.weight"] = {
                    "weights": bits.size, "pruned": int((bits == 0).sum()), "total_bits": int(bits.sum()),
                    "by_bits": np.bincount(bits.ravel()).tolist(), "plan_bits": int(plan_bits.sum()),
                    "zero_width": int((plan_bits == 0).sum())}
    return stats


def main():
    run = start(__file__, __doc__, "the ONNX models, plans and arrays.npz")
    torch.set_num_threads(1)
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

    # per-weight learned bits, against the hardware cost
    quantized = quantized_model(model, run.plan, formats)
    x_test = torch.from_numpy(run.x_test)
    attach_learned_bits(quantized, x_test[:8], "element", activations=False, inputs=False,
                        rounding="RND_CONV", overflow="SAT")
    cost = HardwareCost(quantized, x_test[:8])
    print(f"hardware cost before: {float(cost()['lut'].detach()):,.0f} LUTs")
    torch.manual_seed(jet.SEED)
    history = train_bit_widths(quantized, Batches(run.x_train, run.y_train), lam=LAM, epochs=FINE_TUNE_EPOCHS,
                               cost=cost, lr=FINE_TUNE_LR, bit_lr=BIT_LR)
    for h in history:
        print(f"  epoch {h['epoch']}: task loss {h['task_loss']:.4f}, {h['lut']:,.0f} LUTs")
    freeze(quantized.eval())
    print(f"hardware cost after: {float(cost()['lut'].detach()):,.0f} LUTs")
    exported = export(quantized, x_test, run.out)  # its check: the emulator reproduces all 1000 test jets
    plan = jet_tagger_names(exported, run.plan, (
        f"Per-weight bits learned by gradient (HGQ) against the LUT cost, see train.py: compiler.train's "
        f"LearnedBits per weight trained by train_bit_widths (lam {LAM:g} per LUT), frozen: every weight has "
        f"its own format in arrays.npz (0 bits: pruned). Input, biases and ReLU outputs as in "
        f"uniform_plan.json."))
    check_export(quantized, x_test, exported)  # again, on the renamed files
    plain = plain_model(quantized, model.hidden)
    with torch.no_grad():
        float_logits = plain(x_test).numpy()
    result = check_variant(run, exported.model, plan, float_logits)
    with torch.no_grad():
        emulated = (quantized(x_test).argmax(1).numpy() == run.y_test).mean()
    stats = weight_statistics(quantized)
    for name, s in stats.items():
        print(f"  {name}: {s['pruned']}/{s['weights']} pruned ({s['zero_width']} at 0 bits in the plan), "
              f"weights by bits needed {s['by_bits']}, {s['total_bits']} bits in all ({s['plan_bits']} in the plan)")
    total = sum(s["total_bits"] for s in stats.values())
    print(f"per-weight bits: {total} weight bits against {UNIFORM_WEIGHT_WIDTH * weight_count(model)} uniform; "
          f"accuracy onnx {result['onnx']:.1%}, plan {result['plan']:.1%}, torch = emulator {emulated:.1%}")
    print(f"wrote uniform.onnx, uniform_plan.json, model.onnx, plan.json, arrays.npz to {run.out} "
          f"in {run.seconds():.1f} s")


if __name__ == "__main__":
    main()
