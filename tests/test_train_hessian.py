"""compiler.train.hessian: Hutchinson's row traces against the exact Hessian (within 4 of its
own standard deviations, computed from the exact Hessian), shares -> row counts exactly as the
plan's mix, the most sensitive rows taking the first (widest) entry, and a mixed fixed/pow2
model that exports bit-exactly."""

import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from compiler.errors import UserError  # noqa: E402
from compiler.fixed import FixedType  # noqa: E402
from compiler.train import export  # noqa: E402
from compiler.train.hessian import (  # noqa: E402
    assign_rows, hutchinson_row_traces, mix_rows, row_counts, row_format, row_hessian_traces,
)
from compiler.weight_formats import Pow2Type  # noqa: E402

from tests.train_tasks import tiny_task  # noqa: E402

torch.set_num_threads(1)
MIX = [(0.125, "fixed<6,*,RND_CONV,SAT>"), (0.25, "fixed<4,*,RND_CONV,SAT>"), (0.625, "pow2<*-2,*>")]


def tiny_float_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    x = torch.randn(32, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    return model, x, y


def test_hutchinson_matches_exact_row_traces_within_its_variance():
    model, x, y = tiny_float_model()
    first, second = model[0], model[2]
    w1, w2 = first.weight.detach().clone(), second.weight.detach().clone()

    def loss_of(a, b):
        h = torch.tanh(x @ a.T + first.bias)
        return torch.nn.functional.cross_entropy(h @ b.T + second.bias, y)

    probes = 2000
    estimates = hutchinson_row_traces(loss_of(w1.requires_grad_(), w2.requires_grad_()), [w1, w2], probes=probes,
                                      generator=torch.Generator().manual_seed(1))
    for which, (w, est) in enumerate(zip((w1, w2), estimates)):
        f = (lambda a: loss_of(a, w2.detach())) if which == 0 else (lambda b: loss_of(w1.detach(), b))
        h = torch.autograd.functional.hessian(f, w.detach()).reshape(w.numel(), w.numel()).numpy()
        cols = w.shape[1]
        for r in range(w.shape[0]):
            block = h[r * cols:(r + 1) * cols, r * cols:(r + 1) * cols]
            exact = np.trace(block)
            sigma = np.sqrt(2 * ((block ** 2).sum() - (np.diag(block) ** 2).sum()) / probes)
            assert abs(est[r] - exact) <= 4 * sigma + 1e-12, (which, r, est[r], exact, sigma)
    # the traces are not all equal: there is something to rank
    assert np.ptp(estimates[1]) > 0


def test_row_hessian_traces_names_every_weight_layer():
    model, x, y = tiny_float_model()
    traces = row_hessian_traces(model, x, y, probes=8)
    assert set(traces) == {"0", "2"} and traces["0"].shape == (4,) and traces["2"].shape == (3,)


@pytest.mark.parametrize("rows, counts", [(32, [4, 8, 20]), (16, [2, 4, 10]), (5, [1, 1, 3]), (1, [0, 0, 1]),
                                          (7, [1, 2, 4]), (0, [0, 0, 0])])
def test_shares_to_counts_by_largest_remainder(rows, counts):
    assert row_counts([0.125, 0.25, 0.625], rows) == counts


def test_shares_are_read_as_decimals_exactly():
    # 0.1 * 10 in binary floats is 1.0000000000000002: as decimals the quotas are whole
    assert row_counts([0.1, 0.2, 0.7], 10) == [1, 2, 7]
    assert row_counts([1, 1, 1], 4) == [2, 1, 1]  # a tie goes to the entry listed first


def test_row_formats_from_the_row():
    assert row_format("fixed<6,*,RND_CONV,SAT>", np.array([0.3, -0.9])) == "fixed<6,1,RND_CONV,SAT>"
    assert row_format("fixed<6,*,RND_CONV,SAT>", np.array([1.5, -0.2])) == "fixed<6,2,RND_CONV,SAT>"
    assert row_format("pow2<*-2,*>", np.array([0.3, -0.9])) == "pow2<-2,0>"  # 0.9 rounds to 2**0
    assert row_format("pow2<*-2,*>", np.array([0.7, 0.1])) == "pow2<-3,-1>"  # 0.7 < 0.75: 2**-1
    assert row_format("fixed<4,1,RND,SAT>", np.array([9.0])) == "fixed<4,1,RND,SAT>"
    with pytest.raises(UserError, match="mix template 'pow2<3>'"):
        row_format("pow2<3>", np.array([1.0]))
    with pytest.raises(UserError, match=r"mix template 'fixed<\*,2>'"):
        row_format("fixed<*,2>", np.array([1.0]))


def test_most_sensitive_rows_get_the_first_entry():
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.5, (16, 6))
    traces = rng.permutation(16).astype(float)
    quant = assign_rows(traces, MIX, weight=weight)
    kinds = [(f.width if isinstance(f, FixedType) else 0) for f in quant.formats]
    by_sensitivity = [kinds[r] for r in np.argsort(-traces)]
    assert by_sensitivity == [6] * 2 + [4] * 4 + [0] * 10
    assert all(isinstance(quant.formats[r], Pow2Type) for r in np.argsort(-traces)[6:])
    with pytest.raises(UserError, match="one trace per output row"):
        assign_rows(traces[:3], MIX, weight=weight)
    with pytest.raises(UserError, match="must be positive"):
        assign_rows(traces, [(0, "fixed<4,*>")], weight=weight)


def test_mixed_rows_export_bit_exactly():
    model, _, x, y = tiny_task(hidden=16, classes=5)
    x, y = x[:64], y[:64]
    traces = row_hessian_traces(model, x, y, probes=16)
    chosen = mix_rows(model, traces, MIX)
    assert model[1].weight_quant is chosen["1"] and model[3].weight_quant is chosen["3"]
    kinds = [sum(isinstance(f, Pow2Type) for f in q.formats) for q in chosen.values()]
    assert kinds == [10, 3]
    export(model, torch.cat([x, 8 * torch.randn(8, 8, dtype=torch.float64)]), tempfile.mkdtemp())
