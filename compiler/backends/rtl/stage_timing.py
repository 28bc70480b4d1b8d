"""The RTL builder's timing rules (issue 15): what the family's delay model (compiler/timing.py)
predicts for a layer's stages after its sums (requantize, activations: whole, and a requantize's
rounding and saturation apart), what must follow the sums in their last cycle, and the design's
predicted critical path for schedule.json.  A mixin of builder._Builder: the pipelining itself is
builder.layer's and adders.py's."""

from __future__ import annotations

import numpy as np

from ...ir import Node, Op, Tensor, broadcast_index
from ...sums import element_format, fmt_range
from .emitter import ZERO, Elem, Fmt, signed_width
from .options import WIRING


def requantize_params(src: Fmt, fmt: Fmt, rounding: int, overflow: int) -> dict[str, int]:
    """fg_requantize's parameters for ``src`` into ``fmt``."""
    return {"IN_W": src.width, "IN_F": src.frac, "IN_SIGNED": int(src.signed), "OUT_W": fmt.width,
            "OUT_F": fmt.frac, "OUT_SIGNED": int(fmt.signed), "ROUNDING": rounding, "OVERFLOW": overflow}


def rounded_format(src: Fmt, fmt: Fmt) -> Fmt:
    """A signed format at ``fmt``'s fraction that holds every value of ``src`` rounded to it in
    any mode (a split requantize's middle: its rounding is exact, its saturation rounds nothing)."""
    lo, hi = fmt_range(src)
    shift = src.frac - fmt.frac
    if shift > 0:
        lo, hi = lo >> shift, -((-hi) >> shift)
    else:
        lo, hi = lo << -shift, hi << -shift
    return Fmt(signed_width(lo, hi), fmt.frac, True)


class StageTiming:
    """Timing rules over the builder's ``options``, ``graph`` and the stages' elements."""

    def timing(self, layers: list[dict]) -> dict | None:
        """The predicted critical path (pipelined by timing): the delay model's family and
        source, the worst stage's path and layer, and the clock it allows."""
        delay = self.options.delay
        if delay is None:
            return None
        worst = max(layers, key=lambda layer: layer.get("critical_ns", 0.0), default=None)
        critical = worst.get("critical_ns", 0.0) if worst else 0.0
        return {"family": delay.family, "model": delay.source, "clock_ns": self.options.clock_ns,
                "critical_ns": critical, "critical_layer": worst["name"] if worst else None,
                "fmax_mhz": round(1000 / critical, 1) if critical else None,
                "met": critical <= self.options.clock_ns + 1e-9}

    def place_stage(self, stage: Node, ins: list,
                    out: Tensor, arrival: float) -> tuple[bool, bool, float, float, int]:
        """Where an elementwise stage goes when the layer's values arrive at ``arrival`` ns into
        the current cycle: whether a register goes ahead of it (it does not fit after them), whether
        it is a requantize split into its rounding, a register and its saturation (it does not fit
        one stage; see :meth:`elementwise`), the arrival after it, its predicted path, and its
        widest input (the carry chain its path ripples through, :meth:`stage_delay`)."""
        delay, clock = self.options.delay, self.options.clock_ns
        d, width = self.stage_delay(stage, ins, out)
        ahead = arrival > 0 and not delay.fits(arrival + d, width, clock)
        if ahead:
            arrival = 0.0
        if stage.op == Op.REQUANTIZE and not delay.fits(arrival + d, width, clock):
            _, rounding, saturation = self.requantize_parts(stage, ins[0], out)
            if rounding > 0 and saturation > 0:
                path = max(delay.stage_ns(arrival + rounding, width), delay.stage_ns(saturation, width))
                # split when the rounding fits, or (when nothing meets the clock) the split is faster
                if delay.fits(arrival + rounding, width, clock) or path < delay.stage_ns(arrival + d, width):
                    return ahead, True, saturation, path, width
        return ahead, False, arrival + d, delay.stage_ns(arrival + d, width), width

    def max_levels_per_stage(self, x: list[Elem], kernel) -> int:
        """A max pool's tree levels per stage by the delay model (each a comparison and a select),
        at least one; the stage's path counts toward the layer's predicted critical path."""
        delay = self.options.delay
        width = max((e.fmt.width for e in x if e.wire is not None), default=1)
        lps = 1
        while delay.fits(delay.max(lps + 1, width), 0, self.options.clock_ns):
            lps += 1
        depth = max((int(np.prod(kernel)) - 1).bit_length(), 1)
        self.sums_critical = max(self.sums_critical, delay.stage_ns(delay.max(min(lps, depth), width), 0))
        return lps

    def _unknown(self, t: Tensor) -> list[Elem]:
        """Elements of ``t`` in their formats, standing for values not built yet (for delays)."""
        return [Elem("x", f) if f is not None else ZERO
                for f in (element_format(t, i) for i in range(int(np.prod(t.shape))))]

    def tail(self, stages: list[Node], out: Tensor) -> tuple[float, int]:
        """The delay (ns) and widest carry chain of what is to follow a layer's sums in their
        last cycle: its elementwise stages up to the first that is not (pooling, ...), all of
        them when they fit one stage, else the first stage alone (a requantize's rounding alone
        when it is split, see :meth:`place_stage`)."""
        delay = self.options.delay
        parts = []
        x = self._unknown(out)
        for stage in stages:
            if self.passes(stage.outputs[0]):  # passed through (fusion.py): x stays as it is
                continue
            if stage.op in (Op.DENSE, Op.CONV, Op.AVGPOOL, Op.MAXPOOL, Op.SOFTMAX) or len(stage.inputs) > 1 and \
                    not self.graph.tensor(stage.inputs[1]).is_constant:
                break
            nxt = self.graph.tensor(stage.outputs[0])
            parts.append((stage, x, nxt, *self.stage_delay(stage, [x] + [None] * (len(stage.inputs) - 1), nxt)))
            x = self._unknown(nxt)
        if not parts:
            return 0.0, 0
        total, width = sum(p[3] for p in parts), max(p[4] for p in parts)
        if delay.fits(total, width, self.options.clock_ns):
            return total, width
        stage, x, nxt, d, width = parts[0]
        if stage.op == Op.REQUANTIZE:
            _, rounding, saturation = self.requantize_parts(stage, x, nxt)
            if rounding > 0 and saturation > 0:
                return rounding, width
        return d, width

    def stage_delay(self, stage: Node, ins: list, out: Tensor) -> tuple[float, int]:
        """An elementwise stage's predicted logic delay (ns, its worst element, by the delay
        model, its own carry ripple included) and its widest input (the ripple of the adders
        before it in its cycle, which :meth:`DelayModel.fits` adds)."""
        delay = self.options.delay
        op = stage.op
        x = [e for elems in ins if elems is not None for e in elems if e.wire is not None]
        if op == Op.REQUANTIZE and ins[0] is None:
            return 0.0, 1
        width = max((e.fmt.width for e in x), default=1)
        if op in WIRING or not x:
            return 0.0, width
        if op == Op.REQUANTIZE:
            return self.requantize_parts(stage, ins[0], out)[0], width
        if op == Op.RELU:
            return delay.relu(width), width
        if op == Op.CLIP:
            return delay.clip(width), width
        if op == Op.LEAKY_RELU:
            return delay.level + delay.lut, width
        if op == Op.TABLE:
            return 2 * delay.lut, width  # a look-up table: a LUT and its multiplexers
        return delay.level, width  # ADD, MUL: an adder

    def requantize_parts(self, stage: Node, x: list[Elem], out: Tensor) -> tuple[float, float, float]:
        """The predicted delays (ns, their worst elements', by the delay model) of a requantize
        stage: whole, its rounding alone, and its saturation alone (a split requantize's two
        fg_requantize instances, see :meth:`elementwise`)."""
        delay = self.options.delay
        src = broadcast_index(self.graph.tensor(stage.inputs[0]).shape, out.shape)
        whole = rounding = saturation = 0.0
        for i, xi in enumerate(src):
            fmt, e = element_format(out, i), x[int(xi)]
            if fmt is None or e.wire is None:
                continue
            t = out.formats.element(np.unravel_index(i, out.shape))
            mid = rounded_format(e.fmt, fmt)
            mode = self.rounding(out, i, t)
            whole = max(whole, delay.requantize(requantize_params(e.fmt, fmt, mode, int(t.overflow))))
            rounding = max(rounding, delay.requantize(requantize_params(e.fmt, mid, mode, 0)))
            saturation = max(saturation, delay.requantize(requantize_params(mid, fmt, 0, int(t.overflow))))
        return whole, rounding, saturation
