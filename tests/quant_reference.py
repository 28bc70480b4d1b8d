"""An exact interpreter of quantized ONNX graphs: the mathematical value of every tensor.

Written from the operator specifications (QONNX ``Quant``/``BipolarQuant``/``Trunc`` as in
qonnx's ``custom_op/general``; ONNX ``QuantizeLinear``/``DequantizeLinear`` opsets 10-21;
the ordinary ops listed in ``OPS``), not from an executor: nothing is rounded to float32.
A compiler that is exact can be compared with it bit for bit; qonnx's executor and
onnxruntime (float32 throughout) only where float32 provably cannot round.

Values.  Every tensor is an `Exact`: integer numerators (numpy int64 while they provably
fit, Python ints in object arrays beyond) over one positive integer denominator per tensor.
float32/float16/float64 inputs, weights and scales are dyadic rationals and enter exactly;
sums, products, Quant's ``x / scale`` with any scale, rounding, clamping and average pools
stay exact.  Two things are not:

* BatchNormalization's ``1 / sqrt(var + epsilon)`` is irrational; it is rounded down to a
  dyadic with at least 96 significant bits (relative error below 2**-95), the rest exact;
* Softmax and Sigmoid are computed in float64 from the exact input (correctly rounded to
  float64 first), and their float64 results taken as exact from there on.

Batches.  Axis 0 is the batch: a model written for batch 1 runs ``n`` samples at once when
its shape ops keep axis 0 (Reshape/Flatten to ``[1, ...]``, Transpose with ``perm[0] == 0``,
...).  Where an op would mix samples, `run` runs the samples one at a time instead.

Rounding modes (qonnx ``resolve_rounding_mode``; ROUND_TO_ZERO is Brevitas's name for DOWN):
ROUND/HALF_EVEN ties to even, CEIL, FLOOR, UP (away from zero), DOWN/ROUND_TO_ZERO (toward
zero), HALF_UP (ties away from zero), HALF_DOWN (ties toward zero).  qonnx clamps before
rounding; with integer bounds and monotone rounding that is the same as after.

Layout.  This module is the interpreter, its entry points (`run`, `run_output`) and its op
table (`OPS`); the values and their rounding are in tests/quant_reference_values.py, the ops
in tests/quant_reference_ops.py and, for convolution, pooling and BatchNormalization,
tests/quant_reference_windows.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from tests.quant_reference_ops import (elementwise_op, op_add, op_bipolar_quant, op_cast, op_clip, op_concat,
                                       op_constant, op_depth_to_space, op_dequantize_linear, op_div, op_flatten,
                                       op_gather, op_gemm, op_identity, op_matmul, op_mul, op_quant,
                                       op_quantize_linear, op_relu, op_reshape, op_shape, op_sigmoid, op_softmax,
                                       op_squeeze, op_sub, op_transpose, op_trunc, op_unsqueeze)
from tests.quant_reference_values import BatchAxisError, Exact, concatenate, from_float, from_integers, _tensor_value
from tests.quant_reference_windows import (op_average_pool, op_batch_normalization, op_conv,
                                           op_global_average_pool, op_max_pool)


QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general", "finn")


# --- the interpreter ---------------------------------------------------------------------


class Interpreter:
    """Runs one ONNX model on `Exact` values; see the module docstring."""

    def __init__(self, model: onnx.ModelProto | str | Path):
        self.model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.graph = self.model.graph
        self.opsets = {o.domain: o.version for o in self.model.opset_import}
        self.constants: dict[str, Exact] = {}
        for init in self.graph.initializer:
            self.constants[init.name] = _tensor_value(init)

    def opset(self, domain: str = "") -> int:
        return self.opsets.get(domain, self.opsets.get("ai.onnx", 1) if domain == "" else 1)

    def run(self, feeds: dict[str, Exact], keep_all: bool = False) -> dict[str, Exact]:
        env: dict[str, Exact] = dict(self.constants)
        env.update(feeds)
        for node in self.graph.node:
            inputs = [env[name] if name else None for name in node.input]
            try:
                outputs = self.node(node, inputs)
            except BatchAxisError:
                raise
            except Exception as error:
                raise RuntimeError(f"node {node.name!r} ({node.op_type}): {error}") from error
            for name, value in zip(node.output, outputs):
                if name:
                    env[name] = value
        if keep_all:
            return env
        return {o.name: env[o.name] for o in self.graph.output}

    def node(self, node: onnx.NodeProto, inputs: list) -> list[Exact]:
        attrs = attributes(node)
        if node.domain in QUANT_DOMAINS:
            op = {"Quant": op_quant, "BipolarQuant": op_bipolar_quant, "Trunc": op_trunc}.get(node.op_type)
            if op is None:
                raise NotImplementedError(f"{node.domain}.{node.op_type}")
            return [op(inputs, attrs, self.opset(node.domain))]
        if node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"{node.domain}.{node.op_type}")
        op = OPS.get(node.op_type)
        if op is None:
            raise NotImplementedError(f"ONNX op {node.op_type}")
        result = op(inputs, attrs, self.opset())
        return result if isinstance(result, list) else [result]


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, strings decoded."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def run(model: onnx.ModelProto | str | Path, inputs, *, keep_all: bool = False) -> dict[str, Exact]:
    """Exact outputs of ``model`` on ``inputs`` (an array for the single graph input, or a
    dict by input name), samples on axis 0; samples run one at a time when a shape op
    would mix them (`BatchAxisError`)."""
    interpreter = model if isinstance(model, Interpreter) else Interpreter(model)
    names = [i.name for i in interpreter.graph.input if i.name not in interpreter.constants]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise ValueError(f"the model has inputs {names}: pass a dict")
        inputs = {names[0]: inputs}
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    try:
        return interpreter.run({name: _feed(a, True) for name, a in arrays.items()}, keep_all)
    except BatchAxisError:
        # each sample alone, as the batch-1 model it is, then stacked
        n = len(next(iter(arrays.values())))
        per_sample = [interpreter.run({name: _feed(a[i:i + 1], False) for name, a in arrays.items()}, keep_all)
                      for i in range(n)]
        names = [name for name in per_sample[0] if keep_all is False or name not in interpreter.constants]
        return {name: concatenate([r[name] for r in per_sample], batched=True) for name in names}


def _feed(array: np.ndarray, batched: bool) -> Exact:
    if array.dtype.kind == "f":
        return from_float(array, batched)
    types = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
             np.dtype(np.int16): TensorProto.INT16, np.dtype(np.int32): TensorProto.INT32}
    return from_integers(array, batched, types.get(array.dtype, TensorProto.INT64))


def run_output(model, inputs) -> Exact:
    """The single graph output of `run`."""
    outputs = run(model, inputs)
    if len(outputs) != 1:
        raise ValueError(f"the model has outputs {list(outputs)}")
    return next(iter(outputs.values()))


OPS = {
    "QuantizeLinear": op_quantize_linear, "DequantizeLinear": op_dequantize_linear,
    "Gemm": op_gemm, "MatMul": op_matmul, "Conv": op_conv,
    "Add": op_add, "Sub": op_sub, "Mul": op_mul, "Div": op_div,
    "Relu": op_relu, "Clip": op_clip, "Identity": op_identity, "Cast": op_cast,
    "MaxPool": op_max_pool, "AveragePool": op_average_pool, "GlobalAveragePool": op_global_average_pool,
    "BatchNormalization": op_batch_normalization, "Softmax": op_softmax, "Sigmoid": op_sigmoid,
    "Flatten": op_flatten, "Reshape": op_reshape, "Transpose": op_transpose, "Squeeze": op_squeeze,
    "Unsqueeze": op_unsqueeze, "Concat": op_concat, "DepthToSpace": op_depth_to_space,
    "Shape": op_shape, "Gather": op_gather, "Constant": op_constant,
    **{op: elementwise_op(op) for op in ("Tanh", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Elu", "Selu")},
}
