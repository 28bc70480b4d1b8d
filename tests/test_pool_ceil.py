"""Pooling with ``ceil_mode=1`` and padding, as torch.onnx.export writes it.

ONNX shape inference keeps a ceil-mode window that would start in the end padding; PyTorch,
onnxruntime and finegrain drop it, so the file's annotations after such a pool are wrong.
finegrain computes the shape itself and must not blame the node after the pool.

The comparison, with the input format exact for the test inputs (multiples of 2^-6 in
fixed<12,5>) and every activation exact (``defaults.activation`` null):

* MaxPool: emulator == torch == onnxruntime, bit for bit.
* AveragePool: each output window's divisor (``count_include_pad`` at the ceil-mode edge
  windows included) is the one torch uses, i.e. the frontend's reciprocal is exactly
  1 / torch's divisor; the emulator's output is exactly torch's window sum times that
  reciprocal as the plan quantizes it; where every divisor is a power of two (the
  reciprocal is exact) emulator == torch == onnxruntime, bit for bit.

csim (g++) and Verilator sim are run on a 2D MaxPool, a 2D count_include_pad AvgPool and a
1D AvgPool: bit-exact with the emulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import compiler
from compiler.cli import main
from compiler.ir import Op

# (kind, dims, kernel, stride, padding, size): every case has ceil_mode=True.  Cases marked
# "drop" have a last ceil window that would start in the end padding (shape inference
# keeps it, torch drops it).
CASES = [
    ("max", 2, 2, 2, 1, 5),     # drop
    ("max", 2, 3, 2, 1, 6),
    ("max", 2, 3, 2, 1, 8),
    ("max", 1, 3, 2, 1, 7),
    ("max", 2, 2, 3, 1, 7),     # drop
    ("avg", 2, 2, 2, 1, 5),     # drop, count_include_pad=False
    ("avg", 2, 3, 2, 1, 6),
    ("avgpad", 2, 3, 2, 1, 6),  # count_include_pad=True: the edge window counts pads, not the ceil extra
    ("avgpad", 2, 2, 2, 1, 5),  # drop
    ("avgpad", 1, 3, 2, 1, 8),
    ("avgpad", 2, 2, 2, 1, 4),  # every divisor a power of two
    ("avg", 1, 4, 3, 2, 9),
]


def _pool(kind: str, dims: int, k: int, s: int, p: int, divisor_override=None) -> torch.nn.Module:
    if kind == "max":
        return (torch.nn.MaxPool1d if dims == 1 else torch.nn.MaxPool2d)(k, s, padding=p, ceil_mode=True)
    avg = torch.nn.AvgPool1d if dims == 1 else torch.nn.AvgPool2d
    extra = {} if divisor_override is None or dims == 1 else {"divisor_override": divisor_override}
    return avg(k, s, padding=p, ceil_mode=True, count_include_pad=(kind == "avgpad"), **extra)


class _Net(torch.nn.Module):
    """pool, then a Flatten: the node after the pool is where the wrong annotation showed."""

    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        return torch.flatten(self.pool(x), 1)


def _export(tmp_path: Path, case) -> tuple[Path, tuple[int, ...]]:
    kind, dims, k, s, p, size = case
    shape = (1, 2, size) if dims == 1 else (1, 2, size, size)
    path = tmp_path / "pool.onnx"
    torch.onnx.export(_Net(_pool(kind, dims, k, s, p)).eval(), torch.zeros(shape), str(path),
                      input_names=["x"], output_names=["y"], dynamo=False)
    return path, shape


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"defaults": {"input": "fixed<12,5,TRN,SAT>", "weight": "fixed<8,2>",
                                             "bias": "fixed<16,6>", "activation": None}}))
    return path


def _inputs(shape, count: int = 8) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-2 ** 10, 2 ** 10, size=(count, *shape[1:])) / 64.0  # exact in fixed<12,5>


def _windows_torch(case, x: np.ndarray, ones: bool = False) -> np.ndarray:
    """torch's average pool of ``x`` in float64, with a divisor of 1 (the window sums)."""
    kind, dims, k, s, p, _ = case
    t = torch.from_numpy(np.ones_like(x) if ones else x)
    if dims == 2:
        return _pool(kind, dims, k, s, p, divisor_override=1)(t).numpy()
    # AvgPool1d has no divisor_override: the same sums as a 2D pool over (1, L).
    pool2 = torch.nn.AvgPool2d((1, k), (1, s), padding=(0, p), ceil_mode=True,
                               count_include_pad=(kind == "avgpad"), divisor_override=1)
    return pool2(t[:, :, None, :])[:, :, 0, :].numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_ceil_mode_pool_matches_torch_and_onnxruntime(tmp_path, case):
    kind = case[0]
    model, shape = _export(tmp_path, case)
    project = compiler.compile_model(str(model), _plan(tmp_path), backends=("hls",))
    x = _inputs(shape)
    torch_out = _Net(_pool(*case[:5])).eval()(torch.from_numpy(x)).detach().numpy()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ort_out = np.concatenate([session.run(None, {"x": x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])
    emulated = project.emulate(x)
    assert emulated.shape == torch_out.shape == ort_out.shape
    if kind == "max":
        assert np.array_equal(emulated, torch_out) and np.array_equal(emulated, ort_out)
        return
    pool = next(n for n in project.graph.nodes if n.op == Op.AVGPOOL)
    reciprocal = project.graph.tensors[pool.inputs[1]]
    sums = _windows_torch(case, x).reshape(len(x), -1)
    ones = torch.ones(1, *shape[1:], dtype=torch.float64)
    divisors = (_windows_torch(case, x[:1], ones=True) / _pool(*case[:5])(ones).numpy()).round()[0]
    assert np.array_equal(np.asarray(reciprocal.float_data), 1.0 / divisors)
    quantized = np.asarray(reciprocal.data, dtype=np.float64) / 2.0 ** reciprocal.data_frac
    assert np.array_equal(emulated, sums * quantized.reshape(1, -1))
    if np.all(np.log2(divisors) == np.round(np.log2(divisors))):
        assert np.array_equal(emulated, torch_out) and np.array_equal(emulated, ort_out)


@pytest.mark.parametrize("case", [("max", 2, 2, 2, 1, 5), ("avgpad", 2, 3, 2, 1, 6), ("avg", 1, 4, 3, 2, 9)],
                         ids=["max2d", "avgpad2d", "avg1d"])
def test_ceil_mode_pool_csim_and_sim_bit_exact(tmp_path, capsys, case):
    model, _ = _export(tmp_path, case)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(_plan(tmp_path)), "-o", str(out)]) == 0
    assert main(["csim", str(out), "--vectors", "100"]) == 0
    assert main(["sim", str(out), "--vectors", "50"]) == 0


def test_wrong_annotation_names_its_node(tmp_path):
    """A value_info that disagrees with the computed shape is blamed on the node that writes
    it, not on a later node that inherits it."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Relu", ["r"], ["y"], name="second_relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 5])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(compiler.FrontendError, match="first_relu"):
        compiler.compile_model(str(path), _plan(tmp_path))


def test_dynamo_export_of_a_dropped_ceil_window(tmp_path):
    """torch.onnx.export's default (dynamo) exporter annotates the pool itself with ONNX shape
    inference's size (4x4 where torch computes 3x3) and the Flatten after it correctly: the
    pool's known-wrong annotation is not an error, and the model matches torch."""
    case = ("max", 2, 2, 2, 1, 5)
    model = tmp_path / "pool.onnx"
    net = _Net(_pool(*case[:5])).eval()
    torch.onnx.export(net, torch.zeros(1, 2, 5, 5), str(model), input_names=["x"], output_names=["y"], dynamo=True)
    project = compiler.compile_model(str(model), _plan(tmp_path), backends=())
    x = _inputs((1, 2, 5, 5))
    assert np.array_equal(project.emulate(x), net(torch.from_numpy(x)).numpy())
