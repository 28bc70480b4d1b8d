"""Weight schemes in hardware (issue 6; the schemes themselves are test_schemes.py's):

* per element: a 0-bit weight leaves no product, a 0-bit activation element is a constant
  zero and the next layer's accumulator shrinks;
* each scheme on tiny models: `finegrain csim` and `finegrain sim` bit-exact on 305 vectors,
  and a per-layer codebook written as one product per distinct centre.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.backends.rtl import RTLOptions, rtl_context
from compiler.cli import main
from tests.scheme_models import DEFAULTS, GROUPED, _cnn, _compile, _grid_inputs, _ir_values, _mlp

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")



# --- per element: pruned weights and activation elements -------------------------------------


def _per_element_plan(tmp_path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """fc1.weight: random bits, a third pruned; the relu output r: elements 1 and 6 pruned."""
    rng = np.random.default_rng(8)
    w_bits = np.where(rng.random((8, 6)) < 0.33, 0, rng.integers(2, 7, size=(8, 6)))
    r_bits = np.array([5, 0, 6, 4, 7, 5, 0, 6])
    np.savez(tmp_path / "bits.npz", **{
        "w1.bits": w_bits, "w1.int_bits": np.full((8, 6), 2), "w1.signed": np.ones((8, 6), int),
        "r.bits": r_bits, "r.int_bits": np.full(8, 3), "r.signed": np.zeros(8, int)})
    tensors = {"fc1.weight": {"elements": "bits.npz:w1", "rounding": "RND_CONV", "overflow": "SAT"},
               "r": {"elements": "bits.npz:r", "rounding": "RND_CONV", "overflow": "SAT"}}
    return tensors, w_bits, r_bits


def _products(graph) -> dict[str, int]:
    context = rtl_context(graph, RTLOptions(clock_ns=5.0, levels_per_stage=None), {"model": "m", "plan": "p"})
    return {layer["name"]: layer["products"] for layer in context["layers"]}


def test_pruned_weights_and_activation_elements_cost_nothing(tmp_path):
    tensors, w_bits, r_bits = _per_element_plan(tmp_path)
    project, w = _compile(tmp_path, tensors)
    g = project.graph
    w1 = g.tensor("fc1.weight")
    assert np.all(np.asarray(w1.data)[w_bits == 0] == 0) and np.array_equal(w1.formats.width, w_bits)
    r = g.tensor("r")
    assert np.array_equal(r.formats.width, r_bits)
    # the emulator: a pruned activation element is always 0
    x = _grid_inputs(project, seed=1)
    from compiler.emulate import quantize_inputs, run

    values = run(g, quantize_inputs(g, x))
    assert np.all(values["r"].m[:, r_bits == 0] == 0)
    # no product for a pruned weight, nor for a weight reading a pruned activation element
    fc2 = _ir_values(project, "fc2.weight")  # [in, out]
    products = _products(g)
    assert products["fc1"] == int(np.count_nonzero(np.asarray(w1.data)))
    assert products["fc2"] == int(np.count_nonzero(fc2[r_bits > 0]))
    # the next layer's accumulator holds only the terms it has: its exact range is the bias
    # plus each kept element's extreme term, and it is narrower than with every element kept
    def bounds(name):
        t = g.tensor(name)
        return [np.ldexp(np.asarray(b, dtype=np.float64), -t.formats.frac_bits) for b in t.bounds]

    r_lo, r_hi = bounds("r")
    assert np.all(r_lo[r_bits == 0] == 0) and np.all(r_hi[r_bits == 0] == 0) and np.all(r_hi[r_bits > 0] > 0)
    ends = np.stack([fc2 * r_lo[:, None], fc2 * r_hi[:, None]])
    bias = _ir_values(project, "fc2.bias")
    y_lo, y_hi = bounds("y")
    assert np.array_equal(y_lo, bias + ends.min(axis=0).sum(axis=0))
    assert np.array_equal(y_hi, bias + ends.max(axis=0).sum(axis=0))
    full = dict(tensors, r={"axis": 1, "formats": ["ufixed<7,3,RND_CONV,SAT>"] * 8})
    wide, _ = _compile(tmp_path, full)
    assert products["fc2"] < _products(wide.graph)["fc2"]
    assert g.tensor("y").formats.width.sum() < wide.graph.tensor("y").formats.width.sum()


# --- csim and Verilator sim, bit-exact ----------------------------------------------------------


def _books(rng, n, fmt="fixed<6,3>"):
    return [{"centres": [float(c) for c in rng.choice(np.arange(-12, 12) / 4, size=int(rng.integers(1, 5)),
                                                      replace=False)], "format": fmt} for _ in range(n)]


def _sim_case(name: str, tmp_path: Path):
    """(model, tensors) of one scheme's tiny design."""
    rng = np.random.default_rng(12)
    if name == "pow2":
        return _mlp, {"fc1.weight": "pow2<-4,0>", "fc2.bias": "pow2<-2,2>",
                      "fc2.weight": {"axis": 1, "formats": ["pow2<-3,1>", "fixed<6,2,RND_CONV,SAT>", "pow2<-1,2>"]}}
    if name == "mix_grouped":
        return _mlp, {**GROUPED["mlp"][1], "fc2.weight": {"axis": 1, "mix": [
            {"format": "pow2<-3,1>", "rows": 0.34}, {"format": "fixed<5,2,RND_CONV,SAT>", "rows": 0.66}]}}
    if name == "conv_mix_grouped":
        return _cnn, GROUPED["cnn"][1]
    if name == "codebooks":
        np.savez(tmp_path / "idx.npz", fc2=rng.integers(0, 4, size=(8, 3)))
        return _mlp, {"fc1.weight": {"axis": 0, "codebooks": _books(rng, 8)},
                      "fc2.weight": {"codebook": {"centres": [0.75, -0.5, 0.0, 0.0625], "format": "fixed<6,1>"},
                                     "indices": "idx.npz:fc2"}}
    return _mlp, _per_element_plan(tmp_path)[0]


@pytest.mark.parametrize("case", ["pow2", "mix_grouped", "conv_mix_grouped", "codebooks", "per_element"])
def test_csim_and_rtl_sim_bit_exact(tmp_path, case):
    model, tensors = _sim_case(case, tmp_path)
    model_path, _ = model(tmp_path / "m.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": DEFAULTS, "tensors": tensors}))
    out = tmp_path / "out"
    assert main(["compile", str(model_path), "--plan", str(plan), "-o", str(out)]) == 0
    for command in ("csim", "sim"):
        assert main([command, str(out), "--vectors", "300"]) == 0
        report = json.loads((out / "report.json").read_text())[command]
        assert report["mismatches"] == 0 and report["vectors"] == 305, (command, report)


def test_hls_codebook_layer_makes_each_product_once(tmp_path):
    """A per-layer codebook is written as finegrain::dense_codebook: its distinct non-zero
    centres and an index per weight (so each centre * input is one product, shared by every
    row); per-row codebooks and reused multipliers keep the plain kernel.  csim stays exact."""
    model, tensors = _sim_case("codebooks", tmp_path)
    model_path, _ = model(tmp_path / "m.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": DEFAULTS, "tensors": tensors}))
    idx = np.load(tmp_path / "idx.npz")["fc2"]
    for reuse in (1, 2):
        out = tmp_path / f"out{reuse}"
        assert main(["compile", str(model_path), "--plan", str(plan), "-o", str(out), "--backend", "hls",
                     "--reuse-factor", str(reuse)]) == 0
        top = (out / "hls" / "firmware" / "mlp.cpp").read_text()
        calls = [line.strip() for line in top.splitlines() if line.strip().startswith("finegrain::dense")]
        assert len(calls) == 2 and calls[0].startswith("finegrain::dense<"), calls  # fc1: one codebook per row
        if reuse == 1:
            # fc2: centres 0.75, -0.5, 0.0, 0.0625 with 0.0 as "no term": the used non-zero ones
            used = sorted({c for c in (0.75, -0.5, 0.0625) if [0.75, -0.5, 0.0, 0.0625].index(c) in idx})
            assert calls[1].startswith("finegrain::dense_codebook<") and f", {len(used)}>(" in calls[1], calls
            centres = (out / "hls" / "firmware" / "weights" / "fc2_weight_centres.h").read_text()
            assert f"its {len(used)} distinct non-zero values" in centres
        else:
            assert calls[1].startswith("finegrain::dense<"), calls
        assert main(["csim", str(out), "--vectors", "300"]) == 0
        report = json.loads((out / "report.json").read_text())["csim"]
        assert report["mismatches"] == 0 and report["vectors"] == 305, report
