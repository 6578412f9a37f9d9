"""Pulse schemes of the TiO2-x four-terminal paper on the bulk model.

* ``identical``: from HRS (potentiation) or LRS (depression), re-initialised
  with -/+6 V, 100 identical write pulses (2 s) per amplitude, a read after each.
* ``dr-map``: the |dR| vs R map per amplitude built from ``identical`` runs, and
  from it the feedforward table Vw(r).
* ``ffp``: closed loop read r -> write Vw(r) (0.8 s) -> read, HRS -> LRS then
  LRS -> HRS; every event is kept.
* ``ffp-segmentation``: ``ffp`` plus the paper's multilevel segmentation into n
  levels and the count of levels prone to be skipped (no event lands within half a
  level spacing, at CPD 80 % over devices).
* ``retention``: zero-bias relaxation at a set of temperatures.

Write: +Vw on T2 and T4, T1 and T3 grounded. Read: 0.1 V on T1, others grounded,
R = V1 / |I3|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.data import flags
from memdrift.data.schema import BRANCH, annotate, netcdf_attrs
from memdrift.emulator import bulk4t as b
from memdrift.emulator.params import option
from memdrift.emulator.policies import CompiledPolicy, resolve_policy
from memdrift.emulator.pulses import DEPRESSION, POTENTIATION
from memdrift.emulator.segmentation import segment_processes, skipped_mask
from memdrift.errors import MemdriftError, check_range, field_error

SCHEMES = ("identical", "dr-map", "ffp", "ffp-segmentation", "retention")
PAPER_AMPLITUDES_V = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0)
BACKENDS = ("compiled", "reference")
#: the first pulse of an automatic initialisation (s), unless the preset's [calibration] names its own
#: ``init_first_pulse_s``
INIT_FIRST_PULSE_S = 1.0
#: how much longer one initialisation pulse may be than the one before (no limit unless the preset's
#: [calibration] names its own ``init_step_growth``)
INIT_STEP_GROWTH = math.inf
#: the dR map's bin ranges (FFPOptions.map_range); a preset's [calibration] may name its own
MAP_RANGES = ("runs", "window")
CORRECTION_BASES = ("table", "last")


class Bulk4TDevices:
    """An ensemble of films with their state, driven pulse by pulse through one engine."""

    def __init__(self, params: b.Bulk4TParams, devices: int = 1, *, seed: int = 0, threads: int = 1,
                 backend: str = "compiled", deterministic: bool = False):
        devices = int(devices)
        if devices < 1:
            raise field_error("devices", devices, ">= 1")
        if int(threads) < 1:
            raise field_error("threads", threads, ">= 1")
        if backend not in BACKENDS:
            raise MemdriftError(f"backend = {backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        self.params = params
        self.devices = devices
        self.deterministic = bool(deterministic)
        self.table = b.device_table(params, devices, seed)
        children, keys = b.device_streams(seed, devices)
        if backend == "compiled":
            self.engine: Any = b.CompiledEngine(params, self.table, keys, threads=threads)
        else:
            self.engine = b.ReferenceEngine(params, self.table, children)
        self.n = b.initial_counts(self.table, params.shape)
        #: width of the first pulse of an automatic initialisation (s); later pulses are sized from the rate
        #: it achieved. A fast film needs it short, or its first pulse carries it far past the target.
        self.init_first_pulse_s = INIT_FIRST_PULSE_S
        #: the largest ratio of one initialisation pulse to the one before. After a polarity reversal a film
        #: can start slow and speed up within a pulse: a pulse sized from a slow one then carries it past the
        #: target, which a bounded growth (an auto-ranging tester's) does not.
        self.init_step_growth = INIT_STEP_GROWTH
        self._ambient = np.broadcast_to(self.table[:, b.COL["ambient_temperature_k"], None, None], self.n.shape)

    @classmethod
    def from_table(cls, params: b.Bulk4TParams, table: np.ndarray, keys: np.ndarray, *, threads: int = 1,
                   backend: str = "compiled", deterministic: bool = False) -> Bulk4TDevices:
        """Devices with the given parameter rows (``table``, one per device, e.g. films of another ensemble
        repeated) and hop streams (``keys``, one 64-bit key per device; the SciPy twin seeds from the same
        key), at the uniform state."""
        if backend not in BACKENDS:
            raise MemdriftError(f"backend = {backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        if int(threads) < 1:
            raise field_error("threads", threads, ">= 1")
        table = np.ascontiguousarray(table, dtype=np.float64)
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[0] != keys.size:
            raise MemdriftError(f"table has shape {table.shape} for {keys.size} keys; allowed: one row per key")
        dev = cls.__new__(cls)
        dev.params = params
        dev.devices = int(table.shape[0])
        dev.deterministic = bool(deterministic)
        dev.table = table
        if backend == "compiled":
            dev.engine = b.CompiledEngine(params, table, keys, threads=int(threads))
        else:
            dev.engine = b.ReferenceEngine(params, table, [np.random.SeedSequence(int(k)) for k in keys])
        dev.n = b.initial_counts(table, params.shape)
        dev.init_first_pulse_s = INIT_FIRST_PULSE_S
        dev.init_step_growth = INIT_STEP_GROWTH
        dev._ambient = np.broadcast_to(table[:, b.COL["ambient_temperature_k"], None, None], dev.n.shape)
        return dev

    def apply(self, volts: np.ndarray, width_s: float | np.ndarray, active: np.ndarray | None = None,
              ambient_k: np.ndarray | None = None) -> b.PulseRecord:
        """Terminal voltages (devices, 4) for ``width_s``; devices not ``active`` get a zero-width pulse."""
        volts = np.asarray(volts, dtype=np.float64)
        if volts.ndim != 2 or volts.shape != (self.devices, 4):
            raise MemdriftError(f"volts has shape {volts.shape}; allowed: ({self.devices}, 4), one voltage per "
                                f"terminal {', '.join(b.TERMINALS)} and device")
        bad = np.argwhere(~np.isfinite(volts))
        if bad.size:
            d, k = bad[0]
            raise MemdriftError(f"volts[{d}, {k}] ({b.TERMINALS[k]}) = {volts[d, k]!r} is out of range; "
                                "allowed: a finite voltage (V)")
        width = np.broadcast_to(np.asarray(width_s, dtype=np.float64), (self.devices,)).copy()
        bad = np.flatnonzero(~(np.isfinite(width) & (width > 0)))
        if bad.size:
            raise MemdriftError(f"width_s = {width[bad[0]]!r} is out of range; allowed: (0, inf) s")
        if active is not None:
            width = np.where(active, width, 0.0)
        self.n, record = self.engine.pulse(self.n, volts, width, deterministic=self.deterministic,
                                           ambient_k=ambient_k)
        return record

    def write(self, amplitude_v: float | np.ndarray, width_s: float, active: np.ndarray | None = None):
        amp = np.broadcast_to(np.asarray(amplitude_v, dtype=np.float64), (self.devices,))
        volts = np.zeros((self.devices, 4))
        volts[:, 1] = amp
        volts[:, 3] = amp
        return self.apply(volts, width_s, active)

    def read(self) -> np.ndarray:
        return self.engine.read(self.n, self._ambient)[0]

    def currents(self, volts: np.ndarray) -> np.ndarray:
        return self.engine.read(self.n, self._ambient, np.asarray(volts, float))[1]

    def condition(self, cycles: int = 2, amplitude_v: float = 6.0, width_s: float = 100.0) -> None:
        """The paper's +-6 V loops that bring a fresh film to its cycled (dynamic equilibrium) state."""
        for _ in range(int(cycles)):
            self.write(+abs(amplitude_v), width_s)
            self.write(-abs(amplitude_v), width_s)

    def initialise(self, target_ohm: np.ndarray | float, sign: float, amplitude_v: float = 6.0,
                   max_pulses: int = 500) -> np.ndarray:
        """Automatic initialisation: +-6 V pulses until R crosses ``target_ohm``; returns R.

        ``sign`` > 0 programs towards LRS (R falls below the target), < 0 towards HRS. Each pulse is sized
        from the rate the previous one achieved to cover 70 % of what remains (50 ms to 100 s), so the
        crossing overshoots by a few hundredths of an ohm. The first pulse is ``init_first_pulse_s``; no
        pulse is longer than ``init_step_growth`` times the one before.
        """
        target = np.broadcast_to(np.asarray(target_ohm, dtype=float), (self.devices,))
        r = self.read()
        active = (r > target) if sign > 0 else (r < target)
        step = np.full(self.devices, float(self.init_first_pulse_s))
        for _ in range(int(max_pulses)):
            if not np.any(active):
                break
            self.write(np.sign(sign) * abs(amplitude_v), step, active)
            r_new = np.where(active, self.read(), r)
            rate = np.abs(r_new - r) / step
            with np.errstate(divide="ignore", invalid="ignore"):
                new = np.where(rate > 0, 0.7 * np.abs(r_new - target) / rate, 10 * step)
            if math.isfinite(self.init_step_growth):
                new = np.minimum(new, self.init_step_growth * step)
            step = np.clip(new, 0.05, 100.0)
            r = r_new
            active &= (r > target) if sign > 0 else (r < target)
        return r

    def approach(self, target_ohm: float, from_sign: float, amplitude_v: float = 6.0,
                 reset_ohm: float | None = None) -> np.ndarray:
        """Initialise so R reaches ``target_ohm`` moving in the direction of ``from_sign`` (as a write would).

        With ``reset_ohm`` (the other end state), the film is first driven to it and then swept to the
        target: every initialisation then leaves the same vacancy map whatever came before. Without it,
        only devices past the target go back, and the state at the target keeps the previous run's history
        (after a 7 V run the film answers a feedforward pulse ~25 % faster than the map measured at the same R).
        """
        self.initialise(target_ohm if reset_ohm is None else reset_ohm, -from_sign, amplitude_v)
        return self.initialise(target_ohm, from_sign, amplitude_v)


@dataclass(frozen=True)
class FFPOptions:
    """Options of the ``ffp`` and ``ffp-segmentation`` schemes, checked when made; each field's unit and
    meaning are in its metadata (``dataclasses.fields(FFPOptions)``), which the sweeps read."""

    ffp_width_s: float = option(0.8, "s", "feedforward write pulse width")
    window_ohm: tuple[float, float] = option((0.1, 0.3), "ohm", "|dR| window (low, high) the table aims inside")
    max_events: int = option(2000, "1", "events allowed per branch")
    map_amplitudes_v: tuple[float, ...] = option(PAPER_AMPLITUDES_V, "V", "amplitudes of the dR map's runs")
    map_pulses: int = option(100, "1", "pulses per amplitude of the dR map's runs")
    # the paper's 140 ohm in 494 events is 0.28 ohm per event
    target_ohm: float = option(0.28, "ohm", "|dR| per event the table aims at")
    map_range: str = option("runs", "", "R range of the dR map's bins: 'runs' (every R the map's runs pass) "
                                        "or 'window' (LRS to HRS, pulses starting inside it)")
    levels: tuple[int, ...] = option((32, 128, 512), "1", "level counts n the trace is segmented into")
    snapshot_events: tuple[int, ...] = option((), "1", "0-based events whose vacancy and temperature maps "
                                                        "are kept")
    map_joule_heating: float | None = option(None, "1", "heating multiplier of the films the dR map is "
                                                         "measured on (None: the same films)")
    policy: CompiledPolicy | None = option(None, "", "write policy Vw(r) in place of the table look-up")
    correction_exponent: float = option(0.0, "1", "exponent b of each device's amplitude correction: after an "
                                                  "event its factor is multiplied by (target_ohm / |dR|)^b, the "
                                                  "ratio clipped to [1/2, 2] (0: the table alone, as the paper)")
    max_amplitude_v: float = option(7.0, "V", "largest write amplitude a corrected table may ask for (the "
                                              "source's limit)")
    correction_base: str = option("table", "", "what the correction scales: 'table' (the table's amplitude at "
                                               "the present R) or 'last' (the last write's amplitude; the table "
                                               "sets only each branch's first write)")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "ffp_width_s", check_range("ffp_width_s", float(self.ffp_width_s), 0.0, None, low_open=True,
                                              unit="s"))
        window = tuple(float(w) for w in self.window_ohm)
        if len(window) != 2 or not (0 < window[0] < window[1]):
            raise field_error("window_ohm", window, "two resistances 0 < low < high (ohm)")
        set_(self, "window_ohm", window)
        set_(self, "max_events", int(self.max_events))
        set_(self, "map_pulses", int(self.map_pulses))
        set_(self, "target_ohm", check_range("target_ohm", self.target_ohm, window[0], window[1], unit="ohm"))
        if self.map_range not in MAP_RANGES:
            raise MemdriftError(f"map_range = {self.map_range!r} is unknown; allowed: {', '.join(MAP_RANGES)}")
        set_(self, "levels", tuple(int(x) for x in np.atleast_1d(self.levels)))
        set_(self, "snapshot_events", tuple(int(e) for e in np.atleast_1d(self.snapshot_events)))
        if self.map_joule_heating is not None:
            set_(self, "map_joule_heating", check_range("map_joule_heating", self.map_joule_heating, 0.0, 1.0,
                                                        unit=""))
        set_(self, "policy", resolve_policy(self.policy))
        set_(self, "correction_exponent", check_range("correction_exponent", float(self.correction_exponent),
                                                      0.0, 1.0, unit=""))
        if self.correction_base not in CORRECTION_BASES:
            raise MemdriftError(f"correction_base = {self.correction_base!r} is unknown; allowed: "
                                f"{', '.join(CORRECTION_BASES)}")
        set_(self, "max_amplitude_v", check_range("max_amplitude_v", float(self.max_amplitude_v), 0.0, 50.0,
                                                  low_open=True, unit="V"))

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> FFPOptions:
        """The options named in ``options`` (taken out of it), the rest at their defaults."""
        return cls(**{f.name: options.pop(f.name) for f in fields(cls) if f.name in options})


def _check_amplitudes(amplitudes: Any) -> np.ndarray:
    amps = np.atleast_1d(np.asarray(amplitudes, dtype=np.float64))
    if amps.size == 0:
        raise MemdriftError("amplitudes_v is empty; allowed: at least one amplitude (V)")
    for i, a in enumerate(amps):
        check_range(f"amplitudes_v[{i}]", a, 0.0, 50.0, low_open=True, unit="V")
    return amps


def run_identical(dev: Bulk4TDevices, amplitudes_v=PAPER_AMPLITUDES_V, width_s: float = 2.0,
                  pulses: int = 100, *, hrs_ohm: float, lrs_ohm: float, init_amplitude_v: float = 6.0,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """For every amplitude: potentiation from HRS and depression from LRS, ``pulses`` pulses each."""
    amps = _check_amplitudes(amplitudes_v)
    check_range("width_s", width_s, 0.0, None, low_open=True, unit="s")
    pulses = int(pulses)
    if pulses < 1:
        raise field_error("pulses", pulses, ">= 1")
    runs = [(a, POTENTIATION) for a in amps] + [(a, DEPRESSION) for a in amps]
    shape = (dev.devices, len(runs), pulses)
    out = {k: np.full(shape, np.nan) for k in ("resistance", "temperature_peak", "temperature_mean", "energy")}
    out["pulse_flag"] = np.zeros(shape, dtype=np.uint8)
    initial = np.empty((dev.devices, len(runs)))
    iterator = _progress(runs, progress, "identical")
    for c, (a, branch) in enumerate(iterator):
        sign = 1.0 if branch == POTENTIATION else -1.0
        # HRS reached from below by -6 V before potentiation, LRS from above by +6 V before depression
        initial[:, c] = dev.approach(hrs_ohm if sign > 0 else lrs_ohm, -sign, init_amplitude_v,
                                     reset_ohm=lrs_ohm if sign > 0 else hrs_ohm)
        for k in range(pulses):
            rec = dev.write(sign * a, width_s)
            out["resistance"][:, c, k] = dev.read()
            out["temperature_peak"][:, c, k] = rec.temperature_peak
            out["temperature_mean"][:, c, k] = rec.temperature_mean
            out["energy"][:, c, k] = rec.energy
            out["pulse_flag"][:, c, k] = rec.flag
    out["resistance_initial"] = initial
    out["run_amplitude"] = np.array([a for a, _ in runs])
    out["run_branch"] = np.array([br for _, br in runs])
    return out


def build_dr_map(identical: dict[str, np.ndarray], *, ffp_width_s: float = 0.8, map_width_s: float = 2.0,
                 target_ohm: float = 0.2, bins: int = 40,
                 window_ohm: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """|dR| vs R per amplitude and branch, and the feedforward table Vw(r) aiming at ``target_ohm``.

    The map is measured with ``map_width_s`` pulses; a feedforward pulse of ``ffp_width_s`` is expected to
    change R by the mapped |dR| times ffp_width_s / map_width_s (the change per pulse is small, so it is
    proportional to the time under bias). ``window_ohm`` (LRS, HRS): the bins span only the window the
    FFP works in and only pulses starting inside it are counted (a film whose strong runs leave the window
    in a few pulses otherwise has most of its bins, and most of the window's, outside it or empty).
    """
    r_all = np.concatenate([identical["resistance_initial"][..., None], identical["resistance"]], axis=2)
    before, after = r_all[..., :-1], r_all[..., 1:]
    dr = np.abs(after - before) * (ffp_width_s / map_width_s)
    r_lo, r_hi = (np.nanmin(r_all), np.nanmax(r_all)) if window_ohm is None else map(float, window_ohm)
    edges = np.linspace(r_lo, r_hi, bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    amps = np.unique(identical["run_amplitude"])
    branches = (POTENTIATION, DEPRESSION)
    table = np.full((2, bins, amps.size), np.nan)
    for c, (a, br) in enumerate(zip(identical["run_amplitude"], identical["run_branch"])):
        bi, ai = branches.index(str(br)), int(np.searchsorted(amps, a))
        start = before[:, c].ravel()
        idx = np.clip(np.digitize(start, edges) - 1, 0, bins - 1)
        vals = dr[:, c].ravel()
        ok = np.isfinite(vals)
        if window_ohm is not None:
            ok &= (start >= r_lo) & (start <= r_hi)
        for k in range(bins):
            sel = ok & (idx == k)
            if np.any(sel):
                table[bi, k, ai] = vals[sel].mean()
    vw = np.full((2, bins), np.nan)
    for bi in range(2):
        for k in range(bins):
            vw[bi, k] = _voltage_for(amps, table[bi, k], target_ohm)
        # bins no run passed through take the nearest calibrated voltage along R
        good = np.isfinite(vw[bi])
        if np.any(good):
            vw[bi] = np.interp(centres, centres[good], vw[bi, good])
    return {"dr_map": table, "dr_map_resistance": centres, "dr_map_amplitude": amps, "vw_table": vw}


def _voltage_for(amps: np.ndarray, dr: np.ndarray, target: float) -> float:
    """Amplitude whose |dR| is ``target``: log-linear interpolation between mapped amplitudes."""
    ok = np.isfinite(dr) & (dr > 0)
    if not np.any(ok):
        return np.nan
    a, d = amps[ok], np.log(dr[ok])
    # |dR| grows with Vw; keep the monotone envelope so the inverse is defined
    d = np.maximum.accumulate(d)
    if np.log(target) <= d[0]:
        # below the lowest amplitude that reached this R: drift is linear in the field at small bias
        return float(a[0] * target / np.exp(d[0]))
    if np.log(target) >= d[-1]:
        return float(a[-1])
    return float(np.interp(np.log(target), d + np.arange(d.size) * 1e-12, a))


def run_ffp(dev: Bulk4TDevices, vw_table: np.ndarray, r_grid: np.ndarray, *, width_s: float = 0.8,
            max_events: int = 1500, hrs_ohm: float, lrs_ohm: float, init_amplitude_v: float = 6.0,
            progress: bool = False, branches: tuple[float, ...] = (+1.0, -1.0),
            initialise: bool = True, snapshot_events: tuple[int, ...] = (),
            policy: CompiledPolicy | None = None, correction_exponent: float = 0.0,
            target_ohm: float = 0.28, max_amplitude_v: float = 7.0,
            correction_base: str = "table", keep_states: bool = False) -> dict[str, np.ndarray]:
    """FFP HRS -> LRS (branch +1) then LRS -> HRS (-1); a device stops when it crosses the LRS / HRS end.

    ``policy``: a user write policy (:mod:`memdrift.emulator.policies`) in place of the table look-up.
    ``correction_exponent`` b > 0: each device scales the table's amplitude by its own factor, multiplied
    after each event by (``target_ohm`` / |dR|)^b (the ratio clipped to [1/2, 2]; an event that moved R
    the wrong way or not at all counts as 2), and never asks more than ``max_amplitude_v`` (a write held
    at the limit holds its factor there too); the factor starts at 1 on each branch. ``correction_base``
    "table" scales the table's amplitude at the present R, "last" the branch's first table amplitude (so
    each write is the last one corrected). The table is measured once, on pulse trains from the initialised state;
    where the film's response depends on its history the table alone stalls or overshoots, and this is
    the closed loop a tester adds on top of it.
    ``keep_states``: every potentiation branch's vacancy maps are kept, ``out["states"]`` a list over those
    branches of (devices, 1 + events, nx, ny): the state before the first event and after each, a device's
    last state past its end (the kernel stops and resumes after every event: the same events).
    """
    max_events = int(max_events)
    if max_events < 1:
        raise field_error("max_events", max_events, ">= 1")
    shape = (dev.devices, len(branches), max_events)
    out = {k: np.full(shape, np.nan) for k in ("resistance", "amplitude", "temperature_peak", "temperature_mean",
                                               "energy", "pulse_flag")}
    events = np.zeros((dev.devices, len(branches)), dtype=np.int64)
    if initialise:
        # the same full-swing initialisation as the map's runs, so the map describes the state FFP starts from
        r = dev.approach(hrs_ohm, -1.0, init_amplitude_v, reset_ohm=lrs_ohm)
    else:
        r = dev.read()
    r_low, r_high = lrs_ohm, hrs_ohm
    start = np.empty((dev.devices, len(branches)))
    snaps = sorted(int(e) for e in snapshot_events)
    vac = np.full((dev.devices, len(branches), len(snaps), *dev.n.shape[1:]), np.nan)
    temp = np.full_like(vac, np.nan)
    # the compiled engine runs the whole loop in its kernel; the Python loop below is the reference's (and
    # the one that can stop at snapshot events or call a user policy)
    correcting = correction_exponent > 0
    in_kernel = hasattr(dev.engine, "ffp") and not snaps and policy is None and not correcting
    kept: list[np.ndarray] = []
    for c, sign in enumerate(branches):
        start[:, c] = r
        factor = np.ones(dev.devices)
        first: np.ndarray | None = None
        states = [dev.n.copy()] if keep_states and sign > 0 else None
        if in_kernel:
            r, events[:, c] = _ffp_in_kernel(dev, vw_table[0 if sign > 0 else 1], r_grid, sign, width_s,
                                             r_low if sign > 0 else r_high, max_events, r, out, c, progress,
                                             states)
            if states is not None:
                kept.append(np.stack(states[: int(events[:, c].max()) + 1], axis=1))
            continue
        active = (r > r_low) if sign > 0 else (r < r_high)
        for e in _progress(range(max_events), progress, "ffp " + ("HRS->LRS" if sign > 0 else "LRS->HRS")):
            if not np.any(active):
                break
            table = vw_table[0 if sign > 0 else 1]
            if policy is None:
                v = sign * np.interp(r, r_grid, table)
            else:
                v = policy.amplitudes(r, sign, r_grid, table, active)
            if correcting:
                if correction_base == "last":
                    if first is None:
                        first = np.abs(v)
                    base = first
                else:
                    base = np.abs(v)
                v = sign * np.minimum(base * factor, max_amplitude_v)
                # a write held at the source limit holds its factor there, so the factor does not wind up
                factor = np.where(base > 0, np.abs(v) / np.where(base > 0, base, 1.0), factor)
            rec = dev.write(v, width_s, active)
            r_new = dev.read()
            if correcting:
                moved = (r - r_new) * sign
                ratio = np.where(moved > 0, target_ohm / np.maximum(moved, 1e-300), 2.0)
                factor = np.where(active, factor * np.clip(ratio, 0.5, 2.0) ** correction_exponent, factor)
            r = np.where(active, r_new, r)
            for key, val in (("resistance", r), ("amplitude", v), ("temperature_peak", rec.temperature_peak),
                             ("temperature_mean", rec.temperature_mean), ("energy", rec.energy),
                             ("pulse_flag", rec.flag)):
                out[key][:, c, e] = np.where(active, val, np.nan)
            events[:, c] += active
            if states is not None:
                states.append(dev.n.copy())
            if e in snaps:
                k = snaps.index(e)
                for i in np.flatnonzero(active):
                    vac[i, c, k] = dev.n[i]
                    _, temp[i, c, k] = b.field_maps(dev.params, dev.table[i], dev.n[i], [0.0, v[i], 0.0, v[i]])
            active = active & ((r > r_low) if sign > 0 else (r < r_high))
        if states is not None:
            kept.append(np.stack(states[: int(events[:, c].max()) + 1], axis=1))
    used = max(1, int(events.max()))
    out = {k: v[..., :used] for k, v in out.items()}
    out["events"] = events
    out["resistance_start"] = start
    out["snapshot_events"] = np.array(snaps, dtype=np.int64)
    out["vacancy_map"] = vac
    out["temperature_map"] = temp
    if keep_states:
        out["states"] = kept
    return out


def _ffp_in_kernel(dev: Bulk4TDevices, vw: np.ndarray, r_grid: np.ndarray, sign: float, width_s: float,
                   r_stop: float, max_events: int, r: np.ndarray, out: dict[str, np.ndarray], c: int,
                   progress: bool, states: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One FFP branch through ``CompiledEngine.ffp``; fills ``out[...][:, c]``, returns (r, events).
    ``states``: the vacancy maps after every event are appended (the kernel stops after each)."""
    width = check_range("width_s", width_s, 0.0, None, low_open=True, unit="s")
    r_now = np.array(r, dtype=np.float64)
    events = np.zeros(dev.devices, dtype=np.dtype("l"))
    record = np.full((dev.devices, max_events, 6), np.nan)
    chunk = 1 if states is not None else 50 if progress else max_events
    ends = range(chunk, max_events + chunk, chunk)
    for limit in _progress(ends, progress, "ffp " + ("HRS->LRS" if sign > 0 else "LRS->HRS")):
        limit = min(limit, max_events)
        dev.n = dev.engine.ffp(dev.n, r_grid, vw, sign, width, r_stop, limit, r_now, events, record,
                               deterministic=dev.deterministic)
        if states is not None:
            states.append(dev.n.copy())
        if np.all(events < limit):
            break
    for k, key in enumerate(("resistance", "amplitude", "temperature_peak", "temperature_mean", "energy",
                             "pulse_flag")):
        out[key][:, c] = record[:, :, k]
    return r_now, events.astype(np.int64)


def hold(dev: Bulk4TDevices, time_s: float, temperature_k: float) -> np.ndarray:
    """Zero bias for ``time_s`` at ``temperature_k``: the film's field-free hopping (drift-diffusion without a
    field), in as many bounded-step intervals as it takes; returns the relaxation steps each device took.

    A hold is not a pulse: where one interval runs out of the per-pulse step budget, the next one goes on
    from where it stopped, so any time is reached (at a cost that grows with it). Any other flag (a field
    solve that did not converge) ends the hold with an error.
    """
    check_range("time_s", time_s, 0.0, None, unit="s")
    check_range("temperature_k", temperature_k, 1.0, 2000.0, unit="K")
    remaining = np.full(dev.devices, float(time_s))
    steps = np.zeros(dev.devices, dtype=np.int64)
    zeros = np.zeros((dev.devices, 4))
    ambient = np.full(dev.devices, float(temperature_k))
    while np.any(remaining > 0):
        active = remaining > 0
        rec = dev.apply(zeros, np.where(active, remaining, 1.0), active, ambient_k=ambient)
        bad = rec.flag & ~np.uint8(flags.STEP_BUDGET)
        if np.any(bad[active]):
            d = int(np.flatnonzero(active & (bad > 0))[0])
            raise MemdriftError(f"a zero-bias hold of device {d} ended with flag {int(rec.flag[d])} at "
                                f"{float(time_s - remaining[d] + rec.elapsed_s[d]):g} s of {float(time_s):g} s")
        steps += np.where(active, rec.steps, 0)
        left = np.where(active, remaining - rec.elapsed_s, 0.0)
        # an interval that ended on its width leaves rounding dust, not time to hold
        remaining = np.where(left > 1e-12 * float(time_s), left, 0.0)
    return steps


def ffp_states(dev: Bulk4TDevices, vw_table: np.ndarray, r_grid: np.ndarray, stops_ohm: np.ndarray, *,
               width_s: float = 0.8, max_events: int = 1500,
               in_kernel: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One FFP potentiation branch from the present state, its vacancy map kept where it first reads at or
    below each of ``stops_ohm`` (decreasing): (states (devices, stops, nx, ny), R there, events there).

    The same events as an uninterrupted branch to the last stop (the compiled kernel is stopped and resumed;
    the reference, or ``in_kernel`` False, runs the Python loop of :func:`run_ffp`). A device that one event carries past several stops
    keeps that event's state for all of them; one still above a stop after ``max_events`` events keeps its
    last state there.
    """
    stops = np.asarray(stops_ohm, dtype=float)
    if stops.ndim != 1 or np.any(np.diff(stops) > 0):
        raise MemdriftError("stops_ohm is out of range; allowed: decreasing resistances (ohm)")
    max_events = int(max_events)
    if max_events < 1:
        raise field_error("max_events", max_events, ">= 1")
    width = check_range("width_s", width_s, 0.0, None, low_open=True, unit="s")
    vw = np.asarray(vw_table)[0]
    states = np.empty((dev.devices, stops.size, *dev.n.shape[1:]))
    r_at = np.empty((dev.devices, stops.size))
    events_at = np.empty((dev.devices, stops.size), dtype=np.int64)
    r = dev.read()
    events = np.zeros(dev.devices, dtype=np.dtype("l"))
    record = np.full((dev.devices, max_events, 6), np.nan)
    for k, stop in enumerate(stops):
        if in_kernel and hasattr(dev.engine, "ffp"):
            dev.n = dev.engine.ffp(dev.n, r_grid, vw, 1.0, width, float(stop), max_events, r, events, record,
                                   deterministic=dev.deterministic)
        else:
            active = (r > stop) & (events < max_events)
            while np.any(active):
                dev.write(np.interp(r, r_grid, vw), width, active)
                r = np.where(active, dev.read(), r)
                events += active
                active &= (r > stop) & (events < max_events)
        states[:, k], r_at[:, k], events_at[:, k] = dev.n, r, events
    return states, r_at, events_at


def run_retention(dev: Bulk4TDevices, temperatures_k=(300.0, 350.0, 400.0, 450.0), times_s=None, *,
                  hrs_ohm: float, lrs_ohm: float, init_amplitude_v: float = 6.0,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """From LRS, zero bias at each temperature; R read (at the ambient) at log-spaced times.

    Hot, long relaxations take many bounded steps (the step control follows the fastest cell): ``progress``
    shows one tick per relaxation interval. An interval that ran out of its step budget is flagged.
    """
    temps = np.atleast_1d(np.asarray(temperatures_k, dtype=float))
    for i, t in enumerate(temps):
        check_range(f"temperatures_k[{i}]", t, 1.0, 2000.0, unit="K")
    times = np.logspace(0, 5, 11) if times_s is None else np.atleast_1d(np.asarray(times_s, dtype=float))
    if np.any(np.diff(times) <= 0) or times[0] <= 0:
        raise MemdriftError("times_s is out of range; allowed: increasing positive times (s)")
    res = np.empty((dev.devices, temps.size, times.size))
    flag = np.zeros(res.shape, dtype=np.uint8)
    start = dev.n.copy()
    ticks = iter(_progress(range(temps.size * times.size), progress, "retention"))
    for i, t in enumerate(temps):
        dev.n = start.copy()
        dev.approach(lrs_ohm, +1.0, init_amplitude_v, reset_ohm=hrs_ohm)
        elapsed = 0.0
        for j, tj in enumerate(times):
            rec = dev.apply(np.zeros((dev.devices, 4)), tj - elapsed, ambient_k=np.full(dev.devices, t))
            flag[:, i, j] = rec.flag
            elapsed = tj
            res[:, i, j] = dev.read()
            next(ticks, None)
    return {"resistance": res, "temperature": temps, "time": times, "pulse_flag": flag}


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False)


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def _attrs(params: b.Bulk4TParams, preset: str, scheme: str, seed: int, extra: dict[str, Any]) -> dict[str, Any]:
    attrs = {"memdrift_version": __version__, "model": params.model, "preset": preset, "scheme": scheme,
             "seed": int(seed), "read": "0.1 V on T1, T2-T4 grounded, R = V1/|I3|",
             "write": "Vw on T2 and T4, T1 and T3 grounded"}
    attrs.update(netcdf_attrs(params.to_dict()["parameters"], "parameters."))
    attrs.update(netcdf_attrs(params.variation, "variation."))
    attrs.update(netcdf_attrs(extra, "scheme."))
    return attrs


def _resolve(preset: Any) -> tuple[b.Bulk4TParams, str, dict[str, Any]]:
    from memdrift.emulator.params import Preset, load_preset

    if isinstance(preset, b.Bulk4TParams):
        return preset, "custom", {}
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    if not isinstance(p.params, b.Bulk4TParams):
        raise MemdriftError(f"preset = {p.name!r} is a {p.model!r} device; allowed: a 'bulk4t' preset")
    return p.params, p.name, dict(p.calibration)


def simulate_scheme(preset: Any, scheme: str, *, devices: int = 1, seed: int = 0, threads: int = 1,
                    backend: str = "compiled", progress: bool = False, **options: Any) -> xr.Dataset:
    """Run a named scheme on a bulk four-terminal preset and return the labelled dataset.

    Options (all schemes): ``deterministic`` (expected hop counts, no noise), ``joule_heating`` (bool or
    multiplier), ``grid`` (int or (nx, ny)), ``init_amplitude_v`` (6 V), ``hrs_ohm`` / ``lrs_ohm`` (initialisation
    targets; default from the preset's calibration, else 880 / 740), ``conditioning_cycles`` (2 loops of +-6 V,
    100 s on the fresh film), ``init_first_pulse_s`` (the first pulse of each initialisation; default the
    preset's [calibration] ``init_first_pulse_s``, else 1 s), ``init_step_growth`` (the largest ratio of one
    initialisation pulse to the one before; default the preset's [calibration], else no limit).
    identical / dr-map: ``amplitudes_v``, ``width_s`` (2 s), ``pulses`` (100).
    ffp / ffp-segmentation: the fields of :class:`FFPOptions` (units, defaults and meanings there);
    ``map_joule_heating`` with ``joule_heating`` replays the table of the heated film on a film whose heating
    is changed; ``policy`` is a function or ``path/to/file.py:function`` (:mod:`memdrift.emulator.policies`).
    retention: ``temperatures_k``, ``times_s``.
    """
    params, name, calibration = _resolve(preset)
    if scheme not in SCHEMES:
        raise MemdriftError(f"scheme = {scheme!r} is unknown; allowed: {', '.join(SCHEMES)}")
    opts = dict(options)
    # checked (and a user policy compiled) before any device runs, so a refused option costs no simulation
    if scheme in ("ffp", "ffp-segmentation"):
        # a preset calibrated with a corrected table or a window map replays it the same way
        for key, option_name in (("map_range", "map_range"), ("ffp_correction_exponent", "correction_exponent"),
                                 ("ffp_correction_base", "correction_base")):
            if key in calibration:
                opts.setdefault(option_name, calibration[key])
    ffp = FFPOptions.pop_from(opts) if scheme in ("ffp", "ffp-segmentation") else None
    changes: dict[str, Any] = {}
    if "joule_heating" in opts:
        changes["joule_heating"] = float(opts.pop("joule_heating"))
    if "grid" in opts:
        g = opts.pop("grid")
        gx, gy = (g, g) if np.isscalar(g) else g
        changes.update(grid_x=float(gx), grid_y=float(gy))
    if changes:
        params = params.replace(**changes)
    deterministic = bool(opts.pop("deterministic", False))
    init = {"init_amplitude_v": float(opts.pop("init_amplitude_v", 6.0)),
            "hrs_ohm": float(opts.pop("hrs_ohm", calibration.get("hrs_ohm", 880.0))),
            "lrs_ohm": float(opts.pop("lrs_ohm", calibration.get("lrs_ohm", 740.0)))}
    check_range("init_amplitude_v", init["init_amplitude_v"], 0.0, 50.0, low_open=True, unit="V")
    check_range("lrs_ohm", init["lrs_ohm"], 0.0, None, low_open=True, unit="ohm")
    check_range("hrs_ohm", init["hrs_ohm"], init["lrs_ohm"], None, low_open=True, unit="ohm (> lrs_ohm)")
    conditioning = int(opts.pop("conditioning_cycles", 2))
    if conditioning < 0:
        raise field_error("conditioning_cycles", conditioning, ">= 0")
    first = check_range("init_first_pulse_s", float(opts.pop("init_first_pulse_s", calibration.get(
        "init_first_pulse_s", INIT_FIRST_PULSE_S))), 1e-3, 100.0, unit="s")
    growth = float(opts.pop("init_step_growth", calibration.get("init_step_growth", INIT_STEP_GROWTH)))
    if growth != math.inf:   # unbounded is allowed: the pulses are then sized from the rate alone
        check_range("init_step_growth", growth, 1.0, None, low_open=True, unit="")
    dev = Bulk4TDevices(params, devices, seed=seed, threads=threads, backend=backend, deterministic=deterministic)
    dev.init_first_pulse_s = first
    dev.init_step_growth = growth
    dev.condition(conditioning, init["init_amplitude_v"])
    attrs_extra: dict[str, Any] = {**init, "deterministic": deterministic, "backend": backend}
    if math.isfinite(growth):
        attrs_extra["init_step_growth"] = growth

    if scheme in ("identical", "dr-map"):
        kw = {k: opts.pop(k) for k in ("amplitudes_v", "width_s", "pulses") if k in opts}
        _no_leftovers(opts)
        res = run_identical(dev, progress=progress, **init, **kw)
        attrs_extra.update({k: v for k, v in kw.items() if k != "amplitudes_v"})
        ds = _identical_dataset(res, kw.get("width_s", 2.0))
        if scheme == "dr-map":
            m = build_dr_map(res)
            ds = ds.assign(_map_vars(m))
    elif ffp is not None:
        # calibration on the same devices (the paper maps each device before running FFP on it)
        map_dev = dev
        if ffp.map_joule_heating is not None:
            # a what-if: the table a lab measured on the real (heated) film, replayed on the film with the
            # heating changed; the same seed draws the same devices
            map_dev = Bulk4TDevices(params.replace(joule_heating=ffp.map_joule_heating), devices, seed=seed,
                                    threads=threads, backend=backend, deterministic=deterministic)
            map_dev.init_first_pulse_s = first
            map_dev.init_step_growth = growth
            map_dev.condition(conditioning, init["init_amplitude_v"])
            attrs_extra["map_joule_heating"] = ffp.map_joule_heating
        ident = run_identical(map_dev, ffp.map_amplitudes_v, 2.0, ffp.map_pulses, progress=progress, **init)
        m = build_dr_map(ident, ffp_width_s=ffp.ffp_width_s, map_width_s=2.0, target_ohm=ffp.target_ohm,
                         window_ohm=(init["lrs_ohm"], init["hrs_ohm"]) if ffp.map_range == "window" else None)
        _no_leftovers(opts)
        res = run_ffp(dev, m["vw_table"], m["dr_map_resistance"], width_s=ffp.ffp_width_s,
                      max_events=ffp.max_events, progress=progress, snapshot_events=ffp.snapshot_events,
                      policy=ffp.policy, correction_exponent=ffp.correction_exponent,
                      target_ohm=ffp.target_ohm, max_amplitude_v=ffp.max_amplitude_v,
                      correction_base=ffp.correction_base, **init)
        attrs_extra.update(ffp_width_s=ffp.ffp_width_s, window_low_ohm=ffp.window_ohm[0],
                           window_high_ohm=ffp.window_ohm[1], max_events=ffp.max_events, target_ohm=ffp.target_ohm)
        if ffp.correction_exponent > 0:
            attrs_extra.update(correction_exponent=ffp.correction_exponent, max_amplitude_v=ffp.max_amplitude_v,
                               correction_base=ffp.correction_base)
        if ffp.policy is not None:
            attrs_extra["policy"] = ffp.policy.name
        ds = _ffp_dataset(res, ffp.ffp_width_s, init["hrs_ohm"], init["lrs_ohm"]).assign(_map_vars(m))
        if scheme == "ffp-segmentation":
            ds = ds.assign(_segmentation_vars(res["resistance"], ffp.levels))
    else:
        kw = {k: opts.pop(k) for k in ("temperatures_k", "times_s") if k in opts}
        _no_leftovers(opts)
        res = run_retention(dev, **kw, **init, progress=progress)
        ds = xr.Dataset(
            {"resistance": (("device", "temperature", "time"), res["resistance"])},
            coords={"device": np.arange(dev.devices), "temperature": ("temperature", res["temperature"],
                                                                        {"units": "K"}),
                    "time": ("time", res["time"], {"units": "s"})})
        ds["resistance"].attrs.update(units="ohm", long_name="read resistance after zero-bias relaxation")
        ds = flags.attach(ds, res["pulse_flag"], ("device", "temperature", "time"))
    ds.attrs.update(_attrs(params, name, scheme, seed, attrs_extra))
    return annotate(ds)


def _no_leftovers(opts: dict[str, Any]) -> None:
    if opts:
        raise MemdriftError(f"option {sorted(opts)[0]!r} is unknown for this scheme")


def _identical_dataset(res: dict[str, np.ndarray], width: float) -> xr.Dataset:
    d, c, p = res["resistance"].shape
    dims = ("device", "cycle", "pulse")
    ds = xr.Dataset(
        {k: (dims, res[k]) for k in ("resistance", "temperature_peak", "temperature_mean", "energy")},
        coords={"device": np.arange(d), "cycle": np.arange(c), "pulse": np.arange(1, p + 1),
                BRANCH: ("cycle", res["run_branch"].astype(str))})
    sign = np.where(res["run_branch"] == POTENTIATION, 1.0, -1.0)
    ds["amplitude"] = (("cycle", "pulse"), np.repeat((sign * res["run_amplitude"])[:, None], p, axis=1))
    ds["width"] = ("pulse", np.full(p, float(width)))
    ds["resistance_initial"] = (("device", "cycle"), res["resistance_initial"],
                                {"units": "ohm", "long_name": "resistance after re-initialisation"})
    ds["temperature_mean"].attrs.update(units="K", long_name="time-averaged mean film temperature")
    return flags.attach(ds, res["pulse_flag"], dims)


def _ffp_dataset(res: dict[str, np.ndarray], width: float, hrs: float, lrs: float) -> xr.Dataset:
    d, c, p = res["resistance"].shape
    dims = ("device", "cycle", "pulse")
    ds = xr.Dataset(
        {k: (dims, res[k]) for k in ("resistance", "amplitude", "temperature_peak", "temperature_mean", "energy")},
        coords={"device": np.arange(d), "cycle": np.arange(c), "pulse": np.arange(1, p + 1),
                BRANCH: ("cycle", np.array([POTENTIATION, DEPRESSION]))})
    ds["width"] = ("pulse", np.full(p, float(width)))
    ds["events"] = (("device", "cycle"), res["events"], {"units": "1", "long_name": "FFP events in the branch"})
    ds["resistance_start"] = (("device", "cycle"), res["resistance_start"], {"units": "ohm"})
    ds.attrs.update(hrs_ohm=float(hrs), lrs_ohm=float(lrs))
    if res["snapshot_events"].size:
        ds = ds.assign_coords(snapshot=("snapshot", res["snapshot_events"] + 1))
        sdims = ("device", "cycle", "snapshot", "x", "y")
        ds["vacancy_map"] = (sdims, res["vacancy_map"], {"units": "1", "long_name": "vacancies per cell after the event"})
        ds["temperature_map"] = (sdims, res["temperature_map"],
                                 {"units": "K", "long_name": "cell temperature during the event's write pulse"})
    ds["temperature_mean"].attrs.update(units="K", long_name="time-averaged mean film temperature")
    # events a device did not take carry no flag
    return flags.attach(ds, np.nan_to_num(res["pulse_flag"], nan=0.0).astype(np.uint8), dims)


def _map_vars(m: dict[str, np.ndarray]) -> dict[str, Any]:
    coords = {"map_branch": [POTENTIATION, DEPRESSION], "map_resistance": m["dr_map_resistance"],
              "map_amplitude": m["dr_map_amplitude"]}
    return {
        "dr_map": xr.DataArray(m["dr_map"], dims=("map_branch", "map_resistance", "map_amplitude"), coords=coords,
                               attrs={"units": "ohm", "long_name": "|dR| per feedforward-width pulse vs R"}),
        "vw_table": xr.DataArray(m["vw_table"], dims=("map_branch", "map_resistance"),
                                 coords={k: coords[k] for k in ("map_branch", "map_resistance")},
                                 attrs={"units": "V", "long_name": "feedforward write amplitude Vw(r)"}),
    }


def _segmentation_vars(resistance: np.ndarray, levels: tuple[int, ...]) -> dict[str, Any]:
    """Segmented levels, offsets and skips per level count; the devices' traces of a branch share targets."""
    out: dict[str, Any] = {}
    d = resistance.shape[0]
    for n in levels:
        skipped = np.zeros(2, dtype=np.int64)
        where = np.zeros((2, n), dtype=np.int8)
        reached = np.full((d, 2, n), np.nan)
        offsets = np.full((d, 2, n), np.nan)
        for c in range(2):
            for i, seg in enumerate(segment_processes(resistance[:, c], n)):
                if seg is not None:
                    reached[i, c], offsets[i, c] = seg.actual, seg.offset
            mask = skipped_mask(offsets[:, c])
            where[c] = mask
            skipped[c] = int(mask.sum())
        dims = ("device", "cycle", f"level_n{n}")
        out[f"levels_n{n}"] = xr.DataArray(reached, dims=dims,
                                           attrs={"units": "ohm", "long_name": f"segmented levels, n = {n}"})
        out[f"level_offset_n{n}"] = xr.DataArray(
            offsets, dims=dims, attrs={"units": "1", "long_name": f"reached minus target level in level spacings "
                                                                  f"(|x| > 0.5: level skipped), n = {n}"})
        out[f"skipped_level_n{n}"] = xr.DataArray(
            where, dims=("cycle", f"level_n{n}"),
            attrs={"units": "1", "long_name": f"level prone to be skipped at CPD 80 % (1) or not (0), n = {n}; "
                                              "levels in the order the branch passes them"})
        out[f"skipped_n{n}"] = xr.DataArray(skipped, dims=("cycle",),
                                            attrs={"units": "1", "long_name": f"levels skipped at CPD 80 %, n = {n}"})
    return out
