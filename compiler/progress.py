"""A progress line for steps that take more than a few seconds (g++ and Verilator builds,
yosys, place and route, plan sweeps): a tqdm bar counting elapsed seconds on an interactive
terminal; off a terminal (a log, CI, a pipe) a plain line every ``every`` seconds, so a long
step is never silent there and a step shorter than that prints nothing at all.

A step may say more than its seconds through the `Progress` the context manager yields:
what it is running (``note``, e.g. yosys's current pass) and how far it is (``done`` of
``total``)."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

# Seconds between two lines off a terminal; FINEGRAIN_PROGRESS_SECONDS overrides it.
PROGRESS_SECONDS = 10.0


def progress_seconds() -> float:
    """The interval of the plain lines: FINEGRAIN_PROGRESS_SECONDS when set, else PROGRESS_SECONDS."""
    text = os.environ.get("FINEGRAIN_PROGRESS_SECONDS")
    try:
        return float(text) if text else PROGRESS_SECONDS
    except ValueError:
        return PROGRESS_SECONDS


class Progress:
    """What a running step reports beside its seconds (set from the step's own thread)."""

    def __init__(self, total: int | None = None):
        self.note = ""
        self.done = 0
        self.total = total

    def update(self, note: str | None = None, done: int | None = None) -> None:
        if note is not None:
            self.note = note
        if done is not None:
            self.done = done

    def suffix(self) -> str:
        """``, 3/8 (38%), running abc``: the parts that are known."""
        parts = []
        if self.total:
            parts.append(f"{self.done}/{self.total} ({100 * self.done // self.total}%)")
        if self.note:
            parts.append(f"running {self.note}")
        return "".join(f", {p}" for p in parts)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextmanager
def elapsed(description: str, stream=None, every: float | None = None, total: int | None = None):
    """Show ``description`` and the seconds spent while the block runs: a bar when ``stream``
    (default stderr) is a terminal, else a line ``description: 35 s[, 3/8 (38%)][, running X]``
    every ``every`` seconds (default `progress_seconds`).  Yields a `Progress` the block may update."""
    stream = stream or sys.stderr
    every = progress_seconds() if every is None else every
    state = Progress(total)
    start = time.perf_counter()
    if _is_terminal(stream):
        from tqdm import tqdm

        bar = tqdm(desc=description, unit="s", bar_format="{desc}: {elapsed}{postfix}", file=stream, leave=False,
                   ncols=100)

        def tick():
            bar.set_postfix_str(state.suffix().lstrip(", "), refresh=False)
            bar.refresh()

        period, close = 0.5, bar.close
    else:
        def tick():
            print(f"{description}: {time.perf_counter() - start:.0f} s{state.suffix()}", file=stream, flush=True)

        period, close = every, (lambda: None)

    done = threading.Event()

    def ticking():
        while not done.wait(period):
            tick()

    thread = threading.Thread(target=ticking, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        done.set()
        thread.join()
        close()
