"""compiler.train.cost: the differentiable LUT / latency model against the estimator.

Held-out models (`cost_fit.random_case` seeds the fit never saw: fixed, per-channel and
per-element weights with pruning, Conv1d and Conv2d) are within `cost.TOLERANCE` of
`estimate_export`; gradients reach every `LearnedBits`; pruned weights cost nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from compiler.train import PerElement, QuantError, QuantInput, QuantLinear, QuantReLU, export  # noqa: E402
from compiler.train.bits import LearnedBits  # noqa: E402
from compiler.train.cost import TOLERANCE, HardwareCost, csd_digits, estimate_export  # noqa: E402
from compiler.train.cost_fit import FIT_SEEDS, KINDS, random_case  # noqa: E402

HELD_OUT = tuple(range(16, 28))


def _naf_digits(n: int) -> int:
    count = 0
    while n:
        if n & 1:
            count += 1
            n -= 2 - (n & 3)  # digit +1 (n % 4 == 1) or -1 (n % 4 == 3)
        n >>= 1
    return count


def test_csd_digits_are_the_naf_weight():
    rng = np.random.default_rng(0)
    ints = np.concatenate([np.arange(0, 2000), rng.integers(0, 2 ** 40, 500)])
    want = [_naf_digits(int(n)) for n in ints]
    for scale in (1.0, 2.0 ** -7, 2.0 ** 5):
        values = torch.tensor(ints * scale, dtype=torch.float64) * torch.tensor([1.0, -1.0]).repeat(len(ints) // 2)
        assert csd_digits(values).tolist() == want


@pytest.mark.parametrize("seed", HELD_OUT)
def test_cost_within_tolerance_of_the_estimator_on_held_out_models(seed, tmp_path):
    assert seed not in FIT_SEEDS
    model, x = random_case(seed)
    estimate = estimate_export(export(model, x, tmp_path))
    with torch.no_grad():
        cost = HardwareCost(model, x)()
    assert abs(float(cost["lut"]) / estimate["lut"] - 1) <= TOLERANCE, (KINDS[seed % len(KINDS)], float(cost["lut"]),
                                                                        estimate["lut"])
    # latency: the schedule's cycles, approximately (a cycle or so per layer)
    assert abs(float(cost["latency"]) - estimate["latency_cycles"]) <= 1.5 * len(cost["layers"])


def _learned_model():
    torch.manual_seed(0)
    return nn.Sequential(
        QuantInput(LearnedBits((12,), activation=True, init_frac=4)),
        QuantLinear(12, 10, weight_quant=LearnedBits((10, 12), init_frac=4), bias_quant="fixed<10,4,RND_CONV,SAT>"),
        QuantReLU(output_quant=LearnedBits((10,), "channel", activation=True, init_frac=3)),
        QuantLinear(10, 3, weight_quant=LearnedBits((3, 10), "tensor", init_frac=3), bias_quant="fixed<10,4,RND,SAT>"))


def test_cost_is_differentiable_in_every_bit_width():
    model = _learned_model()
    x = torch.randn(32, 12)
    model(x)  # training mode: the activations' ranges
    cost = HardwareCost(model, x)()
    (cost["lut"] + cost["latency"]).backward()
    for name, p in model.named_parameters():
        if name.endswith("frac"):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert (p.grad > 0).any(), f"{name}: more bits must cost more LUTs"


def test_pruned_weights_cost_nothing():
    torch.manual_seed(1)
    bits = np.full((6, 8), 5)
    bits[:, ::2] = 0  # every other input's weights pruned
    make = lambda b: nn.Sequential(  # noqa: E731
        QuantInput("fixed<8,3,RND_CONV,SAT>"),
        QuantLinear(8, 6, weight_quant=PerElement(b, 1, 1, "RND_CONV", "SAT"), bias_quant="fixed<8,3>"))
    half, full = make(bits), make(np.full((6, 8), 5))
    half.load_state_dict(full.state_dict())
    with torch.no_grad():
        c_half, c_full = HardwareCost(half, torch.zeros(1, 8))(), HardwareCost(full, torch.zeros(1, 8))()
        digits = csd_digits(full[1].quantized_weight())
    assert float(c_full["layers"][0]["terms"]) == float(digits.sum())
    assert float(c_half["layers"][0]["terms"]) == float(digits[:, 1::2].sum())
    nothing = make(np.zeros((6, 8), dtype=int))
    with torch.no_grad():
        assert float(HardwareCost(nothing, torch.zeros(1, 8))()["lut"]) == 0.0
    # a LearnedBits whose widths all fall to 0 bits prunes its layer's cost too
    model = _learned_model()
    model(torch.randn(8, 12))
    with torch.no_grad():
        model[1].weight_quant.frac.fill_(-40)
    with torch.no_grad():
        assert float(HardwareCost(model, torch.zeros(1, 12))()["layers"][0]["lut"]) == 0.0


def test_bad_models_and_parts_are_refused():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantInput("fixed<8,3>")
            self.fc = QuantLinear(4, 2, weight_quant="fixed<4,1>", bias=False)

        def forward(self, x):
            return self.fc(self.q(x) * 2)

    with pytest.raises(QuantError, match="previous module's output"):
        HardwareCost(Branch(), torch.zeros(1, 4))
    with pytest.raises(QuantError, match="BatchNorm1d"):
        HardwareCost(nn.Sequential(QuantInput("fixed<8,3>"), nn.BatchNorm1d(4)), torch.zeros(2, 4))
    with pytest.raises(QuantError, match="ECP5"):
        HardwareCost(nn.Sequential(QuantInput("fixed<8,3>")), torch.zeros(1, 4), part="LFE5U-85F-6BG381C")
