"""Delay models per FPGA family: how long a register-to-register path through the generated
datapath takes, for the RTL backend's pipelining (registers wherever a stage would not fit
``--clock-ns``) and for the predicted critical path in the report.

A path is ``overhead + sum of its levels + carry_bit * width + fanout`` ns:

* ``overhead``: the source register's clock-to-out and the sink's setup (and clock skew);
* a *level* is one adder, comparator or LUT on the path: one net to it and its logic;
  adders and comparators are carry chains, and chained ripple-carry adders overlap (the next
  adder's low bits start while the previous one's high bits ripple), so a path of adders pays
  its levels once each and the carry ripple of its widest adder once (``carry_bit * width``);
* ``fanout``: a net driving many loads is slower, by ``fanout_per_doubling`` ns per doubling
  of its loads (a layer's inputs feed every product that reads them).

Each family's numbers and where they come from are in :data:`MODELS` (``source``); ECP5's are
fitted on nextpnr-ecp5 place-and-route runs here (bench/delay_ecp5.py, bench/delay_ecp5.json),
the Xilinx families' on published data-sheet figures (no vendor timing engine runs here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DelayModel:
    family: str
    overhead: float  # ns: clock-to-out + setup (+ skew) of one register-to-register path
    level: float  # ns: one adder (net + LUT into the carry chain + the chain's entry and exit)
    level3: float  # ns: one three-term adder (fg_add3: net, LUT6_2, the next bit's LUT, the chain)
    lut: float  # ns: one plain LUT level (net + LUT): a select, a reduction
    carry_bit: float  # ns per bit of the widest carry chain on the path
    fanout_per_doubling: float  # ns per doubling of a net's loads beyond one
    source: str  # where the numbers come from

    def adder(self, terms: int = 2) -> float:
        """One adder level of ``terms`` terms (2, or 3 for fg_add3), without its carry ripple."""
        return self.level3 if terms == 3 else self.level

    def fanout(self, loads: int) -> float:
        """Extra delay of a net driving ``loads`` loads."""
        return self.fanout_per_doubling * math.log2(loads) if loads > 1 else 0.0

    def path(self, levels: float, width: int, loads: int = 1) -> float:
        """A register-to-register path through ``levels`` adder levels, its widest chain ``width``
        bits, its first net driving ``loads`` loads."""
        return self.overhead + levels * self.level + self.carry_bit * width + self.fanout(loads)

    def fits(self, arrival: float, width: int, clock_ns: float) -> bool:
        """Whether a stage whose logic ends at ``arrival`` ns (levels and fanout, from the source
        register's output) on a chain of ``width`` bits fits the clock."""
        return self.overhead + arrival + self.carry_bit * width <= clock_ns + 1e-9

    def levels_per_stage(self, clock_ns: float, width: int = 16) -> int:
        """Adder levels of ``width`` bits one stage holds at ``clock_ns`` (at least 1): the rule
        of the fixed-depth trees (fg_adder_tree, fg_reduce_tree, the folded and stream cores)."""
        room = clock_ns - self.overhead - self.carry_bit * width
        return max(1, math.floor(room / self.level + 1e-9))

    def requantize(self, rounds: bool, saturates: bool) -> float:
        """fg_requantize's logic: the rounding increment (an adder), then the saturation (a
        comparison of the rounded value with the bounds, and a select)."""
        return (self.level if rounds else 0.0) + (self.level + self.lut if saturates else 0.0)


MODELS = {
    # Fitted on nextpnr-ecp5 0.x (yowasp) runs of registered adders and adder trees on the
    # LFE5U-85F, speed grade 6 (bench/delay_ecp5.json: delay = -0.136 + 2.199 levels + 0.0563 width,
    # rms 0.24 ns over 56 designs); the overhead is the fit's intercept raised until no design is
    # predicted faster than placed (0.286 ns), clock-to-out itself being 0.525 ns of every path.
    "ecp5": DelayModel("ecp5", overhead=0.286, level=2.199, level3=2.199 + 1.2, lut=1.6, carry_bit=0.0563,
                       fanout_per_doubling=0.0,
                       source="fitted on nextpnr-ecp5 runs on the LFE5U-85F-6 (bench/delay_ecp5.py)"),
    # Xilinx: published switching characteristics, speed grade -1 (7-series, DS181/DS183) and
    # -2 (UltraScale DS892, UltraScale+ DS923); the net delay per level is an assumption
    # (typical routed nets of a dense datapath), not a data-sheet figure.
    "xc7": DelayModel("xc7", overhead=0.35, level=1.05, level3=1.30, lut=0.75, carry_bit=0.028,
                      fanout_per_doubling=0.06,
                      source="7-series -1 data-sheet figures (DS181); net delay per level assumed 0.6 ns"),
    "xcu": DelayModel("xcu", overhead=0.25, level=0.78, level3=0.95, lut=0.55, carry_bit=0.016,
                      fanout_per_doubling=0.05,
                      source="UltraScale -2 data-sheet figures (DS892); net delay per level assumed 0.45 ns"),
    "xcup": DelayModel("xcup", overhead=0.22, level=0.70, level3=0.86, lut=0.50, carry_bit=0.014,
                       fanout_per_doubling=0.05,
                       source="UltraScale+ -2 data-sheet figures (DS923); net delay per level assumed 0.4 ns"),
}


def delay_model(family: str) -> DelayModel:
    return MODELS[family]
