"""HLS ``--strategy adder-graph``: a layer's sums (DENSE, CONV, AVGPOOL) written out as the
shared adder graphs of compiler/adder_graph.py, one C++ statement per adder, in the generated
``<model>_graphs.h`` (templates/hls/graphs.h.j2).

The graphs come from compiler/sums.py (``layer_graphs``, as in the RTL backend): one per
instance (a dense row of outputs, a conv / pool position).  Instances whose graphs are equal
(same nodes, widths and outputs) and whose input and output elements have the same formats
share one C++ function, called per instance with the instance's element indices from a table;
every other instance has its own.  No widths are merged across instances: each function is
exactly its instances' ``AdderGraph``, so it is exact for every one of them.

Exactness.  A node is ``const T nK = ...;`` with ``T`` its ``ap_int<width>`` (``ap_uint`` when
unsigned).  ap_int sums are full precision and assignment to ``T`` wraps, which is the node's
field in ``AdderGraph.evaluate``; a shifted operand is first made a ``T`` (``T(a) << s``: a
shift keeps its operand's width, and the bits above ``T``'s do not matter modulo its width).
A node that only shifts another (wiring, ``wK``; only where a constant input was folded away)
is a statement the same way.  Inputs are read at their element's fraction (finegrain::element),
outputs wrapped to their element's format and written at its fraction (finegrain::set_element,
finegrain/adder_graph.h).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..adder_graph import AdderGraph, least_depth, wrap
from ..errors import UserError
from ..ir import Node, Op, Tensor
from ..sums import SumsError, element_format, layer_graphs

STRATEGY = "adder-graph"
# a product x * m with more bits than this stays a multiplication (an input of the graph), as
# the RTL's default rtl_dsp_min_width: the HLS tool maps it (a DSP)
DSP_MIN_WIDTH = 28


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _int_type(width: int, signed: bool) -> str:
    return f"ap_{'' if signed else 'u'}int<{width}>"


def cpp_integer(value: int, width: int, signed: bool) -> str:
    """``value`` as a C++ expression of the value ``width``-bit field (``signed`` or not) holds
    for it: a plain literal when that fits a C integer, else 64-bit words put together."""
    v = wrap(value, width, signed)
    if -(1 << 31) <= v < 1 << 31:
        return str(v)
    if -(1 << 63) < v < 1 << 63:
        return f"{v}LL"
    u = v % (1 << width)
    words = [(k, (u >> (64 * k)) & ((1 << 64) - 1)) for k in range(-(-width // 64))]
    bits = " | ".join(f"(ap_uint<{width}>(0x{w:x}ULL) << {64 * k})" if k else f"ap_uint<{width}>(0x{w:x}ULL)"
                      for k, w in words if w)
    return f"{_int_type(width, signed)}({bits})"  # the same bits, read as the field


@dataclass(frozen=True)
class _Group:
    """Instances sharing one function: equal graphs, equal element formats."""

    graph: AdderGraph
    inputs: tuple  # per graph input: (element format, multiplier or None)
    outputs: tuple  # per graph output: element format or None (always 0)


class GraphWriter:
    """The adder-graph entry of one stage: its functions (for graphs.h.j2) and its call."""

    def __init__(self, builder, node: Node, stage: Node, common: dict, slack: int | None):
        self.b, self.node, self.stage, self.common, self.slack = builder, node, stage, common, slack
        g = builder.graph
        self.x: Tensor = g.tensor(stage.inputs[0])
        self.out: Tensor = g.tensor(stage.outputs[0])
        self.bits = 1  # the widest ap_int a statement builds (for AP_INT_MAX_W)

    def budget(self, rows, biases) -> int | None:
        """Levels of a pattern's graph: unbounded by default (the HLS tool schedules the adders
        into cycles at the clock; the depth only adds latency), else its least depth + slack."""
        return None if self.slack is None else least_depth(rows, biases) + self.slack

    def entry(self) -> dict:
        in_fmts = [element_format(self.x, i) for i in range(int(np.prod(self.x.shape)))]
        out_fmts = [element_format(self.out, i) for i in range(int(np.prod(self.out.shape)))]
        try:
            instances = layer_graphs(self.b.graph, self.stage, in_fmts, out_fmts, DSP_MIN_WIDTH, self.budget)
        except SumsError as err:
            raise UserError(f"{err} (--strategy {STRATEGY})") from None
        groups: dict[_Group, list] = {}
        for inst in instances:
            key = _Group(inst.graph, tuple((in_fmts[xi], m) for xi, m in inst.inputs),
                         tuple(out_fmts[i] for i in inst.outputs))
            groups.setdefault(key, []).append(inst)
        name = self.common["name"]
        function = self.b.names.derived(f"{name}_graph")
        alone = len(groups) == 1 and len(instances) == 1
        functions, calls = [], []
        for k, (group, members) in enumerate(groups.items()):
            fname = function if alone else self.b.names.derived(f"{function}_g{k}")
            functions.append(self.function(fname, group, members))
            calls.append(functions[-1]["call"])
        adders = sum(inst.graph.adders for inst in instances)
        terms = sum(inst.terms for inst in instances)
        what = "row" if self.stage.op == Op.DENSE else "position"
        depth = max(i.graph.depth for i in instances)
        summary = (f"{_count(adders, 'adder')} for {_count(terms, 'constant product')} over "
                   f"{_count(len(instances), what)}, {_count(len(groups), 'distinct graph')}, at most "
                   f"{_count(depth, 'adder')} deep")
        return {**self.common, "kind": "adder_graph", "function": function, "alone": alone,
                "functions": functions, "calls": calls, "n_x": len(in_fmts), "n_y": len(out_fmts),
                "adders": adders, "summary": summary, "onnx": ", ".join(self.node.onnx_nodes) or self.node.name,
                "bits": self.bits}

    def function(self, fname: str, group: _Group, members: list) -> dict:
        """One group's function: element indices written in when it has one instance, else
        read from two index tables (an instance's input and output elements)."""
        graph = group.graph
        tables = len(members) > 1
        elements = None if tables else ([xi for xi, _ in members[0].inputs], list(members[0].outputs))
        body, bits = function_body(graph, group.inputs, group.outputs, elements, self.b.fixed[self.common["x_t"]].width)
        self.bits = max(self.bits, bits)
        entry = {"name": fname, "tables": None, "instances": len(members), "adders": graph.adders,
                 "depth": graph.depth, **body, "n_in": graph.n_inputs, "n_out": len(graph.outputs)}
        if not tables:
            entry["call"] = {"name": fname, "loop": None}
            return entry
        tx = self.b.index_array(f"{fname}_x", [xi for inst in members for xi, _ in inst.inputs],
                                f"input elements of each instance of {fname} ({graph.n_inputs} per instance)")
        ty = self.b.index_array(f"{fname}_y", [i for inst in members for i in inst.outputs],
                                f"output elements of each instance of {fname} ({len(graph.outputs)} per instance)")
        entry["tables"] = (tx, ty)
        entry["call"] = {"name": fname, "loop": len(members), "tx": tx, "ty": ty, "n_in": graph.n_inputs,
                         "n_out": len(graph.outputs)}
        return entry


def function_body(graph: AdderGraph, inputs: tuple, outputs: tuple, elements: tuple[list, list] | None,
                  x_width: int) -> tuple[dict, int]:
    """The statements of ``graph`` (``reads``, ``statements``, ``writes``) whose input k is
    element ``inputs[k] = (format, multiplier or None)`` of ``x`` (a container ``x_width`` bits
    wide) and output j element format ``outputs[j]`` of ``y``, the elements at the indices
    ``elements`` (inputs', outputs'), or None: at ``at_x[k]``, ``at_y[j]``; and the widest
    ap_int the statements build."""
    if elements is None:
        at_x, at_y = (lambda k: f"x[at_x[{k}]]"), (lambda j: f"y[at_y[{j}]]")
    else:
        at_x, at_y = (lambda k: f"x[{elements[0][k]}]"), (lambda j: f"y[{elements[1][j]}]")
    refs: dict[int, str | None] = {}  # node -> its variable, None: a constant
    reads, statements, writes = [], [], []
    bits = 1
    for k, node in enumerate(graph.nodes):
        t = _int_type(node.width, node.signed)
        if not node.operands:
            refs[k] = None
        elif k < graph.n_inputs:
            fmt, m = inputs[k]
            expr = f"finegrain::element<{fmt.frac}>({at_x(k)})"
            if m is not None:
                expr += f" * {cpp_integer(m, abs(m).bit_length() + 1, True)}"
                bits = max(bits, x_width + max(64, abs(m).bit_length() + 1))  # m: a C literal or an ap_int
            # named after its slot (read through a table) or its element; a product by its slot
            refs[k] = f"p{k}" if m is not None else f"x{k}" if elements is None else f"x{elements[0][k]}"
            reads.append({"type": t, "name": refs[k], "expr": expr})
        else:
            refs[k] = f"n{k}" if node.is_adder else f"w{k}"
            statements.append({"type": t, "name": refs[k], "expr": _sum(node, refs)})
            bits = max(bits, node.width + 2, *(graph.nodes[s].width + 2 for s, _, _ in node.operands))
    for j, (o, fmt) in enumerate(zip(graph.outputs, outputs)):
        if fmt is None or o is None:
            writes.append(f"{at_y(j)} = 0")
            continue
        t = _int_type(fmt.width, fmt.signed)
        v, shift = refs[o[0]], o[1]
        if v is None:  # a constant
            value = f"{t}({cpp_integer(graph.nodes[o[0]].const << shift, fmt.width, fmt.signed)})"
        elif shift >= fmt.width:
            value = f"{t}(0)"
        else:
            value = f"{t}({v})" + (f" << {shift}" if shift else "")
        writes.append(f"finegrain::set_element<{fmt.frac}>({at_y(j)}, {value})")
    return {"reads": reads, "statements": statements, "writes": writes}, bits


def _sum(node, refs: dict) -> str:
    """The expression of adder ``node``: its operands (each shifted as a value of the node's
    type) and constant; an operand shifted past the node's width adds nothing."""
    t = _int_type(node.width, node.signed)
    parts = []
    for src, shift, negative in node.operands:
        v = refs[src]
        if shift >= node.width:
            continue
        term = f"({t}({v}) << {shift})" if shift else v
        parts.append(("- " if negative else "+ ") + term)
    if node.const:
        c = cpp_integer(node.const, node.width, node.signed)
        parts.append(f"- {c[1:]}" if c.startswith("-") else f"+ {c}")
    if not parts:
        return "0"
    parts.sort(key=lambda p: p.startswith("- "))  # a positive term first where there is one
    expr = " ".join(parts)
    return expr[2:] if expr.startswith("+ ") else "-" + expr[2:]
