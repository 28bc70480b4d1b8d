"""compiler.train (issue 16, item 1): the torch quantizers equal `compiler/mantissa.py` value for
value, and a model of quantized modules, exported by either torch exporter and compiled with
its plan, emulates exactly as the torch forward pass computes it, on random inputs and on the
formats' bounds and half-LSB ties, for every quantizer kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from compiler import compile_model
from compiler.cli import main
from compiler.fixed import FixedType, Formats, Overflow, Rounding
from compiler.mantissa import quantize_float
from compiler.train import (
    Codebook, Fixed, PerAxis, PerElement, Pow2, QuantConv1d, QuantConv2d, QuantError, QuantInput, QuantLinear,
    QuantReLU, export,
)
from compiler.train.quant import fixed_mantissas
from compiler.weight_formats import Pow2Type, nearest_centre, round_pow2

MODES = [(r, o) for r in Rounding for o in Overflow]  # 32 pairs
EXPORTERS = pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])


def probe_values(t: FixedType, seed: int = 0) -> np.ndarray:
    """Every code of ``t`` and the half-LSB ties between them, the bounds and one LSB beyond,
    far-out values, signed zeros, tiny values, and random values over twice the range."""
    lsb = float(t.lsb)
    lo, hi = float(t.min_value), float(t.max_value)
    rng = np.random.default_rng(seed)
    if t.width <= 12:
        grid = np.arange(lo - 4 * lsb, hi + 4 * lsb, lsb / 2)
    else:  # the ends of the range and random codes, each with its half-LSB neighbours
        codes = np.concatenate([np.arange(-4, 5), rng.integers(t.min_mantissa, t.max_mantissa, 300),
                                t.min_mantissa + np.arange(-4, 5), t.max_mantissa + np.arange(-4, 5)])
        grid = np.concatenate([codes * lsb, (codes + 0.5) * lsb])
    extra = [0.0, -0.0, 1e-300, -1e-300, 1e6, -1e6, 3e200, -3e200, lsb / 4, -lsb / 4, 2.0 ** -60]
    return np.concatenate([grid, extra, rng.uniform(2 * lo - 1, 2 * hi + 1, 200)])


FORMATS = ["fixed<5,2>", "ufixed<4,1>", "fixed<1,0>", "ufixed<1,0>", "fixed<6,-2>", "fixed<4,8>", "ufixed<12,12>",
           "fixed<24,3>", "fixed<8,-990>", "ufixed<6,1000>"]


@pytest.mark.parametrize("text", FORMATS)
def test_fixed_quantizer_is_fixed_quantize_float(text):
    """Every rounding x overflow mode, on every code, tie and bound of the format."""
    base = FixedType.parse(text)
    x = probe_values(base)
    for rounding, overflow in MODES:
        t = FixedType(base.width, base.int_bits, base.signed, rounding, overflow)
        want = quantize_float(x, Formats.uniform(x.shape, t)).astype(np.float64)
        got = fixed_mantissas(torch.from_numpy(x), t.width, t.int_bits, t.signed, int(rounding), int(overflow))
        assert np.array_equal(got.numpy(), want), (str(t), x[got.numpy() != want][:5])
        values = Fixed(t)(torch.from_numpy(x)).numpy()
        assert np.array_equal(values, np.ldexp(want, -t.frac_bits)), str(t)


def test_per_element_and_per_axis_are_fixed_quantize_float():
    """Per-element fields (pruned elements included) and one format per row, each mode pair once."""
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 9, (32, 40))
    int_bits = rng.integers(-3, 6, (32, 40))
    signed = rng.integers(0, 2, (32, 40))
    x = rng.normal(0, 4, (32, 40))
    x[:, :8] = np.round(x[:, :8] * 64) / 64 + 1 / 128  # ties for formats of 6 fractional bits
    for rounding, overflow in MODES:
        q = PerElement(bits, int_bits, signed, rounding.name, overflow.name)
        formats = Formats(bits, int_bits, signed.astype(bool), np.full(bits.shape, int(rounding)),
                          np.full(bits.shape, int(overflow)))
        want = np.ldexp(quantize_float(x, formats).astype(np.float64), -formats.frac_bits)
        assert np.array_equal(q(torch.from_numpy(x)).numpy(), want), (rounding, overflow)
    types = [FixedType(6, 2, i % 3 != 0, r, o) for i, (r, o) in enumerate(MODES)]
    q = PerAxis(0, types)
    want = np.stack([quantize_float(x[i], Formats.uniform(x[i].shape, t)) * float(t.lsb)
                     for i, t in enumerate(types)])
    assert np.array_equal(q(torch.from_numpy(x)).numpy(), want)


def test_pow2_and_codebook_are_fixed_rules():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 500), [0.0625, 0.0624, 0.1875, 0.18, 1.4, -0.19, 0.09375, 3 * 2.0 ** -5, 0.0],
                        [-0.0, 1e300, -1e300, 5e-324, -2.0 ** -1070, 2.0 ** -1022, 3.0, 1.5, -0.75, 0.375]])
    for emin, emax in ((-3, 0), (-6, 2), (1, 1)):
        got = Pow2(emin, emax)(torch.from_numpy(x)).numpy()
        assert np.array_equal(got, round_pow2(x, Pow2Type(emin, emax)))
    centres = [0.5, -0.25, 0.125, 0.0, -0.75]
    ties = np.array([0.375, -0.125, 0.0625, -0.5, 0.3125])  # midpoints: the lower index wins
    x = np.concatenate([x, ties])
    got = Codebook(centres, "fixed<6,1>")(torch.from_numpy(x)).numpy()
    assert np.array_equal(got, np.asarray(centres)[nearest_centre(x, centres)])


def test_gradient_is_straight_through():
    x = torch.linspace(-5, 5, 41, dtype=torch.float64, requires_grad=True)
    Fixed("fixed<4,2,RND,SAT>")(x).mul(torch.arange(41.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(41.0, dtype=torch.float64))
    layer = QuantLinear(3, 2, weight_quant="fixed<4,1,RND_CONV,SAT>", bias_quant="pow2<-4,0>")
    layer(torch.randn(5, 3)).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 and layer.bias.grad is not None


# --- round trips through export, compile and the emulator --------------------------------------

def input_batch(fmt: FixedType, shape: tuple, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Random values over twice the input format's range, with codes, half-LSB ties and the
    bounds of ``fmt`` spread over the batch."""
    rng = np.random.default_rng(seed)
    special = probe_values(fmt, seed)
    special = special[np.abs(special) < 1e3]
    x = rng.uniform(2 * float(fmt.min_value) - 1, 2 * float(fmt.max_value) + 1, (n, *shape))
    mask = rng.random(x.shape) < 0.5
    x[mask] = rng.choice(special, int(mask.sum()))
    return torch.from_numpy(x.astype(np.float32))


def round_trip(tmp_path, model: nn.Module, x: torch.Tensor, dynamo: bool):
    """Export, compile, emulate: the emulator's outputs equal the torch forward pass bit for bit."""
    model.eval()
    exported = export(model, x[:1], tmp_path, dynamo=dynamo, check=False)
    want = model(x).detach().numpy()
    got = compile_model(str(exported.model), str(exported.plan)).emulate(x.numpy().astype(np.float64))
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} of {got.size} values differ, first at {bad[0]}: " \
                          f"emulator {got[tuple(bad[0])]}, torch {want[tuple(bad[0])]}"
    return exported, json.loads(exported.plan.read_text())


def requantized_inputs(module: nn.Module, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``module``'s output quantizer receives, for checking that ties and overflows occur."""
    seen, quant = [], module.output_quant
    module.output_quant = None
    handle = module.register_forward_hook(lambda m, args, out: seen.append(out.detach()))
    try:
        model(x)
    finally:
        module.output_quant = quant
        handle.remove()
    return seen[0]


def assert_ties_and_overflow(values: torch.Tensor, t: FixedType):
    scaled = values.numpy() * 2.0 ** t.frac_bits
    assert (scaled - np.floor(scaled) == 0.5).any(), "no half-LSB tie reached the requantize"
    assert ((scaled > t.max_mantissa) | (scaled < t.min_mantissa)).any(), "no value overflowed"


@pytest.mark.parametrize("rounding", list(Rounding), ids=lambda r: r.name)
def test_round_trip_each_rounding_with_every_overflow(tmp_path, rounding):
    """Input, weights, biases, a layer output and a ReLU output, all in ``rounding``; the four
    overflow modes spread over them, signed and unsigned."""
    r = rounding.name
    fc1 = QuantLinear(8, 6, weight_quant=f"fixed<5,1,{r},WRAP>", bias_quant=f"fixed<8,3,{r},SAT_SYM>",
                      output_quant=f"fixed<6,2,{r},SAT_ZERO>")
    fc2 = QuantLinear(6, 4, weight_quant=f"fixed<4,1,{r},SAT_SYM>", bias_quant=f"ufixed<5,2,{r},SAT>",
                      output_quant=f"fixed<4,1,{r},WRAP>")
    model = nn.Sequential(QuantInput(f"fixed<7,3,{r},SAT>"), fc1, QuantReLU(output_quant=f"ufixed<4,1,{r},SAT>"),
                          fc2)
    torch.manual_seed(3)
    for layer in (fc1, fc2):
        nn.init.uniform_(layer.weight, -1.2, 1.2)
        nn.init.uniform_(layer.bias, -2, 2)
    x = input_batch(FixedType.parse(f"fixed<7,3,{r},SAT>"), (8,))
    round_trip(tmp_path, model, x, dynamo=False)
    assert_ties_and_overflow(requantized_inputs(fc1, model, x), FixedType.parse("fixed<6,2>"))
    assert_ties_and_overflow(requantized_inputs(fc2, model, x), FixedType.parse("fixed<4,1>"))


@EXPORTERS
def test_round_trip_per_channel_every_mode_pair(tmp_path, dynamo):
    """Per-channel formats, one rounding x overflow pair per channel (signed and unsigned), on
    the input, a weight (rows), a bias, and the layer's output."""
    types = [FixedType(6, 2, i % 4 != 3, r, o) for i, (r, o) in enumerate(MODES)]
    fc = QuantLinear(32, 32, weight_quant=PerAxis(0, [FixedType(5, 1, True, r, o) for r, o in MODES]),
                     bias_quant=PerAxis(0, [FixedType(7, 3, True, r, o) for r, o in MODES]),
                     output_quant=PerAxis(1, types))
    model = nn.Sequential(QuantInput(PerAxis(1, types)), fc)
    torch.manual_seed(4)
    x = input_batch(FixedType(6, 2), (32,))
    _, plan = round_trip(tmp_path, model, x, dynamo)
    weight = next(k for k in plan["tensors"] if isinstance(plan["tensors"][k], dict)
                  and plan["tensors"][k]["formats"][0].startswith("fixed<5,1"))
    assert plan["tensors"][weight]["axis"] == 0  # Gemm's weight [out, in] on both exporters


@EXPORTERS
def test_round_trip_per_element(tmp_path, dynamo):
    """Per-element formats (some pruned) on the input, a weight, a bias and a ReLU output."""
    rng = np.random.default_rng(5)
    fc1 = QuantLinear(10, 12, weight_quant=PerElement(rng.integers(0, 7, (12, 10)), rng.integers(-1, 3, (12, 10)),
                                                      1, "RND_CONV", "SAT"),
                      bias_quant=PerElement(rng.integers(0, 9, 12), rng.integers(0, 4, 12), 1, "RND", "WRAP"))
    fc2 = QuantLinear(12, 3, bias=False, weight_quant=PerElement(rng.integers(1, 6, (3, 12)), 1, 1, "RND_INF", "SAT"))
    relu = QuantReLU(output_quant=PerElement(rng.integers(0, 6, 12), rng.integers(0, 4, 12), 0, "RND_ZERO", "SAT"))
    model = nn.Sequential(QuantInput(PerElement(rng.integers(3, 9, 10), rng.integers(1, 4, 10), 1, "RND_MIN_INF",
                                                "SAT_SYM")), fc1, relu, fc2)
    torch.manual_seed(6)
    x = input_batch(FixedType(8, 3), (10,))
    exported, plan = round_trip(tmp_path, model, x, dynamo)
    with np.load(exported.plan.parent / "arrays.npz") as arrays:
        # the last layer without a bias: TorchScript writes a MatMul, its weight stored [in, out]
        key = plan["tensors"][exported.tensors["3"]["weight"]]["elements"].split(":")[1]
        stored = arrays[f"{key}.bits"]
    assert stored.shape == ((12, 3) if not dynamo else (3, 12))


@EXPORTERS
def test_round_trip_pow2(tmp_path, dynamo):
    """pow2 on a whole weight and a bias, and per row mixed with fixed formats."""
    fc1 = QuantLinear(8, 6, weight_quant="pow2<-5,0>", bias_quant=Pow2("pow2<-3,1>"),
                      output_quant="fixed<8,3,RND_CONV,SAT>")
    fc2 = QuantLinear(6, 4, weight_quant=PerAxis(0, ["pow2<-4,0>", "fixed<4,1,RND,SAT>", "pow2<-2,-1>",
                                                     "fixed<3,0,CEIL,SAT_SYM>"]), bias_quant="fixed<6,2,TRN,SAT>")
    model = nn.Sequential(QuantInput("fixed<8,3,RND,SAT>"), fc1, QuantReLU(output_quant="ufixed<6,2,RND,SAT>"), fc2)
    torch.manual_seed(7)
    round_trip(tmp_path, model, input_batch(FixedType(8, 3), (8,)), dynamo)


@EXPORTERS
def test_round_trip_codebooks_on_convolutions(tmp_path, dynamo):
    """One codebook for a Conv2d weight, one per output channel of a Conv1d, a codebook bias."""
    conv = QuantConv2d(2, 3, 3, padding=1, weight_quant=Codebook([0.5, -0.25, 0.125, 0.0, -0.625], "fixed<6,1>"),
                       bias_quant=Codebook([0.25, -0.5, 0.0], "fixed<3,1>"), output_quant="fixed<8,3,RND_CONV,SAT>")
    books = [([0.5, -0.5], "fixed<3,1>"), ([0.25, 0.0, -0.75], "fixed<4,1>"), ([1.0, -0.125], "fixed<5,2>")]
    conv1d = QuantConv1d(3, 3, 2, stride=2, weight_quant=Codebook.per_axis(0, books), bias_quant="fixed<6,2,RND,SAT>")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.conv, self.relu, self.conv1d = (
                QuantInput("fixed<7,2,RND_CONV,SAT>"), conv, QuantReLU(output_quant="ufixed<5,2,RND_INF,SAT>"), conv1d)

        def forward(self, x):
            y = self.relu(self.conv(self.inp(x)))
            return self.conv1d(y.flatten(2))

    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.3, -0.4, 0.01]))  # every centre taken
    torch.manual_seed(8)
    exported, plan = round_trip(tmp_path, Net(), input_batch(FixedType(7, 2), (2, 4, 4), n=64), dynamo)
    entry = plan["tensors"][exported.tensors["conv1d"]["weight"]]
    assert entry["axis"] == 0 and len(entry["codebooks"]) == 3


@EXPORTERS
def test_round_trip_bias_of_zeros(tmp_path, dynamo):
    """A bias that quantizes to zeros: dynamo's optimizer drops it from the Conv (torch 2.13),
    and the plan then has no entry for it."""
    conv = QuantConv2d(2, 3, 3, weight_quant="fixed<5,1,RND_CONV,SAT>", bias_quant="fixed<4,1,RND_CONV,SAT>")
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.05, -0.0625, 0.0]))  # RND_CONV: 0.4 and -0.5 LSB round to 0
    model = nn.Sequential(QuantInput("fixed<6,2,RND_CONV,SAT>"), conv)
    exported, _ = round_trip(tmp_path, model, input_batch(FixedType(6, 2), (2, 5, 5)), dynamo)
    assert ("bias" in exported.tensors["1"]) != dynamo


# --- errors ---------------------------------------------------------------------------------------

def test_quantizer_errors_name_the_module():
    with pytest.raises(QuantError, match="QuantLinear has a bias but no bias_quant"):
        QuantLinear(3, 2, weight_quant="fixed<4,1>")
    with pytest.raises(QuantError, match="QuantReLU output_quant: .* weight quantizer"):
        QuantReLU(output_quant="pow2<-3,0>")
    with pytest.raises(QuantError, match="QuantLinear weight: PerAxis has 3 formats along axis 0"):
        QuantLinear(3, 2, bias=False, weight_quant=PerAxis(0, ["fixed<4,1>"] * 3))
    with pytest.raises(QuantError, match="malformed format"):
        QuantInput("fixed<4>")
    with pytest.raises(QuantError, match="exact up to 52 bits"):
        Fixed("fixed<60,3>")
    with pytest.raises(QuantError, match="PerElement is 53 bits wide"):
        PerElement([8, 53], 2)
    with pytest.raises(QuantError, match="has 1006 fractional bits"):
        Fixed("ufixed<8,-998>")


def test_export_errors(tmp_path):
    x = torch.randn(1, 3)
    plain = nn.Sequential(QuantInput("fixed<6,2>"), nn.Linear(3, 2))
    with pytest.raises(QuantError, match=r"module '1' \(Linear\) has parameters but is not a quantized module"):
        export(plain, x, tmp_path)
    no_input = nn.Sequential(QuantLinear(3, 2, bias=False, weight_quant="fixed<4,1>"))
    with pytest.raises(QuantError, match="exactly one QuantInput"):
        export(no_input, x, tmp_path)
    wide = nn.Sequential(QuantInput("fixed<6,2>"), QuantLinear(3, 2, bias=False, dtype=torch.float64,
                                                                 weight_quant="fixed<30,2>"))
    with pytest.raises(QuantError, match="module '1': its quantized weight is not exact in float32"):
        export(wide, x, tmp_path)


def test_export_refuses_sums_float64_cannot_hold(tmp_path):
    """The second layer's exact sums need about 74 bits: torch's float64 rounds them, the
    emulator does not, and export's check says so (without the check the export is written)."""
    torch.manual_seed(9)
    model = nn.Sequential(QuantInput("fixed<24,4>"), QuantLinear(16, 8, bias=False, weight_quant="fixed<24,1>"),
                          QuantLinear(8, 4, bias=False, weight_quant="fixed<24,1>"))
    x = torch.randn(8, 16)
    export(model, x, tmp_path / "unchecked", check=False)
    with pytest.raises(QuantError, match="differs from the torch model .* must fit in 53 bits"):
        export(model, x, tmp_path / "checked")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unchecked"]  # a failed check leaves no files


@pytest.mark.parametrize("tail", [nn.Sigmoid, nn.Tanh], ids=["sigmoid", "tanh"])
def test_export_names_a_float_activation_as_the_mismatchs_cause(tmp_path, tail):
    """An unquantized Sigmoid (Tanh) ending a trained model: its float outputs are no format's
    values, and the check blamed 53-bit sums; it names the module and the way out."""
    torch.manual_seed(2)
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                          QuantLinear(4, 3, bias=False, weight_quant="fixed<6,1,RND_CONV,SAT>",
                                      output_quant="fixed<10,4,RND_CONV,SAT>"), tail())
    with pytest.raises(QuantError) as err:
        export(model, torch.randn(8, 4), tmp_path / "out")
    message = str(err.value)
    assert f"The model's '2' ({tail.__name__}) computes in float" in message and "53 bits" not in message
    assert "leave it out of the exported model" in message


class _TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.fc = QuantInput("fixed<6,2>"), QuantLinear(3, 2, bias=False, weight_quant="fixed<4,1>")

    def forward(self, x):
        y = self.fc(self.q(x))
        return y, y


def test_export_arguments_are_checked_before_anything_is_written(tmp_path):
    """Each raised torch's, numpy's or Python's own exception (a RuntimeError, AttributeError,
    TypeError, FileExistsError) and some left model.onnx and plan.json behind."""
    model = nn.Sequential(QuantInput("fixed<6,2>"), QuantLinear(3, 2, bias=False, weight_quant="fixed<4,1>"))
    (tmp_path / "a_file").write_text("")
    for args, message in [((model, torch.randn(2, 5), tmp_path / "out"), r"does not run on example_input of shape "
                                                                          r"\[2, 5\] \(RuntimeError"),
                          ((model, np.zeros((1, 3), np.float32), tmp_path / "out"), r"example_input must be a float32"),
                          ((model, torch.zeros(1, 3, dtype=torch.bfloat16), tmp_path / "out"), r"torch.bfloat16"),
                          ((model, torch.full((1, 3), float("nan")), tmp_path / "out"), r"not finite"),
                          ((lambda x: x, torch.randn(1, 3), tmp_path / "out"), r"model must be a torch.nn.Module"),
                          ((_TwoOutputs(), torch.randn(1, 3), tmp_path / "out"), r"returns a tuple, not one tensor"),
                          ((model, torch.randn(1, 3), 5), r"out_dir must be a path"),
                          ((model, torch.randn(1, 3), tmp_path / "a_file"), r"exists and is not a folder")]:
        with pytest.raises(QuantError, match=message):
            export(*args)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    with pytest.raises(QuantError, match=r"PerElement: int_bits has shape \[5\], which does not broadcast"):
        PerElement(np.full((2, 4), 3), np.zeros(5))
    with pytest.raises(QuantError, match=r"PerElement: bits must hold integers, got float64"):
        PerElement(np.full((2, 4), 3.7), 1)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_round_trip_through_pools(tmp_path, pool):
    """A 2x2 max or average pool between the layers (an average over 4 values is exact), the
    QuantReLU after it found as the graph's one Relu."""
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                          QuantConv2d(1, 3, 3, padding=1, weight_quant="fixed<5,1,RND_CONV,SAT>",
                                      bias_quant="fixed<8,3,RND_CONV,SAT>"),
                          nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2),
                          QuantReLU(output_quant="ufixed<6,3,RND_INF,SAT>"), nn.Flatten(),
                          QuantLinear(27, 4, weight_quant="fixed<5,1,RND_CONV,SAT>", bias_quant="fixed<8,3,RND,SAT>"))
    torch.manual_seed(11)
    round_trip(tmp_path, model, input_batch(FixedType(8, 3), (1, 6, 6), n=64), dynamo=False)


@EXPORTERS
def test_round_trip_conv_geometry(tmp_path, dynamo):
    """Strides, padding ('same' too), dilation and groups (depthwise) of Conv2d and Conv1d."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantInput("fixed<7,3,RND_CONV,SAT>")
            self.grouped = QuantConv2d(2, 4, 3, stride=2, padding=1, groups=2, weight_quant="fixed<5,1,RND,SAT>",
                                       bias_quant="fixed<8,3,RND_CONV,SAT>", output_quant="fixed<8,3,RND_CONV,SAT>")
            self.dilated = QuantConv2d(4, 4, 3, padding="same", dilation=2, groups=4, bias=False,
                                       weight_quant="fixed<4,1,TRN_ZERO,SAT_SYM>")
            self.line = QuantConv1d(4, 2, 3, stride=2, padding=2, weight_quant="fixed<5,1,RND_CONV,SAT>",
                                    bias_quant="fixed<8,3,RND_CONV,SAT>")

        def forward(self, x):
            y = self.dilated(self.grouped(self.inp(x)))
            return self.line(y.flatten(2))

    torch.manual_seed(12)
    round_trip(tmp_path, Net(), input_batch(FixedType(7, 3), (2, 7, 6), n=32), dynamo)


@EXPORTERS
def test_round_trip_linear_over_a_sequence(tmp_path, dynamo):
    """A Linear on [batch, 4, 6] exports as MatMul (weight stored [in, out]) + Add on both
    exporters: the per-row weight entry is ONNX axis 1, the bias the Add's, the ReLU per channel."""
    fc = QuantLinear(6, 5, weight_quant=PerAxis(0, ["fixed<5,1,RND_CONV,SAT>"] * 4 + ["pow2<-4,0>"]),
                     bias_quant="fixed<8,3,RND_CONV,SAT>")
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"), fc,
                          QuantReLU(output_quant=PerAxis(2, [f"ufixed<6,{i},RND_CONV,SAT>" for i in range(5)])))
    torch.manual_seed(14)
    exported, plan = round_trip(tmp_path, model, input_batch(FixedType(8, 3), (4, 6), n=64), dynamo)
    assert plan["tensors"][exported.tensors["1"]["weight"]]["axis"] == 1
    assert plan["tensors"][exported.tensors["2"]["output"]]["axis"] == 2


def test_quantized_training_lowers_the_loss():
    """A few steps of Adam through the straight-through gradients fit a small regression."""
    torch.manual_seed(13)
    bias = "fixed<8,3,RND_CONV,SAT>"
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                          QuantLinear(4, 8, weight_quant="fixed<6,1,RND_CONV,SAT>", bias_quant=bias),
                          QuantReLU(output_quant="ufixed<8,3,RND_CONV,SAT>"),
                          QuantLinear(8, 1, weight_quant=PerAxis(0, ["pow2<-6,0>"]), bias_quant=bias))
    x = torch.randn(128, 4)
    y = (x[:, :1] - 0.5 * x[:, 1:2]).double()
    optimiser = torch.optim.Adam(model.parameters(), 0.02)
    losses = []
    for _ in range(60):
        loss = nn.functional.mse_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_average_pools_that_are_not_shifts_are_refused(tmp_path):
    for pool, message in ((nn.AvgPool2d(3), "it averages 9 values"),
                          (nn.AdaptiveAvgPool2d(1), "adaptive average pool")):
        model = nn.Sequential(QuantInput("fixed<6,2>"), pool, nn.Flatten(),
                              QuantLinear(1, 2, bias=False, weight_quant="fixed<4,1>"))
        with pytest.raises(QuantError, match=f"module '1' .*{message}"):
            export(model, torch.randn(1, 1, 3, 3), tmp_path)


def test_relu_after_other_ops_is_found_only_when_certain(tmp_path):
    """A QuantReLU after a flatten takes the graph's one Relu; beside a plain nn.ReLU that is
    ambiguous and refused."""
    def model(extra: nn.Module):
        return nn.Sequential(QuantInput("fixed<6,2,RND_CONV,SAT>"),
                             QuantConv1d(1, 2, 2, weight_quant="fixed<4,1,RND_CONV,SAT>", bias_quant="fixed<6,2>"),
                             extra, nn.Flatten(), QuantReLU(output_quant="ufixed<4,2,RND,SAT>"),
                             QuantLinear(6, 2, bias=False, weight_quant="fixed<4,1,RND,SAT>"))
    x = torch.randn(1, 1, 4)
    exported = export(model(nn.Identity()), x, tmp_path / "one")
    assert exported.tensors["4"]["output"] in json.loads(exported.plan.read_text())["tensors"]
    with pytest.raises(QuantError, match="module '4' \\(QuantReLU\\) reads a value no quantized module made"):
        export(model(nn.ReLU()), x, tmp_path / "two")


def test_finegrain_compile_and_emulate_commands(tmp_path):
    """The files as a user runs them: `finegrain compile --plan` and `finegrain emulate`."""
    rng = np.random.default_rng(10)
    model = nn.Sequential(QuantInput("fixed<6,2,RND_CONV,SAT>"),
                          QuantLinear(5, 4, weight_quant=PerElement(rng.integers(0, 6, (4, 5)), 1, 1, "RND", "SAT"),
                                      bias_quant="fixed<6,2,RND_CONV,SAT>"),
                          QuantReLU(output_quant="ufixed<5,2,RND_CONV,SAT>"))
    x = input_batch(FixedType(6, 2), (5,), n=32)
    exported = export(model, x[:1], tmp_path / "export")
    out = tmp_path / "build"
    assert main(["compile", str(exported.model), "--plan", str(exported.plan), "-o", str(out)]) == 0
    np.save(tmp_path / "x.npy", x.numpy())
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), model(x).detach().numpy())
