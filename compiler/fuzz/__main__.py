"""``python -m compiler.fuzz --minutes N --seed S [--csim] [--sim] [--arch stream | --stream F] [--quant F]
[--out DIR]``

Runs random cases until the time is up: every case is compiled (both backends when --csim or
--sim) and emulated, and checked against the exact reference; with --csim every
``--csim-every``-th case also runs g++ csim, with --sim every ``--sim-every``-th case Verilator
sim.  The backend levels run in batches (``--batch`` cases per g++ build, ``--sim-batch`` per
Verilator build: csim_batch.py, sim_batch.py) on ``--jobs`` worker threads while the next
cases are generated.  Each distinct finding (check + message pattern) is shrunk once and
written as a regression case to DIR (default tests/fuzz_cases).  Prints cases per minute for
each level.  ``--arch stream`` builds every case in the stream architecture (design13.md), each
dense and conv layer with a random reuse factor (folded cores when above 1); ``--stream F`` a
fraction F of the cases (the rest as before).  A stream top's Verilator sim is not batched.
``--quant F`` makes a fraction F of the cases quantized models (quant.py: QONNX or QDQ
quantizers in the graph, no plan), checked against the exact quantized model within what
report.json's ``quantization`` section promises (quant_exact.py).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .check import Outcome, Written, prepare_case
from .csim_batch import csim_batch
from .generate import random_case, streamed
from .quant import quantized
from .shrink import CASES_DIR, shrink, write_case
from .sim_batch import sim_batch


def run_backends(written: list[Written], folder: Path) -> list[Outcome]:
    """The csim and sim levels of prepared cases, batched; every case's outcome."""
    later: list[Outcome | None] = [None] * len(written)
    for level, run in (("csim", csim_batch), ("sim", sim_batch)):
        todo = [i for i, w in enumerate(written) if level in w.levels and later[i] is None]
        for i, failed in zip(todo, run([written[i] for i in todo], folder / level)):
            later[i] = failed
    return [w.conclude(failed or Outcome("pass", levels=tuple(w.done))) for w, failed in zip(written, later)]


def fuzz(minutes: float, seed: int, csim: bool, sim: bool, out: Path, csim_every: int = 1, sim_every: int = 1,
         shrink_budget: float = 120.0, max_cases: int | None = None, log=print, batch: int = 120,
         sim_batch_size: int = 32, jobs: int = 2, stream: float = 0.0, quant: float = 0.0) -> dict:
    """Random cases for ``minutes`` (module docstring); ``stream``: the fraction of cases built in
    the stream architecture (random reuse factors); ``quant``: the fraction that are quantized
    models.  Returns the summary printed."""
    start = time.monotonic()
    deadline = start + 60 * minutes
    cpu_start = _cpu_seconds()
    counts = collections.Counter()
    findings: dict[str, dict] = {}
    cases: dict[int, dict] = {}
    k = stream_cases = quant_cases = 0

    def record(case_seed: int, outcome: Outcome) -> None:
        case = cases.pop(case_seed)
        for level in outcome.levels:
            counts[level] += 1
        counts[outcome.status] += 1
        for o in [outcome, *outcome.also]:
            if o.status != "fail":
                continue
            key = o.key()
            if key in findings:  # the same check and pattern: maybe the same defect, maybe not (values differ)
                findings[key]["count"] += 1
                findings[key]["seeds"].append(case_seed)
                log(f"finding again in case seed {case_seed} ({o.check}): {o.message.splitlines()[0][:200]}")
                continue
            log(f"finding in case seed {case_seed} ({o.check}): {o.message.splitlines()[0][:300]}")
            small = shrink(case, o, shrink_budget, log) if shrink_budget > 0 else case
            path = write_case(small, o, out)
            log(f"  written {path}")
            findings[key] = {"count": 1, "check": o.check, "seed": case_seed, "seeds": [case_seed], "case": str(path),
                             "message": o.message.splitlines()[0][:300]}

    pending: list[tuple[int, Written]] = []
    running: collections.deque = collections.deque()

    def collect(block: bool) -> None:
        while running and (block or running[0][1].done()):
            seeds, future, _, folders = running.popleft()
            for case_seed, outcome in zip(seeds, future.result()):
                record(case_seed, outcome)
            for folder in folders:  # an hour's cases and builds would take gigabytes
                shutil.rmtree(folder, ignore_errors=True)

    batch_seconds = [0.0]  # the longest batch so far: how long the batches still running may take

    def timed(written: list[Written], folder: Path) -> list[Outcome]:
        begin = time.monotonic()
        outcomes = run_backends(written, folder)
        batch_seconds[0] = max(batch_seconds[0], time.monotonic() - begin)
        return outcomes

    def submit(pool, folder: Path) -> None:
        if not pending:
            return
        while len(running) >= jobs:  # every worker busy: wait for the oldest batch
            collect(block=True)
        seeds, written = [s for s, _ in pending], [w for _, w in pending]
        folders = [folder, *(w.out.parent for w in written)]
        running.append((seeds, pool.submit(timed, written, folder), time.monotonic(), folders))
        pending.clear()

    def time_left() -> bool:
        """Time to prepare another case and still finish the batches under way by the deadline
        (a batch takes as long as the longest so far, or the oldest one running, if longer)."""
        now = time.monotonic()
        longest = max(batch_seconds[0], now - running[0][2] if running else 0.0)
        rounds = (len(running) + 1 + jobs - 1) // jobs
        return now + rounds * longest < deadline

    with tempfile.TemporaryDirectory(prefix="fg-fuzz-") as scratch, \
            concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        while time_left() and (max_cases is None or k < max_cases):
            case_seed = seed * 1_000_003 + k
            levels = ["reference"]
            if csim and k % csim_every == 0:
                levels.append("csim")
            if sim and k % sim_every == 0:
                levels.append("sim")
            # distinct model names: the cases of one batch share a g++ and a Verilator build
            name = f"case{k}"
            k += 1
            case = random_case(case_seed)
            if quant and np.random.default_rng([case_seed, 23]).random() < quant:
                case = quantized(case)
                quant_cases += 1
            if stream and np.random.default_rng([case_seed, 17]).random() < stream:
                case = streamed(case)
                stream_cases += 1
            cases[case_seed] = case
            result = prepare_case(case, Path(scratch) / name, tuple(levels), name=name)
            if isinstance(result, Outcome):
                record(case_seed, result)
                shutil.rmtree(Path(scratch) / name, ignore_errors=True)
                continue
            pending.append((case_seed, result))
            if len(pending) >= batch or sum("sim" in w.levels for _, w in pending) >= sim_batch_size:
                submit(pool, Path(scratch) / f"batch{k}")
            collect(block=False)
        submit(pool, Path(scratch) / f"batch{k}")
        collect(block=True)
    wall = time.monotonic() - start
    cpu = _cpu_seconds() - cpu_start
    summary = {"cases": k, "checks_passed": dict(counts), "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
               "cases_per_minute": {level: round(60 * counts[level] / wall, 1) for level in ("emulate", "reference",
                                                                                              "csim", "sim")},
               "stream_cases": stream_cases, "quant_cases": quant_cases,
               "findings": list(findings.values())}
    return summary


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (g++, Verilator, simulations)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m compiler.fuzz", description=" ".join(__doc__.split("\n\n")[1].split()))
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csim", action="store_true", help="also run g++ csim (every --csim-every-th case)")
    p.add_argument("--sim", action="store_true", help="also run Verilator sim (every --sim-every-th case)")
    p.add_argument("--csim-every", type=int, default=1)
    p.add_argument("--sim-every", type=int, default=5)
    p.add_argument("--batch", type=int, default=120, help="cases per g++ csim build")
    p.add_argument("--sim-batch", type=int, default=32, help="cases per Verilator build")
    p.add_argument("--jobs", type=int, default=2, help="batches built at once (worker threads)")
    p.add_argument("--arch", choices=("parallel", "stream"), default="parallel",
                   help="stream: every case in the stream architecture, with random reuse factors")
    p.add_argument("--stream", type=float, default=0.0, help="the fraction of cases in the stream architecture")
    p.add_argument("--quant", type=float, default=0.0,
                   help="the fraction of cases that are quantized models (QONNX or QDQ quantizers, no plan)")
    p.add_argument("--shrink-seconds", type=float, default=120.0, help="time to shrink each new finding (0: none)")
    p.add_argument("--out", type=Path, default=CASES_DIR, help="where shrunk failing cases are written")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # plan warnings (saturating constants) are expected here
    summary = fuzz(args.minutes, args.seed, args.csim, args.sim, args.out, args.csim_every, args.sim_every,
                   args.shrink_seconds, batch=args.batch, sim_batch_size=args.sim_batch, jobs=args.jobs,
                   stream=1.0 if args.arch == "stream" else args.stream, quant=args.quant,
                   log=lambda *text: print(*text, file=sys.stderr, flush=True))  # stdout: the summary alone
    print(json.dumps(summary, indent=1))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
