"""Choosing each layer's folding (reuse factor) from a budget: --target-ii, --max-lut, --max-dsp.

In the stream architecture every layer is an engine, and a layer with reuse factor R takes R
cycles per output pixel (window), so ``R * windows`` cycles per image, or the beats of its
(padded) input frame if those are more: `cycles_per_image`.  The design's initiation interval
is the largest of its layers' cycles per image; its area is the sum of theirs, and falls as R
grows (a folded core needs about 1/R of the multipliers).

Which reuse factors are worth estimating (`candidate_reuse`): those that change the folded
core's PE x SIMD split (compiler/backends/rtl/folded.py's ``fold_shape``), since any other R
costs the same multipliers as a smaller one and is only slower.

Which to take (`choose_folding`), exactly: the II is a max over layers, so once a threshold T
on the II is fixed, the layers are independent: each takes its cheapest candidate that takes at
most T cycles.  Sweeping T over the candidates' cycle counts covers every II the design can
have.  Cheapest means least **area**, counted in LUT equivalents::

    area = LUT + DSP * (part LUTs / part DSPs) + BRAM36 * (part LUTs / part BRAM36s)

a DSP (or BRAM) weighs what the same share of the part's LUTs weighs (ZCU104's xczu7ev: 133
LUTs per DSP, 738 per BRAM36; a part finegrain does not know: the default part's ratios).  Among
a layer's candidates of equal area the fewer FFs win.  When limits bind several resources at
once (LUT under --max-lut and DSP under --max-dsp, and always the part's LUT, FF, DSP and BRAM),
the cheapest candidates may not fit while dearer ones do: dominated candidates are dropped and
a branch and bound over the rest finds the exact optimum (it stops after `SEARCH_STEPS` steps
and says so in ``Choice.exact``).

The stream builder calls it as::

    choice = graph_folding(graph, config, estimate_of)
    choice.reuse  # {layer name: R}, for HLSOptions.layers / the RTL stream builder
    choice.report()  # per layer rows for report.json; choice.text() a table to print

where ``estimate_of(node, R)`` is the estimate (compiler/estimate.py) of the layer's engine at
reuse R as a dict (lut, ff, dsp, bram); ``graph_folding(..., cycles=...)`` takes the stream
cycle model's exact count (compiler/backends/rtl/stream_model.py) instead of `cycles_per_image`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Mapping, Sequence

import numpy as np

from .argnames import command_line_active, option
from .errors import UserError
from .ir import Graph, Node, Op
from .targets import DEFAULT_PART, PARTS, Part, resolve_part

if TYPE_CHECKING:
    from .build_config import BuildConfig

RESOURCES = ("lut", "ff", "dsp", "bram")
RESOURCE_NAMES = {"lut": "LUTs", "ff": "FFs", "dsp": "DSPs", "bram": "BRAM36s"}
CAPACITY_FIELDS = {"lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram36"}
CANDIDATES_PER_OCTAVE = 2  # reuse factors kept per doubling of R: each at least sqrt(2) times the last
SEARCH_STEPS = 200_000  # branch-and-bound steps per II threshold before settling for the best found
PRICE_ROUNDS = 100  # subgradient steps for the search's Lagrangian bound


# --- which reuse factors to try --------------------------------------------------------------

@dataclass(frozen=True)
class LayerShape:
    """What folding a layer depends on: ``outputs`` (M) values per window, each a sum of
    ``terms`` (N) constant products; ``windows`` output pixels (beats) per image (1: a dense
    layer); ``frame_beats`` input beats per image (its padded input frame; 1: a vector).  A
    layer without products (pool, layout) has M = N = 0 and takes the larger of the two."""

    name: str
    outputs: int
    terms: int
    windows: int = 1
    frame_beats: int = 1


def layer_shape(graph: Graph, node: Node) -> LayerShape:
    """The `LayerShape` of a (fused) IR node: a DENSE or CONV main op's M x N' constant products
    (N' the weights per output: a grouped conv's structural zeros are not terms); any other
    layer has no products to fold (M = N = 0)."""
    x = graph.tensor(node.inputs[0]).shape
    y = graph.tensor(node.outputs[0]).shape
    if node.op == Op.DENSE:  # over the last axis: one window per vector
        weight = graph.tensor(node.inputs[1]).shape
        vectors = int(np.prod(x[:-1]))
        return LayerShape(node.name, int(weight[0]), int(weight[1]), vectors, vectors)
    frame = [int(n) for n in x[1:]]  # a [C, H, W] or [C, L] stream: H * W or L beats; a vector: 1
    windows = int(np.prod(y[1:])) if len(y) > 1 else 1
    if node.op != Op.CONV:
        return LayerShape(node.name, 0, 0, windows, int(np.prod(frame)))
    weight = graph.tensor(node.inputs[1]).shape
    pads = node.attrs.get("pads", (0,) * 2 * len(frame))
    padded = [n + pads[i] + pads[i + len(frame)] for i, n in enumerate(frame)]
    return LayerShape(node.name, int(weight[0]), int(np.prod(weight[1:])), windows, int(np.prod(padded)))


def fold_products(outputs: int, terms: int) -> list[tuple[int, int]]:
    """Every reuse factor that changes the PE x SIMD split of an M x N product, with the fewest
    multipliers it needs: ``[(R, PE * SIMD)]``, R ascending and multipliers strictly falling,
    from (1, M * N) to (M * N, 1).  R = a * b for a = ceil(M / PE) output groups and
    b = ceil(N / SIMD) input chunks; a given a is reached with PE = ceil(M / a) at the fewest."""
    if outputs < 1 or terms < 1:
        return [(1, 0)]

    def groups(n):  # every ceil(n / p) (O(sqrt(n)) values), and a few more that are not: harmless
        root = math.isqrt(n) + 1
        return {-(-n // p) for p in range(1, root + 1)} | set(range(1, min(root, n) + 1))

    best: dict[int, int] = {}
    for a in groups(outputs):
        pe = -(-outputs // a)
        for b in groups(terms):
            simd = -(-terms // b)
            r = -(-outputs // pe) * -(-terms // simd)
            best[r] = min(best.get(r, math.inf), pe * simd)
    front, fewest = [], math.inf
    for r in sorted(best):
        if best[r] < fewest:
            front.append((r, best[r]))
            fewest = best[r]
    return front


def candidate_reuse(layer: LayerShape, max_cycles: int | None = None,
                    per_octave: int = CANDIDATES_PER_OCTAVE) -> list[int]:
    """The reuse factors worth estimating for ``layer``: the `fold_products` front (each R
    needing fewer multipliers than any smaller one), thinned to about ``per_octave`` per
    doubling of R, always with 1 (fully parallel) and M * N (one multiplier); with
    ``max_cycles`` (a --target-ii) only those within it by `cycles_per_image`, and 1.  A layer
    with no constant products has only [1]."""
    front = [r for r, _ in fold_products(layer.outputs, layer.terms)
             if r == 1 or max_cycles is None or cycles_per_image(layer, r) <= max_cycles]
    step = 2 ** (1 / per_octave)
    kept = [front[0]]
    for r in front[1:-1]:
        if r >= kept[-1] * step:
            kept.append(r)
    if front[-1] != kept[-1]:
        kept.append(front[-1])
    return kept


def cycles_per_image(layer: LayerShape, reuse: int) -> int:
    """A layer's cycles per image at reuse factor ``reuse``: one window every ``reuse`` cycles,
    but never faster than its input frame arrives (one beat per cycle).  First-order: the stream
    cycle model counts the exact figure (rows that complete no window overlap the cool-down)."""
    return max(reuse * layer.windows, layer.frame_beats)


# --- choosing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One way to build a layer: its reuse factor, cycles per image and estimated resources
    (a dict with some of lut, ff, dsp, bram; missing ones are 0)."""

    reuse: int
    cycles: int
    resources: Mapping

    def __post_init__(self):
        for what, value in (("reuse factor", self.reuse), ("cycles per image", self.cycles)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"a candidate's {what} is a positive integer, got {value!r}")
        unknown = set(self.resources) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown resource(s) {sorted(unknown)}; expected {RESOURCES}")
        if any(not self.amount(r) >= 0 for r in self.resources):
            raise ValueError(f"a candidate's resources are non-negative numbers, got {dict(self.resources)}")

    def amount(self, resource: str) -> float:
        return float(self.resources.get(resource, 0))


@dataclass(frozen=True)
class LayerOptions:
    name: str
    candidates: Sequence[Candidate]

    def __post_init__(self):
        if not self.candidates:
            raise ValueError(f"layer {self.name!r} has no candidate foldings")


@dataclass(frozen=True)
class LayerChoice:
    name: str
    reuse: int
    cycles: int
    resources: dict


@dataclass(frozen=True)
class Choice:
    """The folding chosen: per layer its reuse, cycles and resources; the totals, the II, each
    resource's fraction of the part (None where the part's capacity is unknown), the area in LUT
    equivalents, and whether the search proved it optimal."""

    layers: list[LayerChoice]
    totals: dict
    ii: int
    area: float
    part: str
    fraction: dict
    exact: bool = True
    weights: dict = field(default_factory=dict)

    @property
    def reuse(self) -> dict[str, int]:
        return {layer.name: layer.reuse for layer in self.layers}

    def report(self) -> list[dict]:
        """One row per layer: reuse, cycles per image, resources, and whether it sets the II."""
        return [{"layer": layer.name, "reuse_factor": layer.reuse, "cycles_per_image": layer.cycles,
                 **{r: _rounded(layer.resources[r]) for r in RESOURCES}, "sets_ii": layer.cycles == self.ii}
                for layer in self.layers]

    def text(self, width: int | None = None) -> str:
        """The report as a table, with the totals and their share of the part, at most ``width``
        columns wide (default: the terminal's; long layer names wrap, as `finegrain report`'s)."""
        from .text_table import format_table, terminal_width

        head = ("layer", "reuse", "cycles/image", "LUT", "FF", "DSP", "BRAM36")
        rows = [(row["layer"] + (" *" if row["sets_ii"] else ""), *(f"{row[k]:,}" for k in (
            "reuse_factor", "cycles_per_image", *RESOURCES))) for row in self.report()]
        share = {r: "" if f is None else f" ({f:.0%})" for r, f in self.fraction.items()}
        rows.append(("total", "", f"II {self.ii:,}", *(f"{_rounded(self.totals[r]):,}{share[r]}" for r in RESOURCES)))
        lines = format_table([head, *rows], width or terminal_width(), right=tuple(range(1, len(head))))
        return "\n".join(lines + [f"* sets the II; part {self.part}" + ("" if self.exact else
                                   "; the best found, not proved optimal (the search stopped)")])

    def summary(self) -> dict:
        return {"ii_cycles": self.ii, "part": self.part, "area_lut_equivalents": round(self.area),
                "totals": {r: _rounded(v) for r, v in self.totals.items()},
                "fraction_of_part": self.fraction, "area_weights": self.weights, "optimal": self.exact,
                "layers": self.report()}


def choose_folding(layers: Sequence[LayerOptions], part: str | Part | None = None, target_ii: int | None = None,
                   max_lut: int | None = None, max_dsp: int | None = None) -> Choice:
    """The folding of every layer, from its candidates (`LayerOptions`):

    * ``target_ii``: the least area whose II is at most ``target_ii``;
    * otherwise: the lowest II that fits, then the least area at that II;

    always within ``max_lut``, ``max_dsp`` and the part's capacity (LUT, FF, DSP, BRAM36; a
    part name finegrain does not know has none).  A UserError when no folding reaches the
    target or fits: it names the part, the limit, the least total found, and the layers that
    need the most at their cheapest."""
    layers = list(layers)
    if not layers:
        raise ValueError("choose_folding needs at least one layer")
    name = part.name if isinstance(part, Part) else resolve_part(None, part)  # a board's name: its part
    known = part if isinstance(part, Part) else PARTS.get(name)
    limits = _limits(known, max_lut, max_dsp)
    weights = _weights(known or PARTS[DEFAULT_PART])
    problem = _Problem(layers, limits, weights)
    fastest = max(min(c.cycles for c in layer.candidates) for layer in layers)
    if target_ii is not None:
        if target_ii < fastest:
            slowest = max(layers, key=lambda layer: min(c.cycles for c in layer.candidates))
            best = min(slowest.candidates, key=lambda c: c.cycles)
            raise UserError(f"{option('target_ii', target_ii)} cannot be met at any folding: layer {slowest.name!r} "
                            f"takes at least {best.cycles:,} cycles per image (at reuse factor {best.reuse}"
                            f"{', its only choice' if len(slowest.candidates) == 1 else ''}), so the "
                            f"fastest design has an II of {fastest:,} cycles; ask for "
                            f"{option('target_ii', fastest)} or more")
        picked = problem.solve(target_ii)
        if picked is None:
            raise UserError(problem.no_fit_message(name, target_ii, problem.fastest_fit(target_ii)))
    else:
        threshold = problem.fastest_fit(fastest)
        if threshold is None:
            raise UserError(problem.no_fit_message(name, None, None))
        picked = problem.solve(threshold)
    return problem.choice(picked, name, known)


def graph_folding(graph: Graph, config: BuildConfig, estimate: Callable[[Node, int], Mapping],
                  cycles: Callable[[LayerShape, int], int] = cycles_per_image, held: Collection[str] = ()) -> Choice:
    """`choose_folding` for every layer of ``graph`` under ``config``'s budget (part, target_ii,
    max_lut, max_dsp): a layer's candidates are its `candidate_reuse` (within the target), or
    the one reuse factor its --layer-config entry gives; ``estimate(node, reuse)`` its
    resources, ``cycles(shape, reuse)`` its cycles per image.  The layers ``held`` (the stream
    RTL's tail cores of several layers, built fully parallel) have only reuse 1 to choose."""
    layers = []
    for node in graph.nodes:
        shape = layer_shape(graph, node)
        entry = config.layers.get(node.name) or config.layers.get(node.onnx_nodes[0] if node.onnx_nodes else "")
        pinned = (entry or {}).get("reuse_factor")
        reuse = [pinned] if pinned else [1] if node.name in held else \
            candidate_reuse(shape, max_cycles=config.target_ii)
        layers.append(LayerOptions(node.name, [Candidate(r, cycles(shape, r), estimate(node, r)) for r in reuse]))
    return choose_folding(layers, config.part, config.target_ii, config.max_lut, config.max_dsp)


def _limits(part: Part | None, max_lut, max_dsp) -> dict[str, tuple[float, str]]:
    """resource -> (limit, what sets it), the tighter of the option and the part's capacity."""
    limits = {}
    if part is not None:
        for r in RESOURCES:
            limits[r] = (float(getattr(part, CAPACITY_FIELDS[r])), f"the {part.name}'s "
                         f"{getattr(part, CAPACITY_FIELDS[r]):,} {RESOURCE_NAMES[r]}")
    for r, value, name in (("lut", max_lut, "max_lut"), ("dsp", max_dsp, "max_dsp")):
        if value is not None and (r not in limits or value <= limits[r][0]):
            limits[r] = (float(value), f"{option(name)} {value:,}" if command_line_active() else option(name, value))
    return limits


def _weights(part: Part) -> dict[str, float]:
    return {"lut": 1.0, "ff": 0.0, "dsp": part.lut / part.dsp, "bram": part.lut / part.bram36}


def _dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def _prices(rows):
    """Prices per unit of each limit for `_Problem._search`'s Lagrangian bound, by subgradient
    ascent (Polyak steps) on the bound, and the least area among the choices met on the way
    that fit: ``(prices, (area, picks))``, ``(inf, None)`` when none did.  ``rows``: per layer,
    (area, amounts in units of each limit, index)."""
    dims = len(rows[0][0][1])
    prices = [0.0] * dims
    best_prices, best_bound = prices, -math.inf
    ceiling = sum(max(row[0] for row in layer) for layer in rows)  # no choice costs more
    found = (math.inf, None)
    step, stalled = 2.0, 0
    for _ in range(PRICE_ROUNDS):
        pick = [min(layer, key=lambda row: row[0] + _dot(prices, row[1])) for layer in rows]
        used = [sum(row[1][d] for row in pick) for d in range(dims)]
        bound = sum(row[0] for row in pick) + _dot(prices, [u - 1 for u in used])
        if bound > best_bound:
            best_prices, best_bound, stalled = prices, bound, 0
        else:
            stalled += 1
            if stalled == 5:
                step, stalled = step / 2, 0
        if all(u <= 1 + 1e-12 for u in used):
            area = sum(row[0] for row in pick)
            if area < found[0]:
                found = (area, [row[2] for row in pick])
        slack = [u - 1 for u in used]
        norm = _dot(slack, slack)
        if norm == 0 or step < 1e-3:
            break
        size = step * (min(found[0], ceiling) - bound) / norm
        prices = [max(0.0, p + size * g) for p, g in zip(prices, slack)]
    return best_prices, found


def _rounded(value: float):
    return int(value) if float(value).is_integer() else round(value, 1)


class _Problem:
    """The candidates as arrays: per layer, rows of (lut, ff, dsp, bram), area and cycles."""

    def __init__(self, layers, limits, weights):
        self.layers = layers
        self.limits = limits
        self.weights = weights
        self.cap = np.array([limits.get(r, (math.inf,))[0] for r in RESOURCES])
        self.amounts = [np.array([[c.amount(r) for r in RESOURCES] for c in layer.candidates]) for layer in layers]
        self.area = [a @ np.array([weights[r] for r in RESOURCES]) for a in self.amounts]
        self.cycles = [np.array([c.cycles for c in layer.candidates]) for layer in layers]
        self.thresholds = sorted({int(c) for cycles in self.cycles for c in cycles})
        self.exact = True

    def options(self, threshold: int) -> list[list[int]]:
        """Per layer, the indices of its candidates within ``threshold`` cycles that no other
        such candidate beats or equals in every resource; cheapest (area, FF, cycles) first."""
        result = []
        for amounts, area, cycles in zip(self.amounts, self.area, self.cycles):
            within = sorted(np.flatnonzero(cycles <= threshold), key=lambda i: (area[i], amounts[i][1], cycles[i], i))
            kept = []
            for i in within:
                if not any((amounts[j] <= amounts[i]).all() for j in kept):
                    kept.append(i)
            result.append(kept)
        return result

    def solve(self, threshold: int) -> list[int] | None:
        """The least-area candidate per layer within ``threshold`` cycles that fits the limits
        together, or None (when the search ran out of steps: the best found, ``exact`` False)."""
        options = self.options(threshold)
        if any(not o for o in options):
            return None
        cheapest = [o[0] for o in options]
        if (self._total(cheapest) <= self.cap).all():
            return cheapest
        if (self._floor(options) > self.cap).any():
            return None
        return self._search(options)

    def _total(self, picked) -> np.ndarray:
        return sum((self.amounts[k][i] for k, i in enumerate(picked)), np.zeros(len(RESOURCES)))

    def _floor(self, options) -> np.ndarray:
        """Per resource, the least total any choice among ``options`` can have."""
        return sum((self.amounts[k][o].min(axis=0) for k, o in enumerate(options)), np.zeros(len(RESOURCES)))

    def _search(self, options) -> list[int] | None:
        """Branch and bound over the layers' options, in units of each binding limit (amount /
        limit).  A partial choice is dropped when its cheapest completion exceeds a limit, or when
        a Lagrangian bound on its area reaches the best area found: with a price p >= 0 per unit
        of each limit, any completion that fits costs at least the sum over the remaining layers
        of min(area + p * amounts), less p * (what the limits leave); `_prices` finds good prices."""
        dims = [d for d in range(len(RESOURCES)) if 0 < self.cap[d] < math.inf]
        rows = []
        for k, kept in enumerate(options):  # an option over a limit by itself never fits
            rows.append([(float(self.area[k][i]), [float(self.amounts[k][i][d] / self.cap[d]) for d in dims], i)
                         for i in kept if (self.amounts[k][i] <= self.cap).all()])
            if not rows[-1]:
                return None
        prices, (best_area, best_pick) = _prices(rows)
        for layer in rows:
            layer.sort(key=lambda row: row[0] + _dot(prices, row[1]))
        order = sorted(range(len(rows)), key=lambda k: -len(rows[k]))
        n = len(order)
        floor_after = [[0.0] * len(dims) for _ in range(n + 1)]
        priced_after = [0.0] * (n + 1)
        for pos in range(n - 1, -1, -1):
            layer = rows[order[pos]]
            floor_after[pos] = [f + min(row[1][d] for row in layer) for d, f in enumerate(floor_after[pos + 1])]
            priced_after[pos] = priced_after[pos + 1] + layer[0][0] + _dot(prices, layer[0][1])
        best = [best_area, best_pick]
        picked = [0] * n
        steps = 0

        def visit(pos, used, area):
            nonlocal steps
            if pos == n:
                if area < best[0]:  # the bound that let it through is below its area
                    best[:] = [area, list(picked)]
                return True
            for cost, amounts, i in rows[order[pos]]:
                steps += 1
                if steps > SEARCH_STEPS:
                    return False
                now = [u + a for u, a in zip(used, amounts)]
                bound = area + cost + priced_after[pos + 1] - _dot(prices, [1 - u for u in now])
                if bound * (1 + 1e-9) >= best[0]:
                    break  # the rows are in order of cost + prices * amounts: so are the bounds
                if any(u + f > 1 + 1e-12 for u, f in zip(now, floor_after[pos + 1])):
                    continue
                picked[order[pos]] = i
                if not visit(pos + 1, now, area + cost):
                    return False
            return True

        if not visit(0, [0.0] * len(dims), 0.0):
            self.exact = False
        return best[1]

    def fastest_fit(self, at_least: int) -> int | None:
        """The least threshold of at least ``at_least`` at which the layers fit (fitting only
        gets easier as the threshold grows: a binary search), or None."""
        thresholds = self.thresholds[bisect.bisect_left(self.thresholds, at_least):]
        lo, hi = 0, len(thresholds)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.solve(thresholds[mid]) is None:
                lo = mid + 1
            else:
                hi = mid
        return thresholds[lo] if lo < len(thresholds) else None

    def no_fit_message(self, part: str, target_ii: int | None, fits_at: int | None) -> str:
        """Why nothing fits: the first limit the least total exceeds (or, when each fits alone,
        the limits together), and the three layers needing the most of it at their cheapest."""
        threshold = self.thresholds[-1] if target_ii is None else target_ii
        options = self.options(threshold)
        floor = self._floor(options)
        over = [d for d in range(len(RESOURCES)) if floor[d] > self.cap[d]]
        limited = [d for d in range(len(RESOURCES)) if RESOURCES[d] in self.limits]
        d = over[0] if over else max(limited, key=lambda d: floor[d] / self.cap[d] if self.cap[d] else 0)
        resource = RESOURCES[d]
        least = {}
        for k, layer in enumerate(self.layers):
            i = min(options[k], key=lambda i: self.amounts[k][i][d])
            least[layer.name] = (self.amounts[k][i][d], layer.candidates[i].reuse)
        largest = sorted(least.items(), key=lambda item: -item[1][0])[:3]
        shown = ", ".join(f"{n!r} {_rounded(v):,} at reuse factor {r}" for n, (v, r) in largest)
        at = "at any folding" if target_ii is None else \
            f"at an II of at most {target_ii:,} cycles ({option('target_ii')})"
        limit = self.limits[resource][1]
        if over:
            why = (f"the least it needs is {_rounded(floor[d]):,} {RESOURCE_NAMES[resource]}, more than {limit}")
        else:
            least_each = ", ".join(f"{_rounded(floor[k]):,} {RESOURCE_NAMES[RESOURCES[k]]} of "
                                   f"{self.limits[RESOURCES[k]][1]}" for k in limited)
            why = f"each limit can be met alone (the least: {least_each}) but not all of them together"
        faster = "" if fits_at is None else f"; the fastest design that fits has an II of {fits_at:,} cycles"
        if not self.exact:
            faster += (f" (the search for a choice that fits every limit stopped after {SEARCH_STEPS:,} steps, so "
                       f"one may exist)")
        return (f"the model does not fit {part} {at}: {why}. The layers that need the most "
                f"{RESOURCE_NAMES[resource]} at their cheapest folding are {shown}{faster}. Give a larger part "
                f"({option('part')}/{option('board')}), raise the limit"
                f"{'' if target_ii is None else ', relax ' + option('target_ii')}, or "
                f"narrow the bit plan's formats")

    def choice(self, picked: list[int], part: str, known: Part | None) -> Choice:
        chosen = [LayerChoice(layer.name, int(layer.candidates[i].reuse), int(layer.candidates[i].cycles),
                              {r: layer.candidates[i].amount(r) for r in RESOURCES})
                  for layer, i in zip(self.layers, picked)]
        totals = dict(zip(RESOURCES, (float(v) for v in self._total(picked))))
        fraction = {r: (None if known is None else round(totals[r] / getattr(known, CAPACITY_FIELDS[r]), 4))
                    for r in RESOURCES}
        area = float(sum(self.area[k][i] for k, i in enumerate(picked)))
        return Choice(chosen, totals, max(c.cycles for c in chosen), area, part, fraction, self.exact,
                      dict(self.weights))
