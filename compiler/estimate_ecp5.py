"""The resource rules of compiler/estimate.py for Lattice ECP5 fabric (LUT4s, CCU2C carry cells,
TRELLIS_FF, MULT18X18D, DP16KD), as yosys ``synth_ecp5`` maps the generated RTL in the flow of
compiler/verify/pnr.py (its coarse step without ``alumacc``: every ``+`` one carry chain).

Counting: ``lut`` is in LUT4 sites, as nextpnr's TRELLIS_COMB counts them and the part's
capacity is given (83,640 on the LFE5U-85F): a LUT4 is one, a CCU2C two (it holds two bits of
carry chain, each bit a LUT4 half of the cell), a TRELLIS_DPR16X4 LUT RAM four; ``carry``
counts the CCU2C cells; ``bram`` is in 36 Kb equivalents (a DP16KD is half); ``dsp`` counts
MULT18X18D.  PFUMX and L6MUX21 (the slice's muxes that make a LUT5..LUT7 of LUT4s) take no
LUT site and are not counted.

Rules, each from synth_ecp5 on small blocks (measured with yosys 0.23; the numbers are in the
docstrings):

* adder: a carry chain of CCU2Cs, two bits per cell, from the first bit both operands drive
  (the copied low bits are cut off, as on Xilinx) up to the sum's carry out (a sum of
  operands zero above bit t is t + 1 bits: wreduce) or, for a difference, the full declared
  width.  The XOR of the operands is inside the cell: an adder bit costs the same whether its
  operands are logic, copies or constants (``x + 37``: 16 bits, 8 CCU2C; ``0 - x``: 8);
* there are no shift-register LUTs: a delay is a flip-flop per bit per cycle;
* ``*``: MULT18X18D (18 x 18) when both operands have 2+ bits (synth_ecp5's mul2dsp minimum
  widths; no minimum product width, unlike Xilinx's 9);
* comparisons wider than 4 bits (fg_requantize's saturation, fg_clip, a max tree) are carry
  chains too (cmp2lut only maps those of up to LUT_WIDTH=4 inputs);
* a table is LUT4 functions, 2**(a-4) LUT4s per output bit (PFUMX / L6MUX21 join them up to
  128 entries; above, LUT4 muxes add about a third); registered and over 1 Kbit, DP16KD block
  RAM (18 Kb: 1K x 18 ... 16K x 1).
"""

from __future__ import annotations

import math

from .estimate import Resources, _Costs

CCU2C_BITS = 2
DP16KD_SHAPES = {1: 16384, 2: 8192, 4: 4096, 9: 2048, 18: 1024, 36: 512}  # width: depth (36: pseudo dual port)
# fg_requantize's output select when it could be the output flip-flops' synchronous set/reset
# (one target, registered): yosys takes it into the flip-flops for some widths and not for
# others (kept 8 and 10 bits: into the set; 9 and 11: a LUT4 per output bit), so half the
# output bits on average
REQUANTIZE_SELECT_SHARE = 0.5


class Ecp5Costs(_Costs):
    """_Costs with ECP5's primitives (see the module docstring)."""

    carry_bits = CCU2C_BITS
    srl_min_depth = None  # no shift-register LUTs
    adder_tree_lut_factor = 1.0  # the chains are counted exactly (the fitted factor is Xilinx's)
    lut_kind = "LUT4"

    def __init__(self, family: str = "ecp5"):
        self.family = family
        self.dsp_a, self.dsp_b = 18, 18

    def chain(self, bits: int) -> Resources:
        """A carry chain of ``bits`` bits: CCU2Cs, each two LUT4 sites."""
        cells = math.ceil(max(bits, 0) / CCU2C_BITS)
        return Resources(lut=2 * cells, carry=cells)

    def adder(self, width: int, copies: int = 0, chain: int | None = None) -> Resources:
        """The chain runs from above the ``copies`` low bits up to ``chain`` (the declared width:
        sign copies included) or ``width``."""
        return self.chain((chain or width) - copies)

    def netlist_adder(self, net, item: dict) -> Resources | None:
        """An adder item's chains as the netlist reads them (compiler/estimate_bits.py: each
        two-term adder's bits from the first one added to the carry out), or None."""
        if net.sum(item) is None:
            return None
        r = Resources()
        for bits in net.chains[item["name"]]:
            r += self.chain(bits)
        return r

    def mul(self, a: int, b: int, y: int | None = None, signed: bool = True) -> Resources:
        a, b = max(a, b), min(a, b)
        if a >= 2 and b >= 2:
            return Resources(dsp=math.ceil(a / self.dsp_a) * math.ceil(b / self.dsp_b))
        return Resources(lut=a * b)

    def rom(self, addr_w: int, data_w: int, registered: bool) -> Resources:
        entries = 2 ** addr_w
        if registered and entries * data_w > 1024:
            blocks = min(math.ceil(entries / depth) * math.ceil(data_w / width)
                         for width, depth in DP16KD_SHAPES.items())
            return Resources(bram=0.5 * blocks, ff=-data_w)
        luts = math.ceil(entries / 16)
        if entries > 128:
            luts += math.ceil(luts / 3)
        return Resources(lut=data_w * luts)

    def instance(self, item: dict, registered: bool = False, relu: bool = False) -> Resources:
        p = {q["name"]: q["value"] for q in item["params"]}
        module = item["module"]
        if module == "fg_clip":
            # two compares (with the bounds) on chains over the compare width, a select per output bit
            cw = max(p["W"], p["OUT_W"]) + 2
            r = self.chain(cw)
            r += self.chain(cw)
            r.lut += 2 * p["OUT_W"]
            return r
        return super().instance(item, registered, relu)

    def tree(self, p: dict, zeros, widths, constants: int, op_max: bool) -> Resources:
        if not op_max:
            return super().tree(p, zeros, widths, constants, op_max)
        # a max tree: per pair a compare chain (the difference's sign) and a LUT4 select per bit
        n, w, lps = p["N"], p["W"], p["LEVELS_PER_STAGE"]
        levels = max(n - 1, 0).bit_length()
        r, count = Resources(), n
        for level in range(1, levels + 1):
            pairs, count = count // 2, (count + 1) // 2
            for _ in range(pairs):
                r += self.chain(w + 1)
                r.lut += w
            if lps > 0 and (level % lps == 0 or level == levels):
                r.ff += count * w
        return r

    def requantize(self, p: dict, registered: bool, relu: bool = False) -> Resources:
        """fg_requantize on ECP5 (synth_ecp5 of the block between registers): the rounding
        increment is a chain over the kept bits and its carry (trimmed to the output when nothing
        saturates: 16 -> 8 bits RND WRAP is 4 CCU2C), with LUT4s for the increment's condition
        (one, and one per 3 more dropped bits for the modes that read them all); each saturation
        direction a compare chain over the kept bits and the carry (an unsigned input has no
        under-check; a signed one into an unsigned output checks its sign bit); a ReLU before
        a chain a LUT4 per bit the chains read; the select a LUT4 per output bit (two targets:
        and two more), about half of them when the output is registered and the select has one
        target (REQUANTIZE_SELECT_SHARE).  Measured: 16 (10 frac.) -> 8 (4) unsigned RND_CONV
        SAT behind a ReLU, registered: 11 CCU2C (rule 12), 14 LUT4 (rule 17); signed RND_CONV
        SAT 18 CCU2C (18), 12 LUT4 (13); signed TRN SAT 10 CCU2C (10), 10 LUT4 (10)."""
        in_w, in_f, out_w, out_f = p["IN_W"], p["IN_F"], p["OUT_W"], p["OUT_F"]
        dropped = max(in_f - out_f, 0)
        kept = in_w - dropped + max(out_f - in_f, 0)
        rounds = dropped > 0 and p["ROUNDING"] != 0
        high = kept + rounds - out_w
        over = high > 0 or (not p["IN_SIGNED"] and not p["OUT_SIGNED"] and kept > out_w)
        under = p["IN_SIGNED"] and (high > 0 or not p["OUT_SIGNED"])
        saturates = p["OVERFLOW"] != 0 and (over or under)
        r = Resources()
        if rounds:
            r += self.chain(kept + 1 if saturates else min(kept + 1, out_w))
            r.lut += 1 + (math.ceil((dropped - 1) / 3) if p["ROUNDING"] != 2 else 0)
        if saturates:
            compares = int(bool(over)) + int(bool(under and p["OUT_SIGNED"]))
            for _ in range(compares):
                r += self.chain(kept + rounds)
            two_targets = p["OVERFLOW"] != 2 and over and under
            if registered and not two_targets:
                r.lut += REQUANTIZE_SELECT_SHARE * out_w
            else:
                r.lut += out_w + (2 if two_targets else 0)
        if relu and (rounds or saturates):
            r.lut += kept
        return r
