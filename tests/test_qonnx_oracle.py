"""QONNX as an independent oracle for the emulator.

The compiled graph of a project is rebuilt as a QONNX model with ``onnx.helper``:

* every conversion point (the graph input and every REQUANTIZE) becomes a QONNX ``Quant``
  node with a power-of-two scale ``2**-frac_bits``, zero point 0 and bit width ``width``;
  ``ap_fixed``'s SAT overflow is Quant's clipping, and its rounding modes map onto Quant's
  ``rounding_mode`` (RND_CONV -> ROUND, i.e. ties to even; see ``QUANT_ROUNDING``);
* weights and biases are float initializers holding the exact quantized values
  (``mantissa * 2**-data_frac``);
* DENSE is MatMul + Add, CONV is Conv, AVGPOOL is the window sum (a depthwise Conv with a
  kernel of ones) times finegrain's own reciprocal constant (the 18-significant-bit
  ``NODE.reciprocal``, see compiler/passes/apply_plan.py), the rest map one to one.

qonnx's ``execute_onnx`` runs it (Quant in numpy, every other node in onnxruntime, in
float32), and its outputs must equal the emulator's *exactly*.  That comparison is only
fair if float32 never rounds, so each test first proves it from the graph itself
(`assert_float32_exact`): every activation, accumulators included, is sized to at most 23
bits, and no partial sum of a dot product can reach 2**24 of its LSBs.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

import compiler
from compiler.emulate import emulate
from compiler.fixed import Formats, Overflow, Rounding
from compiler.ir import Graph, Node, Op
from compiler.plan import parse_plan

QUANT_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13

# ap_fixed rounding -> the Quant rounding_mode that does the same on the scaled value
# (qonnx.custom_op.general.intquant.resolve_rounding_mode).  RND (ties to +inf) and
# RND_MIN_INF have no Quant counterpart.
QUANT_ROUNDING = {
    Rounding.RND_CONV: "ROUND",  # np.round: ties to even
    Rounding.TRN: "FLOOR",
    Rounding.TRN_ZERO: "DOWN",  # np.fix
    Rounding.RND_INF: "HALF_UP",  # sign(x) * floor(|x| + 0.5): ties away from zero
    Rounding.RND_ZERO: "HALF_DOWN",  # sign(x) * ceil(|x| - 0.5): ties toward zero
    Rounding.CEIL: "CEIL",  # np.ceil: toward plus infinity (finegrain's own mode)
}

# float32 holds every integer below 2**24 exactly.  Activations get one bit less: Quant's
# HALF_UP/HALF_DOWN add 0.5 to the scaled value in float32.
FLOAT32_BITS = 24
MAX_ACTIVATION_WIDTH = FLOAT32_BITS - 1

N_RANDOM = 1000

JET_MODEL = "examples/jet_tagger/model.onnx"
JET_PLAN = "examples/jet_tagger/plan.json"
CNN_MODEL = "examples/small_cnn/model.onnx"
CNN_PLAN = "examples/small_cnn/plan.json"


class NotExpressible(Exception):
    """The graph uses something a QONNX Quant model cannot state; the message says what."""


# --- formats -> Quant parameters -----------------------------------------------------------


def quant_parameters(formats: Formats, what: str) -> tuple[np.ndarray, int, bool, str]:
    """(scale, bit width, signed, rounding_mode) of one Quant node for ``formats``.

    Quant takes one bit width, one signedness and one rounding mode per node, but its scale
    broadcasts: formats may differ element by element in their integer bits only.
    """
    if formats.pruned.any():
        raise NotExpressible(f"{what}: pruned elements (width 0) have no Quant equivalent")
    fields = {"width": formats.width, "signed": formats.signed, "rounding": formats.rounding,
              "overflow": formats.overflow}
    for field, values in fields.items():
        if np.unique(values).size != 1:
            raise NotExpressible(f"{what}: {field} differs between elements ({formats.summary()}); Quant has "
                                 f"one scalar bit width/signedness/rounding per node (qonnx int_quant tests "
                                 f"'bitwidth == 1' as a scalar)")
    width, signed = int(formats.width.flat[0]), bool(formats.signed.flat[0])
    rounding, overflow = Rounding(int(formats.rounding.flat[0])), Overflow(int(formats.overflow.flat[0]))
    if overflow != Overflow.SAT:
        raise NotExpressible(f"{what}: overflow {overflow.name}; Quant always clips (= SAT)")
    if rounding not in QUANT_ROUNDING:
        raise NotExpressible(f"{what}: rounding {rounding.name} has no Quant rounding_mode")
    if signed and width == 1:
        raise NotExpressible(f"{what}: a signed 1-bit Quant is bipolar (+-1) in qonnx, not fixed<1,I>")
    frac = formats.frac_bits
    # one scalar scale when the fraction is uniform, else one per element (broadcast over the batch)
    scale = np.ldexp(np.float32(1), -int(frac.flat[0])) if np.unique(frac).size == 1 else \
        np.ldexp(np.ones(frac.shape, dtype=np.float32), -frac)
    return np.asarray(scale, dtype=np.float32), width, signed, QUANT_ROUNDING[rounding]


# --- float32 exactness, proved from the graph ------------------------------------------------


def _max_abs(formats: Formats) -> float:
    lo, hi = formats.mantissa_bounds()
    return float(max(np.abs(np.ldexp(lo.astype(np.float64), -formats.frac_bits)).max(),
                     np.abs(np.ldexp(hi.astype(np.float64), -formats.frac_bits)).max()))


def _constant_value(graph: Graph, name: str) -> np.ndarray:
    t = graph.tensor(name)
    return np.ldexp(np.asarray(t.data, dtype=np.float64), -t.data_frac)


def assert_float32_exact(graph: Graph) -> None:
    """Fail unless float32 execution of the QONNX model cannot round anywhere."""
    for name in graph.inputs:
        assert int(graph.tensor(name).formats.width.max()) <= MAX_ACTIVATION_WIDTH, f"input {name!r}"
    for node in graph.nodes:
        for stage in node.stages():
            out = graph.tensor(stage.outputs[0])
            widest = int(out.formats.width.max())
            assert widest <= MAX_ACTIVATION_WIDTH, (
                f"{stage.outputs[0]!r} ({node.name}) is sized to {widest} bits: float32 would not hold it exactly")
            if stage.op in (Op.DENSE, Op.CONV, Op.AVGPOOL):
                _assert_partial_sums_exact(graph, stage)
    for name, t in graph.tensors.items():
        if t.is_constant:
            value = _constant_value(graph, name)
            assert np.array_equal(value.astype(np.float32).astype(np.float64), value), f"constant {name!r}"


def _assert_partial_sums_exact(graph: Graph, stage: Node) -> None:
    """Every partial sum of every dot product is a multiple of 2**-frac below 2**24 LSBs.

    Bounded per output channel as max|x| * sum|w| + |b|, at the finest fraction any term
    can have: the input's finest fraction plus the weight's (constants carry a common one).
    """
    x = graph.tensor(stage.inputs[0]).formats
    x_frac = int(x.frac_bits.max())
    if stage.op == Op.AVGPOOL:  # window sum of x (the reciprocal product is the sized output)
        terms = int(np.prod(stage.attrs["kernel"]))
        bound, frac = terms * _max_abs(x), x_frac
    else:
        w = graph.tensor(stage.inputs[1])
        abs_w = np.abs(_constant_value(graph, stage.inputs[1]))
        bound = _max_abs(x) * abs_w.reshape(abs_w.shape[0], -1).sum(axis=1)
        frac = x_frac + w.data_frac
        if len(stage.inputs) > 2:
            b = graph.tensor(stage.inputs[2])
            bound = bound + np.abs(_constant_value(graph, stage.inputs[2]))
            frac = max(frac, b.data_frac)
        bound = float(np.max(bound))
    lsbs = bound * 2.0 ** frac
    assert lsbs < 2.0 ** FLOAT32_BITS, (
        f"{stage.name} ({stage.op.value}): partial sums reach {lsbs:.3g} LSBs of 2**-{frac}; float32 would round")


# --- the QONNX model ----------------------------------------------------------------------


class _Builder:
    def __init__(self, graph: Graph, batch: int):
        self.graph = graph
        self.batch = batch
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.infos: dict[str, onnx.ValueInfoProto] = {}

    def info(self, name: str, shape) -> None:
        self.infos[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    def activation(self, name: str, shape=None) -> str:
        shape = self.graph.tensor(name).shape if shape is None else shape
        self.info(name, (self.batch, *shape))
        return name

    def init(self, name: str, array, dtype=np.float32) -> str:
        array = np.asarray(array, dtype=dtype)
        self.inits.append(onnx.numpy_helper.from_array(array, name))
        # execute_onnx feeds each node's inputs by name; a value_info entry makes an
        # initializer an input of the one-node model it runs in onnxruntime
        self.infos[name] = helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))
        return name

    def constant(self, name: str, batched: bool = False) -> str:
        value = _constant_value(self.graph, name)
        return self.init(f"{name}.value", value[np.newaxis] if batched else value)

    def node(self, op_type: str, inputs, output: str, shape=None, domain: str = "", **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=f"{output}.{op_type}",
                                           domain=domain, **attrs))
        self.activation(output, shape)
        return output

    def quant(self, x: str, out: str, formats: Formats, what: str, shape) -> str:
        scale, width, signed, mode = quant_parameters(formats, what)
        return self.node("Quant", [x, self.init(f"{out}.scale", scale), self.init(f"{out}.zeropt", 0.0),
                                   self.init(f"{out}.bitwidth", float(width))],
                         out, shape, domain=QUANT_DOMAIN, signed=int(signed), narrow=0, rounding_mode=mode)

    # --- ops ------------------------------------------------------------------------------
    def stage(self, s: Node) -> None:
        out = s.outputs[0]
        x = s.inputs[0]
        a = s.attrs
        if s.op == Op.DENSE:
            wt = self.init(f"{s.inputs[1]}.T", _constant_value(self.graph, s.inputs[1]).T)
            if len(s.inputs) > 2:
                acc = self.node("MatMul", [x, wt], f"{out}.matmul", self.graph.tensor(out).shape)
                self.node("Add", [acc, self.constant(s.inputs[2])], out)
            else:
                self.node("MatMul", [x, wt], out)
        elif s.op == Op.CONV:
            n = len(a["strides"])
            self.node("Conv", [x, self.constant(s.inputs[1]), *(self.constant(b) for b in s.inputs[2:])], out,
                      kernel_shape=list(self.graph.tensor(s.inputs[1]).shape[2:]), strides=list(a["strides"]),
                      pads=list(a["pads"]), dilations=list(a["dilations"]), group=int(a["groups"]))
            assert len(a["pads"]) == 2 * n
        elif s.op == Op.AVGPOOL:
            # finegrain: window sum times a per-position reciprocal constant (not sum / count)
            channels = self.graph.tensor(x).shape[0]
            kernel = list(a["kernel"])
            ones = self.init(f"{out}.ones", np.ones((channels, 1, *kernel)))
            total = self.node("Conv", [x, ones], f"{out}.sum", self.graph.tensor(out).shape, kernel_shape=kernel,
                              strides=list(a["strides"]), pads=list(a["pads"]), group=channels)
            self.node("Mul", [total, self.constant(s.inputs[1], batched=True)], out)
        elif s.op == Op.MAXPOOL:
            n = len(a["kernel"])
            self.node("MaxPool", [x], out, kernel_shape=list(a["kernel"]), strides=list(a["strides"]),
                      pads=list(a["pads"]), dilations=list(a.get("dilations", (1,) * n)))
        elif s.op == Op.RELU:
            self.node("Relu", [x], out)
        elif s.op == Op.CLIP:
            lo, hi = (self.init(f"{out}.{k}", _constant_value(self.graph, c).reshape(()))
                      for k, c in zip(("min", "max"), s.inputs[1:]))
            self.node("Clip", [x, lo, hi], out)
        elif s.op in (Op.ADD, Op.MUL):
            b = s.inputs[1]
            b = self.constant(b, batched=True) if self.graph.tensor(b).is_constant else b
            self.node("Add" if s.op == Op.ADD else "Mul", [x, b], out)
        elif s.op == Op.RESHAPE:
            shape = self.init(f"{out}.shape", [-1, *a["shape"]], dtype=np.int64)
            self.node("Reshape", [x, shape], out)
        elif s.op == Op.TRANSPOSE:
            self.node("Transpose", [x], out, perm=[0, *(p + 1 for p in a["perm"])])
        elif s.op == Op.CONCAT:
            self.node("Concat", list(s.inputs), out, axis=a["axis"] + 1)
        elif s.op == Op.REQUANTIZE:
            self.quant(x, out, self.graph.tensor(out).formats, f"requantize {s.name!r}", self.graph.tensor(out).shape)
        else:
            raise NotExpressible(f"node {s.name!r}: no QONNX model of {s.op.value} here")


def to_qonnx(graph: Graph, batch: int) -> ModelWrapper:
    """The QONNX model computing what ``graph`` computes, for a fixed batch size."""
    b = _Builder(graph, batch)
    inputs = []
    for name in graph.inputs:
        raw = f"{name}.float"
        inputs.append(helper.make_tensor_value_info(raw, TensorProto.FLOAT, [batch, *graph.tensor(name).shape]))
        b.quant(raw, name, graph.tensor(name).formats, f"input {name!r}", graph.tensor(name).shape)
    for node in graph.nodes:
        for stage in node.stages():
            b.stage(stage)
    outputs = [b.infos.pop(name) for name in graph.outputs]
    onnx_graph = helper.make_graph(b.nodes, f"{graph.name}_qonnx", inputs, outputs, initializer=b.inits,
                                   value_info=list(b.infos.values()))
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                          helper.make_opsetid(QUANT_DOMAIN, 1)])
    return ModelWrapper(model)


def run_qonnx(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    model = to_qonnx(graph, x.shape[0])
    out = execute_onnx(model, {f"{graph.inputs[0]}.float": x.astype(np.float32)})
    return {name: np.asarray(out[name], dtype=np.float64) for name in graph.outputs}


# --- inputs ---------------------------------------------------------------------------------


def oracle_inputs(formats: Formats, rng: np.random.Generator, n: int = N_RANDOM) -> np.ndarray:
    """``n`` random inputs plus the extremes, as float32 (exact in float32 and float64).

    Random values lie on a grid three bits finer than the format (so an eighth of them are
    exact ties) and reach a quarter of the range beyond each end (so some saturate).  The
    extremes: every element at its minimum, at its maximum, zero, and min/max alternating
    both ways round.
    """
    lo, hi = formats.mantissa_bounds()
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    frac = formats.frac_bits
    extra = 3
    margin = (hi - lo) // 4 + 1
    m = rng.integers((lo - margin) << extra, ((hi + margin) << extra) + 1, size=(n, *formats.shape))
    random = np.ldexp(m.astype(np.float64), -(frac + extra))
    low, high = np.ldexp(lo.astype(np.float64), -frac), np.ldexp(hi.astype(np.float64), -frac)
    odd = (np.arange(low.size) % 2 == 1).reshape(low.shape)
    extremes = np.stack([low, high, np.zeros_like(low), np.where(odd, high, low), np.where(odd, low, high)])
    x = np.concatenate([extremes, random]).astype(np.float32)
    assert np.array_equal(x.astype(np.float64), np.concatenate([extremes, random]))
    return x


def assert_oracle_agrees(project, seed: int = 0) -> None:
    graph = project.graph
    assert_float32_exact(graph)
    x = oracle_inputs(graph.tensor(graph.inputs[0]).formats, np.random.default_rng(seed))
    expected = emulate(graph, x.astype(np.float64))
    got = run_qonnx(graph, x)
    for name in graph.outputs:
        e, g = expected[name], got[name]
        assert e.shape == g.shape, (name, e.shape, g.shape)
        if not np.array_equal(e, g):
            bad = np.argwhere(e != g)
            i = tuple(int(k) for k in bad[0])
            raise AssertionError(f"output {name!r}: {len(bad)} of {e.size} elements differ; first at {i}: "
                                 f"emulator {e[i]!r}, qonnx {g[i]!r} (sample {i[0]}: input {x[i[0]].ravel()[:8]}...)")


def _plan(raw: dict):
    return parse_plan(raw, Path("."), "<test plan>")


# --- cases ----------------------------------------------------------------------------------

JET_WEIGHTS = {"weight": "fixed<6,2,RND_CONV,SAT>", "bias": "fixed<10,1,RND_CONV,SAT>"}
JET_RELUS = ["/relu1/Relu_output_0", "/relu2/Relu_output_0", "/relu3/Relu_output_0"]

# Uniform activation formats (the default requantizes every Gemm and ReLU output, logits
# included), of different widths, signed and unsigned.
JET_UNIFORM_PLANS = {
    "signed-8": {"defaults": {"input": "fixed<12,5,RND_CONV,SAT>", **JET_WEIGHTS,
                              "activation": "fixed<8,4,RND_CONV,SAT>"}},
    "signed-14": {"defaults": {"input": "fixed<10,4,RND_CONV,SAT>", **JET_WEIGHTS,
                               "activation": "fixed<14,6,RND_CONV,SAT>"}},
    "narrow-4-saturating": {"defaults": {"input": "fixed<6,2,RND_CONV,SAT>", **JET_WEIGHTS,
                                         "activation": "fixed<4,2,RND_CONV,SAT>"}},
    # unsigned everywhere: negative inputs, Gemm outputs and logits saturate to 0
    "unsigned-6": {"defaults": {"input": "ufixed<10,3,RND_CONV,SAT>", **JET_WEIGHTS,
                                "activation": "ufixed<6,3,RND_CONV,SAT>"}},
    # signed Gemm outputs, unsigned ReLU outputs of another width
    "signed-10-relu-unsigned-7": {
        "defaults": {"input": "fixed<12,5,RND_CONV,SAT>", **JET_WEIGHTS, "activation": "fixed<10,5,RND_CONV,SAT>"},
        "tensors": {r: "ufixed<7,4,RND_CONV,SAT>" for r in JET_RELUS}},
    # the other ap_fixed roundings Quant can state, on signed values (the Gemm outputs)
    "trn": {"defaults": {"input": "fixed<12,5,TRN,SAT>", **JET_WEIGHTS, "activation": "fixed<9,4,TRN,SAT>"}},
    "trn-zero": {"defaults": {"input": "fixed<12,5,TRN_ZERO,SAT>", **JET_WEIGHTS,
                              "activation": "fixed<9,4,TRN_ZERO,SAT>"}},
    "rnd-inf": {"defaults": {"input": "fixed<12,5,RND_INF,SAT>", **JET_WEIGHTS,
                             "activation": "fixed<9,4,RND_INF,SAT>"}},
    "rnd-zero": {"defaults": {"input": "fixed<12,5,RND_ZERO,SAT>", **JET_WEIGHTS,
                              "activation": "fixed<9,4,RND_ZERO,SAT>"}},
    "ceil": {"defaults": {"input": "fixed<12,5,CEIL,SAT>", **JET_WEIGHTS, "activation": "fixed<9,4,CEIL,SAT>"}},
    # per-channel integer bits at one width: Quant gets a per-element scale
    "per-channel-scale": {
        "defaults": {"input": "fixed<12,5,RND_CONV,SAT>", **JET_WEIGHTS, "activation": None},
        "tensors": {"/relu1/Relu_output_0": {"axis": 1, "formats": [f"ufixed<8,{2 + i % 4},RND_CONV,SAT>"
                                                                     for i in range(64)]},
                    "/relu2/Relu_output_0": "ufixed<8,6,RND_CONV,SAT>",
                    "/relu3/Relu_output_0": "ufixed<8,6,RND_CONV,SAT>"}},
}


def test_jet_tagger_example_plan():
    assert_oracle_agrees(compiler.compile_model(JET_MODEL, JET_PLAN))


@pytest.mark.parametrize("name", sorted(JET_UNIFORM_PLANS))
def test_jet_tagger_written_plans(name):
    project = compiler.compile_model(JET_MODEL, _plan(JET_UNIFORM_PLANS[name]))
    assert_oracle_agrees(project, seed=sorted(JET_UNIFORM_PLANS).index(name) + 1)


def test_small_cnn_example_plan():
    """Conv (+ folded BatchNorm), ReLU, MaxPool and AvgPool (window sum times the 18-bit
    reciprocal, here exactly 1/4) as in the example plan."""
    project = compiler.compile_model(CNN_MODEL, CNN_PLAN)
    assert {s.op for n in project.graph.nodes for s in n.stages()} >= {Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.RELU}
    assert_oracle_agrees(project)


def test_small_cnn_requantized_everywhere():
    """Every Conv, ReLU and AvgPool output requantized; a 3x3 average would need a non-dyadic
    reciprocal, the model's 2x2 one makes it a plain quarter."""
    plan = {"defaults": {"input": "fixed<8,1,RND_CONV,SAT>", "weight": "fixed<6,2,RND_CONV,SAT>",
                         "bias": "fixed<10,2,RND_CONV,SAT>", "activation": "fixed<10,5,RND_CONV,SAT>"},
            "tensors": {"conv1.weight": "fixed<6,3,RND_CONV,SAT>",
                        "/relu2/Relu_output_0": "ufixed<8,6,RND_CONV,SAT>"}}
    assert_oracle_agrees(compiler.compile_model(CNN_MODEL, _plan(plan)), seed=7)


def test_quant_cannot_state_mixed_widths():
    """The jet tagger's fc1 weights are per row, but constants are exact floats in the oracle;
    an activation with per-channel *widths* is what Quant cannot state."""
    plan = {"defaults": {"input": "fixed<12,5,RND_CONV,SAT>", **JET_WEIGHTS, "activation": None},
            "tensors": {"/relu1/Relu_output_0": {"axis": 1, "formats": [f"ufixed<{6 + i % 3},4,RND_CONV,SAT>"
                                                                         for i in range(64)]}}}
    graph = compiler.compile_model(JET_MODEL, _plan(plan)).graph
    with pytest.raises(NotExpressible, match="width differs"):
        to_qonnx(graph, 1)


# --- beyond float32: Python ints are the oracle ---------------------------------------------


def test_wide_padded_conv_is_exact_beyond_64_bits():
    """A 1-D conv with zero padding on 63-bit inputs: the window sums exceed int64, so the
    emulator works on Python ints, and the padding must not bring numpy int64 zeros into
    them.  With np.pad it did: the first output summed 0 + 2*2**61 + 2*2**61 in int64 and
    wrapped to -2**63, with only a RuntimeWarning (larger inputs raised OverflowError)."""
    from compiler.emulate import emulate_exact
    from compiler.fixed import FixedType
    from compiler.ir import Tensor, TensorKind

    tensors = {
        "x": Tensor("x", (1, 4), TensorKind.INPUT, formats=Formats.uniform((1, 4), FixedType(64, 64))),
        "w": Tensor("w", (1, 1, 3), TensorKind.WEIGHT, formats=Formats.uniform((1, 1, 3), FixedType(3, 3)),
                    data=np.array([[[1, 2, 2]]], dtype=np.int64), data_frac=0),
        "y": Tensor("y", (1, 4), TensorKind.ACTIVATION),
    }
    conv = Node("conv", Op.CONV, ("x", "w"), ("y",),
                attrs={"strides": (1,), "pads": (1, 1), "dilations": (1,), "groups": 1})
    graph = Graph("wide_conv", ("x",), ("y",), (conv,), tensors)
    y = emulate_exact(graph, np.full((1, 1, 4), 2.0 ** 61))["y"]
    got = [Fraction(int(v)) * Fraction(2) ** -y.frac for v in y.m.ravel()]
    assert got == [2 ** 63, 5 * 2 ** 61, 5 * 2 ** 61, 3 * 2 ** 61]


def test_real_mnist_cnn():
    """The ONNX model zoo's mnist-8 (Conv with separate bias Add, MaxPool 2x2 and 3x3,
    Reshape, MatMul), read from ../shared/models, with a plan narrow enough for float32."""
    model = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mnist_cnn_float.onnx"
    plan = {"defaults": {"input": "ufixed<8,1,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                         "bias": "fixed<8,1,RND_CONV,SAT>", "activation": "fixed<8,3,RND_CONV,SAT>"},
            "tensors": {"Parameter193_reshape1": "fixed<6,2,RND_CONV,SAT>", "Parameter5": "fixed<6,2,RND_CONV,SAT>"}}
    assert_oracle_agrees(compiler.compile_model(model, _plan(plan)), seed=11)
