"""The stream architecture of the RTL backend: layers as a pipeline of engines joined by
valid/ready pixel streams (BuildConfig.architecture "stream").

Streams.  A tensor [C, H, W] (or [C, L], a frame of one row) travels as H*W beats in raster
order, beat ``p = h*W + w`` carrying the C channel values of one pixel, lane ``c`` at
``[c*LW +: LW]``; LW is the tensor's *lane type*, the container of its formats
(:func:`compiler.backends.hls.container`), so a value never changes on its way.  Every
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

The tail.  Layers after the last spatial one (Flatten, Dense, Softmax, ...) read whole
vectors: ``fg_stream_collect`` gathers the last stream into one vector, and the tail's cores
(one per compute layer, wiring layers merged into the next one) follow each other as free-running
pipelines ending in one FIFO.  A model without spatial layers is all tail.

The schedule (latency from an image's first input beat to its last output beat, and II, the
cycles between images) is predicted by stream_model's cycle model of the same modules, and
`finegrain sim` measures both.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ... import __version__
from ...errors import UserError
from ...fixed import FixedType, Formats
from ...ir import Graph, Node, Op, Tensor, verify
from ...names import SV_COMPANIONS, SV_PREFIXES, SV_RESERVED, Names
from ...passes.size_widths import size_widths
from ..hls_types import container
from .builder import _Builder
from .folded import folded_core_context
from .emitter import Elem, Fmt, _Module, signed_width
from .options import SUPPORTED, RTLBackendError, RTLOptions, rtl_top_name
from .stream_model import PORT, skip_depths, timing

WINDOW_OPS = frozenset({Op.CONV, Op.MAXPOOL, Op.AVGPOOL})
POINTWISE_OPS = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL, Op.SIGMOID})
# outputs whose formats the plan (or a table) sets: the same at every position, kept as they are;
# every other tensor of a core is sized again from the core's input
KEEP_FORMATS = frozenset({Op.REQUANTIZE, Op.SIGMOID, Op.SOFTMAX})
FOLDABLE = frozenset({Op.DENSE, Op.CONV})  # layers a folded core computes with fewer multipliers
TAIL_BREAKS = frozenset({Op.DENSE, Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.SOFTMAX})
JOIN_OPS = frozenset({Op.ADD, Op.MUL, Op.CONCAT})  # layers that may read several streams (a join)


def _fmt(t: FixedType) -> Fmt:
    return Fmt(t.width, t.frac_bits, t.signed)


def _concat(parts: list[str]) -> str:
    """``{parts[-1], ..., parts[0]}`` (parts[0] in the low bits), a few parts per line:
    Verilator's lexer stops on lines of some 100k characters."""
    parts = list(reversed(parts))
    lines = [", ".join(parts[i:i + 8]) for i in range(0, len(parts), 8)]
    return "{" + ",\n        ".join(lines) + "}"


def _port_fmt(port: dict) -> Fmt:
    return Fmt(port["width"], port["frac"], port["signed"])


def _lane_type(t: Tensor) -> FixedType:
    return container(t.formats, t.name)


def _slice_formats(f: Formats, index) -> Formats:
    return Formats(f.width[index], f.int_bits[index], f.signed[index], f.rounding[index], f.overflow[index])


def _first_position(shape: tuple[int, ...]) -> tuple:
    """The index of position 0 of every channel: [:, :1, :1] for [C, H, W]."""
    return (slice(None),) + (slice(0, 1),) * (len(shape) - 1)


PLAN_FIX = "give it per-channel (not per-element) values in the plan"
# an average pool's reciprocals differ at the edges when padding is not counted
POOL_FIX = ("its edge windows hold fewer pixels (padding not counted: count_include_pad=0 or ceil_mode); export "
            "the pool with count_include_pad=1 and no ceil_mode")


def _same_at_every_position(arrays, shape, what: str, node: Node, fix: str = PLAN_FIX) -> None:
    first = _first_position(shape)
    for a in arrays:
        a = np.broadcast_to(np.asarray(a, dtype=object), shape)
        if not (a == np.broadcast_to(a[first], shape)).all():
            raise RTLBackendError(
                f"node {node.name!r}: {what} differs between positions of one channel; a stream engine computes "
                f"every pixel with one circuit, so it needs one value per channel; {fix}, or compile with "
                f"--arch parallel")


def _activations(g: Graph, node: Node) -> list[str]:
    """The tensors ``node`` reads that are neither constants nor made by its own stages, in
    the order its stages read them (each once)."""
    produced = {s.outputs[0] for s in node.stages()}
    acts: list[str] = []
    for s in node.stages():
        for i in s.inputs:
            if not g.tensor(i).is_constant and i not in produced and i not in acts:
                acts.append(i)
    return acts


def _channel_unions(t: Tensor) -> list[FixedType]:
    """Per channel, the narrowest type holding the channel's format at every position."""
    return [container(_slice_formats(t.formats, (c,)), t.name) for c in range(t.shape[0])]


@dataclasses.dataclass
class _Stream:
    """A tensor travelling as a stream: its name, [C, H, W] view and lane type."""

    name: str
    channels: int
    height: int
    width: int
    lane: FixedType

    @property
    def beats(self) -> int:
        return self.height * self.width

    @property
    def bits(self) -> int:
        return self.channels * self.lane.width


def _frame(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """[C, H, W] -> (C, H, W), [C, L] -> (C, 1, L); None for other ranks."""
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return shape[0], 1, shape[1]
    return None


def _window_of(node: Node, rank: int) -> dict:
    """The window of a CONV / MAXPOOL / AVGPOOL node as 2-D numbers (a 1-D node has one row)."""
    a = node.attrs
    n = rank - 1
    if node.op == Op.CONV:
        kernel = None  # from the weight, by the caller
    else:
        kernel = tuple(a["kernel"])
    strides, pads = tuple(a["strides"]), tuple(a["pads"])
    dil = tuple(a.get("dilations", (1,) * n))
    if n == 1:
        return {"kernel": None if kernel is None else (1, kernel[0]), "strides": (1, strides[0]),
                "dilations": (1, dil[0]), "pads": (0, pads[0], 0, pads[1])}  # top, left, bottom, right
    return {"kernel": kernel, "strides": strides, "dilations": dil, "pads": pads}


class _StreamBuilder:
    def __init__(self, graph: Graph, options: RTLOptions, source: dict, reuse: dict | None = None):
        self.graph = graph
        self.options = options
        self.source = source
        self.reuse = reuse or {}
        self.model = rtl_top_name(graph)
        self.names = Names(reserved=SV_RESERVED | {self.model}, prefixes=SV_PREFIXES, companions=SV_COMPANIONS)
        self.m = _Module(options)
        self.cores: list[dict] = []  # core contexts, rendered before the top
        self.declared: list[str] = []  # handshake wires driven after their first use (ready)
        self.skip_items: dict[str, dict] = {}  # skip FIFO -> its instance, whose DEPTH build sets

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
        if engines:
            current = engines[-1].outputs[0]
            self.check_branches(engines, streams, current, nodes[i:])
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
                        f"one ({last!r}); the stream architecture's tail (after the last spatial layer) reads only "
                        f"the last spatial layer's output; compile with --arch parallel")
        for t in sorted(streams - {last}):
            if not any(t in _activations(g, n) for n in engines):
                raise RTLBackendError(f"tensor {t!r} is computed but no layer of the stream architecture reads it; "
                                      f"compile with --arch parallel")

    def stream(self, name: str) -> _Stream:
        t = self.graph.tensor(name)
        return _Stream(name, *_frame(t.shape), _lane_type(t))

    # --- mini-graphs --------------------------------------------------------------------
    def window_core(self, node: Node, stream: _Stream, *others: _Stream) -> tuple[Graph, dict, dict | None]:
        """The mini-graph of one window of ``node`` over ``stream``, the window's numbers and
        the padding (None without); ``others``: the streams an elementwise layer reads beside
        ``stream`` (its window is one pixel of each, the mini-graph's further inputs)."""
        g = self.graph
        x = g.tensor(stream.name)
        rank = len(x.shape)
        stages = node.stages()
        main = stages[0]
        out_shape = g.tensor(node.outputs[0]).shape
        unions = _channel_unions(x)
        if main.op in WINDOW_OPS:
            geo = _window_of(main, rank)
            if main.op == Op.CONV:
                k = g.tensor(main.inputs[1]).shape[2:]
                geo["kernel"] = (1, k[0]) if rank == 2 else tuple(k)
        else:
            geo = {"kernel": (1, 1), "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}
        kh, kw = geo["kernel"]
        window_shape = (stream.channels, kw) if rank == 2 else (stream.channels, kh, kw)
        one = (out_shape[0], 1) if rank == 2 else (out_shape[0], 1, 1)
        tensors = {}
        types = np.empty(window_shape, dtype=object)
        for c in range(stream.channels):
            types[c] = unions[c]
        # each channel in the union of its formats over the positions (the values the stream
        # carries fit it: they are the emulator's)
        tensors[x.name] = dataclasses.replace(x, shape=window_shape, formats=Formats.from_types(types), bounds=None)
        for o in others:  # an elementwise layer's other streams: one pixel each
            t = g.tensor(o.name)
            shape = (o.channels, 1) if rank == 2 else (o.channels, 1, 1)
            types = np.empty(shape, dtype=object)
            for c, union in enumerate(_channel_unions(t)):
                types[c] = union
            tensors[o.name] = dataclasses.replace(t, shape=shape, formats=Formats.from_types(types), bounds=None)
        new_stages = []
        for s in stages:
            attrs = dict(s.attrs)
            if s.op in WINDOW_OPS:
                n = rank - 1
                attrs["strides"], attrs["pads"] = (1,) * n, (0,) * (2 * n)
                if "dilations" in attrs:
                    attrs["dilations"] = (1,) * n
            for name in s.inputs:
                t = g.tensor(name)
                if not t.is_constant or name in tensors:
                    continue
                # weights and biases are per output channel already; other constants are made so
                keep = s.op in (Op.CONV, Op.DENSE)
                tensors[name] = t if keep else self.position_constant(node, s, t, one)
            out = g.tensor(s.outputs[0])
            if s.op in KEEP_FORMATS:
                _same_at_every_position([out.formats.width, out.formats.int_bits, out.formats.signed,
                                         out.formats.rounding, out.formats.overflow], out.shape,
                                        f"the format of {out.name!r}", node)
                formats = _slice_formats(out.formats, _first_position(out.shape))
            else:
                formats = None
            tensors[out.name] = dataclasses.replace(out, shape=one, formats=formats, bounds=None)
            new_stages.append(dataclasses.replace(s, attrs=attrs, epilogue=()))
        core = dataclasses.replace(new_stages[0], outputs=(node.outputs[0],), epilogue=tuple(new_stages[1:]))
        mini = Graph(f"{self.model}_{self.names(node.name)}", (x.name, *(o.name for o in others)), (node.outputs[0],),
                     (core,), tensors)
        mini = size_widths(mini)
        verify(mini)
        pads = geo["pads"]
        top, left, bottom, right = (pads[0], pads[1], pads[2], pads[3])
        window = {"height": stream.height + top + bottom, "width": stream.width + left + right,
                  "kh": kh, "kw": kw, "sh": geo["strides"][0], "sw": geo["strides"][1],
                  "dh": geo["dilations"][0], "dw": geo["dilations"][1]}
        pad = None
        if top or left or bottom or right:
            fill = [0] * stream.channels
            if main.op == Op.MAXPOOL:
                # padding never wins: each channel's least value in the format the core reads it in
                # (its union; the lane type's least value would not fit a narrower channel's)
                lane_frac = stream.lane.frac_bits
                fill = [u.min_mantissa << (lane_frac - u.frac_bits) for u in unions]
            pad = {"height": stream.height, "width": stream.width, "top": top, "bottom": bottom,
                   "left": left, "right": right, "value": fill}
        return mini, window, pad

    def position_constant(self, node: Node, stage: Node, t: Tensor, one: tuple) -> Tensor:
        """A constant of an elementwise stage or a pool's reciprocals, one value per channel
        (the same at every position, else an error)."""
        out_shape = self.graph.tensor(stage.outputs[0]).shape
        data = np.broadcast_to(np.asarray(t.data, dtype=object), out_shape) if t.data.ndim else t.data
        if t.data.ndim and len(out_shape) > 1:
            _same_at_every_position([data], out_shape, f"constant {t.name!r}", node,
                                    POOL_FIX if stage.op == Op.AVGPOOL else PLAN_FIX)
            data = np.ascontiguousarray(data[_first_position(out_shape)])
            formats = t.formats
            if formats is not None and formats.shape:
                fb = [np.broadcast_to(getattr(formats, f), out_shape) for f in
                      ("width", "int_bits", "signed", "rounding", "overflow")]
                _same_at_every_position(fb, out_shape, f"the format of constant {t.name!r}", node)
                formats = Formats(*(np.ascontiguousarray(a[_first_position(out_shape)]) for a in fb))
            return dataclasses.replace(t, shape=data.shape, data=data, formats=formats, bounds=None,
                                       float_data=None)
        return t

    def tail_cores(self, nodes: list[Node], first_input: str) -> list[Graph]:
        """The tail as mini-graphs, one per compute layer (wiring layers join the next one)."""
        g = self.graph
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
        minis = []
        current = first_input
        for group in groups:
            # a reshape keeps the flat order, which is how a vector travels: the core starts after it
            while len(group) > 1 and group[0].op == Op.RESHAPE and not group[0].epilogue \
                    and group[0].inputs[0] == current:
                current = group.pop(0).outputs[0]
            produced = {s.outputs[0] for n in group for s in n.stages()}
            reads = [(n, i) for n in group for s in n.stages() for i in s.inputs
                     if not g.tensor(i).is_constant and i not in produced]
            passed = [(n, i) for n, i in reads if i != current]
            if passed:  # a branch: the tail receives only `current`, the tensors before it are gone
                node, name = passed[0]
                readers = [n.name for n in g.nodes if any(name in s.inputs for s in n.stages())]
                raise RTLBackendError(f"node {node.name!r} reads {name!r}, which the stream pipeline has already "
                                      f"passed on: a branch ({name!r} feeds {', '.join(map(repr, readers))}) that "
                                      f"skips a layer after the last spatial one; those layers run as a chain of "
                                      f"whole-vector cores, each reading the one before, so far; compile with "
                                      f"--arch parallel")
            reads = [i for _, i in reads]
            if set(reads) != {current}:
                raise RTLBackendError(f"node {group[0].name!r}: the stream architecture builds a chain of layers "
                                      f"so far; this layer reads {sorted(set(reads))}; compile with --arch parallel")
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
            c = stream.channels
            hw = stream.beats
            out_order = np.arange(c * hw).reshape(c, hw).T.reshape(-1)
            out_port = self.port(out.name, stream.lane, c, hw, out_order)
        self.size_skips(engines, in_port["beats"])
        out_port["valid"], out_port["data"] = valid, data
        self.drive(ready, f"{out_port['name']}_ready")
        latency, ii, images = predict(engines, in_port["beats"])
        return {"architecture": "stream", "model": self.model, "version": __version__, "source": self.source,
                "clock_ns": self.options.clock_ns, "levels_per_stage": self.options.levels,
                "csd_max_digits": self.options.csd_max_digits, "dsp_min_width": self.options.dsp_min_width,
                "latency": latency, "ii": ii, "ii_images": images, "inputs": [in_port], "outputs": [out_port],
                "engines": engines, "cores": self.cores, "declared": self.declared, "items": m.items,
                "names": dict(self.names.map)}

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

    def global_pool(self, node: Node, stream: _Stream) -> tuple[int, int] | None:
        """A pooling layer with one window per frame and no padding (a global pool, or KWS's
        24x5 kernel of stride 24x5 over a 25x5 frame): its kernel, reduced as the pixels arrive
        (fg_stream_reduce) rather than through a line buffer of the kernel's rows; else None."""
        main = node.stages()[0]
        if main.op not in (Op.MAXPOOL, Op.AVGPOOL) or any(main.attrs["pads"]):
            return None
        geo = _window_of(main, len(self.graph.tensor(stream.name).shape))
        out = _frame(self.graph.tensor(main.outputs[0]).shape)
        if out[1:] != (1, 1) or geo["dilations"] != (1, 1):
            return None
        return tuple(geo["kernel"])

    def reduce_core(self, node: Node, stream: _Stream) -> tuple[Graph, dict]:
        """The core after fg_stream_reduce: a max pool's epilogue on the per-lane maxima, or an
        average pool's sums times its reciprocals (MUL, exactly the pool's value) and epilogue."""
        g = self.graph
        x = g.tensor(stream.name)
        main, *rest = node.stages()
        c = stream.channels
        one = (c, 1) if len(x.shape) == 2 else (c, 1, 1)
        lane = stream.lane
        if main.op == Op.AVGPOOL:
            kh, kw = self.global_pool(node, stream)
            n = kh * kw  # the window's pixels
            lo, hi = lane.min_mantissa, lane.max_mantissa
            width = max(signed_width(n * lo, n * hi) - (0 if lane.signed else 1), 1)
            source = FixedType(width, width - lane.frac_bits, lane.signed)
            op = {"op": 0, "acc_width": width}
        else:
            source = lane
            op = {"op": 1, "acc_width": lane.width}
        x_name = f"{stream.name}.{'sum' if main.op == Op.AVGPOOL else 'max'}"
        tensors = {x_name: dataclasses.replace(x, name=x_name, shape=one, formats=Formats.uniform(one, source),
                                               bounds=None)}
        if main.op == Op.AVGPOOL:
            recip = g.tensor(main.inputs[1])
            tensors[recip.name] = self.position_constant(node, main, recip, one)
            first = Node(main.name, Op.MUL, (x_name, recip.name), main.outputs, {}, (), main.onnx_nodes)
        else:
            first = Node(main.name, Op.MAXPOOL, (x_name,), main.outputs,
                         {"kernel": (1,) * (len(one) - 1), "strides": (1,) * (len(one) - 1),
                          "pads": (0,) * (2 * len(one) - 2), "dilations": (1,) * (len(one) - 1)}, (), main.onnx_nodes)
        stages = [first]
        for s in rest:
            for name in s.inputs:
                t = g.tensor(name)
                if t.is_constant and name not in tensors:
                    tensors[name] = self.position_constant(node, s, t, one)
            stages.append(s)
        for s in stages:
            out = g.tensor(s.outputs[0])
            formats = None
            if s.op in KEEP_FORMATS:
                formats = _slice_formats(out.formats, _first_position(out.shape))
            tensors[out.name] = dataclasses.replace(out, shape=one, formats=formats, bounds=None)
        core = dataclasses.replace(first, outputs=(node.outputs[0],), epilogue=tuple(stages[1:]))
        mini = Graph(f"{self.model}_{self.names(node.name)}", (x_name,), (node.outputs[0],), (core,), tensors)
        mini = size_widths(mini)
        verify(mini)
        return mini, {"lanes": c, "width": lane.width, "signed": lane.signed, "beats": stream.beats,
                      "height": stream.height, "frame_width": stream.width, **op}

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
                 "ops": " + ".join(s.op.value for s in node.stages()), "reuse": reuse, "latency": latency,
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

    def tail(self, nodes: list[Node], collected: _Stream, link: tuple[str, str, str]) -> tuple[dict, tuple]:
        m = self.m
        valid, ready, data = link
        minis = self.tail_cores(nodes, collected.name)
        # the tail's cores keep the tensors' own formats: a core's input port is the container of
        # its input's formats, which is the collected stream's lane type
        reuses = [max(int(self.reuse.get(n.name, 1)) for n in mini.nodes) for mini in minis]
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
                 "ops": " -> ".join(n.op.value for n in nodes), "reuse": reuse, "latency": latency,
                 "beats_in": collected.beats, "beats_out": 1, "pad": None,
                 "window": None, "reduce": None, "collect": collect,
                 "core": ctxs[0] if len(ctxs) == 1 else None, "cores": ctxs,
                 "fifo": {"bits": out_bits, "depth": depth}}
        return entry, (f"{base}_valid", f"{base}_ready", f"{base}_data")


def _model_spec(engines: list[dict]) -> list[dict]:
    """stream_model's engine specs of the stream top's engines (with their names and inputs
    when the engines branch: a graph, else a chain)."""
    branched = any(e["skip"] or len(e["inputs"]) > 1 for e in engines)
    spec = []
    for e in engines:
        pad, w, r = e["pad"], e["window"], e.get("reduce")
        if r is not None:  # a reduction has the timing of its one window (strides: the frame's)
            w = {"height": r["height"], "width": r["frame_width"], "kh": r["kernel"][0], "kw": r["kernel"][1],
                 "sh": r["height"], "sw": r["frame_width"], "dh": 1, "dw": 1, "ii": r["ii"]}
        spec.append({"pad": None if pad is None else (pad["height"], pad["width"], pad["top"], pad["bottom"],
                                                       pad["left"], pad["right"]),
                     "window": None if w is None else (w["height"], w["width"], w["kh"], w["kw"], w["sh"], w["sw"],
                                                       w["dh"], w["dw"], w["ii"]),
                     "collect": None if e["collect"] is None else (e["collect"]["beats"], e["collect"]["ii"]),
                     "latency": e["latency"], "fifo_depth": e["fifo"]["depth"],
                     **({"name": e["name"], "inputs": e["inputs"]} if branched else {})})
    return spec


def fifo_depth(latency: int, reuse: int, window: bool) -> int:
    """An engine FIFO's depth from its core's latency.  A window engine's: latency + 3 (a slot
    is reserved when the window accepts a window's last pixel; the window's register, the core,
    the FIFO's write and the credit's update follow), which also absorbs windows that bunch at
    the ends of rows (at reuse 3 the small CNN's II is 804 with it, 836 with the bare minimum).
    The tail's: a credit for every vector reserved and not yet taken, freed latency + 2 cycles
    after the collector hands it on, vectors leaving at most every ``reuse`` cycles (the
    collector's II): ceil((latency + 2) / reuse), latency + 2 at reuse 1 (a folded tail of
    reuse 640 needs 2, not 646 block-RAM words)."""
    if window:
        return latency + 3
    return -(-(latency + 2) // max(reuse, 1))


MAX_II_IMAGES = 64


def ii_images(engines: list[dict], beats_in: int) -> int:
    """Images a back-to-back run needs before the input's pace is the steady state's: the FIFOs
    can hold a few images' beats ahead of a slower engine (a folded tail of reuse 8 behind a
    5-beat frame paces the input only from the fourth image on).  4, plus every FIFO's slots in
    images, plus one per engine; at most MAX_II_IMAGES."""
    slots = sum(e["fifo"]["depth"] for e in engines)
    return min(MAX_II_IMAGES, 4 + -(-slots // max(beats_in, 1)) + len(engines))


def predict(engines: list[dict], beats_in: int) -> tuple[int, int, int]:
    """(latency_cycles, ii_cycles, images) of the engines by stream_model's cycle model of the
    same modules: ``images`` images back to back (:func:`ii_images`), the output always ready
    (what `finegrain sim` measures; the II between the last two images)."""
    images = ii_images(engines, beats_in)
    return (*timing(_model_spec(engines), beats_in, images), images)


def stream_context(graph: Graph, options: RTLOptions, source: dict, reuse: dict | None = None) -> dict:
    """The stream top of ``graph`` (see the module docstring); ``reuse``: layer name -> reuse factor."""
    try:
        return _StreamBuilder(graph, options, source, reuse).build()
    except UserError:
        raise
    except Exception as err:  # a failure of the backend itself: a clear message, not a traceback
        raise RTLBackendError(f"the stream RTL backend failed on model {graph.name!r} ({type(err).__name__}: {err}); "
                              f"this is a finegrain defect, please report it with the model and plan; compile "
                              f"with --arch parallel meanwhile") from err
