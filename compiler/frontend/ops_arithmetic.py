"""Translators for the layers with weights (Gemm, MatMul, Conv, BatchNormalization) and the
elementwise arithmetic (Add, Sub, Mul, Div)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..ir import Op, TensorKind
from .common import _attributes, _constant_input, _fail, _input, _positive_ints, _resolve_pads

if TYPE_CHECKING:
    from .translator import _Translator


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


def _gemm(tr: _Translator, proto, node: str) -> None:
    """Gemm -> a dense layer.  ``transB``, ``alpha`` and ``beta`` are read; ``transA=1`` is refused.  The input is
    (batch, features); B and C must be constants, C broadcasting to (batch, out), the same for every batch row."""
    a = _attributes(proto)
    if a.get("transA", 0):
        raise _fail(proto, node, "transA=1 is not supported", "export the layer as x @ W (transA=0)")
    x = tr.activation(proto, node, 0)
    if len(tr.shape(x)) != 1:
        raise _fail(proto, node, f"input {x!r} has shape {tr.shape(x)} (without batch); Gemm needs "
                                 f"a (batch, features) input")
    b = _constant_input(tr, proto, node, 1, "weight B")
    if tr.value(b).ndim != 2:
        raise _fail(proto, node, f"weight B {b!r} has shape {tr.value(b).shape}; Gemm needs a matrix")
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
    """MatMul -> a dense layer: activation ``x[..., in]`` times a constant matrix ``W[in, out]`` only."""
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
    """Add of an activation and a constant (a bias, broadcast as ONNX does, equal along the batch axis) or of two
    activations of the same rank (a residual)."""
    x, other, constant, _ = _binary_operands(tr, proto, node)
    if constant:
        other = _elementwise_constant(tr, proto, node, other, x, TensorKind.BIAS, "addend")
    else:
        _same_rank_activations(tr, proto, node, x, other)
    tr.emit(Op.ADD, node, [x, other], proto.output[0], node)


def _sub(tr: _Translator, proto, node: str) -> None:
    """Sub: an Add of the negated constant or activation (either operand may be the constant)."""
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
    """Mul of an activation by a constant (broadcast, equal along the batch axis) or of two activations of the
    same rank (a gate: SiLU's ``x * sigmoid(x)``, a GLU, a squeeze-and-excitation scale)."""
    x, other, constant, _ = _binary_operands(tr, proto, node)
    if constant:
        other = _elementwise_constant(tr, proto, node, other, x, TensorKind.WEIGHT, "factor")
    else:
        _same_rank_activations(tr, proto, node, x, other)
    tr.emit(Op.MUL, node, [x, other], proto.output[0], node)


def _div(tr: _Translator, proto, node: str) -> None:
    """Div of an activation by a constant without zeros: a Mul by its reciprocal (dividing by an activation is
    refused)."""
    x, other, constant, x_first = _binary_operands(tr, proto, node)
    if not (constant and x_first):
        raise _fail(proto, node, "only division of an activation by a constant is supported")
    if np.any(tr.value(other) == 0):
        raise _fail(proto, node, f"divisor {other!r} contains zeros")
    c = _elementwise_constant(tr, proto, node, other, x, TensorKind.WEIGHT, "inverse", np.reciprocal)
    tr.emit(Op.MUL, node, [x, c], proto.output[0], node)


def _conv(tr: _Translator, proto, node: str) -> None:
    """Conv, 1D and 2D: ``strides``, ``pads``/``auto_pad``, ``dilations`` and ``group`` are read; the weight and the
    optional bias must be constants."""
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
    strides = _positive_ints(proto, node, a, "strides", n)
    dilations = _positive_ints(proto, node, a, "dilations", n)
    pads = _resolve_pads(proto, node, a, spatial, kernel, strides, dilations)
    inputs = [x, tr.onnx_constant(w_name, TensorKind.WEIGHT, node, "weight")]
    if _input(proto, 2):
        bias = _constant_input(tr, proto, node, 2, "bias B")
        if tr.value(bias).shape != (w.shape[0],):
            raise _fail(proto, node, f"bias B {bias!r} has shape {tr.value(bias).shape}, expected "
                                     f"({w.shape[0]},) for {w.shape[0]} output channels")
        inputs.append(tr.onnx_constant(bias, TensorKind.BIAS, node, "bias"))
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "groups": int(a.get("group", 1))}
    tr.emit(Op.CONV, node, inputs, proto.output[0], node, attrs)


def _batchnorm(tr: _Translator, proto, node: str) -> None:
    """BatchNormalization in inference mode (constant scale, bias, mean and variance; ``epsilon``): folded into
    the layer before it where the passes can, else a per-channel multiply and add.  Training mode is refused."""
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
    epsilon = float(a.get("epsilon", 1e-5))
    var = tr.value(_input(proto, 4)).astype(np.float64) + epsilon
    if not (var > 0).all():
        c = int(np.argmax(~(var > 0)))
        raise _fail(proto, node, f"variance {_input(proto, 4)!r} plus epsilon {epsilon:g} is {var[c]:g} for "
                                 f"channel {c}, not positive (a variance cannot be negative)",
                    "fix the model's running statistics and export it again")
    tr.emit(Op.BATCHNORM, node, [x, *params], proto.output[0], node, {"epsilon": epsilon})
