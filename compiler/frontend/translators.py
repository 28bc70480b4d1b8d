"""The one translator per ONNX op type, and the list of ops finegrain accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import onnx

from .ops_activation import TABLE_TRANSLATORS, _clip, _leaky_relu, _relu, _softmax
from .ops_arithmetic import _add, _batchnorm, _conv, _div, _gemm, _matmul, _mul, _sub
from .ops_qdq import _dequantize_linear, _quantize_linear
from .ops_quant import QONNX_DOMAINS, _bipolar_quant, _quant, _trunc
from .ops_pool import _averagepool, _global_average_pool, _global_max_pool, _maxpool, _reduce_mean
from .ops_shape import (_alias, _concat, _depth_to_space, _flatten, _reshape, _space_to_depth, _squeeze, _transpose,
                        _unsqueeze)

if TYPE_CHECKING:
    from .translator import _Translator


_TRANSLATORS: dict[str, Callable[[_Translator, onnx.NodeProto, str], None]] = {
    "Add": _add,
    "AveragePool": _averagepool,
    "BatchNormalization": _batchnorm,
    "Clip": _clip,
    "Concat": _concat,
    "Conv": _conv,
    "DepthToSpace": _depth_to_space,
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
    "Softmax": _softmax,
    "SpaceToDepth": _space_to_depth,
    "Squeeze": _squeeze,
    "Sub": _sub,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
    **TABLE_TRANSLATORS,  # Sigmoid, Tanh, HardSigmoid, ...
}


# Quantizers: read whether their input is constant (folded, the quantizer kept) or not.
_QDQ_TRANSLATORS: dict[str, Callable[[_Translator, onnx.NodeProto, str], None]] = {
    "DequantizeLinear": _dequantize_linear,
    "QuantizeLinear": _quantize_linear,
}
_QONNX_TRANSLATORS: dict[str, Callable[[_Translator, onnx.NodeProto, str], None]] = {
    "BipolarQuant": _bipolar_quant,
    "IntQuant": _quant,
    "Quant": _quant,
    "Trunc": _trunc,
}


def quant_translator(domain: str, op_type: str) -> Callable[[_Translator, onnx.NodeProto, str], None] | None:
    """The translator of a quantizer node (QDQ in the default domain, QONNX in its domains), or None."""
    if domain in ("", "ai.onnx"):
        return _QDQ_TRANSLATORS.get(op_type)
    if domain in QONNX_DOMAINS:
        return _QONNX_TRANSLATORS.get(op_type)
    return None
# The ops that read an activation without its batch axis themselves (ops_shape's docstring);
# for the others ops_shape._batchless_result decides.
BATCH_AWARE_OPS = frozenset({"Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"})


# Shape is also accepted, as a constant (static shapes); Constant and any node whose inputs
# are all constant are folded whatever their op type.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted([*_TRANSLATORS, *_QDQ_TRANSLATORS, "Constant", "Shape"]))
