"""Compile a model into a project, write its output folder, and load it back.

An output folder holds everything a later step (emulate, backends, reports) needs:

* ``ir.txt``             the final IR as text (diffable),
* ``ir.pkl``             the final IR itself, for `finegrain emulate` and the backends,
* ``plan.resolved.json`` what format every planned tensor got and where it came from,
* ``config.json``        every build option (a `BuildConfig`),
* ``report.json``        per-layer types and widths, and the plan's warnings.

and ``finegrain.json``, the stamp that says it is a finegrain output folder of a format version.
`compiler.output_folder` decides where it may be written and swaps it in whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .argnames import option
from .errors import UsageError, UserError
from .ir import Graph, Node, Op, Tensor, TensorKind, dump
from .names import meaningless_graph_name
from .output_folder import STAMP, OutputFolderError, claimed, read_json, read_stamp, stamp, write_folder
from .passes.choose_multipliers import MAX_MULTIPLIER_BITS, MAX_RESCALE_BITS
from .inputs import model_argument, plan_argument
from .plan import Plan, load_plan
from .project_verify import ProjectTools
from .targets import CARRY_CHAIN_BITS, DEFAULT_PART, family_of
from .type_names import readable_type, type_counts

# The backends (jinja2), the passes, the estimator and the frontend (onnx) are imported by the
# functions that use them: `load_project` (every command that reads an output folder, and
# unpickling ir.pkl, whose BuildConfig lives here) must stay as light as numpy and the IR.
if TYPE_CHECKING:
    from .backends.hls import HLSOptions
    from .backends.rtl import RTLOptions

OUTPUT_FILES = (STAMP, "ir.txt", "ir.pkl", "plan.resolved.json", "config.json", "report.json")
BACKENDS = ("hls", "rtl")
DEFAULT_TB_VECTORS = 100
# Above this many constant products a fully parallel RTL top is too big to write by default.
DEFAULT_RTL_MAX_PRODUCTS = 50_000
ARCHITECTURES = ("auto", "parallel", "stream")
# Limits of the build options: a clock period outside this range (10 GHz .. 100 kHz) is a typo, and
# a reuse factor is a C++ int template argument of the HLS kernels.
CLOCK_NS_RANGE = (0.1, 10_000.0)
MAX_REUSE_FACTOR = 2**31 - 1


@dataclass(frozen=True)
class BuildConfig:
    """Every option that shapes a build; saved as config.json beside the outputs."""

    model: str
    plan: str
    output_dir: str | None = None
    check_ir: bool = True  # verify the IR after every pass
    backends: tuple[str, ...] = ("hls", "rtl")
    part: str = DEFAULT_PART
    board: str | None = None
    clock_ns: float = 5.0
    reuse_factor: int = 1  # every layer, unless `layers` says otherwise
    strategy: str = "latency"
    layers: dict = field(default_factory=dict)  # layer name -> {"reuse_factor": N, "strategy": ...}
    rtl_levels_per_stage: int | None = None  # adder levels per register; None: by timing (compiler/timing.py)
    rtl_csd_max_digits: int = 3  # constant products with more non-zero CSD digits use `*`
    rtl_dsp_min_width: int = 28  # products wider than this use `*`
    rtl_adder_graph: bool = True  # each layer's sums as one shared adder graph (compiler/adder_graph.py);
    # False: every output its own fg_adder_tree over its products
    rtl_adder_slack: int | None = None  # the graph's adder levels: a layer's least depth + this; None:
    # within the pipeline stages of the per-output trees
    rtl_ternary_adders: bool = True  # adder graphs with three-term adders (rtl/fg_add3.sv: LUT6_2 + the part's
    # carry chain, one LUT per bit for three terms as for two); False: two-term adders only
    rtl_interface: str = "ports"  # "axis": also OUT/rtl/<model>_axis.sv, an AXI4-Stream top around <model>
    architecture: str = "auto"  # "parallel": every output at once; "stream": layers as a pipeline of engines over
    # pixel streams (both backends); "auto": parallel up to DEFAULT_RTL_MAX_PRODUCTS constant products, else stream
    rescale_bits: int = MAX_MULTIPLIER_BITS  # widest rescale multiplier of a quantized model (choose_multipliers)
    # a budget the stream architecture's per-layer folding is chosen from (compiler/budget.py)
    target_ii: int | None = None  # cycles per image at most, at the least area
    max_lut: int | None = None  # else: the fastest that fits these (and always the part)
    max_dsp: int | None = None
    finegrain_version: str = __version__

    def __post_init__(self):
        unknown = set(self.backends) - set(BACKENDS)
        if unknown:
            raise UserError(f"unknown backend(s) {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
        lo, hi = CLOCK_NS_RANGE
        if not (isinstance(self.clock_ns, (int, float)) and math.isfinite(self.clock_ns) and lo <= self.clock_ns <= hi):
            raise UserError(f"the clock period ({option('clock_ns')}) must be a positive, finite number of ns "
                            f"from {lo} to {hi}, got {self.clock_ns!r}")
        if not isinstance(self.reuse_factor, int) or not 1 <= self.reuse_factor <= MAX_REUSE_FACTOR:
            raise UserError(f"the reuse factor ({option('reuse_factor')}) must be a positive integer of at most "
                            f"{MAX_REUSE_FACTOR:,} (1 = fully parallel), got {self.reuse_factor!r}")
        hls = self.hls_options()  # validates reuse factors and strategies
        for name, arch in hls.layers.items():
            if arch.reuse_factor > MAX_REUSE_FACTOR:
                raise UserError(f"layer configuration: layer {name!r} has reuse_factor {arch.reuse_factor}, more "
                                f"than the {MAX_REUSE_FACTOR:,} the HLS project can hold (a C++ int)")
        for name in ("rtl_csd_max_digits", "rtl_dsp_min_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UserError(f"{name} must be a non-negative integer, got {value!r}")
        slack = self.rtl_adder_slack
        if slack is not None and (not isinstance(slack, int) or isinstance(slack, bool) or slack < 0):
            raise UserError(f"the adder slack ({option('rtl_adder_slack')}) must be a non-negative integer of "
                            f"adder levels, got {slack!r}")
        if not isinstance(self.rtl_adder_graph, bool):
            raise UserError(f"rtl_adder_graph must be true or false, got {self.rtl_adder_graph!r}")
        if not isinstance(self.rtl_ternary_adders, bool):
            raise UserError(f"rtl_ternary_adders must be true or false, got {self.rtl_ternary_adders!r}")
        lps = self.rtl_levels_per_stage
        if lps is not None and (not isinstance(lps, int) or lps < 1):
            raise UserError(f"rtl_levels_per_stage must be a positive integer, got {lps!r}")
        if not isinstance(self.rescale_bits, int) or isinstance(self.rescale_bits, bool) or not \
                1 <= self.rescale_bits <= MAX_RESCALE_BITS:
            raise UserError(f"the rescale multiplier width ({option('rescale_bits')}) must be an integer from 1 to "
                            f"{MAX_RESCALE_BITS}, got {self.rescale_bits!r}")
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.architecture!r} ({option('architecture')}); choose from "
                            f"{', '.join(ARCHITECTURES)}")
        self._check_budget()
        from .backends.rtl import INTERFACES as RTL_INTERFACES

        if self.rtl_interface not in RTL_INTERFACES:
            raise UserError(f"unknown RTL interface {self.rtl_interface!r}; choose from {', '.join(RTL_INTERFACES)}")

    def _check_budget(self) -> None:
        given = [option(name) for name in ("target_ii", "max_lut", "max_dsp")
                 if getattr(self, name) is not None]
        for name, least in (("target_ii", 1), ("max_lut", 1), ("max_dsp", 0)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise UserError(f"{option(name)} must be an integer of at least {least}, got {value!r}")
        if given and self.architecture == "parallel":
            raise UserError(f"{' and '.join(given)} choose each layer's folding in the stream architecture, but "
                            f"{option('architecture', 'parallel')} builds every layer fully parallel (II 1); use "
                            f"{option('architecture', 'stream')} or 'auto'")
        if given and self.reuse_factor != 1:
            raise UserError(f"give {option('reuse_factor')} or a budget ({' and '.join(given)}), not both: the budget "
                            f"chooses each layer's reuse factor")

    def hls_options(self) -> HLSOptions:
        from .backends.hls import HLSOptions, LayerArch, parse_layer_config

        return HLSOptions(part=self.part, clock_ns=float(self.clock_ns),
                          default=LayerArch(self.reuse_factor, self.strategy),
                          layers=parse_layer_config(self.layers, "layer configuration"),
                          io="stream" if self.architecture == "stream" else "parallel",
                          adder_slack=self.rtl_adder_slack)

    def reuse_factors(self, graph: Graph) -> dict[str, int]:
        """Each layer's (IR node's) reuse factor: its --layer-config entry, else --reuse-factor."""
        hls = self.hls_options()
        return {node.name: hls.arch(node).reuse_factor for node in graph.nodes}

    def rtl_options(self) -> RTLOptions:
        from .backends.rtl import RTLOptions

        return RTLOptions(clock_ns=float(self.clock_ns), levels_per_stage=self.rtl_levels_per_stage,
                          family=family_of(self.part),
                          csd_max_digits=self.rtl_csd_max_digits, dsp_min_width=self.rtl_dsp_min_width,
                          interface=self.rtl_interface, adder_graph=self.rtl_adder_graph,
                          adder_slack=self.rtl_adder_slack,
                          ternary_chain=CARRY_CHAIN_BITS.get(family_of(self.part), 0) if self.rtl_ternary_adders and
                          self.rtl_adder_graph else 0,
                          architecture="stream" if self.architecture == "stream" else "parallel")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(eq=False)
class Project(ProjectTools):
    """A compiled model: its final IR, plan and build options.  `emulate` runs the bit-exact
    emulator; `trace`, `estimate`, `report`, `csim`, `sim` and `synth` (compiler/project_verify.py)
    do what the `finegrain` commands of those names do, returning typed results."""

    graph: Graph
    plan: Plan
    config: BuildConfig
    warnings: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0
    rtl_context: dict | None = field(default=None, repr=False, compare=False)  # built by compile_model
    saturation: dict | None = None  # compile_model(data=...): what each conversion clips on the data
    folding: object = None  # compiler.budget.Choice when a budget chose the reuse factors
    folder: Path | None = None  # the output folder it was written to or loaded from (csim, sim, synth build there)

    def emulate(self, x) -> np.ndarray | dict[str, np.ndarray]:
        """Float inputs (quantized by the input formats) -> float64 outputs in the model's
        units (a quantized model's output scale applied: ``model_scale * IR value``).

        One output: an array; several: a dict keyed by output name.  ``x``: an array, or a dict
        by input name, of shape [batch, ...] (or one sample); a bad one is a `UserError`.
        """
        from .emulate import emulate
        from .inputs import check_inputs

        x = check_inputs(x, self.graph, "x")
        out = {name: model_units(self.graph, name, v) for name, v in emulate(self.graph, x).items()}
        return out[self.graph.outputs[0]] if len(out) == 1 else out

    def emulate_exact(self, x):
        from .emulate import emulate_exact

        return emulate_exact(self.graph, x)

    def source(self) -> dict:
        """What generated files say they were made from (file names only: reproducible)."""
        return {"model": Path(self.config.model).name, "plan": Path(self.config.plan).name}

    # --- outputs ----------------------------------------------------------------------
    def report_json(self) -> dict:
        """report.json as compile writes it (`report` adds the estimate and the results recorded since)."""
        return {
            "model": self.graph.name,
            "finegrain_version": __version__,
            "compile_seconds": round(self.compile_seconds, 4),
            "inputs": {n: _tensor_report(self.graph.tensor(n)) for n in self.graph.inputs},
            "outputs": {n: _tensor_report(self.graph.tensor(n)) for n in self.graph.outputs},
            "layers": [_layer_report(self.graph, node) for node in self.graph.nodes],
            "warnings": list(self.warnings),
            **({"quantization": q} if (q := self.quantization()) is not None else {}),
            **({"saturation": self.saturation} if self.saturation is not None else {}),
            **({"folding": self.folding.summary()} if self.folding is not None else {}),
        }

    def quantization(self) -> dict | None:
        """Where the compiled model can differ from the quantized model it was read from
        (compiler/quant_report.py); None for a float model."""
        from .quant_report import quantization_report

        overridden = {t.name for t in self.graph.tensors.values()
                      if self.plan.spec(t.onnx_name or t.name) is not None}
        return quantization_report(self.graph, overridden)

    def resolved_plan(self) -> dict:
        planned = {}
        for t in self.graph.tensors.values():
            if t.formats is None or (not t.is_constant and t.name not in self.graph.inputs
                                     and not _is_planned_activation(self.graph, t)):
                continue
            key = t.onnx_name or t.name
            spec = self.plan.spec(key)
            planned[key] = {
                "role": t.kind.value,
                "shape": list(t.shape),
                "source": (f"plan: {spec.source}" if spec is not None
                           else "model quantizer" if _from_model(t) else "default"),
                "formats": _formats_json(t),
            }
            if t.scheme is not None:  # a weight quantizer: rows per scheme, uses per centre, permutations
                planned[key]["scheme"] = dict(t.scheme)
        return {"plan": self.plan.path, "tensors": planned}

    def write(self, out_dir, force: bool = False, protect=()) -> Path:
        """Write the output folder ``out_dir`` (see `compiler.output_folder`): never over the
        inputs, the current folder, or a folder that is not a finegrain output."""
        out = Path(out_dir)
        with claimed(out, force, _inputs(self.config.model, self.config.plan, protect)):
            self._write_locked(out)
        self.folder = out
        return out

    def _write_locked(self, out: Path) -> None:
        from .backends.hls import write_hls_project
        from .backends.rtl import write_rtl_project
        from .names import name_table
        from .verify.csim import write_vectors
        from .verify.vectors import csim_vectors

        def fill(tmp: Path) -> None:
            with open(tmp / "ir.pkl", "wb") as f:
                pickle.dump({"graph": self.graph, "config": self.config, "version": __version__}, f)
            _write_json(tmp / STAMP, stamp(tmp / "ir.pkl"))
            (tmp / "ir.txt").write_text(dump(self.graph))
            _write_json(tmp / "plan.resolved.json", self.resolved_plan())
            _write_json(tmp / "config.json", dataclasses.replace(self.config, output_dir=str(out)).to_json())
            hls = rtl = None
            if "hls" in self.config.backends:
                hls = write_hls_project(self.graph, self.config.hls_options(), tmp / "hls", self.source())
                # vectors for the vendor tools' csim/cosim; `finegrain csim` writes its own
                write_vectors(self.graph, tmp / "hls", csim_vectors(self.graph, DEFAULT_TB_VECTORS))
            if "rtl" in self.config.backends:
                rtl = write_rtl_project(self.graph, self.config.rtl_options(), tmp / "rtl", self.source(),
                                        self.kept_rtl_context())
            _write_json(tmp / "report.json", {**self.report_json(), "names": name_table(self.graph, hls, rtl)})

        write_folder(out, fill)


NO_PLAN = "<no plan>"  # the plan path of a compile without --plan


def _from_model(t: Tensor) -> bool:
    """Whether the tensor's formats come from the model's own quantizers (lower_quant)."""
    return t.quantizer is not None or bool((t.scheme or {}).get("lowered")) or (
        t.kind == TensorKind.INPUT and t.formats is not None and t.model_scale is not None)


def model_units(graph: Graph, name: str, values: np.ndarray) -> np.ndarray:
    """IR values of graph output ``name`` in the model's units (its ``model_scale``, if any)."""
    scale = graph.tensor(name).model_scale
    return values if scale is None else values * scale


def _inputs(model, plan_path: str, protect) -> list[tuple[str, str]]:
    """What an output folder must not hold: the files compile reads, as (what, path)."""
    return [("model", str(model)), ("plan", plan_path), *(("input file", str(p)) for p in protect)]


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _is_planned_activation(graph: Graph, t: Tensor) -> bool:
    producer = graph.producer(t.name)
    if producer is None:
        return False
    last = producer.stages()[-1]
    return last.outputs[0] == t.name and last.op in (Op.REQUANTIZE, Op.SIGMOID, Op.SOFTMAX)


def _formats_json(t: Tensor) -> dict:
    f = t.formats
    uniform = f.uniform_type()
    if uniform is not None:
        return {"uniform": str(uniform)}
    types = f.distinct()
    counts = {}
    for idx in np.ndindex(f.shape):
        key = str(f.element(idx)) if f.width[idx] else "pruned"
        counts[key] = counts.get(key, 0) + 1
    return {"distinct": len(types), "counts": counts}


def _width_stats(t: Tensor) -> dict:
    f = t.formats
    if f is None:
        return {}
    kept = ~f.pruned
    if not kept.any():
        return {"elements": int(f.width.size), "pruned": int(f.width.size)}
    return {
        "elements": int(f.width.size),
        "pruned": int(f.pruned.sum()),
        "width_min": int(f.width[kept].min()),
        "width_max": int(f.width[kept].max()),
        "total_bits": int(f.width.sum()),
    }


def _tensor_report(t: Tensor) -> dict:
    f = t.formats
    report = {"shape": list(t.shape), "type": readable_type(f) if f is not None else None, **_width_stats(t)}
    if f is not None and f.uniform_type() is None and (~f.pruned).any():  # mixed: the legend's types
        report["type_counts"] = type_counts(f)
    if t.model_scale is not None:  # a port whose value times this is the model's (docs/import.md)
        report["model_scale"] = np.asarray(t.model_scale, dtype=np.float64).tolist()
    return report


def _layer_report(graph: Graph, node: Node) -> dict:
    entry = {
        "name": node.name,
        "op": node.op.value,
        "onnx_nodes": list(node.onnx_nodes),
        "stages": [s.op.value for s in node.stages()],
        "inputs": {i: _tensor_report(graph.tensor(i)) for i in node.inputs if not graph.tensor(i).is_constant},
        "output": {node.outputs[0]: _tensor_report(graph.tensor(node.outputs[0]))},
    }
    consts = {i: graph.tensor(i) for i in node.inputs if graph.tensor(i).is_constant}
    for stage in node.epilogue:
        consts.update({i: graph.tensor(i) for i in stage.inputs if graph.tensor(i).is_constant})
    if consts:
        entry["constants"] = {
            (t.onnx_name or n): {**_tensor_report(t), "role": t.kind.value,
                                 "nonzero": int(np.count_nonzero(t.data))}
            for n, t in consts.items()}
    if node.op in (Op.DENSE, Op.CONV):
        entry["accumulator"] = {node.accumulator: _tensor_report(graph.tensor(node.accumulator))}
    return entry


def model_name(model_path, graph_name: str) -> str:
    """The model's name in generated code: the ONNX graph name unless it is meaningless (an
    exporter's default or a hex id, see `meaningless_graph_name`), else the file name (or its
    folder's, for the common `model.onnx`)."""
    if not meaningless_graph_name(graph_name):
        return graph_name
    if not isinstance(model_path, (str, os.PathLike)):
        return graph_name or "model"
    path = Path(model_path)
    return path.parent.resolve().name if meaningless_graph_name(path.stem) else path.stem


def compile_graph(graph: Graph, plan: Plan, config: BuildConfig) -> Project:
    from .passes.apply_plan import PlanWarning
    from .passes.pipeline import run_pipeline

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlanWarning)
        final = run_pipeline(graph, plan, check=config.check_ir, rescale_bits=config.rescale_bits)
    messages = [str(w.message) for w in caught if issubclass(w.category, PlanWarning)]
    for w in caught:
        if not issubclass(w.category, PlanWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return Project(final, plan, config, messages, time.perf_counter() - start)


def compile_model(model, plan, output_dir=None, force: bool = False, check_ir: bool = True, protect=(),
                  data=None, data_name: str = "<memory>", **options) -> Project:
    """Compile an ONNX model with a bit plan; write ``output_dir`` if given.

    ``model``: the path of an .onnx file (str or `pathlib.Path`) or an ``onnx.ModelProto``.
    ``plan``: the path of a plan JSON file, a dict holding a plan file's content (its relative
    paths, e.g. ``.npz`` element files, resolve against the current folder), a `Plan`, or None
    for a quantized model whose quantizers are its plan (docs/bit-plan.md).
    ``force``: replace a previous finegrain output folder at ``output_dir``.
    ``options`` are `BuildConfig` fields (``part``,
    ``clock_ns``, ``reuse_factor``, ``strategy``, ``layers``, ``backends``, ``board``);
    ``protect``: more input files the output folder must not hold (a layer config).
    ``data``: float inputs (an array, a dict by input name, or a function of the compiled
    graph returning them) on which every conversion's clipping is counted: warnings, and
    ``saturation`` in report.json (``data_name`` names them there).
    Raises `UserError` subclasses for bad input.
    """
    from .targets import resolve_part

    start = time.perf_counter()
    model, model_label = model_argument(model)
    plan = plan_argument(plan, NO_PLAN)
    options["part"] = resolve_part(options.get("board"), options.get("part"))
    default_backends = options.get("backends") is None
    if default_backends:
        options.pop("backends", None)
    config = BuildConfig(model=model_label, plan=plan.path, output_dir=None if output_dir is None else str(output_dir),
                         check_ir=check_ir, **options)
    if output_dir is None:
        return _count_clipping(_compile(model, plan, config, default_backends, start, build_rtl=False), data,
                               data_name)
    out = Path(output_dir)
    # held for the whole compile: a second compile into `out` fails at once
    with claimed(out, force, _inputs(model_label, plan.path, protect)):
        project = _compile(model, plan, config, default_backends, start, build_rtl=True)
        _count_clipping(project, data, data_name)
        project._write_locked(out)
    project.folder = out
    return project


def _count_clipping(project: Project, data, data_name: str) -> Project:
    """Count what each conversion clips on ``data`` (see `compile_model`); a warning per
    tensor that clips."""
    from .calibrate import clipping_warnings, count_clipping, saturation_report
    from .emulate import EmulationError

    if data is None:
        return project
    inputs = data(project.graph) if callable(data) else data
    try:
        samples, clippings = count_clipping(project.graph, inputs, project.plan)
    except (EmulationError, ValueError) as err:
        raise UserError(f"cannot count saturation on the data {data_name!r}: {err}") from None
    project.saturation = saturation_report(clippings, data_name, samples)
    project.warnings.extend(clipping_warnings(clippings))
    return project


def _compile(model, plan: Plan, config: BuildConfig, default_backends: bool, start: float,
             build_rtl: bool) -> Project:
    from .backends.rtl import RTLBackendError, check_supported, parallel_products, rtl_context
    from .backends.rtl.stream_budget import choose_stream_folding
    from .frontend import load_onnx  # the only place onnx is needed
    from .passes.lower_quant import is_quantized_model

    graph = load_onnx(model)
    in_memory = not isinstance(model, (str, os.PathLike))  # an onnx.ModelProto: no file to name it after
    name = (graph.name if not meaningless_graph_name(graph.name) else "model") if in_memory else \
        model_name(model, graph.name)
    graph = dataclasses.replace(graph, name=name)
    if plan.path == NO_PLAN and not is_quantized_model(graph):
        raise UsageError(f"{config.model}: the model has no quantizers (a float model), so it needs a bit plan: "
                         f"give one as {option('plan')} (finegrain plan-template writes a skeleton, finegrain "
                         f"calibrate --data one from data)")
    project = compile_graph(graph, plan, config)
    _check_layer_names(project.graph, config.layers)
    budget = any(v is not None for v in (config.target_ii, config.max_lut, config.max_dsp))
    if config.architecture == "auto":  # parallel while its size is reasonable (and no budget), else stream
        products = parallel_products(project.graph)
        parallel = products <= DEFAULT_RTL_MAX_PRODUCTS and not budget
        project.config = config = dataclasses.replace(config, architecture="parallel" if parallel else "stream")
        # a model too large for the parallel RTL gets, by default, the fastest folding that fits the part
        # (unless reuse factors were given)
        fit = not budget and not parallel and config.reuse_factor == 1 \
            and not any("reuse_factor" in entry for entry in config.layers.values())
    else:
        fit = False
    if budget or fit:  # every layer's reuse factor from the budget; config.json records the choice
        try:
            choice, predicted = choose_stream_folding(project.graph, config.rtl_options(), project.source(), config)
            if predicted is not None and predicted > config.target_ii:
                project.warnings.append(
                    f"the cycle model predicts an II of {predicted} cycles, above "
                    f"{option('target_ii', config.target_ii)}: the budget counts each layer's cycles alone and no "
                    f"tighter folding met the target with the engines waiting on each other; ask for a lower "
                    f"target or a larger part")
        except RTLBackendError as err:
            if budget:
                raise
            # the default's fit to the part: a model the stream RTL cannot build keeps its reuse
            # factors (the RTL step below says why it has no RTL)
            choice = None
            project.warnings.append(f"no folding chosen for the part: {err}")
        if choice is not None:
            chosen = {name: {**config.layers.get(name, {}), "reuse_factor": r} for name, r in choice.reuse.items()}
            project.config = config = dataclasses.replace(config, layers={**config.layers, **chosen})
            project.folding = choice
    if "rtl" in config.backends:
        try:
            check_supported(project.graph)  # before any folder is written: a clear error, exit 2
            products = parallel_products(project.graph)
            if default_backends and config.architecture == "parallel" and products > DEFAULT_RTL_MAX_PRODUCTS:
                raise RTLBackendError(f"the model has {products} constant products, more than the "
                                      f"{DEFAULT_RTL_MAX_PRODUCTS} the fully parallel RTL backend builds by default; "
                                      f"ask for it with {option('backends', ('hls', 'rtl'))}")
            if build_rtl:  # built now: whatever the RTL backend cannot build is known
                # before a folder is written (an in-memory compile writes no RTL, and skips this)
                project.rtl_context = rtl_context(project.graph, config.rtl_options(), project.source(),
                                                  config.reuse_factors(project.graph))
        except RTLBackendError as err:
            if not default_backends:
                raise
            # the default backends: a model the RTL backend cannot build still gets its HLS project
            project.config = config = dataclasses.replace(config, backends=tuple(b for b in config.backends
                                                                                 if b != "rtl"))
            project.warnings.append(f"no RTL written: {err}")
    project.compile_seconds = time.perf_counter() - start
    return project


def _check_layer_names(graph: Graph, layers: dict) -> None:
    """Every layer a layer configuration names exists: a misspelt one would be ignored."""
    known = {}
    for node in graph.nodes:
        known[node.name] = node
        if node.onnx_nodes:
            known.setdefault(node.onnx_nodes[0], node)
    unknown = [name for name in layers if name not in known]
    if unknown:
        names = sorted({n.name for n in graph.nodes})
        shown = ", ".join(names[:40]) + (f" and {len(names) - 40} more" if len(names) > 40 else "")
        raise UserError(f"the layer configuration names layer(s) {', '.join(map(repr, unknown))}, which the model "
                        f"does not have; its layers are: {shown} (or the first ONNX node of each)")


def update_report(out_dir, key: str, entry: dict) -> None:
    """Record a verification result under ``key`` in OUT/report.json (replaced whole)."""
    path = Path(out_dir) / "report.json"
    report = read_json(path, "report", required=False) or {}
    if not isinstance(report, dict):
        raise OutputFolderError(f"report {str(path)!r} is damaged (not a JSON object); compile the folder again")
    report[key] = entry
    tmp = path.with_name(f".{path.name}.tmp")
    _write_json(tmp, report)
    os.replace(tmp, path)


def load_project(out_dir) -> Project:
    """Load a compiled output folder (as written by `Project.write`), its stamp checked
    before anything is unpickled."""
    out = Path(out_dir)
    read_stamp(out)
    try:
        with open(out / "ir.pkl", "rb") as f:
            saved = pickle.load(f)
        graph, config = saved["graph"], saved["config"]
    except Exception:  # noqa: BLE001 - the stamp matched, yet it does not load: not ours after all
        raise OutputFolderError(f"{str(out)!r} has an ir.pkl that does not load; compile it again") from None
    if not isinstance(graph, Graph) or not isinstance(config, BuildConfig):
        raise OutputFolderError(f"{str(out)!r} has an ir.pkl that does not hold a finegrain IR; compile it again")
    plan = Plan({}, {}, {}, config.plan)  # the plan file may have changed or gone since: the IR holds it
    if Path(config.plan).is_file():
        with contextlib.suppress(UserError):
            plan = load_plan(config.plan)
    report = read_json(out / "report.json", "report")
    warnings_ = report.get("warnings", []) if isinstance(report, dict) else None
    if not isinstance(warnings_, list):
        raise OutputFolderError(f"report {str(out / 'report.json')!r} is damaged (not a finegrain report); "
                                f"compile the folder again")
    seconds = report.get("compile_seconds", 0.0)
    return Project(graph, plan, config, warnings_, seconds if isinstance(seconds, (int, float)) else 0.0, folder=out)
