"""One model's translation: the ONNX walk, constant folding, names, and the shape cross-check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..errors import FrontendError, reraise_interrupt
from ..fixed import FixedType, Formats, Overflow, Rounding
from ..ir import Graph, IRError, Node, Op, Tensor, TensorKind, output_shape
from ..names import unused
from ..quantizer import Quantizer
from .common import _attributes, _default_opset, _frozen, _initializer_array, _outer_reads, _static_dims
from .ops_quant import drop_leading, full_rank, reshape_constant_quantizer
from .ops_shape import _batchless_result
from .translators import _TRANSLATORS, BATCH_AWARE_OPS, SUPPORTED_OPS, quant_translator


_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16}

# Integer graph inputs (tf2onnx writes int8 ones for TFLite models): their IR values are the codes.
_INTEGER_INPUTS = {onnx.TensorProto.INT8: (8, True), onnx.TensorProto.UINT8: (8, False),
                   onnx.TensorProto.INT16: (16, True), onnx.TensorProto.UINT16: (16, False)}


# Ops that must not be folded even when their inputs are constant: their value changes
# from run to run.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                               "RandomUniformLike", "Multinomial", "Bernoulli"})


# Ops whose result is a table look-up in hardware: their output is a final score, so they
# may only produce graph outputs.
_OUTPUT_ONLY = (Op.SOFTMAX,)


# The most elements an input or activation may have (without the batch axis): 4M, more than
# fits an FPGA fully unrolled (224x224x64 fits), while the compiler's per-element arrays stay
# in memory (a 1M-element tensor compiles to IR in 3.4 s and 324 MB; 2^31 tried to allocate
# 16 GB).  Documented in docs/bit-plan.md, "Limits".
MAX_TENSOR_ELEMENTS = 1 << 22

# Ops that pass their first input through unchanged at inference.
_ALIAS_OPS = frozenset({"Identity", "Dropout"})

# Ops that fold a constant into the same values in another shape.
_RESHAPE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


class _Translator:
    """One model's translation: the constants found so far and the IR under construction."""

    def __init__(self, model: onnx.ModelProto, path: Path):
        self.path = path
        self.onnx_graph = model.graph
        self.opset = _default_opset(model, path)
        self.values: dict[str, np.ndarray] = {}  # ONNX constant values, ONNX shapes and dtypes
        # constant name -> (ONNX tensor, axes): value == values-of-that-tensor.transpose(axes),
        # so a weight folded from Transpose(initializer) still names its initializer.
        self.origin: dict[str, tuple[str, tuple[int, ...]]] = {}
        self.alias: dict[str, str] = {}  # ONNX value -> IR activation (Identity/Dropout removed)
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.batch_sizes = {1}  # reshape targets may spell the batch as this
        # ONNX values whose batch axis of 1 a reshape folded away: their ONNX shape is their
        # IR shape (see ops_shape's docstring).
        self.batchless: set[str] = set()
        self.taken = self._all_onnx_names()
        self.node_names: set[str] = set()
        self.op_types: dict[str, str] = {}  # ONNX node name -> op type, for messages
        self.inferred = self._inferred_shapes()
        self.misannotated: set[str] = set()  # ONNX values whose annotated shape is known wrong
        self.rename = self._output_renames()
        self.output_names = {o.name for o in model.graph.output}
        self.read = {i for p in model.graph.node for i in p.input} | self.output_names
        self.domain_opsets = {entry.domain: entry.version for entry in model.opset_import}
        # constant name -> the model quantizer that made it (parameters at the constant's full
        # rank, ONNX layout); it follows the constant through Transpose/Reshape folding
        self.quantizers: dict[str, Quantizer] = {}
        self.integer_types: dict[str, tuple[int, bool]] = {}  # integer data: value -> (bits, signed)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producers = {o: proto for proto in model.graph.node for o in proto.output if o}
        for proto in model.graph.node:
            for i in dict.fromkeys(proto.input):
                if i:
                    self.consumers.setdefault(i, []).append(proto)
        self.absorbed: set[int] = set()  # id() of nodes another translator already read (a QDQ pair's DQ)
        self.quantized_read: set[str] = set()  # quantized constants the current node made IR tensors of
        self.notes: list[str] = []  # what the translation left out (dropped quantizers), as warnings

    # names -----------------------------------------------------------------------------

    def _all_onnx_names(self) -> set[str]:
        g = self.onnx_graph
        names = {i.name for i in g.input} | {t.name for t in g.initializer} | {o.name for o in g.output}
        for proto in g.node:
            names.update(proto.input)
            names.update(proto.output)
        return names

    def fresh(self, base: str) -> str:
        """A tensor name not used by the ONNX model or the IR so far."""
        name, k = base, 1
        while name in self.taken or name in self.tensors:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def node_name(self, base: str) -> str:
        """A node name not used so far (ONNX node names need not be unique)."""
        return unused(base, self.node_names)

    def _inferred_shapes(self) -> dict[str, list]:
        g = self.onnx_graph
        shapes = {}
        for vi in [*g.value_info, *g.output]:
            dims = _static_dims(vi)
            if dims is not None:
                shapes[vi.name] = dims
        return shapes

    def _output_renames(self) -> dict[str, str]:
        """ONNX values to be named after the graph output they reach through Identity/Dropout.

        The IR has no copy op, so ``y = Identity(v)`` with ``y`` a graph output is removed by
        writing ``v`` under the name ``y``.
        """
        g = self.onnx_graph
        producers = {o: p for p in g.node for o in p.output}
        outputs = [o.name for o in g.output]
        fixed = set(outputs) | {i.name for i in g.input} | {t.name for t in g.initializer}
        rename = {}
        for out in outputs:
            v = out
            while v in producers and producers[v].op_type in _ALIAS_OPS and producers[v].output[0] == v:
                v = producers[v].input[0]
            if v != out and v not in fixed and v not in rename and v in producers:
                rename[v] = out
        return rename

    # constants ---------------------------------------------------------------------------

    def is_constant(self, name: str) -> bool:
        return name in self.values

    def value(self, name: str) -> np.ndarray:
        return self.values[name]

    def set_value(self, name: str, array: np.ndarray, origin=None) -> None:
        array = np.asarray(array)
        self.values[name] = array
        self.origin[name] = origin or (name, tuple(range(array.ndim)))

    def onnx_constant(self, name: str, kind: TensorKind, node: str, role: str, *,
                      axes: tuple[int, ...] | None = None, drop: int = 0) -> str:
        """The IR constant for ONNX constant ``name``, permuted by ``axes``, with ``drop``
        leading size-1 axes removed (the batch axis of a broadcast operand)."""
        array = self.values[name]
        if array.dtype.kind not in "biuf":
            raise FrontendError(f"node {node!r} ({self.op_types.get(node, '?')}): {role} {name!r} has "
                                f"element type {array.dtype}; finegrain needs numbers here")
        axes = tuple(range(array.ndim)) if axes is None else tuple(axes)
        self.check_finite(node, role, name, array)
        data = array.astype(np.float64).transpose(axes)
        assert all(s == 1 for s in data.shape[:drop])
        data = _frozen(data.reshape(data.shape[drop:]))
        source, source_axes = self.origin[name]
        # onnx_axes relates arrays of the same rank; with an axis dropped there is no such
        # relation, and plans address the constant in its IR shape.
        onnx_axes = tuple(source_axes[a] for a in axes) if drop == 0 else None
        quantizer = self.quantizers.get(name)
        if quantizer is not None:
            quantizer = drop_leading(quantizer.transpose(axes), drop)
            self.quantized_read.add(name)
        existing = self.tensors.get(name)
        if existing is not None:
            if (existing.kind == kind and existing.shape == data.shape
                    and np.array_equal(existing.data, data)):
                return name
            # The same ONNX constant used in another role or layout: a separate IR tensor.
            ir_name = self.fresh(f"{node}.{role}")
        else:
            ir_name = name
            self.taken.add(name)
        self.tensors[ir_name] = Tensor(ir_name, data.shape, kind, data=data, float_data=data,
                                       onnx_name=source, onnx_axes=onnx_axes, quantizer=quantizer)
        return ir_name

    def new_constant(self, node: str, role: str, data, kind: TensorKind) -> str:
        """A constant the frontend computes; it stands for no ONNX tensor."""
        data = _frozen(data)
        self.check_finite(node, role, f"{node}.{role}", data)
        name = self.fresh(f"{node}.{role}")
        self.tensors[name] = Tensor(name, data.shape, kind, data=data, float_data=data)
        return name

    def check_finite(self, node: str, role: str, name: str, array: np.ndarray) -> None:
        """Every constant is a finite number: fixed point has no NaN or infinity."""
        with np.errstate(over="ignore"):
            finite = np.isfinite(np.asarray(array, dtype=np.float64))
        if not finite.all():
            index = tuple(int(i) for i in np.argwhere(~finite)[0])
            value = np.asarray(array, dtype=np.float64)[index]
            raise FrontendError(
                f"node {node!r} ({self.op_types.get(node, '?')}): {role} {name!r} holds {value} at index "
                f"{list(index)} ({int((~finite).sum())} of {finite.size} values are not finite); "
                f"fixed point has no NaN or infinity: fix the model (retrain, or replace those values) "
                f"and export it again")

    # activations -------------------------------------------------------------------------

    def activation(self, proto: onnx.NodeProto, node: str, index: int) -> str:
        """The IR name of the node's input ``index``, which must be an activation."""
        onnx_name = proto.input[index] if index < len(proto.input) else ""
        if not onnx_name:
            raise FrontendError(f"node {node!r} ({proto.op_type}) has no input {index}")
        if self.is_constant(onnx_name):
            raise FrontendError(f"node {node!r} ({proto.op_type}): input {index} {onnx_name!r} is a "
                                f"constant where finegrain expects an activation")
        name = self.alias.get(onnx_name, onnx_name)
        if name not in self.tensors:
            raise FrontendError(f"node {node!r} ({proto.op_type}) reads {onnx_name!r}, which no earlier "
                                f"node or graph input defines (is the model truncated or unsorted?)")
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        """IR shape (no batch axis) of an IR tensor."""
        return self.tensors[name].shape

    def onnx_dims(self, onnx_name: str) -> tuple[int, ...]:
        """The ONNX shape of an activation, with a batch of 1 unless it lost its batch axis."""
        shape = self.shape(self.alias.get(onnx_name, onnx_name))
        return shape if onnx_name in self.batchless else (1, *shape)

    def emit(self, op: Op, node: str, inputs, output: str, onnx_node: str, attrs=None) -> str:
        """Append an IR node writing a new activation ``output``; return the output's IR name."""
        renamed = self.rename.get(output, output)
        self.link(output, renamed)
        output = renamed
        ir_node = Node(node, op, tuple(inputs), (output,), attrs or {}, onnx_nodes=(onnx_node,))
        partial = Graph("partial", (), (), (), self.tensors)
        where = f"node {onnx_node!r} ({self.op_types[onnx_node]})"
        try:
            shape = tuple(int(s) for s in output_shape(ir_node, partial))
        except IRError as e:  # its message names the IR node, which `where` already does
            raise FrontendError(f"{where}: {str(e).removeprefix(f'node {node!r}: ')}") from None
        if any(s <= 0 for s in shape):
            raise FrontendError(f"{where} would produce an empty tensor of shape {shape} (without "
                                f"batch); check its kernel, padding and input size")
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            raise FrontendError(f"{where} would produce {math.prod(shape):,} values per sample (shape "
                                f"{shape} without batch), more than the {MAX_TENSOR_ELEMENTS:,} finegrain "
                                f"supports; check its padding and sizes, or make the model smaller")
        self.taken.add(output)
        self.tensors[output] = Tensor(output, shape, TensorKind.ACTIVATION, onnx_name=output)
        self.nodes.append(ir_node)
        return output

    def uses_extra_outputs(self, proto: onnx.NodeProto) -> bool:
        """Whether anything reads an output after the first (BatchNormalization's running
        statistics, MaxPool's indices, Dropout's mask): finegrain computes only the first."""
        return any(o and o in self.read for o in proto.output[1:])

    def is_graph_output(self, onnx_name: str) -> bool:
        """Whether the value must exist under its own name (or an output's, if renamed)."""
        return onnx_name in self.output_names or onnx_name in self.rename

    def pass_through(self, node: str, x: str, onnx_output: str) -> None:
        """An op that leaves ``x`` unchanged: later nodes read ``x``.  A graph output must
        exist under its own name: it was written so already (see ``_output_renames``), or it
        gets an identity reshape (an output that copies a graph input or another output)."""
        if x == self.rename.get(onnx_output, onnx_output):
            return
        if self.is_graph_output(onnx_output):
            self.emit(Op.RESHAPE, node, [x], onnx_output, node, {"shape": self.shape(x)})
        else:
            self.link(onnx_output, x)

    def link(self, onnx_output: str, ir_name: str) -> None:
        """Let later nodes reading ONNX value ``onnx_output`` read IR tensor ``ir_name``."""
        if onnx_output != ir_name:
            self.alias[onnx_output] = ir_name

    # main loop ---------------------------------------------------------------------------

    def translate(self) -> Graph:
        g = self.onnx_graph
        self._check_names()
        for init in g.initializer:
            self.set_value(init.name, _initializer_array(init))
        for vi in g.input:
            if vi.name not in self.values:  # old models list initializers as inputs too
                self._add_input(vi)
        for index, proto in enumerate(g.node):
            name = self.node_name(proto.name or f"{proto.op_type}_{index}")
            self.op_types[name] = proto.op_type
            if id(proto) in self.absorbed:  # (a DequantizeLinear after its QuantizeLinear, ...)
                if any(i in self.misannotated for i in proto.input):  # its annotation inherits too
                    self.misannotated.update(o for o in proto.output if o)
                continue
            self._translate_node(proto, name)
            self._check_inferred_shapes(proto, name)
        outputs = [self._graph_output(o.name) for o in g.output]
        # A graph output's quantizer (an int8 output's QuantizeLinear) still leaves final scores.
        quantized_outputs = {n.inputs[0] for n in self.nodes if n.op == Op.QUANT and n.outputs[0] in outputs}
        for node in self.nodes:
            if node.op not in _OUTPUT_ONLY or node.outputs[0] in outputs:
                continue
            readers = [n for n in self.nodes if node.outputs[0] in n.inputs]
            if not (node.outputs[0] in quantized_outputs and len(readers) == 1):
                onnx_node = node.onnx_nodes[0]
                raise FrontendError(
                    f"node {onnx_node!r} ({self.op_types[onnx_node]}) is only supported where its "
                    f"output is a graph output, but {node.outputs[0]!r} is not one; it is a table "
                    f"look-up for final scores, so move it after the last layer or remove it")
        return Graph(g.name or self.path.stem, self.inputs, outputs, self.nodes, self.tensors)

    def _check_names(self) -> None:
        """ONNX's single assignment: every value, node and graph output is named once."""
        g = self.onnx_graph
        defined: dict[str, str] = {}  # value -> what defines it, for messages
        for t in g.initializer:
            if t.name in defined:
                raise FrontendError(f"the model has two initializers named {t.name!r}; names must be unique, "
                                    f"rename one and export again")
            defined[t.name] = "an initializer"
        for vi in g.input:
            if vi.name in defined and defined[vi.name] != "an initializer":
                raise FrontendError(f"graph input {vi.name!r} is listed twice; list each input once")
            defined.setdefault(vi.name, "a graph input")
        names: dict[str, int] = {}
        for index, proto in enumerate(g.node):
            label = f"node {proto.name or f'{proto.op_type}_{index}'!r} ({proto.op_type})"
            if proto.name and proto.name in names:
                raise FrontendError(f"{label}: nodes {names[proto.name]} and {index} are both named "
                                    f"{proto.name!r}; node names must be unique in an ONNX graph (layer "
                                    f"options and reports refer to them): rename one")
            names.setdefault(proto.name, index)
            if not any(proto.output):
                raise FrontendError(f"{label} has no output; remove it or give it one")
            for out in proto.output:
                if out and out in defined:
                    raise FrontendError(f"{label} writes {out!r}, which {defined[out]} already defines; "
                                        f"every tensor must be written once (rename one of them)")
                if out:
                    defined[out] = label
        seen = set()
        for o in g.output:
            if o.name in seen:
                raise FrontendError(f"graph output {o.name!r} is listed twice; list each output once")
            seen.add(o.name)

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        if not vi.type.HasField("tensor_type"):
            raise FrontendError(f"graph input {vi.name!r} is not a tensor")
        tensor_type = vi.type.tensor_type
        integer = _INTEGER_INPUTS.get(tensor_type.elem_type)
        if tensor_type.elem_type not in _FLOAT_TYPES and integer is None:
            type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            raise FrontendError(f"graph input {vi.name!r} has element type {type_name}; finegrain reads float "
                                f"inputs and int8/uint8/int16/uint16 codes (quantize with a bit plan instead)")
        dims = _static_dims(vi)
        if not dims:
            raise FrontendError(f"graph input {vi.name!r} has no shape (or rank 0); finegrain needs a "
                                f"static shape with a leading batch axis; re-export with static shapes")
        for axis, d in enumerate(dims[1:], start=1):
            if not isinstance(d, int) or d <= 0:
                raise FrontendError(
                    f"graph input {vi.name!r} has a dynamic shape that cannot be resolved: dim {axis} is "
                    f"{d!r}; re-export with static shapes (only axis 0, the batch, may be dynamic)")
        if math.prod(dims[1:]) > MAX_TENSOR_ELEMENTS:
            raise FrontendError(f"graph input {vi.name!r} has {math.prod(dims[1:]):,} values per sample "
                                f"(shape {dims}), more than the {MAX_TENSOR_ELEMENTS:,} finegrain supports; "
                                f"make the input smaller")
        if isinstance(dims[0], int) and dims[0] > 0:
            self.batch_sizes.add(dims[0])
        formats = None
        if integer is not None:  # its IR values are the integer codes
            bits, signed = integer
            self.integer_types[vi.name] = integer
            formats = Formats.uniform(tuple(dims[1:]), FixedType(bits, bits, signed, Rounding.TRN, Overflow.SAT))
        self.tensors[vi.name] = Tensor(vi.name, tuple(dims[1:]), TensorKind.INPUT, formats=formats,
                                       onnx_name=vi.name)
        self.inputs.append(vi.name)

    def _translate_node(self, proto: onnx.NodeProto, name: str) -> None:
        op_type = proto.op_type
        inputs = [i for i in proto.input if i]
        foreign = proto.domain not in ("", "ai.onnx")
        if proto.input and not inputs:
            raise FrontendError(f"node {name!r} ({op_type}): every input name is empty; connect its input")
        quantize = quant_translator(proto.domain, op_type)
        if quantize is not None:  # folded or not, a quantizer is read by its translator
            if not foreign:
                self._check_attributes(proto, name)
            quantize(self, proto, name)
            return
        outer = _outer_reads(proto)
        if outer:
            raise FrontendError(
                f"node {name!r} ({op_type}): its subgraph reads {', '.join(map(repr, outer[:3]))} of the main graph; "
                f"finegrain has no control flow: export the model with the branch or loop resolved (a traced "
                f"export, or onnxsim when its condition is constant)")
        if (not foreign and op_type not in _NONDETERMINISTIC
                and all(self.is_constant(i) for i in inputs)):
            self._fold(proto, name)
            return
        if op_type == "Shape" and not foreign:
            self._fold_shape(proto, name)
            return
        translate = None if foreign else _TRANSLATORS.get(op_type)
        if translate is None:
            self._check_not_a_quantizer_parameter(proto, name)
            op = f"{proto.domain}.{op_type}" if foreign else op_type
            raise FrontendError(
                f"node {name!r} ({op}) is not supported by finegrain; supported ONNX ops: "
                f"{', '.join(SUPPORTED_OPS)}; replace it in the model before export")
        self._check_attributes(proto, name)
        batchless = op_type not in BATCH_AWARE_OPS and _batchless_result(self, proto, name)
        self.quantized_read.clear()
        translate(self, proto, name)
        if batchless:
            self.batchless.add(proto.output[0])
        for i in dict.fromkeys(proto.input):
            if i in self.quantizers and i not in self.quantized_read:
                self.notes.append(
                    f"node {name!r} ({proto.op_type}) computes a new constant from the quantized {i!r} (negated, "
                    f"inverted or scaled), which loses its quantizer: that constant is float and needs a plan entry")

    def _check_not_a_quantizer_parameter(self, proto: onnx.NodeProto, name: str) -> None:
        """An unsupported node that computes a quantizer's scale, zero point or bit width at
        run time (dynamic quantization) is reported as that, at the quantizer."""
        seen, todo = set(), [o for o in proto.output if o]
        while todo:
            value = todo.pop()
            for reader in self.consumers.get(value, []):
                if id(reader) in seen:
                    continue
                seen.add(id(reader))
                if quant_translator(reader.domain, reader.op_type) is not None and value in reader.input[1:]:
                    where = f"node {reader.name or reader.output[0]!r} ({reader.op_type})"
                    raise FrontendError(
                        f"{where}: input {list(reader.input).index(value)} {value!r} is computed at run time "
                        f"(by {proto.op_type} node {name!r} and what follows); finegrain needs a quantizer's "
                        f"scale, zero point and bit width to be constants: export it with static quantization")
                todo.extend(o for o in reader.output if o)

    def _check_attributes(self, proto: onnx.NodeProto, name: str) -> None:
        """The node's attributes are the ones its ONNX schema (at the model's opset) defines,
        with their types, and the required ones are there: translators read them as such."""
        try:
            schema = onnx.defs.get_schema(proto.op_type, self.opset, "")
        except onnx.defs.SchemaError:
            return
        where = f"node {name!r} ({proto.op_type})"
        for attr in proto.attribute:
            expected = schema.attributes.get(attr.name)
            if expected is None:
                raise FrontendError(f"{where}: {attr.name!r} is not an attribute of {proto.op_type} at opset "
                                    f"{self.opset} (it has {', '.join(sorted(schema.attributes)) or 'none'}); "
                                    f"remove it or export the model again")
            if int(attr.type) != int(expected.type):
                given = onnx.AttributeProto.AttributeType.Name(attr.type)
                raise FrontendError(f"{where}: attribute {attr.name!r} is of type {given}, but ONNX defines it "
                                    f"as {expected.type.name}; export the model again")
        given = {attr.name for attr in proto.attribute}
        missing = sorted(k for k, v in schema.attributes.items() if v.required and k not in given)
        if missing:
            raise FrontendError(f"{where}: required attribute {missing[0]!r} is missing; export the model again")

    def _fold(self, proto: onnx.NodeProto, name: str) -> None:
        if proto.op_type in _ALIAS_OPS or proto.op_type == "Transpose":
            # Keep track of which initializer a folded weight came from.
            source, source_axes = self.origin[proto.input[0]]
            array = self.values[proto.input[0]]
            perm = tuple(range(array.ndim))
            if proto.op_type == "Transpose":
                perm = tuple(_attributes(proto).get("perm", reversed(range(array.ndim))))
            self.set_value(proto.output[0], array.transpose(perm), (source, tuple(source_axes[p] for p in perm)))
            if proto.input[0] in self.quantizers:
                self.quantizers[proto.output[0]] = self.quantizers[proto.input[0]].transpose(perm)
            return
        # onnx's reference evaluator (~0.1 s to import) only when a model has a constant subgraph
        from onnx.reference import ReferenceEvaluator

        feeds = {i: self.values[i] for i in proto.input if i}
        try:
            results = ReferenceEvaluator(self._one_node_model(proto, feeds)).run(None, feeds)
        except Exception as e:
            reraise_interrupt(e)
            raise FrontendError(f"node {name!r} ({proto.op_type}): its inputs are constant but it could "
                                f"not be evaluated: {type(e).__name__}: {e}") from None
        for out, array in zip([o for o in proto.output if o], results, strict=True):
            self.set_value(out, array)
        self._carry_quantizer(proto, name)

    def _carry_quantizer(self, proto: onnx.NodeProto, name: str) -> None:
        """A quantized constant folded through a reshape keeps its quantizer when the
        quantizer is per-tensor or its channel axis survives; through any other op (or a
        reshape that spreads the channels) its values become a float constant, with a note."""
        quantized = [i for i in proto.input if i in self.quantizers]
        if not quantized:
            return
        out = proto.output[0]
        if proto.op_type in _RESHAPE_OPS and quantized == [proto.input[0]]:
            q = self.quantizers[proto.input[0]]
            moved = reshape_constant_quantizer(q, self.values[proto.input[0]].shape, self.values[out].shape)
            if moved is not None:
                self.quantizers[out] = full_rank(moved, self.values[out].ndim)
                return
        self.notes.append(
            f"node {name!r} ({proto.op_type}) computes constant {out!r} from the quantized {quantized[0]!r}; "
            f"finegrain cannot carry the quantizer through it, so {out!r} is a float constant that needs a "
            f"plan entry")

    def _one_node_model(self, proto: onnx.NodeProto, feeds: dict) -> onnx.ModelProto:
        # A model, not the bare node, so that the node runs with the semantics of the
        # model's opset (Unsqueeze's axes moved from attribute to input in opset 13, ...).
        inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
                  for name, value in feeds.items()]
        outputs = [helper.make_empty_tensor_value_info(o) for o in proto.output if o]
        graph = helper.make_graph([proto], "fold", inputs, outputs)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])

    def _fold_shape(self, proto: onnx.NodeProto, name: str) -> None:
        self.activation(proto, name, 0)  # an activation, defined earlier
        shape = np.array(self.onnx_dims(proto.input[0]), dtype=np.int64)
        a = _attributes(proto)
        start, end = a.get("start", 0), a.get("end", None)
        self.set_value(proto.output[0], shape[start:end])

    def _graph_output(self, onnx_name: str) -> str:
        if self.is_constant(onnx_name):
            raise FrontendError(f"graph output {onnx_name!r} is a constant (it does not depend on any "
                                f"input); finegrain compiles outputs computed from inputs")
        if onnx_name not in self.tensors:
            raise FrontendError(f"graph output {onnx_name!r} is never produced by any node")
        if onnx_name in self.inputs:
            raise FrontendError(f"graph output {onnx_name!r} is the graph input itself; finegrain compiles "
                                f"models with at least one layer between input and output")
        return onnx_name

    def _check_inferred_shapes(self, proto: onnx.NodeProto, name: str) -> None:
        """Compare the shapes finegrain computes with the file's (or ONNX inference's) annotations.

        The error names the first node whose annotation is wrong: a node whose input
        annotations were already wrong inherits the mismatch, so its own is not checked.
        """
        # ONNX shape inference keeps a ceil-mode window that starts in the end padding;
        # onnxruntime, the ONNX reference and PyTorch drop it (and so does finegrain).
        known_wrong = (proto.op_type in ("MaxPool", "AveragePool")
                       and bool(_attributes(proto).get("ceil_mode", 0)))
        inherited = any(i in self.misannotated for i in proto.input)
        for out in proto.output:
            ir_name = self.alias.get(out, out)
            dims = self.inferred.get(out)
            if out in self.batchless and dims:
                dims = [1, *dims]  # the IR shape is the whole ONNX shape
            if (not out or self.is_constant(out) or ir_name not in self.tensors or not dims
                    or not all(isinstance(d, int) for d in dims[1:])):
                if inherited and out:  # not compared (a QuantizeLinear's codes): still inherited
                    self.misannotated.add(out)
                continue
            if tuple(dims[1:]) == self.shape(ir_name):
                continue
            if known_wrong or inherited:
                self.misannotated.add(out)
                continue
            raise FrontendError(
                f"node {name!r} ({proto.op_type}): finegrain computes shape {self.shape(ir_name)} "
                f"(without batch) for {out!r} but the model's shape annotation (or ONNX shape "
                f"inference) says {tuple(dims)}; this node's annotation is wrong or this use of "
                f"{proto.op_type} is unsupported; re-export the model, or remove its value_info")
