"""Benchmark (run by hand): the resource estimate against yosys synth_xilinx for each example.

    python bench/estimate_vs_synth.py [--cached] [--examples jet_tagger small_cnn]

For each example: compile (RTL only), time the estimate, time a synthesis (fresh, unless
--cached: then the seconds are those of the run that filled the cache), and print one
markdown row per example for bench/RESULTS.md: estimate and synthesis LUT/FF/DSP, their
ratios, and both times.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=["jet_tagger", "small_cnn"])
    parser.add_argument("--cached", action="store_true", help="reuse cached synthesis results")
    args = parser.parse_args()

    if not args.cached:
        os.environ["FINEGRAIN_SYNTH_CACHE"] = tempfile.mkdtemp(prefix="finegrain-bench-synth-")

    from compiler.backends.rtl import rtl_context, rtl_sources
    from compiler.estimate import estimate_context
    from compiler.project import compile_model
    from compiler.verify.synth import run_synth

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu}; load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}")
    print("| example | est. LUT | yosys LUT | ratio | est. FF | yosys FF | ratio | est. DSP | yosys DSP "
          "| estimate s | synthesis s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.examples:
        folder = ROOT / "examples" / name
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            project = compile_model(folder / "model.onnx", folder / "plan.json", output_dir=out, backends=("rtl",))
            start = time.perf_counter()
            context = rtl_context(project.graph, project.config.rtl_options(), project.source())
            est = estimate_context(context, project.config.part)
            est_seconds = time.perf_counter() - start
            top = context["model"]
            synth = run_synth(rtl_sources(out / "rtl", top), top, est["family"], progress=sys.stderr.isatty())
        print(f"| {name} | {est['lut']:,} | {synth.lut:,} | {est['lut'] / synth.lut:.2f} | {est['ff']:,} "
              f"| {synth.ff:,} | {est['ff'] / synth.ff:.2f} | {est['dsp']} | {synth.dsp} | {est_seconds:.2f} "
              f"| {synth.seconds:.0f}{' (cached)' if synth.cached else ''} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
