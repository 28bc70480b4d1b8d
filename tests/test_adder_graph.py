"""Property tests of the constant-matrix optimiser (compiler/adder_graph.py) on random constant
matrices, against plain Python integers (issue 14).

A problem is rows of terms ``(input, constant, shift)`` over inputs in ``[lo, hi]`` (a format of
1..16 bits, signed or unsigned, or one constant value), a bias per row, and optionally each
output read as a narrower ``(width, signed)`` field.  Hypothesis draws zeros, whole zero rows
and unused inputs, repeated inputs in a row, negative-only rows, shifts and biases; for each:

* ``AdderGraph.evaluate`` equals the integer matrix product (wrapped to the output's field) on
  random inputs and on corners (every input at lo, at hi, and random mixes of the two);
* the graph has no more adders than the unshared design: each row's CSD digits summed alone
  (what the per-output trees build), ``digits + bias - 1`` adders, one more to negate a row
  whose digits are all negative and which has no bias;
* with ``max_levels``, every output is at most that many adders deep (a bound below the least
  depth is raised to it), and never shallower than its row's least depth;
* every node's range is the exact range of its linear form over the inputs, and its width the
  least that holds that range, or what its consumers keep when that is narrower.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.adder_graph import AdderGraph, Structure, build, least_depth, solve

# --- the reference: written here, not taken from the module under test ----------------------


def naf(value: int) -> list[int]:
    """The non-zero digits (+1 / -1) of ``value``'s non-adjacent form, fewest of any signed-digit
    representation."""
    digits = []
    while value:
        if value % 2:
            d = 2 - value % 4
            digits.append(d)
            value -= d
        value //= 2
    return digits


def row_digits(row: list[tuple[int, int, int]]) -> list[int]:
    """A row's signed digits when each input's terms are summed to one constant first."""
    per_input: dict[int, int] = {}
    for i, c, e in row:
        per_input[i] = per_input.get(i, 0) + c * 2**e
    return [d for v in per_input.values() for d in naf(v)]


def unshared_adders(rows, biases) -> int:
    """Adders of the unshared design: each row's digits (and bias) summed in its own tree."""
    total = 0
    for row, bias in zip(rows, biases):
        digits = row_digits(row)
        terms = len(digits) + (bias != 0)
        if terms:
            total += terms - 1
        if digits and not bias and all(d < 0 for d in digits):
            total += 1  # -(x + y): the sum, negated
    return total


def wrapped(value: int, fmt) -> int:
    if fmt is None:
        return value
    width, signed = fmt
    value %= 2**width
    return value - 2**width if signed and value >= 2 ** (width - 1) else value


def matrix_product(rows, biases, x, out_formats) -> list[int]:
    return [wrapped(sum(x[i] * c * 2**e for i, c, e in row) + bias, fmt)
            for row, bias, fmt in zip(rows, biases, out_formats)]


def least_field(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest field holding every integer of [lo, hi]."""
    if lo >= 0:
        return max(1, hi.bit_length()), False
    width = 1
    while not -(2 ** (width - 1)) <= lo <= hi < 2 ** (width - 1):
        width += 1
    return width, True


def exact_values(graph: AdderGraph, x: list[int]) -> list[int]:
    """Every node's value with unbounded integers (no field wraps anything)."""
    values = []
    for k, node in enumerate(graph.nodes):
        if k < graph.n_inputs and node.operands:
            values.append(x[k])
            continue
        values.append(node.const + sum((-1 if neg else 1) * values[src] * 2**shift
                                       for src, shift, neg in node.operands))
    return values


# --- the problems ------------------------------------------------------------------------

CONSTANTS = st.one_of(st.sampled_from([0, 0, 1, -1, 2, -3, 7, -8, 15, 21, -45, 127]),
                      st.integers(-255, 255), st.integers(-(2**15), 2**15))


@st.composite
def input_range(draw) -> tuple[int, int]:
    kind = draw(st.sampled_from(["signed", "unsigned", "constant"]))
    if kind == "constant":  # padding, a pruned input, a plan's one-value format
        v = draw(st.integers(-(2**10), 2**10) | st.just(0))
        return v, v
    width = draw(st.integers(1, 16))
    return (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if kind == "signed" else (0, 2**width - 1)


@st.composite
def problems(draw):
    n_inputs = draw(st.integers(1, 8))
    ranges = draw(st.lists(input_range(), min_size=n_inputs, max_size=n_inputs))
    used = draw(st.lists(st.integers(0, n_inputs - 1), min_size=1, max_size=n_inputs, unique=True))
    n_rows = draw(st.integers(1, 8))
    rows = []
    for _ in range(n_rows):
        kind = draw(st.sampled_from(["mixed", "mixed", "mixed", "negative", "zero", "empty"]))
        if kind == "empty":
            rows.append([])
            continue
        terms = draw(st.lists(st.tuples(st.sampled_from(used), CONSTANTS, st.integers(0, 5)), min_size=1,
                              max_size=10))
        if kind == "negative":
            terms = [(i, -abs(c) or -1, e) for i, c, e in terms]
        elif kind == "zero":
            terms = [(i, 0, e) for i, _, e in terms]
        rows.append(terms)
    biases = [draw(st.sampled_from([0, 0, 0]) | st.integers(-(2**20), 2**20)) for _ in rows]
    out_formats = [draw(st.none() | st.tuples(st.integers(1, 40), st.booleans())) for _ in rows]
    max_levels = draw(st.none() | st.integers(0, 6))
    return rows, n_inputs, biases, ranges, out_formats, max_levels


def inputs_to_try(ranges, seed: int) -> list[list[int]]:
    """Random inputs and corners: all at lo, all at hi, random mixes of lo and hi."""
    rng = random.Random(seed)
    xs = [[lo for lo, _ in ranges], [hi for _, hi in ranges]]
    xs += [[rng.choice(r) for r in ranges] for _ in range(12)]
    xs += [[rng.randint(lo, hi) for lo, hi in ranges] for _ in range(12)]
    return xs


def solved(problem) -> tuple[Structure, AdderGraph]:
    rows, n_inputs, biases, ranges, out_formats, max_levels = problem
    structure = solve(rows, n_inputs, biases, ranges, max_levels)
    return structure, build(structure, ranges, out_formats)


# --- the properties ------------------------------------------------------------------------


def check_product(problem, graph: AdderGraph, seed: int) -> None:
    rows, _, biases, ranges, out_formats, _ = problem
    for x in inputs_to_try(ranges, seed):
        assert graph.evaluate(x) == matrix_product(rows, biases, x, out_formats), x


def check_adders(problem, graph: AdderGraph) -> None:
    rows, _, biases, _, _, _ = problem
    assert graph.adders <= unshared_adders(rows, biases)


def row_least_depth(row, bias) -> int:
    """The fewest levels of a row: its digits and bias, or, negative digits only and no bias,
    0 - d1 - d2 ... (an adder takes its first operand positive: something negates)."""
    digits = row_digits(row)
    terms = len(digits) + (bias != 0 or (bool(digits) and all(d < 0 for d in digits)))
    return max(terms - 1, 0).bit_length()


def check_levels(problem, structure: Structure, graph: AdderGraph) -> None:
    rows, _, biases, _, _, max_levels = problem
    least = [row_least_depth(row, bias) for row, bias in zip(rows, biases)]
    assert least_depth(rows, biases) == max(least, default=0)
    bound = None if max_levels is None else max(max_levels, *least)
    for j, (row, bias) in enumerate(zip(rows, biases)):
        out = structure.outputs[j]
        if out is None:
            assert not row_digits(row) and not bias
            continue
        level = structure.levels[out[0]]
        assert level >= least[j], f"output {j} at level {level}, below the least depth {least[j]}"
        if bound is not None:
            assert level <= bound, f"output {j} at level {level}, bound {bound}"
        assert graph.nodes[out[0]].level <= level  # constant inputs fold away, never deepen


def check_nodes(problem, graph: AdderGraph) -> None:
    _, n_inputs, _, ranges, _, _ = problem
    # each node is linear in the inputs: its coefficients from unit steps, its range from them
    zero = exact_values(graph, [lo if lo == hi else 0 for lo, hi in ranges])
    steps = []
    for i, (lo, hi) in enumerate(ranges):
        x = [lo if lo == hi else 0 for lo, hi in ranges]
        if lo != hi:
            x[i] = 1
        steps.append(exact_values(graph, x))
    keep = [0.0] * len(graph.nodes)  # low bits the consumers keep
    for out, fmt in zip(graph.outputs, graph.out_formats):
        if out is not None:
            keep[out[0]] = max(keep[out[0]], float("inf") if fmt is None else fmt[0] - out[1])
    for k in range(len(graph.nodes) - 1, n_inputs - 1, -1):
        for src, shift, _ in graph.nodes[k].operands:
            keep[src] = max(keep[src], keep[k] - shift)
    for k, node in enumerate(graph.nodes):
        lo = hi = zero[k]
        for i, (a, b) in enumerate(ranges):
            coef = steps[i][k] - zero[k]
            lo, hi = lo + min(coef * a, coef * b), hi + max(coef * a, coef * b)
        assert (node.lo, node.hi) == (lo, hi), f"node {k}"
        if k < n_inputs and node.operands:
            assert (node.width, node.signed) == least_field(*ranges[k])
            continue
        width, signed = least_field(lo, hi)
        assert node.signed == signed, f"node {k}"
        assert node.width == (width if keep[k] >= width else max(1, int(keep[k]))), f"node {k}"


@settings(max_examples=300)
@given(problems(), st.integers(0, 2**32))
def test_graph_computes_the_matrix_product(problem, seed):
    check_product(problem, solved(problem)[1], seed)


@settings(max_examples=300)
@given(problems())
def test_never_more_adders_than_the_unshared_design(problem):
    check_adders(problem, solved(problem)[1])


@settings(max_examples=300)
@given(problems())
def test_levels_within_the_bound_and_not_below_the_least_depth(problem):
    check_levels(problem, *solved(problem))


@given(problems())
def test_node_ranges_exact_and_widths_least(problem):
    check_nodes(problem, solved(problem)[1])


def test_layer_sized_problems():
    """Layers of 12..32 inputs and outputs (hypothesis draws small ones): per-element formats,
    30% zero (pruned) weights, a constant input, biases on some rows, narrower outputs, depth
    bounds from unbounded to the least depth; every property above, seeded."""
    for seed in range(6):
        rng = random.Random(seed)
        n_in, n_out = rng.randint(12, 32), rng.randint(12, 32)
        ranges = []
        for _ in range(n_in):
            width = rng.randint(1, 12)
            ranges.append((-(2 ** (width - 1)), 2 ** (width - 1) - 1) if rng.random() < 0.5 else (0, 2**width - 1))
        ranges[rng.randrange(n_in)] = (0, 0)
        rows = [[(i, 0 if rng.random() < 0.3 else rng.randint(-63, 63), rng.randint(0, 2)) for i in range(n_in)]
                for _ in range(n_out)]
        biases = [rng.randint(-4000, 4000) if rng.random() < 0.5 else 0 for _ in rows]
        out_formats = [(rng.randint(10, 24), True) for _ in rows]
        least = least_depth(rows, biases)
        for max_levels in (None, least):
            problem = (rows, n_in, biases, ranges, out_formats, max_levels)
            structure, graph = solved(problem)
            check_product(problem, graph, seed)
            check_adders(problem, graph)
            check_levels(problem, structure, graph)
            check_nodes(problem, graph)


# --- sharing happens --------------------------------------------------------------------------


def test_a_pair_two_rows_need_is_built_once():
    """x0 + 2 x1 in three rows: one adder for the pair, then one per row for the third term."""
    rows = [[(0, 1, 0), (1, 2, 0), (2, 1, 0)], [(0, 1, 0), (1, 2, 0), (3, -1, 0)], [(0, 4, 1), (1, 8, 1)]]
    ranges = [(-128, 127)] * 4
    graph = build(solve(rows, 4, None, ranges), ranges)
    assert unshared_adders(rows, [0, 0, 0]) == 5 and graph.adders == 3
    for x in inputs_to_try(ranges, 1):
        assert graph.evaluate(x) == matrix_product(rows, [0, 0, 0], x, [None] * 3)


def test_random_dense_layers_share():
    """A 16 x 16 layer of random 6-bit weights (the jet tagger's kind): sharing saves adders
    in every seed, and the product is exact."""
    for seed in range(5):
        rng = random.Random(seed)
        rows = [[(i, rng.randint(-32, 31), 0) for i in range(16)] for _ in range(16)]
        biases = [rng.randint(-500, 500) for _ in rows]
        ranges = [(0, 255)] * 16
        graph = build(solve(rows, 16, biases, ranges), ranges, [(18, True)] * 16)
        assert graph.adders < 0.8 * unshared_adders(rows, biases), seed
        for x in inputs_to_try(ranges, seed):
            assert graph.evaluate(x) == matrix_product(rows, biases, x, [(18, True)] * 16)


# --- negative-only rows ----------------------------------------------------------------------


def test_a_negative_only_row_within_its_least_depth():
    """-x0 - x1 - x2 is 0 - x0 - x1 - x2: four terms, two levels ((-x0) - (x1 + x2)), not the
    sum negated at level 3; a lone -x0 is one level (its negation)."""
    ranges = [(-8, 7)] * 3
    for row, depth in (([(0, -1, 0), (1, -1, 0), (2, -1, 0)], 2), ([(0, -1, 0)], 1), ([(2, -4, 1)], 1)):
        assert least_depth([row]) == depth
        graph = build(solve([row], 3, None, ranges, max_levels=0), ranges)
        assert graph.depth == depth and graph.adders == unshared_adders([row], [0])
        for x in inputs_to_try(ranges, 3):
            assert graph.evaluate(x) == matrix_product([row], [0], x, [None])


def test_sharing_never_makes_a_row_negative_only_beyond_the_bound():
    """x1 - x0 and x0 - x1 share x0 - x1 only when the first row may take the level its
    negation adds: not at its least depth (1)."""
    rows = [[(0, -1, 0), (1, 1, 0)], [(0, 1, 0), (1, -1, 0)]]
    ranges = [(-8, 7)] * 2
    for max_levels, depth in ((0, 1), (None, 2)):
        structure = solve(rows, 2, None, ranges, max_levels)
        assert structure.depth == depth
        graph = build(structure, ranges)
        for x in inputs_to_try(ranges, 4):
            assert graph.evaluate(x) == matrix_product(rows, [0, 0], x, [None, None])
