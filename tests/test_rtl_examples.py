"""Every example model through the RTL backend and `finegrain sim` (issue 4): compiled with the
default backends, then simulated on Verilator (cocotb) with the CLI's default vectors (1000
random + 5 extreme), every output bit equal to the emulator's, with the latency schedule.json
predicts and II 1.

An example is a folder of examples/ holding ``<name>.onnx`` with its plan (``plan.json`` for
``model.onnx``, ``<name>_plan.json`` otherwise).  The jet tagger is simulated in
tests/test_rtl.py (with in_valid gaps too), so it is left out here.  Verilator builds are
cached under build/rtl_sim, as in test_rtl.py; on a cold cache (Verilator's runtime objects
too) the whole file took 97 s on this 2-core machine, 66 s of it small_cnn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TESTED_ELSEWHERE = {"jet_tagger/model.onnx"}  # tests/test_rtl.py


def _examples() -> dict[str, tuple[Path, Path]]:
    """{"folder/model.onnx": (model, plan)} of every example not tested elsewhere."""
    found = {}
    for model in sorted(EXAMPLES.glob("*/*.onnx")):
        plan = model.with_name("plan.json" if model.stem == "model" else f"{model.stem}_plan.json")
        name = f"{model.parent.name}/{model.name}"
        if plan.is_file() and name not in TESTED_ELSEWHERE:
            found[name] = (model, plan)
    return found


def test_the_examples_are_found():
    assert {"small_cnn/model.onnx", "per_weight_bits/uniform.onnx"} <= set(_examples())


@pytest.mark.parametrize("example", sorted(_examples()))
@pytest.mark.usefixtures("shared_rtl_builds")
def test_example_sim_bit_exact_with_predicted_latency(example, tmp_path):
    """small_cnn (9 MB of generated SystemVerilog, the largest) builds in about 60 s on this
    2-core machine (Verilator 37 s, g++ 21 s), then simulates in about 1 s; the MLP examples
    build in about 5 s each."""
    model, plan = _examples()[example]
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert main(["sim", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report == {**report, "vectors": 1005, "mismatches": 0, "latency_cycles": schedule["latency_cycles"],
                      "ii_cycles": 1}
