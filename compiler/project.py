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
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .argnames import option
from .build_config import BuildConfig  # an ir.pkl written before build_config.py names it project.BuildConfig
from .errors import UsageError, UserError, reraise_interrupt
from .ir import Graph, Tensor, TensorKind, dump
from .names import meaningless_graph_name
from .output_folder import STAMP, OutputFolderError, claimed, read_json, read_stamp, stamp, write_folder
from .inputs import check_options, model_argument, path_argument, plan_argument
from .plan import Plan, load_plan
from .project_verify import ProjectTools
from .report_json import _formats_json, _is_planned_activation, _layer_report, _tensor_report, _write_json

# The backends (jinja2), the passes, the estimator and the frontend (onnx) are imported by the
# functions that use them: `load_project` (every command that reads an output folder, and
# unpickling ir.pkl, whose BuildConfig lives in compiler.build_config) must stay as light as
# numpy and the IR.

OUTPUT_FILES = (STAMP, "ir.txt", "ir.pkl", "plan.resolved.json", "config.json", "report.json")
DEFAULT_TB_VECTORS = 100
# Above this many constant products a fully parallel RTL top is too big to write by default.
DEFAULT_RTL_MAX_PRODUCTS = 50_000


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
    folder_ir: str | None = field(default=None, repr=False, compare=False)  # the sha256 of its ir.pkl there
    # an in-memory compile of a model too large for the parallel RTL defers choosing its folding
    # (`settle_folding`); the value is whether the default backends were asked for
    pending_fit: bool | None = field(default=None, repr=False, compare=False)

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

    def settle_folding(self) -> None:
        """Choose the stream folding an in-memory compile deferred (the fastest that fits the
        part: reuse factors in ``config.layers``, ``folding``), as a compile into a folder does
        at once; the RTL context, a write, an estimate and a report need it."""
        if self.pending_fit is not None:
            default_backends, self.pending_fit = self.pending_fit, None
            _fit_to_part(self, False, default_backends)

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
        out = path_argument(out_dir, "out_dir", "Project.write")
        self.settle_folding()
        with claimed(out, force, _inputs(self.config.model, self.config.plan, protect)):
            self._write_locked(out)
        return out

    def _write_locked(self, out: Path) -> None:
        """Write the folder ``out`` (held by the caller) and take it as this project's folder,
        remembering the ir.pkl written there: the methods that build in the folder check that no
        other compile has replaced it since (`project_verify.own_folder`)."""
        from .backends.hls import write_hls_project
        from .backends.rtl import write_rtl_project
        from .names import name_table
        from .verify.csim import write_vectors
        from .verify.vectors import csim_vectors, project_vector_count

        def fill(tmp: Path) -> None:
            with open(tmp / "ir.pkl", "wb") as f:
                pickle.dump({"graph": self.graph, "config": self.config, "version": __version__}, f)
            written.update(stamp(tmp / "ir.pkl"))
            _write_json(tmp / STAMP, written)
            (tmp / "ir.txt").write_text(dump(self.graph))
            _write_json(tmp / "plan.resolved.json", self.resolved_plan())
            _write_json(tmp / "config.json", dataclasses.replace(self.config, output_dir=str(out)).to_json())
            hls = rtl = None
            if "hls" in self.config.backends:
                hls = write_hls_project(self.graph, self.config.hls_options(), tmp / "hls", self.source())
                # vectors for the vendor tools' csim/cosim; `finegrain csim` writes its own
                write_vectors(self.graph, tmp / "hls",
                              csim_vectors(self.graph, project_vector_count(self.graph, DEFAULT_TB_VECTORS)))
            if "rtl" in self.config.backends:
                rtl = write_rtl_project(self.graph, self.config.rtl_options(), tmp / "rtl", self.source(),
                                        self.kept_rtl_context())
            _write_json(tmp / "report.json", {**self.report_json(), "names": name_table(self.graph, hls, rtl)})

        written: dict = {}
        write_folder(out, fill)
        self.folder, self.folder_ir = out, written["ir_sha256"]


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
    ``force``: replace a previous finegrain output folder at ``output_dir``.  Without
    ``output_dir``, the default fit of a model too large for the parallel RTL to the part waits
    for the first estimate, report or write (`Project.settle_folding`).
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
    output_dir = path_argument(output_dir, "output_dir", "compile_model", none=True)
    protect = tuple(path_argument(p, "protect (each item)", "compile_model") for p in
                    (protect if isinstance(protect, (tuple, list)) else [protect]))
    check_options(options, data)
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
    if budget or (fit and build_rtl):
        _fit_to_part(project, budget, default_backends)
    elif fit:  # an in-memory compile: emulate and trace need no folding; the first write,
        # estimate or report chooses it (`Project.settle_folding`)
        project.pending_fit = default_backends
    config = project.config
    if "rtl" in config.backends and config.rtl_interface == "axis" and config.architecture == "stream":
        project.warnings.append(f"{option('rtl_interface', 'axis')} wraps the fully parallel top; the stream top "
                                f"has no such wrapper (its ports are valid/ready pixel streams, AXI4-Stream's "
                                f"handshake without tlast), so none is written")
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
                project.warnings.extend(project.rtl_context.get("warnings", []))
        except RTLBackendError as err:
            if not default_backends:
                raise
            # the default backends: a model the RTL backend cannot build still gets its HLS project
            project.config = config = dataclasses.replace(config, backends=tuple(b for b in config.backends
                                                                                 if b != "rtl"))
            project.warnings.append(f"no RTL written: {err}")
    project.compile_seconds = time.perf_counter() - start
    return project


def _fit_to_part(project: Project, budget: bool, default_backends: bool) -> None:
    """Every layer's reuse factor from the budget, or (no budget) the fastest stream folding that
    fits the part; config.json records the choice."""
    from .backends.rtl import RTLBackendError
    from .backends.rtl.stream_budget import choose_stream_folding

    config = project.config
    try:
        choice, predicted = choose_stream_folding(project.graph, config.rtl_options(), project.source(), config)
        if predicted is not None and predicted > config.target_ii:
            project.warnings.append(
                f"the cycle model predicts an II of {predicted} cycles, above "
                f"{option('target_ii', config.target_ii)}: the budget counts each layer's cycles alone and no "
                f"tighter folding met the target with the engines waiting on each other; ask for a lower "
                f"target or a larger part")
    except UserError as err:
        if budget:
            raise
        # the default's fit to the part: a model the stream RTL cannot build keeps its reuse
        # factors (the RTL step below says why it has no RTL); one no folding fits has no RTL
        # either: an error when RTL was asked for, else (as the default backends' RTL errors)
        # a warning, the HLS project and the IR still built
        choice = None
        if isinstance(err, RTLBackendError) or "rtl" not in config.backends:
            project.warnings.append(f"no folding chosen for the part: {err}")
        elif not default_backends:
            raise
        else:
            project.config = config = dataclasses.replace(
                config, backends=tuple(b for b in config.backends if b != "rtl"))
            project.warnings.append(f"no RTL written: {err}")
    if choice is not None:
        chosen = {name: {**config.layers.get(name, {}), "reuse_factor": r} for name, r in choice.reuse.items()}
        project.config = config = dataclasses.replace(config, layers={**config.layers, **chosen})
        project.folding = choice


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


def load_project(out_dir) -> Project:
    """Load a compiled output folder (as written by `Project.write`), its stamp checked
    before anything is unpickled."""
    out = path_argument(out_dir, "out_dir", "load_project")
    digest = read_stamp(out)["ir_sha256"]
    try:
        with open(out / "ir.pkl", "rb") as f:
            saved = pickle.load(f)
        graph, config = saved["graph"], saved["config"]
    except Exception as err:  # noqa: BLE001 - the stamp matched, yet it does not load: not ours after all
        reraise_interrupt(err)
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
    return Project(graph, plan, config, warnings_, seconds if isinstance(seconds, (int, float)) else 0.0, folder=out,
                   folder_ir=digest)
