"""The bad-input corpus, command-line half: options, output folders, damaged or foreign output
folders, and the inputs of emulate, csim and sim.  Every case is one `expect_clean_failure`:
exit 2, one paragraph naming the problem, no traceback, nothing half-written, a previous
output left intact.  (The models-and-plans half is tests/test_corpus_models.py.)

Two tiny models are compiled once per module; a case that damages a folder works on a copy.
No case reaches g++ or Verilator: every one fails before a build.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from badinput import expect_clean_failure

from compiler.cli import main
from compiler.output_folder import STAMP, locked

PLAN = {"defaults": {"input": "fixed<10,4,RND_CONV,SAT>", "weight": "fixed<8,3,RND_CONV,SAT>",
                     "bias": "fixed<10,4,RND_CONV,SAT>", "activation": "fixed<12,5,RND_CONV,SAT>"}, "tensors": {}}


def _save_model(path: Path, two_inputs: bool) -> Path:
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "fc.weight")
    b = numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "fc.bias")
    names = ["a", "b"] if two_inputs else ["x"]
    nodes = [helper.make_node("Add", ["a", "b"], ["x"], name="add")] if two_inputs else []
    nodes += [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], name="fc", transB=1),
              helper.make_node("Relu", ["h"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4])
                                              for n in names],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


class Corpus:
    """The shared inputs: tiny models, a plan, and their compiled output folders."""

    def __init__(self, base: Path):
        self.model = _save_model(base / "tiny.onnx", two_inputs=False)
        self.model2 = _save_model(base / "two.onnx", two_inputs=True)
        self.plan = base / "plan.json"
        self.plan.write_text(json.dumps(PLAN))
        self.tiny = base / "tiny_out"
        self.two = base / "two_out"
        for model, out in ((self.model, self.tiny), (self.model2, self.two)):
            code = main(["compile", str(model), "--plan", str(self.plan), "-o", str(out), "--backend", "hls,rtl"])
            assert code == 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory.mktemp("corpus"))


class Case:
    """Where one case runs: a fresh folder, and copies of the compiled outputs to damage."""

    def __init__(self, corpus: Corpus, tmp: Path, monkeypatch):
        self.c, self.tmp, self.monkeypatch = corpus, tmp, monkeypatch

    def compile(self, *extra, model=None, plan=None, out=None):
        return ["compile", model or self.c.model, "--plan", plan or self.c.plan, "-o", out or self.tmp / "out", *extra]

    def copy(self, which="tiny") -> Path:
        dst = self.tmp / which
        shutil.copytree(getattr(self.c, which), dst)
        return dst

    def stamped(self, **changes) -> Path:
        out = self.copy()
        stamp = json.loads((out / STAMP).read_text())
        stamp.update(changes)
        (out / STAMP).write_text(json.dumps(stamp))
        return out

    def file(self, name: str, text: str) -> Path:
        (self.tmp / name).write_text(text)
        return self.tmp / name

    def array(self, name: str, value) -> Path:
        path = self.tmp / name
        if isinstance(value, dict):
            np.savez(path, **value)
        else:
            np.save(path, value)
        return path

    def emulate(self, out=None, x=None, output=None):
        x = x if x is not None else self.array("x.npy", np.zeros((2, 4)))
        return ["emulate", out or self.c.tiny, "--input", x, "--output", output or self.tmp / "y.npy"]


def _damaged(path: Path, data: bytes = b"\x80\x04 this is not what was written") -> Path:
    path.write_bytes(data)
    return path


def _pickle_matching_stamp(case: Case) -> Path:
    """An ir.pkl that is not ours with a stamp that matches it: loading must still fail cleanly."""
    import hashlib

    out = case.copy()
    (out / "ir.pkl").write_bytes(b"\x80\x04K\x05.")  # pickle of the int 5
    stamp = json.loads((out / STAMP).read_text())
    stamp["ir_sha256"] = hashlib.sha256((out / "ir.pkl").read_bytes()).hexdigest()
    (out / STAMP).write_text(json.dumps(stamp))
    return out


def _inside(case: Case, *names) -> Path:
    """A project folder holding copies of the inputs named (model, plan)."""
    proj = case.tmp / "proj"
    proj.mkdir()
    for name in names:
        shutil.copy(getattr(case.c, name), proj / getattr(case.c, name).name)
    return proj


# Each case: id -> function(case) -> (argv, mention, out, keep).  ``out``: what the command
# would write (must stay as it was, no temporary); ``keep``: other paths that must not change.
CASES = {}


def case(name):
    def register(fn):
        assert name not in CASES
        CASES[name] = fn
        return fn
    return register


# --- compile options ------------------------------------------------------------------
for value, words in (("inf", ["--clock-ns", "finite", "inf"]), ("nan", ["--clock-ns", "nan"]),
                     ("-1", ["--clock-ns", "positive"]), ("0", ["--clock-ns", "positive"]),
                     ("1e400", ["--clock-ns", "inf"]), ("abc", ["--clock-ns", "invalid float value"]),
                     ("1e-3", ["--clock-ns", "from 0.1 to 10000"]), ("1e6", ["--clock-ns", "1000000.0"])):
    case(f"clock-ns-{value}")(lambda k, v=value, w=words: (k.compile("--clock-ns", v), w, k.tmp / "out", ()))
for value, words in (("0", ["--reuse-factor", "positive"]), ("-3", ["--reuse-factor", "-3"]),
                     ("1.5", ["--reuse-factor", "invalid int value"]), ("", ["--reuse-factor", "invalid int"]),
                     (str(2**31), ["--reuse-factor", "at most 2,147,483,647"])):
    case(f"reuse-factor-{value or 'empty'}")(
        lambda k, v=value, w=words: (k.compile("--reuse-factor", v), w, k.tmp / "out", ()))
case("strategy-unknown")(lambda k: (k.compile("--strategy", "fast"), ["--strategy", "'fast'"], k.tmp / "out", ()))
case("backend-unknown")(lambda k: (k.compile("--backend", "vhdl"), ["backend", "vhdl", "hls, rtl"], k.tmp / "out", ()))
case("backend-twice")(lambda k: (k.compile("--backend", "hls,rtl,hls"), ["--backend", "'hls' twice"], k.tmp / "out",
                                  ()))
case("rtl-interface-unknown")(lambda k: (k.compile("--rtl-interface", "wishbone"), ["interface", "wishbone"],
                                         k.tmp / "out", ()))
case("board-unknown")(lambda k: (k.compile("--board", "de10"), ["board", "de10", "pynq-z2"], k.tmp / "out", ()))
case("board-and-part")(lambda k: (k.compile("--board", "zcu102", "--part", "xc7z020clg400-1"),
                                  ["--board or --part"], k.tmp / "out", ()))
case("option-unknown")(lambda k: (k.compile("--frobnicate"), ["unrecognized arguments", "--frobnicate"],
                                  k.tmp / "out", ()))
case("plan-option-missing")(lambda k: (["compile", k.c.model, "-o", k.tmp / "out"], ["no quantizers", "--plan"],
                                       k.tmp / "out", ()))
case("no-command")(lambda k: ([], ["command", "required"], None, ()))
case("command-unknown")(lambda k: (["frobnicate"], ["invalid choice", "frobnicate"], None, ()))
case("layer-config-missing")(lambda k: (k.compile("--layer-config", k.tmp / "none.json"),
                                        ["layer configuration", "none.json", "does not exist"], k.tmp / "out", ()))
case("layer-config-not-json")(lambda k: (k.compile("--layer-config", k.file("l.json", "{fc: 1")),
                                         ["layer configuration", "not valid json"], k.tmp / "out", ()))
case("layer-config-unknown-layer")(lambda k: (k.compile("--layer-config",
                                                        k.file("l.json", '{"fc2": {"reuse_factor": 2}}')),
                                              ["'fc2'", "does not have", re.compile(r"its layers are: .*fc")],
                                              k.tmp / "out", ()))
case("layer-config-bad-entry")(lambda k: (k.compile("--layer-config", k.file("l.json", '{"fc": {"reuse": 2}}')),
                                          ["layer 'fc'", "reuse_factor"], k.tmp / "out", ()))
case("layer-config-bad-reuse")(lambda k: (k.compile("--layer-config", k.file("l.json", '{"fc": {"reuse_factor": 0}}')),
                                          ["reuse_factor", "positive"], k.tmp / "out", ()))
case("layer-config-reuse-true")(lambda k: (k.compile("--layer-config",
                                                     k.file("l.json", '{"fc": {"reuse_factor": true}}')),
                                           ["reuse_factor", "positive integer", "true"], k.tmp / "out", ()))
case("layer-config-huge-reuse")(lambda k: (k.compile("--layer-config",
                                                     k.file("l.json", '{"fc": {"reuse_factor": 1e30}}')),
                                           ["reuse_factor", "positive integer"], k.tmp / "out", ()))
case("layer-config-reuse-over-int")(lambda k: (k.compile("--layer-config",
                                                         k.file("l.json", '{"fc": {"reuse_factor": 99999999999}}')),
                                               ["layer 'fc'", "99999999999", "c++ int"], k.tmp / "out", ()))
case("layer-config-not-object")(lambda k: (k.compile("--layer-config", k.file("l.json", "[1, 2]")),
                                           ["layer configuration", "object keyed by layer name"], k.tmp / "out", ()))


# --- output folders -------------------------------------------------------------------
@case("out-current-folder")
def _(k):
    k.monkeypatch.chdir(k.tmp)
    shutil.copy(k.c.model, k.tmp / "model.onnx")
    return k.compile("--force", model="model.onnx", out="."), ["current folder"], None, [k.tmp]


@case("out-above-current-folder")
def _(k):
    (k.tmp / "work").mkdir()
    k.monkeypatch.chdir(k.tmp / "work")
    return k.compile("--force", out=".."), ["current folder or holds it"], None, [k.tmp]


@case("out-holds-model-force")
def _(k):
    proj = _inside(k, "model", "plan")
    return (k.compile("--force", model=proj / "tiny.onnx", plan=proj / "plan.json", out=proj),
            ["holds the model", "tiny.onnx"], proj, ())


@case("out-holds-plan-force")
def _(k):
    proj = _inside(k, "plan")
    return k.compile("--force", plan=proj / "plan.json", out=proj), ["holds the plan", "plan.json"], proj, ()


@case("out-holds-layer-config-force")
def _(k):
    proj = k.tmp / "proj"
    proj.mkdir()
    (proj / "layers.json").write_text('{"fc": {"reuse_factor": 1}}')
    return (k.compile("--force", "--layer-config", proj / "layers.json", out=proj),
            ["holds the input file", "layers.json"], proj, ())


@case("out-above-model-force")
def _(k):
    proj = _inside(k, "model")
    return k.compile("--force", model=proj / "tiny.onnx", out=k.tmp), ["holds the model"], None, [k.tmp]


@case("out-is-model-file")
def _(k):
    return k.compile("--force", out=k.c.model), ["is the model itself", "-o out"], None, [k.c.model]


@case("out-under-a-file")
def _(k):
    blocker = k.file("blocker", "a file")
    return k.compile(out=blocker / "sub" / "out"), ["is under", "blocker", "a file"], None, [blocker]


@case("out-onto-a-file")
def _(k):
    f = k.file("taken", "a file")
    return k.compile("--force", out=f), ["exists and is not a folder"], f, ()


@case("out-unwritable-folder")
def _(k):  # /sys refuses new entries even to root
    return k.compile(out="/sys/finegrain-corpus-out"), ["/sys", "finegrain-corpus-out"], None, ()


@case("out-name-too-long")
def _(k):
    return k.compile(out=k.tmp / ("a" * 250)), ["250 bytes long", "shorter -o"], k.tmp / ("a" * 250), ()


@case("out-disk-full")
def _(k):
    import errno

    import compiler.backends.hls

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "hls/firmware/tiny.cpp")

    k.monkeypatch.setattr(compiler.backends.hls, "write_hls_project", full)  # compile imports it when it writes
    return k.compile("--force", out=k.copy()), ["no space left", "tiny.cpp"], k.tmp / "tiny", ()


@case("out-foreign-not-empty")
def _(k):
    out = k.tmp / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    return k.compile(out=out), ["not empty", "--force"], out, ()


@case("out-foreign-not-empty-force")
def _(k):
    out = k.tmp / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    return k.compile("--force", out=out), ["no finegrain.json stamp", "--force replaces only"], out, ()


@case("out-previous-output-no-force")
def _(k):
    return k.compile(out=k.copy()), ["not empty", "pass --force"], k.tmp / "tiny", ()


@case("out-symlink-force")
def _(k):
    target = k.copy()
    (k.tmp / "link").symlink_to(target)
    return k.compile("--force", out=k.tmp / "link"), ["symbolic link"], k.tmp / "link", [target]


@case("out-locked-by-another-compile")
def _(k):
    out = k.copy()
    k.hold = locked(out)
    k.hold.__enter__()
    return k.compile("--force", out=out), ["another finegrain command", ".tiny.lock"], None, [out]


@case("out-previous-kept-when-model-missing")
def _(k):
    return k.compile("--force", model=k.tmp / "gone.onnx", out=k.copy()), ["gone.onnx"], k.tmp / "tiny", ()


@case("out-previous-kept-when-plan-bad")
def _(k):
    plan = k.file("bad.json", '{"defaults": {"weight": "fixed<0,3>"}}')
    return k.compile("--force", plan=plan, out=k.copy()), ["fixed<0,3>"], k.tmp / "tiny", ()


@case("out-previous-kept-when-layer-unknown")
def _(k):
    layers = k.file("l.json", '{"conv9": {"reuse_factor": 2}}')
    return k.compile("--force", "--layer-config", layers, out=k.copy()), ["'conv9'"], k.tmp / "tiny", ()


# --- plan-template --------------------------------------------------------------------
case("plan-template-missing-folder")(lambda k: (["plan-template", k.c.model, "-o", k.tmp / "no" / "plan.json"],
                                                ["-o", "does not exist"], k.tmp / "no", ()))
case("plan-template-onto-folder")(lambda k: (["plan-template", k.c.model, "-o", k.tmp], ["is a folder"], None,
                                             [k.tmp]))
case("plan-template-exists")(lambda k: (["plan-template", k.c.model, "-o", k.file("p.json", "{}")],
                                        ["exists", "--force"], k.tmp / "p.json", ()))
case("plan-template-onto-model")(lambda k: (["plan-template", k.c.model, "-o", k.c.model, "--force"],
                                            ["the model itself"], k.c.model, ()))
case("plan-template-under-file")(lambda k: (["plan-template", k.c.model, "-o", k.file("f", "x") / "p.json"],
                                            ["is not a folder"], k.tmp / "f", ()))
case("plan-template-model-missing")(lambda k: (["plan-template", k.tmp / "none.onnx", "-o", k.tmp / "p.json"],
                                               ["none.onnx"], k.tmp / "p.json", ()))


# --- damaged or foreign output folders, under every command that reads one -------------
FOLDER_DAMAGE = {
    "missing": (lambda k: k.tmp / "never-compiled", ["never-compiled", "not a folder"]),
    "foreign": (lambda k: k.tmp, ["not a finegrain output folder", "no finegrain.json stamp"]),
    "no-stamp": (lambda k: (k.copy() / STAMP).unlink() or k.tmp / "tiny", ["no finegrain.json stamp"]),
    "stamp-garbage": (lambda k: _damaged(k.copy() / STAMP).parent, ["damaged finegrain.json"]),
    "stamp-other-format": (lambda k: k.stamped(finegrain_output=99), ["format 99", "reads format 1"]),
    "stamp-other-version": (lambda k: k.stamped(finegrain_version="0.0.1"), ["compiled by finegrain 0.0.1"]),
    "ir-pkl-damaged": (lambda k: _damaged(k.copy() / "ir.pkl").parent, ["damaged ir.pkl"]),
    "ir-pkl-truncated": (lambda k: _damaged(k.copy() / "ir.pkl", (k.c.tiny / "ir.pkl").read_bytes()[:100]).parent,
                         ["damaged ir.pkl"]),
    "ir-pkl-foreign": (_pickle_matching_stamp, ["ir.pkl", "does not"]),
    "report-damaged": (lambda k: _damaged(k.copy() / "report.json", b'{"layers": [').parent,
                       ["report.json", "damaged"]),
}
for damage, (make, words) in FOLDER_DAMAGE.items():
    for command in ("emulate", "report", "csim", "sim"):
        if command in ("csim", "sim") and damage in ("missing", "stamp-garbage", "ir-pkl-truncated"):
            continue  # the same check as under emulate and report; keep the corpus fast
        def build(k, make=make, words=words, command=command):
            out = make(k)
            argv = k.emulate(out) if command == "emulate" else [command, out]
            return argv, words, k.tmp / "y.npy" if command == "emulate" else None, [out]
        case(f"{command}-folder-{damage}")(build)
case("report-json-not-object")(lambda k: (["report", _damaged(k.copy() / "report.json", b"[1]").parent],
                                          ["report.json", "damaged"], None, [k.tmp / "tiny"]))
case("report-json-no-layers")(lambda k: (["report", _damaged(k.copy() / "report.json", b'{"warnings": []}').parent],
                                          ["report.json", "damaged"], None, [k.tmp / "tiny"]))
case("report-json-layer-damaged")(lambda k: (
    ["report", _damaged(k.copy() / "report.json", b'{"model": "t", "compile_seconds": 1, "warnings": [], '
                                                  b'"layers": [{"name": "fc"}]}').parent],
    ["report.json", "damaged"], None, [k.tmp / "tiny"]))
for command in ("csim", "sim", "report"):
    @case(f"{command}-folder-in-use")
    def _(k, command=command):
        out = k.copy()
        k.hold = locked(out)
        k.hold.__enter__()
        return [command, out], ["another finegrain command", ".tiny.lock"], None, [out]
case("csim-no-hls")(lambda k: (shutil.rmtree(k.copy() / "hls") or ["csim", k.tmp / "tiny"], ["no HLS project"], None,
                               [k.tmp / "tiny"]))
case("sim-no-rtl")(lambda k: (shutil.rmtree(k.copy() / "rtl") or ["sim", k.tmp / "tiny"], ["has no RTL"], None,
                              [k.tmp / "tiny"]))
case("sim-schedule-garbage")(lambda k: (["sim", _damaged(k.copy() / "rtl" / "schedule.json").parents[1]],
                                        ["schedule.json", "damaged"], None, [k.tmp / "tiny"]))
case("sim-schedule-not-ours")(lambda k: (["sim",
                                          _damaged(k.copy() / "rtl" / "schedule.json", b'{"inputs": 3}').parents[1]],
                                         ["schedule.json", "does not describe"], None, [k.tmp / "tiny"]))
case("sim-schedule-other-model")(lambda k: (
    ["sim", _damaged(k.copy() / "rtl" / "schedule.json", (k.c.two / "rtl" / "schedule.json").read_bytes()).parents[1]],
    ["schedule.json", "does not describe"], None, [k.tmp / "tiny"]))


# --- emulate's files ------------------------------------------------------------------
case("emulate-output-missing-folder")(lambda k: (k.emulate(output=k.tmp / "no" / "y.npy"),
                                                 ["--output", "does not exist"], k.tmp / "no", ()))
case("emulate-output-is-folder")(lambda k: (k.emulate(output=k.tmp), ["--output", "is a folder"], None, [k.tmp]))
case("emulate-output-under-file")(lambda k: (k.emulate(output=k.file("f", "x") / "y.npy"), ["is not a folder"],
                                             k.tmp / "f", ()))

# --- inputs of emulate, csim and sim (each fails before anything is built) ----------------
INPUTS = {
    "missing-file": (lambda k: k.tmp / "none.npy", ["input file", "none.npy", "does not exist"]),
    "not-npy": (lambda k: k.file("x.npy", "1,2,3,4"), ["cannot read input file"]),
    "pickled-objects": (lambda k: k.array("x.npy", np.array([{"a": 1}, None], dtype=object)),
                        ["cannot read input file"]),
    "wrong-shape": (lambda k: k.array("x.npy", np.zeros((2, 5))), ["input 'x'", "shape [2, 5]", "[batch, 4]"]),
    "wrong-rank": (lambda k: k.array("x.npy", np.zeros((2, 2, 4))), ["input 'x'", "shape [2, 2, 4]"]),
    "scalar": (lambda k: k.array("x.npy", np.float64(1.0)), ["input 'x'", "shape []"]),
    "empty-batch": (lambda k: k.array("x.npy", np.zeros((0, 4))), ["input 'x'", "batch >= 1"]),
    "nan": (lambda k: k.array("x.npy", np.array([[0, 1, np.nan, 2]])), ["input 'x'", "non-finite", "[0, 2]"]),
    "inf": (lambda k: k.array("x.npy", np.array([[0, 1, 2, -np.inf]])), ["input 'x'", "non-finite"]),
    "complex": (lambda k: k.array("x.npy", np.ones((2, 4), dtype=complex)), ["input 'x'", "complex", "real numbers"]),
    "strings": (lambda k: k.array("x.npy", np.full((2, 4), "1.5")), ["input 'x'", "real numbers"]),
    "npz-wrong-key": (lambda k: k.array("x.npz", {"input": np.zeros((2, 4))}), ["missing ['x']", "unknown ['input']"]),
}
for problem, (make, words) in INPUTS.items():
    for command in ("emulate", "csim", "sim"):
        if command != "emulate" and problem in ("not-npy", "pickled-objects", "wrong-rank", "scalar", "strings"):
            continue  # the same reader as emulate's; keep the corpus fast
        def build(k, make=make, words=words, command=command):
            x = make(k)
            argv = k.emulate(x=x) if command == "emulate" else [command, k.c.tiny, "--input", x]
            return argv, words, k.tmp / "y.npy" if command == "emulate" else None, [k.c.tiny]
        case(f"{command}-input-{problem}")(build)
TWO_INPUTS = {
    "one-array": (lambda k: k.array("x.npy", np.zeros((2, 4))), ["one array", "2 inputs", "a, b", ".npz"]),
    "one-missing": (lambda k: k.array("x.npz", {"a": np.zeros((2, 4))}), ["missing ['b']"]),
    "batch-differs": (lambda k: k.array("x.npz", {"a": np.zeros((2, 4)), "b": np.zeros((3, 4))}),
                      ["different batch sizes"]),
}
for problem, (make, words) in TWO_INPUTS.items():
    for command in ("emulate", "csim", "sim"):
        def build(k, make=make, words=words, command=command):
            x = make(k)
            argv = k.emulate(k.c.two, x=x) if command == "emulate" else [command, k.c.two, "--input", x]
            return argv, words, k.tmp / "y.npy" if command == "emulate" else None, [k.c.two]
        case(f"{command}-two-inputs-{problem}")(build)

# --- csim and sim options -------------------------------------------------------------
for command in ("csim", "sim"):
    case(f"{command}-vectors-negative")(lambda k, c=command: ([c, k.c.tiny, "--vectors", "-1"], ["--vectors", "-1"],
                                                             None, [k.c.tiny]))
    case(f"{command}-vectors-huge")(lambda k, c=command: ([c, k.c.tiny, "--vectors", str(10**12)],
                                                         ["--vectors", "between 0 and 25,000,000", "4 input values"],
                                                         None, [k.c.tiny]))
    case(f"{command}-vectors-not-int")(lambda k, c=command: ([c, k.c.tiny, "--vectors", "1e3"],
                                                            ["--vectors", "invalid int value"], None, [k.c.tiny]))
    case(f"{command}-seed-negative")(lambda k, c=command: ([c, k.c.tiny, "--seed", "-1"], ["--seed", "-1"], None,
                                                          [k.c.tiny]))
    case(f"{command}-seed-huge")(lambda k, c=command: ([c, k.c.tiny, "--seed", str(2**64)], ["--seed", "2**63"], None,
                                                      [k.c.tiny]))
case("sim-simulator-unknown")(lambda k: (["sim", k.c.tiny, "--simulator", "vcs"], ["--simulator", "'vcs'"], None,
                                         [k.c.tiny]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_cleanly(corpus, tmp_path, monkeypatch, capsys, name):
    k = Case(corpus, tmp_path, monkeypatch)
    argv, mention, out, keep = CASES[name](k)
    try:
        expect_clean_failure(capsys, argv, mention=mention, out=out, keep=keep)
    finally:
        if hasattr(k, "hold"):
            k.hold.__exit__(None, None, None)


def test_corpus_size():
    assert len(CASES) >= 60, len(CASES)


def test_internal_error_is_one_paragraph_exit_3(monkeypatch, capsys, corpus):
    """An unexpected exception is a bug: one paragraph asking for a report, exit code 3 (so the
    corpus, which demands 2, still catches it), the traceback only with FINEGRAIN_DEBUG=1."""
    import compiler.cli as cli

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "_cmd_report", broken)
    monkeypatch.delenv("FINEGRAIN_DEBUG", raising=False)
    assert main(["report", str(corpus.tiny)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("internal error: ") and "KeyError" in err and "bug in finegrain" in err
    assert "Traceback" not in err and "\n\n" not in err.strip()
    monkeypatch.setenv("FINEGRAIN_DEBUG", "1")
    assert main(["report", str(corpus.tiny)]) == 3
    assert "Traceback" in capsys.readouterr().err
