"""Each `finegrain` command imports only what it needs (issue 17, item 5).

Every command runs in a fresh interpreter through a small wrapper that calls
`compiler.cli.main` and then writes the names in ``sys.modules`` to a file, so a test sees
exactly what the command loaded: ``--help`` loads no numpy, ``emulate`` neither the frontend
(onnx) nor the backends (jinja2) nor any of the other heavy libraries, ``compile`` onnx and
jinja2 but no plotting or training library.  No timings are asserted here (bench/startup.py
measures them); the commands' results are checked, so a test cannot pass on a command that
failed early.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"

# Runs `finegrain ARGS...` in this interpreter, then records every imported module's name and
# OpenBLAS's thread count (threadpoolctl, from scikit-learn's dependencies in the dev extra).
WRAPPER = """
import json, sys
modules_file, argv = sys.argv[1], sys.argv[2:]
from compiler.cli import main
try:
    code = main(argv)
except SystemExit as exit:  # argparse's --help
    code = exit.code
modules = sorted(sys.modules)
import os, threadpoolctl  # after the list: what the command loaded, then how OpenBLAS runs
blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["internal_api"] == "openblas"]
with open(modules_file, "w") as f:
    json.dump({"code": code, "modules": modules, "blas_threads": blas,
               "blas_env": os.environ.get("OPENBLAS_NUM_THREADS")}, f)
"""

# Libraries no command but the ones that need them may load (top-level package names).
HEAVY = ("onnx", "onnxruntime", "ml_dtypes", "google", "qonnx", "jinja2", "matplotlib", "torch", "scipy",
         "highspy", "tqdm", "ray", "sklearn", "hls4ml", "cocotb")


def run_command(tmp_path: Path, *argv: str, blas_env: str | None = None) -> tuple[int, set[str], dict]:
    """`finegrain ARGV` in a new interpreter (OPENBLAS_NUM_THREADS=``blas_env``, or unset):
    (exit code, modules it imported, the rest of the record and the process's output)."""
    modules_file = tmp_path / f"modules_{len(list(tmp_path.glob('modules_*')))}.json"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env.update({"PYTHONPATH": str(ROOT)}, **({} if blas_env is None else {"OPENBLAS_NUM_THREADS": blas_env}))
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(modules_file), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert modules_file.is_file(), f"the command did not finish:\n{proc.stdout}\n{proc.stderr}"
    record = json.loads(modules_file.read_text())
    return record["code"], set(record.pop("modules")), {**record, "stdout": proc.stdout, "stderr": proc.stderr}


def loaded(modules: set[str], *packages: str) -> list[str]:
    """Which of ``packages`` (top-level names, or dotted prefixes) the modules include."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The jet tagger compiled by the CLI (HLS backend), and the modules compile loaded."""
    tmp = tmp_path_factory.mktemp("startup")
    out = tmp / "jet"
    code, modules, record = run_command(tmp, "compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"),
                                        "-o", str(out), "--backend", "hls")
    assert code == 0, record["stderr"]
    return tmp, out, modules


def test_help_loads_nothing_heavy(tmp_path):
    for argv in (["--help"], ["compile", "--help"], ["plan", "sweep", "--help"]):
        code, modules, record = run_command(tmp_path, *argv)
        assert code == 0, record["stderr"]
        assert "usage: finegrain" in record["stdout"]
        assert loaded(modules, *HEAVY, "numpy") == [], argv
        # only the command line and what its option lists name (targets, the output folder rules)
        assert loaded(modules, "compiler.project", "compiler.build_config", "compiler.report_json", "compiler.fixed",
                      "compiler.mantissa", "compiler.weight_formats", "compiler.ir", "compiler.frontend",
                      "compiler.backends") == [], argv


def test_compile_loads_onnx_but_no_plotting_or_training(compiled):
    _, out, modules = compiled
    assert (out / "ir.pkl").is_file() and (out / "hls" / "firmware").is_dir()
    assert loaded(modules, "onnx", "jinja2", "compiler.frontend", "compiler.backends.hls") == [
        "onnx", "jinja2", "compiler.frontend", "compiler.backends.hls"]  # the wrapper sees what it loads
    assert loaded(modules, "matplotlib", "torch", "scipy", "tqdm", "ray", "sklearn", "hls4ml") == []
    # numpy.ma (15 to 25 ms) comes with the first np.unique: mantissa.distinct stands in for it
    assert loaded(modules, "numpy.ma") == []
    # an HLS-only compile of a model the parallel architecture takes builds no RTL: its checks and
    # errors only, none of its builders, stream models or budget
    assert loaded(modules, "compiler.backends.rtl.builder", "compiler.backends.rtl.stream",
                  "compiler.backends.rtl.stream_budget", "compiler.backends.rtl.folded",
                  "compiler.backends.rtl.adders", "compiler.estimate") == []


def test_emulate_loads_only_numpy_and_the_emulator(compiled):
    tmp, out, _ = compiled
    x = np.load(JET / "data.npz")["x"][:200]
    np.save(tmp / "x.npy", x)
    code, modules, record = run_command(tmp, "emulate", str(out), "--input", str(tmp / "x.npy"),
                                      "--output", str(tmp / "y.npy"))
    assert code == 0, record["stderr"]
    assert loaded(modules, *HEAVY, "numpy.ma") == []
    # unpickling ir.pkl (its BuildConfig lives in compiler.build_config) pulls in no frontend, pass
    # pipeline or backend
    assert loaded(modules, "compiler.frontend", "compiler.backends", "compiler.passes.pipeline",
                  "compiler.estimate", "compiler.verify") == []
    assert "numpy" in modules and "compiler.emulate" in modules

    from compiler.project import load_project

    expected = load_project(out).emulate(x)
    assert np.array_equal(np.load(tmp / "y.npy"), expected)


def test_report_loads_no_frontend_or_training(compiled):
    tmp, out, _ = compiled
    code, modules, record = run_command(tmp, "report", str(out))
    assert code == 0, record["stderr"]
    assert "LUT" in record["stdout"] and (out / "report.html").is_file()
    assert loaded(modules, "onnx", "ml_dtypes", "compiler.frontend", "torch", "scipy", "tqdm", "ray") == []


def test_import_compiler_is_lazy_and_complete(tmp_path):
    """`import compiler` loads no numpy; every public name still resolves, and to its module's object."""
    script = (
        "import sys, json, compiler\n"
        "light = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'onnx', 'jinja2'))\n"
        "from compiler import *\n"
        "import compiler.project, compiler.fixed, compiler.plan, compiler.errors\n"
        "same = [compiler.compile_model is compiler.project.compile_model, Formats is compiler.fixed.Formats,\n"
        "        load_plan is compiler.plan.load_plan, UserError is compiler.errors.UserError]\n"
        "print(json.dumps({'light': light, 'all': sorted(compiler.__all__), 'dir': 'Project' in dir(compiler),\n"
        "                  'same': same, 'version': __version__}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert result["light"] == []
    assert result["same"] == [True] * 4 and result["dir"] and result["version"] == "0.1.0"
    assert "compile_model" in result["all"]

    import compiler

    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        compiler.not_a_name  # noqa: B018


def test_openblas_starts_on_one_thread_unless_the_user_says(compiled):
    """Its thread pool costs every command ~50 ms; the variable is not left for child processes."""
    tmp, out, _ = compiled
    np.save(tmp / "x_blas.npy", np.load(JET / "data.npz")["x"][:10])
    argv = ("emulate", str(out), "--input", str(tmp / "x_blas.npy"), "--output", str(tmp / "y_blas.npy"))
    code, _, record = run_command(tmp, *argv)
    assert code == 0 and record["blas_threads"] == [1] and record["blas_env"] is None
    code, _, record = run_command(tmp, *argv, blas_env="2")
    assert code == 0 and record["blas_threads"] == [2] and record["blas_env"] == "2"
