"""bench/xilinx_delays_xcup.json (UltraScale+ delays from published Vivado reports, bench/xilinx_delays.py
and bench/xilinx_refit.py): its structure, its summaries recomputed from its own per-path data, and
the numbers bench/RESULTS.md quotes from it.  Reads the JSON only: no network, no snapshot, no
compile (the jet tagger's cycles are checked as quoted, not recompiled)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import statistics
import sys
from pathlib import Path

import pytest

from compiler import timing

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "bench" / "xilinx_delays_xcup.json"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Vivado's UltraScale+ delays against the xcup model"


def load(name: str):
    sys.path.insert(0, str(ROOT))  # bench/xilinx_refit.py imports bench.xilinx_delays
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(RECORDED.read_text())


@pytest.fixture(scope="module")
def section() -> str:
    text = RESULTS.read_text()
    assert SECTION in text
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def test_source_is_recorded(data):
    source = data["source"]
    assert source["repo"] == "gussmith23/lakeroad-evaluation"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert len(source["files"]) == len(data["paths"]) == 70
    assert source["vivado"] == ["Vivado v.2021.2 (lin64) Build 3367213 Tue Oct 19 02:47:39 MDT 2021"]
    assert source["part"] == ["xczu3eg-sbva484"] and source["speed_file"][0].startswith("-1 ")


def test_paths_add_up_to_vivado(data):
    for path in data["paths"]:
        assert path["total_ns"] == pytest.approx(path["data_path_ns"], abs=0.002), path["file"]
        levels = len(path["cells"]) - (path["source_kind"] != "input port")  # the source's clock to out is none
        assert levels == path["logic_levels"], path["file"]


def test_summaries_are_the_paths(data):
    cells, nets = {}, {}
    for path in data["paths"]:
        for cell in path["cells"] + ([path["setup"]] if path["setup"] else []):
            cells.setdefault(cell["key"], []).append(cell["ns"])
        for net in path["nets"]:
            if net["state"] == "routed":
                nets.setdefault(str(net["fanout"]) if net["kind"] == "routed" else net["kind"], []).append(net["ns"])
    for recorded, values in ((data["cells"], cells), (data["nets_by_fanout"], nets)):
        assert set(recorded) == set(values)
        for key, summary in recorded.items():
            assert summary == {"count": len(values[key]), "min": min(values[key]),
                               "median": round(statistics.median(values[key]), 4), "max": max(values[key])}, key
    for key in ("FDRE C->Q", "FDRE setup C->D", "CARRY8 S[0]->CO[7]", "CARRY8 CI->CO[7]", "LUT6 I0->O"):
        assert key in cells


def test_model_comparison_is_recomputed(data):
    delays = load("xilinx_delays")
    model = dataclasses.replace(timing.MODELS["xcup"], **data["xcup_model"]["params"])
    rows = {row["file"]: row for row in data["xcup_model"]["compared"]}
    expected = [p for p in data["paths"] if delays.model_terms(p) is not None]
    assert sorted(rows) == sorted(p["file"] for p in expected) and len(rows) == 22
    for path in expected:
        terms, row = delays.model_terms(path), rows[path["file"]]
        assert {k: row[k] for k in terms} == terms
        assert row["vivado_ns"] == pytest.approx(path["requirement_ns"] - path["slack_ns"], abs=1e-9)
        assert row["xcup_ns"] == pytest.approx(delays.predict(model, terms), abs=0.0006)


def test_refit_is_recomputed(data):
    refit = load("xilinx_refit")
    terms = refit.terms(data)
    assert {k: round(v, 4) if isinstance(v, float) else v for k, v in terms.items()} == data["refit"]["terms"]
    model = refit.proposed(terms)
    assert {f: getattr(model, f) for f in data["refit"]["proposed"]} == data["refit"]["proposed"]
    rows = data["xcup_model"]["compared"]
    assert refit.errors(model, rows) == data["refit"]["paths"]["proposed"]
    safe = refit.bounded(model, rows)
    assert safe.overhead == data["refit"]["bounded_overhead"]
    assert min(refit.errors(safe, rows)["errors"]) >= 0
    fit = refit.path_fit(rows)
    assert fit == data["refit"]["path_fit"]
    steep = refit.with_path_fanout(model, rows)
    assert steep.fanout_per_doubling == round(fit["fanout_per_doubling"], 3)
    assert refit.errors(steep, rows) == data["refit"]["paths"]["path_fanout"]


def test_timing_uses_the_adopted_refit(data):
    """compiler/timing.py's xcup is bench/xilinx_refit.py's adopted model of the recorded data,
    which predicts none of the 22 register-to-register paths shorter than Vivado's."""
    refit = load("xilinx_refit")
    rows = data["xcup_model"]["compared"]
    model = refit.adopted(refit.terms(data), rows)
    fields = data["refit"]["adopted"]
    assert {f: getattr(timing.MODELS["xcup"], f) for f in fields} == {f: getattr(model, f) for f in fields} == fields
    assert timing.MODELS["xcup"].source.startswith("UltraScale+ -1 (xczu3eg)")
    errs = refit.errors(model, rows)
    assert errs == data["refit"]["paths"]["adopted"] and min(errs["errors"]) >= 0
    # the model before it, kept in the JSON as "present", is what bench/RESULTS.md's first comparison used
    assert {f: round(getattr(refit.BEFORE, f), 4) for f in data["refit"]["present"]} == data["refit"]["present"]


def test_results_quote_the_json(data, section):
    """Every summary number of the RESULTS section's tables is the JSON's."""
    refit = data["refit"]
    for field in ("overhead", "net", "level", "level3", "lut", "carry_bit", "fanout_per_doubling"):
        row = f"| {field} | {refit['present'][field]:g} | {refit['proposed'][field]:g} |"
        assert row in section, row
    blocks = ("increment", "select", "second_bound", "compare", "bound")
    row = " | ".join(", ".join(f"{refit[m][f]:.3f}" for f in blocks) for m in ("present", "proposed"))
    assert f"| {', '.join(blocks)} | {row} |" in section, row
    for name in ("present", "proposed", "bounded", "path_fanout"):
        errs = refit["paths"][name]
        assert f"{errs['median']:+g}" in section and f"{errs['rms']:g}" in section
        assert f"{errs['min']:+.3f} .. {errs['max']:+.3f}" in section
    assert f"overhead {refit['bounded_overhead']:g}" in section
    fit = ", ".join(f"{k} {refit['path_fit'][k]:g}" for k in ("overhead", "level", "lut", "carry_bit"))
    assert fit in section.replace("\n", " ") and f"rms {refit['path_fit']['rms']:g} ns" in section.replace("\n", " ")
    for key in ("clock_to_q", "setup_d", "lut", "lut_into_carry", "carry_entry", "carry_through", "carry_exit",
                "carry_net", "into_carry_net", "local_net", "net_fo1"):
        assert f"{refit['terms'][key]:g}" in section, key
    table = section.split("**The jet tagger at 5 ns**", 1)[1]
    labels = {"present": "present xcup", "proposed": "proposed",
              "bounded": f"proposed, overhead {refit['bounded_overhead']:g}",
              "path_fanout": f"proposed, fanout {refit['path_fit']['fanout_per_doubling']:.2f} / doubling"}
    for model, label in labels.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        cells = [c.strip().replace("**", "") for c in row.split("|")[2:4]]
        for cell, variant in zip(cells, ("plan", "rnd")):
            run = refit["jet_tagger_5ns"][model][variant]
            layers = ", ".join(map(str, run["layer_cycles"]))
            assert cell == f"{run['cycles']} ({layers}), {run['critical_ns']:g}", (model, variant, cell)
    assert refit["jet_tagger_5ns"]["proposed"]["rnd"]["cycles"] == 7  # the claim: da4ml's 7 stages matched


def test_adoption_section_quotes_the_json(data):
    """bench/RESULTS.md's section on the adopted model quotes its errors and the jet tagger's
    cycles as the JSON has them."""
    text = RESULTS.read_text()
    heading = "## The xcup delay model adopted from Vivado's reports"
    assert heading in text
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    refit = data["refit"]
    for label, name in (("before (7-series x 0.67, assumed)", "present"), ("adopted", "adopted")):
        errs = refit["paths"][name]
        optimistic = sum(e < 0 for e in errs["errors"])
        spread = f"{errs['min']:+.3f} .. {errs['max']:+.3f}"
        row = f"| {label} | {errs['median']:+g} | {spread} | {errs['rms']:g} | {optimistic} |"
        assert row in section, row
    flat = " ".join(section.split())
    runs = {"4": refit["jet_tagger_adopted"]["4"], "5": refit["jet_tagger_5ns"]["adopted"],
            "10": refit["jet_tagger_adopted"]["10"]}
    for ns, run in runs.items():
        plan, rnd = run["plan"], run["rnd"]
        assert f"{ns} ns: {plan['cycles']} ({', '.join(map(str, plan['layer_cycles']))}), {plan['critical_ns']:g}" \
            in flat.replace("**", ""), ns
        assert f"/ {rnd['cycles']}" in flat
    assert runs["5"]["rnd"]["cycles"] == 7  # the claim: da4ml's fewest 7 stages matched
