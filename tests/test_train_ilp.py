"""compiler.train.ilp: the HiGHS multiple-choice knapsack against exhaustive search on small
random instances (optimal, every budget respected, infeasible budgets named), and the method
end to end on a tiny model: the chosen plan's real estimate is within max_lut and its export
is bit-exact."""

import itertools
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from compiler.errors import UserError  # noqa: E402
from compiler.train import export  # noqa: E402
from compiler.train.ilp import (  # noqa: E402
    BudgetError, layer_importance, plan_by_ilp, solve_precisions, step_format,
)

from tests.train_tasks import tiny_task  # noqa: E402

torch.set_num_threads(1)


def brute_force(importance, costs, budgets):
    """The best choice by enumerating every one, or None."""
    best = None
    layers, cands = importance.shape
    for choice in itertools.product(range(cands), repeat=layers):
        rows = np.arange(layers), np.array(choice)
        if all(costs[k][rows].sum() <= v for k, v in budgets.items()):
            value = importance[rows].sum()
            if best is None or value < best[1] - 1e-12:
                best = (choice, value)
    return best


def random_instance(rng, layers, cands, integer):
    importance = rng.uniform(0, 10, (layers, cands))
    costs = {k: rng.integers(0, 50, (layers, cands)).astype(float) if integer else rng.uniform(0, 50, (layers, cands))
             for k in ("lut", "dsp", "latency")}
    return importance, costs


@pytest.mark.parametrize("seed", range(40))
def test_optimal_and_within_budgets_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    layers, cands = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    importance, costs = random_instance(rng, layers, cands, integer=seed % 2 == 0)
    # budgets between the cheapest and the dearest sums, some left out
    budgets = {}
    for key in ("lut", "dsp", "latency"):
        if rng.random() < 0.7:
            lo, hi = costs[key].min(axis=1).sum(), costs[key].max(axis=1).sum()
            budgets[key] = float(np.floor(rng.uniform(lo, hi))) if seed % 2 == 0 else float(rng.uniform(lo, hi))
    best = brute_force(importance, costs, budgets)
    kwargs = {f"max_{k}": v for k, v in budgets.items()}
    if best is None:
        with pytest.raises(BudgetError, match="no choice of candidates fits"):
            solve_precisions(importance, costs, **kwargs)
        return
    solution = solve_precisions(importance, costs, **kwargs)
    assert solution.objective == pytest.approx(best[1], abs=1e-9)
    rows = np.arange(layers), np.array(solution.choice)
    for key, budget in budgets.items():
        assert costs[key][rows].sum() <= budget
        assert solution.totals[key] == pytest.approx(costs[key][rows].sum())


def test_integer_budget_met_exactly_is_feasible():
    importance = np.array([[1.0, 0.0], [1.0, 0.0]])
    costs = {"lut": np.array([[1.0, 5.0], [1.0, 5.0]])}
    assert solve_precisions(importance, costs, max_lut=6).choice in ((0, 1), (1, 0))
    assert solve_precisions(importance, costs, max_lut=10).choice == (1, 1)
    assert solve_precisions(importance, costs, max_lut=9.9).objective == 1.0


def test_infeasible_names_the_smallest_budget():
    importance = np.zeros((3, 2))
    costs = {"lut": np.array([[10.0, 20.0], [5.0, 7.0], [1.0, 1.0]]),
             "latency": np.array([[3.0, 1.0], [3.0, 1.0], [1.0, 1.0]])}
    with pytest.raises(BudgetError, match=r"max_lut=15 \(needs at least 16\)"):
        solve_precisions(importance, costs, max_lut=15)
    # each budget alone is feasible, together not: the LUTs needed with latency <= 5
    with pytest.raises(BudgetError, match=r"max_lut=17 \(needs at least 18\).*max_latency=5 \(needs at least 7\)"):
        solve_precisions(importance, costs, max_lut=17, max_latency=5)


def test_bad_tables_are_user_errors():
    with pytest.raises(UserError, match="shaped like importance"):
        solve_precisions(np.zeros((2, 3)), {"lut": np.zeros((3, 2))})
    with pytest.raises(UserError, match="unknown resource 'ff'"):
        solve_precisions(np.zeros((2, 3)), {"ff": np.zeros((2, 3))})
    with pytest.raises(UserError, match="max_dsp given but costs has no 'dsp'"):
        solve_precisions(np.zeros((2, 3)), {"lut": np.zeros((2, 3))}, max_dsp=3)
    with pytest.raises(UserError, match="finite"):
        solve_precisions(np.full((2, 3), np.inf), {})


def test_tens_of_layers_solve_well_under_a_second():
    rng = np.random.default_rng(7)
    importance, costs = random_instance(rng, 40, 8, integer=True)
    budget = float((costs["lut"].min(axis=1).sum() + costs["lut"].max(axis=1).sum()) / 2)
    start = time.perf_counter()
    solution = solve_precisions(importance, costs, max_lut=budget, max_latency=float(costs["latency"].mean(1).sum()))
    assert time.perf_counter() - start < 1.0
    assert solution.totals["lut"] <= budget


def test_importance_learns_a_step_per_layer_and_width():
    model, loader, _, _ = tiny_task()
    before = [p.detach().clone() for p in model.parameters()]
    importance = layer_importance(model, loader, (3, 6), steps=40)
    assert importance.layers == ("1", "3") and importance.steps.shape == (2, 2)
    assert (importance.steps[:, 0] > importance.steps[:, 1]).all()  # fewer bits, a coarser step
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the model is untouched
    assert step_format(4, 0.1) == "fixed<4,1,RND_CONV,SAT>"  # LSB 2**-3, the nearest power of two to 0.1


def test_plan_by_ilp_end_to_end_within_max_lut():
    model, loader, x, _ = tiny_task()
    widths = (2, 4, 6)
    free = plan_by_ilp(model, loader, widths, x[:1], steps=40)  # no budget: the widest everywhere
    assert free.solution.choice == (2, 2)
    lut = free.table.costs["lut"]
    budget = int(free.table.base["lut"] + (lut.min(axis=1).sum() + lut.max(axis=1).sum()) / 2)
    result = plan_by_ilp(model, loader, widths, x[:1], max_lut=budget, steps=40)
    # the real compile of the chosen plan is within the budget, and the solver's sums say so too
    assert result.estimate["lut"] <= budget < free.estimate["lut"]
    assert result.solution.totals["lut"] + result.table.base["lut"] <= budget
    assert result.solution.choice != (2, 2)
    assert set(result.formats) == {"1", "3"}
    # the chosen formats are the model's quantizers, and the export is bit-exact
    export(result.model, x[:16], __import__("tempfile").mkdtemp())
    with pytest.raises(BudgetError, match="needs at least"):
        plan_by_ilp(model, loader, widths, x[:1], max_lut=10, steps=5)
