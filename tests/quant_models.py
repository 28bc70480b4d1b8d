"""The quantized models the tests import: built here, deterministically, into a folder.

Every builder writes one ONNX file and returns a `QuantModel`: its path, sample inputs
(samples on axis 0, each one a batch-1 input of the model) and a one-line summary of its
quantizers.  Four families:

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

import contextlib
import io
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


# --- sample inputs -----------------------------------------------------------------------


def _samples(seed: int, n: int, shape: tuple[int, ...], spread: float) -> np.ndarray:
    """``n`` float32 samples: normal with std ``spread``, then zeros and far-out values
    (+-8 spreads) so every quantizer's clamping is reached."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, spread, size=(n, *shape))
    if n >= 4:
        x[0] = 0.0
        x[1] = 8 * spread
        x[2] = -8 * spread
        x[3] = np.where(rng.random(shape) < 0.5, -8 * spread, 8 * spread)
    return x.astype(np.float32)


# --- Brevitas ----------------------------------------------------------------------------


def _quiet():
    """Brevitas and the torch exporter print progress and warnings; a test run shows none."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _brevitas_quantizers(scales: str, per_channel: bool, bias: str):
    """(weight, input, relu, bias) quantizer classes for ``scales`` 'pow2' or 'float'."""
    from brevitas import quant

    if scales == "pow2":
        if per_channel:
            raise ValueError("Brevitas has no plain per-channel power-of-two weight quantizer")
        weight, act_in, act_relu = (quant.Int8WeightPerTensorFixedPoint, quant.Int8ActPerTensorFixedPoint,
                                    quant.Uint8ActPerTensorFixedPoint)
    elif scales == "float":  # Brevitas's defaults
        weight = quant.Int8WeightPerChannelFloat if per_channel else quant.Int8WeightPerTensorFloat
        act_in, act_relu = quant.Int8ActPerTensorFloat, quant.Uint8ActPerTensorFloat
    else:
        raise ValueError(f"scales must be 'pow2' or 'float', not {scales!r}")
    biases = {"int32": quant.Int32Bias, "float": None}
    if bias not in biases:
        raise ValueError(f"bias must be 'int32' or 'float', not {bias!r}")
    return weight, act_in, act_relu, biases[bias]


def _train(module, x, labels, steps: int) -> None:
    import torch

    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), labels)
        loss.backward()
        optimiser.step()
    module.eval()


def _export_brevitas(module, example, path: Path, export: str, dynamo: bool | None, quantized_bias: bool) -> None:
    from brevitas.export import export_onnx_qcdq, export_qonnx

    exporters = {"qonnx": export_qonnx, "qcdq": export_onnx_qcdq}
    if export not in exporters:
        raise ValueError(f"export must be 'qonnx' or 'qcdq', not {export!r}")
    if dynamo is None:  # torch's default exporter, except where Brevitas refuses it
        dynamo = not (export == "qcdq" and quantized_bias)
    with _quiet():
        exporters[export](module, args=example, export_path=str(path), dynamo=dynamo)


def brevitas_mlp(directory: Path, *, scales: str = "pow2", bits: int = 8, per_channel: bool = False,
                 export: str = "qonnx", bias: str = "int32", dynamo: bool | None = None, steps: int = 20,
                 n_samples: int = 256, seed: int = 0) -> QuantModel:
    """A Brevitas jet-tagger-like MLP, 16-64-32-32-5: QuantIdentity on the input, then
    QuantLinear + QuantReLU three times and an output QuantLinear, trained ``steps`` Adam
    steps on seeded random data (labels from a fixed random linear map) and exported.

    Quantizers (``bits`` is every weight and activation width, 4 or 8 are the usual):
    * ``scales='pow2'``: weights Int8WeightPerTensorFixedPoint (signed, narrow, scale 2**-k),
      input Int8ActPerTensorFixedPoint (signed, 2**-k), ReLUs Uint8ActPerTensorFixedPoint
      (unsigned, 2**-k); every scale a power of two;
    * ``scales='float'``: Brevitas's defaults: weights Int8WeightPerTensorFloat, or
      Int8WeightPerChannelFloat with ``per_channel`` (one scale per output row), input
      Int8ActPerTensorFloat, ReLUs Uint8ActPerTensorFloat; no scale a power of two;
    * ``bias='int32'``: Int32Bias, 32-bit signed with scale input scale * weight scale (so
      power-of-two exactly when both are); ``bias='float'``: float32 biases, Brevitas's default.
    All rounding ROUND (ties to even), zero points 0.  ``export='qonnx'`` writes Quant nodes
    (domain qonnx.custom_op.general), ``'qcdq'`` QuantizeLinear/Clip/DequantizeLinear (opset
    with int8/uint8 and int32 for the biases).  ``dynamo`` picks torch's exporter (its
    default on this torch, the default here except for QCDQ with quantized biases, which
    Brevitas exports only through TorchScript) or the TorchScript one (Flatten, no Slice
    artefacts, faster).
    """
    import brevitas.nn as qnn
    import torch

    weight, act_in, act_relu, bias_quant = _brevitas_quantizers(scales, per_channel, bias)
    torch.manual_seed(seed)
    dims = (16, 64, 32, 32)
    layers: list[torch.nn.Module] = [qnn.QuantIdentity(act_quant=act_in, bit_width=bits, return_quant_tensor=True)]
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        layers.append(qnn.QuantLinear(fan_in, fan_out, bias=True, weight_quant=weight, weight_bit_width=bits,
                                      bias_quant=bias_quant, return_quant_tensor=True))
        layers.append(qnn.QuantReLU(act_quant=act_relu, bit_width=bits, return_quant_tensor=True))
    layers.append(qnn.QuantLinear(dims[-1], 5, bias=True, weight_quant=weight, weight_bit_width=bits,
                                  bias_quant=bias_quant, return_quant_tensor=False))
    module = torch.nn.Sequential(*layers)

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 16, generator=generator)
    labels = (x @ torch.randn(16, 5, generator=generator)).argmax(dim=1)
    _train(module, x, labels, steps)

    name = f"brevitas_mlp_{scales}{'_per_channel' if per_channel else ''}_{bits}b_{export}"
    path = Path(directory) / f"{name}.onnx"
    _export_brevitas(module, torch.randn(1, 16, generator=generator), path, export, dynamo, bias_quant is not None)
    summary = (f"{bits}-bit weights ({'per-channel' if per_channel else 'per-tensor'}) and activations, "
               f"{'power-of-two' if scales == 'pow2' else 'non-power-of-two'} scales, {bias} biases, {export}")
    return QuantModel(name, path, _samples(seed + 1, n_samples, (16,), 1.5), summary, scales == "pow2")


def brevitas_cnn(directory: Path, *, pool: str = "max", export: str = "qonnx", bits: int = 8,
                 dynamo: bool | None = None, steps: int = 10, n_samples: int = 64, seed: int = 0) -> QuantModel:
    """A small Brevitas CNN on 1x8x8 inputs with power-of-two scales: QuantIdentity
    (Int8ActPerTensorFixedPoint), QuantConv2d 1->4 3x3 pad 1 (Int8WeightPerTensorFixedPoint,
    Int32Bias), QuantReLU (Uint8ActPerTensorFixedPoint), a 2x2 pool, flatten, QuantLinear
    64->5 (same weight and bias quantizers); trained ``steps`` steps, exported.

    ``pool='max'``: torch MaxPool2d on the quantized ReLU output (no quantizer of its own);
    ``pool='trunc_avg'``: Brevitas TruncAvgPool2d: in QONNX AveragePool + Trunc (the 2x2
    window mean at scale s/4, ``bits`` + 2 bits, truncated back to ``bits`` bits at scale s,
    rounding 'round'), in QCDQ AveragePool + QuantizeLinear/Clip/DequantizeLinear at scale s.
    All scales powers of two, ``bits``-bit weights and activations, 32-bit biases.
    """
    import brevitas.nn as qnn
    import torch
    from brevitas import quant

    if pool not in ("max", "trunc_avg"):
        raise ValueError(f"pool must be 'max' or 'trunc_avg', not {pool!r}")
    torch.manual_seed(seed)
    layer = {"weight_quant": quant.Int8WeightPerTensorFixedPoint, "weight_bit_width": bits,
             "bias_quant": quant.Int32Bias}
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=quant.Int8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True),
        qnn.QuantConv2d(1, 4, 3, padding=1, return_quant_tensor=True, **layer),
        qnn.QuantReLU(act_quant=quant.Uint8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True),
        torch.nn.MaxPool2d(2) if pool == "max" else qnn.TruncAvgPool2d(2, return_quant_tensor=True),
        torch.nn.Flatten(),
        qnn.QuantLinear(4 * 4 * 4, 5, return_quant_tensor=False, **layer),
    )
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 1, 8, 8, generator=generator)
    labels = (x.reshape(128, -1) @ torch.randn(64, 5, generator=generator)).argmax(dim=1)
    _train(module, x, labels, steps)

    name = f"brevitas_cnn_{pool}_{bits}b_{export}"
    path = Path(directory) / f"{name}.onnx"
    _export_brevitas(module, torch.randn(1, 1, 8, 8, generator=generator), path, export, dynamo, True)
    summary = f"{bits}-bit weights and activations, power-of-two scales, int32 biases, {pool} pool, {export}"
    return QuantModel(name, path, _samples(seed + 1, n_samples, (1, 8, 8), 1.0), summary, True)


# --- onnxruntime quantize_static ---------------------------------------------------------


def _torch_float_onnx(module, example, path: Path) -> None:
    import torch

    with _quiet():
        torch.onnx.export(module, example, str(path), input_names=["x"], output_names=["y"],
                          opset_version=ONNX_OPSET, dynamo=False)


def _quantize_static(float_path: Path, path: Path, calibration: np.ndarray, activations: str,
                     per_channel: bool) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self):
            sample = next(self.samples, None)
            return None if sample is None else {"x": sample}

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    if activations not in types:
        raise ValueError(f"activations must be 'uint8' or 'int8', not {activations!r}")
    with _quiet():
        quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=types[activations],
                        weight_type=QuantType.QInt8)


def ort_qdq_mlp(directory: Path, *, activations: str = "uint8", per_channel: bool = True,
                n_samples: int = 256, tie_samples: int = 0, seed: int = 0) -> QuantModel:
    """A float torch MLP 16-32-16-5 (Gemm + Relu, seeded random weights), quantized by
    onnxruntime ``quantize_static`` on 64 calibration samples: QDQ format, int8 weights
    (per output channel with ``per_channel``, symmetric, zero point 0), ``activations``
    uint8 (asymmetric, nonzero zero points) or int8, int32 biases at input scale * weight
    scale, MinMax calibration, opset 13.  No scale is a power of two.  The last
    ``tie_samples`` of the samples sit (as near as float32 can) on rounding ties of the input
    quantizer, where a float32 execution may round the other way.
    """
    import torch

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16),
                                 torch.nn.ReLU(), torch.nn.Linear(16, 5)).eval()
    name = f"ort_qdq_mlp_{activations}{'_per_channel' if per_channel else ''}"
    return _ort_model(directory, name, module, (16,), activations, per_channel, n_samples, tie_samples, seed)


def ort_qdq_cnn(directory: Path, *, activations: str = "uint8", per_channel: bool = True,
                n_samples: int = 64, tie_samples: int = 0, seed: int = 0) -> QuantModel:
    """A float torch CNN on 1x8x8 inputs (Conv 1->4 3x3 pad 1, Relu, MaxPool 2x2, Flatten,
    Gemm 64->5), quantized by ``quantize_static`` like `ort_qdq_mlp` (QDQ, int8 per-channel
    weights, ``activations`` uint8/int8, int32 biases, ``tie_samples``).  No scale is a
    power of two.
    """
    import torch

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(64, 5)).eval()
    name = f"ort_qdq_cnn_{activations}{'_per_channel' if per_channel else ''}"
    return _ort_model(directory, name, module, (1, 8, 8), activations, per_channel, n_samples, tie_samples, seed)


def _ort_model(directory, name, module, shape, activations, per_channel, n_samples, tie_samples,
               seed) -> QuantModel:
    import torch

    directory = Path(directory)
    float_path = directory / f"{name}_float.onnx"
    path = directory / f"{name}.onnx"
    _torch_float_onnx(module, torch.zeros(1, *shape), float_path)
    calibration = np.random.default_rng(seed).normal(0.0, 1.0, size=(64, *shape)).astype(np.float32)
    _quantize_static(float_path, path, calibration, activations, per_channel)
    summary = (f"QDQ int8 weights ({'per-channel' if per_channel else 'per-tensor'}), {activations} "
               f"activations, int32 biases, non-power-of-two scales")
    samples = _samples(seed + 1, n_samples, shape, 1.0)
    if tie_samples:
        samples[-tie_samples:] = _near_input_ties(path, seed + 2, tie_samples, shape)
    return QuantModel(name, path, samples, summary, False, {"float_model": float_path})


def _near_input_ties(path: Path, seed: int, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``n`` samples whose every value is the float32 nearest to a rounding tie of the input
    QuantizeLinear, ``(k + 1/2 - zero point) * scale``: float32's ``x / scale`` may land on
    the tie and round to even where the exact value lies just beside it."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    first = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
                 and n.input[0] == model.graph.input[0].name)
    scale = float(inits[first.input[1]])
    zero = int(inits[first.input[2]]) if len(first.input) > 2 else 0
    lo, hi = (0, 255) if inits[first.input[2]].dtype == np.uint8 else (-128, 127)
    k = np.random.default_rng(seed).integers(lo, hi, size=(n, *shape))
    return ((k + 0.5 - zero) * scale).astype(np.float32)


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
