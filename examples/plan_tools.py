"""Fixed-point helpers shared by the example training scripts.

The examples write a finegrain bit plan and then check what it costs in accuracy.  This
module owns the small amount of fixed-point arithmetic that check needs, written on float64
numpy arrays and independent of ``compiler/`` so the training scripts can run on their own:

* reading a format string such as ``ufixed<8,3,RND_CONV,SAT>``,
* converting values into a format (round to nearest with ties to even, then saturate),
* choosing integer bits from an observed range,
* reading the layer structure of an exported ONNX file, and writing ``plan.json``.

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
    """Quantize each index along axis 0 of ``w`` into its own format."""
    if len(formats) != w.shape[0]:
        raise ValueError(f"{len(formats)} formats for {w.shape[0]} rows")
    return np.stack([quantize(row, fmt) for row, fmt in zip(w, formats)])


def quantize_tensor(value: np.ndarray, entry) -> np.ndarray:
    """Quantize a constant by a plan entry: a format string or ``{"axis": 0, "formats": [...]}``."""
    if isinstance(entry, str):
        return quantize(value, entry)
    if entry.get("axis") != 0:
        raise ValueError(f"only per-row (axis 0) plan entries are simulated, got {entry!r}")
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
    text = re.sub(r'\[\s+("(?:u?fixed<[^"]*>)"(?:,\s+"u?fixed<[^"]*>")*)\s+\]',
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    path.write_text(text + "\n")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, axis=1) == labels).mean())
