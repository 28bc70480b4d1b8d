"""The emitter of the RTL backend: element formats, constant-product arithmetic (CSD, exact
widths) and :class:`_Module`, which declares wires and instances and writes exact-width
SystemVerilog expressions (the constant multiplication rule in the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from ...adder_graph import csd, signed_width  # noqa: F401 (csd: re-exported)
from ...sums import Fmt, fmt_range
from .options import RTLOptions

@dataclass(frozen=True)
class Elem:
    """One element: a wire name (None = the constant 0) and its format."""

    wire: str | None
    fmt: Fmt | None


ZERO = Elem(None, None)


def _literal(value: int, width: int) -> str:
    return f"{width}'h{value & ((1 << width) - 1):x}"


class _Module:
    """The emitter: declares wires and instances, and writes exact-width expressions."""

    def __init__(self, options: RTLOptions):
        self.options = options
        self.items: list[dict] = []  # in declaration order
        self.count = 0
        self.products: dict[tuple, tuple[str, int]] = {}  # (input wire, k) -> (exact product wire, width)
        self.product_uses = 0  # products asked for (shared ones counted each time)
        self.derived_wires: dict[tuple[int, str], str] = {}  # (width, expression) -> wire

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}_w{self.count}"

    def wire(self, name: str, width: int, expr: str, comment: str = "", cost: dict | None = None) -> str:
        """``cost``: the logic ``expr`` holds, for compiler.estimate (None: only wiring):
        {"adders": [(width, low bits that are copies), ...], "muls": [(a bits, b bits) as signed], ...,
        "muxes": [width, ...]}."""
        item = {"kind": "assign", "name": name, "width": width, "expr": expr, "comment": comment}
        if cost:
            item["cost"] = cost
        self.items.append(item)
        return name

    def derived(self, base: str, width: int, expr: str, comment: str = "") -> str:
        """A wire of wiring only (extension, shift, slice, constant), named from ``base``.
        Wires are assigned once, so an expression is a value: asking again for the same
        (width, expression) gives the wire already declared (an input's sign extension is one
        wire for every row that uses it, not one per row)."""
        key = (width, expr)
        if key not in self.derived_wires:
            self.derived_wires[key] = self.wire(self.fresh(base), width, expr, comment)
        return self.derived_wires[key]

    def instance(self, module: str, name: str, params: dict, ports: dict, outputs: dict,
                 cost: dict | None = None, comment: str = "") -> None:
        """``outputs``: output port -> (wire name, width), declared here (``comment`` on the
        first).  ``cost``: what compiler.estimate needs beyond the parameters (an adder tree's
        terms' zero low bits)."""
        item = {"kind": "instance", "module": module, "name": name, "comment": comment,
                "params": [{"name": k, "value": v} for k, v in params.items()],
                "ports": [{"name": k, "value": v} for k, v in ports.items()],
                "outputs": [{"name": w, "width": n} for w, n in outputs.values()]}
        if cost:
            item["cost"] = cost
        self.items.append(item)

    def register(self, name: str, width: int, source: str) -> str:
        self.items.append({"kind": "register", "name": name, "width": width, "source": source})
        return name

    # expressions ----------------------------------------------------------------------
    @staticmethod
    def fit(wire: str, width: int, signed: bool, to: int) -> str:
        """``wire`` sign/zero-extended or truncated (low bits) to ``to`` bits."""
        if to == width:
            return wire
        if to < width:
            return f"{wire}[{to - 1}:0]"
        fill = f"{wire}[{width - 1}]" if signed else "1'b0"
        return f"{{{{{to - width}{{{fill}}}}}, {wire}}}"

    def convert(self, e: Elem, to: Fmt, base: str) -> str:
        """An exact change of format (dropped low bits are known zeros), as a wire name."""
        if e.wire is None:
            return self.derived(base, to.width, _literal(0, to.width))
        f = e.fmt
        shift = to.frac - f.frac
        if shift >= 0:
            return self.placed(e.wire, f.width, f.signed, shift, to.width, base)
        drop = -shift
        if drop >= f.width:
            return self.derived(base, to.width, _literal(0, to.width))
        high = self.derived(base, f.width - drop, f"{e.wire}[{f.width - 1}:{drop}]")
        return self.derived(base, to.width, self.fit(high, f.width - drop, f.signed, to.width))

    def placed(self, wire: str, width: int, signed: bool, shift: int, to: int, base: str) -> str:
        """``wire`` (``width`` bits) shifted left by ``shift`` >= 0 and extended or cut to ``to``
        bits (modulo ``2**to``), as a wire name: ``wire`` itself when nothing changes."""
        if shift >= to:
            return self.derived(base, to, _literal(0, to))
        inner = self.fit(wire, width, signed, to - shift)
        expr = inner if shift == 0 else f"{{{inner}, {shift}'b0}}"
        return wire if expr == wire else self.derived(base, to, expr)

    def product(self, e: Elem, k: int, shift: int, width: int, base: str) -> str:
        """``x * k * 2**shift`` modulo ``2**width`` (shift >= 0), as a wire name.  Each
        (input, constant) product is built once, exactly (as wide as its range needs), and every
        use takes it by wiring: shifted and sign-extended or cut to the use's width (modulo
        ``2**width``, as the sums it feeds are).  So one input times one weight value is one
        circuit for every row, shift and accumulator width that needs it (codebook weights:
        one per centre)."""
        self.product_uses += 1
        if k == 1:
            built, built_width = self._exact_input(e, base)
        else:
            if (e.wire, k) not in self.products:
                self.products[(e.wire, k)] = self._product(e, k, base)
            built, built_width = self.products[(e.wire, k)]
        return self.placed(built, built_width, True, shift, width, base)

    def _exact_input(self, e: Elem, base: str) -> tuple[str, int]:
        """``x`` itself as a signed wire (an unsigned input gains a zero sign bit)."""
        f = e.fmt
        if f.signed:
            return e.wire, f.width
        return self.derived(base, f.width + 1, self.fit(e.wire, f.width, False, f.width + 1)), f.width + 1

    def _product(self, e: Elem, k: int, base: str) -> tuple[str, int]:
        """``x * k`` at the width its range needs, as (signed wire, width)."""
        f = e.fmt
        lo, hi = fmt_range(f)
        width = signed_width(min(lo * k, hi * k), max(lo * k, hi * k))
        x = self.fit(e.wire, f.width, f.signed, width)
        if x != e.wire:
            x = self.derived(base, width, x)
        digits = csd(k)
        product_bits = f.width + abs(k).bit_length() + 1
        if len(digits) > self.options.csd_max_digits or product_bits > self.options.dsp_min_width:
            mul = self.wire(self.fresh(base), width, f"{x} * {_literal(k, width)}", f"* {k}",
                            cost={"muls": [(f.width + (not f.signed), abs(k).bit_length() + 1)]})
            return mul, width
        # a positive digit leads (a leading minus would be a negation of its own); then the
        # rest from the lowest position up.  Cost for compiler.estimate: each further digit is
        # one adder, significant up to bit width(x) + p + 1 (higher bits are sign copies); below
        # the larger known-zero run of its two operands an added term copies the other one,
        # while a subtracted term has to be negated there, so only its own zeros are free.
        lead = next((t for t in digits if t[1] > 0), digits[0])
        order = [lead] + [t for t in digits if t is not lead]
        parts, adders, zeros = [], [], order[0][0]
        for i, (p, d) in enumerate(order):
            term = x if p == 0 else f"{{{x}[{width - 1 - p}:0], {p}'b0}}"
            parts.append(("" if i == 0 and d > 0 else "+ " if d > 0 else "- ") + term)
            significant = min(f.width + max(q for q, _ in order[:i + 1]) + 1, width)
            if i == 0 and d < 0:
                adders.append((significant, p))  # a single negative digit: a negation
            elif i > 0:
                adders.append((significant, max(zeros, p) if d > 0 else p))
                zeros = min(zeros, p)
        if len(parts) == 1 and order[0][1] > 0:
            return self.wire(self.fresh(base), width, parts[0], f"* {k} (shift)"), width
        return self.wire(self.fresh(base), width, " ".join(parts), f"* {k} (csd)", cost={"adders": adders}), width


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1 if value else 0


def _tree_latency(n: int, levels_per_stage: int) -> int:
    """fg_reduce_tree's latency: ceil(clog2(n) / levels_per_stage)."""
    return -(-max(n - 1, 0).bit_length() // levels_per_stage)
