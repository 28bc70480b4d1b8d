"""The hand-written RTL library (rtl/*.sv): lint, synthesis, and cocotb simulation on
Verilator compared exactly with Python references.

Each pytest test builds one testbench top (tests/rtl_library/tb_*.sv) that holds many
parameterisations side by side, so the whole file costs three Verilator builds (cached by
sim.runner across runs).  The cocotb tests and their Python references live in
tests/rtl_library_cocotb.py: the simulator imports that module by name and runs the functions
decorated with ``@cocotb.test()``.

* fg_requantize: every ROUNDING x OVERFLOW pair on 24 format pairs, all input codes of the
  narrow formats and random, extreme and bound-probing codes of the wide ones, against
  compiler.mantissa.requantize.
* relu, clip, pipe, adder trees, maxpool, avgpool, rom: one clocked bench; every output and
  every out_valid is checked every cycle against numpy with the documented latency, with
  random in_valid, extreme inputs and a reset in the middle.
* fg_axis_wrapper: random gaps in s_axis_tvalid and random m_axis_tready back-pressure; no
  beat lost, duplicated or reordered, tlast kept, AXI stability rules, no combinational path
  to the outputs, and the documented throughput min(1, FIFO_DEPTH / (LATENCY + 2)).
* every module: verilator --lint-only -Wall, and yosys synth_xilinx (yosys is required).
* sim.runner: build reuse, failing cocotb tests and build errors reported clearly.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `sim` is a top-level folder of the repo, not installed

from tests.rtl_library_cocotb import cocotb, _requantize_codes, _sigmoid_table, _signed  # noqa: E402

RTL = ROOT / "rtl"
BENCHES = Path(__file__).resolve().parent / "rtl_library"
BUILD_ROOT = ROOT / "build" / "rtl_library"
MODULES = sorted(p.stem for p in RTL.glob("*.sv"))
TEST_MODULE = "rtl_library_cocotb"  # the simulator imports it from this folder


def _rtl_sources() -> list[Path]:
    return sorted(RTL.glob("*.sv"))


def test_wide_requantize_codes_probe_the_bounds():
    """The wide formats' codes reach every floor fg_requantize's saturation patterns single out
    (HI, LO - 1, LO, -1), each with its rounding half bit set and clear."""
    for fmt in ((20, 10, 1, 8, 4, 0), (40, 20, 1, 18, 9, 1)):
        in_w, in_f, _, out_w, out_f, out_s = fmt
        shift = in_f - out_f
        codes = _requantize_codes(fmt, 4096, random.Random(1))
        seen = {(_signed(c, in_w) >> shift, _signed(c, in_w) >> (shift - 1) & 1) for c in codes}
        hi, lo = (1 << (out_w - out_s)) - 1, -(1 << (out_w - 1)) if out_s else 0
        for floor in (hi, lo - 1, lo, -1):
            assert {(floor, 0), (floor, 1)} <= seen, (fmt, floor)


# --- pytest: the builds -----------------------------------------------------------------


def _sim():
    if cocotb is None:
        pytest.fail("cocotb is not installed in this environment (pip install -e '.[dev]')")
    from sim import runner
    return runner


def _run_bench(top: str, cocotb_tests: list[str]) -> None:
    """Build (or reuse) one bench and run its cocotb tests; any failure fails pytest."""
    runner = _sim()
    results = runner.build_and_test(
        sources=[*_rtl_sources(), BENCHES / f"{top}.sv"], top=top, test_module=TEST_MODULE,
        test_dir=BUILD_ROOT / "runs" / top, build_dir=BUILD_ROOT, python_path=[Path(__file__).parent],
        testcase=cocotb_tests)
    assert results.ok, results.summary()
    assert sorted(c.name for c in results.cases) == sorted(cocotb_tests), results.summary()


def test_requantize_matrix():
    _run_bench("tb_requantize_matrix", ["requantize_matrix"])


def test_datapath():
    _run_bench("tb_datapath", ["datapath_exact"])


def test_axis_wrapper():
    _run_bench("tb_axis_wrapper", ["axis_backpressure"])


# --- lint and synthesis of every module ------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_lint_clean(module):
    """verilator --lint-only -Wall on each file with its default parameters (the benches
    above lint every other parameterisation they build, also with -Wall)."""
    _sim().lint([RTL / f"{module}.sv"], top=module, library_dirs=[RTL, RTL / "xilinx"])


@pytest.mark.parametrize("bench", sorted(p.stem for p in BENCHES.glob("tb_*.sv")))
def test_benches_lint_clean(bench):
    """The benches too: in their builds the top's signals are public to cocotb, which hides
    unused-signal warnings on them."""
    _sim().lint([BENCHES / f"{bench}.sv"], top=bench, library_dirs=[RTL])


# Parameters that give each module some logic to map (defaults where they already do).
SYNTH_PARAMETERS = {
    "fg_requantize": {"IN_W": 12, "IN_F": 8, "OUT_W": 6, "OUT_F": 3, "ROUNDING": 6, "OVERFLOW": 3},
    "fg_rom": {"REGISTERED": 1, "ADDR_W": 6, "DATA_W": 10,
               "CONTENTS": "640'h" + format(sum(int(v) << (10 * k) for k, v in enumerate(_sigmoid_table())), "0160x")},
    "fg_adder_tree": {"N": 9, "LEVELS_PER_STAGE": 2},
    "fg_reduce_tree": {"N": 6, "OP": 1, "OUT_W": 8, "LEVELS_PER_STAGE": 1},
}
# Messages yosys may print that say nothing about our RTL.
YOSYS_BENIGN = re.compile(r"ABC: Warning: The network is combinational")


def _synthesize(module: str, out_dir: Path, parameters: dict | None = None) -> tuple[str, str]:
    """(stat text, log text) of synth_xilinx on one module (with ``parameters``, else
    SYNTH_PARAMETERS'); raises on failure.

    Results are kept under a hash of the yosys version, the script and every rtl/ file, so an
    unchanged library is not synthesized again (as sim.runner does for Verilator builds).
    """
    files = " ".join(str(p) for p in _rtl_sources())
    if parameters is None:
        parameters = SYNTH_PARAMETERS.get(module, {})
    chparam = " ".join(f"-set {k} {v}" for k, v in parameters.items())
    script = f"read_verilog -sv {files}; "
    if chparam:
        script += f"chparam {chparam} {module}; "
    version = subprocess.run(["yosys", "-V"], capture_output=True, text=True, check=False).stdout.strip()
    key = hashlib.sha256("\0".join([version, script, *(p.read_text() for p in _rtl_sources())]).encode())
    stat = out_dir / f"{module}-{key.hexdigest()[:16]}.stat"
    log = stat.with_suffix(".log")
    if stat.is_file() and log.is_file():
        return stat.read_text(), log.read_text()
    for old in out_dir.glob(f"{module}-*"):  # results of earlier versions of the library
        old.unlink()
    script += f"synth_xilinx -top {module}; tee -o {stat}.tmp stat"
    done = subprocess.run(["yosys", "-q", "-l", f"{log}.tmp", "-p", script], capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"yosys synth_xilinx failed on {module}:\n{(done.stdout + done.stderr)[-3000:]}")
    Path(f"{log}.tmp").replace(log)
    Path(f"{stat}.tmp").replace(stat)
    return stat.read_text(), log.read_text()


def synthesis_problems(results: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(problems, one summary line per module) of {module: (stat, log)} from _synthesize: no
    stat, a latch, a yosys warning."""
    problems, summary = [], []
    for module, (stat, log) in results.items():
        cells = dict(re.findall(r"^\s+(\S+)\s+(\d+)$", stat, re.MULTILINE))
        if "Number of cells" not in stat:
            problems.append(f"{module}: no stat printed")
        if any(name.startswith(("LD", "$_DLATCH", "$dlatch")) for name in cells):
            problems.append(f"{module}: latches inferred: {cells}")
        warnings = [line for line in log.splitlines() if "warning" in line.lower() and not YOSYS_BENIGN.search(line)
                    and not line.startswith("Warnings:")]
        if warnings:
            problems.append(f"{module}: yosys warnings: {warnings[:3]}")
        mapped = {k: v for k, v in cells.items() if re.match(r"(LUT|FD|CARRY|SRL|RAM|DSP|MUXF)", k)}
        summary.append(f"{module}: {mapped}")
    return problems, summary


def require_yosys() -> None:
    if shutil.which("yosys") is None:
        pytest.fail("yosys is not on PATH: run `make tools` (apt-get install -y yosys); "
                    "RTL synthesis checks are part of the suite and are not skipped")


def test_synthesis_yosys():
    """Every module synthesizes with yosys synth_xilinx, prints a stat, has no latch and no
    yosys warning.  yosys is required (the Makefile's `tools` target installs it)."""
    require_yosys()
    out_dir = BUILD_ROOT / "synth"
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(MODULES, pool.map(lambda m: _synthesize(m, out_dir), MODULES)))
    problems, summary = synthesis_problems(results)
    print("\n".join(summary))
    assert not problems, "\n".join(problems)


# --- sim.runner itself ------------------------------------------------------------------


def _datapath_build():
    return _sim().build([*_rtl_sources(), BENCHES / "tb_datapath.sv"], "tb_datapath", BUILD_ROOT)


def test_runner_reuses_builds():
    first = _datapath_build()
    again = _datapath_build()
    assert again.cached and again.directory == first.directory and again.seconds < 2.0


def test_runner_reports_failures():
    runner = _sim()
    built = _datapath_build()
    results = runner.run_tests(built, TEST_MODULE, BUILD_ROOT / "runs" / "failing", testcase=["deliberately_failing"],
                               python_path=[Path(__file__).parent], check=False)
    assert not results.ok and [c.name for c in results.failed] == ["deliberately_failing"]
    with pytest.raises(runner.SimulationFailed, match="fails on purpose"):
        runner.run_tests(built, TEST_MODULE, BUILD_ROOT / "runs" / "failing", testcase=["deliberately_failing"],
                         python_path=[Path(__file__).parent])


def test_runner_build_errors_are_clear(tmp_path):
    runner = _sim()
    truncating = tmp_path / "lint_warning.sv"
    truncating.write_text("module lint_warning (input logic [3:0] a, output logic [2:0] y);\n"
                          "    assign y = a;\nendmodule\n")
    with pytest.raises(runner.BuildError, match="WIDTHTRUNC"):  # -Wall: warnings are errors
        runner.build([truncating], "lint_warning", tmp_path / "build")
    broken = tmp_path / "broken.sv"
    broken.write_text("module broken (output logic y);\n    assign y = ;\nendmodule\n")
    with pytest.raises(runner.BuildError, match="syntax error"):
        runner.build([broken], "broken", tmp_path / "build")


def test_runner_build_errors_show_the_error_lines_not_a_hex_dump(tmp_path):
    """Verilator quotes the source line of an error: a literal wider than it takes (65,536
    bits) made the error a 17,000-character hex dump.  The message holds the error lines,
    each cut to LOG_LINE_CHARS."""
    runner = _sim()
    wide = tmp_path / "wide.sv"
    bits = 70_000
    wide.write_text(f"module wide (input logic [3:0] a, output logic [7:0] y);\n"
                    f"    localparam logic [{bits - 1}:0] C = {bits}'h{'5a' * (bits // 8)};\n"
                    f"    assign y = C[a*8 +: 8];\nendmodule\n")
    with pytest.raises(runner.BuildError) as info:
        runner.build([wide], "wide", tmp_path / "build")
    message = str(info.value)
    assert "Width of number exceeds" in message and "more characters)" in message
    assert len(message) < 2000 and all(len(line) < runner.LOG_LINE_CHARS + 40 for line in message.splitlines()[1:])


def test_runner_icarus_switch(tmp_path, monkeypatch):
    """Asking for Icarus without iverilog on PATH is a clear error, not a crash (the Icarus
    path itself runs in tests/test_rtl.py::test_icarus_fallback)."""
    runner = _sim()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(runner.SimulatorNotFound, match="iverilog"):
        runner.build([RTL / "fg_relu.sv"], "fg_relu", tmp_path, simulator="icarus")
