"""float_eval on what the frontend never produces: fused nodes, REQUANTIZE, quantized constants.
(Every op the frontend produces is checked against onnxruntime in test_frontend.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.fixed import FixedType, Formats
from compiler.float_eval import evaluate_float
from compiler.ir import Graph, IRError, Node, Op, Tensor, TensorKind, verify


def _dense_relu_graph() -> Graph:
    w = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])
    b = np.array([0.125, -2.0])
    tensors = [
        Tensor("x", (3,), TensorKind.INPUT),
        Tensor("w", (2, 3), TensorKind.WEIGHT, data=w, float_data=w),
        Tensor("b", (2,), TensorKind.BIAS, data=b, float_data=b),
        Tensor("acc", (2,), TensorKind.ACTIVATION),
        Tensor("y", (2,), TensorKind.ACTIVATION),
    ]
    nodes = [Node("fc", Op.DENSE, ("x", "w", "b"), ("acc",)), Node("act", Op.RELU, ("acc",), ("y",))]
    return Graph("g", ("x",), ("y",), nodes, {t.name: t for t in tensors})


def test_fused_epilogue_and_requantize_match_plain_nodes():
    plain = _dense_relu_graph()
    dense, relu = plain.nodes
    fused = plain.with_nodes(
        [dataclasses.replace(dense, outputs=("y",), epilogue=(relu,))])
    requantized = plain.with_nodes(
        [dense, dataclasses.replace(relu, outputs=("r",)), Node("rq", Op.REQUANTIZE, ("r",), ("y",))],
        {**plain.tensors, "r": Tensor("r", (2,), TensorKind.ACTIVATION)})
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    expected = np.maximum(x @ plain.tensor("w").data.T + plain.tensor("b").data, 0)
    for graph in (plain, fused, requantized):
        verify(graph)
        np.testing.assert_array_equal(evaluate_float(graph, {"x": x})["y"], expected)


def test_quantized_constant_without_float_data_is_scaled_by_its_fraction():
    graph = _dense_relu_graph()
    w = graph.tensor("w")
    quantized = dataclasses.replace(w, data=(w.data * 4).astype(np.int64), data_frac=2, float_data=None,
                                    formats=Formats.uniform(w.shape, FixedType(8, 3)))
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(evaluate_float(graph.with_tensors({"w": quantized}), {"x": x})["y"],
                                  evaluate_float(graph, {"x": x})["y"])


def test_input_shape_is_checked():
    with pytest.raises(IRError, match="'x'"):
        evaluate_float(_dense_relu_graph(), {"x": np.zeros((1, 4))})
