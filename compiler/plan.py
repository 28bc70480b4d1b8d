"""The bit plan: which fixed-point format each tensor has, per tensor, per axis index or
per element, and for constants the weight quantizers beyond fixed point (power-of-two
values, row-wise mixes of schemes, codebooks).  Loading validates the file on its own;
`Plan.formats_for` resolves an entry against a tensor's shape, `Plan.row_schemes` a
constant's scheme entry against its shape and float values.  The schema is documented in
docs/bit-plan.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import PlanError, reraise_interrupt
from .fixed import MAX_PLAN_INT_BITS, MAX_WIDTH, FixedType, FormatError, Formats, Overflow, Rounding
from .mantissa import quantize_float
from .table_functions import FUNCTIONS
from .weight_formats import Pow2Type, parse_weight_format

DEFAULT_KEYS = ("input", "weight", "bias", "activation")

# Table look-ups (Sigmoid, Tanh and the other functions of table_functions.py, Softmax) when
# the plan says nothing.  The table sizes are the number of input codes: 2**width of the
# table's input format (sigmoid_input: 1024 entries over [-8, 8), step 1/64).
DEFAULT_TABLES = {
    **{f"{f.name}_{role}": fmt for f in FUNCTIONS.values()
       for role, fmt in (("input", f.default_input), ("output", f.default_output))},
    "exp_input": "fixed<10,4,TRN,SAT>",  # softmax: x - max(x) in [-8, 0], step 1/64
    "exp_output": "ufixed<18,1,RND_CONV,SAT>",
    "inv_bits": 10,  # softmax: 1/sum table, 1024 entries over [0, 2**ceil(log2(n+1)))
    "inv_output": "ufixed<18,1,RND_CONV,SAT>",
    "softmax_output": "ufixed<16,0,RND_CONV,SAT>",
}


# Table limits: a table's input (sigmoid_input, ..., exp_input, inv_bits) is at most
# MAX_TABLE_INPUT_BITS wide (2**20 entries), and its entries (the *_output formats) at most
# MAX_TABLE_OUTPUT_BITS.  Documented in docs/bit-plan.md, "Limits".
MAX_TABLE_INPUT_BITS = 20
# a table function of a quantized model's codes reads them directly up to this width (4,096
# entries; passes/lower_quant.py), else in its <function>_input format
TABLE_CODE_BITS = 12
MAX_TABLE_OUTPUT_BITS = 64

# Per-element arrays are checked against this before they are cast to int64.
ELEMENT_FIELD_LIMIT = 1 << 20

RATIO_TOLERANCE = 1e-9
ASSIGN_RULES = ("variance", "order")


@dataclass(frozen=True)
class Codebook:
    """A list of distinct centres, each exact in ``format``; a weight takes one of them."""

    centres: tuple[float, ...]
    format: FixedType

    def __str__(self) -> str:
        return f"codebook[{len(self.centres)}] in {self.format}"


# What one index along an axis (or a whole tensor) of a constant is quantized by.
Scheme = FixedType | Pow2Type | Codebook


@dataclass(frozen=True)
class MixEntry:
    scheme: FixedType | Pow2Type
    rows: Fraction  # the share of the axis, as written (a decimal, read exactly)
    text: str  # the format string as written


@dataclass(frozen=True, eq=False)
class TensorSpec:
    """One `tensors` entry, not yet matched to a shape."""

    name: str
    whole: FixedType | Pow2Type | None = None  # one format for the whole tensor
    axis: int | None = None  # one format (mix entry, codebook) per index along this axis
    axis_types: tuple[FixedType | Pow2Type, ...] = ()
    elements: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # bits, int_bits, signed
    element_modes: tuple[Rounding, Overflow] = (Rounding.TRN, Overflow.WRAP)
    mix: tuple[MixEntry, ...] = ()  # row-wise mix of schemes along `axis`
    assign: str = "variance"  # mix: which rows take which entry
    group: bool = False  # mix: make rows of one entry contiguous (passes/group_rows.py)
    codebooks: tuple[Codebook, ...] = ()  # one for the tensor (axis None) or one per index
    indices: np.ndarray | None = None  # codebook indices, shaped like the ONNX tensor
    source: str = ""  # how the plan wrote it, for plan.resolved.json

    @property
    def weight_scheme(self) -> str | None:
        """What makes this a constants-only entry (pow2, a mix, a codebook), or None."""
        if self.codebooks:
            return "a codebook"
        if self.mix:
            return "a row-wise mix"
        pow2 = [t for t in (self.whole, *self.axis_types) if isinstance(t, Pow2Type)]
        return str(pow2[0]) if pow2 else None


@dataclass(frozen=True, eq=False)
class RowSchemes:
    """A constant's scheme entry resolved against its ONNX shape: ``schemes[i]`` quantizes
    index ``i`` along ``axis`` (``axis`` None: ``schemes[0]`` the whole tensor)."""

    axis: int | None
    schemes: tuple[Scheme, ...]
    indices: np.ndarray | None  # codebook indices (ONNX shape), None: nearest centre
    record: dict  # how the entry resolved, for plan.resolved.json


@dataclass(frozen=True, eq=False)
class Plan:
    defaults: dict
    tensors: dict
    tables: dict
    path: str = "<memory>"
    raw: dict = field(default_factory=dict)

    def spec(self, name: str) -> TensorSpec | None:
        return self.tensors.get(name)

    def default(self, role: str) -> FixedType | Pow2Type | None:
        return self.defaults.get(role)

    def table_type(self, key: str) -> FixedType:
        return self.tables[key]

    def formats_for(self, spec: TensorSpec, onnx_shape: tuple[int, ...], batch_axis: bool) -> Formats:
        """Resolve a spec against a tensor's ONNX shape.

        ``batch_axis``: the ONNX shape starts with the batch axis (activations), which an
        `axis` entry counts and per-element arrays leave out.  Entries with a weight
        quantizer (pow2, mix, codebook) resolve with `row_schemes` instead.
        """
        ir_shape = tuple(onnx_shape[1:]) if batch_axis else tuple(onnx_shape)
        scheme = spec.weight_scheme
        if scheme is not None:
            what = "an activation or graph input" if batch_axis else "not a weight or bias"
            raise PlanError(f"plan entry for tensor {spec.name!r}: {scheme} is a weight quantizer and applies "
                            f"to constants (weights and biases) only, but {spec.name!r} is {what}; give it "
                            f"fixed<...> formats")
        if spec.whole is not None:
            return Formats.uniform(ir_shape, spec.whole)
        if spec.axis is not None:
            axis = _check_axis(spec, onnx_shape, batch_axis)
            _check_axis_length(spec, len(spec.axis_types), "formats", onnx_shape, axis)
            ir_axis = axis - 1 if batch_axis else axis
            types = np.empty(ir_shape[ir_axis], dtype=object)
            types[:] = list(spec.axis_types)
            shape = [1] * len(ir_shape)
            shape[ir_axis] = ir_shape[ir_axis]
            return Formats.from_types(np.broadcast_to(types.reshape(shape), ir_shape))
        bits, int_bits, signed = spec.elements
        if bits.shape != ir_shape:
            hint = " (activations: without the batch axis)" if batch_axis else ""
            raise PlanError(f"plan entry for tensor {spec.name!r}: per-element arrays have shape "
                            f"{list(bits.shape)}, but the tensor needs {list(ir_shape)}{hint}")
        rounding, overflow = spec.element_modes
        return Formats(bits, np.where(bits > 0, int_bits, 0), signed.astype(bool),
                       np.full(ir_shape, int(rounding)), np.full(ir_shape, int(overflow)))

    def row_schemes(self, spec: TensorSpec, onnx_shape: tuple[int, ...], values: np.ndarray) -> RowSchemes:
        """Resolve a constant's entry with a weight quantizer against its ONNX shape and
        float ``values`` (in ONNX layout: a mix assigns rows by their values)."""
        onnx_shape = tuple(onnx_shape)
        if spec.whole is not None:
            return RowSchemes(None, (spec.whole,), None, {"kind": "pow2", "format": str(spec.whole)})
        if spec.codebooks and spec.axis is None:
            return RowSchemes(None, spec.codebooks, _check_indices(spec, onnx_shape), {"kind": "codebook"})
        axis = _check_axis(spec, onnx_shape, batch_axis=False)
        if spec.codebooks:
            _check_axis_length(spec, len(spec.codebooks), "codebooks", onnx_shape, axis)
            return RowSchemes(axis, spec.codebooks, _check_indices(spec, onnx_shape, axis),
                              {"kind": "codebook", "axis": axis})
        if not spec.mix:
            _check_axis_length(spec, len(spec.axis_types), "formats", onnx_shape, axis)
            return RowSchemes(axis, spec.axis_types, None, {"kind": "axis", "axis": axis})
        counts = mix_counts(spec, onnx_shape[axis])
        rows = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0).reshape(onnx_shape[axis], -1)
        order = mix_order(rows, spec.assign)
        row_entry = np.empty(len(order), dtype=np.int64)
        row_entry[order] = np.repeat(np.arange(len(counts)), counts)
        record = dict(kind="mix", axis=axis, assign=spec.assign, group=spec.group,
                      entries=[{"format": e.text, "rows": int(c)} for e, c in zip(spec.mix, counts)],
                      mix=_count_by(e.text for e, c in zip(spec.mix, counts) for _ in range(c)),
                      row_entry=row_entry.tolist())
        return RowSchemes(axis, tuple(spec.mix[i].scheme for i in row_entry), None, record)


def mix_counts(spec: TensorSpec, n: int) -> list[int]:
    """Rows per mix entry, by largest remainder: entry ``i``'s quota is
    ``rows_i / sum(rows) * n``; each entry gets the whole part of its quota, and the rows
    left over go one each to the entries with the largest fractional parts (ties: the entry
    listed first).  Exact: the shares are the decimals the plan wrote."""
    total = sum(e.rows for e in spec.mix)
    quotas = [e.rows * n / total for e in spec.mix]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    return counts


def mix_order(rows: np.ndarray, assign: str) -> np.ndarray:
    """Row indices in the order they take mix entries: "order" by index; "variance" by the
    variance of each row's float values (``np.var``), largest first, ties by index."""
    if assign == "order":
        return np.arange(rows.shape[0])
    variance = rows.var(axis=1) if rows.shape[1] else np.zeros(rows.shape[0])
    return np.lexsort((np.arange(rows.shape[0]), -variance))


def _count_by(keys) -> dict:
    counts: dict = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return counts


def _check_axis(spec: TensorSpec, onnx_shape, batch_axis: bool) -> int:
    rank = len(onnx_shape)
    axis = spec.axis + rank if spec.axis < 0 else spec.axis
    if not 0 <= axis < rank or (batch_axis and axis == 0):
        valid = f"1..{rank - 1} (axis 0 is the batch)" if batch_axis else f"0..{rank - 1}"
        raise PlanError(f"plan entry for tensor {spec.name!r}: axis {spec.axis} is not valid for "
                        f"shape {list(onnx_shape)}; use an axis in {valid}")
    return axis


def _check_axis_length(spec: TensorSpec, given: int, what: str, onnx_shape, axis: int) -> None:
    if given != onnx_shape[axis]:
        one = {"formats": "format", "codebooks": "codebook"}[what]
        raise PlanError(f"plan entry for tensor {spec.name!r}: {given} {what} given for axis {spec.axis}, "
                        f"but that axis has length {onnx_shape[axis]} (shape {list(onnx_shape)}); give "
                        f"exactly one {one} per index")


def _check_indices(spec: TensorSpec, onnx_shape, axis: int | None = None) -> np.ndarray | None:
    """The codebook indices, checked against the shape and each codebook's size."""
    if spec.indices is None:
        return None
    where = f"plan entry for tensor {spec.name!r}"
    idx = spec.indices
    if idx.shape != tuple(onnx_shape):
        raise PlanError(f"{where}: codebook indices have shape {list(idx.shape)}, but the tensor's ONNX "
                        f"shape is {list(onnx_shape)}")
    sizes = np.array([len(c.centres) for c in spec.codebooks])
    size = np.broadcast_to(sizes[0], idx.shape) if axis is None else np.moveaxis(
        np.broadcast_to(sizes, idx.shape[:axis] + idx.shape[axis + 1:] + (len(sizes),)), -1, axis)
    bad = (idx < 0) | (idx >= size)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise PlanError(f"{where}: index {int(idx[pos])} out of range for a codebook of {int(size[pos])} "
                        f"centres (at index {list(pos)} of the indices)")
    return idx


def _format(value, where: str, weight: bool = False) -> FixedType | Pow2Type:
    """A format string; ``weight``: pow2<...> is allowed too (constants only)."""
    try:
        parsed = parse_weight_format(value)
    except FormatError as err:
        raise PlanError(f"{where}: {err}") from None
    if isinstance(parsed, Pow2Type) and not weight:
        raise PlanError(f"{where}: {value!r} is a power-of-two weight quantizer, for weights and biases only; "
                        f"this needs a fixed<...> or ufixed<...> format")
    return parsed


def _is_note(key: str) -> bool:
    return key.startswith("_")


def _parse_entry(name: str, entry, base: Path) -> TensorSpec | None:
    where = f"plan entry for tensor {name!r}"
    if isinstance(entry, str):
        return TensorSpec(name, whole=_format(entry, where, weight=True), source=entry)
    if not isinstance(entry, dict):
        raise PlanError(f"{where} must be a format string, {{'axis': k, 'formats': [...]}}, "
                        f"{{'axis': k, 'mix': [...]}}, {{'codebook': {{...}}}}, {{'axis': k, 'codebooks': [...]}} "
                        f"or {{'elements': 'file.npz:KEY'}}; got {entry!r}")
    keys = {k for k in entry if not _is_note(k)}
    if not keys:
        return None  # a template entry holding only notes: the default applies
    if "codebook" in keys or "codebooks" in keys:
        return _parse_codebooks(name, entry, keys, base, where)
    if "mix" in keys:
        return _parse_mix(name, entry, keys, where)
    if "axis" in keys or "formats" in keys:
        extra = keys - {"axis", "formats"}
        if extra or keys != {"axis", "formats"}:
            raise PlanError(f"{where}: a per-axis entry needs exactly the keys 'axis' and 'formats', "
                            f"got {sorted(keys)}")
        axis, formats = _axis_key(entry, where), entry["formats"]
        if not isinstance(formats, list) or not formats:
            raise PlanError(f"{where}: 'formats' must be a non-empty list of format strings, got {formats!r}")
        types = tuple(_format(f, f"{where}, formats[{i}]", weight=True) for i, f in enumerate(formats))
        return TensorSpec(name, axis=axis, axis_types=types, source=f"axis {axis}: {len(types)} formats")
    if "elements" in keys:
        extra = keys - {"elements", "rounding", "overflow"}
        if extra:
            raise PlanError(f"{where}: unknown keys {sorted(extra)}; a per-element entry takes "
                            f"'elements', 'rounding', 'overflow'")
        return _parse_elements(name, entry, base, where)
    raise PlanError(f"{where}: unknown keys {sorted(keys)}; expected a format string, 'axis'+'formats', "
                    f"'axis'+'mix', 'codebook', 'axis'+'codebooks', or 'elements'")


def _axis_key(entry: dict, where: str) -> int:
    axis = entry["axis"]
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise PlanError(f"{where}: 'axis' must be an integer, got {axis!r}")
    return axis


def _only_keys(keys: set, required: set, optional: set, what: str, where: str) -> None:
    if not required <= keys or keys - required - optional:
        allowed = [repr(k) for k in sorted(required)] + [f"optionally {k!r}" for k in sorted(optional)]
        raise PlanError(f"{where}: {what} takes the keys {', '.join(allowed)}; got {sorted(keys)}")


def _parse_mix(name: str, entry: dict, keys: set, where: str) -> TensorSpec:
    _only_keys(keys, {"axis", "mix"}, {"assign", "group"}, "a row-wise mix", where)
    axis, mix = _axis_key(entry, where), entry["mix"]
    if not isinstance(mix, list) or not mix:
        raise PlanError(f"{where}: 'mix' must be a non-empty list of {{'format': ..., 'rows': fraction}}, "
                        f"got {mix!r}")
    entries = []
    for i, item in enumerate(mix):
        at = f"{where}, mix[{i}]"
        if not isinstance(item, dict) or set(item) != {"format", "rows"}:
            raise PlanError(f"{at} must be {{'format': FORMAT, 'rows': FRACTION}}, got {item!r}")
        rows = item["rows"]
        if not isinstance(rows, (int, float)) or isinstance(rows, bool) or not math.isfinite(rows) or rows < 0:
            raise PlanError(f"{at}: 'rows' must be a fraction of the axis between 0 and 1, got {rows!r}")
        entries.append(MixEntry(_format(item["format"], at, weight=True), Fraction(str(rows)), item["format"]))
    total = sum(e.rows for e in entries)
    if abs(total - 1) > RATIO_TOLERANCE:
        raise PlanError(f"{where}: mixed-scheme ratios add up to {float(total):.12g}, not 1 "
                        f"(rows {[float(e.rows) for e in entries]})")
    assign = entry.get("assign", "variance")
    if assign not in ASSIGN_RULES:
        raise PlanError(f"{where}: unknown 'assign' rule {assign!r}; choose one of {', '.join(ASSIGN_RULES)}")
    group = entry.get("group", False)
    if not isinstance(group, bool):
        raise PlanError(f"{where}: 'group' must be true or false, got {group!r}")
    source = f"axis {axis}: mix of " + ", ".join(f"{e.text} x {float(e.rows):g}" for e in entries)
    return TensorSpec(name, axis=axis, mix=tuple(entries), assign=assign, group=group, source=source)


def _parse_codebooks(name: str, entry: dict, keys: set, base: Path, where: str) -> TensorSpec:
    if "codebook" in keys:
        _only_keys(keys, {"codebook"}, {"indices"}, "a codebook entry", where)
        axis, books = None, [entry["codebook"]]
    else:
        _only_keys(keys, {"axis", "codebooks"}, {"indices"}, "a per-index codebook entry", where)
        axis, books = _axis_key(entry, where), entry["codebooks"]
        if not isinstance(books, list) or not books:
            raise PlanError(f"{where}: 'codebooks' must be a non-empty list of {{'centres': [...], "
                            f"'format': ...}}, got {books!r}")
    codebooks = tuple(_parse_codebook(name, book, where if axis is None else f"{where}, codebooks[{i}]")
                      for i, book in enumerate(books))
    indices = None
    if "indices" in keys:
        path, arrays, key = _load_npz(entry["indices"], "indices", base, where)
        if key not in arrays:
            raise PlanError(f"{where}: {str(path)!r} has no array {key!r} (it has {sorted(arrays)})")
        indices = arrays[key]
        if indices.dtype.kind not in "iu":
            raise PlanError(f"{where}: codebook indices {key!r} must be integers, got dtype {indices.dtype}")
        indices = indices.astype(np.int64)
    sizes = sorted({len(c.centres) for c in codebooks})
    source = (f"codebook of {sizes[0]} centres" if axis is None else
              f"axis {axis}: {len(codebooks)} codebooks of {'/'.join(map(str, sizes))} centres")
    return TensorSpec(name, axis=axis, codebooks=codebooks, indices=indices,
                      source=source + (f", indices {entry['indices']}" if indices is not None else ""))


def _parse_codebook(name: str, book, where: str) -> Codebook:
    if not isinstance(book, dict) or set(book) != {"centres", "format"}:
        raise PlanError(f"{where}: a codebook must be {{'centres': [...], 'format': 'fixed<W,I>'}}, got {book!r}")
    fmt = _format(book["format"], f"{where}, codebook format")
    centres = book["centres"]
    if not isinstance(centres, list) or not centres:
        raise PlanError(f"{where}: a codebook needs a non-empty list of centres, got {centres!r}")
    seen = set()
    for c in centres:
        if not isinstance(c, (int, float)) or isinstance(c, bool) or not math.isfinite(c):
            raise PlanError(f"{where}: codebook centre {c!r} of {name!r} is not a finite number")
        if c in seen:
            raise PlanError(f"{where}: duplicate codebook centre {c!r} of {name!r}; centres must be distinct")
        seen.add(c)
        m = int(quantize_float(np.array([float(c)]), Formats.uniform((1,), fmt))[0])
        if Fraction(m) * fmt.lsb != Fraction(c):
            below = math.floor(Fraction(c) / fmt.lsb) * fmt.lsb
            why = (f"the values next to it are {float(below):g} and {float(below + fmt.lsb):g} (steps of "
                   f"{float(fmt.lsb):g})" if fmt.min_value <= Fraction(c) <= fmt.max_value else
                   f"it is outside the range {float(fmt.min_value):g}..{float(fmt.max_value):g}")
            raise PlanError(f"{where}: codebook centre {c!r} of {name!r} is not exact in {fmt}: {why}")
    return Codebook(tuple(float(c) for c in centres), fmt)


def _load_npz(ref, what: str, base: Path, where: str) -> tuple[Path, dict, str]:
    """``FILE.npz:KEY`` (relative to the plan file) -> (path, its arrays, KEY)."""
    if not isinstance(ref, str) or ":" not in ref:
        raise PlanError(f"{where}: {what!r} must be 'FILE.npz:KEY', got {ref!r}")
    file_part, key = ref.rsplit(":", 1)
    path = (base / file_part) if not Path(file_part).is_absolute() else Path(file_part)
    if not path.is_file():
        state = "is a folder, not an .npz file" if path.is_dir() else "does not exist"
        raise PlanError(f"{where}: {'per-element' if what == 'elements' else what} file {str(path)!r} "
                        f"{state} (paths are relative to the plan file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except Exception as err:  # noqa: BLE001 - any read failure is the user's file
        reraise_interrupt(err)
        raise PlanError(f"{where}: cannot read {str(path)!r} as .npz: {err}") from None
    return path, arrays, key


def _parse_elements(name: str, entry: dict, base: Path, where: str) -> TensorSpec:
    ref = entry["elements"]
    path, arrays, key = _load_npz(ref, "elements", base, where)
    fields = []
    for suffix in ("bits", "int_bits", "signed"):
        k = f"{key}.{suffix}"
        if k not in arrays:
            raise PlanError(f"{where}: {str(path)!r} has no array {k!r} (it has {sorted(arrays)})")
        a = arrays[k]
        if a.dtype.kind not in "iub":
            raise PlanError(f"{where}: array {k!r} must hold integers, got dtype {a.dtype}")
        if a.size and (int(a.max()) > ELEMENT_FIELD_LIMIT or int(a.min()) < -ELEMENT_FIELD_LIMIT):
            bad = int(a.max()) if int(a.max()) > ELEMENT_FIELD_LIMIT else int(a.min())
            raise PlanError(f"{where}: array {k!r} holds {bad}, far outside the supported range (bits "
                            f"0..{MAX_WIDTH}, int_bits -{MAX_PLAN_INT_BITS}..{MAX_PLAN_INT_BITS})")
        fields.append(a.astype(np.int64))
    bits, int_bits, signed = fields
    if not (bits.shape == int_bits.shape == signed.shape):
        raise PlanError(f"{where}: arrays {key}.bits/int_bits/signed have different shapes "
                        f"{bits.shape}, {int_bits.shape}, {signed.shape}")
    if (bits < 0).any():
        idx = tuple(int(i) for i in np.argwhere(bits < 0)[0])
        raise PlanError(f"{where}: {key}.bits has negative bits {int(bits[idx])} at index {list(idx)}; "
                        f"use 0 to prune an element")
    if bits.size and bits.max() > MAX_WIDTH:
        idx = tuple(int(i) for i in np.argwhere(bits > MAX_WIDTH)[0])
        raise PlanError(f"{where}: {key}.bits has {int(bits[idx])} bits at index {list(idx)}; at most "
                        f"{MAX_WIDTH} are supported")
    outside = (int_bits < -MAX_PLAN_INT_BITS) | (int_bits > MAX_PLAN_INT_BITS)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise PlanError(f"{where}: {key}.int_bits has {int(int_bits[idx])} at index {list(idx)}; integer "
                        f"bits must be within -{MAX_PLAN_INT_BITS}..{MAX_PLAN_INT_BITS}")
    if ((signed != 0) & (signed != 1)).any():
        raise PlanError(f"{where}: {key}.signed must hold 0 or 1")
    modes = []
    for field_name, enum in (("rounding", Rounding), ("overflow", Overflow)):
        text = entry.get(field_name, enum(0).name)
        try:
            modes.append(enum[str(text).upper().removeprefix("AP_")])
        except KeyError:
            raise PlanError(f"{where}: unknown {field_name} mode {text!r}; choose one of "
                            f"{', '.join(m.name for m in enum)}") from None
    return TensorSpec(name, elements=(bits, int_bits, signed), element_modes=tuple(modes), source=ref)


def parse_plan(raw: dict, base: Path, path: str = "<memory>") -> Plan:
    if not isinstance(raw, dict):
        raise PlanError(f"plan {path}: the top level must be a JSON object, got {type(raw).__name__}")
    for where, mapping in (("the top level", raw), *((repr(k), raw[k]) for k in ("defaults", "tensors", "tables")
                                                     if isinstance(raw.get(k), dict))):
        key = next((k for k in mapping if not isinstance(k, str)), None)
        if key is not None:  # (a dict given from Python: JSON keys are strings)
            raise PlanError(f"plan {path}: key {key!r} in {where} is a {type(key).__name__}; keys are names (strings)")
    unknown = {k for k in raw if not _is_note(k)} - {"defaults", "tensors", "tables"}
    if unknown:
        raise PlanError(f"plan {path}: unknown top-level keys {sorted(unknown)}; "
                        f"expected 'defaults', 'tensors' and optionally 'tables'")
    raw_defaults = raw.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise PlanError(f"plan {path}: 'defaults' must be an object with keys {list(DEFAULT_KEYS)}")
    bad = {k for k in raw_defaults if not _is_note(k)} - set(DEFAULT_KEYS)
    if bad:
        raise PlanError(f"plan {path}: unknown keys {sorted(bad)} in 'defaults'; allowed: {list(DEFAULT_KEYS)}")
    defaults = {}
    for key in DEFAULT_KEYS:
        value = raw_defaults.get(key)
        # weights and biases may take pow2<...> too; inputs and activations are computed values
        defaults[key] = None if value is None else _format(value, f"plan default {key!r}",
                                                           weight=key in ("weight", "bias"))
    raw_tensors = raw.get("tensors", {})
    if not isinstance(raw_tensors, dict):
        raise PlanError(f"plan {path}: 'tensors' must be an object keyed by ONNX tensor name")
    tensors = {}
    for name, entry in raw_tensors.items():
        if _is_note(name):
            continue
        spec = _parse_entry(name, entry, base)
        if spec is not None:
            tensors[name] = spec
    raw_tables = raw.get("tables", {})
    if not isinstance(raw_tables, dict):
        raise PlanError(f"plan {path}: 'tables' must be an object with keys {sorted(DEFAULT_TABLES)}")
    bad = {k for k in raw_tables if not _is_note(k)} - set(DEFAULT_TABLES)
    if bad:
        raise PlanError(f"plan {path}: unknown keys {sorted(bad)} in 'tables'; allowed: {sorted(DEFAULT_TABLES)}")
    tables = {}
    for key, default in DEFAULT_TABLES.items():
        value = raw_tables.get(key, default)
        if key == "inv_bits":
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= MAX_TABLE_INPUT_BITS:
                raise PlanError(f"plan table setting 'inv_bits' must be an integer 2..{MAX_TABLE_INPUT_BITS}, "
                                f"got {value!r}")
            tables[key] = value
            continue
        t = _format(value, f"plan table setting {key!r}")
        if t.width > MAX_TABLE_INPUT_BITS and key.endswith("_input"):
            raise PlanError(f"plan table setting {key!r}: {value!r} would need 2**{t.width} entries; "
                            f"use at most {MAX_TABLE_INPUT_BITS} bits")
        if t.width > MAX_TABLE_OUTPUT_BITS and not key.endswith("_input"):
            raise PlanError(f"plan table setting {key!r}: {value!r} is {t.width} bits wide; table entries "
                            f"and scores take at most {MAX_TABLE_OUTPUT_BITS} bits")
        tables[key] = t
    return Plan(defaults, tensors, tables, path, raw)


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list) -> dict:
    """A JSON object's dict, or _DuplicateKey for a key given twice (json keeps the last)."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def load_plan(path) -> Plan:
    """Read and validate a plan file; raises PlanError with the file and entry named."""
    from .inputs import path_argument

    path = path_argument(path, "path", "load_plan")
    if not path.is_file():
        raise PlanError(f"plan file {str(path)!r} does not exist or is not a file")
    try:
        raw = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
    except _DuplicateKey as err:
        raise PlanError(f"plan file {str(path)!r} gives {err.key!r} twice in one object (JSON keeps only the "
                        f"last); give each key once") from None
    except json.JSONDecodeError as err:
        raise PlanError(f"plan file {str(path)!r} is not valid JSON: {err}") from None
    except UnicodeDecodeError:
        raise PlanError(f"plan file {str(path)!r} is not a text file") from None
    except RecursionError:
        raise PlanError(f"plan file {str(path)!r} is nested too deeply to be a bit plan (a plan is at "
                        f"most a few levels of objects and lists)") from None
    except ValueError as err:  # an integer of thousands of digits
        raise PlanError(f"plan file {str(path)!r} cannot be read: {err}") from None
    except OSError as err:
        raise PlanError(f"plan file {str(path)!r} cannot be read: {err.strerror or err}") from None
    return parse_plan(raw, path.parent, str(path))
