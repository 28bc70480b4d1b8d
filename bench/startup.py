"""Start-up benchmark (issue 17, item 5): from the jet tagger's ONNX to 1,000 bit-accurate
outputs, finegrain's two commands against hls4ml's Python flow, both measured in one run.

finegrain: ``finegrain compile model.onnx --plan plan.json -o OUT`` then ``finegrain emulate
OUT --input x.npy --output y.npy``, each a new interpreter as a user runs them (the console
script's code, ``from compiler.cli import main``, with this checkout on PYTHONPATH), a fresh
OUT each run.  Two variants: ``--backend hls`` (an HLS project, what hls4ml writes) and the
default backends (HLS and RTL: the RTL's adder graphs and its register placement by HiGHS are
work hls4ml does not do).

finegrain's Python API as well: a new interpreter runs a script that imports finegrain, calls
``compile_model(model, plan, output_dir=OUT, backends=["hls"])`` and ``project.emulate(x)``,
timing each step as the hls4ml script does (the comparison hls4ml's own Python flow invites:
steps against steps, whole script against whole script).  The target is stated for the two
commands.

hls4ml: a new interpreter runs a script that imports hls4ml, converts the same ONNX
(`hls4ml.converters.convert_from_onnx_model` after qonnx's cleanup and GemmToMatMul, the
Vivado backend, io_parallel) with every layer's precision from the same plan (fc1's per-row
weight formats become the widest row's, the one type hls4ml can give a tensor; accumulators
and Dense results "auto": hls4ml infers exact widths, see bench/hls4ml_build.py), writes
the project, compiles it (its g++ build), and predicts the same 1,000 vectors.  The script
times each step itself; the speedup is given against those steps alone (convert + write +
compile + predict: the conservative figure, no hls4ml import or interpreter start-up) and
against the whole script.

Runs alternate between the tools (finegrain, hls4ml, finegrain, ...), so load from other jobs
on the machine falls on both.  Then a breakdown of each finegrain command: interpreter start-up,
the imports by package (``python -X importtime``), and the rest (reading, compiling or
emulating, writing).  Prints a markdown section and appends it to bench/RESULTS.md.

    .venv/bin/python bench/startup.py                  # about two minutes
    .venv/bin/python bench/startup.py --no-append --runs 3 --hls4ml-runs 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "jet_tagger"
TARGET_SPEEDUP = 20.0
# Bytecode is cached as in any installed package (one untimed warm-up run writes it): with
# PYTHONDONTWRITEBYTECODE set and no __pycache__, every run would compile finegrain's sources.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(REPO)}
# What the `finegrain` console script runs (setup.cfg's entry point).
FINEGRAIN = [sys.executable, "-c", "import sys; from compiler.cli import main; sys.exit(main())"]


def wall(argv: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, **kwargs)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc, seconds


def cell(runs: list[float]) -> str:
    return f"best {_s(min(runs))}, median {_s(statistics.median(runs))} (n={len(runs)})"


def _s(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# --- finegrain ------------------------------------------------------------------------------


def finegrain_run(args, work: Path, x_path: Path, tag: str, backend: str | None) -> dict:
    """compile + emulate in two new interpreters: wall seconds of each, and the outputs."""
    out, y_path = work / f"fg_{tag}", work / f"y_{tag}.npy"
    shutil.rmtree(out, ignore_errors=True)
    compile_argv = FINEGRAIN + ["compile", str(args.model), "--plan", str(args.plan), "-o", str(out)]
    _, compile_s = wall(compile_argv + (["--backend", backend] if backend else []))
    _, emulate_s = wall(FINEGRAIN + ["emulate", str(out), "--input", str(x_path), "--output", str(y_path)])
    return {"compile": compile_s, "emulate": emulate_s, "total": compile_s + emulate_s, "y": np.load(y_path),
            "out": out}


def finegrain_api_child(args) -> int:
    """The same flow as one Python script, as an hls4ml user writes theirs: import finegrain,
    compile_model (HLS project written), emulate; print each step's seconds as JSON."""
    start = time.perf_counter()
    x = np.load(args.x)
    ready = time.perf_counter()
    import finegrain

    imported = time.perf_counter()
    project = finegrain.compile_model(str(args.model), str(args.plan), output_dir=args.finegrain_api_child,
                                      backends=["hls"])
    compiled = time.perf_counter()
    y = project.emulate(x)
    emulated = time.perf_counter()
    np.save(Path(args.finegrain_api_child).with_suffix(".npy"), y)
    print(json.dumps({"setup": ready - start, "import": imported - ready, "compile": compiled - imported,
                      "emulate": emulated - compiled}))
    return 0


def finegrain_api_run(args, work: Path, x_path: Path, tag: str) -> dict:
    out = work / f"api_{tag}"
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, __file__, "--finegrain-api-child", str(out), "--x", str(x_path), "--model",
            str(args.model), "--plan", str(args.plan)]
    proc, seconds = wall(argv)
    steps = json.loads(proc.stdout.strip().splitlines()[-1])
    steps["steps"] = steps["compile"] + steps["emulate"]
    steps["script"] = seconds
    steps["y"] = np.load(out.with_suffix(".npy"))
    return steps


# --- hls4ml (its own interpreter: this file with --hls4ml-child) ----------------------------------


def hls4ml_child(args) -> int:
    """Import hls4ml, convert, write, compile, predict; print each step's seconds as JSON."""
    start = time.perf_counter()
    sys.path.insert(0, str(REPO / "bench"))
    import onnx

    import compiler
    from compile_and_emulate import load_samples
    from hls4ml_build import build_hls4ml
    from measure import silenced

    plan = compiler.load_plan(args.plan)
    onnx_model = onnx.load(args.model)
    x = load_samples(args.data, args.samples)
    out = Path(args.hls4ml_child)
    ready = time.perf_counter()
    with silenced(out.with_suffix(".log")):
        import hls4ml  # noqa: F401  (timed: a user's script imports it)

        imported = time.perf_counter()
        build = build_hls4ml(onnx_model, plan, out, merge="widest")
        predict_start = time.perf_counter()
        y = np.asarray(build.model.predict(x), dtype=np.float64).reshape(len(x), -1)
        predict = time.perf_counter() - predict_start
    np.save(out.with_suffix(".npy"), y)
    print(json.dumps({"setup": ready - start, "import": imported - ready, "convert": build.convert,
                      "write": build.write, "compile": build.compile, "predict": predict}))
    return 0


def hls4ml_run(args, work: Path, tag: str) -> dict:
    out = work / f"hls_{tag}"
    argv = [sys.executable, __file__, "--hls4ml-child", str(out), "--model", str(args.model), "--plan",
            str(args.plan), "--data", str(args.data), "--samples", str(args.samples)]
    proc, seconds = wall(argv)
    steps = json.loads(proc.stdout.strip().splitlines()[-1])
    steps["steps"] = steps["convert"] + steps["write"] + steps["compile"] + steps["predict"]
    steps["script"] = seconds
    steps["y"] = np.load(out.with_suffix(".npy"))
    return steps


# --- where finegrain's time goes ------------------------------------------------------------------


OWNERS = ("compiler", "numpy", "onnx", "ml_dtypes", "google", "jinja2", "markupsafe")


def import_times(argv: list[str], startup_modules: set[str]) -> tuple[dict[str, float], float]:
    """Seconds a command spends importing, by owner, and the wall time of that run.

    Each module's own time (``-X importtime``'s self column) goes to its package when that is
    one of OWNERS, else to the nearest OWNERS package that imported it (the standard library
    modules onnx needs count as onnx's), else to "standard library".  Modules the bare
    interpreter imports too (``startup_modules``: site, encodings) belong to start-up."""
    proc, seconds = wall([sys.executable, "-X", "importtime", *argv[1:]])
    lines = [m for m in (re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", ln)
                         for ln in proc.stderr.splitlines()) if m]
    totals: dict[str, float] = {}
    stack: list[tuple[int, str]] = []  # (depth, owner) of the modules that imported this one
    for match in reversed(lines):  # importtime prints a module after what it imports
        depth, name = len(match.group(2)), match.group(3)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        package = name.split(".")[0]
        owner = package if package in OWNERS else stack[-1][1] if stack else "standard library"
        stack.append((depth, owner))
        if name not in startup_modules:
            totals[owner] = totals.get(owner, 0.0) + int(match.group(1)) * 1e-6
    return totals, seconds


def breakdown(args, work: Path, x_path: Path, runs: int) -> list[str]:
    """Interpreter start-up, imports by package, and the rest, for each finegrain command,
    from one ``-X importtime`` run of each (which adds a little of its own)."""
    startup = min(wall([sys.executable, "-c", "pass"])[1] for _ in range(runs))
    bare = wall([sys.executable, "-X", "importtime", "-c", "pass"])[0].stderr
    startup_modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)", bare, re.M))
    out = work / "fg_breakdown"
    shutil.rmtree(out, ignore_errors=True)
    compile_argv = FINEGRAIN + ["compile", str(args.model), "--plan", str(args.plan), "-o", str(out),
                                "--backend", "hls", "--force"]
    emulate_argv = FINEGRAIN + ["emulate", str(out), "--input", str(x_path), "--output", str(work / "y_b.npy")]
    wall(compile_argv)
    lines = ["| command | wall (this run) | interpreter start-up (`python -c pass`, best) | imports, by who asked "
             "for them | the rest: reading, work, writing |", "|---|---|---|---|---|"]
    for name, argv in (("compile --backend hls", compile_argv), ("emulate", emulate_argv)):
        imports, seconds = import_times(argv, startup_modules)
        shown = ", ".join(f"{p} {_s(s)}" for p, s in sorted(imports.items(), key=lambda kv: -kv[1]) if s >= 0.002)
        rest = seconds - startup - sum(imports.values())
        lines.append(f"| `{name}` | {_s(seconds)} | {_s(startup)} | {_s(sum(imports.values()))}: {shown} | "
                     f"{_s(rest)} |")
    return lines


def floor(runs: int) -> float:
    """The least two commands can take without any finegrain code: two new interpreters that
    only import what compile and emulate cannot do without (numpy, onnx and jinja2; numpy), the
    best of ``runs`` each."""
    compile_floor = min(wall([sys.executable, "-c", "import numpy, onnx, jinja2"])[1] for _ in range(runs))
    emulate_floor = min(wall([sys.executable, "-c", "import numpy"])[1] for _ in range(runs))
    return compile_floor + emulate_floor


# --- report ---------------------------------------------------------------------------------------


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    same = float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))
    return f"argmax agrees on {same:.1%}, bit-identical rows {float(np.mean(np.all(a == b, axis=1))):.1%}"


def machine(load_at_start: float) -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("hls4ml", "numpy", "onnx", "ml_dtypes", "qonnx"))
    gxx = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- machine: {cpu}, {os.cpu_count()} cores; load average (1 min) {load_at_start:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end (other jobs share the machine)",
            f"- python {platform.python_version()}; {versions}; g++ {gxx}",
            f"- OPENBLAS_NUM_THREADS: {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=EXAMPLE / "model.onnx")
    parser.add_argument("--plan", type=Path, default=EXAMPLE / "plan.json")
    parser.add_argument("--data", type=Path, default=EXAMPLE / "data.npz", help=".npz with key x (tiled)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="finegrain runs of each variant")
    parser.add_argument("--hls4ml-runs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-append", action="store_true", help="print the section only")
    parser.add_argument("--hls4ml-child", help=argparse.SUPPRESS)
    parser.add_argument("--finegrain-api-child", help=argparse.SUPPRESS)
    parser.add_argument("--x", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.model, args.plan, args.data = args.model.resolve(), args.plan.resolve(), args.data.resolve()
    if args.hls4ml_child:
        return hls4ml_child(args)
    if args.finegrain_api_child:
        return finegrain_api_child(args)

    sys.path.insert(0, str(REPO / "bench"))
    from compile_and_emulate import load_samples

    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="finegrain_startup_"))
    try:
        x_path = work / "x.npy"
        np.save(x_path, load_samples(args.data, args.samples))
        finegrain_run(args, work, x_path, "warm-up", "hls")  # writes the bytecode caches; not timed
        finegrain_api_run(args, work, x_path, "warm-up")
        fg = {"hls": [], "default": []}
        hls, api = [], []
        for i in range(max(args.runs, args.hls4ml_runs)):
            if i < args.runs:
                fg["hls"].append(finegrain_run(args, work, x_path, f"hls{i}", "hls"))
                fg["default"].append(finegrain_run(args, work, x_path, f"default{i}", None))
                api.append(finegrain_api_run(args, work, x_path, str(i)))
            if i < args.hls4ml_runs:
                hls.append(hls4ml_run(args, work, str(i)))
            print(f"run {i + 1} done", file=sys.stderr, flush=True)
        table = breakdown(args, work, x_path, args.runs)
        least = floor(args.runs)
        y_fg, y_hls = fg["hls"][0]["y"], hls[0]["y"]
        same_outputs = all(np.array_equal(r["y"], y_fg) for v in [*fg.values(), api] for r in v)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def col(rows, key):
        return [r[key] for r in rows]

    steps = statistics.median(col(hls, "steps"))
    lines = [f"## Start-up: jet tagger ONNX to {args.samples:,} bit-accurate outputs, finegrain CLI vs hls4ml "
             f"(bench/startup.py)", ""] + machine(load_at_start) + [""]
    lines += ["| measurement | wall time |", "|---|---|"]
    for variant, label in (("hls", "`--backend hls`"), ("default", "default backends (hls, rtl)")):
        rows = fg[variant]
        lines += [f"| finegrain `compile` {label} | {cell(col(rows, 'compile'))} |",
                  f"| finegrain `emulate` ({args.samples:,} vectors) after it | {cell(col(rows, 'emulate'))} |",
                  f"| finegrain `compile` {label} + `emulate` | {cell(col(rows, 'total'))} |"]
    for key, label in (("import", "import finegrain (not in 'steps')"), ("compile", "compile_model, HLS project "
                       "written"), ("emulate", f"emulate ({args.samples:,} vectors)"),
                       ("steps", "compile_model + emulate ('steps')"),
                       ("script", "the whole script (new interpreter, imports, steps)")):
        lines.append(f"| finegrain Python API {label} | {cell(col(api, key))} |")
    for key, label in (("import", "import hls4ml (not in 'steps')"), ("convert", "convert (qonnx cleanup + config + "
                       "convert_from_onnx_model)"), ("write", "write"), ("compile", "compile (g++ build)"),
                       ("predict", f"predict ({args.samples:,} vectors)"),
                       ("steps", "convert + write + compile + predict ('steps')"),
                       ("script", "the whole hls4ml script (new interpreter, imports, steps)")):
        lines.append(f"| hls4ml {label} | {cell(col(hls, key))} |")
    for variant, label in (("hls", "`--backend hls`"), ("default", "default backends")):
        total = statistics.median(col(fg[variant], "total"))
        ratio = steps / total
        lines.append(f"| speedup, finegrain {label} vs hls4ml steps (medians) | {ratio:.1f}x (whole script: "
                     f"{statistics.median(col(hls, 'script')) / total:.1f}x); target >= {TARGET_SPEEDUP:.0f}x: "
                     f"{'met' if ratio >= TARGET_SPEEDUP else '**missed**'} |")
    api_steps, api_script = statistics.median(col(api, "steps")), statistics.median(col(api, "script"))
    lines.append(f"| speedup, finegrain Python API vs hls4ml's script, steps against steps (medians) | "
                 f"{steps / api_steps:.1f}x (whole script against whole script: "
                 f"{statistics.median(col(hls, 'script')) / api_script:.1f}x) |")
    budget = steps / TARGET_SPEEDUP
    lines.append(f"| floor of the two commands: two interpreters importing only numpy, onnx, jinja2 (compile) and "
                 f"numpy (emulate), best | {_s(least)}; the {TARGET_SPEEDUP:.0f}x target allows {_s(budget)}, which "
                 f"leaves {_s(budget - least)} for all of finegrain's own imports and work in both |")
    lines.append(f"| outputs | finegrain's identical in every run and variant: {same_outputs}; vs hls4ml: "
                 f"{agreement(y_hls, y_fg)} (hls4ml has one weight type for fc1's rows) |")
    lines += ["", "Where finegrain's time goes (`-X importtime`; the rest is reading, compiling or emulating and "
              "writing):", ""] + table
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        with open(args.results, "a") as f:
            f.write("\n" + text)
        print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
