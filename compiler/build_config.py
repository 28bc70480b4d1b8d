"""`BuildConfig`: every option that shapes a build, validated when it is made and saved as
``config.json`` beside the outputs, with the limits of those options.

Separate from `compiler.project`, which holds the `Project` object and the compile flow:
this is the record of how a build was made, which unpickling an output folder's ``ir.pkl``
needs and which the budget, calibration, sweep and board code read.  The backends whose
options it builds (`BuildConfig.hls_options`, `BuildConfig.rtl_options`) are imported by
those methods, not here, so unpickling ``ir.pkl`` loads no backend (tests/test_startup.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import __version__
from .argnames import option
from .errors import UserError
from .passes.choose_multipliers import MAX_MULTIPLIER_BITS, MAX_RESCALE_BITS
from .targets import CARRY_CHAIN_BITS, DEFAULT_PART, family_of

if TYPE_CHECKING:
    from .backends.hls import HLSOptions
    from .backends.rtl import RTLOptions
    from .ir import Graph

BACKENDS = ("hls", "rtl")
ARCHITECTURES = ("auto", "parallel", "stream")
# Limits of the build options: a clock period outside this range (10 GHz .. 100 kHz) is a typo, and
# a reuse factor is a C++ int template argument of the HLS kernels.
CLOCK_NS_RANGE = (0.1, 10_000.0)
MAX_REUSE_FACTOR = 2**31 - 1


@dataclass(frozen=True)
class BuildConfig:
    """Every option that shapes a build; saved as config.json beside the outputs."""

    model: str
    plan: str
    output_dir: str | None = None
    check_ir: bool = True  # verify the IR after every pass
    backends: tuple[str, ...] = ("hls", "rtl")
    part: str = DEFAULT_PART
    board: str | None = None
    clock_ns: float = 5.0
    reuse_factor: int = 1  # every layer, unless `layers` says otherwise
    strategy: str = "latency"
    layers: dict = field(default_factory=dict)  # layer name -> {"reuse_factor": N, "strategy": ...}
    rtl_levels_per_stage: int | None = None  # adder levels per register; None: by timing (compiler/timing.py)
    rtl_csd_max_digits: int = 3  # constant products with more non-zero CSD digits use `*`
    rtl_dsp_min_width: int = 28  # products wider than this use `*`
    rtl_adder_graph: bool = True  # each layer's sums as one shared adder graph (compiler/adder_graph.py);
    # False: every output its own fg_adder_tree over its products
    rtl_adder_slack: int | None = None  # the graph's adder levels: a layer's least depth + this; None:
    # within the pipeline stages of the per-output trees
    rtl_ternary_adders: bool = True  # adder graphs with three-term adders (rtl/fg_add3.sv: LUT6_2 + the part's
    # carry chain, one LUT per bit for three terms as for two); False: two-term adders only
    rtl_interface: str = "ports"  # "axis": also OUT/rtl/<model>_axis.sv, an AXI4-Stream top around <model>
    architecture: str = "auto"  # "parallel": every output at once; "stream": layers as a pipeline of engines over
    # pixel streams (both backends); "auto": parallel up to DEFAULT_RTL_MAX_PRODUCTS constant products, else stream
    rescale_bits: int = MAX_MULTIPLIER_BITS  # widest rescale multiplier of a quantized model (choose_multipliers)
    # a budget the stream architecture's per-layer folding is chosen from (compiler/budget.py)
    target_ii: int | None = None  # cycles per image at most, at the least area
    max_lut: int | None = None  # else: the fastest that fits these (and always the part)
    max_dsp: int | None = None
    finegrain_version: str = __version__

    def __post_init__(self):
        unknown = set(self.backends) - set(BACKENDS)
        if unknown:
            raise UserError(f"unknown backend(s) {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
        twice = sorted({b for b in self.backends if self.backends.count(b) > 1})
        if twice:
            raise UserError(f"{option('backends')} names {' and '.join(map(repr, twice))} twice; list each backend "
                            f"once")
        lo, hi = CLOCK_NS_RANGE
        number = isinstance(self.clock_ns, (int, float)) and not isinstance(self.clock_ns, bool)
        if not (number and math.isfinite(self.clock_ns) and lo <= self.clock_ns <= hi):
            raise UserError(f"the clock period ({option('clock_ns')}) must be a positive, finite number of ns "
                            f"from {lo} to {hi}, got {self.clock_ns!r}")
        count = isinstance(self.reuse_factor, int) and not isinstance(self.reuse_factor, bool)
        if not count or not 1 <= self.reuse_factor <= MAX_REUSE_FACTOR:
            raise UserError(f"the reuse factor ({option('reuse_factor')}) must be a positive integer of at most "
                            f"{MAX_REUSE_FACTOR:,} (1 = fully parallel), got {self.reuse_factor!r}")
        hls = self.hls_options()  # validates reuse factors and strategies
        for name, arch in hls.layers.items():
            if arch.reuse_factor > MAX_REUSE_FACTOR:
                raise UserError(f"layer configuration: layer {name!r} has reuse_factor {arch.reuse_factor}, more "
                                f"than the {MAX_REUSE_FACTOR:,} the HLS project can hold (a C++ int)")
        for name in ("rtl_csd_max_digits", "rtl_dsp_min_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UserError(f"{name} must be a non-negative integer, got {value!r}")
        slack = self.rtl_adder_slack
        if slack is not None and (not isinstance(slack, int) or isinstance(slack, bool) or slack < 0):
            raise UserError(f"the adder slack ({option('rtl_adder_slack')}) must be a non-negative integer of "
                            f"adder levels, got {slack!r}")
        if not isinstance(self.rtl_adder_graph, bool):
            raise UserError(f"rtl_adder_graph must be true or false, got {self.rtl_adder_graph!r}")
        if not isinstance(self.rtl_ternary_adders, bool):
            raise UserError(f"rtl_ternary_adders must be true or false, got {self.rtl_ternary_adders!r}")
        lps = self.rtl_levels_per_stage
        if lps is not None and (not isinstance(lps, int) or lps < 1):
            raise UserError(f"rtl_levels_per_stage must be a positive integer, got {lps!r}")
        if not isinstance(self.rescale_bits, int) or isinstance(self.rescale_bits, bool) or not \
                1 <= self.rescale_bits <= MAX_RESCALE_BITS:
            raise UserError(f"the rescale multiplier width ({option('rescale_bits')}) must be an integer from 1 to "
                            f"{MAX_RESCALE_BITS}, got {self.rescale_bits!r}")
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.architecture!r} ({option('architecture')}); choose from "
                            f"{', '.join(ARCHITECTURES)}")
        self._check_budget()
        from .backends.rtl import INTERFACES as RTL_INTERFACES

        if self.rtl_interface not in RTL_INTERFACES:
            raise UserError(f"unknown RTL interface {self.rtl_interface!r}; choose from {', '.join(RTL_INTERFACES)}")

    def _check_budget(self) -> None:
        given = [option(name) for name in ("target_ii", "max_lut", "max_dsp")
                 if getattr(self, name) is not None]
        for name, least in (("target_ii", 1), ("max_lut", 1), ("max_dsp", 0)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise UserError(f"{option(name)} must be an integer of at least {least}, got {value!r}")
        if given and self.architecture == "parallel":
            raise UserError(f"{' and '.join(given)} choose each layer's folding in the stream architecture, but "
                            f"{option('architecture', 'parallel')} builds every layer fully parallel (II 1); use "
                            f"{option('architecture', 'stream')} or 'auto'")
        if given and self.reuse_factor != 1:
            raise UserError(f"give {option('reuse_factor')} or a budget ({' and '.join(given)}), not both: the budget "
                            f"chooses each layer's reuse factor")

    def hls_options(self) -> HLSOptions:
        from .backends.hls import HLSOptions, LayerArch, parse_layer_config

        return HLSOptions(part=self.part, clock_ns=float(self.clock_ns),
                          default=LayerArch(self.reuse_factor, self.strategy),
                          layers=parse_layer_config(self.layers, "layer configuration"),
                          io="stream" if self.architecture == "stream" else "parallel",
                          adder_slack=self.rtl_adder_slack)

    def reuse_factors(self, graph: Graph) -> dict[str, int]:
        """Each layer's (IR node's) reuse factor: its --layer-config entry, else --reuse-factor."""
        hls = self.hls_options()
        return {node.name: hls.arch(node).reuse_factor for node in graph.nodes}

    def rtl_options(self) -> RTLOptions:
        from .backends.rtl import RTLOptions

        return RTLOptions(clock_ns=float(self.clock_ns), levels_per_stage=self.rtl_levels_per_stage,
                          family=family_of(self.part),
                          csd_max_digits=self.rtl_csd_max_digits, dsp_min_width=self.rtl_dsp_min_width,
                          interface=self.rtl_interface, adder_graph=self.rtl_adder_graph,
                          adder_slack=self.rtl_adder_slack,
                          ternary_chain=CARRY_CHAIN_BITS.get(family_of(self.part), 0) if self.rtl_ternary_adders and
                          self.rtl_adder_graph else 0,
                          architecture="stream" if self.architecture == "stream" else "parallel")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
