"""Calibration: fit a model's physics parameters to measured curves (``memdrift calibrate``).

Filament (``model="filament"``), from a measured pulse-cycling dataset
(conductance over device, cycle, pulse with the pulse table ``amplitude``,
``width``):

1. **Mean curves** — the free parameters other than ``site_population`` are
   fitted with :func:`scipy.optimize.least_squares` (trust-region reflective,
   bounds) so that the nominal device with expected hop counts (noise off, no
   device-to-device variation) reproduces the ensemble-mean conductance of
   the first ``fit_cycles`` measured cycles, read after every pulse. Residuals
   are relative to the mean measured conductance; every free parameter is
   positive and fitted as ``log(p / p_start)`` within ``[p_start / span,
   p_start · span]`` clipped to the field's allowed range.
2. **Spread** — with ``site_population`` free, it is set so that the emulated
   cycle-to-cycle σ (sample σ over cycles after the first, per device and
   pulse, averaged) equals the measured one. Hop counts are Poisson, so σ ∝
   M^(−1/2) and the update ``M ← M (σ_model/σ_measured)²`` converges in a few
   steps; a least-squares fit on a noisy objective would not (a changed M
   changes every Poisson draw).

Device-to-device spread (``variation``) is kept from the starting preset.

Bulk four-terminal (``model="bulk4t"``): only the two resistance levels are
fitted — the read R13 after the conditioning loops of ±6 V, 100 s (HRS after
−6 V, LRS after a further +6 V), deterministic, against the measured HRS and
LRS (each trace's largest and smallest read, averaged over the traces).
Two levels constrain two parameters (default the two conductivities); the
switching dynamics (FFP event counts, ν) are not fitted — the model is too
slow for that inside a least-squares loop.

The fit (and everything needed to judge it) goes into the preset's
``[calibration]`` table, with the standard error of every parameter fitted by
least squares (:func:`standard_errors`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import least_squares

from memdrift.errors import MemdriftError, NamedError, check_range, literal

from memdrift.models import MODELS as _REGISTRY
from memdrift.models import get as get_model

# Step control and bookkeeping fields: not physics, never fitted.
NOT_FITTABLE = {"max_gap_step_m", "integration_tolerance", "max_substeps", "max_outflow_fraction",
                "sigma_tolerance", "max_steps_per_pulse",
                "grid_x", "grid_y", "ambient_temperature_k", "charge_number", "joule_heating",
                "thermal_ceiling_k", "scharfetter_gummel", "thermal_step_error_fraction"}
SPREAD_PARAMETER = "site_population"
# Read settings of the paper ramp; used when the measured file does not record them.
DEFAULT_READ = {"read_voltage_v": -0.1, "read_width_s": 30e-6, "read_gap_s": 20e-6}


@dataclass
class CalibrationResult:
    """Fitted parameters and the record for the preset's ``[calibration]`` table."""

    params: Any
    record: dict[str, Any]
    start: Any = None
    fitted: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def fittable(params: Any) -> list[str]:
    """Fields of ``params`` that may be freed: positive physics quantities."""
    out = []
    for f in fields(params):
        if f.name == "variation" or f.name in NOT_FITTABLE:
            continue
        lo = f.metadata.get("low")
        if lo is not None and lo >= 0 and getattr(params, f.name) > 0:
            out.append(f.name)
    return out


def parse_free(text: str | Sequence[str] | None, params: Any, model: str) -> tuple[str, ...]:
    names = get_model(model).calibration_free if text is None else (
        [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text))
    names = [n for n in names if n]
    allowed = fittable(params)
    if not names:
        raise MemdriftError(f"free is empty; allowed: a comma-separated subset of {', '.join(allowed)}")
    for n in names:
        if n not in allowed:
            raise MemdriftError(f"free = {n!r} is not a fittable {model} parameter; allowed: {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise MemdriftError(f"free = {','.join(names)!r} names a parameter twice; allowed: each once")
    return tuple(names)


def _bounds(params: Any, names: Sequence[str], span: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on log(p / p_start): [p_start / span, p_start · span] within the field's allowed range."""
    meta = {f.name: f.metadata for f in fields(params)}
    lo, hi = [], []
    for n in names:
        p0 = float(getattr(params, n))
        # log space keeps p > 0 by itself, so an open lower bound at 0 needs nothing more
        low = max(p0 / span, meta[n]["low"] or 0.0)
        high = p0 * span if meta[n]["high"] is None else min(p0 * span, meta[n]["high"])
        lo.append(math.log(low / p0))
        hi.append(math.log(high / p0))
    return np.array(lo), np.array(hi)


def _with(params: Any, names: Sequence[str], x: np.ndarray, start: dict[str, float]) -> Any:
    return params.replace(**{n: float(start[n] * math.exp(v)) for n, v in zip(names, x)})


def _values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=np.float64)


# --------------------------------------------------------------------------- measured targets


def _conductance(ds: xr.Dataset) -> xr.DataArray:
    if "conductance" in ds and "pulse" in ds["conductance"].dims:
        return ds["conductance"].transpose("device", "cycle", "pulse")
    if "resistance" in ds and "pulse" in ds["resistance"].dims:
        return (1.0 / ds["resistance"]).transpose("device", "cycle", "pulse")
    raise MemdriftError("measured data have no 'conductance' (S) or 'resistance' (ohm) over (device, cycle, pulse); "
                        "allowed: the contract layout (memdrift/mapping/README.md)")


def _train(ds: xr.Dataset, read: dict[str, float]):
    from memdrift.emulator.pulses import PulseTrain

    for name, unit in (("amplitude", "V"), ("width", "s")):
        if name not in ds or ds[name].dims != ("pulse",):
            raise MemdriftError(f"{name}: the measured data have no per-pulse {name} ({unit}); allowed: a CSV "
                                f"'{name}' column or a netCDF '{name}' variable over pulse")
        bad = np.flatnonzero(~np.isfinite(_values(ds[name])))
        if bad.size:
            raise MemdriftError(f"{name}[{bad[0]}] is missing; allowed: a finite {name} ({unit}) for every pulse")
    branch = tuple(str(b) for b in np.asarray(ds["branch"].values)) if "branch" in ds.coords else ()
    return PulseTrain(_values(ds["amplitude"]), _values(ds["width"]), read["read_voltage_v"], read["read_width_s"],
                      read["read_gap_s"], branch, name="measured")


def _read_settings(ds: xr.Dataset, given: dict[str, float | None] | None) -> dict[str, float]:
    out = dict(DEFAULT_READ)
    for key in out:
        attr = f"scheme.{key}"
        if attr in ds.attrs:
            out[key] = float(ds.attrs[attr])
        value = given.get(key) if given else None
        if value is not None:
            out[key] = float(value)
    return out


def cycle_sigma(g: np.ndarray) -> float:
    """Mean cycle-to-cycle σ (S): sample σ over cycles 1.. per (device, pulse), averaged."""
    later = g[:, 1:, :]
    with np.errstate(invalid="ignore"):
        return float(np.nanmean(np.nanstd(later, axis=1, ddof=1)))


# --------------------------------------------------------------------------- filament


def calibrate_filament(ds: xr.Dataset, start: Any, free: Sequence[str], *, fit_cycles: int = 3, span: float = 10.0,
                       read: dict[str, float | None] | None = None, ensemble_devices: int = 64,
                       ensemble_seed: int = 12345, rounds: int = 3, max_nfev: int = 200,
                       progress: bool = False) -> CalibrationResult:
    """Fit ``free`` parameters of ``start`` (FilamentParams) to ``ds``; see the module docstring.

    ``rounds`` > 1 alternates the mean-curve fit with a noise correction: the
    difference between the noisy ensemble mean (``ensemble_devices`` devices,
    the start's variation, fixed seed) and the nominal noise-free curve at the
    current parameters is added to the nominal model in the next least-squares
    pass. Hop noise and device spread bias the mean of a nonlinear device, and
    without the correction that bias leaks into the parameters (≈10 % on
    field_enhancement for the shipped preset).
    """
    from memdrift.emulator.engine import run_pulses

    g = _conductance(ds)
    train = _train(ds, _read_settings(ds, read))
    n_cyc = g.sizes["cycle"]
    k = int(min(max(1, fit_cycles), n_cyc))
    target = _values(g.isel(cycle=slice(0, k)).mean("device", skipna=True))  # (cycle, pulse)
    mask = np.isfinite(target)
    if not mask.any():
        raise MemdriftError("conductance has no finite read in the fitted cycles; allowed: reads in (0, inf) S")
    if SPREAD_PARAMETER in free and n_cyc < 3:
        raise NamedError(f"{{free}} = {literal(SPREAD_PARAMETER)} needs the cycle-to-cycle spread: the data have "
                         f"{n_cyc} cycle(s); allowed: at least 3 cycles, or leave {SPREAD_PARAMETER} out of {{free}}")
    if int(rounds) < 1:
        raise MemdriftError(f"rounds = {rounds!r} is out of range; allowed: an integer >= 1")
    scale = float(np.mean(target[mask]))
    curve_free = [n for n in free if n != SPREAD_PARAMETER]
    x_start = {n: float(getattr(start, n)) for n in free}
    lo, hi = _bounds(start, curve_free, span) if curve_free else (np.zeros(0), np.zeros(0))
    bar = _bar(progress, "calibrate")

    def nominal_curve(p: Any) -> np.ndarray:
        bar.update(1)
        return run_pulses(p.replace(variation={}), train, devices=1, cycles=k, noise=False)["conductance"].values[0]

    def ensemble(p: Any, cycles: int) -> np.ndarray:
        bar.update(1)
        return run_pulses(p, train, devices=int(ensemble_devices), cycles=cycles, seed=int(ensemble_seed),
                          noise=True)["conductance"].values

    record: dict[str, Any] = {"fit_cycles": k, "targets": int(mask.sum()), "residual_scale_s": scale,
                              "rounds": int(rounds)}
    params = start
    x = np.zeros(len(curve_free))
    correction = np.zeros_like(target)
    measured_sigma = cycle_sigma(_values(g)) if SPREAD_PARAMETER in free else None
    if measured_sigma is not None and not (math.isfinite(measured_sigma) and measured_sigma > 0):
        # the site population is fitted to the spread; a file without one (e.g. a constant
        # conductance) has nothing for it to match
        raise NamedError(f"the measured conductance has no cycle-to-cycle spread (sigma = {measured_sigma!r} S); "
                         f"allowed: data whose cycles differ, or {{free}} without {SPREAD_PARAMETER}")
    fit = None
    for rnd in range(int(rounds)):
        if curve_free:
            def residuals(x: np.ndarray) -> np.ndarray:
                model = nominal_curve(_with(params, curve_free, x, x_start)) + correction
                return ((model - target) / scale)[mask]

            if rnd == 0:
                record["mean_curve_rms_relative_start"] = float(np.sqrt(np.mean(residuals(x) ** 2)))
            # log-space steps of 1e-3 (0.1 % in the parameter) sit above the kernel's step-control granularity
            fit = least_squares(residuals, x, bounds=(lo, hi), method="trf", diff_step=1e-3, max_nfev=max_nfev)
            x = fit.x
            params = _with(params, curve_free, x, x_start)
        if measured_sigma is not None:
            params, spread = _fit_site_population(params, measured_sigma, lambda p: ensemble(p, min(n_cyc, 10)),
                                                  span)
            record.update(spread)
        if rnd + 1 < int(rounds):
            correction = ensemble(params, k).mean(axis=0) - nominal_curve(params)
    bar.close()
    if fit is not None:
        record.update(mean_curve_rms_relative=float(np.sqrt(np.mean(fit.fun ** 2))),
                      mean_curve_max_relative=float(np.max(np.abs(fit.fun))),
                      noise_correction_rms_relative=float(np.sqrt(np.mean((correction[mask] / scale) ** 2))),
                      optimizer_status=int(fit.status), optimizer_message=str(fit.message),
                      function_evaluations=int(fit.nfev),
                      at_bound=[n for n, v, a, b in zip(curve_free, x, lo, hi) if np.isclose(v, a) or np.isclose(v, b)])
    fitted = {n: float(getattr(params, n)) for n in free}
    record.update(start={n: x_start[n] for n in free}, fitted=fitted)
    if fit is not None:
        record.update(standard_errors(fit, curve_free, fitted, record["at_bound"]))
    if measured_sigma is not None:
        record["site_population_uncertainty"] = ("set by matching the cycle-to-cycle σ (secant), not by least "
                                                 "squares: its error is the sampling error of the measured σ")
    return CalibrationResult(params=params, record=record, start=start, fitted=fitted)


def _fit_site_population(params: Any, measured_sigma: float, run, span: float) -> tuple[Any, dict[str, Any]]:
    """``site_population`` whose emulated cycle-to-cycle σ equals ``measured_sigma``.

    Secant steps on log σ against log M, the first with the Poisson slope −1/2
    (the emulated slope is nearer −0.65 because σ also holds level-dependent
    dynamics); the emulated σ is a sample estimate, so the best evaluated M wins.
    """
    log_m = math.log(float(params.site_population))
    target = math.log(measured_sigma)
    history: list[tuple[float, float]] = []
    slope = -0.5
    for _ in range(6):
        log_s = math.log(cycle_sigma(run(params.replace(site_population=math.exp(log_m)))))
        history.append((log_m, log_s))
        if abs(log_s - target) < 0.01:
            break
        if len(history) >= 2 and history[-1][0] != history[-2][0]:
            slope = float(np.clip((history[-1][1] - history[-2][1]) / (history[-1][0] - history[-2][0]), -2.0, -0.1))
        step = float(np.clip((target - log_s) / slope, -math.log(span), math.log(span)))
        log_m = float(np.clip(log_m + step, 0.0, math.log(1e12)))
    log_m, log_s = min(history, key=lambda h: abs(h[1] - target))
    sigma = math.exp(log_s)
    return params.replace(site_population=math.exp(log_m)), {
        "spread_sigma_measured_s": measured_sigma, "spread_sigma_model_s": sigma,
        "spread_relative_residual": sigma / measured_sigma - 1.0, "spread_iterations": len(history)}


# --------------------------------------------------------------------------- bulk four-terminal


def bulk4t_levels(params: Any, *, conditioning_cycles: int = 2, amplitude_v: float = 6.0,
                  width_s: float = 100.0) -> tuple[float, float]:
    """(HRS, LRS) in ohm of the nominal film after the ±6 V conditioning (deterministic hops)."""
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices

    dev = Bulk4TDevices(params.replace(variation={}), 1, deterministic=True)
    dev.condition(conditioning_cycles, amplitude_v, width_s)
    hrs = float(dev.read()[0])
    dev.write(+abs(amplitude_v), width_s)
    return hrs, float(dev.read()[0])


def calibrate_bulk4t(ds: xr.Dataset, start: Any, free: Sequence[str], *, span: float = 10.0, max_nfev: int = 100,
                     progress: bool = False) -> CalibrationResult:
    r = 1.0 / _values(_conductance(ds))  # (device, cycle, pulse), NaN where not measured
    # Each trace's extremes, averaged over traces: averaging the traces first would mix an
    # HRS→LRS branch with an LRS→HRS one into a flat middle.
    usable = np.sum(np.isfinite(r), axis=2) >= 2
    if not usable.any():
        raise MemdriftError("resistance has no trace with 2 or more finite reads; allowed: a trace from HRS to LRS")
    with np.errstate(all="ignore"):
        target = np.array([np.nanmax(r, axis=2)[usable].mean(), np.nanmin(r, axis=2)[usable].mean()])
    if not target[0] > target[1]:
        raise MemdriftError("resistance does not change; allowed: a trace with distinct HRS and LRS")
    x_start = {n: float(getattr(start, n)) for n in free}
    nominal = start.replace(variation={})
    bar = _bar(progress, "calibrate (HRS/LRS)")

    def residuals(x: np.ndarray) -> np.ndarray:
        bar.update(1)
        return np.array(bulk4t_levels(_with(nominal, free, x, x_start))) / target - 1.0

    lo, hi = _bounds(start, free, span)
    r0 = residuals(np.zeros(len(free)))
    fit = least_squares(residuals, np.zeros(len(free)), bounds=(lo, hi), method="trf", diff_step=1e-3,
                        max_nfev=max_nfev)
    bar.close()
    params = _with(start, free, fit.x, x_start)
    fitted = {n: float(getattr(params, n)) for n in free}
    hrs, lrs = bulk4t_levels(params)
    record = {"targets_ohm": {"hrs": float(target[0]), "lrs": float(target[1])},
              "model_ohm": {"hrs": hrs, "lrs": lrs},
              "levels_rms_relative_start": float(np.sqrt(np.mean(r0 ** 2))),
              "levels_rms_relative": float(np.sqrt(np.mean(fit.fun ** 2))),
              "optimizer_status": int(fit.status), "optimizer_message": str(fit.message),
              "function_evaluations": int(fit.nfev),
              # the bulk schemes initialise to these (the measured levels)
              "hrs_ohm": float(target[0]), "lrs_ohm": float(target[1]),
              "fits": "HRS/LRS after the +-6 V, 100 s conditioning only; switching dynamics not fitted",
              "start": x_start, "fitted": fitted}
    record.update(standard_errors(fit, free, fitted, [n for n, v, a, b in zip(free, fit.x, lo, hi)
                                                      if np.isclose(v, a) or np.isclose(v, b)]))
    return CalibrationResult(params=params, record=record, start=start, fitted=fitted)


# --------------------------------------------------------------------------- uncertainty


def standard_errors(fit: Any, names: Sequence[str], fitted: dict[str, float],
                    at_bound: Sequence[str] = ()) -> dict[str, Any]:
    """Standard errors of a :func:`scipy.optimize.least_squares` fit in ``x = log(p / p_start)``.

    The covariance of x is ``s² (JᵀJ)⁻¹`` with ``s² = Σ r² / (m − n)`` (m residuals, n
    parameters): the estimate :func:`scipy.optimize.curve_fit` reports with
    ``absolute_sigma=False``. Since ``p = p_start eˣ``, the relative standard error of p
    is σ_x (to first order). It assumes independent residuals; reads of one cycle are
    correlated, so read it as a lower bound. Null, with the reason, where it is not
    defined: no more residuals than parameters, a singular JᵀJ (parameters the data
    cannot tell apart), or a parameter at its bound.
    """
    names = list(names)
    m, n = int(np.size(fit.fun)), len(names)
    out: dict[str, Any] = {"uncertainty_method": "s^2 (J^T J)^-1 of least_squares in log(p/p_start), "
                                                 "s^2 = sum(r^2)/(m - n); assumes independent residuals"}
    none = {k: None for k in names}
    if m <= n:
        return dict(out, standard_error=none, relative_standard_error=none,
                    uncertainty_note=f"{m} residuals for {n} parameters: no degree of freedom, no uncertainty")
    jac = np.asarray(fit.jac, dtype=np.float64)
    jtj = jac.T @ jac
    cond = float(np.linalg.cond(jtj)) if n else 1.0
    if not np.isfinite(cond) or cond > 1e12:
        return dict(out, standard_error=none, relative_standard_error=none,
                    uncertainty_note=f"J^T J is singular (condition number {cond:.3g}): the data do not "
                                     "separate the free parameters")
    s2 = float(np.sum(np.asarray(fit.fun) ** 2)) / (m - n)
    rel = np.sqrt(np.clip(np.diag(np.linalg.inv(jtj)) * s2, 0.0, None))
    relative = {k: (None if k in at_bound else float(v)) for k, v in zip(names, rel)}
    result = dict(out, relative_standard_error=relative,
                  standard_error={k: (None if relative[k] is None else relative[k] * abs(fitted[k])) for k in names})
    if at_bound:
        result["uncertainty_note"] = f"{', '.join(at_bound)} at a bound: no standard error"
    return result


# --------------------------------------------------------------------------- entry point


def calibrate(data: str | os.PathLike[str] | xr.Dataset, model: str, *, free: str | Sequence[str] | None = None,
              start_preset: str | None = None, fit_cycles: int = 3, span: float = 10.0,
              read: dict[str, float | None] | None = None, name: str | None = None, rounds: int = 3,
              progress: bool = False):
    """Fit ``model`` to measured data (a path read by :func:`~memdrift.mapping.measured.read_measured`, or a
    dataset); returns the calibrated :class:`~memdrift.emulator.params.Preset` and the fit result."""
    from memdrift.emulator.params import Preset, load_preset
    from memdrift.mapping.measured import normalise_dataset, read_measured

    if model not in _REGISTRY.calibratable():
        raise MemdriftError(f"model = {model!r} is unknown; allowed: {', '.join(_REGISTRY.calibratable())}")
    check_range("span", span, 1.0, 1e6, low_open=True)
    source = "dataset"
    if isinstance(data, xr.Dataset):
        ds = normalise_dataset(data)
    else:
        source = Path(data).name
        ds = read_measured(data)
    if "pulse" not in ds[("conductance" if "conductance" in ds else "resistance")].dims:
        raise MemdriftError("measured data have no 'pulse' dimension; allowed: reads after programming pulses "
                            "over (device, cycle, pulse) (retention data cannot calibrate the programming physics)")
    # the start only seeds the fit; what the fit returns is held to the envelope below
    start = load_preset(start_preset or get_model(model).calibration_start, envelope=False)
    if start.model != model:
        raise MemdriftError(f"start-preset = {start.name!r} is a {start.model!r} preset; allowed: a {model!r} preset")
    names = parse_free(free, start.params, model)
    result, method = get_model(model).calibrate(ds, start, names, fit_cycles=fit_cycles, span=span, read=read,
                                                rounds=rounds, progress=progress)
    calibration = {"method": method, "data_file": source, "model": model, "start_preset": start.name,
                   "free": list(names), "span": float(span), **result.record}
    outside = result.params.physical_violations()
    if outside:
        # a data fit keeps the start's fixed parameters: an unphysical start gives an unphysical fit, which
        # is written (the data are the user's) but loads only with a warning naming why
        calibration["envelope_exception"] = (f"fitted to {source} from start preset {start.name!r} with "
                                             f"{', '.join(names)} free; outside the physical envelope: {outside[0]}")
    preset = Preset(name=name or f"{start.name}-calibrated", params=result.params,
                    description=f"{start.description} — calibrated to {source}".strip(" —"),
                    scheme=start.scheme, calibration=_toml_safe(calibration))
    return preset, result


def _toml_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_toml_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    return obj if isinstance(obj, str) else str(obj)


def _bar(enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=None, unit="run", desc=desc, disable=not enabled, leave=False)


__all__ = ["CalibrationResult", "calibrate", "calibrate_bulk4t", "calibrate_filament",
           "bulk4t_levels", "cycle_sigma", "fittable", "parse_free"]
