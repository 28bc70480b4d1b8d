"""Bit-exact tests of the hand-written HLS library (templates/hls/finegrain) with g++.

Every kernel runs in a small C++ program and is compared, mantissa for mantissa, with the
specification: the emulator (compiler/emulate.py) on a one-node IR graph, or
compiler/mantissa.py for conversions.  Container types are chosen as the code generator
chooses them (one ap_fixed type per tensor that holds every element exactly); accumulators
are as tight as the test values allow, so partial sums really do wrap.

The C++ programs are generated from the cases (tests/hls_library_layer_cases.py and
tests/hls_library_numeric_cases.py, through tests/hls_library_harness.py), so each type is
written once, and are compiled once per session: five translation units, two at a time.  A
case reads its constants, then a sample count, then per sample its inputs, all as decimal
mantissas on stdin (tests/hls_library/harness.h), and prints one line of raw bits per output
and sample.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.hls_library_harness import (HARNESS, LIBRARY, Case, Programs, ap_types_dir, assert_case_exact,
                                       render_program, run_case)
from tests.hls_library_layer_cases import conv_cases, dense_cases, pool_cases
from tests.hls_library_numeric_cases import (lookup_cases, mixed_pair_case, pointwise_cases, requantize_cases,
                                             wide_clip_cases)


# --- building and running ---------------------------------------------------------------------


def all_cases() -> list[Case]:
    return (dense_cases() + conv_cases() + pool_cases() + pointwise_cases() + wide_clip_cases() + requantize_cases()
            + lookup_cases() + [mixed_pair_case(f"mixed_pairs_{k}", 70 + k) for k in range(2)])


ALL_CASES = all_cases()
CASES = {c.name: c for c in ALL_CASES}


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> Programs:
    ap_types = ap_types_dir()
    if ap_types is None:
        pytest.skip("hls4ml (for the ap_types headers) is not installed")
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed")
    out = tmp_path_factory.mktemp("hls_library")

    def build(program: str) -> tuple[str, Path, float]:
        source = out / f"{program}.cpp"
        source.write_text(render_program(program, [c for c in CASES.values() if c.program == program]))
        binary = out / program
        start = time.monotonic()
        result = subprocess.run([compiler, "-std=c++14", "-O0", f"-I{ap_types}", f"-I{LIBRARY}", f"-I{HARNESS}",
                                 str(source), "-o", str(binary)], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"g++ failed on {source}:\n{result.stderr[-6000:]}")
        return program, binary, time.monotonic() - start

    # the mixed program takes longest (38 s here): it goes first, the others share the second job
    # (split in two units it took longer in all); -O0 builds about a quarter faster than -O1, and
    # the cases' few samples run in seconds either way (the generated projects' csim tests build
    # the same headers at finegrain csim's -O2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(pool.map(build, ("mixed", "requantize", "pointwise", "layers", "lookup")))
    seconds = {p: round(s, 1) for p, _, s in built}
    print(f"finegrain HLS library test programs built in {seconds} s")  # shown with pytest -s
    return Programs({p: b for p, b, _ in built}, seconds)


def names(prefix: str) -> list[str]:
    return [n for n in CASES if n.startswith(prefix)]


# --- tests -----------------------------------------------------------------------------------------


def test_case_names_are_unique():
    assert len(CASES) == len(ALL_CASES)


@pytest.mark.parametrize("name", names("dense"))
def test_dense_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


def test_dense_reuse_does_not_change_values(programs):
    one, four = (run_case(programs, CASES[f"dense_reuse{r}"])[0] for r in (1, 4))
    assert np.array_equal(one, four)


def test_dense_wrap_case_really_overflows_its_accumulator():
    """The final sums fit the accumulator but the running sums (in either order) do not:
    only wrap-around accumulation gets the wrapped case right."""
    case = CASES["dense_wrap_reuse1"]
    x, w, acc = case.inputs[0], case.consts[0], case.outputs[0]
    acc_t = acc.type
    shift = acc_t.frac_bits - (x.type.frac_bits + w.type.frac_bits)
    assert shift <= 0
    weights = w.values.reshape(3, 8)
    escaped = False
    for sample in x.values:
        products = weights * sample[np.newaxis, :]
        for row in products:
            for order in (row, row[::-1]):
                partial = np.cumsum(order) // (1 << -shift)
                escaped |= bool(any(v < acc_t.min_mantissa or v > acc_t.max_mantissa for v in partial))
    assert escaped, f"no partial sum leaves {acc_t}: the case does not test wrapping"


@pytest.mark.parametrize("name", names("conv"))
def test_conv_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("maxpool") + names("avgpool"))
def test_pooling_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.program == "pointwise"])
def test_pointwise_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.program == "requantize"])
def test_requantize_every_mode_matches_fixed_py(programs, name):
    """ap_fixed assignment == compiler.mantissa.requantize for every rounding x overflow pair,
    signed and unsigned targets, negative integer bits, I > W, 1-bit and >64-bit types."""
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("sigmoid") + names("softmax"))
def test_lookup_matches_emulator(programs, name):
    assert_case_exact(programs, CASES[name])


@pytest.mark.parametrize("name", names("mixed_pairs"))
def test_compare_and_arithmetic_of_two_types_are_exact(programs, name):
    """finegrain::compare, sign and multiply and ap_fixed's + on random type pairs (either
    signedness, widths across the 32- and 64-bit edges up to 338, integer bits negative and
    beyond the width), against exact Python arithmetic."""
    assert_case_exact(programs, CASES[name])
