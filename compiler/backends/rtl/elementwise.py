"""The RTL builder's elementwise stages (a mixin of builder.py's ``_Builder``): requantize,
ReLU, leaky ReLU, clip, add, mul (by a constant, or of two activations), and the look-up
tables (TABLE: sigmoid, tanh, ...; softmax's exponent and reciprocal tables), each element
its own wires; the registers by the delay model (stage_timing.py) as every stage does."""

from __future__ import annotations

import numpy as np

from ...fixed import mantissa_range
from ...ir import Node, Op, Tensor, broadcast_index
from ...sums import element_format
from .emitter import ZERO, Elem, Fmt, _literal, _tree_latency, signed_width
from .options import RTLBackendError
from .stage_timing import rounded_format


class ElementwiseOps:
    """Elementwise stages and their tables; needs the builder's ``graph``, ``m`` (the module),
    ``names``, ``tables`` and the timing of StageTiming."""

    def elementwise(self, node: Node, stage: Node, ins: list, out: Tensor, base: str,
                    split: bool = False) -> list[Elem]:
        """An elementwise stage's elements; ``split``: a requantize as its rounding, a register,
        and its saturation (:meth:`requantize`)."""
        g = self.graph
        op = stage.op
        n = int(np.prod(out.shape))
        if op == Op.RESHAPE:
            return list(ins[0])
        if op == Op.TRANSPOSE:
            x = g.tensor(stage.inputs[0])
            src = np.transpose(np.arange(int(np.prod(x.shape))).reshape(x.shape), stage.attrs["perm"]).ravel()
            return [ins[0][int(s)] for s in src]
        if op == Op.CONCAT:
            axis = stage.attrs["axis"]
            parts = []
            for name, elems in zip(stage.inputs, ins):
                if elems is None:
                    raise RTLBackendError(f"node {node.name!r}: concat of a constant is not supported")
                parts.append(np.array(list(range(len(elems))), dtype=object).reshape(g.tensor(name).shape))
            offsets = np.cumsum([0] + [len(e) for e in ins])
            tagged = [p + int(o) for p, o in zip(parts, offsets)]
            flat = [e for elems in ins for e in elems]
            return [flat[int(i)] for i in np.concatenate(tagged, axis=axis).ravel()]
        out_fmts = [element_format(out, i) for i in range(n)]
        x_t = g.tensor(stage.inputs[0])
        xi = broadcast_index(x_t.shape, out.shape)
        result = []
        for i in range(n):
            fmt = out_fmts[i]
            e = ins[0][int(xi[i])] if ins[0] is not None else ZERO  # ADD may lead with a constant
            name = f"{base}__{i}"
            if fmt is None:
                result.append(ZERO)
                continue
            if op == Op.REQUANTIZE:
                t = out.formats.element(np.unravel_index(i, out.shape))
                src = e if e.wire is not None else Elem("1'b0", Fmt(1, fmt.frac, False))
                if split:
                    # round into a format that holds every rounded value (exact), register, saturate
                    mid = rounded_format(src.fmt, fmt)
                    self.requantize(src, mid, self.rounding(out, i, t), 0, f"{name}_round")
                    src = Elem(self.m.register(f"{name}_round_q", mid.width, f"{name}_round"), mid)
                self.requantize(src, fmt, self.rounding(out, i, t), int(t.overflow), name)
                result.append(Elem(name, fmt))
            elif op == Op.TABLE:
                result.append(Elem(self.lookup(stage, e, fmt, name, base), fmt))
            elif e.wire is None and op in (Op.RELU, Op.LEAKY_RELU, Op.MUL):
                result.append(Elem(self.m.wire(name, fmt.width, _literal(0, fmt.width)), fmt))
            elif op == Op.RELU:
                if self.passes(out.name, i):  # fusion.py: the saturation after it clamps these too
                    result.append(e)
                    continue
                if e.fmt.signed and e.fmt.width > 1:
                    relu = Elem(f"{name}_relu", Fmt(e.fmt.width - 1, e.fmt.frac, False))
                    self.m.instance("fg_relu", f"u_{name}_relu",
                                    {"W": e.fmt.width, "SIGNED": 1, "OUT_W": e.fmt.width - 1},
                                    {"in_data": e.wire, "out_data": relu.wire},
                                    {"out_data": (relu.wire, relu.fmt.width)})
                elif e.fmt.signed:
                    relu = ZERO
                else:
                    relu = e
                result.append(Elem(self.m.convert(relu, fmt, name), fmt))
            elif op == Op.MUL:
                c = g.tensor(stage.inputs[1])
                if not c.is_constant:
                    result.append(Elem(self.multiply(stage, ins, out, i, fmt, name), fmt))
                    continue
                k, kf = self.const_elements(c, out.shape)[i]
                shift = fmt.frac - e.fmt.frac - kf
                if k == 0:
                    result.append(Elem(self.m.wire(name, fmt.width, _literal(0, fmt.width)), fmt))
                    continue
                if shift < 0:
                    raise RTLBackendError(f"node {node.name!r}: product {i} has bits below its format's fraction")
                result.append(Elem(self.m.product(e, k, shift, fmt.width, name), fmt))
            elif op == Op.LEAKY_RELU:
                result.append(Elem(self.leaky_relu(node, stage, e, fmt, i, int(xi[i]), out, name), fmt))
            elif op == Op.CLIP:
                result.append(Elem(self.clip(node, stage, e, fmt, i, out, name), fmt))
            elif op == Op.ADD:
                result.append(Elem(self.add(node, stage, ins, out, i, fmt, name), fmt))
            else:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {op.value} yet")
        return result

    def requantize_to(self, e: Elem, t, name: str, suffix: str) -> Elem:
        """fg_requantize of one element into FixedType ``t`` (its rounding and overflow)."""
        out = f"{name}_{suffix}"
        self.m.instance("fg_requantize", f"u_{out}",
                        {"IN_W": e.fmt.width, "IN_F": e.fmt.frac, "IN_SIGNED": int(e.fmt.signed),
                         "OUT_W": t.width, "OUT_F": t.frac_bits, "OUT_SIGNED": int(t.signed),
                         "ROUNDING": int(t.rounding), "OVERFLOW": int(t.overflow)},
                        {"in_data": e.wire, "out_data": out}, {"out_data": (out, t.width)})
        return Elem(out, Fmt(t.width, t.frac_bits, t.signed))

    def rom(self, code: Elem, table, name: str, table_name: str) -> Elem:
        """``table[code]``, combinational: ``<name>_value = <table_name>(code)``, a function the
        top declares once per table (:meth:`table_function`) and every element calls."""
        tin, tout = table.input, table.output
        value = self.m.wire(f"{name}_value", tout.width, f"{self.table_function(table, table_name)}({code.wire})",
                            "table look-up", cost={"rom": [tin.width, tout.width]})
        return Elem(value, Fmt(tout.width, tout.frac_bits, tout.signed))

    def table_function(self, table, name: str) -> str:
        """A look-up table as a SystemVerilog function: a case over every code, one entry per
        line.  (One packed literal of a whole table, fg_rom's CONTENTS, is wider than Verilator
        takes from 2**12 entries; this form reads the same to Verilator, yosys and Vivado at
        every size up to RTL_MAX_TABLE_BITS.)  Entry k holds code k + min_code
        (LookupTable.values' order); the last entry is the default, so the case is full."""
        if name not in self.tables:
            tin, tout = table.input, table.output
            first = -(1 << (tin.width - 1)) if tin.signed else 0
            entries = [{"code": _literal(first + k, tin.width), "value": _literal(int(v), tout.width)}
                       for k, v in enumerate(table.values)]
            entries[-1]["code"] = "default"
            self.tables[name] = {"name": name, "addr_w": tin.width, "data_w": tout.width, "entries": entries}
        return name

    def softmax(self, node: Node, stage: Node, x: list[Elem], out: Tensor, base: str) -> tuple[list[Elem], int]:
        """The emulator's definition over a vector: d = x - max(x) (fg_reduce_tree max),
        e = exp_table[d], s = sum(e) (fg_adder_tree), r = inv_table[s], y = requantize(e * r).
        x is delayed over the max tree, e over the sum tree."""
        xt = self.graph.tensor(stage.inputs[0])
        if len(xt.shape) != 1:
            raise RTLBackendError(f"node {node.name!r}: the RTL backend supports softmax over a vector only")
        lps = self.options.levels
        n = xt.shape[0]
        exp_table, inv_table = stage.attrs["exp_table"], stage.attrs["inv_table"]
        kept = [e for e in x if e.wire is not None]
        fmts = [e.fmt for e in kept] + ([Fmt(1, 0, False)] if len(kept) < n else [])
        frac = max(f.frac for f in fmts)
        lo = min(-(1 << (f.width - 1)) << (frac - f.frac) if f.signed else 0 for f in fmts)
        hi = max(((1 << (f.width - (1 if f.signed else 0))) - 1) << (frac - f.frac) for f in fmts)
        work = Fmt(signed_width(lo, hi), frac, True)
        xs = [Elem(self.m.convert(e, work, f"{base}__{i}_x"), work) for i, e in enumerate(x)]
        if n > 1:
            packed = self.m.wire(f"{base}_xs", n * work.width, "{" + ", ".join(reversed([e.wire for e in xs])) + "}")
            self.m.instance("fg_reduce_tree", f"u_{base}_max",
                            {"N": n, "W": work.width, "SIGNED": 1, "OP": 1, "OUT_W": work.width,
                             "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"u_{base}_max_valid", "out_data": f"{base}_max"},
                            {"out_valid": (f"u_{base}_max_valid", 1), "out_data": (f"{base}_max", work.width)})
            top = f"{base}_max"
        else:
            top = xs[0].wire
        lat_max = _tree_latency(n, lps)
        dfmt = Fmt(signed_width(lo - hi, 0), frac, True)
        es = []
        for i, e in enumerate(xs):
            name = f"{base}__{i}"
            if lat_max:
                self.pipe(e.wire, f"{name}_xd", work.width, lat_max, f"u_{name}_xd")
                e = Elem(f"{name}_xd", work)
            a = self.m.fit(e.wire, work.width, True, dfmt.width)
            b = self.m.fit(top, work.width, True, dfmt.width)
            d = self.m.wire(f"{name}_d", dfmt.width, f"{a} - {b}", "x - max(x), exact",
                            cost={"adders": [(dfmt.width, 0)]})
            code = self.requantize_to(Elem(d, dfmt), exp_table.input, name, "exp_code")
            es.append(self.rom(code, exp_table, f"{name}_exp", f"{base}_exp_table"))
        ef = es[0].fmt
        smax = n * int(exp_table.values.max())
        sfmt = Fmt(max(signed_width(0, smax) - 1, 1), ef.frac, False) if not ef.signed else \
            Fmt(signed_width(n * int(exp_table.values.min()), smax), ef.frac, True)
        lat_sum = _tree_latency(n, lps)
        if n > 1:
            packed = self.m.wire(f"{base}_es", n * ef.width, "{" + ", ".join(reversed([e.wire for e in es])) + "}")
            self.m.instance("fg_adder_tree", f"u_{base}_sum",
                            {"N": n, "W": ef.width, "SIGNED": int(ef.signed), "OUT_W": sfmt.width,
                             "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"u_{base}_sum_valid", "out_data": f"{base}_sum"},
                            {"out_valid": (f"u_{base}_sum_valid", 1), "out_data": (f"{base}_sum", sfmt.width)})
            total = Elem(f"{base}_sum", sfmt)
        else:
            total = Elem(self.m.convert(es[0], sfmt, f"{base}_sum"), sfmt)
        r = self.rom(self.requantize_to(total, inv_table.input, base, "inv_code"), inv_table, f"{base}_inv",
                     f"{base}_inv_table")
        pw = ef.width + r.fmt.width + 1
        pfmt = Fmt(pw, ef.frac + r.fmt.frac, True)
        rw = self.m.wire(f"{base}_r", pw, self.m.fit(r.wire, r.fmt.width, r.fmt.signed, pw))
        result = []
        for i, e in enumerate(es):
            name = f"{base}__{i}"
            fmt = element_format(out, i)
            if fmt is None:
                result.append(ZERO)
                continue
            if lat_sum:
                self.pipe(e.wire, f"{name}_ed", ef.width, lat_sum, f"u_{name}_ed")
                e = Elem(f"{name}_ed", ef)
            ew = self.m.wire(f"{name}_e", pw, self.m.fit(e.wire, ef.width, ef.signed, pw))
            prod = self.m.wire(f"{name}_p", pw, f"{ew} * {rw}", "e * r, exact",
                               cost={"muls": [(ef.width + (not ef.signed), r.fmt.width + (not r.fmt.signed))]})
            t = out.formats.element((i,))
            result.append(self.requantize_to(Elem(prod, pfmt), t, name, "y"))
        return result, lat_max + lat_sum

    def lookup(self, stage: Node, e: Elem, fmt: Fmt, name: str, base: str) -> str:
        """code = fg_requantize(x) into the table's input type; y = table[code] (combinational)."""
        table = stage.attrs["table"]
        src = e if e.wire is not None else Elem("1'b0", Fmt(1, table.input.frac_bits, False))
        y = self.rom(self.requantize_to(src, table.input, name, "code"), table, name, f"{base}_table")
        return self.m.convert(y, fmt, name)

    def leaky_relu(self, node: Node, stage: Node, e: Elem, fmt: Fmt, i: int, xi: int, out: Tensor,
                   name: str) -> str:
        """``x >= 0 ? x : alpha * x``, each branch built only where the input's exact bounds
        reach it: size_widths gives the output the fraction of the branches that can happen
        (x * alpha's finer bits do not count for an element that is never negative)."""
        alpha = self.graph.tensor(stage.inputs[1])
        k, kf = self.const_elements(alpha, out.shape)[i]
        x_t = self.graph.tensor(stage.inputs[0])
        lo, hi = (int(b.flat[xi]) for b in x_t.bounds) if x_t.bounds is not None else (-1, 1)
        negative, positive = e.fmt.signed and lo < 0, hi > 0
        kept = self.m.product(e, 1, fmt.frac - e.fmt.frac, fmt.width, name) if positive else None
        if not negative:
            return kept if kept is not None else self.m.wire(name, fmt.width, _literal(0, fmt.width))
        if k and fmt.frac - e.fmt.frac - kf < 0:  # a zero alpha has no bits (as a zero clip bound)
            raise RTLBackendError(f"node {node.name!r}: leaky relu {i} has bits below its fraction")
        scaled = self.m.product(e, k, fmt.frac - e.fmt.frac - kf, fmt.width, name) if k else \
            self.m.derived(name, fmt.width, _literal(0, fmt.width))
        if kept is None:  # never positive: x >= 0 only at 0, where alpha * x is 0 too
            return scaled
        return self.m.wire(name, fmt.width, f"{e.wire}[{e.fmt.width - 1}] ? {scaled} : {kept}",
                           cost={"muxes": [fmt.width]})

    def clip(self, node: Node, stage: Node, e: Elem, fmt: Fmt, i: int, out: Tensor, name: str) -> str:
        g = self.graph
        lo, lf = self.const_elements(g.tensor(stage.inputs[1]), out.shape)[i]
        hi, hf = self.const_elements(g.tensor(stage.inputs[2]), out.shape)[i]
        frac = fmt.frac
        # a zero bound has no bits (size_widths gives it no grain): only a nonzero one's LSB
        # must lie within the output's fraction
        if (e.wire is not None and frac < e.fmt.frac) or (lo and frac < lf) or (hi and frac < hf):
            raise RTLBackendError(f"node {node.name!r}: clip element {i} has bits below its format's fraction")
        full_lo, full_hi = (lo << (frac - lf) if lo else 0), (hi << (frac - hf) if hi else 0)
        if e.wire is None:
            return self.m.wire(name, fmt.width, _literal(min(max(0, full_lo), full_hi), fmt.width))
        width = e.fmt.width + frac - e.fmt.frac
        xw = Fmt(width, frac, e.fmt.signed)
        x = self.m.convert(e, xw, name)
        in_lo, in_hi = mantissa_range(width, e.fmt.signed)
        if full_lo >= in_hi or full_hi <= in_lo or full_lo >= full_hi:
            # bounds at or beyond the input's whole range (or crossed): one value for every x
            return self.m.wire(name, fmt.width, _literal(min(max(in_lo, full_lo), full_hi), fmt.width))
        lo_m, hi_m = max(full_lo, in_lo), min(full_hi, in_hi)
        clipped = f"{name}_clip"
        self.m.instance("fg_clip", f"u_{name}_clip",
                        {"W": width, "SIGNED": int(e.fmt.signed), "LO": f"{_literal(lo_m, width + 1)}",
                         "HI": f"{_literal(hi_m, width + 1)}", "OUT_W": width, "OUT_SIGNED": int(e.fmt.signed)},
                        {"in_data": x, "out_data": clipped}, {"out_data": (clipped, width)})
        return self.m.convert(Elem(clipped, xw), fmt, name)

    def multiply(self, stage: Node, ins: list, out: Tensor, i: int, fmt: Fmt, name: str) -> str:
        """Element ``i`` of ``a * b``, two activations (numpy broadcasting): one signed multiplier
        of the two operands' widths (an unsigned one gains a zero sign bit), its product exact,
        then placed into the element's format, which holds it (size_widths)."""
        operands = [ins[k][broadcast_index(self.graph.tensor(n).shape, out.shape)[i]]
                    for k, n in enumerate(stage.inputs)]
        if any(e.wire is None for e in operands):  # a pruned (always zero) element
            return self.m.wire(name, fmt.width, _literal(0, fmt.width))
        signed = [self.m.derived(name, e.fmt.width + (not e.fmt.signed),
                                 self.m.fit(e.wire, e.fmt.width, e.fmt.signed, e.fmt.width + (not e.fmt.signed)))
                  for e in operands]
        widths = [e.fmt.width + (not e.fmt.signed) for e in operands]
        pfmt = Fmt(sum(widths), sum(e.fmt.frac for e in operands), True)
        prod = self.m.wire(self.m.fresh(f"{name}_p"), pfmt.width,
                           " * ".join(f"$signed({w})" for w in signed), "a * b, exact",
                           cost={"muls": [tuple(widths)]})
        return self.m.convert(Elem(prod, pfmt), fmt, name)

    def add(self, node: Node, stage: Node, ins: list, out: Tensor, i: int, fmt: Fmt, name: str) -> str:
        g = self.graph
        operands = []  # (Elem or None, const mantissa, const frac)
        for k, tname in enumerate(stage.inputs):
            t = g.tensor(tname)
            if t.is_constant:
                m, mf = self.const_elements(t, out.shape)[i]
                operands.append((None, m, mf))
            else:
                operands.append((ins[k][broadcast_index(t.shape, out.shape)[i]], 0, 0))
        fracs = [fmt.frac] + [e.fmt.frac for e, _, _ in operands if e is not None and e.wire is not None] \
            + [mf for e, m, mf in operands if e is None and m != 0]
        frac = max(fracs)
        width = fmt.width + frac - fmt.frac  # the sum at the working fraction fits here
        work = Fmt(width, frac, fmt.signed)
        parts = []
        for e, m, mf in operands:
            if e is None:
                if m != 0:
                    parts.append(_literal(m << (frac - mf), width))
            elif e.wire is not None:
                parts.append(self.m.product(e, 1, frac - e.fmt.frac, width, name))
        total = self.m.wire(self.m.fresh(name), width, " + ".join(parts) if parts else _literal(0, width),
                            cost={"adders": [(width, 0)] * (len(parts) - 1)} if len(parts) > 1 else None)
        return self.m.convert(Elem(total, work), fmt, name)
