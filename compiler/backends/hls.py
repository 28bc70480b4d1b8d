"""HLS C++ backend: the final IR -> a Vivado/Vitis HLS project (io_parallel; io_stream in hls_stream.py).

The backend decides nothing numeric: it names things, picks for every tensor one
*container* type that holds each of its elements exactly (so storing a value never changes
it), and lists the kernel calls.  Values change only where the IR says so: REQUANTIZE (per
element format, with its rounding and overflow modes) and the table look-ups.  Templates in
templates/hls/ lay the context out; the kernels live in templates/hls/finegrain/*.h, which
are copied into each project.

Accumulation is exact by construction: an accumulator's container holds its final value,
and its WRAP overflow makes any intermediate wrap-around cancel out.

Types, constants and ap_int's width limits: hls_types.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..errors import UserError
from ..fixed import FixedType, Rounding
from ..ir import Graph, LookupTable, Node, Op, Tensor, broadcast_index
from ..mantissa import rescale
from ..names import CPP_FOLDED, CPP_RESERVED, CPP_TOP_PREFIXES, FILTERS, Names
from ..resources import data_folder
from .hls_graph import STRATEGY as STRATEGY_GRAPH, GraphWriter
from .hls_types import (AP_INT_DEFAULT_MAX_W, CType, HLSBackendError, constant_entry, container, ctype,
                        kernel_bits)

TEMPLATES = data_folder("templates", "hls")
LIBRARY = TEMPLATES / "finegrain"
STRATEGIES = ("latency", "resource", "adder-graph")  # adder-graph: backends/hls_graph.py

# Kernels that accumulate in their output's container type, whose fraction is the kept elements'.
# An element that is 0 by its exact bounds has no format, yet its products can lie below that
# fraction (constant inputs whose products cancel), which the accumulation would truncate: such
# elements are cleared after the kernel (`_Builder.stage`), as the emulator and the RTL hold them.
SUM_KINDS = ("dense", "conv1d", "conv2d", "avgpool1d", "avgpool2d")


@dataclass(frozen=True)
class LayerArch:
    reuse_factor: int = 1
    strategy: str = "latency"

    def __post_init__(self):
        if not isinstance(self.reuse_factor, int) or isinstance(self.reuse_factor, bool) or self.reuse_factor < 1:
            raise UserError(f"reuse_factor must be a positive integer, got {self.reuse_factor!r}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy == STRATEGY_GRAPH and self.reuse_factor != 1:
            raise UserError(f"strategy 'adder-graph' writes a layer's sums out as one adder per statement, all at "
                            f"once, which has no reuse factor; got reuse_factor {self.reuse_factor}: use reuse factor "
                            f"1 with it, or strategy 'latency' or 'resource' to fold the layer")


@dataclass(frozen=True)
class HLSOptions:
    part: str
    clock_ns: float = 5.0
    default: LayerArch = LayerArch()
    layers: dict = field(default_factory=dict)  # layer (IR node) name -> LayerArch
    io: str = "parallel"  # "stream": hls::stream between layers, DATAFLOW (BuildConfig.architecture)
    adder_slack: int | None = None  # strategy adder-graph: levels beyond a graph's least depth (None: any)

    def arch(self, node: Node) -> LayerArch:
        return self.layers.get(node.name) or self.layers.get(node.onnx_nodes[0] if node.onnx_nodes else "") \
            or self.default


# --- context -----------------------------------------------------------------------------


class _Builder:
    def __init__(self, graph: Graph, options: HLSOptions, source: dict):
        self.graph = graph
        self.options = options
        self.model = top_name(graph)
        # FINEGRAIN_CONSTANT declares NAME_mantissas and NAME_loaded beside NAME; a stage's
        # geometry is NAME_config
        self.names = Names(reserved=CPP_RESERVED | {self.model}, companions=("_mantissas", "_loaded", "_config"),
                           folded=CPP_FOLDED)
        self.types: dict[str, dict] = {}  # ident -> {name, ctype, comment}
        self.tensor_types: dict[str, str] = {}  # tensor name -> its type's ident
        self.fixed: dict[str, FixedType] = {}  # ident -> the FixedType it names
        self.constants: dict[str, dict] = {}  # ident -> constant entry
        self.tensor_constants: dict[tuple, str] = {}  # (tensor name, shape broadcast to or None) -> ident
        self.source = source
        self.graphs: list[dict] = []  # stages written as adder graphs, for <model>_graphs.h

    # types ----------------------------------------------------------------------------
    def type_of(self, tensor: Tensor, role: str = "") -> str:
        if tensor.name not in self.tensor_types:
            name = self.tensor_types[tensor.name] = self.names.derived(f"{self.names(tensor.name)}_t")
            t = container(tensor.formats, tensor.onnx_name or tensor.name)
            uniform = tensor.formats.uniform_type()
            if uniform is not None and uniform.width == t.width and uniform.int_bits == t.int_bits \
                    and uniform.signed == t.signed:
                t = uniform  # the plan's own type, with its modes
            self.fixed[name] = t
            self.types[name] = {"name": name, "ctype": ctype(t),
                                "comment": f"{role or tensor.kind.value} {tensor.name}: {tensor.formats.summary()}"}
        return self.tensor_types[tensor.name]

    def named_type(self, name: str, t: FixedType, comment: str) -> str:
        """A new type ``name`` (made unique), for one use."""
        name = self.names.derived(name)
        self.fixed[name] = t
        self.types[name] = {"name": name, "ctype": ctype(t), "comment": comment}
        return name

    # constants ------------------------------------------------------------------------
    def constant(self, tensor: Tensor, full_shape: tuple[int, ...] | None = None) -> str:
        """A const array of the tensor's values (broadcast to ``full_shape`` if given)."""
        key = (tensor.name, None if full_shape is None else tuple(full_shape))
        if key in self.tensor_constants:
            return self.tensor_constants[key]
        ident = self.names(tensor.name)
        data = np.asarray(tensor.data)
        if full_shape is not None:
            ident = self.names.derived(f"{ident}_full")
            data = np.broadcast_to(data, full_shape)
        self.tensor_constants[key] = ident
        return self.constant_data(tensor, data, ident)

    def constant_data(self, tensor: Tensor, data: np.ndarray, ident: str) -> str:
        """A const array ``ident`` (an identifier not yet used) of ``data``, the mantissas of
        the constant ``tensor`` or an arrangement of them, in the tensor's container type."""
        type_name = self.type_of(tensor, tensor.kind.value)
        t = container(tensor.formats, tensor.onnx_name or tensor.name)
        mantissas = [int(v) for v in rescale(data, t.frac_bits - tensor.data_frac).ravel()]
        self.constants[ident] = constant_entry(ident, type_name, t, mantissas,
                                                f"{tensor.kind.value} {tensor.onnx_name or tensor.name}, shape "
                                                f"{list(data.shape)}, {tensor.formats.summary()}")
        return ident

    def codebook(self, w: Tensor) -> dict | None:
        """A weight with one codebook for the whole layer (a plan ``codebook`` entry without
        ``axis``) as its distinct non-zero values (``centres``, in the weight's container
        type) and each weight's index into them (-1: zero), for finegrain::dense_codebook;
        None for any other weight.  Centres no weight uses are left out (k-means may leave
        one empty; a zero centre is the index -1)."""
        if w.scheme is None or w.scheme.get("kind") != "codebook" or len(w.scheme["codebooks"]) != 1:
            return None
        data = np.asarray(w.data).ravel()
        centres = sorted({int(v) for v in data if v != 0})
        if not centres:
            return None
        ident = self.names(w.name)
        t = container(w.formats, w.onnx_name or w.name)
        position = {v: i for i, v in enumerate(centres)}
        index = [position[int(v)] if v != 0 else -1 for v in data]
        name = w.onnx_name or w.name
        mantissas = [int(v) for v in rescale(np.asarray(centres, dtype=object), t.frac_bits - w.data_frac)]
        centres_ident = self.names.derived(f"{ident}_centres")
        self.constants[centres_ident] = constant_entry(
            centres_ident, self.type_of(w, "weight"), t, mantissas,
            f"codebook of weight {name}: its {len(centres)} distinct non-zero values")
        index_ident = self.index_array(f"{ident}_index", index, f"codebook of weight {name}: each weight's centre, "
                                                                f"shape {list(w.shape)} (-1: zero, no term)")
        return {"centres": centres_ident, "index": index_ident, "n_centres": len(centres)}

    def index_array(self, ident: str, values, comment: str) -> str:
        """A new int array ``ident`` (made unique)."""
        ident = self.names.derived(ident)
        values = [str(int(v)) for v in values]
        self.constants[ident] = {"name": ident, "type": "int", "size": len(values), "values": values,
                                 "comment": comment, "mantissas": False, "words": None}
        return ident

    def table(self, ident: str, table: LookupTable, comment: str) -> tuple[str, str, str]:
        ident = self.names.derived(ident)
        code_t = self.named_type(f"{ident}_in_t", table.input, f"{comment}: table input (its modes apply)")
        out_t = self.named_type(f"{ident}_out_t", table.output, f"{comment}: table entries")
        self.constants[ident] = constant_entry(ident, out_t, table.output, [int(v) for v in table.values],
                                                f"{comment}: {table}")
        return ident, code_t, out_t

    # stages ---------------------------------------------------------------------------
    def stage(self, node: Node, stage: Node, arch: LayerArch) -> dict:
        """The stage's kernel call and, for a sum (`SUM_KINDS`), ``zero``: its output's elements
        that are always 0 (pruned by their bounds), cleared after it."""
        entry = self.kernel(node, stage, arch)
        out = self.graph.tensor(stage.outputs[0])
        if entry["kind"] in SUM_KINDS and out.formats.pruned.any():
            pruned = np.flatnonzero(out.formats.pruned.ravel())
            entry["zero"] = {"index": self.index_array(f"{entry['y']}_zero_index", pruned,
                                                       f"elements of {out.name} that are always 0 (by their bounds)"),
                             "count": int(pruned.size)}
        return entry

    def kernel(self, node: Node, stage: Node, arch: LayerArch) -> dict:
        g = self.graph
        out = g.tensor(stage.outputs[0])
        x = g.tensor(stage.inputs[0])
        common = {"x": self.names(x.name), "x_t": self.type_of(x), "y": self.names(out.name),
                  "y_t": self.type_of(out), "n": int(np.prod(out.shape)), "name": self.names(stage.name)}
        op = stage.op
        if arch.strategy == STRATEGY_GRAPH and op in (Op.DENSE, Op.CONV, Op.AVGPOOL):
            entry = GraphWriter(self, node, stage, common, self.options.adder_slack).entry()
            self.graphs.append(entry)
            return entry
        if op == Op.DENSE:
            w, b = g.tensor(stage.inputs[1]), g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
            n_out, n_in = w.shape
            codebook = self.codebook(w) if arch.reuse_factor == 1 else None
            return {**common, "kind": "dense", "codebook": codebook, "w": None if codebook else self.constant(w),
                    "w_t": self.type_of(w, "weight"), "b": self.constant(b) if b is not None else None,
                    "b_t": self.type_of(b, "bias") if b is not None else None,
                    "n_in": n_in, "n_out": n_out, "rows": int(np.prod(x.shape[:-1])),
                    "reuse": arch.reuse_factor, "strategy": arch.strategy}
        if op == Op.CONV:
            w, b = g.tensor(stage.inputs[1]), g.tensor(stage.inputs[2]) if len(stage.inputs) > 2 else None
            a = stage.attrs
            spatial = len(x.shape) - 1
            cfg = {"in_channels": x.shape[0], "out_channels": out.shape[0], "groups": a["groups"],
                   "reuse": arch.reuse_factor}
            if spatial == 2:
                cfg.update(in_height=x.shape[1], in_width=x.shape[2], out_height=out.shape[1], out_width=out.shape[2],
                           kernel_h=w.shape[2], kernel_w=w.shape[3], stride_h=a["strides"][0], stride_w=a["strides"][1],
                           pad_top=a["pads"][0], pad_left=a["pads"][1], pad_bottom=a["pads"][2], pad_right=a["pads"][3],
                           dilation_h=a["dilations"][0], dilation_w=a["dilations"][1])
            else:
                cfg.update(in_length=x.shape[1], out_length=out.shape[1], kernel=w.shape[2], stride=a["strides"][0],
                           pad_left=a["pads"][0], pad_right=a["pads"][1], dilation=a["dilations"][0])
            return {**common, "kind": f"conv{spatial}d", "cfg": cfg, "w": self.constant(w),
                    "w_t": self.type_of(w, "weight"), "b": self.constant(b) if b is not None else None,
                    "b_t": self.type_of(b, "bias") if b is not None else None,
                    "reuse": arch.reuse_factor, "strategy": arch.strategy}
        if op == Op.RELU:
            return {**common, "kind": "relu"}
        if op == Op.LEAKY_RELU:
            alpha = g.tensor(stage.inputs[1])
            return {**common, "kind": "leaky_relu", "alpha": self.scalar(alpha, node), "alpha_t": self.type_of(alpha)}
        if op == Op.CLIP:
            lo, hi = g.tensor(stage.inputs[1]), g.tensor(stage.inputs[2])
            bounds = {"lo_t": self.type_of(lo), "hi_t": self.type_of(hi)}
            if lo.data.size == 1 and hi.data.size == 1:
                return {**common, **bounds, "kind": "clip", "lo": self.scalar(lo, node), "hi": self.scalar(hi, node)}
            # a quantizer's clamp per channel: each element's bounds
            lo_c, hi_c = (self.constant(t, full_shape=out.shape if t.shape != out.shape else None) for t in (lo, hi))
            return {**common, **bounds, "kind": "clip_each", "lo": lo_c, "hi": hi_c}
        if op == Op.REQUANTIZE:
            return self.requantize(common, out)
        if op in (Op.ADD, Op.MUL):
            return self.elementwise(node, stage, common, out)
        if op in (Op.MAXPOOL, Op.AVGPOOL):
            return self.pool(stage, common, x, out)
        if op == Op.RESHAPE:
            return {**common, "kind": "copy"}
        if op == Op.TRANSPOSE:
            perm = stage.attrs["perm"]
            src = np.transpose(np.arange(int(np.prod(x.shape))).reshape(x.shape), perm).ravel()
            index = self.index_array(f"{common['name']}_src", src,
                                     f"source index of each output element of {stage.name}")
            return {**common, "kind": "permute", "index": index}
        if op == Op.CONCAT:
            return self.concat(stage, common, out)
        if op == Op.TABLE:
            table, code_t, _ = self.table(f"{common['name']}_table", stage.attrs["table"],
                                          f"{stage.attrs['function']} {stage.name}")
            return {**common, "kind": "lookup", "table": table, "code_t": code_t,
                    "table_size": stage.attrs["table"].values.size}
        if op == Op.SOFTMAX:
            return self.softmax(node, stage, common, x)
        raise HLSBackendError(f"{_onnx_nodes(node)}: the HLS backend has no kernel for {op.value}")

    def scalar(self, tensor: Tensor, node: Node) -> str:
        if tensor.data.size != 1:
            raise HLSBackendError(f"{_onnx_nodes(node)}: constant {tensor.onnx_name or tensor.name!r} of shape "
                                  f"{list(tensor.shape)} must be a single value for the HLS backend")
        return self.constant(tensor)

    def requantize(self, common: dict, out: Tensor) -> dict:
        f = out.formats
        if f.uniform_type() is not None:
            return {**common, "kind": "requantize"}
        groups = []
        for k, t in enumerate(t for t in f.distinct() if t is not None):
            mask = ((f.width == t.width) & (f.int_bits == t.int_bits) & (f.signed == t.signed)
                    & (f.rounding == int(t.rounding)) & (f.overflow == int(t.overflow))).ravel()
            elem_t = self.named_type(f"{common['y']}_e{k}_t", t, f"elements of {out.name} in format {t}")
            index = self.index_array(f"{common['y']}_e{k}_index", np.flatnonzero(mask),
                                     f"elements of {out.name} in format {t}")
            groups.append({"elem_t": elem_t, "index": index, "count": int(mask.sum())})
        pruned = None
        if f.pruned.any():
            pruned = {"index": self.index_array(f"{common['y']}_pruned_index", np.flatnonzero(f.pruned.ravel()),
                                                f"pruned elements of {out.name} (always zero)"),
                      "count": int(f.pruned.sum())}
        return {**common, "kind": "requantize_elements", "groups": groups, "pruned": pruned}

    def elementwise(self, node: Node, stage: Node, common: dict, out: Tensor) -> dict:
        g = self.graph
        a, b = g.tensor(stage.inputs[0]), g.tensor(stage.inputs[1])
        if b.is_constant:
            c = self.constant(b, full_shape=out.shape if b.shape != out.shape else None)
            kind = "add_const" if stage.op == Op.ADD else "mul_const"
            return {**common, "kind": kind, "c": c, "c_t": self.type_of(b)}
        kind = "add" if stage.op == Op.ADD else "mul"
        entry = {**common, "kind": kind, "b": self.names(b.name), "b_t": self.type_of(b)}
        if a.shape == out.shape and b.shape == out.shape:
            return entry
        # broadcast (a squeeze-and-excitation scale [C, 1, 1] on [C, H, W]): each output
        # element's operands by index maps, compile-time constants
        index = {}
        for side, t in (("a", a), ("b", b)):
            index[side] = self.index_array(f"{common['name']}_{side}_index", broadcast_index(t.shape, out.shape),
                                           f"element of {t.name} each output element of {stage.name} reads")
        return {**entry, "kind": f"{kind}_indexed", "a_index": index["a"], "b_index": index["b"]}

    def pool(self, stage: Node, common: dict, x: Tensor, out: Tensor) -> dict:
        a = stage.attrs
        spatial = len(x.shape) - 1
        if spatial == 2:
            cfg = {"channels": x.shape[0], "in_height": x.shape[1], "in_width": x.shape[2],
                   "out_height": out.shape[1], "out_width": out.shape[2], "kernel_h": a["kernel"][0],
                   "kernel_w": a["kernel"][1], "stride_h": a["strides"][0], "stride_w": a["strides"][1],
                   "pad_top": a["pads"][0], "pad_left": a["pads"][1], "pad_bottom": a["pads"][2],
                   "pad_right": a["pads"][3]}
            if stage.op == Op.MAXPOOL:
                dil = a.get("dilations", (1, 1))
                cfg.update(dilation_h=dil[0], dilation_w=dil[1])
        else:
            cfg = {"channels": x.shape[0], "in_length": x.shape[1], "out_length": out.shape[1],
                   "kernel": a["kernel"][0], "stride": a["strides"][0], "pad_left": a["pads"][0],
                   "pad_right": a["pads"][1]}
            if stage.op == Op.MAXPOOL:
                cfg.update(dilation=a.get("dilations", (1,))[0])
        entry = {**common, "kind": f"{'max' if stage.op == Op.MAXPOOL else 'avg'}pool{spatial}d", "cfg": cfg}
        if stage.op == Op.AVGPOOL:
            r = self.graph.tensor(stage.inputs[1])
            sum_t = self.named_type(f"{common['name']}_sum_t", _window_sum_type(x, int(np.prod(a["kernel"]))),
                                    f"window sum of {stage.name}")
            entry.update(r=self.constant(r), r_t=self.type_of(r), sum_t=sum_t)
        return entry

    def concat(self, stage: Node, common: dict, out: Tensor) -> dict:
        axis = stage.attrs["axis"]
        parts, offset = [], 0
        positions = np.arange(int(np.prod(out.shape))).reshape(out.shape)
        for k, name in enumerate(stage.inputs):
            t = self.graph.tensor(name)
            sl = [slice(None)] * len(out.shape)
            sl[axis] = slice(offset, offset + t.shape[axis])
            offset += t.shape[axis]
            index = self.index_array(f"{common['name']}_dst{k}", positions[tuple(sl)].ravel(),
                                     f"where each element of {name} goes in {out.name}")
            parts.append({"x": self.names(t.name), "x_t": self.type_of(t), "index": index,
                          "n": int(np.prod(t.shape))})
        return {**common, "kind": "concat", "parts": parts}

    def softmax(self, node: Node, stage: Node, common: dict, x: Tensor) -> dict:
        if stage.attrs["axis"] != len(x.shape) - 1 or len(x.shape) != 1:
            raise HLSBackendError(f"{_onnx_nodes(node)}: the HLS backend supports softmax over a vector only")
        name = common["name"]
        xt = container(x.formats, x.name)
        d_t = CType.for_range(xt.min_mantissa - xt.max_mantissa, 0, xt.frac_bits) or FixedType(1, 1, True)
        exp_table, inv_table = stage.attrs["exp_table"], stage.attrs["inv_table"]
        n = x.shape[0]
        sum_t = FixedType.for_range(0, n * int(exp_table.values.max()), exp_table.output.frac_bits) \
            or exp_table.output
        e, code_t, e_t = self.table(f"{name}_exp_table", exp_table, f"softmax {stage.name} exp")
        r, icode_t, r_t = self.table(f"{name}_inv_table", inv_table, f"softmax {stage.name} 1/sum")
        return {**common, "kind": "softmax",
                "d_t": self.named_type(f"{name}_d_t", d_t, f"x - max(x) in {stage.name} (exact)"),
                "sum_t": self.named_type(f"{name}_sum_t", sum_t, f"sum of exps in {stage.name} (exact)"),
                "code_t": code_t, "e_t": e_t, "icode_t": icode_t, "r_t": r_t, "exp_table": e, "inv_table": r,
                "exp_size": exp_table.values.size, "inv_size": inv_table.values.size}

    def check_width(self, node: Node, entry: dict) -> int:
        """The widest ap type the stage's kernel builds (a bound), refused beyond ap_int's limit."""
        return kernel_bits(entry["kind"], entry, self.fixed, _onnx_nodes(node))

    # whole model ----------------------------------------------------------------------
    def build(self) -> dict:
        g = self.graph
        ports_in = [{"name": self.names(n), "type": self.type_of(g.tensor(n), "input"), "onnx": n,
                     "size": int(np.prod(g.tensor(n).shape)), "shape": list(g.tensor(n).shape)} for n in g.inputs]
        ports_out = [{"name": self.names(n), "type": self.type_of(g.tensor(n), "output"), "onnx": n,
                      "size": int(np.prod(g.tensor(n).shape)), "shape": list(g.tensor(n).shape)} for n in g.outputs]
        layers, buffers = [], []
        ports = set(g.inputs) | set(g.outputs)
        ii = 1
        widest = AP_INT_DEFAULT_MAX_W
        for node in g.nodes:
            arch = self.options.arch(node)
            stages = []
            for stage in node.stages():
                stages.append(self.stage(node, stage, arch))
                widest = max(widest, self.check_width(node, stages[-1]))
                out = stage.outputs[0]
                if out not in ports:
                    t = g.tensor(out)
                    buffers.append({"name": self.names(out), "type": self.type_of(t), "size": int(np.prod(t.shape)),
                                    "layer": self.names(node.name)})
            if node.op in (Op.DENSE, Op.CONV):
                ii = max(ii, arch.reuse_factor)
            layers.append({"name": self.names(node.name), "onnx": ", ".join(node.onnx_nodes) or node.name,
                           "ops": " + ".join(s.kind for s in node.stages()), "stages": stages,
                           "reuse": arch.reuse_factor, "strategy": arch.strategy})
        return {
            "model": self.model, "version": __version__, "source": self.source, "io": "io_parallel",
            "part": self.options.part, "clock_ns": self.options.clock_ns, "ii": ii,
            # AP_INT_MAX_W for the generated code: only written when the default is too small
            "ap_int_max_w": -(-widest // 1024) * 1024 if widest > AP_INT_DEFAULT_MAX_W else None,
            "inputs": ports_in, "outputs": ports_out, "layers": layers, "buffers": buffers, "graphs": self.graphs,
            "types": list(self.types.values()), "constants": list(self.constants.values()),
            # finegrain::ceil_fixed types are declared in the library's common.h
            "library_types": any(t.rounding == Rounding.CEIL for t in self.fixed.values()),
            "names": dict(self.names.map),  # IR name -> identifier, for report.json
        }


def _onnx_nodes(node: Node) -> str:
    """How an error names an IR node: by the ONNX node(s) it came from."""
    names = ", ".join(repr(n) for n in node.onnx_nodes) or repr(node.name)
    return f"ONNX node{'s' if len(node.onnx_nodes) > 1 else ''} {names}"


def _window_sum_type(x: Tensor, window: int) -> FixedType:
    t = container(x.formats, x.name)
    return CType.for_range(t.min_mantissa * window, t.max_mantissa * window, t.frac_bits) or t


def top_name(graph: Graph) -> str:
    """The C name of the top function (and of the generated files)."""
    return Names(reserved=CPP_RESERVED, prefixes=CPP_TOP_PREFIXES)(graph.name)


def hls_context(graph: Graph, options: HLSOptions, source: dict) -> dict:
    """The plain dict the HLS templates render."""
    return _Builder(graph, options, source).build()


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (compiling them is most of a compile's time)."""
    root = Path(os.environ.get("FINEGRAIN_CACHE_DIR", Path.home() / ".cache" / "finegrain")) / "jinja"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(root))


def template_environment(folder: Path) -> jinja2.Environment:
    """The Jinja environment every backend renders with: strict, cached, whitespace-tidy."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             bytecode_cache=_bytecode_cache())
    env.filters.update(FILTERS)  # comment, c_string, tcl: model text made safe where it is quoted
    return env


def write_hls_project(graph: Graph, options: HLSOptions, out_dir: Path, source: dict) -> dict:
    """Render the project into ``out_dir`` (normally OUT/hls); returns the context."""
    stream = options.io == "stream"
    if stream:
        from .hls_stream import hls_stream_context  # it builds on this module's _Builder
        context = hls_stream_context(graph, options, source)
    else:
        context = hls_context(graph, options, source)
    env = template_environment(TEMPLATES)
    model = context["model"]
    variant = "_stream" if stream else ""
    firmware = out_dir / "firmware"
    (firmware / "weights").mkdir(parents=True, exist_ok=True)
    (out_dir / "tb").mkdir(exist_ok=True)
    (out_dir / "tb_data").mkdir(exist_ok=True)
    files = {
        firmware / f"{model}.cpp": f"model{variant}.cpp.j2",
        firmware / f"{model}.h": f"model{variant}.h.j2",
        firmware / "defines.h": "defines.h.j2",
        firmware / "parameters.h": "parameters.h.j2",
        out_dir / "tb" / f"{model}_test.cpp": f"testbench{variant}.cpp.j2",
        out_dir / "build_prj.tcl": "build_prj.tcl.j2",
        out_dir / "vivado_synth.tcl": "vivado_synth.tcl.j2",
        out_dir / "README.md": "README.md.j2",
    }
    if context.get("graphs"):
        files[firmware / f"{model}_graphs.h"] = "graphs.h.j2"
    for path, template in files.items():
        path.write_text(env.get_template(template).render(**context))
    weight_template = env.get_template("weights.h.j2")
    for const in context["constants"]:
        (firmware / "weights" / f"{const['name']}.h").write_text(weight_template.render(const=const, **context))
    shutil.copytree(LIBRARY, firmware / "finegrain", dirs_exist_ok=True)
    return context


def parse_layer_config(raw: dict, where: str) -> dict:
    """``{"layer name": {"reuse_factor": 4, "strategy": "resource"}}`` -> LayerArch per layer."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected an object keyed by layer name")
    layers = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - {"reuse_factor", "strategy"}:
            raise UserError(f"{where}: layer {name!r} takes 'reuse_factor' and 'strategy', got {entry!r}")
        layers[name] = LayerArch(**entry)
    return layers

