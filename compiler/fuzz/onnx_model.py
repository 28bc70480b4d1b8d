"""A case's model as an ONNX file: built with onnx.helper (fast), or exported from torch
(`torch.onnx.export`, as users make them) for the layers torch has a module for.

Names: the input is ``x``, layer i writes ``t<i>`` and its constants are ``l<i>.<role>`` (torch
names parameters ``l<i>.weight`` too, and the graph output ``t<last>``; its inner activations
get torch's names, so a torch case's plan names no inner activation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
TORCH_OPS = frozenset({"dense", "conv", "maxpool", "avgpool", "gmaxpool", "gavgpool", "relu", "leaky", "clip",
                       "add", "mul", "concat", "flatten", "bn", "sigmoid"})


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _name(i: int, src: int) -> str:
    return "x" if src == 0 else f"t{src - 1}"


def helper_model(case: dict, name: str = "fuzz") -> onnx.ModelProto:
    nodes, inits = [], []

    def const(name, values):
        inits.append(numpy_helper.from_array(_f32(values), name))
        return name

    for i, layer in enumerate(case["layers"]):
        op, out = layer["op"], f"t{i}"
        src = [_name(i, s) for s in layer["src"]]
        x, n = src[0], f"l{i}"
        if op == "dense":
            w = _f32(layer["weight"])
            if layer.get("form") == "matmul":
                if layer.get("bias") is None:
                    nodes.append(helper.make_node("MatMul", [x, const(f"{n}.weight", w.T)], [out], name=n))
                else:
                    nodes.append(helper.make_node("MatMul", [x, const(f"{n}.weight", w.T)], [f"{n}.mm"], name=n))
                    nodes.append(helper.make_node("Add", [f"{n}.mm", const(f"{n}.bias", layer["bias"])], [out],
                                                  name=f"{n}_bias"))
            else:
                ins = [x, const(f"{n}.weight", w)] + (
                    [const(f"{n}.bias", layer["bias"])] if layer.get("bias") is not None else [])
                nodes.append(helper.make_node("Gemm", ins, [out], name=n, transB=1))
        elif op == "conv":
            w = _f32(layer["weight"])
            ins = [x, const(f"{n}.weight", w)] + (
                [const(f"{n}.bias", layer["bias"])] if layer.get("bias") is not None else [])
            nodes.append(helper.make_node("Conv", ins, [out], name=n, kernel_shape=list(w.shape[2:]),
                                          strides=layer["strides"], pads=layer["pads"], group=layer["groups"]))
        elif op in ("maxpool", "avgpool"):
            extra = {"count_include_pad": 0} if op == "avgpool" else {}
            nodes.append(helper.make_node("MaxPool" if op == "maxpool" else "AveragePool", [x], [out], name=n,
                                          kernel_shape=layer["kernel"], strides=layer["strides"], pads=layer["pads"],
                                          ceil_mode=layer["ceil_mode"], **extra))
        elif op in ("gmaxpool", "gavgpool"):
            nodes.append(helper.make_node("GlobalMaxPool" if op == "gmaxpool" else "GlobalAveragePool", [x], [out],
                                          name=n))
        elif op in ("relu", "sigmoid"):
            nodes.append(helper.make_node(op.capitalize(), [x], [out], name=n))
        elif op == "softmax":
            nodes.append(helper.make_node("Softmax", [x], [out], name=n, axis=1))
        elif op == "table":
            nodes.append(helper.make_node(layer["function"], [x], [out], name=n, **layer["attrs"]))
        elif op == "leaky":
            nodes.append(helper.make_node("LeakyRelu", [x], [out], name=n, alpha=layer["alpha"]))
        elif op == "clip":
            nodes.append(helper.make_node("Clip",
                                          [x, const(f"{n}.low", layer["low"]), const(f"{n}.high", layer["high"])],
                                          [out], name=n))
        elif op in ("add", "mul"):
            nodes.append(helper.make_node("Add" if op == "add" else "Mul", src, [out], name=n))
        elif op == "concat":
            nodes.append(helper.make_node("Concat", src, [out], name=n, axis=1))
        elif op in ("addc", "mulc"):
            nodes.append(helper.make_node("Add" if op == "addc" else "Mul", [x, const(f"{n}.const", layer["const"])],
                                          [out], name=n))
        elif op == "bn":
            ins = [x] + [const(f"{n}.{k}", layer[k]) for k in ("scale", "bias", "mean", "var")]
            nodes.append(helper.make_node("BatchNormalization", ins, [out], name=n, epsilon=layer["eps"]))
        elif op == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [out], name=n, axis=1))
        elif op == "reshape":
            shape = numpy_helper.from_array(np.asarray([-1, *layer["shape"]], dtype=np.int64), f"{n}.shape")
            inits.append(shape)
            nodes.append(helper.make_node("Reshape", [x, f"{n}.shape"], [out], name=n))
        elif op == "transpose":
            nodes.append(helper.make_node("Transpose", [x], [out], name=n, perm=[0, *(p + 1 for p in layer["perm"])]))
        else:
            raise ValueError(f"unknown fuzz layer {op!r}")
    last = f"t{len(case['layers']) - 1}"
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *case["input_shape"]])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)], inits)
    # HardSwish is defined from opset 14
    hard_swish = any(layer.get("function") == "HardSwish" for layer in case["layers"])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14 if hard_swish else OPSET)])


def torch_exportable(case: dict) -> bool:
    layers = case["layers"]
    return all(layer["op"] in TORCH_OPS and layer.get("form") != "matmul" for layer in layers) and not any(
        layer["op"] == "bn" and len(case["input_shape"]) == 1 for layer in layers)


def torch_export(case: dict, path: Path) -> None:
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []
            for i, layer in enumerate(case["layers"]):
                op = layer["op"]
                module = None
                if op == "dense":
                    w = torch.tensor(_f32(layer["weight"]))
                    module = nn.Linear(w.shape[1], w.shape[0], bias=layer.get("bias") is not None)
                    module.weight.data = w
                    if layer.get("bias") is not None:
                        module.bias.data = torch.tensor(_f32(layer["bias"]))
                elif op == "conv":
                    w = torch.tensor(_f32(layer["weight"]))
                    conv = nn.Conv1d if w.ndim == 3 else nn.Conv2d
                    n = w.ndim - 2
                    pads = layer["pads"]
                    module = conv(w.shape[1] * layer["groups"], w.shape[0], tuple(w.shape[2:]),
                                  stride=tuple(layer["strides"]), padding=tuple(pads[:n]), groups=layer["groups"],
                                  bias=layer.get("bias") is not None)
                    module.weight.data = w
                    if layer.get("bias") is not None:
                        module.bias.data = torch.tensor(_f32(layer["bias"]))
                elif op == "bn":
                    c = len(layer["scale"])
                    n = len(case["input_shape"])
                    module = nn.BatchNorm1d(c, eps=layer["eps"]) if n == 2 else nn.BatchNorm2d(c, eps=layer["eps"])
                    module.weight.data = torch.tensor(_f32(layer["scale"]))
                    module.bias.data = torch.tensor(_f32(layer["bias"]))
                    module.running_mean.data = torch.tensor(_f32(layer["mean"]))
                    module.running_var.data = torch.tensor(_f32(layer["var"]))
                if module is not None:
                    setattr(self, f"l{i}", module)

        def forward(self, x):
            import torch.nn.functional as F

            values = [x]
            for i, layer in enumerate(case["layers"]):
                op, a = layer["op"], values[layer["src"][0]]
                if op in ("dense", "conv", "bn"):
                    y = getattr(self, f"l{i}")(a)
                elif op in ("maxpool", "avgpool"):
                    n = a.dim() - 2
                    pool = {("maxpool", 1): F.max_pool1d, ("maxpool", 2): F.max_pool2d,
                            ("avgpool", 1): F.avg_pool1d, ("avgpool", 2): F.avg_pool2d}[(op, n)]
                    extra = {"count_include_pad": False} if op == "avgpool" else {}
                    y = pool(a, tuple(layer["kernel"]), tuple(layer["strides"]), tuple(layer["pads"][:n]),
                             ceil_mode=bool(layer["ceil_mode"]), **extra)
                elif op == "gmaxpool":
                    y = F.adaptive_max_pool1d(a, 1) if a.dim() == 3 else F.adaptive_max_pool2d(a, 1)
                elif op == "gavgpool":
                    y = F.adaptive_avg_pool1d(a, 1) if a.dim() == 3 else F.adaptive_avg_pool2d(a, 1)
                elif op == "relu":
                    y = torch.relu(a)
                elif op == "sigmoid":
                    y = torch.sigmoid(a)
                elif op == "leaky":
                    y = F.leaky_relu(a, layer["alpha"])
                elif op == "clip":
                    y = F.hardtanh(a, layer["low"], layer["high"])
                elif op == "add":
                    y = a + values[layer["src"][1]]
                elif op == "mul":
                    y = a * values[layer["src"][1]]
                elif op == "concat":
                    y = torch.cat([a, values[layer["src"][1]]], dim=1)
                else:  # flatten
                    y = torch.flatten(a, 1)
                values.append(y)
            return values[-1]

    model = Model().eval()
    example = torch.zeros(1, *case["input_shape"])
    torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=[f"t{len(case['layers']) - 1}"],
                      dynamic_axes={"x": {0: "N"}}, opset_version=OPSET, dynamo=False)


def write_model(case: dict, path: Path, name: str = "fuzz") -> str:
    """Write the case's model to ``path`` (a helper model's graph is ``name``); returns how
    ("helper" or "torch")."""
    if case.get("quant"):
        from .quant import quant_model

        onnx.save(quant_model(case, name), path)
        return "helper"
    if case.get("export") == "torch" and torch_exportable(case):
        torch_export(case, path)
        return "torch"
    onnx.save(helper_model(case, name), path)
    return "helper"
