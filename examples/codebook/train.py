"""Codebook weights: every weight one of a few centres per layer, found by k-means.

The jet tagger of ``../small_tagger.py`` (16-32-16-5 unless ``--hidden`` says otherwise; the
model of the uniform 6-bit baseline in ``../per_weight_bits/``). Per layer, 1-D k-means on the
float model's weights finds ``CENTRES - 1`` centres, with a further centre held at 0 so
weights can be pruned; each centre is rounded to an exact ``fixed<5,I>`` value (I from the
largest centre): few bits, so that each product by a centre is shifts and at most two
adders. The model is then fine-tuned with the centres fixed: every forward pass snaps each
weight to its nearest centre (straight-through estimator), so the weights may move between
centres.

Writes ``model.onnx``, ``plan.json`` and ``arrays.npz`` (the index of every weight's centre,
shaped like the ONNX weight).
Run: ``python examples/codebook/train.py [--out DIR] [--hidden 64,32,32]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plan_tools import Format, quantize, signed_int_bits  # noqa: E402  (the shared helpers live one folder up)
from small_tagger import deployed, fine_tune, float32_weights, start, variant_plan, write_variant  # noqa: E402

from compiler.train import Codebook  # noqa: E402

CENTRES, CENTRE_WIDTH, KMEANS_ITERATIONS = 8, 5, 100


def kmeans_with_zero(values: np.ndarray, free: int) -> np.ndarray:
    """Sorted centres: 0 and ``free`` others placed by Lloyd's algorithm (1-D k-means).

    The free centres start at evenly spaced quantiles, so the result is deterministic.
    """
    values = np.sort(values.ravel().astype(np.float64))
    centres = np.quantile(values, (np.arange(free) + 0.5) / free)
    for _ in range(KMEANS_ITERATIONS):
        every = np.concatenate([[0.0], centres])
        nearest = np.abs(values[:, None] - every[None, :]).argmin(axis=1)
        for k in range(free):  # the zero centre (index 0) stays where it is
            members = values[nearest == k + 1]
            if members.size:
                centres[k] = members.mean()
    return np.sort(np.concatenate([[0.0], centres]))


def exact_codebook(centres: np.ndarray) -> dict:
    """The centres rounded into ``fixed<CENTRE_WIDTH,I>`` (I from the largest |centre|), duplicates merged."""
    fmt = Format(CENTRE_WIDTH, signed_int_bits(np.abs(centres).max(), CENTRE_WIDTH), True)
    rounded = np.unique(quantize(centres, fmt))
    # json writes the exact binary fractions; they are short, so the text is exact too
    return {"centres": [float(c) for c in rounded], "format": str(fmt)}


def main():
    run = start(__file__, __doc__, "model.onnx, plan.json and arrays.npz")
    codebooks = [exact_codebook(kmeans_with_zero(fc.weight.detach().numpy(), CENTRES - 1))
                 for fc in run.model.layers()]
    # compiler.train's codebook quantizer: the nearest centre (a tie to the lower index), straight through
    quantizers = [Codebook(book["centres"], book["format"]) for book in codebooks]
    plain = deployed(fine_tune(run, run.plan, [float32_weights(q) for q in quantizers]))

    entries, arrays = {}, {}
    for index, (fc, book, quantizer) in enumerate(zip(plain.layers(), codebooks, quantizers), start=1):
        arrays[f"fc{index}_idx"] = quantizer.indices(fc.weight).astype(np.int8)
        entries[f"fc{index}.weight"] = {"codebook": book, "indices": f"arrays.npz:fc{index}_idx"}
    np.savez_compressed(run.out / "arrays.npz", **arrays)
    plan = variant_plan(run.plan, (
        f"Codebook weights, see train.py: per layer {CENTRES} centres (one held at 0) from k-means, each "
        f"exact in fixed<{CENTRE_WIDTH},I>; arrays.npz holds each weight's centre index. Input, biases "
        f"and ReLU outputs as in ../per_weight_bits/uniform_plan.json."), entries)
    result = write_variant(run, "model", plain, plan)
    for (name, entry), idx in zip(entries.items(), arrays.values()):
        used = np.bincount(idx.ravel(), minlength=len(entry["codebook"]["centres"]))
        print(f"  {name}: {entry['codebook']['format']}, centres {entry['codebook']['centres']}, "
              f"weights per centre {used.tolist()}")
    print(f"codebook: accuracy onnx {result['onnx']:.1%}, plan {result['plan']:.1%}")
    print(f"wrote model.onnx, plan.json, arrays.npz to {run.out} in {run.seconds():.1f} s")


if __name__ == "__main__":
    main()
