"""The emitted IR text, compared whole against goldens in tests/goldens/.

Regenerate on purpose with `pytest tests/test_goldens.py --update-goldens` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import compiler
from compiler.ir import dump

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = Path(__file__).resolve().parent / "goldens"


@pytest.mark.parametrize("example", ["jet_tagger", "small_cnn"])
def test_ir_text_matches_golden(example, request, tmp_path):
    folder = ROOT / "examples" / example
    project = compiler.compile_model(folder / "model.onnx", folder / "plan.json", output_dir=tmp_path / "out")
    text = dump(project.graph)
    assert (tmp_path / "out" / "ir.txt").read_text() == text
    golden = GOLDENS / f"{example}.ir.txt"
    if request.config.getoption("--update-goldens"):
        golden.write_text(text)
    assert golden.is_file(), f"no golden {golden}; run pytest with --update-goldens"
    assert text == golden.read_text(), f"{example}: IR text changed; if intended, run --update-goldens and review"
