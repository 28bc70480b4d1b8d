"""``finegrain plan``: the command group that finds bit plans (today ``plan sweep``,
compiler/sweep.py, docs/sweep.md).  Its own module so that compiler/cli.py stays a list of
the single commands; like theirs, each handler imports what it needs when it runs (the sweep
pulls in the estimator, the backends and, through the user's spec, torch)."""

from __future__ import annotations

import os

from .targets import BOARDS, DEFAULT_PART


def cmd_plan_sweep(args) -> int:
    from .sweep import SweepOptions, run_sweep
    from .sweep_report import sweep_table

    options = SweepOptions(part=args.part, board=args.board, clock_ns=args.clock_ns, jobs=args.jobs, ray=args.ray,
                           synth=args.synth)
    sweep = run_sweep(args.spec, args.output, lambdas=args.lambdas, max_luts=args.max_luts, seed=args.seed,
                      options=options, force=args.force)
    print(sweep_table(sweep))
    print(f"wrote {args.output}/sweep.json, sweep.md and report.html ({len(sweep['points'])} points, "
          f"{len(sweep['failed'])} failed)")
    return 1 if sweep["failed"] else 0


def add_plan_parser(sub) -> None:
    """finegrain plan sweep (compiler/sweep.py, docs/sweep.md)."""
    plan = sub.add_parser("plan", help="find bit plans: 'plan sweep' trains, compiles and estimates one model per "
                                       "lambda or LUT budget and plots accuracy against LUTs")
    w = plan.add_subparsers(dest="plan_command", required=True).add_parser(
        "sweep", help="run SPEC.py's train(point, out_dir) for each point, compile and estimate each export, and "
                      "write OUT/sweep.json, sweep.md and report.html (the accuracy-vs-LUT Pareto front)")
    w.add_argument("spec", help="Python file defining train(point: dict, out_dir: pathlib.Path) -> dict with "
                                "'accuracy' (docs/sweep.md)")
    w.add_argument("-o", "--output", required=True, help="output folder of the sweep")
    w.add_argument("--lambda", dest="lambdas", type=float, nargs="+", metavar="L",
                   help="one point per value: point['lambda'], the weight of the hardware cost in the loss")
    w.add_argument("--max-lut", dest="max_luts", type=int, nargs="+", metavar="N",
                   help="one point per value: point['max_lut'], a LUT budget (without --lambda or --max-lut: the "
                        "SPEC's POINTS list)")
    w.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="points trained at once, each in its own process or Ray task (default: the cores)")
    w.add_argument("--ray", metavar="ADDRESS",
                   help="run the points as Ray tasks on the cluster at ADDRESS (ray.init(address=...)); 'local' "
                        "starts a local Ray instance")
    w.add_argument("--synth", choices=("none", "pareto", "all"), default="none",
                   help="synthesize with yosys: no point (default), the points on the Pareto front, or all")
    w.add_argument("--board", help="target board preset: " + ", ".join(BOARDS))
    w.add_argument("--part", help=f"target FPGA part (default {DEFAULT_PART})")
    w.add_argument("--clock-ns", type=float, default=5.0, help="clock period of the estimate in ns (default 5)")
    w.add_argument("--seed", type=int, default=0, help="point['seed'] of every point (default 0)")
    w.add_argument("--force", action="store_true", help="replace a previous sweep's output folder")
    w.set_defaults(func=cmd_plan_sweep)
