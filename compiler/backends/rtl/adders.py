"""A layer's sums (DENSE, CONV, AVGPOOL) as shared adder graphs (compiler/adder_graph.py): the
RTL backend's default, ``RTLOptions.adder_graph``.

The graphs, one per instance (a dense row, a conv position), come from compiler/sums.py; a
product wider than ``dsp_min_width`` stays a ``*`` (emitter.product) and enters the graph as an
input.  With ``RTLOptions.ternary_chain`` (8: CARRY8, 4: CARRY4) each graph is folded
(adder_graph.ternary) and its three-term adders are ``fg_add3`` instances (:meth:`_Instance.adder3`);
nodes keep their levels.  By timing a three-term adder is slower than a two-term one, so a layer
keeps the most folds that take it no more cycles than none (:meth:`GraphSums.fold`).

Pipelining by timing (the default).  Each node gets a cycle of the layer and an arrival time in
ns within it, as soon as it can (compiler/timing.py's delay model of the part's family): a
layer input arrives at its net's fanout delay after the layer's register, an adder when its
latest operand computed in the same cycle has arrived plus one adder level; an adder whose
stage would then exceed ``clock_ns`` (the path's overhead, its levels and the ripple of its own
carry chain, the widest on its path) starts the next cycle instead, its operands read through
registers (shared by every adder that reads them in that cycle).  The layer's sums are read in
the cycle of its latest output, or the next when the layer's requantize and activation (the
builder's ``tail``) do not fit after it; ``GraphSums.emit`` returns that cycle and the latest
output's arrival in it.  At that latency, retime.py then chooses the cycles with the fewest
register bits (a mixed-integer program, HiGHS).

Pipelining by levels (``levels_per_stage`` given).  An adder at level d (adders on its longest
path from the layer's inputs) is computed in cycle ``max(0, ceil((d - P) / lps) - 1)`` of the
layer, ``lps`` the levels per stage and ``P = clog2(csd_max_digits)`` the levels the per-output
trees' CSD products took ahead of their first stage: the first stage holds ``P + lps`` levels,
every later one ``lps``.

The level budget of a pattern is its least depth + ``adder_slack``, or, by default, the levels
the per-output trees' stages held (``P + lps * ceil(clog2(N) / lps)`` for the widest sum of N
terms), so a layer takes no more cycles than with the trees.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...adder_graph import AdderGraph, least_depth, ternary
from ...ir import Node, Tensor
from ...timing import DelayModel
from ...sums import SumsError, element_format, layer_graphs, product_range
from .emitter import ZERO, Elem, Fmt, _literal, _trailing_zeros, signed_width
from .fusion import offset_format
from .options import RTLBackendError
from .retime import min_register_cycles


def _level_schedule(graph: AdderGraph, p: int, lps: int) -> list[tuple[int, float]]:
    """Pipelining by levels: each node's (cycle, 0.0)."""
    return [(max(0, (0 if node.level <= p else -(-(node.level - p) // lps)) - 1), 0.0) for node in graph.nodes]


def _start(sched: list[tuple[int, float]], node, cycle: int) -> float:
    """When an adder computed in ``cycle`` can start: its latest operand computed in that cycle
    has arrived (operands from an earlier cycle come from a register, at 0)."""
    return max(sched[src][1] if sched[src][0] == cycle else 0.0 for src, _, _ in node.operands)


def _time_schedule(graph: AdderGraph, arrivals: list[float], delay: DelayModel,
                   clock_ns: float) -> list[tuple[int, float]]:
    """Pipelining by timing: each node's (cycle, arrival ns in it); graph input k arrives at
    ``arrivals[k]`` in cycle 0."""
    out: list[tuple[int, float]] = []
    for k, node in enumerate(graph.nodes):
        if not node.operands:
            out.append((0, 0.0))
        elif k < graph.n_inputs:
            out.append((0, arrivals[k]))
        elif not node.is_adder:
            out.append(out[node.operands[0][0]])
        else:
            cycle = max(out[src][0] for src, _, _ in node.operands)
            t = _start(out, node, cycle) + delay.adder(node.terms)
            if not delay.fits(t, node.width, clock_ns):
                cycle, t = cycle + 1, delay.adder(node.terms)
            out.append((cycle, t))
    return out


def _arrivals(graph: AdderGraph, sched: list[tuple[int, float]], delay: DelayModel) -> list[tuple[int, float]]:
    """``sched``'s cycles with each adder's arrival recomputed (operands from an earlier cycle
    arrive from a register, at 0) and wiring following the node it shows."""
    out = list(sched)
    for k, node in enumerate(graph.nodes):
        if k < graph.n_inputs or not node.operands:
            continue
        if not node.is_adder:
            out[k] = out[node.operands[0][0]]
            continue
        cycle = out[k][0]
        out[k] = (cycle, _start(out, node, cycle) + delay.adder(node.terms))
    return out


def _ends(instances, schedules) -> list[tuple[int, float]]:
    """The (cycle, arrival) of every instance's graph outputs that are sums (not constants)."""
    return [sched[o[0]] for inst, sched in zip(instances, schedules) for o in inst.graph.outputs
            if o is not None and inst.graph.nodes[o[0]].operands]


def _loads(instances) -> dict[int, int]:
    """Input element -> the adders (and multipliers) of the layer that read it."""
    loads: dict[int, int] = {}
    for inst in instances:
        graph = inst.graph
        readers = [0] * len(graph.nodes)
        for k in range(len(graph.nodes) - 1, -1, -1):  # wiring nodes pass their readers on
            node = graph.nodes[k]
            if node.is_adder:
                for src, _, _ in node.operands:
                    readers[src] += 1
            elif node.operands:
                readers[node.operands[0][0]] += readers[k]
        for slot, (xi, m) in enumerate(inst.inputs):
            loads[xi] = loads.get(xi, 0) + (1 if m is not None else readers[slot])
    return loads


class GraphSums:
    """The adder-graph sums of one layer stage, emitted into builder ``b``'s module."""

    def __init__(self, b, stage: Node, x: list[Elem], out: Tensor, base: str, tail: tuple[float, int] = (0.0, 0),
                 arrival: float = 0.0):
        self.b, self.m, self.stage, self.x, self.out, self.base = b, b.m, stage, x, out, base
        self.arrival = arrival  # ns into the layer's first cycle the inputs arrive (a previous layer's hand-over)
        # each sum's rounding offset (fusion.py), added to its constant
        self.offsets = b.offsets.get(out.name)
        # the layer's logic after the sums that is to follow them in their last cycle (requantize,
        # activation): its delay in ns and its widest carry chain
        self.tail, self.tail_width = tail
        self.lps = b.options.levels
        self.p = max(b.options.csd_max_digits - 1, 0).bit_length()
        self.delay = b.options.delay

    def schedules(self, instances) -> list[list[tuple[int, float]]]:
        """Each instance's node schedule (cycle, arrival ns), by timing or by levels."""
        if self.delay is None:
            cache = {}
            return [cache.setdefault(id(inst.graph), _level_schedule(inst.graph, self.p, self.lps))
                    for inst in instances]
        loads = _loads(instances)
        product = self.delay.adder() * 2  # a `*` (wider than dsp_min_width): taken as two adder levels
        cache = {}
        out = []
        for inst in instances:
            arrivals = [self.arrival + self.delay.fanout(loads[xi]) + (product if m is not None else 0.0)
                        for xi, m in inst.inputs]
            key = (id(inst.graph), tuple(arrivals))
            if key not in cache:
                cache[key] = _time_schedule(inst.graph, arrivals + [0.0] * (inst.graph.n_inputs - len(arrivals)),
                                            self.delay, self.b.options.clock_ns)
            out.append(cache[key])
        return out

    def fold(self, instances) -> list:
        """The instances with their graphs' two-term adders folded into three-term ones
        (adder_graph.ternary).  A three-term adder is slower than a two-term one, so by timing
        the layer keeps the most folds that take it no more cycles than none: every fold; else
        the folds whose reader still meets its required time (the latest arrival that lets every
        path through it in its cycle, and the layer's requantize after the outputs, fit the
        clock); else only those that make no adder later.  A fold is never taken across a
        register (it would compute the folded sum again after it, from more bits)."""
        if self.delay is None:
            return self._folded(instances, [None] * len(instances), "all")
        schedules = self.schedules(instances)
        least = self.read_cycle(instances, schedules)[0]
        # folds on one path share its slack: the slack rule with less and less of it, then strict
        for rule in ("all", 0.0, 0.5, 1.0, 2.0, "strict"):
            folded = self._folded(instances, schedules, rule)
            if self.read_cycle(folded)[0] <= least:
                return folded
        return instances

    def _folded(self, instances, schedules, rule: str | float) -> list:
        folds: dict[int, AdderGraph] = {}
        for inst, sched in zip(instances, schedules):
            if id(inst.graph) not in folds:
                folds[id(inst.graph)] = ternary(inst.graph, None if rule == "all" else
                                                self._fold_rule(inst.graph, sched, rule))
        return [dataclasses.replace(inst, graph=folds[id(inst.graph)]) for inst in instances]

    def _fold_rule(self, graph: AdderGraph, sched: list[tuple[int, float]], rule: str | float):
        """keep(reader, folded) for ternary: the fold in one cycle, the reader's new arrival
        within its required time less ``rule`` adder levels (a number) or no later than before
        ("strict")."""
        delay, clock, nodes = self.delay, self.b.options.clock_ns, graph.nodes
        required = [delay.room(node.width, clock) for node in nodes]
        outputs = {o[0] for o in graph.outputs if o is not None}
        read_at = max((sched[o][0] for o in outputs), default=0)
        for k in range(len(nodes) - 1, graph.n_inputs - 1, -1):
            node = nodes[k]
            if k in outputs and sched[k][0] == read_at:
                required[k] = min(required[k], delay.room(max(node.width, self.tail_width), clock) - self.tail)
            for src, _, _ in node.operands:  # wiring and adders pass their required time to their operands
                if sched[src][0] == sched[k][0]:
                    required[src] = min(required[src], required[k] - (delay.adder(node.terms) if node.is_adder else 0))

        def keep(k: int, src: int) -> bool:
            cycle = sched[k][0]
            if sched[src][0] != cycle:
                return False
            ops = [s for s, _, _ in nodes[k].operands if s != src] + [s for s, _, _ in nodes[src].operands]
            start = max((sched[s][1] for s in ops if sched[s][0] == cycle), default=0.0)
            limit = sched[k][1] if rule == "strict" else required[k] - rule * delay.adder()
            return start + delay.adder(3) <= limit + 1e-9
        return keep

    def read_cycle(self, instances, schedules=None) -> tuple[int, float, list]:
        """By timing: the cycle the sums are read in (their latest, or the next when the layer's
        requantize and activation do not fit after them), their latest arrival in it, and the
        instances' as-soon-as-possible schedules (``schedules``, when given)."""
        schedules = schedules or self.schedules(instances)
        ends = _ends(instances, schedules)
        latency = max((c for c, _ in ends), default=0)
        arrival = max((t for c, t in ends if c == latency), default=0.0)
        if not self.delay.fits(arrival + self.tail, self.tail_width, self.b.options.clock_ns):
            latency, arrival = latency + 1, 0.0  # the requantize and activation get a cycle of their own
        return latency, arrival, schedules

    def fewer_registers(self, instances, schedules, read_at: int, arrival: float):
        """Each instance's schedule with the fewest register bits at the same latency
        (retime.min_register_cycles), its arrivals recomputed; and the outputs' latest arrival
        in cycle ``read_at``."""
        cache: dict = {}
        chosen = []
        for inst, sched in zip(instances, schedules):
            key = (id(inst.graph), id(sched))
            if key not in cache:
                arrivals = [t for _, t in sched[:inst.graph.n_inputs]]
                cycles = min_register_cycles(inst.graph, arrivals, read_at, (self.tail, self.tail_width), self.delay,
                                             self.b.options.clock_ns, [c for c, _ in sched])
                cache[key] = _arrivals(inst.graph, [(c, arrivals[k] if k < len(arrivals) else 0.0)
                                                    for k, c in enumerate(cycles)], self.delay)
            chosen.append(cache[key])
        return chosen, max([arrival] + [t for c, t in _ends(instances, chosen) if c == read_at])

    def emit(self) -> tuple[list[Elem], int, float]:
        """The sums' elements, the layer cycle they are read in, and the latest one's arrival
        in that cycle (ns after the cycle's registers; 0.0 when pipelined by levels)."""
        n = int(np.prod(self.out.shape))
        out_fmts = [element_format(self.out, i) for i in range(n)]
        if self.offsets:
            out_fmts = [offset_format(f, c) if f is not None and c else f for f, c in zip(out_fmts, self.offsets)]
        try:
            instances = layer_graphs(self.b.graph, self.stage, [e.fmt if e.wire is not None else None for e in self.x],
                                     out_fmts, self.b.options.dsp_min_width, self.level_budget, self.offsets)
        except SumsError as err:
            raise RTLBackendError(str(err)) from None
        self.m.product_uses += sum(inst.terms for inst in instances)
        if self.b.options.ternary_chain:  # three-term adders (rtl/fg_add3.sv): one fold per graph
            instances = self.fold(instances)
        if self.delay is None:  # the sums are registered after their last level
            schedules = self.schedules(instances)
            latency = max((c + (inst.graph.nodes[o[0]].level > self.p) for inst, sched in zip(instances, schedules)
                           for o in inst.graph.outputs if o is not None
                           for c in [sched[o[0]][0]]), default=0)
            arrival = 0.0
        else:
            latency, arrival, schedules = self.read_cycle(instances)
            schedules, arrival = self.fewer_registers(instances, schedules, latency, arrival)
            self.b.sums_critical = max([self.b.sums_critical] + [
                self.delay.stage_ns(t, node.width)
                for inst, sched in zip(instances, schedules) for node, (_, t) in zip(inst.graph.nodes, sched)
                if node.is_adder])
        stats = self.b.graph_sums = self.b.graph_sums or {"adders": 0, "levels": 0}
        stats["adders"] += sum(inst.graph.adders for inst in instances)
        stats["levels"] = max([stats["levels"]] + [inst.graph.depth for inst in instances])
        elems: list[Elem] = [ZERO] * n
        for k, inst in enumerate(instances):
            graph = inst.graph
            slot_elems = [self.x[xi] if m is None else self.multiplier(self.x[xi], m, f"{self.base}_g{k}_x{xi}")
                          for xi, m in inst.inputs]
            wires = _Instance(self, graph, schedules[k], slot_elems,
                              f"{self.base}_g{k}" if len(instances) > 1 else f"{self.base}_g")
            for o, idx in zip(graph.outputs, inst.outputs):
                fmt = out_fmts[idx]
                if fmt is None:
                    continue
                name = f"{self.base}__{idx}_sum"
                if o is None:
                    elems[idx] = Elem(self.m.wire(name, fmt.width, _literal(0, fmt.width)), fmt)
                    continue
                wire, width, signed = wires.at(o[0], latency)
                expr = self.m.placed(wire, width, signed, o[1], fmt.width, name) if wire else \
                    _literal(graph.nodes[o[0]].const << o[1], fmt.width)
                elems[idx] = Elem(self.m.wire(name, fmt.width, expr), fmt)
        return elems, latency, arrival

    def multiplier(self, e: Elem, m: int, base: str) -> Elem:
        """``x * m`` by a ``*`` (wider than dsp_min_width), exact, as an input of the graph."""
        lo, hi = product_range(e.fmt, m)
        width = signed_width(lo, hi)
        return Elem(self.m.product(e, m, 0, width, base), Fmt(width, 0, True))

    def level_budget(self, rows, biases) -> int:
        least = least_depth(rows, biases)
        slack = self.b.options.adder_slack
        if slack is not None:
            return least + slack
        widest = max((sum(1 for _, c, _ in r if c) + bool(bias) for r, bias in zip(rows, biases)), default=1)
        stages = -(-max(widest - 1, 0).bit_length() // self.lps)
        return max(least, self.p + self.lps * stages)


class _Instance:
    """One instance's nodes as wires: adders as ``assign``s, operands from earlier cycles
    through registers."""

    def __init__(self, sums: GraphSums, graph: AdderGraph, schedule: list[tuple[int, float]],
                 slot_elems: list[Elem], base: str):
        self.s, self.m, self.g, self.base = sums, sums.m, graph, base
        self.schedule = schedule
        self.wires: dict[int, tuple[str | None, int, bool, int]] = {}  # node -> (wire, width, signed, shift)
        self.delayed = sums.b.graph_delays  # wire -> the register holding it one cycle later
        for k, node in enumerate(graph.nodes):
            if not node.operands:
                self.wires[k] = (None, node.width, node.signed, 0)  # a constant
            elif k < graph.n_inputs:
                e = slot_elems[k]
                self.wires[k] = (e.wire, e.fmt.width, e.fmt.signed, 0)
            elif not node.is_adder:
                src, shift, _ = node.operands[0]
                w, width, signed, s0 = self.wires[src]
                self.wires[k] = (w, width, signed, s0 + shift)
            else:
                self.wires[k] = (self.adder(k, node), node.width, node.signed, 0)

    def cycle(self, k: int) -> int:
        return self.schedule[k][0]

    def at(self, k: int, cycle: int) -> tuple[str | None, int, bool]:
        """Node ``k`` as read in layer cycle ``cycle`` (wire None: a constant), shifted into place
        when it is wiring of another node."""
        wire, width, signed, shift = self.wires[k]
        if wire is None:
            return None, width, signed
        depth = cycle - self.cycle(k)
        for _ in range(depth):
            if wire not in self.delayed:
                self.delayed[wire] = self.m.register(f"{wire}z" if wire.endswith("_z") else f"{wire}_z", width, wire)
            wire = self.delayed[wire]
        if shift:
            wire = self.m.placed(wire, width, signed, shift, width + shift, self.base)
            width += shift
        return wire, width, signed

    def adder(self, k: int, node) -> str:
        if node.terms == 3:
            return self.adder3(k, node)
        c = self.cycle(k)
        width = node.width
        parts, zeros = [], []
        for i, (src, shift, negative) in enumerate(node.operands):
            wire, w, signed = self.at(src, c)
            placed = self.m.placed(wire, w, signed, shift, width, self.base)
            parts.append(("- " if negative else ("+ " if i else "")) + placed)
            zeros.append((shift + self.wires[src][3], negative))
        if node.const:
            parts.append(f"+ {_literal(node.const, width)}")
            zeros.append((_trailing_zeros(node.const), False))
        if parts[0].startswith("- ") and node.const:  # K - x: one carry chain (-x + K is a negation, then a sum)
            parts = [_literal(node.const, width), *parts[:-1]]
        elif parts[0].startswith("- "):
            parts[0] = "-" + parts[0][2:]
        # for compiler.estimate: below the larger known-zero run an added operand copies the
        # other one; a subtracted one has to be negated there, so only its own zeros are free
        if len(zeros) == 1:
            copies = zeros[0][0]
        else:
            (za, na), (zb, nb) = zeros
            copies = zb if nb else (za if na else max(za, zb))
        expr = " ".join(parts)
        return self.m.wire(f"{self.base}_n{k}", width, expr, f"level {node.level}",
                           cost={"adders": [(width, min(copies, width))]})

    def adder3(self, k: int, node) -> str:
        """A three-term node as an fg_add3 instance: ``a`` the positive term that starts lowest
        (its bits below the other two terms' lowest bit are copies), ``b`` and ``c`` the others
        from that bit up, negated in the LUTs where the node subtracts them."""
        c = self.cycle(k)
        width = node.width
        terms = []  # (lowest bit that can be non-zero, negative, wire or None, width, signed, shift)
        for src, shift, negative in node.operands:
            wire, w, signed = self.at(src, c)
            terms.append((shift + self.wires[src][3], negative, wire, w, signed, shift))
        if node.const:
            terms.append((_trailing_zeros(node.const), False, None, 0, True, 0))
        a = min((t for t in terms if not t[1]), key=lambda t: t[0])
        b, cc = [t for t in terms if t is not a]
        lo = min(b[0], cc[0], width - 1)

        def bits(term, low: int, to: int) -> str:
            """The term's bits from ``low`` up, ``to`` of them (modulo 2**to)."""
            _, _, wire, w, signed, shift = term
            if wire is None:
                return self.m.derived(self.base, to, _literal(node.const >> low, to))
            if shift < low:  # the term's own low bits below `low` are known zeros
                drop = low - shift
                wire = self.m.derived(self.base, w - drop, f"{wire}[{w - 1}:{drop}]")
                w, shift = w - drop, 0
            else:
                shift -= low
            return self.m.placed(wire, w, signed, shift, to, self.base)

        name = f"{self.base}_n{k}"
        self.m.instance("fg_add3", f"u_{name}",
                        {"W": width, "LO": lo, "NEG_B": int(b[1]), "NEG_C": int(cc[1]),
                         "CHAIN": self.s.b.options.ternary_chain},
                        {"a": bits(a, 0, width), "b": bits(b, lo, width - lo), "c": bits(cc, lo, width - lo),
                         "y": name},
                        {"y": (name, width)}, comment=f"level {node.level}")
        return name
