"""Benchmark finegrain against hls4ml on the jet tagger: compile time, emulation and C-simulation
throughput, agreement.

Measures, on examples/jet_tagger (16-64-32-32-5 MLP with a mixed bit plan):

1. finegrain: `compiler.compile_model` wall time (median of 5, fresh output folder each), once
   writing the HLS project (the default) and once the IR only (``backends=()``), and the
   `finegrain compile` command end to end in a subprocess (median of 3);
2. hls4ml (ONNX frontend, Vivado backend, io_parallel) with per-layer types set from the same
   plan: convert (qonnx cleanup + config + convert), write, and the g++ build, each the median
   of 3 fresh projects; then `predict` throughput (median of 3);
3. finegrain `project.emulate` throughput on the same samples (median of 5), in this process and
   in a child process with the other OPENBLAS_NUM_THREADS setting (unset <-> 1), and how often
   hls4ml and finegrain agree;
4. finegrain C simulation (issue 3) through the `finegrain csim` command: the g++ build after
   deleting csim_build (median of 3), the rebuild with nothing changed (median of 3), and the
   testbench's run time (``run_seconds`` of report.json) on all samples and on 10 of them
   (median of 3 each); then the time spent inside the top function alone, from a copy of the
   generated testbench with a clock around each call, linked with csim's own firmware object.

hls4ml cannot give one weight tensor several formats, so fc1's per-row weight formats become one
type. The timed build uses the widest row format (most integer bits), as a user would. A second,
untimed "matched" build checks the two tools against each other: there fc1's type is the union
of the row formats (most integer bits and most fraction bits) and every weight and bias is
replaced by finegrain's quantized value, so both tools compute with the same numbers.

Prints a markdown table and appends it to bench/RESULTS.md.  Usage::

    .venv/bin/python bench/compile_and_emulate.py            # about two minutes, both OpenBLAS settings
    .venv/bin/python bench/compile_and_emulate.py --no-append
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import compiler  # noqa: E402  (after the sys.path line above)
from hls4ml_build import agreement, build_hls4ml, hls4ml_types, time_predict, with_finegrain_constants  # noqa: E402
from measure import Timing, _output, _seconds, repeated, silenced, timed  # noqa: E402

EXAMPLE = REPO / "examples" / "jet_tagger"
COMPILE_TARGET_SECONDS = 1.0
COMPILE_TARGET_SPEEDUP = 20.0
EMULATE_TARGET_RATIO = 100.0
CSIM_SMALL = 10  # vectors of the short csim run whose run time is subtracted


# --- finegrain ------------------------------------------------------------------------------


def load_samples(data: Path, samples: int) -> np.ndarray:
    """The data set's x tiled to ``samples`` rows, as float64 (so that hls4ml's predict returns
    its outputs without rounding them to float32)."""
    x_small = np.load(data)["x"]
    reps = -(-samples // len(x_small))
    return np.ascontiguousarray(np.tile(x_small, (reps, 1))[:samples], dtype=np.float64)


def finegrain_command() -> list[str]:
    """The installed `finegrain` command (or the module, when the package is not installed)."""
    installed = Path(sys.executable).with_name("finegrain")
    return [str(installed)] if installed.is_file() else [sys.executable, "-m", "compiler.cli"]


def time_finegrain_compile(model: Path, plan: Path, work: Path, runs: int, tag: str = "api", **options) -> Timing:
    """`compile_model` into a fresh folder; ``options`` go to it (e.g. ``backends=()``)."""
    timing = Timing()
    for i in range(runs):
        _, seconds = timed(compiler.compile_model, model, plan, output_dir=work / f"fg_{tag}_{i}", **options)
        timing.runs.append(seconds)
    return timing


def time_finegrain_cli(model: Path, plan: Path, work: Path, runs: int) -> Timing:
    """`finegrain compile` as a user runs it: a fresh interpreter, imports included."""
    timing = Timing()
    for i in range(runs):
        argv = finegrain_command() + ["compile", str(model), "--plan", str(plan), "-o", str(work / f"fg_cli_{i}")]
        _, seconds = timed(subprocess.run, argv, cwd=REPO, check=True, capture_output=True)
        timing.runs.append(seconds)
    return timing


def time_emulate(project, x: np.ndarray, runs: int) -> tuple[np.ndarray, Timing]:
    y, timing = repeated(project.emulate, x, runs=runs)
    return np.asarray(y, dtype=np.float64), timing


def blas_label(value: str | None) -> str:
    return "unset (OpenBLAS picks)" if value is None else value


def time_emulate_child(args, blas: str | None) -> Timing:
    """`emulate` timed in a child process with OPENBLAS_NUM_THREADS=``blas`` (None: unset).

    OpenBLAS reads the variable once, when numpy loads it, so the other setting needs a new
    process; the child is this script with --emulate-only."""
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if blas is not None:
        env["OPENBLAS_NUM_THREADS"] = blas
    argv = [sys.executable, __file__, "--emulate-only", "--model", str(args.model), "--plan", str(args.plan),
            "--data", str(args.data), "--samples", str(args.samples)]
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the emulate child failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return Timing(json.loads(proc.stdout.splitlines()[-1]))


def profile_emulate(project, x: np.ndarray, top: int = 8) -> str:
    """The functions where `emulate` spends its own time, hottest first."""
    profiler = cProfile.Profile()
    profiler.runcall(project.emulate, x)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return "\n".join(ln.replace(str(REPO) + "/", "") for ln in lines[start:])


# --- finegrain C simulation (issue 3) -------------------------------------------------------

# Prepended to a copy of the generated testbench: a clock around each call of the top function.
# The firmware is another translation unit (no LTO), so g++ cannot move work across the clock.
_TIMER = """#include <chrono>
#include <cstdio>
static double finegrain_bench_seconds = 0;
static struct FinegrainBenchReport {{
    ~FinegrainBenchReport() {{ std::printf("finegrain-bench: %.9f s in {top}\\n", finegrain_bench_seconds); }}
}} finegrain_bench_report;
"""
_TIMED_CALL = (r"\1{ auto finegrain_bench_t0 = std::chrono::steady_clock::now(); \2 finegrain_bench_seconds += "
               r"std::chrono::duration<double>(std::chrono::steady_clock::now() - finegrain_bench_t0).count(); }")


@dataclass
class CsimBench:
    clean_build: Timing  # report.json build_seconds after deleting csim_build
    rebuild: Timing  # build_seconds of a rerun with nothing changed
    run: Timing  # run_seconds on all samples: the testbench process (read, call, compare)
    run_small: Timing  # run_seconds on CSIM_SMALL samples
    cli: Timing  # the whole `finegrain csim --input` command on all samples
    compute: float  # seconds inside the top function alone, all samples
    timed_run: float  # wall time of the instrumented testbench, all samples
    vectors: int
    mismatches: int  # over every run


def csim_cli(out: Path, inputs: Path) -> tuple[dict, float]:
    """`finegrain csim OUT --input X.npy` in a subprocess: (report.json's "csim" entry, wall seconds).

    OUT must be absolute: csim runs the testbench binary by a path relative to the caller but
    from inside OUT/hls, so a relative OUT fails with "No such file or directory"."""
    argv = finegrain_command() + ["csim", str(out), "--input", str(inputs)]
    proc, seconds = timed(subprocess.run, argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: it ran but found mismatches, which the report counts
        raise SystemExit(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return json.loads((out / "report.json").read_text())["csim"], seconds


def time_top_function(hls_dir: Path, top: str, work: Path) -> tuple[float, float]:
    """(seconds inside ``top`` over tb_data's vectors, wall seconds of that testbench run).

    The generated testbench, copied next to it with a clock around the call of ``top``, built
    with csim's flags and linked with csim's firmware object."""
    from compiler.verify.csim import CXXFLAGS, ap_types_dir

    source = (hls_dir / "tb" / f"{top}_test.cpp").read_text()
    call = re.compile(rf"^(\s*)({re.escape(top)}\(.*\);)\s*$", re.M)
    if len(call.findall(source)) != 1:
        raise SystemExit(f"cannot find the one call of {top}() in the generated testbench")
    timed_source = hls_dir / "tb" / f"{top}_bench_timed.cpp"
    timed_source.write_text(_TIMER.format(top=top) + call.sub(_TIMED_CALL, source))
    binary = work / "csim_timed"
    subprocess.run(["g++", *CXXFLAGS, "-I", str(ap_types_dir()), "-I", str(hls_dir / "firmware"), str(timed_source),
                    str(hls_dir / "csim_build" / "firmware.o"), "-o", str(binary)], check=True, capture_output=True)
    proc, wall = timed(subprocess.run, [str(binary), str(hls_dir / "tb_data")], capture_output=True, text=True)
    match = re.search(r"^finegrain-bench: ([0-9.]+) s", proc.stdout, re.M)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"the timed testbench failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")
    return float(match.group(1)), wall


def time_csim(model: Path, plan: Path, work: Path, x: np.ndarray, runs: int) -> CsimBench:
    """Clean builds and the short runs first, then the runs on all of ``x`` (which leave its
    vectors in tb_data for the instrumented testbench)."""
    from compiler.backends.hls import top_name

    out = (work / "fg_csim").resolve()
    project = compiler.compile_model(model, plan, output_dir=out)
    hls_dir = out / "hls"
    x_all, x_small = work / "x_all.npy", work / "x_small.npy"
    np.save(x_all, x)
    np.save(x_small, x[:CSIM_SMALL])
    bench = CsimBench(Timing(), Timing(), Timing(), Timing(), Timing(), 0.0, 0.0, 0, 0)
    for _ in range(runs):
        shutil.rmtree(hls_dir / "csim_build", ignore_errors=True)
        report, _ = csim_cli(out, x_small)
        bench.clean_build.runs.append(report["build_seconds"])
        bench.mismatches += report["mismatches"]
    for _ in range(runs):
        report, _ = csim_cli(out, x_small)
        bench.run_small.runs.append(report["run_seconds"])
        bench.mismatches += report["mismatches"]
    for _ in range(runs):
        report, seconds = csim_cli(out, x_all)
        bench.rebuild.runs.append(report["build_seconds"])
        bench.run.runs.append(report["run_seconds"])
        bench.cli.runs.append(seconds)
        bench.mismatches += report["mismatches"]
        bench.vectors = report["vectors"]
    if bench.vectors != len(x):
        raise SystemExit(f"csim ran {bench.vectors} vectors, not {len(x)}")
    bench.compute, bench.timed_run = time_top_function(hls_dir, top_name(project.graph), work)
    return bench


# --- report ---------------------------------------------------------------------------------


def machine(load_at_start: tuple[float, ...]) -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = _output(["nproc"])
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("hls4ml", "numpy", "qonnx", "onnx"))
    return [
        ("date", _output(["date", "-u"])),
        ("machine", f"{cpu}, nproc {nproc}"),
        ("python", f"{platform.python_version()}; {versions}; finegrain {compiler.__version__}"),
        ("g++", _output(["g++", "-dumpfullversion"])),
        # finegrain's dense layers run through numpy's BLAS, whose threads fight other jobs for cores
        ("OPENBLAS_NUM_THREADS", f"{blas_label(os.environ.get('OPENBLAS_NUM_THREADS'))} in this process "
                                 "(every row but the child process's `emulate` row)"),
        # a shared machine: other jobs running at the same time slow every row, hls4ml's g++ most
        ("load average (1 min)", f"{load_at_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"),
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=EXAMPLE / "model.onnx")
    parser.add_argument("--plan", type=Path, default=EXAMPLE / "plan.json")
    parser.add_argument("--data", type=Path, default=EXAMPLE / "data.npz", help=".npz with key x")
    parser.add_argument("--samples", type=int, default=10_000, help="rows for the throughput runs (x is tiled)")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (hls4ml projects, log)")
    parser.add_argument("--emulate-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    args.model, args.plan, args.data = args.model.resolve(), args.plan.resolve(), args.data.resolve()

    if args.emulate_only:
        _, emulate = time_emulate(compiler.compile_model(args.model, args.plan), load_samples(args.data, args.samples),
                                  runs=5)
        print(json.dumps(emulate.runs))
        return 0

    import onnx

    load_at_start = os.getloadavg()
    onnx_model = onnx.load(args.model)
    plan = compiler.load_plan(args.plan)
    x = load_samples(args.data, args.samples)
    blas_here = os.environ.get("OPENBLAS_NUM_THREADS")
    blas_child = "1" if blas_here is None else None

    work = Path(tempfile.mkdtemp(prefix="finegrain_bench_"))
    log = work / "hls4ml.log"
    try:
        print("finegrain compile ...", flush=True)
        fg_api = time_finegrain_compile(args.model, args.plan, work, runs=5)
        fg_ir = time_finegrain_compile(args.model, args.plan, work, runs=5, tag="ir", backends=())
        fg_cli = time_finegrain_cli(args.model, args.plan, work, runs=3)
        project = compiler.compile_model(args.model, plan)

        print("hls4ml convert/write/compile x3 (g++) ...", flush=True)
        with silenced(log):
            _, import_hls = timed(__import__, "hls4ml")
            builds = [build_hls4ml(onnx_model, plan, work / f"hls_{i}", merge="widest") for i in range(3)]
        _, notes = hls4ml_types(onnx_model, plan, "widest")
        hls = builds[-1]
        hls_convert = Timing([b.convert for b in builds])
        hls_write = Timing([b.write for b in builds])
        hls_compile = Timing([b.compile for b in builds])
        hls_total = Timing([b.convert + b.write + b.compile for b in builds])

        print(f"hls4ml predict / finegrain emulate on {len(x)} samples ...", flush=True)
        with silenced(log):
            y_hls, predict = time_predict(hls.model, x, runs=3)
        y_fg, emulate = time_emulate(project, x, runs=5)
        emulate_child = time_emulate_child(args, blas_child)

        print("matched-precision check (untimed) ...", flush=True)
        with silenced(log):
            matched = build_hls4ml(with_finegrain_constants(onnx_model, project), plan, work / "hls_matched", "union")
            y_matched = np.asarray(matched.model.predict(x), dtype=np.float64).reshape(len(x), -1)
        _, matched_notes = hls4ml_types(onnx_model, plan, "union")

        print(f"finegrain csim: clean builds, rebuilds, runs on {CSIM_SMALL} and {len(x)} vectors ...", flush=True)
        csim = time_csim(args.model, args.plan, work, x, runs=3)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    n = len(x)
    hls_rate = n / predict.median
    emulate_rates = {blas_label(blas_here): n / emulate.median, blas_label(blas_child): n / emulate_child.median}
    best_blas = max(emulate_rates, key=emulate_rates.get)
    ratio = emulate_rates[best_blas] / hls_rate
    speedup = hls_total.median / fg_api.median
    speedup_ir = hls_total.median / fg_ir.median
    speedup_cli = hls_total.median / fg_cli.median
    compile_ok = fg_api.median < COMPILE_TARGET_SECONDS and speedup >= COMPILE_TARGET_SPEEDUP
    emulate_ok = ratio >= EMULATE_TARGET_RATIO

    csim_rate = n / csim.run.median
    csim_net = csim.run.median - csim.run_small.median
    csim_net_rate = (n - CSIM_SMALL) / csim_net if csim_net > 0 else float("inf")
    compute_rate = n / csim.compute
    to_c_model_fg = fg_api.median + csim.clean_build.median

    def rate(timing: Timing) -> str:
        return f"{timing.cell()} = {n / timing.median:,.0f} samples/s"

    rows = [
        ("finegrain `compile_model` (API, fresh folder, writes the HLS project)", fg_api.cell()),
        ("finegrain `compile_model`, IR only (`backends=()`)", fg_ir.cell()),
        ("finegrain `compile` CLI end to end (new interpreter, writes the HLS project)", fg_cli.cell()),
        ("hls4ml import (once, not counted)", _seconds(import_hls)),
        ("hls4ml convert (qonnx cleanup + config + convert)", hls_convert.cell()),
        ("hls4ml write", hls_write.cell()),
        ("hls4ml compile (g++ build, `_compile`)", hls_compile.cell()),
        ("hls4ml convert + write + compile", hls_total.cell()),
        (f"hls4ml `predict`, {n} samples", rate(predict)),
        (f"finegrain `emulate`, {n} samples, OPENBLAS_NUM_THREADS {blas_label(blas_here)}", rate(emulate)),
        (f"finegrain `emulate`, {n} samples, OPENBLAS_NUM_THREADS {blas_label(blas_child)} (child process)",
         rate(emulate_child)),
        ("compile speedup, finegrain API vs hls4ml total",
         f"{speedup:.0f}x (IR only: {speedup_ir:.0f}x; CLI: {speedup_cli:.1f}x); target < 1 s and >= 20x "
         f"(API): {verdict(compile_ok)}"),
        ("emulation throughput ratio, finegrain vs hls4ml predict",
         f"{ratio:.1f}x (best setting: OPENBLAS_NUM_THREADS {best_blas}); target >= 100x: {verdict(emulate_ok)}"),
        ("agreement, timed hls4ml build vs finegrain", agreement(y_hls, y_fg)),
        ("agreement, matched-precision hls4ml build vs finegrain", agreement(y_matched, y_fg)),
        ("finegrain csim clean build (`build_seconds`, csim_build deleted; g++ -O2, 2 units in parallel + link)",
         csim.clean_build.cell()),
        ("finegrain csim rebuild, nothing changed (`build_seconds`; report.json rounds to 1 ms)", csim.rebuild.cell()),
        ("clean g++ build, hls4ml `_compile` / finegrain csim", f"{hls_compile.median / csim.clean_build.median:.2f}x"),
        ("to a runnable C model: finegrain `compile_model` + csim clean build vs hls4ml convert + write + compile",
         f"{_seconds(to_c_model_fg)} vs {_seconds(hls_total.median)} ({hls_total.median / to_c_model_fg:.2f}x)"),
        (f"finegrain csim `run_seconds`, {n} vectors (testbench process: read text vectors, call, compare)",
         rate(csim.run)),
        (f"finegrain csim `run_seconds`, {CSIM_SMALL} vectors (rounded to 1 ms)", csim.run_small.cell()),
        (f"finegrain csim, {n} minus {CSIM_SMALL} vectors (per-process fixed cost removed)",
         f"{_seconds(csim_net)} = {csim_net_rate:,.0f} samples/s"),
        (f"finegrain csim, inside the top function only ({n} vectors, clock around each call)",
         f"{_seconds(csim.compute)} = {compute_rate:,.0f} samples/s; the instrumented testbench ran "
         f"{_seconds(csim.timed_run)}, so reading, parsing and comparing take "
         f"{max(csim.timed_run - csim.compute, 0) / csim.timed_run:.0%}"),
        (f"finegrain `csim --input` CLI end to end, {n} vectors (new interpreter, emulator writes the vectors)",
         csim.cli.cell()),
        ("csim throughput ratio vs hls4ml `predict`",
         f"{csim_rate / hls_rate:.2f}x (run_seconds), {compute_rate / hls_rate:.2f}x (top function only)"),
        ("csim agreement with the emulator",
         f"{csim.mismatches} mismatching outputs over all csim runs ({csim.vectors} vectors in the full runs)"),
    ]
    model_name = args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model
    lines = [f"## {model_name} + {args.plan.name}, {n} samples", ""]
    lines += [f"- {k}: {v}" for k, v in machine(load_at_start)]
    lines += ["- hls4ml path: ONNX frontend (qonnx cleanup, GemmToMatMul), Vivado backend, io_parallel", ""]
    lines += ["| measurement | result |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "hls4ml types of the timed build (fc1 weights: one type for all rows):", ""]
    lines += [f"- {note}" for note in notes] + [f"- `{t}`" for t in hls.layer_types]
    lines += ["", "Matched-precision build (untimed; every weight and bias holds finegrain's quantized value):",
              ""] + [f"- {note}" for note in matched_notes]
    if not emulate_ok:
        lines += ["", f"`project.emulate` profile on {len(x)} samples (cProfile, by own time, OPENBLAS_NUM_THREADS "
                  f"{blas_label(blas_here)}):", "", "```", profile_emulate(project, x), "```"]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.no_append:
        header = "" if args.results.exists() else (
            "# finegrain benchmarks\n\nAppended by `bench/compile_and_emulate.py`; newest last.\n\n")
        with open(args.results, "a") as f:
            f.write(header + text + "\n")
        print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
