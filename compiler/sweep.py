"""`finegrain plan sweep`: train, export, compile and estimate one model per point of a sweep
(several lambdas or LUT budgets), synthesize a chosen subset, and lay the points out on an
accuracy-vs-LUT Pareto front.

The user's SPEC file defines ``train(point: dict, out_dir: pathlib.Path) -> dict``: it trains a
model for ``point`` (``{"name", "seed", "lambda"}`` or ``{"name", "seed", "max_lut"}``, or any
keys of the SPEC's own ``POINTS`` list), exports it with `compiler.train.export` into ``out_dir``
(model.onnx, plan.json, arrays.npz) and returns at least ``{"accuracy": fraction from 0 to 1}``;
further JSON values it returns are kept.

Each point runs in a fresh process of its own (a `ProcessPoolExecutor` worker forked from a
clean server process, one point per worker), or as a Ray task (`SweepOptions.ray`: ``"local"``
starts a local Ray instance, anything else is passed to ``ray.init(address=...)``); see
compiler/sweep_run.py.  The worker trains into a temporary folder, compiles the export there
(`compiler.project.compile_model`, paths relative to that folder so the compiled project can
move), estimates it (`Project.estimate`), and returns the folder as a gzipped
tar: on a cluster nothing but the SPEC's text and the point travels to the worker, and nothing
but that archive travels back.  A point whose training, export or compile fails is recorded
with its error and the sweep goes on; a SPEC that breaks its contract (no ``train``, a wrong
return value) is a `UserError`.

OUT is written whole into a temporary sibling and swapped in when complete
(`compiler.output_folder`): a bad SPEC, Ctrl-C or a crash leaves the previous OUT or none.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import io
import json
import math
import os
import re
import sys
import tarfile
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__
from .argnames import option
from .errors import UserError, reraise_interrupt
from .output_folder import FORMAT_VERSION, STAMP, claimed, write_folder
from .progress import elapsed

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
        from .build_config import CLOCK_NS_RANGE
        from .targets import resolve_part

        part = resolve_part(self.board, self.part)
        lo, hi = CLOCK_NS_RANGE
        if not (isinstance(self.clock_ns, (int, float)) and math.isfinite(self.clock_ns) and lo <= self.clock_ns <= hi):
            raise UserError(f"{option('clock_ns')} must be a finite number of ns from {lo} to {hi}, "
                            f"got {self.clock_ns!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise UserError(f"{option('jobs')} must be a positive integer (processes or Ray tasks at once), "
                            f"got {self.jobs!r}")
        if self.synth not in SYNTH_CHOICES:
            raise UserError(f"{option('synth')} must be one of {', '.join(SYNTH_CHOICES)}, got {self.synth!r}")
        if self.ray is not None and not self.ray.strip():
            raise UserError(f"{option('ray')} needs an address (ray://HOST:10001, HOST:6379, auto) or 'local'")
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
        reraise_interrupt(err)
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
            got = (f"{type(points).__name__} {points!r}"[:80] if not isinstance(points, (list, tuple))
                   else "an empty list" if not points
                   else f"{next(q for q in points if not isinstance(q, dict))!r} among them")
            raise SpecError(f"POINTS in SPEC file {str(path)!r} must be a non-empty list of dicts (one per point), "
                            f"got {got}")
        points = tuple(dict(q) for q in points)
    return Spec(p.resolve(), text, points)


def sweep_points(spec: Spec, lambdas=None, max_luts=None, seed: int = 0) -> list[dict]:
    """The points: one per --lambda, then one per --max-lut; without either, the SPEC's POINTS.
    Each point gets a unique ``name`` and ``seed`` (unless the SPEC's point has its own)."""
    for value in lambdas or ():
        if not (math.isfinite(value) and value >= 0):
            raise UserError(f"{option('lambdas')} values must be finite and non-negative, got {value!r}")
    for value in max_luts or ():
        if value < 1:
            raise UserError(f"{option('max_luts')} values must be positive LUT counts, got {value!r}")
    if not 0 <= seed < 1 << 63:
        raise UserError(f"{option('seed')} must be an integer from 0 to 2**63 - 1, got {seed}")
    given = [{"lambda": v} for v in lambdas or ()] + [{"max_lut": v} for v in max_luts or ()]
    if not given and spec.points is None:
        raise UserError(f"no points to sweep: give {option('lambdas')} and/or {option('max_luts')}, or define POINTS "
                        f"(a list of dicts) in the SPEC file {str(spec.path)!r}")
    points = []
    for i, point in enumerate(given or spec.points):
        label = "_".join(f"{k}_{v:g}" if isinstance(v, float) else f"{k}_{v}" for k, v in point.items()
                         if k not in ("name", "seed"))
        if not isinstance(point.get("name", ""), str):
            raise UserError(f"point {i}'s name must be a string (the name of its folder), got {point['name']!r}")
        try:  # sweep.json records every point
            json.dumps(point, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise UserError(f"point {i} ({str(point)[:60]}) is not plain JSON data (numbers, strings, lists, dicts; "
                            f"no NaN or infinity): {err}") from None
        name = point.get("name") or f"{i:02d}_{re.sub(r'[^A-Za-z0-9_.+-]', '-', label)[:60] or 'point'}"
        points.append({"seed": seed, **point, "name": name})
    names = [q["name"] for q in points]
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", n) and n not in (".", "..")
                                                for n in names):
        raise UserError(f"the points' names must be distinct folder names (letters, digits, _ . + -), got {names}")
    return points


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
        # the sweep only passes a budget on to train(); whether the estimate kept it is recorded
        **({"within_max_lut": estimate["lut"] <= point["max_lut"]} if estimate and "max_lut" in point else {}),
        "paths": {"export": f"{rel}/export", "build": f"{rel}/build" if estimate else None,
                  **({"error": f"{rel}/error.txt"} if outcome["error"] else {})},
    }


def _synthesize_points(out: Path, entries: list[dict], which: str, jobs: int, say) -> None:
    """yosys on the chosen points' RTL (threads: each run is a yosys process), into their
    report.json and sweep entries; a failure is the entry's ``synth.error``."""
    from .verify.synth import synthesize_build  # the same run and record as `finegrain report --synth`
    from .project import load_project
    from .report_json import update_report

    chosen = [e for e in entries if e["status"] == "ok" and (which == "all" or e["pareto"])]

    def one(entry):
        build = out / entry["paths"]["build"]
        full = json.loads((build / "report.json").read_text())["estimate"]
        load_project(build)  # the folder is whole
        try:
            result = synthesize_build(build, full)
        except UserError as err:
            return entry, {"error": str(err)}
        update_report(build, "synth", result)
        return entry, result

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool, \
            elapsed(f"plan sweep: yosys on {len(chosen)} points", total=len(chosen)) as progress:
        for k, (entry, result) in enumerate(pool.map(one, chosen), 1):
            progress.update(done=k)
            entry["synth"] = {k: result.get(k) for k in ("lut", "ff", "dsp", "carry", "seconds", "cached", "error")
                              if k in result}
            say(f"synthesized {entry['name']}: " + (f"error: {result['error']}" if "error" in result
                                                    else f"{result['lut']:,} LUT (yosys)"))


def run_sweep(spec_path, out_dir, *, lambdas=None, max_luts=None, seed: int = 0,
              options: SweepOptions = SweepOptions(), force: bool = False, say=print) -> dict:
    """Run the sweep and write OUT whole (see the module docstring); returns sweep.json's data.
    ``say`` receives a line per finished point.  Raises `UserError` for a bad SPEC, option or OUT."""
    from .sweep_report import sweep_table, write_sweep_html
    from .sweep_run import run_local, run_ray

    options = options.check()
    if options.synth != "none":  # before hours of training, not after
        from .verify.synth import find_yosys

        find_yosys()
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
            progress.update(done=len(entries))
            if entry["status"] == "ok":
                est = entry["estimate"]
                say(f"[{len(entries)}/{len(points)}] {entry['name']}: accuracy {entry['accuracy']:.4f}, "
                    f"{est['lut']:,} LUT (estimated), {est['latency_cycles']} cycles, {entry['seconds']} s")
            else:
                say(f"[{len(entries)}/{len(points)}] {entry['name']}: FAILED: {entry['error'].splitlines()[-1]}")

        start = time.perf_counter()
        with elapsed(f"plan sweep: {len(points)} points", total=len(points)) as progress:
            (run_ray if options.ray else run_local)(spec, points, options, report)
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

    with claimed(out, force, [("SPEC file", str(spec.path))], kind="sweep"):
        write_folder(out, fill)
    return sweep
