"""Row-wise mixed schemes by Hessian-trace sensitivity (RMSMP-style, issue 16 item 3d).

Each output row of a weight (axis 0 of a Linear or Conv weight) gets one scheme from a mix
such as ``[(0.125, "fixed<6,*,RND_CONV,SAT>"), (0.25, "fixed<4,*,RND_CONV,SAT>"),
(0.625, "pow2<*-2,*>")]``: the shares of the layer's rows, listed from the most precise entry
to the least.  Rows are ranked by the trace of the loss Hessian restricted to the row's
weights, estimated with Hutchinson's method (E[v . Hv] over Rademacher v, the Hessian-vector
products by double backward), and the most sensitive rows take the first entry.  Shares
become row counts by largest remainder with `compiler.plan.mix_counts`, the rule of the
plan's ``mix`` entries (docs/bit-plan.md).

A template's ``*`` is filled per row from the row's values: in ``fixed<W,*,...>`` the fewest
integer bits that hold the row's smallest and largest weight after rounding
(`compiler.calibrate.int_bits_for`); in ``pow2<*-K,*>`` EMAX is the exponent the row's
largest |w| rounds to, so the row has K + 1 exponents below it.  A format without ``*`` is
used as written.  The result is a `PerAxis` quantizer per layer.

Use ``from compiler.train.hessian import row_hessian_traces, assign_rows, mix_rows``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..calibrate import int_bits_for
from ..errors import UserError
from ..fixed import FormatError
from ..plan import mix_counts
from ..weight_formats import parse_weight_format
from .quant import PerAxis, pow2_values

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def hutchinson_row_traces(loss: torch.Tensor, weights: list[torch.Tensor], *, probes: int = 64,
                          generator: torch.Generator | None = None) -> list[np.ndarray]:
    """Per weight, per output row: the estimated trace of the Hessian of ``loss`` over that
    row's elements.  ``loss`` must be built from ``weights`` with autograd on.  For Rademacher
    v, v * (Hv) is an unbiased estimate of the Hessian's diagonal; summed over a row it
    estimates the row's trace, with variance 2 (||H_row||_F^2 - sum of its diagonal^2) / probes."""
    if probes < 1:
        raise UserError(f"probes must be at least 1, got {probes}")
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    traces = [torch.zeros(w.shape[0], dtype=torch.float64) for w in weights]
    for _ in range(probes):
        vs = [(torch.randint(0, 2, w.shape, generator=generator) * 2 - 1).to(w.dtype) for w in weights]
        products = torch.autograd.grad(grads, weights, grad_outputs=vs, retain_graph=True)
        for trace, v, hv in zip(traces, vs, products):
            trace += (v * hv).reshape(v.shape[0], -1).sum(dim=1).double().cpu() / probes
    return [t.numpy() for t in traces]


def row_hessian_traces(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss_fn=nn.functional.cross_entropy,
                       probes: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """``{module name: per-row Hessian traces}`` for every Linear/Conv1d/Conv2d weight of
    ``model`` (compiler.train's quantized layers included: their straight-through gradient
    makes it the Hessian at the quantized weights), of ``loss_fn(model(x), y)``."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    if not layers:
        raise UserError("the model has no Linear/Conv1d/Conv2d layer whose rows could be ranked")
    loss = loss_fn(model(x), y)
    traces = hutchinson_row_traces(loss, [m.weight for _, m in layers], probes=probes,
                                   generator=torch.Generator().manual_seed(seed))
    return {name: t for (name, _), t in zip(layers, traces)}


def _check_mix(mix) -> list[tuple[Fraction, str]]:
    entries = []
    for entry in mix:
        try:
            share, template = entry
            share = Fraction(str(share))  # the decimal as written, exactly, as the plan reads it
        except (TypeError, ValueError):
            raise UserError(f"mix entries are (share, format template) pairs, got {entry!r}") from None
        if share <= 0:
            raise UserError(f"mix: share {entry[0]!r} of {template!r} must be positive")
        entries.append((share, str(template)))
    if not entries:
        raise UserError("mix needs at least one (share, format) entry")
    return entries


def row_counts(shares, rows: int) -> list[int]:
    """Rows per mix entry by largest remainder (ties to the entry listed first), exactly as
    the plan's ``mix`` entries count them: ``compiler.plan.mix_counts``."""
    spec = SimpleNamespace(mix=[SimpleNamespace(rows=Fraction(str(s))) for s in shares])
    return mix_counts(spec, rows)


_FIXED = re.compile(r"^\s*(u?fixed)<\s*(\d+)\s*,\s*\*\s*(,[^>]*)?>\s*$")
_POW2 = re.compile(r"^\s*pow2<\s*\*\s*(-\s*\d+)?\s*,\s*\*\s*>\s*$")


def row_format(template: str, row: np.ndarray) -> str:
    """The template's format for one row of weights (``*`` filled from the row, see the module)."""
    if "*" not in template:
        try:
            parse_weight_format(template)
        except FormatError as err:
            raise UserError(f"mix template {template!r}: {err}") from None
        return template
    values = np.asarray(row, dtype=np.float64).ravel()
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if m := _FIXED.match(template):
        kind, width, rest = m.group(1), int(m.group(2)), m.group(3) or ""
        return f"{kind}<{width},{int_bits_for(lo, hi, width, kind == 'fixed')}{rest}>"
    if m := _POW2.match(template):
        below = -int(m.group(1).replace(" ", "")) if m.group(1) else 0
        top = max(abs(lo), abs(hi))
        emax = int(np.log2(float(pow2_values(torch.tensor(top), -1000, 1000)))) if top > 0 else 0
        return f"pow2<{emax - below},{emax}>"
    raise UserError(f"mix template {template!r}: use 'fixed<W,*,ROUNDING,OVERFLOW>' (integer bits from the row), "
                    f"'pow2<*-K,*>' (EMAX from the row) or a complete format")


def assign_rows(traces, mix, *, weight) -> PerAxis:
    """One layer's `PerAxis` quantizer along axis 0: rows by decreasing ``traces`` take the
    ``mix`` entries in order, each entry's share of the rows counted by `row_counts`, each
    row's format from its template and its values in ``weight``."""
    entries = _check_mix(mix)
    traces = np.asarray(traces, dtype=np.float64)
    w = weight.detach().cpu().to(torch.float64).numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    if traces.ndim != 1 or w.shape[0] != traces.size:
        raise UserError(f"assign_rows: {traces.size} traces for a weight of shape {list(w.shape)}; give one trace "
                        f"per output row (axis 0)")
    order = np.lexsort((np.arange(traces.size), -traces))  # most sensitive first, ties by index
    formats = [""] * traces.size
    start = 0
    for (_, template), count in zip(entries, row_counts([s for s, _ in entries], traces.size)):
        for r in order[start:start + count]:
            formats[r] = row_format(template, w[r])
        start += count
    return PerAxis(0, formats)


def mix_rows(model: nn.Module, traces: dict, mix) -> dict[str, PerAxis]:
    """`assign_rows` for every layer named in ``traces`` (as `row_hessian_traces` returns
    them): sets each layer's ``weight_quant`` (compiler.train layers) and returns the quantizers."""
    modules = dict(model.named_modules())
    chosen = {}
    for name, trace in traces.items():
        layer = modules.get(name)
        if layer is None or not hasattr(layer, "weight_quant"):
            raise UserError(f"mix_rows: {name!r} is not a QuantLinear/QuantConv1d/QuantConv2d of the model")
        chosen[name] = layer.weight_quant = assign_rows(trace, mix, weight=layer.weight)
    return chosen
