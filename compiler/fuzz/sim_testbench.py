"""The cocotb testbench of the fuzzer's batched Verilator sim (`sim_batch`): streams every
case's vectors into its own top of the ``fuzz_batch`` wrapper at once, one per clock, and
records every output beat with its cycle, per case.

Like `finegrain sim`'s testbench (sim/testbench.py) it judges nothing, and while a case's
in_valid is low its inputs carry random bits.  Environment: FINEGRAIN_SIM_VECTORS (JSON from
sim_batch: per case its port prefix, vector count, packed input words, input widths, output
names, timeout) and FINEGRAIN_SIM_RESULTS (JSON written here: per case t_in, t_out, outputs).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from ..resources import sim_module

_testbench = sim_module("testbench")  # the harness's (the simulation's path has the package's folder)
RESET_CYCLES, _word = _testbench.RESET_CYCLES, _testbench._word


@cocotb.test()
async def stream_all(dut):
    with open(os.environ["FINEGRAIN_SIM_VECTORS"]) as f:
        spec = json.load(f)
    rng = random.Random(spec["seed"])
    cases = []
    for c in spec["cases"]:
        handle = lambda name, prefix=c["prefix"]: getattr(dut, prefix + name)  # noqa: E731
        cases.append({**c, "in_valid": handle("in_valid"), "out_valid": handle("out_valid"),
                      "ports_in": {n: handle(n) for n in c["inputs"]},
                      "ports_out": {n: handle(n) for n in c["outputs"]},
                      "words": {n: [int(v, 16) for v in words] for n, words in c["inputs"].items()},
                      "sent": 0, "t_in": [], "t_out": [], "got": {n: [] for n in c["outputs"]}})
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    t = 0
    while True:
        await FallingEdge(dut.clk)
        rst = 1 if t < RESET_CYCLES else 0
        dut.rst.value = rst
        for c in cases:
            valid = int(not rst and c["sent"] < c["count"])
            c["in_valid"].value = valid
            for name, port in c["ports_in"].items():
                port.value = c["words"][name][c["sent"]] if valid else rng.getrandbits(c["input_bits"][name])
            if valid:
                c["t_in"].append(t)
                c["sent"] += 1
        await ReadOnly()
        if t >= RESET_CYCLES:
            for c in cases:
                if len(c["t_out"]) < c["count"] and str(c["out_valid"].value) == "1":
                    c["t_out"].append(t)
                    for name, port in c["ports_out"].items():
                        c["got"][name].append(_word(port))
        t += 1
        if all(len(c["t_out"]) >= c["count"] or (c["sent"] == c["count"] and t > c["t_in"][-1] + c["timeout_cycles"])
               for c in cases):
            break
    with open(os.environ["FINEGRAIN_SIM_RESULTS"], "w") as f:
        json.dump({"cases": [{"t_in": c["t_in"], "t_out": c["t_out"], "outputs": c["got"]} for c in cases]}, f)
    dut._log.info("streamed %d cases in %d cycles", len(cases), t)
