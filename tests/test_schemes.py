"""Weight quantizers beyond fixed point (issue 6): power-of-two values, row-wise mixes of
schemes (and grouping their rows), codebooks; and per-element bits.

* the rounding rules against independent implementations (exact fractions, brute force
  over the set), with hypothesis;
* each scheme on a small MLP: the IR's weights equal a float64 numpy reference of the plan's
  rule, and the emulator's output equals a float64 forward pass of those weights exactly
  (activations exact, inputs on the input grid: every sum is exact in float64);
* grouping: emulate before == after the pass, rows grouped, and the paths it refuses;
* bad plans: `finegrain compile` exits 2 with one paragraph naming the tensor, no folder.

Per-element costs and csim/sim of each scheme are test_schemes_hardware.py's; the models and
plans both compile are scheme_models.py's.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
from compiler.cli import main
from compiler.emulate import emulate_exact
from compiler.errors import PlanError
from compiler.frontend import load_onnx
from compiler.passes.apply_plan import PlanWarning, apply_plan
from compiler.passes.canonicalise import canonicalise
from compiler.passes.group_rows import group_rows
from compiler.plan import mix_counts, parse_plan
from compiler.verify.vectors import csim_vectors
from compiler.weight_formats import Pow2Type, nearest_centre, round_pow2
from tests.scheme_models import CONV_MIX, DEFAULTS, GROUPED, MIX, _cnn, _compile, _grid_inputs, _ir_values, _mlp


# --- independent references ---------------------------------------------------------------


def ref_pow2_exact(w: float, emin: int, emax: int) -> Fraction:
    """The rule from its definition: the member of {0, +-2**e} nearest to w, ties to the
    larger magnitude, by brute force over the set in exact fractions."""
    members = [Fraction(0)] + [s * Fraction(2) ** e for e in range(emin, emax + 1) for s in (1, -1)]
    v = Fraction(w)
    return min(members, key=lambda c: (abs(v - c), -abs(c)))


def ref_pow2(w: np.ndarray, emin: int, emax: int) -> np.ndarray:
    """float64 brute force: candidates by magnitude, largest first, so argmin's first hit
    takes the larger magnitude on a tie (exact here: the weights are float32 values)."""
    members = np.array([s * 2.0 ** e for e in range(emax, emin - 1, -1) for s in (1, -1)] + [0.0])
    return members[np.argmin(np.abs(w[..., None] - members), axis=-1)]


def ref_fixed(w: np.ndarray, width: int, int_bits: int) -> np.ndarray:
    """RND_CONV (round half to even: np.rint) then SAT."""
    frac = width - int_bits
    return np.clip(np.rint(w * 2.0 ** frac), -2 ** (width - 1), 2 ** (width - 1) - 1) / 2.0 ** frac


def ref_codebook(w: np.ndarray, centres, idx=None) -> np.ndarray:
    c = np.asarray(centres, dtype=np.float64)
    if idx is None:
        idx = np.argmin(np.abs(w[..., None] - c), axis=-1)  # first minimum: the lower index
    return c[idx]


def ref_rows_by_variance(w: np.ndarray, axis: int) -> list[int]:
    rows = np.moveaxis(w, axis, 0)
    var = [float(np.var(rows[r])) for r in range(rows.shape[0])]
    return sorted(range(len(var)), key=lambda r: (-var[r], r))


# --- the rules --------------------------------------------------------------------------------

exponent_ranges = st.tuples(st.integers(-20, 20), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1]))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20), exponent_ranges)
def test_round_pow2_against_the_definition(values, erange):
    emin, emax = erange
    got = round_pow2(np.array(values), Pow2Type(emin, emax))
    assert [Fraction(float(g)) for g in got] == [ref_pow2_exact(v, emin, emax) for v in values]


@given(exponent_ranges, st.integers(-22, 22), st.sampled_from([1, -1]), st.sampled_from([0.5, 0.75, 1.0, 1.5]))
def test_round_pow2_at_midpoints_and_ends(erange, e, sign, mantissa):
    """Midpoints 1.5 * 2**e (ties), 0.75 * 2**emin (the tie with zero) and the ends."""
    emin, emax = erange
    v = sign * mantissa * 2.0 ** e
    assert Fraction(float(round_pow2(np.array([v]), Pow2Type(emin, emax))[0])) == ref_pow2_exact(v, emin, emax)


def test_round_pow2_examples():
    p = Pow2Type(-3, 0)
    x = np.array([0.0, 0.0624, 0.0625, 0.18, 0.1875, 0.2, 1.0, 1.4, 2.0, -3.0, -0.19, 5e-324])
    assert round_pow2(x, p).tolist() == [0, 0, 0.125, 0.125, 0.25, 0.25, 1, 1, 1, -1, -0.25, 0]


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8, unique=True),
       st.lists(st.floats(-2e6, 2e6), min_size=1, max_size=20))
def test_nearest_centre_against_brute_force(centres, values):
    got = nearest_centre(np.array(values), centres)
    for v, g in zip(values, got):
        exact = [abs(Fraction(v) - Fraction(c)) for c in centres]
        assert g == min(range(len(centres)), key=lambda i: (exact[i], i))


def test_nearest_centre_ties_go_to_the_lower_index():
    centres = [0.5, -0.25, 0.125, 0.0]
    assert nearest_centre(np.array([0.0625, 0.3125, -0.125, 0.375, 9.0]), centres).tolist() == [2, 0, 1, 0, 0]
    # float64 distances tie (1 -+ 2**-60 both round to 1.0) where the exact ones do not
    assert nearest_centre(np.array([2.0 ** -60]), [-1.0, 1.0]).tolist() == [1]
    assert nearest_centre(np.array([-2.0 ** -60]), [1.0, -1.0]).tolist() == [1]


@pytest.mark.parametrize("rows, n, counts", [
    ([0.5, 0.25, 0.25], 8, [4, 2, 2]),
    ([0.3, 0.3, 0.4], 8, [3, 2, 3]),  # quotas 2.4 2.4 3.2: the tie for the last row goes to the first
    ([0.29, 0.71], 100, [29, 71]),  # the decimals are read exactly, not as binary floats
    ([1 / 3, 1 / 3, 1 / 3], 4, [2, 1, 1]),
    ([0.1, 0.0, 0.9], 5, [1, 0, 4]),  # quotas 0.5 0 4.5: remainders tie, the entry listed first wins
    ([1.0], 7, [7]),
])
def test_mix_counts_by_largest_remainder(tmp_path, rows, n, counts):
    entry = {"axis": 0, "mix": [{"format": "fixed<4,1>", "rows": r} for r in rows]}
    spec = parse_plan({"tensors": {"w": entry}}, tmp_path).spec("w")
    assert mix_counts(spec, n) == counts


# --- each scheme on a small MLP: IR weights and emulator vs float64 references -------------


def _forward(x: np.ndarray, q: dict) -> np.ndarray:
    """The MLP in float64 on quantized weights (ONNX layouts); exact for these small dyadics."""
    h = np.maximum(x @ q["fc1.weight"].T + q["fc1.bias"], 0.0)
    return h @ q["fc2.weight"] + q["fc2.bias"]


def _check_forward(project, reference: dict) -> None:
    """The IR's weights are the reference's, and the emulator computes the float64 forward pass."""
    for name, want in reference.items():
        assert np.array_equal(_ir_values(project, name), want), name
    x = _grid_inputs(project)
    assert np.array_equal(project.emulate(x), _forward(x, reference))


def _defaults_applied(weights: dict) -> dict:
    return {"fc1.weight": ref_fixed(weights["fc1.weight"], 6, 2), "fc2.weight": ref_fixed(weights["fc2.weight"], 6, 2),
            "fc1.bias": ref_fixed(weights["fc1.bias"], 8, 3), "fc2.bias": ref_fixed(weights["fc2.bias"], 8, 3)}


def test_pow2_weights(tmp_path):
    """A whole tensor and per output column (a MatMul weight: ONNX axis 1), mixed with fixed."""
    project, w = _compile(tmp_path, {
        "fc1.weight": "pow2<-4,0>",
        "fc2.weight": {"axis": 1, "formats": ["pow2<-3,1>", "fixed<6,2,RND_CONV,SAT>", "pow2<-1,2>"]},
        "fc2.bias": "pow2<-2,2>"})
    want = _defaults_applied(w)
    want["fc1.weight"] = ref_pow2(w["fc1.weight"], -4, 0)
    want["fc2.weight"] = np.stack([ref_pow2(w["fc2.weight"][:, 0], -3, 1), ref_fixed(w["fc2.weight"][:, 1], 6, 2),
                                   ref_pow2(w["fc2.weight"][:, 2], -1, 2)], axis=1)
    want["fc2.bias"] = ref_pow2(w["fc2.bias"], -2, 2)
    _check_forward(project, want)
    # +-2**e is one bit (signed if negative) with e + 1 integer bits; zeros are pruned
    f = project.graph.tensor("fc1.weight").formats
    v = want["fc1.weight"]
    assert np.array_equal(f.width, (v != 0).astype(int))
    assert np.array_equal(f.signed, v < 0)
    assert np.array_equal(f.int_bits[v != 0], np.log2(np.abs(v[v != 0])).astype(int) + 1)
    saturated = int((np.abs(w["fc1.weight"]) > 1).sum())
    assert saturated and any(f"{saturated} of 48 values of weight 'fc1.weight' saturate under pow2<-4,0>" in m
                             for m in project.warnings)
    scheme = project.resolved_plan()["tensors"]["fc1.weight"]["scheme"]
    assert scheme["kind"] == "pow2" and scheme["pow2"]["saturated"] == saturated
    assert scheme["pow2"]["zeros"] == int((v == 0).sum())
    assert sum(scheme["pow2"]["exponents"].values()) == int((v != 0).sum())


def test_pow2_as_the_weight_default(tmp_path):
    model_path, w = _mlp(tmp_path / "m.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {**DEFAULTS, "weight": "pow2<-5,1>"}, "tensors": {}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanWarning)
        project = compiler.compile_model(model_path, plan)
    want = _defaults_applied(w)
    want.update({k: ref_pow2(w[k], -5, 1) for k in ("fc1.weight", "fc2.weight")})
    _check_forward(project, want)


def _ref_mix(w: np.ndarray, axis: int, schemes: list, counts: list[int]) -> tuple[np.ndarray, list[int]]:
    """Rows by variance, largest first, take the schemes in order: the reference values and
    the scheme of each row."""
    entry = [0] * w.shape[axis]
    order = ref_rows_by_variance(w, axis)
    for k, row in enumerate(order):
        entry[row] = next(i for i in range(len(counts)) if k < sum(counts[:i + 1]))
    rows = np.moveaxis(w, axis, 0)
    out = np.stack([schemes[entry[r]](rows[r]) for r in range(len(entry))])
    return np.moveaxis(out, 0, axis), entry


def test_row_wise_mix_by_variance(tmp_path):
    project, w = _compile(tmp_path, {
        "fc1.weight": {"axis": 0, "mix": MIX},
        "fc2.weight": {"axis": 1, "mix": [{"format": "fixed<6,2,RND_CONV,SAT>", "rows": 2 / 3},
                                          {"format": "pow2<-2,1>", "rows": 1 / 3}]}})
    want = _defaults_applied(w)
    want["fc1.weight"], entry1 = _ref_mix(w["fc1.weight"], 0, [
        lambda r: ref_pow2(r, -6, 0), lambda r: ref_fixed(r, 6, 1), lambda r: ref_fixed(r, 4, 1)], [4, 2, 2])
    want["fc2.weight"], entry2 = _ref_mix(w["fc2.weight"], 1, [
        lambda r: ref_fixed(r, 6, 2), lambda r: ref_pow2(r, -2, 1)], [2, 1])
    _check_forward(project, want)
    resolved = project.resolved_plan()["tensors"]
    scheme = resolved["fc1.weight"]["scheme"]
    assert scheme["row_entry"] == entry1 and resolved["fc2.weight"]["scheme"]["row_entry"] == entry2
    assert scheme["mix"] == {"pow2<-6,0>": 4, "fixed<6,1,RND_CONV,SAT>": 2, "fixed<4,1,RND_CONV,SAT>": 2}
    assert "permutation" not in scheme  # not grouped


def test_row_wise_mix_in_index_order(tmp_path):
    project, w = _compile(tmp_path, {"fc1.weight": {"axis": 0, "mix": MIX, "assign": "order"}})
    want = _defaults_applied(w)
    w1 = w["fc1.weight"]
    want["fc1.weight"] = np.concatenate([ref_pow2(w1[:4], -6, 0), ref_fixed(w1[4:6], 6, 1), ref_fixed(w1[6:], 4, 1)])
    _check_forward(project, want)
    assert project.resolved_plan()["tensors"]["fc1.weight"]["scheme"]["row_entry"] == [0, 0, 0, 0, 1, 1, 2, 2]


CENTRES = [0.5, -0.25, 0.125, 0.0, -1.0, 1.5]


def test_codebook_nearest_and_given_indices(tmp_path):
    """fc1: one codebook, each weight its nearest centre; fc2: indices from an .npz."""
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 4, size=(8, 3))
    np.savez(tmp_path / "arrays.npz", fc2_idx=idx)
    project, w = _compile(tmp_path, {
        "fc1.weight": {"codebook": {"centres": CENTRES, "format": "fixed<5,2>"}},
        "fc2.weight": {"codebook": {"centres": [0.75, -0.5, 0.0, 0.0625], "format": "fixed<6,1>"},
                       "indices": "arrays.npz:fc2_idx"}})
    want = _defaults_applied(w)
    want["fc1.weight"] = ref_codebook(w["fc1.weight"], CENTRES)
    want["fc2.weight"] = ref_codebook(w["fc2.weight"], [0.75, -0.5, 0.0, 0.0625], idx)
    _check_forward(project, want)
    # the codebook's format for every weight, except a zero centre: pruned
    f = project.graph.tensor("fc1.weight").formats
    assert np.array_equal(f.width, np.where(want["fc1.weight"] != 0, 5, 0))
    assert set(f.int_bits[want["fc1.weight"] != 0].tolist()) == {2}
    resolved = project.resolved_plan()["tensors"]
    uses = [int((want["fc1.weight"] == c).sum()) for c in CENTRES]
    assert resolved["fc1.weight"]["scheme"]["codebooks"] == [{"format": "fixed<5,2>", "centres": CENTRES, "uses": uses}]
    assert resolved["fc2.weight"]["scheme"]["codebooks"][0]["uses"] == np.bincount(idx.ravel(), minlength=4).tolist()


def test_codebook_per_row(tmp_path):
    """One codebook per output row of fc1 (nearest), per output column of fc2 (given indices)."""
    rng = np.random.default_rng(3)
    books = [{"centres": [float(c) for c in rng.choice(np.arange(-16, 16) / 8, size=int(rng.integers(1, 6)),
                                                       replace=False)], "format": "fixed<6,2>"} for _ in range(8)]
    books[5] = books[2]  # two rows with one codebook: still one record per row
    books2 = [{"centres": [0.25, -0.5], "format": "fixed<3,0>"}, {"centres": [1.0, 0.0, -2.0], "format": "fixed<3,2>"},
              {"centres": [0.0625], "format": "ufixed<1,-3>"}]
    idx = np.stack([rng.integers(0, len(b["centres"]), size=8) for b in books2], axis=1)
    np.savez(tmp_path / "arrays.npz", fc2_idx=idx)
    project, w = _compile(tmp_path, {"fc1.weight": {"axis": 0, "codebooks": books},
                                     "fc2.weight": {"axis": 1, "codebooks": books2, "indices": "arrays.npz:fc2_idx"}})
    want = _defaults_applied(w)
    want["fc1.weight"] = np.stack([ref_codebook(w["fc1.weight"][r], books[r]["centres"]) for r in range(8)])
    want["fc2.weight"] = np.stack([ref_codebook(w["fc2.weight"][:, c], books2[c]["centres"], idx[:, c])
                                   for c in range(3)], axis=1)
    _check_forward(project, want)
    codebooks = project.resolved_plan()["tensors"]["fc1.weight"]["scheme"]["codebooks"]
    assert [c["centres"] for c in codebooks] == [b["centres"] for b in books]
    assert [c["uses"] for c in codebooks] == [[int((want["fc1.weight"][r] == c).sum()) for c in books[r]["centres"]]
                                              for r in range(8)]


# --- grouping the rows of a mix ----------------------------------------------------------------


def _applied(tmp_path, model, tensors):
    model_path, _ = model(tmp_path / "m.onnx")
    plan = parse_plan({"defaults": DEFAULTS, "tensors": tensors}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanWarning)
        return apply_plan(canonicalise(load_onnx(model_path)), plan)


@pytest.mark.parametrize("case", sorted(GROUPED))
def test_grouping_keeps_every_output_value(tmp_path, case):
    model, tensors, weight, consumer = GROUPED[case]
    before = _applied(tmp_path, model, tensors)
    after = group_rows(before)
    x = csim_vectors(before, 300, seed=4)["x"]
    y0, y1 = emulate_exact(before, x)["y"], emulate_exact(after, x)["y"]
    assert y0.equals(y1) and np.count_nonzero(y0.m) > 0
    w0, w1 = before.tensor(weight), after.tensor(weight)
    entry = np.array(w0.scheme["row_entry"])
    perm = np.argsort(entry, kind="stable")
    assert w1.scheme["permutation"] == perm.tolist()
    assert np.all(np.diff(entry[perm]) >= 0) and not np.array_equal(perm, np.arange(perm.size))
    assert np.array_equal(np.asarray(w1.data), np.asarray(w0.data)[perm])
    assert np.array_equal(w1.formats.width, w0.formats.width[perm])
    c0, c1 = before.tensor(consumer), after.tensor(consumer)
    assert np.array_equal(np.asarray(c1.data), np.asarray(c0.data)[:, perm])
    assert c1.scheme["input_permutation"] == perm.tolist()
    # grouped: each entry's rows are contiguous, and every row has the scheme it had
    kinds = [int(w1.formats.width[r].max()) for r in range(perm.size)]
    assert kinds == [int(w0.formats.width[p].max()) for p in perm]


def test_grouped_rows_in_plan_resolved(tmp_path):
    project, _ = _compile(tmp_path, GROUPED["mlp"][1])
    scheme = project.resolved_plan()["tensors"]["fc1.weight"]["scheme"]
    entry = scheme["row_entry"]
    assert scheme["group"] is True and [entry[p] for p in scheme["permutation"]] == sorted(entry)


@pytest.mark.parametrize("model, tensors, pattern", [
    (_mlp, {"fc2.weight": {"axis": 1, "mix": MIX[1:] + [{"format": "pow2<-1,0>", "rows": 0.5}], "group": True}},
     r"'fc2.weight'.*output channels of layer 'fc2' reach the graph output 'y'"),
    (_mlp, {"fc1.weight": {"axis": 1, "mix": MIX, "group": True}},
     r"'fc1.weight'.*its mix is along axis 1 and the output channels of layer 'fc1' are axis 0"),
    (_mlp, {"fc1.bias": {"axis": 0, "mix": MIX, "group": True}},
     r"'fc1.bias'.*needs it to be the weight of one dense or conv layer, but it is used by 'fc1' \(dense\)"),
    (lambda path: _cnn(path, "maxpool"), {"conv1.weight": {"axis": 0, "mix": CONV_MIX, "group": True}},
     r"'conv1.weight'.*node 'pool' \(maxpool\) is not elementwise"),
])
def test_grouping_that_would_change_values_is_refused(tmp_path, model, tensors, pattern):
    with pytest.raises(PlanError, match=pattern):
        _compile(tmp_path, tensors, model=model)


# --- bad plans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tensors, arrays, words", [
    ({"fc1.weight": "pow2<-70,0>"}, {}, ["'fc1.weight'", "pow2 range cannot be represented", "'pow2<-70,0>'"]),
    ({"fc1.weight": "pow2<2,-2>"}, {}, ["'fc1.weight'", "pow2 range cannot be represented", "'pow2<2,-2>'"]),
    ({"fc1.weight": {"codebook": {"centres": [0.5, 0.3], "format": "fixed<6,1>"}}}, {},
     ["codebook centre 0.3 of 'fc1.weight' is not exact in fixed<6,1>", "0.28125 and 0.3125"]),
    ({"fc1.weight": {"codebook": {"centres": [0.5, 0.25, 0.5], "format": "fixed<6,1>"}}}, {},
     ["duplicate codebook centre 0.5 of 'fc1.weight'"]),
    ({"fc1.weight": {"codebook": {"centres": [], "format": "fixed<6,1>"}}}, {},
     ["'fc1.weight'", "non-empty list of centres"]),
    ({"fc1.weight": {"codebook": {"centres": [0.5, -0.25, 0.125, 0.0], "format": "fixed<6,1>"},
                     "indices": "a.npz:idx"}}, {"idx": np.where(np.arange(48).reshape(8, 6) == 13, 7, 1)},
     ["'fc1.weight'", "index 7 out of range for a codebook of 4 centres", "[2, 1]"]),
    ({"fc1.weight": {"codebook": {"centres": [0.5, 0.0], "format": "fixed<6,1>"}, "indices": "a.npz:idx"}},
     {"idx": np.zeros((8, 6)) + 0.5}, ["'fc1.weight'", "must be integers, got dtype float64"]),
    ({"fc1.weight": {"codebook": {"centres": [0.5, 0.0], "format": "fixed<6,1>"}, "indices": "a.npz:idx"}},
     {"idx": np.zeros((6, 8), int)}, ["'fc1.weight'", "indices have shape [6, 8]", "ONNX shape is [8, 6]"]),
    ({"fc1.weight": {"axis": 0, "mix": [{"format": "pow2<-6,0>", "rows": 0.5}, {"format": "fixed<4,1>", "rows": 0.4}]}},
     {}, ["'fc1.weight'", "mixed-scheme ratios add up to 0.9, not 1"]),
    ({"r": "pow2<-4,0>"}, {}, ["'r'", "pow2<-4,0> is a weight quantizer", "'r' is an activation"]),
    ({"x": "pow2<-4,0>"}, {}, ["'x'", "pow2<-4,0> is a weight quantizer", "'x' is an activation or graph input"]),
    ({"h": {"codebook": {"centres": [0.5, 0.0], "format": "fixed<6,1>"}}}, {},
     ["'h'", "a codebook is a weight quantizer", "activation"]),
    ({"r": {"axis": 1, "mix": MIX}}, {}, ["'r'", "a row-wise mix is a weight quantizer"]),
    ({"fc1.weight": {"axis": 0, "codebooks": [{"centres": [0.5], "format": "fixed<6,1>"}] * 3}}, {},
     ["'fc1.weight'", "3 codebooks given for axis 0, but that axis has length 8"]),
])
def test_bad_plans_exit_2_naming_the_tensor(tmp_path, capsys, tensors, arrays, words):
    model_path, _ = _mlp(tmp_path / "m.onnx")
    if arrays:
        np.savez(tmp_path / "a.npz", **arrays)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": DEFAULTS, "tensors": tensors}))
    capsys.readouterr()
    assert main(["compile", str(model_path), "--plan", str(plan), "-o", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and err.count("error:") == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "out").exists()
