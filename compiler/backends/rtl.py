"""RTL backend: the final IR -> one fully parallel, pipelined SystemVerilog top (II = 1).

The backend decides nothing numeric: every element of every tensor is a wire exactly as wide
as its own format (``tensor.formats``, per element; pruned elements are the constant 0 and
get no wire), and values change only where the IR says so (REQUANTIZE through
``rtl/fg_requantize.sv``, with each element's own parameters).  Everything else is exact
integer arithmetic.  A sum whose exact result fits ``W`` bits is computed modulo ``2**W``
(two's complement wrap-around cancels), so every term and adder is at most as wide as the
result it feeds (the terms of one sum share one width, the widest term's capped at the
sum's, as fg_adder_tree adds N values of one width).  Templates in templates/rtl/ lay out
the context this module builds; the expressions themselves come from the small emitter below
(:class:`_Module`), the one place that knows Verilog bit slicing.

Ports: ``clk``, ``rst`` (synchronous, active high, clears the valid pipeline only),
``in_valid``, one packed port per model input (element ``i`` at ``[i*W +: W]``, ``W`` the
tensor's container width from :func:`compiler.backends.hls.container`, mantissa at the
container's fraction: what csim's tb_data holds), ``out_valid``, one packed port per output.

Constant multiplication rule.  A product ``x * c`` by a weight mantissa ``c`` (trailing zero
bits of ``c`` become part of the shift to the accumulator's fraction) is
* nothing when ``c == 0`` (the term is dropped from the sum),
* a shift (and a negation) when ``|c|`` is a power of two,
* canonical signed digit (CSD) shift-and-add when ``c`` has at most ``csd_max_digits``
  (BuildConfig ``rtl_csd_max_digits``, default 3: at most two adders) non-zero CSD digits
  and ``width(x) + bits(|c|) + 1 <= dsp_min_width`` (``rtl_dsp_min_width``, default 28),
* else a plain ``*`` (a DSP or a LUT multiplier, the synthesis tool's choice).

Pipelining rule (the schedule, also written to ``OUT/rtl/schedule.json``).  Products are
combinational; each output element's sum (DENSE, CONV, AVGPOOL: window sum times the
reciprocal is the sum of the products) is an ``fg_adder_tree``, and each MAXPOOL output an
``fg_reduce_tree`` max, with a register after every ``levels_per_stage`` tree levels
(``levels_per_stage = max(1, floor(clock_ns / 1.25))`` by default: one level of a few-bit to
~20-bit adder is about 1.25 ns with routing on a 7-series/UltraScale part).  Elements with
shallower trees are delayed (``fg_pipe``) to the deepest tree of their layer.  SOFTMAX (over
a vector) is a max tree then a sum tree, each by the same rule.  Epilogue stages (relu,
clip, requantize, sigmoid table, ...) are combinational, and every layer (fused node) ends
in one register.  Layers that only move values (reshape, transpose, concat) are wires and
take no cycle.  So a layer's latency is ``T + 1`` with ``T = ceil(clog2(N) / levels_per_stage)``
for its widest tree of N inputs (``T = 0`` without a tree); a tensor's ready cycle is its
layer's start (the latest ready cycle of its inputs; earlier inputs are delayed) plus that
latency, and the model's latency is the latest output's ready cycle.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..fixed import Formats
from ..ir import Graph, Node, Op, Tensor
from ..names import SV_COMPANIONS, SV_PREFIXES, SV_RESERVED, SV_TOP_PREFIXES, Names
from .hls import container, template_environment, top_name

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "rtl"
LIBRARY = Path(__file__).resolve().parents[2] / "rtl"
SUPPORTED = frozenset({Op.DENSE, Op.CONV, Op.AVGPOOL, Op.MAXPOOL, Op.SIGMOID, Op.SOFTMAX, Op.RELU, Op.LEAKY_RELU,
                       Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL,
                       Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})
WIRING = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})


class RTLBackendError(UserError):
    """The model uses something the RTL backend cannot express (the message says what)."""


@dataclass(frozen=True)
class RTLOptions:
    clock_ns: float = 5.0
    levels_per_stage: int | None = None  # None: max(1, floor(clock_ns / 1.25))
    csd_max_digits: int = 3  # more non-zero CSD digits: a `*`
    dsp_min_width: int = 28  # wider products: a `*`
    interface: str = "ports"  # "axis": also an AXI4-Stream top, <model>_axis.sv (see axis_context)

    @property
    def levels(self) -> int:
        if self.levels_per_stage is not None:
            return self.levels_per_stage
        return max(1, math.floor(self.clock_ns / 1.25))


@dataclass(frozen=True)
class Fmt:
    """The format of one element's wire: width, fractional bits, signedness."""

    width: int
    frac: int
    signed: bool


@dataclass(frozen=True)
class Elem:
    """One element: a wire name (None = the constant 0) and its format."""

    wire: str | None
    fmt: Fmt | None


ZERO = Elem(None, None)


def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: [(position, +1 or -1)], fewest non-zero digits."""
    digits, pos = [], 0
    while value != 0:
        if value & 1:
            d = 2 - (value & 3)  # +1 if value % 4 == 1, -1 if value % 4 == 3
            digits.append((pos, d))
            value -= d
        value >>= 1
        pos += 1
    return digits


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement field holding [lo, hi]."""
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


def _trim(m: int, frac: int) -> tuple[int, int]:
    """A constant mantissa at the fewest fractional bits."""
    if m == 0:
        return 0, 0
    while m % 2 == 0:
        m, frac = m // 2, frac - 1
    return m, frac


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
                 cost: dict | None = None) -> None:
        """``outputs``: output port -> (wire name, width), declared here.  ``cost``: what
        compiler.estimate needs beyond the parameters (an adder tree's terms' zero low bits)."""
        item = {"kind": "instance", "module": module, "name": name,
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
        lo, hi = (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else (0, (1 << f.width) - 1)
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


def _fmt_of(formats: Formats, i: int) -> Fmt | None:
    w = int(formats.width.flat[i])
    if w == 0:
        return None
    return Fmt(w, int(formats.frac_bits.flat[i]), bool(formats.signed.flat[i]))


class _Builder:
    def __init__(self, graph: Graph, options: RTLOptions, source: dict):
        self.graph = graph
        self.options = options
        self.source = source
        self.model = rtl_top_name(graph)
        self.names = Names(reserved=SV_RESERVED | {self.model}, prefixes=SV_PREFIXES, companions=SV_COMPANIONS)
        self.m = _Module(options)
        self.values: dict[str, list[Elem]] = {}  # tensor -> elements
        self.ready: dict[str, int] = {}  # tensor -> cycle its values are valid
        self.delayed: dict[tuple[str, int], list[Elem]] = {}

    # values -----------------------------------------------------------------------------
    def elems(self, name: str, at: int) -> list[Elem]:
        """The elements of ``name`` as they are at cycle ``at`` (delayed if ready earlier)."""
        t = self.graph.tensor(name)
        if t.is_constant:
            raise RTLBackendError(f"constant {name!r} used as an activation")
        depth = at - self.ready[name]
        if depth == 0:
            return self.values[name]
        key = (name, depth)
        if key not in self.delayed:
            base = self.names(name)
            out = []
            for i, e in enumerate(self.values[name]):
                if e.wire is None:
                    out.append(e)
                    continue
                wire = f"{base}__{i}_z{depth}"
                self.pipe(e.wire, wire, e.fmt.width, depth, f"u_{base}_{i}_z{depth}")
                out.append(Elem(wire, e.fmt))
            self.delayed[key] = out
        return self.delayed[key]

    def pipe(self, src: str, dst: str, width: int, depth: int, inst: str) -> None:
        self.m.instance("fg_pipe", inst, {"W": width, "DEPTH": depth},
                        {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": src,
                         "out_valid": f"{inst}_valid", "out_data": dst},
                        {"out_valid": (f"{inst}_valid", 1), "out_data": (dst, width)})

    def const_elements(self, t: Tensor, shape) -> list[tuple[int, int]]:
        """(mantissa, frac) per element of constant ``t`` broadcast to ``shape``, trimmed."""
        data = np.broadcast_to(np.asarray(t.data, dtype=object), shape)
        return [_trim(int(v), t.data_frac) for v in data.ravel()]

    # layers -----------------------------------------------------------------------------
    def layer(self, node: Node) -> dict:
        g = self.graph
        for stage in node.stages():
            if stage.op not in SUPPORTED:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {stage.op.value} yet; "
                                      f"compile with --backend hls")
        acts = [i for s in node.stages() for i in s.inputs if i in self.ready]
        start = max((self.ready[i] for i in acts), default=0)
        first = len(self.m.items)
        uses, built = self.m.product_uses, len(self.m.products)
        latency = 0
        local: dict[str, list[Elem]] = {}
        for stage in node.stages():
            ins = [local[i] if i in local else (None if g.tensor(i).is_constant else self.elems(i, start))
                   for i in stage.inputs]
            out = g.tensor(stage.outputs[0])
            base = self.names(out.name)
            if stage.op in (Op.DENSE, Op.CONV, Op.AVGPOOL):
                elems, latency = self.sums(stage, ins[0], out, base)
            elif stage.op == Op.MAXPOOL:
                elems, latency = self.maxpool(stage, ins[0], out, base)
            elif stage.op == Op.SOFTMAX:
                elems, latency = self.softmax(node, stage, ins[0], out, base)
            else:
                elems = self.elementwise(node, stage, ins, out, base)
            local[out.name] = elems
        final = node.outputs[0]
        elems = local[final]
        wiring = all(s.op in WIRING for s in node.stages())
        if not wiring:
            latency += 1
            base = self.names(final)
            registered = []
            for i, e in enumerate(elems):
                if e.wire is None:
                    registered.append(e)
                else:
                    registered.append(Elem(self.m.register(f"{base}__{i}_q", e.fmt.width, e.wire), e.fmt))
            elems = registered
        self.values[final] = elems
        self.ready[final] = start + latency
        items = self.m.items[first:]
        return {"name": self.names(node.name), "onnx": ", ".join(node.onnx_nodes) or node.name,
                "ops": " + ".join(s.op.value for s in node.stages()), "start": start, "latency": latency,
                "products": self.m.product_uses - uses, "products_built": len(self.m.products) - built,
                "items": items}

    def dense_terms(self, stage: Node, out: Tensor) -> tuple[list, list]:
        """Per output element: [(input element, weight mantissa, frac)] and (bias mantissa, frac)."""
        g = self.graph
        w = g.tensor(stage.inputs[1])
        b = g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
        n_out, n_in = w.shape
        rows = int(np.prod(out.shape[:-1]))
        weights = np.asarray(w.data, dtype=object)
        bias = self.const_elements(b, (n_out,)) if b is not None else [(0, 0)] * n_out
        terms, biases = [], []
        for r in range(rows):
            for j in range(n_out):
                terms.append([(r * n_in + k, *_trim(int(weights[j, k]), w.data_frac)) for k in range(n_in)])
                biases.append(bias[j])
        return terms, biases

    def window_terms(self, stage: Node, out: Tensor) -> tuple[list, list]:
        """CONV and AVGPOOL as sums: per output element the (input element, constant) pairs of
        its window (padding contributes nothing), and the bias."""
        g = self.graph
        x = g.tensor(stage.inputs[0])
        a = stage.attrs
        spatial = x.shape[1:]
        n = len(spatial)
        index = np.arange(int(np.prod(x.shape))).reshape(x.shape)
        if stage.op == Op.CONV:
            w = g.tensor(stage.inputs[1])
            weights = np.asarray(w.data, dtype=object)
            kernel, groups, dil = w.shape[2:], a["groups"], a["dilations"]
            cin_g, cout_g = w.shape[1], w.shape[0] // groups
            b = g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
            bias = self.const_elements(b, (w.shape[0],)) if b is not None else [(0, 0)] * w.shape[0]
        else:
            r = g.tensor(stage.inputs[1])
            recip = np.broadcast_to(np.asarray(r.data, dtype=object), out.shape)
            kernel, dil = a["kernel"], (1,) * n
        terms, biases = [], []
        for o in np.ndindex(out.shape):
            ch, pos = o[0], o[1:]
            if stage.op == Op.CONV:
                g_idx = ch // cout_g
                channels = [(g_idx * cin_g + c, c) for c in range(cin_g)]
                biases.append(bias[ch])
            else:
                channels = [(ch, None)]
                biases.append((0, 0))
            row = []
            for c, c_local in channels:
                for k in np.ndindex(*kernel):
                    at = [pos[i] * a["strides"][i] - a["pads"][i] + k[i] * dil[i] for i in range(n)]
                    if any(p < 0 or p >= spatial[i] for i, p in enumerate(at)):
                        continue
                    if stage.op == Op.CONV:
                        m = _trim(int(weights[(ch, c_local, *k)]), w.data_frac)
                    else:
                        m = _trim(int(recip[o]), r.data_frac)
                    row.append((int(index[(c, *at)]), *m))
            terms.append(row)
        return terms, biases

    def sums(self, stage: Node, x: list[Elem], out: Tensor, base: str) -> tuple[list[Elem], int]:
        """Each output element: the exact sum of constant products of input elements (+ bias),
        an fg_adder_tree; shallower trees are delayed to the deepest one."""
        spec = self.dense_terms(stage, out) if stage.op == Op.DENSE else self.window_terms(stage, out)
        lps = self.options.levels
        results: list[tuple[Elem, int]] = []
        for idx, (row, (bm, bf)) in enumerate(zip(*spec)):
            fmt = _fmt_of(out.formats, idx)
            if fmt is None:
                results.append((ZERO, 0))
                continue
            name = f"{base}__{idx}"
            terms = []  # (elem, k, shift, term width)
            for k, (xi, m, mf) in enumerate(row):
                e = x[xi]
                if m == 0 or e.wire is None:
                    continue
                shift = fmt.frac - e.fmt.frac - mf
                if shift < 0:
                    raise RTLBackendError(f"node {stage.name!r}: term {k} of output {idx} has bits below the "
                                          f"accumulator's fraction (not exact)")
                lo, hi = (-(1 << (e.fmt.width - 1)), (1 << (e.fmt.width - 1)) - 1) if e.fmt.signed \
                    else (0, (1 << e.fmt.width) - 1)
                ends = [lo * m << shift, hi * m << shift]
                terms.append((e, m, shift, signed_width(min(ends), max(ends))))
            if bm != 0 and fmt.frac < bf:
                raise RTLBackendError(f"node {stage.name!r}: bias of output {idx} has bits below the "
                                      f"accumulator's fraction")
            bias = bm << (fmt.frac - bf) if bm else 0
            if not terms:
                results.append((Elem(self.m.wire(name, fmt.width, _literal(bias, fmt.width)), fmt), 0))
                continue
            tw = min(max(t[3] for t in terms), fmt.width)
            if bias != 0:
                tw = max(tw, min(fmt.width, signed_width(bias, bias)))
            wires = [self.m.product(e, k, s, tw, name) for e, k, s, _ in terms]
            # for compiler.estimate: each term's known-zero low bits and significant width
            zeros = [min(s + _trailing_zeros(k), tw) for _, k, s, _ in terms]
            widths = [min(t[3], tw) for t in terms]
            if bias != 0:
                wires.append(self.m.derived(name, tw, _literal(bias, tw), "bias"))
                zeros.append(min(_trailing_zeros(bias), tw))
                widths.append(min(signed_width(bias, bias), tw))
            if len(wires) == 1:
                results.append((Elem(self.m.wire(name, fmt.width, self.m.fit(wires[0], tw, True, fmt.width)),
                                     fmt), 0))
                continue
            n = len(wires)
            packed = self.m.wire(f"{name}_terms", n * tw, "{" + ", ".join(reversed(wires)) + "}")
            inst = f"u_{name}_sum"
            self.m.instance("fg_adder_tree", inst,
                            {"N": n, "W": tw, "SIGNED": 1, "OUT_W": fmt.width, "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"{inst}_valid", "out_data": f"{name}_sum"},
                            {"out_valid": (f"{inst}_valid", 1), "out_data": (f"{name}_sum", fmt.width)},
                            cost={"zero_lsbs": zeros, "term_widths": widths, "constant_terms": int(bias != 0)})
            results.append((Elem(f"{name}_sum", fmt), _tree_latency(n, lps)))
        return self.align(results, base)

    def align(self, results: list[tuple[Elem, int]], base: str) -> tuple[list[Elem], int]:
        latency = max((t for _, t in results), default=0)
        elems = []
        for idx, (e, t) in enumerate(results):
            if e.wire is not None and t < latency:
                wire = f"{base}__{idx}_al"
                self.pipe(e.wire, wire, e.fmt.width, latency - t, f"u_{base}_{idx}_al")
                e = Elem(wire, e.fmt)
            elems.append(e)
        return elems, latency

    def maxpool(self, stage: Node, x: list[Elem], out: Tensor, base: str) -> tuple[list[Elem], int]:
        """Each output element: an fg_reduce_tree max over its window (padding never wins), in
        a working format holding every window element, then converted (exactly) to its own."""
        a = stage.attrs
        xt = self.graph.tensor(stage.inputs[0])
        spatial, n = xt.shape[1:], len(xt.shape) - 1
        dil = a.get("dilations", (1,) * n)
        index = np.arange(int(np.prod(xt.shape))).reshape(xt.shape)
        lps = self.options.levels
        results = []
        for idx, o in enumerate(np.ndindex(out.shape)):
            fmt = _fmt_of(out.formats, idx)
            name = f"{base}__{idx}"
            window = []
            for k in np.ndindex(*a["kernel"]):
                at = [o[1 + i] * a["strides"][i] - a["pads"][i] + k[i] * dil[i] for i in range(n)]
                if all(0 <= p < spatial[i] for i, p in enumerate(at)):
                    window.append(x[int(index[(o[0], *at)])])
            if fmt is None:
                results.append((ZERO, 0))
                continue
            kept = [e for e in window if e.wire is not None]
            fmts = [e.fmt for e in kept] + ([Fmt(1, fmt.frac, False)] if len(kept) < len(window) else [])
            frac = max(f.frac for f in fmts)
            lo = min(-(1 << (f.width - 1)) << (frac - f.frac) if f.signed else 0 for f in fmts)
            hi = max(((1 << (f.width - (1 if f.signed else 0))) - 1) << (frac - f.frac) for f in fmts)
            work = Fmt(signed_width(lo, hi), frac, True)
            wires = [self.m.convert(e, work, name) for e in window]
            if len(wires) == 1:
                results.append((Elem(self.m.convert(Elem(wires[0], work), fmt, name), fmt), 0))
                continue
            packed = self.m.wire(f"{name}_window", len(wires) * work.width, "{" + ", ".join(reversed(wires)) + "}")
            inst = f"u_{name}_max"
            self.m.instance("fg_reduce_tree", inst,
                            {"N": len(wires), "W": work.width, "SIGNED": 1, "OP": 1, "OUT_W": work.width,
                             "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"{inst}_valid", "out_data": f"{name}_max"},
                            {"out_valid": (f"{inst}_valid", 1), "out_data": (f"{name}_max", work.width)})
            results.append((Elem(self.m.convert(Elem(f"{name}_max", work), fmt, name), fmt),
                            _tree_latency(len(wires), lps)))
        return self.align(results, base)

    def elementwise(self, node: Node, stage: Node, ins: list, out: Tensor, base: str) -> list[Elem]:
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
        out_fmts = [_fmt_of(out.formats, i) for i in range(n)]
        x_t = g.tensor(stage.inputs[0])
        xi = np.broadcast_to(np.arange(int(np.prod(x_t.shape))).reshape(x_t.shape), out.shape).ravel()
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
                self.m.instance("fg_requantize", f"u_{name}_rq",
                                {"IN_W": src.fmt.width, "IN_F": src.fmt.frac, "IN_SIGNED": int(src.fmt.signed),
                                 "OUT_W": fmt.width, "OUT_F": fmt.frac, "OUT_SIGNED": int(fmt.signed),
                                 "ROUNDING": int(t.rounding), "OVERFLOW": int(t.overflow)},
                                {"in_data": src.wire, "out_data": name}, {"out_data": (name, fmt.width)})
                result.append(Elem(name, fmt))
            elif op == Op.SIGMOID:
                result.append(Elem(self.sigmoid(stage, e, fmt, name), fmt))
            elif e.wire is None and op in (Op.RELU, Op.LEAKY_RELU, Op.MUL):
                result.append(Elem(self.m.wire(name, fmt.width, _literal(0, fmt.width)), fmt))
            elif op == Op.RELU:
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
                    raise RTLBackendError(f"node {node.name!r}: mul by an activation is not supported")
                k, kf = self.const_elements(c, out.shape)[i]
                shift = fmt.frac - e.fmt.frac - kf
                if k == 0:
                    result.append(Elem(self.m.wire(name, fmt.width, _literal(0, fmt.width)), fmt))
                    continue
                if shift < 0:
                    raise RTLBackendError(f"node {node.name!r}: product {i} has bits below its format's fraction")
                result.append(Elem(self.m.product(e, k, shift, fmt.width, name), fmt))
            elif op == Op.LEAKY_RELU:
                alpha = g.tensor(stage.inputs[1])
                k, kf = self.const_elements(alpha, out.shape)[i]
                kept = self.m.product(e, 1, fmt.frac - e.fmt.frac, fmt.width, name)
                if not e.fmt.signed:
                    result.append(Elem(kept, fmt))
                    continue
                if fmt.frac - e.fmt.frac - kf < 0:
                    raise RTLBackendError(f"node {node.name!r}: leaky relu {i} has bits below its fraction")
                scaled = self.m.product(e, k, fmt.frac - e.fmt.frac - kf, fmt.width, name) if k else \
                    self.m.derived(name, fmt.width, _literal(0, fmt.width))
                result.append(Elem(self.m.wire(name, fmt.width, f"{e.wire}[{e.fmt.width - 1}] ? {scaled} : {kept}",
                                               cost={"muxes": [fmt.width]}), fmt))
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

    def rom(self, code: Elem, table, name: str) -> Elem:
        tin, tout = table.input, table.output
        contents = 0
        for k, v in enumerate(table.values):
            contents |= (int(v) & ((1 << tout.width) - 1)) << (k * tout.width)
        value, inst = f"{name}_value", f"u_{name}_rom"
        self.m.instance("fg_rom", inst,
                        {"ADDR_W": tin.width, "DATA_W": tout.width, "ADDR_SIGNED": int(tin.signed), "REGISTERED": 0,
                         "CONTENTS": f"{table.values.size * tout.width}'h{contents:x}"},
                        {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": code.wire,
                         "out_valid": f"{inst}_valid", "out_data": value},
                        {"out_valid": (f"{inst}_valid", 1), "out_data": (value, tout.width)})
        return Elem(value, Fmt(tout.width, tout.frac_bits, tout.signed))

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
            es.append(self.rom(code, exp_table, f"{name}_exp"))
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
        r = self.rom(self.requantize_to(total, inv_table.input, base, "inv_code"), inv_table, f"{base}_inv")
        pw = ef.width + r.fmt.width + 1
        pfmt = Fmt(pw, ef.frac + r.fmt.frac, True)
        rw = self.m.wire(f"{base}_r", pw, self.m.fit(r.wire, r.fmt.width, r.fmt.signed, pw))
        result = []
        for i, e in enumerate(es):
            name = f"{base}__{i}"
            fmt = _fmt_of(out.formats, i)
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

    def sigmoid(self, stage: Node, e: Elem, fmt: Fmt, name: str) -> str:
        """code = fg_requantize(x) into the table's input type; y = fg_rom[code] (combinational)."""
        table = stage.attrs["table"]
        tin, tout = table.input, table.output
        src = e if e.wire is not None else Elem("1'b0", Fmt(1, tin.frac_bits, False))
        code = f"{name}_code"
        self.m.instance("fg_requantize", f"u_{name}_code",
                        {"IN_W": src.fmt.width, "IN_F": src.fmt.frac, "IN_SIGNED": int(src.fmt.signed),
                         "OUT_W": tin.width, "OUT_F": tin.frac_bits, "OUT_SIGNED": int(tin.signed),
                         "ROUNDING": int(tin.rounding), "OVERFLOW": int(tin.overflow)},
                        {"in_data": src.wire, "out_data": code}, {"out_data": (code, tin.width)})
        contents = 0
        for k, v in enumerate(table.values):
            contents |= (int(v) & ((1 << tout.width) - 1)) << (k * tout.width)
        bits = table.values.size * tout.width
        value = f"{name}_table"
        inst = f"u_{name}_rom"
        self.m.instance("fg_rom", inst,
                        {"ADDR_W": tin.width, "DATA_W": tout.width, "ADDR_SIGNED": int(tin.signed), "REGISTERED": 0,
                         "CONTENTS": f"{bits}'h{contents:x}"},
                        {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": code,
                         "out_valid": f"{inst}_valid", "out_data": value},
                        {"out_valid": (f"{inst}_valid", 1), "out_data": (value, tout.width)})
        return self.m.convert(Elem(value, Fmt(tout.width, tout.frac_bits, tout.signed)), fmt, name)

    def clip(self, node: Node, stage: Node, e: Elem, fmt: Fmt, i: int, out: Tensor, name: str) -> str:
        g = self.graph
        lo, lf = self.const_elements(g.tensor(stage.inputs[1]), out.shape)[i]
        hi, hf = self.const_elements(g.tensor(stage.inputs[2]), out.shape)[i]
        if e.wire is None:
            value = min(max(0, lo << (fmt.frac - lf)), hi << (fmt.frac - hf))
            return self.m.wire(name, fmt.width, _literal(value, fmt.width))
        frac = fmt.frac
        if frac < e.fmt.frac or frac < lf or frac < hf:
            raise RTLBackendError(f"node {node.name!r}: clip element {i} has bits below its format's fraction")
        width = e.fmt.width + frac - e.fmt.frac
        xw = Fmt(width, frac, e.fmt.signed)
        x = self.m.convert(e, xw, name)
        in_lo, in_hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if e.fmt.signed else (0, (1 << width) - 1)
        lo_m, hi_m = max(lo << (frac - lf), in_lo), min(hi << (frac - hf), in_hi)
        if lo_m > in_hi or hi_m < in_lo or lo_m > hi_m:
            raise RTLBackendError(f"node {node.name!r}: clip element {i} is a constant; not supported")
        clipped = f"{name}_clip"
        self.m.instance("fg_clip", f"u_{name}_clip",
                        {"W": width, "SIGNED": int(e.fmt.signed), "LO": f"{_literal(lo_m, width + 1)}",
                         "HI": f"{_literal(hi_m, width + 1)}", "OUT_W": width, "OUT_SIGNED": int(e.fmt.signed)},
                        {"in_data": x, "out_data": clipped}, {"out_data": (clipped, width)})
        return self.m.convert(Elem(clipped, xw), fmt, name)

    def add(self, node: Node, stage: Node, ins: list, out: Tensor, i: int, fmt: Fmt, name: str) -> str:
        g = self.graph
        operands = []  # (Elem or None, const mantissa, const frac)
        for k, tname in enumerate(stage.inputs):
            t = g.tensor(tname)
            idx = np.broadcast_to(np.arange(int(np.prod(t.shape))).reshape(t.shape), out.shape).ravel()
            if t.is_constant:
                m, mf = self.const_elements(t, out.shape)[i]
                operands.append((None, m, mf))
            else:
                operands.append((ins[k][int(idx[i])], 0, 0))
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

    # whole model ------------------------------------------------------------------------
    def port(self, name: str) -> dict:
        t = self.graph.tensor(name)
        c = container(t.formats)
        n = int(np.prod(t.shape))
        return {"name": self.names(name), "onnx": name, "size": n, "width": c.width, "bits": n * c.width,
                "frac": c.frac_bits, "signed": c.signed, "type": str(c), "shape": list(t.shape)}

    def build(self) -> dict:
        g = self.graph
        inputs = [self.port(n) for n in g.inputs]
        outputs = [self.port(n) for n in g.outputs]
        m = self.m
        for port, name in zip(inputs, g.inputs):
            t = g.tensor(name)
            cfmt = Fmt(port["width"], port["frac"], port["signed"])
            elems = []
            for i in range(port["size"]):
                fmt = _fmt_of(t.formats, i)
                if fmt is None:
                    elems.append(ZERO)
                    continue
                raw = m.wire(f"{port['name']}__{i}_port", cfmt.width,
                             f"{port['name']}[{i * cfmt.width} +: {cfmt.width}]")
                elems.append(Elem(m.convert(Elem(raw, cfmt), fmt, f"{port['name']}__{i}"), fmt))
            self.values[name] = elems
            self.ready[name] = 0
        input_items = list(m.items)
        layers = [self.layer(node) for node in g.nodes]
        latency = max(self.ready[n] for n in g.outputs)
        first = len(m.items)
        for port, name in zip(outputs, g.outputs):
            cfmt = Fmt(port["width"], port["frac"], port["signed"])
            wires = [m.convert(e, cfmt, f"{port['name']}__{i}_out") for i, e in enumerate(self.elems(name, latency))]
            port["expr"] = "{" + ", ".join(reversed(wires)) + "}"
        output_items = m.items[first:]
        return {"model": self.model, "version": __version__, "source": self.source,
                "clock_ns": self.options.clock_ns, "levels_per_stage": self.options.levels,
                "csd_max_digits": self.options.csd_max_digits, "dsp_min_width": self.options.dsp_min_width,
                "latency": latency, "inputs": inputs, "outputs": outputs, "input_items": input_items,
                "layers": layers, "output_items": output_items, "names": dict(self.names.map)}


def rtl_top_name(graph: Graph) -> str:
    """The generated top module's name (and file name): the HLS top name, unless that is a
    SystemVerilog keyword or a library module's name, or starts a Verilator directive."""
    name = top_name(graph)
    if name.lower().startswith(SV_TOP_PREFIXES):
        name = f"t_{name}"
    return f"{name}_top" if name in SV_RESERVED else name


def rtl_context(graph: Graph, options: RTLOptions, source: dict) -> dict:
    return _Builder(graph, options, source).build()


def check_supported(graph: Graph) -> None:
    """Raise RTLBackendError naming the first node the RTL backend cannot build."""
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op not in SUPPORTED:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {stage.op.value} yet; "
                                      f"compile with --backend hls")
            if stage.op == Op.SOFTMAX and len(graph.tensor(stage.inputs[0]).shape) != 1:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend supports softmax over a vector only; "
                                      f"compile with --backend hls")


def parallel_products(graph: Graph) -> int:
    """Constant products a fully parallel build of the graph has (an upper bound: every weight
    position of every output element, zeros included); a measure of the RTL's size."""
    total = 0
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op in (Op.DENSE, Op.CONV):
                w = graph.tensor(stage.inputs[1])
                out = graph.tensor(stage.outputs[0])
                per_output = int(np.prod(w.shape[1:]))
                total += int(np.prod(out.shape)) * per_output
    return total


PORT_FIELDS = ("name", "onnx", "size", "width", "signed", "type")
INTERFACES = ("ports", "axis")


def schedule(context: dict, axis: dict | None = None) -> dict:
    """What a simulation needs to know of the generated top(s): ports, latency, II, and with
    ``axis`` (:func:`axis_context`) the AXI4-Stream top's name, tdata widths and latency."""
    entry = {"latency_cycles": context["latency"], "ii_cycles": 1, "clock_ns": context["clock_ns"],
             "levels_per_stage": context["levels_per_stage"], "interface": "axis" if axis else "ports"}
    if axis:
        entry["axis"] = {"top": axis["top"], "s_axis_tdata_bits": axis["s"]["tdata_bits"],
                         "m_axis_tdata_bits": axis["m"]["tdata_bits"], "latency_cycles": axis["latency"],
                         "fifo_depth": axis["fifo_depth"]}
    entry.update({
        "inputs": [{k: p[k] for k in PORT_FIELDS} for p in context["inputs"]],
        "outputs": [{k: p[k] for k in PORT_FIELDS} for p in context["outputs"]],
        "layers": [{"name": layer["name"], "onnx": layer["onnx"], "ops": layer["ops"],
                    "start_cycle": layer["start"], "latency_cycles": layer["latency"]}
                   for layer in context["layers"]]})
    return entry


def axis_top_name(model: str) -> str:
    return f"{model}_axis"


def _axis_stream(port: dict) -> dict:
    """One AXI4-Stream side: the core port's packed bits in the low bits of tdata, padded
    with zeros to whole bytes as AXI4-Stream requires."""
    tdata_bits = -(-port["bits"] // 8) * 8
    return {**port, "tdata_bits": tdata_bits, "pad_bits": tdata_bits - port["bits"],
            "msb": port["bits"] - 1, "tdata_msb": tdata_bits - 1}


def axis_context(context: dict) -> dict:
    """The AXI4-Stream top around the core ``context`` describes: fg_axis_wrapper (rtl/) with
    LATENCY = the core's latency and FIFO_DEPTH = latency + 2, the depth its header says
    sustains one beat per clock.  One input and one output tensor only: tdata is one packed
    port."""
    if len(context["inputs"]) != 1 or len(context["outputs"]) != 1:
        names = ", ".join(p["onnx"] for p in context["inputs"]), ", ".join(p["onnx"] for p in context["outputs"])
        raise RTLBackendError(f"model {context['model']!r} has inputs ({names[0]}) and outputs ({names[1]}); "
                              f"the AXI4-Stream top takes one input and one output tensor; "
                              f"compile with --rtl-interface ports")
    latency = context["latency"]
    return {"model": context["model"], "top": axis_top_name(context["model"]), "version": context["version"],
            "source": context["source"], "clock_ns": context["clock_ns"], "core_latency": latency,
            "latency": latency + 1, "fifo_depth": latency + 2,
            "s": _axis_stream(context["inputs"][0]), "m": _axis_stream(context["outputs"][0])}


def write_rtl_project(graph: Graph, options: RTLOptions, out_dir: Path, source: dict) -> dict:
    """Render OUT/rtl/<model>.sv, with ``options.interface == "axis"`` also
    OUT/rtl/<model>_axis.sv, and schedule.json; returns the core's context."""
    check_supported(graph)
    context = rtl_context(graph, options, source)
    axis = axis_context(context) if options.interface == "axis" else None
    env = template_environment(TEMPLATES)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{context['model']}.sv").write_text(env.get_template("model.sv.j2").render(**context))
    if axis:
        (out_dir / f"{axis['top']}.sv").write_text(env.get_template("axis.sv.j2").render(**axis))
    (out_dir / "schedule.json").write_text(json.dumps(schedule(context, axis), indent=2) + "\n")
    return context


def rtl_sources(rtl_dir: Path, model: str, axis: bool = False) -> list[Path]:
    """The generated top (with ``axis``: and its AXI4-Stream top) and the library modules."""
    tops = [rtl_dir / f"{model}.sv", *([rtl_dir / f"{axis_top_name(model)}.sv"] if axis else [])]
    return [*sorted(LIBRARY.glob("*.sv")), *tops]
