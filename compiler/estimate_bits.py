"""The generated wiring bit by bit, for compiler/estimate.py's adder and register rules: a small
parser of the emitter's expressions (slices, concatenations, extensions, shifts, sums) and
:class:`_Netlist`, every wire's bits after constant propagation, which says which bits of an
adder's operands are constants or copies and which register bits are read and by what.  Also
:class:`Resources`, what every rule returns."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

SRL_MIN_DEPTH = 3  # yosys xilinx_srl -minlen 3; Vivado infers SRLs from 3 as well
SRL_DEPTH = 32


@dataclass
class Resources:
    lut: float = 0.0
    ff: float = 0.0
    dsp: int = 0
    bram: float = 0.0
    carry: float = 0.0
    chains: float = 0.0  # carry chains (ECP5: nextpnr places two more CCU2Cs at each; not in rounded())

    def __iadd__(self, other: Resources) -> Resources:
        self.lut += other.lut
        self.ff += other.ff
        self.dsp += other.dsp
        self.bram += other.bram
        self.carry += other.carry
        self.chains += other.chains
        return self

    def rounded(self) -> dict:
        return {"lut": round(self.lut), "ff": round(self.ff), "dsp": self.dsp, "bram": self.bram,
                "carry": round(self.carry)}


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_TOKEN = re.compile(r"\s*(?:(\d+'[bhdo][0-9a-fA-F_]+)|(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(\+:|[{}\[\]:,+\-]))")


def _requantized_bits(item: dict) -> tuple[int, int | str]:
    """(bits of an fg_requantize's output that vary, what the ones above hold: 0 or "sign").
    The kept input bits (plus the rounding carry) bound the value; a non-negative one is
    below 2**that and, when saturated into a signed format, below its sign bit."""
    p = {q["name"]: q["value"] for q in item["params"]}
    dropped = max(p["IN_F"] - p["OUT_F"], 0)
    live = p["IN_W"] - dropped + max(p["OUT_F"] - p["IN_F"], 0) + (dropped > 0 and p["ROUNDING"] != 0)
    if p["IN_SIGNED"]:
        return (min(live, p["OUT_W"]), "sign") if p["OUT_SIGNED"] else (p["OUT_W"], 0)
    return max(min(live, p["OUT_W"] - (p["OVERFLOW"] != 0 and p["OUT_SIGNED"])), 1), 0


def _top(bits: tuple) -> int:
    """The number of bits up to the highest one that is not the constant 0."""
    return max((i + 1 for i, v in enumerate(bits) if v != 0), default=0)


def _fit(bits: tuple, width: int) -> tuple:
    """An operand in a ``width``-bit context: zero-extended (every wire is unsigned: sign
    extension is written out) or cut to its low bits."""
    return bits[:width] + (0,) * (width - len(bits))


class _Parser:
    """One expression's operand (the wiring subset the RTL backend writes: sized literals,
    names, bit and part selects, concatenation, replication) as bits, least significant first."""

    def __init__(self, tokens: list[str], bits):
        self.tokens, self.at, self.bits = tokens, 0, bits

    def take(self) -> str:
        self.at += 1
        return self.tokens[self.at - 1]

    def primary(self) -> tuple | None:
        token = self.take()
        if "'" in token:  # a sized literal
            width, rest = token.split("'")
            value = int(rest[1:].replace("_", ""), {"b": 2, "h": 16, "d": 10, "o": 8}[rest[0]])
            return tuple((value >> j) & 1 for j in range(int(width)))
        if token == "{":
            if self.tokens[self.at].isdigit() and self.tokens[self.at + 1] == "{":
                count = int(self.take())
                inner = self.primary()  # the braces of the repeated part
                return inner * count if inner is not None and self.take() == "}" else None
            parts = []
            while True:
                part = self.primary()
                if part is None:
                    return None
                parts.append(part)
                token = self.take()
                if token == "}":
                    return tuple(b for part in reversed(parts) for b in part)
                if token != ",":
                    return None
        if not (token[0].isalpha() or token[0] == "_"):
            return None
        if self.at < len(self.tokens) and self.tokens[self.at] == "[":
            self.at += 1
            first, kind = int(self.take()), self.take()
            lo, hi = first, first
            if kind == ":":
                hi, lo = first, int(self.take())
            elif kind == "+:":
                hi = first + int(self.take()) - 1
            if kind != "]" and self.take() != "]":
                return None
            whole = self.bits(token)  # a port (not an item) has bits of its own
            return tuple(whole[j] if whole is not None else (token, j) for j in range(lo, hi + 1))
        return self.bits(token)


class _Netlist:
    """Every wire of a context bit by bit, as synthesis sees it after constant propagation:
    a bit is ``0``, ``1`` or ``(root, j)``, bit j of a wire that holds logic (an adder, a
    register, an instance's output, a port); wiring (extension, shift, slice, concatenation)
    only rearranges bits.  The adder and register rules read it: which bits of an operand
    are constants or copies, and which register bits are read and by what."""

    def __init__(self, items: list[dict], srl_min_depth: int | None = SRL_MIN_DEPTH):
        # flops in a chain at least this long are shift-register LUTs (None: the fabric has none)
        self.srl_min_depth = srl_min_depth
        self.items: dict[str, dict] = {}
        for item in items:
            if item["kind"] == "instance":
                live = _requantized_bits(item) if item["module"] == "fg_requantize" else None
                for o in item["outputs"]:
                    if "width" in o:  # (else its bits are not known)
                        self.items[o["name"]] = {"kind": "output", "name": o["name"], "width": o["width"],
                                                 "live": live, "relu": item["module"] == "fg_relu"}
            elif "name" in item and item["kind"] != "declare":  # (a declared register: its item)
                self.items[item["name"]] = item
        self.memo: dict[str, tuple | None] = {}
        self.sums: dict[str, tuple[int, tuple, set] | None] = {}  # adder -> (LUTs, its bits, bits it adds)
        # adder -> each of its carry chains as (first bit, end), and the bits of its sum read (settle)
        self.chains: dict[str, list[tuple[int, int]]] = {}
        self.used_top: dict[str, int] = {}
        self.inverted: set = set()  # bits inverted by some adder (one INV serves every reader)
        self.readers: dict[tuple, set[str]] = defaultdict(set)  # a logic bit -> the items that read it
        self.register_cost: dict[str, Resources] = {}  # filled by register_costs (see _netlist)
        for item in items:
            if item.get("module") != "fg_relu":
                self._note_reads(item)
        for item in reversed(items):  # a ReLU reads the bits its readers read, and the sign
            if item.get("module") == "fg_relu":
                ports = {q["name"]: q["value"] for q in item["ports"]}
                terms, out = self.terms(ports["in_data"]), self.bits(ports["out_data"])
                if terms and len(terms) == 1 and out is not None:
                    bits = terms[0][1]
                    kept = [b for j, b in enumerate(bits[:len(out)]) if self.read(out[j])]
                    self.read_by(kept + [bits[-1]] if kept else [], item["name"])
                else:
                    self._note_reads(item)

    def bits(self, name: str) -> tuple | None:
        """The bits of wire ``name``, least significant first (None: not known)."""
        if name not in self.memo:
            item = self.items.get(name)
            self.memo[name] = None  # (a wire defined by itself would be a backend bug)
            if item is None:
                result = None
            elif item["kind"] == "assign" and not item.get("cost"):
                terms = self.terms(item["expr"])
                result = _fit(terms[0][1], item["width"]) if terms and len(terms) == 1 and not terms[0][0] else None
            elif item["kind"] == "assign" and "adders" in item["cost"] and self.sum(item) is not None:
                result = self.sums[name][1]
            elif item["kind"] == "register":  # a flop of a constant is that constant
                source = self.bits(item["source"]) if self._plain(item) else None
                source = (None,) * item["width"] if source is None else _fit(source, item["width"])
                result = tuple(s if s in (0, 1) else (name, j) for j, s in enumerate(source))
            else:
                # a requantize's output above the bits its input can reach: zeros, or sign copies
                live, fill = item.get("live") or (item["width"], 0)
                result = tuple((name, j) for j in range(live))
                result += ((name, live - 1) if fill == "sign" else 0,) * (item["width"] - live)
            self.memo[name] = result
        return self.memo[name]

    def terms(self, expr: str) -> list[tuple[bool, tuple]] | None:
        """``expr`` as a sum of operands [(subtracted, bits)], or None when it is anything else
        (a product, a comparison, a wire not in the context)."""
        tokens = [next(t for t in match if t) for match in _TOKEN.findall(expr)]
        if sum(len(t) for t in tokens) != len(expr.replace(" ", "")):
            return None
        parser = _Parser(tokens, self.bits)
        out = []
        try:
            while parser.at < len(tokens):
                negative = tokens[parser.at] == "-"
                if tokens[parser.at] in "+-":
                    parser.at += 1
                bits = parser.primary()
                if bits is None:
                    return None
                out.append((negative, bits))
        except (IndexError, ValueError, KeyError):
            return None
        return out

    # who reads what --------------------------------------------------------------------
    def read_by(self, bits, reader: str) -> None:
        readers = self.readers
        for b in bits or ():
            if type(b) is tuple:
                readers[b].add(reader)

    def _note_reads(self, item: dict) -> None:
        kind = item["kind"]
        if kind == "register" and self._plain(item):
            self.read_by(self.bits(item["source"]), item["name"])
        elif kind == "instance":
            p = {q["name"]: q["value"] for q in item["params"]}
            outputs = {o["name"] for o in item["outputs"]}
            for port in item.get("ports", ()):
                if port["value"] in outputs:
                    continue
                terms = self.terms(port["value"])
                if not terms or len(terms) != 1:
                    self._read_names(port["value"], item["name"])
                    continue
                bits = terms[0][1]
                if item["module"] == "fg_requantize" and port["name"] == "in_data":
                    # truncation reads no dropped bit; RND only the highest; others all; WRAP
                    # nothing above the output's top bit
                    dropped = max(p["IN_F"] - p["OUT_F"], 0)
                    if p["OVERFLOW"] == 0:
                        bits = bits[:dropped + p["OUT_W"] - max(p["OUT_F"] - p["IN_F"], 0)]
                    bits = bits[dropped - (p["ROUNDING"] == 2) if dropped else 0:] \
                        if p["ROUNDING"] in (0, 2) else bits
                self.read_by(bits, item["name"])
        elif kind == "assign" and "adders" in item.get("cost", {}) and self.sum(item) is not None:
            self.read_by(self.sums[item["name"]][2], item["name"])
        elif kind == "assign" and self.bits(item["name"]) is not None and not item.get("cost"):
            pass  # wiring: its bits are read by whoever reads it
        elif kind != "comment":
            # anything else (a product, a mux, a folded core's registers with an enable or reset,
            # a case, unknown wiring): every bit of every wire it names is read
            texts = [item.get(key) for key in ("expr", "source", "enable", "reset", "select")]
            texts += [entry["expr"] for entry in item.get("entries", ())]
            for text in texts:
                if isinstance(text, str):
                    self._read_names(text, item.get("name", kind))

    def _read_names(self, text: str, reader: str) -> None:
        for name in _IDENT.findall(text):
            self.read_by(self.bits(name), reader)

    def _plain(self, register: dict) -> bool:
        """A flop of a known wire on every clock (no enable, no reset): the bit rules apply."""
        return not register.get("enable") and not register.get("reset") and register["source"] in self.items \
            and self.bits(register["source"]) is not None

    def from_relu(self, item: dict) -> bool:
        """Whether instance ``item``'s input (its first port) is an fg_relu's output."""
        ports = item.get("ports")
        terms = self.terms(ports[0]["value"]) if ports else None
        bits = terms[0][1] if terms and len(terms) == 1 else ()
        return any(isinstance(b, tuple) and self.items.get(b[0], {}).get("relu") for b in bits)

    def read(self, bit) -> bool:
        return bool(self.readers.get(bit))

    # the rules ---------------------------------------------------------------------------
    def adder_luts(self, item: dict) -> int | None:
        """The LUTs of an adder item, or None when its expression is not known."""
        done = self.sum(item)
        return None if done is None else done[0]

    def sum(self, item: dict) -> tuple[int, tuple, dict] | None:
        """An adder item (``a ± b ± ...``, summed left to right as yosys builds it; a leading
        minus is ``0 - a``) as (its LUTs, its bits, the operand bits that enter its carry
        chains with the lowest position each enters at), computed once (equal functions are
        shared)."""
        name = item["name"]
        if name not in self.sums:
            self.sums[name] = None
            terms = self.terms(item["expr"])
            if terms:
                width = item["width"]
                ops = [(negative, _fit(bits, width)) for negative, bits in terms]
                acc = (0,) * width if ops[0][0] else ops[0][1]
                rest = ops if ops[0][0] else ops[1:]
                luts, reads, chains = 0, {}, []
                for k, (negative, bits) in enumerate(rest):
                    n, acc, chain = self._add(acc, bits, negative, name if k == len(rest) - 1 else f"{name}#{k}",
                                              reads)
                    luts += n
                    chains.append(chain)
                self.sums[name] = (luts, acc, reads)
                self.chains[name] = chains
        return self.sums[name]

    def _add(self, a: tuple, b: tuple, sub: bool, tag: str, reads: dict) -> tuple[int, tuple, tuple[int, int]]:
        """One carry-chain adder ``a ± b`` bit by bit: its LUTs, its sum's bits and its carry
        chain (first bit, end): from the first bit added up to the sum's top (a sum's carry
        out, a difference's full width, whose bits above the operands are its sign).  Below the
        first bit both operands drive (for ``-``: below b's lowest non-zero bit) the sum copies
        an operand (yosys cuts those bits off the adder).  Above it each bit's carry-chain
        input is a ^ b (b inverted to subtract): a LUT2 when both are logic, an inverter when
        one is logic and the other the constant that inverts it, nothing when it is a copy or
        a constant; equal functions are one LUT (the sign-copy bits above the operands are
        one function, and one inverter of a bit serves every adder that needs it).  ``reads``
        gathers the operand bits the carry chain takes (a copied bit is read by the sum's
        readers, through it)."""
        luts, out, low, seen = 0, [], True, self.inverted
        top = max(_top(a), _top(b))
        first = len(a)
        for i, x in enumerate(a):
            y = b[i]
            if low and (y == 0 or (not sub and x == 0)):
                out.append(x if y == 0 else y)
                continue
            if low:
                first = i
            low = False
            # above both operands a sum is 0 (yosys wreduce), a difference its sign (one bit)
            out.append((tag, i) if i <= top else 0 if not sub else out[top])
            x_logic, y_logic = type(x) is tuple, type(y) is tuple
            if x_logic and y_logic:
                reads[x] = min(reads.get(x, i), i)
                reads[y] = min(reads.get(y, i), i)
                key = (x, y, sub) if x < y else (y, x, sub)
            elif x_logic or y_logic:
                v, constant = (x, y) if x_logic else (y, x)
                reads[v] = min(reads.get(v, i), i)
                if not constant ^ sub:  # a copy: no LUT
                    continue
                key = (v, "~")
            else:
                continue
            if key not in seen:
                seen.add(key)
                luts += 1
        end = len(a) if sub else max(min(top + 1, len(a)), first)
        return luts, tuple(out), (first, end)

    def settle(self, items: list[dict]) -> None:
        """What is read once unread bits are gone, latest item first (an item is declared after
        the ones it reads): a plain register's unread bits read nothing, and an adder whose top
        bits are unread is narrower (yosys wreduce: ``used_top``), its operands' bits that
        enter only above it unread."""
        for item in reversed(items):
            name = item.get("name")
            if item["kind"] == "register" and self._plain(item):
                source = self.bits(item["source"]) or ()
                for j, s in enumerate(source[:item["width"]]):
                    if not self.read((name, j)) and isinstance(s, tuple):
                        self.readers.get(s, set()).discard(name)
            elif item["kind"] == "assign" and "adders" in item.get("cost", {}) and self.sum(item) is not None:
                top = max((i + 1 for i in range(item["width"]) if self.read((name, i))), default=0)
                self.used_top[name] = top
                for bit, position in self.sums[name][2].items():
                    if position >= top:
                        self.readers.get(bit, set()).discard(name)

    def register_costs(self, registers: list[dict]) -> dict[str, Resources]:
        """Each register's FFs and SRL LUTs.  A bit costs a flip-flop when something reads it
        and its source is not a constant (synthesis removes the others).  A chain of 3 or more
        flops in which every flop but the last feeds only the next becomes shift-register LUTs
        (yosys ``xilinx_srl -minlen 3``; one SRL per bit per 32 stages), costed at the chain's
        last register; on a fabric without them (``srl_min_depth`` None) every bit is a flop."""
        costs = {r["name"]: Resources(ff=r["width"]) for r in registers if not self._plain(r)}
        registers = [r for r in registers if self._plain(r)]
        costs.update({r["name"]: Resources() for r in registers})
        by_name = {r["name"]: r for r in registers}
        for r in reversed(registers):  # a register is declared after the one it delays
            source = self.bits(r["source"]) or ()
            for j, s in enumerate(source[:r["width"]]):
                if not self.read((r["name"], j)) and isinstance(s, tuple):
                    self.readers.get(s, set()).discard(r["name"])
        held = set()  # flip-flops of one source bit are one (yosys opt_merge)
        for r in registers:
            source = self.bits(r["source"]) or ()
            for j in range(r["width"]):
                me = (r["name"], j)
                s = source[j] if j < len(source) else 0
                if not self.read(me) or not isinstance(s, tuple) or s in held:
                    continue
                held.add(s)
                readers = self.readers[me]
                if len(readers) == 1 and next(iter(readers)) in by_name:
                    continue  # inside a chain: counted at its end
                depth, bit = 1, source[j]
                while bit[0] in by_name and self.readers.get(bit) == {me[0]}:
                    me = bit
                    depth += 1
                    prev = self.bits(by_name[bit[0]]["source"]) or ()
                    bit = prev[bit[1]] if bit[1] < len(prev) else 0
                    if not isinstance(bit, tuple):
                        break
                if self.srl_min_depth is not None and depth >= self.srl_min_depth:
                    costs[r["name"]].lut += math.ceil(depth / SRL_DEPTH)
                else:
                    costs[r["name"]].ff += depth
        return costs
