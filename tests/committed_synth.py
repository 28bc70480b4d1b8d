"""Syntheses too slow for the suite, committed in tests/synth_cache/ under the content key of
compiler/verify/synth.py's cache (yosys version, top, family, source texts): used only while the
generated RTL is byte-identical; any change to it makes the key miss and yosys runs for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_SYNTH = ROOT / "tests" / "synth_cache"
SYNTH_CACHE = ROOT / "build" / "synth_cache"  # the tests' FINEGRAIN_SYNTH_CACHE


def committed_result(out: Path, request: pytest.FixtureRequest | None = None) -> Path:
    """tests/synth_cache/<key>.json of the RTL in ``out`` (after `finegrain report`), copied into
    SYNTH_CACHE when it exists, so `finegrain report --synth` reads it instead of running yosys.

    With ``request`` the result must be committed: a missing one (the RTL changed since the last
    --update-goldens) fails the test instead of letting yosys run for minutes in every CI run,
    unless the session refreshes the goldens."""
    from compiler.backends.rtl import rtl_sources
    from compiler.verify.synth import _cache_key, find_yosys, yosys_version

    est = json.loads((out / "report.json").read_text())["estimate"]
    key = _cache_key(yosys_version(find_yosys()), est["top"], est["family"], rtl_sources(out / "rtl", est["top"]))
    committed = COMMITTED_SYNTH / f"{key}.json"
    if committed.is_file():
        SYNTH_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(committed, SYNTH_CACHE / committed.name)
    elif request is not None and not request.config.getoption("--update-goldens"):
        pytest.fail(f"the committed synthesis of {est['top']} ({est['family']}) is stale: its RTL changed, so "
                    f"yosys would run in every CI run. Refresh it: pytest '{request.node.nodeid}' --update-goldens, "
                    "and commit tests/synth_cache", pytrace=False)
    return committed
