"""The budget's view of the stream architecture (compiler/budget.py asks, this answers): each
layer's engine estimated at a candidate reuse factor, its cycles per image, and the choice
checked with the cycle model (stream.py's engines, stream_timing's prediction)."""

from __future__ import annotations

import numpy as np

from ...errors import UserError
from ...ir import Graph, Node
from ...targets import PARTS, resolve_part
from .options import RTLOptions
from .stream import _StreamBuilder, stream_context
from .stream_frames import TAIL_BREAKS, _activations, _lane_type
from .stream_timing import fifo_depth


class _Estimates:
    """Each layer's estimated resources at a reuse factor, for the budget (compiler/budget.py):
    its engine, with the core built at that reuse, estimated as `finegrain report` does
    (compiler/estimate_stream.py: pad, line buffer or reduction, collector, core, FIFO).  A
    tail of several cores charges its collector to the first one's layer and its FIFO to the
    last one's; a tail core of several layers (a branch) is charged to its last compute layer,
    and its layers are ``held``: built at reuse 1 whatever they ask (stream_tail.tail_reuse).
    Layers that are no engine's compute layer (wiring) cost nothing here."""

    def __init__(self, graph: Graph, options: RTLOptions, source: dict, part: str):
        self.builder = b = _StreamBuilder(graph, options, source)
        graph = b.graph  # the builder's view (stream_reorder.sink_reorders)
        self.part = part
        engines, collected, tail, _ = b.split()
        self.layers: dict[str, tuple[Graph, dict]] = {}  # compute layer -> (mini-graph, engine skeleton)
        for node in engines:
            streams = [b.stream(a) for a in _activations(graph, node)]
            stream = streams[0]
            out = graph.tensor(node.outputs[0])
            skeleton = {"name": node.name, "onnx": node.name, "ops": node.kind, "pad": None, "window": None,
                        "reduce": None, "collect": None, "window_engine": True,
                        "fifo_bits": out.shape[0] * _lane_type(out).width}
            kernel = b.global_pool(node, stream)
            if len(streams) > 1:  # a join: its one-pixel window holds a beat of every stream
                mini, geo, _ = b.window_core(node, *streams)
                skeleton["window"] = {"bits": sum(s.bits for s in streams), **geo}
            elif kernel is not None:
                mini, reduce = b.reduce_core(node, stream)
                skeleton["reduce"] = {**reduce, "kernel": kernel}
            else:
                mini, geo, pad = b.window_core(node, stream)
                skeleton["window"] = {"bits": stream.bits, **geo}
                if pad is not None:
                    skeleton["pad"] = {"bits": stream.bits, **pad}
            self.layers[node.name] = (mini, skeleton)
        # trailing reorders are the output port's beat order: they take the last stream's beats
        self.wiring = {n.name: collected.beats for n in b.reorders}
        self.held: set[str] = set()
        if tail:
            _check_collector(collected, tail[0], part)
            minis = b.tail_cores(tail, collected.name)
            for k, mini in enumerate(minis):
                if len(mini.nodes) > 1:
                    self.held.update(n.name for n in mini.nodes)
                compute = [n for n in mini.nodes if n.op in TAIL_BREAKS] or list(mini.nodes)
                out = graph.tensor(mini.outputs[0])
                skeleton = {"name": compute[-1].name, "onnx": compute[-1].name, "ops": "tail", "pad": None,
                            "window": None, "reduce": None, "window_engine": False,
                            "collect": {"bits": collected.bits, "beats": collected.beats} if k == 0 else None,
                            "fifo_bits": int(np.prod(out.shape)) * _lane_type(out).width if k == len(minis) - 1
                            else 0}
                self.layers[compute[-1].name] = (mini, skeleton)
        self.cache: dict[tuple[str, int], dict] = {}

    def cycles(self, name: str, reuse: int) -> int | None:
        """The layer's engine's cycles per image at ``reuse`` (its window's cooldown over the
        frame, as compiler.estimate_stream counts them), the output port's beats for a trailing
        reorder; None for another layer with no engine."""
        from ...estimate_stream import cycles_per_image

        if name in self.wiring:
            return self.wiring[name]
        if name not in self.layers:
            return None
        reuse = 1 if name in self.held else reuse
        skeleton = self.layers[name][1]
        engine = {**skeleton, "reuse": reuse}
        for part in ("window", "reduce", "collect"):
            if engine[part] is not None:
                engine[part] = {**engine[part], "ii": reuse}
        return cycles_per_image(engine)

    def __call__(self, node: Node, reuse: int) -> dict:
        from ...estimate_stream import _engine, stream_costs
        from ...targets import family_of

        if node.name not in self.layers:
            return {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
        reuse = 1 if node.name in self.held else reuse
        key = (node.name, reuse)
        if key not in self.cache:
            mini, skeleton = self.layers[node.name]
            ctx = self.builder.core(mini, reuse)
            engine = {**skeleton, "reuse": reuse, "latency": ctx["latency"], "core": ctx, "cores": [ctx]}
            for part in ("window", "reduce"):
                if engine[part] is not None:
                    engine[part] = {**engine[part], "ii": reuse}
            depth = fifo_depth(ctx["latency"], reuse, skeleton["window_engine"])
            # a tail core before the last has no FIFO of its own
            engine["fifo"] = {"bits": skeleton["fifo_bits"], "depth": depth} if skeleton["fifo_bits"] else None
            _, r = _engine(stream_costs(family_of(self.part)), engine, self.part)
            self.cache[key] = {"lut": round(r.lut), "ff": round(r.ff), "dsp": r.dsp, "bram": r.bram}
        return self.cache[key]


def _check_collector(collected, first: Node, part: str) -> None:
    """The tail's collector holds the whole vector in registers (an FF per bit) at every
    folding: when they alone exceed the part's FFs no folding fits, said before the tail's
    cores are built (a whole-vector core of a large image takes minutes to build and estimate)."""
    known = PARTS.get(resolve_part(None, part))
    bits = collected.bits * collected.beats
    if known is None or bits <= known.ff:
        return
    raise UserError(f"the model does not fit {known.name} in the stream architecture: node {first.name!r} ends the "
                    f"stream (the layers from it on are built as one whole-vector tail), so its input "
                    f"{collected.name!r} is collected whole, {collected.beats:,} beats of {collected.bits:,} bits: "
                    f"{bits:,} FFs, more than the {known.name}'s {known.ff:,}. Give a larger part (--part/--board) or "
                    f"a smaller input (the stream architecture streams convolutions, pooling and elementwise "
                    f"layers, and builds what follows the last of them as one tail)")


TARGET_RETRIES = 3  # budget choices tightened when the cycle model finds the II above --target-ii
LUT_RETRIES = 3  # ... and when the whole design's estimate (with the skip FIFOs) is above --max-lut


def choose_stream_folding(graph: Graph, options: RTLOptions, source: dict, config):
    """The budget's choice of every layer's reuse factor (compiler.budget.graph_folding, with
    this architecture's estimates); ``config``: the BuildConfig with part, target_ii, max_lut
    and max_dsp.  The budget counts each layer's cycles alone; engines that wait on each other
    can make the design's II (the cycle model's) larger: then the target the budget works to is
    tightened by that ratio, up to TARGET_RETRIES times.  Returns (choice, predicted II or None)."""
    from ...sums import terms_kept

    with terms_kept():  # each layer's terms once, not once per reuse factor tried
        return _choose_stream_folding(graph, options, source, config)


def _choose_stream_folding(graph: Graph, options: RTLOptions, source: dict, config):
    import dataclasses as dc

    from ...argnames import option
    from ...budget import cycles_per_image, graph_folding
    from ...estimate import estimate_context

    estimates = _Estimates(graph, options, source, config.part)

    def by_layers(cfg):
        return graph_folding(graph, cfg, estimates,
                             cycles=lambda shape, reuse: estimates.cycles(shape.name, reuse)
                             or cycles_per_image(shape, 1 if shape.name in estimates.held else reuse),
                             held=estimates.held)

    def choose(cfg):
        """The budget's choice, its LUT limit lowered by what its layers leave out (the skip
        FIFOs of branches, sized by the cycle model for the folding chosen) until the whole
        design's estimate, as `finegrain report` gives it, is within --max-lut."""
        choice = by_layers(cfg)
        if cfg.max_lut is None:
            return choice
        for _ in range(LUT_RETRIES):
            total = estimate_context(stream_context(graph, options, source, choice.reuse), cfg.part)["lut"]
            if total <= cfg.max_lut:
                return choice
            outside = total - choice.totals["lut"]  # the skip FIFOs at this folding
            try:
                choice = by_layers(dc.replace(cfg, max_lut=max(round(cfg.max_lut - outside), 1)))
            except UserError:
                break
        raise UserError(f"no folding found fits {option('max_lut', cfg.max_lut)} (estimated LUTs) with the skip FIFOs "
                        f"of the model's branches: the last tried needs {total:,} LUTs with them, "
                        f"{round(outside):,} of them in the skip FIFOs; raise the limit")

    choice = choose(config)
    if config.target_ii is None:
        return choice, None
    aim = config.target_ii
    for _ in range(TARGET_RETRIES + 1):
        predicted = stream_context(graph, options, source, choice.reuse)["ii"]
        if predicted <= config.target_ii or choice.ii <= 1:
            return choice, predicted
        aim = max(1, aim * choice.ii // predicted - 1)
        try:
            tighter = choose(dc.replace(config, target_ii=aim))
        except UserError:  # no folding reaches the tighter target: keep the last choice
            return choice, predicted
        if tighter.reuse == choice.reuse:
            return choice, predicted
        choice = tighter
    return choice, stream_context(graph, options, source, choice.reuse)["ii"]
