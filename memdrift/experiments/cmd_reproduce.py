"""``memdrift reproduce EXPERIMENT [-o DIR] [--strict]``: a paper's device figures, with a paper-vs-memdrift
table and a PASS/FAIL verdict per figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError

EXPERIMENTS = ("hfoxsy-ramp", "tio2x-ffp")

#: exit status of ``--strict`` when a figure falls outside its tolerances (1 is a bug, 2 bad input)
EXIT_OUTSIDE_TOLERANCE = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="reproduce a paper's device figures (PNG + paper-vs-memdrift table)",
                       description="Emulate a shipped preset with its paper's protocol, extract the record and "
                                   "write dataset, record and PNGs into DIR; print the published figures beside "
                                   "the emulated ones with a PASS/FAIL verdict per figure against the tolerances "
                                   "in memdrift/data/reference/tolerances.toml; the figures draw the paper's "
                                   "values over the emulated ones. hfoxsy-ramp: Fig. 2d-f; tio2x-ffp: dR map, "
                                   "FFP trace, segmentation, CPDs.")
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("-o", "--output", type=Path, default=Path("reproduce"), metavar="DIR",
                   help="directory for the files (default ./reproduce)")
    p.add_argument("--devices", type=int, default=None,
                   help="ensemble size (default 200 for hfoxsy-ramp, the preset's calibration check; 1 for tio2x-ffp)")
    p.add_argument("--cycles", type=int, default=None, help="ramp cycles (hfoxsy-ramp; default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--strict", action="store_true",
                   help=f"exit {EXIT_OUTSIDE_TOLERANCE} when a figure falls outside its tolerances (files are "
                        "written either way)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memdrift.errors import check_range
    from memdrift.experiments.reproduce import reproduce

    check_range("threads", args.threads, 1, 1024)
    check_range("seed", args.seed, 0, 2**63 - 1)
    if args.output.exists() and not args.output.is_dir():
        raise MemdriftError(f"output = {str(args.output)!r} is a file; allowed: a directory (made when missing)")
    if args.experiment == "tio2x-ffp" and args.cycles is not None:
        raise MemdriftError(f"cycles = {args.cycles!r} is not used by tio2x-ffp (one FFP branch pair per device); "
                            "allowed: omit --cycles")
    options: dict = {"seed": args.seed, "threads": args.threads}
    if args.devices is not None:
        check_range("devices", args.devices, 1, 10**8)
        options["devices"] = args.devices
    if args.experiment == "hfoxsy-ramp":
        options["cycles"] = 100 if args.cycles is None else args.cycles
    result = reproduce(args.experiment, args.output, **options)
    print(result.table())
    for path in result.files:
        print(f"wrote {path}")
    return EXIT_OUTSIDE_TOLERANCE if args.strict and not result.passed else 0
