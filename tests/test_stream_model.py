"""The stream cycle model alone (compiler/backends/rtl/stream_model.py, over
stream_library.py's modules): the FIFO depth rule, padding and folding in the timing, the early
stop of timing() once the engines repeat (the full run's numbers), and the model's errors.
tests/test_rtl_stream_library.py checks the same model cycle for cycle against the RTL.  A run
skips the cycles in which folded engines only count down: every function gives what running
every cycle gives, on random chains and fork/join graphs."""

from __future__ import annotations

import random

import pytest

from compiler.backends.rtl.stream_library import Fifo, Pipe, Window
from compiler.backends.rtl import stream_model
from compiler.backends.rtl.stream_model import PORT, Stuck, _timing, settled_timing, simulate, skip_depths, timing


@pytest.mark.parametrize("latency", [0, 1, 4])
def test_fifo_depth_rule(latency):
    """A window engine's token holds its slot from the issue to its output transfer, latency + 3
    cycles: DEPTH = (1 + latency) + 2 sustains one token per cycle, one less does not; a
    collector's core (and a front-less engine's) starts on the issue itself: latency + 2."""
    window = {"window": (4, 6, 1, 1, 1, 1, 1, 1, 1), "latency": latency}
    assert timing([{**window, "fifo_depth": latency + 3}], 24)[1] == 24
    assert timing([{**window, "fifo_depth": latency + 2}], 24)[1] > 24
    collect = {"window": (4, 6, 1, 1, 1, 1, 1, 1, 1), "latency": 0, "fifo_depth": 3}
    tail = {"collect": 1, "latency": latency}
    assert timing([collect, {**tail, "fifo_depth": latency + 2}], 24)[1] == 24
    assert timing([collect, {**tail, "fifo_depth": latency + 1}], 24)[1] > 24
    pointwise = {"latency": latency}  # no front module: the core starts on the transfer, as a collector's
    assert timing([collect, {**pointwise, "fifo_depth": latency + 2}], 24)[1] == 24
    assert timing([collect, {**pointwise, "fifo_depth": latency + 1}], 24)[1] > 24


def test_timing_counts_padding_and_folding():
    """A padded 4x5 frame is 6x7 = 42 beats: the first real pixel is beat 8 (cycle 8), the last
    window completes at beat 41, leaves the window at 42, the core (latency 2) at 44 and the
    FIFO at 45: latency 37, II 42.  Folded to II 30, the 20 windows of an image issue 30
    cycles apart, back to back over images: II 600."""
    conv = {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 2, "fifo_depth": 5}
    assert timing([conv], 20) == (37, 42)
    folded = {**conv, "window": (6, 7, 3, 3, 1, 1, 1, 1, 30)}
    assert timing([folded], 20)[1] == 600


def _random_chain(rng: random.Random, folds=(1, 1, 2, 5)) -> tuple[list[dict], int]:
    """A chain of 1 to 5 engines over one frame (padded, strided, windows folded by a choice of
    ``folds``, pointwise engines, a collector tail), FIFOs at, below or above the depth rule;
    (specs, beats in)."""
    h, w = rng.randint(2, 7), rng.randint(2, 7)
    specs = []
    for _ in range(rng.randint(1, 5)):
        latency = rng.randint(0, 4)
        depth = max(1, latency + 3 + rng.choice([-2, -1, 0, 0, 2]))
        kind = rng.choice(["conv", "conv", "point", "front-less"])
        if kind == "conv":
            k, s, pad = rng.choice([(3, 1, 1), (2, 2, 0), (3, 2, 1), (1, 1, 0)])
            if h + 2 * pad < k or w + 2 * pad < k:
                continue
            specs.append({"pad": (h, w, pad, pad, pad, pad) if pad else None,
                          "window": (h + 2 * pad, w + 2 * pad, k, k, s, s, 1, 1, rng.choice(folds)),
                          "latency": latency, "fifo_depth": depth})
            h, w = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        elif kind == "point":
            specs.append({"window": (h, w, 1, 1, 1, 1, 1, 1, rng.choice(folds[:2] + (3,))), "latency": latency,
                          "fifo_depth": depth})
        elif specs:  # a pointwise engine with no front module (needs a stream before it)
            specs.append({"latency": latency, "fifo_depth": max(1, latency + 2 + rng.choice([-1, 0, 1]))})
    if not specs:
        specs.append({"window": (h, w, 1, 1, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4})
    if rng.random() < 0.4:
        specs.append({"collect": (h * w, rng.choice([1, 4, 40, *folds[2:]])), "latency": rng.randint(0, 3),
                      "fifo_depth": rng.randint(1, 3)})
    return specs, specs[0]["pad"][0] * specs[0]["pad"][1] if specs[0].get("pad") else \
        (specs[0]["window"][0] * specs[0]["window"][1] if specs[0].get("window") else 0)


def test_timing_stops_once_periodic_with_the_full_runs_numbers():
    """timing() stops once the engines are in the same state at the first input transfers of
    two images in a row (and image 0 has left): latency and II equal those of running every
    one of ``images`` images, on 80 random chains and the fork-join of the branch tests, for
    4, 7 and 27 images."""
    rng = random.Random(13)
    cases = 0
    while cases < 80:
        specs, beats = _random_chain(rng)
        if not beats:
            continue
        cases += 1
        for images in (4, 7, 27):
            assert timing(specs, beats, images) == _timing(*simulate(specs, beats, images), beats, images), specs
    graph = [{"name": "to_conv", "inputs": ["input"], "latency": 0, "fifo_depth": 9},
             {"name": "to_add", "inputs": ["input"], "latency": 0, "fifo_depth": 12},
             {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 3, "fifo_depth": 6,
              "name": "conv", "inputs": ["to_conv"]},
             {"window": (4, 5, 1, 1, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4, "name": "add",
              "inputs": ["conv", "to_add"]}]
    for images in (4, 9):
        assert timing(graph, 20, images) == _timing(*simulate(graph, 20, images), 20, images)


def test_model_errors():
    with pytest.raises(ValueError, match="does not fit"):
        Window(2, 2, 3, 3)
    with pytest.raises(ValueError, match="DEPTH"):
        Fifo(0)
    with pytest.raises(ValueError, match="not the window's"):
        simulate([{"pad": (4, 4, 1, 1, 1, 1), "window": (4, 4, 3, 3, 1, 1, 1, 1, 1), "latency": 1,
                   "fifo_depth": 4}], 16, 1)
    with pytest.raises(ValueError, match="beats enter"):
        simulate([{"window": (4, 4, 3, 3, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4}], 15, 1)
    with pytest.raises(RuntimeError, match="moved nothing"):
        simulate([{"collect": 2, "latency": 0, "fifo_depth": 2}], 2, 1, out_ready=lambda t: False,
                 max_idle_cycles=50)


def test_settled_timing_runs_until_the_steady_state():
    """The fuzzer's case (seed 9311027973): a stride-2 conv gives 2 beats per 10-beat frame to
    a tail folded at reuse 16.  The input runs ahead while the FIFO and the collector have
    room: images 5 and 6 start 12 cycles apart, the steady state (16) begins later.  The old
    rule of thumb ran 7 images and predicted II 12, which Verilator measured as 16 on 8;
    settled_timing runs until the engines repeat and says how many images that takes."""
    from compiler.backends.rtl.stream_model import settled_timing

    conv = {"pad": None, "window": (2, 5, 2, 3, 2, 2, 1, 1, 1), "collect": None, "latency": 1, "fifo_depth": 4}
    tail = {"pad": None, "window": None, "collect": (2, 16), "latency": 13, "fifo_depth": 1}
    assert timing([conv, tail], 10, 7)[1] == 12  # 7 images: not yet steady
    latency, ii, images = settled_timing([conv, tail], 10, 64)
    assert (latency, ii) == (27, 16) and images == 8
    for n in (images, images + 1, 20):  # every longer run ends in the steady state
        assert _timing(*simulate([conv, tail], 10, n), 10, n) == (27, 16)
    assert _timing(*simulate([conv, tail], 10, images - 1), 10, images - 1)[1] != 16
    assert settled_timing([conv, tail], 10, 6) == (*timing([conv, tail], 10, 6), 6)  # no period within 6


def _count_steps(monkeypatch) -> list:
    """From here on, every cycle a Chain or Graph simulates appends to the list returned."""
    steps = []
    for cls in (stream_model.Chain, stream_model.Graph):
        def counted(self, *args, _step=cls.step, **kwargs):
            steps.append(1)
            return _step(self, *args, **kwargs)
        monkeypatch.setattr(cls, "step", counted)
    return steps


def _every_cycle(monkeypatch) -> None:
    """Run every cycle from here on: no still cycle is skipped (nor a deadlock seen early)."""
    monkeypatch.setattr(stream_model, "_skip_still", lambda modules, horizon: 0)


def _random_graph(rng: random.Random, folds) -> tuple[list[dict], list[str]]:
    """x forks into a branch of one or two same-size engines (padded 3x3 or pointwise windows,
    folded by a choice of ``folds``) and a skip FIFO; a pointwise engine joins them; a
    collector tail at times.  (specs over a 4x5 frame, the skip FIFOs' names)."""
    branch = []
    for k in range(rng.randint(1, 2)):
        engine = {"name": f"b{k}", "inputs": [branch[-1]["name"] if branch else "to_branch"],
                  "latency": rng.randint(0, 3), "fifo_depth": rng.randint(3, 7)}
        if rng.random() < 0.6:
            engine |= {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, rng.choice(folds))}
        else:
            engine |= {"window": (4, 5, 1, 1, 1, 1, 1, 1, rng.choice(folds))}
        branch.append(engine)
    specs = [{"name": "to_branch", "inputs": [PORT], "latency": 0, "fifo_depth": None},
             {"name": "to_join", "inputs": [PORT], "latency": 0, "fifo_depth": None}, *branch,
             {"name": "join", "inputs": [branch[-1]["name"], "to_join"], "window": (4, 5, 1, 1, 1, 1, 1, 1,
                                                                                   rng.choice(folds)),
              "latency": 1, "fifo_depth": 4}]
    if rng.random() < 0.4:
        specs.append({"name": "tail", "inputs": ["join"], "collect": (20, rng.choice(folds)), "latency": 2,
                      "fifo_depth": 2})
    return specs, ["to_branch", "to_join"]


FOLDS = (1, 2, 7, 60)  # reuse factors: a still wait of up to 59 cycles between issues


@pytest.mark.parametrize("seed", range(4))
def test_skipping_still_cycles_changes_no_cycle(seed, monkeypatch):
    """Every function of the cycle model gives, cycle for cycle, what running every cycle gives:
    simulate (the ports always ready and valid, or random), timing, settled_timing and the skip
    FIFO depths, on random chains and fork/join graphs folded up to reuse 60; and it runs
    fewer cycles."""
    rng = random.Random(100 + seed)
    chains = []
    while len(chains) < 12:
        specs, beats = _random_chain(rng, FOLDS)
        if beats:
            chains.append((specs, beats))
    graphs = [_random_graph(rng, FOLDS) for _ in range(4)]
    offers = [rng.random() < 0.7 for _ in range(997)]  # the source's in_valid, cycle t: offers[t % 997]

    def everything() -> list:
        results = []
        for specs, beats in chains:
            results.append(simulate(specs, beats, 5))
            results.append(simulate(specs, beats, 3, in_valid=lambda t: offers[t % 997]))
            results.append(settled_timing(specs, beats, 12))
        for specs, skips in graphs:
            depths = skip_depths(specs, 20, skips)
            sized = [{**spec, "fifo_depth": depths.get(spec["name"], spec["fifo_depth"])} for spec in specs]
            results.append((depths, simulate(sized, 20, 5), settled_timing(sized, 20, 12)))
        return results

    steps = _count_steps(monkeypatch)
    skipping = everything()
    skipped_steps = len(steps)
    steps.clear()
    _every_cycle(monkeypatch)
    assert everything() == skipping
    assert skipped_steps < len(steps) / 2


def test_a_layer_folded_a_million_times_costs_a_few_cycles_per_issue(monkeypatch):
    """A 3x3 conv over a 6x7 padded frame folded by 1,000,000: 20 issues an image, each a
    million cycles apart, simulated in a few cycles each: the II is exactly 20 million."""
    conv = {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1_000_000), "latency": 2,
            "fifo_depth": 5}
    steps = _count_steps(monkeypatch)
    assert timing([conv], 20)[1] == 20_000_000
    assert len(steps) < 2_000


def test_a_deadlock_is_seen_at_once_and_a_stall_by_the_watchdog():
    """With the ports' handshakes fixed, a state from which nothing can move is a deadlock the
    run names at once; a sink that never takes a beat is waited out by the watchdog."""
    graph = [{"name": "to_conv", "inputs": [PORT], "latency": 0, "fifo_depth": 9},
             {"name": "to_add", "inputs": [PORT], "latency": 0, "fifo_depth": 2},
             {"pad": (4, 5, 1, 1, 1, 1), "window": (6, 7, 3, 3, 1, 1, 1, 1, 1), "latency": 3, "fifo_depth": 6,
              "name": "conv", "inputs": ["to_conv"]},
             {"window": (4, 5, 1, 1, 1, 1, 1, 1, 1), "latency": 1, "fifo_depth": 4, "name": "add",
              "inputs": ["conv", "to_add"]}]
    with pytest.raises(Stuck, match="deadlocked at cycle 10: nothing can move again"):
        simulate(graph, 20, 2)
    with pytest.raises(Stuck, match="moved nothing for 50 cycles"):
        simulate(graph, 20, 2, out_ready=lambda t: True, max_idle_cycles=50)


def test_each_modules_moved_still_for_and_count_down():
    """The contract the skip rests on, module by module: a core's pipeline (latency 4) moves
    when a token enters and when it leaves, and between those only counts down (still_for:
    the cycles before the token is its output); a window folded by 5 only counts down after
    its issue until its cooldown is about to reach zero; count_down is those edges at once."""
    pipe = Pipe(4)
    seen = []
    for valid in (True, False, False, False, False, False):
        out = pipe.step(in_valid=valid, in_data=7)
        seen.append((out["out_valid"], pipe.moved, pipe.still_for()))
    assert seen == [(False, True, 3), (False, False, 2), (False, False, 1), (False, False, 0), (True, True, None),
                    (False, False, None)]
    pipe.step(in_valid=True, in_data=8)
    pipe.count_down(3)
    assert pipe.step(in_valid=False, in_data=None) == {"out_valid": True, "out_data": 8} and pipe.moved

    window = Window(1, 3, 1, 1, ii=5)
    assert window.step(in_valid=True, in_data=1, credit=True)["issue"] and window.moved
    still = []
    for _ in range(4):
        out = window.step(in_valid=True, in_data=2, credit=True)
        still.append((out["in_ready"], window.moved, window.still_for()))
    assert still == [(False, True, 2), (False, False, 1), (False, False, 0), (False, True, None)]
    window = Window(1, 3, 1, 1, ii=5)
    window.step(in_valid=True, in_data=1, credit=True)
    window.step(in_valid=False, in_data=None, credit=True)
    window.count_down(2)
    assert window.cooldown == 1 and not window.step(in_valid=True, in_data=2, credit=True)["in_ready"]
    assert window.step(in_valid=True, in_data=2, credit=True)["issue"]
