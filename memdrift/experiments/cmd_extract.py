"""``memdrift extract``: device metrics of a dataset (emulated or measured) → extraction record (JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="extract device metrics from a dataset into DEVICE.json",
                       description="Extract the device metrics of netCDF datasets or measured CSVs (layout in "
                                   "memdrift/mapping/README.md) into one extraction record (JSON). Several "
                                   "datasets of one device (e.g. cycling and retention) merge: each group of "
                                   "metrics comes from the first file that measures it, and the record's notes "
                                   "say which.")
    p.add_argument("data", type=Path, nargs="+", metavar="DATA.(nc|csv)",
                   help="datasets of one device with the contract names, or CSVs")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DEVICE.json", help="record to write")
    p.add_argument("--levels", default="32,128,512", metavar="N,N,...",
                   help="level counts for nonlinearity, skipped levels and program error (default 32,128,512)")
    p.add_argument("--r2-min", type=float, default=0.995,
                   help="minimum R² of the linear range (default 0.995)")
    p.add_argument("--max-processes", type=int, default=128,
                   help="(device, cycle) traces per branch used by the per-trace fits (default 128)")
    p.set_defaults(func=run)


def parse_levels(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            n = int(part)
        except ValueError:
            raise MemdriftError(f"levels = {text!r}: {part!r} is not an integer; allowed: e.g. 32,128,512") from None
        if not 2 <= n <= 65536:
            raise MemdriftError(f"levels = {text!r}: {n} is out of range; allowed: [2, 65536]")
        out.append(n)
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    from memdrift.errors import check_range
    from memdrift.mapping.extract import extract_datasets, save_record
    from memdrift.mapping.measured import read_measured

    from memdrift.data.io import check_output_path

    check_output_path(args.output, ".json", "output")
    levels = parse_levels(args.levels)
    check_range("r2-min", args.r2_min, 0.0, 1.0)
    check_range("max-processes", args.max_processes, 1, 1 << 20)
    names = [str(path) for path in args.data]
    if len(set(names)) != len(names):
        raise MemdriftError(f"data = {names}: a file is given twice; allowed: distinct datasets of one device")
    named = []
    for path in args.data:
        # Files above 1 GiB are opened dask-backed (reductions stream over chunks); smaller
        # ones are read into memory once, which is much faster for the per-trace fits.
        big = path.suffix.lower() != ".csv" and path.exists() and path.stat().st_size > 1 << 30
        named.append((str(path), read_measured(path, chunks={} if big else None)))
    record = extract_datasets(named, levels=levels, r2_min=args.r2_min, max_processes=args.max_processes)
    save_record(record, args.output)
    print(summary(record))
    print(f"wrote {args.output}")
    return 0


def si(value: float | None, unit: str) -> str:
    """``value`` with the SI prefix that puts it in [1, 1000) (4 significant digits)."""
    if value is None:
        return "—"
    import math

    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    exp3 = max(-5, min(4, math.floor(math.log10(abs(value)) / 3)))
    prefix = {-5: "f", -4: "p", -3: "n", -2: "µ", -1: "m", 0: "", 1: "k", 2: "M", 3: "G", 4: "T"}[exp3]
    return f"{value / 10 ** (3 * exp3):.4g} {prefix}{unit}"


def summary(record: dict) -> str:
    """A short table of the headline numbers (SI, with engineering units for reading)."""
    def num(v, scale=1.0, fmt="{:.4g}"):
        return "—" if v is None else fmt.format(v * scale)

    r2 = record.get("linear_r2") or {}
    drift = record.get("drift") or {}
    rows = [
        ("states (linear range)", num(record.get("states"), fmt="{:.0f}")),
        ("bin width", f"{num(record.get('bin_width'), 1e6)} µS"),
        ("state σ", f"{num(record.get('state_sigma'), 1e6)} µS"),
        ("differential bins (BW > 2σ)", num(record.get("differential_bins"), fmt="{:.0f}")),
        ("R² potentiation / depression", f"{num(r2.get('potentiation'), fmt='{:.5f}')} / "
                                         f"{num(r2.get('depression'), fmt='{:.5f}')}"),
        ("symmetry |s_d|/|s_p|", num(record.get("symmetry"))),
        ("Pearson cycle-to-cycle", num(record.get("pearson"), fmt="{:.5f}")),
        ("g_min / g_max", f"{num(record.get('g_min'), 1e6)} / {num(record.get('g_max'), 1e6)} µS"),
        ("energy per pulse", si(record.get("energy_per_pulse"), "J")),
        ("drift ν / Ea", f"{num(drift.get('nu'))} / {num(drift.get('activation_energy_eV'))} eV"),
    ]
    for n, v in (record.get("nu") or {}).items():
        sk = (record.get("skipped_levels") or {}).get(n) or {}
        rows.append((f"n={n}: ν_p / ν_d", f"{num(v.get('p'))} / {num(v.get('d'))}"))
        rows.append((f"n={n}: ν_p / ν_d end-matched", f"{num(v.get('p_end_matched'))} / {num(v.get('d_end_matched'))}"))
        rows.append((f"n={n}: skipped p / d", f"{num(sk.get('potentiation'), fmt='{:.0f}')} / "
                                              f"{num(sk.get('depression'), fmt='{:.0f}')}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"note: {n}" for n in record.get("notes") or []]
    return "\n".join(lines)
