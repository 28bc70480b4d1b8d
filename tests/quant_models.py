"""The quantized models the tests import: built here, deterministically, into a folder.

Every builder writes one ONNX file and returns a `QuantModel`: its path, sample inputs
(samples on axis 0, each one a batch-1 input of the model) and a one-line summary of its
quantizers.  Four families, the first two (written by Brevitas's exporters and onnxruntime's
quantizer) in quant_models_exported.py, the others here:

* Brevitas networks trained for a few steps on seeded random data and exported with
  ``export_qonnx`` (QONNX ``Quant``/``Trunc``) or ``export_onnx_qcdq`` (QuantizeLinear,
  Clip, DequantizeLinear): `brevitas_mlp` (jet-tagger-like 16-64-32-32-5) and `brevitas_cnn`;
* onnxruntime ``quantize_static`` models (QDQ, per-channel int8 weights, int32 biases):
  `ort_qdq_mlp`, `ort_qdq_cnn`;
* hand-built QONNX graphs, one quantizer property each (`HAND_CASES`, `hand_qonnx`,
  `hand_trunc`), in each domain real files use (`QUANT_DOMAINS`);
* malformed quantizers (`MALFORMED`, `malformed_quant`) that an importer must refuse.

`run_qonnx` and `run_onnxruntime` execute a model on a batch of samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# published quantized models the project may read (not copy): ../shared/models/README.md
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
QONNX_DOMAIN = "qonnx.custom_op.general"
# the domains Quant/BipolarQuant/Trunc appear in: today's qonnx, Brevitas's older exports, FINN's
QUANT_DOMAINS = (QONNX_DOMAIN, "onnx.brevitas", "finn.custom_op.general")
ONNX_OPSET = 13

# Quant's rounding_mode values (qonnx resolve_rounding_mode, plus Brevitas's ROUND_TO_ZERO,
# which qonnx's executor does not know; it is DOWN)
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "ROUND_TO_ZERO", "HALF_UP", "HALF_DOWN")


@dataclass(frozen=True)
class QuantModel:
    """A built model: ``inputs[i:i+1]`` is one sample of its single graph input."""

    name: str
    path: Path
    inputs: np.ndarray
    summary: str
    pow2_scales: bool  # every quantizer scale a power of two
    notes: dict = field(default_factory=dict)


# --- running them ------------------------------------------------------------------------


def run_qonnx(model: QuantModel | Path, inputs: np.ndarray | None = None) -> np.ndarray:
    """qonnx's ``execute_onnx`` (after qonnx's ``cleanup_model``: shape inference, constant
    folding, Quant nodes kept) on a batch of samples: all at once through qonnx's
    ``ChangeBatchSize`` when every constant Reshape target starts with the batch (1 or -1),
    which is what ChangeBatchSize rewrites; else one sample at a time."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    path, inputs = _path_and_inputs(model, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = ModelWrapper(str(path))
        targets = [wrapper.get_initializer(n.input[1]) for n in wrapper.graph.node if n.op_type == "Reshape"]
        batched = all(t is None or t.size == 0 or t.flat[0] in (1, -1) for t in targets)
        if batched:
            wrapper = wrapper.transform(ChangeBatchSize(len(inputs)))
        wrapper = cleanup_model(wrapper)
    name_in, name_out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    if batched:
        return execute_onnx(wrapper, {name_in: inputs})[name_out]
    return np.concatenate([execute_onnx(wrapper, {name_in: inputs[i:i + 1]})[name_out] for i in range(len(inputs))])


def run_onnxruntime(model: QuantModel | Path, inputs: np.ndarray | None = None) -> np.ndarray:
    """onnxruntime with every graph optimisation off, on each sample, stacked."""
    import onnxruntime as ort

    path, inputs = _path_and_inputs(model, inputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name_in = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name_in: inputs[i:i + 1]})[0] for i in range(len(inputs))])


def _path_and_inputs(model, inputs):
    if isinstance(model, QuantModel):
        return model.path, model.inputs if inputs is None else inputs
    return Path(model), inputs


# --- hand-built QONNX graphs -------------------------------------------------------------


@dataclass(frozen=True)
class QuantSpec:
    """One QONNX quantizer: ``Quant(x, scale, zero_point, bits)`` with these attributes, or
    ``BipolarQuant(x, scale)`` when ``bipolar``.  ``scale`` and ``zero_point`` are a scalar
    or a tuple broadcast along the tensor's last axis (per feature / per output column)."""

    bits: float = 4
    signed: bool = True
    narrow: bool = False
    rounding: str = "ROUND"
    scale: float | tuple = 0.25
    zero_point: float | tuple = 0.0
    bipolar: bool = False

    @property
    def pow2_scale(self) -> bool:
        scales = np.atleast_1d(np.asarray(self.scale, dtype=np.float64))
        return bool(np.all(scales > 0) and np.all(np.frexp(scales)[0] == 0.5))

    def __str__(self) -> str:
        scale = f"scale {self.scale}{'' if self.pow2_scale else ' (not pow2)'}"
        if self.bipolar:
            return f"BipolarQuant {scale}"
        sign = "signed" if self.signed else "unsigned"
        zero = f" zero point {self.zero_point}" if np.any(np.asarray(self.zero_point) != 0) else ""
        return f"{self.bits:g}-bit {sign}{' narrow' if self.narrow else ''} {self.rounding} {scale}{zero}"

    def integer_range(self) -> tuple[int, int]:
        bits = int(self.bits)
        if self.bipolar or (self.signed and bits == 1):
            return -1, 1
        if self.signed:
            return -(2 ** (bits - 1)) + int(self.narrow), 2 ** (bits - 1) - 1
        return 0, 2 ** bits - 1 - int(self.narrow)


# name -> (input quantizer, weight quantizer, output quantizer) of `hand_qonnx`'s layer
# x -> Quant -> MatMul(Quant(W)) -> Add(b) -> Quant.  Scales are powers of two (so qonnx's
# float32 execution is exact) except in 'non_pow2'.
_W4 = QuantSpec(bits=4, narrow=True, scale=0.125)
_OUT8 = QuantSpec(bits=8, scale=0.0625)
HAND_CASES: dict[str, tuple[QuantSpec, QuantSpec, QuantSpec]] = {
    **{f"rounding_{mode.lower()}": (QuantSpec(rounding=mode), QuantSpec(bits=4, narrow=True, scale=0.125,
                                                                         rounding=mode),
                                    QuantSpec(bits=8, scale=0.0625, rounding=mode))
       for mode in ROUNDING_MODES},
    "signed_narrow": (QuantSpec(bits=3, narrow=True, scale=0.5), _W4, _OUT8),
    "unsigned": (QuantSpec(bits=4, signed=False, scale=0.25), _W4, QuantSpec(bits=6, signed=False, scale=0.125)),
    "unsigned_narrow": (QuantSpec(bits=4, signed=False, narrow=True, scale=0.25), _W4,
                        QuantSpec(bits=6, signed=False, narrow=True, scale=0.125)),
    "bipolar": (QuantSpec(bipolar=True, scale=1.0), QuantSpec(bipolar=True, scale=0.5), _OUT8),
    "signed_1bit": (QuantSpec(bits=1, scale=0.5), QuantSpec(bits=1, scale=0.25), _OUT8),
    "unsigned_1bit": (QuantSpec(bits=1, signed=False, scale=1.0), _W4, _OUT8),
    "per_channel_weights": (QuantSpec(), QuantSpec(bits=4, narrow=True, scale=(0.5, 0.125, 0.25, 0.0625)), _OUT8),
    "per_feature_input": (QuantSpec(scale=(1.0, 0.5, 0.25, 0.125, 0.25, 0.5, 1.0, 2.0)), _W4,
                          QuantSpec(bits=10, scale=0.0625)),
    "zero_points": (QuantSpec(bits=4, signed=False, scale=0.25, zero_point=8.0),
                    QuantSpec(bits=4, scale=0.125, zero_point=(1.0, -2.0, 0.0, 3.0)),
                    QuantSpec(bits=8, signed=False, scale=0.125, zero_point=100.0)),
    # a clamp range per channel on an activation: per-feature zero points on the input (even, so
    # the host's rounding is unchanged) and per-column ones on the output; then per-column scales
    # of different powers of two with an unsigned narrow range
    "per_channel_zero_points": (QuantSpec(bits=6, signed=False, scale=0.25,
                                          zero_point=(32.0, 30.0, 34.0, 28.0, 32.0, 36.0, 30.0, 32.0)),
                                _W4,
                                QuantSpec(bits=8, signed=False, scale=0.0625, zero_point=(100.0, 90.0, 120.0, 128.0))),
    "per_channel_narrow_scales": (QuantSpec(bits=4, signed=False, narrow=True, scale=(0.5, 0.25, 0.125, 0.25) * 2), _W4,
                                  QuantSpec(bits=5, signed=False, narrow=True, scale=(0.125, 0.25, 0.0625, 0.5))),
    "wide": (QuantSpec(bits=12, scale=2.0 ** -8), QuantSpec(bits=8, narrow=True, scale=2.0 ** -7),
             QuantSpec(bits=16, scale=2.0 ** -12)),
    "non_pow2": (QuantSpec(bits=8, scale=0.3), QuantSpec(bits=8, narrow=True, scale=(0.011, 0.007, 0.013, 0.02)),
                 QuantSpec(bits=8, scale=0.37)),
}
HAND_FEATURES, HAND_UNITS = 8, 4


def _float_init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _quant_node(x: str, out: str, spec: QuantSpec, domain: str, inits: list) -> onnx.NodeProto:
    inits.append(_float_init(f"{out}_scale", spec.scale))
    if spec.bipolar:
        return helper.make_node("BipolarQuant", [x, f"{out}_scale"], [out], name=out, domain=domain)
    inits.append(_float_init(f"{out}_zero_point", spec.zero_point))
    inits.append(_float_init(f"{out}_bits", spec.bits))
    return helper.make_node("Quant", [x, f"{out}_scale", f"{out}_zero_point", f"{out}_bits"], [out], name=out,
                            domain=domain, signed=int(spec.signed), narrow=int(spec.narrow),
                            rounding_mode=spec.rounding)


GRID_SAMPLES = 256


def _grid_samples(spec: QuantSpec, rng, n_random: int, shape: tuple[int, ...]) -> np.ndarray:
    """Every half step of ``spec``'s grid from two steps below its range to two above (ties
    and clamping), each on all features at once, then ``n_random`` random samples on a grid
    of 2**-10 steps.  A wide
    grid keeps its 32 half steps at each end and ``GRID_SAMPLES`` spread between them."""
    lo, hi = spec.integer_range()
    halves = np.arange(2 * lo - 4, 2 * hi + 5) / 2.0
    if halves.size > GRID_SAMPLES + 64:
        middle = np.linspace(32, halves.size - 33, GRID_SAMPLES).astype(int)
        halves = np.concatenate([halves[:32], halves[middle], halves[-32:]])
    scale = np.broadcast_to(np.asarray(spec.scale, dtype=np.float64), shape)
    zero = np.broadcast_to(np.asarray(spec.zero_point, dtype=np.float64), shape)
    grid = (halves[:, None] - zero.reshape(1, -1)) * scale.reshape(1, -1)
    # random samples on a grid 2**-10 of a step fine, so float32 holds x / scale + zero point
    # (and +-0.5) exactly: qonnx's float32 execution is then exact
    steps = rng.integers(int(2 * lo - 4) * 512, int(2 * hi + 4) * 512 + 1, size=(n_random, *shape)) / 1024.0
    random = (steps - zero) * scale
    samples = np.concatenate([grid.reshape(-1, *shape), random])
    return samples.astype(np.float32)


def _opset_imports(domain: str, domain_version: int) -> list:
    return [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(domain, domain_version)]


def _save(graph: onnx.GraphProto, path: Path, domain: str, domain_version: int = 1) -> None:
    model = helper.make_model(graph, opset_imports=_opset_imports(domain, domain_version),
                              producer_name="finegrain tests")
    onnx.save(model, str(path))


def hand_qonnx(directory: Path, case: str, *, domain: str = QONNX_DOMAIN, n_random: int = 64,
               seed: int = 0) -> QuantModel:
    """One dense layer around the quantizers of ``HAND_CASES[case]``: input x [1, 8] ->
    Quant (input) -> MatMul with Quant(W [8, 4]) -> Add(b) -> Quant (output) -> y [1, 4].

    W is drawn on half steps of its quantizer's grid (so its rounding mode decides ties) and
    b on a 2**-6 grid.  The samples are every half step of the input quantizer's grid from
    two steps below its range to two above (each on all 8 features), then random ones.
    The quantizer summary is in ``HAND_CASES``: e.g. 'rounding_half_up' uses HALF_UP on all
    three quantizers, 'per_channel_weights' one scale per output column, 'zero_points'
    unsigned input/output with zero points 8 and 100 and per-column weight zero points.
    """
    act, weight, out = HAND_CASES[case]
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    w_lo, w_hi = weight.integer_range()
    w_scale = np.broadcast_to(np.asarray(weight.scale, dtype=np.float64), (HAND_UNITS,))
    w_zero = np.broadcast_to(np.asarray(weight.zero_point, dtype=np.float64), (HAND_UNITS,))
    halves = rng.integers(2 * w_lo - 2, 2 * w_hi + 3, size=(HAND_FEATURES, HAND_UNITS)) / 2.0
    inits.append(_float_init("W", (halves - w_zero) * w_scale))
    inits.append(_float_init("b", rng.integers(-64, 65, size=HAND_UNITS) / 64.0))
    nodes = [
        _quant_node("x", "x_quant", act, domain, inits),
        _quant_node("W", "W_quant", weight, domain, inits),
        helper.make_node("MatMul", ["x_quant", "W_quant"], ["dense"], name="dense"),
        helper.make_node("Add", ["dense", "b"], ["dense_bias"], name="dense_bias"),
        _quant_node("dense_bias", "y", out, domain, inits),
    ]
    graph = helper.make_graph(nodes, f"hand_{case}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, HAND_FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, HAND_UNITS])], inits)
    name = f"hand_{case}_{domain.replace('.', '_')}"
    path = Path(directory) / f"{name}.onnx"
    _save(graph, path, domain)
    summary = f"input {act}, weight {weight}, output {out}"
    pow2 = all(spec.pow2_scale for spec in (act, weight, out))
    return QuantModel(name, path, _grid_samples(act, rng, n_random, (HAND_FEATURES,)), summary, pow2)


def hand_trunc(directory: Path, *, version: int = 2, rounding: str = "FLOOR", signed: bool = True,
               narrow: bool = False, bits: int = 6, domain: str = QONNX_DOMAIN, n_random: int = 32,
               seed: int = 0) -> QuantModel:
    """x [1, 2, 4, 4] -> Quant (8-bit signed, scale 2**-4) -> AveragePool 2x2 -> Trunc -> y,
    the form Brevitas's TruncAvgPool2d exports: the pool's output is at scale 2**-6 with
    10 bits; Trunc brings it to ``bits`` bits with ``rounding``.

    ``version=2`` (the domain's opset 2, qonnx Trunc_v2): inputs (x, scale 2**-6, zero
    point 0, input bits 10, output scale 2**-6 * 2**(10 - bits), output bits), attributes
    signed/narrow; clamps to the output range.  ``version=1`` (Trunc_v1): inputs (x, scale,
    zero point, input bits, output bits), no clamp, output at the input scale divided by
    2**(10 - bits) (the old export's convention).
    """
    rng = np.random.default_rng(seed)
    act = QuantSpec(bits=8, scale=2.0 ** -4)
    inits: list[onnx.TensorProto] = []
    quant = _quant_node("x", "x_quant", act, domain, inits)
    pool = helper.make_node("AveragePool", ["x_quant"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    inits += [_float_init("trunc_scale", 2.0 ** -6), _float_init("trunc_zero_point", 0.0),
              _float_init("trunc_in_bits", 10.0), _float_init("trunc_out_bits", float(bits))]
    if version == 2:
        inits.append(_float_init("trunc_out_scale", 2.0 ** -6 * 2.0 ** (10 - bits)))
        trunc = helper.make_node("Trunc", ["pool", "trunc_scale", "trunc_zero_point", "trunc_in_bits",
                                           "trunc_out_scale", "trunc_out_bits"], ["y"], name="trunc", domain=domain,
                                 rounding_mode=rounding, signed=int(signed), narrow=int(narrow))
    elif version == 1:
        trunc = helper.make_node("Trunc", ["pool", "trunc_scale", "trunc_zero_point", "trunc_in_bits",
                                           "trunc_out_bits"], ["y"], name="trunc", domain=domain,
                                 rounding_mode=rounding)
    else:
        raise ValueError(f"Trunc version must be 1 or 2, not {version!r}")
    graph = helper.make_graph([quant, pool, trunc], f"hand_trunc_v{version}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], inits)
    name = f"hand_trunc_v{version}_{rounding.lower()}_{domain.replace('.', '_')}"
    path = Path(directory) / f"{name}.onnx"
    _save(graph, path, domain, version)
    # whole-grid inputs: every window sum is a multiple of 2**-4, so every Trunc input
    # residue (ties included) appears
    x = rng.integers(-130, 130, size=(n_random, 2, 4, 4)) / 16.0
    summary = (f"8-bit signed input at 2**-4, Trunc v{version} 10 -> {bits} bits, {rounding}, "
               f"{'signed' if signed else 'unsigned'}{', narrow' if narrow else ''}, power-of-two scales")
    return QuantModel(name, path, x.astype(np.float32), summary, True)


def _along(axis: int, *values: float) -> tuple:
    """``values`` as a nested tuple of four axes, all of length 1 but ``axis``: a scale or zero
    point per output channel of a conv weight (axis 0) or per channel of an NCHW tensor (axis 1)."""
    shape = [1, 1, 1, 1]
    shape[axis] = len(values)

    def nested(a):
        return tuple(nested(b) for b in a) if isinstance(a, list) else a

    return nested(np.reshape(values, shape).tolist())


def hand_qonnx_conv(directory: Path, *, n_random: int = 48, seed: int = 0) -> QuantModel:
    """Two convolutions with a clamp range per channel between them: x [1, 2, 6, 6] -> Quant
    (8-bit signed, 2**-4) -> Conv 3x3, pads 1, with Quant(W [4, 2, 3, 3]) (4-bit narrow, one
    power-of-two scale per output channel) and a float bias on a 2**-4 grid -> Quant 'mid'
    (6-bit unsigned, one zero point and one power-of-two scale per channel: axis 1) -> Conv 1x1
    with Quant(W2 [2, 4, 1, 1]) -> Quant (8-bit signed, 2**-3) -> y [1, 2, 6, 6].

    Every scale is a power of two and every sum stays below 2**24 steps, so qonnx's float32
    execution is exact.  The inputs reach beyond the input quantizer's range on both sides."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    act = QuantSpec(bits=8, scale=2.0 ** -4)
    weight = QuantSpec(bits=4, narrow=True, scale=_along(0, 0.25, 0.125, 0.25, 0.5))
    mid = QuantSpec(bits=6, signed=False, scale=_along(1, 0.25, 0.125, 0.5, 0.25),
                    zero_point=_along(1, 10.0, 20.0, 0.0, 34.0))
    weight2, out = QuantSpec(bits=4, scale=0.25), QuantSpec(bits=8, scale=0.125)
    w_scale = np.asarray(weight.scale)
    inits.append(_float_init("W", rng.integers(-7, 8, size=(4, 2, 3, 3)) * w_scale))
    inits.append(_float_init("B", rng.integers(-32, 33, size=4) / 16.0))
    inits.append(_float_init("W2", rng.integers(-8, 8, size=(2, 4, 1, 1)) * 0.25))
    nodes = [
        _quant_node("x", "x_quant", act, QONNX_DOMAIN, inits),
        _quant_node("W", "W_quant", weight, QONNX_DOMAIN, inits),
        helper.make_node("Conv", ["x_quant", "W_quant", "B"], ["conv1"], name="conv1", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        _quant_node("conv1", "mid", mid, QONNX_DOMAIN, inits),
        _quant_node("W2", "W2_quant", weight2, QONNX_DOMAIN, inits),
        helper.make_node("Conv", ["mid", "W2_quant"], ["conv2"], name="conv2", kernel_shape=[1, 1]),
        _quant_node("conv2", "y", out, QONNX_DOMAIN, inits),
    ]
    graph = helper.make_graph(nodes, "hand_conv_clamp_per_channel",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], inits)
    path = Path(directory) / "hand_conv_clamp_per_channel.onnx"
    _save(graph, path, QONNX_DOMAIN)
    x = rng.integers(-140, 141, size=(n_random, 2, 6, 6)) / 16.0
    summary = f"input {act}, conv weight per channel, mid {mid}, conv2 weight {weight2}, output {out}"
    return QuantModel("hand_conv_clamp_per_channel", path, x.astype(np.float32), summary, True)


# --- malformed quantizers ----------------------------------------------------------------

# defect -> what is wrong with the Quant node 'bad_quant' on the input (an importer must
# refuse each, naming the node)
MALFORMED = {
    "bits_zero": "bit width 0",
    "bits_fraction": "bit width 2.5",
    "bits_vector": "a bit width per feature, not a scalar",
    "scale_zero": "scale 0",
    "scale_negative": "scale -0.25",
    "scale_not_constant": "scale computed from the input (ReduceMax of |x|), not a constant",
    "zero_point_out_of_range": "zero point 20 for a signed 4-bit quantizer (range -8..7)",
    "zero_point_fraction": "zero point 0.5",
    "scale_shape": "scale of shape [3] on a tensor of shape [1, 8]",
    "bipolar_scale_zero": "BipolarQuant with scale 0",
}


def malformed_quant(directory: Path, defect: str, *, domain: str = QONNX_DOMAIN) -> QuantModel:
    """x [1, 8] -> Quant 'bad_quant' (4-bit signed, scale 0.25, except for ``defect``, see
    ``MALFORMED``) -> MatMul with a float constant -> y [1, 2].  The files are valid ONNX
    (onnx.checker passes); only the quantizer's values are wrong."""
    if defect not in MALFORMED:
        raise ValueError(f"defect must be one of {sorted(MALFORMED)}, not {defect!r}")
    spec = {"bits_zero": QuantSpec(bits=0), "bits_fraction": QuantSpec(bits=2.5),
            "scale_zero": QuantSpec(scale=0.0), "scale_negative": QuantSpec(scale=-0.25),
            "zero_point_out_of_range": QuantSpec(zero_point=20.0), "zero_point_fraction": QuantSpec(zero_point=0.5),
            "scale_shape": QuantSpec(scale=(0.25, 0.5, 0.125)),
            "bipolar_scale_zero": QuantSpec(bipolar=True, scale=0.0)}.get(defect, QuantSpec())
    inits: list[onnx.TensorProto] = [_float_init("W", np.arange(16).reshape(8, 2) / 8.0)]
    nodes = [_quant_node("x", "bad_quant", spec, domain, inits)]
    if defect == "bits_vector":
        inits = [i for i in inits if i.name != "bad_quant_bits"] + [_float_init("bad_quant_bits", [4.0] * 8)]
    if defect == "scale_not_constant":
        inits = [i for i in inits if i.name != "bad_quant_scale"]
        nodes[:0] = [helper.make_node("Abs", ["x"], ["x_abs"], name="x_abs"),
                     helper.make_node("ReduceMax", ["x_abs"], ["x_max"], name="x_max", keepdims=0),
                     helper.make_node("Div", ["x_max", "seven"], ["bad_quant_scale"], name="bad_quant_scale")]
        inits.append(_float_init("seven", 7.0))
    nodes.append(helper.make_node("MatMul", ["bad_quant", "W"], ["y"], name="dense"))
    graph = helper.make_graph(nodes, f"malformed_{defect}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    name = f"malformed_{defect}"
    path = Path(directory) / f"{name}.onnx"
    _save(graph, path, domain)
    x = np.random.default_rng(0).normal(0.0, 1.0, size=(4, 8)).astype(np.float32)
    return QuantModel(name, path, x, MALFORMED[defect], False)
