"""A progress line for steps that take more than a few seconds (g++ and Verilator builds,
yosys): a tqdm bar counting elapsed seconds, on an interactive terminal only, so logs and
tests stay clean."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager


@contextmanager
def elapsed(description: str, stream=None):
    """Show ``description`` and the seconds spent while the block runs (when ``stream``,
    default stderr, is a terminal)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    from tqdm import tqdm

    done = threading.Event()
    bar = tqdm(desc=description, unit="s", bar_format="{desc}: {elapsed}", file=stream, leave=False, ncols=100)

    def tick():
        while not done.wait(0.5):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()
