"""ONNX frontend: every model is loaded, checked with `verify`, run with `evaluate_float` and
compared with onnxruntime (float against float, so the tolerance is float32 rounding).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from compiler.errors import FrontendError
from compiler.float_eval import evaluate_float
from compiler.frontend import load_onnx
from compiler.ir import Op, TensorKind, verify

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"

# (exporter, opset): the TorchScript exporter at old and recent opsets, and dynamo at its default.
EXPORTS = [("torchscript", 9), ("torchscript", 11), ("torchscript", 17), ("dynamo", 18)]


# --- helpers --------------------------------------------------------------------------------


def onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {k: v.astype(np.float32) for k, v in feeds.items()}), strict=True))


def assert_matches_onnxruntime(path: Path, feeds: dict[str, np.ndarray]):
    graph = load_onnx(path)
    verify(graph)
    expected = onnxruntime_outputs(path, feeds)
    got = evaluate_float(graph, feeds)
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
    return graph


def export_torch(module: nn.Module, input_shape, path: Path, exporter: str, opset: int) -> int:
    """Export with batch 1; the TorchScript export has a dynamic batch. Returns a batch to test."""
    module.eval()
    example = (torch.randn(1, *input_shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, example, str(path), dynamo=True, opset_version=opset,
                              input_names=["x"], output_names=["y"], verbose=False)
            return 1
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return 3


def make_model(path: Path, nodes, inputs: dict, outputs: list[str], initializers: dict | None = None,
               opset: int = 13) -> Path:
    """Save a hand-built model: float inputs (name -> shape, str dims symbolic) and outputs;
    float initializers are stored as float32, integer ones keep their type."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [_initializer(n, v) for n, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what onnxruntime accepts with every opset used here
    onnx.save(model, str(path))
    return path


def _initializer(name: str, value) -> onnx.TensorProto:
    value = np.asarray(value)
    return numpy_helper.from_array(value.astype(np.float32) if value.dtype.kind == "f" else value, name)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- torch models ---------------------------------------------------------------------------


class Mlp(nn.Module):
    """Linear, ReLU, LeakyReLU, ReLU6, x*0.5, x/3, x-1, 1.5-x and a Sigmoid output."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(12, 16), nn.Linear(16, 16), nn.Linear(16, 8)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = nn.functional.leaky_relu(self.b(h), 0.1)
        h = nn.functional.relu6(self.c(h))
        h = (h * 0.5) / 3 - 1
        return torch.sigmoid(1.5 - h)


class Cnn(nn.Module):
    """Conv2d with padding/stride/dilation/groups/depthwise, BatchNorm2d, MaxPool2d(ceil_mode),
    AvgPool2d(count_include_pad=False), AdaptiveAvgPool2d(1), flatten, Linear, Softmax."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.mp = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.ap = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():  # non-trivial statistics; after the ReLU so no exporter fuses it
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.bn(torch.relu(self.c1(x)))
        x = self.ap(self.mp(self.dw(self.c2(x))))
        return torch.softmax(self.fc(torch.flatten(self.gap(x), 1)), dim=-1)


class Conv1dNet(nn.Module):
    """Conv1d, a residual Add, Concat, Transpose, Linear on 3D input, x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv1d(4, 8, 3, padding=1), nn.Conv1d(8, 8, 5, padding=2), nn.Conv1d(16, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        a = torch.relu(self.a(x))
        h = self.c(torch.cat([a + self.b(a), a], dim=1))
        h = self.fc(h.transpose(1, 2))
        return h.reshape(h.size(0), -1)


TORCH_MODELS = {"mlp": (Mlp, (12,)), "cnn": (Cnn, (3, 17, 17)), "conv1d": (Conv1dNet, (4, 10))}


@pytest.mark.parametrize("exporter,opset", EXPORTS, ids=[f"{e}{o}" for e, o in EXPORTS])
@pytest.mark.parametrize("model", sorted(TORCH_MODELS))
def test_torch_export_matches_onnxruntime(tmp_path, model, exporter, opset):
    torch.manual_seed(0)
    cls, shape = TORCH_MODELS[model]
    path = tmp_path / f"{model}.onnx"
    batch = export_torch(cls(), shape, path, exporter, opset)
    graph = assert_matches_onnxruntime(path, {"x": rand(batch, *shape)})
    assert graph.inputs == ("x",) and graph.outputs == ("y",)
    assert graph.tensor("x").kind == TensorKind.INPUT and graph.tensor("x").shape == shape


def test_torchscript_mlp_names_and_constant_kinds(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "mlp.onnx"
    export_torch(Mlp(), (12,), path, "torchscript", 17)
    graph = load_onnx(path)
    ops = [(n.name, n.op) for n in graph.nodes]
    assert ops[:6] == [("/a/Gemm", Op.DENSE), ("/Relu", Op.RELU), ("/b/Gemm", Op.DENSE),
                       ("/LeakyRelu", Op.LEAKY_RELU), ("/c/Gemm", Op.DENSE), ("/Clip", Op.CLIP)]
    assert all(n.onnx_nodes == (n.name,) for n in graph.nodes if "." not in n.name)
    weight = graph.tensor("a.weight")  # Gemm transB=1: already [out, in]
    assert (weight.kind, weight.shape, weight.onnx_name) == (TensorKind.WEIGHT, (16, 12), "a.weight")
    assert weight.onnx_axes == (0, 1)
    assert graph.tensor("a.bias").kind == TensorKind.BIAS
    assert weight.float_data is weight.data and weight.data.dtype == np.float64 and weight.formats is None
    assert not weight.data.flags.writeable
    alpha = graph.tensor("/LeakyRelu.alpha")
    assert (alpha.kind, alpha.shape, alpha.onnx_name) == (TensorKind.CONST, (), None)
    assert float(alpha.data) == pytest.approx(0.1)
    # x / 3 becomes x * (1/3): a computed constant that stands for no ONNX tensor
    inverse = graph.tensor("/Div.inverse")
    assert (inverse.kind, inverse.onnx_name, float(inverse.data)) == (TensorKind.WEIGHT, None, pytest.approx(1 / 3))
    sub = graph.tensor("/Sub.negated")
    assert (sub.kind, float(sub.data)) == (TensorKind.BIAS, -1.0)
    # 1.5 - x becomes (-1 * x) + 1.5: two IR nodes standing for one ONNX node
    assert [n.name for n in graph.nodes if n.onnx_nodes == ("/Sub_1",)] == ["/Sub_1.negate", "/Sub_1"]
    low, high = (graph.tensor(i) for i in graph.nodes[5].inputs[1:])  # ReLU6 = Clip(0, 6)
    assert (float(low.data), float(high.data), low.kind) == (0.0, 6.0, TensorKind.CONST)


# --- real models ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist_cnn_float", "mlperf_kws_dscnn_float", "mlperf_ad_autoenc_float"])
def test_real_model_matches_stored_output(name):
    graph = load_onnx(SHARED_MODELS / f"{name}.onnx")
    stored = np.load(SHARED_MODELS / f"{name}.io.npz")
    (input_name,), (output_name,) = graph.inputs, graph.outputs
    got = evaluate_float(graph, {input_name: stored["input"]})[output_name]
    np.testing.assert_allclose(got, stored["output"], rtol=1e-4, atol=1e-4)


def test_mnist_constants_keep_onnx_names_and_layout():
    graph = load_onnx(SHARED_MODELS / "mnist_cnn_float.onnx")
    assert graph.inputs == ("Input3",)  # the initializers it also lists as inputs are constants
    # MatMul weight [256, 10] (folded from Reshape(Parameter193)) becomes [out, in]
    weight = graph.tensor("Parameter193_reshape1")
    assert (weight.kind, weight.shape, weight.onnx_axes) == (TensorKind.WEIGHT, (10, 256), (1, 0))
    # Add constant [1, 10] against a [N, 10] activation: its batch axis is dropped
    assert graph.tensor("Parameter194").shape == (10,)
    assert graph.tensor("Parameter6").kind == TensorKind.BIAS
    conv = graph.nodes[0]
    assert conv.op == Op.CONV and conv.attrs["pads"] == (2, 2, 2, 2)  # SAME_UPPER, 5x5


# --- hand-built models: what the exporters above do not write -------------------------------------


def test_gemm_alpha_beta_and_row_bias(tmp_path):
    b, c = rand(6, 4, seed=1), rand(1, 4, seed=2)
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Gemm", ["x", "B", "C"], ["y"], alpha=0.5, beta=2.0)],
                      {"x": ["N", 6]}, ["y"], {"B": b, "C": c})
    graph = assert_matches_onnxruntime(path, {"x": rand(3, 6)})
    weight = graph.tensor(graph.nodes[0].inputs[1])
    assert weight.onnx_name is None and weight.shape == (4, 6)  # alpha-scaled: a computed constant


def test_gemm_plain_bias_and_matmul_layout(tmp_path):
    path = make_model(tmp_path / "m.onnx", [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Gemm", ["h", "B", "C"], ["y"]),
    ], {"x": ["N", 6]}, ["y"], {"W": rand(6, 5, seed=1), "B": rand(5, 4, seed=2), "C": rand(1, 4, seed=3)})
    graph = assert_matches_onnxruntime(path, {"x": rand(2, 6)})
    assert graph.tensor("W").onnx_axes == (1, 0) and graph.tensor("W").shape == (5, 6)
    assert graph.tensor("B").onnx_axes == (1, 0)
    assert graph.tensor("C").shape == (4,) and graph.tensor("C").onnx_name == "C"


@pytest.mark.parametrize("opset", [9, 13, 21])
def test_clip_bounds(tmp_path, opset):
    if opset < 11:
        nodes = [helper.make_node("Clip", ["x"], ["h"], min=-0.5, max=0.75),
                 helper.make_node("Clip", ["h"], ["y"], min=0.0)]
        inits = {}
    else:
        nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["h"]), helper.make_node("Clip", ["h", "zero"], ["y"])]
        inits = {"lo": np.float32(-0.5), "hi": np.float32(0.75), "zero": np.float32(0)}
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 5]}, ["y"], inits, opset=opset)
    graph = assert_matches_onnxruntime(path, {"x": rand(4, 5)})
    assert [n.op for n in graph.nodes] == [Op.CLIP, Op.RELU]  # Clip with min 0 only is a ReLU


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze_flatten(tmp_path, opset):
    if opset < 13:  # axes are attributes
        squeeze = helper.make_node("Squeeze", ["x"], ["s"], axes=[2])
        unsqueeze = helper.make_node("Unsqueeze", ["s"], ["u"], axes=[-1])
        inits = {}
    else:  # axes are inputs
        squeeze = helper.make_node("Squeeze", ["x", "sq_axes"], ["s"])
        unsqueeze = helper.make_node("Unsqueeze", ["s", "unsq_axes"], ["u"])
        inits = {"sq_axes": np.array([2]), "unsq_axes": np.array([-1])}
    nodes = [squeeze, unsqueeze, helper.make_node("Flatten", ["u"], ["f"], axis=1),
             helper.make_node("Relu", ["f"], ["y"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 4, 1, 3]}, ["y"], inits, opset=opset)
    graph = assert_matches_onnxruntime(path, {"x": rand(2, 4, 1, 3)})
    assert [n.attrs.get("shape") for n in graph.nodes] == [(4, 3), (4, 3, 1), (12,), None]


def test_channels_last_transpose_and_same_lower_conv(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "W", "B"], ["c"], auto_pad="SAME_LOWER", strides=[2, 1],
                              kernel_shape=[2, 3]),
             helper.make_node("Conv", ["c", "W1"], ["y"], auto_pad="VALID")]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 7, 6, 2]}, ["y"],
                      {"W": rand(4, 2, 2, 3, seed=1), "B": rand(4, seed=2), "W1": rand(3, 4, 2, 2, seed=3)})
    graph = assert_matches_onnxruntime(path, {"x": rand(2, 7, 6, 2)})
    assert graph.nodes[0].attrs["perm"] == (2, 0, 1)
    assert graph.nodes[1].attrs["pads"] == (1, 1, 0, 1)


@pytest.mark.parametrize("opset", [13, 21])
def test_pooling_ceil_mode_and_two_outputs(tmp_path, opset):
    if opset < 18:  # ReduceMean's axes became an input in opset 18
        reduce_mean = helper.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0)
    else:
        reduce_mean = helper.make_node("ReduceMean", ["x", "axes"], ["r"], keepdims=0)
    nodes = [
        # ceil mode would start a last window in the end padding: it is dropped
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         ceil_mode=1, count_include_pad=1),
        helper.make_node("GlobalMaxPool", ["x"], ["g"]),
        reduce_mean,
    ]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 2, 7, 8]}, ["m", "a", "g", "r"],
                      {"axes": np.array([-2, -1])}, opset=opset)
    graph = assert_matches_onnxruntime(path, {"x": rand(2, 2, 7, 8)})
    assert graph.tensor("m").shape == (2, 4, 5)
    assert graph.tensor("r").shape == (2,)


def test_identity_dropout_and_passthrough_outputs(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r"], ["d"]),
             helper.make_node("Identity", ["d"], ["y"]), helper.make_node("Identity", ["x"], ["copy"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 5]}, ["y", "copy"])
    graph = assert_matches_onnxruntime(path, {"x": rand(3, 5)})
    # The ReLU writes the output name directly; no copy node for it.
    assert [(n.op, n.outputs) for n in graph.nodes] == [(Op.RELU, ("y",)), (Op.RESHAPE, ("copy",))]


def test_two_inputs_and_broadcast_constants(tmp_path):
    nodes = [helper.make_node("Sub", ["a", "b"], ["d"]),
             helper.make_node("Mul", ["d", "scale"], ["m"]),  # scale has the batch axis: dropped
             helper.make_node("Div", ["m", "div"], ["q"]),
             helper.make_node("Add", ["shift", "q"], ["y"])]  # constant first
    path = make_model(tmp_path / "m.onnx", nodes, {"a": ["N", 3, 4], "b": ["N", 3, 4]}, ["y"],
                      {"scale": rand(1, 3, 1, seed=1), "div": np.array([2.0, -4.0, 0.5, 8.0]),
                       "shift": rand(4, seed=2)})
    graph = assert_matches_onnxruntime(path, {"a": rand(2, 3, 4, seed=3), "b": rand(2, 3, 4, seed=4)})
    assert graph.inputs == ("a", "b")
    scale = graph.tensor("scale")  # ONNX (1, 3, 1): the batch axis is dropped, so no onnx_axes
    assert (scale.shape, scale.kind, scale.onnx_name, scale.onnx_axes) == ((3, 1), TensorKind.WEIGHT, "scale", None)


def test_shape_of_activation_folds(tmp_path):
    """The TorchScript x.view(x.size(0), -1) pattern, and an Identity of a weight."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]),
             helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["flat", "Wt"], ["y"])]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 2, 3]}, ["y"],
                      {"W": rand(4, 6), "zero": np.array(0), "minus_one": np.array([-1])}, opset=11)
    graph = assert_matches_onnxruntime(path, {"x": rand(3, 2, 3)})
    weight = graph.tensor("Wt")  # MatMul weight folded from Transpose(W): IR layout == W
    assert (weight.onnx_name, weight.onnx_axes) == ("W", (0, 1))


@settings(max_examples=30, deadline=None)
@given(
    op=st.sampled_from(["Conv", "MaxPool", "AveragePool"]),
    rank=st.sampled_from([1, 2]),
    kernel=st.integers(1, 3), stride=st.integers(1, 3), dilation=st.integers(1, 2),
    pad_lo=st.integers(0, 2), pad_hi=st.integers(0, 2), size=st.integers(4, 9),
    ceil_mode=st.integers(0, 1), count_include_pad=st.integers(0, 1),
    auto_pad=st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]),
)
def test_window_geometry_matches_onnxruntime(tmp_path_factory, op, rank, kernel, stride, dilation, pad_lo,
                                             pad_hi, size, ceil_mode, count_include_pad, auto_pad):
    spatial = [size, size + 1][:rank]
    attrs = {"kernel_shape": [kernel] * rank, "strides": [stride] * rank}
    if auto_pad == "NOTSET":
        # onnxruntime wants pool padding smaller than the kernel
        lo, hi = (min(pad_lo, kernel - 1), min(pad_hi, kernel - 1)) if op != "Conv" else (pad_lo, pad_hi)
        attrs["pads"] = [lo] * rank + [hi] * rank
        assume(dilation * (kernel - 1) + 1 <= size + lo + hi)  # else there is no output
    else:
        attrs["auto_pad"] = auto_pad
        dilation = 1  # onnxruntime refuses SAME padding with dilation ...
        assume(not auto_pad.startswith("SAME") or kernel >= stride)  # ... or with negative padding
    inits = {}
    if op == "Conv":
        attrs["dilations"] = [dilation] * rank
        inits = {"W": rand(4, 1, *[kernel] * rank, seed=1)}
        node = helper.make_node("Conv", ["x", "W"], ["y"], group=2, **attrs)
    elif op == "MaxPool":
        node = helper.make_node("MaxPool", ["x"], ["y"], dilations=[dilation] * rank, ceil_mode=ceil_mode, **attrs)
    else:
        node = helper.make_node("AveragePool", ["x"], ["y"], ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad, **attrs)
    path = make_model(tmp_path_factory.mktemp("geom") / "m.onnx", [node], {"x": ["N", 2, *spatial]}, ["y"], inits,
                      opset=19)
    assert_matches_onnxruntime(path, {"x": rand(2, 2, *spatial)})


# --- errors --------------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FrontendError, match="no such file"):
        load_onnx(tmp_path / "absent.onnx")
    with pytest.raises(FrontendError, match="not a file"):
        load_onnx(tmp_path)


def test_not_onnx_and_truncated(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FrontendError, match="junk.onnx"):
        load_onnx(junk)
    good = tmp_path / "mlp.onnx"
    export_torch(Mlp(), (12,), good, "torchscript", 13)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FrontendError, match="truncated.onnx"):
        load_onnx(truncated)


def test_unsupported_op_names_node_and_lists_supported(tmp_path):
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["r"]),
                                            helper.make_node("Sin", ["r"], ["y"], name="act")], {"x": ["N", 4]}, ["y"])
    with pytest.raises(FrontendError, match=r"node 'act' \(Sin\) is not supported.*Conv.*Gemm"):
        load_onnx(path)


def test_dynamic_feature_dim(tmp_path):
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3, "H"]}, ["y"])
    with pytest.raises(FrontendError, match=r"graph input 'x' has a dynamic shape.*dim 2 is 'H'.*static"):
        load_onnx(path)


def test_softmax_must_be_an_output(tmp_path):
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Softmax", ["x"], ["s"], name="probs"),
                                            helper.make_node("Relu", ["s"], ["y"])], {"x": ["N", 4]}, ["y"])
    with pytest.raises(FrontendError, match=r"node 'probs' \(Softmax\).*graph output"):
        load_onnx(path)


@pytest.mark.parametrize("nodes,message", [
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2], name="t")], r"'t' \(Transpose\).*batch"),
    ([helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")], r"'mm' \(MatMul\)"),
    ([helper.make_node("Div", ["x", "x"], ["y"], name="dv")], r"'dv' \(Div\).*by a constant"),
    ([helper.make_node("Concat", ["x", "x"], ["y"], axis=0, name="cat")], r"'cat' \(Concat\).*batch"),
    ([helper.make_node("Softmax", ["x"], ["y"], axis=1, name="sm")], r"'sm' \(Softmax\).*last axis"),
    ([helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs")], r"'rs' \(Reshape\).*batch"),
])
def test_unsupported_uses_name_the_node(tmp_path, nodes, message):
    path = make_model(tmp_path / "m.onnx", nodes, {"x": ["N", 3, 4]}, ["y"], {"shape": np.array([12])})
    with pytest.raises(FrontendError, match=message):
        load_onnx(path)


def test_clip_without_min(tmp_path):
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Clip", ["x", "", "hi"], ["y"], name="c")],
                      {"x": ["N", 4]}, ["y"], {"hi": np.float32(1)})
    with pytest.raises(FrontendError, match=r"'c' \(Clip\).*without min"):
        load_onnx(path)


@pytest.mark.parametrize("coordinates", [False, True], ids=["flat-indices", "coordinates"])
def test_sparse_initializers_are_read_as_their_dense_values(tmp_path, coordinates):
    """A pruned weight stored as a sparse initializer (values + indices, flat or one coordinate
    row per value) reads as the dense tensor: it was refused as "computed at run time"."""
    rng = np.random.default_rng(4)
    dense = np.where(rng.random((5, 4)) < 0.3, rng.normal(size=(5, 4)), 0).astype(np.float32)
    flat = np.flatnonzero(dense)
    index = np.argwhere(dense) if coordinates else flat
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(dense.reshape(-1)[flat], "W"),
                                       numpy_helper.from_array(index.astype(np.int64), "W_index"), [5, 4])
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)], "pruned",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
                              sparse_initializer=[sparse])
    path = tmp_path / "pruned.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    graph = assert_matches_onnxruntime(path, {"x": rng.normal(size=(3, 4))})
    weight = next(t for t in graph.tensors.values() if t.kind == TensorKind.WEIGHT)
    np.testing.assert_array_equal(weight.data, dense)


@pytest.mark.parametrize("node,constants,message", [
    (helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip6"),
     {"lo": np.int32(0), "hi": np.int32(6)}, r"node 'clip6' \(Clip\) is not valid ONNX: min has inconsistent type "
                                             r"tensor\(int32\)"),
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1),
     {"w": np.ones((4, 4), np.int32)}, r"node 'fc' \(Gemm\) is not valid ONNX: B has inconsistent type"),
], ids=["clip-int32-bounds", "gemm-int32-weight"])
def test_a_node_with_inputs_of_types_its_operator_refuses_is_named(tmp_path, node, constants, message):
    """A float Clip with int32 bounds, a Gemm with an int32 weight: not valid ONNX (onnxruntime
    refuses to load them), but compiled as if their constants were floats.  ONNX's type check
    names the node."""
    path = make_model(tmp_path / "m.onnx", [node], {"x": ["N", 4]}, ["y"], constants)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail, match="inconsistent type|Type Error"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(FrontendError, match=message):
        load_onnx(path)
