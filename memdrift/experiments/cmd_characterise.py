"""``memdrift characterise``: run a characterisation protocol on a preset, write netCDF."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError, NamedError
from memdrift.experiments.cmd_pulse import available_cores

PROTOCOLS = ("pd-cycling", "dr-map", "ffp-segmentation", "retention", "iv", "endurance")
#: the flag of each protocol setting (a field of a protocol's settings class), for error messages
FLAGS = {"cycles": "--cycles", "temperatures_k": "--temperatures", "time_min_s": "--time-min",
         "time_max_s": "--time-max", "times": "--times", "program_pulses": "--program-pulses",
         "amplitudes_v": "--amplitudes", "pulses": "--pulses", "width_s": "--width", "voltage_max_v": "--v-max",
         "steps": "--steps", "dwell_s": "--dwell", "record": "--record", "levels": "--levels",
         "backend": "--backend", "conduction": "--conduction"}
#: the flag of each argument the emulator's other messages name (:class:`memdrift.errors.NamedError`)
ARGUMENT_FLAGS = FLAGS | {"chunk_devices": "--chunk-devices"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("characterise", help="emulate a characterisation protocol (probe station) into netCDF",
                       description="Run a characterisation protocol on an ensemble of emulated devices and write "
                                   "a netCDF dataset (CF units, protocol/preset/seed/version attributes).")
    p.add_argument("--device", required=True, metavar="PRESET", help="shipped preset name or a preset .toml path")
    p.add_argument("--protocol", required=True, metavar="NAME", help=f"one of: {', '.join(PROTOCOLS)}")
    p.add_argument("--devices", type=int, default=16, help="ensemble size (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=available_cores(),
                   help="compute threads (default: this machine's cores; results do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--float32", action="store_true",
                   help="store conductance/resistance in single precision (7 significant digits; the other variables stay float64)")
    p.add_argument("--chunk-devices", type=int, default=None, metavar="N",
                   help="devices computed and written at a time (default: chunks of about 64 MiB)")
    p.add_argument("--no-noise", action="store_true", help="expected hop counts instead of Poisson counts")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.nc", help="netCDF file to write")
    g = p.add_argument_group("protocol options (each protocol rejects the ones it does not use)")
    g.add_argument("--cycles", type=int, default=None,
                   help="pd-cycling: cycles (100); iv: loops (1); endurance: cycles run (10000)")
    g.add_argument("--temperatures", default=None, metavar="K,K,...",
                   help="retention: bake temperatures in K (default 300,325,350)")
    g.add_argument("--time-min", type=float, default=None, metavar="S", help="retention: first read, s (1)")
    g.add_argument("--time-max", type=float, default=None, metavar="S", help="retention: last read, s (10 years)")
    g.add_argument("--times", type=int, default=None, metavar="N", help="retention: log-spaced reads (41)")
    g.add_argument("--program-pulses", type=int, default=None, metavar="N",
                   help="retention: ramp potentiation pulses that program the state (half the branch)")
    g.add_argument("--amplitudes", default=None, metavar="V,V,...",
                   help="dr-map: signed family amplitudes in V (default 0.7..1.0 and -0.7..-1.0)")
    g.add_argument("--pulses", type=int, default=None, help="dr-map: pulses per family (20)")
    g.add_argument("--width", type=float, default=None, metavar="S", help="dr-map: pulse width, s (200e-9)")
    g.add_argument("--v-max", type=float, default=None, metavar="V", help="iv: loop amplitude, V (1.0)")
    g.add_argument("--steps", type=int, default=None, help="iv: voltage steps from 0 to v-max (25)")
    g.add_argument("--dwell", type=float, default=None, metavar="S", help="iv: time per voltage step, s (1e-3)")
    g.add_argument("--record", type=int, default=None, metavar="N",
                   help="endurance: log-spaced cycles kept in the file (50)")
    g.add_argument("--levels", default=None, metavar="N,N,...",
                   help="ffp-segmentation (bulk4t): level counts (32,128,512)")
    g.add_argument("--backend", choices=("compiled", "reference"), default=None,
                   help="pd-cycling, dr-map, iv (filament): the compiled kernel (default) or its NumPy twin, which "
                        "computes the ensemble in one chunk")
    g.add_argument("--conduction", default=None, metavar="FILE.py:FUNCTION",
                   help="pd-cycling, dr-map, iv (filament) with --backend reference: conduction law compiled with "
                        "Numba instead of the built-in sinh law, law(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a "
                        "(see docs/policies.md)")
    p.set_defaults(func=run)


def _floats(name: str, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    out = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise MemdriftError(f"{name} = {text!r}: {part.strip()!r} is not a number; allowed: a comma-separated "
                                "list of numbers") from None
    if len(set(out)) != len(out):
        # each value becomes a coordinate of the dataset, and a coordinate must be unique
        raise MemdriftError(f"{name} = {text!r} repeats a value; allowed: distinct values")
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.protocols import (UnusedOption, build_options, characterise, options_type,
                                             write_characterisation)
    from memdrift.experiments.cmd_extract import parse_levels

    from memdrift.data.io import check_output_path
    from memdrift.errors import check_seed

    check_output_path(args.output, ".nc", "output")
    check_seed("seed", args.seed)
    if args.protocol not in PROTOCOLS:
        raise MemdriftError(f"protocol = {args.protocol!r} is unknown; allowed: {', '.join(PROTOCOLS)}")
    settings = dict(devices=args.devices, cycles=args.cycles, seed=args.seed, threads=args.threads,
                    noise=not args.no_noise, chunk_devices=args.chunk_devices,
                    temperatures_k=_floats("temperatures", args.temperatures), time_min_s=args.time_min,
                    time_max_s=args.time_max, times=args.times, program_pulses=args.program_pulses,
                    amplitudes_v=_floats("amplitudes", args.amplitudes), pulses=args.pulses, width_s=args.width,
                    voltage_max_v=args.v_max, steps=args.steps, dwell_s=args.dwell, record=args.record,
                    levels=parse_levels(args.levels) if args.levels is not None else None, backend=args.backend,
                    conduction=args.conduction)
    preset = load_preset(args.device)
    try:
        # the protocol's settings class made from the flags given (a flag left out keeps its default)
        opts = build_options(options_type(preset, args.protocol), settings)
    except UnusedOption as exc:
        # the emulator names the fields; here each comes with the flag that set it
        raise MemdriftError(exc.message(lambda name: f"{name} ({FLAGS[name]})")) from None
    if getattr(opts, "conduction", None) is not None:
        from memdrift.emulator.engine import check_conduction_backend

        try:
            check_conduction_backend(args.conduction, getattr(opts, "backend", "compiled"))
        except MemdriftError as exc:
            raise MemdriftError(f"{exc} (--backend reference)") from None
    try:
        ds = characterise(preset, args.protocol, opts)
    except NamedError as exc:
        # the emulator names its arguments; here each is the flag that set it
        raise MemdriftError(exc.message(lambda name: ARGUMENT_FLAGS.get(name, name))) from None
    write_characterisation(ds, args.output, progress=not args.quiet, float32=args.float32)
    print(f"wrote {args.output} ({args.protocol}; {', '.join(f'{k}={v}' for k, v in ds.sizes.items())})")
    return 0
