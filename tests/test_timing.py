"""Pipelining by timing (issue 15): registers where the family's delay model (compiler/timing.py)
says a stage would exceed --clock-ns.

* Every example at three clocks (4, 5 and 10 ns on the default UltraScale+ part): simulated
  in Verilator against the emulator, bit-exact, with the latency schedule.json predicts, and
  fewer cycles at each slower clock (the 5 ns builds are simulated in tests/test_rtl_examples.py
  and tests/test_rtl.py; here their predicted latency is compared).
* The per-weight-bits example on the ECP5-85F (ulx3s), where a requantize does not fit one
  5 ns stage and is split into its rounding and its saturation.
* The schedule itself: operands never come from a later cycle, every stage that can fit does,
  and the reported critical path is the worst stage's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compiler.adder_graph import build, solve
from compiler.backends.rtl.adders import _time_schedule
from compiler.cli import main
from compiler.timing import MODELS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CLOCKS = (4.0, 5.0, 10.0)
SIMULATED_ELSEWHERE = 5.0  # tests/test_rtl_examples.py and tests/test_rtl.py simulate the default clock
# the small CNN's Verilator build takes about a minute: it is simulated at the fastest clock (the most
# stages); at 10 ns its layers merge stages as the dense examples' do, which are simulated there
SIMULATED_CLOCKS = {"small_cnn/model.onnx": (4.0,)}


def _examples() -> dict[str, tuple[Path, Path]]:
    found = {}
    for model in sorted(EXAMPLES.glob("*/*.onnx")):
        plan = model.with_name("plan.json" if model.stem == "model" else f"{model.stem}_plan.json")
        if plan.is_file():
            found[f"{model.parent.name}/{model.name}"] = (model, plan)
    return found


def _compile(model: Path, plan: Path, out: Path, *options: str) -> dict:
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl", *options]) == 0
    return json.loads((out / "rtl" / "schedule.json").read_text())


def _sim(out: Path, schedule: dict) -> None:
    assert main(["sim", str(out), "--vectors", "200"]) == 0
    report = json.loads((out / "report.json").read_text())["sim"]
    assert report == {**report, "mismatches": 0, "latency_cycles": schedule["latency_cycles"]}


@pytest.mark.parametrize("example", sorted(_examples()))
@pytest.mark.usefixtures("shared_rtl_builds")
def test_example_at_three_clocks(example, tmp_path):
    model, plan = _examples()[example]
    latencies = []
    for clock in CLOCKS:
        out = tmp_path / f"clock{clock}"
        schedule = _compile(model, plan, out, "--clock-ns", str(clock))
        timing = schedule["timing"]
        assert timing["clock_ns"] == clock and timing["family"] == "xcup"
        assert timing["met"] and timing["critical_ns"] <= clock
        assert timing["critical_ns"] == max(layer["critical_ns"] for layer in schedule["layers"])
        if clock != SIMULATED_ELSEWHERE and clock in SIMULATED_CLOCKS.get(example, CLOCKS):
            _sim(out, schedule)
        latencies.append(schedule["latency_cycles"])
    assert latencies == sorted(latencies, reverse=True) and len(set(latencies)) == len(latencies), latencies


@pytest.mark.usefixtures("shared_rtl_builds")
def test_ecp5_requantize_split_bit_exact(tmp_path):
    """On the ECP5-85F one adder level takes ~2 ns and a rounding, saturating requantize ~6.5 ns:
    at 6.4 ns every requantize is split into its rounding and its saturation (two fg_requantize
    with a register between them); at 20 ns a layer is one or two stages."""
    model, plan = _examples()["per_weight_bits/model.onnx"]
    latencies = []
    for clock in (6.4, 20.0):
        out = tmp_path / f"clock{clock}"
        schedule = _compile(model, plan, out, "--board", "ulx3s", "--clock-ns", str(clock))
        assert schedule["timing"]["family"] == "ecp5" and schedule["timing"]["met"]
        sv = next((out / "rtl").glob("*.sv")).read_text()
        assert ("_round_q <=" in sv) == (clock == 6.4)
        assert "fg_add3" not in sv
        _sim(out, schedule)
        latencies.append(schedule["latency_cycles"])
    assert latencies[0] > 2 * latencies[1]


def test_a_clock_no_requantize_meets_still_splits_them(tmp_path):
    """At 6.0 ns on the ECP5-85F per-weight bits' RND_CONV requantizes meet the clock neither whole
    nor split (met: false); split, the worst stage is the one at 6.2 ns, where they meet, and not
    the whole requantize's (7.6 ns)."""
    model, plan = _examples()["per_weight_bits/model.onnx"]
    near = _compile(model, plan, tmp_path / "near", "--board", "ulx3s", "--clock-ns", "6.0")["timing"]
    met = _compile(model, plan, tmp_path / "met", "--board", "ulx3s", "--clock-ns", "6.2")["timing"]
    assert met["met"] and not near["met"]
    assert near["critical_ns"] == met["critical_ns"] <= 6.2
    assert "_round_q <=" in next((tmp_path / "near" / "rtl").glob("*.sv")).read_text()


def _graph():
    rows = [[(0, 3, 0), (1, -5, 0), (2, 7, 0), (3, 11, 0)], [(0, 13, 0), (2, -9, 0), (3, 1, 0)],
            [(1, 21, 0), (2, 19, 0), (3, -3, 0), (0, 27, 0)]]
    return build(solve(rows, 4, [0, 5, 0]), [(-128, 127)] * 4)


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("clock", [0.5, 2.0, 5.0, 20.0])
def test_time_schedule(family, clock):
    """Operands are never computed in a later cycle than their reader; an adder in the same
    cycle as an operand starts after it; every adder's stage fits the clock unless one adder
    alone does not; and a slower clock never takes more cycles."""
    delay = MODELS[family]
    graph = _graph()
    schedule = _time_schedule(graph, [0.0] * graph.n_inputs, delay, clock)
    for k, node in enumerate(graph.nodes):
        if not node.is_adder:
            continue
        cycle, t = schedule[k]
        for src, _, _ in node.operands:
            assert schedule[src][0] <= cycle
            if schedule[src][0] == cycle:
                assert t >= schedule[src][1] + delay.adder(node.terms) - 1e-9
        alone = delay.adder(node.terms)
        assert delay.fits(t, node.width, clock) or abs(t - alone) < 1e-9
    slower = _time_schedule(graph, [0.0] * graph.n_inputs, delay, 2 * clock)
    assert max(c for c, _ in slower) <= max(c for c, _ in schedule)
