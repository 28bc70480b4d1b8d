"""The differential fuzzer's quantized cases (compiler/fuzz/quant.py, quant_exact.py): their
generation, the exact quantizers on hand-computed values, a fixed-seed budget through the
reference, g++ csim and Verilator sim, and the check failing on tampered references."""

from __future__ import annotations

import collections
import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler.fuzz.__main__ import fuzz
from compiler.errors import UserError
from compiler.fuzz.check import write_case_files
from compiler.fuzz.generate import normalize, random_case
from compiler.fuzz.quant import quantized
from compiler.fuzz.quant_exact import against_quant_reference, apply, codes_of, round_mode
from compiler.fuzz.shrink import _candidates
from compiler.project import compile_model

CASES = sorted((Path(__file__).parent / "fuzz_cases").glob("*.json"))


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def test_generation_is_deterministic_and_covers_the_quantizers():
    """The same seed gives the same case; 150 seeds hold both formats and every domain, every
    rounding mode, bipolar and 1-bit quantizers, narrow ranges, zero points, per-channel
    scales, scales that are not powers of two, weights stored as int8 codes, BatchNorms, Trunc
    (both versions) and a final Sigmoid or Softmax."""
    assert quantized(random_case(7)) == quantized(random_case(7))
    seen = collections.Counter()
    for seed in range(150):
        case = quantized(random_case(seed))
        assert "reuse" not in case and case["plan"] == {"defaults": {}, "tensors": {}} and case["layers"]
        q = case["quant"]
        seen["bn"] += any(layer["op"] == "bn" for layer in case["layers"])
        seen["table"] += case["layers"][-1]["op"] in ("sigmoid", "softmax")
        seen[f"trunc v{q.get('domain_version', 1)}"] += any(s["op"] == "trunc" for s in q["tensors"].values())
        seen[q["format"]] += 1
        seen[q.get("domain", q.get("opset"))] += 1
        for spec in q["tensors"].values():
            seen[spec["op"]] += 1
            seen[spec.get("rounding")] += 1
            seen["1-bit"] += spec.get("bits") == 1
            seen["narrow"] += bool(spec.get("narrow"))
            seen["zero point"] += any(spec["zero"])
            seen["per channel"] += spec["axis"] is not None
            seen["not pow2"] += any(np.frexp(s)[0] != 0.5 for s in spec["scale"])
            seen["codes"] += bool(spec.get("codes"))
        assert all(np.float32(v) == v for v in np.ravel(case["inputs"]))  # the model's input is float32
    wanted = ["qonnx", "qdq", "qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general", 13, 21,
              "quant", "bipolar", "ROUND", "HALF_EVEN", "FLOOR", "CEIL", "DOWN", "ROUND_TO_ZERO", "HALF_UP",
              "HALF_DOWN", "1-bit", "narrow", "zero point", "per channel", "not pow2", "codes", "bn", "trunc v1",
              "trunc v2", "table"]
    assert [w for w in wanted if seen[w] < 2] == []


@pytest.mark.parametrize("mode, expected", [
    ("ROUND", [2, -2, 4, 2, -3]), ("HALF_EVEN", [2, -2, 4, 2, -3]), ("FLOOR", [2, -3, 3, 2, -3]),
    ("CEIL", [3, -2, 4, 3, -2]), ("DOWN", [2, -2, 3, 2, -2]), ("ROUND_TO_ZERO", [2, -2, 3, 2, -2]),
    ("UP", [3, -3, 4, 3, -3]), ("HALF_UP", [3, -3, 4, 2, -3]), ("HALF_DOWN", [2, -2, 3, 2, -3])])
def test_rounding_modes_on_ties_and_between(mode, expected):
    values = [Fraction(5, 2), Fraction(-5, 2), Fraction(7, 2), Fraction(9, 4), Fraction(-11, 4)]
    assert [round_mode(v, mode) for v in values] == expected


def test_quantizers_on_hand_computed_values():
    quant = {"op": "quant", "bits": 4, "signed": 1, "narrow": 1, "rounding": "ROUND", "scale": [0.5], "zero": [0],
             "axis": None}
    # narrow: -7..7, so -100 saturates at -3.5; 1.25 / 0.5 = 2.5 ties to even 2
    assert list(apply(quant, np.array([-100.0, 1.25, 1.75, 100.0]))) == [Fraction(-7, 2), 1, 2, Fraction(7, 2)]
    # a zero point is added before rounding: 0.25 / 0.5 + 1 = 1.5 -> 2, minus 1 -> 1 code
    unsigned = dict(quant, signed=0, narrow=1, zero=[1])  # codes 0..14: values -1..13 codes
    assert list(apply(unsigned, np.array([0.25, -5.0, 100.0]))) == [Fraction(1, 2), Fraction(-1, 2), Fraction(13, 2)]
    # a scale that is not a power of two enters as its float32 value, exactly
    s = float(np.float32(0.0371))
    odd = dict(quant, scale=[s], narrow=0, rounding="FLOOR")
    assert apply(odd, np.array([0.1]))[0] == 2 * Fraction(s)  # 0.1 / 0.0371 = 2.695...
    assert apply(odd, np.array([-10.0]))[0] == -8 * Fraction(s)
    # QuantizeLinear adds the zero point after rounding to even: 0.5 -> 0, + 1 -> code 1, value 0
    qdq = {"op": "qdq", "dtype": "uint8", "scale": [1.0], "zero": [1], "axis": None}
    assert list(apply(qdq, np.array([0.5, 1.5, -3.0, 300.0]))) == [0, 2, -1, 254]
    assert codes_of(qdq, np.array([0.5, -3.0])).tolist() == [1, 0]
    # bipolar: the sign, 0 counts as positive; a signed 1-bit Quant too, after the zero point
    bipolar = {"op": "bipolar", "scale": [0.25, 2.0], "zero": [0], "axis": 0}
    assert list(apply(bipolar, np.array([0.0, -1e-9]))) == [Fraction(1, 4), -2]
    one_bit = dict(quant, bits=1, narrow=0, zero=[-1])
    # 0.4 / 0.5 - 1 < 0: code -1, value (-1 + 1) * 0.5 = 0; 0.6 / 0.5 - 1 >= 0: code 1, value (1 + 1) * 0.5
    assert list(apply(one_bit, np.array([0.4, 0.6]))) == [0, 1]


def test_trunc_equals_qonnx_on_values_off_its_ties():
    """The reference's Trunc (v1 and v2) against qonnx's own numpy functions, on random values
    that are not within 1e-6 of a tie of the first rounding (where float64 and exact values can
    differ), and the 1e-9-off ties of the second, both sides (exact values there).  v2's
    ``out_scale`` is a power-of-two multiple of ``scale`` and, once, near one (qonnx rounds its
    log2)."""
    from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2

    rng = np.random.default_rng(4)
    s = float(np.float32(0.0371))
    x = rng.uniform(-40, 40, size=400)
    x = x[np.abs(x / s - np.floor(x / s) - 0.5) > 1e-6]
    for rounding in ("FLOOR", "ROUND", "CEIL", "HALF_UP", "DOWN"):
        for version, out_scale, signed, narrow in ((1, s, 1, 0), (2, 4 * s, 1, 0), (2, 8 * s, 0, 1),
                                                   (2, float(np.float32(8.7 * s)), 1, 1)):
            spec = {"op": "trunc", "scale": [s], "zero": [0], "axis": None, "in_bits": 12, "out_bits": 6,
                    "out_scale": [float(np.float32(out_scale))], "signed": signed, "narrow": narrow,
                    "rounding": rounding}
            ours = np.array([float(v) for v in apply(spec, x, version)])
            f32 = np.float32
            if version == 1:
                theirs = trunc_v1(x, f32(s), f32(0), f32(12), f32(6), rounding)
            else:
                theirs = trunc_v2(x, f32(s), f32(0), f32(12), narrow, signed, f32(spec["out_scale"][0]), f32(6),
                                  rounding)
            assert np.array_equal(ours, np.asarray(theirs, dtype=np.float64)), (rounding, version)


def test_trunc_on_hand_computed_values():
    # v1: 0.25 / 0.125 = 2, by 2**(10 - 8) = 4: 0.5 -> FLOOR 0, CEIL 1; the output scale is the input's
    v1 = {"op": "trunc", "scale": [0.125], "zero": [0], "axis": None, "in_bits": 10, "out_bits": 8,
          "out_scale": [0.5], "signed": 1, "narrow": 0, "rounding": "FLOOR"}
    assert list(apply(v1, np.array([0.25, 1.0, -0.25]))) == [0, Fraction(1, 4), Fraction(-1, 8)]
    assert list(apply(dict(v1, rounding="CEIL"), np.array([0.25]))) == [Fraction(1, 8)]
    # v2: t = 0.5 / 0.125 = 4, into 2 signed bits (-2..1) times 0.5: 1.0 gives 2, saturated at 1 code
    v2 = dict(v1, out_bits=2)
    assert list(apply(v2, np.array([0.25, 1.0, 100.0, -100.0]), 2)) == [0, Fraction(1, 2), Fraction(1, 2), -1]


@pytest.mark.parametrize("seed", [1, 138, 142, 233])
def test_trunc_cases_equal_the_exact_model(seed, tmp_path):
    """138 and 142 were refused ("an unclamped quantizer ... no earlier quantizer bounds": the
    range was not carried through Dense, Conv, Add or BatchNorm); 233 guards the Clip's range (a
    first version took its input's, not its bounds', and the first rounding saturated while the
    report said exact)."""
    from compiler.fuzz.check import Written, prepare_case

    case = quantized(random_case(seed, extras=False))
    assert any(spec["op"] == "trunc" for spec in case["quant"]["tensors"].values())
    outcome = prepare_case(case, tmp_path, ("compile", "emulate", "reference"))
    outcome = outcome.conclude(None) if isinstance(outcome, Written) else outcome
    assert outcome.status == "pass", outcome.message


@pytest.mark.parametrize("seed", [11, 87], ids=["softmax", "sigmoid"])
def test_table_case_through_csim_and_sim(seed, tmp_path):
    """A quantized model ending in a Softmax (QDQ, seed 11) or a Sigmoid (QONNX, after a
    BatchNorm, seed 87): csim and Verilator compare every output bit with the emulator; the
    exact reference covers the Sigmoid (the real function), not the Softmax."""
    from compiler.fuzz.__main__ import run_backends
    from compiler.fuzz.check import Written, prepare_case

    case = quantized(random_case(seed, extras=False))
    assert case["layers"][-1]["op"] in ("sigmoid", "softmax")
    written = prepare_case(case, tmp_path, ("compile", "emulate", "reference", "csim", "sim"))
    assert isinstance(written, Written) and written.failed is None, written
    assert ("reference" in written.done) == (case["layers"][-1]["op"] == "sigmoid"), written.done
    outcome = run_backends([written], tmp_path)[0]
    assert outcome.status == "pass" and {"csim", "sim"} <= set(outcome.levels), outcome


def test_fixed_seed_budget_is_clean(tmp_path):
    """60 quantized cases through the emulator and the exact reference, 10 of them through one
    batched g++ csim build and 4 through one batched Verilator build: no finding that is not
    a regression case already."""
    summary = fuzz(minutes=2.0, seed=12, csim=True, sim=True, out=tmp_path, csim_every=6, sim_every=15,
                   shrink_budget=0, max_cases=60, jobs=1, quant=1.0, log=lambda *_: None)
    passed = summary["checks_passed"]
    assert summary["quant_cases"] == 60 and passed.get("reference", 0) >= 50, summary
    assert passed.get("csim", 0) >= 7 and passed.get("sim", 0) >= 3, summary
    known = {json.loads(p.read_text())["check"] for p in CASES}
    assert [f for f in summary["findings"] if f["check"] not in known] == []


def _compiled(tmp_path, seeds):
    """(case, project, emulated output) of each quantized case of ``seeds`` that compiles."""
    for seed in seeds:
        case = quantized(random_case(seed))
        model, _ = write_case_files(case, tmp_path / f"case{seed}")
        try:
            project = compile_model(model, None)
        except UserError:
            continue
        graph = project.graph
        inputs = np.asarray(case["inputs"], dtype=np.float64)
        yield case, project, project.emulate_exact({graph.inputs[0]: inputs})[graph.outputs[0]]


def test_tampered_reference_is_caught(tmp_path):
    """The check fails when the reference and the compiled model disagree: an exact case whose
    reference reads the input with another rounding (its vectors hold ties), and a case with a
    bound whose reference bias moved by twice that bound."""
    spec = {"op": "quant", "bits": 4, "signed": 1, "narrow": 0, "rounding": "ROUND", "scale": [0.5], "zero": [0],
            "axis": None}
    case = {"input_shape": [3], "layers": [{"op": "relu", "src": [0]}], "seed": 0, "export": "helper",
            "plan": {"defaults": {}, "tensors": {}}, "arrays": {}, "inputs": [[0.25, 0.75, -0.25]],
            "quant": {"format": "qonnx", "domain": "onnx.brevitas", "tensors": {"x": spec}}}
    model, _ = write_case_files(case, tmp_path / "hand")
    project = compile_model(model, None)
    values = project.emulate_exact({"x": np.asarray(case["inputs"])})[project.graph.outputs[0]]
    assert project.quantization()["exact"] and against_quant_reference(case, project, values, []) is None
    tampered = copy.deepcopy(case)
    tampered["quant"]["tensors"]["x"]["rounding"] = "CEIL"  # 0.25 / 0.5 rounds to 1, not 0
    failed = against_quant_reference(tampered, project, values, [])
    assert failed is not None and failed.message.startswith("vector 0 output [0]: reference 1/2") and \
        "report.json says exact" in failed.message, failed

    def bounded(case, project):
        """A bound, and a last layer that is a dense layer with a float bias and no output quantizer."""
        out = project.quantization()["outputs"][project.graph.outputs[0]]
        last = len(case["layers"]) - 1
        layer = case["layers"][last]
        return not out["exact"] and out["max_error"] and layer["op"] == "dense" and layer.get("bias") is not None \
            and not {f"l{last}.bias", f"t{last}"} & set(case["quant"]["tensors"])

    case, project, values = next((c, p, v) for c, p, v in _compiled(tmp_path, range(40, 400)) if bounded(c, p))
    bound = project.quantization()["outputs"][project.graph.outputs[0]]["max_error"]
    assert against_quant_reference(case, project, values, []) is None
    tampered = copy.deepcopy(case)
    tampered["layers"][-1]["bias"] = [b + 2 * bound for b in tampered["layers"][-1]["bias"]]
    failed = against_quant_reference(tampered, project, values, [])
    assert failed is not None and "report.json says within" in failed.message, failed


def test_shrinking_drops_quantizers_and_layers():
    """The shrinker's candidates of a quantized case: fewer layers keep only the quantizers of
    tensors still there; a dropped activation quantizer and per-tensor scales are tried."""
    case = next(c for c in (quantized(random_case(s)) for s in range(100))
                if len(c["layers"]) >= 3 and any(s["axis"] is not None for s in c["quant"]["tensors"].values())
                and any(n.startswith("t") for n in c["quant"]["tensors"]))
    cut = normalize({**copy.deepcopy(case), "layers": case["layers"][:1]})
    assert set(cut["quant"]["tensors"]) <= {"x", "t0", "l0.weight", "l0.bias", "l0.const"}
    candidates = list(_candidates(case))
    names = set(case["quant"]["tensors"])
    assert any(set(c["quant"]["tensors"]) == names - {n} for c in candidates for n in names if n.startswith("t"))
    assert any(c["quant"]["tensors"][n]["axis"] is None and case["quant"]["tensors"][n]["axis"] is not None
               for c in candidates for n in names if n in c["quant"]["tensors"])
