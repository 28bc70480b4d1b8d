"""Bit-exact tests of the hand-written HLS library (templates/hls/finegrain) with g++.

Every kernel runs in a small C++ program and is compared, mantissa for mantissa, with the
specification: the emulator (compiler/emulate.py) on a one-node IR graph, or
compiler/mantissa.py for conversions.  Container types are chosen as the code generator
chooses them (one ap_fixed type per tensor that holds every element exactly); accumulators
are as tight as the test values allow, so partial sums really do wrap.

The C++ programs are generated from the cases below, so each type is written once, and
are compiled once per session: four translation units, two at a time.  A case reads its
constants, then a sample count, then per sample its inputs, all as decimal mantissas on
stdin (tests/hls_library/harness.h), and prints one line of raw bits per output and sample.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.backends.hls_types import ctype
from compiler.emulate import Fx, run
from compiler.fixed import FixedType, Formats, Overflow, Rounding, accumulate_type, add_type, mul_type
from compiler.ir import Graph, Node, Op, Tensor, TensorKind, output_shape
from compiler.mantissa import common_fraction, requantize
from compiler.passes.apply_plan import _sigmoid_table, _softmax_tables
from compiler.plan import parse_plan
from tests.irgraphs import random_constant, random_formats

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


# --- dense -------------------------------------------------------------------------------------


def dense_case(name: str, x: Tensor, w: Tensor, b: Tensor | None, reuse: int, rng: random.Random,
               samples: Fx | None = None) -> Case:
    n_out, n_in = w.shape
    g = one_node_graph(Op.DENSE, [x, w] + ([b] if b is not None else []))
    xs = samples if samples is not None else random_samples(x.formats, rng)
    acc = emulate(g, x=xs)
    x_t, w_t, acc_t = container_of_formats(x.formats), container_of_formats(w.formats), container_of_values(acc)
    consts = [buffer("w", w_t, const_fx(w), batched=False)]
    if b is not None:
        consts.append(buffer("b", container_of_formats(b.formats), const_fx(b), batched=False))
        call = f"finegrain::dense<x_t, w_t, b_t, acc_t, {n_in}, {n_out}, {reuse}>(x, acc, w, b);"
    else:
        call = f"finegrain::dense_nobias<x_t, w_t, acc_t, {n_in}, {n_out}, {reuse}>(x, acc, w);"
    return Case(name, "layers", call, tuple(consts), (buffer("x", x_t, xs),), (buffer("acc", acc_t, acc),))


def _random_dense(seed: int, n_in: int, n_out: int):
    nrng, rng = np.random.default_rng(seed), random.Random(seed)
    x = activation("x", random_formats(nrng, (n_in,), 8))
    w = random_constant(nrng, "w", (n_out, n_in), TensorKind.WEIGHT)
    b = random_constant(nrng, "b", (n_out,), TensorKind.BIAS, max_width=12, prune=0.0)
    return x, w, b, rng


def _wide_dense(seed: int):
    """Wide values (products over 64 bits) and one format per weight row, very different
    rows: the weight container is far wider than any single row needs."""
    rng = random.Random(seed)
    x = activation("x", Formats.uniform((6,), FixedType(40, 10)))
    rows = [FixedType(36, 2), FixedType(4, -3), FixedType(30, 12, False), FixedType(1, 1)]
    types = np.empty((4, 6), dtype=object)
    for j, t in enumerate(rows):
        types[j, :] = [t] * 6
    wf = Formats.from_types(types)
    lo, hi = wf.mantissa_bounds()
    w = constant("w", TensorKind.WEIGHT, wf, [[rng.randint(int(a), int(z)) for a, z in zip(r, s)]
                                               for r, s in zip(lo, hi)])
    bf = Formats.uniform((4,), FixedType(50, 20))
    b = constant("b", TensorKind.BIAS, bf, [rng.randint(-(1 << 49), (1 << 49) - 1) for _ in range(4)])
    return x, w, b, rng


def _wrapping_dense(seed: int):
    """Each row sums large terms of both signs to a small total: the partial sums (in any
    order) leave the accumulator's range, only the final values fit."""
    rng = random.Random(seed)
    n_in, n_out = 8, 3
    xf = Formats.uniform((n_in,), FixedType(6, 2))
    wf = Formats.uniform((n_out, n_in), FixedType(8, 3))
    x = activation("x", xf)
    big = 127
    w = constant("w", TensorKind.WEIGHT, wf, [[big - rng.randint(0, 3) for _ in range(4)]
                                               + [-big + rng.randint(0, 3) for _ in range(4)]
                                               for _ in range(n_out)])
    b = constant("b", TensorKind.BIAS, Formats.uniform((n_out,), FixedType(6, 5)), [3, -7, 0])
    near_max = np.array([[31 - rng.randint(0, 1) for _ in range(n_in)] for _ in range(SAMPLES)], dtype=object)
    return x, w, b, Fx(near_max, int(xf.frac_bits[0]))


def dense_cases() -> list[Case]:
    x, w, b, rng = _random_dense(1, 7, 5)
    samples = random_samples(x.formats, rng)
    cases = [dense_case(f"dense_reuse{r}", x, w, b, r, rng, samples) for r in (1, 4)]
    x, w, b, rng = _random_dense(2, 9, 3)
    cases.append(dense_case("dense_nobias_reuse2", x, w, None, 2, rng))
    x, w, b, rng = _wide_dense(3)
    cases.append(dense_case("dense_wide_rows", x, w, b, 1, rng))
    x, w, b, xs = _wrapping_dense(4)
    cases += [dense_case(f"dense_wrap_reuse{r}", x, w, b, r, random.Random(0), xs) for r in (1, 3)]
    return cases


# --- conv ----------------------------------------------------------------------------------------


CONV2D_FIELDS = ("in_channels", "in_height", "in_width", "out_channels", "out_height", "out_width",
                 "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom",
                 "pad_right", "dilation_h", "dilation_w", "groups", "reuse")
CONV1D_FIELDS = ("in_channels", "in_length", "out_channels", "out_length", "kernel", "stride",
                 "pad_left", "pad_right", "dilation", "groups", "reuse")


def config_struct(name: str, fields: tuple[str, ...], values: tuple[int, ...]) -> str:
    body = "".join(f"    static const int {f} = {v};\n" for f, v in zip(fields, values, strict=True))
    return f"struct {name} {{\n{body}}};"


def conv_case(name: str, seed: int, c_in: int, spatial: tuple, c_out: int, kernel: tuple, strides: tuple,
              pads: tuple, dilations: tuple, groups: int, bias: bool = True, reuse: int = 1) -> Case:
    nrng, rng = np.random.default_rng(seed), random.Random(seed)
    x = activation("x", random_formats(nrng, (c_in, *spatial), 6))
    w = random_constant(nrng, "w", (c_out, c_in // groups, *kernel), TensorKind.WEIGHT, max_width=6)
    inputs = [x, w]
    if bias:
        inputs.append(random_constant(nrng, "b", (c_out,), TensorKind.BIAS, max_width=10, prune=0.0))
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": groups}
    g = one_node_graph(Op.CONV, inputs, attrs)
    xs = random_samples(x.formats, rng)
    acc = emulate(g, x=xs)
    out = g.tensor("y").shape
    # the field orders above list the values in this order, for 2-D and 1-D alike
    values = (c_in, *spatial, c_out, *out[1:], *kernel, *strides, *pads, *dilations, groups, reuse)
    dims = f"{len(spatial)}d"
    preamble = config_struct(f"cfg_{name}", CONV2D_FIELDS if len(spatial) == 2 else CONV1D_FIELDS, values)
    consts = [buffer("w", container_of_formats(w.formats), const_fx(w), batched=False)]
    if bias:
        consts.append(buffer("b", container_of_formats(inputs[2].formats), const_fx(inputs[2]), batched=False))
        call = f"finegrain::conv{dims}<cfg_{name}, x_t, w_t, b_t, acc_t>(x, acc, w, b);"
    else:
        call = f"finegrain::conv{dims}_nobias<cfg_{name}, x_t, w_t, acc_t>(x, acc, w);"
    return Case(name, "layers", call, tuple(consts), (buffer("x", container_of_formats(x.formats), xs),),
                (buffer("acc", container_of_values(acc), acc),), preamble=preamble)


def conv_cases() -> list[Case]:
    return [
        # stride, asymmetric padding, dilation
        conv_case("conv2d_stride_pad_dilation", 10, 3, (7, 6), 4, (3, 3), (2, 1), (1, 0, 2, 1), (1, 2), 1),
        # depthwise: one group per channel, padding on every side
        conv_case("conv2d_depthwise", 11, 4, (5, 5), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
        # grouped, non-square kernel, no bias, multipliers used twice
        conv_case("conv2d_groups_nobias_reuse2", 12, 4, (5, 6), 6, (2, 3), (1, 2), (0, 1, 1, 0), (1, 1), 2,
                  bias=False, reuse=2),
        conv_case("conv1d_stride_pad_dilation", 13, 3, (11,), 5, (3,), (2,), (1, 2), (2,), 1),
        conv_case("conv1d_depthwise_nobias", 14, 3, (8,), 6, (2,), (1,), (1, 0), (1,), 3, bias=False),
    ]


# --- pooling -------------------------------------------------------------------------------------


POOL2D_FIELDS = ("channels", "in_height", "in_width", "out_height", "out_width", "kernel_h", "kernel_w",
                 "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom", "pad_right")
POOL1D_FIELDS = ("channels", "in_length", "out_length", "kernel", "stride", "pad_left", "pad_right")


def _pool_input(seed: int, shape: tuple) -> tuple[Tensor, Fx]:
    """Signed inputs; half the samples are all <= 0, where a zero from padding would win."""
    nrng, rng = np.random.default_rng(seed), random.Random(seed)
    x = activation("x", random_formats(nrng, shape, 6, signed=True))
    xs = random_samples(x.formats, rng)
    m = xs.m.copy()
    m[: SAMPLES // 2] = -abs(m[: SAMPLES // 2])
    return x, Fx(m, xs.frac)


def maxpool_case(name: str, seed: int, shape: tuple, kernel: tuple, strides: tuple, pads: tuple,
                 dilations: tuple) -> Case:
    x, xs = _pool_input(seed, shape)
    g = one_node_graph(Op.MAXPOOL, [x], {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations})
    y = emulate(g, x=xs)
    out = g.tensor("y").shape
    values = (shape[0], *shape[1:], *out[1:], *kernel, *strides, *pads, *dilations)
    if len(kernel) == 2:
        preamble = config_struct(f"cfg_{name}", POOL2D_FIELDS + ("dilation_h", "dilation_w"), values)
    else:
        preamble = config_struct(f"cfg_{name}", POOL1D_FIELDS + ("dilation",), values)
    x_t = container_of_formats(x.formats)
    call = f"finegrain::maxpool{len(kernel)}d<cfg_{name}, x_t, y_t>(x, y);"
    return Case(name, "layers", call, (), (buffer("x", x_t, xs),), (buffer("y", x_t, y),), preamble=preamble)


def avgpool_case(name: str, seed: int, shape: tuple, kernel: tuple, strides: tuple, pads: tuple,
                 count_include_pad: bool) -> Case:
    x, xs = _pool_input(seed, shape)
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "count_include_pad": int(count_include_pad)}
    probe = one_node_graph(Op.MAXPOOL, [x], {k: attrs[k] for k in ("kernel", "strides", "pads")})
    out = probe.tensor("y").shape
    # the reciprocal of each window's element count, rounded as apply_plan rounds it
    n = len(kernel)
    ones = np.ones(shape[1:])
    counts = np.zeros(out[1:])
    padded = np.pad(ones, [(pads[i], pads[i + n]) for i in range(n)], constant_values=0 if not count_include_pad else 1)
    for o in np.ndindex(out[1:]):
        window = tuple(slice(o[i] * strides[i], o[i] * strides[i] + kernel[i]) for i in range(n))
        counts[o] = padded[window].sum()
    r_type = FixedType(12, 1, False)
    rf = Formats.uniform(out, r_type)
    recip = np.broadcast_to(1.0 / counts, out)
    reciprocal = constant("r", TensorKind.CONST, rf, np.round(np.ldexp(recip, r_type.frac_bits)).astype(np.int64))
    g = one_node_graph(Op.AVGPOOL, [x, reciprocal], attrs)
    y = emulate(g, x=xs)
    # sum_t must hold every window sum: the same op with a reciprocal of exactly one
    one = constant("r", TensorKind.CONST, Formats.uniform(out, FixedType(1, 1, False)), np.ones(out, dtype=np.int64))
    sums = emulate(one_node_graph(Op.AVGPOOL, [x, one], attrs), x=xs)
    values = (shape[0], *shape[1:], *out[1:], *kernel, *strides, *pads)
    preamble = config_struct(f"cfg_{name}", POOL2D_FIELDS if n == 2 else POOL1D_FIELDS, values)
    call = f"finegrain::avgpool{n}d<cfg_{name}, x_t, r_t, sum_t, y_t>(x, y, r);"
    return Case(name, "layers", call, (buffer("r", r_type, const_fx(reciprocal), batched=False),),
                (buffer("x", container_of_formats(x.formats), xs),), (buffer("y", container_of_values(y), y),),
                types={"sum_t": container_of_values(sums)}, preamble=preamble)


def pool_cases() -> list[Case]:
    return [
        maxpool_case("maxpool2d_pad_stride_dilation", 20, (3, 6, 7), (3, 2), (2, 2), (1, 1, 1, 0), (1, 2)),
        maxpool_case("maxpool2d_pad_all_sides", 21, (2, 4, 4), (2, 2), (2, 2), (1, 1, 1, 1), (1, 1)),
        maxpool_case("maxpool1d_pad_dilation", 22, (3, 9), (3,), (2,), (2, 1), (2,)),
        avgpool_case("avgpool2d_pad_exclude", 23, (3, 5, 6), (3, 3), (2, 2), (1, 1, 1, 1), False),
        avgpool_case("avgpool2d_pad_include", 24, (2, 4, 5), (2, 3), (1, 2), (0, 1, 1, 1), True),
        avgpool_case("avgpool1d_pad", 25, (3, 10), (4,), (3,), (2, 1), False),
    ]


# --- activations and elementwise ops ---------------------------------------------------------


def unary_case(name: str, op: Op, seed: int, shape: tuple, call: str, consts: list[Tensor] = (),
               const_names: tuple[str, ...] = (), attrs=None, y_type: FixedType | None = None) -> Case:
    nrng, rng = np.random.default_rng(seed), random.Random(seed)
    x = activation("x", random_formats(nrng, shape, 9, signed=True))
    xs = random_samples(x.formats, rng)
    g = one_node_graph(op, [x, *consts], attrs)
    y = emulate(g, x=xs)
    bufs = tuple(buffer(n, container_of_formats(c.formats), const_fx(c), batched=False)
                 for n, c in zip(const_names, consts))
    return Case(name, "pointwise", call, bufs, (buffer("x", container_of_formats(x.formats), xs),),
                (buffer("y", y_type or container_of_values(y), y),))


def scalar(name: str, t: FixedType, value: float) -> Tensor:
    return constant(name, TensorKind.CONST, Formats.uniform((), t), round(value * 2.0 ** t.frac_bits))


def pointwise_cases() -> list[Case]:
    n = 3 * 5
    cases = [
        unary_case("relu", Op.RELU, 30, (3, 5), f"finegrain::relu<x_t, y_t, {n}>(x, y);"),
        unary_case("leaky_relu", Op.LEAKY_RELU, 31, (3, 5),
                   f"finegrain::leaky_relu<x_t, a_t, y_t, {n}>(x, y, a[0]);",
                   [scalar("alpha", FixedType(10, 0, True), 0.1)], ("a",)),
        unary_case("clip", Op.CLIP, 32, (3, 5), f"finegrain::clip<x_t, lo_t, hi_t, y_t, {n}>(x, y, lo[0], hi[0]);",
                   [scalar("lo", FixedType(6, 3), -2.5), scalar("hi", FixedType(7, 4, False), 6.25)], ("lo", "hi")),
        # an empty interval: min(max(x, lo), hi) is hi everywhere
        unary_case("clip_reversed_bounds", Op.CLIP, 33, (3, 5),
                   f"finegrain::clip<x_t, lo_t, hi_t, y_t, {n}>(x, y, lo[0], hi[0]);",
                   [scalar("lo", FixedType(6, 3), 1.5), scalar("hi", FixedType(7, 4), -0.75)], ("lo", "hi")),
    ]
    # add: two activations of different containers
    nrng, rng = np.random.default_rng(34), random.Random(34)
    a = activation("a", random_formats(nrng, (2, 7), 10))
    b = activation("b", random_formats(nrng, (2, 7), 10))
    a_s, b_s = random_samples(a.formats, rng), random_samples(b.formats, rng)
    y = emulate(one_node_graph(Op.ADD, [a, b]), a=a_s, b=b_s)
    a_t, b_t = container_of_formats(a.formats), container_of_formats(b.formats)
    cases.append(Case("add", "pointwise", "finegrain::add<a_t, b_t, y_t, 14>(a, b, y);", (),
                      (buffer("a", a_t, a_s), buffer("b", b_t, b_s)), (buffer("y", add_type(a_t, b_t), y),)))
    # add_const / mul_const: a per-channel constant broadcast over [C, L], materialised
    nrng = np.random.default_rng(35)
    c = random_constant(nrng, "c", (3, 1), TensorKind.CONST, max_width=10, prune=0.0)
    c_t = container_of_formats(c.formats)
    c_full = Fx(ints(np.broadcast_to(c.data, (3, 4))).reshape(-1), c.data_frac)
    for name, op in (("add_const", Op.ADD), ("mul_const", Op.MUL)):
        case = unary_case(name, op, 36, (3, 4), f"finegrain::{name}<x_t, c_t, y_t, 12>(x, c, y);", [c], ("c",))
        # the emulator broadcasts the [3, 1] constant; the C++ side gets it materialised
        cases.append(Case(name, "pointwise", case.call, (Buffer("c", c_t, in_type(c_full, c_t)),), case.inputs,
                          case.outputs))
    cases += layout_cases()
    cases += requantize_elements_cases()
    cases.append(mantissa_case())
    return cases


def layout_cases() -> list[Case]:
    nrng, rng = np.random.default_rng(37), random.Random(37)
    x = activation("x", random_formats(nrng, (2, 3, 4), 7))
    xs = random_samples(x.formats, rng)
    x_t = container_of_formats(x.formats)
    cases = []
    # reshape: a copy into a (here wider, unsigned-or-not) container of the same values
    wide = FixedType(x_t.width + 3, x_t.int_bits + 3, True)
    y = emulate(one_node_graph(Op.RESHAPE, [x], {"shape": (4, 6)}), x=xs)
    cases.append(Case("copy", "pointwise", "finegrain::copy<x_t, y_t, 24>(x, y);", (),
                      (buffer("x", x_t, xs),), (buffer("y", wide, y),)))
    # transpose: y[i] = x[src[i]] with src the transposed flat indices
    perm = (2, 0, 1)
    src = np.arange(24).reshape(2, 3, 4).transpose(perm).ravel().tolist()
    y = emulate(one_node_graph(Op.TRANSPOSE, [x], {"perm": perm}), x=xs)
    cases.append(Case("permute", "pointwise", "finegrain::permute<x_t, y_t, 24>(x, y, src);", (),
                      (buffer("x", x_t, xs),), (buffer("y", x_t, y),), indices={"src": src}))
    # concat along axis 0 (copy_into at offsets) and along axis 2 (scatter by an index map)
    z = activation("z", random_formats(nrng, (2, 3, 4), 9))
    zs = random_samples(z.formats, rng)
    z_t = container_of_formats(z.formats)
    y0 = emulate(one_node_graph(Op.CONCAT, [x, z], {"axis": 0}), x=xs, z=zs)
    y_t = container_of_values(y0, xs, zs)
    cases.append(Case("concat_copy_into", "pointwise",
                      "finegrain::copy_into<x_t, y_t, 24, 0>(x, y);\nfinegrain::copy_into<z_t, y_t, 24, 24>(z, y);",
                      (), (buffer("x", x_t, xs), buffer("z", z_t, zs)), (buffer("y", y_t, y0),)))
    y2 = emulate(one_node_graph(Op.CONCAT, [x, z], {"axis": 2}), x=xs, z=zs)
    out = np.arange(2 * 3 * 8).reshape(2, 3, 8)
    cases.append(Case("concat_scatter", "pointwise",
                      "finegrain::scatter<x_t, y_t, 24>(x, y, dst_x);\nfinegrain::scatter<z_t, y_t, 24>(z, y, dst_z);",
                      (), (buffer("x", x_t, xs), buffer("z", z_t, zs)), (buffer("y", y_t, y2),),
                      indices={"dst_x": out[:, :, :4].ravel().tolist(), "dst_z": out[:, :, 4:].ravel().tolist()}))
    return cases


def mantissa_case() -> Case:
    """finegrain::mantissa (sign-correct, any width) and finegrain::table_index, stored
    into integer types one bit wider (a wrongly unsigned mantissa would show), and
    finegrain::mantissa_string read back by finegrain::set_mantissa (testbench.h)."""
    rng = random.Random(42)
    types = [FixedType(7, 2), FixedType(7, 2, False), FixedType(1, 0), FixedType(1, 1, False), FixedType(10, -3),
             FixedType(90, 3), FixedType(7, 2, True, Rounding.CEIL, Overflow.SAT),
             FixedType(70, -3, False, Rounding.CEIL)]  # finegrain::ceil_fixed / ceil_ufixed
    inputs, outputs, calls = [], [], []
    for k, t in enumerate(types):
        m = [rng.randint(t.min_mantissa, t.max_mantissa) for _ in range(40)] + [t.min_mantissa, t.max_mantissa, 0]
        inputs.append(Buffer(f"x{k}", t, ints([m])))
        outputs.append(Buffer(f"m{k}", FixedType(t.width + 1, t.width + 1), ints([m])))
        calls.append(f"for (int i = 0; i < {len(m)}; i++) m{k}[i] = m{k}_t(finegrain::mantissa(x{k}[i]));")
        outputs.append(Buffer(f"s{k}", t, ints([m])))
        calls.append(f"for (int i = 0; i < {len(m)}; i++) "
                     f"finegrain::set_mantissa(s{k}[i], finegrain::mantissa_string(x{k}[i]));")
        if t.width <= 30:
            outputs.append(Buffer(f"i{k}", FixedType(t.width + 1, t.width + 1),
                                  ints([[v - t.min_mantissa for v in m]])))
            calls.append(f"for (int i = 0; i < {len(m)}; i++) i{k}[i] = i{k}_t(finegrain::table_index(x{k}[i]));")
    return Case("mantissa_and_table_index", "pointwise", "\n".join(calls), (), tuple(inputs), tuple(outputs))


def mixed_formats(seed: int, shape: tuple) -> Formats:
    """Per-element formats with every rounding and overflow mode, some pruned."""
    nrng = np.random.default_rng(seed)
    f = random_formats(nrng, shape, 7, prune=0.15)
    kept = f.width > 0
    return Formats(f.width, f.int_bits, f.signed,
                   np.where(kept, nrng.integers(0, len(Rounding), shape), 0),
                   np.where(kept, nrng.integers(0, len(Overflow), shape), 0))


def requantize_elements_cases() -> list[Case]:
    rng = random.Random(40)
    shape = (4, 6)
    x = activation("x", Formats.uniform(shape, FixedType(14, 5)))
    xs = random_samples(x.formats, rng, 60)
    yf = mixed_formats(41, shape)
    g = one_node_graph(Op.REQUANTIZE, [x], out_formats=yf)
    y = emulate(g, x=xs)
    y_t = container_of_formats(yf)
    calls, types, indices = [], {}, {}
    flat = {name: getattr(yf, name).ravel() for name in ("width", "int_bits", "signed", "rounding", "overflow")}
    for k, t in enumerate(yf.distinct()):
        if t is None:
            members = np.nonzero(flat["width"] == 0)[0].tolist()
            indices["pruned"] = members
            calls.append(f"finegrain::zero_elements<y_t, 24, {len(members)}>(y, pruned);")
            continue
        members = [i for i in range(24) if flat["width"][i] and FixedType(
            int(flat["width"][i]), int(flat["int_bits"][i]), bool(flat["signed"][i]),
            Rounding(int(flat["rounding"][i])), Overflow(int(flat["overflow"][i]))) == t]
        types[f"e{k}_t"], indices[f"idx{k}"] = t, members
        calls.append(f"finegrain::requantize_elements<x_t, e{k}_t, y_t, 24, {len(members)}>(x, y, idx{k});")
    assert "pruned" in indices and len(types) > 5
    return [Case("requantize_elements", "pointwise", "\n".join(calls), (),
                 (buffer("x", container_of_formats(x.formats), xs),), (buffer("y", y_t, y),),
                 types=types, indices=indices)]


# --- requantize: every rounding x overflow mode -------------------------------------------------


def requantize_matrix_case(name: str, src: FixedType, targets: list[FixedType], mantissas) -> Case:
    """One sample holding every source value; one output per target type."""
    m = ints(list(mantissas))[np.newaxis, :]
    n = m.shape[1]
    outputs, calls = [], []
    for k, t in enumerate(targets):
        expected = requantize(m, src.frac_bits, Formats.uniform((n,), t))
        outputs.append(Buffer(f"y{k}", t, ints(expected)))
        calls.append(f"finegrain::requantize<x_t, y{k}_t, {n}>(x, y{k});")
    return Case(name, "requantize", "\n".join(calls), (), (Buffer("x", src, m),), tuple(outputs))


def requantize_cases() -> list[Case]:
    """Every rounding x overflow pair, into signed and unsigned targets, from signed and
    unsigned sources (every source value) and from a 90-bit source."""
    every_mode = [(q, o) for q in Rounding for o in Overflow]
    # (6,3) plain; (4,-2) negative integer bits; (2,12) I > W, so rounding drops more bits
    # than the source has (the case finegrain::convert exists for)
    narrow = [FixedType(w, i, s, q, o) for s in (True, False) for q, o in every_mode
              for w, i in ((6, 3), (4, -2), (2, 12))]
    # 1-bit targets, where SAT_SYM has its own rule
    narrow += [FixedType(1, i, s, q, o) for s, i in ((True, 0), (False, 1))
               for q in (Rounding.TRN, Rounding.RND_CONV, Rounding.CEIL) for o in Overflow]
    src = FixedType(12, 5)
    cases = [requantize_matrix_case("requantize_signed_source", src, narrow,
                                    range(src.min_mantissa, src.max_mantissa + 1))]
    usrc = FixedType(9, 3, False)
    targets = [FixedType(4, 1, s, q, o) for s in (True, False) for q, o in every_mode]
    cases.append(requantize_matrix_case("requantize_unsigned_source", usrc, targets,
                                        range(usrc.min_mantissa, usrc.max_mantissa + 1)))
    # over 64 bits: every mode pair once (signedness alternating), and wide targets
    rng = random.Random(50)
    wide = FixedType(90, 40)
    targets = [FixedType(20, 10, k % 2 == 0, q, o) for k, (q, o) in enumerate(every_mode)]
    targets += [FixedType(70, 25, s, Rounding.RND_CONV, o)
                for s in (True, False) for o in (Overflow.SAT, Overflow.SAT_SYM)]
    values = [rng.randint(wide.min_mantissa, wide.max_mantissa) >> rng.randint(0, 80) for _ in range(400)]
    values += [wide.min_mantissa, wide.max_mantissa, 0, -1, 1, 1 << 59, -(1 << 59), (1 << 59) - 1]
    cases.append(requantize_matrix_case("requantize_wide", wide, targets, values))
    return cases


# --- table look-ups --------------------------------------------------------------------------------


def sigmoid_case(name: str, x_type: FixedType, mantissas, tables: dict | None = None) -> Case:
    plan = parse_plan({"tables": tables or {}}, Path("."))
    table = _sigmoid_table(plan, plan.table_type("sigmoid_output"))
    m = ints(np.asarray(mantissas, dtype=object).reshape(-1, 64))
    x = activation("x", Formats.uniform((64,), x_type))
    g = one_node_graph(Op.SIGMOID, [x], {"table": table}, out_formats=Formats.uniform((64,), table.output))
    y = emulate(g, x=Fx(m, x_type.frac_bits))
    size = table.values.size
    return Case(name, "lookup", f"finegrain::sigmoid<x_t, code_t, y_t, 64, {size}>(x, y, table);",
                (Buffer("table", table.output, ints(table.values)),), (Buffer("x", x_type, m),),
                (buffer("y", table.output, y),), types={"code_t": table.input})


def softmax_case(name: str, x_type: FixedType, shape: tuple, axis: int, rng: random.Random,
                 tables: dict | None = None) -> Case:
    plan = parse_plan({"tables": tables or {}}, Path("."))
    n = shape[axis]
    exp_table, inv_table = _softmax_tables(plan, n)
    out_type = plan.table_type("softmax_output")
    x = activation("x", Formats.uniform(shape, x_type))
    xs = random_samples(x.formats, rng, 60)
    m = xs.m.copy()
    m[:10] = m[:10] // 64  # close values, with ties
    xs = Fx(m, xs.frac)
    g = one_node_graph(Op.SOFTMAX, [x], {"axis": axis, "exp_table": exp_table, "inv_table": inv_table},
                       out_formats=Formats.uniform(shape, out_type))
    y = emulate(g, x=xs)
    d_type = FixedType.for_range(x_type.min_mantissa - x_type.max_mantissa, 0, x_type.frac_bits)
    types = {"d_t": d_type, "code_t": exp_table.input, "sum_t": accumulate_type(exp_table.output, n),
             "icode_t": inv_table.input}
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    total = outer * n * inner
    sizes = f"{exp_table.values.size}, {inv_table.values.size}"
    if outer == inner == 1:
        call = f"finegrain::softmax<x_t, d_t, code_t, e_t, sum_t, icode_t, r_t, y_t, {n}, {sizes}>(x, y, e, r);"
    else:
        call = (f"finegrain::softmax_axis<x_t, d_t, code_t, e_t, sum_t, icode_t, r_t, y_t, {outer}, {n}, {inner}, "
                f"{sizes}>(x, y, e, r);")
    assert total == int(np.prod(shape))
    return Case(name, "lookup", call,
                (Buffer("e", exp_table.output, ints(exp_table.values)),
                 Buffer("r", inv_table.output, ints(inv_table.values))),
                (buffer("x", x_type, xs),), (buffer("y", out_type, y),), types=types)


def lookup_cases() -> list[Case]:
    rng = random.Random(60)
    every = FixedType(12, 5)
    wide = FixedType(40, 8)
    wide_values = [rng.randint(wide.min_mantissa, wide.max_mantissa) >> rng.randint(0, 30) for _ in range(640)]
    return [
        # every code of a finer input: rounding (TRN) and saturation into the table input
        sigmoid_case("sigmoid_every_input", every, range(every.min_mantissa, every.max_mantissa + 1)),
        # a coarser input (a left shift) and a wide one
        sigmoid_case("sigmoid_coarse_input", FixedType(8, 6), [rng.randint(-128, 127) for _ in range(640)]),
        sigmoid_case("sigmoid_wide_input", wide, wide_values),
        # a table with an unsigned, rounding and saturating input
        sigmoid_case("sigmoid_unsigned_table_input", every, range(every.min_mantissa, every.max_mantissa + 1),
                     {"sigmoid_input": "ufixed<6,2,RND,SAT>"}),
        softmax_case("softmax_10", FixedType(14, 6), (10,), 0, rng),
        softmax_case("softmax_5_rounding_inputs", FixedType(16, 5), (5,), 0, rng,
                     {"exp_input": "fixed<9,4,RND_CONV,SAT>", "inv_bits": 12}),
        softmax_case("softmax_axis_middle", FixedType(10, 4), (2, 4, 3), 1, rng),
        # CEIL (finegrain::ceil_fixed) into a table input and into the output
        sigmoid_case("sigmoid_ceil_table_input", every, range(every.min_mantissa, every.max_mantissa + 1),
                     {"sigmoid_input": "fixed<7,3,CEIL,SAT>"}),
        softmax_case("softmax_5_ceil", FixedType(16, 5), (5,), 0, rng,
                     {"exp_input": "fixed<9,4,CEIL,SAT>", "softmax_output": "ufixed<10,1,CEIL,SAT>"}),
    ]


# --- comparing and combining two types (common.h) ---------------------------------------------


def _random_type(rng: random.Random) -> FixedType:
    """Narrow, 32/64-bit-edge and multi-word widths; integer bits negative, inside and beyond the width."""
    w = rng.choice([1, 2, 3, 7, 8, 16, 30, 31, 32, 33, 34, 35, 40, 63, 64, 65, 70, 80, 100, 130, 200, 338])
    i = rng.choice([rng.randint(-w - 8, w + 8), rng.randint(-w - 8, w + 8), -1, 0, 2, w, w + 40, -40])
    return FixedType(w, i, rng.random() < 0.5)


def _random_mantissa(t: FixedType, rng: random.Random) -> int:
    """An extreme, zero, uniform, or a bit pattern with a long run of ones (where ap_int's
    multi-word multiplication used to lose a carry)."""
    kind = rng.randrange(6)
    if kind < 3:
        return [t.min_mantissa, t.max_mantissa, 0][kind]
    if kind == 3:
        return rng.randint(t.min_mantissa, t.max_mantissa)
    lo = rng.randrange(t.width)
    hi = rng.randint(lo, t.width - 1)
    raw = (rng.getrandbits(t.width) | (((1 << (hi - lo + 1)) - 1) << lo)) & ((1 << t.width) - 1)
    return raw - (1 << t.width) if t.signed and raw >> (t.width - 1) else raw


def _value_in(t: FixedType, value: Fraction) -> int | None:
    """The mantissa of ``value`` in ``t``, or None when ``t`` cannot hold it exactly."""
    m = value * Fraction(2) ** t.frac_bits
    return int(m) if m.denominator == 1 and t.min_mantissa <= m <= t.max_mantissa else None


# a product ap_int got wrong (its carry bug): the jet tagger's fc3 with 70-bit weights
_CARRY_CASE = (FixedType(70, 2), -96402294404888395776, FixedType(338, 7, False),
               24253527822325512822219365186265070299165311061628364398134958567081871607263141401770155628875862080)
# a product just under ap_int's default 1024 bits with a narrow factor (multiply's pieces are
# then as narrow as the factor)
_NARROW_FACTOR_CASE = (FixedType(1000, 3), FixedType(8, 2, False))


def mixed_pair_case(name: str, seed: int, pairs: int = 24, samples: int = 40) -> Case:
    """finegrain::compare(a, b), sign(a) and multiply(a, b) against exact Python arithmetic,
    and ap_fixed's own a + b, on random pairs of types of either signedness; values
    include each type's extremes, zero, long runs of one bits, and b == a whenever b can
    hold a's value (the ties a comparison must see)."""
    rng = random.Random(seed)
    inputs, outputs, calls = [], [], []
    for k in range(pairs):
        a_t, b_t = {0: (_CARRY_CASE[0], _CARRY_CASE[2]), 1: _NARROW_FACTOR_CASE}.get(
            k, (_random_type(rng), _random_type(rng)))
        while max(a_t.frac_bits, b_t.frac_bits) + max(a_t.int_bits + (not a_t.signed),
                                                      b_t.int_bits + (not b_t.signed)) > 1024:
            b_t = _random_type(rng)
        if k % 4 == 3:  # finegrain::ceil_fixed operands: ap_fixed's arithmetic and compare as any type
            a_t = replace(a_t, rounding=Rounding.CEIL, overflow=Overflow.SAT)
        am, bm = [], []
        for s in range(samples):
            a = _random_mantissa(a_t, rng)
            tie = _value_in(b_t, Fraction(a) / Fraction(2) ** a_t.frac_bits)
            am.append(a)
            bm.append(tie if tie is not None and s % 3 == 0 else _random_mantissa(b_t, rng))
        if k == 0:
            am[1], bm[1] = _CARRY_CASE[1], _CARRY_CASE[3]
        va = [Fraction(m) / Fraction(2) ** a_t.frac_bits for m in am]
        vb = [Fraction(m) / Fraction(2) ** b_t.frac_bits for m in bm]
        s_t, p_t = add_type(a_t, b_t), mul_type(a_t, b_t)
        column = lambda values: np.array([[v] for v in values], dtype=object)  # noqa: E731 (exact ints)
        inputs += [Buffer(f"a{k}", a_t, column(am)), Buffer(f"b{k}", b_t, column(bm))]
        outputs += [Buffer(f"c{k}", FixedType(2, 2), column((x > y) - (x < y) for x, y in zip(va, vb))),
                    Buffer(f"z{k}", FixedType(2, 2), column((x > 0) - (x < 0) for x in va)),
                    Buffer(f"s{k}", s_t, column(_value_in(s_t, x + y) for x, y in zip(va, vb))),
                    Buffer(f"p{k}", p_t, column(_value_in(p_t, x * y) for x, y in zip(va, vb)))]
        calls += [f"c{k}[0] = c{k}_t(finegrain::compare(a{k}[0], b{k}[0]));",
                  f"z{k}[0] = z{k}_t(finegrain::sign(a{k}[0]));",
                  f"s{k}[0] = s{k}_t(a{k}[0] + b{k}[0]);", f"p{k}[0] = p{k}_t(finegrain::multiply(a{k}[0], b{k}[0]));"]
    return Case(name, "mixed", "\n".join(calls), (), tuple(inputs), tuple(outputs))


def wide_clip_cases() -> list[Case]:
    """The clip / relu / leaky-relu kernels on a wide signed input with negative integer
    bits against unsigned bounds: ap_fixed's own comparison gets these wrong (issue 11:
    Hardtanh(-1, 1) after a Linear gave 0 for every negative output)."""
    rng = random.Random(61)
    x_t = FixedType(34, -1)
    m = ints([[rng.randint(x_t.min_mantissa, x_t.max_mantissa) for _ in range(16)] + [x_t.min_mantissa, -1, 0, 1]])
    x = activation("x", Formats.uniform((20,), x_t))
    xs = Fx(m, x_t.frac_bits)
    cases = []
    for name, lo, hi in (("clip_wide_input_unsigned_bound", scalar("lo", FixedType(2, 2), -1.0),
                          scalar("hi", FixedType(2, 2, False), 1.0)),
                         ("clip_wide_input_unsigned_bounds", scalar("lo", FixedType(2, 2, False), 0.0),
                          scalar("hi", FixedType(2, 2, False), 3.0))):
        y = emulate(one_node_graph(Op.CLIP, [x, lo, hi]), x=xs)
        cases.append(Case(name, "pointwise", "finegrain::clip<x_t, lo_t, hi_t, y_t, 20>(x, y, lo[0], hi[0]);",
                          tuple(buffer(n, container_of_formats(c.formats), const_fx(c), batched=False)
                                for n, c in (("lo", lo), ("hi", hi))),
                          (Buffer("x", x_t, m),), (buffer("y", FixedType(38, 3), y),)))
    y = emulate(one_node_graph(Op.RELU, [x]), x=xs)
    cases.append(Case("relu_wide_input", "pointwise", "finegrain::relu<x_t, y_t, 20>(x, y);", (),
                      (Buffer("x", x_t, m),), (buffer("y", FixedType(34, -1), y),)))
    alpha = scalar("alpha", FixedType(4, 1, False), 0.5)
    y = emulate(one_node_graph(Op.LEAKY_RELU, [x, alpha]), x=xs)
    cases.append(Case("leaky_relu_wide_input", "pointwise", "finegrain::leaky_relu<x_t, a_t, y_t, 20>(x, y, a[0]);",
                      (buffer("a", FixedType(4, 1, False), const_fx(alpha), batched=False),),
                      (Buffer("x", x_t, m),), (buffer("y", FixedType(38, -1), y),)))
    return cases


# --- building and running ---------------------------------------------------------------------


def all_cases() -> list[Case]:
    return (dense_cases() + conv_cases() + pool_cases() + pointwise_cases() + wide_clip_cases() + requantize_cases()
            + lookup_cases() + [mixed_pair_case(f"mixed_pairs_{k}", 70 + k) for k in range(2)])


ALL_CASES = all_cases()
CASES = {c.name: c for c in ALL_CASES}


@dataclass(frozen=True)
class Programs:
    binaries: dict
    build_seconds: dict


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> Programs:
    ap_types = ap_types_dir()
    if ap_types is None:
        pytest.skip("hls4ml (for the ap_types headers) is not installed")
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed")
    out = tmp_path_factory.mktemp("hls_library")

    def build(program: str) -> tuple[str, Path, float]:
        source = out / f"{program}.cpp"
        source.write_text(render_program(program, [c for c in CASES.values() if c.program == program]))
        binary = out / program
        start = time.monotonic()
        result = subprocess.run([compiler, "-std=c++14", "-O1", f"-I{ap_types}", f"-I{LIBRARY}", f"-I{HARNESS}",
                                 str(source), "-o", str(binary)], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"g++ failed on {source}:\n{result.stderr[-6000:]}")
        return program, binary, time.monotonic() - start

    # the requantize program takes longest: it goes first, the others share the second job
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(pool.map(build, ("requantize", "layers", "pointwise", "lookup", "mixed")))
    seconds = {p: round(s, 1) for p, _, s in built}
    print(f"finegrain HLS library test programs built in {seconds} s")  # shown with pytest -s
    return Programs({p: b for p, b, _ in built}, seconds)


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


def names(prefix: str) -> list[str]:
    return [n for n in CASES if n.startswith(prefix)]


# --- tests -----------------------------------------------------------------------------------------


def test_case_names_are_unique():
    assert len(CASES) == len(ALL_CASES)


@pytest.mark.parametrize("name", names("dense"))
def test_dense_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


def test_dense_reuse_does_not_change_values(programs):
    one, four = (run_case(programs, CASES[f"dense_reuse{r}"])[0] for r in (1, 4))
    assert np.array_equal(one, four)


def test_dense_wrap_case_really_overflows_its_accumulator():
    """The final sums fit the accumulator but the running sums (in either order) do not:
    only wrap-around accumulation gets the wrapped case right."""
    case = CASES["dense_wrap_reuse1"]
    x, w, acc = case.inputs[0], case.consts[0], case.outputs[0]
    acc_t = acc.type
    shift = acc_t.frac_bits - (x.type.frac_bits + w.type.frac_bits)
    assert shift <= 0
    weights = w.values.reshape(3, 8)
    escaped = False
    for sample in x.values:
        products = weights * sample[np.newaxis, :]
        for row in products:
            for order in (row, row[::-1]):
                partial = np.cumsum(order) // (1 << -shift)
                escaped |= bool(any(v < acc_t.min_mantissa or v > acc_t.max_mantissa for v in partial))
    assert escaped, f"no partial sum leaves {acc_t}: the case does not test wrapping"


@pytest.mark.parametrize("name", names("conv"))
def test_conv_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("maxpool") + names("avgpool"))
def test_pooling_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.program == "pointwise"])
def test_pointwise_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.program == "requantize"])
def test_requantize_every_mode_matches_fixed_py(programs, name):
    """ap_fixed assignment == compiler.mantissa.requantize for every rounding x overflow pair,
    signed and unsigned targets, negative integer bits, I > W, 1-bit and >64-bit types."""
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("sigmoid") + names("softmax"))
def test_lookup_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("mixed_pairs"))
def test_compare_and_arithmetic_of_two_types_are_exact(programs, name):
    """finegrain::compare, sign and multiply and ap_fixed's + on random type pairs (either
    signedness, widths across the 32- and 64-bit edges up to 338, integer bits negative and
    beyond the width), against exact Python arithmetic."""
    assert_case_exact(programs, CASES[name])
