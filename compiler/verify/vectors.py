"""Test vectors shared by every simulation (g++ csim, Verilator RTL sim): inputs over each
input format's whole range plus the extremes, run through the emulator (the spec), and
written as mantissas of each tensor's *container* type (what the generated C++ variables
and the RTL ports hold)."""

from __future__ import annotations

import numpy as np

from ..backends.hls import container
from ..emulate import Fx, quantize_inputs, run
from ..fixed import rescale
from ..ir import Graph


def input_extremes(graph: Graph, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = graph.tensor(name)
    lo, hi = t.formats.mantissa_bounds()
    frac = t.formats.frac_bits
    return np.ldexp(lo.astype(np.float64), -frac), np.ldexp(hi.astype(np.float64), -frac)


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


def emulated_rows(graph: Graph, inputs: dict[str, np.ndarray]) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """(batch, per input [batch, elements], per output [batch, elements]) container mantissas."""
    values = run(graph, quantize_inputs(graph, inputs))
    batch = next(iter(values[graph.inputs[0]].m.shape[:1]), 0)
    rows_in = [container_mantissas(values[n], graph.tensor(n).formats).reshape(batch, -1) for n in graph.inputs]
    rows_out = [container_mantissas(values[n], graph.tensor(n).formats).reshape(batch, -1) for n in graph.outputs]
    return batch, rows_in, rows_out
