"""The stream top's schedule: its engines as stream_model's specs, each engine FIFO's depth,
and the latency and II the cycle model predicts for schedule.json (what `finegrain sim`
measures)."""

from __future__ import annotations

from .stream_model import settled_timing


def _model_spec(engines: list[dict]) -> list[dict]:
    """stream_model's engine specs of the stream top's engines (with their names and inputs
    when the engines branch: a graph, else a chain)."""
    branched = any(e["skip"] or len(e["inputs"]) > 1 for e in engines)
    spec = []
    for e in engines:
        pad, w, r = e["pad"], e["window"], e.get("reduce")
        if r is not None:  # a reduction has the timing of its one window (strides: the frame's)
            w = {"height": r["height"], "width": r["frame_width"], "kh": r["kernel"][0], "kw": r["kernel"][1],
                 "sh": r["height"], "sw": r["frame_width"], "dh": 1, "dw": 1, "ii": r["ii"]}
        spec.append({"pad": None if pad is None else (pad["height"], pad["width"], pad["top"], pad["bottom"],
                                                       pad["left"], pad["right"]),
                     "window": None if w is None else (w["height"], w["width"], w["kh"], w["kw"], w["sh"], w["sw"],
                                                       w["dh"], w["dw"], w["ii"]),
                     "collect": None if e["collect"] is None else (e["collect"]["beats"], e["collect"]["ii"]),
                     "latency": e["latency"], "fifo_depth": e["fifo"]["depth"],
                     **({"name": e["name"], "inputs": e["inputs"]} if branched else {})})
    return spec


def fifo_depth(latency: int, reuse: int, window: bool) -> int:
    """An engine FIFO's depth from its core's latency.  A window engine's: latency + 3 (a slot
    is reserved when the window accepts a window's last pixel; the window's register, the core,
    the FIFO's write and the credit's update follow), which also absorbs windows that bunch at
    the ends of rows (at reuse 3 the small CNN's II is 804 with it, 836 with the bare minimum).
    The tail's: a credit for every vector reserved and not yet taken, freed latency + 2 cycles
    after the collector hands it on, vectors leaving at most every ``reuse`` cycles (the
    collector's II): ceil((latency + 2) / reuse), latency + 2 at reuse 1 (a folded tail of
    reuse 640 needs 2, not 646 block-RAM words)."""
    if window:
        return latency + 3
    return -(-(latency + 2) // max(reuse, 1))


MAX_II_IMAGES = 64


def predict(engines: list[dict], beats_in: int) -> tuple[int, int, int]:
    """(latency_cycles, ii_cycles, images) of the engines by stream_model's cycle model of the
    same modules, images back to back and the output always ready (what `finegrain sim`
    measures): the steady state's II and the images a run needs to reach it (the FIFOs can
    hold several images' beats ahead of a slower engine; `stream_model.settled_timing`), at
    most MAX_II_IMAGES."""
    return settled_timing(_model_spec(engines), beats_in, MAX_II_IMAGES)
