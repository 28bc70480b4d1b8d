"""Benchmark (run by hand): finegrain's RTL against da4ml 0.6 on identical quantized networks (issue 14).

    .venv/bin/python bench/adder_graph.py [--work DIR] [--examples jet_tagger per_weight_bits]
        [--configs old two-term default slack0 slack2] [--da4ml dc=-1,cutoff=4 dc=2,cutoff=4 dc=2,cutoff=5]
        [--layers] [--vectors 1000] [--no-synth] [--synth-timeout 3600] [--json FILE]

For each example (a model and its plan), in one run:

1. the plan with every RND_CONV made RND (same widths; da4ml rounds TRN or RND only), written
   to WORK/<example>/plan.rnd.json (per-element ``file.npz:KEY`` references made absolute);
2. ``finegrain compile MODEL --plan plan.rnd.json --backend rtl ARGS`` for each finegrain
   configuration (``--configs``: a name of CONFIGS, or ``NAME=ARGS`` for any other command
   line; an option the checkout lacks fails the run, it is never skipped), in a child process:
   wall time, report.json's ``compile_seconds``, schedule.json's latency;
3. the same network in da4ml's tracing API, from the compiled IR (`compiler.load_project`):
   the input as a FixedVariableArray of the input's per-element formats, each dense layer as
   ``x @ W.T + b`` with the IR's exact weight and bias mantissas (da4ml's CMVM solver, its
   default options but the delay constraint ``hard_dc``), relu, and each requantize as da4ml's
   quantize to the IR tensor's per-element (k, i, f), rounding and overflow; ``comb_trace`` and
   ``RTLModel(..., latency_cutoff=C)`` write its Verilog, once per ``--da4ml dc=D,cutoff=C``;
4. like-for-like proof: on ``--vectors`` random input mantissas (uniform over each element's
   range, plus every element at its minimum and at its maximum) and the example's data.npz
   samples (quantized by the input format), da4ml's bit-exact interpreter (CombLogic.predict,
   and the pipeline it writes, stage by stage) equals finegrain's emulator bit for bit, else
   the run stops;
5. yosys synth_xilinx (``compiler.verify.synth.run_synth``: the flow and cache of
   ``finegrain report --synth``), family xcup, of each finegrain top and of da4ml's pipelined
   top: LUT, FF, CARRY, DSP;
6. with ``--layers``, the same for each dense layer's product and bias alone (an ONNX model cut
   from the layer's input to its Gemm output, the plan's entries for its tensors; da4ml's trace
   of the same, its first setting): where the two tools' constant matrix products differ.

Latency in clock cycles from the input port to the output register: finegrain's
schedule.json; da4ml's pipeline registers its input and every stage's output, so N stages take
N + 1 cycles (both are reported).  Units: da4ml is traced with HWConfig(1, -1, -1), where each
adder costs one latency unit, so ``cutoff=4`` puts a register after about every 4 adder
levels, as finegrain's default (5 ns clock, 4 adder levels per pipeline stage).

Prints the machine, its load and two markdown tables for bench/RESULTS.md (paste by hand): the
designs, and the constant matrix products alone per layer (finegrain's adders from the RTL's cost
notes, da4ml's from each dense layer traced alone): adders, result bits and each tool's own count
of the bits that need a carry.  Without syntheses (``--no-synth``) about a minute; each jet tagger
synthesis takes 2.5 to 4 minutes (cached by the RTL's contents).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compiler import load_project  # noqa: E402
from compiler.fixed import Overflow, Rounding  # noqa: E402
from compiler.ir import Op  # noqa: E402

FINEGRAIN = [sys.executable, "-m", "compiler.cli"]
FAMILY = "xcup"
EXAMPLES = {"jet_tagger": REPO / "examples" / "jet_tagger", "per_weight_bits": REPO / "examples" / "per_weight_bits"}
# finegrain configurations by name: the command-line options of `finegrain compile`
CONFIGS = {
    "old": ["--no-adder-graph"],  # one fg_adder_tree per output (the structure before issue 14)
    "two-term": ["--no-ternary-adders"],  # adder graphs of two-term adders only (the default before fg_add3)
    "default": [],  # three-term adders (rtl/fg_add3.sv) where a two-term adder is read once
    "slack0": ["--adder-slack", "0"],
    "slack2": ["--adder-slack", "2"],
}
# da4ml settings: the first as finegrain's pipelining (4 adder levels per stage) with the solver's
# own default (no delay constraint); the second with the delay constraint of da4ml's command line
# (`da4ml convert`: --delay-constraint 2), the third with both its defaults (and --latency-cutoff 5)
DA4ML_CONFIGS = ["dc=-1,cutoff=4", "dc=2,cutoff=4", "dc=2,cutoff=5"]
DA4ML_ROUNDING = {Rounding.TRN: "TRN", Rounding.RND: "RND"}
DA4ML_OVERFLOW = {Overflow.WRAP: "WRAP", Overflow.SAT: "SAT", Overflow.SAT_SYM: "SAT_SYM"}


class BenchError(Exception):
    """The benchmark cannot compare like for like (the message says why)."""


@dataclass
class Design:
    """One RTL design of one example: a finegrain configuration or da4ml."""

    tool: str  # "finegrain" or "da4ml"
    config: str
    args: list[str]
    result: dict = field(default_factory=dict)


# --- 1. the plan variant ----------------------------------------------------------------------

def rnd_plan(plan_path: Path, out: Path) -> Path:
    """The plan with RND_CONV -> RND everywhere (same widths), ``file.npz:KEY`` made absolute."""
    base = plan_path.parent

    def convert(obj, key=None):
        if isinstance(obj, dict):
            return {k: convert(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [convert(v) for v in obj]
        if isinstance(obj, str):
            if key in ("elements", "indices") and ":" in obj and not Path(obj.rsplit(":", 1)[0]).is_absolute():
                file_part, name = obj.rsplit(":", 1)
                return f"{(base / file_part).resolve()}:{name}"
            return obj.replace("RND_CONV", "RND")
        return obj

    plan = convert(json.loads(plan_path.read_text()))
    if "_note" in plan:
        plan["_note"] = f"{plan_path.name} with RND_CONV -> RND (bench/adder_graph.py). " + plan["_note"]
    out.write_text(json.dumps(plan, indent=1) + "\n")
    return out


# --- 2. finegrain -------------------------------------------------------------------------------

def parse_configs(specs: list[str]) -> list[tuple[str, list[str]]]:
    configs = []
    for spec in specs:
        if "=" in spec:
            name, args = spec.split("=", 1)
            configs.append((name, shlex.split(args)))
        elif spec in CONFIGS:
            configs.append((spec, CONFIGS[spec]))
        else:
            raise BenchError(f"unknown configuration {spec!r}: one of {', '.join(CONFIGS)} or NAME='ARGS'")
    return configs


def parse_da4ml(specs: list[str]) -> list[tuple[int, float]]:
    settings = []
    for spec in specs:
        try:
            fields = dict(part.split("=", 1) for part in spec.split(","))
            settings.append((int(fields.pop("dc")), float(fields.pop("cutoff"))))
        except (ValueError, KeyError):
            fields = {"?": spec}
        if fields:
            raise BenchError(f"da4ml setting {spec!r}: expected dc=D,cutoff=C (e.g. dc=-1,cutoff=4)")
    return settings


def compile_finegrain(model: Path, plan: Path, out: Path, design: Design, env: dict) -> None:
    cmd = [*FINEGRAIN, "compile", str(model), "--plan", str(plan), "--backend", "rtl", *design.args,
           "-o", str(out), "--force"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-4:])
        raise BenchError(f"finegrain compile ({design.config}: {' '.join(design.args) or 'no options'}) "
                         f"exit {done.returncode}: {tail}")
    report = json.loads((out / "report.json").read_text())
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    top = report["names"]["model"]["verilog"]
    from compiler.backends.rtl import rtl_sources

    done = subprocess.run([*FINEGRAIN, "report", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    estimate = json.loads((out / "report.json").read_text()).get("estimate") or {} if not done.returncode else {}
    design.result.update(out=str(out), top=top, compile_wall=wall, compile_seconds=report["compile_seconds"],
                         latency_cycles=schedule["latency_cycles"], clock_ns=schedule.get("clock_ns"),
                         levels_per_stage=schedule.get("levels_per_stage"),
                         estimate_lut=estimate.get("lut"), estimate_ff=estimate.get("ff"),
                         sources=[str(s) for s in rtl_sources(out / "rtl", top)])


# --- 3. da4ml -----------------------------------------------------------------------------------

def _kif(formats, index) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without the sign, fraction bits) of one element."""
    width, int_bits, signed = int(formats.width[index]), int(formats.int_bits[index]), bool(formats.signed[index])
    if width == 0:
        return 0, 0, 0
    return int(signed), int_bits - int(signed), width - int_bits


def _quantize(array, tensor):
    """da4ml's quantize of every element into ``tensor``'s own format, rounding and overflow."""
    from da4ml.trace import FixedVariableArray

    f = tensor.formats
    out = np.empty(array.shape, dtype=object)
    for index in np.ndindex(*array.shape):
        rounding, overflow = Rounding(int(f.rounding[index])), Overflow(int(f.overflow[index]))
        if rounding not in DA4ML_ROUNDING or overflow not in DA4ML_OVERFLOW:
            raise BenchError(f"tensor {tensor.name!r} element {index}: da4ml has no {rounding.name}/{overflow.name}; "
                             f"it rounds TRN or RND and wraps or saturates")
        k, i, fr = _kif(f, index)
        out[index] = array[index].quantize(k, i, fr, DA4ML_OVERFLOW[overflow], DA4ML_ROUNDING[rounding])
    return FixedVariableArray(out, array.solver_options, hwconf=array.hwconf)


def _constant(tensor) -> np.ndarray:
    """A constant's exact values (dyadic: exact in float32 for the widths here, checked)."""
    values = np.ldexp(tensor.data.astype(np.float64), -tensor.data_frac)
    if not np.array_equal(values.astype(np.float32).astype(np.float64), values):
        raise BenchError(f"constant {tensor.name!r} is not exact in float32 (da4ml's CMVM kernel type)")
    return values


def _input_array(tensor, hard_dc: int):
    """A FixedVariableArray of ``tensor``'s per-element formats (da4ml's default HWConfig: one
    latency unit per adder)."""
    from da4ml.trace import FixedVariableArray, HWConfig

    k, i, f = (np.zeros(tensor.shape, dtype=np.int64) for _ in range(3))
    for index in np.ndindex(*tensor.shape):
        k[index], i[index], f[index] = _kif(tensor.formats, index)
    return FixedVariableArray.from_kif(k, i, f, hwconf=HWConfig(1, -1, -1), solver_options={"hard_dc": hard_dc})


def trace_da4ml(graph, hard_dc: int):
    """The graph traced in da4ml: (input FixedVariableArray, output FixedVariableArray)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BenchError("the bench traces models of one input and one output")
    x = graph.tensor(graph.inputs[0])
    inp = _input_array(x, hard_dc)
    values = {x.name: inp}
    for node in graph.nodes:
        for stage in node.stages():
            a = values[stage.inputs[0]]
            out = graph.tensor(stage.outputs[0])
            if stage.op == Op.DENSE:
                y = a @ _constant(graph.tensor(stage.inputs[1])).T
                if len(stage.inputs) > 2:
                    y = y + _constant(graph.tensor(stage.inputs[2]))
            elif stage.op == Op.RELU:
                y = a.relu()
            elif stage.op == Op.REQUANTIZE:
                y = _quantize(a, out)
            elif stage.op in (Op.RESHAPE,):
                y = a.reshape(out.shape)
            else:
                raise BenchError(f"node {stage.name!r}: the bench has no da4ml form of {stage.op.value}")
            values[out.name] = y
    return inp, values[graph.outputs[0]]


def build_da4ml(trace, out: Path, name: str, design: Design, cutoff: float):
    """``trace()`` -> (input array, output array); its pipelined Verilog written to ``out``."""
    from da4ml.codegen import RTLModel
    from da4ml.trace import comb_trace, to_pipeline

    start = time.perf_counter()
    comb = comb_trace(*trace())
    traced = time.perf_counter()
    pipe = to_pipeline(comb, cutoff, verbose=False)  # what RTLModel(comb, latency_cutoff=cutoff) does
    RTLModel(pipe, name, out, flavor="verilog", latency_cutoff=cutoff, clock_period=5.0).write()
    done = time.perf_counter()
    stages = len(pipe.solutions)
    src = out / "src"
    sources = sorted(p for p in src.glob("*.v") if p.name != f"{name}_wrapper.v")
    sources += _used_modules(sources, sorted(src.glob("static/*.v")))
    design.result.update(out=str(out), top=name, compile_seconds=done - start, trace_solve_seconds=traced - start,
                         stages=stages, latency_cycles=stages + 1, cutoff=cutoff,
                         estimate_lut=round(comb.cost), estimate_ff=int(pipe.reg_bits),
                         comb_depth=float(max(comb.out_latency)), sources=[str(s) for s in sources])
    return comb, pipe


def _used_modules(tops: list[Path], library: list[Path]) -> list[Path]:
    """The library files (one module each, named as the file) ``tops`` instantiate, directly or
    through each other: yosys reads every file it is given, and lookup_table.v's $readmemh of a
    placeholder file stops it."""
    by_name = {p.stem: p for p in library}
    word = re.compile(r"\b(" + "|".join(map(re.escape, by_name)) + r")\b")
    needed: set[str] = set()
    todo = list(tops)
    while todo:
        for name in set(word.findall(todo.pop().read_text())) - needed:
            needed.add(name)
            todo.append(by_name[name])
    return [by_name[n] for n in sorted(needed)]


# --- 4. like-for-like proof ---------------------------------------------------------------------

def input_vectors(graph, n: int, folder: Path, seed: int = 14) -> np.ndarray:
    """Float values of the input's grid: ``n`` random mantissas, each element at its least and
    greatest value, and data.npz's samples rounded by the input format (the emulator's own)."""
    from compiler.emulate import quantize_inputs

    x = graph.tensor(graph.inputs[0])
    f = x.formats
    frac = f.width - f.int_bits
    lo = np.where(f.signed, -(2 ** (f.width - 1)), 0)
    hi = np.where(f.signed, 2 ** (f.width - 1) - 1, 2 ** f.width - 1)
    rng = np.random.default_rng(seed)
    mantissas = [rng.integers(lo, hi + 1, size=(n, *x.shape)), lo[np.newaxis], hi[np.newaxis]]
    vectors = [np.ldexp(m.astype(np.float64), -frac) for m in mantissas]
    data = folder / "data.npz"
    if not data.is_file() and (folder.parent / "jet_tagger" / "data.npz").is_file():
        data = folder.parent / "jet_tagger" / "data.npz"  # per_weight_bits' test set is the jet tagger's
    if data.is_file():
        with np.load(data) as npz:
            samples = np.asarray(npz["x"], dtype=np.float64)
        if samples.shape[1:] == x.shape:  # the model's input, not a later layer's
            vectors.append(quantize_inputs(graph, samples)[x.name].to_float())
    return np.concatenate(vectors).reshape(-1, *x.shape)


def prove_equal(project, comb, pipe, vectors: np.ndarray) -> dict:
    """da4ml's interpreter (the combinational logic and the pipeline it writes) == finegrain's
    emulator, bit for bit, on every vector; raises BenchError with the first difference."""
    expected = project.emulate(vectors).reshape(len(vectors), -1)
    flat = vectors.reshape(len(vectors), -1)
    got = comb.predict(flat, n_threads=1)
    staged = flat
    for stage in pipe.solutions:
        staged = stage.predict(staged, n_threads=1)
    for what, values in (("CombLogic.predict", got), ("the pipeline, stage by stage", staged)):
        bad = np.argwhere(values != expected)
        if len(bad):
            v, o = bad[0]
            raise BenchError(f"da4ml ({what}) differs from finegrain's emulator on {len(bad)} outputs; first: "
                             f"vector {v} output {o}: da4ml {values[v, o]!r}, finegrain {expected[v, o]!r}")
    return {"vectors": len(vectors), "outputs_compared": int(expected.size), "bit_exact": True}


# --- the constant matrix products alone, layer by layer ----------------------------------------

def finegrain_adders(project) -> list[tuple | None]:
    """Per layer of the RTL top: (adders, their result bits, those bits less the low bits that
    only copy an operand), from the cost notes of compiler.estimate and each three-term adder's
    parameters (fg_add3: W bits, LO of them copies); None for a layer with fg_adder_tree
    instances (the old structure: its adders are inside the library module)."""
    from compiler.backends.rtl import rtl_context

    context = rtl_context(project.graph, project.config.rtl_options(), project.source())
    layers = []
    for layer in context["layers"]:
        if any(item.get("module") == "fg_adder_tree" for item in layer["items"]):
            layers.append(None)
            continue
        adders = [a for item in layer["items"] for a in (item.get("cost") or {}).get("adders", ())]
        for item in layer["items"]:
            if item.get("module") == "fg_add3":
                p = {q["name"]: q["value"] for q in item["params"]}
                adders.append((p["W"], p["LO"]))
        layers.append((len(adders), sum(w for w, _ in adders), sum(w - c for w, c in adders)))
    return layers


def products_alone(graph, node, hard_dc: int):
    """da4ml's trace of one dense layer's product and bias add, without its activation, from its
    input at the input's full formats: (input array, output array)."""
    if node.op != Op.DENSE:
        raise BenchError(f"node {node.name!r}: the per-layer comparison covers dense layers only")
    inp = _input_array(graph.tensor(node.inputs[0]), hard_dc)
    y = inp @ _constant(graph.tensor(node.inputs[1])).T
    if len(node.inputs) > 2:
        y = y + _constant(graph.tensor(node.inputs[2]))
    return inp, y


def layer_models(model: Path, plan: Path, graph, out: Path) -> list[tuple[str, Path, Path]]:
    """Per dense layer: (name, an ONNX model of the layer's product and bias alone, from its input
    to its Gemm output (onnx.utils.extract_model), the plan's entries for that model's tensors)."""
    import onnx
    import onnx.utils

    entries = json.loads(plan.read_text())
    layers = []
    for node in graph.nodes:
        if node.op != Op.DENSE:
            raise BenchError(f"node {node.name!r}: the per-layer comparison covers dense layers only")
        source, accumulator = graph.tensor(node.inputs[0]), graph.tensor(node.accumulator)
        name = node.name.strip("/").replace("/", "_")
        path = out / f"{name}.onnx"
        onnx.utils.extract_model(str(model), str(path), [source.onnx_name or source.name],
                                 [accumulator.onnx_name or accumulator.name])
        g = onnx.load(str(path)).graph
        names = {t.name for t in [*g.initializer, *g.input]} | {o for n in g.node for o in n.output}
        layer_plan = {**entries, "tensors": {k: v for k, v in entries["tensors"].items() if k in names}}
        (out / f"{name}.plan.json").write_text(json.dumps(layer_plan, indent=1) + "\n")
        layers.append((name, path, out / f"{name}.plan.json"))
    return layers


def da4ml_adders(graph, hard_dc: int) -> list[tuple]:
    """Per dense layer traced alone (its input at its full formats, the product and the bias
    add, no activation): (adders, their result bits, da4ml's cost: the bits above the coarser
    operand's lsb)."""
    from da4ml.trace import comb_trace
    from da4ml.types import minimal_kif

    layers = []
    for node in graph.nodes:
        comb = comb_trace(*products_alone(graph, node, hard_dc))
        adds = [op for op in comb.ops if op.opcode in (0, 1, 4)]  # add, subtract, add a constant
        layers.append((len(adds), sum(sum(minimal_kif(op.qint)) for op in adds), round(comb.cost)))
    return layers


def breakdown_table(example: str, names: list[str], finegrain: dict[str, list], da4ml: list[tuple]) -> list[str]:
    """Rows of one example: per layer, each adder-graph configuration's adders / result bits /
    carry bits (result bits less copied low bits, compiler.estimate's rule) and da4ml's adders /
    result bits / cost (its rule: the bits above the coarser operand's lsb); configurations with
    fg_adder_tree layers are left out."""
    graphs = {name: layers for name, layers in finegrain.items() if all(layers)}
    rows = [*zip(names, *graphs.values(), da4ml)]
    total = ("total", *[tuple(map(sum, zip(*layers))) for layers in graphs.values()], tuple(map(sum, zip(*da4ml))))
    lines = []
    for name, *fg, da in [*rows, total]:
        cells = [f"{a:,} / {b:,} / {c:,}" for a, b, c in fg + [da]]
        lines.append(f"| {example} | {name} | " + " | ".join(cells) + " |")
    header = [f"| example | layer | {' | '.join(f'finegrain {n}: adders / bits / carry bits' for n in graphs)} "
              f"| da4ml: adders / bits / cost |", "|---|---|" + "---|" * (len(graphs) + 1)]
    return header + lines


# --- 5. synthesis -------------------------------------------------------------------------------

def synthesize(design: Design, timeout: float) -> None:
    from compiler.verify.synth import SynthError, run_synth

    start = time.perf_counter()
    try:
        result = run_synth([Path(s) for s in design.result["sources"]], design.result["top"], FAMILY,
                           timeout=timeout)
    except SynthError as err:
        design.result["synth"] = {"error": str(err)[-600:], "wall": time.perf_counter() - start}
        return
    design.result["synth"] = {**result.report(), "cached": result.cached, "wall": time.perf_counter() - start}


# --- the table ----------------------------------------------------------------------------------

def table(results: dict[str, list[Design]]) -> str:
    lines = ["| example | design | options | yosys LUT | yosys FF | CARRY | DSP | latency (cycles) | LUT / da4ml "
             "| FF / da4ml | est. LUT | est. FF | compile s | yosys s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for example, designs in results.items():
        ref = next((d.result.get("synth") for d in designs if d.tool == "da4ml"), None) or {}
        for d in designs:
            r, s = d.result, d.result.get("synth") or {}
            options = " ".join(d.args) if d.tool == "finegrain" else d.config.replace(",", " ")
            stages = r.get("stages")
            latency = f"{r['latency_cycles']}" + (f" ({stages} stage{'s' * (stages != 1)})" if stages else "")
            if "lut" in s:
                cells = [f"{s['lut']:,}", f"{s['ff']:,}", f"{s['carry']:,}", f"{s['dsp']}"]
                ratios = [f"{s[k] / ref[k]:.2f}" if ref.get(k) else "-" for k in ("lut", "ff")]
                secs = f"{s['seconds']:.0f}" + (" (cached)" if s["cached"] else "")
            else:
                cells, ratios, secs = [s.get("error", "not run")] + [""] * 3, ["-", "-"], "-"
            est = [f"{r[k]:,}" if r.get(k) is not None else "-" for k in ("estimate_lut", "estimate_ff")]
            lines.append(f"| {example} | {d.tool} {d.config} | `{options or 'none'}` | " + " | ".join(cells)
                         + f" | {latency} | " + " | ".join(ratios + est) + f" | {r['compile_seconds']:.2f} | {secs} |")
    return "\n".join(lines)


def measure_example(example: str, out: Path, configs: list, da4ml_settings: list, args, env: dict):
    """One example compiled in every finegrain configuration and da4ml setting, da4ml checked
    against the emulator: (its designs, its rows of the products' breakdown, with ``args.layers``
    its layers' designs by "example layer")."""
    folder = EXAMPLES[example]
    out.mkdir(exist_ok=True)
    plan = rnd_plan(folder / "plan.json", out / "plan.rnd.json")
    designs = [Design("finegrain", name, cfg) for name, cfg in configs]
    for d in designs:
        compile_finegrain(folder / "model.onnx", plan, out / f"fg_{d.config}", d, env)
        print(f"{example} finegrain {d.config}: {d.result['latency_cycles']} cycles, "
              f"compile {d.result['compile_wall']:.1f} s", flush=True)
    # the options change the RTL only: one IR, the one da4ml is given
    irs = {d.config: (Path(d.result["out"]) / "ir.txt").read_text() for d in designs}
    if len(set(irs.values())) > 1:
        raise BenchError(f"{example}: the configurations {', '.join(irs)} compiled to different IRs")
    project = load_project(designs[0].result["out"])
    vectors = input_vectors(project.graph, args.vectors, folder)
    for hard_dc, cutoff in da4ml_settings:
        da = Design("da4ml", f"dc={hard_dc},cutoff={cutoff:g}", [])
        comb, pipe = build_da4ml(partial(trace_da4ml, project.graph, hard_dc),
                                 out / f"da4ml_dc{hard_dc}_c{cutoff:g}", example, da, cutoff)
        da.result["check"] = prove_equal(project, comb, pipe, vectors)
        print(f"{example} da4ml {da.config}: {da.result['stages']} stages, estimate {da.result['estimate_lut']:,} "
              f"LUT, {da.result['compile_seconds']:.1f} s; bit-exact on {len(vectors)} vectors", flush=True)
        designs.append(da)
    reference = da4ml_adders(project.graph, da4ml_settings[0][0])
    finegrain = {d.config: finegrain_adders(load_project(d.result["out"])) for d in designs[:len(configs)]}
    if any(len(layers) != len(reference) for layers in finegrain.values()):
        raise BenchError(f"{example}: the RTL layers are not the {len(reference)} dense layers")
    lines = breakdown_table(example, [n.name for n in project.graph.nodes], finegrain, reference)
    layers = {}
    if args.layers:
        (out / "layers").mkdir(exist_ok=True)
        hard_dc, cutoff = da4ml_settings[0]
        for name, model, layer_plan in layer_models(folder / "model.onnx", plan, project.graph, out / "layers"):
            ds = [Design("finegrain", cfg, a) for cfg, a in configs]
            for d in ds:
                compile_finegrain(model, layer_plan, out / "layers" / f"fg_{name}_{d.config}", d, env)
            layer = load_project(ds[0].result["out"])
            da = Design("da4ml", f"dc={hard_dc},cutoff={cutoff:g}", [])
            comb, pipe = build_da4ml(partial(products_alone, layer.graph, layer.graph.nodes[0], hard_dc),
                                     out / "layers" / f"da4ml_{name}", name, da, cutoff)
            da.result["check"] = prove_equal(layer, comb, pipe, input_vectors(layer.graph, args.vectors, folder))
            layers[f"{example} {name}"] = [*ds, da]
        print(f"{example}: {len(layers)} layers alone compiled, da4ml bit-exact", flush=True)
    return designs, lines, layers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the outputs (default: a temporary one)")
    parser.add_argument("--examples", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS),
                        help=f"finegrain configurations: {', '.join(f'{k} ({v})' for k, v in CONFIGS.items())}, "
                             f"or NAME='ARGS' (default: all of them)")
    parser.add_argument("--da4ml", nargs="+", default=DA4ML_CONFIGS, metavar="dc=D,cutoff=C",
                        help="da4ml settings: CMVM delay constraint hard_dc (-1: none, the solver's default) and "
                             "RTLModel latency_cutoff in adder levels per stage; the first is the ratios' reference "
                             f"(default: {' '.join(DA4ML_CONFIGS)})")
    parser.add_argument("--layers", action="store_true",
                        help="also each dense layer's product and bias alone: an ONNX model of the layer "
                             "(finegrain, every configuration) and its da4ml trace (the first setting), "
                             "checked and synthesized like the whole models")
    parser.add_argument("--vectors", type=int, default=1000, help="random input vectors of the bit-exact check")
    parser.add_argument("--no-synth", action="store_true", help="compile and check only")
    parser.add_argument("--synth-timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, help="write every measured number here")
    args = parser.parse_args()
    configs = parse_configs(args.configs)
    da4ml_settings = parse_da4ml(args.da4ml)
    work = args.work or Path(tempfile.mkdtemp(prefix="finegrain-bench-adder-graph-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "FINEGRAIN_SYNTH_CACHE"}
    env["PYTHONPATH"] = str(REPO)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import da4ml

    print(f"machine: {os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M')}; load at start "
          f"{os.getloadavg()[0]:.1f}; da4ml {da4ml.__version__}; work {work}", flush=True)
    results: dict[str, list[Design]] = {}
    breakdown: list[str] = []
    layer_results: dict[str, list[Design]] = {}
    for example in args.examples:  # compile and check everything before any synthesis
        results[example], lines, layers = measure_example(example, work / example, configs, da4ml_settings, args, env)
        breakdown += lines
        layer_results.update(layers)
    if not args.no_synth:
        for example, designs in [*results.items(), *layer_results.items()]:
            for d in designs:
                synthesize(d, args.synth_timeout)
                print(f"{example} {d.tool} {d.config} synthesis: {json.dumps(d.result['synth'])[:200]}; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}\n")
    print(table(results))
    print(f"\nThe constant matrix products alone (da4ml: {args.da4ml[0]}, each layer traced alone):\n")
    print("\n".join(breakdown[:2] + [line for line in breakdown if not line.startswith(("| example", "|---"))]))
    if layer_results:
        print("\nEach dense layer's product and bias alone (its Gemm output exact, no activation):\n")
        print(table(layer_results))
    if args.json:
        args.json.write_text(json.dumps({ex: [{"tool": d.tool, "config": d.config, "args": d.args, **d.result}
                                              for d in ds] for ex, ds in [*results.items(), *layer_results.items()]},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
