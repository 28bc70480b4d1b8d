"""The cocotb testbench of `finegrain sim` on a stream top (design13.md, "RTL stream top"):
per input port P it offers the port's beats on P_valid/P (back to back, or with random gaps)
and counts a beat sent on each cycle P_ready is high; per output port Q it holds Q_ready high
(or, with stall, low in 30% of the cycles, at random, in runs from one cycle to longer than
every FIFO can absorb, so that a stall backs up to the input) and records every beat taken
with its cycle.

It judges the data no more than sim/testbench.py does: compiler/verify/stream_sim.py wrote
the beats (from the emulator) and compares what this records.  It checks the one rule it can
see alone: a beat shown on Q and not taken must stay, unchanged, until it is taken.  Once
every output port has its expected beats it drains with every Q_ready high, so a late extra
beat is recorded too; it gives up when nothing moves for idle_timeout_cycles (a lost beat).
While P_valid is low, P carries random bits, so a top that takes data without valid shows.

Environment: FINEGRAIN_SIM_VECTORS (JSON: "inputs", per port the hex beats of every image in
order; "input_bits"; "output_beats", per port the beats expected; "gaps", "stall", "seed",
"stall_run_cycles", "idle_timeout_cycles", "drain_cycles") and FINEGRAIN_SIM_RESULTS (JSON
written here: "inputs", per port the cycle of each beat sent; "outputs", per port [cycle, hex]
of each beat received, "x:..." for X/Z bits; "waited", per input port the cycles a beat was
offered and not taken; "errors"; "stopped", why it gave up or null; "cycles").
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

RESET_CYCLES = 3
GAP_PROBABILITY = 0.35  # as sim/testbench.py's in_valid gaps
STALL_PROBABILITY = 0.3  # chance that Q_ready is low in a cycle under stall ...
SINGLE_RUNS = 0.5  # ... decided for runs of cycles: this fraction of them one cycle long, the others
# up to "stall_run_cycles" (compiler/verify/stream_sim.py: long enough to fill every FIFO)


def _word(handle) -> str:
    try:
        return format(int(handle.value.to_unsigned()), "x")
    except ValueError:  # X or Z bits
        return "x:" + str(handle.value)


class _Source:
    """One input port: offers beats in order, holds each until P_ready takes it."""

    def __init__(self, dut, name: str, beats: list[int], bits: int):
        self.name, self.beats, self.bits = name, beats, bits
        self.valid, self.ready, self.data = getattr(dut, f"{name}_valid"), getattr(dut, f"{name}_ready"), \
            getattr(dut, name)
        self.sent: list[int] = []
        self.waited = 0  # cycles a beat was offered and P_ready was low
        self.offering = False

    def drive(self, rng: random.Random, active: bool, gaps: bool) -> None:
        if not self.offering and active and len(self.sent) < len(self.beats):
            self.offering = not (gaps and rng.random() < GAP_PROBABILITY)
        self.valid.value = int(self.offering)
        self.data.value = self.beats[len(self.sent)] if self.offering else rng.getrandbits(self.bits)

    def sample(self, t: int) -> bool:
        if self.offering and str(self.ready.value) == "1":
            self.sent.append(t)
            self.offering = False
            return True
        self.waited += self.offering
        return False


class _Sink:
    """One output port: drives Q_ready, records each beat taken, checks held beats."""

    def __init__(self, dut, name: str, expected: int):
        self.name, self.expected = name, expected
        self.valid, self.ready, self.data = getattr(dut, f"{name}_valid"), getattr(dut, f"{name}_ready"), \
            getattr(dut, name)
        self.received: list[tuple[int, str]] = []
        self.held: str | None = None  # the beat shown and not taken in the previous cycle
        self.ready_now = 0
        self.low, self.run_left = False, 0  # under stall: Q_ready low for run_left more cycles

    def drive(self, rng: random.Random, active: bool, stall: bool, longest_run: int) -> None:
        if self.run_left == 0:
            self.run_left = 1 if rng.random() < SINGLE_RUNS else rng.randint(1, longest_run)
            self.low = rng.random() < STALL_PROBABILITY
        self.run_left -= 1
        self.ready_now = int(active and not (stall and self.low))
        self.ready.value = self.ready_now

    def sample(self, t: int, errors: list[str]) -> bool:
        shown = _word(self.data) if str(self.valid.value) == "1" else None
        if self.held is not None and shown != self.held:
            errors.append(f"cycle {t}: output {self.name}'s beat {len(self.received)} was shown and not taken, "
                          f"then {'changed' if shown else 'withdrawn'} before it was taken")
        self.held = shown if shown is not None and not self.ready_now else None
        if shown is not None and self.ready_now:
            self.received.append((t, shown))
            return True
        return False


@cocotb.test()
async def stream(dut):
    with open(os.environ["FINEGRAIN_SIM_VECTORS"]) as f:
        spec = json.load(f)
    rng = random.Random(spec["seed"])
    sources = [_Source(dut, name, [int(v, 16) for v in words], spec["input_bits"][name])
               for name, words in spec["inputs"].items()]
    sinks = [_Sink(dut, name, expected) for name, expected in spec["output_beats"].items()]
    errors: list[str] = []
    stopped = None
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    t, last_move, drain_from = 0, 0, None
    while True:
        await FallingEdge(dut.clk)
        active = t >= RESET_CYCLES
        dut.rst.value = int(not active)
        for source in sources:
            source.drive(rng, active, spec["gaps"])
        for sink in sinks:
            sink.drive(rng, active, spec["stall"] and drain_from is None, spec["stall_run_cycles"])
        await ReadOnly()
        moved = [source.sample(t) for source in sources] + [sink.sample(t, errors) for sink in sinks]
        if any(moved):
            last_move = t
        t += 1
        if drain_from is None and all(len(sink.received) >= sink.expected for sink in sinks) \
                and all(len(source.sent) == len(source.beats) for source in sources):
            drain_from = t
        if drain_from is not None and t >= drain_from + spec["drain_cycles"]:
            break
        if t > last_move + spec["idle_timeout_cycles"]:
            stopped = f"nothing moved on any port for {spec['idle_timeout_cycles']} cycles after cycle {last_move}"
            break
    with open(os.environ["FINEGRAIN_SIM_RESULTS"], "w") as f:
        json.dump({"inputs": {s.name: s.sent for s in sources}, "outputs": {s.name: s.received for s in sinks},
                   "waited": {s.name: s.waited for s in sources}, "errors": errors, "stopped": stopped,
                   "cycles": t}, f)
    dut._log.info("stream: sent %s beats, received %s in %d cycles",
                  {s.name: len(s.sent) for s in sources}, {s.name: len(s.received) for s in sinks}, t)
