"""The resource rules of compiler/estimate.py for Lattice ECP5 fabric (LUT4s, CCU2C carry cells,
TRELLIS_FF, MULT18X18D, DP16KD), as yosys ``synth_ecp5`` maps the generated RTL in the flow of
compiler/verify/pnr.py (its coarse step without ``alumacc``: every ``+`` one carry chain).

Counting: ``lut`` is in LUT4 sites, as nextpnr's TRELLIS_COMB counts them and the part's
capacity is given (83,640 on the LFE5U-85F): a LUT4 is one, a CCU2C two (it holds two bits of
carry chain, each bit a LUT4 half of the cell), a TRELLIS_DPR16X4 LUT RAM six (its two slices
in RAM mode and its write-port slice: nextpnr placed FIFOs of 31, 31, 19 LUT4 and 4, 8, 2
DPR16X4 on 56, 80, 32 TRELLIS_COMB); ``carry`` counts the CCU2C cells; ``bram`` is in 36 Kb
equivalents (a DP16KD is half); ``dsp`` counts MULT18X18D.  PFUMX and L6MUX21 (the slice's
muxes that make a LUT5..LUT7 of LUT4s) take no LUT site and are not counted.  What nextpnr
places beyond the cells, two CCU2C at the ends of every carry chain, is ``placed_lut``.

Rules, each from synth_ecp5 on small blocks (measured with yosys 0.23; the numbers are in the
docstrings):

* adder: a carry chain of CCU2Cs, two bits per cell, from the first bit both operands drive
  (the copied low bits are cut off, as on Xilinx) up to the sum's carry out (a sum of
  operands zero above bit t is t + 1 bits: wreduce) or, for a difference, the full declared
  width, and not above the highest bit something reads (wreduce again; compiler/estimate_bits.py's
  ``settle``).  The XOR of the operands is inside the cell: an adder bit costs the same whether
  its operands are logic, copies or constants (``x + 37``: 16 bits, 8 CCU2C; ``0 - x``: 8);
* there are no shift-register LUTs: a delay is a flip-flop per bit per cycle;
* ``*``: MULT18X18D (18 x 18, signed or unsigned) when both operands have 2+ bits (synth_ecp5's
  mul2dsp minimum widths; no minimum product width, unlike Xilinx's 9), as many as mul2dsp's
  18-bit parts below the product's width (Ecp5Costs.products); the carry chains that add a
  split product's parts are not counted;
* comparisons wider than 4 bits (fg_requantize's saturation, fg_clip, a max tree) are carry
  chains too (cmp2lut only maps those of up to LUT_WIDTH=4 inputs);
* a table is LUT4 functions, 2**(a-4) LUT4s per output bit (PFUMX / L6MUX21 join them up to
  128 entries; above, LUT4 muxes add about a third); registered and over 2 Kbit, DP16KD block
  RAM (18 Kb: 1K x 18 ... 16K x 1).

Known misses: ABC's LUT4s around a max tree's selects vary 1x to 8x with the width (see
MAX_SELECT_LUTS), and yosys shares the compares of overlapping max-pool windows, which the
estimate counts once per window (the pools test model: CCU2C 280 against 232); the stream
modules' control rules are the Xilinx fits (the small CNN stream build is within 5% all the
same).  tests/test_estimate_ecp5.py checks the rules against synth_ecp5.
"""

from __future__ import annotations

import math
import re

from .estimate import Resources, _Costs
from .estimate_bits import _Netlist, _top

CCU2C_BITS = 2
ROM_BLOCK_RAM_BITS = 2048  # a registered table above this goes to DP16KD (see Ecp5Costs.rom)
# nextpnr-ecp5 places each carry chain with a CCU2C more at either end (the carry in from a
# constant, the carry out into the fabric): 4 TRELLIS_COMB per chain beyond yosys's cells.
# Registered adders placed out of context: 1, 2, 4 chains of 17 bits 24, 46, 90 TRELLIS_COMB
# for 18, 36, 72 in the CCU2Cs; 4 chains of 8 bits 50 for 32.
CHAIN_END_SITES = 4
# DP16KD's shapes, width: depth (36 bits wide: the pseudo dual port PDPW16KD)
DP16KD_SHAPES = {1: 16384, 2: 8192, 4: 4096, 9: 2048, 18: 1024, 36: 512}
# a max tree's select, LUT4s per bit per pair: ABC's result varies most here: a 2-input max
# alone is W + 2 LUT4 at 5, 10, 12 and 16 bits but 6 to 8 per bit at 6..9 bits signed (it
# rebuilds the compare in LUT7s of PFUMX / L6MUX21), and the maxpool of tests/test_rtl.py's
# pools model (40 pairs of 8 bits, overlapping windows) 987 LUT4 with its average pool: about 3
MAX_SELECT_LUTS = 3
CLIP_SELECT_LUTS = 1.5  # fg_clip's select per output bit: 11, 22, 26 LUT4 at 8, 12, 16 bits
CASE_MUX_LUTS = 1.4  # a case mux's LUT4s per input per bit (Ecp5Costs.muxes)
# an item that is one product of two operands (wires or literals, maybe as $signed(...))
_OPERAND = r"\s*(?:\$signed\(\s*)?([A-Za-z_]\w*|\d+'h[0-9a-fA-F_]+)\s*\)?\s*"
_PRODUCT = re.compile(_OPERAND + r"\*" + _OPERAND)


def _operand(bits: tuple, signed: bool) -> int:
    """A product operand's width as yosys wreduce leaves it: an unsigned ``*`` strips the
    constant-zero top bits only (a sign extension written out stays); a ``$signed`` one also
    the repeated sign copies (a non-negative operand keeps a zero sign bit)."""
    width = _top(bits)
    if not signed or (bits and bits[-1] == 0):
        return width + (signed and width > 0)
    k = len(bits)
    while k > 1 and bits[k - 1] == bits[k - 2]:
        k -= 1
    return k


class Ecp5Costs(_Costs):
    """_Costs with ECP5's primitives (see the module docstring)."""

    carry_bits = CCU2C_BITS
    srl_min_depth = None  # no shift-register LUTs
    adder_tree_lut_factor = 1.0  # the chains are counted exactly (the fitted factor is Xilinx's)
    lut_kind = "LUT4"

    def __init__(self, family: str = "ecp5"):
        self.family = family
        self.dsp_a, self.dsp_b = 18, 18
        self.shared: set = set()

    def placed(self, total: Resources) -> dict:
        """nextpnr's TRELLIS_COMB: the LUT4 sites of the cells and the ends of every chain."""
        return {"placed_lut": round(total.lut + CHAIN_END_SITES * total.chains), "carry_chains": round(total.chains)}

    def chain(self, bits: int) -> Resources:
        """A carry chain of ``bits`` bits: CCU2Cs, each two LUT4 sites."""
        cells = math.ceil(max(bits, 0) / CCU2C_BITS)
        return Resources(lut=2 * cells, carry=cells, chains=1 if cells else 0)

    def adder(self, width: int, copies: int = 0, chain: int | None = None) -> Resources:
        """The chain runs from above the ``copies`` low bits up to ``chain`` (the declared width:
        sign copies included) or ``width``."""
        return self.chain((chain or width) - copies)

    def netlist_adder(self, net: _Netlist, item: dict) -> Resources | None:
        """An adder item's chains as the netlist reads them (compiler/estimate_bits.py: each
        two-term adder's bits from the first one added to the carry out, up to the highest bit
        something reads), or None."""
        if net.sum(item) is None:
            return None
        top = net.used_top.get(item["name"], item["width"])
        r = Resources()
        for first, end in net.chains[item["name"]]:
            r += self.chain(min(end, top) - first)
        return r

    def products(self, notes: list, item: dict, net: _Netlist | None) -> Resources:
        """A product ``x * y`` by its operands' bits when the netlist knows them, as synth_ecp5
        maps it: wreduce narrows the operands (_operand), mul2dsp splits each into 18-bit parts
        (MULT18X18D multiplies 18 bits signed or unsigned) and drops the partial products that
        start at or above the product's width.  Measured: 18 x 18 bits zero-extended (the
        softmax's e * r) one MULT18X18D; a 12-bit value sign-extended to 30 bits times a
        positive 18-bit constant two, times a negative one (30 bits) three; $signed 12 x 18 one."""
        m = _PRODUCT.fullmatch(item.get("expr", "")) if net is not None and len(notes) == 1 else None
        terms = [net.terms(x) for x in m.groups()] if m else []
        if len(terms) != 2 or not all(t and len(t) == 1 and not t[0][0] for t in terms):
            return super().products(notes, item, net)
        signed = "$signed" in item["expr"]
        a, b = (_operand(t[0][1], signed) for t in terms)
        if min(a, b) < 2:  # below mul2dsp's minimum widths: a LUT multiplier
            return Resources(lut=a * b)
        parts = sum(1 for i in range(math.ceil(a / self.dsp_a)) for j in range(math.ceil(b / self.dsp_b))
                    if i * self.dsp_a + j * self.dsp_b < item["width"])
        return Resources(dsp=parts)

    def mul(self, a: int, b: int, y: int | None = None, signed: bool = True) -> Resources:
        """``a`` x ``b`` bits (signed widths, or unsigned ones with ``signed`` False: the ports
        take 18 bits either way); MULT18X18D from 2 x 2 bits (mul2dsp's minimum widths in
        synth_ecp5, no minimum product width), else a LUT multiplier."""
        a, b = max(a, b), min(a, b)
        if a >= 2 and b >= 2:
            return Resources(dsp=math.ceil(a / self.dsp_a) * math.ceil(b / self.dsp_b))
        return Resources(lut=a * b)

    def muxes(self, note: list, item: dict) -> float:
        """A case over n inputs (a folded core's input by chunk) is a LUT4 function per bit that
        ABC maps at 1.0, 1.1, 1.5 LUT4 per input at 4, 8, 16 inputs (11 bits, alone), 1.4 for
        the small CNN's 72-input tail mux in its core (but 4 at 32 inputs alone); a 2:1 select
        (``a ? b : c``) a LUT4 per bit."""
        if item["kind"] == "case" and len(item.get("entries", ())) > 2:
            return CASE_MUX_LUTS * len(item["entries"]) * item["width"]
        return sum(note)

    def table(self, note: list, item: dict, registered: bool, net: _Netlist | None) -> Resources:
        """A table read by a register's value (a folded core's weights by phase) is a
        synchronous ROM as well: yosys memory_dff takes the address register into the read
        port, so above 2 Kbit it is a DP16KD (the small CNN's tail at reuse 288: a 512 x 6
        weight table, one DP16KD), and the register stays (it is the phase counter)."""
        source = net.items.get(item.get("select", ""), {}) if net is not None else {}
        by_address = not registered and source.get("kind") == "register"
        r = self.rom(*note, registered=registered or by_address)
        if by_address and r.bram:
            r.ff = 0
        return r

    def rom(self, addr_w: int, data_w: int, registered: bool) -> Resources:
        """A table: LUT4 functions, 2**(a-4) per output bit, a third more above 128 entries
        (yosys: 16, 32, 64, 176 LUT4 for 32 to 256 entries of 8 bits); registered and over
        2 Kbit, DP16KD block RAM (memory_libmap weighs a DP16KD at 128 against a LUT4 per 16
        bits: 256 x 8, 512 x 4, 2048 x 1 stay LUT4s, 512 x 6, 256 x 12, 1024 x 3 are one DP16KD)."""
        entries = 2 ** addr_w
        if registered and entries * data_w > ROM_BLOCK_RAM_BITS:
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
            # two compares with the bounds, chains over the input and its sign bit, and over the
            # input (yosys: 9, 13, 17 CCU2C at 8, 12, 16 bits), a select of about 1.5 LUT4 per
            # output bit (11, 22, 26)
            r = self.chain(p["W"] + 1)
            r += self.chain(p["W"])
            r.lut += CLIP_SELECT_LUTS * p["OUT_W"]
            return r
        return super().instance(item, registered, relu)

    def tree(self, p: dict, zeros, widths, constants: int, op_max: bool, leaves=None) -> Resources:
        if not op_max:
            return super().tree(p, zeros, widths, constants, op_max, leaves)
        # a max tree: per pair a compare chain (signed: over the W bits, unsigned: W - 1; yosys
        # 3, 4, 5, 6 CCU2C at 5..6, 7..8, 9..10, 12 bits signed) and the select
        n, w, lps = p["N"], p["W"], p["LEVELS_PER_STAGE"]
        levels = max(n - 1, 0).bit_length()
        fresh_by_level = self.fresh_nodes(1, leaves, n, levels)
        r, count = Resources(), n
        for level in range(1, levels + 1):
            pairs, count = count // 2, (count + 1) // 2
            fresh = fresh_by_level[level - 1]
            for j in range(pairs):
                if not fresh[j]:  # the same cells as another window's (synthesis merges them)
                    continue
                r += self.chain(w if p.get("SIGNED", 1) else w - 1)
                # a max registered at every level (the delay model's ECP5 pipeline: one max level per
                # stage up to ~10 ns) is a 2-input max alone: W + 2 LUT4 (pools model at 10 ns:
                # 809 LUT4 sites in yosys, 960 by this rule)
                r.lut += w + 2 if lps == 1 else MAX_SELECT_LUTS * w
            if lps > 0 and (level % lps == 0 or level == levels):
                r.ff += sum(fresh) * w
        return r

    def requantize(self, p: dict, registered: bool, relu: bool = False) -> Resources:
        """fg_requantize on ECP5, from synth_ecp5 of the block between registers
        (bench/calibrate_adders.py --requantize: 144 blocks, 9 formats x TRN, RND, RND_CONV, CEIL
        x every overflow; 396 CCU2C, rule 396; 2,308 LUT4, rule 2,386; ABC's LUT4 counts of one
        saturating block vary two-fold with the format): the rounding increment is a chain over
        the output's bits; its condition a LUT4 tree over the bits it reads (RND: the half bit is
        the carry in, none; CEIL and RND_MIN_INF: the dropped bits; the others also the sign or
        the kept lowest bit).  Saturation decides from bit patterns, LUT4 trees: without an
        increment over the bits at and above the output's top magnitude bit, with one over every
        kept bit and the increment, which ABC (mapping for depth) builds again in the cone of
        every output bit that selects between two bounds (a signed input, SAT or SAT_SYM), and
        twice over for one bound (about 2 LUT4 per 3 bits); one target's select goes into the
        output register's synchronous set/reset, else it is a LUT4 per output bit; SAT_SYM's
        check of the floor at LO one more tree.  A ReLU before takes a LUT4 per output bit."""
        shape = self.requantize_shape(p)
        out_w = p["OUT_W"]
        mode = p["ROUNDING"]
        r = Resources()
        if shape["rounds"]:
            r += self.chain(out_w)
            # TRN_ZERO, RND_ZERO, RND_INF read the sign, RND_CONV the kept lowest bit
            inputs = 1 if mode == 2 else shape["dropped"] + (mode in (1, 3, 5, 6))
            r.lut += math.ceil((inputs - 1) / 3)
        # a ReLU's clear of an unrounded value is the flip-flops' reset when SAT_ZERO's is too
        relu_in_reset = registered and p["OVERFLOW"] == 2 and not shape["rounds"]
        if relu and (shape["rounds"] or shape["saturates"]) and not relu_in_reset:
            r.lut += out_w
        if shape["saturates"]:
            if not shape["rounds"]:
                tree = math.ceil(shape["above"] / 3)
                r.lut += tree + (out_w if shape["two_targets"] or not registered else 0)
            elif shape["two_targets"]:
                r.lut += out_w * (math.ceil((shape["kept"] + 1) / 3) + 1)
            else:
                r.lut += 2 * math.ceil((shape["kept"] + 1) / 3) + (0 if registered else out_w)
        if shape["sym"]:
            r.lut += math.ceil(shape["kept"] / 3)
        return r
