"""The model, data and training shared by the precision-scheme examples (issue 6).

``per_weight_bits/``, ``rowwise_mixed/`` and ``codebook/`` each quantize the same small jet
tagger, a ReLU MLP on the jet tagger's toy data, in a different way, and compare it with the
same model at uniform 6-bit precision (written by ``per_weight_bits/train.py``). The model is
16-32-16-5 (``HIDDEN``; the committed files) unless a script is given ``--hidden``, e.g.
``--hidden 64,32,32`` for the jet tagger's own 16-64-32-32-5 shape. The comparison is fair
because every variant is made the same way:

1. ``pretrain``: the float model, trained with ``jet_tagger/train.py``'s data and training
   loop (same seed, so every script gets the same float model);
2. ``fine_tune``: a copy, trained further for the same number of epochs with its weight
   quantizer in the loop (straight-through estimator) and the same input, bias and
   activation formats, all chosen by `base_plan` from the float model;
3. ``export``: the fine-tuned weights and biases, already on their quantization grid, in a
   plain float model written to ONNX, so the plan reproduces them exactly.

Everything runs on one thread and is seeded: two runs write byte-identical files.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from plan_tools import Format, accuracy, quantize_tensor, signed_int_bits, unsigned_int_bits, write_plan

HERE = Path(__file__).resolve().parent


def _load_jet_tagger():
    # Imported by path: every example's script is called train.py, so `import train` would
    # find the caller itself.
    spec = importlib.util.spec_from_file_location("jet_tagger_train", HERE / "jet_tagger" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jet = _load_jet_tagger()

HIDDEN = (32, 16)
PRETRAIN_EPOCHS, FINE_TUNE_EPOCHS, FINE_TUNE_LR = 25, 10, 1e-3
INPUT_FORMAT = jet.INPUT_FORMAT  # fixed<12,5,RND_CONV,SAT>
UNIFORM_WEIGHT_WIDTH, BIAS_WIDTH, ACTIVATION_WIDTH = 6, 10, 8


def jet_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test jets exactly as ``jet_tagger/train.py`` draws them.

    The test set is the committed ``jet_tagger/data.npz`` (checked), so no example keeps a copy.
    """
    rng = np.random.default_rng(jet.SEED)
    raw_train, y_train = jet.generate_jets(jet.TRAIN_JETS, rng)
    raw_test, y_test = jet.generate_jets(jet.TEST_JETS, rng)
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
    x_train, x_test = jet.standardise(raw_train, mean, std), jet.standardise(raw_test, mean, std)
    with np.load(HERE / "jet_tagger" / "data.npz") as committed:
        if not (np.array_equal(committed["x"], x_test) and np.array_equal(committed["y"], y_test)):
            raise RuntimeError("the generated test jets differ from jet_tagger/data.npz: regenerate it first")
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


@dataclass
class Start:
    """What every example script begins with: its output folder, the data, the float model
    and the formats it shares with the baseline (`base_plan`)."""

    out: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model: "SmallTagger"  # knows its hidden sizes, so `deployed` and the plans follow it
    plan: dict
    started: float

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``--hidden`` parsed: comma-separated positive layer widths, e.g. ``64,32,32``."""
    try:
        sizes = tuple(int(size) for size in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden {text!r}: expected positive widths such as 64,32,32")
    return sizes


def start(script: str, doc: str, files: str) -> Start:
    """Parse ``--out`` (default: the script's folder, to hold ``files``) and ``--hidden``,
    make the data and the float model."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(script).resolve().parent,
                        help=f"folder for {files} (default: this folder)")
    parser.add_argument("--hidden", type=hidden_sizes, default=HIDDEN,
                        help=f"hidden layer widths (default {','.join(map(str, HIDDEN))}: the committed "
                             "files; 64,32,32 is the jet tagger's shape)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = jet_data()
    model = pretrain(x_train, y_train, args.hidden)
    return Start(args.out, x_train, y_train, x_test, y_test, model, base_plan(model, x_train), started)


def variant_plan(plan: dict, note: str, weights: dict) -> dict:
    """``plan`` (from `base_plan`) with a note and the variant's weight entries."""
    return {"_note": note, "defaults": plan["defaults"], "tensors": {**plan["tensors"], **weights}}


# --- fake quantization with a straight-through estimator ---------------------------------


def straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (quantized - x).detach()


def fake_fixed(x: torch.Tensor, width, int_bits, signed: bool = True) -> torch.Tensor:
    """``x`` in ``fixed<width,int_bits,RND_CONV,SAT>`` (``ufixed`` unless ``signed``).

    ``width`` and ``int_bits`` may be tensors that broadcast against ``x`` (per row).
    torch.round rounds half to even, as RND_CONV does.
    """
    width, int_bits = torch.as_tensor(width, dtype=x.dtype), torch.as_tensor(int_bits, dtype=x.dtype)
    scale = torch.exp2(width - int_bits)
    low = -torch.exp2(width - 1) if signed else torch.zeros_like(width)
    high = (torch.exp2(width - 1) if signed else torch.exp2(width)) - 1
    mantissa = torch.minimum(torch.maximum(torch.round(x.detach() * scale), low), high)
    return straight_through(x, mantissa / scale)


def float32_weights(quantizer):
    """A compiler.train quantizer (float64 out, straight-through gradient) as a weight
    quantizer of this float32 model: the values are exact in float32 (at most 24 bits)."""
    return lambda weight: quantizer(weight).to(weight.dtype)


def fake_format(x: torch.Tensor, fmt: str) -> torch.Tensor:
    fmt = Format.parse(fmt)
    return fake_fixed(x, fmt.width, fmt.int_bits, fmt.signed)


# --- the model --------------------------------------------------------------------------


class SmallTagger(nn.Module):
    """16-``hidden``-5 ReLU MLP: ``fc1``, ``relu1``, ..., ``fcN`` with N = len(hidden) + 1.

    The module names become the ONNX node and initializer names (``fc2.bias``,
    ``/relu1/Relu_output_0``); they are registered, and so initialised from the seed, in the
    order fc1, relu1, fc2, ... With `quantizers` set, the forward pass fake-quantizes the
    input, every weight and bias and every ReLU output the way the plan will:
    ``(input_format, [weight quantizer per layer], [bias format per layer], [activation
    format per ReLU])``.
    """

    def __init__(self, hidden: tuple[int, ...] = HIDDEN):
        super().__init__()
        self.hidden = tuple(hidden)
        widths = (len(jet.FEATURES), *self.hidden, len(jet.CLASSES))
        for index in range(1, len(widths)):
            self.add_module(f"fc{index}", nn.Linear(widths[index - 1], widths[index]))
            if index < len(widths) - 1:
                self.add_module(f"relu{index}", nn.ReLU())
        self.quantizers = None

    def architecture(self) -> str:
        """``16-32-16-5`` for the default hidden sizes."""
        return "-".join(str(width) for width in (len(jet.FEATURES), *self.hidden, len(jet.CLASSES)))

    def layers(self) -> list[nn.Linear]:
        return [getattr(self, f"fc{index}") for index in range(1, len(self.hidden) + 2)]

    def forward(self, x):
        if self.quantizers is None:
            *hidden_layers, logits_layer = self.layers()
            for index, fc in enumerate(hidden_layers, start=1):
                x = getattr(self, f"relu{index}")(fc(x))
            return logits_layer(x)
        input_format, weight_quantizers, bias_formats, activation_formats = self.quantizers
        x = fake_format(x, input_format)
        for i, fc in enumerate(self.layers()):
            weight = weight_quantizers[i](fc.weight)
            x = nn.functional.linear(x, weight, fake_format(fc.bias, bias_formats[i]))
            if i < len(activation_formats):
                x = fake_format(torch.relu(x), activation_formats[i])
        return x


def pretrain(x_train: np.ndarray, y_train: np.ndarray, hidden: tuple[int, ...]) -> SmallTagger:
    """The float model every variant starts from (one thread, seeded)."""
    torch.set_num_threads(1)
    torch.manual_seed(jet.SEED)
    model = SmallTagger(hidden)
    jet.train(model, x_train, y_train, PRETRAIN_EPOCHS)
    return model


def base_plan(model: SmallTagger, x_train: np.ndarray) -> dict:
    """Input, bias and activation formats of every variant, from the float model.

    Biases get ``fixed<10,I>`` per layer with I from the layer's largest |b|; each ReLU
    output ``ufixed<8,I>`` with I from its training-set maximum plus one bit of margin.
    Gemm outputs and logits stay exact. The weight entries are the schemes' business.
    """
    tensors, activations = {}, []
    with torch.no_grad():
        hidden = torch.from_numpy(x_train)
        for index, fc in enumerate(model.layers()[:-1], start=1):
            hidden = torch.relu(fc(hidden))
            int_bits = unsigned_int_bits(hidden.max().item(), ACTIVATION_WIDTH, margin_bits=1)
            activations.append(str(Format(ACTIVATION_WIDTH, int_bits, False)))
            tensors[f"/relu{index}/Relu_output_0"] = activations[-1]
    for index, fc in enumerate(model.layers(), start=1):
        max_abs = fc.bias.detach().abs().max().item()
        tensors[f"fc{index}.bias"] = str(Format(BIAS_WIDTH, signed_int_bits(max_abs, BIAS_WIDTH), True))
    return {"defaults": {"input": INPUT_FORMAT, "weight": None, "bias": None, "activation": None},
            "tensors": tensors}


def fine_tune(run: Start, plan: dict, weight_quantizers: list) -> SmallTagger:
    """A copy of the float model trained on with the plan's formats and ``weight_quantizers`` in the loop.

    ``weight_quantizers``: one callable per layer, float weight -> quantized weight, without
    parameters of its own (only the model's weights and biases are trained).
    """
    tuned = copy.deepcopy(run.model)
    tensors, layers = plan["tensors"], len(tuned.layers())
    tuned.quantizers = (
        plan["defaults"]["input"],
        weight_quantizers,
        [tensors[f"fc{i}.bias"] for i in range(1, layers + 1)],
        [tensors[f"/relu{i}/Relu_output_0"] for i in range(1, layers)],
    )
    torch.manual_seed(jet.SEED)
    jet.train(tuned, run.x_train, run.y_train, FINE_TUNE_EPOCHS, lr=FINE_TUNE_LR)
    return tuned


def deployed(tuned: SmallTagger) -> SmallTagger:
    """A plain float model holding ``tuned``'s quantized weights and biases, for export."""
    plain = SmallTagger(tuned.hidden)
    input_format, weight_quantizers, bias_formats, _ = tuned.quantizers
    with torch.no_grad():
        for i, (source, target) in enumerate(zip(tuned.layers(), plain.layers())):
            target.weight.copy_(weight_quantizers[i](source.weight))
            target.bias.copy_(fake_format(source.bias, bias_formats[i]))
    return plain.eval()


def write_variant(run: Start, stem: str, model: SmallTagger, plan: dict) -> dict:
    """Export ``model`` to ``OUT/STEM.onnx``, write the plan, check both.

    The plan file is ``plan.json`` for stem ``model``, else ``STEM_plan.json``; any
    ``arrays.npz`` it names must be written already. Returns the test accuracies: ``onnx``
    (float activations; onnxruntime agrees with torch) and ``plan`` (the plan applied in
    float64 by `plan_tools`: the semantics the compiler must match).
    """
    onnx_path = run.out / f"{stem}.onnx"
    jet.export_onnx(model, onnx_path)
    plan_path = run.out / ("plan.json" if stem == "model" else f"{stem}_plan.json")
    write_plan(plan_path, plan)
    with torch.no_grad():
        float_logits = model(torch.from_numpy(run.x_test)).numpy()
    return check_variant(run, onnx_path, plan, float_logits)


def check_variant(run: Start, onnx_path: Path, plan: dict, float_logits: np.ndarray) -> dict:
    """Check a written variant and return its test accuracies (see `write_variant`): onnxruntime
    reproduces ``float_logits`` (the model's, float activations), every weight and bias of the
    ONNX lies on its plan entry's grid; ``plan``'s arrays are read from the ONNX's folder."""
    from plan_tools import load_plan_arrays

    out, x_test, y_test = onnx_path.parent, run.x_test, run.y_test
    jet.check_export(onnx_path, x_test, float_logits)
    layers, initializers = jet.onnx_dense_layers(onnx_path)
    resolved = load_plan_arrays(plan, out)
    for layer in layers:  # the exported weights already lie on the plan's grid
        for role in ("weight", "bias"):
            name = layer[role]
            if not np.array_equal(quantize_tensor(initializers[name], resolved["tensors"][name]),
                                  initializers[name].astype(np.float64)):
                raise RuntimeError(f"{name} in {onnx_path.name} is not exact under its plan entry")
    plan_logits = jet.quantized_forward(layers, initializers, resolved, x_test.astype(np.float64))
    return {"onnx": accuracy(float_logits, y_test), "plan": accuracy(plan_logits, y_test)}


# --- the uniform baseline -----------------------------------------------------------------


def uniform_weight_formats(model: SmallTagger) -> list[str]:
    """``fixed<6,I,RND_CONV,SAT>`` per layer, I from the layer's largest |w| (none saturate)."""
    return [str(Format(UNIFORM_WEIGHT_WIDTH, signed_int_bits(fc.weight.detach().abs().max().item(),
                                                             UNIFORM_WEIGHT_WIDTH), True))
            for fc in model.layers()]


def weight_count(model: SmallTagger) -> int:
    return sum(fc.weight.numel() for fc in model.layers())
