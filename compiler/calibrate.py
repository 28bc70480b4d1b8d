"""Plans from data, and counts of the values a plan clips.

`calibrate` runs the float model (the IR after the frontend and the float passes,
`float_eval.evaluate_float`) on the user's data, measures every value a plan can name and
writes a complete bit plan:

* graph inputs and activations: `--bits` wide, RND_CONV and SAT, signed only where the data
  goes negative, integer bits from the measured range: the fewest with which no value of
  the data saturates (after rounding), plus `--margin` bits of headroom (each bit doubles
  the range);
* weights and biases: `--weight-bits` / `--bias-bits` wide, integer bits the fewest that
  hold their own values (no margin: they are known exactly), per tensor or, with
  `--per-channel`, per output channel of each Gemm/MatMul/Conv;
* left out: a value read only by ReLUs, table look-ups (Sigmoid, Tanh, ..., Softmax) or a model's
  quantizers (the next output, or the table's input, is quantized; a format before it would
  round twice, and before a ReLU spend a bit on the half it discards), outputs of
  layout-only ops (copies) and of table look-ups (the plan's `tables` give them), and
  whatever a quantized model's own quantizers set (`float_graph`).

Entries of a partial plan are kept as written; `_calibration` records how the plan was made.

`emulate_counting` runs the emulator and counts, at every conversion (input quantization
and every REQUANTIZE), the values whose rounded mantissa lies outside the format: they
saturate, wrap or become 0 by the format's overflow mode.  Table look-ups are not counted:
their input formats clip on purpose (sigmoid and exp are flat there).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .argnames import command_line_active, option
from .emulate import EmulationError, Fx, _int_to_float, quantize_inputs, run
from .errors import UsageError, UserError
from .fixed import MAX_PLAN_INT_BITS, MAX_WIDTH, FixedType, Formats, Overflow, Rounding
from .float_eval import constant_value, evaluate_float
from .ir import LAYOUT_OPS, Graph, Op, TensorKind
from .mantissa import round_float
from .plan import Plan, parse_plan
from .type_names import readable_type

# Samples per float evaluation or emulation: at most 4096, and at most 2**24 values of every
# activation at once (evaluate_float keeps them all; 128 MB of float64).
MAX_BATCH, MAX_BATCH_VALUES = 4096, 1 << 24
DEFAULT_BITS = {"activation": 8, "weight": 8, "bias": 16}
DEFAULT_MARGIN_BITS = 1
MAX_MARGIN_BITS = 64
ROUNDING, OVERFLOW = Rounding.RND_CONV, Overflow.SAT


@dataclass(frozen=True)
class CalibrationOptions:
    """How `calibrate` chooses formats: widths per role, headroom, per-channel constants."""

    bits: int = DEFAULT_BITS["activation"]  # inputs and activations
    weight_bits: int = DEFAULT_BITS["weight"]
    bias_bits: int = DEFAULT_BITS["bias"]
    margin: int = DEFAULT_MARGIN_BITS  # integer bits of headroom above the measured range
    per_channel: bool = False

    def __post_init__(self):
        for name, value in (("bits", self.bits), ("weight_bits", self.weight_bits), ("bias_bits", self.bias_bits)):
            if not isinstance(value, int) or not 1 <= value <= MAX_WIDTH:
                raise UsageError(f"{option(name)} must be a width from 1 to {MAX_WIDTH} bits, got {value!r}")
        if not isinstance(self.margin, int) or not 0 <= self.margin <= MAX_MARGIN_BITS:
            raise UsageError(f"{option('margin')} must be a whole number of integer bits from 0 to {MAX_MARGIN_BITS} "
                             f"(each bit doubles the headroom above the measured range), got {self.margin!r}")


# --- measuring ---------------------------------------------------------------------------


def float_graph(model, keep=frozenset()) -> tuple[Graph, frozenset[str]]:
    """The IR the plan speaks of: the frontend's, canonicalised and with BatchNorm folded,
    keeping the tensors a (partial) plan names, as compile does; and the names of the
    tensors a quantized model's own quantizers give formats (lower_quant, which compile runs
    between the two), which a plan entry would override."""
    from .frontend import load_onnx
    from .passes.canonicalise import canonicalise
    from .passes.fold_batchnorm import fold_batchnorm
    from .passes.lower_quant import lower_quant

    graph = canonicalise(load_onnx(model), keep=keep)
    lowered = lower_quant(graph)
    by_model = frozenset(t.onnx_name or n for n, t in lowered.tensors.items() if t.formats is not None)
    return fold_batchnorm(graph, keep=keep), by_model


def batches(graph: Graph, inputs: dict[str, np.ndarray]):
    """The data in slices small enough that every value of a slice fits in memory at once."""
    per_sample = sum(math.prod(graph.tensor(s.outputs[0]).shape) for n in graph.nodes for s in n.stages())
    size = max(1, min(MAX_BATCH, MAX_BATCH_VALUES // max(per_sample, 1)))
    samples = len(next(iter(inputs.values())))
    for start in range(0, samples, size):
        yield {k: v[start:start + size] for k, v in inputs.items()}


def measure(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """(min, max) over the data of every graph input and activation of the float model."""
    names = [*graph.inputs, *(n.outputs[0] for n in graph.nodes)]
    every_value = Graph(graph.name, graph.inputs, tuple(names), graph.nodes, graph.tensors)
    ranges: dict[str, tuple[float, float]] = {}
    for batch in batches(graph, inputs):
        with np.errstate(all="ignore"):  # an overflow shows up as a non-finite range, refused below
            values = evaluate_float(every_value, batch)
        for name, v in values.items():
            lo, hi = float(v.min()), float(v.max())
            if name in ranges:
                lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
            ranges[name] = (lo, hi)
    for name, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise UserError(f"the float model's value {name!r} is not finite on the calibration data (range "
                            f"{lo:g}..{hi:g}): the data overflows the model; check its scale")
    return ranges


# --- formats from ranges -----------------------------------------------------------------


def int_bits_for(lo: float, hi: float, width: int, signed: bool) -> int:
    """The fewest integer bits with which ``lo`` and ``hi``, rounded RND_CONV into a
    ``width``-bit format, lie inside its range (nothing saturates).  A range of only 0 is
    given the bits of a range reaching 1."""
    reach = max(abs(lo), abs(hi))
    if reach == 0:
        lo, hi, reach = 0.0, 1.0, 1.0
    int_bits = math.frexp(reach)[1] + int(signed) - 2  # one below the smallest that can hold it
    while True:
        t = FixedType(width, int_bits, signed, ROUNDING, OVERFLOW)
        m = round_float(np.array([lo, hi]), Formats.uniform((2,), t), "range")
        if int(m[0]) >= t.min_mantissa and int(m[1]) <= t.max_mantissa:
            return int_bits
        int_bits += 1


def format_for(lo: float, hi: float, width: int, margin: int, what: str) -> FixedType:
    """The format of a value ranging over [lo, hi]: signed only if it goes negative."""
    signed = lo < 0
    int_bits = int_bits_for(lo, hi, width, signed) + margin
    if abs(int_bits) > MAX_PLAN_INT_BITS:
        raise UserError(f"{what} ranges over {lo:g}..{hi:g}, which needs {int_bits} integer bits; a plan allows "
                        f"at most {MAX_PLAN_INT_BITS}")
    return FixedType(width, int_bits, signed, ROUNDING, OVERFLOW)


def _planned_values(graph: Graph, by_model=frozenset()) -> tuple[list[str], dict[str, str]]:
    """(inputs and activations calibration gives a format, {the others: why}); ``by_model``:
    names a quantized model's quantizers give formats (see `float_graph`)."""
    planned, left = [], {}
    for name in graph.inputs:
        if graph.tensor(name).formats is not None or name in by_model:
            left[name] = "the model gives its format (an integer input, or its quantizer's)"
        else:
            planned.append(name)
    for node in graph.nodes:
        name = node.outputs[0]
        if node.op in LAYOUT_OPS:
            left[name] = "layout-only op: its values are copies"
        elif node.op in (Op.TABLE, Op.SOFTMAX):
            left[name] = "table look-up output: the plan's tables give its format"
        elif node.op == Op.QUANT:
            left[name] = "the model's quantizer gives its format"
        elif _read_only_by(graph, name, (Op.RELU, Op.TABLE, Op.SOFTMAX, Op.QUANT)):
            left[name] = ("read only by ReLU, table look-ups or the model's quantizers, which quantize it: "
                          "kept exact")
        else:
            planned.append(name)
    return planned, left


def _read_only_by(graph: Graph, name: str, ops) -> bool:
    """``name`` is no graph output, and every node reading it is one of ``ops``."""
    consumers = graph.consumers(name)
    return bool(consumers) and name not in graph.outputs and all(c.op in ops for c in consumers)


def _channel_layers(graph: Graph) -> dict[str, str]:
    """{constant name: 'weight' or 'bias'} for the constants of Gemm/MatMul/Conv layers."""
    roles = {}
    for node in graph.nodes:
        if node.op in (Op.DENSE, Op.CONV):
            roles[node.inputs[1]] = "weight"
            if len(node.inputs) > 2:
                roles[node.inputs[2]] = "bias"
    return roles


def _constant_entry(graph: Graph, name: str, width: int, layer_role: str | None):
    """A weight's or bias's plan entry from its own float values; per output channel when
    ``layer_role`` says it is a Gemm/MatMul/Conv weight or (1-D) bias."""
    t = graph.tensor(name)
    key = t.onnx_name or t.name
    values = constant_value(t)
    if layer_role is None or values.ndim == 0 or (layer_role == "bias" and values.ndim != 1):
        return str(format_for(float(values.min(initial=0)), float(values.max(initial=0)), width, 0,
                              f"{t.kind.value} {key!r}"))
    rows = values.reshape(values.shape[0], -1)
    formats = [str(format_for(float(r.min(initial=0)), float(r.max(initial=0)), width, 0,
                              f"{t.kind.value} {key!r} (output channel {i})")) for i, r in enumerate(rows)]
    return {"axis": t.onnx_axes[0] if t.onnx_axes else 0, "formats": formats}


def calibrated_plan(graph: Graph, ranges: dict[str, tuple[float, float]], options: CalibrationOptions,
                    partial: dict | None = None, record: dict | None = None, by_model=frozenset()) -> dict:
    """The plan (JSON object) for ``graph`` from measured ``ranges``.  ``partial``: a raw
    plan whose entries win, its file references already relative to the new plan (entries
    holding only notes, as plan-template writes them, are calibrated like absent ones)."""
    partial = partial or {}
    kept = {k: v for k, v in partial.get("tensors", {}).items()
            if not k.startswith("_") and not (isinstance(v, dict) and all(key.startswith("_") for key in v))}
    tensors: dict = {}
    values, left = _planned_values(graph, by_model)
    for name in values:
        if name not in kept:
            what = "input" if name in graph.inputs else "activation"
            tensors[name] = str(format_for(*ranges[name], options.bits, options.margin, f"{what} {name!r}"))
    channel_layers = _channel_layers(graph)
    for name, t in graph.tensors.items():
        key = t.onnx_name or t.name
        if not t.is_constant or key in kept:
            continue
        if t.quantizer is not None or key in by_model:
            left[key] = "quantized by the model's quantizer, or set on the model's grid (lower_quant)"
        elif t.kind in (TensorKind.WEIGHT, TensorKind.BIAS):
            width = options.weight_bits if t.kind == TensorKind.WEIGHT else options.bias_bits
            tensors[key] = _constant_entry(graph, name, width,
                                           channel_layers.get(name) if options.per_channel else None)
    tensors.update(kept)
    defaults = {"input": None, "weight": None, "bias": None, "activation": None}
    defaults.update({k: v for k, v in partial.get("defaults", {}).items() if not k.startswith("_")})
    plan = {k: v for k, v in partial.items() if k.startswith("_") and k not in ("_note", "_calibration")}
    plan["_note"] = ("bit plan written by 'finegrain calibrate' from data: see _calibration and "
                     "docs/calibration.md")
    plan["_calibration"] = {
        **(record or {}), "finegrain_version": __version__, "margin_bits": options.margin,
        "bits": {"input": options.bits, "activation": options.bits, "weight": options.weight_bits,
                 "bias": options.bias_bits},
        "per_channel": options.per_channel, "modes": f"{ROUNDING.name},{OVERFLOW.name}",
        "kept_from_partial_plan": sorted(kept), "not_planned": left,
        "measured": {name: {"min": lo, "max": hi} for name, (lo, hi) in ranges.items()},
    }
    plan["defaults"] = defaults
    plan["tensors"] = tensors
    if "tables" in partial:
        plan["tables"] = partial["tables"]
    return plan


def rebase_partial(raw: dict, source_dir: Path, target_dir: Path) -> dict:
    """A raw plan whose ``FILE.npz:KEY`` references (per-element arrays, codebook indices),
    relative to ``source_dir``, are made relative to ``target_dir``, where the new plan goes."""
    tensors = {}
    for name, entry in raw.get("tensors", {}).items():
        if isinstance(entry, dict):
            entry = dict(entry)
            for ref_key in ("elements", "indices"):
                ref = entry.get(ref_key)
                if isinstance(ref, str) and ":" in ref:
                    file_part, key = ref.rsplit(":", 1)
                    if not Path(file_part).is_absolute():
                        moved = os.path.relpath(Path(source_dir).resolve() / file_part, Path(target_dir).resolve())
                        entry[ref_key] = f"{Path(moved).as_posix()}:{key}"
        tensors[name] = entry
    return {**raw, "tensors": tensors}


def calibrate(model, read_inputs, options: CalibrationOptions, partial: Plan | None = None,
              plan_path: Path | str = "plan.json", data_name: str = "<memory>") -> tuple[dict, list[str]]:
    """Measure the model on data and make a plan for it; return (plan, warnings).

    ``read_inputs(graph)`` gives the data (float arrays keyed by input name, batch first),
    checked against the graph's inputs.  The plan is checked by compiling the model with it
    (every pass, no backend), and the compiled model is emulated on the same data: the
    warnings are the compile's (a partial plan's saturating weight) and what still clips
    (a partial plan's entry, or a zero margin on a rounded upstream value).
    """
    from .frontend import load_onnx
    from .build_config import BuildConfig
    from .project import compile_graph

    keep = frozenset(partial.tensors) if partial is not None else frozenset()
    graph, by_model = float_graph(model, keep)
    inputs = read_inputs(graph)
    ranges = measure(graph, inputs)
    plan_dir = Path(plan_path).parent
    raw = None if partial is None else rebase_partial(partial.raw, Path(partial.path).parent, plan_dir)
    record = {"data": data_name, "samples": int(len(next(iter(inputs.values())))),
              "partial_plan": None if partial is None else partial.path}
    plan = calibrated_plan(graph, ranges, options, raw, record, by_model)
    project = compile_graph(load_onnx(model), parse_plan(plan, plan_dir, str(plan_path)),
                            BuildConfig(model=str(model), plan=str(plan_path), backends=()))
    _, clippings = count_clipping(project.graph, inputs, project.plan)
    return plan, project.warnings + clipping_warnings(clippings)


# --- counting what clips -----------------------------------------------------------------


@dataclass
class Clipping:
    """What one conversion did to the data: counts of values outside its format."""

    tensor: str
    kind: str  # "input" or "activation"
    formats: Formats
    values: int = 0  # converted values (pruned elements left out)
    saturated: int = 0
    wrapped: int = 0
    zeroed: int = 0  # SAT_ZERO
    data_min: float = math.inf  # of the values before conversion
    data_max: float = -math.inf
    clipped_types: set = field(default_factory=set)
    by_model: bool = False  # the format is a quantized model's own quantizer, not the plan's

    @property
    def outside(self) -> int:
        return self.saturated + self.wrapped + self.zeroed

    def report(self) -> dict:
        return {"kind": self.kind, "format": self.formats.summary(), "by_model": self.by_model, "values": self.values,
                "saturated": self.saturated, "wrapped": self.wrapped, "zeroed": self.zeroed,
                "data_min": self.data_min, "data_max": self.data_max}

    def warning(self) -> str | None:
        """One line naming the tensor, the counts, the format and how far the data reaches."""
        if not self.outside:
            return None
        kinds = [f"{n} {verb}" for n, verb in ((self.saturated, "saturate"), (self.wrapped, "wrap around"),
                                                (self.zeroed, "become 0 (SAT_ZERO)")) if n]
        share = 100 * self.outside / self.values
        types = sorted(self.clipped_types, key=str)
        if len(types) == 1:
            lo, hi = _range(types[0])
            where = f"{types[0]} (range {float(lo):.4g}..{float(hi):.4g})"
        else:
            where = f"{len(types)} of its per-element formats ({readable_type(self.formats)})"
        counted = f"{self.outside} of {self.values} values ({share:.2f}%)" if share >= 0.01 else \
            f"{self.outside} of {self.values} values (<0.01%)"
        if len(kinds) == 1:
            text = f"{self.kind} {self.tensor!r}: {counted} {kinds[0].split(' ', 1)[1]} in {where}"
        else:
            text = f"{self.kind} {self.tensor!r}: {counted} leave {where}: {' and '.join(kinds)}"
        reach = [f"{v:.4g}" for v, out in ((self.data_min, self.data_min < min(_range(t)[0] for t in types)),
                                           (self.data_max, self.data_max > max(_range(t)[1] for t in types))) if out]
        text += f"; the data reaches {' and '.join(reach) or 'its end and rounds past it'}"
        if self.by_model:
            return text + ("; the format is the model's own quantizer, and the quantized model clips these values "
                           "the same way (outside the range it was trained or calibrated for)")
        if self.wrapped:
            text += ("; a value that wraps jumps to the other end of the range, an error as large as the range "
                     "and far worse than saturating: give it more integer bits, or the overflow mode SAT")
        else:
            text += "; give it more integer bits"
        return text + (" (finegrain calibrate --data finds them)" if command_line_active() else
                       " (compiler.calibrate.calibrate on data finds them)")


def _range(t: FixedType):
    """The values ``t`` keeps: SAT_SYM never gives a signed type its most negative code."""
    sym = t.overflow == Overflow.SAT_SYM and t.signed and t.width > 1
    return (-t.max_value if sym else t.min_value), t.max_value


class ClipCounter:
    """The emulator's ``on_convert`` hook: counts, per converted tensor, the values whose
    rounded mantissa lies outside the format (a SAT_SYM format's range is +-max).

    ``plan``: the plan the graph was compiled with; a conversion it did not ask for is a
    quantized model's own quantizer (lower_quant marks those activations; an input the plan
    neither names nor defaults took its format from the model)."""

    def __init__(self, graph: Graph, plan: Plan | None = None):
        self.graph = graph
        self.counts: dict[str, Clipping] = {}
        lowered = {n for n, t in graph.tensors.items() if t.scheme is not None and "lowered" in t.scheme}
        quantized = bool(lowered) or any(t.quantizer is not None for t in graph.tensors.values())
        def planned(n: str) -> bool:  # the plan names it: its format is the plan's, not the model's
            return plan is not None and plan.spec(graph.tensor(n).onnx_name or n) is not None

        self.by_model = {n for n in lowered if not planned(n)} | {
            n for n in graph.inputs if quantized and plan is not None and not planned(n)
            and plan.default("input") is None}

    def __call__(self, name: str, value, rounded: np.ndarray, formats: Formats) -> None:
        kind = "input" if name in self.graph.inputs else "activation"
        c = self.counts.setdefault(name, Clipping(name, kind, formats, by_model=name in self.by_model))
        kept = ~formats.pruned
        c.values += int(kept.sum()) * rounded.shape[0]
        if rounded.size:
            c.data_min, c.data_max = (min(c.data_min, _extreme(value, "min")),
                                      max(c.data_max, _extreme(value, "max")))
        lo, hi = formats.mantissa_bounds()
        if rounded.dtype != object and (formats.width.size == 0 or formats.width.max() <= 62):
            lo, hi = lo.astype(np.int64), hi.astype(np.int64)
        sym = (formats.overflow == Overflow.SAT_SYM) & formats.signed & (formats.width > 1)
        lo = np.where(sym, -hi, lo)
        outside = ((rounded < lo) | (rounded > hi)) & kept
        if not outside.any():
            return
        overflow = np.broadcast_to(formats.overflow, outside.shape)
        wrapped = outside & (overflow == Overflow.WRAP)
        zeroed = outside & (overflow == Overflow.SAT_ZERO)
        c.wrapped += int(wrapped.sum())
        c.zeroed += int(zeroed.sum())
        c.saturated += int((outside & ~wrapped & ~zeroed).sum())
        uniform = formats.uniform_type()
        if uniform is not None:
            c.clipped_types.add(uniform)
        else:
            c.clipped_types.update(formats.element(tuple(i)) for i in np.argwhere(outside.any(axis=0)))

    def results(self) -> list[Clipping]:
        return list(self.counts.values())


def _extreme(value, how: str) -> float:
    """The smallest or largest value before conversion: a float array, or exact Fx mantissas."""
    if isinstance(value, Fx):
        m = value.m.min() if how == "min" else value.m.max()
        return _int_to_float(int(m), value.frac)
    return float(value.min() if how == "min" else value.max())


def emulate_counting(graph: Graph, inputs, plan: Plan | None = None,
                     counter: ClipCounter | None = None) -> tuple[dict[str, Fx], list[Clipping]]:
    """Emulate ``graph`` (compiled with ``plan``) on float ``inputs``; return (its outputs, what
    each conversion clipped, added to ``counter``'s counts of earlier batches when given)."""
    counter = counter or ClipCounter(graph, plan)
    values = run(graph, quantize_inputs(graph, inputs, on_convert=counter), on_convert=counter)
    return {name: values[name] for name in graph.outputs}, counter.results()


def count_clipping(graph: Graph, inputs, plan: Plan | None = None) -> tuple[int, list[Clipping]]:
    """(samples, what each conversion clips) of ``graph`` on float ``inputs`` (as
    `emulate.quantize_inputs` takes them), emulated in slices (`batches`) so that memory
    stays bounded however many samples there are."""
    counter = ClipCounter(graph, plan)
    inputs = _batched(graph, inputs)
    samples = 0
    for batch in batches(graph, inputs):
        emulate_counting(graph, batch, counter=counter)
        samples += len(next(iter(batch.values())))
    return samples, counter.results()


def _batched(graph: Graph, inputs) -> dict[str, np.ndarray]:
    """{input name: array with a batch axis} from an array (one input) or a dict, each with
    or without its batch axis."""
    if not isinstance(inputs, dict):
        if len(graph.inputs) != 1:
            raise EmulationError(f"graph has inputs {list(graph.inputs)}: pass a dict of arrays")
        inputs = {graph.inputs[0]: inputs}
    if not inputs:
        raise EmulationError(f"no inputs given (graph inputs: {list(graph.inputs)})")
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    return {k: a[np.newaxis] if k in graph.inputs and a.shape == graph.tensor(k).shape else a
            for k, a in arrays.items()}


def clipping_warnings(clippings: list[Clipping]) -> list[str]:
    """The warning line of each conversion that clipped."""
    return [c.warning() for c in clippings if c.outside]


def saturation_report(clippings: list[Clipping], data_name: str, samples: int) -> dict:
    """The `saturation` entry of report.json."""
    return {"data": data_name, "samples": samples, "tensors": {c.tensor: c.report() for c in clippings}}
