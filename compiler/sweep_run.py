"""Where the points of a sweep run (compiler/sweep.py): `run_point`, which trains, exports,
compiles and estimates one point in a worker process, and the two ways of running every point:
local processes, one fresh process per point, or Ray tasks (a local Ray instance or a
cluster).  A worker needs only the SPEC's text and the point; it returns the point's folder as a
gzipped tar, so a cluster needs no disk shared with the driver."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import math
import multiprocessing
import numbers
import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

from .argnames import option
from .errors import UserError
from .sweep import Spec, SpecError, SweepOptions, _module_from_text

PRELOAD = ("compiler.sweep_run", "compiler.project", "compiler.estimate", "compiler.train", "torch._dynamo")

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
    from .project import compile_model
    from .report_json import update_report

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
    estimate = project.estimate().to_dict()
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
    except (Exception, SystemExit):  # noqa: BLE001 - the user's training failed: recorded, the sweep goes on
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
def run_local(spec: Spec, points: list[dict], options: SweepOptions, report):
    threads = max(1, (os.cpu_count() or 1) // options.jobs)
    # Each point in a new process forked from a clean server process (no torch op run, no thread
    # started, no Ray state) that imported torch and finegrain once: a fresh process without seconds
    # of imports per point.  A module missing here (torch is optional) is skipped by the server.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
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
        for future in futures:
            future.cancel()
        for worker in list((getattr(pool, "_processes", None) or {}).values()):  # our own worker processes
            with contextlib.suppress(Exception):
                worker.terminate()
        pool.shutdown(wait=True, cancel_futures=True)  # quick now; waiting avoids a race of the pool's thread
        raise
    pool.shutdown()


def run_ray(spec: Spec, points: list[dict], options: SweepOptions, report):
    try:
        import ray
    except ImportError:
        raise UserError(f"{option('ray')} needs Ray: pip install 'ray[default]' (the dev extra has it)") from None
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
            raise UserError(f"cannot start or join Ray at {option('ray', options.ray)}: {type(err).__name__}: {err}") \
                from None
    pending = []
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
    except BaseException:  # a bad SPEC, Ctrl-C: the points still running on the cluster are not kept
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
