"""Cycle-exact Python model of stream engines joined as a chain or a graph, over the models of
the stream library's modules (stream_library.py).

An *engine* is ``[Pad] -> Window -> core -> Fifo``, ``Collect -> core -> Fifo`` or (a layer
that works on one beat at a time) ``core -> Fifo``; the core is a fixed-latency pipeline that
never stalls (:class:`Pipe`; the window's or collector's II keeps a folded core's pace; a
global pool's fg_stream_reduce has the timing of a window as large as the frame).  :class:`Chain`
joins engines (engine i's FIFO feeds engine i + 1) and :func:`simulate` runs images through
one, giving the cycles of every input and output transfer: what the stream builder reads
latency and II from, and what the RTL tests compare Verilator traces with.  :class:`Graph`
joins engines as a directed acyclic graph (a stream read by several engines forks; an engine
reading several streams joins them) and :func:`skip_depths` sizes the skip FIFOs of its forks.

A run skips the cycles in which nothing can move: after a cycle whose clock edge only counted
down (the cooldowns of folded windows and collectors, tokens inside the cores' pipelines),
every cycle until the first countdown runs out is the same cycle again as far as the
handshakes go, so the run advances the countdowns over them at once.  A folded layer's
wait between issues costs a few simulated cycles instead of its reuse factor's (compile
times before and after: bench/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .stream_library import Collect, Fifo, Pad, Pipe, Window, _Module

UNBOUNDED = 1 << 40  # a FIFO depth that never refuses a credit: to measure what a FIFO must hold


class Stuck(RuntimeError):
    """The engines are stuck: nothing can move again (a deadlock, seen at once while the ports'
    handshakes are fixed), or nothing moved for the watchdog's simulated cycles."""


class Engine:
    """One layer on streams: its modules, built from a dict {"pad": (H, WD, PT, PB, PL, PR) |
    None, "window": (H, WD, KH, KW, SH, SW, DH, DW, II) | None, "collect": N | (N, II) | None,
    "latency": L, "fifo_depth": D}.  With neither window nor collector the engine has no
    front module: in_ready = credit and the core starts (and the FIFO issues) on
    in_valid && credit, so a token holds its slot for L + 1 cycles (DEPTH = L + 2 keeps pace).

    The depth rule keeps an engine at one token per cycle on its own; a slower or bursty
    consumer downstream (a folded or strided window) may need a few more slots to keep the
    engines before it at full rate: simulate() with deeper FIFOs shows how many."""

    def __init__(self, spec: Mapping[str, Any], core: Callable[[Any], Any] = lambda data: data):
        pad, window, collect = spec.get("pad"), spec.get("window"), spec.get("collect")
        if collect is not None and (pad is not None or window is not None):
            raise ValueError(f"a stream engine has a window (and pad) or a collector, not both: {dict(spec)}")
        if pad is not None and window is None:
            raise ValueError(f"a stream engine's pad must feed a window: {dict(spec)}")
        self.pad = Pad(*pad) if pad is not None else None
        self.window = Window(*window) if window is not None else None
        if isinstance(collect, int):
            collect = (collect,)
        self.collect = Collect(*collect) if collect is not None else None
        if self.pad is not None and (self.pad.rows, self.pad.columns) != (self.window.height, self.window.width):
            raise ValueError(f"the pad's {self.pad.rows}x{self.pad.columns} frame is not the window's "
                             f"{self.window.height}x{self.window.width}: {dict(spec)}")
        self.core = Pipe(spec["latency"], core)
        self.fifo = Fifo(spec["fifo_depth"])

    def modules(self) -> list[_Module]:
        return [m for m in (self.pad, self.window, self.collect, self.core, self.fifo) if m is not None]

    def state(self) -> tuple:
        return tuple(m.state() for m in self.modules())

    def beats_out(self, beats_in: int) -> int:
        """Output beats for ``beats_in`` input beats (one image); ValueError if they do not fit."""
        if self.pad is not None:
            if beats_in != self.pad.height * self.pad.width:
                raise ValueError(f"{beats_in} beats enter a {self.pad.height}x{self.pad.width} pad")
            beats_in = self.pad.rows * self.pad.columns
        if self.window is not None:
            if beats_in != self.window.height * self.window.width:
                raise ValueError(f"{beats_in} beats enter a {self.window.height}x{self.window.width} window")
            return self.window.out_height * self.window.out_width
        if self.collect is not None:
            if beats_in % self.collect.beats:
                raise ValueError(f"{beats_in} beats enter a collector of {self.collect.beats}")
            return beats_in // self.collect.beats
        return beats_in

    def in_ready(self) -> bool:
        """This cycle's in_ready (it never depends on in_valid)."""
        credit = self.fifo.credit
        if self.window is not None:
            return self.window.in_ready(credit) and (self.pad is None or not self.pad.at_pad)
        if self.collect is not None:
            return not self.collect.full or (credit and self.collect.cooldown == 0)
        return credit

    def evaluate(self, in_valid, in_data) -> tuple[bool, dict[str, dict]]:
        """This cycle's in_ready and every module's inputs, given the beat offered; the FIFO's
        out_ready is filled in by the caller (the next engine's in_ready or the port's)."""
        credit = self.fifo.credit
        inputs: dict[str, dict] = {}
        if self.window is not None:
            valid, data = in_valid, in_data
            in_ready = self.window.in_ready(credit)
            if self.pad is not None:
                inputs["pad"] = {"in_valid": in_valid, "in_data": in_data, "out_ready": in_ready}
                out = self.pad.outputs(**inputs["pad"])
                in_ready, valid, data = out["in_ready"], out["out_valid"], out["out_data"]
            inputs["window"] = {"in_valid": valid, "in_data": data, "credit": credit}
            out = self.window.outputs(**inputs["window"])
            issue, core_valid, core_data = out["issue"], out["out_valid"], out["out_data"]
        elif self.collect is not None:
            inputs["collect"] = {"in_valid": in_valid, "in_data": in_data, "out_ready": credit}
            out = self.collect.outputs(**inputs["collect"])
            in_ready = out["in_ready"]
            issue = core_valid = out["out_valid"] and credit
            core_data = out["out_data"]
        else:
            in_ready = credit
            issue = core_valid = bool(in_valid and credit)
            core_data = in_data
        inputs["core"] = {"in_valid": core_valid, "in_data": core_data}
        out = self.core.outputs(**inputs["core"])
        inputs["fifo"] = {"issue": issue, "in_valid": out["out_valid"], "in_data": out["out_data"]}
        return in_ready, inputs

    def clock(self, inputs: dict[str, dict], rst: bool = False) -> None:
        for name in ("pad", "window", "collect", "core", "fifo"):
            module = getattr(self, name)
            if module is not None:
                module.clock(rst, **inputs[name])


class Chain:
    """Engines in a row: the input port feeds engine 0, engine i's FIFO feeds engine i + 1,
    the last FIFO is the output port.  ``cores[i]`` maps a core's input data to its output
    data (default: unchanged, so a window's taps come out as they went in)."""

    def __init__(self, engines: Sequence[Mapping[str, Any]], cores: Sequence[Callable] | None = None):
        if not engines:
            raise ValueError("a stream chain needs at least one engine")
        cores = cores or [lambda data: data] * len(engines)
        self.engines = [Engine(spec, core) for spec, core in zip(engines, cores, strict=True)]

    def beats_out(self, beats_in: int) -> int:
        for engine in self.engines:
            beats_in = engine.beats_out(beats_in)
        return beats_in

    def state(self) -> tuple:
        return tuple(engine.state() for engine in self.engines)

    def modules(self) -> list:
        return [m for engine in self.engines for m in engine.modules()]

    def step(self, in_valid, in_data, out_ready, rst: bool = False) -> dict[str, Any]:
        """One cycle of the chain: the ports' outputs (in_ready, out_valid, out_data)."""
        valid, data = in_valid, in_data
        ready_in = None
        cycle = []
        for engine in self.engines:
            ready, inputs = engine.evaluate(valid, data)
            if cycle:
                cycle[-1][1]["fifo"]["out_ready"] = ready
            else:
                ready_in = ready
            cycle.append((engine, inputs))
            out = engine.fifo.outputs()
            valid, data = out["out_valid"], out["out_data"]
        cycle[-1][1]["fifo"]["out_ready"] = out_ready
        for engine, inputs in cycle:
            engine.clock(inputs, rst)
        return {"in_ready": ready_in, "out_valid": valid, "out_data": data}


PORT = "input"  # the name a graph engine's "inputs" give the input port


class Graph:
    """Engines joined as a directed acyclic graph: each engine spec (as in :class:`Engine`)
    has a "name" and "inputs", the names of the engines (or :data:`PORT`) whose streams it
    reads, in the order its join packs them.

    * A stream read by several engines goes through a *fork*: a beat transfers when it is
      valid and every reader is ready, to every reader at once.  A reader's ready must not
      depend on its valid (true of every engine with one input: its window's or FIFO's
      credit), so a fork's readers are engines with one input (the stream builder puts a
      skip FIFO, an engine of latency 0, on each).
    * An engine with several inputs starts with a *join*: one beat (the tuple of the inputs'
      beats) when every input has one; input j is taken when the engine is ready and every
      other input is valid.
    The engine no other engine reads is the output port.  ``cores`` (name -> function) map a
    core's input data to its output data (default: unchanged).
    """

    def __init__(self, engines: Sequence[Mapping[str, Any]], cores: Mapping[str, Callable] | None = None):
        if not engines:
            raise ValueError("a stream graph needs at least one engine")
        cores = cores or {}
        self.specs = {spec["name"]: spec for spec in engines}
        if PORT in self.specs or len(self.specs) != len(engines):
            raise ValueError(f"engine names must be unique and not {PORT!r}: {[e['name'] for e in engines]}")
        self.engines = {name: Engine(spec, cores.get(name, lambda data: data)) for name, spec in self.specs.items()}
        self.readers: dict[str, list[str]] = {PORT: []}
        for name, spec in self.specs.items():
            if not spec["inputs"]:
                raise ValueError(f"engine {name!r} reads no stream")
            for source in spec["inputs"]:
                if source not in self.readers:
                    raise ValueError(f"engine {name!r} reads {source!r}, which is not an earlier engine")
                self.readers[source].append(name)
            self.readers[name] = []
        sinks = [name for name in self.specs if not self.readers[name]]
        if len(sinks) != 1 or not self.readers[PORT]:
            raise ValueError(f"a stream graph reads the input port and has one output engine, not {sinks}")
        self.output = sinks[0]
        for source, readers in self.readers.items():
            joins = [r for r in readers if len(self.specs[r]["inputs"]) > 1]
            if len(readers) > 1 and joins:
                raise ValueError(f"the fork of {source!r} feeds the join of {joins}: put a skip FIFO between")

    def fifo(self, name: str) -> Fifo:
        return self.engines[name].fifo

    def state(self) -> tuple:
        return tuple(engine.state() for engine in self.engines.values())

    def modules(self) -> list:
        return [m for engine in self.engines.values() for m in engine.modules()]

    def beats_out(self, beats_in: int) -> int:
        beats = {PORT: beats_in}
        for name, spec in self.specs.items():
            ins = {beats[source] for source in spec["inputs"]}
            if len(ins) != 1:
                raise ValueError(f"engine {name!r} joins streams of {sorted(ins)} beats")
            beats[name] = self.engines[name].beats_out(ins.pop())
        return beats[self.output]

    def step(self, in_valid, in_data, out_ready, rst: bool = False) -> dict[str, Any]:
        """One cycle of the graph: the ports' outputs (in_ready, out_valid, out_data)."""
        offered = {PORT: (in_valid, in_data)}
        for name, engine in self.engines.items():
            out = engine.fifo.outputs()
            offered[name] = (out["out_valid"], out["out_data"])
        ready = {name: engine.in_ready() for name, engine in self.engines.items()}
        taken: dict[str, bool] = {}  # source -> whether its readers take its beat (its out_ready)
        into: dict[str, tuple] = {}  # engine -> (valid, data) entering it
        for source, readers in self.readers.items():
            valid, data = offered[source]
            if len(readers) > 1:  # the fork
                every = all(ready[r] for r in readers)
                taken[source] = every
                for r in readers:
                    into[r] = (bool(valid and every), data)
        cycle = []
        for name, engine in self.engines.items():
            sources = self.specs[name]["inputs"]
            if len(sources) == 1:
                valid, data = into.get(name, offered[sources[0]])
                if len(self.readers[sources[0]]) == 1:
                    taken[sources[0]] = ready[name]
            else:  # the join
                valids = [offered[s][0] for s in sources]
                valid, data = all(valids), tuple(offered[s][1] for s in sources)
                for j, s in enumerate(sources):
                    taken[s] = bool(ready[name] and all(v for k, v in enumerate(valids) if k != j))
            in_ready, inputs = engine.evaluate(valid, data)
            cycle.append((engine, inputs))
        taken[self.output] = out_ready
        for (engine, inputs), name in zip(cycle, self.engines):
            inputs["fifo"]["out_ready"] = taken[name]
            engine.clock(inputs, rst)
        valid, data = offered[self.output]
        return {"in_ready": taken[PORT], "out_valid": valid, "out_data": data}


def _is_graph(engines: Sequence[Mapping[str, Any]]) -> bool:
    return any("inputs" in spec for spec in engines)


def simulate(engines: Sequence[Mapping[str, Any]], beats_in: int, images: int,
             in_valid: Callable[[int], Any] | None = None, out_ready: Callable[[int], Any] | None = None,
             max_idle_cycles: int = 100_000) -> tuple[list[int], list[int]]:
    """Run ``images`` images of ``beats_in`` beats each through a chain of engines (dicts as in
    :class:`Engine`); return (the cycles of the input transfers, the cycles of the output
    transfers), cycle 0 being the first cycle after reset.

    ``in_valid(cycle)`` says whether the source offers a beat (it keeps offering a beat once
    offered until it is taken, as the handshake requires) and ``out_ready(cycle)`` whether the
    sink takes one; both default to always.  Runs until every output beat has left; raises
    :class:`Stuck` (a RuntimeError) if nothing moves for ``max_idle_cycles`` simulated cycles
    or, with the ports' handshakes fixed, as soon as nothing can move again.
    """
    return _run(Graph(engines) if _is_graph(engines) else Chain(engines), beats_in, images, in_valid, out_ready,
                max_idle_cycles)


def _run(chain, beats_in: int, images: int, in_valid=None, out_ready=None,
         max_idle_cycles: int = 100_000, pace: float = 0, expect: Sequence[int] | None = None,
         done: Callable[[list[int], list[int]], bool] | None = None) -> tuple[list[int], list[int]] | None:
    """:func:`simulate` on a built :class:`Chain` or :class:`Graph`.  ``pace``: cycles per
    input beat on average, beat k offered no earlier than cycle k * pace; ``expect``: output
    transfer cycles to follow, None returned as soon as an output beat leaves at another cycle
    (or is late); ``done(in_cycles, out_cycles)``, asked after every cycle: stop there when true.
    Still cycles are skipped while the ports' handshakes stay as they are: with the sink always
    ready, while the source offers a beat (held until taken), has sent them all, or waits for
    its pace."""
    total_in = beats_in * images
    total_out = chain.beats_out(beats_in) * images
    modules = chain.modules() if out_ready is None else []
    in_cycles: list[int] = []
    out_cycles: list[int] = []
    offering = False
    cycle = idle = 0
    while len(out_cycles) < total_out:
        offering = len(in_cycles) < total_in and (offering or (
            (in_valid is None or bool(in_valid(cycle))) and cycle >= len(in_cycles) * pace))
        ready = out_ready is None or bool(out_ready(cycle))
        ports = chain.step(offering, len(in_cycles), ready)
        idle += 1
        if offering and ports["in_ready"]:
            in_cycles.append(cycle)
            offering = False
            idle = 0
        if ports["out_valid"] and ready:
            out_cycles.append(cycle)
            idle = 0
        if expect is not None and _diverged(out_cycles, expect, cycle):
            return None
        if done is not None and done(in_cycles, out_cycles):
            break
        if idle > max_idle_cycles:
            raise Stuck(f"the stream engines moved nothing for {max_idle_cycles} cycles at cycle {cycle} "
                        f"({len(in_cycles)} of {total_in} beats in, {len(out_cycles)} of {total_out} out)")
        if idle and modules:
            if offering or len(in_cycles) == total_in:
                horizon = None  # the ports' handshakes stay as they are until something moves
            elif in_valid is None:  # waiting for the pace: not offering before that cycle
                horizon = max(0, math.ceil(len(in_cycles) * pace) - cycle - 1)
            else:
                horizon = 0
            skipped = _skip_still(modules, horizon)
            if skipped is None:
                raise Stuck(f"the stream engines are deadlocked at cycle {cycle}: nothing can move again "
                            f"({len(in_cycles)} of {total_in} beats in, {len(out_cycles)} of {total_out} out)")
            cycle += skipped
        cycle += 1
    return in_cycles, out_cycles


def _skip_still(modules: Sequence, horizon: int | None) -> int | None:
    """After a cycle in which no port transferred, the ports' inputs staying as they were for
    ``horizon`` more cycles (None: for ever): the cycles that follow it unchanged, skipped
    (their countdowns applied), or None if no cycle will ever differ from it (a deadlock).

    If the cycle's clock edge changed the registers only by counting down (folded windows'
    and collectors' cooldowns left above zero, tokens advancing inside cores' pipelines short
    of their outputs), the next cycle sees the same handshakes (a cooldown matters to them
    only through being zero, a pipeline only through its last stage), so it changes nothing
    either but the countdowns, and so on for as many cycles as the soonest countdown lasts
    (each module's :meth:`still_for`).  With no countdown running, every cycle from here on is
    the same and nothing moves again."""
    if any(m.moved for m in modules):
        return 0
    waits = [w for w in (m.still_for() for m in modules) if w is not None]
    if horizon is not None:
        waits.append(horizon)
    if not waits:
        return None
    skipped = min(waits)
    if skipped:
        for m in modules:
            m.count_down(skipped)
    return skipped


def _diverged(out_cycles: list[int], expect: Sequence[int], cycle: int) -> bool:
    """Whether the output transfers so far differ from ``expect`` at ``cycle``'s end: a beat
    at another cycle, or the next one not there by its cycle."""
    n = len(out_cycles)
    if n and out_cycles[-1] != expect[n - 1]:
        return True
    return n < len(expect) and cycle >= expect[n]


def timing(engines: Sequence[Mapping[str, Any]], beats_in: int, images: int = 4,
           max_idle_cycles: int = 100_000) -> tuple[int, int]:
    """(latency_cycles, ii_cycles) as schedule.json defines them, inputs always valid and
    outputs always ready: from image 0's first input transfer to its last output transfer,
    and between the first input beats of the last two of ``images`` (>= 4) images."""
    latency, ii, _ = _periodic_run(engines, beats_in, images, max_idle_cycles)
    return latency, ii


def settled_timing(engines: Sequence[Mapping[str, Any]], beats_in: int, max_images: int,
                   max_idle_cycles: int = 100_000) -> tuple[int, int, int]:
    """(latency_cycles, ii_cycles, images): the steady state's II and the images a back-to-back
    run needs for its last two to be in it (at least 4).  The input runs ahead of a slower
    engine while FIFOs and collectors have room, which can take more images than any rule of
    thumb (a folded tail of reuse 16 behind a 10-beat frame: 12 cycles between images 5 and 6,
    16 from image 8 on).  The run goes on until the engines' states repeat at two images'
    first beats, up to ``max_images`` (then the II between the last two of those)."""
    return _periodic_run(engines, beats_in, max_images, max_idle_cycles)


def _periodic_run(engines, beats_in: int, images: int, max_idle_cycles: int) -> tuple[int, int, int]:
    """:func:`timing` over at most ``images`` images, and the images it took (the period's
    second image + 1, or ``images`` when no period showed)."""
    if images < 4:
        raise ValueError(f"the steady-state II needs at least 4 images, not {images}")
    chain = Graph(engines) if _is_graph(engines) else Chain(engines)
    beats_out = chain.beats_out(beats_in)
    states: list[tuple] = []  # the engines' states just after each image's first input transfer
    period: list[int] = []

    def settled(in_cycles: list[int], out_cycles: list[int]) -> bool:
        """Whether the run can stop: it is periodic (the engines were in the same state at the
        first input transfers of the last two images started, so every later image repeats the
        last one, and the II of any two later images is the cycles between those two) within
        ``images`` images, and image 0 has left (the latency)."""
        if len(in_cycles) == len(states) * beats_in + 1 and not period:
            states.append(chain.state())
            k = len(states) - 1
            if k >= 1 and k + 1 <= images and states[k] == states[k - 1]:
                period.append(in_cycles[-1] - in_cycles[-1 - beats_in])
        return bool(period) and len(out_cycles) >= beats_out

    in_cycles, out_cycles = _run(chain, beats_in, images, max_idle_cycles=max_idle_cycles, done=settled)
    if period:
        # images k - 1 and k began in the same state: a run of k + 1 images or more ends in it
        return out_cycles[beats_out - 1] - in_cycles[0], period[0], max(4, len(states))
    return (*_timing(in_cycles, out_cycles, beats_in, images), images)


def _timing(in_cycles: list[int], out_cycles: list[int], beats_in: int, images: int) -> tuple[int, int]:
    beats_out = len(out_cycles) // images
    return (out_cycles[beats_out - 1] - in_cycles[0],
            in_cycles[(images - 1) * beats_in] - in_cycles[(images - 2) * beats_in])


def skip_depths(engines: Sequence[Mapping[str, Any]], beats_in: int, skips: Sequence[str],
                images: int = 4) -> dict[str, int]:
    """The depth of each skip FIFO (engine names ``skips`` of a graph): the least that keeps
    the graph's schedule what it is with unbounded skip FIFOs.

    1. With unbounded skip FIFOs and the input back to back, the FIFOs absorb the input and
       the engines behind them run at their own pace: the output's period between images is
       the graph's II, T.
    2. Offering input beat k no earlier than cycle k * T / beats runs the graph at that pace,
       the input never far ahead of the slowest engine; each FIFO's depth is then the most
       slots it held at an issue, + 1 (the slot the issue reserves: a beat may enter in the
       cycle another leaves).  With these depths and the input back to back the graph runs
       its reference schedule: the cycles of every input and output transfer over ``images``
       images.
    3. Those depths may still let the input run ahead of a slow branch (a padded window takes
       more cycles than its input has beats), which the schedule does not need: each FIFO in
       turn is cut to the least depth that keeps every output transfer's cycle and the
       latency and II (bisection; a pass over all of them is repeated until none shrinks).
       One less than that changes the schedule: the fork stalls, which slows the graph or,
       when the long branch needs that very beat for the output the join waits for,
       deadlocks it.
    """
    specs = [{**spec, "fifo_depth": UNBOUNDED} if spec["name"] in skips else spec for spec in engines]
    _, out_cycles = simulate(specs, beats_in, images)
    beats_out = len(out_cycles) // images
    period = out_cycles[(images - 1) * beats_out] - out_cycles[(images - 2) * beats_out]
    graph = Graph(specs)
    _run(graph, beats_in, images, pace=period / beats_in)
    depths = {name: graph.fifo(name).need for name in skips}
    patience = 2 * (out_cycles[beats_out - 1] + period)  # cycles without a move that mean a deadlock

    def run(trial: dict[str, int], expect=None):
        net = Graph([{**spec, "fifo_depth": trial[spec["name"]]} if spec["name"] in trial else spec
                     for spec in engines])
        try:
            return _run(net, beats_in, images, max_idle_cycles=patience, expect=expect)
        except RuntimeError:
            return None

    reference = run(depths)
    target = _timing(*reference, beats_in, images)

    def keeps(name: str, depth: int) -> bool:
        trial = run({**depths, name: depth}, reference[1])  # stops at the first output beat off the reference
        return trial is not None and _timing(*trial, beats_in, images) == target

    shrunk, first = True, True
    while shrunk:
        shrunk = False
        for name in skips:
            if depths[name] == 1 or not first and not keeps(name, depths[name] - 1):
                continue  # the least already (a later pass checks one less first: cheap when it fails)
            # search up from the smallest (a failing trial ends at its first late beat: cheap),
            # then bisect between the last failure and the first success
            low, high, probe = 1, depths[name], 2
            while probe < high:
                if keeps(name, probe):
                    high = probe
                    break
                low, probe = probe + 1, probe * 2
            while low < high:
                mid = (low + high) // 2
                if keeps(name, mid):
                    high = mid
                else:
                    low = mid + 1
            shrunk |= high < depths[name]
            depths[name] = high
        first = False
    return depths
