"""The stream architecture of the RTL backend: layers as a pipeline of engines joined by
valid/ready pixel streams (BuildConfig.architecture "stream").

Streams.  A tensor [C, H, W] (or [C, L], a frame of one row) travels as H*W beats in raster
order, beat ``p = h*W + w`` carrying the C channel values of one pixel, lane ``c`` at
``[c*LW +: LW]``; LW is the tensor's *lane type*, the container of its formats
(:func:`compiler.backends.hls_types.container`), so a value never changes on its way.  Every
transfer is a valid/ready handshake; nothing is lost or duplicated under back-pressure.

Engines.  Each layer over a stream (a fused IR node whose main op is CONV, MAXPOOL, AVGPOOL or
an elementwise op) is ``fg_stream_pad`` (when the layer pads) -> ``fg_stream_window`` (a line
buffer of shift registers giving one window per output pixel) -> *core* -> ``fg_stream_fifo``.
The core is the fully parallel builder's top (builder.py) for a *mini-graph*: the same node
over one window (input [C, KH, KW], each channel in the union of its formats over the
positions; no padding, stride or dilation left; output [M, 1, 1]; every exact tensor sized
again by size_widths from that input), so its arithmetic, rounding and per-element weight
formats are the parallel backend's, and each output pixel equals the emulator's: the window
holds the same values (zeros where the layer pads, or the lane type's least value for a
max pool, which padding never wins), the weights are the same constants, exact tensors are
at least as wide as the emulator's, and the formats the plan sets (requantize outputs, tables)
must be the same at every position (else a clear error).  The core is a free-running pipeline;
the window generator accepts a pixel only when the FIFO behind the core has a free slot
reserved for its result (a credit), so back-pressure never has to stop the core.  FIFO depth
= the cycles from the reservation to the core's result + 2, which keeps one pixel per cycle
flowing while the consumer takes them.

Branches.  A stream read by several engines (a residual connection, the branches of an
Inception block) *forks*: one ``fg_stream_fifo`` per reader (a skip FIFO, its issue and write
the fork's transfer), and a beat transfers into all of them at once, when each has a credit.
An ADD, MUL or channel CONCAT of several streams of one frame *joins* them: one beat (stream
j's bits above stream j - 1's) when every stream has one, stream j taken when the engine's
window takes the beat and every other stream is valid; its window is one pixel and its core
the mini-graph with one input per stream.  A skip FIFO on the short branch of a fork-join
holds the beats the long branch keeps in its line buffers and pipelines, or the fork stalls:
stream_model.skip_depths sizes every skip FIFO from the cycle model of the whole graph (the
least depth that keeps the schedule the graph has with unbounded ones), and schedule.json
lists them among the engines ("ops": "skip FIFO").

The tail (the layers after the last spatial one, whole-vector cores behind
``fg_stream_collect``) is stream_tail.py's, the cores' mini-graphs stream_cores.py's, and the
streams' frames, lane types and windows stream_frames.py's.  A model that ends in reorders only
(a DepthToSpace, a Flatten; elementwise layers after them are moved before them by
stream_reorder.py) has no tail: the last engine's beats are the output port's, and the port's
``order`` says which output element each lane holds, as the input port's does for leading ones.

The schedule (latency from an image's first input beat to its last output beat, and II, the
cycles between images) is predicted by stream_model's cycle model of the same modules
(stream_timing.py), and `finegrain sim` measures both.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ... import __version__
from ...errors import UserError, reraise_interrupt
from ...fixed import FixedType
from ...ir import Graph, Node, Op
from ...names import SV_COMPANIONS, SV_PREFIXES, SV_RESERVED, Names
from .builder import _Builder
from .folded import folded_core_context
from .emitter import Elem, Fmt, _Module
from .options import SUPPORTED, RTLBackendError, RTLOptions, rtl_top_name
from .stream_cores import _CoreGraphs
from .stream_frames import (FOLDABLE, JOIN_OPS, POINTWISE_OPS, WINDOW_OPS, _activations, _concat, _fmt, _frame,
                            _lane_type, _port_fmt, _Stream)
from .stream_model import PORT, Stuck, skip_depths
from .stream_timing import _model_spec, fifo_depth, predict
from .stream_reorder import is_reorder, output_order, sink_reorders
from .stream_tail import _TailBuilder


class _StreamBuilder(_CoreGraphs, _TailBuilder):
    def __init__(self, graph: Graph, options: RTLOptions, source: dict, reuse: dict | None = None):
        self.graph = sink_reorders(graph)  # the elementwise layers after a trailing reorder move before it
        self.options = options
        self.source = source
        self.reuse = reuse or {}
        self.model = rtl_top_name(graph)
        # a core is <model>_<layer>: a layer named "axis" would be the AXI4-Stream top's name
        self.names = Names(reserved=SV_RESERVED | {self.model, "axis"}, prefixes=SV_PREFIXES,
                           companions=SV_COMPANIONS)
        self.m = _Module(options)
        self.cores: list[dict] = []  # core contexts, rendered before the top
        self.declared: list[str] = []  # handshake wires driven after their first use (ready)
        self.skip_items: dict[str, dict] = {}  # skip FIFO -> its instance, whose DEPTH build sets
        self.warnings: list[str] = []  # for report.json (reuse factors not built as asked)

    # --- the plan of engines ------------------------------------------------------------
    def split(self) -> tuple[list, _Stream | None, list[Node], np.ndarray]:
        """(stream nodes, the stream the tail collects or None, tail nodes, input order)."""
        g = self.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise RTLBackendError(f"model {g.name!r} has {len(g.inputs)} inputs and {len(g.outputs)} outputs; the "
                                  f"stream architecture takes one input and one output tensor so far; compile with "
                                  f"--arch parallel")
        for node in g.nodes:
            for stage in node.stages():
                if stage.op not in SUPPORTED:
                    raise RTLBackendError(f"node {node.name!r}: the RTL backend has no {stage.op.value} yet; "
                                          f"compile with --backend hls")
        x = g.tensor(g.inputs[0])
        order = np.arange(int(np.prod(x.shape))).reshape(x.shape)
        nodes = list(g.nodes)
        current = x.name
        i = 0
        # leading reshapes/transposes only rearrange the input: they become the port's beat order
        while i < len(nodes) and nodes[i].op in (Op.RESHAPE, Op.TRANSPOSE) and not nodes[i].epilogue \
                and nodes[i].inputs[0] == current and len(g.consumers(current)) == 1 \
                and _frame(g.tensor(nodes[i].outputs[0]).shape) is not None:
            node = nodes[i]
            out = g.tensor(node.outputs[0])
            order = order.reshape(out.shape) if node.op == Op.RESHAPE else np.transpose(order, node.attrs["perm"])
            current = out.name
            i += 1
        shape = _frame(g.tensor(current).shape)
        self.start = current  # the stream the input port carries
        engines = []
        streams = {current}
        if shape is not None:
            while i < len(nodes) and self.streams(nodes[i], streams):
                engines.append(nodes[i])
                streams.add(nodes[i].outputs[0])
                i += 1
        self.reorders: list[Node] = []  # a trailing reorder chain: the output port's beat order
        if engines:
            current = engines[-1].outputs[0]
            self.check_branches(engines, streams, current, nodes[i:])
            rest = nodes[i:]
            if rest and all(is_reorder(n) for n in rest) \
                    and all(n.inputs[0] == p.outputs[0] for p, n in zip([engines[-1], *rest], rest)):
                self.reorders, i = rest, len(nodes)
        if not engines:  # no spatial layer: the whole model is tail; the input arrives as one vector
            size = int(np.prod(x.shape))
            return [], _Stream(x.name, size, 1, 1, _lane_type(x)), list(g.nodes), np.arange(size)
        c, h, w = _frame(order.shape)
        beat_order = order.reshape(c, h * w).T.reshape(-1)  # beat p, lane c -> flat input index
        t = g.tensor(current)
        collected = _Stream(current, *_frame(t.shape), _lane_type(t))
        return engines, collected, nodes[i:], beat_order

    def streams(self, node: Node, streams: set[str]) -> bool:
        """Whether ``node`` is an engine over streams: it reads only streams (and constants),
        keeps a spatial frame, and is a window layer or elementwise; an ADD, MUL or channel
        CONCAT may read several streams of its own frame (a join)."""
        g = self.graph
        acts = _activations(g, node)
        if not acts or not set(acts) <= streams or set(acts) & set(g.outputs):
            return False
        out = _frame(g.tensor(node.outputs[0]).shape)
        if out is None:
            return False
        stages = node.stages()
        first = stages[0]
        if first.op == Op.CONCAT:
            if first.attrs["axis"] != 0:
                return False
        elif first.op not in WINDOW_OPS and first.op not in POINTWISE_OPS:
            return False
        if len(acts) > 1 and (first.op not in JOIN_OPS
                              or any(_frame(g.tensor(a).shape)[1:] != out[1:] for a in acts)):
            return False
        return all(s.op in POINTWISE_OPS for s in stages[1:])

    def check_branches(self, engines: list[Node], streams: set[str], last: str, tail: list[Node]) -> None:
        """Every stream but the last is read by engines only (the tail collects the last one)."""
        g = self.graph
        for node in tail:
            for a in _activations(g, node):
                if a in streams and a != last:
                    raise RTLBackendError(
                        f"node {node.name!r} reads {a!r}, a stream of the model's spatial part, beside the last "
                        f"one ({last!r}); the stream architecture's tail (the layers after the last spatial one, "
                        f"behind fg_stream_collect) may branch among its own tensors, but from the spatial part "
                        f"it reads only the last spatial layer's output; compile with --arch parallel")
        for t in sorted(streams - {last}):
            if not any(t in _activations(g, n) for n in engines):
                raise RTLBackendError(f"tensor {t!r} is computed but no layer of the stream architecture reads it; "
                                      f"compile with --arch parallel")

    def stream(self, name: str) -> _Stream:
        t = self.graph.tensor(name)
        return _Stream(name, *_frame(t.shape), _lane_type(t))

    # --- the top ------------------------------------------------------------------------
    def core(self, mini: Graph, reuse: int = 1) -> dict:
        """The core of a mini-graph: fully parallel, or with ``reuse`` > 1 and a DENSE or CONV
        layer, folded (folded.py: one input every ``reuse`` cycles, about 1/reuse of the
        multipliers)."""
        options = dataclasses.replace(self.options, interface="ports", architecture="parallel")
        if reuse > 1 and len(mini.nodes) == 1 and mini.nodes[0].op in FOLDABLE:
            ctx = folded_core_context(mini, options, self.source, reuse)
            ctx["folded"] = True
        else:
            ctx = _Builder(mini, options, self.source).build()
        self.cores.append(ctx)
        return ctx

    def port(self, name: str, lane: FixedType, lanes: int, beats: int, order) -> dict:
        t = self.graph.tensor(name)
        return {"name": self.names(name), "onnx": name, "size": int(np.prod(t.shape)), "width": lane.width,
                "frac": lane.frac_bits, "signed": lane.signed, "type": str(lane), "shape": list(t.shape),
                "beats": beats, "lanes": lanes, "bits": lanes * lane.width,
                "order": [int(v) for v in order]}

    def instance(self, module: str, name: str, params: dict, ports: dict, outputs: dict) -> None:
        self.m.instance(module, name, params, ports, outputs)

    def build(self) -> dict:
        g = self.graph
        m = self.m
        engines_nodes, collected, tail, order = self.split()
        x = g.tensor(g.inputs[0])
        if engines_nodes:
            first = _Stream(x.name, *_frame(g.tensor(engines_nodes[0].inputs[0]).shape), _lane_type(x))
            in_port = self.port(x.name, first.lane, first.channels, first.beats, order)
        else:
            first = None
            lane = _lane_type(x)
            in_port = self.port(x.name, lane, int(np.prod(x.shape)), 1, order)
        engines = []
        port_link = (f"{in_port['name']}_valid", f"{in_port['name']}_ready", in_port["name"])
        # `ready` is driven by whatever takes the stream: each step assigns the previous one's
        # links[(tensor, reader)]: (the link, the engine it comes from) for each engine reading a stream
        links: dict[tuple[str, str], tuple[tuple, str]] = {}
        streams: dict[str, _Stream] = {}
        if first is not None:
            streams[self.start] = dataclasses.replace(first, name=self.start)
            self.offer(self.start, streams[self.start], port_link, PORT, engines_nodes, links, engines)
        for node in engines_nodes:
            acts = _activations(g, node)
            e, link, stream = self.engine(node, [streams[a] for a in acts], [links[a, node.name][0] for a in acts])
            e["inputs"] = [links[a, node.name][1] for a in acts]
            engines.append(e)
            streams[stream.name] = stream
            self.offer(stream.name, stream, link, e["name"], engines_nodes, links, engines)
        (valid, ready, data), source = port_link, PORT
        if engines_nodes:
            (valid, ready, data), source = links[collected.name, ""]
        if tail:
            e, (valid, ready, data) = self.tail(tail, collected, (valid, ready, data))
            e["inputs"], e["skip"] = [source], False
            engines.append(e)
            out = g.tensor(g.outputs[0])
            ctx_out = e["cores"][-1]["outputs"][0]
            out_port = self.port(out.name, FixedType(ctx_out["width"], ctx_out["width"] - ctx_out["frac"],
                                                     ctx_out["signed"]),
                                 int(np.prod(out.shape)), 1, range(int(np.prod(out.shape))))
        else:
            out = g.tensor(g.outputs[0])
            out_order = output_order(g, self.reorders, g.tensor(stream.name).shape)
            lane = _lane_type(out)  # after reorders, which may size the output narrower than the stream
            out_port = self.port(out.name, lane, stream.channels, stream.beats, out_order)
            data = self.relane(data, _fmt(stream.lane), _fmt(lane), stream.channels, f"{out_port['name']}_lanes")
        self.size_skips(engines, in_port["beats"])
        out_port["valid"], out_port["data"] = valid, data
        self.drive(ready, f"{out_port['name']}_ready")
        latency, ii, images = predict(engines, in_port["beats"])
        return {"architecture": "stream", "model": self.model, "version": __version__, "source": self.source,
                "clock_ns": self.options.clock_ns, "levels_per_stage": self.options.levels,
                "csd_max_digits": self.options.csd_max_digits, "dsp_min_width": self.options.dsp_min_width,
                "latency": latency, "ii": ii, "ii_images": images, "inputs": [in_port], "outputs": [out_port],
                "engines": engines, "cores": self.cores, "declared": self.declared, "items": m.items,
                "names": dict(self.names.map), "warnings": self.warnings, "timing": cores_timing(self.cores)}

    def offer(self, tensor: str, stream: _Stream, link: tuple, source: str, nodes: list[Node],
              links: dict, engines: list[dict]) -> None:
        """Record the stream ``tensor`` (``link``, made by engine ``source``) for its readers:
        the engine reading it, or a fork into skip FIFOs when several do; the tail (or the
        output port) reads the last stream, under the reader name ""."""
        readers = [n for n in nodes if tensor in _activations(self.graph, n)]
        if len(readers) > 1:
            for name, (skip_link, entry) in self.fork(tensor, stream, link, source, readers).items():
                links[tensor, name] = (skip_link, entry["name"])
                engines.append(entry)
        else:
            links[tensor, readers[0].name if readers else ""] = (link, source)

    def size_skips(self, engines: list[dict], beats_in: int) -> None:
        """Each skip FIFO's depth: what it must hold for the graph to run as with unbounded
        ones (stream_model.skip_depths, images back to back)."""
        skips = [e["name"] for e in engines if e["skip"]]
        if not skips:
            return
        depths = skip_depths(_model_spec(engines), beats_in, skips)
        for e in engines:
            if e["skip"]:
                e["fifo"]["depth"] = depths[e["name"]]
                for p in self.skip_items[e["name"]]["params"]:
                    if p["name"] == "DEPTH":
                        p["value"] = depths[e["name"]]

    def drive(self, ready: str, source: str) -> None:
        """The stream handshake's ready wire ``ready`` (declared by its producer) = ``source``."""
        self.m.items.append({"kind": "drive", "name": ready, "expr": source})

    def engine(self, node: Node, streams: list[_Stream], links: list[tuple[str, str, str]]
               ) -> tuple[dict, tuple, _Stream]:
        """The engine of ``node`` over ``streams`` (several: an elementwise layer's join)."""
        base = self.names(node.name)
        stream, (valid, ready, data) = streams[0], links[0]
        reuse = int(self.reuse.get(node.name, 1))
        bits = stream.bits
        pad_entry = window = reduce = None
        kernel = self.global_pool(node, stream)
        if len(streams) > 1:
            mini, geo, _ = self.window_core(node, *streams)
            ctx = self.core(mini, reuse)
            core_in = self.join(base, geo, streams, links, ctx, reuse)
            window = {"bits": sum(s.bits for s in streams), **geo, "ii": reuse}
        elif kernel is not None:
            mini, reduce = self.reduce_core(node, stream)
            reduce["kernel"] = kernel
            ctx = self.core(mini, reuse)
            acc_w = reduce["acc_width"]
            self.instance("fg_stream_reduce", f"u_{base}_reduce",
                          {"W": stream.lane.width, "LANES": stream.channels, "H": stream.height,
                           "WD": stream.width, "KH": kernel[0], "KW": kernel[1], "OP": reduce["op"],
                           "SIGNED": int(stream.lane.signed), "ACC_W": acc_w, "II": reuse},
                          {"clk": "clk", "rst": "rst", "in_valid": valid, "in_data": data,
                           "in_ready": f"{base}_reduce_ready", "credit": f"{base}_credit", "issue": f"{base}_issue",
                           "out_valid": f"{base}_window_valid", "out_data": f"{base}_reduced"},
                          {"in_ready": (f"{base}_reduce_ready", 1), "issue": (f"{base}_issue", 1),
                           "out_valid": (f"{base}_window_valid", 1),
                           "out_data": (f"{base}_reduced", stream.channels * acc_w)})
            self.drive(ready, f"{base}_reduce_ready")
            src = Fmt(acc_w, stream.lane.frac_bits, stream.lane.signed)
            core_in = {ctx["inputs"][0]["name"]: self.relane(f"{base}_reduced", src, _port_fmt(ctx["inputs"][0]),
                                                             stream.channels, f"{base}_core_in")}
            reduce = {"bits": bits, **reduce, "ii": reuse}
        else:
            mini, geo, pad = self.window_core(node, stream)
            ctx = self.core(mini, reuse)
            if pad is not None:
                inst = f"u_{base}_pad"
                self.instance("fg_stream_pad", inst,
                              {"W": bits, "H": pad["height"], "WD": pad["width"], "PT": pad["top"],
                               "PB": pad["bottom"], "PL": pad["left"], "PR": pad["right"],
                               "VALUE": f"{bits}'h{self.fill(pad['value'], stream):x}"},
                              {"clk": "clk", "rst": "rst", "in_valid": valid, "in_data": data,
                               "in_ready": f"{base}_pad_in_ready", "out_valid": f"{base}_pad_valid",
                               "out_ready": f"{base}_pad_ready", "out_data": f"{base}_pad_data"},
                              {"in_ready": (f"{base}_pad_in_ready", 1), "out_valid": (f"{base}_pad_valid", 1),
                               "out_data": (f"{base}_pad_data", bits)})
                self.drive(ready, f"{base}_pad_in_ready")
                valid, ready, data = f"{base}_pad_valid", f"{base}_pad_ready", f"{base}_pad_data"
                self.declared.append(ready)
                pad_entry = {"bits": bits, **{k: pad[k] for k in ("height", "width", "top", "bottom", "left", "right")}}
            core_in = {ctx["inputs"][0]["name"]: self.window(base, geo, stream, ctx, reuse, (valid, ready, data))}
            window = {"bits": bits, **geo, "ii": reuse}
        latency = ctx["latency"]
        depth = fifo_depth(latency, reuse, window=True)
        out_t = self.graph.tensor(node.outputs[0])
        lane = _lane_type(out_t)
        out_p = ctx["outputs"][0]
        cinst = f"u_{base}_core"
        self.instance(ctx["model"], cinst, {},
                      {"clk": "clk", "rst": "rst", "in_valid": f"{base}_window_valid", **core_in,
                       "out_valid": f"{base}_core_valid", out_p["name"]: f"{base}_core_out"},
                      {"out_valid": (f"{base}_core_valid", 1), out_p["name"]: (f"{base}_core_out", out_p["bits"])})
        result = self.relane(f"{base}_core_out", _port_fmt(out_p), _fmt(lane), out_t.shape[0], f"{base}_result")
        out_bits = out_t.shape[0] * lane.width
        finst = f"u_{base}_fifo"
        self.instance("fg_stream_fifo", finst, {"W": out_bits, "DEPTH": depth},
                      {"clk": "clk", "rst": "rst", "issue": f"{base}_issue", "credit": f"{base}_credit",
                       "in_valid": f"{base}_core_valid", "in_data": result, "out_valid": f"{base}_valid",
                       "out_ready": f"{base}_ready", "out_data": f"{base}_data"},
                      {"credit": (f"{base}_credit", 1), "out_valid": (f"{base}_valid", 1),
                       "out_data": (f"{base}_data", out_bits)})
        self.declared.append(f"{base}_ready")
        c, h, wd = _frame(out_t.shape)
        out_stream = _Stream(out_t.name, c, h, wd, lane)
        entry = {"name": base, "onnx": ", ".join(node.onnx_nodes) or node.name,
                 "ops": " + ".join(s.kind for s in node.stages()), "reuse": reuse, "latency": latency,
                 "beats_in": stream.beats, "beats_out": out_stream.beats, "pad": pad_entry,
                 "window": window, "reduce": reduce, "collect": None,
                 "core": ctx, "cores": [ctx], "fifo": {"bits": out_bits, "depth": depth}, "skip": False}
        return entry, (f"{base}_valid", f"{base}_ready", f"{base}_data"), out_stream

    def window(self, base: str, w: dict, stream: _Stream, ctx: dict, reuse: int, link: tuple) -> str:
        """fg_stream_window over the stream; returns the core's input: the window's taps in the
        core's element order (channel, then tap), in the core's input container."""
        bits = stream.bits
        taps = w["kh"] * w["kw"]
        self.window_instance(base, w, bits, reuse, link)
        lw = stream.lane.width
        parts = [f"{base}_window[{(t * stream.channels + c) * lw} +: {lw}]"
                 for c in range(stream.channels) for t in range(taps)]
        window_in = self.m.wire(f"{base}_window_in", taps * bits, _concat(parts),
                                "the window in the core's element order: channel, then tap")
        return self.relane(window_in, _fmt(stream.lane), _port_fmt(ctx["inputs"][0]), taps * stream.channels,
                           f"{base}_core_in")

    def window_instance(self, base: str, w: dict, bits: int, reuse: int, link: tuple) -> None:
        """fg_stream_window over beats of ``bits`` bits: its taps are {base}_window."""
        valid, ready, data = link
        taps = w["kh"] * w["kw"]
        self.instance("fg_stream_window", f"u_{base}_window",
                      {"W": bits, "H": w["height"], "WD": w["width"], "KH": w["kh"], "KW": w["kw"],
                       "SH": w["sh"], "SW": w["sw"], "DH": w["dh"], "DW": w["dw"], "II": reuse},
                      {"clk": "clk", "rst": "rst", "in_valid": valid, "in_data": data,
                       "in_ready": f"{base}_window_ready", "credit": f"{base}_credit", "issue": f"{base}_issue",
                       "out_valid": f"{base}_window_valid", "out_data": f"{base}_window"},
                      {"in_ready": (f"{base}_window_ready", 1), "issue": (f"{base}_issue", 1),
                       "out_valid": (f"{base}_window_valid", 1), "out_data": (f"{base}_window", taps * bits)})
        self.drive(ready, f"{base}_window_ready")

    def join(self, base: str, w: dict, streams: list[_Stream], links: list[tuple], ctx: dict, reuse: int) -> dict:
        """The join of an elementwise layer's streams (one beat when every stream has one;
        stream j is taken when the window takes the beat and every other stream is valid) and
        its one-pixel window; returns the core's inputs, port name -> wire."""
        valids = [valid for valid, _, _ in links]
        valid = self.m.wire(f"{base}_join_valid", 1, " & ".join(valids), "a beat on every stream")
        ready = f"{base}_join_ready"
        self.declared.append(ready)
        for j, (_, r, _) in enumerate(links):
            self.drive(r, " & ".join([ready, *valids[:j], *valids[j + 1:]]))
        bits = sum(s.bits for s in streams)
        data = self.m.wire(f"{base}_join_data", bits, _concat([d for _, _, d in links]),
                           "stream j's beat above stream j - 1's")
        self.window_instance(base, w, bits, reuse, (valid, ready, data))
        ports = {p["onnx"]: p for p in ctx["inputs"]}
        core_in, offset = {}, 0
        for j, s in enumerate(streams):
            port = ports[s.name]
            pixel = self.m.wire(f"{base}_in{j}", s.bits, f"{base}_window[{offset} +: {s.bits}]")
            core_in[port["name"]] = self.relane(pixel, _fmt(s.lane), _port_fmt(port), s.channels, f"{base}_in{j}_port")
            offset += s.bits
        return core_in

    def fork(self, tensor: str, stream: _Stream, link: tuple, source: str, readers: list[Node]) -> dict:
        """The stream ``tensor`` to several engines: one skip FIFO per reader (DEPTH set by
        :meth:`build` from the cycle model); a beat transfers into every FIFO at once, when
        each has a credit.  Returns reader name -> (its link, its skip FIFO's entry)."""
        valid, ready, data = link
        t = self.names(f"{tensor}_fork")
        fire = f"{t}_fire"
        self.declared.append(fire)
        out = {}
        for reader in readers:
            name = self.names(f"{tensor}_to_{reader.name}")
            self.instance("fg_stream_fifo", f"u_{name}", {"W": stream.bits, "DEPTH": None},
                          {"clk": "clk", "rst": "rst", "issue": fire, "credit": f"{name}_credit", "in_valid": fire,
                           "in_data": data, "out_valid": f"{name}_valid", "out_ready": f"{name}_ready",
                           "out_data": f"{name}_data"},
                          {"credit": (f"{name}_credit", 1), "out_valid": (f"{name}_valid", 1),
                           "out_data": (f"{name}_data", stream.bits)})
            self.declared.append(f"{name}_ready")
            entry = {"name": name, "onnx": tensor, "ops": "skip FIFO", "reuse": 1, "latency": 0,
                     "beats_in": stream.beats, "beats_out": stream.beats, "pad": None, "window": None,
                     "reduce": None, "collect": None, "core": None, "cores": [],
                     "fifo": {"bits": stream.bits, "depth": None}, "skip": True, "inputs": [source]}
            self.skip_items[name] = self.m.items[-1]
            out[reader.name] = ((f"{name}_valid", f"{name}_ready", f"{name}_data"), entry)
        every = self.m.wire(f"{t}_ready", 1, " & ".join(f"{e['name']}_credit" for _, e in out.values()),
                            "every skip FIFO has a slot")
        self.drive(fire, f"{valid} & {every}")
        self.drive(ready, every)
        return out

    def fill(self, values: list[int], stream: _Stream) -> int:
        """A pad pixel: lane c holds ``values[c]`` (a lane-type mantissa), as the beat's bits."""
        lw = stream.lane.width
        word = 0
        for value in reversed(values):
            word = (word << lw) | (value & ((1 << lw) - 1))
        return word

    def relane(self, wire: str, src: Fmt, dst: Fmt, count: int, base: str) -> str:
        """``count`` packed values of format ``src`` as format ``dst``: an exact change of
        format per value (every value the stream carries fits both: they are the emulator's)."""
        if src == dst:
            return wire
        parts = []
        for c in range(count):
            e = Elem(self.m.derived(f"{base}_{c}", src.width, f"{wire}[{c * src.width} +: {src.width}]"), src)
            parts.append(self.m.convert(e, dst, f"{base}_{c}"))
        return self.m.wire(base, count * dst.width, _concat(parts))



def cores_timing(cores: list[dict]) -> dict | None:
    """The stream top's predicted timing: its slowest core's (each core is pipelined by the delay
    model as a parallel top is); the windows, FIFOs and handshakes around the cores are short
    paths the model does not time, which ``scope`` says."""
    timed = [c for c in cores if c.get("timing")]
    if not timed:
        return None
    worst = max(timed, key=lambda c: c["timing"]["critical_ns"] or 0.0)
    return {**worst["timing"], "critical_layer": f"{worst['model']} ({worst['timing']['critical_layer']})",
            "met": all(c["timing"]["met"] for c in timed), "scope": "the engines' cores"}


def stream_context(graph: Graph, options: RTLOptions, source: dict, reuse: dict | None = None) -> dict:
    """The stream top of ``graph`` (see the module docstring); ``reuse``: layer name -> reuse factor."""
    try:
        return _StreamBuilder(graph, options, source, reuse).build()
    except UserError:
        raise
    except Stuck as err:
        raise RTLBackendError(f"the stream RTL backend's cycle model found model {graph.name!r} stuck ({err}); "
                              f"this is a finegrain defect, please report it with the model and plan; compile "
                              f"with --arch parallel meanwhile") from err
    except Exception as err:  # a failure of the backend itself: a clear message, not a traceback
        reraise_interrupt(err)
        raise RTLBackendError(f"the stream RTL backend failed on model {graph.name!r} ({type(err).__name__}: {err}); "
                              f"this is a finegrain defect, please report it with the model and plan; compile "
                              f"with --arch parallel meanwhile") from err
