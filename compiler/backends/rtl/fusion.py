"""Logic the RTL builder moves across stage and layer boundaries, each move exact (the emulator's
numbers unchanged):

* **A ReLU that the saturation repeats** (:meth:`StageFusion.dropped_relus`): a ReLU whose only
  reader is a requantize into unsigned formats that saturate (SAT, SAT_ZERO, SAT_SYM) is left
  out, and the requantize reads the signed values.  A negative value rounds to a value <= 0 in
  every rounding mode, which saturates to 0: the ReLU's own result.
* **A rounding offset in the sums' constants** (:meth:`StageFusion.rounding_offsets`): RND,
  RND_MIN_INF and CEIL round ``x`` dropping ``s`` bits as ``floor((x + c) / 2**s)`` with ``c``
  ``2**(s-1)``, ``2**(s-1) - 1`` and ``2**s - 1``.  When a layer's sums feed such a requantize
  directly (or through a ReLU left out as above), ``c`` joins each sum's constant (the bias) in
  its adder graph, and the requantize truncates (TRN): no increment chain after the sums.
* **Values handed to the next layer within a cycle** (pipelining by timing,
  :meth:`StageFusion.hands_over`): a layer whose values every reader can take mid-cycle (adder
  graphs and elementwise stages, which place their own registers by the delay model) ends
  without a register of its own; the readers start in the cycle the values arrive in, at their
  arrival (``arrivals``), and put a register where their own stage would not fit.
"""

from __future__ import annotations

import numpy as np

from ...fixed import Overflow, Rounding
from ...ir import Node, Op, Tensor
from ...sums import Fmt, element_format, fmt_range
from .emitter import signed_width
from .options import WIRING

# rounding modes that are a floor after adding a constant: the constant for s dropped bits
_OFFSET = {int(Rounding.RND): lambda s: 1 << (s - 1), int(Rounding.RND_MIN_INF): lambda s: (1 << (s - 1)) - 1,
           int(Rounding.CEIL): lambda s: (1 << s) - 1}
# stages that take their inputs from registers (their layers never start mid-cycle)
_REGISTERED_INPUTS = (Op.MAXPOOL, Op.SOFTMAX)


def offset_format(f: Fmt, c: int) -> Fmt:
    """A format at ``f``'s fraction holding every value of ``f`` plus ``c`` (> 0)."""
    lo, hi = fmt_range(f)
    lo, hi = lo + c, hi + c
    if f.signed:
        return Fmt(signed_width(lo, hi), f.frac, True)
    return Fmt(max(f.width, hi.bit_length()), f.frac, False)


class StageFusion:
    """Fusion decisions over the builder's ``graph`` and ``options``; per layer :meth:`fuse`
    fills ``dropped`` (ReLU output -> which elements pass through), ``offsets`` (sums tensor -> each element's
    offset) and ``truncated`` (requantize output -> which elements now truncate)."""

    def fuse(self, stages: tuple[Node, ...]) -> None:
        self.dropped = self.dropped_relus(stages)
        self.offsets, self.truncated = self.rounding_offsets(stages)

    def dropped_relus(self, stages: tuple[Node, ...]) -> dict[str, np.ndarray]:
        """The layer's ReLUs that only a requantize reads (the next stage, and no other): which of
        their elements it saturates into unsigned formats (those are passed through)."""
        g = self.graph
        dropped = {}
        for k, stage in enumerate(stages[:-1]):
            nxt, out = stages[k + 1], stage.outputs[0]
            if stage.op != Op.RELU or nxt.op != Op.REQUANTIZE or nxt.inputs[0] != out:
                continue
            if any(out in s.inputs for s in stages[k + 2:]) or out in g.outputs:
                continue
            q = g.tensor(nxt.outputs[0])
            if q.shape != g.tensor(out).shape:
                continue
            formats = q.formats
            elements = (~formats.signed & (formats.overflow != int(Overflow.WRAP))).ravel()
            if elements.any():
                dropped[out] = elements
        return dropped

    def rounding_offsets(self, stages: tuple[Node, ...]) -> tuple[dict[str, list[int]], dict[str, np.ndarray]]:
        """For each sums stage (adder graphs) feeding a requantize whose rounding is a floor
        after an offset: each sum's offset (0 where none), and the requantize elements that
        then truncate."""
        offsets: dict[str, list[int]] = {}
        truncated: dict[str, np.ndarray] = {}
        if not self.options.adder_graph:
            return offsets, truncated
        g = self.graph
        for k, stage in enumerate(stages):
            if stage.op not in (Op.DENSE, Op.CONV, Op.AVGPOOL):
                continue
            rest = list(stages[k + 1:])
            src = stage.outputs[0]
            relu = None  # a ReLU between: only its elements passed through fold
            if rest and rest[0].outputs[0] in self.dropped and rest[0].inputs[0] == src:
                relu = self.dropped[rest[0].outputs[0]]
                src = rest.pop(0).outputs[0]
            if not rest or rest[0].op != Op.REQUANTIZE or rest[0].inputs[0] != src:
                continue
            sums, q = g.tensor(stage.outputs[0]), g.tensor(rest[0].outputs[0])
            if any(stage.outputs[0] in s.inputs for s in rest[1:]) or q.shape != sums.shape:
                continue
            c = [0] * int(np.prod(sums.shape))
            folded = np.zeros(len(c), dtype=bool)
            for i in range(len(c)):
                f, fq = element_format(sums, i), element_format(q, i)
                rounding = int(q.formats.rounding.flat[i])
                if f is None or fq is None or f.frac <= fq.frac or rounding not in _OFFSET or \
                        relu is not None and not relu[i]:
                    continue
                c[i], folded[i] = _OFFSET[rounding](f.frac - fq.frac), True
            if folded.any():
                offsets[stage.outputs[0]], truncated[q.name] = c, folded
        return offsets, truncated

    def passes(self, relu: str, i: int | None = None) -> bool:
        """Whether ReLU output ``relu``'s element ``i`` (every element: None) is passed through."""
        elements = self.dropped.get(relu)
        return elements is not None and bool(elements.all() if i is None else elements[i])

    def rounding(self, out: Tensor, i: int, t) -> int:
        """The rounding requantize output ``out``'s element ``i`` (FixedType ``t``) is built with."""
        folded = self.truncated.get(out.name)
        return int(Rounding.TRN) if folded is not None and folded[i] else int(t.rounding)

    def hands_over(self, node: Node) -> bool:
        """Whether ``node``'s value can go to its readers without a register (pipelining by
        timing): it is no graph output and every reader's first logic stage starts mid-cycle."""
        g = self.graph
        final = node.outputs[0]
        if self.options.delay is None or final in g.outputs:
            return False
        readers = [n for n in g.nodes if any(final in s.inputs for s in n.stages())]
        if not readers:
            return False
        for reader in readers:
            logic = [s for s in reader.stages() if s.op not in WIRING]
            if not logic or any(s.op in _REGISTERED_INPUTS for s in logic) or final not in _reads(reader, logic[0]):
                return False
            if logic[0].op in (Op.DENSE, Op.CONV, Op.AVGPOOL) and not self.options.adder_graph:
                return False
        return True


def _reads(node: Node, stage: Node) -> set[str]:
    """The tensors from outside ``node`` that ``stage`` reads, through the wiring before it."""
    inside = {s.outputs[0]: s for s in node.stages()}
    out, todo = set(), list(stage.inputs)
    while todo:
        name = todo.pop()
        if name in inside and inside[name].op in WIRING:
            todo.extend(inside[name].inputs)
        elif name not in inside:
            out.add(name)
    return out
