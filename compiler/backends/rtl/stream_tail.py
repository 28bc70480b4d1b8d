"""The tail of the stream architecture (stream.py): layers after the last spatial one (Flatten,
Dense, Softmax, ...) read whole vectors: ``fg_stream_collect`` gathers the last stream into one
vector, and the tail's cores (one per compute layer, wiring layers merged into the next one)
follow each other as free-running pipelines ending in one FIFO.  A model without spatial layers
is all tail.

A branch in the tail (a layer reading a tail tensor other than the core before it: a residual
Add over dense layers, a skip from an MLP's input) merges the cores from the one that has that
tensor through the reader into one core: the fully parallel builder's top for a mini-graph with
the branch inside, as --arch parallel builds it.  The tail stays one chain of cores, so the
cycle model, the estimate and the single FIFO need nothing new.  (Passing the skip tensor
alongside in a skip FIFO would need a second path through the chain, its own credits and a
join of vectors, for no gain: a whole-vector core takes one vector per cycle, its pipeline
balanced by the builder, so a merged core is as fast as the chain.)  A core of several layers
is not folded (:meth:`_TailBuilder.tail_reuse`): reuse 1, with a warning when its layers ask
for more.  From the spatial part the tail reads only the collected vector.

:class:`_TailBuilder` is a part of stream.py's ``_StreamBuilder`` (its base class): it uses the
builder's graph, names, reuse factors, module (``m``) and its ``core``, ``instance``,
``relane`` and ``drive``."""

from __future__ import annotations

from ...ir import Graph, Node, Op
from .options import RTLBackendError
from .stream_frames import FOLDABLE, TAIL_BREAKS, _activations, _concat, _fmt, _port_fmt, _Stream
from .stream_timing import fifo_depth


class _TailBuilder:
    def tail_groups(self, nodes: list[Node], first_input: str) -> list[list[Node]]:
        """The tail's nodes as the groups of its cores: one per compute layer (wiring layers join
        the next one), and the groups from the one that has a tensor (made inside it, or its
        input) through every later one that reads it merged into one (a branch inside a core)."""
        groups, group = [], []
        for node in nodes:
            group.append(node)
            if node.op in TAIL_BREAKS:
                groups.append(group)
                group = []
        if group:
            if groups:
                groups[-1].extend(group)
            else:
                groups.append(group)
        merged = True
        while merged:
            merged = False
            owner = {}  # tensor -> the group a core starting there can read it in
            for k, grp in enumerate(groups):
                owner[first_input if k == 0 else groups[k - 1][-1].outputs[0]] = k
                owner.update({s.outputs[0]: k for n in grp[:-1] for s in n.stages()})
                owner.update({s.outputs[0]: k for s in grp[-1].stages()[:-1]})
            for k, grp in enumerate(groups):
                earlier = [owner[i] for _, i in self.tail_reads(grp) if owner.get(i, k) < k]
                if earlier:
                    j = min(earlier)
                    groups[j:k + 1] = [[n for g in groups[j:k + 1] for n in g]]
                    merged = True
                    break
        return groups

    def tail_reads(self, group: list[Node]) -> list[tuple[Node, str]]:
        """(node, tensor) for each activation a group's nodes read that the group does not make."""
        produced = {s.outputs[0] for n in group for s in n.stages()}
        return [(n, i) for n in group for i in _activations(self.graph, n) if i not in produced]

    def tail_cores(self, nodes: list[Node], first_input: str) -> list[Graph]:
        """The tail as mini-graphs, one per group of :meth:`tail_groups`, each reading the one
        before (the first the collected vector)."""
        g = self.graph
        minis = []
        current = first_input
        for group in self.tail_groups(nodes, first_input):
            # a reshape keeps the flat order, which is how a vector travels: the core starts after
            # it (unless another of the core's layers reads its input too)
            while len(group) > 1 and group[0].op == Op.RESHAPE and not group[0].epilogue \
                    and group[0].inputs[0] == current and all(i != current for _, i in self.tail_reads(group[1:])):
                current = group.pop(0).outputs[0]
            reads = self.tail_reads(group)
            passed = [(n, i) for n, i in reads if i != current]
            if passed:  # read before the collector: the tail receives only the last spatial layer's output
                node, name = passed[0]
                raise RTLBackendError(f"node {node.name!r} reads {name!r}, which the stream pipeline has already "
                                      f"passed on before fg_stream_collect gathers the tail's input "
                                      f"({first_input!r}): the tail (the layers after the last spatial one) reads "
                                      f"that vector and the tensors it computes itself, not a tensor of the "
                                      f"spatial part or the model's input; compile with --arch parallel")
            if {i for _, i in reads} != {current}:
                raise RTLBackendError(f"node {group[0].name!r}: the stream architecture builds a chain of layers "
                                      f"so far; this layer reads {sorted({i for _, i in reads})}; compile with "
                                      f"--arch parallel")
            last = group[-1].outputs[0]
            used = {current} | {i for n in group for s in n.stages() for i in (*s.inputs, *s.outputs)}
            tensors = {k: v for k, v in g.tensors.items() if k in used}
            name = f"{self.model}_{self.names(group[-1].name)}"
            minis.append(Graph(name, (current,), (last,), tuple(group), tensors))
            current = last
        if current != g.outputs[0]:
            raise RTLBackendError(f"the stream architecture builds a chain of layers ending in the output so far; "
                                  f"{current!r} is not the model's output; compile with --arch parallel")
        return minis

    def tail_reuse(self, mini: Graph) -> int:
        """The reuse factor a tail core is built at: its layer's; a core of several layers (a
        branch, or wiring that could not be left out) is fully parallel, at reuse 1 whatever its
        layers ask (a warning names the DENSE or CONV layers that asked for more)."""
        asked = max(int(self.reuse.get(n.name, 1)) for n in mini.nodes)
        if len(mini.nodes) == 1:
            return asked
        folds = [f"{n.name!r} (reuse {self.reuse[n.name]})" for n in mini.nodes
                 if n.op in FOLDABLE and int(self.reuse.get(n.name, 1)) > 1]
        if folds:
            self.warnings.append(f"the stream RTL builds {', '.join(folds)} at reuse factor 1: "
                                 f"{'it is' if len(folds) == 1 else 'they are'} in the tail core of "
                                 f"{', '.join(repr(n.name) for n in mini.nodes)} (a branch after the last spatial "
                                 f"layer, or wiring before a layer), which is built fully parallel")
        return 1

    def tail(self, nodes: list[Node], collected: _Stream, link: tuple[str, str, str]) -> tuple[dict, tuple]:
        m = self.m
        valid, ready, data = link
        minis = self.tail_cores(nodes, collected.name)
        # the tail's cores keep the tensors' own formats: a core's input port is the container of
        # its input's formats, which is the collected stream's lane type
        reuses = [self.tail_reuse(mini) for mini in minis]
        ctxs = [self.core(mini, r) for mini, r in zip(minis, reuses)]
        reuse = max(reuses)  # the collector hands on one vector every `reuse` cycles
        base = "tail"
        in_p = ctxs[0]["inputs"][0]
        beats, bits = collected.beats, collected.bits
        self.instance("fg_stream_collect", f"u_{base}_collect", {"W": bits, "N": beats, "II": reuse},
                      {"clk": "clk", "rst": "rst", "in_valid": valid, "in_data": data,
                       "in_ready": f"{base}_collect_ready", "out_valid": f"{base}_vector_valid",
                       "out_ready": f"{base}_credit", "out_data": f"{base}_vector"},
                      {"in_ready": (f"{base}_collect_ready", 1), "out_valid": (f"{base}_vector_valid", 1),
                       "out_data": (f"{base}_vector", beats * bits)})
        self.drive(ready, f"{base}_collect_ready")
        lw, c = collected.lane.width, collected.channels
        # tensor element (c, p) (flat c*HW + p) = beat p, lane c
        parts = [f"{base}_vector[{(p * c + ch) * lw} +: {lw}]" for ch in range(c) for p in range(beats)]
        vector = m.wire(f"{base}_core_in", beats * bits, _concat(parts))
        vector = self.relane(vector, _fmt(collected.lane), _port_fmt(in_p), c * beats, f"{base}_core_in_port")
        issue = m.wire(f"{base}_issue", 1, f"{base}_vector_valid & {base}_credit")
        collect = {"bits": bits, "beats": beats, "ii": reuse}
        latency = sum(ctx["latency"] for ctx in ctxs)
        depth = fifo_depth(latency, reuse, window=False)
        v, d = issue, vector
        for k, ctx in enumerate(ctxs):
            ip, op = ctx["inputs"][0], ctx["outputs"][0]
            name = f"{base}_{k}"
            if k:  # a reshape left out between two cores may hold the values in other formats
                last = ctxs[k - 1]["outputs"][0]  # (a flatten of values that are always zero: pruned)
                d = self.relane(d, _port_fmt(last), _port_fmt(ip), last["bits"] // last["width"], f"{name}_in_port")
            self.instance(ctx["model"], f"u_{name}_core", {},
                          {"clk": "clk", "rst": "rst", "in_valid": v, ip["name"]: d,
                           "out_valid": f"{name}_valid", op["name"]: f"{name}_out"},
                          {"out_valid": (f"{name}_valid", 1), op["name"]: (f"{name}_out", op["bits"])})
            v, d = f"{name}_valid", f"{name}_out"
        out_bits = ctxs[-1]["outputs"][0]["bits"]
        self.instance("fg_stream_fifo", f"u_{base}_fifo", {"W": out_bits, "DEPTH": depth},
                      {"clk": "clk", "rst": "rst", "issue": issue, "credit": f"{base}_credit",
                       "in_valid": v, "in_data": d, "out_valid": f"{base}_valid",
                       "out_ready": f"{base}_ready", "out_data": f"{base}_data"},
                      {"credit": (f"{base}_credit", 1), "out_valid": (f"{base}_valid", 1),
                       "out_data": (f"{base}_data", out_bits)})
        self.declared.append(f"{base}_ready")
        entry = {"name": base, "onnx": ", ".join(o for n in nodes for o in (n.onnx_nodes or (n.name,))),
                 "ops": " -> ".join(n.kind for n in nodes), "reuse": reuse, "latency": latency,
                 "beats_in": collected.beats, "beats_out": 1, "pad": None,
                 "window": None, "reduce": None, "collect": collect,
                 "core": ctxs[0] if len(ctxs) == 1 else None, "cores": ctxs,
                 "fifo": {"bits": out_bits, "depth": depth}}
        return entry, (f"{base}_valid", f"{base}_ready", f"{base}_data")
