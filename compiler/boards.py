"""Boards `finegrain build --board` places a design on: the oscillator and the LEDs of each
open ECP5 board, with the sites and I/O standards of its public constraint files, and the
Xilinx boards, which are built out of context with Vivado (no pins)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .targets import BOARDS, family_of


@dataclass(frozen=True)
class Led:
    role: str  # heartbeat, done, pass, fail: what the board top drives it with
    port: str  # the board top's port (and the LPF's COMP)
    site: str
    label: str  # what the board's silkscreen or schematic calls it


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    part: str
    clock_port: str
    clock_site: str
    clock_mhz: float
    clock_io: str  # the clock pin's IOBUF attributes
    led_io: str  # the LEDs'
    leds: tuple[Led, ...]
    active_low: bool  # the LEDs light when their pin is low
    pins_from: str  # the public constraint file the sites are checked against

    @property
    def family(self) -> str:
        return family_of(self.part)

    def led(self, role: str) -> Led | None:
        return next((led for led in self.leds if led.role == role), None)


# The ULX3S (Radiona): 25 MHz oscillator on G2, eight active-high LEDs led[0..7] on B2 C2 C1 D2
# D1 E2 E1 H3, all LVCMOS33 (LEDs with DRIVE=4), as in emard/ulx3s doc/constraints/ulx3s_v20.lpf.
ULX3S = Board(
    name="ulx3s", title="ULX3S (ECP5-85F)", part=BOARDS["ulx3s"], clock_port="clk_25mhz", clock_site="G2",
    clock_mhz=25.0, clock_io="IO_TYPE=LVCMOS33 PULLMODE=NONE",
    led_io="IO_TYPE=LVCMOS33 PULLMODE=NONE DRIVE=4",
    leds=(Led("heartbeat", "led_heartbeat", "B2", "led[0]"), Led("done", "led_done", "C2", "led[1]"),
          Led("pass", "led_pass", "C1", "led[2]"), Led("fail", "led_fail", "D2", "led[3]")),
    active_low=False, pins_from="emard/ulx3s doc/constraints/ulx3s_v20.lpf (ULX3S v2.x and v3.0.x)")

# The OrangeCrab r0.2 (Greg Davill): 48 MHz oscillator clk48 on A9, one RGB LED rgb_led0 with red on K4,
# green on M3, blue on J3, LVCMOS33 (litex-boards litex_boards/platforms/gsd_orangecrab.py, _io_r0_2);
# the LED's channels light when driven low (the OrangeCrab examples' blink.v drives ~counter).
# Three channels for four roles: green is pass (done, all matched), red fail, blue the heartbeat;
# done shows as green or red.
ORANGECRAB = Board(
    name="orangecrab", title="OrangeCrab r0.2 (ECP5-25F)", part=BOARDS["orangecrab"], clock_port="clk48",
    clock_site="A9", clock_mhz=48.0, clock_io="IO_TYPE=LVCMOS33", led_io="IO_TYPE=LVCMOS33",
    leds=(Led("heartbeat", "led_heartbeat", "J3", "rgb_led0 blue"), Led("pass", "led_pass", "M3", "rgb_led0 green"),
          Led("fail", "led_fail", "K4", "rgb_led0 red")),
    active_low=True, pins_from="litex-hub/litex-boards litex_boards/platforms/gsd_orangecrab.py (_io_r0_2)")

ECP5_BOARDS = {b.name: b for b in (ULX3S, ORANGECRAB)}
# Xilinx presets: built out of context by Vivado (synth_design -mode out_of_context), no board top
XILINX_BOARDS = {name: part for name, part in BOARDS.items() if family_of(part) != "ecp5"}


def board_named(name: str) -> Board | str:
    """The ECP5 board called ``name``, or the part of a Xilinx preset; else a UserError."""
    key = name.lower()
    if key in ECP5_BOARDS:
        return ECP5_BOARDS[key]
    if key in XILINX_BOARDS:
        return XILINX_BOARDS[key]
    raise UserError(f"unknown board {name!r} for finegrain build; open boards (yosys, nextpnr, ecppack: a "
                    f"bitstream): {', '.join(ECP5_BOARDS)}; Xilinx presets (Vivado, out of context): "
                    f"{', '.join(XILINX_BOARDS)}")


def lpf_text(board: Board, top: str) -> str:
    """The board's LPF for ``top``: the clock and the LEDs it drives, nothing else."""
    lines = [f"# {board.title}: pins of {top} (finegrain build --board {board.name}).",
             f"# Sites and I/O standards as in {board.pins_from}.",
             "# No FREQUENCY line: nextpnr times the design at --clock-ns (its --freq); the board runs it at",
             f"# the oscillator's {board.clock_mhz:g} MHz.",
             f'LOCATE COMP "{board.clock_port}" SITE "{board.clock_site}";',
             f'IOBUF PORT "{board.clock_port}" {board.clock_io};']
    for led in board.leds:
        lines += [f'LOCATE COMP "{led.port}" SITE "{led.site}";  # {led.label}: {led.role}',
                  f'IOBUF PORT "{led.port}" {board.led_io};']
    return "\n".join(lines) + "\n"
