"""RTL simulation: build the generated SystemVerilog (OUT/rtl) with Verilator through
sim/runner.py (-Wall lint clean, cached by source hash under OUT/rtl/sim_build), stream the
emulator's vectors through it with the cocotb testbench sim/testbench.py, and compare every
output bit, the latency (cycles from in_valid to the matching out_valid) and the initiation
interval with OUT/rtl/schedule.json.  A stream top (schedule.json's "architecture" is
"stream") is simulated by stream_sim.py over the same build and run (run_testbench).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.rtl import rtl_sources
from ..errors import UserError
from ..ir import Graph
from ..progress import elapsed
from ..resources import sim_module, sim_package
from .vectors import emulated_rows, received_values

# the folder the package is in (the checkout's root, or a wheel's site-packages): the simulator's
# interpreter imports the testbench (compiler.resources.sim_package) and compiler.fuzz from it
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_EXTRA_CYCLES = 50
# From this many clock cycles (a parallel top: vectors) the model is compiled at -O1: twice the
# compile, a ~3x faster run (sim/runner.py's MODEL_MAKE_VARS has the measurements).
OPTIMIZE_FROM_CYCLES = 20_000


class RTLSimError(UserError):
    """The RTL simulation could not be built or run (the message says why)."""


@dataclass(frozen=True)
class RTLSimResult:
    vectors: int
    mismatches: int  # output bits that differ, plus one per lost, extra or changed beat (stream)
    latency_cycles: int | None  # None: not measured (a stream top under --gaps or --stall)
    ii_cycles: int | None  # None: not measured (as latency, or a stream run of fewer than 4 vectors)
    predicted_latency: int
    build_seconds: float
    run_seconds: float
    first_mismatches: tuple[str, ...]
    waves: str | None = None
    predicted_ii: int = 1
    stream: dict | None = None  # a stream top's run: gaps, stall, output beats expected and received
    outputs: dict[str, np.ndarray] | None = None  # what the RTL computed: IR values, NaN where not valid

    @property
    def timing_ok(self) -> bool:
        """Measured latency and II equal schedule.json's (where measured)."""
        return all(measured is None or measured == predicted for measured, predicted in (
            (self.latency_cycles, self.predicted_latency), (self.ii_cycles, self.predicted_ii)))

    def timing(self) -> str:
        """Measured and predicted latency and II, as `finegrain sim` prints them."""
        if self.latency_cycles is None and self.stream and (self.stream["gaps"] or self.stream["stall"]):
            return "latency and II not measured (defined back to back: without --gaps and --stall)"
        ii = self.ii_cycles if self.ii_cycles is not None else \
            "not measured" + (" (too few vectors for a steady state)" if self.stream else "")
        return (f"latency {self.latency_cycles} cycles (predicted {self.predicted_latency}), II {ii} "
                f"(predicted {self.predicted_ii})")

    def report(self) -> dict:
        return {"vectors": self.vectors, "mismatches": self.mismatches, "latency_cycles": self.latency_cycles,
                "ii_cycles": self.ii_cycles, "predicted_latency_cycles": self.predicted_latency,
                "predicted_ii_cycles": self.predicted_ii, "build_seconds": round(self.build_seconds, 3),
                "run_seconds": round(self.run_seconds, 3),
                **({"architecture": "stream", **self.stream} if self.stream is not None else {})}


def _pack(rows: np.ndarray, width: int) -> list[str]:
    mask = (1 << width) - 1
    words = []
    for row in rows:
        word = 0
        for i, v in enumerate(row):
            word |= (int(v) & mask) << (i * width)
        words.append(format(word, "x"))
    return words


def _unpack(word: int, i: int, width: int, signed: bool) -> int:
    v = (word >> (i * width)) & ((1 << width) - 1)
    return v - (1 << width) if signed and v >> (width - 1) else v


def top_ports(schedule: dict) -> list[str]:
    """The generated top's ports (from its schedule.json): the only signals the testbench
    touches, so the only ones made visible to cocotb; Verilator optimises every other wire."""
    return ["clk", "rst", "in_valid", "out_valid", *(p["name"] for p in [*schedule["inputs"], *schedule["outputs"]])]


def check_schedule(path: Path, graph: Graph) -> None:
    """OUT/rtl/schedule.json is whole and describes this IR's ports."""
    from ..output_folder import OutputFolderError, read_json

    schedule = read_json(path, "RTL schedule")
    try:
        ins = [p["onnx"] for p in schedule["inputs"]]
        outs = [p["onnx"] for p in schedule["outputs"]]
        ok = isinstance(schedule["latency_cycles"], int) and all(
            isinstance(p["name"], str) and isinstance(p["width"], int) and isinstance(p["size"], int)
            for p in [*schedule["inputs"], *schedule["outputs"]])
    except (KeyError, TypeError):
        ok = False
    if not ok or ins != list(graph.inputs) or outs != list(graph.outputs):
        raise OutputFolderError(f"RTL schedule {str(path)!r} is damaged or does not describe this folder's model; "
                                f"compile the folder again")


def run_rtl_sim(graph: Graph, rtl_dir: Path, model: str, inputs: dict[str, np.ndarray], gaps: bool = False,
                waves: bool = False, seed: int = 0, simulator: str = "verilator", stall: bool = False,
                primitives: bool = False) -> RTLSimResult:
    """Simulate OUT/rtl on ``inputs``: the parallel top here, a stream top (schedule.json's
    "architecture") by compiler/verify/stream_sim.py.  ``stall`` (stream tops only) holds the
    outputs' ready low at random.  ``primitives``: library modules as built from Xilinx
    primitives (fg_add3), with models of those, instead of their simulation models (rtl/sim/)."""
    rtl_dir = Path(rtl_dir).resolve()  # the simulator runs elsewhere: no relative paths
    top = rtl_dir / f"{model}.sv"
    if not top.is_file():
        raise RTLSimError(f"{top} is missing: compile with --backend rtl (or hls,rtl)")
    schedule = json.loads((rtl_dir / "schedule.json").read_text())
    in_ports, out_ports = schedule["inputs"], schedule["outputs"]
    if [p["onnx"] for p in in_ports] != list(graph.inputs) or [p["onnx"] for p in out_ports] != list(graph.outputs):
        raise RTLSimError(f"{rtl_dir} was generated for other ports than {rtl_dir.parent}'s IR; compile again")
    if schedule.get("architecture") == "stream":
        from .stream_sim import run_stream_sim

        return run_stream_sim(graph, rtl_dir, model, schedule, inputs, gaps=gaps, stall=stall, waves=waves,
                              seed=seed, simulator=simulator, primitives=primitives)
    if stall:
        raise RTLSimError(f"--stall holds the outputs' ready low, and {model}'s RTL is the fully parallel "
                          f"architecture, whose outputs have no ready (it never waits); compile with --arch stream "
                          f"to simulate back-pressure, or leave --stall out")
    count, rows_in, rows_out = emulated_rows(graph, inputs)
    spec = {
        "count": count, "gaps": gaps, "seed": seed,
        "timeout_cycles": schedule["latency_cycles"] + TIMEOUT_EXTRA_CYCLES,
        "inputs": {p["name"]: _pack(rows, p["width"]) for p, rows in zip(in_ports, rows_in)},
        "input_bits": {p["name"]: p["width"] * p["size"] for p in in_ports},
        "output_bits": {p["name"]: p["width"] * p["size"] for p in out_ports},
    }
    run = run_testbench(rtl_dir, model, "testbench", spec, top_ports(schedule), waves=waves,
                        simulator=simulator, cycles=count, primitives=primitives)
    have = received(run.results, out_ports, count)
    mismatches, first, latency, ii = compare_outputs(run.results, out_ports, rows_out, count, have)
    outputs = {p["onnx"]: received_values(graph, p["onnx"], rows) for p, rows in zip(out_ports, have)}
    return RTLSimResult(count, mismatches, latency, ii, schedule["latency_cycles"], run.build_seconds,
                        run.run_seconds, tuple(first), run.waves, outputs=outputs)


def received(got: dict, out_ports: list[dict], count: int) -> list[list[list[int] | None]]:
    """Per output port, per vector, the element mantissas the testbench read (``got``, as in
    `compare_outputs`); None for a vector whose word was missing or not valid."""
    out = []
    for p in out_ports:
        words = got["outputs"][p["name"]]
        out.append([None if v >= len(words) or words[v].startswith("x:") else
                    [_unpack(int(words[v], 16), i, p["width"], p["signed"]) for i in range(p["size"])]
                    for v in range(count)])
    return out


@dataclass(frozen=True)
class TestbenchRun:
    results: dict  # what the testbench wrote
    build_seconds: float
    run_seconds: float
    waves: str | None  # the FST file, with waves


def run_testbench(rtl_dir: Path, model: str, testbench: str, spec: dict, ports: list[str], waves: bool,
                  simulator: str, cycles: int, primitives: bool = False) -> TestbenchRun:
    """Build OUT/rtl (cached by sim.runner; optimised when the run will be long) and run the
    cocotb ``testbench`` module of the simulation harness (``testbench``, ``stream_testbench``)
    on ``spec`` (written to rtl/sim/vectors.json); ``ports``: the only signals it touches (the
    rest is Verilator's to optimise)."""
    runner = sim_module("runner")
    testbench = f"{sim_package()}.{testbench}"

    work = rtl_dir / "sim"
    work.mkdir(parents=True, exist_ok=True)
    vectors, results = work / "vectors.json", work / "results.json"
    vectors.write_text(json.dumps(spec))
    if results.exists():
        results.unlink()
    try:
        # FINEGRAIN_RTL_BUILD_DIR: one build cache for many output folders (the tests use it)
        build_root = Path(os.environ.get("FINEGRAIN_RTL_BUILD_DIR") or rtl_dir / "sim_build")
        with elapsed(f"{simulator} build of {model} (cached when unchanged)"):
            built = runner.build(rtl_sources(rtl_dir, model, simulation=True, primitives=primitives), model,
                                 build_root, waves=waves,
                                 build_args=["--trace-fst"] if waves and simulator == "verilator" else [],
                                 visibility=ports, simulator=simulator, optimize=cycles >= OPTIMIZE_FROM_CYCLES)
        start = time.perf_counter()
        runner.run_tests(built, testbench, test_dir=work / "run", python_path=[ROOT], waves=waves,
                         extra_env={"FINEGRAIN_SIM_VECTORS": str(vectors), "FINEGRAIN_SIM_RESULTS": str(results)})
        run_seconds = time.perf_counter() - start
    except runner.SimError as err:
        hint = ""
        if waves and "lz4.h" in str(err):
            hint = "; --waves needs the lz4 headers (Debian: apt-get install liblz4-dev, or `make tools`)"
        raise RTLSimError(f"RTL simulation of {model} failed{hint}: {err}") from None
    fst = next(iter((work / "run").rglob("*.fst")), None) if waves else None
    return TestbenchRun(json.loads(results.read_text()), built.seconds, run_seconds, str(fst) if fst else None)


def compare_outputs(got: dict, out_ports: list[dict], rows_out, count: int,
                    have: list | None = None) -> tuple[int, list[str], int | None, int | None]:
    """What a testbench recorded (``got``: each output port's words, hex or ``x:...`` where not
    valid, and the cycles of each input and output) against the emulator's mantissas
    (``rows_out``, one array per port): (mismatched bits, the first ten as lines, latency, II).
    ``have``: the words unpacked (`received`), when the caller has them already.  A latency that
    varies between vectors counts as a mismatch."""
    t_in, t_out = got["t_in"], got["t_out"]
    have = have if have is not None else received(got, out_ports, count)
    mismatches, first = 0, []
    for p, rows, got_rows in zip(out_ports, rows_out, have):
        port, words = p["name"], got["outputs"][p["name"]]
        for v in range(count):
            if got_rows[v] is None:
                mismatches += rows.shape[1]
                if len(first) < 10:
                    seen = words[v] if v < len(words) else "nothing"
                    first.append(f"mismatch: vector {v} output {port}: no valid output (got {seen})")
                continue
            for i, (want, value) in enumerate(zip(rows[v], got_rows[v], strict=True)):
                if value != int(want):
                    mismatches += 1
                    if len(first) < 10:
                        first.append(f"mismatch: vector {v} output {port}[{i}]: expected {int(want)}, got {value} "
                                     f"(mantissas of {p['type']})")
    latencies = sorted({b - a for a, b in zip(t_in, t_out)})
    if len(latencies) > 1:
        first.append(f"latency varies between vectors: {latencies}")
        mismatches += 1
    back_to_back = [t_out[k] - t_out[k - 1] for k in range(1, min(len(t_in), len(t_out))) if t_in[k] - t_in[k - 1] == 1]
    ii = max(back_to_back) if back_to_back else (1 if t_out else None)
    return mismatches, first, (latencies[-1] if latencies else None), ii
