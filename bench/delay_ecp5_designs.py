"""The designs bench/delay_ecp5.py places on the ECP5-85F: each a datapath block between
registers (so nextpnr's register-to-register critical path is the block's delay), with the
structure the delay model (compiler/timing.py) reads to predict it.

A design is a dict: ``name``, ``kind``, the structure (``levels``, ``width``, ``loads`` for the
adder paths; ``params`` for the library blocks), ``text`` (the wrapper's SystemVerilog) and
``lib`` (the rtl/ files it instantiates).  :func:`source_hash` is what a recorded row measured
(the wrapper and the library files, comments and blank space aside), so a row whose RTL has
changed since it was placed is visible (tests/test_delay_model.py).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

RTL = Path(__file__).resolve().parents[1] / "rtl"
TREE_LIB = ["fg_reduce_tree.sv", "fg_adder_tree.sv"]

ADDER_WIDTHS = (4, 8, 12, 16, 20, 24, 28, 32)
TREE_TERMS = (3, 4, 6, 8, 12, 16, 24, 32)
TREE_WIDTHS = (4, 8, 12, 16, 20, 24)
FANOUTS = (1, 2, 4, 8, 16, 32, 64)
FANOUT_WIDTH = 12
CHAIN_LEVELS = (2, 3, 4, 5, 6)
CHAIN_WIDTHS = (8, 12, 16)
REQUANTIZE_WIDTHS = (8, 12, 16, 24, 32)
SIGNED_TO_UNSIGNED_WIDTHS = (8, 12, 16, 20, 24, 32)
ROUNDINGS = {0: "trn", 2: "rnd", 6: "conv"}  # fg_requantize ROUNDING codes: no increment, two that add one
OVERFLOWS = {0: "wrap", 1: "sat"}
ACTIVATION_WIDTHS = (8, 12, 16, 24, 32)


def _strip(text: str) -> str:
    """The text without // comments and blank space: what synthesis reads."""
    return " ".join(re.sub(r"//[^\n]*", "", text).split())


def source_hash(design: dict) -> str:
    h = hashlib.sha256(_strip(design["text"]).encode())
    for name in design["lib"]:
        h.update(name.encode())
        h.update(_strip((RTL / name).read_text()).encode())
    return h.hexdigest()[:16]


def tree_source(name: str, terms: int, width: int, op: int = 0) -> str:
    """A registered fg_reduce_tree (op 0: fg_adder_tree's sum, 1: max): input register, the
    combinational tree, output register."""
    out_w = width + math.ceil(math.log2(terms)) if op == 0 else width
    module = "fg_adder_tree" if op == 0 else "fg_reduce_tree"
    op_param = "" if op == 0 else f".OP({op}), "
    return f"""\
module {name} (
    input  logic                clk,
    input  logic [{terms * width - 1}:0] terms,
    output logic [{out_w - 1}:0]  sum
);
    logic [{terms * width - 1}:0] terms_q;
    logic [{out_w - 1}:0] tree_sum;
    {module} #(.N({terms}), .W({width}), .SIGNED(1), {op_param}.LEVELS_PER_STAGE(0)) u_tree (
        .clk, .rst(1'b0), .in_valid(1'b1), .in_data(terms_q), .out_valid(), .out_data(tree_sum));
    always_ff @(posedge clk) begin
        terms_q <= terms;
        sum <= tree_sum;
    end
endmodule
"""


def _sext(wire: str, width: int, to: int, shift: int = 0) -> str:
    """``wire`` (signed, ``width`` bits) sign-extended and shifted left into ``to`` bits, written
    as the RTL backend's emitter writes it (a concatenation)."""
    pad = to - width - shift
    body = f"{{{{{pad}{{{wire}[{width - 1}]}}}}, {wire}}}" if pad > 0 else wire
    return f"{{{body}, {shift}'b0}}" if shift else body


def fanout_source(name: str, loads: int, width: int) -> str:
    """One registered input ``x`` read by ``loads`` two-term adders ``y_i + (x << i % 3)``
    (each with its own registered ``y_i``), every sum registered: the first net of a layer's
    adder graph, an activation feeding every shift-add that reads it."""
    out_w = width + 3
    lines = []
    for i in range(loads):
        shift = i % 3
        lines.append(f"    wire [{width - 1}:0] y{i} = y_q[{i * width} +: {width}];\n"
                     f"    assign s[{i * out_w} +: {out_w}] = {_sext(f'y{i}', width, out_w)} "
                     f"+ {_sext('x_q', width, out_w, shift)};")
    body = "\n".join(lines)
    return f"""\
module {name} (
    input  logic                clk,
    input  logic [{width - 1}:0]       x,
    input  logic [{loads * width - 1}:0] y,
    output logic [{loads * out_w - 1}:0] sums
);
    logic [{width - 1}:0] x_q;
    logic [{loads * width - 1}:0] y_q;
    logic [{loads * out_w - 1}:0] s;
{body}
    always_ff @(posedge clk) begin
        x_q <= x;
        y_q <= y;
        sums <= s;
    end
endmodule
"""


def chain_source(name: str, levels: int, width: int, subtract: bool, negate_first: bool) -> str:
    """``levels`` two-term adders in series as an adder graph writes them: level 1 adds two
    registered inputs (``-a + (b << 1)`` with ``negate_first``, which yosys keeps as a negation
    and an addition), level l adds (or, alternately with ``subtract``, subtracts) a registered
    input shifted left by one to level l-1's sum, one bit wider each level."""
    terms = [f"t{i}" for i in range(levels + 1)]
    decl = "\n".join(f"    logic [{width - 1}:0] {t}_q;" for t in terms)
    regs = "\n".join(f"        {t}_q <= {t};" for t in terms)
    ports = ", ".join(terms)
    lines = []
    prev, prev_w = "t0_q", width
    for lvl in range(1, levels + 1):
        w = width + 1 + lvl
        a = _sext(prev, prev_w, w)
        b = _sext(f"t{lvl}_q", width, w, 1)
        op = "-" if subtract and lvl % 2 == 0 else "+"
        expr = f"-{a} + {b}" if negate_first and lvl == 1 else f"{a} {op} {b}"
        lines.append(f"    logic [{w - 1}:0] n{lvl};  // level {lvl}\n    assign n{lvl} = {expr};")
        prev, prev_w = f"n{lvl}", w
    body = "\n".join(lines)
    return f"""\
module {name} (
    input  logic              clk,
    input  logic [{width - 1}:0] {ports},
    output logic [{prev_w - 1}:0] sum
);
{decl}
{body}
    always_ff @(posedge clk) begin
{regs}
        sum <= {prev};
    end
endmodule
"""


def block_source(name: str, module: str, params: dict, in_w: int, out_w: int) -> str:
    """A registered combinational library block (in_data -> out_data)."""
    plist = ", ".join(f".{k}({v})" for k, v in params.items())
    return f"""\
module {name} (
    input  logic              clk,
    input  logic [{in_w - 1}:0] value,
    output logic [{out_w - 1}:0] result
);
    logic [{in_w - 1}:0] value_q;
    logic [{out_w - 1}:0] block_out;
    {module} #({plist}) u_block (.in_data(value_q), .out_data(block_out));
    always_ff @(posedge clk) begin
        value_q <= value;
        result <= block_out;
    end
endmodule
"""


def requantize_params(in_w: int, in_signed: int, rounding: int, overflow: int, out_signed: int | None = None) -> dict:
    """A wide sum to an 8-bit activation (6 bits from an 8-bit sum), dropping about a quarter
    of the input's bits below and the rest above, as a layer's requantize does; the output
    signed as the input unless ``out_signed`` says otherwise."""
    out_w = 8 if in_w > 8 else 6
    in_f = in_w // 2
    return {"IN_W": in_w, "IN_F": in_f, "IN_SIGNED": in_signed, "OUT_W": out_w, "OUT_F": out_w // 2,
            "OUT_SIGNED": in_signed if out_signed is None else out_signed, "ROUNDING": rounding,
            "OVERFLOW": overflow}


def _requantize_designs(quick: bool) -> list[dict]:
    out = []
    widths = REQUANTIZE_WIDTHS[::2] if quick else REQUANTIZE_WIDTHS
    cases = [(w, 1, r, o) for w in widths for r in ROUNDINGS for o in OVERFLOWS]
    cases += [(w, 0, r, 1) for w in widths[::2] for r in (2, 6)]  # unsigned input: after a relu
    for w, s, r, o in cases:
        p = requantize_params(w, s, r, o)
        name = f"requantize_{'s' if s else 'u'}{w}_{ROUNDINGS[r]}_{OVERFLOWS[o]}"
        out.append(dict(name=name, kind="requantize", width=w, params=p, lib=["fg_requantize.sv"],
                        text=block_source(name, "fg_requantize", p, w, p["OUT_W"])))
    # a signed sum into an unsigned saturating format: a ReLU folded into the requantize
    for w in widths[::2] if quick else SIGNED_TO_UNSIGNED_WIDTHS:
        for r in ROUNDINGS:
            p = requantize_params(w, 1, r, 1, out_signed=0)
            name = f"requantize_s{w}_to_u_{ROUNDINGS[r]}_sat"
            out.append(dict(name=name, kind="requantize", width=w, params=p, lib=["fg_requantize.sv"],
                            text=block_source(name, "fg_requantize", p, w, p["OUT_W"])))
    return out


def _activation_designs(quick: bool) -> list[dict]:
    out = []
    for w in ACTIVATION_WIDTHS[::2] if quick else ACTIVATION_WIDTHS:
        p = {"W": w, "SIGNED": 1, "OUT_W": w - 1}
        out.append(dict(name=f"relu_s{w}", kind="relu", width=w, params=p, lib=["fg_relu.sv"],
                        text=block_source(f"relu_s{w}", "fg_relu", p, w, w - 1)))
        # ReLU6 on a value with w/2 - 1 fractional bits: [0, 6] -> an unsigned result one bit narrower
        p = {"W": w, "SIGNED": 1, "LO": f"{w + 1}'sd0", "HI": f"{w + 1}'sd{6 << (w // 2 - 1)}", "OUT_W": w - 1,
             "OUT_SIGNED": 0}
        out.append(dict(name=f"clip_s{w}", kind="clip", width=w, params=p, lib=["fg_clip.sv"],
                        text=block_source(f"clip_s{w}", "fg_clip", p, w, w - 1)))
        for n in (2, 4):
            name = f"max{n}_s{w}"
            out.append(dict(name=name, kind="max", levels=math.ceil(math.log2(n)), width=w, params={"N": n},
                            lib=["fg_reduce_tree.sv"], text=tree_source(name, n, w, op=1)))
    return out


def designs(quick: bool = False) -> list[dict]:
    """Every design of the sweep (``quick``: every other width and count)."""
    def pick(values):
        return values[::2] if quick else values

    out = []
    for w in pick(ADDER_WIDTHS):
        name = f"adder_w{w}"
        out.append(dict(name=name, kind="adder", levels=1, width=w + 1, loads=1, text=tree_source(name, 2, w),
                        lib=TREE_LIB))
    for n in TREE_TERMS[1::2] if quick else TREE_TERMS:
        for w in pick(TREE_WIDTHS):
            name = f"tree_n{n}_w{w}"
            levels = math.ceil(math.log2(n))
            out.append(dict(name=name, kind="tree", levels=levels, width=w + levels, loads=1,
                            text=tree_source(name, n, w), lib=TREE_LIB))
    for f in pick(FANOUTS):
        name = f"fanout_f{f}_w{FANOUT_WIDTH}"
        out.append(dict(name=name, kind="fanout", levels=1, width=FANOUT_WIDTH + 3, loads=f,
                        text=fanout_source(name, f, FANOUT_WIDTH), lib=[]))
    for lv in pick(CHAIN_LEVELS):
        for w in pick(CHAIN_WIDTHS):
            for sub in (False, True):
                name = f"chain_l{lv}_w{w}{'_sub' if sub else ''}"
                out.append(dict(name=name, kind="chain", levels=lv, width=w + 1 + lv, loads=1,
                                text=chain_source(name, lv, w, sub, False), lib=[]))
    for lv in (1, 3) if quick else (1, 2, 3, 4):
        # -a + b: a negation chain before the first addition (one more carry chain on the path)
        name = f"chain_l{lv}_w12_neg"
        out.append(dict(name=name, kind="chain", levels=lv + 1, width=13 + lv, loads=1,
                        text=chain_source(name, lv, 12, True, True), lib=[]))
    out += _requantize_designs(quick)
    out += _activation_designs(quick)
    return out


def predicted_ns(model, row: dict) -> float:
    """The register-to-register path compiler/timing.py's ``model`` predicts for a design (or a
    recorded row) from its structure."""
    kind = row["kind"]
    if kind in ("adder", "tree", "fanout", "chain"):
        return model.path(row["levels"], row["width"], row["loads"])
    p = row.get("params", {})
    if kind == "requantize":
        return model.overhead + model.requantize(p)
    if kind == "relu":
        return model.overhead + model.relu(row["width"])
    if kind == "clip":
        return model.overhead + model.clip(row["width"])
    if kind == "max":
        return model.overhead + model.max(row["levels"], row["width"])
    raise ValueError(f"no prediction for a design of kind {kind!r}")
