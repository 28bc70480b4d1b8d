"""The demo behind `make demo`: run a compiled jet tagger on its test set and summarise.

Usage: python examples/jet_tagger/demo.py OUT   (OUT from `finegrain compile`)

Prints the emulator's accuracy next to the float model's (onnxruntime), and checks that
every emulated logit lies within the error bound the plan implies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from compiler.error_bound import error_bound
from compiler.project import load_project

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder of 'finegrain compile'")
    parser.add_argument("--data", default=str(HERE / "data.npz"), help="test set (x, y)")
    parser.add_argument("--model", default=str(HERE / "model.onnx"), help="the float ONNX model")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    project = load_project(args.out)
    data = np.load(args.data)
    x, y = data["x"], data["y"]
    start = time.perf_counter()
    emulated = project.emulate(x)
    seconds = time.perf_counter() - start
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    reference = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    bound = error_bound(project.graph, x.astype(np.float64))[project.graph.outputs[0]]
    within = np.all(np.abs(emulated - reference) <= bound, axis=1)
    print(f"model {project.graph.name}: {len(x)} test samples")
    print(f"  accuracy: float model {np.mean(reference.argmax(1) == y):.1%}, "
          f"bit-exact emulation {np.mean(emulated.argmax(1) == y):.1%}")
    print(f"  emulator: {len(x) / seconds:,.0f} samples/s")
    print(f"  vs float model: max |difference| {np.abs(emulated - reference).max():.3g}; within the plan's "
          f"worst-case error bound on {int(within.sum())}/{len(x)} samples")
    return 0 if within.all() else 1


if __name__ == "__main__":
    sys.exit(main())
