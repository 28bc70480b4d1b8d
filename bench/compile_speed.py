"""Benchmark (run by hand): compile times of real-size models, two checkouts side by side.

    .venv/bin/python bench/compile_speed.py --checkout before=/path/to/old/worktree \\
        --checkout after=. [--cases jet_tagger small_cnn kws_stream mnist_stream espcn
        small_cnn_folded kws_int8_folded] [--runs 1]

Each compile runs in a new interpreter with the checkout on PYTHONPATH, through the Python API
(``compile_model``), timed around that call alone (imports excluded); the checkouts alternate
case by case, so load from other jobs falls on both.  Every run's project is compared with the
first checkout's: the same IR (every tensor's formats, constants and scheme, every node) and, for
the cases that write a folder, the same generated HLS and RTL files, byte for byte.  A compile
that is faster but builds anything else is reported as DIFFERENT.

Cases (the models of tests/, the plans they use):

* jet_tagger, small_cnn: the examples with their plans, default backends (HLS and fully
  parallel RTL) written to a folder;
* kws_stream, mnist_stream: the published KWS DS-CNN and MNIST CNN with tests'
  ``REAL_PLANS``, ``--arch stream``, the RTL written to a folder;
* small_cnn_folded, kws_int8_folded: strongly folded stream tops, whose compile time is the
  cycle model's (latency and II): the small_cnn example at ``--reuse-factor 1000`` and the
  published int8 QDQ KWS DS-CNN (its quantizers are its plan) at 256, the RTL written;
* espcn: the Brevitas ESPCN (128 x 128, per-element formats) with test_quant_compile's plan,
  compiled without an output folder (its stream RTL does not fit the part: the whole-vector tail
  after its DepthToSpace; the IR is what the test uses).

Prints a markdown table for bench/RESULTS.md (paste by hand).  About 6 minutes per checkout
on 2 cores, most of it the ESPCN (the default cases; the folded ones take up to a minute more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
CASES = ("jet_tagger", "small_cnn", "kws_stream", "mnist_stream", "espcn", "small_cnn_folded", "kws_int8_folded")

# Runs in the child: compiles one case and prints the seconds and a digest of what it built.
CHILD = r'''
import dataclasses, hashlib, json, sys, time
from pathlib import Path
import numpy as np
from compiler.project import compile_model

case, out, shared, repo = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
if case in ("jet_tagger", "small_cnn"):
    model, plan, options = repo / "examples" / case / "model.onnx", repo / "examples" / case / "plan.json", {}
elif case == "small_cnn_folded":
    model, plan = repo / "examples" / "small_cnn" / "model.onnx", repo / "examples" / "small_cnn" / "plan.json"
    options = {"architecture": "stream", "backends": ["rtl"], "reuse_factor": 1000}
elif case == "kws_int8_folded":
    model, plan = shared / "mlperf_kws_dscnn_int8_qdq.onnx", None
    options = {"architecture": "stream", "backends": ["rtl"], "reuse_factor": 256}
elif case == "espcn":
    model, plan, options = shared / "espcn_subpixel_qonnx.onnx", {"tensors": {"x.7": "ufixed<28,0,RND_CONV,SAT>"}}, {}
    out = None
else:
    sys.path.insert(0, str(repo))
    from tests.test_float_reference import REAL_PLANS
    name = {"kws_stream": "mlperf_kws_dscnn_float", "mnist_stream": "mnist_cnn_float"}[case]
    model, plan, options = shared / f"{name}.onnx", REAL_PLANS[name], {"architecture": "stream", "backends": ["rtl"]}
start = time.perf_counter()
project = compile_model(model, plan, output_dir=out, **options)
seconds = time.perf_counter() - start

def canon(v):
    if isinstance(v, np.ndarray):
        return ("nd", str(v.dtype), v.shape, repr(v.tolist()))
    if dataclasses.is_dataclass(v):
        return (type(v).__name__, tuple(canon(getattr(v, f.name)) for f in dataclasses.fields(v)))
    if isinstance(v, dict):
        return tuple((k, canon(x)) for k, x in sorted(v.items(), key=lambda kv: str(kv[0])))
    if isinstance(v, (list, tuple)):
        return tuple(canon(x) for x in v)
    return repr(v)

g = project.graph
ir = hashlib.sha256(repr(([canon(g.tensors[n]) for n in sorted(g.tensors)], [canon(n) for n in g.nodes])).encode())
files = hashlib.sha256()
if out is not None:
    for path in sorted(p for d in ("hls", "rtl") for p in (Path(out) / d).rglob("*") if p.is_file()):
        files.update(str(path.relative_to(out)).encode() + b"\0" + path.read_bytes())
print(json.dumps({"seconds": seconds, "ir": ir.hexdigest()[:16], "files": files.hexdigest()[:16]}))
'''


def run(checkout: Path, case: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        done = subprocess.run([sys.executable, "-c", CHILD, case, str(Path(tmp) / "out"), str(SHARED), str(REPO)],
                              cwd=checkout, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{case} failed in {checkout}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", required=True, metavar="LABEL=PATH",
                        help="a checkout to time (repeat; the first is the reference for the digests)")
    parser.add_argument("--cases", nargs="+", default=list(CASES[:5]), choices=CASES)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    checkouts = [(label, Path(path).resolve()) for label, _, path in (c.partition("=") for c in args.checkout)]
    rows = []
    for case in args.cases:
        results = {label: [run(path, case) for _ in range(args.runs)] for label, path in checkouts}
        reference = results[checkouts[0][0]][0]
        cells = []
        for label, _ in checkouts:
            best = min(r["seconds"] for r in results[label])
            same = all((r["ir"], r["files"]) == (reference["ir"], reference["files"]) for r in results[label])
            cells.append(f"{best:.1f} s" + ("" if same else " (DIFFERENT)"))
        first = min(r["seconds"] for r in results[checkouts[0][0]])
        last = min(r["seconds"] for r in results[checkouts[-1][0]])
        rows.append(f"| {case} | " + " | ".join(cells) + f" | {first / last:.2f}x |")
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    print(f"\n- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load (1 min) "
          f"{load:.1f} at the end; python {platform.python_version()}; best of {args.runs} per checkout")
    print("\n| case | " + " | ".join(label for label, _ in checkouts) + " | speed-up |")
    print("|---|" + "---|" * (len(checkouts) + 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
