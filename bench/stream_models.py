"""Benchmark (run by hand): the stream architecture at two folding targets per model (issue 13).

    .venv/bin/python bench/stream_models.py [--work DIR] [--only CASE ...] [--vectors 100]
        [--synth CASE ...] [--synth-timeout 1200] [--json FILE]

For each case (a model, its plan, a board and a budget), the way a user runs it, each command
in a child process (`finegrain` of this checkout):

1. ``finegrain compile MODEL --plan P --arch stream --board B --target-ii N --backend rtl``:
   wall time and report.json's ``compile_seconds``; the budget's per-layer choice (report.json
   ``folding``): estimated LUT/FF/DSP/BRAM and their fraction of the board's part, and the II the
   budget expects; schedule.json's predicted first-output latency and II (the stream cycle model);
2. ``finegrain sim OUT --vectors N`` (Verilator, a fresh build per folder): build and run seconds,
   images/s of simulation, bit-exactness, measured latency and II against the predicted ones;
3. for the cases ``--synth`` names: yosys synth_xilinx of OUT/rtl (compiler.verify.synth, the
   cache `finegrain report --synth` uses), stopped after ``--synth-timeout`` seconds and then
   recorded as not finished.

The small CNN's fully parallel design is a case too (``--arch parallel``): its estimate is
`finegrain report`'s, its synthesis the one cached in tests/synth_cache (it took 30+ minutes;
``--synth small_cnn_parallel`` reads it from there and never starts it).

Prints the machine, its load and two markdown tables for bench/RESULTS.md (paste by hand), and
with ``--json`` writes every number measured.  Without syntheses about 15 minutes on 2 cores
(the KWS DS-CNN's Verilator builds are most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_float_reference import REAL_PLANS  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
FINEGRAIN = [sys.executable, "-m", "compiler.cli"]
SYNTH_CACHE = REPO / "tests" / "synth_cache"
# mnist at 8 bits everywhere: input U[0,1) in fixed<8,1>, activations within [-7.1, 3.1] in fixed<8,4>
MNIST_8BIT = {"defaults": {"input": "fixed<8,1,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                           "bias": "fixed<8,2,RND_CONV,SAT>", "activation": "fixed<8,4,RND_CONV,SAT>"},
              "tensors": {"Parameter87": "fixed<8,1,RND_CONV,SAT>"}}


@dataclass
class Case:
    name: str
    model: Path
    plan: dict | Path
    board: str
    args: list[str]  # the budget (or architecture) options of `finegrain compile`
    sim: bool = True
    result: dict = field(default_factory=dict)


def _small(name: str, board: str, *args: str) -> Case:
    folder = REPO / "examples" / "small_cnn"
    return Case(name, folder / "model.onnx", folder / "plan.json", board, list(args))


CASES = [
    # on the default part, as tests/test_estimate.py compiles it: the RTL tests/synth_cache holds
    _small("small_cnn_parallel", "vu9p", "--arch", "parallel"),
    _small("small_cnn_ii324", "zcu104", "--arch", "stream", "--target-ii", "324"),
    _small("small_cnn_ii1200", "zcu104", "--arch", "stream", "--target-ii", "1200"),
    Case("mnist_ii1024", SHARED / "mnist_cnn_float.onnx", REAL_PLANS["mnist_cnn_float"], "zcu104",
         ["--arch", "stream", "--target-ii", "1024"]),
    Case("mnist_ii8192", SHARED / "mnist_cnn_float.onnx", REAL_PLANS["mnist_cnn_float"], "zcu104",
         ["--arch", "stream", "--target-ii", "8192"]),
    Case("mnist_8bit_ii1024", SHARED / "mnist_cnn_float.onnx", MNIST_8BIT, "zcu104",
         ["--arch", "stream", "--target-ii", "1024"], sim=False),
    # its global average pool alone is estimated at 3,840 DSPs (no folding): past the xczu7ev's 1,728
    Case("kws_ii696", SHARED / "mlperf_kws_dscnn_float.onnx", REAL_PLANS["mlperf_kws_dscnn_float"], "vu9p",
         ["--arch", "stream", "--target-ii", "696"]),
    Case("kws_ii4000", SHARED / "mlperf_kws_dscnn_float.onnx", REAL_PLANS["mlperf_kws_dscnn_float"], "vu9p",
         ["--arch", "stream", "--target-ii", "4000"]),
]


def _run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def _failed(what: str, done: subprocess.CompletedProcess) -> str:
    tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-6:])
    return f"{what} exit {done.returncode}: {tail}"


def measure(case: Case, work: Path, vectors: int, env: dict) -> dict:
    out = work / case.name
    plan = case.plan
    if isinstance(plan, dict):
        plan = work / f"{case.name}.plan.json"
        plan.write_text(json.dumps(case.plan, indent=1))
    r = case.result
    wall, done = _run([*FINEGRAIN, "compile", str(case.model), "--plan", str(plan), "--board", case.board,
                       "--backend", "rtl", *case.args, "-o", str(out), "--force"], env)
    if done.returncode:
        r["error"] = _failed("compile", done)
        return r
    report = json.loads((out / "report.json").read_text())
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    r.update(compile_wall=wall, compile_seconds=report["compile_seconds"], top=report["names"]["model"]["verilog"],
             architecture=schedule.get("architecture", "parallel"), folding=report.get("folding"),
             predicted_latency=schedule.get("latency_cycles"), predicted_ii=schedule.get("ii_cycles"),
             engines=[(e["name"], e["reuse"]) for e in schedule.get("engines", [])])
    if r["folding"] is None:  # the parallel design: `finegrain report`'s estimate
        wall, done = _run([*FINEGRAIN, "report", str(out)], env)
        if done.returncode:
            r["error"] = _failed("report", done)
        r["estimate"] = json.loads((out / "report.json").read_text()).get("estimate")
    if case.sim:
        wall, done = _run([*FINEGRAIN, "sim", str(out), "--vectors", str(vectors)], env)
        r["sim_wall"] = wall
        r["sim_text"] = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
        r["sim"] = json.loads((out / "report.json").read_text()).get("sim")
        if done.returncode:
            r["sim_error"] = _failed("sim", done)
    return r


SYNTH_CHILD = """
import json, sys
from pathlib import Path
from compiler.verify.synth import run_synth
sources, top, family = json.loads(sys.argv[1])
result = run_synth([Path(s) for s in sources], top, family)
print(json.dumps({**result.report(), "cached": result.cached}))
"""


def synthesize(case: Case, work: Path, timeout: float, env: dict) -> dict:
    """yosys synth_xilinx of the case's RTL in a child process, killed (its whole process group)
    after ``timeout`` seconds: run_synth's own timeout is only checked when yosys prints a line,
    and ABC's LUT mapping prints none for many minutes."""
    from compiler.backends.rtl import rtl_sources
    from compiler.targets import family_of, resolve_part
    from compiler.verify import synth

    out = work / case.name
    top = case.result["top"]
    family = family_of(resolve_part(case.board, None))
    sources = rtl_sources(out / "rtl", top)
    env = dict(env)
    if case.result["architecture"] != "stream":
        # the parallel design's synthesis (30+ min) only from the repository's cache
        env["FINEGRAIN_SYNTH_CACHE"] = str(SYNTH_CACHE)
        key = synth._cache_key(synth.yosys_version(synth.find_yosys()), top, family, sources)
        if not (SYNTH_CACHE / f"{key}.json").is_file():
            # the key covers every file of rtl/, and the library has gained modules this design does
            # not use: the committed result of the same top (the 231k LUTs), marked stale
            for entry in sorted(SYNTH_CACHE.glob("*.json")):
                data = json.loads(entry.read_text())
                if data.get("top") == top and data.get("family") == family:
                    result = synth.classify(data["cells"], family, data["seconds"], "")
                    return {**result.report(), "cached": True, "stale_key": entry.name}
            return {"error": "not in tests/synth_cache (not started: 30+ minutes)"}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", SYNTH_CHILD, json.dumps([[str(s) for s in sources], top, family])],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"error": f"not finished after {timeout:.0f} s (stopped)", "wall": time.perf_counter() - start}
    if child.returncode:
        return {"error": " | ".join(stderr.strip().splitlines()[-3:])[:300], "wall": time.perf_counter() - start}
    return {**json.loads(stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - start}


def _fmt_ratio(num, part_frac) -> str:
    return f"{num:,} ({100 * part_frac:.1f}%)" if part_frac is not None else f"{num:,}"


def tables(cases: list[Case]) -> str:
    lines = ["| case | board | options | II chosen by budget | compile s | Verilator build s | sim run s "
             "(vectors) | sim images/s | cycles/image | latency meas./pred. | II meas./pred. | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        r = c.result
        if "error" in r and "top" not in r:
            lines.append(f"| {c.name} | {c.board} | `{' '.join(c.args)}` | {r['error']} |" + " |" * 8)
            continue
        fold = r.get("folding") or {}
        s = r.get("sim") or {}
        sim_cols = ["not run"] * 7
        if s:
            per_s = s["vectors"] / s["run_seconds"] if s.get("run_seconds") else 0
            lat = f"{s['latency_cycles']:,} / {s['predicted_latency_cycles']:,}" if s.get("latency_cycles") else "-"
            ii = f"{s['ii_cycles']:,} / {s['predicted_ii_cycles']:,}" if s.get("ii_cycles") else "-"
            sim_cols = [f"{s['build_seconds']:.0f}", f"{s['run_seconds']:.1f} ({s['vectors']})", f"{per_s:.1f}",
                        f"{s.get('ii_cycles') or 1:,}", lat, ii,
                        "yes" if s["mismatches"] == 0 else f"NO ({s['mismatches']} mismatches)"]
        elif r.get("sim_error"):
            sim_cols[0] = r["sim_error"]
        lines.append(f"| {c.name} | {c.board} | `{' '.join(c.args)}` | {fold.get('ii_cycles', '-')} "
                     f"| {r['compile_seconds']:.1f} | " + " | ".join(sim_cols) + " |")
    lines += ["", "| case | est. LUT | est. FF | est. DSP | est. BRAM36 | yosys LUT | yosys FF | yosys DSP "
              "| yosys BRAM36 | LUT est./yosys | synthesis s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        r = c.result
        if "top" not in r:
            continue
        fold = r.get("folding")
        if fold:
            tot, frac = fold["totals"], fold["fraction_of_part"]
            est = [_fmt_ratio(round(tot[k]), frac.get(k)) for k in ("lut", "ff", "dsp")] + [f"{tot['bram']:g}"]
        elif r.get("estimate"):
            e = r["estimate"]
            est = [f"{e['lut']:,}", f"{e['ff']:,}", f"{e['dsp']:,}", f"{e.get('bram', 0):g}"]
        else:
            est = ["-"] * 4
        syn = r.get("synth")
        if not syn:
            syn_cols = ["not run"] * 4 + ["-", "-"]
        elif "error" in syn:
            syn_cols = [syn["error"]] + [""] * 3 + ["-", f"{syn.get('wall', 0):.0f}" if syn.get("wall") else "-"]
        else:
            lut_est = (fold["totals"]["lut"] if fold else (r.get("estimate") or {}).get("lut"))
            ratio = f"{lut_est / syn['lut']:.2f}" if lut_est and syn["lut"] else "-"
            secs = f"{syn['seconds']:.0f}" + (" (cached)" if syn["cached"] else "")
            if syn.get("stale_key"):
                secs += f" (tests/synth_cache/{syn['stale_key']}: an older rtl/ library)"
            syn_cols = [f"{syn['lut']:,}", f"{syn['ff']:,}", f"{syn['dsp']:,}", f"{syn.get('bram', 0):g}", ratio,
                        secs]
        lines.append(f"| {c.name} | " + " | ".join(est + syn_cols) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the output folders (default: a temporary one)")
    parser.add_argument("--only", nargs="+", help="cases to run: " + ", ".join(c.name for c in CASES))
    parser.add_argument("--vectors", type=int, default=100)
    parser.add_argument("--synth", nargs="*", default=[], help="cases to synthesize with yosys, in this order")
    parser.add_argument("--synth-timeout", type=float, default=1200.0)
    parser.add_argument("--json", type=Path, help="write every measured number here")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or c.name in args.only]
    work = args.work or Path(tempfile.mkdtemp(prefix="finegrain-bench-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    # a fresh Verilator build per folder; syntheses in the user's cache (~/.cache/finegrain/synth)
    env = {k: v for k, v in os.environ.items() if k not in ("FINEGRAIN_RTL_BUILD_DIR", "FINEGRAIN_SYNTH_CACHE")}
    env["PYTHONPATH"] = str(REPO)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"load at start {os.getloadavg()[0]:.1f}", flush=True)
    for case in cases:
        start = time.perf_counter()
        measure(case, work, args.vectors, env)
        print(f"{case.name}: {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.1f}; "
              f"{case.result.get('error') or case.result.get('sim_error') or (case.result.get('sim_text') or [''])[0]}",
              flush=True)
    print(tables(cases), flush=True)
    for name in args.synth:  # in the order given
        case = next((c for c in cases if c.name == name and "top" in c.result), None)
        if case is not None:
            case.result["synth"] = synthesize(case, work, args.synth_timeout, env)
            print(f"{case.name} synthesis: {json.dumps(case.result['synth'])[:300]}; "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}\n")
    print(tables(cases))
    if args.json:
        args.json.write_text(json.dumps({c.name: {"board": c.board, "args": c.args, **c.result} for c in cases},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
