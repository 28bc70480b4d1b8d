"""The plan-finding methods of compiler.train as adapters of issue 16's benchmark (bench/plan_methods.py).

Each adapter is ``method(task, pretrained, seed, **options) -> model``: from the task's float model
(``pretrained``, never changed) it builds the model of compiler.train modules the harness exports,
compiles, prices and emulates. Every one shares what `plan_tasks.base_formats` fixes (input format,
``fixed<10,I>`` biases, ``ufixed<8,I>`` ReLU outputs) except `grad_bits` and `relax`, which learn the
activations' (and, for grad_bits, the input's) widths as well. Options come from ``--set
METHOD:KEY=VALUE``; each adapter's docstring lists its own.

* `grad_bits`: per-weight and per-activation bits by gradient (HGQ), `train_bit_widths` against
  ``lam`` x `HardwareCost`'s LUTs, then frozen (and optionally fine-tuned at the frozen widths);
* `relax`: per-channel continuous bit widths (`relax_bit_widths`), rounded and frozen, fine-tuned;
* `ilp`: per-layer weight widths from ``candidates`` by HiGHS under ``max_lut`` (`plan_by_ilp`);
* `hessian`: examples/rowwise_mixed's row mix by Hessian trace (`row_hessian_traces`, `mix_rows`);
* `gmm`: codebooks from a learned Gaussian mixture (`soft_weight_sharing`, `apply_codebooks`).
"""

from __future__ import annotations

import copy

import numpy as np
import plan_tasks
import torch
from plan_tasks import Task
from torch import nn

from compiler.errors import UserError
from compiler.train import (
    attach_learned_bits, fine_tune_frozen, freeze, mix_rows, plan_by_ilp, prune_dead_rows, relax_bit_widths,
    row_hessian_traces, soft_targets, soft_weight_sharing, train_bit_widths,
)
from compiler.train.cost import HardwareCost
from compiler.train.gmm import apply_codebooks
from compiler.train.ilp import estimate_model

# examples/rowwise_mixed/train.py's mix: most sensitive eighth 6-bit, next quarter 4-bit, the rest pow2
ROW_MIX = ((0.125, "fixed<6,*,RND_CONV,SAT>"), (0.25, "fixed<4,*,RND_CONV,SAT>"), (0.625, "pow2<*-2,*>"))


class Batches:
    """The training split as shuffled ``(x, y)`` batches, reshuffled on every pass (one seeded
    generator, so a run is repeatable); what compiler.train's methods take as ``loader``."""

    def __init__(self, task: Task, seed: int, batch_size: int | None = None):
        self.x, self.y = torch.from_numpy(task.x_train), torch.from_numpy(task.y_train)
        self.batch_size = batch_size or task.batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        for batch in torch.randperm(len(self.x), generator=self.generator).split(self.batch_size):
            yield self.x[batch], self.y[batch]


class DistilledBatches(Batches):
    """`Batches` whose targets are class probabilities, `compiler.train.soft_targets`:
    ``(1 - share)`` x the one-hot label + ``share`` x the float teacher's softmax at ``temperature``
    (several teachers, an ensemble: the mean of their softmaxes)."""

    def __init__(self, task: Task, seed: int, teacher: nn.Module | list[nn.Module], share: float,
                 temperature: float = 1.0):
        super().__init__(task, seed)
        self.y = soft_targets(teacher, self.x, self.y, share, temperature)


def _uniform_model(task: Task, pretrained: nn.Module, bits: int) -> nn.Sequential:
    """``pretrained`` rebuilt from compiler.train modules, every weight ``fixed<bits,I>`` (I per layer)."""
    formats = plan_tasks.base_formats(task, pretrained)
    weights = [plan_tasks.signed_format(m.weight.detach().abs().max().item(), bits)
               for _, m in plan_tasks.layers(pretrained)]
    return plan_tasks.quantized(pretrained, formats, weights)


def _positive(name: str, value, kind=float):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise UserError(f"{name}: expected a positive number, got {value!r}; set it with --set METHOD:{name}=VALUE")
    return kind(value)


def _input_format(text) -> str:
    from compiler.fixed import FixedType, FormatError

    try:
        return str(FixedType.parse(text))
    except (FormatError, TypeError) as err:
        raise UserError(f"input_format: expected a fixed-point format such as 'ufixed<4,0,RND_CONV,SAT>', "
                        f"got {text!r} ({err})") from None


def _epochs(task: Task, epochs) -> int:
    return task.fine_tune_epochs if epochs is None else int(_positive("epochs", epochs, int))


def grad_bits(task: Task, pretrained: nn.Module, seed: int, lam: float = 1e-5, epochs: int | None = None,
              lr: float | None = None, bit_lr: float = 0.05, start_bits: int = 8, init_frac: float | None = None,
              granularity: str = "element", act_granularity: str = "element", inputs: bool = True,
              mu: float = 0.0, tune_epochs: int = 0, warmup: float = 0, cosine: bool = False,
              tune_lr: float | None = None, prune_dead: bool = False, distill: float = 0.0,
              temperature: float = 1.0, input_granularity: str | None = None, learn_int: bool = False,
              input_format: str | None = None, credit_rows: float = 0.0, teachers: int = 1) -> nn.Module:
    """Per-weight (``granularity``) and per-activation (``act_granularity``: element, channel or
    tensor; ReLU outputs and, with ``inputs``, the input) bits learned with the weights by
    `train_bit_widths`: cross-entropy + ``lam`` x LUTs (+ ``mu`` x latency cycles) for ``epochs``
    (the task's fine-tuning epochs by default) at Adam ``lr`` (the task's) and ``bit_lr``, the
    cost ramped in over ``warmup`` epochs, both rates on a cosine with ``cosine``.
    Weights start at ``fixed<start_bits,I>`` per layer, activations at the shared formats
    (``init_frac``: every width's fractional bits instead). Then frozen to the plan formats and,
    with ``tune_epochs``, fine-tuned that long at the frozen widths (pruned stays pruned): by
    `plan_tasks.fine_tune` (the task's rate) without ``tune_lr``, else by `fine_tune_frozen` at
    ``tune_lr``. ``prune_dead``: rows whose every output is pruned get 0 bits (`prune_dead_rows`, exact).
    ``distill``: the share of the float model's softmax (at ``temperature``) in the targets of the
    bit training and of the fine-tuning (`DistilledBatches`; the fine-tuning is then
    `fine_tune_frozen`'s, at ``tune_lr`` or the task's rate). ``input_granularity``: the input's
    (with ``inputs``; default ``act_granularity``); ``learn_int``: the ReLU outputs' and the input's
    integer bits are learned too (`LearnedBits`' ``learn_int``: ranges that clip instead of holding the maximum).
    ``input_format``: the input's format instead of the task's (kept unless ``inputs``: the start of its widths).
    ``credit_rows``: the cost counts a row only while its activation is kept, with that share of the
    row's LUTs as the activation's gradient per bit (`HardwareCost`'s ``credit_rows``; true: 1).
    ``teachers``: with ``distill``, the teacher is an ensemble of that many float models, ``pretrained``
    and ones trained like it (the task's pretraining epochs, kept in its ``cache_dir``) from the seeds
    ``seed + 1000 k`` on the same split, their softmaxes averaged."""
    if not lam >= 0:
        raise UserError(f"lam: expected a LUT weight >= 0, got {lam!r}")
    if not 0 <= distill <= 1:
        raise UserError(f"distill: expected the teacher's share of the targets within 0..1, got {distill!r}")
    if input_format is not None:
        task = plan_tasks.smaller(task, input_format=_input_format(input_format))
    teachers = int(_positive("teachers", teachers, int))
    if teachers > 1 and not distill:
        raise UserError(f"teachers: an ensemble of {teachers} teachers needs distill > 0 (the share of their targets)")
    if distill:
        ensemble = [pretrained] + [plan_tasks.pretrain(task, seed + 1000 * k) for k in range(1, teachers)]
        loader = DistilledBatches(task, seed, ensemble, float(distill), _positive("temperature", temperature))
    else:
        loader = Batches(task, seed)
    torch.manual_seed(seed)
    model = _uniform_model(task, pretrained, int(start_bits))
    example = torch.from_numpy(task.x_train[:64])
    attach_learned_bits(model, example, granularity, activations=False, inputs=False, init_frac=init_frac)
    own_input = bool(inputs) and input_granularity not in (None, act_granularity)
    if own_input:  # the input first: its shapes are recorded before any activation has LearnedBits to observe them
        attach_learned_bits(model, example, input_granularity, weights=False, activations=False, init_frac=init_frac,
                            learn_int=bool(learn_int))
    attach_learned_bits(model, example, act_granularity, weights=False, inputs=bool(inputs) and not own_input,
                        init_frac=init_frac, learn_int=bool(learn_int))
    cost = HardwareCost(model, example, credit_rows=float(credit_rows)) if credit_rows else None
    train_bit_widths(model, loader, lam=float(lam), mu=float(mu), epochs=_epochs(task, epochs), cost=cost,
                     lr=task.fine_tune_lr if lr is None else float(lr), bit_lr=float(bit_lr),
                     warmup_epochs=float(warmup), cosine=bool(cosine))
    model = freeze(model.eval())
    if prune_dead:
        prune_dead_rows(model)
    if tune_epochs:
        tune = int(_positive("tune_epochs", tune_epochs, int))
        if tune_lr is None and not distill:
            plan_tasks.fine_tune(task, model, seed, tune)
        else:
            torch.manual_seed(seed)
            loader.generator.manual_seed(seed)
            rate = task.fine_tune_lr if tune_lr is None else _positive("tune_lr", tune_lr)
            fine_tune_frozen(model, loader, epochs=tune, lr=rate)
    return model.eval()


def relax(task: Task, pretrained: nn.Module, seed: int, lam: float = 1e-5, epochs: int | None = None,
          lr: float | None = None, bit_lr: float = 0.05, start_bits: int = 8, granularity: str = "channel",
          inputs: bool = False, tune_epochs: int | None = None) -> nn.Module:
    """Per-channel (``granularity="tensor"``: per-layer) continuous widths of the weights and the
    ReLU outputs (and the input with ``inputs``) by `relax_bit_widths` against ``lam`` x LUTs for
    ``epochs``, weights starting at ``fixed<start_bits,I>``; rounded, frozen, then fine-tuned at
    those widths for ``tune_epochs`` (default: the task's fine-tuning epochs; 0: none)."""
    if not lam >= 0:
        raise UserError(f"lam: expected a LUT weight >= 0, got {lam!r}")
    torch.manual_seed(seed)
    model = _uniform_model(task, pretrained, int(start_bits))
    relax_bit_widths(model, Batches(task, seed), lam=float(lam), epochs=_epochs(task, epochs), granularity=granularity,
                     example_input=torch.from_numpy(task.x_train[:64]), inputs=bool(inputs),
                     lr=task.fine_tune_lr if lr is None else float(lr), bit_lr=float(bit_lr))
    model = freeze(model.eval())
    tune = task.fine_tune_epochs if tune_epochs is None else int(tune_epochs)
    return (plan_tasks.fine_tune(task, model, seed, tune) if tune > 0 else model).eval()


def ilp(task: Task, pretrained: nn.Module, seed: int, max_lut: float | None = None, lut_share: float = 0.5,
        candidates=(2, 3, 4, 5, 6, 7, 8), steps: int = 200, clock_ns: float = 5.0) -> nn.Module:
    """Per-layer weight widths from ``candidates`` by `plan_by_ilp` (LSQ-step importance, HiGHS)
    under ``max_lut`` estimated LUTs for the whole design (default: ``lut_share`` of the uniform
    6-bit plan's estimate on the float weights), then fine-tuned with the chosen formats."""
    model = _uniform_model(task, pretrained, 8)
    example = torch.from_numpy(task.x_train[:1])
    if max_lut is None:
        estimate, _ = estimate_model(_uniform_model(task, pretrained, 6), example, clock_ns=clock_ns)
        max_lut = _positive("lut_share", lut_share) * estimate["lut"]
    candidates = tuple(int(b) for b in candidates)
    result = plan_by_ilp(model, Batches(task, seed), candidates, example, max_lut=_positive("max_lut", max_lut),
                         steps=int(steps), seed=seed, clock_ns=clock_ns)
    return plan_tasks.fine_tune(task, result.model, seed)


def hessian(task: Task, pretrained: nn.Module, seed: int, mix=ROW_MIX, samples: int = 8192,
            probes: int = 64) -> nn.Module:
    """examples/rowwise_mixed's method: per output row of every weight, by decreasing Hessian trace
    (Hutchinson, ``probes`` vectors, on up to ``samples`` training inputs of the float model) the
    formats of ``mix`` ((share, template) pairs, most precise first) at their shares; fine-tuned."""
    mix = [(float(share), str(template)) for share, template in mix]
    x, y = (torch.from_numpy(a[:int(samples)]) for a in (task.x_train, task.y_train))
    traces = row_hessian_traces(copy.deepcopy(pretrained), x, y, probes=int(probes), seed=seed)
    model = _uniform_model(task, pretrained, 8)
    mix_rows(model, traces, mix)
    return plan_tasks.fine_tune(task, model, seed)


def gmm(task: Task, pretrained: nn.Module, seed: int, components: int = 8, tau: float = 0.005,
        steps: int | None = None, width: int = 6, per_axis: bool = False) -> nn.Module:
    """Soft weight-sharing: the 8-bit model trained ``steps`` batches (default: the task's
    fine-tuning epochs' worth) with a Gaussian-mixture prior of ``components`` per layer (per
    row with ``per_axis``; one pinned at 0) weighted ``tau``, then every weight sent to its
    component's centre, exact in ``fixed<width,I>`` (a `Codebook`), and fine-tuned on them."""
    torch.manual_seed(seed)
    model = _uniform_model(task, pretrained, 8)
    loader = Batches(task, seed)
    if steps is None:
        steps = task.fine_tune_epochs * int(np.ceil(len(task.x_train) / loader.batch_size))
    priors = soft_weight_sharing(model, loader, components=int(components), steps=int(_positive("steps", steps, int)),
                                 tau=float(tau), lr=task.fine_tune_lr, per_axis=bool(per_axis))
    apply_codebooks(model, priors, width=int(width))
    return plan_tasks.fine_tune(task, model, seed)


METHODS = {"grad_bits": grad_bits, "relax": relax, "ilp": ilp, "hessian": hessian, "gmm": gmm}
