"""Every pass keeps the values: exactly (emulator) where the graph is quantized, in float
where it is not yet, and within the plan's derived bound where quantization happens.

The models cover every op the frontend supports: the two examples, and torch models built
here (residual adds, concat, grouped convs, unfoldable BatchNorm, LeakyReLU, ReLU6, pooling
with padding, constant Mul/Div/Sub, Conv1d, Sigmoid and Softmax outputs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compiler.emulate import emulate_exact, quantize_inputs, run
from compiler.error_bound import error_bound
from compiler.float_eval import evaluate_float
from compiler.frontend import load_onnx
from compiler.ir import Op, verify
from compiler.passes.apply_plan import PlanWarning, apply_plan
from compiler.passes.canonicalise import canonicalise
from compiler.passes.fold_batchnorm import fold_batchnorm
from compiler.passes.fuse import fuse_layers
from compiler.passes.pipeline import run_pipeline
from compiler.passes.size_widths import size_widths
from compiler.plan import parse_plan
from compiler.verify.vectors import csim_vectors

ROOT = Path(__file__).resolve().parents[1]


class KitchenSink(nn.Module):
    """Most ops in one small CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.act1 = nn.LeakyReLU(0.1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.mpool = nn.MaxPool2d(2, ceil_mode=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.act1(self.bn1(self.conv1(x)))
        r = h + self.branch(h)  # residual
        c = torch.cat([r, h], dim=1)
        c = torch.clamp(self.depthwise(c), 0.0, 6.0)  # ReLU6 -> Clip
        c = self.bn2(c * 0.5)  # BatchNorm after a Mul: not foldable
        c = self.mpool(self.pool(c / 3.0 - 1.0))
        g = c.mean(dim=(2, 3))  # global average pool
        return torch.softmax(self.fc(g), dim=-1)


class Conv1dSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, dilation=2, padding=2)
        self.fc = nn.Linear(4 * 10, 2)

    def forward(self, x):
        return torch.sigmoid(self.fc(torch.relu(self.conv(x)).flatten(1)))


def _export(module, shape, path):
    torch.manual_seed(0)
    module.eval()
    for m in module.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, *shape),), str(path), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                          do_constant_folding=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {
        "jet_tagger": ROOT / "examples" / "jet_tagger" / "model.onnx",
        "small_cnn": ROOT / "examples" / "small_cnn" / "model.onnx",
        "kitchen_sink": _export(KitchenSink(), (2, 7, 7), tmp / "kitchen.onnx"),
        "conv1d_sigmoid": _export(Conv1dSigmoid(), (3, 10), tmp / "conv1d.onnx"),
    }


PLANS = {
    "exact": {"defaults": {"input": "fixed<10,3,RND_CONV,SAT>", "weight": "fixed<8,2,RND_CONV,SAT>",
                           "bias": "fixed<12,4,RND_CONV,SAT>", "activation": None}},
    "requantized": {"defaults": {"input": "fixed<10,3,RND_CONV,SAT>", "weight": "fixed<7,2,RND,SAT_SYM>",
                                 "bias": "fixed<12,4,RND_CONV,SAT>", "activation": "fixed<12,5,RND_CONV,SAT>"}},
    "wrapping": {"defaults": {"input": "fixed<8,2,TRN,WRAP>", "weight": "fixed<6,1,TRN_ZERO,SAT>",
                              "bias": "fixed<8,2,RND_INF,WRAP>", "activation": "fixed<8,3,RND_MIN_INF,WRAP>"}},
}


def _inputs(graph, seed, count=300):
    """Random values over the input format's range, plus the extremes (csim's vectors)."""
    return csim_vectors(graph, count, seed=seed)[graph.inputs[0]]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


CASES = [(m, p) for m in ("jet_tagger", "small_cnn", "kitchen_sink", "conv1d_sigmoid") for p in PLANS]


@pytest.mark.parametrize("model, plan_name", CASES)
def test_every_pass_keeps_values(models, model, plan_name, tmp_path):
    rng = np.random.default_rng(1)
    plan = parse_plan(PLANS[plan_name], tmp_path)
    g0 = load_onnx(models[model])

    g1 = canonicalise(g0)
    verify(g1)
    x_float = {g0.inputs[0]: rng.normal(size=(50, *g0.tensor(g0.inputs[0]).shape)) * 2}
    ref0 = evaluate_float(g0, x_float)
    ref1 = evaluate_float(g1, x_float)
    for k in ref0:
        assert np.array_equal(ref0[k], ref1[k]), "canonicalise changed a float value"

    g2 = fold_batchnorm(g1)
    verify(g2)
    assert not any(n.op == Op.BATCHNORM for n in g2.nodes)
    ref2 = evaluate_float(g2, x_float)
    for k in ref0:
        np.testing.assert_allclose(ref2[k], ref0[k], rtol=1e-12, atol=1e-12)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanWarning)
        g3 = apply_plan(g2, plan)
    verify(g3)
    x = _inputs(g3, seed=1)
    # apply_plan is where values change: within the bound the plan implies, sample by sample
    float_out = evaluate_float(g2, {g3.inputs[0]: x})
    bounds = error_bound(g3, x)
    emulated = emulate_exact(g3, x)
    for k in float_out:
        diff = np.abs(emulated[k].to_float() - float_out[k])
        assert np.all(diff <= bounds[k]), f"{k}: worst excess {np.max(diff - bounds[k])}"

    g4 = fuse_layers(g3)
    verify(g4)
    assert _same(emulated, emulate_exact(g4, x)), "fuse_layers changed a value"
    g5 = size_widths(g4)
    verify(g5)
    assert _same(emulated, emulate_exact(g5, x, check_ranges=True)), "size_widths changed a value"

    # the pipeline is exactly these passes, in this order
    assert _same(emulated, emulate_exact(run_pipeline(g0, plan), x))


def test_canonicalise_is_exact_after_quantization(models, tmp_path):
    """With activations exact, merging a bias Add into its linear op changes no bit."""
    plan = parse_plan(PLANS["exact"], tmp_path)
    for model in ("small_cnn", "kitchen_sink"):
        g0 = load_onnx(models[model])

        def rest(g):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PlanWarning)
                return size_widths(fuse_layers(apply_plan(fold_batchnorm(g), plan)))

        before, after = rest(g0), rest(canonicalise(g0))
        x = _inputs(after, seed=2, count=100)
        assert _same(emulate_exact(before, x), emulate_exact(after, x))


def test_fusion_groups_linear_activation_requantize(models, tmp_path):
    plan = parse_plan(PLANS["requantized"], tmp_path)
    g = run_pipeline(load_onnx(models["jet_tagger"]), plan)
    assert [s.op for s in g.nodes[0].stages()] == [Op.DENSE, Op.REQUANTIZE, Op.RELU, Op.REQUANTIZE]
    assert len(g.nodes) == 4


def test_extreme_inputs_never_overflow_a_sized_tensor(models, tmp_path):
    """Sizing from ranges: every tensor of every model holds every value the extremes give."""
    for model in models:
        for plan_name in ("exact", "requantized"):
            plan = parse_plan(PLANS[plan_name], tmp_path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PlanWarning)
                g = run_pipeline(load_onnx(models[model]), plan)
            x = _inputs(g, seed=3, count=50)
            run(g, quantize_inputs(g, x), check_ranges=True)


def test_pipeline_names_the_pass_that_broke_the_ir(models, tmp_path, monkeypatch):
    from compiler.ir import IRError
    from compiler.passes import pipeline

    def broken(graph):
        import dataclasses

        return dataclasses.replace(graph, outputs=("nowhere",))

    original = pipeline.passes
    monkeypatch.setattr(pipeline, "passes", lambda plan, *args: [*original(plan)[:2], ("broken", broken)])
    with pytest.raises(IRError, match=r"after pass 'broken' \(passes run: canonicalise, lower_quant, broken\)"):
        run_pipeline(load_onnx(models["jet_tagger"]), parse_plan(PLANS["exact"], tmp_path))

