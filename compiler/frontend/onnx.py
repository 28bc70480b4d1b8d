"""Float ONNX -> finegrain IR.  The only module in finegrain that imports ``onnx``.

:func:`load_onnx` reads a float model as torch.onnx.export (TorchScript and dynamo
exporters), tf2onnx and keras2onnx write it, and returns a :class:`~compiler.ir.Graph`
whose constants hold float64 data and no formats.  It walks the ONNX nodes once, in their
(topological) order, and for each node either

* folds it into a constant, when all its inputs are constant (``Shape`` of an activation
  counts as constant: shapes are static with a batch of 1), or
* translates it with the one function registered for its op type in ``_TRANSLATORS``.

Batch axis: axis 0 of every ONNX activation is the batch.  IR shapes drop it, and so do the
attributes the translators write (reshape targets, transpose permutations, concat and
softmax axes).  Every other dimension must be static.

Names: IR tensors carry their ONNX value names (a bit plan refers to them), IR nodes their
ONNX node names.  A constant's ``onnx_name``/``onnx_axes`` say which ONNX tensor it is and
how it was permuted (a weight folded from ``Transpose(initializer)`` names the initializer);
``onnx_axes`` is None when a leading batch axis of size 1 was dropped from an elementwise
operand.  A constant the frontend computes (a negated subtrahend, a divisor's reciprocal, an
alpha-scaled Gemm weight, pooling reciprocals, LeakyRelu's alpha) is named after its node,
``"<node>.<role>"``, and has no ``onnx_name``, because a format meant for the ONNX value
would not fit it.

A graph output reached through Identity/Dropout is written directly by the node that
computes it (the IR has no copy op); an output that copies a graph input or another output
gets an identity RESHAPE.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..errors import FrontendError
from ..ir import Graph, IRError, Node, Op, Tensor, TensorKind, output_shape, verify

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16}

# Ops that must not be folded even when their inputs are constant: their value changes
# from run to run.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                               "RandomUniformLike", "Multinomial", "Bernoulli"})

# Ops whose result is a table look-up in hardware: their output is a final score, so they
# may only produce graph outputs.
_OUTPUT_ONLY = (Op.SOFTMAX, Op.SIGMOID)

# Ops that pass their first input through unchanged at inference.
_ALIAS_OPS = frozenset({"Identity", "Dropout"})


def load_onnx(path) -> Graph:
    """Read the float ONNX model at ``path`` and translate it to an IR graph.

    Raises :class:`FrontendError` when the file cannot be read or the model uses something
    finegrain does not support; the message names the node or tensor and says how to fix it.
    """
    path = Path(path)
    model = _read_model(path)
    graph = _Translator(model, path).translate()
    verify(graph)
    return graph


# --- reading ------------------------------------------------------------------------------


def _read_model(path: Path) -> onnx.ModelProto:
    if not path.exists():
        raise FrontendError(f"{path}: no such file; give the path of an .onnx model")
    if not path.is_file():
        raise FrontendError(f"{path} is not a file; give the path of an .onnx model")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-ish errors, OSError ...
        raise FrontendError(f"{path} is not a readable ONNX model (truncated or not ONNX?): "
                            f"{type(e).__name__}: {e}") from None
    if model.ir_version == 0 or not model.graph.output:
        raise FrontendError(f"{path} is not an ONNX model: it has no IR version or no graph outputs")
    try:
        # Only used to cross-check the shapes the IR rules compute; a model that defeats
        # shape inference can still be translated.
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        pass
    return model


def _default_opset(model: onnx.ModelProto, path: Path) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise FrontendError(f"{path}: the model imports no version of the default ONNX operator set")


def _frozen(data) -> np.ndarray:
    """A read-only float64 copy: IR tensors are frozen, and so are their arrays."""
    data = np.array(data, dtype=np.float64)
    data.setflags(write=False)
    return data


def _attributes(proto: onnx.NodeProto) -> dict:
    out = {}
    for attr in proto.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _static_dims(value_info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """Dims of a value: int if static, the symbol (or None) otherwise; None if no shape."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        else:
            dims.append(d.dim_param or None)
    return dims


# --- translation state --------------------------------------------------------------------


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
        self.taken = self._all_onnx_names()
        self.node_names: set[str] = set()
        self.op_types: dict[str, str] = {}  # ONNX node name -> op type, for messages
        self.inferred = self._inferred_shapes()
        self.rename = self._output_renames()
        self.output_names = {o.name for o in model.graph.output}
        self.read = {i for p in model.graph.node for i in p.input} | self.output_names

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
        name, k = base, 1
        while name in self.node_names:
            name, k = f"{base}_{k}", k + 1
        self.node_names.add(name)
        return name

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
        axes = tuple(range(array.ndim)) if axes is None else tuple(axes)
        data = array.astype(np.float64).transpose(axes)
        assert all(s == 1 for s in data.shape[:drop])
        data = _frozen(data.reshape(data.shape[drop:]))
        source, source_axes = self.origin[name]
        # onnx_axes relates arrays of the same rank; with an axis dropped there is no such
        # relation, and plans address the constant in its IR shape.
        onnx_axes = tuple(source_axes[a] for a in axes) if drop == 0 else None
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
                                       onnx_name=source, onnx_axes=onnx_axes)
        return ir_name

    def new_constant(self, node: str, role: str, data, kind: TensorKind) -> str:
        """A constant the frontend computes; it stands for no ONNX tensor."""
        data = _frozen(data)
        name = self.fresh(f"{node}.{role}")
        self.tensors[name] = Tensor(name, data.shape, kind, data=data, float_data=data)
        return name

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
        except IRError as e:
            raise FrontendError(f"{where}: {e}") from None
        if any(s <= 0 for s in shape):
            raise FrontendError(f"{where} would produce an empty tensor of shape {shape} (without "
                                f"batch); check its kernel, padding and input size")
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
        for init in g.initializer:
            self.set_value(init.name, numpy_helper.to_array(init))
        for vi in g.input:
            if vi.name not in self.values:  # old models list initializers as inputs too
                self._add_input(vi)
        for index, proto in enumerate(g.node):
            name = self.node_name(proto.name or f"{proto.op_type}_{index}")
            self.op_types[name] = proto.op_type
            self._translate_node(proto, name)
            self._check_inferred_shapes(proto, name)
        outputs = [self._graph_output(o.name) for o in g.output]
        for node in self.nodes:
            if node.op in _OUTPUT_ONLY and node.outputs[0] not in outputs:
                onnx_node = node.onnx_nodes[0]
                raise FrontendError(
                    f"node {onnx_node!r} ({self.op_types[onnx_node]}) is only supported where its "
                    f"output is a graph output, but {node.outputs[0]!r} is not one; it is a table "
                    f"look-up for final scores, so move it after the last layer or remove it")
        return Graph(g.name or self.path.stem, self.inputs, outputs, self.nodes, self.tensors)

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        if not vi.type.HasField("tensor_type"):
            raise FrontendError(f"graph input {vi.name!r} is not a tensor")
        tensor_type = vi.type.tensor_type
        if tensor_type.elem_type not in _FLOAT_TYPES:
            type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            raise FrontendError(f"graph input {vi.name!r} has element type {type_name}; load_onnx reads "
                                f"float models (quantize with a bit plan instead)")
        dims = _static_dims(vi)
        if not dims:
            raise FrontendError(f"graph input {vi.name!r} has no shape (or rank 0); finegrain needs a "
                                f"static shape with a leading batch axis; re-export with static shapes")
        for axis, d in enumerate(dims[1:], start=1):
            if not isinstance(d, int) or d <= 0:
                raise FrontendError(
                    f"graph input {vi.name!r} has a dynamic shape that cannot be resolved: dim {axis} is "
                    f"{d!r}; re-export with static shapes (only axis 0, the batch, may be dynamic)")
        if isinstance(dims[0], int) and dims[0] > 0:
            self.batch_sizes.add(dims[0])
        self.tensors[vi.name] = Tensor(vi.name, tuple(dims[1:]), TensorKind.INPUT, onnx_name=vi.name)
        self.inputs.append(vi.name)

    def _translate_node(self, proto: onnx.NodeProto, name: str) -> None:
        op_type = proto.op_type
        inputs = [i for i in proto.input if i]
        foreign = proto.domain not in ("", "ai.onnx")
        if (not foreign and op_type not in _NONDETERMINISTIC
                and all(self.is_constant(i) for i in inputs)):
            self._fold(proto, name)
            return
        if op_type == "Shape" and not foreign:
            self._fold_shape(proto, name)
            return
        translate = None if foreign else _TRANSLATORS.get(op_type)
        if translate is None:
            op = f"{proto.domain}.{op_type}" if foreign else op_type
            raise FrontendError(
                f"node {name!r} ({op}) is not supported by finegrain; supported ONNX ops: "
                f"{', '.join(SUPPORTED_OPS)}; replace it in the model before export")
        translate(self, proto, name)

    def _fold(self, proto: onnx.NodeProto, name: str) -> None:
        if proto.op_type in _ALIAS_OPS or proto.op_type == "Transpose":
            # Keep track of which initializer a folded weight came from.
            source, source_axes = self.origin[proto.input[0]]
            array = self.values[proto.input[0]]
            perm = tuple(range(array.ndim))
            if proto.op_type == "Transpose":
                perm = tuple(_attributes(proto).get("perm", reversed(range(array.ndim))))
            self.set_value(proto.output[0], array.transpose(perm), (source, tuple(source_axes[p] for p in perm)))
            return
        feeds = {i: self.values[i] for i in proto.input if i}
        try:
            results = ReferenceEvaluator(self._one_node_model(proto, feeds)).run(None, feeds)
        except Exception as e:
            raise FrontendError(f"node {name!r} ({proto.op_type}): its inputs are constant but it could "
                                f"not be evaluated: {type(e).__name__}: {e}") from None
        for out, array in zip([o for o in proto.output if o], results, strict=True):
            self.set_value(out, array)

    def _one_node_model(self, proto: onnx.NodeProto, feeds: dict) -> onnx.ModelProto:
        # A model, not the bare node, so that the node runs with the semantics of the
        # model's opset (Unsqueeze's axes moved from attribute to input in opset 13, ...).
        inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
                  for name, value in feeds.items()]
        outputs = [helper.make_empty_tensor_value_info(o) for o in proto.output if o]
        graph = helper.make_graph([proto], "fold", inputs, outputs)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])

    def _fold_shape(self, proto: onnx.NodeProto, name: str) -> None:
        x = self.activation(proto, name, 0)
        shape = np.array([1, *self.shape(x)], dtype=np.int64)
        a = _attributes(proto)
        start, end = a.get("start", 0), a.get("end", None)
        self.set_value(proto.output[0], shape[start:end])

    def _graph_output(self, onnx_name: str) -> str:
        if self.is_constant(onnx_name):
            raise FrontendError(f"graph output {onnx_name!r} is a constant (it does not depend on any "
                                f"input); finegrain compiles outputs computed from inputs")
        if onnx_name not in self.tensors:
            raise FrontendError(f"graph output {onnx_name!r} is never produced by any node")
        return onnx_name

    def _check_inferred_shapes(self, proto: onnx.NodeProto, name: str) -> None:
        if proto.op_type in ("MaxPool", "AveragePool") and _attributes(proto).get("ceil_mode", 0):
            # ONNX shape inference keeps a ceil-mode window that starts in the end padding;
            # onnxruntime, the ONNX reference and PyTorch drop it (and so does finegrain).
            return
        for out in proto.output:
            ir_name = self.alias.get(out, out)
            dims = self.inferred.get(out)
            if not out or self.is_constant(out) or ir_name not in self.tensors or not dims:
                continue
            if not all(isinstance(d, int) for d in dims[1:]):
                continue
            if tuple(dims[1:]) != self.shape(ir_name):
                raise FrontendError(
                    f"node {name!r} ({proto.op_type}): finegrain computes shape {self.shape(ir_name)} "
                    f"(without batch) for {out!r} but ONNX shape inference says {tuple(dims)}; the "
                    f"model's shape annotations may be wrong, or this use of {proto.op_type} is unsupported")


# --- shared helpers for translators ---------------------------------------------------------


def _fail(proto: onnx.NodeProto, node: str, problem: str, fix: str = "") -> FrontendError:
    return FrontendError(f"node {node!r} ({proto.op_type}): {problem}" + (f"; {fix}" if fix else ""))


def _input(proto: onnx.NodeProto, index: int) -> str:
    """The ONNX name of optional input ``index``, or "" if absent."""
    return proto.input[index] if index < len(proto.input) else ""


def _constant_input(tr: _Translator, proto, node: str, index: int, what: str) -> str:
    name = _input(proto, index)
    if not name:
        raise _fail(proto, node, f"{what} (input {index}) is missing")
    if not tr.is_constant(name):
        raise _fail(proto, node, f"{what} {name!r} is computed at run time",
                    "finegrain needs it to be a constant (an initializer)")
    return name


def _ints(values, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if values else (default,) * n


def _normalize_axis(proto, node: str, axis: int, rank: int) -> int:
    """An ONNX axis (may be negative) as a non-negative ONNX axis of a tensor of ``rank``."""
    if not -rank <= axis < rank:
        raise _fail(proto, node, f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _no_batch_axis(proto, node: str, axis: int) -> int:
    """An ONNX axis (already non-negative) as an IR axis; the batch axis is refused."""
    if axis == 0:
        raise _fail(proto, node, "axis 0 is the batch axis, which finegrain does not operate along",
                    "rewrite the model so that the batch axis is left alone")
    return axis - 1


def _resolve_pads(proto, node: str, a: dict, spatial, kernel, strides, dilations) -> tuple[int, ...]:
    """Explicit pads (all begins, then all ends) from ``pads`` or ``auto_pad``."""
    n = len(spatial)
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = _ints(a.get("pads"), 2 * n, 0)
        if len(pads) != 2 * n or min(pads) < 0:
            raise _fail(proto, node, f"pads {list(pads)} do not fit {n} spatial dims")
        return pads
    if auto_pad == "VALID":
        return (0,) * (2 * n)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise _fail(proto, node, f"auto_pad {auto_pad!r} is not an ONNX value")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begins, *ends)


def _elementwise_drop(tr: _Translator, proto, node: str, const: str, x: str) -> int:
    """How many leading axes to drop from constant ``const`` broadcast against activation ``x``.

    In ONNX the constant broadcasts against the activation *with* its batch axis; an operand
    of the same rank has a batch axis of its own, which must be 1 and is dropped so that
    numpy broadcasting against the IR shape means the same thing.
    """
    onnx_rank = len(tr.shape(x)) + 1
    shape = tr.value(const).shape
    if len(shape) > onnx_rank:
        raise _fail(proto, node, f"constant {const!r} of shape {shape} has more axes than the "
                                 f"activation (rank {onnx_rank} with batch)",
                    "broadcasting an activation up to a higher rank is not supported")
    if len(shape) == onnx_rank:
        if shape[0] != 1:
            raise _fail(proto, node, f"constant {const!r} of shape {shape} varies along the batch axis",
                        "a constant operand must be the same for every batch row")
        return 1
    return 0


def _elementwise_constant(tr: _Translator, proto, node: str, const: str, x: str, kind: TensorKind,
                          role: str, transform: Callable | None = None) -> str:
    """The IR operand for constant ``const`` of an elementwise op on ``x``; ``transform``
    (negate, reciprocal) makes it a computed constant."""
    drop = _elementwise_drop(tr, proto, node, const, x)
    if transform is None:
        return tr.onnx_constant(const, kind, node, role, drop=drop)
    data = tr.value(const).astype(np.float64)
    return tr.new_constant(node, role, transform(data.reshape(data.shape[drop:])), kind)


def _same_rank_activations(tr: _Translator, proto, node: str, a: str, b: str) -> None:
    # Two activations both carry a batch axis; with different ranks ONNX broadcasting would
    # line the batch of one up with a feature axis of the other.
    if len(tr.shape(a)) != len(tr.shape(b)):
        raise _fail(proto, node, f"activations {a!r} {tr.shape(a)} and {b!r} {tr.shape(b)} have "
                                 f"different ranks", "reshape them to the same rank first")


def _negate(tr: _Translator, proto, node: str, x: str) -> str:
    """MUL(x, -1) into a new activation: how ``c - x`` and ``a - b`` are built."""
    minus_one = tr.new_constant(node, "minus_one", -1.0, TensorKind.WEIGHT)
    return tr.emit(Op.MUL, tr.node_name(f"{node}.negate"), [x, minus_one],
                   tr.fresh(f"{node}.negated"), node)


def _pool_geometry(proto, node: str, a: dict, spatial, kernel, dilations):
    """Strides, explicit pads and the pads without ceil-mode extra, for MaxPool/AveragePool.

    ``ceil_mode=1`` is turned into extra end padding sized so that the floor formula gives
    the ceil-mode output size.  The extra padding never contributes: MAXPOOL pads with -inf
    and every window still holds at least one real element (a window that would start in the
    end padding is dropped, as in PyTorch and onnxruntime), and AVGPOOL's reciprocal does not
    count it.
    """
    n = len(spatial)
    strides = _ints(a.get("strides"), n, 1)
    pads = _resolve_pads(proto, node, a, spatial, kernel, strides, dilations)
    declared = pads
    if a.get("ceil_mode", 0):
        ends = list(pads[n:])
        for i in range(n):
            size, k, s, d = spatial[i], kernel[i], strides[i], dilations[i]
            span = size + pads[i] + pads[n + i] - d * (k - 1) - 1
            out = -(-span // s) + 1
            if (out - 1) * s >= size + pads[i]:
                out -= 1
            ends[i] += max(0, (out - 1) * s + d * (k - 1) + 1 - (size + pads[i] + pads[n + i]))
        pads = (*pads[:n], *ends)
    return strides, pads, declared


def _kernel_shape(proto, node: str, a: dict, n: int) -> tuple[int, ...]:
    kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
    if len(kernel) != n:
        raise _fail(proto, node, f"kernel_shape {list(kernel)} does not fit {n} spatial dims")
    return kernel


def _pool_input(tr: _Translator, proto, node: str) -> str:
    x = tr.activation(proto, node, 0)
    if len(tr.shape(x)) not in (2, 3):
        raise _fail(proto, node, f"input {x!r} has shape {tr.shape(x)} (without batch)",
                    "only 1D and 2D pooling (C, L) / (C, H, W) are supported")
    return x


def _avgpool(tr: _Translator, node: str, onnx_node: str, x: str, output: str,
             kernel, strides, pads, declared, count_include_pad: bool) -> str:
    """AVGPOOL with its reciprocal: 1 / (elements each output window averages).

    ``declared`` are the model's pads; ``pads`` may add ceil-mode end padding, which no
    window counts (as in PyTorch and onnxruntime).
    """
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    counts = []
    for i in range(n):
        out = (spatial[i] + pads[i] + pads[n + i] - kernel[i]) // strides[i] + 1
        start = np.arange(out) * strides[i] - pads[i]
        lo, hi = (-declared[i], spatial[i] + declared[n + i]) if count_include_pad else (0, spatial[i])
        counts.append(np.minimum(start + kernel[i], hi) - np.maximum(start, lo))
    count = counts[0] if n == 1 else np.multiply.outer(counts[0], counts[1])
    reciprocal = np.broadcast_to(1.0 / count, (tr.shape(x)[0], *count.shape))
    r = tr.new_constant(node, "reciprocal", reciprocal, TensorKind.CONST)
    attrs = {"kernel": tuple(kernel), "strides": tuple(strides), "pads": tuple(pads),
             "count_include_pad": int(count_include_pad)}
    return tr.emit(Op.AVGPOOL, node, [x, r], output, onnx_node, attrs)


def _global_pool(tr: _Translator, node: str, onnx_node: str, x: str, output: str, op: Op) -> str:
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    zeros, ones = (0,) * (2 * n), (1,) * n
    if op == Op.MAXPOOL:
        attrs = {"kernel": spatial, "strides": ones, "pads": zeros, "dilations": ones}
        return tr.emit(Op.MAXPOOL, node, [x], output, onnx_node, attrs)
    return _avgpool(tr, node, onnx_node, x, output, spatial, ones, zeros, zeros, False)


def _axes(tr: _Translator, proto, node: str, attr_opset: int) -> list[int] | None:
    """The ``axes`` of Squeeze/Unsqueeze/Reduce*: an attribute before ``attr_opset``, an input from it."""
    if tr.opset < attr_opset:
        axes = _attributes(proto).get("axes")
        return None if axes is None else [int(v) for v in axes]
    name = _input(proto, 1)
    if not name:
        return None
    return [int(v) for v in tr.value(_constant_input(tr, proto, node, 1, "axes")).reshape(-1)]


# --- translators: one per ONNX op type ------------------------------------------------------


def _gemm(tr: _Translator, proto, node: str) -> None:
    a = _attributes(proto)
    if a.get("transA", 0):
        raise _fail(proto, node, "transA=1 is not supported", "export the layer as x @ W (transA=0)")
    x = tr.activation(proto, node, 0)
    if len(tr.shape(x)) != 1:
        raise _fail(proto, node, f"input {x!r} has shape {tr.shape(x)} (without batch); Gemm needs "
                                 f"a (batch, features) input")
    b = _constant_input(tr, proto, node, 1, "weight B")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    # IR weights are [out, in]; ONNX B is [in, out] unless transB.
    axes = (0, 1) if a.get("transB", 0) else (1, 0)
    if alpha == 1.0:
        w = tr.onnx_constant(b, TensorKind.WEIGHT, node, "weight", axes=axes)
    else:
        w = tr.new_constant(node, "weight", alpha * tr.value(b).astype(np.float64).transpose(axes),
                            TensorKind.WEIGHT)
    inputs = [x, w]
    out_features = tr.shape(w)[0]
    c = _input(proto, 2)
    if c and beta != 0.0:
        c = _constant_input(tr, proto, node, 2, "bias C")
        shape = tr.value(c).shape
        if shape == (out_features,) and beta == 1.0:
            inputs.append(tr.onnx_constant(c, TensorKind.BIAS, node, "bias"))
        elif shape == (1, out_features) and beta == 1.0:
            inputs.append(tr.onnx_constant(c, TensorKind.BIAS, node, "bias", drop=1))
        else:
            try:
                bias = np.broadcast_to(tr.value(c).astype(np.float64), (1, out_features))[0]
            except ValueError:
                raise _fail(proto, node, f"bias C {c!r} of shape {shape} does not broadcast to "
                                         f"(batch, {out_features}) with the same value for every "
                                         f"batch row") from None
            inputs.append(tr.new_constant(node, "bias", beta * bias, TensorKind.BIAS))
    tr.emit(Op.DENSE, node, inputs, proto.output[0], node)


def _matmul(tr: _Translator, proto, node: str) -> None:
    if tr.is_constant(proto.input[0]) or not tr.is_constant(proto.input[1]):
        raise _fail(proto, node, "only activation @ constant-matrix is supported",
                    "the second operand must be an initializer (the weights)")
    x = tr.activation(proto, node, 0)
    b = proto.input[1]
    if tr.value(b).ndim != 2 or not tr.shape(x):
        raise _fail(proto, node, f"weight {b!r} has shape {tr.value(b).shape} and input {x!r} "
                                 f"{tr.shape(x)} (without batch)", "only x[..., in] @ W[in, out] is supported")
    w = tr.onnx_constant(b, TensorKind.WEIGHT, node, "weight", axes=(1, 0))
    tr.emit(Op.DENSE, node, [x, w], proto.output[0], node)


def _binary_operands(tr: _Translator, proto, node: str):
    """(activation, other, other_is_constant, activation_is_first) for Add/Sub/Mul/Div."""
    first, second = proto.input[0], proto.input[1]
    if tr.is_constant(first):
        return tr.activation(proto, node, 1), first, True, False
    x = tr.activation(proto, node, 0)
    if tr.is_constant(second):
        return x, second, True, True
    return x, tr.activation(proto, node, 1), False, True


def _add(tr: _Translator, proto, node: str) -> None:
    x, other, constant, _ = _binary_operands(tr, proto, node)
    if constant:
        other = _elementwise_constant(tr, proto, node, other, x, TensorKind.BIAS, "addend")
    else:
        _same_rank_activations(tr, proto, node, x, other)
    tr.emit(Op.ADD, node, [x, other], proto.output[0], node)


def _sub(tr: _Translator, proto, node: str) -> None:
    x, other, constant, x_first = _binary_operands(tr, proto, node)
    if constant and x_first:  # x - c = x + (-c)
        c = _elementwise_constant(tr, proto, node, other, x, TensorKind.BIAS, "negated", np.negative)
        tr.emit(Op.ADD, node, [x, c], proto.output[0], node)
    elif constant:  # c - x = (-1 * x) + c
        c = _elementwise_constant(tr, proto, node, other, x, TensorKind.BIAS, "minuend")
        tr.emit(Op.ADD, node, [_negate(tr, proto, node, x), c], proto.output[0], node)
    else:  # a - b = a + (-1 * b)
        _same_rank_activations(tr, proto, node, x, other)
        tr.emit(Op.ADD, node, [x, _negate(tr, proto, node, other)], proto.output[0], node)


def _mul(tr: _Translator, proto, node: str) -> None:
    x, other, constant, _ = _binary_operands(tr, proto, node)
    if not constant:
        raise _fail(proto, node, "multiplying two activations is not supported",
                    "only multiplication by a constant is")
    c = _elementwise_constant(tr, proto, node, other, x, TensorKind.WEIGHT, "factor")
    tr.emit(Op.MUL, node, [x, c], proto.output[0], node)


def _div(tr: _Translator, proto, node: str) -> None:
    x, other, constant, x_first = _binary_operands(tr, proto, node)
    if not (constant and x_first):
        raise _fail(proto, node, "only division of an activation by a constant is supported")
    if np.any(tr.value(other) == 0):
        raise _fail(proto, node, f"divisor {other!r} contains zeros")
    c = _elementwise_constant(tr, proto, node, other, x, TensorKind.WEIGHT, "inverse", np.reciprocal)
    tr.emit(Op.MUL, node, [x, c], proto.output[0], node)


def _conv(tr: _Translator, proto, node: str) -> None:
    a = _attributes(proto)
    x = tr.activation(proto, node, 0)
    w_name = _constant_input(tr, proto, node, 1, "weight W")
    w = tr.value(w_name)
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    if n not in (1, 2) or w.ndim != n + 2:
        raise _fail(proto, node, f"input {x!r} {tr.shape(x)} (without batch) with weight {w.shape}",
                    "only 1D and 2D convolutions are supported")
    kernel = tuple(w.shape[2:])
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != kernel:
        raise _fail(proto, node, f"kernel_shape {list(a['kernel_shape'])} does not match weight {w.shape}")
    strides = _ints(a.get("strides"), n, 1)
    dilations = _ints(a.get("dilations"), n, 1)
    pads = _resolve_pads(proto, node, a, spatial, kernel, strides, dilations)
    inputs = [x, tr.onnx_constant(w_name, TensorKind.WEIGHT, node, "weight")]
    if _input(proto, 2):
        inputs.append(tr.onnx_constant(_constant_input(tr, proto, node, 2, "bias B"), TensorKind.BIAS,
                                       node, "bias"))
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": int(a.get("group", 1))}
    tr.emit(Op.CONV, node, inputs, proto.output[0], node, attrs)


def _batchnorm(tr: _Translator, proto, node: str) -> None:
    a = _attributes(proto)
    if a.get("training_mode", 0):
        raise _fail(proto, node, "training_mode=1", "export the model in eval mode")
    if tr.uses_extra_outputs(proto):
        raise _fail(proto, node, "the running statistics are used (training mode)",
                    "export the model in eval mode")
    x = tr.activation(proto, node, 0)
    if not tr.shape(x):
        raise _fail(proto, node, f"input {x!r} has no channel axis")
    channels = tr.shape(x)[0]
    params = []
    for index, role in enumerate(("scale", "bias", "mean", "var"), start=1):
        name = _constant_input(tr, proto, node, index, role)
        if tr.value(name).shape != (channels,):
            raise _fail(proto, node, f"{role} {name!r} has shape {tr.value(name).shape}, expected "
                                     f"({channels},) for {channels} channels")
        params.append(tr.onnx_constant(name, TensorKind.WEIGHT, node, role))
    tr.emit(Op.BATCHNORM, node, [x, *params], proto.output[0], node,
            {"epsilon": float(a.get("epsilon", 1e-5))})


def _relu(tr: _Translator, proto, node: str) -> None:
    tr.emit(Op.RELU, node, [tr.activation(proto, node, 0)], proto.output[0], node)


def _leaky_relu(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    alpha = tr.new_constant(node, "alpha", float(_attributes(proto).get("alpha", 0.01)), TensorKind.CONST)
    tr.emit(Op.LEAKY_RELU, node, [x, alpha], proto.output[0], node)


def _clip(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    bounds = []  # (IR constant or None) for min, max
    if tr.opset < 11:
        a = _attributes(proto)
        # Before opset 11 an absent bound defaults to the float range, i.e. no bound.
        for role in ("min", "max"):
            value = a.get(role)
            unbounded = value is None or abs(value) >= np.finfo(np.float32).max
            bounds.append(None if unbounded else tr.new_constant(node, role, float(value), TensorKind.CONST))
    else:
        for index, role in ((1, "min"), (2, "max")):
            if not _input(proto, index):
                bounds.append(None)
                continue
            name = _constant_input(tr, proto, node, index, role)
            if tr.value(name).size != 1:
                raise _fail(proto, node, f"{role} {name!r} is not a scalar")
            bounds.append(tr.onnx_constant(name, TensorKind.CONST, node, role, drop=tr.value(name).ndim))
    low, high = bounds
    if low is None and high is None:
        tr.pass_through(node, x, proto.output[0])
        return
    if low is None:
        raise _fail(proto, node, "Clip without min is not supported",
                    "give both bounds (a missing bound would be infinite, which fixed point cannot hold)")
    if high is None:
        if tr.tensors[low].data != 0:
            raise _fail(proto, node, "Clip without max is only supported with min 0 (a ReLU)",
                        "give both bounds")
        tr.emit(Op.RELU, node, [x], proto.output[0], node)
        return
    tr.emit(Op.CLIP, node, [x, low, high], proto.output[0], node)


def _alias(tr: _Translator, proto, node: str) -> None:
    """Identity and inference-mode Dropout: later nodes read the input directly."""
    if proto.op_type == "Dropout":
        training = _input(proto, 2)
        if training and (not tr.is_constant(training) or bool(tr.value(training))):
            raise _fail(proto, node, "Dropout in training mode", "export the model in eval mode")
        if tr.uses_extra_outputs(proto):
            raise _fail(proto, node, "the dropout mask is used", "export the model in eval mode")
    tr.pass_through(node, tr.activation(proto, node, 0), proto.output[0])


def _reshape_to(tr: _Translator, proto, node: str, x: str, shape) -> None:
    shape = tuple(int(s) for s in shape)
    if shape == tr.shape(x):  # a no-op, common after folding
        tr.pass_through(node, x, proto.output[0])
        return
    tr.emit(Op.RESHAPE, node, [x], proto.output[0], node, {"shape": shape})


def _flatten(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axis = int(_attributes(proto).get("axis", 1))
    axis = axis + rank if axis < 0 else axis  # Flatten's axis may also be `rank`
    if axis != 1:
        raise _fail(proto, node, f"axis={axis} mixes the batch axis with others",
                    "only Flatten(axis=1) is supported")
    _reshape_to(tr, proto, node, x, (math.prod(tr.shape(x)),))


def _reshape(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    target = [int(v) for v in tr.value(_constant_input(tr, proto, node, 1, "shape")).reshape(-1)]
    allowzero = bool(_attributes(proto).get("allowzero", 0))
    in_shape = (1, *tr.shape(x))
    if not target or target[0] not in (0, -1, *tr.batch_sizes) or (allowzero and target[0] == 0):
        raise _fail(proto, node, f"target shape {target} does not keep the batch axis first",
                    "reshape only the features: make the target (batch, ...) with batch 0, -1 or 1")
    rest = []
    for i, v in enumerate(target[1:], start=1):
        if v == 0 and not allowzero:
            if i >= len(in_shape):
                raise _fail(proto, node, f"target {target}: 0 at axis {i} copies a dim the input lacks")
            v = in_shape[i]
        rest.append(v)
    size = math.prod(tr.shape(x))
    if rest.count(-1) > 1 or (target[0] == -1 and -1 in rest):
        raise _fail(proto, node, f"target shape {target} has more than one -1")
    if -1 in rest:
        known = math.prod(v for v in rest if v != -1)
        if known == 0 or size % known:
            raise _fail(proto, node, f"cannot reshape {tr.shape(x)} (without batch) to {target}")
        rest[rest.index(-1)] = size // known
    if math.prod(rest) != size:
        raise _fail(proto, node, f"target shape {target} moves elements across the batch axis "
                                 f"(input {tr.shape(x)} without batch)",
                    "reshape only the features and keep the batch axis first")
    _reshape_to(tr, proto, node, x, rest)


def _squeeze(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axes = _axes(tr, proto, node, 13)
    if axes is None:  # every size-1 axis; the batch is kept whatever its run-time size
        ir_axes = [i for i, s in enumerate(tr.shape(x)) if s == 1]
    else:
        ir_axes = [_no_batch_axis(proto, node, _normalize_axis(proto, node, v, rank)) for v in axes]
    if any(tr.shape(x)[i] != 1 for i in ir_axes):
        raise _fail(proto, node, f"squeezes an axis of {tr.shape(x)} (without batch) that is not 1")
    _reshape_to(tr, proto, node, x, [s for i, s in enumerate(tr.shape(x)) if i not in ir_axes])


def _unsqueeze(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    axes = _axes(tr, proto, node, 13)
    if axes is None:
        raise _fail(proto, node, "axes are missing")
    out_rank = len(tr.shape(x)) + 1 + len(axes)
    ir_axes = sorted(_no_batch_axis(proto, node, _normalize_axis(proto, node, v, out_rank)) for v in axes)
    shape = list(tr.shape(x))
    for i in ir_axes:
        shape.insert(i, 1)
    _reshape_to(tr, proto, node, x, shape)


def _transpose(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    perm = [int(p) for p in _attributes(proto).get("perm", reversed(range(rank)))]
    if sorted(perm) != list(range(rank)):
        raise _fail(proto, node, f"perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        raise _fail(proto, node, f"perm {perm} moves the batch axis", "keep perm[0] = 0")
    ir_perm = tuple(p - 1 for p in perm[1:])
    if ir_perm == tuple(range(rank - 1)):
        tr.pass_through(node, x, proto.output[0])
        return
    tr.emit(Op.TRANSPOSE, node, [x], proto.output[0], node, {"perm": ir_perm})


def _concat(tr: _Translator, proto, node: str) -> None:
    names = [i for i in proto.input if i]
    if any(tr.is_constant(i) for i in names):
        raise _fail(proto, node, "concatenating a constant is not supported",
                    "every input must be an activation")
    inputs = [tr.activation(proto, node, k) for k, i in enumerate(proto.input) if i]
    rank = len(tr.shape(inputs[0])) + 1
    axis = _no_batch_axis(proto, node, _normalize_axis(proto, node, int(_attributes(proto)["axis"]), rank))
    if len(inputs) == 1:
        tr.pass_through(node, inputs[0], proto.output[0])
        return
    tr.emit(Op.CONCAT, node, inputs, proto.output[0], node, {"axis": axis})


def _maxpool(tr: _Translator, proto, node: str) -> None:
    a = _attributes(proto)
    if a.get("storage_order", 0):
        raise _fail(proto, node, "storage_order=1 is not supported")
    if tr.uses_extra_outputs(proto):
        raise _fail(proto, node, "the Indices output is used", "only the pooled values are supported")
    x = _pool_input(tr, proto, node)
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    kernel = _kernel_shape(proto, node, a, n)
    dilations = _ints(a.get("dilations"), n, 1)
    strides, pads, _ = _pool_geometry(proto, node, a, spatial, kernel, dilations)
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations}
    tr.emit(Op.MAXPOOL, node, [x], proto.output[0], node, attrs)


def _averagepool(tr: _Translator, proto, node: str) -> None:
    a = _attributes(proto)
    x = _pool_input(tr, proto, node)
    spatial = tr.shape(x)[1:]
    n = len(spatial)
    kernel = _kernel_shape(proto, node, a, n)
    dilations = _ints(a.get("dilations"), n, 1)
    if any(d != 1 for d in dilations):
        raise _fail(proto, node, f"dilations {list(dilations)} are not supported for average pooling")
    strides, pads, declared = _pool_geometry(proto, node, a, spatial, kernel, dilations)
    _avgpool(tr, node, node, x, proto.output[0], kernel, strides, pads, declared,
             bool(a.get("count_include_pad", 0)))


def _global_average_pool(tr: _Translator, proto, node: str) -> None:
    _global_pool(tr, node, node, _pool_input(tr, proto, node), proto.output[0], Op.AVGPOOL)


def _global_max_pool(tr: _Translator, proto, node: str) -> None:
    _global_pool(tr, node, node, _pool_input(tr, proto, node), proto.output[0], Op.MAXPOOL)


def _reduce_mean(tr: _Translator, proto, node: str) -> None:
    """ReduceMean over all spatial axes (how the dynamo exporter writes AdaptiveAvgPool(1))."""
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    axes = _axes(tr, proto, node, 18)
    axes = sorted(_normalize_axis(proto, node, v, rank) for v in axes) if axes else None
    if rank not in (3, 4) or axes != list(range(2, rank)):
        raise _fail(proto, node, f"mean over axes {axes} of a rank-{rank} tensor",
                    "only the mean over all spatial axes of (batch, C, L) or (batch, C, H, W) is supported")
    if _attributes(proto).get("keepdims", 1):
        _global_pool(tr, node, node, x, proto.output[0], Op.AVGPOOL)
        return
    # keepdims=0: pool to (C, 1, ...), then drop the spatial axes.
    pooled = _global_pool(tr, tr.node_name(f"{node}.pool"), node, x, tr.fresh(f"{node}.pooled"), Op.AVGPOOL)
    tr.emit(Op.RESHAPE, node, [pooled], proto.output[0], node, {"shape": (tr.shape(x)[0],)})


def _softmax(tr: _Translator, proto, node: str) -> None:
    x = tr.activation(proto, node, 0)
    rank = len(tr.shape(x)) + 1
    # Before opset 13 Softmax flattens the input at `axis` (default 1) into 2D; over the last
    # axis that is the same as the per-axis softmax of opset 13.
    default = 1 if tr.opset < 13 else -1
    axis = _normalize_axis(proto, node, int(_attributes(proto).get("axis", default)), rank)
    if axis != rank - 1:
        raise _fail(proto, node, f"softmax over axis {axis} of a rank-{rank} tensor",
                    "only the softmax over the last axis is supported")
    tr.emit(Op.SOFTMAX, node, [x], proto.output[0], node, {"axis": rank - 2})


def _sigmoid(tr: _Translator, proto, node: str) -> None:
    tr.emit(Op.SIGMOID, node, [tr.activation(proto, node, 0)], proto.output[0], node)


_TRANSLATORS: dict[str, Callable[[_Translator, onnx.NodeProto, str], None]] = {
    "Add": _add,
    "AveragePool": _averagepool,
    "BatchNormalization": _batchnorm,
    "Clip": _clip,
    "Concat": _concat,
    "Conv": _conv,
    "Div": _div,
    "Dropout": _alias,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "GlobalAveragePool": _global_average_pool,
    "GlobalMaxPool": _global_max_pool,
    "Identity": _alias,
    "LeakyRelu": _leaky_relu,
    "MatMul": _matmul,
    "MaxPool": _maxpool,
    "Mul": _mul,
    "ReduceMean": _reduce_mean,
    "Relu": _relu,
    "Reshape": _reshape,
    "Sigmoid": _sigmoid,
    "Softmax": _softmax,
    "Squeeze": _squeeze,
    "Sub": _sub,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
}

# Shape is also accepted, as a constant (static shapes); Constant and any node whose inputs
# are all constant are folded whatever their op type.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted([*_TRANSLATORS, "Constant", "Shape"]))
