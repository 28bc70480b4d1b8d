"""The bad-input corpus, models and plans: each case is a `finegrain compile` that must fail
cleanly (exit 2, one paragraph naming the tensor, node or setting, nothing written), checked
by `tests/badinput.py::expect_clean_failure`.

Models are built here with onnx.helper (a few bytes each); plans are written as JSON.  A
model case pairs a bad model with a good plan, a plan case a good model with a bad plan.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from tests.badinput import expect_clean_failure

FLOAT = TensorProto.FLOAT
GOOD_DEFAULTS = {"input": "fixed<12,4>", "weight": "fixed<8,2>", "bias": "fixed<16,6>", "activation": None}


# --- model builders -------------------------------------------------------------------------


def _const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _model(nodes, inputs=None, outputs=("y",), inits=(), opset=17, value_info=(), extra_opsets=(), sparse=()):
    """A model over graph input ``x`` [1, 4] (or ``inputs``: name -> dims, or value infos)."""
    inputs = {"x": [1, 4]} if inputs is None else inputs
    if isinstance(inputs, dict):
        inputs = [helper.make_tensor_value_info(k, FLOAT, v) for k, v in inputs.items()]
    outs = [helper.make_tensor_value_info(o, FLOAT, None) for o in outputs]
    graph = helper.make_graph(list(nodes), "g", inputs, outs, list(inits), value_info=list(value_info),
                              sparse_initializer=list(sparse))
    opsets = [helper.make_opsetid("", opset)] if opset is not None else []
    return helper.make_model(graph, opset_imports=opsets + [helper.make_opsetid(d, 1) for d in extra_opsets])


def _dense(w=None, b=None, **kw):
    """y = Gemm(x, W, B): x [1, 4], W [4, 3]."""
    w = np.full((4, 3), 0.5) if w is None else w
    b = np.zeros(3) if b is None else b
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc", **kw)
    return _model([node], inits=[_const("W", w), _const("B", b)])


def _after_dense(node, inits=()):
    """Gemm 'fc' writing h, then ``node`` reading h and writing y."""
    fc = helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="fc")
    return _model([fc, node], inits=[_const("W", np.full((4, 3), 0.5)), _const("B", np.zeros(3)), *inits])


def _bn(scale=(1, 1), bias=(0, 0), mean=(0, 0), var=(1, 1), dtype=np.float32, **attrs):
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", **attrs)
    inits = [_const(n, v, dtype) for n, v in (("s", scale), ("b", bias), ("m", mean), ("v", var))]
    return _model([node], inputs={"x": [1, 2, 3, 3]}, inits=inits)


def _conv(weight_shape=(2, 1, 3, 3), input_shape=(1, 1, 5, 5), **attrs):
    node = helper.make_node("Conv", ["x", "CW"], ["y"], name="conv", **attrs)
    return _model([node], inputs={"x": list(input_shape)}, inits=[_const("CW", np.ones(weight_shape))])


def _pool(op, input_shape=(1, 1, 5, 5), opset=17, **attrs):
    return _model([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], inputs={"x": list(input_shape)},
                  opset=opset)


def _unary(op, inputs=None, **attrs):
    return _model([helper.make_node(op, ["x"], ["y"], name="n1", **attrs)], inputs=inputs)


def _relu_chain(names=("r1", "r2"), outs=("h", "y"), ins=("x", "h"), **kw):
    nodes = [helper.make_node("Relu", [i], [o], name=n) for n, i, o in zip(names, ins, outs)]
    return _model(nodes, **kw)


def _external_data_missing(path: Path) -> None:
    model = _dense()
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path.write_bytes(model.SerializeToString())  # weights.bin is never written


def _damaged_weight(damage):
    """_dense with its weight W [4, 3] damaged by ``damage(tensor)`` after it was written."""
    model = _dense()
    damage(next(t for t in model.graph.initializer if t.name == "W"))
    return model


def _drop_raw_bytes(t):
    t.raw_data = t.raw_data[:10]


def _extra_raw_value(t):
    t.raw_data += b"\0" * 4


def _short_float_data(t):
    t.float_data.extend(np.frombuffer(t.raw_data, np.float32)[:-1].tolist())
    t.ClearField("raw_data")


def _negative_dim(t):
    t.dims[:] = [4, -3]


def _if_reading_x():
    """An If on a constant condition whose branches read the graph's input x."""
    def branch(op, out):
        return helper.make_graph([helper.make_node(op, ["x"], [out])], op, [],
                                 [helper.make_tensor_value_info(out, FLOAT, [1, 4])])
    condition = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True]))
    choose = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=branch("Relu", "a"),
                              else_branch=branch("Neg", "b"))
    return _model([condition, choose])


def _raw(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated(path: Path) -> None:
    data = _dense().SerializeToString()
    path.write_bytes(data[: len(data) // 2])


# (id, model or writer(path), strings the message must name)
MODELS = [
    ("nan-weight", _dense(w=np.where(np.eye(4, 3) > 0, np.nan, 0.5)), ["'fc'", "'W'", "nan", "index [0, 0]"]),
    ("inf-bias", _dense(b=[0, np.inf, 0]), ["'fc'", "'B'", "inf", "index [1]"]),
    ("neg-inf-conv-weight", _model([helper.make_node("Conv", ["x", "CW"], ["y"], name="conv")],
                                   inputs={"x": [1, 1, 5, 5]}, inits=[_const("CW", np.full((1, 1, 3, 3), -np.inf))]),
     ["'conv'", "'CW'", "-inf"]),
    ("bn-negative-variance", _bn(var=(1, -1)), ["'bn'", "variance 'v'", "channel 1", "not positive"]),
    ("bn-nan-scale", _bn(scale=(np.nan, 1)), ["'bn'", "scale 's'", "nan"]),
    ("bn-inf-mean", _bn(mean=(0, np.inf)), ["'bn'", "mean 'm'", "inf"]),
    ("bn-fold-overflows", _bn(scale=(1e300, 1), var=(1e-300, 1), dtype=np.float64, epsilon=0.0),
     ["'bn'", "non-finite", "statistics"]),
    ("gemm-alpha-nan", _dense(alpha=float("nan")), ["'fc'", "'fc.weight'", "nan"]),
    ("leaky-alpha-inf", _after_dense(helper.make_node("LeakyRelu", ["h"], ["y"], name="leaky", alpha=float("inf"))),
     ["'leaky'", "alpha", "inf"]),
    ("clip-min-nan", _after_dense(helper.make_node("Clip", ["h", "lo", "hi"], ["y"], name="clip"),
                                  [_const("lo", np.nan), _const("hi", 1.0)]), ["'clip'", "min 'lo'", "nan"]),
    ("mul-factor-nan", _after_dense(helper.make_node("Mul", ["h", "k"], ["y"], name="scale"),
                                    [_const("k", [1, np.nan, 1])]), ["'scale'", "factor 'k'", "nan"]),
    ("string-constant", _after_dense(helper.make_node("Mul", ["h", "k"], ["y"], name="scale"),
                                     [helper.make_tensor("k", TensorProto.STRING, [1], [b"a"])]),
     ["'scale'", "'k'", "element type"]),
    ("opset-6", _model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=6), ["opset 6", "7 to 21"]),
    ("opset-99", _model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=99), ["opset 99", "7 to 21"]),
    ("no-default-opset", _model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=None,
                                extra_opsets=["com.example"]), ["default onnx operator set"]),
    ("input-2-to-31", _unary("Relu", {"x": [1, 2 ** 31]}), ["graph input 'x'", "2,147,483,648", "4,194,304"]),
    ("input-dim-0", _unary("Relu", {"x": [1, 0]}), ["graph input 'x'", "dim 1 is 0"]),
    ("input-dim-negative", _unary("Relu", {"x": [1, -3]}), ["graph input 'x'", "dim 1 is -3"]),
    ("input-dim-symbolic", _unary("Relu", {"x": [1, "features"]}), ["graph input 'x'", "'features'"]),
    ("input-no-shape", _unary("Relu", [helper.make_tensor_value_info("x", FLOAT, None)]),
     ["graph input 'x'", "no shape"]),
    ("input-int32", _unary("Relu", [helper.make_tensor_value_info("x", TensorProto.INT32, [1, 4])]),
     ["graph input 'x'", "INT32"]),
    ("duplicate-graph-output", _model([helper.make_node("Relu", ["x"], ["y"], name="r")], outputs=("y", "y")),
     ["graph output 'y'", "listed twice"]),
    ("two-writers", _relu_chain(outs=("y", "y"), ins=("x", "x")), ["'r2'", "writes 'y'", "node 'r1'"]),
    ("duplicate-node-names", _relu_chain(names=("relu", "relu")), ["'relu'", "nodes 0 and 1", "unique"]),
    ("node-writes-input", _relu_chain(outs=("x", "y"), ins=("x", "x")), ["'r1'", "writes 'x'", "graph input"]),
    ("duplicate-initializer", _model([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")],
                                     inits=[_const("W", np.ones((4, 3))), _const("W", np.ones((4, 3)))]),
     ["two initializers named 'w'"]),
    ("node-without-output", _model([helper.make_node("Relu", ["x"], ["y"], name="r"),
                                    helper.make_node("Relu", ["y"], [], name="dangling")]),
     ["'dangling'", "no output"]),
    ("output-is-input", _model([], outputs=("x",)), ["graph output 'x'", "graph input itself"]),
    ("output-never-written", _model([helper.make_node("Relu", ["x"], ["h"], name="r")]),
     ["graph output 'y'", "never produced"]),
    ("output-constant", _model([helper.make_node("Constant", [], ["y"], value=_const("c", [1.0]))]),
     ["graph output 'y'", "constant"]),
    ("cycle", _model([helper.make_node("Relu", ["y"], ["h"], name="a"),
                      helper.make_node("Add", ["x", "h"], ["y"], name="b")]),
     ["'a'", "reads 'y'", "unsorted"]),
    ("empty-input-name", _model([helper.make_node("Relu", [""], ["y"], name="r")]), ["'r'", "input name is empty"]),
    ("empty-file", _raw(b""), ["is not an onnx model"]),
    ("text-file", _raw(b"this is not a model\n"), ["not a readable onnx model"]),
    ("truncated", _truncated, ["not a readable onnx model", "truncated"]),
    ("external-data-missing", _external_data_missing, ["weights.bin"]),
    ("conv-strides-0", _conv(strides=[0, 1]), ["'conv'", "strides [0, 1]", "at least 1"]),
    ("conv-dilations-negative", _conv(dilations=[-1, 1]), ["'conv'", "dilations [-1, 1]"]),
    ("conv-auto-pad-bogus", _conv(auto_pad="SOMETIMES"), ["'conv'", "auto_pad 'sometimes'"]),
    ("conv-group-mismatch", _conv(group=3), ["'conv'", "groups=3"]),
    ("conv-pads-negative", _conv(pads=[-1, 0, 0, 0]), ["'conv'", "pads [-1, 0, 0, 0]"]),
    ("conv-kernel-over-input", _conv(weight_shape=(2, 1, 9, 9)), ["'conv'", "empty tensor"]),
    ("conv-pads-huge", _conv(pads=[10 ** 6] * 4), ["'conv'", "4,194,304"]),
    ("conv-3d", _conv(weight_shape=(2, 1, 3, 3, 3), input_shape=(1, 1, 5, 5, 5)), ["'conv'", "1d and 2d"]),
    ("conv-same-negative-padding", _conv(weight_shape=(2, 1, 1, 1), input_shape=(1, 1, 6, 6), strides=[3, 3],
                                         auto_pad="SAME_UPPER"), ["'conv'", "kernel 1, stride 3 over 6", "negative"]),
    ("maxpool-kernel-0", _pool("MaxPool", kernel_shape=[0, 0]), ["'pool'", "kernel_shape [0, 0]"]),
    ("maxpool-no-kernel", _pool("MaxPool"), ["'pool'", "required attribute 'kernel_shape' is missing"]),
    ("maxpool-kernel-float", _pool("MaxPool", kernel_shape=2.5), ["'pool'", "'kernel_shape' is of type float", "ints"]),
    ("maxpool-pads-floats", _pool("MaxPool", kernel_shape=[2, 2], pads=[0.5, 0.5, 0.0, 0.0]),
     ["'pool'", "'pads' is of type floats"]),
    ("maxpool-unknown-attribute", _pool("MaxPool", kernel_shape=[2, 2], padding=1),
     ["'pool'", "'padding' is not an attribute of maxpool at opset 17"]),
    ("avgpool-dilations-opset-17", _pool("AveragePool", kernel_shape=[2, 2], dilations=[1, 1]),
     ["'pool'", "'dilations' is not an attribute of averagepool at opset 17"]),
    ("avgpool-pads-over-kernel", _pool("AveragePool", kernel_shape=[2, 2], pads=[2, 0, 0, 0]),
     ["'pool'", "pads [2, 0, 0, 0]", "smaller than kernel_shape [2, 2]"]),
    ("maxpool-storage-order", _pool("MaxPool", kernel_shape=[2, 2], storage_order=1), ["'pool'", "storage_order"]),
    ("avgpool-dilations", _pool("AveragePool", kernel_shape=[2, 2], dilations=[2, 2], opset=19),
     ["'pool'", "dilations [2, 2]"]),
    ("conv-bias-shape", _model([helper.make_node("Conv", ["x", "CW", "CB"], ["y"], name="conv")],
                               inputs={"x": [1, 1, 5, 5]},
                               inits=[_const("CW", np.ones((2, 1, 3, 3))), _const("CB", np.ones(5))]),
     ["'conv'", "bias b 'cb'", "(5,)", "(2,)"]),
    ("gemm-weight-3d", _dense(w=np.ones((4, 3, 1))), ["'fc'", "weight b 'w'", "(4, 3, 1)"]),
    ("gemm-alpha-string", _dense(alpha="two"), ["'fc'", "'alpha' is of type string", "float"]),
    ("concat-missing-axis", _model([helper.make_node("Concat", ["x", "z"], ["y"], name="cat")],
                                   inputs={"x": [1, 4], "z": [1, 4]}), ["'cat'", "required attribute 'axis'"]),
    ("concat-shapes-differ", _model([helper.make_node("Concat", ["x", "z"], ["y"], name="cat", axis=1)],
                                    inputs={"x": [1, 2, 4], "z": [1, 2, 3]}), ["'cat'", "[(2, 4), (2, 3)]"]),
    ("reshape-float-target", _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                                    inits=[_const("s", [1.0, np.nan])]), ["'rs'", "shape 's'", "float32", "int64"]),
    ("gemm-transA", _dense(transA=1), ["'fc'", "transa=1"]),
    ("gemm-shape-mismatch", _dense(w=np.ones((5, 3))),
     [re.compile(r"^node 'fc' \(gemm\): input has 4 features, weight expects 5$")]),
    ("matmul-two-activations", _model([helper.make_node("MatMul", ["x", "z"], ["y"], name="mm")],
                                      inputs={"x": [1, 4], "z": [1, 4]}), ["'mm'", "constant-matrix"]),
    ("mul-ranks-differ", _model([helper.make_node("Mul", ["x", "z"], ["y"], name="mu")],
                                inputs={"x": [1, 4], "z": [1, 2, 4]}), ["'mu'", "different ranks"]),
    ("div-by-zero", _after_dense(helper.make_node("Div", ["h", "k"], ["y"], name="div"), [_const("k", [1, 0, 1])]),
     ["'div'", "divisor 'k'", "zeros"]),
    ("add-shape-mismatch", _model([helper.make_node("Add", ["x", "z"], ["y"], name="add")],
                                  inputs={"x": [1, 4], "z": [1, 3]}), ["'add'", "do not broadcast"]),
    ("unsupported-sin", _after_dense(helper.make_node("Sin", ["h"], ["y"], name="sin")),
     ["'sin'", "(sin) is not supported", "supported onnx ops"]),
    ("unsupported-pad", _model([helper.make_node("Pad", ["x", "p"], ["y"], name="pad", mode="reflect")],
                               inputs={"x": [1, 1, 5, 5]}, inits=[_const("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)]),
     ["'pad'", "(pad) is not supported"]),
    ("foreign-domain", _model([helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.example")],
                              extra_opsets=["com.example"]), ["'g'", "com.example.gelu"]),
    ("softmax-not-last", _model([helper.make_node("Softmax", ["x"], ["h"], name="sm"),
                                 helper.make_node("Relu", ["h"], ["y"], name="r")]), ["'sm'", "graph output"]),
    ("reshape-across-batch", _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], inputs={"x": ["N", 4]},
                                    inits=[_const("s", [2, 2], np.int64)]), ["'rs'", "batch axis"]),
    ("transpose-moves-batch", _model([helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=[1, 0])],
                                     inputs={"x": ["N", 4]}),
     ["'tr'", "perm [1, 0]", "batch"]),
    ("concat-batch-axis", _model([helper.make_node("Concat", ["x", "z"], ["y"], name="cat", axis=0)],
                                 inputs={"x": [1, 4], "z": [1, 4]}), ["'cat'", "batch axis"]),
    ("flatten-axis-2", _unary("Flatten", {"x": ["N", 2, 3]}, axis=2), ["'n1'", "axis=2"]),
    ("bn-training-mode", _bn(training_mode=1), ["'bn'", "training_mode=1", "eval mode"]),
    ("wrong-annotation", _relu_chain(value_info=[helper.make_tensor_value_info("h", FLOAT, [1, 5])]),
     ["node 'r1'", "'h'", "(4,)", "(1, 5)"]),
    ("hardsigmoid-alpha-inf", _unary("HardSigmoid", alpha=float("inf")), ["'n1'", "alpha is inf", "default is 0.2"]),
    ("elu-alpha-nan", _unary("Elu", alpha=float("nan")), ["'n1'", "alpha is nan", "finite"]),
    ("selu-gamma-inf", _unary("Selu", gamma=float("inf")), ["'n1'", "gamma is inf", "1.050701"]),
    ("initializer-raw-data-short", _damaged_weight(_drop_raw_bytes), ["initializer 'w'", "damaged", "[4, 3]"]),
    ("initializer-raw-data-long", _damaged_weight(_extra_raw_value), ["initializer 'w'", "size 13"]),
    ("initializer-float-data-short", _damaged_weight(_short_float_data), ["initializer 'w'", "size 11"]),
    ("initializer-negative-dim", _damaged_weight(_negative_dim), ["initializer 'w'", "dims [4, -3]"]),
    ("if-reads-the-graph", _if_reading_x(), ["'branch' (if)", "reads 'x'", "no control flow"]),
    ("sparse-index-outside", _model([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)], inits=(),
                                    sparse=[helper.make_sparse_tensor(_const("W", [0.5, 1.0]),
                                                                      _const("W_index", [0, 12], np.int64), [3, 4])]),
     ["sparse initializer 'w'", "damaged", "[3, 4]"]),
]


@pytest.mark.parametrize("case", MODELS, ids=[c[0] for c in MODELS])
def test_bad_model_fails_cleanly(tmp_path, capsys, case):
    _, model, mention = case
    path = tmp_path / "model.onnx"
    if callable(model):
        model(path)
    else:
        path.write_bytes(model.SerializeToString())
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": GOOD_DEFAULTS}))
    out = tmp_path / "out"
    expect_clean_failure(capsys, ["compile", path, "--plan", plan, "-o", out], mention, out=out, keep=[path, plan])


def test_model_that_is_a_folder_fails_cleanly(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": GOOD_DEFAULTS}))
    expect_clean_failure(capsys, ["compile", tmp_path, "--plan", plan, "-o", tmp_path / "out"],
                         ["is not a file"], out=tmp_path / "out")


# --- plans ------------------------------------------------------------------------------------


def _npz(**arrays):
    """A writer of e.npz beside the plan: arrays keyed W.bits, W.int_bits, W.signed by default."""
    full = {"W.bits": np.full((4, 3), 8), "W.int_bits": np.full((4, 3), 2), "W.signed": np.ones((4, 3), int)}
    full.update({f"W.{k}": v for k, v in arrays.items()})
    return lambda folder: np.savez(folder / "e.npz", **full)


def _with_defaults(**entries):
    return {"defaults": GOOD_DEFAULTS, **entries}


ELEMENTS = {"tensors": {"W": {"elements": "e.npz:W"}}}

# (id, plan (a dict, or raw text), writer of side files or None, strings the message must name)
PLANS = [
    ("nested-100k-deep", "[" * 100_000 + "]" * 100_000, None, ["nested too deeply"]),
    ("integer-of-5000-digits", '{"defaults": {"input": ' + "9" * 5000 + "}}", None, ["cannot be read"]),
    ("not-json", "{defaults: }", None, ["not valid json"]),
    ("duplicate-key", '{"defaults": {"input": "fixed<12,4>", "weight": "fixed<8,2>", "bias": "fixed<16,6>", '
                      '"weight": "fixed<4,1>", "activation": null}}', None, ["'weight' twice", "give each key once"]),
    ("not-utf8", b"\xff\xfe\x00".decode("latin-1"), None, ["not a text file"]),
    ("int-bits-1e11", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<8,100000000000>"}}, None,
     ["default 'input'", "100000000000"]),
    ("int-bits-minus-1e11", {"defaults": {**GOOD_DEFAULTS, "weight": "fixed<8,-100000000000>"}}, None,
     ["default 'weight'", "-100000000000"]),
    ("int-bits-3000", {"defaults": {**GOOD_DEFAULTS, "bias": "fixed<16,3000>"}}, None,
     ["default 'bias'", "integer bits 3000", "-2048..2048"]),
    ("width-2000", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<2000,2>"}}, None, ["width 2000", "1024"]),
    ("width-5000-digits", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<" + "9" * 5000 + ",2>"}}, None,
     ["default 'input'", "far outside"]),
    ("width-0", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<0,0>"}}, None, ["width must be a positive integer"]),
    ("width-negative", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<-3,0>"}}, None, ["got -3"]),
    ("rounding-misspelt", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<8,2,RND_CNV>"}}, None,
     ["rounding mode 'rnd_cnv'", "rnd_conv"]),
    ("overflow-misspelt", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<8,2,RND,SATURATE>"}}, None,
     ["overflow mode 'saturate'", "sat_sym"]),
    ("format-not-a-string", {"defaults": {**GOOD_DEFAULTS, "input": 8}}, None, ["default 'input'", "got 8"]),
    ("pow2-exponent-digits", _with_defaults(tensors={"W": "pow2<-" + "9" * 100 + ",0>"}), None, ["far outside"]),
    ("pow2-on-input", {"defaults": {**GOOD_DEFAULTS, "input": "pow2<-4,0>"}}, None,
     ["default 'input'", "power-of-two"]),
    ("top-level-list", [1, 2], None, ["top level must be a json object", "list"]),
    ("unknown-top-key", _with_defaults(tensorz={}), None, ["unknown top-level keys ['tensorz']"]),
    ("unknown-default-key", {"defaults": {**GOOD_DEFAULTS, "weights": "fixed<8,2>"}}, None, ["['weights']"]),
    ("tensors-a-list", _with_defaults(tensors=["W"]), None, ["'tensors' must be an object"]),
    ("unknown-tensor", _with_defaults(tensors={"W_typo": "fixed<8,2>"}), None, ["'w_typo'", "plan-template"]),
    ("entry-a-number", _with_defaults(tensors={"W": 8}), None, ["tensor 'w'", "got 8"]),
    ("axis-out-of-range", _with_defaults(tensors={"W": {"axis": 7, "formats": ["fixed<8,2>"]}}), None,
     ["tensor 'w'", "axis 7"]),
    ("axis-wrong-count", _with_defaults(tensors={"W": {"axis": 1, "formats": ["fixed<8,2>"]}}), None,
     ["tensor 'w'", "1 formats given for axis 1", "length 3"]),
    ("axis-a-string", _with_defaults(tensors={"W": {"axis": "1", "formats": ["fixed<8,2>"] * 3}}), None,
     ["tensor 'w'", "'axis' must be an integer"]),
    ("formats-not-a-list", _with_defaults(tensors={"W": {"axis": 1, "formats": "fixed<8,2>"}}), None,
     ["tensor 'w'", "non-empty list"]),
    ("codebook-nan", _with_defaults(tensors={"W": {"codebook": {"centres": [float("nan")], "format": "fixed<8,2>"}}}),
     None, ["tensor 'w'", "not a finite number"]),
    ("mix-not-summing", _with_defaults(tensors={"W": {"axis": 1, "mix": [{"format": "fixed<8,2>", "rows": 0.5}]}}),
     None, ["tensor 'w'", "add up to 0.5"]),
    ("elements-npz-missing", _with_defaults(**ELEMENTS), None, ["tensor 'w'", "e.npz", "does not exist"]),
    ("elements-npz-is-a-folder", _with_defaults(**ELEMENTS), lambda d: (d / "e.npz").mkdir(),
     ["tensor 'w'", "e.npz", "is a folder"]),
    ("elements-npz-damaged", _with_defaults(**ELEMENTS), lambda d: (d / "e.npz").write_bytes(b"PK\x03\x04junk"),
     ["tensor 'w'", "cannot read"]),
    ("elements-wrong-shape", _with_defaults(**ELEMENTS),
     _npz(bits=np.full((3, 4), 8), int_bits=np.full((3, 4), 2), signed=np.ones((3, 4), int)),
     ["tensor 'w'", "[3, 4]", "[4, 3]"]),
    ("elements-float-bits", _with_defaults(**ELEMENTS), _npz(bits=np.full((4, 3), 8.0)), ["'w.bits'", "float64"]),
    ("elements-int-bits-1e12", _with_defaults(**ELEMENTS), _npz(int_bits=np.full((4, 3), 10 ** 12)),
     ["'w.int_bits'", "1000000000000"]),
    ("elements-int-bits-3000", _with_defaults(**ELEMENTS), _npz(int_bits=np.full((4, 3), -3000)),
     ["w.int_bits", "-3000", "index [0, 0]", "-2048..2048"]),
    ("elements-bits-2000", _with_defaults(**ELEMENTS), _npz(bits=np.full((4, 3), 2000)), ["w.bits", "2000", "1024"]),
    ("elements-bits-negative", _with_defaults(**ELEMENTS), _npz(bits=np.full((4, 3), -1)), ["w.bits", "negative"]),
    ("elements-bits-uint64", _with_defaults(**ELEMENTS), _npz(bits=np.full((4, 3), 2 ** 63 + 5, dtype=np.uint64)),
     ["'w.bits'", "far outside"]),
    ("elements-signed-2", _with_defaults(**ELEMENTS), _npz(signed=np.full((4, 3), 2)), ["w.signed", "0 or 1"]),
    ("elements-rounding-misspelt", _with_defaults(tensors={"W": {"elements": "e.npz:W", "rounding": "ROUND"}}),
     _npz(), ["tensor 'w'", "rounding mode 'round'"]),
    ("elements-no-key", _with_defaults(tensors={"W": {"elements": "e.npz"}}), _npz(), ["'file.npz:key'"]),
    ("inv-bits-30", _with_defaults(tables={"inv_bits": 30}), None, ["'inv_bits'", "2..20", "30"]),
    ("inv-bits-true", _with_defaults(tables={"inv_bits": True}), None, ["'inv_bits'", "true"]),
    ("sigmoid-input-24-bits", _with_defaults(tables={"sigmoid_input": "fixed<24,4>"}), None,
     ["'sigmoid_input'", "2**24", "at most 20"]),
    ("exp-output-100-bits", _with_defaults(tables={"exp_output": "ufixed<100,1>"}), None,
     ["'exp_output'", "100 bits", "at most 64"]),
    ("unknown-table-key", _with_defaults(tables={"sigmoid_in": "fixed<8,4>"}), None, ["['sigmoid_in']"]),
    ("exact-value-over-1024-bits", {"defaults": {**GOOD_DEFAULTS, "input": "fixed<1024,10>"}}, None,
     ["node 'fc'", "tensor 'y'", "1026 bits", "1024 bits", "fewer bits"]),
    ("no-input-format", {"defaults": {"weight": "fixed<8,2>", "bias": "fixed<16,6>"}}, None,
     ["graph input 'x'", "no format"]),
]


@pytest.mark.parametrize("case", PLANS, ids=[c[0] for c in PLANS])
def test_bad_plan_fails_cleanly(tmp_path, capsys, case):
    _, plan, write_files, mention = case
    model = tmp_path / "model.onnx"
    model.write_bytes(_dense().SerializeToString())
    path = tmp_path / "plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan), encoding="latin-1")
    if write_files is not None:
        write_files(tmp_path)
    out = tmp_path / "out"
    expect_clean_failure(capsys, ["compile", model, "--plan", path, "-o", out], mention, out=out, keep=[model, path])


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_plan_that_is_not_a_file_fails_cleanly(tmp_path, capsys, what):
    model = tmp_path / "model.onnx"
    model.write_bytes(_dense().SerializeToString())
    plan = tmp_path / "plan.json"
    if what == "folder":
        plan.mkdir()
    expect_clean_failure(capsys, ["compile", model, "--plan", plan, "-o", tmp_path / "out"],
                         [re.compile(r"plan file '.*plan\.json' does not exist or is not a file")],
                         out=tmp_path / "out")


def test_plan_template_reports_the_same_model_errors(tmp_path, capsys):
    """plan-template reads the model with the same checks (here: a NaN weight)."""
    model = tmp_path / "model.onnx"
    model.write_bytes(_dense(w=np.full((4, 3), np.nan)).SerializeToString())
    out = tmp_path / "plan.json"
    expect_clean_failure(capsys, ["plan-template", model, "-o", out], ["'fc'", "'W'", "nan"], out=out)


def test_the_good_model_and_plan_compile(tmp_path, capsys):
    """The corpus's good model and plan compile: every failure above is the one defect it adds."""
    from compiler.cli import main

    model = tmp_path / "model.onnx"
    model.write_bytes(_dense().SerializeToString())
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": GOOD_DEFAULTS}))
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "out"), "--backend", "hls"]) == 0
