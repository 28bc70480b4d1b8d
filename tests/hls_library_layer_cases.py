"""The HLS library's layer cases (the "layers" program: dense.h, conv.h, pooling.h) for
tests/test_hls_library.py: dense with and without bias at several reuse factors, wide and
wrapping accumulators, 1-d and 2-d convolutions, max and average pooling with padding.
"""

from __future__ import annotations

import random

import numpy as np

from compiler.emulate import Fx
from compiler.fixed import FixedType, Formats
from compiler.ir import Op, Tensor, TensorKind
from tests.hls_library_harness import (SAMPLES, Case, activation, buffer, const_fx, constant, container_of_formats,
                                       container_of_values, emulate, one_node_graph, random_samples)
from tests.irgraphs import random_constant, random_formats


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
