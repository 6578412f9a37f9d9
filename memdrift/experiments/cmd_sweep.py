"""``memdrift sweep SPEC.toml -o OUT.nc [--scheduler ADDRESS] [--workers N] [--plot OUT.png]``."""

from __future__ import annotations

import argparse
import sys

from memdrift.errors import MemdriftError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep", help="sweep pulse schemes and device parameters on Dask",
        description="Run a design-space sweep described by a TOML spec (see memdrift/data/sweeps/ for examples): "
                    "ramp/identical pulses on a filament preset, or FFP on a bulk four-terminal preset; "
                    "optionally network accuracy through aihwkit ([metrics.accuracy]). "
                    "Finished points are kept in OUT.nc.parts/, so rerunning after an interruption only "
                    "computes the rest.")
    p.add_argument("spec", metavar="SPEC.toml", help="sweep spec")
    p.add_argument("-o", "--output", required=True, metavar="OUT.nc", help="netCDF result")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running dask.distributed scheduler (used as it is)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local cluster (default: one a core)")
    where.add_argument("--serial", action="store_true", help="compute in this process, without Dask")
    p.add_argument("--plot", metavar="OUT.png", help="Pareto plot (PNG)")
    p.add_argument("--best", type=int, default=10, metavar="K", help="rows of the best-schemes table (default 10)")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memdrift.experiments import sweep

    from memdrift.data.io import check_output_path

    out = check_output_path(args.output, ".nc", "output")
    if args.plot is not None:
        check_output_path(args.plot, ".png", "plot")
    if args.workers is not None and args.workers < 1:
        raise MemdriftError(f"--workers = {args.workers!r} is out of range; allowed: >= 1")
    if args.best < 0:
        raise MemdriftError(f"--best = {args.best!r} is out of range; allowed: >= 0")
    spec = sweep.load_spec(args.spec)
    mode = "serial" if args.serial else "scheduler" if args.scheduler else "local"
    result = sweep.run_sweep(spec, out, mode=mode, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.no_progress)
    print(f"sweep {spec.name}: {spec.n_points} points ({result.computed} computed, {result.reused} reused) "
          f"-> {out}", file=sys.stderr)
    if args.best:
        print(sweep.best_table(result.dataset, args.best))
    if args.plot:
        sweep.plot_pareto(result.dataset, args.plot)
    return 0
