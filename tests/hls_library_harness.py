"""The Python side of the HLS library tests (tests/test_hls_library.py): fixed-point types
and values as the code generator chooses them, one-node graphs for the emulator, a `Case`
(buffers of mantissas and the C++ statements that use them), the C++ program rendered from
the cases, and running a case's program and comparing its outputs bit for bit.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.backends.hls_types import ctype
from compiler.emulate import Fx, run
from compiler.fixed import FixedType, Formats, Rounding
from compiler.ir import Graph, Node, Op, Tensor, TensorKind, output_shape
from compiler.mantissa import common_fraction


ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "templates" / "hls"
HARNESS = Path(__file__).resolve().parent / "hls_library"
SAMPLES = 24


def ap_types_dir() -> Path | None:
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    return path if (path / "ap_fixed.h").is_file() else None


# --- types and values ----------------------------------------------------------------------


def cpp_type(t: FixedType) -> str:
    """The C++ type of ``t``, with its modes: ap_fixed's own, or finegrain's ceil_fixed for
    CEIL (spelled as the backend spells it)."""
    if t.rounding == Rounding.CEIL:
        return ctype(t)
    base = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{base}<{t.width}, {t.int_bits}, AP_{t.rounding.name}, AP_{t.overflow.name}>"


def ints(a) -> np.ndarray:
    """An object array of Python ints (exact at any width)."""
    a = np.asarray(a)
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = int(a[idx])
    return out


def container_of_formats(formats: Formats) -> FixedType:
    """The one type holding every element of ``formats`` exactly (pruned elements are 0)."""
    kept = ~formats.pruned
    frac = int(formats.frac_bits[kept].max()) if kept.any() else 0
    lo, hi = formats.mantissa_bounds()
    shift = np.where(kept, frac - formats.frac_bits, 0)
    lo = [int(v) << int(s) for v, s in zip(lo.flat, shift.flat)]
    hi = [int(v) << int(s) for v, s in zip(hi.flat, shift.flat)]
    return FixedType.for_range(min(lo), max(hi), frac) or FixedType(1, 1 - frac, False)


def container_of_values(*values: Fx) -> FixedType:
    """The tightest type holding every given value: fewest fractional bits, then fewest
    integer bits.  For an accumulator this is as narrow as the values allow, so its
    partial sums overflow and wrap."""
    frac = max(v.frac for v in values)
    flat = [int(m) << (frac - v.frac) for v in values for m in v.m.flat]
    nonzero = [m for m in flat if m]
    if not nonzero:
        return FixedType(1, 1, False)
    trailing = min((m & -m).bit_length() - 1 for m in nonzero)
    frac -= trailing
    flat = [m >> trailing for m in flat]
    return FixedType.for_range(min(flat), max(flat), frac)


def in_type(value: Fx, t: FixedType) -> np.ndarray:
    """The mantissas of ``value`` in type ``t`` (exact: fails if a bit would be lost)."""
    m = ints(value.m)
    shift = t.frac_bits - value.frac
    if shift >= 0:
        out = m * (1 << shift)
    else:
        out = m // (1 << -shift)
        assert np.array_equal(out * (1 << -shift), m), f"value not representable in {t}"
    assert all(t.min_mantissa <= int(v) <= t.max_mantissa for v in out.flat), f"value overflows {t}"
    return out


def random_samples(formats: Formats, rng: random.Random, count: int = SAMPLES) -> Fx:
    """``count`` random values of a tensor, each element in its own format, plus the
    all-minimum, all-maximum and all-zero samples; at the tensor's common fraction."""
    lo, hi = formats.mantissa_bounds()
    own = np.empty((count + 3, *formats.shape), dtype=object)
    for idx in np.ndindex(formats.shape):
        a, b = int(lo[idx]), int(hi[idx])
        for s in range(count):
            own[(s, *idx)] = rng.randint(a, b)
        own[(count, *idx)], own[(count + 1, *idx)], own[(count + 2, *idx)] = a, b, 0
    m, frac = common_fraction(own, formats)
    return Fx(ints(m), frac)


def activation(name: str, formats: Formats) -> Tensor:
    return Tensor(name, formats.shape, TensorKind.INPUT, formats=formats)


def constant(name: str, kind: TensorKind, formats: Formats, own_mantissas) -> Tensor:
    data, frac = common_fraction(ints(own_mantissas), formats)
    return Tensor(name, formats.shape, kind, formats=formats, data=np.asarray(data, dtype=np.int64),
                  data_frac=frac)


def one_node_graph(op: Op, inputs: list[Tensor], attrs=None, out_formats: Formats | None = None) -> Graph:
    """A graph of one node writing ``y``; inputs without data are graph inputs."""
    node = Node("n", op, [t.name for t in inputs], ["y"], attrs or {})
    tensors = {t.name: t for t in inputs}
    tensors["y"] = Tensor("y", (), TensorKind.ACTIVATION)
    g = Graph("g", tuple(t.name for t in inputs if not t.is_constant), ("y",), [node], tensors)
    shape = output_shape(node, g)
    return g.with_tensors({"y": Tensor("y", shape, TensorKind.ACTIVATION, formats=out_formats)})


def emulate(graph: Graph, **inputs: Fx) -> Fx:
    return run(graph, inputs)["y"]


def const_fx(t: Tensor) -> Fx:
    return Fx(ints(t.data)[np.newaxis], t.data_frac)


# --- cases and generated programs ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Buffer:
    """A C array of one container type: values are mantissas in that type; constants
    have shape (size,), inputs and outputs (samples, size)."""

    name: str
    type: FixedType
    values: np.ndarray

    @property
    def size(self) -> int:
        return int(self.values.shape[-1])


def buffer(name: str, t: FixedType, value: Fx, batched: bool = True) -> Buffer:
    m = in_type(value, t)
    m = m.reshape(m.shape[0], -1) if batched else m.reshape(-1)
    return Buffer(name, t, m)


@dataclass(frozen=True, eq=False)
class Case:
    name: str
    program: str
    call: str  # C++ statements using the buffers (NAME, type NAME_t) and index arrays
    consts: tuple[Buffer, ...] = ()
    inputs: tuple[Buffer, ...] = ()
    outputs: tuple[Buffer, ...] = ()  # expected values
    types: dict = field(default_factory=dict)  # extra typedefs: C++ name -> FixedType
    indices: dict = field(default_factory=dict)  # static const int arrays: name -> list
    preamble: str = ""  # namespace-scope C++ (configuration structs)

    @property
    def samples(self) -> int:
        return self.inputs[0].values.shape[0] if self.inputs else 1


PROGRAMS = {  # translation unit -> the library headers it includes
    "layers": ("dense.h", "conv.h", "pooling.h"),
    "pointwise": ("activation.h", "elementwise.h", "requantize.h"),
    "requantize": ("requantize.h",),
    "lookup": ("lookup.h",),
    "mixed": (),  # common.h, through harness.h
}


def render_case(case: Case) -> str:
    lines = [case.preamble, f"static int case_{case.name}() {{"]
    for name, t in case.types.items():
        lines.append(f"    typedef {cpp_type(t)} {name};")
    for b in (*case.consts, *case.inputs, *case.outputs):
        lines.append(f"    typedef {cpp_type(b.type)} {b.name}_t;")
        lines.append(f"    static {b.name}_t {b.name}[{b.size}];")
    for name, index in case.indices.items():
        lines.append(f"    static const int {name}[{len(index)}] = {{{', '.join(map(str, index))}}};")
    lines += [f"    harness::read({b.name}, {b.size});" for b in case.consts]
    lines += ["    const int samples = harness::count();", "    for (int s = 0; s < samples; s++) {"]
    lines += [f"        harness::read({b.name}, {b.size});" for b in case.inputs]
    lines += [f"        {stmt.strip()}" for stmt in case.call.strip().splitlines()]
    lines += [f"        harness::write({b.name}, {b.size});" for b in case.outputs]
    lines += ["    }", "    return 0;", "}", ""]
    return "\n".join(lines)


def render_program(program: str, cases: list[Case]) -> str:
    head = ['// Generated by tests/test_hls_library.py: one function per case.', '#include "harness.h"']
    head += [f'#include "finegrain/{h}"' for h in PROGRAMS[program]]
    body = [render_case(c) for c in cases]
    main = ["int main(int argc, char** argv) {",
            "    if (argc != 2) { std::cerr << \"usage: PROGRAM CASE\\n\"; return 2; }",
            "    const std::string name = argv[1];"]
    main += [f'    if (name == "{c.name}") return case_{c.name}();' for c in cases]
    main += ['    std::cerr << "unknown case " << name << "\\n";', "    return 2;", "}"]
    return "\n".join(head + [""] + body + main) + "\n"


def stdin_text(case: Case) -> str:
    parts = [" ".join(str(int(v)) for v in b.values) for b in case.consts]
    parts.append(str(case.samples))
    for s in range(case.samples):
        parts += [" ".join(str(int(v)) for v in b.values[s]) for b in case.inputs]
    return "\n".join(parts) + "\n"


# --- running a case's program ------------------------------------------------------------------


@dataclass(frozen=True)
class Programs:
    binaries: dict
    build_seconds: dict


def from_raw(bits: int, t: FixedType) -> int:
    """The mantissa whose ``t.width``-bit two's-complement pattern is ``bits``."""
    assert 0 <= bits < 1 << t.width, f"{bits} is not a {t.width}-bit pattern"
    return bits - (1 << t.width) if t.signed and bits >> (t.width - 1) else bits


def run_case(programs: Programs, case: Case) -> list[np.ndarray]:
    """The case's outputs as computed by the C++ program: one (samples, size) array each."""
    result = subprocess.run([str(programs.binaries[case.program]), case.name], input=stdin_text(case),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"case {case.name} failed: {result.stderr[-3000:]}"
    lines = result.stdout.splitlines()
    assert len(lines) == case.samples * len(case.outputs), f"case {case.name}: {len(lines)} output lines"
    got = []
    for k, b in enumerate(case.outputs):
        rows = [[from_raw(int(v), b.type) for v in lines[s * len(case.outputs) + k].split()]
                for s in range(case.samples)]
        got.append(ints(np.array(rows, dtype=object).reshape(b.values.shape)))
    return got


def assert_case_exact(programs: Programs, case: Case) -> None:
    for b, got in zip(case.outputs, run_case(programs, case)):
        bad = np.argwhere(got != b.values)
        if bad.size:
            idx = tuple(int(i) for i in bad[0])
            raise AssertionError(
                f"case {case.name}: output {b.name} ({cpp_type(b.type)}) differs at {len(bad)} places; first at "
                f"(sample, element) {idx}: C++ {got[idx]}, emulator {b.values[idx]}")
