"""Shared helpers for the ONNX translators: attributes, optional and constant inputs, axes, padding."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import FrontendError, reraise_interrupt

if TYPE_CHECKING:
    from .translator import _Translator


class FrontendWarning(UserWarning):
    """Something the translation left out that the user should know (a dropped quantizer)."""


# The default-domain operator sets finegrain reads.  From opset 7 on, the ops it translates
# broadcast as numpy does and BatchNormalization has no is_test/spatial; 21 is the newest it
# is tested with (torch exports 9 to 20 in tests/test_frontend.py, the ONNX model zoo's
# MNIST is opset 8).
OPSETS = range(7, 22)


def _default_opset(model: onnx.ModelProto, path: Path) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            if entry.version not in OPSETS:
                raise FrontendError(
                    f"{path} uses ONNX opset {entry.version}; finegrain reads opsets {OPSETS[0]} to "
                    f"{OPSETS[-1]}: re-export with opset_version={min(max(entry.version, 13), 21)}, or "
                    f"convert it with onnx.version_converter.convert_version(model, 13)")
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


def _positive_ints(proto, node: str, a: dict, attr: str, n: int) -> tuple[int, ...]:
    """``strides``/``dilations`` (default 1) or ``kernel_shape`` (required): n ints >= 1."""
    values = _ints(a.get(attr), n, 1) if attr != "kernel_shape" else tuple(int(k) for k in a.get(attr, ()))
    if len(values) != n:
        raise _fail(proto, node, f"{attr} {list(values)} does not fit {n} spatial dims")
    if min(values) < 1:
        raise _fail(proto, node, f"{attr} {list(values)} must all be at least 1")
    return values


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
    for axis, (size, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations, strict=True)):
        out = -(-size // s)
        total = (out - 1) * s + d * (k - 1) + 1 - size
        # ONNX's formula can give a negative total (a stride longer than the kernel).  A
        # negative end pad only trims elements no window reaches, so it is 0 here; a negative
        # begin pad (onnxruntime rounds total / 2 toward zero) would crop the input's start,
        # which onnxruntime does and the ONNX reference and TensorFlow do not: refused.
        head = int(total / 2) if auto_pad == "SAME_UPPER" else int((total + 1) / 2)
        if head < 0:
            raise _fail(proto, node, f"auto_pad {auto_pad} with kernel {k}, stride {s} over {size} elements "
                                     f"(spatial axis {axis}) needs negative padding, which runtimes read "
                                     f"differently", "write explicit pads instead")
        begins.append(head)
        ends.append(max(0, total - head))
    return (*begins, *ends)


def _int_constant(tr: _Translator, proto, node: str, index: int, what: str) -> list[int]:
    """A constant input ONNX defines as int64 (a Reshape target, axes), as Python ints."""
    values = tr.value(_constant_input(tr, proto, node, index, what))
    if values.dtype.kind not in "iu":
        raise _fail(proto, node, f"{what} {_input(proto, index)!r} has element type {values.dtype}; ONNX "
                                 f"defines it as int64", "export the model again")
    return [int(v) for v in values.reshape(-1)]


def _axes(tr: _Translator, proto, node: str, attr_opset: int) -> list[int] | None:
    """The ``axes`` of Squeeze/Unsqueeze/Reduce*: an attribute before ``attr_opset``, an input from it."""
    if tr.opset < attr_opset:
        axes = _attributes(proto).get("axes")
        return None if axes is None else [int(v) for v in axes]
    name = _input(proto, 1)
    if not name:
        return None
    return _int_constant(tr, proto, node, 1, "axes")


def _initializer_array(init: onnx.TensorProto) -> np.ndarray:
    """An initializer's values, or a clear error when its data does not hold as many values as
    its dims say (a damaged or hand-edited file: onnx's reader would fail inside numpy)."""
    try:
        array = numpy_helper.to_array(init)
    except Exception as err:  # noqa: BLE001 - onnx and numpy raise ValueError, TypeError...
        reraise_interrupt(err)
        raise FrontendError(
            f"initializer {init.name!r} is damaged: its data does not fit its dims {list(init.dims)} "
            f"({type(err).__name__}: {err}); re-export the model") from None
    if list(array.shape) != list(init.dims):
        raise FrontendError(f"initializer {init.name!r} is damaged: dims {list(init.dims)}, data of shape "
                            f"{list(array.shape)}; re-export the model")
    return array


def _outer_reads(proto: onnx.NodeProto) -> list[str]:
    """The values of the enclosing graph that ``proto``'s subgraphs (If, Loop, Scan) read."""
    reads: list[str] = []
    for attr in proto.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            local = {v.name for v in sub.input} | {t.name for t in sub.initializer}
            for node in sub.node:
                for name in [*node.input, *_outer_reads(node)]:
                    if name and name not in local and name not in reads:
                        reads.append(name)
                local.update(node.output)
    return reads
