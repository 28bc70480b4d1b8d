"""Calibration (run by hand): the estimate of adder-graph designs against yosys synth_xilinx.

    nice python bench/calibrate_adders.py [--only NAME ...] [--no-adder-graph | --adder-slack N] [--no-synth]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=sorted(DESIGNS))
    parser.add_argument("--no-adder-graph", action="store_true")
    parser.add_argument("--adder-slack", type=int, default=None, help="the graphs' level budget (BuildConfig)")
    parser.add_argument("--no-synth", action="store_true", help="estimate only (cached syntheses still shown)")
    args = parser.parse_args()
    os.environ.setdefault("FINEGRAIN_SYNTH_CACHE", str(ROOT / "build" / "synth_cache"))

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
