"""The float frontend on what real quantized-model exports hold around their quantizers
(issue 12): Flatten/Reshape/Squeeze/Transpose that fold a static batch of 1 into other axes
(keras2onnx's ``Flatten(axis=0)``, ``Reshape(x, [-1])``), DepthToSpace and SpaceToDepth, and
every op/attribute pattern of ``../shared/models/mlperf_kws_dscnn_int8_qdq.onnx`` (tf2onnx) and
``espcn_subpixel_qonnx.onnx`` (Brevitas, after qonnx's ``cleanup_model``), each compared with
onnxruntime on the float path.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from compiler.cli import main
from compiler.errors import FrontendError
from compiler.float_eval import evaluate_float
from compiler.frontend import load_onnx
from compiler.ir import Op
from tests.test_frontend import SHARED_MODELS, make_model, onnxruntime_outputs, rand


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
    "constant_brings_batch_back": ([-1], [node("Add", ["r", "b"], ["a"]), node("MatMul", ["a", "W12"], ["y"])],
                                   {"b": rand(1, 12, seed=5), "W12": W12}),
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


def random_layout_chain(rng: np.random.Generator, dims: list[int], steps: int):
    """Reshape (with -1 and 0), Flatten, Transpose, Squeeze(), Unsqueeze, Relu, Add of a
    constant that broadcasts and MatMul in a random chain over a batch of 1: (nodes,
    initializers), the value 'y' at the end."""
    nodes, inits, value = [], {}, "x"
    for k in range(steps):
        out = "y" if k == steps - 1 else f"v{k}"
        op = rng.choice(["Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Relu", "Add", "MatMul"])
        if (op == "Squeeze" and all(d == 1 for d in dims)) or (op == "MatMul" and dims == [1]):
            op = "Relu"
        if op == "Reshape":
            size, target = int(np.prod(dims)), []
            while size > 1 and len(target) < 3:
                factor = int(rng.choice([f for f in range(1, size + 1) if size % f == 0]))
                target.append(factor)
                size //= factor
            target = [*([1] if rng.random() < 0.4 else []), *(target or [1]), *([size] if size > 1 else [])]
            new_dims, spelled = list(target), list(target)
            spelled[int(rng.integers(len(spelled)))] = -1
            spelled = [0 if i < len(dims) and v == dims[i] and rng.random() < 0.5 else v for i, v in enumerate(spelled)]
            inits[f"t{k}"] = np.array(spelled)
            nodes.append(node("Reshape", [value, f"t{k}"], [out]))
        elif op == "Flatten":
            axis = int(rng.integers(len(dims) + 1))
            new_dims = [int(np.prod(dims[:axis])), int(np.prod(dims[axis:]))]
            nodes.append(node("Flatten", [value], [out], axis=axis))
        elif op == "Transpose":
            perm = [int(i) for i in rng.permutation(len(dims))]
            new_dims = [dims[i] for i in perm]
            nodes.append(node("Transpose", [value], [out], perm=perm))
        elif op == "Squeeze":
            new_dims = [d for d in dims if d != 1]
            nodes.append(node("Squeeze", [value], [out]))
        elif op == "Unsqueeze":
            axis = int(rng.integers(len(dims) + 1))
            new_dims = [*dims[:axis], 1, *dims[axis:]]
            inits[f"a{k}"] = np.array([axis])
            nodes.append(node("Unsqueeze", [value, f"a{k}"], [out]))
        elif op == "Add":  # a trailing part of the shape with some 1s, or [1, *dims] past a lost batch
            shape = [d if rng.random() < 0.7 else 1 for d in dims[len(dims) - int(rng.integers(len(dims) + 1)):]]
            shape = [1, *dims] if dims[0] != 1 and rng.random() < 0.3 else shape
            new_dims = list(np.broadcast_shapes(tuple(dims), tuple(shape)))
            inits[f"c{k}"] = rand(*shape, seed=k)
            nodes.append(node("Add", [value, f"c{k}"], [out]))
        elif op == "MatMul":
            n = int(rng.integers(1, 4))
            new_dims = [*dims[:-1], n]
            inits[f"w{k}"] = rand(dims[-1], n, seed=k)
            nodes.append(node("MatMul", [value, f"w{k}"], [out]))
        else:
            new_dims = dims
            nodes.append(node("Relu", [value], [out]))
        value, dims = out, new_dims
    return nodes, inits


@pytest.mark.parametrize("seed", range(40))
def test_random_layout_chains_on_a_batch_of_one(tmp_path, seed):
    """Any chain of layout ops over a batch of 1 is one sample's values moved: the IR (with or
    without the batch axis at each step) equals onnxruntime, and so do ONNX's own shapes."""
    rng = np.random.default_rng(seed)
    shape = [1, *(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 4))))]
    nodes, inits = random_layout_chain(rng, shape, int(rng.integers(2, 6)))
    path = make_model(tmp_path / "m.onnx", nodes, {"x": shape}, ["y"], inits)
    matches_onnxruntime(path, rand(*shape, seed=seed))


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
     {"t": [-1], "b": rand(2, 12)}, r"'add_y' \(Add\).*\[12\], without the batch axis.*at most that rank"),
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


class TranslatorView:
    """What ops_shape._batchless_result reads of the translator: constants, the values that
    lost their batch axis, their ONNX shapes."""

    def __init__(self, constants: dict, batchless: dict, opset: int = 13):
        self.values = {k: np.asarray(v) for k, v in constants.items()}
        self.batchless, self.opset = batchless, opset

    def is_constant(self, name):
        return name in self.values

    def value(self, name):
        return self.values[name]

    def onnx_dims(self, name):
        return self.batchless[name]


@pytest.mark.parametrize("op,inputs,attrs,result", [
    ("Quant", ["r", "s", "z", "bits"], {"signed": 1}, True),
    ("Quant", ["r", "row_s", "z", "bits"], {}, True),
    ("BipolarQuant", ["r", "s"], {}, True),
    ("Quant", ["r", "batch_s", "z", "bits"], {}, False),
    ("Quant", ["r", "rows_s", "z", "bits"], {}, "at most that rank"),
    ("DequantizeLinear", ["r", "s", "z"], {}, True),
    ("QuantizeLinear", ["r", "one_s"], {}, True),
    ("DequantizeLinear", ["r", "row_s", "row_z"], {"axis": 0}, "one scale and zero point for the whole tensor"),
    ("Relu", ["x"], {}, False),
    ("GlobalAveragePool", ["r"], {}, "batch axis first; reshape it"),
])
def test_which_ops_read_a_value_without_batch(op, inputs, attrs, result):
    """Quantizers on a value that lost its batch axis keep it so (Quant with scales of at most
    its rank, QuantizeLinear/DequantizeLinear per tensor); the frontend's quantizer translators
    (issue 12) come in through this rule like the float ops."""
    from compiler.frontend.ops_shape import _batchless_result

    view = TranslatorView({"s": 0.5, "z": 0.0, "bits": 4.0, "one_s": [0.25], "row_s": np.full(12, 0.5),
                           "row_z": np.zeros(12, np.int8), "batch_s": np.full((1, 12), 0.5),
                           "rows_s": np.full((2, 12), 0.5)}, {"r": (12,)})
    proto = helper.make_node(op, inputs, ["q"], name="q_node", **attrs)
    if isinstance(result, bool):
        assert _batchless_result(view, proto, "q_node") is result
    else:
        with pytest.raises(FrontendError, match=rf"node 'q_node' \({op}\): input 'r' has ONNX shape \[12\].*{result}"):
            _batchless_result(view, proto, "q_node")


# --- DepthToSpace and SpaceToDepth ----------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("mode,blocksize", [("DCR", 2), ("CRD", 2), ("DCR", 3), ("CRD", 3)])
def test_depth_to_space(tmp_path, opset, mode, blocksize):
    c = 2 * blocksize * blocksize
    path = make_model(tmp_path / "m.onnx", [node("DepthToSpace", ["x"], ["y"], blocksize=blocksize, mode=mode)],
                      {"x": [1, c, 3, 2]}, ["y"], opset=opset)
    graph = matches_onnxruntime(path, rand(1, c, 3, 2))
    assert [n.op for n in graph.nodes] == [Op.RESHAPE, Op.TRANSPOSE, Op.RESHAPE]
    assert graph.tensor("y").shape == (2, 3 * blocksize, 2 * blocksize)


def test_depth_to_space_default_mode_is_dcr(tmp_path):
    path = make_model(tmp_path / "m.onnx", [node("DepthToSpace", ["x"], ["y"], blocksize=2)],
                      {"x": [1, 8, 2, 2]}, ["y"], opset=11)
    matches_onnxruntime(path, rand(1, 8, 2, 2))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("blocksize", [2, 3])
def test_space_to_depth(tmp_path, opset, blocksize):
    h, w = 2 * blocksize, 3 * blocksize
    path = make_model(tmp_path / "m.onnx", [node("SpaceToDepth", ["x"], ["y"], blocksize=blocksize)],
                      {"x": [1, 2, h, w]}, ["y"], opset=opset)
    graph = matches_onnxruntime(path, rand(1, 2, h, w))
    assert graph.tensor("y").shape == (2 * blocksize * blocksize, 2, 3)


class PixelShuffles(nn.Module):
    """PixelShuffle exports as DepthToSpace(CRD), PixelUnshuffle as Reshape/Transpose/Reshape
    through a rank-6 tensor (rank 5 without the batch)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return nn.functional.pixel_unshuffle(torch.relu(nn.functional.pixel_shuffle(self.conv(x), 2)), 2)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_pixel_shuffle(tmp_path, dynamo):
    path = tmp_path / "m.onnx"
    export_batch_one(PixelShuffles(), (3, 4, 5), path, dynamo)
    assert "DepthToSpace" in {n.op_type for n in onnx.load(str(path)).graph.node}
    matches_onnxruntime(path, rand(1, 3, 4, 5))


@pytest.mark.parametrize("op,shape,attrs,message", [
    ("DepthToSpace", [1, 6, 2, 2], {"blocksize": 2}, r"6 channels are not a multiple of blocksize 2 squared"),
    ("DepthToSpace", [1, 8, 2, 2], {"blocksize": 2, "mode": "XYZ"}, r"mode 'XYZ'"),
    ("SpaceToDepth", [1, 2, 3, 4], {"blocksize": 2}, r"height 3 and width 4 must be multiples of blocksize 2"),
    ("SpaceToDepth", [1, 2, 4], {"blocksize": 2}, r"needs \(batch, channels, height, width\)"),
])
def test_depth_space_errors_name_the_node(tmp_path, op, shape, attrs, message):
    path = make_model(tmp_path / "m.onnx", [helper.make_node(op, ["x"], ["y"], name="sub", **attrs)],
                      {"x": shape}, ["y"])
    with pytest.raises(FrontendError, match=rf"node 'sub' \({op}\): .*{message}"):
        load_onnx(path)


def test_depth_to_space_csim_and_sim_bit_exact(tmp_path):
    """Conv -> DepthToSpace(CRD) -> SpaceToDepth -> DepthToSpace(DCR) -> Relu: the rank-5
    transposes through g++ csim and Verilator sim equal the emulator."""
    nodes = [node("Conv", ["x", "W"], ["c"]), node("DepthToSpace", ["c"], ["d"], blocksize=2, mode="CRD"),
             node("SpaceToDepth", ["d"], ["s"], blocksize=2), node("DepthToSpace", ["s"], ["e"], blocksize=2),
             node("Relu", ["e"], ["y"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 2, 3]}, ["y"],
                      {"W": np.random.default_rng(0).uniform(-1, 1, (8, 2, 1, 1))})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<10,3,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                                             "bias": None, "activation": None}}))
    out = tmp_path / "out"
    assert main(["compile", str(path), "--plan", str(plan), "-o", str(out)]) == 0
    assert main(["csim", str(out), "--vectors", "50"]) == 0
    assert main(["sim", str(out), "--vectors", "20"]) == 0


# --- the non-quantizer patterns of the shared real models ----------------------------------------


def test_kws_dscnn_tf2onnx_patterns(tmp_path):
    """mlperf_kws_dscnn_int8_qdq.onnx at opset 13, scaled down: channels-last input [1, H, W, 1]
    made NCHW by Reshape([-1, 1, H, W]); Conv with asymmetric pads [4, 1, 5, 1], stride 2 and
    explicit dilations; depthwise Conv (group = channels, pads 1); 1x1 Conv; Relu after each;
    AveragePool over the whole map (kernel = strides, no pads); Reshape([-1, C]); MatMul; Add of
    the bias; Softmax with the default axis."""
    rng = np.random.default_rng(0)
    c = 4
    nodes = [node("Reshape", ["x", "nchw"], ["t"]),
             node("Conv", ["t", "W0", "B0"], ["c0"], strides=[2, 2], dilations=[1, 1], kernel_shape=[10, 4],
                  pads=[4, 1, 5, 1], group=1), node("Relu", ["c0"], ["r0"]),
             node("Conv", ["r0", "Wd", "Bd"], ["c1"], strides=[1, 1], dilations=[1, 1], kernel_shape=[3, 3],
                  group=c, pads=[1, 1, 1, 1]), node("Relu", ["c1"], ["r1"]),
             node("Conv", ["r1", "Wp", "Bp"], ["c2"], strides=[1, 1], dilations=[1, 1], kernel_shape=[1, 1],
                  pads=[0, 0, 0, 0], group=1), node("Relu", ["c2"], ["r2"]),
             node("AveragePool", ["r2"], ["p"], strides=[7, 3], kernel_shape=[7, 3]),
             node("Reshape", ["p", "flat"], ["f"]), node("MatMul", ["f", "Wf"], ["m"]),
             node("Add", ["m", "Bf"], ["a"]), node("Softmax", ["a"], ["y"])]
    inits = {"nchw": np.array([-1, 1, 13, 6]), "W0": rng.standard_normal((c, 1, 10, 4)), "B0": rng.standard_normal(c),
             "Wd": rng.standard_normal((c, 1, 3, 3)), "Bd": rng.standard_normal(c),
             "Wp": rng.standard_normal((c, c, 1, 1)), "Bp": rng.standard_normal(c),
             "flat": np.array([-1, c]), "Wf": rng.standard_normal((c, 12)), "Bf": rng.standard_normal(12)}
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 13, 6, 1]}, ["y"], inits, opset=13)
    graph = matches_onnxruntime(path, rand(1, 13, 6, 1))
    assert [n.op for n in graph.nodes] == [Op.RESHAPE, Op.CONV, Op.RELU, Op.CONV, Op.RELU, Op.CONV, Op.RELU,
                                           Op.AVGPOOL, Op.RESHAPE, Op.DENSE, Op.ADD, Op.SOFTMAX]


def test_espcn_brevitas_patterns(tmp_path):
    """espcn_subpixel_qonnx.onnx after cleanup_model, at opset 11: Conv 5x5 and 3x3 with pads and
    a bias, BatchNormalization with the momentum attribute, Relu, Conv without bias,
    DepthToSpace(CRD, blocksize 2) and a Relu after it."""
    rng = np.random.default_rng(0)
    bn = {"g": rng.uniform(0.5, 1.5, 4), "be": rng.standard_normal(4), "mu": rng.standard_normal(4),
          "var": rng.uniform(0.5, 2, 4)}
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], dilations=[1, 1], group=1, kernel_shape=[5, 5],
                  pads=[2, 2, 2, 2], strides=[1, 1]),
             node("BatchNormalization", ["c0", "g", "be", "mu", "var"], ["n0"], epsilon=1e-5, momentum=0.9),
             node("Relu", ["n0"], ["r0"]),
             node("Conv", ["r0", "W1"], ["c1"], dilations=[1, 1], group=1, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                  strides=[1, 1]),
             node("DepthToSpace", ["c1"], ["d"], blocksize=2, mode="CRD"), node("Relu", ["d"], ["y"])]
    inits = {"W0": rng.standard_normal((4, 3, 5, 5)), "B0": rng.standard_normal(4), **bn,
             "W1": rng.standard_normal((12, 4, 3, 3))}
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 3, 6, 5]}, ["y"], inits, opset=11)
    graph = matches_onnxruntime(path, rand(1, 3, 6, 5))
    assert graph.tensor("y").shape == (3, 12, 10)


def without_quantizers(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model around the quantizers: DequantizeLinear of an initializer becomes its
    float value, every other QuantizeLinear/DequantizeLinear/Quant an Identity, integer graph
    inputs and outputs float."""
    g = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = []
    for p in g.node:
        if p.op_type == "DequantizeLinear" and p.input[0] in values:
            q, scale = values[p.input[0]].astype(np.float64), values[p.input[1]].astype(np.float64)
            zero = values[p.input[2]].astype(np.float64) if len(p.input) > 2 else np.zeros(())
            if scale.ndim == 1 and q.ndim > 1:  # per axis
                axis = next((a.i for a in p.attribute if a.name == "axis"), 1)
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape if zero.ndim else ())
            values[p.output[0]] = ((q - zero) * scale).astype(np.float32)
        elif p.op_type in ("QuantizeLinear", "DequantizeLinear", "Quant"):
            nodes.append(helper.make_node("Identity", [p.input[0]], [p.output[0]], name=p.name))
        else:
            nodes.append(p)
    read = {i for p in nodes for i in p.input}
    inputs = [vi for vi in g.input if vi.name not in values]
    for vi in [*inputs, *g.output]:
        vi.type.tensor_type.elem_type = TensorProto.FLOAT
    graph = helper.make_graph(nodes, g.name, inputs, list(g.output),
                              [numpy_helper.from_array(v, k) for k, v in values.items() if k in read])
    out = helper.make_model(graph, opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")])
    out.ir_version = 8
    return out


def test_real_models_without_their_quantizers(tmp_path):
    """Both shared models with their quantizer nodes taken out: every other node translates
    and the float path equals onnxruntime (ESPCN after qonnx's cleanup_model, as issue 12 reads it)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    kws = onnx.load(str(SHARED_MODELS / "mlperf_kws_dscnn_int8_qdq.onnx"))
    espcn = cleanup_model(ModelWrapper(str(SHARED_MODELS / "espcn_subpixel_qonnx.onnx"))).model
    for name, model in [("kws", kws), ("espcn", espcn)]:
        path = tmp_path / f"{name}.onnx"
        onnx.save(without_quantizers(model), str(path))
        x_name = model.graph.input[0].name
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = rand(*shape, seed=5)
        graph = load_onnx(path)
        expected = onnxruntime_outputs(path, {x_name: x})
        got = evaluate_float(graph, {x_name: x})
        for out in expected:
            np.testing.assert_allclose(got[out], expected[out], rtol=1e-4, atol=1e-4, err_msg=f"{name} {out}")
    quantizers = {"Quant", "QuantizeLinear", "DequantizeLinear"}
    assert {p.op_type for p in kws.graph.node} - quantizers == {"Reshape", "Conv", "Relu", "AveragePool", "MatMul",
                                                                "Add", "Softmax"}
    assert {p.op_type for p in espcn.graph.node} - quantizers == {"Conv", "BatchNormalization", "Relu", "DepthToSpace"}
