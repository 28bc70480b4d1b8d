"""Shared adder graphs for constant matrix products: the sums of DENSE, CONV and AVGPOOL in
the RTL backend, and in the HLS backend's ``--strategy adder-graph``.

A layer's sums are a constant matrix product.  Output j is ``sum(c * x_i << e) + bias_j``
over its terms: ``x_i`` an input element's mantissa (an integer in ``[lo_i, hi_i]``), ``c`` an
integer constant and ``e >= 0`` the shift that puts the product at the output's fraction.  The
output's value is that integer (modulo ``2**width`` of its format, as every sum in the RTL).

:func:`solve` chooses the adders, from the constants alone:

1. every constant is written in canonical signed digits (CSD), so each term becomes digits
   ``±x_i << e'``, and a row is a set of signed, shifted nodes (the inputs, at first);
2. two-term common subexpression elimination across all rows: a pair pattern
   ``(a, b, d, s)`` = "node a at some shift e and node b at e + d, with signs of product s"
   that occurs in two or more rows becomes one adder node ``a ± (b << d)``, which replaces
   the pair in every row it can (recursively: nodes pair with nodes).  The pattern taken next is
   the one worth the most: occurrences times the bits its adder overlaps (where a carry chain is
   needed), da4ml's weighted most-common rule.  Pairs are only formed within groups of inputs of
   about GROUP_DIGITS digits per row (a row's pairs grow as its digits squared), and a problem
   of more than MAX_SHARED_DIGITS digits is not searched at all (steps 3 and 4 only), which
   keeps the search to seconds;
3. each row's remaining terms (and its bias) are summed by a tree that always adds the two
   shallowest terms first, which gives a row whose terms are at levels l_t the least depth,
   ``ceil(log2(sum 2**l_t))``;
4. the depth bound: with ``max_levels`` set, a pair is substituted in a row only while that
   least depth (the Kraft sum above) stays within it, so every output is at most
   ``max_levels`` adders deep.

:func:`build` turns a structure into exact nodes for one instance (the same structure serves
every position of a convolution): each node's exact range from its linear form over the inputs
(inputs vary independently, so the extremes of each coefficient times its input add up), a
constant input folded into the node's constant (padding and pruned inputs cost nothing), and
each node only as wide as its range, capped by the low bits its consumers keep.  The resulting
:class:`AdderGraph` evaluates itself (:meth:`AdderGraph.evaluate`), which is what both backends
render and what the tests check against the plain matrix product.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations


GROUP_DIGITS = 128  # pairs are counted within input groups of about this many digits per row
# Larger problems are summed without sharing: the search costs seconds per ~10k digits in Python
# (a 256 x 32 matrix of random 11-bit constants, 31k digits: 8 s), and compile time must stay short.
MAX_SHARED_DIGITS = 20_000


def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: [(position, +1 or -1)], fewest non-zero digits."""
    digits, pos = [], 0
    while value != 0:
        if value & 1:
            d = 2 - (value & 3)  # +1 if value % 4 == 1, -1 if value % 4 == 3
            digits.append((pos, d))
            value -= d
        value >>= 1
        pos += 1
    return digits


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement field holding [lo, hi]."""
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


def field(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest field holding [lo, hi]: unsigned when never negative."""
    if lo >= 0:
        return max(1, hi.bit_length()), False
    return signed_width(lo, hi), True


def wrap(value: int, width: int, signed: bool) -> int:
    """``value`` as a ``width``-bit field reads it."""
    value &= (1 << width) - 1
    if signed and value >> (width - 1):
        value -= 1 << width
    return value


@dataclass(frozen=True)
class Op:
    """One node of a structure: ``(a << a_shift) ± (b << b_shift) + const`` (minus when
    ``sub``); a missing operand (None) contributes nothing."""

    a: int | None
    a_shift: int
    b: int | None
    b_shift: int
    sub: bool
    const: int = 0


@dataclass(frozen=True)
class Structure:
    """The adders :func:`solve` chose: nodes ``0 .. n_inputs - 1`` are the inputs, node
    ``n_inputs + k`` is ``ops[k]``; output j is ``outputs[j] = (node, shift)`` (node << shift),
    or None for the constant 0."""

    n_inputs: int
    ops: tuple[Op, ...]
    outputs: tuple[tuple[int, int] | None, ...]
    levels: tuple[int, ...]  # per node: adders on its longest path from an input

    @property
    def depth(self) -> int:
        return max((self.levels[o[0]] for o in self.outputs if o is not None), default=0)


@dataclass(frozen=True)
class Node:
    """A node of an :class:`AdderGraph`: ``sum(±(operand << shift)) + const`` over at most two
    operands ``(node, shift, negative)``, held in a ``width``-bit field (``signed`` or not).
    ``lo``/``hi``: its exact range.  No operand: the constant ``const``.  One positive operand
    without a constant: wiring (a shift).  Otherwise one adder."""

    operands: tuple[tuple[int, int, bool], ...]
    const: int
    lo: int
    hi: int
    width: int
    signed: bool
    level: int

    @property
    def is_adder(self) -> bool:
        return not (len(self.operands) == 0 or (len(self.operands) == 1 and not self.operands[0][2]
                                                 and self.const == 0))

    @property
    def terms(self) -> int:
        """The terms an adder node adds: its operands, and its constant when not 0."""
        return len(self.operands) + (self.const != 0)


@dataclass(frozen=True)
class AdderGraph:
    """Exact nodes for one instance: nodes ``0 .. n_inputs - 1`` are the inputs (an input of
    one value is a constant node); output j = ``outputs[j] = (node, shift)`` read as the
    output's field, or None for 0."""

    n_inputs: int
    nodes: tuple[Node, ...]
    outputs: tuple[tuple[int, int] | None, ...]
    out_formats: tuple[tuple[int, bool] | None, ...]

    @property
    def adders(self) -> int:
        return sum(n.is_adder for n in self.nodes[self.n_inputs:])

    @property
    def depth(self) -> int:
        return max((self.nodes[o[0]].level for o in self.outputs if o is not None), default=0)

    def evaluate(self, x: list[int]) -> list[int]:
        """Every output for input mantissas ``x``, each node computed in its own field (what
        the hardware holds)."""
        values = []
        for k, node in enumerate(self.nodes):
            if k < self.n_inputs and node.operands == ((k, 0, False),):
                values.append(int(x[k]))
                continue
            v = node.const
            for src, shift, negative in node.operands:
                v += -(values[src] << shift) if negative else values[src] << shift
            values.append(wrap(v, node.width, node.signed))
        out = []
        for o, fmt in zip(self.outputs, self.out_formats):
            v = 0 if o is None else values[o[0]] << o[1]
            out.append(v if fmt is None else wrap(v, *fmt))
        return out


# ----------------------------------------------------------------------------------------
# solve: the choice of adders


def _bits(lo: int, hi: int) -> int:
    """The magnitude bits of a value in [lo, hi]: its two's-complement width less the sign bit."""
    return max(abs(lo), abs(hi) + 1).bit_length()


def solve(rows: list[list[tuple[int, int, int]]], n_inputs: int, biases: list[int] | None = None,
          ranges: list[tuple[int, int]] | None = None, max_levels: int | None = None) -> Structure:
    """The adders of ``rows`` (row j: [(input, constant, shift >= 0)]) over ``n_inputs`` inputs,
    ``biases[j]`` added to row j; ``ranges`` (per input, default 8-bit signed) only weigh the
    choices.  ``max_levels``: every output at most this many adders deep (None: unbounded; a
    bound below a row's least depth is raised to it)."""
    biases = list(biases) if biases is not None else [0] * len(rows)
    ranges = list(ranges) if ranges is not None else [(-128, 127)] * n_inputs
    levels = [0] * n_inputs
    bits = [_bits(lo, hi) for lo, hi in ranges]  # each node's, kept beside ``ranges``
    ops: list[Op] = []
    terms: list[dict[tuple[int, int], int]] = []  # row -> {(node, shift): sign}
    where: list[dict[int, set[int]]] = [dict() for _ in range(n_inputs)]  # node -> {row: shifts}
    for j, row in enumerate(rows):
        if any(e < 0 for _, _, e in row):
            raise ValueError(f"row {j}: a term has a negative shift")
        t = _digits(row)
        terms.append(t)
        for (n, e) in t:
            where[n].setdefault(j, set()).add(e)

    # a row of negative terms only and no bias is summed as 0 - t1 - t2 ...: its 0 is one more
    # term (the adder that negates the shallowest term), so it counts in the row's Kraft sum
    positive = [sum(s > 0 for s in t.values()) for t in terms]
    kraft = [sum(1 << levels[n] for n, _ in t) + (1 if b or (t and not p) else 0)
             for t, b, p in zip(terms, biases, positive)]
    least = max((max(k, 1) - 1).bit_length() for k in kraft) if kraft else 0
    budget = None if max_levels is None else 1 << max(max_levels, least)

    # pairs are formed within groups of inputs only: a row of D digits has D**2 / 2 pairs, so a
    # wide layer is cut into groups of about GROUP_DIGITS digits per row (linear in its size)
    digits = sum(len(t) for t in terms)
    per_row = digits / max(1, len(terms))
    n_groups = max(1, -(-int(per_row) // GROUP_DIGITS))
    group = [i * n_groups // max(1, n_inputs) for i in range(n_inputs)]
    grouped: list[dict[int, dict[tuple[int, int], int]]] = [{} for _ in terms]  # row -> group -> its terms
    for t, by_group in zip(terms, grouped):
        for item, sign in t.items():
            by_group.setdefault(group[item[0]], {})[item] = sign
    counts: Counter = Counter()
    searched = terms if digits <= MAX_SHARED_DIGITS else []  # too large to search: each row summed alone
    for t in searched:
        buckets: dict[int, list] = {}
        for item in sorted(t.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            buckets.setdefault(group[item[0][0]], []).append(item)
        for items in buckets.values():  # sorted by (shift, node): each pattern has the lower first
            counts.update((np_, nq, eq - ep, sp * sq) for ((np_, ep), sp), ((nq, eq), sq) in combinations(items, 2))

    counts = {k: c for k, c in counts.items() if c >= 2}  # a pattern that occurs once never will more
    blocked: Counter = Counter()  # occurrences the depth bound or an overlap kept from a pattern

    def score(key, count: int) -> int:
        """Occurrences times the bits where ``a`` and ``b << d`` overlap (a carry chain), plus one."""
        a, b, d, _ = key
        return count * (max(0, min(bits[a], bits[b] + d) - d) + 1)

    heap = [(-score(k, c), k) for k, c in counts.items()]
    heapq.heapify(heap)

    def matches(key) -> list[tuple[int, int, int]]:
        """(row, shift of a, sign of a) of each substitution ``key`` can make now."""
        a, b, d, rel = key
        new_level = max(levels[a], levels[b]) + 1
        found = []
        for j, shifts in where[a].items():
            t = terms[j]
            used: set[tuple[int, int]] = set()
            k, pos = kraft[j], positive[j]
            for e in sorted(shifts):
                sa = t.get((a, e))
                if sa is None or (a, e) in used or (b, e + d) in used:
                    continue
                if t.get((b, e + d)) != sa * rel:
                    continue
                grown = k - (1 << levels[a]) - (1 << levels[b]) + (1 << new_level)
                left = pos - (sa * rel > 0)  # b's sign goes; a's stays, on the new node
                if pos and not left and not biases[j]:
                    grown += 1  # the row becomes negative-only: its 0 term
                if budget is not None and grown > budget:
                    continue
                k, pos = grown, left
                used.update(((a, e), (b, e + d)))
                found.append((j, e, sa))
        return found

    def consume(t: dict, j: int, u: tuple[int, int]) -> None:
        """Take term ``u`` out of row ``j``: its pairs with the row's other terms are gone."""
        su = t.pop(u)
        node, shift = u
        where[node][j].discard(shift)
        if not where[node][j]:
            del where[node][j]
        same = grouped[j][group[node]]
        del same[u]
        for (nv, ev), sv in same.items():  # the pattern of u and v: the lower (shift, node) first
            k2 = (nv, node, shift - ev, su * sv) if (shift, node) > (ev, nv) else (node, nv, ev - shift, su * sv)
            if k2 in counts:
                counts[k2] -= 1

    while heap:
        stored, key = heapq.heappop(heap)
        count = counts.get(key, 0) - blocked[key]
        if count < 2:
            continue
        if -stored != score(key, count):  # counts only fall: re-queue at its score now
            heapq.heappush(heap, (-score(key, count), key))
            continue
        found = matches(key)
        if len(found) < count:  # the depth bound (or an overlap with itself) keeps some out
            blocked[key] += count - len(found)
            heapq.heappush(heap, (-score(key, len(found)), key))
            continue
        a, b, d, rel = key
        n = n_inputs + len(ops)
        ops.append(Op(a, 0, b, d, rel < 0))
        levels.append(max(levels[a], levels[b]) + 1)
        alo, ahi = ranges[a]
        blo, bhi = (ranges[b][0] << d, ranges[b][1] << d) if rel > 0 else (-(ranges[b][1] << d), -(ranges[b][0] << d))
        ranges.append((alo + blo, ahi + bhi))  # an interval bound: it only weighs choices
        bits.append(_bits(*ranges[-1]))
        where.append({})
        group.append(group[a])
        by_row: dict[int, list[tuple[int, int]]] = {}
        for j, e, sa in found:
            t = terms[j]
            consume(t, j, (a, e))
            consume(t, j, (b, e + d))
            kraft[j] += (1 << levels[n]) - (1 << levels[a]) - (1 << levels[b])
            if sa * rel > 0:
                positive[j] -= 1
                kraft[j] += not positive[j] and not biases[j]
            by_row.setdefault(j, []).append((e, sa))
        new_pairs: Counter = Counter()
        for j, placed in by_row.items():  # the new node's terms, and their pairs
            t, same = terms[j], grouped[j][group[n]]
            for e, sa in placed:
                t[(n, e)] = same[(n, e)] = sa
                where[n].setdefault(j, set()).add(e)
            for e, s_n in placed:  # the pattern of (n, e) and (m, f): the lower (shift, node) first
                new_pairs.update((m, n, e - f, s_n * sm) if (e, n) > (f, m) else (n, m, f - e, s_n * sm)
                                 for (m, f), sm in same.items() if m != n or f > e)
        for k2, c in new_pairs.items():
            if c >= 2:
                counts[k2] = c
                heapq.heappush(heap, (-score(k2, c), k2))

    outputs = []
    for j, t in enumerate(terms):
        outputs.append(_sum_row(t, biases[j], levels, ops, n_inputs))
    return Structure(n_inputs, tuple(ops), tuple(outputs), tuple(levels))


def least_depth(rows: list[list[tuple[int, int, int]]], biases: list[int] | None = None) -> int:
    """The fewest adder levels any graph of ``rows`` can have: a row of n digits (and a bias)
    needs ``clog2(n)``; one of negative digits only and no bias is 0 - d1 - d2 ..., n + 1 terms."""
    biases = biases if biases is not None else [0] * len(rows)

    def terms(row, bias) -> int:  # a negative-only row without a bias: + its 0 (see _sum_row)
        d = _digits(row)
        return len(d) + bool(bias or (d and all(s < 0 for s in d.values())))
    return max((max(terms(r, b) - 1, 0).bit_length() for r, b in zip(rows, biases)), default=0)


def _digits(row: list[tuple[int, int, int]]) -> dict[tuple[int, int], int]:
    """A row's signed digits {(input, position): sign}: each input's terms summed to one
    constant (an input may appear in several terms), written in CSD."""
    total: dict[int, int] = {}
    for i, c, e in row:
        total[i] = total.get(i, 0) + (c << e)
    return {(i, p): s for i, v in total.items() for p, s in csd(v)}


def _sum_row(t: dict[tuple[int, int], int], bias: int, levels: list[int], ops: list[Op],
             n_inputs: int) -> tuple[int, int] | None:
    """Row ``t``'s terms and bias as one node (appended to ``ops``): the two shallowest terms
    first; a difference puts the positive term first.  A row whose terms are all negative and
    which has no bias is 0 - t1 - t2 ...: its 0 pairs with the shallowest term first, like a bias
    (``-t1``) instead of a negation after the whole sum, one level above it."""
    def new(op: Op, level: int) -> int:
        ops.append(op)
        levels.append(level)
        return n_inputs + len(ops) - 1

    heap = [(levels[n], e, n, s) for (n, e), s in t.items()]
    if bias or (heap and all(s < 0 for *_, s in heap)):
        heap.append((0, -1, -1, 1))  # the bias (0 for a negative-only row): node -1
    if not heap:
        return None
    heapq.heapify(heap)
    while len(heap) > 1:
        lu, eu, nu, su = heapq.heappop(heap)
        lv, ev, nv, sv = heapq.heappop(heap)
        level = max(lu, lv) + 1
        if nv == -1:
            lu, eu, nu, su, lv, ev, nv, sv = lv, ev, nv, sv, lu, eu, nu, su
        if nu == -1 and not bias:  # 0 - (v << ev): keep the shift outside
            heapq.heappush(heap, (level, ev, new(Op(None, 0, nv, 0, True), level), 1))
            continue
        if nu == -1:  # the bias and a term: (v << ev) + bias, or bias - (v << ev)
            node = new(Op(None, 0, nv, ev, sv < 0, bias) if sv < 0 else Op(nv, ev, None, 0, False, bias), level)
            heapq.heappush(heap, (level, 0, node, 1))
            continue
        e = min(eu, ev)
        if su == sv:
            node, sign = new(Op(nu, eu - e, nv, ev - e, False), level), su
        elif su > 0:
            node, sign = new(Op(nu, eu - e, nv, ev - e, True), level), 1
        else:
            node, sign = new(Op(nv, ev - e, nu, eu - e, True), level), 1
        heapq.heappush(heap, (level, e, node, sign))
    _, e, n, _ = heap[0]
    if n == -1:
        return new(Op(None, 0, None, 0, False, bias), 0), 0
    return n, e


# ----------------------------------------------------------------------------------------
# build: exact nodes for one instance


def build(structure: Structure, ranges: list[tuple[int, int]],
          out_formats: list[tuple[int, bool] | None] | None = None) -> AdderGraph:
    """The exact nodes of ``structure`` for inputs in ``ranges`` (an input with lo == hi is that
    constant: 0 for padding or pruned inputs), outputs read as ``out_formats[j] = (width,
    signed)`` (None: exact)."""
    n_in = structure.n_inputs
    if len(ranges) != n_in:
        raise ValueError(f"{len(ranges)} input ranges for a structure of {n_in} inputs")
    out_formats = list(out_formats) if out_formats is not None else [None] * len(structure.outputs)
    forms: list[tuple[dict[int, int], int]] = []  # per node: ({input: coefficient}, constant)
    raw: list[tuple[tuple[tuple[int, int, bool], ...], int, int]] = []  # operands, const, level
    for i, (lo, hi) in enumerate(ranges):
        if lo == hi:
            forms.append(({}, lo))
            raw.append(((), lo, 0))
        else:
            forms.append(({i: 1}, 0))
            raw.append((((i, 0, False),), 0, 0))
    for op in structure.ops:
        coef: dict[int, int] = {}
        const = op.const
        operands = []
        for src, shift, negative in ((op.a, op.a_shift, False), (op.b, op.b_shift, op.sub)):
            if src is None:
                continue
            f, c = forms[src]
            sign = -1 if negative else 1
            const += sign * (c << shift)
            for i, v in f.items():
                coef[i] = coef.get(i, 0) + sign * (v << shift)
            if f:  # a constant operand folds into the constant
                operands.append((src, shift, negative))
        coef = {i: v for i, v in coef.items() if v}
        # a node's constant is its operands' constants (folded) plus its own
        own = const - sum((-1 if neg else 1) * (forms[s][1] << sh) for s, sh, neg in operands)
        forms.append((coef, const))
        level = 0
        if operands:
            deepest = max(raw[s][2] for s, _, _ in operands)
            wiring = len(operands) == 1 and not operands[0][2] and own == 0
            level = deepest if wiring else deepest + 1
        raw.append((tuple(operands), own, level))

    # exact ranges; then the bits each node's consumers keep (sums are modulo their width)
    bounds = []
    for f, c in forms:
        lo = hi = c
        for i, v in f.items():
            a, b = v * ranges[i][0], v * ranges[i][1]
            lo, hi = lo + min(a, b), hi + max(a, b)
        bounds.append((lo, hi))
    inf = float("inf")
    need = [0.0] * len(forms)
    for o, fmt in zip(structure.outputs, out_formats):
        if o is not None:
            need[o[0]] = max(need[o[0]], inf if fmt is None else fmt[0] - o[1])
    for k in range(len(forms) - 1, n_in - 1, -1):
        for src, shift, _ in raw[k][0]:
            need[src] = max(need[src], need[k] - shift)
    nodes = []
    for k, ((operands, const, level), (lo, hi)) in enumerate(zip(raw, bounds)):
        width, signed = field(lo, hi)
        if need[k] < width:
            width = max(1, int(need[k]))
        if k < n_in and operands:  # an input keeps its own field
            width, signed = field(*ranges[k])
        nodes.append(Node(operands, const, lo, hi, width, signed, level))
    return AdderGraph(n_in, tuple(nodes), structure.outputs, tuple(out_formats))


# ----------------------------------------------------------------------------------------
# ternary: three-term adders where the fabric adds three terms at the cost of two


def ternary(graph: AdderGraph, keep: Callable[[int, int], bool] | None = None) -> AdderGraph:
    """``graph`` with two-term adders folded into their only consumer where that consumer then
    adds three terms: ``t = x ± y`` read once, by ``u = t ± z``, becomes ``u = x ± y ± z`` (a
    constant counts as a term; at most two of the three negated).  On 6-input-LUT fabric a
    three-term sum costs one LUT per bit like a two-term one (rtl/fg_add3.sv), so each fold
    saves the folded adder.  Folds are taken widest folded adder first; each adder takes part
    in one at most (a three-term adder is not folded again).  Every node keeps its field, so
    the outputs are the same: the folded sum ``t`` was at least as wide as the bits ``u``
    keeps of it (build's widths), so ``u`` modulo its width is unchanged.  Every node keeps its
    level too, so the pipeline is the two-term graph's: a three-term adder's path (a LUT, the
    next bit's LUT, the carry chain) is shorter than the two chained adders' it replaces
    (a LUT and a carry chain, twice).  ``keep(consumer, folded)``, when given, says which folds
    may be taken (the RTL backend's timing: those that make no path longer)."""
    n_in, nodes = graph.n_inputs, graph.nodes
    uses = [0] * len(nodes)
    for node in nodes[n_in:]:
        for src, _, _ in node.operands:
            uses[src] += 1
    for o in graph.outputs:
        if o is not None:
            uses[o[0]] += 1
    edges = []
    for k in range(n_in, len(nodes)):
        u = nodes[k]
        if not u.is_adder or u.terms != 2:
            continue
        for src, shift, negative in u.operands:
            t = nodes[src]
            if src < n_in or uses[src] != 1 or not t.is_adder or t.terms != 2:
                continue
            negs = [neg for s, _, neg in u.operands if s != src] + [neg != negative for _, _, neg in t.operands]
            if sum(negs) > 2:  # two negations at most (the carry-in and the first carry-save bit)
                continue
            if keep is not None and not keep(k, src):
                continue
            edges.append((t.width, k, src, shift, negative))
    folded: dict[int, tuple[int, int, bool]] = {}  # consumer -> the folded node, its shift and sign
    taken: set[int] = set()
    for _, k, src, shift, negative in sorted(edges, key=lambda e: (-e[0], e[1])):
        if k in taken or src in taken:
            continue
        taken.update((k, src))
        folded[k] = (src, shift, negative)
    gone = {src for src, _, _ in folded.values()}
    index: dict[int, int] = {}
    out: list[Node] = []
    for k, node in enumerate(nodes):
        if k < n_in:  # the inputs (or constants) themselves
            index[k] = k
            out.append(node)
            continue
        if k in gone:
            continue
        operands, const = list(node.operands), node.const
        if k in folded:
            src, shift, negative = folded[k]
            t = nodes[src]
            operands = [op for op in operands if op[0] != src]
            operands += [(s, sh + shift, neg != negative) for s, sh, neg in t.operands]
            const += -(t.const << shift) if negative else t.const << shift
        operands = [(index[s], sh, neg) for s, sh, neg in operands]
        index[k] = len(out)
        out.append(Node(tuple(operands), const, node.lo, node.hi, node.width, node.signed, node.level))
    outputs = tuple(None if o is None else (index[o[0]], o[1]) for o in graph.outputs)
    return AdderGraph(n_in, tuple(out), outputs, graph.out_formats)
