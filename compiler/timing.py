"""Delay models per FPGA family: how long a register-to-register path through the generated
datapath takes, for the RTL backend's pipelining (registers wherever a stage would not fit
``--clock-ns``) and for the predicted critical path in the report.

A path is ``overhead + sum of its levels + carry_bit * width + fanout`` ns:

* ``overhead``: the source register's clock-to-out and the sink's setup (and clock skew);
  a path of wiring only adds ``net`` (one routed net) to it;
* a *level* is one adder, comparator or LUT on the path: one net to it and its logic;
  adders and comparators are carry chains, and chained ripple-carry adders overlap (the next
  adder's low bits start while the previous one's high bits ripple), so a path of adders pays
  its levels once each and the carry ripple of its widest adder once (``carry_bit * width``);
* ``fanout``: a net driving many loads is slower, by ``fanout_per_doubling`` ns per doubling
  of its loads (a layer's inputs feed every product that reads them).

The library blocks between the adder graphs have their own methods, each the block's logic in
ns from its input to its output, its own carry ripple included (a block after an adder graph
in one stage adds to the graph's arrival; :meth:`DelayModel.fits` adds the graph's ripple):
:meth:`~DelayModel.requantize` (from fg_requantize's parameters), :meth:`~DelayModel.relu`,
:meth:`~DelayModel.clip`, :meth:`~DelayModel.max` (pooling), built of ``increment``, ``lut``,
``select`` and ``second_bound`` (fg_requantize decides saturation from bit patterns of ``lut_inputs``-input
LUTs, in parallel with its rounding increment), ``compare`` and ``bound`` (fg_clip and the max trees
compare with carry chains).

Each family's numbers and where they come from are in :data:`MODELS` (``source``).  ECP5's are
fitted on nextpnr-ecp5 place-and-route runs here (bench/delay_ecp5.py, bench/delay_ecp5.json)
and are never shorter than placed on that sweep at seed 1; tests/test_delay_model.py holds them
to :data:`MARGIN_NS` + :data:`MARGIN_REL` of every recorded row (every seed).  No vendor timing
engine runs here: the 7-series numbers are Vivado's cell delays as Project X-Ray published them
with an assumed net delay, UltraScale+'s are built from Vivado's published routed timing
reports (bench/xilinx_delays_xcup.json), UltraScale an assumed scaling of the 7-series (its data
sheet lists no CLB delays); see :data:`MODELS` and bench/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DelayModel:
    family: str
    overhead: float  # ns: clock-to-out + setup (+ skew) of one register-to-register path
    net: float  # ns: a path of wiring only (one routed net, no logic) beyond the overhead
    level: float  # ns: one adder (net + LUT into the carry chain + the chain's entry and exit)
    level3: float  # ns: one three-term adder (fg_add3: net, LUT6_2, the next bit's LUT, the chain)
    lut: float  # ns: one plain LUT level (net + LUT): a select, a reduction
    carry_bit: float  # ns per bit of the widest carry chain on the path
    fanout_per_doubling: float  # ns per doubling of a net's loads beyond one
    increment: float  # ns: a rounding increment (fg_requantize's floor + inc), without its carry ripple
    select: float  # ns: fg_requantize's saturation select after its overflow decision (one bound as the target)
    second_bound: float  # ns: more for a select between two bounds (a signed input can fall below the lower one)
    compare: float  # ns: a comparison with a bound (a carry chain to its last bit) and the select it drives
    bound: float  # ns: the second bound of a two-sided saturation (signed input) or clip
    lut_inputs: int  # inputs of the fabric's LUT: the fan-in of a reduction tree's levels
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

    def stage_ns(self, arrival: float, width: int) -> float:
        """A register-to-register stage whose logic ends at ``arrival`` ns (levels and fanout,
        from the source register's output) on a chain of ``width`` bits."""
        return self.overhead + arrival + self.carry_bit * width

    def room(self, width: int, clock_ns: float) -> float:
        """The latest ``arrival`` a stage on a chain of ``width`` bits may have at ``clock_ns``."""
        return clock_ns - self.overhead - self.carry_bit * width

    def fits(self, arrival: float, width: int, clock_ns: float) -> bool:
        """Whether that stage fits the clock."""
        return self.stage_ns(arrival, width) <= clock_ns + 1e-9

    def levels_per_stage(self, clock_ns: float, width: int = 16) -> int:
        """Adder levels of ``width`` bits one stage holds at ``clock_ns`` (at least 1): the rule
        of the fixed-depth trees (fg_adder_tree, fg_reduce_tree, the folded and stream cores)."""
        return max(1, math.floor(self.room(width, clock_ns) / self.level + 1e-9))

    def saturate(self, width: int, two_bounds: bool) -> float:
        """A saturation of a ``width``-bit value: its comparison with one bound (or two, at once)
        and the select of the result."""
        return self.compare + (self.bound if two_bounds else 0.0) + self.carry_bit * width

    def requantize(self, params: Mapping[str, int]) -> float:
        """fg_requantize's logic, from its parameters (IN_W, IN_F, IN_SIGNED, OUT_W, OUT_F,
        ROUNDING, OVERFLOW as the RTL backend instantiates it): the rounding increment (an
        adder over the output's bits; the modes that look at the dropped bits below the half a
        LUT tree first) and, in parallel, the saturation's bit-pattern trees, then the select
        (see :func:`requantize_terms`)."""
        t = requantize_terms(params, self.lut_inputs)
        rounded = self.lut * t["luts"] + self.increment * t["increment"] + self.carry_bit * t["width"]
        if not t["select"]:
            return max(rounded, self.net)
        decided = self.lut * t["patterns"]
        return max(rounded, decided) + self.select + self.second_bound * t["second"]

    def relu(self, width: int) -> float:
        """fg_relu: the sign bit selects zero for every other bit: one LUT level, the sign's net
        driving ``width - 1`` loads."""
        return self.lut + self.fanout(width - 1)

    def clip(self, width: int) -> float:
        """fg_clip (constant bounds): a two-sided saturation and a LUT level."""
        return self.saturate(width, True) + self.lut

    def max(self, levels: int, width: int) -> float:
        """A max tree (fg_reduce_tree OP 1, pooling) of ``levels`` levels: each a comparison of two
        variables whose result selects every bit of the larger (placed: about a two-sided
        saturation and a LUT level)."""
        return levels * (self.saturate(width, True) + self.lut)


def _tree_levels(inputs: int, lut_inputs: int) -> int:
    """Levels of a tree of ``lut_inputs``-input LUTs reducing ``inputs`` signals to one."""
    levels = 0
    while inputs > 1:
        inputs, levels = -(-inputs // lut_inputs), levels + 1
    return levels


def requantize_terms(params: Mapping[str, int], lut_inputs: int = 4) -> dict[str, int]:
    """What an fg_requantize with these parameters has on its paths, with ``lut_inputs``-input
    LUTs:

    * the rounded output: ``increment`` (1: a rounding increment; only when bits are dropped
      and ROUNDING is not TRN) after ``luts`` LUT levels deciding it (none for RND, which adds
      the half bit; the others OR the bits below the half, a LUT tree, and combine), its carry
      ripple ``width`` (the output's bits: the increment is as wide as the output);
    * under saturation (OVERFLOW not WRAP; ``select`` 1), in parallel: ``patterns``, the LUT
      levels deciding overflow from the floor's bits: without an increment a tree over the bits
      at and above the output's top magnitude bit (its sign included: the value is beyond a bound
      when they are not all zero, or not all copies of the sign); with one a tree over every
      kept bit and the increment (the floor is HI, or LO - 1, and the increment set), which
      arrives after its own ``luts`` levels (RND's is the half bit: at once), so enters last;
    * then the select: ``second`` 1 when a signed input can fall below the lower bound too (two
      targets in the select)."""
    shift = params["IN_F"] - params["OUT_F"]
    kept = max(params["IN_W"] - shift, 1)  # the floor's bits (zeros appended by a left shift included)
    rounds = shift > 0 and params["ROUNDING"] != 0
    saturates = params["OVERFLOW"] != 0
    luts = _tree_levels(shift - 1, lut_inputs) + 1 if rounds and params["ROUNDING"] != 2 else 0
    patterns = 0
    if saturates:
        top = params["OUT_W"] - (params["OUT_SIGNED"] != 0)  # HI = 2**top - 1
        signed = params["IN_SIGNED"] != 0
        above = max(kept - signed - top, 0) + signed  # the floor's bits at and above `top`
        # the increment is one more input to the kept bits' tree, a late one but for RND's half bit
        patterns = max(_tree_levels(kept + 1, lut_inputs), luts + 1) if rounds else _tree_levels(above, lut_inputs)
    return {"increment": int(rounds), "luts": luts, "width": params["OUT_W"] * rounds, "patterns": patterns,
            "select": int(saturates), "second": int(saturates and params["IN_SIGNED"] != 0)}


def _scaled(model: DelayModel, factor: float, family: str, source: str) -> DelayModel:
    """``model`` with every delay multiplied by ``factor``."""
    fields = {f.name: getattr(model, f.name) * factor for f in dataclasses.fields(model)
              if isinstance(getattr(model, f.name), float)}
    return dataclasses.replace(model, family=family, source=source, **fields)


# 7-series: Vivado's own cell delays as Project X-Ray extracted them for the Artix-7 (prjxray-db
# artix7/timings/*.sdf, quoted in yosys's techlibs/xilinx/cells_sim.v; prjxray's Artix-7 part is
# the xc7a50tfgg484-1, settings/artix7.sh, so speed grade -1): FDRE clock to Q 0.303 ns, D setup
# -0.046 (counted 0); LUT6 I4 -> O 0.238 (I5 0.127, I0 0.642; an adder's LUT uses two inputs, the
# placer gives them fast pins);
# CARRY4 S[0] -> CO[3] 0.508 (entering a chain), CI -> CO[3] 0.114 per 4 bits (0.0285 a bit),
# CI -> O[3] 0.313 (leaving it).  Assumed, not from a data sheet: a routed net 0.50 ns (ECP5's
# measured nets between adder levels are 1.1-1.5 ns on a slower fabric); a net's fanout 0.08
# ns per doubling (ECP5's measured 0.19 scaled by the net ratio); a local net 0.30 ns (fg_add3's
# majority bit to the next LUT); the requantize and compare terms in ECP5's measured proportion
# to its adder level (increment 0.65, compare 1.55, bound 0.98, second_bound 0.52 levels), but
# fg_requantize's select one LUT level (net + LUT6), as ECP5's fitted select is about one of its own
# (0.68 and 0.60 ns).
_XC7_NET = 0.50
_XC7_LEVEL = _XC7_NET + 0.238 + 0.508 + 0.313
_XC7 = DelayModel("xc7", overhead=0.303, net=_XC7_NET, level=_XC7_LEVEL, level3=_XC7_LEVEL + 0.238 + 0.30,
                  lut=_XC7_NET + 0.238, carry_bit=0.114 / 4, fanout_per_doubling=0.08,
                  increment=0.65 * _XC7_LEVEL, select=_XC7_NET + 0.238, second_bound=0.52 * _XC7_LEVEL,
                  compare=1.55 * _XC7_LEVEL, bound=0.98 * _XC7_LEVEL, lut_inputs=6,
                  source="7-series: Artix-7 -1 cell delays from prjxray-db's SDF (FDRE, LUT6, CARRY4); "
                         "routed net 0.5 ns and the block terms assumed (compiler/timing.py, bench/RESULTS.md)")

# UltraScale+: Vivado 2021.2's own routed timing reports of 70 small designs on the xczu3eg (speed
# grade -1) that gussmith23/lakeroad-evaluation published (bench/xilinx_delays.py extracts them into
# bench/xilinx_delays_xcup.json; bench/xilinx_refit.py builds this model from it and
# tests/test_xilinx_delays.py checks it is the one below).  Each term the median of the arcs it
# stands for: FDRE clock to Q 0.096 + setup 0.027 + clock uncertainty 0.035 + skew 0.012 (overhead
# 0.17 before the raise below); a routed net 0.189 (the intercept of a net's delay over log2 of its
# loads); an adder level: net + a LUT into the chain 0.178 + its net 0.011 + CARRY8 S -> CO[7] 0.238
# + CI -> O 0.145 (0.761); carry (CI -> CO[7] 0.023 + the chain's net 0.028) / 8 bits (0.006); a LUT
# level: net + LUT 0.1435 (0.332); fg_add3 one more LUT and a local net 0.031. fanout_per_doubling
# 0.12 from the least squares of the 22 register-to-register paths over the model's terms (the nets'
# own slope, 0.048, leaves nets with 37 to 129 loads 1 ns short); then, as ECP5's fit, the overhead
# raised until none of the 22 paths is predicted shorter than Vivado's (0.616).  The block terms
# keep xc7's rule (ECP5's proportions to the adder level, a select one LUT level).  Assumed: that -2
# parts are no slower, and that whole designs route like these small ones (at most 5.6k LUTs; on
# ECP5 whole designs routed up to 16% slower than blocks alone, DESIGN_MARGIN_REL).
_XCUP = DelayModel("xcup", overhead=0.616, net=0.189, level=0.761, level3=0.935, lut=0.332, carry_bit=0.006,
                   fanout_per_doubling=0.12, increment=0.494, select=0.332, second_bound=0.395, compare=1.179,
                   bound=0.745, lut_inputs=6,
                   source="UltraScale+ -1 (xczu3eg): Vivado 2021.2 routed timing reports published in "
                          "gussmith23/lakeroad-evaluation (bench/xilinx_delays.py, bench/xilinx_refit.py); "
                          "never shorter than Vivado on its 22 register-to-register paths")

MODELS = {
    # Fitted on nextpnr-ecp5 0.11.1 (yowasp) runs of 171 registered blocks on the LFE5U-85F, speed
    # grade 6, out of context (bench/delay_ecp5.py, rows in bench/delay_ecp5.json; bench/RESULTS.md).
    # level, carry_bit, fanout_per_doubling: least squares over 97 adder paths (single adders,
    # fg_adder_trees, chains of two-term adders as the adder graphs write them, one input read by
    # 1..64 adders), rms 0.32 ns; overhead: the least-squares intercept (0.03) raised until no
    # recorded path is predicted shorter than placed (clock-to-out alone is 0.525); net: a path of
    # wiring only (1.05 ns placed) beyond it; increment and lut: least squares over the 10
    # rounding fg_requantize blocks without saturation (rms 0.13 ns), increment then raised until
    # none is predicted shorter than placed; select and second_bound: least squares over the 39
    # saturating ones (rms 0.27 ns; their path the later of the increment and the pattern trees,
    # then the select), select then raised likewise.  compare and bound were fitted on the
    # comparator fg_requantize before it decided saturation by bit patterns (36 blocks, rms 0.30
    # ns; bench/RESULTS.md) and are kept for fg_clip and the max trees, built of these terms and
    # checked against their rows like fg_relu.  ECP5 builds keep two-term adders (no fg_add3): level3 is
    # two levels.  bench/delay_ecp5.json's "fit" has the unrounded numbers.
    "ecp5": DelayModel("ecp5", overhead=0.76, net=0.30, level=2.03, level3=2 * 2.03, lut=0.60, carry_bit=0.06,
                       fanout_per_doubling=0.19, increment=1.78, select=0.68, second_bound=1.04, compare=3.33,
                       bound=2.05, lut_inputs=4,
                       source="fitted on nextpnr-ecp5 0.11.1 runs on the LFE5U-85F-6 (bench/delay_ecp5.py, "
                              "bench/delay_ecp5.json): never shorter than placed on the sweep at seed 1"),
    "xc7": _XC7,
    # UltraScale (DS892) data sheet lists no CLB delays in the switching tables found; assumed:
    # the 7-series figures scaled by 0.74 (UltraScale -2).  To be replaced by Vivado timing
    # reports when some are available.
    "xcu": _scaled(_XC7, 0.74, "xcu", "UltraScale -2: assumed, the 7-series prjxray-db figures scaled by 0.74 "
                                      "(no CLB delays found in DS892; compiler/timing.py, bench/RESULTS.md)"),
    "xcup": _XCUP,
}


# How optimistic a model may be: a path predicted at most MARGIN_NS + MARGIN_REL of the placed
# path shorter than nextpnr places it (tests/test_delay_model.py over bench/delay_ecp5.json).
# 3%: nextpnr's own spread over placement seeds (the largest trees, seeds 1-5: up to 3%); 0.25
# ns: a short path's spread (one net placed a few tiles further).  The ECP5 fit is never
# optimistic at seed 1, so the margin is for the other seeds and other placements; whole designs
# route slower than these blocks alone (bench/RESULTS.md), which the margin does not cover.
MARGIN_NS = 0.25
MARGIN_REL = 0.03


# Whole designs route slower than the blocks alone (long nets between a layer's many adders,
# congestion, and since layers hand their values over within a cycle (backends/rtl/fusion.py) the
# nets from one layer's outputs to the next layer's adders): on the per-weight-bits and codebook
# examples placed on the 85F (bench/timing.py, bench/timing_ecp5.json) the model is up to 16.0%
# optimistic (codebook at 10 ns; 11.4% before the hand-over).  The margin for a whole design, set
# from that run (a term for the nets between layers, fitted on placements, would narrow it):
DESIGN_MARGIN_REL = 0.17


def design_optimism_allowed(placed_ns: float) -> float:
    """The most a whole design's predicted critical path may fall short of nextpnr's."""
    return MARGIN_NS + DESIGN_MARGIN_REL * placed_ns


def optimism_allowed(placed_ns: float) -> float:
    """The most a prediction may fall short of a placed path of ``placed_ns``."""
    return MARGIN_NS + MARGIN_REL * placed_ns


def delay_model(family: str) -> DelayModel:
    return MODELS[family]
