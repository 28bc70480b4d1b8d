"""What a `Project` does beyond compiling, from Python: estimate, report, csim, sim and synth
(and trace, compiler/trace.py), each returning a typed result.

These are the `finegrain` commands' own steps (the emulator, `compiler.estimate`,
`verify.csim.run_csim`, `verify.rtlsim.run_rtl_sim`, `verify.synth.synthesize_build`), run on
the project in memory.  csim, sim and synth build in the project's output folder (a project
from ``compile_model(..., output_dir=...)`` or `load_project`) and record their results in its
report.json as the commands do; a project compiled in memory has no folder and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .argnames import option
from .errors import UserError

if TYPE_CHECKING:
    from .trace import Trace


class _Mapped(Mapping):
    """A result that also reads as the dict it was made from (``result["lut"]``, ``{**result}``),
    as `Project.estimate` and `Project.report` returned before they were typed."""

    def __getitem__(self, key):
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)

    def to_dict(self) -> dict:
        """The plain dict (JSON-ready), as report.json holds it."""
        return dict(self.data)


# --- estimate ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LayerEstimate:
    """One layer's (or stream engine's) share of the estimate."""

    name: str
    lut: int
    ff: int
    dsp: int
    bram: float
    latency_cycles: int | None  # cycles from its inputs to its outputs (None where not modelled)
    data: dict = field(repr=False)  # every figure the estimator gives (products, adders, start cycle, ...)


@dataclass(frozen=True, eq=False)
class Estimate(_Mapped):
    """The resource and latency estimate of the RTL the project builds (`compiler.estimate`):
    what ``finegrain report`` prints and records under report.json's ``estimate``."""

    top: str  # the RTL top's name
    part: str
    architecture: str  # fully parallel, or stream with its folding
    lut: int
    ff: int
    dsp: int
    bram: float  # 36 kb blocks
    latency_cycles: int
    ii_cycles: int  # cycles between inputs
    percent: dict  # of the part's LUT, FF, DSP, BRAM
    layers: tuple[LayerEstimate, ...]
    timing: dict | None  # the predicted critical path and whether it meets the clock
    data: dict = field(repr=False)  # report.json's entry, whole

    @classmethod
    def from_dict(cls, data: dict) -> Estimate:
        layers = tuple(LayerEstimate(layer["name"], layer.get("lut", 0), layer.get("ff", 0), layer.get("dsp", 0),
                                     layer.get("bram", 0.0), layer.get("latency_cycles"), layer)
                       for layer in data.get("layers", []))
        return cls(data["top"], data["part"], data["architecture"], data["lut"], data["ff"], data["dsp"],
                   data["bram"], data["latency_cycles"], data["ii_cycles"], data.get("percent", {}), layers,
                   data.get("timing"), data)


def estimate_or_note(project, out: Path | None) -> tuple[dict | None, str | None]:
    """The estimate of the RTL architecture the build options choose (fully parallel or stream;
    whether or not OUT/rtl was written: a model too large for it still gets its size), or a
    note why there is none (what ``finegrain report`` prints instead)."""
    from .backends.rtl import RTLBackendError, check_supported, parallel_products
    from .estimate import estimate_context
    from .project import DEFAULT_RTL_MAX_PRODUCTS

    try:
        check_supported(project.graph)
        if project.rtl_context is not None:  # compile_model built it for the RTL it wrote
            return estimate_context(project.rtl_context, project.config.part), None
        products = parallel_products(project.graph)
        too_many = products > 4 * DEFAULT_RTL_MAX_PRODUCTS
        parallel = project.config.rtl_options().architecture == "parallel"
        if parallel and not (out is not None and (out / "rtl").is_dir()) and too_many:
            return None, (f"no resource estimate: a fully parallel build of this model has {products:,} constant "
                          f"products, and the estimate describes that architecture; compile with "
                          f"{option('architecture', 'stream')} for the streaming one (the HLS project's reuse "
                          f"factor is not modelled yet)")
        # what the RTL backend cannot build (a table over its size limit, ...) has no estimate either
        context = project.kept_rtl_context()
    except RTLBackendError as e:
        return None, f"no resource estimate: {e}"
    return estimate_context(context, project.config.part), None


# --- report -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Report(_Mapped):
    """Per-layer types and widths, the estimate, and the verification results recorded so far:
    report.json's content (also readable as that dict) and the table ``finegrain report`` prints."""

    model: str
    layers: tuple[dict, ...]  # per layer: ops, inputs, output and accumulator types, constants
    inputs: dict
    outputs: dict
    warnings: tuple[str, ...]
    estimate: Estimate | None  # None when the RTL backend cannot build the model (see ``note``)
    note: str | None  # why there is no estimate
    csim: dict | None  # the last csim, sim and synth results recorded in the output folder
    sim: dict | None
    synth: dict | None
    data: dict = field(repr=False)

    def text(self) -> str:
        """The table `finegrain report` prints (and its note)."""
        from .report_text import format_report

        return format_report(self.data) + (f"\n{self.note}" if self.note else "")


# --- csim, sim, synth -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CsimResult:
    """A g++ C simulation of the HLS project (``finegrain csim``): every output bit of the C++
    compared with the emulator's on ``inputs``."""

    vectors: int
    mismatches: int  # output values that differ (0: bit-exact)
    inputs: dict[str, np.ndarray]  # the vectors, float64 by input name
    outputs: dict[str, np.ndarray]  # what the C++ computed on them, by output name, in the model's units
    expected: dict[str, np.ndarray]  # the emulator's outputs (the specification), equal where mismatches is 0
    build_seconds: float
    run_seconds: float
    compiler: str  # the g++ that built it
    first_mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.vectors > 0


@dataclass(frozen=True, eq=False)
class SimResult:
    """An RTL simulation (``finegrain sim``, Verilator or Icarus): every output bit compared with
    the emulator's, and the measured latency and II against the schedule's."""

    vectors: int
    mismatches: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]  # what the RTL computed, in the model's units; NaN where not valid
    expected: dict[str, np.ndarray]  # the emulator's outputs (the specification), equal where mismatches is 0
    latency_cycles: int | None  # measured; None where not defined (a stream top with gaps or stalls)
    ii_cycles: int | None
    predicted_latency: int  # schedule.json's
    predicted_ii: int
    timing_ok: bool  # measured latency and II equal the predicted ones (where measured)
    build_seconds: float
    run_seconds: float
    first_mismatches: tuple[str, ...]
    waves: str | None  # the FST file, with waves=True

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.timing_ok and self.vectors > 0


@dataclass(frozen=True, eq=False)
class SynthResult:
    """yosys synthesis of the project's RTL (``finegrain report --synth``), with the estimate's
    ratio to it."""

    lut: int
    ff: int
    dsp: int
    carry: int
    bram: float
    cells: dict  # every cell type and its count
    seconds: float
    cached: bool  # read from the synthesis cache (same sources, same yosys)
    yosys_version: str
    family: str
    ratio: dict  # estimate / synthesis for lut, ff, dsp (None where synthesis has none)


def output_folder(project, what: str) -> Path:
    if project.folder is None:
        raise UserError(f"{what} builds in the project's output folder, and this project was compiled in memory: "
                        f"compile it with compile_model(model, plan, output_dir=...) or load a compiled folder "
                        f"with load_project(folder)")
    return own_folder(project)


def own_folder(project) -> Path | None:
    """The project's output folder (None: in memory), checked to still hold this project: a
    later compile into the same folder replaces it, and building there would test that one."""
    from .output_folder import read_stamp

    if project.folder is None:
        return None
    out = Path(project.folder)
    if read_stamp(out)["ir_sha256"] != project.folder_ir:
        raise UserError(f"{str(out)!r} no longer holds this project: another compile replaced it; write this project "
                        f"there again with project.write({str(out)!r}, force=True), or load the compile that is "
                        f"there with load_project({str(out)!r})")
    return out


def _prepared(project, what: str, backend: str, marker: str, x, vectors, seed) -> tuple[Path, dict[str, np.ndarray]]:
    """(the output folder, the input vectors) of a ``what`` run on the ``backend`` project,
    which ``marker`` (a path inside the folder) shows was written."""
    from .inputs import check_inputs, random_vectors

    out = output_folder(project, what)
    if not (out / marker).exists():
        raise UserError(f"{str(out)!r} has no {backend.upper()} project for {what}: compile it with the {backend} "
                        f"backend ({option('backends', ('hls', 'rtl'))})")
    inputs = check_inputs(x, project.graph, "x") if x is not None else random_vectors(project.graph, vectors, seed)
    return out, inputs


def _emulated(project, inputs) -> dict[str, np.ndarray]:
    out = project.emulate(inputs)
    return out if isinstance(out, dict) else {project.graph.outputs[0]: out}


def _model_units(project, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A simulation's outputs (IR values) in the model's units, as `Project.emulate` gives them."""
    from .project import model_units

    return {name: model_units(project.graph, name, values) for name, values in outputs.items()}


def csim(project, x, vectors: int, seed: int) -> CsimResult:
    from .backends.hls import top_name
    from .output_folder import locked
    from .report_json import update_report
    from .verify.csim import run_csim

    out, inputs = _prepared(project, "csim", "hls", "hls/firmware", x, vectors, seed)
    hls_dir = out / "hls"
    with locked(out):  # it writes hls/tb_data and report.json
        result = run_csim(project.graph, hls_dir, top_name(project.graph), inputs)
        update_report(out, "csim", result.report())
    return CsimResult(result.vectors, result.mismatches, inputs, _model_units(project, result.outputs),
                      _emulated(project, inputs), result.build_seconds, result.run_seconds, result.compiler,
                      result.first_mismatches)


def sim(project, x, vectors: int, seed: int, **options) -> SimResult:
    from .backends.rtl import rtl_top_name
    from .output_folder import locked
    from .report_json import update_report
    from .verify.rtlsim import check_schedule, run_rtl_sim

    out, inputs = _prepared(project, "sim", "rtl", "rtl/schedule.json", x, vectors, seed)
    rtl_dir = out / "rtl"
    check_schedule(rtl_dir / "schedule.json", project.graph)
    with locked(out):  # it writes rtl/sim and report.json
        result = run_rtl_sim(project.graph, rtl_dir, rtl_top_name(project.graph), inputs, seed=seed, **options)
        update_report(out, "sim", result.report())
    return SimResult(result.vectors, result.mismatches, inputs, _model_units(project, result.outputs),
                     _emulated(project, inputs), result.latency_cycles,
                     result.ii_cycles, result.predicted_latency, result.predicted_ii, result.timing_ok,
                     result.build_seconds, result.run_seconds, result.first_mismatches, result.waves)


def synth(project, progress: bool) -> SynthResult:
    from .output_folder import locked
    from .report_json import update_report
    from .verify.synth import synthesize_build

    out = output_folder(project, "synth")
    estimate, note = estimate_or_note(project, out)
    if estimate is None or not (out / "rtl" / "schedule.json").is_file():
        raise UserError(f"{str(out)!r} has no RTL to synthesize: compile it with the rtl backend"
                        + (f" ({note})" if note else ""))
    with locked(out):
        entry = synthesize_build(out, estimate, progress=progress)
        update_report(out, "synth", entry)
    return SynthResult(entry["lut"], entry["ff"], entry["dsp"], entry["carry"], entry["bram"], entry["cells"],
                       entry["seconds"], entry["cached"], entry["yosys_version"], entry["family"], entry["ratio"])


# --- the methods ------------------------------------------------------------------------
def report(project, write: bool) -> Report:
    from .output_folder import OutputFolderError, locked, read_json
    from .report_json import update_report

    out = own_folder(project)
    project.settle_folding()
    data = project.report_json() if out is None else read_json(out / "report.json", "report")
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise OutputFolderError(f"report {str(out / 'report.json')!r} is damaged (not a finegrain report); compile "
                                f"the folder again")
    estimate, note = estimate_or_note(project, out)
    if estimate is not None:
        data = {**data, "estimate": estimate}
    if write and out is not None:
        from .report_html import write_report_html

        with locked(out):
            if estimate is not None:
                update_report(out, "estimate", estimate)
            write_report_html(out, project)
    return Report(data["model"], tuple(data["layers"]), data.get("inputs", {}), data.get("outputs", {}),
                  tuple(data.get("warnings", ())), None if estimate is None else Estimate.from_dict(estimate), note,
                  data.get("csim"), data.get("sim"), data.get("synth"), data)


class ProjectTools:
    """`Project`'s verification and reporting methods (the class is in compiler/project.py)."""

    folder: Path | None

    def trace(self, x) -> Trace:
        """Every tensor's values on ``x`` (an array, or a dict by input name; float, quantized by
        the input formats), layer by layer, as float64 and as integer mantissas: the emulator's
        own values, so the trace's outputs are `emulate`'s bit for bit (compiler/trace.py)."""
        from .trace import trace

        return trace(self, x)

    def kept_rtl_context(self) -> dict:
        """The RTL context of this project's build options (with the reuse factors compile built
        with: --reuse-factor, --layer-config, a budget's choice), built on first use and kept:
        the next estimate, report or write reads it again."""
        if self.rtl_context is None:
            from .backends.rtl import rtl_context

            self.settle_folding()
            self.rtl_context = rtl_context(self.graph, self.config.rtl_options(), self.source(),
                                           self.config.reuse_factors(self.graph))
        return self.rtl_context

    def estimate(self) -> Estimate:
        """The resource and latency estimate (`compiler.estimate`) of the RTL this project builds
        (`kept_rtl_context`).  Also reads as the dict report.json records (``estimate["lut"]``);
        ``.to_dict()`` gives that dict."""
        from .estimate import estimate_context

        return Estimate.from_dict(estimate_context(self.kept_rtl_context(), self.config.part))

    def report(self, write: bool = False) -> Report:
        """Per-layer types and widths, the estimate, and the csim/sim/synth results recorded in the
        output folder, as ``finegrain report`` shows them (``.text()``: its table).  ``write=True``
        (a project with an output folder) also records the estimate in report.json and writes
        report.html, as the command does."""
        return report(self, write)

    def csim(self, x=None, vectors: int = 1000, seed: int = 0) -> CsimResult:
        """Build the HLS project with g++ and compare every output bit with the emulator on ``x``
        (an array or a dict by input name), or on ``vectors`` random inputs over the input formats'
        range plus five extreme ones (``seed``).  Needs the output folder (``output_dir=``);
        records ``csim`` in its report.json.  A mismatch is a result (``.mismatches``), not an error."""
        return csim(self, x, vectors, seed)

    def sim(self, x=None, vectors: int = 1000, seed: int = 0, gaps: bool = False, waves: bool = False,
            simulator: str = "verilator", stall: bool = False, primitives: bool = False) -> SimResult:
        """Simulate the RTL (Verilator, or ``simulator="icarus"``) on the same vectors as `csim`:
        every output bit against the emulator, and the measured latency and II against
        schedule.json's.  ``gaps``: random gaps in the inputs' valid; ``stall``: hold a stream
        top's output ready low at random; ``waves``: write an FST; ``primitives``: simulate the
        Xilinx primitives the three-term adders are built from.  Records ``sim`` in report.json."""
        if simulator not in ("verilator", "icarus"):
            raise UserError(f"simulator must be 'verilator' or 'icarus', got {simulator!r}")
        for name, value in (("gaps", gaps), ("waves", waves), ("stall", stall), ("primitives", primitives)):
            if not isinstance(value, (bool, np.bool_)):
                raise UserError(f"Project.sim: the argument {name} must be True or False, got {value!r}")
        return sim(self, x, vectors, seed, gaps=gaps, waves=waves, simulator=simulator, stall=stall,
                   primitives=primitives)

    def synth(self, progress: bool = False) -> SynthResult:
        """yosys synthesis of the output folder's RTL for the part's family (cached by source
        contents), with the estimate's ratio to it; records ``synth`` in report.json.
        ``progress``: a progress line on stderr while yosys runs."""
        return synth(self, progress)
