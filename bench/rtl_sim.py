"""Benchmark the RTL simulation of the jet tagger (issue 4): Verilator build time, simulation
throughput, pipeline latency.

1. Compiles examples/jet_tagger at 5 ns (200 MHz) with the RTL backend and the AXI4-Stream top.
2. Times clean Verilator builds (wall and CPU seconds of the tools), each into a fresh
   temporary build folder (never the tests' build/rtl_sim cache): the generated top once
   "cold", with an empty cache of Verilator's runtime objects too (FINEGRAIN_CACHE_DIR pointed
   at an empty folder: what a first build on a new machine costs), then with those runtime
   objects cached (every later design's build); and the AXI4-Stream top, whose build makes
   only its own few signals visible to cocotb rather than every wire of the core.
3. Streams vectors through the built simulator as `finegrain sim` does
   (compiler.verify.rtlsim.run_rtl_sim, build reused): 10,000 vectors and 10 vectors (median
   of --runs each).  ``run_seconds`` covers the simulator process with cocotb's start-up;
   the streaming alone is the cocotb test's own wall time (results.xml) and, as a check, the
   difference between the two runs.  Every run must be bit-exact with the measured latency
   equal to schedule.json's.
4. Reports the latency in cycles and in ns at the clock, for the core and the AXI4-Stream top.

Prints a markdown section (machine, table) and one history row for bench/RESULTS.md; paste
them by hand.  Usage::

    .venv/bin/python bench/rtl_sim.py              # about two minutes on 2 cores
    .venv/bin/python bench/rtl_sim.py --runs 1 --vectors 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import compiler  # noqa: E402
from compiler.backends.rtl import rtl_sources, rtl_top_name  # noqa: E402
from compiler.verify.rtlsim import run_rtl_sim, top_ports  # noqa: E402
from compiler.verify.vectors import csim_vectors  # noqa: E402
from measure import Timing, _output, _seconds, timed  # noqa: E402
from sim import runner  # noqa: E402

EXAMPLE = REPO / "examples" / "jet_tagger"
SMALL = 10  # vectors of the short run whose time is subtracted
EXTREMES = 5  # csim_vectors adds these to the random ones


def stream_seconds(results_xml: Path) -> float:
    """The cocotb test's own wall time (cocotb's JUnit ``time``: no simulator start-up)."""
    return sum(float(case.get("time", "nan")) for case in ET.parse(results_xml).getroot().iter("testcase"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def clean_build(rtl_dir: Path, model: str, build_dir: Path, runtime_cache: Path, axis: bool = False) -> str:
    """Wall and CPU time of one build into the empty ``build_dir``, Verilator's runtime objects
    shared through ``runtime_cache`` (FINEGRAIN_CACHE_DIR)."""
    saved = os.environ.get("FINEGRAIN_CACHE_DIR")
    os.environ["FINEGRAIN_CACHE_DIR"] = str(runtime_cache)
    cpu = _children_cpu()
    try:
        top = f"{model}_axis" if axis else model
        # as `finegrain sim` builds it: only the plain top's ports visible to cocotb
        schedule = json.loads((rtl_dir / "schedule.json").read_text())
        ports = "top" if axis else top_ports(schedule)
        built = runner.build(rtl_sources(rtl_dir, model, axis=axis, simulation=True), top, build_dir, visibility=ports)
    finally:
        if saved is None:
            os.environ.pop("FINEGRAIN_CACHE_DIR", None)
        else:
            os.environ["FINEGRAIN_CACHE_DIR"] = saved
    assert not built.cached, f"{build_dir} was not empty"
    return f"{_seconds(built.seconds)} ({_children_cpu() - cpu:.0f} s CPU)"


def simulate(project, rtl_dir: Path, model: str, inputs: dict, build_dir: Path) -> tuple[object, float, float]:
    """(result, whole call seconds, cocotb test seconds) of one `finegrain sim`-like run."""
    os.environ["FINEGRAIN_RTL_BUILD_DIR"] = str(build_dir)
    result, seconds = timed(run_rtl_sim, project.graph, rtl_dir, model, inputs)
    if result.mismatches or result.latency_cycles != result.predicted_latency or result.ii_cycles != 1:
        raise SystemExit(f"RTL simulation is wrong: {result}")
    return result, seconds, stream_seconds(rtl_dir / "sim" / "run" / "results.xml")


def machine() -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return [("date", _output(["date", "-u"])), ("machine", f"{cpu}, nproc {_output(['nproc'])}"),
            ("tools", f"{runner.tool_version()}; g++ {_output(['g++', '-dumpfullversion'])}; "
                      f"finegrain {compiler.__version__}"),
            ("load average (1 min)", f"{os.getloadavg()[0]:.1f} at start")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=10_000, help="vectors of the long run (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="simulation runs of each length (median)")
    parser.add_argument("--clock-ns", type=float, default=5.0)
    args = parser.parse_args(argv)
    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="finegrain-rtl-bench-") as tmp:
        work = Path(tmp)
        project, compile_seconds = timed(compiler.compile_model, EXAMPLE / "model.onnx", EXAMPLE / "plan.json",
                                         output_dir=work / "out", backends=("rtl",), clock_ns=args.clock_ns,
                                         rtl_interface="axis")
        rtl_dir, model = work / "out" / "rtl", rtl_top_name(project.graph)
        text = (rtl_dir / f"{model}.sv").read_text()
        rows.append(("`compile_model` (API, RTL backend only)", _seconds(compile_seconds)))
        rows.append((f"generated `{model}.sv`", f"{len(text) / 1e6:.2f} MB, {text.count(chr(10)):,} lines"))
        cold = clean_build(rtl_dir, model, work / "build_cold", work / "runtime_cache")
        warm = clean_build(rtl_dir, model, work / "build", work / "runtime_cache")
        axis = clean_build(rtl_dir, model, work / "build_axis", work / "runtime_cache", axis=True)
        rows.append((f"clean Verilator build of `{model}`, runtime objects built too (cold)", cold))
        rows.append((f"clean Verilator build of `{model}`, runtime objects cached (-Wall, cocotb)", warm))
        rows.append((f"clean Verilator build of `{model}_axis` (same core), runtime objects cached", axis))
        long, short = Timing(), Timing()
        stream_long, stream_short, calls = Timing(), Timing(), Timing()
        long_inputs = csim_vectors(project.graph, args.vectors - EXTREMES, seed=1)
        short_inputs = csim_vectors(project.graph, SMALL - EXTREMES, seed=2)
        for _ in range(args.runs):
            result, call, stream = simulate(project, rtl_dir, model, long_inputs, work / "build")
            long.runs.append(result.run_seconds)
            stream_long.runs.append(stream)
            calls.runs.append(call)
            small, _, stream = simulate(project, rtl_dir, model, short_inputs, work / "build")
            short.runs.append(small.run_seconds)
            stream_short.runs.append(stream)
        n = result.vectors
        rows.append((f"`run_seconds`, {n} vectors back to back (simulator process incl. cocotb start-up)",
                     f"{long.cell()} = {n / long.median:,.0f} vectors/s"))
        rows.append((f"`run_seconds`, {small.vectors} vectors", short.cell()))
        rows.append((f"streaming only: the cocotb test's own time, {n} vectors",
                     f"{stream_long.cell()} = {n / stream_long.median:,.0f} vectors/s"))
        delta = long.median - short.median
        rows.append((f"streaming only: {n} minus {small.vectors} vectors (`run_seconds` medians)",
                     f"{_seconds(delta)} = {(n - small.vectors) / delta:,.0f} vectors/s"))
        rows.append((f"`run_rtl_sim` call, {n} vectors (emulator, vectors, simulator, comparison)", calls.cell()))
        rows.append(("cocotb + simulator start-up (10-vector `run_seconds` minus its test time)",
                     _seconds(short.median - stream_short.median)))
        cycles = result.latency_cycles
        axis_cycles = cycles + 1
        rows.append(("bit-exact against the emulator", f"yes, every run ({n} and {small.vectors} vectors)"))
        rows.append((f"pipeline latency of `{model}` (measured = schedule.json), II",
                     f"{cycles} cycles = {cycles * args.clock_ns:g} ns at {1e3 / args.clock_ns:g} MHz, II 1"))
        rows.append((f"latency of `{model}_axis` (s_axis handshake to m_axis_tvalid)",
                     f"{axis_cycles} cycles = {axis_cycles * args.clock_ns:g} ns"))
    info.append(("load average (1 min)", f"{info.pop()[1]}, {os.getloadavg()[0]:.1f} at end"))
    print(f"## RTL simulation of examples/jet_tagger, {n} vectors\n")
    for key, value in info:
        print(f"- {key}: {value}")
    print("\n| measurement | result |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")
    date, cpu = info[0][1], info[1][1]
    print("\nhistory row: | date | machine, load | clean build: cold / runtime cached / axis top | vectors/s "
          "(run_seconds / streaming only) | latency |")
    print(f"| {date} | {cpu}, load {info[-1][1]} | {cold} / {warm} / {axis} | {n / long.median:,.0f} / "
          f"{n / stream_long.median:,.0f} | {cycles} cycles = {cycles * args.clock_ns:g} ns |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
