"""One fuzz case through every level: compile (both backends), the emulator against the exact
reference, g++ csim and Verilator sim against the emulator.  The first check that fails is
the case's finding; a `UserError` matching a documented limit (`ALL_LIMITS`: `LIMITS` and
quant.py's `QUANT_LIMITS`) is not a finding.
"""

from __future__ import annotations

import dataclasses
import json
import re
import traceback
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .generate import build_options, is_referenced
from .onnx_model import write_model
from .quant import QUANT_LIMITS
from .quant_exact import against_quant_reference
from .reference import reference

LEVELS = ("reference", "csim", "sim")
# UserErrors that are documented limits of finegrain, not findings (pattern -> where documented).
# tests/test_fuzz_limits.py holds a case for each that the compiler refuses with it: an entry
# whose message is reworded, or a limit that is lifted, fails there.  Checks no model reaches
# (the stream tail's "chain of layers" and "passed on before fg_stream_collect", which the tail's
# merged cores leave unreachable) are not listed: reaching one is a finding.
LIMITS = {
    # the stream architecture (--arch stream): docs/architectures.md, "Limits" and "Engines (RTL)"
    r"the stream architecture takes one input and one output tensor": "docs/architectures.md, Limits",
    # the tail may branch among its own tensors; from the spatial part (and the input) it reads the last stream only
    r"a stream of the model's spatial part, beside the last one": "docs/architectures.md, Limits (the tail reads "
                                                                  "only the last spatial layer's output)",
    r"always 0 by their bounds at some pixels of a channel only": "docs/architectures.md, Limits",
    r"differs between positions of one channel; a stream engine": "docs/architectures.md, Engines (RTL)",
    r"per-element formats that vary along its height/width, and the io_stream": "docs/architectures.md, Engines",
    r"varies along the height/width of .*, and the io_stream project applies one value per channel":
        "docs/architectures.md, Engines (a constant, like a format, is one per channel)",
    # an invalid model torch's exporter writes: a global pool sized by ONNX's ceil_mode shape rule
    r"\(MaxPool\) would produce an empty tensor": "docs/supported-ops.md, MaxPool (a kernel larger than its input)",
}
ALL_LIMITS = {**LIMITS, **QUANT_LIMITS}  # and the quantized models' (quant.py)


@dataclass
class Outcome:
    status: str  # "pass", "limit" (a documented refusal) or "fail"
    check: str = ""  # which check failed: compile, refused, rtl-dropped, write, emulate, reference, csim, sim
    message: str = ""
    levels: tuple[str, ...] = ()  # the levels the case got through
    also: tuple["Outcome", ...] = ()  # later checks that failed too (csim and sim still run after the reference)

    def key(self) -> str:
        """What makes two findings the same defect: the check and the message without numbers and names."""
        if self.check in ("reference", "csim", "sim") and "mismatch" in self.message or self.check == "reference":
            return self.check  # values differ: one finding per level (the shrunk case shows which)
        text = self.message.splitlines()[0] if self.message else ""
        text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^()]*\)|0x[0-9a-f]+|\d+", "#", text.split(";")[0])
        return f"{self.check}: {text[:160]}"


def plan_json(case: dict, folder: Path) -> dict:
    """The case's plan as a plan file: per-element arrays into arrays.npz beside it."""
    plan = json.loads(json.dumps(case["plan"]))
    arrays = {}
    for name, entry in list(plan["tensors"].items()):
        if isinstance(entry, dict) and "elements" in entry:
            a = case["arrays"][entry["elements"]]
            key = name.replace(".", "_")
            for part in ("bits", "int_bits", "signed"):
                arrays[f"{key}.{part}"] = np.asarray(a[part], dtype=np.int64)
            plan["tensors"][name] = {"elements": f"arrays.npz:{key}", "rounding": a["rounding"],
                                     "overflow": a["overflow"]}
    if arrays:
        np.savez(folder / "arrays.npz", **arrays)
    return plan


def write_case_files(case: dict, folder: Path, name: str = "fuzz") -> tuple[Path, Path]:
    """The case's model and plan files in ``folder``; ``name`` is the model's name in generated
    code (cases built together in one g++ or Verilator build need distinct names)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.onnx"  # a torch export names no graph: finegrain then takes the file's name
    case["exported"] = write_model(case, model, name)
    plan = folder / "plan.json"
    plan.write_text(json.dumps(plan_json(case, folder), indent=1))
    return model, plan


def _limit(message: str) -> str | None:
    return next((why for pattern, why in ALL_LIMITS.items() if re.search(pattern, message)), None)


def _fail(check: str, err: BaseException | str, levels) -> Outcome:
    if isinstance(err, BaseException):
        tb = traceback.format_exception(err)
        text = f"{type(err).__name__}: {err}\n" + "".join(tb[-3:])
    else:
        text = err
    return Outcome("fail", check, text, tuple(levels))


def _exact(fx, index) -> list[Fraction]:
    m = np.asarray(fx.m)[index].reshape(-1)
    return [Fraction(int(v)) / Fraction(2) ** fx.frac if fx.frac >= 0 else Fraction(int(v)) * 2 ** -fx.frac
            for v in m]


@dataclass
class Written:
    """A case compiled, emulated, checked against the reference and written (both backends):
    what the g++ and Verilator levels need, one case at a time or many in one build."""
    case: dict
    project: object
    inputs: np.ndarray
    out: Path
    levels: tuple[str, ...]
    done: list
    failed: Outcome | None  # the reference's finding, if any: the backends still run

    def conclude(self, later: Outcome) -> Outcome:
        """The case's outcome once its backend levels ran (``later``: their outcome)."""
        if self.failed is None:
            return later
        also = (later,) if later.status != "pass" else ()
        return Outcome("fail", self.failed.check, self.failed.message, tuple(self.done), also)


def run_case(case: dict, folder: Path, levels=LEVELS) -> Outcome:
    """Run ``case`` in ``folder`` (scratch) through ``levels`` (beyond compile and emulate)."""
    written = prepare_case(case, folder, levels)
    if isinstance(written, Outcome):
        return written
    for level in ("csim", "sim"):
        if level in written.levels:
            failed = simulate(written, level)
            if failed is not None:
                return written.conclude(failed)
    return written.conclude(Outcome("pass", levels=tuple(written.done)))


def prepare_case(case: dict, folder: Path, levels=LEVELS, name: str = "fuzz") -> Outcome | Written:
    """Compile and emulate ``case``, check it against the reference and write both backends
    when ``levels`` asks for csim or sim.  Returns the case's outcome when nothing is left to
    run, else the `Written` case, its ``levels`` narrowed to the backend levels still to run."""
    from ..backends.rtl import RTLBackendError
    from ..errors import UserError
    from ..project import compile_model

    done: list[str] = []
    try:
        model, plan = write_case_files(case, folder, name)
    except Exception as err:  # the fuzzer's own model building: not a finegrain finding
        return Outcome("limit", "model", f"could not build the model: {type(err).__name__}: {err}")
    try:
        project = compile_model(model, None if "quant" in case else plan, **build_options(case))
    except UserError as err:
        why = _limit(str(err))
        return Outcome("limit", "refused", f"{err} [{why}]") if why else _fail("refused", err, done)
    except Exception as err:
        return _fail("compile", err, done)
    done.append("compile")
    dropped = [w for w in project.warnings if w.startswith("no RTL written")]
    if dropped and not _limit(dropped[0]):
        return _fail("rtl-dropped", dropped[0], done)
    inputs = np.asarray(case["inputs"], dtype=np.float64)
    graph = project.graph
    try:
        exact = project.emulate_exact({graph.inputs[0]: inputs})[graph.outputs[0]]
    except Exception as err:
        return _fail("emulate", err, done)
    done.append("emulate")
    failed = None
    if "reference" in levels and "quant" in case and is_referenced(case):
        failed = against_quant_reference(case, project, exact, done)
        done.append("reference")
    elif "reference" in levels and is_referenced(case):
        failed = compare_with_reference(case, exact, done)
        done.append("reference")
    backend_of = {"csim": "hls", "sim": "rtl"}
    wanted = tuple(level for level in ("csim", "sim")
                   if level in levels and backend_of[level] in project.config.backends)
    written = Written(case, project, inputs, folder / "out", wanted, done, failed)
    if not wanted:
        return written.conclude(Outcome("pass", levels=tuple(done)))
    try:
        project.write(written.out, force=True)
    except UserError as err:
        why = _limit(str(err))
        if why and isinstance(err, RTLBackendError) and "csim" in wanted:
            # a documented limit of the RTL alone (a branch in the stream RTL): the HLS project still runs
            return _hls_only(written, project)
        later = Outcome("limit", "write", f"{err} [{why}]", tuple(done)) if why else _fail("write", err, done)
        return written.conclude(later)
    except Exception as err:
        return written.conclude(_fail("write", err, done))
    done.append("write")
    return written


def _hls_only(written: Written, project) -> Outcome | Written:
    """``written`` with the HLS project alone (the RTL backend refused the case with a limit)."""
    from ..errors import UserError

    project.config = dataclasses.replace(project.config, backends=tuple(b for b in project.config.backends
                                                                        if b != "rtl"))
    written.levels = ("csim",)
    try:
        project.write(written.out, force=True)
    except Exception as err:
        why = _limit(str(err)) if isinstance(err, UserError) else None
        later = Outcome("limit", "write", f"{err} [{why}]", tuple(written.done)) if why else \
            _fail("write", err, written.done)
        return written.conclude(later)
    written.done.append("write")
    return written


def simulate(written: Written, level: str) -> Outcome | None:
    """One backend level of one case with the project's own runner (`run_csim`, `run_rtl_sim`);
    None when it passed (the level is then added to ``written.done``)."""
    from ..verify.csim import run_csim
    from ..verify.rtlsim import run_rtl_sim

    graph = written.project.graph
    backend, runner = {"csim": ("hls", run_csim), "sim": ("rtl", run_rtl_sim)}[level]
    try:
        result = runner(graph, written.out / backend, graph.name, {graph.inputs[0]: written.inputs})
    except Exception as err:
        return _fail(level, err, written.done)
    if level == "sim":
        schedule = json.loads((written.out / "rtl" / "schedule.json").read_text())
        if schedule.get("architecture") == "stream":
            return _stream_verdict(written, result, schedule)
        return sim_verdict(written, result.mismatches, list(result.first_mismatches), result.latency_cycles,
                           result.predicted_latency, result.ii_cycles, schedule["ii_cycles"])
    if result.mismatches:
        return _fail(level, f"{result.mismatches} mismatches: " + "; ".join(result.first_mismatches[:3]), written.done)
    written.done.append(level)
    return None


def _stream_verdict(written: Written, result, schedule: dict) -> Outcome | None:
    """A stream top's verdict: the back-to-back run's (``result``: every bit, the latency, and the
    II when there are enough vectors for a steady state), then a second run of the same build
    with random input gaps and output stalls long enough to fill every FIFO: every bit again, no
    beat lost, duplicated or changed while held."""
    from ..verify.rtlsim import run_rtl_sim
    from ..verify.stream_sim import MIN_II_IMAGES

    steady = max(MIN_II_IMAGES, schedule.get("ii_images", MIN_II_IMAGES))
    predicted_ii = schedule["ii_cycles"] if len(written.inputs) >= steady else None
    failed = sim_verdict(written, result.mismatches, list(result.first_mismatches), result.latency_cycles,
                         result.predicted_latency, result.ii_cycles, predicted_ii, record=False)
    if failed is not None:
        return failed
    graph = written.project.graph
    try:
        stalled = run_rtl_sim(graph, written.out / "rtl", graph.name, {graph.inputs[0]: written.inputs}, gaps=True,
                              stall=True, seed=int(written.case.get("seed", 0)))
    except Exception as err:
        return _fail("sim", err, written.done)
    if stalled.mismatches:
        return _fail("sim", f"{stalled.mismatches} mismatches with input gaps and output stalls: "
                            + "; ".join(stalled.first_mismatches[:3]), written.done)
    written.done.append("sim")
    return None


def sim_verdict(written: Written, mismatches: int, first: list[str], latency, predicted: int, ii,
                predicted_ii: int | None, record: bool = True) -> Outcome | None:
    """Verilator's verdict on a case: every output bit, and the measured latency and initiation
    interval equal to the schedule's (as `finegrain sim` judges); ``record``: add "sim" to the
    case's levels done when it passed."""
    if (latency, ii) != (predicted, predicted_ii):
        first = [f"latency {latency} cycles and II {ii}, schedule.json says {predicted} and {predicted_ii}", *first]
        mismatches += 1
    if mismatches:
        return _fail("sim", f"{mismatches} mismatches: " + "; ".join(first[:3]), written.done)
    if record:
        written.done.append("sim")
    return None


def compare_with_reference(case: dict, exact, done, scale=None, bound: Fraction | None = Fraction(0),
                           said: str = "") -> Outcome | None:
    """The emulator's outputs (``exact``; times ``scale``, one float per output element, when
    given) against the exact reference on every input vector: equal, or within ``bound`` (None:
    only their number checked).  ``said`` names that promise in the message (report.json's, for
    a quantized model).  Returns a failing `Outcome`, or None."""
    for v, vector in enumerate(case["inputs"]):
        want = list(reference(case, vector).reshape(-1))
        got = _exact(exact, v)
        if scale is not None:
            got = [Fraction(float(s)) * x for s, x in zip(scale, got)]
        if len(want) != len(got):
            return _fail("reference", f"vector {v}: reference has {len(want)} outputs, emulator {len(got)}", done)
        if bound is None:
            continue
        bad = [k for k, (a, b) in enumerate(zip(want, got)) if abs(a - b) > bound]
        if bad:
            k = bad[0]
            promise = f"report.json says {said}; {len(bad)} of {len(want)} outputs outside" if said else \
                f"{len(bad)} of {len(want)} outputs differ"
            return _fail("reference", f"vector {v} output [{k}]: reference {want[k]} ({float(want[k])!r}), emulator "
                                      f"{got[k]} ({float(got[k])!r}); {promise}", done)
    return None
