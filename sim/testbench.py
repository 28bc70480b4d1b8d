"""The cocotb testbench of `finegrain sim`: streams test vectors into a generated RTL top, one
per clock (or with random in_valid gaps), and records every output beat with its cycle.

It judges nothing: compiler/verify/rtlsim.py wrote the vectors (from the emulator) and
compares what this records.  Environment: FINEGRAIN_SIM_VECTORS (JSON written by rtlsim:
packed input words per port, the port widths, gaps, seed, timeout) and FINEGRAIN_SIM_RESULTS
(JSON written here: input and output cycles, packed output words as hex).  While in_valid is
low the inputs carry random bits, so any state leaking between vectors shows up.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

RESET_CYCLES = 3


def _word(handle) -> str:
    try:
        return format(int(handle.value.to_unsigned()), "x")
    except ValueError:  # X or Z bits
        return "x:" + str(handle.value)


@cocotb.test()
async def stream(dut):
    with open(os.environ["FINEGRAIN_SIM_VECTORS"]) as f:
        spec = json.load(f)
    count, gaps = spec["count"], spec["gaps"]
    rng = random.Random(spec["seed"])
    inputs = {name: [int(v, 16) for v in words] for name, words in spec["inputs"].items()}
    ports_in = {name: getattr(dut, name) for name in inputs}
    ports_out = {name: getattr(dut, name) for name in spec["output_bits"]}
    t_in, t_out, got = [], [], {name: [] for name in ports_out}
    sent, t = 0, 0
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    while True:
        await FallingEdge(dut.clk)
        rst = 1 if t < RESET_CYCLES else 0
        dut.rst.value = rst
        valid = int(not rst and sent < count and not (gaps and rng.random() < 0.35))
        dut.in_valid.value = valid
        for name, port in ports_in.items():
            port.value = inputs[name][sent] if valid else rng.getrandbits(spec["input_bits"][name])
        if valid:
            t_in.append(t)
            sent += 1
        await ReadOnly()
        if t >= RESET_CYCLES and str(dut.out_valid.value) == "1":
            t_out.append(t)
            for name, port in ports_out.items():
                got[name].append(_word(port))
        t += 1
        if len(t_out) >= count or (sent == count and t > (t_in[-1] if t_in else 0) + spec["timeout_cycles"]):
            break
    with open(os.environ["FINEGRAIN_SIM_RESULTS"], "w") as f:
        json.dump({"t_in": t_in, "t_out": t_out, "outputs": got}, f)
    dut._log.info("streamed %d vectors, saw %d outputs in %d cycles", sent, len(t_out), t)
