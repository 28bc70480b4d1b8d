"""The stream cycle model's speed on a chain like the ESPCN's (compiler/backends/rtl/stream_model.py).

The chain: a padded 5x5 conv, five pointwise engines, three padded 3x3 convs each followed by
pointwise engines (22 engines), over an H x H frame, FIFOs at the depth rule, as many images
as stream_timing's old rule of thumb gave (27).  It times `timing()` (which stops once the engines'
state repeats from one image to the next) against the full run of every image
(`_timing(*simulate(...))`), and checks that both give the same latency and II.

    python bench/stream_model_speed.py 32 64 128
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler.backends.rtl.stream_model import _timing, simulate, timing  # noqa: E402


IMAGES = 27  # 4, the FIFO slots in images, one per engine: the rule predict() used before settled_timing


def chain(h: int) -> list[dict]:
    def conv(k: int) -> dict:
        p = k // 2
        return {"pad": (h, h, p, p, p, p), "window": (h + 2 * p, h + 2 * p, k, k, 1, 1, 1, 1, 1), "latency": 2,
                "fifo_depth": 5}

    point = {"window": (h, h, 1, 1, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4}
    return [conv(5), *[point] * 5, conv(3), *[point] * 5, conv(3), *[point] * 5, conv(3), *[point] * 3]


def main(sizes: list[int]) -> None:
    print("| frame | engines | images | latency, II | timing() | full run | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for h in sizes:
        spec = chain(h)
        images = IMAGES
        start = time.perf_counter()
        fast = timing(spec, h * h, images)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        full = _timing(*simulate(spec, h * h, images), h * h, images)
        full_s = time.perf_counter() - start
        assert fast == full, (fast, full)
        print(f"| {h} x {h} | {len(spec)} | {images} | {fast[0]:,}, {fast[1]:,} | {fast_s:.2f} s | {full_s:.1f} s "
              f"| {full_s / fast_s:.0f}x |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [32, 64])
