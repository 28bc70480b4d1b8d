"""The fuzzer's tables of documented limits (`compiler.fuzz.check.LIMITS`, and
`compiler.fuzz.quant.QUANT_LIMITS` for quantized models) against the messages
finegrain really gives: every pattern is exercised by a case the compiler refuses with it, so a
reworded message or a lifted limit shows here, not as a stream of false findings (or silently
hidden ones) in the next fuzzer run.

Each tests/fuzz_limits/*.json holds a pattern (``limit``) and a fuzz case that hits it (found by
running the generator's seeds, or written by hand where the generator cannot reach the limit:
``message`` says which).  A limit no generated model can reach (one input and one output) is
triggered by a hand-built ONNX model instead."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler.errors import UserError
from compiler.fuzz.check import ALL_LIMITS, Outcome, prepare_case
from compiler.project import compile_model

CASES = sorted((Path(__file__).parent / "fuzz_limits").glob("*.json"))
ONE_INPUT_ONE_OUTPUT = r"the stream architecture takes one input and one output tensor"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_limit_case_is_refused_with_its_documented_message(path, tmp_path):
    record = json.loads(path.read_text())
    assert record["limit"] in ALL_LIMITS, f"{path.name}: its pattern is no longer a documented limit"
    # levels ("sim",): both backends are written (HLS first) and the first refusal is the outcome; with
    # csim asked for too, a limit of the RTL alone would fall back to the HLS project and pass
    outcome = prepare_case(record["case"], tmp_path, ("sim",))
    assert isinstance(outcome, Outcome), f"{path.name}: the case compiled and wrote both backends"
    assert outcome.status == "limit" and re.search(record["limit"], outcome.message), outcome


def test_two_output_model_is_refused_by_the_stream_rtl(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("y", "z")]
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Sigmoid", ["x"], ["z"], name="sigmoid")]
    model = helper.make_model(helper.make_graph(nodes, "two_outputs", [x], outputs),
                              opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "two_outputs.onnx"
    onnx.save(model, path)
    plan = {"defaults": {"input": "fixed<8,3>", "activation": "fixed<9,4>"}}
    project = compile_model(path, plan, backends=["rtl"], architecture="stream")
    with pytest.raises(UserError) as err:
        project.write(tmp_path / "out")
    assert re.search(ONE_INPUT_ONE_OUTPUT, str(err.value)), err.value
    assert np.isfinite(project.emulate(np.zeros((2, 4)))["z"]).all()


def test_every_limit_is_exercised():
    covered = {json.loads(p.read_text())["limit"] for p in CASES} | {ONE_INPUT_ONE_OUTPUT}
    assert covered == set(ALL_LIMITS), f"limits without a case: {set(ALL_LIMITS) - covered}"
