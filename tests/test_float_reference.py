"""The emulator against the float model it was compiled from.

For every sample and output element, ``|emulate(x) - onnxruntime(x)| <= error_bound(x)``:
the bound (compiler/error_bound.py) is derived from the plan alone (what each conversion
and each quantized constant changed, carried through the layers, plus float32 slack for
the runtime), so a violation means the emulator does not compute what the model computes,
or the bound misses an error source.  Separate tests check that the bound is small next
to the outputs (`*_bound_is_useful`), so that passing means something, that the examples
still classify like the float model, and (bound aside) that the real models stay close to it.

Models: the two examples with their plans and test sets, and real published models from
``../shared/models`` (read in place, never copied) with plans written here.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import compiler
from compiler.error_bound import error_bound
from compiler.passes.apply_plan import PlanWarning
from compiler.plan import parse_plan

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


def onnxruntime_run(model: Path, x: np.ndarray) -> np.ndarray:
    """Float model outputs for a batch, one sample per run when the model's batch is fixed."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inp, out = session.get_inputs()[0], session.get_outputs()[0].name
    x = x.astype(np.float32)
    if isinstance(inp.shape[0], int):
        return np.concatenate([session.run([out], {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    return session.run([out], {inp.name: x})[0]


def assert_within_bound(emulated: np.ndarray, reference: np.ndarray, bound: np.ndarray, what: str) -> None:
    reference = reference.astype(np.float64).reshape(emulated.shape)
    excess = np.abs(emulated - reference) - bound
    if (excess > 0).any():
        i = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            f"{what}: {int((excess > 0).sum())} of {excess.size} output elements outside the bound; worst at "
            f"{tuple(int(k) for k in i)}: emulated {emulated[i]!r}, reference {reference[i]!r}, "
            f"|diff| {abs(emulated[i] - reference[i]):.6g} > bound {bound[i]:.6g}")


def compile_quietly(model, plan):
    """Compile; a plan here is sized so that no constant saturates, and that is checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanWarning)
        return compiler.compile_model(str(model), plan)


# --- the examples -----------------------------------------------------------------------------

EXAMPLES = ["jet_tagger", "small_cnn"]


@functools.cache
def example_run(name: str):
    """(emulated, onnxruntime, bound, labels) on the example's data.npz."""
    folder = ROOT / "examples" / name
    data = np.load(folder / "data.npz")
    x = data["x"]
    project = compile_quietly(folder / "model.onnx", folder / "plan.json")
    emulated = project.emulate(x)
    reference = onnxruntime_run(folder / "model.onnx", x).astype(np.float64)
    bound = error_bound(project.graph, x)[project.graph.outputs[0]]
    assert bound.shape == emulated.shape == reference.shape
    return emulated, reference, bound, data["y"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_within_bound(name):
    emulated, reference, bound, _ = example_run(name)
    assert_within_bound(emulated, reference, bound, f"{name} on data.npz")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quantized_accuracy(name):
    """The plan costs at most 3 points of accuracy on the example's test set (README: jet
    tagger 77.1% float, 77.7% quantized; small CNN 89.6% and 90.8%)."""
    emulated, reference, _, y = example_run(name)
    acc_float = float(np.mean(reference.argmax(axis=1) == y))
    acc_quant = float(np.mean(emulated.argmax(axis=1) == y))
    assert abs(acc_quant - acc_float) <= 0.03, (acc_float, acc_quant)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_bound_is_useful(name):
    """On a typical sample the bound is below half the spread of its logits, so a wrong
    logit (a swapped row, a sign error, a lost layer) could not hide inside it."""
    _, reference, bound, _ = example_run(name)
    spread = reference.max(axis=1) - reference.min(axis=1)
    assert np.median(bound) < 0.5 * np.median(spread), (
        f"median bound {np.median(bound):.3g} vs median logit spread {np.median(spread):.3g}")


# --- real models ------------------------------------------------------------------------------

# Plans written from each model's ranges (float initializers after BatchNorm folding, and
# the activations onnxruntime computes on the stored sample), with one to two bits of
# head-room.  Weights get 12 bits, biases 16 and every computed activation is requantized
# to 20 bits, which keeps every value in int64 and the emulator fast.
REAL_PLANS = {
    "mnist_cnn_float": {
        "_note": "input: U[0,1) pixels; |w| <= 1.19 (Parameter87: 0.565); |b| <= 0.434; activations within "
                 "[-7.1, 3.1], logits within [-2.4, 1.6]",
        "defaults": {"input": "fixed<16,2,RND_CONV,SAT>", "weight": "fixed<12,2,RND_CONV,SAT>",
                     "bias": "fixed<16,2,RND_CONV,SAT>", "activation": "fixed<20,5,RND_CONV,SAT>"},
        "tensors": {"Parameter87": "fixed<12,1,RND_CONV,SAT>"},
    },
    "mlperf_kws_dscnn_float": {
        "_note": "input: audio features in [0, 113]; BatchNorm already fused by tf2onnx; |b| <= 4.17; "
                 "activations within [-127, 121], logits within [-79, 45]",
        "defaults": {"input": "fixed<16,8,RND_CONV,SAT>", "weight": "fixed<12,3,RND_CONV,SAT>",
                     "bias": "fixed<16,4,RND_CONV,SAT>", "activation": "fixed<20,9,RND_CONV,SAT>"},
        "tensors": {
            "functional_1/conv2d/BiasAdd_weights_fused_bn": "fixed<12,1,RND_CONV,SAT>",  # |w| <= 0.504
            "Conv__58_weights_fused_bn": "fixed<12,5,RND_CONV,SAT>",  # 9.90
            "functional_1/conv2d_1/BiasAdd_weights_fused_bn": "fixed<12,2,RND_CONV,SAT>",  # 1.44
            "functional_1/conv2d_2/BiasAdd_weights_fused_bn": "fixed<12,2,RND_CONV,SAT>",  # 1.60
            "Conv__60_weights_fused_bn": "fixed<12,4,RND_CONV,SAT>",  # 4.66
            "functional_1/conv2d_3/BiasAdd_weights_fused_bn": "fixed<12,2,RND_CONV,SAT>",  # 1.57
        },
    },
    "mlperf_ad_autoenc_float": {
        "_note": "input: features in [-63.1, 1.8]; each Gemm+BatchNormalization is folded, the formats are "
                 "for the folded weights (layer 0's |w| is only 0.0114 after folding); activations after "
                 "folding within [-15, 4], outputs within [-61, -5]",
        "defaults": {"input": "fixed<16,8,RND_CONV,SAT>", "weight": "fixed<12,2,RND_CONV,SAT>",
                     "bias": "fixed<16,4,RND_CONV,SAT>", "activation": "fixed<20,8,RND_CONV,SAT>"},
        "tensors": {
            "layers.0.weight": "fixed<12,-5,RND_CONV,SAT>",  # |w| <= 0.0114 (folded)
            "layers.0.bias": "fixed<16,6,RND_CONV,SAT>",  # 17.4 (folded)
            "layers.3.bias": "fixed<16,4,RND_CONV,SAT>",  # 6.12
            "layers.15.weight": "fixed<12,4,RND_CONV,SAT>",  # 4.39
        },
    },
}

# Extra inputs besides the stored sample: it plus Gaussian noise of this size (relative to
# the sample's spread), and fresh random ones where the stored sample is random.
N_EXTRA = 7


def _extra_inputs(name: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if name == "mnist_cnn_float":  # the stored sample is U[0,1) noise itself
        return rng.random((N_EXTRA, *x.shape[1:])).astype(np.float32)
    noise = rng.normal(0.0, 0.05 * float(x.std()), size=(N_EXTRA, *x.shape[1:]))
    return np.clip(x + noise, x.min(), x.max()).astype(np.float32)


@functools.cache
def real_run(name: str):
    """(stored-sample run, fresh run) of a real model, each (emulated, reference, bound)."""
    model = SHARED_MODELS / f"{name}.onnx"
    stored = np.load(SHARED_MODELS / f"{name}.io.npz")
    x = stored["input"]
    project = compile_quietly(model, parse_plan(REAL_PLANS[name], Path("."), f"<{name} plan>"))
    out = project.graph.outputs[0]
    xs = np.concatenate([x, _extra_inputs(name, x, np.random.default_rng(0))])
    emulated = project.emulate(xs).reshape(len(xs), -1)
    bound = error_bound(project.graph, xs)[out].reshape(len(xs), -1)
    fresh = onnxruntime_run(model, xs).astype(np.float64).reshape(len(xs), -1)
    stored_run = (emulated[:1], stored["output"].astype(np.float64).reshape(1, -1), bound[:1])
    return stored_run, (emulated, fresh, bound)


@pytest.mark.parametrize("name", sorted(REAL_PLANS))
def test_real_model_within_bound_of_stored_output(name):
    emulated, reference, bound = real_run(name)[0]
    assert_within_bound(emulated, reference, bound, f"{name}: stored reference output")


@pytest.mark.parametrize("name", sorted(REAL_PLANS))
def test_real_model_within_bound_of_fresh_onnxruntime(name):
    """The stored sample and N_EXTRA more, run by onnxruntime now."""
    emulated, reference, bound = real_run(name)[1]
    assert_within_bound(emulated, reference, bound, f"{name}: fresh onnxruntime run")


@pytest.mark.parametrize("name", sorted(REAL_PLANS))
def test_real_model_close_to_float(name):
    """Not a specification, a sanity check that does not depend on the bound's tightness:
    20-bit activations and 12-bit weights keep every output within 2% of the sample's
    output spread of the float model."""
    emulated, reference, _ = real_run(name)[1]
    spread = reference.max(axis=1) - reference.min(axis=1)
    worst = np.abs(emulated - reference).max(axis=1)
    assert np.all(worst < 0.02 * spread), (worst, spread)


# The KWS DS-CNN has nine conv layers: an element-wise worst-case bound multiplies by about
# the row sums of |W| (~5) per layer, so it cannot be small there however the plan is set.
SHALLOW_REAL_MODELS = ["mlperf_ad_autoenc_float", "mnist_cnn_float"]


@pytest.mark.parametrize("name", SHALLOW_REAL_MODELS)
def test_real_model_bound_is_useful(name):
    """The bound is below 10% of each sample's output spread: a real discrepancy shows."""
    _, reference, bound = real_run(name)[1]
    spread = reference.max(axis=1) - reference.min(axis=1)
    ratio = bound.max(axis=1) / spread
    assert np.all(ratio < 0.1), f"largest bound / output spread per sample: {np.round(ratio, 3)}"
