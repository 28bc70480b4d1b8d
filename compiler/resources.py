"""Where the distribution's data folders are: the HLS and RTL templates (templates/hls,
templates/rtl) and the SystemVerilog library (rtl/); and the simulation harness (sim/: the
cocotb testbenches and the build runner).

In a checkout and in an editable install they are the repository's own top-level folders, beside
compiler/.  A wheel (``pip install .``, ``pip wheel .``) carries them inside the package, under
``finegrain/_data/`` and ``finegrain/_sim/`` (setup.cfg's ``package_dir`` and ``package_data``),
since a wheel installs only packages and a top-level package named ``sim`` would claim a common
name for itself.  tests/test_wheel.py builds and installs a wheel, compiles and simulates from it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).resolve().parent


def data_folder(*parts: str) -> Path:
    """The folder ``parts`` (e.g. ``"templates", "hls"``) of an installed wheel or of the checkout."""
    installed = _PACKAGE.joinpath("_data", *parts)
    return installed if installed.is_dir() else _PACKAGE.parent.joinpath(*parts)


def sim_package() -> str:
    """The simulation harness's package name: ``finegrain._sim`` in a wheel, else the checkout's
    top-level ``sim`` (the checkout's root then goes on ``sys.path``; the simulator's own
    interpreter gets it on its path from the caller, see compiler/verify/rtlsim.py)."""
    if (_PACKAGE / "_sim").is_dir():
        return "finegrain._sim"
    if str(_PACKAGE.parent) not in sys.path:
        sys.path.insert(0, str(_PACKAGE.parent))
    return "sim"


def sim_module(name: str) -> ModuleType:
    """A module of the simulation harness (``runner``, ``testbench``)."""
    return importlib.import_module(f"{sim_package()}.{name}")
