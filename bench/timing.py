"""Pipelining by timing against place and route and against da4ml (issue 15's benchmark; run by
hand, results in bench/RESULTS.md):

    nice python bench/timing.py [--json out.json] [--ecp5-clocks 5 10 20] [--versus-clock 10]
                                [--only jet_tagger ecp5_versus_da4ml ecp5]

``--only`` runs those parts alone; with ``--json`` an existing file keeps its other keys (the
rows of the parts not run, ``machine``, ``flow``), so one part can be measured again and merged.

1. **ECP5, placed and routed.**  The per-weight-bits and codebook examples compiled for the
   ULX3S (LFE5U-85F-6BG381C) at each ``--ecp5-clocks`` period, each generated top wrapped in a
   module that registers its inputs and its outputs (the top reads its input ports
   combinationally: out of context, nextpnr would not time that first path), placed and routed
   out of context by compiler/verify/pnr.py (yosys synth_ecp5, nextpnr-ecp5 at that clock, seed 1,
   cached).  A row: the latency, the delay model's predicted critical path and layer
   (schedule.json), nextpnr's critical path (1000 / Fmax) and its split, and the error of the
   prediction (negative: optimistic).
2. **The jet tagger at 200 MHz against da4ml.**  finegrain's default build of the jet tagger at
   5 ns (UltraScale+: the model's assumed Xilinx figures) and da4ml's pipelines of the same
   quantized weights (the plan with RND_CONV -> RND, which da4ml lacks; bench/adder_graph.py's
   trace: ``latency_cutoff`` 4 and 5 with its delay constraint 2), in cycles from input to
   output.  da4ml registers its inputs, so its latency is its stages + 1; finegrain's top reads
   its ports combinationally, so its latency is its registers.
3. **Per-weight bits against da4ml on the ECP5, placed.**  The same RND variant built by both and
   placed out of context: finegrain at ``--versus-clock`` behind registered ports (its latency
   counted with those two registers, as da4ml's top has them), da4ml at cutoff 5; cycles and
   nextpnr's Fmax side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compiler.backends.rtl import rtl_sources  # noqa: E402
from compiler.targets import BOARDS, ecp5_device  # noqa: E402
from compiler.verify.pnr import run_pnr  # noqa: E402

FINEGRAIN = [sys.executable, "-m", "compiler.cli"]
ECP5_EXAMPLES = {"per_weight_bits": REPO / "examples" / "per_weight_bits",
                 "codebook": REPO / "examples" / "codebook"}
JET = REPO / "examples" / "jet_tagger"


def compile_example(folder: Path, out: Path, *options: str, plan: Path | None = None) -> dict:
    subprocess.run([*FINEGRAIN, "compile", str(folder / "model.onnx"), "--plan", str(plan or folder / "plan.json"),
                    "-o", str(out), "--backend", "rtl", *options], check=True, cwd=REPO, capture_output=True)
    return json.loads((out / "rtl" / "schedule.json").read_text())


def place(sources: list[Path], top: str, clock: float) -> tuple[dict, float]:
    """nextpnr's result for ``top`` on the ULX3S's ECP5-85F out of context, and its seconds."""
    device, package, speed = ecp5_device(BOARDS["ulx3s"])
    start = time.perf_counter()
    result = run_pnr(sources, top, device=device, package=package, speed=speed, clock_ns=clock, out_of_context=True)
    return result, round(time.perf_counter() - start, 1)


def da4ml_design(work: Path, name: str, cutoff: float):
    """da4ml's pipeline of ``name``'s RND plan variant (bench/adder_graph.py's trace and build)."""
    from bench.adder_graph import Design, build_da4ml, rnd_plan, trace_da4ml
    from compiler import load_project

    folder = REPO / "examples" / name
    out = work / f"{name}_rnd"
    if not out.exists():
        out.mkdir()
        compile_example(folder, out / "fg", plan=rnd_plan(folder / "plan.json", out / "plan.rnd.json"))
    project = load_project(out / "fg")
    design = Design("da4ml", f"dc=2,cutoff={cutoff:g}", [])
    build_da4ml(lambda: trace_da4ml(project.graph, 2), out / f"da4ml_{cutoff:g}", name, design, cutoff)
    return design, out / "plan.rnd.json"


def registered_wrapper(schedule: dict, top: str) -> str:
    """A module around ``top`` with a register on every input and output port."""
    ports = [("input", p) for p in schedule["inputs"]] + [("output", p) for p in schedule["outputs"]]
    decl = ",\n".join(f"    {d} logic [{p['size'] * p['width'] - 1}:0] {p['name']}" for d, p in ports)
    regs = "\n".join(f"    logic [{p['size'] * p['width'] - 1}:0] {p['name']}_q, {p['name']}_d;" for _, p in ports)
    conns = ", ".join(f".{p['name']}({p['name']}_q)" if d == "input" else f".{p['name']}({p['name']}_d)"
                      for d, p in ports)
    flops = "\n".join(f"        {p['name']}_q <= {p['name']};" if d == "input" else
                      f"        {p['name']}_q <= {p['name']}_d;" for d, p in ports)
    outs = "\n".join(f"    assign {p['name']} = {p['name']}_q;" for d, p in ports if d == "output")
    return f"""module {top}_reg (
    input  logic clk,
    input  logic rst,
{decl}
);
{regs}
    {top} u_model (.clk, .rst, {conns});
    always_ff @(posedge clk) begin
{flops}
    end
{outs}
endmodule
"""


def ecp5_rows(clocks: list[float], work: Path) -> list[dict]:
    rows = []
    for name, folder in ECP5_EXAMPLES.items():
        for clock in clocks:
            out = work / f"{name}_{clock:g}"
            schedule = compile_example(folder, out, "--board", "ulx3s", "--clock-ns", str(clock))
            top = next(p.stem for p in (out / "rtl").glob("*.sv"))
            wrapper = out / "registered_ports.sv"
            wrapper.write_text(registered_wrapper(schedule, top))
            result, seconds = place([*rtl_sources(out / "rtl", top), wrapper], f"{top}_reg", clock)
            placed = round(1000 / result.fmax_mhz, 3)
            timing = schedule["timing"]
            rows.append({"example": name, "clock_ns": clock, "latency_cycles": schedule["latency_cycles"],
                         "predicted_ns": timing["critical_ns"], "predicted_layer": timing["critical_layer"],
                         "nextpnr_ns": placed, "fmax_mhz": result.fmax_mhz, "met": result.fmax_mhz >= 1000 / clock,
                         "error_ns": round(timing["critical_ns"] - placed, 3), "path": result.path,
                         "lut4": result.lut4, "ccu2c": result.ccu2c, "ff": result.ff, "seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def ecp5_versus_da4ml(work: Path, clock: float, cutoff: float) -> list[dict]:
    """per_weight_bits's RND variant on the ECP5-85F: finegrain at ``clock`` and da4ml at
    ``cutoff``, both placed out of context: cycles and nextpnr's Fmax side by side."""
    design, plan = da4ml_design(work, "per_weight_bits", cutoff)
    result, seconds = place([Path(p) for p in design.result["sources"]], "per_weight_bits", clock)
    rows = [{"tool": "da4ml", "config": design.config, "latency_cycles": design.result["latency_cycles"],
             "fmax_mhz": result.fmax_mhz, "lut4": result.lut4, "ccu2c": result.ccu2c, "ff": result.ff,
             "seconds": seconds}]
    out = work / f"per_weight_bits_rnd_{clock:g}"
    schedule = compile_example(ECP5_EXAMPLES["per_weight_bits"], out, "--board", "ulx3s", "--clock-ns", str(clock),
                               plan=plan)
    top = next(p.stem for p in (out / "rtl").glob("*.sv"))
    wrapper = out / "registered_ports.sv"
    wrapper.write_text(registered_wrapper(schedule, top))
    result, seconds = place([*rtl_sources(out / "rtl", top), wrapper], f"{top}_reg", clock)
    rows.append({"tool": "finegrain", "config": f"--board ulx3s --clock-ns {clock:g}",
                 "latency_cycles": schedule["latency_cycles"] + 2,  # its registered ports, as da4ml's
                 "predicted_ns": schedule["timing"]["critical_ns"], "fmax_mhz": result.fmax_mhz, "lut4": result.lut4,
                 "ccu2c": result.ccu2c, "ff": result.ff, "seconds": seconds})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def jet_rows(work: Path) -> list[dict]:
    rows = []
    for cutoff in (4.0, 5.0):
        design, plan = da4ml_design(work, "jet_tagger", cutoff)
        rows.append({"tool": "da4ml", "config": design.config, "stages": design.result["stages"],
                     "latency_cycles": design.result["latency_cycles"]})
    schedule = compile_example(JET, work / "jet_finegrain", "--clock-ns", "5", plan=plan)
    rows.append({"tool": "finegrain", "config": "default, 5 ns (xcup model)",
                 "latency_cycles": schedule["latency_cycles"], "predicted_ns": schedule["timing"]["critical_ns"],
                 "layers": [layer["latency_cycles"] for layer in schedule["layers"]]})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the rows here (with --only: merged into an existing file)")
    ap.add_argument("--ecp5-clocks", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    ap.add_argument("--versus-clock", type=float, default=10.0, help="finegrain's clock against da4ml on the ECP5")
    ap.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS), help="run these parts alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fg_timing_") as tmp:
        work = Path(tmp)
        result = {part: PARTS[part](args, work) for part in args.only}
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.exists() and args.only != list(PARTS) else {}
        args.json.write_text(json.dumps({**merged, **result}, indent=1) + "\n")


PARTS = {  # part: its rows from the command line's options, in a work folder
    "jet_tagger": lambda args, work: jet_rows(work),
    "ecp5_versus_da4ml": lambda args, work: ecp5_versus_da4ml(work, args.versus_clock, 5.0),
    "ecp5": lambda args, work: ecp5_rows(args.ecp5_clocks, work),
}


if __name__ == "__main__":
    main()
