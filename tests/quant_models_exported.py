"""The quantized models exporters write, for the tests: Brevitas networks trained a few steps
on seeded random data and exported to QONNX or QCDQ (`brevitas_mlp`, `brevitas_cnn`), and float
torch networks quantized to QDQ by onnxruntime's ``quantize_static`` (`ort_qdq_mlp`,
`ort_qdq_cnn`), with their sample inputs.  torch, Brevitas and onnxruntime are imported by the
builders, when a model is built.

quant_models.py holds `QuantModel`, the runners and the hand-built graphs.  Import this module
as ``tests.quant_models_exported`` and that one as ``tests.quant_models``: the models built
here are ``tests.quant_models.QuantModel``, which the runners recognise by ``isinstance``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from tests.quant_models import ONNX_OPSET, QuantModel


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


def brevitas_cnn_shifted(directory: Path, *, steps: int = 10, n_samples: int = 64, seed: int = 0) -> QuantModel:
    """A small Brevitas CNN whose activation between the layers is quantized per channel with a
    zero point per channel: QuantIdentity (Int8ActPerTensorFloat), QuantConv2d 1->4 3x3 pad 1
    (Int8WeightPerChannelFloat, Int32Bias), QuantIdentity with ShiftedUint8ActPerTensorFloat at
    4 bits scaled per output channel (Brevitas learns a scale and a zero point per channel), a
    2x2 max pool, flatten, QuantLinear 64->5 (per-channel float weights, no bias) and an
    Int8ActPerTensorFloat output quantizer; trained ``steps`` steps, exported with export_qonnx.
    Scales are not powers of two."""
    import brevitas.nn as qnn
    import torch
    from brevitas import quant

    torch.manual_seed(seed)
    channels = 4
    per_channel = {"scaling_per_output_channel": True, "per_channel_broadcastable_shape": (1, channels, 1, 1),
                   "scaling_stats_permute_dims": (1, 0, 2, 3)}
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=quant.Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantConv2d(1, channels, 3, padding=1, weight_quant=quant.Int8WeightPerChannelFloat,
                        bias_quant=quant.Int32Bias, return_quant_tensor=True),
        qnn.QuantIdentity(act_quant=quant.ShiftedUint8ActPerTensorFloat, bit_width=4, return_quant_tensor=True,
                          **per_channel),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(channels * 16, 5, weight_quant=quant.Int8WeightPerChannelFloat, bias=False),
        qnn.QuantIdentity(act_quant=quant.Int8ActPerTensorFloat, return_quant_tensor=False),
    )
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 1, 8, 8, generator=generator)
    labels = (x.reshape(128, -1) @ torch.randn(64, 5, generator=generator)).argmax(dim=1)
    _train(module, x, labels, steps)
    path = Path(directory) / "brevitas_cnn_shifted_per_channel.onnx"
    _export_brevitas(module, torch.randn(1, 1, 8, 8, generator=generator), path, "qonnx", None, True)
    summary = "per-channel 4-bit activation with a zero point per channel, per-channel float weights, qonnx"
    return QuantModel("brevitas_cnn_shifted_per_channel", path, _samples(seed + 1, n_samples, (1, 8, 8), 1.0),
                      summary, False)


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
