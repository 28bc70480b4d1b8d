"""What lower_quant knows of each tensor's values before the plan and sizing: its grid (the
fractional bits a quantizer fixes) and its largest |IR value| where quantizers bound it.

A mixin of `lower_quant._Lowering` (``self.tensors``, ``self.frac``, ``self.amax``).  The grid
lets a bias or BatchNorm shift be rounded onto what it is added to, and a BatchNorm on a
quantized tensor be lowered; the bound gives an unclamped quantizer (Trunc's first rounding)
its range.  Both are carried op by op, and only where they are certain: a float constant a
plan may still format has neither.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..errors import FrontendError
from ..ir import Node, Op, TensorKind
from ..weight_formats import round_significant
from .apply_plan import CONSTANT_SIGNIFICANT_BITS


class RangeTracking:
    """Grids (``self.frac``) and bounds (``self.amax``) of `lower_quant._Lowering`'s tensors."""

    def grid(self, name: str) -> int | None:
        """The fractional bits of ``name``'s IR values where the quantizers fix them, else None."""
        t = self.tensors[name]
        if t.is_quantized:
            return t.data_frac
        return self.frac.get(name)

    def _carry_grid(self, node: Node, grid: int | None) -> None:
        """The grid of ``node``'s output (``grid`` if the handler knows it): the finest of
        its inputs' for ReLU, pooling by max, layout ops, Concat, ADD and CLIP, their sum for a
        MUL, the input's plus alpha's or 1/count's for LeakyRelu and AveragePool (a constant
        finegrain computed: :meth:`_exact_grid`)."""
        if grid is None and node.op in (Op.RELU, Op.MAXPOOL, Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT, Op.ADD, Op.CLIP):
            grids = [self._exact_grid(i, node) for i in node.inputs]
            grid = None if None in grids else max(grids)
        elif grid is None and node.op == Op.MUL:
            grids = [self._exact_grid(i, node) for i in node.inputs]
            grid = None if None in grids else sum(grids)
        elif grid is None and node.op in (Op.LEAKY_RELU, Op.AVGPOOL) and len(node.inputs) == 2:
            grids = [self.grid(node.inputs[0]), self._exact_grid(node.inputs[1], node)]  # x, and alpha or 1 / count
            grid = None if None in grids else grids[0] + max(grids[1], 0)
        if grid is not None:
            self.frac[node.outputs[0]] = grid

    def _exact_grid(self, name: str, node: Node) -> int | None:
        """:meth:`grid`, and for a constant finegrain computed (``CONST``: a Clip's bounds as
        they are, LeakyRelu's alpha and a pooling reciprocal rounded as apply_plan rounds
        them) the fractional bits of its values, exact dyadic numbers."""
        t = self.tensors[name]
        if not (t.kind == TensorKind.CONST and t.is_constant and not t.is_quantized):
            return self.grid(name)
        values = np.ravel(np.asarray(t.data, dtype=np.float64))
        if not np.all(np.isfinite(values)):
            return None
        if node.op != Op.CLIP:
            values = round_significant(values, CONSTANT_SIGNIFICANT_BITS)
        return max((Fraction(float(v)).denominator.bit_length() - 1 for v in values), default=0)

    def _carry_amax(self, node: Node) -> None:
        """The largest |IR value| of ``node``'s output from its inputs', where quantizers bound
        them (an unclamped quantizer after it, Trunc's first rounding, needs it): kept by
        ReLU, pooling and layout ops, summed by an ADD, scaled by a MUL, a clip's bounds, and
        ``sum |W| * amax + |b|`` per output of a DENSE/CONV with exact constants."""
        ins = [self.amax.get(i) if not self.tensors[i].is_constant else self._constant_amax(i) for i in node.inputs]
        op, out = node.op, node.outputs[0]
        if op in (Op.RELU, Op.MAXPOOL, Op.AVGPOOL, Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT):
            known = [a for a, i in zip(ins, node.inputs) if not self.tensors[i].is_constant]
            if None not in known:
                self.amax[out] = max(known)
            return
        if None in ins:
            return
        if op == Op.ADD:
            self.amax[out] = ins[0] + ins[1]
        elif op == Op.MUL:
            self.amax[out] = ins[0] * ins[1]
        elif op == Op.CLIP:  # clamp(x, lo, hi) for |x| <= A lies between clamp(-A) and clamp(A)
            lo, hi = (float(np.min(self._ir_values(node.inputs[1]))), float(np.max(self._ir_values(node.inputs[2]))))
            self.amax[out] = max(abs(min(max(v, lo), hi)) for v in (-ins[0], ins[0]))
        elif op == Op.LEAKY_RELU:
            self.amax[out] = ins[0] * max(1.0, ins[1])
        elif op in (Op.DENSE, Op.CONV):
            w = self._ir_values(node.inputs[1])
            per_output = np.abs(w).reshape(w.shape[0], -1).sum(axis=1) * ins[0]
            bias = np.abs(np.ravel(self._ir_values(node.inputs[2]))) if len(node.inputs) > 2 else 0.0
            self.amax[out] = float(np.max(per_output + bias))

    def _ir_values(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        return np.ldexp(np.broadcast_to(np.asarray(t.data, dtype=np.float64), t.shape), -t.data_frac)

    def _constant_amax(self, name: str) -> float | None:
        """The largest |IR value| of a constant whose IR values are exact (a quantizer's codes,
        exact model values, a value in accumulator units), or of one finegrain computed;
        None for a float constant a plan may format (a float bias)."""
        t = self.tensors[name]
        if t.data is None:
            return None
        if t.is_quantized or (t.scheme or {}).get("rounded_to_accumulator") is not None:
            return float(np.max(np.abs(self._ir_values(name)), initial=0.0))
        if t.kind == TensorKind.CONST:  # a Clip's bounds as they are, alpha or 1/count to 18 bits: 2**-17 more
            return float(np.max(np.abs(np.asarray(t.data, dtype=np.float64)), initial=0.0)) * (1 + 2.0 ** -17)
        return None

    def _table_before(self, name: str) -> Node | None:
        """The TABLE node that ``name``'s unbounded range comes from, if any: met going back
        through the nodes lowered so far, over the inputs with no bound."""
        producers = {n.outputs[0]: n for n in self.nodes}
        todo, seen = [name], set()
        while todo:
            node = producers.get(todo.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op == Op.TABLE:
                return node
            todo += [i for i in node.inputs if not self.tensors[i].is_constant and i not in self.amax]
        return None

    def _unbounded(self, where: str, source: str, x: str) -> FrontendError:
        """The refusal of a quantizer whose first rounding has no clamp (Trunc's) while the
        model's quantizers do not bound its input ``x``, naming what comes before it."""
        table = self._table_before(x)
        cause = (f"a table look-up comes before it: node {table.onnx_nodes[0]!r} ({table.kind}), whose range "
                 f"the plan's tables set" if table is not None else
                 "a float constant, such as a bias without a quantizer, comes before it")
        fix = "" if table is not None else "quantize that constant in the model, or "
        return FrontendError(f"node {where!r} ({source}): its first rounding has no clamp, and the model's "
                             f"quantizers do not bound the range of its input {x!r} ({cause}); {fix}put a Quant "
                             f"before the {source}")
