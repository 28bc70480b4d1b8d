"""Test vectors shared by every simulation (g++ csim, Verilator RTL sim): inputs over each
input format's whole range plus the extremes, run through the emulator (the spec), and
written as mantissas of each tensor's *container* type (what the generated C++ variables
and the RTL ports hold)."""

from __future__ import annotations

import numpy as np

from ..backends.hls_types import container
from ..emulate import Fx, quantize_inputs, run
from ..ir import Graph
from ..mantissa import rescale


def input_extremes(graph: Graph, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = graph.tensor(name)
    lo, hi = t.formats.mantissa_bounds()
    frac = t.formats.frac_bits
    return np.ldexp(lo.astype(np.float64), -frac), np.ldexp(hi.astype(np.float64), -frac)


EXTREME_VECTORS = 5  # csim_vectors' extremes: low, high, zero and the two alternations
# The HLS project's vectors (tb_data/, for the vendor tools' csim and cosim) emulate at most
# about this many activation values: a 128x128 super-resolution CNN holds 17 million per sample,
# and a hundred of them took six minutes to write.
PROJECT_VECTOR_VALUES = 1 << 25


def activation_values(graph: Graph) -> int:
    """The values one sample's emulation holds: every tensor that is not a constant."""
    return sum(int(np.prod(t.shape)) for t in graph.tensors.values() if not t.is_constant)


def project_vector_count(graph: Graph, wanted: int) -> int:
    """How many random vectors the HLS project's tb_data holds beside the extremes: ``wanted``,
    or fewer (down to none) where their emulation would exceed `PROJECT_VECTOR_VALUES`."""
    fit = PROJECT_VECTOR_VALUES // max(activation_values(graph), 1) - EXTREME_VECTORS
    return max(0, min(wanted, fit))


def csim_vectors(graph: Graph, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` random inputs over each input's full range, then the extreme ones."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for name in graph.inputs:
        lo, hi = input_extremes(graph, name)
        shape = graph.tensor(name).shape
        alternating = np.where(np.indices(shape).sum(axis=0) % 2 == 0, lo, hi) if shape else lo
        other = np.where(np.indices(shape).sum(axis=0) % 2 == 0, hi, lo) if shape else hi
        extremes = np.stack([lo, hi, np.zeros(shape), alternating, other])
        vectors[name] = np.concatenate([rng.uniform(lo, hi, size=(count, *shape)), extremes])
    return vectors


def container_mantissas(value: Fx, formats) -> np.ndarray:
    """Mantissas of ``value`` in the tensor's container type (as the C++ and RTL hold them)."""
    return rescale(value.m, container(formats).frac_bits - value.frac)


def mantissa_value(m: int, frac: int) -> float:
    """``m * 2**-frac`` as a float64: exact while ``m`` has at most 53 bits, else correctly
    rounded (Python's int division), never through an intermediate float (2**1023 and more)."""
    return (int(m) << max(-frac, 0)) / (1 << max(frac, 0))


def received_values(graph: Graph, name: str, rows: list[list[int | None] | None]) -> np.ndarray:
    """What a simulation read from output ``name`` (per vector, the container mantissas of its
    elements; None for an element, or a whole vector, it read nothing valid for) as IR values
    shaped [vectors, *shape], NaN where None."""
    t = graph.tensor(name)
    frac = container(t.formats).frac_bits
    out = np.full((len(rows), int(np.prod(t.shape))), np.nan)
    for v, row in enumerate(rows):
        for i, m in enumerate(row or ()):
            if m is not None:
                out[v, i] = mantissa_value(m, frac)
    return out.reshape(len(rows), *t.shape)


# Samples emulated at once: at most this many activation values over all tensors (a large
# CNN's hundred test vectors held as Python ints needed over 24 GB at once).
EMULATED_VALUES_PER_SLICE = 1 << 22


def emulated_rows(graph: Graph, inputs: dict[str, np.ndarray]) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """(batch, per input [batch, elements], per output [batch, elements]) container mantissas."""
    per_sample = activation_values(graph)
    batch = len(next(iter(inputs.values()))) if inputs else 0
    step = max(1, EMULATED_VALUES_PER_SLICE // max(per_sample, 1))
    keep = set(graph.inputs) | set(graph.outputs)
    rows_in, rows_out = [[] for _ in graph.inputs], [[] for _ in graph.outputs]
    for start in range(0, batch, step):
        part = {name: np.asarray(a)[start:start + step] for name, a in inputs.items()}
        values = run(graph, quantize_inputs(graph, part), keep=keep)
        n = next(iter(values[graph.inputs[0]].m.shape[:1]), 0)
        for rows, names in ((rows_in, graph.inputs), (rows_out, graph.outputs)):
            for k, name in enumerate(names):
                rows[k].append(container_mantissas(values[name], graph.tensor(name).formats).reshape(n, -1))
    join = [np.concatenate(parts) if parts else np.zeros((0, 0)) for parts in rows_in], \
        [np.concatenate(parts) if parts else np.zeros((0, 0)) for parts in rows_out]
    return batch, join[0], join[1]
