"""FPGA targets: board presets, their parts, and the parts' capacities (for reports)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Part:
    name: str
    family: str  # yosys synth_xilinx -family: xc7, xcu or xcup; or ecp5 (Lattice, yosys synth_ecp5)
    lut: int  # LUT6 on Xilinx parts, LUT4 on ECP5
    ff: int
    dsp: int  # DSP48 slices; ECP5: MULT18X18D
    bram36: int  # 36 Kb block RAMs; ECP5: DP16KD (18 Kb) / 2


PARTS = {p.name: p for p in (
    Part("xc7z020clg400-1", "xc7", 53_200, 106_400, 220, 140),
    Part("xczu9eg-ffvb1156-2-e", "xcup", 274_080, 548_160, 2_520, 912),
    Part("xczu7ev-ffvc1156-2-e", "xcup", 230_400, 460_800, 1_728, 312),
    Part("xcu50-fsvh2104-2-e", "xcup", 872_000, 1_743_000, 5_952, 1_344),
    Part("xcu250-figd2104-2L-e", "xcup", 1_728_000, 3_456_000, 12_288, 2_688),
    Part("xcvu9p-flga2104-2L-e", "xcup", 1_182_240, 2_364_480, 6_840, 2_160),
    # Lattice ECP5 (data sheet FPGA-DS-02012): 83,640 / 24,288 LUT4s, 208 / 56 DP16KD, 156 / 28 multipliers
    Part("LFE5U-85F-6BG381C", "ecp5", 83_640, 83_640, 156, 104),
    Part("LFE5U-25F-8MG285C", "ecp5", 24_288, 24_288, 28, 28),
)}

BOARDS = {
    "pynq-z2": "xc7z020clg400-1",
    "zcu102": "xczu9eg-ffvb1156-2-e",
    "zcu104": "xczu7ev-ffvc1156-2-e",
    "alveo-u50": "xcu50-fsvh2104-2-e",
    "alveo-u250": "xcu250-figd2104-2L-e",
    "vu9p": "xcvu9p-flga2104-2L-e",
    "ulx3s": "LFE5U-85F-6BG381C",  # Radiona ULX3S, 85F variant
    "orangecrab": "LFE5U-25F-8MG285C",  # Greg Davill's OrangeCrab r0.2, 25F variant
}

DEFAULT_PART = BOARDS["vu9p"]


# A Xilinx/AMD part name: xc (commercial), xa (automotive) or xq (defence) and the device,
# then dash-separated package, speed grade, temperature and revision fields
# (xc7z020clg400-1, xczu9eg-ffvb1156-2-e, xcu250-figd2104-2L-e, xcvc1902-vsva2197-2MP-e-S).
# The part reaches Tcl scripts (build_prj.tcl, vivado_synth.tcl): nothing else is let through.
PART_PATTERN = re.compile(r"x[caq][a-z0-9]{2,30}(-[a-z0-9]{1,12}){1,5}", re.IGNORECASE)
# A Lattice ECP5 part: LFE5U (or LFE5UM / LFE5UM5G with SERDES), size, speed grade, package and pins,
# temperature: LFE5U-85F-6BG381C, LFE5U-25F-8MG285C.
ECP5_PATTERN = re.compile(r"LFE5(U|UM|UM5G)-(12|25|45|85)F-([678])(BG256|MG285|BG381|BG554|BG756)([CI])",
                          re.IGNORECASE)
# nextpnr-ecp5's --package for the part name's package code
_ECP5_PACKAGES = {"BG256": "CABGA256", "MG285": "CSFBGA285", "BG381": "CABGA381", "BG554": "CABGA554",
                  "BG756": "CABGA756"}


def check_part(part: str) -> str:
    """``part`` when it is a Xilinx (PART_PATTERN) or ECP5 (ECP5_PATTERN) part name, else a UserError."""
    if not isinstance(part, str) or not (PART_PATTERN.fullmatch(part) or ECP5_PATTERN.fullmatch(part)):
        examples = ", ".join(list(BOARDS.values())[:3])
        raise UserError(f"--part {part!r} is not a Xilinx or Lattice ECP5 part name: expected letters and digits "
                        f"starting with xc, xa or xq, then dash-separated fields for package, speed grade and "
                        f"temperature (e.g. {examples}), or an ECP5 part such as LFE5U-85F-6BG381C; or give a board "
                        f"preset with --board ({', '.join(BOARDS)})")
    return part


def ecp5_device(part: str) -> tuple[str, str, int]:
    """nextpnr-ecp5's device (--85k, --um5g-45k, ...), package (--package) and speed grade (--speed)
    for an ECP5 part name."""
    m = ECP5_PATTERN.fullmatch(part)
    if m is None:
        raise UserError(f"part {part!r} is not a Lattice ECP5 part (e.g. LFE5U-85F-6BG381C)")
    variant, size, speed, package, _ = m.groups()
    prefix = {"U": "", "UM": "um-", "UM5G": "um5g-"}[variant.upper()]
    return f"{prefix}{size}k", _ECP5_PACKAGES[package.upper()], int(speed)


def resolve_part(board: str | None, part: str | None) -> str:
    """The part for ``--board`` or ``--part``.  A part is checked against the part-name
    grammar only (the vendor tools know which parts exist); a board preset's name given as
    ``--part`` means its part."""
    if board is not None and part is not None:
        raise UserError("give --board or --part, not both")
    if board is None and part is not None and part.lower() in BOARDS:
        board = part
    if board is not None:
        key = board.lower()
        if key not in BOARDS:
            listing = ", ".join(f"{b} ({p})" for b, p in BOARDS.items())
            raise UserError(f"unknown board {board!r}; presets are: {listing}. Or give --part PART.")
        return BOARDS[key]
    return DEFAULT_PART if part is None else check_part(part)


# bits per carry primitive each family's three-term adders (rtl/fg_add3.sv) are built on: CARRY4 on
# 7-series, CARRY8 on UltraScale and UltraScale+
# (ECP5 has no entry: its LUT4s take two terms per bit, so its adders are two-term)
CARRY_CHAIN_BITS = {"xc7": 4, "xcu": 8, "xcup": 8}


def family_of(part: str) -> str:
    """The part's family: yosys synth_xilinx's xc7 (7-series and Zynq-7000), xcu (UltraScale),
    xcup (UltraScale+, Zynq UltraScale+, Alveo); or ecp5 (Lattice ECP5)."""
    if part in PARTS:
        return PARTS[part].family
    if ECP5_PATTERN.fullmatch(part):
        return "ecp5"
    name = part.lower()
    if name.startswith(("xc7", "xa7", "xq7")):
        return "xc7"
    device = name.split("-")[0]  # xcvu9p, xcku040, xczu9eg
    if device.startswith(("xcku", "xcvu")):
        return "xcup" if device.endswith("p") else "xcu"
    if device.startswith(("xczu", "xcu", "xck", "xcau")):
        return "xcup"
    raise UserError(f"part {part!r}: unknown Xilinx family (expected a 7-series xc7..., UltraScale xcku/xcvu..., "
                    f"or UltraScale+ xczu/xcu/xcvu...p part)")
