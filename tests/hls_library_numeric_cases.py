"""The HLS library's element-wise and numeric cases for tests/test_hls_library.py:
activations and element-wise ops, layouts, per-element requantization and finegrain::mantissa
(the "pointwise" program), every rounding x overflow mode of a requantize ("requantize"),
sigmoid and softmax tables ("lookup"), and comparing and combining two types ("mixed").
"""

from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from compiler.emulate import Fx
from compiler.fixed import FixedType, Formats, Overflow, Rounding, accumulate_type, add_type, mul_type
from compiler.ir import Op, Tensor, TensorKind
from compiler.mantissa import requantize
from compiler.passes.apply_plan import _softmax_tables, function_table
from compiler.plan import parse_plan
from tests.hls_library_harness import (Buffer, Case, activation, buffer, const_fx, constant, container_of_formats,
                                       container_of_values, emulate, in_type, ints, one_node_graph, random_samples)
from tests.irgraphs import random_constant, random_formats


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
    # clip_each: bounds per element (a quantizer's clamp per channel), one pair of them crossed
    bound_rng = np.random.default_rng(35)
    low = bound_rng.integers(-24, 8, size=(3, 5))
    high = low + bound_rng.integers(0, 40, size=(3, 5))
    high[1, 2] = low[1, 2] - 6
    cases.append(unary_case("clip_each", Op.CLIP, 35, (3, 5),
                            f"finegrain::clip_each<x_t, lo_t, hi_t, y_t, {n}>(x, y, lo, hi);",
                            [constant("lo", TensorKind.CONST, Formats.uniform((3, 5), FixedType(6, 3)), low),
                             constant("hi", TensorKind.CONST, Formats.uniform((3, 5), FixedType(7, 4)), high)],
                            ("lo", "hi")))
    # add: two activations of different containers
    nrng, rng = np.random.default_rng(34), random.Random(34)
    a = activation("a", random_formats(nrng, (2, 7), 10))
    b = activation("b", random_formats(nrng, (2, 7), 10))
    a_s, b_s = random_samples(a.formats, rng), random_samples(b.formats, rng)
    y = emulate(one_node_graph(Op.ADD, [a, b]), a=a_s, b=b_s)
    a_t, b_t = container_of_formats(a.formats), container_of_formats(b.formats)
    cases.append(Case("add", "pointwise", "finegrain::add<a_t, b_t, y_t, 14>(a, b, y);", (),
                      (buffer("a", a_t, a_s), buffer("b", b_t, b_s)), (buffer("y", add_type(a_t, b_t), y),)))
    # mul: the same two activations' product (a gate), and broadcast by index maps ([2, 1] on [2, 7])
    y = emulate(one_node_graph(Op.MUL, [a, b]), a=a_s, b=b_s)
    cases.append(Case("mul", "pointwise", "finegrain::mul<a_t, b_t, y_t, 14>(a, b, y);", (),
                      (buffer("a", a_t, a_s), buffer("b", b_t, b_s)), (buffer("y", mul_type(a_t, b_t), y),)))
    g = activation("g", random_formats(nrng, (2, 1), 8))
    g_s = random_samples(g.formats, rng)
    g_t = container_of_formats(g.formats)
    y = emulate(one_node_graph(Op.MUL, [a, g]), a=a_s, g=g_s)
    cases.append(Case("mul_indexed", "pointwise", "finegrain::mul_indexed<a_t, g_t, y_t, 14>(a, g, ai, gi, y);",
                      (), (buffer("a", a_t, a_s), buffer("g", g_t, g_s)), (buffer("y", mul_type(a_t, g_t), y),),
                      indices={"ai": list(range(14)), "gi": [i // 7 for i in range(14)]}))
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
    table = function_table(plan, "sigmoid", {}, plan.table_type("sigmoid_output"))
    m = ints(np.asarray(mantissas, dtype=object).reshape(-1, 64))
    x = activation("x", Formats.uniform((64,), x_type))
    g = one_node_graph(Op.TABLE, [x], {"function": "sigmoid", "params": {}, "table": table},
                       out_formats=Formats.uniform((64,), table.output))
    y = emulate(g, x=Fx(m, x_type.frac_bits))
    size = table.values.size
    return Case(name, "lookup", f"finegrain::lookup<x_t, code_t, y_t, 64, {size}>(x, y, table);",
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
