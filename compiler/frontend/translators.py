"""The one translator per ONNX op type, and the list of ops finegrain accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import onnx

from .ops_activation import _clip, _leaky_relu, _relu, _sigmoid, _softmax
from .ops_arithmetic import _add, _batchnorm, _conv, _div, _gemm, _matmul, _mul, _sub
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
    "Sigmoid": _sigmoid,
    "Softmax": _softmax,
    "SpaceToDepth": _space_to_depth,
    "Squeeze": _squeeze,
    "Sub": _sub,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
}


# The ops that read an activation without its batch axis themselves (ops_shape's docstring);
# for the others ops_shape._batchless_result decides.
BATCH_AWARE_OPS = frozenset({"Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"})


# Shape is also accepted, as a constant (static shapes); Constant and any node whose inputs
# are all constant are folded whatever their op type.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted([*_TRANSLATORS, "Constant", "Shape"]))
