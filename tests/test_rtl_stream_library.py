"""The stream library (rtl/fg_stream_*.sv) against its cycle model
(compiler/backends/rtl/stream_library.py and stream_model.py), cycle for cycle, on Verilator.

One testbench top, tests/rtl_library/tb_stream.sv (one Verilator build), holds every module
in several parameterisations and four chains of engines; the cocotb tests below live in this
module (the simulator imports it by name).

* stream_units: pads (no pad, pads on each side, a 1-D frame, a max pool's VALUE), windows
  (1x1, 3x3, 2x2 stride 2 at II 3, 5x5 dilation 2, H = 1, a kernel as wide as the frame, 3x3
  stride 2 at II 2), FIFOs (depth 1, 2, 5), collectors (N = 1, 7, 3; II 1, 3, 4) and global
  reductions (fg_stream_reduce: sums and maxima, signed and unsigned, II 1 to 3) under random
  in_valid, out_ready and credit, with a reset in the middle: every valid, ready, issue,
  credit and (valid) data value equals the model's every cycle; the windows' taps are the
  pixels numpy picks from the frames (many frames back to back), the FIFOs give out what
  their core wrote, the collectors their beats in groups.
* stream_chains_full_rate / stream_chains_stalls: pad -> window -> fg_pipe -> FIFO chains
  (and conv -> folded pool -> collect): the input and output transfer cycles equal
  stream_model.simulate's, the ports equal stream_model.Chain's every cycle, every output
  equals numpy's (nothing lost or duplicated); at full rate DEPTH = latency + 2 sustains one
  token per cycle and one less does not.
* Lint (verilator -Wall) of each module in several parameterisations and yosys synth_xilinx
  of one each, beyond tests/test_rtl_library.py's checks of every rtl/ file's defaults.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `sim` is a top-level folder of the repo, not installed

from compiler.backends.rtl.stream_library import Collect, Fifo, Pad, Reduce, Window  # noqa: E402
from compiler.backends.rtl.stream_model import Chain, simulate  # noqa: E402

RTL = ROOT / "rtl"
BENCHES = Path(__file__).resolve().parent / "rtl_library"
BUILD_ROOT = ROOT / "build" / "rtl_library"
TEST_MODULE = Path(__file__).stem
PW = 8  # pixel width of every unit in tb_stream.sv
MAX_TAPS, MAX_BEATS, MAX_LANES, MAX_ACC_W = 25, 7, 3, 12

try:  # inside the simulator, cocotb is the point; under plain pytest it may be absent
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, Timer
except ImportError:  # pragma: no cover - the pytest tests below then fail with a clear message
    cocotb = None


def _mask(width: int) -> int:
    return (1 << width) - 1


def _field(bus: int, i: int, width: int = 1) -> int:
    return bus >> (i * width) & _mask(width)


def _pack(values, width: int = PW) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & _mask(width)) << (i * width)
    return word


def _configs(bus, count: int, fields: int) -> list[tuple[int, ...]]:
    raw = int(bus.value.to_unsigned())
    return [tuple(_field(raw, i * fields + j, 8) for j in range(fields)) for i in range(count)]


def window_reference(frame: np.ndarray, window: Window) -> list[tuple[int, ...]]:
    """The windows of one H x WD frame in raster order, each its taps row-major: numpy."""
    out = []
    for oh in range(window.out_height):
        for ow in range(window.out_width):
            rows = oh * window.sh + window.dh * np.arange(window.kh)
            cols = ow * window.sw + window.dw * np.arange(window.kw)
            out.append(tuple(int(v) for v in frame[np.ix_(rows, cols)].ravel()))
    return out


class Source:
    """A stream source: offers a random beat with probability p, holds it until taken."""

    def __init__(self, rng: random.Random, width: int = PW):
        self.rng, self.beat, self.p, self.width = rng, None, 0.7, width

    def offer(self, enabled: bool = True):
        if self.beat is None and enabled and self.rng.random() < self.p:
            self.beat = self.rng.getrandbits(self.width)
        return self.beat

    def taken(self, accepted: bool) -> None:
        if accepted:
            self.beat = None


class Checker:
    """Collects mismatches between RTL and the model, with the first few described."""

    def __init__(self):
        self.errors: list[str] = []

    def same(self, what: str, t: int, rtl, model) -> None:
        if rtl != model:
            self.errors.append(f"cycle {t} {what}: rtl {rtl} != model {model}")

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.errors.append(message)

    def done(self, log, what: str) -> None:
        assert not self.errors, f"{len(self.errors)} problems:\n" + "\n".join(self.errors[:30])
        log.info("%s: RTL equals the model", what)


async def _reset_and_clock(dut, cycles: int = 3) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    for _ in range(cycles):
        await FallingEdge(dut.clk)
        dut.rst.value = 1
    # the last reset edge comes next; the caller's first cycle is cycle 0


# --- every module alone -----------------------------------------------------------------

UNIT_CYCLES, RESET_AT = 3000, 1400


if cocotb is not None:

    @cocotb.test()
    async def stream_units(dut):
        """Every unit of tb_stream.sv, random handshakes, against the model every cycle."""
        await Timer(1, "ns")  # constant outputs (the configs) settle only once the simulation runs
        pads = [Pad(*c) for c in _configs(dut.pad_config, len(dut.pad_in_valid.value), 7)]
        windows = [Window(*c) for c in _configs(dut.win_config, len(dut.win_in_valid.value), 9)]
        fifo_cfg = _configs(dut.fifo_config, len(dut.fifo_issue.value), 2)
        fifos = [Fifo(depth) for depth, _ in fifo_cfg]
        fifo_latency = [latency for _, latency in fifo_cfg]
        collects = [Collect(*c) for c in _configs(dut.col_config, len(dut.col_in_valid.value), 2)]
        reduces = [Reduce(PW, *c) for c in _configs(dut.red_config, len(dut.red_in_valid.value), 7)]
        rng = random.Random(13)
        pad_src = [Source(rng) for _ in pads]
        win_src = [Source(rng) for _ in windows]
        col_src = [Source(rng) for _ in collects]
        red_src = [Source(rng, r.lanes * PW) for r in reduces]
        fifo_core = [[None] * lat for lat in fifo_latency]  # the bench's core: issue -> in_valid
        # what each unit took and gave since the last reset
        win_in = [[] for _ in windows]
        win_out = [[] for _ in windows]
        fifo_sent = [[] for _ in fifos]
        fifo_got = [[] for _ in fifos]
        col_in = [[] for _ in collects]
        col_out = [[] for _ in collects]
        reduce_results = [0] * len(reduces)
        results = {"win_in": [], "win_out": [], "fifo_sent": [], "fifo_got": [], "col_in": [], "col_out": []}
        c = Checker()
        ready_p = credit_p = 0.7
        await _reset_and_clock(dut)
        for t in range(UNIT_CYCLES):
            await FallingEdge(dut.clk)
            rst = RESET_AT <= t < RESET_AT + 2
            if t % 200 == 0:  # the rates change now and then: long stalls and full speed
                ready_p, credit_p = rng.choice([0.1, 0.5, 0.9, 1.0]), rng.choice([0.2, 0.6, 1.0])
                for s in pad_src + win_src + col_src + red_src:
                    s.p = rng.choice([0.2, 0.7, 1.0])
            if rst:  # cores and sources are reset too; the histories restart
                for lists, name in ((win_in, "win_in"), (win_out, "win_out"), (fifo_sent, "fifo_sent"),
                                    (fifo_got, "fifo_got"), (col_in, "col_in"), (col_out, "col_out")):
                    results[name].append([list(x) for x in lists])
                    for x in lists:
                        x.clear()
                for s in pad_src + win_src + col_src + red_src:
                    s.beat = None
                fifo_core = [[None] * lat for lat in fifo_latency]
            dut.rst.value = int(rst)

            # drive this cycle's inputs (the model says what each unit will do with them)
            p_valid = p_data = p_ready = 0
            pad_model = []
            for i, (pad, src) in enumerate(zip(pads, pad_src)):
                beat, ready = src.offer(not rst), rng.random() < ready_p
                p_valid |= (beat is not None) << i
                p_data |= (beat or 0) << (i * PW)
                p_ready |= ready << i
                pad_model.append(pad.step(rst, in_valid=beat is not None, in_data=beat or 0, out_ready=ready))
            w_valid = w_data = w_credit = 0
            win_model = []
            for i, (window, src) in enumerate(zip(windows, win_src)):
                beat, credit = src.offer(not rst), rng.random() < credit_p
                w_valid |= (beat is not None) << i
                w_data |= (beat or 0) << (i * PW)
                w_credit |= credit << i
                win_model.append(window.step(rst, in_valid=beat is not None, in_data=beat or 0, credit=credit))
            f_issue = f_valid = f_data = f_ready = 0
            fifo_model = []
            for i, fifo in enumerate(fifos):
                issue = not rst and fifo.credit and rng.random() < credit_p
                token = rng.getrandbits(PW) if issue else None
                fifo_core[i].append(token)
                written = fifo_core[i].pop(0)
                ready = rng.random() < ready_p
                f_issue |= issue << i
                f_valid |= (written is not None) << i
                f_data |= (written or 0) << (i * PW)
                f_ready |= ready << i
                if token is not None:
                    fifo_sent[i].append(token)
                fifo_model.append(fifo.step(rst, issue=issue, in_valid=written is not None, in_data=written,
                                            out_ready=ready))
            c_valid = c_data = c_ready = 0
            col_model = []
            for i, (collect, src) in enumerate(zip(collects, col_src)):
                beat, ready = src.offer(not rst), rng.random() < ready_p
                c_valid |= (beat is not None) << i
                c_data |= (beat or 0) << (i * PW)
                c_ready |= ready << i
                col_model.append(collect.step(rst, in_valid=beat is not None, in_data=beat or 0, out_ready=ready))
            r_valid = r_data = r_credit = 0
            red_model = []
            for i, (reduce, src) in enumerate(zip(reduces, red_src)):
                beat, credit = src.offer(not rst), rng.random() < credit_p
                r_valid |= (beat is not None) << i
                r_data |= (beat or 0) << (i * MAX_LANES * PW)
                r_credit |= credit << i
                red_model.append(reduce.step(rst, in_valid=beat is not None, in_data=beat or 0, credit=credit))
            dut.pad_in_valid.value, dut.pad_in_data.value, dut.pad_out_ready.value = p_valid, p_data, p_ready
            dut.win_in_valid.value, dut.win_in_data.value, dut.win_credit.value = w_valid, w_data, w_credit
            dut.fifo_issue.value, dut.fifo_in_valid.value = f_issue, f_valid
            dut.fifo_in_data.value, dut.fifo_out_ready.value = f_data, f_ready
            dut.col_in_valid.value, dut.col_in_data.value, dut.col_out_ready.value = c_valid, c_data, c_ready
            dut.red_in_valid.value, dut.red_in_data.value, dut.red_credit.value = r_valid, r_data, r_credit
            await ReadOnly()

            # compare every output with the model's
            bus = {name: int(getattr(dut, name).value.to_unsigned()) for name in (
                "pad_in_ready", "pad_out_valid", "pad_out_data", "win_in_ready", "win_issue", "win_out_valid",
                "win_out_data", "fifo_credit", "fifo_out_valid", "fifo_out_data", "col_in_ready",
                "col_out_valid", "col_out_data", "red_in_ready", "red_issue", "red_out_valid", "red_out_data")}
            for i, m in enumerate(pad_model):
                c.same(f"pad {i} in_ready", t, _field(bus["pad_in_ready"], i), int(m["in_ready"]))
                c.same(f"pad {i} out_valid", t, _field(bus["pad_out_valid"], i), int(m["out_valid"]))
                if m["out_valid"]:
                    c.same(f"pad {i} out_data", t, _field(bus["pad_out_data"], i, PW), m["out_data"])
                pad_src[i].taken(_field(p_valid, i) and m["in_ready"])
            for i, m in enumerate(win_model):
                taps = windows[i].kh * windows[i].kw
                c.same(f"window {i} in_ready", t, _field(bus["win_in_ready"], i), int(m["in_ready"]))
                c.same(f"window {i} issue", t, _field(bus["win_issue"], i), int(m["issue"]))
                c.same(f"window {i} out_valid", t, _field(bus["win_out_valid"], i), int(m["out_valid"]))
                if m["out_valid"]:
                    got = _field(bus["win_out_data"], i, MAX_TAPS * PW)
                    c.same(f"window {i} out_data", t, [_field(got, k, PW) for k in range(taps)], list(m["out_data"]))
                    if not rst:
                        win_out[i].append(tuple(_field(got, k, PW) for k in range(taps)))
                if _field(w_valid, i) and m["in_ready"]:
                    win_in[i].append(win_src[i].beat)
                win_src[i].taken(_field(w_valid, i) and m["in_ready"])
            for i, m in enumerate(fifo_model):
                c.same(f"fifo {i} credit", t, _field(bus["fifo_credit"], i), int(m["credit"]))
                c.same(f"fifo {i} out_valid", t, _field(bus["fifo_out_valid"], i), int(m["out_valid"]))
                if m["out_valid"]:
                    c.same(f"fifo {i} out_data", t, _field(bus["fifo_out_data"], i, PW), m["out_data"])
                    if _field(f_ready, i) and not rst:
                        fifo_got[i].append(_field(bus["fifo_out_data"], i, PW))
            for i, m in enumerate(col_model):
                n = collects[i].beats
                c.same(f"collect {i} in_ready", t, _field(bus["col_in_ready"], i), int(m["in_ready"]))
                c.same(f"collect {i} out_valid", t, _field(bus["col_out_valid"], i), int(m["out_valid"]))
                got = _field(bus["col_out_data"], i, MAX_BEATS * PW)
                if m["out_valid"]:
                    c.same(f"collect {i} out_data", t, [_field(got, k, PW) for k in range(n)], list(m["out_data"]))
                    if _field(c_ready, i) and not rst:
                        col_out[i].append(tuple(_field(got, k, PW) for k in range(n)))
                if _field(c_valid, i) and m["in_ready"]:
                    col_in[i].append(col_src[i].beat)
                col_src[i].taken(_field(c_valid, i) and m["in_ready"])
            for i, m in enumerate(red_model):
                c.same(f"reduce {i} in_ready", t, _field(bus["red_in_ready"], i), int(m["in_ready"]))
                c.same(f"reduce {i} issue", t, _field(bus["red_issue"], i), int(m["issue"]))
                c.same(f"reduce {i} out_valid", t, _field(bus["red_out_valid"], i), int(m["out_valid"]))
                if m["out_valid"]:
                    width = reduces[i].lanes * reduces[i].acc_width
                    c.same(f"reduce {i} out_data", t, _field(bus["red_out_data"] >> (i * MAX_LANES * MAX_ACC_W), 0,
                                                             width), m["out_data"])
                    reduce_results[i] += not rst
                red_src[i].taken(_field(r_valid, i) and m["in_ready"])
        for lists, name in ((win_in, "win_in"), (win_out, "win_out"), (fifo_sent, "fifo_sent"),
                            (fifo_got, "fifo_got"), (col_in, "col_in"), (col_out, "col_out")):
            results[name].append([list(x) for x in lists])
        for i, count in enumerate(reduce_results):
            c.check(count > 20, f"reduce {i}: too few frames ({count})")

        # what went through, against numpy, for each stretch between resets
        for part in range(len(results["win_in"])):
            for i, window in enumerate(windows):
                pixels, got = results["win_in"][part][i], results["win_out"][part][i]
                size = window.height * window.width
                frames = len(pixels) // size
                c.check(part > 0 or frames >= 2, f"window {i}: only {frames} frames went through")
                want = [w for f in range(frames) for w in window_reference(
                    np.array(pixels[f * size:(f + 1) * size]).reshape(window.height, window.width), window)]
                c.check(got[:len(want)] == want and len(got) - len(want) <= len(window_reference(
                    np.zeros((window.height, window.width), dtype=int), window)),
                    f"window {i} stretch {part}: {len(got)} windows, the first {len(want)} not numpy's")
            for i, fifo in enumerate(fifos):
                sent, got = results["fifo_sent"][part][i], results["fifo_got"][part][i]
                c.check(got == sent[:len(got)] and len(sent) - len(got) <= fifo.depth,
                        f"fifo {i} stretch {part}: {len(sent)} tokens issued, {len(got)} out, not in order")
                c.check(part > 0 or len(got) > 100, f"fifo {i}: too little traffic ({len(got)})")
            for i, collect in enumerate(collects):
                beats, got = results["col_in"][part][i], results["col_out"][part][i]
                n = collect.beats
                want = [tuple(beats[k:k + n]) for k in range(0, len(beats) - n + 1, n)]
                c.check(got == want[:len(got)] and len(want) - len(got) <= 1,
                        f"collect {i} stretch {part}: {len(got)} vectors out of {len(want)}, not the beats in groups")
                c.check(part > 0 or len(got) > 20, f"collect {i}: too little traffic ({len(got)})")
        c.done(dut._log, f"{len(pads)} pads, {len(windows)} windows, {len(fifos)} fifos, {len(collects)} collectors, "
               f"{len(reduces)} reductions")


# --- chains of engines ------------------------------------------------------------------


def _sum(taps) -> int:
    return sum(taps) & _mask(PW)


# The chains of tb_stream.sv: (port name, engines as stream_model.simulate takes them, cores)
CHAINS = [
    ("a", [{"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 2, "fifo_depth": 5}],
     [lambda x: x]),
    ("b", [{"window": (3, 8, 1, 1, 1, 1, 1, 1, 1), "latency": 3, "fifo_depth": 6}], [lambda x: x]),
    ("c", [{"window": (3, 8, 1, 1, 1, 1, 1, 1, 1), "latency": 3, "fifo_depth": 5}], [lambda x: x]),
    ("d", [{"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4},
           {"window": (4, 5, 2, 2, 2, 2, 1, 1, 3), "latency": 2, "fifo_depth": 5},
           {"collect": 2, "latency": 0, "fifo_depth": 2}],
     [_sum, _sum, lambda x: x]),
]
CHAIN_IMAGES = 8
CHAIN_FRAMES = {"a": (4, 5), "b": (3, 8), "c": (3, 8), "d": (4, 5)}  # each chain's input frame
CHAINS_BEATS = {name: h * w for name, (h, w) in CHAIN_FRAMES.items()}


def chain_reference(name: str, image: np.ndarray) -> list:
    """The output beats of one image through chain ``name``, by numpy."""
    if name in "bc":
        return [(int(v),) for v in image.ravel()]
    padded = np.pad(image, 1)
    windows = [tuple(int(v) for v in padded[r:r + 3, q:q + 3].ravel()) for r in range(4) for q in range(5)]
    if name == "a":
        return windows
    conv = np.array([_sum(w) for w in windows]).reshape(4, 5)
    pooled = [_sum(conv[r:r + 2, q:q + 2].ravel()) for r in (0, 2) for q in (0, 2)]
    return [tuple(pooled[k:k + 2]) for k in (0, 2)]


async def _run_chains(dut, in_p: float, ready_p: float, seed: int) -> list[list[int]]:
    """Every chain with these input and output rates; returns each chain's input transfer cycles."""
    rng = np.random.default_rng(seed)
    beats = [CHAINS_BEATS[name] for name, _, _ in CHAINS]
    images = [rng.integers(0, 1 << PW, size=(CHAIN_IMAGES, *CHAIN_FRAMES[name])) for name, _, _ in CHAINS]
    horizon = 20_000  # cycles of random handshakes, far more than the images need
    in_valid = [(rng.random(horizon) < in_p) for _ in CHAINS]
    out_ready = [(rng.random(horizon) < ready_p) for _ in CHAINS]
    want = [simulate(engines, beats[k], CHAIN_IMAGES, in_valid=lambda t, k=k: in_valid[k][t],
                     out_ready=lambda t, k=k: out_ready[k][t]) for k, (_, engines, _) in enumerate(CHAINS)]
    models = [Chain(engines, cores) for _, engines, cores in CHAINS]
    lanes = [len(chain_reference(name, images[k][0])[0]) for k, (name, _, _) in enumerate(CHAINS)]
    sent = [0] * len(CHAINS)
    offering = [False] * len(CHAINS)
    in_cycles = [[] for _ in CHAINS]
    out_cycles = [[] for _ in CHAINS]
    received = [[] for _ in CHAINS]
    c = Checker()
    await _reset_and_clock(dut)
    end = max(w[1][-1] for w in want) + 20
    for t in range(end):
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        valid = data = ready = 0
        model_out = []
        for k in range(len(CHAINS)):
            offering[k] = sent[k] < beats[k] * CHAIN_IMAGES and (offering[k] or bool(in_valid[k][t]))
            pixel = int(images[k].reshape(-1)[sent[k]]) if offering[k] else 0
            valid |= offering[k] << k
            data |= pixel << (k * PW)
            ready |= int(out_ready[k][t]) << k
            model_out.append(models[k].step(offering[k], pixel, bool(out_ready[k][t])))
        dut.chain_in_valid.value, dut.chain_in_data.value, dut.chain_out_ready.value = valid, data, ready
        await ReadOnly()
        in_ready = int(dut.chain_in_ready.value.to_unsigned())
        out_valid = int(dut.chain_out_valid.value.to_unsigned())
        for k, (name, _, _) in enumerate(CHAINS):
            m = model_out[k]
            c.same(f"chain {name} in_ready", t, _field(in_ready, k), int(bool(m["in_ready"])))
            c.same(f"chain {name} out_valid", t, _field(out_valid, k), int(bool(m["out_valid"])))
            if offering[k] and _field(in_ready, k):
                in_cycles[k].append(t)
                sent[k] += 1
                offering[k] = False
            if _field(out_valid, k):
                raw = int(getattr(dut, f"chain_{name}_out_data").value.to_unsigned())
                beat = tuple(_field(raw, j, PW) for j in range(lanes[k]))
                c.same(f"chain {name} out_data", t, beat, tuple(m["out_data"]))
                if out_ready[k][t]:
                    out_cycles[k].append(t)
                    received[k].append(beat)
    for k, (name, _, _) in enumerate(CHAINS):
        c.check(in_cycles[k] == want[k][0], f"chain {name}: input transfers at {in_cycles[k][:12]}..., "
                f"simulate says {want[k][0][:12]}...")
        c.check(out_cycles[k] == want[k][1], f"chain {name}: output transfers at {out_cycles[k][:12]}..., "
                f"simulate says {want[k][1][:12]}...")
        expected = [b for image in images[k] for b in chain_reference(name, image)]
        c.check(received[k] == expected, f"chain {name}: {len(received[k])} beats out, {len(expected)} expected "
                "by numpy, or not the same beats")
    c.done(dut._log, f"chains at in_valid {in_p}, out_ready {ready_p}")
    return in_cycles


if cocotb is not None:

    @cocotb.test()
    async def stream_chains_full_rate(dut):
        """Inputs always valid, outputs always ready: simulate's cycles exactly, and the depth
        rule: chain b (DEPTH = latency + 2) takes a pixel every cycle, chain c does not."""
        in_cycles = await _run_chains(dut, 1.0, 1.0, seed=1)
        b, c = in_cycles[1], in_cycles[2]
        assert b == list(range(len(b))), "chain b (DEPTH = latency + 2) did not take one pixel per cycle"
        assert c[-1] > len(c) + len(c) // 8, "chain c (DEPTH = latency + 1) kept up with one pixel per cycle"

    @cocotb.test()
    async def stream_chains_stalls(dut):
        """Random input gaps and random output stalls: simulate's cycles exactly, nothing lost."""
        await _run_chains(dut, 0.7, 0.4, seed=2)


# --- pytest: the build ------------------------------------------------------------------


def _run_bench(cocotb_tests: list[str]) -> None:
    if cocotb is None:
        pytest.fail("cocotb is not installed in this environment (pip install -e '.[dev]')")
    from sim import runner
    results = runner.build_and_test(
        sources=[*sorted(RTL.glob("*.sv")), BENCHES / "tb_stream.sv"], top="tb_stream", test_module=TEST_MODULE,
        test_dir=BUILD_ROOT / "runs" / "tb_stream", build_dir=BUILD_ROOT, python_path=[Path(__file__).parent],
        testcase=cocotb_tests)
    assert results.ok, results.summary()
    assert sorted(c.name for c in results.cases) == sorted(cocotb_tests), results.summary()


def test_stream_units():
    _run_bench(["stream_units"])


def test_stream_chains():
    _run_bench(["stream_chains_full_rate", "stream_chains_stalls"])


# --- lint and synthesis ------------------------------------------------------------------

# Parameterisations beyond the defaults that tests/test_rtl_library.py lints and synthesizes;
# the first of each module is synthesized too.
STREAM_PARAMETERS = {
    "fg_stream_pad": [{"H": 2, "WD": 5, "PT": 2, "PB": 0, "PL": 0, "PR": 3, "VALUE": "8'h80"},
                      {"PT": 0, "PB": 0, "PL": 0, "PR": 0},
                      {"H": 1, "WD": 1, "PT": 0, "PB": 0, "PL": 0, "PR": 0}, {"H": 1, "WD": 6, "PT": 0, "PB": 1}],
    "fg_stream_window": [{"H": 6, "WD": 5, "KH": 2, "KW": 2, "SH": 2, "SW": 2, "II": 3},
                         {"H": 10, "WD": 11, "KH": 5, "KW": 5, "DH": 2, "DW": 2}, {"KH": 1, "KW": 1, "H": 1, "WD": 1},
                         {"H": 1, "WD": 9, "KH": 1, "KW": 3, "SW": 2, "II": 2}, {"H": 4, "WD": 3, "KH": 2, "KW": 3}],
    "fg_stream_fifo": [{"DEPTH": 5}, {"DEPTH": 1}, {"DEPTH": 8}],
    "fg_stream_collect": [{"N": 7}, {"N": 1}, {"N": 8}, {"N": 3, "II": 3}],
    "fg_stream_reduce": [{"LANES": 3, "H": 5, "WD": 5, "ACC_W": 13, "II": 2}, {"LANES": 2, "OP": 1, "ACC_W": 8},
                         {"H": 1, "WD": 1, "SIGNED": 0, "ACC_W": 8}],
}


@pytest.mark.parametrize("module,parameters", [(m, p) for m, ps in STREAM_PARAMETERS.items() for p in ps],
                         ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}{x}" for k, x in v.items()))
def test_lint_clean(module, parameters):
    """verilator --lint-only -Wall on each module in each parameterisation above."""
    from sim import runner
    runner.lint([RTL / f"{module}.sv"], top=module, parameters=parameters)


def test_synthesis_yosys():
    """yosys synth_xilinx maps each module in its first parameterisation above: a stat, no
    latch, no warning (tests/test_rtl_library.py's checks; results cached by content)."""
    import test_rtl_library as library
    library.require_yosys()
    out_dir = BUILD_ROOT / "synth_stream"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {m: library._synthesize(m, out_dir, ps[0]) for m, ps in STREAM_PARAMETERS.items()}
    problems, summary = library.synthesis_problems(results)
    print("\n".join(summary))
    assert not problems, "\n".join(problems)
