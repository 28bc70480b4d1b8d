"""The distribution as a user installs it: a wheel built from this checkout (``pip wheel .``),
installed into a fresh folder, compiles a model to an HLS and an RTL project and runs csim and
the RTL simulation from there, with nothing of the checkout on the path.

A wheel installs packages only, so the templates and the SystemVerilog library (top-level
folders here) travel inside it under finegrain/_data/ (setup.cfg, compiler/resources.py), and
``compiler`` is a one-file shim (compiler/_compat) rather than a second copy of every module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "per_weight_bits"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, install folder): the wheel built without build isolation (its build needs only the
    setuptools already here) and installed without dependencies (they are here too).  It is
    built from a copy of the checkout's tracked files as they are in the work tree, as a clean
    clone would build it: setuptools reuses build/lib, and a checkout's stale one (from before
    the package mapping) would put old modules in the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():  # a file deleted in the work tree is not built
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")],
                   check=True, timeout=600, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("finegrain-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True, timeout=600)
    return wheel, tmp / "site"


def _run(site: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command in a fresh interpreter that sees the installed wheel ahead of anything else
    (the checkout's editable install only answers what the path does not)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_wheel_holds_each_module_once_and_the_data_folders(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "compiler", "templates", "rtl", "sim"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for path in tracked:
        top, rest = path.split("/", 1)
        if top == "compiler":
            expected = "compiler/__init__.py" if rest == "_compat/__init__.py" else f"finegrain/{rest}"
        elif top == "sim":
            expected = f"finegrain/_sim/{rest}"
        else:
            expected = f"finegrain/_data/{path}"
        assert expected in names, f"{path} is not in the wheel as {expected}"
    assert [n for n in names if n.startswith("compiler/")] == ["compiler/__init__.py"]
    assert not any(n.startswith("sim/") for n in names)  # the harness is finegrain._sim
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)


def test_installed_wheel_compiles_and_runs_csim(installed, tmp_path):
    _, site = installed
    printed = _run(site, [sys.executable, "-c",
                          "import compiler, finegrain, compiler.ir, finegrain.ir\n"
                          "from finegrain.backends import hls, rtl\n"
                          "print(compiler is finegrain and compiler.ir is finegrain.ir, finegrain.__file__)\n"
                          "print(hls.TEMPLATES.is_dir(), rtl.TEMPLATES.is_dir(), rtl.LIBRARY.is_dir())\n"
                          "print(hls.TEMPLATES, rtl.LIBRARY)"], tmp_path).stdout.split("\n")
    assert printed[0] == f"True {site / 'finegrain' / '__init__.py'}"
    assert printed[1] == "True True True"
    assert all(p.startswith(str(site / "finegrain" / "_data")) for p in printed[2].split())
    out = tmp_path / "out"
    _run(site, [str(site / "bin" / "finegrain"), "compile", str(EXAMPLE / "model.onnx"), "--plan",
                str(EXAMPLE / "plan.json"), "-o", str(out)], tmp_path)
    model = next((out / "rtl").glob("*.sv")).stem
    sources = _run(site, [sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                          "from finegrain.backends.rtl import rtl_sources\n"
                          f"print('\\n'.join(map(str, rtl_sources(Path({str(out / 'rtl')!r}), {model!r}))))"],
                   tmp_path).stdout.split()
    library = [s for s in sources if "/_data/rtl/" in s]
    assert library and all(Path(s).is_file() for s in sources), sources
    csim = _run(site, [sys.executable, "-m", "finegrain.cli", "csim", str(out), "--vectors", "20"], tmp_path)
    assert "bit-exact" in csim.stdout, csim.stdout
    # RTL simulation: the runner and the cocotb testbench come from finegrain._sim in the wheel
    sim = _run(site, [sys.executable, "-m", "finegrain.cli", "sim", str(out), "--vectors", "20"], tmp_path)
    assert "bit-exact" in sim.stdout, sim.stdout
    assert (out / "rtl" / "sim" / "results.json").is_file()
