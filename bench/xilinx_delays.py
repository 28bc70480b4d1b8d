"""UltraScale+ cell and net delays from published Vivado timing reports, against the ``xcup`` model.

    nice python bench/xilinx_delays.py SNAPSHOT [--json bench/xilinx_delays_xcup.json]

``SNAPSHOT`` is a git directory (or a work tree) of the public repository
gussmith23/lakeroad-evaluation: get it with the search tool's ``fetch`` (github:gussmith23/
lakeroad-evaluation; it lands in /work/.mirror/gussmith23+lakeroad-evaluation/repo) or with
``git clone``.  Its run ``runs/2022-07-06-1704-full`` holds Vivado 2021.2 ``report_timing``
outputs after place and route on an xczu3eg-sbva484, speed file -1 (``*-timing-route.v`` and
``*-timing-route.txt``: one critical path each, every cell and routed net delay on it).  They
are read from the snapshot's HEAD with ``git show``, so nothing is copied from it but numbers.

Writes (bench/xilinx_delays_xcup.json): the source (repo, commit, files, Vivado version, part,
speed grade); per cell delay type (FDRE clock to Q by flip-flop site, LUTn by input pin, CARRY8
by pin pair, the destination FDRE's setup) the observed values (count, min, median, max);
routed net delays by fanout; every path's composition (cells, nets, total, logic levels); and,
for every register-to-register path made only of LUTs and CARRY8 chains, what
``compiler.timing``'s ``xcup`` model predicts for a path of that composition against Vivado's
(see :func:`model_terms` for the mapping).  The refit proposed in bench/RESULTS.md is
bench/xilinx_refit.py's.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_REPO = "gussmith23/lakeroad-evaluation"
RUN = "runs/2022-07-06-1704-full/vivado-eval/xilinx-ultrascale-plus-vivado-eval/"
REPORT = re.compile(r"-timing-route\.(v|txt)$")
CELL = re.compile(r"^\s+(\S+)\s+(\w+) \((Prop|Setup)_(\S+)\)\s*$")  # site, cell type, arc
INCR = re.compile(r"^\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+[rf]?\s*(\S*)")
NET = re.compile(r"^\s+net \(fo=(\d+)(?:, (\w+))?\)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)")
SEPARATOR = re.compile(r"^\s+-{20,}")
ENDPOINT = re.compile(r"^\s+(\S+_X\d+Y\d+)\s+(\w+)\s+[rf]\s")  # the data path's last cell pin


def header(text: str, field: str) -> str | None:
    match = re.search(rf"^\s*\|?\s*{re.escape(field)}\s*:\s*(.+?)\s*$", text, re.M)
    return match.group(1) if match else None


def ns(value: str | None) -> float | None:
    return float(value.split("ns")[0]) if value and value[0] in "-0123456789" else None


def arc_key(cell: str, arc: str) -> str:
    """A delay type: ``FDRE C->Q``, ``LUT4 I0->O``, ``CARRY8 S[3]->CO[7]``, ``FDRE setup C->D``.
    The arc is Vivado's ``<site>_<slice>_<from>_<to>`` (Prop_CFF_SLICEM_C_Q, Prop_D5LUT_SLICEL_I0_O,
    Prop_CARRY8_SLICEL_CI_O[5])."""
    if not (cell.startswith(("LUT", "CARRY", "FD", "MUXF"))):
        return f"{cell} {arc}"  # DSP arcs have underscores in their pin names
    return f"{cell} {'->'.join(arc.split('_')[-2:])}"


def parse(text: str) -> dict:
    """One report: its header fields and the data path's cells and nets (clock nets left out)."""
    source = re.search(r"Source:\s+(\S+)\s*\n\s+\((.+?)\)", text)
    dest = re.search(r"Destination:\s+(\S+)\s*\n\s+\((.+?)\)", text)
    from_port, to_port = "input port" in source.group(2), "output port" in dest.group(2)
    body = text.split("Netlist Resource(s)", 1)[1].splitlines()
    sections, current = [], []
    for line in body[2:]:  # after the header line and its rule
        if SEPARATOR.match(line):
            sections.append(current)
            current = []
        else:
            current.append(line)
    sections.append(current)
    data = sections[0] if from_port else sections[1]
    cells, nets, setup = [], [], None
    for i, line in enumerate(data):
        if match := CELL.match(line):
            incr = INCR.match(data[i + 1])
            if nets and "to_site" not in nets[-1]:
                nets[-1]["to_site"], nets[-1]["to_cell"] = match.group(1), match.group(2)
            cells.append({"site": match.group(1), "cell": match.group(2), "arc": match.group(4),
                          "key": arc_key(match.group(2), match.group(4)), "ns": float(incr.group(1))})
        elif match := NET.match(line):
            nets.append({"fanout": int(match.group(1)), "state": match.group(2) or "", "ns": float(match.group(3)),
                         "after": cells[-1]["cell"] if cells else "port",
                         "from_site": cells[-1]["site"] if cells else "port"})
        elif (match := ENDPOINT.match(line)) and nets and "to_site" not in nets[-1]:
            nets[-1]["to_site"], nets[-1]["to_cell"] = match.group(1), match.group(2)
    for net in nets:
        net["kind"] = net_kind(net)
    if not to_port:
        capture = sections[1] if from_port else sections[2]  # the destination clock's path and setup
        for i, line in enumerate(capture):
            if (match := CELL.match(line)) and match.group(3) == "Setup":
                setup = {"cell": match.group(2), "arc": match.group(4),
                         "key": f"{match.group(2)} setup {'->'.join(match.group(4).split('_')[-2:])}",
                         "ns": float(INCR.match(capture[i + 1]).group(1))}
    slack = re.search(r"Slack(?: \((?:MET|VIOLATED)\))?\s*:\s*(\S+)", text).group(1)
    levels = re.search(r"Logic Levels:\s+(\d+)\s*(?:\((.*)\))?", text)
    return {
        "source": source.group(1), "source_kind": source.group(2).split(" clocked")[0],
        "destination": dest.group(1), "destination_kind": dest.group(2).split(" clocked")[0],
        "register_to_register": not from_port and not to_port,
        "requirement_ns": ns(header(text, "Requirement")), "slack_ns": ns(slack),
        "data_path_ns": ns(header(text, "Data Path Delay")),
        "clock_skew_ns": ns(header(text, "Clock Path Skew")),
        "clock_uncertainty_ns": ns(header(text, "Clock Uncertainty")),
        "logic_levels": int(levels.group(1)), "logic_levels_by_cell": levels.group(2) or "",
        "cells": cells, "nets": nets, "setup": setup,
        "total_ns": round(sum(c["ns"] for c in cells) + sum(n["ns"] for n in nets), 3),
    }


def net_kind(net: dict) -> str:
    """``dsp`` (inside or between DSP48E2 sites), ``carry`` (CARRY8 CO to the next CARRY8's CI),
    ``into_carry`` (a LUT to the CARRY8 of its slice), ``local`` (within one slice otherwise),
    ``routed`` (between slices, or with several loads: the nets the model's ``net`` and fanout terms
    are about; Vivado prints the critical load's site, which may be the driver's own)."""
    ends = (net["after"], net.get("to_cell", ""))
    if any(e.startswith("DSP") for e in ends):
        return "dsp"
    if ends == ("CARRY8", "CARRY8"):
        return "carry"
    if ends[1] == "CARRY8" and ends[0].startswith("LUT") and net["from_site"] == net.get("to_site"):
        return "into_carry"
    return "local" if net["from_site"] == net.get("to_site") and net["fanout"] == 1 else "routed"


def net_order(key: str) -> tuple[bool, int]:
    """The kinds first, then the routed nets by fanout."""
    return key.isdigit(), int(key) if key.isdigit() else 0


def feeds_carry(cells: list[dict], i: int) -> bool:
    """Whether cell ``i`` is a LUT whose output goes straight into the next CARRY8's S input."""
    return (i + 1 < len(cells) and cells[i]["cell"].startswith("LUT") and cells[i + 1]["cell"] == "CARRY8"
            and "_S[" in cells[i + 1]["arc"])


def stats(values: list[float]) -> dict:
    return {"count": len(values), "min": min(values), "median": round(statistics.median(values), 4),
            "max": max(values)}


def chains(cells: list[dict]) -> list[list[dict]]:
    """The path's carry chains: runs of consecutive CARRY8 cells."""
    runs, current = [], []
    for cell in cells:
        if cell["cell"] == "CARRY8":
            current.append(cell)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def chain_bits(chain: list[dict]) -> int:
    """Bits a chain ripples through: 8 per CARRY8 it crosses, its entry from S[k] (bit k) and exit
    at O[j] or CO[j] (bit j)."""
    first, last = chain[0]["arc"].split("_")[-2:], chain[-1]["arc"].split("_")[-2:]
    start = int(re.search(r"\[(\d+)\]", first[0]).group(1)) if first[0].startswith("S[") else 0
    end = int(re.search(r"\[(\d+)\]", last[1]).group(1))
    return 8 * (len(chain) - 1) + end - start + 1


def model_terms(path: dict) -> dict | None:
    """A register-to-register path of LUTs and CARRY8 chains in the model's terms, or None for
    others (DSPs, MUXF7, ports).  The mapping: every carry chain is one adder ``level`` (its net,
    the LUT feeding its S input, the chain's entry and exit), every other LUT one ``lut`` level
    (a net and a LUT); the ripple is ``carry_bit`` times the widest chain's bits; ``fanout`` is
    the model's term summed over every routed net with more than one load on the path (the
    model charges a layer's input nets so; here any net's loads count)."""
    if not path["register_to_register"] or path["setup"] is None:
        return None
    kinds = {c["cell"] for c in path["cells"]}
    if not kinds <= {"FDRE", "CARRY8"} | {f"LUT{i}" for i in range(1, 7)}:
        return None
    runs = chains(path["cells"])
    feeding = sum(feeds_carry(path["cells"], i) for i in range(len(path["cells"])))
    luts = sum(c["cell"].startswith("LUT") for c in path["cells"]) - feeding
    return {"adders": len(runs), "luts": luts, "chain_bits": max((chain_bits(r) for r in runs), default=0),
            "loads": [n["fanout"] for n in path["nets"] if n["kind"] == "routed" and n["fanout"] > 1]}


def predict(model, terms: dict) -> float:
    return (model.overhead + terms["adders"] * model.level + terms["luts"] * model.lut
            + model.carry_bit * terms["chain_bits"] + sum(model.fanout(k) for k in terms["loads"]))


def reports(snapshot: Path) -> tuple[str, list[tuple[str, str]]]:
    """The snapshot's HEAD commit and its routed timing reports (path, text)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "--git-dir", str(snapshot), *args], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"snapshot {snapshot}: git {args[0]} failed ({done.stderr.strip()}); pass the git "
                             f"directory of a {SOURCE_REPO} snapshot (fetch it, or git clone it)")
        return done.stdout

    if (snapshot / ".git").exists():
        snapshot = snapshot / ".git"
    commit = git("rev-parse", "HEAD").strip()
    names = [n for n in git("ls-tree", "-r", "--name-only", "HEAD", RUN).splitlines() if REPORT.search(n)]
    return commit, [(n, git("show", f"HEAD:{n}")) for n in sorted(names)]


def extract(snapshot: Path) -> dict:
    from compiler.timing import MODELS

    commit, texts = reports(snapshot)
    if not texts:
        raise SystemExit(f"no *-timing-route reports under {RUN} in {snapshot}: is it {SOURCE_REPO}?")
    paths, cell_values, net_values, versions, devices, speeds = [], {}, {}, set(), set(), set()
    for name, text in texts:
        path = parse(text)
        path["file"] = name
        versions.add(header(text, "Tool Version"))
        devices.add(header(text, "Device"))
        speeds.add(header(text, "Speed File"))
        for cell in path["cells"] + ([path["setup"]] if path["setup"] else []):
            cell_values.setdefault(cell["key"], []).append(cell["ns"])
        for net in path["nets"]:
            if net["state"] == "routed":
                key = str(net["fanout"]) if net["kind"] == "routed" else net["kind"]
                net_values.setdefault(key, []).append(net["ns"])
        paths.append(path)
    model = MODELS["xcup"]
    compared = []
    for path in paths:
        if (terms := model_terms(path)) is None:
            continue
        vivado = round(path["requirement_ns"] - path["slack_ns"], 3)  # the period this path needs
        predicted = round(predict(model, terms), 3)
        compared.append({"file": path["file"], **terms, "vivado_ns": vivado, "data_path_ns": path["data_path_ns"],
                         "xcup_ns": predicted, "error_ns": round(predicted - vivado, 3)})
    return {
        "source": {"repo": SOURCE_REPO, "commit": commit, "run": RUN, "files": [n for n, _ in texts],
                   "vivado": sorted(versions), "part": sorted(devices), "speed_file": sorted(speeds),
                   "note": "report_timing after route, one critical path a file; speed grade -1"},
        "cells": {key: stats(v) for key, v in sorted(cell_values.items())},
        "nets_by_fanout": {k: stats(net_values[k]) for k in sorted(net_values, key=net_order)},
        "paths": paths,
        "xcup_model": {"params": {k: v for k, v in vars(model).items() if isinstance(v, float)},
                       "compared": compared},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", type=Path, help=f"git directory of {SOURCE_REPO}")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "xilinx_delays_xcup.json")
    args = parser.parse_args()
    result = extract(args.snapshot)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["xcup_model"]["compared"]:
        print(f"{Path(row['file']).name[:48]:48} adders {row['adders']} luts {row['luts']} bits {row['chain_bits']:3} "
              f"vivado {row['vivado_ns']:.3f} xcup {row['xcup_ns']:.3f} err {row['error_ns']:+.3f}")


if __name__ == "__main__":
    main()
