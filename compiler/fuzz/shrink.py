"""Shrinking a failing case, and the regression case files it becomes.

A candidate is kept when it still fails the same check with the same finding key.  Steps,
each greedy and repeated while anything shrinks: one input vector; fewer layers (cut from the
end); a simpler plan (drop tensor entries, exact activations, plain formats in place of
pow2/mixes/codebooks/per-element arrays); a stream case's layers unfolded.  Each try costs a
compile (and a g++ or Verilator build when the check needs one), so the search has a time budget.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
import time
from pathlib import Path

from .check import LEVELS, Outcome, run_case
from .generate import normalize
from .quant import candidates as quant_candidates

CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "fuzz_cases"


def _levels_for(check: str) -> tuple[str, ...]:
    """The levels a check needs (the cheapest run that can show the failure again)."""
    return {"reference": ("reference",), "csim": ("csim",), "sim": ("sim",), "write": ("csim",)}.get(check, ())


def _same(outcome: Outcome, target: Outcome) -> bool:
    every = [outcome, *outcome.also]
    return any(o.status == "fail" and o.check == target.check and o.key() == target.key() for o in every)


def _candidates(case: dict):
    """Smaller variants of ``case``, most promising first."""
    if len(case["inputs"]) > 1:
        for v in range(len(case["inputs"])):
            yield {**case, "inputs": [case["inputs"][v]]}
    for n in range(1, len(case["layers"])):
        c = copy.deepcopy(case)
        c["layers"] = c["layers"][:n]
        yield normalize(c)
    plan = case["plan"]
    if plan["defaults"].get("activation") is not None:
        c = copy.deepcopy(case)
        c["plan"]["defaults"]["activation"] = None
        yield c
    for name in list(plan["tensors"]):
        c = copy.deepcopy(case)
        del c["plan"]["tensors"][name]
        yield normalize(c)
    for role in ("weight", "bias"):
        if plan["defaults"].get(role, "").startswith("pow2"):
            c = copy.deepcopy(case)
            c["plan"]["defaults"][role] = "fixed<8,2,TRN,WRAP>"
            yield c
    for name in case.get("reuse", {}):  # a stream case: the layer unfolded (reuse factor 1)
        yield {**copy.deepcopy(case), "reuse": {k: r for k, r in case["reuse"].items() if k != name}}
    if "quant" in case:
        yield from quant_candidates(case)
    if case.get("export") == "torch":
        yield {**copy.deepcopy(case), "export": "helper"}


def shrink(case: dict, target: Outcome, budget_s: float = 120.0, log=print) -> dict:
    """The smallest variant of ``case`` found within ``budget_s`` that fails like ``target``."""
    levels = _levels_for(target.check)
    deadline = time.monotonic() + budget_s
    best, tries = case, 0
    progress = True
    while progress and time.monotonic() < deadline:
        progress = False
        for cand in _candidates(best):
            if time.monotonic() >= deadline:
                break
            tries += 1
            with tempfile.TemporaryDirectory(prefix="fg-shrink-") as d:
                outcome = run_case(copy.deepcopy(cand), Path(d), levels)
            if _same(outcome, target):
                best, progress = cand, True
                break
    log(f"shrunk after {tries} tries: {len(best['layers'])} layers, {len(best['inputs'])} vectors, "
        f"{len(best['plan']['tensors'])} plan entries")
    return best


def case_name(target: Outcome, case: dict) -> str:
    if case.get("name"):
        return case["name"]
    words = re.sub(r"[^a-z0-9]+", "_", target.message.splitlines()[0].lower())[:40].strip("_")
    return f"{target.check}_{words}_s{case.get('seed', 0)}"


def write_case(case: dict, target: Outcome, folder: Path = CASES_DIR, known_defect: str | None = None) -> Path:
    """A self-contained regression case: the model (layers with explicit weights), the plan,
    the inputs, and which check failed with what message."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case_name(target, case)}.json"
    record = {"check": target.check, "message": target.message.splitlines()[0][:400],
              "levels": list(_levels_for(target.check)) or list(LEVELS), "case": case}
    if known_defect:
        record["known_defect"] = known_defect
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def load_case(path: Path) -> dict:
    return json.loads(Path(path).read_text())
