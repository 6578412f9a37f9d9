"""The pulse engine: parameters + pulse train → labelled dataset.

Runs an ensemble of filament devices through ``cycles`` repetitions of a pulse
train, with either the compiled core (``backend="compiled"``) or the NumPy
reference (``backend="reference"``), and returns an ``xarray.Dataset`` with the
contract names of DESIGN.md.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.data import flags
from memdrift.data.schema import BRANCH, CYCLE, DEVICE, PULSE as PULSE_DIM, annotate, from_file_attrs, netcdf_attrs
from memdrift.emulator import filament
from memdrift.emulator.params import FilamentParams
from memdrift.emulator.pulses import PulseTrain
from memdrift.emulator.randomness import device_keys, standard_normal
from memdrift.errors import MemdriftError

Backend = Literal["compiled", "reference"]
MAX_DEVICES = 100_000_000


def parameter_table(params: FilamentParams, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-device parameter rows (columns ``filament.COLUMNS``) and initial gaps, with lognormal variation.

    A spread ``s`` multiplies the nominal value by ``exp(s·N(0,1) − s²/2)``, so the
    ensemble mean equals the nominal value. Draws come from each device's own
    counter-based stream, one counter per parameter column.
    """
    nominal = params.scalars()
    table = np.empty((keys.size, len(filament.COLUMNS)))
    for j, name in enumerate(filament.COLUMNS):
        table[:, j] = nominal[name]
        spread = params.variation.get(name, 0.0)
        if spread > 0.0:
            table[:, j] *= np.exp(spread * standard_normal(keys, j) - 0.5 * spread * spread)
    g_min = table[:, filament.COL["gap_min_m"]]
    g_max = table[:, filament.COL["gap_max_m"]]
    return table, np.clip(nominal["gap_initial_m"] * _initial_gap_factor(params, keys), g_min, g_max)


#: Stream counter of the initial-gap draw: the column count before ``reset_field_enhancement_slope`` was
#: appended to ``filament.COLUMNS``, kept so that a seed gives the same devices as before.
GAP_INITIAL_STREAM = 23


def _initial_gap_factor(params: FilamentParams, keys: np.ndarray) -> np.ndarray:
    spread = params.variation.get("gap_initial_m", 0.0)
    if spread == 0.0:
        return np.ones(keys.size)
    return np.exp(spread * standard_normal(keys, GAP_INITIAL_STREAM) - 0.5 * spread * spread)


def kernel_state(gap_m: np.ndarray, temperature_k: np.ndarray) -> np.ndarray:
    """The compiled kernel's per-device state rows at rest: (gap m, temperature K, ln(I R_s/|V|) of the
    last write, sub-steps taken, ln(I R_s/|V|) of the last read, gap relaxed by dissolution since the tip
    was last rebuilt m); the shares, which warm-start the cell solve, start at ``INITIAL_SHARE``, the
    relaxation at 0 (a freshly written tip)."""
    n = np.size(gap_m)
    return np.stack([gap_m, temperature_k, np.full(n, filament.INITIAL_SHARE), np.zeros(n),
                     np.full(n, filament.INITIAL_SHARE), np.zeros(n)], axis=1)


def segment_table(train: PulseTrain) -> np.ndarray:
    """Rows (voltage V, duration s, kind) for one cycle: pulse, zero-bias gap, read."""
    rows = []
    for amplitude, width in zip(train.amplitude_v, train.width_s):
        rows.append((amplitude, width, filament.PULSE))
        rows.append((0.0, train.read_gap_s, filament.IDLE))
        rows.append((train.read_voltage_v, train.read_width_s, filament.READ))
    return np.array(rows, dtype=np.float64)


def _check_ensemble(devices: int, cycles: int, seed: int, threads: int, backend: str) -> None:
    if not (isinstance(devices, (int, np.integer)) and 1 <= devices <= MAX_DEVICES):
        raise MemdriftError(f"devices = {devices!r} is out of range; allowed: integer in [1, {MAX_DEVICES}]")
    if not (isinstance(cycles, (int, np.integer)) and cycles >= 1):
        raise MemdriftError(f"cycles = {cycles!r} is out of range; allowed: integer >= 1")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise MemdriftError(f"seed = {seed!r} is out of range; allowed: integer >= 0")
    if not (isinstance(threads, (int, np.integer)) and 1 <= threads <= 1024):
        raise MemdriftError(f"threads = {threads!r} is out of range; allowed: integer in [1, 1024]")
    if backend not in ("compiled", "reference"):
        raise MemdriftError(f"backend = {backend!r} is unknown; allowed: 'compiled', 'reference'")


def run_pulses(params: FilamentParams, train: PulseTrain, *, devices: int, cycles: int = 1, seed: int = 0,
               threads: int = 1, backend: Backend = "compiled", noise: bool = True, progress: bool = False,
               preset: str = "custom", first_device: int = 0, conduction: Any = None) -> xr.Dataset:
    """Emulate ``devices`` filament cells through ``cycles`` repetitions of ``train``.

    ``first_device`` offsets the device indices, so an ensemble computed in chunks
    gives the same per-device results as computed whole. ``conduction``: a conduction law
    ``law(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a`` of your own (a function, or
    ``"path/to/file.py:function"``) in place of the built-in sinh law, compiled with Numba and checked
    before any device runs; the reference backend only (:mod:`memdrift.emulator.conduction`).
    """
    from memdrift.emulator.conduction import resolve_conduction

    check_conduction_backend(conduction, backend)
    law = resolve_conduction(conduction)  # compiled once, here
    arrays = pulse_arrays(params, train, devices=devices, cycles=cycles, seed=seed, threads=threads, backend=backend,
                          noise=noise, progress=progress, first_device=first_device, conduction=law)
    return pulse_dataset(arrays, params, train, seed=seed, noise=noise, preset=preset, backend=backend,
                         first_device=first_device, conduction_name=None if law is None else law.name)


def pulse_arrays(params: FilamentParams, train: PulseTrain, *, devices: int, cycles: int = 1, seed: int = 0,
                 threads: int = 1, backend: Backend = "compiled", noise: bool = True, progress: bool = False,
                 first_device: int = 0, conduction: Any = None) -> dict[str, np.ndarray]:
    """The computing half of :func:`run_pulses`: its per-pulse arrays (device, cycle, pulse), the kernel's
    flags under ``pulse_flag``; :func:`pulse_dataset` makes them the dataset."""
    _check_ensemble(devices, cycles, seed, threads, backend)
    if not (isinstance(first_device, (int, np.integer)) and first_device >= 0):
        raise MemdriftError(f"first_device = {first_device!r} is out of range; allowed: integer >= 0")
    check_conduction_backend(conduction, backend)
    keys = device_keys(seed, int(devices), int(first_device))
    table, gap0 = parameter_table(params, keys)
    law = _checked_law(conduction, params, train, table)
    segments = segment_table(train)
    shape = (int(devices), int(cycles), train.n_pulses)
    out = {name: np.empty(shape) for name in ("conductance", "temperature_peak", "energy", "gap")}
    pulse_flags = np.zeros(shape)
    temperature0 = table[:, filament.COL["ambient_temperature_k"]].copy()
    bar = _progress(cycles, devices * train.n_pulses, progress)
    if backend == "compiled":
        from memdrift import ext

        _filament = ext.load("_filament", columns=filament.COLUMNS)

        state = kernel_state(gap0, temperature0)
        counters = np.zeros(devices, dtype=np.uint64)
        for cycle in range(cycles):
            _filament.run_cycle(segments, state, table, keys, counters, out["conductance"][:, cycle],
                                out["temperature_peak"][:, cycle], out["energy"][:, cycle], out["gap"][:, cycle],
                                int(bool(noise)), int(threads), pulse_flags[:, cycle])
            bar.update(1)
    else:
        ref_state = filament.DeviceState(gap0, temperature0)
        rng = np.random.default_rng(np.random.SeedSequence(int(seed))) if noise else None
        for cycle in range(cycles):
            res = filament.run_cycle_reference(segments, ref_state, table, rng, pulse_flags[:, cycle], conduction=law)
            for name, value in zip(("conductance", "temperature_peak", "energy", "gap"), res):
                out[name][:, cycle] = value
            bar.update(1)
    bar.close()
    out[flags.VARIABLE] = pulse_flags.astype(np.uint8)
    return out


def pulse_dataset(arrays: dict[str, np.ndarray], params: FilamentParams, train: PulseTrain, *, seed: int,
                  noise: bool, preset: str, backend: str, first_device: int = 0,
                  conduction_name: str | None = None) -> xr.Dataset:
    """The dataset of :func:`run_pulses` from :func:`pulse_arrays`' arrays (warning once on flagged pulses)."""
    out = dict(arrays)
    pulse_flags = out.pop(flags.VARIABLE)
    devices = pulse_flags.shape[0]
    ds = build_dataset(out, params, train, seed=seed, noise=noise, preset=preset, backend=backend)
    if conduction_name is not None:
        ds.attrs["scheme.conduction"] = conduction_name
    ds = flags.attach(ds, pulse_flags, (DEVICE, CYCLE, PULSE_DIM))
    _warn_flags(ds[flags.VARIABLE].values)
    return ds.assign_coords({DEVICE: np.arange(first_device, first_device + devices)})


def check_conduction_backend(conduction: Any, backend: str) -> None:
    """Refuse a user conduction law on the compiled backend, whose kernel solves only the built-in law."""
    if conduction is not None and backend != "reference":
        from memdrift.emulator.conduction import describe

        name = describe(conduction)
        raise MemdriftError(f"conduction = {name!r} needs backend = 'reference': the compiled kernel solves only "
                            f"the built-in sinh law (backend = {backend!r}); allowed: backend=\"reference\"")


def _checked_law(conduction: Any, params: FilamentParams, train: PulseTrain, table: np.ndarray) -> Any:
    """:func:`checked_law` over the train's voltages: its largest amplitude or read bias."""
    max_v = max(float(np.max(np.abs(train.amplitude_v))), abs(float(train.read_voltage_v)))
    return checked_law(conduction, params, table, max_v)


def checked_law(conduction: Any, params: FilamentParams, table: np.ndarray, max_voltage_v: float) -> Any:
    """The user law compiled and checked (odd, increasing) over the run's voltages (``|V| <=
    max_voltage_v``) and gaps for the nominal device and those at the extremes of each tunnelling
    parameter; None for the built-in law."""
    from memdrift.emulator.conduction import resolve_conduction

    law = resolve_conduction(conduction)
    if law is None:
        return None
    cols = [filament.COL[name] for name in ("tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v")]
    rows = table[:, cols]
    picks = {int(f(rows[:, j])) for j in range(3) for f in (np.argmin, np.argmax)}
    nominal = params.scalars()
    devices = np.vstack([[nominal["tunnel_current_a"], nominal["tunnel_length_m"], nominal["tunnel_voltage_v"]],
                         rows[sorted(picks)]])
    law.check(max_voltage_v, float(np.min(table[:, filament.COL["gap_min_m"]])),
              float(np.max(table[:, filament.COL["gap_max_m"]])), devices)
    return law


def _warn_flags(pulse_flags: np.ndarray) -> None:
    """One warning naming the count of each flag the kernel set (the numbers of those pulses are not results)."""
    phrases = flags.describe(pulse_flags)
    if phrases:
        warnings.warn(f"filament kernel: {', '.join(phrases)} (see {flags.VARIABLE})", FlaggedPulseWarning,
                      stacklevel=4)


class FlaggedPulseWarning(UserWarning):
    """Some pulses ended early or could not be solved; their bits are in ``pulse_flag``."""


def _progress(total_cycles: int, work_per_cycle: int, enabled: bool):
    from tqdm.auto import tqdm

    # Only worth a bar when a run takes more than a moment.
    show = enabled and total_cycles * work_per_cycle >= 200_000
    return tqdm(total=total_cycles, unit="cycle", disable=not show, leave=False, desc="pulse trains")


def build_dataset(out: dict[str, np.ndarray], params: FilamentParams, train: PulseTrain, *, seed: int, noise: bool,
                  preset: str, backend: str) -> xr.Dataset:
    dims = (DEVICE, CYCLE, PULSE_DIM)
    n_dev, n_cyc, n_pul = out["conductance"].shape
    ds = xr.Dataset(
        {name: (dims, value) for name, value in out.items()}
        | {"amplitude": ((PULSE_DIM,), np.asarray(train.amplitude_v)),
           "width": ((PULSE_DIM,), np.asarray(train.width_s))},
        coords={DEVICE: np.arange(n_dev), CYCLE: np.arange(n_cyc), PULSE_DIM: np.arange(n_pul),
                BRANCH: ((PULSE_DIM,), np.array(train.branch))},
    )
    ds[BRANCH].attrs["long_name"] = "programming branch of the pulse"
    ds.attrs.update({
        "title": f"memdrift pulse-train emulation ({params.model}, {train.name})",
        "memdrift_version": __version__,
        "model": params.model,
        "preset": preset,
        "scheme": train.name,
        "seed": int(seed),
        "noise": int(bool(noise)),
        "backend": backend,
        "history": f"memdrift run_pulses on host with {os.cpu_count()} CPUs",
    })
    ds.attrs.update(netcdf_attrs(train.describe(), "scheme."))
    ds.attrs.update(netcdf_attrs(params.scalars(), "param."))
    ds.attrs.update(netcdf_attrs(params.variation, "variation."))
    return annotate(ds)


def params_from_attrs(attrs: dict) -> FilamentParams:
    """Rebuild the parameters recorded in a dataset's global attributes (as read by
    ``memdrift.data.io.open_dataset``, or straight from a file by xarray)."""
    attrs = from_file_attrs(attrs)
    scalars = {k.split(".", 1)[1]: float(v) for k, v in attrs.items() if k.startswith("param.")}
    variation = {k.split(".", 1)[1]: float(v) for k, v in attrs.items() if k.startswith("variation.")}
    return FilamentParams(**scalars, variation=variation)


def train_from_dataset(ds: xr.Dataset) -> PulseTrain:
    """Rebuild the pulse train recorded in a dataset."""
    attrs = from_file_attrs(ds.attrs)
    return PulseTrain(ds["amplitude"].values, ds["width"].values, float(attrs["scheme.read_voltage_v"]),
                      float(attrs["scheme.read_width_s"]), float(attrs["scheme.read_gap_s"]),
                      tuple(str(b) for b in ds[BRANCH].values), name=str(attrs.get("scheme", "custom")))
