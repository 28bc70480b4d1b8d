"""Fixed-point helpers shared by the example training scripts.

The examples write a finegrain bit plan and then check what it costs in accuracy.  This
module owns the small amount of fixed-point arithmetic that check needs, written on float64
numpy arrays and independent of ``compiler/`` so the training scripts can run on their own:

* reading a format string such as ``ufixed<8,3,RND_CONV,SAT>``,
* converting values into a format (round to nearest with ties to even, then saturate),
* choosing integer bits from an observed range,
* reading the layer structure of an exported ONNX file, and writing ``plan.json``,
* the finer weight schemes of the precision-scheme examples (issue 6): power-of-two values
  (``pow2<EMIN,EMAX>``), per-element formats from ``.npz`` arrays, and codebooks, with
  `quantize_entry` applying any weight entry of a plan.

Only ``RND_CONV`` and ``SAT`` are simulated: they are the modes the example plans use.
Values are exact in float64 here because every width involved is far below 53 bits.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

_FORMAT_RE = re.compile(r"^(u?)fixed<(\d+),(-?\d+),RND_CONV,SAT>$")


@dataclass(frozen=True)
class Format:
    """``fixed<width,int_bits,RND_CONV,SAT>`` (signed) or ``ufixed<...>`` (unsigned)."""

    width: int
    int_bits: int
    signed: bool

    @classmethod
    def parse(cls, text: str) -> "Format":
        match = _FORMAT_RE.match(text.replace(" ", ""))
        if not match:
            raise ValueError(f"format {text!r} is not fixed<W,I,RND_CONV,SAT> or ufixed<W,I,RND_CONV,SAT>")
        unsigned, width, int_bits = match.groups()
        return cls(int(width), int(int_bits), not unsigned)

    def __str__(self) -> str:
        return f"{'fixed' if self.signed else 'ufixed'}<{self.width},{self.int_bits},RND_CONV,SAT>"

    @property
    def lsb(self) -> float:
        return 2.0 ** (self.int_bits - self.width)

    @property
    def min_value(self) -> float:
        return -(2.0 ** (self.int_bits - 1)) if self.signed else 0.0

    @property
    def max_value(self) -> float:
        top = self.int_bits - 1 if self.signed else self.int_bits
        return 2.0 ** top - self.lsb


def quantize(x: np.ndarray, fmt: Format | str) -> np.ndarray:
    """``x`` converted into ``fmt``: round to nearest, ties to even, then saturate."""
    fmt = Format.parse(fmt) if isinstance(fmt, str) else fmt
    # np.rint rounds half to even, and scaling by a power of two is exact.
    mantissa = np.rint(np.ldexp(np.asarray(x, dtype=np.float64), fmt.width - fmt.int_bits))
    return np.clip(mantissa * fmt.lsb, fmt.min_value, fmt.max_value)


def quantize_rows(w: np.ndarray, formats: list[str]) -> np.ndarray:
    """Quantize each index along axis 0 of ``w`` into its own format (fixed or pow2)."""
    if len(formats) != w.shape[0]:
        raise ValueError(f"{len(formats)} formats for {w.shape[0]} rows")
    return np.stack([quantize_format(row, fmt) for row, fmt in zip(w, formats)])


def quantize_tensor(value: np.ndarray, entry) -> np.ndarray:
    """Quantize a constant by a plan entry.

    Entries: a format string (``fixed``, ``ufixed`` or ``pow2``), ``{"axis": 0, "formats":
    [...]}``, and, once `load_plan_arrays` has put the arrays in place of their
    ``FILE.npz:KEY`` references, ``{"elements": ...}``, ``{"codebook": ..., "indices": ...}``
    and ``{"axis": 0, "codebooks": [...], "indices": ...}``.
    """
    if isinstance(entry, str):
        return quantize_format(value, entry)
    if "elements" in entry:
        if (entry.get("rounding"), entry.get("overflow")) != ("RND_CONV", "SAT"):
            raise ValueError(f"only RND_CONV/SAT per-element entries are simulated, got {entry!r}")
        bits, int_bits, signed = entry["elements"]
        return quantize_elements(value, bits, int_bits, signed)
    if "codebook" in entry:
        return codebook_values(entry["codebook"], entry["indices"])
    if entry.get("axis") != 0:
        raise ValueError(f"only per-row (axis 0) plan entries are simulated, got {entry!r}")
    if "codebooks" in entry:
        return np.stack([codebook_values(book, idx) for book, idx in zip(entry["codebooks"], entry["indices"])])
    return quantize_rows(value, entry["formats"])


def signed_int_bits(max_abs: float, width: int) -> int:
    """Fewest integer bits (sign included) for which ``fixed<width,I>`` holds ``+-max_abs``.

    "Holds" means ``max_abs`` rounds to a code in range, so it may pass the largest code by
    up to half an lsb.
    """
    if max_abs <= 0:
        return 1
    int_bits = math.ceil(math.log2(max_abs))  # 2**(I-1) < max_abs: always one short
    while not _fits(Format(width, int_bits, True), max_abs):
        int_bits += 1
    return int_bits


def unsigned_int_bits(max_value: float, width: int, margin_bits: int = 0) -> int:
    """Fewest integer bits for which ``ufixed<width,I>`` holds ``max_value``, plus a margin."""
    if max_value <= 0:
        return margin_bits
    int_bits = math.floor(math.log2(max_value))  # 2**I <= max_value: always one short
    while not _fits(Format(width, int_bits, False), max_value):
        int_bits += 1
    return int_bits + margin_bits


def _fits(fmt: Format, max_abs: float) -> bool:
    return fmt.max_value + fmt.lsb / 2 >= max_abs


def saturated_fraction(x: np.ndarray, fmt: Format | str) -> float:
    """Fraction of ``x`` that lies outside ``fmt``'s range (by more than half an lsb)."""
    fmt = Format.parse(fmt) if isinstance(fmt, str) else fmt
    x = np.asarray(x)
    outside = (x < fmt.min_value - fmt.lsb / 2) | (x > fmt.max_value + fmt.lsb / 2)
    return float(outside.mean()) if x.size else 0.0


def onnx_nodes(path: Path) -> tuple[onnx.GraphProto, dict[str, np.ndarray]]:
    """The graph of an ONNX file and its initializers by name."""
    graph = onnx.load(str(path)).graph
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    return graph, initializers


def consumer(graph: onnx.GraphProto, value: str, op_type: str) -> onnx.NodeProto:
    """The single node of ``op_type`` that reads ``value``; fails loudly otherwise."""
    found = [n for n in graph.node if value in n.input]
    if len(found) != 1 or found[0].op_type != op_type:
        got = [(n.op_type, n.name) for n in found]
        raise ValueError(f"expected one {op_type} reading {value!r}, found {got}")
    return found[0]


def write_plan(path: Path, plan: dict) -> None:
    """Write the plan as stable, diff-friendly JSON (per-row format lists on one line each)."""
    text = json.dumps(plan, indent=2)
    # json.dumps puts every list item on its own line; fold the format lists back together.
    text = re.sub(r'\[\s+("(?:u?fixed|pow2)<[^"]*>"(?:,\s+"(?:u?fixed|pow2)<[^"]*>")*)\s+\]',
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    # and lists of numbers (codebook centres)
    text = re.sub(r"\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    path.write_text(text + "\n")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, axis=1) == labels).mean())


# --- the finer weight schemes of issue 6 ------------------------------------------------

_POW2_RE = re.compile(r"^pow2<(-?\d+),(-?\d+)>$")


def parse_pow2(text: str) -> tuple[int, int] | None:
    """``(EMIN, EMAX)`` of a ``pow2<EMIN,EMAX>`` format, or None for any other format."""
    match = _POW2_RE.match(text.replace(" ", ""))
    return (int(match[1]), int(match[2])) if match else None


def quantize_pow2(x: np.ndarray, emin: int, emax: int) -> np.ndarray:
    """``x`` to the nearest of 0 and +-2**e (``emin <= e <= emax``).

    Ties go to the larger magnitude, and magnitudes beyond ``2**emax`` saturate to it.
    """
    x = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(x)
    mantissa, exponent = np.frexp(magnitude)  # magnitude = mantissa * 2**exponent, mantissa in [0.5, 1)
    # between 2**(exponent-1) and 2**exponent the midpoint is 0.75 * 2**exponent
    e = np.where(mantissa >= 0.75, exponent, exponent - 1)
    rounded = np.ldexp(1.0, np.clip(e, emin, emax))
    # below 2**emin the choice is between 0 and 2**emin, whose midpoint is 2**(emin-1)
    rounded = np.where(magnitude >= np.ldexp(1.0, emin - 1), rounded, 0.0)
    return np.where(x < 0, -rounded, rounded)


def quantize_format(x: np.ndarray, text: str) -> np.ndarray:
    """``x`` converted into a ``fixed``/``ufixed`` (RND_CONV, SAT) or ``pow2`` format."""
    pow2 = parse_pow2(text)
    return quantize(x, text) if pow2 is None else quantize_pow2(x, *pow2)


def quantize_elements(x: np.ndarray, bits: np.ndarray, int_bits: np.ndarray, signed: np.ndarray) -> np.ndarray:
    """``x`` converted element by element into ``fixed<bits,int_bits,RND_CONV,SAT>`` (``ufixed``
    where ``signed`` is 0); elements with 0 bits are pruned to 0."""
    bits, int_bits = np.asarray(bits, dtype=np.int64), np.asarray(int_bits, dtype=np.int64)
    signed = np.asarray(signed).astype(bool)
    frac = bits - int_bits
    mantissa = np.rint(np.ldexp(np.asarray(x, dtype=np.float64), frac))
    low = np.where(signed, -np.ldexp(1.0, bits - 1), 0.0)
    high = np.where(signed, np.ldexp(1.0, bits - 1), np.ldexp(1.0, bits)) - 1.0
    return np.where(bits > 0, np.ldexp(np.clip(mantissa, low, high), -frac), 0.0)


def minimal_signed_formats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the narrowest ``fixed<bits,int_bits>`` holding the value exactly.

    ``values`` must be dyadic (a few bits of mantissa); zeros get ``bits`` 0 (pruned).
    """
    values = np.asarray(values, dtype=np.float64)
    frac = np.zeros(values.shape, dtype=np.int64)
    found = values == 0
    for f in range(-32, 33):  # fewest fractional bits that make the value an integer
        exact = ~found & (np.ldexp(values, f) == np.rint(np.ldexp(values, f)))
        frac[exact], found = f, found | exact
    if not found.all():
        raise ValueError("values are not dyadic with at most 32 fractional bits")
    mantissa = np.ldexp(values, frac)
    # two's complement width: bit length of m (m >= 0) or of -m-1 (m < 0), plus the sign bit
    magnitude = np.where(mantissa >= 0, mantissa, -mantissa - 1)
    bits = np.where(values == 0, 0, np.frexp(magnitude)[1] + 1)
    return bits, np.where(values == 0, 0, bits - frac)


def codebook_values(codebook: dict, indices: np.ndarray) -> np.ndarray:
    """The weights of a codebook entry: ``centres[indices]``, each centre exact in the format."""
    centres = np.asarray(codebook["centres"], dtype=np.float64)
    if not np.array_equal(quantize_format(centres, codebook["format"]), centres):
        raise ValueError(f"codebook centres {centres.tolist()} are not exact in {codebook['format']}")
    return centres[np.asarray(indices)]


def load_plan_arrays(plan: dict, base: Path) -> dict:
    """A copy of ``plan`` with every ``FILE.npz:KEY`` reference replaced by its arrays.

    ``elements`` becomes ``(bits, int_bits, signed)``, ``indices`` the index array, so
    `quantize_tensor` can apply the entry.  ``base``: the plan's folder.
    """
    def load(ref: str, suffixes: tuple[str, ...]):
        file, key = ref.split(":")
        with np.load(base / file) as arrays:
            found = tuple(arrays[key + suffix] for suffix in suffixes)
        return found if len(found) > 1 else found[0]

    resolved = json.loads(json.dumps(plan))
    for entry in resolved["tensors"].values():
        if isinstance(entry, dict) and "elements" in entry:
            entry["elements"] = load(entry["elements"], (".bits", ".int_bits", ".signed"))
        if isinstance(entry, dict) and "indices" in entry:
            entry["indices"] = load(entry["indices"], ("",))
    return resolved

