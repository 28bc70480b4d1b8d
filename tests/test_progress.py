"""Progress of long steps (compiler/progress.py): off a terminal a plain line every few seconds
(at the stated interval, saying what runs and how far), nothing for a step shorter than that;
on a terminal the tqdm bar.  And yosys's runner names its current pass in those lines."""

import io
import re
import time

import pytest

from compiler.progress import PROGRESS_SECONDS, elapsed, progress_seconds
from compiler.verify.synth import _run_yosys


class TimedStream(io.StringIO):
    """A non-terminal stream that notes when each line was written."""

    def __init__(self):
        super().__init__()
        self.times = []

    def write(self, text):
        self.times += [time.perf_counter()] * text.count("\n")
        return super().write(text)


def test_lines_at_the_stated_interval_off_a_terminal():
    stream = TimedStream()
    start = time.perf_counter()
    with elapsed("synth", stream, every=0.2):
        time.sleep(1.1)
    lines = stream.getvalue().splitlines()
    assert 4 <= len(lines) <= 5, lines
    assert all(re.fullmatch(r"synth: \d+ s", line) for line in lines), lines
    gaps = [b - a for a, b in zip([start, *stream.times], stream.times)]
    assert all(0.18 <= g <= 0.35 for g in gaps), gaps


def test_a_step_shorter_than_the_interval_prints_nothing():
    stream = TimedStream()
    with elapsed("g++ build of tiny (C simulation)", stream, every=0.5):
        time.sleep(0.15)
    assert stream.getvalue() == ""


def test_the_default_interval_is_set_by_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("FINEGRAIN_PROGRESS_SECONDS", raising=False)
    assert progress_seconds() == PROGRESS_SECONDS
    monkeypatch.setenv("FINEGRAIN_PROGRESS_SECONDS", "not a number")
    assert progress_seconds() == PROGRESS_SECONDS
    monkeypatch.setenv("FINEGRAIN_PROGRESS_SECONDS", "0.1")
    with elapsed("verilator build of tiny"):  # stderr, captured: not a terminal
        time.sleep(0.35)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("verilator build of tiny: ") for line in lines)


def test_lines_say_how_far_and_what_runs():
    stream = io.StringIO()
    with elapsed("plan sweep: 8 points", stream, every=0.1, total=8) as progress:
        progress.update(done=3, note="point lam_0.001")
        time.sleep(0.25)
    assert stream.getvalue().splitlines()[0] == "plan sweep: 8 points: 0 s, 3/8 (37%), running point lam_0.001"


def test_a_terminal_gets_the_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with elapsed("yosys synth_xilinx of top", stream) as progress:
        progress.update(note="abc")
        time.sleep(0.7)
    assert "yosys synth_xilinx of top: 00:00, running abc" in stream.getvalue()


@pytest.mark.parametrize("progress", [True, False])
def test_yosys_lines_name_its_current_pass(tmp_path, monkeypatch, capsys, progress):
    """A fake yosys that enters ABC and stays there: the lines say so (only with progress)."""
    fake = tmp_path / "yosys.sh"
    fake.write_text("echo '3.1. Executing SYNTH_XILINX pass.'\necho '3.47. Executing ABC pass.'\nsleep 0.5\n"
                    "echo 'Number of cells: 3'\n")
    monkeypatch.setenv("FINEGRAIN_PROGRESS_SECONDS", "0.15")
    log = _run_yosys(["sh", str(fake)], tmp_path, "top", progress, timeout=None)
    assert "Number of cells: 3" in log
    lines = capsys.readouterr().err.splitlines()
    if progress:
        assert len(lines) >= 2 and lines[-1].startswith("yosys synth_xilinx of top: ")
        assert lines[-1].endswith(", running ABC"), lines
    else:
        assert lines == []
