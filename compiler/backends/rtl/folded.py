"""Folded cores: one DENSE or CONV-window layer (and its epilogue) as a time-multiplexed,
exact constant-matrix datapath that accepts one input every ``R`` cycles (the reuse factor).

The mini-graph (design13.md) is one fused node: DENSE over an input [N], or CONV over one
window [C, KH, KW] into [M, 1, 1], then its epilogue.  Its M x N' constant products (N' per
output: the window or input length; a grouped or depthwise conv's structural zeros are not
terms) are split as FINN's PE x SIMD: each cycle (a *phase*), PE lanes each take SIMD products
of one output channel, so a group of PE channels takes K = ceil(N'/SIMD) phases and the whole
layer P = G * K <= R phases, G = ceil(M/PE) (:func:`fold_shape`: the fewest multipliers,
ties to the fewest lanes).  Output channels with no non-zero weight are their bias (no lane),
and input positions no channel uses (a pruned input) are no term.

Datapath, per lane j and phase p = g*K + k (group g, chunk k):
* the input vector is latched, each element in its own format, when in_valid;
* multiplier (j, s) reads its input through a mux over the chunk (or group, or phase: what its
  inputs vary with; a dense layer's lanes share one mux per s) and its weight from the lane's
  ROM, a case over the phase (LUTs), read through a register when the ROM is large
  (:data:`ROM_BRAM_MIN_PHASES` phases and :data:`ROM_BRAM_MIN_BITS` bits: block RAM, in banks
  of :data:`ROM_BANK_BITS`; the input mux is then registered too); a multiplier whose weights
  are all zero is not built;
* exactness: a ROM slot holds each weight mantissa already shifted to its channel's
  accumulator fraction (shift = acc frac - input frac - weight frac >= 0, as the parallel
  builder's terms), without the trailing zero bits every weight of the slot shares (those are
  wiring after the product), sign-extended to the slot's widest value; so each product is
  exact and in accumulator units, the SIMD products of a lane sum in an fg_adder_tree (the
  levels_per_stage rule) and the lane accumulator adds the chunks, starting from the channel's
  bias, modulo 2**A, A the widest accumulator format of the channels the lane serves: a
  channel's exact sum fits its own format, so its low bits are exact;
* when a group's last chunk is summed, its channels' registers take the lane accumulators (with
  one group, the accumulators are those registers); the epilogue (the parallel builder's code
  on an epilogue-only node) runs on every channel at once, into one register.

Timing: in_valid at cycle t; phase p runs at t + 1 + p; latency (in_valid to out_valid)
``L = P + ROM register (0/1) + T + 1 + E`` with T the lanes' adder-tree latency and E the
epilogue's (1, its register; 0 without an epilogue).  out_valid is the last group's store
through the registers after it (not in_valid through L reset flip-flops).  in_valid must not
come again before t + R (the stream window generator's cooldown guarantees it; one earlier
restarts the phases); P <= R, so the input latch, the accumulators and the channel registers
are never overwritten before they are read.  Cost notes for compiler.estimate: multipliers
as ``muls`` (operand widths, unsigned where yosys sees both sign bits are 0, and the exact
product's), ROMs as ``rom`` (LUTs: the bits that vary with the phase, once per distinct
function), input and bias muxes, adders, registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import __version__
from ...errors import UserError, reraise_interrupt
from ...ir import Graph, Node, Op
from ..hls import template_environment
from ...sums import element_format
from .builder import _Builder
from .emitter import ZERO, Elem, Fmt, _literal, _trailing_zeros, _tree_latency, signed_width
from .options import RTLBackendError, RTLOptions

# A lane ROM this large is read through a register (block RAM); smaller ones are LUTs.  A LUT
# ROM bit of P phases takes about P/64 LUT6s (a third more above 256), a RAMB18 holds 36 bits
# of 512 phases: at 512 phases a RAMB18 does the work of ~380 LUTs, about what one RAMB18 is
# of a part (xczu7ev: 230k LUTs, 624 RAMB18), so deeper ROMs go to block RAM.
ROM_BRAM_MIN_PHASES = 512
ROM_BRAM_MIN_BITS = 64 * 36
ROM_BANK_BITS = 36


def fold_shape(m: int, n: int, reuse: int) -> tuple[int, int]:
    """(PE, SIMD) for ``m`` outputs of ``n`` terms each in at most ``reuse`` phases
    (ceil(m/PE) * ceil(n/SIMD) <= reuse): the fewest multipliers PE * SIMD, ties to the fewest
    lanes PE (fewer accumulators; a dense layer's lanes share the input muxes)."""
    if reuse < 1 or m < 1 or n < 1:
        raise ValueError(f"fold_shape needs m, n, reuse >= 1, got {m}, {n}, {reuse}")
    best = None
    for groups in range(1, min(m, reuse) + 1):
        pe = -(-m // groups)
        chunks = min(reuse // -(-m // pe), n)
        simd = -(-n // chunks)
        key = (pe * simd, pe)
        if best is None or key < best[0]:
            best = (key, (pe, simd))
    return best[1]


@dataclass
class _Slot:
    """Multiplier (lane, simd position): per phase the input index (None: no term) and the
    pre-shifted weight."""

    inputs: list
    weights: list[int]


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _lit(value: int, width: int) -> str:
    return _literal(value, width)


class _FoldedCore:
    def __init__(self, graph: Graph, options: RTLOptions, source: dict, reuse: int):
        if reuse < 2:
            raise ValueError(f"a folded core needs a reuse factor of 2 or more, got {reuse} (1: rtl_context)")
        if len(graph.nodes) != 1 or len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise RTLBackendError(f"graph {graph.name!r}: a folded core is one layer with one input and one output; "
                                  f"it has {len(graph.nodes)} nodes, {len(graph.inputs)} inputs, "
                                  f"{len(graph.outputs)} outputs")
        self.node = graph.nodes[0]
        if self.node.op not in (Op.DENSE, Op.CONV):
            raise RTLBackendError(f"node {self.node.name!r}: only a dense or conv layer can be folded "
                                  f"(reuse factor {reuse}), not {self.node.op.value}; give it reuse factor 1")
        self.graph = graph
        self.reuse = reuse
        self.b = _Builder(graph, options, source)
        self.m = self.b.m
        self.base = self.b.names(self.node.name)
        self.lps = options.levels

    def wire(self, suffix: str) -> str:
        """A wire of the folded datapath: ``<layer>__<suffix>``, the suffix never starting with a
        digit (the parallel builder's element wires are ``<tensor>__<index>...``)."""
        return f"{self.base}__{suffix}"

    def comment(self, text: str) -> None:
        self.m.items.append({"kind": "comment", "text": text})

    def declare(self, name: str, width: int) -> str:
        """A register declared ahead of the logic that reads it (a loop: counter, accumulator)."""
        self.m.items.append({"kind": "declare", "name": name, "width": width})
        return name

    def register(self, name: str, width: int, source: str, enable: str | None = None,
                 reset: str | None = None, declared: bool = False) -> str:
        """``name <= source`` on every clock edge where ``enable`` (if given); ``rst`` sets
        ``reset`` (if given); ``declared``: by :meth:`declare`."""
        self.m.items.append({"kind": "register", "name": name, "width": width, "source": source,
                             "enable": enable, "reset": reset, "declared": declared})
        return name

    def case(self, name: str, width: int, select: str, entries: list[tuple[str, str]], comment: str,
             cost: dict | None) -> str:
        """``name`` = the expression of the entry whose label matches ``select``; the last
        entry's label is ``default``."""
        item = {"kind": "case", "name": name, "width": width, "select": select, "comment": comment,
                "entries": [{"label": label, "expr": expr} for label, expr in entries]}
        if cost:
            item["cost"] = cost
        self.m.items.append(item)
        return name

    # the terms ---------------------------------------------------------------------------
    def channels(self, x: list[Elem]) -> tuple[list, list, dict]:
        """Per accumulator element: its format (None: constant 0), its terms [(input index,
        weight in accumulator units)] at the structural positions of its row, and its bias in
        accumulator units.  Returns (folded channels [(index, fmt, terms, bias)], constant
        channels {index: (fmt, bias)}, and the accumulator)."""
        stage = self.node.stages()[0]
        acc = self.graph.tensor(stage.outputs[0])
        spec = self.b.dense_terms(stage, acc) if stage.op == Op.DENSE else self.b.window_terms(stage, acc)
        folded, constant = [], {}
        for idx, (row, (bm, bf)) in enumerate(zip(*spec)):
            fmt = element_format(acc, idx)
            if fmt is None:
                continue
            terms = []
            for k, (xi, m, mf) in enumerate(row):
                e = x[xi]
                if m == 0 or e.wire is None:
                    terms.append((None if e.wire is None else xi, 0))
                    continue
                shift = fmt.frac - e.fmt.frac - mf
                if shift < 0:
                    raise RTLBackendError(f"node {stage.name!r}: term {k} of output {idx} has bits below the "
                                          f"accumulator's fraction (not exact)")
                terms.append((xi, m << shift))
            if bm != 0 and fmt.frac < bf:
                raise RTLBackendError(f"node {stage.name!r}: bias of output {idx} has bits below the "
                                      f"accumulator's fraction")
            bias = bm << (fmt.frac - bf) if bm else 0
            if any(w for _, w in terms):
                folded.append((idx, fmt, terms, bias))
            else:
                constant[idx] = (fmt, bias)
        # positions no channel has a weight at are no term
        length = max((len(t) for _, _, t, _ in folded), default=0)
        used = [k for k in range(length) if any(k < len(t) and t[k][1] for _, _, t, _ in folded)]
        folded = [(idx, fmt, [t[k] if k < len(t) else (None, 0) for k in used], bias)
                  for idx, fmt, t, bias in folded]
        return folded, constant, acc

    # the datapath ------------------------------------------------------------------------
    def latch(self, elems: list[Elem], port: str) -> list[Elem]:
        self.comment(f"input latch: {port} held for the phases")
        return [e if e.wire is None else
                Elem(self.register(f"{port}__{i}_q", e.fmt.width, e.wire, enable="in_valid"), e.fmt)
                for i, e in enumerate(elems)]

    def build(self) -> dict:
        g, m, b = self.graph, self.m, self.b
        inputs = [b.port(g.inputs[0])]
        x = b.input_elements(inputs[0])
        outputs = [b.port(n) for n in g.outputs]
        input_items = list(m.items)
        first_item = len(m.items)
        xq = self.latch(x, inputs[0]["name"])
        folded, constant, acc = self.channels(xq)
        fold = self.fold(folded, xq) if folded else None
        values = [ZERO] * int(np.prod(acc.shape))
        for idx, (fmt, bias) in constant.items():
            values[idx] = Elem(m.wire(self.wire(f"ch{idx}_bias"), fmt.width, _lit(bias, fmt.width),
                                      "no weight: the bias"), fmt)
        if fold:
            for idx, elem in fold["channels"].items():
                values[idx] = elem
        b.values[acc.name], b.ready[acc.name] = values, 0
        datapath = fold["latency"] if fold else 0
        epilogue_latency = 0
        final = self.node.outputs[0]
        if self.node.epilogue:
            self.comment("epilogue: every channel at once, into one register")
            first, *rest = self.node.epilogue
            tail = Node(self.node.name, first.op, first.inputs, self.node.outputs, first.attrs, rest,
                        self.node.onnx_nodes)
            epilogue_latency = b.guarded_layer(tail)["latency"]
        latency = datapath + epilogue_latency
        # out_valid: the last group's store (or in_valid, with nothing to fold) through the
        # store register and the epilogue's, not in_valid through the whole latency
        valid_from, valid_depth = (fold["done"], 1 + epilogue_latency) if fold else ("in_valid", epilogue_latency)
        items = m.items[first_item:]
        out_first = len(m.items)
        b.output_expression(outputs[0], b.values[final])
        output_items = m.items[out_first:]
        node = self.node
        terms = sum(1 for _, _, t, _ in folded for _, w in t if w)
        layer = {"name": self.base, "onnx": ", ".join(node.onnx_nodes) or node.name,
                 "ops": " + ".join(s.kind for s in node.stages()), "start": 0, "latency": latency,
                 "products": terms, "products_built": fold["multipliers"] if fold else 0, "items": items}
        info = {k: fold[k] for k in ("pe", "simd", "groups", "chunks", "phases", "rom_registered",
                                      "tree_latency", "multipliers")} if fold else \
            {"pe": 0, "simd": 0, "groups": 0, "chunks": 0, "phases": 0, "rom_registered": False,
             "tree_latency": 0, "multipliers": 0}
        return {"architecture": "folded", "model": b.model, "version": __version__, "source": b.source,
                "clock_ns": b.options.clock_ns, "levels_per_stage": self.lps,
                "csd_max_digits": b.options.csd_max_digits, "dsp_min_width": b.options.dsp_min_width,
                "latency": latency, "ii": self.reuse, "reuse": self.reuse, "fold": info,
                "valid_from": valid_from, "valid_depth": valid_depth,
                "inputs": inputs, "outputs": outputs, "tables": list(b.tables.values()),
                "input_items": input_items, "layers": [layer], "output_items": output_items,
                "names": dict(b.names.map)}

    def fold(self, folded: list, xq: list[Elem]) -> dict:
        """The phases, lanes, multipliers, trees and accumulators; the channels' elements."""
        m = self.m
        n_terms = len(folded[0][2])
        pe, simd = fold_shape(len(folded), n_terms, self.reuse)
        groups, chunks = -(-len(folded) // pe), -(-n_terms // simd)
        phases = groups * chunks
        # slots[j][s]: per phase p = g*chunks + k the input index and weight
        slots = [[_Slot([None] * phases, [0] * phases) for _ in range(simd)] for _ in range(pe)]
        lane_channels = [[] for _ in range(pe)]  # (group, channel index, fmt, bias)
        for c, (idx, fmt, terms, bias) in enumerate(folded):
            grp, j = divmod(c, pe)
            lane_channels[j].append((grp, idx, fmt, bias))
            for pos, (xi, w) in enumerate(terms):
                k, s = divmod(pos, simd)
                slots[j][s].inputs[grp * chunks + k] = xi
                slots[j][s].weights[grp * chunks + k] = w
        pb, kb, gb = _clog2(phases), _clog2(chunks), _clog2(groups)
        # per lane, the built slots: (s, common trailing zeros t, width, ROM values >> t)
        lanes = []
        for j in range(pe):
            built = []
            for s in range(simd):
                weights = slots[j][s].weights
                if any(weights):
                    t = min(_trailing_zeros(w) for w in weights if w)
                    values = [w >> t for w in weights]
                    built.append((s, t, signed_width(min(values), max(values)), values))
            lanes.append(built)
        biggest = max(sum(w for _, _, w, _ in built) for built in lanes)
        registered = phases >= ROM_BRAM_MIN_PHASES and phases * biggest >= ROM_BRAM_MIN_BITS
        self.control(phases, chunks, groups, pb, kb, gb)
        selects = {"chunk": (self.wire("chunk"), kb, chunks), "group": (self.wire("group"), gb, groups),
                   "phase": (self.wire("phase"), pb, phases)}
        muxes: dict[tuple, tuple[str, Fmt]] = {}
        lane_sums, multipliers = [], 0
        for j, built in enumerate(lanes):
            acc_w = max(fmt.width for _, _, fmt, _ in lane_channels[j])
            self.comment(f"lane {j}: channels {', '.join(str(idx) for _, idx, _, _ in lane_channels[j])}, "
                         f"{len(built)} multipliers, accumulator {acc_w} bits")
            word = self.lane_rom(j, phases, pb, built, registered)
            terms, offset = [], 0
            for s, t, width, values in built:
                weight = m.wire(self.wire(f"pe{j}_w{s}"), width, f"{word}[{offset + width - 1}:{offset}]")
                offset += width
                xs, xfmt = self.input_mux(slots[j][s].inputs, xq, selects, registered, muxes)
                # the mux's sign bit is a constant 0 that yosys sees when it maps DSPs: every input
                # unsigned, and at most two of them (a $mux; a wider $pmux is narrowed only after)
                read = {i for i in slots[j][s].inputs if i is not None}
                unsigned_x = len(read) <= 2 and not any(xq[i].fmt.signed for i in read)
                terms.append(self.product(j, s, xs, xfmt, weight, width, values, t, unsigned_x))
                multipliers += 1
            lane_sums.append(self.lane_sum(j, terms, acc_w))
        tree = max(t for _, _, t in lane_sums)
        delay = int(registered) + tree
        valid, first, last, group_d = self.delayed_controls(delay, chunks, groups, gb)
        stores = {grp: m.wire(self.wire(f"store{grp}"), 1, " && ".join(
            filter(None, [valid, last, f"{group_d} == {_lit(grp, gb)}" if groups > 1 else None])))
            for grp in range(groups)}
        channels = {}
        for j in range(pe):
            sum_wire, acc_w, t = lane_sums[j]
            if t < tree:
                self.b.pipe(sum_wire, f"{sum_wire}_al", acc_w, tree - t, f"u_{sum_wire}_al")
                sum_wire = f"{sum_wire}_al"
            channels.update(self.accumulate(j, lane_channels[j], sum_wire, acc_w, valid, first, group_d,
                                            gb, groups, chunks, stores))
        latency = phases + delay + 1
        return {"pe": pe, "simd": simd, "groups": groups, "chunks": chunks, "phases": phases,
                "rom_registered": registered, "tree_latency": tree, "multipliers": multipliers,
                "latency": latency, "channels": channels, "done": stores[groups - 1]}

    def control(self, phases: int, chunks: int, groups: int, pb: int, kb: int, gb: int) -> None:
        """run, phase, chunk, group: in_valid starts phase 0, one phase per cycle to the last."""
        m = self.m
        phase, chunk, group, run = (self.wire(s) for s in ("phase", "chunk", "group", "run"))
        self.comment(f"phases: in_valid starts phase 0; {phases} phases = {groups} groups x {chunks} chunks, "
                     f"one per cycle")
        self.declare(run, 1)
        self.declare(phase, pb)
        if chunks > 1:
            self.declare(chunk, kb)
        if groups > 1:
            self.declare(group, gb)
        step = f"in_valid || {run}"
        more = m.wire(self.wire("more"), 1, f"in_valid || ({run} && {phase} != {_lit(phases - 1, pb)})")
        self.register(run, 1, more, reset="1'b0", declared=True)
        nxt = m.wire(self.wire("phase_next"), pb, f"in_valid ? {_lit(0, pb)} : {phase} + {_lit(1, pb)}",
                     cost={"adders": [(pb, 0)]})
        self.register(phase, pb, nxt, enable=step, declared=True)
        if chunks > 1:
            wrap = m.wire(self.wire("chunk_last"), 1, f"{chunk} == {_lit(chunks - 1, kb)}")
            nxt = m.wire(self.wire("chunk_next"), kb,
                         f"(in_valid || {wrap}) ? {_lit(0, kb)} : {chunk} + {_lit(1, kb)}",
                         cost={"adders": [(kb, 0)]})
            self.register(chunk, kb, nxt, enable=step, declared=True)
        if groups > 1:
            advance = f"{self.wire('chunk_last')} ? {group} + {_lit(1, gb)} : {group}" if chunks > 1 \
                else f"{group} + {_lit(1, gb)}"
            nxt = m.wire(self.wire("group_next"), gb, f"in_valid ? {_lit(0, gb)} : {advance}",
                         cost={"adders": [(gb, 0)]})
            self.register(group, gb, nxt, enable=step, declared=True)

    def lane_rom(self, j: int, phases: int, pb: int, built: list, registered: bool) -> str:
        """The lane's weights per phase, one word: slot s at its offset, the lowest slot lowest."""
        width = sum(w for _, _, w, _ in built)
        layout = ", ".join(f"w{s} {w} bits" + (f" << {t}" if t else "") for s, t, w, _ in reversed(built))
        words = []
        for p in range(phases):
            parts = [_lit(values[p], w) for _, _, w, values in reversed(built)]
            words.append("{" + ", ".join(parts) + "}" if len(parts) > 1 else parts[0])
        entries = [(_lit(p, pb), word) for p, word in enumerate(words)] + [("default", _lit(0, width))]
        # for compiler.estimate: in LUTs, a bit that is one value in every phase is a constant and
        # bits that are the same function of the phase are one LUT; a block RAM holds every bit
        columns = set()
        for _, _, w, values in built:
            for bit in range(w):
                column = tuple((v >> bit) & 1 for v in values)
                if len(set(column)) > 1:
                    columns.add(column)
        name = self.wire(f"pe{j}_rom")
        if not registered:
            return self.case(name, width, self.wire("phase"), entries, f"weights by phase: {layout}",
                             {"rom": [pb, len(columns)]})
        # block RAM: banks of at most ROM_BANK_BITS (a RAMB18 is 36 bits wide at 512 entries, 18
        # at 1K), each read through its register, so the estimate counts what a RAMB18 holds
        packed = []
        for p in range(phases):
            word, offset = 0, 0
            for _, _, w, values in built:
                word |= (values[p] & ((1 << w) - 1)) << offset
                offset += w
            packed.append(word)
        banks = []
        for k, low in enumerate(range(0, width, ROM_BANK_BITS)):
            bw = min(ROM_BANK_BITS, width - low)
            bank = [(_lit(p, pb), _lit(word >> low, bw)) for p, word in enumerate(packed)] + [("default", _lit(0, bw))]
            rom = self.case(f"{name}{k}", bw, self.wire("phase"), bank,
                            f"weights by phase, bits {low + bw - 1}:{low} of {layout}", {"rom": [pb, bw]})
            banks.append(self.register(f"{rom}_q", bw, rom))
        if len(banks) == 1:
            return banks[0]
        return self.m.wire(f"{name}_q", width, "{" + ", ".join(reversed(banks)) + "}")

    def input_mux(self, inputs: list, xq: list[Elem], selects: dict, registered: bool,
                  muxes: dict) -> tuple[str, Fmt]:
        """The input a multiplier reads per phase (``inputs``: the element index, None where
        its weight is 0): one element, or a case over the chunk, the group or the phase (what
        it varies with), shared by every multiplier reading the same sequence; registered with
        the ROM."""
        chunks = selects["chunk"][2]
        known = [i for i in inputs if i is not None]
        fallback = known[0]
        by = None
        for kind, key in (("chunk", lambda p: p % chunks), ("group", lambda p: p // chunks)):
            table: dict[int, int] = {}
            if all(i is None or table.setdefault(key(p), i) == i for p, i in enumerate(inputs)):
                n = selects[kind][2]
                by = (kind, tuple(table.get(v, fallback) for v in range(n)))
                break
        if by is None:
            by = ("phase", tuple(fallback if i is None else i for i in inputs))
        if len(set(by[1])) == 1:
            by = ("wire", by[1][:1])
        if by in muxes:
            return muxes[by]
        cands = sorted(set(by[1]))
        lo = min(-(1 << (xq[i].fmt.width - 1)) if xq[i].fmt.signed else 0 for i in cands)
        hi = max((1 << (xq[i].fmt.width - xq[i].fmt.signed)) - 1 for i in cands)
        fmt = Fmt(signed_width(lo, hi), 0, True)
        if by[0] == "wire":
            e = xq[by[1][0]]
            wire = self.m.fit(e.wire, e.fmt.width, e.fmt.signed, fmt.width)
            wire = e.wire if wire == e.wire else self.m.derived(e.wire, fmt.width, wire)
        else:
            select, bits, _ = selects[by[0]]
            ext = {i: self.m.derived(xq[i].wire, fmt.width,
                                     self.m.fit(xq[i].wire, xq[i].fmt.width, xq[i].fmt.signed, fmt.width))
                   for i in cands}
            entries = [(_lit(v, bits), ext[i]) for v, i in enumerate(by[1])]
            entries[-1] = ("default", entries[-1][1])
            wire = self.case(self.wire(f"mux{len(muxes)}"), fmt.width, select, entries,
                             f"input by {by[0]}: " + ", ".join(xq[i].wire for i in by[1]),
                             {"muxes": [fmt.width] * max(1, math.ceil((len(cands) - 1) / 3))})
        if registered:  # with the weights; the latch takes the next input during the last phase's read
            wire = self.register(f"{wire}_q", fmt.width, wire)
        muxes[by] = (wire, fmt)
        return wire, fmt

    def product(self, j: int, s: int, x: str, xfmt: Fmt, weight: str, width: int, values: list[int],
                t: int, unsigned_x: bool) -> tuple[str, int, int]:
        """x times the slot's weight, exact: (wire, width, known-zero low bits).  ``unsigned_x``:
        every input the multiplier reads is unsigned (the mux's sign bit is a constant 0)."""
        xlo, xhi = -(1 << (xfmt.width - 1)), (1 << (xfmt.width - 1)) - 1
        ends = [a * w for a in (xlo, xhi) for w in (min(values), max(values))]
        pw = signed_width(min(ends), max(ends))
        a = self.m.fit(x, xfmt.width, True, pw)
        w = self.m.fit(weight, width, True, pw)
        if unsigned_x and min(values) >= 0:
            # both sign bits are constant 0: synthesis (yosys wreduce) multiplies unsigned
            # operands without them, so a weight of one bit (0 or 1 in every phase) is LUTs
            note = (xfmt.width - 1, max(values).bit_length(), pw, False)
        else:
            note = (xfmt.width, width, pw)
        prod = self.m.wire(self.wire(f"pe{j}_p{s}"), pw, f"$signed({a}) * $signed({w})",
                           f"x * w{s}, exact", cost={"muls": [note]})
        return prod, pw, t

    def lane_sum(self, j: int, terms: list, acc_w: int) -> tuple[str, int, int]:
        """The lane's products in accumulator units, summed: (wire, width, latency)."""
        widths = [pw + t for _, pw, t in terms]
        tw = min(max(widths), acc_w)
        wires = [self.m.placed(p, pw, True, t, tw, self.wire(f"pe{j}_term")) for p, pw, t in terms]
        name = self.wire(f"pe{j}_sum")
        if len(wires) == 1:
            return self.m.wire(name, acc_w, self.m.fit(wires[0], tw, True, acc_w)), acc_w, 0
        packed = self.m.wire(self.wire(f"pe{j}_terms"), len(wires) * tw, "{" + ", ".join(reversed(wires)) + "}")
        inst = f"u_{name}"
        self.m.instance("fg_adder_tree", inst,
                        {"N": len(wires), "W": tw, "SIGNED": 1, "OUT_W": acc_w, "LEVELS_PER_STAGE": self.lps},
                        {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                         "out_valid": f"{inst}_valid", "out_data": name},
                        {"out_valid": (f"{inst}_valid", 1), "out_data": (name, acc_w)},
                        cost={"zero_lsbs": [min(t, tw) for _, _, t in terms],
                              "term_widths": [min(w, tw) for w in widths], "constant_terms": 0})
        return name, acc_w, _tree_latency(len(wires), self.lps)

    def delayed_controls(self, delay: int, chunks: int, groups: int, gb: int) -> tuple[str, ...]:
        """run, first chunk, last chunk and group, delayed to the lane sums: (valid, first or
        None, last or None, group or None)."""
        fields = []  # (name, width, source), lowest first
        if chunks > 1:
            first = f"{self.wire('chunk')} == {_lit(0, _clog2(chunks))}"
            fields += [("first", 1, first), ("last", 1, self.wire("chunk_last"))]
        if groups > 1:
            fields.append(("group", gb, self.wire("group")))
        run = self.wire("run")
        if delay == 0:
            out = {name: src for name, _, src in fields}
            if chunks > 1:
                out["first"] = self.m.wire(self.wire("first"), 1, out["first"])
            return run, out.get("first"), out.get("last"), out.get("group")
        width = sum(w for _, w, _ in fields) or 1
        data = "{" + ", ".join(reversed([src for _, _, src in fields])) + "}" if fields else "1'b0"
        inst = f"u_{self.base}__controls"
        valid, bus = self.wire("sum_valid"), self.wire("sum_controls")
        self.m.instance("fg_pipe", inst, {"W": width, "DEPTH": delay},
                        {"clk": "clk", "rst": "rst", "in_valid": run, "in_data": data,
                         "out_valid": valid, "out_data": bus},
                        {"out_valid": (valid, 1), "out_data": (bus, width)})
        out, offset = {}, 0
        for name, w, _ in fields:
            out[name] = self.m.wire(self.wire(f"{name}_d"), w,
                                    f"{bus}[{offset}]" if w == 1 else f"{bus}[{offset + w - 1}:{offset}]")
            offset += w
        return valid, out.get("first"), out.get("last"), out.get("group")

    def accumulate(self, j: int, channels: list, total: str, acc_w: int, valid: str, first: str | None,
                   group: str | None, gb: int, groups: int, chunks: int, stores: dict) -> dict:
        """The lane accumulator (from the channel's bias at the first chunk) and the registers
        of its channels; returns {accumulator index: Elem}."""
        m = self.m
        biases = {grp: bias for grp, _, _, bias in channels}
        if not any(biases.values()):
            start = None
        elif groups == 1 or len(set(biases.get(g, 0) for g in range(groups))) == 1:
            start = _lit(biases[channels[0][0]], acc_w)
        else:
            entries = [(_lit(g, gb), _lit(biases.get(g, 0), acc_w)) for g in range(groups)]
            entries[-1] = ("default", entries[-1][1])
            start = self.case(self.wire(f"pe{j}_bias"), acc_w, group, entries, "bias by group",
                              {"rom": [gb, acc_w]})
        acc = self.wire(f"pe{j}_acc")
        if chunks > 1:
            self.declare(acc, acc_w)
            zero = _lit(0, acc_w)
            start = m.wire(self.wire(f"pe{j}_start"), acc_w, f"{first} ? {start or zero} : {acc}",
                           "the bias at a group's first chunk", cost={"muxes": [acc_w]})
        if start is None:
            nxt = total
        else:
            nxt = m.wire(self.wire(f"pe{j}_acc_next"), acc_w, f"{start} + {total}", cost={"adders": [(acc_w, 0)]})
        if chunks > 1:
            self.register(acc, acc_w, nxt, enable=valid, declared=True)
        out = {}
        for grp, idx, fmt, _ in channels:
            if groups == 1 and chunks > 1:
                value = m.derived(self.wire(f"ch{idx}"), fmt.width, m.fit(acc, acc_w, True, fmt.width))
            else:
                src = m.derived(self.wire(f"ch{idx}"), fmt.width, m.fit(nxt, acc_w, True, fmt.width))
                value = self.register(self.wire(f"ch{idx}_q"), fmt.width, src, enable=stores[grp])
            out[idx] = Elem(value, fmt)
        return out


def folded_core_context(graph: Graph, options: RTLOptions, source: dict, reuse: int) -> dict:
    """The folded core of a one-layer mini-graph (module docstring) for reuse factor
    ``reuse`` >= 2: a context for :func:`render_folded_core` (one module named
    ``rtl_top_name(graph)``, the parallel top's ports) and ``compiler.estimate.estimate_context``;
    ``latency`` (in_valid to out_valid), ``ii`` = ``reuse`` and ``fold`` (PE, SIMD, phases, ...).
    A failure of the builder itself is an RTLBackendError naming the layer, as the parallel
    builder's (``_Builder.guarded_layer``)."""
    core = _FoldedCore(graph, options, source, reuse)
    try:
        return core.build()
    except UserError:
        raise
    except Exception as err:
        reraise_interrupt(err)
        raise RTLBackendError(f"node {core.node.name!r}: the folded RTL core (reuse factor {reuse}) failed on it "
                              f"({type(err).__name__}: {err}); this is a finegrain defect, please report it with "
                              f"the model and plan; give the layer reuse factor 1 or compile with --backend hls "
                              f"meanwhile") from err


def render_folded_core(context: dict) -> str:
    """The SystemVerilog module of a :func:`folded_core_context`."""
    from . import TEMPLATES

    return template_environment(TEMPLATES).get_template("folded.sv.j2").render(**context)


__all__ = ["ROM_BANK_BITS", "ROM_BRAM_MIN_BITS", "ROM_BRAM_MIN_PHASES", "fold_shape", "folded_core_context",
           "render_folded_core"]
