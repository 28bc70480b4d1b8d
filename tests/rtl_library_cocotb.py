"""The cocotb side of the RTL library tests (tests/test_rtl_library.py): the Python
references and the cocotb tests that the simulator imports from this module by name and runs
on the benches in tests/rtl_library/: fg_requantize's every rounding x overflow mode
(requantize_matrix), the clocked datapath units against numpy (datapath_exact), the
AXI4-Stream wrapper under back-pressure (axis_backpressure), and one test that fails on
purpose for sim.runner's own tests (deliberately_failing).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's `compiler`, also inside the simulator

from compiler.fixed import FixedType, Formats, Overflow, Rounding  # noqa: E402
from compiler.mantissa import requantize  # noqa: E402

try:  # inside the simulator, cocotb is the point; under plain pytest it may be absent
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, Timer
except ImportError:  # pragma: no cover - pytest tests then fail with a clear message
    cocotb = None


def _mask(width: int) -> int:
    return (1 << width) - 1


def _signed(raw: int, width: int) -> int:
    """Raw two's complement bits -> Python int."""
    return raw - (1 << width) if raw >> (width - 1) & 1 else raw


def _value(raw: int, width: int, signed: bool) -> int:
    return _signed(raw, width) if signed else raw


# --- fg_requantize ----------------------------------------------------------------------

MODES = [(r, o) for r in Rounding for o in Overflow]  # index = rounding * 4 + overflow
EXHAUSTIVE_MAX_W = 12


def _decode_formats(raw: int, count: int) -> list[tuple[int, ...]]:
    fields = [_signed(raw >> (8 * i) & 0xFF, 8) for i in range(count * 6)]
    return [tuple(fields[6 * k:6 * k + 6]) for k in range(count)]


def _requantize_codes(fmt: tuple[int, ...], steps: int, rng: random.Random) -> list[int]:
    """Raw input codes, one per step: every code (cycled) of a narrow input, else extremes
    (min, max, -1, 0, 1, the codes around the rounding half) and random codes, and the codes
    whose floor is at or next to an output bound, each with its dropped bits just below, at
    and above the half (fg_requantize decides saturation from the floor's bit patterns and
    the increment: floor == HI or LO - 1 with an increment, floor == -1 into an unsigned
    output, floor == LO under SAT_SYM)."""
    in_w, in_f, in_s = fmt[0], fmt[1], fmt[2]
    if in_w <= EXHAUSTIVE_MAX_W:
        return [i & _mask(in_w) for i in range(steps)]
    lo, hi = (-(1 << (in_w - 1)), (1 << (in_w - 1)) - 1) if in_s else (0, _mask(in_w))
    shift = in_f - fmt[4]
    special = [lo, hi, lo + 1, hi - 1, 0, 1, -1]
    if 0 < shift < in_w:
        half = 1 << (shift - 1)
        out_w, out_s = fmt[3], fmt[5]
        out_hi = (1 << (out_w - out_s)) - 1
        out_lo = -(1 << (out_w - 1)) if out_s else 0
        bounds = [b + d for b in (out_hi, out_lo, -1) for d in (-2, -1, 0, 1)]
        for base in [0, 3 << shift, -(5 << shift), lo, hi & ~_mask(shift)] + [b << shift for b in bounds]:
            special += [base + half + d for d in (-1, 0, 1)]
    codes = [v & _mask(in_w) for v in special if lo <= v <= hi]
    while len(codes) < steps:
        codes.append(rng.getrandbits(in_w))
    return codes[:steps]


def requantize_reference(fmt: tuple[int, ...], codes: list[int]) -> np.ndarray:
    """(steps, 32) raw output codes by compiler.mantissa.requantize."""
    in_w, in_f, in_s, out_w, out_f, out_s = fmt
    m = np.array([_value(c, in_w, bool(in_s)) for c in codes], dtype=object).reshape(-1, 1)
    if in_w + max(out_f - in_f, 0) < 60:
        m = m.astype(np.int64)  # the emulator's int64 fast paths are part of what we test
    out = np.empty((len(codes), len(MODES)), dtype=object)
    for i, (rnd, ovf) in enumerate(MODES):
        t = FixedType(out_w, out_w - out_f, bool(out_s), rnd, ovf)
        q = requantize(m, in_f, Formats.uniform((1,), t))[:, 0]
        out[:, i] = [int(v) & _mask(out_w) for v in q]
    return out


if cocotb is not None:

    @cocotb.test()
    async def requantize_matrix(dut):
        """Every rounding x overflow mode of every format, exactly as compiler.mantissa."""
        await Timer(1, "ns")  # constant outputs settle only once the simulation runs
        nf = len(dut.formats.value) // 48
        formats = _decode_formats(int(dut.formats.value.to_unsigned()), nf)
        steps = max(1 << f[0] for f in formats if f[0] <= EXHAUSTIVE_MAX_W)
        rng = random.Random(2024)
        codes = [_requantize_codes(f, steps, rng) for f in formats]
        refs = [requantize_reference(f, c) for f, c in zip(formats, codes)]
        in_off = np.cumsum([0] + [f[0] for f in formats])
        out_off = np.cumsum([0] + [len(MODES) * f[3] for f in formats])
        mismatches = []
        for step in range(steps):
            bus = 0
            for k in range(nf):
                bus |= codes[k][step] << int(in_off[k])
            dut.in_bus.value = bus
            await Timer(1, "ns")
            out = int(dut.out_bus.value.to_unsigned())
            for k, f in enumerate(formats):
                out_w = f[3]
                for i in range(len(MODES)):
                    got = out >> (int(out_off[k]) + i * out_w) & _mask(out_w)
                    want = refs[k][step, i]
                    if got != want and len(mismatches) < 20:
                        rnd, ovf = MODES[i]
                        mismatches.append(
                            f"format {f} {rnd.name}/{ovf.name} input {_value(codes[k][step], f[0], bool(f[2]))}: "
                            f"rtl {_value(got, out_w, bool(f[5]))} != python {_value(want, out_w, bool(f[5]))}")
        assert not mismatches, "fg_requantize differs from compiler.mantissa.requantize:\n" + "\n".join(mismatches)
        dut._log.info("requantize: %d formats x %d modes x %d inputs all exact", nf, len(MODES), steps)


# --- the datapath bench ---------------------------------------------------------------


def _clog2(n: int) -> int:
    return max(n - 1, 0).bit_length()


def _tree_latency(n: int, levels_per_stage: int) -> int:
    """The latency fg_adder_tree / fg_maxpool document."""
    return 0 if levels_per_stage == 0 else -(-_clog2(n) // levels_per_stage)


class Unit:
    """One instance in tb_datapath.sv: its input elements, output format, latency, reference.

    ``reference`` maps an int64/object array of input element values (cycles, n) to output
    values (cycles,); they are compared as raw bits of ``out_w``.
    """

    def __init__(self, name, n, w, signed, out_w, latency, reference, clocked=True, out_signed=None):
        self.name, self.n, self.w, self.signed = name, n, w, signed
        self.out_w, self.latency, self.reference, self.clocked = out_w, latency, reference, clocked
        self.out_signed = signed if out_signed is None else out_signed

    def element_range(self) -> tuple[int, int]:
        return (-(1 << (self.w - 1)), (1 << (self.w - 1)) - 1) if self.signed else (0, _mask(self.w))


def _relu(x):
    return np.maximum(x[:, 0], 0)


def _clip(lo, hi):
    return lambda x: np.minimum(np.maximum(x[:, 0], lo), hi)


def _sigmoid_table() -> np.ndarray:
    return np.array([round(1023 / (1 + np.exp(-c / 8))) for c in range(-32, 32)], dtype=np.int64)


DATAPATH_UNITS = [
    Unit("relu_a", 1, 8, True, 7, 0, _relu, clocked=False, out_signed=False),
    Unit("relu_b", 1, 6, False, 6, 0, _relu, clocked=False),
    Unit("relu_c", 1, 8, True, 10, 0, _relu, clocked=False, out_signed=False),
    Unit("relu_d", 1, 1, True, 1, 0, _relu, clocked=False, out_signed=False),
    Unit("clip_a", 1, 8, True, 8, 0, _clip(-20, 37), clocked=False),
    Unit("clip_b", 1, 8, True, 7, 0, _clip(0, 96), clocked=False, out_signed=False),
    Unit("clip_c", 1, 6, False, 6, 0, _clip(5, 63), clocked=False),
    Unit("clip_d", 1, 8, True, 8, 0, _clip(10, -3), clocked=False),
    Unit("pipe_0", 1, 8, False, 8, 0, lambda x: x[:, 0]),
    Unit("pipe_1", 1, 8, False, 8, 1, lambda x: x[:, 0]),
    Unit("pipe_3", 1, 8, False, 8, 3, lambda x: x[:, 0]),
    Unit("add_a", 8, 6, True, 9, _tree_latency(8, 1), lambda x: x.sum(axis=1)),
    Unit("add_b", 5, 7, False, 10, _tree_latency(5, 2), lambda x: x.sum(axis=1)),
    Unit("add_c", 7, 5, True, 8, _tree_latency(7, 0), lambda x: x.sum(axis=1)),
    Unit("add_d", 1, 8, True, 8, _tree_latency(1, 1), lambda x: x.sum(axis=1)),
    Unit("add_e", 9, 8, True, 16, _tree_latency(9, 3), lambda x: x.sum(axis=1)),
    Unit("add_f", 6, 8, True, 9, _tree_latency(6, 1), lambda x: x.sum(axis=1)),
    Unit("add_g", 3, 4, False, 3, _tree_latency(3, 1), lambda x: x.sum(axis=1)),
    Unit("max_a", 9, 8, True, 8, _tree_latency(9, 1), lambda x: x.max(axis=1)),
    Unit("max_b", 4, 5, False, 5, _tree_latency(4, 0), lambda x: x.max(axis=1)),
    Unit("max_c", 3, 6, True, 6, _tree_latency(3, 2), lambda x: x.max(axis=1)),
    Unit("avg_a", 9, 8, True, 24, _tree_latency(9, 2) + 1, lambda x: x.sum(axis=1) * 455),
    Unit("avg_b", 4, 6, False, 14, _tree_latency(4, 0) + 0, lambda x: x.sum(axis=1) * -21, out_signed=True),
    Unit("avg_c", 4, 6, True, 13, _tree_latency(4, 1) + 1, lambda x: x.sum(axis=1) * -16),
    Unit("rom_a", 1, 6, True, 10, 0, lambda x: _sigmoid_table()[x[:, 0] + 32], out_signed=False),
    Unit("rom_b", 1, 5, False, 7, 1, lambda x: (37 * x[:, 0] + 11) % 128),
]


def _datapath_stimulus(unit: Unit, cycles: int, rng: np.random.Generator) -> np.ndarray:
    """(cycles, n) element values: uniform, or extremes (min, max, 0, +-1) per element, or
    all elements at one extreme (the largest sums, products and ties)."""
    lo, hi = unit.element_range()
    values = rng.integers(lo, hi + 1, size=(cycles, unit.n), dtype=np.int64)
    extremes = np.array(sorted({lo, hi, 0, min(max(1, lo), hi), max(min(-1, hi), lo)}), dtype=np.int64)
    mixed = rng.random(cycles) < 0.25
    values[mixed] = rng.choice(extremes, size=(int(mixed.sum()), unit.n))
    same = rng.random(cycles) < 0.15
    values[same] = rng.choice(extremes, size=(int(same.sum()), 1))
    return values


def _pack(values: np.ndarray, w: int) -> list[int]:
    """(cycles, n) element values -> raw bus words, element i at bits [i*w +: w]."""
    raw = []
    for row in values.tolist():
        word = 0
        for i, v in enumerate(row):
            word |= (v & _mask(w)) << (i * w)
        raw.append(word)
    return raw


if cocotb is not None:

    @cocotb.test()
    async def datapath_exact(dut):
        """Every output and out_valid of every unit, every cycle, against numpy."""
        cycles, reset_at = 1500, 700
        rng = np.random.default_rng(7)
        stimulus = {u.name: _datapath_stimulus(u, cycles, rng) for u in DATAPATH_UNITS}
        words = {u.name: _pack(stimulus[u.name], u.w) for u in DATAPATH_UNITS}
        rst = [1 if t < 4 or reset_at <= t < reset_at + 2 else 0 for t in range(cycles)]
        in_valid = (rng.random(cycles) < 0.7).astype(int).tolist()
        ports = {u.name: (getattr(dut, f"{u.name}_in"), getattr(dut, f"{u.name}_out"),
                          getattr(dut, f"{u.name}_valid") if u.clocked else None) for u in DATAPATH_UNITS}
        got = {u.name: [] for u in DATAPATH_UNITS}
        got_valid = {u.name: [] for u in DATAPATH_UNITS}

        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        for t in range(cycles):
            await FallingEdge(dut.clk)
            dut.rst.value = rst[t]
            dut.in_valid.value = in_valid[t]
            for u in DATAPATH_UNITS:
                ports[u.name][0].value = words[u.name][t]
            await ReadOnly()
            for u in DATAPATH_UNITS:
                _, out, valid = ports[u.name]
                got[u.name].append(int(out.value.to_unsigned()))
                got_valid[u.name].append(int(valid.value) if valid is not None else None)

        errors = []
        for u in DATAPATH_UNITS:
            want = [int(v) & _mask(u.out_w) for v in u.reference(stimulus[u.name])]
            # out_valid: in_valid through `latency` registers, each cleared by rst
            regs: list[int | None] = [None] * u.latency
            for t in range(cycles):
                if u.latency == 0:
                    want_valid = in_valid[t]
                else:
                    want_valid = regs[-1]
                    regs = [0] * u.latency if rst[t] else [in_valid[t], *regs[:-1]]
                if u.clocked and want_valid is not None and got_valid[u.name][t] != want_valid:
                    errors.append(f"{u.name} cycle {t}: out_valid {got_valid[u.name][t]} != {want_valid}")
                checked = t >= u.latency and (u.latency == 0 or want_valid == 1)
                if checked and got[u.name][t] != want[t - u.latency]:
                    inputs = stimulus[u.name][t - u.latency].tolist()
                    errors.append(f"{u.name} cycle {t}: inputs {inputs} -> rtl "
                                  f"{_value(got[u.name][t], u.out_w, u.out_signed)} != numpy "
                                  f"{_value(want[t - u.latency], u.out_w, u.out_signed)}")
            if u.clocked and u.latency > 0 and sum(v == 1 for v in got_valid[u.name]) < cycles // 2:
                errors.append(f"{u.name}: too few valid outputs")
        assert not errors, f"{len(errors)} mismatches:\n" + "\n".join(errors[:30])
        dut._log.info("datapath: %d units x %d cycles exact", len(DATAPATH_UNITS), cycles)


# --- the AXI4-Stream wrapper bench -------------------------------------------------------


def _core(data: int) -> int:
    """The toy core of tb_axis_wrapper.sv: {in, in[0]} ^ 9'h0a5."""
    return ((data << 1) | (data & 1)) ^ 0x0A5


def _bits(bus, i: int, w: int = 1) -> int:
    return bus >> (i * w) & _mask(w)


if cocotb is not None:

    @cocotb.test()
    async def axis_backpressure(dut):
        """Random tvalid gaps and tready back-pressure: every beat arrives once, in order,
        with its tlast; AXI stability; tready low in reset; the documented throughput."""
        ni = len(dut.s_tvalid.value)
        await Timer(1, "ns")
        config = int(dut.config_bus.value.to_unsigned())
        latency = [_bits(config, 2 * i, 8) for i in range(ni)]
        depth = [_bits(config, 2 * i + 1, 8) for i in range(ni)]
        rng = random.Random(11)
        reset_cycles, random_until, full_rate_until, cycles = 4, 1600, 1900, 2000
        window = range(full_rate_until - 240, full_rate_until)  # steady state of the full-rate phase
        holding = [None] * ni  # the beat each source presents until it is taken
        sent = [[] for _ in range(ni)]
        received = [[] for _ in range(ni)]
        accepted_in_window = [0] * ni
        offer_p = [0.6] * ni
        ready_p = [0.5] * ni
        stalled = [None] * ni  # m_axis beat shown but not taken last cycle: must not change
        errors = []

        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        for t in range(cycles):
            await FallingEdge(dut.clk)
            # outputs come from registers only: read them before driving this cycle's inputs
            s_ready = int(dut.s_tready.value.to_unsigned())
            m_valid = int(dut.m_tvalid.value.to_unsigned())
            m_data = int(dut.m_tdata.value.to_unsigned())
            m_last = int(dut.m_tlast.value.to_unsigned())
            if t % 100 == 0 and t < random_until:  # new random rates every 100 cycles
                offer_p = [rng.choice([0.1, 0.5, 0.9, 1.0]) for _ in range(ni)]
                ready_p = [rng.choice([0.0, 0.1, 0.5, 0.9, 1.0]) for _ in range(ni)]
            in_reset = t < reset_cycles
            s_valid = s_data = s_last = m_ready = 0
            for i in range(ni):
                # low from the first reset edge through the cycle after reset
                if 1 <= t <= reset_cycles and _bits(s_ready, i):
                    errors.append(f"instance {i} cycle {t}: s_axis_tready high in or just after reset")
                if in_reset:
                    continue
                if holding[i] is None:
                    offer = rng.random() < offer_p[i] if t < random_until else t < full_rate_until
                    if offer:
                        holding[i] = (rng.getrandbits(8), int(rng.random() < 0.2))
                if holding[i] is not None:
                    s_valid |= 1 << i
                    s_data |= holding[i][0] << (8 * i)
                    s_last |= holding[i][1] << i
                ready = rng.random() < ready_p[i] if t < random_until else True
                m_ready |= int(ready) << i
                beat = (_bits(m_data, i, 9), _bits(m_last, i))
                if stalled[i] is not None and (not _bits(m_valid, i) or beat != stalled[i]):
                    errors.append(f"instance {i} cycle {t}: m_axis beat changed or dropped while stalled")
                stalled[i] = beat if _bits(m_valid, i) and not ready else None
            dut.rst.value = int(in_reset)
            dut.s_tvalid.value = s_valid
            dut.s_tdata.value = s_data
            dut.s_tlast.value = s_last
            dut.m_tready.value = m_ready
            # the handshakes of the coming clock edge
            for i in range(ni):
                if _bits(s_valid, i) and _bits(s_ready, i):
                    sent[i].append(holding[i])
                    holding[i] = None
                    accepted_in_window[i] += t in window
                if _bits(m_valid, i) and _bits(m_ready, i):
                    received[i].append((_bits(m_data, i, 9), _bits(m_last, i)))
            await ReadOnly()
            now = (int(dut.s_tready.value.to_unsigned()), int(dut.m_tvalid.value.to_unsigned()),
                   int(dut.m_tdata.value.to_unsigned()), int(dut.m_tlast.value.to_unsigned()))
            if now != (s_ready, m_valid, m_data, m_last):
                errors.append(f"cycle {t}: an output changed combinationally with the inputs")

        flags = int(dut.latency_error.value.to_unsigned())
        for i in range(ni):
            want = [(_core(d), last) for d, last in sent[i]]
            name = f"instance {i} (LATENCY {latency[i]}, FIFO_DEPTH {depth[i]})"
            if holding[i] is not None:
                errors.append(f"{name}: a beat was never accepted")
            if received[i] != want:
                first = next((k for k, (a, b) in enumerate(zip(received[i], want)) if a != b),
                             min(len(received[i]), len(want)))
                errors.append(f"{name}: sent {len(want)} beats, received {len(received[i])}; first "
                              f"difference at beat {first}")
            if len(sent[i]) < 200 or sum(last for _, last in sent[i]) < 20:
                errors.append(f"{name}: too little traffic ({len(sent[i])} beats)")
            rate = min(1.0, depth[i] / (latency[i] + 2))  # the header's throughput formula
            if abs(accepted_in_window[i] - rate * len(window)) > 1:
                errors.append(f"{name}: {accepted_in_window[i]} beats in {len(window)} full-rate cycles, "
                              f"expected {rate * len(window):.1f}")
            if _bits(flags, i):
                errors.append(f"{name}: core_latency_error raised")
        assert not errors, f"{len(errors)} problems:\n" + "\n".join(errors[:30])
        dut._log.info("axis: %s beats through %d wrappers, in order", [len(s) for s in sent], ni)


if cocotb is not None:

    @cocotb.test()
    async def deliberately_failing(dut):
        """Run only by test_runner_reports_failures: a failing cocotb test must fail pytest."""
        await Timer(1, "ns")
        raise AssertionError("this cocotb test fails on purpose")
