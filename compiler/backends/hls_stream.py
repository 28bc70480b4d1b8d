"""HLS io_stream: the final IR -> a Vitis HLS project whose layers are functions joined by
``hls::stream`` under ``#pragma HLS DATAFLOW`` (HLSOptions.io == "stream", ``--arch stream``).

Streams follow the design of issue 13: a tensor [C, H, W] (or [C, L]) travels as H*W pixels
in raster order, each the C channel values of one position in the tensor's container type
(``hls_types.container``); a vector is one pixel.  Each layer (fused IR node) is one of

* a *window* layer (CONV, MAXPOOL, AVGPOOL over a pixel stream): a line buffer walks the
  padded frame and, per output pixel, hands the window [C][KH][KW] to the parallel kernel
  configured for that window alone (stride 1, no padding, one output pixel), then the
  epilogue runs on the C lanes;
* a *pixel* layer (elementwise ops, a residual Add of two streams, a Concat of channels):
  the stages run on the lanes of each pixel;
* a *whole* layer (dense, reshape, other concats, softmax, anything else): every input pixel is
  gathered into the flat array the parallel stage code reads, the stages run as in
  io_parallel, and the result leaves as pixels.

The values are io_parallel's: the same container types, constants and kernels, per output
pixel.  Per-element formats are per channel in a window or pixel layer: a REQUANTIZE target
(or an elementwise constant) that varies along H/W cannot be written per lane and stops the
build with an error naming the tensor.  The reuse factor of a layer is its pixel loop's II.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .. import __version__
from ..fixed import Rounding
from ..ir import Graph, Node, Op, Tensor
from ..names import CPP_FOLDED, CPP_RESERVED, Names
from .hls_graph import STRATEGY as STRATEGY_GRAPH
from .hls import HLSOptions, LayerArch, _Builder, _onnx_nodes, _window_sum_type
from .hls_types import AP_INT_DEFAULT_MAX_W, HLSBackendError

ELEMENTWISE = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.REQUANTIZE, Op.TABLE})
WINDOWED = frozenset({Op.CONV, Op.MAXPOOL, Op.AVGPOOL})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# what the io_stream templates declare or call besides the names the builder gives
# (the ports keep io_parallel's names unless a tensor is called one of these)
STREAM_LOCALS = frozenset("hls lines lines_t line_rows window_columns padding frame_row frame_column out_row "
                          "out_column beat lane pixel source".split())


def lanes_and_beats(shape: tuple[int, ...]) -> tuple[int, int]:
    """A tensor's pixel width (lanes) and pixel count (beats): [C, *S] -> (C, prod(S)); a vector is one pixel."""
    if len(shape) <= 1:
        return (int(np.prod(shape)), 1)
    return int(shape[0]), int(np.prod(shape[1:]))


def _per_lane(values: np.ndarray) -> bool:
    """Whether an array shaped like a tensor [C, *S] is the same at every position of S."""
    flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    return bool((flat == flat[:, :1]).all())


class _StreamBuilder(_Builder):
    def __init__(self, graph: Graph, options: HLSOptions, source: dict):
        super().__init__(graph, options, source)
        for node in graph.nodes:
            if options.arch(node).strategy == STRATEGY_GRAPH and \
                    any(st.op in (Op.DENSE, Op.CONV, Op.AVGPOOL) for st in node.stages()):
                raise HLSBackendError(
                    f"{_onnx_nodes(node)}: strategy 'adder-graph' (--strategy or --layer-config) writes a layer's "
                    f"sums out as one fully parallel adder graph, which the stream architecture (io_stream, "
                    f"chosen by --arch stream or auto for a large model) does not build; compile with --arch "
                    f"parallel, or give this layer strategy 'latency' or 'resource'")
        self.names = Names(reserved=CPP_RESERVED | STREAM_LOCALS | {self.model},
                           companions=("_mantissas", "_loaded", "_config"), folded=CPP_FOLDED)
        self.streams: dict[str, dict] = {}  # tensor name -> its pixel type and geometry

    # streams --------------------------------------------------------------------------
    def stream(self, name: str) -> dict:
        if name not in self.streams:
            t = self.graph.tensor(name)
            lanes, beats = lanes_and_beats(t.shape)
            ident = self.names(name)
            self.streams[name] = {"tensor": ident, "type": self.type_of(t), "lanes": lanes, "beats": beats,
                                  "size": lanes * beats,
                                  "pixel_t": self.names.derived(f"{ident}_pixel_t"), "onnx": t.onnx_name or name,
                                  "var": self.names.derived(f"{ident}_pixel"),
                                  "param": self.names.derived(f"{ident}_stream"),
                                  "shape": list(t.shape)}
        return self.streams[name]

    # per-lane stages ------------------------------------------------------------------
    def lane_stage(self, node: Node, stage: Node, arch: LayerArch, lanes: int) -> dict:
        """An elementwise stage on the ``lanes`` values of one pixel."""
        g = self.graph
        out = g.tensor(stage.outputs[0])
        if stage.op == Op.REQUANTIZE and out.formats.uniform_type() is None:
            if not all(_per_lane(f) for f in out.formats.fields()):
                raise HLSBackendError(
                    f"{_onnx_nodes(node)}: tensor {out.onnx_name or out.name!r} has per-element formats that vary "
                    f"along its height/width, and the io_stream project applies one format per channel to every "
                    f"pixel; give it one format per channel in the plan, or build with --arch parallel")
            lane_formats = out.formats.take((slice(None),) + (0,) * (len(out.shape) - 1))
            return self.requantize({**self.common(stage), "n": lanes},
                                   replace(out, shape=(lanes,), formats=lane_formats))
        if stage.op == Op.CONCAT:
            parts, offset = [], 0
            for name in stage.inputs:
                t = g.tensor(name)
                parts.append({"x": f"{self.stream(name)['var']}.data", "x_t": self.type_of(t), "n": t.shape[0],
                              "offset": offset})
                offset += t.shape[0]
            return {**self.common(stage), "n": lanes, "kind": "concat_lanes", "parts": parts}
        if stage.op in (Op.ADD, Op.MUL) and g.tensor(stage.inputs[1]).is_constant:
            c = g.tensor(stage.inputs[1])
            kind = "add_const" if stage.op == Op.ADD else "mul_const"
            return {**self.common(stage), "n": lanes, "kind": kind, "c": self.lane_constant(node, c, out, lanes),
                    "c_t": self.type_of(c)}
        if stage.op == Op.CLIP and any(g.tensor(b).data.size > 1 for b in stage.inputs[1:]):
            lo, hi = (g.tensor(b) for b in stage.inputs[1:])  # a quantizer's clamp per channel
            return {**self.common(stage), "n": lanes, "kind": "clip_each",
                    "lo": self.lane_constant(node, lo, out, lanes), "lo_t": self.type_of(lo),
                    "hi": self.lane_constant(node, hi, out, lanes), "hi_t": self.type_of(hi)}
        entry = {**super().stage(node, stage, arch), "n": lanes}
        if entry.get("zero"):  # a sum's always-zero elements, per pixel (none of the lane kinds sums today)
            entry["zero"] = self.lane_zero(node, out, lanes)
        return entry

    def lane_constant(self, node: Node, c: Tensor, out: Tensor, lanes: int) -> str:
        """A const array of constant ``c``'s value in each lane of ``out``'s pixels (one per
        channel, the same at every pixel)."""
        data = np.broadcast_to(np.asarray(c.data), out.shape)
        if not _per_lane(data):
            raise HLSBackendError(
                f"{_onnx_nodes(node)}: constant {c.onnx_name or c.name!r} varies along the height/width of "
                f"{out.onnx_name or out.name!r}, and the io_stream project applies one value per channel to "
                f"every pixel; build with --arch parallel")
        return self.constant_data(c, data.reshape(lanes, -1)[:, 0], self.names.derived(f"{self.names(c.name)}_lanes"))

    def lane_zero(self, node: Node, out: Tensor, lanes: int) -> dict | None:
        """The lanes of ``out``'s pixels that are always 0 by their bounds (`hls.SUM_KINDS`), cleared
        after the kernel; the io_stream project clears the same lanes in every pixel."""
        pruned = out.formats.pruned.reshape(lanes, -1)  # [channel][pixel]
        if not pruned.any():
            return None
        if not (pruned == pruned[:, :1]).all():
            raise HLSBackendError(
                f"{_onnx_nodes(node)}: tensor {out.onnx_name or out.name!r} has elements that are always 0 by their "
                f"bounds at some pixels of a channel only, and the io_stream project clears the same channels in "
                f"every pixel; build with --arch parallel")
        index = np.flatnonzero(pruned[:, 0])
        return {"index": self.index_array(f"{self.names(out.name)}_zero_lanes", index,
                                          f"channels of {out.name} that are always 0 (by their bounds)"),
                "count": int(index.size)}

    def common(self, stage: Node) -> dict:
        x, out = self.graph.tensor(stage.inputs[0]), self.graph.tensor(stage.outputs[0])
        return {"x": self.names(x.name), "x_t": self.type_of(x), "y": self.names(out.name), "y_t": self.type_of(out),
                "n": int(np.prod(out.shape)), "name": self.names(stage.name)}

    def window_stage(self, node: Node, stage: Node, arch: LayerArch) -> tuple[dict, dict]:
        """The main stage of a window layer as the parallel kernel over one window, and the
        line buffer's geometry."""
        g = self.graph
        x, out = g.tensor(stage.inputs[0]), g.tensor(stage.outputs[0])
        a = stage.attrs
        two_d = len(x.shape) == 3
        c, h, w = x.shape[0], (x.shape[1] if two_d else 1), x.shape[-1]
        oh, ow = (out.shape[1] if two_d else 1), out.shape[-1]
        if stage.op == Op.CONV:
            kernel = tuple(g.tensor(stage.inputs[1]).shape[2:])
        else:
            kernel = tuple(a["kernel"])
        kh, kw = (kernel if two_d else (1, kernel[0]))
        sh, sw = (tuple(a["strides"]) if two_d else (1, a["strides"][0]))
        dh, dw = (tuple(a.get("dilations", (1, 1))) if two_d else (1, a.get("dilations", (1,))[0]))
        pads = a["pads"]
        pt, pl, pb, pr = (pads if two_d else (0, pads[0], 0, pads[1]))
        frame = {"channels": c, "in_height": h, "in_width": w, "pad_top": pt, "pad_left": pl, "pad_bottom": pb,
               "pad_right": pr, "kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
               "dilation_h": dh, "dilation_w": dw, "out_height": oh, "out_width": ow}
        geometry = {"name": self.names.derived(f"{self.names(node.name)}_frame"), "cfg": frame}
        for size, pad0, pad1, k, s, d, o, axis in ((h, pt, pb, kh, sh, dh, oh, "height"),
                                                   (w, pl, pr, kw, sw, dw, ow, "width")):
            if (size + pad0 + pad1 - (k - 1) * d - 1) // s + 1 != o:
                raise HLSBackendError(f"{_onnx_nodes(node)}: its output {axis} {o} is not what its padded input "
                                      f"gives ({size} + {pad0} + {pad1}, kernel {k}, stride {s}); the io_stream "
                                      f"project reads windows of the padded frame only: build with --arch parallel")
        window = {"in_height": kh, "in_width": kw, "out_height": 1, "out_width": 1, "kernel_h": kh, "kernel_w": kw,
                  "stride_h": 1, "stride_w": 1, "pad_top": 0, "pad_left": 0, "pad_bottom": 0, "pad_right": 0}
        name = self.names(stage.name)
        common = {**self.common(stage), "x": self.names.derived(f"{name}_window"), "n": out.shape[0]}
        if stage.op == Op.CONV:
            wt, b = g.tensor(stage.inputs[1]), g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
            cfg = {"in_channels": c, "out_channels": out.shape[0], **window, "dilation_h": 1, "dilation_w": 1,
                   "groups": a["groups"], "reuse": arch.reuse_factor}
            entry = {**common, "kind": "conv2d", "cfg": cfg, "w": self.constant(wt), "w_t": self.type_of(wt, "weight"),
                     "b": self.constant(b) if b is not None else None,
                     "b_t": self.type_of(b, "bias") if b is not None else None,
                     "reuse": arch.reuse_factor, "strategy": arch.strategy}
            return {**entry, "zero": self.lane_zero(node, out, out.shape[0])}, {**geometry, "pad": "zero"}
        if stage.op == Op.MAXPOOL:
            cfg = {"channels": c, **window, "dilation_h": 1, "dilation_w": 1}
            return {**common, "kind": "maxpool2d", "cfg": cfg}, {**geometry, "pad": "lowest"}
        r = g.tensor(stage.inputs[1])
        per_pixel = np.asarray(r.data).reshape(c, oh * ow).T  # [pixel][channel]: a pixel's reciprocals in a row
        ident = self.constant_data(r, per_pixel, self.names.derived(f"{self.names(r.name)}_by_pixel"))
        sum_t = self.named_type(f"{name}_sum_t", _window_sum_type(x, kh * kw), f"window sum of {stage.name}")
        entry = {**common, "kind": "avgpool2d", "cfg": {"channels": c, **window}, "r_t": self.type_of(r),
                 "sum_t": sum_t, "r": f"{ident} + (out_row * {ow} + out_column) * {c}",  # this pixel's reciprocals
                 "zero": self.lane_zero(node, out, out.shape[0])}
        return entry, {**geometry, "pad": "zero"}

    # layers ---------------------------------------------------------------------------
    def layer_kind(self, node: Node) -> str:
        x = self.graph.tensor(node.inputs[0])
        if node.op in WINDOWED and len(x.shape) in (2, 3):
            return "window"
        if node.op in ELEMENTWISE or (node.op in (Op.ADD, Op.MUL) and self.graph.tensor(node.inputs[1]).is_constant):
            return "pixel"
        if node.op in (Op.ADD, Op.MUL) and all(self.graph.tensor(n).shape == x.shape for n in node.inputs):
            return "pixel"  # a residual sum or a gate, pixel by pixel as both streams arrive
        if node.op == Op.CONCAT and node.attrs["axis"] == 0 and len(x.shape) > 1 and \
                all(self.graph.tensor(n).shape[1:] == x.shape[1:] for n in node.inputs):
            return "pixel"  # channels side by side: each pixel's lanes one after the other
        return "whole"

    def layer(self, node: Node) -> dict:
        g = self.graph
        arch = self.options.arch(node)
        kind = self.layer_kind(node)
        out = g.tensor(node.outputs[0])
        lanes = lanes_and_beats(out.shape)[0]
        stages, buffers, geometry = [], [], None
        for k, stage in enumerate(node.stages()):
            if kind == "whole":
                entry = self.stage(node, stage, arch)
            elif kind == "window" and k == 0:
                entry, geometry = self.window_stage(node, stage, arch)
            else:
                entry = self.lane_stage(node, stage, arch, lanes)
            if kind == "pixel" and k == 0:
                entry["x"] = f"{self.stream(stage.inputs[0])['var']}.data"
                if entry["kind"] in ("add", "mul"):
                    entry["b"] = f"{self.stream(stage.inputs[1])['var']}.data"
            stages.append(entry)
            t = g.tensor(stage.outputs[0])
            size = int(np.prod(t.shape)) if kind == "whole" else lanes_and_beats(t.shape)[0]
            buffers.append({"name": entry["y"], "type": self.type_of(t), "size": size})
        if kind != "whole":  # the last stage writes the output pixel
            buffers.pop()
            stages[-1]["y"] = f"{self.stream(node.outputs[0])['var']}.data"
        used = {m for s in stages for v in _strings(s) for m in _IDENT.findall(v)}
        return {"name": self.names(node.name), "onnx": ", ".join(node.onnx_nodes) or node.name,
                "ops": " + ".join(s.kind for s in node.stages()), "kind": kind, "stages": stages,
                "buffers": buffers, "geometry": geometry, "strategy": arch.strategy,
                # only a layer with multipliers is folded (as io_parallel's II counts DENSE and CONV only)
                "reuse": arch.reuse_factor if node.op in (Op.DENSE, Op.CONV) else 1,
                "constants": [c for c in self.constants.values() if c["mantissas"] and c["name"] in used],
                "window": stages[0]["x"] if kind == "window" else None,
                "window_size": (geometry["cfg"]["channels"] * geometry["cfg"]["kernel_h"] * geometry["cfg"]["kernel_w"]
                                if geometry else None),
                "inputs": [], "outputs": []}

    def cycles(self, layer: dict) -> int:
        """Roughly the cycles a layer takes per sample: its pixel loop's iterations times its II."""
        if layer["geometry"] is not None:
            geo = layer["geometry"]["cfg"]
            frame = (geo["in_height"] + geo["pad_top"] + geo["pad_bottom"]) * \
                (geo["in_width"] + geo["pad_left"] + geo["pad_right"])
            return frame * layer["reuse"]
        # a whole layer reads, computes (a dense kernel in `reuse` steps) and writes
        return max(s["beats"] for s in layer["inputs"] + layer["outputs"]) + layer["reuse"]

    def build(self) -> dict:
        g = self.graph
        for name in (*g.inputs, *g.outputs):
            self.stream(name)
        layers = [self.layer(node) for node in g.nodes]
        widest = max((self.check_width(node, s) for node, layer in zip(g.nodes, layers) for s in layer["stages"]),
                     default=AP_INT_DEFAULT_MAX_W)
        readers: dict[str, list[tuple[int, int]]] = {}  # tensor -> (layer, input position) of each read
        for i, node in enumerate(g.nodes):
            if len(node.outputs) != 1:
                raise HLSBackendError(f"{_onnx_nodes(node)}: the io_stream project streams one output per layer")
            for k, name in enumerate(node.inputs):
                if not g.tensor(name).is_constant:
                    readers.setdefault(name, []).append((i, k))
        channels, fanouts = [], {}
        for name in (*g.inputs, *(node.outputs[0] for node in g.nodes)):
            s = self.stream(name)
            is_input = name in g.inputs
            ends = readers.get(name, []) + ([None] if name in g.outputs else [])  # None: the output port
            if is_input and name in g.outputs:
                raise HLSBackendError(f"graph input {s['onnx']!r} is also a graph output; the io_stream top takes "
                                      f"each port once: build with --arch parallel")
            if is_input:
                source = s["tensor"]
            elif ends == [None]:
                source = s["tensor"]  # a layer writes the output port itself
            else:
                source = s["param"]
                channels.append({**s, "name": source, "depth": 2})
            if len(ends) == 1 and ends[0] is not None:
                targets = [source]
            elif len(ends) == 1 and not is_input:
                targets = [source]
            else:  # several readers, or a graph input that is an output: one copy each
                targets = []
                for end in ends:
                    if end is None:
                        targets.append(s["tensor"])
                    else:
                        targets.append(self.names.derived(f"{s['tensor']}_to_{layers[end[0]]['name']}"))
                        # a copy may wait while the other path makes its first pixels: room for a whole tensor
                        channels.append({**s, "name": targets[-1], "depth": s["beats"]})
                fanouts[name] = {**s, "name": self.names.derived(f"{s['tensor']}_fanout"), "input": source,
                                 "outputs": targets}
            for end, target in zip(ends, targets):
                if end is not None:
                    layers[end[0]]["inputs"].append({**s, "stream": target, "position": end[1]})
            if not is_input:
                producer = next(i for i, node in enumerate(g.nodes) if node.outputs[0] == name)
                layers[producer]["outputs"].append({**s, "stream": source})
        for layer in layers:
            layer["inputs"].sort(key=lambda p: p["position"])
            taken = set()
            for p in layer["inputs"]:  # a tensor read twice comes in on two streams
                p["first"] = p["param"] not in taken
                if not p["first"]:
                    p["param"] = self.names.derived(p["param"])
                taken.add(p["param"])
            layer["arrays"] = list({p["tensor"]: p for p in layer["inputs"]}.values())  # a whole layer's inputs
        # the DATAFLOW region in graph order: a tensor's copies right after the layer that makes it
        calls = [{"fanout": fanouts[n]} for n in g.inputs if n in fanouts]
        for node, layer in zip(g.nodes, layers):
            calls.append({"layer": layer})
            if node.outputs[0] in fanouts:
                calls.append({"fanout": fanouts[node.outputs[0]]})
        # a port's values, flat, in the testbench
        ports_in, ports_out = ([{**self.streams[n], "name": self.streams[n]["tensor"],
                                 "flat": self.names.derived(f"{self.streams[n]['tensor']}_flat")} for n in names]
                               for names in (g.inputs, g.outputs))
        return {
            "model": self.model, "version": __version__, "source": self.source, "io": "io_stream",
            "part": self.options.part, "clock_ns": self.options.clock_ns,
            "ii": max(self.cycles(layer) for layer in layers),
            "ap_int_max_w": -(-widest // 1024) * 1024 if widest > AP_INT_DEFAULT_MAX_W else None,
            "inputs": ports_in, "outputs": ports_out, "layers": layers, "channels": channels, "calls": calls,
            "graphs": [],  # adder graphs are parallel io only (refused above)
            "pixels": list({s["pixel_t"]: s for s in self.streams.values()}.values()),
            "types": list(self.types.values()), "constants": list(self.constants.values()),
            "library_types": any(t.rounding == Rounding.CEIL for t in self.fixed.values()),
            "names": dict(self.names.map),
        }


def _strings(entry) -> list[str]:
    """Every string value of a stage entry (nested dicts and lists included)."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [s for v in entry.values() for s in _strings(v)]
    if isinstance(entry, list):
        return [s for v in entry for s in _strings(v)]
    return []


def hls_stream_context(graph: Graph, options: HLSOptions, source: dict) -> dict:
    """The plain dict the io_stream templates render."""
    return _StreamBuilder(graph, options, source).build()
