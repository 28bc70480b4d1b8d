"""Plans from data (`finegrain calibrate`) and the clipping warnings of `compile --data` and
`emulate` (compiler/calibrate.py, docs/calibration.md).

Accuracy: a calibrated plan's emulated outputs lie within `compiler.error_bound`'s per-sample
bound of onnxruntime's float outputs, and the quantized model's accuracy is the float
model's within what that bound allows: a sample can change class only where the float
model's top two logits are closer than twice the bound."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from badinput import expect_clean_failure
from compiler.calibrate import emulate_counting
from compiler.cli import main
from compiler.emulate import emulate_exact
from compiler.error_bound import error_bound
from compiler.fixed import FixedType
from compiler.plan import load_plan
from compiler.project import load_project
from test_float_reference import assert_within_bound, onnxruntime_run

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger"
AUTOENCODER = ROOT.parent / "shared" / "models" / "mlperf_ad_autoenc_float.onnx"


@pytest.fixture(scope="module")
def jet_data():
    data = np.load(JET / "data.npz")
    return data["x"], data["y"]


def _calibrate(tmp_path: Path, model: Path, x, *options, name="plan.json") -> dict:
    data = tmp_path / "x.npy" if not isinstance(x, dict) else tmp_path / "x.npz"
    (np.save if not isinstance(x, dict) else lambda p, a: np.savez(p, **a))(data, x)
    plan = tmp_path / name
    assert main(["calibrate", str(model), "--data", str(data), "-o", str(plan), *map(str, options)]) == 0
    return json.loads(plan.read_text())


def _fits(t: FixedType, lo: float, hi: float) -> bool:
    """``lo`` and ``hi`` rounded to nearest (ties to even) lie within ``t``: exact, in Fractions."""
    def rounded(v):
        return round(Fraction(v) / t.lsb)  # Python's round of a Fraction is ties to even
    return t.min_mantissa <= rounded(lo) and rounded(hi) <= t.max_mantissa


def _check_margin_rule(plan: dict, margin: int) -> None:
    """Each input and activation: signed only if the data goes negative, and the fewest
    integer bits that hold the measured range, plus ``margin``."""
    measured = plan["_calibration"]["measured"]
    for name, text in plan["tensors"].items():
        if name not in measured:
            continue
        t, (lo, hi) = FixedType.parse(text), (measured[name]["min"], measured[name]["max"])
        hi = 1.0 if lo == hi == 0 else hi  # a value 0 on all the data: sized as if it reached 1
        assert t.signed == (lo < 0), name
        fewest = FixedType(t.width, t.int_bits - margin, t.signed)
        assert _fits(fewest, lo, hi), f"{name}: {fewest} does not hold {lo}..{hi}"
        assert not _fits(FixedType(t.width, fewest.int_bits - 1, t.signed), lo, hi), f"{name}: not the fewest"


def _top_two_gap(logits: np.ndarray) -> np.ndarray:
    top = np.sort(logits, axis=1)
    return top[:, -1] - top[:, -2]


# --- plans from data reach the float model's accuracy ----------------------------------------


def test_jet_tagger_plan_from_data_reaches_float_accuracy(tmp_path, jet_data):
    x, y = jet_data
    plan = _calibrate(tmp_path, JET / "model.onnx", x, "--bits", 16, "--weight-bits", 16)
    _check_margin_rule(plan, margin=1)
    assert plan["tensors"]["x"] == "fixed<16,4,RND_CONV,SAT>"  # -3.77..3.67: 3 integer bits (sign included), + 1
    assert plan["tensors"]["/relu1/Relu_output_0"].startswith("ufixed<16,")
    assert set(plan["_calibration"]["not_planned"]) == {f"/fc{i}/Gemm_output_0" for i in (1, 2, 3)}
    project = compiler.compile_model(JET / "model.onnx", load_plan(tmp_path / "plan.json"), data=x)
    assert all(c["saturated"] + c["wrapped"] + c["zeroed"] == 0 for c in project.saturation["tensors"].values())
    emulated = project.emulate(x)
    reference = onnxruntime_run(JET / "model.onnx", x)
    bound = error_bound(project.graph, x)["logits"]
    assert_within_bound(emulated, reference, bound, "jet tagger, calibrated 16-bit plan")
    # where the float top two logits are further apart than twice the bound, the class cannot change
    undecided = _top_two_gap(reference.astype(np.float64)) <= 2 * bound.max(axis=1)
    same = emulated.argmax(axis=1) == reference.argmax(axis=1)
    assert same[~undecided].all()
    float_accuracy, accuracy = (reference.argmax(1) == y).mean(), (emulated.argmax(1) == y).mean()
    assert accuracy >= float_accuracy - undecided.mean()
    assert undecided.mean() <= 0.05, f"the bound leaves {undecided.mean():.1%} of the samples undecided"


def test_jet_tagger_default_plan_is_within_bound_and_clips_nothing(tmp_path, jet_data):
    x, _ = jet_data
    plan = _calibrate(tmp_path, JET / "model.onnx", x)
    _check_margin_rule(plan, margin=1)
    assert {FixedType.parse(v).width for k, v in plan["tensors"].items() if k in plan["_calibration"]["measured"]} \
        == {8}
    assert plan["tensors"]["fc1.bias"].startswith("fixed<16,")
    project = compiler.compile_model(JET / "model.onnx", load_plan(tmp_path / "plan.json"), data=x)
    assert not project.warnings
    emulated = project.emulate(x)
    assert_within_bound(emulated, onnxruntime_run(JET / "model.onnx", x), error_bound(project.graph, x)["logits"],
                        "jet tagger, calibrated 8-bit plan")


def _autoencoder_data() -> np.ndarray:
    sample = np.load(AUTOENCODER.with_suffix(".io.npz"))["input"].astype(np.float64)
    rng = np.random.default_rng(12)
    noise = sample.mean() + sample.std() * rng.standard_normal((63, sample.shape[1]))
    return np.concatenate([sample, noise]).astype(np.float32)


def test_autoencoder_plan_from_data_reaches_float_reconstruction(tmp_path):
    x = _autoencoder_data()
    plan = _calibrate(tmp_path, AUTOENCODER, x, "--bits", 16, "--weight-bits", 16, "--per-channel")
    _check_margin_rule(plan, margin=1)
    assert plan["_calibration"]["samples"] == 64
    assert isinstance(plan["tensors"]["layers.0.weight"], dict)  # per output channel
    project = compiler.compile_model(AUTOENCODER, load_plan(tmp_path / "plan.json"), data=x)
    assert not project.warnings
    emulated = project.emulate(x)
    reference = onnxruntime_run(AUTOENCODER, x).astype(np.float64)
    bound = next(iter(error_bound(project.graph, x).values()))
    assert_within_bound(emulated, reference, bound, "autoencoder, calibrated 16-bit plan")
    # the anomaly score (mean squared reconstruction error) moves at most as the bound allows
    xf = x.astype(np.float64)
    score, float_score = ((xf - emulated) ** 2).mean(1), ((xf - reference) ** 2).mean(1)
    score_bound = (2 * np.abs(xf - reference) * bound + bound ** 2).mean(1)
    assert (np.abs(score - float_score) <= score_bound * (1 + 1e-9)).all()
    # the bound is mostly onnxruntime's float32 allowance (0.6 at 24 bits); the quantized
    # model's own score is within 0.1% of the float one
    assert (score_bound <= 0.4 * float_score).all(), (score_bound / float_score).max()
    assert (np.abs(score - float_score) <= 1e-3 * float_score).all()


def test_per_channel_weights_take_the_fewest_integer_bits_per_row(tmp_path, jet_data):
    x, _ = jet_data
    plan = _calibrate(tmp_path, JET / "model.onnx", x[:100], "--per-channel", "--weight-bits", 6)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(JET / "model.onnx").graph.initializer}
    entry = plan["tensors"]["fc1.weight"]
    assert entry["axis"] == 0 and len(entry["formats"]) == 64
    for row, text in zip(weights["fc1.weight"], entry["formats"]):
        t = FixedType.parse(text)
        lo, hi = float(row.min()), float(row.max())
        assert t.width == 6 and t.signed == (lo < 0)
        assert _fits(t, lo, hi) and not _fits(FixedType(6, t.int_bits - 1, t.signed), lo, hi)
    assert plan["tensors"]["fc1.bias"]["axis"] == 0


# --- the plan file ---------------------------------------------------------------------------


def test_plan_loads_unchanged_in_compile_and_round_trips(tmp_path, capsys, jet_data):
    x, _ = jet_data
    plan = _calibrate(tmp_path, JET / "model.onnx", x[:200])
    assert "nothing clips on the data" in capsys.readouterr().out
    record = plan["_calibration"]
    assert record["data"].endswith("x.npy") and record["samples"] == 200 and record["margin_bits"] == 1
    assert record["measured"]["x"]["min"] == float(x[:200].min())
    parsed = load_plan(tmp_path / "plan.json")
    assert {k: s.source for k, s in parsed.tensors.items()} == plan["tensors"]
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(tmp_path / "plan.json"), "-o", str(out),
                 "--backend", "hls"]) == 0
    resolved = json.loads((out / "plan.resolved.json").read_text())["tensors"]
    assert {k: v["formats"]["uniform"] for k, v in resolved.items()} == plan["tensors"]
    report = json.loads((out / "report.json").read_text())
    assert [layer["stages"] for layer in report["layers"]] == [["dense", "relu", "requantize"]] * 3 + \
        [["dense", "requantize"]]


def test_partial_plan_entries_are_kept(tmp_path, jet_data):
    x, _ = jet_data
    plans = tmp_path / "plans"
    plans.mkdir()
    bits = np.full((32,), 6)
    np.savez(plans / "arrays.npz", **{"r2.bits": bits, "r2.int_bits": np.full((32,), 4),
                                      "r2.signed": np.zeros((32,), dtype=int)})
    rows = ["fixed<6,2,RND_CONV,SAT>"] * 64
    partial = {"defaults": {"activation": "fixed<20,8,RND_CONV,SAT>"},
               "tensors": {"x": "fixed<12,5,RND_CONV,SAT>", "fc1.weight": {"axis": 0, "formats": rows},
                           "/relu2/Relu_output_0": {"elements": "arrays.npz:r2", "rounding": "RND_CONV",
                                                    "overflow": "SAT"},
                           "/fc3/Gemm_output_0": "fixed<10,6,RND_CONV,SAT>"},
               "tables": {"sigmoid_input": "fixed<8,3,TRN,SAT>"}}
    (plans / "partial.json").write_text(json.dumps(partial))
    (tmp_path / "made").mkdir()
    plan = _calibrate(tmp_path, JET / "model.onnx", x, "--plan", plans / "partial.json", name="made/plan.json")
    tensors = plan["tensors"]
    assert tensors["x"] == "fixed<12,5,RND_CONV,SAT>" and tensors["fc1.weight"] == {"axis": 0, "formats": rows}
    assert tensors["/fc3/Gemm_output_0"] == "fixed<10,6,RND_CONV,SAT>"
    assert tensors["/relu2/Relu_output_0"]["elements"] == "../plans/arrays.npz:r2"  # still the same file
    assert plan["defaults"]["activation"] == "fixed<20,8,RND_CONV,SAT>" and plan["tables"] == partial["tables"]
    assert sorted(plan["_calibration"]["kept_from_partial_plan"]) == sorted(partial["tensors"])
    assert plan["_calibration"]["partial_plan"].endswith("partial.json")
    assert tensors["fc2.weight"].startswith("fixed<8,")  # calibrated: not in the partial plan
    project = compiler.compile_model(JET / "model.onnx", tmp_path / "made" / "plan.json")
    resolved = project.resolved_plan()["tensors"]
    assert resolved["x"]["formats"] == {"uniform": "fixed<12,5,RND_CONV,SAT>"}
    assert resolved["/relu2/Relu_output_0"]["formats"] == {"uniform": "ufixed<6,4,RND_CONV,SAT>"}
    # (values requantized inside a fused layer are not in plan.resolved.json: read the IR)
    assert str(project.graph.tensor("/fc3/Gemm_output_0").formats.uniform_type()) == "fixed<10,6,RND_CONV,SAT>"
    # a value read only by ReLU and not named anywhere takes the partial plan's default
    assert str(project.graph.tensor("/fc1/Gemm_output_0").formats.uniform_type()) == "fixed<20,8,RND_CONV,SAT>"


# --- clipping is never silent ------------------------------------------------------------------


def _saturating_input_plan(tmp_path: Path) -> Path:
    plan = json.loads((JET / "plan.json").read_text())
    plan["tensors"]["x"] = "fixed<8,2,RND_CONV,SAT>"
    path = tmp_path / "clipping.json"
    path.write_text(json.dumps(plan))
    return path


def _warnings(err: str) -> list[str]:
    return [" ".join(w.split()) for w in re.split(r"\n(?=\w)", err.strip()) if w.startswith("warning: ")]


def test_a_clipping_input_format_warns_with_the_exact_count(tmp_path, capsys, jet_data):
    x, _ = jet_data
    np.save(tmp_path / "x.npy", x)
    # independently: x * 64 rounded half to even leaves the mantissas -128..127 of fixed<8,2>
    m = np.rint(x.astype(np.float64) * 64)
    count = int(((m < -128) | (m > 127)).sum())
    assert count > 0
    expected = (f"warning: input 'x': {count} of 16000 values ({100 * count / 16000:.2f}%) saturate in "
                f"fixed<8,2,RND_CONV,SAT> (range -2..1.984); the data reaches {x.min():.4g} and {x.max():.4g}; "
                f"give it more integer bits (finegrain calibrate --data finds them)")
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(_saturating_input_plan(tmp_path)), "-o", str(out),
                 "--data", str(tmp_path / "x.npy"), "--backend", "hls"]) == 0
    assert _warnings(capsys.readouterr().err) == [expected]
    report = json.loads((out / "report.json").read_text())
    entry = report["saturation"]["tensors"]["x"]
    assert (entry["saturated"], entry["wrapped"], entry["values"]) == (count, 0, 16000)
    assert report["saturation"]["samples"] == 1000
    assert report["saturation"]["tensors"]["/relu1/Relu_output_0"]["saturated"] == 0
    assert expected[len("warning: "):] in report["warnings"]
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    assert _warnings(capsys.readouterr().err) == [expected]
    # the hook leaves the numbers alone
    graph = load_project(out).graph
    outputs, _ = emulate_counting(graph, x)
    exact = emulate_exact(graph, x)
    assert all(np.array_equal(outputs[k].m, exact[k].m) and outputs[k].frac == exact[k].frac for k in exact)


def test_compile_without_data_counts_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(JET / "model.onnx"), "--plan", str(_saturating_input_plan(tmp_path)), "-o", str(out),
                 "--backend", "hls"]) == 0
    assert "saturation" not in json.loads((out / "report.json").read_text())


def _relu_model(path: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    graph = helper.make_graph(nodes, "relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_wrapping_is_reported_as_wrapping(tmp_path, capsys):
    model = _relu_model(tmp_path / "relu.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<16,8,RND_CONV,SAT>"},
                                "tensors": {"y": "ufixed<6,2,RND_CONV>"}}))
    rng = np.random.default_rng(3)
    x = rng.integers(-512, 512, size=(200, 8)) / 64  # exact in the input format
    np.save(tmp_path / "x.npy", x)
    m = np.rint(np.maximum(x, 0) * 16)  # relu, then ufixed<6,2>'s mantissas: 0..63
    count = int((m > 63).sum())
    assert 0 < count < x.size
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--data", str(tmp_path / "x.npy"),
                 "--backend", "hls"]) == 0
    (warning,) = _warnings(capsys.readouterr().err)
    assert warning.startswith(f"warning: activation 'y': {count} of 1600 values ({100 * count / 1600:.2f}%) wrap "
                              f"around in ufixed<6,2,RND_CONV> (range 0..3.938); the data reaches {x.max():.4g}; ")
    assert "far worse than saturating" in warning and "overflow mode SAT" in warning
    entry = json.loads((out / "report.json").read_text())["saturation"]["tensors"]["y"]
    assert (entry["wrapped"], entry["saturated"]) == (count, 0)


def test_mixed_overflow_modes_count_each(tmp_path):
    model = _relu_model(tmp_path / "relu.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<16,8,RND_CONV,SAT>"}, "tensors": {
        "y": {"axis": 1, "formats": ["ufixed<6,2,RND_CONV>", "ufixed<6,2,RND_CONV,SAT>",
                                     "ufixed<6,2,RND_CONV,SAT_ZERO>"] + ["ufixed<12,8,RND_CONV,SAT>"] * 5}}}))
    x = np.full((3, 8), 5.0)
    project = compiler.compile_model(model, plan, data=x)
    entry = project.saturation["tensors"]["y"]
    assert (entry["wrapped"], entry["saturated"], entry["zeroed"], entry["values"]) == (3, 3, 3, 24)
    (warning,) = project.warnings
    assert "9 of 24 values (37.50%) leave 3 of its per-element formats" in warning
    assert "3 saturate and 3 wrap around and 3 become 0 (SAT_ZERO)" in warning


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case, mention", [
    ("shape", ["input 'x' has shape [10, 15]", "expected [batch, 16]", "--data file"]),
    ("nan", ["input 'x' has 1 non-finite values", "--data file"]),
    ("key", ["has arrays ['features']", "missing ['x']"]),
    ("empty", ["input 'x' has shape [0, 16]", "batch >= 1"]),
    ("nofile", ["--data file", "does not exist"]),
    ("garbage", ["cannot read --data file", ".npy/.npz"]),
])
def test_bad_data_exits_2_naming_the_problem_and_writes_no_plan(tmp_path, capsys, case, mention):
    x = np.random.default_rng(0).normal(size=(10, 16))
    data = tmp_path / ("x.npz" if case == "key" else "x.npy")
    if case == "shape":
        np.save(data, x[:, :15])
    elif case == "nan":
        x[3, 4] = np.nan
        np.save(data, x)
    elif case == "key":
        np.savez(data, features=x)
    elif case == "empty":
        np.save(data, x[:0])
    elif case == "garbage":
        data.write_bytes(b"not numpy")
    out = tmp_path / "plan.json"
    expect_clean_failure(capsys, ["calibrate", JET / "model.onnx", "--data", data, "-o", out], mention, out=out)


def test_bad_options_and_outputs_exit_2(tmp_path, capsys, jet_data):
    np.save(tmp_path / "x.npy", jet_data[0][:20])
    data, out = tmp_path / "x.npy", tmp_path / "plan.json"
    base = ["calibrate", JET / "model.onnx", "--data", data, "-o", out]
    expect_clean_failure(capsys, [*base, "--bits", 0], ["--bits must be a width from 1 to 1024"], out=out)
    expect_clean_failure(capsys, [*base, "--margin", -1], ["--margin must be a whole number"], out=out)
    expect_clean_failure(capsys, ["calibrate", JET / "model.onnx", "--data", data, "-o", data, "--force"],
                         ["is the --data file"], keep=[data])
    out.write_text("{}")
    expect_clean_failure(capsys, base, ["exists", "--force"], keep=[out])
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"tensors": {"fc9.weight": "fixed<8,1>"}}))
    expect_clean_failure(capsys, [*base, "--force", "--plan", partial], ["fc9.weight", "does not have"], keep=[out])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.7e308, -1.7e308] * 8]))
    expect_clean_failure(capsys, ["calibrate", JET / "model.onnx", "--data", bad, "-o", tmp_path / "p2.json"],
                         ["not finite on the calibration data"], out=tmp_path / "p2.json")


def test_compile_with_bad_data_writes_no_folder(tmp_path, capsys, jet_data):
    np.save(tmp_path / "x.npy", jet_data[0][:, :15])
    out = tmp_path / "out"
    expect_clean_failure(capsys, ["compile", JET / "model.onnx", "--plan", JET / "plan.json", "-o", out, "--data",
                                  tmp_path / "x.npy"], ["input 'x' has shape [1000, 15]", "--data file"], out=out)


def test_a_plan_template_is_a_partial_plan_of_notes(tmp_path, capsys, jet_data):
    """Entries holding only notes (plan-template's) are calibrated; a partial plan's own
    saturating weight is reported as compile would."""
    template = tmp_path / "template.json"
    assert main(["plan-template", str(JET / "model.onnx"), "-o", str(template)]) == 0
    raw = json.loads(template.read_text())
    raw["tensors"]["fc4.weight"] = "fixed<4,0,RND_CONV,SAT>"
    template.write_text(json.dumps(raw))
    capsys.readouterr()
    plan = _calibrate(tmp_path, JET / "model.onnx", jet_data[0], "--plan", template)
    assert plan["_calibration"]["kept_from_partial_plan"] == ["fc4.weight"]
    assert plan["tensors"]["x"] == "fixed<8,4,RND_CONV,SAT>"
    assert plan["tensors"]["fc4.weight"] == "fixed<4,0,RND_CONV,SAT>"
    (warning,) = _warnings(capsys.readouterr().err)
    assert re.match(r"warning: \d+ of 160 values of weight 'fc4.weight' saturate under fixed<4,0,RND_CONV,SAT>",
                    warning), warning


def test_two_inputs_from_an_npz_signed_only_where_negative(tmp_path):
    """Inputs keyed by name; a negative input is signed, a positive one unsigned, and a value
    that is 0 on all the data gets the bits of a range reaching 1 (ufixed<8,1>, + margin)."""
    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("a", "b")]
    nodes = [helper.make_node("Add", ["a", "b"], ["s"], name="sum"),
             helper.make_node("Relu", ["a"], ["r"], name="act"),
             helper.make_node("Add", ["s", "r"], ["y"], name="out")]
    graph = helper.make_graph(nodes, "two", spec, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    rng = np.random.default_rng(5)
    data = {"a": -rng.uniform(0.5, 5.0, size=(40, 4)), "b": rng.uniform(0.0, 0.7, size=(40, 4))}
    plan = _calibrate(tmp_path, model, data, "--margin", 0)
    _check_margin_rule(plan, margin=0)
    tensors, measured = plan["tensors"], plan["_calibration"]["measured"]
    assert tensors["a"] == "fixed<8,4,RND_CONV,SAT>" and tensors["b"] == "ufixed<8,0,RND_CONV,SAT>"
    assert tensors["r"] == "ufixed<8,1,RND_CONV,SAT>" and measured["r"] == {"min": 0.0, "max": 0.0}
    assert measured["a"]["max"] == data["a"].max() and measured["b"]["min"] == data["b"].min()
    project = compiler.compile_model(model, tmp_path / "plan.json", data=data)
    assert not project.warnings


def test_a_quantized_model_keeps_its_quantizers_and_its_clipping_is_named_so(tmp_path, capsys):
    """QONNX: calibrate plans nothing the model quantizes (its input, weights, the outputs of
    its quantizers) and completes the rest (a float bias); the input quantizer's clipping is
    reported as the model's own, counted exactly."""
    from quant_models import hand_qonnx

    model = hand_qonnx(tmp_path, "rounding_round")  # input: 4-bit signed, scale 0.25: -2..1.75
    x = model.inputs.reshape(len(model.inputs), -1).astype(np.float64)
    plan = _calibrate(tmp_path, model.path, x)
    assert list(plan["tensors"]) == ["b"]  # the model's float bias: compile needs a format for it
    left = plan["_calibration"]["not_planned"]
    assert {"x", "x_quant", "W_quant", "y"} <= set(left) and "model" in left["x"]
    codes = np.rint(x / 0.25)  # ROUND is half to even
    count = int(((codes < -8) | (codes > 7)).sum())
    assert count > 0
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["compile", str(model.path), "--plan", str(tmp_path / "plan.json"), "-o", str(out), "--data",
                 str(tmp_path / "x.npy"), "--backend", "hls"]) == 0
    warnings = _warnings(capsys.readouterr().err)
    assert warnings[0].startswith(f"warning: input 'x': {count} of {x.size} values ")
    assert warnings[0].endswith("the format is the model's own quantizer, and the quantized model clips these "
                                "values the same way (outside the range it was trained or calibrated for)")
    assert json.loads((out / "report.json").read_text())["saturation"]["tensors"]["x"]["by_model"] is True


def test_sat_sym_counts_the_most_negative_code(tmp_path):
    """SAT_SYM's range is +-max: a value rounding to the most negative code is clipped too."""
    model = _relu_model(tmp_path / "relu.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<4,1,RND_CONV,SAT_SYM>"}, "tensors": {}}))
    x = np.array([[-1.0, -0.97, -0.9, 0.875, 0.9, 0.0, 0.5, -0.5]])  # codes -8 -8 -7 7 7 0 4 -4
    project = compiler.compile_model(model, plan, data=x)
    entry = project.saturation["tensors"]["x"]
    assert (entry["saturated"], entry["values"]) == (2, 8)  # -1.0 and -0.97 (0.9 rounds to 7: inside)
    assert "2 of 8 values (25.00%) saturate in fixed<4,1,RND_CONV,SAT_SYM> (range -0.875..0.875)"\
        in project.warnings[0]


def test_a_failed_calibration_leaves_the_previous_plan(tmp_path, capsys, jet_data):
    out = tmp_path / "plan.json"
    out.write_text('{"tensors": {}}')
    np.save(tmp_path / "x.npy", jet_data[0][:, :3])
    expect_clean_failure(capsys, ["calibrate", JET / "model.onnx", "--data", tmp_path / "x.npy", "-o", out, "--force"],
                         ["input 'x' has shape [1000, 3]"], keep=[out])


def test_values_before_tables_stay_exact_and_table_outputs_take_the_tables(tmp_path):
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "fc.weight")
    nodes = [helper.make_node("Gemm", ["x", "fc.weight"], ["h"], name="fc", transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
             helper.make_node("Softmax", ["h"], ["p"], name="soft", axis=-1)]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in ("s", "p")]
    graph = helper.make_graph(nodes, "tables", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              outputs, [w])
    model = tmp_path / "tables.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plan = _calibrate(tmp_path, model, rng.normal(size=(50, 4)))
    assert sorted(plan["tensors"]) == ["fc.weight", "x"]
    assert set(plan["_calibration"]["not_planned"]) == {"h", "s", "p"}
    project = compiler.compile_model(model, tmp_path / "plan.json")
    assert not any(s.op.value == "requantize" for n in project.graph.nodes for s in n.stages())  # h exact


def test_counting_in_slices_equals_counting_at_once(tmp_path, monkeypatch, jet_data):
    from compiler import calibrate

    x = jet_data[0]
    project = compiler.compile_model(JET / "model.onnx", _saturating_input_plan(tmp_path))
    _, whole = emulate_counting(project.graph, x, project.plan)
    monkeypatch.setattr(calibrate, "MAX_BATCH", 7)  # 143 slices, the last of 6 samples
    samples, sliced = calibrate.count_clipping(project.graph, x, project.plan)
    assert samples == 1000
    assert [c.report() for c in sliced] == [c.report() for c in whole]
    assert whole[0].saturated > 0
    one_sample, counts = calibrate.count_clipping(project.graph, x[0] * 0 + 5.0, project.plan)  # no batch axis
    assert one_sample == 1 and counts[0].saturated == 16


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 0}, r"^bits must be a width from 1 to"),
    ({"weight_bits": 2000}, r"^weight_bits must be a width from 1 to"),
    ({"bias_bits": "8"}, r"^bias_bits must be a width"),
    ({"margin": -1}, r"^margin must be a whole number of integer bits"),
])
def test_bad_calibration_options_from_python_name_the_fields(kwargs, message):
    """CalibrationOptions' errors name its fields from Python (the command names its flags, above)."""
    from compiler.calibrate import CalibrationOptions
    from compiler.errors import UserError

    with pytest.raises(UserError, match=message) as err:
        CalibrationOptions(**kwargs)
    assert "--" not in str(err.value)
