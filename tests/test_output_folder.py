"""Output folders: nothing the user owns is lost.  Real `finegrain compile` processes of the
small CNN are interrupted (SIGINT, SIGTERM) at several moments and raced against each other;
the folder afterwards holds the previous output or the new one, whole, and no temporary."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.cli import main
from compiler.output_folder import STAMP, locked
from compiler.project import load_project

from badinput import expect_clean_failure, snapshot

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT / "examples" / "small_cnn"
JET = ROOT / "examples" / "jet_tagger"


def _compile_cmd(out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "compiler.cli", "compile", str(CNN / "model.onnx"), "--plan",
            str(CNN / "plan.json"), "-o", str(out), *extra]


def _start(out: Path, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(_compile_cmd(out, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _wait_for_lock(proc: subprocess.Popen, out: Path) -> float:
    """Wait until the compile holds the output folder's lock (its start-up is over: a signal
    before that interrupts Python's imports, long before finegrain touches a file)."""
    lock = out.parent / f".{out.name}.lock"
    while not lock.exists() and proc.poll() is None:
        time.sleep(0.005)
    return time.perf_counter()


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A complete small-CNN output folder, its files, and how long a compile holds its lock
    (compiling, writing the temporary folder, swapping it in)."""
    base = tmp_path_factory.mktemp("previous")
    out = base / "out"
    proc = _start(out)
    locked_at = _wait_for_lock(proc, out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out, snapshot(out), time.perf_counter() - locked_at


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", [0.15, 0.45, 0.7, 0.85, 0.95])
def test_interrupted_compile_leaves_previous_or_new_output(previous, tmp_path, signum, moment):
    """``moment``: when the signal comes, as a fraction of the time a compile holds the lock
    (compiling, writing the temporary folder, swapping it in)."""
    reference, files, seconds = previous
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "hls" / "marker-of-the-previous-output").write_text("old")
    old = snapshot(out)
    proc = _start(out, "--force")
    _wait_for_lock(proc, out)
    time.sleep(seconds * moment)
    proc.send_signal(signum)
    said, err = proc.communicate(timeout=600)
    assert not _leftovers(out), _leftovers(out)
    if proc.returncode in (0, -signum):  # the signal came after the work (or the compile was quicker)
        assert said.startswith("compiled ") and set(snapshot(out)) == set(files), err
        load_project(out)
    else:
        assert proc.returncode == 130, err
        assert err.startswith("error: interrupted") and "Traceback" not in err, err
        now = snapshot(out)
        assert now == old or set(now) == set(files), "neither the previous output nor the new one"


def test_concurrent_compiles_one_wins(tmp_path):
    """Three compiles into one new folder at once: exactly one wins; the others exit 2, naming
    the lock (or, if one started after the winner had finished, the folder it left).  Before
    the lock, all three exited 0, overwriting each other."""
    out = tmp_path / "out"
    procs = [_start(out) for _ in range(3)]
    results = [(p.wait(timeout=600), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        said = " ".join(err.split())
        if code == 2:
            assert ("another finegrain command" in said and ".out.lock" in said) or "not empty" in said, err
    assert not _leftovers(out)
    load_project(out)


def test_second_compile_fails_at_once_naming_the_lock(tmp_path, capsys):
    out = tmp_path / "out"
    with locked(out):
        expect_clean_failure(capsys, ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out],
                             mention=["another finegrain command", ".out.lock"])
        assert not out.exists()
    assert not out.exists() and not _leftovers(out)


def test_killed_compile_is_cleaned_up_by_the_next(tmp_path, capsys):
    """SIGKILL cannot be handled: a compile killed inside the swap leaves the previous output
    aside and the new one unfinished.  The next compile puts the previous one back, removes
    the temporaries and the stale lock file, then does its own work."""
    out = tmp_path / "out"
    argv = ["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out)]
    assert main(argv) == 0
    before = snapshot(out)
    out.rename(tmp_path / ".out.old-x1y2")
    (tmp_path / ".out.new-a1b2" / "hls").mkdir(parents=True)
    (tmp_path / ".out.lock").write_text("")
    expect_clean_failure(capsys, argv, mention=["not empty", "--force"])  # the previous output is back
    assert snapshot(out) == before and not _leftovers(out)
    (tmp_path / ".out.new-c3d4").mkdir()
    assert main(argv + ["--force"]) == 0
    assert not _leftovers(out) and (out / STAMP).is_file()


def test_force_replaces_only_finegrain_output_folders(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out, "--force"]
    assert main([str(a) for a in argv]) == 0
    (out / STAMP).unlink()
    expect_clean_failure(capsys, argv, mention=["no finegrain.json stamp", "--force replaces only"], out=out)


def test_compile_after_sigkill_cleans_up(previous, tmp_path):
    """A real SIGKILL while the temporary folder is being written: the previous output is
    intact, and the next compile removes what the killed one left (temporary, lock file)."""
    reference, files, seconds = previous
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    old = snapshot(out)
    proc = _start(out, "--force")
    _wait_for_lock(proc, out)
    time.sleep(seconds * 0.7)
    proc.kill()
    proc.communicate(timeout=600)
    assert snapshot(out) == old or set(snapshot(out)) == set(files)
    again = _start(out, "--force")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert not _leftovers(out) and set(snapshot(out)) == set(files)


def test_failed_swap_puts_the_previous_output_back(tmp_path, capsys, monkeypatch):
    """The swap's second rename fails (e.g. EBUSY): the previous output is renamed back, the new
    one and the empty aside folder are removed, and the user gets exit 2 naming the folder."""
    import errno

    import compiler.output_folder as output_folder

    out = tmp_path / "out"
    argv = ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out, "--force"]
    assert main([str(a) for a in argv]) == 0
    real_replace = os.replace

    def busy(src, dst):
        if Path(src).name.startswith(".out.new-"):
            raise OSError(errno.EBUSY, "Device or resource busy", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(output_folder.os, "replace", busy)
    expect_clean_failure(capsys, argv, mention=["cannot write output folder", "busy"], out=out)


def test_signal_landing_on_another_thread_waits_for_the_block_to_end():
    """A SIGTERM the kernel hands to a thread that does not block it (as HiGHS's workers) still
    runs Python's handler in the main thread: signals_blocked holds it until the block ends."""
    import threading

    from compiler.output_folder import signals_blocked

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)  # started before the block: SIGTERM unblocked there
    worker.start()
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_blocked():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(200):  # Python runs pending handlers between these bytecodes
                    time.sleep(0.0005)
                finished = True
        assert finished, "the handler ran inside the block"
        assert signal.getsignal(signal.SIGTERM) is interrupt
    finally:
        stop.set()
        worker.join()
        signal.signal(signal.SIGTERM, previous)


class _InterruptedImport:
    """A meta path finder: importing ``name`` fails as an interrupt during a pybind11 module's
    initialisation does (ImportError "initialization failed", raised from the interrupt)."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise ImportError("initialization failed") from KeyboardInterrupt()
        return None


def test_interrupt_inside_a_lazy_import_is_an_interrupt(tmp_path, capsys, monkeypatch):
    """A SIGTERM that lands while the RTL builder imports highspy (on first use) surfaces as an
    ImportError.  The backend's catch-all once reported it as a finegrain defect, the default
    backends dropped the RTL with a warning, and the folder became an HLS-only project: neither
    the previous output nor the new one (seen once in CI).  It is an interrupt: exit 130, the
    previous output kept."""
    argv = ["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    old = snapshot(tmp_path / "out")
    capsys.readouterr()
    monkeypatch.delitem(sys.modules, "highspy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptedImport("highspy"), *sys.meta_path])
    assert main(argv + ["--force"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted") and "defect" not in err, err
    assert snapshot(tmp_path / "out") == old and not _leftovers(tmp_path / "out")


def test_interrupt_while_reading_the_model_is_an_interrupt(tmp_path, capsys, monkeypatch):
    """The frontend's catch-all around onnx.load (any failure: the user's file) lets an
    interrupt raised as another exception through: exit 130, not 'not a readable ONNX model'."""
    import onnx

    def interrupted(*args, **kwargs):
        raise ImportError("initialization failed") from KeyboardInterrupt()

    monkeypatch.setattr(onnx, "load", interrupted)
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(JET / "plan.json"), "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted") and "readable" not in err, err
    assert not out.exists() and not _leftovers(out)
