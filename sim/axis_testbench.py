"""The cocotb testbench of a generated AXI4-Stream top (<model>_axis.sv): streams input words
through s_axis with random tvalid gaps and random tlast while m_axis_tready is held low at
random (phases of PHASE_CYCLES, one for every pair of offer and ready rates, so the output
FIFO fills and s_axis_tready drops), then offers the last beats back to back with
m_axis_tready high (full rate), and records every beat taken on either side with its cycle.

Like sim/testbench.py it does not judge the data: the caller wrote the vectors (from the
emulator) and compares what this records.  It does check the AXI4-Stream rule it can see on
its own: an m_axis beat shown and not taken must stay, unchanged, until it is taken.
While s_axis_tvalid is low, tdata and tlast carry random bits.

Environment: FINEGRAIN_SIM_VECTORS (JSON: "inputs", hex words; "s_bits", the tdata width;
"seed"; "full_rate_from", the first beat of the full-rate tail) and FINEGRAIN_SIM_RESULTS
(JSON written here: "sent" [cycle, tlast] and "received" [cycle, hex tdata, tlast] per beat,
"errors" (rule violations), "waited" (cycles a beat waited for s_axis_tready), "cycles", and
"core_latency_error" at the end).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

RESET_CYCLES = 3
PHASE_CYCLES = 60  # the next (offer rate, ready rate) pair every PHASE_CYCLES
OFFER_RATES = (0.3, 0.7, 1.0)  # chance that a new beat is offered in a cycle
READY_RATES = (0.0, 0.2, 0.6, 1.0)  # chance that m_axis_tready is high in a cycle
DRAIN_TIMEOUT = 2000  # cycles after the last beat sent, with m_axis_tready high


@cocotb.test()
async def axis_stream(dut):
    with open(os.environ["FINEGRAIN_SIM_VECTORS"]) as f:
        spec = json.load(f)
    words = [int(v, 16) for v in spec["inputs"]]
    rng = random.Random(spec["seed"])
    s_bits = spec["s_bits"]
    sent, received, errors = [], [], []  # sent: (cycle, tlast); received: (cycle, hex tdata, tlast)
    waited = 0  # cycles a beat was offered and s_axis_tready was low
    holding = None  # (index, tlast) offered until taken
    stalled = None  # the m_axis beat shown and not taken in the previous cycle
    phases = [(o, r) for o in OFFER_RATES for r in READY_RATES]  # every pair, in a random order
    rng.shuffle(phases)
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    t = 0
    while len(received) < len(words):
        await FallingEdge(dut.clk)
        rst = t < RESET_CYCLES
        draining = len(sent) == len(words)
        offer_p, ready_p = phases[t // PHASE_CYCLES % len(phases)]
        full_rate = len(sent) >= spec["full_rate_from"]
        if not rst and holding is None and not draining and (full_rate or rng.random() < offer_p):
            holding = (len(sent), int(rng.random() < 0.25))
        m_ready = int(not rst and (full_rate or rng.random() < ready_p))
        dut.rst.value = int(rst)
        dut.s_axis_tvalid.value = int(holding is not None)
        dut.s_axis_tdata.value = words[holding[0]] if holding is not None else rng.getrandbits(s_bits)
        dut.s_axis_tlast.value = holding[1] if holding is not None else rng.getrandbits(1)
        dut.m_axis_tready.value = m_ready
        await ReadOnly()
        # the handshakes of the coming rising edge
        if holding is not None:
            if str(dut.s_axis_tready.value) == "1":
                sent.append((t, holding[1]))
                holding = None
            else:
                waited += 1
        m_valid = str(dut.m_axis_tvalid.value) == "1"
        beat = (str(dut.m_axis_tdata.value), str(dut.m_axis_tlast.value)) if m_valid else None
        if stalled is not None and beat != stalled:
            errors.append(f"cycle {t}: an m_axis beat shown and not taken changed or vanished")
        if m_valid and m_ready:
            received.append((t, format(int(dut.m_axis_tdata.value.to_unsigned()), "x"),
                             int(str(dut.m_axis_tlast.value) == "1")))
        stalled = beat if m_valid and not m_ready else None
        t += 1
        if draining and t > sent[-1][0] + DRAIN_TIMEOUT:
            break
    with open(os.environ["FINEGRAIN_SIM_RESULTS"], "w") as f:
        json.dump({"sent": sent, "received": received, "waited": waited, "errors": errors, "cycles": t,
                   "core_latency_error": str(dut.core_latency_error.value)}, f)
    dut._log.info("axis: sent %d beats, received %d in %d cycles (a beat waited for tready in %d cycles)",
                  len(sent), len(received), t, waited)
