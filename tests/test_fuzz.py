"""The differential fuzzer (compiler/fuzz): a small fixed-seed budget through the emulator
and the exact reference, batched g++ csim and batched Verilator sim; the batches on tampered
cases (each bad case found, the good ones passing); the exact reference itself on
hand-checked values; and every shrunk regression case in tests/fuzz_cases replayed.

A regression case with ``known_defect`` records a defect not fixed on this branch: it is a
strict xfail, so the fix makes it XPASS and fail until the marker is removed.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.fuzz.__main__ import fuzz
from compiler.fuzz.check import Written, prepare_case, run_case
from compiler.fuzz.generate import build_options, normalize, random_case, streamed
from compiler.fuzz.__main__ import run_backends
from compiler.fuzz.reference import convert, parse, quantize
from compiler.fuzz.shrink import _candidates

CASES = sorted((Path(__file__).parent / "fuzz_cases").glob("*.json"))


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


@pytest.mark.parametrize("rounding, expected", [
    ("TRN", [2, -3, 2, -3, 2]), ("TRN_ZERO", [2, -2, 2, -2, 2]), ("RND", [3, -2, 2, -3, 3]),
    ("RND_ZERO", [2, -2, 2, -3, 3]), ("RND_MIN_INF", [2, -3, 2, -3, 3]), ("RND_INF", [3, -3, 2, -3, 3]),
    ("RND_CONV", [2, -2, 2, -3, 3]), ("CEIL", [3, -2, 3, -2, 3])])
def test_reference_rounding_modes_on_ties_and_between(rounding, expected):
    values = [Fraction(5, 2), Fraction(-5, 2), Fraction(9, 4), Fraction(-11, 4), Fraction(11, 4)]
    assert [convert(v, 8, 8, True, rounding, "WRAP") for v in values] == expected


@pytest.mark.parametrize("overflow, expected", [("WRAP", [-7, 6, -8]), ("SAT", [7, -8, -8]),
                                                 ("SAT_ZERO", [0, 0, -8]), ("SAT_SYM", [7, -7, -7])])
def test_reference_overflow_modes(overflow, expected):
    assert [convert(Fraction(v), 4, 4, True, "TRN", overflow) for v in (9, -10, -8)] == expected


def test_reference_formats_pow2_and_per_axis():
    assert parse("ufixed<4,-2>")(Fraction(1, 3)) == Fraction(5, 64)
    assert parse("fixed<4,8>")(Fraction(100)) == Fraction(96)
    assert [parse("pow2<-3,0>")(Fraction(v)) for v in (0.0624, 0.0625, 0.1875, 0.18, 1.4, -0.19)] == \
        [0, Fraction(1, 8), Fraction(1, 4), Fraction(1, 8), 1, Fraction(-1, 4)]
    case = {"plan": {"defaults": {"weight": None},
                     "tensors": {"w": {"axis": 1, "formats": ["fixed<4,1>", "pow2<0,0>"]}}}}
    got = quantize("w", "weight", np.array([[0.3, 0.6]]), case)
    assert list(got[0]) == [Fraction(1, 4), 1]


def test_fixed_seed_budget_is_clean(tmp_path):
    """120 random cases through the emulator and the reference, 20 of them through one
    batched g++ csim build and 8 through one batched Verilator build: no finding that is not
    already a regression case below."""
    summary = fuzz(minutes=2.0, seed=11, csim=True, sim=True, out=tmp_path, csim_every=6, sim_every=15,
                   shrink_budget=0, max_cases=120, log=lambda *_: None)
    assert summary["checks_passed"].get("sim", 0) >= 4 and summary["checks_passed"].get("csim", 0) >= 10
    known = {json.loads(p.read_text())["check"] for p in CASES}
    assert [f for f in summary["findings"] if f["check"] not in known] == []


def _written(tmp_path, count: int) -> list[Written]:
    cases, seed = [], 0
    while len(cases) < count:
        w = prepare_case(random_case(seed), tmp_path / f"case{seed}", ("csim", "sim"), name=f"case{seed}")
        seed += 1
        if isinstance(w, Written) and w.levels == ("csim", "sim") and w.failed is None:
            cases.append(w)
    return cases


def test_batches_find_each_tampered_case(tmp_path):
    """Five cases in one g++ and one Verilator batch, four of them tampered after writing:
    case 1's C++ flips an output bit, case 2's C++ does not compile, case 4's C++ crashes the
    batch's binary, case 0's schedule.json promises one more cycle of latency, case 3's RTL
    inverts an output.  Each is found by the level it broke, and case 0's and case 3's C++
    still pass csim."""
    written = _written(tmp_path, 5)
    cpp = [w.out / "hls" / "firmware" / f"{w.project.graph.name}.cpp" for w in written]
    output = re.search(r"(\w+)\[\d+\]\s*// output", (cpp[1].with_suffix(".h")).read_text()).group(1)
    text = cpp[1].read_text()
    cpp[1].write_text(text[:text.rindex("}")] + f"    {output}[0][0] = !{output}[0][0];\n}}\n")
    cpp[2].write_text(cpp[2].read_text().replace(") {\n", ") {\n    this is not C++;\n", 1))
    cpp[4].write_text(cpp[4].read_text().replace(") {\n", ") {\n    __builtin_trap();\n", 1))
    schedule = written[0].out / "rtl" / "schedule.json"
    data = json.loads(schedule.read_text())
    data["latency_cycles"] += 1
    schedule.write_text(json.dumps(data))
    sv = written[3].out / "rtl" / f"{written[3].project.graph.name}.sv"
    text = sv.read_text()
    last = text.rindex("    assign ")
    eq, semi = text.index(" = ", last), text.index(";", last)
    sv.write_text(text[:eq] + " = ~(" + text[eq + 3:semi] + ")" + text[semi:])
    outcomes = run_backends(written, tmp_path / "batch")
    got = [(o.check, o.message.splitlines()[0]) for o in outcomes]
    assert got[0][0] == "sim" and "latency" in got[0][1], got
    assert got[1][0] == "csim" and re.match(r"\d+ mismatches: mismatch: vector 0 output", got[1][1]), got
    assert got[2][0] == "csim" and "g++ failed" in got[2][1], got
    assert got[3][0] == "sim" and "mismatch: vector 0 output" in got[3][1], got
    assert got[4][0] == "csim" and "did not finish" in got[4][1], got
    assert "csim" in outcomes[0].levels and "csim" in outcomes[3].levels


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case(path, tmp_path, request):
    record = json.loads(path.read_text())
    if record.get("known_defect"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=record["known_defect"]))
    outcome = run_case(record["case"], tmp_path, tuple(record["levels"]))
    assert outcome.status != "fail", f"{outcome.check}: {outcome.message}"


def test_generation_is_deterministic():
    assert random_case(5) == random_case(5)


def test_stream_cases_fold_dense_and_conv_layers_only():
    """A stream case keeps random_case's model, plan and inputs and gives each dense or conv
    layer a random reuse factor (folded above 1); cutting layers (shrinking) drops the reuse
    factors of layers gone, which a layer configuration may not name, and the shrinker tries
    each layer unfolded."""
    cases = [streamed(random_case(seed)) for seed in range(40)]
    assert all(c["arch"] == "stream" and {k: v for k, v in c.items() if k not in ("arch", "reuse")} ==
               random_case(c["seed"]) for c in cases)
    folded = [(c, name) for c in cases for name in c["reuse"]]
    assert len(folded) >= 10 and all(c["layers"][int(name[1:])]["op"] in ("dense", "conv") and c["reuse"][name] > 1
                                     for c, name in folded)
    case, name = folded[0]
    assert build_options(case)["layers"][name] == {"reuse_factor": case["reuse"][name]}
    cut = normalize({**case, "layers": case["layers"][:int(name[1:])]})
    assert name not in cut["reuse"] and build_options(random_case(0)) == {}
    assert any(c["reuse"] == {k: r for k, r in case["reuse"].items() if k != name} for c in _candidates(case))


def test_stream_case_through_csim_and_sim(tmp_path):
    """One stream case with a folded conv (reuse factor 3) and a folded dense layer (5) after a
    global max and average pool: bit-exact in g++ csim of the io_stream project and in Verilator
    sim of the stream top (every beat, the latency and II schedule.json predicts)."""
    case = streamed(random_case(18, extras=False))
    assert case["reuse"] == {"l2": 3, "l5": 5}
    outcome = run_case(case, tmp_path, ("reference", "csim", "sim"))
    assert outcome.status == "pass" and {"csim", "sim"} <= set(outcome.levels), outcome


def test_stream_branch_runs_csim_and_sim(tmp_path):
    """A branch (a tensor read by two layers) streams in both backends: its io_stream HLS
    project checked by csim, its RTL (a fork with skip FIFOs, a join) by Verilator."""
    case = streamed(random_case(4, extras=False))
    outcome = run_case(case, tmp_path, ("reference", "csim", "sim"))
    assert outcome.status == "pass" and {"csim", "sim"} <= set(outcome.levels), outcome
