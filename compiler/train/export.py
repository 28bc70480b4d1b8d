"""Export a model of quantized modules as finegrain's input: ``model.onnx`` (a float model
whose weights and biases already hold their quantized values) and ``plan.json`` (+
``arrays.npz`` for per-element formats and codebook indices) naming the ONNX tensors.

The ONNX tensors are found by graph structure, never by their names (the TorchScript and
dynamo exporters name them differently): each Gemm/MatMul/Conv is matched to the quantized
layer whose weight it holds (followed through Transpose nodes, checked value for value), its
bias to the Gemm/Conv input or the Add after a MatMul, and each ReLU to the Relu node that
reads its producer's ONNX output.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from .modules import QUANT_LAYERS, QuantConv1d, QuantConv2d, QuantInput, QuantLinear, QuantReLU, record_calls
from .quant import QuantError, Quantizer

LAYER_OPS = ("Gemm", "MatMul", "Conv")
DYNAMO_OPSET, TORCHSCRIPT_OPSET = 18, 13


@dataclass
class Exported:
    """What `export` wrote: the files, and for each module the ONNX tensors it became
    (``tensors[module name]`` maps ``weight``/``bias``/``output``/``input`` to ONNX names)."""

    model: Path
    plan: Path
    tensors: dict = field(default_factory=dict)


@dataclass
class _Call:
    name: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor


def _record_calls(model: nn.Module, example: torch.Tensor) -> list[_Call]:
    """Run the model once and list the quantized modules' calls in order."""
    quant_types = QUANT_LAYERS + (QuantReLU, QuantInput)
    hooked = []
    for name, module in model.named_modules():
        if isinstance(module, quant_types):
            hooked.append((name, module))
        elif isinstance(module, Quantizer):
            continue  # a quantizer with trainable state (bits.LearnedBits): its module's, exported with it
        elif isinstance(module, AVERAGE_POOLS):
            _check_average_pool(name, module)
        elif any(True for _ in module.parameters(recurse=False)):
            raise QuantError(f"module {name!r} ({type(module).__name__}) has parameters but is not a quantized "
                             f"module; use QuantLinear, QuantConv1d or QuantConv2d so the plan gives it formats")
    try:
        recorded = record_calls(model, example, hooked)
    except QuantError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's forward pass failed on the user's example
        raise QuantError(f"export: the model does not run on example_input of shape {list(example.shape)} "
                         f"({type(err).__name__}: {str(err)[:200]}); give one batch of the input it takes") from None
    calls = [_Call(*call) for call in recorded]
    seen = set()
    for call in calls:
        if call.name in seen:
            raise QuantError(f"module {call.name!r} runs more than once in a forward pass; each call is its own "
                             f"ONNX layer, so give each its own module")
        seen.add(call.name)
    return calls


AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def _check_average_pool(name: str, module: nn.Module) -> None:
    """An average over 2**k values is a shift, exact in torch and in fixed point; over other
    counts finegrain multiplies by a fixed-point 1/count, which torch's division is not."""
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        raise QuantError(f"module {name!r} ({type(module).__name__}): an adaptive average pool's window "
                         f"depends on the input size; use AvgPool with a kernel of 2**k values")
    dims = 1 if isinstance(module, nn.AvgPool1d) else 2
    kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * dims
    count = getattr(module, "divisor_override", None) or math.prod(kernel)
    padded = any(p for p in (module.padding if isinstance(module.padding, tuple) else (module.padding,)))
    if count & (count - 1) or (padded and not module.count_include_pad):
        raise QuantError(f"module {name!r} ({type(module).__name__}): it averages {count} values; finegrain "
                         f"multiplies by a fixed-point 1/{count}, which torch's float division is not, so the "
                         f"export could not be bit-exact; use a window of a power-of-two size (2x2, 4x4), "
                         f"without padding excluded from the count, or a MaxPool")


def _float32_exact(name: str, what: str, values: torch.Tensor) -> torch.Tensor:
    as_float = values.to(torch.float32)
    if not torch.equal(as_float.to(torch.float64), values):
        raise QuantError(f"module {name!r}: its quantized {what} is not exact in float32, which ONNX stores; "
                         f"use formats of at most 24 significant bits")
    return as_float


def _float_module(name: str, module: nn.Module) -> nn.Module:
    """The plain torch module that exports as the quantized one: quantized weights, no quantizers."""
    if isinstance(module, QuantInput):
        return nn.Identity()
    if isinstance(module, QuantReLU):
        return nn.ReLU()
    with torch.no_grad():
        weight = _float32_exact(name, "weight", module.quantized_weight())
        bias = module.quantized_bias()
        bias = None if bias is None else _float32_exact(name, "bias", bias)
    if isinstance(module, QuantLinear):
        plain = nn.Linear(module.in_features, module.out_features, bias is not None)
    else:
        cls = nn.Conv1d if isinstance(module, QuantConv1d) else nn.Conv2d
        plain = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, bias is not None, module.padding_mode)
    with torch.no_grad():
        plain.weight.copy_(weight)
        if bias is not None:
            plain.bias.copy_(bias)
    return plain


def _float_model(model: nn.Module, calls: list[_Call]) -> nn.Module:
    plain = copy.deepcopy(model)
    for call in calls:
        parent_name, _, child = call.name.rpartition(".")
        parent = plain.get_submodule(parent_name) if parent_name else plain
        parent._modules[child] = _float_module(call.name, call.module)
    return plain.float().eval()


class _Graph:
    """The exported ONNX graph, indexed for finding tensors by structure."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.constants = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.nodes = list(g.node)
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.readers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
        self.inputs = [i.name for i in g.input if i.name not in self.constants]

    def constant(self, name: str) -> tuple[str, list[int]] | None:
        """The initializer behind ``name`` and the permutation P with value = transpose(init, P),
        through Transpose nodes; None if ``name`` is computed from other values."""
        if name in self.constants:
            return name, list(range(self.constants[name].ndim))
        node = self.producer.get(name)
        if node is None or node.op_type != "Transpose":
            return None
        inner = self.constant(node.input[0])
        if inner is None:
            return None
        init, q = inner
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), list(reversed(q)))
        return init, [q[i] for i in perm]


def _attr(node, name: str, default):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _matches(graph: _Graph, name: str, perm: list[int], expected: np.ndarray) -> bool:
    value = graph.constants[name]
    return value.ndim == expected.ndim and np.array_equal(np.transpose(value, perm), expected)


def _find_layer(graph: _Graph, call: _Call, used: set) -> dict:
    """The ONNX node of a quantized layer: its weight (initializer name and layout), bias, output."""
    module = call.module
    with torch.no_grad():
        weight = module.quantized_weight().to(torch.float32).numpy()
        bias = module.quantized_bias()
    bias = None if bias is None else bias.to(torch.float32).numpy()
    for node in graph.nodes:
        if node.op_type not in LAYER_OPS or id(node) in used or len(node.input) < 2:
            continue
        if (node.op_type == "Conv") != isinstance(module, (QuantConv1d, QuantConv2d)):
            continue
        source = graph.constant(node.input[1])
        if source is None:
            continue
        init, perm = source
        if node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attr(node, "transB", 0)):
            perm = [perm[1], perm[0]]  # y = x @ B: B holds the torch weight transposed
        if not _matches(graph, init, perm, weight):
            continue
        found = {"node": node, "weight": init, "layout": tuple(int(a) for a in np.argsort(perm)),
                 "output": node.output[0]}
        if bias is not None:
            found.update(_find_bias(graph, node, bias))
            # a bias of zeros is the layer without one: dynamo's optimizer drops it
            if "bias" not in found and (bias.any() or _has_bias(graph, node)):
                continue
        used.add(id(node))
        return found
    raise QuantError(f"module {call.name!r} ({type(module).__name__}): no Gemm, MatMul or Conv node of the exported "
                     f"ONNX holds its quantized weight; the exporter may have rewritten the layer")


def _has_bias(graph: _Graph, node) -> bool:
    if node.op_type in ("Gemm", "Conv"):
        return len(node.input) > 2 and bool(node.input[2])
    return any(add.op_type == "Add" for add in graph.readers.get(node.output[0], []))


def _find_bias(graph: _Graph, node, bias: np.ndarray) -> dict:
    if node.op_type in ("Gemm", "Conv"):
        source = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if source is not None and _matches(graph, source[0], source[1], bias):
            return {"bias": source[0], "output": node.output[0]}
        return {}
    for add in graph.readers.get(node.output[0], []):  # MatMul, then Add of the bias
        if add.op_type != "Add":
            continue
        for other in add.input:
            source = graph.constant(other) if other != node.output[0] else None
            if source is not None and _matches(graph, source[0], source[1], bias):
                return {"bias": source[0], "output": add.output[0]}
    return {}


def _find_relu(graph: _Graph, call: _Call, produced: dict, used: set, quant_relus: int) -> str:
    """The ONNX output of a ReLU: the Relu reading its producer's ONNX tensor; a ReLU after
    other ops (a pool, a flatten) takes the next unmatched Relu in graph order, which is only
    certain when every Relu of the graph is a QuantReLU's."""
    onnx_input = produced.get(id(call.input))
    relus = [n for n in graph.nodes if n.op_type == "Relu"]
    if onnx_input is None and len(relus) != quant_relus:
        raise QuantError(f"module {call.name!r} (QuantReLU) reads a value no quantized module made, and the "
                         f"ONNX holds {len(relus)} Relu nodes for {quant_relus} QuantReLU modules, so which one "
                         f"is it cannot be told; use QuantReLU for every ReLU, or put it right after a "
                         f"quantized layer")
    candidates = graph.readers.get(onnx_input, []) if onnx_input else relus
    for node in candidates:
        if node.op_type == "Relu" and id(node) not in used:
            used.add(id(node))
            return node.output[0]
    raise QuantError(f"module {call.name!r} (QuantReLU): no Relu node of the exported ONNX is left for it")


def export(model: nn.Module, example_input: torch.Tensor, out_dir, dynamo: bool = False,
           opset_version: int | None = None, check: bool = True) -> Exported:
    """Write ``out_dir/model.onnx`` and ``out_dir/plan.json`` (+ ``arrays.npz``) such that
    ``finegrain compile model.onnx --plan plan.json`` emulates ``model`` bit for bit.

    ``example_input``: one batch (the ONNX keeps its shape); ``dynamo`` picks torch's exporter
    (opset 18 by default for dynamo, 13 for TorchScript).  The model needs one QuantInput that
    reads the model input, and quantized modules for every layer with parameters.
    ``check``: compile the export and emulate ``example_input``; raise `QuantError` unless the
    emulator's outputs equal the model's bit for bit.  The files are written into a staging
    folder beside ``out_dir`` and moved there only when everything (the check too) succeeded.
    """
    out = _checked_arguments(model, example_input, out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        exported = _export_into(staging, model, example_input, dynamo, opset_version, check)
        out.mkdir(exist_ok=True)
        written = sorted(f.name for f in staging.iterdir())  # (dynamo's exporter adds model.onnx.data)
        for name in set(written) | set(EXPORT_FILES):
            (out / name).unlink(missing_ok=True)  # an older export's arrays.npz must not stay beside the new plan
        for name in written:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Exported(out / "model.onnx", out / "plan.json", exported.tensors)


EXPORT_FILES = ("model.onnx", "model.onnx.data", "plan.json", "arrays.npz")  # what an export may write


def _checked_arguments(model, example_input, out_dir) -> Path:
    from ..errors import UserError
    from ..inputs import path_argument

    if not isinstance(model, nn.Module):
        raise QuantError(f"export: the argument model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dtype not in (torch.float32, torch.float64):
        got = (f"a tensor of {example_input.dtype}" if isinstance(example_input, torch.Tensor)
               else type(example_input).__name__)
        raise QuantError(f"export: the argument example_input must be a float32 (or float64) torch.Tensor, one "
                         f"batch of the model's input; got {got}")
    if not torch.isfinite(example_input).all():
        raise QuantError("export: example_input holds values that are not finite; give real inputs")
    try:
        out = path_argument(out_dir, "out_dir", "export")
    except UserError as err:
        raise QuantError(str(err)) from None
    if out.exists() and not out.is_dir():
        raise QuantError(f"export: out_dir {str(out)!r} exists and is not a folder; give a folder")
    return out


def _export_into(out: Path, model: nn.Module, example_input: torch.Tensor, dynamo: bool, opset_version: int | None,
                 check: bool) -> Exported:
    was_training = model.training
    model.eval()
    try:
        calls = _record_calls(model, example_input)
        plain = _float_model(model, calls)
    finally:
        model.train(was_training)
    inputs = [c for c in calls if isinstance(c.module, QuantInput)]
    if len(inputs) != 1 or inputs[0].input is not example_input:
        raise QuantError("the model needs exactly one QuantInput, and it must read the model input itself "
                         f"(found {len(inputs)}); the plan gives the ONNX graph input its format")

    path = out / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(plain, (example_input.to(torch.float32),), str(path), dynamo=dynamo,
                          opset_version=opset_version or (DYNAMO_OPSET if dynamo else TORCHSCRIPT_OPSET),
                          input_names=["input"], output_names=["output"])
    graph = _Graph(onnx.load(str(path)))

    tensors, arrays, names = {}, {}, {}
    produced: dict[int, str] = {}  # id of a torch tensor -> the ONNX tensor it is
    used_layers, used_relus = set(), set()
    for call in calls:
        module, found = call.module, {}
        if isinstance(module, QuantInput):
            found["input"] = graph.inputs[0]
            layout = tuple(range(call.output.ndim))
            tensors[found["input"]] = module.quant.plan_entry(layout, "input", arrays)
            produced[id(call.output)] = found["input"]
        elif isinstance(module, QuantReLU):
            found["output"] = _find_relu(graph, call, produced, used_relus,
                                         sum(isinstance(c.module, QuantReLU) for c in calls))
            if module.output_quant is not None:
                layout = tuple(range(call.output.ndim))
                tensors[found["output"]] = module.output_quant.plan_entry(layout, f"{call.name}.output", arrays)
        else:
            layer = _find_layer(graph, call, used_layers)
            found = {k: layer[k] for k in ("weight", "bias", "output") if k in layer}
            tensors[layer["weight"]] = module.weight_quant.plan_entry(layer["layout"], f"{call.name}.weight", arrays,
                                                                      module.weight)
            if "bias" in layer:
                tensors[layer["bias"]] = module.bias_quant.plan_entry((0,), f"{call.name}.bias", arrays, module.bias)
            if module.output_quant is not None:
                layout = tuple(range(call.output.ndim))
                tensors[layer["output"]] = module.output_quant.plan_entry(layout, f"{call.name}.output", arrays)
        if "output" in found:
            produced[id(call.output)] = found["output"]
        names[call.name] = found

    plan = {"_note": "written by compiler.train.export from the model's quantizers",
            "defaults": {"activation": None}, "tensors": tensors}
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")
    if arrays:
        np.savez_compressed(out / "arrays.npz", **{key: _compact(a) for key, a in arrays.items()})
    exported = Exported(path, plan_path, names)
    if check:
        check_export(model, example_input, exported)
    return exported


def _compact(values: np.ndarray) -> np.ndarray:
    """An integer array (widths, integer bits, signs, codebook indices) in the narrowest of int8,
    int16 and int32 that holds it, as plans written by hand store them; other arrays unchanged."""
    if values.dtype.kind not in "iub" or values.size == 0:
        return values
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= values.min() and values.max() <= info.max:
            return values.astype(dtype)
    return values


# torch modules whose float results no fixed-point value equals (a model's float tail): named
# when the export's check fails, as its likely cause
FLOAT_MODULES = (nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU,
                 nn.Softplus, nn.Mish, nn.Hardsigmoid, nn.Hardswish, nn.LogSigmoid, nn.Softsign)


def check_export(model: nn.Module, x: torch.Tensor, exported: Exported) -> None:
    """Compile the export and raise `QuantError` unless emulating ``x`` gives the model's outputs exactly."""
    from .. import compile_model  # the compiler imports nothing of torch; only this check needs it

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = model(x)
    finally:
        model.train(was_training)
    if not isinstance(want, torch.Tensor):
        raise QuantError(f"export: the model returns a {type(want).__name__}, not one tensor; finegrain checks and "
                         f"compiles models with one output")
    want = want.detach().cpu().numpy()
    got = compile_model(str(exported.model), str(exported.plan)).emulate(x.detach().cpu().numpy().astype(np.float64))
    differ = np.argwhere(np.asarray(got).reshape(want.shape) != want)
    if differ.size:
        at = tuple(int(i) for i in differ[0])
        mismatch = (f"the export's emulation differs from the torch model at output {list(at)} ({len(differ)} of "
                    f"{want.size} values): emulator {got[at]!r}, torch {want[at]!r}")
        floats = [f"{name!r} ({type(m).__name__})" for name, m in model.named_modules() if isinstance(m, FLOAT_MODULES)]
        if floats:
            verb, it = ("computes", "it") if len(floats) == 1 else ("compute", "them")
            raise QuantError(f"{mismatch}. The model's {', '.join(floats)} {verb} in float, which no fixed-point "
                             f"format reproduces (finegrain builds such a function as a table of the plan's "
                             f"format): leave {it} out of the exported model and apply {it} to finegrain's outputs")
        raise QuantError(f"{mismatch}. The torch layers compute in float64: a layer's exact sum (input, weight and "
                         f"fan-in bits together) must fit in 53 bits; narrow the formats or requantize the "
                         f"layer's input (an output_quant on the layer before it). Modules other than the "
                         f"quantized ones must be exact in fixed point too (Flatten, MaxPool, AvgPool over "
                         f"2**k values)")
