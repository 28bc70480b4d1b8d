"""The exact reference (tests/quant_reference.py) against independent executions.

* qonnx's ``execute_onnx`` runs Quant/BipolarQuant/Trunc in numpy and the other nodes in
  onnxruntime, all in float32.  On models where float32 provably cannot round
  (`assert_float32_cannot_round`: power-of-two scales, every value and every partial sum of
  every dot product within float32's 24 significant bits) the two must be equal exactly.
* onnxruntime on QDQ models rounds in float32.  `float32_error_bounds` derives, tensor by
  tensor, how far a float32 execution can be from the exact value (below); the test then
  requires: every QuantizeLinear output onnxruntime computes equals the reference's, except
  where the exact value before rounding lies within that bound of a rounding tie (there
  float32 may pick the other side, by one step), and where every quantizer of a sample
  agrees, the outputs are within the bound.
* the rounding modes against their definitions; the ordinary ops against ``onnx.reference``
  in float64 are test_quant_reference_ops.py's.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.quant import quant as qonnx_quant
from qonnx.custom_op.general.quant import resolve_rounding_mode

from tests import quant_models as qm
from tests import quant_models_exported as qe
from tests import quant_reference as qr
from tests import quant_reference_ops as qo
from tests import quant_reference_values as qv
from tests import quant_reference_windows as qw
from tests.quant_reference_values import Exact

FLOAT32_BITS = 24
U32 = 2.0 ** -24  # float32 unit roundoff (round to nearest)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("quant_reference")


# --- rounding and the quantizer formula --------------------------------------------------


def _by_definition(value: Fraction, mode: str) -> int:
    """The rounding modes as stated in qonnx's resolve_rounding_mode, on exact fractions."""
    floor = value.numerator // value.denominator
    ceil = -((-value.numerator) // value.denominator)
    sign = 1 if value > 0 else -1 if value < 0 else 0
    half = Fraction(1, 2)
    if mode in ("ROUND", "HALF_EVEN"):
        return round(value)  # Python's round of a Fraction: ties to even
    return {"CEIL": ceil, "FLOOR": floor,
            "UP": sign * -((-abs(value).numerator) // abs(value).denominator),
            "DOWN": sign * (abs(value).numerator // abs(value).denominator),
            "ROUND_TO_ZERO": sign * (abs(value).numerator // abs(value).denominator),
            "HALF_UP": sign * ((abs(value) + half).numerator // (abs(value) + half).denominator),
            "HALF_DOWN": sign * -((-(abs(value) - half).numerator) // (abs(value) - half).denominator)}[mode]


@pytest.mark.parametrize("mode", qm.ROUNDING_MODES)
def test_round_division_is_each_modes_definition(mode):
    p = np.arange(-60, 61)
    for q in range(1, 9):
        got = qv.round_division(p, np.array(q), mode)
        want = [_by_definition(Fraction(int(v), q), mode) for v in p]
        assert got.tolist() == want, (mode, q)
        if q in (1, 2, 4, 8) and mode != "ROUND_TO_ZERO":  # qonnx's numpy functions, exact on these floats
            assert got.tolist() == resolve_rounding_mode(mode)(p / q).astype(int).tolist(), (mode, q)


QUANTIZERS = [  # (bits, signed, narrow, rounding, scale, zero point)
    (4, True, False, "ROUND", 0.25, 0.0), (3, True, True, "FLOOR", 0.5, 0.0), (8, False, False, "CEIL", 2.0 ** -5, 0.0),
    (5, False, True, "HALF_UP", 1.0, 3.0), (6, True, False, "HALF_DOWN", np.array([0.5, 0.25, 0.125]), -2.0),
    (2, True, False, "UP", 0.125, 1.0), (7, True, True, "DOWN", 4.0, 0.0), (1, True, False, "ROUND", 0.5, 0.0),
    (1, False, False, "ROUND", 0.5, 0.0), (12, True, False, "HALF_EVEN", 2.0 ** -10, np.array([0.0, 5.0, -7.0])),
]


@pytest.mark.parametrize("bits, signed, narrow, rounding, scale, zero_point", QUANTIZERS)
def test_quant_equals_qonnx_int_quant_in_float64(bits, signed, narrow, rounding, scale, zero_point):
    """qonnx's own int_quant in float64 on inputs with few significant bits, where float64
    is exact: every step of x / scale + zero point, the rounding and the rescale."""
    rng = np.random.default_rng(bits)
    x = np.concatenate([np.arange(-600, 601) / 64.0, rng.normal(0, 8, 400).round(3)])
    x = np.stack([x, x / 2, -x], axis=1)
    inputs = [qv.from_float(x, batched=True), qv.from_float(scale), qv.from_float(zero_point),
              qv.from_integers(bits)]
    got = qo.op_quant(inputs, {"signed": int(signed), "narrow": int(narrow), "rounding_mode": rounding}, 1)
    want = qonnx_quant(x, np.asarray(scale, dtype=np.float64), np.float64(zero_point), np.float64(bits), signed,
                       narrow, rounding)
    assert qv.exact_equal(got, want).all()


def test_bipolar_quant_equals_qonnx():
    x = np.concatenate([np.arange(-64, 65) / 16.0, [-0.0, 1e-30, -1e-30]])[:, None] * np.ones((1, 3))
    scale = np.array([0.5, 3.0, 0.125])
    got = qo.op_bipolar_quant([qv.from_float(x, batched=True), qv.from_float(scale)], {}, 1)
    assert qv.exact_equal(got, binary_quant(x, scale)).all()


@pytest.mark.parametrize("defect", ["bits_zero", "bits_fraction", "bits_vector", "scale_zero", "scale_negative",
                                    "scale_shape"])
def test_quantizer_without_a_value_is_refused(folder, defect):
    """Where the quantizer's formula has no value (no bits, a division by a scale that is not
    positive, shapes that do not broadcast), the reference refuses, naming the node."""
    model = qm.malformed_quant(folder, defect)
    with pytest.raises(RuntimeError, match="node 'bad_quant' \\(Quant\\)"):
        qr.run(model.path, model.inputs)


def test_exact_values_are_exact():
    """A float32 input, a scale that is not a power of two and a rounding tie: the reference
    rounds the exact x / scale, which float32 gets wrong."""
    scale = np.float32(0.1)
    x = np.float32(0.25)  # 0.25 / fl(0.1) = 2.4999999627...: rounds to 2, not to the tie's 2
    got = qo.op_quant([qv.from_float(np.array([x]), batched=True), qv.from_float(scale), qv.from_integers(0),
                       qv.from_integers(8)], {"signed": 1, "narrow": 0, "rounding_mode": "HALF_UP"}, 1)
    assert got.fractions()[0] == 2 * Fraction(float(scale))
    assert np.float32(x) / scale == np.float32(2.5)  # float32 rounds x / scale onto the tie (HALF_UP: 3)


# --- float32 exactness, proved from the exact values -------------------------------------


def _significant_bits(n: int) -> int:
    """Bits of the odd part of the integer n (0 for 0)."""
    n = abs(int(n))
    return (n >> ((n & -n).bit_length() - 1)).bit_length() if n else 0


def _odd_part_bits(t: Exact) -> int:
    """Most significant bits any element needs: float32 holds it iff <= 24 (and dyadic)."""
    if t.den & (t.den - 1):
        raise AssertionError(f"denominator {t.den} is not a power of two: not a float")
    return max((_significant_bits(v) for v in t.num.flat), default=0)


def _dot_terms_bits(node, env) -> int:
    """Bits of the largest sum of |terms| of a dot product, in its LSB: every partial sum in
    any order is a multiple of the LSB no larger than that."""
    x, w = env[node.input[0]], env[node.input[1]]
    absolute = [Exact(np.abs(x.num), x.den, x.batched), Exact(np.abs(w.num), w.den)]
    if len(node.input) > 2 and node.input[2]:
        b = env[node.input[2]]
        absolute.append(Exact(np.abs(b.num), b.den))
    attrs = qr.attributes(node)
    total = qr.OPS[node.op_type](absolute, attrs, 13)
    lsb = x.den * w.den
    if len(absolute) > 2:
        lsb = lsb * absolute[2].den // np.gcd(lsb, absolute[2].den)
    return qv._maxbits(total.scaled_to(lsb) if lsb % total.den == 0 else total.num)


def assert_float32_cannot_round(model: qm.QuantModel) -> None:
    """Fail unless a float32 execution of the model on its inputs is exact at every step:
    every tensor, every Quant's x / scale + zero point (and + 0.5 for HALF_UP/HALF_DOWN),
    and every partial sum of every MatMul/Gemm/Conv hold within 24 significant bits.
    Scales must be powers of two (division by them is then exact)."""
    onnx_model = onnx.load(str(model.path))
    env = qr.run(onnx_model, model.inputs, keep_all=True)
    for node in onnx_model.graph.node:
        for name in node.output:
            assert _odd_part_bits(env[name]) <= FLOAT32_BITS, f"{name} ({node.op_type}) needs more than 24 bits"
        if node.op_type in ("Quant", "Trunc"):
            x, scale, zero = (env[i] for i in node.input[:3])
            assert all(qo._is_power_of_two(f) for f in scale.fractions().flat), f"{node.name}: scale not pow2"
            p, q = qv.scaled_ratio(x, scale, zero)
            needed = _odd_part_bits(Exact(p, 1))
            rounding = qr.attributes(node).get("rounding_mode", "")
            if rounding.upper() in ("HALF_UP", "HALF_DOWN"):  # qonnx adds or subtracts 0.5 to |t|
                needed = max(needed, _odd_part_bits(Exact(2 * np.abs(p) + q, 1)))
            assert needed <= FLOAT32_BITS, f"{node.name}: x / scale + zero point (+ 0.5) needs more than 24 bits"
        if node.op_type in ("MatMul", "Gemm", "Conv"):
            assert _dot_terms_bits(node, env) <= FLOAT32_BITS, f"{node.name}: partial sums pass 2**24 LSBs"


def test_float32_proof_can_fail(folder):
    with pytest.raises(AssertionError, match="scale not pow2|24 bits|not a float"):
        assert_float32_cannot_round(qm.hand_qonnx(folder, "non_pow2"))


# --- equal to qonnx where float32 is exact -----------------------------------------------

EXACT_HAND_CASES = [c for c in qm.HAND_CASES if c not in ("non_pow2", "rounding_round_to_zero")]


def _assert_equal_to_qonnx(model: qm.QuantModel) -> None:
    assert_float32_cannot_round(model)
    want = qm.run_qonnx(model)
    got = qr.run_output(model.path, model.inputs)
    equal = qv.exact_equal(got, want)
    assert equal.all(), f"{model.name}: {np.count_nonzero(~equal)} of {equal.size} values differ"


@pytest.mark.parametrize("case", EXACT_HAND_CASES)
def test_hand_graph_equals_qonnx(folder, case):
    _assert_equal_to_qonnx(qm.hand_qonnx(folder, case))


@pytest.mark.parametrize("domain", qm.QUANT_DOMAINS[1:])
@pytest.mark.parametrize("case", ["zero_points", "bipolar", "rounding_half_up"])
def test_hand_graph_in_other_domains_equals_qonnx(folder, case, domain):
    _assert_equal_to_qonnx(qm.hand_qonnx(folder, case, domain=domain))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("rounding, signed, narrow, bits", [
    ("FLOOR", True, False, 6), ("ROUND", True, True, 5), ("CEIL", False, False, 4), ("HALF_UP", True, False, 8),
])
def test_trunc_equals_qonnx(folder, version, rounding, signed, narrow, bits):
    _assert_equal_to_qonnx(qm.hand_trunc(folder, version=version, rounding=rounding, signed=signed, narrow=narrow,
                                         bits=bits))


@pytest.mark.parametrize("domain", qm.QUANT_DOMAINS)
def test_trunc_version_follows_its_inputs(folder, domain):
    """A 6-input Trunc is v2 whatever opset its domain is imported at (qonnx goes by the
    opset, and runs the 6-input Trunc of the onnx.brevitas or FINN domain as v1)."""
    model = onnx.load(str(qm.hand_trunc(folder, domain=domain).path))
    for entry in model.opset_import:
        if entry.domain == domain:
            entry.version = 1
    same = qm.hand_trunc(folder)
    assert qv.exact_equal(qr.run_output(model, same.inputs), qm.run_qonnx(same)).all()


def test_round_to_zero_is_down(folder):
    """qonnx's executor does not know Brevitas's ROUND_TO_ZERO; it is DOWN (toward zero)."""
    to_zero, down = qm.hand_qonnx(folder, "rounding_round_to_zero"), qm.hand_qonnx(folder, "rounding_down")
    a, b = qr.run_output(to_zero.path, to_zero.inputs), qr.run_output(down.path, down.inputs)
    assert a.den == b.den and np.array_equal(a.num, b.num)


@pytest.mark.parametrize("builder, options", [
    (qe.brevitas_mlp, {"bits": 8}), (qe.brevitas_mlp, {"bits": 4, "dynamo": False}),
    (qe.brevitas_cnn, {"pool": "max"}), (qe.brevitas_cnn, {"pool": "trunc_avg", "dynamo": False}),
], ids=["mlp_8b", "mlp_4b_torchscript", "cnn_maxpool", "cnn_truncavg_torchscript"])
def test_brevitas_pow2_model_equals_qonnx(folder, builder, options):
    _assert_equal_to_qonnx(builder(folder, **options))


def test_a_few_hundred_mlp_samples_run_in_seconds(folder):
    model = qe.brevitas_mlp(folder, n_samples=512)
    start = time.perf_counter()
    qr.run_output(model.path, model.inputs)
    assert time.perf_counter() - start < 5.0


# --- QDQ against onnxruntime within float32's error --------------------------------------


def _error_bounds(onnx_model: onnx.ModelProto, env: dict[str, Exact]) -> dict[str, np.ndarray]:
    """How far, at most, a float32 execution's value of each tensor is from the exact one,
    given that every QuantizeLinear in it picked the same integers (checked separately).
    Zero wherever float32 provably holds every step.

    With u = 2**-24: DequantizeLinear rounds (q - z) * s once: u |y|.  A dot product of K
    terms plus a bias (MatMul, Gemm, Conv; products and sums in float32 in any order) is off
    by at most (K + 1) u sum|x w| + sum(e_x |w|) + |b| u (the inputs' own errors e_x carried
    through, first order; weights are exact dequantized constants up to u |w|, counted in
    the (K + 1)).  Add: e_a + e_b + u |a + b|.  AveragePool over k: the mean of e_x, plus
    k u mean|x| for the sum and the division.  Relu, MaxPool, Clip, reshapes: unchanged.
    Everything is evaluated in float64 and multiplied by 1.01 for the second-order terms.
    """
    bounds: dict[str, np.ndarray] = {}

    def bound(name):
        if name in bounds:
            return bounds[name]
        return np.zeros(env[name].shape)

    for node in onnx_model.graph.node:
        out = node.output[0]
        value = np.abs(env[out].float64())
        representable = _float32_holds(env[out])  # float32 can be exact only where it holds the value
        op = node.op_type
        if op in ("QuantizeLinear", "Clip") and env[out].elem_type != TensorProto.FLOAT:
            bounds[out] = np.zeros(value.shape)
        elif op == "DequantizeLinear":
            bounds[out] = np.where(representable, 0.0, U32 * value)
        elif op in ("MatMul", "Gemm", "Conv"):
            x, w = env[node.input[0]], env[node.input[1]]
            attrs = qr.attributes(node)
            carried = qr.OPS[op]([qv.from_float(bound(node.input[0]), True), Exact(np.abs(w.num), w.den)], attrs, 13)
            if not bound(node.input[0]).any() and _dot_terms_bits(node, env) <= FLOAT32_BITS \
                    and _float32_holds(w).all():
                bounds[out] = np.zeros(value.shape)  # every partial sum exact
                continue
            terms = qr.OPS[op]([Exact(np.abs(x.num), x.den, True), Exact(np.abs(w.num), w.den)], attrs, 13)
            k = int(np.prod(w.shape[1:])) if op == "Conv" else x.shape[-1]
            b = np.zeros(1)
            if len(node.input) > 2 and node.input[2]:
                b = np.abs(env[node.input[2]].float64())
                b = b.reshape(-1, *[1] * (value.ndim - 2)) if op == "Conv" else b
            bounds[out] = 1.01 * ((k + 1) * U32 * terms.float64() + carried.float64() + U32 * b)
        elif op == "Add":
            carried = bound(node.input[0]) + bound(node.input[1])
            bounds[out] = np.where((carried == 0) & representable, 0.0, 1.01 * (carried + U32 * value))
        elif op in ("Relu", "Identity", "Flatten", "Reshape", "Clip"):
            bounds[out] = bound(node.input[0]).reshape(value.shape)
        elif op == "AveragePool":  # the window sum of k terms, then one division
            x, attrs = env[node.input[0]], qr.attributes(node)
            k = int(np.prod(attrs["kernel_shape"]))
            mean_bound = qw.op_average_pool([qv.from_float(bound(node.input[0]), True)], attrs, 13).float64()
            mean_abs = qw.op_average_pool([Exact(np.abs(x.num), x.den, True)], attrs, 13).float64()
            exact_sum = not bound(node.input[0]).any() and qv._maxbits(x.num) + k.bit_length() <= FLOAT32_BITS
            if exact_sum and not k & (k - 1) and representable.all():
                bounds[out] = np.zeros(value.shape)
            else:
                bounds[out] = 1.01 * (mean_bound + k * U32 * mean_abs + U32 * value)
        elif op == "MaxPool":
            e = bound(node.input[0])
            attrs = qr.attributes(node)
            bounds[out] = qw.op_max_pool([qv.from_float(e, True)], attrs, 13).float64()
        else:
            raise NotImplementedError(f"no float32 error bound for {op}")
    return bounds


def _float32_holds(t: Exact) -> np.ndarray:
    """Elementwise: is the exact value a float32 (a dyadic with at most 24 significant bits)?"""
    def holds(v) -> bool:
        f = Fraction(int(v), t.den)
        return not f.denominator & (f.denominator - 1) and _significant_bits(f.numerator) <= FLOAT32_BITS

    return np.vectorize(holds, otypes=[bool])(t.num)


def _with_quantizer_outputs(path, folder):
    """The model with every QuantizeLinear output also a graph output (onnxruntime returns it)."""
    model = onnx.load(str(path))
    names = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    inits = {i.name: i for i in model.graph.initializer}
    types = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            zero = inits.get(node.input[2]) if len(node.input) > 2 else None
            types[node.output[0]] = zero.data_type if zero is not None else TensorProto.UINT8
    for name in names:
        model.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
    exposed = folder / f"{path.stem}_exposed.onnx"
    onnx.save(model, str(exposed))
    return exposed, names


def _tie_distance(node, env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|t - nearest k + 1/2|, |t|, scale) for t = x / s, the value QuantizeLinear rounds
    (before it adds the zero point)."""
    x, scale = env[node.input[0]], env[node.input[1]]
    scale = qo._per_axis(scale, x.num.ndim, qr.attributes(node).get("axis", 1), 0)
    p, q = qv.scaled_ratio(x, scale, qv.from_integers(0))
    # t - floor(t) - 1/2 = ((2p mod 2q) - q) / 2q
    distance = np.vectorize(lambda a, b: abs(Fraction(int(a) % int(b) - int(b) // 2, int(b))),
                            otypes=[object])(2 * p, 2 * q)
    magnitude = np.vectorize(lambda a, b: abs(Fraction(int(a), int(b))), otypes=[object])(p, q)
    return (distance.astype(np.float64), magnitude.astype(np.float64),
            np.broadcast_to(scale.float64(), x.shape))


QDQ_MODELS = [
    (qe.ort_qdq_mlp, {"activations": "uint8", "tie_samples": 64}),
    (qe.ort_qdq_mlp, {"activations": "int8", "per_channel": False, "tie_samples": 64}),
    (qe.ort_qdq_cnn, {"activations": "uint8", "tie_samples": 16}),
    (qe.ort_qdq_cnn, {"activations": "int8", "tie_samples": 16}),
    (qe.brevitas_mlp, {"export": "qcdq"}),
    (qe.brevitas_mlp, {"export": "qcdq", "scales": "float", "per_channel": True}),
    (qe.brevitas_cnn, {"pool": "trunc_avg", "export": "qcdq"}),
]


@pytest.mark.parametrize("builder, options", QDQ_MODELS,
                         ids=["ort_mlp_uint8", "ort_mlp_int8_per_tensor", "ort_cnn_uint8", "ort_cnn_int8",
                              "brevitas_qcdq_pow2", "brevitas_qcdq_float_per_channel", "brevitas_cnn_avg_qcdq"])
def test_qdq_model_against_onnxruntime(folder, builder, options):
    model = builder(folder, **options)
    onnx_model = onnx.load(str(model.path))
    env = qr.run(onnx_model, model.inputs, keep_all=True)
    bounds = _error_bounds(onnx_model, env)
    exposed, quantized = _with_quantizer_outputs(model.path, folder)
    import onnxruntime as ort
    options_ort = ort.SessionOptions()
    options_ort.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(exposed), options_ort, providers=["CPUExecutionProvider"])
    name_in = session.get_inputs()[0].name
    runs = [session.run(None, {name_in: model.inputs[i:i + 1]}) for i in range(len(model.inputs))]
    by_name = {o.name: np.concatenate([r[k] for r in runs]) for k, o in enumerate(session.get_outputs())}

    nodes = {n.output[0]: n for n in onnx_model.graph.node}
    agreed = np.ones(len(model.inputs), dtype=bool)  # samples whose quantizers all agree so far
    flips = 0
    for name in quantized:  # in graph order
        node = nodes[name]
        want = env[name].integers()
        got = by_name[name].astype(np.int64)
        differ = (got != want).reshape(len(got), -1)
        upstream_ok = agreed[:, None] & differ
        if upstream_ok.any():
            distance, magnitude, scale = _tie_distance(node, env)
            # float32's x is off by bound(x); x / s adds one rounding (u |x / s|) unless s is a
            # power of two, and onnxruntime may divide by s or multiply by 1 / s (two roundings)
            pow2 = np.vectorize(lambda v: qo._is_power_of_two(Fraction(v)), otypes=[bool])(scale)
            slack = bounds.get(node.input[0], np.zeros(want.shape)) / scale + np.where(pow2, 0.0, 2 * U32) * magnitude
            near_tie = (distance <= slack).reshape(len(got), -1)
            one_step = (np.abs(got - want) == 1).reshape(len(got), -1)
            unexplained = upstream_ok & ~(near_tie & one_step)
            assert not unexplained.any(), (
                f"{model.name}: {name} differs from onnxruntime by more than float32 can explain at "
                f"{np.argwhere(unexplained)[:5].tolist()}")
            flips += int(upstream_ok.sum())
        agreed &= ~differ.any(axis=1)
    out = onnx_model.graph.output[0].name
    exact, got = env[out].float64(), by_name[out].astype(np.float64)
    error = np.abs(got - exact).reshape(len(got), -1)[agreed]
    allowed = bounds[out] + U32 * np.abs(exact)  # and the float32 output's own rounding
    assert (error <= allowed.reshape(len(got), -1)[agreed]).all()
    assert agreed.mean() > 0.5, f"{model.name}: only {agreed.mean():.0%} of samples agree in every quantizer"
    if model.pow2_scales:  # float32 is exact throughout: no tie can flip
        assert flips == 0 and agreed.all()
    if model.name.startswith("ort_"):  # tie_samples sit on input ties: some must flip
        assert flips > 0


def test_int8_kws_equals_onnxruntime_recorded_output():
    """The MLPerf Tiny DS-CNN, int8 QDQ from TFLite (int8 input and output, per-channel
    weights, AveragePool, Softmax): onnxruntime's recorded int8 output, exactly."""
    path = qm.SHARED_MODELS / "mlperf_kws_dscnn_int8_qdq.onnx"
    io = np.load(path.with_suffix(".io.npz"))
    got = qr.run_output(path, io["input"])
    assert np.array_equal(got.integers(), io["output"].astype(np.int64))
