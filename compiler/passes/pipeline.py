"""The pass pipeline: one ordered list, with the reason for each position.

1. canonicalise      - bias Adds join their DENSE/CONV, layout no-ops go; fold_batchnorm
                       and fuse_layers look for DENSE/CONV followed directly by their users.
                       It and fold_batchnorm keep every tensor the plan names, so it can
                       be quantized (apply_plan checks that each name exists).
2. lower_quant       - a quantized model's quantizers become formats, REQUANTIZE nodes and
                       rescale multipliers (a float model passes unchanged); before
                       fold_batchnorm, which would move quantized weights off their grid (it
                       turns a BatchNorm after a quantized layer into a residual and an ADD).
3. fold_batchnorm    - must precede apply_plan: the plan's weight formats apply to the
                       folded weights, so folding happens on floats, before quantization.
4. apply_plan        - quantizes constants and inserts REQUANTIZE nodes; needs the final
                       constant tensors (after folding) and creates what fuse_layers absorbs.
                       Formats lower_quant set stay unless the plan names the tensor.
5. choose_multipliers - the fixed-point value of each rescale lower_quant placed; needs every
                       format (after apply_plan) to know the range it must be exact on, and
                       precedes sizing, which sizes the products.
6. group_rows        - permutes the rows of layers whose mix says "group"; after apply_plan,
                       which assigns rows to mix entries and quantizes (so the moves are
                       exact), before fuse_layers so the path to the next layer is plain nodes.
7. fuse_layers       - groups linear op + activation + requantize; after apply_plan so the
                       requantize nodes exist, before sizing so accumulators are named.
8. size_widths       - last: it needs every format the plan gives and the final graph.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from ..ir import Graph, IRError, verify
from ..plan import Plan
from .apply_plan import apply_plan
from .canonicalise import canonicalise
from .choose_multipliers import MAX_MULTIPLIER_BITS, choose_multipliers
from .fold_batchnorm import fold_batchnorm
from .fuse import fuse_layers
from .group_rows import group_rows
from .lower_quant import lower_quant
from .size_widths import size_widths

Pass = Callable[[Graph], Graph]


def passes(plan: Plan, rescale_bits: int = MAX_MULTIPLIER_BITS) -> list[tuple[str, Pass]]:
    named = frozenset(plan.tensors)  # quantization points the plan asks for: no pass removes them
    return [
        ("canonicalise", partial(canonicalise, keep=named)),
        ("lower_quant", lower_quant),
        ("fold_batchnorm", partial(fold_batchnorm, keep=named)),
        ("apply_plan", partial(apply_plan, plan=plan)),
        ("choose_multipliers", partial(choose_multipliers, max_bits=rescale_bits)),
        ("group_rows", group_rows),
        ("fuse_layers", fuse_layers),
        ("size_widths", size_widths),
    ]


def run_pipeline(graph: Graph, plan: Plan, check: bool = True, stop_after: str | None = None,
                 rescale_bits: int = MAX_MULTIPLIER_BITS) -> Graph:
    """Run every pass in order; with ``check``, verify the IR after each and name the culprit."""
    done: list[str] = []
    for name, fn in passes(plan, rescale_bits):
        graph = fn(graph)
        done.append(name)
        if check:
            try:
                verify(graph)
            except IRError as err:
                raise IRError(f"IR broken after pass {name!r} (passes run: {', '.join(done)}): {err}") from None
        if name == stop_after:
            break
    return graph
