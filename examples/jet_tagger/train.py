"""Train the jet-tagging example and write its finegrain artefacts.

The model has the shape of the hls4ml jet-tagging benchmark: 16 jet-substructure features
in, five classes out (gluon, light quark, W, Z, top), a 16-64-32-32-5 ReLU MLP.  The data
set is generated here from a toy jet model (no downloads), seeded, so every run writes the
same files:

* ``model.onnx``  the float model, logits out (no softmax), input ``x`` [batch, 16]
* ``plan.json``   a mixed-precision bit plan for it, built from the exported names
* ``data.npz``    1000 held-out test jets: float32 ``x`` [1000, 16], int64 ``y`` [1000]

The inputs of the model are the standardised features (zero mean, unit variance on the
training set, clipped to [-4, 4]); standardisation happens before the model, as in hls4ml.

Run: ``python examples/jet_tagger/train.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import (  # noqa: E402  (the shared helper lives one folder up)
    Format, accuracy, consumer, onnx_nodes, quantize, quantize_tensor, saturated_fraction,
    signed_int_bits, unsigned_int_bits, write_plan,
)

SEED = 2024
CLASSES = ("g", "q", "W", "Z", "t")
TRAIN_JETS, TEST_JETS = 40_000, 1000
FEATURE_CLIP = 4.0

# --- the toy jet model ------------------------------------------------------------------
# Each jet has a few physical properties drawn per class; the 16 observed features are
# noisy, correlated functions of them.  Gluon/quark and W/Z jets overlap by design, which
# keeps the best accuracy well below 100%, as on the real data set.

# per class: groomed mass mean and spread [GeV], hard prongs, mean multiplicity, radiation width
JET_CLASSES = {
    "g": dict(mass=(25.0, 18.0), prongs=1, multiplicity=42.0, width=0.30),
    "q": dict(mass=(18.0, 14.0), prongs=1, multiplicity=28.0, width=0.20),
    "W": dict(mass=(80.4, 11.0), prongs=2, multiplicity=36.0, width=0.17),
    "Z": dict(mass=(91.2, 11.0), prongs=2, multiplicity=38.0, width=0.17),
    "t": dict(mass=(172.5, 20.0), prongs=3, multiplicity=55.0, width=0.24),
}
# Fraction of W, Z and top jets whose grooming removes a prong: their mass and substructure
# then look like a light-quark jet.
GROOMING_FAILURE = 0.12

# feature = sum(coefficient * property) + noise * N(0, 1), on these jet properties:
#   log mass, log multiplicity, width, two-prong score, three-prong score
FEATURE_MIXING = {
    #                 log_m   log_n  width   2prong  3prong  noise
    "zlogz":         (0.00, -1.00, -1.50,  0.00,   0.00,   0.25),
    "c1_b0_mmdt":    (0.30,  0.00,  1.50,  0.10,   0.10,   0.20),
    "c1_b1_mmdt":    (0.25,  0.00,  1.20, -0.10,   0.00,   0.20),
    "c1_b2_mmdt":    (0.20,  0.00,  1.00, -0.15,  -0.05,   0.20),
    "c2_b1_mmdt":    (0.00,  0.10,  0.80, -0.40,  -0.20,   0.25),
    "c2_b2_mmdt":    (0.00,  0.10,  0.60, -0.50,  -0.25,   0.25),
    "d2_b1_mmdt":    (-0.10, 0.00,  1.00, -0.60,  -0.20,   0.30),
    "d2_b2_mmdt":    (-0.10, 0.00,  0.80, -0.70,  -0.30,   0.30),
    "d2_a1_b1_mmdt": (0.00,  0.00,  1.20, -0.50,   0.10,   0.30),
    "d2_a1_b2_mmdt": (0.00,  0.00,  1.00, -0.55,   0.15,   0.30),
    "m2_b1_mmdt":    (0.00,  0.20,  0.50,  0.00,  -0.50,   0.30),
    "m2_b2_mmdt":    (0.00,  0.20,  0.40,  0.10,  -0.60,   0.30),
    "n2_b1_mmdt":    (0.00,  0.00,  0.90, -0.30,  -0.40,   0.25),
    "n2_b2_mmdt":    (0.00,  0.00,  0.70, -0.35,  -0.50,   0.25),
}
FEATURES = (*FEATURE_MIXING, "mass_mmdt", "multiplicity")


def generate_jets(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` jets of balanced random classes: raw features [n, 16] and labels [n]."""
    labels = rng.integers(len(CLASSES), size=n)
    params = [JET_CLASSES[c] for c in CLASSES]
    pick = lambda f: np.array([f(p) for p in params])[labels]  # noqa: E731
    prongs = pick(lambda p: p["prongs"])

    mass = rng.normal(pick(lambda p: p["mass"][0]), pick(lambda p: p["mass"][1]))
    failed = (prongs > 1) & (rng.random(n) < GROOMING_FAILURE)
    mass = np.where(failed, rng.normal(20.0, 14.0, n), mass)
    mass = np.abs(mass) + 1.0
    multiplicity = rng.poisson(pick(lambda p: p["multiplicity"])).astype(np.float64) + 1.0
    width = pick(lambda p: p["width"]) * rng.lognormal(0.0, 0.25, n)
    effective_prongs = np.where(failed, 1, prongs)
    two_prong = (effective_prongs >= 2) + rng.normal(0.0, 0.7, n)
    three_prong = (effective_prongs == 3) + rng.normal(0.0, 0.7, n)

    properties = np.stack([np.log(mass), np.log(multiplicity), width, two_prong, three_prong], axis=1)
    mixing = np.array(list(FEATURE_MIXING.values()))
    # a shared "pile-up" term correlates the substructure features beyond their physics
    pileup = rng.normal(0.0, 0.15, (n, 1))
    noise = rng.normal(0.0, 1.0, (n, len(mixing))) * mixing[:, 5]
    substructure = properties @ mixing[:, :5].T + pileup + noise
    features = np.concatenate([substructure, mass[:, None], multiplicity[:, None]], axis=1)
    return features, labels


def standardise(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.clip((features - mean) / std, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


# --- the model ----------------------------------------------------------------------------


class JetTagger(nn.Module):
    """16-64-32-32-5 ReLU MLP; module names become the ONNX node and initializer names."""

    def __init__(self):
        super().__init__()
        self.fc1, self.relu1 = nn.Linear(16, 64), nn.ReLU()
        self.fc2, self.relu2 = nn.Linear(64, 32), nn.ReLU()
        self.fc3, self.relu3 = nn.Linear(32, 32), nn.ReLU()
        self.fc4 = nn.Linear(32, len(CLASSES))

    def forward(self, x):
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        x = self.relu3(self.fc3(x))
        return self.fc4(x)

    def hidden_layers(self):
        return [(self.fc1, self.relu1), (self.fc2, self.relu2), (self.fc3, self.relu3)]


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 3e-3,
          penalty=None) -> None:
    """Adam with a cosine schedule on the cross-entropy, plus ``penalty()`` when given.

    ``penalty`` is an extra loss term recomputed every step from the model's state (the
    precision-scheme examples pass a bit-width regulariser).
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(256):
            optimizer.zero_grad()
            loss = loss_fn(model(xt[batch]), yt[batch])
            if penalty is not None:
                loss = loss + penalty()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()


def export_onnx(model: nn.Module, path: Path) -> None:
    """Legacy (TorchScript) exporter: it names values after the modules, e.g. /relu1/Relu_output_0."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            model, (torch.zeros(1, len(FEATURES)),), str(path), dynamo=False, opset_version=13,
            input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )


def check_export(path: Path, x: np.ndarray, expected: np.ndarray) -> None:
    """The exported file must compute what the torch model computes."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"x": x})
    error = np.abs(got - expected).max()
    if error > 1e-4:
        raise RuntimeError(f"{path} differs from the torch model by up to {error:.3g}")


# --- the bit plan -----------------------------------------------------------------------

INPUT_FORMAT = "fixed<12,5,RND_CONV,SAT>"
WEIGHT_WIDTH, BIAS_WIDTH, ACTIVATION_WIDTH = 6, 10, 8
PER_ROW_LAYER = "fc1"  # its 64 rows see differently scaled features, so their ranges differ most


def onnx_dense_layers(path: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The exported layers and initializers.

    Per Gemm, in order: its name, its weight and bias initializer names and the output of
    the ReLU that follows it (None for the logits layer).
    """
    graph, initializers = onnx_nodes(path)
    layers = []
    for node in graph.node:
        if node.op_type != "Gemm":
            continue
        relu = None
        if node.output[0] != "logits":
            relu = consumer(graph, node.output[0], "Relu").output[0]
        layers.append({"gemm": node.name, "weight": node.input[1], "bias": node.input[2],
                       "relu_output": relu})
    return layers, initializers


def make_plan(model: JetTagger, layers: list[dict], initializers: dict, x_train: np.ndarray) -> dict:
    """A mixed plan: bits follow the observed range of every weight, bias and activation."""
    weights = {layer["weight"]: initializers[layer["weight"]] for layer in layers}
    biases = np.concatenate([initializers[layer["bias"]] for layer in layers])
    per_row = next(layer["weight"] for layer in layers if layer["gemm"].startswith(f"/{PER_ROW_LAYER}/"))

    shared_max = max(np.abs(w).max() for name, w in weights.items() if name != per_row)
    weight_default = Format(WEIGHT_WIDTH, signed_int_bits(shared_max, WEIGHT_WIDTH), True)
    bias_default = Format(BIAS_WIDTH, signed_int_bits(np.abs(biases).max(), BIAS_WIDTH), True)

    tensors, maxima = {}, []
    with torch.no_grad():
        hidden = torch.from_numpy(x_train)
        for layer, (fc, relu) in zip(layers, model.hidden_layers()):
            hidden = relu(fc(hidden))
            maxima.append(hidden.max().item())
            int_bits = unsigned_int_bits(maxima[-1], ACTIVATION_WIDTH, margin_bits=1)
            tensors[layer["relu_output"]] = str(Format(ACTIVATION_WIDTH, int_bits, False))
    row_max = np.abs(weights[per_row]).max(axis=1)
    tensors[per_row] = {
        "axis": 0,
        "formats": [str(Format(WEIGHT_WIDTH, signed_int_bits(m, WEIGHT_WIDTH), True)) for m in row_max],
    }
    note = (
        f"Mixed plan for the 16-64-32-32-5 jet tagger. Inputs {INPUT_FORMAT}: the standardised "
        f"features are clipped to [-{FEATURE_CLIP:g}, {FEATURE_CLIP:g}], well inside its range. "
        f"{WEIGHT_WIDTH}-bit weights with integer bits from the largest |w| of fc2..fc4 "
        f"({shared_max:.3f}), so none saturate; {PER_ROW_LAYER} has one format per output row "
        f"(axis 0 of its [out, in] weight), integer bits following each row's max |w|. "
        f"{BIAS_WIDTH}-bit biases sized from the largest |b|. Each ReLU output is "
        f"ufixed<{ACTIVATION_WIDTH},I> with I from its maximum on the training set "
        f"({', '.join(f'{m:.2f}' for m in maxima)}) plus one bit of margin. Gemm outputs "
        f"and the logits stay exact (activation default null)."
    )
    return {
        "_note": note,
        "defaults": {"input": INPUT_FORMAT, "weight": str(weight_default), "bias": str(bias_default),
                     "activation": None},
        "tensors": tensors,
    }


def quantized_forward(layers: list[dict], initializers: dict, plan: dict, x: np.ndarray) -> np.ndarray:
    """Logits of the exported model with the plan applied, in float64 (exact at these widths).

    Inputs, weights, biases and ReLU outputs are quantized as the plan says; every
    accumulator keeps all its bits, as the compiler's does.
    """
    tensors, defaults = plan["tensors"], plan["defaults"]
    h = quantize(x, defaults["input"])
    for layer in layers:
        weight, bias = layer["weight"], layer["bias"]
        w = quantize_tensor(initializers[weight], tensors.get(weight, defaults["weight"]))
        b = quantize_tensor(initializers[bias], tensors.get(bias, defaults["bias"]))
        h = h @ w.T + b
        if layer["relu_output"] is not None:
            h = quantize(np.maximum(h, 0.0), tensors[layer["relu_output"]])
    return h


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for model.onnx, plan.json and data.npz (default: this folder)")
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # One thread: the result must not depend on how many cores the machine has.
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    raw_train, y_train = generate_jets(TRAIN_JETS, rng)
    raw_test, y_test = generate_jets(TEST_JETS, rng)
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
    x_train, x_test = standardise(raw_train, mean, std), standardise(raw_test, mean, std)

    model = JetTagger()
    train(model, x_train, y_train, args.epochs)

    onnx_path = args.out / "model.onnx"
    export_onnx(model, onnx_path)
    layers, initializers = onnx_dense_layers(onnx_path)
    plan = make_plan(model, layers, initializers, x_train)
    write_plan(args.out / "plan.json", plan)
    np.savez_compressed(args.out / "data.npz", x=x_test, y=y_test.astype(np.int64))

    with torch.no_grad():
        float_logits = model(torch.from_numpy(x_test)).numpy()
    check_export(onnx_path, x_test, float_logits)
    quant_logits = quantized_forward(layers, initializers, plan, x_test.astype(np.float64))
    print(f"data: {TRAIN_JETS} training jets, {TEST_JETS} test jets, features in "
          f"[{x_test.min():.2f}, {x_test.max():.2f}], "
          f"{saturated_fraction(x_test, INPUT_FORMAT):.1%} outside {INPUT_FORMAT}")
    print(f"plan: weights {plan['defaults']['weight']}, biases {plan['defaults']['bias']}")
    for layer in layers:
        if layer["relu_output"]:
            print(f"      {layer['relu_output']}: {plan['tensors'][layer['relu_output']]}")
    for name, entry in plan["tensors"].items():
        if isinstance(entry, dict):
            counts = {f: entry["formats"].count(f) for f in sorted(set(entry["formats"]))}
            print(f"      {name} per row: {counts}")
    print(f"float accuracy:          {accuracy(float_logits, y_test):.1%}")
    print(f"plan-quantized accuracy: {accuracy(quant_logits, y_test):.1%}")
    print(f"wrote {onnx_path.name}, plan.json, data.npz to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
