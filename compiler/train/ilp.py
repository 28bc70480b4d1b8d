"""Per-layer precisions by an integer linear program over finegrain's own hardware costs.

The method of Tang et al. (ECCV 2022, "Mixed-Precision Neural Network Quantization via Learned
Layer-wise Importance", LIMPQ), with its proxy (bit operations) replaced by our estimator:

1. **Importance** (`layer_importance`): every weight layer gets one learned-step (LSQ) fake
   quantizer per candidate width, all trained jointly in one short run on a copy of the model
   (each batch draws a random candidate per layer, so every step learns under the task loss).
   A layer's learned step at width ``b`` is its indicator: the step LSQ settles on weighs
   rounding against clipping by what the loss feels, so a layer whose loss cares about
   precision learns a different step than its weight range alone would give.  As in LIMPQ the
   indicator itself is what the ILP minimises (summed over layers, as LIMPQ's search does with
   its weight indicators): wider formats have smaller steps, the budgets push the other way.
   The activation formats stay as the model gives them.
2. **Costs** (`cost_table`): one compile per candidate, every layer at that candidate
   (``fixed<b, I>``, I from the layer's learned step so its LSB is a power of two near the
   step), read per layer from `compiler.estimate` (LUT, DSP, latency cycles).  With the
   activation formats fixed, a layer's cost depends only on its own weights' format and its
   input's, so the table is separable; what no weight layer owns (ports, the valid chain) is
   the ``base``, its largest value over the candidates.
3. **Solve** (`solve_precisions`): the multiple-choice knapsack as a binary ILP in HiGHS
   (``x[l, c]``, one candidate per layer, every budget a row).
4. `plan_by_ilp` chains them and checks the chosen plan with a real compile: if pipelining
   across layers makes the total exceed a budget, that budget is tightened by the excess and
   solved again (at most a few rounds).

Use ``from compiler.train.ilp import plan_by_ilp, solve_precisions`` (see docs/training.md).
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..fixed import FixedType
from .modules import QUANT_LAYERS
from .quant import Fixed

RESOURCES = ("lut", "dsp", "latency")


class BudgetError(UserError):
    """No choice of candidates fits the budgets; the message names the smallest that would."""


# --- the solver ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Solution:
    """``choice[l]``: the candidate index of layer l; ``objective``: the summed importance;
    ``totals``: each resource summed over the chosen candidates."""

    choice: tuple[int, ...]
    objective: float
    totals: dict
    seconds: float


def _check_table(importance: np.ndarray, costs: dict) -> dict:
    if importance.ndim != 2 or 0 in importance.shape:
        raise UserError(f"importance must be a non-empty [layers, candidates] array, got shape "
                        f"{list(importance.shape)}")
    if not np.isfinite(importance).all():
        raise UserError("importance must be finite everywhere; drop a candidate instead of giving it inf or nan")
    table = {}
    for key, value in costs.items():
        if key not in RESOURCES:
            raise UserError(f"costs: unknown resource {key!r}; use {', '.join(RESOURCES)}")
        a = np.asarray(value, dtype=np.float64)
        if a.shape != importance.shape or not np.isfinite(a).all():
            raise UserError(f"costs[{key!r}] must be a finite array shaped like importance "
                            f"{list(importance.shape)}, got shape {list(a.shape)}")
        table[key] = a
    return table


def _milp(objective: np.ndarray, rows: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, float] | None:
    """Minimise ``objective . x`` over binary ``x[l, c]`` with one candidate per layer and
    ``a . x <= bound`` for each row; None when infeasible."""
    import highspy

    from ..backends.rtl.retime import _solver  # the process's quiet HiGHS instance

    n_layers, n_cand = objective.shape
    n = objective.size
    h = _solver()
    h.clearModel()
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), objective.ravel())
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * n))
    starts, index, coef, lower, upper = [], [], [], [], []
    for layer in range(n_layers):  # exactly one candidate per layer
        starts.append(len(index))
        index += list(range(layer * n_cand, (layer + 1) * n_cand))
        coef += [1.0] * n_cand
        lower.append(1.0)
        upper.append(1.0)
    for a, bound in rows:
        starts.append(len(index))
        index += list(range(n))
        coef += a.ravel().tolist()
        lower.append(-highspy.kHighsInf)
        upper.append(bound)
    h.addRows(len(starts), np.array(lower), np.array(upper), len(index), np.array(starts, dtype=np.int32),
              np.array(index, dtype=np.int32), np.array(coef))
    # the instance is shared with the RTL retiming: set the exact gaps for this solve only
    saved = {k: h.getOptionValue(k)[1] for k in ("mip_rel_gap", "mip_abs_gap")}
    try:
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-9)
        h.run()
    finally:
        for k, v in saved.items():
            h.setOptionValue(k, v)
    status = h.getModelStatus()
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return None
    if status != highspy.HighsModelStatus.kOptimal:
        raise UserError(f"HiGHS stopped without an optimal choice ({h.modelStatusToString(status)}) on "
                        f"{n_layers} layers x {n_cand} candidates; use fewer candidates or layers")
    x = np.asarray(h.getSolution().col_value).reshape(n_layers, n_cand)
    return x, float(h.getInfo().objective_function_value)


def solve_precisions(importance, costs: dict, *, max_lut=None, max_dsp=None, max_latency=None) -> Solution:
    """The candidate per layer (rows of ``importance``, a ``[layers, candidates]`` array) that
    minimises the summed importance with each resource of ``costs`` (``{"lut": [L, C], "dsp":
    ..., "latency": ...}``), summed over the layers, within its budget (None: unbounded).

    An infeasible set of budgets raises `BudgetError` naming, for each budget, the smallest
    value that is feasible with the other budgets as given."""
    start = time.perf_counter()
    importance = np.asarray(importance, dtype=np.float64)
    table = _check_table(importance, costs)
    budgets = {k: v for k, v in (("lut", max_lut), ("dsp", max_dsp), ("latency", max_latency)) if v is not None}
    for key in budgets:
        if key not in table:
            raise UserError(f"max_{key} given but costs has no {key!r} table; add one or drop the budget")
    bounds = {k: _bound(table[k], float(v)) for k, v in budgets.items()}
    for _ in range(3):
        found = _milp(importance, [(table[k], b) for k, b in bounds.items()])
        if found is None:
            raise BudgetError(_infeasible(table, budgets))
        choice = np.argmax(found[0], axis=1)
        rows = np.arange(len(choice))
        totals = {k: float(a[rows, choice].sum()) for k, a in table.items()}
        over = {k: totals[k] - float(v) for k, v in budgets.items() if totals[k] > v}
        if not over:
            return Solution(tuple(int(c) for c in choice), float(importance[rows, choice].sum()), totals,
                            time.perf_counter() - start)
        for k, excess in over.items():  # within HiGHS's tolerance but over: tighten by the excess
            bounds[k] -= excess + 1e-9 * max(1.0, abs(bounds[k]))
    raise BudgetError(_infeasible(table, budgets))


def _bound(costs: np.ndarray, budget: float) -> float:
    """The row's upper bound: integer costs (LUTs, cycles) get the budget's floor + 0.5, clear
    of HiGHS's feasibility tolerance; others the budget itself (a sum over it within the
    tolerance is caught after the solve)."""
    if (costs == np.round(costs)).all():
        return math.floor(budget) + 0.5
    return budget


def _infeasible(table: dict, budgets: dict) -> str:
    parts = []
    for key, value in budgets.items():
        others = [(table[k], float(v)) for k, v in budgets.items() if k != key]
        least = _milp(table[key], others)
        need = "infeasible whatever it is, given the other budgets" if least is None else f"at least {least[1]:g}"
        parts.append(f"max_{key}={value:g} (needs {need})")
    return (f"no choice of candidates fits the budgets: {'; '.join(parts)}. Raise a budget to the value "
            f"named, or add cheaper candidates")


# --- importance from learned steps (LSQ) -----------------------------------------------------

class _LearnedSteps(nn.Module):
    """An LSQ fake quantizer (Esser et al. 2020) with one learned step per candidate width;
    ``active`` picks the width.  Float only: it measures importance, it is not a plan format."""

    def __init__(self, weight: torch.Tensor, widths: tuple[int, ...]):
        super().__init__()
        self.widths, self.active = widths, 0
        mean = float(weight.detach().abs().mean()) or 1e-3
        self.steps = nn.Parameter(torch.tensor([2 * mean / math.sqrt(2 ** (b - 1) - 1) for b in widths],
                                               dtype=torch.float64))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = self.widths[self.active]
        low, high = -2.0 ** (b - 1), 2.0 ** (b - 1) - 1
        g = 1.0 / math.sqrt(w.numel() * high)  # LSQ's step-gradient scale
        s = self.steps[self.active].abs() + 1e-12
        s = (s - s * g).detach() + s * g
        v = torch.clamp(w.to(torch.float64) / s, low, high)
        return ((v.round() - v).detach() + v) * s


@dataclass(frozen=True)
class Importance:
    """``steps[l, c]``: layer ``layers[l]``'s learned step at width ``widths[c]`` (the indicator)."""

    layers: tuple[str, ...]
    widths: tuple[int, ...]
    steps: np.ndarray


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's quantized weight layers (QuantLinear, QuantConv1d/2d), in module order."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, QUANT_LAYERS)]
    if not layers:
        raise UserError("the model has no QuantLinear/QuantConv1d/QuantConv2d layer to give precisions to")
    return layers


def batches(loader, steps: int):
    """``steps`` batches of ``loader``, starting it again as often as needed."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
            steps -= 1
            if steps <= 0:
                return
        if empty:
            raise UserError("loader yields no batches; give an iterable of (inputs, targets) batches")


def layer_importance(model: nn.Module, loader, widths, *, steps: int = 200, lr: float = 1e-3,
                     loss_fn=nn.functional.cross_entropy, seed: int = 0) -> Importance:
    """Learn every layer's LSQ step at every width in ``widths`` in one run of ``steps``
    batches on a copy of ``model`` (weights and steps trained together, a random width per
    layer per batch); ``model`` is left as it was."""
    widths = tuple(int(b) for b in widths)
    if not widths or min(widths) < 2 or max(widths) > 24:
        raise UserError(f"widths must be integers from 2 to 24 (a signed weight format's bits), got {list(widths)}")
    if steps < 1:
        raise UserError(f"steps must be at least 1, got {steps}")
    work = copy.deepcopy(model)
    layers = weight_layers(work)
    quantizers = [_LearnedSteps(layer.weight, widths) for _, layer in layers]
    for (_, layer), q in zip(layers, quantizers):
        layer.weight_quant = q  # called as weight_quant(weight), like the plan's quantizers
    optimiser = torch.optim.Adam(work.parameters(), lr)  # the steps too: each quantizer is a submodule now
    generator = torch.Generator().manual_seed(seed)
    work.train()
    for x, y in batches(loader, steps):
        for q in quantizers:
            q.active = int(torch.randint(len(widths), (1,), generator=generator))
        loss = loss_fn(work(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    learned = np.array([[float(abs(s)) for s in q.steps.detach()] for q in quantizers])
    return Importance(tuple(name for name, _ in layers), widths, learned)


def step_format(width: int, step: float, rounding: str = "RND_CONV", overflow: str = "SAT") -> str:
    """``fixed<width, I>`` whose LSB is the power of two nearest (in log) to ``step``."""
    frac = int(round(-math.log2(step)))
    return str(FixedType.parse(f"fixed<{width},{width - frac},{rounding},{overflow}>"))


# --- costs from the estimator ----------------------------------------------------------------

def estimate_model(model: nn.Module, example_input: torch.Tensor, **options) -> tuple[dict, dict]:
    """Export ``model`` (no check), compile it in memory with ``options`` (BuildConfig fields:
    ``part``, ``clock_ns``, ...) and estimate it: (the estimate, {module name: its layer's
    estimate entry} for the weight layers)."""
    from .. import compile_model
    from .export import export

    with tempfile.TemporaryDirectory() as tmp:
        exported = export(model, example_input, tmp, check=False)
        project = compile_model(str(exported.model), str(exported.plan), **options)
    graph = project.graph
    estimate = project.estimate().to_dict()
    by_onnx = {layer["onnx"]: layer for layer in estimate["layers"]}
    node_of = {}
    for node in graph.nodes:
        for name in node.inputs:
            t = graph.tensor(name)
            node_of[t.onnx_name or t.name] = by_onnx.get(", ".join(node.onnx_nodes) or node.name)
    per_module = {}
    for module, found in exported.tensors.items():
        if "weight" in found:
            if node_of.get(found["weight"]) is None:
                raise UserError(f"layer {module!r}: the estimate has no layer reading its weight {found['weight']!r}")
            per_module[module] = node_of[found["weight"]]
    return estimate, per_module


def _total(estimate: dict, key: str) -> float:
    return float(estimate["latency_cycles"] if key == "latency" else estimate[key])


def _layer_cost(entry: dict, key: str) -> float:
    return float(entry["latency_cycles"] if key == "latency" else entry[key])


@dataclass(frozen=True)
class CostTable:
    """``costs[resource][l, c]``: layer ``layers[l]`` with its weights in ``formats[l][c]``;
    ``base[resource]``: the rest of the design (largest over the candidates)."""

    layers: tuple[str, ...]
    formats: tuple[tuple[str, ...], ...]
    costs: dict
    base: dict


def cost_table(model: nn.Module, example_input: torch.Tensor, formats, **options) -> CostTable:
    """Per layer and candidate, the estimated LUT, DSP and latency cycles: one compile per
    candidate column of ``formats`` (``formats[l][c]``, one list per weight layer)."""
    layers = weight_layers(model)
    formats = tuple(tuple(str(f) for f in row) for row in formats)
    if len(formats) != len(layers) or len({len(row) for row in formats}) != 1:
        raise UserError(f"formats must list the same number of candidates for each of the {len(layers)} weight "
                        f"layers, got {[len(row) for row in formats]}")
    n_cand = len(formats[0])
    costs = {k: np.zeros((len(layers), n_cand)) for k in RESOURCES}
    base = dict.fromkeys(RESOURCES, 0.0)
    for c in range(n_cand):
        work = copy.deepcopy(model)
        for (_, layer), row in zip(weight_layers(work), formats):
            layer.weight_quant = Fixed(row[c])
        estimate, per_module = estimate_model(work, example_input, **options)
        for key in RESOURCES:
            for i, (name, _) in enumerate(layers):
                costs[key][i, c] = _layer_cost(per_module[name], key)
            base[key] = max(base[key], _total(estimate, key) - costs[key][:, c].sum())
    return CostTable(tuple(name for name, _ in layers), formats, costs, base)


# --- the method end to end -------------------------------------------------------------------

@dataclass
class IlpPlan:
    """What `plan_by_ilp` chose: ``model`` (a copy of the input model with each weight layer's
    ``weight_quant`` set to ``formats[name]``, ready to fine-tune and export), the solution,
    the cost table and importance it came from, and the chosen plan's real ``estimate``."""

    model: nn.Module
    formats: dict
    solution: Solution
    table: CostTable
    importance: Importance
    estimate: dict


def plan_by_ilp(model: nn.Module, loader, candidates, example_input: torch.Tensor, *, max_lut=None, max_dsp=None,
                max_latency=None, steps: int = 200, lr: float = 1e-3, loss_fn=nn.functional.cross_entropy,
                rounding: str = "RND_CONV", overflow: str = "SAT", seed: int = 0, **options) -> IlpPlan:
    """Per-layer weight widths, one of the integers ``candidates``, for a model of
    compiler.train modules whose activation formats are fixed: importance by
    `layer_importance`, costs by `cost_table`, the ILP within the budgets (totals of the whole
    design, as ``finegrain report`` gives them), checked by compiling the chosen plan.
    ``options``: BuildConfig fields (``part``, ``clock_ns``, ...)."""
    budgets = {k: v for k, v in (("lut", max_lut), ("dsp", max_dsp), ("latency", max_latency)) if v is not None}
    importance = layer_importance(model, loader, candidates, steps=steps, lr=lr, loss_fn=loss_fn, seed=seed)
    formats = [[step_format(b, s, rounding, overflow) for b, s in zip(importance.widths, row)]
               for row in importance.steps]
    table = cost_table(model, example_input, formats, **options)
    layer_budgets = {k: v - table.base[k] for k, v in budgets.items()}
    for _ in range(4):
        try:
            solution = solve_precisions(importance.steps, table.costs,
                                        **{f"max_{k}": v for k, v in layer_budgets.items()})
        except BudgetError as err:
            raise BudgetError(f"{err} (layer sums: the rest of the design takes "
                              f"{', '.join(f'{k} {table.base[k]:g}' for k in budgets)} on top)") from None
        chosen = copy.deepcopy(model)
        chosen_formats = {}
        for (name, layer), row, c in zip(weight_layers(chosen), formats, solution.choice):
            layer.weight_quant = Fixed(row[c])
            chosen_formats[name] = row[c]
        estimate, _ = estimate_model(chosen, example_input, **options)
        over = {k: _total(estimate, k) - v for k, v in budgets.items() if _total(estimate, k) > v}
        if not over:
            return IlpPlan(chosen, chosen_formats, solution, table, importance, estimate)
        for k, excess in over.items():  # layers interact a little (pipelining): tighten and solve again
            layer_budgets[k] -= excess
    raise BudgetError(f"the chosen plans kept exceeding the budgets after 4 rounds (last: "
                      f"{', '.join(f'{k} over by {v:g}' for k, v in over.items())}); give a little more room")
