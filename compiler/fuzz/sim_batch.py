"""Verilator sim of many fuzz cases in one build.

A Verilator build (verilate, compile, link) and the start of a cocotb simulation cost seconds
whatever the design's size; a fuzz case's top is tiny.  Here a batch of written cases (each
with its own model name, so its own top module name) is built under one generated wrapper
module, ``fuzz_batch``, that instantiates every case's top, unedited, beside the others: shared
clock and reset, each case's ``in_valid``, inputs, ``out_valid`` and outputs as ports of their
own (``c<i>_<port>``).  One cocotb test (`compiler.fuzz.sim_testbench`) streams every case's
vectors into its top at once and records every output beat with its cycle, as `finegrain sim`'s
testbench does for one top; the comparison here is `run_rtl_sim`'s: every output bit, the
latency (the same for every vector, and the schedule's) and the initiation interval.

A stream top (``--arch stream``: valid/ready on every port, beats in schedule.json's order)
is not batched: it runs alone through `run_rtl_sim`, which drives it with the stream testbench.

A batch that does not build runs the cases named in Verilator's errors alone through
`run_rtl_sim` (the project's runner) and builds the rest again; when no case is named it is
split in halves.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..backends.rtl import rtl_sources
from ..resources import sim_module
from ..verify.rtlsim import ROOT, TIMEOUT_EXTRA_CYCLES, _pack, compare_outputs
from ..verify.vectors import emulated_rows
from .check import Outcome, Written, sim_verdict, simulate

TOP = "fuzz_batch"
TESTBENCH = "compiler.fuzz.sim_testbench"


def _rtl(w: Written) -> tuple[Path, str, dict]:
    rtl = (w.out / "rtl").resolve()
    return rtl, w.project.graph.name, json.loads((rtl / "schedule.json").read_text())


def wrapper(batch: list[Written]) -> str:
    """The SystemVerilog of the wrapper module: every case's top, side by side."""
    ports, instances = ["    input  logic clk", "    input  logic rst"], []
    for i, w in enumerate(batch):
        _, model, schedule = _rtl(w)
        ports += [f"    input  logic c{i}_in_valid", f"    output logic c{i}_out_valid"]
        ports += [f"    input  logic [{p['width'] * p['size'] - 1}:0] c{i}_{p['name']}" for p in schedule["inputs"]]
        ports += [f"    output logic [{p['width'] * p['size'] - 1}:0] c{i}_{p['name']}" for p in schedule["outputs"]]
        names = ["in_valid", "out_valid", *(p["name"] for p in [*schedule["inputs"], *schedule["outputs"]])]
        connections = ", ".join(["    .clk(clk)", ".rst(rst)", *(f".{n}(c{i}_{n})" for n in names)])
        instances.append(f"    {model} u_c{i} (\n{connections}\n    );")
    return ("// fuzz sim batch: the generated tops of several fuzz cases, unedited, side by side;\n"
            "// case i's ports are c<i>_<port>.\n"
            f"module {TOP} (\n" + ",\n".join(ports) + "\n);\n" + "\n".join(instances) + "\nendmodule\n")


def _ports(batch: list[Written]) -> list[str]:
    names = ["clk", "rst"]
    for i, w in enumerate(batch):
        schedule = _rtl(w)[2]
        names += [f"c{i}_{n}" for n in ["in_valid", "out_valid", *(p["name"] for p in [*schedule["inputs"],
                                                                                       *schedule["outputs"]])]]
    return names


def _vectors(batch: list[Written]) -> tuple[dict, list]:
    cases, expected = [], []
    for i, w in enumerate(batch):
        graph, schedule = w.project.graph, _rtl(w)[2]
        count, rows_in, rows_out = emulated_rows(graph, {graph.inputs[0]: w.inputs})
        cases.append({
            "prefix": f"c{i}_", "count": count, "timeout_cycles": schedule["latency_cycles"] + TIMEOUT_EXTRA_CYCLES,
            "inputs": {p["name"]: _pack(rows, p["width"]) for p, rows in zip(schedule["inputs"], rows_in)},
            "input_bits": {p["name"]: p["width"] * p["size"] for p in schedule["inputs"]},
            "outputs": [p["name"] for p in schedule["outputs"]]})
        expected.append((count, rows_out, schedule))
    return {"seed": 0, "cases": cases}, expected


def _compare(w: Written, got: dict, count: int, rows_out, schedule: dict) -> Outcome | None:
    """`run_rtl_sim`'s comparison (`compare_outputs`), for one case of the batch."""
    mismatches, first, latency, ii = compare_outputs(got, schedule["outputs"], rows_out, count)
    return sim_verdict(w, mismatches, first, latency, schedule["latency_cycles"], ii, schedule["ii_cycles"])


def _named(batch: list[Written], log: str) -> list[int]:
    """The cases whose generated top, or whose instance in the wrapper, Verilator's messages name."""
    instances = {int(i) for i in re.findall(r"\bu_c(\d+)\b", log)}
    return [i for i, w in enumerate(batch) if i in instances or str(_rtl(w)[0] / f"{_rtl(w)[1]}.sv") in log]


def sim_batch(batch: list[Written], folder: Path) -> list[Outcome | None]:
    """Verilator sim of ``batch`` (cases with distinct model names) in as few builds as it
    takes: per case, None when it passed (``sim`` is then added to its ``done``), else the finding."""
    runner = sim_module("runner")

    if not batch:
        return []
    streams = [i for i, w in enumerate(batch) if _rtl(w)[2].get("architecture") == "stream"]
    if streams:  # a stream top (valid/ready on every port) runs alone, on finegrain sim's stream testbench
        rest = iter(sim_batch([w for i, w in enumerate(batch) if i not in streams], folder))
        return [simulate(w, "sim") if i in streams else next(rest) for i, w in enumerate(batch)]
    if len(batch) == 1:
        return [simulate(batch[0], "sim")]
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    top = folder / f"{TOP}.sv"
    top.write_text(wrapper(batch))
    sources = sorted({s for w in batch for s in rtl_sources(_rtl(w)[0], _rtl(w)[1], simulation=True)[:-1]})
    sources += [_rtl(w)[0] / f"{_rtl(w)[1]}.sv" for w in batch] + [top]
    spec, expected = _vectors(batch)
    vectors, results = folder / "vectors.json", folder / "results.json"
    vectors.write_text(json.dumps(spec))
    try:
        build_root = Path(os.environ.get("FINEGRAIN_RTL_BUILD_DIR") or folder / "sim_build")
        built = runner.build(sources, TOP, build_root, visibility=_ports(batch))
    except runner.BuildError as err:
        alone = _named(batch, str(err))
        if not alone:
            half = len(batch) // 2
            return sim_batch(batch[:half], folder / "a") + sim_batch(batch[half:], folder / "b")
        rest = [w for i, w in enumerate(batch) if i not in alone]
        again = iter(sim_batch(rest, folder / "rest"))
        return [simulate(w, "sim") if i in alone else next(again) for i, w in enumerate(batch)]
    try:
        runner.run_tests(built, TESTBENCH, test_dir=folder / "run", python_path=[ROOT],
                         extra_env={"FINEGRAIN_SIM_VECTORS": str(vectors), "FINEGRAIN_SIM_RESULTS": str(results)})
    except runner.SimError:  # the simulation stopped: each case alone, to say which and why
        return [simulate(w, "sim") for w in batch]
    got = json.loads(results.read_text())
    return [_compare(w, g, *e) for w, g, e in zip(batch, got["cases"], expected)]
