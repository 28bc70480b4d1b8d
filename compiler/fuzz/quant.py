"""Quantized fuzz cases: a random case's model with its float tensors quantized in the graph
(QONNX ``Quant``/``BipolarQuant``, or ONNX ``QuantizeLinear``/``DequantizeLinear`` pairs), no
plan, and inputs drawn from the input quantizer's grid.

A quantized case is a `random_case` (its layers cut before its final Sigmoid or Softmax, which
the exact reference does not cover, in half of the cases; its BatchNorms are covered,
`reference.inverse_sqrt`) with a ``quant`` entry::

    {"format": "qonnx" | "qdq", "domain": QONNX domain, "opset": ONNX opset (qdq),
     "tensors": {name: quantizer}}

naming the input ``x``, constants ``l<i>.<role>`` and layer outputs ``t<i>`` as `generate.py`
does.  A quantizer is a dict: ``op`` ("quant", "bipolar", "qdq" or "trunc": `_QuantGen.trunc`), ``scale`` (a list of
float32 values: one, or one per index along ``axis``, an axis of the tensor without batch),
``zero`` (integers, as many as ``scale`` or one), and for "quant" ``bits``, ``signed``,
``narrow``, ``rounding``; for "qdq" ``dtype`` (int8, uint8, int32) and ``codes`` (a constant
stored as integer codes with a lone DequantizeLinear).  `quant_exact.py` gives their exact
values; `quant_model` writes them into the ONNX graph.

What is drawn stays inside what docs/import.md says finegrain reads (per-channel zero points
and bipolar zero points only on constants, weight scales per output channel, the input's zero
point only where it does not change the rounding); `QUANT_LIMITS` lists the refusals that
are documented limits all the same.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .generate import _Gen, constants, shapes_of

DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")
ROUNDINGS = ("ROUND", "HALF_EVEN", "FLOOR", "CEIL", "DOWN", "ROUND_TO_ZERO", "HALF_UP", "HALF_DOWN")
QDQ_OPSETS = (13, 17, 19, 21)
QDQ_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(2 ** 31), 2 ** 31 - 1)}
_QDQ_TYPES = {"int8": (np.int8, TensorProto.INT8), "uint8": (np.uint8, TensorProto.UINT8),
              "int32": (np.int32, TensorProto.INT32)}
# Refusals of quantized models that docs/import.md documents (pattern -> where); tests/test_fuzz_limits.py
# holds a case for each that the compiler refuses with it.
QUANT_LIMITS = {
    r"rounding_mode 'UP' is not a QONNX rounding mode": "docs/import.md, Limits and errors",
    r"its first rounding has no clamp, and the model's quantizers do not bound": "docs/import.md, Limits and errors",
}


def integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """QONNX's min_int/max_int."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - int(narrow)


def code_range(spec: dict) -> tuple[int, int]:
    """The codes a quantizer can give (the sign for bipolar ones)."""
    if spec["op"] == "bipolar" or spec["op"] == "quant" and spec["bits"] == 1 and spec["signed"]:
        return -1, 1
    if spec["op"] == "qdq":
        return QDQ_RANGES[spec["dtype"]]
    return integer_range(spec["bits"], spec["signed"], spec["narrow"])


def _f32(x) -> list[float]:
    return np.asarray(x, dtype=np.float32).astype(np.float64).reshape(-1).tolist()


class _QuantGen:
    def __init__(self, rng: np.random.Generator, form: str, spread: np.random.Generator):
        self.g = _Gen(rng, wide=False)
        self.form = form
        self.spread = spread  # draws added after the first ones (the cases drawn before stay as they were)

    def scale(self, magnitude: float) -> float:
        """A positive float32 scale near ``magnitude``: a power of two, a short decimal or any."""
        g = self.g
        s = max(float(magnitude), 2.0 ** -14) * 2.0 ** float(g.rng.uniform(-1, 1))
        kind = g.pick(["pow2", "pow2", "decimal", "any", "any"])
        if kind == "pow2":
            return 2.0 ** round(np.log2(s))
        if kind == "decimal":  # 0.0371, 0.3, ...: what a hand-written model holds
            digits = int(g.rng.integers(1, 4))
            s = float(f"{s:.{digits}g}")
        return _f32(s)[0]

    def trunc(self, channels: int) -> dict:
        """A QONNX Trunc on an activation (Brevitas's TruncAvgPool2d, docs/import.md): ``x / scale``
        rounded half to even, unclamped, then rounded by ``2**(in_bits - out_bits)`` (v1, the output
        scale is ``scale``) or by ``2**round(log2(out_scale / scale))`` into ``out_bits`` (v2, with
        ``signed``, ``narrow`` and ``out_scale``: a power-of-two multiple of ``scale``, or near one).
        Which version the model holds is its domain's opset (``quant["domain_version"]``); the spec
        carries both versions' fields."""
        g = self.g
        per_channel = channels > 1 and g.chance(0.2)
        n = channels if per_channel else 1
        base = [self.scale(2.0 ** float(g.rng.uniform(-6, 0))) for _ in range(n)]
        in_bits = int(g.rng.integers(4, 17))
        out_bits = int(g.rng.integers(1, in_bits + 1))
        shift = int(g.rng.integers(0, 6))
        out_scale = [s * 2.0 ** shift for s in base]
        if g.chance(0.3):  # not an exact power-of-two multiple: qonnx rounds the log2
            out_scale = _f32(np.asarray(out_scale) * float(g.rng.uniform(0.8, 1.2)))
        return {"op": "trunc", "scale": base, "zero": [0], "axis": 0 if per_channel else None, "in_bits": in_bits,
                "out_bits": out_bits, "out_scale": _f32(out_scale), "signed": int(g.chance(0.7)),
                "narrow": int(g.chance(0.2)),
                "rounding": g.pick(["FLOOR", "FLOOR", "ROUND", "CEIL", "HALF_UP", "DOWN"])}

    def spec(self, role: str, values: np.ndarray | None, axis: int | None, channels: int,
             scale: list[float] | None = None) -> dict:
        """A quantizer for a tensor of ``role`` (input, weight, bias, activation); ``values``
        (constants) set the scale unless ``scale`` is given, ``axis``/``channels`` say where it
        may vary."""
        g = self.g
        per_channel = axis is not None and channels > 1 and g.chance(0.5 if role in ("weight", "bias") else 0.3)
        n = channels if per_channel else 1
        if values is not None:
            a = np.abs(np.asarray(values, dtype=np.float64))
            peaks = np.moveaxis(a, axis, 0).reshape(channels, -1).max(axis=1) if per_channel else \
                np.array([a.max() if a.size else 1.0])
        else:
            peaks = np.full(n, 2.0 ** float(g.rng.uniform(-3, 3)))
        where = axis if per_channel else None
        if self.form == "qdq":
            dtype = "int32" if role == "bias" else ("int8" if g.chance(0.6) else "uint8")
            lo, hi = QDQ_RANGES[dtype]
            if scale is None or len(scale) != n:
                scale = [self.scale(p / (2 ** 20 if role == "bias" else 127)) for p in peaks]
            zero = [0] * n
            if role == "weight" and g.chance(0.3):
                zero = [int(g.rng.integers(lo, hi + 1)) for _ in range(n)]
            elif role in ("input", "activation") and g.chance(0.6 if dtype == "uint8" else 0.3):
                zero = [int(g.rng.integers(lo, hi + 1))] * n  # one zero point for every channel
            if per_channel and role in ("input", "activation"):
                zero = [0] * n if g.chance(0.5) else self.zero_per_channel(zero, n, lo, hi, None)
            return {"op": "qdq", "dtype": dtype, "scale": scale, "zero": zero, "axis": where,
                    "codes": role in ("weight", "bias") and g.chance(0.5)}
        if role != "bias" and g.chance(0.12):  # one bit: BipolarQuant, or a signed 1-bit Quant (bipolar too)
            scale = [self.scale(p) for p in peaks]
            if g.chance(0.5) or role == "input":
                return {"op": "bipolar", "scale": scale, "zero": [0], "axis": where}
            zero = [int(g.rng.integers(-1, 1))] if role == "weight" and g.chance(0.3) else [0]
            return {"op": "quant", "bits": 1, "signed": 1, "narrow": 0, "rounding": "ROUND", "scale": scale,
                    "zero": zero, "axis": where}
        bits = int(g.rng.integers(10, 25)) if role == "bias" else int(g.pick([2, 3, 4, 4, 5, 6, 8, 8, 8, 12]))
        signed = int(role == "bias" or g.chance(0.85 if role == "weight" else 0.6))
        narrow = int(g.chance(0.3))
        rounding = g.pick(ROUNDINGS) if not g.chance(0.01) else "UP"
        lo, hi = integer_range(bits, bool(signed), bool(narrow))
        if scale is None or len(scale) != n:
            scale = [self.scale(p / max(hi, 1)) for p in peaks]
        zero = [0]
        if role == "weight" and g.chance(0.25):
            zero = [int(g.rng.integers(lo, hi + 1)) for _ in range(n)]
        elif role in ("input", "activation") and g.chance(0.3 if signed else 0.6):
            zero = [int(g.rng.integers(lo, hi + 1))]
            if role == "input" and not _zero_keeps_rounding(zero[0], rounding):
                zero = [0]
        if per_channel and role in ("input", "activation"):
            if g.chance(0.5):
                zero, narrow = [0], narrow * signed  # symmetric: one clamp range for every channel
            else:  # a clamp range per channel (zero points, or scales of different powers of two)
                zero = self.zero_per_channel(zero, n, lo, hi, rounding if role == "input" else None)
        return {"op": "quant", "bits": bits, "signed": signed, "narrow": narrow, "rounding": rounding,
                "scale": scale, "zero": zero, "axis": where}

    def zero_per_channel(self, zero: list[int], n: int, lo: int, hi: int, rounding: str | None) -> list[int]:
        """Mostly one zero point per channel (``n``) near ``zero``'s (the same for every channel),
        within ``lo..hi``, drawn from the spread stream when that is not 0.  With ``rounding`` (a
        QONNX Quant on the graph input) each must keep that rounding (docs/import.md)."""
        if not any(zero) or self.spread.random() < 0.3:
            return zero
        steps = self.spread.integers(-3, 4, size=n) * (1 if rounding is None else 2)
        spread = [int(np.clip(zero[0] + d, lo, hi)) for d in steps]
        return zero if rounding is not None and not all(_zero_keeps_rounding(z, rounding) for z in spread) else spread


def _zero_keeps_rounding(zero: int, rounding: str) -> bool:
    """Whether R(v + z) == R(v) + z for every v: docs/import.md, the input limit at its end."""
    if zero == 0 or rounding in ("FLOOR", "CEIL"):
        return True
    return rounding in ("ROUND", "HALF_EVEN") and zero % 2 == 0


def quantized(case: dict) -> dict:
    """``case`` as a quantized model (module docstring), drawn from its seed apart from the
    generator's own draws."""
    rng = np.random.default_rng([case.get("seed", 0), 19])
    form = "qonnx" if rng.random() < 0.6 else "qdq"
    qg = _QuantGen(rng, form, np.random.default_rng([case.get("seed", 0), 47]))
    g = qg.g
    layers = list(case["layers"])
    # a function between layers ("table") is kept in half of the cases, the model cut before it in
    # the others (so that the reference covers them)
    ends = ("sigmoid", "softmax") if np.random.default_rng([case.get("seed", 0), 29]).random() < 0.5 else (
        "sigmoid", "softmax", "table")
    cut = next((i for i, layer in enumerate(layers) if layer["op"] in ends), len(layers))
    # the generator's Sigmoid/Softmax ends the model: kept in half of the cases (a table look-up on
    # the quantized values, not compared with the reference: csim and sim against the emulator)
    table = 0 < cut == len(layers) - 1 and np.random.default_rng([case.get("seed", 0), 23]).random() < 0.5
    layers = [_rational_root(g, layer) if layer["op"] == "bn" else layer for layer in layers[:cut + table]] or [
        {"op": "relu", "src": [0]}]
    out = {k: v for k, v in case.items() if k not in ("plan", "arrays", "inputs", "reuse", "arch")}
    out.update(layers=layers, export="helper", plan={"defaults": {}, "tensors": {}}, arrays={})
    quant = {"format": form, "tensors": {}}
    if form == "qonnx":
        quant["domain"] = g.pick(DOMAINS)
    else:
        quant["opset"] = int(g.pick([o for o in QDQ_OPSETS if o <= onnx.defs.onnx_opset_version()]))
    out["quant"] = quant
    tensors = quant["tensors"]
    shapes = shapes_of(out)
    tensors["x"] = qg.spec("input", None, 0 if len(shapes[0]) > 1 or shapes[0][0] > 1 else None, shapes[0][0])
    last = len(layers) - 1
    planned = constants(out)
    for i, layer in enumerate(layers):
        for name, role, shape, axis in planned:
            key = name.split(".")[1]
            # an Add's float constant would need a plan entry (docs/import.md): only biases stay float
            if name.split(".")[0] != f"l{i}" or not (key != "bias" or g.chance(0.6)):
                continue
            stored = np.asarray(layer[key], dtype=np.float64)
            if layer.get("form") == "matmul" and key == "weight":
                stored = stored.T
            scale = _product_scale(tensors, layer, i) if key == "bias" and g.chance(0.7) else None
            tensors[name] = qg.spec("weight" if role == "weight" else "bias", stored, axis, shape[axis], scale)
        if layer["op"] in ("sigmoid", "softmax"):
            continue  # the last layer's table gives the output its format (a "table" layer may have a quantizer)
        if g.chance(0.75 if i == last else 0.55):
            channels = shapes[i + 1][0]
            tensors[f"t{i}"] = qg.trunc(channels) if form == "qonnx" and g.chance(0.2) else qg.spec(
                "activation", None, 0, channels)
    if any(spec["op"] == "trunc" for spec in tensors.values()) and g.chance(0.5):
        quant["domain_version"] = 2  # Trunc v2 (six inputs): the version is the domain's opset
    out["inputs"] = quant_inputs(g, out, 8)
    return out


def _rational_root(g: _Gen, layer: dict) -> dict:
    """A BatchNorm as drawn, or (half the time) with ``eps = 0`` and each variance the square of
    a short dyadic number, so that ``scale / sqrt(var)`` is rational: products then land on
    rounding ties exactly, which an irrational factor never does (a factor like 1/3 is not
    exact in float64)."""
    if not g.chance(0.5):
        return layer
    roots = g.rng.integers(1, 13, size=len(layer["var"])) / 2.0 ** g.rng.integers(-1, 4, size=len(layer["var"]))
    return {**layer, "eps": 0.0, "var": (roots ** 2).tolist()}


def _product_scale(tensors: dict, layer: dict, i: str) -> list[float] | None:
    """float32(s_x * s_w) per output channel, as a bias's scale (onnxruntime, Brevitas Int32Bias)
    when the layer's input and weight have one scale per tensor and per channel."""
    src = layer["src"][0]
    x = tensors.get("x" if src == 0 else f"t{src - 1}")
    w = tensors.get(f"l{i}.weight")
    if x is None or w is None or x.get("axis") is not None:
        return None
    return _f32(np.float64(x["scale"][0]) * np.asarray(w["scale"], dtype=np.float64))


def quant_inputs(g: _Gen, case: dict, count: int) -> list:
    """float32 input vectors: the input quantizer's extremes, zero, its rounding ties (exact
    ones for power-of-two scales), its grid, random values in and beyond its range."""
    spec = case["quant"]["tensors"]["x"]
    shape = case["input_shape"]
    lo_c, hi_c = code_range(spec)
    zero = spec["zero"][0]
    s = min(spec["scale"])
    lo, hi = s * (lo_c - zero), max(spec["scale"]) * (hi_c - zero)
    r = g.rng
    vectors = [np.full(shape, lo), np.full(shape, hi), np.zeros(shape)]
    while len(vectors) < count:
        kind = g.pick(["random", "ties", "grid", "outside", "near"])
        codes = r.integers(lo_c, hi_c + 1, size=shape) - zero
        if kind == "random":
            v = r.uniform(lo, hi, size=shape)
        elif kind == "ties":
            v = (codes + np.where(r.random(size=shape) < 0.5, 0.5, -0.5)) * s
        elif kind == "grid":
            v = codes * s
        elif kind == "near":  # one float32 step either side of a tie
            v = np.nextafter(np.float32((codes + 0.5) * s), np.float32(np.where(r.random(size=shape) < 0.5, -1e30,
                                                                                     1e30)))
        else:
            span = hi - lo + s
            v = r.uniform(lo - span / 2, hi + span / 2, size=shape)
        vectors.append(v)
    return [np.asarray(v, dtype=np.float32).astype(np.float64).tolist() for v in vectors[:count]]


def prune(case: dict) -> None:
    """Drop the quantizers of tensors the case no longer has (after shrinking cut layers)."""
    names = {"x"} | {name for name, *_ in constants(case)} | {f"t{i}" for i in range(len(case["layers"]))}
    tensors = case["quant"]["tensors"]
    for name in [n for n in tensors if n not in names]:
        del tensors[name]


def candidates(case: dict):
    """Simpler quantized variants for the shrinker: a quantizer dropped (activations, biases),
    one scale in place of per-channel ones, scales and zero points made plain."""
    import copy

    for name, spec in case["quant"]["tensors"].items():
        if name.startswith("t") or name.endswith(".bias") or name.endswith(".const"):
            c = copy.deepcopy(case)
            del c["quant"]["tensors"][name]
            yield c
        if spec.get("axis") is not None:
            c = copy.deepcopy(case)
            s = c["quant"]["tensors"][name]
            s.update(axis=None, scale=s["scale"][:1], zero=s["zero"][:1])
            yield c
        if any(spec["zero"]):
            c = copy.deepcopy(case)
            c["quant"]["tensors"][name]["zero"] = [0] * len(spec["zero"])
            yield c


# --- ONNX ---------------------------------------------------------------------------------

def _param_shape(spec: dict, rank: int, axis_offset: int) -> list[int]:
    """A QONNX parameter's shape: a scalar, or full rank varying along the quantizer's axis."""
    if spec.get("axis") is None:
        return []
    shape = [1] * rank
    shape[spec["axis"] + axis_offset] = len(spec["scale"])
    return shape


def _quantizer(spec: dict, quant: dict, src: str, out: str, rank: int, activation: bool, inits: list) -> list:
    """The nodes of one quantizer reading ``src`` and writing ``out`` (``rank`` with the batch
    axis for activations); their constants are appended to ``inits``."""
    offset = 1 if activation else 0

    def const(suffix, values, dtype=np.float32, shape=None):
        a = np.asarray(values, dtype=dtype)
        a = a.reshape(shape) if shape is not None else a
        inits.append(numpy_helper.from_array(a, f"{out}.{suffix}"))
        return f"{out}.{suffix}"

    if spec["op"] == "trunc":
        shape = _param_shape(spec, rank, offset)
        ins = [src, const("scale", spec["scale"], shape=shape), const("zero", 0.0, shape=[]),
               const("in_bits", spec["in_bits"], shape=[])]
        attrs = {"rounding_mode": spec["rounding"]}
        if quant.get("domain_version", 1) >= 2:
            ins.append(const("out_scale", spec["out_scale"], shape=shape))
            attrs.update(signed=spec["signed"], narrow=spec["narrow"])
        ins.append(const("out_bits", spec["out_bits"], shape=[]))
        return [helper.make_node("Trunc", ins, [out], name=f"{out}.trunc", domain=quant["domain"], **attrs)]
    if spec["op"] in ("quant", "bipolar"):
        shape = _param_shape(spec, rank, offset)
        scale = const("scale", spec["scale"], shape=shape or [])
        domain = quant["domain"]
        if spec["op"] == "bipolar":
            return [helper.make_node("BipolarQuant", [src, scale], [out], name=f"{out}.quant", domain=domain)]
        zero_shape = shape if len(spec["zero"]) > 1 else []
        ins = [src, scale, const("zero", spec["zero"], shape=zero_shape), const("bits", spec["bits"], shape=[])]
        return [helper.make_node("Quant", ins, [out], name=f"{out}.quant", domain=domain, signed=spec["signed"],
                                 narrow=spec["narrow"], rounding_mode=spec["rounding"])]
    np_type, _ = _QDQ_TYPES[spec["dtype"]]
    per_axis = spec.get("axis") is not None
    shape = [len(spec["scale"])] if per_axis else []
    zero = spec["zero"] if per_axis else spec["zero"][:1]
    scale = const("scale", spec["scale"], shape=shape)
    zp = const("zero", np.broadcast_to(zero, shape or [1]).reshape(shape), dtype=np_type, shape=shape)
    attrs = {"axis": spec["axis"] + offset} if per_axis else {}
    codes = f"{out}.codes"
    nodes = [helper.make_node("DequantizeLinear", [codes, scale, zp], [out], name=f"{out}.dequantize", **attrs)]
    if spec.get("codes") and not activation:
        return nodes  # the caller stores the constant's codes as ``codes``
    return [helper.make_node("QuantizeLinear", [src, scale, zp], [codes], name=f"{out}.quantize", **attrs), *nodes]


def quant_model(case: dict, name: str = "fuzz") -> onnx.ModelProto:
    """The case's float model (onnx_model.helper_model) with its quantizers in the graph."""
    from .onnx_model import helper_model
    from .quant_exact import codes_of

    model = helper_model(case, name)
    graph = model.graph
    quant = case["quant"]
    specs = quant["tensors"]
    inits = {t.name: t for t in graph.initializer}
    shapes = shapes_of(case)
    front, extra_inits, after = [], [], {}
    for tensor, spec in specs.items():
        if tensor == "x":
            front += _quantizer(spec, quant, "x", "x.q", len(shapes[0]) + 1, True, extra_inits)
        elif tensor in inits:
            init = inits[tensor]
            values = numpy_helper.to_array(init)
            if spec["op"] == "qdq" and spec.get("codes"):
                codes = np.asarray(codes_of(spec, values), dtype=np.int64).astype(_QDQ_TYPES[spec["dtype"]][0])
                graph.initializer.remove(init)
                extra_inits.append(numpy_helper.from_array(codes, f"{tensor}.codes"))
            else:
                init.name = f"{tensor}.f"
            front += _quantizer(spec, quant, f"{tensor}.f", tensor, values.ndim, False, extra_inits)
        else:
            after[tensor] = _quantizer(spec, quant, f"{tensor}.f", tensor, len(shapes[int(tensor[1:]) + 1]) + 1,
                                       True, extra_inits)
    nodes = list(front)
    for node in graph.node:
        if "x" in specs:
            node.input[:] = ["x.q" if i == "x" else i for i in node.input]
        quantized_outputs = [o for o in node.output if o in after]
        node.output[:] = [f"{o}.f" if o in after else o for o in node.output]
        nodes.append(node)
        for o in quantized_outputs:
            nodes += after[o]
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend(extra_inits)
    opsets = [helper.make_opsetid("", quant.get("opset", 13))]
    if quant["format"] == "qonnx":
        opsets.append(helper.make_opsetid(quant["domain"], quant.get("domain_version", 1)))
    model.ClearField("opset_import")
    model.opset_import.extend(opsets)
    return model
