"""``memdrift calibrate``: fit a model's physics parameters to measured data → preset TOML."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a model to measured curves or published figures; write a preset TOML",
                       description="Fit the physics parameters of a model to measured data (CSV or netCDF, layout "
                                   "in memdrift/mapping/README.md) with scipy least squares, or with --targets to "
                                   "the published figures of merit of a paper's protocol inside the model's "
                                   "physical envelope (docs/calibration.md); write a preset TOML whose "
                                   "[calibration] table records the fit.")
    p.add_argument("data", type=Path, nargs="?", default=None, metavar="MEASURED.(nc|csv)",
                   help="measured pulse-cycling data (not with --targets)")
    p.add_argument("--model", default=None, metavar="filament|bulk4t", help="model to fit (measured data)")
    p.add_argument("--targets", default=None, metavar="SECTION",
                   help="fit to the figures of this reference/targets.toml section instead of data "
                        "(filament_hfoxsy_hfs2, bulk_tio2x_four_terminal)")
    p.add_argument("--stages", default=None, metavar="S,S,...",
                   help="--targets: stages to run; filament: of global, polish, noise, check (default "
                        "global,noise,check); film: of init, check, mechanism, grid (default init,check)")
    p.add_argument("--check-films", type=int, default=1, metavar="N",
                   help="--targets film: films (seeds --seed ...) the check stage runs the paper's FFP on "
                        "(default 1)")
    p.add_argument("--init-evaluations", type=int, default=60, metavar="N",
                   help="--targets film: least-squares evaluations of the init stage (default 60)")
    p.add_argument("--ffp-correction", type=float, default=None, metavar="B",
                   help="--targets film: the check's FFP corrects its table after every event by (target |dR| / "
                        "|dR|)^B, B in [0, 1], and the written preset replays it (default: the start preset's "
                        "calibration, else the table alone)")
    p.add_argument("--ffp-correction-base", choices=("table", "last"), default=None,
                   help="--targets film with --ffp-correction: what the correction scales, the table's amplitude "
                        "(table) or the last write's (last); default: the start preset's calibration, else table")
    p.add_argument("--polish-rounds", type=int, default=3, metavar="N",
                   help="--targets: Nelder-Mead restarts of the polish stage (default 3)")
    p.add_argument("--polish-evaluations", type=int, default=800, metavar="N",
                   help="--targets: cost evaluations per polish round (default 800)")
    p.add_argument("--generations", type=int, default=150, metavar="N",
                   help="--targets: differential-evolution generations of the global stage (default 150)")
    p.add_argument("--popsize", type=int, default=12, metavar="N",
                   help="--targets: population per searched parameter (default 12)")
    p.add_argument("--seed", type=int, default=0, help="--targets: seed of the search and of the check devices")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="PRESET.toml", help="preset to write")
    p.add_argument("--free", default=None, metavar="NAME,NAME,...",
                   help="parameters to fit (default filament: activation_energy_ev,tunnel_current_a,"
                        "series_resistance_ohm,site_population; bulk4t: conductivity_base_s_per_m,"
                        "conductivity_vacancy_s_per_m)")
    p.add_argument("--start-preset", default=None, metavar="NAME",
                   help="preset (name or .toml) holding the starting values and the fixed parameters "
                        "(default hfoxsy-hfs2 / tio2x-4t)")
    p.add_argument("--name", default=None, help="name of the written preset (default <start>-calibrated)")
    p.add_argument("--fit-cycles", type=int, default=3, metavar="N",
                   help="filament: first measured cycles whose ensemble-mean curves are fitted (default 3)")
    p.add_argument("--span", type=float, default=10.0,
                   help="each free parameter stays within [start/span, start*span] (default 10)")
    p.add_argument("--rounds", type=int, default=3,
                   help="filament: mean-curve fits alternated with the noise correction (default 3; 1 = none)")
    p.add_argument("--read-voltage", type=float, default=None, metavar="V",
                   help="filament: read voltage when the file does not record it (default -0.1)")
    p.add_argument("--read-width", type=float, default=None, metavar="S", help="read duration, s (default 30e-6)")
    p.add_argument("--read-gap", type=float, default=None, metavar="S",
                   help="zero-bias time between pulse and read, s (default 20e-6)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memdrift.data.io import check_output_path
    from memdrift.emulator.params import save_preset
    from memdrift.errors import check_range
    from memdrift.mapping.calibrate import calibrate

    check_output_path(args.output, ".toml", "output")
    if args.targets is not None:
        return _run_targets(args)
    if args.data is None or args.model is None:
        raise MemdriftError("calibrate needs MEASURED.(nc|csv) and --model, or --targets SECTION")
    from memdrift.models import MODELS

    if args.model not in MODELS.calibratable():
        raise MemdriftError(f"model = {args.model!r} is unknown; allowed: {', '.join(MODELS.calibratable())}")
    check_range("fit-cycles", args.fit_cycles, 1, 10_000)
    check_range("rounds", args.rounds, 1, 20)
    if args.read_voltage is not None:
        check_range("read-voltage", args.read_voltage, -10.0, 10.0, unit="V")
    for name, value in (("read-width", args.read_width), ("read-gap", args.read_gap)):
        if value is not None:
            check_range(name, value, 0.0, 1.0, low_open=name == "read-width", unit="s")
    read = {"read_voltage_v": args.read_voltage, "read_width_s": args.read_width, "read_gap_s": args.read_gap}
    preset, result = calibrate(args.data, args.model, free=args.free, start_preset=args.start_preset,
                               fit_cycles=args.fit_cycles, span=args.span, read=read, name=args.name,
                               rounds=args.rounds, progress=True)
    save_preset(preset, args.output)
    rec = result.record
    width = max(len(n) for n in result.fitted)
    for n, v in result.fitted.items():
        print(f"{n:<{width}}  {rec['start'][n]:.6g} -> {v:.6g}")
    for key in ("mean_curve_rms_relative", "spread_relative_residual", "levels_rms_relative"):
        if key in rec:
            print(f"{key}: {rec[key]:.4g}")
    if rec.get("at_bound"):
        print(f"warning: at the --span bound: {', '.join(rec['at_bound'])}")
    print(f"wrote {args.output}")
    return 0


def _run_targets(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from memdrift.emulator.params import save_preset
    from memdrift.errors import check_range
    from memdrift.mapping.calibrate_targets import calibrate_to_targets

    if args.data is not None:
        raise MemdriftError("data = given with --targets; allowed: one of MEASURED.(nc|csv) or --targets")
    check_range("generations", args.generations, 1, 100_000)
    check_range("popsize", args.popsize, 2, 1000)
    check_range("polish-rounds", args.polish_rounds, 1, 1000)
    check_range("polish-evaluations", args.polish_evaluations, 1, 1_000_000)
    command = "memdrift " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from memdrift.mapping import calibrate_film

    for flag, value in (("ffp-correction", args.ffp_correction), ("ffp-correction-base", args.ffp_correction_base)):
        if value is not None and args.targets != calibrate_film.SECTION:
            raise MemdriftError(f"{flag} = {value!r} is only for --targets {calibrate_film.SECTION}; allowed: "
                                f"omit --{flag}")

    if args.targets == calibrate_film.SECTION:
        check_range("check-films", args.check_films, 1, 1000)
        check_range("init-evaluations", args.init_evaluations, 1, 100_000)
        stages = [s for s in (args.stages or "init,check").split(",") if s]
        film = calibrate_film.calibrate_film(args.start_preset or "tio2x-4t", args.targets, stages=stages,
                                             seeds=range(args.seed, args.seed + args.check_films),
                                             init_evaluations=args.init_evaluations, name=args.name,
                                             ffp_correction_exponent=args.ffp_correction,
                                             ffp_correction_base=args.ffp_correction_base, command=command)
        save_preset(film.preset, args.output)
        print(f"wrote {args.output}")
        return 0
    stages = [s for s in (args.stages or "global,noise,check").split(",") if s]
    result = calibrate_to_targets(args.start_preset or "hfoxsy-hfs2", args.targets, stages=stages,
                                  generations=args.generations, popsize=args.popsize, seed=args.seed,
                                  polish_rounds=args.polish_rounds, polish_evaluations=args.polish_evaluations,
                                  name=args.name, command=command)
    save_preset(result.preset, args.output)
    print(f"wrote {args.output}")
    return 0
