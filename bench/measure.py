"""How the benchmarks measure: one call's wall time (`timed`), the times of repeated runs
(`repeated`) with their median and the markdown cell that reports them (`Timing`), seconds as text, a block
whose output (Python's and C's) goes to a log (`silenced`), and what a small command prints.
compile_and_emulate.py, import_models.py, rtl_sim.py and startup.py import them.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def repeated(fn, *args, runs: int):
    """(the last run's result, the `Timing` of ``runs`` calls of ``fn(*args)``)."""
    timing = Timing()
    result = None
    for _ in range(runs):
        result, seconds = timed(fn, *args)
        timing.runs.append(seconds)
    return result, timing


@dataclass
class Timing:
    """Wall times of repeated runs of one step."""

    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cell(self) -> str:
        low, high = _seconds(min(self.runs)), _seconds(max(self.runs))
        return f"{_seconds(self.median)} (range {low} to {high}, n={len(self.runs)})"


def _seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


@contextlib.contextmanager
def silenced(log_path: Path):
    """Send everything written to fds 1 and 2 (Python and C alike) to ``log_path``.

    hls4ml prints its topology, warnings and the g++ log; on an error the log's tail is
    shown so a failure is still explained.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            tail = Path(log_path).read_text().splitlines()[-30:]
            print(f"--- last lines of {log_path} ---", *tail, sep="\n", file=sys.stderr)
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _output(argv: list[str]) -> str:
    """What a small system command prints, or why it printed nothing."""
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        return f"unknown ({err})"
