"""Benchmark of issue 16 (run by hand): bit-plan methods on real tasks, each compiled by finegrain.

    .venv/bin/python bench/plan_methods.py [--tasks jet digits_mlp digits_cnn] [--methods uniform6 ...]
                                           [--synth] [--json F] [--seed S] [--work DIR] [--clock-ns 5]
                                           [--set METHOD:KEY=VALUE ...] [--pretrain-epochs N] [--epochs N]
                                           [--validation]

For each task (bench/plan_tasks.py) the float model is trained once per seed (cached in
WORK/cache); then for each method:

1. the method makes a model of compiler.train modules from the float model (`METHODS`: name ->
   ``method(task, pretrained, seed, **options) -> model``; quantization-aware fine-tuning is the
   method's own business, `plan_tasks.fine_tune` the shared loop);
   uniform4/6/8 here, compiler.train's methods (grad_bits, relax, ilp, hessian, gmm) in
   bench/plan_adapters.py;
2. `compiler.train.export` writes WORK/TASK/METHOD/export (model.onnx, plan.json), checking the
   emulator against torch on one input;
3. `compiler.compile_model` builds the RTL into WORK/TASK/METHOD/build for the default part at
   ``--clock-ns`` (5 ns by default) and the estimator prices it (LUT, FF, DSP, latency cycles);
4. the test accuracy is the bit-exact emulator's on the held-out split, and its logits are
   compared with torch's quantized forward pass on every test input (``exact``);
5. with ``--synth``, yosys synth_xilinx (compiler/verify/synth.py) counts the cells, cached by the
   RTL's contents in $FINEGRAIN_SYNTH_CACHE (default ~/.cache/finegrain/synth).

The table gives each row's accuracy gap to uniform6 on the same task (matched: at most 1 point
below it, as issue 16's target says) and uniform6's LUTs divided by the row's (estimate, yosys).
Adding a method: a function with the signature above and one line in `METHODS`; ``--set
METHOD:KEY=VALUE`` passes it keyword arguments (such a row is named with them and is never the
baseline; its folder is METHOD-KEY=VALUE...).

``--validation`` measures on a stratified fifth of the training split instead of the test split and
trains on the rest: the split to choose a method's settings on (bench/RESULTS.md, issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plan_tasks  # noqa: E402  (bench/ is not a package; plan_tasks puts the repository on sys.path)
from plan_tasks import Task  # noqa: E402

import plan_adapters  # noqa: E402, I001  (after plan_tasks: it needs the repository on sys.path)

import compiler  # noqa: E402
from compiler.errors import UsageError, UserError  # noqa: E402
from compiler.estimate import estimate_context  # noqa: E402
from compiler.targets import DEFAULT_PART  # noqa: E402
from compiler.train import export  # noqa: E402

BASELINE = "uniform6"
MATCHED_POINTS = 1.0  # a row within this many accuracy points below the baseline is "matched"
DEFAULT_WORK = Path("/tmp/finegrain-plan-bench")


# --- the methods -------------------------------------------------------------------------------


def uniform(task: Task, pretrained: nn.Module, seed: int, bits: int = 6) -> nn.Module:
    """Every weight ``fixed<bits,I,RND_CONV,SAT>``, I per layer from its largest |w| in the float
    model (none saturate: examples/small_tagger.py's uniform baseline), then fine-tuned."""
    formats = plan_tasks.base_formats(task, pretrained)
    weights = [plan_tasks.signed_format(m.weight.detach().abs().max().item(), bits)
               for _, m in plan_tasks.layers(pretrained)]
    return plan_tasks.fine_tune(task, plan_tasks.quantized(pretrained, formats, weights), seed)


METHODS = {
    "uniform4": partial(uniform, bits=4),
    "uniform6": partial(uniform, bits=6),
    "uniform8": partial(uniform, bits=8),
    **plan_adapters.METHODS,  # grad_bits, relax, ilp, hessian, gmm: compiler.train's methods
}
VALIDATION_SHARE, VALIDATION_SEED = 0.2, 0


FOLDS = 5


def validation(task: Task, fold: int | None = None) -> Task:
    """``task`` with its test split replaced by a stratified fifth of its training split (fixed
    seed) and trained on the rest: the split settings are chosen on, so the test split is not.
    ``fold``: instead, fold ``fold`` (0..4) of a stratified 5-fold split of the training split
    (fixed seed): the five folds together validate on every training input once (k-fold)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if fold is None:
        x_train, x_val, y_train, y_val = train_test_split(task.x_train, task.y_train, test_size=VALIDATION_SHARE,
                                                          stratify=task.y_train, random_state=VALIDATION_SEED)
    else:
        if not isinstance(fold, int) or not 0 <= fold < FOLDS:
            raise UserError(f"fold: expected a fold number within 0..{FOLDS - 1}, got {fold!r}")
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=VALIDATION_SEED)
        keep, held = list(folds.split(task.x_train, task.y_train))[fold]
        x_train, x_val, y_train, y_val = (task.x_train[keep], task.x_train[held], task.y_train[keep],
                                          task.y_train[held])
    return plan_tasks.smaller(task, x_train=x_train, y_train=y_train, x_test=x_val, y_test=y_val,
                              description=f"{task.description}; validation split"
                                          + ("" if fold is None else f" (fold {fold} of {FOLDS})"))


def _row_dir(method: str, options: dict) -> str:
    """The folder of a row: the method's name, then its options (so settings do not overwrite each other)."""
    suffix = "_".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(options.items()))
    return method + ("-" + "".join(c if c.isalnum() or c in "=.,-_" else "_" for c in suffix) if suffix else "")


# --- one row -----------------------------------------------------------------------------------


@dataclass
class Row:
    task: str
    method: str
    seed: int
    accuracy: float  # the emulator's, on the held-out split
    torch_accuracy: float  # the torch quantized model's on the same inputs
    exact: bool  # emulator logits == torch logits, every value of every test input
    lut: int  # estimate
    ff: int
    dsp: int
    latency_cycles: int
    weight_bits: int  # sum of the weights' widths in the compiled plan (pruned: 0)
    nonzero_weights: int
    weights: int
    train_seconds: float
    compile_seconds: float
    yosys_lut: int | None = None
    yosys_ff: int | None = None
    yosys_dsp: int | None = None
    synth_seconds: float | None = None
    synth_cached: bool | None = None
    build: str = ""
    options: dict = field(default_factory=dict)  # the method's keyword arguments beyond its defaults


def _weight_stats(project) -> tuple[int, int, int]:
    bits = nonzero = count = 0
    for layer in project.report_json()["layers"]:
        for entry in layer.get("constants", {}).values():
            if entry["role"] == "weight":
                bits += entry.get("total_bits", 0)
                nonzero += entry["nonzero"]
                count += entry["elements"]
    return bits, nonzero, count


def measure(task: Task, model: nn.Module, method: str, seed: int, out: Path, clock_ns: float = 5.0,
            synth: bool = False, train_seconds: float = 0.0, options: dict | None = None) -> Row:
    """Export ``model`` into OUT/export, compile its RTL into OUT/build, price it, emulate the test
    split (and with ``synth``, run yosys): one `Row`."""
    started = time.perf_counter()
    exported = export(model, task.example_input(), out / "export")
    project = compiler.compile_model(exported.model, exported.plan, output_dir=out / "build", force=True,
                                     backends=("rtl",), clock_ns=clock_ns)
    if project.rtl_context is None:
        raise RuntimeError(f"{task.name}/{method}: no RTL was built ({'; '.join(project.warnings)})")
    estimate = estimate_context(project.rtl_context, project.config.part)
    x_test = task.x_test.astype(np.float64)
    emulated = np.asarray(project.emulate(x_test))
    model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(task.x_test)).numpy()
    compile_seconds = time.perf_counter() - started
    bits, nonzero, count = _weight_stats(project)
    row = Row(task.name, method, seed, float((emulated.argmax(1) == task.y_test).mean()),
              float((torch_logits.argmax(1) == task.y_test).mean()), bool(np.array_equal(emulated, torch_logits)),
              int(estimate["lut"]), int(estimate["ff"]), int(estimate["dsp"]), int(estimate["latency_cycles"]),
              bits, nonzero, count, round(train_seconds, 1), round(compile_seconds, 1), build=str(out / "build"),
              options=dict(options or {}))
    if synth:
        from compiler.backends.rtl import rtl_sources
        from compiler.verify.synth import run_synth

        top = estimate["top"]
        result = run_synth(rtl_sources(out / "build" / "rtl", top), top, estimate["family"])
        row.yosys_lut, row.yosys_ff, row.yosys_dsp = result.lut, result.ff, result.dsp
        row.synth_seconds, row.synth_cached = round(result.seconds, 1), result.cached
    return row


def run(task_names: list[str], method_names: list[str], seed: int = 2024, work: Path = DEFAULT_WORK,
        synth: bool = False, clock_ns: float = 5.0, task_options: dict | None = None,
        method_options: dict | None = None, pretrain_epochs: int | None = None,
        fine_tune_epochs: int | None = None, use_validation: bool = False, fold: int | None = None,
        log=print) -> list[Row]:
    """Every method on every task: the rows of the table, in order.

    ``task_options``: per task name, `plan_tasks.load_task` options; ``method_options``: per
    method name, keyword arguments for it; ``pretrain_epochs`` / ``fine_tune_epochs`` replace the
    tasks' own (quick runs); ``use_validation``: measure on `validation` splits (choosing settings);
    ``fold``: on that fold of the 5-fold split instead (implies ``use_validation``)."""
    unknown = [m for m in method_names if m not in METHODS]
    if unknown:
        raise UserError(f"methods: unknown method(s) {unknown}; choose from the registered {', '.join(METHODS)}")
    torch.set_num_threads(1)
    rows = []
    for name in task_names:
        task = plan_tasks.load_task(name, **(task_options or {}).get(name, {}))
        if fine_tune_epochs is not None:
            task = plan_tasks.smaller(task, fine_tune_epochs=fine_tune_epochs)
        if use_validation or fold is not None:
            task = validation(task, fold)
        started = time.perf_counter()
        task = plan_tasks.smaller(task, cache_dir=work / "cache")
        pretrained = plan_tasks.pretrain(task, seed, pretrain_epochs)
        log(f"{name}: {task.description}; float accuracy {plan_tasks.float_accuracy(task, pretrained):.1%} "
            f"({time.perf_counter() - started:.1f} s)")
        for method in method_names:
            started = time.perf_counter()
            options = (method_options or {}).get(method, {})
            model = METHODS[method](task, pretrained, seed, **options)
            trained = time.perf_counter() - started
            out = work / name / _row_dir(method, options)
            rows.append(measure(task, model, method, seed, out, clock_ns, synth, trained, options))
            r = rows[-1]
            log(f"  {method}: accuracy {r.accuracy:.1%}{'' if r.exact else ' (EMULATOR != TORCH)'}, "
                f"{r.lut:,} LUT est." + (f", {r.yosys_lut:,} yosys ({r.synth_seconds:.0f} s"
                                         f"{', cached' if r.synth_cached else ''})" if synth else "")
                + f"; train {r.train_seconds:.0f} s, export+compile+emulate {r.compile_seconds:.0f} s")
    return rows


# --- the table ---------------------------------------------------------------------------------


def compared(rows: list[Row]) -> list[dict]:
    """Each row as a dict with its gap to the task's uniform6 row at its defaults (accuracy points, None without
    one), ``matched`` (gap >= -1 point) and ``lut_ratio`` / ``yosys_lut_ratio`` (uniform6's LUTs /
    the row's: how many times fewer)."""
    baseline = {r.task: r for r in rows if r.method == BASELINE and not r.options}
    out = []
    for r in rows:
        entry, base = asdict(r), baseline.get(r.task)
        entry["gap_points"] = None if base is None else round(100 * (r.accuracy - base.accuracy), 2)
        entry["matched"] = None if base is None else entry["gap_points"] >= -MATCHED_POINTS
        entry["lut_ratio"] = None if base is None or not r.lut else round(base.lut / r.lut, 2)
        entry["yosys_lut_ratio"] = (None if base is None or not r.yosys_lut or base.yosys_lut is None
                                    else round(base.yosys_lut / r.yosys_lut, 2))
        out.append(entry)
    return out


MATCHED_CELL = {True: "yes", False: "no", None: "-"}


def _cell(value, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def _method_cell(entry: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in entry["options"].items())
    return f"{entry['method']} ({options})" if options else entry["method"]


def table(rows: list[Row]) -> str:
    """The markdown table: one line per task and method."""
    lines = ["| task | method | accuracy (emulator) | gap to uniform6 | matched | LUT est. | LUT yosys "
             "| uniform6 / this (est.) | uniform6 / this (yosys) | FF est. | DSP | latency (cycles) | weight bits "
             "| nonzero weights | emulator = torch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in compared(rows):
        lines.append(
            f"| {e['task']} | {_method_cell(e)} | {e['accuracy']:.1%} | {_cell(e['gap_points'], '{:+.1f} pt')} "
            f"| {MATCHED_CELL[e['matched']]} "
            f"| {e['lut']:,} | {_cell(e['yosys_lut'])} | {_cell(e['lut_ratio'], '{:.2f}x')} "
            f"| {_cell(e['yosys_lut_ratio'], '{:.2f}x')} | {e['ff']:,} | {e['dsp']} | {e['latency_cycles']} "
            f"| {e['weight_bits']:,} | {e['nonzero_weights']:,} / {e['weights']:,} "
            f"| {'yes' if e['exact'] else '**no**'} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} cores, {cpu}; load {os.getloadavg()[0]:.1f}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


class _Parser(argparse.ArgumentParser):
    """A bad command line is a `UsageError` (one paragraph, exit code 2), as in `finegrain`'s own."""

    def error(self, message):
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _method_option(text: str) -> tuple[str, str, object]:
    """``METHOD:KEY=VALUE`` of ``--set``: the method, the keyword and the value (JSON, else the string)."""
    method, _, assignment = text.partition(":")
    key, equals, value = assignment.partition("=")
    if method not in METHODS or not key.isidentifier() or not equals:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected METHOD:KEY=VALUE with METHOD one of "
                                         f"{', '.join(METHODS)}, e.g. uniform6:bits=5")
    try:
        return method, key, json.loads(value)
    except json.JSONDecodeError:
        return method, key, value


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(plan_tasks.TASKS), choices=list(plan_tasks.TASKS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--synth", action="store_true", help="also synthesize every row with yosys (minutes each)")
    parser.add_argument("--json", type=Path, help="write the rows (with gaps and ratios) to this JSON file")
    parser.add_argument("--seed", type=int, default=2024, help="initialisation and training seed (default 2024, "
                                                               "the jet tagger example's)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help=f"exports, builds, the pretraining cache and table.md (default {DEFAULT_WORK})")
    parser.add_argument("--clock-ns", type=float, default=5.0, help="clock period the RTL is pipelined for (5 ns)")
    parser.add_argument("--pretrain-epochs", type=int, help="replace the tasks' float training epochs (quick runs)")
    parser.add_argument("--epochs", type=int, help="replace the tasks' quantized fine-tuning epochs (quick runs)")
    parser.add_argument("--set", dest="method_options", metavar="METHOD:KEY=VALUE", action="append", default=[],
                        type=_method_option, help="a keyword argument for one method (VALUE read as JSON, else a "
                                                  "string), e.g. uniform6:bits=5; repeatable")
    parser.add_argument("--validation", action="store_true",
                        help="accuracy on a fifth of the training split, trained on the rest (to choose settings)")
    parser.add_argument("--fold", type=int, choices=range(FOLDS), metavar=f"0..{FOLDS - 1}",
                        help=f"accuracy on this fold of a stratified {FOLDS}-fold split of the training split, "
                             "trained on the other folds (k-fold choice of settings)")
    args = parser.parse_args(argv)
    method_options: dict[str, dict] = {}
    for method, key, value in args.method_options:
        method_options.setdefault(method, {})[key] = value
    print(f"machine: {machine()}; part {DEFAULT_PART}, clock {args.clock_ns:g} ns", flush=True)
    started = time.perf_counter()
    rows = run(args.tasks, args.methods, args.seed, args.work, args.synth, args.clock_ns,
               method_options=method_options, pretrain_epochs=args.pretrain_epochs, fine_tune_epochs=args.epochs,
               use_validation=args.validation, fold=args.fold, log=lambda text: print(text, flush=True))
    text = table(rows)
    print(f"\n{text}\n\n{time.perf_counter() - started:.0f} s in all; load {os.getloadavg()[0]:.1f} at end")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "table.md").write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(compared(rows), indent=1) + "\n")
    return 0 if all(r.exact for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
