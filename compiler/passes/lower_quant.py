"""lower_quant: a quantized model's quantizers become fixed-point formats and integer rescales.

The frontend reads every quantizer of a model (compiler/quantizer.py) as an ``Op.QUANT`` node
(on activations) or as a folded constant carrying its ``quantizer`` (weights, biases).  This
pass removes them, keeping the values of the quantized model exactly wherever integer
arithmetic can, and says where it cannot.

**Residual scales.**  A scale ``s`` that is not a power of two cannot be a fixed-point format,
so the IR holds ``model value / r`` instead, with a *residual* ``r`` per element tracked here
(``s = r * 2**e``, ``1 <= r < 2``; ``r = 1`` for power-of-two scales and float parts):

* a constant made by a quantizer holds its integer codes ``(q - zero) * 2**e``, exactly;
  its residual is ``r``;
* DENSE/CONV: the accumulator's residual is ``r_x * r_w`` (the input's residual must be the
  same along the summed axes); a bias becomes ``b / r_acc``, rounded to the accumulator's
  grid when that is not exact (the largest change is recorded on the bias);
* RELU, LEAKY_RELU, MAXPOOL, AVGPOOL and layout ops carry the residual along (it is
  positive, and these commute with a positive per-channel factor);
* BATCHNORM on a tensor computed from the quantizers (a grid, a quantized layer, a table, or
  ops of such): ``|scale / sqrt(var + eps)|`` joins the residual, its sign is an exact product
  and its shift an ADD in the output's units (what float64 moves is recorded for the report,
  batchnorm_error.py);
* where an op needs model values (CLIP, SIGMOID, SOFTMAX, an ADD of a constant or of two
  tensors with different residuals, a BatchNorm whose input's residual varies within a
  channel, a graph output whose residual is not uniform...), the tensor is first multiplied
  by its residual: a product by a short dyadic number, exact;
* graph outputs keep their residual as ``model_scale`` (model value = model_scale * IR value).

**A quantizer** ``y = out_scale * (clamp(R(x / in_scale + in_zero)) - out_zero)`` becomes

1. ``MUL(x, NODE.multiplier)`` (node ``NODE.rescale``) when ``r_x / r_in`` is not 1: the rational rescale, whose
   fixed-point value ``K * 2**-n`` is chosen after the plan is applied, when the range of
   ``x`` is known (passes/choose_multipliers.py);
2. ``REQUANTIZE`` into ``fixed<w, w + e_in, R, SAT>`` holding ``[qmin - in_zero, qmax - in_zero]``
   (SAT_SYM for a signed narrow range), then a CLIP when that range is not the format's;
3. for a lone QuantizeLinear/DequantizeLinear (``out != in``): a shift by ``2**(e_out - e_in)``
   and an ADD of ``(in_zero - out_zero) * 2**e_out``, both exact.

A float graph input read by nothing but a quantizer takes that quantizer's format itself (and
``model_scale = r_in``): the host quantizes it, as `finegrain emulate`/csim/sim do.

A graph with no quantizer is returned unchanged.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from ..errors import FrontendError
from ..fixed import FixedType, Formats, Overflow, Rounding
from ..ir import Graph, Node, Op, Tensor, TensorKind
from ..mantissa import distinct
from ..names import unused
from ..plan import TABLE_CODE_BITS
from ..quantizer import Quantizer, split_power_of_two
from .batchnorm_error import batchnorm_errors
from .lower_quant_constants import ConstantLowering
from .lower_quant_ranges import RangeTracking
from .quant_data import compact, exact_data, exact_product, integer_formats, same_grid


# ops whose output is computed from the model's quantizers when their inputs are (_from_quantizers)
FROM_QUANTIZERS_THROUGH = frozenset({Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.MAXPOOL, Op.AVGPOOL, Op.RESHAPE,
                                     Op.TRANSPOSE, Op.CONCAT, Op.ADD, Op.MUL})


def is_quantized_model(graph: Graph) -> bool:
    return (any(n.op == Op.QUANT for n in graph.nodes)
            or any(t.quantizer is not None or (t.kind == TensorKind.INPUT and t.formats is not None)
                   for t in graph.tensors.values()))


class _Lowering(ConstantLowering, RangeTracking):
    def __init__(self, graph: Graph):
        self.graph = graph
        self.tensors: dict[str, Tensor] = dict(graph.tensors)
        self.nodes: list[Node] = []
        self.residual: dict[str, np.ndarray] = {}  # full-shape arrays, absent = 1
        self.alias: dict[str, str] = {}  # a removed node's output -> the tensor that stands for it
        self.names = set(graph.tensors) | {n.name for n in graph.nodes}
        self.inputs = list(graph.inputs)
        # the grid (fractional bits) of a tensor's IR values where the quantizers fix it
        self.frac: dict[str, int] = {}
        self.amax: dict[str, float] = {}  # the largest |IR value| of a tensor, where quantizers bound it
        for name in graph.inputs:  # an integer input: the frontend set its formats from its type
            t = graph.tensor(name)
            if t.formats is not None:
                self.frac[name] = int(t.formats.frac_bits.max())
                self.amax[name] = float(max(np.max(np.abs(np.asarray(b, dtype=np.float64)) * np.ldexp(
                    1.0, -t.formats.frac_bits)) for b in t.formats.mantissa_bounds()))
                self.tensors[name] = dataclasses.replace(t, scheme={"lowered": True})

    # --- helpers ----------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        return unused(base, self.names)

    def res(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        r = self.residual.get(name)
        return np.ones(t.shape) if r is None else r

    def has_residual(self, name: str) -> bool:
        r = self.residual.get(name)
        return r is not None and not np.all(r == 1.0)

    def activation(self, name: str, shape, kind=TensorKind.ACTIVATION, onnx_name=None) -> str:
        # marked so that a plan's defaults.activation does not requantize it (apply_plan)
        self.tensors[name] = Tensor(name, tuple(shape), kind, onnx_name=onnx_name, scheme={"lowered": True})
        return name

    def constant(self, base: str, values: np.ndarray, kind=TensorKind.CONST) -> str:
        """An exact constant (its values are short dyadic numbers) with formats holding them."""
        values = np.asarray(values, dtype=np.float64)
        name = self.fresh(base)
        formats, data, frac = exact_data(values)
        self.tensors[name] = Tensor(name, values.shape, kind, formats=formats, data=data, data_frac=frac,
                                    float_data=values)
        return name

    def emit(self, name: str, op: Op, inputs, output: str, onnx_nodes=(), attrs=None) -> str:
        self.nodes.append(Node(self.fresh(name) if name in self.names else name, op, tuple(inputs),
                               (output,), attrs or {}, onnx_nodes=tuple(onnx_nodes)))
        self.names.add(self.nodes[-1].name)
        return output

    def to_model_units(self, name: str, node: Node) -> str:
        """``name`` times its residual (exact): a tensor whose IR values are model values."""
        if not self.has_residual(name):
            return name
        t = self.tensors[name]
        out = self.activation(self.fresh(f"{name}.model"), t.shape)
        factor = self.constant(f"{node.name}.residual", compact(self.res(name)))
        self.emit(f"{node.name}.residual", Op.MUL, (name, factor), out, node.onnx_nodes)
        self.residual[out] = np.ones(t.shape)
        if self.grid(name) is not None:
            self.frac[out] = self.grid(name) + self.tensors[factor].data_frac
        if name in self.amax:
            self.amax[out] = self.amax[name] * float(np.max(self.res(name)))
        return out

    # --- nodes ------------------------------------------------------------------------
    def rename_inputs(self, node: Node) -> Node:
        inputs = tuple(self.alias.get(i, i) for i in node.inputs)
        return node if inputs == node.inputs else dataclasses.replace(node, inputs=inputs)

    def lower(self) -> Graph:
        for node in self.graph.nodes:
            node = self.rename_inputs(node)
            handler = getattr(self, f"_{node.op.value}", None)
            if handler is None:
                handler = self._model_values
            handler(node)
        outputs = []
        for name in self.graph.outputs:
            name = self.alias.get(name, name)
            if self.has_residual(name):
                self.tensors[name] = dataclasses.replace(self.tensors[name],
                                                         model_scale=compact(self.res(name)))
            outputs.append(name)
        for name in self.inputs:
            if self.has_residual(name):
                self.tensors[name] = dataclasses.replace(self.tensors[name],
                                                         model_scale=compact(self.res(name)))
        graph = dataclasses.replace(self.graph, inputs=tuple(self.inputs), outputs=tuple(outputs))
        return graph.with_nodes(self.nodes, self.tensors)

    def _pass(self, node: Node, residual: np.ndarray | None, grid: int | None = None) -> None:
        self.nodes.append(node)
        if residual is not None:
            self.residual[node.outputs[0]] = residual
        self._carry_grid(node, grid)
        self._carry_amax(node)

    def _model_values(self, node: Node) -> None:
        """Ops that need model values: every activation input times its residual.  The output
        of a sum, product or clamp of values on known grids is on a known grid too (a float
        constant's: its own, as an exact dyadic number), so a BatchNorm after it is lowered."""
        inputs = [i if self.tensors[i].is_constant else self.to_model_units(i, node) for i in node.inputs]
        self.nodes.append(dataclasses.replace(node, inputs=tuple(inputs)))
        self._carry_amax(self.nodes[-1])
        if node.op in (Op.ADD, Op.MUL, Op.CLIP):
            self._carry_grid(self.nodes[-1], None)

    def _relu(self, node: Node) -> None:
        self._pass(node, self.residual.get(node.inputs[0]))

    _leaky_relu = _relu  # alpha * (r * x) = r * (alpha * x)

    def _table(self, node: Node) -> None:
        """A function of a quantizer's codes (one scale, at most 12 bits): the table reads the
        codes themselves and computes f(code * scale) (its ``input_scale``), exact, where a
        product into model values would land between the table's input steps."""
        x = node.inputs[0]
        r = distinct(self.res(x)) if self.has_residual(x) else []
        codes = self.tensors[x].formats.uniform_type() if self.tensors[x].formats is not None else None
        if len(r) != 1 or codes is None or codes.width > TABLE_CODE_BITS:
            return self._model_values(node)
        self._pass(dataclasses.replace(node, attrs={**node.attrs, "input_scale": Fraction(r[0])}), None)

    def _reshape(self, node: Node) -> None:
        r = self.residual.get(node.inputs[0])
        self._pass(node, None if r is None else r.reshape(node.attrs["shape"]))

    def _transpose(self, node: Node) -> None:
        r = self.residual.get(node.inputs[0])
        self._pass(node, None if r is None else np.transpose(r, node.attrs["perm"]))

    def _concat(self, node: Node) -> None:
        if not any(self.has_residual(i) for i in node.inputs):
            return self._pass(node, None)
        parts = [self.res(i) for i in node.inputs]
        self._pass(node, np.concatenate(parts, axis=node.attrs["axis"]))

    def _pool(self, node: Node) -> None:
        """Pooling windows are spatial: a residual that varies only by channel passes."""
        x = node.inputs[0]
        if not self.has_residual(x):
            return self._pass(node, None)
        r = self.res(x)
        per_channel = r.reshape(r.shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            return self._model_values(node)
        out_shape = self.tensors[node.outputs[0]].shape
        self._pass(node, np.broadcast_to(per_channel[:, 0].reshape((-1,) + (1,) * (len(out_shape) - 1)), out_shape),
                   self.grid(x) if node.op == Op.MAXPOOL else None)

    _maxpool = _pool
    _avgpool = _pool

    def _mul(self, node: Node) -> None:
        x, c = node.inputs
        if self.tensors[c].is_constant and self.tensors[c].quantizer is not None:
            self._exact_model_constant(c)
        if self.tensors[c].is_constant:
            self._pass(node, self.residual.get(x))
            return
        # (r_a a)(r_b b) = (r_a r_b)(a b): the codes multiply and the residuals' product goes on,
        # where float64 holds it exactly (float32 scales' it does); else both in model values
        shape = self.tensors[node.outputs[0]].shape
        r = exact_product(*(np.broadcast_to(self.res(n), shape) for n in (x, c)))
        if r is None:
            return self._model_values(node)
        grids = [self.grid(x), self.grid(c)]
        self._pass(node, None if np.all(r == 1.0) else r, None if None in grids else sum(grids))

    def _add(self, node: Node) -> None:
        a, b = node.inputs
        for name in (a, b):
            if self.tensors[name].is_constant and self.tensors[name].quantizer is not None:
                self._exact_model_constant(name)
        if (not self.tensors[a].is_constant and not self.tensors[b].is_constant
                and np.array_equal(self.res(a), self.res(b))):
            return self._pass(node, self.residual.get(a))
        self._model_values(node)

    def _linear(self, node: Node) -> None:
        x, w = node.inputs[0], node.inputs[1]
        wt = self.tensors[w]
        out_shape = self.tensors[node.outputs[0]].shape
        if wt.quantizer is not None:
            w, r_w = self.quantized_constant(w)
        else:
            r_w = np.ones(wt.shape)
        # the input's residual must not vary along the summed axes
        r_x = self.res(x)
        if node.op == Op.DENSE:
            if not np.all(r_x == r_x[..., :1]):
                x, r_x = self.to_model_units(x, node), np.ones(r_x.shape)
            r_w_out = r_w[:, :1].reshape(-1)
            if not np.all(r_w == r_w[:, :1]):
                raise FrontendError(f"node {node.onnx_nodes[0] if node.onnx_nodes else node.name!r}: the weight "
                                    f"{wt.onnx_name or wt.name!r} has scales that vary along its input axis; "
                                    f"finegrain supports one scale per output channel (or per tensor)")
            r_acc = r_x[..., :1] * r_w_out  # [..., out]
        else:
            if not np.all(r_x == r_x.ravel()[0]):
                x, r_x = self.to_model_units(x, node), np.ones(r_x.shape)
            flat = r_w.reshape(r_w.shape[0], -1)
            if not np.all(flat == flat[:, :1]):
                raise FrontendError(f"node {node.onnx_nodes[0] if node.onnx_nodes else node.name!r}: the weight "
                                    f"{wt.onnx_name or wt.name!r} has scales that vary within an output channel; "
                                    f"finegrain supports one scale per output channel (or per tensor)")
            r_acc = (r_x.ravel()[0] * flat[:, 0]).reshape((-1,) + (1,) * (len(out_shape) - 1))
        r_acc = np.broadcast_to(r_acc, out_shape)
        inputs = [x, w]
        grid = None if self.grid(x) is None or self.grid(w) is None else self.grid(x) + self.grid(w)
        if len(node.inputs) > 2:
            inputs.append(self._bias(node, node.inputs[2], r_acc, grid))
            grid = None if grid is None or self.grid(inputs[2]) is None else max(grid, self.grid(inputs[2]))
        self._pass(dataclasses.replace(node, inputs=tuple(inputs)),
                   None if np.all(r_acc == 1.0) else np.array(r_acc), grid)

    _dense = _linear
    _conv = _linear

    def _bias(self, node: Node, b: str, r_acc: np.ndarray, grid: int | None) -> str:
        """The bias in accumulator units: ``b / r_acc`` per output channel."""
        t = self.tensors[b]
        channels = t.shape[0]
        r = (r_acc.reshape(-1, channels)[0] if node.op == Op.DENSE
             else r_acc.reshape(channels, -1)[:, 0])
        if np.all(r == 1.0):
            if t.quantizer is not None:
                self._exact_model_constant(b)
            else:  # a float bias the model states: held exactly unless the plan names or defaults it
                self.tensors[b] = dataclasses.replace(t, scheme={"model_float": True})
            return b
        return self._in_units(b, r, grid)

    def _batchnorm(self, node: Node) -> None:
        """A BatchNormalization on a quantized tensor (a quantizer's output, a quantized layer's,
        a table look-up's, or ops' of such: :meth:`_from_quantizers`): ``a * x + c`` per channel with
        ``a = scale / sqrt(var + eps)``; ``|a|`` joins the residual, its sign (-1, 0 or 1) is an
        exact product, and ``c`` becomes an ADD in the output's units.  What float64 moved
        (batchnorm_error.py) is recorded on that ADD's constant for the report.  A BatchNorm in
        a float part is left to fold_batchnorm."""
        x = node.inputs[0]
        if not self._from_quantizers(x):
            return self._pass(node, None)
        scale, bias, mean, var = (np.asarray(self.tensors[i].data, dtype=np.float64) for i in node.inputs[1:])
        a = scale / np.sqrt(var + node.attrs["epsilon"])
        c = bias - mean * a
        shape = self.tensors[x].shape
        channel = (-1,) + (1,) * (len(shape) - 1)
        r_x = self.res(x)
        r_c = r_x.reshape(shape[0], -1)
        if not np.all(r_c == r_c[:, :1]):
            return self._model_values(node)
        r = np.where(a == 0, r_c[:, 0], r_c[:, 0] * np.abs(a))  # a channel with a = 0 is its shift alone
        factor, shift_error = batchnorm_errors(r_c[:, 0], scale, bias, mean, var, node.attrs["epsilon"], r, c)
        if np.any(a <= 0):  # the residual stays positive: the sign is an exact product by -1 (or 0)
            flipped = self.activation(self.fresh(f"{x}.sign"), shape)
            signs = self.constant(f"{node.name}.sign", np.sign(a).reshape(channel))
            self.emit(f"{node.name}.sign", Op.MUL, (x, signs), flipped, node.onnx_nodes)
            if self.grid(x) is not None:
                self.frac[flipped] = self.grid(x)
            if x in self.amax:
                self.amax[flipped] = self.amax[x]
            x = flipped
        shift = self.fresh(f"{node.name}.shift")
        c = c.reshape(channel)
        self.tensors[shift] = Tensor(shift, c.shape, TensorKind.BIAS, data=c, float_data=c)
        self._in_units(shift, r.reshape(channel), self.grid(x))
        t = self.tensors[shift]
        self.tensors[shift] = dataclasses.replace(t, scheme={**t.scheme, "batchnorm": {
            "factor_error": factor.reshape(channel), "shift_error_ir": shift_error.reshape(channel)}})
        out = node.outputs[0]
        self.nodes.append(dataclasses.replace(node, op=Op.ADD, inputs=(x, shift), attrs={}))
        self._carry_amax(self.nodes[-1])
        self.residual[out] = np.broadcast_to(r.reshape(channel), shape).copy()
        if self.grid(x) is not None:
            self.frac[out] = max(self.grid(x), self.grid(shift))

    def _from_quantizers(self, name: str) -> bool:
        """Whether ``name`` is computed from the model's quantizers, not in a float part: it has
        a residual or a grid, or it is a quantized layer's output, a table look-up's (its output
        format is the plan's, not known yet), or an elementwise, pooling or layout op's whose
        inputs all are (a constant: when its grid is exact)."""
        producers = {n.outputs[0]: n for n in self.nodes}
        todo, seen = [name], set()
        while todo:
            current = todo.pop()
            if current in seen or self.has_residual(current) or self.grid(current) is not None:
                continue
            seen.add(current)
            node = producers.get(current)
            if node is None:
                return False
            if node.op == Op.TABLE or (node.op in (Op.DENSE, Op.CONV) and self.tensors[node.inputs[1]].is_quantized):
                continue
            if node.op not in FROM_QUANTIZERS_THROUGH:
                return False
            for i in node.inputs:
                if self.tensors[i].is_constant:
                    if self._exact_grid(i, node) is None:
                        return False
                else:
                    todo.append(i)
        return True

    def _quant(self, node: Node) -> None:
        q: Quantizer = node.attrs["quantizer"]
        x, y = node.inputs[0], node.outputs[0]
        where = node.onnx_nodes[0] if node.onnx_nodes else node.name
        shape = self.tensors[y].shape
        if q.bipolar:
            return self._bipolar(node, q, where)

        def full(a):
            return np.broadcast_to(np.asarray(a, dtype=np.float64), shape)

        in_scale, in_zero, out_scale, out_zero = map(full, (q.in_scale, q.in_zero, q.out_scale, q.out_zero))
        r_in, e_in = split_power_of_two(in_scale)
        r_out, e_out = split_power_of_two(out_scale)
        if q.bits is not None:
            qmin, qmax = q.range
        elif x in self.amax:  # no clamp (Trunc's first rounding): a range no value reaches
            reach = int(np.ceil(self.amax[x] * float(np.max(self.res(x) / in_scale)))) + 1 + int(np.abs(in_zero).max())
            qmin, qmax = -reach, reach
        else:
            raise self._unbounded(where, q.source, x)
        # QuantizeLinear rounds x / s and adds the zero point; QONNX's Quant adds it first, which
        # differs for ties to even (odd zero points) and the modes symmetric about 0
        symmetric = q.rounding in (Rounding.TRN_ZERO, Rounding.RND_ZERO, Rounding.RND_INF)
        pre_zero = q.zero_before_rounding and (
            (symmetric and bool(np.any(in_zero != 0)))
            or (q.rounding == Rounding.RND_CONV and bool(np.any(np.mod(in_zero, 2) != 0))))
        held_zero = 0.0 if pre_zero else in_zero  # what the IR codes have already subtracted
        lo, hi = qmin - held_zero, qmax - held_zero
        narrow_sym = (lo == -hi) & (lo < 0)
        formats = integer_formats(lo, hi, -e_in, q.rounding, narrow_sym)
        f_lo, f_hi = formats.mantissa_bounds()
        needs_clip = not (np.array_equal(np.asarray(f_lo, dtype=np.float64) + narrow_sym, lo)
                          and np.array_equal(np.asarray(f_hi, dtype=np.float64), hi))
        xt = self.tensors[x]
        start = len(self.nodes)
        current = x
        # a float graph input read only by this quantizer takes its format: the host quantizes
        if (x in self.inputs and xt.formats is None and len(self.graph.consumers(x)) == 1
                and x not in self.graph.outputs and not pre_zero):
            self.tensors[x] = dataclasses.replace(xt, formats=formats, scheme={"lowered": True})
            self.residual[x] = np.array(r_in)
        else:
            if not np.array_equal(self.res(x), r_in):
                current = self.activation(self.fresh(f"{y}.scaled"), shape)
                factor = self._rescale_constant(f"{node.name}.multiplier", self.res(x), r_in)
                self.emit(f"{node.name}.rescale", Op.MUL, (x, factor), current, node.onnx_nodes)
            if pre_zero:
                shifted = self.activation(self.fresh(f"{y}.plus_zero"), shape)
                self.emit(f"{node.name}.plus_zero", Op.ADD,
                          (current, self.constant(f"{node.name}.plus_zero", compact(np.ldexp(in_zero, e_in)))),
                          shifted, node.onnx_nodes)
                current = shifted
            if current != x or not same_grid(xt.formats, formats):
                codes = self.tensors[current]
                current = self.activation(self.fresh(f"{y}.codes"), shape)
                self.tensors[current] = dataclasses.replace(self.tensors[current], formats=formats)
                self.emit(f"{node.name}.quantize", Op.REQUANTIZE, (codes.name,), current, node.onnx_nodes)
        self.frac[current] = int((-e_in).max())
        if needs_clip:
            # the clip's bounds are IR values: per channel (or element) where the zero points or the
            # scales' powers of two are
            low, high = (self.constant(f"{node.name}.{side}", compact(np.ldexp(v, e_in)))
                         for side, v in (("low", lo), ("high", hi)))
            current = self.emit(f"{node.name}.clip", Op.CLIP, (current, low, high),
                                self.activation(self.fresh(f"{y}.clipped"), shape), node.onnx_nodes)
        if not np.array_equal(e_in, e_out):
            factor = self.constant(f"{node.name}.shift", compact(np.ldexp(1.0, e_out - e_in)))
            current = self.emit(f"{node.name}.shift", Op.MUL, (current, factor),
                                self.activation(self.fresh(f"{y}.shifted"), shape), node.onnx_nodes)
        offset = compact(np.ldexp(held_zero - out_zero, e_out))
        if np.any(offset != 0):
            current = self.emit(f"{node.name}.zero_point", Op.ADD,
                                (current, self.constant(f"{node.name}.zero_point", offset)),
                                self.activation(self.fresh(f"{y}.offset"), shape), node.onnx_nodes)
        self.frac[current] = max(self.frac.get(current, 0), int((-e_out).max()))
        self.residual[current] = np.array(r_out)
        self.amax[current] = float(np.max(np.maximum(np.abs(qmin - out_zero), np.abs(qmax - out_zero))
                                          * np.ldexp(1.0, e_out)))
        if len(self.nodes) > start:  # the last node emitted here writes the quantizer's output name
            last = self.nodes[-1]
            self.nodes[-1] = dataclasses.replace(last, outputs=(y,))
            t = self.tensors.pop(current)
            self.tensors[y] = dataclasses.replace(t, name=y, onnx_name=y)
            self.residual[y] = self.residual.pop(current)
            self.frac[y] = self.frac.pop(current)
            self.amax[y] = self.amax.pop(current)
        elif y in self.graph.outputs:  # nothing emitted (an absorbed input): the output copies it
            self.emit(f"{node.name}.output", Op.RESHAPE, (current,), y, node.onnx_nodes, {"shape": shape})
            self.residual[y] = self.residual[current]
            self.frac[y] = self.frac[current]
            self.amax[y] = self.amax[current]
        else:
            self.alias[y] = current
            self.tensors.pop(y, None)

    def _bipolar(self, node: Node, q: Quantizer, where: str) -> None:
        """``+1 if x >= 0 else -1`` (then the output scale and zero point), exactly: a 1-bit
        signed SAT conversion of ``x`` with TRN gives 0 for ``x >= 0`` and -1 below, and
        ``2 * s + 1`` is the sign.  The residual of ``x`` is positive, so it does not matter."""
        x, y = node.inputs[0], node.outputs[0]
        shape = self.tensors[y].shape
        if np.any(q.in_zero != 0):
            raise FrontendError(f"node {where!r} ({q.source}): a bipolar quantizer with a non-zero zero point on an "
                                f"activation is not supported")
        r_out, e_out = split_power_of_two(np.broadcast_to(q.out_scale, shape))
        out_zero = np.broadcast_to(q.out_zero, shape)
        one_bit = Formats.uniform(shape, FixedType(1, 1, True, Rounding.TRN, Overflow.SAT))
        xt = self.tensors[x]
        if x in self.inputs and xt.formats is None and len(self.graph.consumers(x)) == 1:
            # a float graph input read only by this quantizer: the host takes the sign
            self.tensors[x] = dataclasses.replace(xt, formats=one_bit, scheme={"lowered": True})
            sign = x
        else:
            sign = self.activation(self.fresh(f"{y}.sign"), shape)
            self.tensors[sign] = dataclasses.replace(self.tensors[sign], formats=one_bit)
            self.emit(f"{node.name}.sign", Op.REQUANTIZE, (x,), sign, node.onnx_nodes)
        doubled = self.activation(self.fresh(f"{y}.doubled"), shape)
        self.emit(f"{node.name}.scale", Op.MUL,
                  (sign, self.constant(f"{node.name}.scale", compact(np.ldexp(1.0, e_out + 1)))), doubled,
                  node.onnx_nodes)
        self.emit(f"{node.name}.offset", Op.ADD,
                  (doubled, self.constant(f"{node.name}.offset", compact(np.ldexp(1.0 - out_zero, e_out)))), y,
                  node.onnx_nodes)
        self.tensors[y] = dataclasses.replace(self.tensors[y], scheme={"lowered": True})
        self.residual[y] = np.array(r_out)
        self.frac[y] = int((-e_out).max())
        self.amax[y] = float(np.max(np.maximum(np.abs(1 - out_zero), np.abs(-1 - out_zero)) * np.ldexp(1.0, e_out)))

def lower_quant(graph: Graph) -> Graph:
    if not is_quantized_model(graph):
        return graph
    return _Lowering(graph).lower()
