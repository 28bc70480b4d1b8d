"""`finegrain plan sweep`: train, export, compile and estimate one model per point of a sweep
(several lambdas or LUT budgets), synthesize a chosen subset, and lay the points out on an
accuracy-vs-LUT Pareto front.

The user's SPEC file defines ``train(point: dict, out_dir: pathlib.Path) -> dict``: it trains a
model for ``point`` (``{"name", "seed", "lambda"}`` or ``{"name", "seed", "max_lut"}``, or any
keys of the SPEC's own ``POINTS`` list), exports it with `compiler.train.export` into ``out_dir``
(model.onnx, plan.json, arrays.npz) and returns at least ``{"accuracy": fraction from 0 to 1}``;
further JSON values it returns are kept.

Each point runs in a fresh process of its own (a spawned `ProcessPoolExecutor` worker, one
point per worker), or as a Ray task (``ray_address``: ``"local"`` starts a local Ray instance,
anything else is passed to ``ray.init(address=...)``).  The worker trains into a temporary
folder, compiles the export there (`compiler.project.compile_model`, paths relative to that
folder so the compiled project can move), estimates it (`compiler.estimate.estimate_context`),
and returns the folder as a gzipped tar: on a cluster nothing but the SPEC's text and the
point travels to the worker, and nothing but that archive travels back.  A point whose
training, export or compile fails is recorded with its error and the sweep goes on; a SPEC
that breaks its contract (no ``train``, a wrong return value) is a `UserError`.

OUT is written whole into a temporary sibling and swapped in when complete
(`compiler.output_folder`): a bad SPEC, Ctrl-C or a crash leaves the previous OUT or none.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import io
import json
import math
import multiprocessing
import numbers
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
import types
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__
from .errors import UserError
from .output_folder import FORMAT_VERSION, STAMP, claimed, write_folder

SYNTH_CHOICES = ("none", "pareto", "all")
_SPEC_MODULE = "finegrain_sweep_spec"


class SpecError(UserError):
    """The SPEC file is missing, does not load, or breaks the train() contract."""


@dataclass(frozen=True)
class SweepOptions:
    """How every point is compiled and where the points run."""

    part: str | None = None
    board: str | None = None
    clock_ns: float = 5.0
    jobs: int = max(1, os.cpu_count() or 1)
    ray: str | None = None  # None: local processes; "local": a local Ray instance; else a cluster address
    synth: str = "none"  # none | pareto | all

    def check(self) -> "SweepOptions":
        """Validate before anything runs (every point would otherwise fail the same way);
        returns the options with the part resolved."""
        from .project import CLOCK_NS_RANGE
        from .targets import resolve_part

        part = resolve_part(self.board, self.part)
        lo, hi = CLOCK_NS_RANGE
        if not (isinstance(self.clock_ns, (int, float)) and math.isfinite(self.clock_ns) and lo <= self.clock_ns <= hi):
            raise UserError(f"--clock-ns must be a finite number of ns from {lo} to {hi}, got {self.clock_ns!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise UserError(f"--jobs must be a positive integer (processes or Ray tasks at once), got {self.jobs!r}")
        if self.synth not in SYNTH_CHOICES:
            raise UserError(f"--synth must be one of {', '.join(SYNTH_CHOICES)}, got {self.synth!r}")
        if self.ray is not None and not self.ray.strip():
            raise UserError("--ray needs an address (ray://HOST:10001, HOST:6379, auto) or 'local'")
        return SweepOptions(part, None, float(self.clock_ns), self.jobs, self.ray, self.synth)


@dataclass(frozen=True)
class Spec:
    """A validated SPEC file: its path, its text (what workers run) and its own POINTS."""

    path: Path
    text: str
    points: tuple[dict, ...] | None


# --- the SPEC ---------------------------------------------------------------------------------
def _module_from_text(path: Path, text: str) -> types.ModuleType:
    """Run the SPEC's text as a module; its folder goes on sys.path so it can import its siblings."""
    module = types.ModuleType(_SPEC_MODULE)
    module.__file__ = str(path)
    if path.parent.is_dir() and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[_SPEC_MODULE] = module  # dataclasses and pickling look modules up by name
    exec(compile(text, str(path), "exec"), module.__dict__)
    return module


def load_spec(path) -> Spec:
    """Read and run the SPEC file once here, so that a missing file, a syntax error, an import
    that fails or a missing ``train(point, out_dir)`` is one clear error before any work starts."""
    p = Path(path)
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise SpecError(f"SPEC file {str(path)!r} {what}; give the Python file that defines train(point, out_dir)")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read SPEC file {str(path)!r}: {err}") from None
    try:
        module = _module_from_text(p.resolve(), text)
    except SyntaxError as err:
        raise SpecError(f"SPEC file {str(path)!r} is not valid Python: {err.msg} at line {err.lineno}") from None
    except Exception as err:  # noqa: BLE001 - whatever the user's file raises while loading
        raise SpecError(f"SPEC file {str(path)!r} failed while loading: {type(err).__name__}: {err}") from None
    train = getattr(module, "train", None)
    if not callable(train):
        raise SpecError(f"SPEC file {str(path)!r} defines no function train(point, out_dir); it must define "
                        f"train(point: dict, out_dir: pathlib.Path) -> dict returning at least {{'accuracy': ...}}")
    try:
        inspect.signature(train).bind({}, Path("."))
    except TypeError:
        raise SpecError(f"train in SPEC file {str(path)!r} has the signature {inspect.signature(train)}; it must "
                        f"take two arguments: train(point: dict, out_dir: pathlib.Path)") from None
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    points = getattr(module, "POINTS", None)
    if points is not None:
        if not isinstance(points, (list, tuple)) or not points or not all(isinstance(q, dict) for q in points):
            raise SpecError(f"POINTS in SPEC file {str(path)!r} must be a non-empty list of dicts (one per point), "
                            f"got {type(points).__name__}")
        points = tuple(dict(q) for q in points)
    return Spec(p.resolve(), text, points)


def sweep_points(spec: Spec, lambdas=None, max_luts=None, seed: int = 0) -> list[dict]:
    """The points: one per --lambda, then one per --max-lut; without either, the SPEC's POINTS.
    Each point gets a unique ``name`` and ``seed`` (unless the SPEC's point has its own)."""
    for value in lambdas or ():
        if not (math.isfinite(value) and value >= 0):
            raise UserError(f"--lambda values must be finite and non-negative, got {value!r}")
    for value in max_luts or ():
        if value < 1:
            raise UserError(f"--max-lut values must be positive LUT counts, got {value!r}")
    if not 0 <= seed < 1 << 63:
        raise UserError(f"--seed must be an integer from 0 to 2**63 - 1, got {seed}")
    given = [{"lambda": v} for v in lambdas or ()] + [{"max_lut": v} for v in max_luts or ()]
    if not given and spec.points is None:
        raise UserError(f"no points to sweep: give --lambda VALUES and/or --max-lut VALUES, or define POINTS (a list "
                        f"of dicts) in the SPEC file {str(spec.path)!r}")
    points = []
    for i, point in enumerate(given or spec.points):
        label = "_".join(f"{k}_{v:g}" if isinstance(v, float) else f"{k}_{v}" for k, v in point.items()
                         if k not in ("name", "seed"))
        name = point.get("name") or f"{i:02d}_{re.sub(r'[^A-Za-z0-9_.+-]', '-', label)[:60] or 'point'}"
        points.append({"name": str(name), "seed": seed, **point})
    names = [q["name"] for q in points]
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", n) and n not in (".", "..")
                                                for n in names):
        raise UserError(f"the points' names must be distinct folder names (letters, digits, _ . + -), got {names}")
    return points


# --- one point, in its worker ---------------------------------------------------------------
@contextlib.contextmanager
def _cwd(folder: Path):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _plain_json(value, where: str):
    """``value`` as plain JSON (numpy and torch scalars become numbers), or a SpecError."""
    try:
        return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else o.tolist()))
    except (TypeError, ValueError, AttributeError) as err:
        raise SpecError(f"{where} is not JSON data (numbers, strings, lists, dicts): {err}") from None


def check_result(result) -> dict:
    """train()'s return value: a dict with a finite accuracy from 0 to 1, all of it JSON."""
    if not isinstance(result, dict):
        raise SpecError(f"train() returned {type(result).__name__}, not a dict; return at least "
                        f"{{'accuracy': fraction from 0 to 1}}")
    result = _plain_json(result, "train()'s return value")
    accuracy = result.get("accuracy")
    if isinstance(accuracy, bool) or not isinstance(accuracy, numbers.Real) or not math.isfinite(accuracy) \
            or not 0 <= accuracy <= 1:
        raise SpecError(f"train() returned accuracy {accuracy!r}; return {{'accuracy': fraction from 0 to 1}} "
                        f"(e.g. 0.93 for 93 %)" + (" and any other metrics beside it" if "accuracy" in result
                                                  else f", it returned the keys {sorted(result)}"))
    return result


def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=3) as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=child.name)
    return buf.getvalue()


def _compile_and_estimate(work: Path, options: SweepOptions) -> dict:
    """Compile work/export into work/build (relative paths: the folder can move) and estimate it."""
    from .estimate import estimate_context
    from .project import compile_model, update_report

    export = work / "export"
    missing = [n for n in ("model.onnx", "plan.json") if not (export / n).is_file()]
    if missing:
        raise UserError(f"train() wrote no {' and no '.join(missing)} into out_dir: export the trained model with "
                        f"compiler.train.export(model, example_input, out_dir)")
    with _cwd(work):
        project = compile_model("export/model.onnx", "export/plan.json", output_dir="build", part=options.part,
                                clock_ns=options.clock_ns)
    if project.rtl_context is None:
        reasons = "; ".join(w for w in project.warnings if w.startswith("no RTL")) or "no RTL backend"
        raise UserError(f"no resource estimate: the RTL backend cannot build this model ({reasons})")
    estimate = estimate_context(project.rtl_context, project.config.part)
    update_report(work / "build", "estimate", estimate)
    return estimate


def run_point(spec_path: str, spec_text: str, point: dict, options: SweepOptions, threads: int = 1) -> dict:
    """Train, export, compile and estimate one point in this process (a worker).  Never raises:
    returns ``{"status": "ok" | "failed" | "spec_error", ...}``, with ``archive`` (the gzipped
    tar of the export and the compiled project, or what there is of them) and ``error``."""
    start = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # before the SPEC imports torch
    work = Path(tempfile.mkdtemp(prefix="finegrain-point-"))
    outcome = {"name": point["name"], "status": "failed", "error": None, "result": None, "estimate": None}
    try:
        (work / "export").mkdir()
        module = _module_from_text(Path(spec_path), spec_text)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        result = check_result(module.train(dict(point), work / "export"))
        outcome["result"] = result
        outcome["estimate"] = _compile_and_estimate(work, options)
        outcome["status"] = "ok"
    except SpecError as err:
        outcome.update(status="spec_error", error=str(err))
    except UserError as err:
        outcome["error"] = str(err)
    except Exception:  # noqa: BLE001 - the user's training failed: recorded, the sweep goes on
        outcome["error"] = _user_traceback()
    finally:
        with contextlib.suppress(OSError):
            outcome["archive"] = _archive(work)
        shutil.rmtree(work, ignore_errors=True)
    outcome["seconds"] = round(time.perf_counter() - start, 2)
    return outcome


def _user_traceback() -> str:
    """The exception with the frames of the SPEC and below (not this module's)."""
    kind, err, tb = sys.exc_info()
    frames = traceback.extract_tb(tb)
    keep = [f for f in frames if f.filename != __file__]
    lines = traceback.format_list(keep[-6:]) + traceback.format_exception_only(kind, err)
    return "".join(lines).rstrip()


# --- running every point ----------------------------------------------------------------------
def _run_local(spec: Spec, points: list[dict], options: SweepOptions, report):
    threads = max(1, (os.cpu_count() or 1) // options.jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or Ray state
    pool = concurrent.futures.ProcessPoolExecutor(options.jobs, mp_context=context, max_tasks_per_child=1)
    futures = {pool.submit(run_point, str(spec.path), spec.text, p, options, threads): p for p in points}
    try:
        for future in concurrent.futures.as_completed(futures):
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - the worker process died (killed, out of memory)
                outcome = {"name": futures[future]["name"], "status": "failed", "result": None,
                           "estimate": None, "error": f"the worker process died: {type(err).__name__}: {err}"}
            report(outcome)
    except BaseException:  # a bad SPEC, Ctrl-C: stop the points still training, they are not kept
        workers = list(getattr(pool, "_processes", {}).values())  # our own worker processes
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.terminate()
        raise
    pool.shutdown()


def _run_ray(spec: Spec, points: list[dict], options: SweepOptions, report):
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'ray[default]' (the dev extra has it)") from None
    started = not ray.is_initialized()
    if started:
        try:
            if options.ray == "local":
                package = str(Path(__file__).resolve().parents[1])  # workers import this compiler package
                paths = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
                ray.init(num_cpus=options.jobs, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": paths}})
            else:
                ray.init(address=options.ray, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - a wrong address, an unreachable cluster, a version mismatch
            raise UserError(f"cannot start or join Ray at --ray {options.ray!r}: {type(err).__name__}: {err}") \
                from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_point)
        refs = {task.remote(str(spec.path), spec.text, p, options, 1): p for p in points}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                outcome = ray.get(done[0])
            except Exception as err:  # noqa: BLE001 - the task's worker died
                outcome = {"name": refs[done[0]]["name"], "status": "failed", "result": None, "estimate": None,
                           "error": f"the Ray task failed: {type(err).__name__}: {err}"}
            report(outcome)
    finally:
        if started:
            ray.shutdown()


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (luts, accuracy) pairs: whether each is on the front, i.e. no other point has at most
    its LUTs and at least its accuracy with one of the two strictly better (equal points both stay)."""
    return [not any(lq <= lut and aq >= acc and (lq < lut or aq > acc) for lq, aq in points)
            for lut, acc in points]


# --- the sweep ---------------------------------------------------------------------------------
def _record(point: dict, outcome: dict, folder: Path) -> dict:
    """Unpack a point's archive into OUT/points/NAME and make its sweep.json entry."""
    folder.mkdir(parents=True)
    if outcome.get("archive"):
        with tarfile.open(fileobj=io.BytesIO(outcome["archive"]), mode="r:gz") as tar:
            tar.extractall(folder, filter="data")
    if outcome["error"]:
        (folder / "error.txt").write_text(outcome["error"] + "\n")
    estimate = outcome.get("estimate")
    rel = f"points/{point['name']}"
    return {
        "name": point["name"], "point": point, "status": outcome["status"], "error": outcome["error"],
        "accuracy": outcome["result"]["accuracy"] if outcome.get("result") else None,
        "metrics": outcome.get("result"), "seconds": outcome.get("seconds"),
        "estimate": None if estimate is None else {
            k: estimate.get(k) for k in ("lut", "ff", "dsp", "bram", "carry", "latency_cycles", "ii_cycles",
                                         "clock_ns", "part", "family", "top", "architecture")},
        "synth": None, "pareto": False,
        "paths": {"export": f"{rel}/export", "build": f"{rel}/build" if estimate else None,
                  **({"error": f"{rel}/error.txt"} if outcome["error"] else {})},
    }


def _synthesize_points(out: Path, entries: list[dict], which: str, jobs: int, say) -> None:
    """yosys on the chosen points' RTL (threads: each run is a yosys process), into their
    report.json and sweep entries; a failure is the entry's ``synth.error``."""
    from .cli import _synthesize  # the same run and record as `finegrain report --synth`
    from .project import load_project, update_report

    chosen = [e for e in entries if e["status"] == "ok" and (which == "all" or e["pareto"])]

    def one(entry):
        build = out / entry["paths"]["build"]
        full = json.loads((build / "report.json").read_text())["estimate"]
        load_project(build)  # the folder is whole
        try:
            result = _synthesize(build, full)
        except UserError as err:
            return entry, {"error": str(err)}
        update_report(build, "synth", result)
        return entry, result

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        for entry, result in pool.map(one, chosen):
            entry["synth"] = {k: result.get(k) for k in ("lut", "ff", "dsp", "carry", "seconds", "cached", "error")
                              if k in result}
            say(f"synthesized {entry['name']}: " + (f"error: {result['error']}" if "error" in result
                                                    else f"{result['lut']:,} LUT (yosys)"))


def run_sweep(spec_path, out_dir, *, lambdas=None, max_luts=None, seed: int = 0,
              options: SweepOptions = SweepOptions(), force: bool = False, say=print) -> dict:
    """Run the sweep and write OUT whole (see the module docstring); returns sweep.json's data.
    ``say`` receives a line per finished point.  Raises `UserError` for a bad SPEC, option or OUT."""
    from .sweep_report import sweep_table, write_sweep_html

    options = options.check()
    spec = load_spec(spec_path)
    points = sweep_points(spec, lambdas, max_luts, seed)
    out = Path(out_dir)
    sweep: dict = {}

    def fill(tmp: Path) -> None:
        entries: dict[str, dict] = {}
        by_name = {p["name"]: p for p in points}

        def report(outcome):
            if outcome["status"] == "spec_error":
                raise SpecError(f"SPEC file {str(spec.path)!r}, point {outcome['name']!r}: {outcome['error']}")
            entry = entries[outcome["name"]] = _record(by_name[outcome["name"]], outcome,
                                                       tmp / "points" / outcome["name"])
            if entry["status"] == "ok":
                est = entry["estimate"]
                say(f"[{len(entries)}/{len(points)}] {entry['name']}: accuracy {entry['accuracy']:.4f}, "
                    f"{est['lut']:,} LUT (estimated), {est['latency_cycles']} cycles, {entry['seconds']} s")
            else:
                say(f"[{len(entries)}/{len(points)}] {entry['name']}: FAILED: {entry['error'].splitlines()[-1]}")

        start = time.perf_counter()
        (_run_ray if options.ray else _run_local)(spec, points, options, report)
        ordered = [entries[p["name"]] for p in points]
        ok = [e for e in ordered if e["status"] == "ok"]
        for entry, front in zip(ok, pareto_front([(e["estimate"]["lut"], e["accuracy"]) for e in ok])):
            entry["pareto"] = front
        if options.synth != "none":
            _synthesize_points(tmp, ordered, options.synth, options.jobs, say)
        sweep.update({
            "finegrain_version": __version__, "spec": str(spec.path), "seed": seed,
            "options": {k: v for k, v in asdict(options).items()}, "seconds": round(time.perf_counter() - start, 1),
            "failed": [e["name"] for e in ordered if e["status"] != "ok" or (e["synth"] or {}).get("error")],
            "points": ordered,
        })
        (tmp / "sweep.json").write_text(json.dumps(sweep, indent=2) + "\n")
        (tmp / "sweep.md").write_text(sweep_table(sweep) + "\n")
        write_sweep_html(tmp, sweep)
        (tmp / STAMP).write_text(json.dumps({"finegrain_output": FORMAT_VERSION, "finegrain_version": __version__,
                                             "kind": "sweep"}) + "\n")

    with claimed(out, force, [("SPEC file", str(spec.path))]):
        write_folder(out, fill)
    return sweep
