"""The register placement of the RTL's adder graphs (compiler/backends/rtl/retime.py): its
latest-cycle bounds hold for every schedule the program allows, and with them HiGHS still
finds the fewest register bits, checked by enumerating every schedule of small graphs."""

from __future__ import annotations

import random

import highspy
import pytest

from compiler.adder_graph import build, solve
from compiler.backends.rtl import adders, retime
from compiler.timing import delay_model

DELAY = delay_model("xc7")
TAIL = (0.9, 16)  # a requantize after the outputs: 0.9 ns, its carry chain as wide as the widest sum


def small_graph(seed: int):
    """A random 3 x 4 constant matrix's adder graph over 8-bit signed inputs."""
    rng = random.Random(seed)
    rows = [[(i, rng.choice([-7, -5, -3, 1, 3, 5, 7, 11, 13]), 0) for i in range(4) if rng.random() < 0.8]
            for _ in range(3)]
    ranges = [(-128, 127)] * 4
    return build(solve(rows, 4, ranges=ranges), ranges)


def arrivals_of(graph, cycles: dict[int, int], inputs: list[float]) -> dict[int, float]:
    """Each value's least arrival in its cycle (the program's t_k at its lower bound)."""
    t: dict[int, float] = {}
    for k in retime._values(graph):
        if k < graph.n_inputs:
            t[k] = inputs[k]
            continue
        d = DELAY.adder(graph.nodes[k].terms)
        srcs = {retime.value(graph, s) for s, _, _ in graph.nodes[k].operands}
        t[k] = d + max([t[s] for s in srcs if s in t and cycles[s] == cycles[k]] + [0.0])
    return t


def schedules(graph, inputs: list[float], read_at: int, clock: float):
    """Every schedule the program allows (retime's docstring): adders in order, each in a cycle
    from its operands' latest to ``read_at``, its least arrival within its bound, an output in
    cycle ``read_at`` leaving room for the tail."""
    outputs = {retime.value(graph, o[0]) for o in graph.outputs if o is not None}
    order = [k for k in retime._values(graph) if k >= graph.n_inputs]
    cycles = {k: 0 for k in range(graph.n_inputs)}
    t = {k: inputs[k] for k in range(graph.n_inputs)}

    def place(i: int):
        if i == len(order):
            yield dict(cycles)
            return
        k = order[i]
        node = graph.nodes[k]
        d = DELAY.adder(node.terms)
        srcs = [s for s in {retime.value(graph, s) for s, _, _ in node.operands} if s in cycles]
        for c in range(max([cycles[s] for s in srcs] + [0]), read_at + 1):
            arrival = d + max([t[s] for s in srcs if cycles[s] == c] + [0.0])
            if arrival > max(d, DELAY.room(node.width, clock)) + 1e-9:
                continue
            if k in outputs and c == read_at and arrival > DELAY.room(max(node.width, TAIL[1]), clock) - TAIL[0] + 1e-9:
                continue
            cycles[k], t[k] = c, arrival
            yield from place(i + 1)
        cycles.pop(k, None)
        t.pop(k, None)
    yield from place(0)


def read_cycle(graph, asap, clock: float) -> int:
    """The cycle the outputs are read in, as the builder chooses it (adders.read_cycle): the
    latest output's, or the next when the tail does not fit after it."""
    ends = [asap[o[0]] for o in graph.outputs if o is not None]
    latency = max(c for c, _ in ends)
    arrival = max(t for c, t in ends if c == latency)
    return latency if DELAY.fits(arrival + TAIL[0], TAIL[1], clock) else latency + 1


def as_list(graph, cycles: dict[int, int]) -> list[int]:
    """Every node's cycle (wiring follows its operand), as min_register_cycles returns them."""
    out = [cycles.get(k, 0) for k in range(len(graph.nodes))]
    for k, node in enumerate(graph.nodes):
        if k >= graph.n_inputs and k not in cycles and node.operands:
            out[k] = out[node.operands[0][0]]
    return out


@pytest.mark.parametrize("clock", [2.2, 3.0, 4.0])  # 2.2: some adders do not fit even alone
@pytest.mark.parametrize("seed", range(6))
def test_bounds_and_optimum_against_every_schedule(seed, clock):
    graph = small_graph(seed)
    inputs = [0.0] * graph.n_inputs
    asap = adders._time_schedule(graph, inputs, DELAY, clock)
    read_at = read_cycle(graph, asap, clock)
    start = [c for c, _ in asap]
    adder_ids = [k for k in retime._values(graph) if k >= graph.n_inputs]
    assert len(adder_ids) >= 5 and read_at >= 1, "the graph is not a useful case"
    earliest = retime.earliest_cycles(graph, inputs, DELAY, clock)
    latest = retime.latest_cycles(graph, read_at, TAIL, DELAY, clock)
    best, count, chosen = None, 0, set()
    for cycles in schedules(graph, inputs, read_at, clock):
        count += 1
        for k in adder_ids:  # every feasible schedule lies within the bounds
            assert earliest[k] <= cycles[k] <= latest[k], (k, cycles[k], earliest[k], latest[k])
        bits = retime.register_bits(graph, as_list(graph, cycles), read_at)
        best = bits if best is None else min(best, bits)
        chosen.add(tuple(cycles[k] for k in adder_ids))
    assert tuple(start[k] for k in adder_ids) in chosen  # the builder's schedule is one of them
    found = retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, clock, start)
    assert tuple(found[k] for k in adder_ids) in chosen
    assert retime.register_bits(graph, found, read_at) == best


def test_no_slack_skips_the_program(monkeypatch):
    """When no adder can move, the as-soon-as-possible schedule comes back without HiGHS."""
    graph = small_graph(0)
    clock = 2.2
    inputs = [0.0] * graph.n_inputs
    asap = adders._time_schedule(graph, inputs, DELAY, clock)
    start = [c for c, _ in asap]
    read_at = read_cycle(graph, asap, clock)
    latest = retime.latest_cycles(graph, read_at, TAIL, DELAY, clock)
    monkeypatch.setattr(retime, "latest_cycles", lambda *a: {k: start[k] for k in latest})
    monkeypatch.setattr(retime, "_solver", lambda: pytest.fail("HiGHS ran on a schedule without slack"))
    assert retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, clock, start) == start


def improvable_case():
    """A small graph whose fewest-register schedule beats the as-soon-as-possible one."""
    for seed in range(6):
        graph = small_graph(seed)
        inputs = [0.0] * graph.n_inputs
        asap = adders._time_schedule(graph, inputs, DELAY, 3.0)
        start = [c for c, _ in asap]
        read_at = read_cycle(graph, asap, 3.0)
        found = retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, 3.0, start)
        if retime.register_bits(graph, found, read_at) < retime.register_bits(graph, start, read_at):
            return graph, inputs, read_at, start
    pytest.fail("no small graph where the program saves register bits")


def test_an_unproven_schedule_is_never_used(monkeypatch):
    """HiGHS stopped by its time limit: its incumbent would depend on the machine's speed, so
    the as-soon-as-possible schedule comes back (the RTL is a function of the model alone)."""
    graph, inputs, read_at, start = improvable_case()
    solver = retime._solver()

    class Stopped:
        def __getattr__(self, name):
            return getattr(solver, name)

        def getModelStatus(self):
            return highspy.HighsModelStatus.kTimeLimit

    monkeypatch.setattr(retime, "_solver", Stopped)
    assert retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, 3.0, start) == start


def test_too_many_movable_adders_skip_the_program(monkeypatch):
    graph, inputs, read_at, start = improvable_case()
    earliest = retime.earliest_cycles(graph, inputs, DELAY, 3.0)
    latest = retime.latest_cycles(graph, read_at, TAIL, DELAY, 3.0)
    movable = sum(latest[k] > earliest[k] for k in latest)
    monkeypatch.setattr(retime, "MAX_MOVABLE", movable)
    assert retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, 3.0, start) != start
    monkeypatch.setattr(retime, "MAX_MOVABLE", movable - 1)
    monkeypatch.setattr(retime, "_solver", lambda: pytest.fail("HiGHS ran on a graph over MAX_MOVABLE"))
    assert retime.min_register_cycles(graph, inputs, read_at, TAIL, DELAY, 3.0, start) == start
