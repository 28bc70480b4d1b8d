"""OUT/report.html: written from report.json and ir.pkl, self-contained, well formed, one
heat map per weight tensor, every layer named; and it loads in headless Chromium when that
is installed."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.fixed import Formats
from compiler.ir import Tensor, TensorKind
from compiler.project import load_project
from compiler.report_json import update_report
from compiler import report_html
from compiler.report_html import render_report_html, width_grid, write_report_html

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def jet(tmp_path_factory) -> Path:
    """The jet tagger compiled for HLS only: no estimate, synthesis or simulation results."""
    out = tmp_path_factory.mktemp("jet") / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out),
                 "--backend", "hls"]) == 0
    return out


@pytest.fixture(scope="module")
def jet_results(jet, tmp_path_factory) -> Path:
    """The same folder with made-up estimate, synthesis and simulation results in report.json."""
    out = tmp_path_factory.mktemp("jet_results") / "out"
    shutil.copytree(jet, out)
    report = json.loads((out / "report.json").read_text())
    layers, start = [], 0
    for i, layer in enumerate(report["layers"]):
        layers.append({"name": layer["name"], "onnx": layer["onnx_nodes"][0], "ops": "+".join(layer["stages"]),
                       "lut": 1000 * (4 - i), "ff": 700 * (4 - i), "dsp": i % 2, "bram": 0.0, "carry": 90 * (4 - i),
                       "start_cycle": start, "latency_cycles": 3 + i})
        start += 3 + i
    update_report(out, "estimate", {
        "part": "xcvu9p-flga2104-2-e", "family": "xcup", "clock_ns": 5.0, "architecture": "rtl: fully parallel, II 1",
        "lut": sum(ly["lut"] for ly in layers), "ff": sum(ly["ff"] for ly in layers), "dsp": 2, "bram": 0.0,
        "carry": 900, "latency_cycles": start, "ii_cycles": 1, "layers": layers, "seconds": 0.01,
        "percent": {"lut": 0.85, "ff": 0.3, "dsp": 0.03, "bram": 0.0}})
    update_report(out, "synth", {"lut": 8000, "ff": 7400, "dsp": 2, "carry": 1000, "bram": 0.0, "seconds": 41.5,
                                 "yosys_version": "Yosys 0.99", "family": "xcup",
                                 "ratio": {"lut": 1.25, "ff": 0.95, "dsp": 1.0},
                                 "layers": [{"name": ly["name"], "lut": ly["lut"] * 0.8, "ff": ly["ff"]}
                                            for ly in layers]})
    update_report(out, "sim", {"vectors": 1000, "mismatches": 0, "latency_cycles": start, "ii_cycles": 1,
                               "build_seconds": 9.0, "run_seconds": 0.5})
    update_report(out, "csim", {"vectors": 1000, "mismatches": 3, "build_seconds": 2.0, "run_seconds": 0.1})
    return out


@pytest.fixture(scope="module")
def plain_page(jet) -> Path:
    return write_report_html(jet)


@pytest.fixture(scope="module")
def results_page(jet_results) -> Path:
    return write_report_html(jet_results)


class _TagBalance(HTMLParser):
    """Records tags that close something other than the innermost open element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.refs = [], [], []

    def handle_starttag(self, tag, attrs):
        self._refs(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._refs(attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'} "
                               f"at line {self.getpos()[0]}")
        else:
            self.stack.pop()

    def _refs(self, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href", "xlink:href", "data", "action", "poster") and v]


def _parse(page: str) -> _TagBalance:
    parser = _TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [], parser.errors[:5]
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def _assert_self_contained(page: str, parser: _TagBalance) -> None:
    external = [r for r in parser.refs if not (r.startswith("#") or r.startswith("data:"))]
    assert external == [], external[:5]
    assert not re.search(r"<(link|script|iframe|object|embed)\b", page)
    assert "@import" not in page
    urls = re.findall(r"url\(\s*['\"]?([^)'\"]*)", page)
    assert all(u.startswith("#") or u.startswith("data:") for u in urls), urls[:5]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|file:|//)""", page)


def _weight_names(report: dict) -> set[str]:
    return {name for layer in report["layers"] for name, c in layer.get("constants", {}).items()
            if c["role"] == "weight"}


def _maps(page: str, role: str) -> list[str]:
    return re.findall(rf'<figure class="heatmap" id="map-\d+" data-tensor="([^"]*)" data-role="{role}">', page)


def test_page_without_results_says_so(jet, plain_page):
    assert plain_page == jet / "report.html"
    page = plain_page.read_text()
    _assert_self_contained(page, _parse(page))
    report = json.loads((jet / "report.json").read_text())
    assert "finegrain report: jet_tagger" in page
    assert 'id="no-estimate"' in page and "backend(s) hls" in page
    assert "No synthesis result" in page and "not run" in page
    for layer in report["layers"]:
        assert f">{layer['name']}<" in page, layer["name"]
    assert set(_maps(page, "weight")) == _weight_names(report) == {f"fc{i}.weight" for i in range(1, 5)}
    assert len(_maps(page, "weight")) == 4
    # the input and the three requantized ReLU outputs (the logits are not requantized)
    assert _maps(page, "activation") == ["x"] + [f"/relu{i}/Relu_output_0" for i in range(1, 4)]
    assert page.count("<svg") == 8


def test_page_with_results(jet_results, results_page):
    page = results_page.read_text()
    parser = _parse(page)
    _assert_self_contained(page, parser)
    report = json.loads((jet_results / "report.json").read_text())
    assert "xcvu9p-flga2104-2-e" in page and "(xcup)" in page and "rtl: fully parallel, II 1" in page
    totals = re.search(r'<table id="totals">.*?</table>', page, re.S).group(0)
    assert "<td>10,000</td><td>8,000</td><td>1.25</td><td>0.85 %</td>" in totals  # LUT
    assert "<td>900</td><td>1,000</td><td>0.90</td>" in totals  # carry: ratio computed here
    assert "Yosys 0.99" in totals
    assert "<td>18</td><td>90</td><td>1</td>" in page  # latency in cycles and ns, II
    assert "3 mismatches</span> over 1,000 vectors" in page  # csim
    assert '<span class="ok">bit-exact</span> over 1,000 vectors' in page  # sim
    assert "differs from the estimate" not in page
    for section in ("resources", "synthesis", "latency", "layers", "bit-widths", "warnings"):
        assert f'<h2 id="{section}">' in page, section
    resources = re.search(r'<table id="layer-resources">.*?</table>', page, re.S).group(0)
    for layer in report["layers"]:
        assert f">{layer['name']}<" in resources
    assert len(_maps(page, "weight")) == 4
    # 4 charts (resources, estimate vs synthesis in total and per layer, latency) and 8 heat maps,
    # with ids unique on the page
    assert page.count("<svg") == 12
    synthesis = page[page.index('<h2 id="synthesis">'):page.index('<h2 id="latency">')]
    assert synthesis.count("<svg") == 2 and "LUT per layer" in synthesis
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_sim_latency_differing_from_the_estimate_is_flagged(jet_results, tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "MAX_MAPS", 0)  # not what this test is about
    out = tmp_path / "out"
    shutil.copytree(jet_results, out)
    sim = json.loads((out / "report.json").read_text())["sim"]
    update_report(out, "sim", {**sim, "latency_cycles": sim["latency_cycles"] + 1})
    assert "differs from the estimate" in write_report_html(out).read_text()


def test_warnings_are_listed_and_escaped(jet):
    project = load_project(jet)
    report = {**json.loads((jet / "report.json").read_text()), "warnings": ["weight <fc1> saturates & wraps"]}
    page = render_report_html(report, project.graph, part="xc7a35t", clock_ns=10.0, backends=("hls",))
    assert "<li>weight &lt;fc1&gt; saturates &amp; wraps</li>" in page
    assert "clock 10.0 ns (100 MHz)" in page
    _parse(page)


def test_pruned_elements_are_drawn_and_labelled(jet):
    """Widths of 0 get their own colour and a 'pruned' entry on the colour bar."""
    project = load_project(jet)
    graph = project.graph
    w = graph.tensor("fc2.weight")
    width = w.formats.width.copy()
    width[:, ::3] = 0
    f = w.formats
    pruned = dataclasses.replace(w, formats=Formats(width, np.where(width > 0, f.int_bits, 0), f.signed,
                                                    f.rounding, f.overflow))
    graph = dataclasses.replace(graph, tensors={**graph.tensors, "fc2.weight": pruned})
    page = render_report_html(json.loads((jet / "report.json").read_text()), graph, part="p", clock_ns=5.0)
    figure = re.search(r'<figure class="heatmap"[^>]*data-tensor="fc2.weight".*?</figure>', page, re.S).group(0)
    assert ">pruned</text>" in figure
    assert f"{int((width == 0).sum()):,} pruned" in figure
    assert page.count(">pruned</text>") == 1


def test_integer_bits_are_drawn_where_they_vary(jet, plain_page):
    """fc1.weight's formats differ per output channel in integer bits, not in width."""
    page = plain_page.read_text()
    figures = {re.search(r'data-tensor="([^"]+)"', f).group(1): f
               for f in re.findall(r'<figure class="heatmap".*?</figure>', page, re.S)}
    assert len(figures) == 8
    assert {name for name, f in figures.items() if ">integer bits</text>" in f} == {"fc1.weight"}
    grid = width_grid(load_project(jet).graph.tensor("fc1.weight"), "weight")
    assert grid.int_bits is not None and grid.int_bits.shape == grid.width.shape == (64, 16)
    assert (np.unique(grid.width) == [6]).all() and len(np.unique(grid.int_bits)) == 3


def test_too_many_maps_are_named_not_drawn(jet, monkeypatch):
    monkeypatch.setattr(report_html, "MAX_MAPS", 3)
    project = load_project(jet)
    page = render_report_html(json.loads((jet / "report.json").read_text()), project.graph, part="p", clock_ns=5.0)
    assert page.count('<figure class="heatmap"') == 3
    assert "Only the first 3 of 8 tensors are drawn" in page and "<code>fc4.weight</code>" in page


def _tensor(shape, width, kind=TensorKind.WEIGHT) -> Tensor:
    width = np.broadcast_to(np.asarray(width, dtype=np.int64), shape).copy()
    zeros = np.zeros(shape, dtype=np.int64)
    return Tensor("t", tuple(shape), kind, formats=Formats(width, zeros, np.ones(shape, dtype=bool), zeros, zeros))


def test_vectors_are_wrapped_into_blocks():
    grid = width_grid(_tensor((64,), 8, TensorKind.ACTIVATION), "activation")
    assert grid.width.shape == (8, 8) and not grid.filler.any()
    grid = width_grid(_tensor((32,), np.arange(1, 33), TensorKind.ACTIVATION), "activation")
    assert grid.width.shape == (4, 8) and grid.width[1, 0] == 9  # element 8 starts row 1
    grid = width_grid(_tensor((5,), 4, TensorKind.ACTIVATION), "activation")
    assert grid.width.shape == (1, 5)  # a divisor close to the square root
    grid = width_grid(_tensor((7,), 4, TensorKind.ACTIVATION), "activation")
    assert grid.width.shape == (3, 3) and grid.filler.ravel().tolist() == [False] * 7 + [True] * 2


def test_block_panel_only_when_there_are_blocks():
    """The resource chart has a DSP/BRAM panel only for designs that use DSPs or block RAM."""
    plain = [{"name": "fc1", "lut": 900, "ff": 120, "dsp": 0, "bram": 0.0}]
    assert len(report_html._resource_chart(plain).axes) == 1
    assert len(report_html._resource_chart([{**plain[0], "dsp": 4}]).axes) == 2
    assert len(report_html._resource_chart([{**plain[0], "bram": 0.5}]).axes) == 2


def test_conv_weights_are_output_channels_by_the_rest():
    grid = width_grid(_tensor((8, 4, 3, 3), 6), "weight")
    assert grid.width.shape == (8, 36) and (grid.row_label, grid.col_label) == ("output channel", "input × kernel")


def test_big_tensors_are_drawn_by_block_maxima():
    width = np.full((1000, 300), 4)
    width[0, 0] = 9
    width[-8:, :] = 0  # the last block of rows pruned entirely
    grid = width_grid(_tensor(width.shape, width), "weight")
    assert grid.width.shape == (250, 150)  # blocks of 4 x 2
    assert grid.width[0, 0] == 9 and grid.width[1, 0] == 4
    assert (grid.width[-2:] == 0).all() and (grid.width[:-2] > 0).all()
    assert "blocks of 4×2 elements" in grid.note


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_page_loads_in_headless_chromium(results_page, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed; `make tools` installs it where apt is available")
    page = results_page
    common = [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
              "--hide-scrollbars", "--window-size=1280,2400"]
    dom = subprocess.run([*common, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "finegrain report: jet_tagger" in dom.stdout
    assert dom.stdout.count("<svg") == page.read_text().count("<svg") == 12
    shot = tmp_path / "page.png"
    run = subprocess.run([*common, f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    inked = (pixels < 0.9).any(axis=2)
    assert inked.mean() > 0.05, "the screenshot is (nearly) blank"
    # the bars are drawn: the LUT colour (#4c72b0) covers a visible area
    lut = np.abs(pixels - np.array([0x4C, 0x72, 0xB0]) / 255).max(axis=2) < 0.03
    assert lut.sum() > 2000
