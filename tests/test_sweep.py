"""finegrain plan sweep (compiler/sweep.py): three points trained on sklearn's digits, exported,
compiled and estimated end to end in spawned processes (--jobs 2) and as Ray tasks on a local Ray
instance (the same numbers), the Pareto front on constructed points, report.html self-contained
and drawn in headless Chromium, a failing point that the sweep survives, yosys on --synth all, and
bad SPEC files and options refused with exit code 2 and no OUT."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from badinput import expect_clean_failure
from compiler.cli import main
from compiler.sweep import pareto_front
from test_report_html import _assert_self_contained, _chromium, _parse

pytest.importorskip("torch")
pytest.importorskip("sklearn")

# lambda weighs an L1 penalty on the weights: more lambda, more weights round to 0 (pruned: no
# hardware), fewer LUTs and (eventually) less accuracy
DIGITS_SPEC = '''
import torch
from sklearn.datasets import load_digits
from torch import nn

from compiler.train import QuantInput, QuantLinear, QuantReLU, export

W, B = "fixed<5,1,RND_CONV,SAT>", "fixed<10,4,RND_CONV,SAT>"


def train(point, out_dir):
    torch.manual_seed(point["seed"])
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0), torch.tensor(y)
    model = nn.Sequential(QuantInput("ufixed<4,0,RND_CONV,SAT>"), QuantLinear(64, 8, weight_quant=W, bias_quant=B),
                          QuantReLU(output_quant="ufixed<6,3,RND_CONV,SAT>"),
                          QuantLinear(8, 10, weight_quant=W, bias_quant=B)).double()
    layers = [m for m in model if isinstance(m, QuantLinear)]
    opt = torch.optim.Adam(model.parameters(), 0.03)
    for _ in range(50):
        loss = nn.functional.cross_entropy(model(x[:1400]), y[:1400])
        loss = loss + point["lambda"] * sum(m.weight.abs().mean() for m in layers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = (model(x[1400:]).argmax(1) == y[1400:]).double().mean()
        zeros = sum(int((m.weight_quant(m.weight) == 0).sum()) for m in layers)
    export(model, x[:1], out_dir)
    return {"accuracy": accuracy, "zero_weights": zeros}
'''

# two named points: one exports an untrained 4-2 layer, the other fails in training
TINY_SPEC = '''
import torch
from torch import nn

from compiler.train import QuantInput, QuantLinear, export

POINTS = [{"name": "good", "width": 4}, {"name": "bad", "width": 0}]


def train(point, out_dir):
    width = point.get("width", 4)
    if width == 0:
        raise RuntimeError("no layer of width 0")
    torch.manual_seed(point["seed"])
    model = nn.Sequential(QuantInput("fixed<6,2,RND_CONV,SAT>"),
                          QuantLinear(width, 2, weight_quant="fixed<4,1,RND_CONV,SAT>",
                                      bias_quant="fixed<8,3,RND_CONV,SAT>")).double()
    export(model, torch.randn(1, width, dtype=torch.float64), out_dir)
    return {"accuracy": 0.5}
'''


def _write(folder: Path, text: str, name: str = "spec.py") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _run_digits(tmp: Path, *extra: str) -> tuple[int, Path]:
    spec = _write(tmp, DIGITS_SPEC)
    out = tmp / "out"
    return main(["plan", "sweep", str(spec), "-o", str(out), "--lambda", "0", "1", "2", *extra]), out


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    code, out = _run_digits(tmp_path_factory.mktemp("local"), "--jobs", "2")
    assert code == 0
    return out


def _summary(out: Path) -> list[tuple]:
    sweep = json.loads((out / "sweep.json").read_text())
    return [(e["name"], e["accuracy"], e["estimate"]["lut"], e["estimate"]["latency_cycles"], e["pareto"])
            for e in sweep["points"]]


# --- the Pareto front ------------------------------------------------------------------------
def test_pareto_front_of_constructed_points():
    points = [(100, 0.80), (200, 0.90), (150, 0.85), (300, 0.88), (200, 0.90), (100, 0.70), (50, 0.60),
              (400, 0.95), (400, 0.94), (60, 0.60)]
    assert pareto_front(points) == [True, True, True, False, True, False, True, True, False, False]
    assert pareto_front([]) == []
    assert pareto_front([(10, 0.5)]) == [True]
    rng = random.Random(4)
    for _ in range(200):  # on random sets: nothing on the front is beaten, everything off it is
        pts = [(rng.randint(1, 8), rng.randint(0, 5) / 5) for _ in range(rng.randint(1, 9))]
        beaten = [any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in pts) for p in pts]
        assert pareto_front(pts) == [not b for b in beaten]


# --- end to end ------------------------------------------------------------------------------
def test_sweep_of_three_points_in_processes(local_sweep):
    sweep = json.loads((local_sweep / "sweep.json").read_text())
    assert sweep["failed"] == [] and sweep["options"]["jobs"] == 2
    entries = sweep["points"]
    assert [e["name"] for e in entries] == ["00_lambda_0", "01_lambda_1", "02_lambda_2"]
    assert [e["point"]["lambda"] for e in entries] == [0, 1, 2] and all(e["point"]["seed"] == 0 for e in entries)
    for e in entries:
        assert e["status"] == "ok" and 0.5 < e["accuracy"] <= 1, e
        assert e["metrics"]["zero_weights"] >= 0  # the SPEC's own metric is kept
        assert e["estimate"]["lut"] > 0 and e["estimate"]["latency_cycles"] > 0
        folder = local_sweep / "points" / e["name"]
        assert {p.name for p in (folder / "export").iterdir()} >= {"model.onnx", "plan.json"}
        build = folder / "build"
        config = json.loads((build / "config.json").read_text())
        assert config["model"] == "export/model.onnx"  # relative: the point folder moved from its worker
        assert json.loads((build / "report.json").read_text())["estimate"]["lut"] == e["estimate"]["lut"]
    # the penalty prunes: more lambda, more zero weights and fewer LUTs
    zeros = [e["metrics"]["zero_weights"] for e in entries]
    luts = [e["estimate"]["lut"] for e in entries]
    assert zeros[0] < zeros[1] < zeros[2] and luts[0] > luts[1] > luts[2], (zeros, luts)
    assert [e["pareto"] for e in entries] == pareto_front([(e["estimate"]["lut"], e["accuracy"]) for e in entries])
    assert entries[2]["pareto"]  # the fewest LUTs is always on the front
    table = (local_sweep / "sweep.md").read_text()
    assert table.count("\n| 0") == 3 and "LUT (est.)" in table
    assert json.loads((local_sweep / "finegrain.json").read_text())["kind"] == "sweep"


def test_compiled_point_is_a_finegrain_folder(local_sweep, capsys):
    """The moved build folder is whole: `finegrain report` reads it and estimates the same LUTs."""
    build = local_sweep / "points" / "02_lambda_2" / "build"
    assert main(["report", str(build)]) == 0
    capsys.readouterr()
    sweep = json.loads((local_sweep / "sweep.json").read_text())
    assert json.loads((build / "report.json").read_text())["estimate"]["lut"] == sweep["points"][2]["estimate"]["lut"]


def test_sweep_on_local_ray_equals_processes(local_sweep, tmp_path):
    pytest.importorskip("ray")
    code, out = _run_digits(tmp_path, "--jobs", "2", "--ray", "local")
    assert code == 0
    assert _summary(out) == _summary(local_sweep)  # same seed, fresh processes: the same points


def test_a_failing_point_is_reported_and_yosys_synthesizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FINEGRAIN_SYNTH_CACHE", str(tmp_path / "synth_cache"))  # yosys runs for real
    spec, out = _write(tmp_path, TINY_SPEC), tmp_path / "out"
    assert main(["plan", "sweep", str(spec), "-o", str(out), "--jobs", "2", "--synth", "all"]) == 1
    printed = capsys.readouterr().out
    assert "bad: FAILED: RuntimeError: no layer of width 0" in printed
    sweep = json.loads((out / "sweep.json").read_text())
    good, bad = sweep["points"]
    assert sweep["failed"] == ["bad"] and bad["status"] == "failed" and bad["estimate"] is None
    assert "spec.py" in bad["error"] and "no layer of width 0" in bad["error"]  # the SPEC's frame is named
    assert "no layer of width 0" in (out / bad["paths"]["error"]).read_text()
    assert good["status"] == "ok" and good["pareto"] and good["synth"]["lut"] > 0 and not good["synth"]["cached"]
    assert json.loads((out / good["paths"]["build"] / "report.json").read_text())["synth"]["lut"] == \
        good["synth"]["lut"]
    page = (out / "report.html").read_text()
    assert "Failed points" in page and "no layer of width 0" in page


def test_lut_budget_points_record_whether_the_estimate_kept_them(tmp_path, capsys):
    """--max-lut points replace the SPEC's POINTS; the budget is passed on to train(), not enforced."""
    spec, out = _write(tmp_path, TINY_SPEC), tmp_path / "out"
    assert main(["plan", "sweep", str(spec), "-o", str(out), "--max-lut", "1", "100000", "--jobs", "2",
                 "--seed", "3"]) == 0
    capsys.readouterr()
    entries = json.loads((out / "sweep.json").read_text())["points"]
    assert [(e["name"], e["point"]["max_lut"], e["point"]["seed"]) for e in entries] == \
        [("00_max_lut_1", 1, 3), ("01_max_lut_100000", 100000, 3)]
    assert entries[0]["estimate"]["lut"] > 1
    assert [e["within_max_lut"] for e in entries] == [False, True]


# --- the page --------------------------------------------------------------------------------
def test_report_page_is_self_contained(local_sweep):
    page = (local_sweep / "report.html").read_text()
    _assert_self_contained(page, _parse(page))
    assert page.count("<svg") == 1
    for text in ("accuracy (%)", "LUTs (estimated", "lambda=0", "lambda=1", "lambda=2", "Pareto front"):
        assert text in page, text


def test_report_page_renders_in_headless_chromium(local_sweep, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed; `make tools` installs it where apt is available")
    shot = tmp_path / "page.png"
    run = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'p'}",
                          "--hide-scrollbars", "--window-size=1280,1000", f"--screenshot={shot}",
                          (local_sweep / "report.html").resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert (pixels < 0.9).any(axis=2).mean() > 0.03, "the screenshot is (nearly) blank"
    front = np.abs(pixels - np.array([0xC4, 0x4E, 0x52]) / 255).max(axis=2) < 0.05
    assert front.sum() > 200  # the front's markers and step line are drawn


# --- bad SPEC files and options ----------------------------------------------------------------
BAD_SPECS = {
    "syntax": ("def train(point, out_dir)\n    return {}\n", ["not valid python", "line 1"]),
    "no_train": ("def fit(point, out_dir):\n    return {}\n", ["defines no function train(point, out_dir)"]),
    "signature": ("def train(point):\n    return {}\n", ["must take two arguments"]),
    "load_fails": ("import no_such_module_here\n", ["failed while loading", "no_such_module_here"]),
    "points": ("POINTS = 3\ndef train(point, out_dir):\n    return {}\n", ["POINTS", "list of dicts", "got int 3"]),
    "points_of_numbers": ("POINTS = [5]\ndef train(point, out_dir):\n    return {}\n",
                          ["list of dicts", "got 5 among"]),
    "point_nan": ("POINTS = [{'x': float('nan')}]\ndef train(point, out_dir):\n    return {}\n",
                  ["point 0", "not plain json data", "no nan"]),
    "name_not_a_string": ("POINTS = [{'name': 5}]\ndef train(point, out_dir):\n    return {}\n",
                          ["point 0's name must be a string", "got 5"]),
    "no_points": ("def train(point, out_dir):\n    return {}\n", ["no points to sweep", "--lambda"]),
    "returns_list": ("POINTS = [{'a': 1}]\ndef train(point, out_dir):\n    return [0.9]\n",
                     ["train() returned list, not a dict", "point '00_a_1'"]),
    "no_accuracy": ("POINTS = [{'a': 1}]\ndef train(point, out_dir):\n    return {'acc': 0.9}\n",
                    ["accuracy None", "it returned the keys ['acc']"]),
    "percent": ("POINTS = [{'a': 1}]\ndef train(point, out_dir):\n    return {'accuracy': 93.0}\n",
                ["accuracy 93.0", "fraction from 0 to 1"]),
    "not_json": ("POINTS = [{'a': 1}]\ndef train(point, out_dir):\n    return {'accuracy': 0.9, 'f': open}\n",
                 ["not json data"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_exits_2_without_output(case, tmp_path, capsys):
    text, mention = BAD_SPECS[case]
    spec = _write(tmp_path, text)
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", tmp_path / "out", "--jobs", "1"], mention,
                         out=tmp_path / "out")


@pytest.mark.parametrize("argv, mention", [
    (["missing.py", "--lambda", "1"], ["spec file", "missing.py", "does not exist"]),
    (["spec.py", "--lambda", "-1"], ["--lambda values must be finite and non-negative"]),
    (["spec.py", "--max-lut", "0"], ["--max-lut values must be positive"]),
    (["spec.py", "--lambda", "1", "--jobs", "0"], ["--jobs must be a positive integer"]),
    (["spec.py", "--lambda", "1", "--clock-ns", "0"], ["--clock-ns must be"]),
    (["spec.py", "--lambda", "1", "--part", "nonsense"], ["nonsense"]),
    (["spec.py", "--lambda", "1", "--synth", "some"], ["--synth", "invalid choice"]),
])
def test_bad_options_exit_2_without_output(argv, mention, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "def train(point, out_dir):\n    return {'accuracy': 1.0}\n")
    expect_clean_failure(capsys, ["plan", "sweep", *argv, "-o", "out"], mention, out=tmp_path / "out")


@pytest.mark.parametrize("kwargs, message", [
    ({"lambdas": [-1.0]}, r"^lambdas values must be finite and non-negative"),
    ({"max_luts": [0]}, r"^max_luts values must be positive"),
    ({"lambdas": [1.0], "seed": -1}, r"^seed must be an integer"),
    ({"lambdas": [1.0], "options": {"jobs": 0}}, r"^jobs must be a positive integer"),
    ({"lambdas": [1.0], "options": {"clock_ns": 0}}, r"^clock_ns must be"),
    ({"lambdas": [1.0], "options": {"synth": "some"}}, r"^synth must be one of none, pareto, all"),
    ({"lambdas": [1.0], "options": {"ray": " "}}, r"^ray needs an address"),
    ({}, r"give lambdas and/or max_luts, or define POINTS"),
])
def test_bad_python_arguments_are_named_as_python_arguments(kwargs, message, tmp_path):
    """run_sweep's errors name its keywords and SweepOptions' fields, not the command's flags."""
    from compiler.errors import UserError
    from compiler.sweep import SweepOptions, run_sweep

    spec = _write(tmp_path, "def train(point, out_dir):\n    return {'accuracy': 1.0}\n")
    kwargs = {**kwargs, "options": SweepOptions(**kwargs.get("options", {}))}
    with pytest.raises(UserError, match=message) as err:
        run_sweep(spec, tmp_path / "out", **kwargs)
    assert "--" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_synthesis_without_yosys_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = _write(tmp_path, "def train(point, out_dir):\n    raise SystemExit('trained')\n")
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", tmp_path / "out", "--lambda", "1", "--synth",
                                  "pareto"], ["no yosys found"], out=tmp_path / "out")


def test_output_that_is_the_spec_itself(tmp_path, capsys):
    spec = _write(tmp_path, "def train(point, out_dir):\n    return {'accuracy': 1.0}\n")
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", spec, "--lambda", "1"],
                         ["is the spec file itself", "-o out"], keep=[spec])


def test_existing_output_needs_force(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    spec = _write(tmp_path, "def train(point, out_dir):\n    return {'accuracy': 1.0}\n")
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", other, "--lambda", "1"], ["not empty", "--force"],
                         out=other)
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", other, "--lambda", "1", "--force"],
                         ["not a finegrain output folder"], out=other)


def test_a_sweep_folder_and_a_compile_folder_are_told_apart(local_sweep, tmp_path, capsys):
    """report on a sweep's folder said its stamp was damaged and advised compiling over it with
    --force, which replaced the whole sweep.  Now it says what the folder is; compile --force
    refuses a sweep's folder, and sweep --force a compiled model's."""
    jet = Path(__file__).resolve().parents[1] / "examples" / "jet_tagger"
    expect_clean_failure(capsys, ["report", local_sweep], ["output folder of 'finegrain plan sweep'", "points"],
                         keep=[local_sweep])
    expect_clean_failure(capsys, ["compile", jet / "model.onnx", "--plan", jet / "plan.json", "-o", local_sweep,
                                  "--force", "--backend", "hls"], ["holds a plan sweep", "only a compiled model"],
                         out=local_sweep)
    compiled = tmp_path / "compiled"
    assert main(["compile", str(jet / "model.onnx"), "--plan", str(jet / "plan.json"), "-o", str(compiled),
                 "--backend", "hls"]) == 0
    spec = _write(tmp_path, "def train(point, out_dir):\n    return {'accuracy': 1.0}\n")
    expect_clean_failure(capsys, ["plan", "sweep", spec, "-o", compiled, "--lambda", "1", "--force"],
                         ["holds a compiled model", "only a plan sweep"], out=compiled)
