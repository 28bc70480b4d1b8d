"""What the RTL backend builds and how it is set: its ops, its limits, its options, the
top's name, and its error."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...ir import Graph, Op
from ...timing import DelayModel, delay_model
from ...names import SV_RESERVED, SV_TOP_PREFIXES
from ..hls import top_name

SUPPORTED = frozenset({Op.DENSE, Op.CONV, Op.AVGPOOL, Op.MAXPOOL, Op.TABLE, Op.SOFTMAX, Op.RELU, Op.LEAKY_RELU,
                       Op.CLIP, Op.REQUANTIZE, Op.ADD, Op.MUL,
                       Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})
WIRING = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.CONCAT})
# A look-up table is a function with one line per input code (table_function).  Verilator's
# build grows with the lines: a sigmoid and a softmax (three tables) took 6 min to build at
# 2**16 entries each on a busy 2-core machine (bit-exact), so the limit is 2**14.
RTL_MAX_TABLE_BITS = 14


class RTLBackendError(UserError):
    """The model uses something the RTL backend cannot express (the message says what)."""


@dataclass(frozen=True)
class RTLOptions:
    clock_ns: float = 5.0
    # adder levels per register; None: by timing, from the family's delay model (compiler/timing.py)
    levels_per_stage: int | None = None
    family: str = "xcup"  # the part's family (targets.family_of): its delay model
    csd_max_digits: int = 3  # more non-zero CSD digits: a `*`
    dsp_min_width: int = 28  # wider products: a `*`
    interface: str = "ports"  # "axis": also an AXI4-Stream top, <model>_axis.sv (see axis_context)
    adder_graph: bool = True  # sums as shared adder graphs (compiler/adder_graph.py), else fg_adder_tree per output
    adder_slack: int | None = None  # adder levels beyond a layer's least depth; None: the trees' stages
    # adder graphs with three-term adders (rtl/fg_add3.sv) on this carry chain: 8 CARRY8, 4 CARRY4; 0: two-term
    ternary_chain: int = 0
    architecture: str = "parallel"  # "stream": engines over pixel streams (stream.py; BuildConfig.architecture)

    @property
    def delay(self) -> DelayModel | None:
        """The delay model the pipeline is placed by; None when ``levels_per_stage`` is given."""
        return None if self.levels_per_stage is not None else delay_model(self.family)

    @property
    def levels(self) -> int:
        """Adder levels per stage of the fixed-depth trees (fg_adder_tree, fg_reduce_tree, the
        folded and stream cores): ``levels_per_stage``, else what the delay model fits in a clock."""
        if self.levels_per_stage is not None:
            return self.levels_per_stage
        return delay_model(self.family).levels_per_stage(self.clock_ns)


def rtl_top_name(graph: Graph) -> str:
    """The generated top module's name (and file name): the HLS top name, unless that is a
    SystemVerilog keyword, starts a Verilator directive, or starts like the library's modules
    (fg_: a top fg_add3 would be rtl/fg_add3.sv's module, and a stream top's cores are named
    <top>_<layer>)."""
    name = top_name(graph)
    if name.lower().startswith(SV_TOP_PREFIXES) or name.startswith("fg_"):
        name = f"t_{name}"
    return f"{name}_top" if name in SV_RESERVED else name
