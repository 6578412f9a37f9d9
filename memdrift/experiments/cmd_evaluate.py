"""``memdrift evaluate DEVICE.json --network NAME --dataset NAME [-o OUT.nc]``.

Runs one network study on an extraction record through aihwkit and writes the
results (netCDF, ``accuracy`` over mode × repeat [× sweep]), a PNG beside it, and
prints a table. Heavy imports (torch, aihwkit) stay inside ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memdrift.mapping.tiles import TILES

STUDIES = ("accuracy", "drift", "dtod", "bits", "train")
NETWORKS = ("mlp", "mlp-256-128", "lenet5", "cifar-resnet3", "resnet34")
DATASETS = ("mnist-5k", "digits", "mnist", "fashion-mnist", "cifar10", "caltech101")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="network accuracy on a device record (aihwkit)",
                              description=__doc__.splitlines()[0])
    p.add_argument("record", metavar="DEVICE.json", help="extraction record (memdrift extract)")
    p.add_argument("--network", required=True, choices=NETWORKS)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="directory holding torchvision datasets (no download)")
    p.add_argument("--study", default="accuracy", choices=STUDIES)
    p.add_argument("-o", "--output", default=None, metavar="OUT.nc", help="results netCDF (PNG written beside it)")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="PNG path (default: OUT.nc with .png)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--epochs", type=int, default=30, help="digital (or in-memory) training epochs")
    p.add_argument("--hwat-epochs", type=int, default=5, help="hardware-aware training epochs")
    p.add_argument("--repeats", type=int, default=5, help="analog programming repeats")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="digital learning rate (Adam)")
    p.add_argument("--hwat-lr", type=float, default=0.01, help="HWAT learning rate (AnalogSGD)")
    p.add_argument("--analog-lr", type=float, default=0.1, help="in-memory training learning rate (AnalogSGD)")
    p.add_argument("--dtod", type=float, default=0.0, help="device-to-device variation of the window (0-1)")
    p.add_argument("--ir-drop", type=float, default=0.0, help="aihwkit IR-drop scale (slow; 0 = off)")
    p.add_argument("--weight-range", default="tile", metavar="R|tile",
                   help="bits study: default 'tile' = the TiO2-x paper's [-4, 4] window after aihwkit's per-tile "
                        "weight scaling (each tile's largest |w| at the window's ends); a number R fixes [-R, R] "
                        "for every tile")
    p.add_argument("--tile", default="auto", choices=TILES,
                   help="aihwkit tile: torch (same --seed, same result), cpp (C++, seeds itself: runs differ; "
                        "the only one with IR drop), auto = torch unless --ir-drop")
    p.add_argument("--train-samples", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--test-samples", type=int, default=None, help="use only the first N test samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--quiet", action="store_true", help="no epoch progress bars")
    g = p.add_argument_group("physics in the loop (--program physics)")
    g.add_argument("--program", default="record", choices=("record", "physics"),
                   help="record: weights drawn from the record's statistics (the studies); physics: every weight "
                        "programmed on its own emulated device pair, aged, and compared with the record route")
    g.add_argument("--scheme", default="pulse-count", choices=("pulse-count", "write-verify", "ffp-levels"),
                   help="physics programming: open-loop ramp pulse count from the preset's linear fit, ISPP "
                        "write-verify to a band (filament), or FFP + segmentation levels of a pool of emulated "
                        "films (film), at every --bits depth")
    g.add_argument("--preset", default=None, help="preset (name or .toml) the devices are emulated from (default "
                   "hfoxsy-hfs2; tio2x-4t for ffp-levels)")
    g.add_argument("--pool", type=int, default=8, help="ffp-levels: films emulated for the pool (default 8)")
    g.add_argument("--pool-realisations", type=int, default=2,
                   help="ffp-levels: FFP cycles per film, each a realisation of its levels (default 2)")
    g.add_argument("--grid", type=int, default=None, help="ffp-levels: film cells per side (default: the preset's)")
    g.add_argument("--map-pulses", type=int, default=100,
                   help="ffp-levels: identical pulses per amplitude of each film's dR map (default 100)")
    g.add_argument("--bits", default=None, metavar="B1,B2,...",
                   help="ffp-levels: bit depths (default 3,4,5,6,7,8,9)")
    g.add_argument("--age", action="append", default=[], metavar="T",
                   help="aging time after programming, repeatable: a number with unit s, min, h, d, w, y (e.g. 1d)")
    g.add_argument("--age-temperature", action="append", type=float, default=[], metavar="K",
                   help="aging temperature (K), repeatable (default 300)")
    g.add_argument("--age-levels", type=int, default=None, metavar="K",
                   help="ffp-levels with --age: conductance anchors of the window at which each pool film is aged, "
                        "the levels between interpolated (default 8: exactly the levels of 3 bits)")
    g.add_argument("--reference", default=None, choices=("fixed", "aged-film"),
                   help="ffp-levels with --age: each weight's reference, fixed (default: the window's middle at "
                        "every age) or aged-film (a film programmed to the window's middle, one per input line, "
                        "aged by the same physics at the same temperature)")
    g.add_argument("--age-mode", default=None, choices=("anchors", "realisations"),
                   help="ffp-levels with --age: a weight's aging, anchors (default: its film's change at its level, "
                        "interpolated between --age-levels states of one more FFP branch) or realisations (every "
                        "(film, realisation, level) state the weights sit on held on its own; refused where the "
                        "holds' step bound exceeds its budget)")
    g.add_argument("--emulator-threads", type=int, default=1, help="threads of the compiled emulator kernels")
    g.add_argument("--chunk-devices", type=int, default=None, help="devices emulated together (default 65536)")
    g.add_argument("--dask-workers", type=int, default=0, metavar="N",
                   help="pulse-count / write-verify: program the device chunks on a Dask LocalCluster of N "
                        "single-threaded worker processes (default 0: here); the result is the same bit for bit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memdrift.errors import MemdriftError, check_range

    from memdrift.data.io import check_output_path
    from memdrift.errors import check_seed

    if args.output is not None:
        check_output_path(args.output, ".nc", "output")
    if args.plot is not None:
        check_output_path(args.plot, ".png", "plot")
    check_seed("seed", args.seed)
    from memdrift.mapping.record import load_record

    record = load_record(args.record)
    for name in ("train_samples", "test_samples"):
        if getattr(args, name) is not None:
            check_range(name.replace("_", "-"), getattr(args, name), 1, 1 << 31)
    if args.threads is not None:
        check_range("threads", args.threads, 1, 1024)
    try:
        import torch  # noqa: F401

        from memdrift.experiments import datasets, evaluate
        from memdrift.mapping import aihwkit_bridge  # noqa: F401  (fails early when aihwkit is missing)
    except ImportError as exc:
        raise MemdriftError(f"memdrift evaluate needs torch and aihwkit ({exc}); install them with "
                            "bash scripts/install-aihwkit.sh") from None
    import torch

    from memdrift.data.io import write_dataset

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = evaluate.Settings(epochs=args.epochs, hwat_epochs=args.hwat_epochs, batch_size=args.batch_size,
                                 lr=args.lr, hwat_lr=args.hwat_lr, analog_lr=args.analog_lr,
                                 repeats=args.repeats, seed=args.seed, device=args.device, dtod=args.dtod,
                                 ir_drop=args.ir_drop, tile=args.tile, bits_weight_range=_weight_range(args),
                                 progress=not args.quiet).checked()
    evaluate.torch_device(settings.device)
    # validate the record before the (long) training starts
    aihwkit_bridge.describe(record)
    evaluate.check_study_inputs(args.study, record)
    physics = _physics_inputs(args) if args.program == "physics" else None
    if physics is not None and physics.get("bits"):
        settings = evaluate.with_settings(settings, bits_values=physics["bits"]).checked()
    data = datasets.load(args.dataset, args.data_dir).subset(args.train_samples, args.test_samples)
    if physics is None:
        ds = evaluate.run_study(args.study, record, args.network, data, settings)
        table, plot = evaluate.table, evaluate.plot
    else:
        import time

        from memdrift.experiments import evaluate_physics

        t0 = time.perf_counter()
        c0 = time.process_time()
        if physics["scheme"] == "ffp-levels":
            from memdrift.experiments import evaluate_film

            ds = evaluate_film.study_film_levels(record, args.network, data, settings, **physics)
            table, plot = evaluate_film.table, evaluate_film.plot
        else:
            ds = evaluate_physics.study_physics(record, args.network, data, settings, **physics)
            table, plot = evaluate_physics.table, evaluate_physics.plot
        ds.attrs["wall_time_s"] = time.perf_counter() - t0
        ds.attrs["cpu_time_s"] = time.process_time() - c0
    ds.attrs["record_file"] = str(Path(args.record).resolve())
    print(table(ds))
    if args.output:
        write_dataset(ds, args.output)
        png = args.plot or str(Path(args.output).with_suffix(".png"))
        plot(ds, png)
        print(f"wrote {args.output} and {png}")
    elif args.plot:
        plot(ds, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _physics_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The physics route's arguments, checked before any training."""
    from memdrift.emulator.params import load_preset
    from memdrift.errors import MemdriftError, check_range
    from memdrift.experiments.evaluate_physics import parse_duration
    from memdrift.mapping import film_pool

    if args.study != "accuracy":
        raise MemdriftError(f"--program physics runs its own study; --study {args.study} is not allowed with it "
                            "(allowed: the default, accuracy)")
    film = args.scheme == "ffp-levels"
    name = args.preset or ("tio2x-4t" if film else "hfoxsy-hfs2")
    preset = load_preset(name)
    if film and preset.model != "bulk4t":
        raise MemdriftError(f"--scheme ffp-levels needs a film (bulk4t) preset; {name!r} is a {preset.model} model "
                            "(allowed: tio2x-4t or a bulk4t .toml)")
    if not film and preset.model != "filament":
        raise MemdriftError(f"--scheme {args.scheme} needs a filament preset; {name!r} is a {preset.model} model "
                            "(a film is programmed with --scheme ffp-levels)")
    check_range("emulator-threads", args.emulator_threads, 1, 1024)
    if args.chunk_devices is not None:
        check_range("chunk-devices", args.chunk_devices, 1, 1 << 30)
    temps = [check_range("age-temperature", t, 1.0, 2000.0, unit="K") for t in args.age_temperature] or [300.0]
    common = {"params": preset.params, "preset": preset.name, "scheme": args.scheme,
              "threads": args.emulator_threads, "chunk_devices": args.chunk_devices}
    if not film:
        given = [flag for flag, value in (("--bits", args.bits), ("--grid", args.grid),
                                                     ("--age-levels", args.age_levels),
                                                     ("--reference", args.reference),
                                                     ("--age-mode", args.age_mode)) if value is not None]
        if given:
            raise MemdriftError(f"{given[0]} is only for --scheme ffp-levels (the film pool); not allowed with "
                                f"--scheme {args.scheme}")
        check_range("dask-workers", args.dask_workers, 0, 1024)
        return {**common, "ages_s": [parse_duration(a) for a in args.age], "temperatures_k": temps,
                "dask_workers": args.dask_workers}
    if args.dask_workers:
        raise MemdriftError("--dask-workers is only for --scheme pulse-count|write-verify; the film pool is built here")
    check_range("pool", args.pool, 1, 4096)
    check_range("pool-realisations", args.pool_realisations, 1, 1024)
    check_range("map-pulses", args.map_pulses, 1, 100_000)
    if args.grid is not None:
        check_range("grid", args.grid, 4, 512)
    ages_s = [parse_duration(a) for a in args.age]
    if args.age_levels is not None:
        if not ages_s:
            raise MemdriftError("--age-levels is only for aging; allowed with --age")
        check_range("age-levels", args.age_levels, *film_pool.AGE_LEVELS_RANGE)
    if args.reference == "aged-film" and not ages_s:
        raise MemdriftError("--reference aged-film is only for aging (the reference film ages with the pool); "
                            "allowed with --age")
    if args.age_mode is not None and not ages_s:
        raise MemdriftError(f"--age-mode {args.age_mode} is only for aging; allowed with --age")
    grid = {} if args.grid is None else {"grid_x": float(args.grid), "grid_y": float(args.grid)}
    # a hold the film cannot reach within its step bound is refused here, not after the training
    film_pool.check_ages(preset.params.replace(**grid), [(t, a) for t in temps for a in ages_s])
    if args.age_mode == "realisations":
        from memdrift.experiments.evaluate import BITS_VALUES

        film_pool.check_realisation_budget(preset.params.replace(**grid), args.pool, args.pool_realisations,
                                           _bits(args.bits) or BITS_VALUES, film_pool.MAX_EVENTS,
                                           [(t, a) for t in temps for a in ages_s],
                                           reference=args.reference == "aged-film")
    return {**common, "calibration": dict(preset.calibration), "pool": args.pool,
            "realisations": args.pool_realisations, "grid": args.grid, "map_pulses": args.map_pulses,
            "bits": _bits(args.bits), "ages_s": ages_s, "temperatures_k": temps, "age_levels": args.age_levels,
            "reference": args.reference or "fixed", "age_mode": args.age_mode or "anchors"}


def _bits(text: str | None) -> tuple[int, ...] | None:
    from memdrift.errors import MemdriftError, check_range

    if text is None:
        return None
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise MemdriftError(f"bits = {text!r} is not a list of integers; allowed: e.g. 3,4,5") from None
    if not values:
        raise MemdriftError("bits is empty; allowed: one or more bit depths, e.g. 3,4,5")
    return tuple(int(check_range("bits", b, 1, 12)) for b in values)


def _weight_range(args: argparse.Namespace) -> float | str:
    from memdrift.errors import MemdriftError

    if args.weight_range == "tile":
        return "tile"
    try:
        return float(args.weight_range)
    except ValueError:
        raise MemdriftError(f"weight_range = {args.weight_range!r} is not allowed; allowed: a number > 0 or "
                            "'tile'") from None
