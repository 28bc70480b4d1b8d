"""Streams as the stream builder (stream.py) sees them: a tensor's frame ([C, H, W] or [C, L]),
its lane type, a window layer's geometry, which layers are engines, joins or tail breaks, the
check that a format or constant is the same at every position of a channel (one circuit
computes every pixel), and the packing of lanes into Verilog concatenations."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...fixed import FixedType, Formats
from ...ir import Graph, Node, Op, Tensor
from ..hls_types import container
from .emitter import Fmt
from .options import RTLBackendError

WINDOW_OPS = frozenset({Op.CONV, Op.MAXPOOL, Op.AVGPOOL})
POINTWISE_OPS = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL, Op.TABLE})
# outputs whose formats the plan (or a table) sets: the same at every position, kept as they are;
# every other tensor of a core is sized again from the core's input
KEEP_FORMATS = frozenset({Op.REQUANTIZE, Op.TABLE, Op.SOFTMAX})
FOLDABLE = frozenset({Op.DENSE, Op.CONV})  # layers a folded core computes with fewer multipliers
TAIL_BREAKS = frozenset({Op.DENSE, Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.SOFTMAX})
JOIN_OPS = frozenset({Op.ADD, Op.MUL, Op.CONCAT})  # layers that may read several streams (a join)


def _fmt(t: FixedType) -> Fmt:
    return Fmt(t.width, t.frac_bits, t.signed)


def _concat(parts: list[str]) -> str:
    """``{parts[-1], ..., parts[0]}`` (parts[0] in the low bits), a few parts per line:
    Verilator's lexer stops on lines of some 100k characters."""
    parts = list(reversed(parts))
    lines = [", ".join(parts[i:i + 8]) for i in range(0, len(parts), 8)]
    return "{" + ",\n        ".join(lines) + "}"


def _port_fmt(port: dict) -> Fmt:
    return Fmt(port["width"], port["frac"], port["signed"])


def _lane_type(t: Tensor) -> FixedType:
    return container(t.formats, t.name)


def _slice_formats(f: Formats, index) -> Formats:
    return Formats(f.width[index], f.int_bits[index], f.signed[index], f.rounding[index], f.overflow[index])


def _first_position(shape: tuple[int, ...]) -> tuple:
    """The index of position 0 of every channel: [:, :1, :1] for [C, H, W]."""
    return (slice(None),) + (slice(0, 1),) * (len(shape) - 1)


PLAN_FIX = "give it per-channel (not per-element) values in the plan"
# an average pool's reciprocals differ at the edges when padding is not counted
POOL_FIX = ("its edge windows hold fewer pixels (padding not counted: count_include_pad=0 or ceil_mode); export "
            "the pool with count_include_pad=1 and no ceil_mode")


def _same_at_every_position(arrays, shape, what: str, node: Node, fix: str = PLAN_FIX) -> None:
    first = _first_position(shape)
    for a in arrays:
        a = np.broadcast_to(np.asarray(a, dtype=object), shape)
        if not (a == np.broadcast_to(a[first], shape)).all():
            raise RTLBackendError(
                f"node {node.name!r}: {what} differs between positions of one channel; a stream engine computes "
                f"every pixel with one circuit, so it needs one value per channel; {fix}, or compile with "
                f"--arch parallel")


def _activations(g: Graph, node: Node) -> list[str]:
    """The tensors ``node`` reads that are neither constants nor made by its own stages, in
    the order its stages read them (each once)."""
    produced = {s.outputs[0] for s in node.stages()}
    acts: list[str] = []
    for s in node.stages():
        for i in s.inputs:
            if not g.tensor(i).is_constant and i not in produced and i not in acts:
                acts.append(i)
    return acts


def _channel_unions(t: Tensor) -> list[FixedType]:
    """Per channel, the narrowest type holding the channel's format at every position."""
    return [container(_slice_formats(t.formats, (c,)), t.name) for c in range(t.shape[0])]


@dataclasses.dataclass
class _Stream:
    """A tensor travelling as a stream: its name, [C, H, W] view and lane type."""

    name: str
    channels: int
    height: int
    width: int
    lane: FixedType

    @property
    def beats(self) -> int:
        return self.height * self.width

    @property
    def bits(self) -> int:
        return self.channels * self.lane.width


def _frame(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """[C, H, W] -> (C, H, W), [C, L] -> (C, 1, L); None for other ranks."""
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return shape[0], 1, shape[1]
    return None


def _window_of(node: Node, rank: int) -> dict:
    """The window of a CONV / MAXPOOL / AVGPOOL node as 2-D numbers (a 1-D node has one row)."""
    a = node.attrs
    n = rank - 1
    if node.op == Op.CONV:
        kernel = None  # from the weight, by the caller
    else:
        kernel = tuple(a["kernel"])
    strides, pads = tuple(a["strides"]), tuple(a["pads"])
    dil = tuple(a.get("dilations", (1,) * n))
    if n == 1:
        return {"kernel": None if kernel is None else (1, kernel[0]), "strides": (1, strides[0]),
                "dilations": (1, dil[0]), "pads": (0, pads[0], 0, pads[1])}  # top, left, bottom, right
    return {"kernel": kernel, "strides": strides, "dilations": dil, "pads": pads}
