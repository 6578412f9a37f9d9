"""The extraction record (DESIGN.md, "Extraction record (DEVICE.json)") from a dataset.

:func:`extract_record` applies the paper definitions of
:mod:`memdrift.mapping.metrics` to a dataset in the contract layout
(``conductance`` over (device, cycle, pulse) with a ``branch`` coordinate, or
``resistance``, read as 1/R) and returns one :class:`memdrift.mapping.record.DeviceRecord`
(its fields carry their units; it reads as a mapping of these keys), all SI:

========================  ====================================================
key                       meaning
========================  ====================================================
states                    states in the linear range, fewer of the two branches
bin_width                 S, mean of the two branches' bin widths
state_sigma               S, mean cycle-to-cycle σ over every state of both branches
differential_bins         reliable G+ − G− bins (BW > 2σ), fewer of the two branches
linear_r2                 {potentiation, depression}: R² of the linear-range fit
linear_fit                per branch: slope (S/pulse), intercept (S), their standard errors, R², range
symmetry                  |slope_d| / |slope_p|
nu                        {"<n>": {p, d, p_std, d_std, p_processes, d_processes, p_end_matched,
                          d_end_matched}} eqns 2-3, paper indexing (``metrics.fit_nonlinearity``);
                          ``*_end_matched``: the curvature alone
pearson                   mean cycle-to-cycle Pearson (eqn 1), both branches
program_error_t           {"<n>": {conductance, loc, scale, df, branch}} per level, S
skipped_levels            {"<n>": {potentiation, depression}} at CPD 80 %
drift                     {nu, nu_stderr (fit), nu_std (device spread), nu_r2, activation_energy_eV,
                          activation_energy_eV_stderr, reference_temperature_K}
energy_per_pulse          J; energy_per_cycle {mean, std} J
g_min, g_max              S, extremes of the ensemble-mean cycle
branches                  per-branch details (states, σ, means, bins, ...)
delta_g                   per branch ΔG-vs-G nodes {conductance, mean, std, count}
pulse_width, read_time    s, mean programming pulse width and read duration
device_to_device          relative spread of slopes and of g_min/g_max
pulse_table               amplitude (V), width (s), branch per pulse
notes                     why any field is null; for several datasets, which file gave what
sources                   several datasets: per file its name, what it provided and its attributes
========================  ====================================================

:func:`extract_datasets` builds one record from several datasets of one device
(programming metrics from a cycling file, drift from a retention file; see
:func:`merge_records`) and refuses datasets of different devices.

Quantities that the dataset cannot give (drift without retention data, σ with a
single cycle, …) are ``None`` and the reason is in ``notes``; nothing is
invented. Levels are segmented in resistance as the TiO2 paper does, and the
program error of a level is reported in conductance (G reached − G aimed at, S),
the quantity aihwkit programs; the worse branch is the record's table (the
paper's "worst case"), both are in ``program_error_t_branch``.

The reductions over the ensemble go through xarray, so dask-backed inputs stay
lazy until the small per-pulse results are needed; the per-trace fits (ν,
segmentation) use at most ``max_processes`` evenly spaced (device, cycle)
programming processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from memdrift.errors import MemdriftError, NamedError, literal
from memdrift.models import LAYOUT_PULSE, LAYOUT_WRITE_VERIFY, layout_of
from memdrift.mapping import metrics
from memdrift.mapping.measured import DEPRESSION, POTENTIATION, RETENTION, normalise_dataset
from memdrift.mapping.record import (  # noqa: F401  (load_record, save_record: the record's I/O, here too)
    REQUIRED_KEYS, SCHEMA, DeviceRecord, load_record, save_record,
)
from memdrift.mapping.record import finite_float as _float
from memdrift.mapping.record import jsonable as _jsonable

BRANCHES = (POTENTIATION, DEPRESSION)
SHORT = {POTENTIATION: "p", DEPRESSION: "d"}


UNITS = {"bin_width": "S", "state_sigma": "S", "g_min": "S", "g_max": "S", "slope": "S/pulse",
         "intercept": "S", "energy_per_pulse": "J", "energy_per_cycle": "J", "program_error_t": "S",
         "delta_g.conductance": "S", "delta_g.mean": "S", "delta_g.std": "S", "pulse_width": "s", "read_time": "s",
         "drift.rate": "1/s", "drift.temperature": "K", "drift.activation_energy_eV": "eV"}


def _values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values if not hasattr(da.data, "compute") else da.compute().values, dtype=np.float64)


def _conductance(ds: xr.Dataset, notes: list[str]) -> xr.DataArray | None:
    if "conductance" in ds and "pulse" in ds["conductance"].dims:
        g = ds["conductance"]
    elif "resistance" in ds and "pulse" in ds["resistance"].dims:
        g = 1.0 / ds["resistance"]
        notes.append("conductance computed as 1/resistance")
    else:
        return None
    g = g.transpose("device", "cycle", "pulse")
    lo = _float(g.min(skipna=True).compute() if hasattr(g.data, "compute") else g.min(skipna=True))
    if lo is None:
        raise MemdriftError("conductance has no finite value; allowed: reads in (0, inf) S")
    if lo <= 0:
        raise MemdriftError(f"conductance has a value {lo!r} <= 0; allowed: (0, inf) S")
    return g.astype(np.float64)


# --------------------------------------------------------------------------- branch metrics


def _branch_linear(g: xr.DataArray, idx: np.ndarray, branch: str, mean_curve: np.ndarray, notes: list[str],
                   r2_min: float, step_ratio: float) -> dict[str, Any]:
    out: dict[str, Any] = {"pulses": int(idx.size)}
    # Variable-length traces (FFP) are NaN-padded: pulses no cycle reached have no mean.
    idx = idx[np.isfinite(mean_curve[idx])]
    curve = mean_curve[idx]
    if idx.size < 3:
        notes.append(f"{branch}: fewer than 3 pulses with a finite mean read; no linear range")
        return out
    try:
        start, stop = metrics.linear_range(curve, r2_min=r2_min, step_ratio=step_ratio)
    except MemdriftError as exc:
        notes.append(f"{branch}: {exc}")
        return out
    x = np.arange(start, stop, dtype=np.float64)
    fit = metrics.linear_fit(curve[start:stop], x)
    out.update(range_start=int(start), range_stop=int(stop), states=int(stop - start),
               pulse_index=[int(i) for i in idx[start:stop]],
               slope=fit.slope, intercept=fit.intercept, r2=fit.r2, slope_stderr=fit.slope_stderr,
               intercept_stderr=fit.intercept_stderr,
               g_low=float(curve[start:stop].min()), g_high=float(curve[start:stop].max()),
               bin_width=metrics.bin_width(curve[start:stop]),
               state_mean=[float(v) for v in curve[start:stop]])
    if g.sizes["cycle"] < 2:
        notes.append(f"{branch}: state σ needs at least 2 cycles; state_sigma and differential_bins are null")
        return out
    states = _values(g.isel(pulse=idx[start:stop]))
    _mean, sigma = metrics.state_statistics(states)
    if not np.all(np.isfinite(sigma)):
        notes.append(f"{branch}: some states have fewer than 2 reads; their σ is unknown")
        return out
    out["state_sigma"] = [float(s) for s in sigma]
    out["differential_bins"] = metrics.differential_bins(curve[start:stop], sigma)
    return out


def _pearson(g: xr.DataArray, idx: np.ndarray) -> float | None:
    if g.sizes["cycle"] < 2 or idx.size < 2:
        return None
    sub = g.isel(pulse=idx)
    last = sub.isel(cycle=-1)
    # xr.corr is eqn (1) over the pulse dimension, evaluated lazily for dask inputs.
    r = xr.corr(sub.isel(cycle=slice(None, -1)), last, dim="pulse")
    return _float(_values(r.mean(skipna=True)))


def _processes(g: xr.DataArray, idx: np.ndarray, max_processes: int) -> np.ndarray:
    """Resistance traces (process, pulse) of one branch for evenly spaced (device, cycle) pairs."""
    n_dev, n_cyc = g.sizes["device"], g.sizes["cycle"]
    total = n_dev * n_cyc
    pick = np.unique(np.linspace(0, total - 1, min(total, max_processes)).round().astype(int))
    dev, cyc = np.divmod(pick, n_cyc)
    sub = g.isel(pulse=idx)
    traces = _values(sub.isel(device=xr.DataArray(dev, dims="process"), cycle=xr.DataArray(cyc, dims="process")))
    return 1.0 / traces


#: Student-t degrees of freedom are searched within these bounds (a Gaussian at the upper one)
DF_BOUNDS = (0.05, 1e7)
#: fewer samples per level than this: no Student-t fit (three parameters need more than a handful)
STUDENT_T_MIN_SAMPLES = 5


def _program_error_table(levels_s: np.ndarray, errors: np.ndarray) -> dict[str, list]:
    """The record's Student-t table: per level (conductance aimed at, S) the fit of ``errors``
    (level, sample) of G reached − G aimed at."""
    lo, hi = DF_BOUNDS
    loc, scale, df = metrics.fit_student_t_levels(errors, df_bounds=DF_BOUNDS)
    # A level reached identically every time has no spread: scale 0, and df is irrelevant;
    # it is stored at the fit's upper bound (normal) so that consumers get a number.
    df = np.where(np.isfinite(df), df, hi)
    spread = np.isfinite(scale) & (scale > 0)
    # df at a bound was not estimated: the samples do not tell a Gaussian (upper) or an
    # arbitrarily heavy tail (lower) apart
    at_bound = int(np.sum(spread & ((df >= 0.99 * hi) | (df <= 1.01 * lo))))
    return {"conductance": [float(v) for v in levels_s], "loc": [_float(v) for v in loc],
            "scale": [_float(v) for v in scale], "df": [_float(v) for v in df],
            "samples": int(errors.shape[1]), "df_at_bound": at_bound}


def _segmentation(traces: np.ndarray, branch: str, n_levels: int, notes: list[str]) -> dict[str, Any]:
    """ν (own range per trace), skipped levels and program errors (common targets) for one branch."""
    clean = [t[np.isfinite(t)] for t in traces]
    clean = [t for t in clean if t.size >= 3 and np.ptp(t) > 0]
    if not clean:
        notes.append(f"{branch}, n={n_levels}: no trace with 3 or more distinct reads; no segmentation")
        return {}
    own = [metrics.segment_levels(t, n_levels).actual for t in clean]
    nus = [metrics.fit_nonlinearity(a, branch) for a in own]
    curvature = [metrics.fit_nonlinearity(a, branch, indexing="end-matched") for a in own]
    # Common targets for all processes (median start and end), so the offsets of different
    # processes refer to the same levels: the skip count reads the CPD over processes.
    segs = [seg for seg in metrics.segment_processes(clean, n_levels) if seg is not None]
    targets = segs[0].targets
    # The error the level carries, in conductance (what aihwkit programs): G reached − G aimed at.
    errors = [1.0 / seg.actual - 1.0 / seg.targets for seg in segs]
    out: dict[str, Any] = {
        "nu": float(np.mean(nus)), "nu_std": float(np.std(nus, ddof=1)) if len(nus) > 1 else None,
        "nu_end_matched": float(np.mean(curvature)),
        "processes": len(clean), "skipped": metrics.skipped_levels(np.array([seg.offset for seg in segs])),
    }
    if len(clean) >= STUDENT_T_MIN_SAMPLES:
        out["program_error_t"] = table = _program_error_table(1.0 / targets, np.array(errors).T)
        if table["df_at_bound"]:
            notes.append(f"{branch}, n={n_levels}: df of {table['df_at_bound']} of {n_levels} levels sits at a bound "
                         f"of {DF_BOUNDS} ({len(clean)} samples a level): not estimated, only bounded")
    else:
        notes.append(f"{branch}, n={n_levels}: {len(clean)} programming processes; the Student-t program error "
                     f"needs at least {STUDENT_T_MIN_SAMPLES} (null)")
    return out


def _piecewise(g: xr.DataArray, branch_of_pulse: np.ndarray, nodes: int, g_lo: float, g_hi: float) -> dict[str, Any]:
    """ΔG per pulse against the conductance before it, binned in G: the PiecewiseStepDevice table."""
    prev = g.shift(pulse=1)
    # The read before a cycle's first pulse is the previous cycle's last read.
    carry = g.isel(pulse=-1).shift(cycle=1)
    first = xr.DataArray(np.arange(g.sizes["pulse"]) == 0, dims="pulse")
    prev = xr.where(first, carry, prev).transpose("device", "cycle", "pulse")
    dg = (g - prev).transpose("device", "cycle", "pulse")
    edges = np.linspace(g_lo, g_hi, nodes + 1)
    out: dict[str, Any] = {}
    for branch in BRANCHES:
        idx = np.flatnonzero(branch_of_pulse == branch)
        if idx.size == 0:
            continue
        x = prev.isel(pulse=idx).data.reshape(-1)
        w = dg.isel(pulse=idx).data.reshape(-1)
        if hasattr(x, "compute"):
            import dask.array as da

            ok = da.isfinite(x) & da.isfinite(w)
            x, w = da.where(ok, x, np.nan), da.where(ok, w, 0.0)
            cnt, _ = da.histogram(x, bins=edges)
            s1, _ = da.histogram(x, bins=edges, weights=w)
            s2, _ = da.histogram(x, bins=edges, weights=w * w)
            cnt, s1, s2 = (np.asarray(a) for a in da.compute(cnt, s1, s2))
        else:
            x, w = np.asarray(x), np.asarray(w)
            ok = np.isfinite(x) & np.isfinite(w)
            cnt, _ = np.histogram(x[ok], bins=edges)
            s1, _ = np.histogram(x[ok], bins=edges, weights=w[ok])
            s2, _ = np.histogram(x[ok], bins=edges, weights=w[ok] ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / cnt
            var = (s2 - cnt * mean ** 2) / (cnt - 1)
        std = np.sqrt(np.clip(var, 0.0, None))
        keep = cnt >= 2  # a mean and a spread need two updates; empty bins are left out, not invented
        out[branch] = {"conductance": [float(v) for v in (0.5 * (edges[:-1] + edges[1:]))[keep]],
                       "mean": [float(v) for v in mean[keep]], "std": [float(v) for v in std[keep]],
                       "count": [int(c) for c in cnt[keep]]}
    return out


def _device_to_device(g: xr.DataArray, linear: dict[str, dict], idx_of: dict[str, np.ndarray],
                      notes: list[str]) -> dict[str, Any] | None:
    if g.sizes["device"] < 2:
        notes.append("device_to_device needs at least 2 devices (null)")
        return None
    per_device = _values(g.mean("cycle", skipna=True))  # (device, pulse)

    def rel(v):
        v = v[np.isfinite(v)]
        return _float(np.std(v, ddof=1) / abs(np.mean(v))) if v.size > 1 and np.mean(v) != 0 else None

    out: dict[str, Any] = {"devices": int(per_device.shape[0]),
                           "g_min_rel_std": rel(np.nanmin(per_device, axis=1)),
                           "g_max_rel_std": rel(np.nanmax(per_device, axis=1))}
    for branch, lin in linear.items():
        if "range_start" not in lin:
            continue
        cols = np.asarray(lin["pulse_index"])
        y = per_device[:, cols]
        x = np.arange(cols.size, dtype=np.float64)
        x -= x.mean()
        slopes = ((y - y.mean(axis=1, keepdims=True)) @ x) / (x @ x)
        out[f"slope_{SHORT[branch]}_rel_std"] = rel(slopes)
    return out


def _retention_curves(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, list[xr.DataArray]] | None:
    """(time_s, temperature_K, [conductance over time (+ other dims) per temperature]) or None.

    Two layouts are read: a variable with a ``time`` dimension (s), and the
    emulator's retention scheme — pulses whose branch is "retention", each a
    zero-bias wait of ``width`` s followed by a read of ``scheme.read_width_s`` s,
    so the read after pulse k happens at ``cumsum(width + read_width)[k]``. The
    temperature comes from a ``temperature`` dimension (K), else a scalar
    ``temperature`` coordinate, else the ``param.ambient_temperature_k`` or
    ``temperature_k`` attribute; it stays unknown (NaN) otherwise.
    """
    name = next((n for n in ("conductance", "resistance") if n in ds and "time" in ds[n].dims), None)
    if name is not None:
        curve = ds[name] if name == "conductance" else 1.0 / ds[name]
        time = np.asarray(ds["time"].values, dtype=np.float64)
    else:
        name = next((n for n in ("conductance", "resistance") if n in ds and "pulse" in ds[n].dims), None)
        if name is None or "branch" not in ds.coords or "width" not in ds:
            return None
        idx = np.flatnonzero(np.asarray(ds["branch"].values).astype(str) == RETENTION)
        if idx.size == 0:
            return None
        curve = ds[name] if name == "conductance" else 1.0 / ds[name]
        curve = curve.isel(pulse=idx).rename(pulse="time")
        read = float(ds.attrs.get("scheme.read_width_s", 0.0))
        time = np.cumsum(np.asarray(ds["width"].values, dtype=np.float64) + read)[idx]
    if "temperature" in curve.dims:
        temps = np.asarray(ds["temperature"].values, dtype=np.float64)
        return time, temps, [curve.isel(temperature=i) for i in range(temps.size)]
    temp = None
    if "temperature" in ds.coords and ds["temperature"].size == 1:
        temp = float(ds["temperature"].values)
    for key in ("param.ambient_temperature_k", "temperature_k"):
        if temp is None and key in ds.attrs:
            temp = float(ds.attrs[key])
    return time, np.array([np.nan if temp is None else temp]), [curve]


def _drift(ds: xr.Dataset, notes: list[str]) -> dict[str, Any]:
    """Drift exponent (power law, at the temperature nearest 300 K) and Arrhenius energy of the drift rate."""
    out: dict[str, Any] = {"nu": None, "activation_energy_eV": None}
    found = _retention_curves(ds)
    if found is None:
        notes.append("drift: the dataset has no retention data (a 'time' dimension or 'retention' pulses); "
                     "drift is null")
        return out
    time, temps, curves = found
    rows = []
    curves_ln: list[tuple[np.ndarray, np.ndarray]] = []
    for temp, curve in zip(temps, curves):
        other = [d for d in curve.dims if d != "time"]
        # (time, trace) with one column per device/cycle, for the device-to-device spread of ν
        traces = _values(curve.transpose("time", ...)).reshape(time.size, -1) if other else \
            _values(curve).reshape(time.size, 1)
        gm = np.nanmean(traces, axis=1)
        ok = np.isfinite(gm) & (time > 0) & (gm > 0)
        if ok.sum() < 2:
            continue
        fit = metrics.drift_exponent(time[ok], gm[ok])
        per_trace = [metrics.drift_exponent(time[ok], c[ok]).nu for c in traces.T
                     if np.all(np.isfinite(c[ok])) and np.all(c[ok] > 0)]
        rows.append({"temperature_K": _float(temp), "nu": fit.nu, "nu_stderr": fit.nu_stderr, "g0": fit.g0,
                     "t0": fit.t0, "r2": fit.r2,
                     "nu_std": float(np.std(per_trace, ddof=1)) if len(per_trace) > 1 else None,
                     "rate": metrics.relative_drift_rate(time[ok], gm[ok]),
                     "rate_r2": metrics.linear_fit(np.log(gm[ok]), time[ok]).r2})
        curves_ln.append((time[ok], np.log(gm[ok])))
    out["per_temperature"] = rows
    if not rows:
        notes.append("drift: retention data have fewer than 2 valid times; drift is null")
        return out
    known = [r for r in rows if r["temperature_K"] is not None]
    ref = min(known, key=lambda r: abs(r["temperature_K"] - 300.0)) if known else rows[0]
    out["nu_r2"] = ref["r2"]
    if ref["r2"] >= DRIFT_NU_MIN_R2:
        out["nu"] = ref["nu"]
        out["nu_stderr"] = ref["nu_stderr"]
        out["nu_std"] = ref["nu_std"]
    else:
        # aihwkit's drift model is this power law: a ν that does not describe the decay would
        # mispredict when (not only how much) the conductance moves.
        out["nu_fit"] = {"nu": ref["nu"], "nu_stderr": ref["nu_stderr"], "r2": ref["r2"]}
        change = float(np.exp(curves_ln[rows.index(ref)][1][-1] - curves_ln[rows.index(ref)][1][0]) - 1.0)
        notes.append(f"drift: nu is null: the power law G ~ t^-nu explains R^2 = {ref['r2']:.2f} of log G at "
                     f"{ref['temperature_K']} K (threshold {DRIFT_NU_MIN_R2}); G changed by {100 * change:.3g} % "
                     "over the bake; the fitted value is under drift.nu_fit")
    if ref["temperature_K"] is not None:  # left out, not null, when the file does not say
        out["reference_temperature_K"] = ref["temperature_K"]
    else:
        notes.append("drift: the retention temperature is unknown (no 'temperature' coordinate or attribute)")
    usable = [r for r in known if r["rate"] > 0]
    if len({r["temperature_K"] for r in usable}) >= 2:
        if all(r["rate_r2"] >= LINEAR_DECAY_R2 for r in usable):
            arr = metrics.arrhenius_activation_energy([r["temperature_K"] for r in usable],
                                                      [r["rate"] for r in usable])
            out["activation_energy_method"] = "drift_rate"
        else:
            # A decay that saturates within the bake (hot curves) makes the fitted rate meaningless;
            # the time to a common change of ln G is thermally activated whatever the curve's shape.
            picked = [curves_ln[rows.index(r)] for r in usable]
            criterion, times_to = _time_to_change(picked)
            for r, t_c in zip(usable, times_to):
                r["time_to_change_s"] = t_c
            arr = metrics.arrhenius_activation_energy([r["temperature_K"] for r in usable], 1.0 / times_to)
            out["activation_energy_method"] = "time_to_change"
            out["change_criterion_ln_g"] = criterion
            notes.append("drift: ln G is not linear in time at every temperature (saturation); the activation "
                         f"energy is from the time for ln G to fall by {criterion:.3g}")
        out["activation_energy_eV"] = arr.activation_energy_eV
        out["activation_energy_eV_stderr"] = arr.activation_energy_stderr_eV
        out["arrhenius_r2"] = arr.r2
        if arr.activation_energy_stderr_eV is None:
            notes.append("drift: the activation energy is from 2 temperatures (a line through 2 points): no "
                         "standard error; bake at 3 or more for one")
    else:
        notes.append("drift: the activation energy needs a decaying conductance at 2 or more known temperatures "
                     "(null)")
    return out


#: ν is reported only when the power law explains at least this fraction of the variance of log G.
DRIFT_NU_MIN_R2 = 0.9

#: ln G vs t fits at least this good at every temperature: the Arrhenius energy uses the drift rates.
LINEAR_DECAY_R2 = 0.99


def _time_to_change(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray]:
    """Common criterion (half the smallest total fall of ln G) and the time each curve first reaches it.

    Linear interpolation in t between the bracketing reads, exact for a linear decay.
    """
    drops = [(t, lg[0] - lg) for t, lg in curves]
    criterion = 0.5 * min(float(d.max()) for _, d in drops)
    out = []
    for t, d in drops:
        k = int(np.argmax(d >= criterion))
        if k == 0:
            out.append(float(t[0]))
            continue
        out.append(float(t[k - 1] + (criterion - d[k - 1]) * (t[k] - t[k - 1]) / (d[k] - d[k - 1])))
    return criterion, np.array(out)


# --------------------------------------------------------------------------- record


def extract_record(ds: xr.Dataset, *, levels=(32, 128, 512), r2_min: float = 0.995, step_ratio: float = 0.5,
                   nodes: int = 16, max_processes: int = 128) -> DeviceRecord:
    """Extraction record of ``ds`` (see the module docstring for every key and its definition).

    ``levels``: level counts for ν, skipped levels and program errors;
    ``r2_min``/``step_ratio``: the linear-range criteria of
    :func:`~memdrift.mapping.metrics.linear_range`; ``nodes``: conductance bins
    of the ΔG-vs-G table; ``max_processes``: (device, cycle) traces per branch
    used by the per-trace fits (evenly spaced over the ensemble).
    """
    levels = tuple(int(n) for n in levels)
    for n in levels:
        if n < 2:
            raise MemdriftError(f"levels contains {n}; allowed: level counts >= 2")
    if not 1 <= int(nodes) <= 10_000:
        raise MemdriftError(f"nodes = {nodes!r} is out of range; allowed: [1, 10000]")
    if int(max_processes) < 1:
        raise MemdriftError(f"max_processes = {max_processes!r} is out of range; allowed: [1, inf)")
    notes: list[str] = []
    record: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    record.update(schema=SCHEMA, units=UNITS, levels=list(levels), notes=notes,
                  linear_r2={POTENTIATION: None, DEPRESSION: None},
                  source={k: _jsonable(v) for k, v in ds.attrs.items()
                          if k in ("memdrift_version", "model", "preset", "scheme", "seed", "source")})

    if not ds.chunks:
        # Not dask-backed: read a lazily opened file once, rather than once per selection below.
        ds = ds.load()
    layout = layout_of(ds)
    if layout == LAYOUT_WRITE_VERIFY:
        _write_verify_metrics(ds, record, notes)
        record["drift"] = _drift(ds, notes)
        return DeviceRecord.from_dict(record)
    programming = layout == LAYOUT_PULSE
    if programming:
        ds = normalise_dataset(ds)
        labels = np.asarray(ds["branch"].values).astype(str)
        idx_of = {b: np.flatnonzero(labels == b) for b in BRANCHES}
        programming = any(i.size for i in idx_of.values())
    if not programming:
        notes.append("no programming pulses (potentiation/depression reads over device, cycle, pulse): "
                     "programming metrics are null")
    else:
        _programming_metrics(ds, record, notes, idx_of, labels, levels, r2_min, step_ratio, int(nodes),
                             int(max_processes))
    record["drift"] = _drift(ds, notes)
    return DeviceRecord.from_dict(record)


def _write_verify_metrics(ds: xr.Dataset, record: dict[str, Any], notes: list[str]) -> None:
    """Record of a write-verify dataset (``memdrift.emulator.write_verify``): the targets are the states.

    Each target is a level; its program error is the Student-t of (final read − target) over devices,
    keyed by the level count like the segmentation's tables, so the aihwkit bridge programs exactly the
    levels the scheme wrote. Per-level cost and success are kept under ``write_verify``.
    """
    targets = np.asarray(ds["target"].values, dtype=float)
    order = np.argsort(targets)
    targets = targets[order]
    final = np.asarray(ds["conductance_final"].transpose("level", "device").values, dtype=float)[order]
    n = targets.size
    sigma = np.std(final, axis=1, ddof=1) if final.shape[1] > 1 else np.full(n, np.nan)
    means = final.mean(axis=1)
    record["states"] = int(n) if n >= 2 else None
    record["g_min"], record["g_max"] = float(targets[0]), float(targets[-1])
    record["bin_width"] = float(np.mean(np.diff(targets))) if n >= 2 else None
    if final.shape[1] > 1:
        record["state_sigma"] = float(np.mean(sigma))
        record["differential_bins"] = metrics.differential_bins(means, sigma) if n >= 2 else None
    else:
        notes.append("write-verify: one device; state_sigma and differential_bins need at least 2 (null)")
    if final.shape[1] >= STUDENT_T_MIN_SAMPLES:
        record["program_error_t"] = {str(n): _program_error_table(targets, final - targets[:, None])}
    else:
        notes.append(f"write-verify: {final.shape[1]} devices; the Student-t program error needs at least "
                     f"{STUDENT_T_MIN_SAMPLES} (null)")
    converged = np.asarray(ds["converged"].transpose("level", "device").values, dtype=float)[order]
    record["skipped_levels"] = {str(n): {"write-verify": int(np.sum(converged.mean(axis=1) < 0.8))}}
    energy = np.asarray(ds["energy"].values, dtype=float)
    record["energy_per_pulse"] = _float(np.nanmean(energy)) if np.isfinite(energy).any() else None
    record["pulse_width"] = _float(ds.attrs.get("scheme.width_s"))
    record["read_time"] = _float(ds.attrs.get("scheme.read_width_s"))
    def mean_over_devices(name: str) -> list[float]:
        return [float(v) for v in np.asarray(ds[name].transpose("level", "device").values, float)[order].mean(1)]

    given = np.asarray(ds["target"].values, dtype=float)
    record["write_verify"] = {
        "target": [float(v) for v in targets], "tolerance": _float(ds.attrs.get("scheme.tolerance")),
        # programmed lowest first from the reset state: then the cumulative pulses are the cost of
        # reaching each level from reset (the bridge's cost model)
        "ascending_from_reset": bool(np.all(np.diff(given) > 0)),
        "pulses": mean_over_devices("pulses"), "converged": [float(v) for v in converged.mean(1)],
        "program_energy": mean_over_devices("program_energy"), "program_time": mean_over_devices("program_time"),
        "final_mean": [float(v) for v in means], "final_sigma": [_float(v) for v in sigma]}
    notes.append("write-verify: the targets are the states (no potentiation/depression branches): linear_r2, "
                 "nu and pearson are null; skipped_levels counts targets that fewer than 80 % of devices reached")


def _programming_metrics(ds, record, notes, idx_of, labels, levels, r2_min, step_ratio, nodes, max_processes):
    g = _conductance(ds, notes)
    pd_idx = np.sort(np.concatenate([idx_of[b] for b in BRANCHES]))
    mean_curve = _values(g.mean(("device", "cycle"), skipna=True))
    record["g_min"] = _float(np.nanmin(mean_curve[pd_idx]))
    record["g_max"] = _float(np.nanmax(mean_curve[pd_idx]))
    linear = {b: _branch_linear(g, idx_of[b], b, mean_curve, notes, r2_min, step_ratio) for b in BRANCHES}
    record["branches"] = linear
    record["linear_fit"] = {b: {k: linear[b].get(k) for k in ("slope", "slope_stderr", "intercept",
                                                              "intercept_stderr", "r2", "range_start", "range_stop")}
                            for b in BRANCHES}
    record["linear_r2"] = {b: linear[b].get("r2") for b in BRANCHES}
    with_states = [linear[b] for b in BRANCHES if "states" in linear[b]]
    if len(with_states) == 2:
        record["states"] = min(b["states"] for b in with_states)
        record["bin_width"] = float(np.mean([b["bin_width"] for b in with_states]))
        record["symmetry"] = metrics.symmetry(linear[POTENTIATION]["slope"], linear[DEPRESSION]["slope"])
    else:
        notes.append("states, bin_width, symmetry need a linear range on both branches (null)")
    with_sigma = [linear[b] for b in BRANCHES if "state_sigma" in linear[b]]
    if len(with_sigma) == 2:
        record["state_sigma"] = float(np.mean(np.concatenate([b["state_sigma"] for b in with_sigma])))
        record["differential_bins"] = min(b["differential_bins"] for b in with_sigma)

    pear = {b: _pearson(g, idx_of[b]) for b in BRANCHES}
    record["pearson_branch"] = pear
    known = [v for v in pear.values() if v is not None]
    record["pearson"] = float(np.mean(known)) if known else None
    if not known:
        notes.append("pearson needs at least 2 cycles (null)")

    nu: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    perr: dict[str, Any] = {}
    traces = {b: _processes(g, idx_of[b], max_processes) for b in BRANCHES if idx_of[b].size}
    for n in levels:
        key = str(n)
        nu[key], skipped[key], perr[key] = {}, {}, {}
        for b in BRANCHES:
            seg = _segmentation(traces[b], b, n, notes) if b in traces else {}
            nu[key][SHORT[b]] = seg.get("nu")
            nu[key][f"{SHORT[b]}_std"] = seg.get("nu_std")
            nu[key][f"{SHORT[b]}_processes"] = seg.get("processes", 0)
            nu[key][f"{SHORT[b]}_end_matched"] = seg.get("nu_end_matched")
            skipped[key][b] = seg.get("skipped")
            perr[key][b] = seg.get("program_error_t")
    scheme = str(ds.attrs.get("scheme", ""))
    if scheme and not scheme.startswith("ffp"):
        # the TiO2-x paper's count for a closed-loop FFP trace; a fixed pulse table that reaches fewer
        # reads than levels "skips" by construction (128 of 128 for a 20-pulse ramp)
        skipped = None
        notes.append(f"skipped_levels: defined for feedforward (FFP) traces segmented into n levels; this "
                     f"dataset's scheme {scheme!r} is a fixed pulse table (null)")
    record["nu"], record["skipped_levels"] = nu, skipped
    # The TiO2 paper samples the program error of the worse branch ("considered the worst
    # case"); the record's program_error_t is that branch's table, both are kept aside.
    record["program_error_t_branch"] = perr
    primary: dict[str, Any] = {}
    for key, per_branch in perr.items():
        tables = {b: t for b, t in per_branch.items() if t is not None}
        if tables:
            worst = max(tables, key=lambda b: float(np.nanmean(np.array(tables[b]["scale"], dtype=float))))
            primary[key] = dict(tables[worst], branch=worst)
    record["program_error_t"] = primary or None

    gpd = g.isel(pulse=pd_idx)
    lo, hi = _float(_values(gpd.min(skipna=True))), _float(_values(gpd.max(skipna=True)))
    dg = _piecewise(g, labels, nodes, lo, hi) if hi > lo else {}
    if all(b in dg and len(dg[b]["conductance"]) >= 2 for b in BRANCHES):
        record["delta_g"] = dg
    else:
        record["delta_g"] = None
        notes.append("delta_g needs at least 2 populated conductance bins on both branches (null)")
    record["device_to_device"] = _device_to_device(g, linear, idx_of, notes)

    table: dict[str, Any] = {"branch": labels.tolist()}
    for name, unit_key in (("amplitude", "amplitude_v"), ("width", "width_s")):
        if name in ds and ds[name].dims == ("pulse",):
            table[unit_key] = [_float(v) for v in _values(ds[name])]
    record["pulse_table"] = table
    if "width_s" in table:
        widths = np.array([w for w, b in zip(table["width_s"], labels) if b in BRANCHES and w is not None])
        record["pulse_width"] = _float(widths.mean()) if widths.size else None
    record["read_time"] = _float(ds.attrs.get("scheme.read_width_s")) if "scheme.read_width_s" in ds.attrs else None

    if "energy" in ds and "pulse" in ds["energy"].dims:
        e = ds["energy"].isel(pulse=pd_idx).transpose(..., "pulse")
        record["energy_per_pulse"] = _float(_values(e.mean(skipna=True)))
        per_cycle = _values(e.sum("pulse", skipna=True)).reshape(-1)
        record["energy_per_cycle"] = {"mean": _float(per_cycle.mean()),
                                      "std": _float(per_cycle.std(ddof=1)) if per_cycle.size > 1 else None}
        record["energy_per_pulse_branch"] = {
            b: _float(_values(ds["energy"].isel(pulse=idx_of[b]).mean(skipna=True))) for b in BRANCHES
            if idx_of[b].size}
    else:
        notes.append("energy_per_pulse: the dataset has no 'energy' variable (null)")


# --------------------------------------------------------------------------- JSON


# --------------------------------------------------------------------------- one record from several datasets

#: Global attributes that say which device a dataset is of: files that differ in one are two devices.
IDENTITY_KEYS = ("model", "preset")
IDENTITY_PREFIXES = ("param.", "parameters.", "variation.")

#: What each kind of measurement provides. A record takes each group whole from one dataset, so a
#: state σ and the bin width it is compared with always come from the same programming scheme.
DRIFT_KEYS = ("drift",)
#: Keys that describe the record, not a measurement.
META_KEYS = ("schema", "units", "levels", "notes", "source", "sources")
#: how to obtain a group the record lacks
PROVIDED_BY = {"programming": "a programming dataset (memdrift pulse, or characterise with protocol 'pd-cycling')",
               "drift": "retention data (memdrift characterise with protocol 'retention')"}


def device_identity(ds: xr.Dataset) -> dict[str, Any]:
    """The model, preset and every parameter a dataset records (empty for a lab file without them)."""
    return {k: _jsonable(v) for k, v in ds.attrs.items() if k in IDENTITY_KEYS or k.startswith(IDENTITY_PREFIXES)}


def check_same_device(named: list[tuple[str, xr.Dataset]]) -> None:
    """Raise unless every dataset records the same model, preset and parameters as the first."""
    first_name, first = named[0][0], device_identity(named[0][1])
    for name, ds in named[1:]:
        other = device_identity(ds)
        keys = sorted(set(first) | set(other), key=lambda k: (k not in IDENTITY_KEYS, k))
        differ = [f"{k} = {other.get(k, 'absent')!r} there, {first.get(k, 'absent')!r} in {first_name}"
                  for k in keys if first.get(k, "absent") != other.get(k, "absent")]
        if differ:
            more = f" (and {len(differ) - 3} more)" if len(differ) > 3 else ""
            raise MemdriftError(f"{name} is not the device of {first_name}: {'; '.join(differ[:3])}{more}; "
                                "allowed: datasets of one device (same model, preset and parameters) in one record")


def _measured(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return any(_measured(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return len(value) > 0
    return True


def _group(key: str) -> str:
    return "drift" if key in DRIFT_KEYS else "programming"


def _note_group(note: str) -> str:
    return "drift" if note.startswith("drift") else "programming"


def merge_records(parts: list[tuple[str, Mapping[str, Any]]]) -> DeviceRecord:
    """One record from the records of several datasets of one device (see :func:`extract_datasets`).

    Each group of quantities (programming metrics; drift) comes whole from the first dataset, in the
    order given, that measures it; ``notes`` say which file gave what, and keep each file's notes on
    the group it gave (or, for a group none gave, every file's reason). ``sources`` lists the files.
    """
    if not parts:
        raise MemdriftError("no datasets to merge; allowed: one or more extraction records")
    levels = [p[1].get("levels") for p in parts]
    if any(lv != levels[0] for lv in levels):
        raise NamedError(f"records were extracted at different level counts {literal(levels)}; allowed: the same "
                         "{levels} for every record")
    provider: dict[str, int] = {}
    for i, (_name, rec) in enumerate(parts):
        for key, value in rec.items():
            if key not in META_KEYS and _measured(value):
                provider.setdefault(_group(key), i)
    merged: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    merged.update(schema=SCHEMA, units=UNITS, levels=levels[0], linear_r2={POTENTIATION: None, DEPRESSION: None},
                  drift={"nu": None, "activation_energy_eV": None})
    notes: list[str] = []
    for group in ("programming", "drift"):
        if group in provider:
            name, rec = parts[provider[group]]
            for key, value in rec.items():
                if key not in META_KEYS and _group(key) == group:
                    merged[key] = value
            notes.append(f"{group} metrics from {name}")
            notes += [f"{name}: {n}" for n in rec.get("notes") or [] if _note_group(n) == group]
            others = [parts[i][0] for i in range(len(parts)) if i != provider[group]
                      and any(_measured(v) for k, v in parts[i][1].items() if k not in META_KEYS and _group(k) == group)]
            if others:
                notes.append(f"{group} metrics also in {', '.join(others)}: not used (the first file given that "
                             "measures them provides them whole)")
        else:
            notes.append(f"{group}: none of {', '.join(p[0] for p in parts)} measures it (null); it comes from "
                         f"{PROVIDED_BY[group]}")
            notes += [f"{name}: {n}" for name, rec in parts for n in rec.get("notes") or [] if _note_group(n) == group]
    merged["notes"] = notes
    merged["sources"] = [dict(file=name, provides=sorted(g for g, i in provider.items() if i == k),
                              **(rec.get("source") or {})) for k, (name, rec) in enumerate(parts)]
    merged["source"] = parts[provider.get("programming", provider.get("drift", 0))][1].get("source")
    return DeviceRecord.from_dict(merged)


def extract_datasets(named: list[tuple[str, xr.Dataset]], **options: Any) -> DeviceRecord:
    """The record of one device from several datasets (cycling, retention, ...), each extracted by
    :func:`extract_record` with ``options`` and merged by :func:`merge_records`.

    Datasets that record different models, presets or parameters are two devices: refused, naming
    the first differing attribute.
    """
    if len(named) == 1:
        return extract_record(named[0][1], **options)
    check_same_device(named)
    return merge_records([(name, extract_record(ds, **options)) for name, ds in named])
