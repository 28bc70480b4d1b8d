"""The `finegrain` command.  User errors print one paragraph and exit with code 2."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from .errors import UserError
from .targets import BOARDS, DEFAULT_PART


def _cmd_compile(args) -> int:
    from .project import compile_model

    layers = {}
    if args.layer_config:
        path = Path(args.layer_config)
        if not path.is_file():
            raise UserError(f"layer configuration {args.layer_config!r} does not exist")
        try:
            layers = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"layer configuration {args.layer_config!r} is not valid JSON: {err}") from None
    backends = None if args.backend is None else tuple(b.strip() for b in args.backend.split(",") if b.strip())
    start = time.perf_counter()
    project = compile_model(args.model, args.plan, output_dir=args.output, force=args.force, backends=backends,
                            board=args.board, part=args.part, clock_ns=args.clock_ns,
                            reuse_factor=args.reuse_factor, strategy=args.strategy, layers=layers,
                            rtl_interface=args.rtl_interface)
    for message in project.warnings:
        _say("warning", message)
    layers = len(project.graph.nodes)
    print(f"compiled {args.model} ({layers} layers) in {project.compile_seconds:.2f} s, wrote {args.output} "
          f"({', '.join(project.config.backends) or 'IR only'}) in {time.perf_counter() - start:.2f} s")
    return 0


def _load_array_file(path: str, what: str):
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {path!r} does not exist")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any failure to read is the user's file
        raise UserError(f"cannot read {what} file {path!r} as .npy/.npz: {err}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data


def _cmd_emulate(args) -> int:
    from .emulate import EmulationError
    from .project import load_project

    project = load_project(args.out)
    x = _load_array_file(args.input, "input")
    if not isinstance(x, dict) and not np.issubdtype(x.dtype, np.number):
        raise UserError(f"input file {args.input!r} holds {x.dtype} values; expected numbers")
    try:
        outputs = project.emulate_exact(x)
    except (EmulationError, ValueError) as err:
        raise UserError(f"cannot emulate {args.out!r} on {args.input!r}: {err}") from None
    floats = {name: fx.to_float() for name, fx in outputs.items()}
    for name, fx in outputs.items():
        if fx.m.size and max(abs(int(v)) for v in np.asarray(fx.m).ravel()[:1 << 16]).bit_length() > 53:
            _say("warning", f"output {name!r} has mantissas wider than 53 bits: float64 rounds them")
    out = Path(args.output)
    if len(floats) == 1:
        np.save(out, next(iter(floats.values())))
    else:
        np.savez(out, **floats)
    n = next(iter(floats.values())).shape[0]
    print(f"emulated {n} samples -> {args.output}")
    return 0


def _cmd_plan_template(args) -> int:
    from .plan_template import plan_template

    template = plan_template(args.model)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise UserError(f"{args.output!r} exists; pass --force to overwrite it")
    out.write_text(json.dumps(template, indent=2) + "\n")
    print(f"wrote a plan skeleton with {len(template['tensors'])} tensors -> {args.output}")
    return 0


def _cmd_report(args) -> int:
    from .project import load_project, update_report
    from .report_html import write_report_html

    out = Path(args.out)
    path = out / "report.json"
    if not path.is_file():
        raise UserError(f"{args.out!r} has no report.json; run 'finegrain compile ... -o {args.out}' first")
    project = load_project(out)
    estimate, note = _estimate(out, project)
    if estimate is not None:
        update_report(out, "estimate", estimate)
    if args.synth:
        if estimate is None or not (out / "rtl" / "schedule.json").is_file():
            raise UserError(f"{args.out!r} has no RTL to synthesize: compile it with --backend rtl (or hls,rtl)")
        update_report(out, "synth", _synthesize(out, estimate))
    report = json.loads(path.read_text())
    print(format_report(report))
    if note:
        print(note)
    page = write_report_html(out, project)
    print(f"wrote {page}")
    return 0


def _estimate(out: Path, project) -> tuple[dict | None, str | None]:
    """The estimate of the fully parallel RTL architecture (whether or not OUT/rtl was
    written: a model too large for it still gets its size), or a note why there is none."""
    from .backends.rtl import RTLBackendError, check_supported, parallel_products, rtl_context
    from .estimate import estimate_context
    from .project import DEFAULT_RTL_MAX_PRODUCTS

    try:
        check_supported(project.graph)
    except RTLBackendError as e:
        return None, f"no resource estimate: {e}"
    products = parallel_products(project.graph)
    if not (out / "rtl").is_dir() and products > 4 * DEFAULT_RTL_MAX_PRODUCTS:
        return None, (f"no resource estimate: a fully parallel build of this model has {products:,} constant "
                      f"products, and the estimate describes that architecture (the RTL backend's only one); "
                      f"the HLS project's reuse factor is not modelled yet")
    context = rtl_context(project.graph, project.config.rtl_options(), project.source())
    return estimate_context(context, project.config.part), None


def _synthesize(out: Path, estimate: dict) -> dict:
    from .backends.rtl import rtl_sources
    from .verify.synth import run_synth

    top = estimate["top"]
    result = run_synth(rtl_sources(out / "rtl", top), top, estimate["family"], progress=sys.stderr.isatty())
    entry = result.report()
    entry["cached"] = result.cached
    entry["ratio"] = {k: (round(estimate[k] / entry[k], 3) if entry[k] else None) for k in ("lut", "ff", "dsp")}
    return entry


def format_report(report: dict) -> str:
    """The per-layer table printed by `finegrain report`."""
    rows = [("layer", "ops", "accumulator", "output", "weights")]
    for layer in report["layers"]:
        acc = next(iter(layer.get("accumulator", {}).values()), None)
        out = next(iter(layer["output"].values()))
        weights = [c for c in layer.get("constants", {}).values() if c["role"] == "weight"]
        wtext = ", ".join(f"{c['nonzero']}/{c['elements']} nz {c['type']}" for c in weights)
        rows.append((layer["name"], "+".join(layer["stages"]), acc["type"] if acc else "-", out["type"], wtext or "-"))
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(rows[0]))]
    lines = [f"model {report['model']}: {len(report['layers'])} layers, compiled in {report['compile_seconds']} s"]
    for r in rows:
        lines.append("  ".join(c[:48].ljust(w) for c, w in zip(r, widths)).rstrip())
    lines += _format_estimate(report)
    csim = report.get("csim")
    if csim:
        verdict = "bit-exact" if csim["mismatches"] == 0 else f"{csim['mismatches']} mismatches"
        lines.append(f"csim (g++): {csim['vectors']} vectors, {verdict}; build {csim['build_seconds']} s, "
                     f"run {csim['run_seconds']} s")
    sim = report.get("sim")
    if sim:
        verdict = "bit-exact" if sim["mismatches"] == 0 else f"{sim['mismatches']} mismatches"
        lines.append(f"sim (Verilator): {sim['vectors']} vectors, {verdict}; latency {sim['latency_cycles']} cycles, "
                     f"II {sim['ii_cycles']}; build {sim['build_seconds']} s, run {sim['run_seconds']} s")
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _format_estimate(report: dict) -> list[str]:
    est = report.get("estimate")
    if not est:
        return []
    synth = report.get("synth")
    keys = ("lut", "ff", "dsp", "bram")
    rows = [("layer", "LUT", "FF", "DSP", "BRAM", "products (built)", "start", "cycles")]
    for layer in est["layers"]:
        products = f"{layer['products']:,} ({layer['products_built']:,})" if layer.get("products") else "-"
        rows.append((layer["name"], *(f"{layer[k]:,}" for k in keys), products, str(layer["start_cycle"]),
                     str(layer["latency_cycles"])))
    rows.append(("total (estimate)", *(f"{est[k]:,}" for k in keys), "", "", str(est["latency_cycles"])))
    pct = est.get("percent") or {}
    if pct:
        rows.append((f"% of {est['part']}", *(f"{pct[k]:.2f}%" for k in keys), "", "", ""))
    if synth:
        rows.append((f"yosys synth_xilinx ({synth['family']})", *(f"{synth[k]:,}" for k in keys), "", "", ""))
        ratio = synth.get("ratio", {})
        ratios = (f"{ratio[k]:.2f}" if ratio.get(k) else "-" for k in ("lut", "ff", "dsp"))
        rows.append(("estimate / synthesis", *ratios, "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"resources ({est['architecture']}, clock {est['clock_ns']} ns, {est['family']}); latency "
             f"{est['latency_cycles']} cycles = {est['latency_cycles'] * est['clock_ns']:g} ns, II {est['ii_cycles']}"]
    for r in rows:
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip())
    if synth:
        origin = "cached result of a run of" if synth.get("cached") else "took"
        lines.append(f"synthesis {origin} {synth['seconds']} s ({synth['yosys_version']}); "
                     f"carry cells: estimate {est['carry']:,}, synthesis {synth['carry']:,}")
    return lines


def _simulation_inputs(args, graph) -> dict:
    """The vectors for csim/sim: the user's file, or random ones plus the extremes."""
    from .verify.vectors import csim_vectors

    if args.input:
        x = _load_array_file(args.input, "input")
        return x if isinstance(x, dict) else {graph.inputs[0]: x}
    if args.vectors < 0:
        raise UserError(f"--vectors must be >= 0, got {args.vectors}")
    return csim_vectors(graph, args.vectors, seed=args.seed)


def _cmd_csim(args) -> int:
    from .backends.hls import top_name
    from .project import load_project, update_report
    from .verify.csim import run_csim

    project = load_project(args.out)
    hls_dir = Path(args.out) / "hls"
    if not (hls_dir / "firmware").is_dir():
        raise UserError(f"{args.out!r} has no HLS project: compile it with --backend hls")
    inputs = _simulation_inputs(args, project.graph)
    result = run_csim(project.graph, hls_dir, top_name(project.graph), inputs)
    update_report(args.out, "csim", result.report())
    verdict = "bit-exact" if result.mismatches == 0 else f"{result.mismatches} MISMATCHES"
    print(f"csim {args.out}: {result.vectors} vectors, {verdict} (build {result.build_seconds:.1f} s, "
          f"run {result.run_seconds:.2f} s, {result.compiler})")
    for line in result.first_mismatches:
        print(f"  {line}")
    return 0 if result.mismatches == 0 else 1


def _cmd_sim(args) -> int:
    from .backends.rtl import rtl_top_name
    from .project import load_project, update_report
    from .verify.rtlsim import run_rtl_sim

    project = load_project(args.out)
    rtl_dir = Path(args.out) / "rtl"
    if not (rtl_dir / "schedule.json").is_file():
        raise UserError(f"{args.out!r} has no RTL: compile it with --backend rtl (or hls,rtl)")
    inputs = _simulation_inputs(args, project.graph)
    result = run_rtl_sim(project.graph, rtl_dir, rtl_top_name(project.graph), inputs, gaps=args.gaps,
                         waves=args.waves, seed=args.seed, simulator=args.simulator)
    update_report(args.out, "sim", result.report())
    verdict = "bit-exact" if result.mismatches == 0 else f"{result.mismatches} MISMATCHES"
    print(f"sim {args.out}: {result.vectors} vectors, {verdict}; latency {result.latency_cycles} cycles "
          f"(predicted {result.predicted_latency}), II {result.ii_cycles} (build {result.build_seconds:.1f} s, "
          f"run {result.run_seconds:.2f} s)")
    if result.waves:
        print(f"  waves: {result.waves}")
    for line in result.first_mismatches:
        print(f"  {line}")
    ok = result.mismatches == 0 and result.latency_cycles == result.predicted_latency and result.ii_cycles == 1
    if result.mismatches == 0 and not ok:
        print(f"  latency/II differ from schedule.json (latency {result.predicted_latency}, II 1)")
    return 0 if ok else 1


def _say(kind: str, message: str) -> None:
    text = textwrap.fill(message, width=100, initial_indent=f"{kind}: ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)
    print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finegrain",
                                     description="Compile finely quantized networks to FPGA hardware.")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="ONNX + bit plan -> output folder (IR, resolved plan, report)")
    c.add_argument("model", help="ONNX model file")
    c.add_argument("--plan", required=True, help="bit plan (JSON), see docs/bit-plan.md")
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    c.add_argument("--backend", default=None,
                   help="comma-separated backends to write: hls, rtl (default: hls,rtl; rtl is left out "
                        "with a warning when the model has an op it cannot build yet)")
    c.add_argument("--board", help="target board preset: " + ", ".join(BOARDS))
    c.add_argument("--part", help=f"target FPGA part (default {DEFAULT_PART})")
    c.add_argument("--clock-ns", type=float, default=5.0, help="target clock period in ns (default 5)")
    c.add_argument("--reuse-factor", type=int, default=1,
                   help="times each multiplier is reused; 1 = fully parallel, II 1 (default 1)")
    c.add_argument("--strategy", default="latency", choices=("latency", "resource"),
                   help="latency: weights in fabric, fully unrolled; resource: weights in BRAM")
    c.add_argument("--layer-config", help='JSON: {"LAYER": {"reuse_factor": N, "strategy": "..."}} per layer')
    c.add_argument("--rtl-interface", default="ports", metavar="{ports,axis}",
                   help="ports: the RTL top <model> with in_valid/out_valid and packed ports; axis: also "
                        "<model>_axis, an AXI4-Stream top around it with back-pressure (one input and one "
                        "output tensor; default ports)")
    c.set_defaults(func=_cmd_compile)

    e = sub.add_parser("emulate", help="run the bit-exact emulator on a compiled output folder")
    e.add_argument("out", help="output folder of 'finegrain compile'")
    e.add_argument("--input", required=True, help=".npy (one input) or .npz (keyed by input name), batch first")
    e.add_argument("--output", required=True, help=".npy for one output, .npz for several (float64)")
    e.set_defaults(func=_cmd_emulate)

    t = sub.add_parser("plan-template", help="write a plan skeleton naming every tensor of a model")
    t.add_argument("model", help="ONNX model file")
    t.add_argument("-o", "--output", required=True, help="plan file to write")
    t.add_argument("--force", action="store_true", help="overwrite an existing file")
    t.set_defaults(func=_cmd_plan_template)

    s = sub.add_parser("csim", help="build the HLS C++ with g++ and compare every output bit with the emulator")
    s.add_argument("out", help="output folder of 'finegrain compile'")
    s.add_argument("--vectors", type=int, default=1000, help="random vectors, besides the extreme ones (default 1000)")
    s.add_argument("--input", help="use these inputs instead (.npy, or .npz keyed by input name)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random vectors")
    s.set_defaults(func=_cmd_csim)

    m = sub.add_parser("sim", help="simulate the generated RTL (Verilator + cocotb) against the emulator")
    m.add_argument("out", help="output folder of 'finegrain compile' (with the rtl backend)")
    m.add_argument("--vectors", type=int, default=1000, help="random vectors, besides the extreme ones (default 1000)")
    m.add_argument("--input", help="use these inputs instead (.npy, or .npz keyed by input name)")
    m.add_argument("--seed", type=int, default=0, help="seed of the random vectors and gaps")
    m.add_argument("--waves", action="store_true", help="write an FST waveform (OUT/rtl/sim/run/*.fst)")
    m.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="Verilator (default) or Icarus Verilog, a much slower fallback (iverilog 11+)")
    m.add_argument("--gaps", action="store_true", help="random gaps in in_valid instead of back-to-back vectors")
    m.set_defaults(func=_cmd_sim)

    r = sub.add_parser("report", help="per-layer types, widths and resource estimate of a compiled output folder; "
                                      "writes OUT/report.html")
    r.add_argument("out", help="output folder of 'finegrain compile'")
    r.add_argument("--synth", action="store_true",
                   help="also synthesize OUT/rtl with yosys synth_xilinx (cached) and compare with the estimate")
    r.set_defaults(func=_cmd_report)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        _say("error", str(err))
        return 2


if __name__ == "__main__":
    sys.exit(main())
