"""The filament protocols: ``pd-cycling``, ``dr-map``, ``retention``, ``iv`` and ``endurance``, each a plan
of per-device variables computed in device chunks.

``pd-cycling``, ``dr-map`` and ``iv`` run their trains through :func:`memdrift.emulator.engine.run_pulses`,
so they also run on the NumPy reference (``backend="reference"``) and with a conduction law of your own
(``conduction``, reference only). The reference draws every device's hops from one stream of the seed, so
there the ensemble is one chunk; ``retention`` and ``endurance`` keep the kernel's state between trains
and run on the compiled kernel only."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.data.schema import BRANCH, annotate, netcdf_attrs
from memdrift.emulator import engine, filament
from memdrift.emulator.params import FilamentParams, Preset
from memdrift.emulator.protocols.chunks import _advance, _assemble, _Plan, _Var
from memdrift.emulator.protocols.options import (FILAMENT_OPTIONS, FILAMENT_PROTOCOLS, DrMapOptions,
                                                 EnduranceOptions, FilamentOptions, IvOptions, Options,
                                                 PdCyclingOptions, RetentionOptions, check_protocol,
                                                 protocol_options)
from memdrift.emulator.pulses import (DEPRESSION, POTENTIATION, PulseTrain, from_name, identical,
                                      retention)
from memdrift.emulator.randomness import device_keys
from memdrift.errors import NamedError


def characterise_filament(p: Preset, protocol: str, options: FilamentOptions | Options | None) -> xr.Dataset:
    """A filament protocol (the filament model's :meth:`~memdrift.models.DeviceModel.characterise`);
    ``options`` an instance of the protocol's class in :data:`FILAMENT_OPTIONS` (or an :class:`Options`)."""
    check_protocol(protocol, FILAMENT_PROTOCOLS, f"the filament preset {p.name!r}")
    opts = _with_law(protocol_options(FILAMENT_OPTIONS[protocol], options))
    builder = {"pd-cycling": _pd_cycling, "dr-map": _dr_map, "retention": _retention, "iv": _iv,
               "endurance": _endurance}[protocol]
    plan = builder(p, opts)
    if getattr(opts, "conduction", None) is not None:
        # checked over the protocol's voltages and the whole ensemble's devices before any device runs
        # (the reference's one chunk checks it again, as every run_pulses does)
        table, _ = engine.parameter_table(p.params, device_keys(opts.seed, int(opts.devices), 0))
        engine._checked_law(opts.conduction, p.params, plan.train, table)
    import dask.base

    ds = _assemble(plan, opts, dask.base.tokenize(p.to_toml(), protocol, repr(opts)))
    ds.attrs.update(_filament_attrs(p, protocol, opts, plan.attrs))
    return annotate(ds)


def _with_law(opts: FilamentOptions) -> FilamentOptions:
    """``opts`` with its conduction law compiled and the reference backend's ensemble in one chunk, refusing
    a law on the compiled backend and smaller chunks on the reference, before any device runs."""
    backend = getattr(opts, "backend", "compiled")
    if backend == "reference":
        devices = int(opts.devices)
        if opts.chunk_devices is not None and opts.chunk_devices < devices:
            raise NamedError(f"{{chunk_devices}} = {opts.chunk_devices} is smaller than devices = {devices} on "
                             "{backend} 'reference', which draws every device's hops from one random stream of "
                             "the seed (chunks would repeat it); allowed: omit {chunk_devices}, or at least "
                             f"{devices}")
        opts = dataclasses.replace(opts, chunk_devices=devices)
    conduction = getattr(opts, "conduction", None)
    if conduction is None:
        return opts
    from memdrift.emulator.conduction import resolve_conduction

    engine.check_conduction_backend(conduction, backend)
    # compiled once here; each chunk's run checks it over the protocol's own voltages
    return dataclasses.replace(opts, conduction=resolve_conduction(conduction))


def _run_options(opts: Any) -> dict[str, Any]:
    """The backend and law of a protocol whose trains run through ``run_pulses``."""
    return {"backend": opts.backend, "conduction": opts.conduction}


def _filament_attrs(p: Preset, protocol: str, opts: FilamentOptions, extra: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": f"memdrift characterisation: {protocol} on {p.name}",
        "memdrift_version": __version__,
        "model": p.model,
        "preset": p.name,
        "protocol": protocol,
        "scheme": extra.pop("scheme", protocol),
        "seed": int(opts.seed),
        "noise": int(bool(opts.noise)),
        "backend": getattr(opts, "backend", "compiled"),
        "source": "memdrift characterise (emulated)",
    }
    law = getattr(opts, "conduction", None)
    if law is not None:
        attrs["scheme.conduction"] = law.name
    attrs.update(netcdf_attrs(extra, "protocol."))
    attrs.update(netcdf_attrs(p.params.scalars(), "param."))
    attrs.update(netcdf_attrs(p.params.variation, "variation."))
    return attrs


class _Bench:
    """Filament devices with their kernel state kept between trains (program, then bake; cycle blocks)."""

    def __init__(self, params: FilamentParams, seed: int, first: int, n: int, *, noise: bool, threads: int):
        from memdrift import ext

        _filament = ext.load("_filament", columns=filament.COLUMNS)

        self._kernel = _filament
        self.keys = device_keys(seed, n, first)
        self.table, gap0 = engine.parameter_table(params, self.keys)
        self.table = np.ascontiguousarray(self.table)
        t0 = self.table[:, filament.COL["ambient_temperature_k"]].copy()
        # same initial kernel state as engine.run_pulses, so a protocol's first train matches it
        self.state = engine.kernel_state(gap0, t0)
        self.counters = np.zeros(n, dtype=np.uint64)
        self.noise, self.threads, self.n = int(bool(noise)), int(threads), n

    def set_ambient(self, temperature_k: float) -> None:
        self.table[:, filament.COL["ambient_temperature_k"]] = temperature_k
        self.state[:, 1] = temperature_k

    def run(self, train: PulseTrain) -> dict[str, np.ndarray]:
        segments = engine.segment_table(train)
        out = {k: np.empty((self.n, train.n_pulses)) for k in ("conductance", "temperature_peak", "energy", "gap")}
        self._kernel.run_cycle(segments, self.state, self.table, self.keys, self.counters, out["conductance"],
                               out["temperature_peak"], out["energy"], out["gap"], self.noise, self.threads)
        return out


def _ramp(p: Preset) -> PulseTrain:
    # The paper's 20 + 20 ramp for every filament preset: the protocols need both branches,
    # which a preset's own scheme (e.g. identical pulses) need not have.
    return from_name("ramp")


def _pd_cycling(p: Preset, opts: PdCyclingOptions) -> _Plan:
    cycles = opts.cycles
    train = _ramp(p)

    def compute(first: int, n: int) -> dict[str, np.ndarray]:
        ds = engine.run_pulses(p.params, train, devices=n, cycles=cycles, seed=opts.seed, threads=opts.threads,
                               noise=opts.noise, preset=p.name, first_device=first, **_run_options(opts))
        return {k: ds[k].values for k in ("conductance", "temperature_peak", "energy", "gap")}

    dims = ("device", "cycle", "pulse")
    shape = (cycles, train.n_pulses)
    variables = {
        "conductance": _Var(dims, shape, "S", "conductance read after the pulse"),
        "temperature_peak": _Var(dims, shape, "K", "peak filament temperature during the pulse"),
        "energy": _Var(dims, shape, "J", "electrical energy delivered by the pulse"),
        "gap": _Var(dims, shape, "m", "filament-electrode gap after the pulse"),
    }
    coords = {"cycle": ("cycle", np.arange(cycles)), "pulse": ("pulse", np.arange(train.n_pulses)),
              BRANCH: ("pulse", np.array(train.branch))}
    static = {"amplitude": (("pulse",), train.amplitude_v), "width": (("pulse",), train.width_s)}
    return _Plan(variables, compute, coords, static, {"scheme": train.name, **train.describe(), "cycles": cycles},
                 train=train)


def _dr_map(p: Preset, opts: DrMapOptions) -> _Plan:
    amps, pulses, width = opts.amplitudes_v, opts.pulses, opts.width_s
    base = _ramp(p)
    half = {POTENTIATION: np.flatnonzero(np.array(base.branch) == POTENTIATION),
            DEPRESSION: np.flatnonzero(np.array(base.branch) == DEPRESSION)}
    amp_list, wid_list, br_list, keep, reset_end = [], [], [], [], []
    for a in amps:
        # Each family starts from the end state of the scheme's opposite branch (HRS before
        # potentiation, LRS before depression), as a lab re-initialises between families.
        reset = half[DEPRESSION if a > 0 else POTENTIATION]
        amp_list += list(base.amplitude_v[reset])
        wid_list += list(base.width_s[reset])
        br_list += [base.branch[i] for i in reset]
        reset_end.append(len(amp_list) - 1)
        fam = identical(a, width, pulses)
        keep.append(np.arange(len(amp_list), len(amp_list) + pulses))
        amp_list += list(fam.amplitude_v)
        wid_list += list(fam.width_s)
        br_list += list(fam.branch)
    train = PulseTrain(np.array(amp_list), np.array(wid_list), base.read_voltage_v, base.read_width_s,
                       base.read_gap_s, tuple(br_list), name="dr-map")
    keep_idx = np.stack(keep)  # (family, pulse)
    reset_idx = np.array(reset_end)
    n_fam = len(amps)

    def compute(first: int, n: int) -> dict[str, np.ndarray]:
        ds = engine.run_pulses(p.params, train, devices=n, cycles=1, seed=opts.seed, threads=opts.threads,
                               noise=opts.noise, preset=p.name, first_device=first, **_run_options(opts))
        g = ds["conductance"].values[:, 0]
        out = {k: ds[k].values[:, 0][:, keep_idx] for k in ("conductance", "temperature_peak", "energy", "gap")}
        g0 = g[:, reset_idx]
        out["conductance_initial"] = g0
        out["delta_conductance"] = np.diff(np.concatenate([g0[..., None], out["conductance"]], axis=2), axis=2)
        return out

    dims = ("device", "cycle", "pulse")
    shape = (n_fam, pulses)
    variables = {
        "conductance": _Var(dims, shape, "S", "conductance read after the pulse"),
        "delta_conductance": _Var(dims, shape, "S", "conductance change caused by the pulse"),
        "temperature_peak": _Var(dims, shape, "K", "peak filament temperature during the pulse"),
        "energy": _Var(dims, shape, "J", "electrical energy delivered by the pulse"),
        "gap": _Var(dims, shape, "m", "filament-electrode gap after the pulse"),
        "conductance_initial": _Var(("device", "cycle"), (n_fam,), "S",
                                    "conductance after the reset that starts the family"),
    }
    amp_arr = np.array(amps, dtype=np.float64)
    coords = {"cycle": ("cycle", np.arange(n_fam)), "pulse": ("pulse", np.arange(pulses)),
              BRANCH: ("cycle", np.where(amp_arr > 0, POTENTIATION, DEPRESSION)),
              "family_amplitude": ("cycle", amp_arr, {"units": "V", "long_name": "pulse amplitude of the family"})}
    static = {"amplitude": (("cycle", "pulse"), np.repeat(amp_arr[:, None], pulses, axis=1)),
              "width": (("pulse",), np.full(pulses, width))}

    def derived(ds: xr.Dataset) -> xr.Dataset:
        before = xr.concat([ds["conductance_initial"].expand_dims(pulse=[-1]),
                            ds["conductance"].isel(pulse=slice(None, -1)).assign_coords(
                                pulse=ds["pulse"].values[1:])], dim="pulse").assign_coords(pulse=ds["pulse"].values)
        ds["conductance_before_mean"] = before.mean("device").transpose("cycle", "pulse")
        ds["conductance_before_mean"].attrs.update(units="S", long_name="ensemble-mean conductance before the pulse")
        ds["delta_conductance_mean"] = ds["delta_conductance"].mean("device")
        ds["delta_conductance_mean"].attrs.update(units="S", long_name="ensemble-mean ΔG per pulse (the ΔG map)")
        ds["delta_conductance_std"] = ds["delta_conductance"].std("device")
        ds["delta_conductance_std"].attrs.update(units="S", long_name="device-to-device σ of ΔG per pulse")
        return ds

    return _Plan(variables, compute, coords, static,
                 {"scheme": "dr-map", "pulses": pulses, "width_s": width, "reset": "opposite branch of the ramp",
                  **base.describe()}, derived=derived, train=train)


def _retention(p: Preset, opts: RetentionOptions) -> _Plan:
    temps, n_times, k = opts.temperatures_k, opts.times, opts.program_pulses
    times = np.logspace(np.log10(opts.time_min_s), np.log10(opts.time_max_s), n_times)
    base = _ramp(p)
    pot = np.flatnonzero(np.array(base.branch) == POTENTIATION)
    read_width = 1e-6
    bake = retention(times, read_voltage_v=base.read_voltage_v, read_width_s=read_width)
    program = PulseTrain(base.amplitude_v[pot[:k]], base.width_s[pot[:k]], base.read_voltage_v, base.read_width_s,
                         base.read_gap_s, tuple(base.branch[i] for i in pot[:k]), name="program") if k else None
    ambient = float(p.params.ambient_temperature_k)

    def compute(first: int, n: int) -> dict[str, np.ndarray]:
        bench = _Bench(p.params, opts.seed, first, n, noise=opts.noise, threads=opts.threads)
        if program is not None:
            g_prog = bench.run(program)["conductance"][:, -1]
        else:
            g_prog = filament.read_conductance(base.read_voltage_v, filament.DeviceState(
                bench.state[:, 0], bench.state[:, 1]), bench.table)
        programmed = bench.state.copy()
        out: dict[str, list[np.ndarray]] = {"conductance": [], "gap": []}
        for t in temps:
            bench.state[:] = programmed
            bench.set_ambient(t)
            res = bench.run(bake)
            out["conductance"].append(res["conductance"])
            out["gap"].append(res["gap"])
            _advance(n / len(temps))
        return {"conductance": np.stack(out["conductance"], axis=1), "gap": np.stack(out["gap"], axis=1),
                "conductance_programmed": g_prog}

    dims = ("device", "temperature", "time")
    shape = (len(temps), n_times)
    variables = {
        "conductance": _Var(dims, shape, "S", "conductance read during the zero-bias bake"),
        "gap": _Var(dims, shape, "m", "filament-electrode gap at the read"),
        "conductance_programmed": _Var(("device",), (), "S", "conductance after programming, before the bake"),
    }
    coords = {"temperature": ("temperature", np.array(temps, dtype=np.float64),
                              {"units": "K", "long_name": "bake (ambient) temperature"}),
              "time": ("time", times, {"units": "s", "long_name": "time since the end of programming"})}
    attrs = {"scheme": "retention", "program_pulses": k, "programmed_at_k": ambient, "read_width_s": read_width,
             "read_voltage_v": base.read_voltage_v}
    return _Plan(variables, compute, coords, {}, attrs)


def _iv(p: Preset, opts: IvOptions) -> _Plan:
    loops, v_max, steps, dwell = opts.cycles, opts.voltage_max_v, opts.steps, opts.dwell_s
    dv = v_max / steps
    grid = np.arange(-steps, steps + 1) * dv  # the voltage coordinate, -V .. +V
    # applied sequence: 0 → +V (up), +V → -V (down), -V → 0 (up); index into grid per step
    seq = np.concatenate([np.arange(steps, 2 * steps + 1), np.arange(2 * steps - 1, -1, -1),
                          np.arange(1, steps)])
    up = np.concatenate([np.ones(steps + 1, bool), np.zeros(2 * steps, bool), np.ones(steps - 1, bool)])
    # where each (sweep, voltage) is measured; the turning points belong to both sweeps
    where = np.empty((2, grid.size), dtype=np.int64)
    for s, is_up in enumerate((True, False)):
        for j in range(grid.size):
            hits = np.flatnonzero((seq == j) & (up == is_up))
            where[s, j] = hits[0] if hits.size else np.flatnonzero(seq == j)[0]
    volts = grid[seq]
    # A short read keeps the train valid without disturbing the state (it is not part of the loop).
    train = PulseTrain(volts, np.full(volts.size, dwell), read_voltage_v=-0.01, read_width_s=1e-9, read_gap_s=0.0,
                       branch=tuple(POTENTIATION if v >= 0 else DEPRESSION for v in volts), name="iv")

    def compute(first: int, n: int) -> dict[str, np.ndarray]:
        ds = engine.run_pulses(p.params, train, devices=n, cycles=loops, seed=opts.seed, threads=opts.threads,
                               noise=opts.noise, preset=p.name, first_device=first, **_run_options(opts))
        e = ds["energy"].values  # (device, cycle, step)
        with np.errstate(divide="ignore", invalid="ignore"):
            current = np.where(volts != 0, np.sign(volts) * e / (np.abs(volts) * dwell), 0.0)
        return {"current": current[..., where], "gap": ds["gap"].values[..., where],
                "temperature_peak": ds["temperature_peak"].values[..., where]}

    dims = ("device", "cycle", "sweep", "voltage")
    shape = (loops, 2, grid.size)
    variables = {
        "current": _Var(dims, shape, "A", "mean current during the voltage step"),
        "gap": _Var(dims, shape, "m", "filament-electrode gap at the end of the step"),
        "temperature_peak": _Var(dims, shape, "K", "peak filament temperature during the step"),
    }
    coords = {"cycle": ("cycle", np.arange(loops)), "sweep": ("sweep", np.array(["up", "down"])),
              "voltage": ("voltage", grid, {"units": "V", "long_name": "applied voltage"})}
    return _Plan(variables, compute, coords, {}, {"scheme": "iv", "voltage_max_v": v_max, "steps": steps,
                                                 "dwell_s": dwell, "sweep_rate_v_per_s": dv / dwell}, train=train)


def _endurance(p: Preset, opts: EnduranceOptions) -> _Plan:
    cycles, record = opts.cycles, opts.record
    kept = np.unique(np.round(np.logspace(0, np.log10(cycles), record)).astype(np.int64) - 1)
    kept = np.unique(np.concatenate([[0, cycles - 1], kept]))
    train = _ramp(p)
    branch = np.array(train.branch)
    last_p = int(np.flatnonzero(branch == POTENTIATION)[-1])
    last_d = int(np.flatnonzero(branch == DEPRESSION)[-1])
    keep_set = {int(c): i for i, c in enumerate(kept)}

    def compute(first: int, n: int) -> dict[str, np.ndarray]:
        bench = _Bench(p.params, opts.seed, first, n, noise=opts.noise, threads=opts.threads)
        g = np.empty((n, kept.size, train.n_pulses))
        energy = np.empty((n, kept.size))
        for c in range(cycles):
            res = bench.run(train)
            i = keep_set.get(c)
            if i is not None:
                g[:, i] = res["conductance"]
                energy[:, i] = res["energy"].sum(axis=1)
            if c % 100 == 99:
                _advance(100 * n / cycles)
        g_on, g_off = g[:, :, last_p], g[:, :, last_d]
        return {"conductance": g, "conductance_on": g_on, "conductance_off": g_off, "on_off_ratio": g_on / g_off,
                "energy_per_cycle": energy}

    pair = ("device", "cycle")
    variables = {
        "conductance": _Var(("device", "cycle", "pulse"), (kept.size, train.n_pulses), "S",
                            "conductance read after the pulse (kept cycles)"),
        "conductance_on": _Var(pair, (kept.size,), "S", "conductance after the last potentiation pulse"),
        "conductance_off": _Var(pair, (kept.size,), "S", "conductance after the last depression pulse"),
        "on_off_ratio": _Var(pair, (kept.size,), "1", "on/off conductance window of the cycle"),
        "energy_per_cycle": _Var(pair, (kept.size,), "J", "electrical energy of the cycle's pulses"),
    }
    coords = {"cycle": ("cycle", kept, {"long_name": "cycle index (log-spaced subset of the cycles run)"}),
              "pulse": ("pulse", np.arange(train.n_pulses)), BRANCH: ("pulse", branch)}
    static = {"amplitude": (("pulse",), train.amplitude_v), "width": (("pulse",), train.width_s)}
    # per device the kernel runs every cycle; the output holds only the kept ones
    return _Plan(variables, compute, coords, static,
                 {"scheme": train.name, **train.describe(), "cycles_run": cycles, "cycles_kept": int(kept.size)},
                 bytes_per_device=8 * (kept.size + 1) * train.n_pulses * 5)
