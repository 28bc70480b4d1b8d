"""`finegrain report`'s text fits the terminal (80 columns off a terminal, $COLUMNS when set):
no line longer, no cell cut mid-word, every layer's full information present (read back
column by column), abbreviations in a legend; with 200 columns it uses the room.  Mixed
per-element types read as their ranges (`mixed fixed<6,0..2,RND_CONV,SAT> (3 types)`), not as
digests, in report.json, the text and report.html (with each type's count)."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.fixed import Formats, FixedType, Overflow, Rounding
from compiler.report_text import LEGEND_MIXED, LEGEND_WEIGHTS, format_report
from compiler.text_table import format_table, wrap_cell
from compiler.type_names import readable_type, type_counts

ROOT = Path(__file__).resolve().parents[1]
MARKS = ",+/|;"


def _compile(tmp_path_factory, example: str) -> tuple[Path, list[str]]:
    """The example compiled, and what `finegrain report` then printed off a terminal with no
    $COLUMNS (one run: each re-estimates, seconds a time)."""
    out = tmp_path_factory.mktemp(example) / "out"
    folder = ROOT / "examples" / example
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(folder / "plan.json"), "-o", str(out),
                 "--backend", "hls,rtl"]) == 0
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.delenv("COLUMNS", raising=False)
        assert main(["report", str(out)]) == 0
    return out, printed.getvalue().splitlines()[:-1]  # the last: "wrote .../report.html"


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    return _compile(tmp_path_factory, "jet_tagger")


@pytest.fixture(scope="module")
def per_weight(tmp_path_factory):
    return _compile(tmp_path_factory, "per_weight_bits")


def _formatted(out: Path, columns: int) -> list[str]:
    """The text for ``columns``, from report.json as `finegrain report` left it."""
    return format_report(json.loads((out / "report.json").read_text()), width=columns).splitlines()


def _expected_rows(report: dict) -> list[list[str]]:
    """Each layer's cells, as the table must hold them."""
    rows = []
    for layer in report["layers"]:
        acc = next(iter(layer.get("accumulator", {}).values()), None)
        out = next(iter(layer["output"].values()))
        weights = "; ".join(f"{c['nonzero']}/{c['elements']} nz {c['type']}"
                            for c in layer.get("constants", {}).values() if c["role"] == "weight")
        rows.append([layer["name"], "+".join(layer["stages"]), acc["type"] if acc else "-", out["type"], weights])
    return rows


def _same(got: list[list[str]], want: list[list[str]]) -> bool:
    """Equal cells, but for a space after a break mark (a line broken at "types, 363" drops it)."""
    def norm(rows):
        return [[re.sub(r"([,+/|;]) ", r"\1", c) for c in row] for row in rows]

    return norm(got) == norm(want)


def _read_back(lines: list[str]) -> list[list[str]]:
    """The layer table's rows, each cell joined from its wrapped lines (a space between two
    lines unless the first ends at a break mark)."""
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["layer", "ops"])
    starts = [lines[header].index(h) for h in ("layer", "ops", "accumulator", "output", "weights")]
    rows = []
    for line in lines[header + 1:]:
        if line.startswith(("weights:", "mixed T<W,I>", "resources (")):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        assert all(line[a - 1] == " " for a in starts[1:] if len(line) > a), f"text crosses a column: {line!r}"
        if cells[0]:
            rows.append(cells)
            continue
        for k, cell in enumerate(cells):
            if cell:
                joined = rows[-1][k]
                rows[-1][k] = joined + cell if not joined or joined[-1] in MARKS else f"{joined} {cell}"
    return rows


def test_report_at_80_columns(jet):
    jet, lines = jet  # printed by finegrain report, not on a terminal, no COLUMNS: 80
    report = json.loads((jet / "report.json").read_text())
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert _same(_read_back(lines), _expected_rows(report))
    assert any(len(line) > 60 for line in lines)  # the room is used
    text = "\n".join(lines)
    # the legend explains the abbreviations, itself within 80 columns
    assert " ".join(LEGEND_WEIGHTS.split()) in " ".join(text.split()) and "(nz)" in text
    assert " ".join(LEGEND_MIXED.split()) in " ".join(text.split())
    # numbers whole: every layer's LUT and FF estimate, with its thousands separator
    for layer in report["estimate"]["layers"]:
        row = next(line for line in lines if line.startswith(layer["name"] + " "))
        assert f"{layer['lut']:,}" in row.split() and f"{layer['ff']:,}" in row.split()


def test_report_at_200_columns_uses_the_room(jet):
    jet = jet[0]
    lines = _formatted(jet, 200)
    report = json.loads((jet / "report.json").read_text())
    assert all(len(line) <= 200 for line in lines)
    for row in _expected_rows(report):  # one line per layer, every cell whole on it
        line = next(line for line in lines if line.startswith(row[0] + " "))
        assert re.fullmatch(r"\s+".join(re.escape(c) for c in row), line.strip()), line
    assert max(len(line) for line in lines) > 80
    assert _same(_read_back(lines), _expected_rows(report))


def test_report_at_60_columns_still_fits(jet):
    """Too narrow for every type whole: the longest words are cut, but lines still fit and
    each layer's name stays whole in its column."""
    jet = jet[0]
    lines = _formatted(jet, 60)
    assert all(len(line) <= 60 for line in lines), max(lines, key=len)
    names = [row[0] for row in _read_back(lines)]
    assert names == [layer["name"] for layer in json.loads((jet / "report.json").read_text())["layers"]]


def test_cells_wrap_between_words_and_marks():
    assert wrap_cell("dense+relu+requantize", 12) == ["dense+relu+", "requantize"]
    assert wrap_cell("ufixed<8,4,RND_CONV,SAT>", 14) == ["ufixed<8,4,", "RND_CONV,SAT>"]
    assert wrap_cell("149 (84 adders)", 9, marks=False) == ["149 (84", "adders)"]
    assert wrap_cell("1,398", 3, marks=False) == ["1,3", "98"]  # only a word wider than its column is cut
    rows = [("layer", "LUT"), ("a_rather_long_layer_name", "1,398")]
    assert format_table(rows, 80, right=(1,)) == ["layer                       LUT",
                                                 "a_rather_long_layer_name  1,398"]
    assert format_table(rows, 20, right=(1,)) == ["layer            LUT", "a_rather_long  1,398",
                                                 "_layer_name"]  # a name wider than its room is cut


def test_mixed_types_read_as_their_ranges():
    t = [FixedType(6, 2, True, Rounding.RND_CONV, Overflow.SAT), FixedType(4, 0, True, Rounding.RND_CONV, Overflow.SAT),
         FixedType(8, 1, True, Rounding.RND_CONV, Overflow.SAT)]
    f = Formats.from_types(np.array([t[0], t[1], t[0], None, t[2]], dtype=object))
    assert readable_type(f) == "mixed fixed<4..8,0..2,RND_CONV,SAT> (3 types, 1 pruned)"
    assert type_counts(f) == {"fixed<6,2,RND_CONV,SAT>": 2, "fixed<4,0,RND_CONV,SAT>": 1,
                              "fixed<8,1,RND_CONV,SAT>": 1, "pruned": 1}
    assert type_counts(f, limit=2) == {"fixed<6,2,RND_CONV,SAT>": 2, "fixed<4,0,RND_CONV,SAT>": 1,
                                       "2 other types": 2}
    both = Formats.from_types(np.array([FixedType(4, 1), FixedType(5, 2, signed=False, rounding=Rounding.RND)],
                                       dtype=object))
    assert readable_type(both) == "mixed fixed|ufixed<4..5,1..2, 2 modes> (2 types)"
    assert readable_type(Formats.uniform((3,), t[0])) == "fixed<6,2,RND_CONV,SAT>"
    assert readable_type(Formats.uniform((3,), t[0]).prune(np.ones(3, dtype=bool))) == "pruned"


def test_per_element_plan_report_names_types_readably(per_weight):
    per_weight, lines = per_weight
    report = json.loads((per_weight / "report.json").read_text())
    entries = [e for layer in report["layers"] for group in ("accumulator", "output", "constants")
               for e in layer.get(group, {}).values()]
    mixed = [e for e in entries if e["type"].startswith("mixed ")]
    assert len(mixed) >= 5 and not any("#" in e["type"] for e in entries)
    for e in mixed:
        m = re.fullmatch(r"mixed (?:fixed|ufixed|fixed\|ufixed)<(\d+)(?:\.\.(\d+))?,(-?\d+)(?:\.\.(-?\d+))?"
                         r"(?:,RND_CONV,SAT)?> \((\d+) types(?:, (\d+) pruned)?\)", e["type"])
        assert m, e["type"]
        assert (int(m[1]), int(m[2] or m[1])) == (e["width_min"], e["width_max"])
        assert int(m[6] or 0) == e["pruned"]
        assert sum(e["type_counts"].values()) == e["elements"]
    assert all(len(line) <= 80 for line in lines) and not any("#" in line for line in lines)
    assert _same(_read_back(lines), _expected_rows(report))
    page = (per_weight / "report.html").read_text()
    weight = report["layers"][0]["constants"]["fc1.weight"]
    assert f"<details class=\"types\"><summary>{weight['type']}</summary>" in page.replace("&lt;", "<") \
        .replace("&gt;", ">").replace("&#x27;", "'")
    top, count = next(iter(weight["type_counts"].items()))
    assert f"<li><code>{top}</code>: {count:,}</li>" in page.replace("&lt;", "<").replace("&gt;", ">")


def test_format_report_default_width_follows_columns(jet, monkeypatch):
    report = json.loads((jet[0] / "report.json").read_text())
    monkeypatch.setenv("COLUMNS", "100")
    assert max(len(line) for line in format_report(report).splitlines()) <= 100
    assert format_report(report) == format_report(report, width=100)
