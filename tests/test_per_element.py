"""Per-element and per-row formats, end to end through the real jet tagger: the emulator
against an independent reference written with exact Python fractions."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import compiler

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"


def _round_half_even_sat(v: Fraction, width: int, int_bits: int, signed: bool) -> Fraction:
    """RND_CONV then SAT, written from the definition."""
    if width == 0:
        return Fraction(0)
    scale = Fraction(2) ** (width - int_bits)
    q = v * scale
    floor = q.numerator // q.denominator
    rem = q - floor
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2 ** width - 1)
    return Fraction(min(max(floor, lo), hi)) / scale


def _reference(weights, formats, x_row, act_formats):
    """The MLP with the plan's semantics, in exact fractions."""
    h = [_round_half_even_sat(Fraction(float(v)), 12, 5, True) for v in x_row]
    for layer in range(4):
        w, b = weights[f"fc{layer + 1}.weight"], weights[f"fc{layer + 1}.bias"]
        wf, bf = formats[f"fc{layer + 1}.weight"], formats[f"fc{layer + 1}.bias"]
        out = []
        for j in range(w.shape[0]):
            acc = _round_half_even_sat(Fraction(float(b[j])), *bf[j])
            for k in range(w.shape[1]):
                acc += _round_half_even_sat(Fraction(float(w[j, k])), *wf[j][k]) * h[k]
            out.append(acc)
        if layer < 3:
            af = act_formats[layer]
            h = [_round_half_even_sat(max(v, Fraction(0)), *af[j]) for j, v in enumerate(out)]
        else:
            h = out
    return h


def test_per_element_and_per_row_plan_matches_fraction_reference(tmp_path):
    rng = np.random.default_rng(7)
    model = onnx.load(JET / "model.onnx")
    weights = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    # fc2: per element, a quarter pruned; relu1 output: per element, some pruned;
    # fc1: per row (axis 0); the rest uniform.
    w2_bits = np.where(rng.random((32, 64)) < 0.25, 0, rng.integers(2, 9, (32, 64)))
    w2_int = rng.integers(0, 3, (32, 64))
    a1_bits = np.where(rng.random(64) < 0.2, 0, rng.integers(3, 10, 64))
    a1_int = rng.integers(2, 6, 64)
    np.savez(tmp_path / "arrays.npz", **{
        "w2.bits": w2_bits, "w2.int_bits": w2_int, "w2.signed": np.ones((32, 64), int),
        "a1.bits": a1_bits, "a1.int_bits": a1_int, "a1.signed": np.zeros(64, int)})
    row_types = [(int(rng.integers(3, 8)), int(rng.integers(0, 3))) for _ in range(64)]
    plan = {
        "defaults": {"input": "fixed<12,5,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                     "bias": "fixed<10,3,RND_CONV,SAT>", "activation": None},
        "tensors": {
            "fc1.weight": {"axis": 0, "formats": [f"fixed<{w},{i},RND_CONV,SAT>" for w, i in row_types]},
            "fc2.weight": {"elements": "arrays.npz:w2", "rounding": "RND_CONV", "overflow": "SAT"},
            "/relu1/Relu_output_0": {"elements": "arrays.npz:a1", "rounding": "RND_CONV", "overflow": "SAT"},
            "/relu2/Relu_output_0": "ufixed<8,5,RND_CONV,SAT>",
            "/relu3/Relu_output_0": "ufixed<7,5,RND_CONV,SAT>",
        },
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    project = compiler.compile_model(JET / "model.onnx", tmp_path / "plan.json")

    def uniform(rows, cols, t):
        return [[t] * cols for _ in range(rows)]

    formats = {
        "fc1.weight": [[(w, i, True)] * 16 for w, i in row_types],
        "fc2.weight": [[(int(w2_bits[j, k]), int(w2_int[j, k]), True) for k in range(64)] for j in range(32)],
        "fc3.weight": uniform(32, 32, (6, 2, True)), "fc4.weight": uniform(5, 32, (6, 2, True)),
    }
    for n, size in (("fc1.bias", 64), ("fc2.bias", 32), ("fc3.bias", 32), ("fc4.bias", 5)):
        formats[n] = [(10, 3, True)] * size
    act = [[(int(a1_bits[j]), int(a1_int[j]), False) for j in range(64)], [(8, 5, False)] * 32, [(7, 5, False)] * 32]

    x = np.load(JET / "data.npz")["x"][:40].astype(np.float64)
    x = np.concatenate([x, np.full((1, 16), 15.99), np.full((1, 16), -16.0), np.zeros((1, 16))])
    got = project.emulate_exact(x)["logits"]
    got_fractions = [[Fraction(int(m)) / Fraction(2) ** got.frac for m in row] for row in got.m]
    for s in range(len(x)):
        assert got_fractions[s] == _reference(weights, formats, x[s], act), f"sample {s}"

    # pruned weights and activations cost nothing: they are zero in the IR, and an
    # accumulator whose every term is pruned needs no bits
    g = project.graph
    w2 = g.tensor("fc2.weight")
    assert np.all(np.asarray(w2.data)[w2_bits == 0] == 0)
    assert np.all(w2.formats.width[w2_bits == 0] == 0)
    assert np.array_equal(g.tensor("/relu1/Relu_output_0").formats.width, a1_bits)
