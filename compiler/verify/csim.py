"""C simulation without a vendor licence: build the generated HLS firmware and testbench with
g++ against the ap_types headers shipped in hls4ml, run it on vectors the emulator wrote,
and count every output bit that differs.

Vectors are random inputs over each input format's whole range plus the extremes (all
minimum, all maximum, zero, alternating minimum/maximum both ways), or the user's own.  The
build is incremental: objects are rebuilt only when a source or header is newer.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.hls_types import container
from ..errors import UserError
from ..ir import Graph
from ..progress import elapsed
from .vectors import emulated_rows, mantissa_value, received_values

CXXFLAGS = ["-std=c++14", "-O2", "-DNDEBUG", "-w"]  # NDEBUG: ap_fixed asserts on wide right shifts


class CsimError(UserError):
    """C simulation could not be built or run (the message says why)."""


@dataclass(frozen=True)
class CsimResult:
    vectors: int
    mismatches: int
    build_seconds: float
    run_seconds: float
    first_mismatches: tuple[str, ...]
    compiler: str
    outputs: dict[str, np.ndarray] | None = None  # what the C++ computed: IR values by output name

    def report(self) -> dict:
        return {"vectors": self.vectors, "mismatches": self.mismatches,
                "build_seconds": round(self.build_seconds, 3), "run_seconds": round(self.run_seconds, 3),
                "compiler": self.compiler}


def ap_types_dir() -> Path:
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise CsimError("csim needs the ap_types headers shipped with hls4ml: pip install hls4ml")
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").is_file():
        raise CsimError(f"hls4ml is installed but has no ap_types headers at {path}")
    return path


# The C++'s own outputs, one line per vector as expected.txt (the testbench writes it)
CSIM_OUTPUTS = "csim_outputs.txt"
# hls4ml's names for the float vectors (one vector per line, values separated by spaces)
FLOAT_INPUTS, FLOAT_OUTPUTS = "tb_input_features.dat", "tb_output_predictions.dat"


def write_vectors(graph: Graph, hls_dir: Path, inputs: dict[str, np.ndarray]) -> int:
    """Emulate ``inputs`` and write tb_data/inputs.txt and expected.txt (the container types'
    integer mantissas the testbench compares bit for bit) and, beside them, the same vectors as
    values in hls4ml's files `FLOAT_INPUTS` and `FLOAT_OUTPUTS`; returns the count."""
    batch, rows_in, rows_out = emulated_rows(graph, inputs)
    data = hls_dir / "tb_data"
    data.mkdir(parents=True, exist_ok=True)
    for names, rows, mantissa_file, float_file in ((graph.inputs, rows_in, "inputs.txt", FLOAT_INPUTS),
                                                   (graph.outputs, rows_out, "expected.txt", FLOAT_OUTPUTS)):
        with open(data / mantissa_file, "w") as f:
            for i in range(batch):
                f.write(" ".join(str(v) for part in rows for v in part[i]) + "\n")
        values = [_values(part, container(graph.tensor(name).formats).frac_bits) for name, part in zip(names, rows)]
        with open(data / float_file, "w") as f:
            for i in range(batch):
                f.write(" ".join(repr(v) for part in values for v in part[i]) + "\n")
    return batch


def _values(mantissas: np.ndarray, frac: int) -> list[list[float]]:
    """``mantissa * 2**-frac`` as float64 rows: exact while a mantissa has at most 53 bits,
    else the nearest float (repr prints the shortest text that reads back to the same float)."""
    mantissas = np.asarray(mantissas)
    if mantissas.dtype != object:
        return np.ldexp(mantissas.astype(np.float64), -frac).tolist()
    # Python ints of wide types: correctly rounded, never through a float first
    return [[mantissa_value(m, frac) for m in row] for row in mantissas]


def _newer(target: Path, sources: list[Path]) -> bool:
    return not target.exists() or any(s.stat().st_mtime > target.stat().st_mtime for s in sources)


def build(hls_dir: Path, model: str) -> tuple[Path, float, str]:
    """Compile (incrementally) and link the testbench; returns (binary, seconds, compiler)."""
    cxx = shutil.which("g++")
    if cxx is None:
        raise CsimError("csim needs g++ on the PATH (Debian: apt-get install g++)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    build_dir = hls_dir / "csim_build"
    build_dir.mkdir(exist_ok=True)
    firmware = hls_dir / "firmware"
    headers = sorted(firmware.rglob("*.h"))
    include = ["-I", str(ap_types_dir()), "-I", str(firmware)]
    units = [(firmware / f"{model}.cpp", build_dir / "firmware.o"),
             (hls_dir / "tb" / f"{model}_test.cpp", build_dir / "tb.o")]
    start = time.perf_counter()
    jobs = []
    for source, obj in units:
        if not source.is_file():
            raise CsimError(f"{source} is missing: is {hls_dir.parent} a finegrain output folder compiled with the "
                            f"hls backend?")
        if _newer(obj, [source, *headers]):
            jobs.append((source, subprocess.Popen([cxx, *CXXFLAGS, *include, "-c", str(source), "-o", str(obj)],
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    with elapsed(f"g++ build of {model} (C simulation)") if jobs else nullcontext():
        outputs = [proc.communicate()[0] for _, proc in jobs]
    for (source, proc), out in zip(jobs, outputs):
        if proc.returncode != 0:
            raise CsimError(f"g++ failed on {source.name} (this is a finegrain bug; please report it):\n{out[-4000:]}")
    binary = build_dir / f"{model}_csim"
    objects = [obj for _, obj in units]
    if _newer(binary, objects):
        proc = subprocess.run([cxx, *objects, "-o", str(binary)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CsimError(f"linking the C simulation failed:\n{proc.stdout}{proc.stderr}")
    return binary, time.perf_counter() - start, version


_SUMMARY = re.compile(r"^finegrain-csim: (\d+) vectors, (\d+) mismatches$", re.M)


def run_csim(graph: Graph, hls_dir: Path, model: str, inputs: dict[str, np.ndarray]) -> CsimResult:
    hls_dir = Path(hls_dir).resolve()  # the binary runs from hls_dir: no relative paths
    count = write_vectors(graph, hls_dir, inputs)
    binary, build_seconds, version = build(hls_dir, model)
    start = time.perf_counter()
    proc = subprocess.run([str(binary), str(hls_dir / "tb_data")], capture_output=True, text=True, cwd=hls_dir)
    run_seconds = time.perf_counter() - start
    match = _SUMMARY.search(proc.stdout)
    if match is None:
        raise CsimError(f"the C simulation did not finish (exit code {proc.returncode}):\n"
                        f"{(proc.stdout + proc.stderr)[-4000:]}")
    vectors, mismatches = int(match.group(1)), int(match.group(2))
    if vectors != count:
        raise CsimError(f"the C simulation read {vectors} vectors but {count} were written")
    first = tuple(line for line in proc.stdout.splitlines() if line.startswith("mismatch:"))
    return CsimResult(vectors, mismatches, build_seconds, run_seconds, first, version,
                      read_outputs(graph, hls_dir / "tb_data" / CSIM_OUTPUTS, count))


def read_outputs(graph: Graph, path: Path, count: int) -> dict[str, np.ndarray]:
    """The testbench's `CSIM_OUTPUTS` (each vector's output mantissas, outputs in order) as IR
    values by output name."""
    lines = path.read_text().splitlines() if path.is_file() else []
    if len(lines) != count:
        raise CsimError(f"the C simulation wrote {len(lines)} output vectors to {path}, not {count}")
    sizes = [int(np.prod(graph.tensor(name).shape)) for name in graph.outputs]
    rows: list[list[list[int]]] = [[] for _ in sizes]
    for line in lines:
        words = line.split()
        if len(words) != sum(sizes):
            raise CsimError(f"{path} has a vector of {len(words)} output values, not {sum(sizes)}")
        start = 0
        for k, size in enumerate(sizes):
            rows[k].append([int(w) for w in words[start:start + size]])
            start += size
    return {name: received_values(graph, name, part) for name, part in zip(graph.outputs, rows)}
