"""Bit widths learned by gradient: the `LearnedBits` quantizer and `freeze`.

`LearnedBits` is a `compiler.train` quantizer whose number of fractional bits is a trainable
parameter, per element, per channel or per tensor (HGQ: Sun et al. 2024, "Gradient-based
automatic per-weight mixed precision quantization for neural networks on-chip"):

* **Forward (exact).** ``f`` rounds to an integer; the integer bits come from the observed
  range (a weight: its current values, each element's own for ``"element"``, the group's
  largest otherwise; an activation: a running maximum of ``|x|`` over training batches, and it
  is signed where a negative value was seen).  The width is ``int_bits + round(f)`` (the sign
  bit counted in the integer bits, as the plan does) and a width at or below the sign bit is
  **0: the element is pruned**.  The value is `quant.fixed_values` of that format, so the
  fixed quantizer `LearnedBits.frozen` returns (`PerElement`, `PerAxis` or `Fixed`) computes
  the same numbers and `export`'s bit-exact check passes.
* **Gradient.** The input passes straight through; ``f`` gets HGQ's surrogate: the rounding
  error ``e = q(x) - x`` scales like ``2**-f``, so ``de/df = -ln 2 * e``.  For the hardware
  cost (`compiler.train.cost`), `LearnedBits.widths` is the width with gradient 1 in ``f``
  (0 where pruned).

* **Learned integer bits** (``learn_int=True``, activations only): the integer bits become a
  trainable parameter too, started from the first training batch's range; below the range a
  value saturates (the plan's ``SAT``), the input gets no gradient there (as PACT's clipping)
  and the integer bits get ``d q / d int = ln 2 * q`` (the saturation bound doubles per bit),
  so the task loss widens a range that clips what matters and the cost narrows the rest.

Usable wherever a quantizer is: ``weight_quant=``, ``bias_quant=``, ``output_quant=`` (per-
activation bits) and `QuantInput`.  Activations take ``activation=True`` and their shape
without the batch axis.  Rounding ``RND`` and overflow ``SAT`` by default: a running maximum
can fall short of a later input, which then saturates instead of wrapping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..fixed import FixedType, Overflow, Rounding
from .quant import MAX_WIDTH_BITS, Fixed, PerAxis, PerElement, QuantError, Quantizer, _as_mode, fixed_values

GRANULARITIES = ("element", "channel", "tensor")
MAX_LEARNED_INT = 64  # learned integer bits stay within +-this (plans allow far more; no real range needs it)


class _Rounded(torch.autograd.Function):
    """``q`` (computed exactly outside) with the straight-through gradient to ``x`` and HGQ's
    surrogate ``-ln2 * (q - x)`` to the fractional bits (broadcast like ``x``)."""

    @staticmethod
    def forward(ctx, x, frac, q):
        ctx.save_for_backward(x, q)
        ctx.frac_shape = frac.shape
        return q

    @staticmethod
    def backward(ctx, grad):
        x, q = ctx.saved_tensors
        g_frac = grad * (-math.log(2.0)) * (q - x)
        # sum over the broadcast (batch, and the group for channel / tensor granularity)
        while g_frac.ndim > len(ctx.frac_shape):
            g_frac = g_frac.sum(0)
        for i, n in enumerate(ctx.frac_shape):
            if n == 1 and g_frac.shape[i] != 1:
                g_frac = g_frac.sum(i, keepdim=True)
        return grad, g_frac.to(torch.float32), None


def _int_bits(bound: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
    """Integer bits (sign included) that hold magnitudes below 2**floor(log2 bound) * 2."""
    safe = torch.where(bound > 0, bound, torch.ones_like(bound))
    return torch.floor(torch.log2(safe)) + 1 + signed.to(bound.dtype)


class LearnedBits(Quantizer, nn.Module):
    """A quantizer with trainable fractional bits.

    ``shape``: the tensor's shape (an activation's without the batch axis); ``granularity``:
    ``"element"``, ``"channel"`` (one width per index along ``axis``: torch's axis as
    `PerAxis` takes it, 0 for a weight's output channel, 1 for an activation's channel) or
    ``"tensor"``; ``activation``: an input or activation (ranges from a running maximum)
    rather than a weight or bias (ranges from its values); ``init_frac``: the fractional bits
    to start from; ``max_bits``: the widest width allowed (24 at most on weights: ONNX holds
    them as float32); ``range_decay``: how fast an activation's running maximum follows
    smaller batches (it rises at once).  An activation's range is 0, so every element pruned,
    until a forward pass in training mode has seen data; ``relaxed``: see `relax_bit_widths`;
    ``learn_int``: the integer bits trained as well (activations, not relaxed; module docstring).
    """

    def __init__(self, shape, granularity: str = "element", *, axis: int | None = None, activation: bool = False,
                 init_frac: float = 4.0, rounding="RND", overflow="SAT", max_bits: int = 16,
                 range_decay: float = 0.01, relaxed: bool = False, learn_int: bool = False):
        nn.Module.__init__(self)
        if granularity not in GRANULARITIES:
            raise QuantError(f"LearnedBits: granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        self.shape = tuple(int(n) for n in shape)
        self.granularity, self.activation = granularity, bool(activation)
        self.axis = (1 if activation else 0) if axis is None else int(axis)
        self.rounding, self.overflow = _as_mode(Rounding, rounding), _as_mode(Overflow, overflow)
        limit = MAX_WIDTH_BITS if activation else 24
        if not 1 <= max_bits <= limit:
            why = "float64 sums" if activation else "float32 weights in ONNX"
            raise QuantError(f"LearnedBits: max_bits must be within 1..{limit} ({why}), got {max_bits}")
        self.max_bits, self.range_decay, self.relaxed = int(max_bits), float(range_decay), bool(relaxed)
        self.learn_int = bool(learn_int)
        if self.learn_int and (not self.activation or self.relaxed):
            raise QuantError("LearnedBits: learn_int is for activations (a weight's integer bits come from its values) "
                             "and not with relaxed=True; drop learn_int or set activation=True, relaxed=False")
        group = self._group_shape()
        self.frac = nn.Parameter(torch.full(group, float(init_frac)))
        if self.activation:
            self.register_buffer("running_max", torch.zeros(group, dtype=torch.float64))
            self.register_buffer("running_min", torch.zeros(group, dtype=torch.float64))
        if self.learn_int:  # set from the first training batch's range (`_observe`)
            self.int_bits = nn.Parameter(torch.zeros(group))
            self.register_buffer("int_started", torch.zeros((), dtype=torch.bool))

    def _group_shape(self) -> tuple[int, ...]:
        if self.granularity == "element":
            return self.shape
        if self.granularity == "tensor":
            return (1,) * len(self.shape)
        axis = self.axis - (1 if self.activation else 0)  # the parameter has no batch axis
        if not 0 <= axis < len(self.shape):
            raise QuantError(f"LearnedBits: axis {self.axis} is outside a tensor of shape {list(self.shape)}"
                             f"{' (an activation: axis 1 is its channel)' if self.activation else ''}")
        return tuple(n if i == axis else 1 for i, n in enumerate(self.shape))

    def extra_repr(self):
        return f"{list(self.shape)}, {self.granularity}, {'activation' if self.activation else 'weight'}"

    def __repr__(self):
        return nn.Module.__repr__(self)

    def check(self, shape, what):
        got = tuple(shape[1:]) if self.activation else tuple(shape)
        if got != self.shape:
            note = " (an activation: its shape without the batch axis)" if self.activation else ""
            raise QuantError(f"{what}: LearnedBits was made for shape {list(self.shape)}, the tensor is "
                             f"{list(shape)}{note}")

    # --- the format ---------------------------------------------------------------------
    def _reduce(self, a: torch.Tensor, op) -> torch.Tensor:
        """``a`` (the tensor's shape) reduced over each group to the group's shape."""
        group = self._group_shape()
        for i, n in enumerate(group):
            if n == 1 and a.shape[i] != 1:
                a = op(a, i)
        return a

    def _range(self, values: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The largest magnitude and whether negative, per group (float64)."""
        if self.activation:
            return self.running_max, (self.running_min < 0).to(torch.float64)
        if values is None:
            raise QuantError("LearnedBits on a weight needs the weight's values to find its integer bits")
        v = values.detach().to(torch.float64)
        bound = self._reduce(v.abs(), lambda a, i: a.amax(i, keepdim=True))
        negative = self._reduce((v < 0).to(torch.float64), lambda a, i: a.amax(i, keepdim=True))
        return bound, negative

    def fields(self, values: torch.Tensor | None = None, frac: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(width, int_bits, signed)`` per group (float64 tensors of integers): the format
        each element is quantized into now (``frac``: other integer fractional bits than
        ``round(self.frac)``); width 0 prunes."""
        bound, signed = self._range(values)
        ints = self._learned_ints() if self._ints_learned() else _int_bits(bound, signed)
        frac = torch.round(self.frac.detach().to(torch.float64)) if frac is None else frac
        width = torch.clamp(ints + frac, max=self.max_bits)
        width = torch.where((width <= signed) | (bound <= 0), torch.zeros_like(width), width)
        return width, ints, signed

    def _ints_learned(self) -> bool:
        return self.learn_int and bool(self.int_started)

    def _learned_ints(self) -> torch.Tensor:
        return torch.round(self.int_bits.detach().to(torch.float64)).clamp(-MAX_LEARNED_INT, MAX_LEARNED_INT)

    def bit_parameters(self) -> list[nn.Parameter]:
        """The trainable bit widths: the fractional bits, and the integer bits with ``learn_int``."""
        return [self.frac, self.int_bits] if self.learn_int else [self.frac]

    def widths(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """Each element's width (the tensor's shape, an activation's without batch): the exact
        integer widths as values, gradient 1 in the fractional bits where not pruned (relaxed,
        in training: the continuous ``int_bits + frac``)."""
        width, ints, _ = self.fields(values)
        kept = (width > 0).to(torch.float64)
        frac = self.frac.to(torch.float64)
        if self.relaxed and self.training:  # continuous, as the relaxed forward
            live = kept * torch.clamp(ints + frac, min=0, max=self.max_bits)
        else:
            live = width + kept * (frac - frac.detach())
            if self._ints_learned():
                ints = self.int_bits.to(torch.float64)
                live = live + kept * (ints - ints.detach())
        return live.expand(self.shape) if live.shape != self.shape else live

    def forward_exact(self, x: torch.Tensor) -> torch.Tensor:
        width, ints, signed = self.fields(None if self.activation else x)
        return fixed_values(x, width, ints, signed, int(self.rounding), int(self.overflow))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if self.activation and self.training:
            self._observe(x.detach())
        if self.relaxed and self.training:
            return self._relaxed(x)
        with torch.no_grad():
            q = self.forward_exact(x)
        if not self._ints_learned():
            return _Rounded.apply(x, self.frac, q)
        with torch.no_grad():
            width, ints, signed = self.fields()
            top = torch.exp2(ints - signed) - torch.exp2(ints - width)  # the format's largest and smallest value
            low = torch.where(signed > 0, -torch.exp2(ints - 1), torch.zeros_like(ints))
            clipped = ((x > top) | (x < low)) & (width > 0)
            slope = torch.where(clipped, math.log(2.0) * q, torch.zeros_like(q))
        # the frac surrogate and the input's gradient only where not clipped (there the int bits'):
        out = _Rounded.apply(torch.where(clipped, q, x), self.frac, q)
        ints_live = self.int_bits.to(torch.float64)
        return out + (ints_live - ints_live.detach()) * slope

    def _relaxed(self, x: torch.Tensor) -> torch.Tensor:
        """Training only: the interpolation between the quantizations at floor(f) and floor(f) + 1
        fractional bits by f's fraction (a continuous relaxation of the width: f gets the
        gradient of the difference), straight through to ``x``.  Not exact: eval and export
        round f."""
        frac = self.frac.to(torch.float64)
        low = torch.floor(frac.detach())
        values = None if self.activation else x
        with torch.no_grad():
            q_low = fixed_values(x, *self.fields(values, low), int(self.rounding), int(self.overflow))
            q_high = fixed_values(x, *self.fields(values, low + 1), int(self.rounding), int(self.overflow))
        return x + (q_low - x).detach() + (frac - low) * (q_high - q_low).detach()

    def _observe(self, x: torch.Tensor) -> None:
        top = self._reduce(x.abs().amax(0), lambda a, i: a.amax(i, keepdim=True))
        low = self._reduce(x.amin(0), lambda a, i: a.amin(i, keepdim=True))
        decayed = (1 - self.range_decay) * self.running_max + self.range_decay * top
        self.running_max.copy_(torch.maximum(top, decayed))
        self.running_min.copy_(torch.minimum(low, self.running_min))
        if self.learn_int and not bool(self.int_started):
            self.int_bits.data.copy_(_int_bits(self.running_max, (self.running_min < 0).to(torch.float64)))
            self.int_started.fill_(True)

    # --- the fixed quantizer it rounds to ------------------------------------------------
    def frozen(self, values: torch.Tensor | None = None) -> Quantizer:
        """The fixed quantizer computing what this one computes now: `PerElement` (element
        granularity, or any pruned channel / tensor), `PerAxis` or `Fixed`.  ``values``: a
        weight's or bias's values."""
        width, ints, signed = (t.cpu().numpy().astype(np.int64) for t in self.fields(values))
        if self.granularity == "element" or (width == 0).any():
            full = self.shape
            return PerElement(*(np.broadcast_to(a, full).copy() for a in (width, ints, signed)),
                              self.rounding, self.overflow)
        formats = [str(FixedType(int(w), int(i), bool(s), self.rounding, self.overflow))
                   for w, i, s in zip(width.ravel(), ints.ravel(), signed.ravel())]
        return Fixed(formats[0]) if self.granularity == "tensor" else PerAxis(self.axis, formats)

    def plan_entry(self, layout, key, arrays, values=None):
        return self.frozen(values).plan_entry(layout, key, arrays, values)


QUANTIZER_ATTRS = {"quant": None, "weight_quant": "weight", "bias_quant": "bias", "output_quant": None}


def learned_bits(model: nn.Module) -> list[tuple[str, LearnedBits]]:
    """Every `LearnedBits` of the model, with its name (``module.attribute``)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LearnedBits)]


def freeze(model: nn.Module) -> nn.Module:
    """Replace every `LearnedBits` of ``model`` (in place) by the fixed quantizer it rounds to
    now (`LearnedBits.frozen`), so the model's forward no longer changes with training and its
    export holds plain plan formats.  Returns ``model``."""
    for module in list(model.modules()):
        for attr, values in QUANTIZER_ATTRS.items():
            q = getattr(module, attr, None)
            if isinstance(q, LearnedBits):
                fixed = q.frozen(getattr(module, values) if values else None)
                delattr(module, attr)  # a registered submodule: drop it before the plain object goes in
                setattr(module, attr, fixed)
    return model


def prune_dead_rows(model: nn.Module) -> int:
    """Set to 0 bits (in place) every weight of a row whose every output is pruned: in an
    ``nn.Sequential``, a layer (QuantLinear / QuantConv) followed by a QuantReLU (or with its own
    ``output_quant``) whose `PerElement` format gives an output channel 0 bits at every position.
    That row's value is never used, but the compiled RTL can still build its products and
    adder tree (a hand-made 10-8-4 MLP: 711 LUTs estimated with such rows, 425 without; yosys
    434 and 383; on trained digits plans the compiler already left them out), so dropping it is
    exact and makes the plan say what the hardware needs.  Only `PerElement` weights (a frozen
    element-granularity `LearnedBits`) are changed.  Returns the number of rows pruned."""
    from .modules import QUANT_LAYERS, QuantReLU

    if not isinstance(model, nn.Sequential):
        return 0
    children, pruned = list(model), 0
    for i, layer in enumerate(children):
        if not isinstance(layer, QUANT_LAYERS) or not isinstance(layer.weight_quant, PerElement):
            continue
        out = getattr(layer, "output_quant", None)
        if not isinstance(out, PerElement) and i + 1 < len(children) and isinstance(children[i + 1], QuantReLU):
            out = children[i + 1].output_quant
        if not isinstance(out, PerElement) or out.bits.ndim < 1:
            continue
        dead = (out.bits == 0).reshape(out.bits.shape[0], -1).all(1)  # per output channel, every position
        if dead.shape[0] != layer.weight_quant.bits.shape[0]:
            continue
        live = (layer.weight_quant.bits != 0).reshape(dead.shape[0], -1).any(1)
        pruned += int((dead & live).sum())
        layer.weight_quant.bits[dead] = 0
    return pruned


# --- the methods -----------------------------------------------------------------------------

def attach_learned_bits(model: nn.Module, example_input: torch.Tensor, granularity: str = "element", *,
                        weights: bool = True, activations: bool = True, inputs: bool = True,
                        init_frac: float | None = None, relaxed: bool = False, learn_int: bool = False,
                        **options) -> nn.Module:
    """Give ``model``'s quantized modules `LearnedBits` (in place; returns ``model``): every
    layer's weight (``weights``), every QuantReLU's output (``activations``) and the QuantInput
    (``inputs``), at ``granularity`` (channel: a weight's output channel, an activation's
    channel).  The fractional bits start at the format they replace (a `Fixed` one's), else at
    ``init_frac`` (default 4); ``learn_int``: the activations' and the input's integer bits
    are learned too (`LearnedBits`); ``options`` go to `LearnedBits`."""
    from .modules import QUANT_LAYERS, QuantInput, QuantReLU, record_calls

    recorded = [(name, m) for name, m in model.named_modules() if isinstance(m, (QuantReLU, QuantInput))]
    shapes = {m: tuple(out.shape[1:]) for _, m, _, out in record_calls(model, example_input, recorded)}

    def start(old) -> float:
        if init_frac is not None:
            return float(init_frac)
        return float(old.format.frac_bits) if isinstance(old, Fixed) else 4.0

    for module in list(model.modules()):
        if weights and isinstance(module, QUANT_LAYERS):
            q = LearnedBits(module.weight.shape, granularity, init_frac=start(module.weight_quant), relaxed=relaxed,
                            **options)
            module.weight_quant = q
        elif activations and isinstance(module, QuantReLU) and module in shapes:
            module.output_quant = LearnedBits(shapes[module], granularity, activation=True, relaxed=relaxed,
                                              learn_int=learn_int,
                                              init_frac=start(module.output_quant), **options)
        elif inputs and isinstance(module, QuantInput):
            module.quant = LearnedBits(shapes[module], granularity, activation=True, relaxed=relaxed,
                                       learn_int=learn_int,
                                       init_frac=start(module.quant), **options)
    return model


def train_bit_widths(model: nn.Module, loader, *, lam: float, epochs: int, cost=None, mu: float = 0.0,
                     loss_fn=None, lr: float = 1e-3, bit_lr: float = 0.05, part: str | None = None,
                     clock_ns: float = 5.0, warmup_epochs: float = 0, cosine: bool = False) -> list[dict]:
    """Train weights and bit widths together (HGQ): per batch the loss is
    ``loss_fn(model(x), y) + lam * cost()["lut"] + mu * cost()["latency"]`` (``loss_fn``:
    cross-entropy by default; ``cost``: a `cost.HardwareCost`, else one built on the first
    batch for ``part`` at ``clock_ns``).  ``loader``: an iterable of ``(x, y)`` batches, read
    once per epoch.  Adam, ``lr`` for the weights, ``bit_lr`` for the `LearnedBits`' fractional
    (and learned integer) bits (a bit moves faster than a weight).  The model's `LearnedBits` stay; `freeze` it before
    export (or export it as it is).  ``warmup_epochs``: ``lam`` and ``mu`` ramp linearly from 0,
    batch by batch, over that many epochs (HGQ's beta ramp: the weights settle before the cost
    prunes them), then stay (a loader without ``len()``: 0 through the first epoch, which counts
    its batches, then on the same line); ``cosine``: both learning rates decay to 0 along a cosine over the
    epochs (else constant).  Returns per epoch the mean loss, task loss, LUTs, latency and the
    cost weight ``lam`` in force at the epoch's end."""
    from ..targets import DEFAULT_PART
    from .cost import HardwareCost

    if not lam >= 0 or not mu >= 0:
        raise QuantError(f"train_bit_widths: lam and mu must be >= 0 (weights of the cost), got {lam!r}, {mu!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise QuantError(f"train_bit_widths: epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(warmup_epochs, (int, float)) and 0 <= warmup_epochs <= epochs):
        raise QuantError(f"train_bit_widths: warmup_epochs must be within 0..epochs ({epochs}), got {warmup_epochs!r}")
    bits = [p for _, q in learned_bits(model) for p in q.bit_parameters()]
    if not bits:
        raise QuantError("train_bit_widths: the model has no LearnedBits; give its quantizers LearnedBits "
                         "(attach_learned_bits(model, x) does it for every weight and activation)")
    ids = {id(p) for p in bits}
    others = [p for p in model.parameters() if id(p) not in ids]
    optimiser = torch.optim.Adam([{"params": others, "lr": lr}, {"params": bits, "lr": bit_lr}])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs) if cosine else None
    loss_fn = loss_fn or nn.functional.cross_entropy
    history, batches = [], (len(loader) if hasattr(loader, "__len__") else None)  # per epoch
    model.train()
    for epoch in range(epochs):
        sums, count = {"loss": 0.0, "task_loss": 0.0, "lut": 0.0, "latency": 0.0}, 0
        for x, y in loader:
            task = loss_fn(model(x), y)  # the forward first: it updates the activations' ranges
            if cost is None:
                cost = HardwareCost(model, x, part or DEFAULT_PART, clock_ns)
            hw = cost()
            ramp = _ramp(epoch, count, batches, warmup_epochs)
            loss = task + ramp * (lam * hw["lut"] + mu * hw["latency"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            for key, value in (("loss", loss), ("task_loss", task), ("lut", hw["lut"]), ("latency", hw["latency"])):
                sums[key] += float(value.detach())
            count += 1
        batches = batches or count
        if schedule is not None:
            schedule.step()
        history.append({"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}, "lam": ramp * lam})
    return history


def _ramp(epoch: int, batch: int, batches: int | None, warmup_epochs: float) -> float:
    """The share of the cost weight in force at ``batch`` of ``epoch``: linear from 0 to 1 over
    ``warmup_epochs``, batch by batch (in the first epoch, before the batches per epoch are
    known, 0)."""
    if warmup_epochs <= 0:
        return 1.0
    progress = epoch + (batch + 1) / batches if batches else float(epoch)
    return min(1.0, progress / warmup_epochs)


def fine_tune_frozen(model: nn.Module, loader, *, epochs: int, lr: float = 3e-4, loss_fn=None) -> list[dict]:
    """Train ``model``'s weights at its frozen widths (after `freeze`): no cost term, Adam at
    ``lr`` (lower than the bit training's: the widths no longer move, the weights only settle
    into them) decaying to 0 along a cosine over ``epochs``.  The plan stays: every quantizer is
    fixed, so a pruned (0-bit) weight or activation stays 0 and the export stays bit-exact.
    Returns per epoch the mean task loss."""
    if learned_bits(model):
        raise QuantError("fine_tune_frozen: the model still has LearnedBits; freeze(model) first (fine-tuning "
                         "is at fixed widths)")
    if not isinstance(epochs, int) or epochs < 1:
        raise QuantError(f"fine_tune_frozen: epochs must be a positive integer, got {epochs!r}")
    if not lr > 0:
        raise QuantError(f"fine_tune_frozen: lr must be > 0, got {lr!r}")
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    loss_fn = loss_fn or nn.functional.cross_entropy
    history = []
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + float(loss.detach()), count + 1
        schedule.step()
        history.append({"epoch": epoch, "task_loss": total / max(count, 1)})
    model.eval()
    return history


def relax_bit_widths(model: nn.Module, loader, *, lam: float, epochs: int, granularity: str = "channel",
                     example_input: torch.Tensor | None = None, weights: bool = True, activations: bool = True,
                     inputs: bool = False, init_frac: float | None = None, **training) -> list[dict]:
    """Per-layer (``granularity="tensor"``) or per-channel (``"channel"``) continuous bit widths:
    gives the model relaxed `LearnedBits` (`attach_learned_bits`; their training forward
    interpolates between the neighbouring integer widths, so the loss is continuous in the
    width), trains them with `train_bit_widths`'s loss (``training``: its options), then rounds
    (the `LearnedBits` return to their exact rounded forward; `freeze` before export).
    ``example_input``: a batch for the shapes (default: the loader's first).  Returns the
    training history."""
    if granularity not in ("tensor", "channel"):
        raise QuantError(f"relax_bit_widths: granularity must be 'tensor' or 'channel' (per-element bits: "
                         f"train_bit_widths), got {granularity!r}")
    if example_input is None:
        example_input = next(iter(loader))[0]
    attach_learned_bits(model, example_input, granularity, weights=weights, activations=activations,
                        inputs=inputs, init_frac=init_frac, relaxed=True)
    history = train_bit_widths(model, loader, lam=lam, epochs=epochs, **training)
    for _, q in learned_bits(model):
        q.relaxed = False
    return history
