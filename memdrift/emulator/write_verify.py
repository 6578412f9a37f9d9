"""Write-verify programming of filament cells to target conductances, with incremental step pulses (ISPP).

The closed-loop scheme of DESIGN.md ("incremental step pulse programming and
write-verify to a target"): read the cell; if its conductance is below the band
``target · (1 ± tolerance)`` apply a SET pulse, above it a RESET pulse, each
followed by the zero-bias gap and a read; stop when the read lies in the band or
after ``max_pulses``. Consecutive pulses of one polarity step up in amplitude
(``set_step_v`` / ``reset_step_v``, up to ``set_max_v`` / ``reset_max_v``); a change
of polarity starts that polarity's ramp again, as ISPP controllers do after an
overshoot. Devices are programmed to the targets in the order given, each from
wherever the previous target left it.

The policy lives here; the physics is the filament kernel's (or the NumPy
twin's): each verify round runs the compiled ``run_cycle`` (or
``run_cycle_reference``) on the devices that share one pulse amplitude, with each
device's own state and random stream, so results do not depend on the thread
count and the two backends agree with noise off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.data.schema import DEVICE, annotate, netcdf_attrs
from memdrift.emulator import filament
from memdrift.emulator.engine import (Backend, _check_ensemble, check_conduction_backend, checked_law, kernel_state,
                                      parameter_table)
from memdrift.emulator.params import FilamentParams, option
from memdrift.emulator.randomness import device_keys
from memdrift.errors import MemdriftError, check_range

LEVEL = "level"
ATTEMPT = "attempt"


@dataclass(frozen=True)
class WriteVerify:
    """A write-verify/ISPP scheme (voltages in V, widths in s, conductances in S); each field's unit and
    meaning are in its metadata (``dataclasses.fields(WriteVerify)``), which the sweeps read."""

    targets_s: tuple[float, ...] = option((0.8e-3, 1.2e-3, 1.6e-3), "S", "target conductances, in write order")
    tolerance: float = option(0.03, "1", "relative half-width of the accept band")
    set_start_v: float = option(0.7, "V", "first SET amplitude")
    set_step_v: float = option(0.02, "V", "SET amplitude step per consecutive pulse")
    set_max_v: float = option(1.2, "V", "largest SET amplitude")
    reset_start_v: float = option(-0.7, "V", "first RESET amplitude")
    reset_step_v: float = option(-0.02, "V", "RESET amplitude step per consecutive pulse")
    reset_max_v: float = option(-1.4, "V", "largest RESET amplitude (most negative)")
    width_s: float = option(200e-9, "s", "programming pulse width")
    max_pulses: int = option(100, "1", "pulses allowed per target")
    read_voltage_v: float = option(-0.1, "V", "verify read bias")
    read_width_s: float = option(30e-6, "s", "verify read duration")
    read_gap_s: float = option(20e-6, "s", "zero-bias gap between a pulse and its read")

    def checked(self) -> WriteVerify:
        if len(self.targets_s) == 0:
            raise MemdriftError("targets_s is empty; allowed: one or more conductances in (0, 1] S")
        for g in self.targets_s:
            check_range("targets_s", g, 0.0, 1.0, low_open=True, unit="S")
        check_range("tolerance", self.tolerance, 0.0, 1.0, low_open=True)
        check_range("set_start_v", self.set_start_v, 0.0, 10.0, low_open=True, unit="V")
        check_range("set_step_v", self.set_step_v, 0.0, 10.0, unit="V")
        check_range("set_max_v", self.set_max_v, self.set_start_v, 10.0, unit="V")
        check_range("reset_start_v", self.reset_start_v, -10.0, 0.0, high_open=True, unit="V")
        check_range("reset_step_v", self.reset_step_v, -10.0, 0.0, unit="V")
        check_range("reset_max_v", self.reset_max_v, -10.0, self.reset_start_v, unit="V")
        check_range("width_s", self.width_s, 0.0, 10.0, low_open=True, unit="s")
        check_range("max_pulses", self.max_pulses, 1, 100_000)
        check_range("read_voltage_v", self.read_voltage_v, -10.0, 10.0, unit="V")
        if self.read_voltage_v == 0.0:
            raise MemdriftError("read_voltage_v = 0.0 is not allowed; allowed: a non-zero read bias in [-10, 10] V")
        check_range("read_width_s", self.read_width_s, 0.0, 10.0, unit="s")
        check_range("read_gap_s", self.read_gap_s, 0.0, 10.0, unit="s")
        if int(self.max_pulses) != self.max_pulses:
            raise MemdriftError(f"max_pulses = {self.max_pulses!r} is not an integer; allowed: integer in [1, 100000]")
        return self

    def amplitude(self, polarity: np.ndarray, run: np.ndarray) -> np.ndarray:
        """Pulse amplitude (V) of the ``run``-th consecutive pulse (0-based) of each ``polarity`` (+1 SET, -1 RESET)."""
        set_v = np.minimum(self.set_start_v + run * self.set_step_v, self.set_max_v)
        reset_v = np.maximum(self.reset_start_v + run * self.reset_step_v, self.reset_max_v)
        return np.where(polarity > 0, set_v, reset_v)


def _segments(amplitude_v: float, scheme: WriteVerify) -> np.ndarray:
    """One verify round: pulse (zero width for the initial read), zero-bias gap, read."""
    width = scheme.width_s if amplitude_v != 0.0 else 0.0
    gap = scheme.read_gap_s if amplitude_v != 0.0 else 0.0
    return np.array([(amplitude_v, width, filament.PULSE), (0.0, gap, filament.IDLE),
                     (scheme.read_voltage_v, scheme.read_width_s, filament.READ)], dtype=np.float64)


class _Ensemble:
    """Device states of one backend, advanced a verify round at a time on a subset of devices."""

    def __init__(self, params: FilamentParams, devices: int, seed: int, threads: int, backend: str, noise: bool,
                 first_device: int = 0, conduction: Any = None):
        self.keys = device_keys(seed, devices, first_device)
        self.table, gap0 = parameter_table(params, self.keys)
        temperature0 = self.table[:, filament.COL["ambient_temperature_k"]].copy()
        self.backend, self.noise, self.threads = backend, bool(noise), int(threads)
        # a compiled user law (memdrift.emulator.conduction), reference backend only; None: the built-in one
        self.conduction = conduction
        if backend == "compiled":
            self.state = kernel_state(gap0, temperature0)
            self.counters = np.zeros(devices, dtype=np.uint64)
        else:
            self.ref = filament.DeviceState(gap0, temperature0)
            self.rng = np.random.default_rng(np.random.SeedSequence(int(seed))) if noise else None

    def round(self, idx: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``segments`` on devices ``idx``; returns (conductance read, pulse energy J)."""
        n = idx.size
        if self.backend == "compiled":
            from memdrift import ext

            _filament = ext.load("_filament", columns=filament.COLUMNS)

            state, counters = self.state[idx], self.counters[idx]
            outs = [np.empty((n, 1)) for _ in range(4)]
            _filament.run_cycle(segments, state, self.table[idx], self.keys[idx], counters,
                                *outs, int(self.noise), self.threads)
            self.state[idx], self.counters[idx] = state, counters
            return outs[0][:, 0], outs[2][:, 0]
        sub = filament.DeviceState(self.ref.gap_m[idx], self.ref.temperature_k[idx], self.ref.relaxation_m[idx])
        sub.write_share, sub.read_share = self.ref.write_share[idx], self.ref.read_share[idx]
        conductance, _peak, energy, _gap = filament.run_cycle_reference(segments, sub, self.table[idx], self.rng,
                                                                        conduction=self.conduction)
        self.ref.gap_m[idx], self.ref.temperature_k[idx] = sub.gap_m, sub.temperature_k
        self.ref.relaxation_m[idx] = sub.relaxation_m
        self.ref.write_share[idx], self.ref.read_share[idx] = sub.write_share, sub.read_share
        return conductance[:, 0], energy[:, 0]

    def set_ambient(self, temperature_k: float) -> None:
        """Put every device at ambient ``temperature_k`` (K), in thermal equilibrium with it."""
        self.table[:, filament.COL["ambient_temperature_k"]] = float(temperature_k)
        if self.backend == "compiled":
            self.state[:, 1] = float(temperature_k)
        else:
            self.ref.temperature_k[:] = float(temperature_k)

    def copy(self) -> _Ensemble:
        """An independent copy of the devices (state, parameters, stream positions)."""
        import copy as _copy

        # the compiled law is shared, not copied (it holds no state)
        return _copy.deepcopy(self, {id(self.conduction): self.conduction})


def _verify_loop(ens: _Ensemble, target_s: np.ndarray, scheme: WriteVerify,
                 trace: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write-verify every device of ``ens`` to its own ``target_s`` from wherever it is.

    Returns the last read (S), the write pulses used and their summed energy (J) per device;
    ``trace`` (conductance, amplitude, energy over (device, attempt)) receives each attempt.
    """
    n = target_s.size
    everyone = np.arange(n)
    g, _ = ens.round(everyone, _segments(0.0, scheme))          # the verify read before any pulse
    polarity_last = np.zeros(n)
    run = np.zeros(n)
    pulses = np.zeros(n, dtype=np.int64)
    energy_j = np.zeros(n)
    for attempt in range(int(scheme.max_pulses)):
        low, high = g < target_s * (1.0 - scheme.tolerance), g > target_s * (1.0 + scheme.tolerance)
        active = low | high
        if not active.any():
            break
        polarity = np.where(low, 1.0, -1.0)
        # ISPP: the amplitude climbs while the polarity repeats and starts again when it flips
        run = np.where(polarity == polarity_last, run + 1.0, 0.0)
        polarity_last = np.where(active, polarity, polarity_last)
        volts = scheme.amplitude(polarity, run)
        for v in np.unique(volts[active]):
            idx = everyone[active & (volts == v)]
            g_new, e_new = ens.round(idx, _segments(float(v), scheme))
            g[idx] = g_new
            if trace is not None:
                trace[0][idx, attempt], trace[1][idx, attempt], trace[2][idx, attempt] = g_new, v, e_new
            energy_j[idx] += e_new
            pulses[idx] += 1
    return g, pulses, energy_j


def program_to_targets(params: FilamentParams, target_s: np.ndarray, scheme: WriteVerify | None = None, *,
                       seed: int = 0, first_device: int = 0, threads: int = 1, backend: Backend = "compiled",
                       noise: bool = True, ambient_k: float | None = None) -> dict[str, np.ndarray]:
    """Write-verify each device from reset to its own target conductance (``target_s``, S, one per device).

    Devices are ``first_device … first_device + len(target_s) − 1`` of the seed's ensemble (their own
    device-to-device parameters and random streams), so an ensemble programmed in chunks gives the
    same per-device results as programmed whole. ``scheme.targets_s`` is not used; its band, ramps and
    pulse budget are. Returns per device ``conductance_s`` (last read), ``pulses``, ``energy_j`` (write
    pulses), ``time_s`` (pulses, gaps and reads, the first read included) and ``converged`` (in band),
    plus ``ensemble``: the devices' state, for aging them afterwards (:func:`age_ensemble`).
    """
    target_s = np.asarray(target_s, dtype=np.float64).ravel()
    _check_ensemble(max(target_s.size, 1), 1, seed, threads, backend)
    if not np.all((target_s > 0.0) & (target_s <= 1.0)):
        raise MemdriftError("target_s holds values outside (0, 1] S; allowed: conductances in (0, 1] S")
    scheme = (scheme or WriteVerify()).checked()
    ens = _Ensemble(params, target_s.size, int(seed), threads, backend, noise, int(first_device))
    if ambient_k is not None:
        ens.set_ambient(ambient_k)
    g, pulses, energy_j = _verify_loop(ens, target_s, scheme)
    round_s = scheme.width_s + scheme.read_gap_s + scheme.read_width_s
    return {"conductance_s": g, "pulses": pulses, "energy_j": energy_j,
            "time_s": scheme.read_width_s + pulses * round_s,
            "converged": np.abs(g - target_s) <= scheme.tolerance * target_s, "ensemble": ens}


def age_ensemble(ens: _Ensemble, duration_s: float, temperature_k: float, read_voltage_v: float = -0.1,
                 read_width_s: float = 30e-6) -> np.ndarray:
    """Hold every device of ``ens`` at zero bias for ``duration_s`` at ``temperature_k``, then read it (S).

    The relaxation is the kernel's own zero-bias physics (field-free hopping and dissolution at the
    ambient temperature), each device on its own random stream.
    """
    ens.set_ambient(temperature_k)
    segments = np.array([(0.0, 0.0, filament.PULSE), (0.0, float(duration_s), filament.IDLE),
                         (read_voltage_v, read_width_s, filament.READ)], dtype=np.float64)
    g, _ = ens.round(np.arange(ens.keys.size), segments)
    return g


def run_write_verify(params: FilamentParams, scheme: WriteVerify, *, devices: int, seed: int = 0, threads: int = 1,
                     backend: Backend = "compiled", noise: bool = True, preset: str = "custom",
                     conduction: Any = None) -> xr.Dataset:
    """Program ``devices`` filament cells to each of ``scheme.targets_s`` in turn by write-verify with ISPP.

    Dataset: ``conductance`` read after each attempt over (device, level, attempt) — NaN once the device
    is in band — with ``amplitude`` (V) and ``energy`` (J) of each attempt's pulse; per (device, level)
    the ``conductance_final``, ``pulses`` used, ``converged``, ``program_energy`` (J) and ``program_time``
    (s: pulses, gaps and reads, the initial read included).

    ``conduction``: a conduction law of your own in place of the built-in sinh law, on the reference
    backend (as :func:`memdrift.emulator.engine.run_pulses` takes it), checked over the scheme's largest
    amplitude or read bias before any device runs.
    """
    _check_ensemble(devices, 1, seed, threads, backend)
    check_conduction_backend(conduction, backend)
    scheme = scheme.checked()
    n_lev, n_att = len(scheme.targets_s), int(scheme.max_pulses)
    ens = _Ensemble(params, int(devices), int(seed), threads, backend, noise)
    max_v = max(abs(scheme.set_max_v), abs(scheme.reset_max_v), abs(scheme.read_voltage_v))
    ens.conduction = checked_law(conduction, params, ens.table, max_v)
    shape = (int(devices), n_lev, n_att)
    conductance, amplitude, energy = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    final = np.empty((int(devices), n_lev))
    pulses = np.zeros((int(devices), n_lev), dtype=np.int64)
    converged = np.zeros((int(devices), n_lev), dtype=bool)
    everyone = np.arange(int(devices))
    read_s = scheme.read_width_s
    round_s = scheme.width_s + scheme.read_gap_s + scheme.read_width_s
    for lev, target in enumerate(scheme.targets_s):
        trace = (conductance[:, lev], amplitude[:, lev], energy[:, lev])
        g, n_pulses, _ = _verify_loop(ens, np.full(int(devices), target), scheme, trace)
        pulses[:, lev] = n_pulses
        final[:, lev] = g
        converged[:, lev] = np.abs(g - target) <= scheme.tolerance * target
    program_energy = np.nansum(energy, axis=2)
    program_time = read_s + pulses * round_s
    ds = xr.Dataset(
        {"conductance": ((DEVICE, LEVEL, ATTEMPT), conductance),
         "amplitude": ((DEVICE, LEVEL, ATTEMPT), amplitude),
         "energy": ((DEVICE, LEVEL, ATTEMPT), energy),
         "conductance_final": ((DEVICE, LEVEL), final),
         "pulses": ((DEVICE, LEVEL), pulses),
         "converged": ((DEVICE, LEVEL), converged.astype(np.int8)),
         "program_energy": ((DEVICE, LEVEL), program_energy),
         "program_time": ((DEVICE, LEVEL), program_time),
         "target": ((LEVEL,), np.asarray(scheme.targets_s, dtype=float))},
        coords={DEVICE: everyone, LEVEL: np.arange(n_lev), ATTEMPT: np.arange(n_att)})
    units = {"conductance": ("S", "conductance read after the attempt's pulse (NaN once in band)"),
             "amplitude": ("V", "pulse amplitude of the attempt"), "energy": ("J", "energy of the attempt's pulse"),
             "conductance_final": ("S", "conductance read when the device stopped"),
             "pulses": ("1", "write pulses used"), "converged": ("1", "1 when the final read is in the band"),
             "program_energy": ("J", "energy of the write pulses to reach the level"),
             "program_time": ("s", "pulses, gaps and reads to reach the level, the first read included"),
             "target": ("S", "target conductance")}
    ds = annotate(ds)  # CF conventions; the long names below say what each variable means here
    for name, (unit, long_name) in units.items():
        ds[name].attrs.update(units=unit, long_name=long_name)
    ds.attrs.update({
        "title": "memdrift write-verify (ISPP) programming of filament cells",
        "memdrift_version": __version__, "model": params.model, "preset": preset, "scheme": "write-verify",
        "seed": int(seed), "noise": int(bool(noise)), "backend": backend,
    })
    if ens.conduction is not None:
        ds.attrs["scheme.conduction"] = ens.conduction.name
    scheme_attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(scheme).items()}
    ds.attrs.update(netcdf_attrs(scheme_attrs, "scheme."))
    ds.attrs.update(netcdf_attrs(params.scalars(), "param."))
    ds.attrs.update(netcdf_attrs(params.variation, "variation."))
    return ds
