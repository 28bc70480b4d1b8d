"""Resource and cycle estimate of the streaming RTL architecture (design13.md): a chain of
engines, each ``[fg_stream_pad] -> [fg_stream_window] -> core -> fg_stream_fifo`` or
``fg_stream_reduce -> core -> fg_stream_fifo`` (a global pool) or ``fg_stream_collect ->
cores -> fg_stream_fifo`` (the tail), read from the stream context that
``compiler/backends/rtl/stream.py`` builds.

A core is a parallel or folded pipeline whose context has the layout the fully parallel
estimate reads (``estimate.estimate_context``); the library modules cost, by their
parameters (yosys 0.23 ``synth_xilinx``, the flow of compiler/verify/synth.py; LUT counts as
``synth.LUT_CELLS`` weighs them):

* window: a line buffer of the last ``(KH-1)*DH*WD + (KW-1)*DW + 1`` pixels.  A tap (a pixel
  of the window) ends a chain of stages only it reads; a chain of 3+ stages is a shift register
  LUT per bit (SRL16E/SRLC32E, one per 32 stages), the tap being its last stage; shorter chains
  are flip-flops.  So a kernel row of adjacent taps is FFs and the rest of a frame row between
  two kernel rows is an SRL.  Control: the position counters (r, c), kept only where a window's
  bottom-right pixel depends on them, and the cooldown counter of a reuse factor > 1;
* pad: the select of the pad value (a LUT per bit) and the padded frame's counters;
* fifo: storage as yosys ``memory_libmap`` chooses it by its cost model: flip-flops (a few
  bits), LUT RAM (RAM32M16 / RAM64M8 on UltraScale(+): 32 x 14 or 64 x 7 bits in 8 LUT sites;
  RAM32M / RAM64M on 7-series: 32 x 6 or 64 x 3 in 4), or block RAM (RAMB18 / RAMB36 in their
  widths) whose synchronous read needs the read address early and a bypass register; plus
  pointers and the used / stored counters (LUT RAM keeps a copy of the write pointer);
* collect: the vector register (beats shift in at its top: an FF per bit, no decoder), the
  beat counter and the cooldown of a folded tail;
* reduce (a global pool): per lane an accumulator and a result register, a sum's adder and
  first-pixel select or a maximum's compare and selects, and the window's counters.

The control rules (counter LUTs per bit) are least-squares fits over the calibration
parameterisations in tests/test_estimate_stream.py, which check each module within 15% of yosys
(LUT and FF) and its DSP / BRAM exactly.  Latency and II are the stream context's, predicted
by the cycle model (compiler/backends/rtl/stream_model.py) that ``finegrain sim`` confirms.
"""

from __future__ import annotations

import math
import time

from .estimate import Resources, _Costs, _item_cost, _percent, estimate_context
from .estimate_ecp5 import Ecp5Costs
from .targets import family_of

SRL_DEPTH = 32
# Counter logic, LUTs per counter bit (increment, wrap compare, the constant look-ups of which
# rows / columns are pads or window ends): least squares over the calibration set
COUNTER_LUTS = 1.6
PAD_COUNTER_LUTS = 2.0
COOLDOWN_LUTS = 2.6
COLLECT_CONTROL_LUTS = 2  # full, in_ready
MAX_LANE_LUTS = 3  # fg_stream_reduce's running maximum, per bit
FIFO_COUNTER_LUTS = 1.33
FIFO_CONTROL_LUTS = 8  # credit compare, out_valid, the two counters' up/down selects
# LUT RAM primitives as memory_libmap sees them: (depth, data bits, LUT sites, cost, widthscale)
LUTRAMS = {"xc7": ((32, 6, 4, 8, 7), (64, 3, 4, 8, 7)),
           "xcu": ((32, 14, 8, 16, 16), (64, 7, 8, 16, 16)),
           "xcup": ((32, 14, 8, 16, 16), (64, 7, 8, 16, 16)),
           # ECP5: TRELLIS_DPR16X4, 16 x 4 in six LUT4 sites (yosys ecp5/lutrams.txt: cost 4)
           "ecp5": ((16, 4, 6, 4, 0),)}
LUTRAM_OVERHEAD_COST = 10  # what a LUT RAM costs memory_libmap beyond its cells (fitted: a
# 2 x 8 FIFO stays in flip-flops, 2 x 16 and 3 x 8 go to LUT RAM)
# block RAMs as memory_libmap sees them: (BRAM36 equivalents, cost, {port width: depth}):
# RAMB18 1 x 16K ... 36 x 512 (simple dual port), RAMB36 1 x 32K ... 72 x 512
BRAMS = ((0.5, 129, {1: 16384, 2: 8192, 4: 4096, 9: 2048, 18: 1024, 36: 512}),
         (1.0, 257, {1: 32768, 2: 16384, 4: 8192, 9: 4096, 18: 2048, 36: 1024, 72: 512}))
# ECP5: DP16KD / PDPW16KD, 18 Kb (half a 36 Kb equivalent; yosys ecp5/brams.txt: cost 128)
ECP5_BRAMS = ((0.5, 128, {1: 16384, 2: 8192, 4: 4096, 9: 2048, 18: 1024, 36: 512}),)
BYPASS_LUTS = 1.3  # block RAM FIFO: LUTs per data bit around the synchronous read


def _bits(n: int) -> int:
    """Width of a counter over 0..n-1 (as the modules declare it: at least one bit)."""
    return max(n - 1, 0).bit_length() or 1


class StreamCosts(_Costs):
    """The four stream library modules, by their parameters."""

    def pad(self, bits: int, height: int, width: int, top: int, bottom: int, left: int, right: int) -> Resources:
        rows, cols = height + top + bottom, width + left + right
        # a counter is kept when the pad positions depend on it (the column counter also when
        # the row counter needs its wrap); a frame of one row has a constant row
        row_bits = _bits(rows) if top + bottom > 0 and rows > 1 else 0
        col_bits = _bits(cols) if (left + right > 0 or row_bits) and cols > 1 else 0
        counters = row_bits + col_bits
        return Resources(lut=bits + PAD_COUNTER_LUTS * counters, ff=counters,
                         carry=math.ceil(row_bits / self.carry_bits) + math.ceil(col_bits / self.carry_bits))

    def window(self, bits: int, height: int, width: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
               ii: int) -> Resources:
        r = self.line_buffer(bits, width, kh, kw, dh, dw)
        # the window ends on every row (column) when the kernel spans one row and the stride is 1:
        # the counter is then unused and removed
        row_bits = _bits(height) if height > 1 and (kh > 1 or sh > 1) else 0
        col_bits = _bits(width) if width > 1 and (kw > 1 or sw > 1) else 0
        cooldown = _bits(ii) if ii > 1 else 0
        r += Resources(lut=COUNTER_LUTS * (row_bits + col_bits) + COOLDOWN_LUTS * cooldown,
                       ff=row_bits + col_bits + cooldown + 1,  # + out_valid
                       carry=sum(math.ceil(b / self.carry_bits) for b in (row_bits, col_bits)))
        return r

    def line_buffer(self, bits: int, width: int, kh: int, kw: int, dh: int, dw: int) -> Resources:
        """Per tap, the chain of stages from the previous (newer) tap: SRLs from 3 stages."""
        ages = sorted((kh - 1 - i) * dh * width + (kw - 1 - j) * dw for i in range(kh) for j in range(kw))
        r = Resources()
        previous = -1
        for age in ages:
            stages = age - previous
            previous = age
            if self.srl_min_depth is not None and stages >= self.srl_min_depth:
                r.lut += bits * math.ceil(stages / SRL_DEPTH)
            else:
                r.ff += bits * stages
        return r

    def fifo(self, bits: int, depth: int) -> Resources:
        ptr = _bits(depth) if depth > 1 else 0  # one entry: the pointers are constant
        count = (depth).bit_length()
        r = Resources(lut=FIFO_CONTROL_LUTS + FIFO_COUNTER_LUTS * (2 * ptr + 2 * count), ff=2 * ptr + 2 * count,
                      carry=2 * (math.ceil(ptr / self.carry_bits) + math.ceil(count / self.carry_bits))
                      if depth > 3 else 0)
        kind, cells = self.memory(bits, depth)
        if kind == "logic":
            r.ff += bits * depth
            r.lut += bits * (1 if depth <= 4 else math.ceil(depth / 4)) if depth > 1 else 0
        elif kind == "lutram":
            sites, mult = cells
            r.lut += sites + (bits * (1 if mult <= 4 else math.ceil(mult / 4)) if mult > 1 else 0)
            r.ff += ptr  # memory_libmap keeps its own copy of the write address
        else:
            r.bram += cells
            r.lut += BYPASS_LUTS * bits
            r.ff += bits + 1  # the read data bypass of a write to the address being read
        return r

    def memory(self, bits: int, depth: int) -> tuple[str, object]:
        """How yosys maps a ``depth`` x ``bits`` memory with one write and one asynchronous read
        port (a registered read address): its memory_libmap's cheapest of flip-flops (cost 1
        per bit), LUT RAM and block RAM.  ("logic", None), ("lutram", (LUT sites, depth
        slices)) or ("bram", BRAM36 equivalents)."""
        best = ("logic", None, float(bits * depth))
        for unit_depth, unit_bits, sites, cost, scale in LUTRAMS[self.family]:
            mult = math.ceil(depth / unit_depth)
            per_slice = math.ceil(bits / unit_bits)
            c = ((cost - scale) * mult * per_slice + scale * mult * bits / unit_bits
                 + 0.5 * (mult - 1) * bits + LUTRAM_OVERHEAD_COST)
            if c < best[2]:
                best = ("lutram", (mult * per_slice * sites, mult), c)
        for size, cost, shapes in ECP5_BRAMS if self.family == "ecp5" else BRAMS:
            for width, unit_depth in shapes.items():
                n = math.ceil(depth / unit_depth) * math.ceil(bits / width)
                if n * cost < best[2]:
                    best = ("bram", n * size, n * cost)
        return best[0], best[1]

    def collect(self, bits: int, beats: int, ii: int = 1) -> Resources:
        """Beats shift in at the top of the vector register (every stage is read: FFs)."""
        counter = _bits(beats) if beats > 1 else 0
        cooldown = _bits(ii) if ii > 1 else 0
        return Resources(lut=COUNTER_LUTS * counter + COOLDOWN_LUTS * cooldown + COLLECT_CONTROL_LUTS,
                         ff=bits * beats + counter + cooldown + 1, carry=math.ceil(counter / self.carry_bits))

    def reduce(self, lanes: int, width: int, height: int, frame_width: int, op: int, acc_width: int,
               signed: bool, ii: int) -> Resources:
        """Per lane an accumulator and its result register; a sum's adder and the select of the
        first pixel (on the bits the pixel sets: all of them when sign-extended), or a maximum's
        compare, select and first-pixel select (about 3 LUTs per bit); the window's counters
        (both read: the frame's first and last pixel).  Frames of 3 x 3 bits of counters (5 x 5)
        come out about 30% above: ABC folds the counters' decode into every lane bit."""
        if op == 0:
            lane = self.adder(acc_width)
            lane.lut += acc_width if signed else width
        else:
            lane = Resources(lut=MAX_LANE_LUTS * width, carry=math.ceil(width / 3 / self.carry_bits))
        lane.ff = 2 * acc_width
        r = Resources()
        for _ in range(lanes):
            r += lane
        row_bits = _bits(height) if height > 1 else 0
        col_bits = _bits(frame_width) if frame_width > 1 else 0
        cooldown = _bits(ii) if ii > 1 else 0
        r += Resources(lut=COUNTER_LUTS * (row_bits + col_bits) + COOLDOWN_LUTS * cooldown,
                       ff=row_bits + col_bits + cooldown + 1,
                       carry=sum(math.ceil(b / self.carry_bits) for b in (row_bits, col_bits)))
        return r


class Ecp5StreamCosts(StreamCosts, Ecp5Costs):
    """The stream modules on ECP5: the structure of StreamCosts on Ecp5Costs's primitives (carry
    chains of CCU2Cs, no shift-register LUTs: a line buffer is flip-flops).  Its control fits
    are the Xilinx ones, not checked against synth_ecp5."""


def stream_costs(family: str) -> StreamCosts:
    """The stream modules' rules for a family: LUT6 fabric or ECP5's."""
    return Ecp5StreamCosts(family) if family == "ecp5" else StreamCosts(family)


def estimate_stream(context: dict, part: str) -> dict:
    """The estimate of a stream context on ``part``: per engine its modules and its core
    (estimated as the parallel estimate does), the totals, and the context's predicted
    latency and II."""
    start = time.perf_counter()
    family = family_of(part)
    costs = stream_costs(family)
    total = Resources()
    engines = []
    for engine in context["engines"]:
        row, r = _engine(costs, engine, part)
        total += r
        engines.append(row)
    # the top's own logic: lane format changes between engines (the modules are the engines')
    for item in context.get("items", ()):
        if item["kind"] != "instance":
            total += _item_cost(costs, item)
    reuses = sorted({e["reuse"] for e in engines})
    folding = f"reuse {reuses[0]}" if len(reuses) == 1 else f"reuse {reuses[0]} to {reuses[-1]}"
    return {"top": context["model"], "part": part, "family": family, "clock_ns": context["clock_ns"],
            "architecture": f"rtl: stream, {len(engines)} engines, {folding}, II {context['ii']}",
            "lut_kind": costs.lut_kind,
            **total.rounded(), "latency_cycles": context["latency"], "ii_cycles": context["ii"],
            **costs.placed(total), "percent": _percent(total, part, costs), "layers": engines,
            **({"timing": context["timing"]} if context.get("timing") else {}),
            "seconds": round(time.perf_counter() - start, 4)}


def _engine(costs: StreamCosts, engine: dict, part: str) -> tuple[dict, Resources]:
    parts: dict[str, Resources] = {}
    pad, window, collect, reduce = (engine.get(k) for k in ("pad", "window", "collect", "reduce"))
    if pad:
        parts["pad"] = costs.pad(pad["bits"], pad["height"], pad["width"], pad["top"], pad["bottom"],
                                 pad["left"], pad["right"])
    if window:
        parts["window"] = costs.window(window["bits"], window["height"], window["width"], window["kh"],
                                       window["kw"], window["sh"], window["sw"], window["dh"], window["dw"],
                                       window["ii"])
    if collect:
        parts["collect"] = costs.collect(collect["bits"], collect["beats"], collect.get("ii", 1))
    if reduce:
        parts["reduce"] = costs.reduce(reduce["lanes"], reduce["width"], reduce["height"], reduce["frame_width"],
                                       reduce["op"], reduce["acc_width"], reduce["signed"], reduce["ii"])
    # the cores in a row (a tail of several dense layers has one each; a fork's skip FIFO none)
    cores = [estimate_context(core, part) for core in engine.get("cores") or [engine["core"]] if core]
    parts["core"] = Resources()
    for core in cores:
        parts["core"] += Resources(lut=core["lut"], ff=core["ff"], dsp=core["dsp"], bram=core["bram"],
                                   carry=core["carry"], chains=core.get("carry_chains", 0))
    if engine["fifo"] is not None:  # None: a tail core before the last (the FIFO follows the last)
        parts["fifo"] = costs.fifo(engine["fifo"]["bits"], engine["fifo"]["depth"])
    total = Resources()
    for r in parts.values():
        total += r
    row = {"name": engine["name"], "onnx": engine["onnx"], "ops": engine["ops"], **total.rounded(),
           "reuse": engine["reuse"], "cycles_per_image": cycles_per_image(engine),
           "latency_cycles": engine["latency"],
           "products": sum(layer.get("products", 0) for core in cores for layer in core["layers"]),
           "products_built": sum(layer.get("products_built", 0) for core in cores for layer in core["layers"]),
           "parts": {name: r.rounded() for name, r in parts.items()}}
    return row, total


def cycles_per_image(engine: dict) -> int:
    """Cycles the engine needs per image in steady state, inputs always valid and its FIFO
    always granting credit: the (padded) frame at one pixel per cycle, each window-completing
    pixel waiting for the core's cooldown (reuse cycles between windows); a collector takes
    its beats one per cycle and starts the core at most every reuse cycles, as a reduction
    (a window as large as the frame) its frame, a fork's skip FIFO its beats."""
    if engine.get("skip"):
        return engine["beats_in"]
    reuse = max(1, int(engine["reuse"]))
    window, collect, reduce = engine.get("window"), engine.get("collect"), engine.get("reduce")
    if collect:
        return max(collect["beats"], reuse)
    if reduce:
        return max(reduce["height"] * reduce["frame_width"], reuse)
    if not window:
        return reuse
    h, w, kh, kw = window["height"], window["width"], window["kh"], window["kw"]
    sh, sw, dh, dw = window["sh"], window["sw"], window["dh"], window["dw"]
    ii = max(1, window["ii"])
    out_h, out_w = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1

    def ends(i: int, span: int, stride: int, n: int) -> bool:
        return i >= span and (i - span) % stride == 0 and (i - span) // stride < n

    last_rows = [ends(i, (kh - 1) * dh, sh, out_h) for i in range(h)]
    last_cols = [ends(i, (kw - 1) * dw, sw, out_w) for i in range(w)]
    t, free = 0, 0  # the next accept's cycle; the first cycle the core takes a window again
    starts = []
    for _ in range(2):  # two frames: the second starts in steady state
        starts.append(t)
        for r in range(h):
            for c in range(w):
                if last_rows[r] and last_cols[c]:
                    t = max(t, free)
                    free = t + ii
                t += 1
    return t - starts[1]
