"""The float frontend on what real quantized-model exports hold around their quantizers
(issue 12): Flatten/Reshape/Squeeze/Transpose that fold a static batch of 1 into other axes
(keras2onnx's ``Flatten(axis=0)``, ``Reshape(x, [-1])``), compared with onnxruntime on the
float path.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from onnx import helper
from torch import nn

from compiler.cli import main
from compiler.errors import FrontendError
from compiler.float_eval import evaluate_float
from compiler.frontend import load_onnx
from compiler.ir import Op
from tests.test_frontend import make_model, onnxruntime_outputs, rand


def matches_onnxruntime(path, x: np.ndarray, name: str = "x"):
    """load_onnx + the float interpreter equal onnxruntime; an output that lost its batch axis
    (ONNX shape [12] on a batch of 1) is the same values as finegrain's [1, 12]."""
    graph = load_onnx(path)
    expected = onnxruntime_outputs(path, {name: x})
    got = evaluate_float(graph, {name: x})
    assert list(got) == list(expected)
    for out in expected:
        assert expected[out].size == got[out].size, out
        np.testing.assert_allclose(got[out], expected[out].reshape(got[out].shape), rtol=1e-5, atol=1e-5,
                                   err_msg=out)
    return graph


def export_batch_one(module: nn.Module, shape, path, dynamo: bool):
    """torch.onnx.export with a static batch of 1 (TorchScript at opset 13, or dynamo)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(1, *shape),), str(path), dynamo=dynamo,
                          opset_version=18 if dynamo else 13, input_names=["x"], output_names=["y"])


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{outputs[0]}", **attrs)


# --- a static batch of 1 folded into other axes ---------------------------------------------------

W12 = rand(12, 5, seed=1)
W4 = rand(4, 5, seed=2)

# (reshape target, nodes after it reading "r" and writing "y", initializers): x is [1, 3, 4]
BATCH_ONE_RESHAPES = {
    "keep_batch_1": ([1, -1], [node("MatMul", ["r", "W12"], ["y"])], {"W12": W12}),
    "zero_copies_batch": ([0, -1], [node("MatMul", ["r", "W12"], ["y"])], {"W12": W12}),
    "minus_one_rank1": ([-1], [node("MatMul", ["r", "W12"], ["m"]), node("Add", ["m", "b"], ["a"]),
                               node("Relu", ["a"], ["y"])], {"W12": W12, "b": rand(5, seed=3)}),
    "n_rank1_to_softmax": ([12], [node("MatMul", ["r", "W12"], ["m"]), node("Softmax", ["m"], ["y"])],
                           {"W12": W12}),
    "rows_of_one_sample": ([3, -1], [node("MatMul", ["r", "W4"], ["m"]), node("Mul", ["m", "s"], ["p"]),
                                     node("Reshape", ["p", "flat"], ["y"])],
                           {"W4": W4, "s": rand(3, 1, seed=4), "flat": np.array([1, -1])}),
    "batch_merged_then_restored": ([2, 6], [node("Reshape", ["r", "back"], ["y"])], {"back": np.array([1, 4, 3])}),
    "two_without_batch": ([-1], [node("Add", ["r", "r"], ["m"]), node("Sub", ["m", "r"], ["y"])], {}),
}


@pytest.mark.parametrize("case", sorted(BATCH_ONE_RESHAPES))
def test_reshape_on_a_batch_of_one_matches_onnxruntime(tmp_path, case):
    target, nodes, inits = BATCH_ONE_RESHAPES[case]
    path = make_model(tmp_path / "m.onnx", [node("Reshape", ["x", "target"], ["r"]), *nodes], {"x": [1, 3, 4]},
                      ["y"], {"target": np.array(target), **inits})
    matches_onnxruntime(path, rand(1, 3, 4))


def test_flatten_axis_0_keras2onnx(tmp_path):
    """keras2onnx on a batch-1 model: Flatten(axis=0) -> [1, 24] -> MatMul -> Add -> Softmax."""
    nodes = [node("Flatten", ["x"], ["f"], axis=0), node("MatMul", ["f", "W"], ["m"]),
             node("Add", ["m", "b"], ["a"]), node("Softmax", ["a"], ["y"], axis=1)]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 3, 4]}, ["y"],
                      {"W": rand(24, 5), "b": rand(5, seed=1)}, opset=11)
    graph = matches_onnxruntime(path, rand(1, 2, 3, 4))
    assert graph.nodes[0].op == Op.RESHAPE and graph.nodes[0].attrs["shape"] == (24,)


@pytest.mark.parametrize("axis", [2, 3, -1])
def test_flatten_inside_one_sample(tmp_path, axis):
    """Flatten(axis=2) on [1, 2, 3, 4] is [2, 12]: no batch axis left; MatMul keeps it so and
    Flatten(axis=0) brings it back as [1, N]."""
    k = int(np.prod([1, 2, 3, 4][axis:]))
    nodes = [node("Flatten", ["x"], ["f"], axis=axis), node("MatMul", ["f", "W"], ["m"]),
             node("Flatten", ["m"], ["y"], axis=0)]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 3, 4]}, ["y"], {"W": rand(k, 3)})
    graph = matches_onnxruntime(path, rand(1, 2, 3, 4))
    assert graph.tensor("y").shape == (24 // k * 3,)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_all_and_unsqueeze_batch(tmp_path, opset):
    """Squeeze() on [1, 8, 1, 1] is [8] (the batch of 1 goes too); Unsqueeze(0) restores it."""
    axes = {"axes": [0]} if opset < 13 else {}
    inputs = ["m"] if opset < 13 else ["m", "zero"]
    nodes = [node("Squeeze", ["x"], ["s"]), node("MatMul", ["s", "W"], ["m"]),
             node("Unsqueeze", inputs, ["y"], **axes)]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 8, 1, 1]}, ["y"],
                      {"W": rand(8, 4), "zero": np.array([0])}, opset=opset)
    graph = matches_onnxruntime(path, rand(1, 8, 1, 1))
    assert graph.tensor("y").shape == (4,)


def test_squeeze_batch_axis_and_transpose_without_batch(tmp_path):
    nodes = [node("Squeeze", ["x", "zero"], ["s"]), node("Transpose", ["s"], ["t"], perm=[1, 0]),
             node("LeakyRelu", ["t"], ["l"], alpha=0.25), node("Reshape", ["l", "target"], ["y"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 3, 4]}, ["y"],
                      {"zero": np.array([0]), "target": np.array([1, 12])})
    graph = matches_onnxruntime(path, rand(1, 3, 4))
    assert [n.op for n in graph.nodes] == [Op.TRANSPOSE, Op.LEAKY_RELU, Op.RESHAPE]


@pytest.mark.parametrize("perm,shape", [([1, 0, 2], [1, 3, 4]), ([2, 1, 0], [1, 3, 4]), ([1, 0], [1, 4]),
                                        ([0, 2, 1], [1, 3, 4]), ([1, 2, 0], [1, 3, 4])])
def test_transpose_moving_a_batch_of_one(tmp_path, perm, shape):
    """The batch axis of 1 holds no data: Transpose may move it; the others are permuted, and
    Flatten(axis=0) makes the result [1, N] again."""
    nodes = [node("Transpose", ["x"], ["t"], perm=perm), node("Relu", ["t"], ["r"]),
             node("Flatten", ["r"], ["y"], axis=0)]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": shape}, ["y"])
    matches_onnxruntime(path, rand(*shape))


def test_shape_of_a_value_without_batch_folds_to_its_onnx_shape(tmp_path):
    """Shape([-1]-reshaped [1, 3, 4]) is [12], as torch's shape arithmetic expects."""
    nodes = [node("Reshape", ["x", "minus_one"], ["r"]), node("Shape", ["r"], ["s"]),
             node("Concat", ["one", "s"], ["target"], axis=0), node("Relu", ["r"], ["a"]),
             node("Reshape", ["a", "target"], ["y"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 3, 4]}, ["y"],
                      {"minus_one": np.array([-1]), "one": np.array([1])})
    graph = matches_onnxruntime(path, rand(1, 3, 4))
    assert graph.tensor("y").shape == (12,)


class FlatLinear(nn.Module):
    """x.reshape(-1) on a batch of 1, a Linear on the 1-D vector, softmax: MatMul + Add on [12]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return torch.softmax(self.fc(x.reshape(-1)), dim=-1)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_reshape_to_one_axis_on_batch_one(tmp_path, dynamo):
    export_batch_one(FlatLinear(), (3, 4), tmp_path / "m.onnx", dynamo)
    matches_onnxruntime(tmp_path / "m.onnx", rand(1, 3, 4))


@pytest.mark.parametrize("batch,nodes,inits,message", [
    # the batch may be more than 1: these mix samples
    ("N", [node("Flatten", ["x"], ["y"], axis=0)], {}, r"'flatten_y' \(Flatten\): axis=0 .*not statically 1"),
    ("N", [node("Reshape", ["x", "t"], ["y"])], {"t": [3, -1]}, r"'reshape_y' \(Reshape\).*not statically 1"),
    ("N", [node("Reshape", ["x", "t"], ["y"])], {"t": [-1]}, r"'reshape_y' \(Reshape\).*across the batch"),
    (2, [node("Reshape", ["x", "t"], ["y"])], {"t": [-1]}, r"'reshape_y' \(Reshape\).*across the batch"),
    ("N", [node("Squeeze", ["x", "t"], ["y"])], {"t": [0]}, r"'squeeze_y' \(Squeeze\).*batch axis"),
    # a value without its batch axis where the op reads axis 0 as the batch
    (1, [node("Reshape", ["x", "t"], ["r"]), node("Conv", ["r", "W"], ["y"])],
     {"t": [3, 1, 4], "W": rand(1, 1, 1)}, r"'conv_y' \(Conv\): input 'r' has ONNX shape \[3, 1, 4\], without"),
    (1, [node("Reshape", ["x", "t"], ["r"]), node("Add", ["r", "b"], ["y"])],
     {"t": [-1], "b": rand(1, 12)}, r"'add_y' \(Add\).*\[12\], without the batch axis.*at most that rank"),
    (1, [node("Reshape", ["x", "t"], ["r"]), node("Add", ["r", "x"], ["y"])],
     {"t": [3, 4]}, r"'add_y' \(Add\).*without the batch axis"),
    (1, [node("Reshape", ["x", "t"], ["r"]), node("Concat", ["r", "r"], ["y"], axis=0)],
     {"t": [-1]}, r"'concat_y' \(Concat\).*without the batch axis"),
    (1, [node("Reshape", ["x", "t"], ["y"])], {"t": [5, -1]}, r"'reshape_y' \(Reshape\): cannot reshape"),
])
def test_batch_errors_name_the_node(tmp_path, batch, nodes, inits, message):
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [batch, 3, 4]}, ["y"],
                      {k: np.array(v) if isinstance(v, list) else v for k, v in inits.items()})
    with pytest.raises(FrontendError, match=message):
        load_onnx(path)
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "--backend", "hls"]) == 2
