"""Cycle-exact Python models of the stream library's modules (rtl/fg_stream_*.sv and a core's
fixed-latency pipeline), each alone; compiler/backends/rtl/stream_model.py joins them into
engines, chains and graphs.

Each module class holds the registers its SystemVerilog twin holds and follows the cycle
semantics its header documents (and design13.md states).  A cycle is one call of
:meth:`_Module.step`: it returns the outputs the module shows during the cycle (a dict keyed
by the RTL port names) for the inputs it is given, then applies the rising clock edge that
ends the cycle (``rst``: a synchronous reset at that edge).  Each edge also sets ``moved``:
whether it changed the module's registers other than by counting down (a folded window's or
collector's ``cooldown`` left above zero, a core's tokens advancing inside its pipeline short
of its output); :meth:`_Module.still_for` and :meth:`_Module.count_down` let the cycle model
skip the cycles in which engines only count down (stream_model.py).  Data values are carried
as they are given (ints, beat numbers, anything): a window's ``out_data`` is the tuple of its
taps (row-major over the kernel) and a collected vector the tuple of its beats, as the RTL
packs them low to high (:class:`Reduce`, which adds lanes, takes packed words).  A data output is
meaningful only while its valid is high.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class _Module:
    """A clocked module: ``outputs`` reads the state, ``_update`` is the clock edge (which sets
    ``moved``)."""

    moved = True  # whether the last edge changed the registers other than by counting down
    cooldown = 0  # a folded module's countdown: cycles before it may issue again (0: it may)

    def reset(self) -> None:
        raise NotImplementedError

    def state(self) -> tuple:
        """The registers that decide the module's handshakes from here on (no data): two
        cycles with equal states in every module behave alike from then on."""
        raise NotImplementedError

    def outputs(self, **inputs) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, out: dict[str, Any], **inputs) -> None:
        raise NotImplementedError

    def clock(self, rst: bool = False, **inputs) -> None:
        """The rising edge at the end of a cycle with these inputs."""
        if rst:
            self.reset()
            self.moved = True
        else:
            self._update(self.outputs(**inputs), **inputs)

    def step(self, rst: bool = False, **inputs) -> dict[str, Any]:
        """One cycle: the outputs during it, then its closing clock edge."""
        out = self.outputs(**inputs)
        self.clock(rst, **inputs)
        return out

    def still_for(self) -> int | None:
        """After an edge that did not move it: how many of the next cycles the module's outputs
        stay as they are while its inputs do (None: as long as they do)."""
        return self.cooldown - 1 if self.cooldown else None

    def count_down(self, cycles: int) -> None:
        """Apply ``cycles`` edges that only count down (each with ``moved`` False): the cycle
        model's skip, at most :meth:`still_for` cycles."""
        if self.cooldown:
            if cycles >= self.cooldown:
                raise ValueError(f"{cycles} cycles skipped over a countdown of {self.cooldown}")
            self.cooldown -= cycles


def _raster_next(r: int, c: int, rows: int, columns: int) -> tuple[int, int]:
    """The position after (r, c) in raster order over a rows x columns frame, wrapping."""
    if c + 1 < columns:
        return r, c + 1
    return (r + 1) % rows, 0


class Pad(_Module):
    """fg_stream_pad: rows/columns of ``value`` (VALUE: zero, or a max pool's least lane
    values) around an H x WD raster frame; a pass-through at real positions, a beat of its own
    at pad positions."""

    def __init__(self, height: int, width: int, top: int, bottom: int, left: int, right: int, value: Any = 0):
        if min(height, width) < 1 or min(top, bottom, left, right) < 0:
            raise ValueError(f"fg_stream_pad: bad frame {height}x{width} or pads {(top, bottom, left, right)}")
        self.height, self.width, self.value = height, width, value
        self.top, self.left = top, left
        self.rows, self.columns = height + top + bottom, width + left + right
        self.reset()

    def reset(self) -> None:
        self.r = self.c = 0

    def state(self) -> tuple:
        return self.r, self.c

    @property
    def at_pad(self) -> bool:
        return not (self.top <= self.r < self.top + self.height and self.left <= self.c < self.left + self.width)

    def outputs(self, in_valid, in_data, out_ready) -> dict[str, Any]:
        pad = self.at_pad
        return {"in_ready": bool(not pad and out_ready), "out_valid": bool(pad or in_valid),
                "out_data": self.value if pad else in_data}

    def _update(self, out, in_valid, in_data, out_ready) -> None:
        self.moved = bool(out["out_valid"] and out_ready)
        if self.moved:
            self.r, self.c = _raster_next(self.r, self.c, self.rows, self.columns)


class Window(_Module):
    """fg_stream_window: a line buffer of the last N accepted pixels that issues one window
    (KH x KW taps, strided, dilated) per output pixel, at most one every II cycles, and only
    while its FIFO grants a credit."""

    def __init__(self, height: int, width: int, kh: int, kw: int, sh: int = 1, sw: int = 1, dh: int = 1,
                 dw: int = 1, ii: int = 1):
        if min(kh, kw, sh, sw, dh, dw, ii) < 1 or height < (kh - 1) * dh + 1 or width < (kw - 1) * dw + 1:
            raise ValueError(f"fg_stream_window: kernel {kh}x{kw} (stride {sh}x{sw}, dilation {dh}x{dw}, "
                             f"II {ii}) does not fit the {height}x{width} frame")
        self.height, self.width, self.kh, self.kw, self.ii = height, width, kh, kw, ii
        self.sh, self.sw, self.dh, self.dw = sh, sw, dh, dw
        self.span_h, self.span_w = (kh - 1) * dh, (kw - 1) * dw
        self.out_height = (height - self.span_h - 1) // sh + 1
        self.out_width = (width - self.span_w - 1) // sw + 1
        self.depth = self.span_h * width + self.span_w + 1  # pixels kept
        # age (accepts ago, 0 = the newest) of tap (kh, kw), row-major over the kernel
        self.ages = [(kh - 1 - i) * dh * width + (kw - 1 - j) * dw for i in range(kh) for j in range(kw)]
        self.pixels: deque = deque([None] * self.depth, maxlen=self.depth)  # data: not reset
        # whether a row (column) holds the bottom (right) taps of windows: read every cycle
        self.last_rows = [self._last_tap(r, self.span_h, sh, self.out_height) for r in range(height)]
        self.last_columns = [self._last_tap(c, self.span_w, sw, self.out_width) for c in range(width)]
        self.reset()

    def reset(self) -> None:
        self.r = self.c = 0
        self.cooldown = 0
        self.out_valid = False

    def state(self) -> tuple:
        return self.r, self.c, self.cooldown, self.out_valid

    @staticmethod
    def _last_tap(i: int, span: int, stride: int, count: int) -> bool:
        return i >= span and (i - span) % stride == 0 and (i - span) // stride < count

    @property
    def completes(self) -> bool:
        """The next pixel to accept is the bottom-right tap of a window."""
        return self.last_rows[self.r] and self.last_columns[self.c]

    def in_ready(self, credit) -> bool:
        return bool(credit and (not self.completes or self.cooldown == 0))

    def outputs(self, in_valid, in_data, credit) -> dict[str, Any]:
        ready = self.in_ready(credit)
        data = tuple(self.pixels[a] for a in self.ages) if self.out_valid else None
        return {"in_ready": ready, "issue": bool(in_valid and ready and self.completes),
                "out_valid": self.out_valid, "out_data": data}

    def _update(self, out, in_valid, in_data, credit) -> None:
        accept = bool(in_valid and out["in_ready"])
        self.moved = out["issue"] or accept or self.out_valid or self.cooldown == 1
        self.out_valid = out["issue"]
        if out["issue"]:
            self.cooldown = self.ii - 1
        elif self.cooldown:
            self.cooldown -= 1
        if accept:
            self.pixels.appendleft(in_data)
            self.r, self.c = _raster_next(self.r, self.c, self.height, self.width)


class Reduce(Window):
    """fg_stream_reduce: a window as large as the frame (its handshake and timing) whose result
    is each lane's sum (op 0) or maximum (op 1) over the frame, registered at the issue and
    held until the next frame's.  Data are packed words: lane l of a pixel at bits
    [l*W +: W], its result at [l*ACC_W +: ACC_W] (a sum modulo 2**ACC_W, which the RTL
    requires to be exact)."""

    def __init__(self, lane_width: int, lanes: int, height: int, width: int, op: int, signed: int,
                 acc_width: int, ii: int = 1, kernel: tuple[int, int] | None = None):
        kh, kw = kernel or (height, width)
        # one window: its strides are the frame, so no second one starts inside it
        super().__init__(height, width, kh, kw, height, width, ii=ii)
        if op not in (0, 1) or acc_width < lane_width or (op == 1 and acc_width != lane_width):
            raise ValueError(f"fg_stream_reduce: OP {op} with W {lane_width} and ACC_W {acc_width}")
        self.lane_width, self.lanes, self.op, self.signed, self.acc_width = lane_width, lanes, op, signed, acc_width
        self.result = None  # data: not reset

    def taps(self, newest) -> list:
        """The window's pixels when ``newest`` (its bottom-right one) is being accepted."""
        return [newest if age == 0 else self.pixels[age - 1] for age in self.ages]

    def _lane_values(self, word: int) -> list[int]:
        w = self.lane_width
        values = [word >> (lane * w) & ((1 << w) - 1) for lane in range(self.lanes)]
        return [v - (1 << w) if self.signed and v >> (w - 1) else v for v in values]

    def outputs(self, in_valid, in_data, credit) -> dict[str, Any]:
        ready = self.in_ready(credit)
        return {"in_ready": ready, "issue": bool(in_valid and ready and self.completes),
                "out_valid": self.out_valid, "out_data": self.result if self.out_valid else None}

    def _update(self, out, in_valid, in_data, credit) -> None:
        if out["issue"]:
            frame = [self._lane_values(p) for p in self.taps(in_data)]
            combine = sum if self.op == 0 else max
            self.result = sum((combine(pixel[lane] for pixel in frame) & ((1 << self.acc_width) - 1))
                              << (lane * self.acc_width) for lane in range(self.lanes))
        super()._update(out, in_valid, in_data, credit)


class Fifo(_Module):
    """fg_stream_fifo: a FIFO whose slots are reserved by ``issue`` (credit = used < DEPTH)
    and filled by the core's in_valid; a written token is visible the next cycle."""

    def __init__(self, depth: int):
        if depth < 1:
            raise ValueError(f"fg_stream_fifo: DEPTH must be >= 1, not {depth}")
        self.depth = depth
        self.reset()

    def reset(self) -> None:
        self.used = 0
        self.stored: deque = deque()
        self.need = 0  # the least DEPTH that would have granted every issue so far

    def state(self) -> tuple:
        return self.used, len(self.stored)

    @property
    def credit(self) -> bool:
        return self.used < self.depth

    def outputs(self, issue=False, in_valid=False, in_data=None, out_ready=False) -> dict[str, Any]:
        return {"credit": self.credit, "out_valid": bool(self.stored),
                "out_data": self.stored[0] if self.stored else None}

    def _update(self, out, issue=False, in_valid=False, in_data=None, out_ready=False) -> None:
        fire = out["out_valid"] and out_ready
        self.moved = bool(fire or in_valid or issue)
        if fire:
            self.stored.popleft()
        if in_valid:
            if len(self.stored) >= self.depth:  # the RTL would overwrite its oldest token
                raise AssertionError("fg_stream_fifo: written while full (a token was issued without a credit)")
            self.stored.append(in_data)
        if issue:
            self.need = max(self.need, self.used + 1)
        self.used += int(bool(issue)) - int(fire)


class Collect(_Module):
    """fg_stream_collect: N beats -> one vector (a tuple, beat i at index i), at most one vector
    every II cycles."""

    def __init__(self, beats: int, ii: int = 1):
        if beats < 1 or ii < 1:
            raise ValueError(f"fg_stream_collect: N and II must be >= 1, not {beats} and {ii}")
        self.beats, self.ii = beats, ii
        self.vector: list = [None] * beats  # data: not reset
        self.reset()

    def reset(self) -> None:
        self.full = False
        self.count = 0
        self.cooldown = 0

    def state(self) -> tuple:
        return self.full, self.count, self.cooldown

    def outputs(self, in_valid, in_data, out_ready) -> dict[str, Any]:
        free = self.cooldown == 0
        return {"in_ready": bool(not self.full or (out_ready and free)), "out_valid": self.full and free,
                "out_data": tuple(self.vector) if self.full else None}

    def _update(self, out, in_valid, in_data, out_ready) -> None:
        accept = bool(in_valid and out["in_ready"])
        self.moved = bool(accept or (out["out_valid"] and out_ready) or self.cooldown == 1)
        if out["out_valid"] and out_ready:
            self.cooldown = self.ii - 1
        elif self.cooldown:
            self.cooldown -= 1
        completes = False
        if accept:
            self.vector[self.count] = in_data
            completes = self.count == self.beats - 1
            self.count = 0 if completes else self.count + 1
        if completes:
            self.full = True
        elif out["out_valid"] and out_ready:
            self.full = False


class Pipe(_Module):
    """fg_pipe: a fixed-latency core that never stalls (latency 0: wires)."""

    def __init__(self, latency: int, function: Callable[[Any], Any] = lambda data: data):
        if latency < 0:
            raise ValueError(f"a core's latency must be >= 0, not {latency}")
        self.latency, self.function = latency, function
        self.stages: deque = deque(maxlen=max(latency, 1))
        self.reset()

    def reset(self) -> None:
        self.stages.extend([(False, None)] * self.latency)  # only the valids are reset: no matter
        self.in_flight = 0  # valid stages

    def state(self) -> tuple:
        return tuple(valid for valid, _ in self.stages) if self.latency else ()

    def outputs(self, in_valid, in_data) -> dict[str, Any]:
        if self.latency == 0:
            return {"out_valid": bool(in_valid), "out_data": self.function(in_data) if in_valid else None}
        valid, data = self.stages[-1]
        return {"out_valid": valid, "out_data": data}

    def _update(self, out, in_valid, in_data) -> None:
        if self.latency:
            leaves = self.stages[-1][0]
            self.in_flight += bool(in_valid) - leaves
            self.stages.appendleft((bool(in_valid), self.function(in_data) if in_valid else None))
            self.moved = bool(in_valid or leaves)  # a token taken or leaving (one next out: still_for 0)
        else:
            self.moved = bool(in_valid)

    def still_for(self) -> int | None:
        """The cycles before the oldest token in flight is the output (None: no token)."""
        if not self.in_flight:
            return None
        for gap, (valid, _) in enumerate(reversed(self.stages)):
            if valid:
                return gap
        raise AssertionError("fg_pipe: a token counted in flight is in no stage")

    def count_down(self, cycles: int) -> None:
        """The tokens in flight advance ``cycles`` stages (the last ``cycles`` stages hold none)."""
        self.stages.rotate(cycles)
