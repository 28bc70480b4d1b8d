"""Emitted text compared whole against goldens in tests/goldens/: the IR text of the examples,
and the generated RTL (OUT/rtl: <model>.sv, <model>_axis.sv, schedule.json) of two tiny models.

Regenerate on purpose with `pytest tests/test_goldens.py --update-goldens` and review the diff.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main
from compiler.ir import dump

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = Path(__file__).resolve().parent / "goldens"


@pytest.mark.parametrize("example", ["jet_tagger", "small_cnn"])
def test_ir_text_matches_golden(example, request, tmp_path):
    folder = ROOT / "examples" / example
    project = compiler.compile_model(folder / "model.onnx", folder / "plan.json", output_dir=tmp_path / "out")
    text = dump(project.graph)
    assert (tmp_path / "out" / "ir.txt").read_text() == text
    golden = GOLDENS / f"{example}.ir.txt"
    if request.config.getoption("--update-goldens"):
        golden.write_text(text)
    assert golden.is_file(), f"no golden {golden}; run pytest with --update-goldens"
    assert text == golden.read_text(), f"{example}: IR text changed; if intended, run --update-goldens and review"


# --- the generated RTL of two tiny models ------------------------------------------------


def _onnx(path: Path, name: str, nodes, inputs: dict, outputs: dict, inits: dict) -> Path:
    """An opset-13 model; ``inputs``/``outputs``: name -> shape without the batch."""
    def info(n, shape):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *shape])

    graph = helper.make_graph(nodes, name, [info(n, s) for n, s in inputs.items()],
                              [info(n, s) for n, s in outputs.items()],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32), n) for n, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _dense_relu(path: Path) -> tuple[Path, dict]:
    """4 -> 3 Gemm + bias + Relu, requantized; 28-bit input and 18-bit output ports, so the
    AXI4-Stream top pads both to whole bytes."""
    w = [[0.75, -1.5, 0.0, 0.3], [1.0, 0.4375, -0.25, 1.8], [-0.6, 0.0, 1.25, -2.0]]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["y"], name="act")]
    plan = {"defaults": {"input": "fixed<7,3,RND_CONV,SAT>", "weight": "fixed<5,2,RND_CONV,SAT>",
                         "bias": "fixed<7,3,RND_CONV,SAT>", "activation": None},
            "tensors": {"y": "ufixed<6,3,RND_CONV,SAT>"}}
    return _onnx(path, "dense", nodes, {"x": (4,)}, {"y": (3,)}, {"w": w, "b": [0.5, -0.25, 1.0]}), plan


def _maxpool(path: Path) -> tuple[Path, dict]:
    """2x2 max pooling, stride 2, of one 4x4 channel."""
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    plan = {"defaults": {"input": "fixed<6,2,RND_CONV,SAT>", "weight": "fixed<6,2>", "bias": "fixed<6,2>",
                         "activation": None}, "tensors": {}}
    return _onnx(path, "maxpool", nodes, {"x": (1, 4, 4)}, {"y": (1, 2, 2)}, {}), plan


RTL_MODELS = {"dense_relu_axis": (_dense_relu, "axis"), "maxpool": (_maxpool, "ports")}


@pytest.mark.parametrize("case", sorted(RTL_MODELS))
def test_rtl_text_matches_golden(case, request, tmp_path):
    """The whole of OUT/rtl (the generated top, the AXI4-Stream top if any, schedule.json)."""
    make, interface = RTL_MODELS[case]
    model, plan = make(tmp_path / "model.onnx")
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(tmp_path / "plan.json"), "-o", str(out), "--backend", "rtl",
                 "--rtl-interface", interface]) == 0
    generated = {p.name: p.read_text() for p in sorted((out / "rtl").iterdir())}
    folder = GOLDENS / "rtl" / case
    if request.config.getoption("--update-goldens"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in generated.items():
            (folder / name).write_text(text)
    assert folder.is_dir(), f"no goldens {folder}; run pytest with --update-goldens"
    assert sorted(generated) == sorted(p.name for p in folder.iterdir()), \
        f"{case}: the set of generated RTL files changed; if intended, run --update-goldens and review"
    for name, text in generated.items():
        assert text == (folder / name).read_text(), f"{case}: {name} changed; if intended, run --update-goldens " \
                                                    f"and review"
