"""The RTL stream architecture (--arch stream, compiler/backends/rtl/stream.py) end to end:
compiled through the CLI and simulated on Verilator by `finegrain sim`, every bit against the
emulator, and the cycle model's latency and II against the cycles Verilator measures.

* The small CNN example and the published MNIST CNN (through --arch auto) and KWS DS-CNN
  (REAL_PLANS): 100+ vectors back to back bit-exact with latency and II as schedule.json
  predicts; the same
  build under random output back-pressure (--stall) and random input gaps (--gaps): the same
  beats, none lost or duplicated.  One Verilator build per model (module-scoped fixtures;
  sim.runner caches builds by source under build/rtl_sim).
* Small ONNX models: a padded (asymmetrically), strided, dilated and folded conv into a
  padded max pool with a spatial output, and a 1-D conv chain into a dense tail: bit-exact,
  the cycle model's prediction equal to Verilator's measurement.
* --arch auto: the MNIST CNN (above 50,000 constant products) gets the stream top, folded
  by the budget, bit-exact as predicted (the build above); the examples stay parallel, their RTL byte for byte
  --arch parallel's.
* What the stream architecture refuses (exit 2, one paragraph, no output folder): requantize
  formats varying over positions, two inputs. A branch over tail layers is built: one core.
* fg_stream_reduce on its own bench (tests/rtl_library/tb_stream_reduce.sv) under random
  handshakes with a reset in the middle: timing as stream_library.Window for a kernel as large
  as the frame, every result numpy's sum or maximum.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `sim` is a top-level folder of the repo, not installed

from compiler.backends.rtl.stream import _StreamBuilder  # noqa: E402
from compiler.backends.rtl.stream_library import Window  # noqa: E402
from compiler.cli import main  # noqa: E402
from compiler.project import load_project  # noqa: E402
from tests.onnx_layers import compile_layers  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
EXAMPLES = ROOT / "examples"
BENCHES = Path(__file__).resolve().parent / "rtl_library"
TEST_MODULE = Path(__file__).stem

try:  # inside the simulator, cocotb is the point; under plain pytest it may be absent
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, Timer
except ImportError:  # pragma: no cover - the bench test below then fails with a clear message
    cocotb = None


pytestmark = pytest.mark.usefixtures("shared_rtl_builds")


def _compile(model: Path, plan: Path, out: Path, *extra) -> int:
    return main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl", *extra])


def _sim(out: Path, *extra) -> tuple[int, dict, dict]:
    """Exit code, report.json's sim, and what the testbench recorded."""
    code = main(["sim", str(out), *extra])
    recorded = json.loads((out / "rtl" / "sim" / "results.json").read_text())
    return code, json.loads((out / "report.json").read_text())["sim"], recorded


def _words(recorded: dict) -> dict[str, list[str]]:
    """Every output port's beats, in order, without their cycles."""
    return {port: [word for _, word in beats] for port, beats in recorded["outputs"].items()}


def _back_to_back(out: Path, vectors: int = 100) -> tuple[dict, dict]:
    """`finegrain sim` back to back: bit-exact, every beat, latency and II as predicted."""
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert schedule["architecture"] == "stream" and schedule["interface"] == "stream"
    code, report, recorded = _sim(out, "--vectors", str(vectors))
    assert code == 0, report
    beats = report["output_beats"]
    assert report["vectors"] >= vectors and report["mismatches"] == 0 and beats["expected"] == beats["received"]
    assert recorded["errors"] == [] and recorded["stopped"] is None
    assert (report["latency_cycles"], report["ii_cycles"]) == (schedule["latency_cycles"], schedule["ii_cycles"])
    assert (report["predicted_latency_cycles"], report["predicted_ii_cycles"]) == \
        (schedule["latency_cycles"], schedule["ii_cycles"])
    return report, recorded


def _under_stall_and_gaps(out: Path, words: dict, vectors: int = 100) -> None:
    """The same vectors with the output stalled at random, then with input gaps: the same
    beats come out (nothing lost, duplicated or changed), and the stall reaches the input."""
    for flags in (("--stall",), ("--gaps",)):
        code, report, recorded = _sim(out, "--vectors", str(vectors), *flags)
        beats = report["output_beats"]
        assert code == 0 and report["mismatches"] == 0 and beats["expected"] == beats["received"], (flags, report)
        assert recorded["errors"] == [] and recorded["stopped"] is None, flags
        assert _words(recorded) == words, flags
        if flags == ("--stall",):
            assert report["stall"] and sum(recorded["waited"].values()) > 0


# --- the examples and the published models ------------------------------------------------


def _real_plan(tmp_path: Path, name: str) -> Path:
    from tests.test_float_reference import REAL_PLANS
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(REAL_PLANS[name]))
    return plan


def _stream_build(tmp_path_factory, name: str, arch: str = "stream") -> tuple[Path, dict, dict]:
    """``name`` compiled with ``--arch arch`` into the stream architecture and simulated back to
    back (the one Verilator build the model's tests share): the folder, report.json's sim and the
    recorded beats."""
    folder = tmp_path_factory.mktemp(name)
    if name == "small_cnn":
        model, plan = EXAMPLES / name / "model.onnx", EXAMPLES / name / "plan.json"
    else:
        model, plan = MODELS / f"{name}.onnx", _real_plan(folder, name)
    out = folder / "out"
    assert _compile(model, plan, out, "--arch", arch) == 0
    assert json.loads((out / "config.json").read_text())["architecture"] == "stream"
    report, recorded = _back_to_back(out)
    return out, report, recorded


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    return _stream_build(tmp_path_factory, "small_cnn")


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """--arch auto, which picks the stream top for the MNIST CNN (test_auto_picks_stream_for_mnist):
    one Verilator build of this model serves both."""
    return _stream_build(tmp_path_factory, "mnist_cnn_float", "auto")


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    return _stream_build(tmp_path_factory, "mlperf_kws_dscnn_float")


def test_small_cnn_stream(small_cnn):
    out, report, recorded = small_cnn
    # conv1's 18 x 18 padded frame paces the pipeline: one pixel per cycle
    assert report["ii_cycles"] == 18 * 18
    _under_stall_and_gaps(out, _words(recorded))


def test_mnist_cnn_stream(mnist):
    out, report, recorded = mnist
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert [e["name"] for e in schedule["engines"]][-1] == "tail"
    assert report["ii_cycles"] >= schedule["inputs"][0]["beats"]
    _under_stall_and_gaps(out, _words(recorded))


def test_kws_dscnn_stream(kws):
    out, report, recorded = kws
    assert report["ii_cycles"] >= 49 * 10  # the input frame (49 x 10 pixels) bounds the II
    top = (out / "rtl" / "mlperf_kws_dscnn_float.sv").read_text()
    # the 24x5 average pool over the 25x5 frame sums its one window as the pixels arrive
    assert "fg_stream_reduce #(" in top and ".KH(24), .KW(5)" in " ".join(top.split())
    _under_stall_and_gaps(out, _words(recorded))


# --- small models: the cycle model against Verilator ----------------------------------------

_PLAN = {"defaults": {"input": "fixed<8,2,RND_CONV,SAT>", "weight": "fixed<6,1,RND_CONV,SAT>",
                      "bias": "fixed<8,2,RND_CONV,SAT>", "activation": "fixed<10,4,RND_CONV,SAT>"}}


def _weights(rng, **shapes):
    return [numpy_helper.from_array(rng.uniform(-1, 1, size=s).astype(np.float32), n) for n, s in shapes.items()]


def _conv2d_model(tmp_path: Path) -> Path:
    """x [2, 9, 8] -> conv a (3x3, pads top 1 left 2 bottom 0 right 1, strides (2, 1),
    dilations (1, 2)) + relu [3, 4, 7] in per-channel formats -> max pool 2x2, strides (1, 2),
    pads bottom/right 1 [3, 4, 4]: the output a stream of 16 pixels."""
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", pads=[1, 2, 0, 1], strides=[2, 1],
                              dilations=[1, 2]),
             helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
             helper.make_node("MaxPool", ["a_relu"], ["y"], name="pool", kernel_shape=[2, 2], strides=[1, 2],
                              pads=[0, 0, 1, 1])]
    inits = _weights(np.random.default_rng(3), wa=(3, 2, 3, 3), ba=(3,))
    # one format per channel: the lanes of a beat differ, the pool's padding is each lane's least value
    lanes = ["fixed<7,3,RND_CONV,SAT>", "ufixed<4,1,TRN,WRAP>", "ufixed<6,2,RND,SAT>"]
    plan = {**_PLAN, "tensors": {"a_relu": {"axis": 1, "formats": lanes}}}
    compile_layers(tmp_path, nodes, [1, 2, 9, 8], [1, 3, 4, 4], plan, inits)
    return tmp_path / "m.onnx"


def _global_max_model(tmp_path: Path) -> Path:
    """x [2, 4, 5] -> conv a (pad 1) + relu [3, 4, 5] -> global max pool [3, 1, 1] -> conv b
    1x1 [2, 1, 1] -> max pool 1x1 (a frame of one pixel) -> flatten -> gemm [4]."""
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
             helper.make_node("GlobalMaxPool", ["a_relu"], ["m"], name="global_max"),
             helper.make_node("Conv", ["m", "wb", "bb"], ["b"], name="conv_b"),
             helper.make_node("MaxPool", ["b"], ["p"], name="pixel_max", kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["p"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    inits = _weights(np.random.default_rng(6), wa=(3, 2, 3, 3), ba=(3,), wb=(2, 3, 1, 1), bb=(2,), wf=(4, 2),
                     bf=(4,))
    compile_layers(tmp_path, nodes, [1, 2, 4, 5], [1, 4], _PLAN, inits)
    return tmp_path / "m.onnx"


def _conv1d_model(tmp_path: Path) -> Path:
    """x [3, 12] -> conv a (k 3, pads 2 and 1, stride 2, dilation 2) + relu [4, 6] -> conv b
    (k 2) [2, 5] -> flatten -> gemm [4]."""
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", pads=[2, 1], strides=[2],
                              dilations=[2]),
             helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
             helper.make_node("Conv", ["a_relu", "wb", "bb"], ["b"], name="conv_b"),
             helper.make_node("Flatten", ["b"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    inits = _weights(np.random.default_rng(4), wa=(4, 3, 3), ba=(4,), wb=(2, 4, 2), bb=(2,), wf=(4, 10), bf=(4,))
    compile_layers(tmp_path, nodes, [1, 3, 12], [1, 4], _PLAN, inits)
    return tmp_path / "m.onnx"


@pytest.mark.parametrize("kind", ["conv2d", "conv1d", "global_max"])
def test_cycle_model_equals_verilator(kind, tmp_path):
    """schedule.json's latency and II (the cycle model's) are what Verilator measures, and
    every bit is the emulator's; conv a of the 2-D model is folded (reuse factor 3: its window
    issues at most every 3 cycles); the global max pool reduces as the pixels arrive."""
    model = {"conv2d": _conv2d_model, "conv1d": _conv1d_model, "global_max": _global_max_model}[kind](tmp_path)
    out = tmp_path / "out"
    extra = ["--arch", "stream"]
    if kind == "conv2d":
        (tmp_path / "layers.json").write_text(json.dumps({"conv_a": {"reuse_factor": 3}}))
        extra += ["--layer-config", str(tmp_path / "layers.json")]
    assert _compile(model, tmp_path / "plan.json", out, *extra) == 0
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    engines = {e["name"]: e for e in schedule["engines"]}
    if kind == "conv2d":
        assert engines["conv_a"]["reuse"] == 3 and schedule["outputs"][0]["beats"] == 16
        assert schedule["ii_cycles"] >= 3 * 4 * 7  # 28 windows, one every 3 cycles at most
    elif kind == "conv1d":
        assert schedule["inputs"][0]["beats"] == 12 and schedule["outputs"][0]["beats"] == 1
    else:
        assert "fg_stream_reduce" in (out / "rtl" / "g.sv").read_text()
    _, recorded = _back_to_back(out)
    _under_stall_and_gaps(out, _words(recorded))


# --- --arch auto ------------------------------------------------------------------------------


def test_auto_picks_stream_for_mnist(mnist):
    """Above 50,000 constant products: the stream top (the fixture compiled it with --arch auto
    and checked the architecture), folded as the budget chooses for the part (here the tail),
    bit-exact with the predicted latency and II (the fixture's back-to-back run)."""
    out, report, _ = mnist
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    assert schedule["architecture"] == "stream" and max(e["reuse"] for e in schedule["engines"]) > 1
    assert report["mismatches"] == 0


@pytest.mark.parametrize("example", sorted(p.parent.name for p in EXAMPLES.glob("*/model.onnx")))
def test_auto_keeps_the_examples_parallel(example, tmp_path):
    folder = EXAMPLES / example
    auto, parallel = tmp_path / "auto", tmp_path / "parallel"
    assert _compile(folder / "model.onnx", folder / "plan.json", auto) == 0
    assert _compile(folder / "model.onnx", folder / "plan.json", parallel, "--arch", "parallel") == 0
    assert json.loads((auto / "config.json").read_text())["architecture"] == "parallel"
    files = sorted(p.name for p in (auto / "rtl").glob("*.sv"))
    assert files == sorted(p.name for p in (parallel / "rtl").glob("*.sv")) and files
    for name in files:
        assert (auto / "rtl" / name).read_text() == (parallel / "rtl" / name).read_text(), name


# --- what the stream architecture refuses -------------------------------------------------------


def _refused(capsys, model: Path, plan: Path, out: Path) -> str:
    capsys.readouterr()
    assert _compile(model, plan, out, "--arch", "stream") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and "finegrain defect" not in err and not out.exists(), err
    return err


def test_formats_varying_over_positions_are_refused(tmp_path, capsys):
    folder = EXAMPLES / "small_cnn"
    bits = np.full((4, 16, 16), 8)
    bits[2, 5, 11] = 6  # one element of one channel in another format
    np.savez(tmp_path / "arrays.npz", **{"r1.bits": bits, "r1.int_bits": np.full_like(bits, 5),
                                         "r1.signed": np.zeros_like(bits)})
    plan = json.loads((folder / "plan.json").read_text())
    plan["tensors"]["/relu1/Relu_output_0"] = {"elements": "arrays.npz:r1", "rounding": "RND_CONV",
                                               "overflow": "SAT"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    err = _refused(capsys, folder / "model.onnx", tmp_path / "plan.json", tmp_path / "out")
    assert "'/relu1/Relu_output_0'" in err and "--arch parallel" in err
    assert _compile(folder / "model.onnx", tmp_path / "plan.json", tmp_path / "parallel", "--arch", "parallel") == 0


def _two_input_model(tmp_path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["s"], name="sum"), helper.make_node("Relu", ["s"], ["y"], name="act")],
        "two_inputs", [helper.make_tensor_value_info(n, 1, [1, 2, 4, 4]) for n in ("x", "z")],
        [helper.make_tensor_value_info("y", 1, [1, 2, 4, 4])])
    path = tmp_path / "two.onnx"
    import onnx
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _residual_model(tmp_path: Path, skip: str) -> Path:
    """x [2, 5, 5] -> conv 0 (pad 1) + relu [x0] -> conv a (pad 1) + relu [a_relu] -> conv b
    (pad 1) -> add(b, ``skip``) -> y."""
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["h"], name="conv_0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["x0"], name="relu_0"),
             helper.make_node("Conv", ["x0", "wa", "ba"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
             helper.make_node("Conv", ["a_relu", "wb", "bb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", skip], ["y"], name="skip")]
    inits = _weights(np.random.default_rng(5), w0=(2, 2, 3, 3), b0=(2,), wa=(2, 2, 3, 3), ba=(2,),
                     wb=(2, 2, 3, 3), bb=(2,))
    compile_layers(tmp_path, nodes, [1, 2, 5, 5], [1, 2, 5, 5], _PLAN, inits)
    return tmp_path / "m.onnx"


@pytest.mark.parametrize("skip", ["a_relu", "x0"])
def test_a_branch_streams_through_a_fork_and_a_join(skip, tmp_path):
    """``skip`` feeds conv b (or conv a) and the Add: it forks into two skip FIFOs and the Add
    joins conv b's stream with the skip path's, bit-exact (tests/test_rtl_stream_branches.py
    tests branches further)."""
    out = tmp_path / "out"
    assert _compile(_residual_model(tmp_path, skip), tmp_path / "plan.json", out, "--arch", "stream") == 0
    schedule = json.loads((out / "rtl" / "schedule.json").read_text())
    reader = "conv_b" if skip == "a_relu" else "conv_a"
    assert {f"{skip}_to_{reader}", f"{skip}_to_skip", "skip"} <= {e["name"] for e in schedule["engines"]}
    _back_to_back(out)


def test_a_branch_over_tail_layers_merges_their_cores(tmp_path):
    """h1 feeds fc2 and the Add after fc3: fc2, fc3 and the Add become one core, which reads h1
    (tests/test_rtl_stream_tail.py simulates such tails)."""
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Gemm", ["h1", "w2", "b2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Gemm", ["h2", "w3", "b3"], ["h3"], name="fc3", transB=1),
             helper.make_node("Add", ["h3", "h1"], ["y"], name="skip")]
    inits = _weights(np.random.default_rng(9), w1=(4, 6), b1=(4,), w2=(4, 4), b2=(4,), w3=(4, 4), b3=(4,))
    compile_layers(tmp_path, nodes, [1, 6], [1, 4], _PLAN, inits)
    out = tmp_path / "out"
    assert _compile(tmp_path / "m.onnx", tmp_path / "plan.json", out, "--arch", "stream") == 0
    project = load_project(out)
    builder = _StreamBuilder(project.graph, project.config.rtl_options(), project.source())
    _, collected, tail, _ = builder.split()
    cores = [list(dict.fromkeys(o for n in mini.nodes for o in n.onnx_nodes))
             for mini in builder.tail_cores(tail, collected.name)]
    assert cores == [["fc1"], ["fc2", "fc3", "skip"]]


def test_an_average_pool_not_counting_its_padding_is_refused(tmp_path, capsys):
    """Its edge windows divide by fewer pixels: not the plan's doing, so not the plan's fix."""
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=0)]
    compile_layers(tmp_path, nodes, [1, 2, 5, 5], [1, 2, 5, 5], _PLAN)
    err = _refused(capsys, tmp_path / "m.onnx", tmp_path / "plan.json", tmp_path / "out")
    assert "node 'pool'" in err and "count_include_pad=1" in err and "--arch parallel" in err
    assert "in the plan" not in err


def test_two_inputs_are_refused(tmp_path, capsys):
    (tmp_path / "plan.json").write_text(json.dumps(_PLAN))
    err = _refused(capsys, _two_input_model(tmp_path), tmp_path / "plan.json", tmp_path / "out")
    assert "two_inputs" in err and "2 inputs" in err and "--arch parallel" in err


# --- fg_stream_reduce on its own bench ---------------------------------------------------------

REDUCE_CYCLES, REDUCE_RESET_AT = 3000, 1400


def _lanes(beat: int, width: int, lanes: int, signed: bool) -> list[int]:
    values = [beat >> (lane * width) & ((1 << width) - 1) for lane in range(lanes)]
    return [v - (1 << width) if signed and v >> (width - 1) else v for v in values]


def reduce_reference(pixels: list[int], config: tuple[int, ...]) -> list[int]:
    """One frame's result per lane, as the RTL packs it (ACC_W bits each), from the frame's
    pixels in raster order up to the window's last: numpy."""
    width, lanes, _, frame_width, kh, kw, op, signed, acc_w, _ = config
    window = [pixels[r * frame_width + c] for r in range(kh) for c in range(kw)]
    values = np.array([_lanes(p, width, lanes, bool(signed)) for p in window], dtype=np.int64)
    result = values.max(axis=0) if op else values.sum(axis=0)
    return [int(v) & ((1 << acc_w) - 1) for v in result]


if cocotb is not None:

    @cocotb.test()
    async def stream_reduce_units(dut):
        """Every unit of tb_stream_reduce.sv under random in_valid and credit: in_ready, issue
        and out_valid as stream_library.Window's for the one window (strides as large as the
        frame) every cycle, each result numpy's for the window just accepted, held until the
        next one."""
        await Timer(1, "ns")  # constant outputs (the configs) settle only once the simulation runs
        units = len(dut.in_valid.value)
        raw = int(dut.reduce_config.value.to_unsigned())
        configs = [tuple(raw >> ((i * 10 + j) * 8) & 0xFF for j in range(10)) for i in range(units)]
        models = [Window(h, wd, kh, kw, sh=h, sw=wd, ii=ii) for _, _, h, wd, kh, kw, _, _, _, ii in configs]
        rng = random.Random(29)
        offered: list[int | None] = [None] * units
        accepted: list[list[int]] = [[] for _ in range(units)]  # since the last reset
        results = [0] * units  # results seen since the last reset
        held: list[list[int] | None] = [None] * units
        frames = [[0, 0] for _ in range(units)]  # results checked before and after the reset
        errors: list[str] = []
        valid_p, credit_p = 0.7, 0.7
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        for _ in range(3):
            await FallingEdge(dut.clk)
            dut.rst.value = 1
        for t in range(REDUCE_CYCLES):
            await FallingEdge(dut.clk)
            rst = REDUCE_RESET_AT <= t < REDUCE_RESET_AT + 2
            if t % 150 == 0:  # long stalls and full speed in turn
                valid_p, credit_p = rng.choice([0.2, 0.7, 1.0]), rng.choice([0.1, 0.6, 1.0])
            valid = data = credit = 0
            want = []
            for i, (config, model) in enumerate(zip(configs, models)):
                width, lanes = config[0], config[1]
                if offered[i] is None and not rst and rng.random() < valid_p:
                    offered[i] = rng.getrandbits(width * lanes)
                grant = rng.random() < credit_p
                valid |= (offered[i] is not None) << i
                data |= (offered[i] or 0) << (i * 32)
                credit |= grant << i
                want.append(model.step(rst, in_valid=offered[i] is not None, in_data=offered[i], credit=grant))
            dut.rst.value, dut.in_valid.value, dut.in_data.value, dut.credit.value = int(rst), valid, data, credit
            await ReadOnly()
            got = {name: int(getattr(dut, name).value.to_unsigned())
                   for name in ("in_ready", "issue", "out_valid", "out_data")}
            for i, (config, m) in enumerate(zip(configs, want)):
                lanes, acc_w = config[1], config[8]
                for name in ("in_ready", "issue", "out_valid"):
                    if got[name] >> i & 1 != int(m[name]):
                        errors.append(f"cycle {t} unit {i} {name}: rtl {got[name] >> i & 1}, model {int(m[name])}")
                out = [got["out_data"] >> (i * 32 + lane * acc_w) & ((1 << acc_w) - 1) for lane in range(lanes)]
                if m["out_valid"]:
                    size, last = config[2] * config[3], (config[4] - 1) * config[3] + config[5]
                    frame = accepted[i][results[i] * size:results[i] * size + last]
                    expected = reduce_reference(frame, config) if len(frame) == last else "a whole window"
                    if out != expected:
                        errors.append(f"cycle {t} unit {i} result {results[i]}: rtl {out}, numpy {expected}")
                    results[i] += 1
                    frames[i][t >= REDUCE_RESET_AT] += 1
                    held[i] = out
                elif held[i] is not None and out != held[i]:
                    errors.append(f"cycle {t} unit {i}: out_data changed to {out} without out_valid")
                if offered[i] is not None and m["in_ready"]:
                    if not rst:
                        accepted[i].append(offered[i])
                    offered[i] = None
                if rst:  # the frame under way is dropped; results count from the reset on
                    accepted[i], results[i], offered[i] = [], 0, None
        for i, (before, after) in enumerate(frames):
            if min(before, after) < 10:
                errors.append(f"unit {i}: only {before} and {after} results before and after the reset")
        assert not errors, f"{len(errors)} problems:\n" + "\n".join(errors[:30])


def test_stream_reduce_bench():
    if cocotb is None:
        pytest.fail("cocotb is not installed in this environment (pip install -e '.[dev]')")
    from sim import runner
    build_root = ROOT / "build" / "rtl_library"
    results = runner.build_and_test(
        sources=[*sorted((ROOT / "rtl").glob("*.sv")), BENCHES / "tb_stream_reduce.sv"], top="tb_stream_reduce",
        test_module=TEST_MODULE, test_dir=build_root / "runs" / "tb_stream_reduce", build_dir=build_root,
        python_path=[Path(__file__).parent], testcase=["stream_reduce_units"])
    assert results.ok, results.summary()
    assert [c.name for c in results.cases] == ["stream_reduce_units"], results.summary()
