"""The small models and plans the weight-scheme tests (test_schemes, test_schemes_hardware)
compile: an MLP and a CNN written with onnx.helper, each returned with its float64 weights;
the plan defaults, the row-wise mixes and the cases whose rows a mix groups (GROUPED);
`_compile` (model and plan to a project) and, read back from a project, a constant's
quantized values and inputs on the input format's grid.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.passes.apply_plan import PlanWarning
from compiler.verify.vectors import csim_vectors

DEFAULTS = {"input": "fixed<8,3,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
            "bias": "fixed<8,3,RND_CONV,SAT>", "activation": None}


def _save(nodes, inputs, outputs, inits, path: Path, name: str) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _vec(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])


def _mlp(path: Path, seed: int = 5) -> tuple[Path, dict]:
    """x[6] -> Gemm (fc1.weight [8, 6], transB) + fc1.bias -> Relu -> MatMul (fc2.weight [8, 3],
    ONNX [in, out]) + fc2.bias.  Returns the model and its float64 weights."""
    rng = np.random.default_rng(seed)
    weights = {"fc1.weight": rng.normal(size=(8, 6)) * rng.uniform(0.2, 1.5, size=(8, 1)),
               "fc1.bias": rng.normal(size=8), "fc2.weight": rng.normal(size=(8, 3)), "fc2.bias": rng.normal(size=3)}
    weights = {k: v.astype(np.float32).astype(np.float64) for k, v in weights.items()}
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("MatMul", ["r", "fc2.weight"], ["z"], name="fc2"),
             helper.make_node("Add", ["z", "fc2.bias"], ["y"], name="fc2_bias")]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    return _save(nodes, [_vec("x", (6,))], [_vec("y", (3,))], inits, path, "mlp"), weights


def _compile(tmp_path: Path, tensors: dict, model=_mlp, **options):
    model_path, weights = model(tmp_path / "m.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": DEFAULTS, "tensors": tensors}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanWarning)
        return compiler.compile_model(model_path, plan, **options), weights


def _ir_values(project, name: str) -> np.ndarray:
    """A constant's quantized values, in the ONNX layout."""
    t = next(t for t in project.graph.tensors.values() if (t.onnx_name or t.name) == name)
    v = np.ldexp(np.asarray(t.data, dtype=np.float64), -t.data_frac)
    return v if t.onnx_axes is None else np.transpose(v, np.argsort(t.onnx_axes))


def _grid_inputs(project, count=200, seed=0) -> np.ndarray:
    """Inputs over the input format's range, and its extremes, on its grid."""
    x = csim_vectors(project.graph, count, seed)["x"]
    return np.clip(np.rint(x * 32), -128, 127) / 32  # fixed<8,3>: 5 fractional bits


MIX = [{"format": "pow2<-6,0>", "rows": 0.5}, {"format": "fixed<6,1,RND_CONV,SAT>", "rows": 0.25},
       {"format": "fixed<4,1,RND_CONV,SAT>", "rows": 0.25}]


def _cnn(path: Path, between: str = "mul_leaky", seed: int = 9) -> tuple[Path, dict]:
    """x[2,5,5] -> Conv 2->6 3x3 pad 1 + bias -> (Mul by a per-channel constant -> LeakyRelu,
    or MaxPool) -> Conv 6->4 3x3 -> y."""
    rng = np.random.default_rng(seed)
    weights = {"conv1.weight": rng.normal(size=(6, 2, 3, 3)) * rng.uniform(0.1, 1.5, size=(6, 1, 1, 1)),
               "conv1.bias": rng.normal(size=6), "scale": rng.uniform(-2, 2, size=(6, 1, 1)),
               "conv2.weight": rng.normal(size=(4, 6, 3, 3))}
    weights = {k: v.astype(np.float32).astype(np.float64) for k, v in weights.items()}
    nodes = [helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1])]
    if between == "mul_leaky":
        nodes += [helper.make_node("Mul", ["c1", "scale"], ["s"], name="scale"),
                  helper.make_node("LeakyRelu", ["s"], ["a"], name="leaky", alpha=0.125)]
        out_shape = (4, 3, 3)
    else:
        nodes += [helper.make_node("MaxPool", ["c1"], ["a"], name="pool", kernel_shape=[2, 2], strides=[1, 1])]
        del weights["scale"]
        out_shape = (4, 2, 2)
    nodes += [helper.make_node("Conv", ["a", "conv2.weight"], ["y"], name="conv2")]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    return _save(nodes, [_vec("x", (2, 5, 5))], [_vec("y", out_shape)], inits, path, "cnn"), weights


CONV_MIX = [{"format": "pow2<-5,0>", "rows": 1 / 3}, {"format": "fixed<6,1,RND_CONV,SAT>", "rows": 1 / 3},
            {"format": "fixed<3,1,RND_CONV,SAT>", "rows": 1 / 3}]
GROUPED = {
    # the relu's requantize has a format per channel: they move with the channels
    "mlp": (_mlp, {"fc1.weight": {"axis": 0, "mix": MIX, "group": True},
                   "r": {"axis": 1, "formats": [f"ufixed<{w},3,RND_CONV,SAT>" for w in (4, 5, 6, 7, 8, 9, 10, 11)]}},
            "fc1.weight", "fc2.weight"),
    "cnn": (_cnn, {"conv1.weight": {"axis": 0, "mix": CONV_MIX, "group": True},
                   "a": {"axis": 1, "formats": [f"fixed<{w},3,RND_CONV,SAT>" for w in (5, 6, 7, 8, 9, 10)]}},
            "conv1.weight", "conv2.weight"),
}
