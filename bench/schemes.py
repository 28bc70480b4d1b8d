"""Benchmark (run by hand): the precision schemes of issue 6 against uniform 6-bit precision.

    .venv/bin/python bench/schemes.py [--work DIR] [--vectors 1000] [--no-synth] [--only NAME ...]
                                      [--hidden 64,32,32]

The four variants of the jet tagger (uniform 6-bit baseline, per-weight bits, row-wise mixed,
codebook; all fine-tuned from one float model, see examples/small_tagger.py). Without
``--hidden``: the 16-32-16-5 ones committed in examples/. With ``--hidden 64,32,32`` (the jet
tagger's own shape): first made by examples/{per_weight_bits,rowwise_mixed,codebook}/train.py
with that ``--hidden``, into WORK/models/ (about 20 s per script, each in its own process so
the bench never imports the training), then measured the same way.

For each variant: compile (HLS and RTL) into WORK/NAME, run the bit-exact emulator on the jet
tagger's 1000 test jets (accuracy, and the logits compared exactly with examples/plan_tools.py's
independent float64 reading of the plan), `finegrain csim` and `finegrain sim` on VECTORS
random + extreme vectors, and `finegrain report --synth` (yosys; one synthesis at a time,
cached by source contents in ~/.cache/finegrain/synth). Prints a markdown table for
bench/RESULTS.md, headed by the architecture: accuracy, LUTs and FFs (estimate and yosys),
latency. About 2 to 3 minutes of synthesis per 16-32-16-5 variant on a loaded 2-core machine
when not cached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))

import compiler  # noqa: E402
from compile_and_emulate import finegrain_command  # noqa: E402
from plan_tools import accuracy, load_plan_arrays, onnx_nodes  # noqa: E402

EXAMPLES = REPO / "examples"
DATA = EXAMPLES / "jet_tagger" / "data.npz"
VARIANTS = {  # name: (model, plan), relative to examples/ (or to WORK/models with --hidden)
    "uniform 6-bit": ("per_weight_bits/uniform.onnx", "per_weight_bits/uniform_plan.json"),
    "per-weight bits": ("per_weight_bits/model.onnx", "per_weight_bits/plan.json"),
    "row-wise mixed": ("rowwise_mixed/model.onnx", "rowwise_mixed/plan.json"),
    "codebook": ("codebook/model.onnx", "codebook/plan.json"),
}


def reference_logits(model: Path, plan: Path, x: np.ndarray) -> np.ndarray:
    """The plan applied in float64 by the examples' own helpers (not by the compiler)."""
    from small_tagger import jet  # imports torch: only the reference needs it

    layers, initializers = jet.onnx_dense_layers(model)
    resolved = load_plan_arrays(json.loads(plan.read_text()), plan.parent)
    return jet.quantized_forward(layers, initializers, resolved, x.astype(np.float64))


def train_variants(names: list[str], hidden: str, models: Path) -> None:
    """Write the files of ``names`` into MODELS/<example folder> with each example's
    train.py at ``--hidden HIDDEN`` (one run per script; its report goes to stderr)."""
    for folder in dict.fromkeys(Path(VARIANTS[name][0]).parent for name in names):
        print(f"training {folder} --hidden {hidden}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(EXAMPLES / folder / "train.py"), "--out", str(models / folder),
                        "--hidden", hidden], check=True, stdout=sys.stderr)


def architecture(model: Path) -> tuple[str, int]:
    """``16-32-16-5`` and the number of weights, from the Gemm weights of ``model``."""
    graph, initializers = onnx_nodes(model)
    shapes = [initializers[node.input[1]].shape for node in graph.node if node.op_type == "Gemm"]
    widths = [shapes[0][1], *(out_features for out_features, _ in shapes)]
    return "-".join(map(str, widths)), sum(rows * columns for rows, columns in shapes)


def finegrain(*args: str) -> None:
    subprocess.run([*finegrain_command(), *args], check=True, stdout=subprocess.DEVNULL)


def run_variant(name: str, models: Path, out: Path, vectors: int, synth: bool) -> dict:
    model, plan = (models / path for path in VARIANTS[name])
    with np.load(DATA) as data:
        x, y = data["x"], data["y"]
    project = compiler.compile_model(model, plan, output_dir=out, force=True, backends=("hls", "rtl"))
    emulated = project.emulate(x)
    reference = reference_logits(model, plan, x)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (float_logits,) = session.run(None, {"x": x})
    finegrain("csim", str(out), "--vectors", str(vectors))
    finegrain("sim", str(out), "--vectors", str(vectors))
    finegrain("report", str(out), *(["--synth"] if synth else []))
    report = json.loads((out / "report.json").read_text())
    return {
        "name": name,
        "float": accuracy(float_logits, y),
        "emulated": accuracy(emulated, y),
        "reference_equal": bool(np.array_equal(emulated, reference)),
        "estimate": report["estimate"],
        "synth": report.get("synth"),
        "csim": report["csim"],
        "sim": report["sim"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| variant | float acc. | emulated acc. | emulator = reference | LUT est. | LUT yosys | FF est. "
        "| FF yosys | CARRY4 yosys | latency (cycles) | csim / sim |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        est, syn = r["estimate"], r["synth"] or {}
        exact = all(v["mismatches"] == 0 for v in (r["csim"], r["sim"]))
        lines.append(
            f"| {r['name']} | {r['float']:.1%} | {r['emulated']:.1%} | {'yes' if r['reference_equal'] else '**no**'} "
            f"| {est['lut']:,} | {syn.get('lut', 0):,} | {est['ff']:,} | {syn.get('ff', 0):,} "
            f"| {syn.get('carry', 0):,} | {est['latency_cycles']} (sim {r['sim']['latency_cycles']}) "
            f"| {r['csim']['vectors']} vectors, {'bit-exact' if exact else '**mismatch**'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/finegrain-bench-schemes"),
                        help="folder for the compiled variants (default /tmp/finegrain-bench-schemes)")
    parser.add_argument("--vectors", type=int, default=1000, help="csim/sim random vectors (default 1000)")
    parser.add_argument("--no-synth", action="store_true", help="skip yosys (LUT yosys columns read 0)")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="these variants only")
    parser.add_argument("--hidden", help="train the variants with these hidden widths (e.g. 64,32,32, the jet "
                                         "tagger's) into WORK/models first (default: the committed 16-32-16-5 files)")
    args = parser.parse_args()
    names = args.only or list(VARIANTS)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu}; load {os.getloadavg()[0]:.1f} at start; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    models, source = EXAMPLES, "committed in examples/"
    if args.hidden:
        models, source = args.work / "models", f"trained by examples/*/train.py --hidden {args.hidden}"
        started = time.perf_counter()
        train_variants(names, args.hidden, models)
        print(f"trained in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for index, name in enumerate(names):
        started = time.perf_counter()
        rows.append(run_variant(name, models, args.work / f"{index}_{name.replace(' ', '_')}", args.vectors,
                                not args.no_synth))
        synth = rows[-1]["synth"]
        print(f"{name}: {time.perf_counter() - started:.0f} s"
              + (f" (yosys {synth['seconds']:.0f} s{', cached' if synth.get('cached') else ''})" if synth else ""),
              file=sys.stderr, flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at end\n")
    shape, weights = architecture(models / VARIANTS[names[0]][0])
    print(f"{shape} jet tagger ({weights:,} weights), variants {source}:\n")
    print(table(rows))
    return 0 if all(r["reference_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
