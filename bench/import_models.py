"""Benchmark (run by hand): importing quantized models with no plan (issue 12).

    .venv/bin/python bench/import_models.py [--work DIR] [--runs 3] [--only NAME ...] [--no-hls4ml]

For each quantized model (the two in ../shared/models/ and each kind `tests/quant_models.py`
and `tests/quant_models_exported.py` build), in one process on this machine:

1. **time**: `compiler.frontend.load_onnx` (import), `compile_model` in memory (the whole
   compile, no folder) and into a fresh folder with the default backends (HLS, and the RTL
   backend wherever it builds: its context is built before the folder is written), each the
   median of ``--runs`` (one run for the ESPCN, whose in-memory time is the folder compile's
   own ``compile_seconds``: the same work before anything is written);
2. **the exact/bounded summary** of report.json ``quantization``: rescale multipliers, how many
   proven exact, the widest, and the bound per output in output codes;
3. **agreement with the exact reference** (`tests/quant_reference.py`, the quantized model in
   rational arithmetic) on the model's samples: the fraction of output values equal (exactly,
   ``quant_reference_values.exact_equal``) and the largest difference in output codes (float64 of
   the exact difference; it must be within the bound), for finegrain's emulator and for the
   model's own float32 runtime (qonnx ``execute_onnx`` for QONNX, onnxruntime with graph
   optimisations off for QDQ/QCDQ; the ESPCN's runtime output is its .io.npz's, from qonnx);
4. for the Brevitas power-of-two MLP, hls4ml 1.3 on the same QONNX file (qonnx clean-up, then
   ``convert_from_onnx_model``, Vivado backend, io_parallel): conversion time, its g++ build
   and whether its ``predict`` equals qonnx's execution;
5. for the models ``--profile`` names, where the time goes: a sampling profile (the main
   thread's stack every 10 ms from a helper thread, so the timed run is not slowed as under
   cProfile) of the first folder compile, or of the ESPCN's in-memory one.

The ESPCN's folder compile runs in a child process capped at ``--memory-cap`` GB: writing a
folder emulates the 105 testbench vectors at once, which took 23.6 GB before the kernel killed
it (and the bench with it) on this 24 GB machine.

Prints a markdown section for bench/RESULTS.md (paste it by hand).  About 8 minutes in all,
the ESPCN 4 to 5 of them; ``--only`` picks models (``--list`` names them).
"""

from __future__ import annotations

import argparse
import json
import collections
import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import compiler  # noqa: E402
from compiler.emulate import emulate_exact  # noqa: E402
from compiler.frontend import load_onnx  # noqa: E402
from compiler.plan import parse_plan  # noqa: E402
from compiler.project import compile_model  # noqa: E402
from measure import Timing, _output, _seconds, silenced, timed  # noqa: E402
from tests import quant_models as qm  # noqa: E402
from tests import quant_models_exported as qe  # noqa: E402
from tests import quant_reference as qr  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
# ESPCN's float input x.7 holds k/255: 28 fraction bits hold every such value to RND_CONV exactly
ESPCN_PLAN = {"tensors": {"x.7": "ufixed<28,0,RND_CONV,SAT>"}}


@dataclass
class Case:
    """One model to measure: ``build(folder)`` -> (path, samples, plan dict or None,
    runtime name, runtime outputs or None to run the runtime here)."""

    name: str
    kind: str
    build: object
    single_run: bool = False  # too slow to repeat: one run of each, the folder compile in a capped child


def _built(builder, runtime: str):
    def build(folder: Path):
        model = builder(folder)
        run = qm.run_onnxruntime if runtime == "onnxruntime" else qm.run_qonnx
        return model.path, model.inputs, None, runtime, lambda: run(model)
    return build


def _shared(stem: str, plan: dict | None, runtime: str):
    def build(folder: Path):
        io = np.load(SHARED / f"{stem}.io.npz")
        return SHARED / f"{stem}.onnx", io["input"], plan, f"{runtime} (.io.npz)", lambda: io["output"]
    return build


CASES = [
    Case("mlperf_kws_dscnn_int8_qdq", "tf2onnx QDQ int8 DS-CNN, int8 in/out, per-channel weights",
         _shared("mlperf_kws_dscnn_int8_qdq", None, "onnxruntime")),
    Case("brevitas_mlp_pow2_8b_qonnx", "Brevitas MLP 16-64-32-32-5, 8-bit, power-of-two scales, QONNX",
         _built(lambda d: qe.brevitas_mlp(d, scales="pow2"), "qonnx")),
    Case("brevitas_mlp_pow2_8b_qcdq", "the same, QCDQ",
         _built(lambda d: qe.brevitas_mlp(d, scales="pow2", export="qcdq"), "onnxruntime")),
    Case("brevitas_mlp_float_8b_qonnx", "Brevitas MLP, default float scales per tensor, QONNX",
         _built(lambda d: qe.brevitas_mlp(d, scales="float"), "qonnx")),
    Case("brevitas_mlp_float_per_channel_8b_qonnx", "Brevitas MLP, default float scales per channel, QONNX",
         _built(lambda d: qe.brevitas_mlp(d, scales="float", per_channel=True), "qonnx")),
    Case("brevitas_mlp_float_per_channel_8b_qcdq", "the same, QCDQ",
         _built(lambda d: qe.brevitas_mlp(d, scales="float", per_channel=True, export="qcdq"), "onnxruntime")),
    Case("brevitas_cnn_max_8b_qonnx", "Brevitas CNN 1x8x8, conv + max-pool, power-of-two scales",
         _built(lambda d: qe.brevitas_cnn(d, pool="max"), "qonnx")),
    Case("brevitas_cnn_trunc_avg_8b_qonnx", "Brevitas CNN, TruncAvgPool (AveragePool + Trunc)",
         _built(lambda d: qe.brevitas_cnn(d, pool="trunc_avg"), "qonnx")),
    Case("ort_qdq_mlp_uint8_per_channel", "onnxruntime quantize_static MLP 16-32-16-5, uint8 act.",
         _built(qe.ort_qdq_mlp, "onnxruntime")),
    Case("ort_qdq_cnn_uint8_per_channel", "onnxruntime quantize_static CNN 1x8x8, uint8 act.",
         _built(qe.ort_qdq_cnn, "onnxruntime")),
    Case("hand_non_pow2", "hand-built QONNX dense layer, scales 0.3 / per-column / 0.37",
         _built(lambda d: qm.hand_qonnx(d, "non_pow2", n_random=1000), "qonnx")),
    Case("espcn_subpixel_qonnx", "Brevitas ESPCN 3x128x128 -> 3x256x256, per-channel 4/8-bit, BatchNorm",
         _shared("espcn_subpixel_qonnx", ESPCN_PLAN, "qonnx"), single_run=True),
]
HLS4ML_CASE = "brevitas_mlp_pow2_8b_qonnx"


# --- where the time goes -------------------------------------------------------------------


class Sampler:
    """The main thread's Python stack every ``interval`` seconds: own and total samples per
    function.  A helper thread takes the samples; the GIL it needs 100 times a second costs
    the measured thread little, unlike cProfile's hook on every call."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.own: collections.Counter = collections.Counter()
        self.total: collections.Counter = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._main = threading.main_thread().ident

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            self.samples += 1
            self.own[self._name(frame)] += 1
            seen = set()
            while frame is not None:
                seen.add(self._name(frame))
                frame = frame.f_back
            self.total.update(seen)

    @staticmethod
    def _name(frame) -> str:
        path = Path(frame.f_code.co_filename)
        with contextlib.suppress(ValueError):
            path = path.relative_to(REPO)
        return f"{path}:{frame.f_code.co_firstlineno}({frame.f_code.co_name})"

    @contextlib.contextmanager
    def running(self):
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def table(self, top: int = 15) -> str:
        lines = [f"{self.samples} samples every {self.interval * 1e3:.0f} ms; share of samples",
                 "   total    own  function"]
        for name, count in self.total.most_common(top * 3):
            if name.startswith(("bench/", "<")) or "threading.py" in name:
                continue
            lines.append(f"  {count / self.samples:6.1%} {self.own[name] / self.samples:6.1%}  {name}")
        lines.append("by own time:")
        for name, count in self.own.most_common(top):
            lines.append(f"  {self.total[name] / self.samples:6.1%} {count / self.samples:6.1%}  {name}")
        return "\n".join(lines[:2 + top] + lines[lines.index("by own time:"):])


# --- agreement with the exact reference ------------------------------------------------------


def output_steps(project) -> np.ndarray:
    """One output code in model units per output element (no batch axis), as Fractions:
    the output's model scale times its LSB (the unit of report.json's bound)."""
    out = project.graph.tensor(project.graph.outputs[0])
    scale = np.broadcast_to(out.model_scale if out.model_scale is not None else 1.0, out.shape)
    frac = np.broadcast_to(np.asarray(out.formats.frac_bits), out.shape)
    return np.array([Fraction(float(s)) / Fraction(2) ** int(f) for s, f in zip(scale.ravel(), frac.ravel())],
                    dtype=object).reshape(out.shape)


def emulated_fractions(project, inputs) -> np.ndarray:
    """The emulator's outputs in model units, exactly (`Project.emulate` multiplies by a
    model scale in float64, which rounds when the scale is not a power of two)."""
    graph = project.graph
    name = graph.outputs[0]
    value = emulate_exact(graph, inputs)[name]
    scale = graph.tensor(name).model_scale
    scale = np.broadcast_to(scale if scale is not None else 1.0, value.m.shape[1:])
    unit = Fraction(2) ** -value.frac
    factors = np.array([Fraction(float(s)) * unit for s in scale.ravel()], dtype=object).reshape(scale.shape)
    return np.asarray(value.m, dtype=object) * factors


def against_reference(values: np.ndarray, exact: np.ndarray, steps: np.ndarray) -> tuple[float, float, float]:
    """(fraction of values equal to the exact reference, largest difference in output codes,
    and in model units), computed exactly (Fractions; floats enter at their exact values)."""
    values = np.asarray(values)
    if values.dtype != object:
        values = np.array([Fraction(float(v)) for v in values.ravel()], dtype=object)
    values = values.reshape(exact.shape)
    diff = np.abs(values - exact)
    codes = diff / steps.reshape(1, *exact.shape[1:])
    return float(np.mean(diff == 0)), float(np.max(codes)), float(np.max(diff))


# --- one model -------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    kind: str
    samples: int = 0
    import_time: Timing = field(default_factory=Timing)
    memory_time: Timing = field(default_factory=Timing)
    folder_time: Timing = field(default_factory=Timing)
    backends: str = ""
    summary: dict | None = None
    finegrain: tuple[float, float, float] = (np.nan, np.nan, np.nan)
    runtime_name: str = ""
    runtime: tuple[float, float, float] = (np.nan, np.nan, np.nan)
    reference_seconds: float = np.nan
    emulate_seconds: float = np.nan
    profile: str = ""
    notes: list[str] = field(default_factory=list)
    folder_error: str | None = None
    error: str = ""


FOLDER_CHILD = """
import json, sys, time, warnings
sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
from compiler.plan import parse_plan
from compiler.project import compile_model
plan = {plan!r}
plan = None if plan is None else parse_plan(plan, {work!r}, "<plan>")
start = time.perf_counter()
project = compile_model({path!r}, plan, output_dir={out!r}, force=True)
print(json.dumps([time.perf_counter() - start, project.config.backends]))
"""


def folder_compile_capped(path: Path, plan: dict | None, out: Path, work: Path, gigabytes: float):
    """(seconds, backends, None) of `compile_model` into ``out`` in a child process whose
    address space is capped at ``gigabytes``, or (nan, '', why) when it fails: a model whose
    folder compile needs more memory than the machine has must not take the bench down."""
    import resource
    import subprocess

    def cap():
        limit = int(gigabytes * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    code = FOLDER_CHILD.format(repo=str(REPO), plan=plan, work=str(work), path=str(path), out=str(out))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=cap)
    if done.returncode == 0:
        seconds, backends = json.loads(done.stdout.strip().splitlines()[-1])
        return seconds, "+".join(backends), None
    where = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("File ")][-3:]
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return np.nan, "", f"{last[:120]} (at {' <- '.join(reversed(where))[:400]})"


def measure(case: Case, work: Path, runs: int, profile: bool, memory_cap: float) -> Row:
    """Time, summary and agreement of one model.  A ``single_run`` model (the ESPCN) is
    compiled once in memory (sampled when ``profile``) and once into a folder in a child
    process capped at ``memory_cap`` GB; the others ``runs`` times each, the first folder
    compile sampled."""
    row = Row(case.name, case.kind)
    path, inputs, plan_dict, row.runtime_name, runtime = case.build(work / "models")
    plan = None if plan_dict is None else parse_plan(plan_dict, work, f"<{case.name} plan>")
    row.samples = len(inputs)
    runs = 1 if case.single_run else runs
    for _ in range(runs):
        row.import_time.runs.append(timed(load_onnx, path)[1])
    sampler = Sampler()
    for i in range(runs):
        with sampler.running() if profile and case.single_run and i == 0 else contextlib.nullcontext():
            project, seconds = timed(compile_model, path, plan)
        row.memory_time.runs.append(seconds)
    row.backends = "+".join(project.config.backends)
    if case.single_run:
        seconds, backends, row.folder_error = folder_compile_capped(path, plan_dict, work / "out" / case.name, work,
                                                                    memory_cap)
        row.folder_time.runs.append(seconds)
        row.backends = backends or row.backends
    else:
        for i in range(runs):
            with sampler.running() if profile and i == 0 else contextlib.nullcontext():
                project, seconds = timed(compile_model, path, plan, output_dir=work / "out" / f"{case.name}_{i}",
                                         force=True)
            row.folder_time.runs.append(seconds)
        row.backends = "+".join(project.config.backends)
    if profile:
        row.profile = sampler.table()
    row.notes = [w for w in project.warnings if w.startswith("no RTL written")]
    row.summary = project.quantization()
    _, row.emulate_seconds = timed(project.emulate, inputs)
    exact, row.reference_seconds = timed(qr.run_output, path, inputs)
    exact, steps = exact.fractions(), output_steps(project)
    row.finegrain = against_reference(emulated_fractions(project, inputs), exact, steps)
    row.runtime = against_reference(runtime(), exact, steps)
    return row


# --- hls4ml on the same QONNX file -------------------------------------------------------------


def hls4ml_on_qonnx(path: Path, inputs: np.ndarray, reference: np.ndarray, work: Path) -> list[tuple[str, str]]:
    """hls4ml 1.3's QONNX path: qonnx clean-up, channels-last, Gemm -> MatMul, clean-up,
    config per layer name, convert; then write, its g++ build, ``predict`` against qonnx."""
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    log = work / "hls4ml.log"
    rows = []
    with silenced(log):
        start = time.perf_counter()
        model = cleanup_model(ModelWrapper(str(path)))
        model = model.transform(ConvertToChannelsLastAndClean())
        model = model.transform(GemmToMatMul())
        model = cleanup_model(model)
        config = hls4ml.utils.config_from_onnx_model(model, granularity="name", backend="Vivado",
                                                     default_precision="fixed<32,16>")
        hls_model = hls4ml.converters.convert_from_onnx_model(
            model, output_dir=str(work / "hls4ml"), backend="Vivado", io_type="io_parallel", hls_config=config)
        convert = time.perf_counter() - start
        _, write = timed(hls_model.write)
        _, build = timed(hls_model._compile)
        predicted, predict = timed(hls_model.predict, np.ascontiguousarray(inputs, dtype=np.float64))
    predicted = np.asarray(predicted, dtype=np.float64).reshape(reference.shape)
    equal = float(np.mean(predicted == reference))
    rows += [("hls4ml convert (qonnx clean-up + config + convert)", _seconds(convert)),
             ("hls4ml write", _seconds(write)),
             ("hls4ml g++ build (`_compile`, no Vivado needed)", _seconds(build)),
             (f"hls4ml `predict`, {len(inputs)} samples", _seconds(predict)),
             ("hls4ml `predict` = qonnx execute_onnx",
              f"{equal:.2%} of values equal, max abs diff {np.max(np.abs(predicted - reference)):.3g}")]
    return rows


# --- report ----------------------------------------------------------------------------------


def quantized_output(summary: dict | None) -> bool:
    """Whether the (first) output is a quantizer's: its differences are counted in codes, else
    in model units (a float output, e.g. Brevitas's last QuantLinear without output quantizer)."""
    return summary is None or next(iter(summary["outputs"].values())).get("quantized", True)


def bound_cell(summary: dict | None) -> str:
    if summary is None:
        return "no quantizers"
    cells = []
    for o in summary["outputs"].values():
        if o["exact"]:
            cells.append("exact")
        elif o["max_error_lsb"] is None:
            cells.append("not bounded")
        elif o.get("quantized", True):
            cells.append(f"<= {o['max_error_lsb']:.3g} codes")
        else:
            cells.append(f"<= {o['max_error']:.3g} (float output)")
    return ", ".join(cells)


def rescale_cell(summary: dict | None) -> str:
    if summary is None or not summary["rescales"]["count"]:
        return "0"
    r = summary["rescales"]
    return f"{r['count']} ({r['exact']} exact, {r['max_bits']} b)"


def agreement_cell(agreement: tuple[float, float, float], quantized: bool) -> str:
    equal, codes, units = agreement
    return f"{equal:.2%}, {codes:.3g} codes" if quantized else f"{equal:.2%}, {units:.3g}"


def folder_cell(row: Row) -> str:
    return "**failed** (below)" if row.folder_error else _seconds(row.folder_time.median)


def table(rows: list[Row]) -> str:
    lines = ["| model | samples | import | compile (memory) | compile (folder) | backends | rescales "
             "(proven exact, widest) | bound | finegrain vs exact: equal, max diff "
             "| runtime vs exact: equal, max diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | | | | | | | | **failed**: {r.error} | |")
            continue
        lines.append(f"| {r.name} | {r.samples} | {_seconds(r.import_time.median)} | {_seconds(r.memory_time.median)} "
                     f"| {folder_cell(r)} | {r.backends} | {rescale_cell(r.summary)} "
                     f"| {bound_cell(r.summary)} | {agreement_cell(r.finegrain, quantized_output(r.summary))} "
                     f"| {r.runtime_name}: {agreement_cell(r.runtime, quantized_output(r.summary))} |")
    return "\n".join(lines)


def machine(load_at_start: float) -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("numpy", "onnx", "qonnx", "onnxruntime", "brevitas", "torch", "hls4ml"))
    return [("date", _output(["date", "-u"])), ("machine", f"{cpu}, nproc {_output(['nproc'])}"),
            ("python", f"{platform.python_version()}; {versions}; finegrain {compiler.__version__}"),
            ("commit", _output(["git", "-C", str(REPO), "log", "-1", "--format=%h %cd", "--date=iso"])),
            ("load average (1 min)", f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for models and outputs (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per step (median; the ESPCN runs once)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these models only (see --list)")
    parser.add_argument("--list", action="store_true", help="name the models and stop")
    parser.add_argument("--no-hls4ml", action="store_true", help="skip hls4ml on the power-of-two MLP")
    parser.add_argument("--profile", nargs="*", metavar="NAME", default=["espcn_subpixel_qonnx"],
                        help="sample where the folder compile of these models spends its time "
                             "(default: the ESPCN)")
    parser.add_argument("--memory-cap", type=float, default=8.0, metavar="GB",
                        help="address space of the ESPCN's folder compile, run in a child process (default 8)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{c.name}: {c.kind}" for c in CASES))
        return 0
    unknown = set(args.only or ()) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; --list names them")
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="finegrain-import-")))
        (work / "models").mkdir(parents=True, exist_ok=True)
        rows, extra = [], []
        for case in cases:
            started = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rows.append(measure(case, work, args.runs, case.name in args.profile, args.memory_cap))
            except Exception as err:  # noqa: BLE001 - a model that fails is a result, reported in its row
                traceback.print_exc()
                rows.append(Row(case.name, case.kind, error=f"{type(err).__name__}: {str(err)[:200]}"))
            print(f"{case.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if not args.no_hls4ml and any(c.name == HLS4ML_CASE for c in cases):
            try:
                model = qe.brevitas_mlp(work / "models", scales="pow2")
                extra = hls4ml_on_qonnx(model.path, model.inputs, qm.run_qonnx(model), work)
            except Exception as err:  # noqa: BLE001 - hls4ml failing is a result too
                traceback.print_exc()
                extra = [("hls4ml on the QONNX file", f"**failed**: {type(err).__name__}: {str(err)[:300]}")]
    print("\n".join(f"- {k}: {v}" for k, v in machine(load)))
    print("\nModels:\n")
    print("\n".join(f"- `{c.name}`: {c.kind}" for c in cases))
    print()
    print(table(rows))
    print("\nTimes per sample set (not in the table):\n")
    for r in rows:
        if not r.error:
            print(f"- {r.name}: emulate {_seconds(r.emulate_seconds)}, "
                  f"exact reference {_seconds(r.reference_seconds)}; "
                  f"import {r.import_time.cell()}, memory {r.memory_time.cell()}, folder {r.folder_time.cell()}"
                  + "".join(f"; {note}" for note in r.notes)
                  + (f"; **folder compile failed**: {r.folder_error}" if r.folder_error else ""))
    if extra:
        print(f"\nhls4ml 1.3 on `{HLS4ML_CASE}` (the same QONNX file):\n\n| measurement | result |\n|---|---|")
        print("\n".join(f"| {k} | {v} |" for k, v in extra))
    for r, case in zip(rows, cases):
        if r.profile:
            what = "in-memory compile" if case.single_run else "first folder compile"
            print(f"\n`{r.name}` {what}, where the time goes:\n\n```\n{r.profile}\n```")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
