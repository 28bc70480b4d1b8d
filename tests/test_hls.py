"""HLS C++ backend: emitted text (goldens), g++ C simulation bit-exact against the emulator
on every example and on a rounding x overflow matrix, a check that can fail, and the Tcl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main
from compiler.fixed import Overflow, Rounding

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = Path(__file__).resolve().parent / "goldens" / "hls_tiny"


def _tiny_model(path: Path) -> Path:
    """3 -> 4 Gemm + Relu -> 2 Gemm + Sigmoid, with a bias Add after a MatMul."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "fc1.weight"),
             numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "fc1.bias"),
             numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "fc2.weight"),
             numpy_helper.from_array(rng.normal(size=2).astype(np.float32), "fc2.bias")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["h_relu"], name="relu1"),
             helper.make_node("MatMul", ["h_relu", "fc2.weight"], ["z"], name="fc2"),
             helper.make_node("Add", ["z", "fc2.bias"], ["logit"], name="fc2_bias"),
             helper.make_node("Sigmoid", ["logit"], ["y"], name="out")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _tiny_plan(path: Path) -> Path:
    path.write_text(json.dumps({
        "defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                     "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None},
        "tensors": {"h_relu": {"axis": 1, "formats": ["ufixed<6,3,RND_CONV,SAT>", "ufixed<4,2,TRN,WRAP>",
                                                       "ufixed<6,3,RND_CONV,SAT>", "ufixed<5,1,RND,SAT>"]},
                    "fc1.weight": {"axis": 0, "formats": ["fixed<4,1,RND_CONV,SAT>", "fixed<6,2,RND_CONV,SAT>",
                                                          "fixed<5,0,RND_CONV,SAT>", "fixed<6,2,RND_CONV,SAT>"]}}}))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    out = tmp / "out"
    assert main(["compile", str(_tiny_model(tmp / "tiny.onnx")), "--plan", str(_tiny_plan(tmp / "plan.json")),
                 "-o", str(out)]) == 0
    return out


def test_emitted_text_matches_goldens(tiny, request):
    hls = tiny / "hls"
    generated = sorted(p for p in hls.rglob("*") if p.is_file() and "finegrain" not in p.parts
                       and "csim_build" not in p.parts and "tb_data" not in p.parts)
    names = [str(p.relative_to(hls)) for p in generated]
    if request.config.getoption("--update-goldens"):
        for p in GOLDENS.rglob("*"):
            if p.is_file():
                p.unlink()
        for p, name in zip(generated, names):
            (GOLDENS / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDENS / name).write_text(p.read_text())
    golden_names = sorted(str(p.relative_to(GOLDENS)) for p in GOLDENS.rglob("*") if p.is_file())
    assert names == golden_names, "the set of generated files changed; run with --update-goldens and review"
    for p, name in zip(generated, names):
        assert p.read_text() == (GOLDENS / name).read_text(), f"{name} changed; run --update-goldens and review"


def _csim(out: Path, *extra) -> tuple[int, dict]:
    code = main(["csim", str(out), *extra])
    return code, json.loads((out / "report.json").read_text())["csim"]


def test_tiny_model_csim_is_bit_exact(tiny):
    code, report = _csim(tiny, "--vectors", "1000")
    assert code == 0 and report["mismatches"] == 0 and report["vectors"] == 1005


@pytest.mark.parametrize("example", ["jet_tagger", "small_cnn"])
def test_examples_csim_bit_exact(example, tmp_path):
    folder = ROOT / "examples" / example
    out = tmp_path / "out"
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out)]) == 0
    code, report = _csim(out, "--vectors", "1000")
    assert code == 0 and report == {**report, "vectors": 1005, "mismatches": 0}
    # the example's own test set too
    x = np.load(folder / "data.npz")["x"]
    np.save(tmp_path / "x.npy", x)
    code, report = _csim(out, "--input", str(tmp_path / "x.npy"))
    assert code == 0 and report["vectors"] == len(x) and report["mismatches"] == 0


def test_a_corrupted_weight_makes_csim_fail(tiny, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny, out)
    weights = out / "hls" / "firmware" / "weights" / "fc1_weight.h"
    text = weights.read_text()
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("    ") and "," in line)
    values = lines[row].strip().rstrip(",").split(", ")
    values[0] = str(int(values[0]) + 1)  # one weight off by one LSB
    lines[row] = "    " + ", ".join(values) + ","
    weights.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code, report = _csim(out, "--vectors", "200")
    assert code == 1 and report["mismatches"] > 0
    printed = capsys.readouterr().out
    assert "MISMATCHES" in printed and "mismatch: vector" in printed and "expected" in printed


def _matrix_model(path: Path, n: int) -> Path:
    """y = x * c elementwise, c = +-2**-j: few bits to drop, so ties are common."""
    scale = np.array([2.0 ** -(k % 4) * (1 if k % 3 else -1) for k in range(n)], dtype=np.float32)
    nodes = [helper.make_node("Mul", ["x", "scale"], ["y"], name="scale")]
    graph = helper.make_graph(nodes, "matrix", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
                              [numpy_helper.from_array(scale, "scale")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_rounding_overflow_matrix_csim(tmp_path):
    """Every rounding x overflow pair on a spread of formats (signed, unsigned, negative and
    large integer bits), each an output element of one model: ap_fixed agrees with the emulator."""
    formats = []
    shapes = [(5, 2, "fixed"), (4, 0, "fixed"), (6, -1, "fixed"), (3, 5, "fixed"), (1, 1, "fixed"),
              (5, 2, "ufixed"), (4, -2, "ufixed"), (3, 4, "ufixed")]
    for rounding in Rounding:
        for overflow in Overflow:
            for w, i, kind in shapes:
                formats.append(f"{kind}<{w},{i},{rounding.name},{overflow.name}>")
    n = len(formats)
    model = _matrix_model(tmp_path / "m.onnx", n)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<12,6,TRN,SAT>", "weight": "fixed<12,2,RND_CONV,SAT>",
                                             "bias": "fixed<8,3>"},
                                "tensors": {"y": {"axis": 1, "formats": formats}}}))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    code, report = _csim(out, "--vectors", "1500")
    assert code == 0 and report["mismatches"] == 0 and report["vectors"] == 1505


def test_build_prj_tcl_parses_with_vendor_commands_stubbed(tiny, tmp_path):
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "stub.tcl"
    vendor = ["open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock",
              "config_array_partition", "csim_design", "csynth_design", "cosim_design", "export_design"]
    stub.write_text("\n".join(
        [f'set log [open "{calls}" w]'] +
        [f'proc {c} {{args}} {{ puts $::log "{c} $args" }}' for c in vendor] +
        ['proc exit {args} { close $::log }',
         'set argv {csim=1 synth=1 cosim=1 export=1}',
         f'cd "{tiny / "hls"}"', 'source build_prj.tcl']))
    proc = subprocess.run(["tclsh", str(stub)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    log = calls.read_text()
    for step in ("open_project -reset tiny_prj", "set_top tiny", "set_part xcvu9p-flga2104-2L-e",
                 "create_clock -period 5.0", "csim_design", "csynth_design", "cosim_design", "export_design"):
        assert step in log, f"{step!r} not called:\n{log}"
    # a bad step flag is refused
    stub.write_text(stub.read_text().replace("set argv {csim=1 synth=1 cosim=1 export=1}", "set argv {sim=1}"))
    proc = subprocess.run(["tclsh", str(stub)], capture_output=True, text=True)
    assert "unknown argument 'sim=1'" in proc.stdout


def test_board_presets_and_unknown_board(tmp_path, capsys):
    folder = ROOT / "examples" / "jet_tagger"
    out = tmp_path / "out"
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out),
                 "--board", "pynq-z2", "--clock-ns", "10", "--reuse-factor", "4", "--strategy", "resource"]) == 0
    tcl = (out / "hls" / "build_prj.tcl").read_text()
    assert 'set part "xc7z020clg400-1"' in tcl and "-period $clock_ns" in tcl and "set clock_ns 10.0" in tcl
    cpp = (out / "hls" / "firmware" / "jet_tagger.cpp").read_text()
    assert "#pragma HLS PIPELINE II=4" in cpp and "BIND_STORAGE variable=fc1_weight" in cpp
    config = json.loads((out / "config.json").read_text())
    assert config["part"] == "xc7z020clg400-1" and config["reuse_factor"] == 4
    code, report = _csim(out, "--vectors", "100")
    assert code == 0 and report["mismatches"] == 0
    capsys.readouterr()
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o",
                 str(tmp_path / "o2"), "--board", "zedboard"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'zedboard'" in err and "pynq-z2" in err and "alveo-u250" in err
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("name", ["mnist_cnn_float", "mlperf_kws_dscnn_float", "mlperf_ad_autoenc_float"])
def test_real_models_csim_bit_exact(name, tmp_path):
    """Published models (convs incl. depthwise, pooling, Gemm+BatchNorm) through g++ csim."""
    from test_float_reference import REAL_PLANS

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(REAL_PLANS[name]))
    out = tmp_path / "out"
    model = ROOT.parent / "shared" / "models" / f"{name}.onnx"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    code, report = _csim(out, "--vectors", "100")
    assert code == 0 and report["vectors"] == 105 and report["mismatches"] == 0


def test_csim_with_a_relative_output_folder(tiny, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(tiny, tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    code, report = _csim(Path("rel"), "--vectors", "20")
    assert code == 0 and report["mismatches"] == 0


def test_per_layer_reuse_factor_and_strategy(tmp_path):
    folder = ROOT / "examples" / "jet_tagger"
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"/fc2/Gemm": {"reuse_factor": 8, "strategy": "resource"}}))
    out = tmp_path / "out"
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out),
                 "--layer-config", str(layers)]) == 0
    cpp = (out / "hls" / "firmware" / "jet_tagger.cpp").read_text()
    assert "#pragma HLS PIPELINE II=8" in cpp
    assert "fc2_Gemm_output_0_t, 64, 32, 8>" in cpp and "fc1_Gemm_output_0_t, 16, 64, 1>" in cpp
    assert "BIND_STORAGE variable=fc2_weight" in cpp and "BIND_STORAGE variable=fc1_weight" not in cpp
    code, report = _csim(out, "--vectors", "200")
    assert code == 0 and report["mismatches"] == 0
    layers.write_text(json.dumps({"/fc2/Gemm": {"reuse_factor": 0}}))
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o",
                 str(tmp_path / "bad"), "--layer-config", str(layers)]) == 2
    assert not (tmp_path / "bad").exists()
