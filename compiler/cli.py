"""The `finegrain` command.  User errors print one paragraph and exit with code 2; anything
else is an internal error: one paragraph asking for a bug report, exit code 3 (the traceback
with FINEGRAIN_DEBUG=1).  SIGTERM is handled like Ctrl-C: exit code 130, outputs left whole.

Start-up: each command imports what it needs inside its handler (``emulate`` loads numpy and
the emulator, not onnx or jinja2; ``--help`` not even numpy), and numpy's OpenBLAS starts with
one thread unless OPENBLAS_NUM_THREADS says otherwise (see `_load_numpy`).
`python -X importtime -m compiler.cli CMD ...` shows what a command loads; tests/test_startup.py
keeps it so and bench/startup.py measures it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

from . import __version__
from .argnames import command_line
from .errors import UsageError, UserError, caused_by_interrupt, reraise_interrupt
from .output_folder import OutputFolderError, locked, write_whole
from .cli_plan import add_plan_parser
from .targets import BOARDS, DEFAULT_PART


def _cmd_compile(args) -> int:
    from .project import compile_model
    from .quant_report import summary_line

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
    data = None if args.data is None else (lambda graph: _read_inputs(args.data, graph, "--data"))
    project = compile_model(args.model, args.plan, output_dir=args.output, force=args.force, backends=backends,
                            protect=[p for p in (args.layer_config, args.data) if p],
                            board=args.board, part=args.part, clock_ns=args.clock_ns,
                            reuse_factor=args.reuse_factor, strategy=args.strategy, layers=layers,
                            rtl_interface=args.rtl_interface, architecture=args.arch, data=data, data_name=args.data,
                            rescale_bits=args.rescale_bits, target_ii=args.target_ii, max_lut=args.max_lut,
                            max_dsp=args.max_dsp, rtl_adder_graph=args.adder_graph,
                            rtl_adder_slack=args.adder_slack, rtl_ternary_adders=args.ternary_adders)
    for message in project.warnings:
        _say("warning", message)
    if project.folding is not None:
        print(project.folding.text())
    quantized = summary_line(project.quantization())
    if quantized:
        print(quantized)
    layers = len(project.graph.nodes)
    print(f"compiled {args.model} ({layers} layers) in {project.compile_seconds:.2f} s, wrote {args.output} "
          f"({', '.join(project.config.backends) or 'IR only'}) in {time.perf_counter() - start:.2f} s")
    return 0


def _load_array_file(path: str, what: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {path!r} does not exist")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any failure to read is the user's file
        reraise_interrupt(err)
        raise UserError(f"cannot read {what} file {path!r} as .npy/.npz: {err}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data


def _cmd_emulate(args) -> int:
    import numpy as np

    from .calibrate import clipping_warnings, emulate_counting
    from .emulate import EmulationError
    from .project import load_project, model_units

    project = load_project(args.out)
    # the file numpy writes: .npy for one output, .npz for several, added when missing
    suffix = ".npy" if len(project.graph.outputs) == 1 else ".npz"
    _check_file_output(Path(args.output), "--output", overwrite=True)
    out = _numpy_name(Path(args.output), suffix)
    _check_file_output(out, "--output", overwrite=True)
    if out.resolve() == Path(args.input).resolve():
        raise UsageError(f"--output {args.output!r} would overwrite the input file {args.input!r}; choose another "
                         f"file for the outputs")
    x = _read_inputs(args.input, project.graph)
    try:
        outputs, clippings = emulate_counting(project.graph, x, project.plan)
    except (EmulationError, ValueError) as err:
        raise UserError(f"cannot emulate {args.out!r} on {args.input!r}: {err}") from None
    for message in clipping_warnings(clippings):
        _say("warning", message)
    floats = {name: model_units(project.graph, name, fx.to_float()) for name, fx in outputs.items()}
    for name, fx in outputs.items():
        if fx.m.size and max(abs(int(v)) for v in np.asarray(fx.m).ravel()[:1 << 16]).bit_length() > 53:
            _say("warning", f"output {name!r} has mantissas wider than 53 bits: float64 rounds them")
    if len(floats) == 1:
        write_whole(out, lambda f: np.save(f, next(iter(floats.values()))))
    else:
        write_whole(out, lambda f: np.savez(f, **floats))
    n = next(iter(floats.values())).shape[0]
    print(f"emulated {n} samples -> {out}")
    return 0


def _numpy_name(out: Path, suffix: str) -> Path:
    """``out`` with ``suffix`` added when missing, as np.save and np.savez name their files."""
    return out if out.name.endswith(suffix) else out.with_name(out.name + suffix)


def _check_file_output(out: Path, option: str, overwrite: bool) -> None:
    """A file the command writes: its folder exists, and it is not a folder itself."""
    parent = out.parent
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a folder"
        raise UsageError(f"{option} {str(out)!r}: its folder {str(parent)!r} {what}; create it first or choose "
                         f"another {option}")
    if out.is_dir():
        raise UsageError(f"{option} {str(out)!r} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise UsageError(f"{option} {str(out)!r} exists; pass --force to overwrite it")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {str(out)!r}: the folder {str(parent)!r} is not writable")


def _read_inputs(path: str, graph, what: str = "input") -> dict:
    """The user's input file, checked against the model (`compiler.inputs.check_inputs`).
    ``what`` names the file in messages (``--data``)."""
    from .inputs import check_inputs

    return check_inputs(_load_array_file(path, what), graph, f"{what} file {path!r}",
                        several="an .npz keyed by input name")


def _cmd_plan_template(args) -> int:
    from .plan_template import plan_template

    out = Path(args.output)
    _check_file_output(out, "-o", overwrite=args.force)
    if Path(args.model).exists() and out.resolve() == Path(args.model).resolve():
        raise UsageError(f"-o {args.output!r} is the model itself; choose another file for the plan")
    template = plan_template(args.model)
    write_whole(out, lambda f: f.write((json.dumps(template, indent=2) + "\n").encode()))
    print(f"wrote a plan skeleton with {len(template['tensors'])} tensors -> {args.output}")
    return 0


def _cmd_calibrate(args) -> int:
    from .calibrate import CalibrationOptions, calibrate
    from .plan import load_plan

    out = Path(args.output)
    _check_file_output(out, "-o", overwrite=args.force)
    for option, given in (("the model", args.model), ("the --data file", args.data), ("the --plan file", args.plan)):
        if given and Path(given).exists() and out.resolve() == Path(given).resolve():
            raise UsageError(f"-o {args.output!r} is {option}; choose another file for the plan")
    options = CalibrationOptions(bits=args.bits, weight_bits=args.weight_bits, bias_bits=args.bias_bits,
                                 margin=args.margin, per_channel=args.per_channel)
    partial = load_plan(args.plan) if args.plan else None
    plan, warnings = calibrate(args.model, lambda graph: _read_inputs(args.data, graph, "--data"), options,
                               partial, out, data_name=args.data)
    for message in warnings:
        _say("warning", message)
    write_whole(out, lambda f: f.write((json.dumps(plan, indent=2) + "\n").encode()))
    record = plan["_calibration"]
    verdict = "see the warnings" if warnings else "compiled with it, nothing clips on the data"
    print(f"calibrated {len(plan['tensors'])} tensors on {record['samples']} samples of {args.data} "
          f"({len(record['kept_from_partial_plan'])} kept from --plan; {verdict}) -> {args.output}")
    return 0


def _cmd_inspect(args) -> int:
    from .inspect_model import format_inspection, inspect_model

    report = inspect_model(args.model)
    print(json.dumps(report, indent=2) if args.json else format_inspection(report))
    return 0


def _cmd_report(args) -> int:
    from .project import load_project
    from .project_verify import estimate_or_note
    from .report_html import write_report_html
    from .report_json import update_report
    from .verify.synth import synthesize_build

    out = Path(args.out)
    path = out / "report.json"
    project = load_project(out)  # checks the stamp and report.json
    _formatted_report(path)  # before anything is added to it
    with locked(out):  # it writes report.json and report.html
        estimate, note = estimate_or_note(project, out)
        if estimate is not None:
            update_report(out, "estimate", estimate)
        if args.synth:
            if estimate is None or not (out / "rtl" / "schedule.json").is_file():
                raise UserError(f"{args.out!r} has no RTL to synthesize: compile it with --backend rtl (or hls,rtl)")
            update_report(out, "synth", synthesize_build(out, estimate, progress=True))
        print(_formatted_report(path))
        if note:
            print(note)
        page = write_report_html(out, project)
    print(f"wrote {page}")
    return 0


def _formatted_report(path: Path) -> str:
    from .report_text import format_report

    try:
        return format_report(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise OutputFolderError(f"report {str(path)!r} is damaged (not a finegrain report); compile the folder "
                                f"again") from None


def _simulation_inputs(args, graph) -> dict:
    """The vectors for csim/sim: the user's file, or random ones plus the extremes."""
    from .inputs import random_vectors

    return _read_inputs(args.input, graph) if args.input else random_vectors(graph, args.vectors, args.seed)


def _cmd_csim(args) -> int:
    from .backends.hls import top_name
    from .project import load_project
    from .report_json import update_report
    from .inputs import check_seed
    from .verify.csim import run_csim

    check_seed(args.seed)
    project = load_project(args.out)
    hls_dir = Path(args.out) / "hls"
    if not (hls_dir / "firmware").is_dir():
        raise UserError(f"{args.out!r} has no HLS project: compile it with --backend hls")
    inputs = _simulation_inputs(args, project.graph)
    with locked(Path(args.out)):  # it writes hls/tb_data and report.json
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
    from .project import load_project
    from .report_json import update_report
    from .inputs import check_seed
    from .verify.rtlsim import check_schedule, run_rtl_sim

    check_seed(args.seed)
    project = load_project(args.out)
    rtl_dir = Path(args.out) / "rtl"
    if not (rtl_dir / "schedule.json").is_file():
        raise UserError(f"{args.out!r} has no RTL: compile it with --backend rtl (or hls,rtl)")
    check_schedule(rtl_dir / "schedule.json", project.graph)
    inputs = _simulation_inputs(args, project.graph)
    with locked(Path(args.out)):  # it writes rtl/sim and report.json
        result = run_rtl_sim(project.graph, rtl_dir, rtl_top_name(project.graph), inputs, gaps=args.gaps,
                             waves=args.waves, seed=args.seed, simulator=args.simulator, stall=args.stall,
                             primitives=args.primitives)
        update_report(args.out, "sim", result.report())
    verdict = "bit-exact" if result.mismatches == 0 else f"{result.mismatches} MISMATCHES"
    print(f"sim {args.out}: {result.vectors} vectors, {verdict}; {result.timing()} "
          f"(build {result.build_seconds:.1f} s, run {result.run_seconds:.2f} s)")
    if result.waves:
        print(f"  waves: {result.waves}")
    for line in result.first_mismatches:
        print(f"  {line}")
    if result.mismatches == 0 and not result.timing_ok:
        print(f"  latency/II differ from schedule.json (latency {result.predicted_latency}, "
              f"II {result.predicted_ii})")
    return 0 if result.mismatches == 0 and result.timing_ok else 1


def _cmd_build(args) -> int:
    from .board import build_board
    from .inputs import check_seed

    check_seed(args.seed)
    result = build_board(args.out, args.board, clock_ns=args.clock_ns, vectors=args.vectors, seed=args.seed)
    for message in result.warnings:
        _say("warning", message)
    print("\n".join(result.lines))
    return 1 if args.require_timing and not result.met else 0


def _say(kind: str, message: str) -> None:
    text = textwrap.fill(message, width=100, initial_indent=f"{kind}: ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)
    print(text, file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """Bad command lines are user errors too: one paragraph, exit code 2, from `main`."""

    def error(self, message):
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _simulation_options(parser: argparse.ArgumentParser, out_help: str, seed_help: str) -> None:
    """What csim and sim both take: the folder, and the vectors to compare on."""
    parser.add_argument("out", help=out_help)
    parser.add_argument("--vectors", type=int, default=1000,
                        help="random vectors, besides the extreme ones (default 1000)")
    parser.add_argument("--input", help="use these inputs instead (.npy, or .npz keyed by input name)")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="finegrain",
                     description="Compile finely quantized networks to FPGA hardware.")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="ONNX + bit plan -> output folder (IR, resolved plan, report)")
    c.add_argument("model", help="ONNX model file")
    c.add_argument("--plan", help="bit plan (JSON), see docs/bit-plan.md; optional for a quantized model "
                                  "(QONNX, QDQ), whose quantizers are its plan: entries here override them")
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
    c.add_argument("--strategy", default="latency", choices=("latency", "resource", "adder-graph"),
                   help="HLS: latency: weights in fabric, fully unrolled; resource: weights in BRAM; adder-graph: "
                        "each dense/conv/avgpool layer's sums written out as a shared adder graph, one statement "
                        "per adder (reuse factor 1, --arch parallel)")
    c.add_argument("--layer-config", help='JSON: {"LAYER": {"reuse_factor": N, "strategy": "..."}} per layer')
    c.add_argument("--data", help="inputs (.npy, or .npz keyed by input name, batch first): count the values that "
                                  "saturate or wrap on them (warnings, report.json 'saturation')")
    c.add_argument("--arch", default="auto", metavar="{auto,parallel,stream}",
                   help="parallel: every layer computes all its outputs at once (II 1 per inference); stream: "
                        "layers are engines joined by valid/ready pixel streams, convolutions over line buffers, "
                        "in both backends; auto (default): parallel up to 50000 constant products, else stream")
    c.add_argument("--no-adder-graph", dest="adder_graph", action="store_false",
                   help="RTL: sum each output in its own adder tree over its constant products, instead of one "
                        "adder graph per layer sharing common subexpressions of the constants across outputs")
    c.add_argument("--no-ternary-adders", dest="ternary_adders", action="store_false",
                   help="RTL adder graphs: two-term adders only.  By default a two-term adder read by one other "
                        "adder is folded into it as a three-term adder (rtl/fg_add3.sv: LUT6_2 + the part's carry "
                        "chain, one LUT per bit for three terms as for two), in the same pipeline")
    c.add_argument("--adder-slack", type=int, default=None, metavar="LEVELS",
                   help="adder graphs (RTL; HLS --strategy adder-graph): at most this many adder levels beyond each "
                        "layer's least depth (more: fewer adders, deeper sums; default: RTL within the pipeline "
                        "stages of per-output trees, HLS unbounded)")
    c.add_argument("--rtl-interface", default="ports", metavar="{ports,axis}",
                   help="ports: the RTL top <model> with in_valid/out_valid and packed ports; axis: also "
                        "<model>_axis, an AXI4-Stream top around it with back-pressure (one input and one "
                        "output tensor; default ports)")
    c.add_argument("--rescale-bits", type=int, default=32,
                   help="widest integer multiplier of a quantized model's rescales between scales that are not "
                        "powers of two (default 32); each is the narrowest proven exact, else this wide "
                        "(docs/import.md)")
    c.add_argument("--target-ii", type=int, metavar="CYCLES",
                   help="stream architecture: choose each layer's reuse factor for the least estimated area that "
                        "takes at most CYCLES cycles per image (within --max-lut, --max-dsp and the part)")
    c.add_argument("--max-lut", type=int, metavar="N", help="stream architecture: at most N LUTs (estimated); "
                   "without --target-ii, the fastest folding that fits")
    c.add_argument("--max-dsp", type=int, metavar="N", help="stream architecture: at most N DSPs (estimated); "
                   "without --target-ii, the fastest folding that fits")
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

    k = sub.add_parser("calibrate", help="measure a model's values on data and write a complete bit plan "
                                         "(docs/calibration.md)")
    k.add_argument("model", help="ONNX model file")
    k.add_argument("--data", required=True, help=".npy (one input) or .npz (keyed by input name), batch first")
    k.add_argument("--plan", help="a partial plan whose entries are kept as written")
    k.add_argument("-o", "--output", required=True, help="plan file to write")
    k.add_argument("--bits", type=int, default=8, help="width of inputs and activations (default 8)")
    k.add_argument("--weight-bits", type=int, default=8, help="width of weights (default 8)")
    k.add_argument("--bias-bits", type=int, default=16, help="width of biases (default 16)")
    k.add_argument("--margin", type=int, default=1,
                   help="integer bits of headroom above the measured range of inputs and activations (default 1: "
                        "twice the range)")
    k.add_argument("--per-channel", action="store_true",
                   help="one format per output channel for Gemm/MatMul/Conv weights and biases")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.set_defaults(func=_cmd_calibrate)

    add_plan_parser(sub)

    i = sub.add_parser("inspect", help="list a quantized model's quantizers (QONNX, QDQ) and what each becomes "
                                       "in fixed point, and the tensors that need a plan entry")
    i.add_argument("model", help="ONNX model file")
    i.add_argument("--json", action="store_true", help="print the same as JSON")
    i.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("csim", help="build the HLS C++ with g++ and compare every output bit with the emulator")
    _simulation_options(s, "output folder of 'finegrain compile'", "seed of the random vectors")
    s.set_defaults(func=_cmd_csim)

    m = sub.add_parser("sim", help="simulate the generated RTL (Verilator + cocotb) against the emulator")
    _simulation_options(m, "output folder of 'finegrain compile' (with the rtl backend)",
                        "seed of the random vectors and gaps")
    m.add_argument("--waves", action="store_true", help="write an FST waveform (OUT/rtl/sim/run/*.fst)")
    m.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="Verilator (default) or Icarus Verilog, a much slower fallback (iverilog 11+)")
    m.add_argument("--gaps", action="store_true",
                   help="random gaps in the inputs' valid instead of back-to-back vectors")
    m.add_argument("--primitives", action="store_true",
                   help="simulate three-term adders as built, from LUT6_2 and CARRY8/CARRY4 (models in rtl/xilinx/), "
                        "instead of their equivalent sum (rtl/sim/fg_add3.sv); slower to build")
    m.add_argument("--stall", action="store_true",
                   help="a stream top (--arch stream): hold the outputs' ready low in 30%% of the cycles, at "
                        "random, in runs up to longer than the FIFOs absorb")
    m.set_defaults(func=_cmd_sim)

    b = sub.add_parser("build", help="place and route a compiled folder for a board: a self-checking top with the "
                                     "model's test vectors and the board's pins, and its bitstream (OUT/build)")
    b.add_argument("out", help="output folder of 'finegrain compile --board NAME' (the rtl backend, --arch parallel)")
    b.add_argument("--board", help="ulx3s or orangecrab (yosys, nextpnr, ecppack), or a Xilinx preset (Vivado out "
                                   "of context, when on PATH); default: the board the folder was compiled for")
    b.add_argument("--clock-ns", type=float, help="clock period place and route aims for (default: the compile's)")
    b.add_argument("--vectors", type=int, default=59,
                   help="random vectors in the board top's ROMs, besides the 5 extreme ones (default 59)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random vectors (as finegrain sim's)")
    b.add_argument("--require-timing", action="store_true",
                   help="exit 1 when place and route misses --clock-ns (default: a warning; the bitstream is "
                        "written either way)")
    b.set_defaults(func=_cmd_build)

    r = sub.add_parser("report", help="per-layer types, widths and resource estimate of a compiled output folder; "
                                      "writes OUT/report.html")
    r.add_argument("out", help="output folder of 'finegrain compile'")
    r.add_argument("--synth", action="store_true",
                   help="also synthesize OUT/rtl with yosys synth_xilinx (synth_ecp5 for ECP5 parts; cached) and "
                        "compare with the estimate")
    r.set_defaults(func=_cmd_report)
    return parser


def main(argv=None) -> int:
    try:
        with _sigterm_as_interrupt(), command_line():  # messages name the flags, not Python's arguments
            args = build_parser().parse_args(argv)
            _load_numpy()
            return args.func(args)
    except UserError as err:
        _say("error", str(err))
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:  # `finegrain inspect MODEL | head`: the reader stopped listening
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - the last resort: never a raw traceback
        if caused_by_interrupt(err):  # e.g. an interrupted import, raised as ImportError
            return _interrupted()
        if os.environ.get("FINEGRAIN_DEBUG") == "1":
            traceback.print_exc()
        _say("internal error", f"finegrain {__version__} failed unexpectedly ({type(err).__name__}: {err}). This "
                               f"is a bug in finegrain, not in your input: please report it to the finegrain "
                               f"project with the command line and, if you can, the model and plan "
                               f"(FINEGRAIN_DEBUG=1 prints the traceback)")
        return 3


def _interrupted() -> int:
    _ignore_interrupts()
    _say("error", "interrupted (SIGINT or SIGTERM); an output folder being written is left as it was, or complete")
    return 130


def _load_numpy() -> None:
    """Import numpy with OpenBLAS on one thread, unless the user set OPENBLAS_NUM_THREADS.

    OpenBLAS starts its thread pool when numpy loads, which costs about 50 ms of every command
    on two cores, and the emulator's BLAS products (exact float64 sums of small integer
    matrices) ran twice as fast on one thread on the jet tagger (bench/RESULTS.md).  The
    variable is set only while numpy loads: the tools a command starts (g++, Verilator, a
    sweep's training processes) get the user's environment."""
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def _ignore_interrupts() -> None:
    """Once a command is interrupted it only reports and exits 130: a further SIGINT or SIGTERM
    (or a KeyboardInterrupt still pending from the first) must not end it with a traceback or
    by the signal instead.  tests/test_output_folder.py saw that in a suite run under load
    (SIGTERM sent once; the message printed, then the process died of SIGINT)."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt, so it cleans up as Ctrl-C does (main thread only)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
