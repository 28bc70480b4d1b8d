"""RTL simulation of a stream top (design13.md, "RTL stream top"): each test vector's inputs
are cut into beats by schedule.json's ``order`` and offered on P_valid/P_ready/P by the cocotb
testbench sim/stream_testbench.py, back to back, with random valid gaps (``gaps``) or with the
outputs' ready dropped at random (``stall``); every output beat is recorded with its cycle.

Here the beats are put back into the emulator's element order and compared bit for bit, the
beats counted (none lost, none extra, none changed while held), and, in a back-to-back run with
the outputs always ready, latency_cycles and ii_cycles measured as design13.md defines them:
the cycles from image 0's first input beat to its last output beat, and between the first
input beats of the last two images (of at least MIN_II_IMAGES).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ir import Graph
from .rtlsim import RTLSimError, RTLSimResult, _pack, _unpack, run_testbench
from .vectors import emulated_rows, received_values

MIN_II_IMAGES = 4  # the II is the steady state's: the last two of at least this many images
DRAIN_EXTRA_CYCLES = 50  # the drain after the last expected beat: latency + II + this
IDLE_EXTRA_CYCLES = 10_000  # a run gives up after 2 * (latency + II) + this cycles without a transfer


def stream_ports(schedule: dict) -> list[str]:
    """The stream top's ports (the only signals the testbench touches)."""
    names = [p["name"] for p in [*schedule["inputs"], *schedule["outputs"]]]
    return ["clk", "rst", *(f"{name}{suffix}" for name in names for suffix in ("", "_valid", "_ready"))]


def stall_run_cycles(schedule: dict) -> int:
    """The longest run of cycles --stall holds an output's ready low: the time of two images
    more than the deepest FIFO holds (counted in images, an upper bound for any FIFO: a beat is
    at most an image), so that a long stall fills every FIFO back to the input."""
    deepest = max((int(e.get("fifo_depth", 0)) for e in schedule.get("engines", [])), default=0)
    return max(int(schedule["ii_cycles"]), 1) * (deepest + 2)


def check_stream_port(port: dict, rtl_dir: Path) -> np.ndarray:
    """The port's ``order`` as an array, after checking it covers each element once."""
    try:
        order = np.asarray(port["order"], dtype=np.int64)
        beats, lanes, size = int(port["beats"]), int(port["lanes"]), int(port["size"])
    except (KeyError, TypeError, ValueError):
        order, beats, lanes, size = None, 0, 0, -1
    if order is None or order.shape != (beats * lanes,) or beats * lanes != size \
            or not np.array_equal(np.sort(order), np.arange(size)):
        raise RTLSimError(f"{rtl_dir / 'schedule.json'}: stream port {port.get('name')!r} needs 'beats' x 'lanes' "
                          f"= 'size' and an 'order' listing each of its elements once; the file is damaged or "
                          f"from another finegrain: compile again")
    return order


def run_stream_sim(graph: Graph, rtl_dir: Path, model: str, schedule: dict, inputs: dict[str, np.ndarray],
                   gaps: bool = False, stall: bool = False, waves: bool = False, seed: int = 0,
                   simulator: str = "verilator", primitives: bool = False) -> RTLSimResult:
    in_ports, out_ports = schedule["inputs"], schedule["outputs"]
    orders = [check_stream_port(p, rtl_dir) for p in [*in_ports, *out_ports]]
    in_orders, out_orders = orders[:len(in_ports)], orders[len(in_ports):]
    count, rows_in, rows_out = emulated_rows(graph, inputs)
    latency, ii = schedule["latency_cycles"], schedule["ii_cycles"]
    spec = {
        "gaps": gaps, "stall": stall, "seed": seed,
        "inputs": {p["name"]: _pack(np.asarray(rows)[:, order].reshape(-1, p["lanes"]), p["width"])
                   for p, rows, order in zip(in_ports, rows_in, in_orders)},
        "input_bits": {p["name"]: p["width"] * p["lanes"] for p in in_ports},
        "output_beats": {p["name"]: p["beats"] * count for p in out_ports},
        "stall_run_cycles": stall_run_cycles(schedule),
        "idle_timeout_cycles": 2 * (latency + ii) + IDLE_EXTRA_CYCLES,
        "drain_cycles": latency + ii + DRAIN_EXTRA_CYCLES,
    }
    run = run_testbench(rtl_dir, model, "stream_testbench", spec, stream_ports(schedule), waves=waves,
                        simulator=simulator, cycles=count * ii, primitives=primitives)
    got = run.results
    received = received_beats(got, out_ports, out_orders, count)
    mismatches, first = compare_beats(got, out_ports, out_orders, rows_out, count, received)
    back_to_back = not gaps and not stall
    measured_latency, measured_ii = measure(got, in_ports, out_ports, count, schedule.get("ii_images", MIN_II_IMAGES)) \
        if back_to_back else (None, None)
    beats = {"expected": sum(spec["output_beats"].values()),
             "received": sum(len(beats) for beats in got["outputs"].values())}
    outputs = {p["onnx"]: received_values(graph, p["onnx"], rows) for p, rows in zip(out_ports, received)}
    return RTLSimResult(count, mismatches, measured_latency, measured_ii, latency, run.build_seconds,
                        run.run_seconds, tuple(first), run.waves, predicted_ii=ii,
                        stream={"gaps": gaps, "stall": stall, "output_beats": beats}, outputs=outputs)


def received_beats(got: dict, out_ports: list[dict], orders: list[np.ndarray],
                   count: int) -> list[list[list[int | None]]]:
    """Per output port, per vector, the element mantissas of the beats the testbench read
    (``got``, as in `compare_beats`), in the tensor's element order; None for the elements of a
    missing beat or of one with X or Z bits."""
    out = []
    for p, order in zip(out_ports, orders):
        beats, lanes, width, received = p["beats"], p["lanes"], p["width"], got["outputs"][p["name"]]
        rows: list[list[int | None]] = [[None] * p["size"] for _ in range(count)]
        for k in range(min(len(received), beats * count)):
            v, b = divmod(k, beats)
            word = received[k][1]
            if not word.startswith("x:"):
                for lane in range(lanes):
                    rows[v][int(order[b * lanes + lane])] = _unpack(int(word, 16), lane, width, p["signed"])
        out.append(rows)
    return out


def compare_beats(got: dict, out_ports: list[dict], orders: list[np.ndarray], rows_out: list[np.ndarray],
                  count: int, received_rows: list | None = None) -> tuple[int, list[str]]:
    """The recorded output beats (``got``, from sim/stream_testbench.py) against the emulator's
    container mantissas (``rows_out``): (mismatches, the first ten as lines).  A missing beat
    counts each of its lanes; an extra beat, a beat changed while held and a stop without
    every beat count one each.  ``received_rows``: `received_beats` of the same arguments,
    when the caller has them already (the words are unpacked once)."""
    if received_rows is None:
        received_rows = received_beats(got, out_ports, orders, count)
    mismatches, first = 0, []

    def note(line: str, weight: int = 1) -> None:
        nonlocal mismatches
        mismatches += weight
        if len(first) < 10:
            first.append(line)

    for p, order, rows, have_rows in zip(out_ports, orders, rows_out, received_rows):
        name, beats, lanes = p["name"], p["beats"], p["lanes"]
        received = got["outputs"][name]
        expected = beats * count
        if len(received) != expected:
            lost = "lost" if len(received) < expected else "extra or duplicated"
            note(f"output {name}: {len(received)} beats, expected {expected} ({beats} per vector x {count}): "
                 f"beats {lost}", weight=0)
        for k in range(min(len(received), expected)):
            v, b = divmod(k, beats)
            cycle, word = received[k]
            if word.startswith("x:"):
                note(f"mismatch: vector {v} output {name} beat {b} (cycle {cycle}): X or Z bits {word[2:]}", lanes)
                continue
            for lane in range(lanes):
                element = int(order[b * lanes + lane])
                have, want = have_rows[v][element], int(rows[v][element])
                if have != want:
                    note(f"mismatch: vector {v} output {name}[{element}] (beat {b} lane {lane}, cycle {cycle}): "
                         f"expected {want}, got {have} (mantissas of {p['type']})")
        if len(received) < expected:
            mismatches += (expected - len(received)) * lanes
        for cycle, _ in received[expected:]:
            note(f"output {name}: an extra beat at cycle {cycle}, after the {expected} expected")
    for error in got["errors"]:
        note(error)
    if got.get("stopped"):
        note(f"the testbench stopped: {got['stopped']}", weight=0)
    return mismatches, first


def measure(got: dict, in_ports: list[dict], out_ports: list[dict], count: int,
            ii_images: int = MIN_II_IMAGES) -> tuple[int | None, int | None]:
    """(latency_cycles, ii_cycles) of a back-to-back run as design13.md defines them; None
    where the run has too few beats (or, for the II, fewer images than the steady state needs:
    schedule.json's ii_images, at least MIN_II_IMAGES, as its FIFOs can take images ahead)."""
    sent, received = got["inputs"], got["outputs"]
    if count == 0 or any(len(sent[p["name"]]) < p["beats"] * count for p in in_ports):
        return None, None
    starts = [min(sent[p["name"]][v * p["beats"]] for p in in_ports) for v in range(count)]
    latency = None
    if all(len(received[p["name"]]) >= p["beats"] for p in out_ports):
        latency = max(received[p["name"]][p["beats"] - 1][0] for p in out_ports) - starts[0]
    return latency, (starts[-1] - starts[-2] if count >= max(ii_images, MIN_II_IMAGES) else None)
