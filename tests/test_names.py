"""Names in generated code (compiler/names.py) and values that reach Tcl (issue 11).

ONNX names that are keywords of C++ or SystemVerilog, names our generated code or libraries
use, unicode, digits first, 1,000+ characters, names that collide once sanitised, quotes,
backticks, backslashes, newlines and comment ends: the design compiles, csim and Verilator
sim are bit-exact, two compiles write the same bytes, and report.json maps every name.
``--part`` accepts part names only, and whatever reaches Tcl substitutes nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, strategies as st
from onnx import TensorProto, helper, numpy_helper

from compiler.backends.hls import HLSOptions, write_hls_project
from compiler.cli import main
from compiler.errors import UserError
from compiler.names import (CPP_RESERVED, MAX_IDENTIFIER, SV_RESERVED, Names, c_string, comment, identifier,
                            tcl_word)
from compiler.project import compile_model
from compiler.targets import BOARDS, PARTS, check_part, resolve_part

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)

LONG = "very/long/" + "name" * 300  # 1,210 characters
IN_A = "int"
IN_B = 'módulo"`in\\'  # unicode, quote, backtick, backslash
OUT = 'out"put`*/\n// end'  # quote, backtick, a comment end and a newline in an output name
HOSTILE = {IN_A, IN_B, OUT, LONG}


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _vectors(names, n) -> list:
    return [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", n]) for name in names]


def _save(path: Path, nodes, inputs, outputs, inits=(), graph_name="main_graph") -> Path:
    """An ONNX file (the generic graph name: the model is named after the file)."""
    graph = helper.make_graph(nodes, graph_name, inputs, outputs, list(inits))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _hostile_model(path: Path) -> Path:
    """int + módulo -> Gemm -> Relu -> * const -> + const -> two outputs; every name hostile."""
    nodes = [
        helper.make_node("Add", [IN_A, IN_B], ["row"], name="logic"),  # row: the dense kernel's loop variable
        helper.make_node("Gemm", ["row", "class", "1bias"], ["always"], name="return", transB=1),
        helper.make_node("Relu", ["always"], [LONG], name="*/ evil\nnode ?" + "?/"),
        helper.make_node("Mul", [LONG, "a.b"], ["a-b"], name="module"),  # a.b, a-b: both a_b once sanitised
        helper.make_node("Add", ["a-b", "w_mantissas"], [OUT], name="u_valid"),
        helper.make_node("Mul", [LONG, "w"], ["`define"], name="clk"),  # w beside w_mantissas
        # the RTL names r's relu instance u_r__0_relu, u_r's relu output wire too
        helper.make_node("Relu", [IN_A], ["r"], name="relu_r"),
        helper.make_node("Relu", [IN_A], ["u_r"], name="relu_u_r"),
        helper.make_node("Add", ["r", "u_r"], ["inputs"], name="main"),  # the testbench's inputs stream
    ]
    inits = [_const("class", RNG.normal(size=(3, 4))), _const("1bias", RNG.normal(size=3)),
             _const("a.b", [0.75, -1.5, 1.25]), _const("w_mantissas", [0.5, -0.25, 1.0]),
             _const("w", [1.25, 1.5, -0.5])]
    return _save(path, nodes, _vectors((IN_A, IN_B), 4), _vectors((OUT, "`define"), 3) + _vectors(["inputs"], 4),
                 inits)


def _plan(path: Path, tensors=None) -> Path:
    path.write_text(json.dumps({"defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                                             "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None},
                                "tensors": {OUT: "fixed<9,4,RND,SAT>"} if tensors is None else tensors}))
    return path


def _generated(out: Path) -> dict[str, bytes]:
    """Every generated file of an output folder (not the simulators' work)."""
    skip = {"csim_build", "sim", "sim_build", "tb_data"}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(out).parts) and p.name != "report.json"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    model, plan = _hostile_model(folder / "class.onnx"), _plan(folder / "plan.json")
    out = folder / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "hls,rtl"]) == 0
    return folder, out


# --- the rules ------------------------------------------------------------------------------


def test_identifiers_are_ascii_short_and_not_keywords():
    assert identifier("fc1_Gemm_output_0") == "fc1_Gemm_output_0"  # valid names unchanged
    assert identifier("/fc1/Gemm_output_0") == "fc1_Gemm_output_0"
    assert identifier("módulo") == "m_dulo"
    assert identifier("1x") == "t_1x"
    assert identifier("a__b") == "a_b"  # the RTL joins base__index
    assert identifier("") == identifier("***") == "t"
    long = identifier(LONG)
    assert len(long) == MAX_IDENTIFIER and long.startswith("very_long_name") and long == identifier(LONG)
    assert identifier(LONG + "x") != long  # the hash tells long names apart
    names = Names(reserved=CPP_RESERVED)
    assert [names(n) for n in ("int", "a.b", "a-b", "A_B", "row", "int")] == ["int_2", "a_b", "a_b_2", "A_B_3",
                                                                          "row_2", "int_2"]
    sv = Names(reserved=SV_RESERVED)
    assert [sv(n) for n in ("module", "logic", "clk", "fg_relu", "x")] == ["module_2", "logic_2", "clk_2",
                                                                          "fg_relu_2", "x"]


@given(st.lists(st.text(min_size=0, max_size=80) | st.sampled_from(sorted(CPP_RESERVED | SV_RESERVED)), max_size=30))
def test_any_names_give_distinct_plain_identifiers(names):
    for reserved, extra in ((CPP_RESERVED, {}), (SV_RESERVED, {"prefixes": ("u_",), "companions": ("_sum",)})):
        table = Names(reserved=reserved, **extra)
        idents = [table(n) for n in names]
        again = Names(reserved=reserved, **extra)
        assert idents == [again(n) for n in names]  # deterministic
        assert len({i.lower() for i in set(idents)}) == len(set(names))  # one per name, also ignoring case
        for ident in idents:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ident) and "__" not in ident and not ident.endswith("_")
            assert ident not in reserved and len(ident) <= MAX_IDENTIFIER + 8  # t_ and _NN for a taken name
            assert not ident.startswith(extra.get("prefixes", ("\0",)))


def test_companion_and_derived_names_never_collide():
    names = Names(companions=("_mantissas",))
    assert names("w_mantissas") == "w_mantissas"
    assert names("w") == "w_2"  # w's own w_mantissas array would be the tensor w_mantissas
    assert names.derived("x_t") == "x_t" and names("x_t") == "x_t_2"


@pytest.mark.parametrize("text", ["plain text: fc1 (Gemm)", 'a"b`c\\', "*/ x /* ??/", "line\nbreak\r\x00",
                                  "módulo ünïcode 😀"])
def test_comment_text_is_one_safe_line(text):
    safe = comment(text)
    assert safe.isascii() and safe.isprintable() and "*/" not in safe and "??" not in safe
    assert "`" not in safe and not safe.endswith("\\") and "\\\\" not in safe
    if text.startswith("plain"):
        assert safe == text


def test_c_strings_and_tcl_words_round_trip():
    text = 'módulo"`in\\ ?? [exec touch X] ${y} {z}\n'
    assert c_string("plain") == "plain"
    assert c_string(text).isascii() and '"' not in c_string(text) and "??" not in c_string(text)
    tclsh = shutil.which("tclsh")
    assert tclsh, "tclsh is installed with the tools (Debian: tcl8.6)"
    script = f'puts -nonewline [string equal "{tcl_word(text)}" {tcl_word(text)}]\n' \
             f'puts -nonewline [expr {{[string length {tcl_word(text)}] == {len(text)}}}]\n'
    proc = subprocess.run([tclsh], input=script, capture_output=True, text=True, cwd="/tmp")
    assert proc.stdout == "11", proc.stderr
    assert tcl_word("xczu9eg-ffvb1156-2-e") == "xczu9eg-ffvb1156-2-e"


# --- the hostile model end to end ---------------------------------------------------------


def test_hostile_names_csim_bit_exact(hostile):
    _, out = hostile
    assert main(["csim", str(out), "--vectors", "200"]) == 0
    report = json.loads((out / "report.json").read_text())["csim"]
    assert report["mismatches"] == 0 and report["vectors"] > 200


@pytest.mark.usefixtures("shared_rtl_builds")
def test_hostile_names_rtl_sim_bit_exact(hostile):
    _, out = hostile
    assert main(["sim", str(out), "--vectors", "100"]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report["mismatches"] == 0 and report["vectors"] > 100


def test_a_wrong_expected_value_is_reported_with_the_hostile_output_name(hostile, tmp_path):
    """The testbench's message quotes the output's ONNX name in a C string: it compiles, a
    wrong bit is still caught, and the name is printed on one line (a newline in it could
    have printed a line like the summary that run_csim reads)."""
    _, out = hostile
    hls = out / "hls"
    binary = next((hls / "csim_build").glob("*_csim"))
    data = tmp_path / "tb_data"
    shutil.copytree(hls / "tb_data", data)
    lines = (data / "expected.txt").read_text().splitlines()
    first = lines[0].split()
    first[0] = str(int(first[0]) + 1)
    (data / "expected.txt").write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    proc = subprocess.run([str(binary), str(data)], capture_output=True, text=True)
    assert proc.returncode == 1 and "1 mismatches" in proc.stdout
    assert f"output {comment(OUT)}[0] expected" in proc.stdout and len(proc.stdout.splitlines()) == 2


def test_generated_files_named_and_sized(hostile):
    _, out = hostile
    files = _generated(out)
    assert "hls/firmware/class_2.cpp" in files and "rtl/class_2.sv" in files  # class.onnx: C++ keyword
    assert all(len(Path(f).name) <= MAX_IDENTIFIER + 20 for f in files)
    assert all(f.isascii() for f in files)
    header = files["hls/firmware/class_2.h"].decode()
    assert "const in_t in_2[4]" not in header and "int_2[4]" in header and "void class_2(" in header


def test_two_compiles_write_identical_files(hostile, tmp_path):
    folder, out = hostile
    again = tmp_path / "again"
    assert main(["compile", str(folder / "class.onnx"), "--plan", str(folder / "plan.json"), "-o", str(again),
                 "--backend", "hls,rtl"]) == 0
    first, second = _generated(out), _generated(again)
    for name in ("config.json", "ir.pkl", "finegrain.json"):  # the output folder's path, and the stamp's digest of it
        first.pop(name), second.pop(name)
    assert first.keys() == second.keys() and first == second
    assert json.loads((out / "report.json").read_text())["names"] == \
        json.loads((again / "report.json").read_text())["names"]


def test_report_maps_every_name(hostile):
    _, out = hostile
    names = json.loads((out / "report.json").read_text())["names"]
    assert names["model"]["cpp"] == names["model"]["verilog"] == "class_2"
    assert "hls/firmware/class_2.cpp" in names["model"]["files"]
    tensors = names["tensors"]
    assert {"onnx": IN_A, "cpp": "int_2", "verilog": "int_2"}.items() <= tensors[IN_A].items()
    assert tensors["a.b"]["cpp"] != tensors["a-b"]["cpp"]
    assert tensors["w"]["cpp"] == "w_2" and tensors["w"]["file"] == "hls/firmware/weights/w_2.h"
    assert tensors["w_mantissas"]["cpp"] == "w_mantissas"
    assert len(tensors[LONG]["cpp"]) == MAX_IDENTIFIER
    for entry in tensors.values():  # every identifier is plain ASCII, in both languages
        assert all(identifier(v) == v for k, v in entry.items() if k in ("cpp", "verilog"))
    assert names["layers"]["return"]["cpp"] == "return_2"
    assert tensors["u_r"]["verilog"] == "t_u_r" and tensors["u_r"]["cpp"] == "u_r"
    assert tensors["inputs"]["cpp"] == "inputs_2" and tensors["inputs"]["verilog"] == "inputs"


def test_long_unicode_graph_name(tmp_path):
    """A 1,000+ character graph name (the top function, the files, the folders) was "File name
    too long"; a unicode one crashed sim."""
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    model = _save(tmp_path / "m.onnx", nodes, _vectors("x", 3), _vectors("y", 3), graph_name="ñ" * 1100)
    project = compile_model(model, _plan(tmp_path / "plan.json", {}), tmp_path / "out", backends=("hls", "rtl"))
    top = json.loads((tmp_path / "out" / "report.json").read_text())["names"]["model"]["cpp"]
    assert project.graph.name == "ñ" * 1100 and top.isascii() and len(top) <= MAX_IDENTIFIER
    assert (tmp_path / "out" / "hls" / "firmware" / f"{top}.cpp").is_file()
    assert (tmp_path / "out" / "rtl" / f"{top}.sv").is_file()
    assert main(["csim", str(tmp_path / "out"), "--vectors", "20"]) == 0


def test_names_the_c_library_and_our_headers_use(tmp_path):
    """A top named finegrain_conv shared finegrain/conv.h's header guard; a tensor named time
    got the type time_t, one named EOF or errno was a macro: none compiled."""
    nodes = [helper.make_node("Add", ["time", "size"], ["EOF"], name="stdout"),
             helper.make_node("Relu", ["EOF"], ["errno"], name="assert"),
             helper.make_node("Mul", ["errno", "stdin"], ["m"], name="NULL"),
             helper.make_node("Add", ["m", "DEFINES"], ["BIAS"], name="Parameters")]  # defines.h's header guard
    model = _save(tmp_path / "finegrain_conv.onnx", nodes, _vectors(("time", "size"), 3), _vectors(["BIAS"], 3),
                  [_const("stdin", [0.5, -1.0, 1.5]), _const("DEFINES", [0.25, 0.5, -0.75])])
    out = tmp_path / "out"
    compile_model(model, _plan(tmp_path / "plan.json", {}), out, backends=("hls",))
    names = json.loads((out / "report.json").read_text())["names"]
    assert names["model"]["cpp"] == "t_finegrain_conv"
    assert {n: e["cpp"] for n, e in names["tensors"].items()} == {
        "time": "time", "size": "size", "EOF": "EOF_2", "errno": "errno_2", "stdin": "stdin_2", "m": "m",
        "DEFINES": "DEFINES_2", "BIAS": "BIAS_2"}
    assert "typedef ap_fixed<8,3,AP_RND_CONV,AP_SAT> time_t_2;" in \
        (out / "hls" / "firmware" / "defines.h").read_text()
    assert main(["csim", str(out), "--vectors", "50"]) == 0


def test_a_constant_broadcast_to_two_shapes_gets_two_arrays(tmp_path):
    """c (one value) added to a 3-vector and a 5-vector: both used one array c_full, of 3
    values, so the 5-vector's last two elements read past it (csim mismatches)."""
    nodes = [helper.make_node("Add", ["x", "c"], ["a"], name="n1"),
             helper.make_node("Add", ["y", "c"], ["b"], name="n2")]
    model = _save(tmp_path / "g.onnx", nodes, _vectors("x", 3) + _vectors("y", 5), _vectors("a", 3) + _vectors("b", 5),
                  [_const("c", [0.75])])
    out = tmp_path / "out"
    compile_model(model, _plan(tmp_path / "plan.json", {}), out, backends=("hls",))
    cpp = (out / "hls" / "firmware" / "g.cpp").read_text()
    assert "FINEGRAIN_CONSTANT(c_t, c_full, 3);" in cpp and "FINEGRAIN_CONSTANT(c_t, c_full_2, 5);" in cpp
    assert main(["csim", str(out), "--vectors", "50"]) == 0


@pytest.mark.usefixtures("shared_rtl_builds")
def test_rtl_softmax_wires_and_a_top_named_verilator(tmp_path):
    """The RTL names a softmax's wires s_sum, s_max...: an output port named s_sum was declared
    twice; a top named verilator began its file with a Verilator directive ("// verilator:");
    ports named delete (a C++ keyword: Verilator -Wall's SYMRSVDWORD) or std (SystemVerilog's
    built-in package) stopped the Verilator build."""
    nodes = [helper.make_node("Gemm", ["delete", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Softmax", ["h"], ["s"], name="probs", axis=-1),
             helper.make_node("Relu", ["delete"], ["s_sum"], name="act"),
             helper.make_node("Relu", ["s_sum"], ["std"], name="act2")]
    model = _save(tmp_path / "verilator.onnx", nodes, _vectors(["delete"], 3),
                  _vectors("s", 4) + _vectors(["s_sum", "std"], 3), [_const("w", RNG.normal(size=(4, 3)))])
    out = tmp_path / "out"
    compile_model(model, _plan(tmp_path / "plan.json", {}), out, backends=("rtl",))
    names = json.loads((out / "report.json").read_text())["names"]
    assert names["model"]["verilog"] == "t_verilator"
    assert names["tensors"]["s"]["verilog"] == "s" and names["tensors"]["s_sum"]["verilog"] == "s_sum_2"
    assert names["tensors"]["delete"]["verilog"] == "delete_2" and names["tensors"]["std"]["verilog"] == "std_2"
    assert main(["sim", str(out), "--vectors", "50"]) == 0


@pytest.mark.usefixtures("shared_rtl_builds")
def test_tops_and_cores_named_like_the_library_or_the_axi_top(tmp_path):
    """A model file fg_add3.onnx made a top module fg_add3, rtl/fg_add3.sv's own (Verilator:
    MODDUP); a stream layer named axis made a core <model>_axis, the AXI4-Stream top's name, which
    the sources left out (the build failed).  Now t_fg_add3 and <model>_axis_2, both bit-exact."""
    dense = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    model = _save(tmp_path / "fg_add3.onnx", dense, _vectors("x", 3), _vectors("y", 4),
                  [_const("w", RNG.normal(size=(4, 3)))])
    out = tmp_path / "library"
    compile_model(model, _plan(tmp_path / "plan.json", {}), out, backends=("rtl",))
    assert (out / "rtl" / "t_fg_add3.sv").is_file()
    assert main(["sim", str(out), "--vectors", "20"]) == 0
    conv = [helper.make_node("Conv", ["x", "k"], ["c"], name="axis", pads=[1, 1, 1, 1]),
            helper.make_node("Flatten", ["c"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)]
    model = _save(tmp_path / "m.onnx", conv, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                  _vectors("y", 3), [_const("k", RNG.normal(size=(2, 2, 3, 3))), _const("w", RNG.normal(size=(3, 32)))])
    out = tmp_path / "stream"
    compile_model(model, _plan(tmp_path / "plan.json", {}), out, backends=("rtl",), architecture="stream")
    assert (out / "rtl" / "m_axis_2.sv").is_file() and not (out / "rtl" / "m_axis.sv").exists()
    assert main(["sim", str(out), "--vectors", "20"]) == 0


# --- Tcl ------------------------------------------------------------------------------------

TCL_STUBS = """
set calls {}
foreach cmd {open_project set_top add_files open_solution set_part create_clock config_array_partition
             csim_design csynth_design cosim_design export_design read_verilog synth_design get_ports
             report_utilization report_timing_summary} {
    proc $cmd args "lappend ::calls \\[list $cmd {*}\\$args\\]"
}
proc glob args { return {} }
proc exec args { error "exec called: $args" }
rename exit real_exit
proc exit args { foreach c $::calls { puts "[lindex $c 0]=[join [lrange $c 1 end] |]" }; real_exit 0 }
set argv {}
"""


def _source(tcl: Path) -> str:
    """Source ``tcl`` in tclsh with the vendor commands stubbed; what the stubs were given."""
    proc = subprocess.run(["tclsh"], input=TCL_STUBS + f"cd {{{tcl.parent}}}\nsource {tcl.name}\nexit\n",
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("part", ["xc7z020[exec touch PWNED]", "xc7z020clg400-1; touch PWNED", "$env(HOME)",
                                  "xc7z020clg400-1\nexec touch PWNED", "", "xc7z020", "pynq-z3"])
def test_part_injection_exits_2(part, tmp_path, capsys):
    folder = tmp_path
    model = _hostile_model(folder / "m.onnx")
    out = folder / "out"
    code = main(["compile", str(model), "--plan", str(_plan(folder / "plan.json")), "-o", str(out),
                 "--part", part])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "--part" in err and "part name" in err
    assert not out.exists()


def test_part_names_and_presets():
    for part in [*PARTS, "xc7a35ticsg324-1L", "xcvc1902-vsva2197-2MP-e-S", "xcku040-ffva1156-2-e"]:
        assert check_part(part) == part == resolve_part(None, part)
    assert resolve_part(None, "ZCU102") == BOARDS["zcu102"]
    assert resolve_part("ulx3s", None) == "LFE5U-85F-6BG381C" and check_part("LFE5UM5G-45F-8BG381I")
    for bad in ("xczu9eg-ffvb1156-2-e]", "LFE5U-85F-6BG381C;", "LFE5U-99F-6BG381C"):
        with pytest.raises(UserError, match="not a Xilinx or Lattice ECP5 part name"):
            check_part(bad)


def test_tcl_scripts_source_safely(tmp_path, hostile):
    """A valid part reaches set_part as one word; a hostile one (bypassing --part's check, as
    the library API could) is still one word and runs nothing; and a model file whose name
    holds a newline and a command stays in its comment line."""
    folder, out = hostile
    calls = _source(out / "hls" / "build_prj.tcl")
    assert "set_part=xcvu9p-flga2104-2L-e\n" in calls and "set_top=class_2\n" in calls
    project = compile_model(folder / "class.onnx", folder / "plan.json", backends=("hls",))
    evil = "xc7[exec touch PWNED] $env(HOME) {\n"
    source = {"model": "m\n[exec touch PWNED]\nexec touch PWNED\n.onnx", "plan": "p\\\nexec touch PWNED"}
    write_hls_project(project.graph, HLSOptions(part=evil), tmp_path / "hls", source)
    for script in ("build_prj.tcl", "vivado_synth.tcl"):
        calls = _source(tmp_path / "hls" / script)
        assert not (tmp_path / "hls" / "PWNED").exists()
        assert f"={evil}" in calls or f"|{evil}|" in calls  # the part, verbatim, one word
