"""`finegrain build OUT --board NAME`: a compiled folder's RTL on a board.

For an open ECP5 board (compiler/boards.py) the model is wrapped in a board top
(templates/rtl/board.sv.j2) that feeds it test vectors from a ROM, one per clock, compares
every output with the emulator's, ``latency`` cycles later, and shows the verdict on the
board's LEDs; yosys synth_ecp5, nextpnr-ecp5 and ecppack (compiler/verify/pnr.py) place it on
the board's pins (OUT/build/<board>.lpf) and write OUT/build/<model>_board.bit.

The model is not optimized away: its inputs come from a ROM addressed by a counter (block RAM
or LUTs, yosys's choice) through two registers, and every output bit reaches the comparison
that drives the fail LED.  The build checks it: the model alone is synthesized too (yosys
only, the same script), and the board top must hold at least the model's LUT4s, carry cells,
flip-flops and multipliers (report.json's ``model_kept``; the rest is the wrapper's
``overhead``).

A Xilinx preset runs Vivado out of context on the model's own top (no board top, no pins):
OUT/build/vivado_build.tcl, run when ``vivado`` is on PATH.

OUT/build is written whole: into a temporary folder inside OUT, renamed into place when the
build succeeds (a failed build leaves the previous OUT/build, or none).  Results go to
report.json's ``build`` and report.html.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .boards import Board, board_named, lpf_text
from .errors import UserError
from .output_folder import locked, read_json, signals_blocked
from .progress import elapsed
from .targets import PARTS

DEFAULT_RANDOM_VECTORS = 59  # and the five extreme vectors: 64 in the ROMs
EXTREME_VECTORS = 5  # csim_vectors appends them after the random ones
MAX_VECTORS = 16384
DP16KD_BITS = 18 * 1024
# DP16KD read-port shapes (depth, width): a ROM takes ceil(depth/d) * ceil(width/w) blocks of the best one
DP16KD_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
RESET_BITS = 4  # the power-on reset lasts 2**(RESET_BITS-1) cycles
# cells whose counts show the model inside the board top (yosys synth_ecp5 names)
KEPT_CELLS = ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D")


@dataclass
class BuildResult:
    entry: dict  # report.json's "build"
    lines: list[str]  # the summary finegrain build prints
    warnings: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return bool(self.entry.get("met"))


def build_board(out, board_name: str | None = None, clock_ns: float | None = None,
                vectors: int = DEFAULT_RANDOM_VECTORS, seed: int = 0) -> BuildResult:
    """Build the compiled folder ``out`` for ``board_name`` (default: the board it was compiled
    for): see the module's docstring."""
    from .build_config import CLOCK_NS_RANGE
    from .project import load_project

    out = Path(out)
    if board_name is not None:
        board_named(board_name)  # an unknown board is named before the folder is read
    project = load_project(out)
    if board_name is None:
        board_name = project.config.board
        if board_name is None:
            raise UserError(f"{str(out)!r} was compiled for part {project.config.part}, not for a board: give "
                            f"--board NAME (compile with --board NAME for its part)")
    board = board_named(board_name)
    part = board.part if isinstance(board, Board) else board
    if project.config.part != part:
        raise UserError(f"{str(out)!r} was compiled for part {project.config.part}, and the {board_name} board has "
                        f"{part}: compile the model again with --board {board_name} (the RTL's pipeline and "
                        f"adders depend on the part)")
    clock_ns = float(project.config.clock_ns if clock_ns is None else clock_ns)
    lo, hi = CLOCK_NS_RANGE
    if not (math.isfinite(clock_ns) and lo <= clock_ns <= hi):
        raise UserError(f"--clock-ns must be a clock period from {lo} to {hi:g} ns, got {clock_ns!r}")
    schedule = _parallel_schedule(out, project.graph)
    model = _model_name(out, project.graph)
    with locked(out):
        _remove_stale(out)
        if isinstance(board, Board):
            if not 0 <= vectors <= MAX_VECTORS - EXTREME_VECTORS:
                raise UserError(f"--vectors must be between 0 and {MAX_VECTORS - EXTREME_VECTORS} (the ROMs hold "
                                f"them and the {EXTREME_VECTORS} extreme vectors), got {vectors}")
            result = _build_ecp5(out, project, board, model, schedule, clock_ns, vectors, seed)
        else:
            result = _build_vivado(out, project, board_name, part, model, clock_ns)
        from .report_html import write_report_html
        from .report_json import update_report

        update_report(out, "build", result.entry)
        write_report_html(out, project)
    return result


# --- checks ------------------------------------------------------------------------------
def _parallel_schedule(out: Path, graph) -> dict:
    """OUT/rtl/schedule.json of a fully parallel top with the IR's ports."""
    path = out / "rtl" / "schedule.json"
    if not path.is_file():
        raise UserError(f"{str(out)!r} has no RTL to build: compile it with --backend rtl (or hls,rtl)")
    schedule = read_json(path, "RTL schedule")
    if schedule.get("architecture") == "stream":
        raise UserError(f"{str(out)!r} holds the stream architecture (layers as engines over pixel streams), and "
                        f"the board top feeds one whole input vector per clock to a fully parallel top: compile "
                        f"with --arch parallel")
    try:
        ports = [(p["name"], p["onnx"], int(p["width"]), int(p["size"]))
                 for p in [*schedule["inputs"], *schedule["outputs"]]]
        latency = schedule["latency_cycles"]
    except (KeyError, TypeError, ValueError):
        ports, latency = None, None
    names = [onnx for _, onnx, _, _ in ports or []]
    if ports is None or not isinstance(latency, int) or names != [*graph.inputs, *graph.outputs]:
        raise UserError(f"RTL schedule {str(path)!r} is damaged or does not describe this folder's model; compile "
                        f"the folder again")
    return schedule


def _model_name(out: Path, graph) -> str:
    from .backends.rtl import rtl_top_name

    model = rtl_top_name(graph)
    if not (out / "rtl" / f"{model}.sv").is_file():
        raise UserError(f"{str(out / 'rtl' / (model + '.sv'))!r} is missing: compile the folder again")
    return model


def _remove_stale(out: Path) -> None:
    """Temporary build folders a killed build left (under the lock: none is in use)."""
    for path in out.glob(".build.new-*"):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _new_build_folder(out: Path):
    """A temporary folder inside ``out`` that becomes OUT/build when the block succeeds."""
    tmp = Path(tempfile.mkdtemp(prefix=".build.new-", dir=out))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = out / "build"
    with signals_blocked():
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".build.new-old-", dir=out))
            os.replace(target, old / "build")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)


# --- the ECP5 flow -----------------------------------------------------------------------
def _build_ecp5(out: Path, project, board: Board, model: str, schedule: dict, clock_ns: float, vectors: int,
                seed: int) -> BuildResult:
    from .backends.rtl import rtl_sources
    from .targets import ecp5_device
    from .verify.pnr import run_pnr

    part = PARTS[board.part]
    context = board_context(project, board, model, schedule, vectors, seed)
    _check_rom_size(context, part, vectors)
    top = context["top"]
    device, package, speed = ecp5_device(board.part)
    sources = rtl_sources(out / "rtl", model)
    with _new_build_folder(out) as tmp:
        (tmp / f"{top}.sv").write_text(render_board_top(context))
        (tmp / f"{board.name}.lpf").write_text(lpf_text(board, top))
        with elapsed(f"yosys, nextpnr-ecp5 and ecppack: {top} for the {board.title}"):
            pnr = run_pnr([*sources, tmp / f"{top}.sv"], top, device=device, package=package, speed=speed,
                          clock_ns=clock_ns, clock=board.clock_port, lpf=tmp / f"{board.name}.lpf", bitstream=True,
                          work=tmp / "pnr", timeout=None)
            model_cells = synth_cells(sources, model)
        bit = tmp / f"{top}.bit"
        os.replace(pnr.bitstream, bit)
        entry = _ecp5_entry(out, board, part, pnr, model_cells, context, clock_ns, bit)
    return BuildResult(entry, _ecp5_summary(out, entry), _ecp5_warnings(entry))


def board_context(project, board: Board, model: str, schedule: dict, vectors: int, seed: int) -> dict:
    """The board top's template context: ports, ROM words (the emulator's vectors), LEDs."""
    from .verify.vectors import csim_vectors, emulated_rows

    graph = project.graph
    count, rows_in, rows_out = emulated_rows(graph, csim_vectors(graph, vectors, seed=seed))
    in_ports, in_width = _word_layout(schedule["inputs"])
    out_ports, out_width = _word_layout(schedule["outputs"])
    clock_hz = board.clock_mhz * 1e6
    heartbeat_bit = max(1, round(math.log2(clock_hz / 2)))  # toggles about once a second
    meanings = {"heartbeat": "blinks while the design runs (the clock and the bitstream work)",
                "done": "every vector has been checked once", "pass": "done, and every output bit matched",
                "fail": "some output differed (bits or timing); stays lit"}
    return {
        "top": f"{model}_board", "model": model, "version": __version__, "board": board, "seed": seed,
        "source": project.source(), "vectors": count, "random_vectors": vectors,
        "latency": schedule["latency_cycles"], "index_width": max(1, (count - 1).bit_length()),
        "predicted": schedule.get("timing"),
        "in_ports": in_ports, "out_ports": out_ports, "in_width": in_width, "out_width": out_width,
        "input_words": _rom_words(rows_in, schedule["inputs"], in_width),
        "expected_words": _rom_words(rows_out, schedule["outputs"], out_width),
        "reset_bits": RESET_BITS, "reset_cycles": 1 << (RESET_BITS - 1),
        "heartbeat_bit": heartbeat_bit, "heartbeat_hz": f"{clock_hz / (1 << (heartbeat_bit + 1)):.2g}",
        "leds": [{"port": led.port, "role": led.role, "site": led.site, "label": led.label,
                  "meaning": meanings[led.role]} for led in board.leds],
    }


def _word_layout(ports: list[dict]) -> tuple[list[dict], int]:
    """Each port's bits in the ROM word (the first port lowest) and the word's width."""
    layout, lsb = [], 0
    for p in ports:
        bits = p["width"] * p["size"]
        layout.append({"name": p["name"], "bits": bits, "lsb": lsb, "msb": lsb + bits - 1})
        lsb += bits
    return layout, lsb


def _rom_words(rows: list, ports: list[dict], width: int) -> list[str]:
    """One SystemVerilog literal per vector: each port's elements packed as the top's port
    (element i at [i*W +: W], two's complement), the ports side by side."""
    count = len(rows[0]) if rows else 0
    words = []
    for v in range(count):
        word, lsb = 0, 0
        for p, port_rows in zip(ports, rows):
            mask = (1 << p["width"]) - 1
            for i, value in enumerate(port_rows[v]):
                word |= (int(value) & mask) << (lsb + i * p["width"])
            lsb += p["width"] * p["size"]
        words.append(f"{width}'h{word:0{(width + 3) // 4}x}")
    return words


def _check_rom_size(context: dict, part, vectors: int) -> None:
    """The ROMs must fit the part's block RAM (the model's own block RAM aside)."""
    blocks = sum(_dp16kd_blocks(context["vectors"], context[w]) for w in ("in_width", "out_width"))
    available = part.bram36 * 2
    if blocks > available:
        per_vector = context["in_width"] + context["out_width"]
        raise UserError(f"the board top's ROMs of {context['vectors']} vectors x {per_vector:,} bits "
                        f"({context['in_width']:,} input and {context['out_width']:,} output bits each) need "
                        f"{blocks} DP16KD block RAMs, and the {part.name} has {available}: give fewer --vectors "
                        f"(now {vectors}; the ROMs hold them and {EXTREME_VECTORS} extreme ones), or build a model "
                        f"with narrower inputs and outputs")


def _dp16kd_blocks(depth: int, width: int) -> int:
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in DP16KD_SHAPES)


def render_board_top(context: dict) -> str:
    from .backends.hls import template_environment
    from .backends.rtl import TEMPLATES

    return template_environment(TEMPLATES).get_template("board.sv.j2").render(**context)


def synth_cells(sources: list[Path], top: str) -> dict[str, int]:
    """yosys synth_ecp5's cells of ``top`` alone (the script run_pnr synthesizes with), cached
    beside run_pnr's entries by the tool, the script and the source texts."""
    from .verify.pnr import PnrError, _cache_dir, _cells, synth_ecp5_script
    from .verify.synth import find_yosys, yosys_version

    yosys = find_yosys()
    names = [Path(s).name for s in sources]
    script = synth_ecp5_script(names, top)
    h = hashlib.sha256(json.dumps([yosys_version(yosys), script]).encode())
    for s in sources:
        h.update(Path(s).read_bytes())
    entry = _cache_dir() / f"cells-{h.hexdigest()[:32]}.json"
    if entry.is_file():
        return json.loads(entry.read_text())
    with tempfile.TemporaryDirectory(prefix="finegrain-cells-") as tmp:
        work = Path(tmp)
        for s in sources:
            (work / Path(s).name).symlink_to(Path(s).resolve())
        (work / "synth.ys").write_text(script)
        run = subprocess.run([*yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work, capture_output=True,
                             text=True, errors="replace")
        if run.returncode != 0 or not (work / "stat.json").is_file():
            tail = "\n".join((run.stdout + run.stderr).splitlines()[-10:])
            raise PnrError(f"yosys synth_ecp5 of {top} alone failed (exit {run.returncode}):\n{tail}")
        cells = _cells(json.loads((work / "stat.json").read_text()), top)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp_entry = entry.with_suffix(f".{os.getpid()}.tmp")  # whole or absent, as run_pnr's entries
    tmp_entry.write_text(json.dumps(cells))
    os.replace(tmp_entry, entry)
    return cells


def wrapper_overhead(board_cells: dict, model_cells: dict) -> dict[str, int]:
    """The board top's cells beyond the model's own, per KEPT_CELLS type."""
    return {k: board_cells.get(k, 0) - model_cells.get(k, 0) for k in KEPT_CELLS}


def model_kept(overhead: dict) -> bool:
    """The board top holds at least the model's cells of every KEPT_CELLS type: synthesis did
    not remove part of it (a model whose outputs reached nothing would be removed whole)."""
    return all(v >= 0 for v in overhead.values())


def _utilisation(cells: dict, part) -> dict:
    available = {"LUT4": part.lut, "TRELLIS_FF": part.ff, "CCU2C": part.lut // 2, "DP16KD": part.bram36 * 2,
                 "MULT18X18D": part.dsp}
    return {name: {"used": cells.get(name, 0), "available": n, "percent": round(100 * cells.get(name, 0) / n, 2)}
            for name, n in available.items()}


def _ecp5_entry(out: Path, board: Board, part, pnr, model_cells: dict, context: dict, clock_ns: float,
                bit: Path) -> dict:
    overhead = wrapper_overhead(pnr.cells, model_cells)
    final = out / "build" / bit.name
    return {
        "flow": "ecp5", "board": board.name, "part": board.part, "device": pnr.device, "package": pnr.package,
        "speed": pnr.speed, "top": context["top"], "clock_ns": clock_ns, "clock_mhz": round(1000 / clock_ns, 3),
        "fmax_mhz": pnr.fmax_mhz, "met": pnr.met, "critical_path_ns": pnr.critical_path_ns, "path": pnr.path,
        "board_clock_mhz": board.clock_mhz, "runs_at_board_clock": pnr.fmax_mhz >= board.clock_mhz,
        "utilisation": _utilisation(pnr.cells, part), "cells": pnr.cells, "used": pnr.used,
        "model_cells": {k: model_cells.get(k, 0) for k in KEPT_CELLS}, "overhead": overhead,
        "model_kept": model_kept(overhead),
        "vectors": context["vectors"], "latency_cycles": context["latency"],
        # the delay model's critical path of the model (compile's schedule.json), beside nextpnr's
        **({"predicted_critical_ns": context["predicted"]["critical_ns"]} if context.get("predicted") else {}),
        "bitstream": str(final), "bitstream_bytes": bit.stat().st_size,
        "lpf": str(out / "build" / f"{board.name}.lpf"), "board_top": str(out / "build" / f"{context['top']}.sv"),
        "seconds": pnr.seconds, "cached": pnr.cached, "versions": pnr.versions,
    }


def _ecp5_summary(out: Path, e: dict) -> list[str]:
    u = e["utilisation"]
    verdict = "met" if e["met"] else "NOT met"
    return [
        f"build {out} for {e['board']} ({e['part']}): Fmax {e['fmax_mhz']:.1f} MHz, {verdict} at {e['clock_ns']:g} ns "
        f"({e['clock_mhz']:g} MHz); critical path {e['critical_path_ns']:.2f} ns "
        + "(" + ", ".join(f"{k} {v:.2f}" for k, v in e["path"].items()) + ")"
        + (f"; the model's, predicted: {e['predicted_critical_ns']:.2f} ns" if "predicted_critical_ns" in e else ""),
        "  " + ", ".join(f"{k} {v['used']:,} ({v['percent']:g}%)" for k, v in u.items()),
        f"  model {e['model_cells'].get('LUT4', 0):,} LUT4 / {e['model_cells'].get('CCU2C', 0):,} CCU2C / "
        f"{e['model_cells'].get('TRELLIS_FF', 0):,} FF of it, the board top's ROMs, counters and compare the rest"
        + ("" if e["model_kept"] else " (PART OF THE MODEL WAS OPTIMIZED AWAY)"),
        f"  {e['vectors']} vectors checked on the board every {e['vectors']} cycles, latency {e['latency_cycles']}; "
        f"bitstream {e['bitstream']} ({e['bitstream_bytes']:,} bytes)",
    ]


def _ecp5_warnings(e: dict) -> list[str]:
    warnings = []
    if not e["met"]:
        board = ("it still runs on the board" if e["runs_at_board_clock"] else
                 f"and it is below the board's {e['board_clock_mhz']:g} MHz oscillator too, so the board's "
                 f"check may fail")
        warnings.append(f"nextpnr-ecp5 reached {e['fmax_mhz']:.1f} MHz, short of the {e['clock_mhz']:g} MHz "
                        f"(--clock-ns {e['clock_ns']:g}) asked for; the bitstream is written anyway and {board} "
                        f"(at {e['board_clock_mhz']:g} MHz, no PLL). Compile with a longer --clock-ns for a deeper "
                        f"pipeline, or pass --require-timing to make this an error")
    if not e["model_kept"]:
        warnings.append(f"the board top has fewer cells than the model alone ({e['overhead']}): synthesis removed "
                        f"part of the model, so the board does not check all of it")
    return warnings


# --- the Vivado flow (Xilinx presets) ----------------------------------------------------
VIVADO_REPORTS = ("utilization.rpt", "timing_summary.rpt")


def _build_vivado(out: Path, project, board_name: str, part: str, model: str, clock_ns: float) -> BuildResult:
    from .backends.hls import template_environment
    from .backends.rtl import TEMPLATES, rtl_sources

    sources = rtl_sources(out / "rtl", model)
    tcl = template_environment(TEMPLATES).get_template("vivado_build.tcl.j2").render(
        top=model, part=part, board=board_name, clock_ns=f"{clock_ns:.3f}",
        sources=[f"src/{s.name}" for s in sources], version=__version__, reports=VIVADO_REPORTS)
    vivado = shutil.which("vivado")
    command = "vivado -mode batch -nojournal -log vivado.log -source vivado_build.tcl"

    def write_script(folder: Path) -> None:
        """The script and its sources (copies: OUT/build runs on a machine without finegrain)."""
        (folder / "src").mkdir()
        for source in sources:
            shutil.copyfile(source, folder / "src" / source.name)
        (folder / "vivado_build.tcl").write_text(tcl)

    if vivado is None:
        with _new_build_folder(out) as tmp:
            write_script(tmp)
        raise UserError(
            f"Vivado is not on PATH, so the {board_name} build ({part}) was not run; its script is "
            f"{out / 'build' / 'vivado_build.tcl'}: run it where Vivado is installed with 'cd {out / 'build'} "
            f"&& {command}' (synthesis and place and route out of context at {clock_ns:g} ns; it writes "
            f"{' and '.join(VIVADO_REPORTS)}), or put vivado on PATH and run finegrain build again")
    with _new_build_folder(out) as tmp:
        write_script(tmp)
        start = time.perf_counter()
        with elapsed(f"vivado: {model} for {board_name} ({part})"):
            run = subprocess.run([vivado, *command.split()[1:]], cwd=tmp, capture_output=True, text=True,
                                 errors="replace")
        seconds = round(time.perf_counter() - start, 2)
        missing_reports = [r for r in VIVADO_REPORTS if not (tmp / r).is_file()]
        if run.returncode != 0 or missing_reports:
            log = tmp / "vivado.log"
            text = log.read_text(errors="replace") if log.is_file() else run.stdout + run.stderr
            tail = "\n".join(text.splitlines()[-15:])
            what = f"exit {run.returncode}" if run.returncode else f"no {', '.join(missing_reports)}"
            raise UserError(f"Vivado's build of {model} for {board_name} failed ({what}); last lines of its log:\n"
                            f"{tail}")
        wns = parse_wns((tmp / "timing_summary.rpt").read_text(errors="replace"))
        used = parse_utilisation((tmp / "utilization.rpt").read_text(errors="replace"))
        entry = _vivado_entry(out, board_name, part, model, clock_ns, wns, used, seconds)
    fmax = entry["fmax_mhz"]
    lines = [f"build {out} for {board_name} ({part}, Vivado out of context): WNS {wns:+.3f} ns at {clock_ns:g} ns, "
             f"Fmax {fmax:.1f} MHz, {'met' if entry['met'] else 'NOT met'}",
             "  " + ", ".join(f"{k} {v['used']:,}" + (f" ({v['percent']:g}%)" if v.get("percent") is not None else "")
                              for k, v in entry["utilisation"].items()),
             f"  reports in {out / 'build'}"]
    warnings = [] if entry["met"] else [
        f"Vivado's worst negative slack is {wns:+.3f} ns at --clock-ns {clock_ns:g} (Fmax {fmax:.1f} MHz): compile "
        f"with a longer --clock-ns for a deeper pipeline, or pass --require-timing to make this an error"]
    return BuildResult(entry, lines, warnings)


def parse_wns(text: str) -> float:
    """WNS (ns) of Vivado's report_timing_summary: the first number under its 'WNS(ns)' header."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if "WNS(ns)" in line:
            for row in lines[k + 1:k + 4]:
                m = re.match(r"\s*(-?\d+(\.\d+)?)\s", row)
                if m:
                    return float(m.group(1))
    raise UserError("Vivado's timing_summary.rpt has no WNS(ns) figure (no clocked path, or a report of "
                    "another form); see it in OUT/build")


_UTILISATION_ROWS = {"LUT": ("Slice LUTs", "CLB LUTs"), "FF": ("Slice Registers", "CLB Registers"),
                     "DSP": ("DSPs",), "BRAM36": ("Block RAM Tile",)}


def parse_utilisation(text: str) -> dict[str, int]:
    """Used LUTs, FFs, DSPs and block RAM tiles from Vivado's report_utilization table rows."""
    used = {}
    for key, names in _UTILISATION_ROWS.items():
        for name in names:
            m = re.search(rf"^\|\s*{re.escape(name)}\*?\s*\|\s*(\d+(\.\d+)?)\s*\|", text, re.MULTILINE)
            if m:
                used[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
                break
    return used


def _vivado_entry(out: Path, board_name: str, part: str, model: str, clock_ns: float, wns: float, used: dict,
                  seconds: float) -> dict:
    capacity = PARTS.get(part)
    available = {"LUT": capacity.lut, "FF": capacity.ff, "DSP": capacity.dsp, "BRAM36": capacity.bram36} \
        if capacity else {}
    utilisation = {k: {"used": v, "available": available.get(k),
                       "percent": round(100 * v / available[k], 2) if available.get(k) else None}
                   for k, v in used.items()}
    return {"flow": "vivado", "board": board_name, "part": part, "top": model, "clock_ns": clock_ns,
            "clock_mhz": round(1000 / clock_ns, 3), "wns_ns": wns, "met": wns >= 0,
            "fmax_mhz": round(1000 / (clock_ns - wns), 3), "utilisation": utilisation,
            "tcl": str(out / "build" / "vivado_build.tcl"),
            "reports": [str(out / "build" / r) for r in VIVADO_REPORTS], "seconds": {"vivado": seconds}}
