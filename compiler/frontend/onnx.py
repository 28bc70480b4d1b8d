"""ONNX (float, QONNX, QDQ) -> finegrain IR.  The ``compiler.frontend`` package is the only part
of finegrain that imports ``onnx``.  This module reads and checks the file; ``translator`` walks
the graph (folding, names, shape cross-check), ``translators`` maps each op type to its function
in ``ops_arithmetic``, ``ops_activation``, ``ops_shape``, ``ops_pool``, ``ops_quant`` (QONNX
``Quant``/``BipolarQuant``/``Trunc``) or ``ops_qdq`` (``QuantizeLinear``/``DequantizeLinear``),
and ``common`` holds the helpers they share.

Quantized models: every quantizer becomes a :class:`compiler.quantizer.Quantizer`.  On an
activation it is an ``Op.QUANT`` node (removed later by lowering); on a constant it is folded,
and the constant carries ``Tensor.quantizer`` (parameters in its IR layout), also through
Transpose/Reshape/Squeeze/Unsqueeze folding while the scale's axis survives (else the constant
is float and a :class:`FrontendWarning` says so).  A QDQ ``QuantizeLinear [-> Clip] ->
DequantizeLinear`` chain is one quantizer named after the DequantizeLinear's output; int8/uint8
(and 16-bit) graph inputs hold their integer codes (their ``formats`` set).  So
``float_eval.evaluate_float`` of the IR is the quantized model.  Models with QONNX nodes take
their shape annotations from qonnx's ``InferShapes`` (which understands the custom ops); their
tensor names are kept.

:func:`load_onnx` reads a float model as torch.onnx.export (TorchScript and dynamo
exporters), tf2onnx and keras2onnx write it, and returns a :class:`~compiler.ir.Graph`
whose constants hold float64 data and no formats.  It walks the ONNX nodes once, in their
(topological) order, and for each node either

* folds it into a constant, when all its inputs are constant (``Shape`` of an activation
  counts as constant: shapes are static with a batch of 1), or
* translates it with the one function registered for its op type in ``_TRANSLATORS``
  (``translators.py``).

Batch axis: axis 0 of every ONNX activation is the batch.  IR shapes drop it, and so do the
attributes the translators write (reshape targets, transpose permutations, concat and
softmax axes).  Every other dimension must be static.  Where every graph input has a static
batch of 1, Reshape/Flatten/Squeeze/Transpose may fold it into other axes (``[1, 3, 4]`` to
``[12]``): such a value has no batch axis, its IR shape is its ONNX shape, and only some ops
may read it (see ``ops_shape``).

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

import re
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import FrontendError, reraise_interrupt
from ..ir import Graph, verify
from .common import FrontendWarning
from .ops_quant import QONNX_DOMAINS
from .translator import _Translator
from .translators import SUPPORTED_OPS

__all__ = ["SUPPORTED_OPS", "FrontendWarning", "load_onnx"]


def load_onnx(path) -> Graph:
    """Read the ONNX model at ``path`` (float or quantized; or an ``onnx.ModelProto`` already in
    memory) and translate it to an IR graph.

    Raises :class:`FrontendError` when the file cannot be read or the model uses something
    finegrain does not support; the message names the node or tensor and says how to fix it.
    """
    if isinstance(path, onnx.ModelProto):  # messages name it by its graph name
        model, path = path, Path(f"<onnx.ModelProto {path.graph.name or 'without a graph name'}>")
        model = _checked_model(model, path)
    else:
        path = Path(path)
        model = _read_model(path)
    translator = _Translator(model, path)
    graph = translator.translate()
    verify(graph)
    for note in translator.notes:
        warnings.warn(note, FrontendWarning, stacklevel=2)
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
        reraise_interrupt(e)
        raise FrontendError(f"{path} is not a readable ONNX model (truncated or not ONNX?): "
                            f"{type(e).__name__}: {e}") from None
    return _checked_model(model, path)


def _checked_model(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    if model.ir_version == 0 or not model.graph.output:
        raise FrontendError(f"{path} is not an ONNX model: it has no IR version or no graph outputs")
    if model.graph.sparse_initializer:
        model = _densified(model)
    try:
        # Only used to cross-check the shapes the IR rules compute; a model that defeats
        # shape inference can still be translated.  Its type check is kept: a node whose
        # inputs' element types its operator does not allow is not valid ONNX.
        model = _infer_shapes(model)
    except Exception as err:  # noqa: BLE001 - any other failure here only skips the cross-check
        reraise_interrupt(err)
        _refuse_type_error(err, path)
    return model


# ONNX's type check names the node: "(op_type:Clip, node name: clip6): min has inconsistent type ..."
_TYPE_ERROR = re.compile(r"\(op_type:(?P<op>[^,]*), node name: (?P<node>.*?)\): (?P<what>.*(?:inconsistent type|"
                         r"elem type).*)", re.DOTALL)


def _refuse_type_error(err: Exception, path: Path) -> None:
    """A FrontendError for ONNX's type check failing on a node (a float Clip with int32 bounds,
    a Gemm with an int32 weight): onnx.checker and onnxruntime refuse such a model too, and
    reading its constants as numbers would compile a model nobody exported."""
    found = _TYPE_ERROR.search(str(err)) if isinstance(err, onnx.shape_inference.InferenceError) else None
    if found is None:
        return
    raise FrontendError(f"{path}: node {found['node']!r} ({found['op']}) is not valid ONNX: {found['what'].strip()} "
                        f"(ONNX's type check; onnx.checker and onnxruntime refuse the model too); give that input "
                        f"the element type the operator requires (a constant: stored as the other inputs' type, "
                        f"e.g. float32) and export the model again") from None


def _densified(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its sparse initializers (a pruned weight stored as values and
    their indices) as ordinary ones, so every later step reads plain constants."""
    dense = onnx.ModelProto()
    dense.CopyFrom(model)
    for sparse in dense.graph.sparse_initializer:
        name, dims = sparse.values.name, list(sparse.dims)
        try:
            values = numpy_helper.to_array(sparse.values).reshape(-1)
            indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
            array = np.zeros(dims, dtype=values.dtype)
            bound = array.size if indices.ndim == 1 else np.asarray(dims)
            if indices.size and ((indices < 0).any() or (indices >= bound).any()):
                raise IndexError("an index lies outside the dims")
            if indices.ndim == 1:  # positions in the flattened tensor
                array.reshape(-1)[indices] = values
            else:  # one row of coordinates per value
                array[tuple(indices.T)] = values
        except (ValueError, IndexError, TypeError) as err:
            raise FrontendError(f"sparse initializer {name!r} is damaged: its values and indices do not fit its dims "
                                f"{dims} ({type(err).__name__}: {err}); re-export the model") from None
        dense.graph.initializer.append(numpy_helper.from_array(array, name))
    del dense.graph.sparse_initializer[:]
    return dense


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred shapes.  ONNX's inference stops at QONNX's custom ops, so a
    model holding them goes through qonnx's InferShapes, which sees them as the identity
    (their output shape).  Only its shapes are taken: qonnx also moves nodes of the
    ``finn.custom_op.general`` domain to ``qonnx.custom_op.general`` without that domain's
    opset, which would change Trunc's version."""
    if not any(node.domain in QONNX_DOMAINS for node in model.graph.node):
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    result = onnx.ModelProto()
    result.CopyFrom(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inferred = ModelWrapper(result).transform(InferShapes()).model  # ModelWrapper edits its model
    result.CopyFrom(model)
    del result.graph.value_info[:]
    result.graph.value_info.extend(inferred.graph.value_info)
    return result
