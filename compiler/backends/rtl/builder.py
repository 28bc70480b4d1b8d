"""The RTL backend's context builder: the final IR, layer by layer, as wires, instances and
registers of one fully parallel top (the pipelining rule in the package docstring), with the
look-up tables as functions."""

from __future__ import annotations

import numpy as np

from ... import __version__
from ...errors import UserError, reraise_interrupt
from ...ir import Graph, Node, Op, Tensor
from ...sums import const_elements, dense_terms, element_format, fmt_range, window_terms
from ...names import SV_COMPANIONS, SV_PREFIXES, SV_RESERVED, Names
from ..hls_types import container
from .adders import GraphSums
from .emitter import ZERO, Elem, Fmt, _literal, _Module, _trailing_zeros, _tree_latency, signed_width
from .options import SUPPORTED, WIRING, RTLBackendError, RTLOptions, rtl_top_name
from .elementwise import ElementwiseOps
from .fusion import StageFusion
from .stage_timing import StageTiming, requantize_params


class _Builder(StageTiming, StageFusion, ElementwiseOps):
    def __init__(self, graph: Graph, options: RTLOptions, source: dict):
        self.graph = graph
        self.options = options
        self.source = source
        self.model = rtl_top_name(graph)
        self.names = Names(reserved=SV_RESERVED | {self.model}, prefixes=SV_PREFIXES, companions=SV_COMPANIONS)
        self.m = _Module(options)
        self.values: dict[str, list[Elem]] = {}  # tensor -> elements
        self.ready: dict[str, int] = {}  # tensor -> cycle its values are valid
        self.arrivals: dict[str, float] = {}  # tensor handed over unregistered -> ns into its ready cycle (fusion.py)
        self.fuse(())  # the current layer's fusion decisions (fusion.py), none outside a layer
        self.delayed: dict[tuple[str, int], list[Elem]] = {}
        self.tables: dict[str, dict] = {}  # function name -> look-up table (table_function)
        self.graph_delays: dict[str, str] = {}  # adder graphs: wire -> its register one cycle later
        self.graph_sums: dict | None = None
        self.sums_critical = 0.0  # the predicted critical path of the current layer's sums and trees (ns)
        self.constants: dict[tuple, tuple] = {}  # (tensor, shape) -> (tensor, its elements): const_elements

    # values -----------------------------------------------------------------------------
    def elems(self, name: str, at: int) -> list[Elem]:
        """The elements of ``name`` as they are at cycle ``at`` (delayed if ready earlier)."""
        t = self.graph.tensor(name)
        if t.is_constant:
            raise RTLBackendError(f"constant {name!r} used as an activation")
        depth = at - self.ready[name]
        if depth == 0:
            return self.values[name]
        key = (name, depth)
        if key not in self.delayed:
            base = self.names(name)
            out = []
            for i, e in enumerate(self.values[name]):
                if e.wire is None:
                    out.append(e)
                    continue
                wire = f"{base}__{i}_z{depth}"
                self.pipe(e.wire, wire, e.fmt.width, depth, f"u_{base}_{i}_z{depth}")
                out.append(Elem(wire, e.fmt))
            self.delayed[key] = out
        return self.delayed[key]

    def pipe(self, src: str, dst: str, width: int, depth: int, inst: str) -> None:
        self.m.instance("fg_pipe", inst, {"W": width, "DEPTH": depth},
                        {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": src,
                         "out_valid": f"{inst}_valid", "out_data": dst},
                        {"out_valid": (f"{inst}_valid", 1), "out_data": (dst, width)})

    def const_elements(self, t: Tensor, shape) -> list[tuple[int, int]]:
        """const_elements of ``t`` broadcast to ``shape``, computed once per tensor and shape: the
        layers ask for one element at a time."""
        key = (t.name, tuple(shape))
        cached = self.constants.get(key)
        if cached is None or cached[0] is not t:
            cached = self.constants[key] = (t, const_elements(t, shape))
        return cached[1]

    # layers -----------------------------------------------------------------------------
    def layer(self, node: Node) -> dict:
        g = self.graph
        for stage in node.stages():
            if stage.op not in SUPPORTED:
                raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {stage.op.value} yet; "
                                      f"compile with --backend hls")
        acts = [i for s in node.stages() for i in s.inputs if i in self.ready]
        start = max((self.ready[i] for i in acts), default=0)
        first = len(self.m.items)
        uses, built = self.m.product_uses, len(self.m.products)
        self.graph_sums = None  # adder graphs: {"adders": n, "levels": deepest sum} (adders.GraphSums)
        latency = 0
        # ns into the layer's current cycle the latest value arrives (timing model): its inputs
        # handed over unregistered arrive late in its first cycle
        arrival = max((self.arrivals.get(i, 0.0) for i in acts if self.ready[i] == start), default=0.0)
        width = 0  # the widest carry chain on the path to it
        critical = 0.0
        delay = self.options.delay
        local: dict[str, list[Elem]] = {}
        stages = node.stages()
        self.fuse(stages)
        for stage in stages:
            out = g.tensor(stage.outputs[0])
            base = self.names(out.name)
            ins = self.stage_inputs(stage, local, start + latency)
            if self.passes(out.name):  # the requantize after it saturates to the same (fusion.py)
                local[out.name] = ins[0]
                continue
            if stage.op in (Op.DENSE, Op.CONV, Op.AVGPOOL):
                tail = self.tail(stages[stages.index(stage) + 1:], out) if delay is not None else (0.0, 0)
                elems, latency, arrival = self.sums(stage, ins[0], out, base, tail, arrival)
                width = max((e.fmt.width for e in elems if e.wire is not None), default=0)
            elif stage.op == Op.MAXPOOL:
                (elems, latency), arrival = self.maxpool(stage, ins[0], out, base), 0.0
            elif stage.op == Op.SOFTMAX:
                (elems, latency), arrival = self.softmax(node, stage, ins[0], out, base), 0.0
            else:
                split = False
                if delay is not None:
                    ahead, split, arrival, path, stage_width = self.place_stage(stage, ins, out, arrival)
                    critical = max(critical, path)
                    width = stage_width if ahead or split else max(width, stage_width)
                    if ahead:  # a register ahead of this stage: the previous stage's values, one cycle later
                        latency += 1
                        later = {i for s in stages[stages.index(stage):] for i in s.inputs}
                        local = {name: [Elem(self.m.register(f"{self.names(name)}__{i}_t", e.fmt.width, e.wire),
                                             e.fmt) if e.wire is not None else e for i, e in enumerate(elems)]
                                 for name, elems in local.items() if name in later}
                        ins = self.stage_inputs(stage, local, start + latency)
                    latency += split
                elems = self.elementwise(node, stage, ins, out, base, split)
            local[out.name] = elems
        critical = max(critical, self.sums_critical)
        self.sums_critical = 0.0
        final = node.outputs[0]
        elems = local[final]
        wiring = all(s.op in WIRING for s in node.stages())
        # a max pool's trees end in a register (and its shallower windows' fg_pipe delays): the
        # layer's own would only hold the same values a cycle longer
        logic = [s for s in stages if s.op not in WIRING]
        if not wiring and arrival > 0 and self.hands_over(node):
            # the readers start in this cycle.  Their adders' paths add their own ripple, at least
            # as wide as these values; the rest of this path's ripple (of `width` bits) comes first
            narrowest = min((e.fmt.width for e in elems if e.wire is not None), default=width)
            self.arrivals[final] = arrival + delay.carry_bit * max(width - narrowest, 0)
        elif not wiring and not (latency > 0 and logic[-1].op == Op.MAXPOOL):
            latency += 1
            base = self.names(final)
            registered = []
            for i, e in enumerate(elems):
                if e.wire is None:
                    registered.append(e)
                else:
                    registered.append(Elem(self.m.register(f"{base}__{i}_q", e.fmt.width, e.wire), e.fmt))
            elems = registered
        self.values[final] = elems
        self.ready[final] = start + latency
        items = self.m.items[first:]
        return {"name": self.names(node.name), "onnx": ", ".join(node.onnx_nodes) or node.name,
                "ops": " + ".join(s.kind for s in node.stages()), "start": start, "latency": latency,
                **({"critical_ns": round(critical, 3)} if delay is not None else {}),
                "products": self.m.product_uses - uses, "products_built": len(self.m.products) - built,
                **({"sums": self.graph_sums} if self.graph_sums else {}), "items": items}

    def stage_inputs(self, stage: Node, local: dict[str, list[Elem]], at: int) -> list:
        """A stage's inputs: the layer's own earlier stages' values, constants (None), and other
        layers' values as they are at cycle ``at``."""
        g = self.graph
        return [local[i] if i in local else (None if g.tensor(i).is_constant else self.elems(i, at))
                for i in stage.inputs]

    def requantize(self, src: Elem, fmt: Fmt, rounding: int, overflow: int, name: str) -> None:
        """``name`` = an fg_requantize of ``src`` into ``fmt``."""
        self.m.instance("fg_requantize", f"u_{name}_rq", requantize_params(src.fmt, fmt, rounding, overflow),
                        {"in_data": src.wire, "out_data": name}, {"out_data": (name, fmt.width)})

    def guarded_layer(self, node: Node) -> dict:
        """:meth:`layer`, with a failure of the backend itself reported as an RTLBackendError
        naming the node: a default compile then still writes the HLS project (the RTL is left
        out with a warning) instead of failing with a traceback."""
        try:
            return self.layer(node)
        except UserError:
            raise
        except Exception as err:
            reraise_interrupt(err)
            raise RTLBackendError(f"node {node.name!r}: the RTL backend failed on it ({type(err).__name__}: {err}); "
                                  f"this is a finegrain defect, please report it with the model and plan; "
                                  f"compile with --backend hls meanwhile") from err

    def dense_terms(self, stage: Node, out: Tensor) -> tuple[list, list]:
        return dense_terms(self.graph, stage, out)

    def window_terms(self, stage: Node, out: Tensor) -> tuple[list, list]:
        return window_terms(self.graph, stage, out)

    def sums(self, stage: Node, x: list[Elem], out: Tensor, base: str,
             tail: tuple[float, int] = (0.0, 0), arrival: float = 0.0) -> tuple[list[Elem], int, float]:
        """Each output element: the exact sum of constant products of input elements (+ bias,
        + a rounding offset, fusion.py): an adder graph (adders.GraphSums; ``x`` arrives at
        ``arrival`` ns), else an fg_adder_tree (:meth:`tree_sums`, registered at its end); with the
        cycle they are read in and their arrival in it."""
        if self.options.adder_graph:
            return GraphSums(self, stage, x, out, base, tail, arrival).emit()
        return (*self.tree_sums(stage, x, out, base), 0.0)

    def tree_sums(self, stage: Node, x: list[Elem], out: Tensor, base: str) -> tuple[list[Elem], int]:
        spec = self.dense_terms(stage, out) if stage.op == Op.DENSE else self.window_terms(stage, out)
        lps = self.options.levels
        results: list[tuple[Elem, int]] = []
        for idx, (row, (bm, bf)) in enumerate(zip(*spec)):
            fmt = element_format(out, idx)
            if fmt is None:
                results.append((ZERO, 0))
                continue
            name = f"{base}__{idx}"
            terms = []  # (elem, k, shift, term width)
            for k, (xi, m, mf) in enumerate(row):
                e = x[xi]
                if m == 0 or e.wire is None:
                    continue
                shift = fmt.frac - e.fmt.frac - mf
                if shift < 0:
                    raise RTLBackendError(f"node {stage.name!r}: term {k} of output {idx} has bits below the "
                                          f"accumulator's fraction (not exact)")
                lo, hi = fmt_range(e.fmt)
                ends = [lo * m << shift, hi * m << shift]
                terms.append((e, m, shift, signed_width(min(ends), max(ends))))
            if bm != 0 and fmt.frac < bf:
                raise RTLBackendError(f"node {stage.name!r}: bias of output {idx} has bits below the "
                                      f"accumulator's fraction")
            bias = bm << (fmt.frac - bf) if bm else 0
            if not terms:
                results.append((Elem(self.m.wire(name, fmt.width, _literal(bias, fmt.width)), fmt), 0))
                continue
            tw = min(max(t[3] for t in terms), fmt.width)
            if bias != 0:
                tw = max(tw, min(fmt.width, signed_width(bias, bias)))
            wires = [self.m.product(e, k, s, tw, name) for e, k, s, _ in terms]
            # for compiler.estimate: each term's known-zero low bits and significant width
            zeros = [min(s + _trailing_zeros(k), tw) for _, k, s, _ in terms]
            widths = [min(t[3], tw) for t in terms]
            if bias != 0:
                wires.append(self.m.derived(name, tw, _literal(bias, tw), "bias"))
                zeros.append(min(_trailing_zeros(bias), tw))
                widths.append(min(signed_width(bias, bias), tw))
            if len(wires) == 1:
                results.append((Elem(self.m.wire(name, fmt.width, self.m.fit(wires[0], tw, True, fmt.width)),
                                     fmt), 0))
                continue
            n = len(wires)
            packed = self.m.wire(f"{name}_terms", n * tw, "{" + ", ".join(reversed(wires)) + "}")
            inst = f"u_{name}_sum"
            self.m.instance("fg_adder_tree", inst,
                            {"N": n, "W": tw, "SIGNED": 1, "OUT_W": fmt.width, "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"{inst}_valid", "out_data": f"{name}_sum"},
                            {"out_valid": (f"{inst}_valid", 1), "out_data": (f"{name}_sum", fmt.width)},
                            cost={"zero_lsbs": zeros, "term_widths": widths, "constant_terms": int(bias != 0)})
            results.append((Elem(f"{name}_sum", fmt), _tree_latency(n, lps)))
            if self.options.delay is not None:  # a stage of the tree: its levels, the widest sum's ripple
                delay = self.options.delay
                levels = min(lps, max(n - 1, 0).bit_length())
                self.sums_critical = max(self.sums_critical, delay.path(levels, fmt.width))
        return self.align(results, base)

    def align(self, results: list[tuple[Elem, int]], base: str) -> tuple[list[Elem], int]:
        latency = max((t for _, t in results), default=0)
        elems = []
        for idx, (e, t) in enumerate(results):
            if e.wire is not None and t < latency:
                wire = f"{base}__{idx}_al"
                self.pipe(e.wire, wire, e.fmt.width, latency - t, f"u_{base}_{idx}_al")
                e = Elem(wire, e.fmt)
            elems.append(e)
        return elems, latency

    def maxpool(self, stage: Node, x: list[Elem], out: Tensor, base: str) -> tuple[list[Elem], int]:
        """Each output element: an fg_reduce_tree max over its window (padding never wins), in
        a working format holding every window element, then converted (exactly) to its own."""
        a = stage.attrs
        xt = self.graph.tensor(stage.inputs[0])
        spatial, n = xt.shape[1:], len(xt.shape) - 1
        dil = a.get("dilations", (1,) * n)
        index = np.arange(int(np.prod(xt.shape))).reshape(xt.shape)
        lps = self.options.levels if self.options.delay is None else self.max_levels_per_stage(x, a["kernel"])
        results = []
        for idx, o in enumerate(np.ndindex(out.shape)):
            fmt = element_format(out, idx)
            name = f"{base}__{idx}"
            window = []
            for k in np.ndindex(*a["kernel"]):
                at = [o[1 + i] * a["strides"][i] - a["pads"][i] + k[i] * dil[i] for i in range(n)]
                if all(0 <= p < spatial[i] for i, p in enumerate(at)):
                    window.append(x[int(index[(o[0], *at)])])
            if fmt is None:
                results.append((ZERO, 0))
                continue
            kept = [e for e in window if e.wire is not None]
            fmts = [e.fmt for e in kept] + ([Fmt(1, fmt.frac, False)] if len(kept) < len(window) else [])
            frac = max(f.frac for f in fmts)
            lo = min(-(1 << (f.width - 1)) << (frac - f.frac) if f.signed else 0 for f in fmts)
            hi = max(((1 << (f.width - (1 if f.signed else 0))) - 1) << (frac - f.frac) for f in fmts)
            work = Fmt(signed_width(lo, hi), frac, True)
            wires = [self.m.convert(e, work, name) for e in window]
            if len(wires) == 1:
                results.append((Elem(self.m.convert(Elem(wires[0], work), fmt, name), fmt), 0))
                continue
            packed = self.m.wire(f"{name}_window", len(wires) * work.width, "{" + ", ".join(reversed(wires)) + "}")
            inst = f"u_{name}_max"
            self.m.instance("fg_reduce_tree", inst,
                            {"N": len(wires), "W": work.width, "SIGNED": 1, "OP": 1, "OUT_W": work.width,
                             "LEVELS_PER_STAGE": lps},
                            {"clk": "clk", "rst": "rst", "in_valid": "1'b1", "in_data": packed,
                             "out_valid": f"{inst}_valid", "out_data": f"{name}_max"},
                            {"out_valid": (f"{inst}_valid", 1), "out_data": (f"{name}_max", work.width)},
                            # for compiler.estimate: overlapping windows' pairs are the same cells
                            cost={"leaves": [f"{e.wire}:{work}" for e in window]})
            results.append((Elem(self.m.convert(Elem(f"{name}_max", work), fmt, name), fmt),
                            _tree_latency(len(wires), lps)))
        return self.align(results, base)

    # whole model ------------------------------------------------------------------------
    def port(self, name: str) -> dict:
        t = self.graph.tensor(name)
        c = container(t.formats)
        n = int(np.prod(t.shape))
        return {"name": self.names(name), "onnx": name, "size": n, "width": c.width, "bits": n * c.width,
                "frac": c.frac_bits, "signed": c.signed, "type": str(c), "shape": list(t.shape)}

    def input_elements(self, port: dict) -> list[Elem]:
        """The elements of input ``port``: container mantissas -> each element's own format."""
        m = self.m
        t = self.graph.tensor(port["onnx"])
        cfmt = Fmt(port["width"], port["frac"], port["signed"])
        elems = []
        for i in range(port["size"]):
            fmt = element_format(t, i)
            if fmt is None:
                elems.append(ZERO)
                continue
            raw = m.wire(f"{port['name']}__{i}_port", cfmt.width,
                         f"{port['name']}[{i * cfmt.width} +: {cfmt.width}]")
            elems.append(Elem(m.convert(Elem(raw, cfmt), fmt, f"{port['name']}__{i}"), fmt))
        return elems

    def output_expression(self, port: dict, elems: list[Elem]) -> None:
        """``port["expr"]``: the elements, each in the port's container, packed."""
        cfmt = Fmt(port["width"], port["frac"], port["signed"])
        wires = [self.m.convert(e, cfmt, f"{port['name']}__{i}_out") for i, e in enumerate(elems)]
        port["expr"] = "{" + ", ".join(reversed(wires)) + "}"

    def build(self) -> dict:
        g = self.graph
        inputs = [self.port(n) for n in g.inputs]
        outputs = [self.port(n) for n in g.outputs]
        m = self.m
        for port, name in zip(inputs, g.inputs):
            self.values[name] = self.input_elements(port)
            self.ready[name] = 0
        input_items = list(m.items)
        layers = [self.guarded_layer(node) for node in g.nodes]
        latency = max(self.ready[n] for n in g.outputs)
        first = len(m.items)
        for port, name in zip(outputs, g.outputs):
            self.output_expression(port, self.elems(name, latency))
        output_items = m.items[first:]
        return {"model": self.model, "timing": self.timing(layers), "version": __version__, "source": self.source,
                "clock_ns": self.options.clock_ns, "levels_per_stage": self.options.levels,
                "csd_max_digits": self.options.csd_max_digits, "dsp_min_width": self.options.dsp_min_width,
                "latency": latency, "inputs": inputs, "outputs": outputs, "tables": list(self.tables.values()),
                "input_items": input_items,
                "layers": layers, "output_items": output_items, "names": dict(self.names.map)}
