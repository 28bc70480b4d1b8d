"""One-layer ONNX models written from nodes and compiled with a plan, for tests of single ops."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

import compiler


def compile_layers(tmp_path, nodes, shape, out_shape, plan: dict, initializers=()):
    """Compile (in memory, no backends) the graph ``x [shape] -> nodes -> y [out_shape]`` at
    opset 17 with the bit plan ``plan``; the model and plan are written into ``tmp_path``."""
    graph = helper.make_graph(list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              initializer=list(initializers))
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return compiler.compile_model(str(model), str(path), backends=())
