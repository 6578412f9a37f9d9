"""A lab's own measurements in, as the same xarray layout the emulator writes.

Two inputs are accepted, chosen by the file suffix:

**CSV** (``.csv``) — one row per read after a programming pulse, comma
separated, with a header line naming the columns (any order)::

    cycle,pulse,conductance,amplitude,width,device,branch
    0,0,1.52e-4,0.70,1.6e-7,A1,potentiation
    0,1,1.60e-4,0.72,1.7e-7,A1,potentiation
    ...

============  ========  =====================================================
column        needed    meaning
============  ========  =====================================================
cycle         yes       integer ≥ 0, the programming cycle
pulse         yes       integer ≥ 0, the pulse number within the cycle
conductance   yes [1]   read conductance after the pulse, siemens (S), > 0
resistance    [1]       instead of conductance: read resistance, ohm, > 0
amplitude     no        pulse amplitude, volt (V), signed
width         no        pulse width, second (s), > 0
device        no        device label (any text); one device if absent
branch        no        ``potentiation`` or ``depression``
============  ========  =====================================================

[1] exactly one of ``conductance`` and ``resistance``. Blank lines and lines
starting with ``#`` are skipped. Each (device, cycle, pulse) appears at most
once; missing combinations become NaN (not measured). ``amplitude``,
``width`` and ``branch`` describe the pulse, so they must be the same for a
given pulse number in every cycle. Without a ``branch`` column the branch is
inferred per pulse: potentiation where the amplitude is ≥ 0 and depression
where it is < 0 (the emulator's convention); without amplitudes, the first
half of each cycle's pulses is potentiation and the second half depression.

**netCDF** (``.nc``) — a dataset with the contract names (DESIGN.md,
"Datasets"): ``conductance`` (S) or ``resistance`` (ohm) over (``device``,
``cycle``, ``pulse``), optionally ``amplitude``/``width`` over ``pulse`` and a
``branch`` coordinate over ``pulse``. A missing ``device`` or ``cycle``
dimension is added with length 1; a missing ``branch`` is inferred as above.

A malformed file raises :class:`~memdrift.errors.MemdriftError` naming the line
number (CSV, 1 = the header) and the column, or the variable (netCDF).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.data import schema
from memdrift.data.io import atomic_path, open_dataset
from memdrift.constants import DEPRESSION, POTENTIATION, RETENTION
from memdrift.errors import MemdriftError

CSV_COLUMNS = ("cycle", "pulse", "conductance", "resistance", "amplitude", "width", "device", "branch")


def infer_branch(n_pulses: int, amplitude=None) -> np.ndarray:
    """Branch label per pulse: from the amplitude sign when given, else first half / second half."""
    if amplitude is not None:
        amp = np.asarray(amplitude, dtype=np.float64)
        if amp.shape == (n_pulses,) and np.all(np.isfinite(amp)):
            return np.where(amp >= 0, POTENTIATION, DEPRESSION).astype(object)
    half = n_pulses - n_pulses // 2  # odd counts: the extra pulse goes to potentiation
    return np.array([POTENTIATION] * half + [DEPRESSION] * (n_pulses - half), dtype=object)


def read_measured(path: str | os.PathLike[str], *, chunks: dict | None = None) -> xr.Dataset:
    """Read a CSV or netCDF measurement into the contract layout (see the module docstring).

    ``chunks`` (netCDF only) opens the file dask-backed, for files larger than memory.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return read_csv(p)
    if suffix in (".nc", ".nc4", ".netcdf", ".cdf"):
        return normalise_dataset(open_dataset(p, chunks=chunks), source=str(p))
    raise MemdriftError(f"input file {str(p)!r} has suffix {suffix!r}; allowed: .csv, .nc")


# --------------------------------------------------------------------------- CSV


def _number(text: str, line: int, column: str, *, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise MemdriftError(f"line {line}, column {column!r}: {text!r} is not {kind}") from None
    if not integer and not math.isfinite(value):
        raise MemdriftError(f"line {line}, column {column!r}: {text!r} is out of range; allowed: a finite number")
    return value


def read_csv(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read the documented CSV layout; errors name the line (1 = header) and the column."""
    p = Path(path)
    if not p.exists():
        raise MemdriftError(f"input file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MemdriftError(f"input file {str(p)!r} is not a readable text file ({exc})") from None

    rows = [(i, row) for i, row in enumerate(csv.reader(text.splitlines()), start=1)
            if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    if not rows:
        raise MemdriftError(f"input file {str(p)!r} is empty; allowed: a header line and at least one data row")
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in CSV_COLUMNS]
    if unknown:
        raise MemdriftError(f"line {header_line}: unknown column {unknown[0]!r}; allowed: {', '.join(CSV_COLUMNS)}")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise MemdriftError(f"line {header_line}: column {sorted(dup)[0]!r} appears twice; allowed: each column once")
    for need in ("cycle", "pulse"):
        if need not in names:
            raise MemdriftError(f"line {header_line}: header has no {need!r} column; allowed header: "
                                "cycle,pulse,conductance[,amplitude,width,device,branch]")
    has_g, has_r = "conductance" in names, "resistance" in names
    if has_g == has_r:
        raise MemdriftError(f"line {header_line}: header needs exactly one of 'conductance' (S) or 'resistance' (ohm)")
    quantity = "conductance" if has_g else "resistance"
    col = {n: i for i, n in enumerate(names)}
    if len(rows) < 2:
        raise MemdriftError(f"input file {str(p)!r} has a header but no data rows")

    records = []
    for line, row in rows[1:]:
        if len(row) != len(names):
            raise MemdriftError(f"line {line}: {len(row)} fields but the header names {len(names)}")
        cell = {n: row[i].strip() for n, i in col.items()}
        cycle = int(_number(cell["cycle"], line, "cycle", integer=True))
        pulse = int(_number(cell["pulse"], line, "pulse", integer=True))
        for n, v in (("cycle", cycle), ("pulse", pulse)):
            if v < 0:
                raise MemdriftError(f"line {line}, column {n!r}: {v} is out of range; allowed: [0, inf)")
        value = _number(cell[quantity], line, quantity)
        if value <= 0:
            unit = "S" if quantity == "conductance" else "ohm"
            raise MemdriftError(f"line {line}, column {quantity!r}: {value!r} is out of range; allowed: (0, inf) {unit}")
        amp = _number(cell["amplitude"], line, "amplitude") if "amplitude" in col else None
        wid = _number(cell["width"], line, "width") if "width" in col else None
        if wid is not None and wid <= 0:
            raise MemdriftError(f"line {line}, column 'width': {wid!r} is out of range; allowed: (0, inf) s")
        device = cell.get("device", "0")
        if "device" in col and not device:
            raise MemdriftError(f"line {line}, column 'device': empty; allowed: a device label")
        branch = cell.get("branch")
        if branch is not None:
            branch = branch.lower()
            if branch not in (POTENTIATION, DEPRESSION):
                raise MemdriftError(f"line {line}, column 'branch': {cell['branch']!r}; allowed: "
                                    f"{POTENTIATION!r}, {DEPRESSION!r}")
        records.append((line, device, cycle, pulse, value, amp, wid, branch))

    devices = list(dict.fromkeys(r[1] for r in records))
    cycles = sorted({r[2] for r in records})
    pulses = sorted({r[3] for r in records})
    di = {d: i for i, d in enumerate(devices)}
    ci = {c: i for i, c in enumerate(cycles)}
    pi = {q: i for i, q in enumerate(pulses)}
    values = np.full((len(devices), len(cycles), len(pulses)), np.nan)
    seen: dict[tuple, int] = {}
    per_pulse: dict[str, list] = {"amplitude": [None] * len(pulses), "width": [None] * len(pulses),
                                  "branch": [None] * len(pulses)}
    first_line: dict[str, list] = {k: [0] * len(pulses) for k in per_pulse}
    for line, device, cycle, pulse, value, amp, wid, branch in records:
        key = (device, cycle, pulse)
        if key in seen:
            raise MemdriftError(f"line {line}: device {device!r}, cycle {cycle}, pulse {pulse} already given on "
                                f"line {seen[key]}; allowed: one read per (device, cycle, pulse)")
        seen[key] = line
        values[di[device], ci[cycle], pi[pulse]] = value
        j = pi[pulse]
        for name, v in (("amplitude", amp), ("width", wid), ("branch", branch)):
            if v is None:
                continue
            if per_pulse[name][j] is None:
                per_pulse[name][j], first_line[name][j] = v, line
            elif per_pulse[name][j] != v:
                raise MemdriftError(
                    f"line {line}, column {name!r}: {v!r} differs from {per_pulse[name][j]!r} given for pulse {pulse} "
                    f"on line {first_line[name][j]}; allowed: one {name} per pulse number (a pulse table)")

    ds = xr.Dataset(coords={"device": np.array(devices, dtype=object) if "device" in col else np.arange(1),
                            "cycle": np.array(cycles), "pulse": np.array(pulses)})
    ds[quantity] = (("device", "cycle", "pulse"), values)
    for name in ("amplitude", "width"):
        if name in col:
            ds[name] = (("pulse",), np.array([np.nan if v is None else v for v in per_pulse[name]], dtype=np.float64))
    if "branch" in col and all(b is not None for b in per_pulse["branch"]):
        branch = np.array(per_pulse["branch"], dtype=object)
    else:
        amp = ds["amplitude"].values if "amplitude" in ds else None
        branch = infer_branch(len(pulses), amp)
    ds = ds.assign_coords(branch=("pulse", branch))
    ds.attrs.update(source=str(p), source_format="memdrift measured CSV")
    return schema.annotate(ds)


def write_csv(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a contract-layout dataset as the documented CSV layout (atomically); NaN reads are left out."""
    quantity = "conductance" if "conductance" in ds else "resistance"
    if quantity not in ds:
        raise MemdriftError("dataset has neither 'conductance' nor 'resistance'; allowed: the contract layout")
    da = ds[quantity].transpose("device", "cycle", "pulse")
    values = np.asarray(da.values, dtype=np.float64)
    pulses = ds["pulse"].values
    amp = ds["amplitude"].values if "amplitude" in ds else None
    wid = ds["width"].values if "width" in ds else None
    branch = ds["branch"].values if "branch" in ds.coords else None
    header = ["device", "cycle", "pulse", quantity]
    header += ["amplitude"] if amp is not None else []
    header += ["width"] if wid is not None else []
    header += ["branch"] if branch is not None else []
    final = Path(path)
    with atomic_path(final) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for d, dev in enumerate(ds["device"].values):
            for c, cyc in enumerate(ds["cycle"].values):
                for j, pul in enumerate(pulses):
                    v = values[d, c, j]
                    if not np.isfinite(v):
                        continue
                    row = [str(dev), int(cyc), int(pul), repr(float(v))]
                    row += [repr(float(amp[j]))] if amp is not None else []
                    row += [repr(float(wid[j]))] if wid is not None else []
                    row += [str(branch[j])] if branch is not None else []
                    w.writerow(row)
    return final


# --------------------------------------------------------------------------- netCDF


def normalise_dataset(ds: xr.Dataset, *, source: str = "dataset") -> xr.Dataset:
    """Bring a dataset with the contract names to the full (device, cycle, pulse) layout with a branch coordinate.

    Retention-only datasets (a ``time`` dimension and no ``pulse``) are returned
    unchanged: they carry no pulse table to complete.
    """
    quantity = "conductance" if "conductance" in ds else ("resistance" if "resistance" in ds else None)
    if quantity is None:
        raise MemdriftError(f"{source}: no 'conductance' (S) or 'resistance' (ohm) variable; "
                            f"found: {', '.join(map(str, ds.data_vars)) or 'none'}")
    da = ds[quantity]
    if da.dtype.kind not in "fiu":
        raise MemdriftError(f"{source}: {quantity} holds {da.dtype} values; allowed: numbers "
                            f"({'S' if quantity == 'conductance' else 'ohm'})")
    empty = [str(d) for d in da.dims if ds.sizes[d] == 0]
    if empty:
        raise MemdriftError(f"{source}: {quantity} has an empty dimension {empty[0]!r}; allowed: at least one "
                            "entry along every dimension")
    if ds.attrs.get("scheme") == "write-verify" and "conductance_final" in ds:
        return ds  # memdrift's write-verify layout (device, level, attempt): the extraction reads it as is
    if "pulse" not in da.dims:
        if "time" in da.dims:
            return ds
        raise MemdriftError(f"{source}: {quantity} has dims {da.dims}; allowed: (device, cycle, pulse) or a 'time' "
                            "dimension for retention")
    extra = [d for d in da.dims if d not in ("device", "cycle", "pulse", "temperature")]
    if extra:
        raise MemdriftError(f"{source}: {quantity} has unexpected dimension {extra[0]!r}; allowed: device, cycle, "
                            "pulse (and temperature for retention)")
    if "temperature" in da.dims:
        return ds  # a retention bake at several temperatures: no programming pulse table to complete
    if "branch" in ds.coords and ds["branch"].dims == ("cycle",):
        ds = runs_to_cycles(ds, quantity, source=source)
    for dim in ("device", "cycle"):
        if dim not in ds.dims:
            ds = ds.expand_dims({dim: 1})
    ds[quantity] = ds[quantity].transpose("device", "cycle", "pulse")
    if "branch" not in ds.coords and "branch" not in ds:
        amp = ds["amplitude"].values if "amplitude" in ds and ds["amplitude"].dims == ("pulse",) else None
        ds = ds.assign_coords(branch=("pulse", infer_branch(ds.sizes["pulse"], amp)))
    else:
        labels = {str(b) for b in np.asarray(ds["branch"].values).reshape(-1)}
        bad = sorted(labels - {POTENTIATION, DEPRESSION, RETENTION})
        if bad:
            raise MemdriftError(f"{source}: branch = {bad[0]!r}; allowed: {POTENTIATION!r}, {DEPRESSION!r}, "
                                f"{RETENTION!r}")
    return ds


def runs_to_cycles(ds: xr.Dataset, quantity: str, *, source: str = "dataset") -> xr.Dataset:
    """Per-run layout (``branch`` over ``cycle``: each run one branch, e.g. an FFP dataset's HRS→LRS then
    LRS→HRS, NaN-padded to a common length) → the pulse-branch layout: runs ``2k`` (potentiation) and
    ``2k + 1`` (depression) become cycle ``k`` with their pulses one after the other.

    Only variables over (device, cycle, pulse) are carried over; maps and per-run summaries stay behind.
    """
    labels = [str(b) for b in np.asarray(ds["branch"].values)]
    pairs = len(labels) // 2
    expected = [POTENTIATION, DEPRESSION] * pairs
    if len(labels) % 2 or labels != expected:
        raise MemdriftError(f"{source}: branch over cycle is {labels[:4]}{'...' if len(labels) > 4 else ''}; "
                            f"allowed: runs alternating {POTENTIATION!r}, {DEPRESSION!r} (a branch over pulse "
                            "is the usual layout)")
    n_pulse = ds.sizes["pulse"]
    out = xr.Dataset(attrs=dict(ds.attrs))
    for name, var in ds.data_vars.items():
        if "cycle" not in var.dims or "pulse" not in var.dims:
            continue
        if not set(var.dims) <= {"device", "cycle", "pulse"}:
            continue
        lead = [d for d in var.dims if d not in ("cycle", "pulse")]
        values = var.transpose(*lead, "cycle", "pulse").values
        shape = values.shape[:-2] + (pairs, 2 * n_pulse)
        out[name] = ((*lead, "cycle", "pulse"), values.reshape(shape), dict(var.attrs))
    if quantity not in out:
        raise MemdriftError(f"{source}: {quantity} has no (cycle, pulse) dimensions to regroup")
    if "width" in ds and ds["width"].dims == ("pulse",):
        out["width"] = ("pulse", np.tile(ds["width"].values, 2), dict(ds["width"].attrs))
    if "device" in ds.coords:
        out = out.assign_coords(device=ds["device"].values)
    return out.assign_coords(cycle=np.arange(pairs), pulse=np.arange(2 * n_pulse),
                             branch=("pulse", np.repeat([POTENTIATION, DEPRESSION], n_pulse)))
