"""``memdrift pulse``: emulate a pulse scheme on a device ensemble, write netCDF (+ PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError
from memdrift.models import MODELS


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pulse", help="emulate a pulse scheme on an ensemble of devices",
                       description="Emulate a pulse scheme on an ensemble of devices and write a netCDF dataset.")
    p.add_argument("--device", required=True, metavar="PRESET", help="shipped preset name or a preset .toml path")
    p.add_argument("--scheme", default=None, help="pulse scheme (default: the preset's); see `memdrift presets`")
    p.add_argument("--devices", type=int, default=100, help="ensemble size (default 100)")
    p.add_argument("--cycles", type=int, default=None, help="programming cycles (default 100 for ramp, else 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=available_cores(),
                   help="compute threads (default: this machine's cores; results do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--float32", action="store_true",
                   help="store conductance/resistance in single precision (7 significant digits; the other variables stay float64)")
    p.add_argument("--backend", choices=("compiled", "reference"), default="compiled",
                   help="compiled core (default) or the NumPy reference")
    p.add_argument("--no-noise", action="store_true", help="expected hop counts instead of Poisson counts")
    p.add_argument("--targets", default=None, metavar="G1,G2,...",
                   help="write-verify: target conductances in S, programmed in this order "
                        "(default 0.8e-3,1.2e-3,1.6e-3)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="write-verify: relative half-width of the accept band (default 0.03)")
    p.add_argument("--max-pulses", type=int, default=None, help="write-verify: pulses allowed per target (default 100)")
    p.add_argument("--policy", default=None, metavar="FILE.py:FUNCTION",
                   help="bulk4t ffp/ffp-segmentation: write policy Vw(r) compiled with Numba instead of the "
                        "built-in table look-up, policy(r_ohm, sign, r_grid_ohm, vw_table_v) -> amplitude_v "
                        "(see docs/policies.md)")
    p.add_argument("--ffp-correction", type=float, default=None, metavar="B",
                   help="bulk4t ffp/ffp-segmentation: each film corrects the table's amplitude after every event "
                        "by (target |dR| / its |dR|)^B, B in [0, 1] (default: the preset's calibration, else 0, "
                        "the table alone; see docs/physics-film.md)")
    p.add_argument("--ffp-correction-base", choices=("table", "last"), default=None,
                   help="bulk4t with --ffp-correction: scale the table's amplitude at the present R (table) or the "
                        "last write's (last: the table sets only each branch's first write); default: the preset's "
                        "calibration, else table")
    p.add_argument("--conduction", default=None, metavar="FILE.py:FUNCTION",
                   help="filament ramp/identical/write-verify with --backend reference: conduction law compiled with Numba "
                        "instead of the built-in sinh law, law(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a "
                        "(see docs/policies.md)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.nc", help="netCDF file to write")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="also write a PNG summary")
    p.add_argument("--chunk-devices", type=int, default=None, metavar="N",
                   help="filament ramp/identical runs: devices computed and written at a time "
                        f"(default: chunks of about {PULSE_CHUNK_BYTES // 2**20} MiB; results do not depend on it)")
    p.add_argument("--max-memory-gb", type=float, default=DEFAULT_MAX_MEMORY_GB, metavar="GB",
                   help=f"refuse a run whose arrays need more than this (default {DEFAULT_MAX_MEMORY_GB:g} GiB)")
    p.set_defaults(func=run)


#: what a run may allocate unless the user raises it: a laptop's share, not a cluster node's
DEFAULT_MAX_MEMORY_GB = 8.0
#: float64 output of one streamed chunk: small enough that computing one chunk overlaps writing the
#: previous one several times over on a 10^5-device run, large enough for HDF5 chunks of megabytes
PULSE_CHUNK_BYTES = 16 * 2**20
#: chunks alive at once while streaming: the one in the kernel, the one made a dataset, the one waiting
#: for the writer, the one being written
CHUNKS_IN_FLIGHT = 4


def memory_limit_bytes(args: argparse.Namespace) -> float:
    from memdrift.errors import check_range

    return check_range("max-memory-gb", args.max_memory_gb, 0.0, 1e6, low_open=True, unit="GiB") * 2**30


def _warn_kernel_flags(ds, where: str) -> None:
    """One stderr line for pulses the kernel itself flagged (step budget, thermal ceiling, unsettled solve)."""
    import sys

    import numpy as np

    from memdrift.data import flags

    if flags.VARIABLE not in ds:
        return
    own = ds[flags.VARIABLE].values & ~np.uint8(flags.OUTSIDE_ENVELOPE)
    phrases = flags.describe(own)
    if phrases:
        print(f"warning: {where}: {'; '.join(phrases)} (see {flags.VARIABLE})", file=sys.stderr)


#: the flag of each argument the emulator's messages name (:class:`memdrift.errors.NamedError`)
FLAGS = {"cycles": "--cycles", "memory_limit_bytes": "--max-memory-gb", "targets_s": "--targets",
         "tolerance": "--tolerance", "max_pulses": "--max-pulses", "scheme": "--scheme", "backend": "--backend",
         "correction_exponent": "--ffp-correction", "correction_base": "--ffp-correction-base",
         "plot": "--plot"}


def run(args: argparse.Namespace) -> int:
    from memdrift.errors import NamedError

    try:
        return _run(args)
    except NamedError as exc:
        # the emulator names its arguments; here each is the flag that set it
        raise MemdriftError(exc.message(lambda name: FLAGS.get(name, name))) from None


def _run(args: argparse.Namespace) -> int:
    from memdrift.data import envelope
    from memdrift.data.io import write_dataset
    from memdrift.emulator.params import load_preset

    from memdrift.data.io import check_output_path
    from memdrift.errors import check_range, check_seed

    check_output_path(args.output, ".nc", "output")
    if args.plot is not None:
        check_output_path(args.plot, ".png", "plot")
        if args.plot.resolve() == args.output.resolve():
            raise MemdriftError(f"plot = {str(args.plot)!r} is the output path; allowed: a different file")
    check_seed("seed", args.seed)
    check_range("devices", args.devices, 1, 10**9)
    if args.cycles is not None:
        check_range("cycles", args.cycles, 1, 10**9)
    memory_limit_bytes(args)
    preset = load_preset(args.device)
    scheme = args.scheme or preset.scheme
    model = MODELS.get(preset.model)
    if args.backend not in model.backends:
        raise MemdriftError(f"backend = {args.backend!r} is not available for model {model.name!r}; allowed: "
                            f"{', '.join(model.backends)} (--backend {model.reference_backend})")
    streams = model.streams(scheme, args.backend)
    if args.chunk_devices is not None:
        check_range("chunk-devices", args.chunk_devices, 1, 10**9)
        if not streams:
            raise MemdriftError(f"chunk-devices = {args.chunk_devices!r} is not used by {preset.model} {scheme!r} "
                                f"on the {args.backend} backend; allowed: omit --chunk-devices (only filament "
                                "ramp/identical runs on the compiled backend stream in chunks)")
    options = _write_verify_options(args)
    if options and scheme != "write-verify" and "write-verify" in model.schemes:
        _refuse_write_verify_options(scheme)
    if args.policy is not None:
        options["policy"] = args.policy
    if args.ffp_correction is not None:
        options["correction_exponent"] = args.ffp_correction
    if args.ffp_correction_base is not None:
        options["correction_base"] = args.ffp_correction_base
    if args.conduction is not None:
        from memdrift.emulator.engine import check_conduction_backend

        if preset.model == "filament":
            # before the streamed path, which serves only the compiled backend
            try:
                check_conduction_backend(args.conduction, args.backend)
            except MemdriftError as exc:
                raise MemdriftError(f"{exc} (--backend reference)") from None
        options["conduction"] = args.conduction
    if streams:
        return _stream(model, preset, scheme, args, options)
    ds = model.run(preset, scheme, devices=args.devices, cycles=args.cycles, seed=args.seed, threads=args.threads,
                   backend=args.backend, noise=not args.no_noise, progress=not args.quiet, preset=preset.name,
                   memory_limit_bytes=memory_limit_bytes(args), plot=args.plot is not None, **options)
    envelope.warn(ds, preset.model, f"pulse {preset.name}")
    _warn_kernel_flags(ds, f"pulse {preset.name}")
    write_dataset(ds, args.output, float32=args.float32)
    print(f"wrote {args.output} ({', '.join(f'{k}={v}' for k, v in ds.sizes.items())})")
    _plot(ds, model, preset, scheme, args)
    return 0


def _plot(ds, model, preset, scheme: str, args: argparse.Namespace) -> None:
    if args.plot is not None:
        model.plot(ds, preset, scheme, args.plot)
        print(f"wrote {args.plot}")


def _write_verify_options(args: argparse.Namespace) -> dict[str, object]:
    """The write-verify options given on the command line (the model refuses them for other schemes)."""
    changes: dict[str, object] = {}
    if args.targets is not None:
        try:
            changes["targets_s"] = tuple(float(t) for t in args.targets.split(",") if t.strip())
        except ValueError:
            raise MemdriftError(f"targets = {args.targets!r} is not a list of numbers; allowed: comma-separated "
                                "conductances in (0, 1] S, e.g. 0.8e-3,1.2e-3") from None
    if args.tolerance is not None:
        changes["tolerance"] = args.tolerance
    if args.max_pulses is not None:
        changes["max_pulses"] = args.max_pulses
    return changes


def _refuse_write_verify_options(scheme: str) -> None:
    raise MemdriftError(f"--targets/--tolerance/--max-pulses are write-verify options; scheme = {scheme!r} "
                        "does not use them; allowed: --scheme write-verify")


def _stream(model, preset, scheme: str, args: argparse.Namespace, options: dict[str, object]) -> int:
    """A run computed and written by device chunks (memory flat in the ensemble size; the writer thread
    overlaps the kernel); the same numbers as one whole run."""
    from memdrift.data import envelope
    from memdrift.data.io import open_dataset, write_dataset_stream
    from memdrift.emulator.engine import _check_ensemble as check_ensemble
    from memdrift.emulator.model_filament import BYTES_PER_PULSE, default_cycles
    from memdrift.emulator.pulses import from_name
    from memdrift.errors import check_memory

    if options:
        _refuse_write_verify_options(scheme)
    train = from_name(scheme)
    cycles = args.cycles if args.cycles is not None else default_cycles(scheme)
    # the whole ensemble's arguments are refused here, before a progress bar or a file exists
    check_ensemble(args.devices, cycles, args.seed, args.threads, args.backend)
    per_device = float(cycles) * train.n_pulses * BYTES_PER_PULSE
    chunk = args.chunk_devices or max(1, int(PULSE_CHUNK_BYTES // per_device))
    chunk = min(chunk, args.devices)
    check_memory(f"pulse --devices {args.devices} --cycles {cycles} ({train.n_pulses} pulses a cycle) in chunks of "
                 f"{chunk} device{'s' if chunk != 1 else ''}",
                 min(CHUNKS_IN_FLIGHT, -(-args.devices // chunk)) * chunk * per_device,
                 memory_limit_bytes(args))
    outside = [0]

    def chunks():
        from tqdm.auto import tqdm

        show = not args.quiet and args.devices * cycles * train.n_pulses >= 200_000
        with tqdm(total=args.devices, unit="device", desc="pulse trains", disable=not show, leave=False) as bar:
            for ds in model.run_chunks(preset.params, train, devices=args.devices, chunk_devices=chunk,
                                       cycles=cycles, seed=args.seed, threads=args.threads, backend=args.backend,
                                       noise=not args.no_noise, preset=preset.name):
                outside[0] += envelope.apply(ds, preset.model)
                yield ds
                bar.update(ds.sizes["device"])

    write_dataset_stream(chunks(), args.output, dim="device", float32=args.float32)
    envelope.report(outside[0], preset.model, f"pulse {preset.name}")
    print(f"wrote {args.output} (device={args.devices}, cycle={cycles}, pulse={train.n_pulses})")
    if args.plot is not None:
        with open_dataset(args.output) as ds:
            _plot(ds.load(), model, preset, scheme, args)
    return 0
