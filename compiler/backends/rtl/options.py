"""What the RTL backend builds and how it is set: its ops, its limits, its options, the
top's name, and its error."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import UserError
from ...ir import Graph, Op
from ..hls import top_name

SUPPORTED = frozenset({Op.DENSE, Op.CONV, Op.AVGPOOL, Op.MAXPOOL, Op.SIGMOID, Op.SOFTMAX, Op.RELU, Op.LEAKY_RELU,
                       Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL,
                       Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})
WIRING = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})
# A look-up table is a function with one line per input code (table_function).  Verilator's
# build grows with the lines: a sigmoid and a softmax (three tables) took 6 min to build at
# 2**16 entries each on a busy 2-core machine (bit-exact), so the limit is 2**14.
RTL_MAX_TABLE_BITS = 14
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
wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor
clk rst in_valid out_valid""".split())


class RTLBackendError(UserError):
    """The model uses something the RTL backend cannot express (the message says what)."""


@dataclass(frozen=True)
class RTLOptions:
    clock_ns: float = 5.0
    levels_per_stage: int | None = None  # None: max(1, floor(clock_ns / 1.25))
    csd_max_digits: int = 3  # more non-zero CSD digits: a `*`
    dsp_min_width: int = 28  # wider products: a `*`
    interface: str = "ports"  # "axis": also an AXI4-Stream top, <model>_axis.sv (see axis_context)

    @property
    def levels(self) -> int:
        if self.levels_per_stage is not None:
            return self.levels_per_stage
        return max(1, math.floor(self.clock_ns / 1.25))


def rtl_top_name(graph: Graph) -> str:
    """The generated top module's name (and file name): the HLS top name, unless that is a
    SystemVerilog keyword."""
    name = top_name(graph)
    return f"{name}_top" if name in SV_KEYWORDS else name
