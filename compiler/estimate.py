"""Resource and latency estimate of the generated RTL, per layer, for Xilinx LUT6 fabric (and,
through compiler/estimate_ecp5.py's rules on the same walk, Lattice ECP5's LUT4 fabric).

The estimate walks the same structure the RTL backend emits (``rtl_context``: per layer the
wires, instances and registers, each arithmetic wire carrying a ``cost`` note), so it counts
what is built, not what a layer type usually costs.  Rules, per primitive (7-series and
UltraScale alike: LUT6s beside a carry chain; ``carry`` counts 4-bit carry segments, CARRY4s
as yosys 0.23 maps every family; an UltraScale CARRY8 holds two):

* adder (an ``assign`` of ``a ± b ± ...``: the adder graph's nodes, CSD products), priced bit
  by bit on the wiring (compiler/estimate_bits.py, :class:`_Netlist`: every wire's bits as
  constants or bits of logic, as synthesis sees them after constant propagation).  Each bit of a carry-chain adder takes
  a ^ b (b inverted to subtract): a LUT2 when both are logic, an inverter when one is logic
  and the other the constant that inverts it, nothing when it is a copy or a constant.  Bits
  below the first both operands drive are copies (yosys cuts them off), equal functions are
  one LUT (the sign copies above the narrower operand: one XOR of the two signs; one inverter
  per inverted bit in the design), and a sum of operands that are zero above bit t is zero
  above t + 1 (wreduce), which the next adder and register see.  These rules count yosys's
  LUTs exactly on single adders; summed over the calibration designs (bench/calibrate_adders.py:
  dense layers of 16 to 64 inputs, signed, unsigned and per-element formats, pruned weights,
  NOT the examples) they are within 0.5%.  An adder whose expression is not wiring the
  netlist knows takes the per-width rule: a LUT per significant bit above the copied low bits
  times SHIFT_ADD_LUT_FACTOR;
* adder tree (``fg_adder_tree``): each pair one adder, the significant width and known-zero
  low bits tracked from the terms (exact product ranges, shifts) up the tree; constant terms
  (a bias) fold; registers where the pipelining rule places them, one per significant bit;
* max tree: per pair a compare (a LUT6 per 3 bit pairs on the carry chain) and a select;
* constant multiplication: its CSD adders (above); a ``*`` goes to DSPs
  (``ceil(a/A) * ceil(b/B)``, A x B the DSP's signed ports) when yosys maps it (both operands
  2+ bits, product 9+), else a LUT multiplier (``a * b`` LUTs);
* requantize: the rounding increment rides the carry chain (a LUT for its lowest bit, and
  LUTs to OR the dropped bits for tie-aware modes); saturation checks the bits above the
  output (a LUT per 5; 5 or more above a rounded or signed value: a carry-chain compare, a
  LUT per compared bit) and selects, which costs nothing when the output is registered and
  the select has one target (one direction or SAT_ZERO: the register's synchronous
  set/reset), else a LUT per output bit;
* ReLU: no LUTs of its own when the next logic is a LUT (the sign-bit clear folds into it) or
  a register (its reset); before a requantize's increment or compare (carry chains) a LUT per
  bit they read, counted in the requantize.  It reads only the bits its readers read;
* ROM: registered (its output straight into a register) and over 1 Kbit: block RAM
  (RAMB18 = 0.5 BRAM36 per 18 Kbit; the register moves into it); else LUTs, ~2**(a-6) per
  output bit plus a third more above 256 entries;
* registers: a flip-flop per bit that something reads and whose source is not a constant
  (flops of one source bit are one); a chain of 3+ flops in which each but the last feeds only
  the next (an adder's copied low bits pass through it) is shift-register LUTs (yosys
  ``xilinx_srl -minlen 3``, as Vivado: a LUT per bit per 32 stages); ``fg_pipe`` delays of 3+
  cycles likewise; BRAM for weights: none (constants are logic).

Latency and II come from the schedule (the backend's pipelining rule); ``finegrain sim``
measures them and tests check that they agree.  The streaming architecture's library modules
(line buffers, FIFOs, pad, collect) are costed in compiler/estimate_stream.py.  The counts are checked against yosys
``synth_xilinx`` (compiler/verify/synth.py) by tests/test_estimate.py.
"""

from __future__ import annotations

import math
import time

from .estimate_bits import _IDENT, SRL_DEPTH, SRL_MIN_DEPTH, Resources, _Netlist
from .targets import PARTS, family_of

# DSP signed operand widths (yosys maps a * onto DSP48E1 25x18 / DSP48E2 27x18)
DSP_PORTS = {"xc7": (25, 18), "xcu": (27, 18), "xcup": (27, 18)}
CARRY_BITS = 4  # carry counted in 4-bit segments: CARRY4s (an UltraScale CARRY8 holds two)
# Calibration (yosys 0.23 synth_xilinx, COARSE_WITHOUT_ALUMACC flow) of the per-width rules,
# which count a LUT for every bit of a sum's significant width above its copied low bits:
# least squares over ten calibration designs (tests/test_rtl.py's per-op models and three
# dense layers of 16-32 inputs; NOT the examples) gave these factors on the LUTs of the adder
# trees and of shift-add adders whose wiring the bit-level rule cannot read (it prices the
# others exactly).
SHIFT_ADD_LUT_FACTOR = 0.77
ADDER_TREE_LUT_FACTOR = 0.92


class _Costs:
    """The rules for Xilinx LUT6 fabric (7-series, UltraScale, UltraScale+); ECP5's are
    compiler/estimate_ecp5.py's subclass (costs_for chooses)."""

    carry_bits = CARRY_BITS
    srl_min_depth = SRL_MIN_DEPTH  # flops in a chain at least this long are shift-register LUTs
    adder_tree_lut_factor = ADDER_TREE_LUT_FACTOR
    lut_kind = "LUT6"

    def __init__(self, family: str):
        self.family = family
        self.dsp_a, self.dsp_b = DSP_PORTS[family]
        self.shared: set = set()  # tree nodes (op, leaves) already counted in the design (fresh_nodes)

    def netlist_adder(self, net: _Netlist, item: dict) -> Resources | None:
        """An adder item priced whole from the netlist, or None: LUT6 fabric prices the per-width
        rule's carry cells and the netlist's LUTs (_item_cost)."""
        return None

    def placed(self, total: Resources) -> dict:
        """What place and route uses beyond synthesis's cells (ECP5: the carry chains' ends);
        nothing on Xilinx parts, whose estimate is Vivado's utilisation."""
        return {}

    def adder(self, width: int, copies: int = 0, chain: int | None = None) -> Resources:
        """``width`` significant bits above ``copies``; the carry chain runs on up to the
        declared width ``chain`` (sign copies included: synthesis keeps the chain)."""
        bits = max(width - copies, 0)
        return Resources(lut=bits, carry=math.ceil(max((chain or width) - copies, 0) / self.carry_bits))

    def mul(self, a: int, b: int, y: int | None = None, signed: bool = True) -> Resources:
        """``a`` x ``b`` bits, both as signed widths (an unsigned operand counts one bit more),
        or both unsigned widths with ``signed`` False (a product of two non-negative operands,
        which yosys multiplies without their sign bits); ``y``: the product's declared width
        when narrower than a + b (a folded core's exact product).  yosys maps a product to
        DSPs when both operands have 2+ bits and the product 9+ (mul2dsp's minimum widths)."""
        a, b = max(a, b), min(a, b)
        if a >= 2 and b >= 2 and min(a + b, y or a + b) >= 9:
            grow = 0 if signed else 1  # the DSP's ports are signed
            return Resources(dsp=math.ceil((a + grow) / self.dsp_a) * math.ceil((b + grow) / self.dsp_b))
        return Resources(lut=a * b)  # small LUT multiplier: about a partial-product bit per LUT

    def products(self, notes: list, item: dict, net: _Netlist | None) -> Resources:
        """The ``*`` of an item, by its cost notes ((a, b[, y[, signed]]) each)."""
        r = Resources()
        for a, b, *y in notes:
            r += self.mul(a, b, *y)
        return r

    def muxes(self, note: list, item: dict) -> float:
        """The LUTs of a mux item by its cost note: the builders note a LUT6 per bit per 4:1 step."""
        return sum(note)

    def table(self, note: list, item: dict, registered: bool, net: _Netlist | None) -> Resources:
        """A table read (a function or a case over a phase), ``note`` its (address bits, data
        bits); ``registered``: its output goes straight into a register."""
        return self.rom(*note, registered=registered)

    # library modules, by their parameters ------------------------------------------------
    def rom(self, addr_w: int, data_w: int, registered: bool) -> Resources:
        """A table: with its read registered, block RAM (RAMB18 = 0.5 BRAM36 per 18 Kbit, as
        yosys and Vivado map a synchronous ROM); else LUTs: each output bit a 2**addr_w-input
        function, LUT6s under a MUXF7/F8 tree (about 2**(addr_w - 6) LUTs, plus ~1/3 more
        above 256 entries where the tree needs extra LUT levels)."""
        entries = 2 ** addr_w
        if registered and entries * data_w > 1024:
            # the output register moves into the block RAM
            return Resources(bram=0.5 * math.ceil(entries * data_w / 18432), ff=-data_w)
        luts = math.ceil(entries / 64)
        if entries > 256:
            luts += math.ceil(luts / 3)
        return Resources(lut=data_w * luts)

    def instance(self, item: dict, registered: bool = False, relu: bool = False) -> Resources:
        """``registered``: the instance's output goes straight (only wiring) into a register;
        ``relu``: its input is a ReLU's output."""
        p = {q["name"]: q["value"] for q in item["params"]}
        module = item["module"]
        if module == "fg_adder_tree":
            cost = item.get("cost", {})
            r = self.tree(p, cost.get("zero_lsbs"), cost.get("term_widths"), cost.get("constant_terms", 0),
                          op_max=False)
            r.lut *= self.adder_tree_lut_factor
            return r
        if module == "fg_reduce_tree":
            return self.tree(p, None, None, 0, op_max=p.get("OP", 0) == 1, leaves=item.get("cost", {}).get("leaves"))
        if module == "fg_pipe":
            return self.pipe(p["W"], p["DEPTH"])
        if module == "fg_requantize":
            return self.requantize(p, registered, relu)
        if module == "fg_relu":
            return Resources()
        if module == "fg_clip":
            w = p["W"] + 2
            return Resources(lut=p["OUT_W"] + 2 * math.ceil(w / 5), carry=0)
        if module == "fg_add3":  # a LUT6_2 per bit above the copied LO bits, on CHAIN-bit carry primitives
            bits = p["W"] - p["LO"]
            return Resources(lut=bits, carry=math.ceil(bits / p["CHAIN"]))
        if module == "fg_rom":
            return self.rom(p["ADDR_W"], p["DATA_W"], bool(p["REGISTERED"]) or registered)
        raise ValueError(f"estimate: no cost rule for module {module!r}")

    def tree(self, p: dict, zeros: list[int] | None, widths: list[int] | None, constants: int,
             op_max: bool, leaves: list[str] | None = None) -> Resources:
        """A balanced tree as fg_reduce_tree builds it.  Per node: its significant width (the
        sum of two sign-extended values needs one bit more than the wider; the bits above are
        sign copies, which synthesis narrows away) and its known-zero low bits (copied, not
        added).  The last ``constants`` leaves are constants (a bias): a node of constants only
        is itself a constant, with no adder or register.  ``leaves``: the inputs' wires, when
        nodes over the same leaves in another tree of the design are the same cells (synthesis
        merges them: overlapping pooling windows), which are counted once."""
        n, w, out_w = p["N"], p["W"], p["OUT_W"]
        lps = p["LEVELS_PER_STAGE"]
        levels = max(n - 1, 0).bit_length()
        z = list(zeros) if zeros is not None else [0] * n
        sw = list(widths) if widths is not None else [w] * n
        const = [i >= n - constants for i in range(n)]
        fresh_by_level = self.fresh_nodes(p.get("OP", 0), leaves, n, levels)
        r = Resources()
        held = [0] * n  # registers a node has passed through with no logic since its own (a shift chain)

        def flush(i: int) -> None:  # a node's pure delays: flip-flops, or a shift-register LUT
            if held[i] and not const[i]:
                r.__iadd__(self.pipe(sw[i] - z[i], held[i]))

        for level in range(1, levels + 1):
            lw = w if op_max else min(w + level, out_w)
            nz, nw, nc, nh = [], [], [], []
            fresh = fresh_by_level[level - 1]
            for i in range(0, len(z), 2):
                if i + 1 < len(z):
                    flush(i)
                    flush(i + 1)
                    width = lw if op_max else min(max(sw[i], sw[i + 1]) + 1, lw)
                    if (const[i] and const[i + 1]) or not fresh[i // 2]:
                        pass
                    elif op_max:
                        # the compare: a LUT6 per 3 bit pairs into the carry chain; the select
                        compare = math.ceil(width / 3)
                        r += Resources(lut=compare + width, carry=math.ceil(compare / self.carry_bits))
                    else:
                        r += self.adder(width, min(max(z[i], z[i + 1]), width), chain=lw)
                    nz.append(0 if op_max else min(z[i], z[i + 1]))
                    nw.append(width)
                    nc.append(const[i] and const[i + 1])
                    nh.append(-1)  # its own register below is no delay
                else:
                    nz.append(z[i])
                    nw.append(sw[i])
                    nc.append(const[i])
                    nh.append(held[i])
            z, sw, const = nz, nw, nc
            held = [max(h, 0) for h in nh]
            if lps > 0 and (level % lps == 0 or level == levels):
                for j, (width, zero, c, f) in enumerate(zip(sw, z, const, fresh)):
                    if c or not f:
                        continue
                    if nh[j] < 0:  # sign copies share one flip-flop, known-zero bits need none
                        r.ff += width - zero
                    else:
                        held[j] += 1
        for i in range(len(z)):
            flush(i)
        return r

    def fresh_nodes(self, op: int, leaves: list[str] | None, n: int, levels: int) -> list[list[bool]]:
        """Per tree level, whether each node is this tree's own: a node over the same leaves
        (same order) as one of an earlier tree of the design is the same cells after synthesis
        merges them (overlapping pooling windows), counted there.  Without ``leaves``: all."""
        if leaves is None or len(leaves) != n:
            out = []
            for _ in range(levels):
                n = -(-n // 2)
                out.append([True] * n)
            return out
        keys, fresh, out = [(leaf,) for leaf in leaves], [True] * len(leaves), []
        for _ in range(levels):
            pairs = range(0, len(keys), 2)
            fresh = [(op, keys[i] + keys[i + 1]) not in self.shared if i + 1 < len(keys) else fresh[i] for i in pairs]
            keys = [keys[i] + keys[i + 1] if i + 1 < len(keys) else keys[i] for i in pairs]
            self.shared.update((op, k) for k in keys if len(k) > 1)
            out.append(fresh)
        return out

    def pipe(self, width: int, depth: int) -> Resources:
        if depth <= 0:
            return Resources()
        if self.srl_min_depth is not None and depth >= self.srl_min_depth:
            return Resources(lut=width * math.ceil(depth / SRL_DEPTH))
        return Resources(ff=width * depth)

    @staticmethod
    def requantize_shape(p: dict) -> dict:
        """What an fg_requantize's logic depends on, for the rules of both fabrics: ``dropped``
        bits, the floor's ``kept`` bits, ``above`` (its bits at and above the output's top
        magnitude bit, the sign included: what decides overflow without an increment),
        ``rounds`` (an increment), ``saturates`` (a bound the value can cross), ``two_targets``
        (it can cross both: the select picks HI, LO or the value) and ``sym`` (SAT_SYM's check
        of the floor at LO)."""
        in_w, in_f, out_w, out_f = p["IN_W"], p["IN_F"], p["OUT_W"], p["OUT_F"]
        dropped = max(in_f - out_f, 0)
        kept = max(in_w - dropped + max(out_f - in_f, 0), 1)
        rounds = dropped > 0 and p["ROUNDING"] != 0
        signed_in, signed_out = bool(p["IN_SIGNED"]), bool(p["OUT_SIGNED"])
        top = out_w - signed_out  # HI = 2**top - 1
        magnitude = kept - signed_in  # the floor's bits below its sign
        over = magnitude > top or (rounds and magnitude >= top)
        under = signed_in and (not signed_out or magnitude > top)
        overflow = p["OVERFLOW"]
        return {"dropped": dropped, "kept": kept, "above": max(magnitude - top, 0) + signed_in, "rounds": rounds,
                "over": over,
                "saturates": overflow != 0 and (over or under), "two_targets": overflow != 2 and over and under,
                "sym": overflow == 3 and signed_in and signed_out and out_w > 1 and magnitude >= top}

    def requantize(self, p: dict, registered: bool, relu: bool = False) -> Resources:
        """``relu``: the input is a ReLU's output (fg_relu clears it when negative).  Rules from
        yosys on fg_relu + fg_requantize + the output register alone (bench/calibrate_adders.py
        --requantize: 144 blocks, 9 formats x TRN, RND, RND_CONV, CEIL x every overflow): the
        rounding increment is an adder on the output's bits whose lowest bit takes a LUT (the
        others are carry-chain copies), its condition a LUT per 5 dropped bits below the half; a
        ReLU's clear is an AND per output bit (which cannot merge into the carry chain; the
        saturation's trees take the sign in).  Saturation decides from bit patterns: without an
        increment the bits at and above the output's top magnitude bit, with one every kept bit
        and the increment, a LUT6 per 6 (SAT_SYM's check of the floor at LO as many more); a
        select of one target goes into the output register's synchronous set/reset, else it is
        a LUT per output bit."""
        shape = self.requantize_shape(p)
        out_w = p["OUT_W"]
        r = Resources()
        if shape["rounds"]:
            r.carry += math.ceil(out_w / self.carry_bits)
            r.lut += 1
            if p["ROUNDING"] != 2:
                r.lut += math.ceil((shape["dropped"] - 1) / 5)
        # a ReLU's clear of an unrounded value is the flip-flops' reset when SAT_ZERO's is too
        relu_in_reset = registered and p["OVERFLOW"] == 2 and not shape["rounds"]
        if relu and (shape["rounds"] or shape["saturates"]) and not relu_in_reset:
            r.lut += min(shape["kept"], out_w)
        if shape["saturates"]:
            r.lut += math.ceil(((shape["kept"] + 1) if shape["rounds"] else shape["above"]) / 6)
            # a signed input's clear to 0 after a rounding (a ReLU passed through, fusion.py: never
            # above the output) stays a select: 15 -> ufixed<8> RND_CONV SAT 16 LUTs in yosys, RND 10
            cleared = shape["rounds"] and p["IN_SIGNED"] and not shape["over"]
            if shape["two_targets"] or not registered or cleared:
                r.lut += out_w
        if shape["sym"]:
            r.lut += math.ceil(shape["kept"] / 6)
        return r


def estimate_context(context: dict, part: str) -> dict:
    """The estimate of one RTL context (``rtl_context``) on ``part``, per layer and in total.
    A stream context (``"architecture": "stream"``) is estimated by its engines
    (compiler/estimate_stream.py), each core by this function."""
    if context.get("architecture") == "stream":
        from .estimate_stream import estimate_stream

        return estimate_stream(context, part)
    start = time.perf_counter()
    family = family_of(part)
    costs = costs_for(family)
    layers = []
    total = Resources()
    wiring = Resources()
    net = _netlist(context, costs)
    for item in context["input_items"] + context["output_items"]:
        wiring += _item_cost(costs, item, net=net)
    total += wiring
    # wire names are the module's: a value may reach its register in a later layer
    registered = _registered_wires([item for layer in context["layers"] for item in layer["items"]])
    for layer in context["layers"]:
        r = Resources()
        for item in layer["items"]:
            r += _item_cost(costs, item, registered, net)
        total += r
        layers.append({"name": layer["name"], "onnx": layer["onnx"], "ops": layer["ops"], **r.rounded(),
                       "start_cycle": layer["start"], "latency_cycles": layer["latency"],
                       # constant products the layer needs, and how many distinct ones are built
                       # (an input times one weight value in several rows is built once)
                       "products": layer["products"], "products_built": layer["products_built"],
                       # adder graphs (the default sums): their adders and deepest sum
                       **({"adders": layer["sums"]["adders"], "adder_levels": layer["sums"]["levels"]}
                          if "sums" in layer else {})})
    valid = costs.pipe(1, context.get("valid_depth", context["latency"]))  # a folded core's is shorter
    total += valid
    result = {"top": context["model"], "part": part, "family": family, "clock_ns": context["clock_ns"],
              "architecture": "rtl: fully parallel, II 1", "lut_kind": costs.lut_kind, **total.rounded(),
              "latency_cycles": context["latency"], "ii_cycles": 1,
              **costs.placed(total), "percent": _percent(total, part, costs), "layers": layers,
              **({"timing": context["timing"]} if context.get("timing") else {}),
              "seconds": round(time.perf_counter() - start, 4)}
    return result


def costs_for(family: str) -> _Costs:
    """The rules of a family: LUT6 fabric (xc7, xcu, xcup) or ECP5's LUT4 fabric."""
    if family == "ecp5":
        from .estimate_ecp5 import Ecp5Costs

        return Ecp5Costs(family)
    return _Costs(family)


def _registered_wires(items: list[dict]) -> set[str]:
    """Wires whose value reaches a register through wiring only (slices, concatenations,
    sign extension: assigns with no cost note), so synthesis can merge logic into it: a
    register item's source, or what an fg_pipe delays (its first stage is a register; a later
    layer delays a value ready before it needs it this way)."""
    feeds = {item["source"] for item in items if item["kind"] == "register"}
    for item in items:
        if item["kind"] == "instance" and item["module"] == "fg_pipe" and \
                any(p["name"] == "DEPTH" and p["value"] > 0 for p in item["params"]):
            feeds.update(p["value"] for p in item.get("ports", ()) if p["name"] == "in_data")
    for item in reversed(items):  # an assign is declared after the wires it reads
        if item["kind"] == "assign" and not item.get("cost") and item["name"] in feeds:
            feeds.update(_IDENT.findall(item["expr"]))
    return feeds


def _netlist(context: dict, costs: _Costs) -> _Netlist:
    """The context's wires bit by bit, with what its output ports read, and its registers'
    costs (``net.register_cost``) on ``costs``'s fabric."""
    items = context["input_items"] + [i for layer in context["layers"] for i in layer["items"]] \
        + context["output_items"]
    net = _Netlist(items, costs.srl_min_depth)
    for port in context.get("outputs", ()):
        for _, bits in net.terms(port.get("expr") or port["name"]) or ():
            net.read_by(bits, "output port")
    net.settle(items)
    net.register_cost = net.register_costs([i for i in items if i["kind"] == "register"])
    return net


def _item_cost(costs: _Costs, item: dict, registered: set[str] = frozenset(), net: _Netlist | None = None) -> Resources:
    """One item's cost; ``net`` (the context's wires bit by bit) prices adders and registers
    by their bits, without it they take the per-width rules (a folded core's items alone)."""
    kind = item["kind"]
    if kind == "register":
        if net is not None and item["name"] in net.register_cost:
            return net.register_cost[item["name"]]
        return Resources(ff=item["width"])
    if kind == "instance":
        relu = net is not None and net.from_relu(item)
        return costs.instance(item, any(o["name"] in registered for o in item["outputs"]), relu)
    r = Resources()
    cost = item.get("cost")
    if not cost:
        return r
    whole = costs.netlist_adder(net, item) if net is not None and "adders" in cost else None
    if whole is not None:
        r = whole
    else:
        for width, copies in cost.get("adders", ()):
            r += costs.adder(width, copies, chain=item["width"])
        luts = net.adder_luts(item) if net is not None and "adders" in cost else None
        r.lut = r.lut * SHIFT_ADD_LUT_FACTOR if luts is None else luts
    r += costs.products(cost.get("muls", ()), item, net)
    if "muxes" in cost:
        r.lut += costs.muxes(cost["muxes"], item)
    if "rom" in cost:  # a look-up table function's read
        r += costs.table(cost["rom"], item, item["name"] in registered, net)
    return r


# the bit-level view of the wiring --------------------------------------------------------
def _percent(total: Resources, part: str, costs: _Costs) -> dict:
    """The totals as % of the part; LUTs as placed (costs.placed: ECP5's chain ends included)."""
    p = PARTS.get(part)
    if p is None:
        return {}
    lut = costs.placed(total).get("placed_lut", total.lut)
    return {"lut": round(100 * lut / p.lut, 3), "ff": round(100 * total.ff / p.ff, 3),
            "dsp": round(100 * total.dsp / p.dsp, 3), "bram": round(100 * total.bram / p.bram36, 3)}

