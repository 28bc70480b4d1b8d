"""g++ csim of many fuzz cases in one build.

One g++ run per case spends most of its time parsing the ap_types headers and the finegrain
kernel library and instantiating the same templates.  Here a batch of written cases (each with
its own model name) becomes one translation unit: the ap_types headers, the kernel library and the standard headers the
testbenches use are included once at the top; then each case's generated firmware
(``<model>.cpp``) and testbench (``<model>_test.cpp``) are included, unedited, inside a
namespace of their own, where the headers included above are skipped by their include guards;
the testbench's ``main`` is renamed by a macro around the include.  One driver ``main`` runs
every case's testbench on its own ``tb_data`` (vectors and expected outputs written by the
emulator, `compiler.verify.csim.write_vectors`), so the comparison of every output bit is the
generated testbench's, as in `run_csim`.

A batch that does not compile runs the cases named in g++'s errors alone through `run_csim`
(the project's runner, which says what failed) and builds the rest again; when g++ names no
case, the batch is split in halves until the failing case is alone.  A binary that
stops inside a case (a crash) runs that case the same way and the rest again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ..resources import data_folder
from ..verify.csim import _SUMMARY, CXXFLAGS, ap_types_dir, write_vectors
from .check import Outcome, Written, _fail, simulate

# -O0, not the runner's -O2: g++'s time goes to instantiating ap_fixed templates, and optimising
# them costs more than the few vectors of a case save (30 cases: 21.5 s of CPU at -O0, 25.3 s at
# -O1).  Per case, a batch of 10 took 1.2 s (-O1), of 30 0.72 s, of 60 0.61 s, of 120 0.55 s
# (2.6 GB of memory).  A precompiled header of the shared part saved nothing measurable.
# NDEBUG and -w as csim.
FLAGS = [flag if not flag.startswith("-O") else "-O0" for flag in CXXFLAGS]
LIBRARY = data_folder("templates", "hls", "finegrain")
_BEGIN = re.compile(r"^finegrain-batch: case (\d+)$", re.M)
_STD_INCLUDE = re.compile(r"^#include <[^>]+>$", re.M)


def _parts(w: Written) -> tuple[Path, Path, Path]:
    hls = (w.out / "hls").resolve()
    model = w.project.graph.name
    return hls, hls / "firmware" / f"{model}.cpp", hls / "tb" / f"{model}_test.cpp"


def _same_library(w: Written) -> bool:
    """The case's copy of the kernel library is the one included at the top (else its own
    headers would be skipped silently): it goes through `run_csim` alone."""
    copy = _parts(w)[0] / "firmware" / "finegrain"
    return all((copy / f.name).is_file() and (copy / f.name).read_bytes() == f.read_bytes()
               for f in LIBRARY.glob("*.h"))


def batch_source(batch: list[Written]) -> str:
    std = sorted({line for w in batch for line in _STD_INCLUDE.findall(_parts(w)[2].read_text())})
    lines = ["// fuzz csim batch: the generated sources of each case, unedited, in a namespace of its own.",
             *std, '#include "ap_fixed.h"', '#include "ap_int.h"',
             *(f'#include "{f}"' for f in sorted(LIBRARY.glob("*.h"))), ""]
    for i, w in enumerate(batch):
        _, firmware, testbench = _parts(w)
        lines += [f"namespace fuzz_case_{i} {{", "#define main case_main", f'#include "{firmware}"',
                  f'#include "{testbench}"', "#undef main", "}", ""]
    lines += ["int main(int argc, char **argv) {",
              "    // argv[1 + i]: case i's tb_data folder, or '-' to skip it",
              "    static int (*const cases[])(int, char **) = {",
              *(f"        fuzz_case_{i}::case_main," for i in range(len(batch))),
              "    };",
              f"    for (int i = 0; i < {len(batch)} && i + 1 < argc; i++) {{",
              "        if (argv[i + 1][0] == '-') continue;",
              '        std::cout << "finegrain-batch: case " << i << std::endl;',
              "        char *args[] = {argv[0], argv[i + 1], 0};",
              "        cases[i](2, args);",
              "    }",
              '    std::cout << "finegrain-batch: done" << std::endl;',
              "    return 0;",
              "}", ""]
    return "\n".join(lines)


def _build(batch: list[Written], folder: Path) -> tuple[Path | None, str]:
    folder.mkdir(parents=True, exist_ok=True)
    source, binary = folder / "batch.cpp", folder / "batch"
    source.write_text(batch_source(batch))
    proc = subprocess.run([shutil.which("g++") or "g++", *FLAGS, "-I", str(ap_types_dir()), str(source),
                           "-o", str(binary)], capture_output=True, text=True)
    return (binary if proc.returncode == 0 else None), proc.stdout + proc.stderr


def _verdict(w: Written, text: str, count: int) -> Outcome | None:
    match = _SUMMARY.search(text)
    if match is None:
        return _fail("csim", f"the C simulation did not finish:\n{text[-4000:]}", w.done)
    vectors, mismatches = int(match.group(1)), int(match.group(2))
    if vectors != count:
        return _fail("csim", f"the C simulation read {vectors} vectors but {count} were written", w.done)
    if mismatches:
        first = [line for line in text.splitlines() if line.startswith("mismatch:")]
        return _fail("csim", f"{mismatches} mismatches: " + "; ".join(first[:3]), w.done)
    w.done.append("csim")
    return None


def _run(binary: Path, batch: list[Written], counts: list[int], results: dict[int, Outcome | None]) -> None:
    """Run every case not in ``results`` yet; a case the binary stops in runs alone."""
    while len(results) < len(batch):
        args = ["-" if i in results else str(_parts(w)[0] / "tb_data") for i, w in enumerate(batch)]
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True)
        marks = list(_BEGIN.finditer(proc.stdout))
        for n, mark in enumerate(marks):
            i = int(mark.group(1))
            end = marks[n + 1].start() if n + 1 < len(marks) else len(proc.stdout)
            if n + 1 < len(marks) or "finegrain-batch: done" in proc.stdout:
                results[i] = _verdict(batch[i], proc.stdout[mark.end():end], counts[i])
            else:  # the binary stopped inside case i: its own build and run say how
                results[i] = simulate(batch[i], "csim")
        if not marks:  # nothing ran at all: every case on its own
            for i, w in enumerate(batch):
                results.setdefault(i, simulate(w, "csim"))


def csim_batch(batch: list[Written], folder: Path) -> list[Outcome | None]:
    """g++ csim of ``batch`` (cases with distinct model names), in as few builds as it takes:
    per case, None when every output bit matched (``csim`` is then added to its ``done``),
    else the csim finding."""
    results: dict[int, Outcome | None] = {}
    alone = [i for i, w in enumerate(batch) if not _same_library(w)]
    for i in alone:
        results[i] = simulate(batch[i], "csim")
    together = [w for i, w in enumerate(batch) if i not in results]
    for k, outcome in zip([i for i in range(len(batch)) if i not in results], _batch(together, folder)):
        results[k] = outcome
    return [results[i] for i in range(len(batch))]


def _batch(batch: list[Written], folder: Path) -> list[Outcome | None]:
    if not batch:
        return []
    if len(batch) == 1:
        return [simulate(batch[0], "csim")]
    counts = [write_vectors(w.project.graph, _parts(w)[0], {w.project.graph.inputs[0]: w.inputs}) for w in batch]
    binary, log = _build(batch, folder)
    if binary is None:  # some case does not compile: alone if g++ names it, else halve until it is
        alone = [i for i, w in enumerate(batch) if f"{_parts(w)[0]}/" in log]
        if not alone:
            half = len(batch) // 2
            return _batch(batch[:half], folder / "a") + _batch(batch[half:], folder / "b")
        again = iter(_batch([w for i, w in enumerate(batch) if i not in alone], folder / "rest"))
        return [simulate(w, "csim") if i in alone else next(again) for i, w in enumerate(batch)]
    results: dict[int, Outcome | None] = {}
    _run(binary, batch, counts, results)
    return [results[i] for i in range(len(batch))]
