"""Train the small-CNN example and write its finegrain artefacts.

A few-hundred-parameter CNN that tells the orientation of a bar (0, 45, 90 or 135 degrees)
in a noisy 1x16x16 image, small enough for a fully unrolled hardware build:

    Conv2d(1,4,3,pad 1) BatchNorm2d ReLU MaxPool2d(2)     -> 4x8x8
    Conv2d(4,8,3)       ReLU         AvgPool2d(2)         -> 8x3x3
    Flatten Linear(72,4)                                  -> logits

The images are generated here (no downloads), seeded, so every run writes the same files:

* ``model.onnx``  the float model in eval mode with the BatchNormalization node kept,
  logits out, input ``x`` [batch, 1, 16, 16]
* ``plan.json``   a bit plan for it, built from the exported names
* ``data.npz``    250 held-out test images: float32 ``x`` [250, 1, 16, 16], int64 ``y`` [250]

Pixels are 8-bit sensor codes: multiples of 1/128 in [-1, 127/128], so every image is exactly
representable in the plan's input format ``fixed<8,1>``.

Run: ``python examples/small_cnn/train.py [--out DIR]``
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
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import (  # noqa: E402  (the shared helper lives one folder up)
    Format, accuracy, consumer, onnx_nodes, quantize, saturated_fraction, signed_int_bits,
    unsigned_int_bits, write_plan,
)

SEED = 7
ANGLES = (0, 45, 90, 135)  # class i is a bar at ANGLES[i] degrees
SIZE = 16
TRAIN_IMAGES, TEST_IMAGES = 12_000, 250
NOISE = 0.35  # standard deviation of the pixel noise, against bar intensities of 0.4..1.0
INPUT_FORMAT = Format(8, 1, True)  # the sensor's grid: lsb 1/128, range [-1, 127/128]

# --- the images ---------------------------------------------------------------------------


def generate_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images [n, 1, 16, 16] of a random bar plus noise, and their orientation labels."""
    labels = rng.integers(len(ANGLES), size=n)
    theta = np.deg2rad(np.array(ANGLES)[labels])[:, None, None]
    centre = rng.uniform(4.0, SIZE - 5.0, (n, 2))[:, :, None, None]
    half_length = rng.uniform(2.5, 6.0, n)[:, None, None]
    half_width = rng.uniform(0.5, 1.2, n)[:, None, None]
    intensity = rng.uniform(0.4, 1.0, n)[:, None, None]

    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dy, dx = rows - centre[:, 0], cols - centre[:, 1]
    along = dx * np.cos(theta) - dy * np.sin(theta)  # image rows grow downwards
    across = dx * np.sin(theta) + dy * np.cos(theta)
    # soft edges, so thin diagonal bars still light up the pixels they cross
    inside = np.clip(half_width + 0.5 - np.abs(across), 0, 1) \
        * np.clip(half_length + 0.5 - np.abs(along), 0, 1)
    images = intensity * inside + rng.normal(0.0, NOISE, (n, SIZE, SIZE))
    # an 8-bit sensor: round to the input grid and saturate to its range
    images = quantize(images, INPUT_FORMAT)
    return images[:, None].astype(np.float32), labels


# --- the model ----------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Module names become the ONNX node and initializer names (conv1.weight, /relu1/Relu...)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(4, 8, 3), nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * 3 * 3, len(ANGLES))

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(128):
            optimizer.zero_grad()
            loss_fn(model(xt[batch]), yt[batch]).backward()
            optimizer.step()
        schedule.step()
    model.eval()


def export_onnx(model: nn.Module, path: Path) -> None:
    """Legacy (TorchScript) exporter in eval mode.

    Its constant folding would fuse the BatchNorm into conv1 (and rename the folded
    constants onnx::Conv_NN); turning it off keeps the BatchNormalization node and the
    module-derived names, so the compiler's own BatchNorm folding has something to do.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            model, (torch.zeros(1, 1, SIZE, SIZE),), str(path), dynamo=False, opset_version=13,
            input_names=["x"], output_names=["logits"], do_constant_folding=False,
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

WEIGHT_WIDTH, BIAS_WIDTH, ACTIVATION_WIDTH = 6, 10, 8


def read_export(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The names the plan needs and the constants it quantizes, read from the exported file.

    Both are keyed by role ("conv1.weight", "relu1", ...).  conv1's constants come with the
    eval-mode BatchNorm folded in (float64): scale = gamma / sqrt(var + eps) multiplies
    each output channel, as the hardware computes it.
    """
    graph, initializers = onnx_nodes(path)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    (gemm,) = [n for n in graph.node if n.op_type == "Gemm"]
    batchnorm = consumer(graph, convs[0].output[0], "BatchNormalization")
    names = {
        "conv1.weight": convs[0].input[1], "conv1.bias": convs[0].input[2],
        "conv2.weight": convs[1].input[1], "conv2.bias": convs[1].input[2],
        "fc.weight": gemm.input[1], "fc.bias": gemm.input[2],
        "bn1": list(batchnorm.input[1:]),
        "relu1": consumer(graph, batchnorm.output[0], "Relu").output[0],
        "relu2": consumer(graph, convs[1].output[0], "Relu").output[0],
    }
    values = {role: initializers[name].astype(np.float64) for role, name in names.items()
              if role.endswith(("weight", "bias"))}
    gamma, beta, mean, var = (initializers[name].astype(np.float64) for name in names["bn1"])
    (epsilon,) = [a.f for a in batchnorm.attribute if a.name == "epsilon"]
    scale = gamma / np.sqrt(var + np.float64(epsilon))
    values["conv1.weight"] = values["conv1.weight"] * scale[:, None, None, None]
    values["conv1.bias"] = (values["conv1.bias"] - mean) * scale + beta
    return names, values


def make_plan(model: SmallCNN, names: dict, values: dict, x_train: np.ndarray) -> dict:
    """Inputs on the sensor grid, 6-bit weights, 10-bit biases, 8-bit ReLU outputs."""
    weight_max = max(np.abs(values[k]).max() for k in ("conv2.weight", "fc.weight"))
    bias_max = max(np.abs(values[k]).max() for k in values if k.endswith("bias"))
    weight_default = Format(WEIGHT_WIDTH, signed_int_bits(weight_max, WEIGHT_WIDTH), True)
    bias_default = Format(BIAS_WIDTH, signed_int_bits(bias_max, BIAS_WIDTH), True)
    conv1_max = np.abs(values["conv1.weight"]).max()
    conv1_weight = Format(WEIGHT_WIDTH, signed_int_bits(conv1_max, WEIGHT_WIDTH), True)

    with torch.no_grad():
        x = torch.from_numpy(x_train)
        relu1 = model.relu1(model.bn1(model.conv1(x)))
        relu2 = model.relu2(model.conv2(model.pool1(relu1)))
    maxima = relu1.max().item(), relu2.max().item()
    tensors = {
        names[relu]: str(Format(ACTIVATION_WIDTH, unsigned_int_bits(peak, ACTIVATION_WIDTH, 1), False))
        for relu, peak in zip(("relu1", "relu2"), maxima)
    }
    tensors[names["conv1.weight"]] = str(conv1_weight)
    note = (
        f"Plan for the small bar-orientation CNN. Inputs {INPUT_FORMAT}: the images are 8-bit "
        f"sensor codes on exactly this grid. conv1's weight and bias formats are sized for the "
        f"values with the BatchNorm folded in (scale gamma/sqrt(var+eps)), the form the hardware "
        f"computes; the BatchNorm parameters ({', '.join(names['bn1'])}) have no entry of their own. "
        f"conv1.weight gets its own {conv1_weight} (folded max |w| {conv1_max:.3f}); the other "
        f"weights share the default, sized from their max |w| ({weight_max:.3f}). "
        f"{BIAS_WIDTH}-bit biases sized from the largest "
        f"|b|. Each ReLU output is ufixed<{ACTIVATION_WIDTH},I>, I from its maximum on the "
        f"training set ({maxima[0]:.2f}, {maxima[1]:.2f}) plus one bit of margin. MaxPool keeps "
        f"its input format; the AvgPool output, the Conv/BatchNorm outputs and the logits stay "
        f"exact (activation default null)."
    )
    return {
        "_note": note,
        "defaults": {"input": str(INPUT_FORMAT), "weight": str(weight_default), "bias": str(bias_default),
                     "activation": None},
        "tensors": tensors,
    }


def quantized_forward(names: dict, values: dict, plan: dict, x: np.ndarray) -> np.ndarray:
    """Logits of the exported model with the plan applied.

    In float64, which is exact here: every product and sum needs fewer than 53 bits, so the
    accumulators keep all their bits, as the compiler's do.
    """
    tensors, defaults = plan["tensors"], plan["defaults"]

    def constant(role: str, value: np.ndarray) -> torch.Tensor:
        kind = "weight" if role.endswith("weight") else "bias"
        return torch.from_numpy(quantize(value, tensors.get(names[role], defaults[kind])))

    def activation(h: torch.Tensor, name: str) -> torch.Tensor:
        return torch.from_numpy(quantize(h.numpy(), tensors[name]))

    q = {role: constant(role, value) for role, value in values.items()}
    h = torch.from_numpy(quantize(x, defaults["input"]))
    h = activation(F.relu(F.conv2d(h, q["conv1.weight"], q["conv1.bias"], padding=1)), names["relu1"])
    h = F.max_pool2d(h, 2)
    h = activation(F.relu(F.conv2d(h, q["conv2.weight"], q["conv2.bias"])), names["relu2"])
    h = F.avg_pool2d(h, 2)
    return F.linear(h.flatten(1), q["fc.weight"], q["fc.bias"]).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for model.onnx, plan.json and data.npz (default: this folder)")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # One thread: the result must not depend on how many cores the machine has.
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    x_train, y_train = generate_images(TRAIN_IMAGES, rng)
    x_test, y_test = generate_images(TEST_IMAGES, rng)

    model = SmallCNN()
    train(model, x_train, y_train, args.epochs)

    onnx_path = args.out / "model.onnx"
    export_onnx(model, onnx_path)
    names, values = read_export(onnx_path)
    plan = make_plan(model, names, values, x_train)
    write_plan(args.out / "plan.json", plan)
    np.savez_compressed(args.out / "data.npz", x=x_test, y=y_test.astype(np.int64))

    with torch.no_grad():
        float_logits = model(torch.from_numpy(x_test)).numpy()
    check_export(onnx_path, x_test, float_logits)
    quant_logits = quantized_forward(names, values, plan, x_test.astype(np.float64))
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters; data: {TRAIN_IMAGES} training, {TEST_IMAGES} test images, "
          f"pixels in [{x_test.min():.3f}, {x_test.max():.3f}], "
          f"{saturated_fraction(x_test, INPUT_FORMAT):.1%} outside {INPUT_FORMAT}")
    print(f"plan: weights {plan['defaults']['weight']}, biases {plan['defaults']['bias']}")
    for name, fmt in plan["tensors"].items():
        print(f"      {name}: {fmt}")
    print(f"float accuracy:          {accuracy(float_logits, y_test):.1%}")
    print(f"plan-quantized accuracy: {accuracy(quant_logits, y_test):.1%}")
    print(f"wrote {onnx_path.name}, plan.json, data.npz to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
