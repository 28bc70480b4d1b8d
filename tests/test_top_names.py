"""Generated tops are named after the model file when the ONNX graph's own name says nothing
(keras2onnx names the graph after a UUID, torch `main_graph` or `torch_jit`): the HLS top
function, its files and the RTL module."""

import json
import shutil
import warnings
from pathlib import Path

import onnx
import pytest
import torch

from compiler.names import meaningless_graph_name
from compiler.project import compile_model, model_name

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"


@pytest.mark.parametrize("name", ["", "main_graph", "torch_jit", "torch-jit-export", "tf2onnx", "Model", "model_1",
                                  "sequential_3", "b45ce9ce619f42b8bc7366274a6b9f00",
                                  "b45ce9ce-619f-42b8-bc73-66274a6b9f00", "module b45ce9ce619f42b8bc7366274a6b9f00"])
def test_meaningless_graph_names(name):
    assert meaningless_graph_name(name)


@pytest.mark.parametrize("name", ["jet_tagger", "small_cnn", "conv1d", "deadbeef", "mlp_v2", "resnet8"])
def test_meaningful_graph_names_are_kept(name):
    assert not meaningless_graph_name(name)
    assert model_name("anything/else.onnx", name) == name


def test_model_name_falls_back_to_the_file_then_the_folder(tmp_path):
    assert model_name(tmp_path / "Jet Tagger-v2.onnx", "b45ce9ce619f42b8bc7366274a6b9f00") == "Jet Tagger-v2"
    assert model_name(JET / "model.onnx", "main_graph") == "jet_tagger"  # model.onnx says nothing either


def test_keras2onnx_style_uuid_graph_name_gives_the_file_name(tmp_path):
    """The jet tagger with keras2onnx's kind of graph name: the top is the file's stem."""
    model = onnx.load(JET / "model.onnx")
    model.graph.name = "b45ce9ce619f42b8bc7366274a6b9f00"
    path = tmp_path / "jet_tagger_keras.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    compile_model(path, JET / "plan.json", out, backends=("hls", "rtl"))
    names = json.loads((out / "report.json").read_text())["names"]["model"]
    assert names["onnx"] == names["cpp"] == "jet_tagger_keras"
    assert (out / "hls" / "firmware" / "jet_tagger_keras.cpp").is_file()
    assert "set_top jet_tagger_keras" in (out / "hls" / "build_prj.tcl").read_text()
    assert "module jet_tagger_keras" in (out / "rtl" / "jet_tagger_keras.sv").read_text()
    assert "b45ce9ce" not in "".join(p.read_text() for p in (out / "rtl").glob("*.sv"))


def test_torch_export_gets_the_file_name(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    path = tmp_path / "My Net-v2.onnx"
    with warnings.catch_warnings():  # the exporter's notes about its own deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 4), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    assert meaningless_graph_name(onnx.load(path).graph.name)  # main_graph or torch_jit, by torch version
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                                             "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}}))
    out = tmp_path / "out"
    project = compile_model(path, plan, out, backends=("hls",))
    assert project.graph.name == "My Net-v2"
    assert json.loads((out / "report.json").read_text())["names"]["model"]["cpp"] == "My_Net_v2"
    assert (out / "hls" / "firmware" / "My_Net_v2.cpp").is_file()
    shutil.rmtree(out)
