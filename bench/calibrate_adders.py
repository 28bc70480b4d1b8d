"""Calibration (run by hand): the estimate of adder-graph designs against yosys synth_xilinx.

    nice python bench/calibrate_adders.py [--only NAME ...] [--no-adder-graph | --adder-slack N] [--no-synth]
    nice python bench/calibrate_adders.py --requantize [xcup] [ecp5]

Builds random dense layers that are NOT the examples (the examples check the result): 16 to 64
inputs, signed, unsigned and per-element input formats, per-element and pruned weights, one
and two layers, compiles each to RTL (the adder graph, or --no-adder-graph's per-output
trees), synthesizes it with the project's flow (compiler/verify/synth.py, family xcup; results
cached by content under $FINEGRAIN_SYNTH_CACHE, default build/synth_cache) one at a time, and
prints one row per design: estimated and yosys LUT and FF and their ratios.  compiler/estimate.py's
adder and register rules were checked on these rows (their single-adder and requantize rules
on yosys's counts of one adder or one fg_relu + fg_requantize alone, tests/test_estimate.py).

Results (yosys 0.23, 2 cores; ratio = estimate / yosys):

| design | adder graph LUT | FF | --no-adder-graph LUT | FF |
|---|---|---|---|---|
| d16x16_signed | 2,502 / 2,504 | 496 / 496 | 3,611 / 3,655 (0.99) | 496 / 496 |
| d24x32_narrow | 4,805 / 4,812 | 834 / 834 | 7,187 / 6,759 (1.06) | 1,648 / 1,651 |
| d32x16_unsigned_relu | 5,869 / 5,865 | 905 / 908 | 8,868 / 8,726 (1.02) | 941 / 938 |
| d32x32x8_two | 14,705 / 14,732 | 1,942 / 1,948 | 20,468 / 20,493 (1.00) | 2,495 / 2,499 |
| d40x16_mixed_in | 5,867 / 5,899 | 829 / 848 (0.98) | 8,360 / 8,218 (1.02) | 1,287 / 1,177 (1.09) |
| d48x24_wide | 16,190 / 16,183 | 2,033 / 2,036 | 21,664 / 22,381 (0.97) | 2,432 / 2,435 |
| d64x16_elements | 7,465 / 7,459 | 1,164 / 1,173 (0.99) | 10,441 / 10,595 (0.99) | 1,697 / 1,650 (1.03) |

--requantize synthesizes fg_requantize blocks alone instead (REQUANTIZE_FORMATS x TRN, RND,
RND_CONV, CEIL x every overflow, between registers; some after an fg_relu) for synth_xilinx and
synth_ecp5, against compiler/estimate.py's and compiler/estimate_ecp5.py's requantize rules (a
minute, cached after): on the 144 blocks of the saturation by bit patterns, xcup 983 / 1,008 LUT
(0.975), 204 / 204 carry; ECP5 2,386 / 2,308 LUT4 (1.034), 396 / 396 CCU2C.

At --adder-slack 0 (the least depth): d16x16_signed 2,552 / 2,554 LUT, 496 / 496 FF; d64x16_elements
7,459 / 7,452, 1,124 / 1,136; d32x32x8_two 14,716 / 14,738, 1,043 / 1,047.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _formats(rng, n: int, signed: bool, widths=(4, 10)) -> dict:
    """Per-element formats of a length-``n`` axis: random widths, integer bits and signedness."""
    out = []
    for _ in range(n):
        w = int(rng.integers(*widths))
        s = signed if signed is not None else bool(rng.integers(2))
        out.append(f"{'' if s else 'u'}fixed<{w},{int(rng.integers(1, w))},RND_CONV,SAT>")
    return {"axis": 1, "formats": out}


# name -> (layer sizes, input format, weight format, hidden activation, bias, zero fraction, seed)
DESIGNS = {
    "d16x16_signed": ((16, 16), "fixed<8,3>", "fixed<6,2,RND_CONV,SAT>", None, False, 0.0, 1),
    "d32x16_unsigned_relu": ((32, 16), "ufixed<8,4>", "fixed<6,2,RND_CONV,SAT>", "ufixed<8,4,RND_CONV,SAT>", True,
                             0.0, 2),
    "d64x16_elements": ((64, 16), "elements:signed", "elements", None, False, 0.2, 3),
    "d24x32_narrow": ((24, 32), "fixed<6,2>", "fixed<4,1,RND_CONV,SAT>", None, True, 0.0, 4),
    "d32x32x8_two": ((32, 32, 8), "fixed<10,4>", "fixed<6,2,RND_CONV,SAT>", "ufixed<8,4,RND_CONV,SAT>", True,
                     0.1, 5),
    "d48x24_wide": ((48, 24), "fixed<12,5>", "fixed<8,2,RND_CONV,SAT>", None, False, 0.3, 6),
    "d40x16_mixed_in": ((40, 16), "elements:mixed", "fixed<5,1,RND_CONV,SAT>", "fixed<8,3,RND,SAT>", True, 0.0, 7),
}


def build_model(name: str, folder: Path) -> tuple[Path, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sizes, x_fmt, w_fmt, act, bias, zeros, seed = DESIGNS[name]
    rng = np.random.default_rng(seed)
    nodes, inits, tensors, arrays = [], [], {}, {}
    src = "x"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = rng.normal(scale=0.7, size=(n_out, n_in)).astype(np.float32)
        w[rng.random(w.shape) < zeros] = 0.0
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        inputs = [src, f"w{k}"]
        if bias:
            inits.append(numpy_helper.from_array(rng.normal(size=n_out).astype(np.float32), f"b{k}"))
            inputs.append(f"b{k}")
        last = k == len(sizes) - 2
        h = "y" if last and act is None else f"h{k}"
        nodes.append(helper.make_node("Gemm", inputs, [h], name=f"fc{k}", transB=1))
        if act is not None:
            y = "y" if last else f"a{k}"
            nodes.append(helper.make_node("Relu", [h], [y], name=f"relu{k}"))
            tensors[y] = act
            src = y
        else:
            src = h
        if w_fmt == "elements":
            arrays[f"w{k}.bits"] = np.where(w == 0, 0, rng.integers(2, 9, size=w.shape))
            arrays[f"w{k}.int_bits"] = np.full(w.shape, 2)
            arrays[f"w{k}.signed"] = np.ones(w.shape, int)
            tensors[f"w{k}"] = {"elements": f"arrays.npz:w{k}", "rounding": "RND_CONV", "overflow": "SAT"}
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    model = folder / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    if arrays:
        np.savez(folder / "arrays.npz", **arrays)
    if x_fmt.startswith("elements:"):
        tensors["x"] = _formats(rng, sizes[0], {"elements:signed": True, "elements:mixed": None}[x_fmt])
        x_fmt = "fixed<8,3>"
    defaults = {"input": x_fmt, "weight": w_fmt if w_fmt != "elements" else "fixed<6,2,RND_CONV,SAT>",
                "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"defaults": defaults, "tensors": tensors}))
    return model, plan


# fg_requantize blocks for --requantize: (IN_W, IN_F, IN_SIGNED, OUT_W, OUT_F, OUT_SIGNED, relu) in
# each ROUNDING x OVERFLOW of REQUANTIZE_MODES; relu: the input is an fg_relu's output
REQUANTIZE_FORMATS = ((16, 10, 1, 8, 4, 1), (20, 12, 1, 10, 4, 1), (16, 8, 0, 8, 2, 0), (20, 10, 1, 8, 4, 0),
                      (12, 6, 1, 8, 4, 1), (24, 12, 1, 8, 4, 0), (12, 6, 1, 12, 6, 1), (16, 8, 0, 8, 4, 0, 1),
                      (16, 11, 0, 8, 4, 0, 1))
REQUANTIZE_MODES = [(r, o) for r in (0, 2, 6, 7) for o in (0, 1, 2, 3)]


def requantize_block(params: dict, relu: bool) -> str:
    """fg_requantize (after an fg_relu when ``relu``) between registers, as a layer's output is."""
    in_w, out_w = params["IN_W"], params["OUT_W"]
    plist = ", ".join(f".{k}({v})" for k, v in params.items())
    source_w = in_w + 1 if relu else in_w
    block = (f"fg_relu #(.W({source_w}), .SIGNED(1), .OUT_W({in_w})) r (.in_data(x_q), .out_data(v));\n"
             if relu else "assign v = x_q;\n")
    return f"""module t(input logic clk, input logic [{source_w - 1}:0] x, output logic [{out_w - 1}:0] y_q);
    logic [{source_w - 1}:0] x_q;
    logic [{in_w - 1}:0] v;
    logic [{out_w - 1}:0] y;
    always_ff @(posedge clk) x_q <= x;
    {block}    fg_requantize #({plist}) u (.in_data(v), .out_data(y));
    always_ff @(posedge clk) y_q <= y;
endmodule
"""


def requantize_rows(families: list[str]) -> None:
    """yosys (synth_xilinx for xcup, synth_ecp5) on every fg_requantize block of REQUANTIZE_FORMATS
    x REQUANTIZE_MODES against compiler/estimate.py's and compiler/estimate_ecp5.py's rules."""
    from compiler.estimate import _Costs
    from compiler.estimate_ecp5 import Ecp5Costs
    from compiler.verify.synth import run_synth

    rtl = ROOT / "rtl"
    totals = {f: [0, 0, 0, 0] for f in families}  # estimated LUT, yosys LUT, estimated carry, yosys carry
    print("| block | " + " | ".join(f"{f} est. LUT | yosys LUT | est. carry | yosys carry" for f in families) + " |")
    for fmt in REQUANTIZE_FORMATS:
        relu = len(fmt) > 6 and bool(fmt[6])
        for rounding, overflow in REQUANTIZE_MODES:
            p = dict(zip(("IN_W", "IN_F", "IN_SIGNED", "OUT_W", "OUT_F", "OUT_SIGNED"), fmt[:6]),
                     ROUNDING=rounding, OVERFLOW=overflow)
            name = "rq_" + "_".join(str(v) for v in fmt) + f"_r{rounding}_o{overflow}"
            cells = []
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / f"{name}.sv"
                source.write_text(requantize_block(p, relu))
                lib = [rtl / "fg_requantize.sv"] + ([rtl / "fg_relu.sv"] if relu else [])
                for family in families:
                    result = run_synth([*lib, source], "t", family)
                    if family == "ecp5":
                        est = Ecp5Costs().requantize(p, registered=True, relu=relu)
                        got = (result.cells.get("LUT4", 0), result.cells.get("CCU2C", 0))
                        est = (est.lut - 2 * est.carry, est.carry)
                    else:
                        est = _Costs(family).requantize(p, True, relu)
                        got = (result.lut, result.carry)
                        est = (est.lut, est.carry)
                    for i, v in enumerate(est + got):
                        totals[family][(0, 2, 1, 3)[i]] += v
                    cells.append(f"{est[0]} | {got[0]} | {est[1]} | {got[1]}")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    for family, (el, yl, ec, yc) in totals.items():
        print(f"{family}: LUT {el} / {yl} ({el / max(yl, 1):.3f}), carry {ec} / {yc} ({ec / max(yc, 1):.3f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=sorted(DESIGNS))
    parser.add_argument("--no-adder-graph", action="store_true")
    parser.add_argument("--adder-slack", type=int, default=None, help="the graphs' level budget (BuildConfig)")
    parser.add_argument("--no-synth", action="store_true", help="estimate only (cached syntheses still shown)")
    parser.add_argument("--requantize", nargs="*", metavar="FAMILY", default=None,
                        help="the fg_requantize blocks instead (families: xcup ecp5, the default both)")
    args = parser.parse_args()
    os.environ.setdefault("FINEGRAIN_SYNTH_CACHE", str(ROOT / "build" / "synth_cache"))
    if args.requantize is not None:
        requantize_rows(args.requantize or ["xcup", "ecp5"])
        return 0

    from compiler.backends.rtl import rtl_context, rtl_sources
    from compiler.estimate import estimate_context
    from compiler.project import compile_model
    from compiler.verify.synth import _cache_dir, _cache_key, find_yosys, run_synth, yosys_version

    print("| design | est. LUT | yosys LUT | ratio | est. FF | yosys FF | ratio | synthesis s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            model, plan = build_model(name, Path(tmp))
            out = Path(tmp) / "out"
            project = compile_model(model, plan, output_dir=out, backends=("rtl",),
                                    rtl_adder_graph=not args.no_adder_graph, rtl_adder_slack=args.adder_slack)
            context = rtl_context(project.graph, project.config.rtl_options(), project.source())
            est = estimate_context(context, project.config.part)
            top = context["model"]
            sources = rtl_sources(out / "rtl", top)
            key = _cache_key(yosys_version(find_yosys()), top, est["family"], sources)
            if args.no_synth and not (_cache_dir() / f"{key}.json").is_file():
                print(f"| {name} | {est['lut']:,} | | | {est['ff']:,} | | | |", flush=True)
                continue
            synth = run_synth(sources, top, est["family"])
        seconds = f"{synth.seconds:.0f}{' (cached)' if synth.cached else ''}"
        print(f"| {name} | {est['lut']:,} | {synth.lut:,} | {est['lut'] / synth.lut:.3f} | {est['ff']:,} "
              f"| {synth.ff:,} | {est['ff'] / synth.ff:.3f} | {seconds} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
