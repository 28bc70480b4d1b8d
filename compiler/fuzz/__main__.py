"""``python -m compiler.fuzz --minutes N --seed S [--csim] [--sim] [--out DIR]``

Runs random cases until the time is up: every case is compiled (both backends when --csim or
--sim) and emulated, and checked against the exact reference; with --csim every
``--csim-every``-th case also runs g++ csim, with --sim every ``--sim-every``-th case Verilator
sim.  Each distinct finding (check + message pattern) is shrunk once and written as a
regression case to DIR (default tests/fuzz_cases).  Prints cases per minute for each level.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .check import run_case
from .generate import random_case
from .shrink import CASES_DIR, shrink, write_case


def fuzz(minutes: float, seed: int, csim: bool, sim: bool, out: Path, csim_every: int = 1, sim_every: int = 1,
         shrink_budget: float = 120.0, max_cases: int | None = None, log=print) -> dict:
    deadline = time.monotonic() + 60 * minutes
    counts = collections.Counter()
    level_counts = collections.Counter()
    level_seconds = collections.Counter()
    findings: dict[str, dict] = {}
    k = 0
    with tempfile.TemporaryDirectory(prefix="fg-fuzz-") as scratch:
        while time.monotonic() < deadline and (max_cases is None or k < max_cases):
            case_seed = seed * 1_000_003 + k
            levels = ["reference"]
            if csim and k % csim_every == 0:
                levels.append("csim")
            if sim and k % sim_every == 0:
                levels.append("sim")
            k += 1
            case = random_case(case_seed)
            start = time.monotonic()
            outcome = run_case(case, Path(scratch) / f"c{k}", tuple(levels))
            tag = "+".join(levels)
            level_seconds[tag] += time.monotonic() - start
            level_counts[tag] += 1
            for level in outcome.levels:
                counts[level] += 1
            counts[outcome.status] += 1
            for o in [outcome, *outcome.also]:
                if o.status != "fail":
                    continue
                key = o.key()
                if key in findings:
                    findings[key]["count"] += 1
                    continue
                log(f"finding in case seed {case_seed} ({o.check}): {o.message.splitlines()[0][:300]}")
                small = shrink(case, o, shrink_budget, log) if shrink_budget > 0 else case
                path = write_case(small, o, out)
                log(f"  written {path}")
                findings[key] = {"count": 1, "check": o.check, "seed": case_seed, "case": str(path),
                                 "message": o.message.splitlines()[0][:300]}
    summary = {"cases": k, "checks_passed": dict(counts),
               "cases_per_minute": {tag: round(60 * level_counts[tag] / max(level_seconds[tag], 1e-9), 1)
                                    for tag in level_counts},
               "findings": list(findings.values())}
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m compiler.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csim", action="store_true", help="also run g++ csim (every --csim-every-th case)")
    p.add_argument("--sim", action="store_true", help="also run Verilator sim (every --sim-every-th case)")
    p.add_argument("--csim-every", type=int, default=1)
    p.add_argument("--sim-every", type=int, default=5)
    p.add_argument("--shrink-seconds", type=float, default=120.0, help="time to shrink each new finding (0: none)")
    p.add_argument("--out", type=Path, default=CASES_DIR, help="where shrunk failing cases are written")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # plan warnings (saturating constants) are expected here
    summary = fuzz(args.minutes, args.seed, args.csim, args.sim, args.out, args.csim_every, args.sim_every,
                   args.shrink_seconds)
    print(json.dumps(summary, indent=1))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
