"""The fewest register bits for an adder graph's pipeline (issue 15): which cycle each adder is
computed in, given the layer's latency and the clock, as a mixed-integer program solved by
HiGHS (highspy).

The as-soon-as-possible schedule (adders._time_schedule) fixes the latency: the graph's
outputs are read in cycle ``read_at``.  Within it, an adder may be computed later than as soon as
possible; each value is held in registers from its cycle to its last reader's, which costs its
width per cycle.  Variables, per value k (a graph input or an adder): its cycle ``c_k``
(integer; 0 for inputs), its arrival ``t_k`` in ns within that cycle, and the last cycle it is
read in ``L_k``.  Constraints, for adder k reading value s with delay ``d_k`` (one adder level):

* ``c_k >= c_s`` and ``L_s >= c_k``;
* ``t_k >= t_s + d_k - M (c_k - c_s)``: chained in one cycle, it starts after its operand;
  read through a register, it starts at the cycle's start (``t_k >= d_k``);
* ``overhead + t_k + carry_bit * width_k <= clock``: its stage fits (an adder that does not
  fit even alone, ``t_k = d_k``, is let through);
* an output: ``L_k >= read_at``, and when computed in cycle ``read_at`` (``c_k = read_at``)
  its arrival leaves room for the layer's requantize and activation (``tail``).

Minimise ``sum_k width_k (L_k - c_k)``.  Each ``c_k`` is bounded by its earliest and latest
cycle under these constraints (:func:`earliest_cycles`, :func:`latest_cycles`): bounds every
feasible schedule keeps, so the optimum is the same, found in a third of the time on the jet
tagger's largest graphs, and no program at all when no adder can move.

The schedule is a function of the graph alone, never of the machine's speed: it is HiGHS's proven
optimum or the as-soon-as-possible one.  A program with more than MAX_MOVABLE adders that can move
is not built (on the MNIST CNN's stream tail, 2,827 of them, HiGHS had not improved on the start
after 10 s, a gap of 62%, and its best by the time limit would depend on the CPU); one that stops
at TIME_LIMIT_S unproven keeps the start too.  The jet tagger's largest graphs (about 740 movable
adders at 2.5 ns) are solved to optimality in about a second.  The arrivals the builder
uses are recomputed from the chosen cycles (adders._arrivals), the least that satisfy the
constraints.  On the jet tagger the program saves 23% of the graphs' register bits at 5 ns and
17% at 2.5 ns against the as-soon-as-possible schedule; tests/test_retime.py checks the bounds
and the optimum against every schedule of small graphs.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

import numpy as np

from ...adder_graph import AdderGraph
from ...timing import DelayModel

MAX_NODES = 4000  # larger graphs keep the as-soon-as-possible schedule
MAX_MOVABLE = 1500  # so do graphs with more adders whose cycle can change (module docstring)
TIME_LIMIT_S = 10.0  # per graph, a safeguard: a program not solved to optimality by then keeps the start


@cache
def _solver():
    """One HiGHS instance for the process, its banner (printed by the C++ constructor to file
    descriptor 1, whatever output_flag says) kept out of the command's output."""
    import highspy

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
        libc.fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", TIME_LIMIT_S)
    return h


def value(graph: AdderGraph, k: int) -> int:
    """The node whose wire node ``k`` is (a wiring node is a shifted view of its operand)."""
    nodes = graph.nodes
    while k >= graph.n_inputs and nodes[k].operands and not nodes[k].is_adder:
        k = nodes[k].operands[0][0]
    return k


def readers(graph: AdderGraph) -> dict[int, list[int]]:
    """Value node -> the adders that read it (through wiring)."""
    out: dict[int, list[int]] = {}
    for k, node in enumerate(graph.nodes):
        if node.is_adder:
            for src in {value(graph, src) for src, _, _ in node.operands}:
                out.setdefault(src, []).append(k)
    return out


def _values(graph: AdderGraph) -> list[int]:
    """The nodes that are wires: graph inputs and adders (not constants, not wiring)."""
    return [k for k, node in enumerate(graph.nodes) if k < graph.n_inputs or node.is_adder]


def register_bits(graph: AdderGraph, cycles: list[int], read_at: int) -> int:
    """The register bits a schedule costs: each value held from its cycle to its last reader's
    (the graph's outputs are read in cycle ``read_at``)."""
    read = readers(graph)
    outputs = {value(graph, o[0]) for o in graph.outputs if o is not None}
    bits = 0
    for k in _values(graph):
        last = max([cycles[r] for r in read.get(k, [])] + [read_at if k in outputs else -1])
        bits += graph.nodes[k].width * max(0, last - cycles[k])
    return bits


def _most(delay: DelayModel, node, clock_ns: float) -> float:
    """An adder's latest arrival in the program: its stage's room, or its own delay when it does
    not fit even alone."""
    return max(delay.adder(node.terms), delay.room(node.width, clock_ns))


def earliest_cycles(graph: AdderGraph, arrivals: list[float], delay: DelayModel, clock_ns: float) -> dict[int, int]:
    """Each adder's earliest possible cycle under the program's constraints: in its operands'
    latest cycle, chained after those computed in it, or a cycle later when that arrives too
    late.  (The builder's as-soon-as-possible schedule also moves an adder that does not fit even
    alone; the program does not.)"""
    nodes = graph.nodes
    bound: dict[int, tuple[int, float]] = {k: (0, arrivals[k]) for k in range(graph.n_inputs)}
    for k in _values(graph):
        if k < graph.n_inputs:
            continue
        d = delay.adder(nodes[k].terms)
        srcs = [bound[s] for s in {value(graph, s) for s, _, _ in nodes[k].operands} if s in bound]
        cycle = max((c for c, _ in srcs), default=0)
        t = d + max((a for c, a in srcs if c == cycle), default=0.0)
        bound[k] = (cycle, t) if t <= _most(delay, nodes[k], clock_ns) + 1e-9 else (cycle + 1, d)
    return {k: cycle for k, (cycle, _) in bound.items() if k >= graph.n_inputs}


def latest_cycles(graph: AdderGraph, read_at: int, tail: tuple[float, int], delay: DelayModel,
                  clock_ns: float) -> dict[int, int]:
    """Each adder's latest possible cycle under the program's constraints (the mirror of
    :func:`earliest_cycles`): walking back from the outputs, an adder is at latest in its
    reader's latest cycle with the reader's latest arrival less the reader's delay, or a cycle
    earlier when that leaves it no time.  Bounds every feasible schedule keeps, so adding them to
    the program leaves its optimum as it was and spares HiGHS most of its search."""
    nodes = graph.nodes
    read = readers(graph)
    outputs = {value(graph, o[0]) for o in graph.outputs if o is not None}
    bound: dict[int, tuple[int, float]] = {}
    for k in reversed(_values(graph)):
        if k < graph.n_inputs:
            continue
        d = delay.adder(nodes[k].terms)
        most = _most(delay, nodes[k], clock_ns)
        best = (read_at, most)
        if k in outputs:
            room = delay.room(max(nodes[k].width, tail[1]), clock_ns) - tail[0]
            best = min(best, (read_at, room) if room >= d - 1e-9 else (read_at - 1, most))
        for r in read.get(k, []):
            cycle, arrival = bound[r]
            latest = arrival - delay.adder(nodes[r].terms)
            best = min(best, (cycle, latest) if latest >= d - 1e-9 else (cycle - 1, most))
        bound[k] = (best[0], min(best[1], most))
    return {k: cycle for k, (cycle, _) in bound.items()}


def min_register_cycles(graph: AdderGraph, arrivals: list[float], read_at: int, tail: tuple[float, int],
                        delay: DelayModel, clock_ns: float, start: list[int]) -> list[int]:
    """Each node's cycle with the fewest register bits (``start``, the as-soon-as-possible
    cycles, when the graph is too large or HiGHS does not prove an optimum in TIME_LIMIT_S)."""
    import highspy

    nodes = graph.nodes
    vals = _values(graph)
    if len(nodes) > MAX_NODES or read_at == 0:
        return start
    earliest = earliest_cycles(graph, arrivals, delay, clock_ns)
    latest = latest_cycles(graph, read_at, tail, delay, clock_ns)
    if not all(earliest[k] <= start[k] <= latest[k] for k in latest):
        earliest, latest = {}, {}  # ``start`` breaks the program's constraints: HiGHS decides
    elif all(latest[k] == start[k] for k in latest):
        return start  # no adder can move: the as-soon-as-possible schedule is the only one
    if sum(latest[k] > earliest[k] for k in latest) > MAX_MOVABLE:
        return start
    col = {k: i for i, k in enumerate(vals)}
    n = len(vals)
    big = 2.0 * clock_ns + 1.0
    inf = highspy.kHighsInf
    # columns: c (n), t (n), L (n)
    lower, upper, cost = np.zeros(3 * n), np.zeros(3 * n), np.zeros(3 * n)
    for i, k in enumerate(vals):
        node = nodes[k]
        if k < graph.n_inputs:
            lower[n + i] = upper[n + i] = arrivals[k]
        else:
            lower[i], upper[i] = (earliest[k], latest[k]) if latest else (0, read_at)
            lower[n + i] = delay.adder(node.terms)
            upper[n + i] = _most(delay, node, clock_ns)
        lower[2 * n + i], upper[2 * n + i] = 0, read_at
        cost[i], cost[2 * n + i] = -node.width, node.width
    rows: list[tuple[float, float, list[int], list[float]]] = []
    outputs = {value(graph, o[0]) for o in graph.outputs if o is not None}
    for i, k in enumerate(vals):
        rows.append((0.0, inf, [2 * n + i, i], [1.0, -1.0]))  # L_k >= c_k
        if k in outputs:
            rows.append((read_at, inf, [2 * n + i], [1.0]))
            if k >= graph.n_inputs:
                room = delay.room(max(nodes[k].width, tail[1]), clock_ns) - tail[0]
                rows.append((-inf, room + big * read_at, [n + i, i], [1.0, big]))
        node = nodes[k]
        if not node.is_adder:
            continue
        for s in {value(graph, src) for src, _, _ in node.operands}:
            if s not in col:
                continue  # a constant
            j = col[s]
            rows.append((0.0, inf, [i, j], [1.0, -1.0]))
            rows.append((0.0, inf, [2 * n + j, i], [1.0, -1.0]))
            rows.append((delay.adder(node.terms), inf, [n + i, n + j, i, j], [1.0, -1.0, big, -big]))
    h = _solver()
    h.clearModel()
    h.addVars(3 * n, lower, upper)
    h.changeColsCost(3 * n, np.arange(3 * n, dtype=np.int32), cost)
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * n))
    starts, index, coef = [], [], []
    for _, _, cols, vals_ in rows:
        starts.append(len(index))
        index += cols
        coef += vals_
    h.addRows(len(rows), np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), len(index),
              np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32), np.array(coef))
    h.run()
    solution = h.getSolution()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal or not solution.value_valid:
        return start  # stopped by the time limit: its incumbent would depend on the machine
    found = [int(round(solution.col_value[col[k]])) if k in col else 0 for k in range(len(nodes))]
    for k, node in enumerate(nodes):  # wiring and constants follow their operand
        if k >= graph.n_inputs and k not in col and node.operands:
            found[k] = found[node.operands[0][0]]
    if register_bits(graph, found, read_at) < register_bits(graph, start, read_at):
        return found
    return start
