"""Delay measurements on the ECP5-85F (run by hand): what issue 15's delay model is fitted on.

    nice python bench/delay_ecp5.py [--json bench/delay_ecp5.json] [--quick] [--seeds N]

Places and routes, one at a time, with the project's open flow (compiler/verify/pnr.py: yosys
synth_ecp5 without alumacc, nextpnr-ecp5 out of context, speed grade 6, seed 1; results cached
by content under $FINEGRAIN_PNR_CACHE):

* single registered adders (an ``fg_adder_tree`` of 2 terms) of width 4..32;
* registered adder trees (``fg_adder_tree``, combinational, N terms of W bits, registers at its
  inputs and output): N 3..32 (1..5 levels), W 4..24;
* registered ``fg_requantize`` blocks (rounding and saturation of a wide sum to a narrow
  activation).

Each design's register-to-register path is the datapath alone, so nextpnr's critical path is its
delay.  Prints one row per design (levels, width, critical path ns, Fmax, LUT4 and CCU2C from
yosys, nextpnr seconds), fits ``delay = a + b * levels + c * width`` by least squares over the
adders and trees (numpy), prints the fit and its worst over- and under-prediction, and writes
every row and the fit as JSON.  ``--seeds N`` places the largest tree of each level count with
seeds 1..N too, for nextpnr's spread.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.verify.pnr import run_pnr  # noqa: E402

RTL = ROOT / "rtl"
ADDER_WIDTHS = (4, 8, 12, 16, 20, 24, 28, 32)
TREE_TERMS = (3, 4, 6, 8, 12, 16, 24, 32)
TREE_WIDTHS = (4, 8, 12, 16, 20, 24)
# name -> fg_requantize parameters (IN_W, IN_F, IN_SIGNED, OUT_W, OUT_F, OUT_SIGNED, ROUNDING, OVERFLOW)
REQUANTIZE = {
    "requantize_s24_to_s8_rnd_sat": (24, 12, 1, 8, 4, 1, 2, 1),
    "requantize_s16_to_u6_conv_sat": (16, 8, 1, 6, 3, 0, 6, 1),
    "requantize_s20_to_s10_trn_wrap": (20, 10, 1, 10, 4, 1, 0, 0),
}


def tree_source(name: str, terms: int, width: int) -> str:
    """A registered fg_adder_tree: input register, the combinational tree, output register."""
    out_w = width + math.ceil(math.log2(terms))
    return f"""\
module {name} (
    input  logic                clk,
    input  logic [{terms * width - 1}:0] terms,
    output logic [{out_w - 1}:0]  sum
);
    logic [{terms * width - 1}:0] terms_q;
    logic [{out_w - 1}:0] tree_sum;
    fg_adder_tree #(.N({terms}), .W({width}), .SIGNED(1), .LEVELS_PER_STAGE(0)) u_tree (
        .clk, .rst(1'b0), .in_valid(1'b1), .in_data(terms_q), .out_valid(), .out_data(tree_sum));
    always_ff @(posedge clk) begin
        terms_q <= terms;
        sum <= tree_sum;
    end
endmodule
"""


def requantize_source(name: str, params: tuple) -> str:
    in_w, in_f, in_s, out_w, out_f, out_s, rounding, overflow = params
    return f"""\
module {name} (
    input  logic              clk,
    input  logic [{in_w - 1}:0] value,
    output logic [{out_w - 1}:0] result
);
    logic [{in_w - 1}:0] value_q;
    logic [{out_w - 1}:0] requantized;
    fg_requantize #(.IN_W({in_w}), .IN_F({in_f}), .IN_SIGNED({in_s}), .OUT_W({out_w}), .OUT_F({out_f}),
                    .OUT_SIGNED({out_s}), .ROUNDING({rounding}), .OVERFLOW({overflow})) u_requantize (
        .in_data(value_q), .out_data(requantized));
    always_ff @(posedge clk) begin
        value_q <= value;
        result <= requantized;
    end
endmodule
"""


def designs(quick: bool) -> list[dict]:
    """Every design of the sweep: name, kind, levels, width, source text, library files."""
    tree_lib = ["fg_reduce_tree.sv", "fg_adder_tree.sv"]
    out = []
    for w in ADDER_WIDTHS[::2] if quick else ADDER_WIDTHS:
        name = f"adder_w{w}"
        out.append(dict(name=name, kind="adder", levels=1, width=w, text=tree_source(name, 2, w), lib=tree_lib))
    for n in TREE_TERMS[1::2] if quick else TREE_TERMS:
        for w in TREE_WIDTHS[::2] if quick else TREE_WIDTHS:
            name = f"tree_n{n}_w{w}"
            out.append(dict(name=name, kind="tree", levels=math.ceil(math.log2(n)), width=w,
                            text=tree_source(name, n, w), lib=tree_lib))
    for name, params in list(REQUANTIZE.items())[: 1 if quick else None]:
        out.append(dict(name=name, kind="requantize", levels=None, width=params[0],
                        text=requantize_source(name, params), lib=["fg_requantize.sv"]))
    return out


def measure(design: dict, folder: Path, seed: int = 1) -> dict:
    source = folder / f"{design['name']}.sv"
    source.write_text(design["text"])
    result = run_pnr([*(RTL / f for f in design["lib"]), source], design["name"], clock_ns=5.0,
                     out_of_context=True, seed=seed)
    return {k: design[k] for k in ("name", "kind", "levels", "width")} | {
        "seed": seed, "delay_ns": result.critical_path_ns, "fmax_mhz": result.fmax_mhz, "path": result.path,
        "lut4": result.lut4, "ccu2c": result.ccu2c, "ff": result.ff, "comb": result.used.get("TRELLIS_COMB", 0),
        "pnr_seconds": result.seconds.get("pnr")}


def fit(rows: list[dict]) -> dict:
    """delay = a + b * levels + c * width, least squares over the adders and trees."""
    rows = [r for r in rows if r["levels"] is not None and r["seed"] == 1]
    x = np.array([[1.0, r["levels"], r["width"]] for r in rows])
    y = np.array([r["delay_ns"] for r in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    error = x @ coef - y  # > 0: the model predicts a longer path than nextpnr reports
    worst_over, worst_under = int(np.argmax(error)), int(np.argmin(error))
    return {"a": round(float(coef[0]), 3), "b_per_level": round(float(coef[1]), 3),
            "c_per_bit": round(float(coef[2]), 4), "rows": len(rows),
            "rms_ns": round(float(np.sqrt(np.mean(error ** 2))), 3),
            "worst_over_ns": round(float(error[worst_over]), 3), "worst_over": rows[worst_over]["name"],
            "worst_under_ns": round(float(error[worst_under]), 3), "worst_under": rows[worst_under]["name"],
            "worst_under_pct": round(float(100 * error[worst_under] / y[worst_under]), 1),
            # the intercept that makes the fit never optimistic on these rows
            "a_never_optimistic": round(float(coef[0] - error[worst_under]), 3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "delay_ecp5.json")
    parser.add_argument("--quick", action="store_true", help="every other width and term count")
    parser.add_argument("--seeds", type=int, default=1, help="also place the largest trees with seeds 2..N")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    print(f"{'design':34} {'levels':>6} {'width':>5} {'path ns':>8} {'Fmax':>7} {'LUT4':>5} {'CCU2C':>5} "
          f"{'logic':>6} {'route':>6} {'pnr s':>6}")
    with tempfile.TemporaryDirectory(prefix="finegrain-delay-") as tmp:
        sweep = designs(args.quick)
        widest = {}
        for d in sweep:
            if d["kind"] == "tree":
                widest[d["levels"]] = d
        extra = [(d, s) for d in widest.values() for s in range(2, args.seeds + 1)]
        for design, seed in [(d, 1) for d in sweep] + extra:
            row = measure(design, Path(tmp), seed)
            rows.append(row)
            levels = "-" if row["levels"] is None else row["levels"]
            name = row["name"] + ("" if seed == 1 else f" (seed {seed})")
            print(f"{name:34} {levels:>6} {row['width']:>5} {row['delay_ns']:8.2f} {row['fmax_mhz']:7.1f} "
                  f"{row['lut4']:5d} {row['ccu2c']:5d} {row['path'].get('logic', 0):6.2f} "
                  f"{row['path'].get('routing', 0):6.2f} {row['pnr_seconds']:6.1f}", flush=True)
    model = fit(rows)
    print(f"\nfit over {model['rows']} adders and trees: delay = {model['a']} + {model['b_per_level']} * levels "
          f"+ {model['c_per_bit']} * width ns; rms {model['rms_ns']} ns; worst over-prediction "
          f"{model['worst_over_ns']} ns ({model['worst_over']}), worst under-prediction {model['worst_under_ns']} ns "
          f"({model['worst_under']}, {model['worst_under_pct']}% of its path); with a = {model['a_never_optimistic']} "
          f"it is never optimistic here (worst over-prediction "
          f"{model['worst_over_ns'] - model['worst_under_ns']:.3f} ns)")
    for r in rows:
        if r["kind"] == "requantize":
            print(f"{r['name']}: {r['delay_ns']} ns ({r['lut4']} LUT4, {r['ccu2c']} CCU2C)")
    print(f"total {time.perf_counter() - start:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(f"  {json.dumps(r)}" for r in rows)  # one design a line
    args.json.write_text(f'{{"fit": {json.dumps(model)},\n "rows": [\n{lines}\n]}}\n')
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
