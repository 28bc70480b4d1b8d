"""RTL backend: the final IR -> one fully parallel, pipelined SystemVerilog top (II = 1).

The backend decides nothing numeric: every element of every tensor is a wire exactly as wide
as its own format (``tensor.formats``, per element; pruned elements are the constant 0 and
get no wire), and values change only where the IR says so (REQUANTIZE through
``rtl/fg_requantize.sv``, with each element's own parameters).  Everything else is exact
integer arithmetic.  A sum whose exact result fits ``W`` bits is computed modulo ``2**W``
(two's complement wrap-around cancels), so every term and adder is at most as wide as the
result it feeds (the terms of one sum share one width, the widest term's capped at the
sum's, as fg_adder_tree adds N values of one width).  Templates in templates/rtl/ lay out
the context this package builds (builder.py; its elementwise stages in elementwise.py); the
expressions themselves come from the small emitter (emitter.py, :class:`_Module`), the one
place that knows Verilog bit slicing.

Ports: ``clk``, ``rst`` (synchronous, active high, clears the valid pipeline only),
``in_valid``, one packed port per model input (element ``i`` at ``[i*W +: W]``, ``W`` the
tensor's container width from :func:`compiler.backends.hls_types.container`, mantissa at the
container's fraction: what csim's tb_data holds), ``out_valid``, one packed port per output.

Constant multiplication rule.  A product ``x * c`` by a weight mantissa ``c`` (trailing zero
bits of ``c`` become part of the shift to the accumulator's fraction) is
* nothing when ``c == 0`` (the term is dropped from the sum),
* a shift (and a negation) when ``|c|`` is a power of two,
* canonical signed digit (CSD) shift-and-add when ``c`` has at most ``csd_max_digits``
  (BuildConfig ``rtl_csd_max_digits``, default 3: at most two adders) non-zero CSD digits
  and ``width(x) + bits(|c|) + 1 <= dsp_min_width`` (``rtl_dsp_min_width``, default 28),
* else a plain ``*`` (a DSP or a LUT multiplier, the synthesis tool's choice).

Sums (DENSE, CONV, AVGPOOL): by default (``adder_graph``) one shared adder graph per layer
pattern (compiler/adder_graph.py: every constant in CSD digits, two-term common subexpressions
shared across the layer's outputs, each node as wide as its exact range; with ``ternary_chain``,
the default of a compiled project, a two-term adder read once folded into its reader, an
``fg_add3`` of three terms), rendered by adders.py with its own pipelining rule (there);
``--no-adder-graph`` (``adder_graph=False``) builds the
per-output structure below: products by the constant multiplication rule, each output an
``fg_adder_tree``.

Pipelining by timing (the schedule, also written to ``OUT/rtl/schedule.json``).  The part's
family has a delay model (compiler/timing.py: ECP5 fitted on nextpnr runs, Xilinx from cell
delays and stated assumptions), and registers go where a stage would otherwise exceed
``--clock-ns``: an adder graph's nodes each get a cycle and an arrival time (adders.py), then
the fewest register bits at that latency (retime.py, HiGHS); the layer's requantize and
activation follow its sums in their last cycle when they fit, else after a register, and a
requantize too slow for one stage is split into its rounding and its saturation.  The
fixed-depth trees (``--no-adder-graph``'s ``fg_adder_tree`` per output, the MAXPOOL and SOFTMAX
``fg_reduce_tree`` max and sum trees, the folded and stream cores) take as many levels per stage
as the model fits in a clock (``RTLOptions.levels``), registered at their end; elements with
shallower trees are delayed (``fg_pipe``) to the deepest tree of their layer.  A layer whose
readers all start with an adder graph or an elementwise stage hands its values over within a
cycle (fusion.py): it ends without a register, its readers start in the cycle its values arrive
in, at their arrival, and put registers where their own stages would not fit; every other layer
(fused node), and every layer by levels, ends in one register.  Layers that only move values
(reshape, transpose, concat) are wires and take no cycle.  A tensor's ready cycle is its
layer's start (the latest ready cycle of its inputs; earlier inputs are delayed) plus the
layer's latency, and the model's latency is the latest output's ready cycle.  schedule.json
records each layer's latency and predicted critical path, and ``timing``: the family, its
model's source, the worst stage's path and layer, and whether it meets the clock.
``levels_per_stage`` given (BuildConfig ``rtl_levels_per_stage``) keeps the fixed rule instead:
that many adder levels per stage.

Exact moves across stages (fusion.py, by timing and by levels): a ReLU read only by a
saturating requantize into unsigned formats is left out (the saturation clamps the negative
values to the same 0), and RND, RND_MIN_INF and CEIL after a layer's adder graphs become a
constant in each sum (their rounding is a floor after adding it) and a truncation.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np

from ...ir import Graph, Op
from ...resources import data_folder
from .options import (RTL_MAX_TABLE_BITS, SUPPORTED, WIRING, RTLBackendError, RTLOptions,
                      rtl_top_name)

# The builders are imported when first used (module __getattr__ below, and inside the functions):
# `import compiler.backends.rtl` for its errors, options and checks (every compile, an HLS-only
# one too) loads no builder, adder graph or stream model.
_LAZY = {"Elem": "emitter", "Fmt": "emitter", "csd": "emitter", "signed_width": "emitter",
         **{name: "interface" for name in ("INTERFACES", "PORT_FIELDS", "axis_context", "axis_top_name",
                                           "schedule", "stream_schedule")},
         "stream_context": "stream"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["INTERFACES", "LIBRARY", "PORT_FIELDS", "RTL_MAX_TABLE_BITS", "SUPPORTED", "TEMPLATES",
           "WIRING", "Elem", "Fmt", "RTLBackendError", "RTLOptions", "axis_context", "axis_top_name",
           "check_supported", "csd", "library_modules", "parallel_products", "primitive_models",
           "rtl_context", "rtl_sources", "rtl_top_name",
           "schedule", "signed_width", "stream_context", "stream_schedule", "write_rtl_project"]

TEMPLATES = data_folder("templates", "rtl")
LIBRARY = data_folder("rtl")


def rtl_context(graph: Graph, options: RTLOptions, source: dict, reuse: dict | None = None) -> dict:
    """The context of the RTL top ``options.architecture`` names; ``reuse``: layer (IR node)
    name -> reuse factor, for the stream architecture."""
    if options.architecture == "stream":
        from .stream import stream_context
        return stream_context(graph, options, source, reuse)
    from .builder import _Builder
    return _Builder(graph, options, source).build()


def check_supported(graph: Graph) -> None:
    """Raise RTLBackendError naming the first node the RTL backend cannot build."""
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op not in SUPPORTED:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {stage.op.value} yet; "
                                      f"compile with --backend hls")
            if stage.op == Op.SOFTMAX and len(graph.tensor(stage.inputs[0]).shape) != 1:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend supports softmax over a vector only; "
                                      f"compile with --backend hls")
            tables = {Op.TABLE: [("table", f"{stage.attrs.get('function')}_input")],
                      Op.SOFTMAX: [("exp_table", "exp_input"), ("inv_table", "inv_bits")]}.get(stage.op, [])
            for attr, key in tables:
                bits = stage.attrs[attr].input.width
                if bits > RTL_MAX_TABLE_BITS:
                    raise RTLBackendError(
                        f"node {node.name!r}: its look-up table has 2**{bits} entries (plan 'tables' setting "
                        f"{key!r}: {bits} bits); the RTL backend writes tables of at most 2**{RTL_MAX_TABLE_BITS} "
                        f"entries, one line each; use at most {RTL_MAX_TABLE_BITS} bits there, "
                        f"or compile with --backend hls")


def parallel_products(graph: Graph) -> int:
    """Constant products a fully parallel build of the graph has (an upper bound: every weight
    position of every output element, zeros included); a measure of the RTL's size."""
    total = 0
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op in (Op.DENSE, Op.CONV):
                w = graph.tensor(stage.inputs[1])
                out = graph.tensor(stage.outputs[0])
                per_output = int(np.prod(w.shape[1:]))
                total += int(np.prod(out.shape)) * per_output
    return total


def write_rtl_project(graph: Graph, options: RTLOptions, out_dir: Path, source: dict,
                      context: dict | None = None) -> dict:
    """Render OUT/rtl/<model>.sv, with ``options.interface == "axis"`` also
    OUT/rtl/<model>_axis.sv, and schedule.json; returns the core's context (``context``: the
    one :func:`rtl_context` built already for these arguments, as compile does to find any
    RTLBackendError before it writes a folder)."""
    from ..hls import template_environment
    from .folded import render_folded_core
    from .interface import axis_context, schedule, stream_schedule

    if context is None:
        check_supported(graph)
        context = rtl_context(graph, options, source)
    env = template_environment(TEMPLATES)
    out_dir.mkdir(parents=True, exist_ok=True)
    if context.get("architecture") == "stream":
        for core in context["cores"]:  # one module per file, named after it (lint's rule)
            text = render_folded_core(core) if core.get("folded") else env.get_template("model.sv.j2").render(**core)
            (out_dir / f"{core['model']}.sv").write_text(text)
        (out_dir / f"{context['model']}.sv").write_text(env.get_template("stream.sv.j2").render(**context))
        (out_dir / "schedule.json").write_text(json.dumps(stream_schedule(context), indent=2) + "\n")
        return context
    axis = axis_context(context) if options.interface == "axis" else None
    (out_dir / f"{context['model']}.sv").write_text(env.get_template("model.sv.j2").render(**context))
    if axis:
        (out_dir / f"{axis['top']}.sv").write_text(env.get_template("axis.sv.j2").render(**axis))
    (out_dir / "schedule.json").write_text(json.dumps(schedule(context, axis), indent=2) + "\n")
    return context


def rtl_sources(rtl_dir: Path, model: str, axis: bool = False, simulation: bool = False,
                primitives: bool = False) -> list[Path]:
    """The generated top (with ``axis``: and its AXI4-Stream top; a stream top: and its engines'
    cores, <model>_<layer>.sv) and the library modules.  With ``simulation``: the library
    modules that have a simulation model (rtl/sim/<module>.sv: fg_add3's, a sum instead of
    Xilinx primitives) are read from it; with ``primitives`` too: the modules themselves, and
    the models of the Xilinx primitives they instantiate (rtl/xilinx/; synthesis has its own)."""
    from .interface import axis_top_name

    axis_file = rtl_dir / f"{axis_top_name(model)}.sv"
    cores = [p for p in sorted(rtl_dir.glob(f"{model}_*.sv")) if p != axis_file]
    tops = [rtl_dir / f"{model}.sv", *cores, *([axis_file] if axis else [])]
    library = library_modules(tops)
    if not simulation:
        return [*library, *tops]
    if primitives:
        return [*primitive_models(library), *library, *tops]
    return [LIBRARY / "sim" / p.name if (LIBRARY / "sim" / p.name).is_file() else p for p in library] + tops


def primitive_models(files: list[Path]) -> list[Path]:
    """Simulation models (rtl/xilinx/<primitive>.v) of the Xilinx primitives ``files`` name."""
    models = {p.stem: p for p in (LIBRARY / "xilinx").glob("*.v")}
    text = "\n".join(f.read_text() for f in files if f.is_file())
    return [p for name, p in sorted(models.items()) if re.search(rf"\b{name}\b", text)]


def library_modules(files: list[Path]) -> list[Path]:
    """The library modules (rtl/*.sv) ``files`` instantiate, directly or through each other,
    in name order: a simulation or synthesis (and its cache key) depends on those only, not on
    library modules added for other designs."""
    library = {p.stem: p for p in LIBRARY.glob("*.sv")}
    word = re.compile(r"\b(" + "|".join(map(re.escape, sorted(library))) + r")\b")
    needed: set[str] = set()
    todo = [f for f in files if f.is_file()]
    while todo:
        for name in word.findall(todo.pop().read_text()):
            if name not in needed:
                needed.add(name)
                todo.append(library[name])
    return [library[name] for name in sorted(needed)]
