"""bench/plan_methods.py (issue 16's benchmark harness) on a tiny setting: the digits tasks with one
epoch of training, no synthesis. Every row is exported, compiled and emulated; the emulator's
predictions are the torch quantized model's, value for value; the uniform baselines' plans hold the
formats they claim; the table and the JSON say what the rows say."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler.errors import UserError
from compiler.project import load_project

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return sys.modules[name]


plan_tasks = _bench_module("plan_tasks")
plan_methods = _bench_module("plan_methods")


def test_harness_end_to_end_digits_mlp(tmp_path):
    """The command on digits_mlp, uniform6 and uniform4 given bits=3 by --set, one epoch each: table.md
    and the JSON."""
    out = tmp_path / "rows.json"
    code = plan_methods.main(["--tasks", "digits_mlp", "--methods", "uniform6", "uniform4", "--pretrain-epochs", "1",
                              "--epochs", "1", "--set", "uniform4:bits=3", "--work", str(tmp_path), "--json", str(out)])
    assert code == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"uniform6", "uniform4"}
    task = plan_tasks.load_task("digits_mlp")
    for method, bits in (("uniform6", 6), ("uniform4", 3)):
        row = rows[method]
        assert row["exact"] and row["accuracy"] == row["torch_accuracy"]
        # the emulator of the written build folder, run again here, gives the row's accuracy
        emulated = load_project(row["build"]).emulate(task.x_test.astype(np.float64))
        assert float((emulated.argmax(1) == task.y_test).mean()) == row["accuracy"]
        assert row["weights"] == 64 * 32 + 32 * 16 + 16 * 10
        assert row["weight_bits"] == bits * row["weights"]  # every weight fixed<bits,...>, none pruned
        folder = method if method == "uniform6" else "uniform4-bits=3"
        plan = json.loads((tmp_path / "digits_mlp" / folder / "export" / "plan.json").read_text())
        weights = [v for v in plan["tensors"].values() if isinstance(v, str) and v.startswith(f"fixed<{bits},")]
        assert len(weights) == 3 and all(w.endswith(",RND_CONV,SAT>") for w in weights)
        assert row["lut"] > 0 and row["latency_cycles"] > 0 and row["yosys_lut"] is None
    six, four = rows["uniform6"], rows["uniform4"]
    assert four["lut"] < six["lut"]
    assert six["gap_points"] == 0 and six["lut_ratio"] == 1.0 and six["matched"] is True
    assert four["gap_points"] == pytest.approx(100 * (four["accuracy"] - six["accuracy"]), abs=0.01)
    assert four["matched"] == (four["gap_points"] >= -1) and four["lut_ratio"] == round(six["lut"] / four["lut"], 2)

    lines = (tmp_path / "table.md").read_text().splitlines()
    assert lines[0].startswith("| task | method | accuracy (emulator) |") and len(lines) == 4
    cells = [line.split(" | ") for line in lines[2:]]
    assert four["options"] == {"bits": 3} and six["options"] == {}
    assert [c[1] for c in cells] == ["uniform6", "uniform4 (bits=3)"]
    assert cells[1][2] == f"{four['accuracy']:.1%}" and cells[1][5] == f"{four['lut']:,}"
    assert re.fullmatch(r"[+-]\d+\.\d pt", cells[1][3])


def test_measure_cnn_against_torch_and_cache(tmp_path):
    """The digits CNN through the API: a model the test holds is measured, and its own torch
    predictions equal the emulator's of the build folder; the float model is trained once, then read
    from the cache."""
    task = plan_tasks.smaller(plan_tasks.load_task("digits_cnn"), pretrain_epochs=1, fine_tune_epochs=1,
                              cache_dir=tmp_path / "cache")
    pretrained = plan_tasks.pretrain(task, 3)
    (cached,) = (tmp_path / "cache").glob("digits_cnn-*.pt")
    again = plan_tasks.pretrain(task, 3)
    assert all(torch.equal(a, b) for a, b in zip(pretrained.state_dict().values(), again.state_dict().values()))
    other_seed = plan_tasks.pretrain(task, 4)
    assert not torch.equal(other_seed[0].weight, pretrained[0].weight)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2

    model = plan_methods.METHODS["uniform8"](task, pretrained, 3)
    row = plan_methods.measure(task, model, "uniform8", 3, tmp_path / "row")
    with torch.no_grad():
        want = model(torch.from_numpy(task.x_test)).numpy()
    got = load_project(tmp_path / "row" / "build").emulate(task.x_test.astype(np.float64))
    assert np.array_equal(got, want) and row.exact
    assert row.accuracy == float((want.argmax(1) == task.y_test).mean())
    assert row.weights == 4 * 9 + 36 * 10 and row.weight_bits == 8 * row.weights
    assert cached.is_file()


def test_bad_names_are_user_errors(tmp_path):
    assert plan_methods._method_option("uniform6:bits=5") == ("uniform6", "bits", 5)
    assert plan_methods._method_option("uniform8:note=x y") == ("uniform8", "note", "x y")
    for bad in ("bits=5", "magic:bits=5", "uniform6:bits", "uniform6:=5"):
        with pytest.raises(UserError, match="--set"):
            plan_methods.main(["--set", bad])
    with pytest.raises(UserError, match="methods: unknown method.*uniform6"):
        plan_methods.run(["digits_mlp"], ["per_weight_magic"], work=tmp_path)
    with pytest.raises(UserError, match="task: unknown task 'mnist'"):
        plan_tasks.load_task("mnist")
    with pytest.raises(UserError, match="hidden"):
        plan_tasks.load_task("digits_mlp", hidden=(0,))


# (method, options, check of its plan): tiny settings of every compiler.train adapter
ADAPTERS = (
    ("grad_bits", {"lam": 1e-3, "epochs": 1},
     lambda plan: all("elements" in plan["tensors"][k] for k in ("input", "fc1.weight", "fc2.weight"))),
    ("grad_bits", {"lam": 1e-3, "epochs": 2, "warmup": 1, "cosine": True, "tune_epochs": 1, "tune_lr": 3e-4,
                   "prune_dead": True},  # HGQ's recipe: cost ramped in, fine-tuned at the frozen widths
     lambda plan: all("elements" in plan["tensors"][k] for k in ("input", "fc1.weight", "fc2.weight"))),
    ("grad_bits", {"lam": 1e-3, "epochs": 1, "tune_epochs": 1, "distill": 0.5, "temperature": 2.0},  # teacher targets
     lambda plan: all("elements" in plan["tensors"][k] for k in ("input", "fc1.weight", "fc2.weight"))),
    ("grad_bits", {"lam": 1e-3, "epochs": 1, "distill": 0.5, "teachers": 2},  # an ensemble of two teachers
     lambda plan: all("elements" in plan["tensors"][k] for k in ("input", "fc1.weight", "fc2.weight"))),
    ("grad_bits", {"lam": 1e-3, "epochs": 1, "input_granularity": "tensor", "learn_int": True},  # one input format,
     lambda plan: isinstance(plan["tensors"]["input"], str)  # learned ranges
     and all("elements" in plan["tensors"][k] for k in ("fc1.weight", "fc2.weight"))),
    ("grad_bits", {"lam": 1e-3, "epochs": 1, "inputs": False, "input_format": "ufixed<4,0,RND_CONV,SAT>"},  # narrower
     lambda plan: plan["tensors"]["input"] == "ufixed<4,0,RND_CONV,SAT>"),  # input format, kept
    ("grad_bits", {"lam": 1e-3, "epochs": 1, "credit_rows": True, "prune_dead": True},  # rows of pruned activations
     lambda plan: all("elements" in plan["tensors"][k] for k in ("input", "fc1.weight", "fc2.weight"))),  # credited
    ("relax", {"lam": 1e-3, "epochs": 1, "tune_epochs": 1},
     lambda plan: len(plan["tensors"]["fc1.weight"]["formats"]) == 8),
    ("ilp", {"candidates": [2, 4, 6], "steps": 20, "lut_share": 0.6},
     lambda plan: all(re.fullmatch(r"fixed<[246],-?\d+,RND_CONV,SAT>", plan["tensors"][f"fc{i}.weight"])
                      for i in (1, 2))),
    ("hessian", {"samples": 256, "probes": 4},
     lambda plan: [sum(f.startswith(p) for f in plan["tensors"]["fc1.weight"]["formats"])
                   for p in ("fixed<6,", "fixed<4,", "pow2<")] == [1, 2, 5]),
    ("gmm", {"components": 4, "steps": 20},
     lambda plan: all(len(plan["tensors"][f"fc{i}.weight"]["codebook"]["centres"]) <= 4 for i in (1, 2))),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    task = plan_tasks.smaller(plan_tasks.load_task("digits_mlp", hidden=(8,)), pretrain_epochs=1, fine_tune_epochs=1,
                              cache_dir=tmp_path_factory.mktemp("cache"))
    return task, plan_tasks.pretrain(task, 0)


@pytest.mark.parametrize("method, options, check", ADAPTERS, ids=[a[0] for a in ADAPTERS])
def test_adapter_end_to_end_is_bit_exact(tiny, method, options, check, tmp_path):
    """Each compiler.train method as the harness runs it, one epoch: its export passes export's own check,
    the emulator's logits equal torch's on the whole test split, the plan has the method's shape, and the
    float model it started from is unchanged."""
    task, pretrained = tiny
    before = [p.detach().clone() for p in pretrained.parameters()]
    model = plan_methods.METHODS[method](task, pretrained, 0, **options)
    row = plan_methods.measure(task, model, method, 0, tmp_path, options=options)
    assert row.exact and row.accuracy == row.torch_accuracy and row.lut > 0
    assert check(json.loads((tmp_path / "export" / "plan.json").read_text()))
    assert all(torch.equal(a, b) for a, b in zip(before, pretrained.parameters()))


def test_grad_bits_lam_prunes_and_validation_split(tiny, tmp_path):
    """A large lam prunes weights the zero lam keeps (fewer LUTs); `validation` carves a fifth of the
    training split, stratified, and never touches the test split."""
    task, pretrained = tiny
    rows = [plan_methods.measure(task, plan_methods.METHODS["grad_bits"](task, pretrained, 0, lam=lam, epochs=2),
                                 "grad_bits", 0, tmp_path / str(lam)) for lam in (0.0, 3e-2)]
    assert all(r.exact for r in rows)
    assert rows[1].nonzero_weights < rows[0].nonzero_weights and rows[1].lut < rows[0].lut
    val = plan_methods.validation(task)
    assert len(val.x_test) + len(val.x_train) == len(task.x_train)
    assert len(val.x_test) == int(np.ceil(0.2 * len(task.x_train)))
    assert np.abs(np.bincount(val.y_test) - 0.2 * np.bincount(task.y_train)).max() <= 1  # stratified
    assert np.array_equal(val.x_test, plan_methods.validation(task).x_test)  # a fixed split
    with pytest.raises(UserError, match="lam"):
        plan_methods.METHODS["grad_bits"](task, pretrained, 0, lam=-1)


def test_distilled_targets(tiny):
    """`DistilledBatches`' targets are probabilities: (1 - share) x one-hot + share x the teacher's
    softmax at the temperature (several teachers: the mean of their softmaxes); a bad share is a UserError
    naming distill, a bad ensemble one naming teachers, a bad input format one naming input_format."""
    task, pretrained = tiny
    plain = plan_methods.plan_adapters.Batches(task, 0)
    mixed = plan_methods.plan_adapters.DistilledBatches(task, 0, pretrained, 0.25, temperature=3.0)
    (x, y), (x2, target) = next(iter(plain)), next(iter(mixed))
    assert torch.equal(x, x2)  # the same seeded order
    with torch.no_grad():
        soft = torch.softmax(pretrained(x) / 3.0, dim=1)
    expected = 0.75 * torch.nn.functional.one_hot(y.long(), 10).to(soft.dtype) + 0.25 * soft
    assert torch.allclose(target, expected) and torch.allclose(target.sum(1), torch.ones(len(x)))
    assert (target.argmax(1) == y).float().mean() > 0.5
    other = plan_tasks.pretrain(task, 1000)
    ensemble = plan_methods.plan_adapters.DistilledBatches(task, 0, [pretrained, other], 1.0, temperature=3.0)
    with torch.no_grad():
        both = (soft + torch.softmax(other(x) / 3.0, dim=1)) / 2
    assert torch.allclose(next(iter(ensemble))[1], both) and not torch.allclose(both, soft)  # the mean of two
    with pytest.raises(UserError, match="distill"):
        plan_methods.METHODS["grad_bits"](task, pretrained, 0, distill=1.5)
    with pytest.raises(UserError, match="teachers.*distill"):
        plan_methods.METHODS["grad_bits"](task, pretrained, 0, teachers=3)
    with pytest.raises(UserError, match="teachers"):
        plan_methods.METHODS["grad_bits"](task, pretrained, 0, distill=0.5, teachers=0)
    with pytest.raises(UserError, match="input_format"):
        plan_methods.METHODS["grad_bits"](task, pretrained, 0, input_format="ufixed<4")


def test_ensemble_teachers_are_kept_in_the_task_cache(tiny, tmp_path, monkeypatch):
    """`grad_bits`' extra teachers are trained once into the task's ``cache_dir`` (seed + 1000 k) and
    read from it on the next run, which then trains no float model at all."""
    task, pretrained = tiny
    task = plan_tasks.smaller(task, cache_dir=tmp_path / "cache")
    options = {"lam": 1e-3, "epochs": 1, "distill": 0.5, "teachers": 3}
    first = plan_methods.METHODS["grad_bits"](task, pretrained, 0, **options)
    assert len(list((tmp_path / "cache").glob("digits_mlp-*.pt"))) == 2  # seeds 1000 and 2000

    def no_float_training(model, *args, **kwargs):
        raise AssertionError("a teacher was trained again")

    monkeypatch.setattr(plan_tasks, "train", no_float_training)
    again = plan_methods.METHODS["grad_bits"](task, pretrained, 0, **options)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_validation_folds(tiny):
    """``validation(task, fold)``: the five stratified folds of the training split each hold out a
    fifth, together every training input exactly once, never the test split; a bad fold is a UserError."""
    task, _ = tiny
    held = [plan_methods.validation(task, fold) for fold in range(plan_methods.FOLDS)]
    for val in held:
        assert len(val.x_test) + len(val.x_train) == len(task.x_train)
        assert np.abs(np.bincount(val.y_test, minlength=10) - 0.2 * np.bincount(task.y_train)).max() <= 1
    rows = np.concatenate([val.x_test for val in held])
    assert len(rows) == len(task.x_train)
    assert len(np.unique(rows, axis=0)) == len(np.unique(task.x_train, axis=0))
    with pytest.raises(UserError, match="fold"):
        plan_methods.validation(task, 5)
