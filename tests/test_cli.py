"""The `finegrain` command: happy paths, and every kind of bad input gives exit code 2, a
message naming the problem, and no output folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"


def _mlp(path: Path, op="Relu", batch="N", features=4, extra_dim=None) -> Path:
    """A 4-3 Gemm + activation model made with onnx.helper."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, features)).astype(np.float32), "fc.weight")
    b = numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "fc.bias")
    in_shape = [batch, features] if extra_dim is None else [batch, extra_dim, features]
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], name="fc", transB=1),
             helper.make_node(op, ["h"], ["y"], name="act")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


def _plan(path: Path, **overrides) -> Path:
    plan = {"defaults": {"input": "fixed<10,4,RND_CONV,SAT>", "weight": "fixed<8,3,RND_CONV,SAT>",
                         "bias": "fixed<10,4,RND_CONV,SAT>", "activation": None}, "tensors": {}}
    plan.update(overrides)
    path.write_text(json.dumps(plan))
    return path


def _fails(capsys, argv, pattern, out: Path | None = None):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    import re

    assert re.search(pattern, " ".join(err.split())), err
    if out is not None:
        assert not out.exists(), f"{out} was left behind"
        assert not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir()), "temporary folder left"
    return err


def test_compile_emulate_report_round_trip(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out)]) == 0
    for name in ("ir.txt", "ir.pkl", "plan.resolved.json", "config.json", "report.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"].endswith("model.onnx") and config["plan"].endswith("plan.json")
    resolved = json.loads((out / "plan.resolved.json").read_text())["tensors"]
    assert resolved["fc1.weight"]["source"].startswith("plan: axis 0")
    assert resolved["fc2.weight"]["source"] == "default"
    assert resolved["/relu1/Relu_output_0"]["formats"] == {"uniform": "ufixed<8,4,RND_CONV,SAT>"}
    report = json.loads((out / "report.json").read_text())
    assert [layer["stages"] for layer in report["layers"]][0] == ["dense", "relu", "requantize"]

    x = np.load(JET / "data.npz")["x"][:50]
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    import compiler

    expected = compiler.compile_model(JET / "model.onnx", JET / "plan.json").emulate(x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)
    assert main(["report", str(out)]) == 0
    assert "/fc1/Gemm" in capsys.readouterr().out


def test_console_script_exit_code(tmp_path):
    """The installed entry point behaves like main(): exit code 2 on a user error."""
    proc = subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(tmp_path / "none.onnx"),
                           "--plan", str(JET / "plan.json"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "none.onnx" in proc.stderr


def test_refuses_non_empty_output_without_force(tmp_path, capsys):
    """A non-empty folder is replaced only with --force, and only when compile wrote it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    compile_jet = ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out]
    _fails(capsys, compile_jet, r"not empty.*--force")
    _fails(capsys, compile_jet + ["--force"], r"no finegrain.json stamp.*not a finegrain output folder")
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert main([str(a) for a in compile_jet]) == 0
    (out / "extra.txt").write_text("from a previous output")
    assert main([str(a) for a in compile_jet + ["--force"]]) == 0
    assert not (out / "extra.txt").exists() and (out / "ir.txt").exists()


def test_plan_template_lists_every_tensor(tmp_path, capsys):
    target = tmp_path / "plan.json"
    assert main(["plan-template", str(JET / "model.onnx"), "-o", str(target)]) == 0
    template = json.loads(target.read_text())
    names = set(template["tensors"])
    assert {"x", "fc1.weight", "fc1.bias", "fc4.weight", "/relu1/Relu_output_0", "logits"} <= names
    note = template["tensors"]["fc1.weight"]["_note"]
    assert "shape" in note and "axis 0" in note
    # the skeleton itself is a valid plan: it compiles with its suggested defaults
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(target), "-o", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("case", ["not_a_file", "directory", "not_onnx", "truncated"])
def test_bad_model_files(tmp_path, capsys, case):
    model = tmp_path / "m.onnx"
    if case == "directory":
        model.mkdir()
    elif case == "not_onnx":
        model.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    elif case == "truncated":
        data = (JET / "model.onnx").read_bytes()
        model.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    _fails(capsys, ["compile", model, "--plan", _plan(tmp_path / "p.json"), "-o", out], r"m\.onnx", out)


def test_unsupported_op_names_node_and_lists_supported(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", op="Sin")
    out = tmp_path / "out"
    err = _fails(capsys, ["compile", model, "--plan", _plan(tmp_path / "p.json"), "-o", out], r"'act'.*Sin", out)
    assert "Gemm" in err and "Relu" in err  # lists what is supported


def test_dynamic_non_batch_dimension(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", extra_dim="T")
    out = tmp_path / "out"
    _fails(capsys, ["compile", model, "--plan", _plan(tmp_path / "p.json"), "-o", out], r"'x'.*(dynamic|T)", out)


@pytest.mark.parametrize("plan, pattern", [
    ({"tensors": {"fc.wieght": "fixed<4,1>"}},
     r"'fc.wieght'.*does not have: the model has no such tensor \(did you mean 'fc.weight'"),
    ({"defaults": {"weight": "fixed<8,3>", "bias": "fixed<8,3>"}}, r"graph input 'x'.*no format.*defaults.input"),
    ({"tensors": {"fc.weight": "fixed<8,3,RND_CONV,SATURATE>"}}, r"'fc.weight'.*unknown overflow mode 'SATURATE'"),
    ({"tensors": {"fc.weight": {"axis": 0, "formats": ["fixed<4,1>"] * 2}}},
     r"'fc.weight': 2 formats given for axis 0, but that axis has length 3"),
    ({"tensors": {"fc.weight": {"elements": "w.npz:w"}}}, r"'fc.weight': per-element arrays have shape \[4, 3\], "
                                                          r"but the tensor needs \[3, 4\]"),
    ({"tensors": {"h": {"elements": "neg.npz:h"}}}, r"'h': h.bits has negative bits -2 at index \[1\]"),
])
def test_bad_plans(tmp_path, capsys, plan, pattern):
    np.savez(tmp_path / "w.npz", **{"w.bits": np.ones((4, 3), int), "w.int_bits": np.ones((4, 3), int),
                                    "w.signed": np.ones((4, 3), int)})
    np.savez(tmp_path / "neg.npz", **{"h.bits": np.array([4, -2, 4]), "h.int_bits": np.ones(3, int),
                                      "h.signed": np.ones(3, int)})
    model = _mlp(tmp_path / "m.onnx")
    full = {"defaults": {"input": "fixed<10,4>", "weight": "fixed<8,3>", "bias": "fixed<10,4>"}, "tensors": {}}
    full.update(plan)
    (tmp_path / "p.json").write_text(json.dumps(full))
    out = tmp_path / "out"
    _fails(capsys, ["compile", model, "--plan", tmp_path / "p.json", "-o", out], pattern, out)


def test_saturating_weights_warn_with_counts(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    plan = _plan(tmp_path / "p.json", tensors={"fc.weight": "fixed<3,1,RND_CONV,SAT>"})
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    w = numpy_helper.to_array(onnx.load(model).graph.initializer[0])
    rounded = np.round(w.astype(np.float64) * 4)  # RND_CONV to 2 fractional bits
    count = int(np.sum((rounded < -4) | (rounded > 3)))  # fixed<3,1>: mantissas -4..3
    assert count > 0
    assert f"warning: {count} of 12 values of weight 'fc.weight' saturate" in " ".join(err.split())
    assert json.loads((out / "report.json").read_text())["warnings"]


def test_emulate_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out)]) == 0
    np.save(tmp_path / "bad.npy", np.zeros((3, 7)))
    _fails(capsys, ["emulate", out, "--input", tmp_path / "bad.npy", "--output", tmp_path / "y.npy"],
           r"input 'x' has shape \[3, 7\]; expected \[batch, 16\]")
    np.save(tmp_path / "nan.npy", np.full((2, 16), np.nan))
    _fails(capsys, ["emulate", out, "--input", tmp_path / "nan.npy", "--output", tmp_path / "y.npy"], r"non-finite")
    _fails(capsys, ["emulate", tmp_path, "--input", tmp_path / "nan.npy", "--output", tmp_path / "y.npy"],
           r"not a finegrain output folder")
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    _fails(capsys, ["emulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "x"],
           r"--output '.*x' would overwrite the input file")
    assert np.load(tmp_path / "x.npy").shape == (2, 16)


def test_emulate_names_the_file_numpy_writes(tmp_path, capsys):
    """numpy adds .npy (one output) when the name lacks it: the message names that file, which
    holds the outputs (it said y.txt and wrote y.txt.npy)."""
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out),
                 "--backend", "hls"]) == 0
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    capsys.readouterr()
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.txt")]) == 0
    assert capsys.readouterr().out.strip() == f"emulated 2 samples -> {tmp_path / 'y.txt.npy'}"
    assert np.load(tmp_path / "y.txt.npy").shape == (2, 5) and not (tmp_path / "y.txt").exists()
