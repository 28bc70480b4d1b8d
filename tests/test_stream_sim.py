"""`finegrain sim` on a stream top (design13.md, "RTL stream top"): beats cut and put back by
schedule.json's order, valid/ready honoured, every bit compared, beats counted, latency and II
measured and checked against schedule.json.

The top is the hand-written tests/stream_fixtures/relu_stream.sv (Relu on a [3, 4, 5] tensor,
a 3-stage core and a credit FIFO), put into the output folder of the ONNX model it implements
in place of the parallel RTL, with relu_stream.schedule.json:

* 105 vectors back to back: bit-exact, latency 23 and II 20 as the fixture's comment derives,
  no input beat ever waits (the FIFO's credits sustain one beat per cycle); the same on Icarus;
* with --stall (Q_ready low 30% of cycles) and --gaps: the same output beats, and the stall
  reaches the input (beats wait for P_ready); latency and II are not measured;
* the core folded to II 3: latency 61 and II 60 measured; a schedule.json still predicting 23
  and 20 makes sim exit 1;
* a flipped bit, a duplicated last beat (seen only by the drain), a dropped beat, and a beat
  that changes while held under --stall: each exits 1 naming what is wrong;
* --stall on a parallel top and a damaged order: user errors (exit 2), before any build;
* the comparison and the measurement on two input ports and a one-beat vector output, in
  Python on recorded cycles;
* the small CNN example compiled with --arch stream (compiler/backends/rtl/stream.py), at
  reuse factor 1 and 3: bit-exact on 105 vectors, latency and II as schedule.json predicts
  (the II grows with the folding), and under --stall the same output beats while the input
  waits longer than back to back.

Verilator builds are cached under build/rtl_sim (sim.runner keys them by source contents).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler.cli import main
from compiler.verify.stream_sim import compare_beats, measure

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "stream_fixtures"
TOP = "relu_stream"


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """The fixture's model compiled with the parallel RTL backend."""
    folder = tmp_path_factory.mktemp("relu_stream")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], TOP,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 5])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), folder / "m.onnx")
    (folder / "plan.json").write_text(json.dumps({"defaults": {"input": "fixed<8,3,RND_CONV,SAT>"},
                                                  "tensors": {"y": "ufixed<7,2,RND_CONV,SAT>"}}))
    out = folder / "out"
    assert main(["compile", str(folder / "m.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out),
                 "--backend", "rtl"]) == 0
    return out


def _stream_folder(compiled: Path, tmp_path: Path, edits: dict[str, str] | None = None,
                   schedule: dict | None = None) -> Path:
    """A copy of ``compiled`` whose rtl/ holds the fixture, its lines changed by ``edits``
    (old -> new, each must match) and its schedule.json updated with ``schedule``."""
    out = tmp_path / "out"
    shutil.copytree(compiled, out)
    source = (FIXTURES / f"{TOP}.sv").read_text()
    for old, new in (edits or {}).items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    (out / "rtl" / f"{TOP}.sv").write_text(source)
    plan = json.loads((FIXTURES / f"{TOP}.schedule.json").read_text())
    (out / "rtl" / "schedule.json").write_text(json.dumps({**plan, **(schedule or {})}))
    return out


def _sim(out: Path, *extra) -> tuple[int, dict, dict]:
    """Exit code, report.json's sim, and what the testbench recorded."""
    code = main(["sim", str(out), *extra])
    recorded = json.loads((out / "rtl" / "sim" / "results.json").read_text())
    return code, json.loads((out / "report.json").read_text())["sim"], recorded


def test_stream_top_bit_exact_with_measured_latency_and_ii(compiled, tmp_path, capsys):
    out = _stream_folder(compiled, tmp_path)
    code, report, recorded = _sim(out, "--vectors", "100")
    assert code == 0
    assert report == {**report, "vectors": 105, "mismatches": 0, "latency_cycles": 23, "ii_cycles": 20,
                      "predicted_latency_cycles": 23, "predicted_ii_cycles": 20, "architecture": "stream",
                      "gaps": False, "stall": False, "output_beats": {"expected": 2100, "received": 2100}}
    assert recorded["waited"] == {"x": 0} and recorded["errors"] == [] and recorded["stopped"] is None
    assert "bit-exact; latency 23 cycles (predicted 23), II 20 (predicted 20)" in capsys.readouterr().out
    words = [word for _, word in recorded["outputs"]["y"]]
    code, report, _ = _sim(out, "--vectors", "20", "--simulator", "icarus")  # the same testbench on Icarus
    assert code == 0 and report["mismatches"] == 0 and (report["latency_cycles"], report["ii_cycles"]) == (23, 20)

    # back-pressure: the output stalls at random, the FIFO fills, x waits; the same beats come out
    code, report, recorded = _sim(out, "--vectors", "100", "--stall")
    assert code == 0 and report["mismatches"] == 0 and report["stall"]
    assert [word for _, word in recorded["outputs"]["y"]] == words
    assert recorded["waited"]["x"] > 100 and recorded["errors"] == []
    assert report["latency_cycles"] is None and report["ii_cycles"] is None
    assert "latency and II not measured" in capsys.readouterr().out
    code, report, recorded = _sim(out, "--vectors", "100", "--stall", "--gaps")
    assert code == 0 and report["mismatches"] == 0
    assert [word for _, word in recorded["outputs"]["y"]] == words

    # fewer than 4 vectors: no steady state to measure the II on
    x = np.linspace(-4, 3.9, 2 * 60).reshape(2, 3, 4, 5)
    np.save(tmp_path / "x.npy", x)
    code, report, _ = _sim(out, "--input", str(tmp_path / "x.npy"))
    assert code == 0 and report["vectors"] == 2 and report["latency_cycles"] == 23 and report["ii_cycles"] is None
    assert "II not measured (too few vectors for a steady state) (predicted 20)" in capsys.readouterr().out


def test_folded_core_latency_and_ii_measured_and_checked(compiled, tmp_path, capsys):
    folded = {"localparam int II = 1;": "localparam int II = 3;"}
    out = _stream_folder(compiled, tmp_path, folded)  # schedule.json still says 23 and 20
    code, report, _ = _sim(out, "--vectors", "10")
    assert code == 1 and report["mismatches"] == 0
    assert (report["latency_cycles"], report["ii_cycles"]) == (61, 60)
    assert "latency/II differ from schedule.json (latency 23, II 20)" in capsys.readouterr().out
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    (out / "rtl" / "schedule.json").write_text(json.dumps({**schedule, "latency_cycles": 61, "ii_cycles": 60}))
    code, report, _ = _sim(out, "--vectors", "10")
    assert code == 0 and (report["latency_cycles"], report["ii_cycles"]) == (61, 60)


LAST_BEAT = 15 * 20 - 1  # --vectors 10: 15 vectors of 20 beats


@pytest.mark.parametrize("edit, extra, expected", [
    ({"FLIP_BEAT = -1": "FLIP_BEAT = 45"}, (),
     "mismatch: vector 2 output y[5] (beat 5 lane 0, cycle 52): expected 0, got 1"),
    ({"DUPLICATE_BEAT = -1": f"DUPLICATE_BEAT = {LAST_BEAT}"}, (),
     "output y: an extra beat at cycle"),
    ({"DROP_BEAT = -1": "DROP_BEAT = 45"}, (),
     "output y: 299 beats, expected 300 (20 per vector x 15): beats lost"),
    ({"UNSTABLE = 1'b0": "UNSTABLE = 1'b1"}, ("--stall",),
     "was shown and not taken, then changed before it was taken"),
], ids=["flipped-bit", "duplicated-last-beat", "dropped-beat", "changed-while-held"])
def test_wrong_stream_top_is_caught(compiled, tmp_path, capsys, edit, extra, expected):
    out = _stream_folder(compiled, tmp_path, edit)
    code, report, _ = _sim(out, "--vectors", "10", *extra)
    printed = capsys.readouterr().out
    assert code == 1 and report["mismatches"] > 0 and expected in printed, printed


def test_stream_user_errors(compiled, tmp_path, capsys):
    # --stall needs a ready on the outputs: the parallel top has none
    assert main(["sim", str(compiled), "--vectors", "1", "--stall"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--stall holds the outputs' ready low, and relu_stream's RTL is the fully parallel" in err
    bad = _stream_folder(compiled, tmp_path)
    schedule = json.loads((bad / "rtl" / "schedule.json").read_text())
    schedule["outputs"][0]["order"][1] = 0  # element 0 twice, element 20 never
    (bad / "rtl" / "schedule.json").write_text(json.dumps(schedule))
    assert main(["sim", str(bad), "--vectors", "1"]) == 2
    assert "stream port 'y' needs 'beats' x 'lanes' = 'size'" in " ".join(capsys.readouterr().err.split())


def test_comparison_and_measurement_on_two_inputs_and_a_vector_output():
    """Ports a and b (2 beats of 2 lanes each) and a 4-element vector output (one beat), two
    images: the output's order places lanes; the latency runs from the earlier input port's
    first beat; a beat too many and a changed lane are counted."""
    ins = [{"name": n, "beats": 2, "lanes": 2} for n in ("a", "b")]
    out = {"name": "q", "beats": 1, "lanes": 4, "size": 4, "width": 4, "signed": True, "type": "fixed<4,2>"}
    order = np.array([2, 0, 3, 1])  # lane l holds element order[l]
    want = np.array([[1, -2, 3, -4], [-8, 7, 0, 5]])
    word = [sum((int(want[v][order[lane]]) & 15) << (4 * lane) for lane in range(4)) for v in range(2)]
    got = {"inputs": {"a": [5, 6, 9, 10], "b": [4, 7, 9, 11]},
           "outputs": {"q": [[20, format(word[0], "x")], [24, format(word[1], "x")]]}, "errors": [], "stopped": None}
    assert compare_beats(got, [out], [order], [want], 2) == (0, [])
    assert measure(got, ins, [out], 2) == (16, None)  # from b's first beat (4) to q's (20); II needs 4 images

    got["outputs"]["q"] = [[20, format(word[0] ^ 1, "x")], [24, format(word[1], "x")], [30, "0"]]
    mismatches, lines = compare_beats(got, [out], [order], [want], 2)
    assert mismatches == 2
    assert lines == ["output q: 3 beats, expected 2 (1 per vector x 2): beats extra or duplicated",
                     "mismatch: vector 0 output q[2] (beat 0 lane 0, cycle 20): expected 3, got 2 "
                     "(mantissas of fixed<4,2>)",
                     "output q: an extra beat at cycle 30, after the 2 expected"]
    images = {"inputs": {"a": list(range(0, 16, 2)), "b": list(range(1, 16, 2))},
              "outputs": {"q": [[10 + 4 * v, "0"] for v in range(4)]}}
    assert measure(images, ins, [out], 4) == (10, 4)


def test_small_cnn_stream_top_bit_exact_with_predicted_latency_ii_and_stalls(tmp_path):
    folder = ROOT / "examples" / "small_cnn"
    measured = {}
    for reuse in (1, 3):
        out = tmp_path / f"reuse{reuse}"
        assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out),
                     "--backend", "rtl", "--arch", "stream", "--reuse-factor", str(reuse)]) == 0
        schedule = json.loads((out / "rtl" / "schedule.json").read_text())
        assert schedule["architecture"] == "stream"
        code, report, recorded = _sim(out, "--vectors", "100")
        assert code == 0 and report == {**report, "vectors": 105, "mismatches": 0,
                                        "latency_cycles": schedule["latency_cycles"],
                                        "ii_cycles": schedule["ii_cycles"]}
        measured[reuse] = report["ii_cycles"]
    assert measured[3] > measured[1]

    # reuse factor 3's top under a stalled output: the same beats; the stall reaches the input
    port = schedule["outputs"][0]["name"]
    words = [word for _, word in recorded["outputs"][port]]
    waited = recorded["waited"][schedule["inputs"][0]["name"]]
    code, report, recorded = _sim(out, "--vectors", "100", "--stall")
    assert code == 0 and report["mismatches"] == 0 and report["output_beats"]["received"] == 105
    assert [word for _, word in recorded["outputs"][port]] == words
    assert recorded["waited"][schedule["inputs"][0]["name"]] > waited and recorded["errors"] == []
