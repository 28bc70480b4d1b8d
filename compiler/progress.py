"""A progress line for steps that take more than a few seconds (g++ and Verilator builds,
yosys, place and route): a tqdm bar counting elapsed seconds on an interactive terminal; off
a terminal nothing, so logs and tests stay clean, or with ``every`` a plain line that often."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager


@contextmanager
def elapsed(description: str, stream=None, every: float | None = None):
    """Show ``description`` and the seconds spent while the block runs (when ``stream``,
    default stderr, is a terminal; otherwise, with ``every``, a line every ``every`` s)."""
    stream = stream or sys.stderr
    if not stream.isatty() and every is None:
        yield
        return
    start = time.perf_counter()
    if stream.isatty():
        from tqdm import tqdm

        bar = tqdm(desc=description, unit="s", bar_format="{desc}: {elapsed}", file=stream, leave=False, ncols=100)
        tick, period, close = bar.refresh, 0.5, bar.close
    else:
        def tick():
            print(f"{description}: {time.perf_counter() - start:.0f} s", file=stream, flush=True)
        period, close = every, (lambda: None)

    done = threading.Event()

    def ticking():
        while not done.wait(period):
            tick()

    thread = threading.Thread(target=ticking, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        close()
