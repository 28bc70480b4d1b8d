"""Shared pytest set-up: the golden-file option, the hypothesis profile and the one Verilator
build cache the simulating test modules share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")

RTL_BUILDS = Path(__file__).resolve().parents[1] / "build" / "rtl_sim"


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite tests/goldens/* from the current output instead of comparing")


@pytest.fixture(scope="module")
def shared_rtl_builds():
    """FINEGRAIN_RTL_BUILD_DIR for a module's tests: one Verilator build cache for every output
    folder (sim/runner.py keys a build by its sources, so equal designs build once, across
    tests and both xdist workers), build/rtl_sim unless the variable is already set.  A module
    asks for it with ``pytestmark = pytest.mark.usefixtures("shared_rtl_builds")``."""
    folder = os.environ.get("FINEGRAIN_RTL_BUILD_DIR") or str(RTL_BUILDS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FINEGRAIN_RTL_BUILD_DIR", folder)
        yield Path(folder)
