"""The RTL builder's exact moves across stage and layer boundaries (compiler/backends/rtl/fusion.py),
simulated on Verilator against the emulator:

* RND, RND_MIN_INF and CEIL folded into the sums' constants (the requantize then truncates), for
  every overflow mode, signed and unsigned outputs, after the sums directly and through a ReLU;
* a ReLU before a saturating requantize into unsigned formats left out (and kept before WRAP or a
  signed format);
* a layer handing its values to the next within a cycle (no register of its own), at clocks where
  it does and where it does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from compiler.cli import main
from compiler.fixed import Overflow, Rounding
from tests.test_rtl import _const, _save, _schedule, _sim, _vec

RNG = np.random.default_rng(17)
SHAPES = [(6, 2, "fixed"), (4, 3, "fixed"), (5, -1, "ufixed")]
# every rounding x overflow pair on three formats: the first layer's requantize right after its sums
H_FORMATS = [f"{kind}<{w},{i},{r.name},{o.name}>" for r in Rounding for o in Overflow for w, i, kind in SHAPES]
N = len(H_FORMATS)
# after a ReLU: unsigned saturating (the ReLU left out), unsigned WRAP and signed (the ReLU kept)
R_FORMATS = [f"{kind}<{w},{i},{r.name},{o.name}>" for r in Rounding for o in Overflow
             for w, i, kind in [(5, 2, "ufixed"), (6, 3, "fixed")]]


def _model(path: Path) -> Path:
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="act1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["g"], name="fc2", transB=1),
             helper.make_node("Relu", ["g"], ["y"], name="act2")]
    # fc2 sparse (5 of fc1's outputs per output): a small build
    w2 = np.zeros((len(R_FORMATS), N))
    for row in w2:
        row[RNG.choice(N, 5, replace=False)] = RNG.choice([-1, 1], 5) * RNG.uniform(0.2, 1.0, 5)
    inits = [_const("w1", RNG.normal(size=(N, 4)) / 2), _const("b1", RNG.normal(size=N)),
             _const("w2", w2), _const("b2", RNG.normal(size=len(R_FORMATS)))]
    return _save(nodes, [_vec("x", 4)], [_vec("y", len(R_FORMATS))], inits, path, "fusion")


def _compile(tmp_path: Path, *options: str) -> tuple[Path, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = _model(tmp_path / "m.onnx")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"input": "fixed<8,3,TRN,SAT>", "weight": "fixed<6,1,RND,SAT>",
                                             "bias": "fixed<8,3>", "activation": None},
                                "tensors": {"h": {"axis": 1, "formats": H_FORMATS},
                                            "y": {"axis": 1, "formats": R_FORMATS}}}))
    out = tmp_path / "out"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(out), "--backend", "rtl", *options]) == 0
    return out, (out / "rtl" / "fusion.sv").read_text()


FOLDED = {int(Rounding.RND), int(Rounding.RND_MIN_INF), int(Rounding.CEIL)}


def _requantizes(text: str, tensor: str) -> dict[int, dict[str, int]]:
    """Element -> the parameters of its fg_requantize into ``tensor``."""
    found = re.findall(r"fg_requantize #\(([^;]*?)\) u_(\w+?)__(\d+)_rq\b", text)
    return {int(i): dict((k, int(v)) for k, v in re.findall(r"\.(\w+)\((-?\d+)\)", params))
            for params, name, i in found if name == tensor}


def _rounding(formats: list[str], i: int) -> int:
    return int(Rounding[formats[i].split(",")[2]])


@pytest.mark.parametrize("clock", ["2.5", "5", "20"])
def test_folded_rounding_dropped_relu_and_hand_over_bit_exact(tmp_path, clock):
    out, text = _compile(tmp_path, "--clock-ns", clock)
    code, report = _sim(out, "--vectors", "1500")
    assert code == 0 and report["mismatches"] == 0 and report["vectors"] == 1505
    assert report["latency_cycles"] == _schedule(out)["latency_cycles"]
    # fc1's requantize of h follows its sums: the foldable roundings truncate there
    h = _requantizes(text, "h")
    assert len(h) == N
    for i, p in h.items():
        assert p["ROUNDING"] == (0 if _rounding(H_FORMATS, i) in FOLDED else _rounding(H_FORMATS, i)), H_FORMATS[i]
    # fc2's sums feed a ReLU: left out before the unsigned saturating formats, whose foldable
    # roundings then truncate; kept (and the rounding with it) before WRAP and signed formats
    passed = {i for i, f in enumerate(R_FORMATS) if f.startswith("ufixed") and not f.endswith("WRAP>")}
    relus = {int(i) for i in re.findall(r"u_y_exact__(\d+)_relu", text)}
    assert relus and not relus & passed
    y = _requantizes(text, "y")  # (a few outputs are 0 by their bounds: no requantize)
    assert len(y) > 0.8 * len(R_FORMATS) and any(_rounding(R_FORMATS, i) in FOLDED for i in passed & set(y))
    for i, p in y.items():
        folds = i in passed and _rounding(R_FORMATS, i) in FOLDED
        assert p["ROUNDING"] == (0 if folds else _rounding(R_FORMATS, i)), R_FORMATS[i]
    assert any(y[i]["IN_SIGNED"] for i in passed & set(y))  # signed sums, their ReLU left out


def test_hand_over_depends_on_the_clock(tmp_path):
    """fc1 ends without a register of its own (no ``_q``) and fc2 starts in fc1's last cycle.
    At 20 ns all of fc1 fits its first cycle and fc2's adders read its ReLUs' outputs directly;
    at 2.5 ns fc1 takes cycles of its own."""
    for clock, within in (("20", True), ("2.5", False)):
        out, text = _compile(tmp_path / clock, "--clock-ns", clock)
        layers = {layer["name"]: layer for layer in _schedule(out)["layers"]}
        fc1, fc2 = layers["fc1"], layers["fc2"]
        assert fc2["start_cycle"] == fc1["start_cycle"] + fc1["latency_cycles"]
        assert (fc1["latency_cycles"] == 0) == within, clock
        assert not re.search(r"\br__\d+_q\b", text)
        # fc2's graph reading an fc1 output (r__<i>_relu) combinationally, not through a register
        assert any(re.search(r"assign \w+ = [^;]*\br__\d+_relu\b(?!_z)", line) for line in text.splitlines())
