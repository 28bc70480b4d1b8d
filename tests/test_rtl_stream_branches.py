"""Branches in the RTL stream architecture (design13.md): a stream read by two engines (a fork
into skip FIFOs), a residual Add and a channel Concat of two streams (a join in front of the
engine's window), skip FIFO depths from the cycle model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "rtl_sim"
PLAN = {"defaults": {"input": "fixed<8,2,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                     "bias": "fixed<8,2,RND_CONV,SAT>", "activation": "fixed<10,4,RND_CONV,SAT>"}}


def _save(path: Path, name: str, nodes, inits, x_shape, y_shape) -> Path:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *y_shape])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _weights(seed: int, **shapes) -> list:
    rng = np.random.default_rng(seed)
    return [numpy_helper.from_array(rng.uniform(-1, 1, size=s).astype(np.float32), n) for n, s in shapes.items()]


def residual_model(path: Path) -> Path:
    """x [2,6,5] -> conv 3x3 pad 1 -> relu -> conv 3x3 pad 1 -> add(., x) -> relu -> maxpool 2
    -> flatten -> gemm 4: the input stream is read by the first conv and by the Add."""
    inits = _weights(11, w1=(2, 2, 3, 3), b1=(2,), w2=(2, 2, 3, 3), b2=(2,), wf=(4, 12), bf=(4,))
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
             helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    return _save(path, "residual", nodes, inits, (2, 6, 5), (4,))


def concat_model(path: Path) -> Path:
    """x [2,5,6] -> (conv 1x1 -> 2 ch || conv 3x3 pad 1 -> 3 ch) -> concat on channels -> relu
    -> maxpool 2 -> flatten -> gemm 3."""
    inits = _weights(12, wa=(2, 2, 1, 1), ba=(2,), wb=(3, 2, 3, 3), bb=(3,), wf=(3, 30), bf=(3,))
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="branch_1x1"),
             helper.make_node("Conv", ["x", "wb", "bb"], ["b"], name="branch_3x3", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
             helper.make_node("Relu", ["cat"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    return _save(path, "inception", nodes, inits, (2, 5, 6), (3,))
