"""Knowledge distillation for the plan-finding methods: training targets that mix the labels
with float teachers' class probabilities.

`train_bit_widths` and `fine_tune_frozen` take a loader of ``(x, y)`` batches and, by default,
torch's cross-entropy, which accepts class probabilities as ``y`` as well as class indices.
So distilling needs no other change: give them targets from `soft_targets` instead of labels::

    targets = soft_targets([float_model, other_float_model], x_train, y_train, share=0.5, temperature=2)
    loader = DataLoader(TensorDataset(x_train, targets), batch_size=64, shuffle=True)
    train_bit_widths(model, loader, lam=2.5e-4, epochs=200, warmup_epochs=60)

On the digits MLP of bench/plan_methods.py, targets half from an ensemble of five float models
at temperature 2 gave the plan that met issue 16's target (bench/RESULTS.md): one teacher gave
plans about 0.5 points less accurate at the same LUTs.
"""

from __future__ import annotations

import torch
from torch import nn

from .quant import QuantError


def soft_targets(teachers: nn.Module | list[nn.Module], x: torch.Tensor, labels: torch.Tensor, share: float = 0.5,
                 temperature: float = 1.0) -> torch.Tensor:
    """Targets ``(1 - share) * one_hot(labels) + share * mean_k softmax(teacher_k(x) / temperature)``:
    an (N, classes) tensor of probabilities (each row sums to 1) for ``x`` (N inputs) and
    ``labels`` (N class indices). ``teachers``: one float model or several (an ensemble, their
    softmaxes averaged), run in eval mode without gradient. ``share`` 0 gives the one-hot labels,
    1 the teachers' probabilities alone."""
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
        raise QuantError(f"soft_targets: share is the teachers' part of the targets, within 0..1; got {share!r}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise QuantError(f"soft_targets: temperature must be a positive number, got {temperature!r}")
    models = [teachers] if isinstance(teachers, nn.Module) else list(teachers)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise QuantError("soft_targets: teachers must be a torch module or a non-empty list of them")
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dim() != 1 or len(labels) != len(x):
        raise QuantError(f"soft_targets: labels must be {len(x)} class indices (one per input), "
                         f"got a {labels.dtype} tensor of shape {list(labels.shape)}")
    with torch.no_grad():
        probabilities = []
        for model in models:
            was_training = model.training
            logits = model.eval()(x)
            model.train(was_training)
            if logits.dim() != 2 or logits.shape[0] != len(x):
                raise QuantError(f"soft_targets: a teacher gave outputs of shape {list(logits.shape)}; expected "
                                 f"({len(x)}, classes) logits")
            probabilities.append(torch.softmax(logits / temperature, dim=1))
        if len({p.shape[1] for p in probabilities}) != 1:
            raise QuantError("soft_targets: the teachers disagree on the number of classes "
                             f"({sorted({p.shape[1] for p in probabilities})})")
        soft = torch.stack(probabilities).mean(0)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= soft.shape[1]):
            raise QuantError(f"soft_targets: labels must be class indices within 0..{soft.shape[1] - 1}, "
                             f"got {int(labels.min())}..{int(labels.max())}")
        hard = nn.functional.one_hot(labels.long(), soft.shape[1]).to(soft.dtype)
        return (1 - share) * hard + share * soft
