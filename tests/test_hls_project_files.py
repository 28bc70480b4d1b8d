"""The HLS project's files for its users, on the jet tagger example: tb_data's float vectors
beside the mantissas (hls4ml's files and layout, values exact), and the Tcl scripts run under
tclsh with stubs of the vendor commands that reject options the way Vitis HLS 2020.2+ and
Vivado HLS 2020.1 do."""

import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.backends.hls_types import container
from compiler.project import compile_model
from compiler.verify.csim import FLOAT_INPUTS, FLOAT_OUTPUTS, _values

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"
TCLSH = shutil.which("tclsh")


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    out = tmp_path_factory.mktemp("jet") / "out"
    project = compile_model(JET / "model.onnx", JET / "plan.json", out, backends=("hls",))
    return project, out / "hls"


# --- tb_data ---------------------------------------------------------------------------------

def _rows(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text().splitlines()]


@pytest.mark.parametrize("mantissas, floats, names", [("inputs.txt", FLOAT_INPUTS, "inputs"),
                                                     ("expected.txt", FLOAT_OUTPUTS, "outputs")])
def test_float_vectors_are_the_mantissas_exactly(jet, mantissas, floats, names):
    project, hls = jet
    graph = project.graph
    tensors = [graph.tensor(n) for n in getattr(graph, names)]
    # per column, the fractional bits of its tensor's C++ type
    frac = [container(t.formats).frac_bits for t in tensors for _ in range(int(np.prod(t.shape)))]
    ints, values = _rows(hls / "tb_data" / mantissas), _rows(hls / "tb_data" / floats)
    assert len(ints) == len(values) == 105  # 100 random vectors and 5 extremes
    assert {len(r) for r in values} == {len(frac)}
    number = re.compile(r"-?\d+\.\d+(e-?\d+)?|-?\d+(\.\d+)?e-?\d+")  # repr of a float: 0.25, -1.5, 1e-05
    for mrow, vrow in zip(ints, values):
        assert all(number.fullmatch(v) for v in vrow), vrow
        assert [Fraction(v) for v in vrow] == [Fraction(int(m), 2 ** f) if f >= 0 else Fraction(int(m) * 2 ** -f)
                                              for m, f in zip(mrow, frac)]
    # and read as hls4ml users do (whitespace-separated floats, one vector per line)
    assert np.loadtxt(hls / "tb_data" / floats).shape == (105, len(frac))


def test_float_outputs_are_the_emulators_values(jet):
    """The float inputs, run through the emulator, give the float outputs."""
    project, hls = jet
    x = np.loadtxt(hls / "tb_data" / FLOAT_INPUTS)
    y = np.loadtxt(hls / "tb_data" / FLOAT_OUTPUTS)
    got = project.emulate({project.graph.inputs[0]: x})
    got = got[project.graph.outputs[0]] if isinstance(got, dict) else got
    assert np.array_equal(np.asarray(got, dtype=np.float64).reshape(y.shape), y)


def test_a_large_model_gets_fewer_random_vectors(jet, tmp_path, monkeypatch):
    """Where a hundred samples would emulate more than PROJECT_VECTOR_VALUES activation values,
    tb_data holds fewer random vectors (the same first ones) and always the 5 extremes; none
    random at all when one sample is that large."""
    from compiler.verify import vectors

    project, hls = jet
    per_sample = vectors.activation_values(project.graph)
    full = _rows(hls / "tb_data" / "inputs.txt")
    for budget, random in ((per_sample * 12, 7), (per_sample * 3, 0)):
        monkeypatch.setattr(vectors, "PROJECT_VECTOR_VALUES", budget)
        out = tmp_path / f"out{random}"
        compile_model(JET / "model.onnx", JET / "plan.json", out, backends=("hls",))
        rows = _rows(out / "hls" / "tb_data" / "inputs.txt")
        assert len(rows) == random + vectors.EXTREME_VECTORS
        assert rows == full[:random] + full[-vectors.EXTREME_VECTORS:]
        assert len(_rows(out / "hls" / "tb_data" / "expected.txt")) == len(rows)


def test_wide_mantissas_become_the_nearest_float():
    """Python-int mantissas of up to 1024-bit types: the correctly rounded value, never an
    overflow through float(mantissa)."""
    wide = np.array([[(1 << 1023) - 1, -(1 << 1023), 3, (1 << 1024) - 1]], dtype=object)
    assert _values(wide, 1000) == [[float(Fraction(int(m), 2 ** 1000)) for m in wide[0]]]
    assert _values(np.array([[5, -7]]), 3) == _values(np.array([[5, -7]], dtype=object), 3) == [[0.625, -0.875]]
    assert _values(np.array([[5]], dtype=object), -2) == [[20.0]]


def test_readme_says_which_file_is_which(jet):
    text = (jet[1] / "README.md").read_text()
    assert "`tb_data/tb_input_features.dat`, `tb_data/tb_output_predictions.dat`" in text
    assert "`tb_data/inputs.txt`, `tb_data/expected.txt` | integer mantissas" in text


# --- Tcl under tclsh -------------------------------------------------------------------------

# A stub per vendor command: it accepts the options listed (boolean ones, then those taking a
# value) and errors on any other, as the tools do; every call is printed as "CALL name args".
STUB = r"""
proc stub {name flags valued} {
    proc $name {args} [string map [list @N $name @F $flags @V $valued] {
        for {set i 0} {$i < [llength $args]} {incr i} {
            set a [lindex $args $i]
            if {[lsearch -exact {@V} $a] >= 0} {
                incr i
            } elseif {[string match -* $a] && [lsearch -exact {@F} $a] < 0} {
                error "ERROR: @N: unknown option '$a'"
            }
        }
        puts "CALL @N $args"
    }]
}
rename exec real_exec
proc exec {args} { puts "CALL exec $args" }
stub open_project {-reset -upgrade} {}
stub set_top {} {}
stub add_files {-tb -blackbox} {-cflags -csimflags}
stub set_part {} {}
stub create_clock {} {-period -name}
stub csim_design {-clean -setup -O} {-argv -ldflags -mflags -compiler}
stub csynth_design {-synthesis_check} {-dump_cfg}
stub cosim_design {-O -setup -wave_debug -disable_deadlock_detection} {-argv -trace_level -tool -rtl -ldflags}
stub export_design {} {-format -flow -rtl -description -display_name -ipname -library -vendor -version}
"""
VITIS = STUB + r"""
stub open_solution {-reset} {-flow_target}
stub config_array_partition {-throughput_driven} {-complete_threshold}
"""
VIVADO_HLS_2020_1 = STUB + r"""
stub open_solution {-reset} {}
stub config_array_partition {-auto_partition_threshold -include_ports} {-maximum_size -throughput_driven}
"""
VIVADO = r"""
proc stub {name} { proc $name {args} "puts \"CALL $name \$args\"" }
foreach c {read_verilog create_clock get_ports synth_design report_utilization report_timing_summary} { stub $c }
"""


def _tcl(script: Path, stubs: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    driver = cwd / "driver.tcl"
    driver.write_text(stubs + f"\nsource {{{script}}}\n")
    return subprocess.run([TCLSH, str(driver), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def _calls(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line[5:] for line in proc.stdout.splitlines() if line.startswith("CALL ")]


@pytest.mark.skipif(TCLSH is None, reason="needs tclsh")
@pytest.mark.parametrize("stubs", [VITIS, VIVADO_HLS_2020_1], ids=["vitis-2020.2+", "vivado-hls-2020.1"])
def test_build_script_completes_under_both_tools(jet, tmp_path, stubs):
    calls = _calls(_tcl(jet[1] / "build_prj.tcl", stubs, cwd=tmp_path))
    names = [c.split()[0] for c in calls]
    assert names == ["open_project", "set_top", "add_files", "add_files", "add_files", "open_solution", "set_part",
                     "create_clock", *(["config_array_partition"] if stubs is VIVADO_HLS_2020_1 else []),
                     "csim_design", "csynth_design"]
    assert "set_top jet_tagger" in calls
    assert ("open_solution -reset solution1 -flow_target vivado" if stubs is VITIS
            else "open_solution -reset solution1") in calls


@pytest.mark.skipif(TCLSH is None, reason="needs tclsh")
@pytest.mark.parametrize("args, steps", [
    (["csim=0", "synth=1", "cosim=1", "export=1"], ["csynth_design", "cosim_design", "export_design"]),
    (["csim=1", "synth=0"], ["csim_design"]),
    (["vsynth=1", "synth=0", "csim=0"], ["exec"]),
    # Vivado HLS hands the script its own arguments too: only those after -tclargs count
    (["-f", "build_prj.tcl", "-tclargs", "csim=0", "cosim=1"], ["csynth_design", "cosim_design"]),
    (["-f", "build_prj.tcl"], ["csim_design", "csynth_design"]),
])
def test_build_script_arguments(jet, tmp_path, args, steps):
    calls = _calls(_tcl(jet[1] / "build_prj.tcl", VITIS, *args, cwd=tmp_path))
    run = [c.split()[0] for c in calls if c.split()[0] in ("csim_design", "csynth_design", "cosim_design",
                                                          "export_design", "exec")]
    assert run == steps
    if "exec" in steps:
        assert "exec vivado -mode batch -source vivado_synth.tcl >@ stdout" in calls


@pytest.mark.skipif(TCLSH is None, reason="needs tclsh")
@pytest.mark.parametrize("arg", ["csim=yes", "place=1", "-tclargs"])
def test_build_script_rejects_unknown_arguments(jet, tmp_path, arg):
    proc = _tcl(jet[1] / "build_prj.tcl", VITIS, *(["-tclargs", arg] if arg != "-tclargs" else [arg, "x=1"]),
                cwd=tmp_path)
    assert proc.returncode == 1 and "unknown argument" in proc.stdout
    assert "CALL open_project" not in proc.stdout


@pytest.mark.skipif(TCLSH is None, reason="needs tclsh")
def test_vivado_synthesis_script_completes(jet, tmp_path):
    rtl = tmp_path / "jet_tagger_prj" / "solution1" / "syn" / "verilog"
    rtl.mkdir(parents=True)
    (rtl / "jet_tagger.v").write_text("module jet_tagger(); endmodule\n")
    (rtl / "ip.tcl").write_text("puts \"CALL sourced ip.tcl\"\n")
    calls = _calls(_tcl(jet[1] / "vivado_synth.tcl", VIVADO, cwd=tmp_path))
    assert calls[0] == f"read_verilog {rtl.relative_to(tmp_path)}/jet_tagger.v"
    assert "sourced ip.tcl" in calls
    assert any(c.startswith("synth_design -top jet_tagger -part ") for c in calls)
    assert [c.split()[0] for c in calls][-2:] == ["report_utilization", "report_timing_summary"]
