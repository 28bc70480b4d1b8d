"""hls4ml, the tool compile_and_emulate.py measures finegrain against, on the same model and
plan: the per-layer precisions the plan asks for (one type per tensor where the plan has
several), the model with finegrain's quantized constants for the matched-precision check, the
timed qonnx cleanup, convert, write and g++ build, predict's throughput, and how often two
tools' outputs agree.  hls4ml and qonnx are imported when a model is built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import compiler
from compiler.fixed import FixedType
from measure import Timing, repeated, timed


# --- hls4ml configuration from the plan -----------------------------------------------------


def hls_type(t: FixedType | None) -> str:
    """A finegrain format as an hls4ml precision string; None (exact) lets hls4ml infer it."""
    if t is None:
        return "auto"
    base = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{base}<{t.width},{t.int_bits},AP_{t.rounding.name},AP_{t.overflow.name}>"


def one_type(plan: compiler.Plan, name: str, role: str, merge: str) -> tuple[FixedType | None, str]:
    """The single format hls4ml gets for a planned tensor, and a note when the plan had several.

    ``merge`` is "widest" (the row format with the most integer bits) or "union" (most integer
    bits and most fraction bits: every row's values fit)."""
    spec = plan.spec(name)
    if spec is None:
        return plan.defaults.get(role), ""
    if spec.whole is not None:
        return spec.whole, ""
    if spec.elements is not None:
        raise SystemExit(f"tensor {name!r} has per-element formats; this bench maps only per-axis formats")
    types = [t for t in spec.axis_types if t is not None]
    kinds = sorted({str(t) for t in types})
    if merge == "widest":
        chosen = max(types, key=lambda t: (t.int_bits, t.width))
    else:
        ints = max(t.int_bits for t in types)
        fracs = max(t.frac_bits for t in types)
        chosen = FixedType(ints + fracs, ints, any(t.signed for t in types), types[0].rounding, types[0].overflow)
    note = f"`{name}`: {len(types)} per-axis formats ({', '.join(kinds)}) -> `{hls_type(chosen)}` ({merge})"
    return chosen, note


def hls4ml_types(onnx_model, plan: compiler.Plan, merge: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Per hls4ml layer name, the precisions the plan asks for; plus notes on what was merged.

    qonnx's cleanup renames nodes by type and order (Gemm k -> MatMul_k + Add_k, k-th Relu ->
    Relu_k, the input -> global_in); the names are checked against hls4ml's config later.
    The accumulator and Dense result stay "auto": hls4ml then infers exact widths, as finegrain
    does, and can fuse the bias Add into the Dense layer (it only does so while the result
    type is unspecified).
    """
    graph = onnx_model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise SystemExit(f"this bench maps one-input models; the model has inputs {inputs}")
    input_type, _ = one_type(plan, inputs[0], "input", merge)
    types = {"global_in": {"result": hls_type(input_type)}}
    notes = []
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    relus = [n for n in graph.node if n.op_type == "Relu"]
    for k, node in enumerate(gemms):
        weight, note_w = one_type(plan, node.input[1], "weight", merge)
        bias, note_b = one_type(plan, node.input[2], "bias", merge) if len(node.input) > 2 else (None, "")
        types[f"MatMul_{k}"] = {"weight": hls_type(weight), "bias": hls_type(bias), "accum": "auto", "result": "auto"}
        notes += [n for n in (note_w, note_b) if n]
    for k, node in enumerate(relus):
        out, note = one_type(plan, node.output[0], "activation", merge)
        types[f"Relu_{k}"] = {"result": hls_type(out)}
        notes += [note] if note else []
    return types, notes


def with_finegrain_constants(onnx_model, project):
    """A copy of the ONNX model whose planned weights and biases hold finegrain's quantized values."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    quantized = {}
    for t in project.graph.tensors.values():
        if t.is_constant and t.onnx_name and t.data is not None and t.formats is not None:
            values = np.asarray(t.data, dtype=np.float64) * 2.0 ** -t.data_frac
            if t.onnx_axes is not None:
                values = values.transpose(np.argsort(t.onnx_axes))
            quantized[t.onnx_name] = values
    for i, init in enumerate(model.graph.initializer):
        if init.name in quantized:
            dtype = numpy_helper.to_array(init).dtype
            values = quantized[init.name].astype(dtype)
            if not np.array_equal(values.astype(np.float64), quantized[init.name]):
                raise SystemExit(f"quantized {init.name!r} does not fit {dtype}")
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, init.name))
    return model


# --- hls4ml ---------------------------------------------------------------------------------


@dataclass
class HlsBuild:
    model: object  # hls4ml ModelGraph, compiled
    convert: float
    write: float
    compile: float
    layer_types: list[str]


def build_hls4ml(onnx_model, plan: compiler.Plan, output_dir: Path, merge: str) -> HlsBuild:
    """qonnx cleanup -> config from the plan -> convert -> write -> g++ build, each timed.

    hls4ml's public ``compile()`` is ``write()`` then ``_compile()``; they are timed apart so
    that writing is not counted twice.
    """
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    types, _ = hls4ml_types(onnx_model, plan, merge)
    start = time.perf_counter()
    model = cleanup_model(ModelWrapper(onnx_model))
    model = model.transform(ConvertToChannelsLastAndClean())
    model = model.transform(GemmToMatMul())
    model = cleanup_model(model)
    config = hls4ml.utils.config_from_onnx_model(model.model, granularity="name", backend="Vivado")
    for layer, precisions in types.items():
        if layer not in config["LayerName"]:
            raise SystemExit(f"hls4ml has no layer {layer!r}; its layers are {sorted(config['LayerName'])}")
        config["LayerName"][layer]["Precision"].update(precisions)
    hls_model = hls4ml.converters.convert_from_onnx_model(
        model.model, output_dir=str(output_dir), backend="Vivado", io_type="io_parallel", hls_config=config)
    convert = time.perf_counter() - start
    _, write = timed(hls_model.write)
    _, build = timed(hls_model._compile)
    layer_types = []
    for layer in hls_model.get_layers():
        names = ", ".join(f"{k}={v.precision}" for k, v in layer.types.items() if k != "index_t")
        layer_types.append(f"{layer.name} ({layer.class_name}): {names}")
    return HlsBuild(hls_model, convert, write, build, layer_types)


def time_predict(hls_model, x: np.ndarray, runs: int) -> tuple[np.ndarray, Timing]:
    y, timing = repeated(hls_model.predict, x, runs=runs)
    return np.asarray(y, dtype=np.float64).reshape(len(x), -1), timing


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    same_class = float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))
    identical = float(np.mean(np.all(a == b, axis=1)))
    return (f"argmax agrees on {same_class:.2%}, bit-identical rows {identical:.2%}, "
            f"max abs diff {np.max(np.abs(a - b)):.3g}")
