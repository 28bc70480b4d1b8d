"""Names in generated code: ONNX names -> C++ and SystemVerilog identifiers and file names,
and model text (names, file names) made safe inside comments, C strings and Tcl words.

An ONNX name can be anything (``int``, ``class``, ``módulo``, ``1x``, ``a"b``, 1,000 characters);
generated code must compile and files must open.  One rule, deterministic (same model, same
names, in the same order: same identifiers):

* every character outside ``[A-Za-z0-9_]`` becomes ``_``, runs of ``_`` become one, leading
  and trailing ``_`` go (the RTL joins ``base__index``: a single ``_`` in every base keeps
  the joins unique), a leading digit gets ``t_``;
* longer than `MAX_IDENTIFIER`: a readable prefix and 8 hex digits of the name's SHA-1, so
  every file name derived from it stays far below the file system's 255 bytes;
* a keyword or a name the generated code or our libraries use (`CPP_RESERVED`,
  `SV_RESERVED`), or one taken already (compared without case: identifiers are also file
  names and upper-cased header guards), gets ``_2``, ``_3``...;
* names the generated code makes from a name (``x_t``, ``x_full``, ``NAME_mantissas``, the
  RTL's ``u_`` instances and softmax wires) are claimed too (`Names.derived`, companions,
  prefixes), so no two things are ever declared under one name.

A name already an identifier in both languages (without ``__``), and neither reserved nor
taken, is kept: the examples' generated code does not change.  The mapping is written to
report.json (`name_table`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

MAX_IDENTIFIER = 64

CPP_KEYWORDS = frozenset("""alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
char16_t char32_t class compl concept const consteval constexpr constinit const_cast continue co_await co_return
co_yield decltype default delete do double dynamic_cast else enum explicit export extern false float for friend goto
if inline int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public
register reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch
template this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t
while xor xor_eq final override import module""".split())

# Names the generated C++ and the headers it includes already use: namespaces, types, macros,
# the testbench's and the kernels' locals, the file names beside the constants' files, and
# every macro and global type of the headers (cpp_globals.txt).
CPP_RESERVED = CPP_KEYWORDS | frozenset("""finegrain std main ap_fixed ap_ufixed ap_int ap_uint ap_fixed_base
ap_int_base ap_private ap_q_mode ap_o_mode size_t NULL EOF assert errno int8_t int16_t int32_t int64_t uint8_t
uint16_t uint32_t uint64_t argc argv dir inputs expected in_line out_line vectors mismatches in want token got i j k
row MAX_REPORTED FINEGRAIN_CONSTANT""".split()) | frozenset(
    line for line in (Path(__file__).with_name("cpp_globals.txt").read_text().split("\n"))
    if line and not line.startswith("#"))
# a top function named finegrain_conv would share its header guard with finegrain/conv.h
CPP_TOP_PREFIXES = ("finegrain_",)
# a constant's header guard is MODEL_NAME_H_, upper case: never that of defines.h or parameters.h
CPP_FOLDED = ("defines", "parameters")

SV_KEYWORDS = frozenset("""accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class clocking cmos
config const constraint context continue cover covergroup coverpoint cross deassign default defparam design disable dist
do edge else end endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable endtask enum event eventually
expect export extends extern final first_match for force foreach forever fork forkjoin function generate genvar global
highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir include initial inout input inside
instance int integer interconnect interface intersect join join_any join_none large let liblist library local
localparam logic longint macromodule matches medium modport module nand negedge nettype new nexttime nmos nor
noshowcancelled not notif0 notif1 null or output package packed parameter pmos posedge primitive priority program
property protected pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran rtranif0 rtranif1
s_always s_eventually s_nexttime s_until s_until_with scalared sequence shortint shortreal showcancelled signed small
soft solve specify specparam static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on
sync_reject_on table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg type typedef union unique unique0 unsigned until until_with untyped use uwire var vectored virtual void
wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor""".split())

# Verilator -Wall warns (SYMRSVDWORD, and `finegrain sim` stops) on a signal named like a C++
# keyword or one of these (found by linting a port of every name in CPP_RESERVED).
VERILATOR_RESERVED = CPP_KEYWORDS | frozenset("abort cdecl far near pascal uint8_t uint16_t uint32_t".split())

# The generated top's own ports and signals, the rtl/ library's module names (a top named
# like one would clash with it) and SystemVerilog's built-in package std.
SV_RESERVED = SV_KEYWORDS | frozenset("""clk rst in_valid out_valid fg_add3 fg_adder_tree fg_avgpool fg_axis_wrapper
fg_clip fg_maxpool fg_pipe fg_reduce_tree fg_relu fg_requantize fg_rom fg_stream_collect fg_stream_fifo fg_stream_pad
fg_stream_reduce fg_stream_window u_valid valid_pipe_data std""".split()) | VERILATOR_RESERVED
# A comment starting so is a Verilator directive (any case for verilator, "synopsys_" exactly):
# the top's file starts with "// <top>: generated by ...", so a top named so gets t_.
SV_TOP_PREFIXES = ("verilator", "synopsys")
SV_PREFIXES = ("u_",)  # instances are u_<wire's name>...
# wires the RTL names <softmax output>_<suffix> (every other wire is <name>__<index>...): a port
# named so would be declared twice
SV_COMPANIONS = ("_xs", "_max", "_es", "_sum", "_inv_code", "_inv_value", "_r")


def unused(base: str, taken) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first name not in ``taken`` (which it joins)."""
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


# Graph names exporters give when the user gave none (compared ignoring case and - _ . spaces).
GENERIC_GRAPH_NAMES = frozenset({"", "main_graph", "torch_jit", "torch_jit_export", "tf2onnx", "keras2onnx", "graph",
                                 "model", "onnx", "network", "net", "default", "module", "sequential", "functional"})
# a hex id (keras2onnx names a graph after a UUID: b45ce9ce619f42b8bc7366274a6b9f00), with or without dashes
_HEX_ID = re.compile(r"(?:[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{16,})", re.I)


def meaningless_graph_name(name: str) -> bool:
    """Whether ``name`` says nothing about the model: empty, an exporter's default
    (`GENERIC_GRAPH_NAMES`, also with a number: ``model_1``, ``sequential_3``), or a hex id,
    alone or after a word (``module b45ce9...``)."""
    text = name.strip()
    if _HEX_ID.fullmatch(text) or _HEX_ID.fullmatch(text.split()[-1] if text.split() else ""):
        return True
    key = re.sub(r"[-_.\s]+", "_", text.lower()).strip("_")
    return key in GENERIC_GRAPH_NAMES or re.sub(r"_?\d+$", "", key) in GENERIC_GRAPH_NAMES


def identifier(name: str) -> str:
    """``name`` as an identifier of at most MAX_IDENTIFIER ASCII characters (before the
    reserved/taken check of `Names`)."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name)
    ident = re.sub(r"__+", "_", ident).strip("_") or "t"
    if ident[0].isdigit():
        ident = f"t_{ident}"
    if len(ident) > MAX_IDENTIFIER:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        ident = f"{ident[:MAX_IDENTIFIER - 9].rstrip('_')}_{digest}"
    return ident


class Names:
    """Identifiers for IR names in one generated file set: readable, unique, stable.

    ``reserved``: names never given (keywords, library names), compared exactly.  Names
    given are unique ignoring case.  ``companions``: suffixes the generated code appends to
    a name by itself (``NAME_mantissas`` of FINEGRAIN_CONSTANT): a name is given only when
    it and its companions are all free.  ``prefixes``: what the generated code puts in front
    of names by itself (the RTL's instance ``u_X__0_relu`` beside its wire ``X__0_relu``): a
    name starting so gets ``t_`` in front.  ``folded``: names reserved ignoring case (a
    constant DEFINES would have defines.h's upper-case header guard).
    """

    def __init__(self, reserved=(), companions=(), prefixes=(), folded=()):
        self.map: dict[str, str] = {}
        self.reserved = frozenset(reserved)
        self.companions = tuple(companions)
        self.prefixes = tuple(prefixes)  # names starting so get t_ in front
        self.taken: set[str] = {n.lower() for n in folded}  # lower case

    def _free(self, ident: str) -> bool:
        return all(c not in self.reserved and c.lower() not in self.taken
                   for c in (ident, *(ident + s for s in self.companions)))

    def _claim(self, base: str) -> str:
        ident, k = base, 1
        while not self._free(ident):
            k += 1
            ident = f"{base}_{k}"
        self.taken.update(c.lower() for c in (ident, *(ident + s for s in self.companions)))
        return ident

    def __call__(self, name: str) -> str:
        """The identifier of the IR name ``name`` (the same one every time)."""
        if name not in self.map:
            ident = identifier(name)
            self.map[name] = self._claim(f"t_{ident}" if ident.lower().startswith(self.prefixes) else ident)
        return self.map[name]

    def derived(self, ident: str) -> str:
        """A new identifier the generated code makes from others (``x_t``, ``x_full``):
        ``ident`` itself when free, else ``ident_2``...; never one a name has or will get
        under the same spelling later (that name gets ``_2``)."""
        return self._claim(ident)


# --- text in generated files ------------------------------------------------------------------

_PLAIN = re.compile(r"[ -~]")  # printable ASCII


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def comment(text) -> str:
    """``text`` safe inside any comment of the generated files (C++ ``//`` and ``/* */``,
    SystemVerilog, Tcl ``#``, Markdown): printable ASCII, with newlines, other control and
    non-ASCII characters, backslash and backtick written as ``\\xNN``/``\\uNNNN``, and
    ``*/`` and ``??`` (a trigraph) broken up.  Ordinary text comes back unchanged."""
    out = []
    for ch in str(text):
        if not _PLAIN.fullmatch(ch) or ch in "\\`":
            out.append(_escape(ch))
        elif (ch == "/" and out and out[-1] == "*") or (ch == "?" and out and out[-1] == "?"):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def c_string(text) -> str:
    """``text`` as the inside of a C string literal: printable ASCII as is, except ``\\``,
    ``"`` and ``?`` (trigraphs); every other byte of its UTF-8 as a three-digit octal escape
    (which, unlike ``\\x``, cannot swallow the characters after it)."""
    out = []
    for byte in str(text).encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        out.append(ch if 0x20 <= byte < 0x7f and ch not in '\\"?' else f"\\{byte:03o}")
    return "".join(out)


_TCL_PLAIN = re.compile(r"[A-Za-z0-9_.:/+-]+")


def tcl_word(text) -> str:
    """``text`` as one Tcl word that substitutes nothing: as is when it holds only
    ``[A-Za-z0-9_.:/+-]``, else every other character backslash-escaped (a newline as
    ``\\n``).  Safe bare and inside double quotes."""
    text = str(text)
    if _TCL_PLAIN.fullmatch(text):
        return text
    return "".join(ch if _TCL_PLAIN.fullmatch(ch) else "\\n" if ch == "\n" else "\\" + ch for ch in text)


# Jinja filters, for every template environment (compiler.backends.hls.template_environment)
FILTERS = {"comment": comment, "c_string": c_string, "tcl": tcl_word}


def name_table(graph, hls: dict | None, rtl: dict | None) -> dict:
    """report.json's ``names``: what every ONNX name became in the generated code.  ``hls``
    and ``rtl`` are the backends' contexts (None when not built).  Tensors and layers are keyed
    by their IR name (the ONNX name, or the frontend's name for what it made); each entry has
    the ONNX name, the C++ and Verilog identifiers and, for a constant, its header file."""
    hls_names = hls["names"] if hls else {}
    rtl_names = rtl["names"] if rtl else {}
    files = {c["name"]: f"hls/firmware/weights/{c['name']}.h" for c in (hls["constants"] if hls else [])}
    model = {"onnx": graph.name, "files": []}
    if hls:
        m = hls["model"]
        model.update(cpp=m)
        model["files"] += [f"hls/firmware/{m}.cpp", f"hls/firmware/{m}.h", f"hls/tb/{m}_test.cpp"]
    if rtl:
        model.update(verilog=rtl["model"])
        model["files"].append(f"rtl/{rtl['model']}.sv")
    tensors, layers = {}, {}
    for name in sorted(set(hls_names) | set(rtl_names)):
        entry = {}
        if name in graph.tensors:
            entry["onnx"] = graph.tensor(name).onnx_name or name
        if name in hls_names:
            entry["cpp"] = hls_names[name]
            if hls_names[name] in files:
                entry["file"] = files[hls_names[name]]
        if name in rtl_names:
            entry["verilog"] = rtl_names[name]
        (tensors if name in graph.tensors else layers)[name] = entry
    return {"model": model, "tensors": tensors, "layers": layers}
