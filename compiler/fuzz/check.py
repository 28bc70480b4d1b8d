"""One fuzz case through every level: compile (both backends), the emulator against the exact
reference, g++ csim and Verilator sim against the emulator.  The first check that fails is
the case's finding; a `UserError` matching a documented limit (`LIMITS`) is not a finding.
"""

from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .generate import is_referenced
from .onnx_model import write_model
from .reference import reference

LEVELS = ("reference", "csim", "sim")
MODEL_STEM = "fuzz_case"
# UserErrors that are documented limits of finegrain, not findings (pattern -> where documented).
LIMITS = {
}


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
            plan["tensors"][name] = {"elements": f"arrays.npz:{key}", "rounding": a["rounding"], "overflow": a["overflow"]}
    if arrays:
        np.savez(folder / "arrays.npz", **arrays)
    return plan


def write_case_files(case: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{MODEL_STEM}.onnx"
    case["exported"] = write_model(case, model)
    plan = folder / "plan.json"
    plan.write_text(json.dumps(plan_json(case, folder), indent=1))
    return model, plan


def _limit(message: str) -> str | None:
    return next((why for pattern, why in LIMITS.items() if re.search(pattern, message)), None)


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


def run_case(case: dict, folder: Path, levels=LEVELS) -> Outcome:
    """Run ``case`` in ``folder`` (scratch) through ``levels`` (beyond compile and emulate)."""
    from ..errors import UserError
    from ..project import compile_model

    done: list[str] = []
    try:
        model, plan = write_case_files(case, folder)
    except Exception as err:  # the fuzzer's own model building: not a finegrain finding
        return Outcome("limit", "model", f"could not build the model: {type(err).__name__}: {err}")
    try:
        project = compile_model(model, plan)
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
    failed = []
    if "reference" in levels and is_referenced(case):
        failed = [f for f in [_against_reference(case, exact, done)] if f is not None]
        done.append("reference")
    later = _backends(case, project, inputs, folder, levels, done)
    if failed:
        return Outcome("fail", failed[0].check, failed[0].message, tuple(done), (later,) if later.status != "pass" else ())
    return later


def _against_reference(case: dict, exact, done) -> Outcome | None:
    for v, vector in enumerate(case["inputs"]):
        want = list(reference(case, vector).reshape(-1))
        got = _exact(exact, v)
        bad = [k for k, (a, b) in enumerate(zip(want, got)) if a != b]
        if bad or len(want) != len(got):
            k = bad[0] if bad else 0
            return _fail("reference", f"vector {v} output [{k}]: reference {want[k]} ({float(want[k])!r}), emulator "
                                      f"{got[k]} ({float(got[k])!r}); {len(bad)} of {len(want)} outputs differ", done)
    return None


def _backends(case: dict, project, inputs, folder: Path, levels, done: list) -> Outcome:
    """Write both backends, then g++ csim and Verilator sim against the emulator."""
    from ..errors import UserError

    graph = project.graph
    if not ({"csim", "sim"} & set(levels)):
        return Outcome("pass", levels=tuple(done))
    out = folder / "out"
    try:
        project.write(out, force=True)
    except UserError as err:
        why = _limit(str(err))
        return Outcome("limit", "write", f"{err} [{why}]", tuple(done)) if why else _fail("write", err, done)
    except Exception as err:
        return _fail("write", err, done)
    done.append("write")
    from ..verify.csim import run_csim
    from ..verify.rtlsim import run_rtl_sim

    runs = (("csim", "hls", run_csim), ("sim", "rtl", run_rtl_sim))
    for level, backend, simulate in runs:
        if level not in levels or backend not in project.config.backends:
            continue
        try:
            result = simulate(graph, out / backend, graph.name, {graph.inputs[0]: inputs})
        except Exception as err:
            return _fail(level, err, done)
        if result.mismatches:
            return _fail(level, f"{result.mismatches} mismatches: " + "; ".join(result.first_mismatches[:3]), done)
        done.append(level)
    return Outcome("pass", levels=tuple(done))

