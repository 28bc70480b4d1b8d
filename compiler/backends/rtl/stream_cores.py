"""The mini-graph each engine's core computes (stream.py): a layer's node over one window of
its stream (or one pixel of each stream it joins), or over a global pool's per-lane sums or
maxima (fg_stream_reduce), with every exact tensor sized again from the window's formats and
the formats and constants the plan sets checked to be the same at every position.

:class:`_CoreGraphs` is a part of stream.py's ``_StreamBuilder`` (a base class): it uses the
builder's graph, top name (``model``) and names."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...fixed import FixedType, Formats
from ...ir import Graph, Node, Op, Tensor, verify
from ...passes.size_widths import size_widths
from .emitter import signed_width
from .stream_frames import (KEEP_FORMATS, PLAN_FIX, POOL_FIX, WINDOW_OPS, _channel_unions, _first_position, _frame,
                            _same_at_every_position, _slice_formats, _Stream, _window_of)


class _CoreGraphs:
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
