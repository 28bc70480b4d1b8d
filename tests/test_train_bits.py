"""compiler.train.bits: learned bit widths export bit for bit, prune to 0-bit entries, agree
with the estimator through the cost, and trade LUTs for lambda monotonically (sklearn digits)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from compiler.train import (  # noqa: E402
    Fixed, PerAxis, PerElement, QuantConv2d, QuantError, QuantInput, QuantLinear, QuantReLU, export,
)
from compiler.train.bits import (  # noqa: E402
    LearnedBits, attach_learned_bits, fine_tune_frozen, freeze, learned_bits, prune_dead_rows, relax_bit_widths,
    train_bit_widths,
)
from compiler.train.cost import TOLERANCE, HardwareCost, estimate_export  # noqa: E402


def _regression(model, x, steps=15):
    """A few steps of weights and bits on a fixed random target (ranges observed, bits moved)."""
    torch.manual_seed(0)
    target = torch.randn(x.shape[0], model(x).shape[1], dtype=torch.float64)
    loader = [(x, target)] * steps
    train_bit_widths(model, loader, lam=1e-4, epochs=1, loss_fn=nn.functional.mse_loss, lr=1e-2)


def _mlp(granularity):
    torch.manual_seed(3)
    return nn.Sequential(
        QuantInput(LearnedBits((10,), granularity, activation=True, init_frac=4)),
        QuantLinear(10, 8, weight_quant=LearnedBits((8, 10), granularity, init_frac=3),
                    bias_quant="fixed<12,5,RND_CONV,SAT>"),
        QuantReLU(output_quant=LearnedBits((8,), granularity, activation=True, init_frac=3)),
        QuantLinear(8, 4, weight_quant=LearnedBits((4, 8), granularity, init_frac=3),
                    bias_quant=LearnedBits((4,), granularity, init_frac=4),
                    output_quant=LearnedBits((4,), granularity, activation=True, init_frac=5)))


def _conv(granularity):
    torch.manual_seed(4)
    return nn.Sequential(
        QuantInput("fixed<8,3,RND_CONV,SAT>"),
        QuantConv2d(2, 3, 3, weight_quant=LearnedBits((3, 2, 3, 3), granularity, init_frac=3),
                    bias_quant="fixed<10,4,RND_CONV,SAT>"),
        QuantReLU(output_quant=LearnedBits((3, 4, 4), granularity, activation=True, init_frac=3)),
        nn.Flatten(), QuantLinear(48, 3, weight_quant=LearnedBits((3, 48), granularity, init_frac=2), bias=False))


KINDS = {"element": PerElement, "channel": PerAxis, "tensor": Fixed}


@pytest.mark.parametrize("granularity", sorted(KINDS))
@pytest.mark.parametrize("make", [_mlp, _conv], ids=["mlp", "conv"])
def test_trained_models_export_bit_for_bit(make, granularity, tmp_path):
    model = make(granularity)
    x = torch.randn(16, *( (10,) if make is _mlp else (2, 6, 6))) * 3
    _regression(model, x)
    export(model, x, tmp_path / "live")  # export's own bit-exact check, LearnedBits as they are
    with torch.no_grad():
        before = model.eval()(x)
    freeze(model)
    assert not learned_bits(model)
    assert isinstance(model[1].weight_quant, KINDS[granularity]) or (model[1].weight_quant.bits == 0).any()
    with torch.no_grad():
        assert torch.equal(model(x), before)  # frozen: the same numbers
    exported = export(model, x, tmp_path / "frozen")
    estimate = estimate_export(exported)
    with torch.no_grad():
        cost = HardwareCost(model, x)()
    assert abs(float(cost["lut"]) / estimate["lut"] - 1) <= TOLERANCE, (float(cost["lut"]), estimate["lut"])


def test_pruned_weights_and_activations_become_zero_bit_entries(tmp_path):
    model = _mlp("element")
    x = torch.randn(32, 10) * 3
    model.train()(x)
    with torch.no_grad():
        model[1].weight_quant.frac[:, :5] = -30  # the first 5 inputs' weights
        model[2].output_quant.frac[:3] = -30  # the first 3 activations
    exported = export(model, x, tmp_path)
    arrays = np.load(tmp_path / "arrays.npz")
    plan = json.loads(exported.plan.read_text())["tensors"]
    weight = arrays[plan[exported.tensors["1"]["weight"]]["elements"].split(":")[1] + ".bits"]
    assert weight.shape == (8, 10)  # the TorchScript exporter's Gemm keeps torch's [out, in] (transB)
    assert (weight[:, :5] == 0).all() and (weight[:, 5:] > 0).any()
    relu = arrays[plan[exported.tensors["2"]["output"]]["elements"].split(":")[1] + ".bits"]
    assert (relu[:3] == 0).all() and (relu[3:] > 0).all()
    with torch.no_grad():
        assert (model(x) == model(x)).all() and (model[:3](x)[:, :3] == 0).all()


def test_bad_arguments_are_refused():
    with pytest.raises(QuantError, match="granularity"):
        LearnedBits((4,), "row")
    with pytest.raises(QuantError, match="max_bits"):
        LearnedBits((4,), max_bits=30)
    with pytest.raises(QuantError, match="shape"):
        QuantLinear(4, 2, weight_quant=LearnedBits((3, 4)), bias=False)
    plain = nn.Sequential(QuantInput("fixed<8,3>"), QuantLinear(4, 2, weight_quant="fixed<4,1>", bias=False))
    with pytest.raises(QuantError, match="no LearnedBits"):
        train_bit_widths(plain, [(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))], lam=0.1, epochs=1)
    with pytest.raises(QuantError, match="granularity"):
        relax_bit_widths(plain, [(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))], lam=0.1, epochs=1,
                         granularity="element")


def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x, y = torch.tensor(digits.data / 16.0), torch.tensor(digits.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    train = [(x[i:i + 100], y[i:i + 100]) for i in range(0, 1400, 100)]
    return train, x[1400:], y[1400:]


def _digits_mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        QuantInput("ufixed<5,1,RND,SAT>"),
        QuantLinear(64, 16, weight_quant="fixed<6,1,RND,SAT>", bias_quant="fixed<10,4,RND,SAT>"),
        QuantReLU(output_quant="ufixed<6,3,RND,SAT>"),
        QuantLinear(16, 10, weight_quant="fixed<6,1,RND,SAT>", bias_quant="fixed<10,4,RND,SAT>"))


@pytest.mark.parametrize("method", ["per_element", "relaxed_channel"])
def test_larger_lambda_never_gives_more_estimated_luts(method, tmp_path):
    """The monotone sweep on sklearn's digits, fixed seed: raising lambda (lowering it) never
    raises (lowers) the estimator's LUTs of the exported plan, and the cost tracks the estimate."""
    torch.set_num_threads(1)
    train, x_test, y_test = _digits()
    luts, accuracy = [], []
    for lam in (1e-6, 1e-5, 1e-4):
        model = _digits_mlp()
        if method == "per_element":
            attach_learned_bits(model, x_test[:8])
            train_bit_widths(model, train, lam=lam, epochs=4, lr=1e-2)
        else:
            relax_bit_widths(model, train, lam=lam, epochs=4, lr=1e-2, inputs=True)
        model.eval()
        with torch.no_grad():
            accuracy.append(float((model(x_test).argmax(1) == y_test).double().mean()))
            cost = float(HardwareCost(model, x_test[:4])()["lut"])
        estimate = estimate_export(export(freeze(model), x_test[:4], tmp_path / f"{lam}"))["lut"]
        assert abs(cost / estimate - 1) <= TOLERANCE, (lam, cost, estimate)
        luts.append(estimate)
    assert luts[0] >= luts[1] >= luts[2] and luts[2] < 0.75 * luts[0], luts
    assert min(accuracy) > 0.7, accuracy  # still a classifier (10 classes)


def test_cost_weight_ramps_in_over_the_warmup_and_then_holds():
    """warmup_epochs: lam grows linearly batch by batch from 0 and is reached at the warm-up's end;
    a warm-up of 0 (the default) is lam throughout."""
    x = torch.randn(16, 10) * 3
    target = torch.randn(16, 4, dtype=torch.float64)
    loader = [(x, target)] * 4
    runs = {}
    for warmup in (0, 2, 2.5):
        model = _mlp("element")
        runs[warmup] = train_bit_widths(model, loader, lam=1e-3, epochs=3, loss_fn=nn.functional.mse_loss, lr=1e-2,
                                        warmup_epochs=warmup)
    assert [h["lam"] for h in runs[0]] == [1e-3] * 3
    assert [h["lam"] for h in runs[2]] == pytest.approx([0.5e-3, 1e-3, 1e-3])
    assert [h["lam"] for h in runs[2.5]] == pytest.approx([0.4e-3, 0.8e-3, 1e-3])
    # the first batches carry less cost: the loss of epoch 0 is lower than without warm-up
    assert runs[2][0]["loss"] < runs[0][0]["loss"]
    with pytest.raises(QuantError, match="warmup_epochs"):
        train_bit_widths(_mlp("element"), loader, lam=1e-3, epochs=2, loss_fn=nn.functional.mse_loss, warmup_epochs=3)


def test_fine_tuning_after_freeze_keeps_the_plan_and_exports_bit_for_bit(tmp_path):
    """fine_tune_frozen moves the weights, not the widths: every quantizer's formats are the frozen
    ones, pruned weights stay 0 in the forward, the task loss falls, and export's check passes."""
    torch.set_num_threads(1)
    train, x_test, y_test = _digits()
    model = _digits_mlp()
    attach_learned_bits(model, x_test[:8])
    train_bit_widths(model, train, lam=1e-4, epochs=2, lr=1e-2, warmup_epochs=1)
    freeze(model.eval())
    plan = [(m.weight_quant.bits.copy(), m.weight_quant.int_bits.copy()) for m in (model[1], model[3])]
    assert any((bits == 0).any() for bits, _ in plan)  # something was pruned
    weights = [m.weight.detach().clone() for m in (model[1], model[3])]
    history = fine_tune_frozen(model, train, epochs=3, lr=1e-3)
    assert history[-1]["task_loss"] < history[0]["task_loss"]
    for m, (bits, ints), before in zip((model[1], model[3]), plan, weights):
        assert np.array_equal(m.weight_quant.bits, bits) and np.array_equal(m.weight_quant.int_bits, ints)
        assert not torch.equal(m.weight.detach(), before)  # the weights did move
        with torch.no_grad():
            assert (m.weight_quant(m.weight)[torch.from_numpy(bits == 0)] == 0).all()
    export(model, x_test[:16], tmp_path)  # export's own bit-exact check
    with pytest.raises(QuantError, match="freeze"):
        fine_tune_frozen(_mlp("element"), train, epochs=1)
    with pytest.raises(QuantError, match="epochs"):
        fine_tune_frozen(model, train, epochs=0)


@pytest.mark.parametrize("make", [_mlp, _conv], ids=["mlp", "conv"])
def test_rows_whose_outputs_are_all_pruned_are_dropped_exactly(make, tmp_path):
    """prune_dead_rows: a layer row feeding only 0-bit ReLU outputs gets 0 bits; the forward is
    unchanged, the export bit-exact, and the estimator's LUTs fall (the compiled RTL would
    otherwise build that row's products and adder tree)."""
    model = make("element")
    x = torch.randn(16, *((10,) if make is _mlp else (2, 6, 6))) * 3
    model.train()(x)
    with torch.no_grad():
        model[2].output_quant.frac[:2] = -30  # channels 0 and 1 of the first ReLU: every position
        if make is _conv:
            model[2].output_quant.frac[2, 0, 0] = -30  # one position of channel 2: the row stays
    freeze(model.eval())
    with torch.no_grad():
        before = model(x)
    kept = export(model, x, tmp_path / "kept")
    assert prune_dead_rows(model) == 2
    weight_bits = model[1].weight_quant.bits
    assert (weight_bits[:2] == 0).all() and (weight_bits[2:] > 0).any()
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert prune_dead_rows(model) == 0  # nothing left to do
    pruned = export(model, x, tmp_path / "pruned")
    assert estimate_export(pruned)["lut"] < estimate_export(kept)["lut"]


def test_learned_integer_bits_clip_and_get_the_clipping_gradient():
    """``learn_int``: the integer bits start at the first batch's range, a narrower range saturates
    (no gradient to the clipped inputs, ``ln2 * q`` to the integer bits), the cost's widths have
    gradient 1 in them, and the frozen format is the learned one; weights and relaxed refuse it."""
    q = LearnedBits((4,), "tensor", activation=True, learn_int=True, init_frac=2)
    x = torch.tensor([[0.5, 1.0, 3.0, 7.5], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    q.train()(x)
    assert float(q.int_bits.detach()) == 3 and str(q.frozen().format) == "ufixed<5,3,RND,SAT>"  # 7.5 < 2**3
    with torch.no_grad():
        q.int_bits.fill_(2)  # ufixed<4,2>: at most 3.75
    xr = x.clone().requires_grad_(True)
    y = q(xr)
    assert float(y[0, 3].detach()) == 3.75 and torch.equal(y, q.forward_exact(x))
    ((y - 2 * xr.detach()) ** 2).sum().backward()
    assert float(xr.grad[0, 3]) == 0 and float(xr.grad[0, 0]) != 0  # clipped: no gradient to the input
    assert float(q.int_bits.grad) == pytest.approx(np.log(2) * 3.75 * 2 * (3.75 - 15))  # widen: the loss falls
    q.zero_grad()
    q.widths().sum().backward()
    assert float(q.int_bits.grad) == 4 and float(q.frac.grad) == 4
    assert str(q.frozen().format) == "ufixed<4,2,RND,SAT>"
    with pytest.raises(QuantError, match="learn_int"):
        LearnedBits((4, 2), learn_int=True)
    with pytest.raises(QuantError, match="learn_int"):
        LearnedBits((4,), activation=True, relaxed=True, learn_int=True)


@pytest.mark.parametrize("granularity", ["element", "tensor"])
def test_learned_integer_bits_train_and_export_bit_for_bit(granularity, tmp_path):
    """A model whose input and activation ranges are learned (`attach_learned_bits(learn_int=True)`):
    `train_bit_widths` moves the integer bits (at the bits' rate) under a large lam, the live and the
    frozen model export bit for bit, and freezing changes no value."""
    torch.manual_seed(5)
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                          QuantLinear(10, 8, weight_quant="fixed<6,1,RND_CONV,SAT>", bias=False), QuantReLU(),
                          QuantLinear(8, 3, weight_quant="fixed<6,1,RND_CONV,SAT>", bias=False))
    x = torch.randn(32, 10) * 3
    attach_learned_bits(model, x, granularity, weights=False, learn_int=True)
    assert all(q.learn_int for _, q in learned_bits(model)) and len(learned_bits(model)) == 2
    target = torch.randn(32, 3, dtype=torch.float64)
    model.train()(x)  # the first batch sets the integer bits from the ranges
    started = [q.int_bits.detach().clone() for _, q in learned_bits(model)]
    assert all(bool(q.int_started) for _, q in learned_bits(model))
    train_bit_widths(model, [(x, target)] * 30, lam=1.0, epochs=1, loss_fn=nn.functional.mse_loss, lr=1e-2)
    for (_, q), start in zip(learned_bits(model), started):  # the cost narrowed every range
        assert float(q.int_bits.detach().mean()) < float(start.mean()) - 0.5, (q.int_bits, start)
    export(model, x, tmp_path / "live")
    with torch.no_grad():
        before = model.eval()(x)
    freeze(model)
    with torch.no_grad():
        assert torch.equal(model(x), before)
    export(model, x, tmp_path / "frozen")


@pytest.mark.parametrize("pruned", [0, 3, 6])
def test_cost_credits_the_rows_of_pruned_activations(pruned, tmp_path):
    """`HardwareCost(credit_rows=True)`: a row counts only while its activation is kept, so on a
    plan whose dead rows are dropped (`prune_dead_rows`) it follows the estimator where the plain
    cost does not; with nothing pruned the two are equal, a kept activation's width gets the
    gradient of its row's LUTs, and a share (0.25) scales that extra pull only."""
    torch.manual_seed(0)
    model = nn.Sequential(QuantInput("fixed<8,3,RND_CONV,SAT>"),
                          QuantLinear(10, 8, weight_quant="fixed<6,1,RND_CONV,SAT>", bias=False),
                          QuantReLU(output_quant="ufixed<6,3,RND_CONV,SAT>"),
                          QuantLinear(8, 3, weight_quant="fixed<6,1,RND_CONV,SAT>", bias=False))
    x = torch.randn(64, 10) * 2
    attach_learned_bits(model, x, "element", inputs=False)
    model.train()(x)
    with torch.no_grad():
        model[2].output_quant.frac[:pruned] = -30
    plain, credited = HardwareCost(model, x)(), HardwareCost(model, x, credit_rows=True)()
    credited["lut"].backward()
    grad = model[2].output_quant.frac.grad.clone()
    assert (grad[:pruned] == 0).all() and (grad[pruned:] > 0).all()
    pulls = []  # credit_rows=0.25: the same value, a quarter of the pull beyond the plain cost's
    for cost in (HardwareCost(model, x)(), HardwareCost(model, x, credit_rows=0.25)()):
        model.zero_grad()
        cost["lut"].backward()
        pulls.append(model[2].output_quant.frac.grad.clone())
    assert torch.allclose(grad - pulls[0], 4 * (pulls[1] - pulls[0]))
    assert float(cost["lut"].detach()) == pytest.approx(float(credited["lut"].detach()))
    with pytest.raises(QuantError, match="credit_rows"):
        HardwareCost(model, x, credit_rows=-1)
    frozen = freeze(model.eval())
    assert prune_dead_rows(frozen) == pruned
    estimate = estimate_export(export(frozen, x, tmp_path))["lut"]
    credit_error, plain_error = (abs(float(c["lut"].detach()) / estimate - 1) for c in (credited, plain))
    assert credit_error <= TOLERANCE, (float(credited["lut"].detach()), estimate)
    if pruned:
        assert credit_error < plain_error and plain_error > TOLERANCE  # the plain cost counts the dropped rows
    else:
        assert float(credited["lut"].detach()) == pytest.approx(float(plain["lut"].detach()))
