"""`import finegrain` and `import compiler`: one package, one module object per file
(compiler/_alias.py), checked in fresh interpreters.

The installed distribution maps ``finegrain`` onto compiler/ and ``compiler`` onto a shim that
imports it (setup.cfg's ``package_dir``; tests/test_wheel.py installs a wheel); here a temporary
folder with a ``finegrain`` link to compiler/ puts both names of this checkout on the path, ahead
of any installed copy."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    names = tmp_path_factory.mktemp("names")
    (names / "finegrain").symlink_to(ROOT / "compiler", target_is_directory=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(names), str(ROOT)])}


def _python(env, code: str, *args: str, cwd=None) -> str:
    proc = subprocess.run([sys.executable, *(["-c", code] if code else []), *args], env=env, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SAME = """
import sys
import {first}, {first}.ir
import {second}.ir, {second}.project, {second}.fixed
import compiler, finegrain
assert finegrain is compiler
assert finegrain.ir is compiler.ir and finegrain.ir.Graph is compiler.ir.Graph
assert sys.modules["{second}.project"] is sys.modules["{first}.project"]
# one module per file, each keeping the name and spec it was imported under first
assert compiler.ir.__name__ == compiler.ir.__spec__.name == "{first}.ir", compiler.ir.__spec__
assert compiler.__spec__.name == "{first}" and compiler.__spec__.submodule_search_locations
assert isinstance({second}.fixed.FixedType(8, 3, True), {first}.fixed.FixedType)
assert finegrain.compile_model is compiler.project.compile_model
assert [f for f in sys.modules if f.endswith(".ir") and sys.modules[f] is not compiler.ir] == []
print(compiler.ir.__file__)
"""


@pytest.mark.parametrize("first,second", [("compiler", "finegrain"), ("finegrain", "compiler")])
def test_both_names_are_the_same_modules(env, first, second):
    out = _python(env, SAME.format(first=first, second=second))
    assert Path(out.strip()).resolve() == ROOT / "compiler" / "ir.py"


def test_missing_module_names_itself(env):
    proc = subprocess.run([sys.executable, "-c", "import compiler; import finegrain.no_such_module"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "No module named 'finegrain.no_such_module'" in proc.stderr


@pytest.mark.parametrize("name", ["compiler", "finegrain"])
def test_python_m_cli(env, name):
    out = _python(env, "", "-m", f"{name}.cli", "--help")
    assert out.startswith("usage: finegrain") and "compile" in out


WRITE = """
import pickle, sys
import {name}.fixed, {name}.build_config
obj = ({name}.fixed.FixedType(9, 2, True), {name}.build_config.BuildConfig(model="m.onnx", plan="p.json"))
sys.stdout.buffer.write(pickle.dumps(obj))
"""
READ = """
import pickle, sys
import {name}
from {name}.fixed import FixedType
from {name}.build_config import BuildConfig
t, config = pickle.loads(sys.stdin.buffer.read())
assert type(t) is FixedType and type(config) is BuildConfig, (type(t), type(config))
assert (t.width, t.int_bits, config.plan) == (9, 2, "p.json")
print(type(t).__module__)
"""


@pytest.mark.parametrize("writer,reader", [("compiler", "finegrain"), ("finegrain", "compiler")])
def test_pickles_load_under_the_other_name(env, writer, reader):
    """An ir.pkl of an older finegrain holds `compiler.*` classes; a new one `finegrain.*`."""
    data = subprocess.run([sys.executable, "-c", WRITE.format(name=writer)], env=env, capture_output=True,
                          timeout=120, check=True).stdout
    assert f"{writer}.fixed".encode() in data
    proc = subprocess.run([sys.executable, "-c", READ.format(name=reader)], env=env, input=data,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == f"{reader}.fixed"


def test_ir_pkl_naming_build_config_in_project_loads():
    """An ir.pkl written before BuildConfig moved to compiler/build_config.py names it
    ``compiler.project.BuildConfig``: compiler.project imports it, so such a folder still loads."""
    import pickle

    from compiler.build_config import BuildConfig

    config = BuildConfig(model="m.onnx", plan="p.json", clock_ns=4.0)
    old = pickle.dumps(config, protocol=0).replace(b"compiler.build_config\n", b"compiler.project\n")
    assert b"compiler.project\n" in old and b"build_config" not in old
    assert pickle.loads(old) == config


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_setup_cfg_lists_every_package():
    """Every folder of compiler/ as a ``finegrain`` package, ``compiler`` as the shim, the data
    folders and sim/ (as ``finegrain._sim``, not a top-level ``sim``)."""
    cfg = _setup_cfg()
    listed = set(cfg["options"]["packages"].split())
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "compiler").rglob("__init__.py")}
    folders.discard("compiler._compat")
    data = {"finegrain._data.templates", "finegrain._data.rtl"}
    assert listed == {*(f.replace("compiler", "finegrain", 1) for f in folders), "compiler", *data, "finegrain._sim"}
    mapping = dict(line.split(" = ") for line in cfg["options"]["package_dir"].split("\n") if line)
    assert mapping == {"finegrain": "compiler", "compiler": "compiler/_compat",
                       "finegrain._data.templates": "templates", "finegrain._data.rtl": "rtl", "finegrain._sim": "sim"}


def test_console_script_entry_point(env):
    """setup.cfg's `finegrain` script imports `finegrain.cli:main`; the installed script (when this
    setup.cfg was installed) runs."""
    entry = _setup_cfg()["options.entry_points"]["console_scripts"].strip()
    name, target = (s.strip() for s in entry.split("="))
    module, func = target.split(":")
    assert (name, module) == ("finegrain", "finegrain.cli")
    out = _python(env, f"import sys; from {module} import {func}; sys.exit({func}(['--help']))")
    assert out.startswith("usage: finegrain")
    script = Path(sys.executable).parent / "finegrain"
    if not script.is_file() or "finegrain.cli" not in script.read_text():
        pytest.skip(f"{script} is not installed from this setup.cfg (pip install -e . installs it)")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: finegrain"), proc.stderr


@pytest.mark.parametrize("writer,reader", [("compiler", "finegrain"), ("finegrain", "compiler")])
def test_an_output_folder_loads_under_the_other_name(env, tmp_path, writer, reader):
    """ir.pkl, written by compile under one name, loads (stamp, isinstance checks) under the other."""
    out = tmp_path / "out"
    _python(env, f"import {writer}; {writer}.compile_model('examples/jet_tagger/model.onnx', "
                 f"'examples/jet_tagger/plan.json', output_dir={str(out)!r}, backends=())")
    assert f"{writer}.ir".encode() in (out / "ir.pkl").read_bytes()
    printed = _python(env, f"import numpy as np, {reader}, {reader}.ir\n"
                           f"p = {reader}.load_project({str(out)!r})\n"
                           f"assert type(p.graph) is {reader}.ir.Graph\n"
                           f"print(p.emulate(np.zeros((1, 16))).shape, type(p.graph).__module__)")
    assert printed.split() == ["(1,", "5)", f"{reader}.ir"]
