"""Where the distribution's data folders are: the HLS and RTL templates (templates/hls,
templates/rtl) and the SystemVerilog library (rtl/).

In a checkout and in an editable install they are the repository's own top-level folders, beside
compiler/.  A wheel (``pip install .``, ``pip wheel .``) carries them inside the package, under
``finegrain/_data/`` (setup.cfg's ``package_dir`` and ``package_data``), since a wheel installs
only packages.  tests/test_wheel.py builds and installs a wheel and compiles from it."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_folder(*parts: str) -> Path:
    """The folder ``parts`` (e.g. ``"templates", "hls"``) of an installed wheel or of the checkout."""
    installed = _PACKAGE.joinpath("_data", *parts)
    return installed if installed.is_dir() else _PACKAGE.parent.joinpath(*parts)
