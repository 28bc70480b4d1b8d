"""Codebook weights from a learned Gaussian mixture (soft weight-sharing, issue 16 item 3e).

Nowlan & Hinton (1992) and Ullrich, Meeds & Welling (2017, "Soft weight-sharing for neural
network compression"): a mixture of Gaussians is a prior over a layer's weights, its means,
log-variances and mixing proportions trained together with the network, and its negative
log-likelihood (times ``tau`` per weight) is added to the task loss, so the weights gather
around a few centres.  One component is pinned at 0, so the weights it takes are pruned.

Afterwards (`to_codebook`) every weight goes to its most probable component, the centres of
the components used are rounded into one exact ``fixed<width, I>`` format (I from the largest
centre; 0 stays 0), and the weight takes its centre's value: the result is a compiler.train
`Codebook` (one per layer, or one per output row with a prior per row), and the layer's
distinct weights are exactly its codebook's centres.

Use ``from compiler.train.gmm import GaussianMixturePrior, soft_weight_sharing, apply_codebooks``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..calibrate import int_bits_for
from ..errors import UserError
from ..fixed import FixedType
from .ilp import batches, weight_layers
from .quant import Codebook, fixed_values


class GaussianMixturePrior(nn.Module):
    """A mixture of ``components`` Gaussians over scalar weights, component 0 pinned at mean 0.

    ``means``: the other components' starting means (`for_weights` places them at evenly
    spaced quantiles of the weights, which makes the start deterministic and spread where
    the weights are); every standard deviation starts at ``reach / components`` (``reach``: the
    largest |mean|), the proportions equal.  Log-variances are clamped below at
    ``2 log(min_std)`` so no component collapses onto a single weight."""

    def __init__(self, means, *, min_std: float | None = None):
        super().__init__()
        means = np.sort(np.asarray(means, dtype=np.float64).ravel())
        components = len(means) + 1
        reach = float(np.abs(means).max()) if len(means) else 0.0
        if len(means) < 1 or not reach > 0 or not np.isfinite(means).all():
            raise UserError(f"a mixture needs at least 2 components (one pinned at 0) and finite starting means "
                            f"not all 0, got means {means.tolist()}")
        self.free_means = nn.Parameter(torch.tensor(means, dtype=torch.float64))
        self.log_vars = nn.Parameter(torch.full((components,), 2 * math.log(reach / components), dtype=torch.float64))
        self.logits = nn.Parameter(torch.zeros(components, dtype=torch.float64))
        self.min_log_var = 2 * math.log(min_std if min_std is not None else reach * 1e-3)

    @classmethod
    def for_weights(cls, weight: torch.Tensor, components: int, **kwargs) -> GaussianMixturePrior:
        """A prior of ``components`` (the pinned zero included) started from ``weight``'s values."""
        if components < 2:
            raise UserError(f"a mixture needs at least 2 components (one pinned at 0), got {components}")
        values = weight.detach().to(torch.float64).cpu().numpy().ravel()
        if not (values != 0).any():
            values = np.array([-1.0, 1.0])
        free = components - 1
        return cls(np.quantile(values, (np.arange(free) + 0.5) / free), **kwargs)

    @property
    def means(self) -> torch.Tensor:
        """All means, the pinned 0 first."""
        return torch.cat([torch.zeros(1, dtype=torch.float64), self.free_means])

    def _joint(self, w: torch.Tensor) -> torch.Tensor:
        """log(pi_k N(w; mu_k, var_k)) for every weight (rows) and component (columns)."""
        w = w.reshape(-1, 1).to(torch.float64)
        log_var = self.log_vars.clamp(min=self.min_log_var)
        log_pi = torch.log_softmax(self.logits, 0)
        return log_pi - 0.5 * (math.log(2 * math.pi) + log_var + (w - self.means) ** 2 / log_var.exp())

    def nll(self, w: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of the weights ``w`` under the mixture (summed)."""
        return -torch.logsumexp(self._joint(w), dim=1).sum()

    def component(self, w: torch.Tensor) -> np.ndarray:
        """Each weight's most probable component (index 0: the pinned zero), shaped like ``w``."""
        with torch.no_grad():
            return self._joint(w).argmax(dim=1).reshape(w.shape).cpu().numpy()

    def fit(self, values: torch.Tensor, *, steps: int = 500, lr: float = 0.02) -> GaussianMixturePrior:
        """Fit the mixture alone to fixed ``values`` (maximum likelihood by Adam)."""
        values = torch.as_tensor(values, dtype=torch.float64).detach()
        optimiser = torch.optim.Adam(self.parameters(), lr)
        for _ in range(steps):
            loss = self.nll(values) / values.numel()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return self


def _priors_for(layer: nn.Module, components: int, per_axis: bool):
    if per_axis:
        return nn.ModuleList(GaussianMixturePrior.for_weights(row, components) for row in layer.weight)
    return GaussianMixturePrior.for_weights(layer.weight, components)


def _penalty(layer: nn.Module, prior) -> torch.Tensor:
    if isinstance(prior, nn.ModuleList):
        return sum(p.nll(row) for p, row in zip(prior, layer.weight))
    return prior.nll(layer.weight)


def soft_weight_sharing(model: nn.Module, loader, *, components: int = 8, steps: int = 300, tau: float = 0.005,
                        lr: float = 1e-3, prior_lr: float = 1e-2, per_axis: bool = False,
                        loss_fn=nn.functional.cross_entropy) -> dict:
    """Train ``model`` (in place) for ``steps`` batches of ``loader`` on ``loss_fn + tau *
    (mixture NLL per weight)``, a mixture per weight layer (``per_axis``: per output row) learnt
    with it; returns ``{layer name: prior}`` (a ModuleList of priors per row when per_axis)."""
    if tau < 0 or steps < 1:
        raise UserError(f"tau must be >= 0 and steps >= 1, got tau={tau}, steps={steps}")
    layers = weight_layers(model)
    priors = {name: _priors_for(layer, components, per_axis) for name, layer in layers}
    count = sum(layer.weight.numel() for _, layer in layers)
    optimiser = torch.optim.Adam([{"params": model.parameters(), "lr": lr},
                                  {"params": [p for prior in priors.values() for p in prior.parameters()],
                                   "lr": prior_lr}])
    model.train()
    for x, y in batches(loader, steps):
        penalty = sum(_penalty(layer, priors[name]) for name, layer in layers)
        loss = loss_fn(model(x), y) + tau * penalty / count
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return priors


def _book(prior: GaussianMixturePrior, weight: torch.Tensor, width: int, rounding: str):
    """(centres, format, each weight's centre value) for one prior and its weights."""
    comp = prior.component(weight)
    means = prior.means.detach().numpy()
    used = np.unique(comp)
    lo, hi = float(means[used].min()), float(means[used].max())
    fmt = f"fixed<{width},{int_bits_for(min(lo, 0.0), max(hi, 0.0), width, True)},{rounding},SAT>"
    rounded = fixed_values(torch.tensor(means), *_fields(fmt)).numpy()
    rounded[0] = 0.0  # the pinned component is exactly 0 whatever the format
    return sorted({float(rounded[k]) for k in used}), fmt, rounded[comp]


def _fields(fmt: str):
    t = FixedType.parse(fmt)
    return t.width, t.int_bits, t.signed, int(t.rounding), int(t.overflow)


def to_codebook(prior, weight: torch.Tensor, *, width: int = 6,
                rounding: str = "RND_CONV") -> tuple[Codebook, torch.Tensor]:
    """The `Codebook` of ``weight`` under its trained ``prior`` (one prior, or a sequence of
    one per output row for ``Codebook.per_axis(0, ...)``), centres exact in ``fixed<width, I>``,
    and the weight with each element at its centre."""
    if width < 2 or width > 24:
        raise UserError(f"width must be 2 to 24 bits (a signed weight format), got {width}")
    if isinstance(prior, GaussianMixturePrior):
        centres, fmt, values = _book(prior, weight, width, rounding)
        return Codebook(centres, fmt), torch.tensor(values, dtype=weight.dtype)
    priors = list(prior)
    if len(priors) != weight.shape[0]:
        raise UserError(f"{len(priors)} priors for a weight with {weight.shape[0]} rows; give one per row")
    books = [_book(p, row, width, rounding) for p, row in zip(priors, weight)]
    values = np.stack([v for _, _, v in books])
    return Codebook.per_axis(0, [(c, f) for c, f, _ in books]), torch.tensor(values, dtype=weight.dtype)


def apply_codebooks(model: nn.Module, priors: dict, *, width: int = 6, rounding: str = "RND_CONV") -> dict:
    """`to_codebook` for every layer in ``priors``: sets the layer's weights to their centres
    and its ``weight_quant`` to the codebook; returns ``{layer name: Codebook}``."""
    layers = dict(weight_layers(model))
    books = {}
    for name, prior in priors.items():
        if name not in layers:
            raise UserError(f"apply_codebooks: {name!r} is not a QuantLinear/QuantConv1d/QuantConv2d of the model")
        layer = layers[name]
        book, values = to_codebook(prior, layer.weight, width=width, rounding=rounding)
        with torch.no_grad():
            layer.weight.copy_(values)
        layer.weight_quant = books[name] = book
    return books
