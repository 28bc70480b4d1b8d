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
* ``overhead + t_k + carry_bit * width_k <= clock``: its stage fits;
* an output: ``L_k >= read_at``, and when computed in cycle ``read_at`` (``c_k = read_at``)
  its arrival leaves room for the layer's requantize and activation (``tail``).

Minimise ``sum_k width_k (L_k - c_k)``.  The arrivals the builder uses are recomputed from the
chosen cycles (adders._arrivals), the least that satisfy the constraints.  On the jet tagger at
5 ns the program proves the as-soon-as-possible schedule optimal; at 2.5 ns it saves 17 to 33% of
the graphs' register bits (bench/RESULTS.md).
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
TIME_LIMIT_S = 10.0  # per graph: HiGHS's best schedule found by then (never worse than the start)


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


def min_register_cycles(graph: AdderGraph, arrivals: list[float], read_at: int, tail: tuple[float, int],
                        delay: DelayModel, clock_ns: float, start: list[int]) -> list[int]:
    """Each node's cycle with the fewest register bits (``start``, the as-soon-as-possible
    cycles, when the graph is too large or HiGHS finds nothing better in TIME_LIMIT_S)."""
    import highspy

    nodes = graph.nodes
    vals = _values(graph)
    if len(nodes) > MAX_NODES or read_at == 0:
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
            upper[i] = read_at
            lower[n + i] = delay.adder(node.terms)
            upper[n + i] = max(lower[n + i], delay.room(node.width, clock_ns))
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
    if not solution.value_valid:
        return start
    found = [int(round(solution.col_value[col[k]])) if k in col else 0 for k in range(len(nodes))]
    for k, node in enumerate(nodes):  # wiring and constants follow their operand
        if k >= graph.n_inputs and k not in col and node.operands:
            found[k] = found[node.operands[0][0]]
    if register_bits(graph, found, read_at) < register_bits(graph, start, read_at):
        return found
    return start
