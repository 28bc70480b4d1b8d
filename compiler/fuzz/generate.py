"""Random cases from a seed: a small model (layers with explicit float weights), a bit plan
over every granularity and scheme, and input vectors (random, the format's extremes,
rounding ties, out of range).

A case is plain JSON (see `case.py`), so a failing one can be shrunk and replayed without
this module.  Every layer names its output ``t<i>`` and its constants ``l<i>.<role>``; value
0 is the input ``x``.  Shapes here never include the batch axis.
"""

from __future__ import annotations

import numpy as np

from ..table_functions import BY_ONNX_OP

ROUNDINGS = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV", "CEIL")
OVERFLOWS = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
# Layers that compute (the plan's default activation applies to their output).
COMPUTING = frozenset({"dense", "conv", "add", "mul", "addc", "mulc", "relu", "leaky", "clip", "avgpool", "gavgpool",
                       "bn"})
# Layers the exact reference does not cover (Softmax; BatchNorm folds in float64).
UNREFERENCED = frozenset({"softmax", "bn"})
TABLE_LAYERS = ("sigmoid", "softmax", "table")
# "table" layers: an elementwise function between layers (compiler/table_functions.py), its
# ONNX op and attributes as drawn here
TABLE_FUNCTIONS = {"Sigmoid": {}, "Tanh": {}, "HardSigmoid": {"alpha": (0.2, 1 / 6, 0.3), "beta": (0.5, 0.4)},
                   "HardSwish": {}, "Softplus": {}, "Softsign": {}, "Elu": {"alpha": (1.0, 0.5, 1.5)},
                   "Selu": {}}
TABLE_SHARE = 0.08  # of the layers drawn
# "gate" layers: a product of two activations (x times a function of x as SiLU, x times another
# layer's output as a GLU, or x * x), drawn from a stream of their own
GATE_SHARE = 0.07
# of the gates on a value with a spatial part, the share that are a squeeze-and-excitation: the
# value times (or plus) a per-channel function of its global pool, a [C, 1, ..] operand
# broadcast over the positions; drawn from a stream of its own
EXCITE_SHARE = 0.5


def fmt(width: int, int_bits: int, signed: bool = True, rounding: str = "TRN", overflow: str = "WRAP") -> str:
    return f"{'' if signed else 'u'}fixed<{width},{int_bits},{rounding},{overflow}>"


class _Gen:
    def __init__(self, rng: np.random.Generator, wide: bool, side: np.random.Generator | None = None,
                 gates: np.random.Generator | None = None, excite: np.random.Generator | None = None):
        self.rng = rng
        self.wide = wide
        # draws added after a seed's cases were recorded (the "table" layers, then the "gate"
        # layers, then the excitations) come from these, so that a case without them is the one
        # the seed always gave
        self.side = side
        self.gates = gates
        self.excite = excite

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def weights(self, shape) -> list:
        """float32-exact values: normal floats, or dyadic ones (rounding ties for narrow formats)."""
        if self.chance(0.3):
            q = int(self.rng.integers(0, 7))
            a = self.rng.integers(-3 * 2 ** q, 3 * 2 ** q + 1, size=shape) / 2.0 ** q
        else:
            a = self.rng.normal(scale=self.pick([0.25, 0.7, 2.0]), size=shape)
        if self.chance(0.1):
            a = a * self.pick([1e-4, 1e3])  # all round to 0, or all saturate
        return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()

    def format(self, role: str) -> str:
        r = self.rng
        if self.wide and self.chance(0.15):
            width = int(r.integers(33, 90 if role != "input" else 64))
        else:
            width = int(r.integers(1 if role != "input" else 2, 17))
        int_bits = int(r.integers(-3, min(width, 10) + 4)) if self.chance(0.85) else int(r.integers(-12, width + 12))
        signed = self.chance(0.8) if role != "weight" else self.chance(0.9)
        return fmt(width, int_bits, signed, self.pick(ROUNDINGS), self.pick(OVERFLOWS))

    def pow2(self) -> str:
        emax = int(self.rng.integers(-4, 4))
        return f"pow2<{emax - int(self.rng.integers(0, 8))},{emax}>"


# --- model ------------------------------------------------------------------------------

def _conv_out(size, k, s, p0, p1):
    return (size + p0 + p1 - k) // s + 1


def _pool_out(size, k, s, p0, p1, ceil):
    span = size + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p0:
        out -= 1
    return out


def layer_shape(layer: dict, shapes: list) -> list[int]:
    """The output shape of ``layer`` given the shapes of the values so far."""
    op, x = layer["op"], shapes[layer["src"][0]]
    if op == "dense":
        return [len(layer["weight"])]
    if op == "conv":
        w = np.asarray(layer["weight"])
        n = w.ndim - 2
        return [w.shape[0], *(_conv_out(x[1 + i], w.shape[2 + i], layer["strides"][i], layer["pads"][i],
                                        layer["pads"][n + i]) for i in range(n))]
    if op in ("maxpool", "avgpool"):
        n, k = len(x) - 1, layer["kernel"]
        return [x[0], *(_pool_out(x[1 + i], k[i], layer["strides"][i], layer["pads"][i], layer["pads"][n + i],
                                  layer["ceil_mode"]) for i in range(n))]
    if op in ("gmaxpool", "gavgpool"):
        return [x[0]] + [1] * (len(x) - 1)
    if op in ("add", "mul"):  # numpy's broadcasting, as ONNX's (an excitation's [C, 1, ..] operand)
        return list(np.broadcast_shapes(tuple(x), tuple(shapes[layer["src"][1]])))
    if op == "concat":
        return [x[0] + shapes[layer["src"][1]][0], *x[1:]]
    if op == "flatten":
        return [int(np.prod(x))]
    if op == "reshape":
        return list(layer["shape"])
    if op == "transpose":
        return [x[p] for p in layer["perm"]]
    return list(x)


def shapes_of(case: dict) -> list[list[int]]:
    shapes = [list(case["input_shape"])]
    for layer in case["layers"]:
        shapes.append(layer_shape(layer, shapes))
    return shapes


def _channel_const(g: _Gen, shape) -> list:
    """A constant for Add/Mul by a constant: per channel ([C,1,..]) or the whole shape."""
    if len(shape) > 1 and g.chance(0.5):
        return g.weights([shape[0]] + [1] * (len(shape) - 1))
    return g.weights(list(shape))


def _layer(g: _Gen, op: str, src: int, shape: list[int]) -> dict:
    r = g.rng
    layer = {"op": op, "src": [src]}
    if op == "dense":
        out = int(r.integers(1, 7))
        layer.update(weight=g.weights([out, shape[0]]), bias=g.weights([out]) if g.chance(0.8) else None,
                     form=g.pick(["gemm", "gemm", "matmul"]))
    elif op == "conv":
        n = len(shape) - 1
        c = shape[0]
        groups = g.pick([d for d in range(1, c + 1) if c % d == 0]) if g.chance(0.3) else 1
        out = groups * int(r.integers(1, 3 if groups > 1 else 5))
        kernel = [int(r.integers(1, min(3, s) + 1)) for s in shape[1:]]
        pads = [int(r.integers(0, k)) for k in kernel] * 2 if g.chance(0.5) else [0] * (2 * n)
        strides = [int(r.integers(1, 3)) for _ in range(n)]
        layer.update(weight=g.weights([out, c // groups, *kernel]), bias=g.weights([out]) if g.chance(0.8) else None,
                     strides=strides, pads=pads, groups=groups)
    elif op in ("maxpool", "avgpool"):
        n = len(shape) - 1
        kernel = [int(r.integers(1, min(3, s) + 1)) for s in shape[1:]]
        strides = [int(r.integers(1, 3)) for _ in range(n)]
        pads = [int(r.integers(0, k // 2 + 1)) for k in kernel] * 2 if g.chance(0.4) else [0] * (2 * n)
        layer.update(kernel=kernel, strides=strides, pads=pads, ceil_mode=int(g.chance(0.3)))
    elif op == "leaky":
        layer["alpha"] = float(np.float32(g.pick([0.01, 0.1, 0.2, 0.3, 1 / 3])))
    elif op == "clip":
        lo = float(np.float32(g.pick([0.0, -1.0, -0.5, -2.0, 0.25, -0.3])))
        layer.update(low=lo, high=float(np.float32(lo + g.pick([0.5, 1.0, 2.0, 6.0, 1.7]))))
    elif op in ("addc", "mulc"):
        layer["const"] = _channel_const(g, shape)
    elif op == "table":
        side = _Gen(g.side or g.rng, g.wide)
        function = side.pick(sorted(TABLE_FUNCTIONS))
        layer.update(function=function, attrs={k: float(np.float32(side.pick(list(v))))
                                               for k, v in TABLE_FUNCTIONS[function].items()})
    elif op == "bn":
        c = shape[0]
        layer.update(scale=g.weights([c]), bias=g.weights([c]), mean=g.weights([c]),
                     var=np.abs(np.asarray(g.weights([c]), dtype=np.float32)).astype(np.float64).tolist(), eps=1e-5)
    elif op == "transpose":
        perm = list(range(len(shape)))
        i, j = (int(v) for v in r.choice(len(shape), 2, replace=False))
        perm[i], perm[j] = perm[j], perm[i]
        layer["perm"] = perm
    elif op == "reshape":
        layer["shape"] = [shape[0], int(np.prod(shape[1:]))] if len(shape) == 3 else [int(np.prod(shape))]
    return layer


def _same_shape_branch(g: _Gen, src: int, shape: list[int]) -> dict:
    """A layer from ``src`` whose output has ``shape``: the other side of a residual Add."""
    op = g.pick(["relu", "mulc", "addc", "leaky", "lin"])
    if op != "lin":
        return _layer(g, op, src, shape)
    if len(shape) == 1:
        layer = _layer(g, "dense", src, shape)
        layer["weight"] = g.weights([shape[0], shape[0]])
        layer["bias"] = g.weights([shape[0]]) if layer["bias"] is not None else None
        return layer
    n = len(shape) - 1
    kernel = [g.pick([1, 3]) if s >= 3 else 1 for s in shape[1:]]
    return {"op": "conv", "src": [src], "weight": g.weights([shape[0], shape[0], *kernel]),
            "bias": g.weights([shape[0]]) if g.chance(0.7) else None, "strides": [1] * n,
            "pads": [k // 2 for k in kernel] * 2, "groups": 1}


def _gate_operand(g: _Gen, src: int, shape: list[int]) -> dict | None:
    """The other factor of a gate on ``src``: a function of it (SiLU's sigmoid), another layer
    of it (a GLU), or None for ``src`` itself (a square)."""
    kind = g.pick(["table", "table", "branch", "square"])
    if kind == "square":
        return None
    return _layer(g, "table", src, shape) if kind == "table" else _same_shape_branch(g, src, shape)


def _excitation(g: _Gen, src: int, shape: list[int], add) -> int:
    """The per-channel operand of a squeeze-and-excitation on ``src`` (shape [C, ...]): its
    global pool, perhaps a 1x1 convolution mixing the channels, perhaps a table function
    (the sigmoid of an SE block); ``add`` appends a layer and returns its index."""
    cur = add({"op": "gavgpool" if g.chance(0.7) else "gmaxpool", "src": [src]})
    n, c = len(shape) - 1, shape[0]
    if g.chance(0.6):
        cur = add({"op": "conv", "src": [cur], "weight": g.weights([c, c] + [1] * n),
                   "bias": g.weights([c]) if g.chance(0.7) else None, "strides": [1] * n, "pads": [0] * (2 * n),
                   "groups": 1})
    if g.chance(0.7):
        cur = add(_layer(g, "table", cur, [c] + [1] * n))
    return cur


def random_model(g: _Gen, max_layers: int) -> dict:
    r = g.rng
    kind = g.pick(["mlp", "mlp", "conv1d", "conv2d"])
    if kind == "mlp":
        shape = [int(r.integers(1, 7))]
    elif kind == "conv1d":
        shape = [int(r.integers(1, 4)), int(r.integers(2, 9))]
    else:
        shape = [int(r.integers(1, 4)), int(r.integers(2, 6)), int(r.integers(2, 6))]
    case = {"input_shape": shape, "layers": []}
    shapes, layers = [shape], case["layers"]

    def add(layer):
        layers.append(layer)
        shapes.append(layer_shape(layer, shapes))
        return len(shapes) - 1

    cur = 0
    for _ in range(int(r.integers(1, max_layers + 1))):
        shape = shapes[cur]
        elementwise = ["relu", "leaky", "clip", "addc", "mulc", "residual", "concat"]
        if len(shape) == 1:
            ops = ["dense", "dense", "dense", "bn", *elementwise]
        else:
            ops = ["conv", "conv", "conv", "maxpool", "avgpool", "gmaxpool", "gavgpool", "bn", "flatten",
                   "transpose", "reshape", *elementwise]
        op = g.pick(ops)
        if g.side is not None and g.side.random() < TABLE_SHARE:
            op = "table"
        if op == "bn" and not (layers and layers[-1]["op"] in ("dense", "conv") and g.chance(0.7)) and g.chance(0.5):
            op = "relu"  # BatchNorm mostly after a layer it folds into
        if op != "table" and g.gates is not None and g.gates.random() < GATE_SHARE:
            op = "gate"  # (not in place of a table: a seed's table layers stay what they were)
        if op == "gate" and int(np.prod(shape[1:])) > 1 and g.excite is not None and g.excite.random() < EXCITE_SHARE:
            e = _Gen(g.excite, g.wide)
            other = _excitation(e, cur, shape, add)
            src = [cur, other] if e.chance(0.5) else [other, cur]
            cur = add({"op": "mul" if e.chance(0.75) else "add", "src": src})
        elif op == "gate":
            other = _gate_operand(_Gen(g.gates, g.wide), cur, shape)
            other = cur if other is None else add(other)
            cur = add({"op": "mul", "src": [cur, other] if g.gates.random() < 0.5 else [other, cur]})
        elif op == "residual":
            branch = add(_same_shape_branch(g, cur, shape))
            cur = add({"op": "add", "src": [cur, branch] if g.chance(0.5) else [branch, cur]})
        elif op == "concat":
            other = _same_shape_branch(g, cur, shape) if g.chance(0.5) else None
            if other is None:
                other = _layer(g, "dense" if len(shape) == 1 else "conv", cur, shape)
                if other["op"] == "conv":  # same spatial size: stride 1, 'same' padding, odd kernel
                    n = len(shape) - 1
                    kernel = [g.pick([1, 3]) if s >= 3 else 1 for s in shape[1:]]
                    other.update(weight=g.weights([len(other["weight"]), shape[0], *kernel]), strides=[1] * n,
                                 pads=[k // 2 for k in kernel] * 2, groups=1)
            branch = add(other)
            cur = add({"op": "concat", "src": [cur, branch] if g.chance(0.5) else [branch, cur]})
        else:
            cur = add(_layer(g, op, cur, shape))
    if len(shapes[cur]) > 1 and g.chance(0.6):
        cur = add({"op": "flatten", "src": [cur]})
        cur = add(_layer(g, "dense", cur, shapes[cur]))
    if len(shapes[cur]) == 1 and g.chance(0.15):
        cur = add({"op": g.pick(["sigmoid", "softmax"]), "src": [cur]})
    elif g.chance(0.05):
        cur = add({"op": "sigmoid", "src": [cur]})
    return case


# --- plan -------------------------------------------------------------------------------

def constants(case: dict) -> list[tuple[str, str, list[int], int]]:
    """(ONNX name, role, stored shape, output axis as stored) of every planned constant."""
    out = []
    for i, layer in enumerate(case["layers"]):
        op = layer["op"]
        if op in ("dense", "conv"):
            w = np.asarray(layer["weight"])
            matmul = layer.get("form") == "matmul"
            out.append((f"l{i}.weight", "weight", list(w.T.shape) if matmul else list(w.shape), 1 if matmul else 0))
            if layer.get("bias") is not None:
                out.append((f"l{i}.bias", "bias", [w.shape[0]], 0))
        elif op in ("addc", "mulc"):
            c = np.asarray(layer["const"])
            out.append((f"l{i}.const", "bias" if op == "addc" else "weight", list(c.shape), 0))
    return out


def _axis_entry(g: _Gen, role: str, n: int, axis: int) -> dict:
    return {"axis": axis, "formats": [g.format(role) if role not in ("weight", "bias") or g.chance(0.85) else g.pow2()
                                      for _ in range(n)]}


def _elements_entry(g: _Gen, shape: list[int]) -> dict:
    r = g.rng
    bits = r.integers(0, 13, size=shape)
    bits[r.random(size=shape) < 0.25] = 0  # pruned
    return {"bits": bits.tolist(), "int_bits": r.integers(-3, 6, size=shape).tolist(),
            "signed": (r.random(size=shape) < 0.85).astype(int).tolist(),
            "rounding": g.pick(ROUNDINGS), "overflow": g.pick(OVERFLOWS)}


def _weight_entry(g: _Gen, name: str, role: str, shape: list[int], axis: int, case: dict):
    choice = g.pick(["tensor", "axis", "elements", "pow2", "mix", "codebook", "default"])
    if choice == "tensor":
        return g.format(role)
    if choice == "axis":
        return _axis_entry(g, role, shape[axis], axis)
    if choice == "elements":
        case["arrays"][name] = _elements_entry(g, shape)
        return {"elements": name}
    if choice == "pow2":
        return g.pow2()
    if choice == "mix" and role == "weight" and len(shape) >= 2:
        k = int(g.rng.integers(1, 4))
        shares = g.rng.integers(1, 5, size=k)
        rows = [round(float(s) / float(shares.sum()), 6) for s in shares]
        rows[-1] = round(1 - sum(rows[:-1]), 6)
        return {"axis": axis, "mix": [{"format": g.format(role) if g.chance(0.7) else g.pow2(), "rows": s}
                                      for s in rows], "assign": g.pick(["variance", "order"])}
    if choice == "codebook" and role == "weight":
        width = int(g.rng.integers(2, 8))
        int_bits = int(g.rng.integers(-1, 3))
        lsb = 2.0 ** (int_bits - width)
        codes = g.rng.choice(np.arange(-2 ** (width - 1), 2 ** (width - 1)),
                             size=min(2 ** width, int(g.rng.integers(1, 6))), replace=False)
        return {"codebook": {"centres": [float(c) * lsb for c in codes], "format": fmt(width, int_bits)}}
    return None


def _table_key(layer: dict) -> str:
    """The plan's name of a "table" layer's function (its tables' keys are NAME_input, NAME_output)."""
    return BY_ONNX_OP[layer["function"]].name


def random_plan(g: _Gen, case: dict) -> dict:
    case["arrays"] = {}
    defaults = {"input": g.format("input"), "weight": g.format("weight") if g.chance(0.8) else g.pow2(),
                "bias": g.format("bias") if g.chance(0.9) else g.pow2(),
                "activation": None if g.chance(0.5) else g.format("activation")}
    tensors = {}
    if g.chance(0.3):
        tensors["x"] = _axis_entry(g, "input", case["input_shape"][0], 1) if g.chance(0.5) else g.format("input")
    for name, role, shape, axis in constants(case):
        if g.chance(0.6):
            entry = _weight_entry(g, name, role, shape, axis, case)
            if entry is not None:
                tensors[name] = entry
    shapes = shapes_of(case)
    last = len(case["layers"]) - 1
    for i, layer in enumerate(case["layers"]):
        if layer["op"] in TABLE_LAYERS or not g.chance(0.25):
            if layer["op"] == "table" and g.chance(0.3):
                # a table's output: one format for the tensor, its entries at most 64 bits (an
                # input's widths: below 64)
                tensors[f"t{i}"] = g.format("input")
            continue
        nxt = case["layers"][i + 1]["op"] if i < last else None
        if nxt == "bn":
            continue  # the value BatchNorm folds away
        if g.chance(0.5) or len(shapes[i + 1]) == 0:
            tensors[f"t{i}"] = g.format("activation")
        else:
            tensors[f"t{i}"] = _axis_entry(g, "activation", shapes[i + 1][0], 1)
    plan = {"defaults": defaults, "tensors": tensors}
    if any(layer["op"] in TABLE_LAYERS for layer in case["layers"]) and g.chance(0.6):
        tables = {}
        if g.chance(0.5):
            w = int(g.rng.integers(4, 15))
            value = fmt(w, int(g.rng.integers(2, 6)), True, "TRN", "SAT")  # drawn before the key, as always
            functions = sorted({_table_key(layer) for layer in case["layers"] if layer["op"] == "table"})
            key = f"{g.pick(functions)}_input" if functions and g.chance(0.6) else (
                "sigmoid_input" if g.chance(0.5) else "exp_input")
            tables[key] = value
        if g.chance(0.5):
            tables["inv_bits"] = int(g.rng.integers(4, 14))
        plan["tables"] = tables
    return plan


# --- inputs -----------------------------------------------------------------------------

def format_range(text: str) -> tuple[float, float, float]:
    """(min, max, lsb) of a format string."""
    inner = text[text.index("<") + 1:-1].split(",")
    width, int_bits = int(inner[0]), int(inner[1])
    lsb = 2.0 ** (int_bits - width)
    if text.startswith("u"):
        return 0.0, (2 ** width - 1) * lsb, lsb
    return -(2 ** (width - 1)) * lsb, (2 ** (width - 1) - 1) * lsb, lsb


def random_inputs(g: _Gen, case: dict, count: int) -> list:
    shape = case["input_shape"]
    entry = case["plan"]["tensors"].get("x", case["plan"]["defaults"]["input"])
    text = entry if isinstance(entry, str) else entry["formats"][0]
    lo, hi, lsb = format_range(text)
    vectors = [np.full(shape, lo), np.full(shape, hi), np.zeros(shape)]
    r = g.rng
    while len(vectors) < count:
        kind = g.pick(["random", "ties", "outside", "grid"])
        if kind == "random":
            v = r.uniform(lo, hi, size=shape)
        elif kind == "ties":  # exactly halfway between two codes of the input format
            codes = r.uniform(lo / lsb, hi / lsb, size=shape)
            v = (np.floor(codes) + 0.5) * lsb if hi / lsb < 2 ** 52 else codes * lsb
        elif kind == "outside":
            span = hi - lo + lsb
            v = r.uniform(lo - span / 2, hi + span / 2, size=shape)
        else:
            v = np.where(r.random(size=shape) < 0.5, lo, hi)
        vectors.append(v)
    return [np.asarray(v, dtype=np.float64).tolist() for v in vectors[:count]]


def random_case(seed: int, max_layers: int = 4, vectors: int = 8, wide: bool = True, extras: bool = True) -> dict:
    """The case of ``seed``; ``extras=False``: without the "table" and "gate" layers (and the
    excitations), the case
    the seed gave before they were drawn (the seeds tests keep as regression cases)."""
    g = _Gen(np.random.default_rng(seed), wide, side=np.random.default_rng([seed, 31]) if extras else None,
             gates=np.random.default_rng([seed, 37]) if extras else None,
             excite=np.random.default_rng([seed, 41]) if extras else None)
    case = random_model(g, max_layers)
    case["seed"] = seed
    case["export"] = "torch" if g.chance(0.1) else "helper"
    case["plan"] = random_plan(g, case)
    normalize(case)
    case["inputs"] = random_inputs(g, case, vectors)
    return case


# Reuse factors a stream case draws for each dense or conv layer (1: a parallel core; more: a
# folded core in the RTL, the pixel loop's II in HLS), 1 about half of the time.
STREAM_REUSE = (1, 1, 1, 1, 2, 3, 4, 5, 8, 16)


def foldable(case: dict) -> list[str]:
    """The layers a stream case may fold (its dense and conv layers, by ONNX node name)."""
    return [f"l{i}" for i, layer in enumerate(case["layers"]) if layer["op"] in ("dense", "conv")]


def streamed(case: dict) -> dict:
    """``case`` in the stream architecture (``arch``), each dense or conv layer with a random
    reuse factor (``reuse``: ONNX node name -> R, the ones above 1), drawn from the case's
    seed apart from the generator's own draws (the model, plan and inputs stay those of
    `random_case`).  A torch export names nodes itself: its layers keep reuse factor 1."""
    r = np.random.default_rng([case.get("seed", 0), 13])
    reuse = {name: int(r.choice(STREAM_REUSE)) for name in foldable(case)} if case["export"] != "torch" else {}
    return {**case, "arch": "stream", "reuse": {name: v for name, v in reuse.items() if v > 1}}


def build_options(case: dict) -> dict:
    """The `compile_model` options of ``case``: its architecture and layer configuration."""
    if case.get("arch") != "stream":
        return {}
    layers = {name: {"reuse_factor": r} for name, r in case.get("reuse", {}).items()}
    return {"architecture": "stream", "layers": layers}


def merges_into_previous(case: dict, i: int) -> bool:
    """Whether layer ``i`` (an Add of a per-channel constant right after a bias-free Gemm or
    Conv that feeds nothing else) becomes that layer's bias, as finegrain's canonicalise does:
    the value between the two is then never quantized, and a plan cannot name it."""
    layers = case["layers"]
    if i == 0 or layers[i]["op"] != "addc" or layers[i]["src"] != [i]:
        return False
    prev = layers[i - 1]
    if prev["op"] not in ("dense", "conv") or prev.get("bias") is not None:
        return False
    if sum(i in layer["src"] for layer in layers) != 1:
        return False
    c = np.asarray(layers[i]["const"])
    return c.size == 1 or prev["op"] == "dense" or all(d == 1 for d in c.shape[1:])


def normalize(case: dict) -> dict:
    """Make ``case`` consistent after generation or shrinking: a torch export only where torch
    has every layer (its inner activations carry torch's names, so the plan cannot name
    them), and plan entries and arrays only for tensors the model has."""
    from .onnx_model import torch_exportable

    if case.get("export") == "torch" and not torch_exportable(case):
        case["export"] = "helper"
    last = len(case["layers"]) - 1
    # torch names constants itself when it folds (BatchNorm into the layer before it, ...):
    # a torch case's plan names only its input and output, the rest take the defaults
    names = {"x"} | ({name for name, *_ in constants(case)} if case["export"] != "torch" else set())
    names |= {f"t{i}" for i in range(last + 1) if (case["export"] != "torch" or i == last)
              and not (i < last and (case["layers"][i + 1]["op"] == "bn" or merges_into_previous(case, i + 1)))}
    tensors = case["plan"]["tensors"]
    for name in [n for n in tensors if n not in names]:
        del tensors[name]
    used = {e["elements"] for e in tensors.values() if isinstance(e, dict) and "elements" in e}
    case["arrays"] = {k: v for k, v in case.get("arrays", {}).items() if k in used}
    if case.get("reuse"):  # the layers still there (shrinking cuts layers from the end)
        names = set(foldable(case)) if case["export"] != "torch" else set()
        case["reuse"] = {name: r for name, r in case["reuse"].items() if name in names}
    if "quant" in case:
        from .quant import prune

        prune(case)
    if "tables" in case["plan"] and not any(layer["op"] in TABLE_LAYERS for layer in case["layers"]):
        del case["plan"]["tables"]
    return case


def has_gate(case: dict) -> bool:
    """Whether a Mul of the case multiplies two values of one shape (a gate)."""
    return any(op == "mul" and a == b for op, a, b in _operand_shapes(case))


def has_excitation(case: dict) -> bool:
    """Whether an Add or Mul of the case broadcasts one operand over the other's positions (a
    squeeze-and-excitation)."""
    return any(a != b for _, a, b in _operand_shapes(case))


def _operand_shapes(case: dict) -> list[tuple[str, list, list]]:
    """(op, shape of operand 0, shape of operand 1) of each Add and Mul of two values."""
    shapes = shapes_of(case)
    return [(layer["op"], shapes[layer["src"][0]], shapes[layer["src"][1]]) for layer in case["layers"]
            if layer["op"] in ("add", "mul")]


def is_referenced(case: dict) -> bool:
    """Whether the exact reference covers every layer of the case (BatchNorm in quantized
    cases: reference.py)."""
    unreferenced = UNREFERENCED - {"bn"} if "quant" in case else UNREFERENCED
    return not any(layer["op"] in unreferenced for layer in case["layers"])
