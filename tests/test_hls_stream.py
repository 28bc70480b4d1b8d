"""The io_stream HLS project (--arch stream --backend hls): g++ csim bit-exact against the
emulator on the published CNNs and the small CNN example, with a folded layer, on a model
with a residual Add, a Concat, a padded max pooling and a strided, dilated convolution, and
on a 1-D CNN; a plan whose formats vary along a tensor's height/width is refused."""

from __future__ import annotations

import json
import subprocess
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"


def _compile(model: Path, plan: Path, out: Path, *extra) -> int:
    return main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "hls", "--arch", "stream",
                 *extra])


def _csim(out: Path, vectors: int = 100) -> dict:
    assert main(["csim", str(out), "--vectors", str(vectors)]) == 0
    report = json.loads((out / "report.json").read_text())["csim"]
    assert report["vectors"] >= vectors and report["mismatches"] == 0
    return report


def _layer_function(cpp: str, name: str) -> str:
    """The text of the generated layer function ``name``."""
    match = re.search(rf"^static void {name}\(.*?^}}$", cpp, re.M | re.S)
    assert match, f"no layer function {name}"
    return match.group(0)


@pytest.mark.parametrize("name", ["mnist_cnn_float", "mlperf_kws_dscnn_float"])
def test_real_models_stream_csim_bit_exact(name, tmp_path):
    """Convolutions (padded, strided, depthwise), max and average pooling, a reshape of the
    input, flatten and dense, each layer a function in one DATAFLOW region."""
    from test_float_reference import REAL_PLANS

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(REAL_PLANS[name]))
    out = tmp_path / "out"
    assert _compile(MODELS / f"{name}.onnx", plan, out) == 0
    cpp = next((out / "hls" / "firmware").glob("*.cpp")).read_text()
    assert "#pragma HLS DATAFLOW" in cpp and "finegrain::line_buffer<" in cpp
    _csim(out)


def test_small_cnn_stream_csim_and_a_folded_layer(tmp_path):
    folder = ROOT / "examples" / "small_cnn"
    out = tmp_path / "out"
    assert _compile(folder / "model.onnx", folder / "plan.json", out) == 0
    firmware = out / "hls" / "firmware"
    header = (firmware / "small_cnn.h").read_text()
    assert "hls::stream<x_pixel_t>& x," in header and "hls::stream<logits_pixel_t>& logits" in header
    assert "typedef finegrain::pixel<x_t, 1> x_pixel_t;" in header
    cpp = (firmware / "small_cnn.cpp").read_text()
    for layer in ("conv1_Conv", "pool1_MaxPool", "conv2_Conv", "pool2_AveragePool", "flatten_Flatten", "fc_Gemm"):
        assert f"static void {layer}(" in cpp
    assert "finegrain::lowest<relu1_Relu_output_0_t>()" in _layer_function(cpp, "pool1_MaxPool")
    _csim(out)

    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"/conv2/Conv": {"reuse_factor": 4}}))
    folded = tmp_path / "folded"
    assert _compile(folder / "model.onnx", folder / "plan.json", folded, "--layer-config", str(layers)) == 0
    cpp = (folded / "hls" / "firmware" / "small_cnn.cpp").read_text()
    assert "#pragma HLS PIPELINE II=4" in _layer_function(cpp, "conv2_Conv")
    assert "#pragma HLS PIPELINE II=1" in _layer_function(cpp, "conv1_Conv")
    assert re.search(r"struct conv2_Conv_config \{.*?static const int reuse = 4;", cpp, re.S)
    _csim(folded)


def _residual_model(path: Path) -> Path:
    """x [2,7,6] -> conv a (pad 1) + relu -> conv b (pad 1) -> add(b, a) -> maxpool 3x3 /2 pad 1
    -> conv d (2x2, dilation (2,1), stride (1,2), pads bottom/right) -> concat(d, relu(d)) -> flatten -> gemm 5."""
    rng = np.random.default_rng(7)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.uniform(-1, 1, size=shape).astype(np.float32), name)

    inits = [weight("wa", 3, 2, 3, 3), weight("ba", 3), weight("wb", 3, 3, 3, 3), weight("bb", 3),
             weight("wd", 4, 3, 2, 2), weight("bd", 4), weight("wf", 5, 48), weight("bf", 5)]
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
        helper.make_node("Conv", ["a_relu", "wb", "bb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["b", "a_relu"], ["s"], name="skip"),
        helper.make_node("MaxPool", ["s"], ["m"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["m", "wd", "bd"], ["d"], name="conv_d", dilations=[2, 1], strides=[1, 2],
                         pads=[0, 0, 1, 1]),
        helper.make_node("Relu", ["d"], ["d_relu"], name="relu_d"),
        helper.make_node("Concat", ["d", "d_relu"], ["cat"], name="cat", axis=1),
        helper.make_node("Flatten", ["cat"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 7, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _conv1d_model(path: Path) -> Path:
    """x [3,10] -> conv1d (k 3, pad 1, stride 2) + relu -> maxpool1d 2 -> flatten -> gemm 4 -> sigmoid."""
    rng = np.random.default_rng(8)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, size=s).astype(np.float32), n)
             for n, s in (("w1", (4, 3, 3)), ("b1", (4,)), ("wf", (4, 8)), ("bf", (4,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv", pads=[1, 1], strides=[2]),
             helper.make_node("Relu", ["c"], ["c_relu"], name="relu"),
             helper.make_node("MaxPool", ["c_relu"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
             helper.make_node("Sigmoid", ["logits"], ["y"], name="sigmoid")]
    graph = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _fanout_model(path: Path) -> Path:
    """x [2,5,5] -> conv (pads 1) -> c, a graph output also read by add(c, x) -> relu -> y: the
    graph input and a graph output each go to two readers."""
    rng = np.random.default_rng(9)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, size=(2, 2, 3, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 5, 5]) for n in ("c", "y")]
    graph = helper.make_graph(nodes, "fanout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# per-channel formats on a ReLU output: one requantize format per lane of every pixel
_CHANNELS = ["ufixed<6,2,RND_CONV,SAT>", "ufixed<4,1,TRN,WRAP>", "ufixed<7,3,RND,SAT>", "ufixed<5,2,RND_CONV,SAT>"]
_DEFAULTS = {"input": "fixed<8,2,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
             "bias": "fixed<8,2,RND_CONV,SAT>", "activation": None}


@pytest.mark.parametrize("kind", ["residual", "conv1d", "fanout"])
def test_stream_layers_csim_bit_exact(kind, tmp_path):
    """Fan-out (a tensor read by two layers, a skip copy), a residual Add and a Concat of
    channels pixel by pixel, a table look-up per lane, max pooling over padding (the
    lowest value, not zero, pads it), dilation and strides, 1-D streams, per-channel
    requantize formats; a graph input and a graph output that more layers read."""
    if kind == "residual":
        model = _residual_model(tmp_path / "m.onnx")
        tensors = {"a_relu": {"axis": 1, "formats": _CHANNELS[:3]}, "d_relu": {"axis": 1, "formats": _CHANNELS}}
    elif kind == "conv1d":
        model = _conv1d_model(tmp_path / "m.onnx")
        tensors = {"c_relu": {"axis": 1, "formats": _CHANNELS}}
    else:
        model = _fanout_model(tmp_path / "m.onnx")
        tensors = {"y": {"axis": 1, "formats": _CHANNELS[:2]}}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": _DEFAULTS, "tensors": tensors}))
    out = tmp_path / "out"
    assert _compile(model, plan, out) == 0
    cpp = next((out / "hls" / "firmware").glob("*.cpp")).read_text()
    assert "finegrain::requantize_elements<" in cpp
    if kind == "fanout":  # the ports keep their names, the copies go to the layers and the port
        assert "void fanout(\n    hls::stream<x_pixel_t>& x,\n    hls::stream<c_pixel_t>& c,\n" in cpp
        assert "x_fanout(x, x_to_conv, x_to_skip);" in cpp and "c_fanout(c_stream, c_to_skip, c);" in cpp
    if kind == "residual":
        assert "a_relu_fanout(a_relu_stream, a_relu_to_conv_b, a_relu_to_skip);" in cpp
        assert "finegrain::add<b_t, a_relu_t, s_t, 3>(b_pixel.data, a_relu_pixel.data, s_pixel.data);" in cpp
        cat = _layer_function(cpp, "cat")
        assert "finegrain::copy_into<d_relu_t, cat_t, 4, 4>(d_relu_pixel.data, cat_pixel.data);" in cat
        assert "read_tensor" not in cat
        assert "#pragma HLS STREAM variable=a_relu_to_skip depth=42" in cpp
        assert "finegrain::lowest<s_t>()" in _layer_function(cpp, "pool")
    _csim(out, 300)


def test_formats_varying_along_height_width_are_refused(tmp_path, capsys):
    folder = ROOT / "examples" / "small_cnn"
    bits = np.full((4, 16, 16), 8)
    bits[:, :8, :] = 6  # the top half of every channel gets other formats
    np.savez(tmp_path / "arrays.npz", **{"r1.bits": bits, "r1.int_bits": np.full_like(bits, 5),
                                         "r1.signed": np.zeros_like(bits)})
    plan = json.loads((folder / "plan.json").read_text())
    plan["tensors"]["/relu1/Relu_output_0"] = {"elements": "arrays.npz:r1", "rounding": "RND_CONV",
                                               "overflow": "SAT"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    capsys.readouterr()
    assert _compile(folder / "model.onnx", tmp_path / "plan.json", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "'/relu1/Relu_output_0'" in err and "height/width" in err and "--arch parallel" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    # the same plan builds the io_parallel project
    assert main(["compile", str(folder / "model.onnx"), "--plan", str(tmp_path / "plan.json"), "-o",
                 str(tmp_path / "parallel"), "--backend", "hls", "--arch", "parallel"]) == 0


def test_a_global_reuse_factor_folds_the_layers_with_multipliers(tmp_path):
    """--reuse-factor sets the pixel loop's II of convolutions (and the dense kernel's REUSE),
    not of pooling or elementwise layers, which have no multipliers to share."""
    folder = ROOT / "examples" / "small_cnn"
    out = tmp_path / "out"
    assert _compile(folder / "model.onnx", folder / "plan.json", out, "--reuse-factor", "4") == 0
    cpp = (out / "hls" / "firmware" / "small_cnn.cpp").read_text()
    for layer, ii in (("conv1_Conv", 4), ("pool1_MaxPool", 1), ("conv2_Conv", 4), ("pool2_AveragePool", 1)):
        assert f"#pragma HLS PIPELINE II={ii}\n" in _layer_function(cpp, layer), layer
    assert "logits_t, 72, 4, 4>" in _layer_function(cpp, "fc_Gemm")
    # conv1 walks its 18 x 18 padded frame at II 4: the slowest layer
    assert "io_stream, initiation interval 1296." in (out / "hls" / "README.md").read_text()


def _geometries(count: int, seed: int = 13) -> list[dict]:
    """Random line-buffer geometries with at least one output pixel."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        ranges = {"channels": 4, "in_height": 8, "in_width": 8, "kernel_h": 4, "kernel_w": 4, "stride_h": 4,
                  "stride_w": 4, "dilation_h": 3, "dilation_w": 3}
        g = {k: int(rng.integers(1, hi)) for k, hi in ranges.items()}
        g.update({k: int(rng.integers(0, 3)) for k in ("pad_top", "pad_left", "pad_bottom", "pad_right")})
        oh = (g["in_height"] + g["pad_top"] + g["pad_bottom"] - (g["kernel_h"] - 1) * g["dilation_h"] - 1)
        ow = (g["in_width"] + g["pad_left"] + g["pad_right"] - (g["kernel_w"] - 1) * g["dilation_w"] - 1)
        if oh >= 0 and ow >= 0:
            cases.append({**g, "out_height": oh // g["stride_h"] + 1, "out_width": ow // g["stride_w"] + 1})
    return cases


def _expected_windows(g: dict) -> list[str]:
    """Per output pixel in raster order: 'oh ow' and the window [C][KH][KW] of the padded
    input whose pixel (h, w) channel ch holds ch*1000 + h*31 + w + 1, padding -1."""
    lines = []
    for oh in range(g["out_height"]):
        for ow in range(g["out_width"]):
            values = []
            for ch in range(g["channels"]):
                for kh in range(g["kernel_h"]):
                    for kw in range(g["kernel_w"]):
                        h = oh * g["stride_h"] - g["pad_top"] + kh * g["dilation_h"]
                        w = ow * g["stride_w"] - g["pad_left"] + kw * g["dilation_w"]
                        inside = 0 <= h < g["in_height"] and 0 <= w < g["in_width"]
                        values.append(ch * 1000 + h * 31 + w + 1 if inside else -1)
            lines.append(" ".join(map(str, [oh, ow, *values])))
    return lines


def test_line_buffer_windows_match_the_padded_frame(tmp_path):
    """finegrain::line_buffer over random geometries (padding on every side, strides and
    dilations up to 3 and 2, frames that end before or after the last window) gives every
    output pixel's window, in raster order, and nothing else."""
    from compiler.verify.csim import CXXFLAGS, ap_types_dir

    cases = _geometries(40)
    program = ['#include "finegrain/stream.h"', "#include <iostream>", "typedef ap_fixed<20, 20> v_t;"]
    for i, g in enumerate(cases):
        fields = "\n".join(f"    static const int {k} = {v};" for k, v in g.items())
        c, h, w, kh, kw = g["channels"], g["in_height"], g["in_width"], g["kernel_h"], g["kernel_w"]
        program.append(f"""struct g{i} {{
{fields}
}};
void run{i}() {{
    typedef finegrain::pixel<v_t, {c}> px_t;
    hls::stream<px_t> in;
    for (int r = 0; r < {h}; r++)
        for (int q = 0; q < {w}; q++) {{
            px_t px;
            for (int ch = 0; ch < {c}; ch++) px[ch] = ch * 1000 + r * 31 + q + 1;
            in.write(px);
        }}
    typedef finegrain::line_buffer<g{i}, v_t> lines_t;
    lines_t lines;
    v_t rows[lines_t::ROWS][lines_t::frame_width][lines_t::C], columns[lines_t::KH][lines_t::COLUMNS][lines_t::C];
    for (int r = 0; r < lines_t::frame_height; r++) {{
        lines.start_row(r);
        for (int c = 0; c < lines_t::frame_width; c++) {{
            v_t window[{c * kh * kw}];
            if (lines.step(in, r, c, v_t(-1), rows, columns, window)) {{
                std::cout << lines.out_row() << " " << lines.out_column();
                for (int k = 0; k < {c * kh * kw}; k++) std::cout << " " << window[k].to_int();
                std::cout << "\\n";
            }}
        }}
    }}
    std::cout << (in.empty() ? "end" : "input left") << std::endl;
}}""")
    program.append("int main() {\n" + "".join(f"    run{i}();\n" for i in range(len(cases))) + "}")
    source = tmp_path / "line_buffer.cpp"
    source.write_text("\n".join(program) + "\n")
    binary = tmp_path / "line_buffer"
    subprocess.run(["g++", *CXXFLAGS, "-I", str(ap_types_dir()), "-I", str(ROOT / "templates" / "hls"),
                    str(source), "-o", str(binary)], check=True)
    got = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.split("\n")
    for g in cases:
        want = _expected_windows(g) + ["end"]
        assert got[:len(want)] == want, g
        got = got[len(want):]


def test_always_zero_lanes_of_a_window_sum(tmp_path):
    """A sum's elements that are 0 by their bounds are cleared after its kernel (their products can lie
    below the container's fraction; tests/fuzz_cases/hls_*sum_always_zero_element replay it through
    g++ and Verilator). The io_stream project clears the same lanes in every pixel: channels 0 at every
    pixel give their lane indices, a channel 0 at some pixels only is refused, naming the tensor."""
    from dataclasses import replace

    from compiler.backends.hls import HLSOptions
    from compiler.backends.hls_types import HLSBackendError
    from compiler.backends.hls_stream import _StreamBuilder
    from compiler.project import compile_model

    folder = ROOT / "examples" / "small_cnn"
    graph = compile_model(folder / "model.onnx", folder / "plan.json", backends=("rtl",)).graph
    builder = _StreamBuilder(graph, HLSOptions(part="xcvu9p-flga2104-2L-e"), {})
    conv = next(n for n in graph.nodes if n.op.value == "conv")
    out = graph.tensor(conv.stages()[0].outputs[0])  # the sum, before its ReLU and requantize
    assert builder.lane_zero(conv, out, out.shape[0]) is None  # nothing pruned

    def pruned(mask) -> object:
        return replace(out, formats=replace(out.formats, width=np.where(mask, 0, out.formats.width)))

    channels = np.zeros(out.shape, dtype=bool)
    channels[[1, 3]] = True
    zero = builder.lane_zero(conv, pruned(channels), out.shape[0])
    assert zero["count"] == 2 and builder.constants[zero["index"]]["values"] == ["1", "3"]
    some = np.zeros(out.shape, dtype=bool)
    some[2, 0, 0] = True
    with pytest.raises(HLSBackendError, match=rf"{out.onnx_name or out.name}.*some pixels.*--arch parallel"):
        builder.lane_zero(conv, pruned(some), out.shape[0])
